//! `[orbit, dist, node_up]` and `[orbit, dist, node_down]` telemetry events, for a
//! peer Orbit node (an `orbit-node` child) that connects and is then killed.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;

#[test]
fn node_up_and_down_are_telemetry_events() {
    let a = node("tel_a");
    let rt = rt();
    let mut b = orbit_node("tel_b", false);
    let bn = b.name.clone();
    let (tx, rx) = mpsc::channel::<(&'static str, String)>();
    for (id, kind) in [("dist-test-up", "node_up"), ("dist-test-down", "node_down")] {
        let tx = tx.clone();
        orbit::telemetry::attach(id, &["orbit", "dist", kind], move |ev| {
            let node = ev.meta("node").unwrap_or_default();
            let _ = tx.send((if kind == "node_up" { "up" } else { "down" }, node));
        })
        .unwrap();
    }
    rt.block_on(async {
        assert!(a.connect(&bn).await);
    });
    let wait_for = |kind: &str| loop {
        let (k, n) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("telemetry event");
        if k == kind && n == bn {
            return;
        }
    };
    wait_for("up");
    b.kill();
    wait_for("down");
    orbit::telemetry::detach("dist-test-up");
    orbit::telemetry::detach("dist-test-down");
}
