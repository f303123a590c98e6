//! The group table a scope shares with readers (OTP keeps it in an ETS table named after
//! the scope): per group, all members (newest first) and the local ones. Only the scope
//! process writes it; `get_members` and friends read it under a read lock, with no message
//! round trip. The list operations mirror `pg.erl`'s (`Pids ++ All`, `All -- Pids`).

use std::collections::{HashMap, VecDeque};

use orbit::Pid;
use orbit_term::Term;

/// Members, newest first; duplicates kept. A deque, so that a join (`Pids ++ All`)
/// costs the joining pids, not the whole group: a peer joining one pid at a time
/// must not make a group's growth quadratic.
pub(crate) type PidList = VecDeque<Pid>;

/// One group's members.
#[derive(Debug, Default, Clone)]
pub(crate) struct Entry {
    /// Every member, newest first; duplicates kept.
    pub all: PidList,
    /// The members on this node, newest first.
    pub local: PidList,
}

/// Group name to members; a group with no member is removed.
pub(crate) type Groups = HashMap<Term, Entry>;

/// Erlang's `List -- Remove`: removes the first occurrence of each element of `remove`.
pub(crate) fn subtract(list: &mut PidList, remove: &[Pid]) {
    if remove.is_empty() || list.is_empty() {
        return;
    }
    let mut counts: HashMap<Pid, usize> = HashMap::with_capacity(remove.len());
    for p in remove {
        *counts.entry(*p).or_default() += 1;
    }
    list.retain(|p| match counts.get_mut(p) {
        Some(n) if *n > 0 => {
            *n -= 1;
            false
        }
        _ => true,
    });
}

/// `Pids ++ List`, in time proportional to `pids`.
pub(crate) fn prepend(list: &mut PidList, pids: &[Pid]) {
    list.reserve(pids.len());
    for p in pids.iter().rev() {
        list.push_front(*p);
    }
}

/// A local join: the pids go first in both lists.
pub(crate) fn join_local(groups: &mut Groups, group: &Term, pids: &[Pid]) {
    let e = groups.entry(group.clone()).or_default();
    prepend(&mut e.all, pids);
    prepend(&mut e.local, pids);
}

/// A local leave (one occurrence of each pid).
pub(crate) fn leave_local(groups: &mut Groups, group: &Term, pids: &[Pid]) {
    if let Some(e) = groups.get_mut(group) {
        subtract(&mut e.all, pids);
        subtract(&mut e.local, pids);
        if e.all.is_empty() {
            groups.remove(group);
        }
    }
}

/// A remote join: the pids go first in `all`.
pub(crate) fn join_remote(groups: &mut Groups, group: &Term, pids: &[Pid]) {
    prepend(&mut groups.entry(group.clone()).or_default().all, pids);
}

/// A remote leave.
pub(crate) fn leave_remote(groups: &mut Groups, group: &Term, pids: &[Pid]) {
    if let Some(e) = groups.get_mut(group) {
        subtract(&mut e.all, pids);
        if e.all.is_empty() && e.local.is_empty() {
            groups.remove(group);
        }
    }
}

/// A peer's `sync` for one group: its old pids out, the new ones first.
pub(crate) fn replace_remote(groups: &mut Groups, group: &Term, old: &[Pid], new: &[Pid]) {
    leave_remote(groups, group, old);
    if !new.is_empty() {
        join_remote(groups, group, new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u32) -> Pid {
        Pid::remote("t@127.0.0.1", n, 0, 1)
    }

    #[test]
    fn subtract_removes_first_occurrences_like_erlang() {
        let mut l = PidList::from(vec![p(1), p(2), p(1), p(3)]);
        subtract(&mut l, &[p(1), p(4)]);
        assert_eq!(l, vec![p(2), p(1), p(3)]);
        subtract(&mut l, &[p(1), p(1)]);
        assert_eq!(l, vec![p(2), p(3)]);
    }

    #[test]
    fn prepend_keeps_erlang_order_and_costs_the_joining_pids() {
        let mut l = PidList::from(vec![p(9)]);
        prepend(&mut l, &[p(1), p(2)]);
        prepend(&mut l, &[p(3)]);
        assert_eq!(l, vec![p(3), p(1), p(2), p(9)]);
        // 200k single-pid joins: linear (a copy of the list per join would be 2e10 moves).
        let mut big = PidList::new();
        let t0 = std::time::Instant::now();
        for i in 0..200_000 {
            prepend(&mut big, &[p(i)]);
        }
        assert_eq!(big.len(), 200_000);
        assert_eq!(big[0], p(199_999));
        assert!(t0.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn joins_are_newest_first_and_empty_groups_vanish() {
        let mut g = Groups::new();
        let k = Term::atom("g");
        join_local(&mut g, &k, &[p(1)]);
        join_remote(&mut g, &k, &[p(2), p(3)]);
        join_local(&mut g, &k, &[p(1)]);
        assert_eq!(g[&k].all, vec![p(1), p(2), p(3), p(1)]);
        assert_eq!(g[&k].local, vec![p(1), p(1)]);
        replace_remote(&mut g, &k, &[p(2), p(3)], &[p(5)]);
        assert_eq!(g[&k].all, vec![p(5), p(1), p(1)]);
        leave_local(&mut g, &k, &[p(1), p(1)]);
        leave_remote(&mut g, &k, &[p(5)]);
        assert!(g.is_empty());
    }
}
