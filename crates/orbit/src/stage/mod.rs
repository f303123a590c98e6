//! GenStage: demand-driven pipelines with backpressure, in stages that are ordinary
//! Orbit processes (linkable, monitorable, visible in `process_info`).
//!
//! The contract, as Elixir's `GenStage` (1.3) defines it:
//!
//! - **Kinds.** A [`Producer`] emits events in `handle_demand`; a [`Consumer`] handles
//!   them in `handle_events`; a [`ProducerConsumer`] does both. Events are typed and
//!   move between stages in batches (`Vec<T>`), one message per batch.
//! - **Subscription.** A consumer subscribes to a producer ([`StageRef::subscribe`] or
//!   `subscribe_to` at start) with [`SubscribeOptions`]: `max_demand` (1000),
//!   `min_demand` (`max_demand / 2`, must be below it) and a [`CancelMode`]. The
//!   consumer monitors the producer and the producer the consumer.
//! - **Demand.** The consumer asks `max_demand` at once. Each arriving message is cut
//!   into batches of at most `max_demand - min_demand`; after each batch is handled the
//!   outstanding demand drops by its size, and once it is at `min_demand` or below the
//!   consumer asks `max_demand - outstanding` — after the handler returns. (max 1000,
//!   min 750: batches of at most 250, asks of 250.) A consumer returning
//!   [`SubscribeMode::Manual`] asks itself with [`Subscription::ask`].
//! - **Producers** get `handle_demand(n)` when their dispatcher forwards new demand
//!   (as GenStage: on an ask, or a cancel that frees events; the buffer's oldest events
//!   serve it first, `handle_demand` the rest). They may emit fewer (the consumers keep
//!   waiting — [`StageContext::pending_demand`] counts what is owed — and events emitted
//!   later go straight out) or more (the excess waits in a buffer of `buffer_size`:
//!   10,000 for producers, unbounded for producer_consumers; on overflow [`BufferKeep`]
//!   `Last` drops the oldest, `First` the newest; drops are logged and counted). A
//!   producer started in [`DemandMode::Accumulate`] holds demand and events until
//!   [`StageRef::demand`]`(Forward)`, then replays them in the order they came.
//! - **Dispatchers** share a producer's events among its consumers:
//!   [`DemandDispatcher`] (default), [`BroadcastDispatcher`], [`PartitionDispatcher`].
//! - **Cancellation.** When a producer exits or cancels, its consumers' `handle_cancel`
//!   runs, then `Permanent` consumers exit with the same reason, `Transient` ones unless
//!   the reason is `normal`/`shutdown`/`{shutdown, _}`, `Temporary` ones never.
//!   Subscribing to a dead producer fails with `noproc` (and a permanent or transient
//!   consumer exits with it); a temporary subscription succeeds and does nothing.
//! - **Errors, never hangs.** `min_demand >= max_demand`, subscribing a producer to
//!   anything or anything to a consumer, a second consumer on a partition, an unknown
//!   partition: [`SubscribeError`] from `subscribe`. A partition hash returning a
//!   partition that does not exist stops the producer with [`DispatchError`].
//! - **Introspection.** [`StageRef::info`] reports buffered events, pending demand,
//!   events in and out and drops, read from counters the stage publishes.
//!
//! Checked against the real GenStage 1.3.2 (`tests/stage_diff.rs`, seeded random
//! scenarios run on both, compared exactly): for a producer with a DemandDispatcher, a
//! BroadcastDispatcher or a PartitionDispatcher and manual consumers, the sequence of
//! `handle_demand` values and every consumer's batches are the same for the same asks,
//! emits and consumer cancels. In particular: a PartitionDispatcher forwards each ask
//! upstream whole, even the part served from the partition's queue (GenStage's
//! `ask/3`), so a partition whose consumer asks little cannot use up the producer's
//! allowance and starve the others; a DemandDispatcher serves consumers in GenStage's
//! order (most demand first, ties in the order GenStage's `add_demand` leaves them). On
//! a consumer cancel, as GenStage: its unfilled demand (already forwarded) becomes
//! pending and absorbs later asks and unplaceable events (Demand and Partition
//! dispatchers); a cancelled partition's queued events are dropped and asked for again;
//! the buffer gives out only as many events as demand is forwarded, so after a cancel
//! events may stay buffered while a consumer still has demand, exactly as in GenStage.
//! Not checked differentially: producer_consumers, accumulate mode (one case checked by
//! hand in `tests/stage_demand.rs`), selectors, automatic demand, subscribing after
//! demand, producer-side cancels.
//!
//! Deliberate differences from GenStage, each an improvement on a known flaw:
//! - `subscribe` waits for the producer's confirmation, so a refused subscription is
//!   an error returned to the caller instead of a cancel arriving later;
//! - a BroadcastDispatcher forwards every rise of its smallest demand, also after a
//!   consumer subscribed late, so consumers with unequal `max_demand`s cannot leave
//!   events stuck in the buffer (GenStage issue 310);
//! - a PartitionDispatcher asks again for events its hash discards (GenStage does not,
//!   and a producer emitting exactly its demand then stalls);
//! - a cancelled consumer is removed from the dispatcher before `handle_cancel` runs,
//!   so events `handle_cancel` returns never go to it (GenStage may send them to it,
//!   and they are lost);
//! - user messages, casts and calls are one typed `Info` message (put a
//!   `oneshot::Sender` in it to answer).
//!
//! ```
//! use orbit::stage::{self, Consumer, ConsumerContext, Producer, ProducerContext,
//!                    ConsumerOptions, ProducerOptions, SubscribeOptions, Subscription};
//! use orbit::ExitReason;
//!
//! struct Counter(u64);
//! impl Producer for Counter {
//!     type Event = u64;
//!     type Info = ();
//!     async fn handle_demand(&mut self, demand: usize, _: &mut ProducerContext<Self>)
//!         -> Result<Vec<u64>, ExitReason> {
//!         let events = (self.0..self.0 + demand as u64).collect();
//!         self.0 += demand as u64;
//!         Ok(events)
//!     }
//! }
//!
//! struct Printer(tokio::sync::mpsc::UnboundedSender<u64>);
//! impl Consumer for Printer {
//!     type Event = u64;
//!     type Info = ();
//!     async fn handle_events(&mut self, events: Vec<u64>, _: &Subscription,
//!                            _: &mut ConsumerContext<Self>) -> Result<(), ExitReason> {
//!         for e in events { let _ = self.0.send(e); }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() {
//! let producer = stage::start_producer(Counter(0), ProducerOptions::new()).await.unwrap();
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! let consumer = stage::start_consumer(Printer(tx), ConsumerOptions::new()).await.unwrap();
//! consumer.subscribe(&producer.producer(), SubscribeOptions::new().max_demand(10)).await.unwrap();
//! assert_eq!(rx.recv().await, Some(0));
//! assert_eq!(rx.recv().await, Some(1));
//! # }
//! ```

