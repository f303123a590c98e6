//! Subscriptions: the options a consumer subscribes with, the handle it gets back, and
//! the typed ports events and demand travel through.
//!
//! A subscription links one consumer to one producer and is named by a tag (the
//! consumer's monitor reference on the producer, as in GenStage). Demand travels up
//! through an [`Upstream`] port (the producer's mailbox), events travel down through an
//! [`EventSink`] (the consumer's mailbox); both are pushed straight into the mailbox,
//! with no lookup.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::error::SubscribeError;
use crate::exit::ExitReason;
use crate::pid::{Pid, Ref};

/// What happens to the consumer when its producer exits or cancels the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CancelMode {
    /// The consumer exits with the same reason (the default).
    #[default]
    Permanent,
    /// The consumer exits unless the reason is `normal`, `shutdown` or `{shutdown, _}`.
    Transient,
    /// The consumer keeps running.
    Temporary,
}

/// A partition of a [`PartitionDispatcher`](super::PartitionDispatcher): its index, or
/// its name when the partitions were given by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PartitionKey {
    /// The partition at this index (`0..count`).
    Index(usize),
    /// The partition with this name.
    Name(String),
}

impl From<usize> for PartitionKey {
    fn from(i: usize) -> Self {
        PartitionKey::Index(i)
    }
}

impl From<&str> for PartitionKey {
    fn from(s: &str) -> Self {
        PartitionKey::Name(s.to_string())
    }
}

impl From<String> for PartitionKey {
    fn from(s: String) -> Self {
        PartitionKey::Name(s)
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionKey::Index(i) => write!(f, "{i}"),
            PartitionKey::Name(n) => write!(f, "{n:?}"),
        }
    }
}

/// A per-subscription filter of a [`BroadcastDispatcher`](super::BroadcastDispatcher):
/// the consumer gets only the events it returns true for.
pub type Selector<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// How a consumer subscribes: demand bounds, cancel mode, and dispatcher options.
pub struct SubscribeOptions<T> {
    pub(crate) max_demand: usize,
    pub(crate) min_demand: Option<usize>,
    pub(crate) cancel: CancelMode,
    pub(crate) partition: Option<PartitionKey>,
    pub(crate) selector: Option<Selector<T>>,
    pub(crate) timeout: Duration,
}

impl<T> Clone for SubscribeOptions<T> {
    fn clone(&self) -> Self {
        SubscribeOptions {
            max_demand: self.max_demand,
            min_demand: self.min_demand,
            cancel: self.cancel,
            partition: self.partition.clone(),
            selector: self.selector.clone(),
            timeout: self.timeout,
        }
    }
}

impl<T> Default for SubscribeOptions<T> {
    fn default() -> Self {
        SubscribeOptions {
            max_demand: 1000,
            min_demand: None,
            cancel: CancelMode::Permanent,
            partition: None,
            selector: None,
            timeout: Duration::from_secs(5),
        }
    }
}

impl<T> fmt::Debug for SubscribeOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscribeOptions")
            .field("max_demand", &self.max_demand)
            .field("min_demand", &self.min_demand)
            .field("cancel", &self.cancel)
            .field("partition", &self.partition)
            .field("selector", &self.selector.is_some())
            .finish()
    }
}

impl<T> SubscribeOptions<T> {
    /// The defaults: `max_demand` 1000, `min_demand` half of it, `permanent`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most events the consumer has asked for and not yet handled (default 1000).
    pub fn max_demand(mut self, n: usize) -> Self {
        self.max_demand = n;
        self
    }

    /// The outstanding demand at or below which the consumer asks for more (default
    /// `max_demand / 2`; must be below `max_demand`). Events are handed to
    /// `handle_events` in batches of at most `max_demand - min_demand`.
    pub fn min_demand(mut self, n: usize) -> Self {
        self.min_demand = Some(n);
        self
    }

    /// What the consumer does when the producer exits or cancels (default permanent).
    pub fn cancel(mut self, mode: CancelMode) -> Self {
        self.cancel = mode;
        self
    }

