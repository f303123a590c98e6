//! GenServer: a process that holds state and serves calls, casts and plain messages.
//!
//! The contract, as OTP's `gen_server` defines it:
//! - [`start`] / [`start_link`] spawn the server and wait until [`GenServer::init`]
//!   returns; `init` may succeed, succeed and continue ([`GenServer::handle_continue`]
//!   runs before any message), ask to be ignored, or stop with a reason.
//! - [`ServerRef::call`] sends a request and waits for the reply (5 s by default). The
//!   handler may reply now, later through [`ReplyTo::reply`], or stop. A reply that
//!   arrives after the caller gave up is dropped: it can never reach a later call. A
//!   call to a dead server fails with `noproc`; a server that dies during the call gives
//!   the caller its exit reason. A reply slot dropped unanswered while the server keeps
//!   running (`NoReply` without keeping the [`ReplyTo`], or a deferred `ReplyTo`
//!   dropped) fails the call at once with [`CallError::NoReply`].
//! - [`ServerRef::cast`] never fails and never waits.
//! - Plain messages sent by pid, trapped exits and `DOWN`s go to
//!   [`GenServer::handle_info`]. An exit signal from the parent (the process that
//!   started a linked server) stops a trapping server with the same reason.
//! - A handler that returns `Stop`, or panics, runs [`GenServer::terminate`] and the
//!   server exits with that reason. A server killed by an untrapped exit signal does not
//!   run `terminate`, as in OTP.
//!
//! Deliberate differences: the state is the implementing type itself (`&mut self`), and
//! messages are typed (`Call`, `Cast`, `Info`), so a wrong message is a compile error.
//! OTP lets a call nobody answers run into its timeout; here a dropped reply slot is
//! reported at once ([`CallError::NoReply`]). For one reply type per request instead of
//! one per server, see [`crate::server`].

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::process::{self, Context, Handle, Spawn};
use crate::registry::Dest;
use crate::signal::Message;

/// The default call timeout, as in OTP.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A timeout that never expires (OTP's `infinity`): the call waits until the server
/// replies or exits, and sets no timer.
pub const INFINITY: Duration = Duration::MAX;

/// What `init` decided.
#[derive(Debug)]
pub enum Init<C> {
    /// `{:ok, state}`.
    Ok,
    /// `{:ok, state, {:continue, c}}`: run `handle_continue(c)` before any message.
    Continue(C),
    /// `:ignore`: the server exits normally and `start` returns [`StartError::Ignored`].
    Ignore,
    /// `{:stop, reason}`: the server exits with `reason`; `start` returns it.
    Stop(ExitReason),
}

/// What `handle_call` decided.
#[derive(Debug)]
pub enum CallReply<R, C> {
    /// `{:reply, r, state}`.
    Reply(R),
    /// `{:reply, r, state, {:continue, c}}`.
    ReplyContinue(R, C),
    /// `{:noreply, state}`: the handler kept the [`ReplyTo`] and replies later.
    NoReply,
    /// `{:noreply, state, {:continue, c}}`.
    NoReplyContinue(C),
    /// `{:stop, reason, state}` (without a reply) or `{:stop, reason, reply, state}`.
    Stop(ExitReason, Option<R>),
}

/// What `handle_cast`, `handle_info` and `handle_continue` decided.
#[derive(Debug)]
pub enum Next<C> {
    /// `{:noreply, state}`.
    NoReply,
    /// `{:noreply, state, {:continue, c}}`.
    Continue(C),
    /// `{:stop, reason, state}`.
    Stop(ExitReason),
}

/// Where a call's reply goes (Elixir's `from`).
///
/// `handle_call` receives it by `&mut`: return [`CallReply::Reply`] to answer now, or
/// take it with [`ReplyTo::defer`], keep it, return [`CallReply::NoReply`], and answer
/// later with [`ReplyTo::reply`].
///
/// A call nobody will answer is caught: when the last slot of a call is dropped without
/// a reply while its server keeps running (the handler returned `NoReply` without
/// deferring, or dropped the deferred `ReplyTo`, wherever it was kept), the caller gets
/// [`CallError::NoReply`] at once instead of waiting for its timeout. When the slot is
/// dropped because the server is going down (it stops, panics in a handler, or is
/// killed), the caller gets [`CallError::Exit`] with the server's reason, as in OTP.
/// Limitation: a slot dropped during a panic in the server's own process counts as the
/// server going down; if that panic is caught inside the handler, the caller waits for
/// its timeout.
pub struct ReplyTo<R> {
    tx: Option<oneshot::Sender<Result<R, Unanswered>>>,
    caller: Option<Pid>,
    server: Pid,
}

