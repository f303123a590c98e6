//! The waiting callers of a [`ResourcePool`](super::ResourcePool) and the hand-off of
//! a resource to them, without a channel per caller.
//!
//! A queued caller is an entry (its id, what the pool needs of it, and its task's
//! [`Waker`]). A hand-off moves the caller's entry out of the queue and puts the
//! delivery in the caller's *slot* (`delivered`, keyed by id), both under the pool's
//! lock, then wakes the caller, which takes its slot under the lock. So "not queued
//! any more" always means "the delivery is in its slot": a caller that gives up (its
//! give-up future completed) or goes away (its future dropped) looks under the lock,
//! leaves the queue if it is still there, and otherwise takes the delivery from its
//! slot (and keeps it, or gives it back as cancelled). No resource is lost between the
//! pool and a caller; the loom models below check it on the real [`Waiting`] with one
//! resource and two callers, one of them giving up or going away at any point.
//!
//! This replaces a oneshot channel per queued caller (its allocation, its atomic state
//! and its drop): the lock the hand-off holds anyway guards the slot.
//!
//! Every method runs under the pool's lock and calls no user code.

use std::collections::VecDeque;
use std::task::Waker;

/// A queued caller.
pub(super) struct Entry<W> {
    /// The caller's id (its slot's key).
    pub(super) id: u64,
    /// What the pool keeps of it.
    pub(super) waiter: W,
    waker: Waker,
}

/// The queue of waiting callers (first in, first out) and the deliveries not taken yet.
pub(super) struct Waiting<W, D> {
    queue: VecDeque<Entry<W>>,
    /// Deliveries by caller id, put by [`Waiting::deliver`], taken by
    /// [`Waiting::take`]. As many as hand-offs whose caller has not run yet (at most
    /// the pool's size, plus the callers a stop told).
    delivered: Vec<(u64, D)>,
}

impl<W, D> Waiting<W, D> {
    /// No caller waiting.
    pub(super) fn new() -> Self {
        Waiting {
            queue: VecDeque::new(),
            delivered: Vec::new(),
        }
    }

    /// Queues caller `id`, to be woken through `waker`.
    pub(super) fn push(&mut self, id: u64, waiter: W, waker: Waker) {
        self.queue.push_back(Entry { id, waiter, waker });
    }

    /// Callers queued.
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nobody is queued.
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes the first queued caller out of the queue, to be served with
    /// [`Waiting::deliver`] or put back with [`Waiting::push_front`].
    pub(super) fn pop_front(&mut self) -> Option<Entry<W>> {
        self.queue.pop_front()
    }

    /// Puts a caller taken by [`Waiting::pop_front`] back first in the queue (nothing
    /// could be given to it).
    pub(super) fn push_front(&mut self, e: Entry<W>) {
        self.queue.push_front(e);
    }

    /// Puts `d` in the slot of the caller `e` (taken out of the queue by
    /// [`Waiting::pop_front`]) and wakes it.
    pub(super) fn deliver(&mut self, e: Entry<W>, d: D) {
        self.delivered.push((e.id, d));
        e.waker.wake();
    }

    /// Caller `id`'s delivery, if it was made (taken out of its slot).
    pub(super) fn take(&mut self, id: u64) -> Option<D> {
        let pos = self.delivered.iter().position(|(i, _)| *i == id)?;
        Some(self.delivered.swap_remove(pos).1)
    }

