//! Supervisor: a process that starts children, watches them, and restarts them.
//!
//! The contract, as OTP's `supervisor` defines it:
//! - A supervisor is started with an ordered list of [`ChildSpec`]s and
//!   [`SupervisorOptions`] (strategy, restart intensity, name). It traps exits and starts
//!   its children one by one, in order; each start function runs inside the supervisor
//!   process and links the child to it. If a child fails to start, the children already
//!   started are stopped in reverse order and the supervisor's start fails with
//!   [`SupervisorError::StartFailed`]. A child whose start returns *ignore* is kept, not
//!   running (a temporary one is dropped).
//! - When a child exits, its [`Restart`] type decides whether it is restarted:
//!   `Permanent` always, `Transient` only after an abnormal exit (not `normal`,
//!   `shutdown` or `{shutdown, _}`), `Temporary` never (its spec is removed).
//! - The [`Strategy`] decides what else is restarted with it: `OneForOne` only the
//!   child, `OneForAll` every child (the others are stopped in reverse order, then all
//!   are started in order), `RestForOne` the child and the children started after it.
//!   Temporary children stopped by such a restart are removed, not restarted.
//! - Restart intensity: more than `max_restarts` restarts within `max_seconds` (3 in
//!   5 s by default) and the supervisor gives up: it stops all children in reverse order
//!   and exits with reason `shutdown`, so its own supervisor can act. A restart whose
//!   start fails counts as a restart and is tried again (as a message to itself, so
//!   requests are served in between) until it succeeds or the intensity is exceeded.
//! - Stopping a child ([`Shutdown`]): `BrutalKill` kills it at once; `Timeout(t)` sends
//!   a `shutdown` exit signal and kills it if it has not exited after `t` (5 s by default
//!   for workers); `Infinity` waits as long as it takes (the default for supervisors).
//! - When the supervisor stops — [`SupervisorRef::stop`], an exit signal from its parent,
//!   or intensity exceeded — it stops its children in reverse start order, one at a
//!   time, each as its `shutdown` says.
//! - Requests: [`which_children`](SupervisorRef::which_children),
//!   [`count_children`](SupervisorRef::count_children),
//!   [`terminate_child`](SupervisorRef::terminate_child),
//!   [`restart_child`](SupervisorRef::restart_child) (only a child that is not
//!   running), [`delete_child`](SupervisorRef::delete_child) (only a child that is not
//!   running), [`start_child`](SupervisorRef::start_child) (the id must be new; the child
//!   goes last in the start order). Requests wait as long as the supervisor needs
//!   (OTP's `infinity`), since stopping a child may take its whole shutdown time.
//!
//! - Names: a spec with [`ChildSpec::name`] registers each new instance of its child
//!   under the name; the name is freed when the child exits, before the supervisor
//!   hears of it, so the restarted child takes it and callers that look the name up
//!   reach the instance running now. Every behaviour has a child spec: GenServers
//!   ([`ChildSpec::gen_server`]), supervisors, [`DynamicSupervisor`](crate::DynamicSupervisor),
//!   [`TaskSupervisor`](crate::TaskSupervisor), pools, caches, GenStage stages and
//!   ConsumerSupervisors, ETS table owners (see each `supervised.rs`), and
//!   [`Application`](crate::Application) starts a whole tree from `main`.
//!
//! Deliberate differences from OTP: child specs carry a start closure instead of an
//! `{M, F, A}` tuple; errors are the typed [`SupervisorError`]; `which_children` lists
//! children in start order; the start function's child is linked to the supervisor even
//! if the function forgot to link it; a panic in a start function is a start failure.
//!
//! The code below follows a message through the supervisor: options and specs, start
//! and `init`, requests, a child's exit and its restart, and the final stop.

mod child_spec;
mod task_spec;

use std::time::Duration;

use tokio::sync::oneshot;

pub(crate) use child_spec::{shutdown_child, Intensity};
pub use child_spec::{
    ChildKind, ChildSpec, IntoStartResult, Restart, Shutdown, StartFn, StartResult,
    DEFAULT_WORKER_SHUTDOWN,
};

use crate::exit::ExitReason;
use crate::gen_server::{
    self, CallError, CallReply, GenServer, Init, Next, ReplyTo, ServerContext, ServerRef,
    StartError, StartOptions,
};
use crate::pid::Pid;
use crate::signal::Message;

