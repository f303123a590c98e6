//! Encoding a [`Term`] into ETF bytes.
//!
//! Writes the same tags `term_to_binary` picks (smallest integer form, `SMALL_ATOM_UTF8`,
//! `STRING_EXT` for short lists of bytes, `NEW_PID`, `NEWER_REFERENCE`, `V4_PORT` only
//! for 64-bit port ids), appending to a caller's `Vec` so a buffer can be reused.
//! The low-level writers are shared with the serde serializer.

use num_bigint::{BigInt, Sign};

use crate::error::{Error, Result};
use crate::ids::{Fun, Pid, Reference};
use crate::tag;
use crate::term::Term;

impl Term {
    /// The external form of this term: `131` then the term.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Appends the external form (`131` then the term) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(tag::VERSION);
        write_term(out, self);
    }

    /// Appends the term without the version byte (as carried in distribution messages).
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        write_term(out, self);
    }

    /// The external form compressed with zlib at `level` (0-9), as
    /// `term_to_binary(T, [{compressed, Level}])` produces: `131, 80, Size:32, zlib`.
    pub fn encode_compressed(&self, level: u32) -> Result<Vec<u8>> {
        let mut body = Vec::with_capacity(64);
        write_term(&mut body, self);
        compress(&body, level)
    }
}

/// Wraps an uncompressed body (no version byte) as a compressed external term.
pub(crate) fn compress(body: &[u8], level: u32) -> Result<Vec<u8>> {
    use std::io::Write;
    let size = u32::try_from(body.len())
        .map_err(|_| Error::Unrepresentable("term over 4 GiB cannot be compressed".into()))?;
    let mut out = Vec::with_capacity(body.len() / 2 + 16);
    out.push(tag::VERSION);
    out.push(tag::COMPRESSED);
    out.extend_from_slice(&size.to_be_bytes());
    let mut z = flate2::write::ZlibEncoder::new(out, flate2::Compression::new(level.min(9)));
    z.write_all(body)
        .map_err(|e| Error::Compression(e.to_string()))?;
    z.finish().map_err(|e| Error::Compression(e.to_string()))
}

#[inline]
pub(crate) fn write_atom(out: &mut Vec<u8>, text: &str) {
    let b = text.as_bytes();
    if b.len() <= 255 {
        out.reserve(2 + b.len());
        out.extend_from_slice(&[tag::SMALL_ATOM_UTF8, b.len() as u8]);
    } else {
        out.push(tag::ATOM_UTF8);
        out.extend_from_slice(&(b.len().min(u16::MAX as usize) as u16).to_be_bytes());
    }
    out.extend_from_slice(&b[..b.len().min(u16::MAX as usize)]);
}

#[inline]
pub(crate) fn write_i64(out: &mut Vec<u8>, i: i64) {
    if (0..=255).contains(&i) {
        out.extend_from_slice(&[tag::SMALL_INTEGER, i as u8]);
    } else if let Ok(v) = i32::try_from(i) {
        let b = v.to_be_bytes();
        out.extend_from_slice(&[tag::INTEGER, b[0], b[1], b[2], b[3]]);
    } else {
        write_magnitude(out, i < 0, i.unsigned_abs() as u128);
    }
}

#[inline]
pub(crate) fn write_u64(out: &mut Vec<u8>, u: u64) {
    match i64::try_from(u) {
        Ok(i) => write_i64(out, i),
        Err(_) => write_magnitude(out, false, u as u128),
    }
}

pub(crate) fn write_i128(out: &mut Vec<u8>, i: i128) {
    match i64::try_from(i) {
        Ok(v) => write_i64(out, v),
        Err(_) => write_magnitude(out, i < 0, i.unsigned_abs()),
    }
}

pub(crate) fn write_u128(out: &mut Vec<u8>, u: u128) {
    match i64::try_from(u) {
        Ok(v) => write_i64(out, v),
        Err(_) => write_magnitude(out, false, u),
    }
}

/// `SMALL_BIG` of a magnitude that needs at most 16 bytes.
fn write_magnitude(out: &mut Vec<u8>, negative: bool, m: u128) {
    let n = (16 - m.leading_zeros() as usize / 8).max(1);
    out.push(tag::SMALL_BIG);
    out.push(n as u8);
    out.push(negative as u8);
    out.extend_from_slice(&m.to_le_bytes()[..n]);
}

pub(crate) fn write_big(out: &mut Vec<u8>, b: &BigInt) {
    let (sign, digits) = b.to_bytes_le();
    if digits.len() <= 255 {
        out.push(tag::SMALL_BIG);
        out.push(digits.len() as u8);
    } else {
        out.push(tag::LARGE_BIG);
        out.extend_from_slice(&(digits.len() as u32).to_be_bytes());
    }
    out.push((sign == Sign::Minus) as u8);
    out.extend_from_slice(&digits);
}

#[inline]
pub(crate) fn write_f64(out: &mut Vec<u8>, f: f64) {
    let mut ext = [tag::NEW_FLOAT; 9];
    ext[1..].copy_from_slice(&f.to_bits().to_be_bytes());
    out.extend_from_slice(&ext);
}

