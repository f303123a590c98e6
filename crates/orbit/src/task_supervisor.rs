//! Task.Supervisor: start tasks under a supervisor, fire-and-forget or awaited, and
//! fan work out with bounded concurrency.
//!
//! As Elixir's `Task.Supervisor`:
//! - every task is a temporary child linked to the supervisor; stopping the supervisor
//!   stops its tasks;
//! - [`TaskSupervisor::run_async`] also links the task to the caller (a crash kills the
//!   caller); [`TaskSupervisor::async_nolink`] does not, so a crash comes back to the
//!   awaiting caller as [`TaskError::Exit`] and the caller survives;
//! - [`TaskSupervisor::async_stream`] runs a function over items with `max_concurrency`
//!   (default: available parallelism), `ordered` (default true), `timeout` (5 s) and
//!   `on_timeout` (end the stream with a timeout error, or kill that task and go on).
//!   `OnTimeout::Exit` yields `Err(Timeout)` as the last item and kills every task
//!   still running (Elixir exits the caller instead); `KillTask` yields `Err(Timeout)`
//!   for that item (`{:exit, :timeout}`) and goes on. Dropping the stream before its end
//!   kills the tasks it started and has not collected, as Elixir's halted streams do.
//!   [`Task::async_stream`](crate::Task::async_stream) runs the same without a
//!   supervisor of your own.

use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};

use crate::error::Error;
use crate::exit::ExitReason;
use crate::pid::Pid;
use crate::process::{self, Context, Handle, Spawn};
use crate::signal::Message;
use crate::task::{Task, TaskError, DEFAULT_AWAIT_TIMEOUT};

/// What `async_stream` does when a task exceeds its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// End the stream: yield [`TaskError::Timeout`] and stop the remaining tasks (Elixir
    /// exits the caller).
    #[default]
    Exit,
    /// Kill the late task, yield [`TaskError::Timeout`] for it and go on.
    KillTask,
}

/// Options of [`TaskSupervisor::async_stream`] (and `Task::async_stream`): Elixir's keyword
/// options, as fields or builder calls (`StreamOptions::default().max_concurrency(2)`).
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Tasks running at once (default: available parallelism).
    pub max_concurrency: usize,
    /// Yield results in input order (default) or as they finish.
    pub ordered: bool,
    /// How long each task may run (default 5 s).
    pub timeout: Duration,
    /// What a timeout does.
    pub on_timeout: OnTimeout,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            max_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            ordered: true,
            timeout: DEFAULT_AWAIT_TIMEOUT,
            on_timeout: OnTimeout::Exit,
        }
    }
}

impl StreamOptions {
    /// `max_concurrency:`: tasks running at once (0 counts as 1).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n;
        self
    }

    /// `ordered:`: results in input order (`true`, the default) or as they finish.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// `timeout:`: how long each task may run.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `on_timeout:`: what a late task does to the stream.
    pub fn on_timeout(mut self, on_timeout: OnTimeout) -> Self {
        self.on_timeout = on_timeout;
        self
    }
}

/// The tasks an `async_stream` has started and not yet collected; killed when the
/// stream ends on a timeout or is dropped (as Elixir's stream stops its tasks when the
/// caller halts it or exits).
#[derive(Clone, Default)]
struct RunningTasks(std::sync::Arc<parking_lot::Mutex<std::collections::HashSet<Pid>>>);

impl RunningTasks {
    fn kill_all(&self) {
        let pids: Vec<Pid> = self.0.lock().drain().collect();
        for pid in pids {
            crate::signal::exit(pid, ExitReason::Kill);
        }
    }
}

impl Drop for RunningTasks {
    fn drop(&mut self) {
        // The last holder (the stream's closure, after every run future) cleans up.
        if std::sync::Arc::strong_count(&self.0) == 1 {
            self.kill_all();
        }
    }
}

/// How long tasks get to stop after `shutdown` before they are killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Stops every task as a supervisor stops its children: `shutdown`, then `kill` after
/// [`SHUTDOWN_TIMEOUT`]; returns once all of them have exited.
async fn shutdown_children(ctx: &mut Context<ExitReason>, parent: Option<Pid>) {
    let children: Vec<Pid> = crate::info::process_info(ctx.pid())
        .map(|i| i.links)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| Some(*p) != parent)
        .collect();
    let mut waiting = std::collections::HashMap::new();
    for child in children {
        // Inside the supervisor process, so monitor cannot fail with NotInProcess.
        if let Ok(r) = crate::signal::monitor(child) {
            waiting.insert(r, child);
        }
        let _ = crate::signal::unlink(child);
        crate::signal::exit(child, ExitReason::Shutdown);
    }
    let mut killed = false;
    while !waiting.is_empty() {
        let limit = if killed {
            crate::gen_server::INFINITY
        } else {
            SHUTDOWN_TIMEOUT
        };
        match crate::deadline::timeout(limit, ctx.recv()).await {
            Ok(Message::Down(d)) => {
                waiting.remove(&d.monitor);
            }
            Ok(_) => {}
            Err(_) => {
                for pid in waiting.values() {
                    crate::signal::exit(*pid, ExitReason::Kill);
                }
                killed = true;
            }
        }
    }
}

