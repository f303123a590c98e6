//! A process's mailbox: ordinary messages plus a signal queue that is served first.
//!
//! Why hand-written rather than a tokio channel: a mailbox must cost nothing while its
//! process is idle (a million idle processes must fit in well under a kilobyte each, and
//! a tokio channel allocates a block of slots up front), it carries a second queue for
//! signals, and the receiver takes every waiting message in one lock by swapping
//! buffers, so a busy process pays one uncontended lock per batch, not per message.
//! A sender pays one short lock and wakes the receiver only when it is parked.
//!
//! # Contract
//!
//! - Messages from one sender are received in the order it sent them; signals are
//!   received before messages, in the order they were queued.
//! - A push either queues the message (and then the receiver gets it, or it is handed
//!   back by [`Mailbox::close`] to be dropped by its caller) or, once the mailbox is
//!   closed, gives it back to the sender: nothing is lost or leaked.
//! - A receiver that parks is woken by the next push or signal after it parked.
//! - The spin-locked sections ([`SpinLock`], one atomic per section) do a bounded
//!   handful of moves: no allocation or deallocation, no waker call (`clone`, `wake`,
//!   `drop`), no user code (no message or signal is dropped under the lock). Buffers
//!   are allocated by the sender before it takes the lock, wakers are taken out under
//!   the lock and woken after it, and everything replaced is dropped after it.
//!
//! Selective receive (`Context::recv_match`) uses two more operations: `unget_signals`
//! puts signals it took and did not match back at the front of the signal queue (ahead
//! of any queued since; the queue is swapped, never grown, under the lock), and
//! `take_messages` takes messages while leaving signals queued, refusing to park when
//! the signal count differs from the one the caller has seen (so a signal arriving in
//! between wakes nobody in vain). `loom_mailbox_selective_receive_races_a_signal`
//! models them against a racing signal.
//!
//! # Buffers and what they retain
//!
//! Senders append to the mailbox's tail chunk (a `VecDeque`) while it has room. When it
//! is full, the sender allocates a chunk twice as large (up to `max_chunk`, 64 KiB of
//! messages) outside the lock and, under it, links the full chunk into a list and swaps
//! the new one in; nothing is copied or reallocated under the lock. The receiver takes
//! the whole chain in one section ([`Mailbox::take`] into a [`Batch`]) and hands back
//! its drained buffer in exchange, so a steady stream reuses two buffers and allocates
//! nothing.
//!
//! After a burst the capacity shrinks back: (1) when the receiver parks, both the
//! mailbox's empty buffer and its own keep at most `retain` slots (2 KiB of messages,
//! at least 8 slots) and the signal queue at most 16, so a parked process retains at
//! most 2 × `retain` message slots however large the burst was; (2) while it stays busy,
//! it hands back a drained buffer only if its capacity is at most max(`retain`, 2 × the
//! previous batch), so a busy mailbox keeps at most 2 × max(`retain`, 2 × recent batch,
//! bounded by `max_chunk`) slots besides the chunks that hold queued messages.
//!
//! The receiver's waker is taken out by the sender that wakes it (a wake by value costs
//! a tokio task what a wake by reference does). So that parking again never clones a
//! waker under the lock, the receiver keeps a spare clone of its own waker in its
//! [`Batch`] and moves it in when it parks: one waker clone per park/wake cycle, done
//! outside the lock.
//!
//! # Model checking
//!
//! The mailbox's state sits behind the real [`SpinLock`], whose atomic and cell are
//! [`crate::sync`]'s, so under `RUSTFLAGS="--cfg orbit_loom"` these models (in
//! `loom_tests.rs`) run the real `push`, `push_signal`, `take`, `take_signal`,
//! `flush_down`, `flush_link_exit`, `wake` and `close`, with chunks of 1 and 2 slots
//! and a retained capacity of 1 so that growth, the chain of full chunks and shedding
//! are on the path. A receiver runs under a `block_on` that parks its loom thread, so
//! a lost wakeup leaves every thread blocked and loom reports a deadlock.
//! - `loom_mailbox_two_senders_parked_receiver`: two senders, two messages each:
//!   every message arrives once, in order per sender.
//! - `loom_mailbox_signal_wakes_parked_receiver`: a signal and a message race a
//!   parked receiver: both arrive.
//! - `loom_mailbox_wake_and_push_race_parked_receiver`: `wake` (as after a kill) may
//!   take the waker first; the receiver parks again on its spare and the push still
//!   wakes it.
//! - `loom_mailbox_flush_races_signals`: `flush_down` and `flush_link_exit` race the
//!   DOWN and link EXIT they target: each is removed (and the call says so) or
//!   delivered, exactly once; `HAS_SIGNAL` is set exactly when signals are queued.
//! - `loom_mailbox_close_races_send`: `close` races two sends (the second grows the
//!   chunk): each accepted message is handed back by `close`, in order, each refused
//!   one comes back to its sender, and every message is dropped exactly once.
//!
//! `scripts/loom` runs them with every other model of the crate (preemption bound 3;
//! 38 to 32,702 interleavings each, about 5 s together on a loaded 2-core machine,
//! after a build of under a minute); only these: `RUSTFLAGS="--cfg orbit_loom" cargo
//! test -p orbit --lib --release --target-dir target/loom -- mailbox::loom_tests`.
//! Checked to fail: a push that grows the chunk
//! without waking, a signal push that grows the queue without waking, a `take` that
//! parks without registering a waker when none is left (each a deadlock), a `close`
//! that forgets the chain of full chunks (the handed-back assertion), a flush that
//! leaves `HAS_SIGNAL` set on an empty queue, and a lock that does not exclude or
//! releases with `Relaxed` (loom's cell tracking). Not modelled: the `flags` byte's
//! own memory ordering (a plain `std` atomic, a hint the receiver re-checks under the
//! lock; loom sees its accesses as sequentially consistent), and the real `Context`
//! and tokio waker (the models call the mailbox directly).

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

