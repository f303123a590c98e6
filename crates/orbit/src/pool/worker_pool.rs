//! `Pool`: poolboy's worker pool — GenServer workers started, linked and restarted by
//! the pool's manager process, checked out by callers one at a time.
//!
//! The contract, as poolboy's (`src/poolboy.erl`):
//! - Options: `size` (5) workers started with the pool, up to `max_overflow` (10) more
//!   started on demand, `strategy` [`CheckoutOrder::Lifo`] (the most recently returned worker
//!   goes out first) or [`CheckoutOrder::Fifo`].
//! - [`Pool::checkout`]`(block, timeout)` (5 s in [`Pool::transaction`]'s examples):
//!   an idle worker; else a new overflow worker while `overflow < max_overflow`; else,
//!   when `block`, a place in a first-in first-out queue for up to `timeout`; else
//!   [`PoolError::Full`]. A waiter that times out leaves the queue, and a worker handed
//!   to it at that moment goes back to the pool.
//! - [`Pool::checkin`] (or dropping the [`Lease`]): the worker goes to the first waiter;
//!   with nobody waiting, an overflow worker is stopped (poolboy stops whichever worker
//!   was checked in while the pool overflows); otherwise it becomes idle.
//! - [`Pool::transaction`]`(f, timeout)`: checkout, run, always check in — also when
//!   `f` returns an error, panics, or its future is dropped. [`Pool::call`]`(request)`
//!   is the usual transaction, a GenServer call to the worker.
//! - A worker that dies, idle or checked out, is forgotten and replaced (or, when the
//!   pool overflows and nobody waits, the overflow count drops instead). A caller that
//!   dies holding a worker returns it.
//! - [`Pool::status`]: `(ready | overflow | full, available, overflow, checked_out)`.
//! - [`Pool::stop`]: as poolboy's `terminate` shutting down its supervisor — every
//!   worker gets `shutdown` from the manager (its parent), then `kill` after
//!   [`PoolOptions::shutdown`] (5 s), and `stop` returns once all have exited,
//!   including overflow workers dismissed moments before. A worker blocked without an
//!   await point cannot be killed (tokio does not preempt); the manager then gives up
//!   after a second grace period and logs an error.
//!
//! Deliberate differences:
//! - A checkout returns a [`Lease`], which owns the checkout: dropping it checks the
//!   worker in. A caller that dies (panics, is killed, or its future is dropped) drops
//!   its lease, which is how "a caller that dies returns its worker" holds here — also
//!   for callers that are plain tokio tasks, and without a monitor per checkout. A
//!   lease moved to another process stays checked out until that process drops it.
//! - Check-in of a lease from another pool, or of a worker that exited while checked
//!   out, is an error ([`CheckinError`]) instead of being ignored; a double check-in
//!   cannot compile.
//! - The queue and the idle workers are shared state under a short lock, so checkout
//!   and check-in cost no round trip through the manager; the manager serialises only
//!   worker starts, exits and dismissals.
//! - A replacement worker that cannot start (its `init` fails or panics) stops the
//!   pool with that error (poolboy's manager crashes on it and relies on its
//!   supervisor); an overflow worker that cannot start fails that checkout with
//!   [`PoolError::WorkerStart`]. A worker that panics later (in a handler, including
//!   `handle_info`) is an exit like any other: forgotten and replaced — at once, unless it
//!   exited within 100 ms of its start: then its replacement starts 100 ms after that
//!   start, so a worker that crashes on every start cannot spin the manager (poolboy
//!   restarts in a loop).

use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::oneshot;

use super::metrics::{Metrics, PoolStats};
use super::worker_state::{self, Attempt, ManagerMsg, Out, Shared, State};
use super::{CheckinError, PoolError, DEFAULT_CHECKOUT_TIMEOUT};
use crate::exit::ExitReason;
use crate::gen_server::{GenServer, ServerRef};
use crate::pid::Pid;
use crate::process::{self, Context, Spawn};
use crate::sync::Mutex;

