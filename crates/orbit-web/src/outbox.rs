//! A socket's outgoing queue: bounded, so a slow client cannot grow the server's memory
//! without bound.
//!
//! Frames wait here until the socket's writer sends them. When the queue holds
//! `capacity` frames, the [`Overflow`] policy decides: drop the oldest queued frame (the
//! client misses it; counted in [`Outbox::dropped`]) or close the socket (the client
//! reconnects and rejoins, as phoenix.js does). Replies count like any frame. Pushing
//! never blocks and never waits for the client; it fails only on a closed outbox.
//!
//! The outbox also holds the websocket close frame its writer sends last: whoever
//! closes it first with a code ([`Outbox::close_with`]; a full outbox with
//! `Disconnect`: 1013) decides it, before the writer can see the outbox closed, so the
//! code a client gets never depends on which task noticed the end first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// What a full outbox does with one more frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop the oldest queued frame to make room (the default).
    #[default]
    DropOldest,
    /// Close the socket: the client reconnects.
    Disconnect,
}

/// The shared outgoing queue of one socket (cheap to clone).
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Mutex<VecDeque<Arc<str>>>,
    capacity: usize,
    overflow: Overflow,
    ready: Notify,
    closed_n: Notify,
    closed: AtomicBool,
    /// The close frame to send (code, reason): the first one given wins.
    close_frame: OnceLock<(u16, &'static str)>,
    overflowed: AtomicBool,
    dropped: AtomicU64,
    sent: AtomicU64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Outbox(queued {}, dropped {}, closed {})",
            self.len(),
            self.dropped(),
            self.is_closed()
        )
    }
}

impl Outbox {
    /// An outbox of at most `capacity` frames (at least 1).
    pub fn new(capacity: usize, overflow: Overflow) -> Outbox {
        Outbox {
            inner: Arc::new(Inner {
                queue: Mutex::new(VecDeque::new()),
                capacity: capacity.max(1),
                overflow,
                ready: Notify::new(),
                closed_n: Notify::new(),
                closed: AtomicBool::new(false),
                close_frame: OnceLock::new(),
                overflowed: AtomicBool::new(false),
                dropped: AtomicU64::new(0),
                sent: AtomicU64::new(0),
            }),
        }
    }

    /// Queues `frame`; false when the outbox is closed (or closes now: a full outbox
    /// with [`Overflow::Disconnect`]).
    pub fn push(&self, frame: Arc<str>) -> bool {
        if self.is_closed() {
            return false;
        }
        {
            let mut q = self.inner.queue.lock();
            if q.len() >= self.inner.capacity {
                match self.inner.overflow {
                    Overflow::DropOldest => {
                        q.pop_front();
                        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Overflow::Disconnect => {
                        drop(q);
                        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                        self.inner.overflowed.store(true, Ordering::Release);
                        self.close_with(1013, "outbox full");
                        return false;
                    }
                }
            }
            q.push_back(frame);
        }
        self.inner.ready.notify_one();
        true
    }

    /// Takes every queued frame into `out`, waiting for one when none is queued;
    /// false once the outbox is closed (frames queued before the close are still
    /// returned first).
    pub async fn take(&self, out: &mut Vec<Arc<str>>) -> bool {
        loop {
            {
                let mut q = self.inner.queue.lock();
                if !q.is_empty() {
                    out.extend(q.drain(..));
                    self.inner
                        .sent
                        .fetch_add(out.len() as u64, Ordering::Relaxed);
                    return true;
                }
            }
            if self.is_closed() {
                return false;
            }
            self.inner.ready.notified().await;
        }
    }

    /// Closes the outbox: pushes fail from now on and the writer ends.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.closed_n.notify_waiters();
        self.inner.ready.notify_one();
    }

    /// Closes the outbox with the websocket close frame its writer sends last, unless
    /// one was given before (the first wins); the frame in effect.
    pub fn close_with(&self, code: u16, reason: &'static str) -> (u16, &'static str) {
        let frame = *self.inner.close_frame.get_or_init(|| (code, reason));
        self.close();
        frame
    }

    /// The close frame given with [`close_with`](Self::close_with), if any.
    pub fn close_frame(&self) -> Option<(u16, &'static str)> {
        self.inner.close_frame.get().copied()
    }

    /// Resolves once the outbox is closed.
    pub async fn wait_closed(&self) {
        loop {
            let n = self.inner.closed_n.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.is_closed() {
                return;
            }
            n.await;
        }
    }

    /// True when the outbox closed because it was full ([`Overflow::Disconnect`]).
    pub fn overflowed(&self) -> bool {
        self.inner.overflowed.load(Ordering::Acquire)
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Frames queued now.
    pub fn len(&self) -> usize {
        self.inner.queue.lock().len()
    }

    /// True when no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frames dropped by the overflow policy so far.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Frames handed to the writer so far.
    pub fn sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[tokio::test]
    async fn a_full_outbox_drops_the_oldest_and_counts() {
        let o = Outbox::new(2, Overflow::DropOldest);
        assert!(o.push(f("a")));
        assert!(o.push(f("b")));
        assert!(o.push(f("c")));
        assert_eq!(o.dropped(), 1);
        let mut out = Vec::new();
        assert!(o.take(&mut out).await);
        assert_eq!(out, vec![f("b"), f("c")]);
    }

    #[tokio::test]
    async fn a_full_outbox_with_disconnect_closes() {
        let o = Outbox::new(1, Overflow::Disconnect);
        assert!(o.push(f("a")));
        assert!(!o.push(f("b")));
        assert!(o.is_closed());
        assert_eq!(o.close_frame(), Some((1013, "outbox full")));
        assert_eq!(
            o.close_with(1000, "later"),
            (1013, "outbox full"),
            "the first wins"
        );
        let mut out = Vec::new();
        assert!(o.take(&mut out).await, "frames queued before the close");
        out.clear();
        assert!(!o.take(&mut out).await);
        assert!(!o.push(f("c")));
    }
}
