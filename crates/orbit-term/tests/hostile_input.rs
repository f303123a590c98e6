//! Hostile and edge-case input that `binary_to_term` handles, checked against what
//! OTP 25's `binary_to_term` answers (the expected values below were taken from a real
//! `erl`): decoding stays linear, deep nesting cannot overflow the stack, and the decoder
//! accepts exactly the texts erl accepts.

use std::time::{Duration, Instant};

use orbit_term::{atom, DecodeLimits, Fun, Pid, Term};

/// `[0, 1, ..., | tail]` written as `links` chained LIST_EXT headers of `per_link`
/// small integers each (each header's tail is the next header).
fn chained_list(links: usize, per_link: usize, tail: &[u8]) -> Vec<u8> {
    let mut v = vec![131];
    let mut i = 0usize;
    for _ in 0..links {
        v.push(108);
        v.extend_from_slice(&(per_link as u32).to_be_bytes());
        for _ in 0..per_link {
            v.extend_from_slice(&[97, (i % 251) as u8]);
            i += 1;
        }
    }
    v.extend_from_slice(tail);
    v
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// A chain of list headers costs what a flat list of the same length costs. Before the
/// fix, each link copied the rest of the list: 500 links of 4,000 elements (2 M
/// elements, 4 MB) took minutes in a debug build against about a second flat.
#[test]
fn chained_lists_decode_in_linear_time() {
    let links = 500;
    let per = 4_000;
    let flat = chained_list(1, links * per, &[106]);
    let chained = chained_list(links, per, &[106]);
    // Warm the allocator, then time each twice and keep the faster.
    let _ = Term::decode(&flat).expect("flat list");
    let best = |bytes: &[u8]| {
        (0..2)
            .map(|_| time(|| Term::decode(bytes).expect("decodes")).1)
            .min()
            .expect("two runs")
    };
    let t_flat = best(&flat);
    let t_chained = best(&chained);
    let term = Term::decode(&chained).expect("chained list");
    match &term {
        Term::List(v) => assert_eq!(v.len(), links * per),
        other => panic!("expected a proper list, got {other:?}"),
    }
    // The flat list holds the same elements in the same order.
    assert!(term.exact_eq(&Term::decode(&flat).expect("flat")));
    // Linear: the chain may cost a few times the flat list (headers, re-reserving), never
    // the hundreds of times a quadratic decode costs. Slack: 4x plus 1 s for a loaded box.
    assert!(
        t_chained < t_flat * 4 + Duration::from_secs(1),
        "chained {t_chained:?} vs flat {t_flat:?}"
    );
}

/// A tail-chained list is one list to `binary_to_term`, however many headers it has: it
/// is not nesting, so it does not hit `max_depth`, and an improper tail stays the tail.
#[test]
fn chained_lists_are_one_list() {
    let t = Term::decode(&chained_list(100_000, 1, &[106])).expect("100k links");
    assert!(matches!(&t, Term::List(v) if v.len() == 100_000));
    // [0, 1, 2 | foo]
    let t = Term::decode(&chained_list(3, 1, &[119, 3, b'f', b'o', b'o'])).expect("improper");
    let want = Term::improper_list(
        vec![Term::Int(0), Term::Int(1), Term::Int(2)],
        Term::atom("foo"),
    );
    assert!(t.exact_eq(&want), "{t:?}");
    // A STRING_EXT tail is a proper list of bytes: [0 | "ab"] = [0, 97, 98].
    let t = Term::decode(&chained_list(1, 1, &[107, 0, 2, b'a', b'b'])).expect("string tail");
    assert!(t.exact_eq(&Term::List(vec![
        Term::Int(0),
        Term::Int(97),
        Term::Int(98)
    ])));
    // An empty header in the chain: [0 | [] ] is [0].
    let mut v = chained_list(1, 1, &[]);
    v.extend_from_slice(&[108, 0, 0, 0, 0, 106]);
    assert!(Term::decode(&v)
        .expect("empty link")
        .exact_eq(&Term::List(vec![Term::Int(0)])));
}

fn fun_of(free: Vec<Term>) -> Term {
    let pid = Pid::new(atom!("a@b"), 1, 0, 1);
    Term::Fun(Box::new(Fun {
        arity: 0,
        uniq: [7; 16],
        index: 0,
        module: atom!("m"),
        old_index: 0,
        old_uniq: 0,
        pid,
        free_vars: free,
    }))
}

fn nest(depth: usize, kind: &str) -> Term {
    let mut t = Term::atom("leaf");
    for _ in 0..depth {
        t = match kind {
            "tuple" => Term::tuple(vec![t]),
            "list" => Term::List(vec![t]),
            "map" => Term::Map(vec![(Term::Int(1), t)]),
            "fun" => fun_of(vec![t]),
            "improper" => Term::improper_list(vec![t], Term::Int(1)),
            _ => unreachable!("test kind"),
        };
    }
    t
}

/// Every nesting kind up to `max_depth` decodes on a 2 MB thread (tokio's worker stack
/// and Rust's default) in this build, debug or release; one level more is a clean
/// `max_depth` error. Nested funs overflowed the stack at 432 levels before.
#[test]
fn max_depth_fits_a_small_stack_for_every_kind() {
    let max = DecodeLimits::DEFAULT.max_depth;
    for kind in ["tuple", "list", "map", "fun", "improper"] {
        let ok = nest(max, kind).encode();
        let too_deep = nest(max + 1, kind).encode();
        let h = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let t = Term::decode(&ok).map_err(|e| e.to_string())?;
                let t2: Term = orbit_term::from_slice(&ok).map_err(|e| e.to_string())?;
                if !t.exact_eq(&t2) {
                    return Err("serde and decode differ".to_string());
                }
                let e = Term::decode(&too_deep).err().ok_or("too deep decoded")?;
                if !e.to_string().contains("max_depth") {
                    return Err(format!("wrong error {e}"));
                }
                let e = orbit_term::from_slice::<Term>(&too_deep)
                    .err()
                    .ok_or("too deep decoded by serde")?;
                if !e.to_string().contains("max_depth") {
                    return Err(format!("wrong serde error {e}"));
                }
                Ok::<(), String>(())
            })
            .expect("thread");
        h.join()
            .unwrap_or_else(|_| panic!("{kind}: decoder panicked"))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

/// With a depth limit far above what fits a thread's stack, decoding still cannot
/// overflow it: deep levels continue on extra stack segments.
#[test]
fn depth_is_stack_safe_whatever_the_limit() {
    let limits = DecodeLimits {
        max_depth: 1_000_000,
        ..DecodeLimits::DEFAULT
    };
    let mut v = vec![131];
    for _ in 0..50_000 {
        v.extend_from_slice(&[116, 0, 0, 0, 1, 97, 1]); // %{1 => ...}
    }
    v.push(106);
    let h = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let t = Term::decode_with(&v, &limits);
            let ok = t.is_ok();
            // Dropping a 50,000-deep term recurses too: forget it. This test is about the
            // decoder; `Term`'s drop and encode are bounded by the depth limit in use.
            std::mem::forget(t);
            ok
        })
        .expect("thread");
    assert!(h.join().expect("no stack overflow"));
}

