//! Table files are untrusted input: crafted files with VALID checksums must load exactly
//! or fail with an error — no huge allocation, no stack overflow, no silent loss, no
//! panic — and temp files of writers that died mid-save are cleaned.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use orbit::ets::file::{file2tab_from_bytes, FORMAT_VERSION, MAX_DEPTH};
use orbit::ets::{file2tab, tab2file, EtsError, FileOptions, Table, TableType};
use orbit_term::Atom;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

// ---- a per-thread "largest single allocation" meter ----------------------------------

struct Meter;
thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static CUR: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}
fn grew(n: usize) {
    let _ = CUR.try_with(|c| {
        c.set(c.get().wrapping_add(n));
        let _ = PEAK.try_with(|p| p.set(p.get().max(c.get())));
    });
}
fn shrank(n: usize) {
    let _ = CUR.try_with(|c| c.set(c.get().wrapping_sub(n)));
}
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(l.size())));
        grew(l.size());
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        shrank(l.size());
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|c| c.set(c.get().max(n)));
        shrank(l.size());
        grew(n);
        System.realloc(p, l, n)
    }
}
#[global_allocator]
static A: Meter = Meter;

fn largest_alloc_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|c| c.set(0));
    let r = f();
    (r, LARGEST.with(|c| c.get()))
}

// ---- crafting files --------------------------------------------------------------------

/// The header term of a version-2 file, with the type and protection as atoms so a test
/// can write any of them.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct RawHeader {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Atom,
    protection: Atom,
    size: u64,
    key_type: String,
    value_type: String,
}

fn dir() -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ets-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A real file's header, to copy its kind/protection/type names.
fn real_header<K, V>(kind: TableType, objs: Vec<(K, V)>) -> (Vec<u8>, RawHeader)
where
    K: orbit::ets::Key + Serialize + serde::de::DeserializeOwned,
    V: orbit::ets::Value + Serialize + serde::de::DeserializeOwned,
{
    let t: Table<K, V> = Table::builder().kind(kind).build().unwrap();
    t.insert_many(objs).unwrap();
    let p = dir().join(format!(
        "real-{:?}-{}",
        kind,
        std::any::type_name::<V>().len()
    ));
    tab2file(&t, &p, FileOptions::new()).unwrap();
    let b = std::fs::read(&p).unwrap();
    let hlen = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
    let h: RawHeader = orbit_term::from_slice(&b[16..16 + hlen]).unwrap();
    (b, h)
}

/// ETF of a value (version byte included): one framed object.
fn etf<T: Serialize>(v: &T) -> Vec<u8> {
    orbit_term::to_vec(v).unwrap()
}

/// Builds a file with valid checksums from a header and raw object encodings.
fn craft(h: &RawHeader, objects: &[Vec<u8>], trailer_count: u64) -> Vec<u8> {
    let hb = etf(h);
    let mut f = Vec::new();
    f.extend_from_slice(b"ORBITETS");
    f.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    f.extend_from_slice(&(hb.len() as u32).to_le_bytes());
    f.extend_from_slice(&hb);
    let c = crc32fast::hash(&f);
    f.extend_from_slice(&c.to_le_bytes());
    let body = f.len();
    for o in objects {
        f.extend_from_slice(&(o.len() as u32).to_le_bytes());
        f.extend_from_slice(o);
    }
    f.extend_from_slice(b"ORBITEND");
    f.extend_from_slice(&trailer_count.to_le_bytes());
    let c = crc32fast::hash(&f[body..]);
    f.extend_from_slice(&c.to_le_bytes());
    f
}

