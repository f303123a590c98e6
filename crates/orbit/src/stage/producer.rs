//! Producers: stages that emit events on demand — and the producer side every
//! producer and producer_consumer runs.
//!
//! As GenStage's: the dispatcher answers each ask (and each cancel) with the demand to
//! forward upstream; the producer serves it from its buffer first (oldest events, at
//! most that many) and calls `handle_demand` with the rest. A producer may emit exactly
//! `n`, more (the excess waits in the buffer), or fewer: the consumers keep their demand
//! in the dispatcher, so events it emits later from `handle_info` go straight out
//! ([`StageContext::pending_demand`] counts what `handle_demand` was asked and not yet
//! given). Emitted events go to the dispatcher at once; what it cannot place goes to the
//! buffer (at most `buffer_size`, dropping per `buffer_keep`, with a warning and the
//! `dropped` counter) and leaves it only as later demand is forwarded — so after a
//! consumer cancel, events can wait there while a consumer has demand, as in GenStage.
//!
//! Flow of one message on the producer side: a subscribe (→ `handle_subscribe` →
//! the dispatcher), an ask (→ the dispatcher) or a cancel (→ the dispatcher →
//! `handle_cancel`); then the pump serves the forwarded demand. A producer_consumer
//! instead drains its buffer and takes queued input while the dispatcher has capacity.
//! In [`DemandMode::Accumulate`] forwarded demand and emitted events are held and
//! replayed in order on `Forward`.

use std::future::Future;
use std::sync::Arc;

use super::buffer::BufferKeep;
use super::demand::DemandMode;
use super::dispatcher::Dispatcher;
use super::engine::{
    self, Behaviour, ConsumerEntry, Ctx, Engine, EngineOptions, Held, StageMsg, Step,
};
use super::error::{StartError, SubscribeError};
use super::stage_ref::StageRef;
use super::subscription::{
    Ack, Cancel, CancelKind, ConsumerId, EventSink, SubscribeRequest, Subscription,
};
use super::{NoEvents, StageContext, StageKind, SubscribeMode};
use crate::exit::ExitReason;
use crate::pid::Ref;
use crate::signal::Message;

/// The context a producer's callbacks get.
pub type ProducerContext<P> = StageContext<NoEvents, <P as Producer>::Event, <P as Producer>::Info>;

