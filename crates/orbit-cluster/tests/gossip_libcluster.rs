//! Orbit's Gossip against the real libcluster Gossip (from `../shared/beamlibs`), both
//! directions, with and without a secret, a peer that restarts is reconnected, and a
//! wrong secret is ignored.
//!
//! Setup: loopback only, broadcast to `127.255.255.255` (`broadcast_only`, libcluster's
//! own option; multicast needs the `MULTICAST` flag on `lo`, which it lacks here), a
//! test-specific UDP port per scenario, both sides bound to `0.0.0.0:PORT` with
//! `SO_REUSEADDR`. Each direction is forced: for "Orbit connects", the Elixir node's
//! libcluster `connect` is a no-op MFA; for "Elixir connects", Orbit's connector only
//! counts. Skipped with a message when `elixir` or the beamlibs build is missing.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use orbit_cluster::strategy::{Cluster, Connector, Gossip, GossipConfig};
use orbit_dist::{Node, NodeEvent, Options};
use tokio::sync::mpsc;

const COOKIE: &str = "gossip_cookie";
const WINDOW: Duration = Duration::from_secs(5);

/// Orbit's node, except that it never dials: the peer must.
struct ListenOnly {
    node: Node,
    asked: AtomicU64,
}

impl Connector for ListenOnly {
    fn self_name(&self) -> String {
        self.node.name()
    }
    fn connected(&self) -> Vec<String> {
        Connector::connected(&self.node)
    }
    fn connect(&self, _node: &str) -> BoxFuture<'static, bool> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { false })
    }
    fn disconnect(&self, node: &str) -> bool {
        Connector::disconnect(&self.node, node)
    }
    fn events(&self) -> mpsc::UnboundedReceiver<NodeEvent> {
        self.node.monitor_nodes()
    }
}

fn gossip(port: u16, secret: Option<&str>) -> GossipConfig {
    let c = GossipConfig::default()
        .port(port)
        .broadcast("127.255.255.255".parse().unwrap());
    match secret {
        Some(s) => c.secret(s),
        None => c,
    }
}

async fn wait_event(
    rx: &mut mpsc::UnboundedReceiver<NodeEvent>,
    want: impl Fn(&NodeEvent) -> bool,
    timeout: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if want(&ev) => return true,
            Ok(Some(_)) => {}
            _ => return false,
        }
    }
}

