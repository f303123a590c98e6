//! Control messages: the first term of every distribution frame.
//!
//! Each is a tuple whose first element is the operation (`dist.h`); `SEND`-like
//! operations are followed by the message term. Frames are written in the pass-through
//! form `112, 131, Control, [131, Message]` (no atom cache, no fragments). Writers here
//! append straight to a connection's output buffer; [`Control::parse`] reads what a peer
//! sent from its decoded `Term`, rejecting unknown operations. The controls that come
//! often (message sends, and the `SPAWN_REQUEST` / `SPAWN_REPLY` / `MONITOR_P_EXIT` of
//! an erpc call) are first tried by [`parse_fast`] (`fast.rs`), which reads them straight
//! from the bytes and leaves any other shape to `Control::parse`.

use orbit::{ExitReason, Pid, Ref};
use orbit_term::{Reference, Term};

use crate::convert;
use crate::error::DistError;

mod fast;

pub use fast::{fast_len, parse_fast, Fast, SpawnReply, SpawnRequest, SpawnResult, WirePid};

/// Operation numbers (`dist.h`).
#[allow(missing_docs)]
pub mod op {
    pub const LINK: i64 = 1;
    pub const SEND: i64 = 2;
    pub const EXIT: i64 = 3;
    pub const UNLINK: i64 = 4;
    pub const NODE_LINK: i64 = 5;
    pub const REG_SEND: i64 = 6;
    pub const GROUP_LEADER: i64 = 7;
    pub const EXIT2: i64 = 8;
    pub const SEND_TT: i64 = 12;
    pub const EXIT_TT: i64 = 13;
    pub const REG_SEND_TT: i64 = 16;
    pub const EXIT2_TT: i64 = 18;
    pub const MONITOR_P: i64 = 19;
    pub const DEMONITOR_P: i64 = 20;
    pub const MONITOR_P_EXIT: i64 = 21;
    pub const SEND_SENDER: i64 = 22;
    pub const SEND_SENDER_TT: i64 = 23;
    pub const PAYLOAD_EXIT: i64 = 24;
    pub const PAYLOAD_EXIT_TT: i64 = 25;
    pub const PAYLOAD_EXIT2: i64 = 26;
    pub const PAYLOAD_EXIT2_TT: i64 = 27;
    pub const PAYLOAD_MONITOR_P_EXIT: i64 = 28;
    pub const SPAWN_REQUEST: i64 = 29;
    pub const SPAWN_REQUEST_TT: i64 = 30;
    pub const SPAWN_REPLY: i64 = 31;
    pub const SPAWN_REPLY_TT: i64 = 32;
    pub const ALIAS_SEND: i64 = 33;
    pub const ALIAS_SEND_TT: i64 = 34;
    pub const UNLINK_ID: i64 = 35;
    pub const UNLINK_ID_ACK: i64 = 36;
}

/// The pass-through frame marker.
pub const PASS_THROUGH: u8 = 112;
/// ETF version byte.
pub const VERSION: u8 = 131;

/// A control message received from a peer (pids already mapped to Orbit pids; field
/// names are those of `erl_dist_protocol.md`).
#[allow(missing_docs)]
#[derive(Debug)]
pub enum Control {
    /// `{1, From, To}`.
    Link { from: Pid, to: Pid },
    /// `{2, _, To}`, `{22, From, To}` (and trace-token forms): a message to a pid.
    Send { from: Option<Pid>, to: Pid },
    /// `{3, From, To, Reason}` / `{24, From, To}` + reason: an exit along a link.
    Exit {
        from: Pid,
        to: Pid,
        reason: Option<Term>,
    },
    /// `{4, From, To}` or `{35, Id, From, To}`.
    Unlink {
        id: Option<Term>,
        from: Pid,
        to: Pid,
    },
    /// `{36, Id, From, To}`.
    UnlinkAck,
    /// `{6, From, _, Name}`: a message to a registered name.
    RegSend { from: Pid, name: String },
    /// `{8, From, To, Reason}` / `{26, From, To}` + reason: `exit/2` from a remote process.
    Exit2 {
        from: Pid,
        to: Pid,
        reason: Option<Term>,
    },
    /// `{19, From, ToProc, Ref}`: remote `from` monitors `target` (a pid or a name).
    Monitor {
        from: Pid,
        target: Term,
        r: Reference,
    },
    /// `{20, From, ToProc, Ref}`.
    Demonitor { target: Term, r: Reference },
    /// `{21, FromProc, To, Ref, Reason}` / `{28, ...}` + reason: a monitored process exited.
    MonitorExit {
        from: Term,
        to: Pid,
        r: Reference,
        reason: Option<Term>,
    },
    /// `{33, From, Alias}`: a message to an alias.
    AliasSend { from: Pid, alias: Reference },
    /// Operations Orbit accepts and ignores (group leader, node link).
    Ignored,
    /// An operation the wire does not act on itself but hands to the service that
    /// claimed it ([`crate::service::claim_control`]): `SPAWN_REQUEST` (29, 30) and
    /// `SPAWN_REPLY` (31, 32). Dropped when no service claimed it.
    Claimable {
        /// The operation number.
        op: i64,
        /// The whole control tuple.
        control: Term,
    },
}

