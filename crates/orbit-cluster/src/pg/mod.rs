//! Process groups compatible with OTP's `:pg` (OTP 23+), on the wire and in behaviour.
//!
//! A *scope* ([`start_scope`], the default one is [`DEFAULT_SCOPE`] = `pg`) is an Orbit
//! process registered under the scope's name that speaks `pg.erl`'s scope protocol with
//! the scopes of the same name on other nodes, Orbit's and the BEAM's alike: `{discover,
//! Peer}` on every visible node-up, `sync` in reply to a discover, `join`/`leave` to every
//! known peer, and a monitor on each peer scope whose `DOWN` (`noconnection` included)
//! drops that peer's members. So `:pg.get_members(scope, group)` on an Elixir node lists
//! Orbit pids and [`Scope::get_members`] lists BEAM pids.
//!
//! Contract, as `:pg`:
//! - groups are any [`Term`] (a `&str` becomes an atom); members are pids;
//! - only local pids join or leave from this node; each node is the authority for its
//!   own members, membership is eventually consistent, no locks;
//! - members are listed newest first, and a pid joined twice is listed twice;
//! - a local member's exit sends one `leave` with all its groups to every peer;
//! - reads ([`Scope::get_members`], [`Scope::get_local_members`], [`Scope::which_groups`])
//!   take a read lock on the scope's shared table: no message round trip (OTP's ETS).
//!
//! Differences from OTP: a malformed message from a peer (wrong shape, a member that is
//! not a pid or not on the peer's node, a local pid posing as a peer) is logged and
//! ignored where OTP's scope crashes and loses its node's memberships. `join`/`leave` are
//! `async` (a request to the scope process, like OTP's `gen_server:call`).
//! [`Scope::monitor`]/[`Scope::monitor_scope`] (OTP 25.1+) return a channel of
//! [`GroupEvent`]s rather than sending `{Ref, join, ...}` messages. Orbit sends only the
//! `{discover, Peer}` 2-tuple (OTP 25 crashes on the 3-tuple) and accepts both.

mod scope;
mod table;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use orbit::{Handle, Pid};
use orbit_term::Term;
use parking_lot::RwLock;
use tokio::sync::oneshot;

use scope::{ScopeMsg, State};
use table::Groups;
pub(crate) use wire::short as short_term;

/// The scope OTP's kernel starts with `-kernel start_pg true`.
pub const DEFAULT_SCOPE: &str = "pg";

/// Why a `pg` operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    /// Only local pids join or leave (as `:pg`, which raises `badarg`).
    #[error("{0} is not a pid of this node: join and leave take local pids only (each node manages its own members)")]
    NotLocal(Pid),
    /// The scope is not running: start it with `pg::start_scope`.
    #[error("the pg scope {0:?} is not running: start it with orbit_cluster::pg::start_scope")]
    NoScope(String),
    /// The scope's name is taken by another process, or the scope could not start.
    #[error("the pg scope {scope:?} cannot start: {reason}")]
    Start {
        /// The scope.
        scope: String,
        /// Why.
        reason: String,
    },
    /// The scope process stopped while handling the request.
    #[error("the pg scope {0:?} stopped during the request")]
    ScopeDown(String),
}

/// A change in a monitored group ([`Scope::monitor`], [`Scope::monitor_scope`]): OTP's
/// `{Ref, join | leave, Group, Pids}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// `pids` joined `group` (newest first).
    Join {
        /// The group.
        group: Term,
        /// Who joined.
        pids: Vec<Pid>,
    },
    /// `pids` left `group` (a leave, an exit, a peer's `sync` or its scope going down).
    Leave {
        /// The group.
        group: Term,
        /// Who left.
        pids: Vec<Pid>,
    },
}

/// The changes a monitor receives, in the order the scope applied them.
pub type GroupEvents = tokio::sync::mpsc::UnboundedReceiver<GroupEvent>;

/// A group name: any term. `&str` and `String` become atoms (`"workers"` is `:workers`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group(pub Term);

impl From<&str> for Group {
    fn from(s: &str) -> Self {
        Group(Term::atom(s))
    }
}

impl From<String> for Group {
    fn from(s: String) -> Self {
        Group(Term::atom(&s))
    }
}

impl From<Term> for Group {
    fn from(t: Term) -> Self {
        Group(t)
    }
}

impl From<&Term> for Group {
    fn from(t: &Term) -> Self {
        Group(t.clone())
    }
}

/// One pid or several, as `:pg`'s `PidOrPids` (the wire form follows: a pid or a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    pids: Vec<Pid>,
    single: bool,
}

impl From<Pid> for Members {
    fn from(p: Pid) -> Self {
        Members {
            pids: vec![p],
            single: true,
        }
    }
}

impl From<Vec<Pid>> for Members {
    fn from(pids: Vec<Pid>) -> Self {
        Members {
            pids,
            single: false,
        }
    }
}

impl From<&[Pid]> for Members {
    fn from(pids: &[Pid]) -> Self {
        Members {
            pids: pids.to_vec(),
            single: false,
        }
    }
}

