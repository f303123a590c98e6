//! serde for this crate's own types, so they keep their real ETF form inside typed
//! messages: [`Atom`] as an atom, [`Pid`], [`Port`], [`Reference`] and any [`Term`] as
//! themselves.
//!
//! They talk to the ETF serializer through newtype structs with reserved names (the
//! `serde_json::RawValue` trick). With other serde formats an `Atom` is a string and the
//! others are their ETF encoding as bytes, so they still round-trip.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};
use serde::Deserialize;

use crate::atom::Atom;
use crate::ids::{Pid, Port, Reference};
use crate::limits::DecodeLimits;
use crate::term::Term;

pub(crate) const ATOM_TOKEN: &str = "$orbit_term::Atom";
pub(crate) const RAW_TOKEN: &str = "$orbit_term::Raw";
/// A [`crate::RawTerm`] being deserialized: the bytes of one term, found without
/// decoding it (serializing one uses [`RAW_TOKEN`]).
pub(crate) const RAW_BYTES_TOKEN: &str = "$orbit_term::RawBytes";
pub(crate) const CHARLIST_TOKEN: &str = "$orbit_term::Charlist";
pub(crate) const STRUCT_TOKEN: &str = "$orbit_term::ExStruct";

impl Serialize for Atom {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(ATOM_TOKEN, self.as_str())
    }
}

struct AtomVisitor;

impl<'de> Visitor<'de> for AtomVisitor {
    type Value = Atom;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an atom")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Atom, E> {
        Atom::try_new(v).map_err(E::custom)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Atom, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Deserialize<'de> for Atom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Atom, D::Error> {
        d.deserialize_newtype_struct(ATOM_TOKEN, AtomVisitor)
    }
}

/// Serializes an encoded term body as raw bytes under [`RAW_TOKEN`].
struct RawBody(Vec<u8>);

impl Serialize for RawBody {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

fn serialize_raw<S: Serializer>(t: &Term, s: S) -> Result<S::Ok, S::Error> {
    let mut body = Vec::new();
    t.encode_body(&mut body);
    s.serialize_newtype_struct(RAW_TOKEN, &RawBody(body))
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Term;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an Erlang term")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Term, E> {
        let (t, used) = Term::decode_body(v, &DecodeLimits::DEFAULT).map_err(E::custom)?;
        if used != v.len() {
            return Err(E::custom("trailing bytes after a raw term"));
        }
        Ok(t)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Term, A::Error> {
        let mut v = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        self.visit_bytes(&v)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Term, D::Error> {
        d.deserialize_bytes(self)
    }
}

fn deserialize_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Term, D::Error> {
    d.deserialize_newtype_struct(RAW_TOKEN, RawVisitor)
}

/// Lossless through the ETF serializer (any term, pids and funs included).
impl Serialize for Term {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_raw(self, s)
    }
}

impl<'de> Deserialize<'de> for Term {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Term, D::Error> {
        deserialize_raw(d)
    }
}

macro_rules! raw_type {
    ($ty:ident, $variant:ident, $what:literal) => {
        raw_type!($ty, $variant, $what, |body: &mut Vec<u8>, v: &$ty| {
            Term::$variant(Box::new(v.clone())).encode_body(body)
        });
    };
    // `$encode(body, value)` appends the value's term body to `body`.
    ($ty:ident, $variant:ident, $what:literal, $encode:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // Room for a pid or reference of a long node name in one allocation.
                let mut body = Vec::with_capacity(64);
                ($encode)(&mut body, self);
                s.serialize_newtype_struct(RAW_TOKEN, &RawBody(body))
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                match deserialize_raw(d)? {
                    Term::$variant(v) => Ok(*v),
                    other => Err(de::Error::custom(format_args!(
                        "expected {}, found {:?}",
                        $what, other
                    ))),
                }
            }
        }
    };
}

// Pids and references are written from the borrowed value, with no clone boxed into a
// `Term` first (a pid in every request a caller sends, issue 17); the bytes are the same.
raw_type!(Pid, Pid, "a pid", crate::encode::write_pid);
raw_type!(Port, Port, "a port");
raw_type!(
    Reference,
    Reference,
    "a reference",
    crate::encode::write_reference
);
