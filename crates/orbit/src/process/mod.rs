//! Processes: spawning, the per-process control block, typed handles and the receive loop.
//!
//! A process is a tokio task that owns a [`Context`] (its mailbox's receiving end and its
//! state). Other code reaches it through a typed [`Handle`] or its untyped [`Pid`].
//! When the task ends — by returning, panicking, or being killed by an exit signal — the
//! runtime records the reason, removes the process from the process table, frees its
//! name, sends exit signals along its links and `DOWN` to its monitors.
//!
//! Every way a process ends finishes it exactly once, with a reason: its body returned
//! (its output), panicked (`panic`, even if the payload's own destructor panics: that
//! second panic is caught and its payload leaked), was killed (the kill's reason, even if
//! a destructor of the dropped body panics), or its task was dropped unfinished
//! (`killed`). A destructor that panics after a clean return makes the exit a `panic`.
//! No panic from these paths reaches tokio's worker.
//!
//! [`Handle::wait_exit`] registers a waiter in the process; a wait given up (its future
//! dropped, e.g. on a timeout, or a call whose reply the server dropped) is purged when
//! the list would next grow, so a process keeps about twice its live waiters at most.
//!
//! Not preempted: a handler that never awaits holds its worker thread. `recv` yields
//! every few hundred messages so a busy process cannot starve its neighbours, and the
//! runtime reports handlers that run longer than [`set_long_handler_threshold`](crate::clock::set_long_handler_threshold).

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskCx, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::{Error, SendError, Undelivered};
use crate::exit::ExitReason;
use crate::mailbox::{Batch, Mailbox, Signal, Taken, HAS_SIGNAL, KILLED};
use crate::pid::{Pid, Ref};
use crate::signal::Message;
use crate::{clock, table};

mod context;
mod spawn;

pub use context::{Context, Recv};
pub(crate) use spawn::spawn_with;
pub use spawn::{blocking, exited_pid, run_in_process, spawn, spawn_link, spawn_monitor, Spawn};

/// Rarely used per-process data, allocated on first use so idle processes stay small.
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) links: Vec<Pid>,
    /// Monitors this process holds on others: (ref, target).
    pub(crate) monitors: Vec<(Ref, Pid)>,
    /// Monitors others hold on this process: (ref, watcher).
    pub(crate) watchers: Vec<(Ref, Pid)>,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) exit_waiters: Vec<oneshot::Sender<ExitReason>>,
    pub(crate) label: Option<&'static str>,
    /// Told when this process exits (keyed registries holding its entries), one per
    /// registry however many entries it holds there.
    pub(crate) on_exit: Vec<std::sync::Weak<dyn ExitHook>>,
    /// The exit hooks have been taken to run: no more may be added.
    pub(crate) exiting: bool,
    /// The reason of a kill decided for this process (see [`Meta::killed`]).
    kill: Option<ExitReason>,
    /// A value that lives exactly as long as the process (see
    /// [`attach`](crate::attachment::attach)): dropped in `finish` before links and
    /// monitors learn of the exit.
    pub(crate) attached: Option<Box<dyn Any + Send + Sync>>,
}

#[derive(Default)]
pub(crate) struct Meta {
    pub(crate) trap_exit: bool,
    pub(crate) dead: bool,
    /// A kill has been decided; its reason waits in `extra` (kills are rare, so the
    /// reason does not take room in every idle process).
    pub(crate) killed: bool,
    /// A behaviour's loop decided to stop (set before its `terminate` runs): reply
    /// slots dropped from now on mean "the server is going down", not "the server
    /// dropped the reply" (see [`going_down`]).
    pub(crate) stopping: bool,
    /// The process's task waker, registered by its first poll; a kill wakes it so the
    /// task sees the kill and ends (see [`Run`]).
    pub(crate) task: Option<std::task::Waker>,
    pub(crate) extra: Option<Box<Extra>>,
}

impl Meta {
    pub(crate) fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// Records the reason of a kill.
    pub(crate) fn set_kill(&mut self, reason: ExitReason) {
        self.killed = true;
        self.extra().kill = Some(reason);
    }

    /// Takes the reason of a kill, if one was decided.
    pub(crate) fn take_kill(&mut self) -> Option<ExitReason> {
        if !self.killed {
            return None;
        }
        self.extra.as_mut().and_then(|e| e.kill.take())
    }
}

/// Something told when a process exits, before the process is marked dead and before
/// its links, monitors and exit waiters learn of it (hooks are taken out under the
/// `meta` lock with `exiting` set, so none can be added afterwards): a keyed
/// registry ([`crate::registry::Registry`]) drops the process's entries here, so a
/// `DOWN` or `wait_exit` observer never sees them.
pub(crate) trait ExitHook: Send + Sync {
    /// `pid` has exited. Must not panic (a panic is caught and logged).
    fn exited(&self, pid: Pid);
}

