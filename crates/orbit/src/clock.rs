//! The cheap clock and the switches behind per-process counters.
//!
//! Handling time is measured with the CPU's time-stamp counter through `quanta` (a few
//! nanoseconds a read), once per message. Counting can be switched off to measure what
//! it costs ([`set_counters`]); the long-handler threshold is global
//! ([`set_long_handler_threshold`], 100 ms by default), like the BEAM's
//! `system_monitor` `long_schedule`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::Core;

fn clock() -> &'static quanta::Clock {
    static C: OnceLock<quanta::Clock> = OnceLock::new();
    C.get_or_init(quanta::Clock::new)
}

static COUNTERS: AtomicBool = AtomicBool::new(true);
static LONG_TICKS: AtomicU64 = AtomicU64::new(u64::MAX);
static LONG_TOTAL: AtomicU64 = AtomicU64::new(0);

/// A raw tick; never 0.
#[inline]
pub(crate) fn now() -> u64 {
    clock().raw().max(1)
}

/// Converts ticks to a duration.
pub(crate) fn ticks_to_duration(ticks: u64) -> Duration {
    let c = clock();
    let base = c.raw();
    Duration::from_nanos(c.delta_as_nanos(base, base.saturating_add(ticks)))
}

#[inline]
pub(crate) fn counters_enabled() -> bool {
    COUNTERS.load(Ordering::Relaxed)
}

/// Turns the per-message time counters on (the default) or off. Message counts and
/// mailbox lengths are always kept; only handling-time measurement is switched.
pub fn set_counters(on: bool) {
    COUNTERS.store(on, Ordering::Relaxed);
}

#[inline]
pub(crate) fn long_threshold_ticks() -> u64 {
    let t = LONG_TICKS.load(Ordering::Relaxed);
    if t != u64::MAX {
        return t;
    }
    init_threshold(Duration::from_millis(100))
}

fn init_threshold(d: Duration) -> u64 {
    let c = clock();
    // Calibrate: how many raw ticks make `d`.
    let start = c.raw();
    let probe = Duration::from_millis(1);
    let s = std::time::Instant::now();
    while s.elapsed() < probe {
        std::hint::spin_loop();
    }
    let per_ms = c.raw().saturating_sub(start).max(1);
    let ticks = (per_ms as u128 * d.as_nanos() / 1_000_000).min(u64::MAX as u128 - 1) as u64;
    LONG_TICKS.store(ticks, Ordering::Relaxed);
    ticks
}

/// Sets the duration above which a handler is reported as long (100 ms by default).
pub fn set_long_handler_threshold(d: Duration) {
    init_threshold(d);
}

/// Long handlers seen since start, over all processes.
pub fn long_handler_total() -> u64 {
    LONG_TOTAL.load(Ordering::Relaxed)
}

#[cold]
pub(crate) fn report_long_handler(core: &Core, ticks: u64) {
    core.long_handlers.fetch_add(1, Ordering::Relaxed);
    LONG_TOTAL.fetch_add(1, Ordering::Relaxed);
    let took = ticks_to_duration(ticks);
    tracing::warn!(pid = %core.pid, ?took, "long handler: a message took longer than the threshold; move blocking work to orbit::blocking");
}
