//! DynamicSupervisor: a supervisor that starts with no children and adds them on demand.
//!
//! The contract, as Elixir's `DynamicSupervisor` defines it:
//! - It starts empty and traps exits. [`start_child`](DynamicSupervisorRef::start_child)
//!   runs a [`ChildSpec`]'s start function inside the supervisor (linking the child to
//!   it) and returns the child's pid. Children are known by pid; the spec's id is not
//!   used.
//! - `max_children` (default: no limit) caps the children; past it `start_child` fails
//!   with [`SupervisorError::MaxChildren`] and starts nothing.
//! - The strategy is always one_for_one: a child that exits is restarted alone, as its
//!   [`Restart`](crate::supervisor::Restart) type says (a temporary or non-restarted
//!   child is removed). Restarts count toward the restart intensity (`max_restarts`
//!   within `max_seconds`, 3 in 5 s by default); exceeding it stops every child and the
//!   supervisor exits with `shutdown`. A restart whose start fails counts as a restart
//!   and is tried again until it succeeds or the intensity is exceeded.
//! - [`terminate_child`](DynamicSupervisorRef::terminate_child) stops a child (as its
//!   shutdown says) and removes it.
//! - When the supervisor stops, all children get their shutdown signal at once and the
//!   supervisor waits for each of them (killing those whose shutdown timeout runs out),
//!   as Elixir's DynamicSupervisor does: there is no start order to reverse.
//!
//! Deliberate differences: a start returning *ignore* is the error
//! [`SupervisorError::Ignored`] (Elixir returns `:ignore`); errors are typed.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;

use crate::exit::ExitReason;
use crate::gen_server::{
    self, CallReply, GenServer, Init, Next, ReplyTo, ServerContext, ServerRef, StartError,
    StartOptions,
};
use crate::pid::Pid;
use crate::signal::Message;
use crate::supervisor::{
    shutdown_child, ChildInfo, ChildKind, ChildSpec, Counts, Intensity, IntoStartResult,
    StartResult, SupervisorError,
};

/// Options of [`DynamicSupervisor::start_link`].
#[derive(Debug, Clone)]
pub struct DynamicOptions {
    /// At most this many children (default: no limit).
    pub max_children: Option<usize>,
    /// At most this many restarts within `max_seconds` (default 3).
    pub max_restarts: u32,
    /// The intensity window (default 5 s).
    pub max_seconds: Duration,
    /// Register the supervisor under this name.
    pub name: Option<String>,
}

impl Default for DynamicOptions {
    fn default() -> Self {
        DynamicOptions {
            max_children: None,
            max_restarts: 3,
            max_seconds: Duration::from_secs(5),
            name: None,
        }
    }
}

/// A dynamic supervisor (the type holding its start functions; see
/// [`DynamicSupervisorRef`] for the running supervisor).
pub struct DynamicSupervisor;

impl DynamicSupervisor {
    /// Starts an empty dynamic supervisor linked to the calling process (which must be a
    /// process).
    pub async fn start_link(
        options: DynamicOptions,
    ) -> Result<DynamicSupervisorRef, SupervisorError> {
        start(options, true).await
    }

    /// Starts an empty dynamic supervisor that is not linked to the caller.
    pub async fn start(options: DynamicOptions) -> Result<DynamicSupervisorRef, SupervisorError> {
        start(options, false).await
    }

    /// A child spec that starts a dynamic supervisor under another supervisor: kind
    /// supervisor, shutdown infinity, permanent (Elixir's). Named by
    /// [`DynamicOptions::name`]; after a restart [`DynamicSupervisorRef::whereis`] finds
    /// the new, empty, supervisor (its children are not restarted with it, as in OTP).
    pub fn child_spec(id: impl Into<String>, options: DynamicOptions) -> ChildSpec {
        let name = options.name.clone();
        let spec = ChildSpec::supervisor(id, move || {
            let options = options.clone();
            async move {
                DynamicSupervisor::start_link(options)
                    .await
                    .map(|s| s.pid())
                    .map_err(|e| ExitReason::shutdown_with(e.to_string()))
            }
        });
        ChildSpec { name, ..spec }
    }
}

impl IntoStartResult for Result<DynamicSupervisorRef, SupervisorError> {
    fn into_start_result(self) -> StartResult {
        match self {
            Ok(s) => Ok(Some(s.pid())),
            Err(SupervisorError::Start(StartError::Ignored)) => Ok(None),
            Err(e) => Err(ExitReason::shutdown_with(e.to_string())),
        }
    }
}

async fn start(
    options: DynamicOptions,
    link: bool,
) -> Result<DynamicSupervisorRef, SupervisorError> {
    let server = DynServer {
        max_children: options.max_children,
        intensity: Intensity::new(options.max_restarts, options.max_seconds),
        children: HashMap::new(),
        by_pid: HashMap::new(),
        next_key: 0,
    };
    let opts = StartOptions {
        name: options.name,
        link,
        timeout: None,
    };
    gen_server::start_with(server, opts)
        .await
        .map(|server| DynamicSupervisorRef { server })
        .map_err(SupervisorError::Start)
}

