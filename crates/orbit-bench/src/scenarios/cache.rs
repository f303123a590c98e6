//! Scenario `cache`: `orbit::cache::ConCache` against moka's sync cache (both with a
//! TTL on every entry) in the same run, and against the real ConCache: `get` runs
//! `beam/concache_bench.exs` with `../shared/beamlibs` in every round (subjects
//! `orbit_get` / `beam_get`: median of rounds, spread, CPU per get, same 100k keys and
//! read count). put, get_or_store and isolated update still compare against constants
//! from `../shared/reference/beam-baselines.md` (subject `beam_baseline_stale`, goal
//! lines prefixed `STALE_`): not same-run, to be converted.
//!
//! Every cache has a global TTL of 60 s (ConCache: `ttl_check_interval` 1 s). Figures:
//! - `get_per_s_2readers`: 2 processes (moka: 2 tasks) reading random keys of 100k;
//! - `put_per_s` / `put_per_s_2writers`: locked puts of random keys of 1M, 1 and 2
//!   writer processes (must scale: nothing funnels through one process);
//! - `get_or_store_per_s_half_hits`: every key of 1M once, in scrambled order, half of
//!   them stored beforehand (moka: `get_with`);
//! - `isolated_update_per_s_2procs`: `update` (read-modify-write under the key's lock)
//!   on 1,000 hot keys from 2 processes (moka: `and_compute_with`);
//! - `bytes_per_entry_1m`: resident bytes per entry of 1M `(u64, u64)` entries with a
//!   TTL, each subject measured in a fresh child process (`__cache-mem-child`).
//!
//! Goals: get and put at least 1x moka; put, get, isolated update and get_or_store at
//! least 5x ConCache on the BEAM.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use orbit::cache::{CacheError, ConCache, Options, Ttl};
use orbit::Context;

use super::Ctx;
use crate::util::{measured, on_runtime, per_s, rss_bytes, Rounds};

const SCENARIO: &str = "cache";
const TTL: Duration = Duration::from_secs(60);
const CHECK: Duration = Duration::from_secs(1);
const GET_KEYS: u64 = 100_000;
const PUT_KEYS: u64 = 1 << 20;
const HOT_KEYS: u64 = 1_000;

/// ConCache's BEAM figures (upper ends of the spreads in beam-baselines.md): STALE
/// constants from another day, printed as `beam_baseline` and marked so. `get` is
/// measured live instead (subject `beam`, `beam/concache_bench.exs`).
const BEAM: &[(&str, f64)] = &[
    ("put_per_s", 110_000.0),
    ("isolated_update_per_s_2procs", 170_000.0),
    ("get_or_store_per_s_half_hits", 210_000.0),
];

type Orbit = ConCache<u64, u64>;
type Moka = moka::sync::Cache<u64, u64>;

#[inline]
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A bijection of `0..PUT_KEYS` (odd multiplier modulo a power of two).
#[inline]
fn scramble(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B1) & (PUT_KEYS - 1)
}

async fn orbit_cache() -> Orbit {
    ConCache::start(
        Options::new()
            .ttl_check_interval(CHECK)
            .global_ttl(Ttl::After(TTL)),
    )
    .await
    .expect("cannot start the cache")
}

fn moka_cache() -> Moka {
    moka::sync::Cache::builder().time_to_live(TTL).build()
}

/// Runs `work(i)` in `n` orbit processes at once; returns the elapsed time.
async fn in_processes<F, Fut>(n: u64, work: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let work = Arc::new(work);
    let (go_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut hs = Vec::new();
    for i in 0..n {
        let (work, mut go) = (work.clone(), go_tx.subscribe());
        hs.push(
            orbit::spawn(move |_ctx: Context<()>| async move {
                let _ = go.recv().await;
                work(i).await;
            })
            .expect("spawn"),
        );
    }
    let start = Instant::now();
    let _ = go_tx.send(());
    for h in hs {
        h.wait_exit().await;
    }
    start.elapsed()
}

/// Runs `work(i)` in `n` tokio tasks at once; returns the elapsed time.
async fn in_tasks<F>(n: u64, work: F) -> Duration
where
    F: Fn(u64) + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let start = Instant::now();
    let hs: Vec<_> = (0..n)
        .map(|i| {
            let work = work.clone();
            tokio::spawn(async move { work(i) })
        })
        .collect();
    for h in hs {
        h.await.expect("task");
    }
    start.elapsed()
}

fn orbit_get(per_reader: u64) -> f64 {
    on_runtime(move || async move {
        let c = orbit_cache().await;
        for k in 0..GET_KEYS {
            c.dirty_put(k, k).unwrap();
        }
        let c2 = c.clone();
        let t = in_processes(2, move |i| {
            let c = c2.clone();
            async move {
                let mut s = 0x1234_5678 + i;
                let mut found = 0u64;
                for _ in 0..per_reader {
                    found += c.get(&(next(&mut s) % GET_KEYS)).unwrap().is_some() as u64;
                }
                assert_eq!(found, per_reader);
            }
        })
        .await;
        c.stop().await;
        per_s(2 * per_reader, t)
    })
}

