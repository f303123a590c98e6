//! Mapping between Orbit's runtime values and their wire forms: pids, references and
//! exit reasons.
//!
//! - A local [`Pid`] goes out as this node's name, its id and serial, and this node's
//!   creation; a wire pid becomes [`Pid::remote`] (a pid of this node becomes local).
//! - A local [`Ref`] (a 64-bit counter) goes out as a reference of this node with three
//!   words (18 + 32 + 14 bits, the BEAM's split); such a reference coming back maps to
//!   the same `Ref`. References of other nodes stay [`orbit_term::Reference`] values.
//! - Exit reasons are terms ([`ExitReason::to_term`] / [`ExitReason::from_term`]): the
//!   well-known atoms and `{shutdown, T}` map to their variants, a panic goes out as
//!   `{panic, <<"message">>}`, any other term is carried exactly as
//!   [`ExitReason::Term`].

use std::sync::Arc;

use orbit::{ExitReason, Pid, Ref};
use orbit_term::{Atom, Reference, Term};

/// This node's identity as stamped on pids and references.
#[derive(Debug, Clone)]
pub struct LocalId {
    /// Full node name.
    pub name: Arc<str>,
    /// Creation from epmd.
    pub creation: u32,
}

/// A wire pid as an Orbit pid.
pub fn pid_from_wire(p: &orbit_term::Pid) -> Pid {
    Pid::remote(p.node.as_str(), p.id, p.serial, p.creation)
}

/// An Orbit pid as a wire pid.
pub fn pid_to_wire(p: Pid, local: &LocalId) -> orbit_term::Pid {
    let (node, creation) = if p.is_local() {
        (local.name.clone(), local.creation)
    } else {
        (p.node(), p.creation())
    };
    // Node names were validated as atoms when the node started or the peer connected.
    let node = Atom::try_new(&node).unwrap_or_else(|_| Atom::nil());
    orbit_term::Pid::new(node, p.id(), p.serial(), creation)
}

/// An Orbit pid as a term.
pub fn pid_term(p: Pid, local: &LocalId) -> Term {
    Term::Pid(Box::new(pid_to_wire(p, local)))
}

/// A local reference as a wire reference of this node.
pub fn ref_to_wire(r: Ref, local: &LocalId) -> Reference {
    let id = r.id();
    let words = [(id & 0x3FFFF) as u32, (id >> 18) as u32, (id >> 50) as u32];
    let node = Atom::try_new(&local.name).unwrap_or_else(|_| Atom::nil());
    // Three words is within 1..=5.
    Reference::new(node, local.creation, &words).expect("three reference words")
}

/// The local reference a wire reference of this node stands for, if it is one of ours.
pub fn ref_from_wire(r: &Reference, local: &LocalId) -> Option<u64> {
    if r.node.as_str() != &*local.name {
        return None;
    }
    let w = r.ids();
    if w.len() != 3 || w[0] > 0x3FFFF {
        return None;
    }
    Some(w[0] as u64 | (w[1] as u64) << 18 | (w[2] as u64) << 50)
}

/// An exit reason as the term Erlang uses ([`ExitReason::to_term`]).
pub fn reason_to_term(r: &ExitReason) -> Term {
    r.to_term()
}

/// A reason term as an Orbit exit reason, exactly ([`ExitReason::from_term`]).
pub fn reason_from_term(t: Term) -> ExitReason {
    ExitReason::from_term(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_round_trip_and_reasons_map() {
        let local = LocalId {
            name: Arc::from("a@h"),
            creation: 7,
        };
        let r = Ref::make();
        let w = ref_to_wire(r, &local);
        assert_eq!(ref_from_wire(&w, &local), Some(r.id()));
        for reason in [
            ExitReason::Normal,
            ExitReason::Killed,
            ExitReason::NoConnection,
            ExitReason::shutdown_with("x"),
            ExitReason::error("boom"),
            ExitReason::Panic(Arc::from("oops")),
            ExitReason::from_term(Term::tuple(vec![Term::atom("error"), Term::Int(1)])),
        ] {
            assert_eq!(reason_from_term(reason_to_term(&reason)), reason);
        }
    }
}
