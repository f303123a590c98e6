//! One connection to a peer node: framing, batched writes, ticks, and what the
//! connection must undo when it goes down.
//!
//! After the handshake every frame is `[Len:32][Payload]`; `Len = 0` is a tick.
//!
//! Writing. Senders append whole frames to the connection's output buffer under a short
//! lock. A frame that finds the connection idle (nothing queued, nobody writing, no
//! inline write since the last flush or read) is written at once by the sender itself
//! with one non-blocking syscall: no task switch on the request/reply path. Otherwise
//! the sender wakes the writer task, which takes everything queued and writes it with
//! one syscall: a burst of small messages costs one write, not one each. Whatever an
//! inline write leaves unwritten stays at the head of the buffer for the writer task, so
//! frames leave in the order they were appended. Every `net_ticktime / 4` the writer
//! sends a tick when nothing was written in that period. Frames sent before the
//! handshake finished wait in the buffer and go out once it does (or are dropped, as
//! Erlang drops them, if it fails).
//!
//! Reading. The reader task reads as much as the socket holds and handles every
//! complete frame where it lies; a big frame is completed in place (no copy of what was
//! already read). The peer is declared down after four periods of `net_ticktime / 4` in
//! a row without a byte (between 3/4 and all of `net_ticktime` of silence), checked by
//! one timer that is re-armed once per period rather than once per read.
//!
//! The connection also remembers the links and monitors that cross it, so that its
//! loss can deliver `noconnection` to every local process that depends on the peer.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orbit::{Pid, Ref};
use orbit_term::{DecodeLimits, Reference, Term};
use parking_lot::{Mutex, MutexGuard};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{watch, Notify};
use tokio::time::Sleep;

use crate::control::{self, Control, PASS_THROUGH, VERSION};
use crate::convert::LocalId;
use crate::error::DistError;
use crate::handshake::flags;

/// Where a connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Handshake under way.
    Pending,
    /// Connected.
    Up,
    /// Gone (the reason).
    Down(String),
}

/// Links and monitors that cross this connection.
#[derive(Default)]
pub(crate) struct Track {
    /// (local, remote) linked pairs.
    pub links: HashSet<(Pid, Pid)>,
    /// Monitors held by local watchers on remote targets: ref id → (ref, watcher, target).
    pub monitors_out: HashMap<u64, (Ref, Pid, Pid)>,
    /// Monitors held by remote watchers on local targets: wire ref → (watcher, target
    /// as monitored (pid or name), local target pid, local ref).
    pub monitors_in: HashMap<Reference, (Pid, Term, Pid, Ref)>,
    /// Local ref → wire ref, for [`monitors_in`](Self::monitors_in).
    pub monitors_in_by_ref: HashMap<Ref, Reference>,
}

/// The output side, under one lock.
struct Out {
    /// Frames waiting to be written: `buf[head..]` (what is before `head` was written).
    buf: Vec<u8>,
    head: usize,
    /// Set while the writer task writes a batch it took from here: nobody else may
    /// write until it is done, or frames would leave out of order.
    writing: bool,
    /// The socket, once the handshake finished (and until the connection closes).
    sock: Option<Arc<OwnedWriteHalf>>,
}

/// Why a frame was not queued on a connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The connection is closed.
    #[error(
        "the connection to {0} is closed: connect again (Node::connect), or wait for \
         NodeUp (Node::monitor_nodes)"
    )]
    Closed(Arc<str>),
    /// The message's writer failed: the message does not encode as a term.
    #[error("the message does not encode as a term: {0}")]
    Encode(String),
}

impl From<FrameError> for orbit::SendError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Closed(_) => orbit::SendError::Remote(e.to_string()),
            FrameError::Encode(why) => orbit::SendError::NotEncodable(why),
        }
    }
}

