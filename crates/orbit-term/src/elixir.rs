//! Elixir conventions that a plain Rust type cannot express: charlists (`'abc'`) and
//! structs (maps with a `__struct__` key).

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

use crate::atom::Atom;
use crate::special::{CHARLIST_TOKEN, STRUCT_TOKEN};

/// A string sent as an Erlang charlist (a list of code points, like `'abc'` in Elixir)
/// instead of a binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Charlist(pub String);

impl Serialize for Charlist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(CHARLIST_TOKEN, self.0.as_str())
    }
}

struct CharlistVisitor;

impl<'de> Visitor<'de> for CharlistVisitor {
    type Value = Charlist;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a charlist")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Charlist, E> {
        Ok(Charlist(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Charlist, E> {
        Ok(Charlist(v))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Charlist, D::Error> {
        d.deserialize_string(self)
    }
}

impl<'de> Deserialize<'de> for Charlist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Charlist, D::Error> {
        d.deserialize_newtype_struct(CHARLIST_TOKEN, CharlistVisitor)
    }
}

/// An Elixir struct: `value` (a Rust struct or map) sent as a map with
/// `__struct__ => module` added, e.g. `ExStruct::new("Elixir.MyApp.User", user)`.
/// Decoding checks nothing about the module; it is returned in `module`.
///
/// With other serde formats it is the pair `(module, value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExStruct<T> {
    /// The module atom, with its `Elixir.` prefix.
    pub module: Atom,
    /// The fields.
    pub value: T,
}

impl<T> ExStruct<T> {
    /// A struct of `module` (e.g. `"Elixir.URI"`).
    ///
    /// # Panics
    /// If `module` is longer than 255 characters.
    pub fn new(module: &str, value: T) -> Self {
        match Atom::try_new(module) {
            Ok(module) => ExStruct { module, value },
            Err(e) => panic!("{e}"),
        }
    }
}

struct Pair<'a, T>(&'a ExStruct<T>);

impl<T: Serialize> Serialize for Pair<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(self.0.module.as_str())?;
        t.serialize_element(&self.0.value)?;
        t.end()
    }
}

impl<T: Serialize> Serialize for ExStruct<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(STRUCT_TOKEN, &Pair(self))
    }
}

struct ExStructVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ExStructVisitor<T> {
    type Value = ExStruct<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an Elixir struct")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ExStruct<T>, A::Error> {
        let module: Atom = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("struct without __struct__ module"))?;
        let value: T = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("struct without fields"))?;
        Ok(ExStruct { module, value })
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<ExStruct<T>, D::Error> {
        d.deserialize_tuple(2, self)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ExStruct<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ExStruct<T>, D::Error> {
        d.deserialize_newtype_struct(STRUCT_TOKEN, ExStructVisitor(std::marker::PhantomData))
    }
}
