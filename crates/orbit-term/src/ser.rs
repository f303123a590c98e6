//! The serde [`Serializer`]: Rust values straight to ETF bytes, without building a
//! [`Term`](crate::Term) first. See the crate docs for the mapping table.

use serde::ser::{self, Serialize};

use crate::atom::MAX_ATOM_CHARS;
use crate::encode::{
    write_atom, write_binary, write_f64, write_i128, write_i64, write_tuple_header, write_u128,
    write_u64,
};
use crate::error::{Error, Result};
use crate::special::{ATOM_TOKEN, CHARLIST_TOKEN, RAW_TOKEN, STRUCT_TOKEN};
use crate::tag;

/// Serializes `value` as an external term (`131, ...`).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    to_vec_into(value, &mut out)?;
    Ok(out)
}

/// Appends the external term for `value` to `out` (reuse one buffer across messages).
/// On error `out` may hold a partial term.
pub fn to_vec_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    out.push(tag::VERSION);
    value.serialize(&mut Serializer::new(out))
}

/// Serializes `value` compressed with zlib at `level` (0-9).
pub fn to_vec_compressed<T: Serialize + ?Sized>(value: &T, level: u32) -> Result<Vec<u8>> {
    let mut body = Vec::with_capacity(128);
    value.serialize(&mut Serializer::new(&mut body))?;
    crate::encode::compress(&body, level)
}

/// What the next string or bytes stand for, set by this crate's own types through the
/// newtype-struct names in [`special`](crate::special).
#[derive(Default, PartialEq)]
enum Mode {
    #[default]
    Normal,
    Atom,
    Raw,
    Charlist,
    /// The next tuple is an `ExStruct`'s `(module, value)`.
    ExStruct,
    /// The next string is captured as the struct module.
    CaptureModule,
    /// The next struct or map gets `__struct__ => module` first.
    StructMap(String),
}

/// Writes ETF for serde values into a `Vec<u8>`; the body only (no version byte).
pub struct Serializer<'a> {
    out: &'a mut Vec<u8>,
    mode: Mode,
    captured: Option<String>,
}

impl<'a> Serializer<'a> {
    /// A serializer appending a term body (no version byte) to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Serializer {
            out,
            mode: Mode::Normal,
            captured: None,
        }
    }

    /// An `ExStruct` whose value turns out not to be a struct or map is an error, found
    /// before the pending `__struct__` could land on some nested map.
    fn not_a_struct(&mut self) -> Result<()> {
        if let Mode::StructMap(_) = self.mode {
            self.mode = Mode::Normal;
            return Err(Error::Custom(
                "ExStruct value must serialize as a struct or a map".into(),
            ));
        }
        Ok(())
    }

    fn begin_list(&mut self) -> usize {
        let start = self.out.len();
        self.out.push(tag::LIST);
        self.out.extend_from_slice(&[0; 4]);
        start
    }

    fn begin_map(&mut self) -> (usize, u32) {
        let start = self.out.len();
        self.out.push(tag::MAP);
        self.out.extend_from_slice(&[0; 4]);
        if let Mode::StructMap(module) = std::mem::take(&mut self.mode) {
            write_atom(self.out, "__struct__");
            write_atom(self.out, &module);
            return (start, 1);
        }
        (start, 0)
    }
}

#[doc(hidden)]
pub enum Kind {
    List,
    Tuple,
    Map,
    Struct,
    ExStruct,
}

/// State of a compound value being serialized (list, tuple, map, struct).
#[doc(hidden)]
pub struct Compound<'s, 'a> {
    ser: &'s mut Serializer<'a>,
    kind: Kind,
    start: usize,
    count: u32,
}

impl Compound<'_, '_> {
    fn end_compound(self) -> Result<()> {
        match self.kind {
            Kind::List => {
                if self.count == 0 {
                    self.ser.out.truncate(self.start);
                } else {
                    let at = self.start + 1;
                    self.ser.out[at..at + 4].copy_from_slice(&self.count.to_be_bytes());
                }
                self.ser.out.push(tag::NIL);
            }
            Kind::Map | Kind::Struct => {
                let at = self.start + 1;
                self.ser.out[at..at + 4].copy_from_slice(&self.count.to_be_bytes());
            }
            Kind::Tuple | Kind::ExStruct => {}
        }
        Ok(())
    }

