//! `cluster_stage`: events per second through a 3-node GenStage pipeline, Orbit against
//! the real GenStage (three BEAM nodes), interleaved round by round.
//!
//! Both pipelines are the same: node A runs a counting producer `src`, node B a
//! producer_consumer `pc` subscribed to `{src, A}` that maps each event `x -> 2x + 1`,
//! node C a consumer subscribed to `{pc, B}` that counts N events; default demand at both
//! hops (`max_demand` 1000, `min_demand` 500), integers as events. Every node is its own
//! OS process on loopback. The clock runs on node C from its subscribe to the N-th event.
//! Orbit nodes are this binary (`__cstage-a`, `__cstage-b`, `__cstage-c`, using
//! `orbit_cluster::stage`), the BEAM nodes `beam/cluster_stage.exs` (`+S N:N`).
//! A and B start fresh in every round.
//!
//! Schedulers: the three nodes share the machine, so each node gets its share of the
//! cores, the same on both sides: [`node_workers`] tokio worker threads per Orbit node
//! and `+S N:N` with the same N per BEAM node (1 on a 2-vCPU machine: three nodes of
//! two schedulers each would be six threads taking turns on two cores). Printed as
//! `orbit workers` and `beam schedulers_S`.
//!
//! Goal: Orbit ≥ 3x the BEAM (`orbit_vs_beam_min_3x`). Also CPU microseconds per event
//! spent by node C (`cpu_us_per_event`: `getrusage` in the Orbit node, `statistics(runtime)`
//! in the BEAM, around the measured part) and by all three nodes
//! (`cpu_us_per_event_3_nodes`: C's figure plus A's and B's `/proc/PID/stat` CPU from just
//! before C starts to just after it ends, so A's and B's share includes C's start-up,
//! when they idle). `host` `loadavg_1m_start`/`_end` frame the run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orbit_cluster::stage::{self, RemoteStageOptions, RemoteSubscribe};

use super::Ctx;
use crate::beam;
use crate::util::Rounds;

const SCENARIO: &str = "cluster_stage";
const COOKIE: &str = "orbit_bench_cstage";

/// Worker threads per Orbit node and schedulers (`+S N:N`) per BEAM node: the
/// machine's cores shared by the three nodes, at least 1.
pub fn node_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 3).max(1)
}

/// A node process that printed `ready`; killed when dropped.
struct NodeProc(Child);

impl NodeProc {
    /// CPU microseconds the node has used so far (0 when `/proc` cannot tell).
    fn cpu_us(&self) -> u64 {
        crate::util::proc_cpu_us(self.0.id()).unwrap_or(0)
    }
}

/// One round of a subject: node C's figures and A's and B's CPU over C's run.
struct RoundOut {
    values: beam::Values,
    others_cpu_us: u64,
}

/// Runs node C (`run`) between two readings of A's and B's CPU.
fn with_others_cpu(
    a: &NodeProc,
    b: &NodeProc,
    run: impl FnOnce() -> Option<beam::Values>,
) -> Option<RoundOut> {
    let before = a.cpu_us() + b.cpu_us();
    let values = run()?;
    let after = a.cpu_us() + b.cpu_us();
    Some(RoundOut {
        values,
        others_cpu_us: after.saturating_sub(before),
    })
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits for its `ready` line (at most 60 s).
fn start_node(mut cmd: Command) -> Option<NodeProc> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| eprintln!("note: cluster_stage: {e}"))
        .ok()?;
    let out = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(l) = line else { break };
            if l.trim() == "ready" {
                let _ = tx.send(());
            }
        }
    });
    let node = NodeProc(child);
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => Some(node),
        Err(_) => {
            eprintln!("note: cluster_stage: a node did not get ready");
            None
        }
    }
}

fn name(role: &str, round: usize, who: &str) -> String {
    format!("cs_{who}_{role}_{}_{round}@127.0.0.1", std::process::id())
}

