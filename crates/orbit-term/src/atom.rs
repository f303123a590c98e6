//! [`Atom`]: an Erlang atom as a value.
//!
//! Atoms up to 22 bytes (nearly all of them: `ok`, `error`, module and node names) are
//! stored inline without allocating; longer ones share one heap string between clones.
//! There is deliberately no global atom table, so atoms decoded from a peer are freed
//! with the term that holds them.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Longest atom the BEAM accepts, in characters.
pub const MAX_ATOM_CHARS: usize = 255;

const INLINE: usize = 22;

#[derive(Clone)]
enum Repr {
    Inline(u8, [u8; INLINE]),
    Heap(Arc<str>),
}

/// An Erlang atom: UTF-8 text of at most 255 characters.
///
/// Compares, orders and hashes by its text (Erlang orders atoms by code points, which is
/// the byte order of UTF-8).
#[derive(Clone)]
pub struct Atom(Repr);

impl Atom {
    /// An atom with this text, or [`Error::Unrepresentable`] if longer than 255 characters.
    pub fn new(text: &str) -> Result<Atom> {
        if text.len() > MAX_ATOM_CHARS && text.chars().count() > MAX_ATOM_CHARS {
            return Err(Error::Unrepresentable(format!(
                "atom of {} characters: the BEAM allows at most {MAX_ATOM_CHARS}",
                text.chars().count()
            )));
        }
        Ok(Atom::new_unchecked(text))
    }

    /// Callers guarantee the length was checked.
    pub(crate) fn new_unchecked(text: &str) -> Atom {
        if text.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..text.len()].copy_from_slice(text.as_bytes());
            Atom(Repr::Inline(text.len() as u8, buf))
        } else {
            Atom(Repr::Heap(Arc::from(text)))
        }
    }

    /// The atom's text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(len, buf) => {
                let bytes = buf.get(..*len as usize).unwrap_or_default();
                // SAFETY: inline bytes are only ever copied from a whole `&str` (see
                // `new_unchecked`), so they are valid UTF-8; validating again on every
                // read would cost more than the rest of encoding an atom.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            Repr::Heap(s) => s,
        }
    }

    /// Appends this atom as `SMALL_ATOM_UTF8_EXT` (or `ATOM_UTF8_EXT` when long).
    #[inline]
    pub(crate) fn write_ext(&self, out: &mut Vec<u8>) {
        match &self.0 {
            Repr::Inline(len, buf) => {
                // Copy the whole fixed-size inline buffer (a couple of vector moves, no
                // memcpy call), then cut back to the real length.
                let start = out.len();
                let mut ext = [0u8; INLINE + 2];
                ext[0] = crate::tag::SMALL_ATOM_UTF8;
                ext[1] = *len;
                ext[2..].copy_from_slice(buf);
                out.extend_from_slice(&ext);
                out.truncate(start + 2 + *len as usize);
            }
            Repr::Heap(s) => crate::encode::write_atom(out, s),
        }
    }

    /// The atom `nil` (Elixir's nil).
    pub fn nil() -> Atom {
        Atom::new_unchecked("nil")
    }

    /// The atom `true` or `false`.
    pub fn bool(b: bool) -> Atom {
        Atom::new_unchecked(if b { "true" } else { "false" })
    }
}

impl TryFrom<&str> for Atom {
    type Error = Error;
    fn try_from(s: &str) -> Result<Atom> {
        Atom::new(s)
    }
}

impl TryFrom<String> for Atom {
    type Error = Error;
    fn try_from(s: String) -> Result<Atom> {
        Atom::new(&s)
    }
}

impl AsRef<str> for Atom {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Atom {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Atom) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Atom {}

impl PartialEq<str> for Atom {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Atom {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Atom) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Atom {
    fn cmp(&self, other: &Atom) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Atom {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self)
    }
}

/// Prints the atom as Erlang would, quoting it when it is not a bare atom.
impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_str();
        let bare = s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@');
        if bare {
            f.write_str(s)
        } else {
            write!(f, "'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_compare_by_text() {
        let short = Atom::new("ok").unwrap();
        let long = Atom::new(&"a".repeat(100)).unwrap();
        assert_eq!(short.as_str(), "ok");
        assert_eq!(long.as_str().len(), 100);
        assert!(short > long);
        assert!(Atom::new(&"é".repeat(255)).is_ok());
        assert!(Atom::new(&"é".repeat(256)).is_err());
        assert_eq!(std::mem::size_of::<Atom>(), 24);
    }
}
