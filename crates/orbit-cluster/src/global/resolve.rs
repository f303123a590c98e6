//! Name conflict resolution: OTP's resolve methods, run on the node of the pid that
//! holds the name (`global:resolve_it/4`, which a resolving BEAM node calls on this
//! node by `rpc`, and this node's own resolution in `exchange`).
//!
//! The method is the `Method` registered with the name. Orbit runs OTP's three:
//! `fun global:random_exit_name/3` (the default: the pid on the node whose name sorts
//! first keeps the name, the other is killed with `exit(Pid, kill)`),
//! `random_notify_name/3` (the other gets `{global_name_conflict, Name}`) and
//! `notify_all_name/3` (both get `{global_name_conflict, Name, OtherPid}`, the name is
//! dropped). Any other method (a BEAM fun) cannot run here: the result is what OTP's
//! `catch` gives a failing method, `{'EXIT', {badfun, Method}}`, and the resolving node
//! drops the name.

use orbit::{ExitReason, Pid};
use orbit_term::Term;

use super::wire;

/// What a resolution decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// This pid keeps the name everywhere.
    Keep(Pid),
    /// The name is unregistered everywhere (`none` or a failed method).
    Drop,
}

/// The method's `global` function name, if it is `fun global:F/3`.
fn global_fun(method: &Term) -> Option<&str> {
    match method {
        Term::Export(e) if e.module.as_str() == "global" && e.arity == 3 => {
            Some(e.function.as_str())
        }
        _ => None,
    }
}

fn min_max(a: Pid, b: Pid) -> (Pid, Pid) {
    if a.node() < b.node() {
        (a, b)
    } else {
        (b, a)
    }
}

fn tell(to: Pid, msg: Term) {
    if let Err(e) = orbit_dist::send(to, &msg) {
        tracing::debug!(%to, error = %e, "global: conflict notice not sent");
    }
}

/// Runs `method` for `name` held by both `a` and `b` (OTP's `Method(Name, Pid1, Pid2)`).
pub(crate) fn run(method: &Term, name: &Term, a: Pid, b: Pid) -> Outcome {
    let (min, max) = min_max(a, b);
    match global_fun(method) {
        Some("random_exit_name") => {
            tracing::info!(name = %wire::short(name), loser = %max, "global: name conflict, terminating the other process");
            orbit::exit(max, ExitReason::Kill);
            Outcome::Keep(min)
        }
        Some("random_notify_name") => {
            tell(
                max,
                Term::tuple(vec![Term::atom("global_name_conflict"), name.clone()]),
            );
            Outcome::Keep(min)
        }
        Some("notify_all_name") => {
            let notice = |other: Pid| {
                Term::tuple(vec![
                    Term::atom("global_name_conflict"),
                    name.clone(),
                    wire::pid_t(other),
                ])
            };
            tell(a, notice(b));
            tell(b, notice(a));
            Outcome::Drop
        }
        _ => {
            tracing::info!(name = %wire::short(name), method = %wire::short(method), "global: a resolve method Orbit cannot run, the name is dropped");
            Outcome::Drop
        }
    }
}

/// `global:resolve_it(Method, Name, Pid1, Pid2)` as an erpc function: the pid that
/// keeps the name, `none`, or `{'EXIT', {badfun, Method}}` for a method Orbit cannot run.
pub(crate) fn resolve_it(args: Vec<Term>) -> Term {
    let [method, name, p1, p2] = <[Term; 4]>::try_from(args)
        .unwrap_or_else(|_| [Term::nil(), Term::nil(), Term::nil(), Term::nil()]);
    let (Term::Pid(a), Term::Pid(b)) = (&p1, &p2) else {
        return Term::tuple(vec![
            Term::atom("EXIT"),
            Term::tuple(vec![Term::atom("badarg"), Term::nil()]),
        ]);
    };
    let (a, b) = (orbit_dist::from_wire(a), orbit_dist::from_wire(b));
    if global_fun(&method).is_none() {
        return Term::tuple(vec![
            Term::atom("EXIT"),
            Term::tuple(vec![Term::atom("badfun"), method]),
        ]);
    }
    match run(&method, &name, a, b) {
        Outcome::Keep(p) => wire::pid_t(p),
        Outcome::Drop => Term::atom("none"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_it_refuses_what_it_cannot_run() {
        let r = resolve_it(vec![Term::atom("x")]);
        assert_eq!(r.to_string(), "{'EXIT', {badarg, []}}");
        let p = wire::pid_t(Pid::remote("a@h", 1, 0, 1));
        let r = resolve_it(vec![Term::atom("not_a_fun"), Term::atom("n"), p.clone(), p]);
        assert_eq!(r.to_string(), "{'EXIT', {badfun, not_a_fun}}");
        assert_eq!(
            global_fun(&wire::default_method()),
            Some("random_exit_name")
        );
    }
}
