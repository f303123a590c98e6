//! Exit reasons: why a process ended, carried by exit signals, `DOWN` messages and errors.
//!
//! They are Erlang's reasons, as terms: `normal`, `shutdown`, `{shutdown, Term}`, `kill`
//! (the untrappable signal, which a linked process sees as `killed`), `noproc`,
//! `noconnection`, and any other term (a crash or a custom reason). The well-known
//! reasons have variants of their own so they match idiomatically
//! (`matches!(r, ExitReason::Shutdown | ExitReason::ShutdownWith(_))`); every other
//! reason is [`ExitReason::Term`], holding the term exactly as Erlang or Elixir sent it
//! (`{:error, 1}` arrives as the tuple `{error, 1}`, not as its text).
//!
//! The mapping to terms ([`ExitReason::to_term`], [`ExitReason::from_term`]) is exact
//! both ways: `from_term(t).to_term()` is `t` (`=:=`) for every term, and
//! `from_term(r.to_term())` is `r` for every reason built through the constructors.
//!
//! Differences from Erlang/Elixir:
//! - Text reasons ([`ExitReason::error`], `From<Result<(), E>>`) are UTF-8 binaries,
//!   what Elixir's `exit("text")` sends; an Erlang `exit("text")` (a charlist) arrives
//!   as a list of integers and stays one.
//! - A Rust panic is [`ExitReason::Panic`]; to BEAM peers it goes out as
//!   `{panic, <<"message">>}` and that term comes back as `Panic`. (A BEAM process
//!   crashing with an exception exits with `{Exception, Stacktrace}`, which stays a
//!   [`ExitReason::Term`].)
//! - Equality of reasons is Erlang's `==` on the terms (`{error, 1} == {error, 1.0}`);
//!   compare `to_term()` with `Term::exact_eq` for `=:=`.
//! - Build `Term` reasons with [`ExitReason::from_term`] (or the constructors): a
//!   `Term` variant built by hand around, say, the atom `normal` is not equal to
//!   [`ExitReason::Normal`] and is not treated as a normal exit.

use std::fmt;
use std::sync::Arc;

use orbit_term::Term;

/// Why a process exited, or the reason carried by an exit signal. Cheap to clone: term
/// reasons are shared behind an `Arc`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// `normal`: the process finished its work. Linked processes that do not trap exits
    /// ignore it.
    Normal,
    /// `shutdown`: orderly shutdown, as a supervisor asks for it.
    Shutdown,
    /// `{shutdown, Detail}`: orderly shutdown with a detail; not logged as a crash.
    ShutdownWith(Arc<Term>),
    /// `kill`: the untrappable exit signal sent by [`exit`](fn@crate::exit)`(pid, Kill)`.
    Kill,
    /// `killed`: the reason a process killed by `Kill` exits with, as seen by links and
    /// monitors.
    Killed,
    /// `noproc`: the process did not exist (monitoring, linking or calling a dead pid).
    NoProc,
    /// `noconnection`: the connection to the process's node was lost.
    NoConnection,
    /// The process panicked; the panic message. `{panic, <<"message">>}` on the wire.
    Panic(Arc<str>),
    /// Any other reason: a handler's error (text as a binary), a custom stop reason, or
    /// whatever term a BEAM process exited with, exactly.
    Term(Arc<Term>),
}

impl ExitReason {
    /// A crash or custom stop reason with a message: the binary `<<"msg">>`, as Elixir's
    /// `exit("msg")`.
    pub fn error(msg: impl Into<String>) -> ExitReason {
        ExitReason::Term(Arc::new(Term::Binary(msg.into().into_bytes())))
    }

    /// `{shutdown, detail}` with a text detail (a binary, as Elixir's
    /// `{:shutdown, "detail"}`); [`ExitReason::shutdown_with_term`] takes any term.
    pub fn shutdown_with(detail: impl Into<String>) -> ExitReason {
        ExitReason::ShutdownWith(Arc::new(Term::Binary(detail.into().into_bytes())))
    }

    /// `{shutdown, detail}` with any term as the detail (`{shutdown, x}` with an atom).
    pub fn shutdown_with_term(detail: impl Into<Term>) -> ExitReason {
        ExitReason::ShutdownWith(Arc::new(detail.into()))
    }

