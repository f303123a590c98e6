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

/// The receiving side of a process: its mailbox and its identity. Owned by the
/// process's future; handed to the function given to [`spawn`].
pub struct Context<M> {
    proc: Arc<Process<M>>,
    buf: Batch<M>,
    /// Clock tick at which the message being handled was received (0: none).
    started: u64,
    /// Messages left before the time slice is checked again.
    budget: u32,
    /// Clock reading when the current time slice began (valid while `slice_checks > 0`;
    /// a slice starts at the first check after the process was woken).
    slice_start: u64,
    /// Checks made in the current time slice (0: no slice started).
    slice_checks: u32,
}

/// Messages handed out between two checks of the time slice.
const BUDGET: u32 = 256;
/// A process that keeps finding messages yields once it has run more than this long
/// (by the 1 ms coarse clock, so 1-2 ms) since its slice started: at its first check
/// after it was woken (the BEAM's time slice is about a millisecond of reductions)...
const SLICE_NS: u64 = 1_000_000;
/// ... or once it has taken this many checks' worth of messages (`16 * 256 = 4096`,
/// near the BEAM's 4000 reductions), whichever comes first, so a lagging coarse clock
/// cannot stretch a slice.
const SLICE_CHECKS: u32 = 16;

impl<M: Send + 'static> Context<M> {
    fn new(proc: Arc<Process<M>>) -> Self {
        Context {
            proc,
            buf: Batch::new(),
            started: 0,
            budget: BUDGET,
            slice_start: 0,
            slice_checks: 0,
        }
    }

    /// This process's pid.
    pub fn pid(&self) -> Pid {
        self.proc.core.pid
    }

    /// A typed handle to this process.
    pub fn handle(&self) -> Handle<M> {
        Handle {
            proc: self.proc.clone(),
        }
    }

    /// Turns exit signals into [`Message::Exit`] messages (`true`) or lets them kill this
    /// process (`false`, the default). `kill` can never be trapped.
    pub fn trap_exit(&self, on: bool) {
        self.proc.core.meta.lock().trap_exit = on;
    }

    /// Waits for the next signal or message; signals (trapped exits, `DOWN`) first.
    pub fn recv(&mut self) -> Recv<'_, M> {
        Recv { ctx: self }
    }

    /// Like [`recv`](Self::recv), giving up after `timeout` (Erlang's `receive ... after`).
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Message<M>> {
        tokio::time::timeout(timeout, self.recv()).await.ok()
    }

    /// Selective receive (Erlang's `receive Pattern -> ... after Timeout -> ... end`):
    /// the first signal or message that `pred` accepts, waiting up to `timeout`
    /// ([`INFINITY`](crate::gen_server::INFINITY) waits without a timer); `None` on
    /// timeout. Everything `pred` rejects stays queued, in order, for later receives;
    /// signals (trapped exits, `DOWN`s) are tested first, as `recv` serves them first.
    ///
    /// Cost: each wake-up tests the whole queue again (as the BEAM does without its
    /// reference trick), so keep mailboxes short while receiving selectively. Plain
    /// [`recv`](Self::recv) pays nothing for this.
    pub async fn recv_match<F>(&mut self, pred: F, timeout: Duration) -> Option<Message<M>>
    where
        F: FnMut(&Message<M>) -> bool,
    {
        let mut pred = pred;
        let wait = std::future::poll_fn(|cx| self.poll_match(cx, &mut pred));
        crate::deadline::timeout(timeout, wait).await.ok()
    }

    fn poll_match(
        &mut self,
        cx: &mut TaskCx<'_>,
        pred: &mut dyn FnMut(&Message<M>) -> bool,
    ) -> Poll<Message<M>> {
        if self.proc.mailbox.flags.load(Ordering::Acquire) & KILLED != 0 {
            return Poll::Pending;
        }
        self.account();
        let mut skipped: VecDeque<M> = VecDeque::new();
        loop {
            let (found, seen) = self.match_signals(pred);
            if let Some(m) = found {
                self.unskip(skipped);
                return Poll::Ready(m);
            }
            while let Some(m) = self.buf.pop_front() {
                let msg = Message::Msg(m);
                if pred(&msg) {
                    self.unskip(skipped);
                    self.begin();
                    return Poll::Ready(msg);
                }
                if let Message::Msg(m) = msg {
                    skipped.push_back(m);
                }
            }
            match self
                .proc
                .mailbox
                .take_messages(&mut self.buf, cx.waker(), seen)
            {
                // Messages taken, or a signal arrived: look again.
                Taken::Batch | Taken::Signal(_) => continue,
                Taken::Empty => {
                    self.unskip(skipped);
                    return Poll::Pending;
                }
            }
        }
    }

    /// Tests the queued signals in order; returns the first `pred` accepts and how many
    /// were tested and put back (in order); signals queued beyond those are untested.
    fn match_signals(
        &mut self,
        pred: &mut dyn FnMut(&Message<M>) -> bool,
    ) -> (Option<Message<M>>, usize) {
        let mailbox = &self.proc.mailbox;
        if mailbox.flags.load(Ordering::Acquire) & HAS_SIGNAL == 0 {
            return (None, 0);
        }
        let mut kept = VecDeque::new();
        let mut found = None;
        while let Some(sig) = mailbox.take_signal() {
            let m: Message<M> = sig.clone().into();
            if pred(&m) {
                found = Some(m);
                break;
            }
            kept.push_back(sig);
        }
        let left = mailbox.unget_signals(kept);
        (found, left)
    }

    /// Puts skipped messages back in front of the taken ones, in order.
    fn unskip(&mut self, skipped: VecDeque<M>) {
        for m in skipped.into_iter().rev() {
            self.buf.push_front(m);
        }
    }

    /// Takes the next signal or message if one is already waiting.
    pub fn try_recv(&mut self) -> Option<Message<M>> {
        let waker = futures::task::noop_waker();
        let mut cx = TaskCx::from_waker(&waker);
        match self.poll_recv(&mut cx) {
            Poll::Ready(m) => Some(m),
            Poll::Pending => None,
        }
    }

    /// Records the state-size estimate shown by [`process_info`](crate::process_info).
    pub fn report_state_size(&self, bytes: usize) {
        self.proc
            .core
            .state_size
            .store(bytes as u64, Ordering::Relaxed);
    }

    /// Ends the timing of the message being handled, if any.
    #[inline]
    fn account(&mut self) {
        if self.started == 0 {
            return;
        }
        let spent = clock::now().saturating_sub(self.started);
        let core = &self.proc.core;
        core.busy_ns.store(
            core.busy_ns.load(Ordering::Relaxed) + spent,
            Ordering::Relaxed,
        );
        if spent > clock::long_threshold_ns() {
            clock::report_long_handler(core, spent);
        }
        self.started = 0;
    }

    /// Counts a message as taken out of the mailbox and starts timing its handling.
    #[inline]
    fn begin(&mut self) {
        // Single writer: a plain load and store, no read-modify-write.
        let core = &self.proc.core;
        core.handled
            .store(core.handled.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if clock::counters_enabled() {
            self.started = clock::now();
        }
    }

    #[inline]
    fn poll_recv(&mut self, cx: &mut TaskCx<'_>) -> Poll<Message<M>> {
        let flags = self.proc.mailbox.flags.load(Ordering::Acquire);
        if flags & KILLED != 0 {
            // The kill is on its way (the task sees it on its next poll); never hand
            // out another message.
            return Poll::Pending;
        }
        self.account();
        if flags & HAS_SIGNAL != 0 {
            if let Some(sig) = self.proc.mailbox.take_signal() {
                return Poll::Ready(sig.into());
            }
        }
        if !self.buf.is_empty() {
            self.budget -= 1;
            if self.budget == 0 {
                self.budget = BUDGET;
                if self.slice_over() {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            if let Some(m) = self.buf.pop_front() {
                self.begin();
                return Poll::Ready(Message::Msg(m));
            }
        }
        match self.proc.mailbox.take(&mut self.buf, cx.waker()) {
            Taken::Signal(sig) => Poll::Ready(sig.into()),
            Taken::Batch => match self.buf.pop_front() {
                Some(m) => {
                    self.begin();
                    Poll::Ready(Message::Msg(m))
                }
                None => Poll::Pending,
            },
            Taken::Empty => {
                // Parked: the next wake-up starts a fresh time slice.
                self.budget = BUDGET;
                self.slice_checks = 0;
                Poll::Pending
            }
        }
    }

    /// Called every [`BUDGET`] messages taken without parking: true when this process
    /// has used up its time slice and should yield (then a new slice starts).
    #[cold]
    fn slice_over(&mut self) -> bool {
        let now = clock::now();
        if self.slice_checks == 0 {
            self.slice_start = now;
        }
        self.slice_checks += 1;
        // Strictly more than one tick apart: two reads of the coarse clock straddling
        // one tick may be a microsecond apart.
        if self.slice_checks >= SLICE_CHECKS || now.saturating_sub(self.slice_start) > SLICE_NS {
            self.slice_checks = 0;
            return true;
        }
        false
    }
}

/// The future returned by [`Context::recv`].
pub struct Recv<'a, M> {
    ctx: &'a mut Context<M>,
}

impl<M: Send + 'static> Future for Recv<'_, M> {
    type Output = Message<M>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Message<M>> {
        self.ctx.poll_recv(cx)
    }
}

impl<M> From<Signal> for Message<M> {
    fn from(s: Signal) -> Self {
        match s {
            Signal::Exit { from, reason, .. } => Message::Exit { from, reason },
            Signal::Down(d) => Message::Down(d),
        }
    }
}

/// How to start a process: link, monitor, trap exits, a label shown in introspection.
///
/// ```
/// # async fn demo() -> Result<(), orbit::Error> {
/// let h = orbit::Spawn::new().label("worker").spawn(|mut ctx: orbit::Context<u32>| async move {
///     while let orbit::Message::Msg(n) = ctx.recv().await {
///         if n == 0 { break; }
///     }
/// })?;
/// h.send(0).ok();
/// # Ok(()) }
/// ```
#[derive(Default, Clone, Copy)]
pub struct Spawn {
    link: bool,
    link_to: Option<Pid>,
    trap_exit: bool,
    label: Option<&'static str>,
}

impl Spawn {
    /// Default options: unlinked, not trapping exits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Links the new process to the caller (which must be a process).
    pub fn link(mut self) -> Self {
        self.link = true;
        self
    }

    /// Links the new process to `pid` instead of the caller (used by task supervisors,
    /// which start children on behalf of callers). Fails if `pid` is not alive.
    pub(crate) fn link_to(mut self, pid: Pid) -> Self {
        self.link_to = Some(pid);
        self
    }

    /// Starts the process already trapping exits.
    pub fn trap_exit(mut self) -> Self {
        self.trap_exit = true;
        self
    }

    /// A label shown by [`process_info`](crate::process_info) (e.g. the behaviour's name).
    pub fn label(mut self, label: &'static str) -> Self {
        self.label = Some(label);
        self
    }

    /// Spawns `f` as a new process.
    pub fn spawn<M, F, Fut>(self, f: F) -> Result<Handle<M>, Error>
    where
        M: Send + 'static,
        F: FnOnce(Context<M>) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Into<ExitReason>,
    {
        spawn_with(self, None, f)
    }

    /// Spawns `f` and monitors it from the caller (which must be a process).
    pub fn spawn_monitor<M, F, Fut>(self, f: F) -> Result<(Handle<M>, Ref), Error>
    where
        M: Send + 'static,
        F: FnOnce(Context<M>) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Into<ExitReason>,
    {
        let me = current_or_err()?;
        let h = spawn_with(self, None, f)?;
        let r = crate::signal::monitor_from(&me, h.pid());
        Ok((h, r))
    }
}

/// A fresh local pid of a process that has already exited: for a stand-in that must
/// name a process it never started (a remote spawn whose short function ran where it
/// was received). Like the pid of any exited process, messages to it are dropped and
/// links and monitors on it get `noproc`; it is never the pid of a later process.
///
/// Errors: [`Error::TooManyProcesses`] when the process table is full.
pub fn exited_pid() -> Result<Pid, Error> {
    table::reserve_exited().ok_or(Error::TooManyProcesses)
}

/// Spawns `f` as a new, unlinked process and returns a typed handle to it.
///
/// Must be called from within a tokio runtime.
pub fn spawn<M, F, Fut>(f: F) -> Result<Handle<M>, Error>
where
    M: Send + 'static,
    F: FnOnce(Context<M>) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Into<ExitReason>,
{
    spawn_with(Spawn::new(), None, f)
}

/// Spawns `f` linked to the calling process (an error outside a process).
pub fn spawn_link<M, F, Fut>(f: F) -> Result<Handle<M>, Error>
where
    M: Send + 'static,
    F: FnOnce(Context<M>) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Into<ExitReason>,
{
    spawn_with(Spawn::new().link(), None, f)
}

/// Spawns `f` and monitors it from the calling process (an error outside a process).
pub fn spawn_monitor<M, F, Fut>(f: F) -> Result<(Handle<M>, Ref), Error>
where
    M: Send + 'static,
    F: FnOnce(Context<M>) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Into<ExitReason>,
{
    Spawn::new().spawn_monitor(f)
}

pub(crate) fn spawn_with<M, F, Fut>(
    opts: Spawn,
    adapt: Option<Adapter<M>>,
    f: F,
) -> Result<Handle<M>, Error>
where
    M: Send + 'static,
    F: FnOnce(Context<M>) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Into<ExitReason>,
{
    let rt = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    clock::start();
    let parent = match (opts.link_to, opts.link) {
        (Some(pid), _) => Some(table::lookup(pid).ok_or(Error::NoProc(pid))?),
        (None, true) => Some(current_or_err()?),
        (None, false) => None,
    };
    let pid = table::reserve().ok_or(Error::TooManyProcesses)?;
    let mut meta = Meta {
        trap_exit: opts.trap_exit,
        ..Meta::default()
    };
    if opts.label.is_some() || parent.is_some() {
        let extra = meta.extra();
        extra.label = opts.label;
        if let Some(p) = &parent {
            extra.links.push(p.core().pid);
        }
    }
    let proc = Arc::new(Process {
        core: Core {
            pid,
            meta: Mutex::new(meta),
            exit: OnceLock::new(),
            handled: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            long_handlers: AtomicU32::new(0),
            state_size: AtomicU64::new(u64::MAX),
        },
        mailbox: Mailbox::new(),
        adapt,
    });
    let dynp: Arc<dyn ProcessHandle> = proc.clone();
    table::fill(pid, dynp.clone());
    if let Some(p) = &parent {
        let mut pm = p.core().meta.lock();
        if !pm.dead {
            pm.extra().links.push(pid);
        }
    }
    let body = f(Context::new(proc.clone()));
    // No join handle is kept: a kill reaches the task through the waker its first poll
    // registers, so the spawner writes nothing more once the task is queued.
    crate::start::start(
        &rt,
        Run {
            p: dynp,
            state: RunState::Unpolled,
            fut: Some(body),
        },
    );
    Ok(Handle { proc })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RunState {
    /// Not polled yet: the task waker is not registered.
    Unpolled,
    Running,
    /// The process has finished (see [`signal::finish`](crate::signal::finish)).
    Done,
}

pin_project_lite::pin_project! {
    /// A process's task: polls its body with the process set as current, and finishes
    /// the process exactly once — when the body returns or panics, when a kill is seen,
    /// or when the task is dropped unfinished (runtime shutdown, which counts as
    /// killed). One hand-written future rather than an async block wrapping a guard and
    /// an inner future: the task holds the body once, and the spawner clones the
    /// process `Arc` once less and writes nothing after queueing the task.
    ///
    /// Kills: the first poll registers the task's waker in the process's `Meta` (unless
    /// a kill came first); a kill ([`deliver_locked`](crate::signal::deliver_locked)) records
    /// the reason, sets `KILLED` and wakes that waker; the next poll sees `KILLED` and drops the body
    /// unpolled, as an abort would. A kill before the first poll is seen by that poll.
    struct Run<F> {
        p: Arc<dyn ProcessHandle>,
        state: RunState,
        #[pin]
        fut: Option<F>,
    }

    impl<F> PinnedDrop for Run<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.state != RunState::Done {
                *this.state = RunState::Done;
                // Dropped unfinished: killed, whatever the body's destructors do.
                let _ = end_body(this.p, this.fut);
                finish(this.p, None);
            }
        }
    }
}