/// What else is restarted when a child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Only the child that exited (the default).
    #[default]
    OneForOne,
    /// Every child: the others are stopped in reverse order, then all start in order.
    OneForAll,
    /// The child and every child started after it.
    RestForOne,
}

/// Options of [`Supervisor::start_link`].
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// The restart strategy (default `OneForOne`).
    pub strategy: Strategy,
    /// At most this many restarts within `max_seconds` (default 3).
    pub max_restarts: u32,
    /// The intensity window (default 5 s).
    pub max_seconds: Duration,
    /// Register the supervisor under this name.
    pub name: Option<String>,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            strategy: Strategy::OneForOne,
            max_restarts: 3,
            max_seconds: Duration::from_secs(5),
            name: None,
        }
    }
}

/// Default options with this strategy: `Supervisor::start(children, Strategy::OneForOne)`,
/// as Elixir's `Supervisor.start_link(children, strategy: :one_for_one)`.
impl From<Strategy> for SupervisorOptions {
    fn from(strategy: Strategy) -> Self {
        SupervisorOptions::strategy(strategy)
    }
}

impl SupervisorOptions {
    /// Default options with this strategy.
    pub fn strategy(strategy: Strategy) -> Self {
        SupervisorOptions {
            strategy,
            ..Default::default()
        }
    }
}

/// One child as [`SupervisorRef::which_children`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    /// The child's id (for a DynamicSupervisor child, the id its spec carried, which the
    /// supervisor does not use).
    pub id: String,
    /// Its pid while it runs; `None` when it is stopped, was ignored, or is waiting for
    /// a restart to be tried again.
    pub pid: Option<Pid>,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its restart type.
    pub restart: Restart,
}

/// Child counts, as [`SupervisorRef::count_children`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// All child specs, running or not.
    pub specs: usize,
    /// Children running now.
    pub active: usize,
    /// Specs of kind supervisor, running or not.
    pub supervisors: usize,
    /// Specs of kind worker, running or not.
    pub workers: usize,
}

/// Errors of supervisors and their requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// No child has this id.
    #[error("no child with id {0:?}")]
    NotFound(String),
    /// The child is running (or being restarted); terminate it first.
    #[error("child {0:?} is running; terminate it first")]
    Running(String),
    /// `start_child` with the id of a running child.
    #[error("child {id:?} is already started as {pid}")]
    AlreadyStarted {
        /// The id.
        id: String,
        /// The running child.
        pid: Pid,
    },
    /// `start_child` with the id of a stopped child; use `restart_child`, or
    /// `delete_child` first.
    #[error("a child with id {0:?} is already present; restart it or delete it first")]
    AlreadyPresent(String),
    /// Two children in the initial list share an id.
    #[error("two children have the id {0:?}; ids must be unique")]
    DuplicateId(String),
    /// A child's start function failed.
    #[error("child {id:?} failed to start: {reason}")]
    StartFailed {
        /// The child.
        id: String,
        /// Why.
        reason: ExitReason,
    },
    /// A DynamicSupervisor child's start returned *ignore*; nothing was added.
    #[error("the child's start returned ignore; nothing was started")]
    Ignored,
    /// The DynamicSupervisor already runs `max_children` children.
    #[error("max_children reached: the supervisor refuses more children")]
    MaxChildren,
    /// The pid is not a child of this DynamicSupervisor.
    #[error("{0} is not a child of this supervisor")]
    NotAChild(Pid),
    /// The supervisor process could not be started (e.g. its name is taken).
    #[error("the supervisor did not start: {0}")]
    Start(StartError),
    /// The supervisor did not answer (it is not alive, or exited during the request).
    #[error("supervisor request failed: {0}")]
    Call(#[from] CallError),
}

/// A supervisor (the type holding its start functions; see [`SupervisorRef`] for the
/// running supervisor).
pub struct Supervisor;

impl Supervisor {
    /// Starts a supervisor linked to the calling process (which must be a process) and
    /// waits until all `children` (a `Vec`, an array, any iterator of specs) have
    /// started, in order. `options` is a [`SupervisorOptions`] or just a [`Strategy`].
    pub async fn start_link(
        children: impl IntoIterator<Item = ChildSpec>,
        options: impl Into<SupervisorOptions>,
    ) -> Result<SupervisorRef, SupervisorError> {
        start(children.into_iter().collect(), options.into(), true).await
    }

