//! [`Atom`]: an Erlang atom as a value.
//!
//! Two ways to make one: [`atom!`](crate::atom!) for text known when compiling (checked
//! then: no `Result`, no panic), [`Atom::try_new`] for any other text (a `Result`,
//! since the BEAM refuses atoms over 255 characters).
//!
//! Atoms up to 22 bytes (nearly all of them: `ok`, `error`, module and node names) are
//! stored inline without allocating; longer ones share one heap string between clones.
//! There is deliberately no global atom table, so atoms decoded from a peer are freed
//! with the term that holds them. Decoding keeps only a tiny per-thread cache of the
//! last few long atoms it made ([`Atom::decoded`]: 4 strings of at most 255 characters
//! per thread), so the node names every pid and reference carries (usually over 22
//! bytes) are shared, not allocated, each time they are decoded.

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

/// Long atoms [`Atom::decoded`] keeps per thread.
const DECODE_CACHE: usize = 4;

/// The long atoms this thread decoded last.
struct DecodeCache {
    slots: [Option<Arc<str>>; DECODE_CACHE],
    next: usize,
}

thread_local! {
    static DECODED: std::cell::RefCell<DecodeCache> = const {
        std::cell::RefCell::new(DecodeCache {
            slots: [None, None, None, None],
            next: 0,
        })
    };
}

/// An Erlang atom: UTF-8 text of at most 255 characters.
///
/// Compares, orders and hashes by its text (Erlang orders atoms by code points, which is
/// the byte order of UTF-8).
#[derive(Clone)]
pub struct Atom(Repr);

/// An [`Atom`] from a string constant, checked when compiling: text over 255
/// characters ([`MAX_ATOM_CHARS`]) is a compile error, so the result is an `Atom`, not a
/// `Result`. For text known only at run time use [`Atom::try_new`].
///
/// ```
/// use orbit_term::{atom, Atom};
/// let ok: Atom = atom!("ok");
/// assert_eq!(ok.as_str(), "ok");
/// ```
///
/// ```compile_fail
/// // 256 characters: refused when compiling.
/// let _ = orbit_term::atom!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
/// ```
#[macro_export]
macro_rules! atom {
    ($text:expr) => {{
        const TEXT: &str = $text;
        const {
            ::core::assert!(
                $crate::Atom::fits(TEXT),
                "atom!: text longer than 255 characters, the most the BEAM allows"
            )
        };
        $crate::Atom::__checked(TEXT)
    }};
}

impl Atom {
    /// An atom with this text, or [`Error::Unrepresentable`] if longer than 255
    /// characters. For text known when compiling, [`atom!`](crate::atom!) needs no
    /// `Result`.
    pub fn try_new(text: &str) -> Result<Atom> {
        if !Atom::fits(text) {
            return Err(Error::Unrepresentable(format!(
                "atom of {} characters: the BEAM allows at most {MAX_ATOM_CHARS}",
                text.chars().count()
            )));
        }
        Ok(Atom::new_unchecked(text))
    }

    /// The former name of [`Atom::try_new`].
    #[deprecated(
        since = "0.1.0",
        note = "use `atom!(\"text\")` for text known when compiling, `Atom::try_new` otherwise"
    )]
    pub fn new(text: &str) -> Result<Atom> {
        Atom::try_new(text)
    }

    /// Whether `text` can be an atom: at most [`MAX_ATOM_CHARS`] characters (checked
    /// without making one; [`atom!`](crate::atom!) checks it when compiling).
    pub const fn fits(text: &str) -> bool {
        let bytes = text.as_bytes();
        if bytes.len() <= MAX_ATOM_CHARS {
            return true;
        }
        // Characters are the bytes that do not continue a UTF-8 sequence.
        let mut chars = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] & 0xC0 != 0x80 {
                chars += 1;
            }
            i += 1;
        }
        chars <= MAX_ATOM_CHARS
    }

    /// [`atom!`](crate::atom!)'s constructor, after its compile-time check.
    #[doc(hidden)]
    pub fn __checked(text: &'static str) -> Atom {
        Atom::new_unchecked(text)
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

    /// Like [`new_unchecked`](Self::new_unchecked), for text decoded from a peer: a long
    /// atom seen recently on this thread shares its string (an `Arc` clone instead of
    /// an allocation and a copy). The cache holds the last [`DECODE_CACHE`] long atoms
    /// this thread decoded, replaced round-robin.
    pub(crate) fn decoded(text: &str) -> Atom {
        if text.len() <= INLINE {
            return Atom::new_unchecked(text);
        }
        let hit = DECODED.try_with(|c| {
            let mut c = c.borrow_mut();
            if let Some(s) = c.slots.iter().flatten().find(|s| ***s == *text) {
                return Arc::clone(s);
            }
            let s: Arc<str> = Arc::from(text);
            let at = c.next % DECODE_CACHE;
            c.slots[at] = Some(Arc::clone(&s));
            c.next = at + 1;
            s
        });
        match hit {
            Ok(s) => Atom(Repr::Heap(s)),
            // The thread is exiting: no cache.
            Err(_) => Atom::new_unchecked(text),
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
        Atom::try_new(s)
    }
}

impl TryFrom<String> for Atom {
    type Error = Error;
    fn try_from(s: String) -> Result<Atom> {
        Atom::try_new(&s)
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
    fn decoded_long_atoms_share_a_string_and_stay_equal() {
        let name = "orbit_erpc_target_12345_0@127.0.0.1";
        let (a, b) = (Atom::decoded(name), Atom::decoded(name));
        assert_eq!(a, b);
        assert_eq!(a.as_str(), name);
        match (&a.0, &b.0) {
            (Repr::Heap(x), Repr::Heap(y)) => assert!(Arc::ptr_eq(x, y), "shared"),
            _ => panic!("long atoms live on the heap"),
        }
        // More long atoms than the cache holds: each still has its own text.
        let many: Vec<String> = (0..3 * DECODE_CACHE)
            .map(|i| format!("{name}_{i}"))
            .collect();
        for (t, x) in many.iter().map(|t| (t, Atom::decoded(t))) {
            assert_eq!(x.as_str(), t);
        }
        assert_eq!(Atom::decoded(name).as_str(), name);
        assert_eq!(Atom::decoded("ok"), crate::atom!("ok"));
    }

    #[test]
    fn inline_and_heap_compare_by_text() {
        let short = crate::atom!("ok");
        let long = Atom::try_new(&"a".repeat(100)).unwrap();
        assert_eq!(short.as_str(), "ok");
        assert_eq!(long.as_str().len(), 100);
        assert!(short > long);
        assert!(Atom::try_new(&"é".repeat(255)).is_ok());
        assert!(Atom::try_new(&"é".repeat(256)).is_err());
        assert_eq!(std::mem::size_of::<Atom>(), 24);
    }

    #[test]
    fn atom_macro_counts_characters_not_bytes() {
        // 255 two-byte characters: 510 bytes, still an atom.
        const E255: &str = "ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé";
        let a = crate::atom!(E255);
        assert_eq!(a.as_str().chars().count(), 255);
        assert_eq!(a, Atom::try_new(E255).unwrap());
        assert!(Atom::fits(E255));
        assert!(!Atom::fits(&"é".repeat(256)));
        assert!(Atom::fits(""));
        assert_eq!(crate::atom!(""), Atom::try_new("").unwrap());
        // The macro works in constants' company and on long (heap) atoms alike.
        const LONG: &str = "a_rather_long_module_name_beyond_inline";
        assert_eq!(crate::atom!(LONG).as_str(), LONG);
    }
}