/// Recomputes both checksums of a (possibly mutated) file, where the layout allows.
fn fix_crcs(f: &mut [u8]) {
    if f.len() < 16 + 4 + 20 {
        return;
    }
    let hlen = u32::from_le_bytes(f[12..16].try_into().unwrap()) as usize;
    let Some(hend) = 16usize.checked_add(hlen).filter(|e| e + 4 + 20 <= f.len()) else {
        return;
    };
    let c = crc32fast::hash(&f[..hend]);
    f[hend..hend + 4].copy_from_slice(&c.to_le_bytes());
    let n = f.len();
    let c = crc32fast::hash(&f[hend + 4..n - 4]);
    f[n - 4..].copy_from_slice(&c.to_le_bytes());
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Big([u64; 32], [u64; 32], [u64; 32], [u64; 32]);

#[test]
fn huge_declared_count_reserves_nothing() {
    let (_, mut h) = real_header::<u64, Big>(TableType::Set, vec![]);
    h.size = 1 << 40;
    let f = craft(&h, &[], 1 << 40);
    let (r, largest) =
        largest_alloc_during(|| file2tab_from_bytes::<u64, Big>(&f, FileOptions::new()));
    assert!(
        matches!(r, Err(EtsError::InvalidObjectCount { .. })),
        "{r:?}"
    );
    // Bound: 64 KiB + 64 x the file (a few hundred bytes); the old code reserved
    // 2^20 objects of 1 KiB = 1 GiB here.
    assert!(
        largest <= 65536 + 64 * f.len(),
        "largest allocation {largest} B for a {} B file",
        f.len()
    );
}

#[test]
fn huge_declared_sequence_length_reserves_little() {
    let (_, mut h) = real_header::<u64, Vec<Big>>(TableType::Set, vec![]);
    h.size = 1;
    // {1, [...]} with a list header declaring 65536 Bigs and none present.
    let mut o = vec![131, 104, 2, 97, 1, 108];
    o.extend_from_slice(&65536u32.to_be_bytes());
    let f = craft(&h, &[o], 1);
    let (r, largest) =
        largest_alloc_during(|| file2tab_from_bytes::<u64, Vec<Big>>(&f, FileOptions::new()));
    assert!(r.is_err(), "{r:?}");
    assert!(
        largest <= 65536 + 64 * f.len(),
        "largest allocation {largest} B for a {} B file",
        f.len()
    );
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
}

/// `{1, {'Node', {'Node', ... 'Leaf'}}}` with `depth` nodes.
fn deep_tree_object(depth: usize) -> Vec<u8> {
    let mut o = vec![131, 104, 2, 97, 1];
    for _ in 0..depth {
        o.extend_from_slice(&[104, 2, 119, 4, b'N', b'o', b'd', b'e']);
    }
    o.extend_from_slice(&[119, 4, b'L', b'e', b'a', b'f']);
    o
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let (_, mut h) = real_header::<u64, Tree>(TableType::Set, vec![]);
    h.size = 1;
    let f = craft(&h, &[deep_tree_object(1 << 20)], 1); // 8 MiB of nested tuples
    let r = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || file2tab_from_bytes::<u64, Tree>(&f, FileOptions::new()).map(|_| ()))
        .unwrap()
        .join()
        .expect("no panic");
    let e = r.expect_err("refused");
    assert!(e.to_string().contains("nesting deeper than"), "{e}");

    // Exactly at the limit (the object tuple is level 1, each node one more) a file loads;
    // one level more is refused in a crafted file and by tab2file before writing.
    let at = craft(&h, &[deep_tree_object(MAX_DEPTH - 1)], 1);
    let over = craft(&h, &[deep_tree_object(MAX_DEPTH)], 1);
    let ok = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let loaded = file2tab_from_bytes::<u64, Tree>(&at, FileOptions::new()).is_ok();
            let refused = file2tab_from_bytes::<u64, Tree>(&over, FileOptions::new())
                .is_err_and(|e| e.to_string().contains("nesting deeper than"));
            let mut t = Tree::Leaf;
            for _ in 0..MAX_DEPTH - 1 {
                t = Tree::Node(Box::new(t));
            }
            let table: Table<u64, Tree> = Table::builder().build().unwrap();
            table.insert(1, t.clone()).unwrap();
            let p = dir().join("deep-at-limit");
            tab2file(&table, &p, FileOptions::new()).unwrap();
            let back: Table<u64, Tree> = file2tab(&p, FileOptions::new()).unwrap();
            let same = back.get(&1).unwrap() == Some(t.clone());
            table.insert(1, Tree::Node(Box::new(t))).unwrap();
            let p = dir().join("deep-over-limit");
            let save_refused = matches!(
                tab2file(&table, &p, FileOptions::new()),
                Err(EtsError::Encode { .. })
            ) && !p.exists();
            (loaded, refused, same, save_refused)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(ok, (true, true, true, true));
}

