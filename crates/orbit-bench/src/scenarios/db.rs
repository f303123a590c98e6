//! `db`: Orbit's PostgreSQL pool (`orbit_db::PgPool`) against deadpool-postgres,
//! bb8-postgres and Elixir's Postgrex + DBConnection, on one throwaway PostgreSQL
//! server started for the run (`initdb` in a temp dir, loopback port; skipped with a
//! note when PostgreSQL is not installed).
//!
//! Same server, same table (`kv`, 1000 rows), same query, same pool size, same
//! clients: [`CLIENTS`] closed-loop clients, each doing one checkout + the point query
//! `SELECT v FROM kv WHERE id = $1` + check-in per operation, through a pool of
//! [`POOL`] connections, for [`SECONDS`] s (× `--scale`) after a warm-up of a fifth of
//! that (connections open, statements prepared):
//! - `orbit_db`: `PgPool::run` with `query_one` (prepared statement cache per
//!   connection, DBConnection's queue defaults);
//! - `deadpool`: `deadpool_postgres` (`RecyclingMethod::Fast`), `prepare_cached` +
//!   `query_one`;
//! - `bb8`: `bb8_postgres` with `test_on_check_out(false)` (as the others, no ping per
//!   checkout), `query_typed` (one round trip, like a cached statement; bb8-postgres has
//!   no statement cache);
//! - `postgrex`: `beam/db_bench.exs`, a Postgrex pool (DBConnection) of the same size,
//!   `Postgrex.execute!` of a prepared query from as many processes (skipped with a
//!   note without `elixir`).
//!
//! Every subject runs in every round, the order rotated; each reports `queries_per_s`
//! (median of rounds, with `_best`, `_min`, `_max`), `p99_ms` (median of rounds) and
//! `cpu_us_per_query` (the client side only; the server's CPU is not counted). Goals:
//! `orbit_db` ≥ 1x deadpool and bb8, ≥ 2x Postgrex.

#[path = "../../../orbit-db/tests/support/mod.rs"]
mod db_support;

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::Ctx;
use crate::util::{cpu_s, median, run_rotated, Rounds, Step};

