//! Incoming control messages: what each does to local processes.
//!
//! Messages (`SEND`, `REG_SEND`, `ALIAS_SEND`) reach local processes typed: a process
//! declared with [`serve`] gets its payload deserialized into its message type; any
//! other process receives an [`orbit_term::Term`]. Replies to calls this node made are
//! taken before any mailbox ([`crate::gen_call`]). Names of the BEAM's system servers
//! (`net_kernel`, `rex`, `global_name_server`) are answered here. Links, exits and
//! monitors become the runtime's signals; what crosses the connection is recorded so
//! that its loss delivers `noconnection`.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use orbit::{ExitReason, Pid, Ref};
use orbit_term::Term;
use parking_lot::RwLock;
use serde::de::DeserializeOwned;

use crate::connection::Conn;
use crate::control::Control;
use crate::convert;
use crate::error::DistError;

/// What a local process needs to take a message from the wire.
pub(crate) struct Incoming<'a> {
    /// The sender, when known.
    #[allow(dead_code)]
    pub from: Option<Pid>,
    /// The local destination.
    pub to: Pid,
    /// The message (`131, ...`).
    pub bytes: &'a [u8],
}

/// Delivers one message to a local process; errors are logged, never fatal to the
/// connection.
pub(crate) type Handler = Arc<dyn Fn(&Incoming<'_>) -> Result<(), Undeliverable> + Send + Sync>;

/// Why a message from another node did not reach a local process (logged; the sender is
/// not told, as in Erlang).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Undeliverable {
    /// The bytes are not a term.
    #[error("the message is not a valid term: {0}")]
    NotATerm(orbit_term::Error),
    /// The term does not decode into the type the destination declared with [`serve`].
    #[error(
        "a message for {to} does not decode into {type_name}, the type it was served \
         with: {reason}"
    )]
    WrongType {
        /// The destination.
        to: Pid,
        /// The declared message type.
        type_name: &'static str,
        /// What the decoder said.
        reason: orbit_term::Error,
    },
    /// The local send failed (the process is gone, or takes another type).
    #[error(transparent)]
    Send(#[from] orbit::SendError),
    /// The destination process has exited.
    #[error("{0} is not alive; the message was dropped")]
    NoProc(Pid),
    /// A served GenServer got something other than `$gen_call`/`$gen_cast`, or its pid
    /// is not a GenServer of the served type.
    #[error("{0}")]
    NotForServer(String),
}

#[derive(Default)]
struct Handlers {
    by_pid: HashMap<Pid, Handler>,
    by_name: HashMap<String, Handler>,
}

fn handlers() -> &'static RwLock<Handlers> {
    static H: OnceLock<RwLock<Handlers>> = OnceLock::new();
    H.get_or_init(Default::default)
}

/// How messages for a local process are decoded.
#[derive(Debug, Clone)]
pub enum Target {
    /// This pid.
    Pid(Pid),
    /// The process registered under this name (looked up per message).
    Name(String),
}

impl From<Pid> for Target {
    fn from(p: Pid) -> Self {
        Target::Pid(p)
    }
}

impl From<&str> for Target {
    fn from(n: &str) -> Self {
        Target::Name(n.to_string())
    }
}

/// Declares that messages from other nodes to `target` are deserialized into `M` (the
/// process's message type). Without it a process receives [`orbit_term::Term`]s.
pub fn serve<M: DeserializeOwned + Any + Send>(target: impl Into<Target>) {
    // The typed handle of the last destination: messages go straight into its mailbox,
    // with no table lookup and no boxing.
    let last: parking_lot::Mutex<Option<orbit::Handle<M>>> = parking_lot::Mutex::new(None);
    let h: Handler = Arc::new(move |inc: &Incoming<'_>| {
        let m: M =
            orbit_term::from_slice_owned(inc.bytes).map_err(|reason| Undeliverable::WrongType {
                to: inc.to,
                type_name: std::any::type_name::<M>(),
                reason,
            })?;
        let mut last = last.lock();
        if last.as_ref().map(|h| h.pid()) != Some(inc.to) {
            *last = orbit::Handle::<M>::from_pid(inc.to);
        }
        match last.as_ref() {
            Some(h) => h.send(m).map_err(|e| Undeliverable::NoProc(e.pid)),
            None => Ok(orbit::send(inc.to, m)?),
        }
    });
    install(target.into(), h);
}

