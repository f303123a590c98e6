//! Pools: a bounded set of workers in front of something slow (poolboy), or a bounded
//! set of resources used by the caller (NimblePool).
//!
//! A process handles one message at a time, so one process in front of a slow external
//! service caps throughput at one request per service latency. A pool widens that
//! bottleneck to `size` requests at a time and queues the rest, with a timeout, so
//! overload shows as waiting callers and wait times ([`PoolStats`]) instead of an
//! unbounded mailbox.
//!
//! Two models, as in the Erlang/Elixir libraries `poolboy` and `NimblePool`:
//!
//! - [`Pool`] (devinus/poolboy): the workers are GenServer processes started, linked and
//!   restarted by the pool's manager process. A caller checks one out, calls it, and
//!   checks it back in ([`Pool::transaction`] does all three and always checks in).
//!   Use it when the work must run in a process of its own (it holds state, or must be
//!   isolated from the caller's crashes).
//! - [`ResourcePool`] (dashbitco/nimble_pool): the resources (connections, ports,
//!   buffers) are plain values owned by the pool; a checkout hands one to a function
//!   that runs in the caller, so there is no extra message hop per use. A resource whose
//!   user failed is removed and replaced, because its state is unknown.
//!
//! Under a supervisor: [`Pool::child_spec`] and [`ResourcePool::child_spec`] (defaults
//! in `pool/supervised.rs`); a named pool is found again after a restart with
//! [`Pool::whereis`] / [`ResourcePool::whereis`].
//!
//! Not for: fanning out independent jobs with no shared limit — use
//! [`TaskSupervisor`](crate::TaskSupervisor) — or serialising access to one piece of
//! state — use a [`GenServer`](crate::GenServer).
//!
//! Both pools keep their state under one short lock, so the common checkout and
//! check-in run in the caller without a round trip through the manager process; the
//! manager owns what needs a process (links to workers, restarts, timers, async
//! initialisation). Every operation that changes the pool holds the lock for a few
//! hundred nanoseconds at most, except the [`ResourcePool`] callbacks, which run under
//! it (keep them short, as NimblePool's run inside its pool process).
//!
//! Contracts common to both pools:
//! - **Stop.** `stop` returns `Ok` only when the pool is fully down: waiters got
//!   `Stopped`, later checkouts fail, and — for [`Pool`] — every worker the pool ever
//!   started (idle, checked out, overflow, replacement, just dismissed) has exited
//!   (`shutdown` exit signal, `kill` after [`PoolOptions::shutdown`], as poolboy's
//!   supervisor); a lease held across the stop is void ([`CheckinError::Stopped`]).
//!   For [`ResourcePool`] idle resources are terminated and checked-out ones are
//!   terminated when they come back.
//! - **Callback panics.** A panic in a user callback is caught and costs at most the
//!   one checkout and the one resource concerned: a panicking `handle_checkout` fails
//!   that checkout at once with [`CheckoutError::Panicked`] and the callers behind it
//!   are served; the resource is removed (as NimblePool removes a worker whose
//!   callback raised). Panic payloads are disposed of without letting their own
//!   `Drop` unwind into the pool.
//! - **Retry backoff.** A failed `init_worker` (sync, or its async future) is retried
//!   after 100 ms, and a resource lost to a panicking callback is replaced after
//!   100 ms, on tokio's clock (so `tokio::time::pause` applies): a callback that always
//!   panics costs one attempt per 100 ms per resource, never a hot loop. Deliberate
//!   removals (`Remove` results, a caller that died holding a resource) are replaced at
//!   once. A [`Pool`] worker that exits within 100 ms of its start is replaced 100 ms
//!   after that start (a crash loop), any other at once.
//! - **Callers that die.** A caller whose future is dropped while queued leaves the
//!   queue; one dropped while holding a worker returns it ([`Pool`]) or has it removed
//!   and replaced ([`ResourcePool`]). Nothing is lost either way.
//!
//! Model-checked: the [`Pool`] checkout state machine (`pool/checkout.rs`: idle list,
//! first-in first-out waiters, hand-off of a returned worker to the first waiter still
//! there) is the code the pool runs under its lock, and its loom models explore
//! concurrent checkout, check-in, hand-off and waiter timeout on a pool of one worker
//! with two callers (`scripts/loom loom_pool`). [`ResourcePool`]'s hand-off
//! (`pool/handoff.rs`: the waiting callers and their delivery slots, under the pool's
//! lock) is model-checked the same way with one resource and two callers, one giving
//! up or going away as the hand-off comes (`scripts/loom loom_resource_handoff`). Not
//! model-checked: the slot ledger and lease bookkeeping around the [`Pool`] state
//! machine, the manager, and the rest of [`ResourcePool`]'s state (covered by the
//! stress tests `pool_stop`, `pool_resource_panics` and the short-timeout tests).
//!
//! Throughput beside deadpool, bb8, poolboy and NimblePool, and a slow external call
//! behind one GenServer, a `Pool` and `TaskSupervisor` tasks: `orbit-bench pool`.

