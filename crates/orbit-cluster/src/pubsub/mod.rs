//! Phoenix.PubSub (the PG2 adapter of phoenix_pubsub 2.x), wire-compatible: an Orbit node
//! takes part in an Elixir cluster's PubSub, and Orbit-only clusters use the same API.
//!
//! [`PubSub::start`]`("MyApp.PubSub", n)` starts the `pg` scope `'Elixir.Phoenix.PubSub'`
//! and `n` workers, each registered under one of the adapter's group atoms
//! (`'Elixir.MyApp.PubSub.Adapter'`, `..._2`, ..., `..._n`) and joined to that group.
//! A worker receiving `{forward_to_local, Topic, Message, Dispatcher}` delivers `Message`
//! to this node's subscribers of `Topic`. A broadcast picks one group, sends that tuple
//! to every member of it on other nodes (one per node) and delivers locally itself. The
//! group is chosen by the sender's pid (Phoenix hashes `self()`), so one sender's
//! broadcasts go through one worker per node and keep their order.
//!
//! Contract (as Phoenix.PubSub): topics are binaries (`&str` here); subscriptions belong
//! to the calling process and end with it; a process subscribed twice gets a message
//! twice; `broadcast_from` skips the sender on every node (`from` is not forwarded: the
//! sender is local). Subscribers receive the message as an [`orbit_term::Term`] or, after
//! [`PubSub::subscribe_typed`], deserialized into their mailbox type.
//!
//! Differences from Phoenix.PubSub: the pool size must match the cluster's (as with
//! Phoenix, a node missing a group misses the broadcasts sent through it); the dispatcher
//! is a hint only: every dispatcher is a plain send to each subscriber (Phoenix channels'
//! fastlane is not implemented); workers are not restarted if they die; no
//! `node_name` option (the node's name is used).

use std::sync::{Arc, OnceLock};

use orbit::{Keys, Pid, Registry};
use orbit_term::Term;
use parking_lot::RwLock;
use serde::Serialize;

use crate::pg::{self, PgError, Scope};

/// The `pg` scope every Phoenix.PubSub uses.
pub const SCOPE: &str = "Elixir.Phoenix.PubSub";

/// The default dispatcher (a plain send to each subscriber).
pub const DISPATCHER: &str = "Elixir.Phoenix.PubSub";

/// Why a PubSub operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// The scope or a worker could not start or join.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// Subscriptions belong to a process.
    #[error("subscribe from an Orbit process (the subscription belongs to the caller): {0}")]
    Registry(#[from] orbit::registry::RegistryError),
    /// The message cannot be encoded as a term.
    #[error("the message cannot be encoded as an Erlang term: {0}")]
    Encode(String),
    /// A worker could not start or be registered under its group name.
    #[error("PubSub worker {name:?} cannot start: {reason}")]
    Worker {
        /// The worker's name (a group atom).
        name: String,
        /// Why.
        reason: String,
    },
    /// A direct broadcast could not be sent (e.g. this node is not distributed).
    #[error("the broadcast cannot be sent: {0}")]
    Send(#[from] orbit::SendError),
    /// `pool_size` must be at least 1.
    #[error("pool_size must be at least 1 (Phoenix's default is 1)")]
    PoolSize,
    /// A PubSub of this name is already running.
    #[error("a PubSub named {0:?} is already running; use PubSub::named")]
    Running(String),
}

struct Inner {
    name: String,
    groups: Vec<String>,
    workers: Vec<Pid>,
    subs: Registry<Vec<u8>, ()>,
    scope: Scope,
}

/// A running PubSub: cheap to clone.
#[derive(Clone)]
pub struct PubSub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PubSub({:?}, pool {})",
            self.inner.name,
            self.inner.groups.len()
        )
    }
}

fn running() -> &'static RwLock<Vec<PubSub>> {
    static R: OnceLock<RwLock<Vec<PubSub>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The module atom for an Elixir alias: `MyApp.PubSub` -> `Elixir.MyApp.PubSub`.
