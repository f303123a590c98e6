//! The tables of a `global_name_server`: global locks and registered names (OTP's
//! `global_locks`, `global_names` and their pid/monitor helper tables), as plain data.
//!
//! Locks follow OTP's semantics (`global.erl` `handle_set_lock`, `can_set_lock`,
//! `remove_lock`): a resource is held by one `LockRequesterId` at a time, by one or
//! more pids (each counted once); another requester is refused; a pid's lock goes when
//! it deletes it, or when it dies (its monitor fires). Names map to one pid each; a
//! name's monitor firing removes it only if it is still that registration's monitor.

use std::collections::HashMap;

use orbit::{Pid, Ref};
use orbit_term::Term;

use super::wire::NameEntry;

/// One lock: its requester id and the pids holding it (with their monitors).
#[derive(Debug, Clone)]
struct Lock {
    requester: Term,
    holders: Vec<(Pid, Option<Ref>)>,
}

/// The lock table.
#[derive(Debug, Default)]
pub(crate) struct Locks {
    by_resource: HashMap<Term, Lock>,
}

/// The outcome of a `set_lock` on this table.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SetLock {
    /// Refused: another requester holds the resource.
    Refused,
    /// Granted; the pid already held it (no new monitor needed).
    Held,
    /// Granted to a new holder: monitor it and call [`Locks::insert`].
    New,
}

impl Locks {
    /// Whether `pid` may take `(resource, requester)`, without changing anything.
    pub(crate) fn check(&self, resource: &Term, requester: &Term, pid: Pid) -> SetLock {
        match self.by_resource.get(resource) {
            None => SetLock::New,
            Some(l) if !l.requester.exact_eq(requester) => SetLock::Refused,
            Some(l) if l.holders.iter().any(|(p, _)| *p == pid) => SetLock::Held,
            Some(_) => SetLock::New,
        }
    }

    /// Adds `pid` (monitored by `monitor`) as a holder; only after `check` said `New`.
    pub(crate) fn insert(
        &mut self,
        resource: Term,
        requester: Term,
        pid: Pid,
        monitor: Option<Ref>,
    ) {
        self.by_resource
            .entry(resource)
            .or_insert_with(|| Lock {
                requester,
                holders: Vec::new(),
            })
            .holders
            .insert(0, (pid, monitor));
    }

    /// `del_lock`: `pid` releases `(resource, requester)`; the monitor to drop, if the
    /// pid held it. A different requester's lock is left alone (as OTP).
    pub(crate) fn delete(
        &mut self,
        resource: &Term,
        requester: &Term,
        pid: Pid,
    ) -> Option<Option<Ref>> {
        let l = self.by_resource.get_mut(resource)?;
        if !l.requester.exact_eq(requester) {
            return None;
        }
        let i = l.holders.iter().position(|(p, _)| *p == pid)?;
        let (_, r) = l.holders.remove(i);
        if l.holders.is_empty() {
            self.by_resource.remove(resource);
        }
        Some(r)
    }

    /// A holder's monitor fired: drops every lock it held through that monitor.
    /// Returns how many it released.
    pub(crate) fn down(&mut self, r: Ref) -> usize {
        let mut n = 0;
        self.by_resource.retain(|_, l| {
            let before = l.holders.len();
            l.holders.retain(|(_, m)| *m != Some(r));
            n += before - l.holders.len();
            !l.holders.is_empty()
        });
        n
    }

    /// True when someone holds `resource`.
    #[cfg(test)]
    pub(crate) fn is_set(&self, resource: &Term) -> bool {
        self.by_resource.contains_key(resource)
    }

    /// `(resource, requester, holders)` of every lock.
    pub(crate) fn list(&self) -> Vec<(Term, Term, Vec<Pid>)> {
        self.by_resource
            .iter()
            .map(|(r, l)| {
                (
                    r.clone(),
                    l.requester.clone(),
                    l.holders.iter().map(|(p, _)| *p).collect(),
                )
            })
            .collect()
    }
}

/// One registered name.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    pub pid: Pid,
    pub method: Term,
    pub monitor: Option<Ref>,
}

/// The name table: `Name -> (Pid, Method, Monitor)`.
#[derive(Debug, Default)]
pub(crate) struct Names {
    by_name: HashMap<Term, Registered>,
}

impl Names {
    /// The pid registered as `name`.
    pub(crate) fn whereis(&self, name: &Term) -> Option<Pid> {
        self.by_name.get(name).map(|r| r.pid)
    }

    /// Registers `e` (monitored by `monitor`), replacing any registration of its name;
    /// returns the replaced registration (its monitor is to be dropped).
    pub(crate) fn insert(&mut self, e: NameEntry, monitor: Option<Ref>) -> Option<Registered> {
        self.by_name.insert(
            e.name,
            Registered {
                pid: e.pid,
                method: e.method,
                monitor,
            },
        )
    }

    /// Removes `name`; returns its registration.
    pub(crate) fn remove(&mut self, name: &Term) -> Option<Registered> {
        self.by_name.remove(name)
    }

    /// A monitor fired: removes the names registered under that monitor.
    pub(crate) fn down(&mut self, r: Ref) -> Vec<Term> {
        let gone: Vec<Term> = self
            .by_name
            .iter()
            .filter(|(_, e)| e.monitor == Some(r))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone {
            self.by_name.remove(n);
        }
        gone
    }

    /// The names `pid` is registered under.
    pub(crate) fn names_of(&self, pid: Pid) -> Vec<Term> {
        self.by_name
            .iter()
            .filter(|(_, e)| e.pid == pid)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The registration of `name`.
    pub(crate) fn get(&self, name: &Term) -> Option<&Registered> {
        self.by_name.get(name)
    }

    /// Every name with its pid and method (for `exchange`).
    pub(crate) fn entries(&self) -> Vec<NameEntry> {
        self.by_name
            .iter()
            .map(|(n, e)| NameEntry {
                name: n.clone(),
                pid: e.pid,
                method: e.method.clone(),
            })
            .collect()
    }

    /// Every registered name.
    pub(crate) fn names(&self) -> Vec<Term> {
        self.by_name.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Term {
        Term::atom(s)
    }

    #[test]
    fn locks_follow_otp_semantics() {
        let mut l = Locks::default();
        let (p1, p2) = (Pid::remote("a@h", 1, 0, 1), Pid::remote("a@h", 2, 0, 1));
        assert_eq!(l.check(&a("r"), &a("q1"), p1), SetLock::New);
        l.insert(a("r"), a("q1"), p1, None);
        // The same requester again, by the same pid: held; by another pid: a new holder.
        assert_eq!(l.check(&a("r"), &a("q1"), p1), SetLock::Held);
        assert_eq!(l.check(&a("r"), &a("q1"), p2), SetLock::New);
        l.insert(a("r"), a("q1"), p2, None);
        // Another requester: refused.
        assert_eq!(l.check(&a("r"), &a("q2"), p1), SetLock::Refused);
        // Deleting with the wrong requester does nothing.
        assert!(l.delete(&a("r"), &a("q2"), p1).is_none());
        assert!(l.delete(&a("r"), &a("q1"), p1).is_some());
        assert!(l.is_set(&a("r")));
        assert!(l.delete(&a("r"), &a("q1"), p2).is_some());
        assert!(!l.is_set(&a("r")));
        assert_eq!(l.check(&a("r"), &a("q2"), p1), SetLock::New);
    }
}
