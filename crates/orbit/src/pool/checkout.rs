//! The checkout state machine of a [`Pool`](super::Pool): the idle workers, the
//! first-in first-out queue of waiting callers, and the hand-off of a returned worker
//! to the first waiter still there.
//!
//! It knows workers only by slot index and waiters only by id and reply channel `Tx`,
//! so the same code runs in the pool (under its state lock, `Tx` a tokio oneshot
//! sender) and in the loom model below (`Tx` a loom channel), which explores every
//! interleaving of concurrent checkout, check-in, hand-off and waiter cancellation
//! (timeout or dropped future) on a pool of one worker with two callers, and checks
//! that the worker is never lost, never held twice, and that no waiter is left queued.
//! Run it with `scripts/loom` (tests `loom_pool_*`, a few seconds).
//!
//! Every method runs under the pool's one lock; none blocks, allocates on the fast
//! path (idle worker available), or calls user code.

use std::collections::VecDeque;

use tokio::time::Instant;

/// A caller waiting for a worker.
pub(super) struct Waiter<Tx> {
    pub(super) id: u64,
    pub(super) tx: Tx,
    pub(super) since: Instant,
}

/// Idle workers (slot indices) and waiting callers.
pub(super) struct Queue<Tx> {
    idle: VecDeque<usize>,
    waiting: VecDeque<Waiter<Tx>>,
    next_id: u64,
    lifo: bool,
}

/// Where [`Queue::hand_off`] put a returned worker.
pub(super) enum HandOff {
    /// Delivered to a waiter that had queued at `since`.
    Waiter { since: Instant },
    /// Nobody was waiting; the slot is the caller's to keep idle or dismiss.
    Nobody(usize),
}

impl<Tx> Queue<Tx> {
    /// An empty queue; `lifo` puts returned workers at the front of the idle list.
    pub(super) fn new(lifo: bool) -> Self {
        Queue {
            idle: VecDeque::new(),
            waiting: VecDeque::new(),
            next_id: 1,
            lifo,
        }
    }

    /// Takes an idle worker, if any.
    pub(super) fn pop_idle(&mut self) -> Option<usize> {
        self.idle.pop_front()
    }

    /// Makes a worker idle (after [`hand_off`](Self::hand_off) found nobody).
    pub(super) fn push_idle(&mut self, slot: usize) {
        if self.lifo {
            self.idle.push_front(slot);
        } else {
            self.idle.push_back(slot);
        }
    }

    /// Adds a newly started worker at the back of the idle list.
    pub(super) fn push_new(&mut self, slot: usize) {
        self.idle.push_back(slot);
    }

    /// Forgets an idle worker (it exited).
    pub(super) fn remove_idle(&mut self, slot: usize) {
        self.idle.retain(|&j| j != slot);
    }