/// Whether the operation carries a payload term after the control term.
impl Control {
    /// Reads a decoded control tuple. Unknown operations and malformed tuples are
    /// [`DistError::Protocol`] errors (the connection is closed: the peer does not speak
    /// the protocol this node does).
    pub fn parse(t: Term) -> Result<Control, DistError> {
        let Term::Tuple(mut el) = t else {
            return Err(violation(format!("control message is not a tuple: {t}")));
        };
        let opn = el
            .first()
            .and_then(Term::as_i64)
            .ok_or_else(|| violation("control tuple without an operation"))?;
        let n = el.len();
        let want = |k: usize| -> Result<(), DistError> {
            if n == k {
                Ok(())
            } else {
                Err(violation(format!(
                    "control operation {opn} with {n} elements, expected {k}"
                )))
            }
        };
        Ok(match opn {
            op::LINK => {
                want(3)?;
                Control::Link {
                    from: pid(&el[1])?,
                    to: pid(&el[2])?,
                }
            }
            op::SEND | op::SEND_TT => {
                want(if opn == op::SEND { 3 } else { 4 })?;
                Control::Send {
                    from: None,
                    to: pid(&el[2])?,
                }
            }
            op::SEND_SENDER | op::SEND_SENDER_TT => {
                want(if opn == op::SEND_SENDER { 3 } else { 4 })?;
                Control::Send {
                    from: Some(pid(&el[1])?),
                    to: pid(&el[2])?,
                }
            }
            op::EXIT | op::EXIT_TT | op::EXIT2 | op::EXIT2_TT => {
                let k = if opn == op::EXIT || opn == op::EXIT2 {
                    4
                } else {
                    5
                };
                want(k)?;
                let reason = Some(el.swap_remove(k - 1));
                let (from, to) = (pid(&el[1])?, pid(&el[2])?);
                if opn == op::EXIT || opn == op::EXIT_TT {
                    Control::Exit { from, to, reason }
                } else {
                    Control::Exit2 { from, to, reason }
                }
            }
            op::PAYLOAD_EXIT | op::PAYLOAD_EXIT_TT => Control::Exit {
                from: pid(el.get(1).ok_or_else(|| short(opn))?)?,
                to: pid(el.get(2).ok_or_else(|| short(opn))?)?,
                reason: None,
            },
            op::PAYLOAD_EXIT2 | op::PAYLOAD_EXIT2_TT => Control::Exit2 {
                from: pid(el.get(1).ok_or_else(|| short(opn))?)?,
                to: pid(el.get(2).ok_or_else(|| short(opn))?)?,
                reason: None,
            },
            op::UNLINK => {
                want(3)?;
                Control::Unlink {
                    id: None,
                    from: pid(&el[1])?,
                    to: pid(&el[2])?,
                }
            }
            op::UNLINK_ID => {
                want(4)?;
                Control::Unlink {
                    id: Some(el[1].clone()),
                    from: pid(&el[2])?,
                    to: pid(&el[3])?,
                }
            }
            op::UNLINK_ID_ACK => Control::UnlinkAck,
            op::REG_SEND | op::REG_SEND_TT => {
                want(if opn == op::REG_SEND { 4 } else { 5 })?;
                let name = el[3]
                    .as_atom()
                    .ok_or_else(|| violation("REG_SEND to a non-atom name"))?
                    .to_string();
                Control::RegSend {
                    from: pid(&el[1])?,
                    name,
                }
            }
            op::MONITOR_P | op::DEMONITOR_P => {
                want(4)?;
                let r = reference(&el[3])?;
                let target = el.swap_remove(2);
                if opn == op::MONITOR_P {
                    Control::Monitor {
                        from: pid(&el[1])?,
                        target,
                        r,
                    }
                } else {
                    Control::Demonitor { target, r }
                }
            }
            op::MONITOR_P_EXIT => {
                want(5)?;
                let reason = Some(el.swap_remove(4));
                let r = reference(&el[3])?;
                Control::MonitorExit {
                    to: pid(&el[2])?,
                    r,
                    from: el.swap_remove(1),
                    reason,
                }
            }
            op::PAYLOAD_MONITOR_P_EXIT => {
                want(4)?;
                let r = reference(&el[3])?;
                Control::MonitorExit {
                    to: pid(&el[2])?,
                    r,
                    from: el.swap_remove(1),
                    reason: None,
                }
            }
            op::ALIAS_SEND | op::ALIAS_SEND_TT => {
                want(if opn == op::ALIAS_SEND { 3 } else { 4 })?;
                Control::AliasSend {
                    from: pid(&el[1])?,
                    alias: reference(&el[2])?,
                }
            }
            op::GROUP_LEADER | op::NODE_LINK => Control::Ignored,
            op::SPAWN_REQUEST | op::SPAWN_REQUEST_TT | op::SPAWN_REPLY | op::SPAWN_REPLY_TT => {
                Control::Claimable {
                    op: opn,
                    control: Term::Tuple(el),
                }
            }
            other => return Err(violation(format!("unknown control operation {other}"))),
        })
    }

