//! Lesson 3: a cache in ETS with expiry and per-key locks (ConCache).
//!
//! Run: `cargo run -p orbit-examples --example cache_ttl`
//! (bigger run: `ORBIT_EXAMPLE_SCALE=10 cargo run -p orbit-examples --example cache_ttl`)
//!
//! [`orbit::cache::ConCache`] is Elixir's ConCache: reads go straight to an ETS table
//! (no process in the way), writes of one key are serialised by that key's lock, and
//! items expire after their TTL. Shown here:
//! - TTL: an item is missing the moment its TTL has passed (the sweeper only frees the
//!   memory later); per-item TTLs and `Ttl::Infinity`;
//! - `touch`: renews an item's TTL without changing it;
//! - isolated updates: `update` runs read-modify-write under the key's lock, so
//!   concurrent increments are never lost (a plain get-then-put loses some);
//! - `get_or_store`: however many callers miss at once, the expensive load runs once.
//!
//! The TTL part runs on a `ManualClock` so that it is exact and instant; with the
//! default system clock the same calls expire in real time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orbit::cache::{CacheOptions, ConCache, Item, ManualClock, Ttl};
use orbit_examples::scaled;

const TTL: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let clock = Arc::new(ManualClock::new());
    let sessions: ConCache<String, String> = ConCache::start(
        CacheOptions::new()
            .ttl_check_interval(100 * MS)
            .global_ttl(Ttl::After(TTL))
            .clock(clock.clone()),
    )
    .await
    .expect("the cache starts");
    let key = |s: &str| s.to_string();

    println!("TTL (global_ttl 1 s, manual clock):");
    sessions
        .put(key("alice"), "token-a".to_string())
        .await
        .expect("put");
    clock.advance(TTL - MS);
    println!(
        "  after 999 ms: get(alice) = {:?}",
        sessions.get(&key("alice")).expect("get")
    );
    clock.advance(MS);
    let gone = sessions.get(&key("alice")).expect("get");
    println!("  after 1000 ms: get(alice) = {gone:?}  (missing at once, before any sweep)");
    assert_eq!(gone, None);

    sessions
        .put(
            key("short"),
            Item::new("flash message".to_string(), Ttl::After(100 * MS)),
        )
        .await
        .expect("put");
    sessions
        .put(
            key("config"),
            Item::new("forever".to_string(), Ttl::Infinity),
        )
        .await
        .expect("put");
    clock.advance(100 * MS);
    println!(
        "  per-item TTLs after 100 ms: short = {:?}, config (Ttl::Infinity) = {:?}",
        sessions.get(&key("short")).expect("get"),
        sessions.get(&key("config")).expect("get")
    );

    println!("\ntouch:");
    sessions
        .put(key("bob"), "token-b".to_string())
        .await
        .expect("put");
    clock.advance(800 * MS);
    sessions.touch(&key("bob")).expect("touch");
    clock.advance(800 * MS);
    let kept = sessions.get(&key("bob")).expect("get");
    println!("  written, 800 ms, touch, 800 ms: get(bob) = {kept:?} (1.6 s after the write)");
    assert!(kept.is_some());
    clock.advance(200 * MS);
    println!(
        "  1 s after the touch: get(bob) = {:?}",
        sessions.get(&key("bob")).expect("get")
    );
    let swept = sessions.purge_expired().await.expect("sweep");
    let stats = sessions.stats().expect("stats");
    println!(
        "  memory: the sweeper (every 100 ms of the clock) removed {} expired items, \
         a sweep now {swept} more; {} left",
        stats.expired, stats.size
    );
    sessions.stop().await;

    // Isolated updates on the system clock.
    let counters: ConCache<&'static str, u64> = ConCache::start(CacheOptions::new().no_ttl_check())
        .await
        .expect("the cache starts");
    let (tasks, each) = (8u64, scaled(100));
    println!("\nisolated updates: {tasks} tasks x {each} increments of one key");
    let run = |isolated: bool, key: &'static str| {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let c = counters.clone();
                tokio::spawn(async move {
                    for _ in 0..each {
                        if isolated {
                            c.update(&key, |v| {
                                Ok::<_, orbit::cache::CacheError>(v.unwrap_or(0) + 1)
                            })
                            .await
                            .expect("update");
                        } else {
                            // Read, do some async work, write: the classic lost update.
                            let v = c.get(&key).expect("get").unwrap_or(0);
                            tokio::task::yield_now().await;
                            c.dirty_put(key, v + 1).expect("put");
                        }
                    }
                })
            })
            .collect::<Vec<_>>();
        async move {
            for h in handles {
                h.await.expect("a task finishes");
            }
        }
    };
    run(false, "racy").await;
    run(true, "isolated").await;
    let racy = counters.get(&"racy").expect("get").unwrap_or(0);
    let isolated = counters.get(&"isolated").expect("get").unwrap_or(0);
    let lost = if racy < tasks * each {
        "updates lost"
    } else {
        "none lost this time, by luck"
    };
    println!("  get + dirty_put: {racy} of {} ({lost})", tasks * each);
    println!("  update (key lock): {isolated} of {}", tasks * each);
    assert_eq!(isolated, tasks * each);
    counters.stop().await;

    // get_or_store: one load for many concurrent misses.
    let users: ConCache<u64, String> = ConCache::start(CacheOptions::new().no_ttl_check())
        .await
        .expect("the cache starts");
    let loads = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let (users, loads) = (users.clone(), loads.clone());
            tokio::spawn(async move {
                users
                    .get_or_store(&42, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(20 * MS).await; // the slow database
                        "user 42".to_string()
                    })
                    .await
                    .expect("get_or_store")
            })
        })
        .collect();
    for c in callers {
        assert_eq!(c.await.expect("a caller finishes"), "user 42");
    }
    let n = loads.load(Ordering::SeqCst);
    println!("\nget_or_store: 10 concurrent callers missed key 42; the loader ran {n} time(s)");
    assert_eq!(n, 1);
    users.stop().await;
}