pub fn module_atom(name: &str) -> String {
    if name.starts_with("Elixir.") {
        name.to_string()
    } else {
        format!("Elixir.{name}")
    }
}

/// The adapter's group atoms for `name` and `pool_size` (`pg2.ex`'s `groups/2`).
pub fn group_names(name: &str, pool_size: usize) -> Vec<String> {
    let adapter = format!("{}.Adapter", module_atom(name));
    (1..=pool_size)
        .map(|i| {
            if i == 1 {
                adapter.clone()
            } else {
                format!("{adapter}_{i}")
            }
        })
        .collect()
}

fn forward(topic: &[u8], msg: &Term, dispatcher: &str) -> Term {
    Term::tuple(vec![
        Term::atom("forward_to_local"),
        Term::Binary(topic.to_vec()),
        msg.clone(),
        Term::atom(dispatcher),
    ])
}

fn encode<T: Serialize + ?Sized>(msg: &T) -> Result<Term, PubSubError> {
    orbit_term::to_term(msg).map_err(|e| PubSubError::Encode(e.to_string()))
}

/// Delivers to one local subscriber: a `Term` mailbox directly, a typed one (declared with
/// `orbit_dist::serve`) through the term's encoding.
fn deliver(pid: Pid, msg: &Term) {
    match orbit::send(pid, msg.clone()) {
        Err(orbit::SendError::WrongType(_)) => {
            if let Err(e) = orbit_dist::send(pid, msg) {
                tracing::debug!(%pid, error = %e, "pubsub: a subscriber did not take the message");
            }
        }
        Err(e) => tracing::trace!(%pid, error = %e, "pubsub: subscriber gone"),
        Ok(()) => {}
    }
}

impl PubSub {
    /// Starts the PubSub `name` (an Elixir alias such as `"MyApp.PubSub"`, or its atom
    /// `"Elixir.MyApp.PubSub"`) with `pool_size` workers (the cluster's `:pool_size`;
    /// Phoenix's default is 1). Call it inside a tokio runtime.
    pub async fn start(name: &str, pool_size: usize) -> Result<PubSub, PubSubError> {
        if pool_size == 0 {
            return Err(PubSubError::PoolSize);
        }
        let atom = module_atom(name);
        if PubSub::named(&atom).is_some() {
            return Err(PubSubError::Running(atom));
        }
        let scope = pg::start_scope(SCOPE)?;
        let subs = Registry::<Vec<u8>, ()>::start(Keys::Duplicate, &format!("{atom}.Orbit"))?;
        let groups = group_names(&atom, pool_size);
        let mut workers = Vec::with_capacity(pool_size);
        for g in &groups {
            match start_worker(&scope, &subs, g).await {
                Ok(h) => workers.push(h),
                Err(e) => {
                    // Undo: the workers started so far exit (which also leaves their
                    // groups and frees their names) and the registry's name is freed,
                    // so a retry can start afresh once this returns.
                    for w in workers {
                        orbit::exit(w.pid(), orbit::ExitReason::Kill);
                        w.wait_exit().await;
                    }
                    subs.stop();
                    return Err(e);
                }
            }
        }
        let ps = PubSub {
            inner: Arc::new(Inner {
                name: atom,
                groups,
                workers: workers.iter().map(|h| h.pid()).collect(),
                subs,
                scope,
            }),
        };
        running().write().push(ps.clone());
        Ok(ps)
    }

    /// The running PubSub `name` (alias or atom).
    pub fn named(name: &str) -> Option<PubSub> {
        let atom = module_atom(name);
        running()
            .read()
            .iter()
            .find(|p| p.inner.name == atom)
            .cloned()
    }

    /// The PubSub's atom (`Elixir.MyApp.PubSub`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The adapter's group atoms, one worker each.
    pub fn groups(&self) -> &[String] {
        &self.inner.groups
    }

