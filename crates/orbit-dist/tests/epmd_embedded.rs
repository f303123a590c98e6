//! The embedded EPMD: registration, port lookup and names over the real wire format,
//! a refused name clash, and two nodes that find each other through it with no external
//! `epmd` (on a private port, since a real epmd may hold 4369).

mod common;

use std::process::Command;

use common::*;
use orbit_dist::epmd::{client, server, NODE_TYPE_NORMAL};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn embedded_epmd_registers_resolves_and_refuses_clashes() {
    let port = free_port();
    rt().block_on(async {
        assert!(server::start(port).await.unwrap().is_some());
        // A second server on the same port defers to the first.
        assert!(server::start(port).await.unwrap().is_none());
        let reg = client::register(port, "alpha", 5555, NODE_TYPE_NORMAL)
            .await
            .unwrap();
        assert_ne!(reg.creation, 0);
        let info = client::port_please("127.0.0.1", port, "alpha")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((info.port, info.highest, info.lowest), (5555, 6, 6));
        assert!(client::port_please("127.0.0.1", port, "nobody")
            .await
            .unwrap()
            .is_none());
        let err = client::register(port, "alpha", 5556, NODE_TYPE_NORMAL)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("taken"), "{err}");
        assert_eq!(
            client::names("127.0.0.1", port).await.unwrap(),
            vec![("alpha".to_string(), 5555)]
        );
        // Closing the registration connection unregisters the name.
        drop(reg);
        let mut gone = false;
        for _ in 0..100 {
            if client::port_please("127.0.0.1", port, "alpha")
                .await
                .unwrap()
                .is_none()
            {
                gone = true;
                break;
            }
            // epmd sees the close asynchronously and sends no event: bounded polling.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(gone);
    });
}

#[test]
fn two_nodes_cluster_through_an_embedded_epmd_and_a_name_clash_is_refused() {
    let port = free_port();
    let start = |name: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orbit-node"));
        cmd.args([name, COOKIE])
            .env("ERL_EPMD_PORT", port.to_string());
        cmd
    };
    let (an, bn) = (unique("emb_a"), unique("emb_b"));
    // The first node finds nothing on the port and starts the embedded epmd itself.
    let mut a = Peer::command(start(&an), an.clone());
    a.expect("ready ", 30);
    let mut b = Peer::command(start(&bn), bn.clone());
    b.expect("ready ", 30);
    b.say(&format!("ping {an}"));
    assert_eq!(b.expect("ping ", 15), format!("ping {an} Pong"));
    // Same name again: epmd refuses, the node does not start.
    let out = start(&an)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("taken"), "{err}");
}
