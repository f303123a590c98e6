//! Which Rust types travel to other nodes, and how: the wire codec registry.
//!
//! The runtime's [`orbit::send`] and GenServer `call`/`cast` are generic over any
//! `M: Any + Send` (local messages need no serde), so when they reach another node the
//! distribution router holds a type-erased value. This registry maps its `TypeId` to
//! the serde encoder (and, for replies, decoder) of its type, monomorphised when the
//! type was registered. A type is registered:
//!
//! - ahead of time: integers, floats, `bool`, `char`, `()`, `String`, `&'static str`
//!   (encode only), [`Term`], [`Atom`], [`orbit_term::Pid`], [`Etf`], [`orbit::Pid`],
//!   and `Vec`/`Option` of those scalars, and pairs of `Atom`/`String`/`i64`/`Term`;
//! - by the serde-aware entry points of this crate that take owned types:
//!   [`crate::serve`] (decode), [`crate::serve_gen_server`] (its call, cast and reply
//!   types), [`crate::call`] (its reply type). [`crate::send`], [`crate::send_named`],
//!   [`crate::call`] and [`crate::cast`] take requests by reference, borrowed ones too
//!   (`&(&atom, &bytes)`), which have no `TypeId`; they need no registration themselves
//!   and register nothing for them;
//! - explicitly with one call: [`remote::<M>()`](remote), or
//!   [`remote_server::<G>()`](crate::remote_server) for a GenServer type (called from this
//!   node, and served to other nodes by name or pid).
//!
//! A type that is not registered fails at the send or call with
//! [`orbit::SendError::NotEncodable`] / [`orbit::CallError::Encode`], naming the type
//! and this one-line fix. Stable Rust cannot ask at run time whether a type implements
//! `Serialize` (that needs specialization), hence the registry. Local sends never look
//! here. Lookups take a read lock on a map (one atomic when uncontended); registration
//! is idempotent.
//!
//! The BEAM has no such step: every term is encodable. Here a value's wire form is the
//! term serde maps it to (`orbit_term`'s mapping: a struct is a map with atom keys, a
//! tuple a tuple, a `String` a binary, ...).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::OnceLock;

use orbit::router::{Payload, ReplyType};
use orbit::{CallError, SendError};
use orbit_term::{Atom, Term};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::connection::FrameError;

/// A message already in ETF (`131, ...`), as `term_to_binary` makes it; sent as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etf(pub Vec<u8>);

/// Writes a message's ETF (`131, ...`) into a frame.
pub(crate) type Writer = Box<dyn FnOnce(&mut Vec<u8>) -> Result<(), FrameError> + Send>;

/// Writes a value's ETF (`131, ...`) into a buffer.
type EncodeFn = fn(&(dyn Any + Send), &mut Vec<u8>) -> Result<(), String>;
/// Reads a value from its ETF (`131, ...`).
type DecodeFn = fn(&[u8]) -> Result<Box<dyn Any + Send>, String>;

#[derive(Clone, Copy, Default)]
struct Codec {
    encode: Option<EncodeFn>,
    decode: Option<DecodeFn>,
}

/// Codecs by type; seeded foldhash, as SipHash was a visible part of every send's cost
/// (issue 17).
type Codecs = HashMap<TypeId, Codec, foldhash::fast::RandomState>;

fn registry() -> &'static RwLock<Codecs> {
    static R: OnceLock<RwLock<Codecs>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(builtins()))
}

fn encode_serde<M: Serialize + Any>(v: &(dyn Any + Send), o: &mut Vec<u8>) -> Result<(), String> {
    let v = (v as &dyn Any)
        .downcast_ref::<M>()
        .ok_or("codec registered for another type")?;
    orbit_term::to_vec_into(v, o).map_err(|e| e.to_string())
}

fn decode_serde<M: DeserializeOwned + Any + Send>(b: &[u8]) -> Result<Box<dyn Any + Send>, String> {
    orbit_term::from_slice_owned::<M>(b)
        .map(|m| Box::new(m) as Box<dyn Any + Send>)
        .map_err(|e| e.to_string())
}

