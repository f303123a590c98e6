//! `ConnPool<B>`: the connection pool both databases share, on Orbit's
//! [`ResourcePool`]: connecting with backoff, health checks, load shedding, timeouts.
//!
//! The contract, as DBConnection's:
//! - A resource is one open connection. `init_worker` returns a future that connects,
//!   and after a failed attempt waits a [`Backoff`] delay and tries again, until it
//!   connects or the pool stops; meanwhile callers wait in the queue (and get
//!   [`DbError::CheckoutTimeout`] naming the last connect error, or are shed with
//!   [`DbError::QueueDropped`]), so a database that goes away costs errors, not a hot
//!   loop, and the pool refills by itself when it comes back.
//! - Health: a connection whose socket closed, or that failed a ping or a call in a
//!   way that leaves its state unknown, is marked broken and removed at its next
//!   check-out, check-in or idle tick (then replaced). Idle connections are pinged every
//!   `idle_interval` (the ResourcePool's `worker_idle_timeout`; the ping runs apart from
//!   the pool and marks the connection broken if it fails). A connection marked
//!   *suspect* (an error that was not the server's) is pinged before its next use.
//! - Every call is bounded by `timeout` from its start, queue included. A call that
//!   outlives it has its work dropped, the backend's cancel hook run (Postgres: a cancel
//!   request) and its connection discarded: its state is unknown.
//! - A call that panics, or whose future is dropped, loses its connection (removed and
//!   replaced by the ResourcePool), never returns it in an unknown state.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{select, Either};
use orbit::pool::{
    Caller, Cancelled, CheckinResult, CheckoutError, CheckoutResult, InitWorker, PingResult,
    PoolStats, ResourcePool, ResourcePoolOptions, ResourceWorker,
};
use orbit::ExitReason;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::call_timer::{keep_sleep, take_sleep, CallTimer};
use crate::error::DbError;
use crate::options::DbPoolOptions;
use crate::queue_control::QueueControl;

/// A boxed future, as the backends return them.
pub(crate) type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What a database driver gives the shared pool.
pub(crate) trait Backend: Send + Sync + 'static {
    /// One open connection.
    type Conn: Send + Sync + 'static;
    /// Opens a connection (bounded by the pool's `connect_timeout` around it).
    fn connect(&self) -> BoxFut<Result<Self::Conn, String>>;
    /// True when the connection must not be used again.
    fn is_broken(conn: &Self::Conn) -> bool;
    /// Marks the connection broken.
    fn mark_broken(conn: &Self::Conn);
    /// True when an error left doubt and the connection must be pinged before use.
    fn is_suspect(conn: &Self::Conn) -> bool;
    /// A round trip to the server; clears the suspect mark when it succeeds.
    fn ping(conn: Arc<Self::Conn>) -> BoxFut<Result<(), String>>;
    /// Stops whatever the connection is running on the server (a call timed out).
    /// Resolves to whether the server acknowledged it.
    fn cancel(conn: &Arc<Self::Conn>) -> BoxFut<bool>;
    /// The handle a call's closure gets (valid inside the closure only).
    type Handle: Send + 'static;
    /// What the backend keeps during a call to judge the connection afterwards.
    type CallGuard: Send;
    /// Starts a call on `conn`: the closure's handle and the backend's guard.
    fn open_call(conn: &Arc<Self::Conn>) -> (Self::Handle, Self::CallGuard);
    /// Ends a call whose closure returned: releases the handle and says whether the
    /// connection is clean enough to go back to the pool.
    fn close_call(
        conn: &Arc<Self::Conn>,
        guard: Self::CallGuard,
    ) -> impl Future<Output = Keep> + Send;
    /// A call was abandoned while it ran on `conn` (its future dropped or its closure
    /// panicked, before `close_call` finished): stop whatever it left running on the
    /// server (the connection itself is removed by the ResourcePool). Must not block.
    fn abandoned(conn: &Arc<Self::Conn>) {
        let _ = conn;
    }
}

/// Calls [`Backend::abandoned`] if dropped armed: a call's future dropped, or its
/// closure panicking, while it runs. It borrows the call's connection, so a call
/// costs no reference count of its own for it.
struct AbandonGuard<'a, B: Backend> {
    conn: &'a Arc<B::Conn>,
    armed: bool,
}

