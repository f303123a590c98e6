//! The wire primitives a remote-spawn service builds on (`spawn_request`, erpc).
//!
//! OTP 23+ spawns on another node with `SPAWN_REQUEST` (29/30) and answers with
//! `SPAWN_REPLY` (31/32); `erpc:call` is such a spawn whose result travels back as the
//! exit reason of the spawned process, through the monitor the request set up (the
//! request's id is the monitor's reference). The wire does not run anything itself: a
//! service claims the operations ([`crate::service::claim_control`]) and uses the
//! primitives here, which are general (nothing in them knows erpc):
//!
//! - [`send_control`]: a raw control message (with an optional payload term) to a peer,
//!   for the operations whose state the wire does not track: `SPAWN_REQUEST`,
//!   `SPAWN_REPLY` (and their `_TT` forms), `DEMONITOR_P` of a monitor a spawn set up,
//!   `EXIT2`;
//! - [`accept_monitor`], [`accept_link`]: what an incoming `MONITOR_P` / `LINK` does, for
//!   the monitor and link a `SPAWN_REQUEST` asks for (so the process's exit reaches the
//!   requester as `MONITOR_P_EXIT` / `EXIT` with its exact reason, and a lost connection
//!   cleans them up);
//! - [`watch_monitor`]: waits for the `MONITOR_P_EXIT` of a monitor a peer set up for
//!   this node under a reference of this node (the monitor of a spawn request), without
//!   a local process; `noconnection` when the connection is lost;
//! - [`reply_exited`]: `SPAWN_REPLY` and the monitor's `MONITOR_P_EXIT` at once, for a
//!   request whose function ran where it was received, without a process;
//! - [`send_spawn_request`]: a `SPAWN_REQUEST` encoded straight from its parts;
//! - [`ref_id`], [`IdMap`]: a cheap key for tables of a node's own references;
//! - [`new_ref`], [`system_pid`], [`peer_flags`]: a fresh reference of this node, the
//!   pid that stands for the node's services, and the negotiated flags of a peer (to
//!   check `DFLAG_SPAWN`) once its connection is up.
//!
//! A `SPAWN_REQUEST` no service claimed is refused with `SPAWN_REPLY` `notsup` (what a
//! BEAM caller gets from a node that cannot spawn), so advertising `DFLAG_SPAWN` never
//! leaves a caller waiting.
//!
//! Contract: nothing here panics or blocks; before the node started every function
//! answers "no node" ([`ControlError::NotDistributed`], `None`, [`orbit::Pid::NONE`]).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use orbit::{ExitReason, Pid, Ref};
use orbit_term::{Reference, Term};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::connection::Conn;
use crate::control::{op, VERSION};
use crate::convert;
use crate::peers;

/// Why a spawn primitive could not act.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    /// No node runs in this OS process.
    #[error("this OS process is not a distributed node: start one with orbit_dist::Node::start")]
    NotDistributed,
    /// The peer is not connected (or its name is not a valid node name) and could not be
    /// reached.
    #[error("no connection to node {node}: check that it runs and shares the cookie")]
    NoConnection {
        /// The peer.
        node: String,
    },
    /// The connection did not come up within the time given.
    #[error("the connection to node {node} did not come up in time")]
    Timeout {
        /// The peer.
        node: String,
    },
    /// The control message is not one [`send_control`] writes.
    #[error(
        "control message {0} is not sent raw: only SPAWN_REQUEST (29, 30), SPAWN_REPLY \
         (31, 32), DEMONITOR_P (20) and EXIT2 (8) are; use orbit's link/monitor API for \
         the others"
    )]
    NotAllowed(String),
    /// The reference is not one of this node's.
    #[error("reference {0} was not made by this node (make one with orbit_dist::spawn::new_ref)")]
    ForeignRef(String),
}

/// The pid that stands for this node's system services ([`orbit::Pid::NONE`] before the
/// node started). Messages to it that nothing else takes are dropped.
pub fn system_pid() -> Pid {
    peers::system_pid()
}

/// A fresh reference of this node, as the wire carries it (`None` before the node
/// started).
pub fn new_ref() -> Option<Reference> {
    let n = peers::get()?;
    Some(convert::ref_to_wire(Ref::make(), &n.id))
}

