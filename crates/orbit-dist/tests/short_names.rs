//! Short names (`-sname`): an Orbit node started with a bare name lives on this
//! machine's short hostname, as `erl -sname` does; it clusters with Orbit nodes named
//! `name@host` and with an Elixir node started with `--sname` (ping both ways and
//! messages). Long-name and short-name nodes refuse each other, as Erlang's do, and
//! Orbit says why.

mod common;

use std::time::Duration;

use common::*;
use orbit::Message;
use orbit_dist::{DistError, Ping};
use orbit_term::{atom, Term};
use tokio::sync::mpsc::unbounded_channel;

/// This binary's node: a bare (short) name.
fn short_node() -> orbit_dist::Node {
    node_named(
        || unique_alive("orbit_sn"),
        orbit_dist::Options::cookie(COOKIE),
    )
}

fn host_of(node: &str) -> &str {
    node.split_once('@').map(|(_, h)| h).unwrap_or("")
}

#[test]
fn short_names_between_orbit_nodes_and_with_elixir_sname() {
    let node = short_node();
    let me = node.name();
    let host = short_host();
    assert!(!node.long_names());
    assert_eq!(host_of(&me), host, "a bare name takes the short hostname");
    assert!(!host.contains('.'));
    let rt = rt();
    let (tx, mut inbox) = unbounded_channel();
    rt.block_on(async {
        let p = orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
            loop {
                if let Message::Msg(m) = ctx.recv().await {
                    if tx.send(m).is_err() {
                        break;
                    }
                }
            }
        })
        .unwrap()
        .pid();
        orbit::register("sn_inbox", p).unwrap();
    });

    // Elixir with --sname: it pings us, sends to a registered process, gets a reply.
    let code = format!(
        r#"
        orbit = :"{me}"
        IO.puts("node #{{node()}}")
        IO.puts("ping #{{Node.ping(orbit)}}")
        send({{:sn_inbox, orbit}}, {{:hi, self()}})
        receive do {{:reply, x}} -> IO.puts("reply #{{x}}") after 10000 -> IO.puts("reply none") end
        IO.gets("")
        "#
    );
    let mut ex = Peer::elixir_sname("ex_sn", COOKIE, &code);
    let exname = ex.name.clone();
    assert_eq!(ex.expect("node ", 20), format!("node {exname}"));
    assert_eq!(
        host_of(&exname),
        host,
        "Elixir's short host is Orbit's short host"
    );
    assert_eq!(ex.expect("ping ", 15), "ping pong");
    rt.block_on(async {
        let m = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
            .await
            .expect("hi within 10s")
            .unwrap();
        let Term::Tuple(el) = m else {
            panic!("hi: {m}")
        };
        assert_eq!(el[0], Term::atom("hi"));
        let Term::Pid(p) = &el[1] else {
            panic!("pid: {}", el[1])
        };
        let ex_pid = orbit_dist::from_wire(p);
        orbit_dist::send(ex_pid, &(atom!("reply"), 11)).unwrap();
        assert_eq!(node.ping(&exname).await, Ping::Pong);
        assert!(node.list().contains(&exname));
    });
    assert_eq!(ex.expect("reply ", 10), "reply 11");

    // Another Orbit node named `name@host` explicitly: ping both ways, echo, a call.
    let bn = format!("{}@{host}", unique_alive("orbit_sn_b"));
    let mut b = orbit_node_with(&bn, &[COOKIE], &[]);
    b.say(&format!("ping {me}"));
    assert_eq!(b.expect("ping ", 15), format!("ping {me} Pong"));
    let bn2 = bn.clone();
    rt.block_on(async {
        assert_eq!(node.ping(&bn2).await, Ping::Pong);
        let echo = orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
            let me = orbit_dist::to_wire(orbit::self_pid().unwrap());
            orbit_dist::send_named(&bn2, "echo", &(me, "short")).unwrap();
            match ctx.recv_timeout(Duration::from_secs(10)).await {
                Some(Message::Msg(t)) => assert_eq!(t, Term::Binary(b"short".to_vec())),
                other => panic!("no echo: {other:?}"),
            }
        })
        .unwrap();
        assert!(echo.wait_exit().await.is_normal());
        let v: i64 = orbit_dist::call(
            ("counter", bn.as_str()),
            &CounterReq::add(4),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(v, 4);
    });
}

#[test]
fn long_and_short_name_nodes_refuse_each_other() {
    let node = short_node();
    let me = node.name();
    let rt = rt();
    // A long-name Orbit node: neither side dials the other, and both say why.
    let ln = unique("orbit_ln");
    let mut l = orbit_node_with(&ln, &[COOKIE], &[]);
    rt.block_on(async {
        let err = node.try_connect(&ln).await.unwrap_err();
        assert!(matches!(err, DistError::NameKind { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("this node has short names") && text.contains(&ln),
            "{text}"
        );
        assert_eq!(node.ping(&ln).await, Ping::Pang);
        assert!(!node.connect(&ln).await);
    });
    l.say(&format!("connect {me}"));
    let line = l.expect("connect ", 15);
    assert!(
        line.starts_with(&format!("connect {me} false: cannot connect"))
            && line.contains("this node has long names"),
        "{line}"
    );
    // A long-name Elixir node refuses to dial us (Erlang's own check), and we it.
    let code = format!(
        r#"
        IO.puts("ping #{{Node.ping(:"{me}")}}")
        IO.gets("")
        "#
    );
    let mut ex = Peer::elixir("ex_ln", COOKIE, &code);
    assert_eq!(ex.expect("ping ", 20), "ping pang");
    let exname = ex.name.clone();
    rt.block_on(async {
        let err = node.try_connect(&exname).await.unwrap_err();
        assert!(matches!(err, DistError::NameKind { .. }), "{err}");
        assert!(!node.list().contains(&exname));
    });
}