/// Drops the body with the process set as current, so its destructors (e.g. a pending
/// call's timeout) see the process. A destructor that panics is caught (the process
/// still finishes: no zombie, and no panic reaches tokio's worker); its reason is
/// returned.
fn end_body<F>(p: &Arc<dyn ProcessHandle>, fut: Pin<&mut Option<F>>) -> Option<ExitReason> {
    let _current = SetCurrent::enter(p);
    let mut fut = fut;
    // If a destructor panics, the assignment still completes while unwinding: the
    // body is `None` afterwards either way.
    std::panic::catch_unwind(AssertUnwindSafe(|| fut.set(None)))
        .err()
        .map(ExitReason::from_panic)
}

/// Finishes the process: a kill decided before the body returned wins; no reason at all
/// (the task dropped unfinished, or killed) counts as killed, even if a destructor of
/// the body panicked.
fn finish(p: &Arc<dyn ProcessHandle>, reason: Option<ExitReason>) {
    let (task, killed) = {
        let mut m = p.core().meta.lock();
        (m.task.take(), m.take_kill())
    };
    // Dropped outside the lock: a waker's drop may run arbitrary code.
    drop(task);
    let reason = killed.or(reason).unwrap_or(ExitReason::Killed);
    crate::signal::finish(p, reason);
}

