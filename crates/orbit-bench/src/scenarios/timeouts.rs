//! `timeouts`: when a call's timeout fires, against a server that never answers.
//!
//! Issue 15 found call timeouts that never fired (a reused timer slot) and ones that
//! fired up to 17 ms early (a lagging coarse clock). This scenario measures, for every
//! call, `elapsed - timeout`, on a fresh 2-worker runtime per subject and round:
//!
//! - `orbit_task`: `ServerRef::call_timeout` from tokio tasks;
//! - `orbit_process`: the same from orbit processes;
//! - `tokio`: `tokio::time::timeout` around a `oneshot::Receiver` whose sender is kept
//!   and never used (the same timer underneath: the floor for any design on tokio).
//!
//! Each round makes [`N`] calls from [`CALLERS`] concurrent callers, each call with a
//! timeout drawn from 1..=20 ms by a seeded generator (the same sequence for every
//! subject). The orbit server keeps every `ReplyTo` (`CallReply::NoReply`) and never
//! replies. A call that has not returned [`LOST_AFTER`] past its timeout counts as
//! `lost`; one that returned before its timeout as `early`.
//!
//! Figures per subject (median of rounds, spread beside): lateness p50 / p99 / p99.9 /
//! max in µs, `earliest_us` (the smallest `elapsed - timeout` of the round; negative
//! would be early), `cpu_us_per_call`; `lost` and `early` summed over all rounds
//! (promise: both 0). Ratios: orbit's p99 lateness over tokio's, for tasks and processes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::oneshot;

use super::Ctx;
use crate::util::{cpu_of, on_runtime, Rounds};

const SCENARIO: &str = "timeouts";
/// Calls per round (scaled by `--scale`).
const N: u64 = 100_000;
/// Concurrent callers.
const CALLERS: u64 = 1_000;
/// A call not returned this long after its timeout is lost.
const LOST_AFTER: Duration = Duration::from_secs(10);
const SUBJECTS: [&str; 3] = ["orbit_task", "orbit_process", "tokio"];
const METRICS: [&str; 5] = [
    "lateness_p50_us",
    "lateness_p99_us",
    "lateness_p999_us",
    "lateness_max_us",
    "earliest_us",
];

/// A GenServer that never replies: it keeps every caller's `ReplyTo`.
struct Silent(Vec<orbit::ReplyTo<()>>);

impl orbit::GenServer for Silent {
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _req: (),
        from: &mut orbit::ReplyTo<()>,
        _ctx: &mut orbit::ServerContext<Self>,
    ) -> orbit::CallReply<(), ()> {
        self.0.push(from.defer());
        orbit::CallReply::NoReply
    }
}

/// What one caller saw: (elapsed - timeout in ns, signed) per call, and lost calls.
struct CallerOut {
    deltas: Vec<i64>,
    lost: u64,
}

/// The `i`-th timeout of caller `c`: 1..=20 ms, the same for every subject.
fn timeout_of(c: u64, i: u64) -> Duration {
    let mut x = (c << 32 | i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    Duration::from_micros(1_000 + x % 19_001)
}

fn delta_ns(elapsed: Duration, limit: Duration) -> i64 {
    let e = i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX);
    let l = i64::try_from(limit.as_nanos()).unwrap_or(i64::MAX);
    e - l
}

/// One call of `subject`'s kind: how long it took to give up, or `None` if lost.
async fn one_call(server: Option<&orbit::ServerRef<Silent>>, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    match server {
        Some(s) => {
            let r = tokio::time::timeout(limit + LOST_AFTER, s.call_timeout((), limit)).await;
            match r {
                Ok(Err(orbit::CallError::Timeout)) => Some(t0.elapsed()),
                Ok(other) => panic!("timeouts: a silent server's call returned {other:?}"),
                Err(_) => None,
            }
        }
        None => {
            let (tx, rx) = oneshot::channel::<()>();
            let r = tokio::time::timeout(limit, rx).await;
            drop(tx);
            match r {
                Err(_) => Some(t0.elapsed()),
                Ok(_) => panic!("timeouts: the kept oneshot resolved"),
            }
        }
    }
}

