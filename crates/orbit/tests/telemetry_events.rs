//! `:telemetry`-style events: attach/detach/execute, a panicking handler is detached,
//! and the events pools, caches and supervisors emit.
//!
//! Handlers are global: each test uses its own event names or filters by metadata.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orbit::pool::{Pool, PoolOptions};
use orbit::telemetry::{self, TelemetryError};
use orbit::{
    spawn_link, CallReply, ChildSpec, Context, Error, ExitReason, GenServer, Pid, ReplyTo,
    ServerContext, Supervisor, SupervisorOptions,
};
use tokio::sync::mpsc;

#[test]
fn attach_execute_detach() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    telemetry::attach("t1", &["test", "a", "b"], move |ev| {
        assert_eq!(ev.name, &["test", "a", "b"]);
        assert_eq!(ev.measurement("n"), Some(2.0));
        assert_eq!(ev.meta("who").as_deref(), Some("me"));
        h.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(
        telemetry::attach("t1", &["test", "a", "b"], |_| {}),
        Err(TelemetryError::AlreadyExists("t1".into()))
    );
    assert!(telemetry::list_handlers(&["test", "a"]).contains(&"t1".to_string()));
    for _ in 0..10 {
        telemetry::execute(&["test", "a", "b"], &[("n", 2.0)], &[("who", &"me")]);
    }
    // Other names, prefixes and longer names do not reach it.
    telemetry::execute(&["test", "a"], &[("n", 2.0)], &[("who", &"me")]);
    telemetry::execute(&["test", "a", "b", "c"], &[("n", 2.0)], &[("who", &"me")]);
    assert_eq!(hits.load(Ordering::SeqCst), 10);
    assert!(telemetry::detach("t1"));
    assert!(!telemetry::detach("t1"));
    telemetry::execute(&["test", "a", "b"], &[("n", 2.0)], &[("who", &"me")]);
    assert_eq!(hits.load(Ordering::SeqCst), 10);
}

#[test]
fn a_panicking_handler_is_detached_and_the_emitter_carries_on() {
    let good = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(AtomicUsize::new(0));
    let b = bad.clone();
    telemetry::attach("t2-bad", &["test", "panic"], move |_| {
        b.fetch_add(1, Ordering::SeqCst);
        panic!("handler bug");
    })
    .unwrap();
    let g = good.clone();
    telemetry::attach("t2-good", &["test", "panic"], move |_| {
        g.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    for _ in 0..5 {
        telemetry::execute(&["test", "panic"], &[], &[]);
    }
    assert_eq!(bad.load(Ordering::SeqCst), 1);
    assert_eq!(good.load(Ordering::SeqCst), 5);
    assert!(!telemetry::list_handlers(&["test", "panic"]).contains(&"t2-bad".to_string()));
    // The id is free again.
    telemetry::attach("t2-bad", &["test", "panic"], |_| {}).unwrap();
    assert!(telemetry::detach("t2-bad"));
    assert!(telemetry::detach("t2-good"));
}

struct W;

impl GenServer for W {
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
        CallReply::Reply(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_checkout_reports_queue_time() {
    let pool = Pool::start(PoolOptions::new(1, 0), || W).await.unwrap();
    let me = pool.pid().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel();
    telemetry::attach("t3", &["orbit", "pool", "checkout"], move |ev| {
        if ev.meta("pool").as_deref() == Some(me.as_str()) {
            let _ = tx.send(ev.measurement("queue_time_us").unwrap_or(-1.0));
        }
    })
    .unwrap();
    let lease = pool.checkout(true, Duration::from_secs(5)).await.unwrap();
    let first = rx.recv().await.unwrap();
    assert!(first >= 0.0);
    // A second checkout waits in the queue until the first lease is returned; the
    // queue time reported is the time that checkout took.
    let p2 = pool.clone();
    let (in_queue_tx, in_queue) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn(async move {
        let t0 = std::time::Instant::now();
        let wait = p2.checkout(true, Duration::from_secs(5));
        let _ = in_queue_tx.send(());
        let l = wait.await.unwrap();
        let took = t0.elapsed().as_secs_f64() * 1e6;
        drop(l);
        took
    });
    in_queue.await.unwrap();
    drop(lease);
    let took = waiter.await.unwrap();
    let queued = rx.recv().await.unwrap();
    assert!(
        queued >= 0.0 && queued <= took,
        "queued {queued} us, took {took} us"
    );
    // A failed checkout (full, no blocking) emits nothing.
    let l = pool.checkout(true, Duration::from_secs(5)).await.unwrap();
    rx.recv().await.unwrap();
    assert!(pool.checkout(false, Duration::from_secs(1)).await.is_err());
    drop(l);
    assert!(rx.try_recv().is_err());
    telemetry::detach("t3");
    let _ = pool.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_reports_child_restarts() {
    let (pids_tx, mut pids) = mpsc::unbounded_channel::<Pid>();
    let spec = ChildSpec::worker("tel-child", move || {
        let tx = pids_tx.clone();
        async move {
            let h = spawn_link(move |_ctx: Context<()>| async move {
                let _ = tx.send(orbit::self_pid().unwrap());
                std::future::pending::<()>().await;
            })?;
            Ok::<_, Error>(h.pid())
        }
    });
    let sup = Supervisor::start(vec![spec], SupervisorOptions::default())
        .await
        .unwrap();
    let sup_pid = sup.pid().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel();
    telemetry::attach("t4", &["orbit", "supervisor", "child_restart"], move |ev| {
        if ev.meta("supervisor").as_deref() == Some(sup_pid.as_str()) {
            let _ = tx.send(ev.meta("child").unwrap_or_default());
        }
    })
    .unwrap();
    let first = pids.recv().await.unwrap();
    orbit::exit(first, ExitReason::error("boom"));
    assert_eq!(rx.recv().await.unwrap(), "tel-child");
    let second = pids.recv().await.unwrap();
    assert_ne!(first, second);
    telemetry::detach("t4");
    sup.stop(ExitReason::Shutdown, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(rx.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_reports_misses() {
    use orbit::cache::{CacheOptions, ConCache};
    let c = ConCache::<u64, u64>::start(CacheOptions::new().no_ttl_check())
        .await
        .unwrap();
    let misses = Arc::new(AtomicUsize::new(0));
    let m = misses.clone();
    // Other tests in this binary do not use caches: every miss here is ours.
    telemetry::attach("t5", &["orbit", "cache", "miss"], move |_| {
        m.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    c.put(1, 1).await.unwrap();
    for k in 0..10u64 {
        let _ = c.get(&k).unwrap();
    }
    telemetry::detach("t5");
    assert_eq!(misses.load(Ordering::SeqCst), 9);
}