impl<F> Future for Run<F>
where
    F: Future,
    F::Output: Into<ExitReason>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<()> {
        let mut this = self.project();
        let killed = match *this.state {
            RunState::Done => return Poll::Ready(()),
            RunState::Unpolled => {
                *this.state = RunState::Running;
                let mut m = this.p.core().meta.lock();
                if !m.killed {
                    m.task = Some(cx.waker().clone());
                    false
                } else {
                    true
                }
            }
            RunState::Running => this.p.flags().load(Ordering::Acquire) & KILLED != 0,
        };
        let reason = if killed {
            None
        } else {
            let out = {
                let _current = SetCurrent::enter(this.p);
                let Some(fut) = this.fut.as_mut().as_pin_mut() else {
                    // The body is gone only once the process is done.
                    return Poll::Pending;
                };
                let polled = std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(cx)));
                // A burst of spawns is counted within one poll (see `start`).
                crate::start::end_burst();
                match polled {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(r)) => Ok(r),
                    Err(panic) => Err(panic),
                }
            };
            Some(match out {
                Ok(r) => r.into(),
                Err(panic) => ExitReason::from_panic(panic),
            })
        };
        *this.state = RunState::Done;
        let drop_panic = end_body(this.p, this.fut);
        // A destructor that panicked after a clean return makes the exit a crash; a
        // crash or a kill already decided keeps its own reason.
        let reason = match reason {
            Some(r) if r.is_clean() => Some(drop_panic.unwrap_or(r)),
            other => other,
        };
        finish(this.p, reason);
        Poll::Ready(())
    }
}

