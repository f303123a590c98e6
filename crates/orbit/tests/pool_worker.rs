//! `Pool`: poolboy's worker pool (otp-semantics §6): checkout, overflow, FIFO waiters,
//! transactions, status, failure rules and the checkout-timeout races.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orbit::pool::{
    CheckinError, CheckoutOrder, Pool, PoolError, PoolOptions, PoolState, PoolStatus,
};
use orbit::{CallReply, ExitReason, GenServer, Pid, ReplyTo, ServerContext};

const T: Duration = Duration::from_secs(5);

/// A trivial worker: answers `Ping` with its pid, panics on `Crash`; counts terminates.
struct Worker {
    terminated: Arc<AtomicUsize>,
}

enum Req {
    Ping,
    Crash,
}

impl GenServer for Worker {
    type Call = Req;
    type Reply = Pid;
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn init(&mut self, ctx: &mut ServerContext<Self>) -> orbit::Init<()> {
        // Trapping exits makes a dismissal go through terminate (the parent's exit).
        ctx.trap_exit(true);
        orbit::Init::Ok
    }

    async fn handle_call(
        &mut self,
        req: Req,
        _from: &mut ReplyTo<Pid>,
        ctx: &mut ServerContext<Self>,
    ) -> CallReply<Pid, ()> {
        match req {
            Req::Ping => CallReply::Reply(ctx.pid()),
            Req::Crash => panic!("worker crash"),
        }
    }

    async fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut ServerContext<Self>) {
        self.terminated.fetch_add(1, Ordering::SeqCst);
    }
}

async fn pool(size: usize, overflow: usize) -> (Pool<Worker>, Arc<AtomicUsize>) {
    pool_opts(PoolOptions::new(size, overflow)).await
}

async fn pool_opts(opts: PoolOptions) -> (Pool<Worker>, Arc<AtomicUsize>) {
    let terminated = Arc::new(AtomicUsize::new(0));
    let t = terminated.clone();
    let p = Pool::start(opts, move || Worker {
        terminated: t.clone(),
    })
    .await
    .unwrap();
    (p, terminated)
}

fn status(state: PoolState, available: usize, overflow: usize, checked_out: usize) -> PoolStatus {
    PoolStatus {
        state,
        available,
        overflow,
        checked_out,
    }
}

/// Waits (polling, bounded) until `cond` holds: for effects the manager applies
/// asynchronously, such as a replacement worker's start.
async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..5000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition not reached in 5 s");
}

