//! `Pool` workers that panic: in `init` (the start fails cleanly), and right after
//! starting (a crash loop is replaced at most once per 100 ms per worker, not spun).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orbit::pool::{Pool, PoolError, PoolOptions, PoolState};
use orbit::{CallReply, GenServer, ReplyTo, ServerContext};

const T: Duration = Duration::from_secs(5);

/// Silences the expected panics of this file (they carry "boom").
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(|s| s.as_str()));
            if !msg.is_some_and(|m| m.contains("boom")) {
                default(info);
            }
        }));
    });
}

#[derive(Default)]
struct Faults {
    inits: AtomicUsize,
    /// `init` panics.
    init_panics: AtomicBool,
    /// The worker panics just after starting (in `handle_continue`).
    crash_after_start: AtomicBool,
}

struct Worker(Arc<Faults>);

impl GenServer for Worker {
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn init(&mut self, _ctx: &mut ServerContext<Self>) -> orbit::Init<()> {
        self.0.inits.fetch_add(1, Ordering::SeqCst);
        if self.0.init_panics.load(Ordering::SeqCst) {
            panic!("boom: init");
        }
        orbit::Init::Continue(())
    }

    async fn handle_continue(&mut self, _c: (), _ctx: &mut ServerContext<Self>) -> orbit::Next<()> {
        if self.0.crash_after_start.load(Ordering::SeqCst) {
            panic!("boom: after start");
        }
        orbit::Next::NoReply
    }

    async fn handle_call(
        &mut self,
        _req: (),
        _from: &mut ReplyTo<()>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<(), ()> {
        CallReply::Reply(())
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..5000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{what}: not reached in 5 s");
}

/// Workers that die right after every start were replaced at once, in a loop (old
/// code: thousands of restarts in 400 ms). Now a worker that dies within 100 ms of its
/// start is replaced 100 ms after that start: over 400 ms a pool of 2 starts at most
/// 2 + 2 × 4 = 10 workers (bound 14 for scheduling slack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_crashing_right_after_start_are_not_restarted_in_a_hot_loop() {
    quiet_expected_panics();
    let f = Arc::new(Faults::default());
    let f2 = f.clone();
    let p = Pool::start(PoolOptions::new(2, 0), move || Worker(f2.clone()))
        .await
        .unwrap();
    let t0 = tokio::time::Instant::now();
    f.crash_after_start.store(true, Ordering::SeqCst);
    // Make both workers crash once (a call makes them run; the crash comes from the
    // replacement's handle_continue).
    for w in p.workers() {
        orbit::exit(w, orbit::ExitReason::Kill);
    }
    // The measurement window (this test measures a rate).
    tokio::time::sleep_until(t0 + Duration::from_millis(400)).await;
    let inits = f.inits.load(Ordering::SeqCst);
    eprintln!("worker starts in 400 ms: {inits}");
    assert!(
        inits <= 14,
        "workers restarted in a hot loop: {inits} starts in 400 ms"
    );
    // Healthy again: the pool refills and serves.
    f.crash_after_start.store(false, Ordering::SeqCst);
    eventually("pool refilled", || p.status().available == 2).await;
    assert_eq!(p.status().state, PoolState::Ready);
    p.transaction(|w| async move { w.call(()).await.unwrap() }, T)
        .await
        .unwrap();
    p.stop(T).await.unwrap();
}

/// A worker whose `init` panics: the pool's start fails with the panic as the reason;
/// an overflow worker that panics in `init` fails only that checkout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_init_panic_fails_cleanly() {
    quiet_expected_panics();
    let f = Arc::new(Faults {
        init_panics: AtomicBool::new(true),
        ..Default::default()
    });
    let f2 = f.clone();
    let e = Pool::start(PoolOptions::new(2, 0), move || Worker(f2.clone()))
        .await
        .unwrap_err();
    assert!(matches!(e, PoolError::WorkerStart(_)), "{e}");
    assert!(e.to_string().contains("boom: init"), "{e}");

    f.init_panics.store(false, Ordering::SeqCst);
    let f2 = f.clone();
    let p = Pool::start(PoolOptions::new(1, 1), move || Worker(f2.clone()))
        .await
        .unwrap();
    let held = p.checkout(true, T).await.unwrap();
    f.init_panics.store(true, Ordering::SeqCst);
    let e = p.checkout(true, T).await.unwrap_err();
    assert!(matches!(e, PoolError::WorkerStart(_)), "{e}");
    let s = p.status();
    assert_eq!((s.overflow, s.checked_out), (0, 1));
    f.init_panics.store(false, Ordering::SeqCst);
    drop(held);
    assert_eq!(p.status().available, 1);
    p.stop(T).await.unwrap();
}
