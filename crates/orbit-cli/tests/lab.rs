//! `orbit lab` end to end: every scenario briefly, its verdicts, and the HTML report in
//! a headless browser (its DOM as rendered, then the page over DevTools: header, axes,
//! markers, memory, numbers, no console error, a screenshot in `target/lab-screenshots/`).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";

/// One short run of every scenario (JSON on stdout, HTML to a file), shared by the tests.
struct Run {
    lines: Vec<Value>,
    html: PathBuf,
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("lab-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let html = dir.join("report.html");
        let out = Command::new(env!("CARGO_BIN_EXE_orbit"))
            .args(["lab", "--duration", "300ms", "--json", "--html"])
            .arg(&html)
            .output()
            .expect("run orbit lab");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "orbit lab failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        Run { lines, html }
    })
}

fn verdict(scenario: &str) -> &'static Value {
    run()
        .lines
        .iter()
        .find(|v| v["kind"] == "verdict" && v["scenario"] == scenario)
        .unwrap_or_else(|| panic!("no verdict for {scenario}"))
}

fn results(scenario: &str) -> Vec<&'static Value> {
    run()
        .lines
        .iter()
        .filter(|v| v["kind"] == "result" && v["scenario"] == scenario)
        .collect()
}

#[test]
fn every_scenario_reports_every_figure() {
    for (scenario, variants) in [
        ("shared_state", 4),
        ("slow_service", 3),
        ("message_size", 4),
        ("pipelines", 2),
        ("spike", 1),
        ("web", 2),
    ] {
        let rs = results(scenario);
        assert_eq!(rs.len(), variants, "{scenario}");
        for r in rs {
            assert!(r["rps"].as_f64().unwrap() > 0.0, "{r}");
            for field in ["p50", "p99", "max"] {
                assert!(
                    r["latency_us"][field].as_f64().unwrap() > 0.0,
                    "{field}: {r}"
                );
            }
            assert!(r["cpu_percent"].as_f64().is_some(), "{r}");
            assert!(r["rss_peak_bytes"].as_u64().unwrap() > 0, "{r}");
            assert!(r["peak_mailbox"].as_u64().is_some(), "{r}");
            assert!(!r["series"].as_array().unwrap().is_empty(), "{r}");
        }
        let v = verdict(scenario);
        assert!(v["verdict"].as_str().unwrap().contains("bottleneck"), "{v}");
        let text = v["verdict"].as_str().unwrap();
        assert_eq!(long_number(text), None, "unformatted number in: {text}");
    }
}

/// The first run of five or more digits in `s` (a number not formatted for people:
/// `1457734` instead of `1.46 M`).
fn long_number(s: &str) -> Option<String> {
    s.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() >= 5)
        .map(str::to_string)
}

#[test]
fn shared_state_names_the_genserver() {
    let v = verdict("shared_state");
    assert!(
        v["bottleneck"].as_str().unwrap().contains("GenServer"),
        "{v}"
    );
}

#[test]
fn slow_service_pool_beats_one_genserver_5x() {
    let v = verdict("slow_service");
    let x = v["facts"]["pool_vs_one"].as_f64().unwrap();
    assert!(x >= 5.0, "Pool of 10 only {x}x the one GenServer: {v}");
    // Fan-out runs up to 50 calls at a time against the pool's 10, but at 300 ms per
    // variant on a saturated debug build it is CPU-bound (25k task spawns and timers a
    // second): it was seen at 8.5x against the pool's 10.3x. What must hold is that it,
    // too, lifts the one-GenServer ceiling by the pool's margin.
    let tasks = v["facts"]["tasks_vs_one"].as_f64().unwrap();
    assert!(
        tasks >= 5.0,
        "TaskSupervisor only {tasks}x the one GenServer: {v}"
    );
}

#[test]
fn message_size_copying_1mb_is_the_cost() {
    let v = verdict("message_size");
    assert!(
        v["facts"]["move_vs_clone_1mb_rps"].as_f64().unwrap() > 2.0,
        "{v}"
    );
    let cloned = v["facts"]["heap_1mb_cloned_bytes"].as_u64().unwrap();
    let moved = v["facts"]["heap_1mb_moved_bytes"].as_u64().unwrap();
    assert!(cloned > moved, "{v}");
}

#[test]
fn pipelines_demand_keeps_memory_below_the_flood() {
    let v = verdict("pipelines");
    let demand = v["facts"]["heap_peak_demand_bytes"].as_u64().unwrap();
    let flood = v["facts"]["heap_peak_flood_bytes"].as_u64().unwrap();
    assert!(demand < flood, "demand {demand} B, flood {flood} B: {v}");
    assert!(
        v["facts"]["mailbox_demand"].as_u64() < v["facts"]["mailbox_flood"].as_u64(),
        "{v}"
    );
}

