//! Reconnect delays: DBConnection's `rand_exp` backoff (`db_connection/backoff.ex`).
//!
//! Each delay is drawn uniformly from `[min(prev, lower), min(prev × 3, max)]`, starting
//! from `prev = min`, so delays grow about threefold per failure up to `max`, with jitter
//! so that the connections of a pool (and of many nodes) do not reconnect in lockstep
//! when a database comes back. Each connect loop starts a fresh sequence.

use std::time::Duration;

/// The reconnect delay sequence of one connection slot.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: u64,
    max: u64,
    prev: u64,
    rng: u64,
}

impl Backoff {
    /// A sequence between `min` and `max` (milliseconds resolution, at least 1 ms).
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let min = (min.as_millis() as u64).max(1);
        let max = (max.as_millis() as u64).max(min);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Backoff {
            min,
            max,
            prev: min,
            rng: seed | 1,
        }
    }

    /// The next delay.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let lo = self.prev.min(self.min);
        let hi = self.prev.saturating_mul(3).min(self.max).max(lo);
        // xorshift64: jitter only, not for anything secret.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let next = lo + self.rng % (hi - lo + 1);
        self.prev = next;
        Duration::from_millis(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_bounds_and_grow() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(2000));
        let mut last = Duration::ZERO;
        for _ in 0..200 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(2000));
            last = last.max(d);
        }
        assert!(last > Duration::from_millis(300), "never grew: {last:?}");
    }
}
