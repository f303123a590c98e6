//! A process's mailbox: ordinary messages plus a signal queue that is served first.
//!
//! Why hand-written rather than a tokio channel: a mailbox must cost nothing while its
//! process is idle (a million idle processes must fit in well under a kilobyte each, and
//! a tokio channel allocates a block of slots up front), it carries a second queue for
//! signals, and the receiver takes every waiting message in one lock by swapping
//! buffers, so a busy process pays one uncontended lock per batch, not per message.
//! A sender pays one short lock and wakes the receiver only when it is parked.
//!
//! The lock is a [`SpinLock`] (one atomic per critical section). The receiver's waker
//! stays in the slot between parks and is woken by reference, so a process that parks
//! again on the same task does not clone its waker each time: a park/wake cycle costs
//! the lock and the task's own notification, nothing more.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Waker;

use crate::exit::ExitReason;
use crate::pid::{Pid, Ref};
use crate::spin::SpinLock;

/// A signal: delivered ahead of ordinary messages.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// An exit signal turned into a message because the process traps exits. `link`:
    /// it travelled along a link (so `unlink(from)` removes it while still queued), as
    /// opposed to `exit/2`.
    Exit {
        from: Pid,
        reason: ExitReason,
        link: bool,
    },
    /// A monitor fired.
    Down(crate::signal::Down),
}

/// The signal queue, allocated on the first signal: most processes never trap an exit
/// or hold a monitor that fires, and an empty `VecDeque` inline would cost every idle
/// process 24 bytes more than this pointer. Once allocated it is kept.
#[derive(Default)]
// The box is the point: it keeps an unused queue to one pointer (see above).
#[allow(clippy::box_collection)]
pub(crate) struct Signals(Option<Box<VecDeque<Signal>>>);

impl Signals {
    fn push_back(&mut self, sig: Signal) {
        self.0.get_or_insert_with(Default::default).push_back(sig);
    }

    fn pop_front(&mut self) -> Option<Signal> {
        self.0.as_mut()?.pop_front()
    }

    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    fn retain(&mut self, keep: impl FnMut(&Signal) -> bool) {
        if let Some(q) = self.0.as_mut() {
            q.retain(keep);
        }
    }
}

pub(crate) struct Slot<M> {
    msgs: VecDeque<M>,
    signals: Signals,
    /// The receiver's last waker; kept between parks (see `parked`).
    waker: Option<Waker>,
    /// The receiver found nothing and waits for `waker` to be woken.
    parked: bool,
    closed: bool,
    /// Messages ever accepted (for `messages_in` and the mailbox length).
    received: u64,
}

/// Flag bits shared between senders and the receiving process.
pub(crate) const HAS_SIGNAL: u8 = 1;
/// The process has been told to die; its next `recv` yields so its task sees the kill.
pub(crate) const KILLED: u8 = 2;

pub(crate) struct Mailbox<M> {
    slot: SpinLock<Slot<M>>,
    pub(crate) flags: AtomicU8,
}

/// What the receiver found.
pub(crate) enum Taken {
    Signal(Signal),
    Batch,
    /// Nothing queued: the receiver is parked (or the mailbox is closed, which only
    /// happens after its process ended).
    Empty,
}

impl<M> Mailbox<M> {
    pub(crate) fn new() -> Self {
        Mailbox {
            slot: SpinLock::new(Slot {
                msgs: VecDeque::new(),
                signals: Signals::default(),
                waker: None,
                parked: false,
                closed: false,
                received: 0,
            }),
            flags: AtomicU8::new(0),
        }
    }

    /// Queues a message; gives it back when the process has exited.
    #[inline]
    pub(crate) fn push(&self, m: M) -> Result<(), M> {
        let mut s = self.slot.lock();
        if s.closed {
            return Err(m);
        }
        s.msgs.push_back(m);
        s.received += 1;
        s.unpark();
        Ok(())
    }

    /// Queues a signal; false when the process has exited.
    pub(crate) fn push_signal(&self, sig: Signal) -> bool {
        let mut s = self.slot.lock();
        if s.closed {
            return false;
        }
        s.signals.push_back(sig);
        self.flags.fetch_or(HAS_SIGNAL, Ordering::Release);
        s.unpark();
        true
    }

    /// Wakes the receiver if it is parked (used after a kill so its task sees it).
    pub(crate) fn wake(&self) {
        self.slot.lock().unpark();
    }

    /// Takes a pending signal, or every pending message into `buf` (which must be empty),
    /// or parks the receiver with `waker`.
    #[inline]
    pub(crate) fn take(&self, buf: &mut VecDeque<M>, waker: &Waker) -> Taken {
        let mut s = self.slot.lock();
        // Polled again (woken, or for another reason such as a timeout): not parked
        // unless this call finds nothing below.
        s.parked = false;
        if let Some(sig) = s.signals.pop_front() {
            if s.signals.is_empty() {
                self.flags.fetch_and(!HAS_SIGNAL, Ordering::Relaxed);
            }
            return Taken::Signal(sig);
        }
        if !s.msgs.is_empty() {
            std::mem::swap(&mut s.msgs, buf);
            return Taken::Batch;
        }
        if s.closed {
            return Taken::Empty;
        }
        s.parked = true;
        match &s.waker {
            Some(w) if w.will_wake(waker) => Taken::Empty,
            _ => {
                let old = s.waker.replace(waker.clone());
                drop(s);
                // Dropped outside the lock: a waker's drop may run arbitrary code.
                drop(old);
                Taken::Empty
            }
        }
    }

    /// Takes a pending signal without parking.
    pub(crate) fn take_signal(&self) -> Option<Signal> {
        let mut s = self.slot.lock();
        let sig = s.signals.pop_front();
        if s.signals.is_empty() {
            self.flags.fetch_and(!HAS_SIGNAL, Ordering::Relaxed);
        }
        sig
    }

    /// Removes pending `DOWN` signals of monitor `r`; true if one was removed.
    pub(crate) fn flush_down(&self, r: Ref) -> bool {
        let mut s = self.slot.lock();
        let before = s.signals.len();
        s.signals
            .retain(|sig| !matches!(sig, Signal::Down(d) if d.monitor == r));
        before != s.signals.len()
    }

    /// Messages accepted so far.
    pub(crate) fn received(&self) -> u64 {
        self.slot.lock().received
    }

    /// Closes the mailbox and hands back what was still queued, to be dropped by the
    /// caller outside the lock (dropping a queued call wakes its caller).
    pub(crate) fn close(&self) -> (VecDeque<M>, Signals, Option<Waker>) {
        let mut s = self.slot.lock();
        s.closed = true;
        s.parked = false;
        (
            std::mem::take(&mut s.msgs),
            std::mem::take(&mut s.signals),
            s.waker.take(),
        )
    }

    /// Removes pending link exit signals (`Signal::Exit` with `link`) from `from`, for
    /// `unlink`; `exit/2` signals stay. True if one was removed.
    pub(crate) fn flush_link_exit(&self, from: Pid) -> bool {
        let mut s = self.slot.lock();
        let before = s.signals.len();
        s.signals
            .retain(|sig| !matches!(sig, Signal::Exit { from: f, link: true, .. } if *f == from));
        before != s.signals.len()
    }
}

impl<M> Slot<M> {
    /// Wakes a parked receiver. Called under the lock: waking a task only marks it
    /// runnable and queues it, and taking the waker out instead would cost the
    /// receiver a clone on its next park.
    #[inline]
    fn unpark(&mut self) {
        if self.parked {
            self.parked = false;
            if let Some(w) = &self.waker {
                w.wake_by_ref();
            }
        }
    }
}
