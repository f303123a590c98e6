//! Per-key locks: re-entrant for their holder, FIFO for waiters, released when the
//! holder dies.
//!
//! ConCache runs one lock *process* per partition, so every locked write is a round trip
//! through it. Here a partition is a mutex over a map `key -> Resource` held only for a
//! few instructions: an uncontended lock is two short critical sections and no message.
//!
//! - A key's resource exists while someone holds or awaits the key's lock.
//! - The holder is the calling process ([`Holder::Process`]); outside any process the
//!   calling tokio task; outside both, each call is its own holder (no re-entrancy).
//! - Re-entrant: the holder locks again without waiting (a count).
//! - FIFO: waiters queue on the resource; a release hands the lock to the first waiter
//!   directly, so no later arrival can overtake it.
//! - A holder that dies releases: the lock is a guard living in the holder's future. A
//!   panic unwinds through it; a killed process has its future dropped. A waiter that
//!   dies (or times out) leaves the queue the same way.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::error::CacheError;
use super::hash::{partition, KeyHash, Padded};
use crate::pid::Pid;

/// Who holds (or waits for) a key's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Holder {
    /// An Orbit process.
    Process(Pid),
    /// A tokio task outside any process.
    Task(tokio::task::Id),
    /// Code outside any task (e.g. `block_on`); each call is a holder of its own.
    Caller(u64),
}

static NEXT_CALLER: AtomicU64 = AtomicU64::new(1);

impl Holder {
    /// The caller's identity.
    #[inline]
    pub fn current() -> Holder {
        if let Some(pid) = crate::process::self_pid() {
            return Holder::Process(pid);
        }
        if let Some(id) = tokio::task::try_id() {
            return Holder::Task(id);
        }
        Holder::Caller(NEXT_CALLER.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Process(p) => write!(f, "process {p:?}"),
            Holder::Task(id) => write!(f, "tokio task {id}"),
            Holder::Caller(n) => write!(f, "caller #{n} (outside any task)"),
        }
    }
}

struct Waiter {
    id: u64,
    holder: Holder,
    tx: oneshot::Sender<()>,
}

struct Resource {
    owner: Holder,
    count: u32,
    waiters: VecDeque<Waiter>,
}

type Part<K> = Mutex<HashMap<K, Resource, KeyHash>>;

/// The lock partitions of one cache.
pub(crate) struct Locks<K> {
    parts: Box<[Padded<Part<K>>]>,
    hasher: KeyHash,
    next_waiter: AtomicU64,
}

/// A held lock; releases on drop.
pub(crate) struct Guard<'a, K: Hash + Eq + Clone> {
    locks: &'a Locks<K>,
    part: usize,
    key: K,
    holder: Holder,
}

impl<K: Hash + Eq + Clone> Drop for Guard<'_, K> {
    fn drop(&mut self) {
        self.locks.release(self.part, &self.key, self.holder);
    }
}

/// A place in a queue; leaves it (or releases a lock granted meanwhile) when dropped.
struct Waiting<'a, K: Hash + Eq + Clone> {
    locks: &'a Locks<K>,
    part: usize,
    key: Option<K>,
    id: u64,
    holder: Holder,
}

impl<K: Hash + Eq + Clone> Waiting<'_, K> {
    /// Leaves the queue: `Err(current owner)` if still queued, `Ok(())` if the lock was
    /// handed over meanwhile (the caller now holds it).
    fn leave(&mut self) -> Result<(), Holder> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let mut m = self.locks.parts[self.part].lock();
        if let Some(r) = m.get_mut(key) {
            if let Some(i) = r.waiters.iter().position(|w| w.id == self.id) {
                r.waiters.remove(i);
                return Err(r.owner);
            }
        }
        Ok(())
    }
}

impl<K: Hash + Eq + Clone> Drop for Waiting<'_, K> {
    fn drop(&mut self) {
        if self.key.is_some() && self.leave().is_ok() {
            // Granted while we were going away: pass it on.
            if let Some(key) = self.key.take() {
                self.locks.release(self.part, &key, self.holder);
            }
        }
    }
}

