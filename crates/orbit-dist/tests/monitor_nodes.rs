//! `net_kernel:monitor_nodes/2` semantics against real `erl` peers: one event per
//! nodeup and per nodedown, in order, with OTP's reasons (`connection_closed` when the
//! peer calls `erlang:disconnect_node/1`, `disconnect` when this node does,
//! `net_tick_timeout` when a frozen peer stops ticking), `node_type` filtering of
//! hidden nodes, and no announcement of nodes already up to a late subscriber.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use orbit_dist::{MonitorOptions, NodeChange, NodeDownReason, NodeType, Options};
use tokio::sync::mpsc::UnboundedReceiver;

/// An `erl` peer at net_ticktime 4 s that obeys lines on stdin: `connect`, `disc`.
fn erl_peer(prefix: &str, orbit: &str, hidden: bool) -> Peer {
    let name = unique(prefix);
    let code = format!(
        "Orbit = '{orbit}', \
         Loop = fun L() -> case io:get_line(\"\") of \
           \"connect\\n\" -> io:format(\"connect ~p~n\", [net_kernel:connect_node(Orbit)]), L(); \
           \"disc\\n\" -> io:format(\"disc ~p~n\", [erlang:disconnect_node(Orbit)]), L(); \
           _ -> ok end end, \
         io:format(\"ready~n\"), Loop(), halt()."
    );
    let mut cmd = Command::new("erl");
    cmd.args(["-noshell", "-name", &name, "-setcookie", COOKIE])
        .args(["-kernel", "net_ticktime", "4"]);
    if hidden {
        cmd.arg("-hidden");
    }
    cmd.args(["-eval", &code]);
    let mut p = Peer::command(cmd, name);
    p.expect("ready", 20);
    p
}

/// The next event about `node`, at most `secs` (events about other nodes are kept
/// in `other`).
async fn next_about(
    rx: &mut UnboundedReceiver<NodeChange>,
    node: &str,
    secs: u64,
    other: &mut Vec<NodeChange>,
) -> NodeChange {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if ev.node == node => return ev,
            Ok(Some(ev)) => other.push(ev),
            r => panic!("no event about {node} within {secs}s: {r:?}"),
        }
    }
}

fn up(node: &str, t: NodeType) -> NodeChange {
    NodeChange {
        node: node.to_string(),
        up: true,
        node_type: t,
        reason: None,
    }
}

fn down(node: &str, t: NodeType, reason: Option<NodeDownReason>) -> NodeChange {
    NodeChange {
        node: node.to_string(),
        up: false,
        node_type: t,
        reason,
    }
}

/// Everything in the channel now (after a sentinel event proved the earlier ones in).
fn drain(rx: &mut UnboundedReceiver<NodeChange>) -> Vec<NodeChange> {
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        v.push(e);
    }
    v
}

