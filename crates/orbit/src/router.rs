//! The seam between the local runtime and distribution.
//!
//! Sending to, linking to or monitoring a pid of another node goes through the
//! [`Router`] that `orbit-dist` installs when a node starts. Before that, such calls fail
//! with [`Error::NotDistributed`], which says how to start a node.

use std::any::Any;
use std::sync::OnceLock;

use crate::error::{Error, SendError};
use crate::exit::ExitReason;
use crate::pid::{Pid, Ref};

/// What distribution provides to the runtime for pids of other nodes.
///
/// Messages arrive type-erased: the router decides how to encode them (e.g. it accepts
/// values that carry their own ETF encoding and refuses others with
/// [`SendError::NotEncodable`]).
pub trait Router: Send + Sync + 'static {
    /// Sends a message to a remote process.
    fn send(&self, from: Option<Pid>, to: Pid, msg: Box<dyn Any + Send>) -> Result<(), SendError>;
    /// Sends a message to `name` registered on `node`.
    fn send_named(
        &self,
        from: Option<Pid>,
        node: &str,
        name: &str,
        msg: Box<dyn Any + Send>,
    ) -> Result<(), SendError>;
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
