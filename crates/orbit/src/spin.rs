//! A minimal spin lock for critical sections of a few instructions (the mailbox).
//!
//! Why hand-written rather than `parking_lot::Mutex`: on the message path every atomic
//! read-modify-write counts (in a profile of `orbit-bench call` the mailbox's lock and
//! unlock were most of `Recv::poll`). A `parking_lot` unlock is a compare-and-swap because it must notice
//! parked waiters; this lock never parks, so its unlock is a plain release store and
//! each critical section pays one atomic instead of two. The `spin` crate's mutex has
//! the same fast path but only a stateless relax hook, so it cannot spin briefly and
//! then yield, which matters on shared vCPUs where a lock holder can be descheduled.
//!
//! # Contract
//!
//! - At most one [`SpinGuard`] of a lock exists at a time; it gives `&mut T`, and the
//!   lock's acquire/release pair orders every access to `T` between holders.
//! - `SpinLock<T>` is `Send + Sync` when `T: Send` (like `Mutex<T>`). The guard is
//!   `Sync` only when `T: Sync` (a shared guard hands out `&T` to every thread that can
//!   see it) and is never `Send`: a guard cannot travel into a spawned future, so the
//!   compiler refuses to hold the lock across an `await` of a `Send` task, where a
//!   suspended holder would leave every other thread spinning.
//! - Use only where the lock is held for a bounded handful of instructions: no
//!   allocation, no waker, no user code, and never across an `await`.
//!
//! # Model checking
//!
//! The lock is built from [`crate::sync`], so under `RUSTFLAGS="--cfg orbit_loom"` its
//! atomic flag, its cell and its yield are loom's. `scripts/loom` runs every model of
//! the crate, these among them (the mailbox's models also go through this lock on
//! every operation); to run only these, `RUSTFLAGS="--cfg orbit_loom" cargo test -p
//! orbit --lib --release --target-dir target/loom -- spin::loom_tests`.
//! - `loom_spin_two_threads_exclude`, `loom_spin_three_threads_exclude`: two or three
//!   threads each do a non-atomic read-modify-write through the guard; loom's cell
//!   tracking fails the model on any access not ordered by the lock, and the final
//!   count shows no increment was lost. 68 and 4,368 interleavings at preemption
//!   bound 3 (what `scripts/loom` sets), under a second together.
//!
//! Checked to fail: with the unlock's ordering weakened to `Relaxed`, or with `lock`
//! not waiting for a held lock, both spin models and the mailbox's models fail
//! ("Causality violation: Concurrent write accesses to `UnsafeCell`").
//!
//! What differs under loom, and why (the uncontended `swap(true, Acquire)`, the guard
//! and the cell are the same code):
//! - The unlock is `swap(false, Release)` instead of `store(false, Release)`: loom
//!   places a plain store after only the stores its thread has seen, so a waiter's
//!   swap (unseen by the holder) can stay "newest" and be read forever, a spin that
//!   cannot happen on hardware.
//! - A contended `lock` retries the swap and yields to loom's scheduler instead of
//!   spinning on a relaxed load (each stale load is one more branch), and only one
//!   waiter at a time spins (a loom mutex queues the others): two yielding waiters
//!   can otherwise hand the processor to each other forever, which loom reports as
//!   "exceeded maximum number of branches".
//!
//! The guard's `Send`/`Sync` bounds are checked by the unit test
//! `guard_is_not_send_and_sync_only_for_sync_values`; `cargo +nightly miri test -p
//! orbit --lib spin::` runs the unit tests under Miri.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;

use crate::sync::{AtomicBool, UnsafeCell};

/// A lock that spins (then yields the thread) instead of parking.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
    /// Under loom only: lets one waiter at a time spin (see `lock_contended`).
    #[cfg(orbit_loom)]
    waiters: loom::sync::Mutex<()>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time, like a mutex.
