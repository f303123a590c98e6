//! The serde [`Deserializer`]: ETF bytes straight to Rust values, borrowing strings and
//! bytes from the input where it can. Same limits and the same no-panic guarantee as
//! [`Term::decode`](crate::Term::decode). See the crate docs for the mapping table.

use std::borrow::Cow;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::Deserialize;

use crate::access::{EnumAccess, ExStructAccess, MapAccess, SeqAccess, SeqKind};
use crate::decode::{big_body, decode_term, inflate};
use crate::error::{Error, Result};
use crate::limits::DecodeLimits;
use crate::reader::{grow_stack, Reader};
use crate::special::{ATOM_TOKEN, CHARLIST_TOKEN, RAW_BYTES_TOKEN, RAW_TOKEN, STRUCT_TOKEN};
use crate::tag;
use crate::term::Term;

/// Deserializes a `T` from a whole external term (`131, ...`), borrowing from `bytes`.
/// A compressed term is an error here; use [`from_slice_owned`] for those.
pub fn from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T> {
    from_slice_with(bytes, &DecodeLimits::DEFAULT)
}

/// [`from_slice`] with explicit limits.
pub fn from_slice_with<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    limits: &DecodeLimits,
) -> Result<T> {
    let mut de = Deserializer::new(bytes, *limits);
    let v = de.r.u8()?;
    if v != tag::VERSION {
        return Err(Error::BadVersion(v));
    }
    if de.r.peek()? == tag::COMPRESSED {
        return Err(Error::Invalid {
            at: 1,
            reason: "compressed term: use from_slice_owned, which inflates it first".into(),
        });
    }
    let value = T::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Deserializes an owned `T` from a whole external term, compressed or not.
pub fn from_slice_owned<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let limits = DecodeLimits::DEFAULT;
    if bytes.len() > 1 && bytes[0] == tag::VERSION && bytes[1] == tag::COMPRESSED {
        let mut r = Reader::new(bytes, limits);
        r.pos = 2;
        let inflated = inflate(&mut r)?;
        if r.remaining() != 0 {
            return Err(Error::TrailingBytes {
                at: r.pos,
                remaining: r.remaining(),
            });
        }
        let mut de = Deserializer::new(&inflated, limits);
        let value = T::deserialize(&mut de)?;
        de.end()?;
        return Ok(value);
    }
    from_slice_with(bytes, &limits)
}

/// Converts a [`Term`] into a `T` (through its encoding).
pub fn from_term<T: DeserializeOwned>(term: &Term) -> Result<T> {
    from_slice_owned(&term.encode())
}

/// Converts any serializable value into a [`Term`] (through its encoding).
pub fn to_term<T: serde::Serialize + ?Sized>(value: &T) -> Result<Term> {
    Term::decode_with(&crate::ser::to_vec(value)?, &DecodeLimits::TRUSTED)
}

/// Reads serde values from a term body (no version byte).
pub struct Deserializer<'de> {
    pub(crate) r: Reader<'de>,
    /// Set by `ExStruct`: the next map skips its `__struct__` entry.
    pub(crate) skip_struct_key: bool,
}

impl<'de> Deserializer<'de> {
    /// A deserializer over a term body (no version byte) with these limits.
    pub fn new(bytes: &'de [u8], limits: DecodeLimits) -> Self {
        Deserializer {
            r: Reader::new(bytes, limits),
            skip_struct_key: false,
        }
    }

    /// How many bytes of the input have been read: after a value is deserialized, where
    /// the next term starts (for readers of several terms back to back).
    pub fn position(&self) -> usize {
        self.r.pos
    }

    /// Fails unless all input was consumed.
    pub fn end(&self) -> Result<()> {
        if self.r.remaining() != 0 {
            return Err(Error::TrailingBytes {
                at: self.r.pos,
                remaining: self.r.remaining(),
            });
        }
        Ok(())
    }

    fn mismatch(&self, expected: &'static str) -> Error {
        let found = match self.r.peek() {
            Ok(t) => format!("{} (tag {t}) at offset {}", tag::describe(t), self.r.pos),
            Err(_) => "end of input".into(),
        };
        Error::TypeMismatch { expected, found }
    }

