//! A process's mailbox: ordinary messages plus a signal queue that is served first.
//!
//! Why hand-written rather than a tokio channel: a mailbox must cost nothing while its
//! process is idle (a million idle processes must fit in well under a kilobyte each, and
//! a tokio channel allocates a block of slots up front), it carries a second queue for
//! signals, and the receiver takes every waiting message in one lock by swapping
//! buffers, so a busy process pays one uncontended lock per batch, not per message.
//! A sender pays one short lock and wakes the receiver only when it is parked.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Waker;

use parking_lot::Mutex;

use crate::exit::ExitReason;
use crate::pid::{Pid, Ref};

/// A signal: delivered ahead of ordinary messages.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// An exit signal turned into a message because the process traps exits.
    Exit { from: Pid, reason: ExitReason },
    /// A monitor fired.
    Down(crate::signal::Down),
}

pub(crate) struct Slot<M> {
    msgs: VecDeque<M>,
    signals: VecDeque<Signal>,
    waker: Option<Waker>,
    closed: bool,
    /// Messages ever accepted (for `messages_in` and the mailbox length).
    received: u64,
}

/// Flag bits shared between senders and the receiving process.
pub(crate) const HAS_SIGNAL: u8 = 1;
/// The process has been told to die; its next `recv` yields so the abort lands.
pub(crate) const KILLED: u8 = 2;

pub(crate) struct Mailbox<M> {
    slot: Mutex<Slot<M>>,
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
            slot: Mutex::new(Slot {
                msgs: VecDeque::new(),
                signals: VecDeque::new(),
                waker: None,
                closed: false,
                received: 0,
            }),
            flags: AtomicU8::new(0),
        }
    }

    /// Queues a message; gives it back when the process has exited.
    #[inline]
    pub(crate) fn push(&self, m: M) -> Result<(), M> {
        let waker = {
            let mut s = self.slot.lock();
            if s.closed {
                return Err(m);
            }
            s.msgs.push_back(m);
            s.received += 1;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues a signal; false when the process has exited.
    pub(crate) fn push_signal(&self, sig: Signal) -> bool {
        let waker = {
            let mut s = self.slot.lock();
            if s.closed {
                return false;
            }
            s.signals.push_back(sig);
            self.flags.fetch_or(HAS_SIGNAL, Ordering::Release);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Wakes the receiver if it is parked (used after a kill so the abort lands).
    pub(crate) fn wake(&self) {
        let w = self.slot.lock().waker.take();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Takes a pending signal, or every pending message into `buf` (which must be empty),
    /// or parks the receiver with `waker`.
    #[inline]
    pub(crate) fn take(&self, buf: &mut VecDeque<M>, waker: &Waker) -> Taken {
        let mut s = self.slot.lock();
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
        match &s.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => s.waker = Some(waker.clone()),
        }
        Taken::Empty
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
    pub(crate) fn close(&self) -> (VecDeque<M>, VecDeque<Signal>) {
        let mut s = self.slot.lock();
        s.closed = true;
        s.waker = None;
        (std::mem::take(&mut s.msgs), std::mem::take(&mut s.signals))
    }
}
