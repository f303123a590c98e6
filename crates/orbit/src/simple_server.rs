//! `SimpleServer`: a [`GenServer`] whose callbacks need only its state — the usual
//! Elixir GenServer, whose `handle_call` answers `{:reply, reply, state}` and whose
//! `handle_cast` answers `{:noreply, state}`.
//!
//! ```
//! use orbit::{gen_server, SimpleServer};
//!
//! struct Counter(u64);
//! impl SimpleServer for Counter {
//!     type Call = ();
//!     type Reply = u64;
//!     type Cast = u64;
//!     fn call(&mut self, _: ()) -> u64 {
//!         self.0
//!     }
//!     fn cast(&mut self, k: u64) {
//!         self.0 += k;
//!     }
//! }
//!
//! # #[tokio::main] async fn main() {
//! let counter = gen_server::start(Counter(0)).await.unwrap(); // a ServerRef<Counter>
//! counter.cast(2);
//! assert_eq!(counter.call(()).await.unwrap(), 2);
//! # }
//! ```
//!
//! Every type implementing it is a [`GenServer`] (a blanket impl): it starts with
//! `gen_server::start*`, is called through [`ServerRef`](crate::ServerRef) or by name,
//! goes under a supervisor with [`ChildSpec::gen_server`](crate::ChildSpec::gen_server),
//! into a [`Pool`](crate::Pool), and is served to other nodes like any GenServer. Its
//! `Info` and `Continue` types are `()`: plain messages are logged and ignored, as
//! GenServer's default `handle_info` does.
//!
//! The contract: `call` answers every call with its return value, `cast` handles every
//! cast; both run in the server's process, one message at a time, and a panic in them
//! stops the server with the panic as its reason (callers get the exit reason). When a
//! server needs more — async work in a handler, its [`ServerContext`]
//! (pid, timers, trapping exits), a deferred reply ([`ReplyTo::defer`]), `init`,
//! `terminate`, stopping itself — implement [`GenServer`] instead; a type implements one
//! or the other. Where it differs from Elixir: the `Cast` type must be named (`type Cast
//! = ();` for a server without casts), because Rust has no default for an associated
//! type; `cast` itself defaults to ignoring the request.
//!
//! A server with no state of its own is a function: [`FnServer::new`]`(|x: u64| x * x)`
//! (a pool of them is Elixir's pool of stateless workers).

use std::future::Future;

use crate::gen_server::{CallReply, GenServer, Next, ReplyTo, ServerContext};

/// A GenServer whose callbacks need only the state: see the [module docs](self).
pub trait SimpleServer: Sized + Send + 'static {
    /// Requests served by [`call`](Self::call).
    type Call: Send + 'static;
    /// What `call` answers.
    type Reply: Send + 'static;
    /// Requests served by [`cast`](Self::cast) (`()` when the server takes none).
    type Cast: Send + 'static;

    /// `handle_call`: the reply to `request`.
    fn call(&mut self, request: Self::Call) -> Self::Reply;

    /// `handle_cast`. By default a cast is ignored (a server that takes none names
    /// `type Cast = ();` and leaves this out).
    fn cast(&mut self, request: Self::Cast) {
        let _ = request;
    }
}

/// A [`SimpleServer`] made of a function: each call's reply is `f(request)`; it takes no
/// casts. The function is boxed, so the type is nameable (`Pool<FnServer<u64, u64>>`).
///
/// ```
/// use orbit::{gen_server, FnServer};
///
/// # #[tokio::main] async fn main() {
/// let square = gen_server::start(FnServer::new(|x: u64| x * x)).await.unwrap();
/// assert_eq!(square.call(7).await.unwrap(), 49);
/// # }
/// ```
pub struct FnServer<A, R> {
    f: Box<dyn FnMut(A) -> R + Send>,
}

impl<A, R> FnServer<A, R> {
    /// A server whose calls are answered by `f`.
    pub fn new(f: impl FnMut(A) -> R + Send + 'static) -> Self {
        FnServer { f: Box::new(f) }
    }
}

impl<A, R> std::fmt::Debug for FnServer<A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnServer")
    }
}

impl<A: Send + 'static, R: Send + 'static> SimpleServer for FnServer<A, R> {
    type Call = A;
    type Reply = R;
    type Cast = ();
    fn call(&mut self, request: A) -> R {
        (self.f)(request)
    }
}

impl<S: SimpleServer> GenServer for S {
    type Call = S::Call;
    type Reply = S::Reply;
    type Cast = S::Cast;
    type Info = ();
    type Continue = ();

    fn handle_call(
        &mut self,
        request: S::Call,
        _from: &mut ReplyTo<S::Reply>,
        _ctx: &mut ServerContext<Self>,
    ) -> impl Future<Output = CallReply<S::Reply, ()>> + Send {
        let reply = SimpleServer::call(self, request);
        async move { CallReply::Reply(reply) }
    }

    fn handle_cast(
        &mut self,
        request: S::Cast,
        _ctx: &mut ServerContext<Self>,
    ) -> impl Future<Output = Next<()>> + Send {
        SimpleServer::cast(self, request);
        async { Next::NoReply }
    }
}
