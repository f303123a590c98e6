//! `erpc`: erpc calls per second on loopback, Orbit answering and calling against the
//! BEAM doing the same (`beam/erpc_bench.erl`), subjects interleaved in every round.
//!
//! Two target nodes live for the whole scenario: an Orbit node (`__erpc-node`, with
//! `erpc_bench:add/2` registered in Rust through `orbit_cluster::erpc`) and a BEAM node
//! (`erpc_bench:server/0`, the same function in Erlang; `+S N:N`). Each round runs, in
//! rotated order:
//!
//! - `beam_to_orbit`: an `erl` node calls the Orbit node (`erpc:call`, which is what
//!   Elixir's `:erpc.call` runs: the same module);
//! - `beam_to_beam`: the same `erl` driver against the BEAM node;
//! - `orbit_to_orbit`: an Orbit driver node (`__erpc-driver`, `orbit_cluster::erpc::call`)
//!   against the Orbit node.
//!
//! Every driver makes 1000 unmeasured calls, then `N` calls of `add(1, 2)` spread over
//! 8 callers that each call one after the other (`--scale` scales N = 50k); the rate is
//! calls per second of the driver, `cpu_us_per_call` the driver's own CPU over its
//! measured part (`/proc/self/stat`), `target_cpu_us_per_call` the target node's CPU
//! (`/proc/PID/stat`) over the whole driver run divided by its N + 1000 calls (the
//! target does nothing else meanwhile). `wakeups_per_call` and `target_wakeups_per_call`
//! are the voluntary context switches (a thread blocked, woken again) of the driver over
//! its measured part and of the target over the whole driver run, per call
//! (`/proc/PID/task/*/status`, every live thread; the `erl` driver counts its own the
//! same way).
//!
//! Goals (issue 20): `beam_to_orbit` ≥ 1.5x `beam_to_beam` (Elixir→Orbit vs
//! Elixir→Elixir), `orbit_to_orbit` ≥ 2x `beam_to_beam` (Orbit→Orbit vs BEAM→BEAM).
//!
//! `ORBIT_BENCH_ERPC_SUBJECTS=orbit_to_orbit` (comma-separated names of [`SUBJECTS`])
//! runs only those subjects, e.g. to compare two builds' Orbit driver interleaved or to
//! profile it; unset, every subject runs.
//!
//! Threads: every node, Orbit and BEAM, driver and target, runs [`node_workers`] tokio
//! worker threads or `+S N:N` schedulers (reported as `workers`): [`WORKERS`](crate::util::WORKERS) unless
//! `ORBIT_BENCH_ERPC_WORKERS=N` says otherwise (e.g. 1 on a 2-vCPU machine, each of
//! the two nodes of a round its share of the cores, as `cluster_stage` does).
//! `ORBIT_BENCH_ERPC_BEAM_NO_SPIN=1` starts every BEAM node with its schedulers'
//! busy-waiting off (`+sbwt none +sbwtdcpu none +sbwtdio none`; reported as
//! `beam_no_spin`): the BEAM's default spins before sleeping, Orbit's runtime does
//! not, and this separates what the spinning buys on a machine with spare cores.

use std::cell::RefCell;
use std::process::Command;
use std::time::{Duration, Instant};

use orbit_cluster::erpc::{self, ErpcError};
use orbit_term::Term;

use super::dist::{me, run_to_end, start_erl_node_with, start_ready, unique, COOKIE};
use super::Ctx;
use crate::beam;
use crate::util::{Rounds, Step};

const SCENARIO: &str = "erpc";
/// Callers per driver.
const CONCURRENCY: u64 = 8;
/// The subjects, in the order of the first round.
const SUBJECTS: [&str; 3] = ["orbit_to_orbit", "beam_to_orbit", "beam_to_beam"];

