//! Distribution headers and fragmented messages (`DFLAG_FRAGMENTS`), both ways.
//!
//! Incoming (`erl_ext_dist`, "Distribution Header"): once both nodes have
//! `DFLAG_FRAGMENTS`, the BEAM sends every message with a normal header
//! `131, 68, 0, Ctrl, Msg` (terms without their 131 byte) and messages whose encoding
//! exceeds 64 KiB as fragments: a start `131, 69, SequenceId:64, FragmentId:64, 0, Ctrl,
//! part` then continuations `131, 70, SequenceId:64, FragmentId:64, part`, the fragment id
//! counting down from the number of fragments to 1. Sequences from different senders
//! interleave on a connection. [`Reassembly`] turns each complete message back into the
//! pass-through form (`112, 131 Ctrl, 131 Msg`) the rest of the connection handles.
//!
//! Contract: memory is bounded. At most [`MAX_SEQUENCES`] sequences are in flight on a
//! connection and their buffered bytes together stay under the node's `max_frame`; a
//! continuation of an unknown sequence, a fragment id out of order or repeated, a second
//! start of a sequence in flight, a fragment id of 0, atom-cache references (Orbit does
//! not advertise `DFLAG_DIST_HDR_ATOM_CACHE`) or a bound exceeded is a protocol error that
//! ends the connection; nothing panics. A sequence never finished just holds its bytes
//! until the connection ends (within the bounds). Where it differs from OTP: the BEAM
//! also accepts headers with atom-cache references; Orbit refuses them since it never
//! asks for them.
//!
//! Outgoing: `split` cuts a pass-through message frame bigger than [`FRAGMENT_AT`] into
//! fragments of at most [`FRAGMENT_SIZE`] message bytes; the connection's writer sends
//! them one at a time between batches of small frames, so a 10 MB message does not hold
//! up small messages to the same node (see `connection.rs`).

use std::collections::HashMap;

use crate::control::{self, PASS_THROUGH, VERSION};

/// The normal distribution header tag.
pub const NORMAL_HEADER: u8 = 68;
/// A fragmented message's first fragment.
pub const FRAGMENT_START: u8 = 69;
/// A fragmented message's later fragments.
pub const FRAGMENT_CONT: u8 = 70;

/// Message bytes per fragment (OTP's `ERTS_DIST_FRAGMENT_SIZE`).
pub const FRAGMENT_SIZE: usize = 64 << 10;
/// Message frames longer than this go out as fragments (when the peer has
/// `DFLAG_FRAGMENTS`).
pub const FRAGMENT_AT: usize = FRAGMENT_SIZE + 1024;
/// Fragmented sequences in flight on one connection at most.
pub const MAX_SEQUENCES: usize = 256;

/// One message being reassembled: its pass-through form so far.
struct Partial {
    /// The fragment id expected next.
    next: u64,
    buf: Vec<u8>,
    /// Bytes counted in [`Reassembly::held`] for it.
    counted: usize,
}

/// The incoming side of a connection's distribution headers.
pub struct Reassembly {
    seqs: HashMap<u64, Partial>,
    /// Bytes buffered over all sequences.
    held: usize,
    /// The most bytes all sequences may hold together (the node's `max_frame`).
    cap: usize,
    /// Holds a normal-header message in pass-through form.
    scratch: Vec<u8>,
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Length of the control message at the start of `body` (a term without its 131).
/// Walked, not decoded (`orbit_term::encoded_len`: tags and lengths, nothing built):
/// the connection decodes the control message once, after this, with its limits, and
/// a control message that does not decode ends the connection there. Decoding it here
/// as well cost a fifth of an erpc call's instructions on either node.
fn ctrl_len(body: &[u8]) -> Result<usize, String> {
    if let Some(used) = control::fast_len(body) {
        return Ok(used);
    }
    orbit_term::encoded_len(body)
        .map_err(|e| format!("bad control message in a distribution header: {e}"))
}

/// Appends `112, 131 Ctrl, [131 Msg]` made from `body` = `Ctrl Msg` (without 131s).
fn pass_through(out: &mut Vec<u8>, body: &[u8]) -> Result<(), String> {
    let used = ctrl_len(body)?;
    out.reserve(body.len() + 3);
    out.push(PASS_THROUGH);
    out.push(VERSION);
    out.extend_from_slice(&body[..used]);
    if used < body.len() {
        out.push(VERSION);
        out.extend_from_slice(&body[used..]);
    }
    Ok(())
}

impl Reassembly {
    /// A reassembler whose sequences may hold `cap` bytes together.
    pub fn new(cap: usize) -> Reassembly {
        Reassembly {
            seqs: HashMap::new(),
            held: 0,
            cap,
            scratch: Vec::new(),
        }
    }

