//! Dispatchers: how a producer shares its events among its consumers.
//!
//! A dispatcher keeps each subscription's demand and decides which consumer gets which
//! events. The producer asks it how many events it can place now
//! ([`Dispatcher::capacity`]) and hands it batches of at most that many
//! ([`Dispatcher::dispatch`]); whatever it cannot place comes back and waits in the
//! producer's buffer. The producer keeps its own count of demand it has asked
//! `handle_demand` for, so a dispatcher never has to remember demand it already
//! forwarded — which is what lets a BroadcastDispatcher with unequal consumers drain
//! the buffer instead of stalling (GenStage issue 310).
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
    /// The subscription `tag` ended; forget it and its demand.
    fn cancel(&mut self, tag: Ref);
    /// Subscription `tag` asked for `n` more events.
    fn ask(&mut self, tag: Ref, n: usize);
    /// How many events [`dispatch`](Self::dispatch) can place now.
    fn capacity(&self) -> usize;
    /// Sends out `events` (at most [`capacity`](Self::capacity) of them are placed);
    /// returns those it could not place, in order. An error stops the producer.
    fn dispatch(&mut self, events: Vec<T>) -> Result<Vec<T>, DispatchError>;
    /// Events the dispatcher holds itself (a partition's queue), for introspection.
    fn queued(&self) -> usize {
        0
    }
}
