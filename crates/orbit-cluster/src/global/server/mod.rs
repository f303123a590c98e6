//! The `global_name_server` process: owns the lock and name tables and runs the
//! synchronisation with every visible node's `global_name_server`.
//!
//! It receives what peers send `global_name_server` (through the service seam), node
//! up/down events, `DOWN`s of the monitors it holds on lock holders and registered
//! pids, and the local API's requests. Per connecting node it keeps one session
//! (OTP's `sync_tag_my`/`sync_tag_his`/`wait_lock`/`save_ops` entries):
//!
//! 1. node-up: cast `{init_connect, {8, MyTag}, Me, {locker, orbit_passive_locker, #{},
//!    Me}}` (this process stands for OTP's locker: peers reach a v6+ locker only through
//!    its node's name server, and only use its pid for its node and the lock id);
//! 2. their `init_connect`: answer `{init_connect_ack, Me, HisTag, MyTag}`;
//! 3. their locker locks their partition and this node with `{global, [LockerA,
//!    LockerB]}` (`set_lock` calls, answered from the lock table) and casts
//!    `{lock_set, HisLocker, true, _, MyTag}`: this node takes the same lock on
//!    itself, answers `{lock_set, Me, true, Known, HisTag}`, and casts `{exchange, Me,
//!    Names, [], HisTag}`;
//! 4. their `exchange`: the names are compared with this node's ([`super`] documents the
//!    conflict rule), `{resolved, Me, Resolved, Known, unused, [], HisTag}` goes back;
//! 5. their `resolved`: both sides' operations are applied, the node is *synced* and
//!    *known*, `{in_sync, Me, true}` goes to the nodes it knows, `{new_nodes, ...}` to
//!    the ones this node knew, and the lock is released.
//!
//! A message whose tag is not the session's is dropped (an old session's), as OTP does.
//! Locking: this node answers the peer's locker (OTP's "spontaneous" `lock_set` path).
//! A BEAM peer's locker always starts the lock; another Orbit node's never does (its
//! `init_connect` says so, [`wire::ORBIT_MARKER`]): with an Orbit peer, this node locks
//! itself after [`ACTIVATE`], sends `{lock_set, Me, true, ...}` and takes the peer's
//! `lock_set` as the confirmation (OTP's `select_node` path), releasing its lock when no
//! confirmation comes by the next tick.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orbit::{Context, Down, Message, Pid, Ref};
use orbit_dist::service::Call;
use orbit_term::Term;
use parking_lot::RwLock;
use tokio::sync::oneshot;

use super::table::{Locks, Names, SetLock};
use super::wire::{self, Incoming, NameEntry, Op, Request};

mod sync;

/// What the server process receives.
pub(crate) enum GlobalMsg {
    /// A `$gen_call` from `peer`.
    Call(Call, String),
    /// A cast's request or a plain message from `peer`.
    Wire(Term, String),
    /// Bytes that are not a term, from `peer`.
    Undecodable(String),
    /// A visible node came up.
    NodeUp(String),
    /// A node went down.
    NodeDown(String),
    /// `set_lock` for a local caller: `true` when granted.
    SetLock {
        resource: Term,
        requester: Term,
        pid: Pid,
        reply: oneshot::Sender<bool>,
    },
    /// `del_lock` for a local caller.
    DelLock {
        resource: Term,
        requester: Term,
        pid: Pid,
        reply: oneshot::Sender<()>,
    },
    /// Registers (or re-registers) a name locally.
    Insert(NameEntry, oneshot::Sender<()>),
    /// Removes a name locally.
    Delete(Term, oneshot::Sender<()>),
    /// Answers once every message queued before it is handled.
    Barrier(oneshot::Sender<()>),
    /// Start locking the session with a node (its tag) if the peer has not.
    Activate(String, i64),
}

/// How long this node waits before locking a session with another Orbit node (plus a
/// random extra of up to 0.5 s that separates the two sides' attempts).
pub(crate) const ACTIVATE: std::time::Duration = std::time::Duration::from_millis(300);