    /// Starts a supervisor that is not linked to the caller (which need not be a
    /// process: `main` can start one), as [`Supervisor::start_link`] otherwise:
    /// `Supervisor::start(children, Strategy::OneForOne)`.
    pub async fn start(
        children: impl IntoIterator<Item = ChildSpec>,
        options: impl Into<SupervisorOptions>,
    ) -> Result<SupervisorRef, SupervisorError> {
        start(children.into_iter().collect(), options.into(), false).await
    }

    /// A child spec that starts this supervisor (with `children` and `options`) under
    /// another supervisor: kind supervisor, shutdown infinity, permanent.
    pub fn child_spec(
        id: impl Into<String>,
        children: impl IntoIterator<Item = ChildSpec>,
        options: impl Into<SupervisorOptions>,
    ) -> ChildSpec {
        let children: Vec<ChildSpec> = children.into_iter().collect();
        let options: SupervisorOptions = options.into();
        let name = options.name.clone();
        let spec = ChildSpec::supervisor(id, move || {
            Supervisor::start_link(children.clone(), options.clone())
        });
        ChildSpec { name, ..spec }
    }
}

impl IntoStartResult for Result<SupervisorRef, SupervisorError> {
    fn into_start_result(self) -> StartResult {
        match self {
            Ok(s) => Ok(Some(s.pid())),
            Err(SupervisorError::Start(StartError::Ignored)) => Ok(None),
            Err(e) => Err(ExitReason::shutdown_with(e.to_string())),
        }
    }
}

/// Waits for ever (OTP's `infinity`): supervisor requests may take a child's whole
/// shutdown time. tokio saturates the deadline, so this never overflows.
const FOREVER: Duration = Duration::MAX;

/// A running supervisor: the requests it serves.
#[derive(Clone, Debug)]
pub struct SupervisorRef {
    server: ServerRef<SupServer>,
}

impl SupervisorRef {
    /// The supervisor's pid.
    pub fn pid(&self) -> Pid {
        self.server.pid()
    }

    /// True while the supervisor runs.
    pub fn is_alive(&self) -> bool {
        self.server.is_alive()
    }

    /// The supervisor running as `pid`, if it is one.
    pub fn from_pid(pid: Pid) -> Option<SupervisorRef> {
        ServerRef::from_pid(pid).map(|server| SupervisorRef { server })
    }

    /// The supervisor registered as `name`, if any.
    pub fn whereis(name: &str) -> Option<SupervisorRef> {
        ServerRef::whereis(name).map(|server| SupervisorRef { server })
    }

    async fn call(&self, req: SupCall) -> Result<SupReply, SupervisorError> {
        Ok(self.server.call_timeout(req, FOREVER).await?)
    }

    /// Every child, in start order.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        match self.call(SupCall::WhichChildren).await? {
            SupReply::Children(c) => Ok(c),
            // The server answers each request with the variant of that request.
            _ => unreachable!("which_children answered with another reply"),
        }
    }

    /// Counts of specs, running children, supervisors and workers.
    pub async fn count_children(&self) -> Result<Counts, SupervisorError> {
        match self.call(SupCall::CountChildren).await? {
            SupReply::Counts(c) => Ok(c),
            // The server answers each request with the variant of that request.
            _ => unreachable!("count_children answered with another reply"),
        }
    }

    async fn done(&self, req: SupCall) -> Result<(), SupervisorError> {
        match self.call(req).await? {
            SupReply::Done(r) => r,
            // The server answers each request with the variant of that request.
            _ => unreachable!("request answered with another reply"),
        }
    }

    async fn started(&self, req: SupCall) -> Result<Option<Pid>, SupervisorError> {
        match self.call(req).await? {
            SupReply::Started(r) => r,
            // The server answers each request with the variant of that request.
            _ => unreachable!("request answered with another reply"),
        }
    }

    /// Stops the child `id` as its shutdown says and keeps its spec (a temporary child's
    /// spec is removed). Succeeds also when the child is not running.
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.done(SupCall::TerminateChild(id.to_string())).await
    }

    /// Starts again the child `id`, which must not be running. Returns its new pid, or
    /// `None` when its start returned *ignore*.
    pub async fn restart_child(&self, id: &str) -> Result<Option<Pid>, SupervisorError> {
        self.started(SupCall::RestartChild(id.to_string())).await
    }

    /// Removes the spec of the child `id`, which must not be running.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        self.done(SupCall::DeleteChild(id.to_string())).await
    }

    /// Adds a child and starts it (last in the start order, so first to stop). Returns
    /// its pid, or `None` when its start returned *ignore* (the spec is kept unless the
    /// child is temporary). Fails if the id is taken or the start fails (then nothing is
    /// added).
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Option<Pid>, SupervisorError> {
        self.started(SupCall::StartChild(spec)).await
    }

    /// Stops the supervisor with `reason` — its children first, in reverse start order —
    /// and waits up to `timeout` for it to exit.
    pub async fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), SupervisorError> {
        Ok(self.server.stop(reason, timeout).await?)
    }

    /// Waits until the supervisor exits and returns its reason.
    pub async fn wait_exit(&self) -> ExitReason {
        self.server.wait_exit().await
    }
}

