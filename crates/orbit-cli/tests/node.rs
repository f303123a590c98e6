//! `orbit node` as a subprocess next to an Orbit peer (this test process): both run
//! Gossip (broadcast on 127.255.255.255, a test-specific port), they connect, then
//! SIGTERM makes `orbit node` leave: it exits 0 and the peer sees `nodedown`. A bad
//! cluster file exits 1 naming the key. The same next to an Elixir node running the
//! real libcluster Gossip, with `--cookie-file` (skipped without `elixir`).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use orbit_cluster::strategy::{Cluster, Gossip, GossipConfig};
use orbit_dist::{Node, NodeEvent, Options};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const PORT: u16 = 47340;

async fn wait_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<NodeEvent>,
    want: impl Fn(&NodeEvent) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if want(&ev) => return true,
            Ok(Some(_)) => {}
            _ => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orbit_node_joins_by_gossip_and_leaves_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("orbit-node-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("cluster.toml");
    std::fs::write(
        &toml,
        format!(
            "[topologies.lan]\nstrategy = \"Cluster.Strategy.Gossip\"\n\
             [topologies.lan.config]\nport = {PORT}\nmulticast_addr = \"127.255.255.255\"\n\
             broadcast_only = true\nsecret = \"node-test\"\n"
        ),
    )
    .unwrap();

    let node = Node::start("cli_peer@127.0.0.1", Options::cookie("cli_cookie"))
        .await
        .unwrap();
    let mut events = node.monitor_nodes();
    let g = Gossip::new(
        GossipConfig::default()
            .port(PORT)
            .broadcast("127.255.255.255".parse().unwrap())
            .secret("node-test"),
    );
    let cluster = Cluster::start_one("lan", Box::new(g), Arc::new(node));

    let mut child = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args([
            "node",
            "--name",
            "cli_node@127.0.0.1",
            "--cookie",
            "cli_cookie",
        ])
        .arg("--cluster")
        .arg(&toml)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn orbit node");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();

    // The child's first heartbeat (at its start) reaches us, or ours reaches it.
    let up = wait_event(&mut events, |e| {
        *e == NodeEvent::NodeUp("cli_node@127.0.0.1".into())
    })
    .await;
    assert!(up, "orbit node did not connect");
    let mut lines = Vec::new();
    loop {
        let l = tokio::time::timeout(Duration::from_secs(20), out.next_line())
            .await
            .expect("orbit node printed no nodeup")
            .unwrap()
            .expect("orbit node closed stdout");
        let done = l == "nodeup cli_peer@127.0.0.1";
        lines.push(l);
        if done {
            break;
        }
    }
    assert!(
        lines[0].starts_with("started cli_node@127.0.0.1"),
        "{lines:?}"
    );
    assert!(node.list().contains(&"cli_node@127.0.0.1".to_string()));

    // SIGTERM: it leaves, exits 0, and we see it go.
    let pid = child.id().expect("child pid") as libc::pid_t;
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("orbit node did not exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let down = wait_event(
        &mut events,
        |e| matches!(e, NodeEvent::NodeDown(n, _) if n == "cli_node@127.0.0.1"),
    )
    .await;
    assert!(down, "no nodedown after orbit node left");
    let mut rest = Vec::new();
    while let Ok(Some(l)) = out.next_line().await {
        rest.push(l);
    }
    assert!(
        rest.iter()
            .any(|l| l.starts_with("stopped (SIGTERM); closed 1")),
        "{rest:?}"
    );
    cluster.stop().await;

    // A bad cluster file: exit 1, the message names the key.
    std::fs::write(
        &toml,
        "[topologies.lan]\nstrategy = \"Gossip\"\nconfig = { prot = 1 }\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args([
            "node",
            "--name",
            "cli_bad@127.0.0.1",
            "--cookie",
            "c",
            "--cluster",
        ])
        .arg(&toml)
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown key `prot`"), "{err}");

    // A Gossip port held by a socket without SO_REUSEADDR: the topology cannot bind,
    // `orbit node` says so and exits 1.
    let _holder = std::net::UdpSocket::bind(("0.0.0.0", PORT + 2)).unwrap();
    std::fs::write(
        &toml,
        format!(
            "[topologies.lan]\nstrategy = \"Gossip\"\nconfig = {{ port = {} }}\n",
            PORT + 2
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args([
            "node",
            "--name",
            "cli_busy@127.0.0.1",
            "--cookie",
            "c",
            "--cluster",
        ])
        .arg(&toml)
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("topology lan stopped") && err.contains("binding"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The built BEAM libraries for `ERL_LIBS`, or why the Elixir test is skipped.
fn beamlibs() -> Result<std::path::PathBuf, String> {
    match std::process::Command::new("elixir")
        .arg("--version")
        .output()
    {
        Ok(o) if o.status.success() => {}
        _ => return Err("`elixir` is not on PATH".into()),
    }
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let script = std::env::var("ORBIT_BEAMLIBS_BUILD")
        .map(std::path::PathBuf::from)
        .ok()
        .into_iter()
        .chain([
            manifest.join("../../../shared/beamlibs/build.sh"),
            manifest.join("../../../../shared/beamlibs/build.sh"),
            "/work/shared/beamlibs/build.sh".into(),
        ])
        .find(|p| p.exists())
        .ok_or("../shared/beamlibs/build.sh not found (set ORBIT_BEAMLIBS_BUILD)")?;
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed", script.display()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().into())
}

/// `orbit node` with a cookie file next to an Elixir node running the real libcluster
/// Gossip: the Elixir node connects, and sees `nodedown` when `orbit node` gets SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orbit_node_next_to_libcluster() {
    let libs = match beamlibs() {
        Ok(l) => l,
        Err(why) => {
            eprintln!("SKIPPED orbit_node_next_to_libcluster: {why}");
            return;
        }
    };
    const PORT2: u16 = 47341;
    let dir = std::env::temp_dir().join(format!("orbit-node-ex-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("cluster.toml");
    std::fs::write(
        &toml,
        format!(
            "[topologies.lan]\nstrategy = \"Cluster.Strategy.Gossip\"\n\
             [topologies.lan.config]\nport = {PORT2}\nmulticast_addr = \"127.255.255.255\"\n\
             broadcast_only = true\n"
        ),
    )
    .unwrap();
    let cookie = dir.join("cookie");
    std::fs::write(&cookie, "cli_ex_cookie").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400)).unwrap();

    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../orbit-cluster/tests/beam/gossip_peer.exs");
    let mut ex = Command::new("elixir")
        .args([
            "--name",
            "cli_elixir@127.0.0.1",
            "--cookie",
            "cli_ex_cookie",
        ])
        .arg(&script)
        .env("ERL_LIBS", &libs)
        .env("GOSSIP_PORT", PORT2.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn elixir");
    let mut ex_out = BufReader::new(ex.stdout.take().unwrap()).lines();
    let mut wait_ex = async |prefix: &str| loop {
        let l = tokio::time::timeout(Duration::from_secs(60), ex_out.next_line())
            .await
            .unwrap_or_else(|_| panic!("elixir printed no {prefix:?}"))
            .unwrap()
            .expect("elixir ended");
        if l.starts_with(prefix) {
            return l;
        }
    };
    wait_ex("ready").await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args(["node", "--name", "cli_node2@127.0.0.1", "--cookie-file"])
        .arg(&cookie)
        .arg("--cluster")
        .arg(&toml)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn orbit node");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    wait_ex("nodeup cli_node2@127.0.0.1").await;
    loop {
        let l = tokio::time::timeout(Duration::from_secs(20), out.next_line())
            .await
            .expect("orbit node printed no nodeup")
            .unwrap()
            .expect("orbit node closed stdout");
        if l == "nodeup cli_elixir@127.0.0.1" {
            break;
        }
    }
    // The demo service answers the Elixir node.
    let mut ex_in = ex.stdin.take().unwrap();
    ex_in
        .write_all(b"echo cli_node2@127.0.0.1\n")
        .await
        .unwrap();
    ex_in.flush().await.unwrap();
    assert_eq!(wait_ex("echo ").await, "echo ok");
    let pid = child.id().expect("child pid") as libc::pid_t;
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("orbit node did not exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    wait_ex("nodedown cli_node2@127.0.0.1").await;
    drop(ex_in);
    let _ = tokio::time::timeout(Duration::from_secs(10), ex.wait()).await;
    let _ = std::fs::remove_dir_all(&dir);
}
