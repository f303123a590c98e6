//! Events per second over sliding windows.
//!
//! Each window is a ring of buckets: the second is 10 buckets of 100 ms, the minute 60
//! of 1 s, the hour 60 of 1 min. Marking adds to the current bucket of each ring (after
//! clearing the buckets that time has passed over); reading sums a ring. A window's rate
//! is its sum divided by the window's length, or by the time since the rate was created
//! while that is shorter, so a fresh rate is not diluted by time it did not exist. The
//! oldest bucket still counts whole, so a rate reads high by at most one bucket's share
//! (10% for the second).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Clock, SystemClock};

/// One ring of buckets.
#[derive(Debug)]
struct Window {
    buckets: Vec<u64>,
    width_ns: u64,
    /// Absolute index (time / width) of the newest bucket.
    head: u64,
}

impl Window {
    fn new(len: usize, width: Duration) -> Self {
        Window {
            buckets: vec![0; len],
            width_ns: width.as_nanos().max(1) as u64,
            head: 0,
        }
    }

    fn span(&self) -> Duration {
        Duration::from_nanos(self.width_ns * self.buckets.len() as u64)
    }

    /// Clears the buckets between the newest one and `now`'s.
    fn advance(&mut self, now_ns: u64) {
        let idx = now_ns / self.width_ns;
        if idx <= self.head {
            return;
        }
        let len = self.buckets.len() as u64;
        let stale = (idx - self.head).min(len);
        for i in 0..stale {
            let slot = ((idx - i) % len) as usize;
            self.buckets[slot] = 0;
        }
        self.head = idx;
    }

    fn add(&mut self, now_ns: u64, n: u64) {
        self.advance(now_ns);
        let slot = (self.head % self.buckets.len() as u64) as usize;
        self.buckets[slot] = self.buckets[slot].saturating_add(n);
    }

    fn sum(&mut self, now_ns: u64) -> u64 {
        self.advance(now_ns);
        self.buckets.iter().sum()
    }
}

#[derive(Debug)]
struct Windows {
    second: Window,
    minute: Window,
    hour: Window,
    total: u64,
}

/// A counter of events with per-second, per-minute and per-hour rates.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use orbit::telemetry::{ManualClock, Rate};
///
/// let clock = Arc::new(ManualClock::new());
/// let rate = Rate::with_clock(clock.clone());
/// clock.advance(Duration::from_secs(60));
/// rate.mark(300);
/// clock.advance(Duration::from_millis(500));
/// rate.mark(200);
/// let now = rate.snapshot();
/// assert_eq!(now.per_second, 500.0); // 500 in the last second
/// assert_eq!(now.per_minute, 500.0 / 60.0);
/// ```
pub struct Rate {
    clock: Arc<dyn Clock>,
    created: Duration,
    inner: Mutex<Windows>,
}

impl std::fmt::Debug for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rate")
            .field("windows", &self.inner)
            .finish()
    }
}

impl Default for Rate {
    fn default() -> Self {
        Self::new()
    }
}

/// The rates of a [`Rate`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSnapshot {
    /// Events per second over the last second.
    pub per_second: f64,
    /// Events per second over the last minute.
    pub per_minute: f64,
    /// Events per second over the last hour.
    pub per_hour: f64,
    /// Events ever marked.
    pub total: u64,
}

impl Rate {
    /// A rate on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock::new()))
    }

    /// A rate on `clock` (a [`ManualClock`](super::ManualClock) in tests).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let created = clock.now();
        Rate {
            clock,
            created,
            inner: Mutex::new(Windows {
                second: Window::new(10, Duration::from_millis(100)),
                minute: Window::new(60, Duration::from_secs(1)),
                hour: Window::new(60, Duration::from_secs(60)),
                total: 0,
            }),
        }
    }

    /// Counts `n` events now.
    pub fn mark(&self, n: u64) {
        let now = self.now_ns();
        let mut w = self.inner.lock();
        w.second.add(now, n);
        w.minute.add(now, n);
        w.hour.add(now, n);
        w.total = w.total.saturating_add(n);
    }

    /// The current rates.
    pub fn snapshot(&self) -> RateSnapshot {
        let now = self.now_ns();
        let alive = self.clock.now().saturating_sub(self.created);
        let mut w = self.inner.lock();
        let per = |sum: u64, span: Duration| -> f64 {
            let secs = span.min(alive.max(Duration::from_millis(1))).as_secs_f64();
            sum as f64 / secs
        };
        let (s_span, m_span, h_span) = (w.second.span(), w.minute.span(), w.hour.span());
        RateSnapshot {
            per_second: per(w.second.sum(now), s_span),
            per_minute: per(w.minute.sum(now), m_span),
            per_hour: per(w.hour.sum(now), h_span),
            total: w.total,
        }
    }

    /// Publishes the rates as gauges `{name}_per_second{window="1s"|"1m"|"1h"}` and the
    /// total as the gauge `{name}_total` through the `metrics` facade.
    pub fn publish(&self, name: &str) {
        let s = self.snapshot();
        let per = format!("{name}_per_second");
        metrics::gauge!(per.clone(), "window" => "1s").set(s.per_second);
        metrics::gauge!(per.clone(), "window" => "1m").set(s.per_minute);
        metrics::gauge!(per, "window" => "1h").set(s.per_hour);
        metrics::gauge!(format!("{name}_total")).set(s.total as f64);
    }

    fn now_ns(&self) -> u64 {
        self.clock.now().as_nanos().min(u64::MAX as u128) as u64
    }
}