/// The reply slot was dropped unanswered while the server kept running.
#[derive(Debug)]
pub(crate) struct Unanswered;

/// The caller's side of a [`ReplyTo`].
pub(crate) type ReplyRx<R> = oneshot::Receiver<Result<R, Unanswered>>;

impl<R> ReplyTo<R> {
    /// A reply slot for a call from `caller` to `server`, and where its reply arrives.
    pub(crate) fn channel(server: Pid, caller: Option<Pid>) -> (ReplyTo<R>, ReplyRx<R>) {
        let (tx, rx) = oneshot::channel();
        (
            ReplyTo {
                tx: Some(tx),
                caller,
                server,
            },
            rx,
        )
    }

    /// A slot nobody waits on (a cast): replies to it go nowhere.
    pub(crate) fn nobody(server: Pid) -> ReplyTo<R> {
        ReplyTo {
            tx: None,
            caller: None,
            server,
        }
    }

    /// Takes the reply slot out so the reply can be sent later (`{:noreply, state}`
    /// followed by `GenServer.reply(from, value)`).
    pub fn defer(&mut self) -> ReplyTo<R> {
        ReplyTo {
            tx: self.tx.take(),
            caller: self.caller,
            server: self.server,
        }
    }

    /// Sends the reply. Returns false when the caller already gave up, or the reply was
    /// already sent or deferred elsewhere.
    pub fn reply(mut self, value: R) -> bool {
        self.send(value)
    }

    pub(crate) fn send(&mut self, value: R) -> bool {
        match self.tx.take() {
            Some(tx) => tx.send(Ok(value)).is_ok(),
            None => false,
        }
    }

    /// True while this slot can still answer its call (not replied, not deferred
    /// elsewhere, not a cast) and the caller still waits.
    pub fn is_pending(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// The calling process, when the call came from a process.
    pub fn caller(&self) -> Option<Pid> {
        self.caller
    }
}

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        if tx.is_closed() {
            return;
        }
        // A panic unwinding through the server's own process, or the server going
        // down: close silently, and the caller reports the server's exit reason.
        let server_panics = std::thread::panicking() && process::self_pid() == Some(self.server);
        if !server_panics && !process::going_down(self.server) {
            let _ = tx.send(Err(Unanswered));
        }
    }
}

/// Waits for a call's reply: the reply, [`CallError::NoReply`] when the slot was dropped
/// unanswered, or the server's exit reason when it went down first; [`CallError::Timeout`]
/// after `timeout` ([`INFINITY`]: no timer).
pub(crate) async fn await_reply<R, F: Future<Output = ExitReason>>(
    rx: ReplyRx<R>,
    exit: impl FnOnce() -> F,
    timeout: Duration,
) -> Result<R, CallError> {
    let wait = async {
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(Unanswered)) => Err(CallError::NoReply),
            // The slot closed without a word: the server is going down.
            Err(_) => Err(CallError::Exit(exit().await)),
        }
    };
    match crate::deadline::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout),
    }
}

impl<R> std::fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplyTo({:?})", self.caller)
    }
}