#[inline]
pub(crate) fn write_binary(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(5 + b.len());
    let n = (b.len() as u32).to_be_bytes();
    out.extend_from_slice(&[tag::BINARY, n[0], n[1], n[2], n[3]]);
    out.extend_from_slice(b);
}

#[inline]
pub(crate) fn write_tuple_header(out: &mut Vec<u8>, n: usize) {
    if n <= 255 {
        out.extend_from_slice(&[tag::SMALL_TUPLE, n as u8]);
    } else {
        out.push(tag::LARGE_TUPLE);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

pub(crate) fn write_pid(out: &mut Vec<u8>, p: &Pid) {
    out.push(tag::NEW_PID);
    p.node.write_ext(out);
    let mut nums = [0u8; 12];
    nums[..4].copy_from_slice(&p.id.to_be_bytes());
    nums[4..8].copy_from_slice(&p.serial.to_be_bytes());
    nums[8..].copy_from_slice(&p.creation.to_be_bytes());
    out.extend_from_slice(&nums);
}

pub(crate) fn write_reference(out: &mut Vec<u8>, r: &Reference) {
    out.push(tag::NEWER_REFERENCE);
    out.extend_from_slice(&(r.ids().len() as u16).to_be_bytes());
    r.node.write_ext(out);
    out.extend_from_slice(&r.creation.to_be_bytes());
    for w in r.ids() {
        out.extend_from_slice(&w.to_be_bytes());
    }
}

/// A list that `term_to_binary` would send as `STRING_EXT`: 1 to 65535 small integers.
fn byte_list(items: &[Term]) -> bool {
    !items.is_empty()
        && items.len() <= u16::MAX as usize
        && items
            .iter()
            .all(|t| matches!(t, Term::Int(i) if (0..=255).contains(i)))
}

fn write_fun(out: &mut Vec<u8>, f: &Fun) {
    let start = out.len();
    out.push(tag::NEW_FUN);
    out.extend_from_slice(&[0; 4]);
    out.push(f.arity);
    out.extend_from_slice(&f.uniq);
    out.extend_from_slice(&f.index.to_be_bytes());
    out.extend_from_slice(&(f.free_vars.len() as u32).to_be_bytes());
    write_atom(out, f.module.as_str());
    write_i64(out, f.old_index);
    write_i64(out, f.old_uniq);
    write_pid(out, &f.pid);
    for v in &f.free_vars {
        write_term(out, v);
    }
    let size = (out.len() - start - 1) as u32;
    out[start + 1..start + 5].copy_from_slice(&size.to_be_bytes());
}

/// Appends one term (no version byte).
pub(crate) fn write_term(out: &mut Vec<u8>, t: &Term) {
    match t {
        Term::Int(i) => write_i64(out, *i),
        Term::BigInt(b) => write_big(out, b),
        Term::Float(f) => write_f64(out, *f),
        Term::Atom(a) => a.write_ext(out),
        Term::Binary(b) => write_binary(out, b),
        Term::BitBinary(bb) => {
            out.push(tag::BIT_BINARY);
            out.extend_from_slice(&(bb.bytes.len() as u32).to_be_bytes());
            out.push(bb.bits);
            out.extend_from_slice(&bb.bytes);
        }
        Term::Tuple(items) => {
            write_tuple_header(out, items.len());
            for x in items {
                write_term(out, x);
            }
        }
        Term::List(items) if items.is_empty() => out.push(tag::NIL),
        Term::List(items) if byte_list(items) => {
            out.push(tag::STRING);
            out.extend_from_slice(&(items.len() as u16).to_be_bytes());
            out.extend(items.iter().map(|t| match t {
                Term::Int(i) => *i as u8,
                _ => 0, // byte_list checked every element
            }));
        }
        Term::List(items) => {
            out.push(tag::LIST);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for x in items {
                write_term(out, x);
            }
            out.push(tag::NIL);
        }
        Term::ImproperList(il) => {
            if il.elements.is_empty() {
                return write_term(out, &il.tail);
            }
            out.push(tag::LIST);
            out.extend_from_slice(&(il.elements.len() as u32).to_be_bytes());
            for x in &il.elements {
                write_term(out, x);
            }
            write_term(out, &il.tail);
        }
        Term::Map(entries) => {
            out.push(tag::MAP);
            out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for (k, v) in entries {
                write_term(out, k);
                write_term(out, v);
            }
        }
        Term::Pid(p) => write_pid(out, p),
        Term::Port(p) => {
            if let Ok(id) = u32::try_from(p.id) {
                out.push(tag::NEW_PORT);
                write_atom(out, p.node.as_str());
                out.extend_from_slice(&id.to_be_bytes());
            } else {
                out.push(tag::V4_PORT);
                write_atom(out, p.node.as_str());
                out.extend_from_slice(&p.id.to_be_bytes());
            }
            out.extend_from_slice(&p.creation.to_be_bytes());
        }
        Term::Reference(r) => write_reference(out, r),
        Term::Export(e) => {
            out.push(tag::EXPORT);
            write_atom(out, e.module.as_str());
            write_atom(out, e.function.as_str());
            out.push(tag::SMALL_INTEGER);
            out.push(e.arity);
        }
        Term::Fun(f) => write_fun(out, f),
    }
}
