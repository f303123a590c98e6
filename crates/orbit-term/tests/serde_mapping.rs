//! The serde mapping of the crate docs, checked value by value, plus round trips.

use std::collections::{BTreeMap, HashMap};

use orbit_term::{
    atom, from_slice, from_slice_owned, from_term, to_term, to_vec, to_vec_compressed, Atom,
    Charlist, ExStruct, Pid, Reference, Term,
};
use serde::{Deserialize, Serialize};

fn a(s: &str) -> Term {
    Term::atom(s)
}

fn map(entries: Vec<(Term, Term)>) -> Term {
    Term::Map(entries)
}

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
    Ping,
    Echo(String),
    Move(i32, i32),
    Login { user: String, token: Option<u64> },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Envelope {
    from: Pid,
    tag: Reference,
    kind: Atom,
    payload: Term,
    path: Charlist,
    #[serde(with = "serde_bytes")]
    blob: Vec<u8>,
    pair: (i64, String),
    unit: (),
}

fn pid() -> Pid {
    Pid::new(atom!("a@host"), 42, 1, 7)
}

fn reference() -> Reference {
    Reference::new(atom!("a@host"), 7, &[1, 2, 3]).unwrap()
}

fn user() -> User {
    User {
        name: "José".into(),
        age: 41,
        email: None,
        tags: vec!["a".into(), "b".into()],
        score: 1.5,
        admin: true,
    }
}

#[test]
fn struct_is_a_map_with_atom_keys() {
    let t = to_term(&user()).unwrap();
    let want = map(vec![
        (a("name"), Term::from("José")),
        (a("age"), Term::Int(41)),
        (a("email"), a("nil")),
        (
            a("tags"),
            Term::List(vec![Term::from("a"), Term::from("b")]),
        ),
        (a("score"), Term::Float(1.5)),
        (a("admin"), a("true")),
    ]);
    assert!(t.exact_eq(&want), "{t:?}");
    let bytes = to_vec(&user()).unwrap();
    assert_eq!(from_slice::<User>(&bytes).unwrap(), user());
    assert_eq!(from_term::<User>(&want).unwrap(), user());
}

#[test]
fn enum_variants_are_atoms_and_tagged_tuples() {
    let cases = vec![
        (Msg::Ping, a("ping")),
        (
            Msg::Echo("hi".into()),
            Term::Tuple(vec![a("echo"), Term::from("hi")]),
        ),
        (
            Msg::Move(1, -2),
            Term::Tuple(vec![a("move"), Term::Int(1), Term::Int(-2)]),
        ),
        (
            Msg::Login {
                user: "u".into(),
                token: Some(9),
            },
            Term::Tuple(vec![
                a("login"),
                map(vec![
                    (a("user"), Term::from("u")),
                    (a("token"), Term::Int(9)),
                ]),
            ]),
        ),
    ];
    for (msg, want) in cases {
        let t = to_term(&msg).unwrap();
        assert!(t.exact_eq(&want), "{msg:?} -> {t:?}");
        assert_eq!(from_term::<Msg>(&want).unwrap(), msg);
    }
    assert!(from_term::<Msg>(&Term::Tuple(vec![a("move"), Term::Int(1)])).is_err());
    assert!(from_term::<Msg>(&a("nope")).is_err());
}

#[test]
fn special_types_keep_their_etf_form() {
    let env = Envelope {
        from: pid(),
        tag: reference(),
        kind: atom!("cast"),
        payload: Term::Tuple(vec![
            Term::from(pid()),
            Term::improper_list(vec![Term::Int(1)], Term::Int(2)),
        ]),
        path: Charlist("/tmp".into()),
        blob: vec![1, 2, 3],
        pair: (-5, "x".into()),
        unit: (),
    };
    let t = to_term(&env).unwrap();
    assert_eq!(t.map_get(&a("from")), Some(&Term::from(pid())));
    assert_eq!(t.map_get(&a("tag")), Some(&Term::from(reference())));
    assert_eq!(t.map_get(&a("kind")), Some(&a("cast")));
    assert_eq!(t.map_get(&a("path")), Some(&Term::charlist("/tmp")));
    assert_eq!(t.map_get(&a("blob")), Some(&Term::Binary(vec![1, 2, 3])));
    assert_eq!(
        t.map_get(&a("pair")),
        Some(&Term::Tuple(vec![Term::Int(-5), Term::from("x")]))
    );
    assert_eq!(t.map_get(&a("unit")), Some(&a("nil")));
    assert!(t.map_get(&a("payload")).unwrap().exact_eq(&env.payload));
    let bytes = to_vec(&env).unwrap();
    assert_eq!(from_slice::<Envelope>(&bytes).unwrap(), env);
    let c = to_vec_compressed(&env, 6).unwrap();
    assert!(
        from_slice::<Envelope>(&c).is_err(),
        "borrowing decode refuses compressed"
    );
    assert_eq!(from_slice_owned::<Envelope>(&c).unwrap(), env);
}

