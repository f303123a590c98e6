//! Decoding ETF bytes into a [`Term`].
//!
//! The decoder walks a slice cursor ([`Reader`]) and never panics: every length is checked
//! against the bytes that remain before anything is allocated, nesting is bounded and
//! atoms are counted (see [`DecodeLimits`]). Compressed terms (tag 80) are inflated first,
//! within `max_uncompressed_size`. `Pid::decode_body`, `Reference::decode_body` and
//! `Atom::decode_body` decode one such value with the same code, for readers of
//! fixed-shape messages that build no `Term` (orbit-dist's control fast path).

use std::borrow::Cow;

use num_bigint::{BigInt, Sign};

use crate::atom::Atom;
use crate::error::{Error, Result};
use crate::ids::{Export, Fun, Pid, Port, Reference, MAX_REFERENCE_WORDS};
use crate::limits::DecodeLimits;
use crate::reader::{grow_stack, Reader};
use crate::tag;
use crate::term::Term;

impl Term {
    /// Decodes a whole external term (`131, ...`, possibly compressed) with the default
    /// [`DecodeLimits`]. Trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Term> {
        Term::decode_with(bytes, &DecodeLimits::DEFAULT)
    }

    /// Decodes a whole external term with the given limits.
    pub fn decode_with(bytes: &[u8], limits: &DecodeLimits) -> Result<Term> {
        let (term, used) = Term::decode_prefix(bytes, limits)?;
        if used != bytes.len() {
            return Err(Error::TrailingBytes {
                at: used,
                remaining: bytes.len() - used,
            });
        }
        Ok(term)
    }

    /// Decodes one external term at the start of `bytes`; returns it and the number of
    /// bytes it took (for streams that carry several terms back to back).
    pub fn decode_prefix(bytes: &[u8], limits: &DecodeLimits) -> Result<(Term, usize)> {
        let mut r = Reader::new(bytes, *limits);
        let v = r.u8()?;
        if v != tag::VERSION {
            return Err(Error::BadVersion(v));
        }
        if r.peek()? == tag::COMPRESSED {
            r.pos += 1;
            let inflated = inflate(&mut r)?;
            let mut inner = Reader::new(&inflated, *limits);
            let term = decode_term(&mut inner)?;
            if inner.remaining() != 0 {
                return Err(Error::TrailingBytes {
                    at: inner.pos,
                    remaining: inner.remaining(),
                });
            }
            return Ok((term, r.pos));
        }
        let term = decode_term(&mut r)?;
        Ok((term, r.pos))
    }

    /// Decodes a term without the version byte (as found inside distribution messages).
    pub fn decode_body(bytes: &[u8], limits: &DecodeLimits) -> Result<(Term, usize)> {
        let mut r = Reader::new(bytes, *limits);
        let term = decode_term(&mut r)?;
        Ok((term, r.pos))
    }
}

impl Pid {
    /// Decodes a pid (`NEW_PID_EXT` or `PID_EXT`, no version byte) at the start of
    /// `bytes` exactly as [`Term::decode_body`] decodes one (same checks, node names
    /// shared the same way), without building a [`Term`]; returns it and the bytes it
    /// took. For readers of fixed-shape messages (distribution control tuples).
    pub fn decode_body(bytes: &[u8]) -> Result<(Pid, usize)> {
        let mut r = Reader::new(bytes, DecodeLimits::DEFAULT);
        let t = r.peek()?;
        if t != tag::NEW_PID && t != tag::PID {
            return Err(Error::invalid(0, "expected a pid"));
        }
        let p = decode_pid_at(&mut r)?;
        Ok((p, r.pos))
    }
}

impl Reference {
    /// Decodes a reference (`NEWER_REFERENCE_EXT`, `NEW_REFERENCE_EXT` or
    /// `REFERENCE_EXT`, no version byte) at the start of `bytes` exactly as
    /// [`Term::decode_body`] decodes one, without building a [`Term`]; returns it and the
    /// bytes it took.
    pub fn decode_body(bytes: &[u8]) -> Result<(Reference, usize)> {
        let mut r = Reader::new(bytes, DecodeLimits::DEFAULT);
        let t = r.u8()?;
        if !matches!(
            t,
            tag::NEWER_REFERENCE | tag::NEW_REFERENCE | tag::REFERENCE
        ) {
            return Err(Error::invalid(0, "expected a reference"));
        }
        let v = reference(&mut r, t)?;
        Ok((v, r.pos))
    }
}

