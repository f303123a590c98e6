//! `rex`, the BEAM's legacy `rpc` server, as a service of the cluster layer.
//!
//! Registered by [`crate::start`] through `orbit_dist::service`, it replaces the wire's
//! built-in `rex` (which answers only the `erlang:nodes` call the transitive connection
//! needs).
//!
//! **`rpc:call`/`erpc:call` into Orbit do not reach this module.** In OTP 25 they are
//! erpc, which spawns on the target with `SPAWN_REQUEST`; [`crate::erpc`] answers them
//! with the Rust functions registered there (`erlang:node/0`, `erlang:nodes/0,1` built
//! in).
//!
//! What still reaches `rex`, and is answered here:
//! - `{'$gen_call', From, {call | block_call, M, F, A, GroupLeader}}` (OTP 23/24
//!   callers, `rpc:block_call`);
//! - the C-node form `{FromPid, {call, M, F, A, GroupLeader}}`, answered with a plain
//!   `{rex, Result}` to `FromPid` (`rpc.erl:215-231`);
//! - `{FromPid, features_request}` → `{features_reply, Node, [erpc]}` (OTP 23/24 callers
//!   then use erpc, which [`crate::start`] also serves).
//!
//! Functions are those of [`crate::erpc`]'s registry (`erlang:nodes/0,1` and
//! `erlang:node/0` built in), run off the connection's reader; an unregistered one is
//! `{badrpc, {'EXIT', {undef, [{M, F, A, []}]}}}`, and any other request
//! `{badrpc, notsup}`.

use orbit_dist::service::{Inbound, Service, ServiceRequest};
use orbit_dist::Node;
use orbit_term::Term;

use crate::erpc::ErpcError;

/// The `rex` service.
pub struct Rex;

impl Service for Rex {
    fn message(&self, msg: Inbound<'_>) {
        match msg.request() {
            Some(ServiceRequest::Call(call)) => match call.request() {
                Term::Tuple(el)
                    if el.len() == 5 && matches!(el[0].as_atom(), Some("call" | "block_call")) =>
                {
                    let (m, f, a) = (el[1].clone(), el[2].clone(), el[3].clone());
                    apply(m, f, a, move |reply| call.reply(&reply));
                }
                _ => call.reply(&Term::tuple(vec![
                    Term::atom("badrpc"),
                    Term::atom("notsup"),
                ])),
            },
            Some(ServiceRequest::Info(Term::Tuple(el))) => match &el[..] {
                // rpc's nodes observer asks every new node `{From, features_request}`;
                // `erpc` tells OTP 23/24 callers to use erpc (served by crate::erpc).
                [Term::Pid(from), req] if req.as_atom() == Some("features_request") => {
                    let Some(node) = Node::current() else { return };
                    let reply = Term::tuple(vec![
                        Term::atom("features_reply"),
                        Term::atom(&node.name()),
                        Term::List(vec![Term::atom("erpc")]),
                    ]);
                    send(from, reply);
                }
                // The C-node form: `{FromPid, {call, M, F, A, GL}}` → `{rex, Result}`.
                [Term::Pid(from), Term::Tuple(req)]
                    if req.len() == 5 && req[0].as_atom() == Some("call") =>
                {
                    let from = (**from).clone();
                    let (m, f, a) = (req[1].clone(), req[2].clone(), req[3].clone());
                    apply(m, f, a, move |r| {
                        send(&from, Term::tuple(vec![Term::atom("rex"), r]))
                    });
                }
                _ => tracing::debug!(peer = %msg.peer, "rex message ignored"),
            },
            _ => tracing::debug!(peer = %msg.peer, "rex message ignored"),
        }
    }
}

fn send(to: &orbit_term::Pid, reply: Term) {
    if let Err(e) = orbit::send(orbit_dist::from_wire(to), reply) {
        tracing::debug!(error = %e, "rex reply not sent");
    }
}

fn badrpc(why: Term) -> Term {
    Term::tuple(vec![Term::atom("badrpc"), why])
}

fn exit(reason: Term) -> Term {
    badrpc(Term::tuple(vec![Term::atom("EXIT"), reason]))
}

/// Runs `M:F(A)` (a function of [`crate::erpc`]'s registry, off the connection's reader)
/// and hands `done` rex's answer: the value; `{badrpc, {'EXIT', {E, Stack}}}` for an
/// error (`undef` for an unregistered function), `{badrpc, {'EXIT', X}}` for an exit,
/// the thrown value for a throw (rex's `catch apply(M, F, A)`).
fn apply(m: Term, f: Term, a: Term, done: impl FnOnce(Term) + Send + 'static) {
    if Node::current().is_none() {
        return done(badrpc(Term::atom("nodedown")));
    }
    let Term::List(args) = a else {
        return done(exit(Term::atom("badarg")));
    };
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return done(badrpc(Term::atom("nodedown")));
    };
    let run = crate::erpc::call_local(&m, &f, args);
    rt.spawn(async move {
        done(match run.await {
            Ok(v) => v,
            Err(ErpcError::Throw(t)) => t,
            Err(ErpcError::Exit(x)) => exit(x),
            Err(ErpcError::Error { reason, stack }) => exit(Term::tuple(vec![reason, stack])),
            Err(other) => exit(
                other
                    .exception_term()
                    .unwrap_or_else(|| Term::Binary(other.to_string().into_bytes())),
            ),
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_functions_are_undef_without_a_node() {
        // No node started in this test binary: the reply says so rather than panicking.
        let (tx, rx) = std::sync::mpsc::channel();
        apply(Term::atom("m"), Term::atom("f"), Term::nil(), move |r| {
            tx.send(r).unwrap()
        });
        let r = rx.recv().unwrap();
        assert!(r.to_string().contains("nodedown"), "{r}");
    }
}
