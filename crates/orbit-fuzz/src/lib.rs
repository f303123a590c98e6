//! Fuzz target bodies for Orbit's hostile-input parsers.
//!
//! Contract: every `fuzz_*` function takes arbitrary bytes, must never panic, must
//! allocate at most a bounded multiple of the input (plus a constant), and must run in
//! time linear in the input. The same functions are driven by the libFuzzer targets in
//! the repository's `fuzz/` crate (nightly, `scripts/fuzz`) and by the stable replay test
//! `tests/replay.rs` (corpus + seeded mutations + worst-shape 1 MB inputs, counting
//! allocator), so CI never depends on nightly.
//!
//! Targets: [`TARGETS`], including the table-file loader (`orbit::ets::file`), whose
//! target recomputes both checksums first so the fuzzer explores the content: a valid
//! checksum does not make a file trusted.

use orbit_dist::control::{parse_fast, Control};
use orbit_dist::handshake::{self, flags, Local, Status};
use orbit_term::{from_slice, DecodeLimits, Term};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A target body: arbitrary bytes in, must not panic.
pub type Target = fn(&[u8]);

/// Every target, by name (the name of its libFuzzer binary and corpus directory).
pub const TARGETS: &[(&str, Target)] = &[
    ("etf_decode", fuzz_etf_decode),
    ("serde_from_slice", fuzz_serde_from_slice),
    ("dist_frame", fuzz_dist_frame),
    ("dist_fragments", fuzz_dist_fragments),
    ("handshake_accept", fuzz_handshake_accept),
    ("handshake_initiate", fuzz_handshake_initiate),
    ("epmd_server", fuzz_epmd_server),
    ("epmd_client", fuzz_epmd_client),
    ("table_file", fuzz_table_file),
];

/// ETF decoder: whatever decodes re-encodes to a term that decodes equal.
pub fn fuzz_etf_decode(data: &[u8]) {
    if let Ok(t) = Term::decode(data) {
        let again = Term::decode(&t.encode()).expect("our own encoding decodes");
        assert!(again.exact_eq(&t), "re-encoding changed the term");
    }
    let _ = Term::decode_prefix(data, &DecodeLimits::DEFAULT);
    let _ = Term::decode_body(data, &DecodeLimits::DEFAULT);
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Record {
    name: String,
    id: u64,
    big: u128,
    neg: i128,
    tags: Vec<String>,
    score: Option<f64>,
    kind: Kind,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
enum Kind {
    A,
    B(i32),
    C { x: u8, y: (bool, char) },
}

/// serde `from_slice` into a few representative types.
pub fn fuzz_serde_from_slice(data: &[u8]) {
    let _ = from_slice::<Term>(data);
    let _ = from_slice::<Vec<(String, Option<i64>)>>(data);
    let _ = from_slice::<HashMap<String, Vec<f64>>>(data);
    let _ = from_slice::<Record>(data);
    let _ = from_slice::<Vec<Kind>>(data);
    let _ = from_slice::<(u128, i128, u8, i8, u16, i16, u32, i32)>(data);
}

/// A distribution frame after the 4-byte length: pass-through byte 112, then the control
/// term (fast path `parse_fast`, then the general `Control::parse`) and the payload.
pub fn fuzz_dist_frame(data: &[u8]) {
    let _ = parse_fast(data, &DecodeLimits::DEFAULT);
    let body = match data.first() {
        Some(112) => &data[1..],
        _ => data,
    };
    let _ = parse_fast(body, &DecodeLimits::DEFAULT);
    if let Ok((ctl, used)) = Term::decode_prefix(body, &DecodeLimits::DEFAULT) {
        if let Ok(c) = Control::parse(ctl) {
            if c.has_payload() {
                let _ = Term::decode_prefix(&body[used..], &DecodeLimits::DEFAULT);
            }
        }
    }
}

/// Distribution headers and fragments: the input is a stream of frames, each
/// `[Len:16][Bytes]`, fed to one [`orbit_dist::fragments::Reassembly`] (capped at
/// 1 MiB in flight) until one is a protocol error; the whole input also goes through
/// `to_headers` (queued pass-through frames rewritten as normal headers).
pub fn fuzz_dist_fragments(data: &[u8]) {
    use orbit_dist::fragments::{to_headers, Reassembly};
    let mut r = Reassembly::new(1 << 20);
    let mut rest = data;
    while rest.len() >= 2 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let Some(frame) = rest.get(2..2 + len) else {
            break;
        };
        rest = &rest[2 + len..];
        if frame.is_empty() {
            continue;
        }
        let res = r.frame(frame, |m| {
            assert_eq!(m.first(), Some(&112), "a completed message is pass-through");
            Ok(())
        });
        assert!(r.held() <= 1 << 20, "in-flight bytes over the cap");
        if res.is_err() {
            break;
        }
    }
    let _ = to_headers(data);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

fn local(name: &str) -> Local {
    Local {
        name: name.into(),
        creation: 7,
        flags: flags::ORBIT,
        cookie: "cookie".into(),
    }
}

/// Drives one handshake side over an in-memory duplex whose peer writes `data` then
/// closes; what the side writes is drained and dropped.
fn handshake_side(data: &[u8], initiate: bool) {
    let rt = runtime();
    rt.block_on(async {
        let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
        let (mut rd, mut wr) = tokio::io::split(theirs);
        let feed = data.to_vec();
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&feed).await;
            let _ = wr.shutdown().await;
            // keep the write half alive until the side is done reading
            wr
        });
        let drain = tokio::spawn(async move {
            let mut sink = [0u8; 4096];
            while let Ok(n) = rd.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        });
        let l = local("fuzz@host");
        let fut = async {
            if initiate {
                let _ = handshake::initiate_with(&mut ours, &l, "peer@host", || true).await;
            } else {
                let _ = handshake::accept(&mut ours, &l, |_, _| Status::Ok).await;
            }
        };
        // Time bound: the side must finish once the feed is exhausted (EOF).
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("handshake side hung after EOF");
        drop(ours);
        let _ = writer.await;
        let _ = drain.await;
    });
}

