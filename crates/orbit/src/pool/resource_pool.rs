//! `ResourcePool`: NimblePool's resource pool — resources owned by the pool, used by
//! the caller inside [`ResourcePool::checkout`].
//!
//! The contract, as NimblePool's (`lib/nimble_pool.ex`):
//! - The pool holds `pool_size` (10) resources, made by [`ResourceWorker::init_worker`]
//!   at start, or on demand when `lazy`. `init_worker` may return a future
//!   ([`InitWorker::Async`]), run apart from the pool; the resource becomes available
//!   when it completes.
//! - [`ResourcePool::checkout`]`(command, f, timeout)` (5 s): takes the next idle
//!   resource (first in, first out) and calls
//!   [`handle_checkout`](ResourceWorker::handle_checkout), which decides: `Ok` hands a
//!   client value to `f`, `Remove` terminates that resource and tries the next one,
//!   `Skip` fails this checkout with the callback's error and keeps the resource. With
//!   no idle resource the caller waits in a first-in first-out queue until `timeout`.
//!   A removed resource's replacement (eager pools) is made before the operation that
//!   removed it returns, so it joins the idle queue ahead of any later check-in, as
//!   NimblePool's (checked against the real NimblePool by `tests/diff_pools.rs`).
//! - `f` runs in the caller and returns the result and a check-in value, which
//!   [`handle_checkin`](ResourceWorker::handle_checkin) uses to keep the resource or
//!   remove it.
//! - If `f` panics, or the caller's future is dropped (the caller process died or was
//!   killed), the resource is removed: [`terminate_worker`](ResourceWorker::terminate_worker)
//!   runs, [`handle_cancelled`](ResourceWorker::handle_cancelled) is told
//!   ([`Cancelled::CheckedOut`]), and a fresh resource is started (at once, or on
//!   demand in a lazy pool). A caller that leaves the queue gets `Cancelled::Queued`.
//! - With `worker_idle_timeout`, every such period the pool pings (up to
//!   `max_idle_pings` of) the resources idle for at least that long with
//!   [`handle_ping`](ResourceWorker::handle_ping): keep, remove, or stop the pool.
//! - A callback that panics removes its resource (NimblePool logs and removes). A
//!   panicking `handle_checkout` fails only its own checkout, at once, with
//!   [`CheckoutError::Panicked`] (NimblePool would try the next resource for the same
//!   caller, so one bad command could consume every resource); the callers queued
//!   behind are served. A resource lost to a panic, and a failed `init_worker` (sync
//!   or async), are made again after 100 ms, never in a loop. A resource handed to a
//!   panicking `handle_checkout`/`handle_checkin`/`handle_ping` is dropped during the
//!   unwind, without `terminate_worker` (the callback owned it); if its `Drop` panics
//!   too, Rust aborts the process. A panicking `terminate_worker` or resource `Drop`
//!   inside it is logged; the pool continues.
//! - On stop, idle resources get `terminate_worker`, waiters get
//!   [`CheckoutError::Stopped`], and checked-out resources are terminated when checked
//!   in.
//!
//! Deliberate differences:
//! - The callbacks run under the pool's lock in whichever process triggers them (the
//!   caller on checkout and check-in, the manager for initialisation, pings and
//!   removals), so a checkout costs no message round trip. Keep callbacks short; put
//!   slow connection setup in [`InitWorker::Async`].
//! - Check-in is synchronous (it is a function call, not a message).
//! - A caller whose timeout fires while a resource is being handed to it keeps the
//!   resource (the hand-off happened first, under the lock) rather than leaving it
//!   checked out until the caller dies.
//! - The resource moves: `handle_checkout` takes the worker state by value and returns
//!   what the pool keeps while it is checked out, so a resource that must not be shared
//!   is moved to the caller and returned through the check-in value.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::metrics::PoolStats;
use super::resource_state::{self, Shared};
use crate::exit::ExitReason;
use crate::pid::Pid;

/// Who checked out: the caller's pid (when it is a process) and the checkout's id
/// (NimblePool's `from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The calling process, if the caller is one.
    pub pid: Option<Pid>,
    /// Unique per checkout within the pool.
    pub checkout: u64,
}

/// What [`ResourceWorker::init_worker`] made.
pub enum InitWorker<W> {
    /// The resource, ready now.
    Ok(W),
    /// A future that makes the resource, run apart from the pool (NimblePool's
    /// `{:async, fun, pool_state}`). If it panics, `init_worker` runs again 100 ms
    /// later.
    Async(Pin<Box<dyn Future<Output = W> + Send>>),
}