/// Worker threads of every Orbit node and schedulers (`+S N:N`) of every BEAM node of
/// the scenario: `ORBIT_BENCH_ERPC_WORKERS` when it is a positive number, else
/// [`WORKERS`](crate::util::WORKERS).
pub fn node_workers() -> usize {
    crate::util::workers_from_env("ORBIT_BENCH_ERPC_WORKERS")
}

/// The emulator flags of every BEAM node: [`node_workers`] schedulers, and busy-waiting
/// off when `ORBIT_BENCH_ERPC_BEAM_NO_SPIN=1`.
fn beam_flags() -> Vec<String> {
    let n = node_workers();
    let mut flags = vec!["+S".to_string(), format!("{n}:{n}")];
    if beam_no_spin() {
        flags.extend(beam::NO_BUSY_WAIT.map(String::from));
    }
    flags
}

/// Whether `ORBIT_BENCH_ERPC_BEAM_NO_SPIN=1` asks for BEAM schedulers that do not spin.
fn beam_no_spin() -> bool {
    std::env::var("ORBIT_BENCH_ERPC_BEAM_NO_SPIN").is_ok_and(|v| v.trim() == "1")
}

/// The subjects `ORBIT_BENCH_ERPC_SUBJECTS` names (every one when it is unset or names
/// none of them).
fn chosen_subjects() -> Vec<&'static str> {
    let want = std::env::var("ORBIT_BENCH_ERPC_SUBJECTS").unwrap_or_default();
    let chosen: Vec<&'static str> = SUBJECTS
        .into_iter()
        .filter(|s| want.split(',').any(|w| w.trim() == *s))
        .collect();
    if chosen.is_empty() {
        SUBJECTS.to_vec()
    } else {
        chosen
    }
}

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n = ctx.n(50_000);
    let orbit_target = unique("orbit_erpc_target");
    let mut cmd = Command::new(me().unwrap_or_default());
    cmd.args(["__erpc-node", &orbit_target]);
    let orbit_node = match start_ready(cmd) {
        Ok(k) => Some(k),
        Err(e) => {
            eprintln!("erpc: Orbit target node failed: {e}");
            return;
        }
    };
    let chosen = chosen_subjects();
    let beam_target = unique("beam_erpc_target");
    let beam_node = if chosen.contains(&"beam_to_beam") {
        start_erl_node_with(
            &beam_target,
            "erpc_bench:server().",
            &beam_flags().iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .map_err(|e| eprintln!("erpc: BEAM target skipped: {e}"))
        .ok()
    } else {
        None
    };
    // beam_to_orbit needs only erl; beam_to_beam the BEAM target too.
    let have_erl = crate::beam::erl_available();
    let orbit_pid = orbit_node.as_ref().map(|k| k.id());
    let beam_pid = beam_node.as_ref().map(|k| k.id());
    let mut r = Rounds::default();
    // The target node's CPU per call, per subject.
    let target_cpu = RefCell::new(Rounds::default());
    // Wake-ups (voluntary context switches) per call: the target's, the driver's.
    let target_wakeups = RefCell::new(Rounds::default());
    let wakeups = RefCell::new(Rounds::default());
    let calls = (n / CONCURRENCY).max(1) * CONCURRENCY + 1000;
    let timed = |subject: &'static str, pid: Option<u32>, f: &mut dyn FnMut()| {
        let before = pid.and_then(crate::util::proc_cpu_us);
        let w0 = pid.and_then(crate::util::proc_wakeups);
        f();
        let after = pid.and_then(crate::util::proc_cpu_us);
        let w1 = pid.and_then(crate::util::proc_wakeups);
        if let (Some(a), Some(b)) = (before, after) {
            target_cpu
                .borrow_mut()
                .add(subject, b.saturating_sub(a) as f64 / calls as f64);
        }
        if let (Some(a), Some(b)) = (w0, w1) {
            target_wakeups
                .borrow_mut()
                .add(subject, b.saturating_sub(a) as f64 / calls as f64);
        }
    };
    let mut pairs: Vec<(String, f64, f64)> = Vec::new();
    {
        let (ot, bt) = (orbit_target.clone(), beam_target.clone());
        let w = &wakeups;
        let mut steps: Vec<Step<'_>> = vec![Box::new(|r: &mut Rounds| {
            timed(
                "orbit_to_orbit",
                orbit_pid,
                &mut || match orbit_driver(&ot, n) {
                    Ok(v) => keep(r, w, "orbit_to_orbit", &v, n),
                    Err(e) => eprintln!("erpc: orbit driver failed: {e}"),
                },
            )
        })];
        if !chosen.contains(&"orbit_to_orbit") {
            steps.clear();
        }
        if have_erl && chosen.contains(&"beam_to_orbit") {
            let ot2 = orbit_target.clone();
            let timed = &timed;
            steps.push(Box::new(move |r: &mut Rounds| {
                timed(
                    "beam_to_orbit",
                    orbit_pid,
                    &mut || match erl_driver(&ot2, n) {
                        Ok(v) => keep(r, w, "beam_to_orbit", &v, n),
                        Err(e) => eprintln!("erpc: erl -> orbit failed: {e}"),
                    },
                )
            }));
        }
        if beam_node.is_some() {
            let timed = &timed;
            steps.push(Box::new(move |r: &mut Rounds| {
                timed("beam_to_beam", beam_pid, &mut || match erl_driver(&bt, n) {
                    Ok(v) => keep(r, w, "beam_to_beam", &v, n),
                    Err(e) => eprintln!("erpc: erl -> beam failed: {e}"),
                })
            }));
        }
        for round in 0..ctx.rounds {
            for i in crate::util::rotation(round, steps.len()) {
                (steps[i])(&mut r);
            }
            // Same-round ratios.
            let last = |s: &str| r.of(s).last().copied();
            if let (Some(a), Some(b)) = (last("beam_to_orbit"), last("beam_to_beam")) {
                pairs.push(("in".into(), a, b));
            }
            if let (Some(a), Some(b)) = (last("orbit_to_orbit"), last("beam_to_beam")) {
                pairs.push(("orbit".into(), a, b));
            }
        }
    }
    drop(beam_node);
    drop(orbit_node);
    let target_cpu = target_cpu.into_inner();
    let (target_wakeups, wakeups) = (target_wakeups.into_inner(), wakeups.into_inner());
    ctx.rep.emit(
        SCENARIO,
        "setup",
        "beam_no_spin",
        if beam_no_spin() { 1.0 } else { 0.0 },
    );
    for s in SUBJECTS {
        ctx.emit_rounds_on(SCENARIO, s, "calls_per_s", "call", &r, node_workers());
        ctx.emit_opt(SCENARIO, s, "target_cpu_us_per_call", target_cpu.median(s));
        ctx.emit_opt(SCENARIO, s, "wakeups_per_call", wakeups.median(s));
        ctx.emit_opt(
            SCENARIO,
            s,
            "target_wakeups_per_call",
            target_wakeups.median(s),
        );
    }
    for (kind, name) in [("in", "into_orbit"), ("orbit", "orbit_to_orbit")] {
        let rs: Vec<f64> = pairs
            .iter()
            .filter(|p| p.0 == kind)
            .map(|p| p.1 / p.2)
            .collect();
        ctx.emit_spread(SCENARIO, "ratio_rounds", name, &rs);
    }
    ctx.goal(
        SCENARIO,
        "elixir_to_orbit_vs_elixir_to_elixir_min_1_5x",
        r.median("beam_to_orbit"),
        r.median("beam_to_beam"),
    );
    ctx.goal(
        SCENARIO,
        "orbit_to_orbit_vs_beam_to_beam_min_2x",
        r.median("orbit_to_orbit"),
        r.median("beam_to_beam"),
    );
}

