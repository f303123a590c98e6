//! Fuzz target bodies for Orbit's hostile-input parsers.
//!
//! Contract: every `fuzz_*` function takes arbitrary bytes, must never panic, must
//! allocate at most a bounded multiple of the input (plus a constant), and must run in
//! time linear in the input. The same functions are driven by the libFuzzer targets in
//! the repository's `fuzz/` crate (nightly, `scripts/fuzz`) and by the stable replay test
//! `tests/replay.rs` (corpus + seeded mutations + worst-shape 1 MB inputs, counting
//! allocator), so CI never depends on nightly.
//!
//! Targets: [`TARGETS`]. The table-file loader (`crates/orbit/src/ets/file.rs`) target
//! is to be added here as `fuzz_table_file` (see `fuzz/README.md`).

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
    ("handshake_accept", fuzz_handshake_accept),
    ("handshake_initiate", fuzz_handshake_initiate),
    ("epmd_server", fuzz_epmd_server),
    ("epmd_client", fuzz_epmd_client),
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
    let _ = parse_fast(data);
    let body = match data.first() {
        Some(112) => &data[1..],
        _ => data,
    };
    let _ = parse_fast(body);
    if let Ok((ctl, used)) = Term::decode_prefix(body, &DecodeLimits::DEFAULT) {
        if let Ok(c) = Control::parse(ctl) {
            if c.has_payload() {
                let _ = Term::decode_prefix(&body[used..], &DecodeLimits::DEFAULT);
            }
        }
    }
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
