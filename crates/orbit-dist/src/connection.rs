//! One connection to a peer node: framing, batched writes, ticks, and what the
//! connection must undo when it goes down.
//!
//! After the handshake every frame is `[Len:32][Payload]`; `Len = 0` is a tick.
//!
//! Writing. Senders append whole frames to the connection's output buffer under a short
//! lock. A frame that finds the connection idle (nothing queued, nobody writing, no
//! inline write since the last flush or read) is written at once by the sender itself
//! with one non-blocking syscall: no task switch on the request/reply path. A frame of
//! at least [`INLINE_ALWAYS`] bytes is written inline whenever nothing is queued and
//! nobody writes, even right after another inline write: its syscall is paid for by its
//! size, and waiting for the writer task would only add a task switch (a stream of
//! event batches, GenStage's `$gen_consumer` messages, is one such frame per batch).
//! Otherwise the sender wakes the writer task, which takes everything queued and writes
//! it with one syscall: a burst of small messages costs one write, not one each. Whatever an
//! inline write leaves unwritten stays at the head of the buffer for the writer task, so
//! frames leave in the order they were appended. Every `net_ticktime / 4` the writer
//! sends a tick when nothing was written in that period. A write blocked on a full
//! socket ends when the connection goes down (a peer cut off acknowledges nothing: the
//! socket would otherwise stay open until TCP gives up, minutes later). Frames sent before the
//! handshake finished wait in the buffer and go out once it does (or are dropped, as
//! Erlang drops them, if it fails).
//!
//! Reading. The reader task reads as much as the socket holds and handles every
//! complete frame where it lies; a big frame is completed in place (no copy of what was
//! already read). The peer is declared down after four periods of `net_ticktime / 4` in
//! a row without a byte (between 3/4 and all of `net_ticktime` of silence), checked by
//! one timer that is re-armed once per period rather than once per read. Such a
//! connection is reset (RST), not closed: a FIN would queue behind data the silent
//! peer never acknowledged, and a peer cut off in one direction only (it still hears
//! us) would wait for its own tick timeout to notice. OTP closes normally here.
//!
//! Forms. With a peer that has `DFLAG_FRAGMENTS` (every OTP 25+ node and Orbit) frames
//! carry a normal distribution header (`131, 68, 0, Ctrl, Msg`; the BEAM refuses
//! pass-through frames once the flag is negotiated), and a message frame over 64 KiB is
//! cut into fragments that the writer task sends one per batch, after the batch's small
//! frames, so a 10 MB message does not hold up small ones. Frames of a sender whose big
//! message is still going out queue behind it (per-sender order, as Erlang guarantees).
//! Frames queued during the handshake are pass-through and converted when it ends.
//! Incoming headers and fragments are reassembled by [`crate::fragments::Reassembly`].
//!
//! Transport. The stream is plain TCP or TLS (`tls::Stream`); the tasks are
//! generic over it (no dynamic dispatch per frame). Inline writes exist on TCP only: a
//! TLS stream is written by the writer task.
//!
//! The connection also remembers the links and monitors that cross it, so that its
//! loss can deliver `noconnection` to every local process that depends on the peer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orbit::{Pid, Ref};
use orbit_term::{DecodeLimits, Reference, Term};
use parking_lot::{Mutex, MutexGuard};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{watch, Notify};
use tokio::time::Sleep;

use crate::control::{self, Control, PASS_THROUGH, VERSION};
use crate::convert::LocalId;
use crate::error::DistError;
use crate::fragments::{self, Outgoing, Reassembly};
use crate::handshake::flags;

