//! `db`: the pool-size lesson on a real PostgreSQL. The same clients run the same
//! CPU-bound query (`SELECT count(*) FROM generate_series(1, 3000)`, about a
//! millisecond of server CPU on an idle core) through an `orbit_db::PgPool` of 1, cores, 2 × cores, 10,
//! 25 and 50 connections, against one server with a fixed `max_connections` (100).
//!
//! The lesson (DBConnection's advice): the database runs as many queries at once as it
//! has cores; connections past that add no throughput, they only move the queue from
//! the pool (where it is measured, bounded and shed) into the database (where queries
//! compete for CPU and locks and every one gets slower). The verdict marks the knee —
//! the smallest pool within 10% of the best throughput — and says to pick it.
//!
//! The server: `ORBIT_LAB_DATABASE_URL` (a tokio-postgres connection string) when set,
//! otherwise a throwaway instance started for the run (`initdb` in a temp dir, a free
//! loopback port; orbit-db's test harness), removed at the end. Load shedding is off
//! (`queue_target` 60 s) so every size sees the whole load. Not part of the default
//! `orbit lab` run (it needs PostgreSQL): `orbit lab --scenario db`.

#[path = "../../../orbit-db/tests/support/mod.rs"]
mod db_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit::Context;
use orbit_db::{DbPoolOptions, PgPool};
use serde_json::{json, Map};

use super::measure::{closed_loop, spawn_clients, watch, Probe, VariantResult};
use super::report::{dur, hundredths, num};
use super::{Error, Lab, Report};

const SCENARIO: &str = "db";
const MAX_CONNECTIONS: u32 = 100;
const QUERY: &str = "SELECT count(*) FROM generate_series(1, 3000)";
const LONG: Duration = Duration::from_secs(60);

/// The pool sizes tried, smallest first.
pub fn sizes() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut v = vec![1, cores, 2 * cores, 10, 25, 50];
    v.sort_unstable();
    v.dedup();
    v
}

/// Runs the scenario.
pub async fn run(lab: &Lab) -> Result<Report, Error> {
    let (url, server) = match std::env::var("ORBIT_LAB_DATABASE_URL") {
        Ok(u) => (u, None),
        Err(_) => {
            let server = tokio::task::spawn_blocking(|| db_support::pg::PgServer::start(MAX_CONNECTIONS))
                .await
                .map_err(|e| format!("starting a throwaway PostgreSQL failed: {e}"))?
                .ok_or("orbit lab db needs PostgreSQL: install it (Debian package postgresql) or set ORBIT_LAB_DATABASE_URL")?;
            (server.conn_str("orbit_lab"), Some(server))
        }
    };
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for size in sizes() {
        let opts = DbPoolOptions::new(size)
            .timeout(LONG)
            .checkout_timeout(LONG)
            .queue(LONG, LONG);
        let pool = PgPool::connect(&url, opts).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while pool.stats().pool.available < size {
            if Instant::now() > deadline {
                return Err(format!(
                    "the pool of {size} did not connect in 20 s: {}",
                    pool.stats().last_connect_error.unwrap_or_default()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let failed = Arc::new(AtomicU64::new(0));
        let probe = Probe::new();
        let (p, f) = (pool.clone(), failed.clone());
        let clients = spawn_clients(
            lab.clients(),
            &probe,
            move |_, probe: Arc<Probe>, _ctx: Context<()>| {
                let (pool, failed) = (p.clone(), f.clone());
                async move {
                    closed_loop(probe, || {
                        let (pool, failed) = (pool.clone(), failed.clone());
                        async move {
                            let r = pool
                                .run(|c| async move { c.query_one(QUERY, &[]).await.map(|_| ()) })
                                .await;
                            if r.is_err() {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                    .await
                }
            },
        )?;
        let name = format!("pool {size}");
        results.push(
            watch(
                lab,
                SCENARIO,
                &name,
                lab.duration(),
                &probe,
                &clients,
                |_| {},
            )
            .await,
        );
        errors.push(failed.load(Ordering::Relaxed));
        pool.stop(Duration::from_secs(10)).await?;
    }
    drop(server);
    Ok(verdict(lab, results, &errors))
}

fn verdict(lab: &Lab, results: Vec<VariantResult>, errors: &[u64]) -> Report {
    let sizes = sizes();
    let best = results.iter().map(|r| r.rps).fold(0.0, f64::max);
    let knee = results
        .iter()
        .position(|r| r.rps >= 0.9 * best)
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (k_size, k) = (
        sizes.get(knee).copied().unwrap_or(1),
        &results[knee.min(results.len().saturating_sub(1))],
    );
    let last = results.last().unwrap_or(k);
    let last_size = sizes.last().copied().unwrap_or(k_size);
    let mut facts = Map::new();
    facts.insert("knee_pool_size".into(), json!(k_size));
    facts.insert("cores".into(), json!(cores));
    facts.insert("max_connections".into(), json!(MAX_CONNECTIONS));
    facts.insert("best_rps".into(), json!(best.round()));
    facts.insert(
        "largest_vs_knee_rps".into(),
        json!(hundredths(last.rps / k.rps.max(1.0))),
    );
    facts.insert(
        "largest_vs_knee_p99".into(),
        json!(hundredths(
            last.latency.p99.as_secs_f64() / k.latency.p99.as_secs_f64().max(1e-9)
        )),
    );
    facts.insert("errors".into(), json!(errors.iter().sum::<u64>()));
    Report {
        scenario: SCENARIO,
        title: format!(
            "{} clients, one ~1 ms CPU-bound query each, PgPool of {:?} connections, max_connections {MAX_CONNECTIONS}",
            lab.clients(),
            sizes
        ),
        bottleneck: "the database's cores".into(),
        verdict: if knee + 1 == results.len() && results.len() > 1 {
            format!(
                "no knee up to pool size {k_size} ({cores} cores): throughput still grew ({} req/s at {k_size}), so the database's CPU was not the limit here (other load on this machine takes CPU from it, or the server has more cores than this client); measure on the database host before raising pool_size",
                num(k.rps),
            )
        } else {
            format!(
            "knee at pool size {k_size} ({cores} cores): {} req/s, {:.0}% of the best; a pool of {last_size} gives {:.2}x the throughput with p99 {} instead of {} — pick about {k_size} (2 × cores is the usual start): more connections only move the queue from the pool into the database",
            num(k.rps),
            k.rps / best.max(1.0) * 100.0,
            last.rps / k.rps.max(1.0),
            dur(last.latency.p99),
            dur(k.latency.p99),
        )
        },
        results,
        facts,
    }
}
