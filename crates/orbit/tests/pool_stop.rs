//! `Pool::stop` under load: every worker the pool ever started (initial, overflow,
//! replacement, dismissed) has exited when `stop` returns, and callers get clean
//! outcomes. Also: callers killed mid-checkout lose no worker and no queue slot.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orbit::pool::{CheckinError, Pool, PoolError, PoolOptions};
use orbit::{CallReply, GenServer, Pid, ReplyTo, ServerContext};

const T: Duration = Duration::from_secs(5);

/// Counts workers that ran `init` and workers whose state was dropped (the process
/// ended, however: shutdown, kill, crash).
#[derive(Default)]
struct Census {
    started: AtomicUsize,
    exited: AtomicUsize,
}

struct Worker {
    census: Arc<Census>,
    /// Set once `init` ran, so a state dropped without starting is not counted.
    live: bool,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.live {
            self.census.exited.fetch_add(1, Ordering::SeqCst);
        }
    }
}

enum Req {
    Ping,
    /// Takes a little while (the worker is busy when the stop arrives).
    Slow,
    Crash,
}

impl GenServer for Worker {
    type Call = Req;
    type Reply = Pid;
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn init(&mut self, ctx: &mut ServerContext<Self>) -> orbit::Init<()> {
        // Trapping exits: the worker only stops on its parent's exit signal.
        ctx.trap_exit(true);
        self.live = true;
        self.census.started.fetch_add(1, Ordering::SeqCst);
        orbit::Init::Ok
    }

    async fn handle_call(
        &mut self,
        req: Req,
        _from: &mut ReplyTo<Pid>,
        ctx: &mut ServerContext<Self>,
    ) -> CallReply<Pid, ()> {
        match req {
            Req::Ping => {}
            Req::Slow => tokio::time::sleep(Duration::from_millis(2)).await,
            Req::Crash => panic!("worker crash"),
        }
        CallReply::Reply(ctx.pid())
    }
}

async fn counted_pool(size: usize, overflow: usize) -> (Pool<Worker>, Arc<Census>) {
    let census = Arc::new(Census::default());
    let c = census.clone();
    let p = Pool::start(PoolOptions::new(size, overflow), move || Worker {
        census: c.clone(),
        live: false,
    })
    .await
    .unwrap();
    (p, census)
}

/// One caller: checks out with short timeouts, calls, crashes some workers, holds some
/// leases past the stop; counts what it saw. Every error must be a clean one.
async fn caller(p: Pool<Worker>, seed: u64, stop: Arc<AtomicBool>, served: Arc<AtomicUsize>) {
    let mut i = seed;
    while !stop.load(Ordering::Relaxed) {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let timeout = Duration::from_micros((i >> 33) % 3000);
        let block = !(i >> 20).is_multiple_of(4);
        match p.checkout(block, timeout).await {
            Ok(lease) => {
                served.fetch_add(1, Ordering::Relaxed);
                match (i >> 40) % 16 {
                    0 => {
                        let _ = lease.call(Req::Crash).await;
                    }
                    1..=5 => {
                        let _ = lease.call(Req::Slow).await;
                    }
                    6..=9 => {
                        let _ = lease.call(Req::Ping).await;
                    }
                    _ => tokio::task::yield_now().await,
                }
                match lease.checkin() {
                    Ok(()) => {}
                    Err(CheckinError::AlreadyReturned(_)) | Err(CheckinError::Stopped(_)) => {}
                    Err(e) => panic!("unexpected checkin error {e}"),
                }
            }
            Err(PoolError::Timeout(_)) | Err(PoolError::Full) => {}
            Err(PoolError::Stopped) => return,
            Err(e) => panic!("unexpected checkout error {e}"),
        }
    }
}

