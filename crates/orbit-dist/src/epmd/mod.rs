//! EPMD, the Erlang Port Mapper Daemon (TCP port 4369): maps node names to ports.
//!
//! [`client`] speaks to whichever epmd listens (a real one, or another Orbit node's
//! embedded one); [`server`] is the embedded daemon a node starts when nothing listens,
//! so a node runs with no external `epmd`. Requests are `[Len:16][Req]`; replies carry
//! no length. A node stays registered while its ALIVE2 connection stays open.

pub mod client;
pub mod server;

/// Pending connections a listener of this crate queues (its `listen` backlog): the
/// embedded epmd and a node's distribution port. tokio's `TcpListener::bind` queues
/// 128; when nodes connect in a burst (32 nodes meshing: ~500 epmd lookups at once) the
/// kernel drops the SYNs past that, and each dropped client waits 1 s to retry.
pub(crate) const LISTEN_BACKLOG: u32 = 1024;

/// Listens on `0.0.0.0:port` (`SO_REUSEADDR` as `std` sets it) with
/// [`LISTEN_BACKLOG`].
pub(crate) fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    s.bind(std::net::SocketAddr::from(([0, 0, 0, 0], port)))?;
    s.listen(LISTEN_BACKLOG)
}

/// The port epmd listens on: `ERL_EPMD_PORT` when set, else 4369.
pub fn port() -> u16 {
    std::env::var("ERL_EPMD_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4369)
}

pub(crate) const ALIVE2_REQ: u8 = 120;
pub(crate) const ALIVE2_X_RESP: u8 = 118;
pub(crate) const ALIVE2_RESP: u8 = 121;
pub(crate) const PORT_PLEASE2_REQ: u8 = 122;
pub(crate) const PORT2_RESP: u8 = 119;
pub(crate) const NAMES_REQ: u8 = 110;

/// A node type as epmd records it.
pub const NODE_TYPE_NORMAL: u8 = 77;
/// A hidden node.
pub const NODE_TYPE_HIDDEN: u8 = 72;