impl<B: Backend> Drop for AbandonGuard<'_, B> {
    fn drop(&mut self) {
        if self.armed {
            B::abandoned(self.conn);
        }
    }
}

/// Counters beside the ResourcePool's own [`PoolStats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DbPoolStats {
    /// The underlying ResourcePool's figures (checkouts, waits, utilization, restarts).
    pub pool: PoolStats,
    /// Connections opened since start.
    pub connects: u64,
    /// Failed connect attempts since start.
    pub connect_failures: u64,
    /// Connections discarded because their state was unknown or broken.
    pub discarded: u64,
    /// Calls that outlived their timeout (their query cancelled on the server).
    pub timeouts: u64,
    /// Callers shed by the queue target ([`DbError::QueueDropped`]).
    pub queue_dropped: u64,
    /// Callers whose checkout timed out ([`DbError::CheckoutTimeout`]).
    pub checkout_timeouts: u64,
    /// Whether load is being shed now (the last queue interval was over target).
    pub shedding: bool,
    /// The last failed connect attempt's error, cleared by a successful connect.
    pub last_connect_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    discarded: AtomicU64,
    timeouts: AtomicU64,
    queue_dropped: AtomicU64,
    checkout_timeouts: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the pool and its connect futures share.
pub(crate) struct Shared<B: Backend> {
    pub(crate) backend: Arc<B>,
    pub(crate) opts: DbPoolOptions,
    closed: watch::Sender<bool>,
    queue: QueueControl,
    counters: Counters,
    last_connect_error: Mutex<Option<String>>,
}

impl<B: Backend> Shared<B> {
    /// Connects, retrying with backoff, until it succeeds or the pool closes (`None`).
    async fn connect_loop(self: Arc<Self>) -> Option<Arc<B::Conn>> {
        let mut backoff = Backoff::new(self.opts.backoff_min, self.opts.backoff_max);
        let mut closed = self.closed.subscribe();
        loop {
            if *closed.borrow() {
                return None;
            }
            let attempt = tokio::time::timeout(self.opts.connect_timeout, self.backend.connect());
            let err = match attempt.await {
                Ok(Ok(conn)) => {
                    bump(&self.counters.connects);
                    *self.last_connect_error.lock() = None;
                    return Some(Arc::new(conn));
                }
                Ok(Err(e)) => e,
                Err(_) => format!(
                    "no answer within connect_timeout {:?}",
                    self.opts.connect_timeout
                ),
            };
            bump(&self.counters.connect_failures);
            let delay = backoff.next_delay();
            tracing::warn!("database connect failed: {err}; retrying in {delay:?}");
            *self.last_connect_error.lock() = Some(err);
            let sleep = pin!(tokio::time::sleep(delay));
            let stop = pin!(closed.wait_for(|c| *c));
            if let Either::Right(_) = select(sleep, stop).await {
                return None;
            }
        }
    }
}

/// The ResourcePool callbacks: a resource is `Some(connection)`; `None` only comes from
/// a connect future cut short by the pool's stop.
pub(crate) struct Manager<B: Backend> {
    shared: Arc<Shared<B>>,
}

type Slot<B> = Option<Arc<<B as Backend>::Conn>>;

impl<B: Backend> ResourceWorker for Manager<B> {
    type Worker = Slot<B>;
    type Command = ();
    type Client = Arc<B::Conn>;
    type Checkin = Slot<B>;
    type Error = Infallible;

    fn init_worker(&mut self) -> InitWorker<Slot<B>> {
        InitWorker::Async(Box::pin(self.shared.clone().connect_loop()))
    }

    fn handle_checkout(
        &mut self,
        _: &(),
        _: Caller,
        worker: Slot<B>,
    ) -> CheckoutResult<Arc<B::Conn>, Slot<B>, Infallible> {
        match worker {
            Some(c) if !B::is_broken(&c) => CheckoutResult::Ok {
                client: c,
                worker: None,
            },
            w => {
                bump(&self.shared.counters.discarded);
                CheckoutResult::Remove(ExitReason::error("connection broken"), w)
            }
        }
    }