/// What a connection hands to the layers above it. The wire imports nothing above
/// itself: the node installs these once at start ([`set_upcalls`]); until then frames
/// are dropped and a lost connection is only closed.
pub(crate) struct Upcalls {
    /// A control read by the fast path ([`control::parse_fast`]: sends, erpc controls).
    pub fast: fn(&Conn, control::Fast<'_>, &[u8]),
    /// Any other control message, with its payload (`131, ...`) or nothing.
    pub control: fn(&Conn, Control, &[u8]) -> Result<(), DistError>,
    /// The reader stopped (the reason); the node takes the connection down.
    pub lost: fn(&Arc<Conn>, String),
    /// The largest frame accepted from a peer.
    pub max_frame: fn() -> usize,
}

static UPCALLS: std::sync::OnceLock<Upcalls> = std::sync::OnceLock::new();

/// Installs the upcalls (the first call wins: one node per OS process).
pub(crate) fn set_upcalls(u: Upcalls) {
    let _ = UPCALLS.set(u);
}

/// How the reason of a tick timeout starts (the node reports `net_tick_timeout`).
pub(crate) const TICK_TIMEOUT: &str = "net_tick_timeout";

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
    /// Big messages going out as fragments, and frames of their senders queued behind
    /// them (a sender's frames keep their order); the writer takes one item or fragment
    /// per batch, after the batch's small frames.
    big: VecDeque<(Option<Pid>, Big)>,
    /// Senders with items in `big`, and how many.
    big_senders: HashMap<Pid, usize>,
    /// The next fragmented sequence's id.
    next_seq: u64,
    /// Frames queued since the connection was made (ticks not counted).
    frames_out: u64,
    /// Bytes of those frames, length prefixes included.
    bytes_out: u64,
    /// Inline writes (syscalls made by senders) and the writer task's batches.
    writes_inline: u64,
    writes_batched: u64,
}

