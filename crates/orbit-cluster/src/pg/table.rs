//! The group table a scope shares with readers (OTP keeps it in an ETS table named after
//! the scope): per group, all members (newest first) and the local ones. Only the scope
//! process writes it; `get_members` and friends read it under a read lock, with no message
//! round trip. The list operations mirror `pg.erl`'s (`Pids ++ All`, `All -- Pids`).

use std::collections::HashMap;

use orbit::Pid;
use orbit_term::Term;

/// One group's members.
#[derive(Debug, Default, Clone)]
pub(crate) struct Entry {
    /// Every member, newest first; duplicates kept.
    pub all: Vec<Pid>,
    /// The members on this node, newest first.
    pub local: Vec<Pid>,
}

/// Group name to members; a group with no member is removed.
pub(crate) type Groups = HashMap<Term, Entry>;

/// Erlang's `List -- Remove`: removes the first occurrence of each element of `remove`.
pub(crate) fn subtract(list: &mut Vec<Pid>, remove: &[Pid]) {
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

/// `Pids ++ List`.
pub(crate) fn prepend(list: &mut Vec<Pid>, pids: &[Pid]) {
    let mut v = Vec::with_capacity(pids.len() + list.len());
    v.extend_from_slice(pids);
    v.append(list);
    *list = v;
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
        let mut l = vec![p(1), p(2), p(1), p(3)];
        subtract(&mut l, &[p(1), p(4)]);
        assert_eq!(l, vec![p(2), p(1), p(3)]);
        subtract(&mut l, &[p(1), p(1)]);
        assert_eq!(l, vec![p(2), p(3)]);
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