fn orbit_round(n: u64, round: usize) -> Option<RoundOut> {
    let exe = std::env::current_exe().ok()?;
    let (a, b, c) = (
        name("a", round, "o"),
        name("b", round, "o"),
        name("c", round, "o"),
    );
    let mut ca = Command::new(&exe);
    ca.args(["__cstage-a", &a]);
    let na = start_node(ca)?;
    let mut cb = Command::new(&exe);
    cb.args(["__cstage-b", &b, &a]);
    let nb = start_node(cb)?;
    with_others_cpu(&na, &nb, || {
        crate::util::run_self(&["__cstage-c", &c, &b, &n.to_string()])
            .map_err(|e| eprintln!("note: cluster_stage orbit C: {e}"))
            .ok()
    })
}

fn beam_round(n: u64, round: usize) -> Option<RoundOut> {
    let libs = beam::beamlibs()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("beam/cluster_stage.exs");
    let elixir = |node: &str, args: &[&str]| {
        let mut cmd = Command::new("elixir");
        cmd.env("ERL_LIBS", libs)
            .arg("--erl")
            .arg(format!("+S {0}:{0}", node_workers()))
            .args(["--name", node, "--cookie", COOKIE])
            .arg(&script)
            .args(args);
        cmd
    };
    let (a, b, c) = (
        name("a", round, "b"),
        name("b", round, "b"),
        name("c", round, "b"),
    );
    // `elixir` execs `erl`, which execs the emulator: the pid is the BEAM's.
    let na = start_node(elixir(&a, &["a"]))?;
    let nb = start_node(elixir(&b, &["b", &a]))?;
    with_others_cpu(&na, &nb, || {
        let out = elixir(&c, &["c", &b, &n.to_string()])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("note: cluster_stage beam C failed ({})", out.status);
            return None;
        }
        Some(beam::parse_kv(&String::from_utf8_lossy(&out.stdout)))
    })
}

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n = ctx.n(2_000_000);
    // One EPMD for every node of every round (an Orbit node would otherwise embed one
    // that dies with it).
    let _ = Command::new("epmd")
        .arg("-daemon")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let beam_ok = beam::beamlibs().is_some();
    ctx.emit_loadavg(SCENARIO, "start");
    let mut r = Rounds::default();
    let mut all_cpu: Vec<(&str, f64)> = Vec::new();
    let mut pairs = Vec::new();
    for round in 0..ctx.rounds {
        let mut o = None;
        let mut b = None;
        // Alternate which subject goes first.
        for k in 0..2 {
            let subject = if (round + k) % 2 == 0 {
                "orbit"
            } else {
                "beam"
            };
            let v = if subject == "orbit" {
                orbit_round(n, round)
            } else if beam_ok {
                beam_round(n, round)
            } else {
                None
            };
            let Some(RoundOut {
                values: v,
                others_cpu_us,
            }) = v
            else {
                continue;
            };
            let Some(&rate) = v.get("rate") else { continue };
            r.add(subject, rate);
            let mut all = None;
            if let Some(c) = v.get("cpu_s") {
                r.add_cpu(subject, c * 1e6 / n as f64);
                let us = (c * 1e6 + others_cpu_us as f64) / n as f64;
                all_cpu.push((subject, us));
                all = Some(us);
            }
            eprintln!(
                "cluster_stage round {round}: {subject} {rate:.0} events/s, CPU {:.3} µs/event on C, {:.3} on all three nodes",
                v.get("cpu_s").map_or(f64::NAN, |c| c * 1e6 / n as f64),
                all.unwrap_or(f64::NAN)
            );
            if subject == "orbit" {
                o = Some(rate);
            } else {
                b = Some(rate);
            }
        }
        if let (Some(o), Some(b)) = (o, b) {
            pairs.push(o / b);
        }
    }
    ctx.rep.emit(SCENARIO, "setup", "events", n as f64);
    for subject in ["orbit", "beam"] {
        ctx.emit_rounds_on(
            SCENARIO,
            subject,
            "events_per_s",
            "event",
            &r,
            node_workers(),
        );
    }
    for subject in ["orbit", "beam"] {
        let xs: Vec<f64> = all_cpu
            .iter()
            .filter(|(s, _)| *s == subject)
            .map(|(_, v)| *v)
            .collect();
        ctx.emit_opt(
            SCENARIO,
            subject,
            "cpu_us_per_event_3_nodes",
            crate::util::median(&xs),
        );
    }
    ctx.emit_loadavg(SCENARIO, "end");
    if !pairs.is_empty() {
        // The ratio of the same round's pair, median over rounds, spread beside.
        let med = crate::util::median(&pairs);
        ctx.emit_opt(SCENARIO, "ratio", "orbit_vs_beam_min_3x", med);
        ctx.emit_spread(SCENARIO, "ratio", "orbit_vs_beam", &pairs);
    } else {
        eprintln!("note: cluster_stage: no BEAM figure, no ratio");
    }
}

