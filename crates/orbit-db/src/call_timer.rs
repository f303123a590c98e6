//! `CallTimer`: the one tokio timer a pool call arms.
//!
//! A call waits on up to three deadlines in turn: the queue's next look (load
//! shedding) and the checkout deadline while it is queued, then the call's own
//! deadline while its work runs. Each used to be a timer of its own (a wheel insert
//! and a removal under the time driver's lock, each); here they are one `Sleep`,
//! moved from deadline to deadline. Moving it later is a lock-free store in tokio
//! (the wheel re-files the entry only if the earlier instant comes), so a queued call
//! costs one insert and one removal in all.
//!
//! The work's wait keeps an earlier deadline the timer already has (the queue's next
//! look, armed while the call was queued) instead of moving it: if that one comes
//! while the work still runs, the wait reads the clock and moves on to the work's
//! deadline. A call that ends before its queue look was due (nearly every one) then
//! skips the move, and the work's deadline is still kept to the instant.
//!
//! The waits never overlap (the queue's ends before the work starts: the pool drops
//! it first); if one ever did, the overlapping wait would use a fresh timer instead
//! of the shared one, never panic.
//!
//! The `Sleep` itself is this thread's spare ([`take_sleep`], [`keep_sleep`]): a call
//! gives its timer back when it ends, still registered, and the next call on the thread
//! takes it as it is (its old deadline is harmless: each wait moves it to its own, or
//! keeps an earlier one and then moves on, as above). Moving a registered timer to a
//! later instant is one compare-and-swap, so a call whose deadlines come later than the
//! previous call's (the common case: queue looks put off to the interval's end, or the
//! work's deadline) takes the timer wheel's lock neither to register nor to cancel; a
//! new `Sleep` per call took it for both. Spares are kept per runtime (a `Sleep` of
//! another runtime is never polled here); a call cancelled mid-way drops its timer.
//!
//! A wait does not poll the `Sleep` when that could only register the same waker
//! again ([`Armed`]): it is registered with a waker that `will_wake` the polling task,
//! has not fired and has not been moved since. The work's wait after the queue's (same
//! task, an earlier deadline kept) and the next call of the same task (the spare keeps
//! the waker it is registered with) then cost no poll of tokio's `Sleep`. A timer that
//! fires wakes that waker; the next poll finds it elapsed and polls it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures::lock::{Mutex, MutexGuard};
use tokio::time::{Instant, Sleep};

/// A call's timer between calls: the `Sleep`, and the waker it is registered with
/// when that is known (see [`Armed`]).
pub(crate) struct Spare {
    /// The timer.
    pub(crate) sleep: Pin<Box<Sleep>>,
    /// The waker the timer is registered with (not fired, not moved since), if known.
    pub(crate) waker: Option<Waker>,
}

thread_local! {
    /// A finished call's timer, kept for the next call on this thread (see the
    /// module's doc), with the runtime it belongs to.
    static SPARE: std::cell::Cell<Option<(tokio::runtime::Id, Spare)>> =
        const { std::cell::Cell::new(None) };
}

/// A timer for a call: this thread's spare one if it belongs to the current runtime
/// (its deadline and registration as the last call left them), otherwise a new one at
/// `at`. The runtime's id comes along for [`keep_sleep`] (`None` outside a runtime:
/// then the `Sleep` is tokio's to refuse, as before).
pub(crate) fn take_sleep(at: Instant) -> (Spare, Option<tokio::runtime::Id>) {
    let rt = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
    if let Some(rt) = rt {
        if let Ok(Some((id, spare))) = SPARE.try_with(|s| s.take()) {
            if id == rt {
                return (spare, Some(rt));
            }
        }
    }
    let sleep = Box::pin(tokio::time::sleep_until(at));
    (Spare { sleep, waker: None }, rt)
}

/// Gives a call's timer back to this thread for the next call (a spare already there
/// is dropped).
pub(crate) fn keep_sleep(spare: Spare, rt: Option<tokio::runtime::Id>) {
    if let Some(rt) = rt {
        // During thread teardown the timer is simply dropped.
        let _ = SPARE.try_with(|s| s.set(Some((rt, spare))));
    }
}

/// One call's timer (see the module's doc).
pub(crate) struct CallTimer<'a> {
    /// Taken by the wait in progress (`try_lock`: never waits; a futures lock, whose
    /// guard may be held across the wait by a `Send` future).
    sleep: Mutex<Armed<'a>>,
}

