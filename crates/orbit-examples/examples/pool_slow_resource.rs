//! Lesson 2: put a pool in front of a slow resource, and size it by measuring.
//!
//! Run: `cargo run -p orbit-examples --example pool_slow_resource`
//! (bigger run: `ORBIT_EXAMPLE_SCALE=10 cargo run -p orbit-examples --example pool_slow_resource`)
//!
//! Each worker is a GenServer whose every use takes 5 ms (a database connection, an
//! HTTP client). A poolboy-style [`orbit::Pool`] hands workers to callers:
//! - throughput grows with the pool size until the callers, not the pool, are the
//!   limit (16 callers here);
//! - a checkout that waits longer than its timeout fails with `PoolError::Timeout`
//!   (`:poolboy.checkout(pool, true, timeout)` exits with `timeout`);
//! - `max_overflow` starts extra workers under load and stops them when they come back;
//!   a non-blocking checkout beyond that is `PoolError::Full` (poolboy's `:full`).

use std::time::{Duration, Instant};

use orbit::pool::PoolError;
use orbit::{CallReply, GenServer, Pool, PoolOptions, ReplyTo, ServerContext};
use orbit_examples::{rate, scaled};

const USE_TIME: Duration = Duration::from_millis(5);
const CALLERS: u64 = 16;
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// The slow resource: one use takes [`USE_TIME`].
struct Connection;

impl GenServer for Connection {
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _: (),
        _from: &mut ReplyTo<()>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<(), ()> {
        tokio::time::sleep(USE_TIME).await;
        CallReply::Reply(())
    }
}

/// `CALLERS` callers each use the pool `uses` times; returns the elapsed time.
async fn load(pool: &Pool<Connection>, uses: u64, timeout: Duration) -> (Duration, u64) {
    let t0 = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut timeouts = 0;
                for _ in 0..uses {
                    let used = pool
                        .transaction(|w| async move { w.call(()).await }, timeout)
                        .await;
                    match used {
                        Ok(r) => r.expect("the connection answers"),
                        Err(PoolError::Timeout(_)) => timeouts += 1,
                        Err(e) => panic!("checkout failed: {e}"),
                    }
                }
                timeouts
            })
        })
        .collect();
    let mut timeouts = 0;
    for c in callers {
        timeouts += c.await.expect("a caller finishes");
    }
    (t0.elapsed(), timeouts)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let uses = scaled(8);
    println!("{CALLERS} callers x {uses} uses, each use {USE_TIME:?}: throughput by pool size\n");
    for size in [1usize, 2, 4, 8, 16] {
        let pool = Pool::start(PoolOptions::new(size, 0), || Connection)
            .await
            .expect("the pool starts");
        let (took, _) = load(&pool, uses, CHECKOUT_TIMEOUT).await;
        let stats = pool.stats();
        println!(
            "  pool size {size:>2}: {:>7} uses  (ideal {:>5.0}/s), checkouts that waited: {:>3}, \
             wait p99 {:?}, utilization {:.0}%",
            rate(CALLERS * uses, took),
            size as f64 / USE_TIME.as_secs_f64(),
            stats.waited,
            stats.wait.p99,
            stats.utilization * 100.0
        );
        pool.stop(Duration::from_secs(5))
            .await
            .expect("the pool stops");
    }

    // Checkout timeouts: 16 callers, 2 workers, and each caller waits at most 8 ms.
    let pool = Pool::start(PoolOptions::new(2, 0), || Connection)
        .await
        .expect("the pool starts");
    let (_, timeouts) = load(&pool, 2, Duration::from_millis(8)).await;
    println!(
        "\ncheckout timeouts: pool of 2, {CALLERS} callers waiting at most 8 ms: {timeouts} of {} \
         checkouts timed out (stats().timeouts = {})",
        CALLERS * 2,
        pool.stats().timeouts
    );
    assert!(
        timeouts > 0,
        "a pool of 2 cannot serve 16 callers within 8 ms"
    );
    pool.stop(Duration::from_secs(5))
        .await
        .expect("the pool stops");

    // Overflow: size 2, max_overflow 2.
    let pool = Pool::start(PoolOptions::new(2, 2), || Connection)
        .await
        .expect("the pool starts");
    let mut leases = Vec::new();
    for _ in 0..4 {
        leases.push(
            pool.checkout(false, CHECKOUT_TIMEOUT)
                .await
                .expect("2 workers + 2 overflow"),
        );
    }
    let s = pool.status();
    println!(
        "\noverflow: size 2 + max_overflow 2, 4 checked out: state {:?}, overflow {}, checked out {}",
        s.state, s.overflow, s.checked_out
    );
    match pool.checkout(false, CHECKOUT_TIMEOUT).await {
        Err(PoolError::Full) => println!("  a fifth non-blocking checkout: PoolError::Full"),
        other => panic!("expected Full, got {:?}", other.map(|l| l.pid())),
    }
    drop(leases);
    let s = pool.status();
    println!(
        "  all checked in: state {:?}, overflow {} (overflow workers stopped), available {}",
        s.state, s.overflow, s.available
    );
    pool.stop(Duration::from_secs(5))
        .await
        .expect("the pool stops");
}
