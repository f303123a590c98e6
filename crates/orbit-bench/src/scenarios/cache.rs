//! Scenario `cache`: `orbit::cache::ConCache` against moka's sync cache (both with a
//! TTL on every entry) and against the real ConCache on the BEAM
//! (`beam/concache_bench.exs` with `../shared/beamlibs`, `elixir --erl "+S N:N"`), all
//! in the same run: every test runs every subject in every round, the subject order
//! rotated each round, and reports per subject the median of rounds (headline and
//! ratios) with `_best`, `_min`, `_max` and the CPU microseconds per operation
//! (`getrusage(RUSAGE_SELF)` around the measured part of a Rust round; the BEAM's
//! `statistics(runtime)`, every emulator thread, around its measured part).
//! Without `elixir` the `beam` subject and its ratios are skipped with a note.
//!
//! Every cache has a global TTL of 60 s (ConCache: `ttl_check_interval` 1 s). Each worker
//! of every subject walks the same xorshift64 key sequence (same seeds; the BEAM's drawn
//! before its clock) over the same key space. Tests (counts × `--scale`):
//! - `get_per_s_2readers`: 2 processes (moka: 2 tasks) doing 2M random `get`s each of
//!   100k stored keys;
//! - `put_per_s` / `put_per_s_2writers`: 1M locked `put`s of random keys of 2^20 per
//!   writer, 1 and 2 writer processes (must scale: nothing funnels through one process);
//! - `get_or_store_per_s_half_hits`: every key of 2^20 once, in scrambled order, the
//!   even ones stored beforehand, from one process (moka: `get_with`);
//! - `isolated_update_per_s_2procs`: 500k `update`s (read-modify-write under the key's
//!   lock, +1) each on 1,000 hot keys from 2 processes (moka: `and_compute_with`);
//! - `bytes_per_entry_1m`: resident bytes per entry of 1M `(u64, u64)` entries with a
//!   TTL, orbit and moka each in a fresh child process (`__cache-mem-child`); no BEAM
//!   figure.
//!
//! Goals: get and put at least 1x moka; get, put, get_or_store and isolated update at
//! least 5x ConCache on the BEAM.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use orbit::cache::{CacheError, CacheOptions, ConCache, Ttl};
use orbit::Context;

use super::Ctx;
use crate::util::{cpu_s, on_runtime, per_s, rotation, rss_bytes, Rounds};

const SCENARIO: &str = "cache";
const TTL: Duration = Duration::from_secs(60);
const CHECK: Duration = Duration::from_secs(1);
const GET_KEYS: u64 = 100_000;
const PUT_KEYS: u64 = 1 << 20;
const HOT_KEYS: u64 = 1_000;

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
        CacheOptions::new()
            .ttl_check_interval(CHECK)
            .global_ttl(Ttl::After(TTL)),
    )
    .await
    .expect("cannot start the cache")
}

fn moka_cache() -> Moka {
    moka::sync::Cache::builder().time_to_live(TTL).build()
}

/// One subject-round's figures: operations per second and CPU microseconds per operation.
type Figure = (f64, f64);

/// `ops` operations in `t` with `cpu` CPU seconds, as a [`Figure`].
fn figure(ops: u64, (t, cpu): (Duration, f64)) -> Figure {
    (per_s(ops, t), cpu * 1e6 / ops.max(1) as f64)
}

/// Runs `work(i)` in `n` orbit processes at once; returns the elapsed time and the CPU
/// seconds this process used meanwhile.
async fn in_processes<F, Fut>(n: u64, work: F) -> (Duration, f64)
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
    let c0 = cpu_s(libc::RUSAGE_SELF);
    let start = Instant::now();
    let _ = go_tx.send(());
    for h in hs {
        h.wait_exit().await;
    }
    (start.elapsed(), cpu_s(libc::RUSAGE_SELF) - c0)
}

/// Runs `work(i)` in `n` tokio tasks at once; returns the elapsed time and the CPU
/// seconds this process used meanwhile.
async fn in_tasks<F>(n: u64, work: F) -> (Duration, f64)
where
    F: Fn(u64) + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let c0 = cpu_s(libc::RUSAGE_SELF);
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
    (start.elapsed(), cpu_s(libc::RUSAGE_SELF) - c0)
}

fn orbit_get(per_reader: u64) -> Figure {
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
        figure(2 * per_reader, t)
    })
}

fn moka_get(per_reader: u64) -> Figure {
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
        figure(2 * per_reader, t)
    })
}

fn orbit_put(writers: u64, per_writer: u64) -> Figure {
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
        figure(writers * per_writer, t)
    })
}

fn moka_put(writers: u64, per_writer: u64) -> Figure {
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
        figure(writers * per_writer, t)
    })
}

