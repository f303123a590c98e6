//! GenStage across nodes with the real gen_stage from /work/shared/beamlibs: an Elixir
//! consumer on an Orbit producer (automatic and manual demand, cancel modes, the Orbit
//! node going away), an Orbit consumer on an Elixir producer (ask sequence, cancel
//! modes, the producer's node going down), and a 3-node pipeline Elixir -> Orbit
//! producer_consumers -> Elixir, balanced by demand.

mod beam;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beam::*;
use orbit_cluster::stage::{self, CancelMode, RemoteStage, RemoteStageOptions, RemoteSubscribe};
use orbit_term::Term;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

fn stage_peer(prefix: &str, o: &Orbit, libs: &str) -> Beam {
    let name = format!("{prefix}_{}@127.0.0.1", std::process::id());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/beam/stage_peer.exs");
    let mut cmd = Command::new("elixir");
    cmd.env("ERL_LIBS", libs)
        .args(["--name", &name, "--cookie", COOKIE, script]);
    Beam::spawn(cmd, name, o)
}

fn ints(t: &Term) -> Vec<i64> {
    match t {
        Term::List(l) => l.iter().filter_map(Term::as_i64).collect(),
        _ => Vec::new(),
    }
}

/// The next sink message of the given tag (`{Tag, ...}`), skipping nothing.
fn next(o: &Orbit, tag: &str) -> Vec<Term> {
    match o.event(20) {
        Term::Tuple(e) if e.first().and_then(Term::as_atom) == Some(tag) => e,
        other => panic!("expected a {tag} message, got {other}"),
    }
}

/// A bounded Orbit producer counting from 0 to `limit`, recording each demand.
fn counting_producer(name: &str, limit: i64) -> (RemoteStage, Arc<Mutex<Vec<u64>>>) {
    let demands = Arc::new(Mutex::new(Vec::new()));
    let d = demands.clone();
    let mut next = 0i64;
    let p = rt()
        .block_on(async {
            stage::producer(RemoteStageOptions::named(name), move |n| {
                d.lock().unwrap().push(n);
                let top = (next + n as i64).min(limit);
                let ev: Vec<i64> = (next..top).collect();
                next = top;
                ev
            })
        })
        .unwrap();
    (p, demands)
}

fn orbit_consumer(
    to: (&str, &str),
    opts: RemoteSubscribe,
) -> (RemoteStage, UnboundedReceiver<Vec<i64>>) {
    let (tx, rx) = unbounded_channel();
    let c = rt()
        .block_on(stage::consumer(to, opts, move |ev: Vec<i64>| {
            let _ = tx.send(ev);
        }))
        .unwrap();
    (c, rx)
}

fn recv_n(rx: &mut UnboundedReceiver<Vec<i64>>, n: usize, max_batch: usize) -> Vec<i64> {
    let mut got = Vec::new();
    while got.len() < n {
        let b = rt()
            .block_on(async { tokio::time::timeout(Duration::from_secs(20), rx.recv()).await })
            .expect("a batch within 20s")
            .expect("consumer alive");
        assert!(b.len() <= max_batch, "batch of {} > {max_batch}", b.len());
        got.extend(b);
    }
    got
}

/// True when the stage still runs: it answers a request (signals such as a `DOWN` queued
/// before the request are handled first).
fn alive(s: &RemoteStage) -> bool {
    rt().block_on(s.cancel(&Term::atom("no_such_tag"))).is_ok()
}

fn exit_of(s: &RemoteStage) -> orbit::ExitReason {
    rt().block_on(async { tokio::time::timeout(Duration::from_secs(20), s.wait_exit()).await })
        .expect("the stage exits within 20s")
}

#[test]
fn genstage_with_elixir() {
    if !have("elixir") {
        println!("SKIP genstage_with_elixir: elixir is not installed");
        return;
    }
    let Some(libs) = beamlibs() else {
        println!("SKIP genstage_with_elixir: /work/shared/beamlibs could not be built");
        return;
    };
    let o = orbit("orbit_stage");
    rt().block_on(async { orbit_cluster::start(&o.node).unwrap() });
    let mut a = stage_peer("ex_stage_a", o, &libs);

    elixir_consumer_automatic(o, &mut a);
    elixir_consumer_manual(o, &mut a);
    elixir_consumer_cancels(o, &mut a);
    orbit_consumer_of_elixir(o, &mut a);
    orbit_consumer_cancel_modes(o, &mut a);
    pipeline(o, &mut a, &libs);
    orbit_consumer_nodedown(o, &libs);
    elixir_consumer_nodedown(o, &mut a);
}

