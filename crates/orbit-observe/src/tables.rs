//! The tables view (`/api/tables`): the ETS tables of this node (its named tables, from
//! `orbit::ets::named_table_info`) or of a BEAM node over `rex` (`ets:all()`, then
//! `ets:info/1` of each, run concurrently, and the owners' registered names), as rows
//! of one shape: name, type, protection, objects, memory in bytes, owner.
//!
//! Neither runtime counts reads and writes per table (OTP 25's `ets:info` has no such
//! item; Orbit keeps no per-table counters so lookups stay as cheap as they are), so the
//! view has none. Contract: a node that does not answer gives a [`TablesView`] with
//! `reachable = false` and the reason, never an error; at most [`TABLE_LIMIT`] tables
//! of a BEAM node are read, the largest by memory listed first.

use std::collections::HashMap;
use std::time::Duration;

use orbit_term::Term;
use serde::Serialize;

use crate::beam::{rpc, show_pid};

/// Tables of a BEAM node read per view.
pub const TABLE_LIMIT: usize = 500;

/// One table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableRow {
    /// The name (a named table's name; Erlang's `name` item, which unnamed tables have
    /// too).
    pub name: String,
    /// The table id as its runtime prints it.
    pub id: String,
    /// Whether it is registered under its name (`named_table`).
    pub named: bool,
    /// `set`, `ordered_set`, `bag` or `duplicate_bag`.
    pub kind: String,
    /// `public`, `protected` or `private`.
    pub protection: String,
    /// Objects in it.
    pub size: i64,
    /// Bytes it holds (Erlang reports words: multiplied by the word size).
    pub memory: i64,
    /// The owner's pid.
    pub owner: String,
    /// The owner's registered name, if any.
    pub owner_name: Option<String>,
}

/// The tables of one node.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TablesView {
    /// The node's name (`nonode@nohost` for an Orbit node not started as a distributed
    /// node).
    pub node: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    /// Its tables, most memory first.
    pub tables: Vec<TableRow>,
    /// How many it has (more than `tables` when [`TABLE_LIMIT`] cut the list).
    pub total: usize,
}

/// This node's named tables.
pub fn local() -> TablesView {
    let mut tables: Vec<TableRow> = orbit::ets::named_table_info()
        .into_iter()
        .map(|i| {
            let owner_name = if i.owner == orbit::Pid::NONE {
                None
            } else {
                orbit::process_info(i.owner).and_then(|p| p.registered_name.map(|n| n.to_string()))
            };
            TableRow {
                name: i.name.as_deref().unwrap_or("").to_string(),
                id: i.id.to_string(),
                named: i.name.is_some(),
                kind: i.kind.to_string(),
                protection: i.protection.to_string(),
                size: i.size as i64,
                memory: i.memory as i64,
                owner: if i.owner == orbit::Pid::NONE {
                    "none".into()
                } else {
                    i.owner.to_string()
                },
                owner_name,
            }
        })
        .collect();
    sort(&mut tables);
    TablesView {
        node: crate::node_name(),
        reachable: true,
        error: None,
        total: tables.len(),
        tables,
    }
}

fn sort(tables: &mut [TableRow]) {
    tables.sort_by(|a, b| b.memory.cmp(&a.memory).then(a.name.cmp(&b.name)));
}

/// The tables of the BEAM node `node`, read over `rex`, each call within `timeout`.
pub async fn beam(node: &str, timeout: Duration) -> TablesView {
    let mut view = TablesView {
        node: node.to_string(),
        reachable: false,
        error: None,
        tables: Vec::new(),
        total: 0,
    };
    let all = match rpc(node, "ets", "all", vec![], timeout).await {
        Ok(Term::List(all)) => all,
        Ok(other) => {
            view.error = Some(format!("ets:all() answered {other:?}"));
            return view;
        }
        Err(e) => {
            view.error = Some(e);
            return view;
        }
    };
    view.reachable = true;
    view.total = all.len();
    let word = rpc(
        node,
        "erlang",
        "system_info",
        vec![Term::atom("wordsize")],
        timeout,
    )
    .await
    .ok()
    .and_then(|t| t.as_i64())
    .unwrap_or(8);
    let infos = all.into_iter().take(TABLE_LIMIT).map(|t| async move {
        let id = show(&t);
        match rpc(node, "ets", "info", vec![t], timeout).await {
            Ok(info) => table_row(id, &info, word),
            Err(_) => None,
        }
    });
    let mut rows: Vec<(TableRow, Option<Term>)> = futures::future::join_all(infos)
        .await
        .into_iter()
        .flatten()
        .collect();
    // The owners' registered names, one call per distinct owner.
    let mut owners: HashMap<String, Term> = HashMap::new();
    for (row, pid) in &rows {
        if let Some(pid) = pid {
            owners
                .entry(row.owner.clone())
                .or_insert_with(|| pid.clone());
        }
    }
    let names = futures::future::join_all(owners.into_iter().map(|(shown, pid)| async move {
        let name = rpc(
            node,
            "erlang",
            "process_info",
            vec![pid, Term::atom("registered_name")],
            timeout,
        )
        .await
        .ok()
        .and_then(|t| match t {
            Term::Tuple(kv) => kv.get(1).and_then(Term::as_atom).map(String::from),
            _ => None,
        });
        (shown, name)
    }))
    .await;
    let names: HashMap<String, Option<String>> = names.into_iter().collect();
    for (row, _) in &mut rows {
        row.owner_name = names.get(&row.owner).cloned().flatten();
    }
    let mut tables: Vec<TableRow> = rows.into_iter().map(|(r, _)| r).collect();
    sort(&mut tables);
    view.tables = tables;
    view
}

/// A table id as Erlang prints it: an atom, or `#Ref<…>`.
fn show(t: &Term) -> String {
    match t {
        Term::Atom(a) => a.as_str().to_string(),
        Term::Reference(r) => format!(
            "#Ref<{}.{}>",
            r.node.as_str(),
            r.ids()
                .iter()
                .rev()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(".")
        ),
        other => format!("{other:?}"),
    }
}

/// `ets:info/1`'s proplist as a row and the owner's pid term; `None` for `undefined`
/// (a table deleted since `ets:all()`).
fn table_row(id: String, info: &Term, word: i64) -> Option<(TableRow, Option<Term>)> {
    let Term::List(items) = info else { return None };
    let mut row = TableRow {
        name: String::new(),
        id,
        named: false,
        kind: String::new(),
        protection: String::new(),
        size: 0,
        memory: 0,
        owner: String::new(),
        owner_name: None,
    };
    let mut owner = None;
    for item in items {
        let Term::Tuple(kv) = item else { continue };
        let (Some(k), Some(v)) = (kv.first().and_then(Term::as_atom), kv.get(1)) else {
            continue;
        };
        match k {
            "name" => row.name = v.as_atom().unwrap_or("").to_string(),
            "named_table" => row.named = v.as_atom() == Some("true"),
            "type" => row.kind = v.as_atom().unwrap_or("").to_string(),
            "protection" => row.protection = v.as_atom().unwrap_or("").to_string(),
            "size" => row.size = v.as_i64().unwrap_or(0),
            "memory" => row.memory = v.as_i64().unwrap_or(0).saturating_mul(word),
            "owner" => {
                row.owner = show_pid(v);
                owner = Some(v.clone());
            }
            _ => {}
        }
    }
    Some((row, owner))
}
