//! Erlang term order for [`Term`]: `Eq`, `Ord` and `Hash`.
//!
//! `number < atom < reference < fun < port < pid < tuple < map < nil < list < bitstring`.
//! Integers and floats compare by value, so `1 == 1.0` as with Erlang's `==` and as keys
//! of an `ordered_set`; [`Term::exact_eq`] is Erlang's `=:=`. Tuples compare by size then
//! elements; maps by size, then keys in map-key order (all integers before all floats),
//! then values in key order; map keys are always compared exactly. Lists compare cons
//! cell by cell, so improper tails take part. Bitstrings compare bit by bit. `0.0` and
//! `-0.0` are equal (as in OTP 25).

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use num_bigint::BigInt;
use num_traits::{FromPrimitive, ToPrimitive, Zero};

use crate::ids::Fun;
use crate::term::Term;

const EMPTY: &[Term] = &[];

fn rank(t: &Term) -> u8 {
    match t {
        Term::Int(_) | Term::BigInt(_) | Term::Float(_) => 0,
        Term::Atom(_) => 1,
        Term::Reference(_) => 2,
        Term::Fun(_) | Term::Export(_) => 3,
        Term::Port(_) => 4,
        Term::Pid(_) => 5,
        Term::Tuple(_) => 6,
        Term::Map(_) => 7,
        Term::List(l) if l.is_empty() => 8,
        Term::List(_) | Term::ImproperList(_) => 9,
        Term::Binary(_) | Term::BitBinary(_) => 10,
    }
}

/// Compares two terms; `exact` is `=:=` semantics (integers and floats are never equal,
/// all integers order before all floats, as in map keys).
pub(crate) fn compare(a: &Term, b: &Term, exact: bool) -> Ordering {
    let (ra, rb) = (rank(a), rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Term::Int(x), Term::Int(y)) => x.cmp(y),
        (Term::Atom(x), Term::Atom(y)) => x.cmp(y),
        (Term::Reference(x), Term::Reference(y)) => x.cmp(y),
        (Term::Port(x), Term::Port(y)) => x.cmp(y),
        (Term::Pid(x), Term::Pid(y)) => x.cmp(y),
        (Term::Tuple(x), Term::Tuple(y)) => x
            .len()
            .cmp(&y.len())
            .then_with(|| compare_slices(x, y, exact)),
        (Term::Map(x), Term::Map(y)) => compare_maps(x, y, exact),
        (Term::Binary(_) | Term::BitBinary(_), _) => compare_bits(a, b),
        (Term::List(_) | Term::ImproperList(_), _) => compare_lists(a, b, exact),
        (Term::Fun(_) | Term::Export(_), _) => compare_funs(a, b, exact),
        _ => compare_numbers(a, b, exact),
    }
}

