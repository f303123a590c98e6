//! A latency histogram for the hot path of one thread's shard: counts in
//! hdrhistogram's own buckets (the bounds and precision of
//! `orbit::telemetry::Latency::local`: 1 ns to an hour, 2 significant digits), recorded
//! with a shift and an add (no minimum, maximum or total kept on the way), and turned
//! into an hdrhistogram when a snapshot reads it.

use hdrhistogram::Histogram;

/// Half the sub-buckets of a bucket, as a power of two: 2 significant digits need 200
/// distinct values per bucket, so 256 sub-buckets, the upper 128 per bucket after the
/// first.
const HALF_MAG: u32 = 7;
const HALF: usize = 1 << HALF_MAG;
/// Values below this share bucket 0, one sub-bucket each.
const SUB_MASK: u64 = (1 << (HALF_MAG + 1)) - 1;
/// Leading zeros of the first value past bucket 0's range.
const LZ_BASE: u32 = 64 - (HALF_MAG + 1);
/// The largest value kept (larger ones are recorded as this), as `Latency`'s.
const HIGHEST_NS: u64 = 3_600_000_000_000;
/// Counters needed up to [`HIGHEST_NS`].
const LEN: usize = index(HIGHEST_NS) + 1;

/// The counter of `v` (hdrhistogram's `index_for` with a unit of 1).
const fn index(v: u64) -> usize {
    let bucket = LZ_BASE - (v | SUB_MASK).leading_zeros();
    let sub = (v >> bucket) as usize;
    ((bucket as usize + 1) << HALF_MAG) + sub - HALF
}

/// The lowest value counted by counter `i` (the inverse of [`index`]).
fn value_of(i: usize) -> u64 {
    let bucket = (i >> HALF_MAG) as i64 - 1;
    let sub = ((i & (HALF - 1)) + HALF) as u64;
    if bucket < 0 {
        sub - HALF as u64
    } else {
        sub << bucket
    }
}

/// Counts of latencies in nanoseconds.
pub(super) struct Flat {
    counts: Box<[u64]>,
}

impl Flat {
    pub(super) fn new() -> Flat {
        Flat {
            counts: vec![0; LEN].into_boxed_slice(),
        }
    }

    /// Counts one latency of `ns` nanoseconds.
    #[inline]
    pub(super) fn record(&mut self, ns: u64) {
        if let Some(c) = self.counts.get_mut(index(ns.min(HIGHEST_NS))) {
            *c += 1;
        }
    }

    /// Adds every latency counted here to `h` (made by `Latency::local`).
    pub(super) fn add_to(&self, h: &mut Histogram<u64>) {
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                let _ = h.record_n(value_of(i).min(HIGHEST_NS), c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbit::telemetry::{summarize, Latency};
    use std::time::Duration;

    #[test]
    fn counts_land_in_the_buckets_hdrhistogram_uses() {
        let mut flat = Flat::new();
        let mut hdr = Latency::local();
        let mut v: u64 = 0;
        while v < HIGHEST_NS * 2 {
            flat.record(v);
            Latency::record_local(&mut hdr, Duration::from_nanos(v));
            assert_eq!(
                value_of(index(v.min(HIGHEST_NS))),
                hdr.lowest_equivalent(v.min(HIGHEST_NS)),
                "{v}"
            );
            v = v * 3 / 2 + 1;
        }
        let mut from_flat = Latency::local();
        flat.add_to(&mut from_flat);
        assert_eq!(from_flat.len(), hdr.len());
        let (a, b) = (summarize(&from_flat), summarize(&hdr));
        assert_eq!((a.p50, a.p99, a.max), (b.p50, b.p99, b.max));
        for q in [0.1, 0.5, 0.9, 0.999] {
            assert_eq!(
                from_flat.value_at_quantile(q),
                hdr.value_at_quantile(q),
                "{q}"
            );
        }
    }
}
