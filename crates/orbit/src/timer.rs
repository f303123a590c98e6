//! Timers: `send_after` and `cancel_timer`, as Erlang's `erlang:send_after/3`.
//!
//! A timer is a small tokio task sleeping until its deadline; the message is dropped if
//! the target has exited by then. [`send_after_to`] takes any [`Dest`] (a pid, a
//! registered name, a `via` name); a name is resolved when the timer fires, as
//! `erlang:send_after/3` does with an atom, and the message is dropped if nothing is
//! registered then.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;
use crate::process::Handle;
use crate::registry::Dest;

/// A running timer, returned by [`send_after`]; pass it to [`cancel_timer`].
#[derive(Debug)]
pub struct TimerRef {
    deadline: Instant,
    fired: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

/// Sends `msg` to `to` after `delay`.
pub fn send_after<M: Send + 'static>(
    to: &Handle<M>,
    msg: M,
    delay: Duration,
) -> Result<TimerRef, Error> {
    let to = to.clone();
    // The target may have exited: Erlang drops the message then, and so do we.
    after(delay, move || drop(to.send(msg)))
}

/// Sends `msg` to `to` (a pid, a registered name or a `via` name, see [`Dest`]) after
/// `delay`; the name is looked up when the timer fires. The process must accept
/// messages of type `M` (as with [`crate::send`]); a message nobody takes is dropped.
pub fn send_after_to<M: std::any::Any + Send>(
    to: impl Into<Dest>,
    msg: M,
    delay: Duration,
) -> Result<TimerRef, Error> {
    let to = to.into();
    // Not registered or exited: Erlang drops the message, and so do we.
    after(delay, move || drop(crate::send(to, msg)))
}

/// Runs `deliver` once `delay` has passed, unless the timer is cancelled first.
fn after(delay: Duration, deliver: impl FnOnce() + Send + 'static) -> Result<TimerRef, Error> {
    let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    let fired = Arc::new(AtomicBool::new(false));
    let f = fired.clone();
    let deadline = Instant::now() + delay;
    let task = rt.spawn(async move {
        tokio::time::sleep_until(deadline).await;
        if !f.swap(true, Ordering::AcqRel) {
            deliver();
        }
    });
    Ok(TimerRef {
        deadline,
        fired,
        task: task.abort_handle(),
    })
}

/// Cancels a timer. Returns the time that was left, or `None` if it already fired.
pub fn cancel_timer(t: &TimerRef) -> Option<Duration> {
    if t.fired.swap(true, Ordering::AcqRel) {
        return None;
    }
    t.task.abort();
    Some(t.deadline.saturating_duration_since(Instant::now()))
}
