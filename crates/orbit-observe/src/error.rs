//! Why observing failed: each error says what to do about it.

/// An error starting or serving the dashboard and the metrics exporter.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// Another `metrics` recorder is installed in this program.
    #[error(
        "another metrics recorder is installed already; orbit-observe needs its Prometheus \
         recorder to be the global one: install it before anything else sets a recorder, or \
         render your own recorder instead of using orbit-observe's /metrics"
    )]
    RecorderTaken,
    /// The Prometheus recorder could not be built.
    #[error("building the Prometheus recorder failed: {0}")]
    Recorder(String),
    /// The dashboard was asked to listen beyond loopback without a token.
    #[error(
        "refusing to serve the dashboard on {0} without a token: a non-loopback address \
         exposes process control (kill) to the network; pass a token (--token / \
         ObserveOptions::token) or bind 127.0.0.1"
    )]
    TokenRequired(std::net::SocketAddr),
    /// The token is too short to resist guessing.
    #[error("the dashboard token must have at least 16 characters (got {0}); use a random one")]
    WeakToken(usize),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}; pick a free port or another address")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No tokio runtime runs the caller.
    #[error("orbit-observe must be started from inside a tokio runtime")]
    NoRuntime,
}
