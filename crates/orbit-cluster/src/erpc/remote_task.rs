//! Tasks across nodes, Elixir's `Task.Supervisor` protocol both ways.
//!
//! Elixir starts a task on another node with a `GenServer.call` to the supervisor
//! (observed from Elixir 1.14; `Task.Supervisor.async/4`, `async_nolink/4`):
//!
//! ```text
//! {'$gen_call', From, {start_task, [{OwnerNode, Owner, Owner}, monitor], temporary, Shutdown}}
//!   -> {ok, TaskPid}
//! (async only: the owner links to TaskPid); the owner monitors TaskPid, then sends
//! TaskPid ! {Owner, Ref, ReplyTo, Callers, {M, F, Args}}
//! the task runs M:F(Args), sends ReplyTo ! {Ref, Result} and exits normal; a failure
//! exits it with {Reason, Stack} / {{nocatch, T}, Stack} / the exit reason.
//! ```
//!
//! - **Into Orbit** ([`serve_task_supervisor`]): a service registered under the
//!   supervisor's name (`"Elixir.MySup"` for Elixir's `MySup`) answers `start_task` with a
//!   new process that waits (5 s, as Elixir's task does) for the MFA message, runs the
//!   function registered with [`crate::erpc::register`] (an unregistered one crashes the
//!   task with `undef`, as on the BEAM) and replies `{Ref, Result}` to the owner, so
//!   `Task.Supervisor.async({MySup, orbit}, M, F, A) |> Task.await()` and `async_nolink`
//!   work from Elixir. A supervisor name nobody serves is answered `noproc` by the wire
//!   (the caller exits `{noproc, {GenServer, call, ...}}` at once). The reply goes to the
//!   owner pid (Elixir's task replies to the monitor alias; the message is the same).
//! - **Out of Orbit** ([`async_nolink`]): the same protocol to a `Task.Supervisor` on
//!   another node (Elixir's, or an Orbit node's stand-in), MFA form; a small owner process
//!   on this node holds the monitor and receives the reply. [`RemoteTask::await_result`],
//!   [`RemoteTask::yield_result`], [`RemoteTask::shutdown`] follow `Task.await`/`yield`/
//!   `shutdown`: the task's crash is [`ErpcError::Exit`] with its reason, a lost node
//!   [`ErpcError::NoConnection`], no reply in time [`ErpcError::Timeout`] (`await`) or
//!   `None` (`yield`, the task keeps running).

use std::sync::Arc;
use std::time::Duration;

use orbit::{Context, ExitReason, Message, Pid};
use orbit_dist::service::{Inbound, Service, ServiceError, ServiceRequest};
use orbit_term::Term;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::registry::IntoArgs;
use super::ErpcError;

/// How long a started task waits for its MFA message (Elixir's `@ref_timeout`).
const MFA_WAIT: Duration = Duration::from_secs(5);

/// Serves a `Task.Supervisor` named `name` (as on the wire: `"Elixir.MySup"`) for other
/// nodes: their `Task.Supervisor.async`/`async_nolink`/`start_child` in MFA form run
/// registered Rust functions. Replaces any service of that name.
pub fn serve_task_supervisor(name: &str) -> Result<(), ServiceError> {
    orbit_dist::service::register(name, Arc::new(TaskSupervisor))?;
    Ok(())
}

struct TaskSupervisor;

impl Service for TaskSupervisor {
    fn message(&self, msg: Inbound<'_>) {
        let Some(ServiceRequest::Call(call)) = msg.request() else {
            tracing::debug!(peer = %msg.peer, name = msg.name, "task supervisor message ignored");
            return;
        };
        let reply = match call.request() {
            Term::Tuple(el) if el.len() == 4 && el[0].as_atom() == Some("start_task") => {
                match owner_of(&el[1]) {
                    Some(owner) => match start_task(owner) {
                        Some(pid) => Term::Tuple(vec![
                            Term::atom("ok"),
                            Term::Pid(Box::new(orbit_dist::to_wire(pid))),
                        ]),
                        None => error("system_limit"),
                    },
                    None => error("badarg"),
                }
            }
            Term::Atom(a) if a.as_str() == "which_children" => Term::nil(),
            _ => error("notsup"),
        };
        call.reply(&reply);
    }
}

fn error(why: &str) -> Term {
    Term::Tuple(vec![Term::atom("error"), Term::atom(why)])
}

/// The owner pid of `[{OwnerNode, OwnerName, OwnerPid}, Monitor]`.
fn owner_of(args: &Term) -> Option<Pid> {
    let Term::List(a) = args else { return None };
    match a.first()? {
        Term::Tuple(o) if o.len() == 3 => match &o[2] {
            Term::Pid(p) => Some(orbit_dist::from_wire(p)),
            _ => None,
        },
        _ => None,
    }
}

