//! loom models of the mailbox (run with `RUSTFLAGS="--cfg orbit_loom"`, see `scripts/loom`).

use super::{Batch, Mailbox, Signal, Taken, HAS_SIGNAL};
use crate::exit::ExitReason;
use crate::pid::{Pid, Ref};
use crate::signal::Down;
use crate::sync::{Arc, AtomicUsize};
use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::task::Poll;

/// Wakes the model's receiver thread: a waker built from loom's atomics and
/// park/unpark (loom's own `block_on` needs its `futures` feature).
struct Notify {
    woken: crate::sync::AtomicBool,
    thread: loom::thread::Thread,
}

impl std::task::Wake for Notify {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        // A swap, not a store: loom orders a plain store only after the stores its
        // thread has seen, so the receiver's `swap(false)` could read its own older
        // write instead of this one (a deadlock that cannot happen).
        self.woken.swap(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Polls `f` to completion on this loom thread, parking until woken; a wakeup that
/// never comes leaves every thread blocked, which loom reports as a deadlock.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let notify = std::sync::Arc::new(Notify {
        woken: crate::sync::AtomicBool::new(false),
        thread: loom::thread::current(),
    });
    let waker = std::task::Waker::from(notify.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        while !notify.woken.swap(false, Ordering::SeqCst) {
            loom::thread::park();
        }
    }
}

/// Receives `n` messages the way `Context::recv` does (drain the batch, then take,
/// parking when empty), under `block_on` (a receiver never woken is a deadlock).
fn receive(mb: &Mailbox<u64>, n: usize) -> (Vec<u64>, usize) {
    let mut batch = Batch::new();
    let mut got = Vec::new();
    let mut signals = 0;
    block_on(poll_fn(|cx| loop {
        if got.len() == n {
            return Poll::Ready(());
        }
        if let Some(m) = batch.pop_front() {
            got.push(m);
            continue;
        }
        match mb.take(&mut batch, cx.waker()) {
            Taken::Batch => {}
            Taken::Signal(_) => signals += 1,
            Taken::Empty => return Poll::Pending,
        }
    }));
    (got, signals)
}

/// Two senders, two messages each, a receiver that parks: no message or wakeup is
/// lost and each sender's messages arrive in order (chunks of 1 and 2 slots under
/// loom, so growth and the chain are on the path).
#[test]
fn loom_mailbox_two_senders_parked_receiver() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::<u64>::new());
        let senders: Vec<_> = (0..2u64)
            .map(|id| {
                let mb = mb.clone();
                loom::thread::spawn(move || {
                    for i in 0..2 {
                        mb.push(id * 10 + i).expect("open mailbox");
                    }
                })
            })
            .collect();
        let (got, _) = receive(&mb, 4);
        for s in senders {
            s.join().expect("sender");
        }
        for id in 0..2 {
            let mine: Vec<_> = got.iter().copied().filter(|m| m / 10 == id).collect();
            assert_eq!(mine, vec![id * 10, id * 10 + 1], "sender {id}: {got:?}");
        }
    });
}

/// A signal and a message race a parked receiver: both arrive, no lost wakeup.
#[test]
fn loom_mailbox_signal_wakes_parked_receiver() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::<u64>::new());
        let sig = {
            let mb = mb.clone();
            loom::thread::spawn(move || {
                assert!(mb.push_signal(Signal::Exit {
                    from: Pid::local(1, 0),
                    reason: ExitReason::Normal,
                    link: true,
                }));
            })
        };
        let msg = {
            let mb = mb.clone();
            loom::thread::spawn(move || mb.push(7).expect("open mailbox"))
        };
        let mut batch = Batch::new();
        let mut seen = (0, 0);
        block_on(poll_fn(|cx| loop {
            if seen == (1, 1) {
                return Poll::Ready(());
            }
            if batch.pop_front().is_some() {
                seen.1 += 1;
                continue;
            }
            match mb.take(&mut batch, cx.waker()) {
                Taken::Batch => {}
                Taken::Signal(_) => seen.0 += 1,
                Taken::Empty => return Poll::Pending,
            }
        }));
        sig.join().expect("signal sender");
        msg.join().expect("message sender");
    });
}

fn exit_from(id: u32) -> Signal {
    Signal::Exit {
        from: Pid::local(id, 0),
        reason: ExitReason::Normal,
        link: false,
    }
}

fn is_from(sig: &Signal, id: u32) -> bool {
    matches!(sig, Signal::Exit { from, .. } if *from == Pid::local(id, 0))
}