/// What [`ResourceWorker::handle_checkout`] decided.
pub enum CheckoutResult<C, W, E> {
    /// Hand `client` to the caller; the pool keeps `worker` while it is checked out.
    Ok {
        /// Given to the checkout's function.
        client: C,
        /// Kept by the pool until check-in.
        worker: W,
    },
    /// Remove this resource (terminate it, start a fresh one) and try the next.
    Remove(ExitReason, W),
    /// Fail this checkout with the error; the resource stays idle.
    Skip(E, W),
}

/// What [`ResourceWorker::handle_checkin`] decided.
pub enum CheckinResult<W> {
    /// Keep the resource: it becomes idle.
    Ok(W),
    /// Remove it (terminate it, start a fresh one).
    Remove(ExitReason, W),
}

/// What [`ResourceWorker::handle_ping`] decided.
pub enum PingResult<W> {
    /// Keep the resource.
    Ok(W),
    /// Remove it (terminate it, start a fresh one).
    Remove(ExitReason, W),
    /// Stop the whole pool with `{shutdown, reason}`.
    Stop(ExitReason, W),
}

/// Where a cancelled checkout was, for [`ResourceWorker::handle_cancelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// Still waiting in the queue (timed out or went away).
    Queued,
    /// Holding a resource (its function panicked or its future was dropped).
    CheckedOut,
}

/// The callbacks of a [`ResourcePool`]. The implementing type is the pool state
/// (NimblePool's `pool_state`); the resources are [`Self::Worker`] values.
pub trait ResourceWorker: Send + 'static {
    /// A resource (NimblePool's worker state).
    type Worker: Send + 'static;
    /// What a checkout asks for (passed to `handle_checkout`).
    type Command: Send + 'static;
    /// What the checkout's function receives.
    type Client: Send + 'static;
    /// What the checkout's function gives back for `handle_checkin`.
    type Checkin: Send + 'static;
    /// The error of a skipped checkout.
    type Error: Send + 'static;

    /// Makes a resource (at start, on demand when lazy, and to replace a removed one).
    fn init_worker(&mut self) -> InitWorker<Self::Worker>;

    /// Decides what a checkout gets from `worker`.
    fn handle_checkout(
        &mut self,
        command: &Self::Command,
        from: Caller,
        worker: Self::Worker,
    ) -> CheckoutResult<Self::Client, Self::Worker, Self::Error>;

    /// Takes a resource back. Default: keep it.
    fn handle_checkin(
        &mut self,
        checkin: Self::Checkin,
        from: Caller,
        worker: Self::Worker,
    ) -> CheckinResult<Self::Worker> {
        let _ = (checkin, from);
        CheckinResult::Ok(worker)
    }

    /// Checks an idle resource (with `worker_idle_timeout`). Default: keep it.
    fn handle_ping(&mut self, worker: Self::Worker) -> PingResult<Self::Worker> {
        PingResult::Ok(worker)
    }

    /// Disposes of a removed resource, or of every idle one when the pool stops.
    /// Default: drop it.
    fn terminate_worker(&mut self, reason: &ExitReason, worker: Self::Worker) {
        let _ = (reason, worker);
    }

    /// A checkout was cancelled. Default: nothing.
    fn handle_cancelled(&mut self, context: Cancelled) {
        let _ = context;
    }
}

/// Options of [`ResourcePool::start`].
#[derive(Debug, Clone)]
pub struct ResourcePoolOptions {
    /// Resources in the pool (default 10).
    pub pool_size: usize,
    /// Make resources on first demand instead of at start (default false).
    pub lazy: bool,
    /// Ping resources idle this long, every this long (default: never).
    pub worker_idle_timeout: Option<Duration>,
    /// Ping at most this many resources per period (default: no limit).
    pub max_idle_pings: Option<usize>,
    /// Register the manager under this name (also the `pool` label of its metrics).
    pub name: Option<String>,
}

impl Default for ResourcePoolOptions {
    fn default() -> Self {
        ResourcePoolOptions {
            pool_size: 10,
            lazy: false,
            worker_idle_timeout: None,
            max_idle_pings: None,
            name: None,
        }
    }
}

impl ResourcePoolOptions {
    /// Options with `pool_size` resources.
    pub fn new(pool_size: usize) -> Self {
        ResourcePoolOptions {
            pool_size,
            ..Default::default()
        }
    }

    /// Makes resources on demand.
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Pings resources idle for `timeout`, every `timeout`.
    pub fn worker_idle_timeout(mut self, timeout: Duration) -> Self {
        self.worker_idle_timeout = Some(timeout);
        self
    }

