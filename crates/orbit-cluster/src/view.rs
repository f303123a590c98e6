//! The cluster view: which node sees which, whether the cluster is partitioned, and
//! what changed when.
//!
//! Erlang gives each node its own `nodes()` and nothing else: after a netsplit every
//! side believes it is the whole cluster. This module asks every node it can reach
//! for its `nodes()` and puts the answers side by side:
//!
//! - [`serve`] runs the view service on this node: a GenServer registered as
//!   [`SERVICE`] (`orbit_cluster_view`) answering `$gen_call` `view` with this node's
//!   visible nodes and its history of `nodeup`/`nodedown` changes of visible nodes
//!   (timestamped, kept from when `serve` was called, the last [`HISTORY_MAX`]);
//!   From Elixir: `GenServer.call({:orbit_cluster_view, node}, :view)` returns
//!   `%{node: "a@h", sees: ["b@h"], history: [%{at_ms: ms, observer: "a@h", node:
//!   "b@h", up: true, reason: ""}]}` (names as binaries; a `nodedown` reason is
//!   `net_kernel`'s `nodedown_reason` atom as text, e.g. `"net_tick_timeout"`);
//! - [`status`] queries a set of seed nodes and every node they see, each through the
//!   service when it runs there and through `rex` (`{call, erlang, nodes, [], user}`,
//!   which BEAM nodes and every Orbit node answer) otherwise;
//! - [`ClusterView::findings`] names what is wrong: an asymmetric pair (A sees B, B does
//!   not see A), a missing hop (A sees B, B sees C, A does not see C: in a fully meshed
//!   cluster that is a partition), and nodes named (seeds, or seen by a node) that
//!   could not be queried;
//! - [`Tracker`] turns successive views into a history of changes per observer, for
//!   nodes (BEAM ones) that keep no history themselves.
//!
//! Contract: querying never panics and never waits longer than the timeout given per
//! node; a node that does not answer is reported as unreachable, not as an error. The
//! observer should be a hidden node (as `orbit cluster status` is), so that it does not
//! appear in the views it takes nor join the mesh.
//!
//! Differences from OTP: OTP has no such service. The history is the service's own
//! (not `net_kernel`'s), so it starts when [`serve`] is called.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orbit::{CallReply, GenServer, ReplyTo, ServerContext};
use orbit_dist::{MonitorOptions, Node, NodeChange, NodeType};
use orbit_term::Term;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedReceiver;

/// The name the view service is registered under on every node that runs it.
pub const SERVICE: &str = "orbit_cluster_view";

/// How many changes the service keeps (the oldest are dropped first).
pub const HISTORY_MAX: usize = 1000;

/// Why the view service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// No distributed node runs in this process.
    #[error("no node is running in this process: start one with orbit_dist::Node::start first")]
    NotDistributed,
    /// The service process could not start (usually: the name is taken).
    #[error("the cluster view service could not start as {SERVICE}: {0} (is it already running?)")]
    Start(String),
}

/// One change a node observed in its connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// When, in milliseconds since the Unix epoch (the observer's clock).
    pub at_ms: u64,
    /// The node that observed the change.
    pub observer: String,
    /// The node that came up or went down.
    pub node: String,
    /// True for `nodeup`, false for `nodedown`.
    pub up: bool,
    /// Why the node went down (empty for `nodeup`).
    pub reason: String,
}

/// What the view service answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Report {
    node: String,
    sees: Vec<String>,
    history: Vec<Change>,
}

/// How a node's view was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Through the view service ([`SERVICE`]): `nodes()` and the node's history.
    Service,
    /// Through `rex` (`erlang:nodes()`): a BEAM node, or an Orbit node without the
    /// service; no history.
    Rex,
    /// The node did not answer.
    Unreachable,
}

/// One node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node.
    pub node: String,
    /// The visible nodes it is connected to, sorted (empty when unreachable).
    pub sees: Vec<String>,
    /// How the view was obtained.
    pub source: Source,
    /// The node's own history of changes (only through the service).
    pub history: Vec<Change>,
}

/// Something the view shows to be wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// `a` sees `b`, but `b` does not see `a` (both answered).
    Asymmetric {
        /// The node that sees.
        a: String,
        /// The node that does not see back.
        b: String,
    },
    /// `a` sees `b` and `b` sees `c`, but `a` does not see `c`: a partition in a
    /// fully meshed cluster (or a deliberately partial mesh).
    NotTransitive {
        /// The node missing a connection.
        a: String,
        /// The node both see.
        b: String,
        /// The node `a` does not see.
        c: String,
    },
    /// Named (a seed, or seen by a node) but it did not answer the observer.
    Unreachable {
        /// The node that did not answer.
        node: String,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Asymmetric { a, b } => write!(f, "{a} sees {b}, {b} does not see {a}"),
            Finding::NotTransitive { a, b, c } => {
                write!(f, "{a} sees {b} and {b} sees {c}, {a} does not see {c}")
            }
            Finding::Unreachable { node } => write!(f, "{node} did not answer"),
        }
    }
}

