//! Orbit nodes that speak the Erlang distribution protocol (version 6, OTP 25+).
//!
//! An Orbit process becomes a node with [`Node::start`]; it then clusters with other
//! Orbit nodes and with Erlang/Elixir nodes as a peer: EPMD registration (an embedded
//! EPMD starts when none listens), the cookie handshake, then messages, links, monitors
//! and GenServer calls between processes of any of them. The specification is OTP's
//! *Distribution Protocol* chapter (ERTS User's Guide, `erl_dist_protocol`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), orbit_dist::DistError> {
//! use orbit_dist::{Node, Options};
//! let node = Node::start("orbit@127.0.0.1", Options::cookie("secret")).await?;
//! assert_eq!(node.ping("elixir@127.0.0.1").await, orbit_dist::Ping::Pong);
//! println!("{:?}", node.list());
//! # Ok(()) }
//! ```
//!
//! # Typed messages across the wire
//!
//! Processes keep typed mailboxes. Outgoing, [`send`] and [`send_named`] encode any
//! `Serialize` value with `orbit-term`'s serde mapping; `orbit::send(pid, term)` with an
//! [`orbit_term::Term`] or an [`Etf`] works too. Incoming, a process declared with
//! [`serve::<M>`](serve) gets payloads deserialized into `M`; any other process receives
//! `orbit_term::Term`. A GenServer is reachable from other nodes with
//! [`serve_gen_server`]; [`call`] and [`cast`] reach GenServers on other nodes (Orbit's or
//! the BEAM's).
//!
//! # Exit reasons and call errors
//!
//! Exit reasons cross the wire as the terms Erlang uses, exactly, both ways
//! ([`orbit::ExitReason::to_term`], [`orbit::ExitReason::from_term`]): `{:error, 1}` from
//! Elixir arrives as [`orbit::ExitReason::Term`] holding that tuple, `{:shutdown, :x}` as
//! `ShutdownWith(x)`; a Rust panic goes out as `{panic, <<"message">>}`. Remote calls fail
//! with [`orbit::CallError`], the type local calls use: `NoConnection { node }`,
//! `Timeout`, `NoProc`, `Exit(reason)` with the server's reason term, `Encode`/`Decode`
//! naming the Rust type.
//!
//! # Cargo features
//!
//! - `node` (default): builds the `orbit-node` binary, a small node for tests and for
//!   trying a cluster by hand, with log output through `tracing-subscriber`. The library
//!   itself only emits `tracing` events; turn the feature off (`default-features =
//!   false`) to keep `tracing-subscriber` out of your build.
#![warn(missing_docs)]

mod busy_wait;
pub mod connection;
pub mod control;
pub mod convert;
pub mod cookie;
mod dispatch;
pub mod epmd;
mod error;
mod gen_call;
mod global;
pub mod handshake;
mod net_kernel;
pub mod node;
mod rex;
mod router;

use std::time::Duration;

use orbit::Pid;

use crate::connection::FrameError;
use serde::Serialize;

pub use busy_wait::{spin_before_park, SPIN};
pub use cookie::CookieSource;
pub use dispatch::{serve, unserve, Target};
pub use error::DistError;
pub use gen_call::{
    call, cast, serve_gen_server, serve_gen_server_with, Dest, ServeOptions, SERVED_CALL_TIMEOUT,
};
pub use node::{Node, NodeEvent, Options, Ping};
/// Remote calls fail with the same error as local ones (re-exported for convenience).
pub use orbit::CallError;
pub use router::{DistRouter, Etf};

/// Sends `msg`, encoded with serde, to `pid` on another node (connecting first when
/// needed; the message waits for the handshake). For a local pid the message is decoded
/// back as the process declared with [`serve`], else delivered as a [`orbit_term::Term`].
pub fn send<T: Serialize + ?Sized>(pid: Pid, msg: &T) -> Result<(), orbit::SendError> {
    if pid.is_local() {
        let bytes =
            orbit_term::to_vec(msg).map_err(|e| orbit::SendError::NotEncodable(e.to_string()))?;
        return dispatch::deliver_local(pid, &bytes);
    }
    let conn = node::conn_for(&pid.node()).ok_or(orbit::SendError::NotDistributed)?;
    Ok(conn.send_with(orbit::self_pid(), pid, |o| {
        orbit_term::to_vec_into(msg, o).map_err(|e| FrameError::Encode(e.to_string()))
    })?)
}

/// Sends `msg`, encoded with serde, to the process registered as `name` on `node`.
pub fn send_named<T: Serialize + ?Sized>(
    node: &str,
    name: &str,
    msg: &T,
) -> Result<(), orbit::SendError> {
    let conn = node::conn_for(node).ok_or(orbit::SendError::NotDistributed)?;
    let from = orbit::self_pid().unwrap_or_else(node::system_pid);
    Ok(conn.reg_send_with(from, name, |o| {
        orbit_term::to_vec_into(msg, o).map_err(|e| FrameError::Encode(e.to_string()))
    })?)
}

/// Flow control for a process that sends to `node` in a loop: once at least
/// [`FLUSH_AT`] bytes are queued the caller writes them itself (one syscall, no task
/// switch), and it waits while more than [`connection::HIGH_WATER`] bytes are queued.
/// Below `FLUSH_AT`, queued messages go out when the caller next waits for anything (the
/// connection's writer task runs on the caller's worker) or when the queue reaches
/// `FLUSH_AT`.
pub async fn wait_writable(node: &str) {
    if let Some(c) = Node::current().and_then(|n| n.connection(node)) {
        if c.queued() >= FLUSH_AT {
            c.flush();
        }
        c.wait_writable().await;
    }
}

/// Queued bytes from which [`wait_writable`] writes them from the caller's thread.
pub const FLUSH_AT: usize = 256 << 10;

/// Waits until the connection to `node` is up, at most `timeout`; false when it failed.
pub async fn wait_connected(node: &str, timeout: Duration) -> bool {
    let Some(c) = node::conn_for(node) else {
        return false;
    };
    matches!(tokio::time::timeout(timeout, c.wait_up()).await, Ok(Ok(())))
}

/// The wire form of a pid (serializable: put it in a message to another node).
pub fn to_wire(pid: Pid) -> orbit_term::Pid {
    match node::get() {
        Some(n) => convert::pid_to_wire(pid, &n.id),
        None => convert::pid_to_wire(
            pid,
            &convert::LocalId {
                name: orbit::pid::local_node(),
                creation: 0,
            },
        ),
    }
}

/// The Orbit pid for a pid received in a message.
pub fn from_wire(pid: &orbit_term::Pid) -> Pid {
    convert::pid_from_wire(pid)
}