// ---- Start and init ---------------------------------------------------------------

async fn start(
    children: Vec<ChildSpec>,
    options: SupervisorOptions,
    link: bool,
) -> Result<SupervisorRef, SupervisorError> {
    let (err_tx, mut err_rx) = oneshot::channel();
    let server = SupServer {
        strategy: options.strategy,
        intensity: Intensity::new(options.max_restarts, options.max_seconds),
        children: Vec::new(),
        initial: children,
        init_error: Some(err_tx),
    };
    let opts = StartOptions {
        name: options.name,
        link,
        timeout: None,
    };
    match gen_server::start_with(server, opts).await {
        Ok(server) => Ok(SupervisorRef { server }),
        Err(e) => Err(err_rx.try_recv().unwrap_or(SupervisorError::Start(e))),
    }
}

/// Where a child is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running(Pid),
    /// Its restart failed; a retry is queued.
    Restarting,
    /// Not running: ignored at start, terminated, or exited without restart.
    Stopped,
}

struct Child {
    spec: ChildSpec,
    state: State,
}

impl Child {
    fn pid(&self) -> Option<Pid> {
        match self.state {
            State::Running(p) => Some(p),
            _ => None,
        }
    }

    fn info(&self) -> ChildInfo {
        ChildInfo {
            id: self.spec.id.clone(),
            pid: self.pid(),
            kind: self.spec.kind,
            restart: self.spec.restart,
        }
    }
}

/// The supervisor's state; it runs as a GenServer.
struct SupServer {
    strategy: Strategy,
    intensity: Intensity,
    /// Children in start order.
    children: Vec<Child>,
    /// The specs to start in `init`.
    initial: Vec<ChildSpec>,
    /// Reports a failed `init` to `start` with its typed error.
    init_error: Option<oneshot::Sender<SupervisorError>>,
}

enum SupCall {
    WhichChildren,
    CountChildren,
    TerminateChild(String),
    RestartChild(String),
    DeleteChild(String),
    StartChild(ChildSpec),
}

enum SupReply {
    Children(Vec<ChildInfo>),
    Counts(Counts),
    Done(Result<(), SupervisorError>),
    Started(Result<Option<Pid>, SupervisorError>),
}

/// Messages the supervisor sends itself.
enum SupInfo {
    /// Try again the restart of the child with this id (its restart failed).
    TryAgain(String),
}

/// Marks a step that found the restart intensity exceeded: the supervisor must stop.
struct Exceeded;

impl GenServer for SupServer {
    type Call = SupCall;
    type Reply = SupReply;
    type Cast = ();
    type Info = SupInfo;
    type Continue = ();

    async fn init(&mut self, ctx: &mut ServerContext<Self>) -> Init<()> {
        ctx.trap_exit(true);
        let specs = std::mem::take(&mut self.initial);
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = specs.iter().find(|s| !seen.insert(s.id.as_str())) {
            return self.init_failed(SupervisorError::DuplicateId(dup.id.clone()));
        }
        for spec in specs {
            match spec.start_child().await {
                Ok(pid) => self.add(spec, pid),
                Err(reason) => {
                    self.stop_children().await;
                    let id = spec.id;
                    return self.init_failed(SupervisorError::StartFailed { id, reason });
                }
            }
        }
        Init::Ok
    }

