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
//! The requests those waiters send meanwhile (each caller's next `SPAWN_REQUEST`) are
//! appended to the connection's buffer without a write or a wake-up of the writer task
//! while more results of the chain are still to come; the chain's end (its last result
//! taken, or the chain dropped) wakes the writer task once, and they leave in one write
//! (one `sendto` for the batch instead of one per caller, and one read for the peer).
//!
//! Frames the reader's own work queues for the writer task while it handles a read
//! (the answers to `SPAWN_REQUEST`s run on the reader, `orbit_dist::spawn::reply_exited`)
//! do not wake the writer task either: the end of the read's frames writes them from
//! the reader's thread, one write, with no task switch ([`queue_held`]).
//!
//! Liveness: a result is passed on when its waiter takes it or drops its watch, and the
//! reader sends whatever is still left at its next read, before that read's own
//! results. A watch that is woken but neither polled nor dropped holds up the results
//! behind it until then.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use orbit::ExitReason;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::connection::Conn;

/// A result to hand over: the waiter's channel and its reason.
type Delivery = (oneshot::Sender<Fired>, ExitReason);

/// The results of one read still to hand over, and the connection they came on.
struct Chain {
    /// The results still to hand over, the next one last.
    items: Mutex<Vec<Delivery>>,
    /// The connection whose frames are held back while the chain runs.
    conn: Arc<Conn>,
    /// Frames were appended to `conn` without waking its writer task.
    held: AtomicBool,
    /// Still holding frames back (false once the reader took over what was left).
    open: AtomicBool,
}

impl Chain {
    /// Wakes the writer task for the frames held back, if any.
    fn release(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.conn.wake_writer();
        }
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        self.release();
    }
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").finish_non_exhaustive()
    }
}

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

    /// The reason; the next waiter of the same read gets its result now. While one is
    /// still to come, the next frame this thread sends on the chain's connection is
    /// held back for the chain's end ([`hold_back`]).
    pub(crate) fn take(mut self) -> ExitReason {
        if let Some(rest) = self.rest.take() {
            let more = pass_on(&rest);
            HOLD.with(|h| *h.borrow_mut() = more.then(|| Arc::downgrade(&rest)));
        }
        std::mem::replace(&mut self.reason, ExitReason::Normal)
    }
}

impl Drop for Fired {
    /// A result dropped unread (its channel dropped with it) still hands the rest on.
    fn drop(&mut self) {
        if let Some(rest) = self.rest.take() {
            pass_on(&rest);
        }
    }
}

/// Sends the next result of `chain` whose waiter is still there; false when none was.
fn pass_on(chain: &Arc<Chain>) -> bool {
    loop {
        let next = chain.items.lock().pop();
        let Some((tx, reason)) = next else {
            return false;
        };
        let fired = Fired {
            reason,
            rest: Some(chain.clone()),
        };
        match tx.send(fired) {
            Ok(()) => return true,
            // The waiter is gone: nobody to hand the rest on, so try the next one here
            // (the returned result, disarmed, does not hand it on as it drops).
            Err(mut gone) => {
                gone.rest = None;
                continue;
            }
        }
    }
}

/// The [`Batch`] open on this thread.
struct Open {
    /// The results collected.
    deliveries: Vec<Delivery>,
    /// The connection that read the frames (its address: an identity only).
    conn: *const Conn,
    /// Frames were queued for its writer task without waking it.
    queued: bool,
}

thread_local! {
    /// The [`Batch`] open on this thread, if one is.
    static OPEN: RefCell<Option<Open>> = const { RefCell::new(None) };
    /// The chain whose result this thread took last, while more of it are to come.
    static HOLD: RefCell<Option<Weak<Chain>>> = const { RefCell::new(None) };
}

/// Whether the frame just appended to `conn` is held back (no write, no wake-up of its
/// writer task): true once after [`Fired::take`] on this thread while that chain, of
/// this connection, still runs; the chain's end wakes the writer task.
pub(crate) fn hold_back(conn: &Conn) -> bool {
    let Some(chain) = HOLD.with(|h| h.borrow_mut().take()).and_then(|w| w.upgrade()) else {
        return false;
    };
    if !std::ptr::eq(&*chain.conn, conn) || !chain.open.load(Ordering::Acquire) {
        return false;
    }
    chain.held.store(true, Ordering::Release);
    true
}

/// Sends `reason` to `tx`: at once, or, while a [`Batch`] is open on this thread, when
/// it closes (in turn with the batch's other results).
pub(crate) fn deliver(tx: oneshot::Sender<Fired>, reason: ExitReason) {
    let rest = OPEN.with(|o| match o.borrow_mut().as_mut() {
        Some(open) => {
            open.deliveries.push((tx, reason));
            None
        }
        None => Some((tx, reason)),
    });
    if let Some((tx, reason)) = rest {
        let _ = tx.send(Fired::alone(reason));
    }
}

/// Whether a frame just queued for `conn`'s writer task ([`Conn::queue_frame`]) waits
/// for the end of the [`Batch`] open on this thread for `conn`'s frames instead of
/// waking the writer task: the batch's end writes what was queued
/// ([`Conn::flush`]).
pub(crate) fn queue_held(conn: &Conn) -> bool {
    OPEN.with(|o| match o.borrow_mut().as_mut() {
        Some(open) if std::ptr::eq(open.conn, conn) => {
            open.queued = true;
            true
        }
        _ => false,
    })
}

