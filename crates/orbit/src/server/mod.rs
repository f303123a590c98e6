//! Servers whose requests name their own reply type: `server.call(Get)` returns a `u64`,
//! `server.call(Add(1))` returns `()`, on one server, with no `unreachable!` arms.
//!
//! A [`Request`] type says what it replies with (`type Reply`). A server (a [`Server`]:
//! `init`, `handle_info`, `terminate`, the state being the implementing type) serves a
//! request type `R` by implementing [`Handles<R>`]; [`ServerHandle::call`] accepts exactly
//! the requests the server handles, and returns `R::Reply`. A wrong request is a compile
//! error, as is a wrong reply.
//!
//! ```
//! use orbit::server::{self, Ctx, Handles, Reply, Request, Server};
//! use orbit::ReplyTo;
//!
//! struct Counter(u64);
//! impl Server for Counter {
//!     type Info = ();
//! }
//!
//! struct Get;
//! impl Request for Get {
//!     type Reply = u64;
//! }
//! struct Add(u64);
//! impl Request for Add {
//!     type Reply = ();
//! }
//!
//! impl Handles<Get> for Counter {
//!     async fn handle(&mut self, _: Get, _: &mut ReplyTo<u64>, _: &mut Ctx<Self>) -> Reply<u64> {
//!         Reply::Reply(self.0)
//!     }
//! }
//! impl Handles<Add> for Counter {
//!     async fn handle(&mut self, Add(n): Add, _: &mut ReplyTo<()>, _: &mut Ctx<Self>) -> Reply<()> {
//!         self.0 += n;
//!         ().into()
//!     }
//! }
//!
//! # #[tokio::main] async fn main() {
//! let counter = server::start(Counter(0)).await.unwrap();
//! counter.call(Add(2)).await.unwrap();
//! counter.cast(Add(1));
//! let n: u64 = counter.call(Get).await.unwrap();
//! assert_eq!(n, 3);
//! # }
//! ```
//!
//! The contract is [`gen_server`](crate::gen_server)'s, and so are its types where they
//! fit: [`ReplyTo`] (reply now, or [`ReplyTo::defer`] and reply later), [`CallError`],
//! [`StartError`], [`StartOptions`]:
//! - [`start`] / [`start_link`] / [`start_with`] (name, link, init timeout) wait for
//!   `init`; a name already taken gives [`StartError::AlreadyStarted`].
//! - A call waits up to its timeout (5 s by default, [`INFINITY`] for none) and returns
//!   the reply, or [`CallError::Timeout`] (a reply arriving later is dropped),
//!   [`CallError::NoProc`] (the server was not alive), [`CallError::Exit`] (the server
//!   exited, crashed or was killed before replying: its reason),
//!   [`CallError::CallingSelf`], or [`CallError::NoReply`]: the handler returned
//!   [`Reply::NoReply`] without deferring, or the deferred [`ReplyTo`] was dropped
//!   unanswered, while the server kept running. No call hangs on a reply that cannot
//!   come.
//! - A cast runs the same handler with a [`ReplyTo`] that goes nowhere; its reply is
//!   dropped. It never fails and never waits.
//! - Plain messages (sent by pid or with [`ServerHandle::send`]), trapped exits and
//!   `DOWN`s go to [`Server::handle_info`]; an exit signal from the parent (the starter
//!   of a linked server) stops a trapping server with the same reason.
//! - A handler that returns `Stop` or panics runs [`Server::terminate`] and the server
//!   exits with that reason (a `Stop` with a reply sends it after `terminate`); a server
//!   killed by an untrapped exit signal does not run `terminate`, as in OTP.
//!
//! Differences from [`GenServer`](crate::GenServer) and OTP: no `handle_continue`
//! (do the work in the handler, or send yourself a message), and casts share the call
//! handlers (OTP has a separate `handle_cast`). Costs: a call allocates the boxed
//! request, the boxed handler future and the reply channel (`GenServer`: the reply
//! channel only); the dispatch is one virtual call.

mod run;

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;

pub use crate::gen_server::{
    CallError, ReplyTo, StartError, StartOptions, DEFAULT_CALL_TIMEOUT, INFINITY,
};

use crate::error::Error;
use crate::exit::ExitReason;
use crate::gen_server::await_reply;
use crate::pid::Pid;
use crate::process::{self, Handle, Spawn};
use crate::signal::Message;

use run::{Envelope, Msg};

/// A request: a message sent to a server with [`ServerHandle::call`] or
/// [`ServerHandle::cast`], naming the type of its reply.
pub trait Request: Send + 'static {
    /// What the server answers.
    type Reply: Send + 'static;
}

