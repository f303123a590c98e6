//! The consumer's side of demand: how many events a subscription asks for, and when.
//!
//! GenStage's algorithm (`GenStage.Utils.split_batches/5`), kept exactly so pipelines
//! tuned for Elixir behave the same here:
//! - at subscription the consumer asks `max_demand`;
//! - incoming events are cut into batches of at most `max_demand - min_demand`;
//! - after each batch is handled, the outstanding demand drops by the batch's size; when
//!   it falls to `min_demand` or below, the consumer asks `max_demand - outstanding` and
//!   the outstanding demand is back at `max_demand`;
//! - the ask is sent after `handle_events` returns, never before.
//!
//! Worked example: max 1000, min 750. The first ask is 1000; events are handled in
//! batches of at most 250; after each batch of 250 the outstanding demand is 750, so
//! the consumer asks 250 more.
//!
//! Events beyond the outstanding demand (a producer that ignored the protocol) are still
//! handed over; they are logged as excess, as GenStage does.

/// Whether a producer forwards demand to `handle_demand` or stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DemandMode {
    /// Demand goes to `handle_demand` as it arrives (the default).
    #[default]
    Forward,
    /// Demand and emitted events are held until the mode is set back to `Forward`;
    /// used to wait until every consumer has subscribed.
    Accumulate,
}

/// One subscription's automatic demand: `max`, `min` and what is outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemandCounter {
    /// Events asked for and not yet handled (GenStage's stored demand).
    pending: usize,
    min: usize,
    max: usize,
}

/// One batch of a split: how many events go to `handle_events`, and how many to ask for
/// after it returns (0: no ask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Events in this batch.
    pub len: usize,
    /// Events to ask upstream once the batch is handled.
    pub ask: usize,
}

/// The split of one incoming message: what was outstanding when it arrived, so events
/// beyond it are recognised as excess.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    unreceived: usize,
}

impl DemandCounter {
    /// A counter for a fresh subscription; the caller asks `max` upstream at once.
    /// Requires `min < max` (validated by the subscribe options).
    pub fn new(min: usize, max: usize) -> DemandCounter {
        DemandCounter {
            pending: max,
            min,
            max,
        }
    }

    /// The largest batch handed to `handle_events`.
    pub fn batch_limit(&self) -> usize {
        (self.max - self.min).max(1)
    }

    /// Events asked for and not yet handled.
    pub fn outstanding(&self) -> usize {
        self.pending
    }

    /// Starts splitting a message that just arrived.
    pub fn arrive(&self) -> Arrival {
        Arrival {
            unreceived: self.pending,
        }
    }

    /// Accounts for the next batch out of `available` events of the message `arrival`;
    /// returns its size, the ask to send after handling it, and the excess (events
    /// beyond the demand, for logging).
    pub fn next_batch(&mut self, arrival: &mut Arrival, available: usize) -> (Batch, usize) {
        let len = available.min(self.batch_limit());
        let mut counted = len;
        let mut excess = 0;
        if len > arrival.unreceived {
            excess = len - arrival.unreceived;
            counted = arrival.unreceived;
            arrival.unreceived = 0;
        } else {
            arrival.unreceived -= len;
        }
        // `pending >= counted` holds unless events came in excess, hence the signed math.
        let left = self.pending as i64 - counted as i64;
        let ask = if left <= self.min as i64 {
            self.pending = self.max;
            (self.max as i64 - left) as usize
        } else {
            self.pending = left as usize;
            0
        };
        (Batch { len, ask }, excess)
    }
}

/// The batches GenStage's algorithm makes of `n` events arriving in one message on a
/// subscription in state `counter` (handy for tests and docs).
pub fn split(counter: &mut DemandCounter, mut n: usize) -> Vec<Batch> {
    let mut arrival = counter.arrive();
    let mut out = Vec::new();
    while n > 0 {
        let (b, _) = counter.next_batch(&mut arrival, n);
        n -= b.len;
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example() {
        let mut c = DemandCounter::new(750, 1000);
        let b = split(&mut c, 1000);
        assert_eq!(b, vec![Batch { len: 250, ask: 250 }; 4]);
        assert_eq!(c.outstanding(), 1000);
    }

    #[test]
    fn default_halves() {
        let mut c = DemandCounter::new(500, 1000);
        assert_eq!(
            split(&mut c, 1000),
            vec![Batch { len: 500, ask: 500 }, Batch { len: 500, ask: 500 }]
        );
        let mut c = DemandCounter::new(500, 1000);
        assert_eq!(split(&mut c, 300), vec![Batch { len: 300, ask: 0 }]);
        assert_eq!(split(&mut c, 300), vec![Batch { len: 300, ask: 600 }]);
    }
}
