//! The one error type of this crate: what went wrong while decoding, encoding or mapping
//! a Rust type to or from a term, with enough detail to find the offending byte.

use std::fmt;

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended while `needed` more bytes were expected at offset `at`.
    #[error("unexpected end of input: needed {needed} more byte(s) at offset {at}")]
    UnexpectedEof {
        /// Bytes still needed.
        needed: usize,
        /// Offset where they were needed.
        at: usize,
    },
    /// The first byte was not the ETF version byte 131.
    #[error("not an external term: version byte is {0}, expected 131")]
    BadVersion(u8),
    /// A tag byte this decoder does not know.
    #[error("unknown term tag {tag} at offset {at}")]
    UnknownTag {
        /// The tag byte.
        tag: u8,
        /// Its offset.
        at: usize,
    },
    /// A length field promises more data than the rest of the input can hold.
    #[error(
        "{what} of length {len} at offset {at} cannot fit in the {remaining} remaining byte(s)"
    )]
    LengthExceedsInput {
        /// What was being read (`tuple`, `binary`, ...).
        what: &'static str,
        /// The declared length.
        len: usize,
        /// Bytes left after the length field.
        remaining: usize,
        /// Offset of the length field.
        at: usize,
    },
    /// A configurable limit of [`DecodeLimits`](crate::DecodeLimits) was exceeded.
    #[error("decode limit `{limit}` exceeded: {value} > {max} (raise it in DecodeLimits if the input is trusted)")]
    LimitExceeded {
        /// The name of the field of `DecodeLimits`.
        limit: &'static str,
        /// The value met in the input.
        value: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Bytes were left over after a complete term.
    #[error("{remaining} trailing byte(s) after the term at offset {at}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        at: usize,
        /// How many extra bytes.
        remaining: usize,
    },
    /// The input is structurally valid but a value in it is not allowed.
    #[error("invalid term at offset {at}: {reason}")]
    Invalid {
        /// Offset of the value.
        at: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A value that cannot be represented (an atom too long, a reference too long...).
    #[error("{0}")]
    Unrepresentable(String),
    /// zlib failed on a compressed term.
    #[error("compressed term: {0}")]
    Compression(String),
    /// serde: the term found does not match the Rust type asked for.
    #[error("expected {expected}, found {found}")]
    TypeMismatch {
        /// What the Rust type needed.
        expected: &'static str,
        /// What the input held.
        found: String,
    },
    /// serde: a message from a `Serialize` or `Deserialize` implementation.
    #[error("{0}")]
    Custom(String),
}

impl Error {
    pub(crate) fn invalid(at: usize, reason: impl Into<String>) -> Self {
        Error::Invalid {
            at,
            reason: reason.into(),
        }
    }
}

impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