/// Which idle worker a checkout gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckoutOrder {
    /// The most recently checked-in worker (poolboy's default): warm workers stay warm,
    /// the others stay idle.
    #[default]
    Lifo,
    /// The worker idle the longest: load spreads over every worker.
    Fifo,
}

/// Options of [`Pool::start`].
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Workers started with the pool and kept running (default 5).
    pub size: usize,
    /// Extra workers started when every worker is busy, stopped on check-in when nobody
    /// waits (default 10).
    pub max_overflow: usize,
    /// Which idle worker goes out first (default LIFO).
    pub strategy: CheckoutOrder,
    /// Register the manager under this name (also the `pool` label of its metrics).
    pub name: Option<String>,
    /// How long a stopping pool waits for each worker to exit after its `shutdown`
    /// exit signal before killing it (default 5 s, poolboy's supervisor's).
    pub shutdown: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            size: 5,
            max_overflow: 10,
            strategy: CheckoutOrder::Lifo,
            name: None,
            shutdown: Duration::from_secs(5),
        }
    }
}

impl PoolOptions {
    /// Options with `size` workers and `max_overflow` extra ones.
    pub fn new(size: usize, max_overflow: usize) -> Self {
        PoolOptions {
            size,
            max_overflow,
            ..Default::default()
        }
    }

    /// Sets the strategy.
    pub fn strategy(mut self, strategy: CheckoutOrder) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the shutdown grace of each worker.
    pub fn shutdown(mut self, grace: Duration) -> Self {
        self.shutdown = grace;
        self
    }
}

/// poolboy's state name in [`PoolStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolState {
    /// Idle workers are available.
    Ready,
    /// No idle worker, but overflow workers can still be started (or some run).
    Overflow,
    /// No idle worker and no overflow left: blocking checkouts wait.
    Full,
}

/// `poolboy:status/1`: `{state, available, overflow, checked_out}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Ready, overflowing or full.
    pub state: PoolState,
    /// Idle workers.
    pub available: usize,
    /// Overflow workers running (or starting).
    pub overflow: usize,
    /// Workers checked out.
    pub checked_out: usize,
}

/// A checked-out worker. Dereferences to the worker's [`ServerRef`]; dropping it (or
/// [`Pool::checkin`]) returns the worker to its pool.
pub struct Lease<W: GenServer> {
    pool: Arc<Shared<W>>,
    /// `Some` until the lease is checked in or taken apart.
    out: Option<Out<W>>,
}

impl<W: GenServer> Lease<W> {
    pub(super) fn new(pool: Arc<Shared<W>>, out: Out<W>) -> Self {
        Lease {
            pool,
            out: Some(out),
        }
    }

    /// Takes the checkout out of the lease; dropping the lease then does nothing.
    pub(super) fn into_out(mut self) -> Out<W> {
        // Only `Drop`, `checkin` and this take it, and each consumes the lease.
        self.out.take().expect("a live lease holds its checkout")
    }

    /// The worker.
    pub fn worker(&self) -> &ServerRef<W> {
        // `out` is `Some` for as long as the lease can be borrowed.
        &self
            .out
            .as_ref()
            .expect("a live lease holds its checkout")
            .worker
    }

    /// The worker's pid.
    pub fn pid(&self) -> Pid {
        self.worker().pid()
    }

    /// Returns the worker to its pool now. Fails when the worker exited while checked
    /// out (it has been replaced) or the pool stopped.
    pub fn checkin(self) -> Result<(), CheckinError> {
        let pool = self.pool.clone();
        pool.checkin(self.into_out())
    }
}

impl<W: GenServer> Deref for Lease<W> {
    type Target = ServerRef<W>;
    fn deref(&self) -> &ServerRef<W> {
        self.worker()
    }
}

impl<W: GenServer> Drop for Lease<W> {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            let _ = self.pool.checkin(out);
        }
    }
}

impl<W: GenServer> std::fmt::Debug for Lease<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.out {
            Some(o) => write!(f, "Lease({}, #{})", o.worker.pid(), o.id),
            None => f.write_str("Lease(returned)"),
        }
    }
}

/// A checkout held by [`Pool::transaction`]: borrows the pool instead of holding a
/// reference count, and checks in when dropped.
struct Held<'a, W: GenServer> {
    shared: &'a Arc<Shared<W>>,
    out: Option<Out<W>>,
}

