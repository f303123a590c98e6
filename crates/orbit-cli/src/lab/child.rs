//! Child processes the lab drives over stdin/stdout lines, and what `/proc` says of them.
//!
//! Contract: a [`Child`] never outlives the lab. Dropping it (a normal end, an error
//! path, a panic unwinding) sends SIGKILL and reaps it; each child also asks the kernel
//! for SIGKILL when the lab's thread that started it dies (`PR_SET_PDEATHSIG`, kept
//! across `exec`), which covers Ctrl-C and a killed lab, where no destructor runs. Start
//! children from one long-lived thread (the lab's main thread). A child that closes
//! its stdout, or stays silent past a deadline, is an error naming it and the last
//! lines it printed; nothing here panics.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Error;

/// A running child process whose stdout lines can be awaited.
pub struct Child {
    /// What the lab calls it (its node name).
    pub name: String,
    proc: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Its last few lines, for error messages.
    recent: Vec<String>,
}

impl Child {
    /// Starts `cmd` with piped stdin/stdout (stderr discarded unless `ORBIT_LAB_DEBUG`
    /// is set), killed with the lab.
    pub fn spawn(mut cmd: Command, name: &str) -> Result<Child, Error> {
        let stderr = if std::env::var_os("ORBIT_LAB_DEBUG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let lab = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may already have died between fork and prctl.
                if libc::getppid() != lab {
                    return Err(std::io::Error::other(
                        "the lab exited while starting a child",
                    ));
                }
                Ok(())
            });
        }
        let program = format!("{:?}", cmd.get_program());
        let mut proc = cmd.spawn().map_err(|e| {
            format!("could not start {program} for {name}: {e}; check it is installed and on PATH")
        })?;
        let (tx, lines) = mpsc::channel();
        if let Some(out) = proc.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(l) = line else { break };
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
        }
        let stdin = proc.stdin.take();
        Ok(Child {
            name: name.to_string(),
            proc,
            stdin,
            lines,
            recent: Vec::new(),
        })
    }

    /// The OS pid.
    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// Writes one line to the child's stdin.
    pub fn say(&mut self, line: &str) -> Result<(), Error> {
        let name = &self.name;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{name}: stdin is closed"))?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("{name}: cannot write a command ({e}); did it exit?").into())
    }

    /// The next line starting with `prefix` (others are skipped), waiting until
    /// `deadline`; a line starting with `error` is an error.
    pub fn expect(&mut self, prefix: &str, deadline: Instant) -> Result<String, Error> {
        self.expect_any(&[prefix], deadline)
    }

    /// The next line starting with one of `prefixes` (others are skipped), waiting
    /// until `deadline`; a line starting with `error` is an error.
    pub fn expect_any(&mut self, prefixes: &[&str], deadline: Instant) -> Result<String, Error> {
        let prefix = prefixes.join("` or `");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if self.recent.len() >= 5 {
                        self.recent.remove(0);
                    }
                    self.recent.push(l.clone());
                    if prefixes.iter().any(|p| l.starts_with(p)) {
                        return Ok(l);
                    }
                    if l.starts_with("error") {
                        return Err(format!("{}: {l}", self.name).into());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: no `{prefix}` line in time; last lines: {:?}",
                        self.name, self.recent
                    )
                    .into())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "{}: exited before answering `{prefix}`; last lines: {:?} (run with ORBIT_LAB_DEBUG=1 to see its stderr)",
                        self.name, self.recent
                    )
                    .into())
                }
            }
        }
    }

    /// Kills (SIGKILL) and reaps the child; idempotent.
    pub fn kill(&mut self) {
        self.stdin = None;
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    orbit::telemetry::cpu_time_of(pid)
}

/// Resident memory in bytes (`VmRSS` of `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    orbit::telemetry::rss_bytes_of(pid)
}
