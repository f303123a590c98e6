//! The distribution handshake (`lib/kernel/src/dist_util.erl`), both ways.
//!
//! Messages are framed `[Len:16]` until the handshake ends (`[Len:32]` inside TLS, as
//! OTP's `inet_tls_dist` frames them: [`Framing`]):
//!
//! 1. initiator → acceptor `send_name`: `'N', Flags:64, Creation:32, Nlen:16, Name`;
//! 2. acceptor → initiator `status`: `'s'` + `ok` | `ok_simultaneous` | `nok` |
//!    `not_allowed` | `alive` (then the initiator answers `'s'` + `true`/`false`);
//! 3. acceptor → initiator `challenge`: `'N', Flags:64, Challenge:32, Creation:32, Nlen:16, Name`;
//! 4. initiator → acceptor `challenge_reply`: `'r', Challenge:32, Digest:16`;
//! 5. acceptor → initiator `challenge_ack`: `'a', Digest:16`.
//!
//! `Digest = md5(Cookie ++ decimal(Challenge))`, compared in constant time. The
//! negotiated flags are ours AND theirs; a peer missing an OTP 25 mandatory flag is
//! refused with `not_allowed`. The acceptor requires `name@host`; the initiator requires
//! the challenge to come from the node it dialed.

use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::DistError;

/// Distribution capability flags (`erts/emulator/beam/dist.h`).
pub mod flags {
    #![allow(missing_docs)]
    pub const PUBLISHED: u64 = 0x1;
    pub const ATOM_CACHE: u64 = 0x2;
    pub const EXTENDED_REFERENCES: u64 = 0x4;
    pub const DIST_MONITOR: u64 = 0x8;
    pub const FUN_TAGS: u64 = 0x10;
    pub const DIST_MONITOR_NAME: u64 = 0x20;
    pub const HIDDEN_ATOM_CACHE: u64 = 0x40;
    pub const NEW_FUN_TAGS: u64 = 0x80;
    pub const EXTENDED_PIDS_PORTS: u64 = 0x100;
    pub const EXPORT_PTR_TAG: u64 = 0x200;
    pub const BIT_BINARIES: u64 = 0x400;
    pub const NEW_FLOATS: u64 = 0x800;
    pub const UNICODE_IO: u64 = 0x1000;
    pub const DIST_HDR_ATOM_CACHE: u64 = 0x2000;
    pub const SMALL_ATOM_TAGS: u64 = 0x4000;
    pub const UTF8_ATOMS: u64 = 0x10000;
    pub const MAP_TAG: u64 = 0x20000;
    pub const BIG_CREATION: u64 = 0x40000;
    pub const SEND_SENDER: u64 = 0x80000;
    pub const BIG_SEQTRACE_LABELS: u64 = 0x100000;
    pub const EXIT_PAYLOAD: u64 = 0x400000;
    pub const FRAGMENTS: u64 = 0x800000;
    pub const HANDSHAKE_23: u64 = 0x1000000;
    pub const UNLINK_ID: u64 = 0x2000000;
    pub const MANDATORY_25_DIGEST: u64 = 0x4000000;
    pub const SPAWN: u64 = 1 << 32;
    pub const NAME_ME: u64 = 1 << 33;
    pub const V4_NC: u64 = 1 << 34;
    pub const ALIAS: u64 = 1 << 35;

    /// The flags every OTP 25+ peer must have.
    pub const MANDATORY_25: u64 = EXTENDED_REFERENCES
        | FUN_TAGS
        | NEW_FUN_TAGS
        | EXTENDED_PIDS_PORTS
        | EXPORT_PTR_TAG
        | BIT_BINARIES
        | NEW_FLOATS
        | UTF8_ATOMS
        | MAP_TAG
        | BIG_CREATION
        | HANDSHAKE_23;

