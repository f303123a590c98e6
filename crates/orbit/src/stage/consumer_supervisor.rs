//! ConsumerSupervisor: a consumer that starts one child process per event.
//!
//! As Elixir's `ConsumerSupervisor`: each event becomes the argument of a new child
//! (one_for_one; restart `Temporary` or `Transient` only). The supervisor subscribes
//! with manual demand, asks `max_demand` at once, and asks again as children finish:
//! once the number of finished children not yet re-asked reaches `min_demand`, it asks
//! for that many. So at most `max_demand` children run per subscription. A transient
//! child that exits abnormally is restarted with the same event (and keeps its slot);
//! more than `max_restarts` restarts within `max_seconds` shut the supervisor down.
//!
//! Children are managed directly with links (the supervisor traps exits); start them
//! linked to the calling process ([`ConsumerChildSpec::task`] does, or use `spawn_link` /
//! `start_link` in [`ConsumerChildSpec::new`]). When the supervisor stops, its children get a
//! `shutdown` exit signal (`kill` after 5 s) and it exits once they all have.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::consumer::{Consumer, ConsumerContext};
use super::subscription::{Cancel, Subscription};
use super::SubscribeMode;
use crate::exit::ExitReason;
use crate::pid::{Pid, Ref};
use crate::process::Context;
use crate::signal::Message;

/// When a finished child is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsumerRestart {
    /// Never (the usual choice: one child per event, done when it exits).
    #[default]
    Temporary,
    /// When it exits with a reason other than `normal`/`shutdown`/`{shutdown, _}`.
    Transient,
}

type StartFn<E> = Arc<dyn Fn(E) -> Result<Pid, ExitReason> + Send + Sync>;

/// How the supervisor starts a child for an event.
pub struct ConsumerChildSpec<E> {
    start: StartFn<E>,
    restart: ConsumerRestart,
    max_restarts: usize,
    max_seconds: Duration,
}

impl<E: Send + 'static> ConsumerChildSpec<E> {
    /// Children started by `start`, called in the supervisor's process with the event;
    /// it must start the child linked to the caller (`spawn_link`, `start_link`).
    pub fn new(start: impl Fn(E) -> Result<Pid, ExitReason> + Send + Sync + 'static) -> Self {
        ConsumerChildSpec {
            start: Arc::new(start),
            restart: ConsumerRestart::Temporary,
            max_restarts: 3,
            max_seconds: Duration::from_secs(5),
        }
    }

    /// Each child is a process running `f(event)`; its output is its exit reason.
    pub fn task<F, Fut>(f: F) -> Self
    where
        F: Fn(E) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Into<ExitReason>,
    {
        Self::new(move |e| {
            let fut = f(e);
            crate::spawn_link(move |_ctx: Context<()>| fut)
                .map(|h| h.pid())
                .map_err(|err| ExitReason::error(err.to_string()))
        })
    }

    /// ConsumerRestart policy (default `Temporary`).
    pub fn restart(mut self, r: ConsumerRestart) -> Self {
        self.restart = r;
        self
    }

    /// ConsumerRestart intensity: more than `n` restarts within `within` shut the supervisor
    /// down (default 3 in 5 s).
    pub fn max_restarts(mut self, n: usize, within: Duration) -> Self {
        self.max_restarts = n;
        self.max_seconds = within;
        self
    }
}

/// Requests a ConsumerSupervisor answers (its `Info` type).
#[derive(Debug)]
pub enum SupervisorRequest {
    /// How many children are running.
    CountChildren(oneshot::Sender<usize>),
    /// The running children.
    WhichChildren(oneshot::Sender<Vec<Pid>>),
}

struct Child<E> {
    tag: Ref,
    /// Kept for a transient child's restart.
    event: Option<E>,
}

struct ProducerDemand {
    sub: Subscription,
    /// Children running for this subscription.
    count: usize,
    /// Finished children not yet asked for again.
    pending: usize,
}

/// A consumer that starts one child per event; start it with
/// [`start_consumer`](super::start_consumer).
pub struct ConsumerSupervisor<E> {
    spec: ConsumerChildSpec<E>,
    children: HashMap<Pid, Child<E>>,
    producers: HashMap<Ref, ProducerDemand>,
    restarts: VecDeque<Instant>,
}

