//! Task: run one computation in its own process and await its result.
//!
//! As Elixir's `Task`:
//! - [`Task::run_async`] (`Task.async`) links the task to the calling process, so a
//!   crash in the task kills the caller unless it traps exits. Outside a process there
//!   is no caller to link; the task then runs unlinked and a crash comes back from
//!   `await` as [`TaskError::Exit`].
//! - [`Task::await_result`] waits up to a timeout (5 s by default). On timeout the task is
//!   shut down (Elixir exits the caller, and the link takes the task with it) and the
//!   error is [`TaskError::Timeout`].
//! - [`Task::yield_result`] returns `None` on timeout and keeps the task running.
//! - [`Task::shutdown`] stops the task: `shutdown` exit signal, then `kill` after the
//!   timeout; returns the result if it finished first.
//! - [`Task::await_many`] (`Task.await_many`) waits for several tasks under one
//!   deadline: every result in order, or the first failure; on a timeout (or a
//!   failure) the tasks still running are shut down. Elixir exits the caller there;
//!   here the error says which task and why.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::Error;
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::process::{self, Context, Handle, Spawn};

/// Stops a private task supervisor when dropped.
struct StopOnDrop(crate::TaskSupervisor);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop_now();
    }
}

/// The default await timeout, as in Elixir.
pub const DEFAULT_AWAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a task produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The task exited (crashed, was killed or shut down) before producing its result.
    #[error("the task exited: {0}")]
    Exit(ExitReason),
    /// No result within the timeout.
    #[error("the task did not finish in time")]
    Timeout,
}

/// A running task producing a `T`.
pub struct Task<T> {
    handle: Handle<()>,
    rx: oneshot::Receiver<T>,
}

impl<T> std::fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Task({})", self.handle.pid())
    }
}

impl<T: Send + 'static> Task<T> {
    /// `Task.async`: runs `fut` in a new process linked to the caller.
    pub fn run_async<Fut>(fut: Fut) -> Result<Task<T>, Error>
    where
        Fut: Future<Output = T> + Send + 'static,
    {
        let opts = if process::self_pid().is_some() {
            Spawn::new().link()
        } else {
            Spawn::new()
        };
        Self::spawn_with(opts, fut)
    }

    pub(crate) fn spawn_with<Fut>(opts: Spawn, fut: Fut) -> Result<Task<T>, Error>
    where
        Fut: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let handle = opts
            .label("task")
            .spawn(move |_ctx: Context<()>| async move {
                let _ = tx.send(fut.await);
            })?;
        Ok(Task { handle, rx })
    }

    /// The task's pid.
    pub fn pid(&self) -> Pid {
        self.handle.pid()
    }

    /// `Task.await` with the default 5 s timeout.
    pub async fn await_result(self) -> Result<T, TaskError> {
        self.await_timeout(DEFAULT_AWAIT_TIMEOUT).await
    }

    /// `Task.await(task, timeout)`: the result, the task's exit reason, or a timeout
    /// (after which the task is shut down).
    pub async fn await_timeout(mut self, timeout: Duration) -> Result<T, TaskError> {
        match self.yield_result(timeout).await {
            Some(r) => r,
            None => {
                let _ = self.shutdown(Duration::ZERO).await;
                Err(TaskError::Timeout)
            }
        }
    }

    /// `Task.await_many(tasks, timeout)`: the results of all `tasks`, in order, if all
    /// finish within `timeout` (one deadline for all). Otherwise the exit of the first
    /// task seen to fail, or [`TaskError::Timeout`]; the tasks still running are then
    /// shut down (none is left behind).
    pub async fn await_many(tasks: Vec<Task<T>>, timeout: Duration) -> Result<Vec<T>, TaskError> {
        let mut tasks = tasks;
        let n = tasks.len();
        let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
        let mut failure = None;
        {
            let waits = tasks.iter_mut().enumerate().map(|(i, t)| {
                let handle = &t.handle;
                let rx = &mut t.rx;
                async move {
                    match rx.await {
                        Ok(v) => (i, Ok(v)),
                        Err(_) => (i, Err(TaskError::Exit(handle.wait_exit().await))),
                    }
                }
            });
            let mut pending: futures::stream::FuturesUnordered<_> = waits.collect();
            let all = async {
                use futures::StreamExt;
                while let Some((i, r)) = pending.next().await {
                    match r {
                        Ok(v) => slots[i] = Some(v),
                        Err(e) => {
                            failure = Some(e);
                            return;
                        }
                    }
                }
            };
            if crate::deadline::timeout(timeout, all).await.is_err() {
                failure = Some(TaskError::Timeout);
            }
        }
        if let Some(e) = failure {
            for t in tasks {
                if t.handle.is_alive() {
                    let _ = t.shutdown(Duration::ZERO).await;
                }
            }
            return Err(e);
        }
        let mut out = Vec::with_capacity(n);
        for v in slots {
            match v {
                Some(v) => out.push(v),
                // Every task answered (the loop above ran to its end).
                None => return Err(TaskError::Exit(ExitReason::NoProc)),
            }
        }
        Ok(out)
    }

    /// `Task.async_stream(items, f, opts)`: runs `f` over `items` in tasks under a
    /// private task supervisor, with the options and timeout semantics of
    /// [`TaskSupervisor::async_stream`](crate::TaskSupervisor::async_stream). The
    /// supervisor is stopped (with its tasks) when the stream is dropped. Differs from
    /// Elixir in that the tasks are not linked to the caller: a crash is yielded as
    /// [`TaskError::Exit`] for its item.
    pub fn async_stream<I, F, Fut>(
        items: I,
        f: F,
        opts: crate::task_supervisor::StreamOptions,
    ) -> Result<impl futures::Stream<Item = Result<T, TaskError>> + Send + 'static, Error>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        use futures::StreamExt;
        let sup = crate::TaskSupervisor::start()?;
        let stop = StopOnDrop(sup.clone());
        Ok(sup.async_stream(items, f, opts).map(move |r| {
            let _keep = &stop;
            r
        }))
    }

    /// `Task.yield`: the outcome if the task finishes within `timeout`, else `None`
    /// with the task still running.
    pub async fn yield_result(&mut self, timeout: Duration) -> Option<Result<T, TaskError>> {
        let handle = &self.handle;
        let rx = &mut self.rx;
        let wait = async move {
            match rx.await {
                Ok(v) => Ok(v),
                Err(_) => Err(TaskError::Exit(handle.wait_exit().await)),
            }
        };
        crate::deadline::timeout(timeout, wait).await.ok()
    }

    /// `Task.shutdown`: unlinks, sends a `shutdown` exit signal, kills the task if it is
    /// still running after `timeout`. Returns its result if it finished first, its exit
    /// reason if it crashed first, or `None` if it was stopped.
    pub async fn shutdown(mut self, timeout: Duration) -> Option<Result<T, TaskError>> {
        if process::self_pid().is_some() {
            let _ = crate::signal::unlink(self.pid());
        }
        if let Ok(v) = self.rx.try_recv() {
            return Some(Ok(v));
        }
        if !self.handle.is_alive() {
            let reason = self.handle.wait_exit().await;
            return Some(Err(TaskError::Exit(reason)));
        }
        crate::signal::exit(self.pid(), ExitReason::Shutdown);
        let stopped = crate::deadline::timeout(timeout, self.handle.wait_exit()).await;
        if stopped.is_err() {
            crate::signal::exit(self.pid(), ExitReason::Kill);
            self.handle.wait_exit().await;
        }
        match self.rx.try_recv() {
            Ok(v) => Some(Ok(v)),
            Err(_) => None,
        }
    }
}
