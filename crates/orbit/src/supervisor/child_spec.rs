//! Child specifications and the parts of supervision shared by [`Supervisor`] and
//! [`DynamicSupervisor`]: starting a child, shutting it down, and counting restarts.
//!
//! [`Supervisor`]: crate::supervisor::Supervisor
//! [`DynamicSupervisor`]: crate::dynamic_supervisor::DynamicSupervisor

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::error::Error;
use crate::exit::ExitReason;
use crate::gen_server::{self, GenServer, ServerRef, StartError};
use crate::pid::Pid;
use crate::process::Handle;
use crate::table;

/// When a child is restarted after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Restart {
    /// Always restarted (the default).
    #[default]
    Permanent,
    /// Restarted only when it exits abnormally: not `normal`, `shutdown` or
    /// `{shutdown, _}`.
    Transient,
    /// Never restarted; its specification is removed when it exits.
    Temporary,
}

impl Restart {
    /// True when a child of this restart type that exited with `reason` is restarted.
    pub fn restarts_after(self, reason: &ExitReason) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => !reason.is_clean(),
            Restart::Temporary => false,
        }
    }
}

/// How a child is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Killed at once with the untrappable `kill` signal.
    BrutalKill,
    /// Sent a `shutdown` exit signal, then killed if it has not exited after this long.
    Timeout(Duration),
    /// Sent a `shutdown` exit signal and waited for as long as it takes (the default for
    /// supervisors, which need the time to stop their own children).
    Infinity,
}

/// The default shutdown timeout of a worker, as in OTP: 5 s.
pub const DEFAULT_WORKER_SHUTDOWN: Shutdown = Shutdown::Timeout(Duration::from_secs(5));

/// Whether a child is a worker or a supervisor (shown by `which_children` and
/// `count_children`, and choosing the default shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// An ordinary process.
    Worker,
    /// A supervisor.
    Supervisor,
}

/// What a child's start function produced: the child's pid, `None` when the child
/// asked to be ignored (a GenServer whose `init` returned `Ignore`), or why it failed.
pub type StartResult = Result<Option<Pid>, ExitReason>;

/// The start function of a child: called inside the supervisor process each time the
/// child is (re)started; it must start the child linked to the caller (`start_link`,
/// `spawn_link`).
pub type StartFn = Arc<dyn Fn() -> BoxFuture<'static, StartResult> + Send + Sync>;

/// The results a start function may return: `Result`s of the usual start functions
/// (`gen_server::start_link`, `spawn_link`, `Supervisor::start_link`, ...) or of a pid.
pub trait IntoStartResult {
    /// Converts into a [`StartResult`].
    fn into_start_result(self) -> StartResult;
}

fn from_start_error(e: StartError) -> StartResult {
    match e {
        StartError::Ignored => Ok(None),
        StartError::Init(r) => Err(r),
        other => Err(ExitReason::error(other.to_string())),
    }
}

impl IntoStartResult for StartResult {
    fn into_start_result(self) -> StartResult {
        self
    }
}

impl IntoStartResult for Result<Pid, ExitReason> {
    fn into_start_result(self) -> StartResult {
        self.map(Some)
    }
}

impl IntoStartResult for Result<Pid, StartError> {
    fn into_start_result(self) -> StartResult {
        self.map(Some).or_else(from_start_error)
    }
}

impl IntoStartResult for Result<Pid, Error> {
    fn into_start_result(self) -> StartResult {
        self.map(Some).map_err(|e| ExitReason::error(e.to_string()))
    }
}

impl<G: GenServer> IntoStartResult for Result<ServerRef<G>, StartError> {
    fn into_start_result(self) -> StartResult {
        self.map(|s| Some(s.pid())).or_else(from_start_error)
    }
}

impl<M: Send + 'static> IntoStartResult for Result<Handle<M>, Error> {
    fn into_start_result(self) -> StartResult {
        self.map(|h| Some(h.pid()))
            .map_err(|e| ExitReason::error(e.to_string()))
    }
}

