//! The scope process: one Orbit process per scope, registered under the scope's name,
//! that speaks `pg.erl`'s protocol with peer scopes and owns the scope's table.
//!
//! It receives [`ScopeMsg`]: peers' terms (decoded from the wire by `orbit_dist::serve`
//! into [`ScopeMsg::Wire`]), node-up events, and the local API's requests. It monitors
//! local members (one monitor per pid) and peer scopes (a `DOWN`, `noconnection`
//! included, drops all of that peer's members). It sends peers only `discover` (the
//! 2-tuple), `sync`, `join` and `leave`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orbit::{Context, Down, Message, Pid, Ref};
use orbit_term::Term;
use parking_lot::RwLock;
use serde::{Deserialize, Deserializer};
use tokio::sync::{mpsc, oneshot};

use super::table::{self, Groups};
use super::wire::{self, PeerMsg};
use super::{GroupEvent, GroupEvents};

/// The members at the time of a monitor request, and its events.
pub(crate) type MonitorReply = (Vec<(Term, Vec<Pid>)>, GroupEvents);

/// What a scope process receives.
pub(crate) enum ScopeMsg {
    /// A term from another node (any term: it is parsed and checked by the scope).
    Wire(Term),
    /// A visible node came up: send it `{discover, Me}`.
    NodeUp(String),
    /// Local `join`.
    Join {
        group: Term,
        pids: Vec<Pid>,
        single: bool,
        reply: oneshot::Sender<()>,
    },
    /// Local `leave`; replies whether any pid was a member.
    Leave {
        group: Term,
        pids: Vec<Pid>,
        single: bool,
        reply: oneshot::Sender<bool>,
    },
    /// A barrier: replies once every message queued before it is handled.
    Barrier(oneshot::Sender<()>),
    /// `pg:monitor`/`monitor_scope`: the current members and a stream of changes.
    Monitor {
        group: Option<Term>,
        reply: oneshot::Sender<MonitorReply>,
    },
}

/// Every message from the wire is a [`ScopeMsg::Wire`], whatever its shape.
impl<'de> Deserialize<'de> for ScopeMsg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Term::deserialize(d).map(ScopeMsg::Wire)
    }
}

struct Peer {
    /// What this peer's members joined, per group, newest first.
    groups: HashMap<Term, table::PidList>,
}

pub(crate) struct State {
    name: Arc<str>,
    ignored: Arc<AtomicU64>,
    me: Pid,
    table: Arc<RwLock<Groups>>,
    peers: HashMap<Pid, Peer>,
    /// Local member -> (its monitor, its groups newest first, one entry per join).
    locals: HashMap<Pid, (Ref, Vec<Term>)>,
    /// Monitors: a group (`None`: every group) and where its changes go.
    watchers: Vec<(Option<Term>, mpsc::UnboundedSender<GroupEvent>)>,
}

impl State {
    pub(crate) fn new(
        name: Arc<str>,
        me: Pid,
        table: Arc<RwLock<Groups>>,
        ignored: Arc<AtomicU64>,
    ) -> State {
        State {
            name,
            ignored,
            me,
            table,
            peers: HashMap::new(),
            locals: HashMap::new(),
            watchers: Vec::new(),
        }
    }

    fn send(&self, to: Pid, msg: &Term) {
        if let Err(e) = orbit_dist::send(to, msg) {
            tracing::debug!(scope = %self.name, %to, error = %e, "pg: send to a peer scope failed");
        }
    }

    fn broadcast(&self, msg: &Term) {
        for p in self.peers.keys() {
            self.send(*p, msg);
        }
    }

    /// Sends `{discover, Me}` to the scope on `node`.
    pub(crate) fn discover_node(&self, node: &str) {
        if let Err(e) = orbit_dist::send_named(node, &self.name, &wire::discover(self.me)) {
            tracing::debug!(scope = %self.name, node, error = %e, "pg: discover not sent");
        }
    }

    fn notify(&mut self, group: &Term, pids: &[Pid], join: bool) {
        if self.watchers.is_empty() || pids.is_empty() {
            return;
        }
        let ev = if join {
            GroupEvent::Join {
                group: group.clone(),
                pids: pids.to_vec(),
            }
        } else {
            GroupEvent::Leave {
                group: group.clone(),
                pids: pids.to_vec(),
            }
        };
        self.watchers.retain(|(g, tx)| match g {
            Some(g) if g != group => !tx.is_closed(),
            _ => tx.send(ev.clone()).is_ok(),
        });
    }

