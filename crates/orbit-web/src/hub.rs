//! The broadcast hub: which sockets of this node listen to which topic, and the way
//! broadcasts reach them (Phoenix's "fastlane": a broadcast is encoded once and queued on
//! every subscribed socket, without passing through each channel process).
//!
//! With a [`orbit_cluster::pubsub::PubSub`], broadcasts cross the cluster as
//! Phoenix's do: a broadcast made here is sent to the other nodes as
//! `%Phoenix.Socket.Broadcast{topic, event, payload}` through Phoenix.PubSub (so an Elixir
//! node's channels receive it), and one such message broadcast on any node, Elixir or
//! Orbit, reaches this node's sockets through a hub process subscribed to every topic
//! that has a local socket. A broadcast message that is not a `Broadcast` map, or whose
//! payload has no JSON form, is logged and dropped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use orbit::{Context, Message, Pid};
use orbit_cluster::pubsub::PubSub;
use orbit_term::Term;
use parking_lot::RwLock;
use serde_json::Value;

use crate::json_term;
use crate::message;
use crate::outbox::Outbox;

/// The module of the broadcast struct Phoenix sends through PubSub.
pub const BROADCAST_STRUCT: &str = "Elixir.Phoenix.Socket.Broadcast";

struct Sub {
    socket: u64,
    outbox: Outbox,
}

/// Counters of a hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Broadcasts fanned out on this node (made here or received from other nodes).
    pub broadcasts: u64,
    /// Frames queued on sockets by those broadcasts.
    pub deliveries: u64,
    /// Broadcast messages from other nodes that were dropped (not a `Broadcast`, or no
    /// JSON payload).
    pub malformed: u64,
}

/// The hub of one endpoint (cheap to clone).
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    topics: RwLock<HashMap<String, Vec<Sub>>>,
    pubsub: Option<PubSub>,
    process: OnceLock<Option<Pid>>,
    broadcasts: AtomicU64,
    deliveries: AtomicU64,
    malformed: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hub({} topics)", self.inner.topics.read().len())
    }
}

