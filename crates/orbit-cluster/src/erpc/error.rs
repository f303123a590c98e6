//! [`ErpcError`]: how an erpc call fails, both ways, and the exact OTP terms for it.
//!
//! OTP's `erpc:call` raises one of (`erpc.erl`, `result/4`):
//!
//! | outcome on the callee | the call raises | variant |
//! |---|---|---|
//! | `error(E)` with stack `S` | `error({exception, E, S})` | [`ErpcError::Error`] |
//! | `throw(T)` | `throw(T)` | [`ErpcError::Throw`] |
//! | `exit(X)` | `exit({exception, X})` | [`ErpcError::Exit`] |
//! | killed by an exit signal `R` | `exit({signal, R})` | [`ErpcError::Signal`] |
//! | no answer in time | `error({erpc, timeout})` | [`ErpcError::Timeout`] |
//! | connection lost | `error({erpc, noconnection})` | [`ErpcError::NoConnection`] |
//! | node cannot spawn | `error({erpc, notsup})` | [`ErpcError::NotSup`] |
//! | other `{erpc, R}` | `error({erpc, R})` | [`ErpcError::Erpc`] |
//!
//! [`ErpcError::exception`] gives the `{Class, Reason}` pair, which is exactly what
//! `erpc:multicall` returns for a failed node. A function registered with
//! [`crate::erpc::register`] fails with the same type: [`ErpcError::Error`] (see
//! [`ErpcError::error`], [`ErpcError::raise`]), [`ErpcError::Throw`] and
//! [`ErpcError::Exit`] become the callee-side `error`/`throw`/`exit` of that table; any
//! other variant (a nested call's failure passed on with `?`) is raised as the exception
//! the BEAM would have raised for it.

use orbit_term::Term;

/// How an erpc call failed (see the module docs for the OTP shape of each variant).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ErpcError {
    /// The function raised an error (`error({exception, Reason, Stack})`).
    #[error("the remote function raised error {reason} (stack {stack})")]
    Error {
        /// The error reason (an Elixir exception is its struct, a map).
        reason: Term,
        /// The stack as OTP gives it (`[{M, F, ArityOrArgs, Location}]`), `[]` when a
        /// Rust function gave none.
        stack: Term,
    },
    /// The function threw `T` (`throw(T)`).
    #[error("the remote function threw {0}")]
    Throw(Term),
    /// The function exited with `X` (`exit({exception, X})`).
    #[error("the remote function exited with {0}")]
    Exit(Term),
    /// The process running the function was killed by an exit signal with this reason
    /// (`exit({signal, R})`).
    #[error("the remote process was killed by an exit signal {0}")]
    Signal(Term),
    /// No answer within the timeout (`{erpc, timeout}`); the function may or may not
    /// have run. Give a longer timeout if the function is slow.
    #[error(
        "no answer from {node} within the timeout; the function may or may not have run \
         (give a longer timeout for slow functions)"
    )]
    Timeout {
        /// The node called.
        node: String,
    },
    /// The connection to the node was lost or could not be set up (`{erpc,
    /// noconnection}`); the function may or may not have run.
    #[error(
        "no connection to {node} (lost or never set up); the function may or may not have \
         run: check that the node runs and shares the cookie"
    )]
    NoConnection {
        /// The node called.
        node: String,
    },
    /// The node does not support the operation (`{erpc, notsup}`): it does not advertise
    /// `DFLAG_SPAWN`, or it refused to spawn (an Orbit node that does not run erpc, or a
    /// fun it cannot run).
    #[error(
        "{node} does not support this erpc operation (notsup): call an OTP 23+ node or an \
         Orbit node that runs orbit_cluster::start"
    )]
    NotSup {
        /// The node called.
        node: String,
    },
    /// Another `{erpc, Reason}` (`badarg`, `system_limit`, ...).
    #[error("erpc failed with {0}")]
    Erpc(Term),
    /// An argument is not valid (a module or function name that is not an atom, an
    /// arity over 255): `{erpc, badarg}`, raised before anything is sent.
    #[error("bad erpc argument: {0}")]
    BadArg(String),
    /// An argument or result did not encode as a term (Orbit side, before sending).
    #[error("cannot encode {type_name} as an Erlang term: {reason}")]
    Encode {
        /// The Rust type.
        type_name: &'static str,
        /// Why.
        reason: String,
    },
    /// The result did not decode into the Rust type asked for (the call itself worked:
    /// ask for `Term` to see what came back).
    #[error("the result {value} does not decode as {type_name}: {reason}")]
    Decode {
        /// The Rust type.
        type_name: &'static str,
        /// The result as it came.
        value: Term,
        /// Why.
        reason: String,
    },
}

impl ErpcError {
    /// An error exception with `reason` and no stack (`erlang:error(Reason)`): the caller
    /// sees `{exception, Reason, [{Module, Function, Arity, []}]}`.
    pub fn error(reason: impl Into<Term>) -> ErpcError {
        ErpcError::Error {
            reason: reason.into(),
            stack: Term::nil(),
        }
    }