/// What API readers see without a round trip.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub names: Names,
    pub known: BTreeSet<String>,
    pub synced: BTreeSet<String>,
}

/// The peer's side of a session.
struct His {
    tag: Term,
    locker: Pid,
    vsn: i64,
}

/// One synchronisation with a node.
struct Session {
    my_tag: i64,
    his: Option<His>,
    /// The lock this node took on itself for the session.
    lock: Option<(Term, Term)>,
    /// Both sides hold their lock: names are being exchanged.
    lock_is_set: bool,
    /// The peer's names, when they came before `lock_is_set`.
    his_exchange: Option<Vec<NameEntry>>,
    /// This node's operations, once its `resolved` is sent.
    my_ops: Option<Vec<Op>>,
    /// The peer's `resolved`, when it came before this node's.
    his_resolved: Option<(Vec<Op>, Vec<String>)>,
}

pub(crate) struct Server {
    me: String,
    pid: Pid,
    shared: Arc<RwLock<Shared>>,
    ignored: Arc<AtomicU64>,
    locks: Locks,
    sessions: HashMap<String, Session>,
    pre_connect: HashMap<String, Incoming>,
    next_tag: i64,
    handle: orbit::Handle<GlobalMsg>,
}

const GNS: &str = "global_name_server";

impl Server {
    pub(crate) fn new(
        me: String,
        pid: Pid,
        shared: Arc<RwLock<Shared>>,
        ignored: Arc<AtomicU64>,
        handle: orbit::Handle<GlobalMsg>,
    ) -> Server {
        Server {
            me,
            pid,
            shared,
            ignored,
            locks: Locks::default(),
            sessions: HashMap::new(),
            pre_connect: HashMap::new(),
            next_tag: 1,
            handle,
        }
    }

    pub(crate) async fn run(mut self, mut ctx: Context<GlobalMsg>) {
        loop {
            match ctx.recv().await {
                Message::Msg(m) => self.handle(m),
                Message::Down(d) => self.down(d),
                Message::Exit { .. } => {}
            }
        }
    }

    fn malformed(&self, e: impl std::fmt::Display) {
        self.ignored.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("{e}");
    }

    fn send(&self, node: &str, msg: &Term) {
        if let Err(e) = orbit_dist::send_named(node, GNS, msg) {
            tracing::debug!(node, error = %e, "global: message not sent");
        }
    }

    fn handle(&mut self, m: GlobalMsg) {
        match m {
            GlobalMsg::Call(call, peer) => self.call(call, &peer),
            GlobalMsg::Wire(t, peer) => match wire::parse(&t) {
                Ok(msg) => self.incoming(msg, &peer),
                Err(e) => self.malformed(format_args!("{e} (from {peer})")),
            },
            GlobalMsg::Undecodable(peer) => self.malformed(format_args!(
                "global: ignored undecodable bytes from {peer}"
            )),
            GlobalMsg::NodeUp(n) => self.nodeup(&n),
            GlobalMsg::NodeDown(n) => self.nodedown(&n),
            GlobalMsg::SetLock {
                resource,
                requester,
                pid,
                reply,
            } => {
                let _ = reply.send(self.set_lock(resource, requester, pid));
            }
            GlobalMsg::DelLock {
                resource,
                requester,
                pid,
                reply,
            } => {
                self.del_lock(&resource, &requester, pid);
                let _ = reply.send(());
            }
            GlobalMsg::Insert(e, reply) => {
                self.insert(e);
                let _ = reply.send(());
            }
            GlobalMsg::Delete(name, reply) => {
                self.delete(&name);
                let _ = reply.send(());
            }
            GlobalMsg::Barrier(reply) => {
                let _ = reply.send(());
            }
            GlobalMsg::Activate(node, tag) => self.activate(&node, tag),
        }
    }

    // ---- tables ----

