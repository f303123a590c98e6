//! Per-key locks: exclusive per *section*, FIFO for waiters, released when the section's
//! future is dropped; re-entry is explicit.
//!
//! ConCache runs one lock *process* per partition, so every locked write is a round trip
//! through it. Here a partition is a mutex over a map `key -> Resource` held only for a
//! few instructions: an uncontended lock is two short critical sections and no message.
//!
//! # Contract
//!
//! - **A section is one acquisition.** Every `lock`/`try_lock` call that takes a key's
//!   lock is a section of its own (a fresh section id), whoever calls it: two futures
//!   of one process or one task (`join!`) exclude each other exactly as two processes
//!   do. The [`Holder`] (process, task or caller) a section runs in is recorded only to
//!   name it in errors.
//! - **Not re-entrant.** A section that asks for its own key's lock again would wait for
//!   itself. Inside a section run by `within` (every `isolated*`, and the function of
//!   `get_or_store`/`fetch_or_store`), such a nested request is detected and fails at
//!   once with [`CacheError::AlreadyHeld`]. Re-entry is explicit: the holder of a
//!   `KeyLock` passes it (`ConCache::isolated_with`). A section held through a bare
//!   `KeyLock` outside `within` cannot be told from a sibling future of the same task, so
//!   a nested plain request there waits, and its [`CacheError::LockTimeout`] says the
//!   holder is the caller's own process or task.
//! - **FIFO, with a direct handoff.** A release hands the lock to the first waiter under
//!   the partition's mutex (the waiter becomes the owner before it even runs), so no
//!   later arrival can overtake it.
//! - **Timeouts and cancellation decide under the same mutex.** A waiter that gives up
//!   (its lock timeout fired) looks, under the partition's mutex, at whether the lock was
//!   handed to it meanwhile: if it was, it keeps it (the acquisition succeeded; it is not
//!   a timeout); if not, it leaves the queue in the same critical section, so no release
//!   can hand it the lock afterwards. So a waiter that timed out never owns the lock, and
//!   every waiter still queued is live: a release never hands the lock to a waiter that
//!   is gone. A waiter whose future is dropped (killed process, cancelled call) leaves the
//!   queue the same way, or, if it had just been handed the lock, passes it on to the
//!   next waiter in that critical section (no lost wakeup, no stuck lock).
//! - A holder that dies releases: the lock is a guard living in the holder's future. A
//!   panic unwinds through it; a killed process has its future dropped.
//!
//! # Model-checked
//!
//! The handoff (acquire, queue, release to the first waiter, a waiter giving up
//! concurrently with the release, a granted waiter dropped before it runs) runs on
//! `crate::sync` types, and `loom_*` tests below explore its interleavings on this very
//! code: `scripts/loom cache::lock` (a few seconds). They assert that two sections never
//! hold a key at once, that a waiter that timed out never holds it, and that the lock
//! ends free with every waiter served.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::error::CacheError;
use super::hash::{partition, KeyHash, Padded};
use crate::pid::Pid;
use crate::sync::{Mutex, MutexGuard};

/// Who runs a section (for error messages and [`lock_holder`]); not what makes a section.
///
/// [`lock_holder`]: super::ConCache::lock_holder
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Holder {
    /// An Orbit process.
    Process(Pid),
    /// A tokio task outside any process.
    Task(tokio::task::Id),
    /// Code outside any task (e.g. `block_on`), numbered per thread.
    Caller(u64),
}

static NEXT_CALLER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static CALLER: u64 = NEXT_CALLER.fetch_add(1, Ordering::Relaxed);
}

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
        Holder::Caller(CALLER.try_with(|c| *c).unwrap_or(0))
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Process(p) => write!(f, "process {p:?}"),
            Holder::Task(id) => write!(f, "tokio task {id}"),
            Holder::Caller(n) => write!(f, "caller #{n} (a thread outside any task)"),
        }
    }
}

/// One acquisition of a key's lock: unique for the life of the program.
pub(crate) type Section = u64;

/// Section ids only need to be unique, not synchronised: a std atomic (a `static`,
/// which loom's atomics cannot be) is fine under the model too.
static NEXT_SECTION: AtomicU64 = AtomicU64::new(1);

