//! Call timeouts: every call to a server that never answers returns `Timeout`, never
//! before its duration and at most a stated slack after it; a fired timeout never
//! disturbs another one; and timeouts follow tokio's (pausable) clock.
//!
//! Issue 15, items 1 and 2: timeouts were lost when a fired timer's slot was reused
//! (the fired timeout then removed the new owner's timer), and fired early when the
//! coarse clock thread lagged.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use orbit::{CallError, CallReply, GenServer, ReplyTo, ServerContext, ServerRef};

/// How late a timeout may fire on a loaded 2-core machine in a debug build (the timer
/// itself fires within a millisecond; the rest is waiting for a worker thread).
const SLACK: Duration = Duration::from_millis(250);
/// A call that has not returned this long after its timeout is counted as lost.
const LOST_AFTER: Duration = Duration::from_secs(1);

/// A server that keeps every caller's `ReplyTo` and never answers.
struct Silent(Vec<ReplyTo<()>>);

impl GenServer for Silent {
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _req: (),
        from: &mut ReplyTo<()>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<(), ()> {
        self.0.push(from.defer());
        CallReply::NoReply
    }
}

/// What one call did.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Returned `Timeout` after `elapsed`.
    TimedOut { limit: Duration, elapsed: Duration },
    /// Returned something else.
    Wrong,
    /// Had not returned `LOST_AFTER` after its timeout.
    Lost,
}

async fn timed_call(s: &ServerRef<Silent>, limit: Duration) -> Outcome {
    let t0 = Instant::now();
    match tokio::time::timeout(limit + LOST_AFTER, s.call_timeout((), limit)).await {
        Ok(Err(CallError::Timeout)) => Outcome::TimedOut {
            limit,
            elapsed: t0.elapsed(),
        },
        Ok(_) => Outcome::Wrong,
        Err(_) => Outcome::Lost,
    }
}

/// Timeouts of 1 to 20 ms, spread deterministically.
fn limit(i: usize) -> Duration {
    Duration::from_millis(1 + (i as u64 * 7919) % 20)
}

#[derive(Default, Debug)]
struct Tally {
    calls: usize,
    lost: usize,
    wrong: usize,
    early: usize,
    late: usize,
    /// Smallest `elapsed - limit` (negative: fired early), in microseconds.
    earliest_us: i64,
    /// Largest `elapsed - limit`, in microseconds.
    worst_late_us: i64,
}

fn tally(outcomes: &[Outcome]) -> Tally {
    let mut t = Tally {
        earliest_us: i64::MAX,
        worst_late_us: i64::MIN,
        ..Default::default()
    };
    for o in outcomes {
        t.calls += 1;
        match *o {
            Outcome::TimedOut { limit, elapsed } => {
                let d = elapsed.as_micros() as i64 - limit.as_micros() as i64;
                t.earliest_us = t.earliest_us.min(d);
                t.worst_late_us = t.worst_late_us.max(d);
                if elapsed < limit {
                    t.early += 1;
                } else if elapsed > limit + SLACK {
                    t.late += 1;
                }
            }
            Outcome::Wrong => t.wrong += 1,
            Outcome::Lost => t.lost += 1,
        }
    }
    t
}

fn check(what: &str, outcomes: &[Outcome]) {
    let t = tally(outcomes);
    println!(
        "{what}: {} calls, lost {}, wrong {}, early {}, late (> {SLACK:?} after) {}; \
         earliest firing {:+.3} ms, worst lateness {:+.3} ms (relative to the timeout)",
        t.calls,
        t.lost,
        t.wrong,
        t.early,
        t.late,
        t.earliest_us as f64 / 1000.0,
        t.worst_late_us as f64 / 1000.0,
    );
    assert_eq!(
        (t.lost, t.wrong, t.early, t.late),
        (0, 0, 0, 0),
        "{what}: every call must return Timeout, not before its timeout and at most \
         {SLACK:?} after it: {t:?}"
    );
}

/// Tens of thousands of calls with 1-20 ms timeouts from tokio tasks and from
/// processes that join two calls, against a server that never answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_times_out_never_early_and_within_slack() {
    let server = orbit::gen_server::start(Silent(Vec::new())).await.unwrap();

    // From tokio tasks: 1,000 tasks x 20 sequential calls.
    const TASKS: usize = 1_000;
    const PER_TASK: usize = 20;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let s = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(PER_TASK);
            for i in 0..PER_TASK {
                out.push(timed_call(&s, limit(t * PER_TASK + i)).await);
            }
            out
        }));
    }
    let mut from_tasks = Vec::new();
    for t in tasks {
        from_tasks.extend(t.await.unwrap());
    }
    check("tokio tasks", &from_tasks);

    // From processes, each joining two calls at a time: 500 processes x 10 x 2 calls.
    const PROCS: usize = 500;
    const ROUNDS: usize = 10;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for p in 0..PROCS {
        let s = server.clone();
        let tx = tx.clone();
        orbit::spawn(move |_ctx: orbit::Context<()>| async move {
            let mut out = Vec::with_capacity(ROUNDS * 2);
            for r in 0..ROUNDS {
                let k = (p * ROUNDS + r) * 2;
                let (a, b) = tokio::join!(timed_call(&s, limit(k)), timed_call(&s, limit(k + 1)));
                out.push(a);
                out.push(b);
            }
            let _ = tx.send(out);
        })
        .unwrap();
    }
    drop(tx);
    let mut from_procs = Vec::new();
    while let Some(out) = rx.recv().await {
        from_procs.extend(out);
    }
    assert_eq!(
        from_procs.len(),
        PROCS * ROUNDS * 2,
        "a caller process died"
    );
    check("processes joining two calls", &from_procs);
}