unsafe impl<T: Send> Send for SpinLock<T> {}
// SAFETY: as above; `&SpinLock<T>` only gives `&mut T` through an exclusive guard.
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// Exclusive access to the locked value; unlocks on drop.
///
/// Not `Send` (see the module's contract) and `Sync` only for `T: Sync`.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    /// Under loom, the tracked access to the cell, held as long as the guard.
    #[cfg(orbit_loom)]
    ptr: Option<loom::cell::MutPtr<T>>,
    /// Removes the auto `Send` and `Sync` the reference above would give (they would
    /// follow `SpinLock<T>: Sync`, that is `T: Send`, which is too weak for `Sync`).
    _not_send: PhantomData<*mut T>,
}

// SAFETY: a shared `&SpinGuard<T>` only gives `&T` (`Deref`); handing `&T` to other
// threads is what `T: Sync` permits. `&mut T` needs `&mut SpinGuard`, which is unique.
unsafe impl<T: Sync> Sync for SpinGuard<'_, T> {}

impl<T> SpinLock<T> {
    pub(crate) fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
            #[cfg(orbit_loom)]
            waiters: loom::sync::Mutex::new(()),
        }
    }

    /// Takes the lock, spinning while another thread holds it.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        if self.locked.swap(true, Ordering::Acquire) {
            self.lock_contended();
        }
        self.guard()
    }

    /// Takes the lock if it is free.
    #[cfg(all(test, not(orbit_loom)))]
    pub(crate) fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        if self.locked.swap(true, Ordering::Acquire) {
            None
        } else {
            Some(self.guard())
        }
    }

    /// The guard of a lock this thread has just taken.
    #[inline(always)]
    fn guard(&self) -> SpinGuard<'_, T> {
        SpinGuard {
            lock: self,
            #[cfg(orbit_loom)]
            ptr: Some(self.value.get_mut()),
            _not_send: PhantomData,
        }
    }

    #[cold]
    fn lock_contended(&self) {
        #[cfg(not(orbit_loom))]
        {
            let mut spins = 0u32;
            loop {
                // Wait on a plain load so the cache line is shared, not bounced.
                while self.locked.load(Ordering::Relaxed) {
                    relax(&mut spins);
                }
                if !self.locked.swap(true, Ordering::Acquire) {
                    return;
                }
            }
        }
        // Under loom: retry the swap itself and yield to the model's scheduler each
        // round, one waiter at a time (see "Model checking" in the module docs).
        #[cfg(orbit_loom)]
        {
            let _one_waiter = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            while self.locked.swap(true, Ordering::Acquire) {
                crate::sync::yield_now();
            }
        }
    }
}

/// One round of waiting for the holder: a few dozen spin hints, then yield the thread,
/// since the holder may have been descheduled.
#[cfg(not(orbit_loom))]
#[inline]
fn relax(spins: &mut u32) {
    if *spins < 64 {
        std::hint::spin_loop();
        *spins += 1;
    } else {
        crate::sync::yield_now();
    }
}

impl<T> SpinGuard<'_, T> {
    #[inline(always)]
    fn ptr(&self) -> *mut T {
        #[cfg(orbit_loom)]
        {
            match &self.ptr {
                // SAFETY: `ptr` is loom's tracked pointer for as long as this guard
                // lives; the reference is used only while the guard is borrowed.
                Some(p) => unsafe { p.deref() as *mut T },
                // Only `drop` takes it, and nothing derefs the guard after that.
                None => unreachable!("guard used after drop"),
            }
        }
        #[cfg(not(orbit_loom))]
        {
            self.lock.value.with_mut(|p| p)
        }
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.ptr() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this thread holds the lock, and
        // `&mut self` makes this the only reference through it.
        unsafe { &mut *self.ptr() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Under loom, the tracked access ends before the lock is released.
        #[cfg(orbit_loom)]
        drop(self.ptr.take());
        #[cfg(not(orbit_loom))]
        self.lock.locked.store(false, Ordering::Release);
        // Under loom, a release swap instead of a release store (same ordering): loom
        // orders a plain store only after the stores its thread has seen, so a waiter's
        // failed swap (not seen by the holder) could be "newer" than the unlock and the
        // waiter's swap could read it forever. An RMW reads the newest value.
        #[cfg(orbit_loom)]
        self.lock.locked.swap(false, Ordering::Release);
    }
}