/// The call's `Sleep` and the waker it was last registered with.
///
/// A wait that polls the `Sleep` with the same waker (`will_wake`) while it has not
/// fired and its deadline has not moved since would only register that waker again:
/// the poll is skipped. So the work's wait, which follows the queue's wait in the same
/// task and keeps the queue's earlier deadline, costs no poll of the timer (tokio's
/// `Sleep::poll`, with its budget check and waker registration, ≈ 120 instructions).
/// If the timer fires, it wakes that waker, and the next poll finds it elapsed and
/// polls it.
pub(crate) struct Armed<'a> {
    sleep: Pin<&'a mut Sleep>,
    /// `Some` while the `Sleep` is registered with this waker, not fired and not reset
    /// since; `None`: unknown (a poll is needed).
    waker: Option<Waker>,
}

impl Armed<'_> {
    /// Polls the `Sleep`, unless that could only register the same waker again.
    #[inline]
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(w) = &self.waker {
            if w.will_wake(cx.waker()) && !self.sleep.is_elapsed() {
                return Poll::Pending;
            }
        }
        // Out of budget, tokio's `Sleep::poll` returns `Pending` without registering the
        // waker (it has the task polled again): then nothing is known.
        let registers = tokio::task::coop::has_budget_remaining();
        let p = self.sleep.as_mut().poll(cx);
        match (&p, &mut self.waker) {
            (Poll::Pending, Some(w)) if registers => w.clone_from(cx.waker()),
            (Poll::Pending, None) if registers => self.waker = Some(cx.waker().clone()),
            _ => self.waker = None,
        }
        p
    }

    /// Moves the deadline (the next poll registers again).
    fn reset(&mut self, at: Instant) {
        self.sleep.as_mut().reset(at);
        self.waker = None;
    }

    fn deadline(&self) -> Instant {
        self.sleep.deadline()
    }
}

/// The deadline came before the work finished.
#[derive(Debug)]
pub(crate) struct Elapsed;

impl<'a> CallTimer<'a> {
    /// A timer over `sleep`, registered with `waker` if `Some` (not fired, not moved
    /// since; `None` when unknown: the first wait polls it).
    pub(crate) fn new(sleep: Pin<&'a mut Sleep>, waker: Option<Waker>) -> Self {
        CallTimer {
            sleep: Mutex::new(Armed { sleep, waker }),
        }
    }

    /// The waker the timer is registered with, if known, for the next call
    /// ([`Spare::waker`]).
    pub(crate) fn into_waker(self) -> Option<Waker> {
        self.sleep.into_inner().waker
    }

    /// Waits until `at` (the wait owns the timer while it lasts; an overlapping wait
    /// takes a fresh one).
    pub(crate) async fn wait_until(&self, at: Instant) {
        match self.sleep.try_lock() {
            Some(mut armed) => {
                if armed.deadline() != at {
                    armed.reset(at);
                }
                std::future::poll_fn(|cx| armed.poll(cx)).await
            }
            // Boxed: an inline `Sleep` would make every queued call's wait (moved
            // through the checkout's futures) larger for a case that never comes.
            None => Box::pin(tokio::time::sleep_until(at)).await,
        }
    }

    /// Runs `work` until `at`: its output, or [`Elapsed`] (and `work` dropped) when
    /// `at` comes first. `work` is polled before the timer, as by
    /// `tokio::time::timeout_at`. One hand-written future (no `select` over a second
    /// state machine): the timer is taken at the first poll that needs it and held
    /// until the future ends, as the wait it replaces held it.
    pub(crate) fn run_until<F: Future>(&self, at: Instant, work: F) -> RunUntil<'_, 'a, F> {
        RunUntil {
            work: Some(work),
            at,
            timer: self,
            held: Held::NotYet,
        }
    }
}

/// The timer as a [`RunUntil`] holds it.
enum Held<'t, 'a> {
    /// Not polled yet.
    NotYet,
    /// The call's timer, held (its deadline already moved to `at` if it was later).
    Shared(MutexGuard<'t, Armed<'a>>),
    /// Another wait held the call's timer: a fresh one.
    Own(Pin<Box<Sleep>>),
}

pin_project_lite::pin_project! {
    /// The future of [`CallTimer::run_until`].
    pub(crate) struct RunUntil<'t, 'a, F> {
        // `None` once the deadline came: the work is dropped then, before the
        // caller sees `Elapsed`.
        #[pin]
        work: Option<F>,
        at: Instant,
        timer: &'t CallTimer<'a>,
        held: Held<'t, 'a>,
    }
}

