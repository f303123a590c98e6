//! Cluster-wide names and locks compatible with OTP's `:global` (protocol version 8,
//! OTP 25), on the wire and in behaviour.
//!
//! [`start`] (called by [`crate::start`]) runs this node's `global_name_server`: it
//! replaces `orbit-dist`'s stub service of that name, takes part in the
//! synchronisation every BEAM node starts with a new visible node (`init_connect`,
//! `init_connect_ack`, `lock_set`, `exchange`, `resolved`, `in_sync`, `new_nodes`), and
//! answers the calls peers make (`set_lock`, `del_lock`, `register`, `unregister`,
//! `register_ext`, `get_known`, `get_synced`, ...). So, with an Orbit node connected:
//! `:global.register_name/2`, `whereis_name/1`, `trans/2`, `set_lock/1,3` and
//! `:global.sync/0` work on Elixir/Erlang nodes as between BEAM nodes, names registered
//! there are seen here ([`whereis_name`]) and names registered here are seen there.
//!
//! The API follows `global`'s:
//! - [`register_name`] / [`re_register_name`] / [`unregister_name`] take `global`'s own
//!   lock `{global, Registrar}` on this node and every known node, then call each
//!   node's name server (OTP's `trans_all_known`, run by one registrar process);
//!   [`whereis_name`] and [`registered_names`] read this node's table (no round trip);
//! - a registered name goes when its process exits (every node monitors it) or its
//!   node goes down;
//! - [`set_lock`] / [`del_lock`] / [`trans`] take `{ResourceId, LockRequesterId}` locks
//!   on a list of nodes (default [`all_nodes`]: this node and every visible one), with
//!   OTP's retry back-off (1/4 s doubling to 8 s, random); the holder is the calling
//!   Orbit process (or the node's system process outside one): a holder that dies or
//!   whose node goes down loses its locks.
//!
//! Name conflicts on merge, as OTP: when two nodes synchronise, the one whose name
//! sorts first resolves each name registered on both with different pids, by running
//! the name's resolve method on the node of the pid that holds it there
//! (`global:resolve_it/4`, which Orbit serves over erpc for BEAM nodes that resolve
//! over an Orbit pid). Orbit runs OTP's three methods (module `resolve`):
//! `random_exit_name/3`, the default and the method of every name registered from
//! Orbit (`fun global:random_exit_name/3` on the wire): the pid on the node whose name
//! sorts first keeps the name everywhere and the other process is killed
//! (`exit(Pid, kill)`, as OTP; the other process does not receive
//! `{global_name_conflict, Name}`); `random_notify_name/3` (the other gets
//! `{global_name_conflict, Name}`); `notify_all_name/3` (both get
//! `{global_name_conflict, Name, OtherPid}`, the name goes). A BEAM fun method cannot
//! run on Orbit: the name is dropped, as OTP drops it when the method fails. When Orbit
//! resolves a conflict whose current pid is on a third node it does not call that
//! node: the incoming registration wins, as OTP does when that `rpc` fails.
//!
//! Locking during a synchronisation: Orbit answers the peer's locker and locks only
//! itself (the peer locks its own partition; OTP's locker would also lock this node's
//! other known nodes); with another Orbit node (whose `init_connect` says it is one),
//! Orbit locks itself first and sends `lock_set`, so two Orbit nodes synchronise
//! without a BEAM node between them.
//!
//! Other differences from OTP: Orbit does not send `lost_connection` (OTP's
//! overlapping-partition prevention) but honours `remove_connection` by disconnecting;
//! `register_name_external` names are kept as plain names; a malformed or unexpected
//! message is logged, counted ([`ignored`]) and dropped, and an unexpected call is not
//! answered (as OTP). [`start`] needs a tokio runtime: [`crate::start`] called outside
//! one logs a warning and leaves orbit-dist's stub (which answers the lock calls only).

mod resolve;
mod server;
mod table;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orbit::{Handle, Pid};
use orbit_dist::service::{Inbound, Service, ServiceRequest};
use orbit_term::Term;
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use server::{GlobalMsg, Server, Shared};

