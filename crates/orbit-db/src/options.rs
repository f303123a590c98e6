//! `DbPoolOptions`: the pool settings shared by [`PgPool`](crate::PgPool) and
//! [`RedisPool`](crate::RedisPool), with DBConnection's names and defaults.
//!
//! | option | default | DBConnection |
//! |---|---|---|
//! | `pool_size` | 10 | `:pool_size` |
//! | `lazy` | false | (connections are opened at start) |
//! | `idle_interval` | 1 s | `:idle_interval`: idle connections are pinged |
//! | `queue_target` | 50 ms | `:queue_target` |
//! | `queue_interval` | 1 s | `:queue_interval` (2 s in DBConnection 2.6+) |
//! | `checkout_timeout` | 15 s | (DBConnection bounds the queue by `:timeout`) |
//! | `timeout` | 15 s | `:timeout`: queue plus use of the connection |
//! | `connect_timeout` | 5 s | `:connect_timeout` |
//! | `backoff_min` / `backoff_max` | 1 s / 30 s | `:backoff_min` / `:backoff_max` (`rand_exp`) |

use std::time::Duration;

use crate::error::DbError;

/// The longest duration the pool works with: longer settings mean "never" and are cut
/// to this (a year), so deadline arithmetic cannot overflow.
pub const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// Settings of a database pool (see the module table for defaults).
#[derive(Debug, Clone)]
pub struct DbPoolOptions {
    /// Connections in the pool.
    pub pool_size: usize,
    /// Open connections on first demand instead of at start.
    pub lazy: bool,
    /// Ping connections idle this long, every this long.
    pub idle_interval: Duration,
    /// The wait a checkout should not exceed (load shedding, see [`DbError::QueueDropped`]).
    pub queue_target: Duration,
    /// The window over which `queue_target` is judged.
    pub queue_interval: Duration,
    /// The longest a caller waits in the queue.
    pub checkout_timeout: Duration,
    /// The longest a call takes, queue included; past it the query is cancelled on the
    /// server and the connection discarded ([`DbError::Timeout`]).
    pub timeout: Duration,
    /// The longest one connect attempt (and one cancel request) takes.
    pub connect_timeout: Duration,
    /// First reconnect delay after a failed connect.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Prepared statements kept per Postgres connection (0: no cache).
    pub statement_cache_size: usize,
    /// The pool's name (the `pool` label of its metrics).
    pub name: Option<String>,
}

impl Default for DbPoolOptions {
    fn default() -> Self {
        DbPoolOptions {
            pool_size: 10,
            lazy: false,
            idle_interval: Duration::from_secs(1),
            queue_target: Duration::from_millis(50),
            queue_interval: Duration::from_secs(1),
            checkout_timeout: Duration::from_secs(15),
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            statement_cache_size: 100,
            name: None,
        }
    }
}

impl DbPoolOptions {
    /// Default options with `pool_size` connections.
    pub fn new(pool_size: usize) -> Self {
        DbPoolOptions {
            pool_size,
            ..Default::default()
        }
    }

    /// Opens connections on first demand.
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Sets `idle_interval`.
    pub fn idle_interval(mut self, d: Duration) -> Self {
        self.idle_interval = d;
        self
    }

    /// Sets `queue_target` and `queue_interval`.
    pub fn queue(mut self, target: Duration, interval: Duration) -> Self {
        self.queue_target = target;
        self.queue_interval = interval;
        self
    }

    /// Sets `checkout_timeout`.
    pub fn checkout_timeout(mut self, d: Duration) -> Self {
        self.checkout_timeout = d;
        self
    }

    /// Sets `timeout`.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Sets `connect_timeout`.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets `backoff_min` and `backoff_max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    /// Sets `statement_cache_size`.
    pub fn statement_cache_size(mut self, n: usize) -> Self {
        self.statement_cache_size = n;
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The options with every duration cut to [`LONGEST`].
    pub(crate) fn capped(mut self) -> Self {
        for d in [
            &mut self.idle_interval,
            &mut self.queue_target,
            &mut self.queue_interval,
            &mut self.checkout_timeout,
            &mut self.timeout,
            &mut self.connect_timeout,
            &mut self.backoff_min,
            &mut self.backoff_max,
        ] {
            *d = (*d).min(LONGEST);
        }
        self
    }

    /// Checks that the options make a working pool.
    pub fn validate(&self) -> Result<(), DbError> {
        let zero = Duration::ZERO;
        if self.pool_size == 0 {
            return Err(DbError::InvalidOptions(
                "pool_size is 0: a pool needs at least one connection",
            ));
        }
        if self.idle_interval == zero {
            return Err(DbError::InvalidOptions(
                "idle_interval is 0, which would ping without pause; use a positive duration",
            ));
        }
        if self.queue_target == zero || self.queue_interval == zero {
            return Err(DbError::InvalidOptions(
                "queue_target and queue_interval must be positive",
            ));
        }
        if self.timeout == zero || self.checkout_timeout == zero || self.connect_timeout == zero {
            return Err(DbError::InvalidOptions(
                "timeout, checkout_timeout and connect_timeout must be positive",
            ));
        }
        if self.backoff_min == zero || self.backoff_max < self.backoff_min {
            return Err(DbError::InvalidOptions(
                "backoff_min must be positive and backoff_max at least backoff_min",
            ));
        }
        Ok(())
    }
}
