//! Property tests: random operation sequences on each table type give the same results
//! as a simple model (a `BTreeMap<key, Vec<value>>`).

use std::collections::BTreeMap;

use orbit::ets::{CounterOp, MatchSpec, Pattern, Table, TableType};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, i64),
    InsertMany(Vec<(u8, i64)>),
    InsertNew(u8, i64),
    InsertNewMany(Vec<(u8, i64)>),
    Lookup(u8),
    Member(u8),
    Delete(u8),
    DeleteObject(u8, i64),
    Take(u8),
    Counter(u8, i64),
    CounterThreshold(u8, i64, i64, i64),
    CounterDefault(u8, i64, i64),
    UpdateElement(u8, i64),
    SelectCount(u8, u8),
    SelectDelete(u8, u8),
    SelectReplace(u8, u8),
    SelectKeys(u8, u8),
    MatchKey(u8),
    DeleteAll,
    Walk,
    Fold,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..16;
    let v = -3i64..4;
    prop_oneof![
        4 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::Insert(k, v)),
        1 => prop::collection::vec((k.clone(), v.clone()), 0..5).prop_map(Op::InsertMany),
        1 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::InsertNew(k, v)),
        1 => prop::collection::vec((k.clone(), v.clone()), 0..4).prop_map(Op::InsertNewMany),
        2 => k.clone().prop_map(Op::Lookup),
        1 => k.clone().prop_map(Op::Member),
        1 => k.clone().prop_map(Op::Delete),
        1 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::DeleteObject(k, v)),
        1 => k.clone().prop_map(Op::Take),
        2 => (k.clone(), -5i64..6).prop_map(|(k, i)| Op::Counter(k, i)),
        1 => (k.clone(), -5i64..6, -4i64..5, -2i64..3).prop_map(|(k, i, t, s)| Op::CounterThreshold(k, i, t, s)),
        1 => (k.clone(), -5i64..6, v.clone()).prop_map(|(k, i, d)| Op::CounterDefault(k, i, d)),
        1 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::UpdateElement(k, v)),
        1 => (k.clone(), k.clone()).prop_map(|(a, b)| Op::SelectCount(a, b)),
        1 => (k.clone(), k.clone()).prop_map(|(a, b)| Op::SelectDelete(a, b)),
        1 => (k.clone(), k.clone()).prop_map(|(a, b)| Op::SelectReplace(a, b)),
        1 => (k.clone(), k.clone()).prop_map(|(a, b)| Op::SelectKeys(a, b)),
        1 => k.clone().prop_map(Op::MatchKey),
        1 => Just(Op::DeleteAll),
        1 => Just(Op::Walk),
        1 => Just(Op::Fold),
    ]
}

struct Model {
    kind: TableType,
    m: BTreeMap<u8, Vec<i64>>,
}

impl Model {
    fn insert(&mut self, k: u8, v: i64) {
        let e = self.m.entry(k).or_default();
        match self.kind {
            TableType::Set | TableType::OrderedSet => *e = vec![v],
            TableType::Bag => {
                if !e.contains(&v) {
                    e.push(v)
                }
            }
            TableType::DuplicateBag => e.push(v),
        }
    }
    fn objects(&self) -> Vec<(u8, i64)> {
        self.m
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (*k, *v)))
            .collect()
    }
    fn is_set(&self) -> bool {
        matches!(self.kind, TableType::Set | TableType::OrderedSet)
    }
    fn cleanup(&mut self) {
        self.m.retain(|_, v| !v.is_empty());
    }
}

fn sorted(mut v: Vec<(u8, i64)>) -> Vec<(u8, i64)> {
    v.sort();
    v
}

/// Compares whole-table results: exact order on ordered_set; per key order elsewhere.
fn same_objects(kind: TableType, got: Vec<(u8, i64)>, want: Vec<(u8, i64)>) {
    if kind == TableType::OrderedSet {
        assert_eq!(got, want);
    } else {
        // Group by key keeping per-key order, then compare.
        let mut g: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for (k, v) in got {
            g.entry(k).or_default().push(v);
        }
        let mut w: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for (k, v) in want {
            w.entry(k).or_default().push(v);
        }
        assert_eq!(g, w);
    }
}

/// OTP 25 adds a list's objects to a `bag` from the end of the list, to any other table
/// type from its start.
fn list_order(kind: TableType, mut objs: Vec<(u8, i64)>) -> Vec<(u8, i64)> {
    if kind == TableType::Bag {
        objs.reverse();
    }
    objs
}

