//! The stage process: its messages, its context, and the receive loop every kind of
//! stage runs.
//!
//! One loop serves producers, producer_consumers and consumers. Each kind is a
//! [`Behaviour`] (an adapter over the user's trait) with an optional producer side
//! (dispatcher, buffer, demand mode; see `producer.rs`) and a consumer side
//! (subscriptions and their demand; see `consumer.rs`). A message flows:
//! receive → route (protocol message, user message, exit or DOWN) → the callback →
//! dispatch what it emitted → send asks → pump (drain the buffer, handle queued input,
//! ask `handle_demand` for new demand) → publish counters.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::buffer::{Buffer, BufferKeep};
use super::demand::{DemandCounter, DemandMode};
use super::dispatcher::{DemandDispatcher, Dispatcher};
use super::error::{StartError, SubscribeError};
use super::stage_ref::{StageRef, StageStats};
use super::subscription::{
    Cancel, CancelKind, CancelMode, ConsumerId, EventSink, PortRequest, ProducerPort, ProducerRef,
    SubscribeOptions, SubscribeRequest, Subscription, Upstream,
};
use super::{StageKind, SubscribeMode};
use crate::error::Error;
use crate::exit::ExitReason;
use crate::pid::{Pid, Ref};
use crate::process::{self, Context, Handle, Spawn};
use crate::signal::Message;

/// What travels in a stage's mailbox: `I` events in, `O` events out, `M` user messages.
pub(crate) enum StageMsg<I, O, M> {
    /// A consumer subscribes to this producer.
    Subscribe(Box<SubscribeRequest<O>>),
    /// A consumer asks for more events.
    Ask { tag: Ref, n: usize },
    /// A consumer cancels its subscription.
    CancelUp { tag: Ref, reason: ExitReason },
    /// Events from one of this consumer's producers.
    Events { tag: Ref, events: Vec<I> },
    /// A producer cancelled (or refused) one of this consumer's subscriptions.
    CancelDown {
        tag: Ref,
        kind: CancelKind,
        reason: ExitReason,
    },
    /// Subscribe this consumer to a producer (`StageRef::subscribe`, `subscribe_to`).
    SubscribeTo(Box<SubscribeTo<I>>),
    /// Set the demand mode.
    Demand(DemandMode),
    /// Read the demand mode (`None` for a consumer).
    GetDemand(oneshot::Sender<Option<DemandMode>>),
    /// Hand out this producer's port (`ProducerRef::from_pid`).
    Port(oneshot::Sender<Option<Arc<dyn ProducerPort<O>>>>),
    /// The dispatcher has demand that arose while dispatching (a broadcast selector
    /// rejected events): forward it after the mailbox had its turn, as GenStage's
    /// self-sent ask.
    Pump,
    /// A user message for `handle_info`.
    Info(M),
    /// Stop with this reason.
    Stop(ExitReason),
}

/// A request to subscribe this consumer (boxed: it is large and rare, and the mailbox
/// holds `StageMsg`s by value).
pub(crate) struct SubscribeTo<I> {
    pub(crate) to: ProducerRef<I>,
    pub(crate) opts: SubscribeOptions<I>,
    pub(crate) reply: Option<oneshot::Sender<Result<Subscription, SubscribeError>>>,
}