/// A GenServer's callbacks. The implementing type is the server's state.
///
/// Use `()` for message types the server does not take. Every callback has a default:
/// `init` succeeds, `handle_info` logs and ignores, `terminate` does nothing, and
/// `handle_call` / `handle_cast` / `handle_continue` stop the server with an error
/// saying the callback is missing (OTP raises there too).
pub trait GenServer: Sized + Send + 'static {
    /// Requests served by `handle_call`.
    type Call: Send + 'static;
    /// Replies to calls.
    type Reply: Send + 'static;
    /// Requests served by `handle_cast`.
    type Cast: Send + 'static;
    /// Plain messages served by `handle_info` (sent by pid, by name, or by timers).
    type Info: Send + 'static;
    /// Continuation values passed to `handle_continue`.
    type Continue: Send + 'static;

    /// Runs in the new process before `start` returns.
    fn init(
        &mut self,
        _ctx: &mut ServerContext<Self>,
    ) -> impl Future<Output = Init<Self::Continue>> + Send {
        async { Init::Ok }
    }

    /// Serves a call.
    fn handle_call(
        &mut self,
        _request: Self::Call,
        _from: &mut ReplyTo<Self::Reply>,
        _ctx: &mut ServerContext<Self>,
    ) -> impl Future<Output = CallReply<Self::Reply, Self::Continue>> + Send {
        async {
            CallReply::Stop(
                ExitReason::error("this GenServer does not implement handle_call"),
                None,
            )
        }
    }

    /// Serves a cast.
    fn handle_cast(
        &mut self,
        _request: Self::Cast,
        _ctx: &mut ServerContext<Self>,
    ) -> impl Future<Output = Next<Self::Continue>> + Send {
        async {
            Next::Stop(ExitReason::error(
                "this GenServer does not implement handle_cast",
            ))
        }
    }

    /// Serves plain messages, trapped exits and `DOWN`s.
    fn handle_info(
        &mut self,
        msg: Message<Self::Info>,
        ctx: &mut ServerContext<Self>,
    ) -> impl Future<Output = Next<Self::Continue>> + Send {
        let pid = ctx.pid();
        async move {
            match msg {
                Message::Msg(_) => tracing::warn!(%pid, "GenServer received an unexpected message"),
                Message::Exit { from, reason } => {
                    tracing::warn!(%pid, %from, %reason, "GenServer received an unexpected EXIT")
                }
                Message::Down(d) => {
                    tracing::warn!(%pid, down = ?d, "GenServer received an unexpected DOWN")
                }
            }
            Next::NoReply
        }
    }

    /// Runs after a callback returned a continuation, before the next message.
    fn handle_continue(
        &mut self,
        _cont: Self::Continue,
        _ctx: &mut ServerContext<Self>,
    ) -> impl Future<Output = Next<Self::Continue>> + Send {
        async {
            Next::Stop(ExitReason::error(
                "this GenServer does not implement handle_continue",
            ))
        }
    }

    /// Runs when the server stops by returning `Stop`, by a panic in a callback, or on
    /// its parent's exit while trapping exits.
    fn terminate(
        &mut self,
        _reason: &ExitReason,
        _ctx: &mut ServerContext<Self>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// An estimate of the state's size in bytes for `process_info`; `None` (the
    /// default) reports nothing. Called after each message when it returns `Some`.
    fn state_size(&self) -> Option<usize> {
        None
    }
}

/// What travels in a GenServer's mailbox.
pub enum ServerMsg<G: GenServer> {
    /// A call and where to reply.
    Call(G::Call, ReplyTo<G::Reply>),
    /// A cast.
    Cast(G::Cast),
    /// A plain message.
    Info(G::Info),
    /// A stop request from [`ServerRef::stop`].
    Stop(ExitReason),
}

/// The server's side of its process: its pid, a handle to itself, exit trapping.
pub struct ServerContext<G: GenServer> {
    ctx: Context<ServerMsg<G>>,
    parent: Option<Pid>,
}

impl<G: GenServer> ServerContext<G> {
    /// The server's pid.
    pub fn pid(&self) -> Pid {
        self.ctx.pid()
    }

    /// A reference to this server (to hand to others or for timers).
    pub fn server_ref(&self) -> ServerRef<G> {
        ServerRef {
            handle: self.ctx.handle(),
        }
    }

    /// The process that started this server with `start_link`, if any.
    pub fn parent(&self) -> Option<Pid> {
        self.parent
    }

    /// Turns exit signals into `handle_info(Message::Exit)` (see [`Context::trap_exit`]).
    pub fn trap_exit(&self, on: bool) {
        self.ctx.trap_exit(on)
    }

    /// Sends `msg` to this server's `handle_info` after `delay`.
    pub fn send_after(
        &self,
        msg: G::Info,
        delay: Duration,
    ) -> Result<crate::timer::TimerRef, Error> {
        crate::timer::send_after(&self.ctx.handle(), ServerMsg::Info(msg), delay)
    }
}

