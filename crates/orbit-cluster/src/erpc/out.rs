//! Calling functions on other nodes: `erpc:call`, `send_request`/`receive_response`,
//! `multicall`, `cast`, `multicast`, from Rust.
//!
//! On the wire a call is what OTP's `erpc:call/5` sends: `SPAWN_REQUEST {29, ReqId,
//! From, GroupLeader, {erpc, execute_call, 4}, [monitor]}` with arguments `[Res, M, F,
//! A]` (`ReqId` and `Res` fresh references of this node). The peer answers
//! `SPAWN_REPLY` (the new process, or an error atom such as `notsup`) and then, through
//! the monitor the request set up, `MONITOR_P_EXIT` whose reason is the result
//! (`{Res, return, V}`, `{Res, throw, T}`, ...), read back into
//! `Result<V, ErpcError>` exactly as OTP's `erpc:result/4` reads it.
//!
//! - A timeout abandons the request as OTP does (`call_abandon`): `DEMONITOR_P` when the
//!   process is known, else the late `SPAWN_REPLY` gets exit `abandoned` sent to the
//!   new process; a late result is dropped. Dropping an [`ErpcRequest`] abandons it too.
//! - A lost connection is [`ErpcError::NoConnection`] at once (the wire fires the
//!   request's monitor with `noconnection`).
//! - A node that does not advertise `DFLAG_SPAWN` is [`ErpcError::NotSup`] without
//!   anything sent, as the BEAM does.
//! - A call to this node itself runs the registered function in the caller's task (as
//!   OTP runs a local `erpc:call` in the calling process).
//! - The group leader sent with requests is a small process of this node that answers
//!   the I/O requests of remote functions that print (`{io_request, ...}`, logged with
//!   `tracing` at info level under target `orbit_cluster::erpc::io`): a printing function
//!   would otherwise block forever waiting for its I/O reply.
//!
//! Cost per call: the request is encoded straight into the connection's buffer
//! (`orbit_dist::spawn::send_spawn_request`; a tuple of serde arguments serialized
//! straight to bytes, `IntoArgs::into_wire_args`) and written at once when the connection is
//! idle; the pending request and its monitor watch sit in two maps keyed by the
//! reference's number (`orbit_dist::spawn::ref_id`, a one-multiply hash). A
//! `SPAWN_REPLY` that names the process is recorded without waking the caller, which
//! wakes once, for the monitor's result. The wire reads the `SPAWN_REPLY` and the
//! `MONITOR_P_EXIT` straight from the bytes (`orbit_dist::control::parse_fast`): the
//! reply arrives here parsed ([`ControlHandler::spawn_reply`]), and only the result
//! (the monitor's reason) becomes a `Term`.
//!
//! Timeouts are [`Duration`]s; [`INFINITY`] never times out.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orbit_dist::control::{SpawnReply, SpawnResult};
use orbit_dist::handshake::flags;
use orbit_dist::service::ControlHandler;
use orbit_dist::spawn::{self, ControlError, IdMap, MonitorWatch, SpawnRequestFrame};
use orbit_term::{Reference, Term};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::registry::{IntoArgs, WireArgs};
use super::ErpcError;

/// A timeout that never expires (`infinity`).
pub const INFINITY: Duration = Duration::MAX;

/// How long a request waits for a connection to come up when none is (OTP's
/// `net_setuptime`, 7 s), within the call's own timeout.
const SETUP_TIME: Duration = Duration::from_secs(7);

/// What the `SPAWN_REPLY` said.
enum Spawned {
    Pid(orbit_term::Pid),
    Error(Term),
}

enum Slot {
    /// A request to the node named waiting for its `SPAWN_REPLY`: an error reply is sent
    /// on the channel (the caller's only answer).
    Waiting(Arc<str>, oneshot::Sender<Spawned>),
    /// The reply named the process: kept here (for an abandon's `DEMONITOR_P`) without
    /// waking the caller, whose answer comes with the monitor; the channel is kept open.
    Spawned(orbit_term::Pid, oneshot::Sender<Spawned>),
    /// Given up before the reply came: the process it names gets exit `abandoned`.
    Abandoned(Arc<str>),
}

/// The requests waiting for their `SPAWN_REPLY`, by [`spawn::ref_id`] of the request id.
fn pending() -> &'static Mutex<IdMap<Slot>> {
    static P: OnceLock<Mutex<IdMap<Slot>>> = OnceLock::new();
    P.get_or_init(Default::default)
}

