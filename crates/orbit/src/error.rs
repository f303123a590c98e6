//! Errors of the runtime: each says what went wrong and what to do about it.

use std::sync::Arc;

use crate::exit::ExitReason;
use crate::pid::Pid;

/// Errors of process operations (spawning, linking, naming, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Called outside a tokio runtime.
    #[error("no tokio runtime: call this from within a tokio runtime (e.g. under #[tokio::main])")]
    NoRuntime,
    /// The process table is full (2^26 processes alive at once).
    #[error("too many processes: the process table is full (67,108,864 alive at once); let some exit first")]
    TooManyProcesses,
    /// A process-only operation (link, monitor, spawn_link, ...) called outside a process.
    #[error("not called from a process: use orbit::run_in_process or call it from a process body")]
    NotInProcess,
    /// The process does not exist (it exited, or never did).
    #[error("no such process {0} (it has exited)")]
    NoProc(Pid),
    /// The name is registered to another process.
    #[error("the name {name:?} is already registered to {pid}; unregister it first or pick another name")]
    NameTaken {
        /// The name.
        name: Arc<str>,
        /// Its current holder.
        pid: Pid,
    },
    /// The process already has a registered name.
    #[error("{pid} is already registered as {name:?}; a process has at most one name")]
    AlreadyNamed {
        /// The process.
        pid: Pid,
        /// Its name.
        name: Arc<str>,
    },
    /// No process is registered under the name.
    #[error("no process is registered as {0:?}")]
    NotRegistered(Arc<str>),
    /// The pid belongs to another node and distribution is not running.
    #[error("the pid is on another node and this node is not distributed: start a node with orbit-dist first")]
    NotDistributed,
    /// A router was already installed.
    #[error("a distribution router is already installed")]
    RouterInstalled,
    /// A blocking task failed.
    #[error("blocking task failed: {0}")]
    Blocking(String),
    /// A process exited with this reason while the operation waited on it.
    #[error("process exited: {0}")]
    Exit(ExitReason),
    /// The operation did not finish in time.
    #[error("timed out")]
    Timeout,
}

/// Why a message sent by pid or name was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The process has exited (Erlang drops such messages silently; ignore the error
    /// to do the same).
    #[error("{0} is not alive; the message was dropped")]
    NoProc(Pid),
    /// The process does not accept messages of this type.
    #[error("{0} does not accept messages of this type; send the type its mailbox holds")]
    WrongType(Pid),
    /// No process is registered under the name.
    #[error("no process is registered as {0:?}")]
    NotRegistered(Arc<str>),
    /// The pid belongs to another node and distribution is not running.
    #[error("the pid is on another node and this node is not distributed: start a node with orbit-dist first")]
    NotDistributed,
    /// The message cannot be encoded for another node; the text names the Rust type
    /// and the fix (usually: register it with `orbit_dist::remote::<T>()`).
    #[error("the message cannot be sent to another node: {0}")]
    NotEncodable(String),
    /// The destination's node is not connected and could not be connected.
    #[error(
        "cannot reach node {node}: check the node name, that it runs with this node's \
         cookie, and that this node is started"
    )]
    NoConnection {
        /// The node the message was for.
        node: String,
    },
    /// Distribution failed to deliver for another reason (the text says which node and why).
    #[error("remote send failed: {0}")]
    Remote(String),
}

/// A typed send to a process that has exited; gives the message back.
#[derive(Debug, thiserror::Error)]
#[error("{pid} is not alive; the message was not delivered")]
pub struct Undelivered<M> {
    /// The dead process.
    pub pid: Pid,
    /// The message, returned to the sender.
    pub msg: M,
}
