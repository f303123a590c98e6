//! `net_kernel`, the wire's own built-in service: what a BEAM peer's `net_kernel`
//! expects of every node. `net_adm:ping/1` is a `$gen_call` to `net_kernel` with
//! `{is_auth, Node}`, answered `yes` (a peer that got this far passed the cookie
//! handshake). Any other call is answered `ignored`, casts and plain messages are
//! dropped.
//!
//! It stays in `orbit-dist` (registered through [`crate::service`] by
//! [`crate::Node::start`]) because a bare node must answer pings: without it
//! `net_adm:ping` from a BEAM node and [`crate::Node::ping`] between Orbit nodes give
//! `pang`. OTP's `net_kernel` also runs `monitor_nodes` and `connect_node`; here they
//! are [`crate::Node`]'s methods, not messages.

use orbit_term::Term;

use crate::service::{Inbound, Service, ServiceRequest};

/// The built-in `net_kernel` service.
pub(crate) struct NetKernel;

impl Service for NetKernel {
    fn message(&self, msg: Inbound<'_>) {
        match msg.request() {
            Some(ServiceRequest::Call(call)) => {
                let reply = match call.request() {
                    Term::Tuple(el) if el.first().and_then(Term::as_atom) == Some("is_auth") => {
                        Term::atom("yes")
                    }
                    _ => Term::atom("ignored"),
                };
                call.reply(&reply);
            }
            _ => tracing::debug!(peer = %msg.peer, "net_kernel message ignored"),
        }
    }
}
