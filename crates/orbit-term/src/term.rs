//! [`Term`]: any Erlang term, as a Rust value.
//!
//! Use it for untyped messages, for interop tests and wherever the shape of the data is
//! not known in advance; for typed messages prefer your own types with serde
//! ([`to_vec`](crate::to_vec) / [`from_slice`](crate::from_slice)), which skip this
//! intermediate tree. Equality, ordering and hashing follow Erlang's term order (see
//! [`order`](crate::order)), so a `Term` can key a `BTreeMap` the way keys of an
//! `ordered_set` table behave.

use num_bigint::BigInt;
use num_traits::ToPrimitive;

use crate::atom::Atom;
use crate::error::Result;
use crate::ids::{Export, Fun, Pid, Port, Reference};

/// An Erlang term.
///
/// Invariants the decoder keeps and constructors should keep (comparisons stay correct
/// when they are broken, only the encoding changes): integers that fit in `i64` are
/// [`Term::Int`]; an empty list is `List(vec![])` (nil); an [`ImproperList`] has at least
/// one element and a tail that is not a list.
#[derive(Debug, Clone)]
pub enum Term {
    /// An integer that fits in 64 bits (`SMALL_INTEGER`, `INTEGER`, or a small big).
    Int(i64),
    /// An integer beyond 64 bits (`SMALL_BIG`, `LARGE_BIG`).
    BigInt(Box<BigInt>),
    /// A float (`NEW_FLOAT`; the legacy text `FLOAT` is decoded too).
    Float(f64),
    /// An atom.
    Atom(Atom),
    /// A reference.
    Reference(Box<Reference>),
    /// A closure.
    Fun(Box<Fun>),
    /// An external fun `fun M:F/A`.
    Export(Box<Export>),
    /// A port.
    Port(Box<Port>),
    /// A process id.
    Pid(Box<Pid>),
    /// A tuple.
    Tuple(Vec<Term>),
    /// A map, entries in no particular order (comparison sorts them).
    Map(Vec<(Term, Term)>),
    /// A proper list; empty is nil `[]`. `STRING_EXT` decodes to a list of integers.
    List(Vec<Term>),
    /// A list whose last tail is not `[]`.
    ImproperList(Box<ImproperList>),
    /// A binary.
    Binary(Vec<u8>),
    /// A bitstring whose length is not a multiple of 8.
    BitBinary(Box<BitBinary>),
}

/// `[e1, e2, ... | tail]` with a tail that is not a list.
#[derive(Debug, Clone)]
pub struct ImproperList {
    /// The elements before the tail (at least one).
    pub elements: Vec<Term>,
    /// The final tail.
    pub tail: Term,
}

/// A bitstring: `bytes`, of which the last holds only `bits` significant high bits.
#[derive(Debug, Clone)]
pub struct BitBinary {
    /// The bytes; unused low bits of the last byte are zero.
    pub bytes: Vec<u8>,
    /// Significant bits in the last byte, 1 to 8.
    pub bits: u8,
}

impl Term {
    /// The atom with this text.
    ///
    /// # Panics
    /// If `text` is longer than 255 characters; use [`Term::try_atom`] or [`Atom::try_new`] for text from outside the program.
    pub fn atom(text: &str) -> Term {
        match Atom::try_new(text) {
            Ok(a) => Term::Atom(a),
            Err(e) => panic!("{e}"),
        }
    }

    /// The atom with this text, or an error if it is too long.
    pub fn try_atom(text: &str) -> Result<Term> {
        Atom::try_new(text).map(Term::Atom)
    }

    /// Nil, the empty list `[]`.
    pub fn nil() -> Term {
        Term::List(Vec::new())
    }

    /// The atom `nil` (Elixir's `nil`).
    pub fn nil_atom() -> Term {
        Term::Atom(Atom::nil())
    }

    /// `true` or `false`.
    pub fn bool(b: bool) -> Term {
        Term::Atom(Atom::bool(b))
    }

    /// A tuple.
    pub fn tuple(elements: Vec<Term>) -> Term {
        Term::Tuple(elements)
    }

    /// A list ending in `tail`, normalized: a list tail is appended, an empty element
    /// list gives the tail itself.
    pub fn improper_list(mut elements: Vec<Term>, tail: Term) -> Term {
        match tail {
            Term::List(rest) => {
                elements.extend(rest);
                Term::List(elements)
            }
            Term::ImproperList(il) => {
                let ImproperList {
                    elements: rest,
                    tail,
                } = *il;
                elements.extend(rest);
                Term::improper_list(elements, tail)
            }
            tail if elements.is_empty() => tail,
            tail => Term::ImproperList(Box::new(ImproperList { elements, tail })),
        }
    }

