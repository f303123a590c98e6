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
//! The waits never overlap (the queue's ends before the work starts: the pool drops
//! it first); if one ever did, the overlapping wait would use a fresh timer instead
//! of the shared one, never panic.

use std::future::Future;
use std::pin::{pin, Pin};

use futures::future::{select, Either};
use futures::lock::Mutex;
use tokio::time::{Instant, Sleep};

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
            None => tokio::time::sleep_until(at).await,
        }
    }

    /// Runs `work` until `at`: its output, or [`Elapsed`] (and `work` dropped) when
    /// `at` comes first. `work` is polled before the timer, as by
    /// `tokio::time::timeout_at`.
    pub(crate) async fn run_until<F: Future>(
        &self,
        at: Instant,
        work: F,
    ) -> Result<F::Output, Elapsed> {
        let work = pin!(work);
        let wait = pin!(self.wait_until(at));
        match select(work, wait).await {
            Either::Left((out, _)) => Ok(out),
            Either::Right(_) => Err(Elapsed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