    /// The reason a term stands for: `normal`, `shutdown`, `kill`, `killed`, `noproc`,
    /// `noconnection` map to their variants, `{shutdown, T}` to
    /// [`ShutdownWith`](ExitReason::ShutdownWith), `{panic, <<"utf-8 text">>}` to
    /// [`Panic`](ExitReason::Panic), everything else to [`Term`](ExitReason::Term).
    pub fn from_term(t: Term) -> ExitReason {
        match t {
            Term::Atom(ref a) => match a.as_str() {
                "normal" => ExitReason::Normal,
                "shutdown" => ExitReason::Shutdown,
                "kill" => ExitReason::Kill,
                "killed" => ExitReason::Killed,
                "noproc" => ExitReason::NoProc,
                "noconnection" => ExitReason::NoConnection,
                _ => ExitReason::Term(Arc::new(t)),
            },
            Term::Tuple(el)
                if el.len() == 2 && matches!(el[0].as_atom(), Some("shutdown" | "panic")) =>
            {
                match <[Term; 2]>::try_from(el) {
                    Ok([tag, detail]) if tag.as_atom() == Some("shutdown") => {
                        ExitReason::ShutdownWith(Arc::new(detail))
                    }
                    Ok([tag, msg]) => match msg.as_binary().map(std::str::from_utf8) {
                        Some(Ok(m)) => ExitReason::Panic(Arc::from(m)),
                        _ => ExitReason::Term(Arc::new(Term::Tuple(vec![tag, msg]))),
                    },
                    Err(el) => ExitReason::Term(Arc::new(Term::Tuple(el))),
                }
            }
            t => ExitReason::Term(Arc::new(t)),
        }
    }

    /// The term Erlang uses for this reason (what a BEAM peer sees in `EXIT`/`DOWN`).
    pub fn to_term(&self) -> Term {
        match self {
            ExitReason::Normal => Term::atom("normal"),
            ExitReason::Shutdown => Term::atom("shutdown"),
            ExitReason::ShutdownWith(d) => Term::Tuple(vec![Term::atom("shutdown"), (**d).clone()]),
            ExitReason::Kill => Term::atom("kill"),
            ExitReason::Killed => Term::atom("killed"),
            ExitReason::NoProc => Term::atom("noproc"),
            ExitReason::NoConnection => Term::atom("noconnection"),
            ExitReason::Panic(m) => Term::Tuple(vec![
                Term::atom("panic"),
                Term::Binary(m.as_bytes().to_vec()),
            ]),
            ExitReason::Term(t) => (**t).clone(),
        }
    }

    /// The term of a [`Term`](ExitReason::Term) reason (not the well-known reasons: use
    /// [`to_term`](ExitReason::to_term) for the whole reason as a term).
    pub fn as_term(&self) -> Option<&Term> {
        match self {
            ExitReason::Term(t) => Some(t),
            _ => None,
        }
    }

    /// The detail of `{shutdown, Detail}`.
    pub fn shutdown_detail(&self) -> Option<&Term> {
        match self {
            ExitReason::ShutdownWith(d) => Some(d),
            _ => None,
        }
    }

    /// The text of a reason made by [`ExitReason::error`] (a UTF-8 binary reason), or of
    /// a panic.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ExitReason::Panic(m) => Some(m),
            ExitReason::Term(t) => t.as_binary().and_then(|b| std::str::from_utf8(b).ok()),
            _ => None,
        }
    }

    /// True for `normal`.
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }

    /// True for `normal`, `shutdown` and `{shutdown, _}`: the reasons a transient child
    /// is not restarted for, and that are not reported as crashes.
    pub fn is_clean(&self) -> bool {
        matches!(
            self,
            ExitReason::Normal | ExitReason::Shutdown | ExitReason::ShutdownWith(_)
        )
    }

    /// The reason for a caught panic. The payload is dropped here with any panic of its
    /// own destructor caught (that second payload is forgotten, not dropped), so a
    /// payload that panics on drop still yields the panic's reason.
    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> ExitReason {
        let msg = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_string()
        };
        drop_payload(payload);
        ExitReason::Panic(Arc::from(msg))
    }
}

/// Drops a panic payload, catching a panic of its destructor, whose own payload is then
/// dropped the same way; after a few rounds of payloads that keep panicking, the last
/// one is leaked rather than risk another panic.
pub(crate) fn drop_payload(payload: Box<dyn std::any::Any + Send>) {
    let mut payload = payload;
    for _ in 0..4 {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(again) => payload = again,
        }
    }
    std::mem::forget(payload);
}

impl From<()> for ExitReason {
    fn from(_: ()) -> Self {
        ExitReason::Normal
    }
}

/// `Ok(())` is `normal`; an error is its text as a binary ([`ExitReason::error`]).
impl<E: fmt::Display> From<Result<(), E>> for ExitReason {
    fn from(r: Result<(), E>) -> Self {
        match r {
            Ok(()) => ExitReason::Normal,
            Err(e) => ExitReason::error(e.to_string()),
        }
    }
}

/// [`ExitReason::from_term`].
impl From<Term> for ExitReason {
    fn from(t: Term) -> Self {
        ExitReason::from_term(t)
    }
}

/// [`ExitReason::to_term`].
impl From<&ExitReason> for Term {
    fn from(r: &ExitReason) -> Self {
        r.to_term()
    }
}

