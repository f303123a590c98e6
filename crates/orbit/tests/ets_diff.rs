//! Differential test: seeded random operation sequences on Orbit's ETS and on OTP's `ets`
//! (a real `erl`), results compared exactly.
//!
//! All four table types; insert, insert_new (single and list), lookup, delete,
//! delete_object, take, update_counter (`{Pos, Incr}`, `{Pos, Incr, Threshold, SetValue}`,
//! a list of them, the default-object form), update_element (`{Pos, Value}` and a list),
//! match_object on the key and on element 2, first/next/last/prev walks, and match
//! specifications: `select` and `select_reverse` (bodies `'$1'`, `'$_'`, `{{'$1','$3'}}`),
//! `select_count`, `select_delete` (bodies `true`/`false`) and `match_delete`, with one
//! or two clauses whose heads bind the key, an element, or nothing, and whose guards
//! compare the key or an element (`>`, `=:=`, and a key range, which Orbit runs as
//! `Pattern::range`). Each generated clause is written both as an Orbit `MatchSpec` of
//! closures and as Erlang match specification text. Objects are
//! `{Key, A, B}` (`Table<i64, Term>` with `V = {A, B}`); `A`/`B` are small integers or the
//! atom `x` (a non-integer counter). Where OTP leaves the order unspecified (iteration
//! and match results of hash tables) both sides are sorted; `lookup`/`take` of bags are
//! compared in order.
//!
//! The batch of sequences runs in ONE `erl -noshell`. On a mismatch the failing sequence is
//! shrunk with proptest (one `erl` run per step, at most `MAX_SHRINK` steps) and printed.
//! Seed: `ORBIT_ETS_DIFF_SEED` (u64, default fixed); batch size `ORBIT_ETS_DIFF_N`.
//! Skipped (with a message) when `erl` is not on the PATH.

use std::fmt::Write as _;
use std::process::Command;

use orbit::ets::{CounterOp, EtsError, MatchSpec, Pattern, Table, TableType};
use orbit_term::Term;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const ERL_SRC: &str = include_str!("ets_diff/ets_diff.erl");
const MAX_SHRINK: usize = 100;

#[derive(Clone, Debug, PartialEq)]
enum El {
    I(i64),
    X,
}

/// `{Pos, Incr}` or `{Pos, Incr, Threshold, SetValue}`.
type CounterUpd = (usize, i64, Option<(i64, i64)>);

#[derive(Clone, Debug)]
enum Op {
    Insert(Vec<(i64, El, El)>, bool),
    InsertNew(Vec<(i64, El, El)>, bool),
    Lookup(i64),
    Delete(i64),
    DeleteObject(i64, El, El),
    Take(i64),
    Counter(i64, Vec<CounterUpd>, bool, Option<(El, El)>),
    Element(i64, Vec<(usize, El)>, bool),
    MatchKey(i64),
    MatchElem(El),
    Walk,
    /// `ets:select/2` (`rev`: `ets:select_reverse/2`).
    Select(Vec<Clause<TBody>>, bool),
    /// `ets:select_count/2`.
    SelectCount(Vec<Clause<bool>>),
    /// `ets:select_delete/2`, then the whole table.
    SelectDelete(Vec<Clause<bool>>),
    /// `ets:match_delete/2`, then the whole table.
    MatchDelete(Head),
}

/// A match specification clause's head, as far as it constrains the object.
#[derive(Clone, Debug)]
enum Head {
    /// `{'$1','$2','$3'}`.
    Any,
    /// `{K,'$2','$3'}` (a bound key).
    Key(i64),
    /// `{'$1','$2','$3'}` with guards `'$1' >= Lo, '$1' < Hi` (Orbit: `Pattern::range`).
    Range(i64, i64),
    /// `{'$1',A,'$3'}`.
    Elem(El),
}

/// One guard test (all of a clause's guards must hold).
#[derive(Clone, Debug)]
enum Guard {
    /// `{'>', '$1', N}`.
    KeyGt(i64),
    /// `{'>', '$2', N}` in term order (the atom `x` is greater than every integer).
    AGt(i64),
    /// `{'=:=', '$3', B}`.
    BEq(El),
}

