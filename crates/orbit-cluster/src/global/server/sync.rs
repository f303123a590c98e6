//! The locking and name exchange steps of a session (OTP's locker messages, `exchange`,
//! `resolved`): `lock_set` answered or sent first, `exchange` and conflict resolution,
//! and the end of a session (`resolved`: synced, `in_sync`/`new_nodes` to the others).

use orbit::Pid;
use orbit_term::Term;

use super::super::resolve;
use super::super::wire::{self, NameEntry, Op};
use super::{GlobalMsg, Server, ACTIVATE};

impl Server {
    pub(super) fn lock_set(&mut self, locker: Pid, set: bool, tag: Option<Term>) {
        let node = locker.node().to_string();
        let Some(s) = self.sessions.get_mut(&node) else {
            return; // no session with that node: spurious
        };
        if tag
            .as_ref()
            .is_some_and(|t| !t.exact_eq(&Term::Int(s.my_tag)))
        {
            return; // an old session's
        }
        let Some(his) = s.his.as_ref() else {
            return;
        };
        if s.lock_is_set {
            return;
        }
        let (his_tag, his_locker, my_tag) = (his.tag.clone(), his.locker, s.my_tag);
        if !set {
            // The peer could not lock its side: drop this node's attempt, retry later.
            if let Some((r, q)) = s.lock.take() {
                self.del_lock(&r, &q, self.pid);
                self.schedule(&node, my_tag);
            }
            return;
        }
        if s.lock.is_some() {
            // This node locked first (activate): the peer's lock_set confirms.
            self.lock_is_set(&node);
            return;
        }
        let (resource, requester) = self.lock_id(his_locker);
        let granted = self.set_lock(resource.clone(), requester.clone(), self.pid);
        self.send_lock_set(&node, granted, his_tag);
        if !granted {
            tracing::debug!(
                node,
                "global: partition lock refused (another sync or a registration holds it)"
            );
            return;
        }
        if let Some(s) = self.sessions.get_mut(&node) {
            s.lock = Some((resource, requester));
        }
        self.lock_is_set(&node);
    }

