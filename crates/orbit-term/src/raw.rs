//! [`RawTerm`]: one term kept in its external format, decoded later (or never).
//!
//! A typed message can hold a part whose type is decided by its receiver: with
//! `RawTerm` the deserializer copies that part's bytes (one `memcpy`, the term walked
//! once to find its end) instead of building a [`Term`], and the receiver decodes them
//! straight into its own type with [`RawTerm::decode`], or into a `Term` when it must
//! look at any shape ([`RawTerm::to_term`]). Serializing a `RawTerm` writes its bytes
//! back unchanged.
//!
//! With serde formats other than ETF a `RawTerm` is its ETF bytes (without the version
//! byte), so it still round-trips.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};
use serde::Deserialize;

use crate::de::from_slice;
use crate::error::Result;
use crate::special::{RAW_BYTES_TOKEN, RAW_TOKEN};
use crate::tag;
use crate::term::Term;

/// One term in its external format (`131, ...`, never compressed), not decoded.
///
/// ```
/// use orbit_term::{to_vec, from_slice_owned, RawTerm};
/// // A tuple whose second element's type the receiver decides later.
/// let bytes = to_vec(&("events", vec![1u32, 2, 3])).unwrap();
/// let (kind, rest): (String, RawTerm) = from_slice_owned(&bytes).unwrap();
/// assert_eq!(kind, "events");
/// assert_eq!(rest.decode::<Vec<u64>>().unwrap(), vec![1, 2, 3]);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawTerm(Vec<u8>);

impl RawTerm {
    /// Encodes `value` (what [`crate::to_vec`] writes).
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<RawTerm> {
        crate::ser::to_vec(value).map(RawTerm)
    }

    /// The external format, version byte first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The term's tag (the byte after the version byte): which kind of term it is, e.g.
    /// 108 for a list (`LIST_EXT`), 104 for a small tuple.
    pub fn tag(&self) -> u8 {
        self.0.get(1).copied().unwrap_or(0)
    }

    /// Whether the term is a list (proper or not, `[]` and `STRING_EXT` included).
    pub fn is_list(&self) -> bool {
        matches!(self.tag(), tag::NIL | tag::STRING | tag::LIST)
    }

    /// Decodes the term into `T`, straight from the bytes.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        from_slice(&self.0)
    }

    /// Decodes the term into a [`Term`].
    pub fn to_term(&self) -> Result<Term> {
        Term::decode(&self.0)
    }
}

impl fmt::Debug for RawTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_term() {
            Ok(t) => write!(f, "RawTerm({t:?})"),
            Err(_) => write!(f, "RawTerm({:?})", self.0),
        }
    }
}

/// The body (after the version byte), written as is in the ETF serializer's raw mode.
struct Body<'a>(&'a [u8]);

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for RawTerm {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let body = self.0.get(1..).unwrap_or_default();
        s.serialize_newtype_struct(RAW_TOKEN, &Body(body))
    }
}

struct RawTermVisitor;

impl<'de> Visitor<'de> for RawTermVisitor {
    type Value = RawTerm;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an Erlang term")
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<RawTerm, E> {
        let mut bytes = Vec::with_capacity(v.len() + 1);
        bytes.push(tag::VERSION);
        bytes.extend_from_slice(v);
        // Other formats hand over whatever they stored: check it is one whole term.
        let (_term, used) =
            Term::decode_body(v, &crate::limits::DecodeLimits::DEFAULT).map_err(E::custom)?;
        if used != v.len() {
            return Err(E::custom("trailing bytes after a raw term"));
        }
        Ok(RawTerm(bytes))
    }
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> std::result::Result<RawTerm, E> {
        // From the ETF deserializer: exactly one term it has already walked.
        let mut bytes = Vec::with_capacity(v.len() + 1);
        bytes.push(tag::VERSION);
        bytes.extend_from_slice(v);
        Ok(RawTerm(bytes))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<RawTerm, A::Error> {
        let mut v = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        self.visit_bytes(&v)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<RawTerm, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<'de> Deserialize<'de> for RawTerm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<RawTerm, D::Error> {
        d.deserialize_newtype_struct(RAW_BYTES_TOKEN, RawTermVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{from_slice_owned, to_vec, Term};

    #[test]
    fn keeps_a_part_and_writes_it_back() {
        let t = Term::tuple(vec![
            Term::atom("a"),
            Term::List(vec![Term::Int(1), Term::Int(1 << 40), Term::atom("x")]),
        ]);
        let bytes = t.encode();
        let (a, rest): (crate::Atom, RawTerm) = from_slice_owned(&bytes).unwrap();
        assert_eq!(a.as_str(), "a");
        assert!(rest.is_list());
        assert_eq!(
            rest.to_term().unwrap(),
            Term::List(vec![Term::Int(1), Term::Int(1 << 40), Term::atom("x")])
        );
        assert!(rest.decode::<Vec<i64>>().is_err());
        // Written back unchanged inside another term.
        let again = to_vec(&(a, &rest)).unwrap();
        assert_eq!(Term::decode(&again).unwrap(), t);
    }

    #[test]
    fn borrowed_by_the_etf_deserializer_only_from_a_whole_term() {
        // From the ETF deserializer, the raw bytes are one whole term.
        let r: RawTerm = from_slice_owned(&to_vec(&vec![7u8, 8]).unwrap()).unwrap();
        assert_eq!(r.decode::<Vec<u8>>().unwrap(), vec![7, 8]);
        assert!(!RawTerm::encode(&(1, 2)).unwrap().is_list());
        // Bytes that are not a term, handed over by another format, are an error.
        let bad: std::result::Result<RawTerm, de::value::Error> =
            RawTermVisitor.visit_bytes(&[255, 1, 2]);
        assert!(bad.is_err());
    }
}