/// A stage that emits events when its consumers ask for them.
///
/// Callbacks return `Ok(events)` to emit (an empty `Vec` emits nothing and does not
/// allocate) or `Err(reason)` to stop the stage with `reason`.
pub trait Producer: Send + Sized + 'static {
    /// The events it emits.
    type Event: Send + 'static;
    /// Plain messages for `handle_info` (use `()` if none).
    type Info: Send + 'static;

    /// Runs in the new process before `start_producer` returns.
    fn init(
        &mut self,
        _ctx: &mut ProducerContext<Self>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        async { Ok(()) }
    }

    /// The consumers want `demand` more events.
    fn handle_demand(
        &mut self,
        demand: usize,
        ctx: &mut ProducerContext<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Event>, ExitReason>> + Send;

    /// A consumer subscribed; `Err` stops the producer.
    fn handle_subscribe(
        &mut self,
        _consumer: ConsumerId,
        _ctx: &mut ProducerContext<Self>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        async { Ok(()) }
    }

    /// A consumer's subscription ended.
    fn handle_cancel(
        &mut self,
        _cancel: Cancel,
        _consumer: ConsumerId,
        _ctx: &mut ProducerContext<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Event>, ExitReason>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Plain messages, trapped exits and `DOWN`s of monitors the producer set itself.
    fn handle_info(
        &mut self,
        msg: Message<Self::Info>,
        ctx: &mut ProducerContext<Self>,
    ) -> impl Future<Output = Result<Vec<Self::Event>, ExitReason>> + Send {
        let pid = ctx.pid();
        async move {
            unexpected(pid, &msg);
            Ok(Vec::new())
        }
    }

    /// Runs when the stage stops by a callback's `Err`, a `stop`, or its parent's exit.
    fn terminate(
        &mut self,
        _reason: &ExitReason,
        _ctx: &mut ProducerContext<Self>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// `dropped` events were discarded from a full buffer; return false to skip the
    /// warning (the `dropped` counter counts them either way).
    fn format_discarded(&mut self, _dropped: usize) -> bool {
        true
    }
}

pub(crate) fn unexpected<M>(pid: crate::Pid, msg: &Message<M>) {
    match msg {
        Message::Msg(_) => tracing::warn!(%pid, "stage received an unexpected message"),
        Message::Exit { from, reason } => {
            tracing::warn!(%pid, %from, %reason, "stage received an unexpected EXIT")
        }
        Message::Down(d) => tracing::warn!(%pid, down = ?d, "stage received an unexpected DOWN"),
    }
}

/// How a producer starts: dispatcher, buffer, demand mode, name, link.
pub struct ProducerOptions<T> {
    pub(crate) inner: EngineOptions<NoEvents, T>,
}

impl<T: Send + 'static> Default for ProducerOptions<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static> ProducerOptions<T> {
    /// DemandDispatcher, buffer of 10,000 keeping the last, demand forwarded.
    pub fn new() -> Self {
        ProducerOptions {
            inner: EngineOptions::default(),
        }
    }

    /// How events are shared among consumers (default [`DemandDispatcher`](super::DemandDispatcher)).
    pub fn dispatcher(mut self, d: impl Dispatcher<T>) -> Self {
        self.inner.dispatcher = Some(Box::new(d));
        self
    }

    /// The most events kept while no consumer wants them (default 10,000).
    pub fn buffer_size(mut self, n: usize) -> Self {
        self.inner.buffer_size = Some(n);
        self
    }

    /// Which events a full buffer keeps (default the last).
    pub fn buffer_keep(mut self, keep: BufferKeep) -> Self {
        self.inner.buffer_keep = keep;
        self
    }

    /// Start accumulating demand (and events) until `demand(Forward)`.
    pub fn demand(mut self, mode: DemandMode) -> Self {
        self.inner.demand = mode;
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

/// Starts a producer and waits for its `init`.
pub async fn start_producer<P: Producer>(
    producer: P,
    opts: ProducerOptions<P::Event>,
) -> Result<StageRef<NoEvents, P::Event, P::Info>, StartError> {
    engine::start(AsProducer(producer), opts.inner).await
}

pub(crate) struct AsProducer<P>(P);

impl<P: Producer> Behaviour for AsProducer<P> {
    type In = NoEvents;
    type Out = P::Event;
    type Info = P::Info;
    const KIND: StageKind = StageKind::Producer;

    fn init(&mut self, ctx: &mut Ctx<Self>) -> impl Future<Output = Result<(), ExitReason>> + Send {
        self.0.init(ctx)
    }
    fn handle_demand(
        &mut self,
        n: usize,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<P::Event>, ExitReason>> + Send {
        self.0.handle_demand(n, ctx)
    }
    async fn handle_events(
        &mut self,
        _events: Vec<NoEvents>,
        _from: &Subscription,
        _ctx: &mut Ctx<Self>,
    ) -> Result<Vec<P::Event>, ExitReason> {
        Ok(Vec::new())
    }
    fn handle_consumer(
        &mut self,
        peer: ConsumerId,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        self.0.handle_subscribe(peer, ctx)
    }
    async fn handle_producer(
        &mut self,
        _sub: &Subscription,
        _ctx: &mut Ctx<Self>,
    ) -> Result<SubscribeMode, ExitReason> {
        Ok(SubscribeMode::Automatic)
    }
    fn cancel_consumer(
        &mut self,
        cancel: Cancel,
        peer: ConsumerId,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<P::Event>, ExitReason>> + Send {
        self.0.handle_cancel(cancel, peer, ctx)
    }
    async fn cancel_producer(
        &mut self,
        _cancel: Cancel,
        _sub: &Subscription,
        _ctx: &mut Ctx<Self>,
    ) -> Result<Vec<P::Event>, ExitReason> {
        Ok(Vec::new())
    }
    fn handle_info(
        &mut self,
        msg: Message<P::Info>,
        ctx: &mut Ctx<Self>,
    ) -> impl Future<Output = Result<Vec<P::Event>, ExitReason>> + Send {
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

fn refuse<T>(ack: Option<Ack>, sink: &Arc<dyn EventSink<T>>, tag: Ref, err: SubscribeError) {
    let reason = ExitReason::error(err.to_string());
    if let Some(a) = ack {
        let _ = a.tx.send(Err(err));
    }
    sink.send_cancel(tag, CancelKind::Refused, reason);
}

impl<B: Behaviour> Engine<B> {
    /// A consumer subscribes: `handle_subscribe`, then the dispatcher, then confirm.
    pub(crate) async fn on_subscribe(&mut self, req: SubscribeRequest<B::Out>) -> Step {
        let SubscribeRequest { subscriber, ack } = req;
        let tag = subscriber.tag;
        let sink = subscriber.sink.clone();
        let peer = ConsumerId {
            pid: sink.pid(),
            tag,
        };
        let me = self.ctx.pid();
        let Some(p) = self.prod.as_ref() else {
            refuse(ack, &sink, tag, SubscribeError::NotAProducer(me));
            return Ok(());
        };
        if p.consumers.iter().any(|c| c.tag == tag) {
            tracing::error!(%me, consumer = %peer.pid, "producer received a duplicated subscription");
            return Ok(());
        }
        if let Err(reason) = self.b.handle_consumer(peer, &mut self.ctx).await {
            refuse(ack, &sink, tag, SubscribeError::Refused(reason.clone()));
            return Err(reason);
        }
        let Some(p) = self.prod.as_mut() else {
            return Ok(());
        };
        if let Err(err) = p.dispatcher.subscribe(subscriber) {
            let reason = ExitReason::error(err.to_string());
            tracing::warn!(%me, consumer = %peer.pid, %reason, "subscription refused");
            refuse(ack, &sink, tag, err);
            let cancel = Cancel {
                kind: CancelKind::Refused,
                reason,
            };
            let out = self.b.cancel_consumer(cancel, peer, &mut self.ctx).await?;
            return self.emit(out);
        }
        // Inside the stage's own process, so monitoring cannot fail.
        let monitor = crate::signal::monitor(peer.pid).unwrap_or_else(|_| Ref::make());
        p.consumers.push(ConsumerEntry { tag, monitor, sink });
        if let Some(a) = ack {
            let _ = a.tx.send(Ok(a.sub));
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn on_ask(&mut self, tag: Ref, n: usize) {
        if let Some(p) = self.prod.as_mut() {
            let d = p.dispatcher.ask(tag, n);
            self.owe(d);
        }
    }

    /// Demand the dispatcher returned: served in `pump` (or held while accumulating).
    fn owe(&mut self, d: usize) {
        let Some(p) = self.prod.as_mut() else { return };
        if d == 0 || B::KIND != StageKind::Producer {
            // A producer_consumer takes input by the dispatcher's capacity instead.
            return;
        }
        if p.mode == DemandMode::Accumulate {
            p.held.push_back(Held::Demand(d));
        } else {
            p.owed += d;
        }
    }

    /// A subscription ends on the producer side (`notify`: confirm to the consumer).
    pub(crate) async fn producer_cancel(
        &mut self,
        tag: Ref,
        kind: CancelKind,
        reason: ExitReason,
        notify: bool,
    ) -> Step {
        let Some(p) = self.prod.as_mut() else {
            return Ok(());
        };
        let Some(i) = p.consumers.iter().position(|c| c.tag == tag) else {
            return Ok(());
        };
        let entry = p.consumers.swap_remove(i);
        // Forget its demand before anything else can be dispatched to it. (GenStage
        // runs `handle_cancel` first, so events it returns may still go to the
        // cancelled consumer and be lost.)
        let d = p.dispatcher.cancel(tag);
        self.owe(d);
        let _ = crate::signal::demonitor(entry.monitor, true);
        if notify {
            entry
                .sink
                .send_cancel(tag, CancelKind::Cancel, reason.clone());
        }
        let peer = ConsumerId {
            pid: entry.sink.pid(),
            tag,
        };
        let out = self
            .b
            .cancel_consumer(Cancel { kind, reason }, peer, &mut self.ctx)
            .await?;
        self.emit(out)
    }

    /// `demand(stage, mode)`: only producers accumulate. Switching to `Forward` replays
    /// what was held, in order: demand (from the buffer, then `handle_demand`) and
    /// emitted events (to the dispatcher).
    pub(crate) async fn set_demand(&mut self, mode: DemandMode) -> Step {
        let me = self.ctx.pid();
        let Some(p) = self.prod.as_mut() else {
            tracing::error!(%me, "demand mode can only be set for producers; this stage is a consumer");
            return Ok(());
        };
        if B::KIND != StageKind::Producer {
            return Ok(());
        }
        let was = p.mode;
        p.mode = mode;
        if was == DemandMode::Accumulate && mode == DemandMode::Forward {
            loop {
                let Some(p) = self.prod.as_mut() else {
                    return Ok(());
                };
                // A callback may switch back to accumulating: keep the rest held.
                if p.mode != DemandMode::Forward {
                    return Ok(());
                }
                match p.held.pop_front() {
                    None => break,
                    Some(Held::Events(events)) => {
                        p.held_len -= events.len();
                        self.dispatch_out(events)?;
                    }
                    Some(Held::Demand(d)) => self.serve(d).await?,
                }
            }
        }
        Ok(())
    }

    /// Events a callback returned: they meet demand, then go out or wait.
    #[inline]
    pub(crate) fn emit(&mut self, events: Vec<B::Out>) -> Step {
        if events.is_empty() {
            return Ok(());
        }
        let Some(p) = self.prod.as_mut() else {
            return Ok(());
        };
        self.ctx.unmet = self.ctx.unmet.saturating_sub(events.len());
        if p.mode == DemandMode::Accumulate {
            p.held_len += events.len();
            p.held.push_back(Held::Events(events));
            return Ok(());
        }
        self.dispatch_out(events)
    }

    fn dispatch_out(&mut self, events: Vec<B::Out>) -> Step {
        let Some(p) = self.prod.as_mut() else {
            return Ok(());
        };
        if B::KIND == StageKind::ProducerConsumer && !p.buffer.is_empty() {
            // Older events are waiting: keep the order.
            let dropped = p.buffer.push(events);
            self.note_dropped(dropped);
            return self.drain_buffer();
        }
        // A producer dispatches at once, as GenStage does, even while older events
        // wait in the buffer: those go out only as demand is forwarded (`serve`).
        let n = events.len();
        let later = p
            .dispatcher
            .dispatch(events)
            .map_err(|e| ExitReason::error(e.to_string()))?;
        self.events_out += (n - later.len()) as u64;
        let dropped = p.buffer.push(later);
        self.note_dropped(dropped);
        Ok(())
    }

    fn note_dropped(&mut self, dropped: usize) {
        if dropped > 0 {
            self.dropped += dropped as u64;
            if self.b.format_discarded(dropped) {
                tracing::warn!(pid = %self.ctx.pid(), dropped, "producer has discarded {dropped} events from its buffer");
            }
        }
    }

    /// producer_consumer: sends buffered events while the dispatcher can place them.
    fn drain_buffer(&mut self) -> Step {
        let Some(p) = self.prod.as_mut() else {
            return Ok(());
        };
        while !p.buffer.is_empty() {
            let cap = p.dispatcher.capacity();
            if cap == 0 {
                break;
            }
            let batch = p.buffer.take(cap);
            let n = batch.len();
            let later = p
                .dispatcher
                .dispatch(batch)
                .map_err(|e| ExitReason::error(e.to_string()))?;
            self.events_out += (n - later.len()) as u64;
            if !later.is_empty() {
                p.buffer.push_front(later);
                break;
            }
        }
        Ok(())
    }

    /// Producer: `d` events of new demand (GenStage's
    /// `take_from_buffer_or_handle_demand`): the buffer's oldest events first, at most
    /// `d` of them, then `handle_demand` for the rest.
    async fn serve(&mut self, mut d: usize) -> Step {
        while d > 0 {
            let Some(p) = self.prod.as_mut() else {
                return Ok(());
            };
            if p.buffer.is_empty() {
                break;
            }
            let batch = p.buffer.take(d);
            let n = batch.len();
            d -= n;
            let later = p
                .dispatcher
                .dispatch(batch)
                .map_err(|e| ExitReason::error(e.to_string()))?;
            self.events_out += (n - later.len()) as u64;
            if !later.is_empty() {
                // More demand was forwarded than consumers can take now (a broadcast
                // consumer subscribed meanwhile): keep the order, wait for more.
                p.buffer.push_front(later);
                return Ok(());
            }
        }
        if d == 0 {
            return Ok(());
        }
        self.ctx.unmet += d;
        let out = self.b.handle_demand(d, &mut self.ctx).await?;
        self.emit(out)
    }

    /// After every message: producer — serve the demand the dispatcher returned;
    /// producer_consumer — drain the buffer, then handle queued input while the
    /// dispatcher has room.
    pub(crate) async fn pump(&mut self) -> Step {
        loop {
            let Some(p) = self.prod.as_mut() else {
                return Ok(());
            };
            if p.mode != DemandMode::Forward {
                return Ok(());
            }
            if B::KIND == StageKind::ProducerConsumer {
                self.drain_buffer()?;
                let Some(p) = self.prod.as_mut() else {
                    return Ok(());
                };
                if p.dispatcher.capacity() == 0
                    || !p.buffer.is_empty()
                    || !self.take_queued().await?
                {
                    return Ok(());
                }
                continue;
            }
            let d = std::mem::take(&mut p.owed);
            self.serve(d).await?;
            let Some(p) = self.prod.as_mut() else {
                return Ok(());
            };
            // Demand that arose while dispatching: forwarded once the mailbox had its
            // turn (GenStage's BroadcastDispatcher sends itself an ask).
            let extra = p.dispatcher.take_demand();
            if extra > 0 {
                p.owed += extra;
                if !p.pump_queued {
                    p.pump_queued = true;
                    let _ = self.ctx.proc.handle().send(StageMsg::Pump);
                }
            }
            return Ok(());
        }
    }
}
