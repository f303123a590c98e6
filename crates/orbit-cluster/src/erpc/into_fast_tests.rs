//! The argument list read from the bytes (`fast_call_reason`) against the `Term` path:
//! for random valid and mutated `[Res, M, F, A]` payloads calling typed functions of
//! many argument types, the fast path either leaves the request to the `Term` path
//! (`None`, nothing run) or returns exactly the exit reason the `Term` path returns
//! (the function's value, `function_clause`, a raised error, a panic's `RuntimeError`).

use std::sync::Once;

use orbit_term::{Atom, BigInt, Pid, Reference, Term};
use proptest::prelude::*;

use super::fast::fast_call_reason;
use super::*;
use crate::erpc::registry::register_typed;
use crate::erpc::ErpcError;

const MODULE: &str = "erpc_fast_args_test";

/// Typed functions of assorted argument types, each returning its arguments (so the
/// values read are compared), some failing on chosen values.
fn register_all() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let reg = |r: Result<(), ErpcError>| r.expect("registered");
        reg(register_typed(MODULE, "zero", |(): ()| Ok("none")));
        reg(register_typed(
            MODULE,
            "int2",
            |(a, b): (i64, i64)| match a {
                13 => Err(ErpcError::error(Term::atom("thirteen"))),
                14 => Err(ErpcError::throw(Term::Int(b))),
                15 => Err(ErpcError::exit(Term::atom("fifteen"))),
                _ => Ok((a, b)),
            },
        ));
        reg(register_typed(MODULE, "small", |(a, b): (u8, i32)| {
            Ok((a, b))
        }));
        reg(register_typed(MODULE, "text", |(s,): (String,)| Ok(s)));
        reg(register_typed(
            MODULE,
            "bytes",
            |(b,): (serde_bytes_like::Bytes,)| Ok(b.0.len()),
        ));
        reg(register_typed(MODULE, "float", |(f,): (f64,)| {
            Ok(f.to_bits())
        }));
        reg(register_typed(MODULE, "flag", |(b,): (bool,)| Ok(b)));
        reg(register_typed(MODULE, "term", |(t,): (Term,)| Ok(t)));
        reg(register_typed(MODULE, "ints", |(v,): (Vec<i64>,)| Ok(v)));
        reg(register_typed(MODULE, "maybe", |(v,): (Option<i64>,)| {
            Ok(v)
        }));
        reg(register_typed(
            MODULE,
            "pair",
            |(p, t): ((i64, String), Term)| Ok((p, t)),
        ));
        reg(register_typed(
            MODULE,
            "mixed",
            |(a, s, t): (i64, String, Term)| {
                if a == 7 {
                    panic!("seven");
                }
                Ok((a, s, t))
            },
        ));
    });
}

/// `Vec<u8>` read as serde bytes (a binary), the way a typed function takes raw data.
mod serde_bytes_like {
    pub struct Bytes(pub Vec<u8>);
    impl<'de> serde::Deserialize<'de> for Bytes {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }
}

const FUNCTIONS: [(&str, usize); 12] = [
    ("zero", 0),
    ("int2", 2),
    ("small", 2),
    ("text", 1),
    ("bytes", 1),
    ("float", 1),
    ("flag", 1),
    ("term", 1),
    ("ints", 1),
    ("maybe", 1),
    ("pair", 2),
    ("mixed", 3),
];

/// A small xorshift generator: one payload per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn node(g: &mut Rng) -> Atom {
    let names = ["a@h", "orbit_erpc_driver_54321_0@127.0.0.1", "ñode@høst"];
    Atom::try_new(names[g.below(names.len() as u64) as usize]).unwrap()
}

fn reference(g: &mut Rng) -> Term {
    let words: Vec<u32> = (0..1 + g.below(3)).map(|_| g.next() as u32).collect();
    Term::Reference(Box::new(
        Reference::new(node(g), g.next() as u32, &words).unwrap(),
    ))
}

/// A value likely to fit one of the argument types, or near one.
fn arg(g: &mut Rng, depth: u32) -> Term {
    let leaf = depth == 0 || g.below(3) == 0;
    match g.below(if leaf { 12 } else { 16 }) {
        0 => Term::Int(g.below(300) as i64 - 20),
        1 => Term::Int(g.next() as i64),
        2 => Term::Int([13, 14, 15, 7, i64::MIN, i64::MAX, 255, 256][g.below(8) as usize]),
        3 => Term::BigInt(Box::new(BigInt::from(g.next()) * BigInt::from(g.next()))),
        4 => Term::atom(["true", "false", "nil", "undefined", "ok"][g.below(5) as usize]),
        5 => Term::Binary(b"h\xc3\xa9llo"[..g.below(7) as usize].to_vec()),
        6 => Term::Binary(vec![g.next() as u8; g.below(4) as usize]),
        7 => Term::Float(g.below(1000) as f64 / 7.0),
        8 => reference(g),
        9 => Term::Pid(Box::new(Pid::new(node(g), 5, 0, 1))),
        10 => Term::List(vec![]),
        11 => Term::Int(g.below(128) as i64),
        12 => Term::Tuple((0..g.below(3)).map(|_| arg(g, depth - 1)).collect()),
        13 => Term::List((0..g.below(4)).map(|_| arg(g, depth - 1)).collect()),
        14 => Term::Tuple(vec![Term::Int(g.below(50) as i64), arg(g, 0)]),
        _ => Term::List(
            (0..g.below(4))
                .map(|_| Term::Int(g.below(120) as i64))
                .collect(),
        ),
    }
}

