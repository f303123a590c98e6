//! Shared helpers for the tests that talk to a real `erl`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

pub mod arb;

/// Whether the Erlang tests should run: `erl` on PATH. Fails the test with a clear
/// message when it is missing, unless `ORBIT_SKIP_ERL=1`.
pub fn erl_available() -> bool {
    let found = Command::new("erl")
        .args(["-noshell", "-eval", "halt()."])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if found {
        return true;
    }
    if std::env::var("ORBIT_SKIP_ERL").as_deref() == Ok("1") {
        eprintln!("erl not found; skipping because ORBIT_SKIP_ERL=1");
        return false;
    }
    panic!(
        "`erl` (Erlang/OTP) is not on PATH: run scripts/test, which installs it, \
         or set ORBIT_SKIP_ERL=1 to skip the Erlang interop tests"
    );
}

/// A running `erl -noshell` evaluating one script, talking over stdin/stdout lines.
pub struct Erl {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Erl {
    /// Starts `erl` on the Erlang expressions in `script`, as a distributed node when
    /// `sname` is set (so pids and references carry a real node name and creation).
    pub fn start(script: &str, sname: bool) -> Erl {
        let mut cmd = Command::new("erl");
        cmd.arg("-noshell");
        if sname {
            let name = format!("orbit_term_test_{}_{}", std::process::id(), rand_suffix());
            cmd.args(["-sname", &name]);
        }
        cmd.env("ERL_CRASH_DUMP_SECONDS", "0");
        cmd.args(["-eval", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn erl");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("erl stdout"));
        Erl {
            child,
            stdin,
            stdout,
        }
    }

    /// The next line erl printed, without its newline; panics at end of output.
    pub fn line(&mut self) -> String {
        let mut s = String::new();
        let n = self.stdout.read_line(&mut s).expect("read from erl");
        assert!(n > 0, "erl exited early (see its stderr above)");
        s.trim_end().to_string()
    }

    /// Sends one line to erl.
    pub fn send(&mut self, line: &str) {
        let w = self.stdin.as_mut().expect("stdin open");
        w.write_all(line.as_bytes()).expect("write to erl");
        w.write_all(b"\n").expect("write to erl");
    }

    /// Closes erl's stdin and waits for it to exit.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

pub fn unhex(s: &str) -> Vec<u8> {
    let v = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("bad hex digit {c}"),
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| (v(p[0]) << 4) | v(p[1]))
        .collect()
}