/// The views of every node reached, and what they show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// When the view was taken, in milliseconds since the Unix epoch.
    pub taken_at_ms: u64,
    /// One entry per node queried, sorted by name.
    pub nodes: Vec<NodeView>,
    /// What is wrong ([`ClusterView::findings`] at the time of taking).
    pub findings: Vec<Finding>,
}

impl ClusterView {
    /// Builds a view from per-node views (sorted, findings computed).
    pub fn from_nodes(taken_at_ms: u64, mut nodes: Vec<NodeView>) -> ClusterView {
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        for n in &mut nodes {
            n.sees.sort();
            n.sees.dedup();
        }
        let findings = analyse(&nodes);
        ClusterView {
            taken_at_ms,
            nodes,
            findings,
        }
    }

    /// The view of `node`, if it was queried.
    pub fn node(&self, node: &str) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.node == node)
    }

    /// True when the nodes do not all see each other: a finding of any kind.
    pub fn partitioned(&self) -> bool {
        !self.findings.is_empty()
    }

    /// A text table: one row per node, one column per node, `x` where the row's node
    /// sees the column's, then the findings.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let names: Vec<&str> = self.nodes.iter().map(|n| n.node.as_str()).collect();
        let w = names.iter().map(|n| n.len()).max().unwrap_or(4).max(4);
        let mut s = String::new();
        let _ = write!(s, "{:w$}  {:11}", "node", "via");
        for (i, _) in names.iter().enumerate() {
            let _ = write!(s, " {:>3}", i + 1);
        }
        s.push('\n');
        for (i, n) in self.nodes.iter().enumerate() {
            let via = match n.source {
                Source::Service => "service",
                Source::Rex => "rex",
                Source::Unreachable => "unreachable",
            };
            let _ = write!(s, "{:w$}  {via:11}", format!("{} {}", i + 1, n.node));
            for (j, other) in names.iter().enumerate() {
                let mark = if i == j {
                    "-"
                } else if n.sees.iter().any(|x| x == other) {
                    "x"
                } else if n.source == Source::Unreachable {
                    "?"
                } else {
                    "."
                };
                let _ = write!(s, " {mark:>3}");
            }
            s.push('\n');
        }
        if self.findings.is_empty() {
            s.push_str("no partition: every node sees every other\n");
        } else {
            s.push_str("PARTITION:\n");
            for f in &self.findings {
                let _ = writeln!(s, "  {f}");
            }
        }
        s
    }
}