    /// Pings at most `n` resources per period.
    pub fn max_idle_pings(mut self, n: usize) -> Self {
        self.max_idle_pings = Some(n);
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Why a [`ResourcePool::checkout`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError<E> {
    /// `handle_checkout` skipped this checkout with an error.
    #[error("the pool's handle_checkout skipped this checkout")]
    Skipped(E),
    /// No resource became available in time.
    #[error("no resource became available within {0:?}; the pool may be too small (see stats(): waiting, wait p99, utilization)")]
    Timeout(Duration),
    /// The pool has stopped.
    #[error("the pool is stopped: its manager exited; start a new pool")]
    Stopped,
    /// `handle_checkout` panicked for this checkout (the panic message is given). The
    /// resource it was handed was removed and is replaced after the retry delay; other
    /// checkouts are not affected, so retrying may succeed.
    #[error("the pool's handle_checkout panicked: {0}; the resource was removed and will be replaced (fix the callback, or retry)")]
    Panicked(String),
}

/// A running resource pool with callbacks `M`. Cheap to clone; every clone is the same
/// pool. It runs until [`ResourcePool::stop`] (or its manager is killed).
///
/// ```
/// use std::time::Duration;
/// use orbit::pool::{Caller, CheckoutResult, InitWorker, ResourcePool, ResourcePoolOptions, ResourceWorker};
///
/// /// Hands out numbered buffers.
/// struct Buffers(u32);
/// impl ResourceWorker for Buffers {
///     type Worker = Vec<u8>;
///     type Command = ();
///     type Client = Vec<u8>;
///     type Checkin = Vec<u8>;
///     type Error = ();
///     fn init_worker(&mut self) -> InitWorker<Vec<u8>> {
///         self.0 += 1;
///         InitWorker::Ok(Vec::with_capacity(1024))
///     }
///     fn handle_checkout(&mut self, _: &(), _: Caller, buf: Vec<u8>)
///         -> CheckoutResult<Vec<u8>, Vec<u8>, ()> {
///         // Move the buffer to the caller; keep an empty one meanwhile.
///         CheckoutResult::Ok { client: buf, worker: Vec::new() }
///     }
///     fn handle_checkin(&mut self, mut buf: Vec<u8>, _: Caller, _: Vec<u8>)
///         -> orbit::pool::CheckinResult<Vec<u8>> {
///         buf.clear();
///         orbit::pool::CheckinResult::Ok(buf)
///     }
/// }
///
/// # #[tokio::main] async fn main() {
/// let pool = ResourcePool::start(Buffers(0), ResourcePoolOptions::new(2)).await.unwrap();
/// let len = pool
///     .checkout((), |mut buf| async move {
///         buf.extend_from_slice(b"hello");
///         (buf.len(), buf)
///     }, Duration::from_secs(5))
///     .await
///     .unwrap();
/// assert_eq!(len, 5);
/// pool.stop(Duration::from_secs(5)).await.unwrap();
/// # }
/// ```
pub struct ResourcePool<M: ResourceWorker> {
    pub(super) shared: std::sync::Arc<Shared<M>>,
}

impl<M: ResourceWorker> Clone for ResourcePool<M> {
    fn clone(&self) -> Self {
        ResourcePool {
            shared: self.shared.clone(),
        }
    }
}

impl<M: ResourceWorker> std::fmt::Debug for ResourcePool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResourcePool({})", self.pid())
    }
}

impl<M: ResourceWorker> ResourcePool<M> {
    /// Starts a pool with callbacks `state`: spawns its manager process and, unless
    /// lazy, makes `pool_size` resources (synchronous ones before this returns).
    pub async fn start(state: M, opts: ResourcePoolOptions) -> Result<Self, super::PoolError> {
        let shared = resource_state::start(state, opts, false).await?;
        Ok(ResourcePool { shared })
    }

    /// Starts a pool whose manager is linked to the calling process (which must be a
    /// process): an exit signal from the caller stops the pool (its idle resources are
    /// terminated, waiters get [`CheckoutError::Stopped`]), and the caller gets the
    /// pool's exit signal. This is what [`ResourcePool::child_spec`] runs.
    pub async fn start_link(state: M, opts: ResourcePoolOptions) -> Result<Self, super::PoolError> {
        let shared = resource_state::start(state, opts, true).await?;
        Ok(ResourcePool { shared })
    }

    /// The manager process's pid.
    pub fn pid(&self) -> Pid {
        self.shared.manager_pid()
    }

    /// Checks a resource out with `command`, runs `f` with the client value in the
    /// caller, and checks the resource in with the value `f` returns; returns `f`'s
    /// result. Waits up to `timeout` for a resource (NimblePool's `checkout!/4`).
    ///
    /// If `f` panics or this future is dropped while `f` runs, the resource is removed
    /// and replaced (the panic then continues in the caller).
    pub async fn checkout<T, F, Fut>(
        &self,
        command: M::Command,
        f: F,
        timeout: Duration,
    ) -> Result<T, CheckoutError<M::Error>>
    where
        F: FnOnce(M::Client) -> Fut,
        Fut: Future<Output = (T, M::Checkin)>,
    {
        // Made only if the caller queues.
        let give_up = move || async move { tokio::time::sleep(timeout).await };
        self.checkout_inner(command, |c, _| f(c), give_up, Some(timeout), None)
            .await
    }

