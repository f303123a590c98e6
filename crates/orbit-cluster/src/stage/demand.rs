//! Demand on both sides of a subscription, as GenStage counts it.
//!
//! [`Upstream`]: a consumer's count for one producer (`Utils.split_batches`): it asks
//! `max_demand` when it subscribes; events arriving are cut into batches of at most
//! `max_demand - min_demand`; once the demand still outstanding at the producer falls to
//! `min_demand` or below, the consumer asks for what brings it back to `max_demand`,
//! after handling the batch. Events beyond the outstanding demand are an excess: logged,
//! and counted as GenStage does (the batch still runs).
//!
//! [`Downstream`]: a producer's consumers and the demand each has asked for and not yet
//! received (GenStage's `DemandDispatcher`): events go to the consumer with the most
//! demand first, never more than a consumer asked for; what no consumer wants stays in
//! the producer's buffer. Demand of a cancelled consumer that the producer had already
//! forwarded to its callback is remembered (`pending`) and taken off the next asks, so
//! the callback is not asked twice for the same events.

use std::collections::VecDeque;

use orbit::Pid;
use orbit_term::Term;

/// A consumer's demand towards one producer.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub max: u64,
    pub min: u64,
    /// Demand asked for and not yet received (GenStage's stored `demand`).
    level: u64,
}

/// One batch of events for the callback and the demand to ask for after it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Batch {
    pub len: usize,
    pub ask: u64,
}

impl Upstream {
    /// A subscription that has just asked for `max` (`min < max`, checked by the caller).
    pub(crate) fn new(max: u64, min: u64) -> Upstream {
        Upstream {
            max,
            min: min.min(max.saturating_sub(1)),
            level: max,
        }
    }

    /// Cuts `n` arriving events into batches; returns them and how many events were in
    /// excess of the outstanding demand (0 when the producer honoured it).
    pub(crate) fn split(&mut self, n: usize) -> (Vec<Batch>, u64) {
        let step = (self.max - self.min).max(1);
        let mut left = n as u64;
        let mut old = self.level;
        let mut new = self.level;
        let mut out = Vec::new();
        let mut excess = 0;
        while left > 0 {
            let len = left.min(step);
            left -= len;
            let counted = if len > old {
                excess += len - old;
                std::mem::replace(&mut old, 0)
            } else {
                old -= len;
                len
            };
            let diff = new.saturating_sub(counted);
            let ask = if diff <= self.min {
                new = self.max;
                self.max - diff
            } else {
                new = diff;
                0
            };
            out.push(Batch {
                len: len as usize,
                ask,
            });
        }
        self.level = new;
        (out, excess)
    }
}

/// A consumer of a producer: where to send and what it still wants.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub pid: Pid,
    pub tag: Term,
    pub demand: u64,
    /// The monitor on the consumer.
    pub monitor: orbit::Ref,
}

/// A producer's consumers (GenStage's `DemandDispatcher`).
#[derive(Debug, Default)]
pub(crate) struct Downstream {
    pub subs: Vec<Subscriber>,
    /// Demand of cancelled consumers already forwarded to the callback.
    pending: u64,
}

impl Downstream {
    /// Index of the subscriber with this tag.
    pub(crate) fn find(&self, tag: &Term) -> Option<usize> {
        self.subs.iter().position(|s| &s.tag == tag)
    }

    /// Records `n` more demand from subscriber `i`; returns the demand to forward to the
    /// producer's callback (less what cancelled consumers left unmet).
    pub(crate) fn ask(&mut self, i: usize, n: u64) -> u64 {
        self.subs[i].demand = self.subs[i].demand.saturating_add(n);
        let already = self.pending.min(n);
        self.pending -= already;
        n - already
    }

    /// Removes subscriber `i`; its unmet demand becomes `pending`.
    pub(crate) fn remove(&mut self, i: usize) -> Subscriber {
        let s = self.subs.remove(i);
        self.pending = self.pending.saturating_add(s.demand);
        s
    }

    /// Total demand the subscribers wait for.
    pub(crate) fn total(&self) -> u64 {
        self.subs
            .iter()
            .fold(0u64, |t, s| t.saturating_add(s.demand))
    }

    /// Hands events from the front of `buffer` to the subscribers with the most demand
    /// first, through `send(pid, tag, buffer, k)` (send the first `k` events of
    /// `buffer`; they are removed after it returns); what nobody wants stays in
    /// `buffer`. Returns how many events left.
    pub(crate) fn dispatch<E>(
        &mut self,
        buffer: &mut VecDeque<E>,
        mut send: impl FnMut(Pid, &Term, &VecDeque<E>, usize),
    ) -> usize {
        let mut sent = 0;
        while !buffer.is_empty() {
            let Some(best) = (0..self.subs.len())
                .filter(|&i| self.subs[i].demand > 0)
                .max_by_key(|&i| self.subs[i].demand)
            else {
                break;
            };
            let s = &mut self.subs[best];
            let k = (s.demand as usize).min(buffer.len());
            s.demand -= k as u64;
            sent += k;
            send(s.pid, &s.tag, buffer, k);
            buffer.drain(..k);
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_back_when_min_is_reached() {
        // max 10, min 5: batches of 5; after 5 events the level is 5 (= min): ask 5.
        let mut u = Upstream::new(10, 5);
        let (b, ex) = u.split(10);
        assert_eq!(ex, 0);
        assert_eq!(b, vec![Batch { len: 5, ask: 5 }, Batch { len: 5, ask: 5 }]);
        // max 10, min 0: batches of 10, ask 10 after each.
        let mut u = Upstream::new(10, 0);
        assert_eq!(u.split(3).0, vec![Batch { len: 3, ask: 0 }]);
        assert_eq!(u.split(7).0, vec![Batch { len: 7, ask: 10 }]);
    }

    #[test]
    fn excess_is_counted() {
        let mut u = Upstream::new(2, 1);
        let (_, ex) = u.split(5);
        assert!(ex > 0);
    }

    #[test]
    fn dispatch_never_exceeds_demand() {
        let mut d = Downstream::default();
        for i in 0..2 {
            d.subs.push(Subscriber {
                pid: Pid::NONE,
                tag: Term::Int(i),
                demand: 0,
                monitor: orbit::Ref::make(),
            });
        }
        assert_eq!(d.ask(0, 3), 3);
        assert_eq!(d.ask(1, 1), 1);
        let mut buf: VecDeque<Term> = (0..10).map(Term::Int).collect();
        let mut got = Vec::new();
        d.dispatch(&mut buf, |_, t, _, k| got.push((t.clone(), k)));
        assert_eq!(got, vec![(Term::Int(0), 3), (Term::Int(1), 1)]);
        assert_eq!(buf.len(), 6);
        let s = d.remove(0);
        assert_eq!(s.demand, 0);
        d.subs[0].demand = 0;
        assert_eq!(d.total(), 0);
    }
}