/// Why a `global` operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobalError {
    /// `global` is not running on this node.
    #[error("global is not running: start the node (orbit_dist::Node::start) and call orbit_cluster::start or orbit_cluster::global::start inside a tokio runtime")]
    NotRunning,
    /// The server could not start.
    #[error("global cannot start: {0}")]
    Start(String),
    /// The server stopped during the request.
    #[error("the global name server stopped during the request")]
    Stopped,
}

/// A global name: any term. `&str` and `String` become atoms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GlobalName(pub Term);

impl From<&str> for GlobalName {
    fn from(s: &str) -> Self {
        GlobalName(Term::atom(s))
    }
}

impl From<String> for GlobalName {
    fn from(s: String) -> Self {
        GlobalName(Term::atom(&s))
    }
}

impl From<Term> for GlobalName {
    fn from(t: Term) -> Self {
        GlobalName(t)
    }
}

/// A lock id, OTP's `{ResourceId, LockRequesterId}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockId {
    /// What is locked.
    pub resource: Term,
    /// Who locks it: the same requester may take a lock several times (from several
    /// processes); another requester is refused while it is held.
    pub requester: Term,
}

impl LockId {
    /// `{resource, requester}`.
    pub fn new(resource: impl Into<Term>, requester: impl Into<Term>) -> LockId {
        LockId {
            resource: resource.into(),
            requester: requester.into(),
        }
    }

    fn term(&self) -> Term {
        Term::tuple(vec![self.resource.clone(), self.requester.clone()])
    }
}

/// How many times [`set_lock`] retries after a refusal (OTP's `Retries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// Until granted (`infinity`, OTP's default).
    Infinity,
    /// At most this many retries (`0`: one attempt).
    Times(u32),
}

struct Running {
    server: Handle<GlobalMsg>,
    registrar: Handle<RegistrarMsg>,
    shared: Arc<RwLock<Shared>>,
    ignored: Arc<AtomicU64>,
    me: String,
}

fn running_slot() -> &'static Mutex<Option<Arc<Running>>> {
    static R: OnceLock<Mutex<Option<Arc<Running>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn running() -> Result<Arc<Running>, GlobalError> {
    running_slot()
        .lock()
        .as_ref()
        .filter(|r| r.server.is_alive())
        .cloned()
        .ok_or(GlobalError::NotRunning)
}

/// The service registered under `global_name_server`: hands everything to the server.
struct GlobalService {
    server: Handle<GlobalMsg>,
}

impl Service for GlobalService {
    fn message(&self, msg: Inbound<'_>) {
        let peer = msg.peer.to_string();
        let m = match msg.request() {
            Some(ServiceRequest::Call(c)) => GlobalMsg::Call(c, peer),
            Some(ServiceRequest::Cast(t)) | Some(ServiceRequest::Info(t)) => {
                GlobalMsg::Wire(t, peer)
            }
            None => GlobalMsg::Undecodable(peer),
        };
        if self.server.send(m).is_err() {
            tracing::debug!("global: the name server is gone, message dropped");
        }
    }
}

