//! Cheap timeouts for calls: a coarse timer driven by the `orbit-clock` thread.
//!
//! Every `GenServer.call` carries a timeout (5 s by default) that almost never fires.
//! A tokio timer costs a few hundred nanoseconds per call here (a clock read, a lock on
//! the timer wheel to register, another to cancel), more than the call itself. A
//! [`Timeout`] instead reads the coarse clock (one atomic load), and only when its
//! future is not ready on the first poll puts its waker in one of a few sharded slabs
//! (one uncontended lock), removing it again when done. The clock thread checks each
//! shard's earliest deadline every tick and wakes only expired entries, so a timeout
//! fires within about one tick (1 ms) after its deadline.
//!
//! Inside a process there is a cheaper path still: each process owns one reusable
//! timer slot (`ProcTimer`, boxed in its control block). The first timeout a process
//! waits on allocates the slot and puts the process in a registry the clock thread
//! scans; after that, arming the slot
//! is one atomic swap and disarming it a plain store, with no lock and no waker clone
//! while the process keeps polling on the same task. A second timeout running at the
//! same time in the same process (two calls joined) falls back to the shared slabs.
//! The clock thread scans the registry only when the earliest armed deadline has
//! passed, which for calls that complete is about once per timeout length.
//!
//! Not for precise timing: use `tokio::time` where sub-millisecond accuracy matters.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock;
use crate::process::{with_current, ProcessHandle};
use crate::spin::SpinLock;

const SHARDS: usize = 16;

struct Entry {
    deadline: u64,
    waker: Waker,
}

struct Shard {
    /// Earliest deadline in the shard (`u64::MAX` when empty); read without the lock.
    earliest: AtomicU64,
    slab: Mutex<slab::Slab<Entry>>,
}

fn shards() -> &'static [Shard; SHARDS] {
    static S: OnceLock<[Shard; SHARDS]> = OnceLock::new();
    S.get_or_init(|| {
        std::array::from_fn(|_| Shard {
            earliest: AtomicU64::new(u64::MAX),
            slab: Mutex::new(slab::Slab::new()),
        })
    })
}

fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// Lowers a shard's earliest deadline; skips the read-modify-write in the common case
/// where an earlier deadline is already recorded.
#[inline]
fn lower_earliest(earliest: &AtomicU64, deadline: u64) {
    if earliest.load(Ordering::Acquire) > deadline {
        earliest.fetch_min(deadline, Ordering::AcqRel);
    }
}

const DISARMED: u64 = u64::MAX;
const UNREGISTERED: u32 = u32::MAX;

/// A process's reusable timeout slot (see the module docs).
///
/// Written only from inside its process's task (whose polls never overlap), except
/// that the clock thread may move `deadline` from a passed value to `DISARMED` and
/// clone `waker` under its lock.
pub(crate) struct ProcTimer {
    /// Armed deadline, `DISARMED` when free.
    deadline: AtomicU64,
    /// The waker to wake at expiry; written under its lock, by the owner only.
    waker: SpinLock<Option<Waker>>,
    /// Data and vtable pointers of the stored waker, so the owner can see the waker is
    /// unchanged without taking the lock (read and written by the owner only).
    waker_data: AtomicUsize,
    waker_vtable: AtomicUsize,
    /// Index in the registry, `UNREGISTERED` before the first use.
    slot: std::sync::atomic::AtomicU32,
}

impl Default for ProcTimer {
    fn default() -> Self {
        ProcTimer {
            deadline: AtomicU64::new(DISARMED),
            waker: SpinLock::new(None),
            waker_data: AtomicUsize::new(0),
            waker_vtable: AtomicUsize::new(0),
            slot: std::sync::atomic::AtomicU32::new(UNREGISTERED),
        }
    }
}

/// Earliest deadline armed in any process's slot (`DISARMED` when none is known).
static PROC_EARLIEST: AtomicU64 = AtomicU64::new(DISARMED);

/// Processes whose slot has been used, for the clock thread's scan.
fn registry() -> &'static Mutex<slab::Slab<std::sync::Arc<dyn ProcessHandle>>> {
    static R: OnceLock<Mutex<slab::Slab<std::sync::Arc<dyn ProcessHandle>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(slab::Slab::new()))
}

