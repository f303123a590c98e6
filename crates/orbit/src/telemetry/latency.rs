//! Latency histograms: HdrHistogram with p50/p90/p99/max.
//!
//! Values are nanoseconds, 1 ns to one hour, 2 significant digits (every recorded value
//! is within 1% of what a percentile reports), about 36 KB per histogram. Larger values
//! are clamped to an hour.

use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

const HIGHEST_NS: u64 = 3_600_000_000_000;
const SIGFIG: u8 = 2;

/// A shared latency histogram.
///
/// Recording takes a short lock; a hot loop records into its own
/// [`Latency::local`] histogram and [`merge`](Latency::merge)s it every few milliseconds.
pub struct Latency {
    h: Mutex<Histogram<u64>>,
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Latency({:?})", self.summary())
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

/// Percentiles of a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest value.
    pub max: Duration,
    /// Mean.
    pub mean: Duration,
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        Latency {
            h: Mutex::new(Self::local()),
        }
    }

    /// An empty unshared histogram with the same bounds, to record into without a lock
    /// and merge later.
    pub fn local() -> Histogram<u64> {
        // The bounds are constants that satisfy hdrhistogram's rules (low >= 1,
        // high >= 2 * low, sigfig <= 5), so creation cannot fail.
        let mut h = Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIG).expect("valid bounds");
        h.auto(false);
        h
    }

    /// Records one value into an unshared histogram made by [`Latency::local`].
    pub fn record_local(h: &mut Histogram<u64>, d: Duration) {
        h.saturating_record(nanos(d));
    }

    /// Records one value.
    pub fn record(&self, d: Duration) {
        self.h.lock().saturating_record(nanos(d));
    }

    /// Adds every value of `other` (made by [`Latency::local`]).
    pub fn merge(&self, other: &Histogram<u64>) {
        // Same bounds on both sides, so `add` cannot fail; a histogram with other bounds
        // is merged value by value.
        let mut h = self.h.lock();
        if h.add(other).is_err() {
            for v in other.iter_recorded() {
                let _ = h.record_n(v.value_iterated_to().min(HIGHEST_NS), v.count_at_value());
            }
        }
    }

    /// Percentiles of everything recorded.
    pub fn summary(&self) -> LatencySummary {
        summarize(&self.h.lock())
    }

    /// Percentiles of everything recorded, and empties the histogram (for interval
    /// series: each call covers the values since the last).
    pub fn take(&self) -> LatencySummary {
        let mut h = self.h.lock();
        let s = summarize(&h);
        h.reset();
        s
    }

    /// Empties the histogram and returns its former content.
    pub fn take_histogram(&self) -> Histogram<u64> {
        let mut h = self.h.lock();
        let out = h.clone();
        h.reset();
        out
    }

    /// Publishes p50, p90, p99 and max as gauges `{name}_seconds{quantile=...}` (max as
    /// `quantile="1"`) through the `metrics` facade.
    pub fn publish(&self, name: &str) {
        let s = self.summary();
        let g = format!("{name}_seconds");
        for (q, d) in [
            ("0.5", s.p50),
            ("0.9", s.p90),
            ("0.99", s.p99),
            ("1", s.max),
        ] {
            metrics::gauge!(g.clone(), "quantile" => q).set(d.as_secs_f64());
        }
    }
}

/// Percentiles of an unshared histogram.
pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    let at = |q: f64| Duration::from_nanos(h.value_at_quantile(q));
    LatencySummary {
        count: h.len(),
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: Duration::from_nanos(h.max()),
        mean: Duration::from_nanos(h.mean() as u64),
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().clamp(1, HIGHEST_NS as u128) as u64
}
