//! The HTML report: one self-contained page (no network), a card per scenario with its
//! table, its verdict and three charts (latency p99 over time, throughput, heap memory),
//! one line per variant. The data is embedded as JSON; a small inline script draws each
//! chart as SVG and marks it `data-rendered="true"` (which the lab's test checks in a
//! headless browser).

use std::fmt::Write;

use serde_json::{json, Value};

use super::report::{count, dur, mb};
use super::{Options, Report};

/// The page for `reports`.
pub fn render(reports: &[Report], opts: &Options) -> String {
    let data: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "scenario": r.scenario,
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
    for r in reports {
        let _ = write!(
            cards,
            "<section class=\"card\" id=\"{s}\"><h2>{s}</h2><p class=\"title\">{t}</p><table><tr><th>variant</th><th>req/s</th><th>p50</th><th>p99</th><th>max</th><th>cpu %</th><th>rss MB</th><th>+heap MB</th><th>mailbox</th></tr>",
            s = esc(r.scenario),
            t = esc(&r.title)
        );
        for v in &r.results {
            let _ = write!(
                cards,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&v.variant),
                count(v.rps),
                dur(v.latency.p50),
                dur(v.latency.p99),
                dur(v.latency.max),
                v.cpu,
                mb(v.rss_peak),
                mb(v.heap_peak),
                count(v.peak_mailbox as f64)
            );
        }
        let _ = write!(
            cards,
            "</table><p class=\"verdict\">{}</p><div class=\"charts\">",
            esc(&r.verdict)
        );
        for (metric, label) in [
            ("p99", "latency p99 (µs, log)"),
            ("rps", "throughput (req/s, log)"),
            ("heap", "heap in use (MB)"),
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
.verdict {{ font-weight: 600; }} .charts {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; }} figcaption {{ font-size: 12px; color: #555; }}
.legend {{ font-size: 11px; }}
</style></head><body>
<h1>orbit lab</h1>
<p>{clients} client processes, {duration:?} per variant, {cores} cores.</p>
{cards}
<script type="application/json" id="lab-data">{data}</script>
<script>
(function () {{
  const data = JSON.parse(document.getElementById('lab-data').textContent);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
  const NS = 'http://www.w3.org/2000/svg';
  const W = 290, H = 180, L = 50, B = 24, T = 8, R = 8;
  function el(name, attrs, parent) {{
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }}
  for (const chart of document.querySelectorAll('.chart')) {{
    const sc = data.find(s => s.scenario === chart.dataset.scenario);
    const metric = chart.dataset.metric;
    const log = metric !== 'heap';
    const svg = el('svg', {{ width: W, height: H + 20 * Math.ceil(sc.variants.length / 2), viewBox: '0 0 ' + W + ' ' + (H + 20 * Math.ceil(sc.variants.length / 2)) }});
    let tmax = 0, ymin = Infinity, ymax = -Infinity;
    const f = v => log ? Math.log10(Math.max(v, 0.01)) : v;
    for (const v of sc.variants) {{
      for (let i = 0; i < v.t.length; i++) {{
        tmax = Math.max(tmax, v.t[i]);
        ymin = Math.min(ymin, f(v[metric][i]));
        ymax = Math.max(ymax, f(v[metric][i]));
      }}
    }}
    if (!isFinite(ymin)) {{ ymin = 0; ymax = 1; }}
    if (!log) ymin = Math.min(ymin, 0);
    if (ymax - ymin < 1e-9) ymax = ymin + 1;
    const x = t => L + (W - L - R) * (tmax > 0 ? t / tmax : 0);
    const y = v => T + (H - T - B) * (1 - (f(v) - ymin) / (ymax - ymin));
    el('line', {{ x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999' }}, svg);
    el('line', {{ x1: L, y1: T, x2: L, y2: H - B, stroke: '#999' }}, svg);
    const human = n => n >= 1e6 ? +(n / 1e6).toPrecision(2) + 'M' : n >= 1e3 ? +(n / 1e3).toPrecision(2) + 'k' : String(+n.toPrecision(2));
    const label = v => log ? human(Math.pow(10, v)) : v.toFixed(1);
    for (const [v, yy] of [[ymax, T + 4], [ymin, H - B]]) {{
      const t = el('text', {{ x: L - 4, y: yy, 'text-anchor': 'end', 'font-size': 10 }}, svg);
      t.textContent = label(v);
    }}
    const tx = el('text', {{ x: W - R, y: H - 8, 'text-anchor': 'end', 'font-size': 10 }}, svg);
    tx.textContent = tmax.toFixed(1) + ' s';
    sc.variants.forEach((v, k) => {{
      const pts = v.t.map((t, i) => x(t).toFixed(1) + ',' + y(v[metric][i]).toFixed(1)).join(' ');
      el('polyline', {{ class: 'series', 'data-variant': v.name, 'data-points': v.t.length, points: pts, fill: 'none', stroke: colors[k % colors.length], 'stroke-width': 1.5 }}, svg);
      const lx = L + (k % 2) * 120, ly = H + 12 + 20 * Math.floor(k / 2);
      el('rect', {{ x: lx, y: ly - 8, width: 10, height: 10, fill: colors[k % colors.length] }}, svg);
      const t = el('text', {{ x: lx + 14, y: ly, class: 'legend' }}, svg);
      t.textContent = v.name;
    }});
    chart.appendChild(svg);
    chart.dataset.series = sc.variants.length;
    chart.dataset.rendered = 'true';
  }}
}})();
</script>
</body></html>
"#,
        clients = opts.clients,
        duration = opts.duration,
        cores = std::thread::available_parallelism().map_or(1, |n| n.get()),
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
