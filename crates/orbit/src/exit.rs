//! Exit reasons: why a process ended, carried by exit signals, `DOWN` messages and errors.
//!
//! They mirror Erlang's reasons: `normal`, `shutdown`, `{shutdown, Term}`, `kill` (the
//! untrappable signal, which a linked process sees as `killed`), `noproc`,
//! `noconnection`, and any other term — here a crash (a panic or an error a handler
//! returned) or a custom reason.

use std::fmt;
use std::sync::Arc;

/// Why a process exited, or the reason carried by an exit signal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// The process finished its work. Linked processes that do not trap exits ignore it.
    Normal,
    /// Orderly shutdown, as a supervisor asks for it.
    Shutdown,
    /// `{shutdown, Detail}`: orderly shutdown with a detail; not logged as a crash.
    ShutdownWith(Arc<str>),
    /// The untrappable exit signal sent by [`exit`](fn@crate::exit)`(pid, Kill)`.
    Kill,
    /// The reason a process killed by `Kill` exits with, as seen by links and monitors.
    Killed,
    /// The process did not exist (monitoring, linking or calling a dead pid).
    NoProc,
    /// The connection to the process's node was lost.
    NoConnection,
    /// The process panicked; the panic message.
    Panic(Arc<str>),
    /// A handler returned an error or asked to stop with a reason of its own.
    Error(Arc<str>),
}

impl ExitReason {
    /// A crash or custom stop reason with a message.
    pub fn error(msg: impl Into<String>) -> ExitReason {
        ExitReason::Error(Arc::from(msg.into()))
    }

    /// `{shutdown, detail}`.
    pub fn shutdown_with(detail: impl Into<String>) -> ExitReason {
        ExitReason::ShutdownWith(Arc::from(detail.into()))
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

impl<E: fmt::Display> From<Result<(), E>> for ExitReason {
    fn from(r: Result<(), E>) -> Self {
        match r {
            Ok(()) => ExitReason::Normal,
            Err(e) => ExitReason::error(e.to_string()),
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::ShutdownWith(d) => write!(f, "{{shutdown, {d}}}"),
            ExitReason::Kill => f.write_str("kill"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::NoProc => f.write_str("noproc"),
            ExitReason::NoConnection => f.write_str("noconnection"),
            ExitReason::Panic(m) => write!(f, "panic: {m}"),
            ExitReason::Error(m) => write!(f, "{m}"),
        }
    }
}

impl fmt::Debug for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ExitReason {}