/// A connection to one peer.
pub struct Conn {
    /// The peer's full name.
    pub peer: Arc<str>,
    /// This node.
    pub(crate) local: LocalId,
    phase_tx: watch::Sender<Phase>,
    /// Negotiated flags (the OTP 25 baseline until the handshake ends).
    flags: AtomicU64,
    /// The peer's own flags.
    peer_flags: AtomicU64,
    out: Mutex<Out>,
    queued: AtomicUsize,
    wake: Notify,
    /// Set while a wake-up of the writer is pending, so a burst of sends notifies once.
    wake_pending: AtomicBool,
    /// Set after a sender wrote inline; cleared when the writer task runs and when data
    /// arrives from the peer. While set, sends queue for the writer, so a burst is
    /// batched instead of costing a syscall per message, while a request/reply exchange
    /// (where each send follows a read) writes every frame inline.
    recent_inline: AtomicBool,
    /// Set by inline writes; the writer's tick check takes it (a tick is only needed
    /// when nothing at all was written in a period).
    sent_inline: AtomicBool,
    drained: Notify,
    closed: AtomicBool,
    pub(crate) track: Mutex<Track>,
    reader: Mutex<Option<tokio::task::AbortHandle>>,
    unlink_id: AtomicU64,
}

/// Frames at least this long are completed in place by reads of exactly their rest.
const BIG_FRAME: usize = 64 << 10;

/// The read buffer's usual size; it is replaced by a fresh one of this size when a
/// very big frame grew it past [`READ_BUF_KEEP`].
const READ_BUF: usize = 256 << 10;
const READ_BUF_KEEP: usize = 4 << 20;

/// Bytes of messages handed to local processes after which the reader yields to them.
const YIELD_AFTER: usize = 512 << 10;

/// Output bytes above which [`Conn::wait_writable`] waits.
pub const HIGH_WATER: usize = 4 << 20;

impl Conn {
    pub(crate) fn new(peer: &str, local: LocalId) -> Arc<Conn> {
        Arc::new(Conn {
            peer: Arc::from(peer),
            local,
            phase_tx: watch::channel(Phase::Pending).0,
            flags: AtomicU64::new(flags::MANDATORY_25 | flags::DIST_MONITOR),
            peer_flags: AtomicU64::new(0),
            out: Mutex::new(Out {
                buf: Vec::with_capacity(64 << 10),
                head: 0,
                writing: false,
                sock: None,
            }),
            queued: AtomicUsize::new(0),
            wake: Notify::new(),
            wake_pending: AtomicBool::new(false),
            recent_inline: AtomicBool::new(false),
            sent_inline: AtomicBool::new(false),
            drained: Notify::new(),
            closed: AtomicBool::new(false),
            track: Mutex::new(Track::default()),
            reader: Mutex::new(None),
            unlink_id: AtomicU64::new(1),
        })
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase_tx.borrow().clone()
    }

