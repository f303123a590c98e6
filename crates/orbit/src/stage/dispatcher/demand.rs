//! DemandDispatcher: each event to one consumer, the one with the largest pending
//! demand first (GenStage's default dispatcher). Ties are broken as GenStage's
//! `add_demand/4` does: a consumer whose demand just changed goes after those with
//! equal demand, so the same asks give the same deliveries (`tests/stage_diff.rs`).
//!
//! The first ask sets the maximum demand expected of every consumer; a consumer asking
//! for more is warned about, since it will starve the others. A cancelled consumer's
//! unfilled demand is simply forgotten; the producer does not ask for it again.

use std::sync::Arc;

use super::Dispatcher;
use crate::pid::Ref;
use crate::stage::error::{DispatchError, SubscribeError};
use crate::stage::subscription::{EventSink, Subscriber};

struct Entry<T> {
    tag: Ref,
    sink: Arc<dyn EventSink<T>>,
    demand: usize,
}

/// Sends each event to one consumer, largest pending demand first.
pub struct DemandDispatcher<T> {
    entries: Vec<Entry<T>>,
    /// Sum of `demand` over entries.
    total: usize,
    max: Option<usize>,
}

impl<T> Default for DemandDispatcher<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> DemandDispatcher<T> {
    /// A dispatcher whose expected maximum demand is set by the first ask.
    pub fn new() -> Self {
        DemandDispatcher {
            entries: Vec::new(),
            total: 0,
            max: None,
        }
    }

    /// A dispatcher expecting consumers to ask at most `max` events at a time.
    pub fn with_max_demand(max: usize) -> Self {
        DemandDispatcher {
            max: Some(max),
            ..Self::new()
        }
    }

    /// The entries are kept in GenStage's order (its `add_demand/4`): by demand, largest
    /// first, an entry whose demand changed going before the first with strictly less
    /// (so after those with equal demand). The head is served first.
    fn largest(&self) -> Option<usize> {
        self.entries.first().filter(|e| e.demand > 0).map(|_| 0)
    }

    fn insert(&mut self, e: Entry<T>) {
        let at = self
            .entries
            .iter()
            .position(|x| e.demand > x.demand)
            .unwrap_or(self.entries.len());
        self.entries.insert(at, e);
    }
}

impl<T: Send + 'static> Dispatcher<T> for DemandDispatcher<T> {
    fn subscribe(&mut self, sub: Subscriber<T>) -> Result<(), SubscribeError> {
        self.entries.push(Entry {
            tag: sub.tag,
            sink: sub.sink,
            demand: 0,
        });
        Ok(())
    }

    fn cancel(&mut self, tag: Ref) {
        if let Some(i) = self.entries.iter().position(|e| e.tag == tag) {
            let e = self.entries.remove(i);
            self.total -= e.demand;
        }
    }

    fn ask(&mut self, tag: Ref, n: usize) {
        let max = *self.max.get_or_insert(n);
        let Some(e) = self.entries.iter_mut().find(|e| e.tag == tag) else {
            return;
        };
        if n > max {
            tracing::warn!(
                consumer = %e.sink.pid(),
                expected = max,
                asked = n,
                "DemandDispatcher expects a maximum demand of {max}; using different maximum \
                 demands will overload greedy consumers"
            );
        }
        e.demand += n;
        self.total += n;
        // Keep GenStage's order: re-insert before the first entry with less demand.
        if let Some(i) = self.entries.iter().position(|e| e.tag == tag) {
            let e = self.entries.remove(i);
            self.insert(e);
        }
    }

    fn capacity(&self) -> usize {
        self.total
    }

    fn dispatch(&mut self, mut events: Vec<T>) -> Result<Vec<T>, DispatchError> {
        while !events.is_empty() {
            let Some(i) = self.largest() else { break };
            let e = &mut self.entries[i];
            let batch = if events.len() <= e.demand {
                std::mem::take(&mut events)
            } else {
                let rest = events.split_off(e.demand);
                std::mem::replace(&mut events, rest)
            };
            e.demand -= batch.len();
            self.total -= batch.len();
            // A dead consumer's events are lost, as messages to a dead pid are; its DOWN
            // is on the way and cancels the subscription.
            e.sink.send_events(e.tag, batch);
            let e = self.entries.remove(i);
            self.insert(e);
        }
        Ok(events)
    }
}
