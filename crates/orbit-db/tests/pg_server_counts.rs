//! What a `PgPool` makes the *server* do, counted on the server: every `run` with one
//! query is exactly one transaction (no ping, `ROLLBACK`, `SET`, `DISCARD` or re-prepare
//! sent at checkout or check-in), every session is a connection the pool opened, and the
//! postmaster accepts no other connection than those sessions and one cancel request per
//! call that outlived its timeout (a cancel request forks a backend: a guard that
//! misfired on completed calls would show here). Issue 23: the bench found Postgres
//! spending more CPU per query under `orbit_db` than under deadpool; these counts say it
//! is not extra statements or connections.
//!
//! Counted from `pg_stat_database` (where a session's start and a statement's prepare
//! are one transaction each, counted as such) of a database only the pool uses (each backend
//! flushes its statistics when it exits: the pool is stopped and its backends gone
//! before the counts are read) and from the `log_connections` lines of the server log.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit_db::{DbError, DbPoolOptions, PgConn, PgPool};
use support::pg::PgServer;

const POOL: usize = 4;
const TASKS: usize = 16;
const CALLS: usize = 150;

/// (transactions committed + rolled back, sessions) of database `bench`.
async fn bench_stats(admin: &tokio_postgres::Client) -> (i64, i64) {
    let row = admin
        .query_one(
            "SELECT xact_commit + xact_rollback, sessions FROM pg_stat_database \
             WHERE datname = 'bench'",
            &[],
        )
        .await
        .expect("pg_stat_database");
    (row.get(0), row.get(1))
}

fn connections_logged(pg: &PgServer) -> usize {
    pg.log().matches("connection received:").count()
}

/// Waits until `sql` (a count) returns 0, at most 20 s.
async fn until_zero(admin: &tokio_postgres::Client, sql: &str) {
    let t0 = Instant::now();
    loop {
        let n: i64 = admin.query_one(sql, &[]).await.expect(sql).get(0);
        if n == 0 {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{sql}: still {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_is_one_transaction_and_the_only_extra_connections_are_cancels() {
    let Some(pg) = PgServer::start(30) else {
        return;
    };
    let admin = pg.admin().await;
    admin.batch_execute("CREATE DATABASE bench").await.unwrap();
    admin
        .batch_execute("ALTER SYSTEM SET log_connections = on")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    // A new backend sees the setting once the postmaster has reloaded.
    let t0 = Instant::now();
    loop {
        let probe = pg.admin().await;
        let v: String = probe
            .query_one("SHOW log_connections", &[])
            .await
            .unwrap()
            .get(0);
        if v == "on" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "log_connections not on"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let conn_str = pg
        .conn_str("orbit_db_counts")
        .replace("dbname=postgres", "dbname=bench");
    let (x0, s0) = bench_stats(&admin).await;
    let l0 = connections_logged(&pg);

    // Pings only after a minute idle: none in this test.
    let opts = DbPoolOptions::new(POOL).idle_interval(Duration::from_secs(60));
    let pool = PgPool::connect(&conn_str, opts).await.unwrap();
    // Statements prepared (a Parse … Sync is a transaction of its own on the server).
    let prepares = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (pool, prepares) = (pool.clone(), prepares.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..CALLS {
                let id = (t * CALLS + i) as i32;
                let prepares = &prepares;
                let got: i32 = pool
                    .run(|c| async move {
                        let before = c.statement_cache().misses;
                        let v = c.query_one("SELECT $1::int4", &[&id]).await?.get(0);
                        let after = c.statement_cache().misses;
                        prepares.fetch_add(after - before, Ordering::Relaxed);
                        Ok::<_, DbError>(v)
                    })
                    .await
                    .unwrap();
                assert_eq!(got, id);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Calls that outlive their timeout: cancelled on the server, one cancel request each.
    // (Before the fix, each got two: the dropped call's guard sent one and the timeout
    // path another.) The first is a transaction, the others plain calls.
    const LATE: u64 = 3;
    for i in 0..LATE {
        let sleep = |c: PgConn| async move { c.batch_execute("SELECT pg_sleep(30)").await };
        let late = Duration::from_millis(200);
        let r = if i == 0 {
            pool.transaction_timeout(late, sleep).await
        } else {
            pool.run_timeout(late, sleep).await
        };
        assert!(
            matches!(
                r,
                Err(DbError::Timeout {
                    cancelled: true,
                    ..
                })
            ),
            "{r:?}"
        );
    }
    until_zero(
        &admin,
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' \
         AND pid <> pg_backend_pid()",
    )
    .await;
    // The replacements of the discarded connections open before the stop (one cut off
    // mid-start would count on the server and not in the pool).
    let t0 = Instant::now();
    while {
        let s = pool.stats();
        s.connects < POOL as u64 + s.discarded || s.pool.available < POOL
    } {
        assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", pool.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pool.stop(Duration::from_secs(10)).await.unwrap();
    let stats = pool.stats();
    until_zero(
        &admin,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orbit_db_counts'",
    )
    .await;
    let (x1, s1) = bench_stats(&admin).await;
    let l1 = connections_logged(&pg);

    let queries = (TASKS * CALLS) as i64;
    assert_eq!(stats.timeouts, LATE, "{stats:?}");
    assert_eq!(
        stats.pool.checkouts as i64,
        queries + LATE as i64,
        "{stats:?}"
    );
    let prepares = prepares.load(Ordering::Relaxed);
    assert!(
        prepares as usize <= POOL,
        "one prepare per connection at most, not {prepares}"
    );
    // One transaction per call (the late ones rolled back by their cancel; the late
    // transaction's `BEGIN` is in the same transaction), plus one
    // per session start (the backend reads its catalogs in one) and per prepare.
    assert_eq!(
        x1 - x0,
        queries + LATE as i64 + stats.connects as i64 + prepares as i64,
        "transactions on the server ({stats:?}, {prepares} prepares)"
    );
    assert_eq!(
        s1 - s0,
        stats.connects as i64,
        "sessions = connections opened"
    );
    assert_eq!(
        (l1 - l0) as u64,
        stats.connects + LATE,
        "accepted connections = sessions + one cancel request per late call; log:\n{}",
        pg.log()
            .lines()
            .filter(|l| l.contains("connection") || l.contains("cancel"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
