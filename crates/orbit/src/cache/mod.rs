//! ConCache: an ETS-backed key/value cache with TTLs, per-key isolated writes and
//! write callbacks (the contract of the Elixir library `con_cache`), without its
//! single-process bottleneck.
//!
//! ```
//! use std::time::Duration;
//! use orbit::cache::{ConCache, CacheOptions, Ttl};
//! # #[tokio::main] async fn main() -> Result<(), orbit::cache::CacheError> {
//! let cache: ConCache<String, u64> = ConCache::start(
//!     CacheOptions::new()
//!         .ttl_check_interval(Duration::from_secs(1))
//!         .global_ttl(Ttl::After(Duration::from_secs(60))),
//! ).await?;
//! cache.put("a".into(), 1).await?;
//! cache.update(&"a".into(), |v| Ok::<_, orbit::cache::CacheError>(v.unwrap_or(0) + 1)).await?;
//! assert_eq!(cache.get("a")?, Some(2));
//! let n = cache.get_or_store(&"b".into(), || async { 7 }).await?;
//! assert_eq!(n, 7);
//! # Ok(()) }
//! ```
//!
//! # The contract
//!
//! **Starting.** [`ConCache::start`] takes [`CacheOptions`]. `ttl_check_interval` is
//! required: a duration, or off ([`CacheOptions::no_ttl_check`]). Off with a `global_ttl`, or
//! an interval without a `global_ttl`, is [`CacheError::InvalidOptions`] (as ConCache
//! raises). Defaults as ConCache: `touch_on_read` off, `acquire_lock_timeout` 5 s, no
//! callback, a `set` table, `n_lock_partitions` = available parallelism. The cache is an
//! owner process (label `con_cache`) that owns the table and, with expiry on, sweeps it;
//! it stops with [`ConCache::stop`], when its owner is killed, or when the last handle
//! is dropped. After that every operation fails with [`CacheError::Stopped`]. A cache
//! started by a supervisor ([`ConCache::child_spec`]) is kept alive by its owner instead
//! of its handles, registered under its name, and found with [`ConCache::whereis`].
//!
//! **Reads** never lock. [`get`](ConCache::get) counts a hit or a miss (also in the
//! `metrics` facade: `orbit_cache_hits_total` / `orbit_cache_misses_total`, label
//! `cache`) and, with `touch_on_read`, renews the item's TTL. A read checks the item's
//! deadline itself: an item past its TTL is a miss from that instant on, whether or not
//! the sweeper has removed it yet (ConCache leaves it readable until the sweep; see
//! *Expiry*).
//!
//! **Writes** (`put`, `insert_new`, `update`, `update_existing`, `get_or_store`,
//! `fetch_or_store`, `delete`) take the key's lock first, so two of them on one key never
//! interleave; each has a `dirty_*` twin that skips the lock. `isolated(key, fut)` runs
//! any future under the key's lock; `try_isolated` fails with [`CacheError::Locked`]
//! instead of waiting; a wait longer than the timeout fails with
//! [`CacheError::LockTimeout`] naming the holder. [`lock`](ConCache::lock) returns the
//! lock itself ([`KeyLock`]). Waiters are served first come first served, and a holder
//! that dies (panics, or is killed) releases its locks: see [`Locks`](self#locks).
//!
//! **Exclusive per section, re-entry explicit.** Each acquisition of a key's lock is a
//! *section* of its own: two futures of one process or one task (`join!`) exclude each
//! other exactly as two processes do. (ConCache's locks are re-entrant for the holding
//! process; keyed on the process here, two futures of one process both got in.) So a
//! lock is not re-entrant: inside a section, write the key with the `dirty_*`
//! operations; to run code that isolates the key again, take the lock with
//! [`lock`](ConCache::lock) and pass it: [`isolated_with(&lock, key, fut)`](ConCache::isolated_with)
//! runs `fut` at once in the same section. A plain locked operation on a key the caller
//! is inside a section of (within `isolated*`, or the function of `*_or_store`) fails at
//! once with [`CacheError::AlreadyHeld`] instead of waiting for itself; while holding a
//! bare [`KeyLock`], it waits until [`CacheError::LockTimeout`], whose message then says
//! that the holder is the caller's own process or task.
//!
//! - `insert_new` on an existing key: [`CacheError::AlreadyExists`].
//! - `update` calls your function with the current value (or `None`); `Ok(v)` stores
//!   `v`, `Err(e)` stores nothing and returns `e`. `update_existing` on a missing key:
//!   [`CacheError::NotExisting`].
//! - `get_or_store` reads without the lock; on a miss it locks and reads again, so its
//!   function runs once per key however many processes miss at once. `fetch_or_store`'s
//!   function may fail, and then nothing is stored.
//! - `update*` and `*_or_store` on a bag or duplicate_bag cache:
//!   [`CacheError::WrongType`].
//! - The callback sees [`CacheEvent::Update`] after every write and [`CacheEvent::Delete`] before
//!   every delete, expiries included.
//!
//! **Expiry.** A write stores the item's TTL: the write's [`Item`] TTL if given, else
//! the `global_ttl` (for `update` of an existing item: [`Ttl::Renew`]). An item written
//! (or, with `touch_on_read`, read; or [`touch`](ConCache::touch)ed) at time `w` with TTL
//! `t` expires at `w + t` on the cache's [`Clock`]:
//!
//! - **For every operation, exactly then.** Reads (`get`, `get_all`, the read half of
//!   `*_or_store`, `update*`) check the deadline themselves, so from `w + t` on the item
//!   is missing, however late the sweeper is; a write finding it there replaces it as a
//!   new item (the callback first sees it deleted, and it counts as an expiry), and
//!   `touch` does not bring it back. [`SystemClock`] reads a precise monotonic clock on
//!   every call (no cached coarse time), so the bound is exact to the clock's
//!   resolution; tested with 1 ms of slack against `std::time::Instant` under a CPU hog.
//! - **Removal from memory** (and the callback's [`CacheEvent::Delete`]) waits for the
//!   sweeper: the first sweep at or after `w + t`, which is due by
//!   `w + t + ttl_check_interval`. The sweeper is the owner process, so it runs that late
//!   *plus* however long the owner waits for a runtime worker thread: under CPU load
//!   there is no fixed bound (it grows with the runnable tasks per core). Until then the item still takes memory, counts in
//!   [`size`](ConCache::size), and is visible through [`ets`](ConCache::ets).
//!
//! [`Ttl::Renew`] reapplies the item's last TTL; [`Ttl::NoUpdate`] keeps its expiry. A
//! write with a TTL on a cache without a check interval: [`CacheError::NoTtlCheck`].
//! Expiry respects locks: an item whose key is locked at its sweep is looked at again
//! one interval later (reads see it expired meanwhile).
//!
//! # Where it differs from ConCache, and why
//!
//! ConCache funnels every write with a TTL through one owner process (a cast per write)
//! and every locked operation through a lock process (a message round trip per write). Here
//! no write waits for a process: expiry state lives in the item and in mutex-striped
//! expiry wheels that every writer updates itself ([`ttl`]); the sweeper only reads the
//! wheels once per interval. Locks are mutex-striped maps of per-key queues ([`lock`]).
//!
//! - Time comes from a [`Clock`] (default [`SystemClock`]; [`ManualClock`] for tests).
//! - Functions given to `*_or_store` are async (they usually load from elsewhere);
//!   `update` functions are plain closures run under the lock.
//! - Hit/miss counting: `get` and the `*_or_store` family (ConCache also counts the
//!   reads inside `update_existing`).
//!
//! - Expired items are hidden from reads at once rather than at the next sweep.
//! - Locks are exclusive per section, not re-entrant per process (above).
//!
//! # Locks
//!
//! Keys hash onto `n_lock_partitions` partitions; each is a mutex over a map of the keys
//! locked in it. A lock is a guard owned by the caller's future: a panic unwinds through
//! it and a killed process has its future dropped, either way releasing the lock and
//! handing it to the next waiter. A waiter whose lock timeout fires as the lock is
//! handed to it either keeps it (and succeeds) or leaves the queue, decided in one
//! critical section, so a waiter that timed out never holds the lock and a release never
//! hands it to a waiter that is gone ([`lock`] has the details).
//!
//! # Model-checked
//!
//! The lock handoff (acquire, FIFO queue, release to the first waiter, a waiter timing
//! out or dropped concurrently with the release) is model-checked with loom on the real
//! code: `scripts/loom cache::lock`. Expiry and the sweeper are tested, not
//! model-checked (`tests/cache_ttl.rs` on a manual clock, `tests/cache_expiry_load.rs`
//! on the real clock under a CPU hog).