impl Atom {
    /// Decodes an atom (any of the four atom tags, no version byte) at the start of
    /// `bytes` exactly as [`Term::decode_body`] decodes one (long atoms shared through
    /// the same per-thread cache), without building a [`Term`]; returns it and the bytes
    /// it took.
    pub fn decode_body(bytes: &[u8]) -> Result<(Atom, usize)> {
        let mut r = Reader::new(bytes, DecodeLimits::DEFAULT);
        let a = atom_from(&mut r)?;
        Ok((a, r.pos))
    }
}

/// Inflates the body of a compressed term; the reader is just after tag 80 and ends just
/// after the zlib stream (which carries no outer length; its end is found by inflating).
pub(crate) fn inflate(r: &mut Reader<'_>) -> Result<Vec<u8>> {
    let at = r.pos;
    let size = r.u32()? as usize;
    if size > r.limits.max_uncompressed_size {
        return Err(Error::LimitExceeded {
            limit: "max_uncompressed_size",
            value: size,
            max: r.limits.max_uncompressed_size,
        });
    }
    // zlib cannot expand data by more than about 1032:1; a larger claim is a lie that
    // must not become an allocation.
    let compressed = r.bytes(r.remaining())?;
    if size > compressed.len().saturating_mul(1032).saturating_add(64) {
        return Err(Error::LengthExceedsInput {
            what: "compressed term",
            len: size,
            remaining: compressed.len(),
            at,
        });
    }
    // The declared size is only a claim until the bytes inflate: reserve what the input
    // plausibly holds and grow (doubling, never past `size`) as output really arrives, so
    // a short lie cannot reserve `max_uncompressed_size` upfront.
    let mut out = Vec::with_capacity(size.min(compressed.len().saturating_mul(4).max(4096)));
    let mut z = flate2::Decompress::new(true);
    let status = loop {
        let before = (z.total_in(), z.total_out());
        let input = compressed.get(z.total_in() as usize..).unwrap_or_default();
        // `None`, not `Finish`: miniz treats `Finish` as "all output fits now" and fails
        // on the first call whose output space is short.
        let status = z
            .decompress_vec(input, &mut out, flate2::FlushDecompress::None)
            .map_err(|e| Error::Compression(e.to_string()))?;
        let stuck = (z.total_in(), z.total_out()) == before;
        if status == flate2::Status::StreamEnd || out.len() > size || stuck {
            break status;
        }
        if out.len() == out.capacity() {
            // Up to one byte past `size`, to see a stream that inflates to more.
            let room = size.saturating_add(1).saturating_sub(out.len());
            out.reserve_exact(out.capacity().min(room).max(1));
        }
    };
    if status != flate2::Status::StreamEnd || out.len() != size {
        return Err(Error::Compression(format!(
            "declared {size} uncompressed bytes, inflated {} ({status:?})",
            out.len()
        )));
    }
    r.pos = at + 4 + z.total_in() as usize;
    Ok(out)
}

pub(crate) fn atom_from(r: &mut Reader<'_>) -> Result<Atom> {
    let t = r.u8()?;
    let text = r.atom_body(t)?;
    Ok(Atom::decoded(&text))
}

fn to_atom(text: Cow<'_, str>) -> Atom {
    // `atom_body` checked the length.
    Atom::decoded(&text)
}

/// Reads an integer term and returns it when it fits in `i64`.
fn small_int(r: &mut Reader<'_>, what: &str) -> Result<i64> {
    let at = r.pos;
    match decode_term(r)? {
        Term::Int(i) => Ok(i),
        _ => Err(Error::invalid(at, format!("{what} must be an integer"))),
    }
}

/// Decodes the sign byte and `n` little-endian magnitude bytes of a big integer.
pub(crate) fn big_body(r: &mut Reader<'_>, n: usize) -> Result<Term> {
    if n > r.limits.max_big_int_bytes {
        return Err(Error::LimitExceeded {
            limit: "max_big_int_bytes",
            value: n,
            max: r.limits.max_big_int_bytes,
        });
    }
    let at = r.pos;
    let sign = r.u8()?;
    let digits = r.bytes(n)?;
    if sign > 1 {
        return Err(Error::invalid(at, format!("big integer sign byte {sign}")));
    }
    if n <= 8 {
        let mut m = 0u64;
        for (i, d) in digits.iter().enumerate() {
            m |= (*d as u64) << (8 * i);
        }
        if sign == 0 {
            if let Ok(i) = i64::try_from(m) {
                return Ok(Term::Int(i));
            }
        } else if m <= 1u64 << 63 {
            return Ok(Term::Int((m as i64).wrapping_neg()));
        }
    }
    let s = if sign == 0 { Sign::Plus } else { Sign::Minus };
    Ok(Term::big(BigInt::from_bytes_le(s, digits)))
}

