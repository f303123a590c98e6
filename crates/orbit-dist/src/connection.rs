//! One connection to a peer node: framing, batched writes, ticks, and what the
//! connection must undo when it goes down.
//!
//! After the handshake every frame is `[Len:32][Payload]`; `Len = 0` is a tick.
//! Senders append whole frames to the connection's output buffer under a short lock and
//! wake the writer task, which takes the whole buffer and writes it with one syscall: a
//! burst of small messages costs one write, not one each. When nothing was written for
//! `net_ticktime / 4` the writer sends a tick; the reader declares the peer down after
//! `net_ticktime` without a byte. Frames sent before the handshake finished wait in the
//! buffer and go out once it does (or are dropped, as Erlang drops them, if it fails).
//!
//! The connection also remembers the links and monitors that cross it, so that its
//! loss can deliver `noconnection` to every local process that depends on the peer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit::{Pid, Ref};
use orbit_term::{DecodeLimits, Reference, Term};
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{watch, Notify};

use crate::control::{self, Control, PASS_THROUGH, VERSION};
use crate::convert::LocalId;
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
    out: Mutex<Vec<u8>>,
    queued: AtomicUsize,
    wake: Notify,
    /// Set while a wake-up of the writer is pending, so a burst of sends notifies once.
    wake_pending: AtomicBool,
    /// Whoever holds this writes to the socket: the writer task, or a sender writing
    /// its own frame at once when the connection is idle.
    pen: AtomicBool,
    /// Set after a sender wrote inline; cleared when the writer task runs. While set,
    /// sends queue for the writer, so a burst is batched instead of costing a syscall
    /// per message.
    recent_inline: AtomicBool,
    socket_w: Mutex<Option<Arc<OwnedWriteHalf>>>,
    drained: Notify,
    closed: AtomicBool,
    pub(crate) track: Mutex<Track>,
    reader: Mutex<Option<tokio::task::AbortHandle>>,
    unlink_id: AtomicU64,
}

