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

    /// Calls `f` with the name of the node the process lives on (as [`Pid::node`]),
    /// taking it from this thread's recent lookups when it is there, without the node
    /// table's lock (issue 17: every message to a remote pid names its node).
    pub fn with_node<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        let generation = GENERATION.load(Ordering::Acquire);
        let hit = RECENT.try_with(|r| {
            r.borrow()
                .0
                .iter()
                .flatten()
                .find_map(|(g, n, i)| (*g == generation && *i == self.node).then(|| n.clone()))
        });
        match hit {
            Ok(Some(name)) => f(&name),
            _ => f(&self.node()),
        }
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
    index: HashMap<Arc<str>, u32, crate::hash::FastState>,
}

/// Bumped whenever an index of the node table changes meaning (only [`set_local_node`]
/// renames an entry; new names only append), so [`RECENT`] entries of an older
/// generation are not trusted.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Entries in each thread's cache of recent node-name lookups.
const RECENT_LEN: usize = 4;

/// One cached lookup: the table's generation, the name, its index.
type Recent = Option<(u64, Arc<str>, u32)>;

thread_local! {
    /// Each thread's last few node names looked up and their indexes: every pid read
    /// from a connection names its node (usually one of two: the peer's or this
    /// node's), so most lookups are a compare here, with no lock and no hash (issue 17).
    static RECENT: std::cell::RefCell<([Recent; RECENT_LEN], usize)> =
        const { std::cell::RefCell::new(([const { None }; RECENT_LEN], 0)) };
}

fn nodes() -> &'static RwLock<NodeTable> {
    static NODES: OnceLock<RwLock<NodeTable>> = OnceLock::new();
    NODES.get_or_init(|| {
        let local: Arc<str> = Arc::from("nonode@nohost");
        RwLock::new(NodeTable {
            names: vec![local.clone()],
            index: {
                let mut index = HashMap::with_hasher(crate::hash::seeded());
                index.insert(local, LOCAL_NODE);
                index
            },
        })
    })
}

/// Index of a node name in the node table, adding it when new.
pub(crate) fn node_index(name: &str) -> u32 {
    let generation = GENERATION.load(Ordering::Acquire);
    let cached = RECENT.try_with(|r| {
        let r = r.borrow();
        r.0.iter().flatten().find_map(|(g, n, i)| {
            (*g == generation && n.as_bytes() == name.as_bytes()).then_some(*i)
        })
    });
    if let Ok(Some(i)) = cached {
        return i;
    }
    let (i, name) = node_index_slow(name);
    // A thread being torn down has no cache: the lookup above stands on its own.
    let _ = RECENT.try_with(|r| {
        let mut r = r.borrow_mut();
        let at = r.1 % RECENT_LEN;
        r.0[at] = Some((generation, name, i));
        r.1 = r.1.wrapping_add(1);
    });
    i
}

/// [`node_index`] through the shared table; also returns the table's copy of the name.
fn node_index_slow(name: &str) -> (u32, Arc<str>) {
    if let Some((n, &i)) = nodes().read().index.get_key_value(name) {
        return (i, n.clone());
    }
    let mut t = nodes().write();
    if let Some((n, &i)) = t.index.get_key_value(name) {
        return (i, n.clone());
    }
    let name: Arc<str> = Arc::from(name);
    let i = u32::try_from(t.names.len()).unwrap_or(u32::MAX);
    t.names.push(name.clone());
    t.index.insert(name.clone(), i);
    (i, name)
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
    // Under the write lock: a lookup that saw the old generation cached the old
    // meaning; every later one sees the new generation and misses those entries.
    GENERATION.fetch_add(1, Ordering::AcqRel);
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