    /// The partition to take from a producer using a PartitionDispatcher.
    pub fn partition(mut self, p: impl Into<PartitionKey>) -> Self {
        self.partition = Some(p.into());
        self
    }

    /// A filter for a producer using a BroadcastDispatcher: only events it accepts are
    /// sent; rejected ones count as delivered.
    pub fn selector(mut self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.selector = Some(Arc::new(f));
        self
    }

    /// How long `subscribe` waits for the producer's confirmation (default 5 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// `(min, max)` after defaults, or the error for bounds GenStage rejects.
    pub(crate) fn bounds(&self) -> Result<(usize, usize), SubscribeError> {
        let max = self.max_demand;
        let min = self.min_demand.unwrap_or(max / 2);
        if max == 0 || min >= max {
            return Err(SubscribeError::InvalidDemand { min, max });
        }
        Ok((min, max))
    }
}

/// Why a subscription ended, as `handle_cancel` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    /// A cancel message, or the peer's exit.
    pub kind: CancelKind,
    /// The reason given, or the peer's exit reason.
    pub reason: ExitReason,
}

/// How a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelKind {
    /// Cancelled by either side (GenStage's `{:cancel, reason}`).
    Cancel,
    /// The peer exited (`{:down, reason}`).
    Down,
    /// The producer refused the subscription (bad options); never stops the consumer.
    Refused,
}

/// A consumer as its producer sees it: `handle_subscribe` and `handle_cancel` get it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerId {
    /// The consumer.
    pub pid: Pid,
    /// The subscription's tag.
    pub tag: Ref,
}

/// The producer's mailbox, as a consumer sends demand and cancels into it.
pub trait Upstream: Send + Sync {
    /// The producer's pid.
    fn pid(&self) -> Pid;
    /// True while the producer runs.
    fn is_alive(&self) -> bool;
    /// Asks for `n` more events on subscription `tag`; false if the producer is gone.
    fn ask(&self, tag: Ref, n: usize) -> bool;
    /// Cancels subscription `tag`; false if the producer is gone.
    fn cancel(&self, tag: Ref, reason: ExitReason) -> bool;
}

/// The consumer's mailbox, as a producer (or its dispatcher) sends events into it.
pub trait EventSink<T>: Send + Sync {
    /// The consumer's pid.
    fn pid(&self) -> Pid;
    /// Sends a batch on subscription `tag`; false if the consumer is gone.
    fn send_events(&self, tag: Ref, events: Vec<T>) -> bool;
    /// Tells the consumer its subscription `tag` was cancelled by the producer.
    fn send_cancel(&self, tag: Ref, kind: CancelKind, reason: ExitReason) -> bool;
}

/// The consumer's handle on one of its subscriptions (GenStage's `from`): ask for
/// events (manual demand) or cancel it.
#[derive(Clone)]
pub struct Subscription {
    pub(crate) tag: Ref,
    pub(crate) upstream: Arc<dyn Upstream>,
    pub(crate) min_demand: usize,
    pub(crate) max_demand: usize,
}

impl Subscription {
    /// The subscription's tag.
    pub fn tag(&self) -> Ref {
        self.tag
    }

    /// The subscription's `max_demand`.
    pub fn max_demand(&self) -> usize {
        self.max_demand
    }

    /// The subscription's `min_demand`.
    pub fn min_demand(&self) -> usize {
        self.min_demand
    }

    /// The producer.
    pub fn producer(&self) -> Pid {
        self.upstream.pid()
    }

    /// Asks the producer for `n` more events (GenStage's `ask/2`; for manual demand).
    /// False when the producer has exited.
    pub fn ask(&self, n: usize) -> bool {
        n == 0 || self.upstream.ask(self.tag, n)
    }