/// The `SPAWN_REPLY` handler [`super::start`] claims operations 31 and 32 with.
pub(crate) struct SpawnReplies;

impl ControlHandler for SpawnReplies {
    fn control(&self, peer: &str, control: &Term, _payload: Option<&[u8]>) {
        let Term::Tuple(el) = control else { return };
        let (Some(Term::Reference(id)), Some(to), Some(result)) = (el.get(1), el.get(2), el.get(4))
        else {
            tracing::debug!(%peer, "malformed SPAWN_REPLY dropped");
            return;
        };
        let result = match result {
            Term::Pid(p) => Ok(&**p),
            other => Err(other),
        };
        on_reply(peer, id, || to.clone(), result);
    }

    /// The common `SPAWN_REPLY`, read from the bytes by the wire: no `Term` built unless
    /// the reply is an error or comes for an abandoned request.
    fn spawn_reply(&self, peer: &str, reply: &SpawnReply<'_>) {
        let error;
        let result = match &reply.result {
            SpawnResult::Pid(p) => Ok(p),
            SpawnResult::Error(a) => {
                error = Term::Atom(a.clone());
                Err(&error)
            }
        };
        let to = || Term::Pid(Box::new(reply.to.decode()));
        on_reply(peer, &reply.id, to, result);
    }
}

/// Acts on a `SPAWN_REPLY` from `peer` for request `id`: the new process (`Ok`) or the
/// error term. `to` makes the reply's `To` (only an abandoned request needs it).
fn on_reply(
    peer: &str,
    id: &Reference,
    to: impl FnOnce() -> Term,
    result: Result<&orbit_term::Pid, &Term>,
) {
    let Some(key) = spawn::ref_id(id) else {
        tracing::debug!(%peer, "SPAWN_REPLY for a reference of another node dropped");
        return;
    };
    let mut p = pending().lock();
    // Only the node a request went to answers it, once.
    let from_peer = match p.get(&key) {
        Some(Slot::Waiting(n, _) | Slot::Abandoned(n)) => &**n == peer,
        Some(Slot::Spawned(..)) | None => false,
    };
    if !from_peer {
        drop(p);
        tracing::debug!(%peer, "SPAWN_REPLY for no request of this peer (a cast) dropped");
        return;
    }
    if let (Ok(pid), Some(slot)) = (result, p.get_mut(&key)) {
        if let Slot::Waiting(n, _) = slot {
            // The caller waits for the monitor, which brings the result: no wake-up
            // for the reply (a request costs its caller one wake-up, not two).
            let n = n.clone();
            if let Slot::Waiting(_, tx) = std::mem::replace(slot, Slot::Abandoned(n)) {
                *slot = Slot::Spawned(pid.clone(), tx);
            }
            return;
        }
    }
    match p.remove(&key) {
        Some(Slot::Waiting(_, tx)) => {
            // Sent under the lock: an abandon that finds the slot gone finds the
            // reply in the channel.
            let _ = tx.send(match result {
                Ok(pid) => Spawned::Pid(pid.clone()),
                Err(other) => Spawned::Error(other.clone()),
            });
        }
        Some(Slot::Spawned(..)) => {}
        Some(Slot::Abandoned(_)) => {
            drop(p);
            if let Ok(pid) = result {
                let exit = Term::Tuple(vec![
                    Term::Int(orbit_dist::control::op::EXIT2),
                    to(),
                    Term::Pid(Box::new(pid.clone())),
                    Term::atom("abandoned"),
                ]);
                if let Err(e) = spawn::send_control(peer, &exit, None) {
                    tracing::debug!(%peer, error = %e, "abandon exit not sent");
                }
            }
        }
        None => {}
    }
}

/// A request sent with [`send_request`]; its result comes with
/// [`receive_response`](ErpcRequest::receive_response) (or
/// [`wait_response`](ErpcRequest::wait_response)). Dropping it abandons the request.
pub struct ErpcRequest {
    node: Arc<str>,
    id: Reference,
    /// `id`'s key in [`pending`].
    key: u64,
    res: Reference,
    /// The requester (the `From` of the request, for an abandon's `DEMONITOR_P`).
    from: orbit::Pid,
    /// `None` once the `SPAWN_REPLY` was read.
    reply: Option<oneshot::Receiver<Spawned>>,
    /// The process, once known.
    spawned: Option<orbit_term::Pid>,
    watch: Option<MonitorWatch>,
    /// A call to this node itself: the result, computed when it was sent.
    local: Option<Result<Term, ErpcError>>,
    done: bool,
}

