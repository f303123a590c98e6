//! A small, self-contained binary serde format for table files.
//!
//! Not self-describing (like bincode): the reader must know the types. Integers and
//! floats are little-endian and fixed-width; `bool` one byte (0/1); `char` a `u32`;
//! strings, byte strings, sequences and maps a `u64` length then their contents;
//! `Option` a 0/1 byte then the value; enum variants a `u32` index then the fields;
//! structs and tuples their fields in order; unit types nothing.
//!
//! Decoding never panics and never trusts a length: every read is bounds-checked against
//! the bytes left, preallocation of a sequence is capped by the bytes left (each element
//! of a non-zero-sized type takes at least one byte), and nesting deeper than
//! [`MAX_DEPTH`] is an error rather than a stack overflow. Time is linear in the input.
//! Orbit's ETF serde (orbit-term) is independent of this.
//!
//! Why not ETF (issue 18 item 8, open): switching the table-file body to orbit-term's
//! `term_to_binary` would let a BEAM node read a dump with `binary_to_term`; it changes the
//! file format (a version bump) and is not done yet. This codec is kept, hardened, and
//! covered by `tests/ets_file_hostile.rs`.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

/// An encoding or decoding error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

impl ser::Error for CodecError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        CodecError(msg.to_string())
    }
}

impl de::Error for CodecError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        CodecError(msg.to_string())
    }
}

type R<T> = std::result::Result<T, CodecError>;

/// Appends the encoding of `v` to `out`.
pub fn encode_into<T: Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) -> R<()> {
    v.serialize(&mut Encoder { out })
}

/// Encodes `v`.
pub fn encode<T: Serialize + ?Sized>(v: &T) -> R<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(v, &mut out)?;
    Ok(out)
}

/// Decodes a `T` that must use all of `bytes`.
pub fn decode<T: de::DeserializeOwned>(bytes: &[u8]) -> R<T> {
    let mut d = Decoder {
        buf: bytes,
        pos: 0,
        depth: 0,
    };
    let v = T::deserialize(&mut d)?;
    if d.pos != bytes.len() {
        return Err(CodecError(format!(
            "{} trailing bytes after the value",
            bytes.len() - d.pos
        )));
    }
    Ok(v)
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

/// A sequence or map being written; patches its length when it was not known upfront.
#[doc(hidden)]
pub struct Compound<'a, 'b> {
    enc: &'b mut Encoder<'a>,
    len_at: Option<usize>,
    count: u64,
}

impl Compound<'_, '_> {
    fn finish(self) -> R<()> {
        if let Some(at) = self.len_at {
            self.enc.out[at..at + 8].copy_from_slice(&self.count.to_le_bytes());
        }
        Ok(())
    }
}

impl<'a> Encoder<'a> {
    fn len(&mut self, n: usize) {
        self.out.extend_from_slice(&(n as u64).to_le_bytes());
    }
    fn compound<'b>(&'b mut self, len: Option<usize>) -> Compound<'a, 'b> {
        let len_at = match len {
            Some(n) => {
                self.len(n);
                None
            }
            None => {
                let at = self.out.len();
                self.len(0);
                Some(at)
            }
        };
        Compound {
            enc: self,
            len_at,
            count: 0,
        }
    }
    fn fields<'b>(&'b mut self) -> Compound<'a, 'b> {
        Compound {
            enc: self,
            len_at: None,
            count: 0,
        }
    }
}

macro_rules! ser_le {
    ($($f:ident $t:ty),*) => {$(
        fn $f(self, v: $t) -> R<()> {
            self.out.extend_from_slice(&v.to_le_bytes());
            Ok(())
        }
    )*};
}

impl<'a, 'b> ser::Serializer for &'b mut Encoder<'a> {
    type Ok = ();
    type Error = CodecError;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    ser_le!(serialize_i8 i8, serialize_i16 i16, serialize_i32 i32, serialize_i64 i64,
        serialize_i128 i128, serialize_u8 u8, serialize_u16 u16, serialize_u32 u32,
        serialize_u64 u64, serialize_u128 u128, serialize_f32 f32, serialize_f64 f64);