/// Waits for ever (OTP's `infinity`); tokio saturates the deadline.
const FOREVER: Duration = Duration::MAX;

/// A running dynamic supervisor: the requests it serves.
#[derive(Clone, Debug)]
pub struct DynamicSupervisorRef {
    server: ServerRef<DynServer>,
}

impl DynamicSupervisorRef {
    /// The supervisor's pid.
    pub fn pid(&self) -> Pid {
        self.server.pid()
    }

    /// True while the supervisor runs.
    pub fn is_alive(&self) -> bool {
        self.server.is_alive()
    }

    /// The dynamic supervisor running as `pid`, if it is one.
    pub fn from_pid(pid: Pid) -> Option<DynamicSupervisorRef> {
        ServerRef::from_pid(pid).map(|server| DynamicSupervisorRef { server })
    }

    /// The dynamic supervisor registered as `name`, if any.
    pub fn whereis(name: &str) -> Option<DynamicSupervisorRef> {
        ServerRef::whereis(name).map(|server| DynamicSupervisorRef { server })
    }

    async fn call(&self, req: DynCall) -> Result<DynReply, SupervisorError> {
        Ok(self.server.call_timeout(req, FOREVER).await?)
    }

    /// Starts a child under the supervisor and returns its pid. Fails with
    /// `MaxChildren` when full, `StartFailed` when its start fails, `Ignored` when its
    /// start returned *ignore*; in each case nothing is added.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Pid, SupervisorError> {
        match self.call(DynCall::StartChild(spec)).await? {
            DynReply::Started(r) => r,
            // The server answers each request with the variant of that request.
            _ => unreachable!("start_child answered with another reply"),
        }
    }

    /// Stops the child `pid` as its shutdown says and removes it.
    pub async fn terminate_child(&self, pid: Pid) -> Result<(), SupervisorError> {
        match self.call(DynCall::TerminateChild(pid)).await? {
            DynReply::Done(r) => r,
            // The server answers each request with the variant of that request.
            _ => unreachable!("terminate_child answered with another reply"),
        }
    }

    /// Every child, in the order they were added.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        match self.call(DynCall::WhichChildren).await? {
            DynReply::Children(c) => Ok(c),
            // The server answers each request with the variant of that request.
            _ => unreachable!("which_children answered with another reply"),
        }
    }

    /// Counts of children, running children, supervisors and workers.
    pub async fn count_children(&self) -> Result<Counts, SupervisorError> {
        match self.call(DynCall::CountChildren).await? {
            DynReply::Counts(c) => Ok(c),
            // The server answers each request with the variant of that request.
            _ => unreachable!("count_children answered with another reply"),
        }
    }

    /// Stops the supervisor with `reason` (its children first) and waits up to
    /// `timeout` for it to exit.
    pub async fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), SupervisorError> {
        Ok(self.server.stop(reason, timeout).await?)
    }

    /// Waits until the supervisor exits and returns its reason.
    pub async fn wait_exit(&self) -> ExitReason {
        self.server.wait_exit().await
    }
}

// ---- The server -------------------------------------------------------------------

struct DynChild {
    spec: ChildSpec,
    /// `None` while a failed restart waits to be tried again.
    pid: Option<Pid>,
}

struct DynServer {
    max_children: Option<usize>,
    intensity: Intensity,
    /// Children by key; keys grow with each added child, so they give the add order.
    children: HashMap<u64, DynChild>,
    by_pid: HashMap<Pid, u64>,
    next_key: u64,
}

enum DynCall {
    StartChild(ChildSpec),
    TerminateChild(Pid),
    WhichChildren,
    CountChildren,
}

enum DynReply {
    Started(Result<Pid, SupervisorError>),
    Done(Result<(), SupervisorError>),
    Children(Vec<ChildInfo>),
    Counts(Counts),
}

/// Messages the supervisor sends itself.
enum DynInfo {
    /// Try again the restart of the child with this key.
    TryAgain(u64),
}

/// The restart intensity was exceeded: the supervisor must stop.
struct Exceeded;

impl GenServer for DynServer {
    type Call = DynCall;
    type Reply = DynReply;
    type Cast = ();
    type Info = DynInfo;
    type Continue = ();

    async fn init(&mut self, ctx: &mut ServerContext<Self>) -> Init<()> {
        ctx.trap_exit(true);
        Init::Ok
    }

