//! Phoenix.PubSub interop with a real Elixir node running phoenix_pubsub 2.2.0 (from
//! /work/shared/beamlibs), pool sizes 1 and 3: broadcasts cross both ways,
//! `broadcast_from` skips the sender, `local_broadcast` stays local, `direct_broadcast`
//! reaches one node, typed subscribers get serde values.

mod beam;

use beam::*;
use orbit_cluster::pubsub::PubSub;
use orbit_term::Term;
use tokio::sync::mpsc::UnboundedReceiver;

fn recv(rx: &mut UnboundedReceiver<Term>) -> Term {
    rt().block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(15), rx.recv())
            .await
            .expect("a message within 15s")
            .expect("subscriber alive")
    })
}

fn hello(tag: &str, i: i64) -> Term {
    Term::tuple(vec![Term::atom(tag), Term::Int(i)])
}

/// An Orbit subscriber of `topic` forwarding what it gets.
fn subscriber(ps: &PubSub, topic: &str) -> (orbit::Pid, UnboundedReceiver<Term>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let ps2 = ps.clone();
    let topic = topic.to_string();
    let h = rt().block_on(async {
        orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
            ps2.subscribe(&topic).unwrap();
            ready_tx.send(()).unwrap();
            loop {
                if let orbit::Message::Msg(t) = ctx.recv().await {
                    if tx.send(t).is_err() {
                        break;
                    }
                }
            }
        })
        .unwrap()
    });
    ready_rx.recv().unwrap();
    (h.pid(), rx)
}

/// The next `{got, Topic, Msg}` the Elixir subscriber forwarded: Msg.
fn ex_got(o: &Orbit) -> Term {
    match o.event(15) {
        Term::Tuple(mut e) if e.len() == 3 && e[0].as_atom() == Some("got") => e.remove(2),
        other => panic!("unexpected event {other}"),
    }
}