    fn local_groups(&self) -> Vec<(Term, Vec<Pid>)> {
        self.table
            .read()
            .iter()
            .filter(|(_, e)| !e.local.is_empty())
            .map(|(g, e)| (g.clone(), Vec::from(e.local.clone())))
            .collect()
    }

    pub(crate) async fn run(mut self, mut ctx: Context<ScopeMsg>) {
        loop {
            match ctx.recv().await {
                Message::Msg(m) => self.handle(m),
                Message::Down(d) => self.down(d),
                Message::Exit { .. } => {}
            }
        }
    }

    pub(crate) fn handle(&mut self, m: ScopeMsg) {
        match m {
            ScopeMsg::Wire(t) => match wire::parse(&t) {
                Ok(msg) => self.peer(msg),
                Err(e) => {
                    self.ignored.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(scope = %self.name, "{e}");
                }
            },
            ScopeMsg::NodeUp(node) => self.discover_node(&node),
            ScopeMsg::Join {
                group,
                pids,
                single,
                reply,
            } => {
                self.join(&group, &pids, single);
                let _ = reply.send(());
            }
            ScopeMsg::Leave {
                group,
                pids,
                single,
                reply,
            } => {
                let _ = reply.send(self.leave(&group, &pids, single));
            }
            ScopeMsg::Barrier(reply) => {
                let _ = reply.send(());
            }
            ScopeMsg::Monitor { group, reply } => {
                let t = self.table.read();
                let now: Vec<(Term, Vec<Pid>)> = match &group {
                    Some(g) => vec![(
                        g.clone(),
                        t.get(g)
                            .map(|e| Vec::from(e.all.clone()))
                            .unwrap_or_default(),
                    )],
                    None => t
                        .iter()
                        .map(|(g, e)| (g.clone(), Vec::from(e.all.clone())))
                        .collect(),
                };
                drop(t);
                let (tx, rx) = mpsc::unbounded_channel();
                if reply.send((now, rx)).is_ok() {
                    self.watchers.push((group, tx));
                }
            }
        }
    }

    fn join(&mut self, group: &Term, pids: &[Pid], single: bool) {
        for p in pids {
            match self.locals.get_mut(p) {
                Some((_, gs)) => gs.insert(0, group.clone()),
                None => match orbit::monitor(*p) {
                    Ok(r) => {
                        self.locals.insert(*p, (r, vec![group.clone()]));
                    }
                    Err(e) => tracing::error!(scope = %self.name, error = %e, "pg: monitor failed"),
                },
            }
        }
        table::join_local(&mut self.table.write(), group, pids);
        self.notify(group, pids, true);
        self.broadcast(&wire::join(self.me, group, single, pids));
    }

    fn leave(&mut self, group: &Term, pids: &[Pid], single: bool) -> bool {
        let mut any = false;
        for p in pids {
            let Some((r, gs)) = self.locals.get_mut(p) else {
                continue;
            };
            let Some(i) = gs.iter().position(|g| g == group) else {
                continue;
            };
            any = true;
            gs.remove(i);
            if gs.is_empty() {
                let r = *r;
                let _ = orbit::demonitor(r, true);
                self.locals.remove(p);
            }
        }
        if !any {
            return false;
        }
        table::leave_local(&mut self.table.write(), group, pids);
        self.notify(group, pids, false);
        self.broadcast(&wire::leave(
            self.me,
            single,
            pids,
            std::slice::from_ref(group),
        ));
        true
    }

    fn down(&mut self, d: Down) {
        if let Some((_, groups)) = self.locals.remove(&d.pid) {
            {
                let mut t = self.table.write();
                for g in &groups {
                    table::leave_local(&mut t, g, &[d.pid]);
                }
            }
            for g in &groups {
                self.notify(g, &[d.pid], false);
            }
            self.broadcast(&wire::leave(self.me, true, &[d.pid], &groups));
        } else if let Some(mut peer) = self.peers.remove(&d.pid) {
            tracing::debug!(scope = %self.name, peer = %d.pid, reason = ?d.reason, "pg: peer scope down");
            {
                let mut t = self.table.write();
                for (g, pids) in &mut peer.groups {
                    table::leave_remote(&mut t, g, pids.make_contiguous());
                }
            }
            for (g, pids) in &mut peer.groups {
                self.notify(g, pids.make_contiguous(), false);
            }
        }
    }