    /// Cancels the subscription with `reason` (GenStage's `cancel/2`). The producer
    /// confirms, and the consumer's cancel mode then applies to that confirmation.
    pub fn cancel(&self, reason: ExitReason) -> bool {
        self.upstream.cancel(self.tag, reason)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subscription({}, {})", self.upstream.pid(), self.tag)
    }
}

/// A consumer subscribing, as a producer's dispatcher sees it.
pub struct Subscriber<T> {
    /// The subscription's tag.
    pub tag: Ref,
    /// Where the events go.
    pub sink: Arc<dyn EventSink<T>>,
    /// The consumer's `max_demand`.
    pub max_demand: usize,
    /// The consumer's `min_demand`.
    pub min_demand: usize,
    /// The partition asked for (PartitionDispatcher).
    pub partition: Option<PartitionKey>,
    /// The event filter (BroadcastDispatcher).
    pub selector: Option<Selector<T>>,
}

impl<T> Subscriber<T> {
    /// The consumer's pid.
    pub fn pid(&self) -> Pid {
        self.sink.pid()
    }
}

/// Where the producer confirms or refuses a subscription to the caller of `subscribe`.
pub(crate) struct Ack {
    pub(crate) tx: oneshot::Sender<Result<Subscription, SubscribeError>>,
    pub(crate) sub: Subscription,
}

/// The subscribe message a consumer sends its producer.
pub(crate) struct SubscribeRequest<T> {
    pub(crate) subscriber: Subscriber<T>,
    pub(crate) ack: Option<Ack>,
}

/// A producer's mailbox as a consumer subscribes through it.
pub(crate) trait ProducerPort<T>: Upstream {
    fn subscribe(&self, req: Box<SubscribeRequest<T>>) -> Result<(), Box<SubscribeRequest<T>>>;
    fn upstream(&self) -> Arc<dyn Upstream>;
    fn wait_exit(&self) -> futures::future::BoxFuture<'_, ExitReason>;
}

/// A typed reference to anything that produces events of type `T` (a producer or a
/// producer_consumer): what consumers subscribe to.
pub struct ProducerRef<T> {
    pub(crate) port: Arc<dyn ProducerPort<T>>,
}

impl<T> Clone for ProducerRef<T> {
    fn clone(&self) -> Self {
        ProducerRef {
            port: self.port.clone(),
        }
    }
}

impl<T> fmt::Debug for ProducerRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProducerRef({})", self.port.pid())
    }
}

impl<T: Send + 'static> ProducerRef<T> {
    /// The producer's pid.
    pub fn pid(&self) -> Pid {
        self.port.pid()
    }

    /// Finds the producer of `T` events running as `pid` (by asking it for its port).
    /// Fails with `NotAProducer` when `pid` is a consumer or produces another type,
    /// and with `NoProc` when it is not alive.
    pub async fn from_pid(pid: Pid) -> Result<ProducerRef<T>, SubscribeError> {
        let (tx, rx) = oneshot::channel();
        match crate::send(pid, PortRequest::<T>(tx)) {
            Ok(()) => {}
            Err(crate::SendError::WrongType(_)) => return Err(SubscribeError::NotAProducer(pid)),
            Err(_) => return Err(SubscribeError::NoProc(pid)),
        }
        match rx.await {
            Ok(Some(port)) => Ok(ProducerRef { port }),
            Ok(None) => Err(SubscribeError::NotAProducer(pid)),
            Err(_) => Err(SubscribeError::NoProc(pid)),
        }
    }

    /// The producer registered as `name` (see [`ProducerRef::from_pid`]).
    pub async fn whereis(name: &str) -> Result<ProducerRef<T>, SubscribeError> {
        match crate::registry::whereis(name) {
            Some(pid) => Self::from_pid(pid).await,
            None => Err(SubscribeError::NoProc(Pid::NONE)),
        }
    }
}

/// Sent by pid to a stage to get its producer port (see [`ProducerRef::from_pid`]).
pub(crate) struct PortRequest<T>(pub(crate) oneshot::Sender<Option<Arc<dyn ProducerPort<T>>>>);