    /// What Orbit advertises (plus [`PUBLISHED`] for a normal node).
    pub const ORBIT: u64 = MANDATORY_25
        | DIST_MONITOR
        | DIST_MONITOR_NAME
        | UNICODE_IO
        | SMALL_ATOM_TAGS
        | SEND_SENDER
        | BIG_SEQTRACE_LABELS
        | EXIT_PAYLOAD
        | FRAGMENTS
        | UNLINK_ID
        | MANDATORY_25_DIGEST
        | V4_NC
        | ALIAS
        | SPAWN;
}

/// How long a handshake may take (`net_setuptime`, 7 s by default).
pub const SETUP_TIME: Duration = Duration::from_secs(7);

/// This node, as the handshake presents it.
#[derive(Debug, Clone)]
pub struct Local {
    /// Full node name.
    pub name: String,
    /// Creation from epmd.
    pub creation: u32,
    /// Flags we advertise.
    pub flags: u64,
    /// The cookie.
    pub cookie: String,
}

/// The peer, as the handshake found it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Full node name.
    pub name: String,
    /// Negotiated flags (ours AND theirs).
    pub flags: u64,
    /// The peer's creation.
    pub creation: u32,
}

/// The acceptor's answer to a `send_name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Go on.
    Ok,
    /// Go on; we drop our own simultaneous attempt.
    OkSimultaneous,
    /// We have our own attempt under way and win the tie: stop.
    Nok,
    /// Refused.
    NotAllowed,
    /// A connection is already up; ask the initiator whether to replace it.
    Alive,
}

impl Status {
    fn text(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::OkSimultaneous => "ok_simultaneous",
            Status::Nok => "nok",
            Status::NotAllowed => "not_allowed",
            Status::Alive => "alive",
        }
    }
}

/// Fills `buf` with random bytes from the OS.
pub(crate) fn fill_random(buf: &mut [u8]) {
    if getrandom::getrandom(buf).is_err() {
        // The OS source failing is not expected; fall back to a time-seeded mix so a
        // challenge is still unpredictable enough to differ between attempts.
        let mut x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        for b in buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
}

fn challenge() -> u32 {
    let mut b = [0u8; 4];
    fill_random(&mut b);
    u32::from_be_bytes(b)
}

/// `md5(Cookie ++ decimal(Challenge))`.
pub fn digest(cookie: &str, challenge: u32) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(cookie.as_bytes());
    h.update(challenge.to_string().as_bytes());
    h.finalize().into()
}

fn eq_const_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How handshake messages are framed on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// Plain TCP: a 2-byte big-endian length.
    #[default]
    Tcp,
    /// Inside TLS (`-proto_dist inet_tls`): a 4-byte big-endian length.
    Tls,
}

/// The longest handshake message accepted (a `send_name` or challenge with a 255-byte
/// name is under 300 bytes; a 4-byte length must not make us allocate gigabytes).
const MAX_HANDSHAKE_MSG: usize = 64 << 10;

/// The stream and its framing.
struct Wire<'a, S> {
    s: &'a mut S,
    framing: Framing,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<'_, S> {
    async fn read(&mut self, peer: &str) -> Result<Vec<u8>, DistError> {
        read_msg(self.s, self.framing, peer).await
    }
    async fn write(&mut self, peer: &str, body: &[u8]) -> Result<(), DistError> {
        write_msg(self.s, self.framing, peer, body).await
    }
}

async fn read_msg<S: AsyncRead + Unpin>(
    s: &mut S,
    framing: Framing,
    peer: &str,
) -> Result<Vec<u8>, DistError> {
    let closed = |e: std::io::Error| DistError::handshake(peer, format!("connection closed: {e}"));
    let len = match framing {
        Framing::Tcp => s.read_u16().await.map_err(closed)? as usize,
        Framing::Tls => s.read_u32().await.map_err(closed)? as usize,
    };
    if len == 0 {
        return Err(DistError::handshake(peer, "empty handshake message"));
    }
    if len > MAX_HANDSHAKE_MSG {
        return Err(DistError::handshake(
            peer,
            format!("handshake message of {len} bytes: not a distribution peer"),
        ));
    }
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf)
        .await
        .map_err(|e| DistError::handshake(peer, format!("connection closed: {e}")))?;
    Ok(buf)
}

