//! Hostile GenStage protocol input from a real `erl` peer that speaks the protocol by
//! hand: malformed and out-of-order `$gen_producer`/`$gen_consumer` messages are logged,
//! counted and ignored (or answered as GenStage answers them), never a panic, and the
//! stages keep serving well-behaved peers; a producer sending more than was asked is
//! counted; events of the wrong type are skipped and counted.

mod beam;

use std::time::Duration;

use beam::*;
use orbit_cluster::stage::{self, RemoteStageOptions, RemoteSubscribe};
use orbit_term::Term;

fn atom(t: &Term) -> Option<&str> {
    t.as_atom()
}

#[test]
fn hostile_genstage_peers() {
    if !have("erl") {
        println!("SKIP hostile_genstage_peers: erl is not installed");
        return;
    }
    let o = orbit("orbit_stage_hostile");
    rt().block_on(async { orbit_cluster::start(&o.node).unwrap() });
    let mut b = Beam::erl("erl_stage_hostile", o);

    // An Orbit producer counting up; a peer speaks to it by hand.
    let mut next = 0i64;
    let p = rt()
        .block_on(async {
            stage::producer(RemoteStageOptions::named("hp"), move |n| {
                let top = next.saturating_add(n.min(1_000) as i64);
                let ev: Vec<i64> = (next..top).collect();
                next = top;
                ev
            })
        })
        .unwrap();
    let hp = "{hp, Orbit}";
    let recv = "receive M -> M after 10000 -> timeout end.";

    // Ask on a subscription that does not exist: GenStage's answer.
    b.eval(
        o,
        &format!("R0 = make_ref(), {hp} ! {{'$gen_producer', {{self(), R0}}, {{ask, 5}}}}."),
    );
    let m = b.eval(o, recv);
    let Term::Tuple(e) = &m else { panic!("{m}") };
    assert_eq!(atom(&e[0]), Some("$gen_consumer"));
    assert_eq!(
        e[2],
        Term::tuple(vec![
            Term::atom("cancel"),
            Term::atom("unknown_subscription")
        ])
    );

    // Malformed messages: ignored and counted.
    let before = p.ignored();
    for bad in [
        "{'$gen_producer', notapair, {ask, 1}}",
        "{'$gen_producer', {self(), make_ref()}, {ask, -3}}",
        "{'$gen_producer', {self(), make_ref()}, {ask, foo}}",
        "{'$gen_producer', {self(), make_ref()}, {weird}}",
        "{'$gen_producer', {notapid, make_ref()}, {subscribe, nil, []}}",
        "{'$gen_consumer', {self(), make_ref()}, [1, 2]}",
        "{'$gen_producer', {self(), make_ref()}}",
        "hello",
    ] {
        b.eval(o, &format!("{hp} ! {bad}."));
    }
    // A well-behaved subscription afterwards: exact demand, in order.
    b.eval(
        o,
        &format!(
            "R = make_ref(), {hp} ! {{'$gen_producer', {{self(), R}}, {{subscribe, nil, []}}}}."
        ),
    );
    b.eval(
        o,
        &format!("{hp} ! {{'$gen_producer', {{self(), R}}, {{ask, 3}}}}."),
    );
    let m = b.eval(
        o,
        "receive {'$gen_consumer', {_, R}, Ev1} -> Ev1 after 10000 -> timeout end.",
    );
    assert_eq!(
        m,
        Term::List(vec![Term::Int(0), Term::Int(1), Term::Int(2)])
    );
    assert_eq!(p.ignored() - before, 8, "every malformed message counted");
    // The same subscription again: duplicated_subscription.
    b.eval(
        o,
        &format!("{hp} ! {{'$gen_producer', {{self(), R}}, {{subscribe, nil, []}}}}."),
    );
    let m = b.eval(
        o,
        "receive {'$gen_consumer', {_, R}, C1} -> C1 after 10000 -> timeout end.",
    );
    assert_eq!(
        m,
        Term::tuple(vec![
            Term::atom("cancel"),
            Term::atom("duplicated_subscription")
        ])
    );
    // A huge ask does not overflow; only what exists is sent.
    b.eval(o, &format!("{hp} ! {{'$gen_producer', {{self(), R}}, {{ask, 1 bsl 62}}}}, {hp} ! {{'$gen_producer', {{self(), R}}, {{ask, 1 bsl 62}}}}."));
    let m = b.eval(
        o,
        "receive {'$gen_consumer', {_, R}, Ev2} -> length(Ev2) after 10000 -> timeout end.",
    );
    assert!(matches!(m, Term::Int(n) if n > 0), "{m}");
    // Cancel: answered with the cancel (the receive skips the events still queued).
    b.eval(
        o,
        &format!("{hp} ! {{'$gen_producer', {{self(), R}}, {{cancel, normal}}}}."),
    );
    let m = b.eval(
        o,
        "receive {'$gen_consumer', {_, R}, {cancel, _} = C2} -> C2 after 10000 -> timeout end.",
    );
    assert_eq!(
        m,
        Term::tuple(vec![Term::atom("cancel"), Term::atom("normal")])
    );

    // A resubscription naming the current one (`{subscribe, {Ref, Reason}, Opts}`):
    // the old subscription is cancelled with that reason first, as GenStage does.
    b.eval(
        o,
        &format!(
            "R2 = make_ref(), {hp} ! {{'$gen_producer', {{self(), R2}}, {{subscribe, nil, []}}}}."
        ),
    );
    b.eval(o, &format!("R3 = make_ref(), {hp} ! {{'$gen_producer', {{self(), R3}}, {{subscribe, {{R2, replaced}}, []}}}}."));
    let m = b.eval(
        o,
        "receive {'$gen_consumer', {_, R2}, C4} -> C4 after 10000 -> timeout end.",
    );
    assert_eq!(
        m,
        Term::tuple(vec![Term::atom("cancel"), Term::atom("replaced")])
    );
    // R's unmet demand (the huge asks) was already forwarded to the callback: a new ask
    // is not forwarded again (GenStage's pending demand), so pushed events serve it.
    b.eval(
        o,
        &format!("{hp} ! {{'$gen_producer', {{self(), R3}}, {{ask, 2}}}}."),
    );
    p.push(&[7i64, 8, 9]).unwrap();
    let m = b.eval(o, "receive {'$gen_consumer', {_, R3}, Ev3} when is_list(Ev3) -> Ev3 after 10000 -> timeout end.");
    assert_eq!(m, Term::List(vec![Term::Int(7), Term::Int(8)]));

    // An Orbit consumer of a producer played by hand.
    b.eval(o, "register(fakeprod, self()).");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let c = rt()
        .block_on(stage::consumer(
            ("fakeprod", b.name.as_str()),
            RemoteSubscribe::max_demand(10).min_demand(5),
            move |ev: Vec<i64>| {
                let _ = tx.send(ev);
            },
        ))
        .unwrap();
    let sub = b.eval(
        o,
        "receive {'$gen_producer', {C, CR}, {subscribe, _, Opts}} -> Opts after 10000 -> timeout end.",
    );
    assert!(matches!(sub, Term::List(_)), "subscribe options: {sub}");
    let ask = b.eval(
        o,
        "receive {'$gen_producer', {C, CR}, {ask, N}} -> N after 10000 -> timeout end.",
    );
    assert_eq!(ask, Term::Int(10));
    // 15 events where 10 were asked: all handled, 5 counted as excess.
    b.eval(o, "C ! {'$gen_consumer', {self(), CR}, lists:seq(1, 15)}.");
    let mut got = Vec::new();
    while got.len() < 15 {
        let batch = rt()
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), rx.recv()).await })
            .expect("events")
            .unwrap();
        got.extend(batch);
    }
    assert_eq!(got, (1..=15).collect::<Vec<_>>());
    assert_eq!(c.excess(), 5);
    // Wrong types are skipped and counted; malformed consumer messages ignored.
    b.eval(
        o,
        "C ! {'$gen_consumer', {self(), CR}, [a, <<\"b\">>, 16]}.",
    );
    let batch = rt()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), rx.recv()).await })
        .expect("events")
        .unwrap();
    assert_eq!(batch, vec![16]);
    assert_eq!(c.undecodable(), 2);
    let before = c.ignored();
    for bad in [
        "{'$gen_consumer', {self(), CR}, notalist}",
        "{'$gen_consumer', nopair, [1]}",
        "{'$gen_producer', {self(), CR}, {ask, 1}}",
        "{'$gen_producer', {self(), CR}, {subscribe, nil, []}}",
        "{'$gen_consumer', {self(), CR}, {cancel}}",
    ] {
        b.eval(o, &format!("C ! {bad}."));
    }
    // Events on an unknown subscription: GenStage's cancel back.
    b.eval(o, "C ! {'$gen_consumer', {self(), make_ref()}, [1]}.");
    let m = b.eval(
        o,
        "receive {'$gen_producer', {C, _}, {cancel, _} = C3} -> C3 after 10000 -> timeout end.",
    );
    assert_eq!(
        m,
        Term::tuple(vec![
            Term::atom("cancel"),
            Term::atom("unknown_subscription")
        ])
    );
    assert_eq!(c.ignored() - before, 6);
    // The producer cancels with an abnormal reason: the permanent consumer exits with it.
    b.eval(o, "C ! {'$gen_consumer', {self(), CR}, {cancel, boom}}.");
    let r = rt()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), c.wait_exit()).await })
        .expect("consumer exits");
    assert_eq!(r.to_term(), Term::atom("boom"));
    // A producer cannot subscribe (GenStage's not_a_consumer).
    let r = rt().block_on(p.subscribe(("fakeprod", b.name.as_str()), RemoteSubscribe::default()));
    assert!(
        matches!(r, Err(stage::RemoteStageError::NotAConsumer)),
        "{r:?}"
    );
    // Bad options are refused before anything is sent.
    let r = rt().block_on(stage::consumer(
        ("fakeprod", b.name.as_str()),
        RemoteSubscribe::max_demand(10).min_demand(10),
        |_: Vec<i64>| {},
    ));
    assert!(
        matches!(r, Err(stage::RemoteStageError::BadOptions(_))),
        "{r:?}"
    );
    assert!(rt().block_on(p.stop()) == orbit::ExitReason::Shutdown);
}