/// A running task supervisor.
#[derive(Clone, Debug)]
pub struct TaskSupervisor {
    handle: Handle<ExitReason>,
    parent: Option<Pid>,
}

impl TaskSupervisor {
    /// Starts a task supervisor (unlinked).
    pub fn start() -> Result<TaskSupervisor, Error> {
        Self::start_opts(Spawn::new(), None)
    }

    /// Starts a task supervisor linked to the calling process.
    pub fn start_link() -> Result<TaskSupervisor, Error> {
        let parent = process::self_pid();
        Self::start_opts(Spawn::new().link(), parent)
    }

    fn start_opts(opts: Spawn, parent: Option<Pid>) -> Result<TaskSupervisor, Error> {
        let handle = opts.trap_exit().label("task_supervisor").spawn(
            |mut ctx: Context<ExitReason>| async move {
                loop {
                    let reason = match ctx.recv().await {
                        Message::Msg(reason) => reason,
                        Message::Exit { from, reason } if Some(from) == parent => reason,
                        // A task finished or crashed: temporary children are not
                        // restarted.
                        Message::Exit { .. } | Message::Down(_) => continue,
                    };
                    shutdown_children(&mut ctx, parent).await;
                    return reason;
                }
            },
        )?;
        let sup = TaskSupervisor { handle, parent };
        // Makes it reachable from its pid and name (`TaskSupervisor::whereis`).
        let _ = crate::attachment::attach(sup.pid(), Box::new(sup.clone()));
        Ok(sup)
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> Pid {
        self.handle.pid()
    }

    /// Starts a fire-and-forget task under the supervisor (`start_child`).
    pub fn start_child<Fut>(&self, fut: Fut) -> Result<Pid, Error>
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let h = Spawn::new()
            .link_to(self.pid())
            .label("task")
            .spawn(move |_ctx: Context<()>| fut)?;
        Ok(h.pid())
    }

    /// `Task.Supervisor.async`: a task under the supervisor, also linked to the caller.
    pub fn run_async<T, Fut>(&self, fut: Fut) -> Result<Task<T>, Error>
    where
        T: Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let task = Task::spawn_with(Spawn::new().link_to(self.pid()), fut)?;
        if process::self_pid().is_some() {
            crate::signal::link(task.pid())?;
        }
        Ok(task)
    }

    /// `Task.Supervisor.async_nolink`: a task under the supervisor, not linked to the
    /// caller; a crash comes back from `await` as [`TaskError::Exit`].
    pub fn async_nolink<T, Fut>(&self, fut: Fut) -> Result<Task<T>, Error>
    where
        T: Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        Task::spawn_with(Spawn::new().link_to(self.pid()), fut)
    }

    /// `Task.Supervisor.async_stream_nolink`: runs `f` over `items` in unlinked tasks,
    /// at most `max_concurrency` at once, yielding each outcome.
    pub fn async_stream<I, F, Fut, T>(
        &self,
        items: I,
        f: F,
        opts: StreamOptions,
    ) -> impl Stream<Item = Result<T, TaskError>> + Send + 'static
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let sup = self.clone();
        let timeout = opts.timeout;
        let max = opts.max_concurrency.max(1);
        let running = RunningTasks::default();
        let track = running.clone();
        let runs = futures::stream::iter(items).map(move |item| {
            let started = sup.async_nolink(f(item));
            // Tracked at once: the future below may be dropped before its first poll.
            if let Ok(task) = &started {
                track.0.lock().insert(task.pid());
            }
            let track = track.clone();
            async move {
                match started {
                    Ok(task) => {
                        let pid = task.pid();
                        // A late task is shut down by `await_timeout` itself.
                        let r = task.await_timeout(timeout).await;
                        track.0.lock().remove(&pid);
                        r
                    }
                    Err(e) => Err(TaskError::Exit(ExitReason::error(e.to_string()))),
                }
            }
        });
        let results: std::pin::Pin<Box<dyn Stream<Item = Result<T, TaskError>> + Send>> =
            if opts.ordered {
                Box::pin(runs.buffered(max))
            } else {
                Box::pin(runs.buffer_unordered(max))
            };
        let stop_on_timeout = opts.on_timeout == OnTimeout::Exit;
        let mut done = false;
        // The closure owns `running`: dropping the stream kills the tasks still running.
        results.take_while(move |r| {
            let keep = !done;
            if stop_on_timeout && matches!(r, Err(TaskError::Timeout)) {
                done = true;
                running.kill_all();
            }
            futures::future::ready(keep)
        })
    }

    /// Pids of the running tasks.
    pub fn children(&self) -> Vec<Pid> {
        crate::info::process_info(self.pid())
            .map(|i| i.links)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| Some(*p) != self.parent)
            .collect()
    }

    /// Tells the supervisor to stop with its tasks, without waiting.
    pub(crate) fn stop_now(&self) {
        let _ = self.handle.send(ExitReason::Shutdown);
    }

    /// Stops the supervisor and its tasks, waiting for it to exit.
    pub async fn stop(&self) {
        let _ = self.handle.send(ExitReason::Shutdown);
        self.handle.wait_exit().await;
    }
}