/// The callbacks one kind of stage runs; implemented by adapters over the public
/// `Producer`, `ProducerConsumer` and `Consumer` traits.
pub(crate) trait Behaviour: Send + Sized + 'static {
    type In: Send + 'static;
    type Out: Send + 'static;
    type Info: Send + 'static;
    const KIND: StageKind;

    fn init(&mut self, ctx: &mut Ctx<Self>) -> impl Future<Output = Result<(), ExitReason>> + Send;
    fn handle_demand(
        &mut self,
        n: usize,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, ExitReason>> + Send;
    fn handle_events(
        &mut self,
        events: Vec<Self::In>,
        from: &Subscription,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, ExitReason>> + Send;
    /// A consumer subscribed to this stage.
    fn handle_consumer(
        &mut self,
        peer: ConsumerId,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send;
    /// This stage subscribed to a producer.
    fn handle_producer(
        &mut self,
        sub: &Subscription,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<SubscribeMode, ExitReason>> + Send;
    fn cancel_consumer(
        &mut self,
        cancel: Cancel,
        peer: ConsumerId,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, ExitReason>> + Send;
    fn cancel_producer(
        &mut self,
        cancel: Cancel,
        sub: &Subscription,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, ExitReason>> + Send;
    fn handle_info(
        &mut self,
        msg: Message<Self::Info>,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, ExitReason>> + Send;
    fn terminate(
        &mut self,
        reason: &ExitReason,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = ()> + Send;
    fn format_discarded(&mut self, _dropped: usize) -> bool {
        true
    }
}

pub(crate) type Ctx<B> =
    StageContext<<B as Behaviour>::In, <B as Behaviour>::Out, <B as Behaviour>::Info>;

/// A stage's side of its process, handed to every callback: its pid, a reference to
/// itself, timers, and (for producers) the demand not yet met.
pub struct StageContext<I, O, M> {
    pub(crate) proc: Context<StageMsg<I, O, M>>,
    pub(crate) stats: Arc<StageStats>,
    pub(crate) parent: Option<Pid>,
    /// Demand given to `handle_demand` and not yet met by emitted events.
    pub(crate) unmet: usize,
}

impl<I: Send + 'static, O: Send + 'static, M: Send + 'static> StageContext<I, O, M> {
    /// The stage's pid.
    pub fn pid(&self) -> Pid {
        self.proc.pid()
    }

    /// A reference to this stage (to hand out, or to send itself messages).
    pub fn stage_ref(&self) -> StageRef<I, O, M> {
        StageRef {
            handle: self.proc.handle(),
            stats: self.stats.clone(),
        }
    }

    /// The process that started this stage linked to itself, if any.
    pub fn parent(&self) -> Option<Pid> {
        self.parent
    }

    /// Turns exit signals into `handle_info(Message::Exit)`.
    pub fn trap_exit(&self, on: bool) {
        self.proc.trap_exit(on)
    }

    /// Sends `msg` to this stage's `handle_info` after `delay`.
    pub fn send_after(&self, msg: M, delay: Duration) -> Result<crate::TimerRef, Error> {
        crate::timer::send_after(&self.proc.handle(), StageMsg::Info(msg), delay)
    }

    /// For producers: events asked of `handle_demand` and not yet emitted. A producer
    /// that had nothing to emit may emit up to this many later (from `handle_info`)
    /// without waiting for a new ask; they go straight to the waiting consumers (if one
    /// of them cancelled meanwhile, its share waits in the buffer, as in GenStage).
    pub fn pending_demand(&self) -> usize {
        self.unmet
    }
}

/// The producer side of a stage.
pub(crate) struct ProducerSide<O> {
    pub(crate) dispatcher: Box<dyn Dispatcher<O>>,
    pub(crate) consumers: Vec<ConsumerEntry<O>>,
    pub(crate) buffer: Buffer<O>,
    pub(crate) mode: DemandMode,
    /// Demand and events while accumulating, in the order they came.
    pub(crate) held: VecDeque<Held<O>>,
    /// Events in `held`.
    pub(crate) held_len: usize,
    /// Demand the dispatcher returned (on asks and cancels) not yet served from the
    /// buffer or asked of `handle_demand` (producers only).
    pub(crate) owed: usize,
    /// A `Pump` message is on its way.
    pub(crate) pump_queued: bool,
}

/// What a producer in [`DemandMode::Accumulate`] holds, replayed in order on `Forward`
/// (as GenStage's `{:demand, n}` and `{:dispatch, events}`).
pub(crate) enum Held<O> {
    Demand(usize),
    Events(Vec<O>),
}

pub(crate) struct ConsumerEntry<O> {
    pub(crate) tag: Ref,
    pub(crate) monitor: Ref,
    pub(crate) sink: Arc<dyn EventSink<O>>,
}

/// The consumer side of a stage: its subscriptions, and (producer_consumer) input held
/// until there is downstream demand.
pub(crate) struct ConsumerSide<I> {
    pub(crate) subs: Vec<ProducerEntry>,
    pub(crate) queue: VecDeque<Queued<I>>,
    pub(crate) queued_events: usize,
}

pub(crate) struct ProducerEntry {
    pub(crate) sub: Subscription,
    pub(crate) cancel: CancelMode,
    /// `None`: manual demand.
    pub(crate) demand: Option<DemandCounter>,
}

pub(crate) enum Queued<I> {
    Events(Ref, Vec<I>),
    Cancel(Ref, CancelKind, ExitReason),
}

/// Options every kind of stage starts with (the public option types fill it in).
pub(crate) struct EngineOptions<I, O> {
    pub(crate) dispatcher: Option<Box<dyn Dispatcher<O>>>,
    pub(crate) buffer_size: Option<usize>,
    pub(crate) buffer_keep: BufferKeep,
    pub(crate) demand: DemandMode,
    pub(crate) subscribe_to: Vec<(ProducerRef<I>, SubscribeOptions<I>)>,
    /// Producers to subscribe to by registered name, looked up at each start.
    pub(crate) subscribe_to_names: Vec<(String, SubscribeOptions<I>)>,
    pub(crate) name: Option<String>,
    pub(crate) link: bool,
}

impl<I, O> Default for EngineOptions<I, O> {
    fn default() -> Self {
        EngineOptions {
            dispatcher: None,
            buffer_size: None,
            buffer_keep: BufferKeep::Last,
            demand: DemandMode::Forward,
            subscribe_to: Vec::new(),
            subscribe_to_names: Vec::new(),
            name: None,
            link: false,
        }
    }
}

/// A running stage: the user's state, its context, and both sides.
pub(crate) struct Engine<B: Behaviour> {
    pub(crate) b: B,
    pub(crate) ctx: Ctx<B>,
    pub(crate) prod: Option<ProducerSide<B::Out>>,
    pub(crate) cons: ConsumerSide<B::In>,
    pub(crate) events_in: u64,
    pub(crate) events_out: u64,
    pub(crate) dropped: u64,
}

pub(crate) type Step = Result<(), ExitReason>;

fn adapt<I: Send + 'static, O: Send + 'static, M: Send + 'static>(
    msg: Box<dyn Any + Send>,
) -> Result<StageMsg<I, O, M>, Box<dyn Any + Send>> {
    let msg = match msg.downcast::<M>() {
        Ok(m) => return Ok(StageMsg::Info(*m)),
        Err(other) => other,
    };
    match msg.downcast::<PortRequest<O>>() {
        Ok(p) => Ok(StageMsg::Port(p.0)),
        Err(other) => Err(other),
    }
}

/// Spawns a stage and waits for its `init` (and its `subscribe_to` subscriptions).
pub(crate) async fn start<B: Behaviour>(
    b: B,
    mut opts: EngineOptions<B::In, B::Out>,
) -> Result<StageRef<B::In, B::Out, B::Info>, StartError> {
    for (name, o) in std::mem::take(&mut opts.subscribe_to_names) {
        // The producer answers with its port; a busy one may not in time.
        let found = tokio::time::timeout(o.timeout, ProducerRef::whereis(&name))
            .await
            .unwrap_or(Err(SubscribeError::Timeout));
        match found {
            Ok(to) => opts.subscribe_to.push((to, o)),
            Err(e) => {
                return Err(StartError::Init(ExitReason::error(format!(
                    "cannot subscribe to the producer registered as {name:?}: {e}; start it first (earlier in the supervisor's children)"
                ))))
            }
        }
    }
    let (ack_tx, ack_rx) = oneshot::channel();
    let parent = if opts.link { process::self_pid() } else { None };
    let mut spawn = Spawn::new().label(B::KIND.label());
    if opts.link {
        spawn = spawn.link();
    }
    let stats = Arc::new(StageStats::new(B::KIND));
    let st = stats.clone();
    let handle = process::spawn_with(spawn, Some(adapt::<B::In, B::Out, B::Info>), move |proc| {
        run(b, proc, st, parent, opts, ack_tx)
    })?;
    match ack_rx.await {
        Ok(Ok(())) => Ok(StageRef { handle, stats }),
        Ok(Err(reason)) => Err(StartError::Init(reason)),
        Err(_) => Err(StartError::Init(handle.wait_exit().await)),
    }
}

async fn run<B: Behaviour>(
    b: B,
    proc: Context<StageMsg<B::In, B::Out, B::Info>>,
    stats: Arc<StageStats>,
    parent: Option<Pid>,
    mut opts: EngineOptions<B::In, B::Out>,
    ack: oneshot::Sender<Result<(), ExitReason>>,
) -> ExitReason {
    let prod = B::KIND.produces().then(|| ProducerSide {
        dispatcher: opts
            .dispatcher
            .take()
            .unwrap_or_else(|| Box::new(DemandDispatcher::new())),
        consumers: Vec::new(),
        buffer: Buffer::new(
            match B::KIND {
                StageKind::Producer => Some(opts.buffer_size.unwrap_or(10_000)),
                _ => opts.buffer_size,
            },
            opts.buffer_keep,
        ),
        mode: if B::KIND == StageKind::Producer {
            opts.demand
        } else {
            DemandMode::Forward
        },
        held: VecDeque::new(),
        held_len: 0,
        owed: 0,
        pump_queued: false,
    });
    let mut e = Engine {
        b,
        ctx: StageContext {
            proc,
            stats,
            parent,
            unmet: 0,
        },
        prod,
        cons: ConsumerSide {
            subs: Vec::new(),
            queue: VecDeque::new(),
            queued_events: 0,
        },
        events_in: 0,
        events_out: 0,
        dropped: 0,
    };
    // Makes the stage reachable as a `StageRef` from its pid and name; dropped with it.
    let _ = crate::attachment::attach(e.ctx.pid(), Box::new(e.ctx.stats.clone()));
    if let Some(n) = &opts.name {
        if let Err(err) = crate::registry::register(n, e.ctx.pid()) {
            let reason = ExitReason::error(err.to_string());
            let _ = ack.send(Err(reason.clone()));
            return reason;
        }
    }
    let init = async {
        e.b.init(&mut e.ctx).await?;
        for (to, o) in std::mem::take(&mut opts.subscribe_to) {
            e.subscribe_to(to, o, None).await?;
        }
        Ok::<(), ExitReason>(())
    };
    if let Err(reason) = init.await {
        if let Some(p) = parent {
            let _ = crate::signal::unlink(p);
        }
        let _ = ack.send(Err(reason.clone()));
        return reason;
    }
    let _ = ack.send(Ok(()));
    e.publish();
    let reason = loop {
        let msg = e.ctx.proc.recv().await;
        if let Err(reason) = e.handle(msg).await {
            break reason;
        }
        e.publish();
    };
    e.publish();
    e.b.terminate(&reason, &mut e.ctx).await;
    reason
}

impl<B: Behaviour> Engine<B> {
    /// Routes one message, then pumps.
    async fn handle(&mut self, msg: Message<StageMsg<B::In, B::Out, B::Info>>) -> Step {
        match msg {
            Message::Msg(m) => match m {
                StageMsg::Events { tag, events } => self.on_events(tag, events).await?,
                StageMsg::Ask { tag, n } => self.on_ask(tag, n),

                StageMsg::Subscribe(req) => self.on_subscribe(*req).await?,
                StageMsg::CancelUp { tag, reason } => {
                    self.producer_cancel(tag, CancelKind::Cancel, reason, true)
                        .await?
                }
                StageMsg::CancelDown { tag, kind, reason } => {
                    self.consumer_cancel(tag, kind, reason).await?
                }
                StageMsg::SubscribeTo(s) => {
                    let SubscribeTo { to, opts, reply } = *s;
                    self.subscribe_to(to, opts, reply).await?
                }
                StageMsg::Demand(mode) => self.set_demand(mode).await?,
                StageMsg::GetDemand(tx) => {
                    let _ = tx.send(self.prod.as_ref().map(|p| p.mode));
                }
                StageMsg::Port(tx) => {
                    let port = self
                        .prod
                        .as_ref()
                        .map(|_| Arc::new(self.ctx.proc.handle()) as Arc<dyn ProducerPort<B::Out>>);
                    let _ = tx.send(port);
                }
                StageMsg::Pump => {
                    if let Some(p) = self.prod.as_mut() {
                        p.pump_queued = false;
                    }
                }
                StageMsg::Info(m) => {
                    let out = self.b.handle_info(Message::Msg(m), &mut self.ctx).await?;
                    self.emit(out)?;
                }
                StageMsg::Stop(reason) => return Err(reason),
            },
            Message::Exit { from, reason } if Some(from) == self.ctx.parent => return Err(reason),
            Message::Exit { from, reason } => {
                let out = self
                    .b
                    .handle_info(Message::Exit { from, reason }, &mut self.ctx)
                    .await?;
                self.emit(out)?;
            }
            Message::Down(d) => {
                if self.cons.subs.iter().any(|s| s.sub.tag == d.monitor) {
                    self.consumer_cancel(d.monitor, CancelKind::Down, d.reason)
                        .await?;
                } else if let Some(tag) = self.consumer_by_monitor(d.monitor) {
                    self.producer_cancel(tag, CancelKind::Down, d.reason, false)
                        .await?;
                } else {
                    let out = self.b.handle_info(Message::Down(d), &mut self.ctx).await?;
                    self.emit(out)?;
                }
            }
        }
        self.pump().await
    }

    fn consumer_by_monitor(&self, monitor: Ref) -> Option<Ref> {
        let p = self.prod.as_ref()?;
        p.consumers
            .iter()
            .find(|c| c.monitor == monitor)
            .map(|c| c.tag)
    }

    /// Copies the counters where `StageRef::info` reads them.
    pub(crate) fn publish(&self) {
        let (buffered, pending, consumers, mode) = match &self.prod {
            Some(p) => (
                p.buffer.len() + p.held_len + p.dispatcher.queued(),
                p.dispatcher.capacity(),
                p.consumers.len(),
                Some(p.mode),
            ),
            None => (0, 0, 0, None),
        };
        let upstream: usize = self
            .cons
            .subs
            .iter()
            .filter_map(|s| s.demand.map(|d| d.outstanding()))
            .sum();
        if crate::telemetry::enabled() {
            let stage = self.ctx.proc.pid();
            crate::telemetry::execute(
                &["orbit", "stage", "demand"],
                &[
                    ("buffered", (buffered + self.cons.queued_events) as f64),
                    ("pending_demand", pending as f64),
                    ("upstream_demand", upstream as f64),
                    ("events_in", self.events_in as f64),
                    ("events_out", self.events_out as f64),
                ],
                &[("stage", &stage)],
            );
        }
        self.ctx.stats.publish(
            buffered + self.cons.queued_events,
            pending,
            upstream,
            self.events_in,
            self.events_out,
            self.dropped,
            consumers,
            self.cons.subs.len(),
            mode,
        );
    }
}

impl<I: Send + 'static, O: Send + 'static, M: Send + 'static> EventSink<I>
    for Handle<StageMsg<I, O, M>>
{
    fn pid(&self) -> Pid {
        Handle::pid(self)
    }
    #[inline]
    fn send_events(&self, tag: Ref, events: Vec<I>) -> bool {
        if crate::telemetry::enabled() {
            let n = events.len() as f64;
            let producer = crate::self_pid().unwrap_or(Pid::NONE);
            crate::telemetry::execute(
                &["orbit", "stage", "dispatch"],
                &[("events", n)],
                &[("producer", &producer)],
            );
        }
        self.send(StageMsg::Events { tag, events }).is_ok()
    }
    fn send_cancel(&self, tag: Ref, kind: CancelKind, reason: ExitReason) -> bool {
        self.send(StageMsg::CancelDown { tag, kind, reason })
            .is_ok()
    }
}

impl<I: Send + 'static, O: Send + 'static, M: Send + 'static> Upstream
    for Handle<StageMsg<I, O, M>>
{
    fn pid(&self) -> Pid {
        Handle::pid(self)
    }
    fn is_alive(&self) -> bool {
        Handle::is_alive(self)
    }
    #[inline]
    fn ask(&self, tag: Ref, n: usize) -> bool {
        self.send(StageMsg::Ask { tag, n }).is_ok()
    }
    fn cancel(&self, tag: Ref, reason: ExitReason) -> bool {
        self.send(StageMsg::CancelUp { tag, reason }).is_ok()
    }
}

impl<I: Send + 'static, O: Send + 'static, M: Send + 'static> ProducerPort<O>
    for Handle<StageMsg<I, O, M>>
{
    fn subscribe(&self, req: Box<SubscribeRequest<O>>) -> Result<(), Box<SubscribeRequest<O>>> {
        self.send(StageMsg::Subscribe(req))
            .map_err(|e| match e.msg {
                StageMsg::Subscribe(req) => req,
                // We sent a Subscribe and got the same message back.
                _ => unreachable!("send returns the message it was given"),
            })
    }
    fn upstream(&self) -> Arc<dyn Upstream> {
        Arc::new(self.clone())
    }
    fn wait_exit(&self) -> futures::future::BoxFuture<'_, ExitReason> {
        Box::pin(Handle::wait_exit(self))
    }
}
