//! The terms scope processes exchange (`pg.erl`, OTP 25-28): parsing what peers send,
//! strictly, and building what Orbit sends. Anything that does not parse is reported
//! as a [`Malformed`] and ignored by the scope (OTP's scope would crash on it).

use orbit::Pid;
use orbit_term::Term;

/// A message from a peer scope, parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PeerMsg {
    /// `{discover, Peer}` or OTP 26+'s `{discover, Peer, ProtocolVersion}`.
    Discover(Pid),
    /// `{'$gen_cast', {sync, Peer, [{Group, [Pid]}]}}`.
    Sync(Pid, Vec<(Term, Vec<Pid>)>),
    /// `{join, Peer, Group, Pid | [Pid]}`.
    Join(Pid, Term, Vec<Pid>),
    /// `{leave, Peer, Pid | [Pid], [Group]}`.
    Leave(Pid, Vec<Pid>, Vec<Term>),
}

/// Why a term from a peer was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ignored a malformed pg scope message: {0}")]
pub(crate) struct Malformed(pub String);

fn pid_of(t: &Term, what: &str) -> Result<Pid, Malformed> {
    match t {
        Term::Pid(p) => Ok(orbit_dist::from_wire(p)),
        other => Err(Malformed(format!("{what} is not a pid: {}", short(other)))),
    }
}

/// A pid or a proper list of pids (every element a pid).
fn pids_of(t: &Term, what: &str) -> Result<Vec<Pid>, Malformed> {
    match t {
        Term::Pid(p) => Ok(vec![orbit_dist::from_wire(p)]),
        Term::List(l) => l.iter().map(|e| pid_of(e, what)).collect(),
        other => Err(Malformed(format!(
            "{what} is neither a pid nor a list of pids: {}",
            short(other)
        ))),
    }
}

