//! Edge cases produced by a real `erl` (term_to_binary) decode to the expected terms, and
//! Orbit's encodings (plain and compressed) are read back by binary_to_term as `=:=`.

mod common;

use common::{hex, unhex, Erl};
use num_bigint::BigInt;
use orbit_term::{from_slice, to_vec, ExStruct, Term, MAX_ATOM_CHARS};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    age: u32,
    email: Option<String>,
    tags: Vec<String>,
    score: f64,
    admin: bool,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Msg {
    Login { user: String, token: Option<u64> },
    Move(i32, i32),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Uri {
    host: String,
    port: u16,
}

/// Typed values that must equal the `serde_*` cases of corpus.erl: decoded from the
/// BEAM's bytes with serde, and encoded with serde for `binary_to_term` to compare.
fn serde_case(name: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    fn check<T>(bytes: &[u8], want: T) -> Vec<u8>
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        assert_eq!(from_slice::<T>(bytes).expect("serde decode"), want);
        to_vec(&want).expect("serde encode")
    }
    Some(match name {
        "serde_user" => check(
            bytes,
            User {
                name: "José".into(),
                age: 41,
                email: None,
                tags: vec!["a".into(), "b".into()],
                score: 1.5,
                admin: true,
            },
        ),
        "serde_login" => check(
            bytes,
            Msg::Login {
                user: "u".into(),
                token: Some(9),
            },
        ),
        "serde_move" => check(bytes, Msg::Move(1, -2)),
        "serde_uri" => check(
            bytes,
            ExStruct::new(
                "Elixir.URI",
                Uri {
                    host: "x".into(),
                    port: 80,
                },
            ),
        ),
        _ => return None,
    })
}

fn pow256(n: u32) -> BigInt {
    BigInt::from(1) << (8 * n)
}

fn expected(name: &str, node: &str) -> Option<Term> {
    if let Some(rest) = name.strip_prefix("int_") {
        let parse = |p: &str| rest.strip_prefix(p).and_then(|n| n.parse::<u32>().ok());
        if let Some(n) = parse("pos_m1_") {
            return Some(Term::big(pow256(n) - 1));
        }
        if let Some(n) = parse("neg_p1_") {
            return Some(Term::big(-pow256(n) + 1));
        }
        if let Some(n) = parse("pos_") {
            return Some(Term::big(pow256(n)));
        }
        if let Some(n) = parse("neg_") {
            return Some(Term::big(-pow256(n)));
        }
    }
    let seq = |a: i64, b: i64| Term::List((a..=b).map(Term::Int).collect());
    Some(match name {
        "int_i32_max" => Term::Int(2147483647),
        "int_i32_over" => Term::Int(2147483648),
        "int_i32_min" => Term::Int(-2147483648),
        "int_i32_under" => Term::Int(-2147483649),
        "int_zero" => Term::Int(0),
        "int_m1" => Term::Int(-1),
        "float_zero" => Term::Float(0.0),
        "float_neg_zero" => Term::Float(-0.0),
        "float_1_5" => Term::Float(1.5),
        "float_big" => Term::Float(1.0e300),
        "float_tiny" => Term::Float(5.0e-324),
        "float_neg" => Term::Float(-123.456),
        "atom_empty" => Term::atom(""),
        "atom_ok" => Term::atom("ok"),
        "atom_unicode_255" => Term::atom(&"\u{1F600}".repeat(MAX_ATOM_CHARS)),
        "atom_latin1_255" => Term::atom(&"é".repeat(MAX_ATOM_CHARS)),
        "map_empty" => Term::Map(vec![]),
        "map_nested" => Term::Map(vec![
            (
                Term::atom("a"),
                Term::Map(vec![(Term::atom("b"), Term::Map(vec![]))]),
            ),
            (Term::from("k"), seq(1, 2)),
        ]),
        "map_int_float_keys" => Term::Map(vec![
            (Term::Int(1), Term::Float(1.0)),
            (Term::Float(1.0), Term::Int(1)),
        ]),
        "map_100" => Term::Map(
            (1..=100)
                .map(|i| (Term::Int(i), Term::from(i.to_string())))
                .collect(),
        ),
        "improper_1" => Term::improper_list(vec![Term::Int(1)], Term::Int(2)),
        "improper_2" => {
            Term::improper_list(vec![Term::atom("a"), Term::atom("b")], Term::atom("c"))
        }
        "improper_bin" => Term::improper_list(vec![Term::atom("a")], Term::from("t")),
        "nil" => Term::nil(),
        "string_hello" => Term::charlist("hello"),
        "list_unicode" => Term::List(vec![Term::Int(256), Term::Int(1000)]),
        "string_65535" => Term::charlist(&"a".repeat(65535)),
        "string_65536" => Term::charlist(&"a".repeat(65536)),
        "binary_empty" => Term::Binary(vec![]),
        "binary_65535" => Term::Binary(vec![b'b'; 65535]),
        "binary_65536" => Term::Binary(vec![b'b'; 65536]),
        "bits_1" => Term::bitstring(vec![0x80], 1),
        "bits_18" => Term::bitstring(vec![255, 0xC0], 2),
        "tuple_empty" => Term::Tuple(vec![]),
        "tuple_256" => Term::Tuple((1..=256).map(Term::Int).collect()),
        "tuple_nested" => Term::Tuple(vec![
            Term::atom("ok"),
            Term::Tuple(vec![
                Term::atom("error"),
                Term::Tuple(vec![
                    seq(1, 1),
                    Term::Map(vec![(Term::atom("x"), Term::Tuple(vec![]))]),
                ]),
            ]),
        ]),
        "compressed_seq" => seq(1, 1000),
        "compressed_bin" => Term::Binary(vec![0; 100_000]),
        "compressed_map" => Term::Map(vec![
            (Term::atom("list"), seq(1, 300)),
            (Term::atom("node"), Term::atom(node)),
        ]),
        _ => return None,
    })
}