#[test]
fn duplicate_key_in_set_file_is_an_error() {
    for kind in [TableType::Set, TableType::OrderedSet] {
        let (_, h) = real_header::<u64, String>(kind, vec![]);
        let mut h = h;
        h.size = 2;
        let a = etf(&(7u64, "a".to_string()));
        let b = etf(&(7u64, "b".to_string()));
        let f = craft(&h, &[a, b], 2);
        let r = file2tab_from_bytes::<u64, String>(&f, FileOptions::new());
        let e = r
            .map(|t| t.size().unwrap())
            .expect_err("duplicate key refused");
        assert!(e.to_string().contains("duplicate key"), "{kind:?}: {e}");
    }
    // In a bag file the same key twice is legitimate.
    let (_, mut h) = real_header::<u64, String>(TableType::Bag, vec![]);
    h.size = 2;
    let a = etf(&(7u64, "a".to_string()));
    let b = etf(&(7u64, "b".to_string()));
    let f = craft(&h, &[a, b], 2);
    let t = file2tab_from_bytes::<u64, String>(&f, FileOptions::new()).unwrap();
    assert_eq!(t.size().unwrap(), 2);
}

#[test]
fn declared_count_disagreeing_with_content_is_an_error() {
    let (_, mut h) = real_header::<u64, String>(TableType::Set, vec![]);
    let a = etf(&(1u64, "a".to_string()));
    let b = etf(&(2u64, "b".to_string()));
    for (hs, ts) in [(3, 2), (2, 3), (1, 1), (3, 3)] {
        h.size = hs;
        let f = craft(&h, &[a.clone(), b.clone()], ts);
        let r = file2tab_from_bytes::<u64, String>(&f, FileOptions::new());
        assert!(
            matches!(r, Err(EtsError::InvalidObjectCount { .. })),
            "header {hs} trailer {ts}"
        );
    }
    h.size = 2;
    let f = craft(&h, &[a, b], 2);
    assert_eq!(
        file2tab_from_bytes::<u64, String>(&f, FileOptions::new())
            .unwrap()
            .size()
            .unwrap(),
        2
    );
}

#[test]
fn stale_temp_files_of_dead_writers_are_cleaned() {
    let d = dir().join("stale");
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join("t.tab");
    // A pid that has exited: a child we reaped.
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let dead = c.id();
    c.wait().unwrap();
    let stale = d.join(format!(".t.tab.tmp-{dead}-0"));
    let mine = d.join(format!(".t.tab.tmp-{}-999999", std::process::id()));
    let other = d.join(format!(".u.tab.tmp-{dead}-0"));
    for f in [&stale, &mine, &other] {
        std::fs::write(f, b"partial").unwrap();
    }
    let t: Table<u64, u64> = Table::builder().build().unwrap();
    t.insert(1, 1).unwrap();
    tab2file(&t, &p, FileOptions::new()).unwrap();
    assert!(
        !stale.exists(),
        "a dead writer's temp file is removed on save"
    );
    assert!(mine.exists(), "a temp file of this (live) process is kept");
    assert!(other.exists(), "another table's temp file is not touched");

    std::fs::write(&stale, b"partial").unwrap();
    let back: Table<u64, u64> = file2tab(&p, FileOptions::new()).unwrap();
    assert_eq!(back.lookup(&1).unwrap(), vec![(1, 1)]);
    assert!(
        !stale.exists(),
        "a dead writer's temp file is removed on load"
    );
    assert!(mine.exists());
}

