//! `PgConn`: the connection handle a [`PgPool`](crate::PgPool) call's closure gets.
//!
//! Every statement goes through it, so the pool knows what happened on the connection:
//! - `query`/`query_one`/`query_opt`/`execute` use the connection's prepared statement
//!   cache (extended protocol); `batch_execute` runs plain SQL (simple protocol, no
//!   parameters). After a `batch_execute` outside a transaction, the pool issues a
//!   `ROLLBACK` before reusing the connection, in case the SQL left a transaction open.
//! - A server error inside a transaction marks it failed: the transaction is rolled
//!   back even if the closure returns `Ok` ([`DbError::TransactionAborted`]).
//! - A closed connection marks it broken ([`DbError::ConnectionLost`]); an error that was
//!   not the server's marks it suspect (pinged before its next use).
//! - The handle is only valid inside the closure: kept past it, every call fails with
//!   [`DbError::Released`], and the connection is discarded rather than reused.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::link::{PgLink, StatementCacheStats};
use crate::error::DbError;

/// A checked-out Postgres connection, valid inside the closure it was given to.
pub struct PgConn {
    pub(crate) link: Arc<PgLink>,
    /// The number of the call this handle belongs to (see [`CallState`]).
    ///
    /// [`CallState`]: super::link::CallState
    pub(crate) generation: u64,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("in_transaction", &self.in_transaction())
            .finish_non_exhaustive()
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        let call = &self.link.call;
        if call.is_current(self.generation) {
            call.handle_alive.store(false, Ordering::Release);
        }
    }
}

impl PgConn {
    /// The handle of a new call on `link` (the connection's per-call state reset).
    pub(crate) fn open(link: Arc<PgLink>) -> Self {
        link.reset_cancel();
        let generation = link.call.open();
        PgConn { link, generation }
    }

    fn live(&self) -> Result<&PgLink, DbError> {
        if !self.link.call.is_current(self.generation) {
            Err(DbError::Released)
        } else {
            Ok(&self.link)
        }
    }

    /// Turns a driver result into the pool's, noting what the error says about the
    /// connection.
    pub(crate) fn note<T>(&self, r: Result<T, tokio_postgres::Error>) -> Result<T, DbError> {
        r.map_err(|e| classify(&self.link, e))
    }

    /// The prepared statement for `sql`, from this connection's cache or prepared now.
    pub async fn prepare_cached(&self, sql: &str) -> Result<Statement, DbError> {
        let r = self.live()?.prepare_cached(sql).await;
        self.note(r)
    }

    /// Runs `sql` (prepared and cached) and returns its rows.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let stmt = self.prepare_cached(sql).await?;
        let r = self.live()?.client.query(&stmt, params).await;
        self.note(r)
    }

    /// Runs `sql` and returns its one row (an error for zero or several rows).
    pub async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        let stmt = self.prepare_cached(sql).await?;
        let r = self.live()?.client.query_one(&stmt, params).await;
        self.note(r)
    }

    /// Runs `sql` and returns its row, if any (an error for several rows).
    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        let stmt = self.prepare_cached(sql).await?;
        let r = self.live()?.client.query_opt(&stmt, params).await;
        self.note(r)
    }

    /// Runs `sql` and returns the number of rows it changed.
    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, DbError> {
        let stmt = self.prepare_cached(sql).await?;
        let r = self.live()?.client.execute(&stmt, params).await;
        self.note(r)
    }

    /// Runs one or more `;`-separated statements without parameters (simple protocol,
    /// not cached). Outside a transaction, the pool rolls back any transaction such SQL
    /// left open before the connection is reused.
    pub async fn batch_execute(&self, sql: &str) -> Result<(), DbError> {
        let link = self.live()?;
        self.link.call.raw_used.store(true, Ordering::Relaxed);
        let r = link.client.batch_execute(sql).await;
        self.note(r)
    }

    /// Figures of this connection's prepared statement cache.
    pub fn statement_cache(&self) -> StatementCacheStats {
        self.link.cache_stats()
    }

    /// True inside [`PgPool::transaction`](crate::PgPool::transaction).
    pub fn in_transaction(&self) -> bool {
        self.link.call.is_current(self.generation) && self.link.call.in_tx.load(Ordering::Relaxed)
    }
}

/// The pool's error for a driver error on `link`, marking the link and its call's
/// transaction as the error says.
pub(crate) fn classify(link: &PgLink, e: tokio_postgres::Error) -> DbError {
    if let Some(db) = e.as_db_error() {
        let call = &link.call;
        if call.in_tx.load(Ordering::Relaxed) {
            call.tx_failed.store(true, Ordering::Relaxed);
        }
        let code = db.code().code();
        if code == "26000" || (code == "0A000" && db.message().contains("cached plan")) {
            link.clear_cache();
        }
        return DbError::Postgres(e);
    }
    if e.is_closed() || link.client.is_closed() {
        link.mark_broken();
        return DbError::ConnectionLost(e.to_string());
    }
    link.set_suspect(true);
    DbError::Postgres(e)
}
