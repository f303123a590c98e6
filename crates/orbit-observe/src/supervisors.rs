//! Supervisors as a tree: every supervisor of the node (found among the processes; on a
//! node of more than [`SCAN_LIMIT`] processes, among the registered ones only), each
//! with its children (`which_children`), nested under the supervisor that supervises
//! it. A supervisor that does not answer within the timeout is shown without children
//! and with the error, never waited on longer.

use std::collections::HashSet;
use std::time::Duration;

use orbit::{ChildKind, Pid, SupervisorRef};
use serde::Serialize;

/// Above this many processes only registered supervisors are found.
pub const SCAN_LIMIT: usize = 100_000;

/// One supervisor and its children.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SupervisorNode {
    /// Its pid.
    pub pid: String,
    /// Its registered name, if any.
    pub name: Option<String>,
    /// Why its children are missing, when they are.
    pub error: Option<String>,
    /// Its children, in start order.
    pub children: Vec<ChildNode>,
}

/// One child of a supervisor.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChildNode {
    /// The child's id.
    pub id: String,
    /// Its pid while it runs.
    pub pid: Option<String>,
    /// `worker` or `supervisor`.
    pub kind: String,
    /// Its restart type.
    pub restart: String,
    /// A supervisor child's own tree.
    pub supervisor: Option<Box<SupervisorNode>>,
}

/// The supervision trees of this node, roots first.
pub async fn trees(timeout: Duration) -> Vec<SupervisorNode> {
    let found = tokio::task::spawn_blocking(find).await.unwrap_or_default();
    let mut children_of: Vec<(Pid, Result<Vec<orbit::ChildInfo>, String>)> = Vec::new();
    for pid in &found {
        let Some(sup) = SupervisorRef::from_pid(*pid) else {
            continue;
        };
        let r = match tokio::time::timeout(timeout, sup.which_children()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        children_of.push((*pid, r));
    }
    let supervised: HashSet<Pid> = children_of
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flatten()
        .filter(|c| c.kind == ChildKind::Supervisor)
        .filter_map(|c| c.pid)
        .collect();
    children_of
        .iter()
        .filter(|(pid, _)| !supervised.contains(pid))
        .map(|(pid, _)| build(*pid, &children_of, 0))
        .collect()
}

fn build(
    pid: Pid,
    all: &[(Pid, Result<Vec<orbit::ChildInfo>, String>)],
    depth: usize,
) -> SupervisorNode {
    let name = orbit::process_info(pid).and_then(|i| i.registered_name.map(|n| n.to_string()));
    let mut node = SupervisorNode {
        pid: pid.to_string(),
        name,
        error: None,
        children: Vec::new(),
    };
    match all.iter().find(|(p, _)| *p == pid).map(|(_, r)| r) {
        Some(Ok(children)) => {
            node.children = children
                .iter()
                .map(|c| ChildNode {
                    id: c.id.clone(),
                    pid: c.pid.map(|p| p.to_string()),
                    kind: format!("{:?}", c.kind).to_lowercase(),
                    restart: format!("{:?}", c.restart).to_lowercase(),
                    // Depth-capped: a malformed cycle cannot recurse forever.
                    supervisor: match (c.kind, c.pid) {
                        (ChildKind::Supervisor, Some(p)) if depth < 32 => {
                            Some(Box::new(build(p, all, depth + 1)))
                        }
                        _ => None,
                    },
                })
                .collect()
        }
        Some(Err(e)) => node.error = Some(e.clone()),
        None => node.error = Some("not found among the supervisors".into()),
    }
    node
}

/// The supervisors' pids.
fn find() -> Vec<Pid> {
    let mut out = Vec::new();
    if orbit::process_count() <= SCAN_LIMIT {
        orbit::info::each_process(|c| {
            if SupervisorRef::from_pid(c.pid).is_some() {
                out.push(c.pid);
            }
        });
    } else {
        for name in orbit::registered() {
            if let Some(pid) = orbit::whereis(&*name) {
                if SupervisorRef::from_pid(pid).is_some() {
                    out.push(pid);
                }
            }
        }
    }
    out
}
