//! `PgPool` against a real, throwaway PostgreSQL: statement cache, transactions
//! (commit, rollback, swallowed errors, panics, cancellation), server-side cancel of a
//! timed-out query, load shedding, lazy and eager connect, idle pings, bad addresses.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit_db::{DbError, DbPoolOptions, PgPool};
use support::pg::{pool_scalar, PgServer};

const APP: &str = "orbit_db_test";

fn opts(size: usize) -> DbPoolOptions {
    DbPoolOptions::new(size)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .idle_interval(Duration::from_millis(200))
}

/// Waits (up to 20 s) until `check` holds, re-checking every 20 ms.
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Backend pids of the pool's connections (`application_name` = APP).
async fn pool_backends(admin: &tokio_postgres::Client) -> Vec<i32> {
    admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
            &[&APP],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn backend_pid(pool: &PgPool) -> i32 {
    pool_scalar(pool, "SELECT pg_backend_pid()").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_are_cached_per_connection() {
    let Some(pg) = PgServer::start(20) else {
        return;
    };
    let pool = PgPool::connect(&pg.conn_str(APP), opts(1)).await.unwrap();
    let sql = "SELECT $1::int4 + 1";
    for i in 0..3i32 {
        let (v, stats) = pool
            .run(|c| async move {
                let v: i32 = c.query_one(sql, &[&i]).await?.get(0);
                Ok::<_, DbError>((v, c.statement_cache()))
            })
            .await
            .unwrap();
        assert_eq!(v, i + 1);
        assert_eq!(stats.misses, 1, "prepared once: {stats:?}");
        assert_eq!(stats.hits, i as u64);
    }
    let prepared: i64 = pool
        .run(|c| async move {
            Ok::<_, DbError>(
                c.query_one("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int4 + 1'", &[])
                    .await?
                    .get(0),
            )
        })
        .await
        .unwrap();
    assert_eq!(prepared, 1, "the server holds the statement once");
    pool.stop(Duration::from_secs(5)).await.unwrap();
}

async fn make_table(pool: &PgPool) {
    pool.run(|c| async move {
        c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            .await
    })
    .await
    .unwrap();
}

async fn count_rows(pool: &PgPool) -> i64 {
    pool.run(|c| async move {
        Ok::<_, DbError>(c.query_one("SELECT count(*) FROM t", &[]).await?.get(0))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_roll_back_and_catch_swallowed_errors() {
    let Some(pg) = PgServer::start(20) else {
        return;
    };
    let admin = pg.admin().await;
    let pool = PgPool::connect(&pg.conn_str(APP), opts(1)).await.unwrap();
    make_table(&pool).await;
    let pid = backend_pid(&pool).await;

    // Ok: committed.
    pool.transaction(|tx| async move {
        assert!(tx.in_transaction());
        tx.execute("INSERT INTO t VALUES (1, 'a')", &[]).await?;
        Ok::<_, DbError>(())
    })
    .await
    .unwrap();
    assert_eq!(count_rows(&pool).await, 1);

    // Err from the closure: rolled back, the error given back as is.
    #[derive(Debug)]
    enum AppError {
        #[allow(dead_code)]
        Db(DbError),
        Refused,
    }
    impl From<DbError> for AppError {
        fn from(e: DbError) -> Self {
            AppError::Db(e)
        }
    }
    let r = pool
        .transaction(|tx| async move {
            tx.execute("INSERT INTO t VALUES (2, 'b')", &[]).await?;
            Err::<(), _>(AppError::Refused)
        })
        .await;
    assert!(matches!(r, Err(AppError::Refused)), "{r:?}");
    assert_eq!(count_rows(&pool).await, 1);

    // A statement error swallowed by the closure: rolled back, not committed.
    let r = pool
        .transaction(|tx| async move {
            tx.execute("INSERT INTO t VALUES (3, 'c')", &[]).await?;
            let dup = tx.execute("INSERT INTO t VALUES (1, 'dup')", &[]).await;
            assert_eq!(dup.as_ref().err().and_then(|e| e.code()), Some("23505"));
            Ok::<_, DbError>(())
        })
        .await;
    assert!(matches!(r, Err(DbError::TransactionAborted)), "{r:?}");
    assert_eq!(count_rows(&pool).await, 1);

    // SQL that opens a transaction outside `transaction` is rolled back before reuse.
    pool.run(|c| async move {
        c.batch_execute("BEGIN; INSERT INTO t VALUES (4, 'd')")
            .await
    })
    .await
    .unwrap();
    assert_eq!(count_rows(&pool).await, 1);

    // Every one of these kept the same clean connection.
    assert_eq!(backend_pid(&pool).await, pid);
    let idle_in_tx: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
            &[&APP],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(idle_in_tx, 0);
    assert_eq!(pool.stats().discarded, 0);
    pool.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_or_a_cancellation_in_a_transaction_discards_the_connection() {
    let Some(pg) = PgServer::start(20) else {
        return;
    };
    let admin = pg.admin().await;
    let pool = PgPool::connect(&pg.conn_str(APP), opts(1)).await.unwrap();
    make_table(&pool).await;

    // A panic after an insert.
    let pid = backend_pid(&pool).await;
    let p = pool.clone();
    let joined = tokio::spawn(async move {
        p.transaction(|tx| async move {
            tx.execute("INSERT INTO t VALUES (10, 'x')", &[]).await?;
            if tx.in_transaction() {
                panic!("boom inside the transaction");
            }
            Ok::<_, DbError>(())
        })
        .await
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(count_rows(&pool).await, 0, "the insert was not committed");
    assert_ne!(backend_pid(&pool).await, pid, "the connection was replaced");
    wait_until("the panicked connection's backend is gone", || async {
        !pool_backends(&admin).await.contains(&pid)
    })
    .await;

    // A caller that goes away mid-transaction, while a long query runs.
    let pid = backend_pid(&pool).await;
    let cut = tokio::time::timeout(
        Duration::from_millis(300),
        pool.transaction(|tx| async move {
            tx.execute("INSERT INTO t VALUES (11, 'y')", &[]).await?;
            tx.execute("SELECT pg_sleep(30)", &[]).await?;
            Ok::<_, DbError>(())
        }),
    )
    .await;
    assert!(cut.is_err(), "the caller gave up");
    wait_until("the cancelled connection's backend is gone", || async {
        !pool_backends(&admin).await.contains(&pid)
    })
    .await;
    assert_eq!(
        count_rows(&pool).await,
        0,
        "the cancelled insert was not committed"
    );
    assert!(pool.stats().discarded >= 2, "{:?}", pool.stats());
    pool.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_outliving_its_timeout_is_cancelled_on_the_server() {
    let Some(pg) = PgServer::start(20) else {
        return;
    };
    let admin = pg.admin().await;
    let pool = PgPool::connect(&pg.conn_str(APP), opts(2)).await.unwrap();
    let started = Instant::now();
    let r = pool
        .run_timeout(Duration::from_millis(300), |c| async move {
            c.execute("SELECT pg_sleep(30)", &[]).await
        })
        .await;
    let took = started.elapsed();
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
    assert!(took < Duration::from_secs(10), "returned after {took:?}");
    let sleeping = || active_sleeps(&admin);
    wait_until("pg_sleep gone from pg_stat_activity", || async {
        sleeping().await == 0
    })
    .await;
    let stats = pool.stats();
    assert_eq!(stats.timeouts, 1, "{stats:?}");
    // The pool still works and refills to its size.
    assert!(backend_pid(&pool).await > 0);
    wait_until("the pool refilled", || async {
        pool_backends(&admin).await.len() == 2
    })
    .await;
    pool.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_pool_sheds_load_instead_of_queueing_forever() {
    let Some(pg) = PgServer::start(20) else {
        return;
    };
    let pool = PgPool::connect(
        &pg.conn_str(APP),
        opts(1).queue(Duration::from_millis(10), Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (pool, ok, dropped) = (pool.clone(), ok.clone(), dropped.clone());
        tasks.push(tokio::spawn(async move {
            let until = Instant::now() + Duration::from_millis(1500);
            let mut other = Vec::new();
            while Instant::now() < until {
                let r = pool
                    .run(|c| async move { c.execute("SELECT pg_sleep(0.02)", &[]).await })
                    .await;
                match r {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(DbError::QueueDropped { waited, target }) => {
                        assert!(waited > target * 2, "dropped early: {waited:?}");
                        dropped.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        other.push(e.to_string());
                        0
                    }
                };
            }
            other
        }));
    }
    for t in tasks {
        let other = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("a caller hung")
            .unwrap();
        assert!(other.is_empty(), "unexpected errors: {other:?}");
    }
    let (ok, dropped) = (ok.load(Ordering::Relaxed), dropped.load(Ordering::Relaxed));
    println!("served {ok}, shed {dropped}");
    assert!(ok > 10, "served {ok}");
    assert!(dropped > 0, "nothing shed");
    assert_eq!(pool.stats().queue_dropped as usize, dropped);
    // Load gone: served again.
    assert!(backend_pid(&pool).await > 0);
    pool.stop(Duration::from_secs(5)).await.unwrap();
}

/// Call deadlines of a few milliseconds racing hand-offs, in the queue and in the work
/// (one timer per call bounds both): every call ends with a result, a checkout timeout
/// or a cancelled query, each counted once; no connection is leaked or left checked out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_deadlines_racing_checkins_lose_no_connection() {
    let Some(pg) = PgServer::start(20) else {
        return;
    };
    let admin = pg.admin().await;
    let pool = PgPool::connect(&pg.conn_str(APP), opts(2)).await.unwrap();
    backend_pid(&pool).await;
    let counts: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let mut tasks = Vec::new();
    for c in 0..16u64 {
        let (pool, counts) = (pool.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100u64 {
                let timeout = Duration::from_micros(500 + (i * 797 + c * 331) % 20000);
                let r = pool
                    .run_timeout(timeout, |c| async move {
                        c.query_one("SELECT 1::int4", &[])
                            .await
                            .map(|r| r.get::<_, i32>(0))
                    })
                    .await;
                let slot = match r {
                    Ok(1) => 0,
                    Err(DbError::CheckoutTimeout { .. }) => 1,
                    Err(DbError::Timeout { .. }) => 2,
                    other => panic!("unexpected {other:?}"),
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("a caller hung")
            .unwrap();
    }
    let [ok, checkout_timeouts, timeouts] = [0, 1, 2].map(|i| counts[i].load(Ordering::Relaxed));
    println!("ok {ok}, checkout timeouts {checkout_timeouts}, query timeouts {timeouts}");
    assert_eq!(ok + checkout_timeouts + timeouts, 1600);
    assert!(
        ok > 0 && checkout_timeouts > 0,
        "both outcomes should occur"
    );
    let s = pool.stats();
    assert_eq!(s.checkout_timeouts as usize, checkout_timeouts);
    assert_eq!(s.timeouts as usize, timeouts);
    assert!(
        s.discarded as usize >= timeouts,
        "a timed-out call keeps its connection"
    );
    // Every connection back: the pool refills to its size, nothing checked out, and
    // the server sees exactly the pool's connections.
    wait_until("the pool is whole again", || async {
        let s = pool.stats().pool;
        (s.available, s.checked_out, s.waiting) == (2, 0, 0)
    })
    .await;
    wait_until("two backends on the server", || async {
        pool_backends(&admin).await.len() == 2
    })
    .await;
    pool.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_pools_connect_on_demand_and_idle_pings_replace_dead_connections() {
    let Some(pg) = PgServer::start(20) else {
        return;
    };
    let admin = pg.admin().await;
    let lazy = PgPool::connect(&pg.conn_str(APP), opts(3).lazy(true))
        .await
        .unwrap();
    assert!(
        pool_backends(&admin).await.is_empty(),
        "a lazy pool connected at start"
    );
    backend_pid(&lazy).await;
    assert_eq!(pool_backends(&admin).await.len(), 1);
    lazy.stop(Duration::from_secs(5)).await.unwrap();
    wait_until("the lazy pool's connection closed", || async {
        pool_backends(&admin).await.is_empty()
    })
    .await;

    let eager = PgPool::connect(&pg.conn_str(APP), opts(3)).await.unwrap();
    wait_until("the eager pool opened 3", || async {
        pool_backends(&admin).await.len() == 3
    })
    .await;
    let old = pool_backends(&admin).await;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&APP],
        )
        .await
        .unwrap();
    // No traffic: the idle pings find the dead connections and the pool reconnects.
    // The server lists a backend before the pool has finished opening it and counted
    // it, so the count is waited for too.
    wait_until("3 fresh connections, counted", || async {
        let now = pool_backends(&admin).await;
        now.len() == 3 && now.iter().all(|p| !old.contains(p)) && eager.stats().connects >= 6
    })
    .await;
    assert!(eager.stats().connects >= 6);
    eager.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_gives_a_checkout_timeout_naming_the_connect_error() {
    let port = support::free_port();
    let pool = PgPool::connect(
        &format!("host=127.0.0.1 port={port} user=postgres"),
        opts(2).checkout_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let r = pool
        .run(|c| async move { c.execute("SELECT 1", &[]).await })
        .await;
    match r {
        Err(DbError::CheckoutTimeout {
            last_connect_error: Some(e),
            ..
        }) => assert!(!e.is_empty()),
        other => panic!("expected a checkout timeout naming the connect error: {other:?}"),
    }
    let failures = pool.stats().connect_failures;
    assert!(failures >= 2, "{failures}");
    // Backoff, not a hot loop: 2 slots over ~0.5 s with delays from 50 ms growing.
    assert!(failures < 60, "{failures} connect attempts in 0.5 s");
    pool.stop(Duration::from_secs(5)).await.unwrap();
    let r = pool
        .run(|c| async move { c.execute("SELECT 1", &[]).await })
        .await;
    assert!(matches!(r, Err(DbError::Stopped)), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_kept_past_its_closure_is_refused_and_its_connection_discarded() {
    let Some(pg) = PgServer::start(20) else {
        return;
    };
    let pool = PgPool::connect(&pg.conn_str(APP), opts(1)).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.run(|c| async move {
        let _ = tx.send(c);
        Ok::<_, DbError>(())
    })
    .await
    .unwrap();
    let kept = rx.await.unwrap();
    let r = kept.execute("SELECT 1", &[]).await;
    assert!(matches!(r, Err(DbError::Released)), "{r:?}");
    assert_eq!(pool.stats().discarded, 1);
    assert!(backend_pid(&pool).await > 0);
    pool.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_refused() {
    let r = PgPool::connect("host=127.0.0.1", DbPoolOptions::new(0)).await;
    assert!(matches!(r, Err(DbError::InvalidOptions(_))), "{r:?}");
    let r = PgPool::connect("host=127.0.0.1 port=notaport", DbPoolOptions::new(1)).await;
    assert!(matches!(r, Err(DbError::Postgres(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_durations_mean_never_and_do_not_overflow() {
    let port = support::free_port();
    let max = Duration::MAX;
    let opts = DbPoolOptions::new(2)
        .idle_interval(max)
        .queue(max, max)
        .timeout(max)
        .connect_timeout(max)
        .backoff(max, max)
        .checkout_timeout(Duration::from_millis(300));
    let pool = PgPool::connect(&format!("host=127.0.0.1 port={port} user=postgres"), opts)
        .await
        .unwrap();
    let r = pool
        .run_timeout(max, |c| async move { c.execute("SELECT 1", &[]).await })
        .await;
    assert!(matches!(r, Err(DbError::CheckoutTimeout { .. })), "{r:?}");
    // The connect loops sleep "forever" between attempts; the stop still ends them.
    tokio::time::timeout(Duration::from_secs(10), pool.stop(Duration::from_secs(5)))
        .await
        .expect("stop hung")
        .unwrap();
}

/// Callers aborted while their `run` holds a connection mid-query (and others while
/// queued behind them): each running query is cancelled on the server (a cancel
/// request: the `pg_sleep(30)`s end long before 30 s, which closing the socket alone
/// would not do), every queued caller leaves the queue, and the pool refills. Three
/// rounds, counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_aborted_mid_query_have_their_queries_cancelled_on_the_server() {
    let Some(pg) = PgServer::start(20) else {
        return;
    };
    let admin = pg.admin().await;
    let pool = PgPool::connect(&pg.conn_str(APP), opts(2)).await.unwrap();
    backend_pid(&pool).await;
    let sleeping = || active_sleeps(&admin);
    let mut aborted = 0;
    for round in 1..=3u64 {
        // Each task says when its closure runs (it holds a connection).
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let pool = pool.clone();
                let running = Arc::new(AtomicBool::new(false));
                let flag = running.clone();
                let task = tokio::spawn(async move {
                    pool.run(|c| async move {
                        flag.store(true, Ordering::SeqCst);
                        c.execute("SELECT pg_sleep(30)", &[]).await
                    })
                    .await
                });
                (task, running)
            })
            .collect();
        wait_until("two queries running, four callers queued", || async {
            sleeping().await == 2 && pool.stats().pool.waiting == 4
        })
        .await;
        // The queued callers first, so that no one is left waiting to take the
        // replacement of a discarded connection (which would make a third running
        // query, aborted in turn: a count that depends on timing).
        for (t, running) in &tasks {
            if !running.load(Ordering::SeqCst) {
                t.abort();
            }
        }
        wait_until("the queued callers left the queue", || async {
            pool.stats().pool.waiting == 0
        })
        .await;
        for (t, _) in &tasks {
            t.abort();
        }
        let tasks: Vec<_> = tasks.into_iter().map(|(t, _)| t).collect();
        for t in tasks {
            let e = t
                .await
                .expect_err("every caller was aborted before its answer");
            assert!(e.is_cancelled(), "{e}");
            aborted += 1;
        }
        // Within wait_until's 20 s, before any pg_sleep(30) could end by itself.
        wait_until("the aborted queries are gone from the server", || async {
            sleeping().await == 0
        })
        .await;
        wait_until("the pool is whole again", || async {
            let s = pool.stats().pool;
            (s.available, s.checked_out, s.waiting) == (2, 0, 0)
        })
        .await;
        let s = pool.stats();
        assert_eq!(s.discarded, 2 * round, "the two running connections: {s:?}");
        assert_eq!(s.timeouts, 0, "{s:?}");
    }
    assert_eq!(aborted, 18);
    assert!(backend_pid(&pool).await > 0);
    wait_until("two backends on the server", || async {
        pool_backends(&admin).await.len() == 2
    })
    .await;
    pool.stop(Duration::from_secs(5)).await.unwrap();
}

/// How many `pg_sleep` queries of this test's application are running on the server.
async fn active_sleeps(admin: &tokio_postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_sleep%' AND state = 'active'",
            &[&APP],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
}