/// A `select` body.
#[derive(Clone, Debug)]
enum TBody {
    /// `'$1'`.
    Key,
    /// `'$_'`.
    Obj,
    /// `{{'$1','$3'}}`.
    KeyB,
}

#[derive(Clone, Debug)]
struct Clause<B> {
    head: Head,
    guards: Vec<Guard>,
    body: B,
}

fn el() -> impl Strategy<Value = El> {
    prop_oneof![6 => (-3i64..4).prop_map(El::I), 1 => Just(El::X)]
}

fn key() -> impl Strategy<Value = i64> {
    0i64..5
}

fn obj() -> impl Strategy<Value = (i64, El, El)> {
    (key(), el(), el())
}

fn counter_op() -> impl Strategy<Value = CounterUpd> {
    (1usize..5, -4i64..5, prop::option::of((-5i64..6, -2i64..3)))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(obj(), 1..5).prop_flat_map(|v| {
            let single = v.len() == 1;
            (Just(v), if single { any::<bool>().boxed() } else { Just(true).boxed() })
        }).prop_map(|(v, l)| Op::Insert(v, l)),
        2 => prop::collection::vec(obj(), 1..4).prop_flat_map(|v| {
            let single = v.len() == 1;
            (Just(v), if single { any::<bool>().boxed() } else { Just(true).boxed() })
        }).prop_map(|(v, l)| Op::InsertNew(v, l)),
        3 => key().prop_map(Op::Lookup),
        1 => key().prop_map(Op::Delete),
        1 => obj().prop_map(|(k, a, b)| Op::DeleteObject(k, a, b)),
        1 => key().prop_map(Op::Take),
        3 => (key(), prop::collection::vec(counter_op(), 1..4), any::<bool>(),
              prop::option::of((el(), el())))
            .prop_map(|(k, ops, list, d)| {
                let list = list || ops.len() > 1;
                Op::Counter(k, ops, list, d)
            }),
        2 => (key(), prop::collection::vec((1usize..5, el()), 1..3), any::<bool>())
            .prop_map(|(k, us, list)| {
                let list = list || us.len() > 1;
                Op::Element(k, us, list)
            }),
        1 => key().prop_map(Op::MatchKey),
        1 => el().prop_map(Op::MatchElem),
        1 => Just(Op::Walk),
        2 => (clauses(tbody()), any::<bool>()).prop_map(|(c, rev)| Op::Select(c, rev)),
        1 => clauses(bbody()).prop_map(Op::SelectCount),
        1 => clauses(bbody()).prop_map(Op::SelectDelete),
        1 => prop_oneof![
            Just(Head::Any),
            key().prop_map(Head::Key),
            el().prop_map(Head::Elem),
        ]
        .prop_map(Op::MatchDelete),
    ]
}

fn head() -> impl Strategy<Value = Head> {
    prop_oneof![
        2 => Just(Head::Any),
        2 => key().prop_map(Head::Key),
        2 => (-1i64..5, 0i64..4).prop_map(|(lo, w)| Head::Range(lo, lo + w)),
        1 => el().prop_map(Head::Elem),
    ]
}

fn guard() -> impl Strategy<Value = Guard> {
    prop_oneof![
        (-1i64..5).prop_map(Guard::KeyGt),
        (-4i64..4).prop_map(Guard::AGt),
        el().prop_map(Guard::BEq),
    ]
}

fn clauses<B: Clone + std::fmt::Debug>(
    body: impl Strategy<Value = B>,
) -> impl Strategy<Value = Vec<Clause<B>>> {
    prop::collection::vec(
        (head(), prop::collection::vec(guard(), 0..3), body)
            .prop_map(|(head, guards, body)| Clause { head, guards, body }),
        1..3,
    )
}

fn tbody() -> impl Strategy<Value = TBody> {
    prop_oneof![Just(TBody::Key), Just(TBody::Obj), Just(TBody::KeyB)]
}

fn bbody() -> impl Strategy<Value = bool> {
    prop_oneof![4 => Just(true), 1 => Just(false)]
}

fn kind() -> impl Strategy<Value = TableType> {
    prop_oneof![
        Just(TableType::Set),
        Just(TableType::OrderedSet),
        Just(TableType::Bag),
        Just(TableType::DuplicateBag),
    ]
}

