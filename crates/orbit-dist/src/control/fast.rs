//! Control messages read straight from the bytes, with no `Term` tree.
//!
//! Two families take this path: the message sends (`SEND`, `SEND_SENDER`, `REG_SEND`),
//! so that a message costs no allocation before its payload reaches the destination,
//! and the three control messages an erpc call exchanges (issue 20): `SPAWN_REQUEST`
//! (read by the callee's node), `SPAWN_REPLY` and `MONITOR_P_EXIT` (read by the
//! caller's). Each reader accepts one exact shape, the one Orbit and OTP write, and
//! returns `None` for anything else: trace-token forms, latin-1 or long atoms where a
//! node name or option is expected, a name instead of a pid, a truncated or malformed
//! tuple. `None` sends the bytes down the general path (`Term::decode_prefix` and
//! [`Control::parse`](super::Control::parse)) unchanged, errors included. Whatever a
//! reader accepts, the general path reads as the same values (the differential test
//! below checks random valid and mutated controls): pids, references and atoms are
//! decoded by `orbit_term`'s own body decoders, and a `MONITOR_P_EXIT` reason by
//! `Term::decode_body` under the limits the general decode would have left for it.

use orbit::Pid;
use orbit_term::{Atom, DecodeLimits, Reference, Term};

use super::op;

/// A control message read straight from the bytes. Anything unusual returns `None` from
/// [`parse_fast`] and takes the general path ([`Control::parse`](super::Control::parse)).
#[derive(Debug)]
pub enum Fast<'a> {
    /// `{2, _, To}` or `{22, From, To}`.
    Send {
        /// Sender when given.
        from: Option<Pid>,
        /// Destination.
        to: Pid,
    },
    /// `{6, From, _, Name}`.
    RegSend {
        /// Sender.
        from: Pid,
        /// Registered name.
        name: &'a str,
    },
    /// `{21, FromProc, ToProc, Ref, Reason}` with a pid as `FromProc`: a monitored
    /// process exited (an erpc call's result is its `Reason`). `ToProc` is checked, not
    /// kept: the receiver finds the watcher by `Ref`.
    MonitorExit {
        /// The process that exited (decoded only when asked for).
        from: WirePid<'a>,
        /// The monitor's reference.
        r: Reference,
        /// The exit reason.
        reason: Term,
    },
    /// `{29, ReqId, From, GroupLeader, {M, F, Arity}, Opts}`; the argument list follows
    /// as the payload.
    SpawnRequest(SpawnRequest<'a>),
    /// `{31, ReqId, To, Flags, Result}`.
    SpawnReply(SpawnReply<'a>),
}

impl Fast<'_> {
    /// True when a message term follows the control term (as
    /// [`Control::has_payload`](super::Control::has_payload) says for the same operation).
    pub fn has_payload(&self) -> bool {
        matches!(
            self,
            Fast::Send { .. } | Fast::RegSend { .. } | Fast::SpawnRequest(_)
        )
    }
}

/// `SPAWN_REQUEST {29, ReqId, From, GroupLeader, {Module, Function, Arity}, Opts}` read
/// from the bytes ([`parse_fast`]): what a service that claimed `SPAWN_REQUEST` gets
/// through [`ControlHandler::spawn_request`](crate::service::ControlHandler::spawn_request).
/// `Opts` is a proper list of atoms ([`SpawnRequest::options`]).
#[derive(Debug, Clone)]
pub struct SpawnRequest<'a> {
    /// The request id.
    pub id: Reference,
    /// The requesting process.
    pub from: orbit_term::Pid,
    /// The module of the function to run.
    pub module: Atom,
    /// The function.
    pub function: Atom,
    /// Its arity (the length of the argument list in the payload).
    pub arity: u8,
    /// The group leader the new process gets (decoded only when asked for).
    group_leader: WirePid<'a>,
    /// The option list as it came: `NIL_EXT`, or `LIST_EXT` of `SMALL_ATOM_UTF8_EXT`s and
    /// `NIL_EXT` (checked by [`parse_fast`]).
    opts: &'a [u8],
}

