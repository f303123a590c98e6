//! Scenario `ets`: `orbit::ets` against the raw concurrent maps (dashmap, scc), the
//! BEAM's ets figures, and the seed's GenServer-holding-a-HashMap.
//!
//! Figures (subject `orbit`, `dashmap`, `scc`, `genserver`):
//! - `inserts_per_s`: 1M inserts of `(i, i)` from one process/thread;
//! - `lookups_per_s_2readers`: then 2 readers doing 2M random lookups each, total
//!   lookups per second (the BEAM script's `ets_lookups_per_s_2readers`). Orbit's
//!   lookup is the copying `Table::lookup` (as `ets:lookup` copies the object out);
//!   the BEAM readers walk the same xorshift key sequence (generated before their
//!   clock) and do the same 2M lookups each on keys `0..1M`;
//! - `bytes_per_object`: table memory / objects for 1M objects of two integers
//!   (orbit: `info().memory`; the BEAM: `ets:info(T, memory) * wordsize`);
//! - `reads_per_s_{2,8}readers`: the same random reads through a table vs through a
//!   GenServer holding a `HashMap` (every read a call), 2 and 8 reader processes.
//!
//! The table subjects (orbit, dashmap, scc) run in `--rounds` interleaved rounds and
//! each reports its best round. Not yet converted (issue 17): the BEAM figures still
//! come from one `beam_bench:run([ets, 1000000])` per invocation, not from every round,
//! and its CPU is not reported here yet.
//!
//! [`beam_ratios`] turns the BEAM's figures (parsed by the beam module) into the goal
//! ratios of the issue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use orbit::ets::Table;
use orbit::{CallReply, GenServer, ReplyTo, ServerContext};

use crate::report::Reporter;
use crate::util::Rounds;

const SCENARIO: &str = "ets";
const N: u64 = 1_000_000;
const LOOKUPS: u64 = 2_000_000;
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

/// One round of orbit's table: (inserts/s, lookups/s with 2 readers, bytes per object).
fn orbit_round() -> (f64, f64, f64) {
    let rt = runtime(READERS);
    rt.block_on(async {
        orbit::run_in_process(async {
            let t: Table<u64, u64> = Table::builder()
                .public()
                .read_concurrency(true)
                .write_concurrency(true)
                .build()
                .expect("create table");
            let start = Instant::now();
            for i in 0..N {
                t.insert(i, i).expect("insert");
            }
            let ins = per_s(N, start.elapsed().as_secs_f64());
            let look = table_readers(&t, READERS, LOOKUPS, N).await;
            let info = t.info().expect("info");
            t.delete_table().ok();
            (ins, look, info.memory as f64 / info.size.max(1) as f64)
        })
        .await
        .expect("orbit ets run")
    })
}

fn threads_lookup(readers: usize, f: impl Fn(u64) -> bool + Sync) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for r in 0..readers {
            let f = &f;
            s.spawn(move || {
                let mut st = 0x9E37_79B9_7F4A_7C15u64 ^ (r as u64 + 1);
                let mut hits = 0u64;
                for _ in 0..LOOKUPS {
                    if f(next_key(&mut st, N)) {
                        hits += 1;
                    }
                }
                std::hint::black_box(hits);
            });
        }
    });
    per_s(readers as u64 * LOOKUPS, start.elapsed().as_secs_f64())
}

/// One round of dashmap: (inserts/s, lookups/s with 2 reader threads).
fn dashmap_round() -> (f64, f64) {
    let m: dashmap::DashMap<u64, u64> = dashmap::DashMap::new();
    let start = Instant::now();
    for i in 0..N {
        m.insert(i, i);
    }
    let ins = per_s(N, start.elapsed().as_secs_f64());
    (ins, threads_lookup(READERS, |k| m.get(&k).is_some()))
}

/// One round of scc's `HashMap`: (inserts/s, lookups/s with 2 reader threads).
fn scc_round() -> (f64, f64) {
    let m: scc::HashMap<u64, u64> = scc::HashMap::new();
    let start = Instant::now();
    for i in 0..N {
        let _ = m.insert(i, i);
    }
    let ins = per_s(N, start.elapsed().as_secs_f64());
    (
        ins,
        threads_lookup(READERS, |k| m.read(&k, |_, v| *v).is_some()),
    )
}