fn encode_etf(v: &(dyn Any + Send), o: &mut Vec<u8>) -> Result<(), String> {
    match (v as &dyn Any).downcast_ref::<Etf>() {
        Some(e) if e.0.first() == Some(&131) => {
            o.extend_from_slice(&e.0);
            Ok(())
        }
        Some(_) => {
            Err("orbit_dist::Etf bytes must start with 131 (term_to_binary's version byte)".into())
        }
        None => Err("codec registered for another type".into()),
    }
}

fn decode_etf(b: &[u8]) -> Result<Box<dyn Any + Send>, String> {
    Ok(Box::new(Etf(b.to_vec())))
}

fn encode_pid(v: &(dyn Any + Send), o: &mut Vec<u8>) -> Result<(), String> {
    let p = (v as &dyn Any)
        .downcast_ref::<orbit::Pid>()
        .ok_or("codec registered for another type")?;
    Term::Pid(Box::new(crate::peers::pid_to_wire(*p))).encode_into(o);
    Ok(())
}

fn decode_pid(b: &[u8]) -> Result<Box<dyn Any + Send>, String> {
    let p: orbit_term::Pid = orbit_term::from_slice_owned(b).map_err(|e| e.to_string())?;
    Ok(Box::new(crate::convert::pid_from_wire(&p)))
}

fn both<M: Serialize + DeserializeOwned + Any + Send>(m: &mut Codecs) {
    m.insert(
        TypeId::of::<M>(),
        Codec {
            encode: Some(encode_serde::<M>),
            decode: Some(decode_serde::<M>),
        },
    );
}

