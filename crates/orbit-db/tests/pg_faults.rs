//! Faults, for real: `kill -9` of PostgreSQL (postmaster and every backend) in the
//! middle of a transactional load, then a restart on the same port and data dir.
//!
//! Checked: every call returned (a result or a clear error, counted), no transaction
//! half-applied (the rows' invariants hold), no connection leaked (pool status and
//! `pg_stat_activity`), and the pool refilled by itself.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit_db::{DbError, DbPoolOptions, PgPool};
use parking_lot::Mutex;
use support::pg::PgServer;

const APP: &str = "orbit_db_faults";
const POOL: usize = 4;
const WORKERS: usize = 12;
const START_BALANCE: i64 = 1_000_000;

async fn wait_until<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The error's kind, for the tally; panics on an error that is not a clear one.
fn kind(e: &DbError) -> &'static str {
    match e {
        DbError::ConnectionLost(_) => "connection_lost",
        DbError::CheckoutTimeout { .. } => "checkout_timeout",
        DbError::QueueDropped { .. } => "queue_dropped",
        DbError::Timeout { .. } => "timeout",
        // The server's own words while it dies ("terminating connection ...") or the
        // driver's ("error communicating with the server").
        DbError::Postgres(p) if p.as_db_error().is_some() => "server_error",
        DbError::Postgres(_) => "driver_io",
        other => panic!("unexpected error kind: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_then_restart() {
    let Some(mut pg) = PgServer::start(30) else {
        return;
    };
    let opts = DbPoolOptions::new(POOL)
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .idle_interval(Duration::from_millis(200))
        .timeout(Duration::from_secs(3))
        .checkout_timeout(Duration::from_secs(2));
    let pool = PgPool::connect(&pg.conn_str(APP), opts).await.unwrap();
    pool.run(|c| async move {
        c.batch_execute(&format!(
            "CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL);
             INSERT INTO account VALUES (1, {START_BALANCE}), (2, 0);
             CREATE TABLE transfer (id bigint PRIMARY KEY, amount bigint NOT NULL);"
        ))
        .await
    })
    .await
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let errors: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
    // The ids of the transfers whose commit returned Ok.
    let committed: Arc<Mutex<Vec<i64>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..WORKERS as i64 {
        let (pool, stop, ok, calls, errors, committed) = (
            pool.clone(),
            stop.clone(),
            ok.clone(),
            calls.clone(),
            errors.clone(),
            committed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = w * 1_000_000_000 + n;
                let amount = 1 + n % 7;
                calls.fetch_add(1, Ordering::Relaxed);
                // One transfer: three statements that must all apply or none.
                let r = pool
                    .transaction(|tx| async move {
                        tx.execute(
                            "UPDATE account SET balance = balance - $1 WHERE id = 1",
                            &[&amount],
                        )
                        .await?;
                        tx.execute("INSERT INTO transfer VALUES ($1, $2)", &[&id, &amount])
                            .await?;
                        tx.execute(
                            "UPDATE account SET balance = balance + $1 WHERE id = 2",
                            &[&amount],
                        )
                        .await?;
                        Ok::<_, DbError>(())
                    })
                    .await;
                match r {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        committed.lock().push(id);
                    }
                    Err(e) => {
                        *errors.lock().entry(kind(&e)).or_default() += 1;
                        // Clients back off a little on errors, as real ones do.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }

    let ok_at = |n: u64| {
        let ok = ok.clone();
        move || {
            let ok = ok.clone();
            async move { ok.load(Ordering::Relaxed) >= n }
        }
    };
    wait_until("200 transfers before the kill", 60, ok_at(200)).await;
    let procs = pg.processes();
    assert!(procs.len() > POOL, "postmaster and backends: {procs:?}");
    pg.kill9();
    for p in procs {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "postgres process {p} survived kill -9"
        );
    }
    let before_restart = ok.load(Ordering::Relaxed);
    let errs = errors.clone();
    wait_until("callers see errors while the database is down", 30, || {
        let errs = errs.clone();
        async move { errs.lock().values().sum::<u64>() >= 10 }
    })
    .await;
    let down_stats = pool.stats();
    assert!(down_stats.last_connect_error.is_some(), "{down_stats:?}");
    pg.launch();
    wait_until(
        "200 transfers after the restart",
        60,
        ok_at(before_restart + 200),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("a caller hung")
            .expect("a caller panicked");
    }

    // Every call accounted for.
    let errors = errors.lock().clone();
    let (calls, ok) = (calls.load(Ordering::Relaxed), ok.load(Ordering::Relaxed));
    let failed: u64 = errors.values().sum();
    println!("calls {calls}: ok {ok}, errors {errors:?}");
    assert_eq!(calls, ok + failed);

    // No transfer half-applied; every Ok is committed.
    let admin = pg.admin().await;
    let a: i64 = admin
        .query_one("SELECT balance FROM account WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    let b: i64 = admin
        .query_one("SELECT balance FROM account WHERE id = 2", &[])
        .await
        .unwrap()
        .get(0);
    let sum: i64 = admin
        .query_one("SELECT coalesce(sum(amount), 0)::int8 FROM transfer", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(a + b, START_BALANCE, "money created or lost");
    assert_eq!(
        b, sum,
        "a transfer applied without its record, or the reverse"
    );
    let ids: Vec<i64> = committed.lock().clone();
    let found: i64 = admin
        .query_one("SELECT count(*) FROM transfer WHERE id = ANY($1)", &[&ids])
        .await
        .unwrap()
        .get(0);
    if found as usize != ids.len() {
        let rows = admin.query("SELECT id FROM transfer", &[]).await.unwrap();
        let have: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
        let missing: Vec<(usize, i64)> = ids
            .iter()
            .enumerate()
            .filter(|(_, i)| !have.contains(i))
            .map(|(k, i)| (k, *i))
            .collect();
        println!("before restart: {before_restart}; missing (position, id): {missing:?}");
        println!("log:\n{}", pg.log());
    }
    assert_eq!(
        found as usize,
        ids.len(),
        "a transfer reported committed is missing"
    );

    // No leak, pool refilled: the pool's own figures and the server's view agree.
    let pool2 = pool.clone();
    wait_until("the pool holds its size, all idle", 20, || {
        let pool = pool2.clone();
        async move {
            let s = pool.stats().pool;
            s.workers == POOL && s.available == POOL && s.checked_out == 0 && s.waiting == 0
        }
    })
    .await;
    wait_until(
        "pg_stat_activity shows exactly the pool's connections",
        20,
        || {
            let admin = &admin;
            async move {
                let n: i64 = admin
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                        &[&APP],
                    )
                    .await
                    .unwrap()
                    .get(0);
                n == POOL as i64
            }
        },
    )
    .await;
    let stats = pool.stats();
    println!("{stats:?}");
    assert!(
        stats.connects >= 2 * POOL as u64,
        "did not reconnect: {stats:?}"
    );
    assert!(stats.last_connect_error.is_none());
    pool.stop(Duration::from_secs(5)).await.unwrap();
    wait_until("the stopped pool closed its connections", 20, || {
        let admin = &admin;
        async move {
            let n: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    &[&APP],
                )
                .await
                .unwrap()
                .get(0);
            n == 0
        }
    })
    .await;
}