fn decode_pid_at(r: &mut Reader<'_>) -> Result<Pid> {
    let at = r.pos;
    let t = r.u8()?;
    let node = atom_from(r)?;
    let (id, serial) = (r.u32()?, r.u32()?);
    let creation = match t {
        tag::NEW_PID => r.u32()?,
        tag::PID => r.u8()? as u32,
        _ => return Err(Error::invalid(at, "expected a pid")),
    };
    Ok(Pid::new(node, id, serial, creation))
}

fn reference(r: &mut Reader<'_>, t: u8) -> Result<Reference> {
    let at = r.pos;
    if t == tag::REFERENCE {
        let node = atom_from(r)?;
        let id = r.u32()?;
        let creation = r.u8()? as u32;
        return Reference::new(node, creation, &[id]);
    }
    let len = r.u16()? as usize;
    if len == 0 || len > MAX_REFERENCE_WORDS {
        return Err(Error::invalid(at, format!("reference with {len} id words")));
    }
    let node = atom_from(r)?;
    let creation = if t == tag::NEWER_REFERENCE {
        r.u32()?
    } else {
        r.u8()? as u32
    };
    let mut ids = [0u32; MAX_REFERENCE_WORDS];
    for id in ids.iter_mut().take(len) {
        *id = r.u32()?;
    }
    Reference::new(node, creation, &ids[..len])
}

fn fun(r: &mut Reader<'_>) -> Result<Fun> {
    let start = r.pos;
    let size = r.u32()? as usize;
    let arity = r.u8()?;
    let uniq = r.array::<16>()?;
    let index = r.u32()?;
    let num_free = r.u32()? as usize;
    let module = atom_from(r)?;
    let old_index = small_int(r, "fun OldIndex")?;
    let old_uniq = small_int(r, "fun OldUniq")?;
    let pid = decode_pid_at(r)?;
    r.check_len("fun free variables", num_free, 1)?;
    let mut free_vars = Vec::with_capacity(Reader::prealloc(num_free));
    for _ in 0..num_free {
        free_vars.push(decode_term(r)?);
    }
    if r.pos - start != size {
        return Err(Error::invalid(
            start,
            format!("fun declares {size} bytes but holds {}", r.pos - start),
        ));
    }
    Ok(Fun {
        arity,
        uniq,
        index,
        module,
        old_index,
        old_uniq,
        pid,
        free_vars,
    })
}

/// Parses the 31-byte text of a `FLOAT_EXT` exactly as `binary_to_term` does (erts'
/// `sys_chars_to_double`): the text ends at a NUL inside the 31 bytes (what follows the
/// NUL is ignored), and is `[+-]digits(.|,)digits` with an optional `(e|E)[+-]digits`;
/// no blanks, no `inf`/`nan`, no missing digits on either side of the point. A value
/// too large for a double is an error; one too small rounds towards zero.
fn float_text(r: &mut Reader<'_>) -> Result<f64> {
    let at = r.pos;
    let raw = r.bytes(31)?;
    let bad = || Error::invalid(at, "malformed FLOAT_EXT text");
    let end = raw.iter().position(|&b| b == 0).ok_or_else(bad)?;
    let text = &raw[..end];
    if !float_syntax(text) {
        return Err(bad());
    }
    let normal: String = text
        .iter()
        .map(|&b| if b == b',' { '.' } else { b as char })
        .collect();
    normal
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(bad)
}

