//! Pool metrics: the numbers that show a pool is too small.
//!
//! Both pool kinds keep, under their state lock, counters of what happened (checkouts,
//! waits, timeouts, refusals, worker restarts), a wait-time histogram (hdrhistogram,
//! nanoseconds, 3 significant digits; an immediate checkout records 0) and the
//! time-integral of the checked-out count, from which [`PoolStats::utilization`] is the
//! average share of the pool's `size` that was in use since the pool started (above 1.0
//! when overflow workers carried load). [`PoolStats`] is a snapshot; diff two snapshots
//! (`busy_time`, `uptime`, counters) for a window.
//!
//! The same figures go to the [`metrics`] facade with the label `pool` = the pool's
//! name (or its manager's pid): gauges `orbit_pool_checked_out`, `orbit_pool_available`,
//! `orbit_pool_overflow`, `orbit_pool_waiting`, `orbit_pool_utilization` (checked out /
//! size, now), counters `orbit_pool_checkouts_total`, `orbit_pool_timeouts_total`,
//! `orbit_pool_full_total`, `orbit_pool_worker_restarts_total`, and the histogram
//! `orbit_pool_wait_seconds`. Handles are registered when the pool starts, so install
//! the recorder (e.g. a Prometheus exporter) before starting pools.

use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// Wait times of checkouts (served ones; timeouts are counted apart).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WaitTimes {
    /// Checkouts recorded.
    pub count: u64,
    /// Mean wait.
    pub mean: Duration,
    /// Median wait.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Longest wait.
    pub max: Duration,
}

/// A snapshot of a pool's state and history.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolStats {
    /// Configured size (`size` of a [`Pool`](super::Pool), `pool_size` of a
    /// [`ResourcePool`](super::ResourcePool)).
    pub size: usize,
    /// Configured `max_overflow` (0 for resource pools).
    pub max_overflow: usize,
    /// Live workers (resources) now, including checked-out ones.
    pub workers: usize,
    /// Idle workers ready for a checkout.
    pub available: usize,
    /// Workers checked out now.
    pub checked_out: usize,
    /// Overflow workers now (started beyond `size`, stopped on check-in when nobody waits).
    pub overflow: usize,
    /// Callers queued for a worker now.
    pub waiting: usize,
    /// Successful checkouts since start.
    pub checkouts: u64,
    /// Of those, checkouts that had to wait (queued or for an overflow worker to start).
    pub waited: u64,
    /// Checkouts that gave up after their timeout (or whose caller went away while queued).
    pub timeouts: u64,
    /// Non-blocking checkouts refused because the pool was full.
    pub full: u64,
    /// Workers replaced after they died or were removed.
    pub restarts: u64,
    /// Wait-time distribution of successful checkouts.
    pub wait: WaitTimes,
    /// Average checked-out share of `size` since start (`busy_time / (size × uptime)`).
    pub utilization: f64,
    /// Worker-time spent checked out since start (sum over workers).
    pub busy_time: Duration,
    /// Time since the pool started.
    pub uptime: Duration,
}

/// The live counters of one pool, kept under the pool's state lock.
pub(crate) struct Metrics {
    size: usize,
    started: Instant,
    last_change: Instant,
    /// Checked-out count since `last_change`.
    level: usize,
    busy_ns: u128,
    hist: Histogram<u64>,
    pub(crate) checkouts: u64,
    pub(crate) waited: u64,
    pub(crate) timeouts: u64,
    pub(crate) full: u64,
    pub(crate) restarts: u64,
    facade: Facade,
    /// The counts last sent to the gauges (all `usize::MAX` before the first): an
    /// unchanged count is not sent again (a gauge holds its last value).
    shown: Levels,
}

struct Facade {
    checked_out: metrics::Gauge,
    available: metrics::Gauge,
    overflow: metrics::Gauge,
    waiting: metrics::Gauge,
    utilization: metrics::Gauge,
    checkouts: metrics::Counter,
    timeouts: metrics::Counter,
    full: metrics::Counter,
    restarts: metrics::Counter,
    wait: metrics::Histogram,
}

/// The current counts, for [`Metrics::levels`].
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) struct Levels {
    pub(crate) checked_out: usize,
    pub(crate) available: usize,
    pub(crate) overflow: usize,
    pub(crate) waiting: usize,
}