fn round(o: &Orbit, b: &mut Beam, n: usize) {
    let ex = format!("OrbitTest.PubSub{n}");
    let ps = rt().block_on(PubSub::start(&ex, n)).unwrap();
    assert_eq!(ps.groups().len(), n);
    // Both sides see each other's workers in every group.
    for g in ps.groups().to_vec() {
        let scope = orbit_cluster::pg::scope(orbit_cluster::pubsub::SCOPE).unwrap();
        eventually(&format!("Orbit lists an Elixir worker in {g}"), 20, || {
            scope.get_members(g.as_str()).iter().any(|p| !p.is_local())
        });
        eventually(&format!("Elixir lists Orbit's worker in {g}"), 20, || {
            let t = b.eval(o, &format!(":pg.get_members(Phoenix.PubSub, :\"{g}\")"));
            pids(&t).iter().any(|p| p.is_local())
        });
    }
    let topic = format!("t{n}");
    let (osub, mut orx) = subscriber(&ps, &topic);
    let (_osub2, mut orx2) = subscriber(&ps, &topic);
    b.eval(
        o,
        &format!("s = T.sub(OrbitTest.PubSub{n}, \"{topic}\", orbit)"),
    );

    // Elixir -> Orbit, from 9 processes (so phash2 picks every group of the pool).
    b.eval(
        o,
        &format!("for i <- 1..9, do: spawn(fn -> Phoenix.PubSub.broadcast(OrbitTest.PubSub{n}, \"{topic}\", {{:ex, i}}) end)"),
    );
    let mut got: Vec<i64> = (0..9)
        .map(|_| recv(&mut orx))
        .map(|t| match t {
            Term::Tuple(e) if e[0].as_atom() == Some("ex") => e[1].as_i64().unwrap(),
            other => panic!("{other}"),
        })
        .collect();
    got.sort();
    assert_eq!(got, (1..=9).collect::<Vec<_>>());
    for _ in 0..9 {
        recv(&mut orx2);
        ex_got(o);
    }

    // Orbit -> Elixir, through every group in turn.
    for i in 1..=6 {
        ps.broadcast(&topic, &hello("orbit", i)).unwrap();
    }
    let mut got: Vec<Term> = (0..6).map(|_| ex_got(o)).collect();
    got.sort_by_key(|t| t.to_string());
    let mut want: Vec<Term> = (1..=6).map(|i| hello("orbit", i)).collect();
    want.sort_by_key(|t| t.to_string());
    assert_eq!(got, want);
    for i in 1..=6 {
        assert_eq!(recv(&mut orx), hello("orbit", i));
        assert_eq!(recv(&mut orx2), hello("orbit", i));
    }

    // broadcast_from skips the sender (osub): its next message is the marker.
    ps.broadcast_from(osub, &topic, &hello("from", 1)).unwrap();
    ps.broadcast(&topic, &hello("marker", 1)).unwrap();
    assert_eq!(recv(&mut orx), hello("marker", 1));
    assert_eq!(recv(&mut orx2), hello("from", 1));
    assert_eq!(recv(&mut orx2), hello("marker", 1));
    assert_eq!(ex_got(o), hello("from", 1));
    assert_eq!(ex_got(o), hello("marker", 1));

    // local_broadcast stays on this node: Elixir's next message is the marker.
    assert_eq!(ps.local_broadcast(&topic, &hello("local", 1)).unwrap(), 2);
    assert_eq!(recv(&mut orx), hello("local", 1));
    assert_eq!(recv(&mut orx2), hello("local", 1));
    ps.direct_broadcast(&b.name, &topic, &hello("direct", 1))
        .unwrap();
    assert_eq!(ex_got(o), hello("direct", 1));
    // Elixir's direct_broadcast to Orbit, and broadcast_from on the Elixir side.
    b.eval(o, &format!("Phoenix.PubSub.direct_broadcast(orbit, OrbitTest.PubSub{n}, \"{topic}\", {{:direct, 2}})"));
    assert_eq!(recv(&mut orx), hello("direct", 2));
    assert_eq!(recv(&mut orx2), hello("direct", 2));
    b.eval(
        o,
        &format!(
            "Phoenix.PubSub.broadcast_from(OrbitTest.PubSub{n}, s, \"{topic}\", {{:exfrom, 1}})"
        ),
    );
    assert_eq!(recv(&mut orx), hello("exfrom", 1));
    b.eval(
        o,
        &format!("Phoenix.PubSub.broadcast(OrbitTest.PubSub{n}, \"{topic}\", {{:marker, 2}})"),
    );
    assert_eq!(
        ex_got(o),
        hello("marker", 2),
        "Elixir's broadcast_from skipped s"
    );
    assert_eq!(recv(&mut orx), hello("marker", 2));
    assert_eq!(recv(&mut orx2), hello("exfrom", 1));
    assert_eq!(recv(&mut orx2), hello("marker", 2));

    // Orbit subscriber of typed values.
    let (ttx, mut trx) = tokio::sync::mpsc::unbounded_channel();
    let (rtx, rrx) = std::sync::mpsc::channel();
    let ps3 = ps.clone();
    let t3 = topic.clone();
    rt().block_on(async move {
        orbit::spawn(move |mut ctx: orbit::Context<(String, i64)>| async move {
            ps3.subscribe_typed::<(String, i64)>(&t3).unwrap();
            rtx.send(()).unwrap();
            loop {
                if let orbit::Message::Msg(m) = ctx.recv().await {
                    if ttx.send(m).is_err() {
                        break;
                    }
                }
            }
        })
        .unwrap();
    });
    rrx.recv().unwrap();
    b.eval(
        o,
        &format!("Phoenix.PubSub.broadcast(OrbitTest.PubSub{n}, \"{topic}\", {{:typed, 7}})"),
    );
    let typed = rt().block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(15), trx.recv())
            .await
            .expect("typed message")
            .unwrap()
    });
    assert_eq!(typed, ("typed".to_string(), 7));
    assert_eq!(recv(&mut orx), hello("typed", 7));
    assert_eq!(ex_got(o), hello("typed", 7));
}

#[test]
fn pubsub_with_elixir() {
    if !have("elixir") {
        println!("SKIP pubsub_with_elixir: elixir is not installed");
        return;
    }
    let Some(libs) = beamlibs() else {
        println!("SKIP pubsub_with_elixir: /work/shared/beamlibs could not be built");
        return;
    };
    let o = orbit("orbit_pubsub");
    let mut b = Beam::elixir("ex_pubsub", o, &libs);
    let ex_scope = b.eval(o, "Process.whereis(Phoenix.PubSub)");
    assert!(matches!(ex_scope, Term::Pid(_)), "{ex_scope}");
    round(o, &mut b, 1);
    round(o, &mut b, 3);
    // Elixir's pg scope never crashed on what Orbit sent.
    assert_eq!(b.eval(o, "Process.whereis(Phoenix.PubSub)"), ex_scope);
}
