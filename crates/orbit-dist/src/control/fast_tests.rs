//! The fast readers against the general path: for random valid and mutated control
//! bytes, [`parse_fast`] either returns `None` or exactly what `Term::decode_prefix` +
//! [`Control::parse`] read (same length, same values).

use orbit_term::{Atom, DecodeLimits, Reference, Term};
use proptest::prelude::*;

use super::*;
use crate::control::{Control, VERSION};

/// The connection's limits.
const LIMITS: DecodeLimits = DecodeLimits {
    max_depth: 64,
    ..DecodeLimits::DEFAULT
};

/// A small xorshift generator: the test's terms come from one seed.
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
    let names = [
        "a@h",
        "orbit_erpc_target_12345_0@127.0.0.1",
        "orbit_erpc_driver_54321_0@127.0.0.1",
        "ñode@høst",
    ];
    Atom::try_new(names[g.below(names.len() as u64) as usize]).unwrap()
}

fn pid(g: &mut Rng) -> orbit_term::Pid {
    orbit_term::Pid::new(
        node(g),
        g.below(1 << 20) as u32,
        g.below(8) as u32,
        g.next() as u32,
    )
}

fn reference(g: &mut Rng) -> Reference {
    let words: Vec<u32> = (0..1 + g.below(5)).map(|_| g.next() as u32).collect();
    Reference::new(node(g), g.next() as u32, &words).unwrap()
}

fn atom(g: &mut Rng) -> Term {
    let names = [
        "ok",
        "monitor",
        "link",
        "erpc",
        "execute_call",
        "notsup",
        "return",
    ];
    Term::atom(names[g.below(names.len() as u64) as usize])
}

/// Any term, nested up to `depth` levels.
fn term(g: &mut Rng, depth: u32) -> Term {
    let leaf = depth == 0 || g.below(3) == 0;
    match g.below(if leaf { 6 } else { 9 }) {
        0 => Term::Int(g.below(300) as i64),
        1 => Term::Int(g.next() as i64),
        2 => atom(g),
        3 => Term::Pid(Box::new(pid(g))),
        4 => Term::Reference(Box::new(reference(g))),
        5 => Term::Binary(vec![g.next() as u8; g.below(4) as usize]),
        6 => Term::Tuple((0..g.below(4)).map(|_| term(g, depth - 1)).collect()),
        7 => Term::List((0..g.below(4)).map(|_| term(g, depth - 1)).collect()),
        _ => Term::Float(g.below(1000) as f64 / 7.0),
    }
}

/// A reason nested exactly `n` tuples deep (around the depth limit).
fn deep(n: u32) -> Term {
    (0..n).fold(Term::atom("x"), |t, _| Term::Tuple(vec![t]))
}

fn int(v: i64) -> Term {
    Term::Int(v)
}

/// A valid control tuple of one of the kinds the fast path reads (or a neighbour).
fn control(g: &mut Rng) -> Term {
    let p = |g: &mut Rng| Term::Pid(Box::new(pid(g)));
    let r = |g: &mut Rng| Term::Reference(Box::new(reference(g)));
    match g.below(9) {
        0 => Term::Tuple(vec![int(op::SEND), atom(g), p(g)]),
        1 => Term::Tuple(vec![int(op::SEND_SENDER), p(g), p(g)]),
        2 => Term::Tuple(vec![int(op::REG_SEND), p(g), atom(g), atom(g)]),
        3 => {
            let reason = match g.below(4) {
                0 => deep(61 + g.below(5) as u32),
                1 => Term::Tuple(vec![r(g), Term::atom("return"), term(g, 3)]),
                _ => term(g, 4),
            };
            Term::Tuple(vec![int(op::MONITOR_P_EXIT), p(g), p(g), r(g), reason])
        }
        4 => {
            let opts = match g.below(4) {
                0 => vec![],
                1 => vec![Term::atom("monitor")],
                2 => vec![Term::atom("link"), Term::atom("monitor")],
                _ => (0..g.below(3)).map(|_| term(g, 1)).collect(),
            };
            let mfa = if g.below(8) == 0 {
                term(g, 2)
            } else {
                Term::Tuple(vec![atom(g), atom(g), int(g.below(6) as i64)])
            };
            Term::Tuple(vec![
                int(op::SPAWN_REQUEST),
                r(g),
                p(g),
                p(g),
                mfa,
                Term::List(opts),
            ])
        }
        5 => {
            let result = match g.below(3) {
                0 => atom(g),
                1 => p(g),
                _ => term(g, 2),
            };
            Term::Tuple(vec![
                int(op::SPAWN_REPLY),
                r(g),
                p(g),
                int(g.below(4) as i64),
                result,
            ])
        }
        6 => Term::Tuple(vec![
            int(op::SPAWN_REPLY_TT),
            r(g),
            p(g),
            int(2),
            p(g),
            atom(g),
        ]),
        7 => Term::Tuple(vec![int(op::PAYLOAD_MONITOR_P_EXIT), p(g), p(g), r(g)]),
        _ => Term::Tuple(vec![int(op::MONITOR_P_EXIT), atom(g), p(g), r(g), atom(g)]),
    }
}

