//! Gossip over multicast with libcluster's defaults (group 233.252.1.32, port 45892,
//! TTL 1, loop on) between Orbit and the real libcluster, inside a fresh network
//! namespace: the host's multicast route leaves through its external interface, so the
//! test re-runs itself under `unshare -n` with `lo` up, `MULTICAST` on and
//! `224.0.0.0/4` routed to `lo` (nothing leaves the namespace). Skipped with a message
//! when namespaces are not permitted (not root) or `elixir` is missing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use orbit_cluster::strategy::{Cluster, Gossip, GossipConfig};
use orbit_dist::{Node, NodeEvent, Options};

const INNER: &str = "ORBIT_GOSSIP_MULTICAST_NETNS";

#[test]
fn libcluster_default_multicast_in_a_namespace() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    let libs = match common::beamlibs() {
        Ok(l) => l,
        Err(why) => {
            eprintln!("SKIPPED libcluster_default_multicast_in_a_namespace: {why}");
            return;
        }
    };
    let exe = std::env::current_exe().unwrap();
    let setup =
        "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo";
    let probe = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", setup])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        other => {
            eprintln!("SKIPPED libcluster_default_multicast_in_a_namespace: no network namespace ({other:?})");
            return;
        }
    }
    let script = format!(
        "{setup} && exec \"$0\" --exact libcluster_default_multicast_in_a_namespace --nocapture --test-threads 1"
    );
    let status = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .arg(&exe)
        .env(INNER, "1")
        .env("ORBIT_BEAMLIBS_DIR", &libs)
        .status()
        .expect("running the test in a namespace");
    assert!(
        status.success(),
        "the multicast test in the namespace failed: {status:?}"
    );
}

fn inner() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let libs = std::path::PathBuf::from(std::env::var("ORBIT_BEAMLIBS_DIR").unwrap());
        // Orbit first: its embedded EPMD serves the namespace (no epmd daemon left behind).
        let node = Node::start("orbit_mc@127.0.0.1", Options::cookie("mc_cookie"))
            .await
            .unwrap();
        let mut events = node.monitor_nodes();
        let g = Gossip::new(GossipConfig::default());
        let stats = g.stats();
        let cluster = Cluster::start_one("mc", Box::new(g), Arc::new(node));
        // Our own heartbeat comes back through the multicast loop.
        stats
            .wait_for(Duration::from_secs(10), |c| c.own >= 1)
            .await
            .expect("multicast loop");
        let env = [("GOSSIP_PORT", "45892"), ("GOSSIP_MULTICAST", "1")];
        let mut peer = common::Peer::start(
            &libs,
            "mc_peer@127.0.0.1",
            "mc_cookie",
            "gossip_peer.exs",
            &env,
        );
        assert!(peer
            .wait_line("ready", Duration::from_secs(60))
            .await
            .is_some());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(NodeEvent::NodeUp(n))) if n == "mc_peer@127.0.0.1" => break,
                Ok(Some(_)) => {}
                other => panic!(
                    "no nodeup over multicast within 5 s: {other:?} {:?}",
                    stats.get()
                ),
            }
        }
        assert!(peer
            .wait_line("nodeup orbit_mc@127.0.0.1", Duration::from_secs(5))
            .await
            .is_some());
        // The peer's heartbeats reach Orbit too (maybe after the connection is up).
        let c = stats
            .wait_for(Duration::from_secs(10), |c| c.accepted >= 1)
            .await;
        assert!(
            c.is_ok(),
            "no libcluster heartbeat heard over multicast: {c:?}"
        );
        cluster.stop().await;
        peer.stop().await;
    });
}