/// Slots of the first message buffer a mailbox allocates.
#[cfg(not(orbit_loom))]
const FIRST_CHUNK: usize = 4;
/// Under loom: tiny chunks, so that the models go through growth and the chain.
#[cfg(orbit_loom)]
const FIRST_CHUNK: usize = 1;

/// The largest chunk senders allocate, in slots.
#[cfg(not(orbit_loom))]
const fn max_chunk<M>() -> usize {
    let size = std::mem::size_of::<M>();
    // Zero-sized messages take no room: no limit.
    let n = match (64usize << 10).checked_div(size) {
        Some(n) => n,
        None => usize::MAX,
    };
    if n < 64 {
        64
    } else {
        n
    }
}
#[cfg(orbit_loom)]
const fn max_chunk<M>() -> usize {
    2
}

/// The most slots a parked mailbox keeps in each of its two message buffers.
#[cfg(not(orbit_loom))]
pub(crate) const fn retain<M>() -> usize {
    let size = std::mem::size_of::<M>();
    // Zero-sized messages take no room: no limit.
    let n = match (2usize << 10).checked_div(size) {
        Some(n) => n,
        None => usize::MAX,
    };
    if n < 8 {
        8
    } else {
        n
    }
}
#[cfg(orbit_loom)]
pub(crate) const fn retain<M>() -> usize {
    1
}

/// The most slots an empty signal queue keeps.
const SIGNAL_RETAIN: usize = 16;

/// The signal queue, allocated on the first signal: most processes never trap an exit
/// or hold a monitor that fires, and an empty `VecDeque` inline would cost every idle
/// process 24 bytes more than this pointer. Freed again when it drains with more than
/// `SIGNAL_RETAIN` slots.
#[derive(Default)]
// The box is the point: it keeps an unused queue to one pointer (see above).
#[allow(clippy::box_collection)]
pub(crate) struct Signals(Option<Box<VecDeque<Signal>>>);

impl Signals {
    /// True when a push would not allocate.
    fn has_room(&self) -> bool {
        self.0.as_ref().is_some_and(|q| q.len() < q.capacity())
    }

    fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.capacity())
    }

    /// Queues `sig` if that does not allocate; gives it back otherwise.
    fn push_back(&mut self, sig: Signal) -> Result<(), Signal> {
        match self.0.as_mut() {
            Some(q) if q.len() < q.capacity() => {
                q.push_back(sig);
                Ok(())
            }
            _ => Err(sig),
        }
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

    /// Takes out an empty queue that grew past `SIGNAL_RETAIN` (to be dropped by the
    /// caller after the lock).
    // The boxed queue itself is what is handed out (see `Signals`).
    #[allow(clippy::box_collection)]
    fn shed(&mut self) -> Option<Box<VecDeque<Signal>>> {
        match &self.0 {
            Some(q) if q.is_empty() && q.capacity() > SIGNAL_RETAIN => self.0.take(),
            _ => None,
        }
    }
}

/// A full chunk of messages waiting for the receiver, in a singly linked list.
struct Chunk<M> {
    msgs: VecDeque<M>,
    next: Option<Box<Chunk<M>>>,
}

impl<M> Chunk<M> {
    fn empty() -> Box<Self> {
        Box::new(Chunk {
            msgs: VecDeque::new(),
            next: None,
        })
    }
}

impl<M> Drop for Chunk<M> {
    fn drop(&mut self) {
        // Iteratively, so that a long chain cannot overflow the stack.
        let mut next = self.next.take();
        while let Some(mut c) = next {
            next = c.next.take();
        }
    }
}

pub(crate) struct Slot<M> {
    /// The chunk senders append to, never beyond its capacity.
    msgs: VecDeque<M>,
    /// Full chunks not yet taken, newest first (empty whenever `msgs` is empty).
    full: Option<Box<Chunk<M>>>,
    signals: Signals,
    /// The receiver's waker while it is parked (a sender takes it out to wake it).
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

/// The receiver's side: the messages of the batches it took, in order, and a spare
/// clone of its waker (see the module docs).
pub(crate) struct Batch<M> {
    /// The chunk being drained.
    cur: VecDeque<M>,
    /// The chunks after `cur`, oldest first.
    rest: Option<Box<Chunk<M>>>,
    /// Messages in the last batch taken.
    last: usize,
    spare: Option<Waker>,
}

impl<M> Default for Batch<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> Batch<M> {
    /// An empty batch; allocates nothing.
    pub(crate) const fn new() -> Self {
        Batch {
            cur: VecDeque::new(),
            rest: None,
            last: 0,
            spare: None,
        }
    }

    /// True when no taken message is left.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.cur.is_empty() && self.rest.is_none()
    }

    /// Puts a message back at the front (a selective receive skipping it).
    pub(crate) fn push_front(&mut self, m: M) {
        self.cur.push_front(m);
    }

    /// The next taken message.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<M> {
        match self.cur.pop_front() {
            Some(m) => Some(m),
            None => self.next_chunk(),
        }
    }

    #[cold]
    fn next_chunk(&mut self) -> Option<M> {
        let mut node = self.rest.take()?;
        self.rest = node.next.take();
        // The drained chunk goes with the node; the receiver frees it (no lock held).
        std::mem::swap(&mut self.cur, &mut node.msgs);
        drop(node);
        self.cur.pop_front()
    }

    /// Before taking the lock: makes sure `spare` can wake this task and drops a
    /// drained buffer too large to hand back (see the module docs).
    #[inline]
    fn prepare(&mut self, waker: &Waker) {
        if !self.spare.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.spare = Some(waker.clone());
        }
        let cap = self.cur.capacity();
        if cap > retain::<M>() && cap / 2 > self.last {
            self.cur = VecDeque::new();
        }
    }

    /// After taking a batch: `self.cur` holds the newest chunk and `full` the earlier
    /// full ones, newest first. Puts them in order (oldest in `cur`) without allocating.
    fn arrange(&mut self, full: Option<Box<Chunk<M>>>) {
        let mut total = self.cur.len();
        let mut list = full;
        // Shift the chunks one node down the list: the newest goes into the first node,
        // each node's chunk into the next one, and the oldest ends up in `cur`.
        let mut reversed: Option<Box<Chunk<M>>> = None;
        while let Some(mut node) = list {
            list = node.next.take();
            std::mem::swap(&mut node.msgs, &mut self.cur);
            total += self.cur.len();
            // Reversing the list makes it oldest first.
            node.next = reversed;
            reversed = Some(node);
        }
        self.rest = reversed;
        self.last = total;
    }

    #[cfg(all(test, not(orbit_loom)))]
    fn capacity(&self) -> usize {
        let mut n = self.cur.capacity();
        let mut c = self.rest.as_deref();
        while let Some(chunk) = c {
            n += chunk.msgs.capacity();
            c = chunk.next.as_deref();
        }
        n
    }
}