impl Metrics {
    pub(crate) fn new(label: String, size: usize) -> Metrics {
        let now = Instant::now();
        let l = [("pool", label)];
        Metrics {
            size,
            started: now,
            last_change: now,
            level: 0,
            busy_ns: 0,
            // 3 significant digits, auto-resizing: creation cannot fail.
            hist: Histogram::new(3).expect("3 significant digits is a valid precision"),
            checkouts: 0,
            waited: 0,
            timeouts: 0,
            full: 0,
            restarts: 0,
            facade: Facade {
                checked_out: metrics::gauge!("orbit_pool_checked_out", &l),
                available: metrics::gauge!("orbit_pool_available", &l),
                overflow: metrics::gauge!("orbit_pool_overflow", &l),
                waiting: metrics::gauge!("orbit_pool_waiting", &l),
                utilization: metrics::gauge!("orbit_pool_utilization", &l),
                checkouts: metrics::counter!("orbit_pool_checkouts_total", &l),
                timeouts: metrics::counter!("orbit_pool_timeouts_total", &l),
                full: metrics::counter!("orbit_pool_full_total", &l),
                restarts: metrics::counter!("orbit_pool_worker_restarts_total", &l),
                wait: metrics::histogram!("orbit_pool_wait_seconds", &l),
            },
            shown: Levels {
                checked_out: usize::MAX,
                available: usize::MAX,
                overflow: usize::MAX,
                waiting: usize::MAX,
            },
        }
    }

    /// When the pool started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Records the counts after a change, integrating the busy time up to now. Only
    /// the gauges whose count changed since the last call are set (a check-in that
    /// hands its resource straight to a queued caller changes only `waiting`).
    #[inline]
    pub(crate) fn levels(&mut self, l: Levels) {
        if l.checked_out != self.level {
            self.integrate(l.checked_out);
        }
        // `waiting` alone (a caller queues, or a check-in hands its resource on) is
        // set here, without the call.
        if l.waiting != self.shown.waiting {
            self.shown.waiting = l.waiting;
            self.facade.waiting.set(l.waiting as f64);
        }
        if l != self.shown {
            self.show(l);
        }
    }

    /// Adds the busy time of the checked-out count so far, then starts `level`.
    fn integrate(&mut self, level: usize) {
        let now = Instant::now();
        self.busy_ns += self.level as u128 * (now - self.last_change).as_nanos();
        self.last_change = now;
        self.level = level;
    }

    /// Sets the gauges whose count differs from the last ones set.
    fn show(&mut self, l: Levels) {
        let last = std::mem::replace(&mut self.shown, l);
        let f = &self.facade;
        if l.checked_out != last.checked_out {
            f.checked_out.set(l.checked_out as f64);
            f.utilization
                .set(l.checked_out as f64 / self.size.max(1) as f64);
        }
        if l.available != last.available {
            f.available.set(l.available as f64);
        }
        if l.overflow != last.overflow {
            f.overflow.set(l.overflow as f64);
        }
        if l.waiting != last.waiting {
            f.waiting.set(l.waiting as f64);
        }
    }

    /// A checkout served at once.
    pub(crate) fn checkout_now(&mut self) {
        self.checkouts += 1;
        // Recording 0 cannot fail: it is within every histogram's range.
        let _ = self.hist.record(0);
        self.facade.checkouts.increment(1);
        self.facade.wait.record(0.0);
    }

    /// A checkout served after waiting `waited`.
    pub(crate) fn checkout_waited(&mut self, waited: Duration) {
        self.checkouts += 1;
        self.waited += 1;
        // The histogram auto-resizes, so any u64 fits.
        let _ = self
            .hist
            .record(waited.as_nanos().min(u64::MAX as u128) as u64);
        self.facade.checkouts.increment(1);
        self.facade.wait.record(waited.as_secs_f64());
    }

    pub(crate) fn timeout(&mut self) {
        self.timeouts += 1;
        self.facade.timeouts.increment(1);
    }

    pub(crate) fn full(&mut self) {
        self.full += 1;
        self.facade.full.increment(1);
    }

    pub(crate) fn restart(&mut self) {
        self.restarts += 1;
        self.facade.restarts.increment(1);
    }

