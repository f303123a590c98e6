//! The HTML report: one self-contained page (no network). A header says where and when
//! it ran (Orbit's version, date, CPUs, host and CPU model); a card per scenario holds
//! its table, the resident memory the scenario added, its verdict and three charts
//! (latency p99 over time, throughput, heap memory), one line per variant. The data is
//! embedded as JSON; a small inline script draws each chart as SVG with ticked axes in
//! a unit chosen by the range (µs/ms/s, kB/MB/GB, ms/s), vertical markers where the
//! scenario says something happened (the spike's burst and its flag), and marks it
//! `data-rendered="true"` (which the lab's test checks in a headless browser).

use std::fmt::Write;

use serde_json::{json, Value};

use super::machine::Machine;
use super::report::{dur, mb, mb_delta, num};
use super::{Options, Report};

/// The resident memory around one scenario: what it added, not the process total.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioMemory {
    /// RSS just before the scenario started, bytes.
    pub before: u64,
    /// The highest RSS sampled while it ran, bytes.
    pub peak: u64,
}

impl ScenarioMemory {
    /// The memory of `report`'s scenario, which started with `before` bytes resident.
    pub fn of(before: u64, report: &Report) -> ScenarioMemory {
        let peak = report
            .results
            .iter()
            .map(|r| r.rss_peak)
            .max()
            .unwrap_or(before);
        ScenarioMemory { before, peak }
    }

    /// Bytes the scenario added at its peak (negative if it ended below its start).
    pub fn delta(&self) -> i64 {
        self.peak as i64 - self.before as i64
    }
}

/// Where a scenario's facts say something happened, as chart markers: (fact, kind, label).
const MARKERS: [(&str, &str, &str); 2] = [
    ("burst_start_s", "burst", "burst began"),
    ("flagged_at_s", "flagged", "flagged"),
];

