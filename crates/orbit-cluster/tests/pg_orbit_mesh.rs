//! Two Orbit nodes (this test process and a child running this same binary): `pg`
//! membership and PubSub between Orbit nodes, and a seeded differential run: random
//! joins, leaves and kills on both nodes, then every group's members compared on both.

mod beam;

use beam::*;
use orbit::Pid;
use orbit_cluster::pg;
use orbit_cluster::pubsub::PubSub;
use orbit_term::Term;

const PUBSUB: &str = "Mesh.PubSub";

fn wire(p: Pid) -> Term {
    Term::Pid(Box::new(orbit_dist::to_wire(p)))
}

/// The child node: commands on stdin, replies `{reply, V}` to the parent's `pg_inbox`.
fn child_main(parent: String, name: String) {
    let rt = rt();
    let scope = rt.block_on(async {
        orbit_dist::Node::start(&name, orbit_dist::Options::cookie(COOKIE))
            .await
            .unwrap();
        let scope = pg::start_scope(pg::DEFAULT_SCOPE).unwrap();
        PubSub::start(PUBSUB, 2).await.unwrap();
        assert!(orbit_dist::Node::current().unwrap().connect(&parent).await);
        scope
    });
    serve_parent(&parent, |w| match w {
        ["D", "join", g] => {
            let p = rt.block_on(async {
                let p = member();
                scope.join(*g, p).await.unwrap();
                p
            });
            wire(p)
        }
        ["D", "leave", g] => {
            let p = scope.get_local_members(*g).first().copied();
            if let Some(p) = p {
                rt.block_on(scope.leave(*g, p)).unwrap();
            }
            Term::atom("ok")
        }
        ["D", "kill", g] => {
            if let Some(p) = scope.get_local_members(*g).first() {
                orbit::exit(*p, orbit::ExitReason::Kill);
            }
            Term::atom("ok")
        }
        ["D", "members", g] => Term::List(scope.get_members(*g).into_iter().map(wire).collect()),
        ["D", "sub", topic] => {
            let topic = topic.to_string();
            let parent = parent.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            rt.block_on(async {
                orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
                    PubSub::named(PUBSUB).unwrap().subscribe(&topic).unwrap();
                    tx.send(()).unwrap();
                    while let orbit::Message::Msg(m) = ctx.recv().await {
                        let got = Term::tuple(vec![
                            Term::atom("got"),
                            Term::Binary(topic.as_bytes().to_vec()),
                            m,
                        ]);
                        let _ = orbit_dist::send_named(&parent, "pg_events", &got);
                    }
                })
                .unwrap();
            });
            rx.recv().unwrap();
            Term::atom("ok")
        }
        ["D", "bcast", topic, i] => {
            let m = Term::tuple(vec![Term::atom("child"), Term::Int(i.parse().unwrap())]);
            PubSub::named(PUBSUB).unwrap().broadcast(topic, &m).unwrap();
            Term::atom("ok")
        }
        _ => Term::atom("unknown"),
    });
}

#[test]
fn child() {
    if let (Ok(parent), Ok(name)) = (std::env::var("ORBIT_NODE"), std::env::var("PG_CHILD")) {
        child_main(parent, name);
    }
}

fn spawn_child(o: &Orbit) -> Beam {
    Beam::orbit_child(o, "orbit_child", "PG_CHILD", &[])
}

fn child_members(c: &mut Beam, o: &Orbit, g: &str) -> Vec<Pid> {
    pids(&c.eval(o, &format!("members {g}")))
}

/// A tiny deterministic generator (no dependency): xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }
}