fn is_alive(pid: Pid) -> bool {
    orbit::process_info(pid).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_and_checkin_move_workers_between_states() {
    let (p, _) = pool(2, 1).await;
    assert_eq!(p.status(), status(PoolState::Ready, 2, 0, 0));
    let a = p.checkout(true, T).await.unwrap();
    let b = p.checkout(true, T).await.unwrap();
    assert_ne!(a.pid(), b.pid());
    assert_eq!(a.call(Req::Ping).await.unwrap(), a.pid());
    // No idle worker, one overflow slot left: poolboy's `overflow` state.
    assert_eq!(p.status(), status(PoolState::Overflow, 0, 0, 2));
    let c = p.checkout(false, T).await.unwrap();
    assert_eq!(p.status(), status(PoolState::Full, 0, 1, 3));
    assert_eq!(p.workers().len(), 3);
    assert!(matches!(p.checkout(false, T).await, Err(PoolError::Full)));
    p.checkin(a).unwrap();
    // Overflowing and nobody waits: the checked-in worker is stopped instead of kept.
    assert_eq!(p.status(), status(PoolState::Overflow, 0, 0, 2));
    assert_eq!(p.workers().len(), 2);
    drop(b);
    drop(c);
    assert_eq!(p.status(), status(PoolState::Ready, 2, 0, 0));
    let stats = p.stats();
    assert_eq!(stats.checkouts, 3);
    assert_eq!(stats.full, 1);
    assert_eq!(stats.workers, 2);
    p.stop(T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflow_worker_is_stopped_on_checkin_when_nobody_waits() {
    let (p, terminated) = pool(1, 2).await;
    let a = p.checkout(true, T).await.unwrap();
    let b = p.checkout(true, T).await.unwrap();
    let c = p.checkout(true, T).await.unwrap();
    assert_eq!(p.status(), status(PoolState::Full, 0, 2, 3));
    let (pb, pc) = (b.worker().clone(), c.worker().clone());
    drop(b);
    // Stopped by its parent (the manager): terminate runs even though it traps exits.
    assert_eq!(pb.wait_exit().await, ExitReason::Shutdown);
    drop(c);
    assert_eq!(pc.wait_exit().await, ExitReason::Shutdown);
    assert_eq!(terminated.load(Ordering::SeqCst), 2);
    assert_eq!(p.status(), status(PoolState::Overflow, 0, 0, 1));
    drop(a);
    assert_eq!(p.status(), status(PoolState::Ready, 1, 0, 0));
    assert_eq!(p.workers().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_served_first_in_first_out() {
    let (p, _) = pool(1, 0).await;
    let held = p.checkout(true, T).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for i in 0..5 {
        let p2 = p.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let lease = p2.checkout(true, T).await.unwrap();
            tx.send(i).unwrap();
            drop(lease);
        }));
        // Each waiter is queued before the next one starts.
        eventually(|| p.stats().waiting == i + 1).await;
    }
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    let order: Vec<usize> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4]);
    let s = p.stats();
    assert_eq!(s.waited, 5);
    assert!(s.wait.max > Duration::ZERO);
    assert_eq!(p.status(), status(PoolState::Ready, 1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifo_hands_out_the_last_returned_worker_and_fifo_the_oldest() {
    let (lifo, _) = pool_opts(PoolOptions::new(3, 0).strategy(CheckoutOrder::Lifo)).await;
    let (fifo, _) = pool_opts(PoolOptions::new(3, 0).strategy(CheckoutOrder::Fifo)).await;
    for (p, expect_same) in [(lifo, true), (fifo, false)] {
        let a = p.checkout(true, T).await.unwrap();
        let first = a.pid();
        drop(a);
        let b = p.checkout(true, T).await.unwrap();
        assert_eq!(b.pid() == first, expect_same);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_checks_in_on_success_error_panic_and_drop() {
    let (p, _) = pool(1, 0).await;
    let pid = p
        .transaction(|w| async move { w.call(Req::Ping).await.unwrap() }, T)
        .await
        .unwrap();
    assert!(p.workers().contains(&pid));
    let r: Result<Result<(), &str>, PoolError> =
        p.transaction(|_w| async { Err("failed") }, T).await;
    assert_eq!(r.unwrap(), Err("failed"));
    assert_eq!(p.status().available, 1);
    // A panic inside the function unwinds through the transaction.
    let p2 = p.clone();
    let panicked = tokio::spawn(async move {
        p2.transaction(|_w| async { panic!("in transaction") }, T)
            .await
            .unwrap()
    })
    .await;
    assert!(panicked.is_err());
    assert_eq!(p.status().available, 1);
    // The transaction's future dropped mid-way (e.g. the caller was killed).
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let p3 = p.clone();
    let t = tokio::spawn(async move {
        p3.transaction(
            |_w| async move {
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await
            },
            T,
        )
        .await
    });
    started_rx.await.unwrap();
    assert_eq!(p.status().checked_out, 1);
    t.abort();
    let _ = t.await;
    assert_eq!(p.status(), status(PoolState::Ready, 1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_checks_out_calls_and_checks_in_also_when_the_worker_crashes() {
    let (p, _) = pool(1, 0).await;
    let pid = p.call(Req::Ping).await.unwrap();
    assert!(p.workers().contains(&pid));
    assert_eq!(p.status(), status(PoolState::Ready, 1, 0, 0));
    // The future borrows nothing: a task body as it stands, run while the test holds
    // the only worker, so the call waits in the queue until the lease is dropped.
    let lease = p.checkout(true, T).await.unwrap();
    let call = tokio::spawn(p.call(Req::Ping));
    eventually(|| p.stats().waiting == 1).await;
    drop(lease);
    assert_eq!(call.await.unwrap().unwrap(), pid);
    // A worker crashing in the call: the caller gets the call's error, the pool a fresh
    // worker.
    let e = p.call(Req::Crash).await.unwrap_err();
    assert!(
        matches!(e, PoolError::Call(orbit::CallError::Exit(_))),
        "{e}"
    );
    eventually(|| p.status().available == 1 && !p.workers().contains(&pid)).await;
    assert_ne!(p.call(Req::Ping).await.unwrap(), pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_process_that_dies_holding_a_worker_returns_it() {
    let (p, _) = pool(1, 0).await;
    let (got_tx, got_rx) = tokio::sync::oneshot::channel();
    let p2 = p.clone();
    let caller = orbit::spawn(move |_ctx: orbit::Context<()>| async move {
        let lease = p2.checkout(true, T).await.unwrap();
        got_tx.send(lease.pid()).unwrap();
        std::future::pending::<()>().await;
    })
    .unwrap();
    let worker = got_rx.await.unwrap();
    assert_eq!(p.status().checked_out, 1);
    orbit::exit(caller.pid(), ExitReason::Kill);
    caller.wait_exit().await;
    eventually(|| p.status().available == 1).await;
    assert_eq!(p.checkout(false, T).await.unwrap().pid(), worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_idle_or_checked_out_is_replaced() {
    let (p, _) = pool(2, 0).await;
    let before = p.workers();
    // Idle death.
    orbit::exit(before[0], ExitReason::Kill);
    eventually(|| !p.workers().contains(&before[0]) && p.workers().len() == 2).await;
    eventually(|| p.status().available == 2).await;
    // Death while checked out: the lease is void, the pool gets a fresh worker.
    let lease = p.checkout(true, T).await.unwrap();
    let dead = lease.pid();
    assert!(lease.call(Req::Crash).await.is_err());
    eventually(|| !p.workers().contains(&dead) && p.workers().len() == 2).await;
    assert_eq!(p.status(), status(PoolState::Ready, 2, 0, 0));
    assert_eq!(p.checkin(lease), Err(CheckinError::AlreadyReturned(dead)));
    assert_eq!(p.stats().restarts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_worker_goes_straight_to_a_waiter() {
    let (p, _) = pool(1, 0).await;
    let lease = p.checkout(true, T).await.unwrap();
    let p2 = p.clone();
    let waiter = tokio::spawn(async move { p2.checkout(true, T).await.map(|l| l.pid()) });
    eventually(|| p.stats().waiting == 1).await;
    orbit::exit(lease.pid(), ExitReason::Kill);
    let fresh = waiter.await.unwrap().unwrap();
    assert_ne!(fresh, lease.pid());
    drop(lease);
    eventually(|| p.status() == status(PoolState::Ready, 1, 0, 0)).await;
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_times_out_leaves_the_queue() {
    let (p, _) = pool(1, 0).await;
    let held = p.checkout(true, T).await.unwrap();
    let r = p.checkout(true, Duration::from_millis(50)).await;
    assert_eq!(
        r.unwrap_err(),
        PoolError::Timeout(Duration::from_millis(50))
    );
    let s = p.stats();
    assert_eq!((s.waiting, s.timeouts), (0, 1));
    drop(held);
    assert_eq!(p.status(), status(PoolState::Ready, 1, 0, 0));
}

/// The hand-off race: a worker is sent to a waiter that goes away before reading it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_handed_to_a_departed_waiter_comes_back() {
    let (p, _) = pool(1, 0).await;
    let held = p.checkout(true, T).await.unwrap();
    let mut waiter = Box::pin(p.checkout(true, T));
    // Poll once: the waiter is queued.
    assert!(futures::poll!(waiter.as_mut()).is_pending());
    assert_eq!(p.stats().waiting, 1);
    // Check-in hands the worker to the queued waiter's channel...
    drop(held);
    assert_eq!(p.status().checked_out, 1);
    // ...which goes away without reading it.
    drop(waiter);
    assert_eq!(p.status(), status(PoolState::Ready, 1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_short_timeouts_lose_no_worker() {
    let (p, _) = pool(4, 2).await;
    let served = Arc::new(AtomicUsize::new(0));
    let timed_out = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..16u64 {
        let p = p.clone();
        let (served, timed_out) = (served.clone(), timed_out.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..250u64 {
                // Timeouts from 0 to ~1.5 ms; a third of the holds last a timer tick.
                let timeout = Duration::from_micros((i * 37 + c * 11) % 1500);
                match p.checkout(true, timeout).await {
                    Ok(lease) => {
                        served.fetch_add(1, Ordering::Relaxed);
                        if i % 3 == 0 {
                            // About a timer tick: longer than most timeouts.
                            tokio::time::sleep(Duration::from_micros(500)).await;
                        } else {
                            for _ in 0..(i % 4) {
                                tokio::task::yield_now().await;
                            }
                        }
                        if i % 7 == 0 {
                            let _ = lease.call(Req::Ping).await;
                        }
                        drop(lease);
                    }
                    Err(PoolError::Timeout(_)) => {
                        timed_out.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("unexpected {e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (served, timed_out) = (
        served.load(Ordering::Relaxed),
        timed_out.load(Ordering::Relaxed),
    );
    eprintln!("served {served}, timed out {timed_out}");
    assert_eq!(served + timed_out, 4000);
    assert!(
        timed_out > 100,
        "the test should exercise timeouts, got {timed_out}"
    );
    // Overflow workers started for callers that already left are dismissed by the
    // manager when their start completes.
    eventually(|| p.status().overflow == 0).await;
    assert_eq!(p.status(), status(PoolState::Ready, 4, 0, 0));
    let s = p.stats();
    assert_eq!((s.workers, s.waiting, s.checked_out), (4, 0, 0));
    assert_eq!(p.workers().len(), 4);
    assert!(p.workers().iter().all(|w| is_alive(*w)));
    assert_eq!(s.timeouts as usize, timed_out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let e = Pool::start(PoolOptions::new(0, 0), || Worker {
        terminated: Default::default(),
    })
    .await
    .unwrap_err();
    assert!(matches!(e, PoolError::InvalidOptions(_)));
    assert!(e.to_string().contains("size"));
    // Size 0 with overflow is a valid, on-demand pool.
    let (od, _) = pool(0, 1).await;
    let l = od.checkout(true, T).await.unwrap();
    drop(l);
    assert_eq!(od.status(), status(PoolState::Overflow, 0, 0, 0));

    let (a, _) = pool(1, 0).await;
    let (b, _) = pool(1, 0).await;
    let lease = a.checkout(true, T).await.unwrap();
    let worker = lease.pid();
    match b.checkin(lease) {
        Err(CheckinError::Foreign {
            worker: w,
            owner,
            pool,
        }) => {
            assert_eq!((w, owner, pool), (worker, a.pid(), b.pid()));
        }
        other => panic!("expected Foreign, got {other:?}"),
    }
    // The foreign lease went back to its own pool.
    assert_eq!(a.status().available, 1);

    // Waiters of a stopping pool are told; later checkouts fail.
    let held = b.checkout(true, T).await.unwrap();
    let b2 = b.clone();
    let waiter = tokio::spawn(async move { b2.checkout(true, T).await.map(|_| ()) });
    eventually(|| b.stats().waiting == 1).await;
    let worker = held.worker().clone();
    b.stop(T).await.unwrap();
    assert_eq!(waiter.await.unwrap(), Err(PoolError::Stopped));
    assert_eq!(worker.wait_exit().await, ExitReason::Shutdown);
    assert!(matches!(b.checkout(true, T).await, Err(PoolError::Stopped)));
    assert!(!b.is_running());
    assert_eq!(held.checkin(), Err(CheckinError::Stopped(worker.pid())));
    assert!(matches!(b.stop(T).await, Err(PoolError::Stopped)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_pool_stops_with_its_parent() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let parent = orbit::spawn(move |mut ctx: orbit::Context<()>| async move {
        let p = Pool::start_link(PoolOptions::new(2, 0), || Worker {
            terminated: Default::default(),
        })
        .await
        .unwrap();
        tx.send(p).unwrap();
        ctx.recv().await;
        ExitReason::error("parent gone")
    })
    .unwrap();
    let p = rx.await.unwrap();
    let workers = p.workers();
    parent.send(()).unwrap();
    parent.wait_exit().await;
    eventually(|| !p.is_running()).await;
    for w in workers {
        eventually(|| !is_alive(w)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_pool_registers_its_manager_and_a_failing_worker_fails_the_start() {
    let (p, _) = pool_opts(PoolOptions::new(1, 0).name("pool_test_named")).await;
    assert_eq!(orbit::whereis("pool_test_named"), Some(p.pid()));

    struct Bad;
    impl GenServer for Bad {
        type Call = ();
        type Reply = ();
        type Cast = ();
        type Info = ();
        type Continue = ();
        async fn init(&mut self, _ctx: &mut ServerContext<Self>) -> orbit::Init<()> {
            orbit::Init::Stop(ExitReason::error("no backend"))
        }
    }
    let e = Pool::start(PoolOptions::new(2, 0), || Bad)
        .await
        .unwrap_err();
    assert!(matches!(e, PoolError::WorkerStart(_)), "{e}");
    assert!(e.to_string().contains("no backend"));
}

#[tokio::test(start_paused = true)]
async fn stats_report_wait_times_and_utilization() {
    let (p, _) = pool(1, 0).await;
    let lease = p.checkout(true, T).await.unwrap();
    let p2 = p.clone();
    let waiter = tokio::spawn(async move { p2.checkout(true, T).await.map(drop) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(p.stats().waiting, 1);
    drop(lease);
    waiter.await.unwrap().unwrap();
    let s = p.stats();
    assert_eq!((s.checkouts, s.waited), (2, 1));
    // The waiter waited 100 ms; histogram precision is 3 significant digits.
    let max = s.wait.max.as_secs_f64();
    assert!((0.099..0.101).contains(&max), "{max}");
    // One worker busy for the whole 100 ms.
    assert!(
        s.utilization > 0.9 && s.utilization <= 1.0,
        "{}",
        s.utilization
    );
}
