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
use std::time::Duration;

use crate::error::Error;
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::process::{self, Context, Handle};
use crate::registry::Dest;
use crate::signal::Message;

mod error;
mod reply_to;
mod run;

pub use error::{CallError, StartError};
pub(crate) use reply_to::await_reply;
pub use reply_to::ReplyTo;
use run::start_inner;
pub(crate) use run::{await_init, guarded, init_failed, register_at_start, stop_and_wait};

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
        // With a telemetry handler attached, one call in CALL_SAMPLE_EVERY per thread is
        // timed and reported as `[orbit, gen_server, call]` (the rest pay a
        // thread-local increment).
        if crate::telemetry::enabled() && sample_call() {
            let t0 = std::time::Instant::now();
            let r = self.call_inner(process::self_pid(), request, timeout).await;
            let pid = self.pid();
            crate::telemetry::execute(
                &["orbit", "gen_server", "call"],
                &[
                    ("duration_us", t0.elapsed().as_secs_f64() * 1e6),
                    ("sample_every", CALL_SAMPLE_EVERY as f64),
                    ("ok", if r.is_ok() { 1.0 } else { 0.0 }),
                ],
                &[("server", &pid)],
            );
            return r;
        }
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
    if name.remote_node().is_some() {
        return crate::router::call::<G::Call, G::Reply>(name, request, timeout).await;
    }
    match ServerRef::<G>::whereis(&name) {
        Some(s) => s.call_timeout(request, timeout).await,
        None if matches!(name, Dest::Pid(_)) => Err(CallError::NoProc),
        None => Err(CallError::NotRegistered(name.to_string())),
    }
}

/// Casts to the server of type `G` at `name`; dropped if there is none. On another
/// node (a remote pid or `{name, node}`), the cast goes through distribution, which
/// needs `G::Cast` to be encodable (`orbit_dist::remote::<G::Cast>()`); a cast that
/// cannot go out is logged and dropped (use `orbit_dist::cast` to see the error).
pub fn cast<G: GenServer>(name: impl Into<Dest>, request: G::Cast) {
    let name = name.into();
    if name.remote_node().is_some() {
        let node = name
            .remote_node()
            .map(|n| n.to_string())
            .unwrap_or_default();
        let r = crate::router::get()
            .map_err(|_| CallError::NoConnection { node })
            .and_then(|r| r.cast(name.clone(), crate::router::Payload::new(request)));
        if let Err(e) = r {
            tracing::warn!(to = %name, error = %e, "a cast to another node was dropped");
        }
        return;
    }
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

/// One call in this many (per thread) is timed for `[orbit, gen_server, call]`.
pub const CALL_SAMPLE_EVERY: u32 = 64;

thread_local! {
    static CALLS_SEEN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// True for every [`CALL_SAMPLE_EVERY`]th call on this thread.
#[inline]
fn sample_call() -> bool {
    CALLS_SEEN.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        n.is_multiple_of(CALL_SAMPLE_EVERY)
    })
}