async fn write_msg<S: AsyncWrite + Unpin>(
    s: &mut S,
    framing: Framing,
    peer: &str,
    body: &[u8],
) -> Result<(), DistError> {
    let mut out = Vec::with_capacity(body.len() + 4);
    match framing {
        Framing::Tcp => out.extend_from_slice(&(body.len() as u16).to_be_bytes()),
        Framing::Tls => out.extend_from_slice(&(body.len() as u32).to_be_bytes()),
    }
    out.extend_from_slice(body);
    let failed = |e: std::io::Error| DistError::handshake(peer, format!("write failed: {e}"));
    s.write_all(&out).await.map_err(failed)?;
    // A TLS stream buffers: push the record out.
    s.flush().await.map_err(failed)
}

fn check_flags(peer: &str, theirs: u64) -> Result<(), DistError> {
    let missing = flags::MANDATORY_25 & !theirs;
    if missing != 0 {
        return Err(DistError::handshake(
            peer,
            format!("peer lacks mandatory distribution flags {missing:#x} (needs OTP 25 or later)"),
        ));
    }
    Ok(())
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Runs the initiator's side against node `peer_name`.
pub async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    local: &Local,
    peer_name: &str,
) -> Result<Peer, DistError> {
    initiate_with(s, local, peer_name, || true).await
}

/// [`initiate`], asking `replace` what to answer when the peer says a connection to us
/// is already up (`alive`): true replaces it (we are a new incarnation), false keeps it
/// and ends this attempt with a `simultaneous connect` error. A node answers false when
/// its own side of that connection is up too, which happens when two attempts cross.
pub async fn initiate_with<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    local: &Local,
    peer_name: &str,
    replace: impl Fn() -> bool,
) -> Result<Peer, DistError> {
    initiate_over(s, Framing::Tcp, local, &local.cookie, peer_name, replace).await
}

/// [`initiate_with`] with the stream's [`Framing`] and the cookie to use with this peer
/// (`erlang:set_cookie(Node, Cookie)`; [`Local::cookie`] otherwise).
pub async fn initiate_over<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    framing: Framing,
    local: &Local,
    cookie: &str,
    peer_name: &str,
    replace: impl Fn() -> bool,
) -> Result<Peer, DistError> {
    let s = &mut Wire { s, framing };
    let p = peer_name;
    let mut m = vec![b'N'];
    m.extend_from_slice(&local.flags.to_be_bytes());
    m.extend_from_slice(&local.creation.to_be_bytes());
    m.extend_from_slice(&(local.name.len() as u16).to_be_bytes());
    m.extend_from_slice(local.name.as_bytes());
    s.write(p, &m).await?;

    let st = s.read(p).await?;
    if st[0] != b's' {
        return Err(DistError::handshake(p, "expected a status message"));
    }
    match &st[1..] {
        b"ok" | b"ok_simultaneous" => {}
        b"alive" => {
            if !replace() {
                s.write(p, b"sfalse").await?;
                return Err(DistError::handshake(
                    p,
                    "simultaneous connect: the connection is already up on both sides",
                ));
            }
            // We are a new incarnation (or the old connection is dead): replace it.
            s.write(p, b"strue").await?;
        }
        b"nok" => {
            return Err(DistError::handshake(
                p,
                "simultaneous connect: the peer's own attempt wins",
            ))
        }
        b"not_allowed" => {
            return Err(DistError::handshake(
                p,
                "the peer refused us (not_allowed): check the node names and flags",
            ))
        }
        other => {
            return Err(DistError::handshake(
                p,
                format!("status {:?}", String::from_utf8_lossy(other)),
            ))
        }
    }

    let ch = s.read(p).await?;
    if ch[0] != b'N' || ch.len() < 19 {
        return Err(DistError::handshake(p, "malformed challenge"));
    }
    let their_flags = be_u64(&ch[1..9]);
    let their_challenge = be_u32(&ch[9..13]);
    let creation = be_u32(&ch[13..17]);
    let nlen = u16::from_be_bytes([ch[17], ch[18]]) as usize;
    let name = ch
        .get(19..19 + nlen)
        .and_then(|n| std::str::from_utf8(n).ok())
        .ok_or_else(|| DistError::handshake(p, "malformed challenge name"))?;
    if name != peer_name {
        return Err(DistError::handshake(
            p,
            format!("the node answering is {name:?}, not the node dialed"),
        ));
    }
    check_flags(p, their_flags)?;

    let my_challenge = challenge();
    let mut r = vec![b'r'];
    r.extend_from_slice(&my_challenge.to_be_bytes());
    r.extend_from_slice(&digest(cookie, their_challenge));
    s.write(p, &r).await?;

    let ack = s.read(p).await.map_err(|_| {
        DistError::handshake(p, "the peer closed the connection: the cookies differ")
    })?;
    if ack.len() != 17 || ack[0] != b'a' {
        return Err(DistError::handshake(p, "malformed challenge ack"));
    }
    if !eq_const_time(&ack[1..], &digest(cookie, my_challenge)) {
        return Err(DistError::handshake(
            p,
            "wrong digest in the challenge ack: the cookies differ",
        ));
    }
    Ok(Peer {
        name: name.to_string(),
        flags: their_flags & local.flags,
        creation,
    })
}