fn moka_get(per_reader: u64) -> f64 {
    on_runtime(move || async move {
        let c = moka_cache();
        for k in 0..GET_KEYS {
            c.insert(k, k);
        }
        let c2 = c.clone();
        let t = in_tasks(2, move |i| {
            let mut s = 0x1234_5678 + i;
            let mut found = 0u64;
            for _ in 0..per_reader {
                found += c2.get(&(next(&mut s) % GET_KEYS)).is_some() as u64;
            }
            assert_eq!(found, per_reader);
        })
        .await;
        per_s(2 * per_reader, t)
    })
}

fn orbit_put(writers: u64, per_writer: u64) -> f64 {
    on_runtime(move || async move {
        let c = orbit_cache().await;
        let c2 = c.clone();
        let t = in_processes(writers, move |i| {
            let c = c2.clone();
            async move {
                let mut s = 0x9876_5431 + i * 7919;
                for _ in 0..per_writer {
                    let k = next(&mut s) & (PUT_KEYS - 1);
                    c.put(k, k).await.unwrap();
                }
            }
        })
        .await;
        c.stop().await;
        per_s(writers * per_writer, t)
    })
}

fn moka_put(writers: u64, per_writer: u64) -> f64 {
    on_runtime(move || async move {
        let c = moka_cache();
        let c2 = c.clone();
        let t = in_tasks(writers, move |i| {
            let mut s = 0x9876_5431 + i * 7919;
            for _ in 0..per_writer {
                let k = next(&mut s) & (PUT_KEYS - 1);
                c2.insert(k, k);
            }
        })
        .await;
        per_s(writers * per_writer, t)
    })
}

fn orbit_get_or_store(n: u64) -> f64 {
    on_runtime(move || async move {
        let c = orbit_cache().await;
        for k in (0..PUT_KEYS).step_by(2) {
            c.dirty_put(k, k).unwrap();
        }
        let c2 = c.clone();
        let t = in_processes(1, move |_| {
            let c = c2.clone();
            async move {
                for i in 0..n {
                    let k = scramble(i);
                    let v = c.get_or_store(&k, || async move { k }).await.unwrap();
                    debug_assert_eq!(v, k);
                }
            }
        })
        .await;
        c.stop().await;
        per_s(n, t)
    })
}

fn moka_get_or_store(n: u64) -> f64 {
    on_runtime(move || async move {
        let c = moka_cache();
        for k in (0..PUT_KEYS).step_by(2) {
            c.insert(k, k);
        }
        let c2 = c.clone();
        let t = in_tasks(1, move |_| {
            for i in 0..n {
                let k = scramble(i);
                let v = c2.get_with(k, || k);
                debug_assert_eq!(v, k);
            }
        })
        .await;
        per_s(n, t)
    })
}

fn orbit_update(per_proc: u64) -> f64 {
    on_runtime(move || async move {
        let c = orbit_cache().await;
        for k in 0..HOT_KEYS {
            c.dirty_put(k, 0).unwrap();
        }
        let c2 = c.clone();
        let t = in_processes(2, move |i| {
            let c = c2.clone();
            async move {
                let mut s = 0x5555_1234 + i;
                for _ in 0..per_proc {
                    let k = next(&mut s) % HOT_KEYS;
                    c.update(&k, |v| Ok::<_, CacheError>(v.unwrap_or(0) + 1))
                        .await
                        .unwrap();
                }
            }
        })
        .await;
        let total: u64 = (0..HOT_KEYS).map(|k| c.get(&k).unwrap().unwrap_or(0)).sum();
        assert_eq!(total, 2 * per_proc, "isolated updates lost increments");
        c.stop().await;
        per_s(2 * per_proc, t)
    })
}

fn moka_update(per_proc: u64) -> f64 {
    on_runtime(move || async move {
        let c = moka_cache();
        for k in 0..HOT_KEYS {
            c.insert(k, 0);
        }
        let c2 = c.clone();
        let t = in_tasks(2, move |i| {
            let mut s = 0x5555_1234 + i;
            for _ in 0..per_proc {
                let k = next(&mut s) % HOT_KEYS;
                c2.entry(k)
                    .and_compute_with(|e| Op::Put(e.map_or(0, |e| e.into_value()) + 1));
            }
        })
        .await;
        per_s(2 * per_proc, t)
    })
}

/// Re-executes this binary as `__cache-mem-child SUBJECT N`; returns bytes per entry.
fn mem_child(subject: &str, n: u64) -> Result<f64, String> {
    crate::util::run_self(&["__cache-mem-child", subject, &n.to_string()])?
        .get("bytes_per_entry")
        .copied()
        .ok_or_else(|| "no figure in its output".into())
}

