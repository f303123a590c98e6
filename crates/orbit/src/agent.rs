//! Agent: a process that holds a value, read and changed by functions run inside it.
//!
//! As Elixir's `Agent`: [`Agent::get`], [`Agent::update`] and [`Agent::get_and_update`]
//! are calls (5 s default timeout) whose function runs in the agent process, one at a
//! time; [`Agent::cast`] is fire-and-forget. A function that panics crashes the agent,
//! and the caller gets the exit reason. Use an agent for simple shared state; when reads
//! dominate and many processes read, an [`ets`](crate) table scales where one process
//! cannot.

use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::Error;
use crate::exit::ExitReason;
use crate::gen_server::{CallError, DEFAULT_CALL_TIMEOUT};
use crate::pid::Pid;
use crate::process::{self, Handle, Spawn};
use crate::signal::Message;
use crate::supervisor::ChildSpec;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

enum AgentMsg<S> {
    Job(Job<S>),
    Stop(ExitReason),
}

/// A handle to an agent holding a value of type `S`.
pub struct Agent<S: Send + 'static> {
    handle: Handle<AgentMsg<S>>,
}

impl<S: Send + 'static> Clone for Agent<S> {
    fn clone(&self) -> Self {
        Agent {
            handle: self.handle.clone(),
        }
    }
}

impl<S: Send + 'static> std::fmt::Debug for Agent<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Agent({})", self.handle.pid())
    }
}

impl<S: Send + 'static> Agent<S> {
    /// Starts an agent whose value is `init()` (run inside the agent), linked to the
    /// calling process.
    pub async fn start_link<F>(init: F) -> Result<Agent<S>, Error>
    where
        F: FnOnce() -> S + Send + 'static,
    {
        Self::start_opts(init, Spawn::new().link()).await
    }

    /// Starts an unlinked agent whose value is `init()`.
    pub async fn start<F>(init: F) -> Result<Agent<S>, Error>
    where
        F: FnOnce() -> S + Send + 'static,
    {
        Self::start_opts(init, Spawn::new()).await
    }

    async fn start_opts<F>(init: F, opts: Spawn) -> Result<Agent<S>, Error>
    where
        F: FnOnce() -> S + Send + 'static,
    {
        let (ready_tx, ready_rx) = oneshot::channel();
        let handle = opts.label("agent").spawn(
            move |mut ctx: process::Context<AgentMsg<S>>| async move {
                let mut state = init();
                let _ = ready_tx.send(());
                loop {
                    match ctx.recv().await {
                        Message::Msg(AgentMsg::Job(job)) => job(&mut state),
                        Message::Msg(AgentMsg::Stop(r)) => return r,
                        // An agent does not trap exits, so only DOWNs could arrive; none
                        // are created by the agent itself.
                        Message::Exit { .. } | Message::Down(_) => {}
                    }
                }
            },
        )?;
        match ready_rx.await {
            Ok(()) => Ok(Agent { handle }),
            Err(_) => Err(Error::Exit(handle.wait_exit().await)),
        }
    }

    /// The agent's pid.
    pub fn pid(&self) -> Pid {
        self.handle.pid()
    }

    /// A child spec for an agent whose value `init()` builds afresh at each (re)start,
    /// linked to the supervisor: a permanent worker with a 5 s shutdown, as Elixir's
    /// `{Agent, fun}`. Name it with [`ChildSpec::name`] and find it with
    /// [`Agent::whereis`].
    pub fn child_spec<F>(id: impl Into<String>, init: F) -> ChildSpec
    where
        F: Fn() -> S + Send + Sync + 'static,
    {
        let init = std::sync::Arc::new(init);
        ChildSpec::worker(id, move || {
            let init = init.clone();
            async move { Agent::start_link(move || init()).await.map(|a| a.pid()) }
        })
    }

    /// The agent holding an `S` running as `pid`, if any.
    pub fn from_pid(pid: Pid) -> Option<Agent<S>> {
        Handle::from_pid(pid).map(|handle| Agent { handle })
    }

    /// The agent holding an `S` registered as `name`, if any: after a supervisor
    /// restarted it, the new one.
    pub fn whereis(name: impl Into<crate::registry::Dest>) -> Option<Agent<S>> {
        name.into().whereis().and_then(Self::from_pid)
    }

    async fn call<T, F>(&self, f: F, timeout: Duration) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&mut S) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job<S> = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        if self.handle.send(AgentMsg::Job(job)).is_err() {
            return Err(CallError::NoProc);
        }
        let wait = async {
            match rx.await {
                Ok(v) => Ok(v),
                Err(_) => Err(CallError::Exit(self.handle.wait_exit().await)),
            }
        };
        crate::deadline::timeout(timeout, wait)
            .await
            .unwrap_or(Err(CallError::Timeout))
    }

    /// Returns `f(&value)` (`Agent.get`).
    pub async fn get<T, F>(&self, f: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&S) -> T + Send + 'static,
    {
        self.call(move |s| f(s), DEFAULT_CALL_TIMEOUT).await
    }

    /// Like [`get`](Self::get) with a timeout.
    pub async fn get_timeout<T, F>(&self, f: F, timeout: Duration) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&S) -> T + Send + 'static,
    {
        self.call(move |s| f(s), timeout).await
    }

    /// Changes the value with `f` and waits until it is done (`Agent.update`).
    pub async fn update<F>(&self, f: F) -> Result<(), CallError>
    where
        F: FnOnce(&mut S) + Send + 'static,
    {
        self.call(f, DEFAULT_CALL_TIMEOUT).await
    }

    /// Changes the value and returns a result computed from it, in one step
    /// (`Agent.get_and_update`).
    pub async fn get_and_update<T, F>(&self, f: F) -> Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(&mut S) -> T + Send + 'static,
    {
        self.call(f, DEFAULT_CALL_TIMEOUT).await
    }

    /// Changes the value with `f` without waiting (`Agent.cast`); never fails.
    pub fn cast<F>(&self, f: F)
    where
        F: FnOnce(&mut S) + Send + 'static,
    {
        let _ = self.handle.send(AgentMsg::Job(Box::new(f)));
    }

    /// Stops the agent with `reason` after the queued functions and waits up to
    /// `timeout` for it to exit.
    pub async fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), CallError> {
        if self.handle.send(AgentMsg::Stop(reason)).is_err() {
            return Err(CallError::NoProc);
        }
        crate::deadline::timeout(timeout, self.handle.wait_exit())
            .await
            .map(|_| ())
            .map_err(|_| CallError::Timeout)
    }
}
