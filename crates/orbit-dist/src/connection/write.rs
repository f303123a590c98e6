//! Writing: frames appended by senders (inline when the connection is idle, else
//! for the writer task), fragments of big messages, and the writer task with its
//! ticks. The rules are in the [module docs](super).

use super::*;

impl Conn {
    /// Appends one pass-through frame: `f` writes the control term (without its version
    /// byte) and, for messages, the whole message term (`131, ...`). When `f` fails the
    /// partial frame is removed and nothing is sent.
    #[inline]
    ///
    /// `sender` is the local process the frame is from (when there is one): its frames
    /// keep their order behind a big message of its own that is still going out as
    /// fragments. A message frame bigger than [`fragments::FRAGMENT_AT`] goes out as
    /// fragments when the peer has `DFLAG_FRAGMENTS`, written one at a time between
    /// batches of the other frames.
    pub(crate) fn try_frame(
        &self,
        sender: Option<Pid>,
        f: impl FnOnce(&mut Vec<u8>, &LocalId) -> Result<Option<usize>, FrameError>,
    ) -> Result<(), FrameError> {
        self.frame_with(sender, true, f)
    }

    /// Like [`try_frame`](Self::try_frame), but never writes from the caller's thread:
    /// the frame waits for the writer task (woken), so that frames the caller appends
    /// right after it (a spawned process's `SPAWN_REPLY` then its exit's
    /// `MONITOR_P_EXIT`) leave in one write instead of one syscall each.
    pub(crate) fn queue_frame(
        &self,
        sender: Option<Pid>,
        f: impl FnOnce(&mut Vec<u8>, &LocalId) -> Result<Option<usize>, FrameError>,
    ) -> Result<(), FrameError> {
        self.frame_with(sender, false, f)
    }