/// Mutexes per configured lock partition. In ConCache a partition is a process that
/// serves every lock of its keys in turn; here a partition is only a mutex guarding a
/// lock table, so each is striped further to keep writers on different cores from
/// queueing on the same mutex. Per-key semantics (re-entrant, FIFO) do not change.
const STRIPES_PER_PARTITION: usize = 16;

impl<K: Hash + Eq + Clone> Locks<K> {
    pub(crate) fn new(n: usize, hasher: KeyHash) -> Self {
        Locks {
            parts: (0..n.max(1) * STRIPES_PER_PARTITION)
                .map(|_| Padded(Mutex::new(HashMap::with_hasher(hasher.clone()))))
                .collect(),
            hasher,
            next_waiter: AtomicU64::new(1),
        }
    }

    #[inline]
    fn part_of(&self, key: &K) -> usize {
        partition(crate::hash::hash_of(&self.hasher, key), self.parts.len())
    }

    /// Takes the key's lock, waiting up to `timeout` behind earlier waiters.
    pub(crate) async fn lock(
        &self,
        key: &K,
        holder: Holder,
        timeout: Duration,
    ) -> Result<Guard<'_, K>, CacheError> {
        let part = self.part_of(key);
        let (id, rx) = {
            let mut m = self.parts[part].lock();
            match m.get_mut(key) {
                None => {
                    m.insert(key.clone(), Resource::held_by(holder));
                    return Ok(self.guard(part, key, holder));
                }
                Some(r) if r.owner == holder => {
                    r.count += 1;
                    return Ok(self.guard(part, key, holder));
                }
                Some(r) => {
                    let id = self.next_waiter.fetch_add(1, Ordering::Relaxed);
                    let (tx, rx) = oneshot::channel();
                    r.waiters.push_back(Waiter { id, holder, tx });
                    (id, rx)
                }
            }
        };
        let mut waiting = Waiting {
            locks: self,
            part,
            key: Some(key.clone()),
            id,
            holder,
        };
        let granted = tokio::time::timeout(timeout, rx).await.is_ok();
        if !granted {
            if let Err(owner) = waiting.leave() {
                waiting.key = None;
                return Err(CacheError::LockTimeout {
                    holder: owner,
                    timeout,
                });
            }
        }
        // Granted (by message, or just before the timeout took effect).
        let key = waiting.key.take().unwrap_or_else(|| key.clone());
        Ok(Guard {
            locks: self,
            part,
            key,
            holder,
        })
    }

    /// Takes the key's lock only if it is free (or already ours).
    pub(crate) fn try_lock(&self, key: &K, holder: Holder) -> Result<Guard<'_, K>, CacheError> {
        let part = self.part_of(key);
        let mut m = self.parts[part].lock();
        match m.get_mut(key) {
            None => {
                m.insert(key.clone(), Resource::held_by(holder));
            }
            Some(r) if r.owner == holder => r.count += 1,
            Some(r) => return Err(CacheError::Locked { holder: r.owner }),
        }
        drop(m);
        Ok(self.guard(part, key, holder))
    }

    /// Who holds the key's lock now, if anyone.
    pub(crate) fn holder(&self, key: &K) -> Option<Holder> {
        self.parts[self.part_of(key)]
            .lock()
            .get(key)
            .map(|r| r.owner)
    }

    /// Number of callers waiting for the key's lock.
    pub(crate) fn waiters(&self, key: &K) -> usize {
        self.parts[self.part_of(key)]
            .lock()
            .get(key)
            .map_or(0, |r| r.waiters.len())
    }

    fn guard(&self, part: usize, key: &K, holder: Holder) -> Guard<'_, K> {
        Guard {
            locks: self,
            part,
            key: key.clone(),
            holder,
        }
    }

    fn release(&self, part: usize, key: &K, holder: Holder) {
        let mut m = self.parts[part].lock();
        let Some(r) = m.get_mut(key) else { return };
        if r.owner != holder {
            return;
        }
        r.count -= 1;
        if r.count > 0 {
            return;
        }
        while let Some(w) = r.waiters.pop_front() {
            r.owner = w.holder;
            r.count = 1;
            if w.tx.send(()).is_ok() {
                return;
            }
        }
        m.remove(key);
    }
}

impl Resource {
    fn held_by(owner: Holder) -> Self {
        Resource {
            owner,
            count: 1,
            waiters: VecDeque::new(),
        }
    }
}