    /// Skips one term, validating it.
    pub(crate) fn skip(&mut self) -> Result<()> {
        decode_term(&mut self.r).map(drop)
    }

    /// Reads any integer that fits in `i128` or, when positive, in `u128`.
    fn integer(&mut self) -> Result<Int128> {
        let at = self.r.pos;
        match self.r.peek()? {
            tag::SMALL_INTEGER => {
                self.r.pos += 1;
                Ok(Int128::Signed(self.r.u8()? as i128))
            }
            tag::INTEGER => {
                self.r.pos += 1;
                Ok(Int128::Signed(self.r.u32()? as i32 as i128))
            }
            tag::SMALL_BIG | tag::LARGE_BIG => {
                let t = self.r.u8()?;
                let n = if t == tag::SMALL_BIG {
                    self.r.u8()? as usize
                } else {
                    self.r.u32()? as usize
                };
                match big_body(&mut self.r, n)? {
                    Term::Int(i) => Ok(Int128::Signed(i as i128)),
                    Term::BigInt(b) => {
                        if let Ok(i) = i128::try_from(&*b) {
                            Ok(Int128::Signed(i))
                        } else {
                            u128::try_from(&*b)
                                .map(Int128::Unsigned)
                                .map_err(|_| Error::invalid(at, "integer does not fit in 128 bits"))
                        }
                    }
                    _ => Err(Error::invalid(at, "malformed big integer")),
                }
            }
            _ => Err(self.mismatch("an integer")),
        }
    }