/// What `init` decided.
#[derive(Debug)]
pub enum InitResult {
    /// `{:ok, state}`.
    Ok,
    /// `:ignore`: the server exits normally and `start` returns [`StartError::Ignored`].
    Ignore,
    /// `{:stop, reason}`: the server exits with `reason`; `start` returns it.
    Stop(ExitReason),
}

/// What `handle_info` decided.
#[derive(Debug)]
pub enum InfoResult {
    /// `{:noreply, state}`: go on.
    Continue,
    /// `{:stop, reason, state}`.
    Stop(ExitReason),
}

/// What a request's handler decided.
#[derive(Debug)]
pub enum Reply<T> {
    /// `{:reply, t, state}`: answer now.
    Reply(T),
    /// `{:noreply, state}`: the handler took the [`ReplyTo`] with [`ReplyTo::defer`] and
    /// answers later. If it did not (or later drops it unanswered), the caller gets
    /// [`CallError::NoReply`] at once.
    NoReply,
    /// `{:stop, reason, state}` (no reply: the caller gets [`CallError::Exit`]) or
    /// `{:stop, reason, reply, state}` (the reply is sent after `terminate`).
    Stop(ExitReason, Option<T>),
}

impl<T> From<T> for Reply<T> {
    fn from(t: T) -> Self {
        Reply::Reply(t)
    }
}

/// A server's own callbacks (the request handlers are [`Handles`]). The implementing
/// type is the server's state. Every callback has a default: `init` succeeds,
/// `handle_info` logs and ignores, `terminate` does nothing.
pub trait Server: Sized + Send + 'static {
    /// Plain messages served by `handle_info` (sent by pid, by name, or by timers); `()`
    /// when the server takes none.
    type Info: Send + 'static;

    /// Runs in the new process before `start` returns.
    fn init(&mut self, _ctx: &mut Ctx<Self>) -> impl Future<Output = InitResult> + Send {
        async { InitResult::Ok }
    }

    /// Serves plain messages, trapped exits and `DOWN`s.
    fn handle_info(
        &mut self,
        msg: Message<Self::Info>,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = InfoResult> + Send {
        let pid = ctx.pid();
        async move {
            match msg {
                Message::Msg(_) => tracing::warn!(%pid, "server received an unexpected message"),
                Message::Exit { from, reason } => {
                    tracing::warn!(%pid, %from, %reason, "server received an unexpected EXIT")
                }
                Message::Down(d) => {
                    tracing::warn!(%pid, down = ?d, "server received an unexpected DOWN")
                }
            }
            InfoResult::Continue
        }
    }

    /// Runs when the server stops by a handler's `Stop`, a panic in a handler, a
    /// [`ServerHandle::stop`], or its parent's exit while trapping exits.
    fn terminate(
        &mut self,
        _reason: &ExitReason,
        _ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A server serves requests of type `R`.
pub trait Handles<R: Request>: Server {
    /// Serves one request (a call, or a cast whose reply is dropped). Return
    /// [`Reply::Reply`] to answer now, or defer `from` and return [`Reply::NoReply`].
    fn handle(
        &mut self,
        request: R,
        from: &mut ReplyTo<R::Reply>,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Reply<R::Reply>> + Send;
}

/// The server's side of its process: its pid, a reference to itself, exit trapping.
pub struct Ctx<S: Server> {
    ctx: process::Context<Msg<S>>,
    parent: Option<Pid>,
}

impl<S: Server> Ctx<S> {
    /// The server's pid.
    pub fn pid(&self) -> Pid {
        self.ctx.pid()
    }

    /// A reference to this server (to hand to others). Calling it from its own
    /// handlers fails with [`CallError::CallingSelf`]; casts are fine.
    pub fn server_ref(&self) -> ServerHandle<S> {
        ServerHandle {
            handle: self.ctx.handle(),
        }
    }

    /// The process that started this server with `start_link`, if any.
    pub fn parent(&self) -> Option<Pid> {
        self.parent
    }

    /// Turns exit signals into `handle_info(Message::Exit)` (see
    /// [`Context::trap_exit`](crate::Context::trap_exit)).
    pub fn trap_exit(&self, on: bool) {
        self.ctx.trap_exit(on)
    }

    /// Sends `msg` to this server's `handle_info` after `delay`.
    pub fn send_after(
        &self,
        msg: S::Info,
        delay: Duration,
    ) -> Result<crate::timer::TimerRef, Error> {
        crate::timer::send_after(&self.ctx.handle(), Msg::Info(msg), delay)
    }
}

/// A typed reference to a running server.
pub struct ServerHandle<S: Server> {
    handle: Handle<Msg<S>>,
}

impl<S: Server> Clone for ServerHandle<S> {
    fn clone(&self) -> Self {
        ServerHandle {
            handle: self.handle.clone(),
        }
    }
}

impl<S: Server> std::fmt::Debug for ServerHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerHandle({})", self.handle.pid())
    }
}

impl<S: Server> ServerHandle<S> {
    /// The server's pid.
    pub fn pid(&self) -> Pid {
        self.handle.pid()
    }

    /// True while the server runs.
    pub fn is_alive(&self) -> bool {
        self.handle.is_alive()
    }

    /// Calls the server and waits up to 5 s for the reply.
    pub async fn call<R: Request>(&self, request: R) -> Result<R::Reply, CallError>
    where
        S: Handles<R>,
    {
        self.call_timeout(request, DEFAULT_CALL_TIMEOUT).await
    }

    /// Calls the server and waits up to `timeout` for the reply ([`INFINITY`] waits
    /// without a timer).
    pub async fn call_timeout<R: Request>(
        &self,
        request: R,
        timeout: Duration,
    ) -> Result<R::Reply, CallError>
    where
        S: Handles<R>,
    {
        let caller = process::self_pid();
        if caller == Some(self.pid()) {
            return Err(CallError::CallingSelf);
        }
        let (from, rx) = ReplyTo::channel(self.pid(), caller);
        if self.handle.send(Envelope::message(request, from)).is_err() {
            return Err(CallError::NoProc);
        }
        await_reply(rx, || self.handle.wait_exit(), timeout).await
    }

    /// Casts a request: the handler runs, its reply is dropped. Never fails: a cast to
    /// a dead server is dropped, as in OTP.
    pub fn cast<R: Request>(&self, request: R)
    where
        S: Handles<R>,
    {
        let from = ReplyTo::nobody(self.pid());
        let _ = self.handle.send(Envelope::message(request, from));
    }

    /// Sends a plain message to `handle_info`. Fails only when the server has exited
    /// ([`Error::NoProc`]; the message is dropped, as Erlang drops it).
    pub fn send(&self, msg: S::Info) -> Result<(), Error> {
        self.handle
            .send(Msg::Info(msg))
            .map_err(|e| Error::NoProc(e.pid))
    }

    /// Stops the server with `reason` (after the messages already queued), running
    /// `terminate`, and waits up to `timeout` for it to exit.
    pub async fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), CallError> {
        crate::gen_server::stop_and_wait(&self.handle, Msg::Stop(reason), timeout).await
    }

    /// Waits until the server exits and returns its reason.
    pub async fn wait_exit(&self) -> ExitReason {
        self.handle.wait_exit().await
    }

    /// The server of type `S` running as `pid`, if any.
    pub fn from_pid(pid: Pid) -> Option<ServerHandle<S>> {
        Handle::from_pid(pid).map(|handle| ServerHandle { handle })
    }

    /// The server of type `S` registered as `name`, if any.
    pub fn whereis(name: impl Into<crate::registry::Dest>) -> Option<ServerHandle<S>> {
        name.into().whereis().and_then(Self::from_pid)
    }
}