    /// One element of a list or tuple (the common case, kept small to be inlined into
    /// the caller's loop), or of an `ExStruct` pair.
    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        if let Kind::ExStruct = self.kind {
            return self.ex_struct_element(value);
        }
        self.count += 1;
        value.serialize(&mut *self.ser)
    }

    /// An element of an `ExStruct`'s `(module, fields)` pair.
    #[cold]
    fn ex_struct_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        if self.count == 0 {
            self.ser.mode = Mode::CaptureModule;
            value.serialize(&mut *self.ser)?;
        } else {
            let module =
                self.ser.captured.take().ok_or_else(|| {
                    Error::Custom("ExStruct module must be serialized first".into())
                })?;
            self.ser.mode = Mode::StructMap(module);
            value.serialize(&mut *self.ser)?;
            if self.ser.mode != Mode::Normal {
                self.ser.mode = Mode::Normal;
                return Err(Error::Custom(
                    "ExStruct value must serialize as a struct or a map".into(),
                ));
            }
        }
        self.count += 1;
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.end_compound()
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.end_compound()
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.end_compound()
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.end_compound()
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.count += 1;
        key.serialize(&mut *self.ser)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<()> {
        self.end_compound()
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.count += 1;
        write_atom(self.ser.out, key);
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<()> {
        self.end_compound()
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<()> {
        self.end_compound()
    }
}

fn check_atom(s: &str) -> Result<()> {
    if !crate::Atom::fits(s) {
        return Err(Error::Unrepresentable(format!(
            "atom of {} characters: the BEAM allows at most {MAX_ATOM_CHARS}",
            s.chars().count()
        )));
    }
    Ok(())
}

fn write_charlist(out: &mut Vec<u8>, s: &str) {
    let n = s.chars().count();
    if n == 0 {
        out.push(tag::NIL);
    } else if n <= u16::MAX as usize && s.chars().all(|c| (c as u32) < 256) {
        out.push(tag::STRING);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend(s.chars().map(|c| c as u32 as u8));
    } else {
        out.push(tag::LIST);
        out.extend_from_slice(&(n as u32).to_be_bytes());
        for c in s.chars() {
            write_i64(out, c as i64);
        }
        out.push(tag::NIL);
    }
}

impl<'s, 'a> ser::Serializer for &'s mut Serializer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'s, 'a>;
    type SerializeTuple = Compound<'s, 'a>;
    type SerializeTupleStruct = Compound<'s, 'a>;
    type SerializeTupleVariant = Compound<'s, 'a>;
    type SerializeMap = Compound<'s, 'a>;
    type SerializeStruct = Compound<'s, 'a>;
    type SerializeStructVariant = Compound<'s, 'a>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        write_atom(self.out, if v { "true" } else { "false" });
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<()> {
        write_i64(self.out, v as i64);
        Ok(())
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<()> {
        write_i64(self.out, v as i64);
        Ok(())
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<()> {
        write_i64(self.out, v as i64);
        Ok(())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<()> {
        write_i64(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<()> {
        write_i128(self.out, v);
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<()> {
        write_i64(self.out, v as i64);
        Ok(())
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<()> {
        write_i64(self.out, v as i64);
        Ok(())
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<()> {
        write_i64(self.out, v as i64);
        Ok(())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<()> {
        write_u64(self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<()> {
        write_u128(self.out, v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<()> {
        write_f64(self.out, v as f64);
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        write_f64(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<()> {
        write_i64(self.out, v as i64);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        match std::mem::take(&mut self.mode) {
            mode @ Mode::StructMap(_) => {
                self.mode = mode;
                self.not_a_struct()?;
            }
            Mode::Atom => {
                check_atom(v)?;
                write_atom(self.out, v);
            }
            Mode::Charlist => write_charlist(self.out, v),
            Mode::CaptureModule => {
                check_atom(v)?;
                self.captured = Some(v.to_string());
            }
            _ => write_binary(self.out, v.as_bytes()),
        }
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.not_a_struct()?;
        if std::mem::take(&mut self.mode) == Mode::Raw {
            self.out.extend_from_slice(v);
        } else {
            write_binary(self.out, v);
        }
        Ok(())
    }
    fn serialize_none(self) -> Result<()> {
        self.not_a_struct()?;
        write_atom(self.out, "nil");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.not_a_struct()?;
        write_atom(self.out, "nil");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
    ) -> Result<()> {
        check_atom(variant)?;
        write_atom(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<()> {
        // Other newtypes are transparent and keep a pending mode (an ExStruct around a
        // newtype around a struct still gets its `__struct__`).
        match name {
            ATOM_TOKEN => self.mode = Mode::Atom,
            RAW_TOKEN => self.mode = Mode::Raw,
            CHARLIST_TOKEN => self.mode = Mode::Charlist,
            STRUCT_TOKEN => self.mode = Mode::ExStruct,
            _ => {}
        }
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.not_a_struct()?;
        check_atom(variant)?;
        write_tuple_header(self.out, 2);
        write_atom(self.out, variant);
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'s, 'a>> {
        self.not_a_struct()?;
        let start = self.begin_list();
        Ok(Compound {
            ser: self,
            kind: Kind::List,
            start,
            count: 0,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'s, 'a>> {
        if std::mem::take(&mut self.mode) == Mode::ExStruct {
            return Ok(Compound {
                ser: self,
                kind: Kind::ExStruct,
                start: 0,
                count: 0,
            });
        }
        self.not_a_struct()?;
        write_tuple_header(self.out, len);
        Ok(Compound {
            ser: self,
            kind: Kind::Tuple,
            start: 0,
            count: 0,
        })
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'s, 'a>> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'s, 'a>> {
        self.not_a_struct()?;
        check_atom(variant)?;
        write_tuple_header(self.out, len + 1);
        write_atom(self.out, variant);
        Ok(Compound {
            ser: self,
            kind: Kind::Tuple,
            start: 0,
            count: 0,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'s, 'a>> {
        let (start, count) = self.begin_map();
        Ok(Compound {
            ser: self,
            kind: Kind::Map,
            start,
            count,
        })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'s, 'a>> {
        let (start, count) = self.begin_map();
        Ok(Compound {
            ser: self,
            kind: Kind::Struct,
            start,
            count,
        })
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'s, 'a>> {
        self.not_a_struct()?;
        check_atom(variant)?;
        write_tuple_header(self.out, 2);
        write_atom(self.out, variant);
        let (start, count) = self.begin_map();
        Ok(Compound {
            ser: self,
            kind: Kind::Struct,
            start,
            count,
        })
    }
}