const SCENARIO: &str = "db";
/// Connections in every pool.
pub const POOL: usize = 10;
/// Concurrent clients.
pub const CLIENTS: usize = 32;
/// Measured seconds per subject and round (× `--scale`).
pub const SECONDS: f64 = 2.0;
const SQL: &str = "SELECT v FROM kv WHERE id = $1";

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    if std::fs::read_dir("/usr/lib/postgresql").is_err() {
        eprintln!(
            "note: PostgreSQL not installed (Debian package postgresql); skipping the db scenario"
        );
        return;
    }
    let Some(server) = db_support::pg::PgServer::start(100) else {
        return;
    };
    let conn_str = server.conn_str("orbit_bench");
    let setup = crate::util::runtime().block_on(async {
        let admin = server.admin().await;
        admin
            .batch_execute(
                "CREATE TABLE kv (id int PRIMARY KEY, v text NOT NULL);
                 INSERT INTO kv SELECT i, md5(i::text) FROM generate_series(1, 1000) i;
                 ANALYZE kv;",
            )
            .await
    });
    if let Err(e) = setup {
        eprintln!("note: db scenario setup failed: {e}");
        return;
    }
    let dur = Duration::from_secs_f64((SECONDS * ctx.scale).max(0.2));
    let mut r = Rounds::default();
    let mut p99: std::collections::HashMap<&'static str, Vec<f64>> = Default::default();
    let p99_cell = std::cell::RefCell::new(&mut p99);
    let record = |r: &mut Rounds, subject: &'static str, out: Option<(f64, f64, f64)>| {
        if let Some((rate, p, cpu)) = out {
            r.add(subject, rate);
            r.add_cpu(subject, cpu);
            p99_cell.borrow_mut().entry(subject).or_default().push(p);
        }
    };
    let port = server.port.to_string();
    let mut steps: Vec<Step> = vec![
        Box::new(|r| record(r, "orbit_db", rust_round(&conn_str, dur, Subject::Orbit))),
        Box::new(|r| record(r, "deadpool", rust_round(&conn_str, dur, Subject::Deadpool))),
        Box::new(|r| record(r, "bb8", rust_round(&conn_str, dur, Subject::Bb8))),
        Box::new(|r| {
            let args = [
                "127.0.0.1".to_string(),
                port.clone(),
                CLIENTS.to_string(),
                dur.as_millis().to_string(),
                POOL.to_string(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = crate::beam::run_elixir("db_bench.exs", &args).and_then(|v| {
                let (rate, p, cpu) = (*v.get("rate")?, *v.get("p99_ms")?, *v.get("cpu_s")?);
                let queries = rate * dur.as_secs_f64();
                Some((rate, p, cpu * 1e6 / queries.max(1.0)))
            });
            record(r, "postgrex", out)
        }),
    ];
    run_rotated(ctx.rounds, &mut steps, &mut r);
    drop(steps);
    for s in ["orbit_db", "deadpool", "bb8", "postgrex"] {
        ctx.emit_rounds(SCENARIO, s, "queries_per_s", "query", &r);
        if let Some(xs) = p99.get(s) {
            ctx.emit_opt(SCENARIO, s, "p99_ms", median(xs));
        }
        if r.median(s).is_some() {
            ctx.rep.emit(SCENARIO, s, "pool_size", POOL as f64);
            ctx.rep.emit(SCENARIO, s, "clients", CLIENTS as f64);
        }
    }
    let o = r.median("orbit_db");
    ctx.goal(
        SCENARIO,
        "orbit_db_vs_deadpool_min_1x",
        o,
        r.median("deadpool"),
    );
    ctx.goal(SCENARIO, "orbit_db_vs_bb8_min_1x", o, r.median("bb8"));
    ctx.goal(
        SCENARIO,
        "orbit_db_vs_postgrex_min_2x",
        o,
        r.median("postgrex"),
    );
    drop(server);
}

#[derive(Clone, Copy)]
enum Subject {
    Orbit,
    Deadpool,
    Bb8,
}

/// A pool of one subject, behind one call: one operation = checkout, query, check-in.
#[derive(Clone)]
enum AnyPool {
    Orbit(orbit_db::PgPool),
    Deadpool(deadpool_postgres::Pool),
    Bb8(bb8::Pool<bb8_postgres::PostgresConnectionManager<tokio_postgres::NoTls>>),
}

impl AnyPool {
    async fn start(conn_str: &str, s: Subject) -> Result<AnyPool, String> {
        let config: tokio_postgres::Config = conn_str.parse().map_err(|e| format!("{e}"))?;
        Ok(match s {
            Subject::Orbit => AnyPool::Orbit(
                orbit_db::PgPool::start(config, orbit_db::DbPoolOptions::new(POOL))
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            Subject::Deadpool => {
                let mgr = deadpool_postgres::Manager::from_config(
                    config,
                    tokio_postgres::NoTls,
                    deadpool_postgres::ManagerConfig {
                        recycling_method: deadpool_postgres::RecyclingMethod::Fast,
                    },
                );
                AnyPool::Deadpool(
                    deadpool_postgres::Pool::builder(mgr)
                        .max_size(POOL)
                        .build()
                        .map_err(|e| e.to_string())?,
                )
            }
            Subject::Bb8 => {
                let mgr =
                    bb8_postgres::PostgresConnectionManager::new(config, tokio_postgres::NoTls);
                AnyPool::Bb8(
                    bb8::Pool::builder()
                        .max_size(POOL as u32)
                        .test_on_check_out(false)
                        .build(mgr)
                        .await
                        .map_err(|e| e.to_string())?,
                )
            }
        })
    }

    async fn op(&self, id: i32) -> Result<(), String> {
        match self {
            AnyPool::Orbit(p) => p
                .run(|c| async move {
                    let row = c.query_one(SQL, &[&id]).await?;
                    let _: &str = row.get(0);
                    Ok::<_, orbit_db::DbError>(())
                })
                .await
                .map_err(|e| e.to_string()),
            AnyPool::Deadpool(p) => {
                let c = p.get().await.map_err(|e| e.to_string())?;
                let stmt = c.prepare_cached(SQL).await.map_err(|e| e.to_string())?;
                let row = c
                    .query_one(&stmt, &[&id])
                    .await
                    .map_err(|e| e.to_string())?;
                let _: &str = row.get(0);
                Ok(())
            }
            AnyPool::Bb8(p) => {
                let c = p.get().await.map_err(|e| e.to_string())?;
                let rows = c
                    .query_typed(SQL, &[(&id, tokio_postgres::types::Type::INT4)])
                    .await
                    .map_err(|e| e.to_string())?;
                let _: &str = rows.first().ok_or("no row")?.get(0);
                Ok(())
            }
        }
    }

    async fn close(self) {
        match self {
            AnyPool::Orbit(p) => {
                let _ = p.stop(Duration::from_secs(5)).await;
            }
            AnyPool::Deadpool(p) => p.close(),
            AnyPool::Bb8(p) => drop(p),
        }
    }
}

/// Closed-loop clients for `dur`: (ops, latency histogram in µs).
async fn drive(pool: &AnyPool, dur: Duration) -> Result<(u64, Histogram<u64>), String> {
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
            let mut n = 0u64;
            let mut i = 0usize;
            loop {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                let id = ((c * 7919 + i) % 1000 + 1) as i32;
                i += 1;
                pool.op(id).await?;
                h.record(t0.elapsed().as_micros() as u64)
                    .map_err(|e| e.to_string())?;
                n += 1;
            }
            Ok::<_, String>((n, h))
        }));
    }
    let mut total = 0;
    let mut all = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    for t in tasks {
        let (n, h) = t.await.map_err(|e| e.to_string())??;
        total += n;
        all.add(h).map_err(|e| e.to_string())?;
    }
    Ok((total, all))
}

/// One round of a Rust subject on a fresh runtime: (queries/s, p99 ms, CPU µs/query).
fn rust_round(conn_str: &str, dur: Duration, s: Subject) -> Option<(f64, f64, f64)> {
    let rt = crate::util::runtime();
    let conn_str = conn_str.to_string();
    let out = rt.block_on(async move {
        let pool = AnyPool::start(&conn_str, s).await?;
        drive(&pool, dur / 5).await?;
        let c0 = cpu_s(libc::RUSAGE_SELF);
        let t0 = Instant::now();
        let (n, h) = drive(&pool, dur).await?;
        let elapsed = t0.elapsed();
        let cpu = cpu_s(libc::RUSAGE_SELF) - c0;
        pool.close().await;
        let rate = n as f64 / elapsed.as_secs_f64();
        Ok::<_, String>((
            rate,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            cpu * 1e6 / n.max(1) as f64,
        ))
    });
    drop(rt);
    match out {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("note: db round failed: {e}");
            None
        }
    }
}
