//! The stage process: one Orbit process per stage that speaks GenStage's subscription
//! protocol ([`super::wire`]) with stages on any node, Orbit or BEAM.
//!
//! A producer side (producers and producer_consumers) keeps its consumers and their
//! demand ([`Downstream`]), a buffer of events nobody asked for yet, and monitors each
//! consumer (a `DOWN`, `noconnection` included, drops the subscription). A consumer side
//! (consumers and producer_consumers) keeps one [`Upstream`] count per producer it
//! subscribed to and monitors each producer: a cancel or a `DOWN` ends the subscription,
//! and the cancel mode decides whether the stage exits (`Permanent`: always;
//! `Transient`: unless `normal`/`shutdown`/`{shutdown, _}`; `Temporary`: never), as
//! GenStage's `invoke_cancel`. A producer_consumer handles events only while its own
//! consumers have demand (GenStage's `take_pc_events`), so demand flows back upstream.
//!
//! Asks go out in GenStage's order: `split_batches` decides each batch's ask (0, or
//! back up to `max_demand` once pending demand falls to `min_demand`) and the ask is
//! sent after that batch's callback returns, so a stage never holds more than
//! `max_demand` events from a producer. (Sending the ask before the callback was tried
//! for the 3-node benchmark; it lets a stage hold one batch more than GenStage allows,
//! so it is not done.)
//!
//! Input from peers is untrusted: a malformed or unexpected protocol message is logged,
//! counted ([`super::RemoteStage::ignored`]) and ignored, or answered as GenStage answers
//! it (`{cancel, unknown_subscription}`, `{cancel, duplicated_subscription}`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orbit::stage::CancelMode;
use orbit::{Context, ExitReason, Message, Pid, Ref};
use orbit_term::{RawTerm, Term};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use super::demand::{self, Downstream, Subscriber, Upstream};
use super::wire::{self, Parsed};
use super::RemoteSubscribe;

/// A producer's callback: demand in, events out.
pub(crate) type DemandFn<O> = Box<dyn FnMut(u64) -> Vec<O> + Send>;
/// A consumer's or producer_consumer's callback: events in, events out (a consumer's
/// output is dropped).
pub(crate) type EventsFn<I, O> = Box<dyn FnMut(Vec<I>) -> Vec<O> + Send>;

/// An event waiting in a producer's buffer: one the stage's callback made (encoded
/// only when it is sent), or one handed over by [`super::RemoteStage::push`] (encoded
/// there, from any serde type).
pub(crate) enum Out<O> {
    Typed(O),
    Pushed(RawTerm),
}

impl<O: Serialize> Serialize for Out<O> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Typed(o) => o.serialize(s),
            Out::Pushed(r) => r.serialize(s),
        }
    }
}

/// What kind of stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Producer,
    ProducerConsumer,
    Consumer,
}

/// What a stage process receives.
pub(crate) enum StageMsg {
    /// A message from any node as it arrived (`131, ...`), not yet checked: parsed and
    /// checked by the stage ([`wire::parse_raw`]), events decoded straight into the
    /// stage's type in the same pass.
    Wire(Vec<u8>),
    /// Events to dispatch (a producer's push), each encoded.
    Push(Vec<RawTerm>),
    /// Subscribe to the producer `to` (already resolved to a pid).
    Subscribe {
        to: Pid,
        opts: RemoteSubscribe,
        reply: oneshot::Sender<Term>,
    },
    /// Cancel the subscription with this tag (reason `normal`); replies whether it existed.
    Cancel {
        tag: Term,
        reply: oneshot::Sender<bool>,
    },
}

impl StageMsg {
    /// Every message from the wire is a [`StageMsg::Wire`], whatever its shape, taken
    /// as it arrived (for [`orbit_dist::serve_with`]): the stage checks it when it parses
    /// it, so it is not walked once more on the way in.
    pub(crate) fn from_wire(bytes: &[u8]) -> Result<StageMsg, orbit_term::Error> {
        Ok(StageMsg::Wire(bytes.to_vec()))
    }
}

/// Counters shared with the handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Protocol messages logged and ignored.
    pub ignored: AtomicU64,
    /// Events received beyond the demand asked for.
    pub excess: AtomicU64,
    /// Events that could not be decoded into the stage's type (logged, dropped).
    pub undecodable: AtomicU64,
}

struct Up {
    pid: Pid,
    tag: Term,
    cancel: CancelMode,
    demand: Upstream,
    monitor: Ref,
}

/// A stage taking events of type `I` and sending events of type `O` (a producer never
/// takes any, a consumer never sends any).
pub(crate) struct Engine<I, O> {
    me: Pid,
    kind: Kind,
    on_demand: Option<DemandFn<O>>,
    on_events: Option<EventsFn<I, O>>,
    down: Downstream,
    buffer: VecDeque<Out<O>>,
    buffer_size: usize,
    ups: Vec<Up>,
    /// A producer_consumer's events waiting for downstream demand, with their producer.
    queue: VecDeque<(Term, VecDeque<I>)>,
    counters: Arc<Counters>,
}

