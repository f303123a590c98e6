//! The cheap clock behind per-process handling time, and the switches of the counters.
//!
//! Reading a precise clock twice per message costs tens of nanoseconds on a virtual
//! machine, more than the message itself. So handling time is read from a coarse clock:
//! a background thread (`orbit-clock`) stores the elapsed time every millisecond, and
//! a process reads it with one atomic load. A handler shorter than a tick usually reads
//! as 0 and sometimes as one tick; summed over many messages the total is unbiased,
//! which is what `process_info`'s handling time and mean report. Long handlers (100 ms
//! by default, [`set_long_handler_threshold`]) are far above the resolution, like the
//! BEAM's `system_monitor` `long_schedule`.
//!
//! Counting can be switched off to measure what it costs ([`set_counters`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::process::Core;

/// The coarse clock's resolution.
pub const TICK: Duration = Duration::from_millis(1);

static NOW_NS: AtomicU64 = AtomicU64::new(1);
static COUNTERS: AtomicBool = AtomicBool::new(true);
static LONG_NS: AtomicU64 = AtomicU64::new(100_000_000);
static LONG_TOTAL: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(|| {
        let epoch = Instant::now();
        let spawned = std::thread::Builder::new()
            .name("orbit-clock".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                let ns = epoch.elapsed().as_nanos().min(u64::MAX as u128) as u64;
                NOW_NS.store(ns.max(1), Ordering::Relaxed);
                crate::deadline::fire_expired(ns);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the orbit-clock thread; handling times will read as zero");
        }
        epoch
    })
}

/// Starts the clock thread (idempotent); called when the first process spawns.
pub(crate) fn start() {
    epoch();
}

/// Nanoseconds since the clock started, at tick resolution; never 0.
#[inline]
pub(crate) fn now() -> u64 {
    NOW_NS.load(Ordering::Relaxed)
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
