//! The terms of OTP's `global` protocol (version 8, OTP 25 `global.erl`): what peers'
//! `global_name_server`s send this node, parsed into [`Incoming`] / [`Request`], and
//! the terms this node sends them.
//!
//! Parsing never panics: a term of an unexpected shape is a [`Malformed`] naming it,
//! which the server logs, counts and ignores (OTP's server would log it as an
//! "unexpected message" or crash on it).

use orbit::Pid;
use orbit_term::Term;

/// The protocol version this node speaks (OTP 25's `?vsn`).
pub(crate) const VSN: i64 = 8;

/// A message of the protocol from another node's `global_name_server` (a cast or a
/// plain message).
#[derive(Debug, Clone)]
pub(crate) enum Incoming {
    /// `{init_connect, {Vsn, HisTag}, Node, {locker, Marker, _, HisLocker}}`; an Orbit
    /// node's marker is [`ORBIT_MARKER`] (OTP sends `no_longer_a_pid` and ignores it).
    InitConnect {
        node: String,
        vsn: i64,
        his_tag: Term,
        locker: Pid,
        orbit: bool,
    },
    /// `{init_connect_ack, Node, HisView of my tag, his tag}`.
    InitConnectAck {
        node: String,
        my_tag: Term,
        his_tag: Term,
    },
    /// `{cancel_connect, Node, MyTag}`.
    CancelConnect { node: String, my_tag: Term },
    /// `{lock_set, HisLocker, IsSet, HisKnown[, MyTag]}`.
    LockSet {
        locker: Pid,
        set: bool,
        my_tag: Option<Term>,
    },
    /// `{exchange, Node, Names, NamesExt, MyTag}`.
    Exchange {
        node: String,
        names: Vec<NameEntry>,
        my_tag: Term,
    },
    /// `{resolved, Node, HisResolved, HisKnown, _, NamesExt, MyTag}`.
    Resolved {
        node: String,
        ops: Vec<Op>,
        known: Vec<String>,
        my_tag: Term,
    },
    /// `{new_nodes, Node, Ops, NamesExt, Nodes, ExtraInfo}`.
    NewNodes {
        node: String,
        ops: Vec<Op>,
        nodes: Vec<String>,
    },
    /// `{in_sync, Node, IsKnown}`.
    InSync { node: String },
    /// `{lost_connection, NodeA, XCreation, OpId, NodeB}` (prevent_overlapping_partitions).
    LostConnection { a: String, b: String },
    /// `{remove_connection, Node}`: disconnect from `Node`.
    RemoveConnection { node: String },
    /// `{whereis, Name, {Pid, Tag}}`.
    Whereis { name: Term, pid: Pid, tag: Term },
    /// Legacy `async_del_name`/`async_del_lock` casts (ignored by OTP as well).
    Legacy,
}

/// A `$gen_call` request to `global_name_server`.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    /// `{register, Name, Pid, Method}`.
    Register(NameEntry),
    /// `{register_ext, Name, Pid, Method, RegNode}`.
    RegisterExt(NameEntry),
    /// `{unregister, Name}`.
    Unregister(Term),
    /// `{set_lock, {ResourceId, LockRequesterId}}`.
    SetLock(Term, Term),
    /// `{del_lock, {ResourceId, LockRequesterId}}`.
    DelLock(Term, Term),
    /// `get_known`.
    GetKnown,
    /// `get_synced`.
    GetSynced,
    /// `get_protocol_version`.
    GetProtocolVersion,
    /// `get_names_ext`.
    GetNamesExt,
}

/// A registered name as the protocol carries it: `{Name, Pid, Method}`.
#[derive(Debug, Clone)]
pub(crate) struct NameEntry {
    pub name: Term,
    pub pid: Pid,
    pub method: Term,
}

/// A name operation of `exchange`/`resolved`/`new_nodes`.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `{insert, {Name, Pid, Method}}`.
    Insert(NameEntry),
    /// `{delete, Name}`.
    Delete(Term),
}

/// A message that is not one of the protocol's.
#[derive(Debug, Clone, thiserror::Error)]
#[error("global: ignored a malformed message ({what}): {term}")]
pub(crate) struct Malformed {
    what: &'static str,
    term: String,
}

fn bad<T>(what: &'static str, t: &Term) -> Result<T, Malformed> {
    Err(Malformed {
        what,
        term: short(t),
    })
}

