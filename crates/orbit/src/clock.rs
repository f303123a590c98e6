//! The cheap clock behind per-process handling time, and the switches of the counters.
//!
//! Reading a precise clock twice per message costs tens of nanoseconds on a virtual
//! machine, more than the message itself. So handling time is read from a coarse clock:
//! a background thread (`orbit-clock`) stores the elapsed time every millisecond, and
//! a process reads it with one atomic load and a branch. A handler shorter than a tick
//! usually reads as 0 and sometimes as one tick; summed over many messages the total is
//! unbiased, which is what `process_info`'s handling time and mean report. Long handlers
//! (100 ms by default, [`set_long_handler_threshold`]) are far above the resolution,
//! like the BEAM's `system_monitor` `long_schedule`.
//!
//! # An idle node does not tick
//!
//! Each tick the thread stores the time with an "unread" bit set; the first reader in
//! that tick clears it with one compare-and-swap (later readers of the tick see it clear
//! and take the one-load path). When 10 ticks in a row pass unread, the thread marks the
//! stored time "asleep" and parks. A reader that sees "asleep" reads the precise clock
//! itself (so the time it gets is exact, never stale), stores it, and unparks the
//! thread, which ticks again at once. So a node that handles no messages (or runs with
//! [`set_counters`] off) costs no wake-ups; the first message after a pause pays one
//! precise clock read and one unpark. `tests/clock_idle.rs` checks that an idle
//! node's clock thread stops waking and that handling times are measured after it
//! wakes. The clock is not used for timeouts: those run on tokio's timer
//! ([`crate::deadline`]).
//!
//! Counting can be switched off to measure what it costs ([`set_counters`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::process::Core;

/// The coarse clock's resolution.
pub const TICK: Duration = Duration::from_millis(1);

/// Set by the thread on every tick, cleared by the first reader of that tick.
const UNREAD: u64 = 1 << 63;
/// Set by the thread when it parks; cleared (with the precise time) by the reader that
/// wakes it.
const ASLEEP: u64 = 1 << 62;
const FLAGS: u64 = UNREAD | ASLEEP;
/// Unread ticks in a row after which the thread parks.
const IDLE_TICKS: u32 = 10;

/// Nanoseconds since the epoch, possibly with `UNREAD` or `ASLEEP`; never 0 without them.
static NOW_NS: AtomicU64 = AtomicU64::new(1);
static COUNTERS: AtomicBool = AtomicBool::new(true);
static LONG_NS: AtomicU64 = AtomicU64::new(100_000_000);
static LONG_TOTAL: AtomicU64 = AtomicU64::new(0);
/// The clock thread, for readers that wake it.
static THREAD: OnceLock<Thread> = OnceLock::new();

struct Epoch(Instant);

impl Epoch {
    /// Precise nanoseconds since the epoch, without flag bits, never 0.
    fn elapsed_ns(&self) -> u64 {
        (self.0.elapsed().as_nanos().min(u64::MAX as u128) as u64 & !FLAGS).max(1)
    }
}

static EPOCH: OnceLock<Epoch> = OnceLock::new();

fn epoch() -> &'static Epoch {
    EPOCH.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("orbit-clock".into())
            .spawn(tick);
        match spawned {
            Ok(h) => {
                let _ = THREAD.set(h.thread().clone());
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not start the orbit-clock thread; handling times will read as zero");
            }
        }
        Epoch(Instant::now())
    })
}

/// The clock thread: stores the time every tick; parks after `IDLE_TICKS` unread ticks.
fn tick() {
    let epoch = epoch();
    let mut unread = 0;
    loop {
        let ns = epoch.elapsed_ns();
        let prev = NOW_NS.swap(ns | UNREAD, Ordering::Relaxed);
        if prev & UNREAD != 0 {
            unread += 1;
        } else {
            unread = 0;
        }
        if unread >= IDLE_TICKS {
            unread = 0;
            // Fails when a reader has just cleared `UNREAD`: then keep ticking.
            if NOW_NS
                .compare_exchange(
                    ns | UNREAD,
                    ns | ASLEEP,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                // `park` may return spuriously; the reader that clears `ASLEEP` unparks.
                while NOW_NS.load(Ordering::Acquire) & ASLEEP != 0 {
                    std::thread::park();
                }
                // Tick at once: the reader stored the precise time, which ages.
                continue;
            }
        }
        std::thread::sleep(TICK);
    }
}

/// Starts the clock thread (idempotent); called when the first process spawns.
pub(crate) fn start() {
    epoch();
}

/// Nanoseconds since the clock started, at tick resolution; never 0. One atomic load
/// and a branch, except for the first read of each tick (one compare-and-swap) and
/// the read that wakes a parked clock (see the module docs).
#[inline]
pub(crate) fn now() -> u64 {
    let v = NOW_NS.load(Ordering::Relaxed);
    if v & FLAGS == 0 {
        return v;
    }
    now_flagged(v)
}

#[cold]
#[inline(never)]
fn now_flagged(v: u64) -> u64 {
    if v & ASLEEP != 0 {
        let Some(epoch) = EPOCH.get() else {
            return v & !FLAGS;
        };
        let ns = epoch.elapsed_ns();
        // One reader wins and wakes the thread; the others use their own precise read.
        if NOW_NS
            .compare_exchange(v, ns, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            if let Some(t) = THREAD.get() {
                t.unpark();
            }
        }
        return ns;
    }
    // Failing means the thread stored a newer tick meanwhile: nothing to do.
    let _ = NOW_NS.compare_exchange(v, v & !UNREAD, Ordering::Relaxed, Ordering::Relaxed);
    v & !UNREAD
}

#[inline]
pub(crate) fn counters_enabled() -> bool {
    COUNTERS.load(Ordering::Relaxed)
}

/// Turns handling-time measurement on (the default) or off. Message counts and mailbox
/// lengths are always kept.
pub fn set_counters(on: bool) {
    COUNTERS.store(on, Ordering::Relaxed);
}

#[inline]
pub(crate) fn long_threshold_ns() -> u64 {
    LONG_NS.load(Ordering::Relaxed)
}

/// Sets the duration above which a handler is reported as long (100 ms by default).
/// Values below two ticks of the coarse clock are raised to two ticks.
pub fn set_long_handler_threshold(d: Duration) {
    let ns = d.max(TICK * 2).as_nanos().min(u64::MAX as u128) as u64;
    LONG_NS.store(ns, Ordering::Relaxed);
}

/// Long handlers seen since start, over all processes.
pub fn long_handler_total() -> u64 {
    LONG_TOTAL.load(Ordering::Relaxed)
}

#[cold]
pub(crate) fn report_long_handler(core: &Core, ns: u64) {
    core.long_handlers.fetch_add(1, Ordering::Relaxed);
    LONG_TOTAL.fetch_add(1, Ordering::Relaxed);
    let took = Duration::from_nanos(ns);
    tracing::warn!(pid = %core.pid, ?took, "long handler: a message took longer than the threshold; move blocking work to orbit::blocking");
}