mod buffer;
pub mod consumer;
pub mod consumer_supervisor;
pub mod demand;
pub mod dispatcher;
mod engine;
mod error;
pub mod producer;
pub mod producer_consumer;
mod stage_ref;
mod subscription;
mod supervised;

pub use buffer::BufferKeep;
pub use consumer::{start_consumer, Consumer, ConsumerContext, ConsumerOptions};
pub use consumer_supervisor::{
    ConsumerChildSpec, ConsumerRestart, ConsumerSupervisor, SupervisorRequest,
};
pub use demand::DemandMode;
pub use dispatcher::{BroadcastDispatcher, DemandDispatcher, Dispatcher, PartitionDispatcher};
pub use engine::StageContext;
pub use error::{DispatchError, StageError, StartError, SubscribeError};
pub use producer::{start_producer, Producer, ProducerContext, ProducerOptions};
pub use producer_consumer::{
    start_producer_consumer, ProducerConsumer, ProducerConsumerContext, ProducerConsumerOptions,
};
pub use stage_ref::{StageInfo, StageRef};
pub use subscription::{
    Cancel, CancelKind, CancelMode, ConsumerId, EventSink, PartitionKey, ProducerRef, Selector,
    SubscribeOptions, Subscriber, Subscription, Upstream,
};

/// The event type of a stage that takes or emits none (a producer's input, a
/// consumer's output). It has no values, so a `Vec<NoEvents>` is always empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoEvents {}

/// The kind of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    /// Emits events on demand.
    Producer,
    /// Handles events and emits events.
    ProducerConsumer,
    /// Handles events.
    Consumer,
}

impl StageKind {
    pub(crate) const fn produces(self) -> bool {
        !matches!(self, StageKind::Consumer)
    }

    pub(crate) const fn label(self) -> &'static str {
        match self {
            StageKind::Producer => "stage_producer",
            StageKind::ProducerConsumer => "stage_producer_consumer",
            StageKind::Consumer => "stage_consumer",
        }
    }
}

/// How a consumer's demand on one subscription is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscribeMode {
    /// The stage asks by the demand algorithm (the default).
    #[default]
    Automatic,
    /// The consumer asks itself with [`Subscription::ask`].
    Manual,
}