    fn serialize_bool(self, v: bool) -> R<()> {
        self.out.push(v as u8);
        Ok(())
    }
    fn serialize_char(self, v: char) -> R<()> {
        self.serialize_u32(v as u32)
    }
    fn serialize_str(self, v: &str) -> R<()> {
        self.serialize_bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> R<()> {
        self.len(v.len());
        self.out.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> R<()> {
        self.out.push(0);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R<()> {
        self.out.push(1);
        v.serialize(self)
    }
    fn serialize_unit(self) -> R<()> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> R<()> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, idx: u32, _: &'static str) -> R<()> {
        self.serialize_u32(idx)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R<()> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        idx: u32,
        _: &'static str,
        v: &T,
    ) -> R<()> {
        self.out.extend_from_slice(&idx.to_le_bytes());
        v.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> R<Self::SerializeSeq> {
        Ok(self.compound(len))
    }
    fn serialize_tuple(self, _: usize) -> R<Self::SerializeTuple> {
        Ok(self.fields())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> R<Self::SerializeTupleStruct> {
        Ok(self.fields())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        idx: u32,
        _: &'static str,
        _: usize,
    ) -> R<Self::SerializeTupleVariant> {
        self.out.extend_from_slice(&idx.to_le_bytes());
        Ok(self.fields())
    }
    fn serialize_map(self, len: Option<usize>) -> R<Self::SerializeMap> {
        Ok(self.compound(len))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> R<Self::SerializeStruct> {
        Ok(self.fields())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        idx: u32,
        _: &'static str,
        _: usize,
    ) -> R<Self::SerializeStructVariant> {
        self.out.extend_from_slice(&idx.to_le_bytes());
        Ok(self.fields())
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = CodecError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> R<()> {
        self.count += 1;
        v.serialize(&mut *self.enc)
    }
    fn end(self) -> R<()> {
        self.finish()
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = CodecError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> R<()> {
        v.serialize(&mut *self.enc)
    }
    fn end(self) -> R<()> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = CodecError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> R<()> {
        v.serialize(&mut *self.enc)
    }
    fn end(self) -> R<()> {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = CodecError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> R<()> {
        v.serialize(&mut *self.enc)
    }
    fn end(self) -> R<()> {
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = CodecError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> R<()> {
        self.count += 1;
        k.serialize(&mut *self.enc)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> R<()> {
        v.serialize(&mut *self.enc)
    }
    fn end(self) -> R<()> {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = CodecError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, v: &T) -> R<()> {
        v.serialize(&mut *self.enc)
    }
    fn end(self) -> R<()> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = CodecError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, v: &T) -> R<()> {
        v.serialize(&mut *self.enc)
    }
    fn end(self) -> R<()> {
        Ok(())
    }
}

// ---- decoding ----------------------------------------------------------------------

/// The deepest nesting of sequences, maps, tuples, structs, enums, options and newtypes
/// that [`decode`] accepts. Each level costs a few serde stack frames; 128 levels stay well
/// inside a 2 MiB thread stack in a debug build (tested in `tests/ets_file_hostile.rs`).
pub const MAX_DEPTH: u32 = 128;

struct Decoder<'de> {
    buf: &'de [u8],
    pos: usize,
    depth: u32,
}

impl<'de> Decoder<'de> {
    fn take(&mut self, n: usize) -> R<&'de [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| CodecError(format!("unexpected end of data (needed {n} more bytes)")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    /// Runs `f` one nesting level deeper; fails instead of recursing past [`MAX_DEPTH`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        if self.depth >= MAX_DEPTH {
            return Err(CodecError(format!(
                "nesting deeper than {MAX_DEPTH} levels: refused"
            )));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    /// A length: must fit in the remaining data (with slack for zero-sized elements).
    fn len(&mut self) -> R<usize> {
        let n = u64::from_le_bytes(self.arr()?);
        let rest = (self.buf.len() - self.pos) as u64;
        if n > rest + 65536 {
            return Err(CodecError(format!(
                "length {n} exceeds the {rest} bytes left"
            )));
        }
        Ok(n as usize)
    }
}

macro_rules! de_le {
    ($($f:ident $t:ty, $v:ident);*) => {$(
        fn $f<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
            visitor.$v(<$t>::from_le_bytes(self.arr()?))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = CodecError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> R<V::Value> {
        Err(CodecError(
            "this format is not self-describing: the type must be known".into(),
        ))
    }

    de_le!(deserialize_i8 i8, visit_i8; deserialize_i16 i16, visit_i16;
        deserialize_i32 i32, visit_i32; deserialize_i64 i64, visit_i64;
        deserialize_i128 i128, visit_i128; deserialize_u8 u8, visit_u8;
        deserialize_u16 u16, visit_u16; deserialize_u32 u32, visit_u32;
        deserialize_u64 u64, visit_u64; deserialize_u128 u128, visit_u128;
        deserialize_f32 f32, visit_f32; deserialize_f64 f64, visit_f64);

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        match self.take(1)?[0] {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(CodecError(format!("invalid bool byte {b}"))),
        }
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        let c = self.u32()?;
        visitor
            .visit_char(char::from_u32(c).ok_or_else(|| CodecError(format!("invalid char {c}")))?)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        let n = self.len()?;
        let b = self.take(n)?;
        visitor.visit_borrowed_str(
            std::str::from_utf8(b).map_err(|e| CodecError(format!("invalid UTF-8: {e}")))?,
        )
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        self.deserialize_str(visitor)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        let n = self.len()?;
        visitor.visit_borrowed_bytes(self.take(n)?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        self.deserialize_bytes(visitor)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        match self.take(1)?[0] {
            0 => visitor.visit_none(),
            1 => self.nested(|d| visitor.visit_some(d)),
            b => Err(CodecError(format!("invalid option tag {b}"))),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> R<V::Value> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> R<V::Value> {
        self.nested(|d| visitor.visit_newtype_struct(d))
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        let n = self.len()?;
        self.nested(|d| visitor.visit_seq(Elems { d, left: n }))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> R<V::Value> {
        self.nested(|d| visitor.visit_seq(Elems { d, left: len }))
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> R<V::Value> {
        self.nested(|d| visitor.visit_seq(Elems { d, left: len }))
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        let n = self.len()?;
        self.nested(|d| visitor.visit_map(Elems { d, left: n }))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        self.nested(|d| {
            visitor.visit_seq(Elems {
                d,
                left: fields.len(),
            })
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        self.nested(|d| visitor.visit_enum(d))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> R<V::Value> {
        visitor.visit_u32(self.u32()?)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> R<V::Value> {
        Err(CodecError(
            "this format is not self-describing: cannot skip unknown data".into(),
        ))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

struct Elems<'a, 'de> {
    d: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elems<'_, 'de> {
    type Error = CodecError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> R<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.d).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        // Every element of a non-zero-sized type encodes to at least one byte, so no more
        // than the bytes left can be real: preallocation never exceeds the input's size
        // (times the element's size).
        Some(self.left.min(self.d.buf.len() - self.d.pos).min(4096))
    }
}

impl<'de> de::MapAccess<'de> for Elems<'_, 'de> {
    type Error = CodecError;
    fn next_key_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> R<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.d).map(Some)
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> R<T::Value> {
        seed.deserialize(&mut *self.d)
    }
    fn size_hint(&self) -> Option<usize> {
        // Every element of a non-zero-sized type encodes to at least one byte, so no more
        // than the bytes left can be real: preallocation never exceeds the input's size
        // (times the element's size).
        Some(self.left.min(self.d.buf.len() - self.d.pos).min(4096))
    }
}

impl<'de> de::EnumAccess<'de> for &mut Decoder<'de> {
    type Error = CodecError;
    type Variant = Self;
    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> R<(T::Value, Self)> {
        let idx = self.u32()?;
        let v = seed.deserialize(idx.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Decoder<'de> {
    type Error = CodecError;
    fn unit_variant(self) -> R<()> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> R<T::Value> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> R<V::Value> {
        self.nested(|d| visitor.visit_seq(Elems { d, left: len }))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> R<V::Value> {
        self.nested(|d| {
            visitor.visit_seq(Elems {
                d,
                left: fields.len(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum E {
        A,
        B(u8),
        C { x: i32, y: String },
        D(i64, Option<bool>),
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct S {
        a: u64,
        b: Vec<E>,
        c: BTreeMap<String, (char, f64)>,
        d: (),
        e: Option<Box<S>>,
    }

    #[test]
    fn roundtrip() {
        let mut c = BTreeMap::new();
        c.insert("k".to_string(), ('é', 1.5));
        let s = S {
            a: u64::MAX,
            b: vec![
                E::A,
                E::B(7),
                E::C {
                    x: -3,
                    y: "hi".into(),
                },
                E::D(9, Some(true)),
            ],
            c,
            d: (),
            e: Some(Box::new(S {
                a: 0,
                b: vec![],
                c: BTreeMap::new(),
                d: (),
                e: None,
            })),
        };
        let b = encode(&s).unwrap();
        assert_eq!(decode::<S>(&b).unwrap(), s);
        for n in 0..b.len() {
            assert!(decode::<S>(&b[..n]).is_err());
        }
    }
}