/// Acceptor side of the handshake (reads send_name, challenge_reply).
pub fn fuzz_handshake_accept(data: &[u8]) {
    handshake_side(data, false);
}

/// Initiator side of the handshake (reads status, challenge, challenge_ack).
pub fn fuzz_handshake_initiate(data: &[u8]) {
    handshake_side(data, true);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The embedded EPMD server's request parser: `data` is sent on a fresh loopback
/// connection, which is then half-closed; the server must answer or close.
pub fn fuzz_epmd_server(data: &[u8]) {
    use std::sync::OnceLock;
    static SERVER: OnceLock<(u16, std::sync::Mutex<tokio::runtime::Runtime>)> = OnceLock::new();
    let (port, _rt) = SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut port = 0;
        for _ in 0..20 {
            let p = free_port();
            if let Ok(Some(_h)) = rt.block_on(orbit_dist::epmd::server::start(p)) {
                port = p;
                break;
            }
        }
        assert!(port != 0, "could not start the embedded epmd");
        (port, std::sync::Mutex::new(rt))
    });
    let rt = runtime();
    let port = *port;
    rt.block_on(async {
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            return;
        };
        let _ = s.write_all(data).await;
        let _ = s.shutdown().await;
        let mut sink = Vec::new();
        // ALIVE2 keeps the connection open while the name is registered; drop it then.
        let _ = tokio::time::timeout(Duration::from_millis(200), s.read_to_end(&mut sink)).await;
    });
}

/// The EPMD client's reply parsers (ALIVE2, PORT_PLEASE2, NAMES): a loopback listener
/// answers every request with `data` and closes.
pub fn fuzz_epmd_client(data: &[u8]) {
    let rt = runtime();
    rt.block_on(async {
        let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await else {
            return;
        };
        let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
        let reply = data.to_vec();
        let server = tokio::spawn(async move {
            for _ in 0..3 {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let mut req = [0u8; 512];
                let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut req)).await;
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
            }
        });
        let bound = Duration::from_secs(10);
        let c = orbit_dist::epmd::client::port_please("127.0.0.1", port, "x");
        tokio::time::timeout(bound, c)
            .await
            .expect("port_please hung")
            .ok();
        let c = orbit_dist::epmd::client::names("127.0.0.1", port);
        tokio::time::timeout(bound, c)
            .await
            .expect("names hung")
            .ok();
        let c = orbit_dist::epmd::client::register(port, "x", 4370, 77);
        let _ = tokio::time::timeout(bound, c).await.expect("register hung");
        server.abort();
    });
}

/// Recomputes the header and body CRC-32 of a (possibly mutated) table file where its
/// layout allows (`orbit::ets::file`'s format, version 2: magic, version, header length,
/// header term, header CRC, framed object terms, end marker, count, body CRC).
fn fix_table_file_crcs(f: &mut [u8]) {
    if f.len() < 16 + 4 + 20 {
        return;
    }
    let hlen = u32::from_le_bytes([f[12], f[13], f[14], f[15]]) as usize;
    let Some(hend) = 16usize.checked_add(hlen).filter(|e| e + 4 + 20 <= f.len()) else {
        return;
    };
    let c = crc32fast::hash(&f[..hend]);
    f[hend..hend + 4].copy_from_slice(&c.to_le_bytes());
    let n = f.len();
    let c = crc32fast::hash(&f[hend + 4..n - 4]);
    f[n - 4..].copy_from_slice(&c.to_le_bytes());
}

/// A recursive serde type: nested lists reach the decoder's reservations at every level.
#[derive(serde::Serialize, serde::Deserialize, Clone, PartialEq)]
pub struct TableFileNode(pub Vec<TableFileNode>);

