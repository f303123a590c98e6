//! Handing the results that one read of a connection completes to their waiters one
//! after the other, so that they run on the reader's worker thread instead of waking a
//! parked one.
//!
//! A tokio multi-thread worker that wakes two or more tasks in one poll keeps the last in
//! its LIFO slot and queues the others, and queueing a task wakes a parked worker
//! (a `futex` wake-up, a context switch and usually a CPU migration, which steals half
//! the queue). The connection reader used to wake every `SPAWN_REQUEST` caller whose
//! `MONITOR_P_EXIT` the read brought: with several callers in flight, about one parked
//! worker woken per read (issue 20, crates/orbit-bench/README.md, erpc).
//!
//! Here the reader, for the frames of one read ([`Batch`]), only collects the results;
//! when the read's frames are handled it sends the first, and each waiter, when it takes
//! its result ([`Fired::take`]) or drops its watch unread, sends the next. Each send
//! happens from the task that runs on the worker, whose LIFO slot is then free: the
//! next waiter runs on the same worker, with no wake-up of another. (tokio lets three
//! tasks in a row run from the LIFO slot; from the fourth on, a hand-off is queued as
//! before, so a read that completes more than three waiters may still wake a worker.)
//!
//! Liveness: a result is passed on when its waiter takes it or drops its watch, and the
//! reader sends whatever is still left at its next read, before that read's own
//! results. A watch that is woken but neither polled nor dropped holds up the results
//! behind it until then.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;

use orbit::ExitReason;
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// A result to hand over: the waiter's channel and its reason.
type Delivery = (oneshot::Sender<Fired>, ExitReason);

/// The results of one read still to hand over, the next one last.
type Chain = Mutex<Vec<Delivery>>;

/// What a waiter receives: its reason, and the rest of the results of the same read
/// (passed on when this one is taken or dropped).
#[derive(Debug)]
pub(crate) struct Fired {
    reason: ExitReason,
    rest: Option<Arc<Chain>>,
}

impl Fired {
    /// A result delivered on its own (not through a read's batch).
    pub(crate) fn alone(reason: ExitReason) -> Fired {
        Fired { reason, rest: None }
    }

    /// The reason; the next waiter of the same read gets its result now.
    pub(crate) fn take(self) -> ExitReason {
        if let Some(rest) = &self.rest {
            pass_on(rest);
        }
        self.reason
    }
}

/// Sends the next result of `chain` whose waiter is still there.
fn pass_on(chain: &Arc<Chain>) {
    loop {
        let next = chain.lock().pop();
        let Some((tx, reason)) = next else { return };
        let fired = Fired {
            reason,
            rest: Some(chain.clone()),
        };
        match tx.send(fired) {
            Ok(()) => return,
            // The waiter is gone: nobody to hand the rest on, so try the next one.
            Err(_) => continue,
        }
    }
}

thread_local! {
    /// The results collected by the [`Batch`] open on this thread, if one is.
    static OPEN: RefCell<Option<Vec<Delivery>>> = const { RefCell::new(None) };
}

/// Sends `reason` to `tx`: at once, or, while a [`Batch`] is open on this thread, when
/// it closes (in turn with the batch's other results).
pub(crate) fn deliver(tx: oneshot::Sender<Fired>, reason: ExitReason) {
    let rest = OPEN.with(|o| match o.borrow_mut().as_mut() {
        Some(v) => {
            v.push((tx, reason));
            None
        }
        None => Some((tx, reason)),
    });
    if let Some((tx, reason)) = rest {
        let _ = tx.send(Fired::alone(reason));
    }
}

/// What a reader keeps between its reads: the results of its last batch not yet
/// handed over.
#[derive(Default)]
pub(crate) struct Leftover(Option<Arc<Chain>>);

/// The frames of one read being handled: results are collected and handed over when it
/// is dropped. Not `Send`: it cannot be held across an `.await` of a spawned task.
pub(crate) struct Batch<'a> {
    left: &'a mut Leftover,
    _not_send: PhantomData<*const ()>,
}

impl<'a> Batch<'a> {
    /// Opens a batch on this thread (a batch already open stays the one collecting).
    pub(crate) fn open(left: &'a mut Leftover) -> Batch<'a> {
        OPEN.with(|o| {
            let mut o = o.borrow_mut();
            if o.is_none() {
                *o = Some(Vec::new());
            }
        });
        Batch {
            left,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let mut now = OPEN.with(|o| o.borrow_mut().take()).unwrap_or_default();
        // What the last batch has not handed over yet goes first.
        if let Some(old) = self.left.0.take() {
            let mut old = std::mem::take(&mut *old.lock());
            if !old.is_empty() {
                old.reverse();
                old.append(&mut now);
                now = old;
            }
        }
        match now.len() {
            0 => {}
            1 => {
                if let Some((tx, reason)) = now.pop() {
                    let _ = tx.send(Fired::alone(reason));
                }
            }
            _ => {
                now.reverse();
                let chain = Arc::new(Mutex::new(now));
                pass_on(&chain);
                self.left.0 = Some(chain);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(n: i64) -> ExitReason {
        ExitReason::Term(Arc::new(orbit_term::Term::Int(n)))
    }

    fn int(r: ExitReason) -> Option<i64> {
        match r {
            ExitReason::Term(t) => match &*t {
                orbit_term::Term::Int(n) => Some(*n),
                _ => None,
            },
            _ => None,
        }
    }

    #[test]
    fn a_batch_hands_results_over_one_after_the_other() {
        let mut left = Leftover::default();
        let (mut rxs, mut txs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (tx, rx) = oneshot::channel();
            txs.push(tx);
            rxs.push(rx);
        }
        {
            let _b = Batch::open(&mut left);
            for (i, tx) in txs.into_iter().enumerate() {
                deliver(tx, reason(i as i64));
            }
        }
        // Only the first has its result; taking it sends the second, and so on.
        assert!(rxs[1].try_recv().is_err());
        let first = rxs[0].try_recv().expect("first result sent");
        assert!(rxs[1].try_recv().is_err(), "second waits for the first");
        assert_eq!(int(first.take()), Some(0));
        let second = rxs[1].try_recv().expect("second result sent");
        assert!(rxs[2].try_recv().is_err());
        assert_eq!(int(second.take()), Some(1));
        assert_eq!(int(rxs[2].try_recv().expect("third").take()), Some(2));
    }

    #[test]
    fn a_gone_waiter_is_skipped_and_leftovers_go_first_next_time() {
        let mut left = Leftover::default();
        let (tx0, rx0) = oneshot::channel();
        let (tx1, rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        drop(rx0);
        {
            let _b = Batch::open(&mut left);
            deliver(tx0, reason(0));
            deliver(tx1, reason(1));
            deliver(tx2, reason(2));
        }
        // rx0 was gone: rx1 got its result, and is never read; rx2 waits.
        drop(rx1);
        assert!(rx2.try_recv().is_err());
        // The next batch (even an empty one) sends what was left first.
        drop(Batch::open(&mut left));
        assert_eq!(int(rx2.try_recv().expect("leftover sent").take()), Some(2));
        // Outside a batch, a result is sent at once.
        let (tx3, mut rx3) = oneshot::channel();
        deliver(tx3, reason(3));
        assert_eq!(int(rx3.try_recv().expect("sent at once").take()), Some(3));
    }
}