    /// Reads an atom, if the next term is one.
    fn atom(&mut self) -> Result<Cow<'de, str>> {
        let t = self.r.u8()?;
        self.r.atom_body(t)
    }

    fn peek_is_atom(&self) -> bool {
        matches!(
            self.r.peek(),
            Ok(tag::ATOM_UTF8 | tag::SMALL_ATOM_UTF8 | tag::ATOM | tag::SMALL_ATOM)
        )
    }

    /// Whether the next term is the atom `name`, without consuming it.
    pub(crate) fn peek_atom_is(&self, name: &str) -> bool {
        let rest = &self.r.buf[self.r.pos..];
        let n = name.len();
        match rest {
            [tag::SMALL_ATOM_UTF8 | tag::SMALL_ATOM, len, tail @ ..] => {
                *len as usize == n && tail.get(..n) == Some(name.as_bytes())
            }
            [tag::ATOM_UTF8 | tag::ATOM, a, b, tail @ ..] => {
                u16::from_be_bytes([*a, *b]) as usize == n && tail.get(..n) == Some(name.as_bytes())
            }
            _ => false,
        }
    }

    fn binary(&mut self) -> Result<&'de [u8]> {
        if self.r.peek()? != tag::BINARY {
            return Err(self.mismatch("a binary"));
        }
        self.r.pos += 1;
        let n = self.r.u32()? as usize;
        self.r.bytes(n)
    }

    fn visit_text<V: Visitor<'de>>(&mut self, v: V) -> Result<V::Value> {
        match self.r.peek()? {
            tag::BINARY => {
                let at = self.r.pos;
                let b = self.binary()?;
                let s = std::str::from_utf8(b)
                    .map_err(|_| Error::invalid(at, "binary is not valid UTF-8"))?;
                v.visit_borrowed_str(s)
            }
            _ if self.peek_is_atom() => match self.atom()? {
                Cow::Borrowed(s) => v.visit_borrowed_str(s),
                Cow::Owned(s) => v.visit_string(s),
            },
            _ => Err(self.mismatch("a string (binary or atom)")),
        }
    }

    fn charlist(&mut self) -> Result<String> {
        let at = self.r.pos;
        match self.r.u8()? {
            tag::NIL => Ok(String::new()),
            tag::STRING => {
                let n = self.r.u16()? as usize;
                Ok(self.r.bytes(n)?.iter().map(|&b| b as char).collect())
            }
            tag::LIST => {
                let n = self.r.u32()? as usize;
                self.r.check_len("list", n, 2)?;
                let mut s = String::with_capacity(n);
                for _ in 0..n {
                    let i = self.integer()?;
                    let c = u32::try_from(i)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| {
                            Error::invalid(at, "charlist element is not a code point")
                        })?;
                    s.push(c);
                }
                if self.r.u8()? != tag::NIL {
                    return Err(Error::invalid(at, "improper charlist"));
                }
                Ok(s)
            }
            _ => {
                self.r.pos = at;
                Err(self.mismatch("a charlist"))
            }
        }
    }

    /// Starts a sequence (list, string or tuple) and returns its access.
    fn seq_access(&mut self, expected: &'static str) -> Result<SeqAccess<'_, 'de>> {
        let kind;
        let len = match self.r.u8()? {
            tag::NIL => {
                kind = SeqKind::Nil;
                0
            }
            tag::STRING => {
                let n = self.r.u16()? as usize;
                kind = SeqKind::Bytes(self.r.bytes(n)?);
                n
            }
            tag::LIST => {
                let n = self.r.u32()? as usize;
                self.r.check_len("list", n, 1)?;
                kind = SeqKind::List;
                n
            }
            tag::SMALL_TUPLE => {
                kind = SeqKind::Tuple;
                self.r.u8()? as usize
            }
            tag::LARGE_TUPLE => {
                let n = self.r.u32()? as usize;
                self.r.check_len("tuple", n, 1)?;
                kind = SeqKind::Tuple;
                n
            }
            _ => {
                self.r.pos -= 1;
                return Err(self.mismatch(expected));
            }
        };
        self.r.enter()?;
        Ok(SeqAccess {
            de: self,
            left: len,
            kind,
        })
    }

    fn map_access(&mut self) -> Result<MapAccess<'_, 'de>> {
        if self.r.peek()? != tag::MAP {
            return Err(self.mismatch("a map"));
        }
        self.r.pos += 1;
        let n = self.r.u32()? as usize;
        self.r.check_len("map", n, 2)?;
        self.r.enter()?;
        let skip_struct = std::mem::take(&mut self.skip_struct_key);
        Ok(MapAccess {
            de: self,
            left: n,
            skip_struct,
        })
    }

    fn visit_seq<V: Visitor<'de>>(&mut self, v: V, expected: &'static str) -> Result<V::Value> {
        grow_stack(|| {
            let mut access = self.seq_access(expected)?;
            let value = v.visit_seq(&mut access)?;
            access.finish()?;
            Ok(value)
        })
    }

    pub(crate) fn visit_map<V: Visitor<'de>>(&mut self, v: V) -> Result<V::Value> {
        grow_stack(|| {
            let mut access = self.map_access()?;
            let value = v.visit_map(&mut access)?;
            access.finish()?;
            Ok(value)
        })
    }

    /// Finds the `__struct__` module of the map ahead without consuming anything.
    fn struct_module(&mut self) -> Result<String> {
        let start = self.r.pos;
        let mut access = self.map_access()?;
        let mut found = None;
        while access.left > 0 {
            access.left -= 1;
            if access.de.peek_atom_is("__struct__") {
                access.de.skip()?;
                found = Some(access.de.atom()?.into_owned());
                break;
            }
            access.de.skip()?;
            access.de.skip()?;
        }
        self.r.leave();
        self.r.pos = start;
        found.ok_or_else(|| Error::TypeMismatch {
            expected: "an Elixir struct (a map with __struct__)",
            found: "a map without __struct__".into(),
        })
    }
}

/// An integer read for serde: `i128` covers every signed target, `u128` the positive
/// values of `u128` above `i128::MAX`.
enum Int128 {
    Signed(i128),
    Unsigned(u128),
}

impl Int128 {
    fn as_f64(&self) -> f64 {
        match *self {
            Int128::Signed(i) => i as f64,
            Int128::Unsigned(u) => u as f64,
        }
    }
}

impl TryFrom<Int128> for u32 {
    type Error = std::num::TryFromIntError;
    fn try_from(i: Int128) -> std::result::Result<u32, Self::Error> {
        match i {
            Int128::Signed(i) => u32::try_from(i),
            Int128::Unsigned(u) => u32::try_from(u),
        }
    }
}

