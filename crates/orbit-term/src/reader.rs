//! A bounds-checked cursor over the input bytes, shared by the [`Term`](crate::Term)
//! decoder and the serde deserializer. Every read checks what remains first; nothing
//! here allocates.

use std::borrow::Cow;

use crate::atom::MAX_ATOM_CHARS;
use crate::error::{Error, Result};
use crate::limits::DecodeLimits;
use crate::tag;

/// Stack that must remain before a decoder descends one more level; below it, the next
/// levels run on a fresh heap-allocated segment of [`STACK_SEGMENT`] bytes.
const STACK_RED_ZONE: usize = 128 << 10;
/// Size of each extra stack segment.
const STACK_SEGMENT: usize = 2 << 20;

/// Most elements reserved upfront for one container (see [`Reader::prealloc`]).
pub(crate) const PREALLOC_MAX: usize = 1024;

/// Runs one nesting level of a recursive decoder so that it can never overflow the
/// thread's stack, whatever the build (a debug frame for a fun is several KB) and
/// whatever thread it runs on: when less than [`STACK_RED_ZONE`] remains, `f` runs on a
/// new segment (the `stacker` crate, as rustc does for its own recursion). Depth limits
/// then bound work and memory, not stack safety.
#[inline]
pub(crate) fn grow_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, f)
}

pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) limits: DecodeLimits,
    pub(crate) depth: usize,
    pub(crate) atoms: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], limits: DecodeLimits) -> Self {
        Reader {
            buf,
            pos: 0,
            limits,
            depth: 0,
            atoms: 0,
        }
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn eof(&self, n: usize) -> Error {
        Error::UnexpectedEof {
            needed: n - self.remaining(),
            at: self.pos,
        }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Result<u8> {
        self.buf.get(self.pos).copied().ok_or_else(|| self.eof(1))
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        match self.buf.get(self.pos..self.pos + N) {
            Some(s) => {
                self.pos += N;
                let mut a = [0u8; N];
                a.copy_from_slice(s);
                Ok(a)
            }
            None => Err(self.eof(N)),
        }
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16> {
        self.array::<2>().map(u16::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32> {
        self.array::<4>().map(u32::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64> {
        self.array::<8>().map(u64::from_be_bytes)
    }

    #[inline]
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.eof(n));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// How many elements to reserve for a container that declares `count` (already checked
    /// with [`check_len`](Self::check_len)): at most [`PREALLOC_MAX`]. A declared count is
    /// only a claim until the elements are read, and every open container of a nesting
    /// holds its reservation at once, so without a cap a hostile term could make each of
    /// up to `max_depth` levels reserve as much as the whole input (memory quadratic in
    /// the input); beyond the cap vectors grow as elements arrive.
    #[inline]
    pub(crate) fn prealloc(count: usize) -> usize {
        count.min(PREALLOC_MAX)
    }

    /// Checks that `count` items of at least `min_size` bytes each can still follow,
    /// before anything is allocated for them.
    #[inline]
    pub(crate) fn check_len(
        &self,
        what: &'static str,
        count: usize,
        min_size: usize,
    ) -> Result<()> {
        if count.saturating_mul(min_size) > self.remaining() {
            return Err(Error::LengthExceedsInput {
                what,
                len: count,
                remaining: self.remaining(),
                at: self.pos,
            });
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(Error::LimitExceeded {
                limit: "max_depth",
                value: self.depth,
                max: self.limits.max_depth,
            });
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Reads an atom (any of the four atom tags) whose tag is `t`, already consumed.
    pub(crate) fn atom_body(&mut self, t: u8) -> Result<Cow<'a, str>> {
        let at = self.pos;
        let (len, utf8) = match t {
            tag::SMALL_ATOM_UTF8 => (self.u8()? as usize, true),
            tag::ATOM_UTF8 => (self.u16()? as usize, true),
            tag::SMALL_ATOM => (self.u8()? as usize, false),
            tag::ATOM => (self.u16()? as usize, false),
            other => {
                return Err(Error::TypeMismatch {
                    expected: "an atom",
                    found: format!(
                        "{} (tag {other}) at offset {}",
                        tag::describe(other),
                        at - 1
                    ),
                })
            }
        };
        self.atoms += 1;
        if self.atoms > self.limits.max_atoms {
            return Err(Error::LimitExceeded {
                limit: "max_atoms",
                value: self.atoms,
                max: self.limits.max_atoms,
            });
        }
        let raw = self.bytes(len)?;
        if raw.is_ascii() {
            // Nearly every atom is ASCII: one length check, no UTF-8 decoding.
            if len > MAX_ATOM_CHARS {
                return Err(Error::invalid(at, "atom longer than 255 characters"));
            }
            return Ok(Cow::Borrowed(ascii_str(raw)));
        }
        if utf8 {
            let s = std::str::from_utf8(raw)
                .map_err(|_| Error::invalid(at, "atom is not valid UTF-8"))?;
            if len > MAX_ATOM_CHARS && s.chars().count() > MAX_ATOM_CHARS {
                return Err(Error::invalid(at, "atom longer than 255 characters"));
            }
            Ok(Cow::Borrowed(s))
        } else if len > MAX_ATOM_CHARS {
            Err(Error::invalid(at, "atom longer than 255 characters"))
        } else {
            Ok(Cow::Owned(raw.iter().map(|&b| b as char).collect()))
        }
    }
}

/// `bytes` as a `&str`, for bytes already checked to be ASCII.
#[inline]
pub(crate) fn ascii_str(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    // SAFETY: callers check `bytes.is_ascii()`, and ASCII is valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}
