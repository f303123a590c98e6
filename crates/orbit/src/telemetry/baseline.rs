//! "What is normal": a baseline learned over a warm-up window, and the samples that
//! leave it.
//!
//! For each metric (a name), the first `warmup` samples are learned: their mean and
//! standard deviation (Welford's running algorithm). The normal range is then
//! `mean ± max(sigmas × stddev, relative × |mean|, floor)` and stays fixed; every later
//! sample outside it is a [`Deviation`] naming the metric, the range and the value.
//! The relative and absolute floors keep a very steady warm-up (stddev near 0) from
//! flagging ordinary jitter; set the absolute floor per metric with
//! [`Baseline::floor`] (a mailbox that was always empty should still be allowed a few
//! messages).
//!
//! Not for: seasonal patterns (day and night) — learn again with [`Baseline::reset`].

use std::collections::BTreeMap;
use std::fmt;

use super::Snapshot;

/// How a [`Baseline`] learns and judges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineOptions {
    /// Samples learned per metric before judging starts.
    pub warmup: u64,
    /// Half-width of the normal range in standard deviations.
    pub sigmas: f64,
    /// Least half-width as a fraction of the mean's magnitude.
    pub relative: f64,
    /// Least half-width in the metric's unit, for metrics without a [`Baseline::floor`].
    pub floor: f64,
}

impl Default for BaselineOptions {
    /// 20 warm-up samples, 4 standard deviations, at least 25% of the mean.
    fn default() -> Self {
        BaselineOptions {
            warmup: 20,
            sigmas: 4.0,
            relative: 0.25,
            floor: 0.0,
        }
    }
}

/// A metric's learned normal range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normal {
    /// Mean over the warm-up.
    pub mean: f64,
    /// Standard deviation over the warm-up.
    pub stddev: f64,
    /// Lowest normal value.
    pub low: f64,
    /// Highest normal value.
    pub high: f64,
    /// Samples learned.
    pub samples: u64,
}

/// A sample outside its metric's normal range.
#[derive(Debug, Clone, PartialEq)]
pub struct Deviation {
    /// The metric.
    pub metric: String,
    /// Its normal range.
    pub normal: Normal,
    /// The value observed.
    pub observed: f64,
}

impl Deviation {
    /// How many times the normal mean the observed value is (infinite over a zero mean).
    pub fn ratio(&self) -> f64 {
        if self.normal.mean == 0.0 {
            f64::INFINITY
        } else {
            self.observed / self.normal.mean
        }
    }

    /// Whether the value is above the range (else below).
    pub fn is_high(&self) -> bool {
        self.observed > self.normal.high
    }
}

impl fmt::Display for Deviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} is {} its normal range {}..{} (mean {} over {} samples)",
            self.metric,
            num(self.observed),
            if self.is_high() { "above" } else { "below" },
            num(self.normal.low),
            num(self.normal.high),
            num(self.normal.mean),
            self.normal.samples
        )
    }
}

fn num(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[derive(Debug, Clone, Default)]
struct Series {
    n: u64,
    mean: f64,
    m2: f64,
    floor: Option<f64>,
}

/// Learns what is normal for named metrics, then flags deviations.
///
/// ```
/// use orbit::telemetry::{Baseline, BaselineOptions};
///
/// let mut b = Baseline::new(BaselineOptions { warmup: 4, ..Default::default() });
/// for v in [100.0, 104.0, 96.0, 100.0] {
///     assert!(b.observe("requests_per_s", v).is_none()); // learning
/// }
/// assert!(b.observe("requests_per_s", 110.0).is_none()); // within 25% of the mean
/// let d = b.observe("requests_per_s", 400.0).expect("a burst");
/// assert_eq!(d.metric, "requests_per_s");
/// assert_eq!((d.normal.low, d.normal.high), (75.0, 125.0));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    opts: BaselineOptions,
    series: BTreeMap<String, Series>,
}

impl Baseline {
    /// A baseline with nothing learned.
    pub fn new(opts: BaselineOptions) -> Self {
        Baseline {
            opts,
            series: BTreeMap::new(),
        }
    }

    /// Sets the least half-width of `metric`'s normal range, in its unit.
    pub fn floor(&mut self, metric: &str, floor: f64) -> &mut Self {
        self.series.entry(metric.to_string()).or_default().floor = Some(floor);
        self
    }

    /// Learns `value` during the warm-up; afterwards returns a [`Deviation`] when it is
    /// outside the normal range. Non-finite values are ignored.
    pub fn observe(&mut self, metric: &str, value: f64) -> Option<Deviation> {
        if !value.is_finite() {
            return None;
        }
        let s = self.series.entry(metric.to_string()).or_default();
        if s.n < self.opts.warmup {
            s.n += 1;
            let d = value - s.mean;
            s.mean += d / s.n as f64;
            s.m2 += d * (value - s.mean);
            return None;
        }
        let normal = normal(s, &self.opts);
        (value < normal.low || value > normal.high).then(|| Deviation {
            metric: metric.to_string(),
            normal,
            observed: value,
        })
    }

    /// Observes the figures of a system snapshot, as metrics `cpu_percent`, `rss_bytes`,
    /// `open_fds`, `processes` and `max_mailbox_len`.
    pub fn observe_snapshot(&mut self, s: &Snapshot) -> Vec<Deviation> {
        let figures = [
            ("cpu_percent", s.cpu_percent),
            ("rss_bytes", s.rss_bytes.map(|v| v as f64)),
            ("open_fds", s.open_fds.map(|v| v as f64)),
            ("processes", Some(s.processes as f64)),
            ("max_mailbox_len", Some(s.max_mailbox() as f64)),
        ];
        figures
            .into_iter()
            .filter_map(|(m, v)| self.observe(m, v?))
            .collect()
    }

    /// `metric`'s normal range, once its warm-up is over.
    pub fn normal(&self, metric: &str) -> Option<Normal> {
        let s = self.series.get(metric)?;
        (s.n >= self.opts.warmup && s.n > 0).then(|| normal(s, &self.opts))
    }

    /// Whether `metric` is still in its warm-up.
    pub fn is_learning(&self, metric: &str) -> bool {
        !matches!(self.series.get(metric), Some(s) if s.n >= self.opts.warmup)
    }

    /// Forgets everything learned (floors are kept).
    pub fn reset(&mut self) {
        for s in self.series.values_mut() {
            *s = Series {
                floor: s.floor,
                ..Series::default()
            };
        }
    }
}

fn normal(s: &Series, o: &BaselineOptions) -> Normal {
    let stddev = if s.n > 1 {
        (s.m2 / (s.n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let half = (o.sigmas * stddev)
        .max(o.relative * s.mean.abs())
        .max(s.floor.unwrap_or(o.floor));
    Normal {
        mean: s.mean,
        stddev,
        low: s.mean - half,
        high: s.mean + half,
        samples: s.n,
    }
}