fn compare_slices(x: &[Term], y: &[Term], exact: bool) -> Ordering {
    for (p, q) in x.iter().zip(y) {
        let o = compare(p, q, exact);
        if o != Ordering::Equal {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

fn compare_numbers(a: &Term, b: &Term, exact: bool) -> Ordering {
    let is_float = |t: &Term| matches!(t, Term::Float(_));
    if exact && is_float(a) != is_float(b) {
        return is_float(a).cmp(&is_float(b));
    }
    match (a, b) {
        (Term::Float(x), Term::Float(y)) => x.partial_cmp(y).unwrap_or_else(|| x.total_cmp(y)),
        (Term::Float(x), other) => int_vs_float(other, *x).reverse(),
        (other, Term::Float(y)) => int_vs_float(other, *y),
        _ => as_big(a).cmp(&as_big(b)),
    }
}

fn as_big(t: &Term) -> BigInt {
    match t {
        Term::Int(i) => BigInt::from(*i),
        Term::BigInt(b) => (**b).clone(),
        _ => BigInt::zero(),
    }
}

/// Compares an integer term with a float exactly, without rounding the integer.
fn int_vs_float(int: &Term, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Less;
    }
    if f.is_infinite() {
        return if f > 0.0 {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let t = f.trunc();
    let ti = match BigInt::from_f64(t) {
        Some(v) => v,
        None => return Ordering::Equal, // unreachable: finite floats convert
    };
    let o = match int {
        Term::Int(i) if t.abs() < 9.2e18 => (*i).cmp(&(t as i64)),
        _ => as_big(int).cmp(&ti),
    };
    if o != Ordering::Equal {
        return o;
    }
    let frac = f - t;
    if frac > 0.0 {
        Ordering::Less
    } else if frac < 0.0 {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn sorted_entries(m: &[(Term, Term)]) -> Vec<&(Term, Term)> {
    let mut v: Vec<&(Term, Term)> = m.iter().collect();
    v.sort_by(|p, q| compare(&p.0, &q.0, true));
    v
}

fn compare_maps(x: &[(Term, Term)], y: &[(Term, Term)], exact: bool) -> Ordering {
    if x.len() != y.len() {
        return x.len().cmp(&y.len());
    }
    // Fast path: same key order (typical of maps built the same way).
    if x.iter()
        .zip(y)
        .all(|(p, q)| compare(&p.0, &q.0, true).is_eq())
    {
        let (sx, sy) = (sorted_entries(x), sorted_entries(y));
        for (p, q) in sx.iter().zip(&sy) {
            let o = compare(&p.1, &q.1, exact);
            if o != Ordering::Equal {
                return o;
            }
        }
        return Ordering::Equal;
    }
    let (sx, sy) = (sorted_entries(x), sorted_entries(y));
    for (p, q) in sx.iter().zip(&sy) {
        let o = compare(&p.0, &q.0, true);
        if o != Ordering::Equal {
            return o;
        }
    }
    for (p, q) in sx.iter().zip(&sy) {
        let o = compare(&p.1, &q.1, exact);
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Splits a list term into its elements and its tail (`None` for nil).
fn list_parts(t: &Term) -> (&[Term], Option<&Term>) {
    match t {
        Term::List(l) => (l, None),
        Term::ImproperList(il) => (&il.elements, Some(&il.tail)),
        other => (EMPTY, Some(other)),
    }
}

fn is_list(t: &Term) -> bool {
    matches!(t, Term::List(_) | Term::ImproperList(_))
}

fn compare_lists(a: &Term, b: &Term, exact: bool) -> Ordering {
    let (mut xa, mut ta) = list_parts(a);
    let (mut xb, mut tb) = list_parts(b);
    loop {
        // Unfold list tails so unnormalized lists compare as the cons cells they mean.
        while let (true, Some(t)) = (xa.is_empty(), ta.filter(|t| is_list(t))) {
            (xa, ta) = list_parts(t);
        }
        while let (true, Some(t)) = (xb.is_empty(), tb.filter(|t| is_list(t))) {
            (xb, tb) = list_parts(t);
        }
        match (xa.split_first(), xb.split_first()) {
            (Some((p, ra)), Some((q, rb))) => {
                let o = compare(p, q, exact);
                if o != Ordering::Equal {
                    return o;
                }
                xa = ra;
                xb = rb;
            }
            (None, None) => {
                return match (ta, tb) {
                    (None, None) => Ordering::Equal,
                    (Some(p), None) => compare(p, &Term::List(Vec::new()), exact),
                    (None, Some(q)) => compare(&Term::List(Vec::new()), q, exact),
                    (Some(p), Some(q)) => compare(p, q, exact),
                }
            }
            // One side has reached its tail, the other is still a cons cell (rank 9).
            (None, Some(_)) => return rank_of_rest(ta).cmp(&9).then(Ordering::Less),
            (Some(_), None) => return 9.cmp(&rank_of_rest(tb)).then(Ordering::Greater),
        }
    }
}

fn rank_of_rest(t: Option<&Term>) -> u8 {
    t.map_or(8, rank)
}

fn compare_funs(a: &Term, b: &Term, exact: bool) -> Ordering {
    match (a, b) {
        (Term::Export(x), Term::Export(y)) => x.cmp(y),
        (Term::Fun(_), Term::Export(_)) => Ordering::Less,
        (Term::Export(_), Term::Fun(_)) => Ordering::Greater,
        (Term::Fun(x), Term::Fun(y)) => compare_closures(x, y, exact),
        _ => Ordering::Equal,
    }
}

fn compare_closures(x: &Fun, y: &Fun, exact: bool) -> Ordering {
    x.module
        .cmp(&y.module)
        .then_with(|| x.old_index.cmp(&y.old_index))
        .then_with(|| x.old_uniq.cmp(&y.old_uniq))
        .then_with(|| x.index.cmp(&y.index))
        .then_with(|| x.uniq.cmp(&y.uniq))
        .then_with(|| x.arity.cmp(&y.arity))
        .then_with(|| x.pid.cmp(&y.pid))
        .then_with(|| x.free_vars.len().cmp(&y.free_vars.len()))
        .then_with(|| compare_slices(&x.free_vars, &y.free_vars, exact))
}

/// Bytes and total bit length of a bitstring term.
fn bits_of(t: &Term) -> (&[u8], usize) {
    match t {
        Term::Binary(b) => (b, b.len() * 8),
        // Clamped so a hand-built value with `bits` outside 1..=8 cannot index past the end.
        Term::BitBinary(bb) if bb.bytes.is_empty() => (&bb.bytes, 0),
        Term::BitBinary(bb) => (
            &bb.bytes,
            (bb.bytes.len() - 1) * 8 + bb.bits.clamp(1, 8) as usize,
        ),
        _ => (&[], 0),
    }
}

fn compare_bits(a: &Term, b: &Term) -> Ordering {
    let ((ba, la), (bb, lb)) = (bits_of(a), bits_of(b));
    let common = la.min(lb);
    let full = common / 8;
    let o = ba[..full].cmp(&bb[..full]);
    if o != Ordering::Equal {
        return o;
    }
    let rest = common % 8;
    if rest > 0 {
        let mask = 0xffu8 << (8 - rest);
        let o = (ba[full] & mask).cmp(&(bb[full] & mask));
        if o != Ordering::Equal {
            return o;
        }
    }
    la.cmp(&lb)
}

impl Term {
    /// Erlang's `=:=`: like `==` but integers never equal floats (`1 =/= 1.0`).
    pub fn exact_eq(&self, other: &Term) -> bool {
        compare(self, other, true) == Ordering::Equal
    }

    /// Erlang term order with exact number comparison (integers before floats).
    pub fn exact_cmp(&self, other: &Term) -> Ordering {
        compare(self, other, true)
    }
}

impl PartialEq for Term {
    fn eq(&self, other: &Term) -> bool {
        compare(self, other, false) == Ordering::Equal
    }
}
impl Eq for Term {}

impl PartialOrd for Term {
    fn partial_cmp(&self, other: &Term) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Term {
    fn cmp(&self, other: &Term) -> Ordering {
        compare(self, other, false)
    }
}

fn hash_int<H: Hasher>(i: &BigInt, state: &mut H) {
    match i.to_i64() {
        Some(v) => v.hash(state),
        None => i.to_signed_bytes_le().hash(state),
    }
}

/// Consistent with `==`: numbers equal by value hash alike, maps hash regardless of
/// entry order, lists hash by cons cells.
impl Hash for Term {
    fn hash<H: Hasher>(&self, state: &mut H) {
        rank(self).hash(state);
        match self {
            Term::Int(i) => i.hash(state),
            Term::BigInt(b) => hash_int(b, state),
            Term::Float(f) => {
                if f.fract() == 0.0 && f.abs() < 9.2e18 {
                    (*f as i64).hash(state)
                } else if let (true, Some(b)) = (f.fract() == 0.0, BigInt::from_f64(*f)) {
                    hash_int(&b, state)
                } else {
                    f.to_bits().hash(state)
                }
            }
            Term::Atom(a) => a.hash(state),
            Term::Reference(r) => r.hash(state),
            Term::Export(e) => e.hash(state),
            Term::Fun(f) => {
                f.module.hash(state);
                f.index.hash(state);
                f.uniq.hash(state);
                f.free_vars.hash(state);
            }
            Term::Port(p) => p.hash(state),
            Term::Pid(p) => p.hash(state),
            Term::Tuple(t) => t.hash(state),
            Term::Map(m) => {
                m.len().hash(state);
                let mut sum = 0u64;
                for entry in m {
                    #[allow(deprecated)]
                    let mut h = std::hash::SipHasher::new();
                    entry.0.hash(&mut h);
                    entry.1.hash(&mut h);
                    sum = sum.wrapping_add(h.finish());
                }
                sum.hash(state);
            }
            Term::List(_) | Term::ImproperList(_) => {
                let (mut xs, mut tail) = list_parts(self);
                loop {
                    for x in xs {
                        x.hash(state);
                    }
                    match tail {
                        Some(t) if is_list(t) => (xs, tail) = list_parts(t),
                        Some(t) => {
                            0xffu8.hash(state);
                            t.hash(state);
                            break;
                        }
                        None => break,
                    }
                }
            }
            Term::Binary(_) | Term::BitBinary(_) => {
                let (bytes, len) = bits_of(self);
                len.hash(state);
                bytes.hash(state);
            }
        }
    }
}