/// Starts this node's `global_name_server` (idempotent) and registers it as the
/// service of that name, replacing the stub. Call it inside a tokio runtime after
/// [`orbit_dist::Node::start`]; it synchronises with every visible node now and on
/// every node-up.
pub fn start() -> Result<(), GlobalError> {
    let mut slot = running_slot().lock();
    if slot.as_ref().is_some_and(|r| r.server.is_alive()) {
        return Ok(());
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(GlobalError::Start(
            "not inside a tokio runtime: call it from an Orbit process or a task".into(),
        ));
    }
    let node = orbit_dist::Node::current().ok_or_else(|| {
        GlobalError::Start("the node is not started: call orbit_dist::Node::start first".into())
    })?;
    let me = node.name();
    let shared: Arc<RwLock<Shared>> = Arc::default();
    let ignored: Arc<AtomicU64> = Arc::default();
    let (tx, rx) = oneshot::channel::<Server>();
    let server = orbit::Spawn::new()
        .label("global_name_server")
        .spawn(move |ctx: orbit::Context<GlobalMsg>| async move {
            if let Ok(s) = rx.await {
                s.run(ctx).await;
            }
        })
        .map_err(|e| GlobalError::Start(e.to_string()))?;
    let _ = tx.send(Server::new(
        me.clone(),
        server.pid(),
        shared.clone(),
        ignored.clone(),
        server.clone(),
    ));
    let registrar = orbit::Spawn::new()
        .label("global registrar")
        .spawn(registrar_loop)
        .map_err(|e| GlobalError::Start(e.to_string()))?;
    orbit_dist::service::register(
        "global_name_server",
        Arc::new(GlobalService {
            server: server.clone(),
        }),
    )
    .map_err(|e| GlobalError::Start(e.to_string()))?;
    // What a BEAM node resolving a conflict over an Orbit pid calls here by rpc.
    if let Err(e) = crate::erpc::register("global", "resolve_it", 4, |a| Ok(resolve::resolve_it(a)))
    {
        tracing::warn!("global: resolve_it not registered with erpc: {e}");
    }
    let mut events = node.monitor_nodes();
    for n in node.list() {
        let _ = server.send(GlobalMsg::NodeUp(n));
    }
    let h = server.clone();
    let n2 = node;
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let m = match ev {
                // Visible nodes only, as global's nodeup subscription.
                orbit_dist::NodeEvent::NodeUp(n) if n2.list().contains(&n) => GlobalMsg::NodeUp(n),
                orbit_dist::NodeEvent::NodeUp(_) => continue,
                orbit_dist::NodeEvent::NodeDown(n, _) => GlobalMsg::NodeDown(n),
            };
            if h.send(m).is_err() {
                break;
            }
        }
    });
    *slot = Some(Arc::new(Running {
        server,
        registrar,
        shared,
        ignored,
        me,
    }));
    Ok(())
}

async fn ask<T>(
    r: &Running,
    make: impl FnOnce(oneshot::Sender<T>) -> GlobalMsg,
) -> Result<T, GlobalError> {
    let (tx, rx) = oneshot::channel();
    r.server.send(make(tx)).map_err(|_| GlobalError::Stopped)?;
    rx.await.map_err(|_| GlobalError::Stopped)
}

/// `global:whereis_name(Name)`: the pid registered as `name` (this node's table).
pub fn whereis_name(name: impl Into<GlobalName>) -> Option<Pid> {
    let r = running().ok()?;
    let n = name.into().0;
    let found = r.shared.read().names.whereis(&n)?;
    // As OTP's `where/1`: a local process that already exited has no name, even before
    // its monitor fires.
    if found.is_local() && orbit::process_info(found).is_none() {
        return None;
    }
    Some(found)
}

/// `global:registered_names()`.
pub fn registered_names() -> Vec<Term> {
    running()
        .map(|r| r.shared.read().names.names())
        .unwrap_or_default()
}

/// The nodes this node has synchronised with (OTP's `get_synced`).
pub fn synced_nodes() -> Vec<String> {
    running()
        .map(|r| r.shared.read().synced.iter().cloned().collect())
        .unwrap_or_default()
}

/// How many messages from other nodes were ignored as malformed or unexpected (each
/// is logged as a warning).
pub fn ignored() -> u64 {
    running()
        .map(|r| r.ignored.load(Ordering::Relaxed))
        .unwrap_or(0)
}

/// This node and every visible node: the default node list of [`set_lock`]/[`trans`]
/// (OTP's `[node() | nodes()]`).
pub fn all_nodes() -> Vec<String> {
    match orbit_dist::Node::current() {
        Some(n) => {
            let mut l = vec![n.name()];
            l.extend(n.list());
            l
        }
        None => Vec::new(),
    }
}

/// Waits until the name server has handled everything it received before this call.
pub async fn barrier() -> Result<(), GlobalError> {
    let r = running()?;
    ask(&r, GlobalMsg::Barrier).await
}

/// `global:register_name(Name, Pid)`: `Ok(true)` (`yes`) when registered on every
/// known node, `Ok(false)` (`no`) when the name is taken or `pid` already has a name.
pub async fn register_name(name: impl Into<GlobalName>, pid: Pid) -> Result<bool, GlobalError> {
    registrar(name.into().0, Some(pid), false).await
}