    /// An integer of any size, as `Int` when it fits in 64 bits.
    pub fn big(n: BigInt) -> Term {
        match n.to_i64() {
            Some(i) => Term::Int(i),
            None => Term::BigInt(Box::new(n)),
        }
    }

    /// A bitstring of `bits` bits (1..=8) in the last byte; `bits == 8` gives a binary.
    /// The unused low bits of the last byte are cleared.
    pub fn bitstring(mut bytes: Vec<u8>, bits: u8) -> Term {
        if bits == 0 || bits >= 8 || bytes.is_empty() {
            return Term::Binary(bytes);
        }
        if let Some(last) = bytes.last_mut() {
            *last &= 0xffu8 << (8 - bits);
        }
        Term::BitBinary(Box::new(BitBinary { bytes, bits }))
    }

    /// A map from its entries.
    pub fn map(entries: Vec<(Term, Term)>) -> Term {
        Term::Map(entries)
    }

    /// A charlist: the list of the code points of `text` (Erlang's `"text"`).
    pub fn charlist(text: &str) -> Term {
        Term::List(text.chars().map(|c| Term::Int(c as i64)).collect())
    }

    /// The text of a charlist (a proper list of valid code points), if this is one.
    pub fn as_charlist(&self) -> Option<String> {
        match self {
            Term::List(items) => items
                .iter()
                .map(|t| match t {
                    Term::Int(i) => u32::try_from(*i).ok().and_then(char::from_u32),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// The atom's text, if this is an atom.
    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Term::Atom(a) => Some(a.as_str()),
            _ => None,
        }
    }

    /// The integer, if this is one that fits in `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Term::Int(i) => Some(*i),
            Term::BigInt(b) => b.to_i64(),
            _ => None,
        }
    }

    /// The bytes, if this is a binary.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Term::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The value stored under `key` (compared exactly, as map keys are), if this is a map.
    pub fn map_get(&self, key: &Term) -> Option<&Term> {
        match self {
            Term::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.exact_eq(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

impl From<i64> for Term {
    fn from(i: i64) -> Term {
        Term::Int(i)
    }
}
impl From<i32> for Term {
    fn from(i: i32) -> Term {
        Term::Int(i as i64)
    }
}
impl From<u32> for Term {
    fn from(i: u32) -> Term {
        Term::Int(i as i64)
    }
}
impl From<u64> for Term {
    fn from(i: u64) -> Term {
        match i64::try_from(i) {
            Ok(i) => Term::Int(i),
            Err(_) => Term::BigInt(Box::new(BigInt::from(i))),
        }
    }
}
impl From<BigInt> for Term {
    fn from(n: BigInt) -> Term {
        Term::big(n)
    }
}
impl From<f64> for Term {
    fn from(f: f64) -> Term {
        Term::Float(f)
    }
}
impl From<bool> for Term {
    fn from(b: bool) -> Term {
        Term::bool(b)
    }
}
impl From<Atom> for Term {
    fn from(a: Atom) -> Term {
        Term::Atom(a)
    }
}
impl From<&[u8]> for Term {
    fn from(b: &[u8]) -> Term {
        Term::Binary(b.to_vec())
    }
}
impl From<Vec<u8>> for Term {
    fn from(b: Vec<u8>) -> Term {
        Term::Binary(b)
    }
}
/// A string becomes a UTF-8 binary, as in Elixir.
impl From<&str> for Term {
    fn from(s: &str) -> Term {
        Term::Binary(s.as_bytes().to_vec())
    }
}
impl From<String> for Term {
    fn from(s: String) -> Term {
        Term::Binary(s.into_bytes())
    }
}
impl From<Pid> for Term {
    fn from(p: Pid) -> Term {
        Term::Pid(Box::new(p))
    }
}
impl From<Port> for Term {
    fn from(p: Port) -> Term {
        Term::Port(Box::new(p))
    }
}
impl From<Reference> for Term {
    fn from(r: Reference) -> Term {
        Term::Reference(Box::new(r))
    }
}
impl From<Export> for Term {
    fn from(e: Export) -> Term {
        Term::Export(Box::new(e))
    }
}
impl From<Fun> for Term {
    fn from(f: Fun) -> Term {
        Term::Fun(Box::new(f))
    }
}
impl From<Vec<Term>> for Term {
    fn from(v: Vec<Term>) -> Term {
        Term::List(v)
    }
}