#[test]
fn spike_burst_is_flagged() {
    let v = verdict("spike");
    assert_eq!(v["facts"]["burst_flagged"], true, "{v}");
    let flag = &v["facts"]["flag"];
    assert!(flag["metric"].is_string(), "{v}");
    assert!(
        flag["observed"].as_f64().unwrap() > flag["normal_high"].as_f64().unwrap(),
        "{v}"
    );
    assert!(flag["normal_low"].as_f64().unwrap() >= 0.0, "{v}");
    let text = v["verdict"].as_str().unwrap();
    let range = text
        .split("normal range ")
        .nth(1)
        .unwrap_or_else(|| panic!("no normal range in: {text}"));
    assert!(!range.starts_with('-'), "a negative normal range: {text}");
    let flagged = v["facts"]["flagged_at_s"].as_f64().unwrap();
    assert!(
        flagged >= v["facts"]["burst_start_s"].as_f64().unwrap(),
        "{v}"
    );
}

#[test]
fn web_a_route_slowed_by_its_middleware_is_flagged() {
    let v = verdict("web");
    assert_eq!(v["facts"]["flagged"], true, "{v}");
    assert_eq!(v["facts"]["flagged_route"], "/report", "{v}");
    assert_eq!(v["facts"]["flagged_middleware"], "session", "{v}");
    let mw = v["facts"]["report_middleware_mean_us"].as_u64().unwrap();
    let handler = v["facts"]["report_handler_mean_us"].as_u64().unwrap();
    assert!(mw >= 2000 && mw > handler, "{v}");
    assert!(
        v["facts"]["health_middleware_mean_us"].as_u64().unwrap() < 2000,
        "{v}"
    );
}

#[test]
fn html_report_renders_every_chart_in_chromium() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install it (apt-get install -y chromium) to check the HTML report"
    );
    let run = run();
    let profile = run.html.with_file_name("chromium-profile");
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", run.html.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scenarios = [
        "shared_state",
        "slow_service",
        "message_size",
        "pipelines",
        "spike",
        "web",
    ];
    let charts: Vec<&str> = dom.split("<div class=\"chart\"").skip(1).collect();
    assert_eq!(
        charts.len(),
        scenarios.len() * 3,
        "three charts per scenario"
    );
    for scenario in scenarios {
        let variants = results(scenario).len();
        for metric in ["p99", "rps", "heap"] {
            let tag = format!("data-scenario=\"{scenario}\" data-metric=\"{metric}\"");
            let chart = charts
                .iter()
                .find(|c| c.starts_with(&format!(" {tag}")))
                .unwrap_or_else(|| panic!("no chart {tag}"));
            let chart = &chart[..chart.find("</div>").unwrap_or(chart.len())];
            assert!(
                chart.contains("data-rendered=\"true\""),
                "not rendered: {tag}"
            );
            let lines: Vec<&str> = chart.split("<polyline").skip(1).collect();
            assert_eq!(lines.len(), variants, "one line per variant: {tag}");
            for l in lines {
                let points = l
                    .split("points=\"")
                    .nth(1)
                    .and_then(|p| p.split('"').next());
                let n = points.map_or(0, |p| p.split_whitespace().count());
                assert!(n >= 1, "an empty line in {tag}");
            }
        }
    }
}

#[test]
fn bad_options_are_refused_with_a_hint() {
    let out = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args(["lab", "--duration", "5 parsecs"])
        .output()
        .expect("run orbit lab");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown unit") || err.contains("not a duration"),
        "{err}"
    );
}

