//! Unit tests of the mailbox: ordering, signals first, wake-ups, buffer retention.

use super::{retain, Batch, Mailbox, Signal, Taken};
use crate::exit::ExitReason;
use crate::pid::Pid;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

/// A waker that, whenever any of its functions runs (clone, wake, wake by
/// reference, drop), tries the mailbox's lock and counts the calls that found it
/// held: a waker called inside a critical section.
struct Probe {
    mailbox: *const Mailbox<u64>,
    calls: AtomicUsize,
    under_lock: AtomicUsize,
    wakes: AtomicUsize,
}

impl Probe {
    fn check(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the test keeps the mailbox alive for as long as the probe.
        let mb = unsafe { &*self.mailbox };
        if mb.slot.try_lock().is_none() {
            self.under_lock.fetch_add(1, Ordering::Relaxed);
        }
    }
}

const VTABLE: RawWakerVTable = RawWakerVTable::new(
    |p| {
        // SAFETY: `p` is the test's `Probe`, alive for the whole test.
        unsafe { &*(p as *const Probe) }.check();
        RawWaker::new(p, &VTABLE)
    },
    |p| {
        let probe = unsafe { &*(p as *const Probe) };
        probe.check();
        probe.wakes.fetch_add(1, Ordering::Relaxed);
    },
    |p| {
        let probe = unsafe { &*(p as *const Probe) };
        probe.check();
        probe.wakes.fetch_add(1, Ordering::Relaxed);
    },
    |p| unsafe { &*(p as *const Probe) }.check(),
);

fn probe_waker(probe: &Probe) -> Waker {
    // SAFETY: the vtable only reads the probe, which outlives every waker here.
    unsafe { Waker::from_raw(RawWaker::new(probe as *const Probe as *const (), &VTABLE)) }
}

fn exit_signal() -> Signal {
    Signal::Exit {
        from: Pid::local(1, 0),
        reason: ExitReason::Normal,
        link: true,
    }
}

/// Issue 15: senders woke the receiver (and the receiver cloned its waker) while
/// holding the mailbox's spin lock. Every waker function must run with it free.
#[test]
fn no_waker_call_under_the_lock() {
    let mb = Box::new(Mailbox::<u64>::new());
    let probe = Probe {
        mailbox: &*mb,
        calls: AtomicUsize::new(0),
        under_lock: AtomicUsize::new(0),
        wakes: AtomicUsize::new(0),
    };
    let other = Probe {
        mailbox: &*mb,
        calls: AtomicUsize::new(0),
        under_lock: AtomicUsize::new(0),
        wakes: AtomicUsize::new(0),
    };
    let w = probe_waker(&probe);
    let w2 = probe_waker(&other);
    let mut batch = Batch::new();
    for round in 0..20u64 {
        // Park, then a message wakes the receiver.
        assert!(matches!(mb.take(&mut batch, &w), Taken::Empty));
        mb.push(round).expect("open mailbox");
        assert!(matches!(mb.take(&mut batch, &w), Taken::Batch));
        assert_eq!(batch.pop_front(), Some(round));
        assert!(batch.pop_front().is_none());
        // Park on another task's waker (replacing the registered one), then a
        // signal and a wake (as after a kill) wake it.
        assert!(matches!(mb.take(&mut batch, &w2), Taken::Empty));
        assert!(mb.push_signal(exit_signal()));
        assert!(matches!(mb.take(&mut batch, &w2), Taken::Signal(_)));
        assert!(matches!(mb.take(&mut batch, &w), Taken::Empty));
        mb.wake();
    }
    assert!(matches!(mb.take(&mut batch, &w), Taken::Empty));
    drop(mb.close());
    drop(batch);
    drop(w);
    drop(w2);
    let calls = probe.calls.load(Ordering::Relaxed) + other.calls.load(Ordering::Relaxed);
    let under = probe.under_lock.load(Ordering::Relaxed) + other.under_lock.load(Ordering::Relaxed);
    let wakes = probe.wakes.load(Ordering::Relaxed) + other.wakes.load(Ordering::Relaxed);
    assert_eq!(wakes, 60, "every park was woken once");
    assert!(calls >= wakes);
    assert_eq!(
        under, 0,
        "{under} of {calls} waker calls ran under the lock"
    );
}

/// Sends `n` messages, takes and drains them, and returns the most message slots the
/// receiver held at once.
fn burst(mb: &Mailbox<u64>, batch: &mut Batch<u64>, w: &Waker, n: u64) {
    for i in 0..n {
        mb.push(i).expect("open mailbox");
    }
    let mut next = 0;
    while next < n {
        assert!(matches!(mb.take(batch, w), Taken::Batch));
        while let Some(m) = batch.pop_front() {
            assert_eq!(m, next, "FIFO");
            next += 1;
        }
    }
}

/// Issue 15: after a burst the mailbox kept the burst's capacity forever (both
/// buffers it swaps grew to 1M slots). Parked, it keeps at most `retain` slots in
/// each buffer; busy with small batches, it sheds the burst's buffers within a few
/// takes.
#[test]
fn capacity_shrinks_after_a_burst() {
    // Under Miri: still above `retain` (256 slots of u64), through ten chunks.
    let n = if cfg!(miri) { 3_000 } else { 1_000_000 };
    let bound = 2 * retain::<u64>();
    let mb = Mailbox::<u64>::new();
    let w = futures::task::noop_waker();
    let mut batch = Batch::new();

    // Burst, drained, then the receiver parks.
    burst(&mb, &mut batch, &w, n);
    assert!(matches!(mb.take(&mut batch, &w), Taken::Empty));
    let (held, signals) = mb.capacity();
    let total = held + batch.capacity();
    assert!(
        total <= bound,
        "parked after a burst of {n}: {total} slots retained (bound {bound})"
    );
    assert_eq!(signals, 0);

    // Burst again, then small batches without parking.
    burst(&mb, &mut batch, &w, n);
    for i in 0..4 {
        mb.push(i).expect("open mailbox");
        mb.push(i).expect("open mailbox");
        assert!(matches!(mb.take(&mut batch, &w), Taken::Batch));
        while batch.pop_front().is_some() {}
    }
    let total = mb.capacity().0 + batch.capacity();
    assert!(
        total <= bound,
        "busy after a burst of {n}: {total} slots retained (bound {bound})"
    );

    // A burst of signals is shed too.
    for _ in 0..1000 {
        assert!(mb.push_signal(exit_signal()));
    }
    while mb.take_signal().is_some() {}
    assert!(mb.capacity().1 <= super::SIGNAL_RETAIN);
}

