//! `ResourcePool`: NimblePool's resource pool (otp-semantics §6): checkout commands,
//! lazy and async init, remove/skip, pings, cancellation, removal on failure.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orbit::pool::{
    Caller, Cancelled, CheckinResult, CheckoutError, CheckoutResult, InitWorker, PingResult,
    PoolError, ResourcePool, ResourcePoolOptions, ResourceWorker,
};
use orbit::ExitReason;
use parking_lot::Mutex;

const T: Duration = Duration::from_secs(5);

type Log = Arc<Mutex<Vec<String>>>;

struct Conn {
    id: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Cmd {
    Use,
    /// Remove resources with odd ids, use the others.
    RemoveOdd,
    Skip,
}

#[derive(Clone, Copy)]
enum Back {
    Keep,
    Close,
}

#[derive(Clone, Copy)]
enum PingMode {
    Keep,
    Remove,
    Stop,
}

struct Conns {
    next: u64,
    log: Log,
    asynchronous: bool,
    ping: PingMode,
}

impl ResourceWorker for Conns {
    type Worker = Conn;
    type Command = Cmd;
    type Client = u64;
    type Checkin = Back;
    type Error = String;

    fn init_worker(&mut self) -> InitWorker<Conn> {
        self.next += 1;
        let id = self.next;
        self.log.lock().push(format!("init {id}"));
        if self.asynchronous {
            InitWorker::Async(Box::pin(async move {
                tokio::task::yield_now().await;
                Conn { id }
            }))
        } else {
            InitWorker::Ok(Conn { id })
        }
    }

    fn handle_checkout(
        &mut self,
        cmd: &Cmd,
        _from: Caller,
        conn: Conn,
    ) -> CheckoutResult<u64, Conn, String> {
        match cmd {
            Cmd::RemoveOdd if conn.id % 2 == 1 => {
                CheckoutResult::Remove(ExitReason::error("odd"), conn)
            }
            Cmd::Skip => CheckoutResult::Skip(format!("busy {}", conn.id), conn),
            _ => CheckoutResult::Ok {
                client: conn.id,
                worker: conn,
            },
        }
    }

    fn handle_checkin(&mut self, back: Back, _from: Caller, conn: Conn) -> CheckinResult<Conn> {
        match back {
            Back::Keep => CheckinResult::Ok(conn),
            Back::Close => CheckinResult::Remove(ExitReason::error("closed"), conn),
        }
    }

    fn handle_ping(&mut self, conn: Conn) -> PingResult<Conn> {
        self.log.lock().push(format!("ping {}", conn.id));
        match self.ping {
            PingMode::Keep => PingResult::Ok(conn),
            PingMode::Remove => PingResult::Remove(ExitReason::error("idle"), conn),
            PingMode::Stop => PingResult::Stop(ExitReason::error("idle"), conn),
        }
    }

    fn terminate_worker(&mut self, reason: &ExitReason, conn: Conn) {
        self.log
            .lock()
            .push(format!("terminate {} {reason}", conn.id));
    }

    fn handle_cancelled(&mut self, context: Cancelled) {
        self.log.lock().push(format!("cancelled {context:?}"));
    }
}

fn conns(log: &Log) -> Conns {
    Conns {
        next: 0,
        log: log.clone(),
        asynchronous: false,
        ping: PingMode::Keep,
    }
}

async fn start(state: Conns, opts: ResourcePoolOptions) -> ResourcePool<Conns> {
    ResourcePool::start(state, opts).await.unwrap()
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock())
}

async fn eventually(mut cond: impl FnMut() -> bool) {
    for _ in 0..5000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition not reached in 5 s");
}