async fn caller(server: Option<orbit::ServerRef<Silent>>, c: u64, calls: u64) -> CallerOut {
    let mut out = CallerOut {
        deltas: Vec::with_capacity(calls as usize),
        lost: 0,
    };
    for i in 0..calls {
        let limit = timeout_of(c, i);
        match one_call(server.as_ref(), limit).await {
            Some(e) => out.deltas.push(delta_ns(e, limit)),
            None => out.lost += 1,
        }
    }
    out
}

/// One round of `subject`: every caller's figures.
fn round(subject: &'static str, n: u64) -> Vec<CallerOut> {
    on_runtime(move || async move {
        let per = (n / CALLERS).max(1);
        let server = if subject == "tokio" {
            None
        } else {
            Some(
                orbit::gen_server::start(Silent(Vec::new()))
                    .await
                    .expect("GenServer start"),
            )
        };
        let mut waits = Vec::with_capacity(CALLERS as usize);
        for c in 0..CALLERS {
            let s = server.clone();
            match subject {
                "orbit_process" => {
                    let (tx, rx) = oneshot::channel();
                    orbit::spawn(move |_ctx: orbit::Context<()>| async move {
                        let _ = tx.send(caller(s, c, per).await);
                    })
                    .expect("orbit::spawn");
                    waits.push(tokio::spawn(async move { rx.await.expect("caller ran") }));
                }
                _ => waits.push(tokio::spawn(caller(s, c, per))),
            }
        }
        let mut outs = Vec::with_capacity(waits.len());
        for w in waits {
            outs.push(w.await.expect("caller finished"));
        }
        if let Some(s) = server {
            let _ = s
                .stop(orbit::ExitReason::Normal, Duration::from_secs(5))
                .await;
        }
        outs
    })
}

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n = ctx.n(N);
    let mut figs: HashMap<&'static str, Rounds> = HashMap::new();
    let mut lost: HashMap<&'static str, u64> = HashMap::new();
    let mut early: HashMap<&'static str, u64> = HashMap::new();
    for r in 0..ctx.rounds {
        for k in 0..SUBJECTS.len() {
            let subject = SUBJECTS[(r + k) % SUBJECTS.len()];
            let (outs, cpu_s) = cpu_of(|| round(subject, n));
            let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("histogram bounds are valid");
            let mut earliest = i64::MAX;
            let mut calls = 0u64;
            for o in &outs {
                *lost.entry(subject).or_default() += o.lost;
                calls += o.deltas.len() as u64 + o.lost;
                for &d in &o.deltas {
                    earliest = earliest.min(d);
                    if d < 0 {
                        *early.entry(subject).or_default() += 1;
                    }
                    h.saturating_record(d.max(1) as u64);
                }
            }
            let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            let vals = [
                us(0.5),
                us(0.99),
                us(0.999),
                h.max() as f64 / 1000.0,
                earliest as f64 / 1000.0,
            ];
            for (m, v) in METRICS.iter().zip(vals) {
                figs.entry(m).or_default().add(subject, v);
            }
            figs.entry("lateness_p99_us")
                .or_default()
                .add_cpu(subject, cpu_s * 1e6 / calls.max(1) as f64);
        }
    }
    for s in SUBJECTS {
        for m in METRICS {
            if let Some(r) = figs.get(m) {
                ctx.emit_rounds(SCENARIO, s, m, "call", r);
            }
        }
        ctx.rep.emit(
            SCENARIO,
            s,
            "lost_total",
            lost.get(s).copied().unwrap_or(0) as f64,
        );
        ctx.rep.emit(
            SCENARIO,
            s,
            "early_total",
            early.get(s).copied().unwrap_or(0) as f64,
        );
    }
    let p99 = &figs["lateness_p99_us"];
    ctx.goal(
        SCENARIO,
        "orbit_task_p99_lateness_vs_tokio",
        p99.median("orbit_task"),
        p99.median("tokio"),
    );
    ctx.goal(
        SCENARIO,
        "orbit_process_p99_lateness_vs_tokio",
        p99.median("orbit_process"),
        p99.median("tokio"),
    );
}
