//! A proptest strategy for arbitrary terms the BEAM can represent.

use orbit_term::{Atom, BigInt, Pid, Port, Reference, Term};
use proptest::prelude::*;

fn atom() -> impl Strategy<Value = Atom> {
    prop_oneof![
        Just("ok".to_string()),
        "[a-z_]{0,12}",
        "\\PC{0,20}",
        Just("é".repeat(255)),
    ]
    .prop_map(|s| Atom::try_new(&s).expect("short atom"))
}

fn node() -> impl Strategy<Value = Atom> {
    "[a-z]{1,8}@[a-z]{1,8}".prop_map(|s| Atom::try_new(&s).expect("short atom"))
}

fn leaf() -> impl Strategy<Value = Term> {
    prop_oneof![
        any::<i64>().prop_map(Term::Int),
        (0i64..300).prop_map(Term::Int),
        (-3i64..3).prop_map(|i| Term::Float(i as f64)),
        (-3i64..3).prop_map(|i| Term::Float(i as f64 + 0.5)),
        (-3i64..3).prop_map(Term::Int),
        Just(Term::Float(2f64.powi(64))),
        Just(Term::Float(-(2f64.powi(70)))),
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(neg, bytes)| {
            let sign = if neg {
                num_bigint::Sign::Minus
            } else {
                num_bigint::Sign::Plus
            };
            Term::big(BigInt::from_bytes_le(sign, &bytes))
        }),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Term::Float),
        atom().prop_map(Term::Atom),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Term::Binary),
        (proptest::collection::vec(any::<u8>(), 1..8), 1u8..8)
            .prop_map(|(b, bits)| Term::bitstring(b, bits)),
        (node(), any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(n, id, s, c)| Term::from(Pid::new(n, id & 0x7fff, s & 0x1fff, c))),
        (node(), any::<u64>(), any::<u32>()).prop_map(|(n, id, c)| Term::from(Port::new(n, id, c))),
        (
            node(),
            any::<u32>(),
            proptest::collection::vec(any::<u32>(), 3..=3)
        )
            .prop_map(|(n, c, ids)| Term::from(Reference::new(n, c, &ids).expect("3 words"))),
        (atom(), atom(), any::<u8>()).prop_map(|(module, function, arity)| {
            Term::from(orbit_term::Export {
                module,
                function,
                arity,
            })
        }),
        "\\PC{0,6}".prop_map(|s| Term::charlist(&s)),
        Just(Term::nil()),
        "[a-z]{0,10}".prop_map(|s| Term::charlist(&s)),
    ]
}

/// Any term, nested up to a few levels.
pub fn term() -> impl Strategy<Value = Term> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Term::Tuple),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Term::List),
            (proptest::collection::vec(inner.clone(), 1..4), leaf())
                .prop_filter("non-list tail", |(_, t)| !matches!(t, Term::List(_)))
                .prop_map(|(v, t)| Term::improper_list(v, t)),
            proptest::collection::vec((inner.clone(), inner), 0..6).prop_map(|mut kv| {
                // Map keys are unique under exact comparison, as on the BEAM.
                let mut seen: Vec<Term> = Vec::new();
                kv.retain(|(k, _)| {
                    if seen.iter().any(|s| s.exact_eq(k)) {
                        false
                    } else {
                        seen.push(k.clone());
                        true
                    }
                });
                Term::Map(kv)
            }),
        ]
    })
}
