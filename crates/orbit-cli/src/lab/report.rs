//! Printing a scenario's report: a table for people, JSON lines for programs.

use std::fmt::Write;
use std::time::Duration;

use serde_json::json;

use super::Report;

/// A duration the way a person reads it: 850ns, 12.3µs, 4.5ms, 1.20s.
pub fn dur(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.1}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

/// A number the way a person reads it, the one formatter of every figure the lab
/// prints: three significant digits and a k/M/G suffix (`1.46 M`, `12.3 k`, `850`,
/// `0.25`); negative values keep their sign, non-finite ones print as `-`.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    let (scaled, suffix) = if a >= 999.5e6 {
        (v / 1e9, " G")
    } else if a >= 999.5e3 {
        (v / 1e6, " M")
    } else if a >= 9999.5 {
        (v / 1e3, " k")
    } else {
        (v, "")
    };
    let s = scaled.abs();
    let whole = suffix.is_empty() && scaled == scaled.trunc();
    let body = if whole || s >= 99.95 {
        format!("{scaled:.0}")
    } else if s >= 9.995 {
        format!("{scaled:.1}")
    } else {
        format!("{scaled:.2}")
    };
    format!("{body}{suffix}")
}

/// Megabytes with one decimal.
pub fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// A signed change of memory in megabytes with one decimal (`+12.3`, `-0.4`).
pub fn mb_delta(bytes: i64) -> String {
    format!("{:+.1}", bytes as f64 / 1e6)
}

/// `x` rounded to two decimal places (ratios and megabytes in the JSON facts).
pub fn hundredths(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The human-readable table.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "== {} — {}", r.scenario, r.title);
    let _ = writeln!(
        s,
        "  {:<24} {:>11} {:>9} {:>9} {:>9} {:>6} {:>8} {:>8} {:>8}",
        "variant", "req/s", "p50", "p99", "max", "cpu%", "+rss MB", "+heapMB", "mailbox"
    );
    for v in &r.results {
        let _ = writeln!(
            s,
            "  {:<24} {:>11} {:>9} {:>9} {:>9} {:>6.0} {:>8} {:>8} {:>8}",
            v.variant,
            num(v.rps),
            dur(v.latency.p50),
            dur(v.latency.p99),
            dur(v.latency.max),
            v.cpu,
            mb_delta(v.rss_delta()),
            mb(v.heap_peak),
            num(v.peak_mailbox as f64),
        );
    }
    let _ = writeln!(s, "  verdict: {}\n", r.verdict);
    s
}

/// One JSON object per result, then one for the verdict.
pub fn json_lines(r: &Report) -> String {
    let mut s = String::new();
    for v in &r.results {
        let _ = writeln!(s, "{}", v.to_json());
    }
    let verdict = json!({
        "kind": "verdict",
        "scenario": r.scenario,
        "title": r.title,
        "bottleneck": r.bottleneck,
        "verdict": r.verdict,
        "facts": r.facts,
    });
    let _ = writeln!(s, "{verdict}");
    s
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numbers_read_like_a_person_writes_them() {
        assert_eq!(num(1_457_734.0), "1.46 M");
        assert_eq!(num(12_345.0), "12.3 k");
        assert_eq!(num(9_999.0), "9999");
        assert_eq!(num(850.0), "850");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(999_999.0), "1.00 M");
        assert_eq!(num(2.5e9), "2.50 G");
        assert_eq!(num(-1_500_000.0), "-1.50 M");
        assert_eq!(num(f64::NAN), "-");
    }
}