#[test]
fn pg_and_pubsub_between_orbit_nodes() {
    if std::env::var("PG_CHILD").is_ok() {
        return;
    }
    let o = orbit("orbit_mesh");
    let (scope, ps) = rt().block_on(async {
        (
            pg::start_scope(pg::DEFAULT_SCOPE).unwrap(),
            PubSub::start(PUBSUB, 2).await.unwrap(),
        )
    });
    let mut c = spawn_child(o);

    let a1 = rt().block_on(async { member() });
    rt().block_on(scope.join("g", a1)).unwrap();
    let c1 = pids(&Term::List(vec![c.eval(o, "join g")]))[0];
    eventually("both nodes list a1 and c1", 15, || {
        sorted(scope.get_members("g")) == sorted(vec![a1, c1])
            && child_members(&mut c, o, "g") == sorted(vec![a1, c1])
    });
    c.eval(o, "kill g");
    eventually("the parent drops the killed c1", 15, || {
        scope.get_members("g") == vec![a1]
    });
    orbit::exit(a1, orbit::ExitReason::Kill);
    eventually("the child drops the killed a1", 15, || {
        child_members(&mut c, o, "g").is_empty()
    });

    // PubSub both ways.
    for g in ps.groups() {
        let s = pg::scope(orbit_cluster::pubsub::SCOPE).unwrap();
        eventually("the child's worker is known", 15, || {
            s.get_members(g.as_str()).iter().any(|p| !p.is_local())
        });
    }
    assert_eq!(c.eval(o, "sub news"), Term::atom("ok"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (rtx, rrx) = std::sync::mpsc::channel();
    let ps2 = ps.clone();
    rt().block_on(async move {
        orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
            ps2.subscribe("news").unwrap();
            rtx.send(()).unwrap();
            while let orbit::Message::Msg(m) = ctx.recv().await {
                if tx.send(m).is_err() {
                    break;
                }
            }
        })
        .unwrap();
    });
    rrx.recv().unwrap();
    eventually("the child's workers know the parent's", 15, || {
        c.eval(o, "bcast probe 0") == Term::atom("ok")
    });
    for i in 1..=4 {
        ps.broadcast("news", &Term::Int(i)).unwrap();
    }
    for i in 1..=4 {
        let got = o.event(15);
        assert_eq!(
            got,
            Term::tuple(vec![
                Term::atom("got"),
                Term::Binary(b"news".to_vec()),
                Term::Int(i)
            ])
        );
        let local = rt().block_on(async { rx.recv().await.unwrap() });
        assert_eq!(local, Term::Int(i));
    }
    for i in 1..=4 {
        assert_eq!(c.eval(o, &format!("bcast news {i}")), Term::atom("ok"));
        let got = rt().block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(15), rx.recv())
                .await
                .expect("the child's broadcast")
                .unwrap()
        });
        assert_eq!(got, Term::tuple(vec![Term::atom("child"), Term::Int(i)]));
        o.event(15); // the child's own subscriber
    }

    // Differential: seeded random operations on both nodes, then every group compared.
    let seed = std::env::var("PG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    println!("pg differential seed {seed} (PG_SEED to replay)");
    let mut rng = Rng(seed | 1);
    let groups = ["d0", "d1", "d2"];
    let mut mine: Vec<(&str, Pid)> = Vec::new();
    for _ in 0..60 {
        let g = groups[rng.next(3) as usize];
        match (rng.next(2), rng.next(3)) {
            (0, 0) => {
                let p = rt().block_on(async { member() });
                rt().block_on(scope.join(g, p)).unwrap();
                mine.push((g, p));
            }
            (0, 1) => {
                if let Some(i) = mine.iter().position(|(mg, _)| *mg == g) {
                    let (_, p) = mine.remove(i);
                    assert!(rt().block_on(scope.leave(g, p)).unwrap());
                }
            }
            (0, _) => {
                if let Some(i) = mine.iter().position(|(mg, _)| *mg == g) {
                    let (_, p) = mine.remove(i);
                    orbit::exit(p, orbit::ExitReason::Kill);
                }
            }
            (_, 0) => {
                c.eval(o, &format!("join {g}"));
            }
            (_, 1) => {
                c.eval(o, &format!("leave {g}"));
            }
            _ => {
                c.eval(o, &format!("kill {g}"));
            }
        }
    }
    for g in groups {
        eventually(&format!("both nodes agree on {g}"), 20, || {
            let here = sorted(scope.get_members(g));
            here == child_members(&mut c, o, g)
                && here.iter().filter(|p| p.is_local()).count()
                    == mine.iter().filter(|(mg, _)| *mg == g).count()
        });
    }
}