impl<I: DeserializeOwned, O: Serialize> Engine<I, O> {
    pub(crate) fn new(
        me: Pid,
        kind: Kind,
        on_demand: Option<DemandFn<O>>,
        on_events: Option<EventsFn<I, O>>,
        buffer_size: usize,
        counters: Arc<Counters>,
    ) -> Engine<I, O> {
        Engine {
            me,
            kind,
            on_demand,
            on_events,
            down: Downstream::default(),
            buffer: VecDeque::new(),
            buffer_size,
            ups: Vec::new(),
            queue: VecDeque::new(),
            counters,
        }
    }

    /// The receive loop; returns the stage's exit reason.
    pub(crate) async fn run(mut self, mut ctx: Context<StageMsg>) -> ExitReason {
        loop {
            let step = match ctx.recv().await {
                Message::Msg(StageMsg::Wire(t)) => match wire::parse_raw::<I>(&t, &self.counters) {
                    Ok(p) => self.wire(p),
                    Err(why) => {
                        self.ignore(why, None);
                        None
                    }
                },
                Message::Msg(StageMsg::Push(events)) => {
                    self.push(events.into_iter().map(Out::Pushed));
                    None
                }
                Message::Msg(StageMsg::Subscribe { to, opts, reply }) => {
                    let tag = self.subscribe(to, &opts);
                    let _ = reply.send(tag);
                    None
                }
                Message::Msg(StageMsg::Cancel { tag, reply }) => {
                    let found = self.cancel_up(&tag, Term::atom("normal"));
                    let _ = reply.send(found);
                    None
                }
                Message::Down(d) => self.down(d.monitor, d.reason),
                _ => None,
            };
            if let Some(reason) = step {
                return reason;
            }
        }
    }

    fn ignore(&self, why: &str, msg: Option<&Term>) {
        self.counters.ignored.fetch_add(1, Ordering::Relaxed);
        match msg {
            Some(m) => {
                tracing::warn!(stage = %self.me, msg = %crate::pg::short_term(m), "GenStage protocol: {why}; ignored")
            }
            None => tracing::warn!(stage = %self.me, "GenStage protocol: {why}; ignored"),
        }
    }

    fn send<M: Serialize>(&self, to: Pid, msg: &M) {
        if let Err(e) = orbit_dist::send(to, msg) {
            tracing::debug!(stage = %self.me, %to, error = %e, "GenStage: send failed");
        }
    }

    fn wire(&mut self, p: Parsed<I>) -> Option<ExitReason> {
        match p {
            Parsed::Subscribe {
                from,
                current,
                opts,
            } => {
                if let Some((tag, reason)) = current {
                    // GenStage's `maybe_producer_cancel`: the old subscription goes first.
                    self.cancel_down(&tag, reason);
                }
                self.subscribed(from, &opts);
                None
            }
            Parsed::Ask { from, n } => {
                self.asked(from, n);
                None
            }
            Parsed::CancelProducer { tag, reason } => {
                self.cancel_down(&tag, reason);
                None
            }
            Parsed::Events { from, events } => {
                self.events(from, events);
                None
            }
            Parsed::CancelConsumer { tag, reason } => {
                let i = self.ups.iter().position(|u| u.tag == tag)?;
                let up = self.ups.remove(i);
                let _ = orbit::demonitor(up.monitor, true);
                self.cancelled(up, reason)
            }
            Parsed::Other(t) => {
                self.ignore("not a GenStage message", Some(&t));
                None
            }
        }
    }

    /// Ends the consumer subscription `tag` and tells the consumer (`{cancel, Reason}`).
    fn cancel_down(&mut self, tag: &Term, reason: Term) {
        if let Some(i) = self.down.find(tag) {
            let s = self.down.remove(i);
            let _ = orbit::demonitor(s.monitor, true);
            self.send(s.pid, &wire::cancel_downstream(self.me, tag, reason));
        }
    }

    /// A consumer subscribes to this stage.
    fn subscribed(&mut self, from: wire::Sub, opts: &Term) {
        if self.kind == Kind::Consumer {
            return self.ignore("a consumer received $gen_producer subscribe", Some(opts));
        }
        if self.down.find(&from.tag).is_some() {
            self.ignore("duplicated subscription", Some(&from.tag));
            let reason = Term::atom("duplicated_subscription");
            return self.send(
                from.pid,
                &wire::cancel_downstream(self.me, &from.tag, reason),
            );
        }
        match orbit::monitor(from.pid) {
            Ok(monitor) => self.down.subs.push(Subscriber {
                pid: from.pid,
                tag: from.tag,
                demand: 0,
                monitor,
            }),
            Err(e) => {
                tracing::warn!(stage = %self.me, consumer = %from.pid, error = %e, "GenStage: cannot monitor a consumer; subscription refused")
            }
        }
    }

