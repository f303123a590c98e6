//! [`CacheError`]: everything a cache operation can refuse.

use std::time::Duration;

use super::lock::Holder;
use crate::ets::{EtsError, TableType};

/// Why a cache operation failed. Closures given to `update`, `fetch_or_store` return
/// their own error type `E: From<CacheError>`, so one `Result` carries both.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// The options cannot work together (ConCache raises at start).
    #[error("invalid cache options: {0}")]
    InvalidOptions(String),
    /// A write asked for a TTL on a cache started without a TTL check interval.
    #[error(
        "cannot store an item with a TTL: this cache has no ttl_check_interval (started with \
         no_ttl_check()); start it with ttl_check_interval(..) and global_ttl(..), or store \
         without a TTL"
    )]
    NoTtlCheck,
    /// The key's lock was not acquired in time.
    #[error(
        "timed out after {timeout:?} waiting for the key's lock, held by {holder}{}; raise \
         acquire_lock_timeout or find why the holder keeps it",
        if *own {
            " (the caller's own process or task: if that section is the caller's, it waited \
             for itself, since cache locks are not re-entrant; re-enter with \
             isolated_with(&lock, ..) or write with the dirty_* operations inside it)"
        } else {
            ""
        }
    )]
    LockTimeout {
        /// Who ran the section holding the lock when the wait gave up.
        holder: Holder,
        /// How long the caller waited.
        timeout: Duration,
        /// The holder is the caller's own process or task (possibly a sibling future,
        /// possibly the caller's own section: see [`CacheError::AlreadyHeld`]).
        own: bool,
    },
    /// The key's lock is held by a section the caller is running inside: waiting would
    /// wait for itself. Cache locks are not re-entrant; re-entry is explicit.
    #[error(
        "this section already holds the key's lock ({holder}), and cache locks are not \
         re-entrant: inside it, write the key with the dirty_* operations, or take the lock \
         with ConCache::lock and pass it to isolated_with(&lock, ..) to re-enter"
    )]
    AlreadyHeld {
        /// Who runs the section holding it (the caller).
        holder: Holder,
    },
    /// `try_isolated`/`try_lock`: the key's lock is held by another section.
    #[error("the key's lock is held by {holder}")]
    Locked {
        /// Who holds it.
        holder: Holder,
    },
    /// `insert_new`: the key already holds a value.
    #[error("the key already exists (insert_new stores only new keys; use put to replace)")]
    AlreadyExists,
    /// `update_existing`: the key holds no value.
    #[error("the key does not exist (update_existing changes only existing keys; use update)")]
    NotExisting,
    /// An operation that needs one value per key was called on a bag table.
    #[error(
        "{op} is not supported on a {kind} cache: update, update_existing, get_or_store and \
         fetch_or_store need a set or ordered_set table"
    )]
    WrongType {
        /// The operation.
        op: &'static str,
        /// The cache's table type.
        kind: TableType,
    },
    /// The cache was stopped (its table is gone).
    #[error("the cache is stopped: start a new one")]
    Stopped,
    /// The underlying table refused.
    #[error("cache table: {0}")]
    Ets(EtsError),
}

impl From<EtsError> for CacheError {
    fn from(e: EtsError) -> Self {
        match e {
            EtsError::Deleted(_) => CacheError::Stopped,
            e => CacheError::Ets(e),
        }
    }
}

/// A cache result.
pub type Result<T, E = CacheError> = std::result::Result<T, E>;
