//! Timeouts for calls (`GenServer.call`, `Agent`, `Task.await`, `stop`...), on tokio's
//! clock.
//!
//! # Contract
//!
//! - **Never early.** [`timeout`] returns `Err(Elapsed)` only once its full duration has
//!   passed on the clock it runs on. The duration counts from the first poll at which
//!   the inner future was not ready (a future that is ready at once never starts a
//!   timer and costs no clock read).
//! - **Late by at most scheduling delay.** The timer is tokio's: it fires at the first
//!   millisecond boundary at or after the deadline, as soon as a runtime worker gets to
//!   its timer wheel, and the task is then woken; on a loaded machine the lateness is
//!   the time until the task is scheduled again. (`tests/timeout_stress.rs` prints the
//!   earliest firing and worst lateness seen over 30,000 calls.)
//! - **Tokio's clock.** Inside a tokio runtime the timer is a [`tokio::time::Sleep`], so
//!   `tokio::time::pause` and `advance` drive it, and an idle node has no timer thread
//!   waking it. Outside any runtime context (a future polled by another executor), or
//!   in a runtime built without `enable_time`, the timeout runs on a fallback thread
//!   (`orbit-timeout`, started on first use, parked while it has nothing to wait for)
//!   against `std::time::Instant`, with the same contract; it never panics.
//! - Each timer belongs to its [`Timeout`] alone: nothing is shared by key or slot, so a
//!   fired or dropped timeout cannot touch another one's timer.
//!
//! # Why tokio's timer
//!
//! This module used to keep its own timer table (per-process slots and sharded slabs,
//! fired by the 1 ms coarse-clock thread) to save the cost of a tokio timer per call.
//! That table lost timeouts (a fired entry's reused key let the old timeout remove the
//! new owner's timer), fired early when the clock thread lagged (deadlines were taken
//! from the coarse clock), could not be paused in tests, and woke an idle node 1,000
//! times a second.
//!
//! A timeout whose call is not ready on its first poll takes this thread's spare
//! `Sleep` (a cancelled timeout's, still registered) and moves it to the new deadline
//! with `Sleep::reset`: one compare-and-swap while the new deadline is later, where a
//! new `Sleep` takes the timer wheel's lock to register and again to cancel.
//!
//! # What it costs
//!
//! A call that is ready on its first poll starts no timer at all; one that waits
//! registers one `Sleep` (reused, see above), and cancelling it on the reply is a
//! store. `orbit-bench call` compares the call with its default timeout against
//! tokio's `oneshot` inside `tokio::time::timeout`, and `orbit-bench call_timer` runs
//! the same call under each timer design considered (a new `Sleep` per call, the
//! per-thread spare, a task-owned `Sleep`, `tokio::time::timeout`, none); none of
//! them measured cheaper than this one beyond the round-to-round spread.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The output of a [`Timeout`] whose duration passed before its future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the timeout elapsed before the operation completed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `fut` until it completes or `limit` passes, whichever comes first (see the
/// module docs: never before `limit`, counted from the first poll at which `fut` is
/// not ready). `Duration::MAX` never expires.
pub fn timeout<F: Future>(limit: Duration, fut: F) -> Timeout<F> {
    Timeout {
        fut,
        limit,
        timer: Timer::Idle,
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`timeout`].
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        limit: Duration,
        timer: Timer,
    }

    impl<F> PinnedDrop for Timeout<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Timer::Tokio { sleep, rt } = std::mem::replace(this.timer, Timer::Idle) {
                keep_spare(rt, sleep);
            }
        }
    }
}

enum Timer {
    /// The inner future has not been pending yet: no timer.
    Idle,
    /// The limit is beyond any clock's reach: no timer.
    Never,
    /// On the timer of tokio runtime `rt`.
    Tokio {
        sleep: Pin<Box<tokio::time::Sleep>>,
        rt: tokio::runtime::Id,
    },
    /// On the fallback thread (no tokio timer at hand).
    Fallback { entry: fallback::Entry },
}

thread_local! {
    /// A cancelled timeout's still-registered tokio timer, kept for the next timeout on
    /// this thread: moving a registered timer to a later deadline is one atomic
    /// compare-and-swap, where registering and cancelling a new one take the timer
    /// wheel's lock twice. Owned by one timeout at a time (moved in and out).
    static SPARE: std::cell::Cell<Option<(tokio::runtime::Id, Pin<Box<tokio::time::Sleep>>)>> =
        const { std::cell::Cell::new(None) };
}