    async fn handle_call(
        &mut self,
        req: DynCall,
        _from: &mut ReplyTo<DynReply>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<DynReply, ()> {
        CallReply::Reply(match req {
            DynCall::StartChild(spec) => DynReply::Started(self.start_child(spec).await),
            DynCall::TerminateChild(pid) => DynReply::Done(self.terminate_child(pid).await),
            DynCall::WhichChildren => DynReply::Children(self.which_children()),
            DynCall::CountChildren => DynReply::Counts(self.counts()),
        })
    }

    async fn handle_info(
        &mut self,
        msg: Message<DynInfo>,
        ctx: &mut ServerContext<Self>,
    ) -> Next<()> {
        let step = match msg {
            Message::Exit { from, reason } => self.child_exited(from, reason, ctx).await,
            Message::Msg(DynInfo::TryAgain(key)) => self.restart(key, ctx).await,
            Message::Down(_) => Ok(()),
        };
        match step {
            Ok(()) => Next::NoReply,
            Err(Exceeded) => Next::Stop(ExitReason::Shutdown),
        }
    }

    async fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut ServerContext<Self>) {
        // All at once: each child gets its shutdown signal now and its own timeout.
        let stops = self
            .children
            .drain()
            .filter_map(|(_, c)| c.pid.map(|pid| shutdown_child(pid, c.spec.shutdown)));
        join_all(stops).await;
        self.by_pid.clear();
    }
}

impl DynServer {
    async fn start_child(&mut self, spec: ChildSpec) -> Result<Pid, SupervisorError> {
        if let Some(max) = self.max_children {
            if self.children.len() >= max {
                return Err(SupervisorError::MaxChildren);
            }
        }
        match spec.start_child().await {
            Ok(Some(pid)) => {
                let key = self.next_key;
                self.next_key += 1;
                self.children.insert(
                    key,
                    DynChild {
                        spec,
                        pid: Some(pid),
                    },
                );
                self.by_pid.insert(pid, key);
                Ok(pid)
            }
            Ok(None) => Err(SupervisorError::Ignored),
            Err(reason) => Err(SupervisorError::StartFailed {
                id: spec.id,
                reason,
            }),
        }
    }

    async fn terminate_child(&mut self, pid: Pid) -> Result<(), SupervisorError> {
        let Some(key) = self.by_pid.remove(&pid) else {
            return Err(SupervisorError::NotAChild(pid));
        };
        if let Some(child) = self.children.remove(&key) {
            shutdown_child(pid, child.spec.shutdown).await;
        }
        Ok(())
    }

    fn sorted(&self) -> Vec<(&u64, &DynChild)> {
        let mut all: Vec<_> = self.children.iter().collect();
        all.sort_by_key(|(k, _)| **k);
        all
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        self.sorted()
            .into_iter()
            .map(|(_, c)| ChildInfo {
                id: c.spec.id.clone(),
                pid: c.pid,
                kind: c.spec.kind,
                restart: c.spec.restart,
            })
            .collect()
    }

    fn counts(&self) -> Counts {
        let mut counts = Counts {
            specs: self.children.len(),
            ..Counts::default()
        };
        for c in self.children.values() {
            if c.pid.is_some() {
                counts.active += 1;
            }
            match c.spec.kind {
                ChildKind::Supervisor => counts.supervisors += 1,
                ChildKind::Worker => counts.workers += 1,
            }
        }
        counts
    }

    async fn child_exited(
        &mut self,
        pid: Pid,
        reason: ExitReason,
        ctx: &mut ServerContext<Self>,
    ) -> Result<(), Exceeded> {
        let Some(key) = self.by_pid.remove(&pid) else {
            // A stale exit of a child already terminated, or an unrelated link.
            return Ok(());
        };
        let Some(child) = self.children.get_mut(&key) else {
            return Ok(());
        };
        child.pid = None;
        if !reason.is_clean() {
            tracing::warn!(%pid, %reason, "dynamically supervised child crashed");
        }
        if child.spec.restart.restarts_after(&reason) {
            self.restart(key, ctx).await
        } else {
            self.children.remove(&key);
            Ok(())
        }
    }

    /// Restarts the child `key` (if it still waits for it), counting the restart.
    async fn restart(&mut self, key: u64, ctx: &mut ServerContext<Self>) -> Result<(), Exceeded> {
        let Some(child) = self.children.get_mut(&key) else {
            return Ok(()); // terminated in the meantime
        };
        if child.pid.is_some() {
            return Ok(());
        }
        if !self.intensity.add_restart() {
            tracing::error!(
                supervisor = %ctx.pid(),
                "restart intensity exceeded; stopping all children and shutting down"
            );
            return Err(Exceeded);
        }
        match child.spec.start_child().await {
            Ok(Some(pid)) => {
                child.pid = Some(pid);
                self.by_pid.insert(pid, key);
            }
            Ok(None) => {
                // Ignored on restart: nothing runs, nothing to supervise.
                self.children.remove(&key);
            }
            Err(reason) => {
                tracing::warn!(%reason, "child failed to restart; will try again");
                let _ = ctx.server_ref().send(DynInfo::TryAgain(key));
            }
        }
        Ok(())
    }
}