/// Erlang syntax (`normal`, `{shutdown,x}`, `{error,1}`), except that a text reason (a
/// UTF-8 binary, from [`ExitReason::error`]) prints as its bare text and a panic as
/// `panic: message`, for readable logs.
impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::ShutdownWith(d) => match d.as_binary().map(std::str::from_utf8) {
                Some(Ok(text)) => write!(f, "{{shutdown, {text}}}"),
                _ => write!(f, "{{shutdown, {d}}}"),
            },
            ExitReason::Kill => f.write_str("kill"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::NoProc => f.write_str("noproc"),
            ExitReason::NoConnection => f.write_str("noconnection"),
            ExitReason::Panic(m) => write!(f, "panic: {m}"),
            ExitReason::Term(t) => match t.as_binary().map(std::str::from_utf8) {
                Some(Ok(text)) => f.write_str(text),
                _ => write!(f, "{t}"),
            },
        }
    }
}

/// Erlang syntax throughout, so a text reason (`<<"boom">>`) and an atom reason (`boom`)
/// differ in test failures; a panic prints as `panic: message`.
impl fmt::Debug for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Panic(m) => write!(f, "panic: {m}"),
            ExitReason::ShutdownWith(_) | ExitReason::Term(_) => write!(f, "{}", self.to_term()),
            other => fmt::Display::fmt(other, f),
        }
    }
}

impl std::error::Error for ExitReason {}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Term {
        // Small literal terms for the table below.
        match text {
            "{error,1}" => Term::Tuple(vec![Term::atom("error"), Term::Int(1)]),
            "{shutdown,x}" => Term::Tuple(vec![Term::atom("shutdown"), Term::atom("x")]),
            "{panic,<<\"boom\">>}" => Term::Tuple(vec![Term::atom("panic"), Term::from("boom")]),
            "{panic,1}" => Term::Tuple(vec![Term::atom("panic"), Term::Int(1)]),
            "{shutdown,x,y}" => Term::Tuple(vec![
                Term::atom("shutdown"),
                Term::atom("x"),
                Term::atom("y"),
            ]),
            "<<\"boom\">>" => Term::from("boom"),
            "#{a => {1,[2]}}" => Term::Map(vec![(
                Term::atom("a"),
                Term::Tuple(vec![Term::Int(1), Term::List(vec![Term::Int(2)])]),
            )]),
            "[]" => Term::List(vec![]),
            atom => Term::atom(atom),
        }
    }

    #[test]
    fn reasons_round_trip_through_terms_exactly() {
        let table: Vec<(&str, ExitReason)> = vec![
            ("normal", ExitReason::Normal),
            ("shutdown", ExitReason::Shutdown),
            (
                "{shutdown,x}",
                ExitReason::shutdown_with_term(Term::atom("x")),
            ),
            ("kill", ExitReason::Kill),
            ("killed", ExitReason::Killed),
            ("noproc", ExitReason::NoProc),
            ("noconnection", ExitReason::NoConnection),
            ("{panic,<<\"boom\">>}", ExitReason::Panic(Arc::from("boom"))),
            ("<<\"boom\">>", ExitReason::error("boom")),
            ("{error,1}", ExitReason::from_term(t("{error,1}"))),
            ("bye", ExitReason::Term(Arc::new(Term::atom("bye")))),
            ("{panic,1}", ExitReason::Term(Arc::new(t("{panic,1}")))),
            (
                "{shutdown,x,y}",
                ExitReason::Term(Arc::new(t("{shutdown,x,y}"))),
            ),
            (
                "#{a => {1,[2]}}",
                ExitReason::Term(Arc::new(t("#{a => {1,[2]}}"))),
            ),
            ("[]", ExitReason::Term(Arc::new(t("[]")))),
        ];
        for (text, reason) in table {
            let term = t(text);
            assert_eq!(ExitReason::from_term(term.clone()), reason, "{text}");
            assert!(
                reason.to_term().exact_eq(&term),
                "{text}: {}",
                reason.to_term()
            );
            assert_eq!(ExitReason::from_term(reason.to_term()), reason, "{text}");
        }
    }

    #[test]
    fn helpers_match_and_display_reads_well() {
        let e = ExitReason::from_term(t("{error,1}"));
        assert!(matches!(e.as_term(), Some(Term::Tuple(el)) if el[0].as_atom() == Some("error")));
        assert_eq!(e.to_string(), "{error, 1}");
        assert_eq!(ExitReason::error("boom").as_text(), Some("boom"));
        assert_eq!(ExitReason::error("boom").to_string(), "boom");
        let s = ExitReason::shutdown_with_term(Term::atom("x"));
        assert_eq!(s.shutdown_detail().and_then(Term::as_atom), Some("x"));
        assert!(s.is_clean() && !s.is_normal());
        assert_eq!(
            ExitReason::shutdown_with("done").to_string(),
            "{shutdown, done}"
        );
        assert_eq!(
            ExitReason::from(Err::<(), _>("bad")),
            ExitReason::error("bad")
        );
        assert_eq!(format!("{:?}", ExitReason::error("boom")), "<<\"boom\">>");
        assert_eq!(format!("{:?}", s), "{shutdown, x}");
        assert_eq!(format!("{:?}", ExitReason::Killed), "killed");
    }
}