    /// `{global, lists:sort([MyLocker, HisLocker])}`; when the peer already took it on
    /// this node, its exact list from the table.
    fn lock_id(&self, his_locker: Pid) -> (Term, Term) {
        let resource = Term::atom("global");
        let mine = wire::pid_t(self.pid);
        let theirs = wire::pid_t(his_locker);
        let requester = self
            .locks
            .list()
            .into_iter()
            .find_map(|(r, q, _)| match &q {
                Term::List(l)
                    if r.exact_eq(&resource)
                        && l.len() == 2
                        && l.iter().any(|x| x.exact_eq(&mine))
                        && l.iter().any(|x| x.exact_eq(&theirs)) =>
                {
                    Some(q.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| {
                let mut l = [mine, theirs];
                l.sort_by(|a, b| a.exact_cmp(b));
                Term::List(l.to_vec())
            });
        (resource, requester)
    }

    fn send_lock_set(&self, node: &str, granted: bool, his_tag: Term) {
        let msg = wire::cast(Term::tuple(vec![
            Term::atom("lock_set"),
            wire::pid_t(self.pid),
            Term::bool(granted),
            wire::known(&self.known_list()),
            his_tag,
        ]));
        self.send(node, &msg);
    }

    /// Sends [`GlobalMsg::Activate`] for the session `tag` after [`ACTIVATE`] and a
    /// random extra.
    pub(super) fn schedule(&self, node: &str, tag: i64) {
        let h = self.handle.clone();
        let node = node.to_string();
        let mut b = [0u8; 2];
        let extra = getrandom::getrandom(&mut b).map_or(500, |_| u16::from_le_bytes(b) % 500);
        tokio::spawn(async move {
            tokio::time::sleep(ACTIVATE + std::time::Duration::from_millis(u64::from(extra))).await;
            let _ = h.send(GlobalMsg::Activate(node, tag));
        });
    }

    /// The peer's locker has not started: lock this node and tell the peer.
    pub(super) fn activate(&mut self, node: &str, tag: i64) {
        let Some(s) = self.sessions.get(node) else {
            return;
        };
        if s.my_tag != tag || s.lock_is_set {
            return;
        }
        if s.lock.is_some() {
            // Locked first and the peer never confirmed: release, so that a silent peer
            // cannot keep `global` locked on this node; try again later.
            tracing::debug!(
                node,
                "global: no lock_set from the peer, releasing this node's lock"
            );
            if let Some((r, q)) = self.sessions.get_mut(node).and_then(|s| s.lock.take()) {
                self.del_lock(&r, &q, self.pid);
            }
            self.schedule(node, tag);
            return;
        }
        let Some(his) = s.his.as_ref() else {
            return;
        };
        let (his_tag, his_locker) = (his.tag.clone(), his.locker);
        let (resource, requester) = self.lock_id(his_locker);
        if !self.set_lock(resource.clone(), requester.clone(), self.pid) {
            self.schedule(node, tag);
            return;
        }
        if let Some(s) = self.sessions.get_mut(node) {
            s.lock = Some((resource, requester));
        }
        tracing::debug!(node, "global: locking first");
        self.send_lock_set(node, true, his_tag);
        // The next tick releases the lock if the peer has not confirmed by then.
        self.schedule(node, tag);
    }

    /// Both partitions are locked: send this node's names, handle the peer's if they
    /// came first.
    fn lock_is_set(&mut self, node: &str) {
        let names: Vec<Term> = self
            .shared
            .read()
            .names
            .entries()
            .iter()
            .map(wire::entry)
            .collect();
        let Some(s) = self.sessions.get_mut(node) else {
            return;
        };
        s.lock_is_set = true;
        let exchange = wire::cast(Term::tuple(vec![
            Term::atom("exchange"),
            Term::atom(&self.me),
            Term::List(names),
            Term::nil(),
            s.his.as_ref().map_or_else(Term::nil, |h| h.tag.clone()),
        ]));
        let waiting = s.his_exchange.take();
        self.send(node, &exchange);
        if let Some(names) = waiting {
            self.exchange(node, names);
        }
    }

    /// OTP's `exchange_names`: this node's operations and the ones the peer must apply.
    pub(super) fn exchange(&mut self, node: &str, names: Vec<NameEntry>) {
        let mut ops = Vec::new();
        let mut res = Vec::new();
        let i_resolve = self.me.as_str() < node;
        for e in names {
            let mine = self.shared.read().names.get(&e.name).cloned();
            match mine {
                Some(m) if m.pid == e.pid => {}
                Some(m) if i_resolve => {
                    let mine = NameEntry {
                        name: e.name.clone(),
                        pid: m.pid,
                        method: m.method.clone(),
                    };
                    if !m.pid.is_local() {
                        // OTP would call the method on the pid's node; Orbit does not (its
                        // `badrpc` path): the incoming registration wins.
                        tracing::info!(name = %wire::short(&e.name), "global: name conflict with a pid of another node, keeping the incoming registration");
                        ops.push(Op::Insert(e));
                        continue;
                    }
                    match resolve::run(&m.method, &e.name, e.pid, m.pid) {
                        resolve::Outcome::Keep(p) if p == e.pid => ops.push(Op::Insert(e)),
                        resolve::Outcome::Keep(_) => res.push(Op::Insert(mine)),
                        resolve::Outcome::Drop => {
                            ops.push(Op::Delete(e.name.clone()));
                            res.push(Op::Delete(e.name));
                        }
                    }
                }
                Some(_) => {} // the peer resolves it
                None => ops.push(Op::Insert(e)),
            }
        }
        let known = self.known_list();
        let Some(s) = self.sessions.get_mut(node) else {
            return;
        };
        let his_tag = s.his.as_ref().map_or_else(Term::nil, |h| h.tag.clone());
        s.my_ops = Some(ops);
        let resolved = wire::cast(Term::tuple(vec![
            Term::atom("resolved"),
            Term::atom(&self.me),
            wire::ops_t(&res),
            wire::known(&known),
            Term::atom("unused"),
            Term::nil(),
            his_tag,
        ]));
        let ready = s.his_resolved.is_some();
        self.send(node, &resolved);
        if ready {
            self.resolved(node);
        }
    }

    /// Both sides resolved: apply, become synced, tell the others, release the lock.
    pub(super) fn resolved(&mut self, node: &str) {
        let Some(mut s) = self.sessions.remove(node) else {
            return;
        };
        let (his_ops, his_known) = s.his_resolved.take().unwrap_or_default();
        let mut ops = s.my_ops.take().unwrap_or_default();
        ops.extend(his_ops);
        let vsn = s.his.as_ref().map_or(wire::VSN, |h| h.vsn);
        let old_known = self.known_list();
        self.apply(ops.clone());
        let mut new_nodes: Vec<String> = vec![node.to_string()];
        new_nodes.extend(his_known.iter().filter(|n| **n != self.me).cloned());
        {
            let mut sh = self.shared.write();
            for n in &new_nodes {
                sh.known.insert(n.clone());
            }
            sh.synced.insert(node.to_string());
        }
        for n in his_known.iter().filter(|n| **n != self.me && *n != node) {
            self.in_sync(n);
        }
        let extra = Term::List(vec![
            Term::tuple(vec![Term::atom("vsn"), Term::Int(vsn)]),
            Term::tuple(vec![
                Term::atom("lock"),
                s.lock
                    .as_ref()
                    .map_or_else(Term::nil, |(r, q)| Term::tuple(vec![r.clone(), q.clone()])),
            ]),
        ]);
        let msg = wire::cast(Term::tuple(vec![
            Term::atom("new_nodes"),
            Term::atom(&self.me),
            wire::ops_t(&ops),
            Term::nil(),
            wire::known(&new_nodes),
            extra,
        ]));
        for n in old_known.iter().filter(|n| !new_nodes.contains(n)) {
            self.send(n, &msg);
        }
        if let Some((r, q)) = s.lock.take() {
            self.del_lock(&r, &q, self.pid);
        }
        tracing::debug!(node, "global: synced");
    }
}