    /// The workers' pids, in the order of [`groups`](Self::groups).
    pub fn workers(&self) -> &[Pid] {
        &self.inner.workers
    }

    /// Subscribes the calling process to `topic`; it receives each message as an
    /// [`orbit_term::Term`] (its mailbox type must be `Term`, or see
    /// [`subscribe_typed`](Self::subscribe_typed)).
    pub fn subscribe(&self, topic: &str) -> Result<(), PubSubError> {
        Ok(self.inner.subs.register(topic.as_bytes().to_vec(), ())?)
    }

    /// Subscribes the calling process, whose mailbox holds `M`, to `topic`: messages are
    /// deserialized into `M` (through `orbit_dist::serve::<M>` on the caller's pid; a
    /// message that does not deserialize is logged and dropped). The declaration stays
    /// in `orbit-dist`'s table after the process exits (call `orbit_dist::unserve` with
    /// its pid to drop it).
    pub fn subscribe_typed<M>(&self, topic: &str) -> Result<(), PubSubError>
    where
        M: serde::de::DeserializeOwned + std::any::Any + Send,
    {
        let me = orbit::self_pid().ok_or(orbit::registry::RegistryError::NotInProcess)?;
        orbit_dist::serve::<M>(me);
        self.subscribe(topic)
    }

    /// Removes the calling process's subscriptions to `topic`.
    pub fn unsubscribe(&self, topic: &str) -> Result<(), PubSubError> {
        Ok(self.inner.subs.unregister(&topic.as_bytes().to_vec())?)
    }

    /// The local subscribers of `topic` (a pid subscribed twice is listed twice).
    pub fn subscribers(&self, topic: &str) -> Vec<Pid> {
        self.inner
            .subs
            .lookup(&topic.as_bytes().to_vec())
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    fn dispatch_local(&self, topic: &[u8], msg: &Term, except: Option<Pid>) -> usize {
        let mut n = 0;
        self.inner.subs.dispatch(&topic.to_vec(), |entries| {
            for (pid, _) in entries {
                if Some(*pid) != except {
                    deliver(*pid, msg);
                    n += 1;
                }
            }
        });
        n
    }

    fn remote(&self, topic: &[u8], msg: &Term) {
        let groups = &self.inner.groups;
        // One group per sender, as Phoenix's `phash2(self())`: a sender's messages all
        // take the same worker on each node, so they arrive in the order sent.
        let i = orbit::self_pid().map_or(0, |p| {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            p.hash(&mut h);
            (h.finish() % groups.len() as u64) as usize
        });
        let g = &groups[i];
        let fwd = forward(topic, msg, DISPATCHER);
        for pid in self.inner.scope.get_members(g.as_str()) {
            if !pid.is_local() {
                if let Err(e) = orbit_dist::send(pid, &fwd) {
                    tracing::debug!(%pid, error = %e, "pubsub: forward to a remote worker failed");
                }
            }
        }
    }

    /// `msg` to the subscribers of `topic` on every other node, none on this one: for a
    /// caller that delivers on this node itself (a fastlane, such as orbit-web's
    /// channels, which queue a broadcast on their sockets directly).
    pub fn remote_broadcast<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        msg: &T,
    ) -> Result<(), PubSubError> {
        let t = encode(msg)?;
        self.remote(topic.as_bytes(), &t);
        Ok(())
    }