/// How to start, restart and stop one child (Elixir's child specification map).
///
/// ```
/// use orbit::supervisor::{ChildSpec, Restart, Shutdown};
/// # use std::time::Duration;
/// # #[derive(Default)] struct Cache;
/// # impl orbit::GenServer for Cache {
/// #     type Call = (); type Reply = (); type Cast = (); type Info = (); type Continue = ();
/// # }
/// let a = ChildSpec::gen_server("cache", Cache::default);
/// let b = ChildSpec::worker("ticker", || async {
///     orbit::spawn_link(|mut ctx: orbit::Context<()>| async move {
///         while let orbit::Message::Msg(()) = ctx.recv().await {}
///     })
/// })
/// .restart(Restart::Transient)
/// .shutdown(Shutdown::Timeout(Duration::from_millis(500)));
/// # let _ = (a, b);
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    /// The child's id, unique within a [`Supervisor`](crate::supervisor::Supervisor)
    /// (ignored by a [`DynamicSupervisor`](crate::dynamic_supervisor::DynamicSupervisor)).
    pub id: String,
    /// Starts the child linked to the supervisor (see [`StartFn`]).
    pub start: StartFn,
    /// When the child is restarted.
    pub restart: Restart,
    /// How the child is stopped.
    pub shutdown: Shutdown,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// The registered name the child gets at each (re)start, if any (see
    /// [`ChildSpec::name`]).
    pub name: Option<String>,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn boxed_start<F, Fut>(start: F) -> StartFn
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoStartResult,
{
    Arc::new(move || {
        let fut = start();
        async move { fut.await.into_start_result() }.boxed()
    })
}

impl ChildSpec {
    /// A permanent worker with a 5 s shutdown, started by `start`.
    ///
    /// `start` runs inside the supervisor process and must link the child to it, e.g.
    /// `|| async { orbit::gen_server::start_link(MyServer).await }`.
    pub fn worker<F, Fut>(id: impl Into<String>, start: F) -> ChildSpec
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoStartResult,
    {
        ChildSpec {
            id: id.into(),
            start: boxed_start(start),
            restart: Restart::Permanent,
            shutdown: DEFAULT_WORKER_SHUTDOWN,
            kind: ChildKind::Worker,
            name: None,
        }
    }

    /// A permanent supervisor child with an infinite shutdown, started by `start` (e.g.
    /// `Supervisor::start_link`); see also
    /// [`Supervisor::child_spec`](crate::supervisor::Supervisor::child_spec).
    pub fn supervisor<F, Fut>(id: impl Into<String>, start: F) -> ChildSpec
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoStartResult,
    {
        ChildSpec {
            kind: ChildKind::Supervisor,
            shutdown: Shutdown::Infinity,
            ..ChildSpec::worker(id, start)
        }
    }

    /// A permanent GenServer worker (5 s shutdown, as OTP's default for workers) whose
    /// state `make_state` builds afresh at each (re)start. Give it a registered name with
    /// [`ChildSpec::name`]: `ChildSpec::gen_server("cache", Cache::default).name("cache")`.
    pub fn gen_server<G, F>(id: impl Into<String>, make_state: F) -> ChildSpec
    where
        G: GenServer,
        F: Fn() -> G + Send + Sync + 'static,
    {
        ChildSpec::worker(id, move || gen_server::start_link(make_state()))
    }