impl<W: GenServer> Drop for Held<'_, W> {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            let _ = self.shared.checkin(out);
        }
    }
}

/// A running worker pool of GenServers of type `W`. Cheap to clone; every clone is the
/// same pool. The pool runs until [`Pool::stop`] (or its manager is killed, or, with
/// [`Pool::start_link`], its parent exits) — dropping the handles does not stop it.
///
/// ```
/// use std::time::Duration;
/// use orbit::pool::{Pool, PoolOptions};
///
/// struct Echo;
/// impl orbit::GenServer for Echo {
///     type Call = u32; type Reply = u32; type Cast = (); type Info = (); type Continue = ();
///     async fn handle_call(&mut self, n: u32, _: &mut orbit::ReplyTo<u32>,
///                          _: &mut orbit::ServerContext<Self>) -> orbit::CallReply<u32, ()> {
///         orbit::CallReply::Reply(n)
///     }
/// }
///
/// # #[tokio::main] async fn main() {
/// let pool = Pool::start(PoolOptions::new(2, 1), || Echo).await.unwrap();
/// let n = pool
///     .transaction(|w| async move { w.call(7).await }, Duration::from_secs(5))
///     .await
///     .unwrap()
///     .unwrap();
/// assert_eq!(n, 7);
/// assert_eq!(pool.status().available, 2);
/// pool.stop(Duration::from_secs(5)).await.unwrap();
/// # }
/// ```
pub struct Pool<W: GenServer> {
    pub(super) shared: Arc<Shared<W>>,
    pub(super) manager: Pid,
}

impl<W: GenServer> Clone for Pool<W> {
    fn clone(&self) -> Self {
        Pool {
            shared: self.shared.clone(),
            manager: self.manager,
        }
    }
}

impl<W: GenServer> std::fmt::Debug for Pool<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({})", self.manager)
    }
}

impl<W: GenServer> Pool<W> {
    /// Starts an unlinked pool: spawns the manager, which starts `size` workers from
    /// `factory` (each linked to it) before this returns.
    pub async fn start<F>(opts: PoolOptions, factory: F) -> Result<Pool<W>, PoolError>
    where
        F: Fn() -> W + Send + Sync + 'static,
    {
        Self::start_opts(opts, Arc::new(factory), false).await
    }

    /// Starts a pool linked to the calling process (which must be a process): the pool
    /// stops when the caller exits, and the caller gets the pool's exit signal.
    pub async fn start_link<F>(opts: PoolOptions, factory: F) -> Result<Pool<W>, PoolError>
    where
        F: Fn() -> W + Send + Sync + 'static,
    {
        Self::start_opts(opts, Arc::new(factory), true).await
    }

