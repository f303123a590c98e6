//! Incoming control messages: what each does to local processes.
//!
//! Messages (`SEND`, `REG_SEND`, `ALIAS_SEND`) reach local processes typed: a process
//! declared with [`crate::serve()`] gets its payload deserialized into its message type;
//! any other process receives an [`orbit_term::Term`]. Replies to calls this node made
//! are taken before any mailbox ([`crate::gen_call`]). A `REG_SEND` to a name a
//! [`crate::service`] registered goes to that service; this module names no service.
//! Control operations a service claimed (`SPAWN_REQUEST`, ...) go to it; an unclaimed
//! `SPAWN_REQUEST` is refused with `notsup` ([`crate::spawn`]). Links, exits
//! and monitors become the runtime's signals; what crosses the connection is recorded
//! so that its loss delivers `noconnection`.

use orbit::{ExitReason, Pid};
use orbit_term::Term;

use crate::connection::Conn;
use crate::control::{op, Control, Fast};
use crate::convert;
use crate::error::DistError;
use crate::peers;
use crate::serve::{handlers, Incoming, Undeliverable};
use crate::service;
use crate::spawn;

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
        None if inc.to == peers::system_pid() => Ok(()),
        None => default_deliver(inc).or_else(|e| {
            served_by_name(inc)
                .or_else(|| crate::gen_call::served_by_type(inc))
                .unwrap_or(Err(e))
        }),
    };
    if let Err(e) = r {
        if crate::gen_call::not_served(inc, &e) {
            return;
        }
        if orbit::process_info(inc.to).is_none() {
            handlers().write().by_pid.remove(&inc.to);
        }
        tracing::debug!(to = %inc.to, error = %e, "message from another node not delivered");
    }
}

/// A message to a pid with no handler of its own, which a plain send could not deliver:
/// if the pid is registered under a name served by [`crate::serve()`] (a served GenServer that
/// was restarted, so its new pid was never seen), the name's handler serves the pid from
/// now on. `None` when the pid has no served name.
fn served_by_name(inc: &Incoming<'_>) -> Option<Result<(), Undeliverable>> {
    let name = orbit::process_info(inc.to)?.registered_name?;
    let h = handlers().read().by_name.get(&*name).cloned()?;
    handlers().write().by_pid.insert(inc.to, h.clone());
    Some(h(inc))
}

fn deliver_named(conn: &Conn, from: Pid, name: &str, bytes: &[u8]) {
    if let Some(svc) = service::lookup(name) {
        let msg = service::Inbound {
            from,
            peer: &conn.peer,
            name,
            bytes,
        };
        // A service's panic must not take the connection down with the reader.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| svc.message(msg)));
        if r.is_err() {
            tracing::error!(name, peer = %conn.peer, "service panicked on a message; dropped");
        }
        return;
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

/// The payload of a claimed operation, for those that carry one.
fn ctl_payload(op: i64, payload: &[u8]) -> Option<&[u8]> {
    (!payload.is_empty()
        && matches!(
            op,
            crate::control::op::SPAWN_REQUEST | crate::control::op::SPAWN_REQUEST_TT
        ))
    .then_some(payload)
}

/// Acts on a control message read by the fast path: as [`incoming`] acts on the same
/// control read by the general path.
pub(crate) fn incoming_fast(conn: &Conn, f: Fast<'_>, payload: &[u8]) {
    match f {
        Fast::Send { from, to } => deliver(&Incoming {
            from,
            to,
            bytes: payload,
        }),
        Fast::RegSend { from, name } => deliver_named(conn, from, name, payload),
        Fast::MonitorExit { from, r, reason } => monitor_exit(
            conn,
            || Some(from.decode()),
            &r,
            convert::reason_from_term(reason),
        ),
        Fast::SpawnRequest(req) => match service::control_handler(op::SPAWN_REQUEST) {
            None => spawn::refuse(conn, &req.to_term()),
            Some(h) => {
                let p = ctl_payload(op::SPAWN_REQUEST, payload);
                run_handler(conn, op::SPAWN_REQUEST, || {
                    h.spawn_request(&conn.peer, &req, p)
                });
            }
        },
        Fast::SpawnReply(rep) => match service::control_handler(op::SPAWN_REPLY) {
            None => unclaimed(conn, op::SPAWN_REPLY),
            Some(h) => run_handler(conn, op::SPAWN_REPLY, || h.spawn_reply(&conn.peer, &rep)),
        },
    }
}

/// Runs a claimed control handler on the reader: a panic in it is logged and the control
/// dropped, never taking the connection down.
fn run_handler(conn: &Conn, op: i64, call: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).is_err() {
        tracing::error!(peer = %conn.peer, op, "control handler panicked; dropped");
    }
}

/// A claimable control no service claimed.
fn unclaimed(conn: &Conn, op: i64) {
    tracing::debug!(peer = %conn.peer, op, "unclaimed control message dropped");
}

/// A monitored process of the peer exited (`MONITOR_P_EXIT`): the call, erpc request or
/// process that watched it learns `reason`. `from` gives the exited process when the
/// peer named it by pid (asked for only when a local process watched it).
fn monitor_exit(
    conn: &Conn,
    from: impl FnOnce() -> Option<orbit_term::Pid>,
    r: &orbit_term::Reference,
    reason: ExitReason,
) {
    let Some(id) = convert::ref_from_wire(r, &conn.local) else {
        return;
    };
    if crate::gen_call::monitor_fired(id, &reason) || spawn::monitor_fired(&conn.peer, id, &reason)
    {
        return;
    }
    let entry = conn.track.lock().monitors_out.remove(&id);
    if let Some((lr, watcher, target)) = entry {
        let target = from().map_or(target, |p| convert::pid_from_wire(&p));
        orbit::signal::deliver_down(watcher, lr, target, reason);
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
            if !conn.link_in(from, to) {
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
        Control::Claimable { op, control } => match service::control_handler(op) {
            None if matches!(
                op,
                crate::control::op::SPAWN_REQUEST | crate::control::op::SPAWN_REQUEST_TT
            ) =>
            {
                spawn::refuse(conn, &control)
            }
            Some(h) => {
                let p = ctl_payload(op, payload);
                run_handler(conn, op, || h.control(&conn.peer, &control, p));
            }
            None => unclaimed(conn, op),
        },
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
                    // The services registered with this node live as long as it does.
                    name if service::is_registered(name) => Some(peers::system_pid()),
                    name => orbit::whereis(name),
                },
                _ => None,
            };
            let added = pid.is_some_and(|p| conn.monitor_in(from, target.clone(), p, &r));
            if !added {
                conn.monitor_exit(&target, from, &r, &Term::atom("noproc"));
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
            let from = || match from {
                Term::Pid(p) => Some(*p),
                _ => None,
            };
            monitor_exit(conn, from, &r, reason);
        }
    }
    Ok(())
}