/// `GenStage.sync_subscribe(c, to: {:orbit_prod, orbit}, max_demand: 10)`: all events in
/// order, batches of at most max - min, and the demand GenStage asks (10, then 5s).
fn elixir_consumer_automatic(o: &Orbit, a: &mut Beam) {
    let (p, demands) = counting_producer("orbit_prod", 100);
    a.eval(o, "{:ok, c} = GenStage.start(Cons, {sink, :automatic})");
    let r = a.eval(
        o,
        "GenStage.sync_subscribe(c, to: {:orbit_prod, orbit}, max_demand: 10, min_demand: 5)",
    );
    assert!(
        matches!(&r, Term::Tuple(e) if e[0].as_atom() == Some("ok")),
        "{r}"
    );
    let mut got = Vec::new();
    while got.len() < 100 {
        let e = next(o, "events");
        let b = ints(&e[2]);
        assert!(
            b.len() <= 10,
            "Elixir got a batch of {} > max_demand",
            b.len()
        );
        got.extend(b);
    }
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    let d = demands.lock().unwrap().clone();
    assert_eq!(d[0], 10, "GenStage asks max_demand first: {d:?}");
    assert!(d[1..].iter().all(|&n| n == 5), "then max - min: {d:?}");
    a.eval(o, "GenStage.stop(c)");
    rt().block_on(p.stop());
}

/// Manual demand: exactly what the consumer asks for, never more.
fn elixir_consumer_manual(o: &Orbit, a: &mut Beam) {
    let p = rt()
        .block_on(async {
            stage::producer(RemoteStageOptions::named("orbit_push"), |_n| {
                Vec::<i64>::new()
            })
        })
        .unwrap();
    p.push(&(0..50).collect::<Vec<i64>>()).unwrap();
    a.eval(o, "{:ok, m} = GenStage.start(Cons, {sink, :manual})");
    a.eval(o, "GenStage.sync_subscribe(m, to: {:orbit_push, orbit})");
    a.eval(o, "GenStage.call(m, {:ask, 3})");
    assert_eq!(ints(&next(o, "events")[2]), vec![0, 1, 2]);
    a.eval(o, "GenStage.call(m, {:ask, 4})");
    assert_eq!(ints(&next(o, "events")[2]), vec![3, 4, 5, 6]);
    a.eval(o, "GenStage.call(m, {:ask, 1})");
    // Any excess would have arrived before this (same sender, same connection).
    assert_eq!(ints(&next(o, "events")[2]), vec![7]);
    assert_eq!(a.eval(o, "GenStage.call(m, :count)"), Term::Int(8));
    a.eval(o, "GenStage.stop(m)");
    rt().block_on(p.stop());
}

/// The Elixir consumer cancels (Orbit answers the cancel; a permanent consumer stops);
/// the Orbit producer stops: a transient consumer survives `shutdown`, a permanent one
/// exits.
fn elixir_consumer_cancels(o: &Orbit, a: &mut Beam) {
    let (p, _) = counting_producer("orbit_prod2", 0);
    a.eval(o, "{:ok, k} = GenStage.start(Cons, {sink, :automatic})");
    a.eval(
        o,
        "{:ok, kref} = GenStage.sync_subscribe(k, to: {:orbit_prod2, orbit})",
    );
    a.eval(o, "kmon = Process.monitor(k)");
    a.eval(o, "GenStage.cancel({{:orbit_prod2, orbit}, kref}, :normal)");
    // The consumer gets the producer's cancel and stops (permanent, any reason).
    let e = next(o, "cancelled");
    assert_eq!(
        e[2],
        Term::tuple(vec![Term::atom("cancel"), Term::atom("normal")])
    );
    let down = a.eval(
        o,
        "receive do {:DOWN, ^kmon, _, _, r} -> r after 10_000 -> :timeout end",
    );
    assert_eq!(down, Term::atom("normal"));

    a.eval(o, "{:ok, t} = GenStage.start(Cons, {sink, :automatic})");
    a.eval(
        o,
        "GenStage.sync_subscribe(t, to: {:orbit_prod2, orbit}, cancel: :transient)",
    );
    a.eval(o, "{:ok, pm} = GenStage.start(Cons, {sink, :automatic})");
    a.eval(
        o,
        "GenStage.sync_subscribe(pm, to: {:orbit_prod2, orbit}, cancel: :permanent)",
    );
    a.eval(o, "pmon = Process.monitor(pm)");
    rt().block_on(p.stop());
    let mut reasons = vec![
        next(o, "cancelled")[2].clone(),
        next(o, "cancelled")[2].clone(),
    ];
    reasons.sort_by_key(|t| t.to_string());
    let down_shutdown = Term::tuple(vec![Term::atom("down"), Term::atom("shutdown")]);
    assert_eq!(reasons, vec![down_shutdown.clone(), down_shutdown]);
    let down = a.eval(
        o,
        "receive do {:DOWN, ^pmon, _, _, r} -> r after 10_000 -> :timeout end",
    );
    assert_eq!(down, Term::atom("shutdown"));
    assert_eq!(a.eval(o, "Process.alive?(t)"), Term::atom("true"));
    a.eval(o, "GenStage.stop(t)");
}

