//! ConCache: options, the operations and their errors, callbacks, counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orbit::cache::{CacheError, CacheEvent, CacheOptions, ConCache, Item, Ttl};
use orbit::ets::TableType;

fn no_ttl<K, V>() -> CacheOptions<K, V> {
    CacheOptions::new().no_ttl_check()
}

fn with_ttl<K, V>() -> CacheOptions<K, V> {
    CacheOptions::new()
        .ttl_check_interval(Duration::from_secs(1))
        .global_ttl(Ttl::After(Duration::from_secs(60)))
}

#[derive(Debug, PartialEq)]
enum AppError {
    Cache(String),
    Nope,
}

impl From<CacheError> for AppError {
    fn from(e: CacheError) -> Self {
        AppError::Cache(e.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_option_combinations_fail_at_start() {
    let missing = ConCache::<u64, u64>::start(CacheOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, CacheError::InvalidOptions(m) if m.contains("ttl_check_interval must be supplied"))
    );

    let off_with_ttl = ConCache::<u64, u64>::start(
        CacheOptions::new()
            .no_ttl_check()
            .global_ttl(Ttl::After(Duration::from_secs(1))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&off_with_ttl, CacheError::InvalidOptions(m) if m.contains("global_ttl is set"))
    );

    let interval_without_ttl =
        ConCache::<u64, u64>::start(CacheOptions::new().ttl_check_interval(Duration::from_secs(1)))
            .await
            .unwrap_err();
    assert!(
        matches!(&interval_without_ttl, CacheError::InvalidOptions(m) if m.contains("needs a global_ttl"))
    );

    let zero_partitions = ConCache::<u64, u64>::start(no_ttl().n_lock_partitions(0))
        .await
        .unwrap_err();
    assert!(matches!(zero_partitions, CacheError::InvalidOptions(_)));

    // An interval with an infinite global TTL is fine: only per-item TTLs expire.
    let c = ConCache::<u64, u64>::start(
        CacheOptions::new()
            .ttl_check_interval(Duration::from_secs(1))
            .global_ttl(Ttl::Infinity),
    )
    .await
    .unwrap();
    c.put(1, Item::new(1, Ttl::After(Duration::from_secs(5))))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_on_a_cache_without_check_interval_is_an_error() {
    let c: ConCache<u64, u64> = ConCache::start(no_ttl()).await.unwrap();
    let e = c
        .put(1, Item::new(1, Ttl::After(Duration::from_secs(1))))
        .await
        .unwrap_err();
    assert!(matches!(e, CacheError::NoTtlCheck));
    assert!(e.to_string().contains("no ttl_check_interval"));
    assert_eq!(c.get(&1).unwrap(), None);
    // Infinity, renew and no_update need no sweeper.
    c.put(1, Item::new(1, Ttl::Infinity)).await.unwrap();
    c.put(1, Item::new(2, Ttl::Renew)).await.unwrap();
    c.put(1, Item::new(3, Ttl::NoUpdate)).await.unwrap();
    assert_eq!(c.get(&1).unwrap(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_size() {
    let c: ConCache<String, u64> = ConCache::start(with_ttl()).await.unwrap();
    assert_eq!(c.get("a").unwrap(), None);
    c.put("a".into(), 1).await.unwrap();
    c.put("b".into(), 2).await.unwrap();
    c.put("a".into(), 3).await.unwrap();
    assert_eq!(c.get("a").unwrap(), Some(3));
    assert_eq!(c.size().unwrap(), 2);
    c.delete(&"a".into()).await.unwrap();
    assert_eq!(c.get("a").unwrap(), None);
    c.dirty_delete(&"b".into()).unwrap();
    assert_eq!(c.size().unwrap(), 0);
    c.dirty_put("c".into(), 4).unwrap();
    assert_eq!(c.get("c").unwrap(), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_new_on_an_existing_key_is_already_exists() {
    let c: ConCache<u64, u64> = ConCache::start(with_ttl()).await.unwrap();
    c.insert_new(1, 10).await.unwrap();
    assert!(matches!(
        c.insert_new(1, 11).await,
        Err(CacheError::AlreadyExists)
    ));
    assert!(matches!(
        c.dirty_insert_new(1, 12),
        Err(CacheError::AlreadyExists)
    ));
    assert_eq!(c.get(&1).unwrap(), Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_stores_ok_and_keeps_everything_on_error() {
    let c: ConCache<u64, u64> = ConCache::start(with_ttl()).await.unwrap();
    c.update(&1, |v| {
        assert_eq!(v, None);
        Ok::<_, CacheError>(1)
    })
    .await
    .unwrap();
    c.update(&1, |v| Ok::<_, CacheError>(v.unwrap() + 1))
        .await
        .unwrap();
    assert_eq!(c.get(&1).unwrap(), Some(2));
    let e = c
        .update(&1, |_| Err::<u64, _>(AppError::Nope))
        .await
        .unwrap_err();
    assert_eq!(e, AppError::Nope);
    assert_eq!(c.get(&1).unwrap(), Some(2));
    c.dirty_update(&1, |v| Ok::<_, CacheError>(v.unwrap() * 10))
        .unwrap();
    assert_eq!(c.get(&1).unwrap(), Some(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_existing_on_a_missing_key_is_not_existing() {
    let c: ConCache<u64, u64> = ConCache::start(with_ttl()).await.unwrap();
    let called = AtomicU64::new(0);
    let e = c
        .update_existing(&1, |v| {
            called.fetch_add(1, Ordering::SeqCst);
            Ok::<_, CacheError>(v + 1)
        })
        .await
        .unwrap_err();
    assert!(matches!(e, CacheError::NotExisting));
    assert_eq!(called.load(Ordering::SeqCst), 0);
    // The caller's own error type carries cache errors too.
    let e = c
        .dirty_update_existing(&1, |v| Ok::<_, AppError>(v + 1))
        .unwrap_err();
    assert!(matches!(e, AppError::Cache(m) if m.contains("does not exist")));
    c.put(1, 5).await.unwrap();
    c.update_existing(&1, |v| Ok::<_, CacheError>(v + 1))
        .await
        .unwrap();
    assert_eq!(c.get(&1).unwrap(), Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_or_store_stores_nothing_when_the_function_fails() {
    let c: ConCache<u64, u64> = ConCache::start(with_ttl()).await.unwrap();
    let e = c
        .fetch_or_store(&1, || async { Err::<u64, _>(AppError::Nope) })
        .await
        .unwrap_err();
    assert_eq!(e, AppError::Nope);
    assert_eq!(c.size().unwrap(), 0);
    let v = c
        .fetch_or_store(&1, || async { Ok::<_, AppError>(7) })
        .await
        .unwrap();
    assert_eq!(v, 7);
    let v = c
        .fetch_or_store(&1, || async { Ok::<_, AppError>(8) })
        .await
        .unwrap();
    assert_eq!(v, 7, "a hit does not call the function");
    let v = c
        .dirty_fetch_or_store(&2, || async { Ok::<_, CacheError>(9) })
        .await
        .unwrap();
    assert_eq!(v, 9);
    assert_eq!(c.get_or_store(&3, || async { 3 }).await.unwrap(), 3);
    assert_eq!(c.get_or_store(&3, || async { 4 }).await.unwrap(), 3);
    assert_eq!(c.dirty_get_or_store(&4, || async { 4 }).await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_get_or_store_on_bags_are_errors() {
    for kind in [TableType::Bag, TableType::DuplicateBag] {
        let c: ConCache<u64, u64> = ConCache::start(with_ttl().table_type(kind)).await.unwrap();
        c.put(1, 1).await.unwrap();
        c.put(1, 2).await.unwrap();
        assert_eq!(c.get_all(&1).unwrap(), vec![1, 2]);
        let e = c.update(&1, |_| Ok::<_, CacheError>(3)).await.unwrap_err();
        assert!(
            matches!(e, CacheError::WrongType { op: "update", .. }),
            "{e}"
        );
        assert!(e.to_string().contains("set or ordered_set"));
        let e = c
            .update_existing(&1, |_| Ok::<_, CacheError>(3))
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            CacheError::WrongType {
                op: "update_existing",
                ..
            }
        ));
        let e = c.get_or_store(&1, || async { 3 }).await.unwrap_err();
        assert!(matches!(
            e,
            CacheError::WrongType {
                op: "get_or_store",
                ..
            }
        ));
        let e = c
            .fetch_or_store(&1, || async { Ok::<_, CacheError>(3) })
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            CacheError::WrongType {
                op: "fetch_or_store",
                ..
            }
        ));
        assert!(matches!(
            c.insert_new(1, 9).await,
            Err(CacheError::AlreadyExists)
        ));
        c.delete(&1).await.unwrap();
        assert!(c.get_all(&1).unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_set_caches_work_like_sets() {
    let c: ConCache<u64, u64> = ConCache::start(with_ttl().table_type(TableType::OrderedSet))
        .await
        .unwrap();
    for k in [3, 1, 2] {
        c.put(k, k * 10).await.unwrap();
    }
    c.update(&2, |v| Ok::<_, CacheError>(v.unwrap() + 1))
        .await
        .unwrap();
    let keys: Vec<u64> = c
        .ets()
        .tab2list()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![1, 2, 3]);
    assert_eq!(c.get(&2).unwrap(), Some(21));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_sees_updates_after_and_deletes_before() {
    type Log = Arc<Mutex<Vec<String>>>;
    let log: Log = Arc::default();
    let c: Arc<Mutex<Option<ConCache<u64, u64>>>> = Arc::default();
    let (l, cc) = (log.clone(), c.clone());
    let cache: ConCache<u64, u64> = ConCache::start(with_ttl().callback(move |e| {
        // What the table holds when the callback runs.
        let seen = cc
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|c: &ConCache<u64, u64>| c.ets().get(&1).unwrap().map(|e| *e.value()));
        l.lock().unwrap().push(match e {
            CacheEvent::Update { key, value } => format!("update {key}={value} stored={seen:?}"),
            CacheEvent::Delete { key } => format!("delete {key} stored={seen:?}"),
        });
    }))
    .await
    .unwrap();
    *c.lock().unwrap() = Some(cache.clone());
    cache.put(1, 10).await.unwrap();
    cache
        .update(&1, |v| Ok::<_, CacheError>(v.unwrap() + 1))
        .await
        .unwrap();
    cache.delete(&1).await.unwrap();
    *c.lock().unwrap() = None;
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            "update 1=10 stored=Some(10)",
            "update 1=11 stored=Some(11)",
            "delete 1 stored=Some(11)",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_hits_and_misses() {
    let c: ConCache<u64, u64> = ConCache::start(with_ttl()).await.unwrap();
    c.get(&1).unwrap(); // miss
    c.put(1, 1).await.unwrap();
    c.get(&1).unwrap(); // hit
    c.get_or_store(&1, || async { 0 }).await.unwrap(); // hit
    c.get_or_store(&2, || async { 0 }).await.unwrap(); // miss
    let s = c.stats().unwrap();
    assert_eq!((s.hits, s.misses, s.size), (2, 2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_cache_fails_every_operation() {
    let c: ConCache<u64, u64> = ConCache::start(with_ttl()).await.unwrap();
    c.put(1, 1).await.unwrap();
    let owner = c.owner();
    c.stop().await;
    assert!(orbit::process_info(owner).is_none());
    assert!(matches!(c.get(&1), Err(CacheError::Stopped)));
    assert!(matches!(c.put(1, 1).await, Err(CacheError::Stopped)));
    assert!(matches!(c.purge_expired().await, Err(CacheError::Stopped)));
}

/// Monitors `pid` from a helper process; the receiver gets the exit reason. Returns once
/// the monitor is in place.
async fn watch(pid: orbit::Pid) -> tokio::sync::oneshot::Receiver<orbit::ExitReason> {
    let (armed_tx, armed_rx) = tokio::sync::oneshot::channel();
    let (tx, rx) = tokio::sync::oneshot::channel();
    orbit::spawn(move |mut ctx: orbit::Context<()>| async move {
        let r = orbit::monitor(pid).unwrap();
        let _ = armed_tx.send(());
        loop {
            if let orbit::Message::Down(d) = ctx.recv().await {
                if d.monitor == r {
                    let _ = tx.send(d.reason);
                    return;
                }
            }
        }
    })
    .unwrap();
    armed_rx.await.unwrap();
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_stops_the_owner_and_deletes_the_table() {
    let c: ConCache<u64, u64> = ConCache::start(with_ttl()).await.unwrap();
    let table = c.ets().clone();
    let down = watch(c.owner()).await;
    let c2 = c.clone();
    drop(c);
    assert!(table.is_alive(), "a clone keeps the cache");
    drop(c2);
    let reason = down.await.unwrap();
    assert!(reason.is_normal(), "{reason:?}");
    // The table is deleted as its owner exits (by a watcher, just after).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while table.is_alive() && std::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    assert!(!table.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_values_take_str_literals() {
    let c: ConCache<String, String> = ConCache::start(no_ttl()).await.unwrap();
    c.put("k".into(), "hello").await.unwrap();
    c.dirty_put("j".into(), "world").unwrap();
    assert_eq!(c.get("k").unwrap().as_deref(), Some("hello"));
    assert_eq!(c.get("j").unwrap().as_deref(), Some("world"));
}
