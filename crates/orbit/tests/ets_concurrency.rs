//! Many writer and reader processes at once: the table ends equal to the model and
//! update_counter loses no increment.

use std::collections::BTreeMap;

use orbit::ets::{Table, TableType};
use orbit::{spawn, Context};

const WRITERS: u64 = 8;
const PER_WRITER: u64 = 2000;

async fn hammer(kind: TableType) {
    let t: Table<u64, u64> = Table::builder()
        .kind(kind)
        .public()
        .write_concurrency(true)
        .read_concurrency(true)
        .build()
        .unwrap();
    t.insert(u64::MAX, 0).ok();
    let mut hs = Vec::new();
    for w in 0..WRITERS {
        let t = t.clone();
        hs.push(
            spawn(move |_ctx: Context<()>| async move {
                for i in 0..PER_WRITER {
                    let k = w * PER_WRITER + i;
                    if i % 3 == 0 {
                        t.insert_many([(k, k * 2), (k + 1_000_000, k)]).unwrap();
                    } else {
                        t.insert(k, k * 2).unwrap();
                    }
                    if kind != TableType::Bag {
                        t.update_counter(&u64::MAX, 1).unwrap();
                        t.update_counter_or(&(w + 10_000_000), 1, 0).unwrap();
                    }
                    if i % 5 == 0 {
                        t.delete(&(k + 1_000_000)).unwrap();
                    }
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
            .unwrap(),
        );
    }
    for _ in 0..4 {
        let t = t.clone();
        hs.push(
            spawn(move |_ctx: Context<()>| async move {
                for i in 0..20_000u64 {
                    // A reader never sees a torn object.
                    if let Some(v) = t.get(&(i % (WRITERS * PER_WRITER))).unwrap() {
                        assert_eq!(v, (i % (WRITERS * PER_WRITER)) * 2);
                    }
                    if i % 2000 == 0 {
                        let n = t.foldl(0usize, |n, _, _| n + 1).unwrap();
                        assert!(n <= t.size().unwrap() + 100_000);
                        tokio::task::yield_now().await;
                    }
                }
            })
            .unwrap(),
        );
    }
    for h in hs {
        assert_eq!(h.wait_exit().await, orbit::ExitReason::Normal);
    }
    let mut model = BTreeMap::new();
    for w in 0..WRITERS {
        for i in 0..PER_WRITER {
            let k = w * PER_WRITER + i;
            model.insert(k, k * 2);
            if i % 3 == 0 && i % 5 != 0 {
                model.insert(k + 1_000_000, k);
            }
        }
        if kind != TableType::Bag {
            model.insert(w + 10_000_000, PER_WRITER);
        }
    }
    model.insert(
        u64::MAX,
        if kind == TableType::Bag {
            0
        } else {
            WRITERS * PER_WRITER
        },
    );
    let mut got = t.tab2list().unwrap();
    got.sort();
    let want: Vec<(u64, u64)> = model.into_iter().collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_set() {
    hammer(TableType::Set).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ordered_set() {
    hammer(TableType::OrderedSet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bag() {
    hammer(TableType::Bag).await;
}

#[test]
fn update_counter_from_threads_loses_nothing() {
    let t: Table<u8, i64> = Table::builder()
        .public()
        .write_concurrency(true)
        .build()
        .unwrap();
    t.insert(0, 0).unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let t = t.clone();
            s.spawn(move || {
                for i in 0..20_000 {
                    t.update_counter(&0, 1).unwrap();
                    t.update_counter_or(&((i % 7) as u8 + 1), -1, 0).unwrap();
                }
            });
        }
    });
    assert_eq!(t.get(&0).unwrap(), Some(160_000));
    let rest: i64 = (1..=7).map(|k| t.get(&k).unwrap().unwrap()).sum();
    assert_eq!(rest, -160_000);
}
