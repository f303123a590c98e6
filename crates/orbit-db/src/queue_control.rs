//! DBConnection's queue target and interval (`db_connection/connection_pool.ex`): shed
//! load with a clear error instead of queueing forever.
//!
//! The pool tracks the shortest checkout wait of each `queue_interval`. When an interval
//! ends and even its shortest wait exceeded `queue_target`, the pool is *slow* for the
//! next interval: a caller that has waited more than `2 × queue_target` is dropped from
//! the queue with [`DbError::QueueDropped`](crate::DbError::QueueDropped). An interval
//! whose shortest wait is within the target ends the slow mode.
//!
//! How it maps onto [`ResourcePool`](orbit::pool::ResourcePool), which knows nothing of
//! it: every served checkout reports its wait ([`QueueControl::served`]); a queued
//! caller looks again every `queue_target` once it has waited `2 × queue_target`
//! ([`QueueControl::should_drop`]), which also closes an interval in which nothing was
//! served (DBConnection's poll timer, which uses the head of the queue's wait); while
//! the pool is not slow, looks are put off to the end of the current interval
//! ([`QueueControl::next_look`]: nothing can drop a caller before then). A dropped
//! caller leaves the queue, as DBConnection's `drop`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// The queue state of one pool.
#[derive(Debug)]
pub(crate) struct QueueControl {
    target: Duration,
    /// `2 × target`: how long a caller waits before its first look.
    first_look: Duration,
    interval: Duration,
    state: Mutex<State>,
    /// Copies of `state.next` and `state.min_delay` (ns since `base`; `u64::MAX`: no
    /// wait seen), written under the lock, so that [`QueueControl::served`] skips the
    /// lock for the common wait that changes nothing (not the interval's shortest,
    /// interval not over).
    base: Instant,
    next_ns: AtomicU64,
    min_ns: AtomicU64,
    /// A copy of `state.slow`, written under the lock, so that
    /// [`QueueControl::next_look`] (once per queued call) takes no lock.
    slow: AtomicBool,
}

#[derive(Debug)]
struct State {
    /// When the current interval ends.
    next: Instant,
    /// The shortest wait seen in the current interval (`None`: nothing seen yet).
    min_delay: Option<Duration>,
    /// Whether the previous interval was over target.
    slow: bool,
}

impl QueueControl {
    /// The control of a pool started `now`.
    pub(crate) fn new(target: Duration, interval: Duration, now: Instant) -> Self {
        QueueControl {
            target,
            first_look: target.saturating_mul(2),
            interval,
            state: Mutex::new(State {
                next: now + interval,
                min_delay: None,
                slow: false,
            }),
            base: now,
            next_ns: AtomicU64::new(nanos(interval)),
            min_ns: AtomicU64::new(u64::MAX),
            slow: AtomicBool::new(false),
        }
    }

    /// The pool's `queue_target`.
    pub(crate) fn target(&self) -> Duration {
        self.target
    }

    /// How long a queued caller waits before its first look (`2 × queue_target`).
    pub(crate) fn first_look(&self) -> Duration {
        self.first_look
    }

    /// A checkout was served after waiting `delay`.
    pub(crate) fn served(&self, delay: Duration, now: Instant) {
        // Lock-free when it changes nothing. A roll racing these loads can only make a
        // wait of the interval that just ended go unrecorded in it, where it was not
        // the shortest anyway. The interval's end is rebuilt as an instant (an
        // addition) rather than `now` turned into nanoseconds (a subtraction, which
        // costs four times as much).
        let next = self.base + Duration::from_nanos(self.next_ns.load(Ordering::Acquire));
        if now < next && nanos(delay) >= self.min_ns.load(Ordering::Acquire) {
            return;
        }
        self.record(delay, now);
    }

    /// The locked part of [`QueueControl::served`]: rolls the interval if it is over,
    /// then keeps `delay` if it is the interval's shortest.
    fn record(&self, delay: Duration, now: Instant) {
        let mut s = self.state.lock();
        self.roll(&mut s, now, delay);
        let min = s.min_delay.map_or(delay, |m| m.min(delay));
        s.min_delay = Some(min);
        self.min_ns.store(nanos(min), Ordering::Release);
    }

    /// A caller still queued after `waited`: true when it must give up.
    pub(crate) fn should_drop(&self, waited: Duration, now: Instant) -> bool {
        let mut s = self.state.lock();
        self.roll(&mut s, now, waited);
        s.slow && waited > self.first_look
    }

    /// When a queued caller that would look at `at` next must look: `at` while the
    /// pool is slow, otherwise not before the current interval ends, since until then
    /// nothing can make it slow and every look would answer "keep waiting". Waiters
    /// then share one deadline per interval instead of arming a timer earlier than any
    /// other (each of which wakes a parked runtime thread).
    ///
    /// Lock-free (atomic copies of the state). The interval end is read first: a roll
    /// writes the slow mark before the new end, so an end seen new comes with the mark
    /// seen new; an end seen old can only make the look early (it then looks again),
    /// never late.
    pub(crate) fn next_look(&self, at: Instant) -> Instant {
        let next_ns = self.next_ns.load(Ordering::Acquire);
        if self.slow.load(Ordering::Acquire) {
            return at;
        }
        at.max(self.base + Duration::from_nanos(next_ns))
    }

    /// Whether the pool is shedding load now.
    pub(crate) fn is_slow(&self) -> bool {
        let s = self.state.lock();
        // A verdict more than an interval old is stale: nothing was queued since.
        s.slow && Instant::now() < s.next + self.interval
    }