    async fn handle_call(
        &mut self,
        req: SupCall,
        _from: &mut ReplyTo<SupReply>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<SupReply, ()> {
        let reply = match req {
            SupCall::WhichChildren => {
                SupReply::Children(self.children.iter().map(Child::info).collect())
            }
            SupCall::CountChildren => SupReply::Counts(self.counts()),
            SupCall::TerminateChild(id) => SupReply::Done(self.terminate_child(&id).await),
            SupCall::RestartChild(id) => SupReply::Started(self.restart_child(&id).await),
            SupCall::DeleteChild(id) => SupReply::Done(self.delete_child(&id)),
            SupCall::StartChild(spec) => SupReply::Started(self.start_new_child(spec).await),
        };
        CallReply::Reply(reply)
    }

    async fn handle_info(
        &mut self,
        msg: Message<SupInfo>,
        ctx: &mut ServerContext<Self>,
    ) -> Next<()> {
        let step = match msg {
            Message::Exit { from, reason } => self.child_exited(from, reason, ctx).await,
            Message::Msg(SupInfo::TryAgain(id)) => self.try_again(&id, ctx).await,
            Message::Down(_) => Ok(()),
        };
        match step {
            Ok(()) => Next::NoReply,
            Err(Exceeded) => Next::Stop(ExitReason::Shutdown),
        }
    }

    async fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut ServerContext<Self>) {
        self.stop_children().await;
    }
}

impl SupServer {
    fn init_failed(&mut self, err: SupervisorError) -> Init<()> {
        let reason = ExitReason::shutdown_with(err.to_string());
        if let Some(tx) = self.init_error.take() {
            let _ = tx.send(err);
        }
        Init::Stop(reason)
    }

    /// Appends a started child (an ignored temporary child is dropped).
    fn add(&mut self, spec: ChildSpec, pid: Option<Pid>) {
        let state = match pid {
            Some(p) => State::Running(p),
            None if spec.restart == Restart::Temporary => return,
            None => State::Stopped,
        };
        self.children.push(Child { spec, state });
    }

    fn find(&self, id: &str) -> Result<usize, SupervisorError> {
        self.children
            .iter()
            .position(|c| c.spec.id == id)
            .ok_or_else(|| SupervisorError::NotFound(id.to_string()))
    }

    fn counts(&self) -> Counts {
        let mut c = Counts {
            specs: self.children.len(),
            ..Counts::default()
        };
        for child in &self.children {
            if child.pid().is_some() {
                c.active += 1;
            }
            match child.spec.kind {
                ChildKind::Supervisor => c.supervisors += 1,
                ChildKind::Worker => c.workers += 1,
            }
        }
        c
    }

    // ---- Requests ---------------------------------------------------------------

