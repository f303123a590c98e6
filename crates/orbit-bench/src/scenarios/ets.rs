//! Scenario `ets`: `orbit::ets` against the raw concurrent maps (dashmap, scc), the
//! BEAM's ets (in every round), and the seed's GenServer-holding-a-HashMap.
//!
//! Figures (subject `orbit`, `beam`, `dashmap`, `scc`; `genserver` below):
//! - `inserts_per_s`: N = 1M (× `--scale`) inserts of `(i, i)` from one
//!   process/thread, with `cpu_us_per_insert`;
//! - `lookups_per_s_2readers`: then 2 readers doing 2N random lookups each, total
//!   lookups per second, with `cpu_us_per_lookup`. Orbit's lookup is the copying
//!   `Table::lookup` (as `ets:lookup` copies the object out); every subject's readers
//!   walk the same xorshift key sequence (the BEAM's generated before its clock) on
//!   keys `0..N`;
//! - `bytes_per_object`: table memory / objects for N objects of two integers
//!   (orbit: `info().memory`; the BEAM: `ets:info(T, memory) * wordsize`), median of
//!   rounds;
//! - `reads_per_s_{2,8}readers`: the same random reads through a table vs through a
//!   GenServer holding a `HashMap` (every read a call), 2 and 8 reader processes
//!   (orbit only, one run).
//!
//! Every subject, the BEAM included (`beam_bench:run([ets, N])`, `+S N:N`, a fresh
//! `erl` per round), runs in every one of the `--rounds` rounds, the order rotated each
//! round. Each figure is the median of rounds (headline, used by the ratios), with
//! `_best`, `_min`, `_max` and the CPU per unit: `getrusage(RUSAGE_SELF)` around each
//! phase of an in-process Rust round, the BEAM's `statistics(runtime)` (every emulator
//! thread) around each of its phases.
//!
//! Goals: orbit at least 0.8x dashmap; at least 3x the BEAM's inserts and 2x its
//! lookups; bytes per object at most the BEAM's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use orbit::ets::Table;
use orbit::{CallReply, GenServer, ReplyTo, ServerContext};

use super::Ctx;
use crate::report::Reporter;
use crate::util::{cpu_of, run_rotated, Rounds, Step};

const SCENARIO: &str = "ets";
const N: u64 = 1_000_000;
const READERS: usize = 2;

/// A cheap per-reader pseudo-random key in `0..n` (xorshift).
#[inline]
fn next_key(state: &mut u64, n: u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x % n
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime for the ets scenario")
}

fn per_s(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Runs `readers` reader processes doing `per_reader` random lookups each; returns the
/// total lookups per second.
async fn table_readers(t: &Table<u64, u64>, readers: usize, per_reader: u64, n: u64) -> f64 {
    let start = Instant::now();
    let mut hs = Vec::new();
    for r in 0..readers {
        let t = t.clone();
        hs.push(
            orbit::spawn(move |_ctx: orbit::Context<()>| async move {
                let mut s = 0x9E37_79B9_7F4A_7C15u64 ^ (r as u64 + 1);
                let mut hits = 0u64;
                for i in 0..per_reader {
                    let k = next_key(&mut s, n);
                    if t.lookup(&k).is_ok_and(|v| !v.is_empty()) {
                        hits += 1;
                    }
                    if i % 65_536 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                std::hint::black_box(hits);
            })
            .expect("spawn reader"),
        );
    }
    for h in hs {
        h.wait_exit().await;
    }
    per_s(readers as u64 * per_reader, start.elapsed().as_secs_f64())
}

/// One subject-round: inserts/s and CPU µs per insert, lookups/s and CPU µs per lookup,
/// and bytes per object when measured.
struct Round {
    ins: f64,
    ins_cpu_us: f64,
    look: f64,
    look_cpu_us: f64,
    bytes: Option<f64>,
}

/// One round of orbit's table with `n` keys and `lookups` lookups per reader.
fn orbit_round(n: u64, lookups: u64) -> Round {
    let rt = runtime(crate::util::WORKERS);
    rt.block_on(async {
        orbit::run_in_process(async move {
            let t: Table<u64, u64> = Table::builder()
                .public()
                .read_concurrency(true)
                .write_concurrency(true)
                .build()
                .expect("create table");
            let c0 = crate::util::cpu_s(libc::RUSAGE_SELF);
            let start = Instant::now();
            for i in 0..n {
                t.insert(i, i).expect("insert");
            }
            let ins = per_s(n, start.elapsed().as_secs_f64());
            let c1 = crate::util::cpu_s(libc::RUSAGE_SELF);
            let look = table_readers(&t, READERS, lookups, n).await;
            let c2 = crate::util::cpu_s(libc::RUSAGE_SELF);
            let info = t.info().expect("info");
            t.delete_table().ok();
            Round {
                ins,
                ins_cpu_us: (c1 - c0) * 1e6 / n as f64,
                look,
                look_cpu_us: (c2 - c1) * 1e6 / (READERS as u64 * lookups) as f64,
                bytes: Some(info.memory as f64 / info.size.max(1) as f64),
            }
        })
        .await
        .expect("orbit ets run")
    })
}

fn threads_lookup(readers: usize, n: u64, lookups: u64, f: impl Fn(u64) -> bool + Sync) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for r in 0..readers {
            let f = &f;
            s.spawn(move || {
                let mut st = 0x9E37_79B9_7F4A_7C15u64 ^ (r as u64 + 1);
                let mut hits = 0u64;
                for _ in 0..lookups {
                    if f(next_key(&mut st, n)) {
                        hits += 1;
                    }
                }
                std::hint::black_box(hits);
            });
        }
    });
    per_s(readers as u64 * lookups, start.elapsed().as_secs_f64())
}