/// One direction, one secret setting: both sides see each other within [`WINDOW`].
async fn scenario(
    libs: &std::path::PathBuf,
    node: Node,
    events: &mut mpsc::UnboundedReceiver<NodeEvent>,
    n: u16,
    secret: Option<&str>,
    orbit_dials: bool,
) {
    let port = 47300 + n;
    let peer_name = format!("gossip_peer{n}@127.0.0.1");
    let port_s = port.to_string();
    let mut env = vec![("GOSSIP_PORT", port_s.as_str())];
    if let Some(s) = secret {
        env.push(("GOSSIP_SECRET", s));
    }
    let me = node.name();
    let label = format!("scenario {n} (secret: {secret:?}, orbit dials: {orbit_dials})");
    if orbit_dials {
        // Orbit listens first; libcluster's first heartbeat (at its start) reaches it.
        env.push(("GOSSIP_NO_CONNECT", "1"));
        let g = Gossip::new(gossip(port, secret));
        let stats = g.stats();
        let cluster = Cluster::start_one("t", Box::new(g), Arc::new(node));
        let mut peer = common::Peer::start(libs, &peer_name, COOKIE, "gossip_peer.exs", &env);
        assert!(
            peer.wait_line("ready", Duration::from_secs(60))
                .await
                .is_some(),
            "{label}: peer did not start"
        );
        let up = wait_event(
            events,
            |e| *e == NodeEvent::NodeUp(peer_name.clone()),
            WINDOW,
        )
        .await;
        assert!(
            up,
            "{label}: Orbit did not connect within {WINDOW:?}: {:?}",
            stats.get()
        );
        assert!(
            peer.wait_line(&format!("nodeup {me}"), WINDOW)
                .await
                .is_some(),
            "{label}: peer saw no nodeup"
        );
        // The counter is bumped when the connect returns, maybe after the nodeup events.
        let c = stats.wait_for(WINDOW, |c| c.connected >= 1).await;
        assert!(c.is_ok(), "{label}: Orbit did not dial: {c:?}");
        assert!(node.list().contains(&peer_name));
        assert!(peer.node_list().await.contains(&me));
        cluster.stop().await;
        peer.stop().await;
    } else {
        // The peer runs first; Orbit's first heartbeat (at its start) makes it dial.
        let mut peer = common::Peer::start(libs, &peer_name, COOKIE, "gossip_peer.exs", &env);
        assert!(
            peer.wait_line("ready", Duration::from_secs(60))
                .await
                .is_some(),
            "{label}: peer did not start"
        );
        let listen = Arc::new(ListenOnly {
            node,
            asked: AtomicU64::new(0),
        });
        let g = Gossip::new(gossip(port, secret));
        let stats = g.stats();
        let cluster = Cluster::start_one("t", Box::new(g), listen.clone());
        assert!(
            peer.wait_line(&format!("nodeup {me}"), WINDOW)
                .await
                .is_some(),
            "{label}: the peer did not connect within {WINDOW:?}: {:?}",
            stats.get()
        );
        let up = wait_event(
            events,
            |e| *e == NodeEvent::NodeUp(peer_name.clone()),
            WINDOW,
        )
        .await;
        assert!(up, "{label}: Orbit saw no nodeup");
        assert!(node.list().contains(&peer_name));
        assert!(peer.node_list().await.contains(&me));
        cluster.stop().await;
        peer.stop().await;
    }
    let down = wait_event(
        events,
        |e| matches!(e, NodeEvent::NodeDown(p, _) if *p == peer_name),
        Duration::from_secs(15),
    )
    .await;
    assert!(down, "{label}: no nodedown after the peer stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orbit_and_libcluster_gossip_find_each_other() {
    let libs = match common::beamlibs() {
        Ok(l) => l,
        Err(why) => {
            eprintln!("SKIPPED orbit_and_libcluster_gossip_find_each_other: {why}");
            return;
        }
    };
    let node = Node::start("orbit_gossip@127.0.0.1", Options::cookie(COOKIE))
        .await
        .unwrap();
    let mut events = node.monitor_nodes();

    scenario(&libs, node, &mut events, 1, None, true).await;
    scenario(&libs, node, &mut events, 2, None, false).await;
    scenario(&libs, node, &mut events, 3, Some("s3cret"), true).await;
    scenario(&libs, node, &mut events, 4, Some("s3cret"), false).await;

    // Healing: the peer goes away and comes back under the same name; its first
    // heartbeat after the restart makes Orbit reconnect (within the window).
    let port = 47306u16;
    let port_s = port.to_string();
    let peer_name = "gossip_peer6@127.0.0.1".to_string();
    let env = [("GOSSIP_PORT", port_s.as_str()), ("GOSSIP_NO_CONNECT", "1")];
    let g = Gossip::new(gossip(port, None));
    let stats = g.stats();
    let cluster = Cluster::start_one("t", Box::new(g), Arc::new(node));
    for round in 0..2 {
        let mut peer = common::Peer::start(&libs, &peer_name, COOKIE, "gossip_peer.exs", &env);
        assert!(peer
            .wait_line("ready", Duration::from_secs(60))
            .await
            .is_some());
        let up = wait_event(
            &mut events,
            |e| *e == NodeEvent::NodeUp(peer_name.clone()),
            WINDOW,
        )
        .await;
        assert!(
            up,
            "round {round}: Orbit did not (re)connect: {:?}",
            stats.get()
        );
        peer.stop().await;
        let down = wait_event(
            &mut events,
            |e| matches!(e, NodeEvent::NodeDown(p, _) if *p == peer_name),
            Duration::from_secs(15),
        )
        .await;
        assert!(down, "round {round}: no nodedown");
    }
    let c = stats.wait_for(WINDOW, |c| c.connected >= 2).await;
    assert_eq!(c.map(|c| c.connected), Ok(2), "one dial per (re)start");
    cluster.stop().await;

    // A wrong secret: each side drops the other's heartbeats; nobody connects.
    let port = 47305u16;
    let port_s = port.to_string();
    let peer_name = "gossip_peer5@127.0.0.1".to_string();
    let env = [("GOSSIP_PORT", port_s.as_str()), ("GOSSIP_SECRET", "right")];
    let mut peer = common::Peer::start(&libs, &peer_name, COOKIE, "gossip_peer.exs", &env);
    assert!(peer
        .wait_line("ready", Duration::from_secs(60))
        .await
        .is_some());
    let g = Gossip::new(gossip(port, Some("wrong")));
    let stats = g.stats();
    let cluster = Cluster::start_one("t", Box::new(g), Arc::new(node));
    // Two of the peer's heartbeats heard and dropped (at most ~10 s: 1..5 s apart).
    let c = stats
        .wait_for(Duration::from_secs(20), |c| c.dropped >= 2 && c.sent >= 2)
        .await
        .expect("the peer's heartbeats reached Orbit and were dropped");
    assert_eq!(c.accepted, 0, "{c:?}");
    assert_eq!(c.connected + c.failed, 0, "{c:?}");
    assert!(!node.list().contains(&peer_name));
    assert!(
        peer.node_list().await.is_empty(),
        "the peer connected despite the wrong secret"
    );
    assert!(
        !peer.seen.iter().any(|l| l.starts_with("nodeup")),
        "{:?}",
        peer.seen
    );
    cluster.stop().await;
    peer.stop().await;
}
