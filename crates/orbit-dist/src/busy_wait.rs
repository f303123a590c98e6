//! Busy-waiting before a worker thread sleeps, as the BEAM's schedulers do.
//!
//! A request/reply exchange between nodes spends most of its time not in Orbit but in
//! the kernel putting an idle worker thread to sleep in `epoll_wait` and waking it when
//! the answer arrives. The BEAM avoids much of that by letting an idle scheduler spin
//! for a while before it sleeps (`+sbwt`, on by default). [`spin_before_park`] is the
//! same idea as a tokio park hook: when a distribution connection received data in the
//! last millisecond, one worker thread at a time polls the most recently active socket
//! (without blocking) for up to [`SPIN`] before letting the thread park. If data comes,
//! the thread parks and finds it ready at once, with no sleep and no wake-up.
//!
//! It costs idle CPU only right after traffic, and only on a runtime built with it:
//!
//! ```no_run
//! let rt = tokio::runtime::Builder::new_multi_thread()
//!     .enable_all()
//!     .on_thread_park(orbit_dist::spin_before_park)
//!     .build()
//!     .expect("runtime");
//! ```

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long an idle worker polls before it parks.
pub const SPIN: Duration = Duration::from_micros(50);
/// Spin only when a connection received data this recently.
const ACTIVE: Duration = Duration::from_millis(1);

static LAST_FD: AtomicI32 = AtomicI32::new(-1);
static LAST_READ_NS: AtomicU64 = AtomicU64::new(0);
static SPINNING: AtomicBool = AtomicBool::new(false);
/// Set by the first [`spin_before_park`]: until a runtime runs the hook, reads are not
/// noted (a clock read per read that nothing would look at, issue 17).
static HOOKED: AtomicBool = AtomicBool::new(false);

fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Records that connection socket `fd` just received data.
#[inline]
pub(crate) fn note_read(fd: RawFd) {
    if !HOOKED.load(Ordering::Relaxed) {
        return;
    }
    LAST_FD.store(fd, Ordering::Relaxed);
    LAST_READ_NS.store(now_ns(), Ordering::Relaxed);
}

/// A tokio `on_thread_park` hook: right after distribution traffic, polls the most
/// recently active connection for up to [`SPIN`] before the worker parks (see the
/// module docs). Does nothing on a node without recent traffic.
pub fn spin_before_park() {
    if !HOOKED.load(Ordering::Relaxed) {
        HOOKED.store(true, Ordering::Relaxed);
    }
    let fd = LAST_FD.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let start = now_ns();
    if start.saturating_sub(LAST_READ_NS.load(Ordering::Relaxed)) > ACTIVE.as_nanos() as u64 {
        return;
    }
    // One spinner at a time: two would compete for the cores the peer needs.
    if SPINNING.swap(true, Ordering::Acquire) {
        return;
    }
    let limit = start + SPIN.as_nanos() as u64;
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        pfd.revents = 0;
        // SAFETY: `pfd` is a valid pollfd for the duration of the call; a zero timeout
        // never blocks. A stale descriptor only makes poll report on another file (or
        // POLLNVAL), which ends the spin early at worst.
        let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
        if ready != 0 || now_ns() >= limit {
            break;
        }
        std::hint::spin_loop();
    }
    SPINNING.store(false, Ordering::Release);
}