fn run(kind: TableType, ops: Vec<Op>, write_concurrency: bool) {
    let t: Table<u8, i64> = Table::builder()
        .kind(kind)
        .public()
        .write_concurrency(write_concurrency)
        .build()
        .unwrap();
    let mut m = Model {
        kind,
        m: BTreeMap::new(),
    };
    for op in ops {
        match op {
            Op::Insert(k, v) => {
                t.insert(k, v).unwrap();
                m.insert(k, v);
            }
            Op::InsertMany(objs) => {
                t.insert_many(objs.clone()).unwrap();
                for (k, v) in list_order(kind, objs) {
                    m.insert(k, v);
                }
            }
            Op::InsertNew(k, v) => {
                let ok = !m.m.contains_key(&k);
                assert_eq!(t.insert_new(k, v).unwrap(), ok);
                if ok {
                    m.insert(k, v);
                }
            }
            Op::InsertNewMany(objs) => {
                let ok = objs.iter().all(|(k, _)| !m.m.contains_key(k));
                assert_eq!(t.insert_new_many(objs.clone()).unwrap(), ok);
                if ok {
                    for (k, v) in list_order(kind, objs) {
                        m.insert(k, v);
                    }
                }
            }
            Op::Lookup(k) => {
                let want: Vec<(u8, i64)> =
                    m.m.get(&k)
                        .map(|vs| vs.iter().map(|v| (k, *v)).collect())
                        .unwrap_or_default();
                assert_eq!(t.lookup(&k).unwrap(), want);
                match t.lookup_elements(&k) {
                    Ok(vs) => assert_eq!(vs, m.m[&k]),
                    Err(_) => assert!(!m.m.contains_key(&k)),
                }
                if m.is_set() {
                    assert_eq!(
                        t.lookup_element_or(&k, 99).unwrap(),
                        m.m.get(&k).map(|v| v[0]).unwrap_or(99)
                    );
                }
            }
            Op::Member(k) => assert_eq!(t.member(&k).unwrap(), m.m.contains_key(&k)),
            Op::Delete(k) => {
                t.delete(&k).unwrap();
                m.m.remove(&k);
            }
            Op::DeleteObject(k, v) => {
                t.delete_object(&k, &v).unwrap();
                if let Some(vs) = m.m.get_mut(&k) {
                    vs.retain(|x| *x != v);
                }
                m.cleanup();
            }
            Op::Take(k) => {
                let want: Vec<(u8, i64)> =
                    m.m.remove(&k)
                        .map(|vs| vs.into_iter().map(|v| (k, v)).collect())
                        .unwrap_or_default();
                assert_eq!(t.take(&k).unwrap(), want);
            }
            Op::Counter(k, i) | Op::CounterThreshold(k, i, _, _) | Op::CounterDefault(k, i, _) => {
                let (opv, default) = match op {
                    Op::CounterThreshold(_, _, th, s) => (CounterOp::threshold(i, th, s), None),
                    Op::CounterDefault(_, _, d) => (CounterOp::incr(i), Some(d)),
                    _ => (CounterOp::incr(i), None),
                };
                let r = match default {
                    Some(d) => t.update_counter_or(&k, opv, d),
                    None => t.update_counter(&k, opv),
                };
                if !m.is_set() {
                    assert!(r.is_err());
                    continue;
                }
                let cur = m.m.get(&k).map(|v| v[0]).or(default);
                match cur {
                    None => assert!(r.is_err()),
                    Some(c) => {
                        let new = opv.apply(c as i128) as i64;
                        assert_eq!(r.unwrap(), new);
                        m.m.insert(k, vec![new]);
                    }
                }
            }
            Op::UpdateElement(k, v) => {
                let r = t.update_element(&k, v);
                if !m.is_set() {
                    assert!(r.is_err());
                    continue;
                }
                let present = m.m.contains_key(&k);
                assert_eq!(r.unwrap(), present);
                if present {
                    m.m.insert(k, vec![v]);
                }
            }
            Op::SelectCount(a, b) => {
                let spec = Pattern::range(a..=b).when(|_, v: &i64| *v >= 0).to_spec();
                let want = m
                    .objects()
                    .iter()
                    .filter(|(k, v)| (a..=b).contains(k) && *v >= 0)
                    .count();
                assert_eq!(t.select_count(&spec).unwrap(), want);
            }
            Op::SelectDelete(a, b) => {
                let spec = MatchSpec::new().clause(
                    Pattern::range(a..b).when(|_, v: &i64| *v % 2 == 0),
                    |_, _| true,
                );
                let want = m
                    .objects()
                    .iter()
                    .filter(|(k, v)| (a..b).contains(k) && *v % 2 == 0)
                    .count();
                assert_eq!(t.select_delete(&spec).unwrap(), want);
                for (k, vs) in m.m.iter_mut() {
                    if (a..b).contains(k) {
                        vs.retain(|v| *v % 2 != 0);
                    }
                }
                m.cleanup();
            }
            Op::SelectReplace(a, b) => {
                let spec = MatchSpec::new().clause(Pattern::range(a..=b), |_, v: &i64| v + 1);
                let r = t.select_replace(&spec);
                if kind == TableType::Bag {
                    assert!(r.is_err());
                    continue;
                }
                let want = m
                    .objects()
                    .iter()
                    .filter(|(k, _)| (a..=b).contains(k))
                    .count();
                assert_eq!(r.unwrap(), want);
                for (k, vs) in m.m.iter_mut() {
                    if (a..=b).contains(k) {
                        vs.iter_mut().for_each(|v| *v += 1);
                    }
                }
            }
            Op::SelectKeys(a, b) => {
                // Two exact-key clauses and a range clause, first match wins.
                let spec = MatchSpec::new()
                    .clause(Pattern::key(a), |k, v| (*k, *v, 0u8))
                    .clause(Pattern::key(b), |k, v| (*k, *v, 1u8));
                let mut want: Vec<(u8, i64, u8)> = m
                    .objects()
                    .into_iter()
                    .filter_map(|(k, v)| {
                        if k == a {
                            Some((k, v, 0))
                        } else if k == b {
                            Some((k, v, 1))
                        } else {
                            None
                        }
                    })
                    .collect();
                let mut got = t.select(&spec).unwrap();
                if kind == TableType::OrderedSet {
                    assert_eq!(got, want);
                    let mut rev = t.select_reverse(&spec).unwrap();
                    rev.reverse();
                    assert_eq!(rev, want);
                } else {
                    got.sort();
                    want.sort();
                    assert_eq!(got, want);
                }
            }
            Op::MatchKey(k) => {
                let want: Vec<(u8, i64)> =
                    m.m.get(&k)
                        .map(|vs| vs.iter().map(|v| (k, *v)).collect())
                        .unwrap_or_default();
                assert_eq!(t.match_object(&Pattern::key(k)).unwrap(), want);
                let vals = t
                    .match_with(&Pattern::any().when(move |kk, _| *kk == k), |_, v| *v)
                    .unwrap();
                assert_eq!(vals, want.iter().map(|(_, v)| *v).collect::<Vec<_>>());
            }
            Op::DeleteAll => {
                t.delete_all_objects().unwrap();
                m.m.clear();
            }
            Op::Walk => {
                let mut keys = Vec::new();
                let mut k = t.first().unwrap();
                while let Some(x) = k {
                    keys.push(x);
                    k = t.next(&x).unwrap();
                }
                let want: Vec<u8> = m.m.keys().copied().collect();
                if kind == TableType::OrderedSet {
                    assert_eq!(keys, want);
                    let mut back = Vec::new();
                    let mut k = t.last().unwrap();
                    while let Some(x) = k {
                        back.push(x);
                        k = t.prev(&x).unwrap();
                    }
                    back.reverse();
                    assert_eq!(back, want);
                } else {
                    keys.sort();
                    assert_eq!(keys, want);
                }
            }
            Op::Fold => {
                let l = t
                    .foldl(Vec::new(), |mut a, k, v| {
                        a.push((*k, *v));
                        a
                    })
                    .unwrap();
                let mut r = t
                    .foldr(Vec::new(), |mut a, k, v| {
                        a.push((*k, *v));
                        a
                    })
                    .unwrap();
                r.reverse();
                assert_eq!(l, r);
                same_objects(kind, l, m.objects());
            }
        }
        assert_eq!(t.size().unwrap(), m.objects().len());
        same_objects(kind, t.tab2list().unwrap(), m.objects());
        let _ = sorted(vec![]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn set_matches_model(ops in prop::collection::vec(op(), 1..60), wc in any::<bool>()) {
        run(TableType::Set, ops, wc);
    }

    #[test]
    fn ordered_set_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        run(TableType::OrderedSet, ops, false);
    }

    #[test]
    fn bag_matches_model(ops in prop::collection::vec(op(), 1..60), wc in any::<bool>()) {
        run(TableType::Bag, ops, wc);
    }

    #[test]
    fn duplicate_bag_matches_model(ops in prop::collection::vec(op(), 1..60), wc in any::<bool>()) {
        run(TableType::DuplicateBag, ops, wc);
    }
}