/// A task process for `owner`: waits for its MFA message, runs it, replies.
fn start_task(owner: Pid) -> Option<Pid> {
    let h = orbit::Spawn::new()
        .label("remote task")
        .spawn(move |mut ctx: Context<Term>| async move {
            let deadline = tokio::time::Instant::now() + MFA_WAIT;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let Some(m) = ctx.recv_timeout(left).await else {
                    return ExitReason::from_term(Term::atom("timeout"));
                };
                let Message::Msg(Term::Tuple(el)) = m else {
                    continue;
                };
                let [Term::Pid(from), r, reply_to, _callers, Term::Tuple(mfa)] = &el[..] else {
                    continue;
                };
                if orbit_dist::from_wire(from) != owner || mfa.len() != 3 {
                    continue;
                }
                let Term::List(args) = &mfa[2] else {
                    return ExitReason::from_term(Term::atom("badarg"));
                };
                let out = super::into::run_as_process(&mfa[0], &mfa[1], args.clone()).await;
                return match out {
                    Ok(v) => {
                        let to = match reply_to {
                            Term::Pid(p) => orbit_dist::from_wire(p),
                            // An alias: the owner's mailbox gets the same message.
                            _ => owner,
                        };
                        let _ = orbit::send(to, Term::Tuple(vec![r.clone(), v]));
                        ExitReason::Normal
                    }
                    Err(reason) => reason,
                };
            }
        })
        .ok()?;
    Some(h.pid())
}

// ---- out of Orbit --------------------------------------------------------------------

/// What the owner process reports.
enum Event {
    Reply(Term),
    Down(ExitReason),
}

/// A task started on another node with [`async_nolink`].
pub struct RemoteTask {
    node: String,
    task: Option<Pid>,
    events: mpsc::UnboundedReceiver<Event>,
    shutdown: Option<oneshot::Sender<()>>,
    done: bool,
}

impl std::fmt::Debug for RemoteTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTask")
            .field("node", &self.node)
            .field("task", &self.task)
            .finish()
    }
}

/// `Task.Supervisor.async_nolink({supervisor, node}, module, function, args)`: starts
/// `module:function(args)` under the `Task.Supervisor` registered as `supervisor` on
/// `node` (`"Elixir.MySup"`), not linked to anything here. The start waits at most
/// `timeout` (Elixir waits forever); its failure is [`ErpcError::NoConnection`] or
/// [`ErpcError::Exit`] with the call's exit reason (`noproc` when no such supervisor).
pub async fn async_nolink(
    node: &str,
    supervisor: &str,
    module: &str,
    function: &str,
    args: impl IntoArgs,
    timeout: Duration,
) -> Result<RemoteTask, ErpcError> {
    let args = args.into_args()?;
    let atom = |what: &str, s: &str| {
        Term::try_atom(s).map_err(|_| ErpcError::BadArg(format!("{what} {s:?} is not an atom")))
    };
    let (m, f) = (atom("module", module)?, atom("function", function)?);
    atom("supervisor", supervisor)?;
    let this = orbit_dist::Node::current().ok_or_else(|| ErpcError::NoConnection {
        node: node.to_string(),
    })?;
    let (tx, events) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let (started_tx, started_rx) = oneshot::channel();
    let (node_s, sup) = (node.to_string(), supervisor.to_string());
    let spawned = orbit::Spawn::new().label("remote task owner").spawn(
        move |mut ctx: Context<Term>| async move {
            let me = ctx.pid();
            let wire_me = Term::Pid(Box::new(orbit_dist::to_wire(me)));
            let req = Term::Tuple(vec![
                Term::atom("start_task"),
                Term::List(vec![
                    Term::Tuple(vec![
                        Term::atom(&this.name()),
                        wire_me.clone(),
                        wire_me.clone(),
                    ]),
                    Term::atom("monitor"),
                ]),
                Term::atom("temporary"),
                Term::atom("nil"),
            ]);
            let started: Result<Term, orbit::CallError> =
                orbit_dist::call((sup.as_str(), node_s.as_str()), &req, timeout).await;
            let task = match started {
                Ok(Term::Tuple(el)) if el.len() == 2 && el[0].as_atom() == Some("ok") => {
                    match &el[1] {
                        Term::Pid(p) => orbit_dist::from_wire(p),
                        other => {
                            let _ = started_tx.send(Err(ErpcError::Exit(other.clone())));
                            return;
                        }
                    }
                }
                Ok(other) => {
                    let _ = started_tx.send(Err(ErpcError::Exit(other)));
                    return;
                }
                Err(e) => {
                    let _ = started_tx.send(Err(call_error(&node_s, e)));
                    return;
                }
            };
            let Ok(mref) = orbit::monitor(task) else {
                let _ = started_tx.send(Err(ErpcError::NoConnection { node: node_s }));
                return;
            };
            let Some(tref) = orbit_dist::spawn::new_ref() else {
                return;
            };
            let tref = Term::Reference(Box::new(tref));
            let msg = Term::Tuple(vec![
                wire_me.clone(),
                tref.clone(),
                wire_me.clone(),
                Term::List(vec![wire_me]),
                Term::Tuple(vec![m, f, Term::List(args)]),
            ]);
            if orbit::send(task, msg).is_err() {
                let _ = started_tx.send(Err(ErpcError::NoConnection { node: node_s }));
                return;
            }
            let _ = started_tx.send(Ok(task));
            let mut stop_rx = stop_rx;
            let mut stopping = false;
            loop {
                let m = tokio::select! {
                    m = ctx.recv() => m,
                    _ = &mut stop_rx, if !stopping => {
                        stopping = true;
                        orbit::exit(task, ExitReason::Shutdown);
                        continue;
                    }
                };
                match m {
                    Message::Msg(Term::Tuple(mut el))
                        if el.len() == 2 && el[0] == tref && !stopping =>
                    {
                        let _ = orbit::demonitor(mref, true);
                        let _ = tx.send(Event::Reply(el.remove(1)));
                        return;
                    }
                    Message::Down(d) if d.monitor == mref => {
                        // Signals are served before messages: a reply sent before the
                        // task exited is already in the mailbox.
                        while let Some(m) = ctx.try_recv() {
                            if let Message::Msg(Term::Tuple(mut el)) = m {
                                if el.len() == 2 && el[0] == tref && !stopping {
                                    let _ = tx.send(Event::Reply(el.remove(1)));
                                    return;
                                }
                            }
                        }
                        let _ = tx.send(Event::Down(d.reason));
                        return;
                    }
                    _ => {}
                }
            }
        },
    );
    if let Err(e) = spawned {
        return Err(ErpcError::Erpc(Term::Binary(e.to_string().into_bytes())));
    }
    let task = match started_rx.await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(ErpcError::NoConnection {
                node: node.to_string(),
            })
        }
    };
    Ok(RemoteTask {
        node: node.to_string(),
        task: Some(task),
        events,
        shutdown: Some(stop_tx),
        done: false,
    })
}