    /// [`ResourcePool::checkout`] whose wait for a resource ends when `give_up`
    /// completes instead of after a fixed timeout; the checkout then fails with
    /// [`CheckoutError::Timeout`] carrying the time it waited in the queue.
    ///
    /// `give_up` is polled only if the caller has to queue (no idle resource), and is
    /// dropped before `f` runs: a caller that bounds its whole call (wait and work)
    /// with one timer of its own passes a future that waits on that timer, so a queued
    /// checkout arms no second one. As with the timeout, a resource handed to the
    /// caller just as `give_up` completes is kept (the hand-off happened first) and `f`
    /// runs; the queue, panics and cancellation behave as in
    /// [`ResourcePool::checkout`].
    pub async fn checkout_or<T, F, Fut, G>(
        &self,
        command: M::Command,
        f: F,
        give_up: G,
    ) -> Result<T, CheckoutError<M::Error>>
    where
        F: FnOnce(M::Client) -> Fut,
        Fut: Future<Output = (T, M::Checkin)>,
        G: Future<Output = ()>,
    {
        self.checkout_inner(command, |c, _| f(c), move || give_up, None, None)
            .await
    }

    /// [`ResourcePool::checkout_or`] for a caller that has read the clock already:
    /// `since` is when its wait began (the pool then reads the clock only at the
    /// hand-off, and only if the caller queued), and `f` also gets how long the caller
    /// waited for the resource (zero when one was idle), the figure the pool's wait
    /// histogram records.
    ///
    /// `give_up` makes the give-up future, and is called only if the caller queues:
    /// the future is made where it is polled, not moved through the checkout's own
    /// futures (each move a copy of it). The checkout's own future is returned as is
    /// (no wrapping state machine for the caller's work to be moved through).
    pub fn checkout_or_since<T, F, Fut, G, GF>(
        &self,
        command: M::Command,
        since: tokio::time::Instant,
        f: F,
        give_up: GF,
    ) -> impl Future<Output = Result<T, CheckoutError<M::Error>>> + use<'_, M, T, F, Fut, G, GF>
    where
        F: FnOnce(M::Client, Duration) -> Fut,
        Fut: Future<Output = (T, M::Checkin)>,
        GF: FnOnce() -> G,
        G: Future<Output = ()>,
    {
        self.checkout_inner(command, f, give_up, None, Some(since))
    }

    /// The body of the checkouts: `give_up` makes the wait's give-up future (called
    /// only if the caller queues); `timeout` is what a timed-out checkout reports
    /// (`None`: the time it waited); the wait is counted from `since` (`None`: when the
    /// caller queues).
    async fn checkout_inner<T, F, Fut, G, GF>(
        &self,
        command: M::Command,
        f: F,
        give_up: GF,
        timeout: Option<Duration>,
        since: Option<tokio::time::Instant>,
    ) -> Result<T, CheckoutError<M::Error>>
    where
        F: FnOnce(M::Client, Duration) -> Fut,
        Fut: Future<Output = (T, M::Checkin)>,
        GF: FnOnce() -> G,
        G: Future<Output = ()>,
    {
        let t0 = crate::telemetry::enabled().then(std::time::Instant::now);
        let (caller, (client, worker), waited) = self
            .shared
            .acquire(command, give_up, timeout, since)
            .await?;
        // Holds the resource's worker state from here (a panicking telemetry handler
        // included): removes the resource unless `f` completes.
        let mut guard = resource_state::CheckedOut {
            shared: &self.shared,
            worker: Some(worker),
        };
        if let Some(t0) = t0 {
            let waited = t0.elapsed().as_secs_f64() * 1e6;
            let queued = self.stats().waiting as f64;
            crate::telemetry::execute(
                &["orbit", "pool", "checkout"],
                &[("queue_time_us", waited), ("queue_length", queued)],
                &[("pool", &self.pid())],
            );
        }
        let (out, checkin) = f(client, waited).await;
        if let Some(worker) = guard.worker.take() {
            self.shared.checkin(caller, checkin, worker);
        }
        Ok(out)
    }

    /// A snapshot of counts, counters, wait times and utilization (see [`PoolStats`]).
    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// True while the pool accepts checkouts.
    pub fn is_running(&self) -> bool {
        self.shared.is_running()
    }

    /// Stops the pool: idle resources are terminated, waiters get
    /// [`CheckoutError::Stopped`]. Waits up to `timeout` for the manager.
    pub async fn stop(&self, timeout: Duration) -> Result<(), super::PoolError> {
        self.shared.stop(ExitReason::Normal, timeout).await
    }
}