    /// Sequences in flight.
    pub fn in_flight(&self) -> usize {
        self.seqs.len()
    }

    /// Bytes held by sequences in flight.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Takes one frame that starts with 131 (a distribution header) and calls `handle`
    /// with each message it completes, in pass-through form. `Err` is a protocol
    /// violation: the connection must end.
    pub fn frame(
        &mut self,
        frame: &[u8],
        handle: impl FnOnce(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(&tag) = frame.get(1) else {
            return Err("distribution header without a tag".into());
        };
        match tag {
            NORMAL_HEADER => {
                let body = self.no_cache_refs(frame.get(2..))?;
                let mut s = std::mem::take(&mut self.scratch);
                s.clear();
                let r = pass_through(&mut s, body).and_then(|()| handle(&s));
                if s.capacity() <= FRAGMENT_AT * 4 {
                    self.scratch = s;
                }
                r
            }
            FRAGMENT_START => {
                if frame.len() < 18 {
                    return Err("fragment header too short".into());
                }
                let seq = be64(&frame[2..10]);
                let id = be64(&frame[10..18]);
                let body = self.no_cache_refs(frame.get(18..))?;
                if id == 0 {
                    return Err("fragment id 0".into());
                }
                if self.seqs.contains_key(&seq) {
                    return Err(format!("fragmented sequence {seq} started twice"));
                }
                if self.seqs.len() >= MAX_SEQUENCES {
                    return Err(format!(
                        "more than {MAX_SEQUENCES} fragmented messages in flight"
                    ));
                }
                self.reserve(body.len())?;
                let mut buf = Vec::new();
                if let Err(e) = pass_through(&mut buf, body) {
                    self.held -= body.len();
                    return Err(e);
                }
                if id == 1 {
                    self.held -= body.len();
                    return handle(&buf);
                }
                self.seqs.insert(
                    seq,
                    Partial {
                        next: id - 1,
                        buf,
                        counted: body.len(),
                    },
                );
                Ok(())
            }
            FRAGMENT_CONT => {
                if frame.len() < 18 {
                    return Err("fragment header too short".into());
                }
                let seq = be64(&frame[2..10]);
                let id = be64(&frame[10..18]);
                let part = &frame[18..];
                let Some(p) = self.seqs.get(&seq) else {
                    return Err(format!("fragment of unknown sequence {seq}"));
                };
                if id != p.next {
                    return Err(format!(
                        "fragment {id} of sequence {seq} where {} was due",
                        p.next
                    ));
                }
                self.reserve(part.len())?;
                let p = self
                    .seqs
                    .get_mut(&seq)
                    .ok_or_else(|| format!("fragment of unknown sequence {seq}"))?;
                p.buf.extend_from_slice(part);
                p.counted += part.len();
                p.next = id - 1;
                if id > 1 {
                    return Ok(());
                }
                let done = self
                    .seqs
                    .remove(&seq)
                    .ok_or_else(|| format!("fragment of unknown sequence {seq}"))?;
                self.held -= done.counted;
                handle(&done.buf)
            }
            other => Err(format!(
                "unsupported distribution header {other} (expected 68, 69 or 70)"
            )),
        }
    }

    /// Counts `n` more bytes held, refusing past the cap.
    fn reserve(&mut self, n: usize) -> Result<(), String> {
        let total = self.held.saturating_add(n);
        if total > self.cap {
            return Err(format!(
                "fragmented messages in flight exceed {} bytes",
                self.cap
            ));
        }
        self.held = total;
        Ok(())
    }

    /// The header's body after `NumberOfAtomCacheRefs`, which must be 0.
    fn no_cache_refs<'a>(&self, rest: Option<&'a [u8]>) -> Result<&'a [u8], String> {
        match rest {
            Some([0, body @ ..]) => Ok(body),
            Some([_, ..]) => Err(
                "atom cache references in a distribution header, but this node does not \
                 advertise DFLAG_DIST_HDR_ATOM_CACHE"
                    .into(),
            ),
            _ => Err("distribution header too short".into()),
        }
    }
}