fn keep(r: &mut Rounds, side: &RefCell<Rounds>, subject: &'static str, v: &beam::Values, n: u64) {
    if let Some(&rate) = v.get("erpc_calls_per_s") {
        r.add(subject, rate);
    }
    if let Some(&cpu) = v.get("cpu_us") {
        r.add_cpu(subject, cpu / n.max(1) as f64);
    }
    if let Some(&w) = v.get("wakeups") {
        side.borrow_mut().add(subject, w / n.max(1) as f64);
    }
}

fn erl_driver(target: &str, n: u64) -> Result<beam::Values, String> {
    let a = unique("beam_erpc_driver");
    let eval = format!("erpc_bench:run(['{target}', {n}, {CONCURRENCY}]).");
    let flags = beam_flags();
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["-name", &a, "-setcookie", COOKIE, "-eval", &eval]);
    beam::run_erl(&args).map(|out| beam::parse_kv(&out))
}

fn orbit_driver(target: &str, n: u64) -> Result<beam::Values, String> {
    let mut cmd = Command::new(me()?);
    cmd.args([
        "__erpc-driver",
        &unique("orbit_erpc_driver"),
        target,
        &n.to_string(),
    ]);
    run_to_end(cmd)
}

// ---- the child nodes -----------------------------------------------------------------