/// Whether `s` is `[+-]digits(.|,)digits[(e|E)[+-]digits]`.
fn float_syntax(s: &[u8]) -> bool {
    fn digits(s: &[u8], i: &mut usize) -> bool {
        let start = *i;
        while s.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    }
    let mut i = 0;
    if matches!(s.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    if !digits(s, &mut i) || !matches!(s.get(i), Some(b'.' | b',')) {
        return false;
    }
    i += 1;
    if !digits(s, &mut i) {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(s, &mut i) {
            return false;
        }
    }
    i == s.len()
}

fn elements(r: &mut Reader<'_>, n: usize, what: &'static str) -> Result<Vec<Term>> {
    r.check_len(what, n, 1)?;
    let mut v = Vec::with_capacity(Reader::prealloc(n));
    append_elements(r, &mut v, n)?;
    Ok(v)
}

fn append_elements(r: &mut Reader<'_>, v: &mut Vec<Term>, n: usize) -> Result<()> {
    for _ in 0..n {
        // The commonest leaves are pushed in place: returning a `Result<Term>` through a
        // call and copying it into the vector costs more than decoding them.
        match r.peek()? {
            tag::SMALL_INTEGER => {
                let [_, b] = r.array::<2>()?;
                v.push(Term::Int(b as i64));
            }
            tag::SMALL_ATOM_UTF8 => {
                let t = r.u8()?;
                let text = r.atom_body(t)?;
                v.push(Term::Atom(to_atom(text)));
            }
            _ => v.push(decode_term(r)?),
        }
    }
    Ok(())
}

/// Decodes one term (no version byte) at the reader's position.
///
/// Each container level runs through [`grow_stack`], so no nesting can overflow the
/// stack; `max_depth` bounds the work.
pub(crate) fn decode_term(r: &mut Reader<'_>) -> Result<Term> {
    let at = r.pos;
    let t = r.u8()?;
    match t {
        tag::SMALL_TUPLE => {
            let n = r.u8()? as usize;
            grow_stack(|| decode_tuple(r, n))
        }
        tag::LARGE_TUPLE => {
            let n = r.u32()? as usize;
            grow_stack(|| decode_tuple(r, n))
        }
        tag::LIST => grow_stack(|| decode_list(r)),
        tag::MAP => grow_stack(|| decode_map(r)),
        tag::NEW_FUN => grow_stack(|| decode_fun(r)),
        _ => decode_leaf(r, t, at),
    }
}

#[inline(never)]
fn decode_tuple(r: &mut Reader<'_>, n: usize) -> Result<Term> {
    r.enter()?;
    let v = elements(r, n, "tuple")?;
    r.leave();
    Ok(Term::Tuple(v))
}

/// Decodes a `LIST_EXT` and every `LIST_EXT` chained through its tail into one vector.
///
/// `[a | [b | [c | T]]]` may arrive as a chain of list headers, each holding one element
/// and the next header as its tail. Decoding each tail as a term of its own and then
/// prepending (as `Term::improper_list` does) copies the rest of the list at every link:
/// quadratic in the input, a denial of service from any peer. So the chain is followed in
/// a loop that appends, and a tail counts as no extra nesting (it is the same list, as
/// for `binary_to_term`).
#[inline(never)]
fn decode_list(r: &mut Reader<'_>) -> Result<Term> {
    let n = r.u32()? as usize;
    r.check_len("list", n, 1)?;
    r.enter()?;
    let mut v = elements(r, n, "list")?;
    let tail = loop {
        match r.peek()? {
            tag::LIST => {
                r.pos += 1;
                let n = r.u32()? as usize;
                r.check_len("list", n, 1)?;
                // Capped like every other reservation: each open list level of a nesting
                // would otherwise hold a reservation the size of the whole input at once.
                v.reserve(Reader::prealloc(n));
                append_elements(r, &mut v, n)?;
            }
            tag::NIL => {
                r.pos += 1;
                break None;
            }
            tag::STRING => {
                r.pos += 1;
                let n = r.u16()? as usize;
                let bytes = r.bytes(n)?;
                v.extend(bytes.iter().map(|&b| Term::Int(b as i64)));
                break None;
            }
            _ => break Some(decode_term(r)?),
        }
    };
    r.leave();
    Ok(match tail {
        None => Term::List(v),
        Some(tail) if v.is_empty() => tail,
        Some(tail) => Term::ImproperList(Box::new(crate::term::ImproperList { elements: v, tail })),
    })
}

#[inline(never)]
fn decode_map(r: &mut Reader<'_>) -> Result<Term> {
    let at = r.pos - 1;
    let n = r.u32()? as usize;
    r.check_len("map", n, 2)?;
    r.enter()?;
    let mut v = Vec::with_capacity(Reader::prealloc(n));
    for _ in 0..n {
        let k = decode_term(r)?;
        let val = decode_term(r)?;
        v.push((k, val));
    }
    r.leave();
    if has_duplicate_keys(&v) {
        return Err(Error::invalid(at, "map with a duplicate key"));
    }
    Ok(Term::Map(v))
}

/// Whether two keys are exactly equal (`binary_to_term` rejects such maps too).
fn has_duplicate_keys(entries: &[(Term, Term)]) -> bool {
    if entries.len() <= 8 {
        return entries
            .iter()
            .enumerate()
            .any(|(i, (k, _))| entries[i + 1..].iter().any(|(q, _)| k.exact_eq(q)));
    }
    let mut keys: Vec<&Term> = entries.iter().map(|(k, _)| k).collect();
    keys.sort_unstable_by(|a, b| a.exact_cmp(b));
    keys.windows(2).any(|w| w[0].exact_eq(w[1]))
}

#[inline(never)]
fn decode_fun(r: &mut Reader<'_>) -> Result<Term> {
    r.enter()?;
    let f = fun(r)?;
    r.leave();
    Ok(Term::Fun(Box::new(f)))
}

/// Every term that holds no other term.
#[inline(never)]
fn decode_leaf(r: &mut Reader<'_>, t: u8, at: usize) -> Result<Term> {
    Ok(match t {
        tag::SMALL_INTEGER => Term::Int(r.u8()? as i64),
        tag::INTEGER => Term::Int(r.u32()? as i32 as i64),
        tag::ATOM_UTF8 | tag::SMALL_ATOM_UTF8 | tag::ATOM | tag::SMALL_ATOM => {
            Term::Atom(to_atom(r.atom_body(t)?))
        }
        tag::BINARY => {
            let n = r.u32()? as usize;
            Term::Binary(r.bytes(n)?.to_vec())
        }
        tag::NIL => Term::List(Vec::new()),
        tag::STRING => {
            let n = r.u16()? as usize;
            let bytes = r.bytes(n)?;
            Term::List(bytes.iter().map(|&b| Term::Int(b as i64)).collect())
        }
        tag::NEW_FLOAT => {
            let f = f64::from_bits(r.u64()?);
            if !f.is_finite() {
                return Err(Error::invalid(at, "non-finite float"));
            }
            Term::Float(f)
        }
        tag::FLOAT => Term::Float(float_text(r)?),
        tag::SMALL_BIG => {
            let n = r.u8()? as usize;
            big_body(r, n)?
        }
        tag::LARGE_BIG => {
            let n = r.u32()? as usize;
            big_body(r, n)?
        }
        tag::BIT_BINARY => {
            let n = r.u32()? as usize;
            let bits = r.u8()?;
            let bytes = r.bytes(n)?;
            if (n == 0 && bits != 0) || (n > 0 && !(1..=8).contains(&bits)) {
                return Err(Error::invalid(
                    at,
                    format!("bitstring with {bits} bits in last byte"),
                ));
            }
            Term::bitstring(bytes.to_vec(), bits)
        }
        tag::NEW_PID | tag::PID => {
            r.pos = at;
            Term::Pid(Box::new(decode_pid_at(r)?))
        }
        tag::NEW_PORT | tag::PORT | tag::V4_PORT => {
            let node = atom_from(r)?;
            let id = if t == tag::V4_PORT {
                r.u64()?
            } else {
                r.u32()? as u64
            };
            let creation = if t == tag::PORT {
                r.u8()? as u32
            } else {
                r.u32()?
            };
            Term::Port(Box::new(Port::new(node, id, creation)))
        }
        tag::NEWER_REFERENCE | tag::NEW_REFERENCE | tag::REFERENCE => {
            Term::Reference(Box::new(reference(r, t)?))
        }
        tag::EXPORT => {
            let module = atom_from(r)?;
            let function = atom_from(r)?;
            let ap = r.pos;
            if r.u8()? != tag::SMALL_INTEGER {
                return Err(Error::invalid(ap, "export arity must be a small integer"));
            }
            let arity = r.u8()?;
            Term::Export(Box::new(Export {
                module,
                function,
                arity,
            }))
        }
        tag::COMPRESSED => return Err(Error::invalid(at, "compressed term nested inside a term")),
        _ => return Err(Error::UnknownTag { tag: t, at }),
    })
}