    #[inline]
    fn frame_with(
        &self,
        sender: Option<Pid>,
        inline: bool,
        f: impl FnOnce(&mut Vec<u8>, &LocalId) -> Result<Option<usize>, FrameError>,
    ) -> Result<(), FrameError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(FrameError::Closed(self.peer.clone()));
        }
        let mut o = self.out.lock();
        // Read under the lock: `attach` switches the form of the queued frames and the
        // flags together.
        let headers = self.flags() & flags::FRAGMENTS != 0;
        let start = o.buf.len();
        o.buf.extend_from_slice(if headers {
            &[0, 0, 0, 0, VERSION, fragments::NORMAL_HEADER, 0]
        } else {
            &[0, 0, 0, 0, PASS_THROUGH, VERSION]
        });
        let msg_at = match f(&mut o.buf, &self.local) {
            Ok(at) => at,
            Err(e) => {
                o.buf.truncate(start);
                return Err(e);
            }
        };
        let mut len = o.buf.len() - start - 4;
        o.frames_out += 1;
        o.bytes_out += len as u64 + 4;
        if headers && len > fragments::FRAGMENT_AT {
            if let Some(at) = msg_at {
                self.queued.fetch_add(len + 4, Ordering::Relaxed);
                self.queue_fragments(&mut o, start, at, sender);
                drop(o);
                self.wake_writer();
                return Ok(());
            }
        }
        if headers {
            // A normal header's terms go without their 131.
            if let Some(at) = msg_at {
                o.buf.remove(at);
                len -= 1;
            }
        }
        o.buf[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
        self.queued.fetch_add(len + 4, Ordering::Relaxed);
        if !o.big_senders.is_empty() && sender.is_some_and(|s| o.big_senders.contains_key(&s)) {
            let frame = o.buf.split_off(start);
            Self::queue_behind(&mut o, Big::Frame(frame), sender);
            drop(o);
            self.wake_writer();
            return Ok(());
        }
        // Alone in the buffer (`head` is 0 whenever nothing is pending).
        if inline
            && start == 0
            && !o.writing
            && (len + 4 >= INLINE_ALWAYS || !self.recent_inline.load(Ordering::Acquire))
            && self.write_inline(&mut o)
        {
            return Ok(());
        }
        if !inline && crate::read_batch::queue_held(self) {
            // Queued by the reader's own work: written when the read's frames are
            // handled (crate::read_batch).
            return Ok(());
        }
        drop(o);
        self.wake_writer();
        Ok(())
    }

    /// Moves the big message frame at `buf[start..]` (a normal header, its message term
    /// with its 131 at `at`) to the big queue as fragments; its bytes were counted in
    /// `queued` as they lay.
    #[cold]
    fn queue_fragments(
        &self,
        o: &mut MutexGuard<'_, Out>,
        start: usize,
        at: usize,
        sender: Option<Pid>,
    ) {
        let ctrl = at - (start + 7);
        // One copy, without the message's 131, while the lock is held.
        let mut data = Vec::with_capacity(o.buf.len() - start - 8);
        data.extend_from_slice(&o.buf[start + 7..at]);
        data.extend_from_slice(&o.buf[at + 1..]);
        o.buf.truncate(start);
        let seq = o.next_seq;
        o.next_seq += 1;
        let g = Outgoing::new(seq, data, ctrl);
        // The length, the header and the message's 131 do not go out as such.
        self.queued.fetch_sub(8, Ordering::Relaxed);
        Self::queue_behind(o, Big::Frags(g), sender);
    }

    /// Appends to the big queue, counting the sender's items there.
    #[cold]
    fn queue_behind(o: &mut MutexGuard<'_, Out>, item: Big, sender: Option<Pid>) {
        if let Some(s) = sender {
            *o.big_senders.entry(s).or_default() += 1;
        }
        o.big.push_back((sender, item));
    }

    /// Wakes the writer task unless a wake-up is already pending.
    fn wake_writer(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// On an idle connection, writes the queued bytes from the sender's own thread (one
    /// non-blocking syscall under the output lock, no task switch: the latency of a
    /// request/reply). True when everything went; what the socket did not take stays at
    /// the head of the buffer for the writer task.
    fn write_inline(&self, o: &mut MutexGuard<'_, Out>) -> bool {
        let Some(w) = o.sock.clone() else {
            return false;
        };
        let mut done = o.head;
        while done < o.buf.len() {
            match w.try_write(&o.buf[done..]) {
                Ok(n) if n > 0 => done += n,
                // WouldBlock, or an error the writer task will meet and report.
                _ => break,
            }
        }
        let wrote = done - o.head;
        o.writes_inline += 1;
        let before = self.queued.fetch_sub(wrote, Ordering::Relaxed);
        self.recent_inline.store(true, Ordering::Release);
        self.sent_inline.store(true, Ordering::Relaxed);
        if before > HIGH_WATER && before - wrote <= HIGH_WATER {
            self.drained.notify_waiters();
        }
        if done == o.buf.len() {
            o.buf.clear();
            o.head = 0;
            true
        } else {
            o.head = done;
            false
        }
    }

    /// Writes what is queued from the caller's thread when nobody else is writing (one
    /// non-blocking syscall, no task switch); what the socket does not take is left for
    /// the writer task, which is woken. For a sender in a loop: see [`crate::wait_writable`].
    pub(crate) fn flush(&self) {
        let mut o = self.out.lock();
        if o.writing || o.buf.len() == o.head || self.write_inline(&mut o) {
            return;
        }
        drop(o);
        self.wake_writer();
    }

    /// [`try_frame`](Self::try_frame) for writers that cannot fail.
    #[inline]
    pub(crate) fn frame(&self, sender: Option<Pid>, f: impl FnOnce(&mut Vec<u8>, &LocalId)) {
        let _ = self.try_frame(sender, |o, l| {
            f(o, l);
            Ok(None)
        });
    }

    pub(super) async fn write_loop<W: Sink>(self: Arc<Self>, mut w: W, period: Duration) {
        let mut spare: Vec<u8> = Vec::with_capacity(64 << 10);
        let mut check = std::pin::pin!(tokio::time::sleep(period));
        let mut wrote = false;
        loop {
            if self.closed.load(Ordering::Acquire) {
                break;
            }
            // A notify_one with nobody waiting leaves a permit, so a send between here
            // and the await below is not lost.
            let notified = self.wake.notified();
            // Cleared before the buffer is taken: a send after this point notifies again.
            self.wake_pending.store(false, Ordering::Release);
            self.recent_inline.store(false, Ordering::Release);
            let head = {
                let mut o = self.out.lock();
                if o.writing || (o.buf.len() == o.head && o.big.is_empty()) {
                    None
                } else {
                    o.writing = true;
                    o.writes_batched += 1;
                    std::mem::swap(&mut o.buf, &mut spare);
                    let head = std::mem::take(&mut o.head);
                    // Bytes the queue counted for what this batch writes.
                    let counted = spare.len() - head + take_big(&mut o, &mut spare);
                    Some((head, counted))
                }
            };
            if let Some((head, counted)) = head {
                // A write blocked on a full socket (a peer cut off acknowledges nothing)
                // must not outlive the connection: the socket would stay open until
                // TCP gives up, minutes later.
                let r = tokio::select! {
                    r = w.write_all_frames(&spare[head..]) => r,
                    () = self.closing() => Err(std::io::Error::other("connection closed")),
                };
                self.out.lock().writing = false;
                if let Err(e) = r {
                    tracing::debug!(peer = %self.peer, error = %e, "write failed");
                    break;
                }
                self.queued.fetch_sub(counted, Ordering::Relaxed);
                if self.queued() <= HIGH_WATER {
                    self.drained.notify_waiters();
                }
                if spare.capacity() > (64 << 20) {
                    spare = Vec::with_capacity(64 << 10);
                } else {
                    spare.clear();
                }
                wrote = true;
                continue;
            }
            tokio::select! {
                biased;
                () = notified => {
                    // Woken by a sender: let the tasks already runnable on this worker
                    // run first (this task goes to the back of its run queue, not the
                    // wake's LIFO slot), so that the senders among them append to this
                    // batch. Callers woken together by one read (the answers to their
                    // requests) then send their next requests in one write, not one
                    // syscall each.
                    yield_to_queue().await;
                }
                () = check.as_mut() => {
                    let inline = self.sent_inline.swap(false, Ordering::Relaxed);
                    if !std::mem::take(&mut wrote) && !inline {
                        // Nothing went out for a whole period: a tick, queued like a
                        // frame so that it cannot cut into one.
                        self.out.lock().buf.extend_from_slice(&[0, 0, 0, 0]);
                        self.queued.fetch_add(4, Ordering::Relaxed);
                    }
                    check.as_mut().reset(tokio::time::Instant::now() + period);
                }
            }
        }
        // Dropping the last handle on the write half shuts the socket's write side.
        self.out.lock().sock.take();
    }
}