/// A running scope: cheap to clone; reads go to its shared table.
#[derive(Clone)]
pub struct Scope {
    name: Arc<str>,
    handle: Handle<ScopeMsg>,
    table: Arc<RwLock<Groups>>,
    ignored: Arc<AtomicU64>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scope({:?}, {})", self.name, self.handle.pid())
    }
}

fn scopes() -> &'static RwLock<HashMap<String, Scope>> {
    static S: OnceLock<RwLock<HashMap<String, Scope>>> = OnceLock::new();
    S.get_or_init(Default::default)
}

/// Starts the scope `name` (an atom, e.g. [`DEFAULT_SCOPE`] or `"Elixir.Phoenix.PubSub"`)
/// or returns it when it already runs. It registers the name, serves it to other nodes,
/// and, when this node is distributed ([`orbit_dist::Node`] started), sends `{discover,
/// Me}` to the scope of every visible node now and on every node-up.
///
/// Call it inside a tokio runtime (it spawns the scope process), after
/// [`orbit_dist::Node::start`] when the scope is to reach other nodes: a scope started
/// before the node stays local (it subscribed to no node events).
pub fn start_scope(name: &str) -> Result<Scope, PgError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(PgError::Start {
            scope: name.to_string(),
            reason: "not inside a tokio runtime: call it from an Orbit process or a task".into(),
        });
    }
    let mut all = scopes().write();
    if let Some(s) = all.get(name) {
        if s.handle.is_alive() {
            return Ok(s.clone());
        }
    }
    let name: Arc<str> = Arc::from(name);
    let table: Arc<RwLock<Groups>> = Arc::default();
    let (tx, rx) = oneshot::channel::<State>();
    let handle = orbit::Spawn::new()
        .label("pg scope")
        .spawn(move |ctx: orbit::Context<ScopeMsg>| async move {
            if let Ok(state) = rx.await {
                state.run(ctx).await;
            }
        })
        .map_err(|e| PgError::Start {
            scope: name.to_string(),
            reason: e.to_string(),
        })?;
    let pid = handle.pid();
    if let Err(e) = orbit::register(&name, pid) {
        orbit::exit(pid, orbit::ExitReason::Kill);
        return Err(PgError::Start {
            scope: name.to_string(),
            reason: format!("{e} (is another process registered under the scope's name?)"),
        });
    }
    orbit_dist::serve::<ScopeMsg>(orbit_dist::Target::Name(name.to_string()));
    orbit_dist::serve::<ScopeMsg>(pid);
    let ignored: Arc<AtomicU64> = Arc::default();
    let state = State::new(name.clone(), pid, table.clone(), ignored.clone());
    if let Some(node) = orbit_dist::Node::current() {
        let mut events = node.monitor_nodes();
        for n in node.list() {
            state.discover_node(&n);
        }
        let h = handle.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let orbit_dist::NodeEvent::NodeUp(n) = ev {
                    // Visible nodes only, as pg's nodeup subscription.
                    if !node.list().contains(&n) {
                        continue;
                    }
                    if h.send(ScopeMsg::NodeUp(n)).is_err() {
                        break;
                    }
                }
            }
        });
    }
    let _ = tx.send(state);
    let scope = Scope {
        name: name.clone(),
        handle,
        table,
        ignored,
    };
    all.insert(name.to_string(), scope.clone());
    Ok(scope)
}

/// The running scope `name`, if any.
pub fn scope(name: &str) -> Option<Scope> {
    scopes()
        .read()
        .get(name)
        .filter(|s| s.handle.is_alive())
        .cloned()
}

fn running(name: &str) -> Result<Scope, PgError> {
    scope(name).ok_or_else(|| PgError::NoScope(name.to_string()))
}

impl Scope {
    /// The scope's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scope process.
    pub fn pid(&self) -> Pid {
        self.handle.pid()
    }

    /// `pg:join(Scope, Group, PidOrPids)`: joins local pids to `group` (newest first;
    /// joining twice lists twice) and tells every known peer scope. Each pid is monitored:
    /// its exit removes it from all its groups.
    pub async fn join(
        &self,
        group: impl Into<Group>,
        pids: impl Into<Members>,
    ) -> Result<(), PgError> {
        let m = local_only(pids.into())?;
        self.ask(|reply| ScopeMsg::Join {
            group: group.into().0,
            pids: m.pids,
            single: m.single,
            reply,
        })
        .await
    }

    /// `pg:leave(Scope, Group, PidOrPids)`: removes one membership of each local pid;
    /// `Ok(false)` is OTP's `not_joined` (none of them was in the group).
    pub async fn leave(
        &self,
        group: impl Into<Group>,
        pids: impl Into<Members>,
    ) -> Result<bool, PgError> {
        let m = local_only(pids.into())?;
        self.ask(|reply| ScopeMsg::Leave {
            group: group.into().0,
            pids: m.pids,
            single: m.single,
            reply,
        })
        .await
    }

