//! Why a GenServer failed to start ([`StartError`]) or a call failed ([`CallError`]), for
//! local servers and, through `orbit_dist`, for servers on other nodes.

use crate::error::Error;
use crate::exit::ExitReason;
use crate::pid::Pid;

/// Why `start` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// `init` returned `Ignore`.
    #[error("init returned ignore")]
    Ignored,
    /// `init` stopped, panicked, or the process was killed during init.
    #[error("init failed: {0}")]
    Init(ExitReason),
    /// The name is registered to a running process.
    #[error("already started as {0}")]
    AlreadyStarted(Pid),
    /// The process could not be spawned.
    #[error(transparent)]
    Spawn(#[from] Error),
}

/// Why a call failed: a call to a local server, or (through `orbit_dist::call`) to a
/// GenServer on another node, BEAM or Orbit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server was not alive when called (or the name not registered on its node).
    #[error("noproc: the server is not alive")]
    NoProc,
    /// No reply in time; a reply arriving later is dropped.
    #[error("the call timed out; the server may be overloaded (check its message_queue_len)")]
    Timeout,
    /// The server exited before replying; for a server on another node, its exit
    /// reason exactly as that node sent it.
    #[error("the server exited during the call: {0}")]
    Exit(ExitReason),
    /// The server's node is not connected, could not be connected, or the connection
    /// was lost during the call.
    #[error(
        "no connection to node {node}: check that it runs, that the cookie matches, and \
         that `Node::connect` succeeds"
    )]
    NoConnection {
        /// The node the call went to.
        node: String,
    },
    /// The request could not be encoded for the wire (`type_name` is its Rust type).
    #[error("the request of type {type_name} does not encode as a term: {reason}")]
    Encode {
        /// The request's type.
        type_name: &'static str,
        /// What the encoder said.
        reason: String,
    },
    /// The reply arrived but does not decode into the expected type.
    #[error("the reply does not decode into {type_name}: {reason}")]
    Decode {
        /// The expected reply type.
        type_name: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// A server called itself, which would wait forever.
    #[error("a GenServer called itself; that would deadlock")]
    CallingSelf,
    /// The server dropped the call's reply slot without answering and kept running
    /// (`NoReply` without keeping the `ReplyTo`, or a deferred `ReplyTo` dropped): no
    /// reply will ever come. A bug in the server's handler.
    #[error("the server dropped the call without replying (NoReply and the ReplyTo was not kept, or the deferred ReplyTo was dropped)")]
    NoReply,
    /// No server is registered under the name (or it is not of this type).
    #[error("no GenServer of this type is registered as {0:?}")]
    NotRegistered(String),
    /// A call to a server on another node failed there: `error` is what a local call
    /// would have given (`NoProc`, `Timeout`, `Exit(reason)`, ...), `node` says where.
    /// Match [`CallError::cause`] to handle local and remote failures alike.
    #[error("on node {node}: {error}")]
    Remote {
        /// The server's node.
        node: String,
        /// What failed there.
        error: Box<CallError>,
    },
    /// The process called on another Orbit node is not served to other nodes: it runs,
    /// but nothing there decodes calls for it. Fix: call
    /// `orbit_dist::remote_server::<YourServer>()` once on that node.
    #[error(
        "{server} on node {node} is not served to other nodes: call \
         orbit_dist::remote_server::<YourServer>() once on that node"
    )]
    NotServed {
        /// The server's node.
        node: String,
        /// The server (its registered name, else its pid).
        server: String,
    },
}

impl CallError {
    /// What failed, wherever it failed: the inner error of [`CallError::Remote`],
    /// otherwise `self`. `matches!(e.cause(), CallError::NoProc)` holds for a dead
    /// server on this node or another.
    pub fn cause(&self) -> &CallError {
        match self {
            CallError::Remote { error, .. } => error.cause(),
            e => e,
        }
    }

    /// The node a remote call failed on or could not reach (`None` for local calls).
    pub fn node(&self) -> Option<&str> {
        match self {
            CallError::Remote { node, .. }
            | CallError::NotServed { node, .. }
            | CallError::NoConnection { node } => Some(node),
            _ => None,
        }
    }

    /// `error` as having happened on `node`.
    pub fn on_node(node: impl Into<String>, error: CallError) -> CallError {
        CallError::Remote {
            node: node.into(),
            error: Box::new(error),
        }
    }
}