/// The local id a reference of this node stands for, when it is one.
fn local_id(r: &Reference) -> Option<u64> {
    convert::ref_from_wire(r, &peers::get()?.id)
}

/// The number that identifies `r` among this node's references (`None` when `r` was not
/// made by this node, or before the node started): a key for tables of requests that
/// is cheaper to hash than the reference itself (use [`IdHasher`]).
pub fn ref_id(r: &Reference) -> Option<u64> {
    local_id(r)
}

/// A hasher for the ids [`ref_id`] gives (and other unique `u64` keys): one
/// multiplication instead of SipHash over the reference's node name and words. Not for
/// keys an attacker chooses.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: the product's high bits depend on every bit of `n` (the
        // table's 7-bit tags come from there); folded down so that the low bits (the
        // bucket index) do too, also for ids that differ only in their high words.
        let x = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 32);
    }
}

/// A `HashMap` keyed by [`ref_id`]s.
pub type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;

/// The connection to `node` (dialled when there is none).
fn conn(node: &str) -> Result<std::sync::Arc<Conn>, ControlError> {
    if peers::get().is_none() {
        return Err(ControlError::NotDistributed);
    }
    peers::conn_for(node).ok_or_else(|| ControlError::NoConnection {
        node: node.to_string(),
    })
}

/// The flags negotiated with `node` (ours AND theirs, [`crate::handshake::flags`]),
/// connecting first when needed and waiting at most `timeout` for the handshake.
pub async fn peer_flags(node: &str, timeout: Duration) -> Result<u64, ControlError> {
    let c = conn(node)?;
    if c.phase() != crate::connection::Phase::Up {
        match tokio::time::timeout(timeout, c.wait_up()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(ControlError::NoConnection {
                    node: node.to_string(),
                })
            }
            Err(_) => {
                return Err(ControlError::Timeout {
                    node: node.to_string(),
                })
            }
        }
    }
    Ok(c.flags())
}

/// Sends the control message `control` (a tuple whose first element is the operation)
/// to `node`, followed by `payload` when given (the argument list of a
/// `SPAWN_REQUEST`). Only the operations whose state the wire does not track are sent
/// raw: `SPAWN_REQUEST`/`_TT`, `SPAWN_REPLY`/`_TT`, `DEMONITOR_P`, `EXIT2`; any other is
/// [`ControlError::NotAllowed`]. Frames to one peer keep the order they were sent in.
pub fn send_control(
    node: &str,
    control: &Term,
    payload: Option<&Term>,
) -> Result<(), ControlError> {
    let opn = match control {
        Term::Tuple(el) => el.first().and_then(Term::as_i64),
        _ => None,
    };
    match opn {
        Some(
            op::SPAWN_REQUEST
            | op::SPAWN_REQUEST_TT
            | op::SPAWN_REPLY
            | op::SPAWN_REPLY_TT
            | op::DEMONITOR_P
            | op::EXIT2,
        ) => {}
        _ => return Err(ControlError::NotAllowed(control.to_string())),
    }
    let c = conn(node)?;
    write_control(&c, control, payload, true).map_err(|_| ControlError::NoConnection {
        node: node.to_string(),
    })
}

/// Like [`send_control`], but the frame is left for the connection's writer task
/// instead of being written from this thread: what the caller sends right after (the
/// `MONITOR_P_EXIT` of a process that exits at once) goes out in the same write. Use it
/// for a `SPAWN_REPLY` followed at once by more frames (a `SPAWN_REQUEST` is accepted
/// too, but a caller waiting for its answer is better served by an inline write: waking
/// the writer task per request cost erpc's driver 0.2 `futex` wake-ups and context
/// switches per call, more CPU than the `sendto`s it saved); the frame still leaves as
/// soon as the writer task runs (it is woken here), in order with every other frame to
/// `node`. Other operations are sent as [`send_control`] does.
pub fn queue_control(
    node: &str,
    control: &Term,
    payload: Option<&Term>,
) -> Result<(), ControlError> {
    if !matches!(
        control,
        Term::Tuple(el) if matches!(
            el.first().and_then(Term::as_i64),
            Some(op::SPAWN_REPLY | op::SPAWN_REPLY_TT | op::SPAWN_REQUEST | op::SPAWN_REQUEST_TT)
        )
    ) {
        // Anything else keeps send_control's checks and its inline write.
        return send_control(node, control, payload);
    }
    let c = conn(node)?;
    write_control(&c, control, payload, false).map_err(|_| ControlError::NoConnection {
        node: node.to_string(),
    })
}