/// Adds `hook` to the live process `p` unless it holds it already. False when the
/// process has already exited (its hooks ran or are running: add nothing then).
pub(crate) fn add_exit_hook(p: &dyn ProcessHandle, hook: std::sync::Weak<dyn ExitHook>) -> bool {
    let mut meta = p.core().meta.lock();
    if meta.dead || meta.extra.as_ref().is_some_and(|e| e.exiting) {
        return false;
    }
    let hooks = &mut meta.extra().on_exit;
    if !hooks.iter().any(|h| std::sync::Weak::ptr_eq(h, &hook)) {
        hooks.retain(|h| h.strong_count() > 0);
        hooks.push(hook);
    }
    true
}

/// Marks the calling process as stopping (a behaviour's loop calls this when it decides
/// to exit, before `terminate`); see [`going_down`]. No effect outside a process.
pub(crate) fn mark_stopping() {
    with_current(|p| p.core().meta.lock().stopping = true);
}

/// True when the process `pid` is exiting or gone: not in the process table, its exit
/// recorded, a kill decided, or its behaviour loop marked it stopping. Used when a
/// call's reply slot is dropped unanswered, to tell "the server dropped the reply" (the
/// caller gets `CallError::NoReply` at once) from "the server is going down" (the caller
/// gets the exit reason).
pub(crate) fn going_down(pid: Pid) -> bool {
    let Some(p) = table::lookup(pid) else {
        return true;
    };
    if p.core().exit.get().is_some() || p.flags().load(Ordering::Acquire) & KILLED != 0 {
        return true;
    }
    let m = p.core().meta.lock();
    m.stopping || m.killed || m.dead
}

/// The untyped part of a process: identity, counters, links and monitors.
pub(crate) struct Core {
    pub(crate) pid: Pid,
    pub(crate) meta: Mutex<Meta>,
    pub(crate) exit: OnceLock<ExitReason>,
    /// Messages handled (written by the process only).
    pub(crate) handled: AtomicU64,
    /// Nanoseconds (coarse clock) spent handling messages (written by the process only).
    pub(crate) busy_ns: AtomicU64,
    pub(crate) long_handlers: AtomicU32,
    /// Size estimate of the state in bytes, `u64::MAX` when the behaviour reports none.
    pub(crate) state_size: AtomicU64,
}

/// The type-erased view of a process used by the process table, links, monitors and
/// sends by pid.
pub(crate) trait ProcessHandle: Send + Sync + 'static {
    fn core(&self) -> &Core;
    fn push_signal(&self, s: Signal) -> bool;
    fn send_any(&self, msg: Box<dyn Any + Send>) -> Result<(), SendError>;
    fn mailbox_len(&self) -> u64;
    fn messages_in(&self) -> u64;
    fn flags(&self) -> &AtomicU8;
    fn wake(&self);
    fn flush_down(&self, r: Ref) -> bool;
    fn flush_link_exit(&self, from: Pid) -> bool;
    fn close(&self);
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// Converts a message sent by pid into the process's own message type (used by
/// behaviours, e.g. a GenServer wraps plain messages for `handle_info`).
pub(crate) type Adapter<M> = fn(Box<dyn Any + Send>) -> Result<M, Box<dyn Any + Send>>;

pub(crate) struct Process<M> {
    pub(crate) core: Core,
    pub(crate) mailbox: Mailbox<M>,
    adapt: Option<Adapter<M>>,
}

