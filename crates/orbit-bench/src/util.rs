//! Shared helpers for the scenarios: the tokio runtime every Rust subject runs on,
//! timing, picking the best of several rounds, and resident-memory reads.
//!
//! Every orbit, tokio, ractor and kameo measurement runs on a fresh multi-thread tokio
//! runtime with [`WORKERS`] worker threads, created before the clock starts and dropped
//! after it stops, so no subject inherits another's leftover tasks. Every BEAM runs with
//! `+S WORKERS:WORKERS`.
//!
//! Statistic (issue 17): every subject, the BEAM included, runs in every round; the
//! headline figure is the median of the rounds, with the best and the spread (min, max)
//! beside it, and the CPU seconds per unit of work (median of rounds).

/// Worker threads of every Rust runtime, and the schedulers (`+S N:N`) of every BEAM.
pub const WORKERS: usize = 2;

/// CPU seconds (user + system) used so far by this process (`who` = `RUSAGE_SELF`) or by
/// its waited-for children (`RUSAGE_CHILDREN`); 0 when unreadable.
pub fn cpu_s(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `f` (one in-process subject-round doing `units` of work), records its rate and
/// the CPU microseconds per unit this process spent on it (all threads: the runtime is
/// created and dropped inside `f`).
pub fn measured(r: &mut Rounds, subject: &'static str, units: u64, f: impl FnOnce() -> f64) {
    measure(r, subject, units, f);
}

/// [`measured`], returning what it recorded: (rate, CPU microseconds per unit).
pub fn measure(
    r: &mut Rounds,
    subject: &'static str,
    units: u64,
    f: impl FnOnce() -> f64,
) -> (f64, f64) {
    let c0 = cpu_s(libc::RUSAGE_SELF);
    let v = f();
    let cpu = cpu_s(libc::RUSAGE_SELF) - c0;
    let cpu_per_unit = cpu * 1e6 / units.max(1) as f64;
    r.add(subject, v);
    r.add_cpu(subject, cpu_per_unit);
    (v, cpu_per_unit)
}

/// One subject's measurement for one round, recording into the round figures.
pub type Step<'a> = Box<dyn FnMut(&mut Rounds) + 'a>;

/// Runs `rounds` rounds of `steps` (one per subject), rotating the order: round `k`
/// starts with step `k % len`, so no subject always runs first or always after the same
/// neighbour (the BEAM's `erl` start, a previous subject's freed memory, ...).
pub fn run_rotated(rounds: usize, steps: &mut [Step<'_>], r: &mut Rounds) {
    for round in 0..rounds {
        for i in rotation(round, steps.len()) {
            (steps[i])(r);
        }
    }
}

/// The order of `n` subjects in round `round`: `round % n`, then the next ones, wrapping.
pub fn rotation(round: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (round + i) % n)
}

/// CPU seconds (user + system, every thread) this process spends in `f`, with its
/// output.
pub fn cpu_of<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let c0 = cpu_s(libc::RUSAGE_SELF);
    let out = f();
    (out, cpu_s(libc::RUSAGE_SELF) - c0)
}

use std::future::Future;
use std::time::Duration;

/// A fresh multi-thread tokio runtime with [`WORKERS`] worker threads and all drivers enabled.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime")
}

/// Worker threads per node from the environment variable `var` when it holds a
/// positive number, else [`WORKERS`] (the scenarios' `ORBIT_BENCH_*_WORKERS`).
pub fn workers_from_env(var: &str) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(WORKERS)
}

/// A child node's multi-thread runtime with `workers` worker threads and all drivers
/// enabled; `None` after saying why on stderr (the hidden child command `cmd` then
/// exits with 1).
pub fn child_runtime(cmd: &str, workers: usize) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("{cmd}: cannot build a tokio runtime: {e}");
            None
        }
    }
}

/// Runs `f` on a fresh 2-worker runtime inside a spawned task (so it starts on a worker
/// thread, as a process or actor would) and returns its output.
pub fn on_runtime<T, F, Fut>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let rt = runtime();
    let fut = f();
    let out = rt.block_on(async move { tokio::spawn(fut).await.expect("benchmark task panicked") });
    rt.shutdown_timeout(Duration::from_secs(5));
    out
}

/// `count / elapsed` in events per second.
pub fn per_s(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The best (largest) of the figures, or `None` when there are none.
pub fn best(xs: &[f64]) -> Option<f64> {
    xs.iter()
        .copied()
        .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.max(x))))
}

/// The smallest of the figures, or `None` when there are none.
pub fn least(xs: &[f64]) -> Option<f64> {
    xs.iter()
        .copied()
        .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.min(x))))
}

/// The median of the figures (the mean of the middle two for an even count), or `None`
/// when there are none.
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
    }
}

/// Resident set size of this process in bytes, from `/proc/self/statm`; 0 when unreadable.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * if page > 0 { page as u64 } else { 4096 }
}

/// The 1-minute load average, from `/proc/loadavg` (`None` when unreadable).
pub fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU microseconds (user + system, all threads) process `pid` (a pid, or `self`) has
/// used so far, from `/proc/PID/stat` (`orbit::telemetry::cpu_time_of`); `None` when
/// unreadable.
pub fn proc_cpu_us(pid: impl std::fmt::Display) -> Option<u64> {
    orbit::telemetry::cpu_time_of(pid).map(|d| d.as_micros() as u64)
}