pub(crate) fn install(t: Target, h: Handler) {
    let mut w = handlers().write();
    match t {
        Target::Pid(p) => {
            w.by_pid.insert(p, h);
        }
        Target::Name(n) => {
            w.by_name.insert(n, h);
        }
    }
}

/// Forgets what [`serve`] declared for `target`.
pub fn unserve(target: impl Into<Target>) {
    let mut w = handlers().write();
    match target.into() {
        Target::Pid(p) => {
            w.by_pid.remove(&p);
        }
        Target::Name(n) => {
            w.by_name.remove(&n);
        }
    }
}

fn default_deliver(inc: &Incoming<'_>) -> Result<(), Undeliverable> {
    let t = Term::decode(inc.bytes).map_err(Undeliverable::NotATerm)?;
    Ok(orbit::send(inc.to, t)?)
}

/// Delivers a message to local pid `to`.
pub(crate) fn deliver(inc: &Incoming<'_>) {
    if crate::gen_call::take_reply(inc.bytes) {
        return;
    }
    let h = handlers().read().by_pid.get(&inc.to).cloned();
    let r = match h {
        Some(h) => h(inc),
        None if inc.to == crate::node::system_pid() => Ok(()),
        None => default_deliver(inc).or_else(|e| served_by_name(inc).unwrap_or(Err(e))),
    };
    if let Err(e) = r {
        if orbit::process_info(inc.to).is_none() {
            handlers().write().by_pid.remove(&inc.to);
        }
        tracing::debug!(to = %inc.to, error = %e, "message from another node not delivered");
    }
}

/// A message to a pid with no handler of its own, which a plain send could not deliver:
/// if the pid is registered under a name served by [`serve`] (a served GenServer that
/// was restarted, so its new pid was never seen), the name's handler serves the pid from
/// now on. `None` when the pid has no served name.
fn served_by_name(inc: &Incoming<'_>) -> Option<Result<(), Undeliverable>> {
    let name = orbit::process_info(inc.to)?.registered_name?;
    let h = handlers().read().by_name.get(&*name).cloned()?;
    handlers().write().by_pid.insert(inc.to, h.clone());
    Some(h(inc))
}

fn deliver_named(conn: &Conn, from: Pid, name: &str, bytes: &[u8]) {
    match name {
        "net_kernel" => return crate::net_kernel::handle(conn, from, bytes),
        "rex" => return crate::rex::handle(conn, from, bytes),
        "global_name_server" | "global_group" => return crate::global::handle(conn, from, bytes),
        _ => {}
    }
    let h = handlers().read().by_name.get(name).cloned();
    let Some(to) = orbit::whereis(name) else {
        tracing::debug!(
            name,
            "message from another node to an unregistered name dropped"
        );
        return;
    };
    let inc = Incoming {
        from: Some(from),
        to,
        bytes,
    };
    match h {
        Some(h) => {
            if let Err(e) = h(&inc) {
                tracing::debug!(name, error = %e, "message from another node not delivered");
            }
        }
        None => deliver(&inc),
    }
}

fn reason_of(reason: Option<Term>, payload: &[u8]) -> Result<ExitReason, DistError> {
    let t = match reason {
        Some(t) => t,
        None => Term::decode(payload)
            .map_err(|e| DistError::Protocol(format!("undecodable exit reason: {e}")))?,
    };
    Ok(convert::reason_from_term(t))
}

/// Delivers a message read by the fast path.
pub(crate) fn incoming_fast(conn: &Conn, f: crate::control::Fast<'_>, payload: &[u8]) {
    match f {
        crate::control::Fast::Send { from, to } => deliver(&Incoming {
            from,
            to,
            bytes: payload,
        }),
        crate::control::Fast::RegSend { from, name } => deliver_named(conn, from, name, payload),
    }
}

