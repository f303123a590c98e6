//! One connection to a peer node: framing, batched writes, ticks, and what the
//! connection must undo when it goes down.
//!
//! After the handshake every frame is `[Len:32][Payload]`; `Len = 0` is a tick.
//!
//! Writing. Senders append whole frames to the connection's output buffer under a short
//! lock. A frame that finds the connection idle (nothing queued, nobody writing, no
//! inline write since the last flush or read, and that read held a single frame) is
//! written at once by the sender itself with one non-blocking syscall: no task switch
//! on the request/reply path. A frame of
//! at least [`INLINE_ALWAYS`] bytes is written inline whenever nothing is queued and
//! nobody writes, even right after another inline write: its syscall is paid for by its
//! size, and waiting for the writer task would only add a task switch (a stream of
//! event batches, GenStage's `$gen_consumer` messages, is one such frame per batch).
//! Otherwise the sender wakes the writer task, which takes everything queued and writes
//! it with one syscall: a burst of small messages costs one write, not one each. Woken,
//! the writer first lets the tasks already runnable on its worker run (it goes to the
//! back of the run queue), so that callers woken together by one read, each sending its
//! next request, share its write. Whatever an
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

mod control_out;
mod read;
mod write;

pub(crate) use write::Sink;
use write::TlsSink;

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
