//! [`ReplyTo`]: where a call's reply goes, and how the caller waits for it — the reply,
//! the server's exit reason, [`CallError::NoReply`] for a slot dropped unanswered, or a
//! timeout.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;

use super::CallError;
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::process;

/// Where a call's reply goes (Elixir's `from`).
///
/// `handle_call` receives it by `&mut`: return [`CallReply::Reply`](super::CallReply::Reply) to answer now, or
/// take it with [`ReplyTo::defer`], keep it, return [`CallReply::NoReply`](super::CallReply::NoReply), and answer
/// later with [`ReplyTo::reply`].
///
/// A call nobody will answer is caught: when the last slot of a call is dropped without
/// a reply while its server keeps running (the handler returned `NoReply` without
/// deferring, or dropped the deferred `ReplyTo`, wherever it was kept), the caller gets
/// [`CallError::NoReply`] at once instead of waiting for its timeout. When the slot is
/// dropped because the server is going down (it stops, panics in a handler, or is
/// killed), the caller gets [`CallError::Exit`] with the server's reason, as in OTP.
/// Limitation: a slot dropped during a panic in the server's own process counts as the
/// server going down; if that panic is caught inside the handler, the caller waits for
/// its timeout.
pub struct ReplyTo<R> {
    tx: Option<oneshot::Sender<Result<R, Unanswered>>>,
    caller: Option<Pid>,
    server: Pid,
}

/// The reply slot was dropped unanswered while the server kept running.
#[derive(Debug)]
pub(crate) struct Unanswered;

/// The caller's side of a [`ReplyTo`].
pub(crate) type ReplyRx<R> = oneshot::Receiver<Result<R, Unanswered>>;

impl<R> ReplyTo<R> {
    /// A reply slot for a call from `caller` to `server`, and where its reply arrives.
    pub(crate) fn channel(server: Pid, caller: Option<Pid>) -> (ReplyTo<R>, ReplyRx<R>) {
        let (tx, rx) = oneshot::channel();
        (
            ReplyTo {
                tx: Some(tx),
                caller,
                server,
            },
            rx,
        )
    }

    /// A slot nobody waits on (a cast): replies to it go nowhere.
    pub(crate) fn nobody(server: Pid) -> ReplyTo<R> {
        ReplyTo {
            tx: None,
            caller: None,
            server,
        }
    }

    /// Takes the reply slot out so the reply can be sent later (`{:noreply, state}`
    /// followed by `GenServer.reply(from, value)`).
    pub fn defer(&mut self) -> ReplyTo<R> {
        ReplyTo {
            tx: self.tx.take(),
            caller: self.caller,
            server: self.server,
        }
    }

    /// Sends the reply. Returns false when the caller already gave up, or the reply was
    /// already sent or deferred elsewhere.
    pub fn reply(mut self, value: R) -> bool {
        self.send(value)
    }

    pub(crate) fn send(&mut self, value: R) -> bool {
        match self.tx.take() {
            Some(tx) => tx.send(Ok(value)).is_ok(),
            None => false,
        }
    }

    /// True while this slot can still answer its call (not replied, not deferred
    /// elsewhere, not a cast) and the caller still waits.
    pub fn is_pending(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// The calling process, when the call came from a process.
    pub fn caller(&self) -> Option<Pid> {
        self.caller
    }
}

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        if tx.is_closed() {
            return;
        }
        // A panic unwinding through the server's own process, or the server going
        // down: close silently, and the caller reports the server's exit reason.
        let server_panics = std::thread::panicking() && process::self_pid() == Some(self.server);
        if !server_panics && !process::going_down(self.server) {
            let _ = tx.send(Err(Unanswered));
        }
    }
}

/// Waits for a call's reply: the reply, [`CallError::NoReply`] when the slot was dropped
/// unanswered, or the server's exit reason when it went down first; [`CallError::Timeout`]
/// after `timeout` ([`INFINITY`]: no timer).
pub(crate) async fn await_reply<R, F: Future<Output = ExitReason>>(
    rx: ReplyRx<R>,
    exit: impl FnOnce() -> F,
    timeout: Duration,
) -> Result<R, CallError> {
    let wait = async {
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(Unanswered)) => Err(CallError::NoReply),
            // The slot closed without a word: the server is going down.
            Err(_) => Err(CallError::Exit(exit().await)),
        }
    };
    match crate::deadline::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout),
    }
}

impl<R> std::fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplyTo({:?})", self.caller)
    }
}
