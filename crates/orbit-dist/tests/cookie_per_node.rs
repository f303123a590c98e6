//! Per-node cookies (`erlang:set_cookie(Node, Cookie)`) against real Erlang nodes, and
//! wrong cookies refused and logged without the cookie. This binary installs its own
//! log subscriber, which hands every log line to the test, before the shared runtime
//! starts.

mod common;

use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use orbit_dist::Ping;

/// Every log line the node wrote, in order.
fn log_lines() -> &'static Mutex<mpsc::Receiver<String>> {
    static RX: OnceLock<Mutex<mpsc::Receiver<String>>> = OnceLock::new();
    RX.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let _ = tracing_subscriber::fmt()
            .with_env_filter("orbit_dist=debug")
            .with_ansi(false)
            .with_writer(move || LineWriter {
                tx: tx.lock().unwrap().clone(),
                buf: Vec::new(),
            })
            .try_init();
        Mutex::new(rx)
    })
}

struct LineWriter {
    tx: mpsc::Sender<String>,
    buf: Vec<u8>,
}

impl std::io::Write for LineWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.buf).into_owned();
        eprint!("{line}");
        let _ = self.tx.send(line);
    }
}

/// Waits (at most `secs`) for a log line containing `needle` and `peer`; every line
/// seen on the way (and the match) is returned so the caller can check what was logged.
fn wait_log(needle: &str, peer: &str, secs: u64) -> Vec<String> {
    let rx = log_lines().lock().unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains(needle) && l.contains(peer);
                seen.push(l);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!("no log line with {needle:?} within {secs}s; seen: {seen:?}"),
        }
    }
}

fn the_node() -> orbit_dist::Node {
    log_lines();
    node("orbit_ck")
}

#[test]
fn a_per_node_cookie_is_used_both_ways() {
    let node = the_node();
    let me = node.name();
    let rt = rt();
    let theirs = "their_own_cookie_Q7";
    // erl has another cookie than ours; it pings us once told to.
    let code = format!(
        "io:format(\"up~n\"), io:get_line(\"\"), \
         io:format(\"ping ~p~n\", [net_adm:ping('{me}')]), \
         io:get_line(\"\"), io:format(\"nodes ~p~n\", [nodes()]), receive stop -> ok end."
    );
    let mut erl = Peer::erl("erl_ck", theirs, &code);
    erl.expect("up", 30);
    let name = erl.name.clone();
    // Without the per-node cookie, our dial is refused.
    rt.block_on(async { assert_eq!(node.ping(&name).await, Ping::Pang) });
    node.set_cookie(&name, theirs).unwrap();
    // It dials in with its cookie: accepted.
    erl.say("go");
    assert_eq!(erl.expect("ping ", 30), "ping pong");
    // We dial it with its cookie.
    rt.block_on(async {
        assert!(node.disconnect(&name));
        assert_eq!(node.ping(&name).await, Ping::Pong);
    });
    erl.say("go");
    let l = erl.expect("nodes ", 10);
    assert!(l.contains(&me), "{l}");
    // Bad arguments are refused with a reason.
    assert!(node.set_cookie(&me, "x").is_err());
    assert!(node.set_cookie(&name, "").is_err());
}

#[test]
fn wrong_cookies_are_refused_and_the_logs_hold_no_cookie() {
    let node = the_node();
    let me = node.name();
    let rt = rt();
    let wrong = "Wrong_Secret_Cookie_Z9";
    let code = format!(
        "io:format(\"up~n\"), io:format(\"ping ~p~n\", [net_adm:ping('{me}')]), receive stop -> ok end."
    );
    let mut erl = Peer::erl("erl_wrong", wrong, &code);
    erl.expect("up", 30);
    assert_eq!(erl.expect("ping ", 30), "ping pang");
    let name = erl.name.clone();
    let mut seen = wait_log("incoming connection refused", &name, 15);
    // And the other way: we dial it with our (to it, wrong) cookie.
    rt.block_on(async { assert_eq!(node.ping(&name).await, Ping::Pang) });
    seen.extend(wait_log("connection attempt failed", &name, 15));
    assert!(
        seen.iter().any(|l| l.contains("cookies differ")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|l| l.contains(&name)), "{seen:?}");
    for l in &seen {
        assert!(
            !l.contains(wrong),
            "the peer's cookie leaked into the log: {l}"
        );
        assert!(!l.contains(COOKIE), "our cookie leaked into the log: {l}");
    }
}