/// The hidden child command: fills one subject's cache with `n` entries with a TTL and
/// prints `bytes_per_entry X` (resident bytes grown, over `n`).
pub fn child_main(subject: &str, n: u64) -> Result<(), String> {
    let rt = crate::util::runtime();
    let bytes = rt.block_on(async move {
        match subject {
            "orbit" => {
                let c = orbit_cache().await;
                let before = rss_bytes();
                for k in 0..n {
                    c.dirty_put(k, k).map_err(|e| e.to_string())?;
                }
                let after = rss_bytes();
                assert_eq!(c.size().map_err(|e| e.to_string())?, n as usize);
                Ok::<_, String>(after.saturating_sub(before))
            }
            "moka" => {
                let c = moka_cache();
                let before = rss_bytes();
                for k in 0..n {
                    c.insert(k, k);
                }
                c.run_pending_tasks();
                let after = rss_bytes();
                Ok(after.saturating_sub(before))
            }
            other => Err(format!("unknown cache subject {other}")),
        }
    })?;
    println!("bytes_per_entry {}", bytes as f64 / n as f64);
    Ok(())
}

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let reads = ctx.n(2_000_000);
    let puts = ctx.n(1_000_000);
    let gos = ctx.n(PUT_KEYS).min(PUT_KEYS);
    let updates = ctx.n(500_000);
    let mut r = Rounds::default();
    for _ in 0..ctx.rounds {
        measured(&mut r, "orbit_get", 2 * reads, || orbit_get(reads));
        // The real ConCache, same work (100k keys, 2 readers, `reads` random gets each).
        if let Some(v) = crate::beam::run_elixir("concache_bench.exs", &[&reads.to_string()]) {
            if let Some(g) = v.get("get_per_s_2readers") {
                r.add("beam_get", *g);
            }
            if let Some(c) = v.get("cpu_s") {
                r.add_cpu("beam_get", c * 1e6 / (2 * reads) as f64);
            }
        }
        r.add("moka_get", moka_get(reads));
        r.add("orbit_put1", orbit_put(1, puts));
        r.add("moka_put1", moka_put(1, puts));
        r.add("orbit_put2", orbit_put(2, puts));
        r.add("moka_put2", moka_put(2, puts));
        r.add("orbit_gos", orbit_get_or_store(gos));
        r.add("moka_gos", moka_get_or_store(gos));
        r.add("orbit_upd", orbit_update(updates));
        r.add("moka_upd", moka_update(updates));
    }
    let figures = [
        ("get", "get_per_s_2readers"),
        ("put1", "put_per_s"),
        ("put2", "put_per_s_2writers"),
        ("gos", "get_or_store_per_s_half_hits"),
        ("upd", "isolated_update_per_s_2procs"),
    ];
    for (tag, metric) in figures {
        for who in ["orbit", "moka"] {
            ctx.emit_opt(SCENARIO, who, metric, r.best(&format!("{who}_{tag}")));
        }
    }
    for who in ["orbit_get", "beam_get"] {
        ctx.emit_rounds(SCENARIO, who, "get_per_s_2readers", "get", &r);
    }
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_get_per_s_2readers_min_5x_same_run_median",
        r.median("orbit_get"),
        r.median("beam_get"),
    );
    for (metric, v) in BEAM {
        ctx.rep.emit(SCENARIO, "beam_baseline_stale", metric, *v);
    }
    let n = ctx.n(1_000_000);
    for who in ["orbit", "moka"] {
        match mem_child(who, n) {
            Ok(b) => ctx.rep.emit(SCENARIO, who, "bytes_per_entry_1m", b),
            Err(e) => eprintln!("cache: {who} memory child failed: {e}"),
        }
    }

    let get = |ctx: &Ctx, who: &str, m: &str| ctx.rep.get(SCENARIO, who, m);
    let pairs = [
        ("get_per_s_2readers", "orbit_vs_moka_get_min_1x"),
        ("put_per_s", "orbit_vs_moka_put_min_1x"),
    ];
    for (m, goal) in pairs {
        let (a, b) = (get(ctx, "orbit", m), get(ctx, "moka", m));
        ctx.goal(SCENARIO, goal, a, b);
    }
    for (m, _) in BEAM {
        let (a, b) = (get(ctx, "orbit", m), get(ctx, "beam_baseline_stale", m));
        let goal = format!("STALE_orbit_vs_beam_baseline_{m}_min_5x");
        ctx.goal(SCENARIO, &goal, a, b);
    }
    let (p2, p1) = (
        get(ctx, "orbit", "put_per_s_2writers"),
        get(ctx, "orbit", "put_per_s"),
    );
    ctx.goal(SCENARIO, "orbit_put_2writers_over_1writer_scaling", p2, p1);
}
