//! A mixed cluster on one page: an Orbit node connected to a real `erl` node; the
//! dashboard's `/api/cluster` reads the BEAM node's memory, process count, run queue
//! and top processes over `rex`, and `/metrics` carries the link's traffic series.
//! Skips (printing `SKIP`) when `erl` is missing.

mod common;

use std::time::Duration;

use common::{eventually, get, parse, value};
use orbit_dist::{Node, Options};
use orbit_observe::{serve, ObserveOptions};

const COOKIE: &str = "observe_cookie";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_reads_a_beam_node_over_rex() {
    if std::process::Command::new("erl")
        .arg("-version")
        .output()
        .is_err()
    {
        println!("SKIP dashboard_reads_a_beam_node_over_rex: erl is not installed");
        return;
    }
    let beam = "beam_obs@127.0.0.1";
    // A process with 500 messages it never reads: the top of the BEAM node's list.
    let code = r#"
        register(stuffed, spawn(fun() -> receive never -> ok end end)),
        [stuffed ! X || X <- lists:seq(1, 500)],
        io:format("ready~n"),
        receive stop -> ok end."#;
    let mut erl = common::start_erl(beam, COOKIE, code).await;

    let node = Node::start("observe_t@127.0.0.1", Options::cookie(COOKIE))
        .await
        .unwrap();
    assert!(node.connect(beam).await, "connect to {beam}");
    let dash =
        serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()).tick(Duration::from_millis(100)))
            .await
            .unwrap();
    let addr = dash.local_addr();

    let (status, body) = get(addr, "/api/cluster").await;
    assert_eq!(status, 200, "{body}");
    let peers: serde_json::Value = serde_json::from_str(&body).unwrap();
    let p = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["node"] == beam)
        .unwrap_or_else(|| panic!("{beam} listed: {peers}"));
    assert_eq!(p["reachable"], true, "{p}");
    assert!(p["memory"].as_i64().unwrap() > 1_000_000, "{p}");
    assert!(p["processes"].as_i64().unwrap() > 10, "{p}");
    assert!(p["run_queue"].as_i64().is_some(), "{p}");
    assert_eq!(p["top"][0]["name"], "stuffed", "{p}");
    assert_eq!(p["top"][0]["mailbox"], 500, "{p}");

    // The link's traffic is in /metrics (and on the home page's sample).
    eventually(
        "the link's bytes in /metrics",
        Duration::from_secs(10),
        || async {
            let (_, body) = get(addr, "/metrics").await;
            let s = parse(&body);
            value(&s, "orbit_dist_bytes_out_total", &[("peer", beam)]).unwrap_or(0.0) > 0.0
                && value(&s, "orbit_dist_messages_in_total", &[("peer", beam)]).unwrap_or(0.0) > 0.0
        },
    )
    .await;
    let (_, body) = get(addr, "/api/node").await;
    let sample: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        sample["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["peer"] == beam),
        "{sample}"
    );
    dash.stop();
    node.disconnect(beam);
    let _ = erl.start_kill();
}
