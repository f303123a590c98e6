//! The per-call state `PgPool` keeps in each connection (no allocation per call): on a
//! pool of one connection, so every call reuses the same one, rounds of calls that
//! leave every kind of state behind (a failed transaction, raw SQL that opens a
//! transaction, a handle kept past its closure) must not leak it into the next call,
//! and every kept handle must be refused. Counted: commits against the rows, aborts,
//! refusals and discarded connections.

mod support;

use std::time::Duration;

use orbit_db::{DbError, DbPoolOptions, PgConn, PgPool};
use support::pg::{pool_scalar, PgServer};

const ROUNDS: i32 = 40;

async fn rows(pool: &PgPool) -> i64 {
    pool_scalar(pool, "SELECT count(*) FROM t").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_state_leaks_into_the_next_call_on_the_same_connection() {
    let Some(pg) = PgServer::start(20) else {
        return;
    };
    let opts = DbPoolOptions::new(1).backoff(Duration::from_millis(20), Duration::from_millis(200));
    let pool = PgPool::connect(&pg.conn_str("orbit_db_call_state"), opts)
        .await
        .unwrap();
    pool.run(|c| async move { c.batch_execute("CREATE TABLE t (id int PRIMARY KEY)").await })
        .await
        .unwrap();
    let (mut committed, mut aborted, mut refused, mut kept_count) = (0i64, 0, 0, 0u64);
    let mut kept: Vec<PgConn> = Vec::new();
    for i in 0..ROUNDS {
        // A transaction whose failed statement is swallowed: rolled back.
        let r = pool
            .transaction(|tx| async move {
                tx.execute("INSERT INTO t VALUES ($1)", &[&(100_000 + i)])
                    .await?;
                let _ = tx.execute("SELECT 1/0", &[]).await;
                Ok::<_, DbError>(())
            })
            .await;
        assert!(matches!(r, Err(DbError::TransactionAborted)), "{r:?}");
        aborted += 1;
        // The next transaction on the same connection must not inherit the failure.
        pool.transaction(|tx| async move {
            assert!(tx.in_transaction());
            tx.execute("INSERT INTO t VALUES ($1)", &[&i]).await?;
            Ok::<_, DbError>(())
        })
        .await
        .unwrap();
        committed += 1;
        // Raw SQL leaving a transaction open: rolled back before the next call.
        pool.run(|c| async move {
            assert!(!c.in_transaction());
            c.batch_execute(&format!("BEGIN; INSERT INTO t VALUES ({})", 200_000 + i))
                .await
        })
        .await
        .unwrap();
        // A plain call after it: no stale flag (and the row above rolled back, which
        // the final count checks).
        let in_tx = pool
            .run(|c| async move {
                c.query_one("SELECT 1", &[]).await?;
                Ok::<_, DbError>(c.in_transaction())
            })
            .await
            .unwrap();
        assert!(!in_tx, "round {i}: a stale transaction flag");
        // Every fifth round, a handle kept past its closure.
        if i % 5 == 0 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            pool.run(|c| async move {
                let _ = tx.send(c);
                Ok::<_, DbError>(())
            })
            .await
            .unwrap();
            kept.push(rx.await.unwrap());
            kept_count += 1;
        }
        // Every handle kept so far stays refused, whatever the pool did since.
        for k in &kept {
            let r = k.execute("SELECT 1", &[]).await;
            assert!(matches!(r, Err(DbError::Released)), "round {i}: {r:?}");
            assert!(!k.in_transaction());
            refused += 1;
        }
    }
    assert_eq!(
        rows(&pool).await,
        committed,
        "only the committed rows are there"
    );
    assert_eq!(aborted, i64::from(ROUNDS));
    assert_eq!(kept_count, u64::from(ROUNDS as u32 / 5));
    let expect_refused: u64 = (0..ROUNDS as u64).map(|i| i / 5 + 1).sum();
    assert_eq!(refused, expect_refused);
    assert_eq!(
        pool.stats().discarded,
        kept_count,
        "one discarded connection per kept handle"
    );
    drop(kept);
    pool.stop(Duration::from_secs(5)).await.unwrap();
}
