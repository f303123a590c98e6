//! A producer's buffer: events emitted while no consumer can take them.
//!
//! GenStage's rules: the buffer holds at most `buffer_size` events (10,000 for a
//! producer, unbounded for a producer_consumer); on overflow `BufferKeep::Last` (the
//! default) drops the oldest events and `BufferKeep::First` drops the incoming ones. The
//! number dropped is reported to the caller, which logs it and counts it.
//!
//! Events are kept in the batches they were emitted in, so a batch that fits is moved,
//! never copied, and taking a whole batch back out is free.

use std::collections::VecDeque;

/// Which events a full buffer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BufferKeep {
    /// Keep the first events; drop incoming ones on overflow.
    First,
    /// Keep the last events; drop the oldest on overflow (the default).
    #[default]
    Last,
}

/// Events waiting for demand, in emission order.
#[derive(Debug)]
pub(crate) struct Buffer<T> {
    chunks: VecDeque<Vec<T>>,
    len: usize,
    /// `None`: unbounded.
    size: Option<usize>,
    keep: BufferKeep,
}

impl<T> Buffer<T> {
    pub(crate) fn new(size: Option<usize>, keep: BufferKeep) -> Self {
        Buffer {
            chunks: VecDeque::new(),
            len: 0,
            size,
            keep,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `events`; returns how many events were dropped to stay within the size.
    pub(crate) fn push(&mut self, mut events: Vec<T>) -> usize {
        if events.is_empty() {
            return 0;
        }
        let Some(size) = self.size else {
            self.len += events.len();
            self.chunks.push_back(events);
            return 0;
        };
        match self.keep {
            BufferKeep::First => {
                let room = size - self.len;
                let dropped = events.len().saturating_sub(room);
                events.truncate(room);
                if !events.is_empty() {
                    self.len += events.len();
                    self.chunks.push_back(events);
                }
                dropped
            }
            BufferKeep::Last => {
                let mut dropped = 0;
                if events.len() > size {
                    let cut = events.len() - size;
                    events.drain(..cut);
                    dropped += cut;
                }
                if events.is_empty() {
                    return dropped;
                }
                self.len += events.len();
                self.chunks.push_back(events);
                if self.len > size {
                    let over = self.len - size;
                    self.drop_front(over);
                    dropped += over;
                }
                dropped
            }
        }
    }

    fn drop_front(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.len -= front.len();
                self.chunks.pop_front();
            } else {
                front.drain(..n);
                self.len -= n;
                n = 0;
            }
        }
    }

    /// Puts back events taken but not placed, ahead of the rest (no size check: they
    /// were already counted).
    pub(crate) fn push_front(&mut self, events: Vec<T>) {
        if !events.is_empty() {
            self.len += events.len();
            self.chunks.push_front(events);
        }
    }

    /// Takes up to `n` of the oldest events, as one batch.
    pub(crate) fn take(&mut self, n: usize) -> Vec<T> {
        let Some(front) = self.chunks.front_mut() else {
            return Vec::new();
        };
        if front.len() > n {
            // Split the oldest batch: the first `n` go out, the rest stay in place.
            let rest = front.split_off(n);
            let out = std::mem::replace(front, rest);
            self.len -= n;
            return out;
        }
        // The front batch fits whole: move it out, then top it up from the next ones.
        let mut out = self.chunks.pop_front().unwrap_or_default();
        self.len -= out.len();
        while out.len() < n {
            let Some(next) = self.chunks.front_mut() else {
                break;
            };
            let want = n - out.len();
            if next.len() <= want {
                self.len -= next.len();
                out.append(next);
                self.chunks.pop_front();
            } else {
                out.extend(next.drain(..want));
                self.len -= want;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_last_drops_oldest() {
        let mut b = Buffer::new(Some(5), BufferKeep::Last);
        assert_eq!(b.push(vec![1, 2, 3]), 0);
        assert_eq!(b.push(vec![4, 5, 6, 7]), 2);
        assert_eq!(b.take(10), vec![3, 4, 5, 6, 7]);
        assert_eq!(b.push((0..12).collect()), 7);
        assert_eq!(b.take(10), vec![7, 8, 9, 10, 11]);
    }

    #[test]
    fn keep_first_drops_incoming() {
        let mut b = Buffer::new(Some(5), BufferKeep::First);
        assert_eq!(b.push(vec![1, 2, 3]), 0);
        assert_eq!(b.push(vec![4, 5, 6, 7]), 2);
        assert_eq!(b.take(2), vec![1, 2]);
        assert_eq!(b.take(10), vec![3, 4, 5]);
        assert!(b.is_empty());
    }

    #[test]
    fn take_spans_batches() {
        let mut b = Buffer::new(None, BufferKeep::Last);
        b.push(vec![1, 2]);
        b.push(vec![3, 4, 5]);
        b.push(vec![6]);
        assert_eq!(b.take(4), vec![1, 2, 3, 4]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.take(4), vec![5, 6]);
        assert_eq!(b.push(Vec::new()), 0);
        assert_eq!(Buffer::new(Some(0), BufferKeep::Last).push(vec![1]), 1);
    }
}
