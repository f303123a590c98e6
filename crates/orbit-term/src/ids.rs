//! Identifiers bound to a node: [`Pid`], [`Port`] and [`Reference`].
//!
//! These are plain values mirroring the ETF fields one-to-one, so a runtime can map its
//! own process ids to and from them without loss. Ordering is the BEAM's (OTP 25, checked
//! against `erl`): pids by serial, id, node, creation; ports by node, creation, id;
//! references by node, creation, word count, then words from the most significant.

use crate::atom::Atom;
use crate::error::{Error, Result};

/// A process identifier as it crosses the wire (`NEW_PID_EXT`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pid {
    /// Node name, e.g. `a@host`.
    pub node: Atom,
    /// Process number on that node.
    pub id: u32,
    /// Serial, bumped when ids wrap.
    pub serial: u32,
    /// Creation of the node incarnation.
    pub creation: u32,
}

impl Pid {
    /// Appends this pid as `NEW_PID_EXT` (no version byte): what
    /// `Term::Pid(..).encode_body` writes, without building the term.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        crate::encode::write_pid(out, self);
    }

    /// A pid from its four fields.
    pub fn new(node: Atom, id: u32, serial: u32, creation: u32) -> Pid {
        Pid {
            node,
            id,
            serial,
            creation,
        }
    }
}

/// A port identifier (`NEW_PORT_EXT`, or `V4_PORT_EXT` when the id needs 64 bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Port {
    /// Node name.
    pub node: Atom,
    /// Port number (up to 64 bits since OTP 24).
    pub id: u64,
    /// Creation of the node incarnation.
    pub creation: u32,
}

impl Port {
    /// A port from its three fields.
    pub fn new(node: Atom, id: u64, creation: u32) -> Port {
        Port { node, id, creation }
    }
}

impl PartialOrd for Pid {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pid {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.serial, self.id, &self.node, self.creation).cmp(&(
            other.serial,
            other.id,
            &other.node,
            other.creation,
        ))
    }
}

impl PartialOrd for Port {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Port {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.node, self.creation, self.id).cmp(&(&other.node, other.creation, other.id))
    }
}

/// Most 32-bit words a reference may have (`NEWER_REFERENCE_EXT` allows 5).
pub const MAX_REFERENCE_WORDS: usize = 5;

/// A reference (`NEWER_REFERENCE_EXT`): node, creation and 1 to 5 id words, kept inline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Node name.
    pub node: Atom,
    /// Creation of the node incarnation.
    pub creation: u32,
    len: u8,
    words: [u32; MAX_REFERENCE_WORDS],
}

impl Reference {
    /// A reference with these id words (1 to 5 of them; the BEAM makes 3, or 5 with
    /// aliases), or [`Error::Unrepresentable`].
    pub fn new(node: Atom, creation: u32, ids: &[u32]) -> Result<Reference> {
        if ids.is_empty() || ids.len() > MAX_REFERENCE_WORDS {
            return Err(Error::Unrepresentable(format!(
                "reference with {} id words: must be 1 to {MAX_REFERENCE_WORDS}",
                ids.len()
            )));
        }
        let mut words = [0u32; MAX_REFERENCE_WORDS];
        words[..ids.len()].copy_from_slice(ids);
        Ok(Reference {
            node,
            creation,
            len: ids.len() as u8,
            words,
        })
    }

    /// The id words, in wire order.
    pub fn ids(&self) -> &[u32] {
        &self.words[..self.len as usize]
    }

    /// Appends this reference as `NEWER_REFERENCE_EXT` (no version byte): what
    /// `Term::Reference(..).encode_body` writes, without building the term.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        crate::encode::write_reference(out, self);
    }
}

impl PartialOrd for Reference {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Node, creation, word count, then the words from the most significant (last on the
/// wire).
impl Ord for Reference {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.node
            .cmp(&other.node)
            .then_with(|| self.creation.cmp(&other.creation))
            .then_with(|| self.len.cmp(&other.len))
            .then_with(|| self.ids().iter().rev().cmp(other.ids().iter().rev()))
    }
}

/// A fun `fun M:F/A` (`EXPORT_EXT`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Export {
    /// Module.
    pub module: Atom,
    /// Function name.
    pub function: Atom,
    /// Arity.
    pub arity: u8,
}

/// A closure (`NEW_FUN_EXT`), kept field by field so it can be sent back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Fun {
    /// Arity of the fun.
    pub arity: u8,
    /// MD5 of the module's code.
    pub uniq: [u8; 16],
    /// Index in the module's fun table.
    pub index: u32,
    /// Module that defines it.
    pub module: Atom,
    /// Old index (an integer term on the wire).
    pub old_index: i64,
    /// Old uniq (an integer term on the wire).
    pub old_uniq: i64,
    /// Process that created it.
    pub pid: Pid,
    /// Captured variables.
    pub free_vars: Vec<crate::Term>,
}
