//! ConCache expiry on a manual clock: an item written with TTL `t` at `w` is gone
//! between `w + t` and `w + t + ttl_check_interval`; renew, no_update, infinity,
//! touch_on_read; the sweeper runs on its own every interval.

use std::sync::Arc;
use std::time::Duration;

use orbit::cache::{CacheEvent, CacheOptions, ConCache, Item, ManualClock, Ttl};
use orbit::ets::TableType;
use tokio::sync::mpsc;

const MS: Duration = Duration::from_millis(1);
const NS: Duration = Duration::from_nanos(1);
const TTL: Duration = Duration::from_millis(100);
const INTERVAL: Duration = Duration::from_millis(10);

fn opts(clock: &Arc<ManualClock>) -> CacheOptions<u64, u64> {
    CacheOptions::new()
        .ttl_check_interval(INTERVAL)
        .global_ttl(Ttl::After(TTL))
        .clock(clock.clone())
}

async fn start(clock: &Arc<ManualClock>) -> ConCache<u64, u64> {
    ConCache::start(opts(clock)).await.unwrap()
}

/// Sweeps at the clock's current time; true when `key` is still there afterwards.
async fn present_after_sweep(c: &ConCache<u64, u64>, key: u64) -> bool {
    c.purge_expired().await.unwrap();
    // Through the table: a cache `get` could renew the item (touch_on_read).
    c.ets().member(&key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_lives_exactly_its_ttl_then_the_next_sweep_removes_it() {
    let clock = Arc::new(ManualClock::new());
    let c = start(&clock).await;
    clock.set(3 * MS); // off the sweep grid
    c.put(1, 1).await.unwrap();
    clock.set(3 * MS + TTL - NS);
    assert!(present_after_sweep(&c, 1).await, "gone before its TTL");
    clock.set(3 * MS + TTL);
    assert!(
        !present_after_sweep(&c, 1).await,
        "kept past its TTL at a sweep"
    );
    assert_eq!(c.stats().unwrap().expired, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_removes_an_item_within_one_interval_after_its_ttl() {
    let clock = Arc::new(ManualClock::new());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let c: ConCache<u64, u64> = ConCache::start(opts(&clock).callback(move |e| {
        if let CacheEvent::Delete { key } = e {
            let _ = tx.send(*key);
        }
    }))
    .await
    .unwrap();
    clock.set(3 * MS);
    c.put(7, 7).await.unwrap();
    // The latest moment the item may still exist: w + t + interval. One step of the
    // clock to there must wake the sweeper, which then removes it on its own. (First
    // let the sweeper park on the clock: it schedules its next sweep from the time it
    // sees.)
    let parked = std::time::Instant::now() + Duration::from_secs(10);
    while clock.sleepers() == 0 {
        assert!(
            std::time::Instant::now() < parked,
            "the sweeper never slept"
        );
        tokio::task::yield_now().await;
    }
    clock.set(3 * MS + TTL + INTERVAL);
    let key = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the sweeper did not expire the item")
        .unwrap();
    assert_eq!(key, 7);
    // The callback runs before the delete; a sweep request queues behind the sweep.
    assert_eq!(
        c.purge_expired().await.unwrap(),
        0,
        "the sweeper had expired it already"
    );
    assert_eq!(c.get(&7).unwrap(), None);
    assert_eq!(c.stats().unwrap().expired, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_restarts_the_ttl_and_a_hot_key_stays_queued_once() {
    let clock = Arc::new(ManualClock::new());
    let c = start(&clock).await;
    c.put(1, 0).await.unwrap();
    for i in 1..=50u64 {
        clock.set(MS * (i as u32) * 10);
        c.put(1, i).await.unwrap();
        assert!(present_after_sweep(&c, 1).await);
    }
    assert_eq!(
        c.stats().unwrap().queued,
        1,
        "rewrites must not grow the wheel"
    );
    let last = 500 * MS;
    clock.set(last + TTL - NS);
    assert!(present_after_sweep(&c, 1).await);
    clock.set(last + TTL);
    assert!(!present_after_sweep(&c, 1).await);
    assert_eq!(c.stats().unwrap().queued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_on_read_extends_and_plain_reads_do_not() {
    let clock = Arc::new(ManualClock::new());
    let plain = start(&clock).await;
    let touching: ConCache<u64, u64> = ConCache::start(opts(&clock).touch_on_read(true))
        .await
        .unwrap();
    plain.put(1, 1).await.unwrap();
    touching.put(1, 1).await.unwrap();
    clock.set(50 * MS);
    plain.get(&1).unwrap();
    touching.get(&1).unwrap();
    clock.set(TTL);
    assert!(!present_after_sweep(&plain, 1).await);
    assert!(present_after_sweep(&touching, 1).await);
    clock.set(50 * MS + TTL - NS);
    assert!(present_after_sweep(&touching, 1).await);
    clock.set(50 * MS + TTL);
    assert!(!present_after_sweep(&touching, 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_renews_from_now() {
    let clock = Arc::new(ManualClock::new());
    let c = start(&clock).await;
    c.put(1, 1).await.unwrap();
    clock.set(90 * MS);
    c.touch(&1).unwrap();
    clock.set(150 * MS);
    assert!(present_after_sweep(&c, 1).await);
    clock.set(190 * MS);
    assert!(!present_after_sweep(&c, 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_item_ttls_infinity_renew_and_no_update() {
    let clock = Arc::new(ManualClock::new());
    let c = start(&clock).await;
    c.put(1, Item::new(1, Ttl::After(30 * MS))).await.unwrap();
    c.put(2, Item::new(2, Ttl::Infinity)).await.unwrap();
    c.put(3, Item::new(3, Ttl::After(30 * MS))).await.unwrap();
    c.put(4, 4).await.unwrap();
    clock.set(20 * MS);
    // Renew reapplies the item's last TTL (30 ms) from now; no_update keeps 100 ms.
    c.put(3, Item::new(33, Ttl::Renew)).await.unwrap();
    c.put(4, Item::new(44, Ttl::NoUpdate)).await.unwrap();
    // Renew and no_update on a new key store no expiry (as ConCache).
    c.put(5, Item::new(5, Ttl::Renew)).await.unwrap();
    c.put(6, Item::new(6, Ttl::NoUpdate)).await.unwrap();
    // update of an existing key renews its own TTL.
    c.update(&1, |v| Ok::<_, orbit::cache::CacheError>(v.unwrap() + 10))
        .await
        .unwrap();
    clock.set(30 * MS);
    c.purge_expired().await.unwrap();
    assert_eq!(c.get(&1).unwrap(), Some(11));
    assert_eq!(c.get(&3).unwrap(), Some(33));
    clock.set(50 * MS);
    c.purge_expired().await.unwrap();
    assert_eq!(
        c.get(&1).unwrap(),
        None,
        "updated at 20 with its own 30 ms TTL"
    );
    assert_eq!(c.get(&3).unwrap(), None, "renewed at 20 for 30 ms");
    assert_eq!(c.get(&4).unwrap(), Some(44));
    clock.set(TTL);
    c.purge_expired().await.unwrap();
    assert_eq!(c.get(&4).unwrap(), None, "no_update kept the 100 ms expiry");
    clock.set(100 * TTL);
    c.purge_expired().await.unwrap();
    assert_eq!(c.get(&2).unwrap(), Some(2));
    assert_eq!(c.get(&5).unwrap(), Some(5));
    assert_eq!(c.get(&6).unwrap(), Some(6));
    // A shorter TTL given later wins over the earlier, longer one.
    c.put(2, Item::new(2, Ttl::After(TTL * 10))).await.unwrap();
    c.put(2, Item::new(2, Ttl::After(10 * MS))).await.unwrap();
    clock.set(100 * TTL + 10 * MS);
    c.purge_expired().await.unwrap();
    assert_eq!(c.get(&2).unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_write_cancels_a_pending_expiry() {
    let clock = Arc::new(ManualClock::new());
    let c = start(&clock).await;
    c.put(1, 1).await.unwrap();
    c.put(1, Item::new(1, Ttl::Infinity)).await.unwrap();
    clock.set(10 * TTL);
    assert!(present_after_sweep(&c, 1).await);
    assert_eq!(c.stats().unwrap().queued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_key_is_expired_one_interval_later() {
    let clock = Arc::new(ManualClock::new());
    let c = start(&clock).await;
    c.put(1, 1).await.unwrap();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let c2 = c.clone();
    let holder = tokio::spawn(async move {
        c2.isolated(&1, async move {
            let _ = held_tx.send(());
            let _ = go_rx.await;
        })
        .await
        .unwrap();
    });
    held_rx.await.unwrap();
    clock.set(TTL);
    assert!(
        present_after_sweep(&c, 1).await,
        "the sweep skips a locked key"
    );
    go_tx.send(()).unwrap();
    holder.await.unwrap();
    clock.set(TTL + INTERVAL);
    assert!(!present_after_sweep(&c, 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bag_caches_expire_per_key() {
    let clock = Arc::new(ManualClock::new());
    let c: ConCache<u64, u64> = ConCache::start(opts(&clock).table_type(TableType::Bag))
        .await
        .unwrap();
    c.put(1, 1).await.unwrap();
    clock.set(50 * MS);
    c.put(1, 2).await.unwrap();
    clock.set(TTL);
    c.purge_expired().await.unwrap();
    assert_eq!(
        c.get_all(&1).unwrap(),
        vec![1, 2],
        "the second write renewed the key"
    );
    clock.set(50 * MS + TTL);
    c.purge_expired().await.unwrap();
    assert!(c.get_all(&1).unwrap().is_empty());
}

/// Reads check the deadline themselves: an item past its TTL is missing before any
/// sweep; a write over it starts a new item (the old one is expired first, callback
/// included); touch does not bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_past_its_ttl_is_missing_before_the_sweep() {
    let clock = Arc::new(ManualClock::new());
    let (tx, mut rx) = mpsc::unbounded_channel();
    // A sweep interval of an hour: the sweeper sleeps until then, so only the reads'
    // own deadline checks can hide the items in this test.
    let c: ConCache<u64, u64> = ConCache::start(
        opts(&clock)
            .ttl_check_interval(Duration::from_secs(3600))
            .callback(move |e| {
                if let CacheEvent::Delete { key } = e {
                    let _ = tx.send(*key);
                }
            }),
    )
    .await
    .unwrap();
    for k in 1..=4 {
        c.put(k, k).await.unwrap();
    }
    clock.set(TTL - NS);
    assert_eq!(c.get(&1).unwrap(), Some(1), "alive until its TTL");
    clock.set(TTL);
    // Not swept: still stored, yet missing to every read.
    assert!(c.ets().member(&1).unwrap());
    assert_eq!(c.get(&1).unwrap(), None);
    assert!(c.get_all(&1).unwrap().is_empty());
    assert!(matches!(
        c.update_existing(&1, |v| Ok::<_, orbit::cache::CacheError>(v + 1))
            .await,
        Err(orbit::cache::CacheError::NotExisting)
    ));
    c.touch(&2).unwrap();
    assert_eq!(
        c.get(&2).unwrap(),
        None,
        "touch does not revive an expired item"
    );
    // A write over an expired item: the old one is deleted first, the new one lives.
    c.insert_new(3, 30).await.unwrap();
    assert_eq!(rx.recv().await, Some(3));
    assert_eq!(c.get(&3).unwrap(), Some(30));
    c.put(4, Item::new(40, Ttl::NoUpdate)).await.unwrap();
    assert_eq!(rx.recv().await, Some(4));
    assert_eq!(
        c.get(&4).unwrap(),
        Some(40),
        "no_update over an expired item is a new item without expiry"
    );
    clock.set(10 * TTL);
    c.purge_expired().await.unwrap();
    assert_eq!(c.get(&3).unwrap(), None);
    assert_eq!(c.get(&4).unwrap(), Some(40));
}
