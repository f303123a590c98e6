//! The seam between the local runtime and distribution.
//!
//! Sending to, linking to, monitoring or calling a process of another node (a remote
//! pid or a `{name, node}` [`Dest`]) goes through the [`Router`] that `orbit-dist`
//! installs when a node starts. Before that, such operations fail with
//! [`Error::NotDistributed`] / [`SendError::NotDistributed`], which say how to start a
//! node.
//!
//! Messages and requests arrive type-erased ([`Payload`]: the value and its Rust type's
//! name); the router decides how to encode them (`orbit-dist` keeps a registry of the
//! serde-encodable types and refuses others with [`SendError::NotEncodable`] naming the
//! type). Local sends never reach this module.

use std::any::{Any, TypeId};
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, SendError};
use crate::exit::ExitReason;
use crate::gen_server::CallError;
use crate::pid::{Pid, Ref};
use crate::registry::Dest;

/// A message or request for another node: the value, type-erased, and its type's name
/// (for errors that say which type could not be encoded).
pub struct Payload {
    /// The value.
    pub value: Box<dyn Any + Send>,
    /// [`std::any::type_name`] of the value's type.
    pub type_name: &'static str,
}

impl Payload {
    /// Wraps `value`.
    pub fn new<M: Any + Send>(value: M) -> Payload {
        Payload {
            value: Box::new(value),
            type_name: std::any::type_name::<M>(),
        }
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({})", self.type_name)
    }
}

/// The type a remote call's reply must decode into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyType {
    /// Its `TypeId`.
    pub id: TypeId,
    /// Its name ([`std::any::type_name`]).
    pub name: &'static str,
}

impl ReplyType {
    /// The reply type `R`.
    pub fn of<R: Any>() -> ReplyType {
        ReplyType {
            id: TypeId::of::<R>(),
            name: std::any::type_name::<R>(),
        }
    }
}

/// A remote call's outcome: the reply (of the requested [`ReplyType`]) or why not.
pub type CallFuture = Pin<Box<dyn Future<Output = Result<Box<dyn Any + Send>, CallError>> + Send>>;

/// What distribution provides to the runtime for processes of other nodes.
pub trait Router: Send + Sync + 'static {
    /// Sends a message to a remote process.
    fn send(&self, from: Option<Pid>, to: Pid, msg: Payload) -> Result<(), SendError>;
    /// Sends a message to `name` registered on `node`.
    fn send_named(
        &self,
        from: Option<Pid>,
        node: &str,
        name: &str,
        msg: Payload,
    ) -> Result<(), SendError>;
    /// Calls the GenServer at `to` (a remote pid or [`Dest::Remote`]) with `request`;
    /// the reply is decoded into `reply` and returned boxed.
    fn call(&self, to: Dest, request: Payload, reply: ReplyType, timeout: Duration) -> CallFuture;
    /// Casts `request` to the GenServer at `to` (a remote pid or [`Dest::Remote`]).
    fn cast(&self, to: Dest, request: Payload) -> Result<(), CallError>;
    /// Creates the remote half of a link.
    fn link(&self, from: Pid, to: Pid) -> Result<(), Error>;
    /// Removes the remote half of a link.
    fn unlink(&self, from: Pid, to: Pid) -> Result<(), Error>;
    /// Sends an exit signal (`link` marks one travelling along a link).
    fn exit(&self, from: Pid, to: Pid, reason: ExitReason, link: bool) -> Result<(), Error>;
    /// Starts monitoring remote `target` on behalf of local `watcher`.
    fn monitor(&self, watcher: Pid, target: Pid, r: Ref) -> Result<(), Error>;
    /// Stops a monitor.
    fn demonitor(&self, watcher: Pid, target: Pid, r: Ref) -> Result<(), Error>;
    /// Tells remote `watcher` that local `pid`, which it monitors, exited.
    fn down(&self, pid: Pid, watcher: Pid, r: Ref, reason: ExitReason) -> Result<(), Error>;
}

static ROUTER: OnceLock<Box<dyn Router>> = OnceLock::new();

/// Installs the router for remote pids. Only the first call takes effect; later calls
/// return an error.
pub fn install(r: Box<dyn Router>) -> Result<(), Error> {
    ROUTER.set(r).map_err(|_| Error::RouterInstalled)
}

pub(crate) fn get() -> Result<&'static dyn Router, Error> {
    ROUTER.get().map(|b| &**b).ok_or(Error::NotDistributed)
}

/// Calls the GenServer at remote `to` through the router, the reply typed `R`.
pub(crate) async fn call<Req: Any + Send, R: Any>(
    to: Dest,
    request: Req,
    timeout: Duration,
) -> Result<R, CallError> {
    let node = to.remote_node().map(|n| n.to_string()).unwrap_or_default();
    let router = get().map_err(|_| CallError::NoConnection { node })?;
    let reply = router
        .call(to, Payload::new(request), ReplyType::of::<R>(), timeout)
        .await?;
    reply
        .downcast::<R>()
        .map(|r| *r)
        .map_err(|_| CallError::Decode {
            type_name: std::any::type_name::<R>(),
            reason: "the router returned a reply of another type".into(),
        })
}