    /// A consumer asks for `n` more events.
    fn asked(&mut self, from: wire::Sub, n: u64) {
        if self.kind == Kind::Consumer {
            return self.ignore("a consumer received $gen_producer ask", None);
        }
        let Some(i) = self.down.find(&from.tag) else {
            self.ignore("ask for an unknown subscription", Some(&from.tag));
            let reason = Term::atom("unknown_subscription");
            return self.send(
                from.pid,
                &wire::cancel_downstream(self.me, &from.tag, reason),
            );
        };
        let forward = self.down.ask(i, n);
        let taken = self.dispatch() as u64;
        match self.kind {
            Kind::Producer => {
                let more = forward.saturating_sub(taken);
                if more > 0 {
                    if let Some(f) = self.on_demand.as_mut() {
                        let events = f(more);
                        self.push_typed(events);
                    }
                }
            }
            _ => self.take_queued(),
        }
    }

    /// Sends buffered events to consumers with demand; how many were sent.
    fn dispatch(&mut self) -> usize {
        let me = self.me;
        let halves = self.buffer.as_slices();
        let sent = self.down.dispatch(self.buffer.len(), |pid, tag, start, k| {
            send_events(me, pid, tag, demand::cut(halves, start, k))
        });
        self.buffer.drain(..sent);
        sent
    }

    /// Events made by this stage's callback: sent straight from the callback's `Vec`
    /// while the buffer is empty (nothing older waits), the rest buffered.
    fn push_typed(&mut self, events: Vec<O>) {
        if self.kind == Kind::Consumer || !self.buffer.is_empty() {
            return self.push(events.into_iter().map(Out::Typed));
        }
        let me = self.me;
        let sent = self.down.dispatch(events.len(), |pid, tag, start, k| {
            send_events(me, pid, tag, demand::cut((&events, &[]), start, k))
        });
        if sent < events.len() {
            self.keep(events.into_iter().skip(sent).map(Out::Typed));
        }
    }

    /// Events from the callback or a push: dispatched, the rest buffered (the oldest
    /// dropped past `buffer_size`, logged, as GenStage's `buffer_keep: :last`).
    fn push(&mut self, events: impl ExactSizeIterator<Item = Out<O>>) {
        if self.kind == Kind::Consumer {
            let n = events.len();
            if n > 0 {
                tracing::error!(stage = %self.me, n, "GenStage: a consumer cannot dispatch events; dropped");
            }
            return;
        }
        self.buffer.extend(events);
        self.dispatch();
        self.trim();
    }

    /// Buffers events no consumer wants now, after what is buffered already.
    fn keep(&mut self, events: impl Iterator<Item = Out<O>>) {
        self.buffer.extend(events);
        self.trim();
    }

    /// Drops the oldest events past `buffer_size`, logged.
    fn trim(&mut self) {
        if self.buffer.len() > self.buffer_size {
            let drop = self.buffer.len() - self.buffer_size;
            self.buffer.drain(..drop);
            tracing::warn!(stage = %self.me, dropped = drop, "GenStage: buffer full, oldest events discarded");
        }
    }

    /// Events from a producer.
    fn events(&mut self, from: wire::Sub, events: Vec<I>) {
        if self.kind == Kind::Producer {
            return self.ignore("a producer received $gen_consumer events", None);
        }
        if !self.ups.iter().any(|u| u.tag == from.tag) {
            self.ignore("events for an unknown subscription", Some(&from.tag));
            let reason = Term::atom("unknown_subscription");
            return self.send(from.pid, &wire::cancel_upstream(self.me, &from.tag, reason));
        }
        if self.kind == Kind::ProducerConsumer {
            self.queue.push_back((from.tag, events.into()));
            return self.take_queued();
        }
        self.handle(&from.tag, events);
    }

    /// Runs `events` from the subscription `tag` through the callback in GenStage's
    /// batches, asking the producer for more after each batch (module docs).
    fn handle(&mut self, tag: &Term, mut events: Vec<I>) {
        let Some(i) = self.ups.iter().position(|u| &u.tag == tag) else {
            // The subscription ended while its events waited: handle them, ask nothing.
            return self.callback(events);
        };
        let (batches, excess) = self.ups[i].demand.split(events.len());
        if excess > 0 {
            self.counters.excess.fetch_add(excess, Ordering::Relaxed);
            tracing::error!(stage = %self.me, producer = %self.ups[i].pid, excess, "GenStage: received events in excess of the demand");
        }
        let (pid, ptag) = (self.ups[i].pid, self.ups[i].tag.clone());
        for b in batches {
            let batch = if b.len >= events.len() {
                std::mem::take(&mut events)
            } else {
                let rest = events.split_off(b.len);
                std::mem::replace(&mut events, rest)
            };
            self.callback(batch);
            if b.ask > 0 {
                self.send(pid, &wire::Ask::new(self.me, &ptag, b.ask));
            }
        }
    }

