//! `PgPool`: a PostgreSQL connection pool in DBConnection's style, on Orbit's
//! [`ResourcePool`](orbit::pool::ResourcePool) with tokio-postgres connections.
//!
//! - [`PgPool::run`] checks a connection out, hands the closure a [`PgConn`] and checks
//!   it back in. [`PgPool::transaction`] does the same inside `BEGIN` … `COMMIT`: an
//!   `Err` from the closure, or a statement error it swallowed, rolls back.
//! - Known state, always: after a call the connection goes back to the pool only if it
//!   is outside any transaction and healthy. A call that panics, is cancelled (its
//!   future dropped) or outlives its timeout has a cancel request sent for whatever
//!   its connection runs on the server, and the connection is discarded (closing it
//!   rolls back an open transaction on the server); a rollback that fails discards it
//!   too. The pool opens a replacement.
//! - Connections, health, backoff, load shedding and timeouts: see `conn_pool.rs`
//!   (DBConnection's `idle_interval`, `backoff_*`, `queue_target`/`queue_interval`,
//!   `timeout`), and [`DbPoolOptions`].
//! - Prepared statements are cached per connection (`statement_cache_size`).
//!
//! Differences from DBConnection: the caller runs the query itself (no connection
//! process in between); a timed-out call is cancelled on the server and its connection
//! discarded, where DBConnection disconnects it; the queue is ResourcePool's
//! first-in first-out queue with the target/interval rule applied by each waiter.

mod conn;
mod link;

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;

use self::conn::classify;
pub use self::conn::PgConn;
use self::link::PgLink;
pub use self::link::StatementCacheStats;
use crate::conn_pool::{Backend, BoxFut, ConnPool, DbPoolStats, Keep};
use crate::error::DbError;
use crate::options::DbPoolOptions;

/// The Postgres side of the shared pool.
pub(crate) struct PgBackend {
    config: tokio_postgres::Config,
    cache_size: usize,
}

impl Backend for PgBackend {
    type Conn = PgLink;

    fn connect(&self) -> BoxFut<Result<PgLink, String>> {
        let config = self.config.clone();
        let cap = self.cache_size;
        Box::pin(async move {
            let (client, connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("postgres connection ended: {e}");
                }
            });
            Ok(PgLink::new(client, cap))
        })
    }

    fn is_broken(conn: &PgLink) -> bool {
        conn.is_broken()
    }

    fn mark_broken(conn: &PgLink) {
        conn.mark_broken();
    }

    fn is_suspect(conn: &PgLink) -> bool {
        conn.is_suspect()
    }

    fn ping(conn: Arc<PgLink>) -> BoxFut<Result<(), String>> {
        Box::pin(async move {
            conn.client
                .simple_query("")
                .await
                .map_err(|e| e.to_string())?;
            conn.set_suspect(false);
            Ok(())
        })
    }

    fn cancel(conn: &Arc<PgLink>) -> BoxFut<bool> {
        let conn = conn.clone();
        Box::pin(async move { conn.cancel_query().await })
    }

    type Handle = PgConn;
    /// The call's number on the connection (its state lives in the [`PgLink`]: a
    /// call allocates nothing of its own).
    type CallGuard = u64;

    fn open_call(link: &Arc<PgLink>) -> (PgConn, u64) {
        let conn = PgConn::open(link.clone());
        let generation = conn.generation;
        (conn, generation)
    }

    async fn close_call(link: &Arc<PgLink>, generation: u64) -> Keep {
        // A handle kept past its closure is refused from now on, and its connection
        // is not reused.
        let mut keep = link.call.close(generation);
        if keep && link.call.raw_used.load(Ordering::Relaxed) {
            // The SQL may have left a transaction open.
            keep = rollback(link).await;
        }
        if keep {
            Keep::Yes
        } else {
            Keep::Discard
        }
    }

    fn abandoned(link: &Arc<PgLink>) {
        link.cancel_in_background();
    }
}

/// Sends a cancel request for the connection's running query if dropped armed (the
/// call panicked or was cancelled while it ran).
pub(crate) struct CancelOnDrop {
    link: Option<Arc<PgLink>>,
}

impl CancelOnDrop {
    fn new(link: &Arc<PgLink>) -> Self {
        CancelOnDrop {
            link: Some(link.clone()),
        }
    }

    fn disarm(mut self) {
        self.link = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        // Disarmed (the common case): no runtime lookup.
        if let Some(link) = self.link.take() {
            link.cancel_in_background();
        }
    }
}