    async fn terminate_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let i = self.find(id)?;
        self.stop_child(i).await;
        if self.children[i].spec.restart == Restart::Temporary {
            self.children.remove(i);
        }
        Ok(())
    }

    async fn restart_child(&mut self, id: &str) -> Result<Option<Pid>, SupervisorError> {
        let i = self.find(id)?;
        if self.children[i].pid().is_some() {
            return Err(SupervisorError::Running(id.to_string()));
        }
        match self.children[i].spec.start_child().await {
            Ok(pid) => {
                self.children[i].state = pid.map_or(State::Stopped, State::Running);
                Ok(pid)
            }
            Err(reason) => Err(SupervisorError::StartFailed {
                id: id.to_string(),
                reason,
            }),
        }
    }

    fn delete_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let i = self.find(id)?;
        if self.children[i].state != State::Stopped {
            return Err(SupervisorError::Running(id.to_string()));
        }
        self.children.remove(i);
        Ok(())
    }

    async fn start_new_child(&mut self, spec: ChildSpec) -> Result<Option<Pid>, SupervisorError> {
        if let Ok(i) = self.find(&spec.id) {
            let id = spec.id;
            return Err(match self.children[i].pid() {
                Some(pid) => SupervisorError::AlreadyStarted { id, pid },
                None => SupervisorError::AlreadyPresent(id),
            });
        }
        match spec.start_child().await {
            Ok(pid) => {
                self.add(spec, pid);
                Ok(pid)
            }
            Err(reason) => Err(SupervisorError::StartFailed {
                id: spec.id,
                reason,
            }),
        }
    }

    // ---- A child exited ---------------------------------------------------------

    async fn child_exited(
        &mut self,
        pid: Pid,
        reason: ExitReason,
        ctx: &mut ServerContext<Self>,
    ) -> Result<(), Exceeded> {
        let Some(i) = self.children.iter().position(|c| c.pid() == Some(pid)) else {
            // Not a current child: a stale exit of a child already stopped, or a
            // process that linked itself to us. Nothing to do, as in OTP.
            return Ok(());
        };
        let child = &mut self.children[i];
        child.state = State::Stopped;
        if !reason.is_clean() {
            tracing::warn!(id = %child.spec.id, %pid, %reason, "supervised child crashed");
        }
        if child.spec.restart == Restart::Temporary {
            self.children.remove(i);
            return Ok(());
        }
        if !child.spec.restart.restarts_after(&reason) {
            return Ok(());
        }
        let (sup, id) = (ctx.pid(), &child.spec.id);
        crate::telemetry::execute(
            &["orbit", "supervisor", "child_restart"],
            &[("count", 1.0)],
            &[("supervisor", &sup), ("child", id)],
        );
        self.restart(i, ctx).await
    }

    async fn try_again(&mut self, id: &str, ctx: &mut ServerContext<Self>) -> Result<(), Exceeded> {
        match self.find(id) {
            Ok(i) if self.children[i].state == State::Restarting => self.restart(i, ctx).await,
            // Restarted, terminated or deleted by a request in the meantime.
            _ => Ok(()),
        }
    }

    /// Restarts child `i` and, as the strategy says, its siblings; counts the restart.
    async fn restart(&mut self, i: usize, ctx: &mut ServerContext<Self>) -> Result<(), Exceeded> {
        if !self.intensity.add_restart() {
            tracing::error!(
                supervisor = %ctx.pid(),
                "restart intensity exceeded; stopping all children and shutting down"
            );
            return Err(Exceeded);
        }
        let first = match self.strategy {
            Strategy::OneForOne => {
                self.start_from(i, i + 1, ctx).await;
                return Ok(());
            }
            Strategy::OneForAll => 0,
            Strategy::RestForOne => i,
        };
        // Stop the group (the child at `i` has already exited) in reverse order.
        for j in (first..self.children.len()).rev() {
            self.stop_child(j).await;
        }
        // Temporary children stopped here are not restarted: drop them. The child at
        // `i` is never temporary (temporary children are not restarted), so the group
        // still begins at `first`.
        let mut j = first;
        while j < self.children.len() {
            if self.children[j].spec.restart == Restart::Temporary {
                self.children.remove(j);
            } else {
                j += 1;
            }
        }
        let end = self.children.len();
        self.start_from(first, end, ctx).await;
        Ok(())
    }

    /// Starts children `from..to` in order. On a failure the child is marked
    /// restarting, a retry is queued, and the later ones stay stopped until it.
    async fn start_from(&mut self, from: usize, to: usize, ctx: &mut ServerContext<Self>) {
        for j in from..to {
            let child = &mut self.children[j];
            match child.spec.start_child().await {
                Ok(pid) => child.state = pid.map_or(State::Stopped, State::Running),
                Err(reason) => {
                    tracing::warn!(id = %child.spec.id, %reason, "child failed to restart; will try again");
                    child.state = State::Restarting;
                    let _ = ctx
                        .server_ref()
                        .send(SupInfo::TryAgain(child.spec.id.clone()));
                    return;
                }
            }
        }
    }

    // ---- Stopping -----------------------------------------------------------------

    /// Stops child `i` if it runs, as its shutdown says; it stays in the list, stopped.
    async fn stop_child(&mut self, i: usize) {
        let child = &mut self.children[i];
        if let State::Running(pid) = child.state {
            shutdown_child(pid, child.spec.shutdown).await;
        }
        child.state = State::Stopped;
    }

    /// Stops every child, in reverse start order.
    async fn stop_children(&mut self) {
        for i in (0..self.children.len()).rev() {
            self.stop_child(i).await;
        }
    }
}