    /// `Phoenix.PubSub.broadcast/3`: `msg` to every subscriber of `topic` on every node.
    pub fn broadcast<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        msg: &T,
    ) -> Result<(), PubSubError> {
        let t = encode(msg)?;
        self.remote(topic.as_bytes(), &t);
        self.dispatch_local(topic.as_bytes(), &t, None);
        Ok(())
    }

    /// `Phoenix.PubSub.broadcast_from/4`: as [`broadcast`](Self::broadcast), but not to
    /// `from` (a local process).
    pub fn broadcast_from<T: Serialize + ?Sized>(
        &self,
        from: Pid,
        topic: &str,
        msg: &T,
    ) -> Result<(), PubSubError> {
        let t = encode(msg)?;
        self.remote(topic.as_bytes(), &t);
        self.dispatch_local(topic.as_bytes(), &t, Some(from));
        Ok(())
    }

    /// `Phoenix.PubSub.local_broadcast/3`: this node's subscribers only; returns how
    /// many deliveries were made.
    pub fn local_broadcast<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        msg: &T,
    ) -> Result<usize, PubSubError> {
        let t = encode(msg)?;
        Ok(self.dispatch_local(topic.as_bytes(), &t, None))
    }

    /// `Phoenix.PubSub.local_broadcast_from/4`.
    pub fn local_broadcast_from<T: Serialize + ?Sized>(
        &self,
        from: Pid,
        topic: &str,
        msg: &T,
    ) -> Result<usize, PubSubError> {
        let t = encode(msg)?;
        Ok(self.dispatch_local(topic.as_bytes(), &t, Some(from)))
    }

    /// `Phoenix.PubSub.direct_broadcast/4`: the subscribers of `topic` on `node` only
    /// (sent to the worker registered under the first group's name there).
    pub fn direct_broadcast<T: Serialize + ?Sized>(
        &self,
        node: &str,
        topic: &str,
        msg: &T,
    ) -> Result<(), PubSubError> {
        let t = encode(msg)?;
        if orbit::pid::local_node().as_ref() == node {
            self.dispatch_local(topic.as_bytes(), &t, None);
            return Ok(());
        }
        let fwd = forward(topic.as_bytes(), &t, DISPATCHER);
        Ok(orbit_dist::send_named(node, &self.inner.groups[0], &fwd)?)
    }
}

/// Starts the worker for group `g`: registered under `g`, joined to `g` in the scope.
async fn start_worker(
    scope: &Scope,
    subs: &Registry<Vec<u8>, ()>,
    g: &str,
) -> Result<orbit::Handle<Term>, PubSubError> {
    let reg = subs.clone();
    let h = orbit::Spawn::new()
        .label("pubsub worker")
        .spawn(move |ctx: orbit::Context<Term>| worker(ctx, reg))
        .map_err(|e| PubSubError::Worker {
            name: g.to_string(),
            reason: e.to_string(),
        })?;
    if let Err(e) = orbit::register(g, h.pid()) {
        orbit::exit(h.pid(), orbit::ExitReason::Kill);
        h.wait_exit().await;
        return Err(PubSubError::Worker {
            name: g.to_string(),
            reason: format!("{e} (is another process registered under this name?)"),
        });
    }
    if let Err(e) = scope.join(g, h.pid()).await {
        orbit::exit(h.pid(), orbit::ExitReason::Kill);
        h.wait_exit().await;
        return Err(e.into());
    }
    Ok(h)
}

/// A worker: `{forward_to_local, Topic, Message, Dispatcher}` -> local subscribers.
async fn worker(mut ctx: orbit::Context<Term>, subs: Registry<Vec<u8>, ()>) {
    loop {
        let orbit::Message::Msg(t) = ctx.recv().await else {
            continue;
        };
        let parsed = match &t {
            Term::Tuple(e) if e.len() == 4 && e[0].as_atom() == Some("forward_to_local") => {
                match (&e[1], &e[3]) {
                    (Term::Binary(topic), Term::Atom(_)) => Some((topic, &e[2])),
                    _ => None,
                }
            }
            _ => None,
        };
        match parsed {
            Some((topic, msg)) => {
                subs.dispatch(topic, |entries| {
                    for (pid, _) in entries {
                        deliver(*pid, msg);
                    }
                });
            }
            None => {
                tracing::debug!(msg = %crate::pg::short_term(&t), "pubsub worker: ignored an unknown message")
            }
        }
    }
}