/// Entry point of the hidden child commands `__erpc-node NAME` and
/// `__erpc-driver NAME TARGET N`; returns the exit code.
pub fn child_main(cmd: &str, args: &[String]) -> i32 {
    let Some(rt) = crate::util::child_runtime(cmd, node_workers()) else {
        return 1;
    };
    let r = match (cmd, args) {
        ("__erpc-node", [name]) => rt.block_on(node_main(name.clone())),
        ("__erpc-driver", [name, target, n]) => rt.block_on(driver_main(
            name.clone(),
            target.clone(),
            n.parse().unwrap_or(50_000),
        )),
        _ => Err(format!("bad child command {cmd} {args:?}")),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{cmd}: {e}");
            1
        }
    }
}

async fn start_node(name: &str) -> Result<orbit_dist::Node, String> {
    let node = orbit_dist::Node::start(name, orbit_dist::Options::cookie(COOKIE))
        .await
        .map_err(|e| e.to_string())?;
    orbit_cluster::start(&node).map_err(|e| e.to_string())?;
    Ok(node)
}

/// The target: `erpc_bench:add/2` in Rust; lives until killed.
async fn node_main(name: String) -> Result<(), String> {
    let _node = start_node(&name).await?;
    erpc::register_typed("erpc_bench", "add", |(a, b): (i64, i64)| {
        a.checked_add(b)
            .ok_or_else(|| ErpcError::error(Term::atom("badarith")))
    })
    .map_err(|e| e.to_string())?;
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}

/// The driver: what `erpc_bench:run/1` does, with `orbit_cluster::erpc::call`.
async fn driver_main(name: String, target: String, n: u64) -> Result<(), String> {
    let node = start_node(&name).await?;
    if !node.connect(&target).await {
        return Err(format!("cannot connect to {target}"));
    }
    let call = |t: String| async move {
        erpc::call::<i64>(&t, "erpc_bench", "add", (1, 2), Duration::from_secs(5)).await
    };
    for _ in 0..1000 {
        call(target.clone()).await.map_err(|e| e.to_string())?;
    }
    let per = (n / CONCURRENCY).max(1);
    let cpu0 = super::dist::cpu_us();
    let w0 = crate::util::proc_wakeups("self").unwrap_or(0);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let t = target.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    match erpc::call::<i64>(&t, "erpc_bench", "add", (1, 2), Duration::from_secs(5))
                        .await
                    {
                        Ok(3) => {}
                        other => return Err(format!("{other:?}")),
                    }
                }
                Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = super::dist::cpu_us() - cpu0;
    let wakeups = crate::util::proc_wakeups("self")
        .unwrap_or(0)
        .saturating_sub(w0);
    println!(
        "erpc_calls_per_s {} cpu_us {cpu} wakeups {wakeups}",
        (per * CONCURRENCY) as f64 / secs.max(1e-9)
    );
    Ok(())
}
