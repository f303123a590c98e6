//! Test helpers: finding `elixir` and the built BEAM libraries (`../shared/beamlibs`),
//! and an Elixir peer process whose stdout lines arrive on a channel.
#![allow(dead_code)]

pub mod fake;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

fn build_script() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ORBIT_BEAMLIBS_BUILD") {
        return Some(PathBuf::from(p));
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        manifest.join("../../../shared/beamlibs/build.sh"),
        manifest.join("../../../../shared/beamlibs/build.sh"),
        PathBuf::from("/work/shared/beamlibs/build.sh"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// The built libraries' directory (for `ERL_LIBS`), or why the test must be skipped.
pub fn beamlibs() -> Result<PathBuf, String> {
    match std::process::Command::new("elixir")
        .arg("--version")
        .output()
    {
        Ok(o) if o.status.success() => {}
        _ => return Err("`elixir` is not on PATH".into()),
    }
    let script = build_script()
        .ok_or("../shared/beamlibs/build.sh not found (set ORBIT_BEAMLIBS_BUILD to its path)")?;
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// An `elixir` process running a script; its stdout lines arrive on `lines`.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line seen so far.
    pub seen: Vec<String>,
}

impl Peer {
    /// Starts `elixir --name NAME --cookie COOKIE SCRIPT` with these env vars.
    pub fn start(
        libs: &PathBuf,
        name: &str,
        cookie: &str,
        script: &str,
        env: &[(&str, &str)],
    ) -> Peer {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/beam")
            .join(script);
        let mut cmd = Command::new("elixir");
        cmd.args(["--name", name, "--cookie", cookie])
            .arg(path)
            .env("ERL_LIBS", libs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawning elixir");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = r.next_line().await {
                eprintln!("[elixir] {l}");
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Peer {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`; the line, or None after `timeout`.
    pub async fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return Some(l);
                    }
                }
                _ => return None,
            }
        }
    }

    /// Sends one line to its stdin.
    pub async fn send(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(format!("{line}\n").as_bytes()).await;
            let _ = s.flush().await;
        }
    }

    /// `Node.list()` on the peer (the script answers "list" with "list A,B").
    pub async fn node_list(&mut self) -> Vec<String> {
        self.send("list").await;
        let l = self
            .wait_line("list", Duration::from_secs(10))
            .await
            .expect("list answer");
        l.trim_start_matches("list")
            .trim()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// Closes stdin (the script halts) and waits for the exit.
    pub async fn stop(mut self) {
        self.stdin = None;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}
