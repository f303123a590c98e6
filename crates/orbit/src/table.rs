//! The process table: every live local process, by pid.
//!
//! Laid out as the BEAM's process table is: a pid's `id` is the index of its slot and
//! its `serial` the slot's generation, bumped each time the slot is reused, so a pid
//! whose process has exited never reaches a newer process in the same slot. Slots live
//! in segments of 4,096 allocated on first use and never freed; freed slots go on a
//! lock-free stack (a Treiber stack whose head carries a tag against ABA) and are
//! reused first, so the table stays as large as the most processes ever alive at once.
//!
//! Why not a concurrent hash map: inserting a million processes into one misses the
//! cache on random buckets, which made the map insert the largest single cost of a
//! spawn (`orbit-bench spawn`). Slots filled in order touch memory in order.
//!
//! A slot's generation is 32 bits: a stale pid could only meet a new process after its
//! slot has been reused 2^32 times while the stale pid was kept (the BEAM's pids, with
//! fewer bits, wrap sooner).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::pid::Pid;
use crate::process::ProcessHandle;
use crate::spin::SpinLock;

const SEGMENT_BITS: u32 = 12;
const SEGMENT: usize = 1 << SEGMENT_BITS;
/// At most 2^26 (67M) processes alive at once.
const SEGMENTS: usize = 1 << 14;
const MAX_SLOTS: u32 = (SEGMENTS * SEGMENT) as u32;
/// No slot: the end of the free stack.
const NIL: u32 = u32::MAX;

struct Slot {
    proc: SpinLock<Option<Arc<dyn ProcessHandle>>>,
    /// Generation of the slot; the pid's serial while a process holds it.
    generation: AtomicU32,
    /// Next free slot while this one is on the free stack.
    next_free: AtomicU32,
    live: AtomicBool,
}

struct Table {
    segments: Box<[OnceLock<Box<[Slot]>>]>,
    /// Slots ever handed out (index 0, the BEAM's `init` slot, is never used).
    fresh: AtomicU32,
    /// Free stack head: slot index in the low 32 bits, ABA tag in the high 32.
    free: AtomicU64,
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| Table {
        segments: (0..SEGMENTS).map(|_| OnceLock::new()).collect(),
        fresh: AtomicU32::new(1),
        free: AtomicU64::new(NIL as u64),
    })
}

impl Table {
    /// The slot at `index`, when its segment exists.
    #[inline]
    fn slot(&self, index: u32) -> Option<&Slot> {
        let seg = self.segments.get((index >> SEGMENT_BITS) as usize)?.get()?;
        seg.get(index as usize & (SEGMENT - 1))
    }

    /// The slot at `index`, allocating its segment on first use.
    fn slot_or_init(&self, index: u32) -> Option<&Slot> {
        let seg = self.segments.get((index >> SEGMENT_BITS) as usize)?;
        let seg = seg.get_or_init(|| {
            (0..SEGMENT)
                .map(|_| Slot {
                    proc: SpinLock::new(None),
                    generation: AtomicU32::new(0),
                    next_free: AtomicU32::new(NIL),
                    live: AtomicBool::new(false),
                })
                .collect()
        });
        seg.get(index as usize & (SEGMENT - 1))
    }

    fn pop_free(&self) -> Option<u32> {
        let mut head = self.free.load(Ordering::Acquire);
        loop {
            let index = head as u32;
            if index == NIL {
                return None;
            }
            // Slots are never freed, so reading a stale head's link is safe; the tag
            // makes the exchange fail if the head was popped and pushed meanwhile.
            let next = self.slot(index)?.next_free.load(Ordering::Relaxed);
            let tag = (head >> 32).wrapping_add(1);
            match self.free.compare_exchange_weak(
                head,
                tag << 32 | next as u64,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(index),
                Err(h) => head = h,
            }
        }
    }