/// Arms the calling process's slot for `deadline` and returns the process's pid; `None`
/// when not in a process or when the slot is taken by another timeout of the process.
fn arm_in_process(deadline: u64, waker: &Waker) -> Option<crate::pid::Pid> {
    with_current(|p| {
        // Allocated by the process's first timeout; only the owner ever arms it.
        let t: &ProcTimer = p.core().timer.get_or_init(Default::default);
        if t.deadline.load(Ordering::Relaxed) != DISARMED {
            return None;
        }
        if t.slot.load(Ordering::Relaxed) == UNREGISTERED {
            let key = registry().lock().insert(p.clone());
            t.slot.store(key as u32, Ordering::Relaxed);
        }
        set_waker(t, waker);
        // SeqCst swap and load pair with the clock thread's reset-then-scan, so
        // either it sees this deadline or this sees its reset and lowers it.
        t.deadline.swap(deadline, Ordering::SeqCst);
        if PROC_EARLIEST.load(Ordering::SeqCst) > deadline {
            PROC_EARLIEST.fetch_min(deadline, Ordering::SeqCst);
        }
        Some(p.core().pid)
    })
    .flatten()
}

fn set_waker(t: &ProcTimer, waker: &Waker) {
    // The same data and vtable pointers are what `Waker::will_wake` compares.
    let data = waker.data() as usize;
    let vtable = waker.vtable() as *const std::task::RawWakerVTable as usize;
    if t.waker_data.load(Ordering::Relaxed) == data
        && t.waker_vtable.load(Ordering::Relaxed) == vtable
    {
        return;
    }
    let old = t.waker.lock().replace(waker.clone());
    t.waker_data.store(data, Ordering::Relaxed);
    t.waker_vtable.store(vtable, Ordering::Relaxed);
    drop(old);
}

/// What the calling process's slot says about a timeout armed at `deadline`.
enum SlotState {
    /// Still armed for it.
    Armed,
    /// The clock thread fired it.
    Fired,
    /// Not polled from its own process: cannot tell.
    Elsewhere,
}

/// Runs `f` on `owner`'s slot when called from `owner`'s own task; `None` elsewhere.
fn in_owner<R>(owner: crate::pid::Pid, f: impl FnOnce(&ProcTimer) -> R) -> Option<R> {
    with_current(|p| {
        let t = p.core().timer.get()?;
        (p.core().pid == owner).then(|| f(t))
    })
    .flatten()
}

fn slot_state(owner: crate::pid::Pid, deadline: u64, waker: &Waker) -> SlotState {
    in_owner(owner, |t| {
        if t.deadline.load(Ordering::Acquire) != deadline {
            return SlotState::Fired;
        }
        set_waker(t, waker);
        SlotState::Armed
    })
    .unwrap_or(SlotState::Elsewhere)
}

fn disarm_in_process(owner: crate::pid::Pid, deadline: u64) {
    in_owner(owner, |t| {
        // Only the owner arms, so a value equal to ours is ours; the clock thread may
        // have disarmed it meanwhile, which this store repeats harmlessly.
        if t.deadline.load(Ordering::Relaxed) == deadline {
            t.deadline.store(DISARMED, Ordering::Release);
        }
    });
}

/// Called when a process ends: leaves the registry and drops the stored waker (which
/// would otherwise keep the finished task alive).
pub(crate) fn forget_process(t: &ProcTimer) {
    t.deadline.store(DISARMED, Ordering::Release);
    let slot = t.slot.swap(UNREGISTERED, Ordering::Relaxed);
    if slot != UNREGISTERED {
        let mut r = registry().lock();
        if r.contains(slot as usize) {
            r.remove(slot as usize);
        }
    }
    let w = t.waker.lock().take();
    t.waker_data.store(0, Ordering::Relaxed);
    t.waker_vtable.store(0, Ordering::Relaxed);
    drop(w);
}

fn fire_processes(now: u64) {
    if PROC_EARLIEST.load(Ordering::SeqCst) > now {
        return;
    }
    PROC_EARLIEST.store(DISARMED, Ordering::SeqCst);
    let mut expired = Vec::new();
    let mut earliest = DISARMED;
    {
        let r = registry().lock();
        for (_, p) in r.iter() {
            // A registered process has its slot: registering happens after allocating.
            let Some(t) = p.core().timer.get() else {
                continue;
            };
            let d = t.deadline.load(Ordering::SeqCst);
            if d <= now {
                if t.deadline
                    .compare_exchange(d, DISARMED, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    if let Some(w) = t.waker.lock().clone() {
                        expired.push(w);
                    }
                }
            } else {
                earliest = earliest.min(d);
            }
        }
    }
    if earliest != DISARMED {
        PROC_EARLIEST.fetch_min(earliest, Ordering::SeqCst);
    }
    for w in expired {
        w.wake();
    }
}