/// A waker that records that it was woken and passes the wake on to a task.
#[derive(Default)]
struct Flag {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if let Some(w) = self.task.lock().unwrap().take() {
            w.wake();
        }
    }
}

impl Flag {
    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            *self.task.lock().unwrap() = Some(cx.waker().clone());
            if self.woken.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// Slot reuse on one thread: timeout A fires (its timer is done) but A is neither
/// polled nor dropped yet; timeout B starts and takes the freed timer slot; then A is
/// dropped. B's waker must still be woken at B's deadline, without B being polled in
/// between. (The slab version removed B's timer when dropping A, so B, polled only
/// when woken, hung forever.) Returns whether B fired, never early.
async fn fired_timeout_then_next_one() -> Result<(), String> {
    let poll_with = |f: &mut Pin<Box<orbit::deadline::Timeout<std::future::Pending<()>>>>,
                     flag: &Arc<Flag>| {
        let waker = Waker::from(flag.clone());
        f.as_mut().poll(&mut Context::from_waker(&waker))
    };
    let a_flag = Arc::new(Flag::default());
    let mut a = Box::pin(orbit::deadline::timeout(
        Duration::from_millis(2),
        std::future::pending::<()>(),
    ));
    assert!(poll_with(&mut a, &a_flag).is_pending());
    // Wait for A's timer to fire (an event: it wakes A's waker).
    tokio::time::timeout(Duration::from_secs(5), a_flag.wait())
        .await
        .map_err(|_| "timeout A never fired".to_string())?;

    let b_limit = Duration::from_millis(20);
    let t0 = Instant::now();
    let b_flag = Arc::new(Flag::default());
    let mut b = Box::pin(orbit::deadline::timeout(
        b_limit,
        std::future::pending::<()>(),
    ));
    // Poll B once so that it takes a timer, then drop the fired A.
    assert!(poll_with(&mut b, &b_flag).is_pending());
    drop(a);
    // B is polled again only once its waker is woken (as an executor would).
    loop {
        tokio::time::timeout(b_limit + LOST_AFTER, b_flag.wait())
            .await
            .map_err(|_| {
                "timeout B was lost (never woken) after the fired timeout A was dropped".to_string()
            })?;
        b_flag.woken.store(false, Ordering::SeqCst);
        if poll_with(&mut b, &b_flag) == Poll::Ready(Err(orbit::deadline::Elapsed)) {
            break;
        }
    }
    let elapsed = t0.elapsed();
    if elapsed < b_limit {
        return Err(format!("B fired early: {elapsed:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn a_fired_timeout_does_not_cancel_the_next_one() {
    fired_timeout_then_next_one().await.unwrap();
}

/// The same from inside a process (whose timeouts had their own reusable slot).
#[tokio::test(flavor = "current_thread")]
async fn a_fired_timeout_does_not_cancel_the_next_one_in_a_process() {
    orbit::run_in_process(fired_timeout_then_next_one())
        .await
        .unwrap()
        .unwrap();
}

/// Timeouts follow tokio's clock: under `tokio::time::pause` a timeout fires exactly
/// when its duration has been advanced, not a nanosecond before.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_timeout_fires_exactly_at_its_duration_under_paused_time() {
    let mut t = Box::pin(orbit::deadline::timeout(
        Duration::from_millis(10),
        std::future::pending::<()>(),
    ));
    assert!(futures::poll!(t.as_mut()).is_pending());
    tokio::time::advance(Duration::from_millis(10) - Duration::from_nanos(1)).await;
    assert!(
        futures::poll!(t.as_mut()).is_pending(),
        "fired before its duration"
    );
    tokio::time::advance(Duration::from_nanos(1)).await;
    assert_eq!(
        futures::poll!(t.as_mut()),
        Poll::Ready(Err(orbit::deadline::Elapsed)),
        "did not fire when its duration had passed on tokio's clock"
    );
}

/// A 1-hour call timeout under paused time: tokio's auto-advance ends it at once (in
/// real time), and it reports its full duration on tokio's clock.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_call_timeout_follows_paused_time() {
    let server = orbit::gen_server::start(Silent(Vec::new())).await.unwrap();
    let hour = Duration::from_secs(3600);
    let real = Instant::now();
    let virt = tokio::time::Instant::now();
    // The guard runs on tokio's clock too: if the call's timeout did not, the guard
    // ends the wait (auto-advance) instead of hanging for an hour.
    let r = tokio::time::timeout(hour + LOST_AFTER, server.call_timeout((), hour)).await;
    assert!(
        matches!(r, Ok(Err(CallError::Timeout))),
        "the call's timeout did not fire on tokio's paused clock: {r:?}"
    );
    assert!(virt.elapsed() >= hour, "fired early on tokio's clock");
    assert!(real.elapsed() < Duration::from_secs(10));
}
