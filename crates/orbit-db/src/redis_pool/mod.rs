//! `RedisPool`: Redis connections (redis-rs, tokio) on the same pool machinery as
//! [`PgPool`](crate::PgPool): lazy or eager connect, `PING` on idle, a ping before
//! reuse after an unclear error, reconnect with backoff, load shedding, timeouts.
//!
//! Each pooled resource is one connection used by one caller at a time. A call that
//! outlives its timeout, panics or is cancelled discards its connection: Redis runs
//! each command atomically, so there is nothing to cancel on the server, but a reply
//! may still be in flight and the connection's state is unknown. An I/O error marks
//! the connection broken (replaced); a server error (`WRONGTYPE`, ...) leaves it in use.

mod cache;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, Pipeline, RedisError};

pub use self::cache::RedisCache;
use crate::conn_pool::{Backend, BoxFut, ConnPool, DbPoolStats, Keep};
use crate::error::DbError;
use crate::options::DbPoolOptions;

/// One pooled Redis connection.
pub(crate) struct RedisLink {
    conn: MultiplexedConnection,
    broken: AtomicBool,
    suspect: AtomicBool,
}

impl RedisLink {
    /// Marks the link as the error says; returns the pool's error.
    fn classify(&self, e: RedisError) -> DbError {
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            self.broken.store(true, Ordering::Relaxed);
            return DbError::ConnectionLost(e.to_string());
        }
        if e.is_timeout() || e.is_unrecoverable_error() {
            self.suspect.store(true, Ordering::Relaxed);
        }
        DbError::Redis(e)
    }
}

/// The Redis side of the shared pool.
pub(crate) struct RedisBackend {
    client: Client,
    connect_timeout: Duration,
}

impl Backend for RedisBackend {
    type Conn = RedisLink;

    fn connect(&self) -> BoxFut<Result<RedisLink, String>> {
        let client = self.client.clone();
        let config = AsyncConnectionConfig::new().set_connection_timeout(self.connect_timeout);
        Box::pin(async move {
            let conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| e.to_string())?;
            Ok(RedisLink {
                conn,
                broken: AtomicBool::new(false),
                suspect: AtomicBool::new(false),
            })
        })
    }

    fn is_broken(conn: &RedisLink) -> bool {
        conn.broken.load(Ordering::Relaxed)
    }

    fn mark_broken(conn: &RedisLink) {
        conn.broken.store(true, Ordering::Relaxed);
    }

    fn is_suspect(conn: &RedisLink) -> bool {
        conn.suspect.load(Ordering::Relaxed)
    }

    fn ping(conn: Arc<RedisLink>) -> BoxFut<Result<(), String>> {
        Box::pin(async move {
            let mut c = conn.conn.clone();
            let pong: String = ::redis::cmd("PING")
                .query_async(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            if pong != "PONG" {
                return Err(format!("PING answered {pong:?}"));
            }
            conn.suspect.store(false, Ordering::Relaxed);
            Ok(())
        })
    }

    fn cancel(_: &Arc<RedisLink>) -> BoxFut<bool> {
        // Nothing runs on the server past a command; discarding the connection is the
        // whole cancellation.
        Box::pin(async { true })
    }

    type Handle = RedisConn;
    type CallGuard = Arc<AtomicBool>;

    fn open_call(link: &Arc<RedisLink>) -> (RedisConn, Arc<AtomicBool>) {
        let released = Arc::new(AtomicBool::new(false));
        let conn = RedisConn {
            link: link.clone(),
            released: released.clone(),
        };
        (conn, released)
    }

    async fn close_call(_: &Arc<RedisLink>, released: Arc<AtomicBool>) -> Keep {
        released.store(true, Ordering::Release);
        // A handle kept past the closure: the connection is not handed out again.
        if Arc::strong_count(&released) == 1 {
            Keep::Yes
        } else {
            Keep::Discard
        }
    }
}

/// A checked-out Redis connection, valid inside the closure it was given to.
pub struct RedisConn {
    link: Arc<RedisLink>,
    released: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn").finish_non_exhaustive()
    }
}

impl RedisConn {
    fn live(&self) -> Result<MultiplexedConnection, DbError> {
        if self.released.load(Ordering::Acquire) {
            return Err(DbError::Released);
        }
        Ok(self.link.conn.clone())
    }

    /// Runs one command (`redis_driver::cmd("SET").arg(..)`) and converts its reply.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, DbError> {
        let mut c = self.live()?;
        cmd.query_async(&mut c)
            .await
            .map_err(|e| self.link.classify(e))
    }

    /// Runs a pipeline (atomic with `.atomic()`) and converts its replies.
    pub async fn query_pipeline<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, DbError> {
        let mut c = self.live()?;
        pipe.query_async(&mut c)
            .await
            .map_err(|e| self.link.classify(e))
    }
}

/// A pool of Redis connections. Cheap to clone; every clone is the same pool. It runs
/// until [`RedisPool::stop`].
#[derive(Clone)]
pub struct RedisPool {
    inner: ConnPool<RedisBackend>,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("pool_size", &self.inner.options().pool_size)
            .finish_non_exhaustive()
    }
}

impl RedisPool {
    /// Starts a pool for a Redis URL (`redis://127.0.0.1:6379/0`). Returns at once;
    /// connections open in the background (or on first demand when lazy).
    pub async fn connect(url: &str, opts: DbPoolOptions) -> Result<Self, DbError> {
        let client = Client::open(url)?;
        let backend = RedisBackend {
            client,
            connect_timeout: opts.connect_timeout,
        };
        Ok(RedisPool {
            inner: ConnPool::start(backend, opts).await?,
        })
    }

    /// Runs `f` with a connection, within the pool's `timeout` (queue included).
    pub async fn run<T, E, F, Fut>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(RedisConn) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<DbError>,
    {
        self.inner.run(None, f).await
    }

    /// [`RedisPool::run`] with its own timeout.
    pub async fn run_timeout<T, E, F, Fut>(&self, timeout: Duration, f: F) -> Result<T, E>
    where
        F: FnOnce(RedisConn) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<DbError>,
    {
        self.inner.run(Some(timeout), f).await
    }

    /// Runs one command on a pooled connection.
    pub async fn query<T: FromRedisValue + Send>(&self, cmd: &Cmd) -> Result<T, DbError> {
        self.run(|c| async move { c.query(cmd).await }).await
    }

    /// Figures of the pool.
    pub fn stats(&self) -> DbPoolStats {
        self.inner.stats()
    }

    /// The pool's options.
    pub fn options(&self) -> &DbPoolOptions {
        self.inner.options()
    }

    /// Stops the pool: waits up to `timeout` for its manager.
    pub async fn stop(&self, timeout: Duration) -> Result<(), DbError> {
        self.inner.stop(timeout).await
    }
}