mod checkout;
mod handoff;
mod metrics;
mod resource_pool;
mod resource_state;
mod supervised;
mod worker_pool;
mod worker_state;

use std::time::Duration;

use crate::error::Error;
use crate::exit::ExitReason;
use crate::gen_server::{CallError, StartError};
use crate::pid::Pid;

pub use self::metrics::{PoolStats, WaitTimes};
pub use resource_pool::{
    Caller, Cancelled, CheckinResult, CheckoutError, CheckoutResult, InitWorker, PingResult,
    ResourcePool, ResourcePoolOptions, ResourceWorker,
};
pub use worker_pool::{CheckoutOrder, Lease, Pool, PoolOptions, PoolState, PoolStatus};

/// The default checkout timeout, as poolboy's and NimblePool's.
pub const DEFAULT_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a pool could not be started or a checkout failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The options cannot make a working pool.
    #[error("invalid pool options: {0}")]
    InvalidOptions(&'static str),
    /// A non-blocking checkout found every worker checked out and no overflow left.
    #[error("the pool is full: every worker is checked out and max_overflow is reached; check out with block = true, retry later, or raise size or max_overflow")]
    Full,
    /// No worker became free in time.
    #[error("no worker became available within {0:?}; the pool may be too small (see stats(): waiting, wait p99, utilization)")]
    Timeout(Duration),
    /// The pool's manager has stopped.
    #[error("the pool is stopped: its manager exited; start a new pool")]
    Stopped,
    /// A worker could not be started.
    #[error("a pool worker failed to start: {0}")]
    WorkerStart(StartError),
    /// The manager process could not be spawned.
    #[error("the pool manager could not be spawned: {0}")]
    Spawn(Error),
    /// [`Pool::call`]: the worker's call failed (it crashed, timed out, ...); the worker
    /// went back to the pool, or was replaced if it exited.
    #[error("the pool worker's call failed: {0}")]
    Call(CallError),
}

/// Why a check-in was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckinError {
    /// The lease came from another pool. It was dropped, which returned it to its own
    /// pool.
    #[error("the worker {worker} belongs to the pool {owner}, not to {pool}; it was returned to its own pool")]
    Foreign {
        /// The worker.
        worker: Pid,
        /// The manager of the pool the lease came from.
        owner: Pid,
        /// The manager of the pool it was checked in to.
        pool: Pid,
    },
    /// The worker is no longer checked out under this lease: it exited (and was
    /// replaced) while checked out, or the pool stopped.
    #[error("the worker {0} was already returned to the pool (it exited and was replaced); nothing to check in")]
    AlreadyReturned(Pid),
    /// The pool stopped while the worker was checked out; the worker has been stopped
    /// with it.
    #[error("the pool stopped while the worker {0} was checked out; the worker was stopped with the pool, nothing to check in")]
    Stopped(Pid),
}

/// Runs a user callback, catching a panic: `Err` holds the panic's message. The
/// payload is disposed of here, so a payload whose own `Drop` panics cannot unwind into
/// the pool (it is leaked instead).
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(panic_message)
}

/// The message of a caught panic; disposes of the payload without letting a panicking
/// `Drop` of it escape.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let msg = if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    };
    if let Err(again) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(payload))) {
        std::mem::forget(again);
    }
    msg
}

/// The reason given to workers and resources when the pool stops normally.
pub(crate) fn shutdown_reason(r: &ExitReason) -> ExitReason {
    if r.is_normal() {
        ExitReason::Shutdown
    } else {
        r.clone()
    }
}