#[test]
fn u128_above_i128_max_round_trips() {
    for v in [
        u128::MAX,
        1u128 << 127,
        (1u128 << 127) - 1,
        u64::MAX as u128 + 1,
        0,
    ] {
        let bytes = orbit_term::to_vec(&v).expect("encode");
        assert_eq!(orbit_term::from_slice::<u128>(&bytes).expect("decode"), v);
    }
    for v in [i128::MIN, i128::MAX, -1, i64::MIN as i128 - 1] {
        let bytes = orbit_term::to_vec(&v).expect("encode");
        assert_eq!(orbit_term::from_slice::<i128>(&bytes).expect("decode"), v);
    }
    // 2^128 fits neither.
    let mut big = vec![131, 110, 17, 0];
    big.extend_from_slice(&[0; 16]);
    big.push(1);
    assert!(orbit_term::from_slice::<u128>(&big).is_err());
    // A negative value does not fit u128.
    let bytes = orbit_term::to_vec(&(-5i128)).expect("encode");
    assert!(orbit_term::from_slice::<u128>(&bytes).is_err());
}

fn float_ext(text: &[u8]) -> Vec<u8> {
    let mut v = vec![131, 99];
    v.extend_from_slice(text);
    v.resize(2 + 31, 0);
    v
}

/// The FLOAT_EXT texts below, with the answers of OTP 25's `binary_to_term`.
#[test]
fn float_ext_accepts_exactly_what_erl_accepts() {
    let ok: &[(&str, f64)] = &[
        ("1.5", 1.5),
        ("+1.5", 1.5),
        ("1,5", 1.5),
        ("1.5e+3", 1500.0),
        ("1.5E3", 1500.0),
        ("1.5e0003", 1500.0),
        ("-0.0", -0.0),
        ("01.5", 1.5),
        ("1.50000000000000000000e+00", 1.5),
        ("1111111111111111111111111111.5", 1.111111111111111e27),
        ("1.5e-999", 0.0),
        ("4.9e-324", 5e-324),
        ("1.0e-310", 1.0e-310),
    ];
    for (text, want) in ok {
        let got = Term::decode(&float_ext(text.as_bytes()))
            .unwrap_or_else(|e| panic!("{text}: erl accepts it, we said {e}"));
        match got {
            Term::Float(f) => assert_eq!(f.to_bits(), want.to_bits(), "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    for text in [
        " 1.5", "1.5 ", "1e5", "inf", "nan", "1.5e999", "1.", ".5", "1.5e", "1.5\t", "",
    ] {
        assert!(
            Term::decode(&float_ext(text.as_bytes())).is_err(),
            "{text:?}: erl rejects it"
        );
    }
    // 31 characters and no NUL: rejected. Bytes after the NUL are ignored.
    let mut no_nul = vec![131, 99];
    no_nul.extend_from_slice(&[b'1'; 29]);
    no_nul.extend_from_slice(b".5");
    assert!(Term::decode(&no_nul).is_err());
    let mut junk = vec![131, 99];
    junk.extend_from_slice(b"1.5\0xyz");
    junk.resize(33, 0);
    assert!(matches!(Term::decode(&junk), Ok(Term::Float(f)) if f == 1.5));
}
