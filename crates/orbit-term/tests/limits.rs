//! Decoder safety and legacy tags, on hand-made bytes.

use orbit_term::{atom, Atom, DecodeLimits, Error, Pid, Port, Reference, Term};

fn nested_tuples(depth: usize) -> Vec<u8> {
    let mut v = vec![131];
    for _ in 0..depth {
        v.extend_from_slice(&[104, 1]);
    }
    v.push(106);
    v
}

fn limit_of(e: Error) -> &'static str {
    match e {
        Error::LimitExceeded { limit, .. } => limit,
        other => panic!("expected a limit error, got {other}"),
    }
}

#[test]
fn depth_is_bounded() {
    assert!(Term::decode(&nested_tuples(500)).is_ok());
    let e = Term::decode(&nested_tuples(100_000)).unwrap_err();
    assert_eq!(limit_of(e.clone()), "max_depth");
    assert!(e.to_string().contains("max_depth"), "{e}");
    // Lists nested as elements count; lists chained through their tails are one list
    // (see hostile_input.rs).
    let mut v = vec![131];
    for _ in 0..100_000 {
        v.extend_from_slice(&[108, 0, 0, 0, 1]);
    }
    v.extend(std::iter::repeat_n(106, 100_001));
    assert_eq!(limit_of(Term::decode(&v).unwrap_err()), "max_depth");
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
}

#[test]
fn serde_depth_is_bounded() {
    let tree = |depth: usize| {
        let mut v = vec![131];
        for _ in 0..depth {
            v.extend_from_slice(&[104, 2, 119, 4, b'n', b'o', b'd', b'e']);
        }
        v.extend_from_slice(&[119, 4, b'l', b'e', b'a', b'f']);
        v
    };
    assert!(orbit_term::from_slice::<Tree>(&tree(500)).is_ok());
    let e = orbit_term::from_slice::<Tree>(&tree(100_000))
        .err()
        .expect("too deep");
    assert_eq!(limit_of(e), "max_depth");
    assert!(orbit_term::from_slice::<Term>(&nested_tuples(500)).is_ok());
    let e = orbit_term::from_slice::<Term>(&nested_tuples(100_000)).unwrap_err();
    assert_eq!(limit_of(e), "max_depth");
}

#[test]
fn atoms_are_counted() {
    let mut v = vec![131, 108, 0, 0, 0, 10];
    for _ in 0..10 {
        v.extend_from_slice(&[119, 1, b'a']);
    }
    v.push(106);
    let limits = DecodeLimits {
        max_atoms: 5,
        ..DecodeLimits::DEFAULT
    };
    assert_eq!(
        limit_of(Term::decode_with(&v, &limits).unwrap_err()),
        "max_atoms"
    );
    assert!(Term::decode(&v).is_ok());
}

#[test]
fn lengths_are_checked_before_allocating() {
    for bytes in [
        &[131, 105, 0xff, 0xff, 0xff, 0xff][..],
        &[131, 108, 0xff, 0xff, 0xff, 0xff, 106],
        &[131, 116, 0xff, 0xff, 0xff, 0xff],
        &[131, 109, 0xff, 0xff, 0xff, 0xff, 1, 2],
        &[131, 107, 0xff, 0xff, 1],
    ] {
        match Term::decode(bytes).unwrap_err() {
            Error::LengthExceedsInput { .. } | Error::UnexpectedEof { .. } => {}
            other => panic!("{bytes:?}: {other}"),
        }
    }
    let e = Term::decode(&[131, 80, 0xff, 0xff, 0xff, 0xff, 0x78, 0x9c]).unwrap_err();
    assert_eq!(limit_of(e), "max_uncompressed_size");
    let e = Term::decode(&[131, 80, 0, 1, 0, 0, 0x78, 0x9c]).unwrap_err();
    assert!(matches!(e, Error::LengthExceedsInput { .. }), "{e}");
    let big = [131, 111, 0, 1, 0, 1, 0];
    let limits = DecodeLimits {
        max_big_int_bytes: 16,
        ..DecodeLimits::DEFAULT
    };
    assert_eq!(
        limit_of(Term::decode_with(&big, &limits).unwrap_err()),
        "max_big_int_bytes"
    );
}

#[test]
fn malformed_values_are_errors() {
    let nan = [131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0];
    assert!(Term::decode(&nan).is_err());
    assert!(matches!(
        Term::decode(&[131, 97, 1, 0]),
        Err(Error::TrailingBytes { .. })
    ));
    assert!(matches!(
        Term::decode(&[130, 97, 1]),
        Err(Error::BadVersion(130))
    ));
    assert!(matches!(
        Term::decode(&[131, 200]),
        Err(Error::UnknownTag { tag: 200, .. })
    ));
    assert!(
        Term::decode(&[131, 77, 0, 0, 0, 1, 0, 0xff]).is_err(),
        "0 bits"
    );
    assert!(
        Term::decode(&[131, 119, 2, 0xc3, 0x28]).is_err(),
        "bad UTF-8 atom"
    );
    let too_long: Vec<u8> = [131, 118, 1, 0]
        .iter()
        .copied()
        .chain([b'a'; 256])
        .collect();
    assert!(Term::decode(&too_long).is_err(), "256-char atom");
    assert!(
        Term::decode(&[131, 90, 0, 6, 119, 1, b'n', 0, 0, 0, 0]).is_err(),
        "6-word ref"
    );
}

