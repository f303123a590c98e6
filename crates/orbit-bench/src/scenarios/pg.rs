//! `pg`: process-group broadcast over two nodes, Orbit's `orbit_cluster::pg` against
//! OTP's `pg` (`beam/pg_bench.erl`), interleaved round by round.
//!
//! Both sides do the same work. Node B holds 500 members of group `bench`, node A 500
//! more and the sender; every member is a process counting its deliveries. The sender
//! broadcasts K times (K = 300, scaled by `--scale`): `get_members(bench)` (1,000 pids,
//! 500 of them remote), then one small message (an integer) to each, in a plain loop.
//! A member that has counted K deliveries acknowledges once to the sender (`pg_sender`
//! on node A, registered). The clock runs on node A from the first broadcast until all
//! 1,000 members acknowledged: `deliveries_per_s` = K x 1,000 / time.
//!
//! Every node is its own OS process on loopback, both started fresh in every round
//! (Orbit: the hidden `__pg-members` / `__pg-driver` commands of this binary; BEAM: two
//! `erl +S N:N`); which subject goes first alternates. CPU per delivery is node A's
//! utime + stime over the measured part (`/proc/self/stat`) plus node B's over the whole
//! driver run (`/proc/PID/stat` read by this process), the same way for both subjects.
//! The ratio line `orbit_vs_beam` is the median of the same-round ratios, with their
//! spread (issue 20 sets no goal for this figure).

use std::process::Command;
use std::time::{Duration, Instant};

use orbit::{Context, Message, Pid};

use super::dist::{me, start_erl_node, start_ready, unique, COOKIE};
use super::Ctx;
use crate::beam;
use crate::util::Rounds;

const SCENARIO: &str = "pg";
/// Members per node.
const PER_NODE: u64 = 500;
/// The group every member joins.
const GROUP: &str = "bench";
/// The sender's registered name on node A.
const SENDER: &str = "pg_sender";

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let k = ctx.n(300);
    let beam_ok = beam::compiled_dir()
        .map_err(|e| eprintln!("note: pg: BEAM side skipped: {e}"))
        .is_ok();
    let mut r = Rounds::default();
    let mut pairs = Vec::new();
    for round in 0..ctx.rounds {
        let (mut o, mut b) = (None, None);
        for i in 0..2 {
            let subject = if (round + i) % 2 == 0 {
                "orbit"
            } else {
                "beam"
            };
            let v = match subject {
                "orbit" => orbit_round(k),
                _ if beam_ok => beam_round(k),
                _ => continue,
            };
            let v = match v {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("note: pg round {round}: {subject} failed: {e}");
                    continue;
                }
            };
            let deliveries = k * 2 * PER_NODE;
            r.add(subject, v.rate);
            r.add_cpu(subject, v.cpu_us / deliveries as f64);
            eprintln!(
                "pg round {round}: {subject} {:.0} deliveries/s, {:.2} us CPU per delivery",
                v.rate,
                v.cpu_us / deliveries as f64
            );
            if subject == "orbit" {
                o = Some(v.rate);
            } else {
                b = Some(v.rate);
            }
        }
        if let (Some(o), Some(b)) = (o, b) {
            pairs.push(o / b);
        }
    }
    ctx.rep
        .emit(SCENARIO, "setup", "members", (2 * PER_NODE) as f64);
    ctx.rep.emit(SCENARIO, "setup", "broadcasts", k as f64);
    ctx.emit_rounds(SCENARIO, "orbit", "deliveries_per_s", "delivery", &r);
    ctx.emit_rounds(SCENARIO, "beam", "deliveries_per_s", "delivery", &r);
    if pairs.is_empty() {
        eprintln!("note: pg: no same-round pair, no ratio");
        return;
    }
    ctx.emit_opt(
        SCENARIO,
        "ratio",
        "orbit_vs_beam",
        crate::util::median(&pairs),
    );
    ctx.emit_spread(SCENARIO, "ratio", "orbit_vs_beam", &pairs);
}

/// One round's figures: deliveries per second and CPU microseconds of both nodes.
struct Figures {
    rate: f64,
    cpu_us: f64,
}

/// Runs driver `a` while member node `b_pid` lives: its figures plus B's CPU meanwhile.
fn measure(
    b_pid: u32,
    a: impl FnOnce() -> Result<beam::Values, String>,
) -> Result<Figures, String> {
    let b0 = crate::util::proc_cpu_us(b_pid).unwrap_or(0);
    let v = a()?;
    let b_cpu = crate::util::proc_cpu_us(b_pid)
        .unwrap_or(0)
        .saturating_sub(b0);
    let rate = *v.get("rate").ok_or("the driver printed no rate")?;
    let a_cpu = v.get("cpu_us").copied().unwrap_or(0.0);
    Ok(Figures {
        rate,
        cpu_us: a_cpu + b_cpu as f64,
    })
}

fn orbit_round(k: u64) -> Result<Figures, String> {
    let (a, b) = (unique("orbit_pg_a"), unique("orbit_pg_b"));
    let mut cmd = Command::new(me()?);
    cmd.args(["__pg-members", &b, &a, &k.to_string()]);
    let kid = start_ready(cmd)?;
    measure(kid.id(), || {
        let mut cmd = Command::new(me()?);
        cmd.args(["__pg-driver", &a, &b, &k.to_string()]);
        super::dist::run_to_end(cmd)
    })
}