/// Checks the cases whose value only the live node knows.
fn check_structural(name: &str, t: &Term, node: &str) {
    match (name, t) {
        ("pid_self", Term::Pid(p)) => assert_eq!(p.node.as_str(), node),
        ("ref", Term::Reference(r)) => {
            assert_eq!(r.node.as_str(), node);
            assert_eq!(r.ids().len(), 3);
        }
        ("port", Term::Port(p)) => assert_eq!(p.node.as_str(), node),
        ("export", Term::Export(e)) => {
            assert_eq!(
                (e.module.as_str(), e.function.as_str(), e.arity),
                ("erlang", "self", 0)
            )
        }
        ("fun_closure", Term::Fun(f)) => {
            assert_eq!(f.module.as_str(), "erl_eval");
            assert_eq!(f.arity, 1);
            assert_eq!(f.pid.node.as_str(), node);
        }
        _ => panic!("{name}: unexpected {t:?}"),
    }
}

#[test]
fn erl_corpus_decodes_and_our_encoding_reads_back() {
    if !common::erl_available() {
        return;
    }
    let script = include_str!("erl/corpus.erl");
    let mut erl = Erl::start(script, true);
    let mut cases = Vec::new();
    loop {
        let line = erl.line();
        if line == "END" {
            break;
        }
        let (name, h) = line.split_once(' ').expect("name hex");
        cases.push((name.to_string(), unhex(h)));
    }
    assert!(cases.len() > 1000, "only {} cases", cases.len());
    let node = match Term::decode(&cases.iter().find(|c| c.0 == "pid_self").expect("pid").1) {
        Ok(Term::Pid(p)) => p.node.as_str().to_string(),
        other => panic!("pid_self: {other:?}"),
    };
    for (name, bytes) in &cases {
        let t = Term::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(ours) = serde_case(name, bytes) {
            erl.send(&format!("{name} {}", hex(&ours)));
            erl.send(&format!("{name} {}", hex(&t.encode())));
            continue;
        }
        match expected(name, &node) {
            Some(want) => {
                assert!(t.exact_eq(&want), "{name}: decoded {t:?}");
                if let (Term::Float(a), Term::Float(b)) = (&t, &want) {
                    assert_eq!(a.to_bits(), b.to_bits(), "{name}: float bits");
                }
            }
            None => check_structural(name, &t, &node),
        }
        // Atom-free cases are byte-identical; OTP 25 still writes Latin-1 atoms with
        // the legacy ATOM_EXT tag, which we decode but never write.
        let atom_free = [
            "int_", "float_", "string_", "binary_", "bits_", "nil", "list_",
        ];
        if atom_free.iter().any(|p| name.starts_with(p)) || name == "tuple_256" {
            assert_eq!(
                &t.encode(),
                bytes,
                "{name}: encoding differs from term_to_binary"
            );
        }
        erl.send(&format!("{name} {}", hex(&t.encode())));
        let c = t.encode_compressed(6).expect("compress");
        erl.send(&format!("{name} {}", hex(&c)));
    }
    erl.send("END");
    let mut failures = Vec::new();
    let mut ok = 0;
    loop {
        let line = erl.line();
        if line == "DONE" {
            break;
        }
        if line.ends_with(" ok") {
            ok += 1;
        } else {
            failures.push(line);
        }
    }
    erl.finish();
    assert!(
        failures.is_empty(),
        "binary_to_term disagreed: {failures:#?}"
    );
    assert_eq!(ok, cases.len() * 2);
}