fn keep_spare(rt: tokio::runtime::Id, sleep: Pin<Box<tokio::time::Sleep>>) {
    if sleep.is_elapsed() {
        return;
    }
    // During thread teardown the spare is simply dropped.
    let _ = SPARE.try_with(|s| s.set(Some((rt, sleep))));
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if let Timer::Idle = *this.timer {
            *this.timer = start(*this.limit);
        }
        loop {
            match this.timer {
                Timer::Idle | Timer::Never => return Poll::Pending,
                Timer::Tokio { sleep, .. } => {
                    // Polling a timer whose runtime has shut down panics in tokio (it
                    // can happen only to a future moved off its runtime): carry the
                    // remaining time over to the fallback thread instead.
                    let deadline = sleep.deadline();
                    match catch_unwind(AssertUnwindSafe(|| sleep.as_mut().poll(cx))) {
                        Ok(Poll::Ready(())) => return Poll::Ready(Err(Elapsed)),
                        Ok(Poll::Pending) => return Poll::Pending,
                        Err(_) => {
                            let left =
                                deadline.saturating_duration_since(tokio::time::Instant::now());
                            *this.timer = on_fallback(left);
                        }
                    }
                }
                Timer::Fallback { entry } => {
                    return match entry.poll(cx) {
                        true => Poll::Ready(Err(Elapsed)),
                        false => Poll::Pending,
                    };
                }
            }
        }
    }
}

/// Starts the timer of a timeout whose future just returned `Pending`.
fn start(limit: Duration) -> Timer {
    if limit == Duration::MAX {
        return Timer::Never;
    }
    match tokio_sleep(limit) {
        Some((sleep, rt)) => Timer::Tokio { sleep, rt },
        None => on_fallback(limit),
    }
}

fn on_fallback(limit: Duration) -> Timer {
    match Instant::now().checked_add(limit) {
        Some(deadline) => Timer::Fallback {
            entry: fallback::Entry::new(deadline),
        },
        None => Timer::Never,
    }
}

/// Set once a runtime without timers has been seen; until then no lookup is needed.
static TIMERLESS_SEEN: AtomicBool = AtomicBool::new(false);
/// Runtimes found to have no time driver (`enable_time` not called).
static TIMERLESS: Mutex<Vec<tokio::runtime::Id>> = Mutex::new(Vec::new());

/// A tokio `Sleep` for `limit` on the current runtime (this thread's spare one when it
/// belongs to the same runtime); `None` outside any runtime context or in a runtime
/// without timers (where tokio would panic).
fn tokio_sleep(limit: Duration) -> Option<(Pin<Box<tokio::time::Sleep>>, tokio::runtime::Id)> {
    let rt = tokio::runtime::Handle::try_current().ok()?.id();
    if let Some((id, mut sleep)) = SPARE.try_with(|s| s.take()).ok().flatten() {
        if id == rt {
            if let Some(deadline) = tokio::time::Instant::now().checked_add(limit) {
                sleep.as_mut().reset(deadline);
                return Some((sleep, rt));
            }
        }
    }
    if TIMERLESS_SEEN.load(Ordering::Relaxed) && TIMERLESS.lock().contains(&rt) {
        return None;
    }
    match catch_unwind(|| Box::pin(tokio::time::sleep(limit))) {
        Ok(sleep) => Some((sleep, rt)),
        Err(_) => {
            // The only panic here is tokio's "timers are disabled"; remember the
            // runtime so that this happens once per runtime.
            TIMERLESS.lock().push(rt);
            TIMERLESS_SEEN.store(true, Ordering::Relaxed);
            tracing::warn!(
                "orbit timeouts in a tokio runtime without timers run on the fallback \
                 `orbit-timeout` thread; build the runtime with `enable_time` (or \
                 `enable_all`) so that they use tokio's timer"
            );
            None
        }
    }
}