/// Table files (`orbit::ets::file2tab_from_bytes`) with their checksums made valid, loaded
/// as a few key/value shapes: an error or a table, never a panic; a loaded table's size
/// is what it holds. Seeds: [`table_file_seeds`].
pub fn fuzz_table_file(data: &[u8]) {
    use orbit::ets::file::file2tab_from_bytes;
    use orbit::ets::FileOptions;
    let mut f = data.to_vec();
    fix_table_file_crcs(&mut f);
    let any_types = FileOptions::new().check_types(false);
    if let Ok(t) = file2tab_from_bytes::<u64, Vec<String>>(&f, any_types) {
        let _ = t.size();
    }
    if let Ok(t) = file2tab_from_bytes::<String, (i64, Option<f64>)>(&f, any_types) {
        let _ = t.size();
    }
    if let Ok(t) = file2tab_from_bytes::<u64, Term>(&f, any_types) {
        let _ = t.size();
    }
    if let Ok(t) = file2tab_from_bytes::<u64, TableFileNode>(&f, any_types) {
        let _ = t.size();
    }
    let _ = file2tab_from_bytes::<u64, Vec<String>>(&f, FileOptions::new());
}

/// The seed corpus of `table_file` (`fuzz/corpus/table_file/`): real `tab2file` files of
/// each key/value shape the target loads and each table type. Regenerate after a format
/// change with `cargo test -p orbit-fuzz --lib -- --ignored write_table_file_seeds`.
pub fn table_file_seeds() -> Vec<(String, Vec<u8>)> {
    use orbit::ets::{tab2file, FileOptions, Table, TableType};
    fn save<K, V>(t: &Table<K, V>) -> Vec<u8>
    where
        K: orbit::ets::Key + serde::Serialize + serde::de::DeserializeOwned,
        V: orbit::ets::Value + serde::Serialize + serde::de::DeserializeOwned,
    {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("orbit-fuzz-seed-{}-{n}", std::process::id()));
        tab2file(t, &p, FileOptions::new()).expect("seed saves");
        let b = std::fs::read(&p).expect("seed reads");
        let _ = std::fs::remove_file(&p);
        b
    }
    let kinds = [
        TableType::Set,
        TableType::OrderedSet,
        TableType::Bag,
        TableType::DuplicateBag,
    ];
    let mut out = Vec::new();
    let empty: Table<u64, Term> = Table::builder().build().expect("table");
    out.push(("empty".to_string(), save(&empty)));
    let terms: Table<u64, Term> = Table::builder().build().expect("table");
    let _ = terms.insert(1, Term::atom("ok"));
    let _ = terms.insert(
        2,
        Term::tuple(vec![
            Term::Int(5),
            Term::Binary(b"ab".to_vec()),
            Term::nil(),
        ]),
    );
    out.push(("u64_term".to_string(), save(&terms)));
    let nodes: Table<u64, TableFileNode> = Table::builder().build().expect("table");
    let leaf = TableFileNode(vec![]);
    let _ = nodes.insert(
        1,
        TableFileNode(vec![leaf.clone(), TableFileNode(vec![leaf])]),
    );
    out.push(("u64_node".to_string(), save(&nodes)));
    for (i, kind) in kinds.into_iter().enumerate() {
        let t: Table<String, (i64, Option<f64>)> =
            Table::builder().kind(kind).build().expect("table");
        let _ = t.insert("a".into(), (-1, Some(0.5)));
        let _ = t.insert("bc".into(), (1 << 40, None));
        out.push((format!("string_tuple_{i}"), save(&t)));
        let t: Table<u64, Vec<String>> = Table::builder().kind(kind).build().expect("table");
        let _ = t.insert(1, vec![]);
        let _ = t.insert(2, vec!["x".into(), "yz".into()]);
        let _ = t.insert(300, vec!["é".into()]);
        out.push((format!("u64_vec_string_{i}"), save(&t)));
    }
    out
}

#[cfg(test)]
mod tests {
    /// Writes [`super::table_file_seeds`] to `fuzz/corpus/table_file/` (replacing it).
    #[test]
    #[ignore = "regenerates the committed corpus; run by hand after a format change"]
    fn write_table_file_seeds() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/table_file");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                std::fs::remove_file(e.path()).expect("old seed removed");
            }
        }
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (name, bytes) in super::table_file_seeds() {
            std::fs::write(dir.join(name), bytes).expect("seed written");
        }
    }

    /// Every seed loads as what it was saved as.
    #[test]
    fn table_file_seeds_load() {
        use orbit::ets::file::file2tab_from_bytes;
        use orbit::ets::FileOptions;
        let any = FileOptions::new().check_types(false);
        for (name, bytes) in super::table_file_seeds() {
            let ok = file2tab_from_bytes::<u64, orbit_term::Term>(&bytes, any).is_ok()
                || file2tab_from_bytes::<String, (i64, Option<f64>)>(&bytes, any).is_ok()
                || file2tab_from_bytes::<u64, Vec<String>>(&bytes, any).is_ok();
            assert!(ok, "{name} does not load");
        }
    }
}
