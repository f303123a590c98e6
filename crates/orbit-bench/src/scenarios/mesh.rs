//! `mesh`: the cost of a mesh against N, Orbit nodes and BEAM nodes in the same run.
//!
//! Runs `orbit lab mesh --json` (the lab does the work: N Orbit and BEAM nodes as child
//! processes, full mesh, star and ring; see `orbit-cli`'s `lab/mesh.rs`) and re-emits
//! each of its rows as figures: subject `orbit` or `beam`, metric
//! `TOPOLOGY_nN_FIGURE` (`connect_ms`, `connections`, `rss_mb`, `cpu_pct`,
//! `bcast_us_p50`, `bcast_us_min`, `bcast_us_max`), then `ratio` lines Orbit / BEAM for
//! the full mesh at the largest N both ran, and the lab's goal figures for the largest
//! Orbit full mesh (`subject: goal`).
//!
//! The `orbit` binary is `ORBIT_BIN`, else `orbit` next to this benchmark's binary
//! (`target/release/orbit` after `cargo build --release -p orbit-cli`); without it the
//! scenario is skipped with a note. N goes up to 32 Orbit and 8 BEAM nodes, scaled by
//! `--scale`; the lab's broadcast takes 20 rounds whatever `--rounds` says (its rows are
//! already medians of rounds, and each row starts fresh nodes).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::Ctx;

const SCENARIO: &str = "mesh";

/// The `orbit` binary to run, if there is one.
fn orbit_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORBIT_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let me = std::env::current_exe().ok()?;
    let dir = me.parent()?;
    // `target/release/orbit-bench` or `target/release/deps/...` (tests).
    [dir.join("orbit"), dir.join("../orbit")]
        .into_iter()
        .find(|p| p.is_file())
}

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let Some(bin) = orbit_bin() else {
        eprintln!(
            "mesh: SKIP: no `orbit` binary (set ORBIT_BIN, or build it next to this one: cargo build --release -p orbit-cli)"
        );
        return;
    };
    let max_nodes = ((32.0 * ctx.scale).round() as u64).clamp(2, 128);
    let beam = ((8.0 * ctx.scale).round() as u64).clamp(0, 64);
    let beam = if beam == 1 { 2 } else { beam };
    let out = Command::new(&bin)
        .args(["lab", "mesh", "--json", "--idle", "3", "--rounds", "20"])
        .args(["--max-nodes", &max_nodes.to_string()])
        .args(["--max-beam-nodes", &beam.to_string()])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!(
                "mesh: SKIP: {} lab mesh failed: {}",
                bin.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("mesh: SKIP: cannot run {}: {e}", bin.display());
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    for l in stderr.lines().filter(|l| l.starts_with("SKIP")) {
        eprintln!("mesh: {l}");
    }
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut largest_common = 0;
    for r in rows.iter().filter(|r| r["kind"] == "result") {
        let (Some(imp), Some(n), Some(topo)) = (
            r["impl"].as_str(),
            r["nodes"].as_u64(),
            r["topology"].as_str(),
        ) else {
            continue;
        };
        for (figure, key) in [
            ("connect_ms", "connect_ms"),
            ("connections", "connections"),
            ("rss_mb", "rss_mb_mean"),
            ("cpu_pct", "cpu_pct_mean"),
            ("bcast_us_p50", "bcast_us_p50"),
            ("bcast_us_min", "bcast_us_min"),
            ("bcast_us_max", "bcast_us_max"),
        ] {
            let metric = format!("{topo}_n{n}_{figure}");
            ctx.emit_opt(SCENARIO, imp, &metric, r[key].as_f64());
        }
        if r["complete"] != true {
            eprintln!("mesh: {imp} {topo} N={n} did not complete");
        }
        if imp == "beam" && topo == "full" {
            largest_common = largest_common.max(n);
        }
    }
    if largest_common > 0 {
        for figure in ["connect_ms", "rss_mb", "bcast_us_p50"] {
            let metric = format!("full_n{largest_common}_{figure}");
            let a = ctx.rep.get(SCENARIO, "orbit", &metric);
            let b = ctx.rep.get(SCENARIO, "beam", &metric);
            ctx.goal(SCENARIO, &format!("{metric}_orbit_over_beam"), a, b);
        }
    }
    if let Some(g) = rows.iter().find(|r| r["kind"] == "goals") {
        let n = g["nodes"].as_u64().unwrap_or(0);
        for key in ["connect_ms", "cpu_pct_max", "rss_mb_max"] {
            ctx.emit_opt(
                SCENARIO,
                "goal",
                &format!("full_n{n}_{key}"),
                g[key].as_f64(),
            );
        }
        let met = if g["met"] == true { 1.0 } else { 0.0 };
        ctx.rep
            .emit(SCENARIO, "goal", &format!("full_n{n}_goals_met"), met);
    }
}