/// `global:re_register_name(Name, Pid)`: registers `pid` as `name` whoever had it.
pub async fn re_register_name(name: impl Into<GlobalName>, pid: Pid) -> Result<(), GlobalError> {
    registrar(name.into().0, Some(pid), true).await.map(|_| ())
}

/// `global:unregister_name(Name)` on every known node.
pub async fn unregister_name(name: impl Into<GlobalName>) -> Result<(), GlobalError> {
    let n = name.into().0;
    if whereis_name(n.clone()).is_none() {
        return Ok(());
    }
    registrar(n, None, false).await.map(|_| ())
}

async fn registrar(name: Term, pid: Option<Pid>, re: bool) -> Result<bool, GlobalError> {
    let r = running()?;
    let (tx, rx) = oneshot::channel();
    r.registrar
        .send(RegistrarMsg {
            name,
            pid,
            re,
            reply: tx,
        })
        .map_err(|_| GlobalError::Stopped)?;
    rx.await.map_err(|_| GlobalError::Stopped)
}

/// `global:set_lock(Id, Nodes, Retries)`: takes `id` on every node of `nodes` (this
/// node's name included for a local lock; nodes that are not connected are skipped, as
/// OTP's `multi_call` bad nodes). `Ok(false)` when refused after `retries`.
pub async fn set_lock(
    id: &LockId,
    nodes: &[String],
    retries: Retries,
) -> Result<bool, GlobalError> {
    let r = running()?;
    let holder = orbit::self_pid().unwrap_or_else(orbit_dist::spawn::system_pid);
    let mut times = 1u32;
    let mut left = retries;
    loop {
        if lock_on_nodes(&r, id, nodes, holder).await? {
            return Ok(true);
        }
        match left {
            Retries::Times(0) => return Ok(false),
            Retries::Times(n) => left = Retries::Times(n - 1),
            Retries::Infinity => {}
        }
        random_sleep(times).await;
        times += 1;
    }
}

/// `global:del_lock(Id, Nodes)`: releases the caller's hold of `id` on `nodes`.
pub async fn del_lock(id: &LockId, nodes: &[String]) -> Result<(), GlobalError> {
    let r = running()?;
    let holder = orbit::self_pid().unwrap_or_else(orbit_dist::spawn::system_pid);
    del_on_nodes(&r, id, nodes, holder).await
}

/// `global:trans(Id, Fun, Nodes, Retries)`: runs `f` holding `id` on `nodes`, then
/// releases it; `Ok(None)` is OTP's `aborted` (the lock was refused).
pub async fn trans<T, F, Fut>(
    id: &LockId,
    f: F,
    nodes: &[String],
    retries: Retries,
) -> Result<Option<T>, GlobalError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    if !set_lock(id, nodes, retries).await? {
        return Ok(None);
    }
    let out = f().await;
    del_lock(id, nodes).await?;
    Ok(Some(out))
}

/// How long a call to another node's name server may take before that node counts as
/// not answering (OTP waits forever; a node that goes down ends the call at once).
const REMOTE_CALL: Duration = Duration::from_secs(60);

async fn lock_on_nodes(
    r: &Running,
    id: &LockId,
    nodes: &[String],
    holder: Pid,
) -> Result<bool, GlobalError> {
    let mut granted: Vec<String> = Vec::new();
    let mut refused = false;
    for n in nodes {
        let ok = if *n == r.me {
            ask(r, |reply| GlobalMsg::SetLock {
                resource: id.resource.clone(),
                requester: id.requester.clone(),
                pid: holder,
                reply,
            })
            .await?
        } else {
            let req = Term::tuple(vec![Term::atom("set_lock"), id.term()]);
            match orbit_dist::call::<Term, Term>(
                ("global_name_server", n.as_str()),
                &req,
                REMOTE_CALL,
            )
            .await
            {
                Ok(t) => t.as_atom() == Some("true"),
                Err(e) => {
                    tracing::debug!(node = %n, error = %e, "global: set_lock not answered (bad node, skipped)");
                    continue;
                }
            }
        };
        if ok {
            granted.push(n.clone());
        } else {
            refused = true;
            break;
        }
    }
    if refused {
        del_on_nodes(r, id, &granted, holder).await?;
    }
    Ok(!refused)
}

