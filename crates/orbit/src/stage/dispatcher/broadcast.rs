//! BroadcastDispatcher: every consumer gets every event.
//!
//! Demand is the smallest pending demand over the consumers, so the slowest consumer
//! sets the pace. A subscription may carry a selector; events it rejects are not sent
//! and count as delivered (they do not use that consumer's demand). Each consumer may
//! subscribe once. Start the producer with `DemandMode::Accumulate` and switch to
//! `Forward` once every consumer has subscribed, so none misses the first events.
//!
//! Deliberate difference from GenStage: the dispatcher does not track demand it already
//! forwarded upstream (the producer does), so consumers with unequal `max_demand` never
//! leave events stuck in the producer's buffer (GenStage issue 310).

use std::sync::Arc;

use super::Dispatcher;
use crate::pid::Ref;
use crate::stage::error::{DispatchError, SubscribeError};
use crate::stage::subscription::{EventSink, Selector, Subscriber};

struct Entry<T> {
    tag: Ref,
    sink: Arc<dyn EventSink<T>>,
    demand: usize,
    selector: Option<Selector<T>>,
}

/// Sends every event to every consumer (events must be `Clone`).
pub struct BroadcastDispatcher<T> {
    entries: Vec<Entry<T>>,
}

impl<T> Default for BroadcastDispatcher<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> BroadcastDispatcher<T> {
    /// A dispatcher with no consumers yet.
    pub fn new() -> Self {
        BroadcastDispatcher {
            entries: Vec::new(),
        }
    }
}

impl<T: Clone + Send + 'static> Dispatcher<T> for BroadcastDispatcher<T> {
    fn subscribe(&mut self, sub: Subscriber<T>) -> Result<(), SubscribeError> {
        let pid = sub.pid();
        if self.entries.iter().any(|e| e.sink.pid() == pid) {
            return Err(SubscribeError::AlreadySubscribed(pid));
        }
        self.entries.push(Entry {
            tag: sub.tag,
            sink: sub.sink,
            demand: 0,
            selector: sub.selector,
        });
        Ok(())
    }

    fn cancel(&mut self, tag: Ref) {
        self.entries.retain(|e| e.tag != tag);
    }

    fn ask(&mut self, tag: Ref, n: usize) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.tag == tag) {
            e.demand += n;
        }
    }

    fn capacity(&self) -> usize {
        self.entries.iter().map(|e| e.demand).min().unwrap_or(0)
    }

    fn dispatch(&mut self, mut events: Vec<T>) -> Result<Vec<T>, DispatchError> {
        let n = events.len().min(self.capacity());
        if n == 0 {
            return Ok(events);
        }
        let later = events.split_off(n);
        let last = self.entries.len() - 1;
        let mut events = Some(events);
        for (i, e) in self.entries.iter_mut().enumerate() {
            // The last consumer takes the batch itself; the others get copies.
            let batch = if i == last {
                events.take().unwrap_or_default()
            } else {
                events.as_ref().cloned().unwrap_or_default()
            };
            let batch = match &e.selector {
                None => batch,
                Some(keep) => batch.into_iter().filter(|ev| keep(ev)).collect(),
            };
            e.demand -= batch.len();
            if !batch.is_empty() {
                e.sink.send_events(e.tag, batch);
            }
        }
        Ok(later)
    }
}
