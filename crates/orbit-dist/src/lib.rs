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
//! # One send and one call, local or remote
//!
//! Once a node runs, [`orbit::send`] reaches a process of another node by pid or by
//! `("name", "node@host")` ([`orbit::Dest`]), and `orbit::gen_server::call`/`cast` reach
//! a GenServer there, with the same [`orbit::CallError`] as local calls. Messages cross
//! the wire encoded with serde (`orbit-term`'s mapping); since the runtime's `send`
//! takes any `M: Any + Send`, a type must be known to the wire codec registry: common
//! std types, [`orbit_term::Term`] and [`Etf`] are built in; [`serve`],
//! [`serve_gen_server`] (its call, cast and reply types) and [`call`] (its reply type)
//! register the types they are given; [`remote::<M>()`](remote) registers one
//! explicitly. A type that is not registered fails at the send with
//! [`orbit::SendError::NotEncodable`] naming it and this fix. [`send`], [`send_named`],
//! [`call`] and [`cast`] are the serde-typed forms: they take any `Serialize` value,
//! borrowed ones too, with no registration.
//!
//! Incoming, a process declared with [`serve::<M>`](serve) gets payloads deserialized
//! into `M`; any other process receives `orbit_term::Term`. A GenServer is reachable
//! from other nodes with [`serve_gen_server`]; a call from another Orbit node to a
//! GenServer nobody served fails at once with [`orbit::CallError::NotServed`] (a BEAM
//! caller gets no reply, as from a BEAM process that is not a gen_server; both are
//! logged with the fix).
//!
//! # Exit reasons and call errors
//!
//! Exit reasons cross the wire as the terms Erlang uses, exactly, both ways
//! ([`orbit::ExitReason::to_term`], [`orbit::ExitReason::from_term`]): `{:error, 1}` from
//! Elixir arrives as [`orbit::ExitReason::Term`] holding that tuple, `{:shutdown, :x}` as
//! `ShutdownWith(x)`; a Rust panic goes out as `{panic, <<"message">>}`. Remote calls fail
//! with [`orbit::CallError`], the type local calls use: `NoConnection { node }`,
//! `Remote { node, error }` wrapping `Timeout`, `NoProc` or `Exit(reason)` (the server's
//! reason term; [`orbit::CallError::cause`] matches local and remote alike),
//! `NotServed { node, server }`, `Encode`/`Decode` naming the Rust type.
//!
//! # Layers
//!
//! The modules form layers; a module imports only modules listed before it (checked by
//! `scripts/layers`), so a message's path reads in one direction: bytes from the socket
//! go up from [`connection`] through the upcalls the node installs, never back down.
//!
//! 1. `error`, [`convert`], `busy_wait`, `read_batch`: shared types, pid and reason
//!    conversions; the frames of one read handled as a batch;
//! 2. [`handshake`], [`control`]: the handshake and the control messages;
//! 3. [`cookie`], [`epmd`], [`tls`], `fragments`: where the cookie comes from, EPMD
//!    client and server, the TLS transport, fragment reassembly;
//! 4. [`connection`]: one peer's framing, writes, ticks; hands frames up through
//!    upcalls it does not name;
//! 5. [`monitor`]: node events and their subscribers (`monitor_nodes/2`);
//! 6. `peers`: the started node's identity and its connection table;
//! 7. `codec`: the serde codecs registered per Rust type (what the router encodes
//!    `orbit::send` values with), and [`Etf`];
//! 8. `serve`: which local processes take typed messages ([`serve()`]);
//! 9. `gen_call`: calls to other nodes and served GenServers;
//! 10. [`service`], [`spawn`]: the seam through which system services register under
//!     their names; the primitives a remote-spawn service (erpc) builds on;
//! 11. `dispatch`: what each incoming control message does (messages to processes,
//!     replies to pending calls, messages to services);
//! 12. `router`: the runtime's router for remote pids;
//! 13. `net_kernel`, `global`, `rex_nodes`: the built-in services a bare node answers;
//!     `mesh`: the transitive connection (OTP's `connect_all`) a new visible peer starts;
//! 14. [`node`]: the public node API; starts the node and wires the layers together;
//!
//! and this file on top: the crate's functions (`send`, `send_named`, ...).
//!
//! System services above the wire (`rex`, discovery, the cluster view, ...) live in
//! the `orbit-cluster` crate and register through [`service`].
//!
//! # Cargo features
//!
//! - `node` (default): builds the `orbit-node` binary, a small node for tests and for
//!   trying a cluster by hand, with log output through `tracing-subscriber`. The library
//!   itself only emits `tracing` events; turn the feature off (`default-features =
//!   false`) to keep `tracing-subscriber` out of your build.
#![warn(missing_docs)]