fn write_control(
    c: &Conn,
    control: &Term,
    payload: Option<&Term>,
    inline: bool,
) -> Result<(), crate::connection::FrameError> {
    let f = |o: &mut Vec<u8>, _: &crate::convert::LocalId| {
        control.encode_body(o);
        Ok(payload.map(|p| {
            let at = o.len();
            o.push(VERSION);
            p.encode_body(o);
            at
        }))
    };
    if inline {
        c.try_frame(None, f)
    } else {
        c.queue_frame(None, f)
    }
}

/// A `SPAWN_REQUEST {29, ReqId, From, GroupLeader, {M, F, Arity}, Opts}` written
/// straight into the connection's buffer by [`send_spawn_request`] (no `Term` built for
/// the control tuple). `Opts` is `[monitor]` or `[]`.
#[derive(Debug, Clone, Copy)]
pub struct SpawnRequestFrame<'a> {
    /// The request id (a reference of this node, [`new_ref`]).
    pub id: &'a Reference,
    /// The requester (a local pid, or [`system_pid`]).
    pub from: Pid,
    /// The group leader the new process gets.
    pub group_leader: Pid,
    /// The module of the function the new process runs (`erpc`).
    pub module: &'a str,
    /// Its function (`execute_call`).
    pub function: &'a str,
    /// Its arity (the length of the argument list in the payload).
    pub arity: u8,
    /// Whether `Opts` is `[monitor]` (the reply then comes with `MONITOR_P_EXIT`).
    pub monitor: bool,
}

/// Sends a `SPAWN_REQUEST` to `node` as [`send_control`] (`queue` false) or
/// [`queue_control`] (`queue` true) would, with the argument list written by `args`
/// (the payload term, without the version byte, e.g. with [`crate::control::term`]).
/// Atom names longer than 255 characters are the caller's to refuse.
///
/// Errors: [`ControlError::NotDistributed`], [`ControlError::NoConnection`].
pub fn send_spawn_request(
    node: &str,
    req: &SpawnRequestFrame<'_>,
    args: impl FnOnce(&mut Vec<u8>),
    queue: bool,
) -> Result<(), ControlError> {
    let c = conn(node)?;
    let f = |o: &mut Vec<u8>, l: &convert::LocalId| {
        crate::control::tuple(o, 6);
        crate::control::small(o, op::SPAWN_REQUEST as u8);
        req.id.encode_body(o);
        crate::control::pid_w(o, req.from, l);
        crate::control::pid_w(o, req.group_leader, l);
        crate::control::tuple(o, 3);
        crate::control::atom(o, req.module);
        crate::control::atom(o, req.function);
        crate::control::small(o, req.arity);
        if req.monitor {
            // [monitor]: LIST_EXT of one element, then NIL_EXT.
            o.extend_from_slice(&[108, 0, 0, 0, 1]);
            crate::control::atom(o, "monitor");
        }
        o.push(106);
        let at = o.len();
        o.push(VERSION);
        args(o);
        Ok(Some(at))
    };
    let sent = if queue {
        c.queue_frame(None, f)
    } else {
        c.try_frame(None, f)
    };
    sent.map_err(|_| ControlError::NoConnection {
        node: node.to_string(),
    })
}