    fn monitor(&self, pid: Pid) -> Option<Ref> {
        if pid == self.pid || pid == orbit_dist::spawn::system_pid() || pid == Pid::NONE {
            return None; // lives as long as this node
        }
        match orbit::monitor(pid) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(%pid, error = %e, "global: cannot monitor");
                None
            }
        }
    }

    fn demonitor(r: Option<Ref>) {
        if let Some(r) = r {
            let _ = orbit::demonitor(r, true);
        }
    }

    fn set_lock(&mut self, resource: Term, requester: Term, pid: Pid) -> bool {
        match self.locks.check(&resource, &requester, pid) {
            SetLock::Refused => false,
            SetLock::Held => true,
            SetLock::New => {
                let r = self.monitor(pid);
                self.locks.insert(resource, requester, pid, r);
                true
            }
        }
    }

    fn del_lock(&mut self, resource: &Term, requester: &Term, pid: Pid) {
        if let Some(r) = self.locks.delete(resource, requester, pid) {
            Self::demonitor(r);
        }
    }

    /// OTP's `ins_name`: replaces any registration of the name.
    fn insert(&mut self, e: NameEntry) {
        let mut s = self.shared.write();
        let same = s
            .names
            .get(&e.name)
            .filter(|r| r.pid == e.pid)
            .map(|r| r.monitor);
        let r = match same {
            Some(r) => r,
            None => self.monitor(e.pid),
        };
        if let Some(old) = s.names.insert(e, r) {
            if old.monitor != r {
                Self::demonitor(old.monitor);
            }
        }
    }

    fn delete(&mut self, name: &Term) {
        if let Some(old) = self.shared.write().names.remove(name) {
            Self::demonitor(old.monitor);
        }
    }

    fn down(&mut self, d: Down) {
        self.locks.down(d.monitor);
        let gone = self.shared.write().names.down(d.monitor);
        if !gone.is_empty() {
            tracing::debug!(pid = %d.pid, names = gone.len(), "global: names of a dead process removed");
        }
    }

    fn apply(&mut self, ops: Vec<Op>) {
        for op in ops {
            match op {
                Op::Insert(e) => self.insert(e),
                Op::Delete(n) => self.delete(&n),
            }
        }
    }

    // ---- calls ----

    fn call(&mut self, call: Call, peer: &str) {
        let req = match wire::parse_call(call.request()) {
            Ok(r) => r,
            Err(e) => {
                // OTP logs an unexpected call and does not answer it.
                self.malformed(format_args!("{e} (call from {peer})"));
                return;
            }
        };
        let reply = match req {
            Request::Register(e) | Request::RegisterExt(e) => {
                self.insert(e);
                Term::atom("yes")
            }
            Request::Unregister(n) => {
                self.delete(&n);
                Term::atom("ok")
            }
            Request::SetLock(r, q) => Term::bool(self.set_lock(r, q, call.from())),
            Request::DelLock(r, q) => {
                self.del_lock(&r, &q, call.from());
                Term::bool(true)
            }
            Request::GetKnown => wire::known(&self.known_list()),
            Request::GetSynced => Term::List(
                self.shared
                    .read()
                    .synced
                    .iter()
                    .map(|n| Term::atom(n))
                    .collect(),
            ),
            Request::GetProtocolVersion => Term::Int(wire::VSN),
            Request::GetNamesExt => Term::nil(),
        };
        call.reply(&reply);
    }

    fn known_list(&self) -> Vec<String> {
        self.shared.read().known.iter().cloned().collect()
    }

    // ---- the synchronisation ----

    fn nodeup(&mut self, node: &str) {
        if node == self.me
            || self.shared.read().known.contains(node)
            || self.sessions.contains_key(node)
        {
            return;
        }
        self.start_session(node);
    }

    fn start_session(&mut self, node: &str) {
        let my_tag = self.next_tag;
        self.next_tag += 1;
        self.sessions.insert(
            node.to_string(),
            Session {
                my_tag,
                his: None,
                lock: None,
                lock_is_set: false,
                his_exchange: None,
                my_ops: None,
                his_resolved: None,
            },
        );
        self.send(node, &wire::init_connect(&self.me, my_tag, self.pid));
        if let Some(pre) = self.pre_connect.remove(node) {
            self.incoming(pre, node);
        }
    }

    /// Ends the session with `node` (releasing this node's lock for it).
    fn cancel(&mut self, node: &str) {
        if let Some(s) = self.sessions.remove(node) {
            if let Some((r, q)) = s.lock {
                self.del_lock(&r, &q, self.pid);
            }
        }
    }

    fn restart(&mut self, node: &str) {
        self.cancel(node);
        let up = orbit_dist::Node::current().is_some_and(|n| n.list().iter().any(|x| x == node));
        if up {
            self.start_session(node);
        }
    }

    fn nodedown(&mut self, node: &str) {
        self.cancel(node);
        self.pre_connect.remove(node);
        let mut s = self.shared.write();
        s.known.remove(node);
        s.synced.remove(node);
    }

    fn my_tag(&self, node: &str) -> Option<i64> {
        self.sessions.get(node).map(|s| s.my_tag)
    }

    fn tag_is(&self, node: &str, tag: &Term) -> bool {
        self.my_tag(node)
            .is_some_and(|t| tag.exact_eq(&Term::Int(t)))
    }

    /// The session with `node` if `tag` is its current tag; a `what` message of an
    /// old session (or of none) is logged and dropped, as OTP does.
    fn current_session(&mut self, node: &str, tag: &Term, what: &str) -> Option<&mut Session> {
        if !self.tag_is(node, tag) {
            tracing::debug!(node, what, "global: a message of an old session dropped");
            return None;
        }
        self.sessions.get_mut(node)
    }

    fn incoming(&mut self, msg: Incoming, peer: &str) {
        match msg {
            Incoming::InitConnect {
                node,
                vsn,
                his_tag,
                locker,
                orbit,
            } => {
                if node != peer || locker.node().as_ref() != node {
                    self.malformed(format_args!(
                        "global: ignored an init_connect from {peer} naming {node} and locker {locker}"
                    ));
                    return;
                }
                let Some(s) = self.sessions.get_mut(&node) else {
                    // Before our node-up (or after the node became known): kept, as OTP's
                    // pre_connect, for the next session.
                    self.pre_connect.insert(
                        node.clone(),
                        Incoming::InitConnect {
                            node,
                            vsn,
                            his_tag,
                            locker,
                            orbit,
                        },
                    );
                    return;
                };
                if s.his.is_some() {
                    // A second connect attempt during a session: cancel both, start over.
                    let cancel = Term::tuple(vec![
                        Term::atom("cancel_connect"),
                        Term::atom(&self.me),
                        his_tag,
                    ]);
                    self.send(&node, &cancel);
                    self.restart(&node);
                    return;
                }
                let my_tag = s.my_tag;
                s.his = Some(His {
                    tag: his_tag.clone(),
                    locker,
                    vsn: vsn.min(wire::VSN),
                });
                let ack = Term::tuple(vec![
                    Term::atom("init_connect_ack"),
                    Term::atom(&self.me),
                    his_tag,
                    Term::Int(my_tag),
                ]);
                self.send(&node, &ack);
                if orbit {
                    // Another Orbit node: no BEAM locker will start, this node locks.
                    self.schedule(&node, my_tag);
                }
            }
            Incoming::InitConnectAck {
                node,
                my_tag,
                his_tag,
            } => {
                let ok = self.sessions.get(&node).is_some_and(|s| {
                    my_tag.exact_eq(&Term::Int(s.my_tag))
                        && s.his.as_ref().is_some_and(|h| h.tag.exact_eq(&his_tag))
                });
                if !ok && self.sessions.contains_key(&node) {
                    tracing::debug!(node, "global: connect out of sync, restarting it");
                    let cancel = Term::tuple(vec![
                        Term::atom("cancel_connect"),
                        Term::atom(&self.me),
                        his_tag,
                    ]);
                    self.send(&node, &cancel);
                    self.restart(&node);
                }
            }
            Incoming::CancelConnect { node, my_tag } => {
                if self.tag_is(&node, &my_tag) {
                    self.restart(&node);
                }
            }
            Incoming::LockSet {
                locker,
                set,
                my_tag,
            } => self.lock_set(locker, set, my_tag),
            Incoming::Exchange {
                node,
                names,
                my_tag,
            } => {
                let Some(s) = self.current_session(&node, &my_tag, "exchange") else {
                    return;
                };
                if s.lock_is_set {
                    self.exchange(&node, names);
                } else {
                    s.his_exchange = Some(names);
                }
            }
            Incoming::Resolved {
                node,
                ops,
                known,
                my_tag,
            } => {
                let Some(s) = self.current_session(&node, &my_tag, "resolved") else {
                    return;
                };
                s.his_resolved = Some((ops, known));
                if s.my_ops.is_some() {
                    self.resolved(&node);
                }
            }
            Incoming::NewNodes { node, ops, nodes } => {
                if node != peer {
                    self.malformed(format_args!(
                        "global: ignored a new_nodes from {peer} naming {node}"
                    ));
                    return;
                }
                self.apply(ops);
                let added: Vec<String> = {
                    let mut s = self.shared.write();
                    nodes
                        .into_iter()
                        .filter(|n| *n != self.me && s.known.insert(n.clone()))
                        .collect()
                };
                for n in added {
                    self.cancel(&n);
                    self.in_sync(&n);
                }
            }
            Incoming::InSync { node } => {
                if node != peer {
                    self.malformed(format_args!(
                        "global: ignored an in_sync from {peer} naming {node}"
                    ));
                    return;
                }
                // As OTP: synced, not known (the node that told it about this node
                // sends `new_nodes`, which makes it known and answers `in_sync`).
                self.cancel(&node);
                self.shared.write().synced.insert(node);
            }
            Incoming::LostConnection { a, b } => {
                tracing::debug!(
                    a,
                    b,
                    "global: lost_connection noted (not acted on by Orbit)"
                );
            }
            Incoming::RemoveConnection { node } => {
                let known = {
                    let s = self.shared.read();
                    s.known.contains(&node) || self.sessions.contains_key(&node)
                };
                if known {
                    tracing::warn!(node, "global: disconnecting from a node to prevent overlapping partitions (asked by {peer})");
                    self.nodedown(&node);
                    if let Some(n) = orbit_dist::Node::current() {
                        n.disconnect(&node);
                    }
                }
            }
            Incoming::Whereis { name, pid, tag } => {
                let found = self.shared.read().names.whereis(&name);
                let reply = Term::tuple(vec![
                    tag,
                    found.map_or_else(|| Term::atom("undefined"), wire::pid_t),
                ]);
                if let Err(e) = orbit_dist::send(pid, &reply) {
                    tracing::debug!(error = %e, "global: whereis reply not sent");
                }
            }
            Incoming::Legacy => {}
        }
    }

    /// `{in_sync, Me, true}` to `node` (connecting to it first if needed, as OTP's
    /// `sync_other` does through `monitor_node`).
    fn in_sync(&self, node: &str) {
        let msg = wire::cast(Term::tuple(vec![
            Term::atom("in_sync"),
            Term::atom(&self.me),
            Term::bool(true),
        ]));
        let node = node.to_string();
        tokio::spawn(async move {
            if let Some(n) = orbit_dist::Node::current() {
                if !n.list().contains(&node) && !n.connect(&node).await {
                    tracing::warn!(
                        node,
                        "global: failed to connect to a node the cluster knows"
                    );
                    return;
                }
            }
            let _ = orbit_dist::send_named(&node, GNS, &msg);
        });
    }
}