    /// A permanent GenServer worker (5 s shutdown) registered as `name` before its
    /// `init` runs, as OTP's `{local, Name}` (so `init` may already be reached by name),
    /// at each (re)start; see [`ChildSpec::name`] for what happens to the name across
    /// restarts.
    pub fn gen_server_named<G, F>(
        id: impl Into<String>,
        name: impl Into<String>,
        make_state: F,
    ) -> ChildSpec
    where
        G: GenServer,
        F: Fn() -> G + Send + Sync + 'static,
    {
        let name = name.into();
        let n = name.clone();
        let spec = ChildSpec::worker(id, move || {
            let opts = gen_server::StartOptions {
                name: Some(n.clone()),
                link: true,
                ..Default::default()
            };
            gen_server::start_with(make_state(), opts)
        });
        ChildSpec {
            name: Some(name),
            ..spec
        }
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> ChildSpec {
        self.restart = restart;
        self
    }

    /// Sets the shutdown.
    pub fn shutdown(mut self, shutdown: Shutdown) -> ChildSpec {
        self.shutdown = shutdown;
        self
    }

    /// Sets the id.
    pub fn id(mut self, id: impl Into<String>) -> ChildSpec {
        self.id = id.into();
        self
    }

    /// Registers the child as `name` each time it (re)starts, so callers reach whichever
    /// instance runs now by name (Elixir's `name:` option). The name is registered as
    /// soon as the start function returns, before the supervisor starts the next child
    /// or answers `start_child`; a child that registers itself under the same name (a
    /// behaviour's own `name` option) is left as it is. When the child exits its name is
    /// freed before the supervisor hears of the exit, so the restarted child can take
    /// it. If the name is held by another process the start fails (the child is stopped)
    /// with an error naming both.
    ///
    /// Unlike OTP, the name is registered after the child's `init` ran, so the child
    /// cannot reach itself by name from its own `init`; behaviours with a name option
    /// register before `init` ([`ChildSpec::gen_server_named`], stages, pools,
    /// supervisors).
    pub fn name(mut self, name: impl Into<String>) -> ChildSpec {
        self.name = Some(name.into());
        self
    }

    /// Runs the start function in the calling (supervisor) process. A panic in the start
    /// function is a start failure, never a crash of the supervisor. The child is linked
    /// to the caller even if the start function forgot to.
    pub(crate) async fn start_child(&self) -> StartResult {
        let start = self.start.clone();
        let out = AssertUnwindSafe(async move { start().await })
            .catch_unwind()
            .await
            .map_err(ExitReason::from_panic)??;
        if let Some(pid) = out {
            // Idempotent when the child is already linked; if it already died the
            // supervisor receives its exit (`noproc`) like any other.
            let _ = crate::signal::link(pid);
            if let Some(name) = &self.name {
                self.register(name, pid).await?;
            }
        }
        Ok(out)
    }

    /// Registers a just started child as `name` (kept if it registered itself so);
    /// stops it when the name cannot be had.
    async fn register(&self, name: &str, pid: Pid) -> Result<(), ExitReason> {
        if crate::registry::whereis(name) == Some(pid) {
            return Ok(());
        }
        match crate::registry::register(name, pid) {
            Ok(()) => Ok(()),
            Err(e) => {
                shutdown_child(pid, self.shutdown).await;
                Err(ExitReason::error(format!(
                    "child {:?} started as {pid} but cannot be registered as {name:?}: {e}; \
                     pick another name or stop the process holding it",
                    self.id
                )))
            }
        }
    }
}

/// Stops a running child as its `shutdown` says and waits until it has exited.
///
/// The child is unlinked first (as OTP does) so its exit does not come back as an `EXIT`
/// message; a stale `EXIT` already queued is ignored by the supervisor because the pid
/// no longer belongs to a child.
pub(crate) async fn shutdown_child(pid: Pid, shutdown: Shutdown) {
    let _ = crate::signal::unlink(pid);
    let Some(proc) = table::lookup(pid) else {
        return; // already gone
    };
    let core_wait = async { crate::process::wait_exit(proc.core()).await };
    match shutdown {
        Shutdown::BrutalKill => {
            crate::signal::exit(pid, ExitReason::Kill);
            core_wait.await;
        }
        Shutdown::Infinity => {
            crate::signal::exit(pid, ExitReason::Shutdown);
            core_wait.await;
        }
        Shutdown::Timeout(t) => {
            crate::signal::exit(pid, ExitReason::Shutdown);
            let mut wait = core_wait.boxed();
            if tokio::time::timeout(t, &mut wait).await.is_err() {
                tracing::debug!(%pid, timeout = ?t, "child ignored shutdown; killing it");
                crate::signal::exit(pid, ExitReason::Kill);
                wait.await;
            }
        }
    }
}

/// Restart intensity: more than `max_restarts` restarts within `max_seconds` means the
/// supervisor gives up.
#[derive(Debug)]
pub(crate) struct Intensity {
    max_restarts: u32,
    period: Duration,
    restarts: VecDeque<Instant>,
}

impl Intensity {
    pub(crate) fn new(max_restarts: u32, period: Duration) -> Intensity {
        Intensity {
            max_restarts,
            period,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart; false when the intensity is exceeded.
    pub(crate) fn add_restart(&mut self) -> bool {
        let now = Instant::now();
        self.restarts.push_back(now);
        while let Some(first) = self.restarts.front() {
            if now.duration_since(*first) > self.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.len() <= self.max_restarts as usize
    }
}
