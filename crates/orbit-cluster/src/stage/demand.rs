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

    /// Hands out the first `n` of some events to the subscribers with the most demand
    /// first, through `send(pid, tag, start, k)` (send events `start..start + k`),
    /// never more than a subscriber asked for. Returns how many were handed out: always
    /// the first ones; what nobody wants is the rest, for the caller to keep.
    pub(crate) fn dispatch(
        &mut self,
        n: usize,
        mut send: impl FnMut(Pid, &Term, usize, usize),
    ) -> usize {
        let mut sent = 0;
        while sent < n {
            let Some(best) = (0..self.subs.len())
                .filter(|&i| self.subs[i].demand > 0)
                .max_by_key(|&i| self.subs[i].demand)
            else {
                break;
            };
            let s = &mut self.subs[best];
            let k = usize::try_from(s.demand)
                .unwrap_or(usize::MAX)
                .min(n - sent);
            s.demand -= k as u64;
            send(s.pid, &s.tag, sent, k);
            sent += k;
        }
        sent
    }
}

/// Events `start..start + k` of the sequence `a` then `b`, as the same two slices cut
/// (empty where the range is outside them).
pub(crate) fn cut<'a, T>((a, b): (&'a [T], &'a [T]), start: usize, k: usize) -> (&'a [T], &'a [T]) {
    let end = start.saturating_add(k);
    let first = a.get(start.min(a.len())..end.min(a.len())).unwrap_or(&[]);
    let second = b
        .get(start.saturating_sub(a.len())..end.saturating_sub(a.len()).min(b.len()))
        .unwrap_or(&[]);
    (first, second)
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
        let mut got = Vec::new();
        let sent = d.dispatch(10, |_, t, start, k| got.push((t.clone(), start, k)));
        assert_eq!(got, vec![(Term::Int(0), 0, 3), (Term::Int(1), 3, 1)]);
        assert_eq!(sent, 4);
        let s = d.remove(0);
        assert_eq!(s.demand, 0);
        d.subs[0].demand = 0;
        assert_eq!(d.total(), 0);
    }

    #[test]
    fn cut_takes_a_range_across_both_halves() {
        let (a, b): (&[u8], &[u8]) = (&[0, 1, 2], &[3, 4]);
        assert_eq!(cut((a, b), 0, 2), (&[0u8, 1][..], &[][..]));
        assert_eq!(cut((a, b), 2, 2), (&[2u8][..], &[3u8][..]));
        assert_eq!(cut((a, b), 3, 2), (&[][..], &[3u8, 4][..]));
        assert_eq!(cut((a, b), 0, 5), (a, b));
        // Outside the events: empty, never a panic.
        assert_eq!(cut((a, b), 4, 9), (&[][..], &[4u8][..]));
        assert_eq!(cut((a, b), 9, 9), (&[][..], &[][..]));
        assert_eq!(cut((a, b), usize::MAX, usize::MAX), (&[][..], &[][..]));
    }
}
