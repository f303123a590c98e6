//! `rex`, the BEAM's `rpc` server: `rpc:call(Node, M, F, A)` sends
//! `{'$gen_call', From, {call, M, F, A, GroupLeader}}`. Orbit answers `erlang:nodes/0,1`
//! and `erlang:node/0` (used for transitive connection); any other function is
//! `{badrpc, {'EXIT', {undef, [{M, F, A, []}]}}}`.

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
        let t = orbit_term::Term::decode(bytes)
            .map(|t| t.to_string())
            .unwrap_or_default();
        tracing::debug!(peer = %conn.peer, msg = %t, "rex message ignored");
        return;
    };
    let reply = match &call.request {
        Term::Tuple(el) if el.len() == 5 && el[0].as_atom() == Some("call") => {
            let (m, f, a) = (&el[1], &el[2], &el[3]);
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
        _ => Term::tuple(vec![Term::atom("badrpc"), Term::atom("notsup")]),
    };
    gen_call::answer(crate::node::system_pid(), &call, &reply);
}