mod error;
mod hash;
pub mod lock;
mod ops;
mod options;
mod stats;
mod supervised;
mod sweeper;
pub mod ttl;

use std::sync::Arc;
use std::time::Duration;

pub use crate::telemetry::{Clock, ManualClock, Sleep, SystemClock};
pub use error::{CacheError, Result};
pub use lock::Holder;
pub use ops::KeyLock;
pub use options::{
    default_lock_partitions, CacheEvent, CacheOptions, Callback, Item, Ttl, TtlCheck,
};
pub use stats::{Stats, HITS_METRIC, MISSES_METRIC};
pub use ttl::Entry;

use crate::ets::{Key, Table, TableType, Value};
use crate::process::Handle;
use hash::KeyHash;
use lock::Locks;
use stats::Counters;
use sweeper::OwnerMsg;
use ttl::{Meta, Ticks, Wheel};

/// A handle to a running cache: cheap to clone and to send to other processes.
pub struct ConCache<K: Key, V: Value> {
    inner: Arc<Inner<K, V>>,
}

impl<K: Key, V: Value> Clone for ConCache<K, V> {
    fn clone(&self) -> Self {
        ConCache {
            inner: self.inner.clone(),
        }
    }
}

impl<K: Key, V: Value> std::fmt::Debug for ConCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConCache({})", self.inner.name)
    }
}

