//! Lookups by a borrowed form of the key (`&str` for `String` keys, `&[u8]` for
//! `Vec<u8>`), as `HashMap::get` allows: on every table type each lookup-like operation
//! gives the same answer, and changes the same objects, as with the owned key. And
//! ConCache's reads by borrowed key.

use std::sync::Arc;
use std::time::Duration;

use orbit::cache::{CacheOptions, ConCache, ManualClock, Ttl};
use orbit::ets::{Table, TableType};

const KINDS: [TableType; 4] = [
    TableType::Set,
    TableType::OrderedSet,
    TableType::Bag,
    TableType::DuplicateBag,
];

fn table(kind: TableType) -> Table<String, i64> {
    let t: Table<String, i64> = Table::builder().kind(kind).public().build().unwrap();
    for (k, v) in [("a", 1), ("b", 2), ("c", 3), ("d", 4)] {
        t.insert(k.to_string(), v).unwrap();
    }
    if matches!(kind, TableType::Bag | TableType::DuplicateBag) {
        t.insert("a".to_string(), 10).unwrap();
    }
    t
}

#[tokio::test]
async fn reads_by_str_equal_reads_by_string_on_every_table_type() {
    for kind in KINDS {
        let t = table(kind);
        for k in ["a", "b", "d", "zz", ""] {
            let owned = k.to_string();
            assert_eq!(
                t.lookup(k).unwrap(),
                t.lookup(&owned).unwrap(),
                "{kind:?} {k}"
            );
            assert_eq!(t.get(k).unwrap(), t.get(&owned).unwrap(), "{kind:?} {k}");
            assert_eq!(
                t.member(k).unwrap(),
                t.member(&owned).unwrap(),
                "{kind:?} {k}"
            );
            assert_eq!(
                t.lookup_with(k, |v| v.copied()).unwrap(),
                t.lookup_with(&owned, |v| v.copied()).unwrap()
            );
            assert_eq!(
                t.lookup_elements(k).ok(),
                t.lookup_elements(&owned).ok(),
                "{kind:?} {k}"
            );
        }
        assert_eq!(t.get("b").unwrap(), Some(2), "{kind:?}");
        assert!(!t.member("zz").unwrap(), "{kind:?}");
        let a = t.lookup_elements("a").unwrap();
        match kind {
            TableType::Bag | TableType::DuplicateBag => assert_eq!(a, vec![1, 10]),
            _ => assert_eq!(a, vec![1]),
        }
    }
}

#[tokio::test]
async fn set_updates_by_str_change_the_stored_object() {
    for kind in [TableType::Set, TableType::OrderedSet] {
        let t = table(kind);
        assert_eq!(t.lookup_element("c").unwrap(), 3);
        assert_eq!(t.lookup_element_or("zz", -1).unwrap(), -1);
        assert_eq!(t.update_counter("a", 5).unwrap(), 6, "{kind:?}");
        assert!(t.update_counter("zz", 1).is_err(), "{kind:?}: missing key");
        assert_eq!(t.update_counter_or(&"n".to_string(), 1, 100).unwrap(), 101);
        assert!(t.update_element("b", 20).unwrap());
        assert!(!t.update_element("zz", 20).unwrap());
        assert_eq!(t.update_element_with("b", |v| *v + 1).unwrap(), Some(21));
        assert_eq!(t.get(&"a".to_string()).unwrap(), Some(6));
        assert_eq!(t.get(&"b".to_string()).unwrap(), Some(20));
        assert_eq!(t.take("c").unwrap(), vec![("c".to_string(), 3)]);
        assert!(!t.member(&"c".to_string()).unwrap());
        t.delete_object("d", &99).unwrap(); // not that object: kept
        assert!(t.member("d").unwrap());
        t.delete_object("d", &4).unwrap();
        assert!(!t.member("d").unwrap());
        t.delete("a").unwrap();
        assert_eq!(t.size().unwrap(), 2, "{kind:?}: b and n left");
    }
}