/// One round of a raw map: `insert` fills it from one thread, `get` reads it from
/// [`READERS`] threads.
fn map_round(
    n: u64,
    lookups: u64,
    insert: impl Fn(u64),
    get: impl Fn(u64) -> bool + Sync,
) -> Round {
    let (ins, ins_cpu) = cpu_of(|| {
        let start = Instant::now();
        for i in 0..n {
            insert(i);
        }
        per_s(n, start.elapsed().as_secs_f64())
    });
    let (look, look_cpu) = cpu_of(|| threads_lookup(READERS, n, lookups, get));
    Round {
        ins,
        ins_cpu_us: ins_cpu * 1e6 / n as f64,
        look,
        look_cpu_us: look_cpu * 1e6 / (READERS as u64 * lookups) as f64,
        bytes: None,
    }
}

/// One round of the BEAM's ets (`beam_bench:run([ets, N])` in a fresh `erl`).
fn beam_round(n: u64) -> Option<Round> {
    let v = crate::beam::run_one("ets", n)?;
    let g = |k: &str| v.get(k).copied();
    let lookups = (READERS as u64 * 2 * n) as f64;
    Some(Round {
        ins: g("ets_inserts_per_s")?,
        ins_cpu_us: g("ins_cpu_s")? * 1e6 / n as f64,
        look: g("ets_lookups_per_s_2readers")?,
        look_cpu_us: g("look_cpu_s")? * 1e6 / lookups,
        bytes: g("bytes_per_object"),
    })
}

/// Runs orbit, the BEAM, dashmap and scc in `rounds` rounds (order rotated) and emits
/// each subject's median, best, spread and CPU per unit, and the goal ratios (medians).
fn table_figures(ctx: &mut Ctx) {
    let n = ctx.n(N);
    let lookups = 2 * n;
    let mut look = Rounds::default();
    // Inserts and bytes per object beside the lookups (`look`, the rounds' own figures).
    let ins = std::cell::RefCell::new(Rounds::default());
    let bytes = std::cell::RefCell::new(Rounds::default());
    {
        let keep = |subject: &'static str, round: Round, look: &mut Rounds| {
            if let Some(b) = round.bytes {
                bytes.borrow_mut().add(subject, b);
            }
            let mut ins = ins.borrow_mut();
            ins.add(subject, round.ins);
            ins.add_cpu(subject, round.ins_cpu_us);
            look.add(subject, round.look);
            look.add_cpu(subject, round.look_cpu_us);
        };
        let mut steps: Vec<Step> = vec![
            Box::new(|r| keep("orbit", orbit_round(n, lookups), r)),
            Box::new(|r| {
                if let Some(round) = beam_round(n) {
                    keep("beam", round, r);
                }
            }),
            Box::new(|r| {
                let m: dashmap::DashMap<u64, u64> = dashmap::DashMap::new();
                let round = map_round(
                    n,
                    lookups,
                    |i| {
                        m.insert(i, i);
                    },
                    |k| m.get(&k).is_some(),
                );
                keep("dashmap", round, r);
            }),
            Box::new(|r| {
                let m: scc::HashMap<u64, u64> = scc::HashMap::new();
                let round = map_round(
                    n,
                    lookups,
                    |i| {
                        let _ = m.insert(i, i);
                    },
                    |k| m.read(&k, |_, v| *v).is_some(),
                );
                keep("scc", round, r);
            }),
        ];
        run_rotated(ctx.rounds, &mut steps, &mut look);
    }
    let (ins, bytes) = (ins.into_inner(), bytes.into_inner());
    for subject in ["orbit", "beam", "dashmap", "scc"] {
        ctx.emit_rounds(SCENARIO, subject, "inserts_per_s", "insert", &ins);
        ctx.emit_rounds(SCENARIO, subject, "lookups_per_s_2readers", "lookup", &look);
        ctx.emit_opt(SCENARIO, subject, "bytes_per_object", bytes.median(subject));
    }
    let o = |m: &Rounds| m.median("orbit");
    for (metric, m) in [("inserts_per_s", &ins), ("lookups_per_s_2readers", &look)] {
        ctx.goal(
            SCENARIO,
            &format!("orbit_vs_dashmap_{metric}_min_0.8x"),
            o(m),
            m.median("dashmap"),
        );
        ctx.goal(
            SCENARIO,
            &format!("orbit_vs_scc_{metric}"),
            o(m),
            m.median("scc"),
        );
    }
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_inserts_min_3x",
        o(&ins),
        ins.median("beam"),
    );
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_lookups_2readers_min_2x",
        o(&look),
        look.median("beam"),
    );
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_bytes_per_object_max_1x",
        o(&bytes),
        bytes.median("beam"),
    );
}