/// The scenario: 50 pools stopped while 6 callers hammer them (overflow workers
/// come and go, workers crash and are replaced, some are busy in a call when the stop
/// arrives). When `stop` returns, workers started == workers exited, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_under_load_leaves_no_worker_running() {
    let mut leaked = 0;
    let mut total_started = 0;
    for round in 0..50u64 {
        let (p, census) = counted_pool(3, 3).await;
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..6)
            .map(|c| {
                tokio::spawn(caller(
                    p.clone(),
                    round * 100 + c,
                    stop.clone(),
                    served.clone(),
                ))
            })
            .collect();
        // Stop while the callers are busy: after some checkouts have been served.
        let want = 10 + (round as usize % 7) * 5;
        for _ in 0..10_000 {
            if served.load(Ordering::Relaxed) >= want {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        p.stop(T).await.unwrap();
        let (s, e) = (
            census.started.load(Ordering::SeqCst),
            census.exited.load(Ordering::SeqCst),
        );
        total_started += s;
        leaked += s - e;
        stop.store(true, Ordering::Relaxed);
        for c in callers {
            c.await.unwrap();
        }
        assert!(!p.is_running());
        assert!(matches!(p.checkout(true, T).await, Err(PoolError::Stopped)));
        // Nothing starts after the stop either.
        assert_eq!(census.started.load(Ordering::SeqCst), s);
    }
    eprintln!("workers started {total_started}, still running after stop: {leaked}");
    assert_eq!(leaked, 0, "workers still running when stop returned");
}

/// A lease held across the stop: its worker has exited when `stop` returns and the
/// check-in says the pool stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_across_stop_gets_a_clean_error() {
    let (p, census) = counted_pool(1, 1).await;
    let a = p.checkout(true, T).await.unwrap();
    let b = p.checkout(true, T).await.unwrap(); // an overflow worker
    let (wa, wb) = (a.worker().clone(), b.worker().clone());
    p.stop(T).await.unwrap();
    assert_eq!(census.started.load(Ordering::SeqCst), 2);
    assert_eq!(census.exited.load(Ordering::SeqCst), 2);
    assert!(orbit::process_info(wa.pid()).is_none());
    assert!(orbit::process_info(wb.pid()).is_none());
    assert!(a.call(Req::Ping).await.is_err());
    assert_eq!(a.checkin(), Err(CheckinError::Stopped(wa.pid())));
    drop(b);
}

/// An overflow worker dismissed on check-in just before the stop is also waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dismissed_overflow_worker_has_exited_when_stop_returns() {
    for _ in 0..50 {
        let (p, census) = counted_pool(0, 2).await;
        let a = p.checkout(true, T).await.unwrap();
        let b = p.checkout(true, T).await.unwrap();
        // Both checked in with nobody waiting: both dismissed.
        drop(a);
        drop(b);
        p.stop(T).await.unwrap();
        assert_eq!(
            census.started.load(Ordering::SeqCst),
            census.exited.load(Ordering::SeqCst)
        );
    }
}

/// Callers killed while waiting in the queue or while holding a worker: no worker and
/// no queue slot is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_killed_mid_checkout_lose_nothing() {
    let (p, census) = counted_pool(2, 1).await;
    for round in 0..20u64 {
        let mut tasks = Vec::new();
        for c in 0..8u64 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let lease = p.checkout(true, T).await.unwrap();
                    if (round + c) % 3 == 0 {
                        let _ = lease.call(Req::Slow).await;
                    }
                    tokio::task::yield_now().await;
                    drop(lease);
                }
            }));
        }
        // Let them run into each other, then kill them wherever they are.
        let target = p.stats().checkouts + 20;
        for _ in 0..10_000 {
            if p.stats().checkouts >= target {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        // Overflow workers dismissed; everything back.
        let mut ok = false;
        for _ in 0..5000 {
            let s = p.stats();
            if (s.waiting, s.checked_out, s.overflow, s.available) == (0, 0, 0, 2) {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(ok, "round {round}: {:?}", p.stats());
    }
    p.stop(T).await.unwrap();
    assert_eq!(
        census.started.load(Ordering::SeqCst),
        census.exited.load(Ordering::SeqCst)
    );
}