/// The timer used where tokio's is not available: one thread, a map ordered by
/// deadline, `std::time::Instant`. Every entry has its own never-reused id, and
/// whether a timeout has elapsed is decided by reading the clock, never by the state
/// of the map, so a wake-up can only be early or spurious, never misdirected.
mod fallback {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Waker};
    use std::thread::Thread;
    use std::time::Instant;

    use parking_lot::Mutex;

    struct Timers {
        /// Waiting timeouts by (deadline, id); ids are never reused.
        waiting: BTreeMap<(Instant, u64), Waker>,
        /// The thread, once started.
        thread: Option<Thread>,
        /// When the thread will next look at the map; `None` while it waits for work.
        wakes_at: Option<Instant>,
    }

    static TIMERS: Mutex<Timers> = Mutex::new(Timers {
        waiting: BTreeMap::new(),
        thread: None,
        wakes_at: None,
    });

    /// One timeout's place in the map.
    pub(super) struct Entry {
        deadline: Instant,
        id: u64,
        /// Whether the entry is in the map (it is taken out when it fires).
        queued: bool,
    }

    impl Entry {
        pub(super) fn new(deadline: Instant) -> Entry {
            static NEXT_ID: AtomicU64 = AtomicU64::new(0);
            Entry {
                deadline,
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                queued: false,
            }
        }

        /// True once the deadline has passed; otherwise makes sure the thread wakes
        /// `cx`'s waker at the deadline.
        pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> bool {
            if Instant::now() >= self.deadline {
                self.remove();
                return true;
            }
            let mut t = TIMERS.lock();
            match t.waiting.get_mut(&(self.deadline, self.id)) {
                Some(w) => {
                    if !w.will_wake(cx.waker()) {
                        *w = cx.waker().clone();
                    }
                }
                None => {
                    t.waiting
                        .insert((self.deadline, self.id), cx.waker().clone());
                    self.queued = true;
                    let earlier = t.wakes_at.is_none_or(|at| self.deadline < at);
                    if t.thread.is_none() {
                        t.thread = spawn();
                    } else if earlier {
                        if let Some(th) = &t.thread {
                            th.unpark();
                        }
                    }
                }
            }
            false
        }

        fn remove(&mut self) {
            if std::mem::take(&mut self.queued) {
                TIMERS.lock().waiting.remove(&(self.deadline, self.id));
            }
        }
    }

    impl Drop for Entry {
        fn drop(&mut self) {
            self.remove();
        }
    }

    /// Starts the thread; on failure (out of threads) the timeouts wait for the next
    /// registration to try again, and the failure is logged.
    fn spawn() -> Option<Thread> {
        match std::thread::Builder::new()
            .name("orbit-timeout".into())
            .spawn(run)
        {
            Ok(h) => Some(h.thread().clone()),
            Err(e) => {
                tracing::error!(error = %e, "could not start the orbit-timeout thread; timeouts outside a tokio runtime wait until it can be started");
                None
            }
        }
    }

    fn run() {
        loop {
            let mut due = Vec::new();
            let next = {
                let mut t = TIMERS.lock();
                let now = Instant::now();
                while let Some(e) = t.waiting.first_entry() {
                    if e.key().0 > now {
                        break;
                    }
                    due.push(e.remove());
                }
                let next = t.waiting.first_key_value().map(|(k, _)| k.0);
                t.wakes_at = next;
                next
            };
            for w in due {
                w.wake();
            }
            match next {
                Some(at) => std::thread::park_timeout(at.saturating_duration_since(Instant::now())),
                None => std::thread::park(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside any tokio runtime (here `futures`' executor) a timeout still fires,
    /// never early, on the fallback thread.
    #[test]
    fn works_outside_a_tokio_runtime() {
        for ms in [0u64, 1, 5, 20] {
            let limit = Duration::from_millis(ms);
            let t0 = Instant::now();
            let r = futures::executor::block_on(timeout(limit, std::future::pending::<()>()));
            let took = t0.elapsed();
            assert_eq!(r, Err(Elapsed));
            assert!(took >= limit, "{ms} ms fired after {took:?}");
            assert!(
                took < limit + Duration::from_secs(2),
                "{ms} ms took {took:?}"
            );
        }
    }

    /// A runtime built without timers: no panic, the fallback thread keeps time.
    #[test]
    fn works_in_a_runtime_without_timers() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for _ in 0..2 {
            let limit = Duration::from_millis(5);
            let t0 = Instant::now();
            let r = rt.block_on(async {
                tokio::spawn(timeout(limit, std::future::pending::<()>()))
                    .await
                    .unwrap()
            });
            assert_eq!(r, Err(Elapsed));
            assert!(t0.elapsed() >= limit);
        }
    }

    /// A ready future never starts a timer, and `Duration::MAX` never expires.
    #[test]
    fn ready_at_once_and_never() {
        let r = futures::executor::block_on(timeout(Duration::ZERO, async { 7 }));
        assert_eq!(r, Ok(7));
        let mut t = Box::pin(timeout(Duration::MAX, std::future::pending::<()>()));
        let waker = futures::task::noop_waker();
        assert!(t
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert!(matches!(t.timer, Timer::Never));
    }
}
