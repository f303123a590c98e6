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

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::lock::{Mutex, MutexGuard};
use tokio::time::{Instant, Sleep};

thread_local! {
    /// A finished call's timer, kept for the next call on this thread (see the
    /// module's doc), with the runtime it belongs to.
    static SPARE: std::cell::Cell<Option<(tokio::runtime::Id, Pin<Box<Sleep>>)>> =
        const { std::cell::Cell::new(None) };
}

/// A timer for a call: this thread's spare one if it belongs to the current runtime
/// (its deadline as the last call left it), otherwise a new one at `at`. The runtime's
/// id comes along for [`keep_sleep`] (`None` outside a runtime: then the `Sleep` is
/// tokio's to refuse, as before).
pub(crate) fn take_sleep(at: Instant) -> (Pin<Box<Sleep>>, Option<tokio::runtime::Id>) {
    let rt = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
    if let Some(rt) = rt {
        if let Ok(Some((id, sleep))) = SPARE.try_with(|s| s.take()) {
            if id == rt {
                return (sleep, Some(rt));
            }
        }
    }
    (Box::pin(tokio::time::sleep_until(at)), rt)
}

/// Gives a call's timer back to this thread for the next call (a spare already there
/// is dropped).
pub(crate) fn keep_sleep(sleep: Pin<Box<Sleep>>, rt: Option<tokio::runtime::Id>) {
    if let Some(rt) = rt {
        // During thread teardown the timer is simply dropped.
        let _ = SPARE.try_with(|s| s.set(Some((rt, sleep))));
    }
}

/// One call's timer (see the module's doc).
pub(crate) struct CallTimer<'a> {
    /// Taken by the wait in progress (`try_lock`: never waits; a futures lock, whose
    /// guard may be held across the wait by a `Send` future).
    sleep: Mutex<Pin<&'a mut Sleep>>,
}

/// The deadline came before the work finished.
#[derive(Debug)]
pub(crate) struct Elapsed;

impl<'a> CallTimer<'a> {
    /// A timer over `sleep` (not armed until a wait polls it).
    pub(crate) fn new(sleep: Pin<&'a mut Sleep>) -> Self {
        CallTimer {
            sleep: Mutex::new(sleep),
        }
    }

    /// Waits until `at` (the wait owns the timer while it lasts; an overlapping wait
    /// takes a fresh one).
    pub(crate) async fn wait_until(&self, at: Instant) {
        match self.sleep.try_lock() {
            Some(mut sleep) => {
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                sleep.as_mut().await
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
    Shared(MutexGuard<'t, Pin<&'a mut Sleep>>),
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
                Some(mut sleep) => {
                    // Keep an earlier deadline (see the module's doc).
                    if sleep.deadline() > at {
                        sleep.as_mut().reset(at);
                    }
                    Held::Shared(sleep)
                }
                None => Held::Own(Box::pin(tokio::time::sleep_until(at))),
            };
        }
        let sleep = match this.held {
            Held::Shared(guard) => guard.as_mut(),
            Held::Own(own) => own.as_mut(),
            Held::NotYet => return Poll::Pending,
        };
        let elapsed = poll_keeping_earlier(sleep, at, cx);
        if elapsed.is_ready() {
            this.work.set(None);
        }
        elapsed
    }
}

/// Polls `sleep` towards `at`: ready with [`Elapsed`] once `at` has come; an earlier
/// deadline it had comes first, then the clock is read and it moves on to `at`.
fn poll_keeping_earlier<T>(
    mut sleep: Pin<&mut Sleep>,
    at: Instant,
    cx: &mut Context<'_>,
) -> Poll<Result<T, Elapsed>> {
    loop {
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if sleep.deadline() >= at || Instant::now() >= at {
            return Poll::Ready(Err(Elapsed));
        }
        sleep.as_mut().reset(at);
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
        let timer = CallTimer::new(sleep);
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
        let timer = CallTimer::new(sleep);
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
        let timer = CallTimer::new(sleep);
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
        let timer = CallTimer::new(sleep);
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
            let (sleep, id) = take_sleep(t0 + Duration::from_secs(60));
            assert_eq!(sleep.deadline(), t0 + Duration::from_secs(60));
            let mut sleep = sleep;
            let timer = CallTimer::new(sleep.as_mut());
            timer.wait_until(t0 + Duration::from_millis(5)).await;
            drop(timer);
            keep_sleep(sleep, id);
            // The next call takes it as the last one left it (moved to 5 ms).
            let (again, id) = take_sleep(t0 + Duration::from_secs(90));
            assert_eq!(again.deadline(), t0 + Duration::from_millis(5));
            // And its waits still end at their own deadlines.
            let mut again = again;
            let timer = CallTimer::new(again.as_mut());
            let deadline = Instant::now() + Duration::from_millis(40);
            let stuck = timer
                .run_until(deadline, futures::future::pending::<()>())
                .await;
            assert!(stuck.is_err() && Instant::now() >= deadline);
            drop(timer);
            let left = again.deadline();
            keep_sleep(again, id);
            left
        });
        // Another runtime on this thread never gets the first one's timer.
        let b = rt();
        b.block_on(async {
            let at = Instant::now() + Duration::from_secs(7);
            let (sleep, id) = take_sleep(at);
            assert_ne!(sleep.deadline(), kept_deadline);
            assert_eq!(sleep.deadline(), at);
            keep_sleep(sleep, id);
        });
        drop(a);
    }

    #[tokio::test]
    async fn an_overlapping_wait_gets_its_own_timer() {
        let t0 = Instant::now();
        let sleep = pin!(tokio::time::sleep_until(t0));
        let timer = CallTimer::new(sleep);
        let outer = timer.run_until(t0 + Duration::from_secs(60), async {
            // The shared timer is taken by the outer wait: this one must not panic.
            timer.wait_until(t0 + Duration::from_millis(20)).await;
            Instant::now()
        });
        let inner_done = outer.await.expect("the inner wait ends first");
        // Futures of pool calls are spawned: the timer must not make them !Send.
        fn is_send<T: Send>(_: &T) {}
        let sleep = pin!(tokio::time::sleep_until(t0));
        let timer = CallTimer::new(sleep);
        is_send(&timer.run_until(t0, async {}));
        assert!(inner_done >= t0 + Duration::from_millis(20));
    }
}