/// A pool of PostgreSQL connections. Cheap to clone; every clone is the same pool. It
/// runs until [`PgPool::stop`] (dropping the clones does not stop it, as for
/// [`ResourcePool`](orbit::pool::ResourcePool)).
///
/// ```no_run
/// # async fn demo() -> Result<(), orbit_db::DbError> {
/// use orbit_db::{DbPoolOptions, PgPool};
/// let pool = PgPool::connect("host=127.0.0.1 user=postgres", DbPoolOptions::new(4)).await?;
/// let n: i64 = pool
///     .run(|c| async move { Ok::<_, orbit_db::DbError>(c.query_one("SELECT 1::int8", &[]).await?.get(0)) })
///     .await?;
/// pool.transaction(|tx| async move {
///     tx.execute("INSERT INTO t(v) VALUES ($1)", &[&n]).await?;
///     Ok::<_, orbit_db::DbError>(())
/// })
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgPool {
    inner: ConnPool<PgBackend>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("pool_size", &self.inner.options().pool_size)
            .finish_non_exhaustive()
    }
}

impl PgPool {
    /// Starts a pool for a connection string (`host=… port=… user=… dbname=…` or a
    /// `postgres://` URL). Returns at once; connections open in the background (or on
    /// first demand when lazy).
    pub async fn connect(config: &str, opts: DbPoolOptions) -> Result<Self, DbError> {
        let config = tokio_postgres::Config::from_str(config)?;
        Self::start(config, opts).await
    }

    /// Starts a pool for a tokio-postgres configuration.
    pub async fn start(
        config: tokio_postgres::Config,
        opts: DbPoolOptions,
    ) -> Result<Self, DbError> {
        let backend = PgBackend {
            config,
            cache_size: opts.statement_cache_size,
        };
        Ok(PgPool {
            inner: ConnPool::start(backend, opts).await?,
        })
    }

    /// Runs `f` with a connection, within the pool's `timeout` (queue included).
    ///
    /// (The pool's call future itself, not wrapped in one more state machine.)
    pub fn run<T, E, F, Fut>(
        &self,
        f: F,
    ) -> impl Future<Output = Result<T, E>> + use<'_, T, E, F, Fut>
    where
        F: FnOnce(PgConn) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<DbError>,
    {
        self.inner.run(None, f)
    }

    /// [`PgPool::run`] with its own timeout.
    pub async fn run_timeout<T, E, F, Fut>(&self, timeout: Duration, f: F) -> Result<T, E>
    where
        F: FnOnce(PgConn) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<DbError>,
    {
        self.inner.run(Some(timeout), f).await
    }

    /// Runs `f` inside a transaction: `COMMIT` when it returns `Ok` (and no statement
    /// of it failed), `ROLLBACK` otherwise. On a panic, a cancellation or a timeout the
    /// connection is discarded, which rolls the transaction back on the server.
    pub async fn transaction<T, E, F, Fut>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(PgConn) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<DbError>,
    {
        self.transaction_timeout(self.inner.options().timeout, f)
            .await
    }

    /// [`PgPool::transaction`] with its own timeout.
    pub async fn transaction_timeout<T, E, F, Fut>(&self, timeout: Duration, f: F) -> Result<T, E>
    where
        F: FnOnce(PgConn) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<DbError>,
    {
        self.inner
            .with_conn(timeout, |link| async move {
                let guard = CancelOnDrop::new(&link);
                let conn = PgConn::open(link.clone());
                let generation = conn.generation;
                let state = &link.call;
                if let Err(e) = link.client.batch_execute("BEGIN").await {
                    let e = classify(&link, e);
                    guard.disarm();
                    return (Err(E::from(e)), Keep::Discard);
                }
                state.in_tx.store(true, Ordering::Relaxed);
                let out = f(conn).await;
                let leaked = !state.close(generation);
                let failed = state.tx_failed.load(Ordering::Relaxed);
                let (out, keep) = match out {
                    Ok(v) if !failed => match link.client.batch_execute("COMMIT").await {
                        Ok(()) => (Ok(v), true),
                        Err(e) => {
                            // A server error (a deferred constraint, a serialization
                            // failure) ended the transaction: the connection is clean.
                            let clean = e.as_db_error().is_some();
                            (Err(E::from(classify(&link, e))), clean)
                        }
                    },
                    Ok(_) => (
                        Err(E::from(DbError::TransactionAborted)),
                        rollback(&link).await,
                    ),
                    Err(e) => (Err(e), rollback(&link).await),
                };
                state.in_tx.store(false, Ordering::Relaxed);
                guard.disarm();
                (
                    out,
                    if keep && !leaked {
                        Keep::Yes
                    } else {
                        Keep::Discard
                    },
                )
            })
            .await
            .map_err(E::from)?
    }

    /// Figures of the pool.
    pub fn stats(&self) -> DbPoolStats {
        self.inner.stats()
    }

    /// The pool's options.
    pub fn options(&self) -> &DbPoolOptions {
        self.inner.options()
    }

    /// Stops the pool (see `conn_pool.rs`): waits up to `timeout` for its manager.
    pub async fn stop(&self, timeout: Duration) -> Result<(), DbError> {
        self.inner.stop(timeout).await
    }
}

/// Rolls back; true when the connection is clean afterwards.
async fn rollback(link: &PgLink) -> bool {
    link.client.batch_execute("ROLLBACK").await.is_ok()
}
