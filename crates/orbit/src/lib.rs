//! Orbit: the Elixir/OTP scaling toolkit, in Rust.
//!
//! Processes with mailboxes, links and monitors; GenServer, Agent, Task and supervisors;
//! and the introspection that finds the process that is your bottleneck. Processes are
//! tokio tasks; run Orbit inside a tokio runtime.
//!
//! Every behaviour (GenServers, supervisors, `Task.Supervisor`, pools, caches, GenStage
//! stages, ETS table owners) has a child spec, so a whole program is one supervision
//! tree, started from `main` with [`Application`].
//!
//! ```
//! use orbit::{GenServer, CallReply, ServerContext};
//!
//! struct Counter(u64);
//!
//! impl GenServer for Counter {
//!     type Call = ();
//!     type Reply = u64;
//!     type Cast = u64;
//!     type Info = ();
//!     type Continue = ();
//!
//!     async fn handle_call(&mut self, _: (), _from: &mut orbit::ReplyTo<u64>, _ctx: &mut ServerContext<Self>)
//!         -> CallReply<u64, ()> {
//!         CallReply::Reply(self.0)
//!     }
//!     async fn handle_cast(&mut self, n: u64, _ctx: &mut ServerContext<Self>) -> orbit::Next<()> {
//!         self.0 += n;
//!         orbit::Next::NoReply
//!     }
//! }
//!
//! # #[tokio::main] async fn main() {
//! let counter = orbit::gen_server::start(Counter(0)).await.unwrap();
//! counter.cast(2);
//! assert_eq!(counter.call(()).await.unwrap(), 2);
//! # }
//! ```
//!
//! # Cargo features
//!
//! All on by default; the library itself needs only tokio's `rt`, `sync` and `time`
//! (`default-features = false` compiles it with just those).
//!
//! - `rt-multi-thread`, `macros`: tokio's multi-threaded runtime and macros, for
//!   applications' `#[tokio::main]`. Orbit runs on either runtime flavour.
//! - `signal`: [`Application::stop_on_signals`] (ctrl-c, SIGTERM); without it, `run`
//!   with `stop_on_signals(true)` fails with [`ApplicationError::Signals`].
#![warn(missing_docs)]

pub mod agent;
pub mod application;
mod attachment;
pub mod cache;
pub mod clock;
pub mod deadline;
pub mod dynamic_supervisor;
pub mod error;
pub mod ets;
pub mod exit;
pub mod gen_server;
mod hash;
pub mod info;
mod mailbox;
pub mod pid;
pub mod pool;
pub mod process;
pub mod registry;
pub mod router;
pub mod server;
pub mod signal;
pub mod simple_server;
mod spin;
pub mod stage;
mod start;
pub mod supervisor;
mod sync;
mod table;
pub mod task;
pub mod task_supervisor;
pub mod telemetry;
pub mod timer;

use std::any::Any;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use agent::Agent;
pub use application::{AppHandle, Application, ApplicationError};
pub use clock::{set_counters, set_long_handler_threshold};
pub use dynamic_supervisor::{DynamicOptions, DynamicSupervisor, DynamicSupervisorRef};
pub use error::{Error, SendError, Undelivered};
pub use exit::ExitReason;
pub use gen_server::{
    CallError, CallReply, GenServer, Init, Next, ReplyTo, ServerContext, ServerRef, StartError,
};
pub use info::{process_info, top, ProcessInfo};
pub use pid::{Pid, Ref};
pub use pool::{Pool, PoolOptions, ResourcePool, ResourcePoolOptions};
pub use process::{
    blocking, exited_pid, run_in_process, self_pid, spawn, spawn_link, spawn_monitor, Context,
    Handle, Spawn,
};
pub use registry::whereis_dest as whereis;
pub use registry::{register, registered, send_named, unregister, Dest, Keys, Registry, Via};
pub use signal::{demonitor, exit, link, monitor, unlink, Down, Message};
pub use simple_server::{FnServer, SimpleServer};
pub use supervisor::{
    ChildInfo, ChildKind, ChildSpec, Counts, Restart, Shutdown, Strategy, Supervisor,
    SupervisorError, SupervisorOptions, SupervisorRef,
};
pub use table::{process_count, processes};
pub use task::{Task, TaskError};
pub use task_supervisor::{OnTimeout, StreamOptions, TaskSupervisor};
pub use timer::{cancel_timer, send_after, send_after_to, TimerRef};

/// What most applications use, in one import: `use orbit::prelude::*;`.
///
/// The process primitives ([`spawn`], [`send`], [`Context`], [`Message`], [`Pid`],
/// [`ExitReason`]), the behaviours ([`GenServer`], [`SimpleServer`], [`FnServer`],
/// [`gen_server`] for calls by name), the supervision tree ([`Application`],
/// [`ChildSpec`], [`Supervisor`], [`Strategy`]), pools, caches, tasks, [`Duration`](std::time::Duration)
/// for their timeouts, [`StreamExt`](futures::StreamExt) for
/// [`TaskSupervisor::async_stream`]'s results, and atoms ([`Atom`](orbit_term::Atom),
/// [`atom!`](orbit_term::atom!)) for requests an Elixir node writes as `:get`. Modules
/// keep the rest.
pub mod prelude {
    pub use crate::cache::{CacheOptions, ConCache, Ttl};
    pub use crate::gen_server;
    pub use crate::{
        send, spawn, spawn_link, Application, ChildSpec, Context, ExitReason, FnServer, GenServer,
        Message, Pid, Pool, PoolOptions, ResourcePool, SimpleServer, Strategy, StreamOptions,
        Supervisor, Task, TaskSupervisor,
    };
    pub use futures::StreamExt;
    pub use orbit_term::{atom, Atom};
    pub use std::time::Duration;
}

/// Sends `msg` to `to`: a pid, local or remote, a registered name, a name on another
/// node (`(name, node)`, Erlang's `{Name, Node}`) or a `via` name (see [`Dest`]; a local
/// name is resolved now, a remote one on its node).
///
/// The process must accept messages of type `M` (a GenServer accepts its `Info` type,
/// delivered to `handle_info`). Erlang drops a message to a dead pid silently; here the
/// error says so, and you may ignore it to match.
///
/// To another node, the message goes through distribution (`orbit-dist`), encoded with
/// serde: `M` must be a type distribution knows how to encode (common std types,
/// `orbit_term::Term`, and every type given to one of `orbit-dist`'s serde entry points
/// or registered with `orbit_dist::remote::<M>()`); any other type fails here, at the
/// call, with [`SendError::NotEncodable`] naming the type. Local sends never encode.
pub fn send<M: Any + Send>(to: impl Into<Dest>, msg: M) -> Result<(), SendError> {
    let pid = match to.into() {
        Dest::Pid(pid) => pid,
        Dest::Remote { name, node } => {
            return router::get()
                .map_err(|_| SendError::NotDistributed)?
                .send_named(self_pid(), &node, &name, router::Payload::new(msg))
        }
        named => named
            .whereis()
            .ok_or_else(|| SendError::NotRegistered(named.name().unwrap_or_default()))?,
    };
    send_pid(pid, msg)
}

#[inline]
fn send_pid<M: Any + Send>(pid: Pid, msg: M) -> Result<(), SendError> {
    if pid.is_local() {
        match table::lookup(pid) {
            Some(p) => p.send_any(Box::new(msg)),
            None => Err(SendError::NoProc(pid)),
        }
    } else {
        router::get().map_err(|_| SendError::NotDistributed)?.send(
            self_pid(),
            pid,
            router::Payload::new(msg),
        )
    }
}