/// Calls the server of type `S` registered as `name` and waits up to 5 s.
pub async fn call<S: Handles<R>, R: Request>(
    name: &str,
    request: R,
) -> Result<R::Reply, CallError> {
    match ServerHandle::<S>::whereis(name) {
        Some(s) => s.call(request).await,
        None => Err(CallError::NotRegistered(name.to_string())),
    }
}

/// Casts to the server of type `S` registered as `name`; dropped if there is none.
pub fn cast<S: Handles<R>, R: Request>(name: &str, request: R) {
    if let Some(s) = ServerHandle::<S>::whereis(name) {
        s.cast(request)
    }
}

/// Starts an unlinked server and waits for its `init`.
pub async fn start<S: Server>(server: S) -> Result<ServerHandle<S>, StartError> {
    start_with(server, StartOptions::default()).await
}

/// Starts a server linked to the calling process and waits for its `init`.
pub async fn start_link<S: Server>(server: S) -> Result<ServerHandle<S>, StartError> {
    start_with(
        server,
        StartOptions {
            link: true,
            ..Default::default()
        },
    )
    .await
}

/// Starts a server with options (name, link, init timeout) and waits for its `init`.
pub async fn start_with<S: Server>(
    server: S,
    opts: StartOptions,
) -> Result<ServerHandle<S>, StartError> {
    let (ack_tx, ack_rx) = oneshot::channel();
    let parent = if opts.link { process::self_pid() } else { None };
    let mut spawn = Spawn::new().label("server");
    if opts.link {
        spawn = spawn.link();
    }
    let name = opts.name.clone();
    let handle = process::spawn_with(spawn, Some(run::adapt::<S>), move |ctx| {
        run::run(server, Ctx { ctx, parent }, name, ack_tx)
    })?;
    crate::gen_server::await_init(&handle, ack_rx, opts.timeout).await?;
    Ok(ServerHandle { handle })
}