/// Frames at least this long are read into a buffer of their own.
const BIG_FRAME: usize = 64 << 10;

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
            out: Mutex::new(Vec::with_capacity(64 << 10)),
            queued: AtomicUsize::new(0),
            wake: Notify::new(),
            wake_pending: AtomicBool::new(false),
            pen: AtomicBool::new(false),
            recent_inline: AtomicBool::new(false),
            socket_w: Mutex::new(None),
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

    /// Waits until the handshake finishes: `Ok` when up, the reason when it failed.
    pub async fn wait_up(&self) -> Result<(), String> {
        let mut rx = self.phase_tx.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                Phase::Up => return Ok(()),
                Phase::Down(r) => return Err(r.clone()),
                Phase::Pending => {}
            }
            if rx.changed().await.is_err() {
                return Err("connection dropped".into());
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
        f: impl FnOnce(&mut Vec<u8>, &LocalId) -> Result<(), String>,
    ) -> Result<(), String> {
        if self.closed.load(Ordering::Acquire) {
            return Err(format!("the connection to {} is closed", self.peer));
        }
        let (added, alone) = {
            let mut o = self.out.lock();
            let start = o.len();
            o.extend_from_slice(&[0, 0, 0, 0, PASS_THROUGH, VERSION]);
            if let Err(e) = f(&mut o, &self.local) {
                o.truncate(start);
                return Err(e);
            }
            let len = (o.len() - start - 4) as u32;
            o[start..start + 4].copy_from_slice(&len.to_be_bytes());
            (o.len() - start, start == 0)
        };
        self.queued.fetch_add(added, Ordering::Relaxed);
        if alone && !self.recent_inline.load(Ordering::Acquire) {
            self.write_inline();
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// On an idle connection, writes the queued bytes from the sender's own thread (one
    /// syscall, no task switch: the latency of a request/reply). What the socket does not
    /// take at once goes back to the front of the buffer for the writer task.
    fn write_inline(&self) {
        if self
            .pen
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let w = self.socket_w.lock().clone();
        if let Some(w) = w {
            let data = std::mem::take(&mut *self.out.lock());
            let mut done = 0;
            while done < data.len() {
                match w.try_write(&data[done..]) {
                    Ok(n) if n > 0 => done += n,
                    _ => break,
                }
            }
            self.queued.fetch_sub(done, Ordering::Relaxed);
            if done < data.len() {
                let mut o = self.out.lock();
                o.splice(0..0, data[done..].iter().copied());
            } else {
                let mut o = self.out.lock();
                if o.is_empty() && o.capacity() < data.capacity() {
                    // Keep the larger allocation for the next frames.
                    let mut data = data;
                    data.clear();
                    *o = data;
                }
            }
            self.recent_inline.store(true, Ordering::Release);
        }
        self.pen.store(false, Ordering::Release);
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
        self.socket_w.lock().take();
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
    ) -> Result<(), String> {
        self.flags.store(negotiated, Ordering::Relaxed);
        self.peer_flags.store(peer_flags, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let w = Arc::new(w);
        *self.socket_w.lock() = Some(w.clone());
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
        Ok(())
    }

    async fn write_loop(self: Arc<Self>, w: Arc<OwnedWriteHalf>, tick_every: Duration) {
        let mut spare: Vec<u8> = Vec::with_capacity(64 << 10);
        let mut last_write = Instant::now();
        loop {
            if self.closed.load(Ordering::Acquire) {
                break;
            }
            let notified = self.wake.notified();
            // Cleared before the buffer is taken: a send after this point notifies again.
            self.wake_pending.store(false, Ordering::Release);
            self.recent_inline.store(false, Ordering::Release);
            while self
                .pen
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                // A sender is writing its frame inline; that takes one syscall.
                tokio::task::yield_now().await;
            }
            let batch = {
                let mut o = self.out.lock();
                if o.is_empty() {
                    false
                } else {
                    std::mem::swap(&mut *o, &mut spare);
                    true
                }
            };
            if batch {
                let n = spare.len();
                let r = write_all(&w, &spare).await;
                self.pen.store(false, Ordering::Release);
                if let Err(e) = r {
                    tracing::debug!(peer = %self.peer, error = %e, "write failed");
                    break;
                }
                self.queued.fetch_sub(n, Ordering::Relaxed);
                if self.queued() <= HIGH_WATER {
                    self.drained.notify_waiters();
                }
                if spare.capacity() > (64 << 20) {
                    spare = Vec::with_capacity(64 << 10);
                } else {
                    spare.clear();
                }
                last_write = Instant::now();
                continue;
            }
            let since = last_write.elapsed();
            if since >= tick_every {
                let r = write_all(&w, &[0, 0, 0, 0]).await;
                self.pen.store(false, Ordering::Release);
                if r.is_err() {
                    break;
                }
                last_write = Instant::now();
                continue;
            }
            self.pen.store(false, Ordering::Release);
            let _ = tokio::time::timeout(tick_every - since, notified).await;
        }
        // Dropping the last handle on the write half shuts the socket's write side.
        self.socket_w.lock().take();
    }

    async fn read_loop(&self, mut r: OwnedReadHalf, tick: Duration) -> String {
        let max_frame = crate::node::max_frame();
        let mut buf: Vec<u8> = Vec::with_capacity(256 << 10);
        let mut big: Vec<u8> = Vec::new();
        let mut start = 0usize;
        loop {
            // Handle every complete frame in the buffer.
            loop {
                let avail = &buf[start..];
                if avail.len() < 4 {
                    break;
                }
                let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
                if len > max_frame {
                    return format!("frame of {len} bytes exceeds the limit of {max_frame}");
                }
                if avail.len() < 4 + len {
                    break;
                }
                if len > 0 {
                    let frame = &buf[start + 4..start + 4 + len];
                    if let Err(e) = self.handle_frame(frame) {
                        return e;
                    }
                }
                start += 4 + len;
            }
            if start > 0 {
                buf.drain(..start);
                start = 0;
            }
            if buf.len() >= 4 {
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if len >= BIG_FRAME {
                    // A big frame is read straight into its own buffer: no memmove of a
                    // partial frame through the shared one.
                    big.clear();
                    big.reserve(len);
                    big.extend_from_slice(&buf[4..]);
                    buf.clear();
                    let want = (len - big.len()) as u64;
                    let read =
                        tokio::time::timeout(tick, (&mut r).take(want).read_to_end(&mut big)).await;
                    match read {
                        Err(_) => {
                            return format!(
                                "no data for {tick:?} (net_ticktime): peer unresponsive"
                            )
                        }
                        Ok(Err(e)) => return format!("read error: {e}"),
                        Ok(Ok(_)) if big.len() < len => {
                            return format!(
                                "connection closed in the middle of a frame ({} bytes pending)",
                                big.len() + 4
                            )
                        }
                        Ok(Ok(_)) => {}
                    }
                    if let Err(e) = self.handle_frame(&big) {
                        return e;
                    }
                    if big.capacity() > 4 * BIG_FRAME.max(len) {
                        big = Vec::new();
                    }
                    continue;
                }
            }
            if buf.capacity() - buf.len() < 64 << 10 {
                buf.reserve(256 << 10);
            }
            let read = tokio::time::timeout(tick, r.read_buf(&mut buf)).await;
            match read {
                Err(_) => return format!("no data for {tick:?} (net_ticktime): peer unresponsive"),
                Ok(Ok(0)) => {
                    return if buf.is_empty() {
                        "connection closed by peer".into()
                    } else {
                        format!(
                            "connection closed in the middle of a frame ({} bytes pending)",
                            buf.len()
                        )
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return format!("read error: {e}"),
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
        let ctl = Control::parse(ctl)?;
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
        crate::dispatch::incoming(self, ctl, rest)
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
        msg: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
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
        msg: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
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
        msg: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
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
