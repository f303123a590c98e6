//! ConCache lock sections under adversarial timing: a waiter whose lock timeout fires as
//! the lock is released never holds it beside the next holder; two futures of one
//! process (or task) exclude each other; a nested locked operation on a key the caller's
//! own section holds fails at once instead of waiting for itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit::cache::{CacheError, CacheOptions, ConCache};

async fn cache() -> ConCache<u64, u64> {
    ConCache::start(CacheOptions::new().no_ttl_check())
        .await
        .unwrap()
}

/// Counts sections inside at once; `overlaps` counts entries that found another inside.
#[derive(Default)]
struct Inside {
    now: AtomicU64,
    overlaps: AtomicU64,
    entries: AtomicU64,
}

impl Inside {
    fn enter(&self) {
        self.entries.fetch_add(1, Ordering::SeqCst);
        if self.now.fetch_add(1, Ordering::SeqCst) != 0 {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Impatient waiters (lock timeouts of 0–2 ms) keep timing out while patient sections
/// keep releasing the lock, so timeouts fire at the moment of release again and again.
/// Every section (a read-modify-write with yields inside) checks that it is alone.
/// Bounded: 2 s of load, then every task is joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiter_timing_out_as_the_lock_is_released_never_holds_it_beside_another() {
    let c = cache().await;
    c.put(1, 0).await.unwrap();
    let inside = Arc::new(Inside::default());
    let stop = Instant::now() + Duration::from_secs(2);
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..12u64 {
        let (c, inside, done) = (c.clone(), inside.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < stop {
                i += 1;
                // Patient sections (w < 4) wait as long as needed; the others give up
                // after 0, 1 or 2 ms, i.e. around the release of a section.
                let timeout = if w < 4 {
                    Duration::from_secs(30)
                } else {
                    Duration::from_micros((i * 7 + w * 13) % 2_000)
                };
                let r = c
                    .isolated_timeout(&1, timeout, async {
                        inside.enter();
                        let v = c.get(&1).unwrap().unwrap();
                        tokio::task::yield_now().await;
                        tokio::task::yield_now().await;
                        c.dirty_put(1, v + 1).unwrap();
                        inside.leave();
                    })
                    .await;
                match r {
                    Ok(()) => {
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(CacheError::LockTimeout { .. }) => {}
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let overlaps = inside.overlaps.load(Ordering::SeqCst);
    let entries = inside.entries.load(Ordering::SeqCst);
    let done = done.load(Ordering::SeqCst);
    eprintln!("sections entered: {entries}, completed Ok: {done}, overlaps: {overlaps}");
    assert_eq!(
        overlaps, 0,
        "{overlaps} of {entries} sections overlapped another"
    );
    assert_eq!(
        c.get(&1).unwrap(),
        Some(done),
        "lost updates: every section that returned Ok incremented once"
    );
    assert!(done > 0);
    // The lock is free afterwards (no section kept it, no waiter is stuck).
    assert_eq!(c.lock_holder(&1), None);
    assert_eq!(c.lock_waiters(&1), 0);
    c.isolated_timeout(&1, Duration::from_secs(5), async {})
        .await
        .unwrap();
}

/// N read-modify-write sections from each of two futures joined in one caller.
async fn two_joined_futures(c: &ConCache<u64, u64>, inside: &Inside, n: u64) {
    let one = || async {
        for _ in 0..n {
            c.isolated(&1, async {
                inside.enter();
                let v = c.get(&1).unwrap().unwrap();
                tokio::task::yield_now().await;
                c.dirty_put(1, v + 1).unwrap();
                inside.leave();
            })
            .await
            .unwrap();
        }
    };
    tokio::join!(one(), one());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_futures_of_one_process_exclude_each_other() {
    const N: u64 = 1_000;
    let c = cache().await;
    c.put(1, 0).await.unwrap();
    let c2 = c.clone();
    let (overlaps, entries) = orbit::run_in_process(async move {
        let inside = Inside::default();
        two_joined_futures(&c2, &inside, N).await;
        (
            inside.overlaps.load(Ordering::SeqCst),
            inside.entries.load(Ordering::SeqCst),
        )
    })
    .await
    .unwrap();
    assert_eq!(entries, 2 * N);
    assert_eq!(overlaps, 0, "{overlaps} of {entries} sections overlapped");
    assert_eq!(c.get(&1).unwrap(), Some(2 * N), "lost updates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_futures_of_one_tokio_task_exclude_each_other() {
    const N: u64 = 1_000;
    let c = cache().await;
    c.put(1, 0).await.unwrap();
    let c2 = c.clone();
    let (overlaps, entries) = tokio::spawn(async move {
        let inside = Inside::default();
        two_joined_futures(&c2, &inside, N).await;
        (
            inside.overlaps.load(Ordering::SeqCst),
            inside.entries.load(Ordering::SeqCst),
        )
    })
    .await
    .unwrap();
    assert_eq!(entries, 2 * N);
    assert_eq!(overlaps, 0, "{overlaps} of {entries} sections overlapped");
    assert_eq!(c.get(&1).unwrap(), Some(2 * N), "lost updates");
}

/// From the test's own future (outside any process or spawned task): a nested
/// `isolated` on the key the section holds fails at once, naming the way out, instead
/// of waiting for itself until the 5 s lock timeout.
#[tokio::test]
async fn a_nested_isolated_on_a_held_key_outside_any_process_fails_at_once() {
    let c = cache().await;
    let nested = tokio::time::timeout(
        Duration::from_secs(2),
        c.isolated(&1, async { c.isolated(&1, async {}).await }),
    )
    .await
    .expect("the nested isolated waited for its own section (deadlock until LockTimeout)")
    .unwrap();
    let e = nested.unwrap_err();
    assert!(matches!(e, CacheError::AlreadyHeld { .. }), "{e}");
    assert!(e.to_string().contains("already holds"), "{e}");
    // Locked writes nested the same way fail the same way; other keys are fine.
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        c.isolated(&1, async {
            let put = c.put(1, 1).await;
            let other = c.put(2, 2).await;
            (put, other)
        }),
    )
    .await
    .expect("a nested put waited for its own section")
    .unwrap();
    assert!(matches!(r.0, Err(CacheError::AlreadyHeld { .. })));
    r.1.unwrap();
    assert_eq!(c.lock_holder(&1), None);
    // Holding a bare KeyLock, a plain request cannot be told from a sibling future's:
    // it waits, and its timeout says the holder is the caller's own thread.
    let held = c.lock(&1).await.unwrap();
    let e = c
        .isolated_timeout(&1, Duration::from_millis(20), async {})
        .await
        .unwrap_err();
    assert!(
        matches!(e, CacheError::LockTimeout { own: true, .. }),
        "{e}"
    );
    // Explicit re-entry with the lock runs at once.
    c.isolated_with(&held, &1, async { c.dirty_put(1, 3).unwrap() })
        .await
        .unwrap();
    drop(held);
    assert_eq!(c.get(&1).unwrap(), Some(3));
}