fn new_section() -> Section {
    NEXT_SECTION.fetch_add(1, Ordering::Relaxed)
}

tokio::task_local! {
    /// The sections the running future is inside (see [`within`]).
    static SECTIONS: Vec<Section>;
}

/// Runs `fut` inside `sections`: a lock request made while polling `fut` for a key one
/// of them holds fails with [`CacheError::AlreadyHeld`] instead of waiting for itself.
/// Only `fut` sees it: a sibling future (`join!`) or a spawned task does not.
pub(crate) async fn within<F: Future>(sections: &[Section], fut: F) -> F::Output {
    let mut all = SECTIONS.try_with(Vec::clone).unwrap_or_default();
    all.extend_from_slice(sections);
    SECTIONS.scope(all, fut).await
}

/// Whether the running future is inside `section`.
fn inside(section: Section) -> bool {
    SECTIONS.try_with(|s| s.contains(&section)).unwrap_or(false)
}

struct Waiter {
    section: Section,
    holder: Holder,
    waker: Option<Waker>,
}

struct Resource {
    owner: Section,
    holder: Holder,
    waiters: VecDeque<Waiter>,
}

impl Resource {
    fn held_by(owner: Section, holder: Holder) -> Self {
        Resource {
            owner,
            holder,
            waiters: VecDeque::new(),
        }
    }

    /// Removes `section` from the queue; whether it was there.
    fn leave(&mut self, section: Section) -> bool {
        match self.waiters.iter().position(|w| w.section == section) {
            Some(i) => {
                self.waiters.remove(i);
                true
            }
            None => false,
        }
    }
}

type Map<K> = HashMap<K, Resource, KeyHash>;
type Part<K> = Mutex<Map<K>>;

/// The lock partitions of one cache.
pub(crate) struct Locks<K> {
    parts: Box<[Padded<Part<K>>]>,
    hasher: KeyHash,
}

/// A held lock (one section); releases on drop, handing the lock to the next waiter.
pub(crate) struct Guard<'a, K: Hash + Eq + Clone> {
    locks: &'a Locks<K>,
    part: usize,
    key: K,
    section: Section,
}

impl<K: Hash + Eq + Clone> Guard<'_, K> {
    /// The section this guard is.
    pub(crate) fn section(&self) -> Section {
        self.section
    }

    /// The key it locks.
    pub(crate) fn key(&self) -> &K {
        &self.key
    }

    /// Whether it is a guard of `locks`.
    pub(crate) fn of(&self, locks: &Locks<K>) -> bool {
        std::ptr::eq(self.locks, locks)
    }
}

impl<K: Hash + Eq + Clone> Drop for Guard<'_, K> {
    fn drop(&mut self) {
        self.locks.release(self.part, &self.key, self.section);
    }
}

/// The outcome of asking for a lock without waiting.
pub(crate) enum Acquire<'a, K: Hash + Eq + Clone> {
    /// It was free: held now.
    Held(Guard<'a, K>),
    /// Queued behind the holder.
    Queued(Waiting<'a, K>),
}

/// A place in a key's queue. Dropped while queued, it leaves the queue; dropped after
/// the lock was handed to it, it passes the lock on. Either way in one critical section.
pub(crate) struct Waiting<'a, K: Hash + Eq + Clone> {
    locks: &'a Locks<K>,
    part: usize,
    /// `None` once turned into a guard or given up.
    key: Option<K>,
    section: Section,
    holder: Holder,
}

impl<'a, K: Hash + Eq + Clone> Waiting<'a, K> {
    /// Ready once the lock was handed to this waiter (it is then the owner already).
    pub(crate) fn poll_granted(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(key) = &self.key else {
            return Poll::Ready(());
        };
        let mut m = self.locks.part(self.part);
        match m.get_mut(key) {
            Some(r) if r.owner == self.section => Poll::Ready(()),
            Some(r) => {
                match r.waiters.iter_mut().find(|w| w.section == self.section) {
                    Some(w) => match &mut w.waker {
                        Some(old) if old.will_wake(cx.waker()) => {}
                        slot => *slot = Some(cx.waker().clone()),
                    },
                    // Neither owner nor queued cannot happen (only this waiter takes
                    // itself off the queue, except by a handoff that makes it the
                    // owner); were it to, queue again rather than wait forever.
                    None => r.waiters.push_back(Waiter {
                        section: self.section,
                        holder: self.holder,
                        waker: Some(cx.waker().clone()),
                    }),
                }
                Poll::Pending
            }
            // Likewise impossible (a queued key keeps its resource); take the free lock.
            None => {
                m.insert(key.clone(), Resource::held_by(self.section, self.holder));
                Poll::Ready(())
            }
        }
    }

