//! The order of a bag's objects after list inserts, checked against values printed by a
//! real OTP 25 `erl` (`ets:new(t, [bag])`, `ets:insert(T, List)`, `ets:lookup(T, k)`).
//! OTP 25 adds a list's objects to a `bag` from the list's end (each identical object once,
//! after the existing ones) and to a `duplicate_bag` from its start.

use orbit::ets::{Table, TableType};

fn table(kind: TableType) -> Table<&'static str, i64> {
    Table::builder().kind(kind).public().build().unwrap()
}

fn values(t: &Table<&'static str, i64>, k: &'static str) -> Vec<i64> {
    t.lookup(&k).unwrap().into_iter().map(|(_, v)| v).collect()
}

#[test]
fn bag_list_insert_order_matches_otp25() {
    // erl: T = ets:new(t,[bag]), ets:insert(T,[{k,1},{k,2},{k,1},{k,3}]), ets:lookup(T,k).
    //      -> [{k,3},{k,1},{k,2}]
    let t = table(TableType::Bag);
    t.insert_many([("k", 1), ("k", 2), ("k", 1), ("k", 3)])
        .unwrap();
    assert_eq!(values(&t, "k"), vec![3, 1, 2]);

    // Onto existing objects: insert {k,0}, {k,2}, then the same list -> [0,2,3,1].
    let t = table(TableType::Bag);
    t.insert("k", 0).unwrap();
    t.insert("k", 2).unwrap();
    assert_eq!(values(&t, "k"), vec![0, 2]);
    t.insert_many([("k", 1), ("k", 2), ("k", 1), ("k", 3)])
        .unwrap();
    assert_eq!(values(&t, "k"), vec![0, 2, 3, 1]);

    // insert_new with a list: [{k,3},{k,1},{k,2}].
    let t = table(TableType::Bag);
    assert!(t
        .insert_new_many([("k", 1), ("k", 2), ("k", 1), ("k", 3), ("j", 1)])
        .unwrap());
    assert_eq!(values(&t, "k"), vec![3, 1, 2]);

    // Interleaved keys: [{k,1},{j,2},{k,2},{j,1},{k,3}] -> k: [3,2,1], j: [1,2].
    let t = table(TableType::Bag);
    t.insert_many([("k", 1), ("j", 2), ("k", 2), ("j", 1), ("k", 3)])
        .unwrap();
    assert_eq!(values(&t, "k"), vec![3, 2, 1]);
    assert_eq!(values(&t, "j"), vec![1, 2]);
}

#[test]
fn duplicate_bag_list_insert_order_matches_otp25() {
    let t = table(TableType::DuplicateBag);
    t.insert_many([("k", 1), ("k", 2), ("k", 1), ("k", 3)])
        .unwrap();
    assert_eq!(values(&t, "k"), vec![1, 2, 1, 3]);

    let t = table(TableType::DuplicateBag);
    t.insert("k", 0).unwrap();
    t.insert("k", 2).unwrap();
    t.insert_many([("k", 1), ("k", 2), ("k", 1), ("k", 3)])
        .unwrap();
    assert_eq!(values(&t, "k"), vec![0, 2, 1, 2, 1, 3]);

    let t = table(TableType::DuplicateBag);
    assert!(t
        .insert_new_many([("k", 1), ("k", 2), ("k", 1), ("k", 3), ("j", 1)])
        .unwrap());
    assert_eq!(values(&t, "k"), vec![1, 2, 1, 3]);

    let t = table(TableType::DuplicateBag);
    t.insert_many([("k", 1), ("j", 2), ("k", 2), ("j", 1), ("k", 3)])
        .unwrap();
    assert_eq!(values(&t, "k"), vec![1, 2, 3]);
    assert_eq!(values(&t, "j"), vec![2, 1]);
}
