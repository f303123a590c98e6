//! The part of `rex` the wire's transitive connection needs: a built-in service that
//! answers `rpc:call(Node, erlang, nodes, [])`, `erlang:node/0` and
//! `application:get_env(kernel, connect_all)` (`{ok, true | false}`, what the mesh asks
//! first).
//!
//! Orbit connects to the visible peers of a new visible peer (OTP's `connect_all`,
//! which OTP's `global` does; here the node layer does it, see [`crate::node`]). It
//! learns them by calling the peer's `rex` with `{call, erlang, nodes, [], user}`,
//! which BEAM nodes answer; so that Orbit nodes without `orbit-cluster` mesh with each
//! other, a bare node answers that call too. Only the `$gen_call` form with
//! `erlang:nodes/0,1`, `erlang:node/0` and that `get_env` is answered; any other call gets
//! `{badrpc, notsup}`, plain messages (rex's C-node form, `features_request`) are
//! dropped. `orbit-cluster` registers the full legacy `rex` over this one.

use orbit_term::Term;

use crate::peers;
use crate::service::{Inbound, Service, ServiceRequest};

/// The built-in `rex` of a bare node.
pub(crate) struct RexNodes;

impl Service for RexNodes {
    fn message(&self, msg: Inbound<'_>) {
        let Some(ServiceRequest::Call(call)) = msg.request() else {
            tracing::debug!(peer = %msg.peer, "rex message ignored (no orbit-cluster rex)");
            return;
        };
        let reply = match call.request() {
            Term::Tuple(el)
                if el.len() == 5 && matches!(el[0].as_atom(), Some("call" | "block_call")) =>
            {
                nodes_call(&el[1], &el[2], &el[3])
            }
            _ => None,
        };
        call.reply(&reply.unwrap_or_else(notsup));
    }
}

/// `{badrpc, notsup}`.
fn notsup() -> Term {
    Term::tuple(vec![Term::atom("badrpc"), Term::atom("notsup")])
}

/// The value of `erlang:nodes/0,1`, `erlang:node/0` or `application:get_env(kernel,
/// connect_all)`; `None` for anything else.
pub(crate) fn nodes_call(m: &Term, f: &Term, a: &Term) -> Option<Term> {
    let node = peers::get()?;
    match (m.as_atom(), f.as_atom(), a) {
        (Some("erlang"), Some("nodes"), Term::List(args)) if args.len() <= 1 => Some(Term::List(
            peers::connected(true)
                .iter()
                .map(|n| Term::atom(n))
                .collect(),
        )),
        (Some("erlang"), Some("node"), Term::List(args)) if args.is_empty() => {
            Some(Term::atom(&node.id.name))
        }
        (Some("application"), Some("get_env"), Term::List(args))
            if args.len() == 2
                && args[0].as_atom() == Some("kernel")
                && args[1].as_atom() == Some("connect_all") =>
        {
            Some(Term::tuple(vec![
                Term::atom("ok"),
                Term::atom(if node.connect_all { "true" } else { "false" }),
            ]))
        }
        _ => None,
    }
}