    /// True when a message term follows the control term.
    pub fn has_payload(&self) -> bool {
        match self {
            Control::Send { .. } | Control::RegSend { .. } | Control::AliasSend { .. } => true,
            // SPAWN_REQUEST carries the argument list.
            Control::Claimable { op, .. } => {
                matches!(*op, op::SPAWN_REQUEST | op::SPAWN_REQUEST_TT)
            }
            Control::Exit { reason, .. }
            | Control::Exit2 { reason, .. }
            | Control::MonitorExit { reason, .. } => reason.is_none(),
            _ => false,
        }
    }
}

/// A control message that does not follow the protocol.
fn violation(why: impl Into<String>) -> DistError {
    DistError::Protocol(why.into())
}

/// A control tuple too short for its operation.
fn short(opn: i64) -> DistError {
    violation(format!("control operation {opn} with too few elements"))
}

fn pid(t: &Term) -> Result<Pid, DistError> {
    match t {
        Term::Pid(p) => Ok(convert::pid_from_wire(p)),
        other => Err(violation(format!("expected a pid, got {other}"))),
    }
}

fn reference(t: &Term) -> Result<Reference, DistError> {
    match t {
        Term::Reference(r) => Ok((**r).clone()),
        other => Err(violation(format!("expected a reference, got {other}"))),
    }
}

// ---- writers: append terms without the version byte -------------------------------

/// `SMALL_TUPLE_EXT` header.
#[inline]
pub fn tuple(out: &mut Vec<u8>, arity: u8) {
    out.extend_from_slice(&[104, arity]);
}

/// A small non-negative integer.
#[inline]
pub fn small(out: &mut Vec<u8>, v: u8) {
    out.extend_from_slice(&[97, v]);
}

/// An atom (`SMALL_ATOM_UTF8_EXT` or `ATOM_UTF8_EXT`).
#[inline]
pub fn atom(out: &mut Vec<u8>, text: &str) {
    let b = text.as_bytes();
    if b.len() < 256 {
        out.push(119);
        out.push(b.len() as u8);
    } else {
        out.push(118);
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(b);
}

/// A pid (`NEW_PID_EXT`), local ones stamped with this node's name and creation.
#[inline]
pub fn pid_w(out: &mut Vec<u8>, p: Pid, local: &convert::LocalId) {
    out.push(88);
    if p.is_local() {
        atom(out, &local.name);
        out.extend_from_slice(&p.id().to_be_bytes());
        out.extend_from_slice(&p.serial().to_be_bytes());
        out.extend_from_slice(&local.creation.to_be_bytes());
    } else {
        p.with_node(|node| atom(out, node));
        out.extend_from_slice(&p.id().to_be_bytes());
        out.extend_from_slice(&p.serial().to_be_bytes());
        out.extend_from_slice(&p.creation().to_be_bytes());
    }
}

/// A local reference, as a reference of this node.
pub fn ref_w(out: &mut Vec<u8>, r: Ref, local: &convert::LocalId) {
    Term::Reference(Box::new(convert::ref_to_wire(r, local))).encode_body(out);
}

/// Any term.
pub fn term(out: &mut Vec<u8>, t: &Term) {
    t.encode_body(out);
}

/// An exit reason as a term.
pub fn reason(out: &mut Vec<u8>, r: &ExitReason) {
    convert::reason_to_term(r).encode_body(out);
}