/// Why `start` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// `init` returned `Ignore`.
    #[error("init returned ignore")]
    Ignored,
    /// `init` stopped, panicked, or the process was killed during init.
    #[error("init failed: {0}")]
    Init(ExitReason),
    /// The name is registered to a running process.
    #[error("already started as {0}")]
    AlreadyStarted(Pid),
    /// The process could not be spawned.
    #[error(transparent)]
    Spawn(#[from] Error),
}

/// Why a call failed: a call to a local server, or (through `orbit_dist::call`) to a
/// GenServer on another node, BEAM or Orbit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server was not alive when called (or the name not registered on its node).
    #[error("noproc: the server is not alive")]
    NoProc,
    /// No reply in time; a reply arriving later is dropped.
    #[error("the call timed out; the server may be overloaded (check its message_queue_len)")]
    Timeout,
    /// The server exited before replying; for a server on another node, its exit
    /// reason exactly as that node sent it.
    #[error("the server exited during the call: {0}")]
    Exit(ExitReason),
    /// The server's node is not connected, could not be connected, or the connection
    /// was lost during the call.
    #[error(
        "no connection to node {node}: check that it runs, that the cookie matches, and \
         that `Node::connect` succeeds"
    )]
    NoConnection {
        /// The node the call went to.
        node: String,
    },
    /// The request could not be encoded for the wire (`type_name` is its Rust type).
    #[error("the request of type {type_name} does not encode as a term: {reason}")]
    Encode {
        /// The request's type.
        type_name: &'static str,
        /// What the encoder said.
        reason: String,
    },
    /// The reply arrived but does not decode into the expected type.
    #[error("the reply does not decode into {type_name}: {reason}")]
    Decode {
        /// The expected reply type.
        type_name: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// A server called itself, which would wait forever.
    #[error("a GenServer called itself; that would deadlock")]
    CallingSelf,
    /// The server dropped the call's reply slot without answering and kept running
    /// (`NoReply` without keeping the `ReplyTo`, or a deferred `ReplyTo` dropped): no
    /// reply will ever come. A bug in the server's handler.
    #[error("the server dropped the call without replying (NoReply and the ReplyTo was not kept, or the deferred ReplyTo was dropped)")]
    NoReply,
    /// No server is registered under the name (or it is not of this type).
    #[error("no GenServer of this type is registered as {0:?}")]
    NotRegistered(String),
}

/// Options for [`start_with`].
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Register the server under this name.
    pub name: Option<String>,
    /// Link the server to the caller (which must be a process).
    pub link: bool,
    /// Give up waiting for `init` after this long (default: wait forever, as OTP).
    pub timeout: Option<Duration>,
}

/// A typed reference to a running GenServer.
pub struct ServerRef<G: GenServer> {
    handle: Handle<ServerMsg<G>>,
}

impl<G: GenServer> Clone for ServerRef<G> {
    fn clone(&self) -> Self {
        ServerRef {
            handle: self.handle.clone(),
        }
    }
}

impl<G: GenServer> std::fmt::Debug for ServerRef<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerRef({})", self.handle.pid())
    }
}

impl<G: GenServer> ServerRef<G> {
    /// The server's pid.
    pub fn pid(&self) -> Pid {
        self.handle.pid()
    }

    /// True while the server runs.
    pub fn is_alive(&self) -> bool {
        self.handle.is_alive()
    }

    /// Calls the server and waits up to 5 s for the reply.
    pub async fn call(&self, request: G::Call) -> Result<G::Reply, CallError> {
        self.call_timeout(request, DEFAULT_CALL_TIMEOUT).await
    }

    /// Calls the server and waits up to `timeout` for the reply ([`INFINITY`] waits
    /// without a timer).
    pub async fn call_timeout(
        &self,
        request: G::Call,
        timeout: Duration,
    ) -> Result<G::Reply, CallError> {
        self.call_inner(process::self_pid(), request, timeout).await
    }

    /// Calls the server on behalf of `caller`, which [`ReplyTo::caller`] then returns:
    /// for calls relayed from another node, where `caller` is the remote process
    /// (`from` in OTP). Otherwise as [`call_timeout`](ServerRef::call_timeout).
    pub async fn call_as(
        &self,
        caller: Pid,
        request: G::Call,
        timeout: Duration,
    ) -> Result<G::Reply, CallError> {
        if process::self_pid() == Some(self.pid()) {
            return Err(CallError::CallingSelf);
        }
        self.call_inner(Some(caller), request, timeout).await
    }

