//! Producer_consumers: stages that handle events from their producers and emit events
//! to their consumers.
//!
//! Input is handled only while the consumers downstream have demand: a message that
//! arrives when they have none waits in the stage's queue (with any cancel behind it,
//! so order is kept), and the stage's asks upstream stop with it — that is how
//! backpressure crosses the stage. What `handle_events` emits beyond the downstream
//! demand waits in the buffer (unbounded by default, as in GenStage, since the upstream
//! demand already bounds it by `max_demand`).

use std::future::Future;

use super::buffer::BufferKeep;
use super::dispatcher::Dispatcher;
use super::engine::{self, Behaviour, Ctx, EngineOptions};
use super::error::StartError;
use super::producer::unexpected;
use super::stage_ref::StageRef;
use super::subscription::{Cancel, ConsumerId, ProducerRef, SubscribeOptions, Subscription};
use super::{StageContext, StageKind, SubscribeMode};
use crate::exit::ExitReason;
use crate::signal::Message;

/// The context a producer_consumer's callbacks get.
pub type ProducerConsumerContext<P> = StageContext<
    <P as ProducerConsumer>::In,
    <P as ProducerConsumer>::Out,
    <P as ProducerConsumer>::Info,
>;

/// A stage between producers and consumers: `handle_events` turns input batches into
/// output events.
pub trait ProducerConsumer: Send + Sized + 'static {
    /// The events it takes.
    type In: Send + 'static;
    /// The events it emits.
    type Out: Send + 'static;
    /// Plain messages for `handle_info` (use `()` if none).
    type Info: Send + 'static;

    /// Runs in the new process before `start_producer_consumer` returns.
    fn init(
        &mut self,
        _ctx: &mut ProducerConsumerContext<Self>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        async { Ok(()) }
    }

    /// A batch of input; returns the events to emit.
    fn handle_events(
        &mut self,
        events: Vec<Self::In>,
        from: &Subscription,
        ctx: &mut ProducerConsumerContext<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, ExitReason>> + Send;

    /// This stage subscribed to a producer: automatic (default) or manual demand.
    fn handle_producer_subscribe(
        &mut self,
        _from: &Subscription,
        _ctx: &mut ProducerConsumerContext<Self>,
    ) -> impl Future<Output = Result<SubscribeMode, ExitReason>> + Send {
        async { Ok(SubscribeMode::Automatic) }
    }

    /// A consumer subscribed to this stage.
    fn handle_consumer_subscribe(
        &mut self,
        _consumer: ConsumerId,
        _ctx: &mut ProducerConsumerContext<Self>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        async { Ok(()) }
    }

    /// A subscription to one of its producers ended; the cancel mode applies after.
    fn handle_producer_cancel(
        &mut self,
        _cancel: Cancel,
        _from: &Subscription,
        _ctx: &mut ProducerConsumerContext<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, ExitReason>> + Send {
        async { Ok(Vec::new()) }
    }

    /// One of its consumers' subscriptions ended.
    fn handle_consumer_cancel(
        &mut self,
        _cancel: Cancel,
        _consumer: ConsumerId,
        _ctx: &mut ProducerConsumerContext<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, ExitReason>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Plain messages, trapped exits and `DOWN`s of monitors it set itself.
    fn handle_info(
        &mut self,
        msg: Message<Self::Info>,
        ctx: &mut ProducerConsumerContext<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Out>, ExitReason>> + Send {
        let pid = ctx.pid();
        async move {
            unexpected(pid, &msg);
            Ok(Vec::new())
        }
    }

    /// Runs when the stage stops.
    fn terminate(
        &mut self,
        _reason: &ExitReason,
        _ctx: &mut ProducerConsumerContext<Self>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// `dropped` events were discarded from a full buffer; false skips the warning.
    fn format_discarded(&mut self, _dropped: usize) -> bool {
        true
    }
}

/// How a producer_consumer starts.
pub struct ProducerConsumerOptions<I, O> {
    pub(crate) inner: EngineOptions<I, O>,
}

impl<I: Send + 'static, O: Send + 'static> Default for ProducerConsumerOptions<I, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Send + 'static, O: Send + 'static> ProducerConsumerOptions<I, O> {
    /// DemandDispatcher, unbounded buffer, no subscriptions.
    pub fn new() -> Self {
        ProducerConsumerOptions {
            inner: EngineOptions::default(),
        }
    }

    /// How events are shared among consumers.
    pub fn dispatcher(mut self, d: impl Dispatcher<O>) -> Self {
        self.inner.dispatcher = Some(Box::new(d));
        self
    }

    /// Bound the buffer (default unbounded).
    pub fn buffer_size(mut self, n: usize) -> Self {
        self.inner.buffer_size = Some(n);
        self
    }

    /// Which events a full buffer keeps (default the last).
    pub fn buffer_keep(mut self, keep: BufferKeep) -> Self {
        self.inner.buffer_keep = keep;
        self
    }

    /// Subscribe to `producer` while starting.
    pub fn subscribe_to(mut self, producer: &ProducerRef<I>, opts: SubscribeOptions<I>) -> Self {
        self.inner.subscribe_to.push((producer.clone(), opts));
        self
    }

    /// Subscribe, while starting, to the producer registered as `name`, looked up at
    /// each start: under a supervisor a restarted stage subscribes to whichever
    /// producer holds the name now (GenStage's `subscribe_to: [name]`). The start fails
    /// when no producer of this event type is registered as `name`.
    pub fn subscribe_to_name(mut self, name: impl Into<String>, opts: SubscribeOptions<I>) -> Self {
        self.inner.subscribe_to_names.push((name.into(), opts));
        self
    }

    /// Register the stage under `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.inner.name = Some(name.into());
        self
    }

    /// Link the stage to the caller (which must be a process).
    pub fn link(mut self) -> Self {
        self.inner.link = true;
        self
    }
}

/// Starts a producer_consumer and waits for its `init` and subscriptions.
pub async fn start_producer_consumer<P: ProducerConsumer>(
    stage: P,
    opts: ProducerConsumerOptions<P::In, P::Out>,
) -> Result<StageRef<P::In, P::Out, P::Info>, StartError> {
    engine::start(AsProducerConsumer(stage), opts.inner).await
}

pub(crate) struct AsProducerConsumer<P>(P);

impl<P: ProducerConsumer> Behaviour for AsProducerConsumer<P> {
    type In = P::In;
    type Out = P::Out;
    type Info = P::Info;
    const KIND: StageKind = StageKind::ProducerConsumer;

    fn init(&mut self, ctx: &mut Ctx<Self>) -> impl Future<Output = Result<(), ExitReason>> + Send {
        self.0.init(ctx)
    }
    async fn handle_demand(
        &mut self,
        _n: usize,
        _ctx: &mut Ctx<Self>,
    ) -> Result<Vec<P::Out>, ExitReason> {
        Ok(Vec::new())
    }
    fn handle_events(
        &mut self,
        events: Vec<P::In>,
        from: &Subscription,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<P::Out>, ExitReason>> + Send {
        self.0.handle_events(events, from, ctx)
    }
    fn handle_consumer(
        &mut self,
        peer: ConsumerId,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        self.0.handle_consumer_subscribe(peer, ctx)
    }
    fn handle_producer(
        &mut self,
        sub: &Subscription,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<SubscribeMode, ExitReason>> + Send {
        self.0.handle_producer_subscribe(sub, ctx)
    }
    fn cancel_consumer(
        &mut self,
        cancel: Cancel,
        peer: ConsumerId,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<P::Out>, ExitReason>> + Send {
        self.0.handle_consumer_cancel(cancel, peer, ctx)
    }
    fn cancel_producer(
        &mut self,
        cancel: Cancel,
        sub: &Subscription,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<P::Out>, ExitReason>> + Send {
        self.0.handle_producer_cancel(cancel, sub, ctx)
    }
    fn handle_info(
        &mut self,
        msg: Message<P::Info>,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<P::Out>, ExitReason>> + Send {
        self.0.handle_info(msg, ctx)
    }
    fn terminate(
        &mut self,
        reason: &ExitReason,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = ()> + Send {
        self.0.terminate(reason, ctx)
    }
    fn format_discarded(&mut self, dropped: usize) -> bool {
        self.0.format_discarded(dropped)
    }
}