#[cfg(all(test, not(orbit_loom)))]
mod tests {
    use super::{SpinGuard, SpinLock};
    use std::cell::Cell;
    use std::marker::PhantomData;
    use std::sync::Arc;

    /// Autoref specialisation: `(&Probe::<T>(..)).is_sync()` resolves to the first
    /// impl when `T: Sync` and falls back to the second otherwise, so the answer is a
    /// value a test can assert on (a `compile_fail` doctest cannot see crate-private
    /// types).
    struct Probe<T>(PhantomData<T>);
    trait YesSync {
        fn is_sync(&self) -> bool {
            true
        }
    }
    impl<T: Sync> YesSync for Probe<T> {}
    trait NoSync {
        fn is_sync(&self) -> bool {
            false
        }
    }
    impl<T> NoSync for &Probe<T> {}
    trait YesSend {
        fn is_send(&self) -> bool {
            true
        }
    }
    impl<T: Send> YesSend for Probe<T> {}
    trait NoSend {
        fn is_send(&self) -> bool {
            false
        }
    }
    impl<T> NoSend for &Probe<T> {}

    macro_rules! is_sync {
        ($t:ty) => {
            (&Probe::<$t>(PhantomData)).is_sync()
        };
    }
    macro_rules! is_send {
        ($t:ty) => {
            (&Probe::<$t>(PhantomData)).is_send()
        };
    }

    #[test]
    fn guard_is_not_send_and_sync_only_for_sync_values() {
        // The probe itself tells the two apart.
        assert!(is_sync!(u32) && !is_sync!(Cell<u32>));
        assert!(is_send!(u32) && !is_send!(*const u8));
        // The lock is a mutex: shareable whenever the value may move between threads.
        assert!(is_sync!(SpinLock<Cell<u32>>) && is_send!(SpinLock<Cell<u32>>));
        // A guard shared across threads hands `&T` to each of them: for a `Cell` (Send,
        // not Sync) that is a data race from safe code, so the guard must not be Sync.
        assert!(
            !is_sync!(SpinGuard<'static, Cell<u32>>),
            "SpinGuard<Cell<u32>> is Sync"
        );
        assert!(
            is_sync!(SpinGuard<'static, u32>),
            "SpinGuard<u32> is not Sync"
        );
        // Never Send: a guard cannot be held across an await in a spawned task.
        assert!(!is_send!(SpinGuard<'static, u32>), "SpinGuard<u32> is Send");
    }

    #[test]
    fn excludes_concurrent_writers() {
        let per_thread = if cfg!(miri) { 200 } else { 100_000 };
        let lock = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..per_thread {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        assert_eq!(*lock.lock(), 4 * per_thread);
    }

    #[test]
    fn try_lock_fails_while_held() {
        let lock = SpinLock::new(1u8);
        let g = lock.lock();
        assert!(lock.try_lock().is_none());
        drop(g);
        let g = lock.try_lock().expect("free lock");
        assert_eq!(*g, 1);
    }
}

#[cfg(all(test, orbit_loom))]
mod loom_tests {
    use super::SpinLock;
    use crate::sync::Arc;

    /// Mutual exclusion of the real lock: each thread does a non-atomic
    /// read-modify-write through the guard; loom's cell tracking fails the model on any
    /// overlapping access, and the final count shows no increment was lost.
    fn increments(threads: usize) {
        loom::model(move || {
            let lock = Arc::new(SpinLock::new(0usize));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let lock = lock.clone();
                    loom::thread::spawn(move || {
                        let mut g = lock.lock();
                        let v = *g;
                        *g = v + 1;
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("thread");
            }
            assert_eq!(*lock.lock(), threads);
        });
    }

    #[test]
    fn loom_spin_two_threads_exclude() {
        increments(2);
    }

    #[test]
    fn loom_spin_three_threads_exclude() {
        increments(3);
    }
}
