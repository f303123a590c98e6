//! BroadcastDispatcher: every consumer gets every event.
//!
//! Demand is the smallest pending demand over the consumers, so the slowest consumer
//! sets the pace. A subscription may carry a selector; events it rejects are not sent
//! and count as delivered (they do not use that consumer's demand). Each consumer may
//! subscribe once. Start the producer with `DemandMode::Accumulate` and switch to
//! `Forward` once every consumer has subscribed, so none misses the first events.
//!
//! Demand forwarded upstream is the rise of that smallest demand (on an ask, a cancel,
//! or after a dispatch in which selectors rejected events), as GenStage's
//! `sync_demands` computes it when every consumer subscribed before asking.
//!
//! Deliberate difference from GenStage: a consumer subscribing later (its demand is 0)
//! lowers the smallest demand, and the next rises are forwarded again. GenStage keeps
//! counting the demand it forwarded before, so with consumers of unequal `max_demand`
//! it stops asking and events stay stuck in the producer's buffer (GenStage issue
//! 310); here every rise of the smallest demand takes buffered events first.

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
    /// The capacity as far as it was forwarded upstream (never above `capacity()`).
    reported: usize,
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
            reported: 0,
        }
    }
}

impl<T> BroadcastDispatcher<T> {
    fn min_demand(&self) -> usize {
        self.entries.iter().map(|e| e.demand).min().unwrap_or(0)
    }

    /// The rise of the smallest demand since it was last forwarded.
    fn rise(&mut self) -> usize {
        let now = self.min_demand();
        let rise = now.saturating_sub(self.reported);
        self.reported = now;
        rise
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
        // A new consumer has no demand yet: nothing more can be placed until it asks.
        self.reported = self.reported.min(self.min_demand());
        Ok(())
    }

    fn cancel(&mut self, tag: Ref) -> usize {
        self.entries.retain(|e| e.tag != tag);
        self.rise()
    }

    fn ask(&mut self, tag: Ref, n: usize) -> usize {
        if let Some(e) = self.entries.iter_mut().find(|e| e.tag == tag) {
            e.demand += n;
        }
        self.rise()
    }

    fn capacity(&self) -> usize {
        self.min_demand()
    }

    fn take_demand(&mut self) -> usize {
        self.rise()
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
        // Placed events were forwarded demand; a selector's rejections leave the
        // smallest demand higher, which `take_demand` then forwards.
        self.reported = self.reported.saturating_sub(n).min(self.min_demand());
        Ok(later)
    }
}