/// The first 120 characters of a term's text.
pub(crate) fn short(t: &Term) -> String {
    let s = t.to_string();
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

fn elems(t: &Term) -> Option<(&str, &[Term])> {
    match t {
        Term::Tuple(el) => Some((el.first()?.as_atom()?, &el[1..])),
        _ => None,
    }
}

fn node(t: &Term) -> Option<String> {
    t.as_atom().filter(|a| a.contains('@')).map(str::to_string)
}

fn pid(t: &Term) -> Option<Pid> {
    match t {
        Term::Pid(p) => Some(orbit_dist::from_wire(p)),
        _ => None,
    }
}

/// `Node` or `{Node, Vsn}` items of a known list; other items are skipped.
fn known_list(t: &Term) -> Option<Vec<String>> {
    let Term::List(l) = t else {
        return None;
    };
    Some(
        l.iter()
            .filter_map(|e| match e {
                Term::Tuple(nv) if nv.len() == 2 => node(&nv[0]),
                a => node(a),
            })
            .collect(),
    )
}

fn name_entry(t: &Term) -> Option<NameEntry> {
    match t {
        Term::Tuple(el) if el.len() == 3 => Some(NameEntry {
            name: el[0].clone(),
            pid: pid(&el[1])?,
            method: el[2].clone(),
        }),
        _ => None,
    }
}

fn name_list(t: &Term) -> Option<Vec<NameEntry>> {
    let Term::List(l) = t else {
        return None;
    };
    l.iter().map(name_entry).collect()
}

fn ops(t: &Term) -> Option<Vec<Op>> {
    let Term::List(l) = t else {
        return None;
    };
    l.iter()
        .map(|o| match elems(o)? {
            ("insert", [e]) => Some(Op::Insert(name_entry(e)?)),
            ("delete", [n]) => Some(Op::Delete(n.clone())),
            _ => None,
        })
        .collect()
}

fn lock_id(t: &Term) -> Option<(Term, Term)> {
    match t {
        Term::Tuple(el) if el.len() == 2 => Some((el[0].clone(), el[1].clone())),
        _ => None,
    }
}

/// A cast (`{'$gen_cast', Request}`'s request) or a plain message.
pub(crate) fn parse(t: &Term) -> Result<Incoming, Malformed> {
    let Some((tag, a)) = elems(t) else {
        return bad("not a tagged tuple", t);
    };
    let r = match (tag, a) {
        ("init_connect", [vsn, n, init]) => (|| {
            let Term::Tuple(v) = vsn else { return None };
            let (his_vsn, his_tag) = (v.first()?.as_i64()?, v.get(1)?.clone());
            let ("locker", [marker, _, locker]) = elems(init)? else {
                return None;
            };
            Some(Incoming::InitConnect {
                node: node(n)?,
                vsn: his_vsn,
                his_tag,
                locker: pid(locker)?,
                orbit: marker.as_atom() == Some(ORBIT_MARKER),
            })
        })(),
        ("init_connect_ack", [n, mine, his]) => node(n).map(|node| Incoming::InitConnectAck {
            node,
            my_tag: mine.clone(),
            his_tag: his.clone(),
        }),
        ("cancel_connect", [n, mine]) => node(n).map(|node| Incoming::CancelConnect {
            node,
            my_tag: mine.clone(),
        }),
        ("lock_set", [l, set, _known, rest @ ..]) if rest.len() <= 1 => {
            match (pid(l), set.as_atom()) {
                (Some(locker), Some(b @ ("true" | "false"))) => Some(Incoming::LockSet {
                    locker,
                    set: b == "true",
                    my_tag: rest.first().cloned(),
                }),
                _ => None,
            }
        }
        ("exchange", [n, names, _ext, mine]) => (|| {
            Some(Incoming::Exchange {
                node: node(n)?,
                names: name_list(names)?,
                my_tag: mine.clone(),
            })
        })(),
        ("resolved", [n, res, known, _unused, _ext, mine]) => (|| {
            Some(Incoming::Resolved {
                node: node(n)?,
                ops: ops(res)?,
                known: known_list(known)?,
                my_tag: mine.clone(),
            })
        })(),
        ("new_nodes", [n, o, _ext, nodes, _extra]) => (|| {
            Some(Incoming::NewNodes {
                node: node(n)?,
                ops: ops(o)?,
                nodes: known_list(nodes)?,
            })
        })(),
        ("in_sync", [n, _]) => node(n).map(|node| Incoming::InSync { node }),
        ("lost_connection", [a, _, _, b]) => match (node(a), node(b)) {
            (Some(a), Some(b)) => Some(Incoming::LostConnection { a, b }),
            _ => None,
        },
        ("remove_connection", [n]) => node(n).map(|node| Incoming::RemoveConnection { node }),
        ("whereis", [name, from]) => match from {
            Term::Tuple(f) if f.len() == 2 => pid(&f[0]).map(|p| Incoming::Whereis {
                name: name.clone(),
                pid: p,
                tag: f[1].clone(),
            }),
            _ => None,
        },
        ("async_del_name" | "async_del_lock", [_, _]) => Some(Incoming::Legacy),
        _ => return bad("not a message of the global protocol", t),
    };
    r.map_or_else(|| bad("wrong shape", t), Ok)
}

/// A `$gen_call` request.
pub(crate) fn parse_call(t: &Term) -> Result<Request, Malformed> {
    let r = match t.as_atom() {
        Some("get_known") => Some(Request::GetKnown),
        Some("get_synced") => Some(Request::GetSynced),
        Some("get_protocol_version") => Some(Request::GetProtocolVersion),
        Some("get_names_ext") => Some(Request::GetNamesExt),
        Some(_) => None,
        None => match elems(t) {
            Some(("register", [n, p, m])) => pid(p).map(|pid| {
                Request::Register(NameEntry {
                    name: n.clone(),
                    pid,
                    method: m.clone(),
                })
            }),
            Some(("register_ext", [n, p, m, _reg_node])) => pid(p).map(|pid| {
                Request::RegisterExt(NameEntry {
                    name: n.clone(),
                    pid,
                    method: m.clone(),
                })
            }),
            Some(("unregister", [n])) => Some(Request::Unregister(n.clone())),
            Some(("set_lock", [id])) => lock_id(id).map(|(r, q)| Request::SetLock(r, q)),
            Some(("del_lock", [id])) => lock_id(id).map(|(r, q)| Request::DelLock(r, q)),
            _ => None,
        },
    };
    r.map_or_else(|| bad("not a call global_name_server answers", t), Ok)
}

/// A pid as a term.
pub(crate) fn pid_t(p: Pid) -> Term {
    Term::Pid(Box::new(orbit_dist::to_wire(p)))
}

/// `{'$gen_cast', Request}`.
pub(crate) fn cast(request: Term) -> Term {
    Term::tuple(vec![Term::atom("$gen_cast"), request])
}

/// What Orbit puts where OTP puts `no_longer_a_pid` in `init_connect` (a field OTP
/// ignores): tells another Orbit node that this node's locker never starts a lock.
pub(crate) const ORBIT_MARKER: &str = "orbit_passive_locker";

/// `{init_connect, {8, MyTag}, Me, {locker, orbit_passive_locker, #{}, MyLocker}}` (a
/// cast).
pub(crate) fn init_connect(me: &str, my_tag: i64, locker: Pid) -> Term {
    cast(Term::tuple(vec![
        Term::atom("init_connect"),
        Term::tuple(vec![Term::Int(VSN), Term::Int(my_tag)]),
        Term::atom(me),
        Term::tuple(vec![
            Term::atom("locker"),
            Term::atom(ORBIT_MARKER),
            Term::map(Vec::new()),
            pid_t(locker),
        ]),
    ]))
}

/// A list of `{Node, 8}`: how v8 peers read known lists.
pub(crate) fn known(nodes: &[String]) -> Term {
    Term::List(
        nodes
            .iter()
            .map(|n| Term::tuple(vec![Term::atom(n), Term::Int(VSN)]))
            .collect(),
    )
}

/// `{Name, Pid, Method}`.
pub(crate) fn entry(e: &NameEntry) -> Term {
    Term::tuple(vec![e.name.clone(), pid_t(e.pid), e.method.clone()])
}

/// The ops as terms.
pub(crate) fn ops_t(ops: &[Op]) -> Term {
    Term::List(
        ops.iter()
            .map(|o| match o {
                Op::Insert(e) => Term::tuple(vec![Term::atom("insert"), entry(e)]),
                Op::Delete(n) => Term::tuple(vec![Term::atom("delete"), n.clone()]),
            })
            .collect(),
    )
}

/// `fun global:random_exit_name/3`: the resolve method of names registered from Orbit.
pub(crate) fn default_method() -> Term {
    Term::Export(Box::new(orbit_term::Export {
        module: orbit_term::atom!("global"),
        function: orbit_term::atom!("random_exit_name"),
        arity: 3,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_terms_are_errors() {
        for t in [
            Term::Int(1),
            Term::atom("hello"),
            Term::tuple(vec![Term::atom("exchange")]),
            Term::tuple(vec![
                Term::atom("exchange"),
                Term::atom("n@h"),
                Term::Int(1),
                Term::nil(),
                Term::Int(2),
            ]),
            Term::tuple(vec![
                Term::atom("init_connect"),
                Term::Int(8),
                Term::atom("n@h"),
                Term::nil(),
            ]),
            Term::tuple(vec![
                Term::atom("in_sync"),
                Term::atom("no_at_sign"),
                Term::nil(),
            ]),
            Term::tuple(vec![
                Term::atom("lock_set"),
                Term::Int(1),
                Term::bool(true),
                Term::nil(),
            ]),
        ] {
            assert!(parse(&t).is_err(), "{t}");
        }
        assert!(parse_call(&Term::atom("sync")).is_err());
        assert!(parse_call(&Term::tuple(vec![Term::atom("set_lock"), Term::Int(1)])).is_err());
        assert!(matches!(
            parse_call(&Term::tuple(vec![
                Term::atom("set_lock"),
                Term::tuple(vec![Term::atom("r"), Term::atom("q")])
            ])),
            Ok(Request::SetLock(..))
        ));
        assert!(matches!(
            parse(&Term::tuple(vec![
                Term::atom("in_sync"),
                Term::atom("a@b"),
                Term::bool(true)
            ])),
            Ok(Incoming::InSync { .. })
        ));
    }
}
