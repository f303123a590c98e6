//! Hit and miss counts: striped counters for [`Stats`], and the `metrics` facade
//! counters `orbit_cache_hits_total` / `orbit_cache_misses_total` /
//! `orbit_cache_expirations_total` and the gauge `orbit_cache_size` (set after each
//! sweep), all with the label `cache`.
//!
//! Telemetry events (only built when a handler is attached): `[orbit, cache, hit]` and
//! `[orbit, cache, miss]` (`count` = 1; metadata `cache`), `[orbit, cache, expire]`
//! (`count` = items expired by one sweep, `size` = items left; metadata `cache`).
//!
//! The facade counters are registered when the cache starts: install your metrics
//! recorder before starting caches (with none installed they cost a branch).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::hash::Padded;

const STRIPES: usize = 16;

/// Name of the hit counter in the metrics facade.
pub const HITS_METRIC: &str = "orbit_cache_hits_total";
/// Name of the miss counter in the metrics facade.
pub const MISSES_METRIC: &str = "orbit_cache_misses_total";
/// Name of the expiration counter in the metrics facade.
pub const EXPIRATIONS_METRIC: &str = "orbit_cache_expirations_total";
/// Name of the size gauge in the metrics facade (set after each sweep).
pub const SIZE_METRIC: &str = "orbit_cache_size";

/// A counter many threads add to without sharing a cache line.
pub(crate) struct Striped {
    cells: [Padded<AtomicU64>; STRIPES],
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn stripe() -> usize {
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
        s.set(v);
        v
    })
}

impl Striped {
    pub(crate) fn new() -> Self {
        Striped {
            cells: std::array::from_fn(|_| Padded(AtomicU64::new(0))),
        }
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.cells[stripe()].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.cells.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// The counters of one cache.
pub(crate) struct Counters {
    hits: Striped,
    misses: Striped,
    metric_hits: metrics::Counter,
    metric_misses: metrics::Counter,
    metric_expired: metrics::Counter,
    metric_size: metrics::Gauge,
    /// The cache's name (or owner pid), the `cache` label and telemetry metadata.
    label: String,
    expired: AtomicU64,
    sweeps: AtomicU64,
}

impl Counters {
    pub(crate) fn new(label: &str) -> Self {
        let label = label.to_string();
        Counters {
            hits: Striped::new(),
            misses: Striped::new(),
            metric_hits: metrics::counter!(HITS_METRIC, "cache" => label.clone()),
            metric_misses: metrics::counter!(MISSES_METRIC, "cache" => label.clone()),
            metric_expired: metrics::counter!(EXPIRATIONS_METRIC, "cache" => label.clone()),
            metric_size: metrics::gauge!(SIZE_METRIC, "cache" => label.clone()),
            label,
            expired: AtomicU64::new(0),
            sweeps: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn hit(&self) {
        self.hits.add(1);
        self.metric_hits.increment(1);
        crate::telemetry::execute(
            &["orbit", "cache", "hit"],
            &[("count", 1.0)],
            &[("cache", &self.label)],
        );
    }

    #[inline]
    pub(crate) fn miss(&self) {
        self.misses.add(1);
        self.metric_misses.increment(1);
        crate::telemetry::execute(
            &["orbit", "cache", "miss"],
            &[("count", 1.0)],
            &[("cache", &self.label)],
        );
    }

    /// An item found expired by a write (counted as an expiry, no event).
    pub(crate) fn expired_one(&self) {
        self.expired.fetch_add(1, Ordering::Relaxed);
        self.metric_expired.increment(1);
    }

    /// After a sweep: `expired` items went, `size` are left.
    pub(crate) fn swept(&self, expired: usize, size: usize) {
        self.expired.fetch_add(expired as u64, Ordering::Relaxed);
        self.sweeps.fetch_add(1, Ordering::Relaxed);
        self.metric_expired.increment(expired as u64);
        self.metric_size.set(size as f64);
        crate::telemetry::execute(
            &["orbit", "cache", "expire"],
            &[("count", expired as f64), ("size", size as f64)],
            &[("cache", &self.label)],
        );
    }

    pub(crate) fn snapshot(&self, size: usize, queued: usize) -> Stats {
        Stats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            size,
            expired: self.expired.load(Ordering::Relaxed),
            sweeps: self.sweeps.load(Ordering::Relaxed),
            queued,
        }
    }
}

/// A snapshot of a cache's counters ([`ConCache::stats`](super::ConCache::stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reads that found the key (`get`, and the hits of `*_or_store`).
    pub hits: u64,
    /// Reads that did not (`get`, and the misses of `*_or_store` that stored).
    pub misses: u64,
    /// Items now stored.
    pub size: usize,
    /// Items removed by expiry.
    pub expired: u64,
    /// Sweeps run.
    pub sweeps: u64,
    /// Entries on the expiry wheel (each expiring key once, plus stale entries not yet
    /// swept).
    pub queued: usize,
}