/// Rewrites whole frames `[Len:32][112, 131 Ctrl, [131 Msg]]` (ticks too) as normal-header
/// frames `[Len:32][131, 68, 0, Ctrl, [Msg]]`: what was queued while the handshake ran,
/// for a peer that turned out to take headers only.
pub fn to_headers(frames: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(frames.len() + frames.len() / 16);
    let mut i = 0;
    while i < frames.len() {
        let len = frames
            .get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("truncated frame")?;
        let f = frames.get(i + 4..i + 4 + len).ok_or("truncated frame")?;
        i += 4 + len;
        if len == 0 {
            out.extend_from_slice(&[0, 0, 0, 0]);
            continue;
        }
        let body = match f {
            [PASS_THROUGH, VERSION, body @ ..] => body,
            _ => return Err("a queued frame is not pass-through".into()),
        };
        let used = ctrl_len(body)?;
        let msg = match &body[used..] {
            [] => &[][..],
            [VERSION, m @ ..] => m,
            _ => return Err("a queued message lacks its 131".into()),
        };
        let n = 3 + used + msg.len();
        out.extend_from_slice(&(n as u32).to_be_bytes());
        out.extend_from_slice(&[VERSION, NORMAL_HEADER, 0]);
        out.extend_from_slice(&body[..used]);
        out.extend_from_slice(msg);
    }
    Ok(out)
}

/// A message going out as fragments.
pub struct Outgoing {
    seq: u64,
    /// `Ctrl Msg`, both without their 131.
    data: Vec<u8>,
    /// Where the message starts in `data`.
    ctrl: usize,
    /// Bytes of `data` sent.
    sent: usize,
    /// The next fragment id (0: all sent).
    next: u64,
}

impl Outgoing {
    /// Fragments of `data` = `Ctrl Msg` (both without their 131), the message starting
    /// at `ctrl`, as sequence `seq`.
    pub fn new(seq: u64, data: Vec<u8>, ctrl: usize) -> Outgoing {
        let ctrl = ctrl.min(data.len());
        let msg = data.len() - ctrl;
        Outgoing {
            seq,
            data,
            ctrl,
            sent: 0,
            next: msg.div_ceil(FRAGMENT_SIZE).max(1) as u64,
        }
    }

    /// Bytes not yet written (what the output queue counts for it).
    pub fn remaining(&self) -> usize {
        self.data.len() - self.sent
    }

    /// True when every fragment was written.
    pub fn done(&self) -> bool {
        self.next == 0
    }

    /// Appends the next fragment as a whole frame (`[Len:32]` included) to `out`;
    /// returns the bytes of `data` it took.
    pub fn next_fragment(&mut self, out: &mut Vec<u8>) -> usize {
        if self.next == 0 {
            return 0;
        }
        let first = self.sent == 0;
        let start = self.sent;
        let end = if first {
            (self.ctrl + FRAGMENT_SIZE).min(self.data.len())
        } else {
            (start + FRAGMENT_SIZE).min(self.data.len())
        };
        let head = if first { 19 } else { 18 };
        let len = (head + end - start) as u32;
        out.extend_from_slice(&len.to_be_bytes());
        out.push(VERSION);
        out.push(if first { FRAGMENT_START } else { FRAGMENT_CONT });
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.next.to_be_bytes());
        if first {
            out.push(0);
        }
        out.extend_from_slice(&self.data[start..end]);
        self.sent = end;
        self.next -= 1;
        if self.next == 0 {
            // Frees the copy as soon as the last fragment is out.
            self.data = Vec::new();
        }
        end - start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbit_term::Term;

    /// A pass-through SEND frame of `{2, '', Pid}`-like shape: ctrl `{2,'',''}`, then
    /// a binary message of `n` bytes.
    fn send_frame(n: usize) -> Vec<u8> {
        let ctrl = Term::tuple(vec![Term::Int(2), Term::atom(""), Term::atom("x")]).encode();
        let msg = Term::Binary(vec![7u8; n]).encode();
        let mut f = vec![PASS_THROUGH];
        f.extend_from_slice(&ctrl);
        f.extend_from_slice(&msg);
        f
    }

    /// Fragments of a pass-through frame (as the connection cuts them).
    fn outgoing(seq: u64, f: &[u8]) -> Outgoing {
        let ctrl = ctrl_len(&f[2..]).unwrap();
        let mut data = f[2..2 + ctrl].to_vec();
        data.extend_from_slice(&f[2 + ctrl + 1..]);
        Outgoing::new(seq, data, ctrl)
    }