    /// What Elixir's `raise message` raises: a `RuntimeError` struct
    /// (`%RuntimeError{message: "..."}`).
    pub fn raise(message: impl Into<String>) -> ErpcError {
        ErpcError::exception("Elixir.RuntimeError", message)
    }

    /// An Elixir exception struct `%Module{message: "..."}` (e.g.
    /// `"Elixir.ArgumentError"`) raised as an error.
    pub fn exception(module: &str, message: impl Into<String>) -> ErpcError {
        ErpcError::error(exception_struct(module, &message.into()))
    }

    /// `throw(T)`.
    pub fn throw(value: impl Into<Term>) -> ErpcError {
        ErpcError::Throw(value.into())
    }

    /// `exit(X)`.
    pub fn exit(reason: impl Into<Term>) -> ErpcError {
        ErpcError::Exit(reason.into())
    }

    /// True for [`ErpcError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, ErpcError::Timeout { .. })
    }

    /// True for [`ErpcError::NoConnection`].
    pub fn is_noconnection(&self) -> bool {
        matches!(self, ErpcError::NoConnection { .. })
    }

    /// The `{Class, Reason}` OTP's `erpc:call` raises for this failure (what
    /// `erpc:multicall` returns for the node); `None` for the Orbit-side type errors
    /// ([`ErpcError::Encode`], [`ErpcError::Decode`]), which have no OTP counterpart.
    pub fn exception_term(&self) -> Option<Term> {
        let (class, reason) = self.class_reason()?;
        Some(Term::Tuple(vec![Term::atom(class), reason]))
    }

    /// The class and reason of [`exception_term`](Self::exception_term).
    pub(crate) fn class_reason(&self) -> Option<(&'static str, Term)> {
        let erpc = |r: Term| Term::Tuple(vec![Term::atom("erpc"), r]);
        Some(match self {
            ErpcError::Error { reason, stack } => (
                "error",
                Term::Tuple(vec![Term::atom("exception"), reason.clone(), stack.clone()]),
            ),
            ErpcError::Throw(t) => ("throw", t.clone()),
            ErpcError::Exit(x) => (
                "exit",
                Term::Tuple(vec![Term::atom("exception"), x.clone()]),
            ),
            ErpcError::Signal(r) => ("exit", Term::Tuple(vec![Term::atom("signal"), r.clone()])),
            ErpcError::Timeout { .. } => ("error", erpc(Term::atom("timeout"))),
            ErpcError::NoConnection { .. } => ("error", erpc(Term::atom("noconnection"))),
            ErpcError::NotSup { .. } => ("error", erpc(Term::atom("notsup"))),
            ErpcError::Erpc(r) => ("error", erpc(r.clone())),
            ErpcError::BadArg(_) => ("error", erpc(Term::atom("badarg"))),
            ErpcError::Encode { .. } | ErpcError::Decode { .. } => return None,
        })
    }

    /// The error for `{erpc, Reason}` from `node` (a spawn refusal or an erpc failure).
    pub(crate) fn from_erpc_reason(node: &str, reason: Term) -> ErpcError {
        match reason.as_atom() {
            Some("timeout") => ErpcError::Timeout {
                node: node.to_string(),
            },
            Some("noconnection") => ErpcError::NoConnection {
                node: node.to_string(),
            },
            Some("notsup") => ErpcError::NotSup {
                node: node.to_string(),
            },
            _ => ErpcError::Erpc(reason),
        }
    }
}

/// `%Module{message: "..."}` (with `__exception__: true`), as Elixir raises it; a module
/// name that is no atom becomes `RuntimeError`.
pub(crate) fn exception_struct(module: &str, message: &str) -> Term {
    let module = Term::try_atom(module).unwrap_or_else(|_| Term::atom("Elixir.RuntimeError"));
    Term::map(vec![
        (Term::atom("__struct__"), module),
        (Term::atom("__exception__"), Term::atom("true")),
        (
            Term::atom("message"),
            Term::Binary(message.as_bytes().to_vec()),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_have_otp_shapes() {
        let e = ErpcError::error(Term::atom("badarith"));
        assert_eq!(
            e.exception_term().unwrap().to_string(),
            "{error, {exception, badarith, []}}"
        );
        let t = ErpcError::Timeout { node: "a@b".into() };
        assert_eq!(
            t.exception_term().unwrap().to_string(),
            "{error, {erpc, timeout}}"
        );
        assert!(t.to_string().contains("a@b"));
        assert_eq!(
            ErpcError::exit(Term::atom("x"))
                .exception_term()
                .unwrap()
                .to_string(),
            "{exit, {exception, x}}"
        );
        let r = ErpcError::raise("boom");
        let ErpcError::Error { reason, .. } = &r else {
            panic!()
        };
        assert_eq!(
            reason.map_get(&Term::atom("message")),
            Some(&Term::Binary(b"boom".to_vec()))
        );
        // A module name that is no atom does not panic.
        let _ = ErpcError::exception(&"x".repeat(300), "m");
    }
}
