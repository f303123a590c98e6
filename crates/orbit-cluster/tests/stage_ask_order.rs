//! Asks go out in GenStage's order: a remote consumer sends the ask a batch earns
//! (GenStage's `split_batches`: back up to `max_demand` once pending demand falls to
//! `min_demand`) after the batch's callback returns, never before, so it never holds more
//! than `max_demand` events. A real `erl` peer plays the producer by hand; the callback
//! reports each batch to that same peer, over the same connection, from the stage
//! process, so the order in which the peer receives the asks and the reports is the
//! order in which the stage sent them.

mod beam;

use std::time::Duration;

use beam::*;
use orbit_cluster::stage::{self, RemoteSubscribe};
use orbit_term::{atom, Term};

#[test]
fn each_batch_asks_after_its_callback_as_genstage() {
    if !have("erl") {
        println!("SKIP each_batch_asks_after_its_callback_as_genstage: erl is not installed");
        return;
    }
    let o = orbit("orbit_stage_ask_order");
    rt().block_on(async { orbit_cluster::start(&o.node).unwrap() });
    let mut b = Beam::erl("erl_stage_ask_order", o);
    b.eval(o, "register(handprod, self()).");
    let peer = b.name.clone();
    let c = rt()
        .block_on(stage::consumer(
            ("handprod", b.name.as_str()),
            RemoteSubscribe::max_demand(10).min_demand(5),
            move |ev: Vec<i64>| {
                // Sent from the stage process: ordered with its asks on the connection.
                orbit_dist::send_named(&peer, "handprod", &(atom!("cb"), ev)).unwrap();
            },
        ))
        .unwrap();
    b.eval(
        o,
        "receive {'$gen_producer', {C, CR}, {subscribe, _, _}} -> ok after 10000 -> timeout end.",
    );
    // The next ask or callback report, in arrival order.
    b.eval(
        o,
        "Next = fun() -> receive {'$gen_producer', {C, CR}, {ask, X}} -> {ask, X}; {cb, Y} -> {cb, Y} after 10000 -> timeout end end.",
    );
    assert_eq!(
        b.eval(o, "Next()."),
        Term::tuple(vec![Term::atom("ask"), Term::Int(10)]),
        "the first ask is max_demand"
    );
    // 10 events: two batches of max - min = 5, each asking 5 (pending falls to 5), each
    // ask after its batch's callback, as GenStage's consumer_dispatch.
    b.eval(o, "C ! {'$gen_consumer', {self(), CR}, lists:seq(1, 10)}.");
    let seq = b.eval(o, "[Next(), Next(), Next(), Next()].");
    let ask = |n| Term::tuple(vec![Term::atom("ask"), Term::Int(n)]);
    let cb = |r: std::ops::RangeInclusive<i64>| {
        Term::tuple(vec![
            Term::atom("cb"),
            Term::List(r.map(Term::Int).collect()),
        ])
    };
    assert_eq!(
        seq,
        Term::List(vec![cb(1..=5), ask(5), cb(6..=10), ask(5)]),
        "asks and callbacks in the order sent"
    );
    // Nothing more was asked: 10 asked, 10 delivered, 10 asked back.
    let more = b.eval(
        o,
        "receive {'$gen_producer', _, {ask, More}} -> More after 300 -> none end.",
    );
    assert_eq!(more, Term::atom("none"));
    assert_eq!(c.excess(), 0);
    b.eval(o, "C ! {'$gen_consumer', {self(), CR}, {cancel, normal}}.");
    let r = rt()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), c.wait_exit()).await })
        .expect("consumer exits");
    assert_eq!(r.to_term(), Term::atom("normal"));
}
