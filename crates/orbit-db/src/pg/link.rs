//! `PgLink`: one open Postgres connection as the pool holds it: the tokio-postgres
//! client, its cancel token, its prepared statement cache and its health marks.
//!
//! The statement cache is per connection (a prepared statement lives in one server
//! session): up to `statement_cache_size` statements by SQL text; when full, one entry
//! is evicted (its statement is closed on the server when dropped). A server error that
//! says a cached statement is stale (`26000` invalid statement name, `0A000` "cached plan
//! must not change result type") empties the cache, so the next call prepares again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio_postgres::{CancelToken, Client, NoTls, Statement};

/// Figures of one connection's prepared statement cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatementCacheStats {
    /// Statements cached now.
    pub entries: usize,
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that had to prepare.
    pub misses: u64,
}

/// One pooled Postgres connection.
pub(crate) struct PgLink {
    pub(crate) client: Client,
    cancel: CancelToken,
    cache: Mutex<HashMap<String, Statement>>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    broken: AtomicBool,
    suspect: AtomicBool,
}

impl PgLink {
    pub(crate) fn new(client: Client, capacity: usize) -> Self {
        PgLink {
            cancel: client.cancel_token(),
            client,
            cache: Mutex::new(HashMap::new()),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            broken: AtomicBool::new(false),
            suspect: AtomicBool::new(false),
        }
    }

    /// The statement for `sql`, from the cache or prepared now.
    pub(crate) async fn prepare_cached(
        &self,
        sql: &str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.cache.lock().get(sql) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(s.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let stmt = self.client.prepare(sql).await?;
        if self.capacity > 0 {
            let mut cache = self.cache.lock();
            if cache.len() >= self.capacity && !cache.contains_key(sql) {
                if let Some(k) = cache.keys().next().cloned() {
                    cache.remove(&k);
                }
            }
            cache.insert(sql.to_string(), stmt.clone());
        }
        Ok(stmt)
    }

    /// Empties the statement cache.
    pub(crate) fn clear_cache(&self) {
        self.cache.lock().clear();
    }

    pub(crate) fn cache_stats(&self) -> StatementCacheStats {
        StatementCacheStats {
            entries: self.cache.lock().len(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed) || self.client.is_closed()
    }

    pub(crate) fn mark_broken(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_suspect(&self) -> bool {
        self.suspect.load(Ordering::Relaxed)
    }

    pub(crate) fn set_suspect(&self, v: bool) {
        self.suspect.store(v, Ordering::Relaxed);
    }

    /// Sends a cancel request for whatever this connection's backend runs now; true
    /// when the server accepted it.
    pub(crate) async fn cancel_query(&self) -> bool {
        self.cancel.cancel_query(NoTls).await.is_ok()
    }

    /// A cancel token to fire from a destructor.
    pub(crate) fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }
}
