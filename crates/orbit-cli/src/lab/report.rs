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

/// A count with thousands separators.
pub fn count(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Megabytes with one decimal.
pub fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
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
        "variant", "req/s", "p50", "p99", "max", "cpu%", "rss MB", "+heapMB", "mailbox"
    );
    for v in &r.results {
        let _ = writeln!(
            s,
            "  {:<24} {:>11} {:>9} {:>9} {:>9} {:>6.0} {:>8} {:>8} {:>8}",
            v.variant,
            count(v.rps),
            dur(v.latency.p50),
            dur(v.latency.p99),
            dur(v.latency.max),
            v.cpu,
            mb(v.rss_peak),
            mb(v.heap_peak),
            count(v.peak_mailbox as f64),
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