fn analyse(nodes: &[NodeView]) -> Vec<Finding> {
    let answered: BTreeMap<&str, BTreeSet<&str>> = nodes
        .iter()
        .filter(|n| n.source != Source::Unreachable)
        .map(|n| (n.node.as_str(), n.sees.iter().map(String::as_str).collect()))
        .collect();
    let mut out = BTreeSet::new();
    for n in nodes.iter().filter(|n| n.source == Source::Unreachable) {
        out.insert(Finding::Unreachable {
            node: n.node.clone(),
        });
    }
    for (&a, sees) in &answered {
        for &b in sees {
            let Some(b_sees) = answered.get(b) else {
                continue;
            };
            if !b_sees.contains(a) {
                out.insert(Finding::Asymmetric {
                    a: a.into(),
                    b: b.into(),
                });
            }
            for &c in b_sees {
                if c != a && !sees.contains(c) && answered.contains_key(c) {
                    out.insert(Finding::NotTransitive {
                        a: a.into(),
                        b: b.into(),
                        c: c.into(),
                    });
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// This node's `nodeup`/`nodedown` events of visible nodes, and the history made of
/// them. The server drains the events still queued before it answers, so a node that
/// calls right after connecting finds its own `nodeup` (the node layer queues it before
/// it reads the peer's first frame).
struct Recorder {
    me: String,
    events: UnboundedReceiver<NodeChange>,
    history: VecDeque<Change>,
}

impl Recorder {
    /// Moves every queued event into the history; false once the node is gone.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self.events.poll_recv(cx) {
                Poll::Ready(Some(ev)) => self.record(ev),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn drain(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.record(ev);
        }
    }

    fn record(&mut self, ev: NodeChange) {
        if self.history.len() >= HISTORY_MAX {
            self.history.pop_front();
        }
        self.history.push_back(Change {
            at_ms: now_ms(),
            observer: self.me.clone(),
            node: ev.node,
            up: ev.up,
            reason: ev
                .reason
                .map(|r| r.as_atom().to_string())
                .unwrap_or_default(),
        });
    }
}

/// The view service: answers `view` with a [`Report`].
struct ViewServer {
    recorder: Arc<Mutex<Recorder>>,
}

impl GenServer for ViewServer {
    type Call = Term;
    type Reply = Report;
    type Cast = Term;
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _req: Term,
        _from: &mut ReplyTo<Report>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<Report, ()> {
        let node = Node::current();
        let mut r = self.recorder.lock();
        r.drain();
        CallReply::Reply(Report {
            node: node.map(|n| n.name()).unwrap_or_default(),
            sees: node.map(|n| n.list()).unwrap_or_default(),
            history: r.history.iter().cloned().collect(),
        })
    }

    async fn handle_cast(&mut self, _req: Term, _ctx: &mut ServerContext<Self>) -> orbit::Next<()> {
        orbit::Next::NoReply
    }
}

/// Starts the view service on this node, registered as [`SERVICE`], and begins
/// recording this node's `nodeup`/`nodedown` changes of visible nodes (hidden ones,
/// such as `orbit cluster status`, are left out as `net_kernel:monitor_nodes(true)`
/// leaves them out; a `nodedown` reason is OTP's `nodedown_reason` atom). Call it
/// once, after `Node::start`, from within the node's tokio runtime.
pub async fn serve() -> Result<(), ViewError> {
    let node = Node::current().ok_or(ViewError::NotDistributed)?;
    let recorder = Arc::new(Mutex::new(Recorder {
        me: node.name(),
        events: node.monitor_nodes_with(MonitorOptions {
            node_type: NodeType::Visible,
            nodedown_reason: true,
        }),
        history: VecDeque::new(),
    }));
    let server = orbit::gen_server::start_with(
        ViewServer {
            recorder: recorder.clone(),
        },
        orbit::gen_server::StartOptions {
            name: Some(SERVICE.into()),
            link: false,
            timeout: None,
        },
    )
    .await
    .map_err(|e| ViewError::Start(e.to_string()))?;
    orbit_dist::serve_gen_server::<ViewServer>(SERVICE);
    tokio::spawn(async move {
        std::future::poll_fn(|cx| {
            if !server.is_alive() {
                return Poll::Ready(());
            }
            recorder.lock().poll_drain(cx)
        })
        .await
    });
    Ok(())
}

/// Asks one node for its view: through the service, else through `rex`; each within
/// `timeout`.
pub async fn query(node: &str, timeout: Duration) -> NodeView {
    let dest = (SERVICE, node);
    match orbit_dist::call::<_, Report>(dest, &Term::atom("view"), timeout).await {
        Ok(r) => {
            return NodeView {
                node: node.into(),
                sees: r.sees,
                source: Source::Service,
                history: r.history,
            }
        }
        Err(e) => tracing::debug!(node, error = %e, "no view service, asking rex"),
    }
    let req = Term::tuple(vec![
        Term::atom("call"),
        Term::atom("erlang"),
        Term::atom("nodes"),
        Term::nil(),
        Term::atom("user"),
    ]);
    match orbit_dist::call::<_, Term>(("rex", node), &req, timeout).await {
        Ok(Term::List(l)) => NodeView {
            node: node.into(),
            sees: l
                .iter()
                .filter_map(|t| t.as_atom().map(String::from))
                .collect(),
            source: Source::Rex,
            history: Vec::new(),
        },
        other => {
            tracing::debug!(node, answer = ?other, "node did not answer");
            NodeView {
                node: node.into(),
                sees: Vec::new(),
                source: Source::Unreachable,
                history: Vec::new(),
            }
        }
    }
}

/// Takes the cluster view: queries `seeds`, then every node any answer names, until
/// no new node turns up (each node queried once, at most `timeout` each, concurrently
/// per round). Needs a running node in this process (ideally hidden).
pub async fn status(seeds: &[String], timeout: Duration) -> ClusterView {
    let mut asked: BTreeSet<String> = BTreeSet::new();
    let mut views = Vec::new();
    let mut next: BTreeSet<String> = seeds.iter().cloned().collect();
    let me = Node::current().map(|n| n.name());
    while !next.is_empty() {
        let round: Vec<String> = next
            .into_iter()
            .filter(|n| Some(n) != me.as_ref() && asked.insert(n.clone()))
            .collect();
        let mut tasks = Vec::new();
        for n in round {
            tasks.push(tokio::spawn(async move { query(&n, timeout).await }));
        }
        next = BTreeSet::new();
        for t in tasks {
            if let Ok(v) = t.await {
                next.extend(v.sees.iter().filter(|n| !asked.contains(*n)).cloned());
                views.push(v);
            }
        }
    }
    ClusterView::from_nodes(now_ms(), views)
}

/// A history of changes built by comparing successive views: for each observer, the
/// nodes that appeared in or vanished from its `nodes()` between two views (for nodes
/// that keep no history of their own, such as BEAM nodes).
#[derive(Debug, Default, Clone)]
pub struct Tracker {
    last: BTreeMap<String, BTreeSet<String>>,
    history: Vec<Change>,
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Records the differences from the previous view; returns the new changes. An
    /// unreachable node's view is not compared (its last known view stays).
    pub fn update(&mut self, view: &ClusterView) -> Vec<Change> {
        let mut new = Vec::new();
        for n in view
            .nodes
            .iter()
            .filter(|n| n.source != Source::Unreachable)
        {
            let now: BTreeSet<String> = n.sees.iter().cloned().collect();
            if let Some(before) = self.last.get(&n.node) {
                for up in now.difference(before) {
                    new.push(change(view, &n.node, up, true));
                }
                for down in before.difference(&now) {
                    new.push(change(view, &n.node, down, false));
                }
            }
            self.last.insert(n.node.clone(), now);
        }
        self.history.extend(new.iter().cloned());
        new
    }

    /// Every change recorded, oldest first.
    pub fn history(&self) -> &[Change] {
        &self.history
    }
}

fn change(view: &ClusterView, observer: &str, node: &str, up: bool) -> Change {
    Change {
        at_ms: view.taken_at_ms,
        observer: observer.into(),
        node: node.into(),
        up,
        reason: if up {
            String::new()
        } else {
            "gone from nodes() between two views".into()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nv(node: &str, sees: &[&str]) -> NodeView {
        NodeView {
            node: node.into(),
            sees: sees.iter().map(|s| s.to_string()).collect(),
            source: Source::Service,
            history: Vec::new(),
        }
    }

    #[test]
    fn a_full_mesh_has_no_finding() {
        let v = ClusterView::from_nodes(
            1,
            vec![
                nv("a", &["b", "c"]),
                nv("b", &["a", "c"]),
                nv("c", &["a", "b"]),
            ],
        );
        assert!(!v.partitioned(), "{:?}", v.findings);
        assert!(v.table().contains("no partition"));
    }

    #[test]
    fn one_cut_link_of_three_is_a_partition() {
        let v = ClusterView::from_nodes(
            1,
            vec![nv("a", &["b"]), nv("b", &["a", "c"]), nv("c", &["b"])],
        );
        assert_eq!(
            v.findings,
            vec![
                Finding::NotTransitive {
                    a: "a".into(),
                    b: "b".into(),
                    c: "c".into()
                },
                Finding::NotTransitive {
                    a: "c".into(),
                    b: "b".into(),
                    c: "a".into()
                },
            ]
        );
        let t = v.table();
        assert!(t.contains("PARTITION"), "{t}");
        assert!(t.contains("a sees b and b sees c, a does not see c"), "{t}");
    }

    #[test]
    fn asymmetry_and_unreachable_nodes_are_found() {
        let mut down = nv("c", &[]);
        down.source = Source::Unreachable;
        let v = ClusterView::from_nodes(1, vec![nv("a", &["b", "c"]), nv("b", &[]), down]);
        assert!(v.findings.contains(&Finding::Asymmetric {
            a: "a".into(),
            b: "b".into()
        }));
        assert!(v
            .findings
            .contains(&Finding::Unreachable { node: "c".into() }));
    }

    #[test]
    fn the_tracker_records_what_changed_per_observer() {
        let mut t = Tracker::new();
        let v1 = ClusterView::from_nodes(1, vec![nv("a", &["b", "c"])]);
        assert!(t.update(&v1).is_empty());
        let v2 = ClusterView::from_nodes(2, vec![nv("a", &["b", "d"])]);
        let ch = t.update(&v2);
        assert_eq!(ch.len(), 2);
        assert!(ch.iter().any(|c| c.node == "d" && c.up && c.at_ms == 2));
        assert!(ch
            .iter()
            .any(|c| c.node == "c" && !c.up && c.observer == "a"));
        assert_eq!(t.history().len(), 2);
    }

    #[test]
    fn the_view_round_trips_through_json_shapes() {
        let v = ClusterView::from_nodes(5, vec![nv("a", &["b"]), nv("b", &[])]);
        let j = serde_json::to_string(&v).unwrap();
        assert!(j.contains("\"kind\":\"asymmetric\""), "{j}");
        let back: ClusterView = serde_json::from_str(&j).unwrap();
        assert_eq!(back, v);
    }
}
