//! The crate's one time source: [`Clock`], the real [`SystemClock`] and the test
//! [`ManualClock`]. Telemetry ([`Rate`](super::Rate), [`SystemSampler`](super::SystemSampler))
//! reads it for its windows; a [`ConCache`](crate::cache::ConCache) for its TTLs.
//!
//! A cache asks its clock for the time on every write that sets a TTL (and on every
//! read with `touch_on_read`), and its sweeper sleeps on the clock between sweeps. With a
//! [`ManualClock`] a test moves time by hand: TTL bounds are then checked exactly, with
//! no sleeps.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// A future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A monotonic clock: time since an arbitrary origin, and a way to wait for a moment.
pub trait Clock: Send + Sync + 'static {
    /// The time now, since this clock's origin. Never goes backwards.
    fn now(&self) -> Duration;

    /// Completes once [`now`](Self::now) has reached `at`.
    fn sleep_until(&self, at: Duration) -> Sleep;
}

/// Real time: a monotonic TSC-based clock (`quanta`); sleeps on tokio's timer.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: quanta::Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: quanta::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Duration {
        quanta::Instant::now().saturating_duration_since(self.origin)
    }

    fn sleep_until(&self, at: Duration) -> Sleep {
        let wait = at.saturating_sub(self.now());
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to ([`advance`](Self::advance), [`set`](Self::set)):
/// for tests of time rules without sleeps. Sleepers wake when the clock passes their
/// moment.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
    sleepers: Mutex<Vec<(u64, oneshot::Sender<()>)>>,
}

impl ManualClock {
    /// A clock standing at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `d` and wakes every sleeper whose moment has come.
    pub fn advance(&self, d: Duration) {
        let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let now = self.nanos.fetch_add(d, Ordering::AcqRel).saturating_add(d);
        self.wake(now);
    }

    /// Moves the clock to `t` (never backwards: an earlier `t` leaves it where it is).
    pub fn set(&self, t: Duration) {
        let t = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
        let now = self.nanos.fetch_max(t, Ordering::AcqRel).max(t);
        self.wake(now);
    }

    /// Number of sleepers waiting for a later moment (tests use it to know the sweeper
    /// is parked before moving time).
    pub fn sleepers(&self) -> usize {
        let mut s = self.sleepers.lock();
        s.retain(|(_, tx)| !tx.is_closed());
        s.len()
    }

    fn wake(&self, now: u64) {
        let due: Vec<oneshot::Sender<()>> = {
            let mut s = self.sleepers.lock();
            let (due, rest) = std::mem::take(&mut *s)
                .into_iter()
                .partition(|(at, _)| *at <= now);
            *s = rest;
            due.into_iter().map(|(_, tx)| tx).collect()
        };
        for tx in due {
            let _ = tx.send(());
        }
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    fn sleep_until(&self, at: Duration) -> Sleep {
        let at = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        let (tx, rx) = oneshot::channel();
        {
            // Registering under the lock that `wake` takes means a concurrent advance
            // either sees this sleeper or has already moved the clock past the check.
            let mut s = self.sleepers.lock();
            if self.nanos.load(Ordering::Acquire) >= at {
                return Box::pin(std::future::ready(()));
            }
            s.push((at, tx));
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl<C: Clock> Clock for std::sync::Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
    fn sleep_until(&self, at: Duration) -> Sleep {
        (**self).sleep_until(at)
    }
}