#[test]
fn maps_options_numbers() {
    let mut m = HashMap::new();
    m.insert("k".to_string(), vec![1u8, 2]);
    let t = to_term(&m).unwrap();
    assert!(t.exact_eq(&map(vec![(Term::from("k"), Term::charlist("\u{1}\u{2}"))])));
    assert_eq!(from_term::<HashMap<String, Vec<u8>>>(&t).unwrap(), m);

    let mut b = BTreeMap::new();
    b.insert(3i64, Some(1.25f32));
    b.insert(-1, None);
    assert_eq!(
        from_slice::<BTreeMap<i64, Option<f32>>>(&to_vec(&b).unwrap()).unwrap(),
        b
    );

    for v in [0u64, 255, 256, u32::MAX as u64, i64::MAX as u64, u64::MAX] {
        assert_eq!(from_slice::<u64>(&to_vec(&v).unwrap()).unwrap(), v);
    }
    for v in [i128::MIN, -1, i128::MAX] {
        assert_eq!(from_slice::<i128>(&to_vec(&v).unwrap()).unwrap(), v);
    }
    assert!(from_slice::<u8>(&to_vec(&300u32).unwrap()).is_err());
    assert_eq!(to_term(&u64::MAX).unwrap(), Term::from(u64::MAX));
    assert_eq!(from_slice::<f64>(&to_vec(&3i32).unwrap()).unwrap(), 3.0);
    assert_eq!(from_slice::<char>(&to_vec(&'é').unwrap()).unwrap(), 'é');
    let enc = Term::from("borrowed").encode();
    let s: &str = from_slice(&enc).unwrap();
    assert_eq!(s, "borrowed");
    assert_eq!(from_term::<String>(&a("atom_ok")).unwrap(), "atom_ok");
    assert!(from_term::<Atom>(&Term::from("bin")).is_err());
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Uri {
    host: String,
    port: u16,
}

#[test]
fn elixir_struct_form() {
    let s = ExStruct::new(
        "Elixir.URI",
        Uri {
            host: "x".into(),
            port: 80,
        },
    );
    let t = to_term(&s).unwrap();
    let want = map(vec![
        (a("__struct__"), a("Elixir.URI")),
        (a("host"), Term::from("x")),
        (a("port"), Term::Int(80)),
    ]);
    assert!(t.exact_eq(&want), "{t:?}");
    let back: ExStruct<Uri> = from_term(&want).unwrap();
    assert_eq!(back, s);
    assert!(to_term(&ExStruct::new(
        "Elixir.X",
        vec![Uri {
            host: "h".into(),
            port: 1
        }]
    ))
    .is_err());
    assert!(to_term(&ExStruct::new("Elixir.X", "text")).is_err());
    // A plain struct ignores the __struct__ key.
    assert_eq!(from_term::<Uri>(&want).unwrap(), s.value);
    assert!(from_term::<ExStruct<Uri>>(&map(vec![
        (a("host"), Term::from("x")),
        (a("port"), Term::Int(1))
    ]))
    .is_err());
}

#[test]
fn raw_term_round_trips_inside_other_formats_and_ours() {
    let t = Term::Tuple(vec![
        a("ok"),
        Term::from(pid()),
        Term::bitstring(vec![0xff], 3),
    ]);
    let back: Term = from_slice(&to_vec(&t).unwrap()).unwrap();
    assert!(back.exact_eq(&t));
    assert_eq!(to_vec(&t).unwrap(), t.encode());
}