    fn handle_checkin(
        &mut self,
        checkin: Slot<B>,
        _: Caller,
        _: Slot<B>,
    ) -> CheckinResult<Slot<B>> {
        match checkin {
            Some(c) if !B::is_broken(&c) => CheckinResult::Ok(Some(c)),
            w => {
                bump(&self.shared.counters.discarded);
                CheckinResult::Remove(ExitReason::error("connection discarded"), w)
            }
        }
    }

    fn handle_cancelled(&mut self, context: Cancelled) {
        // A call that panicked or was dropped holding a connection: the ResourcePool
        // removed (closed) it and opens a replacement.
        if context == Cancelled::CheckedOut {
            bump(&self.shared.counters.discarded);
        }
    }

    fn handle_ping(&mut self, worker: Slot<B>) -> PingResult<Slot<B>> {
        match worker {
            Some(c) if !B::is_broken(&c) => {
                // The round trip runs apart from the pool's lock; a failure marks the
                // connection, which the next tick (or checkout) removes.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let conn = c.clone();
                    let timeout = self.shared.opts.connect_timeout;
                    rt.spawn(async move {
                        let ok = matches!(
                            tokio::time::timeout(timeout, B::ping(conn.clone())).await,
                            Ok(Ok(()))
                        );
                        if !ok {
                            B::mark_broken(&conn);
                        }
                    });
                }
                PingResult::Ok(Some(c))
            }
            w => {
                bump(&self.shared.counters.discarded);
                PingResult::Remove(ExitReason::error("connection broken"), w)
            }
        }
    }
}

/// What a call's work decided about its connection.
pub(crate) enum Keep {
    /// The connection is in a known, clean state: back to the pool.
    Yes,
    /// Its state is unknown: discard it.
    Discard,
}

/// A pool of `B` connections.
pub(crate) struct ConnPool<B: Backend> {
    pool: ResourcePool<Manager<B>>,
    shared: Arc<Shared<B>>,
}

