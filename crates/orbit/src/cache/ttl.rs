//! Expiry bookkeeping: each item's deadline, and the per-partition expiry wheel that the
//! sweeper walks.
//!
//! ConCache keeps expiry in its owner process, so every write with a TTL is a message to
//! that one process. Here a writer updates its item's deadline in place (under the
//! table's shard lock, in the same step as the write) and, only when needed, appends
//! the key to one of [`WHEEL_PARTS`] mutex-guarded wheels. Writers of different keys
//! rarely meet; none waits for a process.
//!
//! Time is cut into ticks of `ttl_check_interval`; tick `n` ends at `n × interval` on
//! the cache's clock, where the sweeper runs. An item with deadline `d` belongs to tick
//! `ceil(d / interval)`: the first sweep at or after `d`. So it is swept no earlier than
//! `d` and no later than `d + interval`.
//!
//! Each item remembers the tick it is queued under (`queued`). A write that moves the
//! deadline later leaves the queue entry alone; the sweep of that tick finds the later
//! deadline and queues the key again. A write that moves it earlier queues it at the
//! earlier tick; the old entry is then stale (its tick no longer matches `queued`) and
//! the sweep skips it. So a hot key costs one queue entry per TTL, not one per write.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;

use super::hash::{partition, Padded};
use super::options::Ttl;

/// Number of expiry wheel partitions.
pub const WHEEL_PARTS: usize = 32;

/// No deadline / no TTL.
pub(crate) const NEVER: u64 = u64::MAX;

/// An item's expiry state, in clock nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// When it expires ([`NEVER`]: it does not).
    pub(crate) deadline: u64,
    /// Its last TTL, for [`Ttl::Renew`] ([`NEVER`]: infinity).
    pub(crate) ttl: u64,
    /// The tick it is queued under on the wheel (0: not queued).
    pub(crate) queued: u64,
}

impl Meta {
    pub(crate) const NONE: Meta = Meta {
        deadline: NEVER,
        ttl: NEVER,
        queued: 0,
    };
}

/// A cache item as stored in the table: the value and its expiry.
///
/// Equality compares values only (so a bag refuses an identical value whatever its
/// expiry).
#[derive(Clone)]
pub struct Entry<V> {
    pub(crate) value: V,
    pub(crate) meta: Meta,
}

impl<V> Entry<V> {
    pub(crate) fn new(value: V) -> Self {
        Entry {
            value,
            meta: Meta::NONE,
        }
    }

    /// The stored value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// When the item expires on the cache's clock; `None` if it does not.
    pub fn expires_at(&self) -> Option<Duration> {
        (self.meta.deadline != NEVER).then(|| Duration::from_nanos(self.meta.deadline))
    }

    /// The TTL a [`Ttl::Renew`] would reapply; `None` for infinity.
    pub fn ttl(&self) -> Option<Duration> {
        (self.meta.ttl != NEVER).then(|| Duration::from_nanos(self.meta.ttl))
    }
}

impl<V: PartialEq> PartialEq for Entry<V> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<V: fmt::Debug> fmt::Debug for Entry<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("value", &self.value)
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

/// The tick arithmetic of one cache.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticks {
    /// `ttl_check_interval` in nanoseconds (at least 1).
    pub(crate) interval: u64,
}

impl Ticks {
    /// The tick whose sweep first sees `deadline` as passed.
    #[inline]
    pub(crate) fn of_deadline(&self, deadline: u64) -> u64 {
        deadline.div_ceil(self.interval).max(1)
    }

    /// The last tick a sweep at `now` takes off the wheel: every tick that may hold a
    /// deadline at or before `now` (the last one may also hold later deadlines; the
    /// sweep queues those again).
    #[inline]
    pub(crate) fn current(&self, now: u64) -> u64 {
        self.of_deadline(now)
    }

    /// Applies a write's TTL to `meta`; returns the tick to queue the key under, if the
    /// key must be (newly) queued.
    #[inline]
    pub(crate) fn apply(&self, meta: &mut Meta, ttl: Ttl, now: u64) -> Option<u64> {
        match ttl {
            Ttl::NoUpdate => None,
            Ttl::Infinity => {
                *meta = Meta {
                    deadline: NEVER,
                    ttl: NEVER,
                    queued: meta.queued,
                };
                None
            }
            Ttl::After(d) if d.is_zero() => self.apply(meta, Ttl::Infinity, now),
            Ttl::After(d) => {
                meta.ttl = nanos(d);
                self.set_deadline(meta, now.saturating_add(meta.ttl))
            }
            Ttl::Renew if meta.ttl == NEVER => None,
            Ttl::Renew => self.set_deadline(meta, now.saturating_add(meta.ttl)),
        }
    }

    #[inline]
    fn set_deadline(&self, meta: &mut Meta, deadline: u64) -> Option<u64> {
        meta.deadline = deadline;
        let tick = self.of_deadline(deadline);
        if meta.queued == 0 || meta.queued > tick {
            meta.queued = tick;
            Some(tick)
        } else {
            None
        }
    }

    /// What the sweep of `tick` at `now` does with a key queued there.
    pub(crate) fn decide(&self, meta: &mut Meta, tick: u64, now: u64) -> Sweep {
        if meta.queued != tick {
            return Sweep::Stale;
        }
        if meta.deadline == NEVER {
            meta.queued = 0;
            return Sweep::Stale;
        }
        if meta.deadline <= now {
            return Sweep::Expire;
        }
        let t = self.of_deadline(meta.deadline);
        meta.queued = t;
        Sweep::Requeue(t)
    }
}

/// The sweep's verdict on one queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sweep {
    /// Not this entry's business any more (moved, or no longer expiring).
    Stale,
    /// Past its deadline: delete.
    Expire,
    /// Deadline moved later: queue again under this tick.
    Requeue(u64),
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(NEVER - 1)
}

/// One wheel partition: keys by tick.
type Slots<K> = Mutex<BTreeMap<u64, Vec<K>>>;

/// Keys waiting for their tick, by tick, in [`WHEEL_PARTS`] partitions.
pub(crate) struct Wheel<K> {
    parts: Box<[Padded<Slots<K>>]>,
}

impl<K> Wheel<K> {
    pub(crate) fn new() -> Self {
        Wheel {
            parts: (0..WHEEL_PARTS)
                .map(|_| Padded(Mutex::new(BTreeMap::new())))
                .collect(),
        }
    }

    /// Queues `key` (whose hash is `hash`) under `tick`.
    #[inline]
    pub(crate) fn push(&self, hash: u64, key: K, tick: u64) {
        self.parts[partition(hash, WHEEL_PARTS)]
            .lock()
            .entry(tick)
            .or_default()
            .push(key);
    }

    /// Takes every queue of partition `part` whose tick is at most `tick`.
    pub(crate) fn take_due(&self, part: usize, tick: u64) -> BTreeMap<u64, Vec<K>> {
        let mut m = self.parts[part].lock();
        let later = m.split_off(&tick.saturating_add(1));
        std::mem::replace(&mut *m, later)
    }

    /// Number of queue entries (live and stale).
    pub(crate) fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.lock().values().map(Vec::len).sum::<usize>())
            .sum()
    }
}