/// The types registered ahead of time.
fn builtins() -> Codecs {
    let mut m = Codecs::default();
    macro_rules! scalars {
        ($($t:ty),*) => {$(
            both::<$t>(&mut m);
            both::<Vec<$t>>(&mut m);
            both::<Option<$t>>(&mut m);
        )*};
    }
    scalars!(
        i8,
        i16,
        i32,
        i64,
        i128,
        isize,
        u8,
        u16,
        u32,
        u64,
        u128,
        usize,
        f32,
        f64,
        bool,
        char,
        String,
        Atom,
        Term,
        orbit_term::Pid
    );
    macro_rules! pairs {
        ($($a:ty),*) => {$( pairs!(@with $a; Atom, String, i64, Term); )*};
        (@with $a:ty; $($b:ty),*) => {$( both::<($a, $b)>(&mut m); )*};
    }
    pairs!(Atom, String, i64, Term);
    both::<()>(&mut m);
    m.insert(
        TypeId::of::<&'static str>(),
        Codec {
            encode: Some(encode_serde::<&'static str>),
            decode: None,
        },
    );
    m.insert(
        TypeId::of::<Etf>(),
        Codec {
            encode: Some(encode_etf),
            decode: Some(decode_etf),
        },
    );
    m.insert(
        TypeId::of::<orbit::Pid>(),
        Codec {
            encode: Some(encode_pid),
            decode: Some(decode_pid),
        },
    );
    m
}

/// Adds the given halves to `id`'s codec (a type's codec functions never change, so a
/// half already present is kept: one read lock when nothing is new).
fn update(id: TypeId, encode: Option<EncodeFn>, decode: Option<DecodeFn>) {
    let r = registry();
    let has = |c: &Codec| {
        (encode.is_none() || c.encode.is_some()) && (decode.is_none() || c.decode.is_some())
    };
    if r.read().get(&id).is_some_and(has) {
        return;
    }
    let mut w = r.write();
    let c = w.entry(id).or_default();
    c.encode = c.encode.or(encode);
    c.decode = c.decode.or(decode);
}

/// Registers `M` for the wire: values of type `M` can then be sent with
/// [`orbit::send`] to processes of other nodes, used as requests of
/// `orbit::gen_server::call`/`cast` to servers there, and decoded as replies. One call
/// per type per OS process (later calls cost one lookup); needed for a type sent with
/// `orbit`'s own `send`/`call` to another node unless it is built in or was given to
/// [`crate::serve`] / [`crate::serve_gen_server`] (see the module docs).
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Point { x: i32, y: i32 }
/// orbit_dist::remote::<Point>();
/// ```
pub fn remote<M: Serialize + DeserializeOwned + Any + Send>() {
    register_encode::<M>();
    register_decode::<M>();
}

/// Registers `M`'s encoder.
pub(crate) fn register_encode<M: Serialize + Any + Send>() {
    update(TypeId::of::<M>(), Some(encode_serde::<M>), None);
}

/// Registers `M`'s decoder.
pub(crate) fn register_decode<M: DeserializeOwned + Any + Send>() {
    update(TypeId::of::<M>(), None, Some(decode_serde::<M>));
}

/// What to say when `type_name` is not registered.
fn unregistered(type_name: &str, what: &str) -> String {
    format!(
        "{type_name} has no {what} for the wire: call orbit_dist::remote::<{type_name}>() \
         once at startup (the type must implement serde's Serialize and Deserialize), or \
         send it with orbit_dist::send"
    )
}

/// The encoder of a payload's type.
fn encoder(p: &Payload) -> Option<EncodeFn> {
    registry()
        .read()
        .get(&(*p.value).type_id())
        .and_then(|c| c.encode)
}

/// A frame writer for a message to another node, or `NotEncodable` naming its type.
pub(crate) fn writer(p: Payload) -> Result<Writer, SendError> {
    let Some(enc) = encoder(&p) else {
        return Err(SendError::NotEncodable(unregistered(
            p.type_name,
            "encoder",
        )));
    };
    let type_name = p.type_name;
    let value = p.value;
    Ok(Box::new(move |o: &mut Vec<u8>| {
        enc(&*value, o).map_err(|e| FrameError::Encode(format!("{type_name}: {e}")))
    }))
}

/// A request encoded for a call or cast, or `Encode` naming its type.
pub(crate) fn encode_request(p: &Payload) -> Result<Vec<u8>, CallError> {
    let Some(enc) = encoder(p) else {
        return Err(CallError::Encode {
            type_name: p.type_name,
            reason: unregistered(p.type_name, "encoder"),
        });
    };
    let mut out = Vec::with_capacity(64);
    enc(&*p.value, &mut out).map_err(|reason| CallError::Encode {
        type_name: p.type_name,
        reason,
    })?;
    Ok(out)
}

/// The decoder of a reply type, or `Decode` naming it.
pub(crate) fn decoder(t: ReplyType) -> Result<DecodeFn, CallError> {
    registry()
        .read()
        .get(&t.id)
        .and_then(|c| c.decode)
        .ok_or_else(|| CallError::Decode {
            type_name: t.name,
            reason: unregistered(t.name, "decoder"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Point {
        x: i32,
        y: i32,
    }

    struct NotSerde;

    #[test]
    fn registered_types_encode_and_others_name_the_fix() {
        let e = encode_request(&Payload::new(NotSerde)).unwrap_err();
        assert!(
            matches!(&e, CallError::Encode { type_name, reason }
                if type_name.ends_with("NotSerde") && reason.contains("orbit_dist::remote::<")),
            "{e}"
        );
        let e = match writer(Payload::new(Point { x: 1, y: 2 })) {
            Err(e) => e,
            Ok(_) => panic!("Point is not registered yet"),
        };
        assert!(e.to_string().contains("Point"), "{e}");
        remote::<Point>();
        let bytes = encode_request(&Payload::new(Point { x: 1, y: 2 })).unwrap();
        let back = decoder(ReplyType::of::<Point>()).unwrap()(&bytes).unwrap();
        assert_eq!(*back.downcast::<Point>().unwrap(), Point { x: 1, y: 2 });
        // Built in: a pair of an atom and a string.
        let bytes = encode_request(&Payload::new((
            Atom::try_new("ok").unwrap(),
            "hi".to_string(),
        )))
        .unwrap();
        assert_eq!(
            Term::decode(&bytes).unwrap(),
            Term::tuple(vec![Term::atom("ok"), Term::Binary(b"hi".to_vec())])
        );
        assert!(encode_request(&Payload::new(Etf(vec![1]))).is_err());
    }
}