/// Checks out with `cmd` and returns the resource id, keeping it.
async fn use_one(p: &ResourcePool<Conns>, cmd: Cmd) -> Result<u64, CheckoutError<String>> {
    p.checkout(cmd, |id| async move { (id, Back::Keep) }, T)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_runs_the_function_in_the_caller_with_resources_first_in_first_out() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(2)).await;
    assert_eq!(take(&log), vec!["init 1", "init 2"]);
    let me = orbit::run_in_process({
        let p = p.clone();
        async move {
            let me = orbit::self_pid();
            let seen = p
                .checkout(
                    Cmd::Use,
                    |_id| async move { (orbit::self_pid(), Back::Keep) },
                    T,
                )
                .await
                .unwrap();
            (me, seen)
        }
    })
    .await
    .unwrap();
    assert_eq!(me.0, me.1, "the function runs in the calling process");
    // Resource 1 went back to the end of the queue.
    assert_eq!(use_one(&p, Cmd::Use).await.unwrap(), 2);
    assert_eq!(use_one(&p, Cmd::Use).await.unwrap(), 1);
    let s = p.stats();
    assert_eq!(
        (s.size, s.workers, s.available, s.checked_out, s.checkouts),
        (2, 2, 2, 0, 3)
    );
    assert!(take(&log).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_pool_makes_resources_on_demand_up_to_pool_size() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(2).lazy(true)).await;
    assert!(take(&log).is_empty());
    assert_eq!(p.stats().workers, 0);
    assert_eq!(use_one(&p, Cmd::Use).await.unwrap(), 1);
    assert_eq!(take(&log), vec!["init 1"]);
    // Two at once: the idle one, then a second made on demand.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let p2 = p.clone();
    let holder = tokio::spawn(async move {
        p2.checkout(
            Cmd::Use,
            |id| async move {
                rx.await.unwrap();
                (id, Back::Keep)
            },
            T,
        )
        .await
    });
    eventually(|| p.stats().checked_out == 1).await;
    assert_eq!(use_one(&p, Cmd::Use).await.unwrap(), 2);
    tx.send(()).unwrap();
    assert_eq!(holder.await.unwrap().unwrap(), 1);
    assert_eq!(take(&log), vec!["init 2"]);
    assert_eq!(p.stats().workers, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_init_makes_resources_apart_and_checkouts_wait_for_them() {
    let log = Log::default();
    let mut c = conns(&log);
    c.asynchronous = true;
    let p = start(c, ResourcePoolOptions::new(2)).await;
    let a = use_one(&p, Cmd::Use).await.unwrap();
    assert!(a == 1 || a == 2);
    eventually(|| p.stats().available == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_checkout_can_remove_and_try_the_next_or_skip() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(2)).await;
    take(&log);
    // Resource 1 is removed, 2 serves the checkout, 3 replaces 1.
    assert_eq!(use_one(&p, Cmd::RemoveOdd).await.unwrap(), 2);
    eventually(|| p.stats().available == 2).await;
    assert_eq!(take(&log), vec!["terminate 1 odd", "init 3"]);
    let Err(CheckoutError::Skipped(msg)) = use_one(&p, Cmd::Skip).await else {
        panic!("expected a skip");
    };
    // A skipped resource stays where it was: first in line.
    assert_eq!(
        msg,
        format!("busy {}", use_one(&p, Cmd::Use).await.unwrap())
    );
    assert_eq!(p.stats().restarts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_checkin_can_remove_a_resource() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(1)).await;
    take(&log);
    let id = p
        .checkout(Cmd::Use, |id| async move { (id, Back::Close) }, T)
        .await
        .unwrap();
    assert_eq!(id, 1);
    assert_eq!(use_one(&p, Cmd::Use).await.unwrap(), 2);
    assert_eq!(take(&log), vec!["terminate 1 closed", "init 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_function_removes_its_resource() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(1)).await;
    take(&log);
    let p2 = p.clone();
    let r = tokio::spawn(async move {
        let r: Result<(), _> = p2
            .checkout(Cmd::Use, |_id| async move { panic!("client failed") }, T)
            .await;
        r
    })
    .await;
    assert!(r.is_err(), "the panic continues in the caller");
    assert_eq!(use_one(&p, Cmd::Use).await.unwrap(), 2);
    assert_eq!(
        take(&log),
        vec![
            "cancelled CheckedOut",
            "terminate 1 the checkout function panicked",
            "init 2"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_dies_holding_a_resource_has_it_removed() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(1)).await;
    take(&log);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let p2 = p.clone();
    let caller = orbit::spawn(move |_ctx: orbit::Context<()>| async move {
        let _ = p2
            .checkout(
                Cmd::Use,
                |_id| async move {
                    tx.send(()).unwrap();
                    std::future::pending::<((), Back)>().await
                },
                T,
            )
            .await;
    })
    .unwrap();
    rx.await.unwrap();
    orbit::exit(caller.pid(), ExitReason::Kill);
    caller.wait_exit().await;
    assert_eq!(use_one(&p, Cmd::Use).await.unwrap(), 2);
    let l = take(&log);
    assert_eq!(l[0], "cancelled CheckedOut");
    assert!(l[1].starts_with("terminate 1 checkout cancelled"), "{l:?}");
    assert_eq!(l[2], "init 2");
}

/// A queued caller whose future is dropped after the hand-off (the resource is in its
/// channel, not yet received): the resource comes back, removed and replaced, and the
/// pool's counts stay whole (the worker state travels with the delivery, not in a map).
#[tokio::test]
async fn a_queued_caller_dropped_after_the_hand_off_gives_the_resource_back() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(1)).await;
    take(&log);
    let ran = Arc::new(AtomicUsize::new(0));
    let mut waiter = None;
    p.checkout(
        Cmd::Use,
        |id| {
            let (p, ran) = (p.clone(), ran.clone());
            let waiter = &mut waiter;
            async move {
                let p2 = p.clone();
                *waiter = Some(tokio::spawn(async move {
                    p2.checkout(
                        Cmd::Use,
                        |id| async move {
                            ran.fetch_add(1, Ordering::Relaxed);
                            (id, Back::Keep)
                        },
                        T,
                    )
                    .await
                }));
                // Until the spawned caller is queued behind this one.
                while p.stats().waiting == 0 {
                    tokio::task::yield_now().await;
                }
                (id, Back::Keep)
            }
        },
        T,
    )
    .await
    .unwrap();
    // The check-in above handed the resource to the queued caller, which has not run
    // since (one runtime thread, no yield in between): drop it now.
    let waiter = waiter.expect("the waiter was spawned");
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    assert_eq!(
        ran.load(Ordering::Relaxed),
        0,
        "the dropped caller never ran"
    );
    let l = take(&log);
    assert_eq!(l.len(), 3, "{l:?}");
    assert_eq!(l[0], "cancelled CheckedOut");
    assert!(l[1].starts_with("terminate 1 checkout cancelled"), "{l:?}");
    assert_eq!(l[2], "init 2");
    let s = p.stats();
    assert_eq!(
        (s.workers, s.available, s.checked_out, s.waiting, s.restarts),
        (1, 1, 0, 0, 1)
    );
    assert_eq!(use_one(&p, Cmd::Use).await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_queued_caller_that_times_out_is_cancelled() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(1)).await;
    take(&log);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let p2 = p.clone();
    let holder = tokio::spawn(async move {
        p2.checkout(
            Cmd::Use,
            |id| async move {
                rx.await.unwrap();
                (id, Back::Keep)
            },
            T,
        )
        .await
    });
    tokio::task::yield_now().await;
    assert_eq!(p.stats().checked_out, 1);
    let r = p
        .checkout(
            Cmd::Use,
            |id| async move { (id, Back::Keep) },
            Duration::from_millis(20),
        )
        .await;
    assert_eq!(r, Err(CheckoutError::Timeout(Duration::from_millis(20))));
    assert_eq!(take(&log), vec!["cancelled Queued"]);
    let s = p.stats();
    assert_eq!((s.waiting, s.timeouts), (0, 1));
    tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
    assert_eq!(p.stats().available, 1);
}

#[tokio::test(start_paused = true)]
async fn idle_resources_are_pinged_up_to_max_idle_pings_per_period() {
    let log = Log::default();
    let mut c = conns(&log);
    c.ping = PingMode::Remove;
    let opts = ResourcePoolOptions::new(3)
        .worker_idle_timeout(Duration::from_secs(1))
        .max_idle_pings(1);
    let p = start(c, opts).await;
    take(&log);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // One ping per period: resource 1 removed and replaced by 4.
    assert_eq!(take(&log), vec!["ping 1", "terminate 1 idle", "init 4"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(take(&log), vec!["ping 2", "terminate 2 idle", "init 5"]);
    assert_eq!(p.stats().workers, 3);
}

#[tokio::test(start_paused = true)]
async fn a_recently_used_resource_is_not_pinged_and_a_ping_can_stop_the_pool() {
    let log = Log::default();
    let mut c = conns(&log);
    c.ping = PingMode::Stop;
    let opts = ResourcePoolOptions::new(1).worker_idle_timeout(Duration::from_secs(1));
    let p = start(c, opts).await;
    take(&log);
    tokio::time::sleep(Duration::from_millis(600)).await;
    use_one(&p, Cmd::Use).await.unwrap();
    // At 1 s the resource has been idle 0.4 s: no ping. At 2 s it has been 1.4 s.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(take(&log).is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!p.is_running());
    assert_eq!(take(&log), vec!["ping 1", "terminate 1 {shutdown, idle}"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_terminates_idle_resources_and_fails_waiters() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(2)).await;
    take(&log);
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
    let p2 = p.clone();
    let holder = tokio::spawn(async move {
        p2.checkout(
            Cmd::Use,
            |id| async move {
                held_tx.send(()).unwrap();
                go_rx.await.unwrap();
                (id, Back::Keep)
            },
            T,
        )
        .await
    });
    held_rx.await.unwrap();
    let id2 = p
        .checkout(Cmd::Use, |id| async move { (id, Back::Keep) }, T)
        .await
        .unwrap();
    p.stop(T).await.unwrap();
    assert_eq!(take(&log), vec![format!("terminate {id2} shutdown")]);
    assert_eq!(use_one(&p, Cmd::Use).await, Err(CheckoutError::Stopped));
    // The checked-out resource is terminated when it comes back.
    go_tx.send(()).unwrap();
    let id1 = holder.await.unwrap().unwrap();
    assert_eq!(take(&log), vec![format!("terminate {id1} shutdown")]);
    assert!(matches!(p.stop(T).await, Err(PoolError::Stopped)));

    let e = ResourcePool::start(conns(&log), ResourcePoolOptions::new(0))
        .await
        .unwrap_err();
    assert!(matches!(e, PoolError::InvalidOptions(_)), "{e}");
}

/// 16 tasks of 250 checkouts each, `call(task, i)` making one: counts the callers served
/// and those that timed out or gave up (any other error fails the test), 4000 in all.
async fn race<F, Fut>(call: F) -> (usize, usize)
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<u64, CheckoutError<String>>> + Send,
{
    let call = Arc::new(call);
    let served = Arc::new(AtomicUsize::new(0));
    let timed_out = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16u64)
        .map(|c| {
            let (call, served, timed_out) = (call.clone(), served.clone(), timed_out.clone());
            tokio::spawn(async move {
                for i in 0..250u64 {
                    match call(c, i).await {
                        Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                        Err(CheckoutError::Timeout(_)) => timed_out.fetch_add(1, Ordering::Relaxed),
                        Err(e) => panic!("unexpected {e}"),
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (served, timed_out) = (
        served.load(Ordering::Relaxed),
        timed_out.load(Ordering::Relaxed),
    );
    eprintln!("served {served}, timed out {timed_out}");
    assert_eq!(served + timed_out, 4000);
    (served, timed_out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_short_timeouts_lose_no_resource() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(4)).await;
    let (_, timed_out) = race({
        let p = p.clone();
        move |c, i| {
            let p = p.clone();
            async move {
                let timeout = Duration::from_micros((i * 37 + c * 11) % 1500);
                p.checkout(
                    Cmd::Use,
                    |id| async move {
                        if i % 3 == 0 {
                            tokio::time::sleep(Duration::from_micros(500)).await;
                        } else {
                            tokio::task::yield_now().await;
                        }
                        (id, Back::Keep)
                    },
                    timeout,
                )
                .await
            }
        }
    })
    .await;
    assert!(
        timed_out > 100,
        "the test should exercise timeouts, got {timed_out}"
    );
    let s = p.stats();
    assert_eq!(
        (s.workers, s.available, s.checked_out, s.waiting),
        (4, 4, 0, 0)
    );
    assert_eq!(s.timeouts as usize, timed_out);
    // No resource was removed: every timeout left the queue or kept its delivery.
    assert!(!take(&log).iter().any(|l| l.starts_with("terminate")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_or_polls_give_up_only_when_queued() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(1)).await;
    // A resource is idle: the give-up future is never polled.
    let id = p
        .checkout_or(Cmd::Use, |id| async move { (id, Back::Keep) }, async {
            panic!("give_up polled although a resource was idle")
        })
        .await
        .unwrap();
    assert_eq!(id, 1);
    // The only resource is out: the caller queues, gives up, and leaves the queue.
    let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let p = p.clone();
        tokio::spawn(async move {
            p.checkout(
                Cmd::Use,
                |id| async move {
                    let _ = held_tx.send(());
                    let _ = release_rx.await;
                    (id, Back::Keep)
                },
                T,
            )
            .await
        })
    };
    held_rx.await.unwrap();
    let r = p
        .checkout_or(Cmd::Use, |id| async move { (id, Back::Keep) }, async {})
        .await;
    assert!(matches!(r, Err(CheckoutError::Timeout(_))), "{r:?}");
    assert_eq!(p.stats().waiting, 0);
    release_tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let s = p.stats();
    assert_eq!((s.workers, s.available, s.timeouts), (1, 1, 1));
    assert_eq!(take(&log), ["init 1", "cancelled Queued"]);
}

/// A delivery and a give-up ready at the same poll of a queued caller: the delivery
/// wins (the caller's function runs, no timeout is counted), as `checkout_or`'s doc
/// says, whether the wait sees the delivery first or finds it in its channel after the
/// give-up. The give-up turns ready in the same poll of the holder as its check-in,
/// which hands the resource on: the caller is next polled with both ready (one runtime
/// thread, so nothing runs in between).
#[tokio::test]
async fn a_hand_off_ready_together_with_the_give_up_wins() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(1)).await;
    let handing = Arc::new(AtomicBool::new(false));
    let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let (p, handing) = (p.clone(), handing.clone());
        tokio::spawn(async move {
            p.checkout(
                Cmd::Use,
                |id| async move {
                    let _ = held_tx.send(());
                    let _ = release_rx.await;
                    handing.store(true, Ordering::SeqCst);
                    (id, Back::Keep)
                },
                T,
            )
            .await
        })
    };
    held_rx.await.unwrap();
    let give_up = {
        let handing = handing.clone();
        std::future::poll_fn(move |_| {
            if handing.load(Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    };
    let waiter = {
        let p = p.clone();
        tokio::spawn(async move {
            p.checkout_or(Cmd::Use, |id| async move { (id, Back::Keep) }, give_up)
                .await
        })
    };
    eventually(|| p.stats().waiting == 1).await;
    release_tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let got = waiter.await.unwrap();
    assert!(matches!(got, Ok(1)), "the hand-off must win: {got:?}");
    let s = p.stats();
    assert_eq!((s.timeouts, s.waited, s.workers, s.available), (0, 1, 1, 1));
    assert_eq!(take(&log), ["init 1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_or_since_reports_the_wait_from_the_callers_instant() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(1)).await;
    // Idle resource: served at once, a wait of zero, even from an instant long past.
    let long_ago = tokio::time::Instant::now() - Duration::from_secs(3);
    let waited = p
        .checkout_or_since(
            Cmd::Use,
            long_ago,
            |_, waited| async move { (waited, Back::Keep) },
            || -> std::future::Ready<()> { panic!("give_up made although a resource was idle") },
        )
        .await
        .unwrap();
    assert_eq!(waited, Duration::ZERO);
    // The only resource held for 50 ms: the queued caller's wait is counted from its
    // own instant (taken 200 ms before it asked) to the hand-off.
    let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let p = p.clone();
        tokio::spawn(async move {
            p.checkout(
                Cmd::Use,
                |id| async move {
                    let _ = held_tx.send(());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    (id, Back::Keep)
                },
                T,
            )
            .await
        })
    };
    held_rx.await.unwrap();
    let since = tokio::time::Instant::now() - Duration::from_millis(200);
    let asked = tokio::time::Instant::now();
    let (waited, got) = p
        .checkout_or_since(
            Cmd::Use,
            since,
            |_, waited| async move { (waited, Back::Keep) },
            std::future::pending::<()>,
        )
        .await
        .map(|w| (w, tokio::time::Instant::now()))
        .unwrap();
    holder.await.unwrap().unwrap();
    assert!(
        waited >= Duration::from_millis(200) && since + waited <= got,
        "waited {waited:?}: not from `since` to the hand-off"
    );
    assert!(asked - since + Duration::from_millis(40) <= waited);
    // The histogram has the same figure: the longest wait recorded.
    let s = p.stats();
    assert_eq!((s.checkouts, s.waited), (3, 1));
    let max = s.wait.max.as_nanos() as f64;
    let w = waited.as_nanos() as f64;
    assert!(
        (max - w).abs() <= w * 0.002,
        "{:?} vs {waited:?}",
        s.wait.max
    );
}

/// Give-ups racing hand-offs: every caller gets a resource (its function ran) or a
/// timeout, never both or neither; no resource is lost or removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_give_ups_racing_checkins_lose_no_resource() {
    let log = Log::default();
    let p = start(conns(&log), ResourcePoolOptions::new(2)).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let (served, timed_out) = race({
        let (p, ran) = (p.clone(), ran.clone());
        move |c, i| {
            let (p, ran) = (p.clone(), ran.clone());
            // Gives up after 0..7 polls of its own (a queued caller is polled again
            // whenever another task yields), or never.
            let polls = (i * 7 + c * 3) % 9;
            let give_up = async move {
                if polls == 8 {
                    std::future::pending::<()>().await;
                }
                for _ in 0..polls {
                    tokio::task::yield_now().await;
                }
            };
            async move {
                p.checkout_or(
                    Cmd::Use,
                    |id| async move {
                        ran.fetch_add(1, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                        (id, Back::Keep)
                    },
                    give_up,
                )
                .await
            }
        }
    })
    .await;
    let ran = ran.load(Ordering::Relaxed);
    assert_eq!(
        ran, served,
        "a function ran for every served caller, and only them"
    );
    assert!(
        timed_out > 100,
        "the test should exercise give-ups, got {timed_out}"
    );
    assert!(
        served > 100,
        "the test should exercise hand-offs, got {served}"
    );
    let s = p.stats();
    assert_eq!(
        (s.workers, s.available, s.checked_out, s.waiting),
        (2, 2, 0, 0)
    );
    assert_eq!(s.timeouts as usize, timed_out);
    assert_eq!(s.checkouts as usize, served);
    assert!(!take(&log).iter().any(|l| l.starts_with("terminate")));
}
