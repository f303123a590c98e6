//! The other nodes of the cluster, read over distribution with `rex` (`rpc:call`):
//! a BEAM node (Erlang or Elixir) answers `erlang:memory(total)`,
//! `erlang:system_info(process_count)`, `erlang:statistics(run_queue)`, and
//! `erlang:process_info/2` for its processes, so the dashboard watches a mixed cluster.
//!
//! Contract: every call has a timeout; a node that does not answer (or an Orbit node,
//! whose `rex` answers only `erlang:nodes`) is listed with `reachable = false` and the
//! reason, never an error. The top processes of a BEAM node are ranked from at most
//! [`SCAN_LIMIT`] of its processes (one `process_info` call each, run concurrently):
//! a fallback until remote calls can run a whole ranking on the node itself.

use std::time::Duration;

use orbit_term::Term;
use serde::Serialize;

/// Processes of a BEAM node read per ranking.
pub const SCAN_LIMIT: usize = 300;

/// One of a BEAM node's processes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BeamProcess {
    /// The pid, as Erlang prints it.
    pub pid: String,
    /// Registered name, if any.
    pub name: Option<String>,
    /// `message_queue_len`.
    pub mailbox: i64,
    /// `memory` in bytes.
    pub memory: i64,
    /// `reductions`.
    pub reductions: i64,
}

/// What a peer node reported.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeerNode {
    /// The node's name.
    pub node: String,
    /// Whether it answered the BEAM calls.
    pub reachable: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    /// `erlang:memory(total)`.
    pub memory: Option<i64>,
    /// `erlang:system_info(process_count)`.
    pub processes: Option<i64>,
    /// `erlang:statistics(run_queue)`.
    pub run_queue: Option<i64>,
    /// Processes with the longest mailboxes (then most memory), of those scanned.
    pub top: Vec<BeamProcess>,
}

/// `rpc:call(node, m, f, args)` over `rex` within `timeout`; a `badrpc` is an error.
pub(crate) async fn rpc(
    node: &str,
    m: &str,
    f: &str,
    args: Vec<Term>,
    timeout: Duration,
) -> Result<Term, String> {
    let req = Term::tuple(vec![
        Term::atom("call"),
        Term::atom(m),
        Term::atom(f),
        Term::List(args),
        Term::atom("user"),
    ]);
    match orbit_dist::call::<_, Term>(("rex", node), &req, timeout).await {
        Ok(Term::Tuple(t)) if t.first().and_then(Term::as_atom) == Some("badrpc") => {
            Err(format!("{m}:{f} answered {:?}", t.get(1)))
        }
        Ok(t) => Ok(t),
        Err(e) => Err(format!("{m}:{f}: {e}")),
    }
}

/// Reads every connected node (visible ones), `top` processes each.
pub async fn peers(top: usize, timeout: Duration) -> Vec<PeerNode> {
    let Some(node) = orbit_dist::Node::current() else {
        return Vec::new();
    };
    let names = node.list();
    futures::future::join_all(names.into_iter().map(|n| peer(n, top, timeout))).await
}

/// Reads one node.
pub async fn peer(node: String, top: usize, timeout: Duration) -> PeerNode {
    let mem = rpc(
        &node,
        "erlang",
        "memory",
        vec![Term::atom("total")],
        timeout,
    )
    .await;
    let mut p = PeerNode {
        node: node.clone(),
        reachable: mem.is_ok(),
        error: mem.as_ref().err().cloned(),
        memory: mem.ok().and_then(|t| t.as_i64()),
        processes: None,
        run_queue: None,
        top: Vec::new(),
    };
    if !p.reachable {
        return p;
    }
    p.processes = rpc(
        &node,
        "erlang",
        "system_info",
        vec![Term::atom("process_count")],
        timeout,
    )
    .await
    .ok()
    .and_then(|t| t.as_i64());
    p.run_queue = rpc(
        &node,
        "erlang",
        "statistics",
        vec![Term::atom("run_queue")],
        timeout,
    )
    .await
    .ok()
    .and_then(|t| t.as_i64());
    if top > 0 {
        if let Ok(Term::List(pids)) = rpc(&node, "erlang", "processes", vec![], timeout).await {
            let keys = Term::List(
                [
                    "registered_name",
                    "message_queue_len",
                    "memory",
                    "reductions",
                ]
                .iter()
                .map(|k| Term::atom(k))
                .collect(),
            );
            let calls = pids.into_iter().take(SCAN_LIMIT).map(|pid| {
                let (node, keys) = (node.clone(), keys.clone());
                async move {
                    let shown = show_pid(&pid);
                    let info = rpc(&node, "erlang", "process_info", vec![pid, keys], timeout).await;
                    info.ok().and_then(|t| beam_process(shown, &t))
                }
            });
            let mut all: Vec<BeamProcess> = futures::future::join_all(calls)
                .await
                .into_iter()
                .flatten()
                .collect();
            all.sort_by(|a, b| b.mailbox.cmp(&a.mailbox).then(b.memory.cmp(&a.memory)));
            all.truncate(top);
            p.top = all;
        }
    }
    p
}

/// A pid as Erlang prints it.
pub(crate) fn show_pid(t: &Term) -> String {
    match t {
        Term::Pid(p) => format!("<{}.{}.{}>", p.node.as_str(), p.id, p.serial),
        other => format!("{other:?}"),
    }
}

/// `[{registered_name, N}, {message_queue_len, L}, {memory, M}, {reductions, R}]`.
fn beam_process(pid: String, t: &Term) -> Option<BeamProcess> {
    let Term::List(items) = t else { return None };
    let mut p = BeamProcess {
        pid,
        name: None,
        mailbox: 0,
        memory: 0,
        reductions: 0,
    };
    for item in items {
        let Term::Tuple(kv) = item else { continue };
        let (Some(k), Some(v)) = (kv.first().and_then(Term::as_atom), kv.get(1)) else {
            continue;
        };
        match k {
            "registered_name" => p.name = v.as_atom().map(String::from),
            "message_queue_len" => p.mailbox = v.as_i64().unwrap_or(0),
            "memory" => p.memory = v.as_i64().unwrap_or(0),
            "reductions" => p.reductions = v.as_i64().unwrap_or(0),
            _ => {}
        }
    }
    Some(p)
}
