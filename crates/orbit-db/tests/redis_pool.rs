//! `RedisPool` and `RedisCache` against a real, throwaway redis-server: commands,
//! server errors that keep the connection, the cache's TTLs and `get_or_store` race,
//! and `kill -9` of the server mid-load then a restart on the same port.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit_db::redis_driver::cmd;
use orbit_db::{DbError, DbPoolOptions, RedisCache, RedisPool};
use parking_lot::Mutex;
use support::redis::RedisServer;

fn opts(size: usize) -> DbPoolOptions {
    DbPoolOptions::new(size)
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .idle_interval(Duration::from_millis(200))
        .timeout(Duration::from_secs(3))
        .checkout_timeout(Duration::from_secs(2))
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_and_server_errors() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let pool = RedisPool::connect(&server.url(), opts(2)).await.unwrap();
    pool.query::<()>(cmd("SET").arg("k").arg("v"))
        .await
        .unwrap();
    let v: String = pool.query(cmd("GET").arg("k")).await.unwrap();
    assert_eq!(v, "v");
    // A server error (WRONGTYPE) is the caller's; the connection stays.
    let r = pool.query::<i64>(cmd("INCR").arg("k")).await;
    assert!(matches!(r, Err(DbError::Redis(_))), "{r:?}");
    let n: i64 = pool
        .run(|c| async move {
            c.query::<()>(cmd("DEL").arg("n")).await?;
            let mut pipe = orbit_db::redis_driver::pipe();
            pipe.atomic().cmd("INCR").arg("n").cmd("INCR").arg("n");
            let (_, b): (i64, i64) = c.query_pipeline(&pipe).await?;
            Ok::<_, DbError>(b)
        })
        .await
        .unwrap();
    assert_eq!(n, 2);
    let s = pool.stats();
    assert_eq!(s.discarded, 0, "{s:?}");
    assert_eq!(s.connects, 2);
    pool.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_get_put_ttl_and_get_or_store() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let pool = RedisPool::connect(&server.url(), opts(4)).await.unwrap();
    let cache = RedisCache::new(pool.clone(), "users", Some(Duration::from_millis(300)));
    assert_eq!(cache.get::<String>("1").await.unwrap(), None);
    cache.put("1", "ann").await.unwrap();
    assert_eq!(
        cache.get::<String>("1").await.unwrap().as_deref(),
        Some("ann")
    );
    let left = cache.ttl("1").await.unwrap().expect("a TTL");
    assert!(
        left <= Duration::from_millis(300) && left > Duration::ZERO,
        "{left:?}"
    );
    // Expired = missing, for every reader.
    wait_until("the entry expired", || async {
        cache.get::<String>("1").await.unwrap().is_none()
    })
    .await;
    cache.put_ttl("2", 7i64, None).await.unwrap();
    assert_eq!(cache.ttl("2").await.unwrap(), None);
    assert!(cache.delete("2").await.unwrap());
    assert!(!cache.delete("2").await.unwrap());
    let r = cache.put_ttl("3", 1i64, Some(Duration::ZERO)).await;
    assert!(matches!(r, Err(DbError::InvalidOptions(_))), "{r:?}");

    // Racing computations: one value wins and every caller returns it.
    let mut tasks = Vec::new();
    for i in 0..8i64 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_store("race", || async move { i })
                .await
                .unwrap()
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "callers disagree: {seen:?}"
    );
    assert_eq!(cache.get::<i64>("race").await.unwrap(), Some(seen[0]));
    pool.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_then_restart() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    const POOL: usize = 3;
    let pool = RedisPool::connect(&server.url(), opts(POOL)).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, ok) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let errors: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (pool, stop, calls, ok, errors) = (
            pool.clone(),
            stop.clone(),
            calls.clone(),
            ok.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                calls.fetch_add(1, Ordering::Relaxed);
                match pool.query::<i64>(cmd("INCR").arg(format!("c{w}"))).await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let k = match e {
                            DbError::ConnectionLost(_) => "connection_lost",
                            DbError::CheckoutTimeout { .. } => "checkout_timeout",
                            DbError::QueueDropped { .. } => "queue_dropped",
                            DbError::Timeout { .. } => "timeout",
                            DbError::Redis(_) => "redis",
                            other => panic!("unexpected error: {other}"),
                        };
                        *errors.lock().entry(k).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    let reached = |n: u64| {
        let ok = ok.clone();
        move || {
            let ok = ok.clone();
            async move { ok.load(Ordering::Relaxed) >= n }
        }
    };
    wait_until("load before the kill", reached(500)).await;
    server.kill9();
    let errs = errors.clone();
    wait_until("errors while the server is down", || {
        let errs = errs.clone();
        async move { errs.lock().values().sum::<u64>() >= 10 }
    })
    .await;
    let before = ok.load(Ordering::Relaxed);
    server.launch();
    wait_until("load after the restart", reached(before + 500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("a caller hung")
            .expect("a caller panicked");
    }
    let errors = errors.lock().clone();
    let (calls, ok) = (calls.load(Ordering::Relaxed), ok.load(Ordering::Relaxed));
    println!("calls {calls}: ok {ok}, errors {errors:?}");
    assert_eq!(calls, ok + errors.values().sum::<u64>());
    let p = pool.clone();
    wait_until("the pool refilled, nothing checked out", || {
        let p = p.clone();
        async move {
            let s = p.stats().pool;
            s.workers == POOL && s.available == POOL && s.checked_out == 0
        }
    })
    .await;
    // The server's view: exactly the pool's connections (plus this query's own).
    let clients: String = pool
        .query(&cmd("CLIENT").arg("LIST").clone())
        .await
        .unwrap();
    assert_eq!(clients.lines().count(), POOL, "{clients}");
    let s = pool.stats();
    println!("{s:?}");
    assert!(s.connects >= 2 * POOL as u64, "{s:?}");
    pool.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_outliving_its_timeout_loses_its_connection() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let pool = RedisPool::connect(&server.url(), opts(2)).await.unwrap();
    let r = pool
        .run_timeout(Duration::from_millis(200), |c| async move {
            c.query::<Option<(String, String)>>(cmd("BLPOP").arg("never").arg(0))
                .await
        })
        .await;
    assert!(matches!(r, Err(DbError::Timeout { .. })), "{r:?}");
    assert_eq!(pool.stats().discarded, 1);
    // The blocked connection is closed (Redis drops its BLPOP) and replaced.
    wait_until("no client left blocked, the pool refilled", || async {
        let clients: String = pool
            .query(&cmd("CLIENT").arg("LIST").clone())
            .await
            .unwrap();
        clients.lines().count() == 2 && !clients.contains("cmd=blpop")
    })
    .await;
    pool.stop(Duration::from_secs(5)).await.unwrap();
}