/// At most 120 characters of a term, for log lines about hostile input.
pub(crate) fn short(t: &Term) -> String {
    let s = t.to_string();
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// Parses a message a peer scope sent.
pub(crate) fn parse(t: &Term) -> Result<PeerMsg, Malformed> {
    let Term::Tuple(e) = t else {
        return Err(Malformed(format!("not a tuple: {}", short(t))));
    };
    match (e.first().and_then(Term::as_atom), e.len()) {
        (Some("discover"), 2 | 3) => Ok(PeerMsg::Discover(pid_of(&e[1], "the peer scope")?)),
        (Some("$gen_cast"), 2) => match &e[1] {
            Term::Tuple(s) if s.len() == 3 && s[0].as_atom() == Some("sync") => {
                let peer = pid_of(&s[1], "the peer scope")?;
                let Term::List(gs) = &s[2] else {
                    return Err(Malformed(format!("sync groups not a list: {}", short(t))));
                };
                let mut groups = Vec::with_capacity(gs.len());
                for g in gs {
                    match g {
                        Term::Tuple(gp) if gp.len() == 2 => {
                            let Term::List(_) = &gp[1] else {
                                return Err(Malformed(format!(
                                    "sync members not a list: {}",
                                    short(g)
                                )));
                            };
                            groups.push((gp[0].clone(), pids_of(&gp[1], "a sync member")?));
                        }
                        other => {
                            return Err(Malformed(format!(
                                "sync entry is not {{Group, [Pid]}}: {}",
                                short(other)
                            )))
                        }
                    }
                }
                Ok(PeerMsg::Sync(peer, groups))
            }
            other => Err(Malformed(format!("unknown cast: {}", short(other)))),
        },
        (Some("join"), 4) => Ok(PeerMsg::Join(
            pid_of(&e[1], "the peer scope")?,
            e[2].clone(),
            pids_of(&e[3], "a joined member")?,
        )),
        (Some("leave"), 4) => {
            let peer = pid_of(&e[1], "the peer scope")?;
            let pids = pids_of(&e[2], "a leaving member")?;
            let Term::List(gs) = &e[3] else {
                return Err(Malformed(format!("leave groups not a list: {}", short(t))));
            };
            Ok(PeerMsg::Leave(peer, pids, gs.clone()))
        }
        _ => Err(Malformed(format!("unknown message: {}", short(t)))),
    }
}

fn wire_pid(p: Pid) -> Term {
    Term::Pid(Box::new(orbit_dist::to_wire(p)))
}

fn wire_pids(single: bool, pids: &[Pid]) -> Term {
    match (single, pids) {
        (true, [p]) => wire_pid(*p),
        _ => Term::List(pids.iter().map(|p| wire_pid(*p)).collect()),
    }
}

/// `{discover, Me}` (the 2-tuple only: OTP 25 crashes on the 3-tuple).
pub(crate) fn discover(me: Pid) -> Term {
    Term::tuple(vec![Term::atom("discover"), wire_pid(me)])
}

/// `{'$gen_cast', {sync, Me, [{Group, [Pid]}]}}`.
pub(crate) fn sync(me: Pid, groups: &[(Term, Vec<Pid>)]) -> Term {
    let gs = groups
        .iter()
        .map(|(g, ps)| Term::tuple(vec![g.clone(), wire_pids(false, ps)]))
        .collect();
    Term::tuple(vec![
        Term::atom("$gen_cast"),
        Term::tuple(vec![Term::atom("sync"), wire_pid(me), Term::List(gs)]),
    ])
}

/// `{join, Me, Group, Pid | [Pid]}`.
pub(crate) fn join(me: Pid, group: &Term, single: bool, pids: &[Pid]) -> Term {
    Term::tuple(vec![
        Term::atom("join"),
        wire_pid(me),
        group.clone(),
        wire_pids(single, pids),
    ])
}

/// `{leave, Me, Pid | [Pid], [Group]}`.
pub(crate) fn leave(me: Pid, single: bool, pids: &[Pid], groups: &[Term]) -> Term {
    Term::tuple(vec![
        Term::atom("leave"),
        wire_pid(me),
        wire_pids(single, pids),
        Term::List(groups.to_vec()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_orbit_sends_parses_back() {
        let me = Pid::remote("a@127.0.0.1", 7, 0, 1);
        let m = Pid::remote("a@127.0.0.1", 8, 0, 1);
        let g = Term::tuple(vec![Term::atom("complex"), Term::Binary(b"key".to_vec())]);
        assert_eq!(parse(&discover(me)), Ok(PeerMsg::Discover(me)));
        // OTP 26+'s {discover, Peer, ProtocolVersion} is accepted too.
        let v3 = Term::tuple(vec![Term::atom("discover"), wire_pid(me), Term::Int(1)]);
        assert_eq!(parse(&v3), Ok(PeerMsg::Discover(me)));
        assert_eq!(
            parse(&sync(me, &[(g.clone(), vec![m, m])])),
            Ok(PeerMsg::Sync(me, vec![(g.clone(), vec![m, m])]))
        );
        assert_eq!(
            parse(&join(me, &g, true, &[m])),
            Ok(PeerMsg::Join(me, g.clone(), vec![m]))
        );
        assert_eq!(
            parse(&leave(me, false, &[m], std::slice::from_ref(&g))),
            Ok(PeerMsg::Leave(me, vec![m], vec![g]))
        );
    }

    #[test]
    fn hostile_shapes_are_malformed() {
        let me = wire_pid(Pid::remote("a@127.0.0.1", 7, 0, 1));
        let bad = [
            Term::atom("hello"),
            Term::tuple(vec![Term::atom("discover")]),
            Term::tuple(vec![Term::atom("discover"), Term::Int(1)]),
            Term::tuple(vec![Term::atom("join"), me.clone(), Term::atom("g")]),
            Term::tuple(vec![
                Term::atom("join"),
                me.clone(),
                Term::atom("g"),
                Term::List(vec![me.clone(), Term::Int(3)]),
            ]),
            Term::tuple(vec![
                Term::atom("leave"),
                me.clone(),
                me.clone(),
                Term::atom("g"),
            ]),
            Term::tuple(vec![
                Term::atom("$gen_cast"),
                Term::tuple(vec![Term::atom("sync"), me.clone(), Term::atom("x")]),
            ]),
            Term::tuple(vec![
                Term::atom("$gen_cast"),
                Term::tuple(vec![
                    Term::atom("sync"),
                    me.clone(),
                    Term::List(vec![Term::tuple(vec![Term::atom("g"), me.clone()])]),
                ]),
            ]),
        ];
        for t in bad {
            assert!(parse(&t).is_err(), "{t}");
        }
    }
}
