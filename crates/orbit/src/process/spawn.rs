//! Starting processes: [`Spawn`] options, [`spawn`] and its linked and monitored forms,
//! the task that runs a process body and finishes it exactly once, and the helpers
//! for code outside processes ([`run_in_process`], [`blocking`]).

use super::*;

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