/// Checks `body` (a control term without the version byte, maybe followed by more).
fn agrees(body: &[u8]) {
    let Some((fast, used)) = parse_fast(body, &LIMITS) else {
        return;
    };
    let mut whole = vec![VERSION];
    whole.extend_from_slice(body);
    let (t, gused) = Term::decode_prefix(&whole, &LIMITS)
        .unwrap_or_else(|e| panic!("fast path read what does not decode ({e}): {body:?}"));
    assert_eq!(used + 1, gused, "lengths differ: {body:?}");
    let general = Control::parse(t.clone())
        .unwrap_or_else(|e| panic!("fast path read what does not parse ({e}): {t}"));
    assert_eq!(fast.has_payload(), general.has_payload(), "{t}");
    match (fast, general) {
        (Fast::Send { from, to }, Control::Send { from: f, to: t2 }) => {
            assert_eq!((from, to), (f, t2), "{t}")
        }
        (Fast::RegSend { from, name }, Control::RegSend { from: f, name: n }) => {
            assert_eq!((from, name), (f, n.as_str()), "{t}")
        }
        (
            Fast::MonitorExit { from, r, reason },
            Control::MonitorExit {
                from: f,
                r: r2,
                reason: Some(reason2),
                ..
            },
        ) => {
            assert!(Term::Pid(Box::new(from.decode())).exact_eq(&f), "{t}");
            assert_eq!(r, r2, "{t}");
            assert!(reason.exact_eq(&reason2), "{t}");
        }
        (Fast::SpawnRequest(s), Control::Claimable { op: o, control }) => {
            assert_eq!(o, op::SPAWN_REQUEST);
            assert!(
                s.to_term().exact_eq(&control),
                "{} vs {control}",
                s.to_term()
            );
        }
        (Fast::SpawnReply(s), Control::Claimable { op: o, control }) => {
            assert_eq!(o, op::SPAWN_REPLY);
            assert!(
                s.to_term().exact_eq(&control),
                "{} vs {control}",
                s.to_term()
            );
        }
        (f, c) => panic!("fast {f:?} vs general {c:?}"),
    }
}

fn encode(t: &Term) -> Vec<u8> {
    let mut b = Vec::new();
    t.encode_body(&mut b);
    b
}

#[test]
fn reads_what_orbit_writes() {
    // Valid controls of each kind: the fast path takes the common shapes.
    let mut g = Rng(0x9E37_79B9_7F4A_7C15);
    let mut taken = [0usize; 6];
    for _ in 0..4000 {
        let b = encode(&control(&mut g));
        agrees(&b);
        if let Some((f, _)) = parse_fast(&b, &LIMITS) {
            let k = match f {
                Fast::Send { from: None, .. } => 0,
                Fast::Send { .. } => 1,
                Fast::RegSend { .. } => 2,
                Fast::MonitorExit { .. } => 3,
                Fast::SpawnRequest(_) => 4,
                Fast::SpawnReply(_) => 5,
            };
            taken[k] += 1;
        }
    }
    assert!(taken.iter().all(|&n| n > 50), "kinds read: {taken:?}");
}

#[test]
fn erpc_request_options_and_reply_read_back() {
    let mut g = Rng(7);
    let (id, from) = (reference(&mut g), pid(&mut g));
    let req = Term::Tuple(vec![
        int(op::SPAWN_REQUEST),
        Term::Reference(Box::new(id.clone())),
        Term::Pid(Box::new(from.clone())),
        Term::Pid(Box::new(pid(&mut g))),
        Term::Tuple(vec![Term::atom("erpc"), Term::atom("execute_call"), int(4)]),
        Term::List(vec![Term::atom("link"), Term::atom("monitor")]),
    ]);
    let bytes = encode(&req);
    let Some((Fast::SpawnRequest(s), _)) = parse_fast(&bytes, &LIMITS) else {
        panic!("SPAWN_REQUEST not read");
    };
    assert_eq!(s.options().collect::<Vec<_>>(), ["link", "monitor"]);
    assert_eq!((s.id, s.from, s.arity), (id, from, 4));
    assert_eq!(
        (s.module.as_str(), s.function.as_str()),
        ("erpc", "execute_call")
    );
    // A reason one level too deep for the limits is left to the general path, which
    // refuses it.
    let too_deep = Term::Tuple(vec![
        int(op::MONITOR_P_EXIT),
        Term::Pid(Box::new(pid(&mut g))),
        Term::Pid(Box::new(pid(&mut g))),
        Term::Reference(Box::new(reference(&mut g))),
        deep(64),
    ]);
    let b = encode(&too_deep);
    assert!(parse_fast(&b, &LIMITS).is_none());
    let mut whole = vec![VERSION];
    whole.extend_from_slice(&b);
    assert!(Term::decode_prefix(&whole, &LIMITS).is_err());
    let ok = Term::Tuple(vec![
        int(op::MONITOR_P_EXIT),
        Term::Pid(Box::new(pid(&mut g))),
        Term::Pid(Box::new(pid(&mut g))),
        Term::Reference(Box::new(reference(&mut g))),
        deep(63),
    ]);
    assert!(parse_fast(&encode(&ok), &LIMITS).is_some());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Mutated controls (bytes replaced, cut short, extended): the fast path either
    /// leaves them to the general path or reads exactly what it reads.
    #[test]
    fn agrees_with_the_general_path_on_mutations(
        seed in 1u64..,
        edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4),
        cut in any::<u16>(),
        extra in proptest::collection::vec(any::<u8>(), 0..3),
    ) {
        let mut g = Rng(seed);
        let mut b = encode(&control(&mut g));
        for (at, v) in edits {
            let i = at as usize % b.len();
            // Half the edits write a tag or a boundary value, the shapes that matter.
            const TAGS: [u8; 16] = [88, 103, 119, 118, 100, 115, 97, 98, 104, 106, 107, 108, 90, 114, 0, 255];
            b[i] = if v & 1 == 0 { TAGS[(v >> 1) as usize % TAGS.len()] } else { v };
        }
        agrees(&b);
        b.truncate(cut as usize % (b.len() + 1));
        agrees(&b);
        b.extend_from_slice(&extra);
        agrees(&b);
    }
}
