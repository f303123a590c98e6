//! Asks go out as early as GenStage's demand allows: a remote consumer sends the ask a
//! batch earns (GenStage's `split_batches`: back up to `max_demand` once pending demand
//! falls to `min_demand`) before the batch's callback runs, not after it returns. A real
//! `erl` peer plays the producer by hand and sees each ask, with GenStage's amounts and
//! order, while the callback of that batch is still held.

mod beam;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beam::*;
use orbit_cluster::stage::{self, RemoteSubscribe};
use orbit_term::Term;

#[test]
fn each_batch_asks_before_its_callback_runs() {
    if !have("erl") {
        println!("SKIP each_batch_asks_before_its_callback_runs: erl is not installed");
        return;
    }
    let o = orbit("orbit_stage_ask_early");
    rt().block_on(async { orbit_cluster::start(&o.node).unwrap() });
    let mut b = Beam::erl("erl_stage_ask_early", o);
    b.eval(o, "register(handprod, self()).");

    // The callback holds each batch until the test releases it.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let returned = Arc::new(AtomicUsize::new(0));
    let ret = returned.clone();
    let c = rt()
        .block_on(stage::consumer(
            ("handprod", b.name.as_str()),
            RemoteSubscribe::max_demand(10).min_demand(5),
            move |ev: Vec<i64>| {
                let _ = tx.send(ev);
                if held.recv_timeout(Duration::from_secs(30)).is_ok() {
                    ret.fetch_add(1, Ordering::SeqCst);
                }
            },
        ))
        .unwrap();
    b.eval(
        o,
        "receive {'$gen_producer', {C, CR}, {subscribe, _, _}} -> ok after 10000 -> timeout end.",
    );
    let ask = |b: &mut Beam| {
        b.eval(
            o,
            "receive {'$gen_producer', {C, CR}, {ask, N}} -> N after 10000 -> timeout end.",
        )
    };
    assert_eq!(ask(&mut b), Term::Int(10), "the first ask is max_demand");
    // 10 events: two batches of max - min = 5, each asking 5 (pending falls to 5).
    b.eval(o, "C ! {'$gen_consumer', {self(), CR}, lists:seq(1, 10)}.");
    let recv = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<i64>>| {
        rt().block_on(async { tokio::time::timeout(Duration::from_secs(10), rx.recv()).await })
            .expect("a batch")
            .expect("the consumer is alive")
    };
    assert_eq!(recv(&mut rx), vec![1, 2, 3, 4, 5]);
    // The first batch's callback is held, and its ask has already reached the producer.
    assert_eq!(ask(&mut b), Term::Int(5));
    assert_eq!(returned.load(Ordering::SeqCst), 0, "the callback was held");
    release.send(()).unwrap();
    assert_eq!(recv(&mut rx), vec![6, 7, 8, 9, 10]);
    assert_eq!(ask(&mut b), Term::Int(5));
    assert_eq!(returned.load(Ordering::SeqCst), 1, "the second callback is held");
    release.send(()).unwrap();
    // Nothing more was asked: 10 asked, 10 delivered, 10 asked back.
    let more = b.eval(
        o,
        "receive {'$gen_producer', _, {ask, N2}} -> N2 after 300 -> none end.",
    );
    assert_eq!(more, Term::atom("none"));
    assert_eq!(c.excess(), 0);
    b.eval(o, "C ! {'$gen_consumer', {self(), CR}, {cancel, normal}}.");
    let r = rt()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), c.wait_exit()).await })
        .expect("consumer exits");
    assert_eq!(r.to_term(), Term::atom("normal"));
}
