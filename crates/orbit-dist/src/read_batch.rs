//! The frames of one read of a connection handled as a batch: the frames the reader's
//! own work queues for the connection's writer task meanwhile (the answers to
//! `SPAWN_REQUEST`s run on the reader, `spawn::reply_exited`) do not wake the writer
//! task; the end of the batch writes them, from the reader's thread when nothing else
//! is writing ([`Output::flush`]): one write for the read's answers, and no task
//! switch to the writer task (issue 20, crates/orbit-bench/README.md, erpc).
//!
//! A [`Batch`] is a guard on the reader's stack, opened before the read's frames are
//! handled and dropped (flushing) before the reader awaits anything: it is not `Send`,
//! so it cannot be held across an `.await` of a spawned task.

use std::cell::RefCell;
use std::marker::PhantomData;

/// The output side of a connection, as a batch uses it (the connection implements it;
/// this module sits below it).
pub(crate) trait Output {
    /// Writes what is queued: from this thread when nothing else is writing, else by
    /// the writer task (woken).
    fn flush(&self);
}

/// The identity of a connection (its address).
fn id<T: ?Sized>(conn: &T) -> *const () {
    (conn as *const T).cast::<()>()
}

/// The [`Batch`] open on this thread.
struct Open {
    /// The connection that read the frames (its address: an identity only).
    conn: *const (),
    /// Frames were queued for its writer task without waking it.
    queued: bool,
}

thread_local! {
    /// The [`Batch`] open on this thread, if one is.
    static OPEN: RefCell<Option<Open>> = const { RefCell::new(None) };
}

/// Whether a frame just queued for `conn`'s writer task waits for the end of the
/// [`Batch`] open on this thread for `conn`'s frames instead of waking the writer task:
/// the batch's end writes what was queued ([`Output::flush`]).
pub(crate) fn queue_held<T: Output>(conn: &T) -> bool {
    OPEN.with(|o| match o.borrow_mut().as_mut() {
        Some(open) if open.conn == id(conn) => {
            open.queued = true;
            true
        }
        _ => false,
    })
}

/// The frames of one read being handled; dropping it writes what they queued.
pub(crate) struct Batch<'a, T: Output> {
    conn: &'a T,
    /// Whether this guard opened the batch (a batch already open on this thread stays
    /// the one collecting, and its own guard flushes).
    opened: bool,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T: Output> Batch<'a, T> {
    /// Opens a batch on this thread for the frames `conn` read.
    pub(crate) fn open(conn: &'a T) -> Batch<'a, T> {
        let opened = OPEN.with(|o| {
            let mut o = o.borrow_mut();
            if o.is_some() {
                return false;
            }
            *o = Some(Open {
                conn: id(conn),
                queued: false,
            });
            true
        });
        Batch {
            conn,
            opened,
            _not_send: PhantomData,
        }
    }
}

impl<T: Output> Drop for Batch<'_, T> {
    fn drop(&mut self) {
        if !self.opened {
            return;
        }
        if let Some(Open { queued: true, .. }) = OPEN.with(|o| o.borrow_mut().take()) {
            // The answers queued while the read's frames were handled leave in one
            // write.
            self.conn.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A connection's output that counts its flushes.
    #[derive(Default)]
    struct Counted(AtomicUsize);

    impl Output for Counted {
        fn flush(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn frames_queued_during_a_read_leave_at_its_end() {
        let (c, other) = (Counted::default(), Counted::default());
        assert!(!queue_held(&c), "no batch open");
        {
            let _b = Batch::open(&c);
            assert!(queue_held(&c));
            assert!(queue_held(&c));
            assert!(!queue_held(&other), "only the reading connection's frames");
            {
                // A nested guard neither collects nor flushes.
                let _inner = Batch::open(&other);
                assert!(!queue_held(&other));
            }
            assert_eq!(
                c.0.load(Ordering::Relaxed),
                0,
                "nothing written before the end"
            );
        }
        assert_eq!(c.0.load(Ordering::Relaxed), 1, "one flush for the batch");
        assert_eq!(other.0.load(Ordering::Relaxed), 0);
        assert!(!queue_held(&c), "the batch is over");
        // A batch that queued nothing writes nothing.
        drop(Batch::open(&c));
        assert_eq!(c.0.load(Ordering::Relaxed), 1);
    }
}