/// Runs orbit, dashmap and scc in `rounds` interleaved rounds and emits each subject's
/// best round (the first subject of a process pays the allocator's first touches, so
/// a single round in a fixed order would favour the later ones).
fn table_figures(rep: &mut Reporter, rounds: usize) {
    let (mut ins, mut look, mut bytes) = (Rounds::default(), Rounds::default(), Rounds::default());
    for _ in 0..rounds.max(1) {
        let (i, l, b) = orbit_round();
        ins.add("orbit", i);
        look.add("orbit", l);
        bytes.add("orbit", b);
        for (subject, round) in [
            ("dashmap", dashmap_round as fn() -> (f64, f64)),
            ("scc", scc_round),
        ] {
            let (i, l) = round();
            ins.add(subject, i);
            look.add(subject, l);
        }
    }
    for subject in ["orbit", "dashmap", "scc"] {
        if let Some(v) = ins.best(subject) {
            rep.emit(SCENARIO, subject, "inserts_per_s", v);
        }
        if let Some(v) = look.best(subject) {
            rep.emit(SCENARIO, subject, "lookups_per_s_2readers", v);
        }
    }
    if let Some(v) = bytes.least("orbit") {
        rep.emit(SCENARIO, "orbit", "bytes_per_object", v);
    }
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

/// Runs the scenario: orbit's table, the raw maps, and the GenServer comparison; emits
/// the orbit-vs-raw ratios (goal: orbit at least 0.8 of dashmap, i.e. at most 25% cost).
pub fn run(rep: &mut Reporter, rounds: usize) {
    table_figures(rep, rounds);
    for metric in ["inserts_per_s", "lookups_per_s_2readers"] {
        let o = rep.get(SCENARIO, "orbit", metric);
        rep.ratio(
            SCENARIO,
            &format!("orbit_vs_dashmap_{metric}_min_0.8x"),
            o,
            rep.get(SCENARIO, "dashmap", metric),
        );
        rep.ratio(
            SCENARIO,
            &format!("orbit_vs_scc_{metric}"),
            o,
            rep.get(SCENARIO, "scc", metric),
        );
    }
    genserver_vs_table(rep);
}

/// Emits the goal ratios against the BEAM's figures (from `beam_bench.erl`:
/// `ets_inserts_per_s`, `ets_lookups_per_s_2readers`, and, if measured,
/// `ets:info(T, memory) * wordsize / 1M`). Goals: inserts >= 3, lookups >= 2,
/// memory ratio (orbit / beam) <= 1.
pub fn beam_ratios(
    rep: &mut Reporter,
    beam_inserts_per_s: f64,
    beam_lookups_per_s_2readers: f64,
    beam_bytes_per_object: Option<f64>,
) {
    rep.emit(SCENARIO, "beam", "inserts_per_s", beam_inserts_per_s);
    rep.emit(
        SCENARIO,
        "beam",
        "lookups_per_s_2readers",
        beam_lookups_per_s_2readers,
    );
    let o = |rep: &Reporter, m: &str| rep.get(SCENARIO, "orbit", m);
    rep.ratio(
        SCENARIO,
        "orbit_vs_beam_inserts_min_3x",
        o(rep, "inserts_per_s"),
        Some(beam_inserts_per_s),
    );
    rep.ratio(
        SCENARIO,
        "orbit_vs_beam_lookups_2readers_min_2x",
        o(rep, "lookups_per_s_2readers"),
        Some(beam_lookups_per_s_2readers),
    );
    if let Some(b) = beam_bytes_per_object {
        rep.emit(SCENARIO, "beam", "bytes_per_object", b);
        rep.ratio(
            SCENARIO,
            "orbit_vs_beam_bytes_per_object_max_1x",
            o(rep, "bytes_per_object"),
            Some(b),
        );
    }
}
