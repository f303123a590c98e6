//! erpc both ways: BEAM nodes call Rust functions of this node (`:erpc.call`,
//! `:rpc.call`, `:erpc.cast`, `Node.spawn` of a registered MFA), and Rust calls functions
//! of other nodes (BEAM or Orbit) with OTP's erpc semantics.
//!
//! - **Into Orbit** ([`register`], [`register_async`], [`register_typed`]): functions
//!   registered under `(module, function, arity)`; [`start`] (called by
//!   [`crate::start`]) claims `SPAWN_REQUEST` from the wire, which advertises
//!   `DFLAG_SPAWN`. `:erpc.call(orbit, Calc, :add, [1, 2])` from Elixir runs the Rust
//!   function registered as `("Elixir.Calc", "add", 2)` and returns its value; its
//!   failures reach the caller in erpc's exact shapes (`undef` for an unregistered
//!   function, `error`/`throw`/`exit` exceptions, a panic as a `RuntimeError`). In OTP
//!   25 `rpc:call` is erpc, so it works the same (`{badrpc, {'EXIT', ...}}` forms). A fun
//!   (`Node.spawn(orbit, fn -> ... end)`) cannot run outside the BEAM: the spawn is
//!   refused with `notsup`, what OTP gives for a node that cannot spawn it. See the
//!   `into` module docs for the protocol.
//! - **Out of Orbit** ([`call`], [`multicall`], [`cast`], [`multicast`],
//!   [`send_request`] + [`ErpcRequest::receive_response`]): typed arguments (a tuple of
//!   serde values, or `Vec<Term>`) and results (any serde type, or `Term`), errors as
//!   [`ErpcError`] whose [`ErpcError::exception_term`] is exactly the `{Class, Reason}`
//!   OTP's erpc raises. Works against OTP 23+ nodes and Orbit nodes that run [`start`].
//! - **Remote `Task.Supervisor`** ([`serve_task_supervisor`], [`async_nolink`]): Elixir's
//!   `Task.Supervisor.async({MySup, orbit}, M, F, A)` / `async_nolink` run registered
//!   functions here and reply as an Elixir task; from Rust, `async_nolink` on a
//!   supervisor of another node with `await`/`yield`/`shutdown` semantics
//!   ([`RemoteTask`]). See the `remote_task` module docs for the protocol.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use orbit_cluster::erpc::{self, ErpcError};
//! use orbit_term::Term;
//!
//! let node = orbit_dist::Node::start("calc@127.0.0.1", orbit_dist::Options::cookie("c")).await?;
//! orbit_cluster::start(&node)?;
//! // Elixir: :erpc.call(:"calc@127.0.0.1", Calc, :add, [1, 2]) == 3
//! erpc::register_typed("Elixir.Calc", "add", |(a, b): (i64, i64)| Ok::<_, ErpcError>(a + b))?;
//! // And the other way:
//! let v: Term = erpc::call("ex@127.0.0.1", "Elixir.String", "upcase", ("abc",), Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! Differences from OTP: a registered Rust function has no stack of its own; its
//! errors carry `[{Module, Function, Arity, []}]` (a BEAM stack has file and line in the
//! last element). `erpc:call` to this node itself runs the function in the caller's task
//! (OTP runs it in the calling process, too).

mod error;
mod group_leader;
mod into;
mod out;
mod registry;
mod remote_task;

use std::sync::Arc;

use orbit_dist::control::op;
use orbit_dist::service::{claim_control, ServiceError};

pub use error::ErpcError;
pub(crate) use into::call_local;
pub use out::{call, cast, multicall, multicast, send_request, ErpcRequest, INFINITY};
pub use registry::{
    is_registered, register, register_async, register_typed, unregister, FromArgs, IntoArgs,
    Outcome, OutcomeFuture, WireArgs,
};
pub use remote_task::{async_nolink, serve_task_supervisor, RemoteTask};

/// Claims `SPAWN_REQUEST` (29, 30) and `SPAWN_REPLY` (31, 32) from the wire, so that other
/// nodes' erpc calls run registered functions and this node's calls get their replies.
/// Idempotent; [`crate::start`] calls it.
pub fn start() -> Result<(), ServiceError> {
    claim_control(op::SPAWN_REQUEST, Arc::new(into::SpawnRequests))?;
    claim_control(op::SPAWN_REQUEST_TT, Arc::new(into::SpawnRequests))?;
    claim_control(op::SPAWN_REPLY, Arc::new(out::SpawnReplies))?;
    claim_control(op::SPAWN_REPLY_TT, Arc::new(out::SpawnReplies))?;
    Ok(())
}