/// Answers a `SPAWN_REQUEST` whose function already ran to its end where it was received,
/// without a process: `SPAWN_REPLY {31, ReqId, From, Flags, Pid}` (flag 2, monitor set
/// up, when `down` is given) and then `MONITOR_P_EXIT {21, Pid, From, ReqId, Reason}`
/// with `down` as the reason: what a BEAM caller gets from a process that exits at
/// once. `pid` is the stand-in ([`orbit::exited_pid`]): nothing is recorded for it, so
/// a later `DEMONITOR_P` or exit signal to it finds nothing, as for any exited process.
/// Both frames leave in one write with the answers to the other requests read in the
/// same batch: called from the connection's own reader (a request answered where it
/// was read), they are written when the read's frames are handled, from the reader's
/// thread (`read_batch`); from elsewhere, by the connection's writer task.
pub fn reply_exited(
    node: &str,
    id: &Reference,
    from: &orbit_term::Pid,
    pid: Pid,
    down: Option<&Term>,
) -> Result<(), ControlError> {
    let c = conn(node)?;
    let closed = |_| ControlError::NoConnection {
        node: node.to_string(),
    };
    // Written from the parts (no `Term` built per answer).
    c.queue_frame(None, |o, l| {
        crate::control::tuple(o, 5);
        crate::control::small(o, op::SPAWN_REPLY as u8);
        id.encode_body(o);
        from.encode_body(o);
        crate::control::small(o, if down.is_some() { 2 } else { 0 });
        crate::control::pid_w(o, pid, l);
        Ok(None)
    })
    .map_err(closed)?;
    if let Some(reason) = down {
        c.queue_frame(None, |o, l| {
            crate::control::tuple(o, 5);
            crate::control::small(o, op::MONITOR_P_EXIT as u8);
            crate::control::pid_w(o, pid, l);
            from.encode_body(o);
            id.encode_body(o);
            reason.encode_body(o);
            Ok(None)
        })
        .map_err(closed)?;
    }
    Ok(())
}

/// Sets up the monitor remote `watcher` (a process of `node`) holds on local `target`
/// under reference `r`, as an incoming `MONITOR_P` would: `target`'s exit reaches the
/// watcher as `MONITOR_P_EXIT` with its exact reason; `DEMONITOR_P` and a lost
/// connection remove it. False (nothing set up) when `target` is not a live local
/// process or `node` is not connected.
pub fn accept_monitor(node: &str, watcher: Pid, target: Pid, r: &Reference) -> bool {
    if !target.is_local() {
        return false;
    }
    match peers::connection(node) {
        Some(c) => c.monitor_in(watcher, convert::pid_term(target, &c.local), target, r),
        None => false,
    }
}

/// Links remote `remote` (a process of `node`) and local `local`, as an incoming `LINK`
/// would: an exit of either reaches the other, with `noconnection` when the connection
/// is lost. False when `local` is not a live local process or `node` is not connected.
pub fn accept_link(node: &str, remote: Pid, local: Pid) -> bool {
    if !local.is_local() {
        return false;
    }
    match peers::connection(node) {
        Some(c) => c.link_in(remote, local),
        None => false,
    }
}

// ---- waiting on a monitor a peer set up ----------------------------------------------

struct Watch {
    node: Box<str>,
    tx: oneshot::Sender<ExitReason>,
}

fn watches() -> &'static Mutex<IdMap<Watch>> {
    static W: OnceLock<Mutex<IdMap<Watch>>> = OnceLock::new();
    W.get_or_init(Default::default)
}

/// Waits for the `MONITOR_P_EXIT` that `node` sends under reference `r` (a reference of
/// this node: the id of a `SPAWN_REQUEST` with the `monitor` option). Register it
/// before sending the request. The future resolves to the exit reason, exactly as
/// sent, or [`ExitReason::NoConnection`] when the connection to `node` is lost;
/// dropping it forgets the watch (a later `MONITOR_P_EXIT` is dropped).
pub fn watch_monitor(node: &str, r: &Reference) -> Result<MonitorWatch, ControlError> {
    if peers::get().is_none() {
        return Err(ControlError::NotDistributed);
    }
    let id = local_id(r).ok_or_else(|| ControlError::ForeignRef(format!("{r:?}")))?;
    let (tx, rx) = oneshot::channel();
    watches().lock().insert(
        id,
        Watch {
            node: node.into(),
            tx,
        },
    );
    Ok(MonitorWatch { id, rx })
}

/// A pending [`watch_monitor`]: a future of the monitored process's exit reason.
#[derive(Debug)]
pub struct MonitorWatch {
    id: u64,
    rx: oneshot::Receiver<ExitReason>,
}

impl MonitorWatch {
    /// The reason, if the monitor already fired.
    pub fn try_reason(&mut self) -> Option<ExitReason> {
        self.rx.try_recv().ok()
    }
}

impl Future for MonitorWatch {
    type Output = ExitReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ExitReason> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(ExitReason::NoConnection))
    }
}

impl Drop for MonitorWatch {
    fn drop(&mut self) {
        watches().lock().remove(&self.id);
    }
}

