//! `pg` and `PubSub` on one node without distribution: join order, duplicates, leave's
//! `not_joined`, a member's exit, local-pid checks, and PubSub's local delivery
//! (`broadcast_from`, `unsubscribe`, a subscriber's exit).

use std::time::Duration;

use orbit::Pid;
use orbit_cluster::pg::{self, PgError};
use orbit_cluster::pubsub::{PubSub, PubSubError};
use orbit_term::Term;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, Term)>) -> (usize, Term) {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a delivery within 5s")
        .expect("sender alive")
}

fn member() -> orbit::Handle<Term> {
    orbit::spawn(|mut ctx: orbit::Context<Term>| async move {
        let _ = ctx.recv().await;
    })
    .unwrap()
}

#[test]
fn pg_semantics_on_one_node() {
    rt().block_on(async {
        let s = pg::start_scope("local_scope").unwrap();
        assert_eq!(pg::start_scope("local_scope").unwrap().pid(), s.pid());
        let (a, b) = (member(), member());
        s.join("g", a.pid()).await.unwrap();
        s.join("g", vec![b.pid(), a.pid()]).await.unwrap();
        assert_eq!(s.get_members("g"), vec![b.pid(), a.pid(), a.pid()]);
        assert_eq!(
            pg::get_local_members("local_scope", "g"),
            s.get_members("g")
        );
        let complex = Term::tuple(vec![Term::atom("k"), Term::Binary(b"v".to_vec())]);
        pg::join("local_scope", complex.clone(), a.pid())
            .await
            .unwrap();
        let mut groups = pg::which_groups("local_scope");
        groups.sort_by_key(|t| t.to_string());
        assert_eq!(groups, vec![Term::atom("g"), complex.clone()]);

        assert!(s.leave("g", a.pid()).await.unwrap());
        assert_eq!(s.get_members("g"), vec![b.pid(), a.pid()]);
        assert!(!s.leave("other", a.pid()).await.unwrap(), "not_joined");

        // a exits: gone from every group at once.
        a.send(Term::atom("stop")).unwrap();
        a.wait_exit().await;
        s.barrier().await.unwrap();
        assert_eq!(s.get_members("g"), vec![b.pid()]);
        assert!(s.get_members(complex).is_empty());

        // Remote pids cannot join from here; unknown scopes say how to start them.
        let remote = Pid::remote("x@127.0.0.1", 1, 0, 1);
        assert_eq!(s.join("g", remote).await, Err(PgError::NotLocal(remote)));
        assert!(matches!(
            pg::join("no_such_scope", "g", b.pid()).await,
            Err(PgError::NoScope(_))
        ));
        // A dead pid joins and is dropped at once (its monitor fires noproc).
        let dead = member();
        dead.send(Term::atom("stop")).unwrap();
        dead.wait_exit().await;
        s.join("g", dead.pid()).await.unwrap();
        s.barrier().await.unwrap();
        assert_eq!(s.get_members("g"), vec![b.pid()]);

        // Monitors: a snapshot, then each change in order.
        let (now, mut events) = s.monitor("g").await.unwrap();
        assert_eq!(now, vec![b.pid()]);
        let (all, mut every) = s.monitor_scope().await.unwrap();
        assert_eq!(all.get(&Term::atom("g")), Some(&vec![b.pid()]));
        let c = member();
        s.join("g", c.pid()).await.unwrap();
        s.join("h", c.pid()).await.unwrap();
        c.send(Term::atom("stop")).unwrap();
        c.wait_exit().await;
        s.barrier().await.unwrap();
        let ev = |g: &str, join: bool| {
            let (group, pids) = (Term::atom(g), vec![c.pid()]);
            if join {
                pg::GroupEvent::Join { group, pids }
            } else {
                pg::GroupEvent::Leave { group, pids }
            }
        };
        assert_eq!(events.try_recv().unwrap(), ev("g", true));
        assert_eq!(events.try_recv().unwrap(), ev("g", false));
        assert!(events.try_recv().is_err(), "only g's changes");
        let mut seen = Vec::new();
        while let Ok(e) = every.try_recv() {
            seen.push(e);
        }
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[0], ev("g", true));
        assert_eq!(seen[1], ev("h", true));

        s.stop();
        assert!(pg::scope("local_scope").is_none());
        assert!(pg::get_members("local_scope", "g").is_empty());
    });
}