impl Hub {
    /// A hub, across the cluster through `pubsub` when given.
    pub fn new(pubsub: Option<PubSub>) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                topics: RwLock::new(HashMap::new()),
                pubsub,
                process: OnceLock::new(),
                broadcasts: AtomicU64::new(0),
                deliveries: AtomicU64::new(0),
                malformed: AtomicU64::new(0),
            }),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> HubStats {
        HubStats {
            broadcasts: self.inner.broadcasts.load(Ordering::Relaxed),
            deliveries: self.inner.deliveries.load(Ordering::Relaxed),
            malformed: self.inner.malformed.load(Ordering::Relaxed),
        }
    }

    /// Sockets of this node subscribed to `topic`.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.inner.topics.read().get(topic).map_or(0, Vec::len)
    }

    /// Subscribes a socket's outbox to `topic`.
    pub(crate) fn subscribe(&self, topic: &str, socket: u64, outbox: Outbox) {
        let first = {
            let mut t = self.inner.topics.write();
            let subs = t.entry(topic.to_string()).or_default();
            subs.push(Sub { socket, outbox });
            subs.len() == 1
        };
        if first {
            self.sync(topic);
        }
    }

    /// Removes a socket's subscription to `topic`.
    pub(crate) fn unsubscribe(&self, topic: &str, socket: u64) {
        let last = {
            let mut t = self.inner.topics.write();
            let Some(subs) = t.get_mut(topic) else {
                return;
            };
            subs.retain(|s| s.socket != socket);
            if subs.is_empty() {
                t.remove(topic);
                true
            } else {
                false
            }
        };
        if last {
            self.sync(topic);
        }
    }

    /// Asks the hub process to follow the table for `topic` in PubSub.
    fn sync(&self, topic: &str) {
        if let Some(pid) = self.process() {
            let msg = Term::tuple(vec![
                Term::atom("orbit_web_sync"),
                Term::Binary(topic.as_bytes().to_vec()),
            ]);
            let _ = orbit::send(pid, msg);
        }
    }

    /// The hub process (started on first use; none without a PubSub or a runtime).
    fn process(&self) -> Option<Pid> {
        *self.inner.process.get_or_init(|| {
            let pubsub = self.inner.pubsub.clone()?;
            let hub = Arc::downgrade(&self.inner);
            orbit::spawn(move |ctx: Context<Term>| hub_process(ctx, hub, pubsub))
                .map(|h| h.pid())
                .map_err(|e| tracing::warn!(error = %e, "orbit-web: the hub process cannot start; broadcasts stay on this node"))
                .ok()
        })
    }

    /// Broadcasts `event` with `payload` to every socket joined to `topic`, on this node
    /// (but the socket `except`) and, with a PubSub, on every other node.
    pub fn broadcast(&self, topic: &str, event: &str, payload: &Value, except: Option<u64>) {
        self.fan_out(topic, event, payload, except);
        if let Some(ps) = &self.inner.pubsub {
            match json_term::to_term(payload) {
                Ok(p) => {
                    let msg = broadcast_term(topic, event, p);
                    if let Err(e) = ps.remote_broadcast(topic, &msg) {
                        tracing::warn!(topic, error = %e, "orbit-web: broadcast to other nodes failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(topic, error = %e, "orbit-web: broadcast payload not sent to other nodes")
                }
            }
        }
    }

    fn fan_out(&self, topic: &str, event: &str, payload: &Value, except: Option<u64>) {
        let frame: Arc<str> = Arc::from(message::broadcast(topic, event, payload));
        let mut n = 0;
        if let Some(subs) = self.inner.topics.read().get(topic) {
            for s in subs {
                if Some(s.socket) != except && s.outbox.push(frame.clone()) {
                    n += 1;
                }
            }
        }
        self.inner.broadcasts.fetch_add(1, Ordering::Relaxed);
        self.inner.deliveries.fetch_add(n, Ordering::Relaxed);
    }
}

/// `%Phoenix.Socket.Broadcast{topic: topic, event: event, payload: payload}`.
pub fn broadcast_term(topic: &str, event: &str, payload: Term) -> Term {
    Term::Map(vec![
        (Term::atom("__struct__"), Term::atom(BROADCAST_STRUCT)),
        (Term::atom("topic"), Term::Binary(topic.as_bytes().to_vec())),
        (Term::atom("event"), Term::Binary(event.as_bytes().to_vec())),
        (Term::atom("payload"), payload),
    ])
}

fn text(t: Option<&Term>) -> Option<String> {
    String::from_utf8(t?.as_binary()?.to_vec()).ok()
}

/// The hub process: keeps this node's PubSub subscriptions in line with the table, and
/// fans out the broadcasts other nodes send.
async fn hub_process(mut ctx: Context<Term>, hub: std::sync::Weak<Inner>, pubsub: PubSub) {
    let mut subscribed: HashSet<String> = HashSet::new();
    loop {
        let Message::Msg(t) = ctx.recv().await else {
            continue;
        };
        let Some(inner) = hub.upgrade() else {
            return;
        };
        let hub = Hub { inner };
        match &t {
            Term::Tuple(el) if el.len() == 2 && el[0].as_atom() == Some("orbit_web_sync") => {
                let Some(topic) = text(el.get(1)) else {
                    continue;
                };
                let wanted = hub.subscribers(&topic) > 0;
                if wanted && subscribed.insert(topic.clone()) {
                    if let Err(e) = pubsub.subscribe(&topic) {
                        tracing::warn!(topic, error = %e, "orbit-web: cannot subscribe to PubSub");
                        subscribed.remove(&topic);
                    }
                } else if !wanted && subscribed.remove(&topic) {
                    let _ = pubsub.unsubscribe(&topic);
                }
            }
            Term::Map(_) => {
                let is_broadcast = t.map_get(&Term::atom("__struct__")).and_then(Term::as_atom)
                    == Some(BROADCAST_STRUCT);
                let topic = text(t.map_get(&Term::atom("topic")));
                let event = text(t.map_get(&Term::atom("event")));
                let payload = t.map_get(&Term::atom("payload")).map(json_term::to_json);
                match (is_broadcast, topic, event, payload) {
                    (true, Some(topic), Some(event), Some(Ok(payload))) => {
                        hub.fan_out(&topic, &event, &payload, None)
                    }
                    _ => {
                        hub.inner.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(message = %t, "orbit-web: a PubSub message that is not a Phoenix.Socket.Broadcast with a JSON payload was dropped");
                    }
                }
            }
            other => {
                hub.inner.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(message = %other, "orbit-web: unexpected message to the hub dropped");
            }
        }
    }
}