macro_rules! int_methods {
    ($($method:ident),*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
            // The two fixed-size encodings first, without the 128-bit detour.
            let pos = self.r.pos;
            match self.r.buf.get(pos) {
                Some(&tag::INTEGER) => {
                    if let Some(b) = self.r.buf.get(pos + 1..).and_then(<[u8]>::first_chunk) {
                        self.r.pos = pos + 5;
                        return v.visit_i64(i64::from(i32::from_be_bytes(*b)));
                    }
                }
                Some(&tag::SMALL_INTEGER) => {
                    if let Some(&b) = self.r.buf.get(pos + 1) {
                        self.r.pos = pos + 2;
                        return v.visit_i64(i64::from(b));
                    }
                }
                _ => {}
            }
            self.any_integer(v)
        }
    )*};
}

impl<'de> Deserializer<'de> {
    /// An integer in any encoding (bignums, a truncated input, a wrong tag), out of the
    /// integer methods' inlined fast path.
    #[inline(never)]
    fn any_integer<V: Visitor<'de>>(&mut self, v: V) -> Result<V::Value> {
        match self.integer()? {
            Int128::Signed(i) => {
                if let Ok(x) = i64::try_from(i) {
                    v.visit_i64(x)
                } else if let Ok(x) = u64::try_from(i) {
                    v.visit_u64(x)
                } else {
                    v.visit_i128(i)
                }
            }
            Int128::Unsigned(u) => v.visit_u128(u),
        }
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        match self.r.peek()? {
            tag::SMALL_INTEGER | tag::INTEGER | tag::SMALL_BIG | tag::LARGE_BIG => {
                match self.integer()? {
                    Int128::Signed(i) => {
                        if let Ok(x) = u64::try_from(i) {
                            v.visit_u64(x)
                        } else if let Ok(x) = i64::try_from(i) {
                            v.visit_i64(x)
                        } else {
                            v.visit_i128(i)
                        }
                    }
                    Int128::Unsigned(u) => v.visit_u128(u),
                }
            }
            tag::NEW_FLOAT | tag::FLOAT => self.deserialize_f64(v),
            tag::BINARY => {
                let b = self.binary()?;
                match std::str::from_utf8(b) {
                    Ok(s) => v.visit_borrowed_str(s),
                    Err(_) => v.visit_borrowed_bytes(b),
                }
            }
            tag::NIL | tag::STRING | tag::LIST | tag::SMALL_TUPLE | tag::LARGE_TUPLE => {
                self.visit_seq(v, "a sequence")
            }
            tag::MAP => self.visit_map(v),
            _ if self.peek_is_atom() => {
                let a = self.atom()?;
                match &*a {
                    "true" => v.visit_bool(true),
                    "false" => v.visit_bool(false),
                    "nil" => v.visit_unit(),
                    _ => match a {
                        Cow::Borrowed(s) => v.visit_borrowed_str(s),
                        Cow::Owned(s) => v.visit_string(s),
                    },
                }
            }
            t => Err(Error::TypeMismatch {
                expected: "a term with a serde equivalent (use orbit_term::Term for any term)",
                found: format!("{} (tag {t}) at offset {}", tag::describe(t), self.r.pos),
            }),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.peek_atom_is("true") || self.peek_atom_is("false") {
            let a = self.atom()?;
            return v.visit_bool(a == "true");
        }
        Err(self.mismatch("a boolean (true or false)"))
    }

