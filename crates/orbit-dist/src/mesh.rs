//! The transitive mesh: OTP's `connect_all`, done by the node rather than by `global`.
//!
//! In OTP 25 a new visible connection makes `global` sync with the peer and then connect
//! each side to the other's nodes (`global.erl` `handle_nodeup`, `new_nodes`), unless the
//! kernel parameter `connect_all` is false (`erl -connect_all false`): then `global`
//! ignores the nodeup (no `init_connect`, no sync), so that node neither connects to its
//! peers' peers nor tells its peers about each other. Orbit does not sync `global`; a
//! node whose `connect_all` is true instead runs [`on_nodeup`] for each new visible peer:
//!
//! 1. it asks the peer, through the peer's `rex`, `application:get_env(kernel,
//!    connect_all)` and `erlang:nodes()` (both at once); BEAM nodes answer both (OTP 25's
//!    `global` sets the parameter at start), Orbit nodes answer both in their built-in
//!    `rex` (and `orbit-cluster`'s);
//! 2. unless the answer is `{ok, false}` (the peer keeps out of the mesh, so nothing is
//!    learnt through it), it connects to each of those nodes it has no connection to,
//!    and tells the peer about this node's other peers that take part (OTP's
//!    `new_nodes`): `rpc:cast(Peer, net_adm, ping_list, [Nodes])`, which a BEAM peer
//!    runs (so two BEAM nodes that meet only through an Orbit node connect, as through
//!    a BEAM node) and an Orbit peer ignores (it asked for this node's nodes itself).
//!
//! Contract: never called on a node whose own `connect_all` is false or that is hidden
//! (the node layer checks); any failed or odd answer is logged at debug and ends the
//! attempt (a peer that does not answer `get_env` is taken to take part, as a node older
//! than this module); nothing here panics.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use orbit_term::Term;
use parking_lot::Mutex;

use crate::peers::{self, conn_for};

/// The peers that said they take part in the mesh (stale names are filtered against
/// the connected nodes when used).
fn members() -> &'static Mutex<HashSet<String>> {
    static MEMBERS: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    MEMBERS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// How long each question to the peer may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the visible nodes of `peer` unless `peer` keeps out of the mesh.
pub(crate) async fn on_nodeup(peer: String) {
    let (takes_part, nodes) = tokio::join!(takes_part(&peer), visible_nodes(&peer));
    if !takes_part {
        members().lock().remove(&peer);
        tracing::debug!(%peer, "not meshing through a node whose connect_all is false");
        return;
    }
    introduce(&peer);
    let Some(nodes) = nodes else { return };
    let Some(me) = peers::get() else { return };
    for name in nodes {
        if name != *me.id.name && !me.conns.lock().contains_key(name.as_str()) {
            tracing::debug!(via = %peer, node = %name, "connecting transitively");
            let _ = conn_for(&name);
        }
    }
}

/// Tells `peer` about this node's other connected peers that take part in the mesh:
/// `rpc:cast(Peer, net_adm, ping_list, [Nodes])`.
fn introduce(peer: &str) {
    let visible: HashSet<String> = peers::connected(true).into_iter().collect();
    let known: Vec<Term> = {
        let mut m = members().lock();
        m.insert(peer.to_string());
        m.retain(|n| visible.contains(n));
        m.iter()
            .filter(|n| n.as_str() != peer)
            .map(|n| Term::atom(n))
            .collect()
    };
    if known.is_empty() {
        return;
    }
    let req = Term::tuple(vec![
        Term::atom("cast"),
        Term::atom("net_adm"),
        Term::atom("ping_list"),
        Term::List(vec![Term::List(known)]),
        Term::atom("user"),
    ]);
    let dest = orbit::Dest::Remote {
        name: "rex".into(),
        node: peer.into(),
    };
    if let Err(e) = crate::gen_call::cast(dest, &req) {
        tracing::debug!(%peer, error = %e, "could not introduce the mesh to the peer");
    }
}

/// `rpc:call(Peer, M, F, A)` through the peer's `rex` (`{call, M, F, A, user}`).
async fn rex_call(peer: &str, m: &str, f: &str, args: Vec<Term>) -> Option<Term> {
    let req = Term::tuple(vec![
        Term::atom("call"),
        Term::atom(m),
        Term::atom(f),
        Term::List(args),
        Term::atom("user"),
    ]);
    let dest = orbit::Dest::Remote {
        name: "rex".into(),
        node: peer.into(),
    };
    match crate::gen_call::call::<_, Term>(dest, &req, ASK_TIMEOUT).await {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::debug!(%peer, function = %format!("{m}:{f}"), error = %e, "mesh question failed");
            None
        }
    }
}

/// False only when the peer answers `{ok, false}` to `application:get_env(kernel,
/// connect_all)`.
async fn takes_part(peer: &str) -> bool {
    let args = vec![Term::atom("kernel"), Term::atom("connect_all")];
    match rex_call(peer, "application", "get_env", args).await {
        Some(Term::Tuple(el)) => {
            !(el.len() == 2 && el[0].as_atom() == Some("ok") && el[1].as_atom() == Some("false"))
        }
        _ => true,
    }
}

/// The peer's `erlang:nodes()`, or `None` when it did not answer with a list.
async fn visible_nodes(peer: &str) -> Option<Vec<String>> {
    match rex_call(peer, "erlang", "nodes", Vec::new()).await {
        Some(Term::List(nodes)) => Some(
            nodes
                .iter()
                .filter_map(|n| n.as_atom().map(str::to_string))
                .collect(),
        ),
        other => {
            tracing::debug!(%peer, answer = ?other, "erlang:nodes() gave no list");
            None
        }
    }
}
