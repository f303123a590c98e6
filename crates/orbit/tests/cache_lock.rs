//! ConCache locks: exclusive per section, re-entry explicit, FIFO for waiters, released
//! when the holder dies; timeouts name the holder; get_or_store runs its function once
//! per key under concurrent misses. (Races and `join!`: `cache_sections.rs`.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orbit::cache::{CacheError, CacheOptions, ConCache, Holder};
use orbit::{Context, ExitReason};
use tokio::sync::{mpsc, oneshot};

async fn cache() -> ConCache<u64, u64> {
    ConCache::start(CacheOptions::new().no_ttl_check())
        .await
        .unwrap()
}

/// Spawns a process that holds `key`'s lock until `release` fires (or it dies).
/// Returns once the lock is held, with the holder's pid.
async fn hold(c: &ConCache<u64, u64>, key: u64) -> (orbit::Handle<()>, oneshot::Sender<()>) {
    let (held_tx, held_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let c = c.clone();
    let h = orbit::spawn(move |_ctx: Context<()>| async move {
        c.isolated(&key, async move {
            let _ = held_tx.send(());
            let _ = release_rx.await;
        })
        .await
        .unwrap();
    })
    .unwrap();
    held_rx.await.unwrap();
    (h, release_tx)
}

/// Waits (yielding) until `n` callers queue for `key`.
async fn until_waiters(c: &ConCache<u64, u64>, key: u64, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.lock_waiters(&key) != n {
        assert!(
            std::time::Instant::now() < deadline,
            "waiters never reached {n}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_read_modify_writes_never_interleave() {
    let c = cache().await;
    c.put(1, 0).await.unwrap();
    let mut hs = Vec::new();
    for _ in 0..20 {
        let c = c.clone();
        hs.push(
            orbit::spawn(move |_ctx: Context<()>| async move {
                for _ in 0..50 {
                    c.isolated(&1, async {
                        let v = c.get(&1).unwrap().unwrap();
                        tokio::task::yield_now().await;
                        c.dirty_put(1, v + 1).unwrap();
                    })
                    .await
                    .unwrap();
                }
            })
            .unwrap(),
        );
    }
    for h in hs {
        assert!(h.wait_exit().await.is_normal());
    }
    assert_eq!(c.get(&1).unwrap(), Some(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reentry_is_explicit_with_the_held_lock() {
    let c = cache().await;
    let short = Duration::from_secs(5);
    let c2 = c.clone();
    orbit::run_in_process(async move {
        let me = orbit::self_pid().unwrap();
        let held = c2.lock(&1).await.unwrap();
        assert_eq!(held.key(), &1);
        assert_eq!(c2.lock_holder(&1), Some(Holder::Process(me)));
        // Inside the section: dirty writes, and re-entry by passing the lock.
        c2.dirty_put(1, 1).unwrap();
        c2.isolated_with(&held, &1, async {
            c2.dirty_update(&1, |v| Ok::<_, CacheError>(v.unwrap() + 1))
                .unwrap();
            // A plain locked operation on the key inside the re-entered section is
            // refused at once: it would wait for its own section.
            let e = c2.put(1, 9).await.unwrap_err();
            assert!(
                matches!(e, CacheError::AlreadyHeld { holder } if holder == Holder::Process(me)),
                "{e}"
            );
            assert!(e.to_string().contains("isolated_with"), "{e}");
            let e = c2.try_isolated(&1, async {}).await.unwrap_err();
            assert!(matches!(e, CacheError::AlreadyHeld { .. }), "{e}");
            // Another key, passing the held one: locked as isolated does.
            c2.isolated_with(&held, &2, async {
                c2.dirty_put(2, 2).unwrap();
                assert!(matches!(
                    c2.delete(&2).await,
                    Err(CacheError::AlreadyHeld { .. })
                ));
                assert!(matches!(
                    c2.delete(&1).await,
                    Err(CacheError::AlreadyHeld { .. })
                ));
            })
            .await
            .unwrap();
        })
        .await
        .unwrap();
        // Holding a bare lock, a plain locked operation waits (it cannot be told from
        // a sibling future) and its timeout names the caller's own process.
        let e = c2
            .isolated_timeout(&1, Duration::from_millis(20), async {})
            .await
            .unwrap_err();
        assert!(
            matches!(e, CacheError::LockTimeout { own: true, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("not re-entrant"), "{e}");
        drop(held);
        c2.isolated_timeout(&1, short, async {}).await.unwrap();
    })
    .await
    .unwrap();
    assert_eq!(c.get(&1).unwrap(), Some(2));
    assert_eq!(c.get(&2).unwrap(), Some(2));
    assert_eq!(c.lock_holder(&1), None, "released");
    assert_eq!(c.lock_holder(&2), None, "released");
    // Sections of plain tokio tasks are sections too.
    let c3 = c.clone();
    tokio::spawn(async move {
        c3.isolated(&3, async { c3.dirty_put(3, 3).unwrap() })
            .await
            .unwrap();
    })
    .await
    .unwrap();
    assert_eq!(c.get(&3).unwrap(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_get_the_lock_in_arrival_order() {
    let c = cache().await;
    let (_holder, release) = hold(&c, 1).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    for i in 0..6u64 {
        let (c2, order, done) = (c.clone(), order.clone(), done_tx.clone());
        orbit::spawn(move |_ctx: Context<()>| async move {
            c2.isolated(&1, async {
                order.lock().unwrap().push(i);
                tokio::task::yield_now().await;
            })
            .await
            .unwrap();
            let _ = done.send(());
        })
        .unwrap();
        until_waiters(&c, 1, i as usize + 1).await;
    }
    release.send(()).unwrap();
    for _ in 0..6 {
        done_rx.recv().await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_past_the_timeout_names_the_holder() {
    let c = cache().await;
    let (holder, release) = hold(&c, 1).await;
    let e = c
        .isolated_timeout(&1, Duration::from_millis(30), async {})
        .await
        .unwrap_err();
    match &e {
        CacheError::LockTimeout {
            holder: h,
            timeout,
            own,
        } => {
            assert!(!own, "another process holds it");
            assert_eq!(*h, Holder::Process(holder.pid()));
            assert_eq!(*timeout, Duration::from_millis(30));
        }
        other => panic!("expected a lock timeout, got {other:?}"),
    }
    assert!(
        e.to_string().contains(&format!("{:?}", holder.pid())),
        "{e}"
    );
    assert_eq!(c.lock_waiters(&1), 0, "a timed-out waiter leaves the queue");
    let e = c.try_isolated(&1, async {}).await.unwrap_err();
    assert!(matches!(e, CacheError::Locked { holder: h } if h == Holder::Process(holder.pid())));
    // The default timeout applies to locked writes.
    let short: ConCache<u64, u64> = ConCache::start(
        CacheOptions::new()
            .no_ttl_check()
            .acquire_lock_timeout(Duration::from_millis(20)),
    )
    .await
    .unwrap();
    let (h2, release2) = hold(&short, 1).await;
    assert!(matches!(
        short.put(1, 1).await,
        Err(CacheError::LockTimeout { holder: Holder::Process(p), .. }) if p == h2.pid()
    ));
    release.send(()).unwrap();
    release2.send(()).unwrap();
    holder.wait_exit().await;
    c.isolated(&1, async {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_releases_its_lock_to_the_next_waiter() {
    let c = cache().await;
    let (holder, _release) = hold(&c, 1).await;
    let (got_tx, got_rx) = oneshot::channel();
    let c2 = c.clone();
    orbit::spawn(move |_ctx: Context<()>| async move {
        let me = orbit::self_pid().unwrap();
        c2.isolated(&1, async {
            let _ = got_tx.send(c2.lock_holder(&1) == Some(Holder::Process(me)));
        })
        .await
        .unwrap();
    })
    .unwrap();
    until_waiters(&c, 1, 1).await;
    orbit::exit(holder.pid(), ExitReason::Kill);
    assert_eq!(holder.wait_exit().await, ExitReason::Killed);
    assert!(got_rx.await.unwrap(), "the waiter got the lock");
    c.isolated_timeout(&1, Duration::from_secs(5), async {})
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_panics_releases_its_lock() {
    let c = cache().await;
    let c2 = c.clone();
    let h = orbit::spawn(move |_ctx: Context<()>| async move {
        c2.isolated(&1, async { panic!("boom inside isolated") })
            .await
            .unwrap();
    })
    .unwrap();
    assert!(!h.wait_exit().await.is_normal());
    assert_eq!(c.lock_holder(&1), None);
    c.put(1, 1).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_dies_leaves_the_queue() {
    let c = cache().await;
    let (_holder, release) = hold(&c, 1).await;
    let c2 = c.clone();
    let waiter = orbit::spawn(move |_ctx: Context<()>| async move {
        c2.isolated(&1, async {}).await.unwrap();
    })
    .unwrap();
    until_waiters(&c, 1, 1).await;
    orbit::exit(waiter.pid(), ExitReason::Kill);
    waiter.wait_exit().await;
    assert_eq!(c.lock_waiters(&1), 0);
    release.send(()).unwrap();
    c.isolated_timeout(&1, Duration::from_secs(5), async {})
        .await
        .unwrap();
    assert_eq!(c.lock_holder(&1), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_store_runs_its_function_once_per_key_under_concurrent_misses() {
    let c = cache().await;
    let calls = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let procs = 64;
    for p in 0..procs {
        let (c, calls, tx) = (c.clone(), calls.clone(), tx.clone());
        orbit::spawn(move |_ctx: Context<()>| async move {
            let mut got = Vec::new();
            for k in 0..4u64 {
                let key = (k + p) % 4;
                let v = c
                    .get_or_store(&key, || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // Give the other processes every chance to miss meanwhile.
                        for _ in 0..10 {
                            tokio::task::yield_now().await;
                        }
                        key * 100 + p
                    })
                    .await
                    .unwrap();
                got.push((key, v));
            }
            let _ = tx.send(got);
        })
        .unwrap();
    }
    drop(tx);
    let mut seen = std::collections::HashMap::new();
    let mut n = 0;
    while let Some(got) = rx.recv().await {
        n += 1;
        for (k, v) in got {
            assert_eq!(
                *seen.entry(k).or_insert(v),
                v,
                "every caller sees the one stored value"
            );
        }
    }
    assert_eq!(n, procs);
    assert_eq!(calls.load(Ordering::SeqCst), 4, "one call per key");
    let s = c.stats().unwrap();
    assert_eq!(s.misses, 4);
    assert_eq!(s.hits, procs * 4 - 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_on_different_keys_do_not_block_each_other() {
    let c: ConCache<u64, u64> =
        ConCache::start(CacheOptions::new().no_ttl_check().n_lock_partitions(1))
            .await
            .unwrap();
    let (_holder, release) = hold(&c, 1).await;
    // Same (only) partition, other key: no wait.
    c.try_isolated(&2, async {}).await.unwrap();
    c.put(2, 2).await.unwrap();
    release.send(()).unwrap();
}
