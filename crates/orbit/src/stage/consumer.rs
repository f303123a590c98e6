//! Consumers: stages that handle events — and the consumer side every consumer and
//! producer_consumer runs.
//!
//! Flow on the consumer side: `subscribe` monitors the producer, calls
//! `handle_subscribe` (automatic or manual demand), sends the subscription and, for
//! automatic demand, asks `max_demand` at once. Each arriving message is cut into
//! batches by the demand algorithm (`demand.rs`); each batch goes to `handle_events`,
//! then what it emitted is dispatched, then the ask (if any) goes upstream. With manual
//! demand the whole message is one batch and nothing is asked for the consumer.
//!
//! When the producer exits (`DOWN`) or cancels, `handle_cancel` runs and the cancel
//! mode decides: `Permanent` exits with the producer's reason, `Transient` exits unless
//! that reason is `normal`/`shutdown`/`{shutdown, _}`, `Temporary` keeps running.
//! Subscribing to a producer that is not alive fails with `noproc`; a permanent or
//! transient consumer then exits with `noproc` too, a temporary one does not.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::demand::{Arrival, DemandCounter};
use super::engine::{self, Behaviour, Ctx, Engine, EngineOptions, ProducerEntry, Queued, Step};
use super::error::{StartError, SubscribeError};
use super::producer::unexpected;
use super::stage_ref::StageRef;
use super::subscription::{
    Ack, Cancel, CancelKind, CancelMode, ConsumerId, ProducerRef, SubscribeOptions,
    SubscribeRequest, Subscriber, Subscription,
};
use super::{NoEvents, StageContext, StageKind, SubscribeMode};
use crate::exit::ExitReason;
use crate::pid::{Pid, Ref};
use crate::signal::Message;

/// The context a consumer's callbacks get.
pub type ConsumerContext<C> = StageContext<<C as Consumer>::Event, NoEvents, <C as Consumer>::Info>;

