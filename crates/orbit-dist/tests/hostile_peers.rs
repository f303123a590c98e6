//! Hostile peers: raw TCP clients that send garbage, a wrong digest, an oversized length
//! prefix, a frame that ends early, a deeply nested term, an unknown control message, or
//! fall silent. Each connection is closed with a logged reason (seen here as the
//! `NodeDown` reason) and the node keeps serving others.

mod common;

use std::time::Duration;

use common::*;
use orbit_dist::handshake::{self, flags, Local};
use orbit_dist::{NodeEvent, Options, Ping};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn start() -> orbit_dist::Node {
    let mut o = Options::cookie(COOKIE);
    o.net_ticktime = Duration::from_secs(4);
    o.max_frame = 1 << 20;
    node_with("orbit_hostile", o)
}

async fn dial(node: &orbit_dist::Node) -> TcpStream {
    TcpStream::connect(("127.0.0.1", node.port()))
        .await
        .unwrap()
}

/// Waits until the node closes `s` (EOF or reset), at most 10 s.
async fn closed_by_node(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue, // ticks or handshake bytes
            Err(_) => panic!("the node did not close the connection"),
        }
    }
}

async fn authenticated(node: &orbit_dist::Node, name: &str) -> TcpStream {
    let mut s = dial(node).await;
    let me = Local {
        name: name.into(),
        creation: 7,
        flags: flags::ORBIT,
        cookie: COOKIE.into(),
    };
    handshake::initiate(&mut s, &me, &node.name())
        .await
        .unwrap();
    s
}

async fn still_serving(node: &orbit_dist::Node) {
    let mut erl = Peer::erl(
        "erl_check",
        COOKIE,
        "io:format(\"up~n\"), receive stop -> ok end.",
    );
    erl.expect("up", 20);
    assert_eq!(node.ping(&erl.name).await, Ping::Pong);
}

/// Dials `node` and runs the handshake as `name` with `flags` and `cookie`; the error
/// it must fail with.
async fn refused(node: &orbit_dist::Node, name: &str, flags: u64, cookie: &str) -> String {
    let mut s = dial(node).await;
    let me = Local {
        name: name.into(),
        creation: 7,
        flags,
        cookie: cookie.into(),
    };
    handshake::initiate(&mut s, &me, &node.name())
        .await
        .expect_err("the handshake must be refused")
        .to_string()
}