/// A selective receive waiting for signal 2 sets signal 1 aside (`take_signal`,
/// `unget_signals`) and parks with `take_messages` while signal 2 is pushed: it is
/// woken (or sees the count change) and gets signal 2; signal 1 stays queued, alone,
/// with `HAS_SIGNAL` set.
#[test]
fn loom_mailbox_selective_receive_races_a_signal() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::<u64>::new());
        assert!(mb.push_signal(exit_from(1)));
        let sender = {
            let mb = mb.clone();
            loom::thread::spawn(move || assert!(mb.push_signal(exit_from(2))))
        };
        let mut batch = Batch::new();
        let got = block_on(poll_fn(|cx| loop {
            let mut kept = std::collections::VecDeque::new();
            let mut found = None;
            while let Some(sig) = mb.take_signal() {
                if is_from(&sig, 2) {
                    found = Some(sig);
                    break;
                }
                kept.push_back(sig);
            }
            let seen = mb.unget_signals(kept);
            if let Some(sig) = found {
                return Poll::Ready(sig);
            }
            match mb.take_messages(&mut batch, cx.waker(), seen) {
                Taken::Batch | Taken::Signal(_) => continue,
                Taken::Empty => return Poll::Pending,
            }
        }));
        sender.join().expect("signal sender");
        assert!(is_from(&got, 2));
        assert_ne!(mb.flags.load(Ordering::Relaxed) & HAS_SIGNAL, 0);
        let first = mb.take_signal().expect("signal 1 kept");
        assert!(is_from(&first, 1));
        assert!(mb.take_signal().is_none());
        assert_eq!(mb.flags.load(Ordering::Relaxed) & HAS_SIGNAL, 0);
    });
}

/// A message that counts its drops.
struct Tracked(u64, Arc<AtomicUsize>);
impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

/// Close races two sends (the second grows the buffer): each send is either queued
/// and handed back by `close` (or taken before it), or reported undelivered with
/// the message given back; every message is dropped exactly once.
#[test]
fn loom_mailbox_close_races_send() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let mb = Arc::new(Mailbox::<Tracked>::new());
        let sender = {
            let mb = mb.clone();
            let drops = drops.clone();
            loom::thread::spawn(move || {
                let mut delivered = Vec::new();
                for i in 0..2 {
                    match mb.push(Tracked(i, drops.clone())) {
                        Ok(()) => delivered.push(i),
                        Err(back) => assert_eq!(back.0, i, "the message comes back"),
                    }
                }
                delivered
            })
        };
        let (mut queued, _, _) = mb.close();
        let delivered = sender.join().expect("sender");
        let mut handed_back = Vec::new();
        while let Some(m) = queued.pop_front() {
            handed_back.push(m.0);
        }
        assert_eq!(handed_back, delivered, "accepted = handed back by close");
        drop(queued);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            2,
            "each message dropped once"
        );
        assert!(mb.push(Tracked(9, drops.clone())).is_err());
    });
}

/// `wake` (as after a kill) and a push race a parked receiver: `wake` may take the
/// waker out first, the receiver then parks again on the spare it keeps, and the
/// push must still wake it (a lost wakeup is a deadlock).
#[test]
fn loom_mailbox_wake_and_push_race_parked_receiver() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::<u64>::new());
        let waker = {
            let mb = mb.clone();
            loom::thread::spawn(move || mb.wake())
        };
        let sender = {
            let mb = mb.clone();
            loom::thread::spawn(move || mb.push(5).expect("open mailbox"))
        };
        let (got, signals) = receive(&mb, 1);
        assert_eq!((got, signals), (vec![5], 0));
        waker.join().expect("waker");
        sender.join().expect("sender");
    });
}

/// Selective removal (`flush_down` for `demonitor(flush)`, `flush_link_exit` for
/// `unlink`) races the signals it targets: each signal is either removed (and the
/// call says so) or delivered, exactly once, and `HAS_SIGNAL` is set exactly when
/// signals are queued.
#[test]
fn loom_mailbox_flush_races_signals() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::<u64>::new());
        let monitor = Ref::make();
        let from = Pid::local(2, 0);
        let sender = {
            let mb = mb.clone();
            loom::thread::spawn(move || {
                assert!(mb.push_signal(Signal::Down(Down {
                    monitor,
                    pid: from,
                    reason: ExitReason::Normal,
                })));
                assert!(mb.push_signal(Signal::Exit {
                    from,
                    reason: ExitReason::Normal,
                    link: true,
                }));
            })
        };
        let down_flushed = mb.flush_down(monitor);
        let exit_flushed = mb.flush_link_exit(from);
        sender.join().expect("sender");
        let flagged = mb.flags.load(Ordering::Relaxed) & HAS_SIGNAL != 0;
        let (mut downs, mut exits) = (0, 0);
        while let Some(sig) = mb.take_signal() {
            match sig {
                Signal::Down(d) => {
                    assert_eq!(d.monitor, monitor);
                    downs += 1;
                }
                Signal::Exit { .. } => exits += 1,
            }
        }
        assert_eq!(downs + usize::from(down_flushed), 1, "DOWN once");
        assert_eq!(exits + usize::from(exit_flushed), 1, "EXIT once");
        assert_eq!(flagged, downs + exits > 0, "HAS_SIGNAL matches the queue");
        assert_eq!(mb.flags.load(Ordering::Relaxed) & HAS_SIGNAL, 0, "drained");
    });
}