#[test]
fn load_time_is_linear_in_objects() {
    fn file(n: u64) -> Vec<u8> {
        let (_, mut h) = real_header::<u64, String>(TableType::Set, vec![]);
        h.size = n;
        let objs: Vec<Vec<u8>> = (0..n).map(|i| etf(&(i, format!("v{i}")))).collect();
        craft(&h, &objs, n)
    }
    // This thread's CPU time, not the wall clock: on a loaded machine a run preempted for
    // a time slice would look quadratic.
    fn cpu_now() -> std::time::Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
        std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
    let time = |f: &[u8]| {
        let t0 = cpu_now();
        let t = file2tab_from_bytes::<u64, String>(f, FileOptions::new()).unwrap();
        assert!(t.size().unwrap() > 0);
        cpu_now() - t0
    };
    let (small, large) = (file(5_000), file(50_000));
    // Interleaved, the fastest of 5 each.
    let (mut ts, mut tl) = (std::time::Duration::MAX, std::time::Duration::MAX);
    for _ in 0..5 {
        ts = ts.min(time(&small));
        tl = tl.min(time(&large));
    }
    // 10x the input: linear is ~10x, quadratic ~100x. Allow 40x (slack for hash-table
    // growth and cache effects).
    assert!(tl <= ts * 40, "10x input took {tl:?} of CPU vs {ts:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    /// Random mutations of a valid file, checksums recomputed: never a panic; either an
    /// error or a table.
    #[test]
    fn mutated_files_never_panic(muts in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                                 cut in any::<Option<usize>>()) {
        let objs: Vec<(u64, Vec<String>)> =
            (0..6).map(|i| (i, (0..i).map(|j| format!("s{j}")).collect())).collect();
        let (mut f, _) = real_header::<u64, Vec<String>>(TableType::OrderedSet, objs.clone());
        for (at, v) in muts {
            let i = at % f.len();
            f[i] = v;
        }
        if let Some(c) = cut {
            let n = c % (f.len() + 1);
            f.truncate(n);
        }
        fix_crcs(&mut f);
        let r = std::panic::catch_unwind(|| {
            file2tab_from_bytes::<u64, Vec<String>>(&f, FileOptions::new()).map(|t| t.size().unwrap())
        });
        prop_assert!(r.is_ok(), "panicked");
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Node(Vec<Node>);

/// The bytes allocated and not yet freed on this thread at the peak of `f`.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    CUR.with(|c| c.set(0));
    PEAK.with(|c| c.set(0));
    let r = f();
    (r, PEAK.with(|c| c.get()))
}

/// Lists nested MAX_DEPTH - 2 deep, each declaring 100k elements (as many as the bytes
/// left could hold) while only the innermost has them: every open level used to reserve
/// its declared count at once. Measured before the cap on reservations (orbit-term
/// `Reader::prealloc`): 403 MB for `Term` values and 138 MB for a recursive serde type,
/// from a 200 KB file; after: 8 MB and 9 MB.
#[test]
fn nested_declared_lengths_reserve_little() {
    fn file<V>(leaf: &[u8]) -> Vec<u8>
    where
        V: orbit::ets::Value + Serialize + serde::de::DeserializeOwned,
    {
        let n: u32 = 100_000;
        let mut o = vec![131, 104, 2, 97, 1];
        for _ in 0..MAX_DEPTH - 2 {
            o.push(108);
            o.extend_from_slice(&n.to_be_bytes());
        }
        for _ in 0..n {
            o.extend_from_slice(leaf);
        }
        o.push(106);
        let (_, mut h) = real_header::<u64, V>(TableType::Set, vec![]);
        h.size = 1;
        craft(&h, &[o], 1)
    }
    // Bound: 64 x the file (the decoded innermost list and its growth) + MAX_DEPTH open
    // levels x 1024 reserved elements x 32 B (a Term; a Node is 24 B) = 4 MiB.
    let bound = |f: &[u8]| 64 * f.len() + MAX_DEPTH * 1024 * 32;
    let f = file::<orbit_term::Term>(&[97, 0]);
    let (r, peak) = peak_during(|| {
        file2tab_from_bytes::<u64, orbit_term::Term>(&f, FileOptions::new()).map(|_| ())
    });
    assert!(r.is_err(), "{r:?}");
    assert!(
        peak <= bound(&f),
        "Term: peak {peak} B for a {} B file",
        f.len()
    );
    let f = file::<Node>(&[106, 106]);
    let (r, peak) =
        peak_during(|| file2tab_from_bytes::<u64, Node>(&f, FileOptions::new()).map(|_| ()));
    assert!(r.is_err(), "{r:?}");
    assert!(
        peak <= bound(&f),
        "Node: peak {peak} B for a {} B file",
        f.len()
    );
}