/// An Orbit consumer on an Elixir producer: asks max_demand, then max - min after each
/// batch once min is reached; events in order.
fn orbit_consumer_of_elixir(o: &Orbit, a: &mut Beam) {
    a.eval(
        o,
        "{:ok, ep} = GenStage.start(Prod, {0, 40, sink}, name: :ex_prod)",
    );
    let (c, mut rx) = orbit_consumer(
        ("ex_prod", &a.name),
        RemoteSubscribe::max_demand(10).min_demand(5),
    );
    let got = recv_n(&mut rx, 40, 5);
    assert_eq!(got, (0..40).collect::<Vec<_>>());
    let mut demands = Vec::new();
    while demands.len() < 8 {
        demands.push(next(o, "demand")[1].as_i64().unwrap());
    }
    assert_eq!(demands[0], 10, "{demands:?}");
    assert!(demands[1..].iter().all(|&d| d == 5), "{demands:?}");
    assert_eq!(c.excess(), 0);
    assert_eq!(c.ignored(), 0);
    rt().block_on(c.stop());
    a.eval(o, "GenStage.stop(ep)");
    // Drain the demand reports the producer made after the 8th.
    a.eval(o, "send(sink, {:marker})");
    while !matches!(o.event(20), Term::Tuple(e) if e[0].as_atom() == Some("marker")) {}
}

/// The Elixir producer stops with `shutdown`: permanent exits, transient and temporary
/// keep running.
fn orbit_consumer_cancel_modes(o: &Orbit, a: &mut Beam) {
    a.eval(
        o,
        "{:ok, ep2} = GenStage.start(Prod, {0, 0, nil}, name: :ex_prod2)",
    );
    let sub = |m| RemoteSubscribe::max_demand(10).cancel(m);
    let (perm, _r1) = orbit_consumer(("ex_prod2", &a.name), sub(CancelMode::Permanent));
    let (trans, _r2) = orbit_consumer(("ex_prod2", &a.name), sub(CancelMode::Transient));
    let (temp, _r3) = orbit_consumer(("ex_prod2", &a.name), sub(CancelMode::Temporary));
    a.eval(o, "GenStage.stop(ep2, :shutdown)");
    assert_eq!(exit_of(&perm), orbit::ExitReason::Shutdown);
    assert!(alive(&trans), "transient survives shutdown");
    assert!(alive(&temp), "temporary survives");
    // A transient consumer exits on an abnormal reason.
    a.eval(
        o,
        "{:ok, ep3} = GenStage.start(Prod, {0, 0, nil}, name: :ex_prod3)",
    );
    let (trans2, _r4) = orbit_consumer(("ex_prod3", &a.name), sub(CancelMode::Transient));
    a.eval(o, "GenStage.stop(ep3, :boom)");
    assert_eq!(exit_of(&trans2).to_term(), Term::atom("boom"));
    // A name nobody registered: an error at once.
    let r = rt().block_on(stage::consumer(
        ("no_such_producer", a.name.as_str()),
        RemoteSubscribe::max_demand(10),
        |_: Vec<i64>| {},
    ));
    assert!(
        matches!(r, Err(stage::RemoteStageError::NoProducer(_))),
        "{r:?}"
    );
    rt().block_on(trans.stop());
    rt().block_on(temp.stop());
}

