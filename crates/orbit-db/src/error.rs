//! `DbError`: every way a pooled database call can fail, each saying what to do.
//!
//! The contract: a caller of [`PgPool`](crate::PgPool) or [`RedisPool`](crate::RedisPool)
//! always gets either its result or one of these errors, never a hang (every wait is
//! bounded by the pool's timeouts) and never a panic from the pool itself.

use std::time::Duration;

/// Why a pooled database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The options cannot make a working pool.
    #[error("invalid pool options: {0}")]
    InvalidOptions(&'static str),
    /// DBConnection's load shedding: every checkout waited longer than `queue_target`
    /// for a whole `queue_interval`, and this one waited more than twice the target.
    #[error("connection not available and request was dropped from queue after {waited:?}: every checkout of the last queue_interval waited more than queue_target ({target:?}); the pool is overloaded: raise pool_size, make the queries faster, send less load, or raise queue_target/queue_interval")]
    QueueDropped {
        /// How long this caller waited.
        waited: Duration,
        /// The pool's `queue_target`.
        target: Duration,
    },
    /// No connection became available within the checkout timeout.
    #[error("no connection became available within {waited:?}{}; check that the database is up and reachable, or raise pool_size / checkout_timeout", last_connect_error.as_ref().map(|e| format!(" (the last connect attempt failed: {e})")).unwrap_or_default())]
    CheckoutTimeout {
        /// How long this caller waited.
        waited: Duration,
        /// The last failed connect attempt's error, when the pool is reconnecting.
        last_connect_error: Option<String>,
    },
    /// The call outlived its timeout. The query running on the connection was cancelled
    /// on the server (Postgres cancel request) and the connection was discarded, since
    /// its state is unknown.
    #[error("the call did not finish within its timeout of {timeout:?}; its work was {} and the connection discarded; make the query faster or raise the timeout", if *.cancelled { "stopped (Postgres: the server accepted the cancel request; Redis: the connection was closed)" } else { "NOT confirmed cancelled on the server (the Postgres cancel request failed)" })]
    Timeout {
        /// The call's timeout.
        timeout: Duration,
        /// Whether the server acknowledged the cancel request.
        cancelled: bool,
    },
    /// A statement of the transaction failed and the closure handled the error but
    /// returned `Ok`: the transaction was rolled back, not committed.
    #[error("a statement of the transaction failed (the closure handled its error and returned Ok), so the transaction was rolled back instead of committed; return the error, or retry the whole transaction")]
    TransactionAborted,
    /// The connection handle was used after its checkout ended (it was kept past the
    /// closure it was given to).
    #[error("this connection handle was used after its checkout ended; use it only inside the closure it was given to")]
    Released,
    /// The connection broke during the call (the server went away, the socket closed).
    /// The connection was discarded and is being replaced; retrying may succeed.
    #[error("the database connection broke during the call ({0}); it was discarded and is being replaced; retry the call")]
    ConnectionLost(String),
    /// An error from PostgreSQL or the Postgres driver (a failed statement, a type
    /// conversion, ...). For server errors, [`DbError::code`] gives the SQLSTATE.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// An error from Redis or the Redis driver.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A cached value could not be encoded or decoded.
    #[error("cache value for key {key:?} could not be {action}: {reason}")]
    Codec {
        /// The cache key.
        key: String,
        /// `encoded` or `decoded`.
        action: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The pool is stopped.
    #[error("the pool is stopped; start a new pool")]
    Stopped,
    /// The pool's own machinery failed (a callback panicked); retrying may succeed.
    #[error("the pool failed internally: {0}; retry, and report it if it repeats")]
    Internal(String),
}

impl DbError {
    /// The SQLSTATE code of a PostgreSQL server error (e.g. `"23505"` for a unique
    /// violation), `None` for every other error.
    pub fn code(&self) -> Option<&str> {
        match self {
            DbError::Postgres(e) => e.as_db_error().map(|d| d.code().code()),
            _ => None,
        }
    }

    /// True for the errors a retry can cure: load shedding, checkout timeouts, a lost
    /// connection, a timeout.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DbError::QueueDropped { .. }
                | DbError::CheckoutTimeout { .. }
                | DbError::ConnectionLost(_)
                | DbError::Timeout { .. }
        )
    }
}
