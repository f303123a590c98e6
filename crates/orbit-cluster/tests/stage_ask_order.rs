//! Asks go out in GenStage's order: a remote consumer sends the ask a batch earns
//! (GenStage's `split_batches`: back up to `max_demand` once pending demand falls to
//! `min_demand`) after the batch's callback returns, never before, so it never holds more
//! than `max_demand` events. A real `erl` peer plays the producer by hand; the callback
//! reports each batch to that same peer, over the same connection, from the stage
//! process, so the order in which the peer receives the asks and the reports is the
//! order in which the stage sent them.
//!
//! And a producer hands out what its callback made beyond the demand in order: the
//! consumer with the most demand first, the surplus kept and sent before anything the
//! callback makes later, as GenStage's `DemandDispatcher` and buffer. A real `erl` peer
//! plays two consumers by hand.

mod beam;

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use beam::*;
use orbit_cluster::stage::{self, RemoteSubscribe};
use orbit_term::{atom, Term};

/// This test binary's Orbit node, with the cluster services started once, and a guard
/// that runs the tests one at a time (their `erl` peers share the node's reply inbox).
fn node() -> (&'static Orbit, MutexGuard<'static, ()>) {
    static SERIAL: Mutex<()> = Mutex::new(());
    static STARTED: OnceLock<()> = OnceLock::new();
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let o = orbit("orbit_stage_ask_order");
    STARTED.get_or_init(|| rt().block_on(async { orbit_cluster::start(&o.node).unwrap() }));
    (o, serial)
}

#[test]
fn each_batch_asks_after_its_callback_as_genstage() {
    if !have("erl") {
        println!("SKIP each_batch_asks_after_its_callback_as_genstage: erl is not installed");
        return;
    }
    let (o, _serial) = node();
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

#[test]
fn a_producer_hands_out_its_callbacks_surplus_in_order() {
    if !have("erl") {
        println!("SKIP a_producer_hands_out_its_callbacks_surplus_in_order: erl is not installed");
        return;
    }
    let (o, _serial) = node();
    // Asked for n, the callback makes 2n events, numbered on.
    let mut next = 0i64;
    let p = rt()
        .block_on(async {
            stage::producer(stage::RemoteStageOptions::named("surplus_src"), move |n| {
                let ev: Vec<i64> = (next..next + 2 * n as i64).collect();
                next += 2 * n as i64;
                ev
            })
        })
        .unwrap();
    let mut b = Beam::erl("erl_stage_surplus", o);
    let orbit_name = o.name.clone();
    b.eval(
        o,
        &format!("P = {{surplus_src, '{orbit_name}'}}, R1 = make_ref(), R2 = make_ref(), ok."),
    );
    b.eval(
        o,
        "[P ! {'$gen_producer', {self(), R}, {subscribe, nil, []}} || R <- [R1, R2]], ok.",
    );
    b.eval(
        o,
        "Ask = fun(R, N) -> P ! {'$gen_producer', {self(), R}, {ask, N}}, ok end.",
    );
    // The next events message, as {1 or 2, Events}.
    b.eval(
        o,
        "Next = fun() -> receive {'$gen_consumer', {_, R}, Es} when is_list(Es) -> {case R of R1 -> 1; R2 -> 2 end, Es} after 10000 -> timeout end end.",
    );
    let got = |id: i64, r: std::ops::Range<i64>| {
        Term::tuple(vec![Term::Int(id), Term::List(r.map(Term::Int).collect())])
    };
    // R1 asks 3: the callback makes 0..6; R1 gets 0..3, 3..6 stay.
    b.eval(o, "Ask(R1, 3).");
    assert_eq!(b.eval(o, "Next()."), got(1, 0..3));
    // R2 asks 2: served from the surplus, the callback is not asked.
    b.eval(o, "Ask(R2, 2).");
    assert_eq!(b.eval(o, "Next()."), got(2, 3..5));
    // R1 asks 4: 5 from the surplus first, then the callback makes 6..12 for the other 3.
    b.eval(o, "Ask(R1, 4).");
    assert_eq!(
        b.eval(o, "[Next(), Next()]."),
        Term::List(vec![got(1, 5..6), got(1, 6..9)])
    );
    // R2 asks 5: 9..12 from the surplus, then 12..14 of the callback's 12..16.
    b.eval(o, "Ask(R2, 5).");
    assert_eq!(
        b.eval(o, "[Next(), Next()]."),
        Term::List(vec![got(2, 9..12), got(2, 12..14)])
    );
    // Nothing more: 14 and 15 wait for demand.
    assert_eq!(
        b.eval(
            o,
            "receive {'$gen_consumer', _, _} = M -> M after 300 -> none end."
        ),
        Term::atom("none")
    );
    b.eval(o, "Ask(R1, 1).");
    assert_eq!(b.eval(o, "Next()."), got(1, 14..15));
    assert_eq!(p.ignored(), 0);
}