/// Messages cross chunk boundaries in order, interleaved with takes, and `close`
/// hands back what was queued, in order.
#[test]
fn chunks_keep_order_and_close_hands_back() {
    let mb = Mailbox::<u64>::new();
    let w = futures::task::noop_waker();
    let mut batch = Batch::new();
    let mut sent = 0u64;
    let mut got = 0u64;
    let steps = if cfg!(miri) { 40 } else { 200u64 };
    for step in 1..steps {
        for _ in 0..step * 7 {
            mb.push(sent).expect("open mailbox");
            sent += 1;
        }
        if step % 3 == 0 {
            continue;
        }
        assert!(matches!(mb.take(&mut batch, &w), Taken::Batch));
        while let Some(m) = batch.pop_front() {
            assert_eq!(m, got);
            got += 1;
        }
    }
    let (mut queued, _, _) = mb.close();
    while let Some(m) = queued.pop_front() {
        assert_eq!(m, got);
        got += 1;
    }
    assert_eq!(got, sent);
    assert_eq!(mb.push(1), Err(1), "closed");
    assert!(!mb.push_signal(exit_signal()));
}

/// An `exit/2`-style signal from local pid `id`.
fn exit_from(id: u32) -> Signal {
    Signal::Exit {
        from: Pid::local(id, 1),
        reason: ExitReason::Normal,
        link: false,
    }
}

fn from_of(sig: &Signal) -> Pid {
    match sig {
        Signal::Exit { from, .. } => *from,
        Signal::Down(d) => d.pid,
    }
}

/// Signals put back by a selective receive come before those queued since, in
/// their order; `take_messages` leaves signals queued and refuses to park when the
/// signal count changed.
#[test]
fn unget_signals_keeps_the_order_and_take_messages_sees_new_signals() {
    let mb: Mailbox<u64> = Mailbox::new();
    let w = futures::task::noop_waker();
    for id in 1..=3 {
        assert!(mb.push_signal(exit_from(id)));
    }
    let a = mb.take_signal().unwrap();
    let b = mb.take_signal().unwrap();
    // A signal arrives while the receiver holds two.
    assert!(mb.push_signal(exit_from(4)));
    // Two put back (seen); 3 and 4 were never seen by the receiver.
    let seen = mb.unget_signals([a, b].into_iter().collect());
    assert_eq!(seen, 2);
    assert!(matches!(
        mb.take_messages(&mut Batch::new(), &w, seen),
        Taken::Batch
    ));
    mb.push(7).unwrap();
    let mut batch = Batch::new();
    // Four signals seen: messages are taken, signals stay.
    assert!(matches!(mb.take_messages(&mut batch, &w, 4), Taken::Batch));
    assert_eq!(batch.pop_front(), Some(7));
    assert!(batch.is_empty());
    // Three seen but four queued: no park, no message.
    assert!(matches!(mb.take_messages(&mut batch, &w, 3), Taken::Batch));
    assert!(batch.is_empty());
    // All seen, nothing else: parks.
    assert!(matches!(mb.take_messages(&mut batch, &w, 4), Taken::Empty));
    let order: Vec<Pid> = std::iter::from_fn(|| mb.take_signal())
        .map(|s| from_of(&s))
        .collect();
    let want: Vec<Pid> = [1, 2, 3, 4].into_iter().map(|i| Pid::local(i, 1)).collect();
    assert_eq!(order, want);
    assert_eq!(
        mb.flags.load(std::sync::atomic::Ordering::Relaxed) & super::HAS_SIGNAL,
        0
    );
    // Putting back nothing changes nothing; a closed mailbox drops what comes back.
    assert_eq!(mb.unget_signals(Default::default()), 0);
    drop(mb.close());
    assert_eq!(mb.unget_signals([exit_from(9)].into_iter().collect()), 0);
}

/// Eight threads send into one mailbox while the receiver drains: every message
/// arrives once, in order per sender.
#[test]
fn concurrent_senders_fifo_per_sender() {
    let per = if cfg!(miri) { 200 } else { 50_000 };
    let senders = 8u64;
    let mb = Arc::new(Mailbox::<u64>::new());
    let threads: Vec<_> = (0..senders)
        .map(|id| {
            let mb = mb.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    mb.push(id << 32 | i).expect("open mailbox");
                }
            })
        })
        .collect();
    let w = futures::task::noop_waker();
    let mut batch = Batch::new();
    let mut next = vec![0u64; senders as usize];
    let mut got = 0;
    while got < senders * per {
        match mb.take(&mut batch, &w) {
            Taken::Batch => {
                while let Some(m) = batch.pop_front() {
                    let (id, i) = ((m >> 32) as usize, m & 0xffff_ffff);
                    assert_eq!(i, next[id], "sender {id} out of order");
                    next[id] += 1;
                    got += 1;
                }
            }
            _ => std::thread::yield_now(),
        }
    }
    for t in threads {
        t.join().expect("sender");
    }
}
