//! Erlang terms and the External Term Format (ETF), with serde.
//!
//! * [`Term`] is any Erlang term; [`Term::decode`] and [`Term::encode`] convert it to
//!   and from the bytes of `term_to_binary` / `binary_to_term`, compressed or not
//!   ([`Term::encode_compressed`]). Equality and ordering follow Erlang's term order
//!   ([`order`]), so a `Term` can key a `BTreeMap`.
//! * [`to_vec`] / [`from_slice`] go straight between your serde types and ETF, without an
//!   intermediate `Term`; [`to_term`] / [`from_term`] convert through a `Term`.
//! * Untrusted input is safe to decode: every length is checked against the bytes left
//!   before allocating, and [`DecodeLimits`] bounds depth, atoms, inflation and big
//!   integers. The decoder never panics.
//!
//! ```
//! use orbit_term::{from_slice, to_vec, Term};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! #[serde(rename_all = "snake_case")]
//! enum Reply { Ok(u32), Error { reason: String } }
//!
//! let bytes = to_vec(&Reply::Ok(3)).unwrap();   // {ok, 3}
//! assert_eq!(Term::decode(&bytes).unwrap(), Term::tuple(vec![Term::atom("ok"), Term::Int(3)]));
//! assert_eq!(from_slice::<Reply>(&bytes).unwrap(), Reply::Ok(3));
//! ```
//!
//! # The serde mapping
//!
//! | Rust | Erlang / Elixir | notes |
//! |------|-----------------|-------|
//! | `bool` | `true` / `false` | atoms |
//! | integers, `i128`, `u128` | integer | smallest ETF form; bigs beyond 64 bits |
//! | `f32`, `f64` | float | `NEW_FLOAT`; integers are accepted when decoding |
//! | `char` | integer (code point) | a one-character binary is accepted too |
//! | `String`, `&str` | UTF-8 binary | atoms are accepted when decoding |
//! | bytes (`serde_bytes`) | binary | |
//! | `Vec<T>`, sequences | list | tuples and `STRING_EXT` accepted when decoding |
//! | `(A, B)`, tuple structs | tuple | |
//! | `Option<T>` | `nil` or the value | `Option<Option<T>>` cannot tell `Some(None)` from `None` |
//! | `()`, unit structs | `nil` | `{}` is accepted when decoding |
//! | newtype structs | the inner value | |
//! | structs | map with atom keys | `%{name: ..., age: ...}`; an extra `__struct__` key is ignored like any unknown field |
//! | `HashMap`, `BTreeMap` | map | keys map by their own type (`String` keys are binaries) |
//! | unit variant `E::Ping` | atom `Ping` | use `#[serde(rename_all = "snake_case")]` for `:ping` |
//! | newtype variant `E::Echo(x)` | `{Echo, x}` | |
//! | tuple variant `E::Move(a, b)` | `{Move, a, b}` | |
//! | struct variant `E::Login { .. }` | `{Login, %{..}}` | |
//! | [`Atom`] | atom | |
//! | [`Pid`], [`Port`], [`Reference`] | pid, port, reference | their real ETF forms |
//! | [`Term`] | the term itself | lossless: keep an untyped part inside a typed message |
//! | [`RawTerm`] | the term itself, kept encoded | decode it later into the type the receiver picks |
//! | [`Charlist`] | charlist (`'abc'`) | `STRING_EXT` when it fits |
//! | [`ExStruct<T>`] | Elixir struct | a map with `__struct__ => module` first |
//!
//! With serde formats other than this one, [`Atom`] is a string, [`Charlist`] a string,
//! [`ExStruct`] a `(module, value)` pair, and `Term`, `Pid`, `Port`, `Reference` are their
//! ETF encoding as bytes.
#![warn(missing_docs)]

mod access;
mod atom;
mod de;
mod decode;
mod display;
mod elixir;
mod encode;
mod error;
mod ids;
mod limits;
pub mod order;
mod raw;
mod reader;
mod ser;
mod skip;
mod special;
mod tag;
mod term;

pub use atom::{Atom, MAX_ATOM_CHARS};
pub use de::{from_slice, from_slice_owned, from_slice_with, from_term, to_term, Deserializer};
pub use elixir::{Charlist, ExStruct};
pub use error::{Error, Result};
pub use ids::{Export, Fun, Pid, Port, Reference, MAX_REFERENCE_WORDS};
pub use limits::DecodeLimits;
pub use num_bigint::BigInt;
pub use raw::RawTerm;
pub use ser::{to_vec, to_vec_compressed, to_vec_into, Serializer};
pub use skip::encoded_len;
pub use term::{BitBinary, ImproperList, Term};