    /// Caller `id` gives up: true if it was still queued (and now is not). False means
    /// its delivery is in its slot (see [`Waiting::take`]).
    pub(super) fn leave(&mut self, id: u64) -> bool {
        match self.queue.iter().position(|e| e.id == id) {
            Some(pos) => {
                self.queue.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Caller `id`, still queued, is to be woken through `waker` from now on (its task
    /// was polled with another waker).
    pub(super) fn rewake(&mut self, id: u64, waker: &Waker) {
        if let Some(e) = self.queue.iter_mut().find(|e| e.id == id) {
            if !e.waker.will_wake(waker) {
                e.waker.clone_from(waker);
            }
        }
    }

    /// Delivers `to_each(waiter)` to every queued caller, and wakes it (the pool stops).
    pub(super) fn deliver_all(&mut self, mut to_each: impl FnMut(W) -> D) {
        while let Some(e) = self.queue.pop_front() {
            self.delivered.push((e.id, to_each(e.waiter)));
            e.waker.wake();
        }
    }

    /// Deliveries not taken yet.
    #[cfg(any(test, orbit_loom))]
    pub(super) fn undelivered(&self) -> usize {
        self.delivered.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waker() -> Waker {
        futures::task::noop_waker()
    }

    #[test]
    fn a_delivery_waits_in_its_slot_until_its_caller_takes_it() {
        let mut w: Waiting<&str, u32> = Waiting::new();
        w.push(1, "a", waker());
        w.push(2, "b", waker());
        // Nothing to give: the caller goes back first.
        let e = w.pop_front().expect("a caller");
        assert_eq!((e.id, e.waiter), (1, "a"));
        w.push_front(e);
        assert_eq!(w.len(), 2);
        let e = w.pop_front().expect("a caller");
        assert_eq!(e.id, 1, "still first");
        w.deliver(e, 10);
        assert_eq!(w.len(), 1);
        // Served, so no longer queued: leaving finds its delivery instead.
        assert!(!w.leave(1));
        assert_eq!(w.take(2), None);
        assert_eq!(w.take(1), Some(10));
        assert_eq!(w.take(1), None, "taken once");
        assert!(w.leave(2));
        assert!(w.is_empty());
        assert_eq!(w.undelivered(), 0);
    }

    #[test]
    fn a_hand_off_wakes_the_callers_latest_waker() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        struct Count(AtomicUsize);
        impl futures::task::ArcWake for Count {
            fn wake_by_ref(me: &Arc<Self>) {
                me.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let first = Arc::new(Count(AtomicUsize::new(0)));
        let second = Arc::new(Count(AtomicUsize::new(0)));
        let mut w: Waiting<(), ()> = Waiting::new();
        w.push(7, (), futures::task::waker(first.clone()));
        w.rewake(7, &futures::task::waker(second.clone()));
        let e = w.pop_front().expect("a caller");
        w.deliver(e, ());
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        // A stop tells every caller still queued.
        w.push(8, (), futures::task::waker(first.clone()));
        w.push(9, (), futures::task::waker(first.clone()));
        w.deliver_all(|()| ());
        assert_eq!(first.0.load(Ordering::SeqCst), 2);
        assert!(w.is_empty());
        assert_eq!(w.undelivered(), 3);
    }
}

#[cfg(all(test, orbit_loom))]
mod loom_tests {
    //! One resource, two callers, on the real [`Waiting`] under the crate's `Mutex`
    //! (loom's here), with the pool's protocol around it: a check-in hands the
    //! resource to the first queued caller (into its slot) or makes it idle; a caller
    //! takes an idle one, or queues and looks at its slot, and after a few looks gives
    //! up: it leaves the queue or, already served, takes its delivery (and uses it, a
    //! timeout racing the hand-off, or gives it back, a caller going away). The
    //! model's ledger checks the resource is never lost nor held twice, and that no
    //! caller or delivery is left behind.
    use super::*;
    use crate::sync::{Arc, Mutex};

    struct Pool {
        idle: Option<usize>,
        waiting: Waiting<(), usize>,
        next_id: u64,
        /// 1 while the resource is out (with a caller, or in a slot).
        out: usize,
    }

    type Shared = Arc<Mutex<Pool>>;

    /// Check-in: to the first queued caller, else idle.
    fn give_back(p: &Shared, r: usize) {
        let mut st = p.lock();
        assert_eq!(st.out, 1, "a resource returned that was not out");
        st.out = 0;
        match st.waiting.pop_front() {
            Some(e) => {
                st.out = 1;
                st.waiting.deliver(e, r);
            }
            None => st.idle = Some(r),
        }
    }

    /// A caller: checks out, looking at its slot up to `patience` times, then gives up
    /// (a timeout, or its future dropped: both look the same way, and a resource found
    /// in the slot then is used or given back, which returns it to the pool either way).
    fn caller(p: &Shared, patience: usize) {
        let id = {
            let mut st = p.lock();
            if let Some(r) = st.idle.take() {
                assert_eq!(st.out, 0, "resource handed out twice");
                st.out = 1;
                drop(st);
                give_back(p, r);
                return;
            }
            let id = st.next_id;
            st.next_id += 1;
            st.waiting.push(id, (), futures::task::noop_waker());
            id
        };
        for _ in 0..patience {
            let got = p.lock().waiting.take(id);
            if let Some(r) = got {
                give_back(p, r);
                return;
            }
            crate::sync::yield_now();
        }
        let found = {
            let mut st = p.lock();
            if st.waiting.leave(id) {
                None
            } else {
                let d = st.waiting.take(id);
                assert!(d.is_some(), "not queued, yet nothing in its slot");
                d
            }
        };
        if let Some(r) = found {
            give_back(p, r);
        }
    }

    fn check_end(p: &Shared) {
        let st = p.lock();
        assert_eq!(st.out, 0, "resource still out");
        assert!(st.waiting.is_empty(), "a caller left queued");
        assert_eq!(st.waiting.undelivered(), 0, "a delivery left in a slot");
        assert_eq!(st.idle, Some(0), "resource lost");
    }

    fn new_pool() -> Shared {
        Arc::new(Mutex::new(Pool {
            idle: Some(0),
            waiting: Waiting::new(),
            next_id: 1,
            out: 0,
        }))
    }

    /// Two patient callers: both served, the hand-off through the slot included.
    #[test]
    fn loom_resource_handoff_two_callers() {
        loom::model(|| {
            let p = new_pool();
            let p2 = p.clone();
            let t = loom::thread::spawn(move || caller(&p2, 3));
            caller(&p, 3);
            t.join().unwrap();
            check_end(&p);
        });
    }

    /// One caller gives up at once (or goes away) while the other checks in: the
    /// hand-off may fill the slot of a caller that is leaving; the resource still
    /// comes back.
    #[test]
    fn loom_resource_handoff_races_give_up() {
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
