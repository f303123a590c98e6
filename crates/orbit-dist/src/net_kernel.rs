//! What a BEAM peer's `net_kernel` expects of this node: `net_adm:ping/1` is a
//! `$gen_call` to `net_kernel` with `{is_auth, Node}`, answered `yes`.

use orbit::Pid;
use orbit_term::Term;

use crate::connection::Conn;
use crate::gen_call;

pub(crate) fn handle(conn: &Conn, _from: Pid, bytes: &[u8]) {
    match gen_call::parse(bytes) {
        Some(Ok(call)) => {
            let reply = match &call.request {
                Term::Tuple(el) if el.first().and_then(Term::as_atom) == Some("is_auth") => {
                    Term::atom("yes")
                }
                _ => Term::atom("ignored"),
            };
            gen_call::answer(crate::node::system_pid(), &call, &reply);
        }
        _ => tracing::debug!(peer = %conn.peer, "net_kernel message ignored"),
    }
}
