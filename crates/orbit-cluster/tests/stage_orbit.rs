//! GenStage across Orbit nodes only: this test process and children running this same
//! binary as Orbit nodes. A producer on node A (a child), two producer_consumers here
//! (node B), a consumer on node C (another child): every event exactly once, in order
//! through each processor; subscription demand between Orbit nodes; a consumer's own
//! stop; the producer's node going down (`Permanent` exits with `noconnection`,
//! `Temporary` keeps running).

mod beam;

use std::io::BufRead;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beam::*;
use orbit_cluster::stage::{self, CancelMode, RemoteStage, RemoteStageOptions, RemoteSubscribe};
use orbit_term::Term;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const N: i64 = 3000;

/// A child node: `producer` registers `src` counting 0..N; `consumer` waits for
/// `D consume` and then subscribes to the parent's `pc1` and `pc2`, replying the
/// events it got once it has N.
fn child_main(parent: String, name: String, role: String) {
    let rt = rt();
    rt.block_on(async {
        let node = orbit_dist::Node::start(&name, orbit_dist::Options::cookie(COOKIE))
            .await
            .unwrap();
        orbit_cluster::start(&node).unwrap();
        assert!(node.connect(&parent).await);
    });
    let reply = move |t: Term| {
        let m = Term::tuple(vec![Term::atom("reply"), t]);
        orbit_dist::send_named(&parent, "pg_inbox", &m).unwrap();
    };
    let mut keep = Vec::new();
    if role == "producer" {
        for name in ["src", "src0"] {
            let mut next = 0i64;
            keep.push(
                rt.block_on(async {
                    stage::producer(RemoteStageOptions::named(name), move |n| {
                        let top = (next + n as i64).min(N);
                        let ev: Vec<i64> = (next..top).collect();
                        next = top;
                        ev
                    })
                })
                .unwrap(),
            );
        }
    }
    reply(Term::atom("ready"));
    let parent_node = std::env::var("ORBIT_NODE").unwrap();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() != "D consume" {
            reply(Term::atom("unknown"));
            continue;
        }
        let (tx, mut rx) = unbounded_channel::<Vec<(u8, i64)>>();
        let got = rt.block_on(async {
            let c = stage::consumer(
                ("pc1", parent_node.as_str()),
                RemoteSubscribe::max_demand(10),
                move |ev: Vec<(u8, i64)>| {
                    let _ = tx.send(ev);
                },
            )
            .await
            .unwrap();
            c.subscribe(
                ("pc2", parent_node.as_str()),
                RemoteSubscribe::max_demand(10),
            )
            .await
            .unwrap();
            let mut got = Vec::new();
            while (got.len() as i64) < N {
                got.extend(rx.recv().await.unwrap());
            }
            got
        });
        let t = Term::List(
            got.into_iter()
                .map(|(id, x)| Term::tuple(vec![Term::Int(id as i64), Term::Int(x)]))
                .collect(),
        );
        reply(t);
    }
}

#[test]
fn child() {
    if let (Ok(parent), Ok(name), Ok(role)) = (
        std::env::var("ORBIT_NODE"),
        std::env::var("STAGE_CHILD"),
        std::env::var("STAGE_ROLE"),
    ) {
        child_main(parent, name, role);
    }
}

fn spawn_child(o: &Orbit, role: &str) -> Beam {
    let name = format!("orbit_{role}_{}@127.0.0.1", std::process::id());
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env("STAGE_CHILD", &name)
        .env("STAGE_ROLE", role);
    Beam::spawn(cmd, name, o)
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

fn batch(rx: &mut UnboundedReceiver<Vec<i64>>) -> Vec<i64> {
    rt().block_on(async { tokio::time::timeout(Duration::from_secs(20), rx.recv()).await })
        .expect("a batch within 20s")
        .expect("consumer alive")
}

#[test]
fn genstage_between_orbit_nodes() {
    if std::env::var("STAGE_CHILD").is_ok() {
        return;
    }
    let o = orbit("orbit_stage_mesh");
    rt().block_on(async { orbit_cluster::start(&o.node).unwrap() });
    let a = spawn_child(o, "producer");

    // Demand between Orbit nodes: batches of at most max - min.
    let (c, mut rx) = orbit_consumer(
        ("src0", &a.name),
        RemoteSubscribe::max_demand(10)
            .min_demand(5)
            .cancel(CancelMode::Permanent),
    );
    let mut got = Vec::new();
    while got.len() < 100 {
        let b = batch(&mut rx);
        assert!(b.len() <= 5, "batch of {}", b.len());
        got.extend(b);
    }
    assert_eq!(got, (0..got.len() as i64).collect::<Vec<_>>());
    assert_eq!(c.excess(), 0);
    rt().block_on(c.stop());

    // The pipeline: A's src -> pc1, pc2 here -> a consumer on node C.
    let seen = Arc::new(Mutex::new([0usize; 2]));
    let mut pcs = Vec::new();
    for id in 1..=2u8 {
        let seen = seen.clone();
        let pc = rt()
            .block_on(stage::producer_consumer(
                RemoteStageOptions::named(&format!("pc{id}")),
                ("src", a.name.as_str()),
                RemoteSubscribe::max_demand(10),
                move |ev: Vec<i64>| {
                    seen.lock().unwrap()[id as usize - 1] += ev.len();
                    ev.into_iter().map(|x| (id, x)).collect::<Vec<_>>()
                },
            ))
            .unwrap();
        pcs.push(pc);
    }
    let mut cnode = spawn_child(o, "consumer");
    let Term::List(events) = cnode.eval(o, "consume") else {
        panic!("the consumer node's reply is not a list")
    };
    let mut all = Vec::new();
    let mut per: [Vec<i64>; 2] = Default::default();
    for t in events {
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
        assert!(!p.is_empty(), "both processors took events");
    }

    // The producer's node goes down.
    let sub = |m| RemoteSubscribe::max_demand(10).cancel(m);
    let (perm, _r1) = orbit_consumer(("src", &a.name), sub(CancelMode::Permanent));
    let (temp, _r2) = orbit_consumer(("src", &a.name), sub(CancelMode::Temporary));
    drop(a);
    let reason = rt()
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), perm.wait_exit()).await })
        .expect("the permanent consumer exits");
    assert_eq!(reason, orbit::ExitReason::NoConnection);
    assert!(
        rt().block_on(temp.cancel(&Term::atom("none"))).is_ok(),
        "temporary runs"
    );
    for pc in pcs {
        // Their producer's node is gone: permanent subscriptions, so they exited too.
        let r = rt().block_on(async {
            tokio::time::timeout(Duration::from_secs(30), pc.wait_exit()).await
        });
        assert_eq!(r.expect("pc exits"), orbit::ExitReason::NoConnection);
    }
    rt().block_on(temp.stop());
}