    /// Queues a caller; returns its waiter id.
    pub(super) fn enqueue(&mut self, tx: Tx, since: Instant) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.waiting.push_back(Waiter { id, tx, since });
        id
    }

    /// A waiter gave up: true if it was still queued (and now is not). False means a
    /// worker was already sent to it, which its receiver must give back.
    pub(super) fn cancel(&mut self, id: u64) -> bool {
        match self.waiting.iter().position(|w| w.id == id) {
            Some(pos) => {
                self.waiting.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Offers the returned worker in `slot` to the waiters, first in first out.
    /// `send(tx, slot)` delivers it (`Ok`) or, when that waiter has gone, undoes the
    /// delivery and gives the slot back (`Err`), and the next waiter is tried.
    pub(super) fn hand_off(
        &mut self,
        mut slot: usize,
        mut send: impl FnMut(Tx, usize) -> Result<(), usize>,
    ) -> HandOff {
        while let Some(w) = self.waiting.pop_front() {
            match send(w.tx, slot) {
                Ok(()) => return HandOff::Waiter { since: w.since },
                Err(back) => slot = back,
            }
        }
        HandOff::Nobody(slot)
    }

    /// Removes every waiter (the pool stops) and forgets the idle workers.
    pub(super) fn close(&mut self) -> Vec<Waiter<Tx>> {
        self.idle.clear();
        self.waiting.drain(..).collect()
    }

    /// Idle workers.
    pub(super) fn idle(&self) -> usize {
        self.idle.len()
    }

    /// Waiting callers.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(all(test, orbit_loom))]
mod loom_tests {
    //! A pool of one worker (slot 0), two callers, on the real [`Queue`] under the
    //! crate's `Mutex` (loom's here). The model's ledger (who holds the slot) and its
    //! one-shot channel are the model's own; the channel has tokio oneshot's semantics:
    //! `send` fails and returns the value when the receiver is gone, and a value still
    //! in the channel when the receiver goes is returned to the pool (the `Lease`'s
    //! `Drop` in the real pool).
    use super::*;
    use crate::sync::{Arc, Mutex};

    struct Chan {
        value: Option<usize>,
        rx_gone: bool,
    }

    type Tx = Arc<Mutex<Chan>>;

    struct Pool {
        q: Queue<Tx>,
        /// 1 while slot 0 is leased (to a caller, or in a waiter's channel), else 0.
        in_use: usize,
    }

    type Shared = Arc<Mutex<Pool>>;

    /// Check-in, as `Shared::checkin` + `release`: the worker goes to the first waiter
    /// still there (leased to it before the send, unleased if the send fails, as
    /// `Shared::lease`/`unlease`), else back to the idle list.
    fn give_back(p: &Shared, slot: usize) {
        let mut guard = p.lock();
        let st = &mut *guard;
        assert_eq!(st.in_use, 1, "a worker returned that was not out");
        st.in_use = 0;
        let in_use = &mut st.in_use;
        let handed = st.q.hand_off(slot, |tx, s| {
            assert_eq!(*in_use, 0, "worker handed out twice");
            *in_use = 1;
            let mut c = tx.lock();
            if c.rx_gone {
                *in_use = 0;
                return Err(s);
            }
            c.value = Some(s);
            Ok(())
        });
        if let HandOff::Nobody(s) = handed {
            st.q.push_idle(s);
        }
    }

    /// A caller: checks out (waiting up to `patience` looks, then giving up as on a
    /// timeout), uses the worker, returns it.
    fn caller(p: &Shared, patience: usize) {
        let (rx, id): (Tx, u64) = {
            let mut st = p.lock();
            if let Some(slot) = st.q.pop_idle() {
                assert_eq!(st.in_use, 0, "worker handed out twice");
                st.in_use = 1;
                drop(st);
                give_back(p, slot);
                return;
            }
            let rx = Arc::new(Mutex::new(Chan {
                value: None,
                rx_gone: false,
            }));
            let id = st.q.enqueue(rx.clone(), Instant::now());
            (rx, id)
        };
        for _ in 0..patience {
            let got = rx.lock().value.take();
            if let Some(slot) = got {
                give_back(p, slot);
                return;
            }
            crate::sync::yield_now();
        }
        // Timeout, as `Pool::wait`: the receiver goes first (a worker already in it
        // is returned: the lease's Drop), then the waiter leaves the queue.
        let left = {
            let mut c = rx.lock();
            c.rx_gone = true;
            c.value.take()
        };
        if let Some(slot) = left {
            give_back(p, slot);
        }
        p.lock().q.cancel(id);
    }

    fn check_end(p: &Shared) {
        let st = p.lock();
        assert_eq!(st.in_use, 0, "worker still out");
        assert_eq!(st.q.waiting(), 0, "a waiter left queued");
        assert_eq!(st.q.idle(), 1, "worker lost");
    }

    fn new_pool() -> Shared {
        let mut q = Queue::new(true);
        q.push_new(0);
        Arc::new(Mutex::new(Pool { q, in_use: 0 }))
    }

    /// Two callers, one waits patiently: both are served, nothing lost.
    #[test]
    fn loom_pool_checkout_checkin_handoff() {
        loom::model(|| {
            let p = new_pool();
            let p2 = p.clone();
            let t = loom::thread::spawn(move || caller(&p2, 3));
            caller(&p, 3);
            t.join().unwrap();
            check_end(&p);
        });
    }

    /// One caller gives up at once (its timeout fires) while the other checks in:
    /// the hand-off may reach a departed waiter; the worker still comes back.
    #[test]
    fn loom_pool_cancel_races_handoff() {
        loom::model(|| {
            let p = new_pool();
            let p2 = p.clone();
            let t = loom::thread::spawn(move || caller(&p2, 1));
            caller(&p, 1);
            t.join().unwrap();
            check_end(&p);
        });
    }
}