/// A valid `[Res, M, F, A]`, mostly calling one of the test functions with about the
/// right number of arguments.
fn payload(g: &mut Rng) -> Vec<u8> {
    let (f, arity) = FUNCTIONS[g.below(FUNCTIONS.len() as u64) as usize];
    let n = match g.below(8) {
        0 => arity + 1,
        1 => arity.saturating_sub(1),
        _ => arity,
    };
    let res = if g.below(10) == 0 {
        arg(g, 1)
    } else {
        reference(g)
    };
    let m = if g.below(20) == 0 { "other" } else { MODULE };
    let args = Term::List((0..n).map(|_| arg(g, 2)).collect());
    let list = match g.below(30) {
        0 => vec![res, Term::atom(m), Term::atom(f)],
        1 => vec![res, Term::atom(m), Term::atom(f), args, Term::nil()],
        _ => vec![res, Term::atom(m), Term::atom(f), args],
    };
    Term::List(list).encode()
}

/// What the `Term` path answers: the exit reason of the call, or `None` when it would
/// refuse the request (`badarg`) or needs a process.
fn term_path(payload: &[u8]) -> Option<Term> {
    let Ok(Term::List(a)) = Term::decode(payload) else {
        return None;
    };
    let [res, m, f, args] = <[Term; 4]>::try_from(a).ok()?;
    match prepare(&m, &f, args) {
        Ready::Now(r) => Some(call_reason(res, r)),
        Ready::Later { .. } => None,
    }
}

fn agrees(payload: &[u8]) {
    if let Some(fast) = fast_call_reason(payload) {
        let slow = term_path(payload);
        assert_eq!(
            slow.as_ref().map(Term::encode),
            Some(fast.encode()),
            "payload {payload:?}: fast {fast}, term path {slow:?}"
        );
    }
}

#[test]
fn reads_typed_calls_as_the_term_path_does() {
    register_all();
    let mut g = Rng(0x9e37_79b9_7f4a_7c15);
    let mut read = 0;
    for _ in 0..3000 {
        let p = payload(&mut g);
        agrees(&p);
        read += usize::from(fast_call_reason(&p).is_some());
    }
    // Most valid payloads take the fast path (the test would prove nothing otherwise).
    assert!(read > 400, "only {read} of 3000 read by the fast path");
    let call = |f: &str, args: Vec<Term>| {
        let p = Term::List(vec![
            reference(&mut Rng(7)),
            Term::atom(MODULE),
            Term::atom(f),
            Term::List(args),
        ]);
        fast_call_reason(&p.encode())
    };
    let r = call("int2", vec![Term::Int(1), Term::Int(2)]).expect("fast path");
    let Term::Tuple(el) = r else {
        panic!("a tuple")
    };
    assert_eq!(el[1], Term::atom("return"));
    assert_eq!(el[2], Term::Tuple(vec![Term::Int(1), Term::Int(2)]));
    // An argument of the wrong type: left to the term path (function_clause).
    assert!(call("int2", vec![Term::Int(1), Term::atom("x")]).is_none());
    assert!(term_path(
        &Term::List(vec![
            reference(&mut Rng(7)),
            Term::atom(MODULE),
            Term::atom("int2"),
            Term::List(vec![Term::Int(1), Term::atom("x")]),
        ])
        .encode()
    )
    .is_some_and(|t| t.to_string().contains("function_clause")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Mutated payloads (bytes replaced, cut short, extended): the fast path either
    /// leaves them to the `Term` path or answers exactly as it does.
    #[test]
    fn agrees_with_the_term_path_on_mutations(
        seed in 1u64..,
        edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4),
        cut in any::<u16>(),
        extra in proptest::collection::vec(any::<u8>(), 0..3),
    ) {
        register_all();
        let mut g = Rng(seed);
        let mut b = payload(&mut g);
        agrees(&b);
        for (at, v) in edits {
            let i = at as usize % b.len();
            // Half the edits write a tag or a boundary value, the shapes that matter.
            const TAGS: [u8; 22] = [
                70, 77, 88, 90, 97, 98, 99, 100, 104, 105, 106, 107, 108, 109, 110, 111, 115,
                118, 119, 116, 0, 255,
            ];
            b[i] = if v & 1 == 0 { TAGS[(v >> 1) as usize % TAGS.len()] } else { v };
        }
        agrees(&b);
        b.truncate(cut as usize % (b.len() + 1));
        agrees(&b);
        b.extend_from_slice(&extra);
        agrees(&b);
    }
}