    int_methods!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128
    );

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.deserialize_f64(v)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        match self.r.peek()? {
            tag::NEW_FLOAT => {
                let at = self.r.pos;
                self.r.pos += 1;
                let f = f64::from_bits(self.r.u64()?);
                if !f.is_finite() {
                    return Err(Error::invalid(at, "non-finite float"));
                }
                v.visit_f64(f)
            }
            tag::FLOAT => match decode_term(&mut self.r)? {
                Term::Float(f) => v.visit_f64(f),
                _ => Err(self.mismatch("a float")),
            },
            tag::SMALL_INTEGER | tag::INTEGER | tag::SMALL_BIG | tag::LARGE_BIG => {
                v.visit_f64(self.integer()?.as_f64())
            }
            _ => Err(self.mismatch("a float")),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.r.peek()? == tag::BINARY {
            return self.visit_text(v);
        }
        let at = self.r.pos;
        let i = self.integer()?;
        let c = u32::try_from(i)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| Error::invalid(at, "integer is not a Unicode code point"))?;
        v.visit_char(c)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.visit_text(v)
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.visit_text(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        match self.r.peek()? {
            tag::BINARY => v.visit_borrowed_bytes(self.binary()?),
            tag::STRING => {
                self.r.pos += 1;
                let n = self.r.u16()? as usize;
                v.visit_borrowed_bytes(self.r.bytes(n)?)
            }
            tag::NIL => {
                self.r.pos += 1;
                v.visit_borrowed_bytes(&[])
            }
            _ => Err(self.mismatch("a binary")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.deserialize_bytes(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.peek_atom_is("nil") {
            self.atom()?;
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        if self.peek_atom_is("nil") {
            self.atom()?;
            return v.visit_unit();
        }
        if self.r.buf.get(self.r.pos..self.r.pos + 2) == Some(&[tag::SMALL_TUPLE, 0]) {
            self.r.pos += 2;
            return v.visit_unit();
        }
        Err(self.mismatch("nil"))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value> {
        match name {
            ATOM_TOKEN => {
                if !self.peek_is_atom() {
                    return Err(self.mismatch("an atom"));
                }
                match self.atom()? {
                    Cow::Borrowed(s) => v.visit_borrowed_str(s),
                    Cow::Owned(s) => v.visit_string(s),
                }
            }
            RAW_TOKEN => {
                let start = self.r.pos;
                self.skip()?;
                v.visit_borrowed_bytes(&self.r.buf[start..self.r.pos])
            }
            RAW_BYTES_TOKEN => {
                // A `RawTerm`: only where the term ends; its bytes are decoded (and
                // checked against the limits) by whoever takes them.
                let start = self.r.pos;
                crate::skip::skip_term(&mut self.r)?;
                v.visit_borrowed_bytes(&self.r.buf[start..self.r.pos])
            }
            CHARLIST_TOKEN => {
                let s = self.charlist()?;
                v.visit_string(s)
            }
            STRUCT_TOKEN => {
                let module = self.struct_module()?;
                v.visit_seq(ExStructAccess {
                    de: self,
                    module: Some(module),
                    done: false,
                })
            }
            _ => v.visit_newtype_struct(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.visit_seq(v, "a list")
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value> {
        let mut access = self.seq_access("a tuple")?;
        if access.left != len {
            let found = access.left;
            return Err(Error::TypeMismatch {
                expected: "a tuple of matching size",
                found: format!("{found} elements where {len} were expected"),
            });
        }
        let value = v.visit_seq(&mut access)?;
        access.finish()?;
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value> {
        self.deserialize_tuple(len, v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.visit_map(v)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value> {
        self.visit_map(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value> {
        if self.peek_is_atom() {
            return v.visit_enum(EnumAccess {
                de: self,
                rest: None,
            });
        }
        let n = match self.r.peek()? {
            tag::SMALL_TUPLE => {
                self.r.pos += 1;
                self.r.u8()? as usize
            }
            tag::LARGE_TUPLE => {
                self.r.pos += 1;
                self.r.u32()? as usize
            }
            _ => return Err(self.mismatch("an enum (an atom or a tuple {variant, ...})")),
        };
        if n == 0 || !self.peek_is_atom() {
            return Err(self.mismatch("a tuple starting with the variant atom"));
        }
        self.r.enter()?;
        let value = grow_stack(|| {
            v.visit_enum(EnumAccess {
                de: &mut *self,
                rest: Some(n - 1),
            })
        })?;
        self.r.leave();
        Ok(value)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.visit_text(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value> {
        self.skip()?;
        v.visit_unit()
    }
}