    /// After [`poll_granted`](Self::poll_granted) returned ready: the held lock.
    pub(crate) fn into_guard(mut self) -> Option<Guard<'a, K>> {
        let key = self.key.take()?;
        Some(Guard {
            locks: self.locks,
            part: self.part,
            key,
            section: self.section,
        })
    }

    /// Gives up waiting (the timeout fired). `Ok(guard)` if the lock was handed over
    /// before that took effect (the acquisition succeeded); otherwise leaves the queue,
    /// in the same critical section, and returns the current holder.
    pub(crate) fn give_up(mut self) -> Result<Guard<'a, K>, Holder> {
        let Some(key) = self.key.take() else {
            return Err(self.holder);
        };
        let mut m = self.locks.part(self.part);
        match m.get_mut(&key) {
            Some(r) if r.owner == self.section => {
                drop(m);
                Ok(Guard {
                    locks: self.locks,
                    part: self.part,
                    key,
                    section: self.section,
                })
            }
            Some(r) => {
                r.leave(self.section);
                Err(r.holder)
            }
            // Impossible (see poll_granted); nobody holds it, so nobody to name.
            None => Err(self.holder),
        }
    }
}

impl<K: Hash + Eq + Clone> Drop for Waiting<'_, K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let wake = {
            let mut m = self.locks.part(self.part);
            match m.get_mut(&key) {
                // Handed the lock while going away: pass it on.
                Some(r) if r.owner == self.section => Locks::hand_on(&mut m, &key),
                Some(r) => {
                    r.leave(self.section);
                    None
                }
                None => None,
            }
        };
        if let Some(w) = wake {
            w.wake();
        }
    }
}

/// Mutexes per configured lock partition. In ConCache a partition is a process that
/// serves every lock of its keys in turn; here a partition is only a mutex guarding a
/// lock table, so each is striped further to keep writers on different cores from
/// queueing on the same mutex. Per-key semantics (exclusive, FIFO) do not change.
const STRIPES_PER_PARTITION: usize = 16;

impl<K: Hash + Eq + Clone> Locks<K> {
    pub(crate) fn new(n: usize, hasher: KeyHash) -> Self {
        Locks {
            parts: (0..n.max(1) * STRIPES_PER_PARTITION)
                .map(|_| Padded(Mutex::new(HashMap::with_hasher(hasher.clone()))))
                .collect(),
            hasher,
        }
    }

    #[inline]
    fn part_of(&self, key: &K) -> usize {
        partition(crate::hash::hash_of(&self.hasher, key), self.parts.len())
    }