/// What a reader keeps between its reads: the results of its last batch not yet
/// handed over.
#[derive(Default)]
pub(crate) struct Leftover(Option<Weak<Chain>>);

/// The frames of one read being handled: results are collected and handed over when it
/// is dropped. Not `Send`: it cannot be held across an `.await` of a spawned task.
pub(crate) struct Batch<'a> {
    left: &'a mut Leftover,
    conn: &'a Arc<Conn>,
    _not_send: PhantomData<*const ()>,
}

impl<'a> Batch<'a> {
    /// Opens a batch on this thread for the frames `conn` read (a batch already open
    /// stays the one collecting).
    pub(crate) fn open(left: &'a mut Leftover, conn: &'a Arc<Conn>) -> Batch<'a> {
        OPEN.with(|o| {
            let mut o = o.borrow_mut();
            if o.is_none() {
                *o = Some(Open {
                    deliveries: Vec::new(),
                    conn: Arc::as_ptr(conn),
                    queued: false,
                });
            }
        });
        Batch {
            left,
            conn,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        let (mut now, queued) = match OPEN.with(|o| o.borrow_mut().take()) {
            Some(open) => (open.deliveries, open.queued),
            None => (Vec::new(), false),
        };
        if queued {
            // The answers queued while the read's frames were handled leave in one
            // write, from this thread when nothing else is writing.
            self.conn.flush();
        }
        // What the last batch has not handed over yet goes first.
        if let Some(old) = self.left.0.take().and_then(|w| w.upgrade()) {
            // A waiter held it up: it holds back no more frames either.
            old.open.store(false, Ordering::Release);
            old.release();
            let mut old = std::mem::take(&mut *old.items.lock());
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
                let chain = Arc::new(Chain {
                    items: Mutex::new(now),
                    conn: self.conn.clone(),
                    held: AtomicBool::new(false),
                    open: AtomicBool::new(true),
                });
                pass_on(&chain);
                self.left.0 = Some(Arc::downgrade(&chain));
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

    fn conn() -> Arc<Conn> {
        Conn::new(
            "peer@127.0.0.1",
            crate::convert::LocalId {
                name: Arc::from("me@127.0.0.1"),
                creation: 1,
            },
        )
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
        let (c, other) = (conn(), conn());
        let mut left = Leftover::default();
        let (mut rxs, mut txs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (tx, rx) = oneshot::channel();
            txs.push(tx);
            rxs.push(rx);
        }
        {
            let _b = Batch::open(&mut left, &c);
            for (i, tx) in txs.into_iter().enumerate() {
                deliver(tx, reason(i as i64));
            }
        }
        // Only the first has its result; taking it sends the second, and so on.
        assert!(rxs[1].try_recv().is_err());
        let first = rxs[0].try_recv().expect("first result sent");
        assert!(rxs[1].try_recv().is_err(), "second waits for the first");
        assert_eq!(int(first.take()), Some(0));
        // More are to come: the next frame this thread sends on `c` (not on another
        // connection) is held back, once.
        assert!(!hold_back(&other));
        assert!(!hold_back(&c), "the other connection's check used the hold up");
        let second = rxs[1].try_recv().expect("second result sent");
        assert!(rxs[2].try_recv().is_err());
        assert_eq!(int(second.take()), Some(1));
        assert!(hold_back(&c));
        assert!(!hold_back(&c), "once per result taken");
        // The last one: nothing more to come, nothing held back.
        assert_eq!(int(rxs[2].try_recv().expect("third").take()), Some(2));
        assert!(!hold_back(&c));
    }

    #[test]
    fn frames_queued_during_a_read_wait_for_its_end() {
        let (c, other) = (conn(), conn());
        let mut left = Leftover::default();
        assert!(!queue_held(&c), "no batch open");
        {
            let _b = Batch::open(&mut left, &c);
            assert!(queue_held(&c));
            assert!(!queue_held(&other), "only the reading connection's frames");
        }
        assert!(!queue_held(&c), "the batch is over");
    }

    #[test]
    fn a_gone_waiter_is_skipped_and_leftovers_go_first_next_time() {
        let c = conn();
        let mut left = Leftover::default();
        let (tx0, rx0) = oneshot::channel();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        drop(rx0);
        {
            let _b = Batch::open(&mut left, &c);
            deliver(tx0, reason(0));
            deliver(tx1, reason(1));
            deliver(tx2, reason(2));
        }
        // rx0 was gone: rx1 got its result; rx2 waits for it to be taken.
        assert!(rx2.try_recv().is_err());
        let unread = rx1.try_recv().expect("second result sent");
        // The next batch (even an empty one) sends what was left first, and the frames
        // the chain held back are no longer held back.
        drop(Batch::open(&mut left, &c));
        assert_eq!(int(rx2.try_recv().expect("leftover sent").take()), Some(2));
        // A result dropped unread still hands the rest on.
        drop(unread);
        let (tx4, rx4) = oneshot::channel();
        let (tx5, mut rx5) = oneshot::channel();
        {
            let _b = Batch::open(&mut left, &c);
            deliver(tx4, reason(4));
            deliver(tx5, reason(5));
        }
        drop(rx4);
        assert_eq!(int(rx5.try_recv().expect("handed on").take()), Some(5));
        // Outside a batch, a result is sent at once.
        let (tx3, mut rx3) = oneshot::channel();
        deliver(tx3, reason(3));
        assert_eq!(int(rx3.try_recv().expect("sent at once").take()), Some(3));
    }
}