    fn callback(&mut self, events: Vec<I>) {
        if let Some(f) = self.on_events.as_mut() {
            let out = f(events);
            if self.kind == Kind::ProducerConsumer {
                self.push_typed(out);
            }
        }
    }

    /// A producer_consumer handles queued events while its consumers want more and its
    /// buffer is empty.
    fn take_queued(&mut self) {
        while self.buffer.is_empty() {
            let want = self.down.total() as usize;
            if want == 0 {
                return;
            }
            let Some((tag, q)) = self.queue.front_mut() else {
                return;
            };
            let n = want.min(q.len());
            let chunk: Vec<I> = if n == q.len() {
                // The whole queued message: no copy when it sits in one piece.
                Vec::from(std::mem::take(q))
            } else {
                q.drain(..n).collect()
            };
            let tag = tag.clone();
            if q.is_empty() {
                self.queue.pop_front();
            }
            self.handle(&tag, chunk);
        }
    }

    /// Subscribes this stage to the producer `to`: monitor, subscribe, ask `max_demand`.
    fn subscribe(&mut self, to: Pid, opts: &RemoteSubscribe) -> Term {
        let tag = wire::new_tag(self.me);
        let monitor = match orbit::monitor(to) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(stage = %self.me, producer = %to, error = %e, "GenStage: cannot monitor the producer");
                Ref::make()
            }
        };
        self.send(to, &wire::subscribe(self.me, &tag, opts.to_term()));
        self.send(to, &wire::Ask::new(self.me, &tag, opts.max_demand));
        self.ups.push(Up {
            pid: to,
            tag: tag.clone(),
            cancel: opts.cancel,
            demand: Upstream::new(opts.max_demand, opts.min_demand),
            monitor,
        });
        tag
    }

    /// This stage cancels its subscription `tag` (no exit: the stage asked for it).
    fn cancel_up(&mut self, tag: &Term, reason: Term) -> bool {
        let Some(i) = self.ups.iter().position(|u| &u.tag == tag) else {
            return false;
        };
        let up = self.ups.remove(i);
        let _ = orbit::demonitor(up.monitor, true);
        self.send(up.pid, &wire::cancel_upstream(self.me, tag, reason));
        true
    }

    /// A subscription to a producer ended with `reason`: exit or not by its cancel mode.
    fn cancelled(&mut self, up: Up, reason: Term) -> Option<ExitReason> {
        let exit = match up.cancel {
            CancelMode::Permanent => true,
            CancelMode::Transient => !wire::is_transient_shutdown(&reason),
            CancelMode::Temporary => false,
        };
        if exit && reason.as_atom() != Some("already_subscribed") {
            tracing::info!(stage = %self.me, producer = %up.pid, reason = %crate::pg::short_term(&reason), "GenStage consumer stopping after its producer's cancel");
            return Some(ExitReason::from_term(reason));
        }
        None
    }

    fn down(&mut self, monitor: Ref, reason: ExitReason) -> Option<ExitReason> {
        if let Some(i) = self.down.subs.iter().position(|s| s.monitor == monitor) {
            self.down.remove(i);
            return None;
        }
        if let Some(i) = self.ups.iter().position(|u| u.monitor == monitor) {
            let up = self.ups.remove(i);
            return self.cancelled(up, reason.to_term());
        }
        None
    }
}

/// Sends `events` (two slices, one after the other) to the consumer `pid` of the
/// subscription `tag`. When some event has no term form, the others go, each encoded
/// alone, and the bad ones are logged and dropped.
fn send_events<T: Serialize>(me: Pid, pid: Pid, tag: &Term, events: (&[T], &[T])) {
    let sent = match orbit_dist::send(pid, &wire::Events::new(me, tag, events)) {
        Err(orbit::SendError::NotEncodable(_)) => {
            let ok: Vec<RawTerm> = events
                .0
                .iter()
                .chain(events.1)
                .filter_map(|e| match RawTerm::encode(e) {
                    Ok(r) => Some(r),
                    Err(err) => {
                        tracing::error!(stage = %me, error = %err, ty = std::any::type_name::<T>(), "GenStage: an event cannot be encoded as a term; dropped");
                        None
                    }
                })
                .collect();
            orbit_dist::send(pid, &wire::Events::new(me, tag, (&ok, &[])))
        }
        other => other,
    };
    if let Err(e) = sent {
        tracing::debug!(stage = %me, %pid, error = %e, "GenStage: events not sent");
    }
}