    async fn call_inner(
        &self,
        caller: Option<Pid>,
        request: G::Call,
        timeout: Duration,
    ) -> Result<G::Reply, CallError> {
        if caller == Some(self.pid()) {
            return Err(CallError::CallingSelf);
        }
        let (from, rx) = ReplyTo::channel(self.pid(), caller);
        if self.handle.send(ServerMsg::Call(request, from)).is_err() {
            return Err(CallError::NoProc);
        }
        await_reply(rx, || self.handle.wait_exit(), timeout).await
    }

    /// Casts a request. Never fails: a cast to a dead server is dropped, as in OTP.
    pub fn cast(&self, request: G::Cast) {
        let _ = self.handle.send(ServerMsg::Cast(request));
    }

    /// Sends a plain message to `handle_info`. Fails only when the server has exited.
    pub fn send(&self, msg: G::Info) -> Result<(), crate::error::Undelivered<G::Info>> {
        self.handle
            .send(ServerMsg::Info(msg))
            .map_err(|e| crate::error::Undelivered {
                pid: e.pid,
                msg: match e.msg {
                    ServerMsg::Info(m) => m,
                    // We sent an Info and got the same message back.
                    _ => unreachable!("send returns the message it was given"),
                },
            })
    }

    /// Stops the server with `reason` (after the messages already queued), running
    /// `terminate`, and waits up to `timeout` for it to exit.
    pub async fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), CallError> {
        stop_and_wait(&self.handle, ServerMsg::Stop(reason), timeout).await
    }

    /// Waits until the server exits and returns its reason.
    pub async fn wait_exit(&self) -> ExitReason {
        self.handle.wait_exit().await
    }

    /// The server of type `G` running as `pid`, if any.
    pub fn from_pid(pid: Pid) -> Option<ServerRef<G>> {
        Handle::from_pid(pid).map(|handle| ServerRef { handle })
    }

    /// The server of type `G` that `name` (a pid, a registered name or a `via` name)
    /// stands for now, if any.
    pub fn whereis(name: impl Into<Dest>) -> Option<ServerRef<G>> {
        name.into().whereis().and_then(Self::from_pid)
    }
}

/// Calls the server of type `G` at `name` (`GenServer.call(server, request)`): a pid, a
/// registered name or a `via` name, resolved now.
pub async fn call<G: GenServer>(
    name: impl Into<Dest>,
    request: G::Call,
) -> Result<G::Reply, CallError> {
    call_timeout::<G>(name, request, DEFAULT_CALL_TIMEOUT).await
}

/// [`call`] with a timeout ([`INFINITY`] waits without a timer).
pub async fn call_timeout<G: GenServer>(
    name: impl Into<Dest>,
    request: G::Call,
    timeout: Duration,
) -> Result<G::Reply, CallError> {
    let name = name.into();
    match ServerRef::<G>::whereis(&name) {
        Some(s) => s.call_timeout(request, timeout).await,
        None if matches!(name, Dest::Pid(_)) => Err(CallError::NoProc),
        None => Err(CallError::NotRegistered(name.to_string())),
    }
}

/// Casts to the server of type `G` at `name`; dropped if there is none.
pub fn cast<G: GenServer>(name: impl Into<Dest>, request: G::Cast) {
    if let Some(s) = ServerRef::<G>::whereis(name) {
        s.cast(request)
    }
}

/// Starts a server registered under `name`, a local name or a [`Via`](crate::Via)
/// name (`GenServer.start(mod, arg, name: {:via, Registry, {reg, key}})`), linked to
/// the caller if `link`; waits for its `init`. The server registers itself before
/// `init`; a name already taken fails with [`StartError::AlreadyStarted`].
pub async fn start_named<G: GenServer>(
    server: G,
    name: impl Into<Dest>,
    link: bool,
) -> Result<ServerRef<G>, StartError> {
    start_inner(server, link, None, Some(name.into())).await
}