pub(crate) struct Inner<K: Key, V: Value> {
    table: Table<K, Entry<V>>,
    /// Key-level expiry of bag caches (a set table beside the bag).
    metas: Option<Table<K, Meta>>,
    locks: Locks<K>,
    wheel: Wheel<K>,
    hasher: KeyHash,
    ticks: Option<Ticks>,
    global_ttl: Ttl,
    touch_on_read: bool,
    acquire_lock_timeout: Duration,
    callback: Option<Callback<K, V>>,
    clock: Arc<dyn Clock>,
    counters: Counters,
    kind: TableType,
    name: Arc<str>,
    owner: Handle<OwnerMsg<K, V>>,
}

impl<K: Key, V: Value> Drop for Inner<K, V> {
    fn drop(&mut self) {
        let _ = self.owner.send(OwnerMsg::Stop);
    }
}

impl<K: Key, V: Value> ConCache<K, V> {
    /// Starts a cache (an owner process, unlinked) with `opts`.
    pub async fn start(opts: CacheOptions<K, V>) -> Result<Self> {
        sweeper::start(opts, false).await
    }

    /// Starts a cache whose owner process is linked to the caller (a process).
    pub async fn start_link(opts: CacheOptions<K, V>) -> Result<Self> {
        sweeper::start(opts, true).await
    }

    /// Stops the cache: its owner exits and its table is deleted. Every handle then
    /// fails with [`CacheError::Stopped`].
    pub async fn stop(&self) {
        let _ = self.inner.owner.send(OwnerMsg::Stop);
        self.inner.owner.wait_exit().await;
    }

    /// The cache's name (its `name` option, or `con_cache#<table id>`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The owner process's pid.
    pub fn owner(&self) -> crate::Pid {
        self.inner.owner.pid()
    }

    /// The underlying table (ConCache's `ets/1`): objects `(key, Entry)`. Writing it
    /// directly bypasses locks, callbacks and expiry.
    pub fn ets(&self) -> &Table<K, Entry<V>> {
        &self.inner.table
    }

    /// The clock TTLs are measured on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Number of items stored.
    pub fn size(&self) -> Result<usize> {
        Ok(self.inner.table.size()?)
    }

    /// Counters: hits, misses, size, expiries, sweeps.
    pub fn stats(&self) -> Result<Stats> {
        let size = self.inner.table.size()?;
        Ok(self.inner.counters.snapshot(size, self.inner.wheel.len()))
    }

    /// Who holds the key's lock now, if anyone.
    pub fn lock_holder(&self, key: &K) -> Option<Holder> {
        self.inner.locks.holder(key)
    }

    /// Number of callers waiting for the key's lock.
    pub fn lock_waiters(&self, key: &K) -> usize {
        self.inner.locks.waiters(key)
    }

    /// Runs one sweep now in the owner process (as it does every `ttl_check_interval`)
    /// and returns the number of items it expired. With a [`ManualClock`], move the clock
    /// and call this to test expiry exactly.
    pub async fn purge_expired(&self) -> Result<usize> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .owner
            .send(OwnerMsg::Sweep(tx))
            .map_err(|_| CacheError::Stopped)?;
        rx.await.map_err(|_| CacheError::Stopped)
    }
}