    pub(super) async fn start_opts(
        opts: PoolOptions,
        factory: worker_state::Factory<W>,
        link: bool,
    ) -> Result<Pool<W>, PoolError> {
        if opts.size == 0 && opts.max_overflow == 0 {
            return Err(PoolError::InvalidOptions(
                "size and max_overflow are both 0, so no worker could ever be checked out; set size >= 1 (or max_overflow >= 1)",
            ));
        }
        let parent = if link {
            Some(process::self_pid().ok_or(PoolError::Spawn(crate::Error::NotInProcess))?)
        } else {
            None
        };
        let label = opts.name.clone().unwrap_or_default();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(Metrics::new(label, opts.size), opts.strategy)),
            manager: OnceLock::new(),
            size: opts.size,
            max_overflow: opts.max_overflow,
            shutdown: opts.shutdown,
        });
        let (ack_tx, ack_rx) = oneshot::channel();
        let mut spawn = Spawn::new().trap_exit().label("pool");
        if link {
            spawn = spawn.link();
        }
        let s = shared.clone();
        let handle = spawn
            .spawn(move |ctx: Context<ManagerMsg<W>>| {
                worker_state::run(ctx, s, factory, parent, ack_tx)
            })
            .map_err(PoolError::Spawn)?;
        let manager = handle.pid();
        // Makes the pool reachable from its pid and name (`Pool::whereis`); dropped with
        // the manager.
        let _ = crate::attachment::attach(manager, Box::new(shared.clone()));
        if let Some(name) = &opts.name {
            if let Err(e) = crate::registry::register(name, manager) {
                let _ = handle.send(ManagerMsg::Stop(ExitReason::Normal));
                return Err(PoolError::Spawn(e));
            }
        }
        match ack_rx.await {
            Ok(Ok(())) => Ok(Pool { shared, manager }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(PoolError::WorkerStart(crate::gen_server::StartError::Init(
                handle.wait_exit().await,
            ))),
        }
    }

    /// The manager process's pid.
    pub fn pid(&self) -> Pid {
        self.manager
    }

    /// Checks a worker out: at once if one is idle or an overflow worker can be started;
    /// else, when `block`, waits up to `timeout` in a first-in first-out queue; else
    /// fails with [`PoolError::Full`].
    pub async fn checkout(&self, block: bool, timeout: Duration) -> Result<Lease<W>, PoolError> {
        let t0 = crate::telemetry::enabled().then(std::time::Instant::now);
        let got = match self.shared.try_checkout(block) {
            Attempt::Got(out) => Ok(Lease::new(self.shared.clone(), out)),
            other => self.wait(other, timeout).await,
        };
        if let (Some(t0), Ok(_)) = (t0, &got) {
            let waited = t0.elapsed().as_secs_f64() * 1e6;
            let queued = self.stats().waiting as f64;
            crate::telemetry::execute(
                &["orbit", "pool", "checkout"],
                &[("queue_time_us", waited), ("queue_length", queued)],
                &[("pool", &self.manager)],
            );
        }
        got
    }

    /// The slow path of a checkout: wait for an overflow worker or in the queue.
    async fn wait(&self, attempt: Attempt<W>, timeout: Duration) -> Result<Lease<W>, PoolError> {
        let (rx, waiter) = match attempt {
            Attempt::Got(out) => return Ok(Lease::new(self.shared.clone(), out)),
            Attempt::Full => return Err(PoolError::Full),
            Attempt::Stopped => return Err(PoolError::Stopped),
            Attempt::Overflow(rx) => (rx, None),
            Attempt::Wait(id, rx) => (rx, Some(id)),
        };
        // Leaves the queue if this future is dropped while waiting.
        let mut guard = WaitGuard {
            shared: &self.shared,
            waiter,
            armed: true,
        };
        let got = tokio::time::timeout(timeout, rx).await;
        guard.armed = false;
        match got {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(PoolError::Stopped),
            // The receiver is dropped by now: a lease sent at the last moment has
            // already gone back to the pool.
            Err(_) => {
                match waiter {
                    Some(id) => self.shared.cancel_wait(id),
                    None => self.shared.count_timeout(),
                }
                Err(PoolError::Timeout(timeout))
            }
        }
    }

    /// Returns a checked-out worker. Fails, without effect, for a lease of another pool
    /// (that lease is dropped, which returns it to its own pool) or a worker that exited
    /// while checked out.
    pub fn checkin(&self, lease: Lease<W>) -> Result<(), CheckinError> {
        if !Arc::ptr_eq(&lease.pool, &self.shared) {
            let owner = lease
                .pool
                .manager
                .get()
                .map(|h| h.pid())
                .unwrap_or(Pid::NONE);
            return Err(CheckinError::Foreign {
                worker: lease.pid(),
                owner,
                pool: self.manager,
            });
        }
        lease.checkin()
    }

    /// Checks a worker out (blocking up to `timeout`), runs `f` with it, and checks it
    /// back in whatever happens — `f` returning an error, panicking, or the caller's
    /// future being dropped.
    pub async fn transaction<T, F, Fut>(&self, f: F, timeout: Duration) -> Result<T, PoolError>
    where
        F: FnOnce(ServerRef<W>) -> Fut,
        Fut: Future<Output = T>,
    {
        let out = match self.shared.try_checkout(true) {
            Attempt::Got(out) => out,
            other => self.wait(other, timeout).await?.into_out(),
        };
        let worker = out.worker.clone();
        let held = Held {
            shared: &self.shared,
            out: Some(out),
        };
        let r = f(worker).await;
        drop(held);
        Ok(r)
    }

    /// `:poolboy.transaction(pool, &GenServer.call(&1, request))`, the pool's most common
    /// use: checks a worker out (waiting up to [`DEFAULT_CHECKOUT_TIMEOUT`], 5 s, in the
    /// queue), calls it with `request` (GenServer's default timeout, 5 s), and checks it
    /// back in whatever happens.
    /// Fails with the checkout's error, or [`PoolError::Call`] with the call's.
    ///
    /// The future owns a handle on the pool and borrows nothing, so `move |x| pool.call(x)`
    /// is a task body as it stands (`TaskSupervisor::async_stream(items, move |x|
    /// pool.call(x), ..)`).
    pub fn call(
        &self,
        request: W::Call,
    ) -> impl Future<Output = Result<W::Reply, PoolError>> + Send + 'static {
        let pool = self.clone();
        async move {
            let call = |w: ServerRef<W>| async move { w.call(request).await };
            pool.transaction(call, DEFAULT_CHECKOUT_TIMEOUT)
                .await?
                .map_err(PoolError::Call)
        }
    }

    /// `poolboy:status/1`.
    pub fn status(&self) -> PoolStatus {
        let st = self.shared.state.lock();
        let available = st.available();
        let state = if st.overflow < 1 {
            if available == 0 {
                if self.shared.max_overflow < 1 {
                    PoolState::Full
                } else {
                    PoolState::Overflow
                }
            } else {
                PoolState::Ready
            }
        } else if st.overflow >= self.shared.max_overflow {
            PoolState::Full
        } else {
            PoolState::Overflow
        };
        PoolStatus {
            state,
            available,
            overflow: st.overflow,
            checked_out: st.checked_out,
        }
    }

    /// A snapshot of counts, counters, wait times and utilization (see [`PoolStats`]).
    pub fn stats(&self) -> PoolStats {
        let st = self.shared.state.lock();
        let mut s = PoolStats {
            size: self.shared.size,
            max_overflow: self.shared.max_overflow,
            workers: st.live(),
            available: st.available(),
            checked_out: st.checked_out,
            overflow: st.overflow,
            waiting: st.waiting(),
            ..Default::default()
        };
        st.metrics.snapshot(&mut s);
        s
    }

    /// The pids of every live worker, idle or checked out.
    pub fn workers(&self) -> Vec<Pid> {
        self.shared.state.lock().worker_pids()
    }

    /// True while the pool accepts checkouts.
    pub fn is_running(&self) -> bool {
        !self.shared.state.lock().stopped
    }

    /// Stops the pool: later checkouts fail and waiters get [`PoolError::Stopped`];
    /// every worker the pool started that still runs — idle, checked out, overflow,
    /// just dismissed — gets a `shutdown` exit signal (killed after
    /// [`PoolOptions::shutdown`]), and the manager exits once every one of them has
    /// exited. Waits up to `timeout` for that: when this returns `Ok`, no worker of the
    /// pool is running. A lease still held then is void: its calls fail and its
    /// check-in returns [`CheckinError::Stopped`].
    pub async fn stop(&self, timeout: Duration) -> Result<(), PoolError> {
        let Some(h) = self.shared.manager.get() else {
            return Err(PoolError::Stopped);
        };
        if h.send(ManagerMsg::Stop(ExitReason::Normal)).is_err() {
            return Err(PoolError::Stopped);
        }
        tokio::time::timeout(timeout, h.wait_exit())
            .await
            .map(|_| ())
            .map_err(|_| PoolError::Timeout(timeout))
    }
}

struct WaitGuard<'a, W: GenServer> {
    shared: &'a Arc<Shared<W>>,
    waiter: Option<u64>,
    armed: bool,
}

impl<W: GenServer> Drop for WaitGuard<'_, W> {
    fn drop(&mut self) {
        if self.armed {
            if let Some(id) = self.waiter {
                self.shared.cancel_wait(id);
            }
        }
    }
}