    fn push_free(&self, index: u32, slot: &Slot) {
        let mut head = self.free.load(Ordering::Relaxed);
        loop {
            slot.next_free.store(head as u32, Ordering::Relaxed);
            let tag = (head >> 32).wrapping_add(1);
            match self.free.compare_exchange_weak(
                head,
                tag << 32 | index as u64,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }
}

/// Takes a free slot for a new process and returns its pid (the process is added with
/// [`fill`]); `None` when the table is full.
pub(crate) fn reserve() -> Option<Pid> {
    let t = table();
    let index = match t.pop_free() {
        Some(i) => i,
        None => {
            let i = t.fresh.fetch_add(1, Ordering::Relaxed);
            if i >= MAX_SLOTS {
                t.fresh.store(MAX_SLOTS, Ordering::Relaxed);
                return None;
            }
            i
        }
    };
    let slot = t.slot_or_init(index)?;
    // Reserved slots are ours alone until filled: a plain increment.
    let generation = slot.generation.load(Ordering::Relaxed).wrapping_add(1);
    slot.generation.store(generation, Ordering::Relaxed);
    Some(Pid::local(index, generation))
}

/// A fresh pid that names no process: a slot is reserved (its generation moves on, so
/// the pid is new) and freed again at once, as if its process had exited before anyone
/// saw it. `None` when the table is full.
pub(crate) fn reserve_exited() -> Option<Pid> {
    let pid = reserve()?;
    let t = table();
    if let Some(slot) = t.slot(pid.id()) {
        t.push_free(pid.id(), slot);
    }
    Some(pid)
}

/// Puts the process `p` into the slot reserved for `pid`.
pub(crate) fn fill(pid: Pid, p: Arc<dyn ProcessHandle>) {
    if let Some(slot) = table().slot(pid.id()) {
        *slot.proc.lock() = Some(p);
        slot.live.store(true, Ordering::Relaxed);
    }
}

/// Removes the process of `pid` and frees its slot for reuse.
pub(crate) fn remove(pid: Pid) {
    let t = table();
    let Some(slot) = t.slot(pid.id()) else { return };
    let old = {
        let mut p = slot.proc.lock();
        if slot.generation.load(Ordering::Relaxed) != pid.serial() || p.is_none() {
            return;
        }
        slot.live.store(false, Ordering::Relaxed);
        p.take()
    };
    t.push_free(pid.id(), slot);
    drop(old);
}

pub(crate) fn lookup(pid: Pid) -> Option<Arc<dyn ProcessHandle>> {
    if !pid.is_local() {
        return None;
    }
    let slot = table().slot(pid.id())?;
    let p = slot.proc.lock();
    if slot.generation.load(Ordering::Relaxed) != pid.serial() {
        return None;
    }
    p.clone()
}

/// Every live local process's pid (Erlang's `processes()`), in no particular order.
pub fn processes() -> Vec<Pid> {
    let mut out = Vec::new();
    for_each(|p| out.push(p.core().pid));
    out
}

/// Calls `f` on every live process, taking each slot's lock only to clone its process,
/// so no lock is held while `f` runs.
pub(crate) fn for_each(mut f: impl FnMut(&Arc<dyn ProcessHandle>)) {
    let t = table();
    let end = t.fresh.load(Ordering::Acquire).min(MAX_SLOTS);
    for index in 1..end {
        let Some(slot) = t.slot(index) else { continue };
        if !slot.live.load(Ordering::Relaxed) {
            continue;
        }
        let p = slot.proc.lock().clone();
        if let Some(p) = p {
            f(&p);
        }
    }
}

/// Number of live local processes (a scan of the table).
pub fn process_count() -> usize {
    let t = table();
    let end = t.fresh.load(Ordering::Acquire).min(MAX_SLOTS);
    (1..end)
        .filter(|&i| t.slot(i).is_some_and(|s| s.live.load(Ordering::Relaxed)))
        .count()
}
