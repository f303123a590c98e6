//! Erlang terms and the External Term Format (ETF), with serde.
//!
//! * [`Term`] is any Erlang term; [`Term::decode`] and [`Term::encode`] convert it to
//!   and from the bytes of `term_to_binary` / `binary_to_term`, compressed or not.
//!   Equality and ordering follow Erlang's term order.
//! * Untrusted input is safe to decode: see [`DecodeLimits`].
#![warn(missing_docs)]

mod atom;
mod decode;
mod encode;
mod error;
mod ids;
mod limits;
pub mod order;
mod reader;
mod tag;
mod term;

pub use atom::{Atom, MAX_ATOM_CHARS};
pub use error::{Error, Result};
pub use ids::{Export, Fun, Pid, Port, Reference, MAX_REFERENCE_WORDS};
pub use limits::DecodeLimits;
pub use num_bigint::BigInt;
pub use term::{BitBinary, ImproperList, Term};