    /// A partition's map. A panic while it was locked (a key's `Hash` or `Eq`) leaves
    /// the map consistent (every change is one map operation); the lock does not poison.
    #[inline]
    fn part(&self, i: usize) -> MutexGuard<'_, Map<K>> {
        self.parts[i].lock()
    }

    /// Takes the key's lock if it is free, else queues for it. A key held by a section
    /// the caller is `within`: [`CacheError::AlreadyHeld`].
    pub(crate) fn acquire(&self, key: &K, holder: Holder) -> Result<Acquire<'_, K>, CacheError> {
        let part = self.part_of(key);
        let section = new_section();
        let mut m = self.part(part);
        match m.get_mut(key) {
            None => {
                m.insert(key.clone(), Resource::held_by(section, holder));
                drop(m);
                Ok(Acquire::Held(Guard {
                    locks: self,
                    part,
                    key: key.clone(),
                    section,
                }))
            }
            Some(r) if inside(r.owner) => Err(CacheError::AlreadyHeld { holder: r.holder }),
            Some(r) => {
                r.waiters.push_back(Waiter {
                    section,
                    holder,
                    waker: None,
                });
                drop(m);
                Ok(Acquire::Queued(Waiting {
                    locks: self,
                    part,
                    key: Some(key.clone()),
                    section,
                    holder,
                }))
            }
        }
    }

    /// Takes the key's lock, waiting up to `timeout` behind earlier waiters.
    pub(crate) async fn lock(
        &self,
        key: &K,
        holder: Holder,
        timeout: Duration,
    ) -> Result<Guard<'_, K>, CacheError> {
        let mut waiting = match self.acquire(key, holder)? {
            Acquire::Held(g) => return Ok(g),
            Acquire::Queued(w) => w,
        };
        let granted =
            tokio::time::timeout(timeout, std::future::poll_fn(|cx| waiting.poll_granted(cx)))
                .await
                .is_ok();
        let got = if granted {
            waiting.into_guard().ok_or(holder)
        } else {
            waiting.give_up()
        };
        got.map_err(|owner| CacheError::LockTimeout {
            holder: owner,
            timeout,
            own: owner == holder,
        })
    }

    /// Takes the key's lock only if it is free now: [`CacheError::Locked`] naming the
    /// holder otherwise ([`CacheError::AlreadyHeld`] if the caller is within it).
    pub(crate) fn try_lock(&self, key: &K, holder: Holder) -> Result<Guard<'_, K>, CacheError> {
        let part = self.part_of(key);
        let section = new_section();
        let mut m = self.part(part);
        match m.get_mut(key) {
            None => {
                m.insert(key.clone(), Resource::held_by(section, holder));
            }
            Some(r) if inside(r.owner) => return Err(CacheError::AlreadyHeld { holder: r.holder }),
            Some(r) => return Err(CacheError::Locked { holder: r.holder }),
        }
        drop(m);
        Ok(Guard {
            locks: self,
            part,
            key: key.clone(),
            section,
        })
    }

    /// Who runs the section holding the key's lock now, if anyone.
    pub(crate) fn holder(&self, key: &K) -> Option<Holder> {
        self.part(self.part_of(key)).get(key).map(|r| r.holder)
    }

    /// Number of callers waiting for the key's lock.
    pub(crate) fn waiters(&self, key: &K) -> usize {
        self.part(self.part_of(key))
            .get(key)
            .map_or(0, |r| r.waiters.len())
    }

    /// Releases `section`'s hold on `key` (nothing if it does not hold it).
    fn release(&self, part: usize, key: &K, section: Section) {
        let wake = {
            let mut m = self.part(part);
            match m.get(key) {
                Some(r) if r.owner == section => Self::hand_on(&mut m, key),
                _ => None,
            }
        };
        // Woken outside the mutex: the waiter's first act is to take it.
        if let Some(w) = wake {
            w.wake();
        }
    }

    /// The owner of `key` lets go: the first waiter becomes the owner (its waker is
    /// returned, to wake once the mutex is released), or the key is freed.
    fn hand_on(m: &mut Map<K>, key: &K) -> Option<Waker> {
        let r = m.get_mut(key)?;
        match r.waiters.pop_front() {
            Some(w) => {
                r.owner = w.section;
                r.holder = w.holder;
                w.waker
            }
            None => {
                m.remove(key);
                None
            }
        }
    }
}

#[cfg(all(test, orbit_loom))]
mod loom_tests {
    //! Loom models of the handoff on the real `Locks`: run with `scripts/loom cache::lock`.
    //! A lock timeout is modelled as the waiter giving up at an arbitrary point relative
    //! to the release (loom explores every order); a killed waiter as its `Waiting`
    //! dropped likewise.

    use super::*;
    use crate::sync::{Arc, AtomicUsize};
    use loom::thread;
    use std::sync::atomic::Ordering::SeqCst;

    fn locks() -> Arc<Locks<u64>> {
        Arc::new(Locks::new(1, KeyHash::default()))
    }

    /// Counts sections inside at once; asserts exclusivity on entry.
    fn section(inside: &AtomicUsize) {
        assert_eq!(inside.fetch_add(1, SeqCst), 0, "two sections hold the key");
        inside.fetch_sub(1, SeqCst);
    }

    const WHO: Holder = Holder::Caller(0);