impl std::fmt::Debug for ErpcRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErpcRequest")
            .field("node", &self.node)
            .field("id", &self.id)
            .finish()
    }
}

fn no_connection(node: &str) -> ErpcError {
    ErpcError::NoConnection {
        node: node.to_string(),
    }
}

fn control_error(node: &str, e: ControlError) -> ErpcError {
    match e {
        ControlError::Timeout { .. } => ErpcError::Timeout {
            node: node.to_string(),
        },
        _ => no_connection(node),
    }
}

fn atom(what: &str, s: &str) -> Result<Term, ErpcError> {
    Term::try_atom(s).map_err(|_| not_atom(what, s))
}

fn not_atom(what: &str, s: &str) -> ErpcError {
    ErpcError::BadArg(format!(
        "{what} {s:?} is not an atom (at most 255 characters)"
    ))
}

/// Checks that `s` can be an atom without making one (a request to another node writes
/// the name straight into the frame).
fn check_atom(what: &str, s: &str) -> Result<(), ErpcError> {
    if orbit_term::Atom::fits(s) {
        Ok(())
    } else {
        Err(not_atom(what, s))
    }
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Sends `module:function(args)` to `node` and returns at once with the request (the
/// connection is set up first when needed, for at most 7 s). `module` is spelled as on
/// the wire (`"Elixir.Calc"`, `"erlang"`).
///
/// Errors: [`ErpcError::BadArg`] (names that are not atoms), [`ErpcError::Encode`],
/// [`ErpcError::NoConnection`], [`ErpcError::NotSup`] (the node cannot spawn; nothing
/// was sent).
pub async fn send_request(
    node: &str,
    module: &str,
    function: &str,
    args: impl IntoArgs,
) -> Result<ErpcRequest, ErpcError> {
    send_within(
        node,
        module,
        function,
        WireArgs::Terms(args.into_args()?),
        deadline(SETUP_TIME),
    )
    .await
}

async fn send_within(
    node: &str,
    module: &str,
    function: &str,
    args: WireArgs,
    deadline: Option<Instant>,
) -> Result<ErpcRequest, ErpcError> {
    check_atom("module", module)?;
    check_atom("function", function)?;
    let this = orbit_dist::Node::current().ok_or_else(|| no_connection(node))?;
    let id = spawn::new_ref().ok_or_else(|| no_connection(node))?;
    let from = orbit::self_pid().unwrap_or_else(spawn::system_pid);
    let mut req = ErpcRequest {
        node: Arc::from(node),
        key: spawn::ref_id(&id).ok_or_else(|| no_connection(node))?,
        id,
        res: spawn::new_ref().ok_or_else(|| no_connection(node))?,
        from,
        reply: None,
        spawned: None,
        watch: None,
        local: None,
        done: false,
    };
    if this.is_named(node) {
        let (m, f) = (atom("module", module)?, atom("function", function)?);
        req.local = Some(super::into::call_local(&m, &f, args.into_terms()?).await);
        return Ok(req);
    }
    let setup = match deadline {
        Some(d) => d.saturating_duration_since(Instant::now()).min(SETUP_TIME),
        None => SETUP_TIME,
    };
    let fl = spawn::peer_flags(node, setup)
        .await
        .map_err(|e| control_error(node, e))?;
    if fl & flags::SPAWN == 0 {
        return Err(ErpcError::NotSup {
            node: node.to_string(),
        });
    }
    req.watch = Some(spawn::watch_monitor(node, &req.id).map_err(|_| no_connection(node))?);
    let (tx, rx) = oneshot::channel();
    pending()
        .lock()
        .insert(req.key, Slot::Waiting(req.node.clone(), tx));
    req.reply = Some(rx);
    // `{29, ReqId, From, GroupLeader, {erpc, execute_call, 4}, [monitor]}` and the
    // arguments `[Res, M, F, A]`, encoded straight into the connection's buffer.
    let frame = SpawnRequestFrame {
        id: &req.id,
        from,
        group_leader: super::group_leader::pid(),
        module: "erpc",
        function: "execute_call",
        arity: 4,
        monitor: true,
    };
    let res = &req.res;
    let args = match args {
        WireArgs::Terms(t) => Ok(Term::List(t)),
        WireArgs::Encoded(b) => Err(b),
    };
    let payload = |o: &mut Vec<u8>| {
        // LIST_EXT of 4, then NIL_EXT.
        o.extend_from_slice(&[108, 0, 0, 0, 4]);
        res.encode_body(o);
        orbit_dist::control::atom(o, module);
        orbit_dist::control::atom(o, function);
        match &args {
            Ok(list) => list.encode_body(o),
            Err(encoded) => o.extend_from_slice(encoded),
        }
        o.push(106);
    };
    // Written at once from this thread when the connection is idle (else appended for
    // the writer task already at work). Queueing it for the writer task whenever others
    // were in flight saved 0.2 `sendto` per call but cost 0.2 `futex` wake-ups and 0.2
    // context switches per call more (the writer task woken on another worker): more
    // CPU per call than the syscalls it saved (crates/orbit-bench/README.md, erpc).
    if spawn::send_spawn_request(node, &frame, payload, false).is_err() {
        req.done = true;
        pending().lock().remove(&req.key);
        return Err(no_connection(node));
    }
    Ok(req)
}

impl ErpcRequest {
    /// The node the request went to.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Waits at most `timeout` for the result ([`INFINITY`]: no limit), decoded as `R`
    /// (`Term` for the term itself). A timeout abandons the request
    /// ([`ErpcError::Timeout`]), as OTP's `erpc:receive_response/2` does.
    pub async fn receive_response<R: DeserializeOwned + 'static>(
        mut self,
        timeout: Duration,
    ) -> Result<R, ErpcError> {
        self.receive_until(deadline(timeout)).await
    }

    async fn receive_until<R: DeserializeOwned + 'static>(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<R, ErpcError> {
        let r = match deadline {
            Some(d) => tokio::time::timeout_at(d, self.outcome()).await.ok(),
            None => Some(self.outcome().await),
        };
        match r {
            Some(r) => {
                self.finish();
                decode(r?)
            }
            None => {
                self.abandon();
                Err(ErpcError::Timeout {
                    node: self.node.to_string(),
                })
            }
        }
    }

    /// Waits at most `timeout` for the result without abandoning the request when none
    /// came (`erpc:wait_response/2`): `Err(self)` to wait again later.
    pub async fn wait_response<R: DeserializeOwned + 'static>(
        mut self,
        timeout: Duration,
    ) -> Result<Result<R, ErpcError>, ErpcRequest> {
        let r = match deadline(timeout) {
            Some(d) => tokio::time::timeout_at(d, self.outcome()).await.ok(),
            None => Some(self.outcome().await),
        };
        match r {
            Some(r) => {
                self.finish();
                Ok(r.and_then(decode))
            }
            None => Err(self),
        }
    }

    /// The result term, however long it takes (cancel-safe: the state is kept in `self`).
    async fn outcome(&mut self) -> Result<Term, ErpcError> {
        if let Some(r) = self.local.take() {
            return r;
        }
        let node = self.node.clone();
        let Some(watch) = self.watch.as_mut() else {
            return Err(no_connection(&node));
        };
        if let Some(rx) = self.reply.as_mut() {
            tokio::select! {
                biased;
                r = rx => {
                    self.reply = None;
                    match r {
                        Ok(Spawned::Pid(p)) => self.spawned = Some(p),
                        Ok(Spawned::Error(e)) => return Err(ErpcError::from_erpc_reason(&node, e)),
                        Err(_) => return Err(no_connection(&node)),
                    }
                }
                // The monitor fires before the reply only when the connection is lost.
                reason = &mut *watch => {
                    self.watch = None;
                    return result(&node, &self.res, reason);
                }
            }
        }
        let Some(watch) = self.watch.as_mut() else {
            return Err(no_connection(&node));
        };
        let reason = watch.await;
        self.watch = None;
        result(&node, &self.res, reason)
    }

    /// The request is over: nothing more will come for it.
    fn finish(&mut self) {
        self.done = true;
        if self.reply.is_some() {
            pending().lock().remove(&self.key);
        }
    }

    /// Gives the request up (`erpc`'s `call_abandon`).
    fn abandon(&mut self) {
        if self.done || self.local.is_some() {
            self.done = true;
            return;
        }
        self.done = true;
        let pid = match self.spawned.take() {
            Some(p) => Some(p),
            None => {
                let mut p = pending().lock();
                match p.get_mut(&self.key) {
                    Some(Slot::Spawned(..)) => match p.remove(&self.key) {
                        Some(Slot::Spawned(pid, _)) => Some(pid),
                        _ => None,
                    },
                    Some(slot) => {
                        *slot = Slot::Abandoned(self.node.clone());
                        sweep(&mut p);
                        None
                    }
                    None => match self.reply.as_mut().map(|r| r.try_recv()) {
                        Some(Ok(Spawned::Pid(p))) => Some(p),
                        _ => None,
                    },
                }
            }
        };
        if let Some(pid) = pid {
            if self.watch.is_some() {
                let ctl = Term::Tuple(vec![
                    Term::Int(orbit_dist::control::op::DEMONITOR_P),
                    Term::Pid(Box::new(orbit_dist::to_wire(self.from))),
                    Term::Pid(Box::new(pid)),
                    Term::Reference(Box::new(self.id.clone())),
                ]);
                let _ = spawn::send_control(&self.node, &ctl, None);
            }
        }
    }
}