impl<E: Clone + Send + 'static> ConsumerSupervisor<E> {
    /// A supervisor starting children by `spec`.
    pub fn new(spec: ConsumerChildSpec<E>) -> Self {
        ConsumerSupervisor {
            spec,
            children: HashMap::new(),
            producers: HashMap::new(),
            restarts: VecDeque::new(),
        }
    }

    fn start(&mut self, tag: Ref, event: E) -> bool {
        let keep = (self.spec.restart == ConsumerRestart::Transient).then(|| event.clone());
        match (self.spec.start)(event) {
            Ok(pid) => {
                // Make sure the child is linked, whatever `start` did.
                let _ = crate::signal::link(pid);
                self.children.insert(pid, Child { tag, event: keep });
                true
            }
            Err(reason) => {
                tracing::error!(%reason, "ConsumerSupervisor failed to start a child");
                false
            }
        }
    }

    fn maybe_ask(&mut self, tag: Ref, started: usize, down: usize) {
        let Some(p) = self.producers.get_mut(&tag) else {
            return;
        };
        if p.count + started > p.sub.max_demand() {
            tracing::error!(
                excess = p.count + started - p.sub.max_demand(),
                "ConsumerSupervisor received events in excess"
            );
        }
        let ask = p.pending + down;
        if ask >= p.sub.min_demand().max(1) {
            p.sub.ask(ask);
            p.pending = 0;
        } else {
            p.pending = ask;
        }
        p.count = (p.count + started).saturating_sub(down);
    }

    /// ConsumerRestart intensity check: false once too many restarts happened too fast.
    fn may_restart(&mut self) -> bool {
        let now = Instant::now();
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.spec.max_seconds)
        {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.spec.max_restarts
    }

    fn child_exited(&mut self, pid: Pid, reason: ExitReason) -> Result<(), ExitReason> {
        let Some(child) = self.children.remove(&pid) else {
            return Ok(());
        };
        if let (Some(event), false) = (child.event, reason.is_clean()) {
            if !self.may_restart() {
                tracing::error!(%reason, "ConsumerSupervisor reached its restart intensity; shutting down");
                return Err(ExitReason::Shutdown);
            }
            if self.start(child.tag, event) {
                return Ok(());
            }
        }
        self.maybe_ask(child.tag, 0, 1);
        Ok(())
    }
}

impl<E: Clone + Send + 'static> Consumer for ConsumerSupervisor<E> {
    type Event = E;
    type Info = SupervisorRequest;

    async fn init(&mut self, ctx: &mut ConsumerContext<Self>) -> Result<(), ExitReason> {
        ctx.trap_exit(true);
        Ok(())
    }

    async fn handle_subscribe(
        &mut self,
        from: &Subscription,
        _ctx: &mut ConsumerContext<Self>,
    ) -> Result<SubscribeMode, ExitReason> {
        from.ask(from.max_demand());
        self.producers.insert(
            from.tag(),
            ProducerDemand {
                sub: from.clone(),
                count: 0,
                pending: 0,
            },
        );
        Ok(SubscribeMode::Manual)
    }

    async fn handle_events(
        &mut self,
        events: Vec<E>,
        from: &Subscription,
        _ctx: &mut ConsumerContext<Self>,
    ) -> Result<(), ExitReason> {
        let n = events.len();
        let mut failed = 0;
        for e in events {
            if !self.start(from.tag(), e) {
                failed += 1;
            }
        }
        self.maybe_ask(from.tag(), n, failed);
        Ok(())
    }

    async fn handle_cancel(
        &mut self,
        _cancel: Cancel,
        from: &Subscription,
        _ctx: &mut ConsumerContext<Self>,
    ) -> Result<(), ExitReason> {
        self.producers.remove(&from.tag());
        Ok(())
    }

    async fn handle_info(
        &mut self,
        msg: Message<SupervisorRequest>,
        _ctx: &mut ConsumerContext<Self>,
    ) -> Result<(), ExitReason> {
        match msg {
            Message::Exit { from, reason } => self.child_exited(from, reason),
            Message::Msg(SupervisorRequest::CountChildren(tx)) => {
                let _ = tx.send(self.children.len());
                Ok(())
            }
            Message::Msg(SupervisorRequest::WhichChildren(tx)) => {
                let _ = tx.send(self.children.keys().copied().collect());
                Ok(())
            }
            Message::Down(_) => Ok(()),
        }
    }

    async fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut ConsumerContext<Self>) {
        // As a supervisor: every child gets `shutdown`, and `kill` if it has not exited
        // after 5 s; the supervisor exits only once all of them have.
        let stops = self.children.keys().map(|pid| {
            crate::supervisor::shutdown_child(*pid, crate::supervisor::DEFAULT_WORKER_SHUTDOWN)
        });
        futures::future::join_all(stops).await;
    }
}