/// Runs the acceptor's side. `decide` sees the initiator's name and creation and
/// picks the status (existing connection, simultaneous attempt, ...).
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    local: &Local,
    decide: impl FnOnce(&str, u32) -> Status,
) -> Result<Peer, DistError> {
    accept_over(s, Framing::Tcp, local, |_| local.cookie.clone(), decide).await
}

/// [`accept`] with the stream's [`Framing`]; `cookie_for` gives the cookie to use with
/// the initiator once its name is known (a per-node cookie, or [`Local::cookie`]).
pub async fn accept_over<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    framing: Framing,
    local: &Local,
    cookie_for: impl FnOnce(&str) -> String,
    decide: impl FnOnce(&str, u32) -> Status,
) -> Result<Peer, DistError> {
    let s = &mut Wire { s, framing };
    let addr = "incoming connection";
    let m = s.read(addr).await?;
    if m[0] != b'N' || m.len() < 15 {
        return Err(DistError::handshake(
            addr,
            "expected send_name 'N' (distribution version 6, OTP 23+)",
        ));
    }
    let their_flags = be_u64(&m[1..9]);
    let creation = be_u32(&m[9..13]);
    let nlen = u16::from_be_bytes([m[13], m[14]]) as usize;
    let name = m
        .get(15..15 + nlen)
        .and_then(|n| std::str::from_utf8(n).ok())
        .ok_or_else(|| DistError::handshake(addr, "malformed send_name"))?
        .to_string();
    let p = name.as_str();
    let valid = name
        .split_once('@')
        .is_some_and(|(a, h)| !a.is_empty() && !h.is_empty());
    let status = if !valid || check_flags(p, their_flags).is_err() {
        Status::NotAllowed
    } else {
        decide(p, creation)
    };
    let cookie = cookie_for(p);
    let mut st = vec![b's'];
    st.extend_from_slice(status.text().as_bytes());
    s.write(p, &st).await?;
    match status {
        Status::Ok | Status::OkSimultaneous => {}
        Status::Alive => {
            let a = s.read(p).await?;
            if a != b"strue" {
                return Err(DistError::handshake(
                    p,
                    "a connection is already up and the peer keeps it",
                ));
            }
        }
        Status::Nok => {
            return Err(DistError::handshake(
                p,
                "simultaneous connect: our own attempt wins",
            ))
        }
        Status::NotAllowed => {
            check_flags(p, their_flags)?;
            return Err(DistError::handshake(p, "bad node name: expected name@host"));
        }
    }

    let my_challenge = challenge();
    let mut ch = vec![b'N'];
    ch.extend_from_slice(&local.flags.to_be_bytes());
    ch.extend_from_slice(&my_challenge.to_be_bytes());
    ch.extend_from_slice(&local.creation.to_be_bytes());
    ch.extend_from_slice(&(local.name.len() as u16).to_be_bytes());
    ch.extend_from_slice(local.name.as_bytes());
    s.write(p, &ch).await?;

    let r = s.read(p).await?;
    if r.len() != 21 || r[0] != b'r' {
        return Err(DistError::handshake(p, "malformed challenge reply"));
    }
    if !eq_const_time(&r[5..21], &digest(&cookie, my_challenge)) {
        return Err(DistError::handshake(
            p,
            "wrong digest in the challenge reply: the cookies differ",
        ));
    }
    let their_challenge = be_u32(&r[1..5]);
    let mut a = vec![b'a'];
    a.extend_from_slice(&digest(&cookie, their_challenge));
    s.write(p, &a).await?;
    Ok(Peer {
        name,
        flags: their_flags & local.flags,
        creation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_erlang() {
        // erlang:md5(["cookie", integer_to_list(42)])
        let d = digest("cookie", 42);
        assert_eq!(d.len(), 16);
        assert_ne!(d, digest("cookie", 43));
        assert_eq!(flags::MANDATORY_25, 0x1070F94);
    }

    #[tokio::test]
    async fn both_sides_agree_and_a_wrong_cookie_fails() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let la = Local {
            name: "a@h".into(),
            creation: 1,
            flags: flags::ORBIT,
            cookie: "c".into(),
        };
        let lb = Local {
            name: "b@h".into(),
            creation: 2,
            flags: flags::ORBIT,
            cookie: "c".into(),
        };
        let (ra, rb) = tokio::join!(
            initiate(&mut a, &la, "b@h"),
            accept(&mut b, &lb, |_, _| Status::Ok)
        );
        assert_eq!(ra.unwrap().creation, 2);
        assert_eq!(rb.unwrap().name, "a@h");

        let (mut a, mut b) = tokio::io::duplex(4096);
        let lb2 = Local {
            cookie: "other".into(),
            ..lb
        };
        let (ra, rb) = tokio::join!(initiate(&mut a, &la, "b@h"), async {
            let r = accept(&mut b, &lb2, |_, _| Status::Ok).await;
            drop(b);
            r
        });
        assert!(rb.unwrap_err().to_string().contains("cookies differ"));
        assert!(ra.is_err());
    }

    #[tokio::test]
    async fn tls_framing_has_4_byte_lengths_and_per_node_cookies_apply() {
        let la = Local {
            name: "a@h".into(),
            creation: 1,
            flags: flags::ORBIT,
            cookie: "default".into(),
        };
        let lb = Local {
            name: "b@h".into(),
            creation: 2,
            flags: flags::ORBIT,
            cookie: "other default".into(),
        };
        let (mut a, mut b) = tokio::io::duplex(4096);
        let (ra, rb) = tokio::join!(
            initiate_over(&mut a, Framing::Tls, &la, "shared", "b@h", || true),
            accept_over(
                &mut b,
                Framing::Tls,
                &lb,
                |n| if n == "a@h" {
                    "shared".into()
                } else {
                    "x".into()
                },
                |_, _| Status::Ok
            )
        );
        assert_eq!(ra.unwrap().name, "b@h");
        assert_eq!(rb.unwrap().name, "a@h");
        // The first bytes of a send_name are a 4-byte length.
        let (mut a, mut b) = tokio::io::duplex(4096);
        let _ = tokio::time::timeout(
            Duration::from_millis(50),
            initiate_over(&mut a, Framing::Tls, &la, "c", "b@h", || true),
        )
        .await;
        let mut head = [0u8; 5];
        b.read_exact(&mut head).await.unwrap();
        assert_eq!(head, [0, 0, 0, 15 + 3, b'N']);
    }
}