#[test]
fn legacy_tags_decode() {
    let node = |s: &str| Atom::try_new(s).unwrap();
    // ATOM_EXT and SMALL_ATOM_EXT are Latin-1.
    assert_eq!(
        Term::decode(&[131, 100, 0, 2, b'o', b'k']).unwrap(),
        Term::atom("ok")
    );
    assert_eq!(Term::decode(&[131, 115, 1, 0xe9]).unwrap(), Term::atom("é"));
    // FLOAT_EXT: 31 bytes of text.
    let mut f = vec![131, 99];
    let text = format!("{:.20e}", 1.5f64);
    f.extend_from_slice(text.as_bytes());
    f.resize(2 + 31, 0);
    assert_eq!(Term::decode(&f).unwrap(), Term::Float(1.5));
    // PID_EXT, PORT_EXT, REFERENCE_EXT, NEW_REFERENCE_EXT with 8-bit creation.
    let pid = [131, 103, 100, 0, 1, b'n', 0, 0, 0, 5, 0, 0, 0, 1, 3];
    assert_eq!(
        Term::decode(&pid).unwrap(),
        Term::from(Pid::new(node("n"), 5, 1, 3))
    );
    let port = [131, 102, 100, 0, 1, b'n', 0, 0, 0, 9, 2];
    assert_eq!(
        Term::decode(&port).unwrap(),
        Term::from(Port::new(node("n"), 9, 2))
    );
    let r = [131, 101, 100, 0, 1, b'n', 0, 0, 0, 7, 1];
    assert_eq!(
        Term::decode(&r).unwrap(),
        Term::from(Reference::new(node("n"), 1, &[7]).unwrap())
    );
    let r = [131, 114, 0, 2, 100, 0, 1, b'n', 2, 0, 0, 0, 7, 0, 0, 0, 8];
    assert_eq!(
        Term::decode(&r).unwrap(),
        Term::from(Reference::new(node("n"), 2, &[7, 8]).unwrap())
    );
}

#[test]
fn v4_port_and_compressed_round_trip() {
    let p = Term::from(Port::new(atom!("a@b"), 1 << 40, 9));
    let bytes = p.encode();
    assert_eq!(bytes[1], 120);
    assert_eq!(Term::decode(&bytes).unwrap(), p);
    let t = Term::List((0..1000).map(Term::Int).collect());
    let c = t.encode_compressed(9).unwrap();
    assert!(c.len() < t.encode().len());
    assert_eq!(Term::decode(&c).unwrap(), t);
    // A compressed term in a stream: decode_prefix stops at the end of the zlib data.
    let mut stream = c.clone();
    stream.extend_from_slice(&Term::Int(7).encode());
    let (first, used) = Term::decode_prefix(&stream, &DecodeLimits::DEFAULT).unwrap();
    assert_eq!((first, used), (t, c.len()));
    assert!(matches!(
        Term::decode(&stream),
        Err(Error::TrailingBytes { .. })
    ));
}

#[test]
fn term_order_basics() {
    use std::collections::BTreeMap;
    let order = [
        Term::Int(-1),
        Term::Float(0.5),
        Term::Int(1),
        Term::atom("a"),
        Term::from(Reference::new(atom!("n"), 0, &[1]).unwrap()),
        Term::from(Port::new(atom!("n"), 1, 0)),
        Term::from(Pid::new(atom!("n"), 1, 0, 0)),
        Term::Tuple(vec![]),
        Term::Map(vec![]),
        Term::nil(),
        Term::List(vec![Term::Int(1)]),
        Term::Binary(vec![]),
    ];
    for w in order.windows(2) {
        assert!(w[0] < w[1], "{:?} < {:?}", w[0], w[1]);
    }
    assert_eq!(Term::Int(1), Term::Float(1.0));
    assert!(!Term::Int(1).exact_eq(&Term::Float(1.0)));
    let mut m = BTreeMap::new();
    m.insert(Term::Int(1), "int");
    m.insert(Term::Float(1.0), "float");
    assert_eq!(m.len(), 1, "ordered_set semantics: 1 == 1.0");
    let h = |t: &Term| {
        use std::hash::{Hash, Hasher};
        let mut s = std::collections::hash_map::DefaultHasher::new();
        t.hash(&mut s);
        s.finish()
    };
    assert_eq!(h(&Term::Int(1)), h(&Term::Float(1.0)));
    let m1 = Term::Map(vec![
        (Term::atom("a"), Term::Int(1)),
        (Term::atom("b"), Term::Int(2)),
    ]);
    let m2 = Term::Map(vec![
        (Term::atom("b"), Term::Int(2)),
        (Term::atom("a"), Term::Int(1)),
    ]);
    assert_eq!(m1, m2);
    assert_eq!(h(&m1), h(&m2));
}
