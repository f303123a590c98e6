//! Reading: the reader task, frames handled where they lie, pass-through and
//! headed forms, and the silence detector (`net_ticktime`).

use super::*;

impl Conn {
    pub(super) async fn read_loop<R: AsyncRead + Unpin>(
        &self,
        r: &mut R,
        fd: RawFd,
        tick: Duration,
    ) -> String {
        match self.read_frames(r, fd, tick).await {
            Ok(()) => "connection closed by peer".into(),
            Err(e) => e,
        }
    }

    /// Reads and handles frames until the peer closes (`Ok`) or something fails.
    async fn read_frames<R: AsyncRead + Unpin>(
        &self,
        r: &mut R,
        fd: RawFd,
        tick: Duration,
    ) -> Result<(), String> {
        let max_frame = UPCALLS.get().map_or(128 << 20, |u| (u.max_frame)());
        let mut frag = Reassembly::new(max_frame);
        let mut live = Liveness::new(tick);
        let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
        let mut start = 0usize;
        let mut handed = 0usize;
        loop {
            // Handle every complete frame in the buffer, where it lies. What the
            // frames' handling queues for the writer task leaves in one write once they
            // are all handled (crate::read_batch).
            let mut big = None;
            let batch = crate::read_batch::Batch::open(self);
            if holds_two_frames(&buf[start..]) {
                // Several frames in one read (the answers to several callers, say):
                // the senders they wake queue for the writer task, which writes their
                // next frames in one batch, rather than the first of them writing
                // inline on its own and the rest after it. A lone frame (a request or
                // a reply) leaves the next send inline.
                self.recent_inline.store(true, Ordering::Release);
            }
            loop {
                let avail = &buf[start..];
                if avail.len() < 4 {
                    break;
                }
                let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
                if len > max_frame {
                    return Err(format!(
                        "frame of {len} bytes exceeds the limit of {max_frame}"
                    ));
                }
                if avail.len() < 4 + len {
                    if len >= BIG_FRAME {
                        big = Some(len);
                    }
                    break;
                }
                if len > 0 {
                    self.handle_frame(&mut frag, &buf[start + 4..start + 4 + len])?;
                }
                start += 4 + len;
                handed += len;
            }
            drop(batch);
            if let Some(len) = big {
                // Complete the big frame in place with reads of exactly its rest: what
                // was already read is not moved, and the frame is handled from here.
                let end = start + 4 + len;
                buf.reserve(end - buf.len());
                while buf.len() < end {
                    let want = (end - buf.len()) as u64;
                    if live
                        .read(r, fd, &mut buf, want, &self.recent_inline)
                        .await?
                        == 0
                    {
                        return Err(format!(
                            "connection closed in the middle of a frame ({} bytes pending)",
                            buf.len() - start
                        ));
                    }
                }
                self.handle_frame(&mut frag, &buf[start + 4..end])?;
                buf.clear();
                start = 0;
                if buf.capacity() > READ_BUF_KEEP {
                    buf = Vec::with_capacity(READ_BUF);
                }
                handed += len;
                if handed >= YIELD_AFTER {
                    // Let the processes just given big messages take them before more
                    // are decoded: memory stays bounded and warm.
                    handed = 0;
                    tokio::task::yield_now().await;
                }
                continue;
            }
            if handed >= YIELD_AFTER {
                handed = 0;
                tokio::task::yield_now().await;
            }
            if start > 0 {
                // Less than a big frame's worth remains: move it to the front.
                buf.drain(..start);
                start = 0;
            }
            // At most READ_BUF bytes are buffered this way (less than a big frame is
            // left over, so there is room for at least READ_BUF - BIG_FRAME more): a big
            // frame completed in place then needs at most READ_BUF + its own length.
            buf.reserve(READ_BUF.saturating_sub(buf.len()));
            let room = READ_BUF.saturating_sub(buf.len()).max(4) as u64;
            if live
                .read(r, fd, &mut buf, room, &self.recent_inline)
                .await?
                == 0
            {
                return if buf.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "connection closed in the middle of a frame ({} bytes pending)",
                        buf.len()
                    ))
                };
            }
        }
    }

    /// One frame: pass-through (112), or a distribution header (131: normal or
    /// fragmented, see [`crate::fragments`]).
    fn handle_frame(&self, frag: &mut Reassembly, frame: &[u8]) -> Result<(), String> {
        // One writer (this reader task): a load and a store, no read-modify-write.
        let bump =
            |c: &AtomicU64, by: u64| c.store(c.load(Ordering::Relaxed) + by, Ordering::Relaxed);
        bump(&self.frames_in, 1);
        bump(&self.bytes_in, frame.len() as u64 + 4);
        if frame[0] == VERSION {
            return frag.frame(frame, |m| self.handle_pass_through(m));
        }
        self.handle_pass_through(frame)
    }

    fn handle_pass_through(&self, frame: &[u8]) -> Result<(), String> {
        if frame.first() != Some(&PASS_THROUGH) {
            return Err(format!(
                "unsupported frame type {:?} (expected pass-through 112 or a header 131)",
                frame.first()
            ));
        }
        let body = &frame[1..];
        let limits = DecodeLimits {
            max_depth: 64,
            ..DecodeLimits::DEFAULT
        };
        // The controls that come often, read straight from the bytes; any other shape
        // (or a malformed one) takes the general path below.
        let fast = body
            .strip_prefix(&[VERSION])
            .and_then(|b| control::parse_fast(b, &limits));
        if let Some((f, used)) = fast {
            let rest = &body[1 + used..];
            payload_follows(f.has_payload(), rest)?;
            if let Some(u) = UPCALLS.get() {
                (u.fast)(self, f, rest);
            }
            return Ok(());
        }
        let (ctl, used) =
            Term::decode_prefix(body, &limits).map_err(|e| format!("bad control message: {e}"))?;
        let ctl = Control::parse(ctl).map_err(|e| e.to_string())?;
        let rest = &body[used..];
        payload_follows(ctl.has_payload(), rest)?;
        match UPCALLS.get() {
            Some(u) => (u.control)(self, ctl, rest).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// Checks what follows a control message: its payload (`131, ...`) when the operation
/// carries one, else nothing.
fn payload_follows(has_payload: bool, rest: &[u8]) -> Result<(), String> {
    if has_payload {
        if rest.first() != Some(&VERSION) {
            return Err("control message without its payload".into());
        }
    } else if !rest.is_empty() {
        return Err(format!(
            "{} unexpected bytes after the control message",
            rest.len()
        ));
    }
    Ok(())
}

/// The read side's silence detector: one timer firing every `net_ticktime / 4`; the
/// peer is declared down when it fires four times in a row with no byte read between.
struct Liveness {
    timer: Pin<Box<Sleep>>,
    period: Duration,
    quiet: u32,
    tick: Duration,
}

impl Liveness {
    fn new(tick: Duration) -> Liveness {
        let period = tick / 4;
        Liveness {
            timer: Box::pin(tokio::time::sleep(period)),
            period,
            quiet: 0,
            tick,
        }
    }

    /// Reads at most `max` bytes into the spare capacity of `buf`; 0 at end of stream.
    /// A read clears `recent_inline`: the next send (a reply, typically) may go inline.
    async fn read<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        fd: RawFd,
        buf: &mut Vec<u8>,
        max: u64,
        recent_inline: &AtomicBool,
    ) -> Result<usize, String> {
        loop {
            let mut limited = (&mut *r).take(max);
            tokio::select! {
                biased;
                res = limited.read_buf(buf) => {
                    return match res {
                        Ok(n) => {
                            if n > 0 {
                                crate::busy_wait::note_read(fd);
                                self.quiet = 0;
                                recent_inline.store(false, Ordering::Release);
                            }
                            Ok(n)
                        }
                        Err(e) => Err(format!("read error: {e}")),
                    };
                }
                () = self.timer.as_mut() => {
                    self.quiet += 1;
                    if self.quiet >= 4 {
                        return Err(format!(
                            "{TICK_TIMEOUT}: no data for {:?} {SILENT}",
                            self.tick
                        ));
                    }
                    let next = tokio::time::Instant::now() + self.period;
                    self.timer.as_mut().reset(next);
                }
            }
        }
    }
}

/// Whether `avail` holds a complete frame and at least the start of another.
fn holds_two_frames(avail: &[u8]) -> bool {
    let Some(len) = avail.first_chunk::<4>() else {
        return false;
    };
    (avail.len() - 4) as u64 > u64::from(u32::from_be_bytes(*len))
}