    /// A peer must be a scope on another node; its members must be on its node.
    fn check(&self, peer: Pid, members: &[Pid]) -> bool {
        if peer.is_local() {
            self.ignored.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(scope = %self.name, %peer, "pg: ignored a message naming a local pid as a peer scope");
            return false;
        }
        let node = peer.node();
        if let Some(m) = members.iter().find(|m| m.node() != node) {
            self.ignored.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(scope = %self.name, %peer, member = %m, "pg: ignored a message with a member that is not on the peer's node");
            return false;
        }
        true
    }

    fn peer(&mut self, msg: PeerMsg) {
        match msg {
            PeerMsg::Discover(peer) => {
                if !self.check(peer, &[]) {
                    return;
                }
                self.send(peer, &wire::sync(self.me, &self.local_groups()));
                if !self.peers.contains_key(&peer) {
                    if let Some(p) = self.monitor_peer(peer) {
                        self.peers.insert(peer, p);
                        self.send(peer, &wire::discover(self.me));
                    }
                }
            }
            PeerMsg::Sync(peer, groups) => {
                let all: Vec<Pid> = groups.iter().flat_map(|(_, p)| p.iter().copied()).collect();
                if !self.check(peer, &all) {
                    return;
                }
                let mut old = match self.peers.remove(&peer) {
                    Some(p) => p,
                    None => match self.monitor_peer(peer) {
                        Some(p) => p,
                        None => return,
                    },
                };
                // A group listed twice counts once, with both lists.
                let mut new: HashMap<Term, Vec<Pid>> = HashMap::new();
                let mut order: Vec<Term> = Vec::new();
                for (g, pids) in groups {
                    if !new.contains_key(&g) {
                        order.push(g.clone());
                    }
                    new.entry(g).or_default().extend(pids);
                }
                new.retain(|_, p| !p.is_empty());
                let mut changes: Vec<(Term, Vec<Pid>, Vec<Pid>)> = Vec::new();
                {
                    let mut t = self.table.write();
                    for g in &order {
                        let prev = match old.groups.get_mut(g) {
                            Some(l) => &*l.make_contiguous(),
                            None => &[],
                        };
                        let now = new.get(g).map(Vec::as_slice).unwrap_or(&[]);
                        table::replace_remote(&mut t, g, prev, now);
                        changes.push((g.clone(), prev.to_vec(), now.to_vec()));
                    }
                    let listed: std::collections::HashSet<&Term> = order.iter().collect();
                    for (g, pids) in &mut old.groups {
                        if !listed.contains(g) {
                            let pids = pids.make_contiguous();
                            table::leave_remote(&mut t, g, pids);
                            changes.push((g.clone(), pids.to_vec(), Vec::new()));
                        }
                    }
                }
                let new = new.into_iter().map(|(g, v)| (g, v.into())).collect();
                self.peers.insert(peer, Peer { groups: new });
                for (g, gone, came) in changes {
                    if gone != came {
                        self.notify(&g, &gone, false);
                        self.notify(&g, &came, true);
                    }
                }
            }
            PeerMsg::Join(peer, group, pids) => {
                if !self.check(peer, &pids) {
                    return;
                }
                let Some(p) = self.peers.get_mut(&peer) else {
                    return; // OTP drops joins from a peer it does not know yet
                };
                table::prepend(p.groups.entry(group.clone()).or_default(), &pids);
                table::join_remote(&mut self.table.write(), &group, &pids);
                self.notify(&group, &pids, true);
            }
            PeerMsg::Leave(peer, pids, groups) => {
                if !self.check(peer, &pids) {
                    return;
                }
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                let mut left = Vec::new();
                {
                    let mut t = self.table.write();
                    for g in &groups {
                        if let Some(list) = p.groups.get_mut(g) {
                            table::subtract(list, &pids);
                            if list.is_empty() {
                                p.groups.remove(g);
                            }
                            table::leave_remote(&mut t, g, &pids);
                            left.push(g.clone());
                        }
                    }
                }
                for g in &left {
                    self.notify(g, &pids, false);
                }
            }
        }
    }

    fn monitor_peer(&self, peer: Pid) -> Option<Peer> {
        match orbit::monitor(peer) {
            Ok(_) => Some(Peer {
                groups: HashMap::new(),
            }),
            Err(e) => {
                tracing::error!(scope = %self.name, error = %e, "pg: cannot monitor a peer scope");
                None
            }
        }
    }
}