fn seq() -> impl Strategy<Value = (TableType, Vec<Op>)> {
    (kind(), prop::collection::vec(op(), 1..25))
}

// ---- Erlang text -----------------------------------------------------------------------

fn e(x: &El) -> String {
    match x {
        El::I(i) => i.to_string(),
        El::X => "x".into(),
    }
}

fn type_name(t: TableType) -> &'static str {
    match t {
        TableType::Set => "set",
        TableType::OrderedSet => "ordered_set",
        TableType::Bag => "bag",
        TableType::DuplicateBag => "duplicate_bag",
    }
}

fn objs(v: &[(i64, El, El)], list: bool) -> String {
    let os: Vec<String> = v
        .iter()
        .map(|(k, a, b)| format!("{{{k},{},{}}}", e(a), e(b)))
        .collect();
    if list {
        format!("[{}]", os.join(","))
    } else {
        os[0].clone()
    }
}

fn erl_op(op: &Op) -> String {
    match op {
        Op::Insert(v, l) => format!("{{insert,{}}}", objs(v, *l)),
        Op::InsertNew(v, l) => format!("{{insert_new,{}}}", objs(v, *l)),
        Op::Lookup(k) => format!("{{lookup,{k}}}"),
        Op::Delete(k) => format!("{{delete,{k}}}"),
        Op::DeleteObject(k, a, b) => format!("{{delete_object,{{{k},{},{}}}}}", e(a), e(b)),
        Op::Take(k) => format!("{{take,{k}}}"),
        Op::Counter(k, ops, list, d) => {
            let us: Vec<String> = ops
                .iter()
                .map(|(p, i, t)| match t {
                    None => format!("{{{p},{i}}}"),
                    Some((t, s)) => format!("{{{p},{i},{t},{s}}}"),
                })
                .collect();
            let u = if *list {
                format!("[{}]", us.join(","))
            } else {
                us[0].clone()
            };
            match d {
                None => format!("{{counter,{k},{u}}}"),
                Some((a, b)) => format!("{{counter,{k},{u},{{{k},{},{}}}}}", e(a), e(b)),
            }
        }
        Op::Element(k, us, list) => {
            let us: Vec<String> = us
                .iter()
                .map(|(p, v)| format!("{{{p},{}}}", e(v)))
                .collect();
            let u = if *list {
                format!("[{}]", us.join(","))
            } else {
                us[0].clone()
            };
            format!("{{element,{k},{u}}}")
        }
        Op::MatchKey(k) => format!("{{match_key,{k}}}"),
        Op::MatchElem(a) => format!("{{match_elem,{}}}", e(a)),
        Op::Walk => "walk".into(),
        Op::Select(c, false) => format!("{{select,{}}}", erl_ms(c, erl_tbody)),
        Op::Select(c, true) => format!("{{select_reverse,{}}}", erl_ms(c, erl_tbody)),
        Op::SelectCount(c) => format!("{{select_count,{}}}", erl_ms(c, erl_bbody)),
        Op::SelectDelete(c) => format!("{{select_delete,{}}}", erl_ms(c, erl_bbody)),
        Op::MatchDelete(h) => {
            let p = match h {
                Head::Key(k) => format!("{{{k},'_','_'}}"),
                Head::Elem(a) => format!("{{'_',{},'_'}}", e(a)),
                Head::Any | Head::Range(..) => "{'_','_','_'}".into(),
            };
            format!("{{match_delete,{p}}}")
        }
    }
}

/// The head's key: `'$1'`, or the literal key when the head binds it.
fn var1(h: &Head) -> String {
    match h {
        Head::Key(k) => k.to_string(),
        _ => "'$1'".into(),
    }
}

fn erl_tbody(h: &Head, b: &TBody) -> String {
    match b {
        TBody::Key => var1(h),
        TBody::Obj => "'$_'".into(),
        TBody::KeyB => format!("{{{{{},'$3'}}}}", var1(h)),
    }
}

fn erl_bbody(_: &Head, b: &bool) -> String {
    b.to_string()
}