/// Elixir producer (node A) -> two Orbit producer_consumers (this node) -> Elixir
/// consumer (node C): every event exactly once, in order through each processor, both
/// processors used.
fn pipeline(o: &Orbit, a: &mut Beam, libs: &str) {
    const N: i64 = 3000;
    let mut c = stage_peer("ex_stage_c", o, libs);
    a.eval(
        o,
        &format!("{{:ok, src}} = GenStage.start(Prod, {{0, {N}, nil}}, name: :ex_src)"),
    );
    let mut pcs = Vec::new();
    for id in 1..=2u8 {
        let pc = rt()
            .block_on(stage::producer_consumer(
                RemoteStageOptions::named(&format!("orbit_pc{id}")),
                ("ex_src", a.name.as_str()),
                RemoteSubscribe::max_demand(10),
                move |ev: Vec<i64>| ev.into_iter().map(|x| (id, x)).collect::<Vec<_>>(),
            ))
            .unwrap();
        pcs.push(pc);
    }
    c.eval(o, "{:ok, sinkc} = GenStage.start(Cons, {nil, :automatic})");
    for id in 1..=2 {
        c.eval(
            o,
            &format!(
                "GenStage.sync_subscribe(sinkc, to: {{:orbit_pc{id}, orbit}}, max_demand: 10)"
            ),
        );
    }
    eventually("the Elixir consumer has every event", 60, || {
        c.eval(o, "GenStage.call(sinkc, :count)") == Term::Int(N)
    });
    let got = c.eval(o, "GenStage.call(sinkc, :got)");
    let Term::List(got) = got else {
        panic!("{got}")
    };
    let mut all = Vec::new();
    let mut per: [Vec<i64>; 2] = Default::default();
    for t in got {
        let Term::Tuple(e) = t else { panic!() };
        let (id, x) = (e[0].as_i64().unwrap(), e[1].as_i64().unwrap());
        per[(id - 1) as usize].push(x);
        all.push(x);
    }
    all.sort();
    assert_eq!(all, (0..N).collect::<Vec<_>>(), "each event exactly once");
    for p in &per {
        assert!(
            p.windows(2).all(|w| w[0] < w[1]),
            "in order through a processor"
        );
    }
    assert!(
        per.iter().all(|p| !p.is_empty()),
        "both processors took events"
    );
    for pc in &pcs {
        assert_eq!(pc.excess(), 0);
        rt().block_on(pc.stop());
    }
    a.eval(o, "GenStage.stop(src)");
}

/// The Elixir producer's node goes down: a permanent Orbit consumer exits with
/// `noconnection`, a temporary one keeps running.
fn orbit_consumer_nodedown(o: &Orbit, libs: &str) {
    let mut b = stage_peer("ex_stage_b", o, libs);
    b.eval(
        o,
        "{:ok, _} = GenStage.start(Prod, {0, 0, nil}, name: :ex_prod4)",
    );
    let sub = |m| RemoteSubscribe::max_demand(10).cancel(m);
    let (perm, _r1) = orbit_consumer(("ex_prod4", &b.name), sub(CancelMode::Permanent));
    let (temp, _r2) = orbit_consumer(("ex_prod4", &b.name), sub(CancelMode::Temporary));
    drop(b);
    assert_eq!(exit_of(&perm), orbit::ExitReason::NoConnection);
    assert!(alive(&temp));
    rt().block_on(temp.stop());
}

/// The Orbit node disconnects: the Elixir consumer gets `{:down, :noconnection}`; a
/// permanent one exits, a temporary one keeps running.
fn elixir_consumer_nodedown(o: &Orbit, a: &mut Beam) {
    let (_p, _) = counting_producer("orbit_prod5", 0);
    a.eval(o, "{:ok, np} = GenStage.start(Cons, {sink, :automatic})");
    a.eval(
        o,
        "GenStage.sync_subscribe(np, to: {:orbit_prod5, orbit}, cancel: :permanent)",
    );
    a.eval(o, "{:ok, nt} = GenStage.start(Cons, {sink, :automatic})");
    a.eval(
        o,
        "GenStage.sync_subscribe(nt, to: {:orbit_prod5, orbit}, cancel: :temporary)",
    );
    assert!(o.node.disconnect(&a.name));
    let mut reasons = vec![
        next(o, "cancelled")[2].clone(),
        next(o, "cancelled")[2].clone(),
    ];
    reasons.dedup();
    assert_eq!(
        reasons,
        vec![Term::tuple(vec![
            Term::atom("down"),
            Term::atom("noconnection")
        ])]
    );
    eventually("the permanent consumer stopped", 20, || {
        a.eval(o, "Process.alive?(np)") == Term::atom("false")
    });
    assert_eq!(a.eval(o, "Process.alive?(nt)"), Term::atom("true"));
}
