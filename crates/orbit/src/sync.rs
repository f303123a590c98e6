//! The synchronisation primitives that model-checked modules use.
//!
//! Normally these are `std`'s atomics and `UnsafeCell`. Built with
//! `RUSTFLAGS="--cfg orbit_loom"` (see `scripts/loom`), they are [loom]'s, so that the
//! loom models in this crate (tests named `loom_*`, compiled only under that cfg) explore
//! every interleaving of the real code rather than of a copy. The cfg has its own name
//! instead of loom's usual `loom` so that tokio, which reacts to `cfg(loom)`, builds as
//! usual.
//!
//! Only modules without `static` atomics can use this facade (loom's atomics are not
//! `const`-constructible, and exist only inside `loom::model`).
//!
//! [loom]: https://docs.rs/loom
#![allow(unused_imports, dead_code)]

#[cfg(not(orbit_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(orbit_loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(orbit_loom))]
pub(crate) use std::thread::yield_now;

#[cfg(orbit_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(orbit_loom)]
pub(crate) use loom::sync::Arc;
#[cfg(orbit_loom)]
pub(crate) use loom::thread::yield_now;

/// `UnsafeCell` with loom's closure-based access API, so the same code checks under loom.
#[cfg(not(orbit_loom))]
#[derive(Debug, Default)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(orbit_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared pointer to the value.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a mutable pointer to the value.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(orbit_loom)]
pub(crate) use loom::cell::UnsafeCell;

// ---- Mutex (added for the pool's checkout model; other modules may use it) ----------
//
// `parking_lot::Mutex` normally; under `orbit_loom`, loom's mutex behind the same
// guard-returning `lock()` (a poisoned loom lock is entered anyway, as parking_lot has
// no poisoning).

/// `parking_lot::Mutex` normally, loom's `Mutex` under `orbit_loom`.
#[cfg(not(orbit_loom))]
pub(crate) type Mutex<T> = parking_lot::Mutex<T>;

/// The guard of [`Mutex`].
#[cfg(not(orbit_loom))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

/// loom's `Mutex` with parking_lot's `lock()` signature.
#[cfg(orbit_loom)]
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

/// The guard of [`Mutex`].
#[cfg(orbit_loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

#[cfg(orbit_loom)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
// ---- end Mutex -----------------------------------------------------------------------