/// Starts an unlinked server and waits for its `init`.
pub async fn start<G: GenServer>(server: G) -> Result<ServerRef<G>, StartError> {
    start_with(server, StartOptions::default()).await
}

/// Starts a server linked to the calling process and waits for its `init`.
pub async fn start_link<G: GenServer>(server: G) -> Result<ServerRef<G>, StartError> {
    start_with(
        server,
        StartOptions {
            link: true,
            ..Default::default()
        },
    )
    .await
}

fn adapt<G: GenServer>(msg: Box<dyn Any + Send>) -> Result<ServerMsg<G>, Box<dyn Any + Send>> {
    msg.downcast::<G::Info>().map(|m| ServerMsg::Info(*m))
}

/// Starts a server with options (name, link, init timeout) and waits for its `init`.
pub async fn start_with<G: GenServer>(
    server: G,
    opts: StartOptions,
) -> Result<ServerRef<G>, StartError> {
    let name = opts.name.map(Dest::from);
    start_inner(server, opts.link, opts.timeout, name).await
}

async fn start_inner<G: GenServer>(
    server: G,
    link: bool,
    timeout: Option<Duration>,
    name: Option<Dest>,
) -> Result<ServerRef<G>, StartError> {
    let (ack_tx, ack_rx) = oneshot::channel();
    let parent = if link { process::self_pid() } else { None };
    let mut spawn = Spawn::new().label("gen_server");
    if link {
        spawn = spawn.link();
    }
    let handle = process::spawn_with(spawn, Some(adapt::<G>), move |ctx| {
        run(server, ServerContext { ctx, parent }, name, ack_tx)
    })?;
    await_init(&handle, ack_rx, timeout).await?;
    Ok(ServerRef { handle })
}

/// Waits for a starting server's `init` to answer (up to `timeout`, then the server is
/// killed); a server that exits without answering gives its exit reason.
pub(crate) async fn await_init<M: Send + 'static>(
    handle: &Handle<M>,
    ack_rx: oneshot::Receiver<Result<(), StartError>>,
    timeout: Option<Duration>,
) -> Result<(), StartError> {
    let ack = match timeout {
        None => ack_rx.await,
        Some(t) => match crate::deadline::timeout(t, ack_rx).await {
            Ok(a) => a,
            Err(_) => {
                crate::signal::exit(handle.pid(), ExitReason::Kill);
                return Err(StartError::Init(ExitReason::error("init timed out")));
            }
        },
    };
    match ack {
        Ok(r) => r,
        Err(_) => Err(StartError::Init(handle.wait_exit().await)),
    }
}

/// Registers the starting server (the calling process) under `name`.
fn register_name(name: &Dest, me: Pid) -> Result<(), StartError> {
    match name {
        Dest::Local(n) => crate::registry::register(n, me).map_err(|e| match e {
            Error::NameTaken { pid, .. } => StartError::AlreadyStarted(pid),
            other => StartError::Spawn(other),
        }),
        Dest::Via(v) => v.register_self().map_err(|e| match e {
            crate::registry::RegistryError::AlreadyRegistered(pid) => {
                StartError::AlreadyStarted(pid)
            }
            other => StartError::Init(ExitReason::error(other.to_string())),
        }),
        Dest::Pid(p) => Err(StartError::Init(ExitReason::error(format!(
            "{p} is a pid, not a name: start with a local or via name"
        )))),
    }
}

/// Sends a server its stop message and waits up to `timeout` for it to exit.
pub(crate) async fn stop_and_wait<M: Send + 'static>(
    handle: &Handle<M>,
    stop: M,
    timeout: Duration,
) -> Result<(), CallError> {
    if handle.send(stop).is_err() {
        return Err(CallError::NoProc);
    }
    match crate::deadline::timeout(timeout, handle.wait_exit()).await {
        Ok(_) => Ok(()),
        Err(_) => Err(CallError::Timeout),
    }
}

pub(crate) async fn guarded<T>(f: impl Future<Output = T>) -> Result<T, ExitReason> {
    AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .map_err(ExitReason::from_panic)
}

/// A server's `init` failed (or its name was taken): it is stopping, and, as in OTP 26,
/// the starter gets the error from `start` and no exit signal too.
pub(crate) fn init_failed(parent: Option<Pid>) {
    process::mark_stopping();
    if let Some(p) = parent {
        let _ = crate::signal::unlink(p);
    }
}