#[test]
fn a_scope_outside_a_runtime_is_an_error() {
    assert!(matches!(
        pg::start_scope("no_runtime"),
        Err(PgError::Start { .. })
    ));
}

#[test]
fn pubsub_local_delivery() {
    rt().block_on(async {
        let ps = PubSub::start("Local.PubSub", 2).await.unwrap();
        assert_eq!(
            ps.groups(),
            [
                "Elixir.Local.PubSub.Adapter",
                "Elixir.Local.PubSub.Adapter_2"
            ]
        );
        assert!(matches!(
            PubSub::start("Elixir.Local.PubSub", 2).await,
            Err(PubSubError::Running(_))
        ));
        assert!(matches!(
            PubSub::start("Zero.PubSub", 0).await,
            Err(PubSubError::PoolSize)
        ));
        // A taken worker name fails the start cleanly, and a retry works once it is free.
        let squatter = member();
        orbit::register("Elixir.Taken.PubSub.Adapter_2", squatter.pid()).unwrap();
        assert!(matches!(
            PubSub::start("Taken.PubSub", 2).await,
            Err(PubSubError::Worker { .. })
        ));
        assert!(orbit::whereis("Elixir.Taken.PubSub.Adapter").is_none());
        orbit::unregister("Elixir.Taken.PubSub.Adapter_2").unwrap();
        PubSub::start("Taken.PubSub", 2).await.unwrap();

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Term)>();
        let mut subs = Vec::new();
        for i in 0..2 {
            let (ps, tx) = (ps.clone(), tx.clone());
            let (rtx, rrx) = tokio::sync::oneshot::channel();
            let h = orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
                ps.subscribe("t").unwrap();
                rtx.send(()).unwrap();
                while let orbit::Message::Msg(m) = ctx.recv().await {
                    if m == Term::atom("unsubscribe") {
                        ps.unsubscribe("t").unwrap();
                        tx.send((i, Term::atom("unsubscribed"))).unwrap();
                    } else if tx.send((i, m)).is_err() {
                        break;
                    }
                }
            })
            .unwrap();
            rrx.await.unwrap();
            subs.push(h);
        }
        ps.broadcast("t", &Term::Int(1)).unwrap();
        let mut got = vec![next(&mut rx).await, next(&mut rx).await];
        got.sort_by_key(|g| g.0);
        assert_eq!(got, vec![(0, Term::Int(1)), (1, Term::Int(1))]);
        // A worker's forward_to_local (what a remote node sends) delivers the same way.
        let fwd = Term::tuple(vec![
            Term::atom("forward_to_local"),
            Term::Binary(b"t".to_vec()),
            Term::Int(2),
            Term::atom("Elixir.Phoenix.PubSub"),
        ]);
        orbit::send(ps.workers()[1], fwd).unwrap();
        // Junk to a worker is ignored.
        orbit::send(ps.workers()[0], Term::atom("junk")).unwrap();
        let mut got = vec![next(&mut rx).await, next(&mut rx).await];
        got.sort_by_key(|g| g.0);
        assert_eq!(got, vec![(0, Term::Int(2)), (1, Term::Int(2))]);

        ps.broadcast_from(subs[0].pid(), "t", &Term::Int(3))
            .unwrap();
        assert_eq!(next(&mut rx).await, (1, Term::Int(3)));
        subs[1].send(Term::atom("unsubscribe")).unwrap();
        assert_eq!(next(&mut rx).await, (1, Term::atom("unsubscribed")));
        assert_eq!(ps.local_broadcast("t", &Term::Int(4)).unwrap(), 1);
        assert_eq!(next(&mut rx).await, (0, Term::Int(4)));
        assert_eq!(ps.subscribers("t"), vec![subs[0].pid()]);
        assert!(ps
            .workers()
            .iter()
            .all(|w| orbit::Handle::<Term>::from_pid(*w).is_some()));
    });
}
