//! The HTML page of `orbit lab mesh --html FILE`: cost against N, one chart per figure
//! (time to connect, connections, RSS per node, idle CPU per node, broadcast p50), one
//! line per (implementation, topology). Self-contained: the charts are SVG drawn here,
//! no script and no network; the table under them holds every figure.

use std::fmt::Write;

use serde_json::Value;

use super::mesh::{Impl, MeshResult, Topology};

const W: f64 = 420.0;
const H: f64 = 240.0;
const PAD: f64 = 44.0;

/// One figure of a row (`None`: not measured).
type Figure = fn(&MeshResult) -> Option<f64>;

/// The page.
pub fn render(results: &[MeshResult], goals: &Value) -> String {
    let figures: [(&str, Figure); 5] = [
        ("time to connect (ms)", |r| {
            Some(r.connect.as_secs_f64() * 1e3)
        }),
        ("connections", |r| Some(r.connections as f64)),
        ("RSS per node (MB, mean)", |r| Some(r.rss.0 / 1e6)),
        ("idle CPU per node (%, mean)", |r| Some(r.cpu.0)),
        ("broadcast p50 (µs)", |r| {
            let mut ok: Vec<i64> = r.bcast_us.iter().copied().filter(|t| *t >= 0).collect();
            ok.sort_unstable();
            ok.get(ok.len() / 2).map(|v| *v as f64)
        }),
    ];
    let mut charts = String::new();
    for (title, f) in figures {
        charts.push_str(&chart(results, title, f));
    }
    let mut rows = String::new();
    for r in results {
        let j = r.to_json(0.0);
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}/{}</td><td>{:.1}</td><td>{:.2}</td><td>{}</td></tr>",
            j["impl"].as_str().unwrap_or(""),
            r.nodes,
            j["topology"].as_str().unwrap_or(""),
            r.complete,
            r.connect.as_secs_f64() * 1e3,
            r.connections,
            r.expected,
            r.rss.0 / 1e6,
            r.cpu.0,
            j["bcast_us_p50"]
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>orbit lab mesh</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; background: #fafafa; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; margin: 0; padding: .5em; }}
table {{ border-collapse: collapse; background: #fff; }} td, th {{ padding: 2px 10px; text-align: right; border-bottom: 1px solid #eee; }}
</style></head><body>
<h1>orbit lab mesh: the cost of a mesh against N</h1>
<p>Goals (Orbit full mesh of {n}): connect {c:.0} ms (&lt; 2000), idle CPU max {cpu:.2}% (&lt; 1), RSS max {rss:.1} MB (&lt; 20): <b>{met}</b></p>
<div class="charts">{charts}</div>
<h2>Every row</h2>
<table><tr><th>impl</th><th>N</th><th>topology</th><th>complete</th><th>connect ms</th><th>connections</th><th>RSS MB</th><th>CPU %</th><th>bcast p50 µs</th></tr>{rows}</table>
</body></html>
"#,
        n = goals["nodes"],
        c = goals["connect_ms"].as_f64().unwrap_or(0.0),
        cpu = goals["cpu_pct_max"].as_f64().unwrap_or(0.0),
        rss = goals["rss_mb_max"].as_f64().unwrap_or(0.0),
        met = if goals["met"] == true {
            "met"
        } else {
            "not met"
        },
    )
}

fn series() -> [(Impl, Topology, &'static str); 6] {
    [
        (Impl::Orbit, Topology::Full, "#1f77b4"),
        (Impl::Orbit, Topology::Star, "#6baed6"),
        (Impl::Orbit, Topology::Ring, "#9ecae1"),
        (Impl::Beam, Topology::Full, "#d62728"),
        (Impl::Beam, Topology::Star, "#ff7f0e"),
        (Impl::Beam, Topology::Ring, "#fdae6b"),
    ]
}

/// One SVG chart: x = N on a log2 scale, y linear from 0.
fn chart(results: &[MeshResult], title: &str, f: Figure) -> String {
    let pts: Vec<(f64, f64)> = results
        .iter()
        .filter_map(|r| Some((r.nodes as f64, f(r)?)))
        .collect();
    let xmax = pts.iter().map(|p| p.0).fold(2.0, f64::max).log2();
    let ymax = pts.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.1;
    let x = |n: f64| PAD + (n.log2() - 1.0) / (xmax - 1.0).max(1.0) * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD + 10.0 - v / ymax * (H - 1.5 * PAD);
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\">",
        esc(title)
    );
    let _ = write!(
        svg,
        "<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#888\"/><line x1=\"{PAD}\" y1=\"10\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#888\"/><text x=\"4\" y=\"18\" font-size=\"10\">{ymax:.3}</text>",
        b = H - PAD + 10.0,
        r = W - PAD
    );
    let mut ns: Vec<usize> = results.iter().map(|r| r.nodes).collect();
    ns.sort_unstable();
    ns.dedup();
    for n in ns {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{n}</text>",
            x(n as f64),
            H - PAD + 24.0
        );
    }
    for (i, (imp, topo, color)) in series().into_iter().enumerate() {
        let line: Vec<(f64, f64)> = results
            .iter()
            .filter(|r| r.imp == imp && r.topology == topo)
            .filter_map(|r| Some((x(r.nodes as f64), y(f(r)?))))
            .collect();
        if line.is_empty() {
            continue;
        }
        let path: Vec<String> = line.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{color}\">{} {}</text>",
            PAD + 6.0 + 60.0 * (i % 3) as f64,
            H - 4.0 - 11.0 * (i / 3) as f64,
            match imp {
                Impl::Orbit => "orbit",
                Impl::Beam => "beam",
            },
            match topo {
                Topology::Full => "full",
                Topology::Star => "star",
                Topology::Ring => "ring",
            }
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
