//! Recent handling times of one process, for its page: the runtime keeps only running
//! totals per process (messages handled, time spent handling them), so the observer
//! samples those totals each time the page is read and keeps, per watched process, the
//! last [`INTERVALS`] differences: each interval's messages and mean handling time,
//! and p50/p99 over those means weighted by messages.
//!
//! Cost: nothing on the hot path (the counters exist already and are only read), and
//! nothing at all until a process page is opened; at most [`WATCHED`] processes are
//! kept, the least recently read one dropped first, and one not read for a minute is
//! forgotten. The p50/p99 are of per-interval means, not of single messages (a single
//! slow message inside a busy interval is averaged out; the long-handler count shows
//! those).

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use orbit::Pid;
use parking_lot::Mutex;
use serde::Serialize;

/// Intervals kept per process.
pub const INTERVALS: usize = 60;
/// Processes watched at once.
pub const WATCHED: usize = 64;
/// Samples closer than this to the previous one are not kept (several viewers).
const MIN_GAP: Duration = Duration::from_millis(200);
/// A process not read for this long is forgotten.
const FORGET: Duration = Duration::from_secs(60);

/// One interval between two reads of a process's page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HandlingInterval {
    /// Seconds from the end of the interval to now.
    pub ago_s: f64,
    /// Its length, seconds.
    pub seconds: f64,
    /// Messages handled in it.
    pub handled: u64,
    /// Mean handling time of those messages, µs (0 when none).
    pub mean_us: f64,
}

/// A process's recent handling times.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct RecentHandling {
    /// The intervals, oldest first.
    pub intervals: Vec<HandlingInterval>,
    /// Median of the intervals' mean handling times, weighted by messages, µs (`None`
    /// before any message was handled while watched).
    pub p50_us: Option<f64>,
    /// 99th percentile of the same, µs.
    pub p99_us: Option<f64>,
}

struct Watch {
    /// `(when, handled, handling_ns)`, oldest first; one more than the intervals.
    samples: VecDeque<(Instant, u64, u128)>,
    read: Instant,
}

fn watched() -> &'static Mutex<HashMap<Pid, Watch>> {
    static W: OnceLock<Mutex<HashMap<Pid, Watch>>> = OnceLock::new();
    W.get_or_init(Default::default)
}

/// Records the totals of `pid` read now and returns its recent handling times.
pub fn observe(pid: Pid, handled: u64, handling: Duration) -> RecentHandling {
    let now = Instant::now();
    let mut w = watched().lock();
    w.retain(|_, v| now.duration_since(v.read) < FORGET);
    if !w.contains_key(&pid) && w.len() >= WATCHED {
        if let Some(oldest) = w.iter().min_by_key(|(_, v)| v.read).map(|(p, _)| *p) {
            w.remove(&oldest);
        }
    }
    let watch = w.entry(pid).or_insert_with(|| Watch {
        samples: VecDeque::with_capacity(INTERVALS + 1),
        read: now,
    });
    watch.read = now;
    let ns = handling.as_nanos();
    let keep = watch
        .samples
        .back()
        .is_none_or(|(t, h, _)| now.duration_since(*t) >= MIN_GAP || handled < *h);
    if keep {
        // Counters never go down for one process; if they did, start again.
        if watch.samples.back().is_some_and(|(_, h, _)| handled < *h) {
            watch.samples.clear();
        }
        watch.samples.push_back((now, handled, ns));
        while watch.samples.len() > INTERVALS + 1 {
            watch.samples.pop_front();
        }
    }
    summarize(&watch.samples, now)
}

fn summarize(samples: &VecDeque<(Instant, u64, u128)>, now: Instant) -> RecentHandling {
    let intervals: Vec<HandlingInterval> = samples
        .iter()
        .zip(samples.iter().skip(1))
        .map(|((t0, h0, n0), (t1, h1, n1))| {
            let handled = h1.saturating_sub(*h0);
            HandlingInterval {
                ago_s: now.duration_since(*t1).as_secs_f64(),
                seconds: t1.duration_since(*t0).as_secs_f64(),
                handled,
                mean_us: if handled == 0 {
                    0.0
                } else {
                    n1.saturating_sub(*n0) as f64 / handled as f64 / 1e3
                },
            }
        })
        .collect();
    let mut weighted: Vec<(f64, u64)> = intervals
        .iter()
        .filter(|i| i.handled > 0)
        .map(|i| (i.mean_us, i.handled))
        .collect();
    weighted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = weighted.iter().map(|w| w.1).sum();
    let quantile = |q: f64| {
        let target = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        weighted.iter().find_map(|(v, n)| {
            seen += n;
            (seen >= target).then_some(*v)
        })
    };
    RecentHandling {
        p50_us: quantile(0.5),
        p99_us: quantile(0.99),
        intervals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_quantiles_of_interval_means() {
        let t = Instant::now();
        let s = |ms: u64, h: u64, us: u128| (t + Duration::from_millis(ms), h, us * 1000);
        // 100 messages at 10 µs, then 2 at 5000 µs, then nothing.
        let samples: VecDeque<_> = [
            s(0, 0, 0),
            s(1000, 100, 1000),
            s(2000, 102, 11_000),
            s(3000, 102, 11_000),
        ]
        .into_iter()
        .collect();
        let r = summarize(&samples, t + Duration::from_millis(3000));
        assert_eq!(r.intervals.len(), 3);
        assert_eq!(r.intervals[0].handled, 100);
        assert!((r.intervals[0].mean_us - 10.0).abs() < 1e-9);
        assert!((r.intervals[1].mean_us - 5000.0).abs() < 1e-9);
        assert_eq!(r.intervals[2].handled, 0);
        assert_eq!(r.p50_us, Some(10.0));
        assert_eq!(r.p99_us, Some(5000.0));
        assert_eq!(summarize(&VecDeque::new(), t).p50_us, None);
    }
}