    /// `pg:monitor(Scope, Group)`: the group's members now and a stream of its changes
    /// (the first event follows the snapshot exactly). Drop the receiver to stop
    /// (OTP's `demonitor`). A peer's `sync` that changes its members shows as a `Leave`
    /// of its old members then a `Join` of its new ones.
    pub async fn monitor(
        &self,
        group: impl Into<Group>,
    ) -> Result<(Vec<Pid>, GroupEvents), PgError> {
        let group = Some(group.into().0);
        let (mut now, events) = self.ask(|reply| ScopeMsg::Monitor { group, reply }).await?;
        Ok((now.pop().map(|(_, p)| p).unwrap_or_default(), events))
    }

    /// `pg:monitor_scope(Scope)`: every group's members now and a stream of changes to
    /// any group.
    pub async fn monitor_scope(&self) -> Result<(HashMap<Term, Vec<Pid>>, GroupEvents), PgError> {
        let (now, events) = self
            .ask(|reply| ScopeMsg::Monitor { group: None, reply })
            .await?;
        Ok((now.into_iter().collect(), events))
    }

    /// Waits until the scope has handled everything queued to it before this call (its
    /// own requests and peers' messages that already arrived).
    pub async fn barrier(&self) -> Result<(), PgError> {
        self.ask(ScopeMsg::Barrier).await
    }

    /// Sends the scope the request `make` builds around a reply slot and waits for the
    /// answer; a scope that is gone (before or while answering) is `ScopeDown`.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> ScopeMsg,
    ) -> Result<T, PgError> {
        let down = || PgError::ScopeDown(self.name.to_string());
        let (reply, rx) = oneshot::channel();
        self.handle.send(make(reply)).map_err(|_| down())?;
        rx.await.map_err(|_| down())
    }

    /// `pg:get_members(Scope, Group)`: all members on every node, newest first.
    pub fn get_members(&self, group: impl Into<Group>) -> Vec<Pid> {
        let g = group.into().0;
        self.table
            .read()
            .get(&g)
            .map(|e| e.all.iter().copied().collect())
            .unwrap_or_default()
    }

    /// `pg:get_local_members(Scope, Group)`: the members on this node, newest first.
    pub fn get_local_members(&self, group: impl Into<Group>) -> Vec<Pid> {
        let g = group.into().0;
        self.table
            .read()
            .get(&g)
            .map(|e| e.local.iter().copied().collect())
            .unwrap_or_default()
    }

    /// `pg:which_groups(Scope)`: every group with at least one member anywhere.
    pub fn which_groups(&self) -> Vec<Term> {
        self.table.read().keys().cloned().collect()
    }

    /// How many messages from other nodes this scope ignored as malformed or invalid
    /// (each is logged as a warning; OTP's scope would have crashed).
    pub fn ignored(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }

    /// The groups with at least one member on this node.
    pub fn which_local_groups(&self) -> Vec<Term> {
        self.table
            .read()
            .iter()
            .filter(|(_, e)| !e.local.is_empty())
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Stops the scope process: peers drop this node's members (they monitor it), and
    /// this node forgets everything. A later [`start_scope`] starts afresh.
    pub fn stop(&self) {
        scopes()
            .write()
            .retain(|_, s| s.handle.pid() != self.handle.pid());
        orbit_dist::unserve(orbit_dist::Target::Name(self.name.to_string()));
        orbit_dist::unserve(self.handle.pid());
        orbit::exit(self.handle.pid(), orbit::ExitReason::Kill);
    }
}

/// `pg:join(Scope, Group, PidOrPids)` on the running scope `scope`.
pub async fn join(
    scope: &str,
    group: impl Into<Group>,
    pids: impl Into<Members>,
) -> Result<(), PgError> {
    running(scope)?.join(group, pids).await
}

/// `pg:leave(Scope, Group, PidOrPids)` on the running scope `scope`; `Ok(false)` is
/// `not_joined`.
pub async fn leave(
    scope: &str,
    group: impl Into<Group>,
    pids: impl Into<Members>,
) -> Result<bool, PgError> {
    running(scope)?.leave(group, pids).await
}

/// `pg:get_members(Scope, Group)`; empty when the scope is not running.
pub fn get_members(scope: &str, group: impl Into<Group>) -> Vec<Pid> {
    self::scope(scope)
        .map(|s| s.get_members(group))
        .unwrap_or_default()
}

/// `pg:get_local_members(Scope, Group)`; empty when the scope is not running.
pub fn get_local_members(scope: &str, group: impl Into<Group>) -> Vec<Pid> {
    self::scope(scope)
        .map(|s| s.get_local_members(group))
        .unwrap_or_default()
}

/// `pg:which_groups(Scope)`; empty when the scope is not running.
pub fn which_groups(scope: &str) -> Vec<Term> {
    self::scope(scope)
        .map(|s| s.which_groups())
        .unwrap_or_default()
}

/// `m` if every pid in it is local (`join`/`leave` take only this node's processes, as
/// OTP's `pg` does), else `NotLocal` naming the first remote one.
fn local_only(m: Members) -> Result<Members, PgError> {
    match m.pids.iter().find(|p| !p.is_local()) {
        Some(p) => Err(PgError::NotLocal(*p)),
        None => Ok(m),
    }
}
