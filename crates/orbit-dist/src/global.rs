//! `global_name_server`: a BEAM peer's `global` opens a synchronisation with every new
//! visible node (`{init_connect, ...}` and what follows). Orbit does not take part in
//! `global`'s name registry; the messages are dropped, which leaves the BEAM's `global`
//! treating this node as not (yet) synchronised while the connection itself stays up.

use orbit::Pid;

use crate::connection::Conn;

pub(crate) fn handle(conn: &Conn, _from: Pid, bytes: &[u8]) {
    let head = orbit_term::Term::decode(bytes)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let head: String = head.chars().take(80).collect();
    tracing::trace!(peer = %conn.peer, msg = %head, "global message ignored");
}