fn call_error(node: &str, e: orbit::CallError) -> ErpcError {
    match e.cause() {
        orbit::CallError::NoConnection { .. } => ErpcError::NoConnection {
            node: node.to_string(),
        },
        orbit::CallError::Timeout => ErpcError::Timeout {
            node: node.to_string(),
        },
        orbit::CallError::NoProc => ErpcError::Exit(Term::atom("noproc")),
        orbit::CallError::Exit(r) => ErpcError::Exit(r.to_term()),
        other => ErpcError::Exit(Term::Binary(other.to_string().into_bytes())),
    }
}

impl RemoteTask {
    /// The task's pid (on the other node).
    pub fn pid(&self) -> Option<Pid> {
        self.task
    }

    /// `Task.await(task, timeout)`: the task's result as `R` (`Term` as it is); its
    /// crash is [`ErpcError::Exit`] with the reason, a lost node
    /// [`ErpcError::NoConnection`], no reply in time [`ErpcError::Timeout`] (the task
    /// keeps running, as an unlinked Elixir task does; [`shutdown`](Self::shutdown)
    /// stops it).
    pub async fn await_result<R: DeserializeOwned + 'static>(
        mut self,
        timeout: Duration,
    ) -> Result<R, ErpcError> {
        match self.next(timeout).await {
            Some(r) => r.and_then(decode),
            None => Err(ErpcError::Timeout {
                node: self.node.clone(),
            }),
        }
    }

    /// `Task.yield(task, timeout)`: `None` when no result came in time (the task keeps
    /// running; yield again, or shut it down).
    pub async fn yield_result<R: DeserializeOwned + 'static>(
        &mut self,
        timeout: Duration,
    ) -> Option<Result<R, ErpcError>> {
        self.next(timeout).await.map(|r| r.and_then(decode))
    }

    /// `Task.shutdown(task, timeout)`: stops the task with exit `shutdown`; its result
    /// if it came first (`Some`), `None` when it was stopped or is gone.
    pub async fn shutdown<R: DeserializeOwned + 'static>(
        mut self,
        timeout: Duration,
    ) -> Option<Result<R, ErpcError>> {
        if self.done {
            return None;
        }
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        match self.next(timeout).await {
            Some(Ok(v)) => Some(decode(v)),
            _ => None,
        }
    }

    async fn next(&mut self, timeout: Duration) -> Option<Result<Term, ErpcError>> {
        if self.done {
            return Some(Err(ErpcError::BadArg(
                "the task's result was already taken".into(),
            )));
        }
        let ev = match tokio::time::Instant::now().checked_add(timeout) {
            Some(d) => tokio::time::timeout_at(d, self.events.recv()).await.ok()?,
            None => self.events.recv().await,
        };
        self.done = true;
        Some(match ev {
            Some(Event::Reply(v)) => Ok(v),
            Some(Event::Down(ExitReason::NoConnection)) | None => Err(ErpcError::NoConnection {
                node: self.node.clone(),
            }),
            Some(Event::Down(r)) => Err(ErpcError::Exit(r.to_term())),
        })
    }
}

fn decode<R: DeserializeOwned + 'static>(v: Term) -> Result<R, ErpcError> {
    super::out::decode(v)
}