impl Drop for ErpcRequest {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// Forgets abandoned requests to nodes no longer connected (their reply never comes).
fn sweep(p: &mut IdMap<Slot>) {
    if p.len() < 64 {
        return;
    }
    let Some(n) = orbit_dist::Node::current() else {
        return;
    };
    p.retain(|_, s| match s {
        Slot::Abandoned(node) => n.connection(node).is_some(),
        Slot::Waiting(_, tx) | Slot::Spawned(_, tx) => !tx.is_closed(),
    });
}

/// What the monitor's reason means (`erpc:result/4`).
fn result(node: &str, res: &Reference, reason: orbit::ExitReason) -> Result<Term, ErpcError> {
    let t = match reason {
        orbit::ExitReason::NoConnection => return Err(no_connection(node)),
        orbit::ExitReason::Term(t) => Arc::try_unwrap(t).unwrap_or_else(|t| (*t).clone()),
        other => return Err(ErpcError::Signal(other.to_term())),
    };
    let ours = |r: &Term| matches!(r, Term::Reference(r) if **r == *res);
    match t {
        Term::Tuple(el) if el.len() >= 3 && ours(&el[0]) => {
            let shape = el.len();
            let mut it = el.into_iter();
            let (tag, class, a, b) = (it.next(), it.next(), it.next(), it.next());
            match (class.as_ref().and_then(Term::as_atom), a, b) {
                (Some("return"), Some(v), None) => Ok(v),
                (Some("throw"), Some(t), None) => Err(ErpcError::Throw(t)),
                (Some("exit"), Some(x), None) => Err(ErpcError::Exit(x)),
                (Some("error"), Some(e), Some(stack)) => Err(ErpcError::Error { reason: e, stack }),
                (Some("error"), Some(Term::Tuple(mut e)), None)
                    if e.len() == 2 && e[0].as_atom() == Some("erpc") =>
                {
                    Err(ErpcError::from_erpc_reason(node, e.remove(1)))
                }
                (_, a, b) => {
                    // Not a shape erpc produces: the process exited with this reason.
                    let el: Vec<Term> =
                        [tag, class, a, b].into_iter().flatten().chain(it).collect();
                    debug_assert_eq!(el.len(), shape);
                    Err(ErpcError::Signal(Term::Tuple(el)))
                }
            }
        }
        other => Err(ErpcError::Signal(other)),
    }
}

/// The result as `R` (`Term` as it is).
pub(crate) fn decode<R: DeserializeOwned + 'static>(v: Term) -> Result<R, ErpcError> {
    if std::any::TypeId::of::<R>() == std::any::TypeId::of::<Term>() {
        let b: Box<dyn std::any::Any> = Box::new(v);
        return match b.downcast::<R>() {
            Ok(r) => Ok(*r),
            Err(_) => Err(ErpcError::BadArg("unreachable: Term is Term".into())),
        };
    }
    orbit_term::from_term(&v).map_err(|e| ErpcError::Decode {
        type_name: std::any::type_name::<R>(),
        reason: e.to_string(),
        value: v,
    })
}