/// Acts on one control message.
pub(crate) fn incoming(conn: &Conn, ctl: Control, payload: &[u8]) -> Result<(), DistError> {
    match ctl {
        Control::Send { from, to } => deliver(&Incoming {
            from,
            to,
            bytes: payload,
        }),
        Control::RegSend { from, name } => deliver_named(conn, from, &name, payload),
        Control::AliasSend { alias, .. } => {
            if !crate::gen_call::take_reply(payload) {
                tracing::debug!(?alias, "message to an unknown alias dropped");
            }
        }
        Control::Link { from, to } => {
            if orbit::signal::add_remote_link(to, from) {
                conn.track.lock().links.insert((to, from));
            } else {
                conn.exit(to, from, &Term::atom("noproc"), true);
            }
        }
        Control::Unlink { id, from, to } => {
            conn.track.lock().links.remove(&(to, from));
            orbit::signal::remove_remote_link(to, from);
            if let Some(id) = id {
                conn.unlink_ack(&id, to, from);
            }
        }
        Control::UnlinkAck | Control::Ignored => {}
        Control::Exit { from, to, reason } => {
            let reason = reason_of(reason, payload)?;
            conn.track.lock().links.remove(&(to, from));
            orbit::signal::deliver_remote_exit(from, to, reason, true);
        }
        Control::Exit2 { from, to, reason } => {
            let reason = reason_of(reason, payload)?;
            orbit::signal::deliver_remote_exit(from, to, reason, false);
        }
        Control::Monitor { from, target, r } => {
            let pid = match &target {
                Term::Pid(p) => Some(convert::pid_from_wire(p)).filter(|p| p.is_local()),
                Term::Atom(a) => match a.as_str() {
                    // The system servers answered by this node live as long as it does.
                    "net_kernel" | "rex" | "global_name_server" | "global_group" => {
                        Some(crate::node::system_pid())
                    }
                    name => orbit::whereis(name),
                },
                _ => None,
            };
            let lr = Ref::make();
            let added = pid.is_some_and(|p| orbit::signal::add_remote_monitor(p, from, lr));
            match pid {
                Some(p) if added => {
                    let mut t = conn.track.lock();
                    t.monitors_in.insert(r.clone(), (from, target, p, lr));
                    t.monitors_in_by_ref.insert(lr, r);
                }
                _ => conn.monitor_exit(&target, from, &r, &Term::atom("noproc")),
            }
        }
        Control::Demonitor { r, .. } => {
            conn.forget_monitor_in(&r);
        }
        Control::MonitorExit {
            from,
            to: _,
            r,
            reason,
        } => {
            let reason = reason_of(reason, payload)?;
            let Some(id) = convert::ref_from_wire(&r, &conn.local) else {
                return Ok(());
            };
            if crate::gen_call::monitor_fired(id, &reason) {
                return Ok(());
            }
            let entry = conn.track.lock().monitors_out.remove(&id);
            if let Some((lr, watcher, target)) = entry {
                let target = match &from {
                    Term::Pid(p) => convert::pid_from_wire(p),
                    _ => target,
                };
                orbit::signal::deliver_down(watcher, lr, target, reason);
            }
        }
    }
    Ok(())
}

/// Delivers an encoded message to a local process as if it came from the wire.
pub(crate) fn deliver_local(to: Pid, bytes: &[u8]) -> Result<(), orbit::SendError> {
    let h = handlers().read().by_pid.get(&to).cloned();
    let inc = Incoming {
        from: orbit::self_pid(),
        to,
        bytes,
    };
    match h {
        Some(h) => h(&inc).map_err(|e| match e {
            Undeliverable::Send(e) => e,
            e => orbit::SendError::NotEncodable(e.to_string()),
        }),
        None => {
            let t =
                Term::decode(bytes).map_err(|e| orbit::SendError::NotEncodable(e.to_string()))?;
            orbit::send(to, t)
        }
    }
}
