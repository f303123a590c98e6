//! Errors of distribution: starting a node, connecting, handshaking. Calls to
//! GenServers on other nodes fail with [`orbit::CallError`], the type local calls use.

use std::io;

/// What went wrong in distribution, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A socket operation failed.
    #[error("network error while {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The node name is not `name@host` (or a bare short name).
    #[error(
        "bad node name {0:?}: use name@host (long: name@127.0.0.1 or name@fqdn; short: name@host)"
    )]
    BadName(String),
    /// A long-name node and a short-name node do not connect (as in Erlang).
    #[error(
        "cannot connect to {node}: this node has {ours} names, and nodes with long names \
         (-name: a host with a dot or an IP address) and short names (-sname: a host \
         without a dot) do not connect to each other; give every node of the cluster the \
         same kind of name"
    )]
    NameKind {
        /// The peer.
        node: String,
        /// This node's kind: "long" or "short".
        ours: &'static str,
    },
    /// A node is already running in this OS process.
    #[error("a node is already running in this process ({0}); one node per process")]
    AlreadyStarted(String),
    /// No node is running in this OS process.
    #[error("this process is not a distributed node: call Node::start first")]
    NotStarted,
    /// The cookie could not be read or created, or is unsafe.
    #[error("cookie: {0}")]
    Cookie(String),
    /// The TLS configuration is unusable (certificate, key, CA roots).
    #[error("TLS distribution: {0}")]
    Tls(String),
    /// EPMD refused or failed a request.
    #[error("epmd: {0}")]
    Epmd(String),
    /// The handshake with a peer failed.
    #[error("handshake with {peer}: {reason}")]
    Handshake {
        /// The peer (name if known, else address).
        peer: String,
        /// Why it failed.
        reason: String,
    },
    /// The peer sent bytes that do not follow the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The node is not connected (and could not be connected).
    #[error("not connected to {0}")]
    NotConnected(String),
    /// The connection to a node failed or went down.
    #[error(
        "the connection to {node} is down ({reason}): check that the node runs, is \
         registered with epmd, and has this node's cookie; then connect again"
    )]
    ConnectionDown {
        /// The peer.
        node: String,
        /// Why the connection ended or failed.
        reason: String,
    },
}

impl DistError {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(io::Error) -> DistError {
        move |source| DistError::Io { what, source }
    }

    pub(crate) fn handshake(peer: impl Into<String>, reason: impl Into<String>) -> DistError {
        DistError::Handshake {
            peer: peer.into(),
            reason: reason.into(),
        }
    }
}