impl<'a> SpawnRequest<'a> {
    /// The group leader the new process gets.
    pub fn group_leader(&self) -> orbit_term::Pid {
        self.group_leader.decode()
    }

    /// The spawn options (`monitor`, `link`, ...), in order.
    pub fn options(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut c = Cur {
            b: self.opts,
            at: 0,
        };
        // A list header (tag and count) when there is one; the atoms follow, then NIL.
        if c.u8() == Some(108) {
            c.at += 4;
        }
        std::iter::from_fn(move || c.small_atom())
    }

    /// The control tuple as the general path decodes it (for handlers that take a
    /// [`Term`]).
    pub fn to_term(&self) -> Term {
        Term::Tuple(vec![
            Term::Int(op::SPAWN_REQUEST),
            Term::Reference(Box::new(self.id.clone())),
            Term::Pid(Box::new(self.from.clone())),
            Term::Pid(Box::new(self.group_leader())),
            Term::Tuple(vec![
                Term::Atom(self.module.clone()),
                Term::Atom(self.function.clone()),
                Term::Int(self.arity as i64),
            ]),
            Term::List(
                self.options()
                    .map(|o| Term::Atom(Atom::try_new(o).unwrap_or_else(|_| Atom::nil())))
                    .collect(),
            ),
        ])
    }
}

/// What a `SPAWN_REPLY` says: the new process, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum SpawnResult {
    /// The spawned process.
    Pid(orbit_term::Pid),
    /// The error (`notsup`, `badarg`, `system_limit`, ...).
    Error(Atom),
}

/// `SPAWN_REPLY {31, ReqId, To, Flags, Result}` read from the bytes ([`parse_fast`]):
/// what a service that claimed `SPAWN_REPLY` gets through
/// [`ControlHandler::spawn_reply`](crate::service::ControlHandler::spawn_reply).
#[derive(Debug, Clone)]
pub struct SpawnReply<'a> {
    /// The request id.
    pub id: Reference,
    /// The requesting process (decoded only when asked for: [`WirePid::decode`]).
    pub to: WirePid<'a>,
    /// 1: linked, 2: monitored.
    pub flags: u8,
    /// The new process or the error.
    pub result: SpawnResult,
}

impl SpawnReply<'_> {
    /// The control tuple as the general path decodes it (for handlers that take a
    /// [`Term`]).
    pub fn to_term(&self) -> Term {
        Term::Tuple(vec![
            Term::Int(op::SPAWN_REPLY),
            Term::Reference(Box::new(self.id.clone())),
            Term::Pid(Box::new(self.to.decode())),
            Term::Int(self.flags as i64),
            match &self.result {
                SpawnResult::Pid(p) => Term::Pid(Box::new(p.clone())),
                SpawnResult::Error(a) => Term::Atom(a.clone()),
            },
        ])
    }
}

/// A pid still in its wire form, checked by [`parse_fast`] to decode exactly as the
/// general path decodes it; decoded only by those that need it (most readers of an
/// erpc control never look at these).
#[derive(Debug, Clone, Copy)]
pub struct WirePid<'a>(&'a [u8]);

impl WirePid<'_> {
    /// The pid.
    pub fn decode(&self) -> orbit_term::Pid {
        match orbit_term::Pid::decode_body(self.0) {
            Ok((p, _)) => p,
            // Unreachable: the bytes were checked when the control was read.
            Err(_) => orbit_term::Pid::new(Atom::nil(), 0, 0, 0),
        }
    }
}

struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }
    fn u32(&mut self) -> Option<u32> {
        let s = self.b.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn atom(&mut self) -> Option<&'a str> {
        let len = match self.u8()? {
            119 => self.u8()? as usize,
            118 => {
                let s = self.b.get(self.at..self.at + 2)?;
                self.at += 2;
                u16::from_be_bytes([s[0], s[1]]) as usize
            }
            _ => return None,
        };
        let s = self.b.get(self.at..self.at + len)?;
        self.at += len;
        let s = std::str::from_utf8(s).ok()?;
        // Longer than the BEAM allows: the general decoder refuses it, so leave it to it.
        (len <= orbit_term::MAX_ATOM_CHARS || s.chars().count() <= orbit_term::MAX_ATOM_CHARS)
            .then_some(s)
    }
    /// A `SMALL_ATOM_UTF8_EXT` (at most 255 bytes, so never too long).
    fn small_atom(&mut self) -> Option<&'a str> {
        if self.b.get(self.at) != Some(&119) {
            return None;
        }
        self.atom()
    }
    /// Steps over a pid, checking its shape and its node's atom as [`Cur::pid`] does,
    /// without looking its node up.
    fn skip_pid(&mut self) -> Option<()> {
        if self.u8()? != 88 {
            return None;
        }
        self.atom()?;
        self.b.get(self.at..self.at + 12)?;
        self.at += 12;
        Some(())
    }
    fn pid(&mut self) -> Option<Pid> {
        if self.u8()? != 88 {
            return None;
        }
        let node = self.atom()?;
        let (id, serial, creation) = (self.u32()?, self.u32()?, self.u32()?);
        Some(Pid::remote(node, id, serial, creation))
    }
    /// A pid as the wire has it, decoded as `orbit_term` decodes one.
    fn wire_pid(&mut self) -> Option<orbit_term::Pid> {
        let (p, n) = orbit_term::Pid::decode_body(self.b.get(self.at..)?).ok()?;
        self.at += n;
        Some(p)
    }
    /// A pid left in its wire form after checking that it decodes: a `NEW_PID_EXT`
    /// whose node is a `SMALL_ATOM_UTF8_EXT` (valid UTF-8, at most 255 bytes: what the
    /// general decoder accepts) is stepped over; any other form is decoded to check it.
    fn lazy_pid(&mut self) -> Option<WirePid<'a>> {
        let start = self.at;
        if self.b.get(start..start + 2) == Some(&[88, 119]) {
            self.skip_pid()?;
        } else {
            self.wire_pid()?;
        }
        Some(WirePid(&self.b[start..self.at]))
    }
    /// A reference, decoded as `orbit_term` decodes one.
    fn reference(&mut self) -> Option<Reference> {
        let (r, n) = Reference::decode_body(self.b.get(self.at..)?).ok()?;
        self.at += n;
        Some(r)
    }
    /// Any atom, decoded as `orbit_term` decodes one.
    fn any_atom(&mut self) -> Option<Atom> {
        let (a, n) = Atom::decode_body(self.b.get(self.at..)?).ok()?;
        self.at += n;
        Some(a)
    }
    /// The start of a control tuple: `SMALL_TUPLE_EXT` and a `SMALL_INTEGER_EXT`
    /// operation; returns the operation and the tuple's arity.
    fn control_head(&mut self) -> Option<(u8, u8)> {
        if self.u8()? != 104 {
            return None;
        }
        let arity = self.u8()?;
        Some((self.small_int()?, arity))
    }
    /// A `SMALL_INTEGER_EXT`.
    fn small_int(&mut self) -> Option<u8> {
        if self.u8()? != 97 {
            return None;
        }
        self.u8()
    }
}

/// The length of the control term [`parse_fast`] reads at the start of `b` when it is a
/// message send (`SEND`, `SEND_SENDER`, `REG_SEND`); `None` for any other control term,
/// including those [`parse_fast`] reads (callers then walk it with
/// `orbit_term::encoded_len`). Its pids are stepped over, not built (a node name lookup
/// each), for the callers that only need the length (`fragments`, issue 17).
pub fn fast_len(b: &[u8]) -> Option<usize> {
    let mut c = Cur { b, at: 0 };
    let (code, arity) = c.control_head()?;
    match (code, arity) {
        (2, 3) => {
            c.atom()?;
            c.skip_pid()?;
        }
        (22, 3) => {
            c.skip_pid()?;
            c.skip_pid()?;
        }
        (6, 4) => {
            c.skip_pid()?;
            c.atom()?;
            c.atom()?;
        }
        _ => return None,
    }
    Some(c.at)
}