/// `erpc:call(Node, Module, Function, Args, Timeout)`: runs `module:function(args)` on
/// `node` and waits at most `timeout` (connection set-up included) for its result,
/// decoded as `R` (`Term` for the term itself).
///
/// ```no_run
/// # async fn demo() -> Result<(), orbit_cluster::erpc::ErpcError> {
/// use std::time::Duration;
/// use orbit_cluster::erpc;
/// let name: orbit_term::Term =
///     erpc::call("elixir@127.0.0.1", "erlang", "node", (), Duration::from_secs(5)).await?;
/// let sum: i64 =
///     erpc::call("elixir@127.0.0.1", "Elixir.Calc", "add", (1, 2), Duration::from_secs(5)).await?;
/// # Ok(()) }
/// ```
pub async fn call<R: DeserializeOwned + 'static>(
    node: &str,
    module: &str,
    function: &str,
    args: impl IntoArgs,
    timeout: Duration,
) -> Result<R, ErpcError> {
    let args = args.into_wire_args()?;
    let d = deadline(timeout);
    let mut req = send_within(node, module, function, args, d).await?;
    req.receive_until(d).await
}

/// `erpc:multicall(Nodes, Module, Function, Args, Timeout)`: the call on every node at
/// once, one result per node in the order given, all within `timeout`.
pub async fn multicall<R, N>(
    nodes: impl IntoIterator<Item = N>,
    module: &str,
    function: &str,
    args: impl IntoArgs,
    timeout: Duration,
) -> Vec<Result<R, ErpcError>>
where
    R: DeserializeOwned + 'static,
    N: AsRef<str>,
{
    let nodes: Vec<N> = nodes.into_iter().collect();
    let args = match args.into_args() {
        Ok(a) => a,
        Err(e) => return nodes.iter().map(|_| Err(e.clone())).collect(),
    };
    let d = deadline(timeout);
    let calls = nodes.iter().map(|n| {
        let args = args.clone();
        async move {
            let args = WireArgs::Terms(args);
            let mut req = send_within(n.as_ref(), module, function, args, d).await?;
            req.receive_until(d).await
        }
    });
    futures::future::join_all(calls).await
}