/// Pending once, with this task woken: tokio then puts it at the back of its worker's
/// run queue (a task that wakes itself is scheduled as a yield, not into the LIFO
/// slot), behind the tasks already runnable there; bounded by that queue, unlike
/// `tokio::task::yield_now`, which defers to the worker's next park.
fn yield_to_queue() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
}

/// Appends the next fragment (or queued frame) of the big queue to `spare`; returns
/// the bytes the queue counted for it.
fn take_big(o: &mut Out, spare: &mut Vec<u8>) -> usize {
    let Some((sender, item)) = o.big.front_mut() else {
        return 0;
    };
    let sender = *sender;
    let (counted, finished) = match item {
        Big::Frags(g) => (g.next_fragment(spare), g.done()),
        Big::Frame(b) => {
            spare.extend_from_slice(b);
            (b.len(), true)
        }
    };
    if finished {
        o.big.pop_front();
        if let Some(s) = sender {
            if let Some(n) = o.big_senders.get_mut(&s) {
                *n -= 1;
                if *n == 0 {
                    o.big_senders.remove(&s);
                }
            }
        }
    }
    counted
}

/// Where the writer task puts its batches: the TCP write half it shares with inline
/// writers, or the write half of a TLS stream.
pub(crate) trait Sink {
    /// Writes all of `buf` (whole frames) and pushes it to the socket.
    fn write_all_frames(&mut self, buf: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send;
}

impl Sink for Arc<OwnedWriteHalf> {
    fn write_all_frames(&mut self, buf: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send {
        write_all(self, buf)
    }
}

/// The write half of a TLS stream.
pub(super) struct TlsSink<W>(pub(super) W);

impl<W: AsyncWrite + Unpin + Send> Sink for TlsSink<W> {
    async fn write_all_frames(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf).await?;
        self.0.flush().await
    }
}

/// Writes all of `buf` through a shared write half.
async fn write_all(w: &OwnedWriteHalf, buf: &[u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        w.writable().await?;
        match w.try_write(&buf[done..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
