//! `orbit lab mesh` end to end, small: 2 and 4 Orbit nodes, 2 BEAM nodes (when `erl` is
//! installed), every topology. Every figure is present and sane, the full mesh is
//! complete, a partial mesh has fewer connections than the full one, and no child
//! process survives the run, nor a lab interrupted with Ctrl-C (SIGINT).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn erl_available() -> bool {
    Command::new("erl")
        .args(["-noshell", "-eval", "halt()."])
        .status()
        .is_ok_and(|s| s.success())
}

/// Pids of processes whose command line names a node of the lab with pid `lab`.
fn children_of_lab(lab: u32) -> Vec<u32> {
    let tag = format!("_{lab}@127.0.0.1");
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        // A killed child not yet reaped is a zombie with an empty command line.
        if String::from_utf8_lossy(&cmd).contains(&tag) {
            found.push(pid);
        }
    }
    found
}

/// Waits (bounded) until no child of lab `lab` is left; the survivors otherwise.
fn wait_no_children(lab: u32, within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let left = children_of_lab(lab);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn small_mesh_run_reports_every_figure_and_leaves_no_child() {
    let beam = erl_available();
    if !beam {
        println!("SKIP BEAM rows: `erl` is not on PATH (Orbit rows still checked)");
    }
    let html = std::env::temp_dir().join(format!("orbit-lab-mesh-{}.html", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args([
            "lab",
            "mesh",
            "--max-nodes",
            "4",
            "--max-beam-nodes",
            "2",
            "--idle",
            "1",
            "--rounds",
            "5",
            "--json",
            "--html",
        ])
        .arg(&html)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start orbit lab mesh");
    let lab = child.id();
    let out = child.wait_with_output().expect("orbit lab mesh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "orbit lab mesh failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let survivors = wait_no_children(lab, Duration::from_secs(5));
    assert!(survivors.is_empty(), "children survived: {survivors:?}");

    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let rows: Vec<&Value> = lines.iter().filter(|v| v["kind"] == "result").collect();
    let want_rows = 6 + if beam { 3 } else { 0 };
    assert_eq!(rows.len(), want_rows, "{stdout}");
    let row = |imp: &str, n: u64, topo: &str| -> &Value {
        rows.iter()
            .find(|r| r["impl"] == imp && r["nodes"] == n && r["topology"] == topo)
            .unwrap_or_else(|| panic!("no row {imp} {n} {topo}: {stdout}"))
    };
    for r in &rows {
        let n = r["nodes"].as_u64().unwrap();
        assert_eq!(r["scenario"], "mesh");
        assert_eq!(r["complete"], true, "{r}");
        let connect = r["connect_ms"].as_f64().unwrap();
        assert!(connect > 0.0 && connect < 60_000.0, "{r}");
        assert_eq!(r["connections"], r["expected_connections"], "{r}");
        let rss = r["rss_mb_mean"].as_f64().unwrap();
        assert!(rss > 1.0 && rss < 1000.0, "{r}");
        assert!(r["rss_mb_max"].as_f64().unwrap() >= rss, "{r}");
        let cpu = r["cpu_pct_mean"].as_f64().unwrap();
        assert!((0.0..=400.0).contains(&cpu), "{r}");
        assert_eq!(r["bcast_rounds"], 5, "{r}");
        assert_eq!(r["bcast_lost"], 0, "{r}");
        let p50 = r["bcast_us_p50"].as_i64().unwrap();
        assert!(p50 > 0 && p50 < 5_000_000, "{r}");
        assert!(r["bcast_us_min"].as_i64().unwrap() <= p50);
        assert!(r["bcast_us_max"].as_i64().unwrap() >= p50);
        match r["topology"].as_str().unwrap() {
            "full" => {
                assert_eq!(r["connections"].as_u64().unwrap(), n * (n - 1) / 2, "{r}");
                assert_eq!(r["min_peers"].as_u64().unwrap(), n - 1, "{r}");
                assert_eq!(r["bcast_mode"], "direct");
            }
            "star" => {
                assert_eq!(r["connections"].as_u64().unwrap(), n - 1, "{r}");
                assert_eq!(r["max_peers"].as_u64().unwrap(), n - 1, "{r}");
                assert_eq!(r["min_peers"].as_u64().unwrap(), 1, "{r}");
            }
            "ring" => {
                assert_eq!(r["bcast_mode"], "relay");
                let want = if n == 2 { 1 } else { n };
                assert_eq!(r["connections"].as_u64().unwrap(), want, "{r}");
            }
            t => panic!("unknown topology {t}"),
        }
    }
    // With 4 nodes a partial mesh is cheaper than the full one.
    let full = row("orbit", 4, "full")["connections"].as_u64().unwrap();
    for topo in ["star", "ring"] {
        assert!(row("orbit", 4, topo)["connections"].as_u64().unwrap() < full);
    }
    if beam {
        assert_eq!(row("beam", 2, "full")["connections"], 1);
    }
    let goals = lines
        .iter()
        .find(|v| v["kind"] == "goals")
        .expect("a goals line");
    assert_eq!(goals["nodes"], 4);
    assert!(goals["met"].is_boolean());

    let page = std::fs::read_to_string(&html).expect("the HTML report is written");
    assert!(
        page.contains("<svg") && page.contains("polyline"),
        "no chart"
    );
    let _ = std::fs::remove_file(&html);
}

#[test]
fn interrupted_lab_leaves_no_child() {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orbit"));
    cmd.args([
        "lab",
        "mesh",
        "--max-nodes",
        "4",
        "--max-beam-nodes",
        "0",
        "--idle",
        "30",
        "--json",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    // A terminal's Ctrl-C meets SIGINT's default action; a test run started in the
    // background of a non-interactive shell inherits SIGINT ignored, so restore it.
    // SAFETY: signal() is async-signal-safe, the only call between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start orbit lab mesh");
    let lab = child.id();
    // Wait until its nodes run, then Ctrl-C it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while children_of_lab(lab).len() < 2 {
        assert!(Instant::now() < deadline, "the lab started no nodes");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(lab as libc::pid_t, libc::SIGINT) };
    let status = child.wait().expect("the lab exits");
    assert!(!status.success());
    let survivors = wait_no_children(lab, Duration::from_secs(5));
    assert!(
        survivors.is_empty(),
        "children survived a Ctrl-C: {survivors:?}"
    );
}