    /// Waits until the handshake finishes: `Ok` when up,
    /// [`DistError::ConnectionDown`] with the reason when it failed.
    pub async fn wait_up(&self) -> Result<(), DistError> {
        let down = |reason: String| DistError::ConnectionDown {
            node: self.peer.to_string(),
            reason,
        };
        let mut rx = self.phase_tx.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                Phase::Up => return Ok(()),
                Phase::Down(r) => return Err(down(r.clone())),
                Phase::Pending => {}
            }
            if rx.changed().await.is_err() {
                return Err(down("connection dropped".into()));
            }
        }
    }

    pub(crate) fn set_phase(&self, p: Phase) {
        self.phase_tx.send_replace(p);
    }

    /// Negotiated flags.
    pub fn flags(&self) -> u64 {
        self.flags.load(Ordering::Relaxed)
    }

    /// True when the connection is visible (both nodes published).
    pub fn is_visible(&self) -> bool {
        self.flags() & flags::PUBLISHED != 0
    }

    /// The peer's own flags.
    pub fn peer_flags(&self) -> u64 {
        self.peer_flags.load(Ordering::Relaxed)
    }

    /// Bytes waiting to be written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Waits until fewer than [`HIGH_WATER`] bytes wait to be written (or the
    /// connection closed).
    pub async fn wait_writable(&self) {
        while self.queued() > HIGH_WATER && !self.closed.load(Ordering::Acquire) {
            let n = self.drained.notified();
            if self.queued() <= HIGH_WATER {
                break;
            }
            n.await;
        }
    }

    /// Appends one pass-through frame: `f` writes the control term (without its version
    /// byte) and, for messages, the whole message term (`131, ...`). When `f` fails the
    /// partial frame is removed and nothing is sent.
    #[inline]
    pub(crate) fn try_frame(
        &self,
        f: impl FnOnce(&mut Vec<u8>, &LocalId) -> Result<(), FrameError>,
    ) -> Result<(), FrameError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(FrameError::Closed(self.peer.clone()));
        }
        let mut o = self.out.lock();
        let start = o.buf.len();
        o.buf
            .extend_from_slice(&[0, 0, 0, 0, PASS_THROUGH, VERSION]);
        if let Err(e) = f(&mut o.buf, &self.local) {
            o.buf.truncate(start);
            return Err(e);
        }
        let len = (o.buf.len() - start - 4) as u32;
        o.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        self.queued
            .fetch_add(o.buf.len() - start, Ordering::Relaxed);
        // Alone in the buffer (`head` is 0 whenever nothing is pending).
        if start == 0
            && !o.writing
            && !self.recent_inline.load(Ordering::Acquire)
            && self.write_inline(&mut o)
        {
            return Ok(());
        }
        drop(o);
        self.wake_writer();
        Ok(())
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
    pub(crate) fn frame(&self, f: impl FnOnce(&mut Vec<u8>, &LocalId)) {
        let _ = self.try_frame(|o, l| {
            f(o, l);
            Ok(())
        });
    }

    /// A fresh id for `UNLINK_ID`.
    pub(crate) fn next_unlink_id(&self) -> u64 {
        self.unlink_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Stops the connection's tasks; the socket closes when they end.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.out.lock().sock.take();
        self.wake.notify_one();
        self.drained.notify_waiters();
        if let Some(a) = self.reader.lock().take() {
            a.abort();
        }
    }

    /// True once the connection was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Starts the reader and writer tasks on an authenticated stream.
    pub(crate) fn attach(
        self: &Arc<Self>,
        stream: tokio::net::TcpStream,
        negotiated: u64,
        peer_flags: u64,
        tick: Duration,
    ) {
        self.flags.store(negotiated, Ordering::Relaxed);
        self.peer_flags.store(peer_flags, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let w = Arc::new(w);
        if !self.closed.load(Ordering::Acquire) {
            self.out.lock().sock = Some(w.clone());
        }
        let me = self.clone();
        tokio::spawn(async move { me.write_loop(w, tick / 4).await });
        let me = self.clone();
        // The reader runs as a task so that the processes it wakes queue up behind it on
        // its worker and take a batch of messages each time they run.
        let reader = tokio::spawn(async move {
            let reason = me.read_loop(r, tick).await;
            crate::node::connection_lost(&me, reason);
        });
        *self.reader.lock() = Some(reader.abort_handle());
        if self.closed.load(Ordering::Acquire) {
            reader.abort();
        }
    }

    async fn write_loop(self: Arc<Self>, w: Arc<OwnedWriteHalf>, period: Duration) {
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
                if o.writing || o.buf.len() == o.head {
                    None
                } else {
                    o.writing = true;
                    std::mem::swap(&mut o.buf, &mut spare);
                    Some(std::mem::take(&mut o.head))
                }
            };
            if let Some(head) = head {
                let r = write_all(&w, &spare[head..]).await;
                self.out.lock().writing = false;
                if let Err(e) = r {
                    tracing::debug!(peer = %self.peer, error = %e, "write failed");
                    break;
                }
                self.queued.fetch_sub(spare.len() - head, Ordering::Relaxed);
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
                () = notified => {}
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

    async fn read_loop(&self, mut r: OwnedReadHalf, tick: Duration) -> String {
        match self.read_frames(&mut r, tick).await {
            Ok(()) => "connection closed by peer".into(),
            Err(e) => e,
        }
    }

    /// Reads and handles frames until the peer closes (`Ok`) or something fails.
    async fn read_frames(&self, r: &mut OwnedReadHalf, tick: Duration) -> Result<(), String> {
        let max_frame = crate::node::max_frame();
        let mut live = Liveness::new(tick);
        let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
        let mut start = 0usize;
        let mut handed = 0usize;
        loop {
            // Handle every complete frame in the buffer, where it lies.
            let mut big = None;
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
                    self.handle_frame(&buf[start + 4..start + 4 + len])?;
                }
                start += 4 + len;
                handed += len;
            }
            if let Some(len) = big {
                // Complete the big frame in place with reads of exactly its rest: what
                // was already read is not moved, and the frame is handled from here.
                let end = start + 4 + len;
                buf.reserve(end - buf.len());
                while buf.len() < end {
                    let want = (end - buf.len()) as u64;
                    if live.read(r, &mut buf, want, &self.recent_inline).await? == 0 {
                        return Err(format!(
                            "connection closed in the middle of a frame ({} bytes pending)",
                            buf.len() - start
                        ));
                    }
                }
                self.handle_frame(&buf[start + 4..end])?;
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
            if live.read(r, &mut buf, room, &self.recent_inline).await? == 0 {
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

    fn handle_frame(&self, frame: &[u8]) -> Result<(), String> {
        if frame[0] != PASS_THROUGH {
            return Err(format!(
                "unsupported frame type {} (expected pass-through 112)",
                frame[0]
            ));
        }
        let body = &frame[1..];
        if let Some((f, used)) = body.strip_prefix(&[VERSION]).and_then(control::parse_fast) {
            let rest = &body[1 + used..];
            if rest.first() != Some(&VERSION) {
                return Err("control message without its payload".into());
            }
            crate::dispatch::incoming_fast(self, f, rest);
            return Ok(());
        }
        let limits = DecodeLimits {
            max_depth: 64,
            ..DecodeLimits::DEFAULT
        };
        let (ctl, used) =
            Term::decode_prefix(body, &limits).map_err(|e| format!("bad control message: {e}"))?;
        let ctl = Control::parse(ctl).map_err(|e| e.to_string())?;
        let rest = &body[used..];
        if ctl.has_payload() {
            if rest.first() != Some(&VERSION) {
                return Err("control message without its payload".into());
            }
        } else if !rest.is_empty() {
            return Err(format!(
                "{} unexpected bytes after the control message",
                rest.len()
            ));
        }
        crate::dispatch::incoming(self, ctl, rest).map_err(|e| e.to_string())
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
    async fn read(
        &mut self,
        r: &mut OwnedReadHalf,
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
                                crate::busy_wait::note_read(r.as_ref().as_raw_fd());
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
                            "no data for {:?} (net_ticktime): peer unresponsive",
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

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({}, {:?})", self.peer, self.phase())
    }
}

// ---- control messages out ------------------------------------------------------------

impl Conn {
    /// `SEND` (or `SEND_SENDER` when negotiated) of a message written by `msg`
    /// (`131, ...`).
    #[inline]
    pub(crate) fn send_with(
        &self,
        from: Option<Pid>,
        to: Pid,
        msg: impl FnOnce(&mut Vec<u8>) -> Result<(), FrameError>,
    ) -> Result<(), FrameError> {
        let sender = from.filter(|_| self.flags() & flags::SEND_SENDER != 0);
        self.try_frame(|o, l| {
            control::tuple(o, 3);
            match sender {
                Some(f) => {
                    control::small(o, 22);
                    control::pid_w(o, f, l);
                }
                None => {
                    control::small(o, 2);
                    control::atom(o, "");
                }
            }
            control::pid_w(o, to, l);
            msg(o)
        })
    }

    /// `REG_SEND` to `name` on the peer.
    pub(crate) fn reg_send_with(
        &self,
        from: Pid,
        name: &str,
        msg: impl FnOnce(&mut Vec<u8>) -> Result<(), FrameError>,
    ) -> Result<(), FrameError> {
        self.try_frame(|o, l| {
            control::tuple(o, 4);
            control::small(o, 6);
            control::pid_w(o, from, l);
            control::atom(o, "");
            control::atom(o, name);
            msg(o)
        })
    }

    /// `ALIAS_SEND` to a reference.
    pub(crate) fn alias_send_with(
        &self,
        from: Pid,
        alias: &Reference,
        msg: impl FnOnce(&mut Vec<u8>) -> Result<(), FrameError>,
    ) -> Result<(), FrameError> {
        self.try_frame(|o, l| {
            control::tuple(o, 3);
            control::small(o, 33);
            control::pid_w(o, from, l);
            Term::Reference(Box::new(alias.clone())).encode_body(o);
            msg(o)
        })
    }

    /// `LINK`.
    pub(crate) fn link(&self, from: Pid, to: Pid) {
        self.frame(|o, l| {
            control::tuple(o, 3);
            control::small(o, 1);
            control::pid_w(o, from, l);
            control::pid_w(o, to, l);
        });
    }

    /// `UNLINK_ID` (or the old `UNLINK`).
    pub(crate) fn unlink(&self, from: Pid, to: Pid) {
        if self.flags() & flags::UNLINK_ID != 0 {
            let id = self.next_unlink_id();
            self.frame(|o, l| {
                control::tuple(o, 4);
                control::small(o, 35);
                Term::Int(id as i64).encode_body(o);
                control::pid_w(o, from, l);
                control::pid_w(o, to, l);
            });
        } else {
            self.frame(|o, l| {
                control::tuple(o, 3);
                control::small(o, 4);
                control::pid_w(o, from, l);
                control::pid_w(o, to, l);
            });
        }
    }

    /// `UNLINK_ID_ACK`.
    pub(crate) fn unlink_ack(&self, id: &Term, from: Pid, to: Pid) {
        self.frame(|o, l| {
            control::tuple(o, 4);
            control::small(o, 36);
            id.encode_body(o);
            control::pid_w(o, from, l);
            control::pid_w(o, to, l);
        });
    }

    /// `EXIT` (along a link) or `EXIT2` (`exit/2`).
    pub(crate) fn exit(&self, from: Pid, to: Pid, reason: &Term, link: bool) {
        self.frame(|o, l| {
            control::tuple(o, 4);
            control::small(o, if link { 3 } else { 8 });
            control::pid_w(o, from, l);
            control::pid_w(o, to, l);
            reason.encode_body(o);
        });
    }

    /// `MONITOR_P` from local `from` on `target` (a pid or a name term) with `r`.
    pub(crate) fn monitor(&self, from: Pid, target: &Term, r: Ref) {
        self.frame(|o, l| {
            control::tuple(o, 4);
            control::small(o, 19);
            control::pid_w(o, from, l);
            target.encode_body(o);
            control::ref_w(o, r, l);
        });
    }

    /// `DEMONITOR_P`.
    pub(crate) fn demonitor(&self, from: Pid, target: &Term, r: Ref) {
        self.frame(|o, l| {
            control::tuple(o, 4);
            control::small(o, 20);
            control::pid_w(o, from, l);
            target.encode_body(o);
            control::ref_w(o, r, l);
        });
    }

    /// Forgets the monitor a remote watcher holds on a local process under the wire
    /// reference `r` (both maps, and the local side of it); returns the watcher and the
    /// target as it was monitored, when there was one.
    pub(crate) fn forget_monitor_in(&self, r: &Reference) -> Option<(Pid, Term)> {
        let (watcher, target, local, lr) = {
            let mut t = self.track.lock();
            let e = t.monitors_in.remove(r)?;
            t.monitors_in_by_ref.remove(&e.3);
            e
        };
        orbit::signal::remove_remote_monitor(local, lr);
        Some((watcher, target))
    }

    /// `MONITOR_P_EXIT`: the local process (`target` as it was monitored) exited.
    pub(crate) fn monitor_exit(&self, target: &Term, watcher: Pid, r: &Reference, reason: &Term) {
        self.frame(|o, l| {
            control::tuple(o, 5);
            control::small(o, 21);
            target.encode_body(o);
            control::pid_w(o, watcher, l);
            Term::Reference(Box::new(r.clone())).encode_body(o);
            reason.encode_body(o);
        });
    }
}