#[test]
fn events_once_in_order_with_otp_reasons_and_node_types() {
    let node = node_with(
        "orbit_mon",
        Options {
            net_ticktime: Duration::from_secs(4),
            ..Options::cookie(COOKIE)
        },
    );
    let me = node.name();
    let rt = rt();
    let all_opts = MonitorOptions {
        node_type: NodeType::All,
        nodedown_reason: true,
    };
    let mut all = node.monitor_nodes_with(all_opts);
    let mut visible = node.monitor_nodes_with(MonitorOptions::default());
    let mut hidden = node.monitor_nodes_with(MonitorOptions {
        node_type: NodeType::Hidden,
        nodedown_reason: true,
    });

    let mut a = erl_peer("erl_mon_a", &me, false);
    let an = a.name.clone();
    let vis = NodeType::Visible;
    let mut late = None;
    let mut seen_all = Vec::new();
    let mut seen_vis = Vec::new();
    rt.block_on(async {
        // 1. The peer connects, then disconnects itself: connection_closed.
        a.say("connect");
        assert_eq!(a.expect("connect ", 10), "connect true");
        seen_all.push(next_about(&mut all, &an, 10, &mut Vec::new()).await);
        // Subscribed while A is up: it must not hear of A's nodeup.
        late = Some(node.monitor_nodes_with(all_opts));
        a.say("disc");
        assert_eq!(a.expect("disc ", 10), "disc true");
        seen_all.push(next_about(&mut all, &an, 10, &mut Vec::new()).await);

        // 2. Connected again, this node disconnects: disconnect.
        a.say("connect");
        assert_eq!(a.expect("connect ", 10), "connect true");
        seen_all.push(next_about(&mut all, &an, 10, &mut Vec::new()).await);
        assert!(node.disconnect(&an));
        seen_all.push(next_about(&mut all, &an, 10, &mut Vec::new()).await);

        // 3. Connected again, the peer freezes (SIGSTOP): net_tick_timeout within the
        //    tick time (4 s; 10 s allowed for a loaded machine). The peer learns of the
        //    close above on its own time, and may dial back by itself (seen: a nodeup
        //    4 ms after the disconnect); a `connect_node` that answered `true` for the
        //    dying connection connects nothing, so the test asks again until a nodeup
        //    comes (one nodeup either way: the drains below check nothing came twice).
        let mut up_again = None;
        for _ in 0..5 {
            a.say("connect");
            assert_eq!(a.expect("connect ", 10), "connect true");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            if let Ok(Some(ev)) = tokio::time::timeout_at(deadline, all.recv()).await {
                up_again = Some(ev);
                break;
            }
        }
        seen_all.push(up_again.expect("a nodeup after asking the peer to connect 5 times"));
        let stop = Command::new("kill")
            .args(["-STOP", &a.pid().to_string()])
            .status()
            .expect("kill -STOP");
        assert!(stop.success());
        let t0 = std::time::Instant::now();
        seen_all.push(next_about(&mut all, &an, 15, &mut Vec::new()).await);
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    });
    a.kill();
    assert_eq!(
        seen_all,
        vec![
            up(&an, vis),
            down(&an, vis, Some(NodeDownReason::ConnectionClosed)),
            up(&an, vis),
            down(&an, vis, Some(NodeDownReason::Disconnect)),
            up(&an, vis),
            down(&an, vis, Some(NodeDownReason::NetTickTimeout)),
        ]
    );

    // 4. A hidden peer: reported to `all` and `hidden`, not to `visible`.
    let mut h = erl_peer("erl_mon_h", &me, true);
    let hn = h.name.clone();
    rt.block_on(async {
        h.say("connect");
        assert_eq!(h.expect("connect ", 10), "connect true");
        let mut other = Vec::new();
        assert_eq!(
            next_about(&mut all, &hn, 10, &mut other).await,
            up(&hn, NodeType::Hidden)
        );
        assert_eq!(
            next_about(&mut hidden, &hn, 10, &mut other).await,
            up(&hn, NodeType::Hidden)
        );
        assert!(other.is_empty(), "{other:?}");
        h.say("disc");
        assert_eq!(h.expect("disc ", 10), "disc true");
        assert_eq!(
            next_about(&mut hidden, &hn, 10, &mut other).await,
            down(
                &hn,
                NodeType::Hidden,
                Some(NodeDownReason::ConnectionClosed)
            )
        );
        assert_eq!(
            next_about(&mut all, &hn, 10, &mut other).await,
            down(
                &hn,
                NodeType::Hidden,
                Some(NodeDownReason::ConnectionClosed)
            )
        );
    });
    h.kill();
    // Every event of A reached `all` before H's, so by now `visible` holds all of A's
    // (emitted to every subscriber at once) and nothing of H.
    seen_vis.extend(drain(&mut visible));
    assert_eq!(
        seen_vis,
        vec![
            up(&an, vis),
            down(&an, vis, None),
            up(&an, vis),
            down(&an, vis, None),
            up(&an, vis),
            down(&an, vis, None),
        ],
        "the default subscriber: visible nodes, no reason"
    );
    assert!(drain(&mut all).is_empty(), "no event twice");
    assert!(drain(&mut hidden).is_empty(), "hidden saw only H");
    let late: Vec<NodeChange> = drain(late.as_mut().unwrap());
    assert_eq!(
        late.first(),
        Some(&down(&an, vis, Some(NodeDownReason::ConnectionClosed))),
        "a late subscriber is not told of nodes already up: {late:?}"
    );
    assert_eq!(
        late.len(),
        7,
        "5 of A after the first nodeup, 2 of H: {late:?}"
    );
}
