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
//! Not for precise timing: use `tokio::time` where sub-millisecond accuracy matters.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock;

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

/// Called by the clock thread every tick: wakes every entry whose deadline has passed.
pub(crate) fn fire_expired(now: u64) {
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
        slot: None,
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`timeout`].
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        deadline: u64,
        // (shard, key) of the registered waker.
        slot: Option<(usize, usize)>,
    }

    impl<F> PinnedDrop for Timeout<F> {
        fn drop(this: Pin<&mut Self>) {
            deregister(this.project().slot);
        }
    }
}

fn deregister(slot: &mut Option<(usize, usize)>) {
    if let Some((s, key)) = slot.take() {
        let mut slab = shards()[s].slab.lock();
        if slab.contains(key) {
            slab.remove(key);
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            deregister(this.slot);
            return Poll::Ready(Ok(v));
        }
        let deadline = *this.deadline;
        if deadline == u64::MAX {
            return Poll::Pending;
        }
        if clock::now() >= deadline {
            deregister(this.slot);
            return Poll::Ready(Err(Elapsed));
        }
        match *this.slot {
            None => {
                let s = my_shard();
                let shard = &shards()[s];
                let mut slab = shard.slab.lock();
                let key = slab.insert(Entry {
                    deadline,
                    waker: cx.waker().clone(),
                });
                // Under the lock: the clock thread stores `earliest` under it too, so
                // its store can never overwrite this lowering with a stale minimum.
                lower_earliest(&shard.earliest, deadline);
                drop(slab);
                *this.slot = Some((s, key));
            }
            Some((s, key)) => {
                let shard = &shards()[s];
                let mut slab = shard.slab.lock();
                match slab.get_mut(key) {
                    Some(e) if e.waker.will_wake(cx.waker()) => {}
                    Some(e) => e.waker = cx.waker().clone(),
                    // The clock thread removed it on expiry; the clock read above may
                    // still be a tick behind. Register again.
                    None => {
                        let key = slab.insert(Entry {
                            deadline,
                            waker: cx.waker().clone(),
                        });
                        lower_earliest(&shard.earliest, deadline);
                        *this.slot = Some((s, key));
                    }
                }
            }
        }
        Poll::Pending
    }
}