/// What a closed mailbox still held, to be dropped by the caller outside the lock.
pub(crate) type Queued<M> = (Batch<M>, Signals, Option<Waker>);

impl<M> Mailbox<M> {
    pub(crate) fn new() -> Self {
        Mailbox {
            slot: SpinLock::new(Slot {
                msgs: VecDeque::new(),
                full: None,
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
            drop(s);
            return Err(m);
        }
        let (len, cap) = (s.msgs.len(), s.msgs.capacity());
        if len == cap {
            drop(s);
            return self.push_grow(m, len, cap);
        }
        s.msgs.push_back(m);
        s.received += 1;
        let w = s.unpark();
        drop(s);
        if let Some(w) = w {
            w.wake();
        }
        Ok(())
    }

    /// `push` when the tail chunk is full: allocates the next chunk (and the list node
    /// for the full one) before taking the lock again.
    #[cold]
    #[inline(never)]
    fn push_grow(&self, m: M, len: usize, cap: usize) -> Result<(), M> {
        let want = if cap == 0 {
            FIRST_CHUNK
        } else {
            cap.saturating_mul(2).clamp(FIRST_CHUNK, max_chunk::<M>())
        };
        let mut fresh: VecDeque<M> = VecDeque::with_capacity(want);
        let mut node = if len > 0 { Some(Chunk::empty()) } else { None };
        loop {
            let mut s = self.slot.lock();
            if s.closed {
                drop(s);
                return Err(m);
            }
            if s.msgs.len() < s.msgs.capacity() {
                // The receiver took the queue meanwhile and handed back a buffer with
                // room; `fresh` is dropped below.
            } else if s.msgs.is_empty() {
                // Nothing to keep (a new or shed buffer): swap the fresh one in.
                std::mem::swap(&mut s.msgs, &mut fresh);
            } else if let Some(mut n) = node.take() {
                // Full: link it (newest first) and continue in the fresh chunk.
                std::mem::swap(&mut s.msgs, &mut fresh);
                std::mem::swap(&mut n.msgs, &mut fresh);
                n.next = s.full.take();
                s.full = Some(n);
            } else {
                // Full, but this sender saw it empty: it needs a list node too.
                drop(s);
                node = Some(Chunk::empty());
                continue;
            }
            s.msgs.push_back(m);
            s.received += 1;
            let w = s.unpark();
            drop(s);
            drop(fresh);
            drop(node);
            if let Some(w) = w {
                w.wake();
            }
            return Ok(());
        }
    }

    /// Queues a signal; false when the process has exited.
    pub(crate) fn push_signal(&self, sig: Signal) -> bool {
        let mut s = self.slot.lock();
        if s.closed {
            drop(s);
            return false;
        }
        let sig = s.signals.push_back(sig).err();
        let Some(sig) = sig else {
            self.flags.fetch_or(HAS_SIGNAL, Ordering::Release);
            let w = s.unpark();
            drop(s);
            if let Some(w) = w {
                w.wake();
            }
            return true;
        };
        let cap = s.signals.capacity();
        drop(s);
        self.push_signal_grow(sig, cap)
    }

    /// `push_signal` when the queue is full or not allocated: grows it with a buffer
    /// allocated outside the lock (the pending signals, a handful, are moved into it).
    #[cold]
    fn push_signal_grow(&self, sig: Signal, seen_cap: usize) -> bool {
        let mut want = seen_cap.saturating_mul(2).max(4);
        loop {
            let mut fresh = Box::new(VecDeque::with_capacity(want));
            let mut s = self.slot.lock();
            if s.closed {
                drop(s);
                return false;
            }
            let old = if s.signals.has_room() {
                None
            } else {
                let pending = s.signals.0.as_ref().map_or(0, |q| q.len());
                if fresh.capacity() <= pending {
                    // Another sender grew it meanwhile: allocate larger.
                    want = pending.saturating_mul(2);
                    drop(s);
                    continue;
                }
                let old = s.signals.0.take();
                if let Some(mut old) = old {
                    fresh.extend(old.drain(..));
                    s.signals.0 = Some(fresh);
                    Some(old)
                } else {
                    s.signals.0 = Some(fresh);
                    None
                }
            };
            let rejected = s.signals.push_back(sig).err();
            debug_assert!(rejected.is_none(), "the signal queue has room");
            self.flags.fetch_or(HAS_SIGNAL, Ordering::Release);
            let w = s.unpark();
            drop(s);
            drop(old);
            drop(rejected);
            if let Some(w) = w {
                w.wake();
            }
            return true;
        }
    }

    /// Wakes the receiver if it is parked (used after a kill so its task sees it).
    pub(crate) fn wake(&self) {
        let w = self.slot.lock().unpark();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Takes a pending signal, or every pending message into `batch` (which must be
    /// empty), or parks the receiver with `waker`.
    #[inline]
    pub(crate) fn take(&self, batch: &mut Batch<M>, waker: &Waker) -> Taken {
        self.take_impl::<true>(batch, waker, 0)
    }

    /// [`take`](Self::take) for a selective receive that has seen the `seen` queued
    /// signals and matched none: leaves signals queued and takes messages or parks;
    /// returns `Batch` with nothing taken when the signal count changed (a signal
    /// arrived after they were seen: look again rather than park past it).
    pub(crate) fn take_messages(&self, batch: &mut Batch<M>, waker: &Waker, seen: usize) -> Taken {
        self.take_impl::<false>(batch, waker, seen)
    }

    #[inline(always)]
    fn take_impl<const SIGNALS: bool>(
        &self,
        batch: &mut Batch<M>,
        waker: &Waker,
        seen: usize,
    ) -> Taken {
        debug_assert!(batch.is_empty(), "take into a batch not yet drained");
        batch.prepare(waker);
        let mut s = self.slot.lock();
        // Polled again (woken, or for another reason such as a timeout): not parked
        // unless this call finds nothing below.
        s.parked = false;
        if SIGNALS {
            if let Some(sig) = s.signals.pop_front() {
                let shed = if s.signals.is_empty() {
                    self.flags.fetch_and(!HAS_SIGNAL, Ordering::Relaxed);
                    s.signals.shed()
                } else {
                    None
                };
                drop(s);
                drop(shed);
                return Taken::Signal(sig);
            }
        } else if s.signals.len() != seen {
            return Taken::Batch;
        }
        if !s.msgs.is_empty() {
            std::mem::swap(&mut s.msgs, &mut batch.cur);
            let full = s.full.take();
            drop(s);
            if full.is_some() {
                batch.arrange(full);
            } else {
                batch.last = batch.cur.len();
            }
            return Taken::Batch;
        }
        if s.closed {
            return Taken::Empty;
        }
        s.parked = true;
        // Register the waker without calling it: keep the one in place if it wakes this
        // task, otherwise move the spare in (the old one comes out into `spare`).
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            std::mem::swap(&mut s.waker, &mut batch.spare);
        }
        // Idle now: do not keep a burst's buffer in the mailbox.
        let shed = if s.msgs.capacity() > retain::<M>() {
            std::mem::take(&mut s.msgs)
        } else {
            VecDeque::new()
        };
        let signals = s.signals.shed();
        drop(s);
        drop(shed);
        drop(signals);
        if batch.cur.capacity() > retain::<M>() {
            batch.cur = VecDeque::new();
        }
        if !batch.spare.as_ref().is_some_and(|w| w.will_wake(waker)) {
            // Replaces a stale waker or refills the spare just moved in.
            batch.spare = Some(waker.clone());
        }
        Taken::Empty
    }

    /// Puts signals a selective receive took and did not match (oldest first) back at
    /// the front of the queue, ahead of any queued since; returns how many it put back:
    /// the signals the caller has seen, to pass to [`take_messages`](Self::take_messages)
    /// (any queued beyond those are new to it, even if they arrived before this call).
    /// Nothing is allocated or dropped under the lock: signals queued meanwhile are
    /// taken out, appended after `saved` outside it, and the whole put back once the
    /// queue is seen empty.
    pub(crate) fn unget_signals(&self, saved: VecDeque<Signal>) -> usize {
        let seen = saved.len();
        if seen == 0 {
            return 0;
        }
        let mut saved = Box::new(saved);
        loop {
            let mut s = self.slot.lock();
            if s.closed {
                drop(s);
                drop(saved);
                return 0;
            }
            if s.signals.is_empty() {
                let old = s.signals.0.replace(saved);
                self.flags.fetch_or(HAS_SIGNAL, Ordering::Release);
                drop(s);
                drop(old);
                return seen;
            }
            let newer = s.signals.0.take();
            drop(s);
            if let Some(mut newer) = newer {
                saved.extend(newer.drain(..));
            }
        }
    }

    /// Takes a pending signal without parking.
    pub(crate) fn take_signal(&self) -> Option<Signal> {
        let mut s = self.slot.lock();
        let sig = s.signals.pop_front();
        let shed = if s.signals.is_empty() {
            self.flags.fetch_and(!HAS_SIGNAL, Ordering::Relaxed);
            s.signals.shed()
        } else {
            None
        };
        drop(s);
        drop(shed);
        sig
    }

    /// Removes pending `DOWN` signals of monitor `r`; true if one was removed.
    pub(crate) fn flush_down(&self, r: Ref) -> bool {
        self.flush_signals(|sig| matches!(sig, Signal::Down(d) if d.monitor == r))
    }

    /// Removes pending link exit signals (`Signal::Exit` with `link`) from `from`, for
    /// `unlink`; `exit/2` signals stay. True if one was removed.
    pub(crate) fn flush_link_exit(&self, from: Pid) -> bool {
        self.flush_signals(
            |sig| matches!(sig, Signal::Exit { from: f, link: true, .. } if *f == from),
        )
    }

    /// Removes every pending signal that `doomed` selects; true if one was removed.
    fn flush_signals(&self, doomed: impl Fn(&Signal) -> bool) -> bool {
        let mut removed = false;
        // One at a time, so that each removed signal is dropped after the lock (a
        // monitor or a link fires once, so this loops once in practice).
        loop {
            let mut s = self.slot.lock();
            let sig = s.signals.0.as_mut().and_then(|q| {
                let i = q.iter().position(&doomed)?;
                q.remove(i)
            });
            if s.signals.is_empty() {
                self.flags.fetch_and(!HAS_SIGNAL, Ordering::Relaxed);
            }
            drop(s);
            match sig {
                Some(sig) => {
                    drop(sig);
                    removed = true;
                }
                None => return removed,
            }
        }
    }

    /// Messages accepted so far.
    pub(crate) fn received(&self) -> u64 {
        self.slot.lock().received
    }

    /// Closes the mailbox and hands back what was still queued (messages in order), to
    /// be dropped by the caller outside the lock (dropping a queued call wakes its
    /// caller).
    pub(crate) fn close(&self) -> Queued<M> {
        let mut s = self.slot.lock();
        s.closed = true;
        s.parked = false;
        let mut queued = Batch::new();
        queued.cur = std::mem::take(&mut s.msgs);
        let full = s.full.take();
        let signals = std::mem::take(&mut s.signals);
        let waker = s.waker.take();
        drop(s);
        queued.arrange(full);
        (queued, signals, waker)
    }

    /// Message slots the mailbox holds allocated (its buffers and chained chunks).
    #[cfg(all(test, not(orbit_loom)))]
    pub(crate) fn capacity(&self) -> (usize, usize) {
        let s = self.slot.lock();
        let mut n = s.msgs.capacity();
        let mut c = s.full.as_deref();
        while let Some(chunk) = c {
            n += chunk.msgs.capacity();
            c = chunk.next.as_deref();
        }
        (n, s.signals.capacity())
    }
}

impl<M> Slot<M> {
    /// Takes the waker of a parked receiver out, to be woken after the lock (waking
    /// runs the executor's code; a wake by value costs a tokio task what a wake by
    /// reference does, and the receiver refills its slot from its spare).
    #[inline]
    fn unpark(&mut self) -> Option<Waker> {
        if self.parked {
            self.parked = false;
            self.waker.take()
        } else {
            None
        }
    }
}

#[cfg(all(test, not(orbit_loom)))]
mod tests;

#[cfg(all(test, orbit_loom))]
mod loom_tests;
