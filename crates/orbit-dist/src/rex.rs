//! `rex`, the BEAM's legacy `rpc` server.
//!
//! **`rpc:call`/`erpc:call` into Orbit do not reach this module.** In OTP 25 they are
//! erpc, which spawns on the target with `SPAWN_REQUEST`; Orbit does not advertise
//! `DFLAG_SPAWN` (it cannot run an Erlang function), so the caller's runtime answers at
//! once, without sending anything: `:rpc.call(orbit, m, f, a)` returns
//! `{:badrpc, :notsup}` and `:erpc.call` raises `{:erpc, :notsup}`. Serving erpc with
//! Rust functions registered under module/function names is the distributed-work issue.
//!
//! What still reaches `rex`, and is answered here:
//! - `{'$gen_call', From, {call | block_call, M, F, A, GroupLeader}}` (OTP 23/24
//!   callers, `rpc:block_call`);
//! - the C-node form `{FromPid, {call, M, F, A, GroupLeader}}`, answered with a plain
//!   `{rex, Result}` to `FromPid` (`rpc.erl:215-231`);
//! - `{FromPid, features_request}` → `{features_reply, Node, []}` (no `erpc`).
//!
//! Of functions, only `erlang:nodes/0,1` and `erlang:node/0` are answered (used for
//! transitive connection); any other is `{badrpc, {'EXIT', {undef, [{M, F, A, []}]}}}`,
//! and any other request `{badrpc, notsup}`.

use orbit::Pid;
use orbit_term::Term;

use crate::connection::Conn;
use crate::gen_call;
use crate::node::Node;

pub(crate) fn handle(conn: &Conn, _from: Pid, bytes: &[u8]) {
    // rpc's nodes observer asks every new node `{From, features_request}`; answering
    // without `erpc` makes `rpc:call` use the `rex` gen_server protocol below.
    if let Ok(Term::Tuple(el)) = Term::decode(bytes) {
        if let [Term::Pid(from), req] = &el[..] {
            if req.as_atom() == Some("features_request") {
                let reply = Term::tuple(vec![
                    Term::atom("features_reply"),
                    Term::atom(&Node.name()),
                    Term::nil(),
                ]);
                let _ = orbit::send(crate::convert::pid_from_wire(from), reply);
                return;
            }
        }
    }
    let Some(Ok(call)) = gen_call::parse(bytes) else {
        if let Ok(Term::Tuple(el)) = Term::decode(bytes) {
            // The C-node form: `{FromPid, {call, M, F, A, GL}}` → `{rex, Result}`.
            if let [Term::Pid(from), Term::Tuple(req)] = &el[..] {
                if req.len() == 5 && req[0].as_atom() == Some("call") {
                    let reply =
                        Term::tuple(vec![Term::atom("rex"), apply(&req[1], &req[2], &req[3])]);
                    let to = crate::convert::pid_from_wire(from);
                    if let Err(e) = crate::send(to, &reply) {
                        tracing::debug!(error = %e, "rex reply not sent");
                    }
                    return;
                }
            }
        }
        let t = orbit_term::Term::decode(bytes)
            .map(|t| t.to_string())
            .unwrap_or_default();
        tracing::debug!(peer = %conn.peer, msg = %t, "rex message ignored");
        return;
    };
    let reply = match &call.request {
        Term::Tuple(el)
            if el.len() == 5 && matches!(el[0].as_atom(), Some("call" | "block_call")) =>
        {
            apply(&el[1], &el[2], &el[3])
        }
        _ => Term::tuple(vec![Term::atom("badrpc"), Term::atom("notsup")]),
    };
    gen_call::answer(crate::node::system_pid(), &call, &reply);
}

/// The result of `M:F(A...)` as rpc gives it.
fn apply(m: &Term, f: &Term, a: &Term) -> Term {
    match (m.as_atom(), f.as_atom(), a) {
        (Some("erlang"), Some("nodes"), Term::List(args)) if args.len() <= 1 => {
            let node = Node;
            Term::List(node.list().iter().map(|n| Term::atom(n)).collect())
        }
        (Some("erlang"), Some("node"), Term::List(args)) if args.is_empty() => {
            Term::atom(&Node.name())
        }
        _ => Term::tuple(vec![
            Term::atom("badrpc"),
            Term::tuple(vec![
                Term::atom("EXIT"),
                Term::tuple(vec![
                    Term::atom("undef"),
                    Term::List(vec![Term::tuple(vec![
                        m.clone(),
                        f.clone(),
                        a.clone(),
                        Term::nil(),
                    ])]),
                ]),
            ]),
        ]),
    }
}
