//! Snapshots of the running program: CPU, memory, file descriptors, processes,
//! mailboxes, long handlers.
//!
//! CPU % is the process's user + system time over the wall time since the previous
//! sample, in percent of one core (200% is two cores busy), read from `/proc/self/stat`
//! (clock ticks of 1/100 s, Linux's fixed `USER_HZ`; a sample over less than a few
//! hundred milliseconds is therefore coarse). Resident memory is `VmRSS` of
//! `/proc/self/status`; open descriptors are the entries of `/proc/self/fd`, their limit
//! the soft "Max open files" of `/proc/self/limits`. Where `/proc` is missing (not
//! Linux) these read as `None`.

use std::sync::Arc;
use std::time::Duration;

use crate::pid::Pid;

use super::{Clock, SystemClock};

/// One of the largest mailboxes at the time of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    /// The process.
    pub pid: Pid,
    /// Its registered name, if any.
    pub name: Option<String>,
    /// Its spawn label (a behaviour's kind, e.g. `gen_server`), if any.
    pub label: Option<&'static str>,
    /// Messages waiting.
    pub len: u64,
}

/// The state of the program at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When it was taken (on the sampler's clock).
    pub at: Duration,
    /// CPU used since the previous sample, in percent of one core.
    pub cpu_percent: Option<f64>,
    /// Resident memory in bytes.
    pub rss_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub fd_limit: Option<u64>,
    /// Live Orbit processes.
    pub processes: usize,
    /// The largest mailboxes, longest first.
    pub largest_mailboxes: Vec<MailboxInfo>,
    /// Long handlers seen since start, over all processes.
    pub long_handlers: u64,
}

impl Snapshot {
    /// The longest mailbox's length (0 when there are no processes).
    pub fn max_mailbox(&self) -> u64 {
        self.largest_mailboxes.first().map_or(0, |m| m.len)
    }

    /// Publishes the snapshot as gauges through the `metrics` facade:
    /// `orbit_cpu_percent`, `orbit_rss_bytes`, `orbit_open_fds`, `orbit_fd_limit`,
    /// `orbit_processes`, `orbit_max_mailbox_len`, `orbit_long_handlers_total`. A figure
    /// that could not be read is not published.
    pub fn publish(&self) {
        let opt = |name: &'static str, v: Option<f64>| {
            if let Some(v) = v {
                metrics::gauge!(name).set(v);
            }
        };
        opt("orbit_cpu_percent", self.cpu_percent);
        opt("orbit_rss_bytes", self.rss_bytes.map(|v| v as f64));
        opt("orbit_open_fds", self.open_fds.map(|v| v as f64));
        opt("orbit_fd_limit", self.fd_limit.map(|v| v as f64));
        metrics::gauge!("orbit_processes").set(self.processes as f64);
        metrics::gauge!("orbit_max_mailbox_len").set(self.max_mailbox() as f64);
        metrics::gauge!("orbit_long_handlers_total").set(self.long_handlers as f64);
    }
}

/// Takes [`Snapshot`]s, remembering the previous CPU reading so each snapshot's CPU % is
/// over the time since the one before.
pub struct SystemSampler {
    clock: Arc<dyn Clock>,
    top_n: usize,
    last_cpu: Option<(Duration, Duration)>,
}

impl std::fmt::Debug for SystemSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemSampler")
            .field("top_n", &self.top_n)
            .finish()
    }
}

impl Default for SystemSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemSampler {
    /// A sampler reporting the 5 largest mailboxes. Its first snapshot's CPU % covers the
    /// time since this call.
    pub fn new() -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        let last_cpu = cpu_time().map(|c| (clock.now(), c));
        SystemSampler {
            clock,
            top_n: 5,
            last_cpu,
        }
    }

    /// Reports the `n` largest mailboxes instead of 5.
    pub fn top(mut self, n: usize) -> Self {
        self.top_n = n;
        self
    }

    /// Takes a snapshot now.
    pub fn sample(&mut self) -> Snapshot {
        let at = self.clock.now();
        let cpu = cpu_time();
        let cpu_percent = match (self.last_cpu, cpu) {
            (Some((t0, c0)), Some(c1)) if at > t0 => {
                Some(c1.saturating_sub(c0).as_secs_f64() / (at - t0).as_secs_f64() * 100.0)
            }
            _ => None,
        };
        if let Some(c) = cpu {
            self.last_cpu = Some((at, c));
        }
        // One pass over the process table gives both the top mailboxes and the count.
        let (top, processes) = crate::info::top_and_count(self.top_n);
        let largest_mailboxes = top
            .into_iter()
            .map(|p| MailboxInfo {
                pid: p.pid,
                name: p.registered_name.map(|n| n.to_string()),
                label: p.label,
                len: p.message_queue_len,
            })
            .collect();
        Snapshot {
            at,
            cpu_percent,
            rss_bytes: rss_bytes(),
            open_fds: open_fds(),
            fd_limit: fd_limit(),
            processes,
            largest_mailboxes,
            long_handlers: crate::clock::long_handler_total(),
        }
    }
}

/// User + system CPU time of this process.
pub fn cpu_time() -> Option<Duration> {
    cpu_time_of("self")
}

/// User + system CPU time (all threads) the OS process `pid` has used so far (a pid, or
/// `"self"`), from `/proc/PID/stat`; `None` when it cannot be read (no such process, not
/// Linux).
pub fn cpu_time_of(pid: impl std::fmt::Display) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; fields after
    // the last ')' start with field 3 (state). utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // /proc counts in clock ticks of USER_HZ, which Linux fixes at 100 on every
    // architecture (what `sysconf(_SC_CLK_TCK)` returns).
    const USER_HZ: u64 = 100;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// Resident memory of this process in bytes.
pub fn rss_bytes() -> Option<u64> {
    rss_bytes_of("self")
}

/// Resident memory in bytes (`VmRSS`) of the OS process `pid` (a pid, or `"self"`);
/// `None` when it cannot be read.
pub fn rss_bytes_of(pid: impl std::fmt::Display) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Open file descriptors of this process.
pub fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// The soft limit on open file descriptors of this process.
pub fn fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
