//! tab2file / file2tab / tabfile_info: round trips, and every damaged file refused.

use std::path::PathBuf;

use orbit::ets::{
    file2tab, tab2file, tabfile_info, EtsError, FileOptions, Protection, Table, TableType,
};
use serde::{Deserialize, Serialize};

fn dir() -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ets-file-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct User {
    name: String,
    tags: Vec<String>,
    age: Option<u8>,
}

#[test]
fn roundtrip_every_type_with_header() {
    for kind in [
        TableType::Set,
        TableType::OrderedSet,
        TableType::Bag,
        TableType::DuplicateBag,
    ] {
        let t: Table<(u32, String), User> = Table::builder().kind(kind).public().build().unwrap();
        for i in 0..200u32 {
            let u = User {
                name: format!("u{i}"),
                tags: vec!["a".into(); (i % 3) as usize],
                age: (i % 2 == 0).then_some(i as u8),
            };
            t.insert((i % 50, format!("k{}", i % 7)), u).unwrap();
        }
        let path = dir().join(format!("rt-{kind}.tab"));
        tab2file(&t, &path, FileOptions::new().sync(true)).unwrap();
        let info = tabfile_info(&path).unwrap();
        assert_eq!(info.kind, kind);
        assert_eq!(info.protection, Protection::Public);
        assert_eq!(info.size as usize, t.size().unwrap());
        assert_eq!(info.version, orbit::ets::file::FORMAT_VERSION);
        let back: Table<(u32, String), User> = file2tab(&path, FileOptions::new()).unwrap();
        assert_eq!(back.kind(), kind);
        let mut a = t.tab2list().unwrap();
        let mut b = back.tab2list().unwrap();
        if kind == TableType::OrderedSet {
            assert_eq!(a, b);
        } else {
            let key = |x: &((u32, String), User)| (x.0.clone(), x.1.name.clone());
            a.sort_by_key(key);
            b.sort_by_key(key);
            assert_eq!(a, b);
        }
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".rt-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}

#[test]
fn named_table_roundtrip_and_type_check() {
    let t: Table<u64, String> = Table::builder()
        .ordered_set()
        .named("file_named")
        .build()
        .unwrap();
    t.insert(1, "one".into()).unwrap();
    let path = dir().join("named.tab");
    tab2file(&t, &path, FileOptions::new()).unwrap();
    assert_eq!(
        tabfile_info(&path).unwrap().name.as_deref(),
        Some("file_named")
    );
    // The name is taken while the original lives.
    assert!(matches!(
        file2tab::<u64, String>(&path, FileOptions::new()),
        Err(EtsError::NameTaken(_))
    ));
    t.delete_table().unwrap();
    let back = file2tab::<u64, String>(&path, FileOptions::new()).unwrap();
    assert_eq!(
        orbit::ets::whereis::<u64, String>("file_named").unwrap(),
        back
    );
    back.delete_table().unwrap();
    // Other types: refused with a clear message.
    let e = file2tab::<i64, String>(&path, FileOptions::new()).unwrap_err();
    assert!(e.to_string().contains("asked for"), "{e}");
}

fn small_file() -> (PathBuf, Vec<u8>) {
    let t: Table<u16, (i32, String)> = Table::builder().public().build().unwrap();
    t.insert(1, (-1, "a".into())).unwrap();
    t.insert(2, (2, "bc".into())).unwrap();
    t.insert(300, (3, String::new())).unwrap();
    let path = dir().join("small.tab");
    tab2file(&t, &path, FileOptions::new()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

fn load(path: &PathBuf) -> Result<Table<u16, (i32, String)>, EtsError> {
    file2tab(path, FileOptions::new().verify(true))
}

#[test]
fn every_truncation_is_refused() {
    let (_, bytes) = small_file();
    assert!(bytes.len() > 40);
    let p = dir().join("trunc.tab");
    for n in 0..bytes.len() {
        std::fs::write(&p, &bytes[..n]).unwrap();
        let r = load(&p);
        assert!(
            matches!(
                r,
                Err(EtsError::BadFile { .. })
                    | Err(EtsError::ChecksumError { .. })
                    | Err(EtsError::InvalidObjectCount { .. })
            ),
            "truncated to {n} bytes: {r:?}"
        );
        if n == 0 {
            assert!(r.unwrap_err().to_string().contains("empty"));
        }
    }
    std::fs::write(&p, &bytes).unwrap();
    assert_eq!(load(&p).unwrap().size().unwrap(), 3);
}

#[test]
fn every_bit_flip_is_refused() {
    let (_, bytes) = small_file();
    let p = dir().join("flip.tab");
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            std::fs::write(&p, &b).unwrap();
            let r = load(&p);
            assert!(
                r.is_err(),
                "bit {bit} of byte {i} flipped, yet the file loaded"
            );
            if i >= 16 {
                // Past the fixed prefix, only the checksums and framing can catch it.
                assert!(
                    matches!(
                        r,
                        Err(EtsError::BadFile { .. })
                            | Err(EtsError::ChecksumError { .. })
                            | Err(EtsError::InvalidObjectCount { .. })
                    ),
                    "byte {i}: {r:?}"
                );
            }
        }
    }
}

#[test]
fn foreign_empty_and_newer_files() {
    let p = dir().join("foreign.tab");
    std::fs::write(&p, b"").unwrap();
    assert!(matches!(load(&p), Err(EtsError::BadFile { .. })));
    assert!(matches!(tabfile_info(&p), Err(EtsError::BadFile { .. })));
    std::fs::write(
        &p,
        b"\x83h\x02d\x00\x03abcjust an erlang term, not a table file",
    )
    .unwrap();
    let e = load(&p).unwrap_err();
    assert!(e.to_string().contains("not an Orbit table file"), "{e}");
    let (_, mut bytes) = small_file();
    bytes[8..12].copy_from_slice(&3u32.to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let e = load(&p).unwrap_err();
    assert!(
        matches!(
            e,
            EtsError::NewerFormat {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("upgrade"));
    assert!(matches!(
        tabfile_info(&p),
        Err(EtsError::NewerFormat { .. })
    ));
    assert!(matches!(
        load(&dir().join("missing.tab")),
        Err(EtsError::Io { .. })
    ));
}

#[test]
fn header_only_info_ignores_the_body() {
    let (path, bytes) = small_file();
    let info = tabfile_info(&path).unwrap();
    assert_eq!(info.size, 3);
    assert_eq!(info.kind, TableType::Set);
    // A damaged body does not matter to tabfile_info, but does to file2tab.
    let p = dir().join("body.tab");
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] ^= 0xff;
    std::fs::write(&p, &b).unwrap();
    assert_eq!(tabfile_info(&p).unwrap().size, 3);
    assert!(matches!(
        load(&p),
        Err(EtsError::ChecksumError {
            part: "objects",
            ..
        })
    ));
}

/// A real version-1 file (the former private encoding): an empty protected set of
/// `(u64, orbit_term::Term)`, as written by Orbit before objects became ETF terms.
const VERSION_1_FILE: [u8; 92] = [
    0x4f, 0x52, 0x42, 0x49, 0x54, 0x45, 0x54, 0x53, 0x01, 0x00, 0x00, 0x00, 0x34, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x75, 0x36, 0x34, 0x16, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x6f, 0x72,
    0x62, 0x69, 0x74, 0x5f, 0x74, 0x65, 0x72, 0x6d, 0x3a, 0x3a, 0x74, 0x65, 0x72, 0x6d, 0x3a, 0x3a,
    0x54, 0x65, 0x72, 0x6d, 0xfb, 0xa2, 0x59, 0x12, 0x4f, 0x52, 0x42, 0x49, 0x54, 0x45, 0x4e, 0x44,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xef, 0x96, 0x90, 0x6b,
];

#[test]
fn version_1_file_is_refused_saying_so() {
    let p = dir().join("v1.tab");
    std::fs::write(&p, VERSION_1_FILE).unwrap();
    let e = file2tab::<u64, orbit_term::Term>(&p, FileOptions::new()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, EtsError::BadFile { .. }), "{e:?}");
    assert!(
        msg.contains("format version 1") && msg.contains("no longer read"),
        "{msg}"
    );
    let e = tabfile_info(&p).unwrap_err();
    assert!(e.to_string().contains("format version 1"), "{e}");
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Scored {
    score: f64,
}

/// Values that ETF cannot carry faithfully fail the save, name the object, write nothing
/// and leave an existing file intact; what can be carried round-trips exactly.
#[test]
fn values_etf_cannot_carry_fail_the_save() {
    let p = dir().join("lossy.tab");
    let good: Table<u64, Option<()>> = Table::builder().build().unwrap();
    good.insert(1, None).unwrap();
    tab2file(&good, &p, FileOptions::new()).unwrap();
    let before = std::fs::read(&p).unwrap();

    // Some(()) encodes as nil, like None.
    good.insert(2, Some(())).unwrap();
    let e = tab2file(&good, &p, FileOptions::new()).unwrap_err();
    assert!(matches!(e, EtsError::Encode { .. }), "{e:?}");
    assert!(e.to_string().contains("load back different"), "{e}");
    assert_eq!(std::fs::read(&p).unwrap(), before, "the old file is intact");

    // Some(None) likewise.
    let t: Table<u64, Option<Option<u8>>> = Table::builder().build().unwrap();
    t.insert(1, Some(None)).unwrap();
    let e = tab2file(&t, &p, FileOptions::new()).unwrap_err();
    assert!(e.to_string().contains("load back different"), "{e}");

    // Non-finite floats do not exist in Erlang.
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let t: Table<u64, Scored> = Table::builder().build().unwrap();
        t.insert(1, Scored { score: 1.5 }).unwrap();
        t.insert(2, Scored { score: bad }).unwrap();
        let e = tab2file(&t, &p, FileOptions::new()).unwrap_err();
        assert!(e.to_string().contains("would not load back"), "{bad}: {e}");
    }
    assert_eq!(std::fs::read(&p).unwrap(), before, "the old file is intact");
    let leftovers = std::fs::read_dir(dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".lossy.tab.tmp-")
        })
        .count();
    assert_eq!(leftovers, 0, "no temp file is left behind");

    // What ETF carries comes back exactly, -0.0 included.
    type Carried = (Option<u8>, f64, char, i128, Vec<u8>);
    let t: Table<u64, Carried> = Table::builder().build().unwrap();
    t.insert(1, (Some(0), -0.0, '\u{10FFFF}', i128::MIN, vec![0, 255]))
        .unwrap();
    t.insert(
        2,
        (None, f64::MIN_POSITIVE, 'a', u64::MAX as i128 + 1, vec![]),
    )
    .unwrap();
    tab2file(&t, &p, FileOptions::new()).unwrap();
    let back: Table<u64, Carried> = file2tab(&p, FileOptions::new()).unwrap();
    let mut a = t.tab2list().unwrap();
    let mut b = back.tab2list().unwrap();
    a.sort_by_key(|x| x.0);
    b.sort_by_key(|x| x.0);
    assert_eq!(a, b);
    assert!(b[0].1 .1.is_sign_negative(), "-0.0 keeps its sign");
}
