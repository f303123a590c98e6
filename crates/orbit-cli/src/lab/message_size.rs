//! Message size: 1 KB and 1 MB payloads sent to a partner process and back, moved
//! (Orbit: the message is moved into the mailbox, whatever its size) or cloned on every
//! send (a model of a copying send, as on the BEAM, where each send copies the message
//! into the receiver's heap and only binaries over 64 bytes are shared by reference
//! counting). Both variants run in Orbit in the same run; no BEAM is measured here, and
//! no figure or ratio of this scenario is a comparison with the BEAM.
//!
//! Each client process has its own echo partner, so no single process is in the way;
//! the only difference between variants is the payload and whether it is copied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit::{Context, Message, Pid};
use serde_json::{json, Map};

use super::measure::{spawn_clients, watch, Probe, VariantResult};
use super::report::{dur, hundredths, mb, num};
use super::{Error, Lab, Report};

const SCENARIO: &str = "message_size";
const KB: usize = 1024;
const MB: usize = 1024 * 1024;

/// What the echo partner receives.
enum Echo {
    /// Send the payload back to this process.
    Ping(Pid, Vec<u8>),
    /// The client is done.
    Stop,
}

/// Rounds per variant: the variants take turns, so that a stretch of time when the
/// machine is busy elsewhere slows every variant alike rather than one of them.
const ROUNDS: usize = 3;

const VARIANTS: [(&str, usize, bool); 4] = [
    ("1 KB moved", KB, false),
    ("1 KB cloned", KB, true),
    ("1 MB moved", MB, false),
    ("1 MB cloned", MB, true),
];

/// Runs the scenario.
pub async fn run(lab: &Lab) -> Result<Report, Error> {
    let slice = (lab.duration() / ROUNDS as u32).max(Duration::from_millis(100));
    let mut rounds: Vec<Vec<VariantResult>> = Vec::new();
    for _ in 0..ROUNDS {
        let mut round = Vec::new();
        for (name, size, clone) in VARIANTS {
            round.push(variant(lab, name, size, clone, slice).await?);
        }
        rounds.push(round);
    }
    Ok(verdict(lab, rounds))
}

async fn variant(
    lab: &Lab,
    name: &str,
    size: usize,
    clone: bool,
    duration: Duration,
) -> Result<VariantResult, Error> {
    let probe = Probe::new();
    let clients = spawn_clients(
        lab.clients(),
        &probe,
        move |_, probe: Arc<Probe>, ctx: Context<Vec<u8>>| client(probe, ctx, size, clone),
    )?;
    Ok(watch(lab, SCENARIO, name, duration, &probe, &clients, |_| {}).await)
}

/// The median of `v` (0 when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// One client: sends its payload to its echo partner and waits for it to come back.
async fn client(probe: Arc<Probe>, mut ctx: Context<Vec<u8>>, size: usize, clone: bool) {
    let Ok(echo) = orbit::spawn(move |mut ctx: Context<Echo>| async move {
        while let Message::Msg(Echo::Ping(from, payload)) = ctx.recv().await {
            // Cloning and dropping the original is what a copying send costs.
            let back = if clone { payload.clone() } else { payload };
            if orbit::send(from, back).is_err() {
                break;
            }
        }
    }) else {
        return;
    };
    let me = ctx.pid();
    let mut payload = vec![7u8; size];
    let mut rec = probe.recorder();
    while probe.running() {
        let t = Instant::now();
        let out = if clone {
            payload.clone()
        } else {
            std::mem::take(&mut payload)
        };
        if echo.send(Echo::Ping(me, out)).is_err() {
            break;
        }
        match ctx.recv().await {
            Message::Msg(back) if !clone => payload = back,
            Message::Msg(_) => {}
            _ => break,
        }
        rec.time(t);
    }
    let _ = echo.send(Echo::Stop);
}

fn verdict(lab: &Lab, rounds: Vec<Vec<VariantResult>>) -> Report {
    // Ratios are taken within a round (the variants of one round ran back to back) and
    // their median across rounds is reported.
    let rps_in = |round: &[VariantResult], n: &str| {
        round.iter().find(|r| r.variant == n).map_or(0.0, |r| r.rps)
    };
    let ratio = |a: &str, b: &str| {
        median(
            rounds
                .iter()
                .map(|r| rps_in(r, a) / rps_in(r, b).max(1.0))
                .collect(),
        )
    };
    let slower = ratio("1 MB moved", "1 MB cloned");
    let size_cost = ratio("1 MB moved", "1 KB moved");
    // Each variant is shown by its median round.
    let mut results: Vec<VariantResult> = Vec::new();
    for (name, _, _) in VARIANTS {
        let mut of: Vec<VariantResult> = rounds
            .iter()
            .flat_map(|r| r.iter().filter(|v| v.variant == name).cloned())
            .collect();
        of.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        let mid = of.len() / 2;
        if let Some(r) = of.into_iter().nth(mid) {
            results.push(r);
        }
    }
    let get = |n: &str| results.iter().find(|r| r.variant == n);
    let rps = |n: &str| get(n).map_or(0.0, |r| r.rps);
    let heap = |n: &str| get(n).map_or(0, |r| r.heap_peak);
    let mean = |n: &str| get(n).map_or(Duration::ZERO, |r| r.latency.mean);
    let mut facts = Map::new();
    facts.insert("move_vs_clone_1mb_rps".into(), json!(hundredths(slower)));
    facts.insert("move_1mb_vs_1kb_rps".into(), json!(hundredths(size_cost)));
    facts.insert("heap_1mb_cloned_bytes".into(), json!(heap("1 MB cloned")));
    facts.insert("heap_1mb_moved_bytes".into(), json!(heap("1 MB moved")));
    Report {
        scenario: SCENARIO,
        title: format!(
            "{} clients, each sending a payload to its own partner process and back",
            lab.clients()
        ),
        bottleneck: "copying 1 MB messages".into(),
        verdict: format!(
            "bottleneck: copying 1 MB messages — a copy per send cuts round trips {slower:.0}x ({} vs {} /s, mean {} vs {}) and holds +{} MB heap vs +{} MB moved; moved, 1 MB round trips run at {:.1}x the rate of 1 KB ones: pass ownership, don't clone",
            num(rps("1 MB cloned")),
            num(rps("1 MB moved")),
            dur(mean("1 MB cloned")),
            dur(mean("1 MB moved")),
            mb(heap("1 MB cloned")),
            mb(heap("1 MB moved")),
            size_cost
        ),
        results,
        facts,
    }
}