    fn unframe(bytes: &[u8]) -> Vec<&[u8]> {
        let mut v = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let len = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
            v.push(&bytes[i + 4..i + 4 + len]);
            i += 4 + len;
        }
        v
    }

    #[test]
    fn split_and_reassemble_give_back_the_frame() {
        for n in [70_000, 65_536 * 3, 200_000, 1_000_000] {
            let f = send_frame(n);
            let mut o = outgoing(9, &f);
            let mut wire = Vec::new();
            while !o.done() {
                o.next_fragment(&mut wire);
            }
            let frames = unframe(&wire);
            assert_eq!(frames.len(), (n + 5).div_ceil(FRAGMENT_SIZE));
            let mut r = Reassembly::new(8 << 20);
            let mut got = Vec::new();
            for fr in frames {
                r.frame(fr, |m| {
                    got.push(m.to_vec());
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(got, vec![f]);
            assert_eq!(r.in_flight(), 0);
        }
        // Queued pass-through frames become headers that read back the same.
        let mut q = Vec::new();
        for f in [send_frame(10), send_frame(0)] {
            q.extend_from_slice(&(f.len() as u32).to_be_bytes());
            q.extend_from_slice(&f);
        }
        q.extend_from_slice(&[0, 0, 0, 0]);
        let h = to_headers(&q).unwrap();
        let frames = unframe(&h);
        assert_eq!(frames.len(), 3);
        let mut r = Reassembly::new(1 << 20);
        let mut got = Vec::new();
        for fr in &frames[..2] {
            r.frame(fr, |m| {
                got.push(m.to_vec());
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(got, vec![send_frame(10), send_frame(0)]);
        assert!(frames[2].is_empty());
    }

    #[test]
    fn normal_headers_become_pass_through() {
        let f = send_frame(10);
        let mut h = vec![VERSION, NORMAL_HEADER, 0];
        h.extend_from_slice(&f[2..]);
        let at = 2 + ctrl_len(&f[2..]).unwrap();
        h.remove(3 + at - 2);
        let mut r = Reassembly::new(1 << 20);
        let mut got = None;
        r.frame(&h, |m| {
            got = Some(m.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(got.unwrap(), f);
        // Cache refs are refused.
        h[2] = 1;
        assert!(r.frame(&h, |_| Ok(())).is_err());
    }

    #[test]
    fn hostile_fragment_streams_are_errors() {
        let f = send_frame(300_000);
        let mut o = outgoing(1, &f);
        let mut wire = Vec::new();
        while !o.done() {
            o.next_fragment(&mut wire);
        }
        let frames = unframe(&wire);
        // Out of order.
        let mut r = Reassembly::new(8 << 20);
        r.frame(frames[0], |_| Ok(())).unwrap();
        assert!(r.frame(frames[2], |_| Ok(())).is_err());
        // Duplicated.
        let mut r = Reassembly::new(8 << 20);
        r.frame(frames[0], |_| Ok(())).unwrap();
        r.frame(frames[1], |_| Ok(())).unwrap();
        assert!(r.frame(frames[1], |_| Ok(())).is_err());
        // Started twice.
        let mut r = Reassembly::new(8 << 20);
        r.frame(frames[0], |_| Ok(())).unwrap();
        assert!(r.frame(frames[0], |_| Ok(())).is_err());
        // Unknown sequence.
        let mut r = Reassembly::new(8 << 20);
        assert!(r.frame(frames[1], |_| Ok(())).is_err());
        // Over the byte cap.
        let mut r = Reassembly::new(100_000);
        r.frame(frames[0], |_| Ok(())).unwrap();
        assert!(r.frame(frames[1], |_| Ok(())).is_err());
        // Too many sequences in flight, each never finished.
        let mut r = Reassembly::new(1 << 30);
        let mut start = frames[0].to_vec();
        for seq in 0..MAX_SEQUENCES as u64 {
            start[2..10].copy_from_slice(&seq.to_be_bytes());
            r.frame(&start, |_| Ok(())).unwrap();
        }
        start[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(r.frame(&start, |_| Ok(())).is_err());
        // A huge fragment count holds nothing more than what arrived.
        let mut r = Reassembly::new(8 << 20);
        let mut start = frames[0].to_vec();
        start[10..18].copy_from_slice(&u64::MAX.to_be_bytes());
        r.frame(&start, |_| Ok(())).unwrap();
        assert!(r.held() <= start.len());
        // Short and unknown headers.
        for bad in [
            &[131u8][..],
            &[131, 69, 0],
            &[131, 70, 1, 2],
            &[131, 71, 0],
            &[131, 68],
        ] {
            assert!(Reassembly::new(1 << 20).frame(bad, |_| Ok(())).is_err());
        }
    }
}
