//! Errors of stages: each says what went wrong and what to do about it.

use crate::exit::ExitReason;
use crate::pid::Pid;

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// `min_demand` must be below `max_demand`, and `max_demand` at least 1.
    #[error("invalid demand: min_demand {min} must be below max_demand {max} (and max_demand at least 1); the default min_demand is max_demand / 2")]
    InvalidDemand {
        /// The `min_demand` given.
        min: usize,
        /// The `max_demand` given.
        max: usize,
    },
    /// The stage subscribed to is not a producer of this event type.
    #[error("{0} is not a producer of this event type (it is a consumer, or produces another type): subscribe to a producer or producer_consumer")]
    NotAProducer(Pid),
    /// Only consumers and producer_consumers subscribe to producers.
    #[error("{0} is a producer and cannot subscribe to another stage: only consumers and producer_consumers subscribe")]
    NotAConsumer(Pid),
    /// The producer was not alive (for `permanent` and `transient` subscriptions the
    /// consumer exits with `noproc` too, as in GenStage).
    #[error("noproc: the producer {0} is not alive")]
    NoProc(Pid),
    /// The partition already has a consumer (a PartitionDispatcher takes one per
    /// partition).
    #[error("partition {partition} is already taken by {by}: cancel that subscription first, or subscribe to another partition")]
    PartitionTaken {
        /// The partition asked for.
        partition: String,
        /// The consumer holding it.
        by: Pid,
    },
    /// The partition does not exist.
    #[error("unknown partition {partition}: the producer's partitions are {known}")]
    UnknownPartition {
        /// The partition asked for.
        partition: String,
        /// The partitions there are.
        known: String,
    },
    /// A PartitionDispatcher needs to know which partition the consumer takes.
    #[error("the producer uses a PartitionDispatcher: pass SubscribeOptions::partition")]
    PartitionRequired,
    /// This consumer is already subscribed to the BroadcastDispatcher.
    #[error("{0} is already subscribed to this producer (a BroadcastDispatcher takes each consumer once)")]
    AlreadySubscribed(Pid),
    /// The producer's `handle_subscribe` refused, stopping the producer.
    #[error("the producer stopped while handling the subscription: {0}")]
    Refused(ExitReason),
    /// The consumer exited before the subscription was made.
    #[error("the consumer exited before subscribing: {0}")]
    ConsumerExited(ExitReason),
    /// The producer exited before confirming the subscription.
    #[error("the producer exited before confirming the subscription: {0}")]
    ProducerExited(ExitReason),
    /// No confirmation in time.
    #[error("the subscription was not confirmed in time; the producer may be overloaded (check its message_queue_len)")]
    Timeout,
}

/// Why a stage did not start: [`gen_server`](crate::gen_server)'s `StartError` (a stage
/// fails with `Init` or `Spawn`, or `AlreadyStarted` when its name is taken).
pub use crate::gen_server::StartError;

/// A dispatcher could not place an event; the producer stops with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// The hash function returned a partition that does not exist.
    #[error("the PartitionDispatcher hash returned partition {partition}, but there are only {count} partitions (0..{count}); return an index below the count, or None to discard the event")]
    NoSuchPartition {
        /// What the hash returned.
        partition: usize,
        /// How many partitions there are.
        count: usize,
    },
}

/// A stage was asked for something it is not (e.g. a demand mode of a consumer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    /// The stage has exited.
    #[error("the stage {0} is not alive")]
    NoProc(Pid),
    /// The stage did not answer in time.
    #[error("the stage did not answer in time; it may be overloaded")]
    Timeout,
}