/// The seed's bottleneck: a GenServer holding the map, every read a call.
struct MapServer(HashMap<u64, u64>);

impl GenServer for MapServer {
    type Call = u64;
    type Reply = Option<u64>;
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        k: u64,
        _from: &mut ReplyTo<Option<u64>>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<Option<u64>, ()> {
        CallReply::Reply(self.0.get(&k).copied())
    }
}

fn genserver_vs_table(rep: &mut Reporter) {
    const SMALL: u64 = 100_000;
    const CALLS: u64 = 100_000;
    let rt = runtime(2);
    for readers in [2usize, 8] {
        let (gs, tab) = rt.block_on(async {
            let server = orbit::gen_server::start(MapServer((0..SMALL).map(|i| (i, i)).collect()))
                .await
                .expect("start map server");
            let server = Arc::new(server);
            let start = Instant::now();
            let mut hs = Vec::new();
            for r in 0..readers {
                let server = server.clone();
                hs.push(
                    orbit::spawn(move |_ctx: orbit::Context<()>| async move {
                        let mut s = 0x2545_F491_4F6C_DD1Du64 ^ (r as u64 + 1);
                        for _ in 0..CALLS {
                            let k = next_key(&mut s, SMALL);
                            std::hint::black_box(server.call(k).await.ok());
                        }
                    })
                    .expect("spawn caller"),
                );
            }
            for h in hs {
                h.wait_exit().await;
            }
            let gs = per_s(readers as u64 * CALLS, start.elapsed().as_secs_f64());
            let t: Table<u64, u64> = Table::builder()
                .public()
                .read_concurrency(true)
                .build()
                .expect("table");
            t.insert_many((0..SMALL).map(|i| (i, i))).expect("fill");
            let tab = table_readers(&t, readers, 1_000_000, SMALL).await;
            t.delete_table().ok();
            (gs, tab)
        });
        rep.emit(
            SCENARIO,
            "genserver",
            &format!("reads_per_s_{readers}readers"),
            gs,
        );
        rep.emit(
            SCENARIO,
            "orbit",
            &format!("reads_per_s_{readers}readers"),
            tab,
        );
    }
    let r = |rep: &Reporter, s: &str, n: usize| {
        rep.get(SCENARIO, s, &format!("reads_per_s_{n}readers"))
    };
    let (t2, t8, g2, g8) = (
        r(rep, "orbit", 2),
        r(rep, "orbit", 8),
        r(rep, "genserver", 2),
        r(rep, "genserver", 8),
    );
    rep.ratio(SCENARIO, "table_vs_genserver_2readers", t2, g2);
    rep.ratio(SCENARIO, "table_vs_genserver_8readers", t8, g8);
}

/// Runs the scenario: the tables and raw maps with the BEAM in every round, then the
/// GenServer comparison.
pub fn run(ctx: &mut Ctx) {
    table_figures(ctx);
    genserver_vs_table(&mut ctx.rep);
}
