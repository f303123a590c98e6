//! `global_name_server`: what a node that does not take part in `:global` must answer.
//!
//! A built-in service of the wire (registered through [`crate::service`] by
//! [`crate::Node::start`], under `global_name_server` and `global_group`), not a part
//! of `orbit-cluster`: what follows must be answered by every Orbit node connected to a
//! BEAM node, whether or not it runs the cluster layer, or the BEAM side hangs. A
//! service that takes part in `:global` replaces it by registering the same name.
//!
//! A BEAM peer's `global` opens a synchronisation with every new visible node
//! (`{init_connect, ...}` and what follows, in OTP's `global.erl`).
//! This stub takes no part in `global`'s name registry (`orbit_cluster::global` does,
//! replacing it when the cluster layer starts): those casts are dropped,
//! and the BEAM's `global` treats this node as never synchronised, which is harmless for
//! `register_name`/`whereis_name` (they lock only synchronised nodes).
//!
//! But `:global.set_lock/1,2,3` and `:global.trans/2,3,4` lock on `[node() | nodes()]`
//! by default, through `gen_server:multi_call(Nodes, global_name_server, ...)` (OTP 25
//! `global.erl:404`, `:458`, lock protocol `:1452-1520`): a node that monitors fine but
//! never answers makes them hang forever. So the calls of the lock protocol are answered
//! as a node with no names and no lock holders of its own answers them:
//! - `{set_lock, {ResourceId, LockRequesterId}}` → `true` (nothing on this node holds a
//!   global lock, so any lock is free here);
//! - `{del_lock, Id}` → `true`;
//! - `get_known` → `[]`, `get_synced` → `[]` (this node knows no global peers);
//! - the read-only lookup `{whereis, Name, {Pid, Tag}}` (a plain message) → `{Tag,
//!   undefined}`: no global name is registered through this node.
//!
//! Any other call is logged at debug level and not answered, as for a name server that
//! does not know it (its caller's monitor or timeout ends the wait). `:global.sync/0` on
//! a BEAM node still blocks while an Orbit node is connected (it waits for every node to
//! synchronise); pass it an explicit node list.

use orbit::Pid;
use orbit_term::Term;

use crate::service::{Inbound, Service, ServiceRequest};

/// The built-in `global_name_server` service.
pub(crate) struct GlobalStub;

impl Service for GlobalStub {
    fn message(&self, msg: Inbound<'_>) {
        let peer = msg.peer;
        match msg.request() {
            Some(ServiceRequest::Call(call)) => match answer(call.request()) {
                Some(reply) => call.reply(&reply),
                None => tracing::debug!(
                    peer,
                    request = %short(call.request()),
                    "global_name_server call not answered (Orbit takes no part in :global)"
                ),
            },
            Some(ServiceRequest::Info(m)) => match whereis_request(&m) {
                Some((to, tag)) => {
                    let reply = Term::tuple(vec![tag.clone(), Term::atom("undefined")]);
                    if let Err(e) = orbit::send(to, reply) {
                        tracing::debug!(error = %e, "global whereis reply not sent");
                    }
                }
                None => tracing::trace!(peer, msg = %short(&m), "global message ignored"),
            },
            Some(ServiceRequest::Cast(m)) => {
                tracing::trace!(peer, msg = %short(&m), "global cast ignored")
            }
            None => tracing::debug!(peer, "undecodable global message ignored"),
        }
    }
}

/// The reply to a call of global's lock protocol, `None` for any other call.
fn answer(request: &Term) -> Option<Term> {
    if let Some(a) = request.as_atom() {
        return matches!(a, "get_known" | "get_synced").then(Term::nil);
    }
    let Term::Tuple(el) = request else {
        return None;
    };
    match (el.len(), el.first().and_then(Term::as_atom)) {
        (2, Some("set_lock" | "del_lock")) => Some(Term::bool(true)),
        _ => None,
    }
}

/// `{whereis, Name, {Pid, Tag}}`: the pid to answer and the tag.
fn whereis_request(msg: &Term) -> Option<(Pid, &Term)> {
    let Term::Tuple(el) = msg else { return None };
    if el.len() != 3 || el[0].as_atom() != Some("whereis") {
        return None;
    }
    let Term::Tuple(from) = &el[2] else {
        return None;
    };
    match &from[..] {
        [Term::Pid(p), tag] => Some((crate::convert::pid_from_wire(p), tag)),
        _ => None,
    }
}

fn short(t: &Term) -> String {
    t.to_string().chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_protocol_calls_are_answered_and_others_are_not() {
        let lock = Term::tuple(vec![
            Term::atom("set_lock"),
            Term::tuple(vec![Term::atom("res"), Term::atom("req")]),
        ]);
        assert!(answer(&lock).is_some_and(|r| r.exact_eq(&Term::bool(true))));
        let del = Term::tuple(vec![Term::atom("del_lock"), Term::atom("id")]);
        assert!(answer(&del).is_some_and(|r| r.exact_eq(&Term::bool(true))));
        assert!(answer(&Term::atom("get_known")).is_some_and(|r| r.exact_eq(&Term::nil())));
        assert!(answer(&Term::atom("sync")).is_none());
        assert!(answer(&Term::tuple(vec![Term::atom("registrar"), Term::Int(1)])).is_none());
        assert!(answer(&Term::Int(3)).is_none());
    }
}
