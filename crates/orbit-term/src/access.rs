//! The serde access types the [`Deserializer`] hands to visitors: elements of lists and
//! tuples, map entries, enum variants, and the `(module, fields)` pair of an Elixir struct.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::de::Deserializer;
use crate::error::{Error, Result};
use crate::tag;

pub(crate) enum SeqKind<'de> {
    Nil,
    List,
    Tuple,
    Bytes(&'de [u8]),
}

/// Elements of a list, string or tuple.
pub(crate) struct SeqAccess<'a, 'de> {
    pub(crate) de: &'a mut Deserializer<'de>,
    pub(crate) left: usize,
    pub(crate) kind: SeqKind<'de>,
}

impl SeqAccess<'_, '_> {
    /// Checks that every element was read and consumes a list's tail.
    pub(crate) fn finish(self) -> Result<()> {
        if self.left > 0 {
            return Err(Error::TypeMismatch {
                expected: "a shorter sequence",
                found: format!("{} more element(s)", self.left),
            });
        }
        if let SeqKind::List = self.kind {
            let at = self.de.r.pos;
            if self.de.r.u8()? != tag::NIL {
                return Err(Error::invalid(
                    at,
                    "improper list where a sequence was expected",
                ));
            }
        }
        self.de.r.leave();
        Ok(())
    }
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_, 'de> {
    type Error = Error;
    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        if let SeqKind::Bytes(b) = &mut self.kind {
            // `left` counts the bytes still in `b`; never a panic if it did not.
            let Some((&first, rest)) = b.split_first() else {
                return Ok(None);
            };
            *b = rest;
            let d: de::value::U8Deserializer<Error> = first.into_deserializer();
            return seed.deserialize(d).map(Some);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        // A hint, not a promise: capped like the Term decoder's reservations.
        Some(crate::reader::Reader::prealloc(self.left))
    }
}

/// Entries of a map.
pub(crate) struct MapAccess<'a, 'de> {
    pub(crate) de: &'a mut Deserializer<'de>,
    pub(crate) left: usize,
    pub(crate) skip_struct: bool,
}

impl MapAccess<'_, '_> {
    pub(crate) fn finish(self) -> Result<()> {
        if self.left > 0 {
            return Err(Error::Custom(format!(
                "{} map entries left unread",
                self.left
            )));
        }
        self.de.r.leave();
        Ok(())
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'_, 'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        loop {
            if self.left == 0 {
                return Ok(None);
            }
            self.left -= 1;
            if self.skip_struct && self.de.peek_atom_is("__struct__") {
                self.de.skip()?;
                self.de.skip()?;
                continue;
            }
            return seed.deserialize(&mut *self.de).map(Some);
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.de)
    }
    fn size_hint(&self) -> Option<usize> {
        // A hint, not a promise: capped like the Term decoder's reservations.
        Some(crate::reader::Reader::prealloc(self.left))
    }
}

/// `(module, value)` of an `ExStruct`: the module from `__struct__`, then the map.
pub(crate) struct ExStructAccess<'a, 'de> {
    pub(crate) de: &'a mut Deserializer<'de>,
    pub(crate) module: Option<String>,
    pub(crate) done: bool,
}

impl<'de> de::SeqAccess<'de> for ExStructAccess<'_, 'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if let Some(m) = self.module.take() {
            let d: de::value::StringDeserializer<Error> = m.into_deserializer();
            return seed.deserialize(d).map(Some);
        }
        if self.done {
            return Ok(None);
        }
        self.done = true;
        self.de.skip_struct_key = true;
        let v = seed.deserialize(&mut *self.de);
        self.de.skip_struct_key = false;
        v.map(Some)
    }
}

/// Enum access: a bare atom (unit variant) or a tuple `{variant, ...}`.
pub(crate) struct EnumAccess<'a, 'de> {
    pub(crate) de: &'a mut Deserializer<'de>,
    /// Elements after the variant atom, `None` for a bare atom.
    pub(crate) rest: Option<usize>,
}

impl<'a, 'de> de::EnumAccess<'de> for EnumAccess<'a, 'de> {
    type Error = Error;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let v = seed.deserialize(&mut *self.de)?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for EnumAccess<'_, 'de> {
    type Error = Error;
    fn unit_variant(self) -> Result<()> {
        match self.rest {
            None | Some(0) => Ok(()),
            Some(n) => Err(Error::TypeMismatch {
                expected: "a unit variant (an atom)",
                found: format!("a tuple with {n} value(s) after the variant"),
            }),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        match self.rest {
            Some(1) => seed.deserialize(&mut *self.de),
            _ => Err(Error::TypeMismatch {
                expected: "a newtype variant {variant, value}",
                found: format!("{:?} value(s) after the variant", self.rest.unwrap_or(0)),
            }),
        }
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        if self.rest != Some(len) {
            return Err(Error::TypeMismatch {
                expected: "a tuple variant {variant, ...} of matching size",
                found: format!(
                    "{:?} value(s) after the variant, {len} expected",
                    self.rest.unwrap_or(0)
                ),
            });
        }
        self.de.r.enter()?;
        let mut access = SeqAccess {
            de: &mut *self.de,
            left: len,
            kind: SeqKind::Tuple,
        };
        let value = visitor.visit_seq(&mut access)?;
        access.finish()?;
        Ok(value)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if self.rest != Some(1) {
            return Err(Error::TypeMismatch {
                expected: "a struct variant {variant, %{fields}}",
                found: format!("{:?} value(s) after the variant", self.rest.unwrap_or(0)),
            });
        }
        self.de.visit_map(visitor)
    }
}