impl<F: Future> Future for RunUntil<'_, '_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(work) = this.work.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Elapsed));
        };
        if let Poll::Ready(out) = work.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let at = *this.at;
        if let Held::NotYet = this.held {
            *this.held = match this.timer.sleep.try_lock() {
                Some(mut armed) => {
                    // Keep an earlier deadline (see the module's doc).
                    if armed.deadline() > at {
                        armed.reset(at);
                    }
                    Held::Shared(armed)
                }
                None => Held::Own(Box::pin(tokio::time::sleep_until(at))),
            };
        }
        let elapsed = match this.held {
            Held::Shared(guard) => poll_keeping_earlier(&mut *guard, at, cx),
            Held::Own(own) => {
                let mut armed = Armed {
                    sleep: own.as_mut(),
                    waker: None,
                };
                poll_keeping_earlier(&mut armed, at, cx)
            }
            Held::NotYet => return Poll::Pending,
        };
        if elapsed.is_ready() {
            this.work.set(None);
        }
        elapsed
    }
}

/// Polls `sleep` towards `at`: ready with [`Elapsed`] once `at` has come; an earlier
/// deadline it had comes first, then the clock is read and it moves on to `at`.
fn poll_keeping_earlier<T>(
    armed: &mut Armed<'_>,
    at: Instant,
    cx: &mut Context<'_>,
) -> Poll<Result<T, Elapsed>> {
    loop {
        if armed.poll(cx).is_pending() {
            return Poll::Pending;
        }
        if armed.deadline() >= at || Instant::now() >= at {
            return Poll::Ready(Err(Elapsed));
        }
        armed.reset(at);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::pin::pin;

    use super::*;

    #[tokio::test]
    async fn one_timer_serves_successive_deadlines() {
        let t0 = Instant::now();
        let sleep = pin!(tokio::time::sleep_until(t0 + Duration::from_secs(60)));
        let timer = CallTimer::new(sleep, None);
        timer.wait_until(t0 + Duration::from_millis(10)).await;
        assert!(Instant::now() >= t0 + Duration::from_millis(10));
        let quick = timer
            .run_until(t0 + Duration::from_secs(60), async { 7 })
            .await;
        assert_eq!(quick.ok(), Some(7));
        let stuck = timer
            .run_until(
                t0 + Duration::from_millis(50),
                futures::future::pending::<()>(),
            )
            .await;
        assert!(stuck.is_err(), "work that never ends must hit its deadline");
        assert!(Instant::now() >= t0 + Duration::from_millis(50));
    }

    #[tokio::test]
    async fn an_earlier_deadline_left_by_the_queue_does_not_end_the_work_early() {
        let t0 = Instant::now();
        let sleep = pin!(tokio::time::sleep_until(t0 + Duration::from_secs(60)));
        let timer = CallTimer::new(sleep, None);
        // The queue's look, armed and elapsed: the timer is behind the work's deadline.
        timer.wait_until(t0 + Duration::from_millis(5)).await;
        // Work that finishes before its deadline but after the look's instant.
        let slow = timer
            .run_until(t0 + Duration::from_secs(60), async {
                tokio::time::sleep_until(t0 + Duration::from_millis(40)).await;
                9
            })
            .await;
        assert_eq!(slow.ok(), Some(9));
        // Another look, elapsed, then work that never ends: the deadline is the
        // work's, not the look's.
        timer.wait_until(t0 + Duration::from_millis(50)).await;
        let deadline = t0 + Duration::from_millis(150);
        let stuck = timer
            .run_until(deadline, futures::future::pending::<()>())
            .await;
        assert!(stuck.is_err(), "work that never ends must hit its deadline");
        assert!(
            Instant::now() >= deadline,
            "ended before the work's deadline"
        );
    }

    #[tokio::test]
    async fn a_pending_earlier_deadline_is_followed_by_the_works_own() {
        let t0 = Instant::now();
        let sleep = pin!(tokio::time::sleep_until(t0 + Duration::from_millis(20)));
        let timer = CallTimer::new(sleep, None);
        // The timer's deadline (20 ms) is earlier than the work's (100 ms) and has not
        // come yet when the work starts.
        let deadline = t0 + Duration::from_millis(100);
        let stuck = timer
            .run_until(deadline, futures::future::pending::<()>())
            .await;
        assert!(stuck.is_err());
        assert!(Instant::now() >= deadline, "ended at the earlier deadline");
        // And a later deadline than the timer's: moved, as before.
        let later = Instant::now() + Duration::from_millis(30);
        let quick = timer.run_until(later, async { 3 }).await;
        assert_eq!(quick.ok(), Some(3));
    }

    #[tokio::test]
    async fn work_past_its_deadline_is_dropped_before_elapsed_is_seen() {
        use std::sync::atomic::{AtomicBool, Ordering};
        struct Flag<'f>(&'f AtomicBool);
        impl Drop for Flag<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = AtomicBool::new(false);
        let t0 = Instant::now();
        let sleep = pin!(tokio::time::sleep_until(t0 + Duration::from_secs(60)));
        let timer = CallTimer::new(sleep, None);
        let flag = Flag(&dropped);
        let work = async move {
            let _flag = flag;
            futures::future::pending::<()>().await
        };
        let mut run = pin!(timer.run_until(t0 + Duration::from_millis(20), work));
        let out = run.as_mut().await;
        assert!(out.is_err());
        // The future itself is still alive here: the work went when the deadline came.
        assert!(
            dropped.load(Ordering::SeqCst),
            "the work outlived its deadline"
        );
        assert!(run.as_mut().await.is_err(), "polled again: still elapsed");
    }

    #[test]
    fn a_calls_timer_is_kept_for_the_next_call_of_its_runtime_only() {
        let rt = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a current-thread runtime")
        };
        let a = rt();
        let kept_deadline = a.block_on(async {
            let t0 = Instant::now();
            // No spare yet: a new timer at the deadline asked for.
            let (mut spare, id) = take_sleep(t0 + Duration::from_secs(60));
            assert_eq!(spare.sleep.deadline(), t0 + Duration::from_secs(60));
            assert!(spare.waker.is_none());
            let timer = CallTimer::new(spare.sleep.as_mut(), None);
            timer.wait_until(t0 + Duration::from_millis(5)).await;
            // Fired: the registration is not known any more.
            spare.waker = timer.into_waker();
            assert!(spare.waker.is_none());
            keep_sleep(spare, id);
            // The next call takes it as the last one left it (moved to 5 ms).
            let (mut again, id) = take_sleep(t0 + Duration::from_secs(90));
            assert_eq!(again.sleep.deadline(), t0 + Duration::from_millis(5));
            // And its waits still end at their own deadlines.
            let timer = CallTimer::new(again.sleep.as_mut(), again.waker.take());
            let deadline = Instant::now() + Duration::from_millis(40);
            let stuck = timer
                .run_until(deadline, futures::future::pending::<()>())
                .await;
            assert!(stuck.is_err() && Instant::now() >= deadline);
            drop(timer);
            let left = again.sleep.deadline();
            keep_sleep(again, id);
            left
        });
        // Another runtime on this thread never gets the first one's timer.
        let b = rt();
        b.block_on(async {
            let at = Instant::now() + Duration::from_secs(7);
            let (spare, id) = take_sleep(at);
            assert_ne!(spare.sleep.deadline(), kept_deadline);
            assert_eq!(spare.sleep.deadline(), at);
            keep_sleep(spare, id);
        });
        drop(a);
    }

    /// Polls `fut` once with `cx`'s waker, then drops it (a queue wait dropped at the
    /// hand-off, after registering the call's timer).
    fn poll_once_then_drop<F: Future>(fut: F, cx: &mut Context<'_>) -> bool {
        let mut fut = std::pin::pin!(fut);
        fut.as_mut().poll(cx).is_pending()
    }

    #[tokio::test]
    async fn a_timer_registered_by_the_queue_wait_still_bounds_the_work() {
        // The queue's wait registers the timer (look at 30 ms) and is dropped pending;
        // the work's wait, in the same task, finds it registered with this task's waker
        // and does not poll it, yet still moves on at 30 ms and ends at 80 ms.
        let t0 = Instant::now();
        let sleep = pin!(tokio::time::sleep_until(t0 + Duration::from_secs(60)));
        let timer = CallTimer::new(sleep, None);
        let pending = std::future::poll_fn(|cx| {
            Poll::Ready(poll_once_then_drop(
                timer.wait_until(t0 + Duration::from_millis(30)),
                cx,
            ))
        })
        .await;
        assert!(pending, "the look is 30 ms away");
        let deadline = t0 + Duration::from_millis(80);
        let stuck = timer
            .run_until(deadline, futures::future::pending::<()>())
            .await;
        assert!(stuck.is_err());
        assert!(Instant::now() >= deadline, "ended at the queue's look");
    }

    #[tokio::test]
    async fn a_timer_registered_with_another_waker_is_polled_again() {
        // The timer was registered with a waker that does not wake this task (another
        // task's, here a no-op one): the next wait must register this task's waker, or
        // its deadline would never wake it.
        let t0 = Instant::now();
        let sleep = pin!(tokio::time::sleep_until(t0 + Duration::from_secs(60)));
        let timer = CallTimer::new(sleep, None);
        let mut other = Context::from_waker(futures::task::noop_waker_ref());
        assert!(poll_once_then_drop(
            timer.wait_until(t0 + Duration::from_millis(20)),
            &mut other
        ));
        // The guard's own timer wakes the task at 3 s at the latest (and `timeout`
        // polls the work's wait first, which then sees its timer elapsed): ending that
        // late means the work's deadline never woke the task.
        let done = tokio::time::timeout(
            Duration::from_secs(3),
            timer.run_until(
                t0 + Duration::from_millis(50),
                futures::future::pending::<()>(),
            ),
        )
        .await;
        assert!(matches!(done, Ok(Err(Elapsed))));
        assert!(
            Instant::now() < t0 + Duration::from_secs(2),
            "the work's deadline never woke its task"
        );
    }

    #[test]
    fn a_spare_registered_by_one_task_bounds_the_next_tasks_call() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
        rt.block_on(async {
            // Task A's call leaves the timer registered with A's waker (its queue wait
            // dropped pending at a hand-off, its work done at once).
            let a = tokio::spawn(async {
                let t0 = Instant::now();
                let (mut spare, id) = take_sleep(t0 + Duration::from_secs(60));
                let timer = CallTimer::new(spare.sleep.as_mut(), spare.waker.take());
                let pending = std::future::poll_fn(|cx| {
                    Poll::Ready(poll_once_then_drop(
                        timer.wait_until(t0 + Duration::from_millis(200)),
                        cx,
                    ))
                })
                .await;
                assert!(timer
                    .run_until(t0 + Duration::from_secs(60), async {})
                    .await
                    .is_ok());
                spare.waker = timer.into_waker();
                assert!(pending && spare.waker.is_some(), "registration not kept");
                keep_sleep(spare, id);
            });
            a.await.expect("task A");
            // Task B, on the same thread, takes the spare with A's waker; its work's
            // deadline is later than the spare's (kept, not moved): the timer must still
            // wake B, first at 200 ms, then at B's own deadline.
            let b = tokio::spawn(async {
                let t0 = Instant::now();
                let (mut spare, id) = take_sleep(t0 + Duration::from_secs(90));
                assert!(spare.waker.is_some(), "not the spare");
                let timer = CallTimer::new(spare.sleep.as_mut(), spare.waker.take());
                let deadline = t0 + Duration::from_millis(400);
                // As above: the guard wakes B at 3 s at the latest.
                let done = tokio::time::timeout(
                    Duration::from_secs(3),
                    timer.run_until(deadline, futures::future::pending::<()>()),
                )
                .await;
                assert!(matches!(done, Ok(Err(Elapsed))));
                let now = Instant::now();
                assert!(now >= deadline);
                assert!(now < t0 + Duration::from_secs(2), "B was never woken");
                spare.waker = timer.into_waker();
                keep_sleep(spare, id);
            });
            b.await.expect("task B");
        });
    }

    #[tokio::test]
    async fn an_overlapping_wait_gets_its_own_timer() {
        let t0 = Instant::now();
        let sleep = pin!(tokio::time::sleep_until(t0));
        let timer = CallTimer::new(sleep, None);
        let outer = timer.run_until(t0 + Duration::from_secs(60), async {
            // The shared timer is taken by the outer wait: this one must not panic.
            timer.wait_until(t0 + Duration::from_millis(20)).await;
            Instant::now()
        });
        let inner_done = outer.await.expect("the inner wait ends first");
        // Futures of pool calls are spawned: the timer must not make them !Send.
        fn is_send<T: Send>(_: &T) {}
        let sleep = pin!(tokio::time::sleep_until(t0));
        let timer = CallTimer::new(sleep, None);
        is_send(&timer.run_until(t0, async {}));
        assert!(inner_done >= t0 + Duration::from_millis(20));
    }
}
