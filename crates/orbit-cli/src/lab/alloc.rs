//! A global allocator that counts the heap bytes in use.
//!
//! Resident memory (RSS) is what the operating system sees; after a burst the
//! allocator keeps freed pages for reuse, so RSS stays high and a later scenario's growth
//! hides inside it. The lab reports both: RSS from `orbit::telemetry`, and the exact heap
//! in use from this counter (one relaxed atomic add per allocation and free).
//!
//! Underneath is mimalloc rather than glibc's malloc: process spawns are bound by
//! allocation and page faults, and with mimalloc they run about twice as fast and take
//! a quarter less memory per idle process (see `crates/orbit-bench/README.md`).

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;
use std::sync::atomic::{AtomicIsize, Ordering};

static IN_USE: AtomicIsize = AtomicIsize::new(0);

/// mimalloc, counting.
pub struct Counting;

// SAFETY: every method forwards to mimalloc with the caller's arguments unchanged and
// only adds bookkeeping on an atomic, so mimalloc's guarantees carry over.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = MiMalloc.alloc(layout);
        if !p.is_null() {
            IN_USE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = MiMalloc.alloc_zeroed(layout);
        if !p.is_null() {
            IN_USE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        MiMalloc.dealloc(ptr, layout);
        IN_USE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = MiMalloc.realloc(ptr, layout, new_size);
        if !p.is_null() {
            IN_USE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

/// Heap bytes in use now.
pub fn heap_bytes() -> u64 {
    IN_USE.load(Ordering::Relaxed).max(0) as u64
}