/// Voluntary context switches (a thread blocked, to be woken again: one wake-up each)
/// of every live thread of process `pid` (`self` for this one), summed from
/// `/proc/PID/task/*/status`; `None` when they cannot be read.
pub fn proc_wakeups(pid: impl std::fmt::Display) -> Option<u64> {
    let mut sum = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        // `None`: the thread just exited.
        sum += task_wakeups(&t.path()).unwrap_or(0);
    }
    Some(sum)
}

/// Voluntary context switches of one thread, from its `/proc` task directory (e.g.
/// `/proc/PID/task/TID`, or `/proc/thread-self` for the calling thread).
fn task_wakeups(task: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(task.join("status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
}

/// Collects one figure per subject per round, in the order the rounds ran.
#[derive(Default)]
pub struct Rounds {
    figures: Vec<(&'static str, f64)>,
    cpu: Vec<(&'static str, f64)>,
}

impl Rounds {
    /// Records one round's figure for `subject`.
    pub fn add(&mut self, subject: &'static str, value: f64) {
        self.figures.push((subject, value));
    }

    /// Records one round's CPU microseconds per unit of work for `subject`.
    pub fn add_cpu(&mut self, subject: &'static str, us_per_unit: f64) {
        self.cpu.push((subject, us_per_unit));
    }

    /// The median of `subject`'s rounds (the headline figure).
    pub fn median(&self, subject: &str) -> Option<f64> {
        median(&self.of(subject))
    }

    /// The median CPU microseconds per unit of work recorded for `subject`.
    pub fn cpu_median(&self, subject: &str) -> Option<f64> {
        let xs: Vec<f64> = self
            .cpu
            .iter()
            .filter(|(s, _)| *s == subject)
            .map(|(_, v)| *v)
            .collect();
        median(&xs)
    }

    /// Every figure recorded for `subject`.
    pub fn of(&self, subject: &str) -> Vec<f64> {
        self.figures
            .iter()
            .filter(|(s, _)| *s == subject)
            .map(|(_, v)| *v)
            .collect()
    }

    /// The best (largest) figure recorded for `subject`.
    pub fn best(&self, subject: &str) -> Option<f64> {
        best(&self.of(subject))
    }

    /// The smallest figure recorded for `subject`.
    pub fn least(&self, subject: &str) -> Option<f64> {
        least(&self.of(subject))
    }
}

/// Re-executes this benchmark binary with `args` (one of its hidden child commands, so a
/// measurement gets a fresh process of its own) and returns the `key value` pairs it
/// printed.
pub fn run_self(args: &[&str]) -> Result<crate::beam::Values, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("exited with {}", out.status));
    }
    Ok(crate::beam::parse_kv(&String::from_utf8_lossy(&out.stdout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that blocks 20 times counts at least 20 wake-ups, and the process's sum
    /// includes it while it lives. (The process's sum alone cannot be compared before
    /// and after: other tests' threads exit meanwhile and leave it, as it says.)
    #[test]
    fn wakeups_count_a_thread_that_sleeps() {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<u64>();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let me = std::path::Path::new("/proc/thread-self");
            let before = task_wakeups(me).expect("own status readable");
            for _ in 0..20 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let after = task_wakeups(me).expect("own status readable");
            assert!(after >= before + 20, "{before} -> {after}");
            let _ = done_tx.send(after);
            // Alive (listed under /proc/self/task) until counted.
            let _ = end_rx.recv();
        });
        let own = done_rx.recv().expect("the thread counted its wake-ups");
        let all = proc_wakeups("self").expect("own threads readable");
        let _ = end_tx.send(());
        t.join().expect("the sleeping thread");
        assert!(
            all >= own,
            "the process's {all} includes the thread's {own}"
        );
    }

    #[test]
    fn proc_cpu_us_reads_this_process_and_grows_with_work() {
        let before = proc_cpu_us("self").expect("/proc/self/stat readable");
        let same = proc_cpu_us(std::process::id()).expect("/proc/PID/stat readable");
        assert!(same >= before);
        // Spin until the kernel has charged this process a tick (10 s at most).
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after == before && t0.elapsed() < std::time::Duration::from_secs(10) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = proc_cpu_us("self").unwrap();
        }
        assert!(after > before, "{before} -> {after} after 10 s of spinning");
        assert!(proc_cpu_us(u32::MAX).is_none(), "no such process");
    }

    #[test]
    fn rotation_starts_one_later_each_round_and_visits_every_subject() {
        let orders: Vec<Vec<usize>> = (0..4).map(|k| rotation(k, 3).collect()).collect();
        assert_eq!(orders, [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 1, 2]]);
        let mut r = Rounds::default();
        let mut steps: Vec<Step> =
            vec![Box::new(|r| r.add("a", 1.0)), Box::new(|r| r.add("b", 2.0))];
        run_rotated(3, &mut steps, &mut r);
        assert_eq!(r.of("a").len(), 3);
        assert_eq!(r.of("b").len(), 3);
    }

    #[test]
    fn median_is_the_middle_or_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
