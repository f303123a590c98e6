//! Handshake and connection life against real Erlang and Elixir nodes: ping both ways,
//! `Node.list()` on the Elixir side, wrong cookies refused on both sides, nodedown when
//! the BEAM node dies.

mod common;

use common::*;
use orbit_dist::{NodeEvent, Ping};

#[test]
fn ping_both_ways_and_node_list_with_elixir() {
    let node = node("orbit_hs");
    let me = node.name();
    let rt = rt();
    let mut events = node.monitor_nodes();
    let code = format!(
        r#"
        orbit = :"{me}"
        IO.puts("ping #{{Node.ping(orbit)}}")
        IO.puts("list #{{inspect(Node.list())}}")
        IO.puts("waiting")
        IO.gets("")
        IO.puts("list2 #{{inspect(Node.list())}}")
        IO.gets("")
        "#
    );
    let mut ex = Peer::elixir("ex_hs", COOKIE, &code);
    let l = ex.expect("ping ", 30);
    assert_eq!(l, "ping pong");
    let l = ex.expect("list ", 10);
    assert!(l.contains(&me), "{l}");
    ex.expect("waiting", 10);
    let exname = ex.name.clone();
    rt.block_on(async {
        wait_event(&mut events, 10, |e| *e == NodeEvent::NodeUp(exname.clone())).await;
        assert!(node.list().contains(&exname));
        assert_eq!(node.ping(&exname).await, Ping::Pong);
    });
    ex.say("go");
    let l = ex.expect("list2 ", 10);
    assert!(l.contains(&me), "connection stayed up: {l}");
    ex.kill();
    rt.block_on(async {
        let ev = wait_event(
            &mut events,
            20,
            |e| matches!(e, NodeEvent::NodeDown(n, _) if *n == exname),
        )
        .await;
        assert!(matches!(ev, NodeEvent::NodeDown(..)));
        assert!(!node.list().contains(&exname));
    });
}

#[test]
fn orbit_pings_erl_and_wrong_cookie_is_refused_both_ways() {
    let node = node("orbit_hs");
    let me = node.name();
    let rt = rt();
    // Orbit -> erl with the right cookie.
    let mut erl = Peer::erl(
        "erl_ok",
        COOKIE,
        "io:format(\"up~n\"), receive stop -> ok end.",
    );
    erl.expect("up", 20);
    let erlname = erl.name.clone();
    rt.block_on(async {
        assert_eq!(node.ping(&erlname).await, Ping::Pong);
    });
    // Wrong cookie: Orbit -> erl and erl -> Orbit both fail.
    let code = format!(
        "io:format(\"up~n\"), io:format(\"ping ~p~n\", [net_adm:ping('{me}')]), receive stop -> ok end."
    );
    let mut bad = Peer::erl("erl_bad", "wrong_cookie", &code);
    bad.expect("up", 20);
    let l = bad.expect("ping ", 20);
    assert_eq!(l, "ping pang");
    let badname = bad.name.clone();
    rt.block_on(async {
        assert_eq!(node.ping(&badname).await, Ping::Pang);
        assert!(!node.list().contains(&badname));
    });
    // The same with an Elixir node: it cannot reach Orbit, and Orbit cannot reach it.
    let code = format!(
        r#"IO.puts("up"); IO.puts("ping #{{Node.ping(:"{me}")}}"); receive do :stop -> :ok end"#
    );
    let mut ex = Peer::elixir("ex_bad", "wrong_cookie", &code);
    ex.expect("up", 30);
    assert_eq!(ex.expect("ping ", 30), "ping pang");
    let exname = ex.name.clone();
    rt.block_on(async {
        assert_eq!(node.ping(&exname).await, Ping::Pang);
        assert!(!node.list().contains(&exname));
    });
}