/// An item of [`Out::big`].
enum Big {
    /// A message cut into fragments.
    Frags(Outgoing),
    /// A whole frame (`[Len:32]` included) behind its sender's big message.
    Frame(Vec<u8>),
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

/// Frames and bytes a connection carried ([`Conn::traffic`]); bytes include each
/// frame's 4-byte length, frames are messages and control signals (not ticks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Frames read from the peer.
    pub frames_in: u64,
    /// Bytes read from the peer.
    pub bytes_in: u64,
    /// Frames queued to the peer.
    pub frames_out: u64,
    /// Bytes queued to the peer.
    pub bytes_out: u64,
    /// Writes made by a sender itself (inline, no task switch), each one syscall.
    pub writes_inline: u64,
    /// Batches written by the connection's writer task (each one or more frames).
    pub writes_batched: u64,
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
    /// Frames and bytes read (written by the reader task only).
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
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

/// Frames (length prefix included) at least this long are written by their sender
/// whenever the connection has nothing queued and nobody writes (module docs).
pub const INLINE_ALWAYS: usize = 1024;

/// Frames at least this long are completed in place by reads of exactly their rest.
const BIG_FRAME: usize = 64 << 10;

/// The read buffer's usual size; it is replaced by a fresh one of this size when a
/// very big frame grew it past [`READ_BUF_KEEP`].
const READ_BUF: usize = 256 << 10;
const READ_BUF_KEEP: usize = 4 << 20;

/// Bytes of messages handed to local processes after which the reader yields to them.
const YIELD_AFTER: usize = 512 << 10;

/// How the reason of a connection declared down for silence ends.
const SILENT: &str = "(net_ticktime): peer unresponsive";

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
                big: VecDeque::new(),
                big_senders: HashMap::new(),
                next_seq: 1,
                frames_out: 0,
                bytes_out: 0,
                writes_inline: 0,
                writes_batched: 0,
            }),
            queued: AtomicUsize::new(0),
            frames_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
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

    /// Frames and bytes sent and received on this connection so far (for dashboards
    /// and metrics; ticks are not counted).
    pub fn traffic(&self) -> Traffic {
        let (frames_out, bytes_out, writes_inline, writes_batched) = {
            let o = self.out.lock();
            (o.frames_out, o.bytes_out, o.writes_inline, o.writes_batched)
        };
        Traffic {
            frames_in: self.frames_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            frames_out,
            bytes_out,
            writes_inline,
            writes_batched,
        }
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

    /// Resolves once the connection is down (it is then closed, or about to be).
    async fn closing(&self) {
        let mut rx = self.phase_tx.subscribe();
        let _ = rx.wait_for(|p| matches!(p, Phase::Down(_))).await;
    }

    /// True once the connection was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Starts the reader and writer tasks on an authenticated stream. A plain TCP stream
    /// gets inline writes (a sender on an idle connection writes the socket itself); a
    /// TLS stream is written by the writer task only (a TLS record cannot be half-sent
    /// from two places), and both are monomorphized: no dynamic dispatch per frame.
    pub(crate) fn attach(
        self: &Arc<Self>,
        stream: crate::tls::Stream,
        negotiated: u64,
        peer_flags: u64,
        tick: Duration,
    ) {
        {
            // Frames queued during the handshake are pass-through; a peer with
            // DFLAG_FRAGMENTS takes normal headers only.
            let mut o = self.out.lock();
            if negotiated & flags::FRAGMENTS != 0 && o.buf.len() > o.head {
                let head = o.head;
                let converted = fragments::to_headers(&o.buf[head..]);
                let before = o.buf.len() - head;
                match converted {
                    Ok(b) => {
                        self.queued.fetch_sub(before, Ordering::Relaxed);
                        self.queued.fetch_add(b.len(), Ordering::Relaxed);
                        o.buf = b;
                        o.head = 0;
                    }
                    Err(e) => {
                        tracing::warn!(peer = %self.peer, error = %e, "frames queued during the handshake dropped");
                        self.queued.fetch_sub(before, Ordering::Relaxed);
                        o.buf.clear();
                        o.head = 0;
                    }
                }
            }
            self.flags.store(negotiated, Ordering::Relaxed);
        }
        self.peer_flags.store(peer_flags, Ordering::Relaxed);
        match stream {
            crate::tls::Stream::Tcp(stream) => {
                let _ = stream.set_nodelay(true);
                let fd = stream.as_raw_fd();
                let (r, w) = stream.into_split();
                let w = Arc::new(w);
                if !self.closed.load(Ordering::Acquire) {
                    self.out.lock().sock = Some(w.clone());
                }
                self.start_tasks(r, w, fd, tick);
            }
            crate::tls::Stream::Tls(stream) => {
                let fd = stream.get_ref().0.as_raw_fd();
                let _ = stream.get_ref().0.set_nodelay(true);
                let (r, w) = tokio::io::split(stream);
                self.start_tasks(r, TlsSink(w), fd, tick);
            }
        }
    }

    fn start_tasks<R, W>(self: &Arc<Self>, r: R, w: W, fd: RawFd, tick: Duration)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: Sink + Send + 'static,
    {
        let me = self.clone();
        tokio::spawn(async move { me.write_loop(w, tick / 4).await });
        let me = self.clone();
        // The reader runs as a task so that the processes it wakes queue up behind it on
        // its worker and take a batch of messages each time they run.
        let reader = tokio::spawn(async move {
            let mut r = r;
            let reason = me.read_loop(&mut r, fd, tick).await;
            if reason.ends_with(SILENT) {
                // Reset rather than close: a FIN would wait behind our unacknowledged
                // data, which a peer that cannot reach us never acknowledges, so a peer
                // that still hears us would learn of the loss only from its own
                // silence, up to a tick time later. An RST is not queued. The read half
                // is still alive here, so `fd` is still this socket.
                set_zero_linger(fd);
            }
            match UPCALLS.get() {
                Some(u) => (u.lost)(&me, reason),
                None => me.close(),
            }
        });
        *self.reader.lock() = Some(reader.abort_handle());
        if self.closed.load(Ordering::Acquire) {
            reader.abort();
        }
    }

    async fn write_loop<W: Sink>(self: Arc<Self>, mut w: W, period: Duration) {
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

    async fn read_loop<R: AsyncRead + Unpin>(
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
struct TlsSink<W>(W);

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

impl crate::read_batch::Output for Conn {
    fn flush(&self) {
        Conn::flush(self);
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
        self.try_frame(from, |o, l| {
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
            let at = o.len();
            msg(o)?;
            Ok(Some(at))
        })
    }

    /// `REG_SEND` to `name` on the peer.
    pub(crate) fn reg_send_with(
        &self,
        from: Pid,
        name: &str,
        msg: impl FnOnce(&mut Vec<u8>) -> Result<(), FrameError>,
    ) -> Result<(), FrameError> {
        self.try_frame(Some(from), |o, l| {
            control::tuple(o, 4);
            control::small(o, 6);
            control::pid_w(o, from, l);
            control::atom(o, "");
            control::atom(o, name);
            let at = o.len();
            msg(o)?;
            Ok(Some(at))
        })
    }

    /// `ALIAS_SEND` to a reference.
    pub(crate) fn alias_send_with(
        &self,
        from: Pid,
        alias: &Reference,
        msg: impl FnOnce(&mut Vec<u8>) -> Result<(), FrameError>,
    ) -> Result<(), FrameError> {
        self.try_frame(Some(from), |o, l| {
            control::tuple(o, 3);
            control::small(o, 33);
            control::pid_w(o, from, l);
            Term::Reference(Box::new(alias.clone())).encode_body(o);
            let at = o.len();
            msg(o)?;
            Ok(Some(at))
        })
    }

    /// `LINK`.
    pub(crate) fn link(&self, from: Pid, to: Pid) {
        self.frame(Some(from), |o, l| {
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
            self.frame(Some(from), |o, l| {
                control::tuple(o, 4);
                control::small(o, 35);
                Term::Int(id as i64).encode_body(o);
                control::pid_w(o, from, l);
                control::pid_w(o, to, l);
            });
        } else {
            self.frame(Some(from), |o, l| {
                control::tuple(o, 3);
                control::small(o, 4);
                control::pid_w(o, from, l);
                control::pid_w(o, to, l);
            });
        }
    }

    /// `UNLINK_ID_ACK`.
    pub(crate) fn unlink_ack(&self, id: &Term, from: Pid, to: Pid) {
        self.frame(Some(from), |o, l| {
            control::tuple(o, 4);
            control::small(o, 36);
            id.encode_body(o);
            control::pid_w(o, from, l);
            control::pid_w(o, to, l);
        });
    }

    /// `EXIT` (along a link) or `EXIT2` (`exit/2`).
    pub(crate) fn exit(&self, from: Pid, to: Pid, reason: &Term, link: bool) {
        self.frame(Some(from), |o, l| {
            control::tuple(o, 4);
            control::small(o, if link { 3 } else { 8 });
            control::pid_w(o, from, l);
            control::pid_w(o, to, l);
            reason.encode_body(o);
        });
    }

    /// `MONITOR_P` from local `from` on `target` (a pid or a name term) with `r`.
    pub(crate) fn monitor(&self, from: Pid, target: &Term, r: Ref) {
        self.frame(Some(from), |o, l| {
            control::tuple(o, 4);
            control::small(o, 19);
            control::pid_w(o, from, l);
            target.encode_body(o);
            control::ref_w(o, r, l);
        });
    }

    /// `DEMONITOR_P`.
    pub(crate) fn demonitor(&self, from: Pid, target: &Term, r: Ref) {
        self.frame(Some(from), |o, l| {
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

    /// Records the monitor remote `watcher` holds on local process `pid` (monitored as
    /// `target`: the pid or the name it was asked under) with wire reference `r`, as an
    /// incoming `MONITOR_P` does; false (nothing recorded) when `pid` is not alive.
    pub(crate) fn monitor_in(&self, watcher: Pid, target: Term, pid: Pid, r: &Reference) -> bool {
        let lr = Ref::make();
        // Recorded first: an exit right after the monitor is added finds the record.
        {
            let mut t = self.track.lock();
            t.monitors_in.insert(r.clone(), (watcher, target, pid, lr));
            t.monitors_in_by_ref.insert(lr, r.clone());
        }
        if orbit::signal::add_remote_monitor(pid, watcher, lr) {
            return true;
        }
        let mut t = self.track.lock();
        t.monitors_in.remove(r);
        t.monitors_in_by_ref.remove(&lr);
        false
    }

    /// Links remote `from` to local `to`, as an incoming `LINK` does; false when `to` is
    /// not alive.
    pub(crate) fn link_in(&self, from: Pid, to: Pid) -> bool {
        self.track.lock().links.insert((to, from));
        if orbit::signal::add_remote_link(to, from) {
            return true;
        }
        self.track.lock().links.remove(&(to, from));
        false
    }

    /// `MONITOR_P_EXIT`: the local process (`target` as it was monitored) exited.
    pub(crate) fn monitor_exit(&self, target: &Term, watcher: Pid, r: &Reference, reason: &Term) {
        self.frame(None, |o, l| {
            control::tuple(o, 5);
            control::small(o, 21);
            target.encode_body(o);
            control::pid_w(o, watcher, l);
            Term::Reference(Box::new(r.clone())).encode_body(o);
            reason.encode_body(o);
        });
    }
}

/// Sets `SO_LINGER` to zero on `fd`, so that closing the socket resets it (RST) instead
/// of queueing a FIN behind unacknowledged data. Errors are ignored: the socket is
/// being abandoned either way.
fn set_zero_linger(fd: RawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is an open socket (the caller still holds its read half) and `l` is a
    // valid `linger` of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