/// Called by the clock thread every tick: wakes every entry whose deadline has passed.
pub(crate) fn fire_expired(now: u64) {
    fire_processes(now);
    for shard in shards().iter() {
        if shard.earliest.load(Ordering::Acquire) > now {
            continue;
        }
        let mut expired = Vec::new();
        {
            let mut slab = shard.slab.lock();
            let mut earliest = u64::MAX;
            slab.retain(|_, e| {
                if e.deadline <= now {
                    expired.push(e.waker.clone());
                    false
                } else {
                    earliest = earliest.min(e.deadline);
                    true
                }
            });
            shard.earliest.store(earliest, Ordering::Release);
        }
        for w in expired {
            w.wake();
        }
    }
}

/// The output of a [`Timeout`] whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Runs `fut` until it completes or `limit` passes (coarse: fires up to about one
/// clock tick late). `Duration::MAX` never expires.
pub fn timeout<F: Future>(limit: Duration, fut: F) -> Timeout<F> {
    clock::start();
    let deadline = if limit == Duration::MAX {
        u64::MAX
    } else {
        clock::now().saturating_add(limit.as_nanos().min(u64::MAX as u128) as u64)
    };
    Timeout {
        fut,
        deadline,
        slot: Slot::None,
    }
}

/// Where a [`Timeout`]'s waker is registered.
#[derive(Clone, Copy)]
enum Slot {
    None,
    /// In the shared slabs: (shard, key).
    Shared(usize, usize),
    /// In this process's own slot.
    Process(crate::pid::Pid),
}

pin_project_lite::pin_project! {
    /// Future returned by [`timeout`].
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        deadline: u64,
        slot: Slot,
    }

    impl<F> PinnedDrop for Timeout<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            deregister(this.slot, *this.deadline);
        }
    }
}

fn deregister(slot: &mut Slot, deadline: u64) {
    match std::mem::replace(slot, Slot::None) {
        Slot::None => {}
        Slot::Shared(s, key) => {
            let mut slab = shards()[s].slab.lock();
            if slab.contains(key) {
                slab.remove(key);
            }
        }
        Slot::Process(owner) => disarm_in_process(owner, deadline),
    }
}

fn register_shared(deadline: u64, waker: &Waker) -> Slot {
    let s = my_shard();
    let shard = &shards()[s];
    let mut slab = shard.slab.lock();
    let key = slab.insert(Entry {
        deadline,
        waker: waker.clone(),
    });
    // Under the lock: the clock thread stores `earliest` under it too, so its store
    // can never overwrite this lowering with a stale minimum.
    lower_earliest(&shard.earliest, deadline);
    Slot::Shared(s, key)
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            deregister(this.slot, *this.deadline);
            return Poll::Ready(Ok(v));
        }
        let deadline = *this.deadline;
        if deadline == u64::MAX {
            return Poll::Pending;
        }
        if clock::now() >= deadline {
            deregister(this.slot, deadline);
            return Poll::Ready(Err(Elapsed));
        }
        match *this.slot {
            Slot::None => {
                *this.slot = match arm_in_process(deadline, cx.waker()) {
                    Some(pid) => Slot::Process(pid),
                    None => register_shared(deadline, cx.waker()),
                };
            }
            Slot::Process(owner) => match slot_state(owner, deadline, cx.waker()) {
                SlotState::Armed => {}
                SlotState::Fired => {
                    *this.slot = Slot::None;
                    return Poll::Ready(Err(Elapsed));
                }
                // Moved to another task: the old slot fires once, harmlessly; wait
                // in the shared slabs from here on.
                SlotState::Elsewhere => {
                    *this.slot = register_shared(deadline, cx.waker());
                }
            },
            Slot::Shared(s, key) => {
                let shard = &shards()[s];
                let mut slab = shard.slab.lock();
                match slab.get_mut(key) {
                    Some(e) if e.waker.will_wake(cx.waker()) => {}
                    Some(e) => e.waker = cx.waker().clone(),
                    // The clock thread removed it on expiry; the clock read above may
                    // still be a tick behind. Register again.
                    None => {
                        drop(slab);
                        *this.slot = register_shared(deadline, cx.waker());
                    }
                }
            }
        }
        Poll::Pending
    }
}
