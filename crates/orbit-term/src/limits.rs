//! Limits that keep a decoder safe from hostile peers.
//!
//! Every length field is also checked against the bytes that remain before anything is
//! allocated, whatever the limits say; these limits bound what a *well-formed* but
//! malicious term can cost. There is no global atom table in this crate (an [`Atom`]
//! is a value, freed when dropped), so atoms from a peer can never pile up; the per-decode
//! atom count still bounds the work one message can cause to an atom table kept by a
//! caller.
//!
//! [`Atom`]: crate::Atom

/// Bounds applied while decoding one term. Violations are
/// [`Error::LimitExceeded`](crate::Error::LimitExceeded) naming the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Deepest nesting of tuples, lists, maps and funs (the top term is depth 1; a list
    /// chained through its tails is one level). The decoder cannot overflow the stack
    /// whatever this is (deep levels continue on extra stack segments), but a decoded
    /// term's `Drop`, encoding and comparisons recurse: keep it near the default unless
    /// those run on a large stack.
    pub max_depth: usize,
    /// Most atoms (occurrences, including node names) in one decoded term.
    pub max_atoms: usize,
    /// Largest size a compressed term (tag 80) may declare and inflate to.
    pub max_uncompressed_size: usize,
    /// Largest magnitude of a big integer, in bytes.
    pub max_big_int_bytes: usize,
}

impl DecodeLimits {
    /// Defaults suited to messages from a cluster peer: depth 512, a million atoms,
    /// 256 MiB uncompressed, big integers of 64 KiB.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_depth: 512,
        max_atoms: 1 << 20,
        max_uncompressed_size: 256 << 20,
        max_big_int_bytes: 64 << 10,
    };

    /// No limit beyond what the input holds, except depth, which stays at 512 so that
    /// dropping, encoding and comparing the decoded term fit a 2 MB thread's stack.
    /// For trusted input only.
    pub const TRUSTED: DecodeLimits = DecodeLimits {
        max_depth: 512,
        max_atoms: usize::MAX,
        max_uncompressed_size: usize::MAX,
        max_big_int_bytes: usize::MAX,
    };
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::DEFAULT
    }
}