/// The page for `reports` (with `memory[i]` the memory of `reports[i]`).
pub fn render(reports: &[Report], memory: &[ScenarioMemory], opts: &Options) -> String {
    let machine = Machine::current();
    let data: Vec<Value> = reports
        .iter()
        .map(|r| {
            let markers: Vec<Value> = MARKERS
                .iter()
                .filter_map(|(fact, kind, label)| {
                    let t = r.facts.get(*fact)?.as_f64()?;
                    Some(json!({"t": t, "kind": kind, "label": label}))
                })
                .collect();
            json!({
                "scenario": r.scenario,
                "markers": markers,
                "variants": r.results.iter().map(|v| json!({
                    "name": v.variant,
                    "t": v.series.iter().map(|p| p.t).collect::<Vec<_>>(),
                    "p99": v.series.iter().map(|p| p.p99_us).collect::<Vec<_>>(),
                    "rps": v.series.iter().map(|p| p.rps).collect::<Vec<_>>(),
                    "heap": v.series.iter().map(|p| p.heap_mb).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    // `</` inside a script element would end it early.
    let data = Value::Array(data).to_string().replace("</", "<\\/");
    let mut cards = String::new();
    for (i, r) in reports.iter().enumerate() {
        let _ = write!(
            cards,
            "<section class=\"card\" id=\"{s}\"><h2>{s}</h2><p class=\"title\">{t}</p><table><tr><th>variant</th><th>req/s</th><th>p50</th><th>p99</th><th>max</th><th>cpu %</th><th>+rss MB</th><th>+heap MB</th><th>mailbox</th></tr>",
            s = esc(r.scenario),
            t = esc(&r.title)
        );
        for v in &r.results {
            let _ = write!(
                cards,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&v.variant),
                num(v.rps),
                dur(v.latency.p50),
                dur(v.latency.p99),
                dur(v.latency.max),
                v.cpu,
                mb_delta(v.rss_delta()),
                mb(v.heap_peak),
                num(v.peak_mailbox as f64)
            );
        }
        cards.push_str("</table>");
        if let Some(m) = memory.get(i) {
            let _ = write!(
                cards,
                "<p class=\"memory\" data-rss-delta-bytes=\"{}\">memory: this scenario added {} MB resident at its peak ({} MB before it, {} MB at its peak)</p>",
                m.delta(),
                mb_delta(m.delta()),
                mb(m.before),
                mb(m.peak)
            );
        }
        let _ = write!(
            cards,
            "<p class=\"verdict\">{}</p><div class=\"charts\">",
            esc(&r.verdict)
        );
        for (metric, label) in [
            ("p99", "latency p99"),
            ("rps", "throughput"),
            ("heap", "heap in use"),
        ] {
            let _ = write!(
                cards,
                "<figure><figcaption>{label}</figcaption><div class=\"chart\" data-scenario=\"{}\" data-metric=\"{metric}\"></div></figure>",
                esc(r.scenario)
            );
        }
        cards.push_str("</div></section>\n");
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>orbit lab</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; background: #fafafa; }}
.card {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 1em 1.5em; margin-bottom: 1.5em; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 10px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
table.run td, table.run th {{ text-align: left; padding: 1px 12px 1px 0; }}
.verdict {{ font-weight: 600; }} .memory {{ color: #444; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; }} figcaption {{ font-size: 12px; color: #555; }}
.legend {{ font-size: 11px; }} .tick {{ font-size: 10px; fill: #444; }}
.marker-label {{ font-size: 10px; }}
</style></head><body>
<header id="run"><h1>orbit lab</h1>
<table class="run">
<tr><th>Orbit</th><td id="orbit-version">{version}</td></tr>
<tr><th>date</th><td id="run-date">{date}</td></tr>
<tr><th>CPUs</th><td id="cpus">{cpus}</td></tr>
<tr><th>machine</th><td id="machine">{host} — {model}</td></tr>
<tr><th>load</th><td>{clients} client processes, {duration:?} per variant</td></tr>
</table></header>
{cards}
<script type="application/json" id="lab-data">{data}</script>
<script>
(function () {{
  const data = JSON.parse(document.getElementById('lab-data').textContent);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
  const NS = 'http://www.w3.org/2000/svg';
  const W = 330, H = 200, L = 46, B = 34, T = 16, R = 12;
  function el(name, attrs, parent) {{
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }}
  // Three significant digits and a k/M/G suffix, as the verdicts print numbers.
  function human(n) {{
    const a = Math.abs(n);
    if (a >= 999.5e6) return +(n / 1e9).toPrecision(3) + ' G';
    if (a >= 999.5e3) return +(n / 1e6).toPrecision(3) + ' M';
    if (a >= 9999.5) return +(n / 1e3).toPrecision(3) + ' k';
    return String(+n.toPrecision(3));
  }}
  function niceStep(range, n) {{
    const raw = range / n, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }}
  function linTicks(lo, hi, n) {{
    const s = niceStep(hi - lo, n), out = [];
    for (let v = Math.ceil(lo / s - 1e-9) * s; v <= hi + s * 1e-6; v += s) out.push(+v.toPrecision(12));
    return out;
  }}
  // Ticks of a log axis spanning whole decades [lo, hi] (exponents).
  function logTicks(lo, hi) {{
    const mult = hi - lo <= 1 ? [1, 2, 5] : hi - lo <= 2 ? [1, 3] : [1], out = [];
    for (let k = lo; k <= hi; k++) for (const m of mult) if (k + Math.log10(m) <= hi + 1e-9) out.push(Math.pow(10, k) * m);
    return out;
  }}
  // The unit of an axis, chosen by the largest value plotted: [name, divisor].
  function unit(metric, max) {{
    if (metric === 'p99') return max < 1e3 ? ['µs', 1] : max < 1e6 ? ['ms', 1e3] : ['s', 1e6];
    if (metric === 'heap') return max < 1 ? ['kB', 1e-3] : max < 1e3 ? ['MB', 1] : ['GB', 1e3];
    return ['req/s', 1];
  }}
  for (const chart of document.querySelectorAll('.chart')) {{
    const sc = data.find(s => s.scenario === chart.dataset.scenario);
    const metric = chart.dataset.metric;
    const log = metric !== 'heap';
    const rows = Math.ceil(sc.variants.length / 2);
    const svg = el('svg', {{ width: W, height: H + 20 * rows, viewBox: '0 0 ' + W + ' ' + (H + 20 * rows) }});
    let tmax = 0, vmin = Infinity, vmax = -Infinity;
    const pos = v => Math.max(v, 0.01);
    for (const v of sc.variants) {{
      for (let i = 0; i < v.t.length; i++) {{
        const y = log ? pos(v[metric][i]) : v[metric][i];
        tmax = Math.max(tmax, v.t[i]);
        vmin = Math.min(vmin, y);
        vmax = Math.max(vmax, y);
      }}
    }}
    for (const m of sc.markers) tmax = Math.max(tmax, m.t);
    if (!isFinite(vmin)) {{ vmin = log ? 1 : 0; vmax = log ? 10 : 1; }}
    let ymin, ymax, ticks, f;
    if (log) {{
      f = v => Math.log10(pos(v));
      ymin = Math.floor(Math.log10(vmin));
      ymax = Math.max(Math.ceil(Math.log10(vmax)), ymin + 1);
      ticks = logTicks(ymin, ymax);
    }} else {{
      f = v => v;
      ymin = Math.min(vmin, 0);
      if (vmax - ymin < 1e-9) vmax = ymin + 1;
      ticks = linTicks(ymin, vmax, 4);
      ymax = Math.max(vmax, ticks[ticks.length - 1]);
    }}
    const [uname, udiv] = unit(metric, vmax);
    chart.dataset.unit = uname;
    const cap = chart.parentElement.querySelector('figcaption');
    cap.textContent += ' (' + uname + (log ? ', log scale' : '') + ')';
    const tmaxAxis = tmax > 0 ? tmax : 1;
    const x = t => L + (W - L - R) * (t / tmaxAxis);
    const y = v => T + (H - T - B) * (1 - (f(v) - ymin) / (ymax - ymin));
    // Grid and y ticks.
    for (const v of ticks) {{
      const yy = y(v);
      el('line', {{ x1: L, y1: yy, x2: W - R, y2: yy, stroke: '#eee' }}, svg);
      el('line', {{ x1: L - 3, y1: yy, x2: L, y2: yy, stroke: '#999' }}, svg);
      const t = el('text', {{ x: L - 5, y: yy + 3, 'text-anchor': 'end', class: 'tick y' }}, svg);
      t.textContent = human(v / udiv);
    }}
    el('line', {{ x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999' }}, svg);
    el('line', {{ x1: L, y1: T, x2: L, y2: H - B, stroke: '#999' }}, svg);
    const yu = el('text', {{ x: 2, y: T - 6, class: 'tick unit' }}, svg);
    yu.textContent = uname;
    // Time ticks: ms below 2 s, seconds above.
    const [tname, tdiv] = tmaxAxis < 2 ? ['ms', 1e-3] : ['s', 1];
    for (const v of linTicks(0, tmaxAxis / tdiv, 4)) {{
      const xx = x(v * tdiv);
      el('line', {{ x1: xx, y1: H - B, x2: xx, y2: H - B + 3, stroke: '#999' }}, svg);
      const t = el('text', {{ x: xx, y: H - B + 13, 'text-anchor': 'middle', class: 'tick x' }}, svg);
      t.textContent = human(v);
    }}
    const tx = el('text', {{ x: W - R, y: H - 6, 'text-anchor': 'end', class: 'tick x-unit' }}, svg);
    tx.textContent = 'time (' + tname + ')';
    sc.variants.forEach((v, k) => {{
      const pts = v.t.map((t, i) => x(t).toFixed(1) + ',' + y(v[metric][i]).toFixed(1)).join(' ');
      el('polyline', {{ class: 'series', 'data-variant': v.name, 'data-points': v.t.length, points: pts, fill: 'none', stroke: colors[k % colors.length], 'stroke-width': 1.5 }}, svg);
      const lx = L + (k % 2) * 130, ly = H + 12 + 20 * Math.floor(k / 2);
      el('rect', {{ x: lx, y: ly - 8, width: 10, height: 10, fill: colors[k % colors.length] }}, svg);
      const t = el('text', {{ x: lx + 14, y: ly, class: 'legend' }}, svg);
      t.textContent = v.name;
    }});
    // Markers: a dashed line where something happened, labelled alternately left and right.
    sc.markers.forEach((m, k) => {{
      const xx = x(m.t), color = m.kind === 'flagged' ? '#d62728' : '#555';
      el('line', {{ class: 'marker', 'data-marker': m.kind, 'data-t': m.t, x1: xx, y1: T, x2: xx, y2: H - B, stroke: color, 'stroke-dasharray': '4 3' }}, svg);
      const t = el('text', {{ x: xx + (k % 2 ? 3 : -3), y: T - 4, 'text-anchor': k % 2 ? 'start' : 'end', fill: color, class: 'marker-label' }}, svg);
      t.textContent = m.label;
    }});
    chart.appendChild(svg);
    chart.dataset.series = sc.variants.length;
    chart.dataset.markers = sc.markers.length;
    chart.dataset.rendered = 'true';
  }}
}})();
</script>
</body></html>
"#,
        version = esc(machine.version),
        date = esc(&machine.date),
        cpus = machine.cpus,
        host = esc(&machine.hostname),
        model = esc(&machine.cpu_model),
        clients = opts.clients,
        duration = opts.duration,
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