/// The report in a real page over DevTools: the header names version, date, CPUs and
/// machine; every axis has ticks and a unit chosen by its range; the spike's charts mark
/// where the burst began and where it was flagged; each scenario shows the memory it
/// added; the verdicts' numbers are formatted; no console error; a screenshot is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_reads_well_in_chromium() {
    use serde_json::json;
    use support::devtools::{Browser, CHROMIUM};
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install it (apt-get install -y chromium) to check the HTML report"
    );
    let run = tokio::task::spawn_blocking(run).await.unwrap();
    let mut b = Browser::start("lab-screenshots").await;
    b.goto(&format!("file://{}", run.html.display())).await;
    b.until(
        "every chart rendered",
        "document.querySelectorAll('.chart').length === 18 && [...document.querySelectorAll('.chart')].every(c => c.dataset.rendered === 'true')",
    )
    .await;

    // The header.
    let text = |id: &str| format!("document.getElementById('{id}').textContent");
    assert_eq!(
        b.eval(&text("orbit-version")).await,
        json!(env!("CARGO_PKG_VERSION"))
    );
    let date = b.eval(&text("run-date")).await;
    let date = date.as_str().unwrap();
    let shape: String = date
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99 99:99 UTC", "date: {date}");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(b.eval(&text("cpus")).await, json!(cpus.to_string()));
    let machine = b.eval(&text("machine")).await;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    assert!(
        machine.as_str().unwrap().contains(host.trim()),
        "machine {machine} names the host {host}"
    );
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if let Some(model) = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
    {
        let model = model.1.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            machine.as_str().unwrap().contains(&model),
            "machine {machine} names the CPU {model}"
        );
    }

    // Axes: ticks on both, a unit chosen by the range, in the caption too.
    let axes: Vec<serde_json::Value> = serde_json::from_value(
        b.eval(
            "[...document.querySelectorAll('.chart')].map(c => ({
                scenario: c.dataset.scenario, metric: c.dataset.metric, unit: c.dataset.unit,
                caption: c.parentElement.querySelector('figcaption').textContent,
                y: [...c.querySelectorAll('text.tick.y')].map(t => t.textContent),
                x: [...c.querySelectorAll('text.tick.x')].map(t => t.textContent),
                markers: [...c.querySelectorAll('line.marker')].map(m => [m.dataset.marker, Number(m.getAttribute('x1'))]),
            }))",
        )
        .await,
    )
    .unwrap();
    for a in &axes {
        let (metric, unit) = (a["metric"].as_str().unwrap(), a["unit"].as_str().unwrap());
        let allowed: &[&str] = match metric {
            "p99" => &["µs", "ms", "s"],
            "heap" => &["kB", "MB", "GB"],
            _ => &["req/s"],
        };
        assert!(allowed.contains(&unit), "unit {unit}: {a}");
        assert!(
            a["caption"].as_str().unwrap().contains(unit),
            "caption names the unit: {a}"
        );
        let y: Vec<&str> = a["y"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(y.len() >= 2, "y ticks: {a}");
        assert!(a["x"].as_array().unwrap().len() >= 2, "x ticks: {a}");
        if metric == "p99" {
            // The unit follows the range: no latency tick reads more than 1000 of it
            // (the axis ends at the decade above the largest value).
            for t in &y {
                let v: f64 = t.parse().unwrap_or_else(|_| panic!("tick {t}: {a}"));
                assert!(v <= 1000.0 && v > 0.0, "tick {t} in {unit}: {a}");
            }
        }
        let markers = a["markers"].as_array().unwrap();
        if a["scenario"] == "spike" {
            let at = |kind: &str| {
                markers
                    .iter()
                    .find(|m| m[0] == kind)
                    .unwrap_or_else(|| panic!("no {kind} marker: {a}"))[1]
                    .as_f64()
                    .unwrap()
            };
            assert!(at("flagged") >= at("burst"), "flagged after the burst: {a}");
        } else {
            assert!(markers.is_empty(), "{a}");
        }
    }

    // Memory per scenario: what it added, below the process's total.
    let memory: Vec<(String, f64)> = serde_json::from_value(
        b.eval(
            "[...document.querySelectorAll('.card')].map(c => [c.id, Number(c.querySelector('.memory')?.dataset.rssDeltaBytes)])",
        )
        .await,
    )
    .unwrap();
    assert_eq!(memory.len(), 6, "{memory:?}");
    for (scenario, delta) in &memory {
        let peak = results(scenario)
            .iter()
            .map(|r| r["rss_peak_bytes"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!(
            delta.is_finite() && *delta < peak,
            "{scenario}: +{delta} B of {peak} B"
        );
    }

    // Verdicts: formatted numbers, no negative range.
    let verdicts: Vec<String> = serde_json::from_value(
        b.eval("[...document.querySelectorAll('.verdict')].map(v => v.textContent)")
            .await,
    )
    .unwrap();
    assert_eq!(verdicts.len(), 6);
    for v in &verdicts {
        assert_eq!(long_number(v), None, "unformatted number in: {v}");
        assert!(!v.contains("range -"), "negative range in: {v}");
    }

    let shot = b.full_page_screenshot("lab-report.png").await;
    assert!(
        std::fs::metadata(&shot).map_or(0, |m| m.len()) > 10_000,
        "{}",
        shot.display()
    );
    let problems = b.problems();
    assert!(
        problems.is_empty(),
        "console errors or exceptions: {problems:#?}"
    );
    println!("screenshot: {}", shot.display());
}