/// Registers a starting server under `name` (if any). On failure answers the starter
/// (`AlreadyStarted` or the spawn error) and returns `None`: the server then exits
/// `normal` without running `init`.
pub(crate) fn register_at_start<N: Into<Dest>>(
    name: Option<N>,
    pid: Pid,
    parent: Option<Pid>,
    ack: oneshot::Sender<Result<(), StartError>>,
) -> Option<oneshot::Sender<Result<(), StartError>>> {
    let Some(n) = name else { return Some(ack) };
    match register_name(&n.into(), pid) {
        Ok(()) => Some(ack),
        Err(err) => {
            init_failed(parent);
            let _ = ack.send(Err(err));
            None
        }
    }
}

async fn run<G: GenServer>(
    mut g: G,
    mut ctx: ServerContext<G>,
    name: Option<Dest>,
    ack: oneshot::Sender<Result<(), StartError>>,
) -> ExitReason {
    let init_failed = |ctx: &ServerContext<G>| init_failed(ctx.parent);
    let Some(ack) = register_at_start(name.as_ref(), ctx.pid(), ctx.parent, ack) else {
        return ExitReason::Normal;
    };
    let mut cont = match guarded(g.init(&mut ctx)).await {
        Ok(Init::Ok) => None,
        Ok(Init::Continue(c)) => Some(c),
        Ok(Init::Ignore) => {
            init_failed(&ctx);
            let _ = ack.send(Err(StartError::Ignored));
            return ExitReason::Normal;
        }
        Ok(Init::Stop(r)) | Err(r) => {
            init_failed(&ctx);
            let _ = ack.send(Err(StartError::Init(r.clone())));
            return r;
        }
    };
    let _ = ack.send(Ok(()));
    loop {
        let step = if let Some(c) = cont.take() {
            guarded(g.handle_continue(c, &mut ctx)).await
        } else {
            match ctx.ctx.recv().await {
                Message::Msg(ServerMsg::Call(req, mut from)) => {
                    match guarded(g.handle_call(req, &mut from, &mut ctx)).await {
                        Ok(CallReply::Reply(r)) => {
                            from.send(r);
                            Ok(Next::NoReply)
                        }
                        Ok(CallReply::ReplyContinue(r, c)) => {
                            from.send(r);
                            Ok(Next::Continue(c))
                        }
                        Ok(CallReply::NoReply) => Ok(Next::NoReply),
                        Ok(CallReply::NoReplyContinue(c)) => Ok(Next::Continue(c)),
                        Ok(CallReply::Stop(reason, reply)) => {
                            process::mark_stopping();
                            let _ = guarded(g.terminate(&reason, &mut ctx)).await;
                            if let Some(r) = reply {
                                from.send(r);
                            }
                            return reason;
                        }
                        Err(e) => {
                            // Before `from` is dropped: the caller gets the exit reason.
                            process::mark_stopping();
                            Err(e)
                        }
                    }
                }
                Message::Msg(ServerMsg::Cast(m)) => guarded(g.handle_cast(m, &mut ctx)).await,
                Message::Msg(ServerMsg::Info(m)) => {
                    guarded(g.handle_info(Message::Msg(m), &mut ctx)).await
                }
                Message::Msg(ServerMsg::Stop(r)) => Ok(Next::Stop(r)),
                Message::Exit { from, reason } if Some(from) == ctx.parent => {
                    Ok(Next::Stop(reason))
                }
                Message::Exit { from, reason } => {
                    guarded(g.handle_info(Message::Exit { from, reason }, &mut ctx)).await
                }
                Message::Down(d) => guarded(g.handle_info(Message::Down(d), &mut ctx)).await,
            }
        };
        match step {
            Ok(Next::NoReply) => {}
            Ok(Next::Continue(c)) => cont = Some(c),
            Ok(Next::Stop(reason)) | Err(reason) => {
                process::mark_stopping();
                let _ = guarded(g.terminate(&reason, &mut ctx)).await;
                return reason;
            }
        }
        if let Some(size) = g.state_size() {
            ctx.ctx.report_state_size(size);
        }
    }
}