/// Reads a `SEND`, `SEND_SENDER`, `REG_SEND`, `MONITOR_P_EXIT`, `SPAWN_REQUEST` or
/// `SPAWN_REPLY` control term (no version byte) in the shapes described in the module
/// docs; returns it and its length. `limits` are those the general path decodes with
/// (they bound a `MONITOR_P_EXIT` reason as they would inside the whole tuple).
pub fn parse_fast<'a>(b: &'a [u8], limits: &DecodeLimits) -> Option<(Fast<'a>, usize)> {
    let mut c = Cur { b, at: 0 };
    let (code, arity) = c.control_head()?;
    let f = match (code as i64, arity) {
        (op::SEND, 3) => {
            c.atom()?;
            Fast::Send {
                from: None,
                to: c.pid()?,
            }
        }
        (op::SEND_SENDER, 3) => {
            let from = c.pid()?;
            Fast::Send {
                from: Some(from),
                to: c.pid()?,
            }
        }
        (op::REG_SEND, 4) => {
            let from = c.pid()?;
            c.atom()?;
            Fast::RegSend {
                from,
                name: c.atom()?,
            }
        }
        (op::MONITOR_P_EXIT, 5) => monitor_exit(&mut c, limits)?,
        (op::SPAWN_REQUEST, 6) => Fast::SpawnRequest(spawn_request(&mut c)?),
        (op::SPAWN_REPLY, 5) => Fast::SpawnReply(SpawnReply {
            id: c.reference()?,
            to: c.lazy_pid()?,
            flags: c.small_int()?,
            result: match c.b.get(c.at)? {
                88 | 103 => SpawnResult::Pid(c.wire_pid()?),
                _ => SpawnResult::Error(c.any_atom()?),
            },
        }),
        _ => return None,
    };
    Some((f, c.at))
}

/// The rest of `{21, FromProc, ToProc, Ref, Reason}` after the operation.
fn monitor_exit<'a>(c: &mut Cur<'a>, limits: &DecodeLimits) -> Option<Fast<'a>> {
    let from = c.lazy_pid()?;
    // Checked exactly as the general decoder checks it, then dropped.
    c.lazy_pid()?;
    let r = c.reference()?;
    // The reason sits one level down in the tuple, after three node-name atoms: the
    // general decode would give it what is left of `limits`.
    let limits = DecodeLimits {
        max_depth: limits.max_depth.checked_sub(1)?,
        max_atoms: limits.max_atoms.checked_sub(3)?,
        ..*limits
    };
    let (reason, n) = Term::decode_body(c.b.get(c.at..)?, &limits).ok()?;
    c.at += n;
    Some(Fast::MonitorExit { from, r, reason })
}

/// The rest of `{29, ReqId, From, GroupLeader, {M, F, Arity}, Opts}` after the
/// operation.
fn spawn_request<'a>(c: &mut Cur<'a>) -> Option<SpawnRequest<'a>> {
    let id = c.reference()?;
    let from = c.wire_pid()?;
    let group_leader = c.lazy_pid()?;
    if (c.u8()?, c.u8()?) != (104, 3) {
        return None;
    }
    let module = c.any_atom()?;
    let function = c.any_atom()?;
    let arity = c.small_int()?;
    let start = c.at;
    match c.u8()? {
        106 => {}
        108 => {
            for _ in 0..c.u32()? {
                c.small_atom()?;
            }
            if c.u8()? != 106 {
                return None;
            }
        }
        _ => return None,
    }
    Some(SpawnRequest {
        id,
        from,
        group_leader,
        module,
        function,
        arity,
        opts: &c.b[start..c.at],
    })
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
