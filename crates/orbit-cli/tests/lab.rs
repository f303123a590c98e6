//! `orbit lab` end to end: every scenario briefly, its verdicts, and the HTML report in
//! a headless browser.

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
        let dir = std::env::temp_dir().join(format!("orbit-lab-test-{}", std::process::id()));
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
    }
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
    assert!(v["facts"]["tasks_vs_one"].as_f64().unwrap() >= x, "{v}");
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
