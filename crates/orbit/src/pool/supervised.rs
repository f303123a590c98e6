//! Pools in a supervision tree: child specs, and finding a running pool by name or pid.
//!
//! As `:poolboy.child_spec/2` and `{NimblePool, opts}`: a pool is one child of a
//! [`Supervisor`](crate::Supervisor), its manager linked to the supervisor. The
//! supervisor stops it with a `shutdown` exit signal, which the manager handles as
//! [`Pool::stop`] / [`ResourcePool::stop`] do (workers stopped and waited for; idle
//! resources terminated), and restarts it with fresh workers when it crashes. A pool
//! with a name (`PoolOptions::name`, `ResourcePoolOptions::name`) is found again after
//! a restart with [`Pool::whereis`] / [`ResourcePool::whereis`], which return the
//! instance running now.
//!
//! Defaults: permanent workers. A [`Pool`]'s shutdown is twice its per-worker grace
//! ([`PoolOptions::shutdown`], 5 s) plus one second (poolboy's child spec says 5 s,
//! which would cut its own workers' 5 s grace short); a [`ResourcePool`]'s is 30 s, as
//! NimblePool's. Either way the workers are linked to the manager and cannot outlive it.

use std::sync::Arc;
use std::time::Duration;

use super::resource_pool::{ResourcePool, ResourcePoolOptions, ResourceWorker};
use super::worker_pool::{Pool, PoolOptions};
use super::PoolError;
use crate::exit::ExitReason;
use crate::gen_server::GenServer;
use crate::pid::Pid;
use crate::supervisor::{ChildSpec, IntoStartResult, Shutdown, StartResult};

/// NimblePool's default shutdown of a pool child.
const RESOURCE_POOL_SHUTDOWN: Duration = Duration::from_secs(30);

fn pool_error(e: PoolError) -> ExitReason {
    match e {
        PoolError::WorkerStart(crate::gen_server::StartError::Init(r)) => r,
        other => ExitReason::error(other.to_string()),
    }
}

impl<W: GenServer> IntoStartResult for Result<Pool<W>, PoolError> {
    fn into_start_result(self) -> StartResult {
        self.map(|p| Some(p.pid())).map_err(pool_error)
    }
}

impl<M: ResourceWorker> IntoStartResult for Result<ResourcePool<M>, PoolError> {
    fn into_start_result(self) -> StartResult {
        self.map(|p| Some(p.pid())).map_err(pool_error)
    }
}

impl<W: GenServer> Pool<W> {
    /// A child spec that starts this pool linked to the supervisor
    /// ([`Pool::start_link`] with `opts` and `factory`) at each (re)start: a permanent
    /// worker whose shutdown is `2 * opts.shutdown + 1 s`. Name the pool with
    /// [`PoolOptions::name`] to find it again after a restart ([`Pool::whereis`]).
    pub fn child_spec<F>(id: impl Into<String>, opts: PoolOptions, factory: F) -> ChildSpec
    where
        F: Fn() -> W + Send + Sync + 'static,
    {
        let grace = opts.shutdown;
        let name = opts.name.clone();
        let factory: Arc<dyn Fn() -> W + Send + Sync> = Arc::new(factory);
        let spec = ChildSpec::worker(id, move || {
            Pool::start_opts(opts.clone(), factory.clone(), true)
        })
        .shutdown(Shutdown::Timeout(
            grace
                .saturating_mul(2)
                .saturating_add(Duration::from_secs(1)),
        ));
        ChildSpec { name, ..spec }
    }

    /// The pool whose manager runs as `pid`, if it is a running pool of `W` workers.
    pub fn from_pid(pid: Pid) -> Option<Pool<W>> {
        let shared = crate::attachment::attached::<Arc<super::worker_state::Shared<W>>>(pid)?;
        Some(Pool {
            shared,
            manager: pid,
        })
    }

    /// The pool of `W` workers registered as `name` (its [`PoolOptions::name`]), if it
    /// runs: after a supervisor restarted it, the new instance.
    pub fn whereis(name: impl Into<crate::registry::Dest>) -> Option<Pool<W>> {
        name.into().whereis().and_then(Self::from_pid)
    }
}

impl<M: ResourceWorker> ResourcePool<M> {
    /// A child spec that starts this pool linked to the supervisor
    /// ([`ResourcePool::start_link`] with a fresh `make_state()` and `opts`) at each
    /// (re)start: a permanent worker with NimblePool's 30 s shutdown. Name the pool with
    /// [`ResourcePoolOptions::name`] to find it again after a restart
    /// ([`ResourcePool::whereis`]).
    pub fn child_spec<F>(
        id: impl Into<String>,
        make_state: F,
        opts: ResourcePoolOptions,
    ) -> ChildSpec
    where
        F: Fn() -> M + Send + Sync + 'static,
    {
        let name = opts.name.clone();
        let spec = ChildSpec::worker(id, move || {
            ResourcePool::start_link(make_state(), opts.clone())
        })
        .shutdown(Shutdown::Timeout(RESOURCE_POOL_SHUTDOWN));
        ChildSpec { name, ..spec }
    }

    /// The pool whose manager runs as `pid`, if it is a running pool with callbacks `M`.
    pub fn from_pid(pid: Pid) -> Option<ResourcePool<M>> {
        let shared = crate::attachment::attached::<Arc<super::resource_state::Shared<M>>>(pid)?;
        Some(ResourcePool { shared })
    }

    /// The pool with callbacks `M` registered as `name` (its
    /// [`ResourcePoolOptions::name`]), if it runs: after a supervisor restarted it, the
    /// new instance.
    pub fn whereis(name: impl Into<crate::registry::Dest>) -> Option<ResourcePool<M>> {
        name.into().whereis().and_then(Self::from_pid)
    }
}

impl ChildSpec {
    /// A poolboy pool of `W` workers as a child: [`Pool::child_spec`].
    pub fn pool<W, F>(id: impl Into<String>, opts: PoolOptions, factory: F) -> ChildSpec
    where
        W: GenServer,
        F: Fn() -> W + Send + Sync + 'static,
    {
        Pool::child_spec(id, opts, factory)
    }

    /// A NimblePool-style resource pool as a child: [`ResourcePool::child_spec`].
    pub fn resource_pool<M, F>(
        id: impl Into<String>,
        make_state: F,
        opts: ResourcePoolOptions,
    ) -> ChildSpec
    where
        M: ResourceWorker,
        F: Fn() -> M + Send + Sync + 'static,
    {
        ResourcePool::child_spec(id, make_state, opts)
    }
}