/// The Erlang match specification for the clauses.
fn erl_ms<B>(cs: &[Clause<B>], body: fn(&Head, &B) -> String) -> String {
    let cs: Vec<String> = cs
        .iter()
        .map(|c| {
            let head = match &c.head {
                Head::Key(k) => format!("{{{k},'$2','$3'}}"),
                Head::Elem(a) => format!("{{'$1',{},'$3'}}", e(a)),
                Head::Any | Head::Range(..) => "{'$1','$2','$3'}".into(),
            };
            let mut gs = Vec::new();
            if let Head::Range(lo, hi) = c.head {
                gs.push(format!("{{'>=','$1',{lo}}}"));
                gs.push(format!("{{'<','$1',{hi}}}"));
            }
            let v2 = match &c.head {
                Head::Elem(a) => e(a),
                _ => "'$2'".into(),
            };
            for g in &c.guards {
                gs.push(match g {
                    Guard::KeyGt(n) => format!("{{'>',{},{n}}}", var1(&c.head)),
                    Guard::AGt(n) => format!("{{'>',{v2},{n}}}"),
                    Guard::BEq(b) => format!("{{'=:=','$3',{}}}", e(b)),
                });
            }
            format!("{{{head},[{}],[{}]}}", gs.join(","), body(&c.head, &c.body))
        })
        .collect();
    format!("[{}]", cs.join(","))
}

fn erl_seq((t, ops): &(TableType, Vec<Op>)) -> String {
    let ops: Vec<String> = ops.iter().map(erl_op).collect();
    format!("{{{},[{}]}}.\n", type_name(*t), ops.join(","))
}

// ---- Orbit side ------------------------------------------------------------------------

fn term(x: &El) -> Term {
    match x {
        El::I(i) => Term::Int(*i),
        El::X => Term::atom("x"),
    }
}

fn val(a: &El, b: &El) -> Term {
    Term::Tuple(vec![term(a), term(b)])
}

