//! What a cache is started with ([`CacheOptions`]) and what a write may say about expiry
//! ([`Ttl`], [`Item`]); the write and delete notifications ([`CacheEvent`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::error::CacheError;
use crate::ets::TableType;
use crate::telemetry::{Clock, SystemClock};

/// How often expired items are swept: ConCache's `ttl_check_interval` (required).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlCheck {
    /// Sweep every this often; an item expires between its TTL and its TTL plus this
    /// interval after its last write. Needs a [`CacheOptions::global_ttl`].
    Every(Duration),
    /// No expiry at all (`ttl_check_interval: false`): no sweeper runs, and a write
    /// with a TTL is an error.
    Off,
}

/// The TTL of one write (ConCache's `%ConCache.Item{ttl: ...}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// Expire this long after the write. A zero duration stores no expiry (as
    /// ConCache does with a TTL of 0).
    After(Duration),
    /// Never expire.
    Infinity,
    /// Reapply the item's last TTL from now (no expiry for a new item).
    Renew,
    /// Keep the item's current expiry (no expiry for a new item).
    NoUpdate,
}

/// A duration is [`Ttl::After`] it: `global_ttl(Duration::from_millis(50))`.
impl From<Duration> for Ttl {
    fn from(d: Duration) -> Ttl {
        Ttl::After(d)
    }
}

/// A value to store, with an optional per-item [`Ttl`]. Every write takes
/// `impl Into<Item<V>>`: a plain value means "the default TTL" (the global TTL for a new
/// item; for `update` of an existing item, [`Ttl::Renew`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Item<V> {
    pub(crate) value: V,
    pub(crate) ttl: Option<Ttl>,
}

impl<V> Item<V> {
    /// `value` with its own TTL.
    pub fn new(value: V, ttl: Ttl) -> Self {
        Item {
            value,
            ttl: Some(ttl),
        }
    }

    /// The value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The TTL given, `None` for the default.
    pub fn ttl(&self) -> Option<Ttl> {
        self.ttl
    }
}

impl<V> From<V> for Item<V> {
    fn from(value: V) -> Self {
        Item { value, ttl: None }
    }
}

/// A string literal as a `String` item: `cache.put(key, "hello")` on a
/// `ConCache<_, String>`.
impl From<&str> for Item<String> {
    fn from(value: &str) -> Self {
        Item {
            value: value.to_string(),
            ttl: None,
        }
    }
}

/// What the callback is told: after a write, or before a delete (also an expiry).
#[derive(Debug)]
pub enum CacheEvent<'a, K, V> {
    /// `key` now holds `value` (ConCache's `{:update, cache, key, value}`).
    Update {
        /// The key written.
        key: &'a K,
        /// The value now stored.
        value: &'a V,
    },
    /// `key` is about to be deleted (ConCache's `{:delete, cache, key}`).
    Delete {
        /// The key being deleted.
        key: &'a K,
    },
}

