//! tab2file / file2tab / tabfile_info: round trips, and every damaged file refused.

use std::path::PathBuf;

use orbit::ets::{
    file2tab, tab2file, tabfile_info, EtsError, FileOptions, Protection, Table, TableType,
};
use serde::{Deserialize, Serialize};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("orbit-ets-file-{}", std::process::id()));
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
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let e = load(&p).unwrap_err();
    assert!(
        matches!(
            e,
            EtsError::NewerFormat {
                found: 2,
                supported: 1,
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