#[test]
fn garbage_and_wrong_digest_before_the_handshake_are_refused() {
    let node = start();
    rt().block_on(async {
        let mut s = dial(&node).await;
        s.write_all(b"\x00\x05GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        closed_by_node(&mut s).await;

        let err = refused(&node, "evil_digest@127.0.0.1", flags::ORBIT, "wrong").await;
        assert!(err.contains("cookies differ"), "{err}");
        let err = refused(&node, "evil_flags@127.0.0.1", flags::PUBLISHED, COOKIE).await;
        assert!(err.contains("not_allowed"), "{err}");
        // Name checks: the acceptor wants name@host, the initiator the node it dialed.
        let err = refused(&node, "no_host_part", flags::ORBIT, COOKIE).await;
        assert!(err.contains("not_allowed"), "{err}");
        let mut s = dial(&node).await;
        let me = Local {
            name: unique("evil_dialer"),
            creation: 7,
            flags: flags::ORBIT,
            cookie: COOKIE.into(),
        };
        let err = handshake::initiate(&mut s, &me, "someone_else@127.0.0.1")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not the node dialed"), "{err}");
        still_serving(&node).await;
    });
}

#[test]
fn bad_frames_after_the_handshake_close_the_connection_with_a_reason() {
    let node = start();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "evil_len",
            vec![0xFF, 0xFF, 0xFF, 0xF0],
            "exceeds the limit",
        ),
        (
            "evil_short",
            {
                let mut v = 100u32.to_be_bytes().to_vec();
                v.extend_from_slice(&[112, 131, 104, 3]);
                v
            },
            "middle of a frame",
        ),
        (
            "evil_deep",
            {
                let mut body = vec![112, 131];
                for _ in 0..10_000 {
                    body.extend_from_slice(&[104, 1]);
                }
                body.push(106);
                let mut v = (body.len() as u32).to_be_bytes().to_vec();
                v.extend_from_slice(&body);
                v
            },
            "bad control message",
        ),
        (
            "evil_op",
            {
                let body = vec![112, 131, 104, 2, 97, 99, 106];
                let mut v = (body.len() as u32).to_be_bytes().to_vec();
                v.extend_from_slice(&body);
                v
            },
            "unknown control operation 99",
        ),
        (
            "evil_garbage",
            {
                let body = vec![112, 131, 255, 1, 2, 3];
                let mut v = (body.len() as u32).to_be_bytes().to_vec();
                v.extend_from_slice(&body);
                v
            },
            "bad control message",
        ),
    ];
    rt().block_on(async {
        let mut events = node.monitor_nodes();
        for (who, bytes, why) in cases {
            let name = unique(who);
            let mut s = authenticated(&node, &name).await;
            s.write_all(&bytes).await.unwrap();
            if who == "evil_short" {
                s.shutdown().await.unwrap();
            }
            let ev = wait_event(
                &mut events,
                10,
                |e| matches!(e, NodeEvent::NodeDown(n, _) if *n == name),
            )
            .await;
            let NodeEvent::NodeDown(_, reason) = ev else {
                unreachable!()
            };
            assert!(reason.contains(why), "{who}: {reason}");
            if who != "evil_short" {
                closed_by_node(&mut s).await;
            }
        }
        still_serving(&node).await;
    });
}

#[test]
fn a_silent_peer_is_declared_down_after_net_ticktime() {
    let node = start();
    rt().block_on(async {
        let mut events = node.monitor_nodes();
        let name = unique("evil_silent");
        let _s = authenticated(&node, &name).await;
        wait_event(&mut events, 5, |e| *e == NodeEvent::NodeUp(name.clone())).await;
        let ev = wait_event(
            &mut events,
            10,
            |e| matches!(e, NodeEvent::NodeDown(n, _) if *n == name),
        )
        .await;
        let NodeEvent::NodeDown(_, reason) = ev else {
            unreachable!()
        };
        assert!(reason.contains("net_ticktime"), "{reason}");
    });
}

#[test]
fn ticks_keep_an_idle_connection_to_a_beam_node_up() {
    let node = start();
    let me = node.name();
    // Both sides at net_ticktime 4 s: an idle connection lives only if each side ticks
    // and takes the other's ticks; erl would report nodedown after about 4 s of silence.
    let mut events = node.monitor_nodes();
    let code = format!(
        "true = net_kernel:connect_node('{me}'), ok = net_kernel:monitor_nodes(true), \
         io:format(\"up~n\"), \
         receive {{nodedown, N}} -> io:format(\"down ~p~n\", [N]) \
         after 6000 -> io:format(\"still ~p~n\", [nodes()]) end, \
         receive stop -> ok end."
    );
    let mut cmd = std::process::Command::new("erl");
    let name = unique("erl_tick");
    cmd.args([
        "-noshell",
        "-name",
        &name,
        "-setcookie",
        COOKIE,
        "-kernel",
        "net_ticktime",
        "4",
        "-eval",
        &code,
    ]);
    let mut erl = Peer::command(cmd, name.clone());
    erl.expect("up", 20);
    assert_eq!(erl.expect("still ", 15), format!("still ['{me}']"));
    rt().block_on(async {
        while let Ok(ev) = events.try_recv() {
            assert!(
                !matches!(&ev, NodeEvent::NodeDown(n, _) if *n == name),
                "{ev:?}"
            );
        }
        assert!(node.list().contains(&name));
    });
}
