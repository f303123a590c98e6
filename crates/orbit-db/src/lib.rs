//! `orbit-db`: PostgreSQL and Redis connection pools on Orbit's
//! [`ResourcePool`](orbit::pool::ResourcePool), with DBConnection's semantics.
//!
//! - [`PgPool`]: tokio-postgres connections; lazy or eager connect, ping on idle,
//!   health check after an error, reconnect with backoff, a prepared statement cache per
//!   connection, [`PgPool::transaction`] (rolled back on any error, panic, cancellation
//!   or timeout; a connection whose state is unknown is discarded), DBConnection's
//!   `queue_target`/`queue_interval` load shedding, and timed-out queries cancelled on
//!   the server.
//! - [`RedisPool`]: redis-rs connections with the same health and reconnect
//!   behaviour; [`RedisCache`]: ConCache-style get/put/TTL shared by every node that
//!   uses the same Redis.
//!
//! Every failure is a [`DbError`] saying what to do; [`DbPoolStats`] has the figures.

mod backoff;
mod call_timer;
mod conn_pool;
mod error;
mod options;
mod pg;
mod queue_control;
mod redis_pool;

pub use conn_pool::DbPoolStats;
pub use error::DbError;
pub use options::{DbPoolOptions, LONGEST};
pub use pg::{PgConn, PgPool, StatementCacheStats};
pub use redis_pool::{RedisCache, RedisConn, RedisPool};

/// The Redis driver, re-exported for its command builders (`redis::cmd`, `Value`).
pub use ::redis as redis_driver;
/// The Postgres driver, re-exported so callers name its types (`Row`, `types::ToSql`)
/// with the version the pool uses.
pub use tokio_postgres;
