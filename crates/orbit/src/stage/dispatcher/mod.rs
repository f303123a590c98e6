//! Dispatchers: how a producer shares its events among its consumers.
//!
//! A dispatcher keeps each subscription's demand and decides which consumer gets which
//! events. As in GenStage, an ask ([`Dispatcher::ask`]) or a cancel
//! ([`Dispatcher::cancel`]) returns the demand to forward upstream; the producer takes
//! that many events from its buffer and asks `handle_demand` for the rest. Events the
//! producer emits go to [`Dispatcher::dispatch`]; whatever it cannot place comes back
//! and waits in the producer's buffer, until a later ask or cancel returns demand again.
//! A producer_consumer instead takes input while [`Dispatcher::capacity`] is above
//! zero.
//!
//! - [`DemandDispatcher`] (the default): each event goes to one consumer, the one with
//!   the largest pending demand first.
//! - [`BroadcastDispatcher`]: every consumer gets every event (optionally filtered per
//!   subscription); demand is the smallest over consumers.
//! - [`PartitionDispatcher`]: each event goes to the consumer of the partition its hash
//!   picks; one consumer per partition.

mod broadcast;
mod demand;
mod partition;

pub use broadcast::BroadcastDispatcher;
pub use demand::DemandDispatcher;
pub use partition::PartitionDispatcher;

use super::error::{DispatchError, SubscribeError};
use super::subscription::Subscriber;
use crate::pid::Ref;

/// A producer's event-sharing policy. Implement it for a custom dispatcher.
pub trait Dispatcher<T>: Send + 'static {
    /// A consumer subscribed, with no demand yet; `Err` refuses it.
    fn subscribe(&mut self, sub: Subscriber<T>) -> Result<(), SubscribeError>;
    /// The subscription `tag` ended; forget it. Returns the demand to forward upstream
    /// (events it frees, such as a dropped partition queue: GenStage asks for them
    /// again).
    fn cancel(&mut self, tag: Ref) -> usize;
    /// Subscription `tag` asked for `n` more events. Returns the demand to forward
    /// upstream (at most `n` for the built-in dispatchers; less when earlier demand
    /// already covers it).
    fn ask(&mut self, tag: Ref, n: usize) -> usize;
    /// How many events [`dispatch`](Self::dispatch) can place now.
    fn capacity(&self) -> usize;
    /// Sends out `events` (at most [`capacity`](Self::capacity) of them are placed);
    /// returns those it could not place, in order. An error stops the producer.
    fn dispatch(&mut self, events: Vec<T>) -> Result<Vec<T>, DispatchError>;
    /// Demand that arose while dispatching (a broadcast selector rejected events, which
    /// then do not count against that consumer), to forward upstream; the producer
    /// calls it after each message. Most dispatchers have none.
    fn take_demand(&mut self) -> usize {
        0
    }
    /// Events the dispatcher holds itself (a partition's queue), for introspection.
    fn queued(&self) -> usize {
        0
    }
}