    /// Closes the interval if it is over; `seen` is a wait observed now (a lower bound
    /// of a wait that is not over yet counts, as DBConnection's poll counts the head of
    /// its queue).
    fn roll(&self, s: &mut State, now: Instant, seen: Duration) {
        if now < s.next {
            return;
        }
        let min = s.min_delay.map_or(seen, |m| m.min(seen));
        // A whole interval passed with nothing seen (queued callers look every
        // `queue_target`): the queue was idle, not slow.
        let idle_gap = now >= s.next + self.interval;
        s.slow = !idle_gap && min > self.target;
        self.slow.store(s.slow, Ordering::Release);
        s.min_delay = None;
        s.next = now + self.interval;
        self.min_ns.store(u64::MAX, Ordering::Release);
        self.next_ns.store(
            nanos(s.next.saturating_duration_since(self.base)),
            Ordering::Release,
        );
    }
}

/// `d` in nanoseconds, saturating (a wait of 584 years is as long as any); in `u64`
/// arithmetic (no 128-bit product on the served path).
fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(u64::from(d.subsec_nanos())))
        .map_or(u64::MAX - 1, |n| n.min(u64::MAX - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn slow_only_after_a_whole_interval_over_target() {
        let t0 = Instant::now();
        let q = QueueControl::new(50 * MS, 1000 * MS, t0);
        q.served(200 * MS, t0 + 100 * MS);
        q.served(10 * MS, t0 + 500 * MS); // one fast checkout: not slow
        assert!(!q.should_drop(300 * MS, t0 + 1001 * MS));
        q.served(80 * MS, t0 + 1100 * MS);
        q.served(90 * MS, t0 + 1500 * MS);
        // The interval [1001, 2001) only saw waits over target: slow from 2001 on.
        assert!(q.should_drop(101 * MS, t0 + 2002 * MS));
        assert!(!q.should_drop(99 * MS, t0 + 2003 * MS));
        // A fast interval ends the slow mode.
        q.served(Duration::ZERO, t0 + 2100 * MS);
        assert!(!q.should_drop(500 * MS, t0 + 3002 * MS));
    }

    #[test]
    fn looks_wait_for_the_interval_end_unless_slow() {
        let t0 = Instant::now();
        let q = QueueControl::new(50 * MS, 1000 * MS, t0);
        // Not slow: no look before the interval ends; a later one is kept.
        assert_eq!(q.next_look(t0 + 100 * MS), t0 + 1000 * MS);
        assert_eq!(q.next_look(t0 + 1200 * MS), t0 + 1200 * MS);
        // A whole interval over target: slow, looks come at their own time.
        q.served(200 * MS, t0 + 100 * MS);
        assert!(q.should_drop(200 * MS, t0 + 1000 * MS));
        assert_eq!(q.next_look(t0 + 1100 * MS), t0 + 1100 * MS);
    }

    #[test]
    fn the_lock_free_path_still_sees_the_shortest_wait() {
        let t0 = Instant::now();
        let q = QueueControl::new(50 * MS, 1000 * MS, t0);
        q.served(200 * MS, t0 + 100 * MS);
        q.served(300 * MS, t0 + 200 * MS); // longer: skipped without the lock
        q.served(60 * MS, t0 + 300 * MS); // shorter: recorded
        assert_eq!(q.state.lock().min_delay, Some(60 * MS));
        // Over target for the whole interval: slow from its end.
        assert!(q.should_drop(200 * MS, t0 + 1000 * MS));
        // The next interval starts empty: a long wait is recorded again, not skipped.
        q.served(400 * MS, t0 + 1100 * MS);
        assert_eq!(q.state.lock().min_delay, Some(400 * MS));
        q.served(Duration::ZERO, t0 + 1200 * MS);
        assert!(!q.should_drop(500 * MS, t0 + 2001 * MS));
    }

    #[test]
    fn a_wait_served_at_the_interval_end_rolls_the_interval() {
        let t0 = Instant::now();
        let q = QueueControl::new(50 * MS, 1000 * MS, t0);
        q.served(200 * MS, t0 + 100 * MS);
        // A longer wait one nanosecond before the end changes nothing (lock-free).
        q.served(300 * MS, t0 + 1000 * MS - Duration::from_nanos(1));
        assert_eq!(q.state.lock().min_delay, Some(200 * MS));
        assert_eq!(q.state.lock().next, t0 + 1000 * MS);
        // The same wait at the end's very instant closes the interval (over target:
        // slow) and starts the next one with it.
        q.served(300 * MS, t0 + 1000 * MS);
        let s = q.state.lock();
        assert!(s.slow);
        assert_eq!(s.next, t0 + 2000 * MS);
        assert_eq!(s.min_delay, Some(300 * MS));
    }

    #[test]
    fn nanos_saturates_below_the_no_wait_mark() {
        assert_eq!(nanos(Duration::from_nanos(1_500)), 1_500);
        assert_eq!(nanos(Duration::new(3, 7)), 3_000_000_007);
        assert_eq!(nanos(Duration::MAX), u64::MAX - 1);
        assert_eq!(nanos(Duration::from_nanos(u64::MAX)), u64::MAX - 1);
        assert_eq!(
            nanos(Duration::new(u64::MAX / 1_000_000_000, 0)) % 1_000_000_000,
            0
        );
    }

    #[test]
    fn an_idle_gap_is_not_slow() {
        let t0 = Instant::now();
        let q = QueueControl::new(50 * MS, 1000 * MS, t0);
        q.served(200 * MS, t0 + 100 * MS);
        assert!(!q.should_drop(200 * MS, t0 + 5000 * MS));
    }
}
