//! A child process (an Orbit node of [`super::child`] or `erl`) whose stdout lines are
//! awaited with bounded waits; each line carries the instant it was read, so the time
//! of an event is known even when the test reads it later.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running child.
pub struct Peer {
    /// The node name it runs as.
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<(Instant, String)>,
    /// Every line read so far (for failure messages).
    pub seen: Vec<String>,
    /// Lines read but not yet matched.
    backlog: VecDeque<(Instant, String)>,
}

impl Peer {
    /// Starts `cmd` with piped stdin/stdout.
    pub fn spawn(mut cmd: Command, name: &str) -> Peer {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start the peer");
        let out = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        let tag = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(l) = line else { break };
                eprintln!("[{tag}] {l}");
                if tx.send((Instant::now(), l)).is_err() {
                    break;
                }
            }
        });
        Peer {
            name: name.to_string(),
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
            backlog: VecDeque::new(),
        }
    }

    /// Waits (at most `secs`) for a line starting with `prefix`; returns it and when it
    /// was read. Lines skipped over are kept, in order, for later calls: events that
    /// may come in either order are awaited one after the other.
    pub fn expect_at(&mut self, prefix: &str, secs: u64) -> (Instant, String) {
        if let Some(i) = self.backlog.iter().position(|(_, l)| l.starts_with(prefix)) {
            return self.backlog.remove(i).expect("a backlog entry");
        }
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, l)) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return (at, l);
                    }
                    self.backlog.push_back((at, l));
                }
                Err(_) => panic!(
                    "{}: no line starting with {prefix:?} within {secs}s; seen: {:?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Whether a line starting with `prefix` was read by now (lines not yet read are
    /// read first, without waiting).
    pub fn saw(&mut self, prefix: &str) -> bool {
        while let Ok((at, l)) = self.lines.try_recv() {
            self.seen.push(l.clone());
            self.backlog.push_back((at, l));
        }
        self.seen.iter().any(|l| l.starts_with(prefix))
    }

    /// [`expect_at`](Self::expect_at) without the instant.
    pub fn expect(&mut self, prefix: &str, secs: u64) -> String {
        self.expect_at(prefix, secs).1
    }

    /// Writes a command line to the child.
    pub fn say(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// Says `line` and waits for the answer starting with `prefix`.
    pub fn ask(&mut self, line: &str, prefix: &str, secs: u64) -> String {
        self.say(line);
        self.expect(prefix, secs)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
