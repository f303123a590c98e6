//! Epmd, LocalEpmd and ErlangHosts against real `erl` nodes registered in this host's
//! EPMD: each topology connects its nodes, and a node that is killed and started again
//! is reconnected (backoff) though libcluster's Epmd without `timeout` would not retry.
//! Skipped with a message when `erl` is missing.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use orbit_cluster::strategy::{Cluster, EpmdConfig, ErlangHostsConfig, Topology};
use orbit_dist::{Node, NodeEvent, Options};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const COOKIE: &str = "epmd_strategies_cookie";
const T: Duration = Duration::from_secs(20);

/// `erl -name NAME` that prints `ready` once distribution is up.
async fn erl(name: &str) -> Child {
    let mut c = Command::new("erl")
        .args(["-noshell", "-name", name, "-setcookie", COOKIE, "-eval"])
        .arg("io:format(\"ready~n\"), receive stop -> ok end.")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn erl");
    let mut out = BufReader::new(c.stdout.take().unwrap()).lines();
    let l = tokio::time::timeout(T, out.next_line())
        .await
        .expect("erl ready");
    assert_eq!(l.unwrap().as_deref(), Some("ready"));
    c
}

async fn wait_event(rx: &mut mpsc::UnboundedReceiver<NodeEvent>, want: NodeEvent) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if ev == want => return,
            Ok(Some(_)) => {}
            other => panic!("waiting for {want:?}: {other:?}"),
        }
    }
}

fn up(n: &str) -> NodeEvent {
    NodeEvent::NodeUp(n.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epmd_local_epmd_and_erlang_hosts_connect_and_heal() {
    if std::process::Command::new("erl")
        .arg("-version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED epmd_local_epmd_and_erlang_hosts_connect_and_heal: `erl` is not on PATH"
        );
        return;
    }
    let node = Node::start("orbit_epmd@127.0.0.1", Options::cookie(COOKIE))
        .await
        .unwrap();
    let mut events = node.monitor_nodes();
    let conn: Arc<Node> = Arc::new(node);

    // Epmd: a static list (with a node that never comes: retried, harmless).
    let p1 = "epmd_p1@127.0.0.1";
    let mut c1 = erl(p1).await;
    let cfg = EpmdConfig::hosts([p1, "epmd_ghost@127.0.0.1"]);
    let cluster = Cluster::start(vec![Topology::epmd("static", cfg)], conn.clone());
    wait_event(&mut events, up(p1)).await;

    // Killed and started again: reconnected without a `timeout`.
    c1.kill().await.unwrap();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(NodeEvent::NodeDown(n, _))) if n == p1 => break,
            Ok(Some(_)) => {}
            other => panic!("no nodedown for {p1}: {other:?}"),
        }
    }
    let _c1 = erl(p1).await;
    wait_event(&mut events, up(p1)).await;
    cluster.stop().await;

    // LocalEpmd: every name on this host's EPMD, on our host part.
    let p2 = "epmd_p2@127.0.0.1";
    let _c2 = erl(p2).await;
    let cluster = Cluster::start(vec![Topology::local_epmd("local")], conn.clone());
    wait_event(&mut events, up(p2)).await;
    cluster.stop().await;

    // ErlangHosts: the hosts in a .hosts.erlang file, each asked for its names.
    let dir = std::env::temp_dir().join(format!("orbit-hosts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(".hosts.erlang");
    std::fs::write(&file, "% test hosts\n'127.0.0.1'.\n").unwrap();
    let p3 = "epmd_p3@127.0.0.1";
    let _c3 = erl(p3).await;
    let cfg = ErlangHostsConfig {
        hosts_file: Some(file),
        ..Default::default()
    };
    let cluster = Cluster::start(vec![Topology::erlang_hosts("hosts", cfg)], conn.clone());
    wait_event(&mut events, up(p3)).await;
    cluster.stop().await;
    let listed = node.list();
    for p in [p1, p2, p3] {
        assert!(listed.contains(&p.to_string()), "{p} not in {listed:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