/// A stage that handles events it asked its producers for.
///
/// Callbacks return `Ok(())` to go on or `Err(reason)` to stop with `reason`.
pub trait Consumer: Send + Sized + 'static {
    /// The events it handles.
    type Event: Send + 'static;
    /// Plain messages for `handle_info` (use `()` if none).
    type Info: Send + 'static;

    /// Runs in the new process before `start_consumer` returns.
    fn init(
        &mut self,
        _ctx: &mut ConsumerContext<Self>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        async { Ok(()) }
    }

    /// A batch of events from the subscription `from` (at most `max_demand -
    /// min_demand` events with automatic demand).
    fn handle_events(
        &mut self,
        events: Vec<Self::Event>,
        from: &Subscription,
        ctx: &mut ConsumerContext<Self>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send;

    /// Subscribing to a producer: `Automatic` demand (the default) or `Manual` (ask
    /// with [`Subscription::ask`]).
    fn handle_subscribe(
        &mut self,
        _from: &Subscription,
        _ctx: &mut ConsumerContext<Self>,
    ) -> impl Future<Output = Result<SubscribeMode, ExitReason>> + Send {
        async { Ok(SubscribeMode::Automatic) }
    }

    /// A subscription ended; the cancel mode applies after this returns.
    fn handle_cancel(
        &mut self,
        _cancel: Cancel,
        _from: &Subscription,
        _ctx: &mut ConsumerContext<Self>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        async { Ok(()) }
    }

    /// Plain messages, trapped exits and `DOWN`s of monitors the consumer set itself.
    fn handle_info(
        &mut self,
        msg: Message<Self::Info>,
        ctx: &mut ConsumerContext<Self>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        let pid = ctx.pid();
        async move {
            unexpected(pid, &msg);
            Ok(())
        }
    }

    /// Runs when the stage stops by a callback's `Err`, a cancel, `stop`, or its
    /// parent's exit.
    fn terminate(
        &mut self,
        _reason: &ExitReason,
        _ctx: &mut ConsumerContext<Self>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// How a consumer starts: producers to subscribe to, name, link.
pub struct ConsumerOptions<T> {
    pub(crate) inner: EngineOptions<T, NoEvents>,
}

impl<T: Send + 'static> Default for ConsumerOptions<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static> ConsumerOptions<T> {
    /// No subscriptions, unnamed, unlinked.
    pub fn new() -> Self {
        ConsumerOptions {
            inner: EngineOptions::default(),
        }
    }

    /// Subscribe to `producer` while starting (GenStage's `subscribe_to`); a
    /// permanent or transient subscription to a dead producer fails the start.
    pub fn subscribe_to(mut self, producer: &ProducerRef<T>, opts: SubscribeOptions<T>) -> Self {
        self.inner.subscribe_to.push((producer.clone(), opts));
        self
    }

    /// Subscribe, while starting, to the producer registered as `name`, looked up at
    /// each start: under a supervisor a restarted stage subscribes to whichever
    /// producer holds the name now (GenStage's `subscribe_to: [name]`). The start fails
    /// when no producer of this event type is registered as `name`.
    pub fn subscribe_to_name(mut self, name: impl Into<String>, opts: SubscribeOptions<T>) -> Self {
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

/// Starts a consumer and waits for its `init` and `subscribe_to` subscriptions.
pub async fn start_consumer<C: Consumer>(
    consumer: C,
    opts: ConsumerOptions<C::Event>,
) -> Result<StageRef<C::Event, NoEvents, C::Info>, StartError> {
    engine::start(AsConsumer(consumer), opts.inner).await
}

pub(crate) struct AsConsumer<C>(C);

impl<C: Consumer> Behaviour for AsConsumer<C> {
    type In = C::Event;
    type Out = NoEvents;
    type Info = C::Info;
    const KIND: StageKind = StageKind::Consumer;

    fn init(&mut self, ctx: &mut Ctx<Self>) -> impl Future<Output = Result<(), ExitReason>> + Send {
        self.0.init(ctx)
    }
    async fn handle_demand(
        &mut self,
        _n: usize,
        _ctx: &mut Ctx<Self>,
    ) -> Result<Vec<NoEvents>, ExitReason> {
        Ok(Vec::new())
    }
    async fn handle_events(
        &mut self,
        events: Vec<C::Event>,
        from: &Subscription,
        ctx: &mut Ctx<Self>,
    ) -> Result<Vec<NoEvents>, ExitReason> {
        self.0
            .handle_events(events, from, ctx)
            .await
            .map(|()| Vec::new())
    }
    async fn handle_consumer(
        &mut self,
        _peer: ConsumerId,
        _ctx: &mut Ctx<Self>,
    ) -> Result<(), ExitReason> {
        Ok(())
    }
    fn handle_producer(
        &mut self,
        sub: &Subscription,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<SubscribeMode, ExitReason>> + Send {
        self.0.handle_subscribe(sub, ctx)
    }
    async fn cancel_consumer(
        &mut self,
        _cancel: Cancel,
        _peer: ConsumerId,
        _ctx: &mut Ctx<Self>,
    ) -> Result<Vec<NoEvents>, ExitReason> {
        Ok(Vec::new())
    }
    async fn cancel_producer(
        &mut self,
        cancel: Cancel,
        sub: &Subscription,
        ctx: &mut Ctx<Self>,
    ) -> Result<Vec<NoEvents>, ExitReason> {
        self.0
            .handle_cancel(cancel, sub, ctx)
            .await
            .map(|()| Vec::new())
    }
    async fn handle_info(
        &mut self,
        msg: Message<C::Info>,
        ctx: &mut Ctx<Self>,
    ) -> Result<Vec<NoEvents>, ExitReason> {
        self.0.handle_info(msg, ctx).await.map(|()| Vec::new())
    }
    fn terminate(
        &mut self,
        reason: &ExitReason,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = ()> + Send {
        self.0.terminate(reason, ctx)
    }
}

type Reply = oneshot::Sender<Result<Subscription, SubscribeError>>;

impl<B: Behaviour> Engine<B> {
    /// Subscribes this stage to `to` (GenStage's `sync_subscribe`, run in the consumer).
    pub(crate) async fn subscribe_to(
        &mut self,
        to: ProducerRef<B::In>,
        opts: SubscribeOptions<B::In>,
        reply: Option<Reply>,
    ) -> Step {
        let me = self.ctx.pid();
        if B::KIND == StageKind::Producer {
            if let Some(r) = reply {
                let _ = r.send(Err(SubscribeError::NotAConsumer(me)));
            }
            return Ok(());
        }
        let (min, max) = match opts.bounds() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%me, error = %e, "subscribe received invalid options");
                if let Some(r) = reply {
                    let _ = r.send(Err(e));
                }
                return Ok(());
            }
        };
        let pid = to.pid();
        let upstream = to.port.upstream();
        if !upstream.is_alive() {
            let sub = Subscription {
                tag: Ref::make(),
                upstream,
                min_demand: min,
                max_demand: max,
            };
            return dead_producer(me, pid, opts.cancel, reply, sub);
        }
        // Inside the stage's own process, so monitoring cannot fail.
        let tag = crate::signal::monitor(pid).unwrap_or_else(|_| Ref::make());
        let sub = Subscription {
            tag,
            upstream,
            min_demand: min,
            max_demand: max,
        };
        let subscriber = Subscriber {
            tag,
            sink: Arc::new(self.ctx.proc.handle()),
            max_demand: max,
            min_demand: min,
            partition: opts.partition,
            selector: opts.selector,
        };
        let ack = reply.map(|tx| Ack {
            tx,
            sub: sub.clone(),
        });
        // The subscription goes out first (GenStage's order), so asks made in
        // `handle_subscribe` reach a producer that knows it.
        if let Err(req) = to
            .port
            .subscribe(Box::new(SubscribeRequest { subscriber, ack }))
        {
            let _ = crate::signal::demonitor(tag, true);
            let reply = req.ack.map(|a| a.tx);
            return dead_producer(me, pid, opts.cancel, reply, sub);
        }
        let mode = self.b.handle_producer(&sub, &mut self.ctx).await?;
        let automatic = mode == SubscribeMode::Automatic;
        if automatic {
            sub.ask(max);
        }
        self.cons.subs.push(ProducerEntry {
            sub,
            cancel: opts.cancel,
            demand: automatic.then(|| DemandCounter::new(min, max)),
        });
        Ok(())
    }

    /// Events from a producer: handled now, or (producer_consumer without downstream
    /// demand) queued until there is demand.
    #[inline]
    pub(crate) async fn on_events(&mut self, tag: Ref, events: Vec<B::In>) -> Step {
        if B::KIND == StageKind::ProducerConsumer {
            let ready = self.cons.queue.is_empty()
                && self
                    .prod
                    .as_ref()
                    .is_some_and(|p| p.buffer.is_empty() && p.dispatcher.capacity() > 0);
            if !ready {
                self.cons.queued_events += events.len();
                self.cons.queue.push_back(Queued::Events(tag, events));
                return Ok(());
            }
        }
        self.consume(tag, events).await
    }

    /// Handles one queued item; false when the queue is empty.
    pub(crate) async fn take_queued(&mut self) -> Result<bool, ExitReason> {
        match self.cons.queue.pop_front() {
            None => Ok(false),
            Some(Queued::Events(tag, events)) => {
                self.cons.queued_events -= events.len();
                self.consume(tag, events).await?;
                Ok(true)
            }
            Some(Queued::Cancel(tag, kind, reason)) => {
                self.invoke_cancel(tag, kind, reason).await?;
                Ok(true)
            }
        }
    }

    /// Splits a message into batches, handles each, and asks after each.
    async fn consume(&mut self, tag: Ref, events: Vec<B::In>) -> Step {
        let Some(i) = self.cons.subs.iter().position(|s| s.sub.tag == tag) else {
            tracing::debug!(pid = %self.ctx.pid(), "events for an unknown subscription dropped");
            return Ok(());
        };
        self.events_in += events.len() as u64;
        let sub = self.cons.subs[i].sub.clone();
        let Some(mut counter) = self.cons.subs[i].demand else {
            let out = self.b.handle_events(events, &sub, &mut self.ctx).await?;
            return self.emit(out);
        };
        let mut arrival = counter.arrive();
        let limit = counter.batch_limit();
        let result = if events.len() <= limit {
            self.batch(&sub, events, &mut counter, &mut arrival).await
        } else {
            let mut it = events.into_iter();
            loop {
                let batch: Vec<B::In> = it.by_ref().take(limit).collect();
                if batch.is_empty() {
                    break Ok(());
                }
                if let Err(e) = self.batch(&sub, batch, &mut counter, &mut arrival).await {
                    break Err(e);
                }
            }
        };
        if let Some(s) = self.cons.subs.iter_mut().find(|s| s.sub.tag == tag) {
            s.demand = Some(counter);
        }
        result
    }

    #[inline]
    async fn batch(
        &mut self,
        sub: &Subscription,
        batch: Vec<B::In>,
        counter: &mut DemandCounter,
        arrival: &mut Arrival,
    ) -> Step {
        let (b, excess) = counter.next_batch(arrival, batch.len());
        if excess > 0 {
            tracing::error!(pid = %self.ctx.pid(), producer = %sub.producer(), excess, "consumer received {excess} events in excess");
        }
        let out = self.b.handle_events(batch, sub, &mut self.ctx).await?;
        self.emit(out)?;
        if b.ask > 0 {
            sub.ask(b.ask);
        }
        Ok(())
    }

    /// The producer cancelled or exited; queued behind pending input on a
    /// producer_consumer so events arrive before their cancel.
    pub(crate) async fn consumer_cancel(
        &mut self,
        tag: Ref,
        kind: CancelKind,
        reason: ExitReason,
    ) -> Step {
        if !self.cons.subs.iter().any(|s| s.sub.tag == tag) {
            return Ok(());
        }
        if B::KIND == StageKind::ProducerConsumer && !self.cons.queue.is_empty() {
            self.cons.queue.push_back(Queued::Cancel(tag, kind, reason));
            return Ok(());
        }
        self.invoke_cancel(tag, kind, reason).await
    }

    async fn invoke_cancel(&mut self, tag: Ref, kind: CancelKind, reason: ExitReason) -> Step {
        let Some(i) = self.cons.subs.iter().position(|s| s.sub.tag == tag) else {
            return Ok(());
        };
        let entry = self.cons.subs.remove(i);
        let _ = crate::signal::demonitor(tag, true);
        let cancel = Cancel {
            kind,
            reason: reason.clone(),
        };
        let out = self
            .b
            .cancel_producer(cancel, &entry.sub, &mut self.ctx)
            .await?;
        self.emit(out)?;
        let stop = match (kind, entry.cancel) {
            (CancelKind::Refused, _) => false,
            (_, CancelMode::Permanent) => true,
            (_, CancelMode::Transient) => !reason.is_clean(),
            (_, CancelMode::Temporary) => false,
        };
        if stop {
            tracing::info!(pid = %self.ctx.pid(), producer = %entry.sub.producer(), %reason,
                "consumer is stopping after its subscription was cancelled");
            return Err(reason);
        }
        Ok(())
    }
}

/// Subscribing to a producer that is not alive: `noproc`, fatal unless temporary.
fn dead_producer(
    me: Pid,
    pid: Pid,
    mode: CancelMode,
    reply: Option<Reply>,
    sub: Subscription,
) -> Step {
    if mode == CancelMode::Temporary {
        if let Some(r) = reply {
            let _ = r.send(Ok(sub));
        }
        return Ok(());
    }
    tracing::error!(%me, producer = %pid, "consumer could not subscribe: the producer is not alive");
    if let Some(r) = reply {
        let _ = r.send(Err(SubscribeError::NoProc(pid)));
    }
    Err(ExitReason::NoProc)
}