fn orbit_get_or_store(n: u64) -> Figure {
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
        figure(n, t)
    })
}

fn moka_get_or_store(n: u64) -> Figure {
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
        figure(n, t)
    })
}

fn orbit_update(per_proc: u64) -> Figure {
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
        figure(2 * per_proc, t)
    })
}

fn moka_update(per_proc: u64) -> Figure {
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
        figure(2 * per_proc, t)
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

/// The tests: tag, metric, CPU unit, and the `concache_bench.exs` test name.
const TESTS: [(&str, &str, &str, &str); 5] = [
    ("get", "get_per_s_2readers", "get", "get"),
    ("put1", "put_per_s", "put_1writer", "put"),
    ("put2", "put_per_s_2writers", "put_2writers", "put"),
    (
        "gos",
        "get_or_store_per_s_half_hits",
        "get_or_store",
        "get_or_store",
    ),
    ("upd", "isolated_update_per_s_2procs", "update", "update"),
];

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let reads = ctx.n(2_000_000);
    let puts = ctx.n(1_000_000);
    let gos = ctx.n(PUT_KEYS).min(PUT_KEYS);
    let updates = ctx.n(500_000);
    // One `Rounds` per test; subjects `orbit`, `beam`, `moka`.
    let mut rs: Vec<Rounds> = TESTS.iter().map(|_| Rounds::default()).collect();
    let keep = |r: &mut Rounds, who: &'static str, (rate, cpu): Figure| {
        r.add(who, rate);
        r.add_cpu(who, cpu);
    };
    for round in 0..ctx.rounds {
        for (t, (tag, _, _, script_test)) in TESTS.iter().enumerate() {
            let r = &mut rs[t];
            for i in rotation(round, 3) {
                match (i, *tag) {
                    (0, "get") => keep(r, "orbit", orbit_get(reads)),
                    (0, "put1") => keep(r, "orbit", orbit_put(1, puts)),
                    (0, "put2") => keep(r, "orbit", orbit_put(2, puts)),
                    (0, "gos") => keep(r, "orbit", orbit_get_or_store(gos)),
                    (0, _) => keep(r, "orbit", orbit_update(updates)),
                    (1, "get") => keep(r, "moka", moka_get(reads)),
                    (1, "put1") => keep(r, "moka", moka_put(1, puts)),
                    (1, "put2") => keep(r, "moka", moka_put(2, puts)),
                    (1, "gos") => keep(r, "moka", moka_get_or_store(gos)),
                    (1, _) => keep(r, "moka", moka_update(updates)),
                    _ => {
                        // The real ConCache, same test and counts.
                        let (args, ops) = match *tag {
                            "get" => (vec![reads], 2 * reads),
                            "put1" => (vec![1, puts], puts),
                            "put2" => (vec![2, puts], 2 * puts),
                            "gos" => (vec![gos], gos),
                            _ => (vec![updates], 2 * updates),
                        };
                        let mut argv = vec![script_test.to_string()];
                        argv.extend(args.iter().map(u64::to_string));
                        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                        if let Some(v) = crate::beam::run_elixir("concache_bench.exs", &argv) {
                            if let (Some(rate), Some(cpu)) = (v.get("rate"), v.get("cpu_s")) {
                                keep(r, "beam", (*rate, cpu * 1e6 / ops as f64));
                            }
                        }
                    }
                }
            }
        }
    }
    for (t, (_, metric, unit, _)) in TESTS.iter().enumerate() {
        for who in ["orbit", "beam", "moka"] {
            ctx.emit_rounds(SCENARIO, who, metric, unit, &rs[t]);
        }
    }
    let n = ctx.n(1_000_000);
    for who in ["orbit", "moka"] {
        match mem_child(who, n) {
            Ok(b) => ctx.rep.emit(SCENARIO, who, "bytes_per_entry_1m", b),
            Err(e) => eprintln!("cache: {who} memory child failed: {e}"),
        }
    }
    for (t, (tag, metric, _, _)) in TESTS.iter().enumerate() {
        let o = rs[t].median("orbit");
        if matches!(*tag, "get" | "put1") {
            let goal = format!("orbit_vs_moka_{metric}_min_1x");
            ctx.goal(SCENARIO, &goal, o, rs[t].median("moka"));
        }
        if *tag != "put2" {
            let goal = format!("orbit_vs_beam_{metric}_min_5x");
            ctx.goal(SCENARIO, &goal, o, rs[t].median("beam"));
        }
    }
    let (p2, p1) = (rs[2].median("orbit"), rs[1].median("orbit"));
    ctx.goal(SCENARIO, "orbit_put_2writers_over_1writer_scaling", p2, p1);
}