impl<M: Send + 'static> ProcessHandle for Process<M> {
    fn core(&self) -> &Core {
        &self.core
    }
    fn push_signal(&self, s: Signal) -> bool {
        self.mailbox.push_signal(s)
    }
    fn send_any(&self, msg: Box<dyn Any + Send>) -> Result<(), SendError> {
        let m = match msg.downcast::<M>() {
            Ok(m) => *m,
            Err(other) => match self.adapt {
                Some(adapt) => adapt(other).map_err(|_| SendError::WrongType(self.core.pid))?,
                None => return Err(SendError::WrongType(self.core.pid)),
            },
        };
        self.mailbox
            .push(m)
            .map_err(|_| SendError::NoProc(self.core.pid))
    }
    fn mailbox_len(&self) -> u64 {
        self.mailbox
            .received()
            .saturating_sub(self.core.handled.load(Ordering::Relaxed))
    }
    fn messages_in(&self) -> u64 {
        self.mailbox.received()
    }
    fn flags(&self) -> &AtomicU8 {
        &self.mailbox.flags
    }
    fn wake(&self) {
        self.mailbox.wake()
    }
    fn flush_down(&self, r: Ref) -> bool {
        self.mailbox.flush_down(r)
    }
    fn flush_link_exit(&self, from: Pid) -> bool {
        self.mailbox.flush_link_exit(from)
    }
    fn close(&self) {
        let queued = self.mailbox.close();
        drop(queued);
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

thread_local! {
    /// The process whose task is being polled on this thread, set by [`Run`]
    /// for the duration of each poll (null otherwise). A plain cell rather than a
    /// `tokio::task_local!`: that one borrows a `RefCell` and swaps the value in and
    /// out on every poll, a measurable share of a GenServer call.
    static CURRENT: Cell<*const Arc<dyn ProcessHandle>> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` on the process being polled on this thread; `None` outside any process.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Arc<dyn ProcessHandle>) -> R) -> Option<R> {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: the pointer is non-null only while `Run::poll` (or its drop) runs
    // on this thread, and it points at that pinned future's own `Arc`, which lives at
    // least that long; `f` runs within that call.
    Some(f(unsafe { &*p }))
}

/// The pid of the calling process, or `None` when called outside any process.
pub fn self_pid() -> Option<Pid> {
    with_current(|p| p.core().pid)
}

pub(crate) fn current() -> Option<Arc<dyn ProcessHandle>> {
    with_current(|p| p.clone())
}

/// Sets the current process; puts the previous one back when dropped (also on unwind).
struct SetCurrent(*const Arc<dyn ProcessHandle>);

impl SetCurrent {
    #[inline]
    fn enter(p: &Arc<dyn ProcessHandle>) -> SetCurrent {
        SetCurrent(CURRENT.with(|c| c.replace(p as *const _)))
    }
}

impl Drop for SetCurrent {
    #[inline]
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

pub(crate) fn current_or_err() -> Result<Arc<dyn ProcessHandle>, Error> {
    current().ok_or(Error::NotInProcess)
}

/// A typed handle to a process: sends go straight into its mailbox, with no lookup.
pub struct Handle<M> {
    pub(crate) proc: Arc<Process<M>>,
}

impl<M> Clone for Handle<M> {
    fn clone(&self) -> Self {
        Handle {
            proc: self.proc.clone(),
        }
    }
}

impl<M> std::fmt::Debug for Handle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Handle({})", self.proc.core.pid)
    }
}

impl<M: Send + 'static> Handle<M> {
    /// The process's pid.
    pub fn pid(&self) -> Pid {
        self.proc.core.pid
    }

    /// Sends a message. Fails, handing the message back, when the process has exited
    /// (Erlang drops such a message silently; here you may ignore the error to match).
    #[inline]
    pub fn send(&self, msg: M) -> Result<(), Undelivered<M>> {
        self.proc.mailbox.push(msg).map_err(|msg| Undelivered {
            pid: self.proc.core.pid,
            msg,
        })
    }

    /// True while the process has not exited.
    pub fn is_alive(&self) -> bool {
        self.proc.core.exit.get().is_none()
    }

    /// Waits until the process exits and returns its exit reason.
    pub async fn wait_exit(&self) -> ExitReason {
        wait_exit(&self.proc.core).await
    }

    /// Finds the typed handle of a live local process by pid; `None` when it is dead,
    /// remote, or its messages are not of type `M`.
    pub fn from_pid(pid: Pid) -> Option<Handle<M>> {
        let p = table::lookup(pid)?;
        let proc = p.into_any().downcast::<Process<M>>().ok()?;
        Some(Handle { proc })
    }
}

pub(crate) async fn wait_exit(core: &Core) -> ExitReason {
    let rx = {
        let mut meta = core.meta.lock();
        if meta.dead {
            drop(meta);
            return core.exit.get().cloned().unwrap_or(ExitReason::NoProc);
        }
        let (tx, rx) = oneshot::channel();
        push_waiter(&mut meta.extra().exit_waiters, tx);
        rx
    };
    match rx.await {
        Ok(r) => r,
        Err(_) => core.exit.get().cloned().unwrap_or(ExitReason::NoProc),
    }
}

/// Adds an exit waiter. A waiter given up (its `wait_exit` future dropped, e.g. on a
/// timeout, or a call whose reply the server dropped) leaves a closed sender behind;
/// those are purged whenever the list is about to grow its buffer, so the list stays
/// within about twice its live waiters (plus a small constant) at amortised O(1) per
/// wait.
fn push_waiter(waiters: &mut Vec<oneshot::Sender<ExitReason>>, tx: oneshot::Sender<ExitReason>) {
    if waiters.len() == waiters.capacity() {
        waiters.retain(|w| !w.is_closed());
        if waiters.len() < waiters.capacity() / 4 {
            waiters.shrink_to(waiters.len() * 2);
        }
    }
    waiters.push(tx);
}

/// The number of exit waiters a live process holds (closed ones included until purged).
#[doc(hidden)]
pub fn exit_waiters_held(pid: Pid) -> usize {
    table::lookup(pid).map_or(0, |p| {
        p.core()
            .meta
            .lock()
            .extra
            .as_ref()
            .map_or(0, |e| e.exit_waiters.len())
    })
}