async fn del_on_nodes(
    r: &Running,
    id: &LockId,
    nodes: &[String],
    holder: Pid,
) -> Result<(), GlobalError> {
    for n in nodes {
        if *n == r.me {
            ask(r, |reply| GlobalMsg::DelLock {
                resource: id.resource.clone(),
                requester: id.requester.clone(),
                pid: holder,
                reply,
            })
            .await?;
        } else {
            let req = Term::tuple(vec![Term::atom("del_lock"), id.term()]);
            if let Err(e) = orbit_dist::call::<Term, Term>(
                ("global_name_server", n.as_str()),
                &req,
                REMOTE_CALL,
            )
            .await
            {
                tracing::debug!(node = %n, error = %e, "global: del_lock not answered");
            }
        }
    }
    Ok(())
}

/// OTP's `random_sleep/1`: up to 1/4 s the first time, doubling to at most 8 s.
async fn random_sleep(times: u32) {
    let max_ms: u64 = if times > 5 {
        8000
    } else {
        ((1u64 << times) * 1000) / 8
    };
    let mut b = [0u8; 8];
    let r = getrandom::getrandom(&mut b).map_or(max_ms / 2, |_| u64::from_le_bytes(b));
    tokio::time::sleep(Duration::from_millis(1 + r % max_ms.max(1))).await;
}

/// A registration for the registrar (`pid: None` unregisters).
struct RegistrarMsg {
    name: Term,
    pid: Option<Pid>,
    re: bool,
    reply: oneshot::Sender<bool>,
}

/// OTP's registrar: one registration at a time, each under `global`'s own lock on
/// this node and every known node (`trans_all_known`).
async fn registrar_loop(mut ctx: orbit::Context<RegistrarMsg>) {
    loop {
        let orbit::Message::Msg(m) = ctx.recv().await else {
            continue;
        };
        let Ok(r) = running() else {
            continue;
        };
        let me = ctx.pid();
        let id = LockId::new(Term::atom("global"), wire::pid_t(me));
        let mut times = 0u32;
        let nodes = loop {
            let known: Vec<String> = r.shared.read().known.iter().cloned().collect();
            let mut nodes = vec![r.me.clone()];
            nodes.extend(known.iter().cloned());
            match lock_on_nodes(&r, &id, &nodes, me).await {
                Ok(true) => {
                    let now = r.shared.read().known.clone();
                    if now.iter().all(|n| known.contains(n)) {
                        break Some(nodes);
                    }
                    let _ = del_on_nodes(&r, &id, &nodes, me).await;
                }
                Ok(false) => {}
                Err(_) => break None,
            }
            random_sleep(times).await;
            times += 1;
        };
        let Some(nodes) = nodes else {
            continue; // the server stopped: the reply sender drops
        };
        let out = register_on(&r, &m, &nodes).await;
        let _ = del_on_nodes(&r, &id, &nodes, me).await;
        let _ = m.reply.send(out);
    }
}

async fn register_on(r: &Running, m: &RegistrarMsg, nodes: &[String]) -> bool {
    let req = match m.pid {
        Some(pid) => {
            if !m.re {
                let s = r.shared.read();
                if s.names.whereis(&m.name).is_some() || !s.names.names_of(pid).is_empty() {
                    return false;
                }
            }
            Term::tuple(vec![
                Term::atom("register"),
                m.name.clone(),
                wire::pid_t(pid),
                wire::default_method(),
            ])
        }
        None => Term::tuple(vec![Term::atom("unregister"), m.name.clone()]),
    };
    for n in nodes {
        if *n == r.me {
            let res = match m.pid {
                Some(pid) => {
                    let e = wire::NameEntry {
                        name: m.name.clone(),
                        pid,
                        method: wire::default_method(),
                    };
                    ask(r, |reply| GlobalMsg::Insert(e, reply)).await
                }
                None => ask(r, |reply| GlobalMsg::Delete(m.name.clone(), reply)).await,
            };
            if res.is_err() {
                return false;
            }
        } else if let Err(e) =
            orbit_dist::call::<Term, Term>(("global_name_server", n.as_str()), &req, REMOTE_CALL)
                .await
        {
            tracing::debug!(node = %n, error = %e, "global: register not answered (bad node)");
        }
    }
    true
}