fn beam_round(k: u64) -> Result<Figures, String> {
    let (a, b) = (unique("beam_pg_a"), unique("beam_pg_b"));
    let kid = start_erl_node(&b, &format!("pg_bench:members('{a}', {k}, {PER_NODE})."))?;
    measure(kid.id(), || {
        beam::run_erl(&[
            "-name",
            &a,
            "-setcookie",
            COOKIE,
            "-eval",
            &format!("pg_bench:run(['{b}', {k}, {PER_NODE}])."),
        ])
        .map(|out| beam::parse_kv(&out))
    })
}

// ---- the child nodes -----------------------------------------------------------------

/// Entry point of the hidden child commands `__pg-members NAME SENDER_NODE K` (node B)
/// and `__pg-driver NAME B K` (node A); returns the exit code.
pub fn child_main(cmd: &str, args: &[String]) -> i32 {
    let rt = crate::util::runtime();
    let r = match (cmd, args) {
        ("__pg-members", [name, a, k]) => match k.parse() {
            Ok(k) => rt.block_on(members_main(name, a, k)),
            Err(e) => Err(format!("bad count {k}: {e}")),
        },
        ("__pg-driver", [name, b, k]) => match k.parse() {
            Ok(k) => rt.block_on(driver_main(name, b, k)),
            Err(e) => Err(format!("bad count {k}: {e}")),
        },
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

async fn start_node(name: &str) -> Result<(orbit_dist::Node, orbit_cluster::pg::Scope), String> {
    let node = orbit_dist::Node::start(name, orbit_dist::Options::cookie(COOKIE))
        .await
        .map_err(|e| e.to_string())?;
    orbit_cluster::start(&node).map_err(|e| e.to_string())?;
    let scope = orbit_cluster::pg::start_scope(orbit_cluster::pg::DEFAULT_SCOPE)
        .map_err(|e| e.to_string())?;
    Ok((node, scope))
}

/// Spawns `n` members that count `k` deliveries each, then call `ack`; joins them.
async fn spawn_members(
    scope: &orbit_cluster::pg::Scope,
    n: u64,
    k: u64,
    ack: impl Fn() + Clone + Send + 'static,
) -> Result<(), String> {
    let mut pids = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let ack = ack.clone();
        let h = orbit::spawn(move |mut ctx: Context<u64>| async move {
            let mut left = k;
            while left > 0 {
                if let Message::Msg(_) = ctx.recv().await {
                    left -= 1;
                }
            }
            ack();
            // Stay a member until the node stops, as the BEAM members do.
            std::future::pending::<()>().await;
        })
        .map_err(|e| e.to_string())?;
        // Integers from the other node arrive as `u64`.
        orbit_dist::serve::<u64>(h.pid());
        pids.push(h.pid());
    }
    scope.join(GROUP, pids).await.map_err(|e| e.to_string())
}

/// Node B: 500 members that acknowledge to `pg_sender` on node `a`; lives until killed.
async fn members_main(name: &str, a: &str, k: u64) -> Result<(), String> {
    let (_node, scope) = start_node(name).await?;
    let a = a.to_string();
    spawn_members(&scope, PER_NODE, k, move || {
        if let Err(e) = orbit_dist::send_named(&a, SENDER, &0u64) {
            eprintln!("__pg-members: ack not sent: {e}");
        }
    })
    .await?;
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}

/// Node A: 500 members and the sender; prints `rate` and `cpu_us`.
async fn driver_main(name: &str, b: &str, k: u64) -> Result<(), String> {
    let (node, scope) = start_node(name).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<(f64, u64), String>>();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let want = 2 * PER_NODE;
    let s = scope.clone();
    let sender = orbit::spawn(move |mut ctx: Context<u64>| async move {
        if go_rx.await.is_err() {
            return;
        }
        let cpu0 = super::dist::cpu_us();
        let t0 = Instant::now();
        let mut sent_to = 0u64;
        for i in 1..=k {
            let members: Vec<Pid> = s.get_members(GROUP);
            sent_to = members.len() as u64;
            for p in members {
                if let Err(e) = orbit::send(p, i) {
                    let _ = tx.send(Err(format!("send to {p:?}: {e}")));
                    return;
                }
            }
        }
        let mut acks = 0;
        while acks < sent_to {
            match ctx.recv_timeout(Duration::from_secs(60)).await {
                Some(Message::Msg(_)) => acks += 1,
                Some(_) => {}
                None => {
                    let _ = tx.send(Err(format!("{acks} of {sent_to} acks after 60 s")));
                    return;
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        let cpu = super::dist::cpu_us() - cpu0;
        let _ = tx.send(Ok(((k * sent_to) as f64 / secs, cpu)));
    })
    .map_err(|e| e.to_string())?;
    orbit::register(SENDER, sender.pid()).map_err(|e| e.to_string())?;
    orbit_dist::serve::<u64>(sender.pid());
    let me = sender.pid();
    spawn_members(&scope, PER_NODE, k, move || {
        let _ = orbit::send(me, 0u64);
    })
    .await?;
    if !node.connect(b).await {
        return Err(format!("cannot connect to {b}"));
    }
    // pg's discover/sync brings B's members; wait (at most 30 s) until all are listed.
    let t = Instant::now();
    loop {
        let n = scope.get_members(GROUP).len() as u64;
        if n == want {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            return Err(format!("{n} of {want} members after 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = go_tx.send(());
    let (rate, cpu) = rx.await.map_err(|_| "the sender stopped".to_string())??;
    println!("rate {rate} cpu_us {cpu}");
    Ok(())
}