    /// Takes the lock, blocking (loom-parking) until it is handed over.
    fn take(l: &Locks<u64>) -> Guard<'_, u64> {
        match l.acquire(&1, WHO) {
            Ok(Acquire::Held(g)) => g,
            Ok(Acquire::Queued(mut w)) => {
                // A waker that unparks this loom thread; park until granted.
                struct Unpark(loom::thread::Thread);
                impl std::task::Wake for Unpark {
                    fn wake(self: std::sync::Arc<Self>) {
                        self.0.unpark();
                    }
                }
                let waker = Waker::from(std::sync::Arc::new(Unpark(thread::current())));
                let mut cx = Context::from_waker(&waker);
                while w.poll_granted(&mut cx).is_pending() {
                    thread::park();
                }
                match w.into_guard() {
                    Some(g) => g,
                    None => panic!("granted without a guard"),
                }
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// The holder releases while a queued waiter's timeout fires (it gives up) and a
    /// second waiter waits. The one that gave up either got the lock (and holds it
    /// alone) or never holds it; the patient one is always served (no lost wakeup);
    /// the lock ends free.
    #[test]
    fn loom_timeout_at_release() {
        loom::model(|| {
            let l = locks();
            let inside = Arc::new(AtomicUsize::new(0));
            let g = take(&l);
            let (l1, i1) = (l.clone(), inside.clone());
            let impatient = thread::spawn(move || match l1.acquire(&1, WHO) {
                Ok(Acquire::Held(g)) => {
                    section(&i1);
                    drop(g);
                }
                Ok(Acquire::Queued(w)) => {
                    // The timeout fires now, wherever the release is.
                    if let Ok(g) = w.give_up() {
                        section(&i1);
                        drop(g);
                    }
                }
                Err(e) => panic!("{e}"),
            });
            let (l2, i2) = (l.clone(), inside.clone());
            let patient = thread::spawn(move || {
                let g = take(&l2);
                section(&i2);
                drop(g);
            });
            section(&inside);
            drop(g);
            impatient.join().unwrap();
            patient.join().unwrap();
            assert_eq!(l.holder(&1), None, "the lock ends free");
            assert_eq!(l.waiters(&1), 0, "no waiter left behind");
        });
    }

    /// A queued waiter dropped (its process killed) concurrently with the release that
    /// may hand it the lock: the lock goes on to the next waiter, never lost.
    #[test]
    fn loom_dropped_waiter_passes_the_lock_on() {
        loom::model(|| {
            let l = locks();
            let inside = Arc::new(AtomicUsize::new(0));
            let g = take(&l);
            // Queued first, so the release hands it the lock unless it is gone.
            let doomed = match l.acquire(&1, WHO) {
                Ok(Acquire::Queued(w)) => {
                    let s = w.section;
                    std::mem::forget(w);
                    s
                }
                _ => panic!("not queued"),
            };
            let (l2, i2) = (l.clone(), inside.clone());
            let next = thread::spawn(move || {
                let g = take(&l2);
                section(&i2);
                drop(g);
            });
            let l1 = l.clone();
            let killer = thread::spawn(move || {
                // Rebuild the doomed waiter's place (its future lives on this thread) and
                // drop it, as a killed process drops its future.
                drop(Waiting {
                    locks: &*l1,
                    part: l1.part_of(&1),
                    key: Some(1),
                    section: doomed,
                    holder: WHO,
                });
            });
            section(&inside);
            drop(g);
            killer.join().unwrap();
            next.join().unwrap();
            assert_eq!(l.holder(&1), None);
            assert_eq!(l.waiters(&1), 0);
        });
    }

    /// Three sections contend for one key (acquire, queue, release and wake on the
    /// real code): exclusive, and every one served.
    #[test]
    fn loom_contended_acquire_release() {
        loom::model(|| {
            let l = locks();
            let inside = Arc::new(AtomicUsize::new(0));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let (l, inside) = (l.clone(), inside.clone());
                    thread::spawn(move || {
                        let g = take(&l);
                        section(&inside);
                        drop(g);
                    })
                })
                .collect();
            let g = take(&l);
            section(&inside);
            drop(g);
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!(l.holder(&1), None);
            assert_eq!(l.waiters(&1), 0);
        });
    }
}