/// The callback type.
pub type Callback<K, V> = Arc<dyn Fn(CacheEvent<'_, K, V>) + Send + Sync>;

/// The options of a new cache (ConCache's `start_link/1` options). `ttl_check_interval` must
/// be given; everything else has ConCache's default.
pub struct CacheOptions<K, V> {
    pub(crate) ttl_check: Option<TtlCheck>,
    pub(crate) global_ttl: Option<Ttl>,
    pub(crate) touch_on_read: bool,
    pub(crate) acquire_lock_timeout: Duration,
    pub(crate) callback: Option<Callback<K, V>>,
    pub(crate) table_type: TableType,
    pub(crate) n_lock_partitions: usize,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl<K, V> Clone for CacheOptions<K, V> {
    fn clone(&self) -> Self {
        CacheOptions {
            ttl_check: self.ttl_check,
            global_ttl: self.global_ttl,
            touch_on_read: self.touch_on_read,
            acquire_lock_timeout: self.acquire_lock_timeout,
            callback: self.callback.clone(),
            table_type: self.table_type,
            n_lock_partitions: self.n_lock_partitions,
            name: self.name.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<K, V> Default for CacheOptions<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for CacheOptions<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheOptions")
            .field("ttl_check_interval", &self.ttl_check)
            .field("global_ttl", &self.global_ttl)
            .field("touch_on_read", &self.touch_on_read)
            .field("acquire_lock_timeout", &self.acquire_lock_timeout)
            .field("callback", &self.callback.is_some())
            .field("table_type", &self.table_type)
            .field("n_lock_partitions", &self.n_lock_partitions)
            .field("name", &self.name)
            .finish()
    }
}

/// The default number of lock partitions: the available parallelism (ConCache: the
/// number of schedulers).
pub fn default_lock_partitions() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl<K, V> CacheOptions<K, V> {
    /// ConCache's defaults: no TTL check interval yet (you must set one), no global TTL,
    /// `touch_on_read` off, a 5 s lock timeout, no callback, a `set` table, one lock
    /// partition per available core, the system clock.
    pub fn new() -> Self {
        CacheOptions {
            ttl_check: None,
            global_ttl: None,
            touch_on_read: false,
            acquire_lock_timeout: Duration::from_secs(5),
            callback: None,
            table_type: TableType::Set,
            n_lock_partitions: default_lock_partitions(),
            name: None,
            clock: Arc::new(SystemClock::new()),
        }
    }

    /// Sweep expired items every `interval` (required, or [`no_ttl_check`](Self::no_ttl_check)).
    pub fn ttl_check_interval(mut self, interval: Duration) -> Self {
        self.ttl_check = Some(TtlCheck::Every(interval));
        self
    }

    /// No expiry: ConCache's `ttl_check_interval: false`.
    pub fn no_ttl_check(mut self) -> Self {
        self.ttl_check = Some(TtlCheck::Off);
        self
    }

    /// The TTL of a write that gives none (ConCache's `global_ttl`); `Ttl::Infinity` to
    /// expire only items written with their own TTL.
    pub fn global_ttl(mut self, ttl: impl Into<Ttl>) -> Self {
        self.global_ttl = Some(ttl.into());
        self
    }

    /// Reads (get, and the hits of get_or_store) renew the item's TTL too.
    pub fn touch_on_read(mut self, on: bool) -> Self {
        self.touch_on_read = on;
        self
    }

    /// How long a locked operation waits for its key's lock (default 5 s).
    pub fn acquire_lock_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_lock_timeout = timeout;
        self
    }

    /// Called after every write and before every delete (expiries included), in the
    /// writing process (the sweeper's, for expiries). Keep it short: it runs under the
    /// key's lock.
    pub fn callback(mut self, f: impl Fn(CacheEvent<'_, K, V>) + Send + Sync + 'static) -> Self {
        self.callback = Some(Arc::new(f));
        self
    }

    /// The table type (default `set`). `update*`, `*_or_store` fail on bags.
    pub fn table_type(mut self, kind: TableType) -> Self {
        self.table_type = kind;
        self
    }

    /// Number of lock partitions keys hash onto (default: available parallelism).
    pub fn n_lock_partitions(mut self, n: usize) -> Self {
        self.n_lock_partitions = n;
        self
    }

    /// A name: the `cache` label of the hit/miss counters and the sweeper's label.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The clock TTLs are measured on (default [`SystemClock`]); a
    /// [`ManualClock`](super::ManualClock) in tests.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the combination (ConCache's `validate_ttl`); returns the check interval.
    pub(crate) fn validate(&self) -> Result<Option<Duration>, CacheError> {
        if self.n_lock_partitions == 0 {
            return Err(CacheError::InvalidOptions(
                "n_lock_partitions must be at least 1".into(),
            ));
        }
        match (self.ttl_check, self.global_ttl) {
            (None, _) => Err(CacheError::InvalidOptions(
                "ttl_check_interval must be supplied: call ttl_check_interval(duration), \
                 or no_ttl_check() for a cache without expiry"
                    .into(),
            )),
            (Some(TtlCheck::Off), None) => Ok(None),
            (Some(TtlCheck::Off), Some(_)) => Err(CacheError::InvalidOptions(
                "ttl_check_interval is off and global_ttl is set: remove global_ttl, or set \
                 ttl_check_interval to a duration"
                    .into(),
            )),
            (Some(TtlCheck::Every(_)), None) => Err(CacheError::InvalidOptions(
                "a ttl_check_interval needs a global_ttl: set global_ttl (Ttl::Infinity to \
                 expire only items written with their own TTL)"
                    .into(),
            )),
            (Some(TtlCheck::Every(d)), Some(ttl)) => {
                if d.is_zero() {
                    return Err(CacheError::InvalidOptions(
                        "ttl_check_interval must be longer than zero (use no_ttl_check() \
                         for no expiry)"
                            .into(),
                    ));
                }
                if matches!(ttl, Ttl::Renew | Ttl::NoUpdate) {
                    return Err(CacheError::InvalidOptions(
                        "global_ttl must be a duration or Ttl::Infinity".into(),
                    ));
                }
                Ok(Some(d))
            }
        }
    }
}