impl<B: Backend> Clone for ConnPool<B> {
    fn clone(&self) -> Self {
        ConnPool {
            pool: self.pool.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// `dropped` of an attempt whose caller was not shed.
const NOT_DROPPED: u64 = u64::MAX;

/// One call's bounds, shared by its checkout attempts.
struct Call<'t, 'a> {
    start: Instant,
    /// `start + timeout`: the end of the whole call, queue included.
    deadline: Instant,
    timeout: Duration,
    timer: &'t CallTimer<'a>,
}

/// The outcome of one checkout attempt.
enum Attempt<O> {
    Done(O),
    /// The connection failed its health check; it was discarded, try another.
    Retry,
}

impl<B: Backend> ConnPool<B> {
    /// Starts the pool: unless lazy, `pool_size` connect futures start now (the pool
    /// returns at once; callers wait for connections in the queue).
    pub(crate) async fn start(backend: B, opts: DbPoolOptions) -> Result<Self, DbError> {
        opts.validate()?;
        let opts = opts.capped();
        let (closed, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            backend: Arc::new(backend),
            queue: QueueControl::new(opts.queue_target, opts.queue_interval, Instant::now()),
            opts: opts.clone(),
            closed,
            counters: Counters::default(),
            last_connect_error: Mutex::new(None),
        });
        let mut ropts = ResourcePoolOptions::new(opts.pool_size)
            .lazy(opts.lazy)
            .worker_idle_timeout(opts.idle_interval);
        if let Some(n) = &opts.name {
            ropts = ropts.name(n.clone());
        }
        let manager = Manager {
            shared: shared.clone(),
        };
        let pool = ResourcePool::start(manager, ropts)
            .await
            .map_err(|e| DbError::Internal(format!("the pool could not start: {e}")))?;
        Ok(ConnPool { pool, shared })
    }

    /// The pool's options.
    pub(crate) fn options(&self) -> &DbPoolOptions {
        &self.shared.opts
    }

    /// Runs `f` on a connection, within `timeout` from now (queue included).
    pub(crate) async fn with_conn<O, F, Fut>(&self, timeout: Duration, f: F) -> Result<O, DbError>
    where
        F: FnOnce(Arc<B::Conn>) -> Fut,
        Fut: Future<Output = (O, Keep)>,
    {
        let timeout = timeout.min(crate::options::LONGEST);
        let start = Instant::now();
        let deadline = start + timeout;
        // The call's one timer: queue looks, checkout deadline, then the work's deadline
        // (this thread's spare, given back when the call ends).
        let (mut spare, rt) = take_sleep(deadline);
        let (out, waker) = {
            let timer = CallTimer::new(spare.sleep.as_mut(), spare.waker.take());
            let call = Call {
                start,
                deadline,
                timeout,
                timer: &timer,
            };
            let mut f = Some(f);
            let mut first = true;
            let out = loop {
                match self.attempt(&call, first, &mut f).await {
                    Ok(Attempt::Done(o)) => break Ok(o),
                    Ok(Attempt::Retry) => first = false,
                    Err(e) => break Err(e),
                }
            };
            (out, timer.into_waker())
        };
        spare.waker = waker;
        keep_sleep(spare, rt);
        out
    }

    /// Runs `f` with a connection's handle within `timeout` (the pool's when `None`),
    /// queue included: the body of `PgPool::run`/`RedisPool::run` and their
    /// `*_timeout` forms.
    pub(crate) async fn run<T, E, F, Fut>(&self, timeout: Option<Duration>, f: F) -> Result<T, E>
    where
        F: FnOnce(B::Handle) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<DbError>,
    {
        let timeout = timeout.unwrap_or(self.shared.opts.timeout);
        self.with_conn(timeout, |conn| async move {
            let (handle, guard) = B::open_call(&conn);
            let mut abandon = AbandonGuard::<B> {
                conn: &conn,
                armed: true,
            };
            let out = f(handle).await;
            let keep = B::close_call(&conn, guard).await;
            abandon.armed = false;
            (out, keep)
        })
        .await
        .map_err(E::from)?
    }

    /// One checkout: queued (shed or timed out by [`ConnPool::wait_in_queue`]) if no
    /// connection is idle, then the suspect check and `f`, bounded by the call's
    /// deadline.
    async fn attempt<O, F, Fut>(
        &self,
        call: &Call<'_, '_>,
        first: bool,
        f: &mut Option<F>,
    ) -> Result<Attempt<O>, DbError>
    where
        F: FnOnce(Arc<B::Conn>) -> Fut,
        Fut: Future<Output = (O, Keep)>,
    {
        let start = call.start;
        let deadline = call.deadline;
        // The first attempt starts with the call: no second clock read.
        let now = if first { start } else { Instant::now() };
        // The checkout's bound within the call's (no instant arithmetic when the
        // checkout timeout does not shorten it, as with the defaults).
        let checkout_timeout = self.shared.opts.checkout_timeout;
        let checkout_deadline = if checkout_timeout >= call.timeout {
            deadline
        } else {
            deadline.min(start + checkout_timeout)
        };
        if checkout_deadline <= now {
            return Err(self.checkout_timeout(now - start));
        }
        let shared = &self.shared;
        // Set by the queue wait if it shed the caller rather than timing it out.
        let dropped = AtomicU64::new(NOT_DROPPED);
        // Made by the ResourcePool only if the caller queues, where it is polled.
        let give_up = || self.wait_in_queue(call, checkout_deadline, &dropped);
        // The time this call spent before this attempt (none on its first).
        let before = if first { Duration::ZERO } else { now - start };
        // `waited`: the ResourcePool's measure of this attempt's wait from `now` (zero
        // when a connection was idle), so the clock is not read again here.
        let work = |conn: Arc<B::Conn>, waited: Duration| async move {
            if waited.is_zero() {
                // Served at once (within the attempt's first poll).
                shared.queue.served(Duration::ZERO, now);
            } else {
                shared.queue.served(before + waited, now + waited);
            }
            if B::is_suspect(&conn) {
                let check = call.timer.run_until(deadline, B::ping(conn.clone())).await;
                if !matches!(check, Ok(Ok(()))) {
                    B::mark_broken(&conn);
                    return (Ok(Attempt::Retry), Some(conn));
                }
            }
            let Some(f) = f.take() else {
                return (
                    Err(DbError::Internal("the call's work ran twice".into())),
                    Some(conn),
                );
            };
            // Bound first: the wait (and the call's timer) ends before the match.
            let done = call.timer.run_until(deadline, f(conn.clone())).await;
            match done {
                Ok((out, Keep::Yes)) => (Ok(Attempt::Done(out)), Some(conn)),
                Ok((out, Keep::Discard)) => {
                    B::mark_broken(&conn);
                    (Ok(Attempt::Done(out)), Some(conn))
                }
                Err(_) => {
                    bump(&shared.counters.timeouts);
                    B::mark_broken(&conn);
                    let cancel = B::cancel(&conn);
                    let cancelled = tokio::time::timeout(shared.opts.connect_timeout, cancel).await;
                    let cancelled = matches!(cancelled, Ok(true));
                    let timeout = call.timeout;
                    (Err(DbError::Timeout { timeout, cancelled }), Some(conn))
                }
            }
        };
        let result = self.pool.checkout_or_since((), now, work, give_up).await;
        match result {
            Ok(r) => r,
            Err(CheckoutError::Timeout(_)) => match dropped.load(Ordering::Relaxed) {
                NOT_DROPPED => Err(self.checkout_timeout(start.elapsed())),
                waited_ns => {
                    let waited = Duration::from_nanos(waited_ns);
                    bump(&self.shared.counters.queue_dropped);
                    Err(DbError::QueueDropped {
                        waited,
                        target: self.shared.queue.target(),
                    })
                }
            },
            Err(CheckoutError::Stopped) => Err(DbError::Stopped),
            Err(CheckoutError::Panicked(m)) => Err(DbError::Internal(m)),
            Err(CheckoutError::Skipped(never)) => match never {},
        }
    }

    /// What a queued caller waits on (the ResourcePool polls it only while the caller
    /// is queued, and drops it once a connection is handed over): it ends at the
    /// checkout deadline, or earlier when DBConnection's queue target sheds the caller
    /// (then `dropped` holds the nanoseconds waited). Every wait is on the call's timer.
    async fn wait_in_queue(
        &self,
        call: &Call<'_, '_>,
        checkout_deadline: Instant,
        dropped: &AtomicU64,
    ) {
        let queue = &self.shared.queue;
        let target = queue.target();
        let mut look_at = queue.next_look(call.start + queue.first_look());
        loop {
            call.timer.wait_until(look_at.min(checkout_deadline)).await;
            let now = Instant::now();
            if now >= checkout_deadline {
                return;
            }
            let waited = now - call.start;
            if queue.should_drop(waited + Duration::from_micros(1), now) {
                let ns = waited.as_nanos().min(u128::from(NOT_DROPPED - 1)) as u64;
                dropped.store(ns, Ordering::Relaxed);
                return;
            }
            look_at = queue.next_look(now + target);
        }
    }

    fn checkout_timeout(&self, waited: Duration) -> DbError {
        bump(&self.shared.counters.checkout_timeouts);
        DbError::CheckoutTimeout {
            waited,
            last_connect_error: self.shared.last_connect_error.lock().clone(),
        }
    }

    /// Figures of the pool.
    pub(crate) fn stats(&self) -> DbPoolStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DbPoolStats {
            pool: self.pool.stats(),
            connects: get(&c.connects),
            connect_failures: get(&c.connect_failures),
            discarded: get(&c.discarded),
            timeouts: get(&c.timeouts),
            queue_dropped: get(&c.queue_dropped),
            checkout_timeouts: get(&c.checkout_timeouts),
            shedding: self.shared.queue.is_slow(),
            last_connect_error: self.shared.last_connect_error.lock().clone(),
        }
    }

    /// Stops the pool: connect loops end, idle connections are closed, waiters get
    /// [`DbError::Stopped`]; connections in use are closed when their call ends.
    pub(crate) async fn stop(&self, timeout: Duration) -> Result<(), DbError> {
        self.shared.closed.send_replace(true);
        match self.pool.stop(timeout).await {
            Ok(()) | Err(orbit::pool::PoolError::Stopped) => Ok(()),
            Err(e) => Err(DbError::Internal(format!("the pool did not stop: {e}"))),
        }
    }
}
