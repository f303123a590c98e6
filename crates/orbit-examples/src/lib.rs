//! Helpers shared by the runnable examples in `examples/` (one per lesson of scaling on
//! the BEAM, issue 18). Run one with `cargo run -p orbit-examples --example NAME`, or
//! all of them with `scripts/examples`.
//!
//! Every example finishes in a few seconds with small counts; the environment variable
//! `ORBIT_EXAMPLE_SCALE` (default 1) multiplies the counts for bigger runs.

use std::time::Duration;

/// The multiplier of the examples' counts: `ORBIT_EXAMPLE_SCALE` (default 1; a value
/// that is not a positive integer counts as 1).
pub fn scale() -> u64 {
    std::env::var("ORBIT_EXAMPLE_SCALE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// `n` times [`scale`].
pub fn scaled(n: u64) -> u64 {
    n.saturating_mul(scale())
}

/// `count` operations in `elapsed`, per second, as a short human string (`1.23M/s`).
pub fn rate(count: u64, elapsed: Duration) -> String {
    let per_s = count as f64 / elapsed.as_secs_f64().max(1e-9);
    if per_s >= 1e6 {
        format!("{:.2}M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1}k/s", per_s / 1e3)
    } else {
        format!("{per_s:.0}/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_people_write_them() {
        assert_eq!(rate(2_500_000, Duration::from_secs(1)), "2.50M/s");
        assert_eq!(rate(1500, Duration::from_millis(500)), "3.0k/s");
        assert_eq!(rate(10, Duration::from_secs(2)), "5/s");
    }
}