/// `~w` of a term built only from integers, atoms, tuples and lists.
fn w(t: &Term) -> String {
    match t {
        Term::Tuple(es) => format!("{{{}}}", es.iter().map(w).collect::<Vec<_>>().join(",")),
        Term::List(es) => format!("[{}]", es.iter().map(w).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

fn obj_w(k: i64, v: &Term) -> String {
    match v {
        Term::Tuple(es) => {
            let mut s = format!("{{{k}");
            for e in es {
                let _ = write!(s, ",{}", w(e));
            }
            s + "}"
        }
        other => format!("{{{k},{}}}", w(other)),
    }
}

fn list<T>(v: impl IntoIterator<Item = T>, f: impl Fn(T) -> String) -> String {
    format!("[{}]", v.into_iter().map(f).collect::<Vec<_>>().join(","))
}

fn res<T>(r: Result<T, EtsError>, f: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(x) => f(x),
        Err(_) => "badarg".into(),
    }
}

fn srt(kind: TableType, mut v: Vec<String>) -> Vec<String> {
    if kind != TableType::OrderedSet {
        v.sort();
    }
    v
}

fn srt_objs(kind: TableType, mut v: Vec<(i64, Term)>) -> String {
    if kind != TableType::OrderedSet {
        v.sort();
    }
    list(v, |(k, v)| obj_w(k, &v))
}

/// Element `i` (0: `A`, 1: `B`) of a value `{A, B}`.
fn elem(v: &Term, i: usize) -> Option<&Term> {
    match v {
        Term::Tuple(es) => es.get(i),
        _ => None,
    }
}

/// Erlang's `=:=` on the terms this test builds (integers and atoms only: exact).
fn exact(a: &Term, b: &Term) -> bool {
    a == b && a.to_string() == b.to_string()
}

/// The Orbit pattern for a clause: the head's key part plus every guard as a closure.
fn pattern(h: &Head, guards: &[Guard]) -> Pattern<i64, Term> {
    let mut p = match h {
        Head::Any => Pattern::any(),
        Head::Key(k) => Pattern::key(*k),
        Head::Range(lo, hi) => Pattern::range(*lo..*hi),
        Head::Elem(a) => {
            let a = term(a);
            Pattern::any().when(move |_, v: &Term| elem(v, 0).is_some_and(|x| exact(x, &a)))
        }
    };
    for g in guards {
        p = match g.clone() {
            Guard::KeyGt(n) => p.when(move |k, _| *k > n),
            Guard::AGt(n) => {
                p.when(move |_, v: &Term| elem(v, 0).is_some_and(|x| *x > Term::Int(n)))
            }
            Guard::BEq(b) => {
                let b = term(&b);
                p.when(move |_, v: &Term| elem(v, 1).is_some_and(|x| exact(x, &b)))
            }
        };
    }
    p
}

fn t_spec(cs: &[Clause<TBody>]) -> MatchSpec<i64, Term, Term> {
    cs.iter().fold(MatchSpec::new(), |ms, c| {
        let p = pattern(&c.head, &c.guards);
        match c.body {
            TBody::Key => ms.clause(p, |k, _| Term::Int(*k)),
            TBody::Obj => ms.clause(p, |k, v| {
                let mut es = vec![Term::Int(*k)];
                if let Term::Tuple(vs) = v {
                    es.extend(vs.iter().cloned());
                }
                Term::Tuple(es)
            }),
            TBody::KeyB => ms.clause(p, |k, v| {
                Term::Tuple(vec![
                    Term::Int(*k),
                    elem(v, 1).cloned().unwrap_or_else(Term::nil),
                ])
            }),
        }
    })
}

fn b_spec(cs: &[Clause<bool>]) -> MatchSpec<i64, Term, bool> {
    cs.iter().fold(MatchSpec::new(), |ms, c| {
        let b = c.body;
        ms.clause(pattern(&c.head, &c.guards), move |_, _| b)
    })
}

/// The whole table, as `ets:tab2list/1` (sorted on hash tables).
fn dump(kind: TableType, t: &Table<i64, Term>) -> String {
    res(t.match_object(&Pattern::any()), |v| srt_objs(kind, v))
}

fn run_orbit((kind, ops): &(TableType, Vec<Op>)) -> String {
    let kind = *kind;
    let t: Table<i64, Term> = Table::builder().kind(kind).public().build().unwrap();
    let b = |x: bool| x.to_string();
    let mut out = Vec::new();
    for op in ops {
        let r = match op {
            Op::Insert(v, _) => res(
                t.insert_many(v.iter().map(|(k, a, b)| (*k, val(a, b)))),
                |_| "true".into(),
            ),
            Op::InsertNew(v, _) => res(
                t.insert_new_many(v.iter().map(|(k, a, b)| (*k, val(a, b)))),
                b,
            ),
            Op::Lookup(k) => res(t.lookup(k), |v| list(v, |(k, v)| obj_w(k, &v))),
            Op::Delete(k) => res(t.delete(k), |_| "true".into()),
            Op::DeleteObject(k, a, bb) => res(t.delete_object(k, &val(a, bb)), |_| "true".into()),
            Op::Take(k) => res(t.take(k), |v| list(v, |(k, v)| obj_w(k, &v))),
            Op::Counter(k, ops, is_list, d) => {
                let ops: Vec<(usize, CounterOp)> = ops
                    .iter()
                    .map(|(p, i, th)| {
                        (
                            *p,
                            match th {
                                None => CounterOp::incr(*i),
                                Some((t, s)) => CounterOp::threshold(*i, *t, *s),
                            },
                        )
                    })
                    .collect();
                let r = match d {
                    None => t.update_counters(k, &ops),
                    Some((a, bb)) => t.update_counters_or(k, &ops, val(a, bb)),
                };
                res(r, |v| {
                    if *is_list {
                        list(v.iter(), w)
                    } else {
                        w(&v[0])
                    }
                })
            }
            Op::Element(k, us, _) => {
                let us: Vec<(usize, Term)> = us.iter().map(|(p, v)| (*p, term(v))).collect();
                res(t.update_elements(k, &us), b)
            }
            Op::MatchKey(k) => res(t.match_object(&Pattern::key(*k)), |v| srt_objs(kind, v)),
            Op::MatchElem(a) => {
                let a = term(a);
                // Erlang matching is exact (1 does not match 1.0): compare printed forms too.
                let p = Pattern::any().when(move |_, v: &Term| {
                    matches!(v, Term::Tuple(es) if es.first().is_some_and(|e| e == &a && e.to_string() == a.to_string()))
                });
                res(t.match_object(&p), |v| srt_objs(kind, v))
            }
            Op::Select(cs, rev) => {
                let spec = t_spec(cs);
                let r = if *rev {
                    t.select_reverse(&spec)
                } else {
                    t.select(&spec)
                };
                res(r, |mut v| {
                    if kind != TableType::OrderedSet {
                        v.sort();
                    }
                    list(v.iter(), w)
                })
            }
            Op::SelectCount(cs) => res(t.select_count(&b_spec(cs)), |n| n.to_string()),
            Op::SelectDelete(cs) => res(t.select_delete(&b_spec(cs)), |n| {
                format!("{{{n},{}}}", dump(kind, &t))
            }),
            Op::MatchDelete(h) => res(t.match_delete(&pattern(h, &[])), |_| {
                format!("{{true,{}}}", dump(kind, &t))
            }),
            Op::Walk => {
                let mut f = Vec::new();
                let mut c = t.first().unwrap();
                while let Some(k) = c {
                    f.push(k.to_string());
                    c = t.next(&k).unwrap();
                }
                let mut bw = Vec::new();
                let mut c = t.last().unwrap();
                while let Some(k) = c {
                    bw.push(k.to_string());
                    c = t.prev(&k).unwrap();
                }
                format!(
                    "{{{},{}}}",
                    list(srt(kind, f), |s| s),
                    list(srt(kind, bw), |s| s)
                )
            }
        };
        out.push(r);
    }
    format!("[{}]", out.join(","))
}

// ---- the erl runner --------------------------------------------------------------------

fn erl_available() -> bool {
    Command::new("erl")
        .args(["-noshell", "-eval", "halt()."])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs all sequences in one `erl`; one result line per sequence.
fn run_erl(seqs: &[(TableType, Vec<Op>)]) -> Vec<String> {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "orbit-ets-diff-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("ets_diff.erl");
    std::fs::write(&src, ERL_SRC).unwrap();
    let input = dir.join("in.txt");
    let output = dir.join("out.txt");
    std::fs::write(&input, seqs.iter().map(erl_seq).collect::<String>()).unwrap();
    let eval = format!(
        "{{ok,M,B}} = compile:file(\"{}\", [binary,report]), {{module,M}} = code:load_binary(M, \"ets_diff.erl\", B), M:main(\"{}\", \"{}\"), halt().",
        src.display(),
        input.display(),
        output.display()
    );
    let o = Command::new("erl")
        .args(["-noshell", "-eval", &eval])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "erl failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&output).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), seqs.len(), "erl wrote {text}");
    lines
}

#[test]
fn ets_matches_otp_on_random_sequences() {
    if !erl_available() {
        eprintln!("SKIPPED: `erl` is not on the PATH; install Erlang/OTP 25 to run the ETS differential test");
        return;
    }
    let seed: u64 = std::env::var("ORBIT_ETS_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0e75_d1ff);
    let n: usize = std::env::var("ORBIT_ETS_DIFF_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    );
    let strat = seq();
    let mut trees: Vec<_> = (0..n)
        .map(|_| strat.new_tree(&mut runner).unwrap())
        .collect();
    let seqs: Vec<_> = trees.iter().map(|t| t.current()).collect();
    let want = run_erl(&seqs);
    let Some(bad) = (0..n).find(|&i| run_orbit(&seqs[i]) != want[i]) else {
        return;
    };
    // Shrink the first failing sequence: one erl run per step.
    let tree = &mut trees[bad];
    let fails = |s: &(TableType, Vec<Op>)| run_orbit(s) != run_erl(std::slice::from_ref(s))[0];
    let mut min = tree.current();
    let mut steps = 0;
    let mut more = tree.simplify();
    while more && steps < MAX_SHRINK {
        steps += 1;
        let cur = tree.current();
        more = if fails(&cur) {
            min = cur;
            tree.simplify()
        } else {
            tree.complicate()
        };
    }
    panic!(
        "Orbit differs from OTP's ets (seed {seed}, sequence {bad}, shrunk {steps} steps):\n  ops: {}\n  otp:   {}\n  orbit: {}",
        erl_seq(&min).trim_end(),
        run_erl(std::slice::from_ref(&min))[0],
        run_orbit(&min)
    );
}
