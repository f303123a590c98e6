//! Two and three Orbit nodes on loopback (this test process plus `orbit-node` children):
//! the mesh forms transitively, messages and calls flow, a killed node is reported down
//! in bounded time and a restarted node reconnects (nodedown before the new nodeup).

mod common;

use std::time::Duration;

use common::*;
use orbit::Message;
use orbit_dist::{NodeEvent, Ping};
use orbit_term::Term;

/// The total of the `counter` served on `node`.
async fn counter_total(node: &str) -> i64 {
    orbit_dist::call(
        ("counter", node),
        &CounterReq::get(),
        Duration::from_secs(5),
    )
    .await
    .expect("the counter answers")
}

#[test]
fn three_orbit_nodes_mesh_message_call_and_recover() {
    let a = node("orbit_a");
    let rt = rt();
    rt.block_on(serve_counter("counter", 100));
    let mut events = a.monitor_nodes();
    let mut b = orbit_node("orbit_b", false);
    let mut c = orbit_node("orbit_c", false);
    let (bn, cn) = (b.name.clone(), c.name.clone());

    rt.block_on(async {
        assert!(a.connect(&bn).await);
        wait_event(&mut events, 10, |e| *e == NodeEvent::NodeUp(bn.clone())).await;
    });
    // C joins through B only; the mesh connects C to A.
    c.say(&format!("connect {bn}"));
    assert_eq!(c.expect("connect ", 15), format!("connect {bn} true"));
    rt.block_on(async {
        wait_event(&mut events, 15, |e| *e == NodeEvent::NodeUp(cn.clone())).await;
        let mut l = a.list();
        l.sort();
        let mut want = vec![bn.clone(), cn.clone()];
        want.sort();
        assert_eq!(l, want);
    });
    b.say("list");
    let l = b.expect("list ", 10);
    assert!(l.contains(&a.name()) && l.contains(&cn), "{l}");

    // Messages both ways (echo) and calls both ways.
    let bn2 = bn.clone();
    rt.block_on(async {
        let me = orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
            let me = orbit::self_pid().unwrap();
            let msg = (orbit_dist::to_wire(me), "hello over the wire".to_string());
            orbit_dist::send_named(&bn2, "echo", &msg).unwrap();
            match ctx.recv_timeout(Duration::from_secs(10)).await {
                Some(Message::Msg(t)) => {
                    assert_eq!(t, Term::Binary(b"hello over the wire".to_vec()))
                }
                other => panic!("no echo: {other:?}"),
            }
        })
        .unwrap();
        assert!(me.wait_exit().await.is_normal());
        let v: i64 = orbit_dist::call(
            ("counter", bn.as_str()),
            &CounterReq::add(3),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(v, 3);
        // A cast, then a call behind it on the same connection sees its effect.
        orbit_dist::cast(("counter", bn.as_str()), &7i64).unwrap();
        let v = counter_total(&bn).await;
        assert_eq!(v, 10);
        // A request the remote server's type does not take ends the call at once
        // with the reason, and the server lives on.
        let r: Result<i64, _> = orbit_dist::call(
            ("counter", bn.as_str()),
            &"not a counter request",
            Duration::from_secs(5),
        )
        .await;
        match r.as_ref().map_err(|e| e.cause()) {
            Err(orbit_dist::CallError::Exit(why)) => assert!(
                matches!(why.as_term(), Some(Term::Tuple(el))
                    if el[0].as_atom() == Some("bad_request")
                        && el[1].as_binary().is_some()),
                "{why}"
            ),
            other => panic!("expected a bad_request exit, got {other:?}"),
        }
        assert_eq!(a.ping(&cn).await, Ping::Pong);
    });
    c.say(&format!("call {} 5", a.name()));
    assert_eq!(c.expect("call ", 10), format!("call {} Ok(105)", a.name()));

    // Kill B: reported down in bounded time; a restarted B reconnects.
    b.kill();
    rt.block_on(async {
        let ev = next_for(&mut events, &bn, 10).await;
        assert!(matches!(ev, NodeEvent::NodeDown(..)), "{ev:?}");
        assert!(!a.list().contains(&bn));
        let r: Result<i64, _> = orbit_dist::call(
            ("counter", bn.as_str()),
            &CounterReq::get(),
            Duration::from_secs(5),
        )
        .await;
        assert!(r.is_err());
    });
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_orbit-node"));
    cmd.args([bn.as_str(), COOKIE]);
    let mut b2 = Peer::command(cmd, bn.clone());
    b2.expect("ready ", 30);
    rt.block_on(async {
        // The failed call above may have left nothing pending; connect again.
        let mut up = false;
        for _ in 0..50 {
            if a.connect(&bn).await {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // epmd registration race: bounded retry
        }
        assert!(up);
        assert_eq!(
            next_for(&mut events, &bn, 10).await,
            NodeEvent::NodeUp(bn.clone())
        );
        let v = counter_total(&bn).await;
        assert_eq!(v, 0, "a fresh incarnation");
        // Disconnect and reconnect at once: the nodedown comes before the new nodeup.
        assert!(a.disconnect(&bn));
        assert!(a.connect(&bn).await);
        let ev = next_for(&mut events, &bn, 10).await;
        assert!(matches!(ev, NodeEvent::NodeDown(..)), "{ev:?}");
        assert_eq!(
            next_for(&mut events, &bn, 10).await,
            NodeEvent::NodeUp(bn.clone())
        );
    });
}

#[test]
fn hidden_node_is_listed_only_among_hidden_nodes() {
    let a = node("orbit_a");
    let rt = rt();
    let mut h = orbit_node("orbit_hidden", true);
    let hn = h.name.clone();
    h.say(&format!("connect {}", a.name()));
    assert_eq!(
        h.expect("connect ", 15),
        format!("connect {} true", a.name())
    );
    rt.block_on(async {
        let mut ok = false;
        for _ in 0..50 {
            if a.list_hidden().contains(&hn) {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // the accept side may lag the initiator by a moment
        }
        assert!(ok);
        assert!(!a.list().contains(&hn));
        // disconnect closes it and reports the node down.
        let mut events = a.monitor_nodes();
        assert!(a.disconnect(&hn));
        wait_event(
            &mut events,
            5,
            |e| matches!(e, NodeEvent::NodeDown(n, _) if *n == hn),
        )
        .await;
        assert!(!a.list_hidden().contains(&hn));
    });
    assert!(h.expect("nodedown ", 10).contains(&a.name()));
}

#[test]
fn simultaneous_connects_resolve_to_one_connection() {
    let _a = node("orbit_a");
    for _ in 0..3 {
        let mut b = orbit_node("orbit_sim_b", false);
        let mut c = orbit_node("orbit_sim_c", false);
        let (bn, cn) = (b.name.clone(), c.name.clone());
        // Both dial each other at once; name order picks the surviving attempt.
        b.say(&format!("connect {cn}"));
        c.say(&format!("connect {bn}"));
        assert_eq!(b.expect("connect ", 15), format!("connect {cn} true"));
        assert_eq!(c.expect("connect ", 15), format!("connect {bn} true"));
        b.say("list");
        assert!(b.expect("list ", 10).contains(&cn));
        c.say("list");
        assert!(c.expect("list ", 10).contains(&bn));
    }
}
