//! Process identifiers: [`Pid`], node names, and [`Ref`] (unique references).
//!
//! A `Pid` carries the same four fields as an Erlang pid — node, id, serial, creation — so
//! it crosses the distribution wire unchanged. The node is an index into a process-wide
//! table of node names (index 0 is this node), which keeps `Pid` at 16 bytes and `Copy`.
//! Local pids are allocated from one counter: the low 28 bits are the id, the next bits
//! the serial, as the BEAM splits them, so a pid is never reused within a run.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

/// Index of the local node in the node-name table.
pub(crate) const LOCAL_NODE: u32 = 0;

/// A process identifier, local or on another node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    node: u32,
    id: u32,
    serial: u32,
    creation: u32,
}

impl Pid {
    /// The pid used as the sender of signals that come from outside any process
    /// (`#PID<0.0.0>`, the BEAM's `init` slot).
    pub const NONE: Pid = Pid {
        node: LOCAL_NODE,
        id: 0,
        serial: 0,
        creation: 0,
    };

    /// The local pid of process-table slot `id` in its generation `serial`.
    pub(crate) fn local(id: u32, serial: u32) -> Pid {
        Pid {
            node: LOCAL_NODE,
            id,
            serial,
            creation: 0,
        }
    }

    /// A pid of a process on another node, as decoded from the wire.
    ///
    /// `node` is the node's full name (`name@host`). Distribution uses this to build
    /// the pids it receives; giving this node's own name returns a local pid.
    pub fn remote(node: &str, id: u32, serial: u32, creation: u32) -> Pid {
        let idx = node_index(node);
        Pid {
            node: idx,
            id,
            serial,
            creation: if idx == LOCAL_NODE { 0 } else { creation },
        }
    }

    /// True when the process lives on this node.
    pub fn is_local(&self) -> bool {
        self.node == LOCAL_NODE
    }

    /// The process number within its node (Erlang's `ID` field).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The serial (Erlang's `Serial` field).
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The node incarnation the pid belongs to (0 for local pids; distribution
    /// substitutes the node's creation when it encodes them).
    pub fn creation(&self) -> u32 {
        self.creation
    }

    /// Index of the pid's node in this process's node table (0 is the local node),
    /// the first number of `#PID<N.ID.SERIAL>`.
    pub fn node_index(&self) -> u32 {
        self.node
    }

    /// The name of the node the process lives on (`nonode@nohost` for local pids
    /// until distribution names this node).
    pub fn node(&self) -> Arc<str> {
        node_name(self.node)
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#PID<{}.{}.{}>", self.node, self.id, self.serial)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

struct NodeTable {
    names: Vec<Arc<str>>,
    /// Index of each name in `names`. Every pid from a peer names a node, so a lookup must
    /// not scan the table: with a scan, a peer sending pids of many distinct node names
    /// made each further lookup slower (quadratic time overall).
    index: HashMap<Arc<str>, u32>,
}

fn nodes() -> &'static RwLock<NodeTable> {
    static NODES: OnceLock<RwLock<NodeTable>> = OnceLock::new();
    NODES.get_or_init(|| {
        let local: Arc<str> = Arc::from("nonode@nohost");
        RwLock::new(NodeTable {
            names: vec![local.clone()],
            index: HashMap::from([(local, LOCAL_NODE)]),
        })
    })
}

/// Index of a node name in the node table, adding it when new.
pub(crate) fn node_index(name: &str) -> u32 {
    if let Some(&i) = nodes().read().index.get(name) {
        return i;
    }
    let mut t = nodes().write();
    if let Some(&i) = t.index.get(name) {
        return i;
    }
    let name: Arc<str> = Arc::from(name);
    let i = u32::try_from(t.names.len()).unwrap_or(u32::MAX);
    t.names.push(name.clone());
    t.index.insert(name, i);
    i
}

fn node_name(idx: u32) -> Arc<str> {
    let t = nodes().read();
    t.names
        .get(idx as usize)
        .cloned()
        .unwrap_or_else(|| Arc::from("unknown@unknown"))
}

/// The name of this node: `nonode@nohost` until distribution starts it under a name.
pub fn local_node() -> Arc<str> {
    node_name(LOCAL_NODE)
}

/// Names this node. Called by distribution when the node starts.
///
/// Pids built earlier stay valid: local pids always refer to node index 0.
pub fn set_local_node(name: &str) {
    let mut t = nodes().write();
    let name: Arc<str> = Arc::from(name);
    if let Some(old) = t.names.get_mut(LOCAL_NODE as usize) {
        let old = std::mem::replace(old, name.clone());
        if t.index.get(&old) == Some(&LOCAL_NODE) {
            t.index.remove(&old);
        }
    }
    // The local node wins over an entry of the same name made earlier, as before.
    t.index.insert(name, LOCAL_NODE);
}

/// A unique reference, like Erlang's `make_ref()`: used for monitors, timers and call tags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref(u64);

static NEXT_REF: AtomicU64 = AtomicU64::new(1);

impl Ref {
    /// A reference never returned before in this run.
    pub fn make() -> Ref {
        Ref(NEXT_REF.fetch_add(1, Ordering::Relaxed))
    }

    /// The reference's number, unique within this run.
    pub fn id(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Reference<0.{}>", self.0)
    }
}

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: every pid a peer sends names a node, and node names used to be found by
    /// scanning the table, so a peer naming many distinct nodes made lookups quadratic
    /// (these 100 000 names took minutes; with the index they take well under a second).
    #[test]
    fn many_distinct_node_names_intern_in_linear_time() {
        let started = std::time::Instant::now();
        let names: Vec<String> = (0..100_000).map(|i| format!("n{i}@hostile")).collect();
        let idx: Vec<u32> = names.iter().map(|n| node_index(n)).collect();
        for (n, i) in names.iter().zip(&idx) {
            assert_eq!(node_index(n), *i);
            assert_eq!(&*node_name(*i), n.as_str());
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "interning 100 000 node names took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn pids_are_unique_and_shown_like_elixir() {
        let a = Pid::local(7, 1);
        let b = Pid::local(7, 2);
        assert_ne!(a, b);
        assert!(a.is_local());
        assert_eq!(format!("{a}"), format!("#PID<0.{}.{}>", a.id(), a.serial()));
        assert_eq!(std::mem::size_of::<Pid>(), 16);
    }

    #[test]
    fn remote_pids_keep_their_node() {
        let p = Pid::remote("elixir@127.0.0.1", 112, 0, 3);
        assert!(!p.is_local());
        assert_eq!(&*p.node(), "elixir@127.0.0.1");
        assert_eq!(p.creation(), 3);
        assert!(format!("{p}").starts_with("#PID<"));
    }
}