// The layer order is in "Layers" above (rustfmt sorts these); `scripts/layers` checks it.
mod busy_wait;
mod codec;
pub mod connection;
pub mod control;
pub mod convert;
pub mod cookie;
mod dispatch;
pub mod epmd;
mod error;
pub mod fragments;
mod gen_call;
mod global;
pub mod handshake;
mod mesh;
pub mod monitor;
mod net_kernel;
pub mod node;
mod peers;
mod read_batch;
mod rex_nodes;
mod router;
mod serve;
pub mod service;
pub mod spawn;
pub mod tls;

use std::time::Duration;

use orbit::Pid;

use crate::connection::FrameError;
use serde::Serialize;

pub use busy_wait::{spin_before_park, SPIN};
pub use codec::remote;
pub use cookie::CookieSource;
pub use error::DistError;
pub use gen_call::{
    call, cast, remote_server, serve_gen_server, serve_gen_server_with, ServeOptions,
    SERVED_CALL_TIMEOUT,
};
pub use monitor::{MonitorOptions, NodeChange, NodeDownReason, NodeType};
pub use node::{Node, NodeEvent, Options, Ping};
/// Remote calls fail with the same error as local ones (re-exported for convenience).
pub use orbit::CallError;
/// Where a message or call goes: the runtime's own [`orbit::Dest`] (a remote pid or
/// `("name", "node@host")` for another node).
pub use orbit::Dest;
pub use router::{DistRouter, Etf};
pub use serve::{serve, serve_with, unserve, Target};
pub use service::{Service, ServiceError};
pub use tls::TlsOptions;

/// What a distributed application uses, in one import: `use orbit_dist::prelude::*;`
/// is [`orbit::prelude`] plus the node ([`Node`], its [`Options`]) and
/// [`remote_server`], which serves a GenServer type to other nodes and lets this node
/// call theirs.
pub mod prelude {
    pub use crate::{remote_server, Node, Options};
    pub use orbit::prelude::*;
}

/// Sends `msg`, encoded with serde, to `pid` on another node (connecting first when
/// needed; the message waits for the handshake). For a local pid the message is decoded
/// back as the process declared with [`serve`], else delivered as a [`orbit_term::Term`].
/// `T` may borrow (it is encoded before this returns), so nothing is registered for
/// [`orbit::send`]; see [`remote`].
pub fn send<T: Serialize + ?Sized>(pid: Pid, msg: &T) -> Result<(), orbit::SendError> {
    if pid.is_local() {
        let bytes =
            orbit_term::to_vec(msg).map_err(|e| orbit::SendError::NotEncodable(e.to_string()))?;
        return serve::deliver_local(pid, &bytes);
    }
    let conn = conn_or_error(&pid.node())?;
    Ok(conn.send_with(orbit::self_pid(), pid, |o| {
        orbit_term::to_vec_into(msg, o).map_err(|e| FrameError::Encode(e.to_string()))
    })?)
}

/// Sends `msg`, encoded with serde, to the process registered as `name` on `node`
/// (what `orbit::send((name, node), msg)` does for a registered type; `T` may borrow).
pub fn send_named<T: Serialize + ?Sized>(
    node: &str,
    name: &str,
    msg: &T,
) -> Result<(), orbit::SendError> {
    let conn = conn_or_error(node)?;
    let from = orbit::self_pid().unwrap_or_else(peers::system_pid);
    Ok(conn.reg_send_with(from, name, |o| {
        orbit_term::to_vec_into(msg, o).map_err(|e| FrameError::Encode(e.to_string()))
    })?)
}

/// The connection to `node`; `NotDistributed` when no node runs here, else
/// `NoConnection` naming it.
fn conn_or_error(node: &str) -> Result<std::sync::Arc<connection::Conn>, orbit::SendError> {
    peers::conn_for(node).ok_or_else(|| match Node::current() {
        None => orbit::SendError::NotDistributed,
        Some(_) => orbit::SendError::NoConnection {
            node: node.to_string(),
        },
    })
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
    let Some(c) = peers::conn_for(node) else {
        return false;
    };
    matches!(tokio::time::timeout(timeout, c.wait_up()).await, Ok(Ok(())))
}

/// The wire form of a pid (serializable: put it in a message to another node).
pub fn to_wire(pid: Pid) -> orbit_term::Pid {
    peers::pid_to_wire(pid)
}

/// The Orbit pid for a pid received in a message.
pub fn from_wire(pid: &orbit_term::Pid) -> Pid {
    convert::pid_from_wire(pid)
}