/// Hands a `MONITOR_P_EXIT` from `peer` under local reference id `id` to its watch;
/// true when there was one.
pub(crate) fn monitor_fired(peer: &str, id: u64, reason: &ExitReason) -> bool {
    let mut w = watches().lock();
    if w.is_empty() || w.get(&id).is_none_or(|x| &*x.node != peer) {
        return false;
    }
    if let Some(x) = w.remove(&id) {
        drop(w);
        let _ = x.tx.send(reason.clone());
    }
    true
}

/// Fires every watch on `peer` with `noconnection` (its connection is lost).
pub(crate) fn node_down(peer: &str) {
    let gone: Vec<Watch> = {
        let mut w = watches().lock();
        let ids: Vec<u64> = w
            .iter()
            .filter(|(_, x)| &*x.node == peer)
            .map(|(k, _)| *k)
            .collect();
        ids.into_iter().filter_map(|k| w.remove(&k)).collect()
    };
    for x in gone {
        let _ = x.tx.send(ExitReason::NoConnection);
    }
}

/// Answers a `SPAWN_REQUEST` no service claimed: `SPAWN_REPLY` `notsup` to its sender
/// (dropped, logged, when the request names no reference and pid to answer).
pub(crate) fn refuse(conn: &Conn, control: &Term) {
    let Term::Tuple(el) = control else { return };
    match (el.get(1), el.get(2)) {
        (Some(id @ Term::Reference(_)), Some(from @ Term::Pid(_))) => {
            let reply = Term::Tuple(vec![
                Term::Int(op::SPAWN_REPLY),
                id.clone(),
                from.clone(),
                Term::Int(0),
                Term::atom("notsup"),
            ]);
            if write_control(conn, &reply, None, true).is_err() {
                tracing::debug!(peer = %conn.peer, "spawn refusal not sent: connection closed");
            }
        }
        _ => tracing::debug!(peer = %conn.peer, "malformed SPAWN_REQUEST dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_works_before_the_node_started() {
        assert!(new_ref().is_none());
        assert_eq!(system_pid(), Pid::NONE);
        let ctl = Term::Tuple(vec![Term::Int(op::SPAWN_REPLY)]);
        assert!(matches!(
            send_control("a@b", &ctl, None),
            Err(ControlError::NotDistributed)
        ));
        let link = Term::Tuple(vec![Term::Int(op::LINK)]);
        assert!(matches!(
            send_control("a@b", &link, None),
            Err(ControlError::NotAllowed(_))
        ));
        assert!(!accept_link("a@b", Pid::NONE, Pid::NONE));
        let r = Reference::new(orbit_term::Atom::try_new("a@b").unwrap(), 1, &[1, 2, 3]).unwrap();
        assert_eq!(ref_id(&r), None, "no node: no reference is ours");
        let req = SpawnRequestFrame {
            id: &r,
            from: Pid::NONE,
            group_leader: Pid::NONE,
            module: "erpc",
            function: "execute_call",
            arity: 4,
            monitor: true,
        };
        let mut wrote = false;
        assert!(matches!(
            send_spawn_request("a@b", &req, |_| wrote = true, false),
            Err(ControlError::NotDistributed)
        ));
        assert!(!wrote, "nothing encoded without a connection");
    }

    #[test]
    fn id_maps_keep_distinct_ids_apart() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let b = BuildHasherDefault::<IdHasher>::default();
        // Sequential ids (what references of one node give) hash apart, in the high
        // bits too (the table's control bytes).
        let hs: std::collections::HashSet<u64> =
            (0..10_000u64).map(|i| b.hash_one(i) >> 57).collect();
        assert_eq!(
            hs.len(),
            128,
            "every 7-bit tag is used by 10k sequential ids"
        );
        // Ids that differ only above bit 18 (a reference's later words) still land in
        // different buckets (the low bits).
        let low: std::collections::HashSet<u64> =
            (0..1024u64).map(|i| b.hash_one(i << 18) & 1023).collect();
        assert!(low.len() > 512, "{} of 1024 buckets", low.len());
        let mut m: IdMap<u64> = IdMap::default();
        for i in 0..10_000u64 {
            m.insert(i << 18 | 7, i);
        }
        assert_eq!(m.len(), 10_000);
        assert!((0..10_000u64).all(|i| m.get(&(i << 18 | 7)) == Some(&i)));
        assert_eq!(m.get(&5), None);
    }
}
