//! `orbit cluster status` end to end: this test process is a node running the view
//! service; the `orbit` binary (a hidden observer) reports it, as a table and as JSON,
//! and an unreachable node is reported as such with exit code 2.

use std::process::Command;
use std::sync::OnceLock;

const COOKIE: &str = "orbit_cli_status_cookie";

fn node() -> &'static (tokio::runtime::Runtime, String) {
    static NODE: OnceLock<(tokio::runtime::Runtime, String)> = OnceLock::new();
    NODE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let name = format!("cli_view_{}@127.0.0.1", std::process::id());
        rt.block_on(async {
            orbit_dist::Node::start(&name, orbit_dist::Options::cookie(COOKIE))
                .await
                .expect("node");
            orbit_cluster::view::serve().await.expect("view service");
        });
        (rt, name)
    })
}

/// The tests share one node and change who it sees: they run one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits (at most 10 s) until `peer` is down, so the next test sees the node alone.
fn wait_down(
    rt: &tokio::runtime::Runtime,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<orbit_dist::NodeEvent>,
    peer: &str,
) {
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        if orbit_dist::Node::current().is_some_and(|n| !n.list().iter().any(|p| p == peer)) {
            return;
        }
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(orbit_dist::NodeEvent::NodeDown(n, _))) if n == peer => return,
                Ok(Some(_)) => {}
                other => panic!("{peer} still connected: {other:?}"),
            }
        }
    });
}

fn status(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args([
            "cluster",
            "status",
            "--cookie",
            COOKIE,
            "--timeout-ms",
            "3000",
        ])
        .args(args)
        .output()
        .expect("run orbit cluster status");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code().is_some(), "killed: {stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn status_reports_a_node_and_its_view_as_table_and_json() {
    let _serial = serial();
    let (_, name) = node();
    let (code, out) = status(&[name, "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let nodes = v["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{out}");
    assert_eq!(nodes[0]["node"], name.as_str());
    assert_eq!(nodes[0]["source"], "service");
    // The observer is hidden: the node does not list it.
    assert_eq!(nodes[0]["sees"].as_array().map(Vec::len), Some(0), "{out}");
    assert_eq!(v["findings"].as_array().map(Vec::len), Some(0), "{out}");

    let (code, out) = status(&[name, "--history"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(name.as_str()) && out.contains("service"),
        "{out}"
    );
    assert!(out.contains("no partition"), "{out}");
    assert!(out.contains("history:"), "{out}");
}

#[test]
fn an_unreachable_node_is_reported_with_exit_code_2() {
    let _serial = serial();
    let _ = node();
    let (code, out) = status(&["nobody_here@127.0.0.1", "--json"]);
    assert_eq!(code, 2, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["nodes"][0]["source"], "unreachable", "{out}");
    assert_eq!(v["findings"][0]["kind"], "unreachable", "{out}");
}

/// `--watch`: a node that connects while the observer watches shows up as a change.
#[test]
fn watch_prints_a_node_that_connects() {
    let _serial = serial();
    use std::io::{BufRead, BufReader};
    let (rt, name) = node();
    let mut watch = Command::new(env!("CARGO_BIN_EXE_orbit"))
        .args(["cluster", "status", "--cookie", COOKIE, name])
        .args(["--watch", "100", "--count", "600"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run orbit cluster status --watch");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    // The first view is printed whole: the table ends with its verdict.
    for l in lines.by_ref() {
        if l.expect("a line").contains("no partition") {
            break;
        }
    }
    let peer = format!("cli_peer_{}@127.0.0.1", std::process::id());
    let mut events = orbit_dist::Node::current().expect("node").monitor_nodes();
    let mut erl = Command::new("erl")
        .args(["-noshell", "-name", &peer, "-setcookie", COOKIE, "-eval"])
        .arg(format!(
            "pong = net_adm:ping('{name}'), receive after infinity -> ok end."
        ))
        .stdout(std::process::Stdio::null())
        .spawn();
    if erl.is_err() {
        println!("SKIP watch_prints_a_node_that_connects: erl is not installed");
        let _ = watch.kill();
        let _ = watch.wait();
        return;
    }
    let want = format!("{name} nodeup {peer}");
    let mut found = None;
    for l in lines.by_ref() {
        let l = l.expect("a line");
        if l.contains(&want) {
            found = Some(l);
            break;
        }
    }
    if let Ok(e) = erl.as_mut() {
        let _ = e.kill();
        let _ = e.wait();
    }
    let _ = watch.kill();
    let _ = watch.wait();
    wait_down(rt, &mut events, &peer);
    assert!(found.is_some(), "no change line {want:?}");
}

/// The view service as an Elixir node sees it (the shape the module docs promise).
#[test]
fn elixir_calls_the_view_service() {
    let _serial = serial();
    let (rt, name) = node();
    let me = format!("cli_ex_{}@127.0.0.1", std::process::id());
    let mut events = orbit_dist::Node::current().expect("node").monitor_nodes();
    let code = format!(
        r#"r = GenServer.call({{:orbit_cluster_view, :"{name}"}}, :view)
           IO.puts("keys #{{inspect(r |> Map.keys() |> Enum.sort())}}")
           IO.puts("node #{{r.node}}")
           IO.puts("sees_self #{{Enum.member?(r.sees, to_string(node()))}}")
           IO.puts("history #{{Enum.any?(r.history, &(&1.node == to_string(node()) and &1.up))}}")"#
    );
    let out = Command::new("elixir")
        .args(["--name", &me, "--cookie", COOKIE, "-e", &code])
        .output();
    let Ok(out) = out else {
        println!("SKIP elixir_calls_the_view_service: elixir is not installed");
        return;
    };
    wait_down(rt, &mut events, &me);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("keys [:history, :node, :sees]"), "{text}");
    assert!(text.contains(&format!("node {name}")), "{text}");
    assert!(text.contains("sees_self true"), "{text}");
    assert!(text.contains("history true"), "{text}");
}
