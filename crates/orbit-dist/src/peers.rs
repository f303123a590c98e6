//! The started node's identity and its table of connections (below delivery).
//!
//! [`crate::node`] fills this in when the node starts; everything between the wire and
//! the node API (delivery, routing, services) reads it from here: the node's name and
//! creation, its system pid, the runtime its tasks run on, and the connection to a peer
//! ([`conn_for`], which asks the node layer to dial a peer it has no connection to).
//! Node events (`nodeup`/`nodedown`) are fanned out to subscribers from here
//! ([`emit`]), so that a lower layer never calls the node layer directly.
//!
//! Contract: one node per OS process ([`NODE`] is set once); every function here
//! answers "no node" (`None`, [`Pid::NONE`]) before the node started, never panics.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orbit::Pid;
use parking_lot::Mutex;

use crate::connection::Conn;
use crate::convert::LocalId;
use crate::epmd;
use crate::handshake;
use crate::monitor::{Change, Subscriber};

/// The node's state, shared by every layer above the wire.
pub(crate) struct Inner {
    pub id: LocalId,
    pub hs: handshake::Local,
    pub hidden: bool,
    /// Takes part in the transitive mesh (`connect_all`; false for a hidden node).
    pub connect_all: bool,
    pub tick: Duration,
    pub epmd_port: u16,
    pub port: u16,
    pub max_frame: usize,
    pub system: Pid,
    /// Long names (`-name`) rather than short ones (`-sname`).
    pub long_names: bool,
    /// TLS distribution, when configured.
    pub tls: Option<crate::tls::Tls>,
    /// Per-node cookies (`erlang:set_cookie(Node, Cookie)`).
    pub cookies: Mutex<HashMap<String, String>>,
    pub rt: tokio::runtime::Handle,
    pub conns: Mutex<HashMap<Arc<str>, Arc<Conn>>>,
    /// Node event subscribers; [`emit`] sends to each the events it asked for.
    pub subs: Mutex<Vec<Subscriber>>,
    pub _registration: Mutex<Option<epmd::client::Registration>>,
    /// Starts the handshake of a new outgoing connection (the node layer's dialer).
    pub dial: fn(&'static Arc<Inner>, Arc<Conn>),
}

impl Inner {
    /// The cookie for `node`: its own (`Node::set_cookie`), else this node's.
    pub fn cookie_for(&self, node: &str) -> String {
        self.cookies
            .lock()
            .get(node)
            .cloned()
            .unwrap_or_else(|| self.hs.cookie.clone())
    }
}

/// The started node.
pub(crate) static NODE: OnceLock<Arc<Inner>> = OnceLock::new();

/// The started node, if any.
pub(crate) fn get() -> Option<&'static Arc<Inner>> {
    NODE.get()
}

/// Spawns a task on the node's runtime (callable from the connection threads too).
pub(crate) fn spawn<F>(fut: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match NODE.get() {
        Some(n) => {
            n.rt.spawn(fut);
        }
        None => {
            tokio::spawn(fut);
        }
    }
}

/// The pid that stands for the node's system services (`Pid::NONE` before start).
pub(crate) fn system_pid() -> Pid {
    NODE.get().map(|n| n.system).unwrap_or(Pid::NONE)
}

/// Largest frame accepted from a peer.
pub(crate) fn max_frame() -> usize {
    NODE.get().map(|n| n.max_frame).unwrap_or(128 << 20)
}

/// The connection to `node`, if one exists (up or being set up).
pub(crate) fn connection(node: &str) -> Option<Arc<Conn>> {
    NODE.get()?.conns.lock().get(node).cloned()
}

/// Connected nodes, visible or hidden ones, sorted.
pub(crate) fn connected(visible: bool) -> Vec<String> {
    let Some(n) = NODE.get() else {
        return Vec::new();
    };
    let mut v: Vec<String> = n
        .conns
        .lock()
        .values()
        .filter(|c| c.phase() == crate::connection::Phase::Up && c.is_visible() == visible)
        .map(|c| c.peer.to_string())
        .collect();
    v.sort();
    v
}

/// Reports a node event to every subscriber; dropped subscribers are forgotten.
/// Called with the connection table locked, so that events of one peer keep their order.
pub(crate) fn emit(inner: &Inner, ch: &Change) {
    inner.subs.lock().retain(|s| (s.send)(ch));
}

/// The connection to `node`, starting one when there is none.
pub(crate) fn conn_for(node: &str) -> Option<Arc<Conn>> {
    thread_local! {
        // The connection this thread used last: senders in a loop skip the table.
        static LAST: std::cell::RefCell<Option<Arc<Conn>>> = const { std::cell::RefCell::new(None) };
    }
    let hit = LAST.with(|l| {
        l.borrow()
            .as_ref()
            .filter(|c| &*c.peer == node && !c.is_closed())
            .cloned()
    });
    if hit.is_some() {
        return hit;
    }
    let c = conn_for_slow(node)?;
    LAST.with(|l| *l.borrow_mut() = Some(c.clone()));
    Some(c)
}

fn conn_for_slow(node: &str) -> Option<Arc<Conn>> {
    let inner = NODE.get()?;
    if node == &*inner.id.name {
        return None;
    }
    let mut conns = inner.conns.lock();
    if let Some(c) = conns.get(node) {
        return Some(c.clone());
    }
    if !valid_name(node) {
        return None;
    }
    let c = Conn::new(node, inner.id.clone());
    conns.insert(Arc::from(node), c.clone());
    drop(conns);
    (inner.dial)(inner, c.clone());
    Some(c)
}

/// `alive@host` with a valid alive part and a non-empty host.
pub(crate) fn valid_name(node: &str) -> bool {
    let Some((alive, host)) = node.split_once('@') else {
        return false;
    };
    !alive.is_empty()
        && alive.len() <= 200
        && alive
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !host.is_empty()
        && !host.contains('@')
}

/// The wire form of a local or remote pid, with this node's name and creation once it
/// has started (`crate::to_wire`'s body; here so lower layers than the crate root can use it).
pub(crate) fn pid_to_wire(pid: orbit::Pid) -> orbit_term::Pid {
    match get() {
        Some(n) => crate::convert::pid_to_wire(pid, &n.id),
        None => crate::convert::pid_to_wire(
            pid,
            &crate::convert::LocalId {
                name: orbit::pid::local_node(),
                creation: 0,
            },
        ),
    }
}