/// `erpc:cast(Node, Module, Function, Args)`: runs `module:function(args)` on `node`
/// with no reply. Returns at once; when the connection is not up yet the request is
/// sent from a task once it is. As in OTP, failures other than bad arguments are
/// ignored (logged at debug level).
pub fn cast(
    node: &str,
    module: &str,
    function: &str,
    args: impl IntoArgs,
) -> Result<(), ErpcError> {
    let (m, f) = (atom("module", module)?, atom("function", function)?);
    let args = args.into_args()?;
    let Some(this) = orbit_dist::Node::current() else {
        tracing::debug!(%node, "erpc cast dropped: this process is not a node");
        return Ok(());
    };
    if this.is_named(node) {
        let run = super::into::call_local(&m, &f, args);
        spawn_task(async move {
            let _ = run.await;
        });
        return Ok(());
    }
    let ctl = Term::Tuple(vec![
        Term::Int(orbit_dist::control::op::SPAWN_REQUEST),
        Term::Reference(Box::new(
            spawn::new_ref().ok_or_else(|| no_connection(node))?,
        )),
        Term::Pid(Box::new(orbit_dist::to_wire(
            orbit::self_pid().unwrap_or_else(spawn::system_pid),
        ))),
        super::group_leader::pid_term(),
        Term::Tuple(vec![
            Term::atom("erpc"),
            Term::atom("execute_cast"),
            Term::Int(3),
        ]),
        Term::nil(),
    ]);
    let payload = Term::List(vec![m, f, Term::List(args)]);
    let node = node.to_string();
    let ready = this
        .connection(&node)
        .filter(|c| c.phase() == orbit_dist::connection::Phase::Up)
        .map(|c| c.flags());
    match ready {
        Some(fl) => send_cast(&node, fl, &ctl, &payload),
        None => spawn_task(async move {
            match spawn::peer_flags(&node, SETUP_TIME).await {
                Ok(fl) => send_cast(&node, fl, &ctl, &payload),
                Err(e) => tracing::debug!(%node, error = %e, "erpc cast dropped"),
            }
        }),
    }
    Ok(())
}

fn send_cast(node: &str, fl: u64, ctl: &Term, payload: &Term) {
    if fl & flags::SPAWN == 0 {
        tracing::debug!(%node, "erpc cast dropped: the node does not support spawn (notsup)");
        return;
    }
    if let Err(e) = spawn::send_control(node, ctl, Some(payload)) {
        tracing::debug!(%node, error = %e, "erpc cast dropped");
    }
}

/// `erpc:multicast(Nodes, Module, Function, Args)`: [`cast`] to every node.
pub fn multicast<N: AsRef<str>>(
    nodes: impl IntoIterator<Item = N>,
    module: &str,
    function: &str,
    args: impl IntoArgs,
) -> Result<(), ErpcError> {
    let args = args.into_args()?;
    for n in nodes {
        cast(n.as_ref(), module, function, args.clone())?;
    }
    Ok(())
}

/// Runs `fut` on the current runtime, or on the node's when called outside one.
fn spawn_task(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(fut);
        }
        Err(_) => tracing::warn!("erpc cast outside a tokio runtime dropped"),
    }
}
