//! `PgLink`: one open Postgres connection as the pool holds it: the tokio-postgres
//! client, its cancel token, its prepared statement cache and its health marks.
//!
//! The statement cache is per connection (a prepared statement lives in one server
//! session): up to `statement_cache_size` statements by SQL text; when full, one entry
//! is evicted (its statement is closed on the server when dropped). A server error that
//! says a cached statement is stale (`26000` invalid statement name, `0A000` "cached plan
//! must not change result type") empties the cache, so the next call prepares again.
//! The cache is keyed by foldhash (seeded per connection) rather than SipHash: every
//! call looks its SQL up once, and SipHash of a query's text was ≈ 200 instructions of
//! it.

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
    cache: Mutex<HashMap<String, Statement, foldhash::fast::RandomState>>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    broken: AtomicBool,
    suspect: AtomicBool,
    /// The state of the call using this connection now (one at a time), kept here so
    /// that a call allocates nothing of its own for it.
    pub(crate) call: CallState,
    /// Whether a cancel request was asked for during the current call (a hint read at
    /// each call's open; `cancel_state` holds the request itself).
    cancel_used: AtomicBool,
    /// The current call's cancel request: one per call, however many paths ask for it.
    cancel_state: Mutex<CancelState>,
}

/// The cancel request of a connection's current call. A call that outlives its
/// deadline has its future dropped (its abandoned-call guard asks for a cancel from the
/// destructor) and then the timeout path asks again, awaiting the answer: without this
/// the postmaster got two cancel requests (two forked backends) per timed-out call.
#[derive(Default)]
enum CancelState {
    /// None sent during this call.
    #[default]
    Unsent,
    /// Sent from a destructor; its answer not yet taken.
    Pending(tokio::task::JoinHandle<bool>),
    /// Sent, and its answer taken (or sent where no answer can be had).
    Sent,
}

/// What the pool learns from the handle of the call using a connection. A call's
/// handle carries the call's number (`generation`); when the call ends the number
/// moves on, so a handle kept past its closure is refused ([`DbError::Released`]).
///
/// [`DbError::Released`]: crate::DbError::Released
#[derive(Default)]
pub(crate) struct CallState {
    /// The number of the current (or last) call on this connection.
    pub(crate) generation: AtomicU64,
    /// Whether the current call's handle still exists (cleared by its drop).
    pub(crate) handle_alive: AtomicBool,
    pub(crate) in_tx: AtomicBool,
    pub(crate) tx_failed: AtomicBool,
    pub(crate) raw_used: AtomicBool,
}

impl CallState {
    /// Starts a call: its number, with the flags cleared and its handle alive.
    pub(crate) fn open(&self) -> u64 {
        self.in_tx.store(false, Ordering::Relaxed);
        self.tx_failed.store(false, Ordering::Relaxed);
        self.raw_used.store(false, Ordering::Relaxed);
        self.handle_alive.store(true, Ordering::Relaxed);
        // One writer: the number moves only in `open` and `close`, called by the call
        // that holds the connection (the pool hands it to one call at a time), so a
        // load and a store do what a read-modify-write did, without its locked
        // instruction. Release: the flags above are cleared before a handle with this
        // number is used.
        let generation = self.generation.load(Ordering::Relaxed).wrapping_add(1);
        self.generation.store(generation, Ordering::Release);
        generation
    }

    /// Ends call `generation` (the handle is refused from now on): true when its handle
    /// was dropped, i.e. not kept past the closure.
    ///
    /// A handle dropped on another thread while this runs may be seen alive (the
    /// connection is then discarded: the cautious side); it is seen dropped only if it
    /// was, since `open` marked it alive.
    pub(crate) fn close(&self, generation: u64) -> bool {
        // Only the current call moves the number on (a closed call is not closed twice).
        if self.generation.load(Ordering::Relaxed) == generation {
            self.generation
                .store(generation.wrapping_add(1), Ordering::Release);
        }
        !self.handle_alive.load(Ordering::Acquire)
    }

    /// Whether a handle of call `generation` may still be used.
    pub(crate) fn is_current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) == generation
    }
}

impl PgLink {
    pub(crate) fn new(client: Client, capacity: usize) -> Self {
        PgLink {
            cancel: client.cancel_token(),
            client,
            cache: Mutex::new(HashMap::default()),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            broken: AtomicBool::new(false),
            suspect: AtomicBool::new(false),
            call: CallState::default(),
            cancel_used: AtomicBool::new(false),
            cancel_state: Mutex::new(CancelState::Unsent),
        }
    }

    /// Forgets the previous call's cancel request (a new call starts). Costs one
    /// relaxed load unless a cancel was asked for.
    pub(crate) fn reset_cancel(&self) {
        if self.cancel_used.load(Ordering::Relaxed) {
            *self.cancel_state.lock() = CancelState::Unsent;
            self.cancel_used.store(false, Ordering::Relaxed);
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

    /// Sends a cancel request for whatever this connection's backend runs now, unless
    /// one was already sent during this call (then its answer is awaited instead); true
    /// when the server accepted it.
    pub(crate) async fn cancel_query(&self) -> bool {
        self.cancel_used.store(true, Ordering::Relaxed);
        let pending = {
            let mut state = self.cancel_state.lock();
            match std::mem::replace(&mut *state, CancelState::Sent) {
                CancelState::Unsent => None,
                CancelState::Pending(h) => Some(h),
                // Sent and answered already: not sent twice.
                CancelState::Sent => return true,
            }
        };
        match pending {
            Some(h) => h.await.unwrap_or(false),
            None => self.cancel.cancel_query(NoTls).await.is_ok(),
        }
    }

    /// Sends a cancel request from a spawned task (callable from a destructor) unless
    /// one was already sent during this call; nothing is sent outside a tokio runtime.
    pub(crate) fn cancel_in_background(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.cancel_used.store(true, Ordering::Relaxed);
        let mut state = self.cancel_state.lock();
        if matches!(*state, CancelState::Unsent) {
            let token: CancelToken = self.cancel.clone();
            *state = CancelState::Pending(
                rt.spawn(async move { token.cancel_query(NoTls).await.is_ok() }),
            );
        }
    }
}