    /// Fills the history part of a snapshot (counters, waits, utilization).
    pub(crate) fn snapshot(&self, s: &mut PoolStats) {
        let now = Instant::now();
        let busy = self.busy_ns + self.level as u128 * (now - self.last_change).as_nanos();
        let uptime = now - self.started;
        let ns = |v: u64| Duration::from_nanos(v);
        s.checkouts = self.checkouts;
        s.waited = self.waited;
        s.timeouts = self.timeouts;
        s.full = self.full;
        s.restarts = self.restarts;
        s.wait = WaitTimes {
            count: self.hist.len(),
            mean: Duration::from_nanos(self.hist.mean() as u64),
            p50: ns(self.hist.value_at_quantile(0.5)),
            p90: ns(self.hist.value_at_quantile(0.9)),
            p99: ns(self.hist.value_at_quantile(0.99)),
            max: ns(self.hist.max()),
        };
        s.busy_time = Duration::from_nanos(busy.min(u64::MAX as u128) as u64);
        s.uptime = uptime;
        let capacity = self.size.max(1) as f64 * uptime.as_secs_f64();
        s.utilization = if capacity > 0.0 {
            s.busy_time.as_secs_f64() / capacity
        } else {
            0.0
        };
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    use super::*;

    /// A gauge's last value and how many times it was set.
    #[derive(Default)]
    struct Last(Mutex<(f64, u32)>);

    impl GaugeFn for Last {
        fn increment(&self, v: f64) {
            self.0.lock().unwrap().0 += v;
        }
        fn decrement(&self, v: f64) {
            self.0.lock().unwrap().0 -= v;
        }
        fn set(&self, v: f64) {
            let mut g = self.0.lock().unwrap();
            *g = (v, g.1 + 1);
        }
    }

    /// Gauges by name.
    #[derive(Default, Clone)]
    struct Gauges(Arc<Mutex<HashMap<String, Arc<Last>>>>);

    impl Gauges {
        fn get(&self, name: &str) -> (f64, u32) {
            let m = self.0.lock().unwrap();
            m.get(name).map_or((f64::NAN, 0), |g| *g.0.lock().unwrap())
        }
    }

    impl Recorder for Gauges {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            let mut g = self.0.lock().unwrap();
            Gauge::from_arc(g.entry(key.name().to_string()).or_default().clone())
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    fn levels(checked_out: usize, available: usize, waiting: usize) -> Levels {
        Levels {
            checked_out,
            available,
            overflow: 0,
            waiting,
        }
    }

    #[test]
    fn gauges_follow_the_counts_and_unchanged_ones_are_not_set_again() {
        let rec = Gauges::default();
        let mut m = metrics::with_local_recorder(&rec, || Metrics::new("p".into(), 4));
        // The first call sets every gauge, even to zero.
        m.levels(levels(0, 4, 0));
        for name in [
            "orbit_pool_checked_out",
            "orbit_pool_overflow",
            "orbit_pool_waiting",
        ] {
            assert_eq!(rec.get(name), (0.0, 1), "{name}");
        }
        assert_eq!(rec.get("orbit_pool_available"), (4.0, 1));
        assert_eq!(rec.get("orbit_pool_utilization"), (0.0, 1));
        m.levels(levels(1, 3, 0));
        assert_eq!(rec.get("orbit_pool_checked_out"), (1.0, 2));
        assert_eq!(rec.get("orbit_pool_available"), (3.0, 2));
        assert_eq!(rec.get("orbit_pool_utilization"), (0.25, 2));
        assert_eq!(rec.get("orbit_pool_waiting"), (0.0, 1));
        // A caller queues, then a check-in hands the resource straight on: only
        // `waiting` moves.
        m.levels(levels(1, 3, 1));
        m.levels(levels(1, 3, 0));
        assert_eq!(rec.get("orbit_pool_waiting"), (0.0, 3));
        assert_eq!(rec.get("orbit_pool_checked_out"), (1.0, 2));
        assert_eq!(rec.get("orbit_pool_available"), (3.0, 2));
        assert_eq!(rec.get("orbit_pool_utilization"), (0.25, 2));
        assert_eq!(rec.get("orbit_pool_overflow"), (0.0, 1));
        // Every gauge holds the current count whatever the history.
        m.levels(levels(4, 0, 2));
        assert_eq!(rec.get("orbit_pool_checked_out").0, 4.0);
        assert_eq!(rec.get("orbit_pool_available").0, 0.0);
        assert_eq!(rec.get("orbit_pool_waiting").0, 2.0);
        assert_eq!(rec.get("orbit_pool_utilization").0, 1.0);
    }
}