/// The hidden child commands: the three Orbit nodes. Returns the exit code.
pub fn child_main(cmd: &str, args: &[String]) -> i32 {
    let Some(rt) = crate::util::child_runtime(cmd, node_workers()) else {
        return 1;
    };
    let r = match (cmd, args) {
        ("__cstage-a", [me]) => rt.block_on(node_a(me)),
        ("__cstage-b", [me, a]) => rt.block_on(node_b(me, a)),
        ("__cstage-c", [me, b, n]) => match n.parse() {
            Ok(n) => rt.block_on(node_c(me, b, n)),
            Err(e) => Err(format!("bad count {n}: {e}")),
        },
        _ => Err(format!("unknown child command {cmd} {args:?}")),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{cmd}: {e}");
            1
        }
    }
}

async fn start(me: &str) -> Result<orbit_dist::Node, String> {
    let node = orbit_dist::Node::start(me, orbit_dist::Options::cookie(COOKIE))
        .await
        .map_err(|e| e.to_string())?;
    orbit_cluster::start(&node).map_err(|e| e.to_string())?;
    Ok(node)
}

/// Prints `ready`, then runs until stdin closes.
async fn ready_until_stdin_closes() {
    println!("ready");
    let _ = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        while std::io::stdin().read_line(&mut s).is_ok_and(|n| n > 0) {
            s.clear();
        }
    })
    .await;
}

async fn node_a(me: &str) -> Result<(), String> {
    let _node = start(me).await?;
    let mut next = 0i64;
    let _src = stage::producer(RemoteStageOptions::named("src"), move |d| {
        let ev: Vec<i64> = (next..next + d as i64).collect();
        next += d as i64;
        ev
    })
    .map_err(|e| e.to_string())?;
    ready_until_stdin_closes().await;
    Ok(())
}

async fn node_b(me: &str, a: &str) -> Result<(), String> {
    let node = start(me).await?;
    if !node.connect(a).await {
        return Err(format!("cannot connect to {a}"));
    }
    let _pc = stage::producer_consumer(
        RemoteStageOptions::named("pc"),
        ("src", a),
        RemoteSubscribe::default(),
        |ev: Vec<i64>| ev.into_iter().map(|x| x * 2 + 1).collect::<Vec<i64>>(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ready_until_stdin_closes().await;
    Ok(())
}

async fn node_c(me: &str, b: &str, n: u64) -> Result<(), String> {
    let node = start(me).await?;
    if !node.connect(b).await {
        return Err(format!("cannot connect to {b}"));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut seen = 0u64;
    let cpu0 = crate::util::cpu_s(libc::RUSAGE_SELF);
    let t0 = Instant::now();
    let _c = stage::consumer(
        ("pc", b),
        RemoteSubscribe::default(),
        move |ev: Vec<i64>| {
            seen += ev.len() as u64;
            if seen >= n {
                let _ = tx.send(());
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(600), rx.recv())
        .await
        .map_err(|_| "no end within 600 s".to_string())?;
    let t = t0.elapsed();
    let cpu = crate::util::cpu_s(libc::RUSAGE_SELF) - cpu0;
    println!("rate {} cpu_s {cpu}", crate::util::per_s(n, t));
    Ok(())
}