#[tokio::test]
async fn bag_deletes_by_str_change_the_stored_objects() {
    for kind in [TableType::Bag, TableType::DuplicateBag] {
        let t = table(kind);
        t.delete_object("a", &1).unwrap();
        assert_eq!(t.lookup(&"a".to_string()).unwrap(), vec![("a".into(), 10)]);
        assert_eq!(t.take("b").unwrap(), vec![("b".to_string(), 2)]);
        t.delete("a").unwrap();
        assert_eq!(t.size().unwrap(), 2, "{kind:?}: c and d left");
        assert!(
            t.update_counter("c", 1).is_err(),
            "{kind:?}: counters need a set"
        );
    }
}

#[tokio::test]
async fn walks_by_str_follow_the_same_keys() {
    for kind in KINDS {
        let t = table(kind);
        let mut by_str = Vec::new();
        let mut k = t.first().unwrap();
        while let Some(key) = k {
            let next = t.next(key.as_str()).unwrap();
            assert_eq!(next, t.next(&key).unwrap(), "{kind:?}");
            by_str.push(key);
            k = next;
        }
        by_str.sort();
        assert_eq!(by_str, ["a", "b", "c", "d"], "{kind:?}");
    }
    // On ordered_set the key need not exist, and prev walks back, borrowed or owned.
    let t = table(TableType::OrderedSet);
    assert_eq!(t.next("bb").unwrap(), Some("c".to_string()));
    assert_eq!(t.prev("bb").unwrap(), Some("b".to_string()));
    assert_eq!(t.prev("a").unwrap(), None);
    assert_eq!(t.prev(&"d".to_string()).unwrap(), Some("c".to_string()));
}

#[tokio::test]
async fn byte_keys_by_slice() {
    for kind in KINDS {
        let t: Table<Vec<u8>, u8> = Table::builder().kind(kind).build().unwrap();
        for i in 0..50u8 {
            t.insert(vec![i, i], i).unwrap();
        }
        for i in 0..50u8 {
            let k: &[u8] = &[i, i];
            assert_eq!(t.get(k).unwrap(), Some(i), "{kind:?}");
        }
        assert_eq!(t.get(&[1u8, 2][..]).unwrap(), None);
        t.delete(&[7u8, 7][..]).unwrap();
        assert_eq!(t.size().unwrap(), 49, "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_reads_by_str() {
    // With TTLs and touch_on_read, a hit by `&str` renews the item (its key goes onto
    // the expiry wheel again: an owned copy made from the borrowed form).
    let clock = Arc::new(ManualClock::new());
    let opts = CacheOptions::new()
        .clock(clock.clone())
        .ttl_check_interval(Duration::from_secs(1))
        .global_ttl(Ttl::After(Duration::from_secs(10)))
        .touch_on_read(true);
    let c: ConCache<String, u64> = ConCache::start(opts).await.unwrap();
    c.put("a".into(), 1).await.unwrap();
    clock.advance(Duration::from_secs(8));
    assert_eq!(c.get("a").unwrap(), Some(1)); // renewed: now expires at 18 s
    clock.advance(Duration::from_secs(8));
    assert_eq!(c.get("a").unwrap(), Some(1), "renewed by the read at 8 s");
    assert_eq!(c.get("b").unwrap(), None);
    assert_eq!(c.get_all("a").unwrap(), vec![1]);
    c.touch("a").unwrap(); // at 16 s: expires at 26 s
    c.touch("b").unwrap();
    clock.advance(Duration::from_secs(8));
    assert_eq!(c.get(&"a".to_string()).unwrap(), Some(1), "touched at 16 s");
    let s = c.stats().unwrap();
    assert_eq!((s.hits, s.misses), (4, 1));
    // Without reads the item expires: the renewals above were what kept it.
    clock.advance(Duration::from_secs(11));
    assert_eq!(c.get("a").unwrap(), None);
}