/// Runs `fut` inside a fresh process and returns its output: the way to use
/// process-only calls (links, monitors, `self_pid`) from ordinary async code and tests.
///
/// Returns the exit reason if the process crashed or was killed instead.
pub async fn run_in_process<T, Fut>(fut: Fut) -> Result<T, ExitReason>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let h = spawn(|_ctx: Context<()>| async move {
        let _ = tx.send(fut.await);
    })
    .map_err(|e| ExitReason::error(e.to_string()))?;
    match rx.await {
        Ok(v) => Ok(v),
        Err(_) => Err(h.wait_exit().await),
    }
}

/// Hands a blocking or CPU-heavy closure to tokio's blocking pool so it does not hold a
/// process worker thread; awaits its result.
pub async fn blocking<T, F>(f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Blocking(e.to_string()))
}
#[cfg(test)]
mod drop_tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// What `end_body` relies on: when the body's destructor panics, `Pin::set` still
    /// leaves the slot `None` (so `Run`'s own drop never drops the body twice) and the
    /// body's other fields are dropped while unwinding (miri checks both).
    #[test]
    fn a_panicking_destructor_leaves_the_body_slot_empty() {
        struct Bomb(#[allow(dead_code)] Box<u64>);
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("bomb");
            }
        }
        let mut slot = Box::pin(Some(Bomb(Box::new(1))));
        let r = catch_unwind(AssertUnwindSafe(|| slot.as_mut().set(None)));
        assert!(r.is_err());
        assert!(slot.is_none());
        super::ExitReason::from_panic(r.unwrap_err());
    }

    /// A payload whose destructor panics: `from_panic` still gives the panic reason.
    #[test]
    fn a_payload_that_panics_on_drop_is_contained() {
        struct PayloadBomb;
        impl Drop for PayloadBomb {
            fn drop(&mut self) {
                panic!("payload bomb");
            }
        }
        let r = catch_unwind(|| std::panic::panic_any(PayloadBomb));
        let reason = super::ExitReason::from_panic(r.unwrap_err());
        assert!(matches!(reason, super::ExitReason::Panic(_)));
    }
}

#[cfg(test)]
mod size_tests {
    /// An idle process's control block (with the `Arc`'s two counters) fits the
    /// allocator's 256-byte size class; the next class is 320, and on a million
    /// processes those 64 bytes are 64 MB of pages to fault in and zero.
    #[test]
    fn control_block_fits_256_bytes() {
        let arc_inner =
            std::mem::size_of::<super::Process<()>>() + 2 * std::mem::size_of::<usize>();
        assert!(arc_inner <= 256, "Arc<Process<()>> takes {arc_inner} bytes");
    }
}
