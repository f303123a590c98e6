//! `:pg` interop with a real `erl -kernel start_pg true` node: joins, leaves and crashes
//! propagate both ways, a dropped connection drops the other side's members on both
//! nodes (and a reconnect brings them back), hostile scope messages are ignored, and the
//! BEAM's scope process is the same at the end (it never crashed on what Orbit sent).

mod beam;

use beam::*;
use orbit_cluster::pg;
use orbit_term::Term;

fn beam_members(b: &mut Beam, o: &Orbit, group: &str) -> Vec<orbit::Pid> {
    pids(&b.eval(o, &format!("pg:get_members({group}).")))
}

#[test]
fn pg_with_erl() {
    if !have("erl") {
        println!("SKIP pg_with_erl: erl is not installed");
        return;
    }
    let o = orbit("orbit_pg");
    let scope = rt().block_on(async { pg::start_scope(pg::DEFAULT_SCOPE).unwrap() });
    let other = rt().block_on(async { pg::start_scope("other_scope").unwrap() });
    let mut b = Beam::erl("erl_pg", o);
    let beam_scope = b.eval(o, "whereis(pg).");
    assert!(matches!(beam_scope, Term::Pid(_)), "{beam_scope}");

    // Orbit joins g1; the BEAM lists the Orbit pid.
    let a1 = rt().block_on(async { member() });
    rt().block_on(scope.join("g1", a1)).unwrap();
    eventually("the BEAM lists a1 in g1", 15, || {
        beam_members(&mut b, o, "g1") == vec![a1]
    });
    // The BEAM joins g1; Orbit lists the BEAM pid.
    let e1 = match b.eval(
        o,
        "E1 = spawn(fun() -> receive stop -> ok end end), ok = pg:join(g1, E1), E1.",
    ) {
        Term::Pid(p) => orbit_dist::from_wire(&p),
        t => panic!("{t}"),
    };
    eventually("Orbit lists e1 in g1", 15, || {
        sorted(scope.get_members("g1")) == sorted(vec![a1, e1])
    });
    assert_eq!(scope.get_local_members("g1"), vec![a1]);
    assert_eq!(sorted(beam_members(&mut b, o, "g1")), sorted(vec![a1, e1]));

    // Duplicates and newest-first order reach the BEAM as they are.
    let a2 = rt().block_on(async { member() });
    rt().block_on(scope.join("g3", a2)).unwrap();
    rt().block_on(scope.join("g3", vec![a1, a2])).unwrap();
    assert_eq!(scope.get_members("g3"), vec![a1, a2, a2]);
    eventually("the BEAM lists g3 as Orbit does", 15, || {
        let t = b.eval(o, "pg:get_members(g3).");
        let Term::List(l) = t else { return false };
        l.iter()
            .map(|e| match e {
                Term::Pid(p) => orbit_dist::from_wire(p),
                _ => orbit::Pid::NONE,
            })
            .collect::<Vec<_>>()
            == vec![a1, a2, a2]
    });

    // Leaves, both ways.
    assert!(rt().block_on(scope.leave("g1", a1)).unwrap());
    assert!(!rt().block_on(scope.leave("g1", a1)).unwrap(), "not_joined");
    eventually("the BEAM drops a1 from g1", 15, || {
        beam_members(&mut b, o, "g1") == vec![e1]
    });
    assert_eq!(b.eval(o, "pg:leave(g1, E1)."), Term::atom("ok"));
    eventually("Orbit drops e1 from g1", 15, || {
        scope.get_members("g1").is_empty()
    });
    assert!(!scope.which_groups().contains(&Term::atom("g1")));

    // A crash: an Orbit member in two groups (one a complex term) dies.
    let complex = Term::tuple(vec![Term::atom("complex"), Term::Binary(b"key".to_vec())]);
    let (now, mut g2_events) = rt().block_on(scope.monitor("g2")).unwrap();
    assert!(now.is_empty());
    let mut g2_event = || {
        rt().block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(15), g2_events.recv())
                .await
                .expect("a g2 event within 15s")
                .expect("the scope is up")
        })
    };
    let a3 = rt().block_on(async { member() });
    rt().block_on(scope.join("g2", a3)).unwrap();
    rt().block_on(scope.join(complex.clone(), a3)).unwrap();
    eventually("the BEAM lists a3 in both groups", 15, || {
        beam_members(&mut b, o, "g2") == vec![a3]
            && pids(&b.eval(o, "pg:get_members({complex, <<\"key\">>}).")) == vec![a3]
    });
    orbit::exit(a3, orbit::ExitReason::Kill);
    eventually("the BEAM drops the dead a3 everywhere", 15, || {
        beam_members(&mut b, o, "g2").is_empty()
            && pids(&b.eval(o, "pg:get_members({complex, <<\"key\">>}).")).is_empty()
    });
    assert!(scope.get_members(complex.clone()).is_empty());
    // A BEAM member dies.
    let e2 = match b.eval(
        o,
        "E2 = spawn(fun() -> receive stop -> ok end end), ok = pg:join(g2, E2), E2.",
    ) {
        Term::Pid(p) => orbit_dist::from_wire(&p),
        t => panic!("{t}"),
    };
    eventually("Orbit lists e2", 15, || scope.get_members("g2") == vec![e2]);
    b.eval(o, "exit(E2, kill).");
    eventually("Orbit drops the dead e2", 15, || {
        scope.get_members("g2").is_empty()
    });
    // The monitor saw each change, in order.
    let join = |p| pg::GroupEvent::Join {
        group: Term::atom("g2"),
        pids: vec![p],
    };
    let leave = |p| pg::GroupEvent::Leave {
        group: Term::atom("g2"),
        pids: vec![p],
    };
    assert_eq!(g2_event(), join(a3));
    assert_eq!(g2_event(), leave(a3));
    assert_eq!(g2_event(), join(e2));
    assert_eq!(g2_event(), leave(e2));

    // A named scope is separate from the default one.
    let a4 = rt().block_on(async { member() });
    rt().block_on(other.join("g1", a4)).unwrap();
    b.eval(o, "{ok, _} = pg:start(other_scope).");
    eventually("the BEAM's other_scope lists a4", 15, || {
        pids(&b.eval(o, "pg:get_members(other_scope, g1).")) == vec![a4]
    });
    assert!(beam_members(&mut b, o, "g1").is_empty());

    // Hostile input to Orbit's scope: logged and ignored, the scope stays up and exact.
    let before = scope.pid();
    let ignored = scope.ignored();
    let hostile = [
        "{pg, Orbit} ! hello.",
        "{pg, Orbit} ! {discover}.",
        "{pg, Orbit} ! {discover, 42}.",
        "{pg, Orbit} ! {join, whereis(pg), g5}.",
        "{pg, Orbit} ! {join, whereis(pg), g5, [self(), not_a_pid]}.",
        "{pg, Orbit} ! {join, whereis(pg), g5, lists:seq(1, 200000)}.",
        "{pg, Orbit} ! {leave, whereis(pg), self(), g5}.",
        "{pg, Orbit} ! {'$gen_cast', {sync, whereis(pg), [{g5, lists:seq(1, 100000)}]}}.",
        "{pg, Orbit} ! {'$gen_cast', {sync, whereis(pg), not_a_list}}.",
        "{pg, Orbit} ! {'$gen_cast', {other, 1}}.",
        // A pid of the Orbit node posing as a peer scope, and members not on the peer's node.
        "[{pg, Orbit} ! {join, P, g5, P} || P <- pg:get_members(g3)].",
        "[{pg, Orbit} ! {join, whereis(pg), g5, P} || P <- pg:get_members(g3)].",
        // Unknown peer: dropped, as OTP does.
        "{pg, Orbit} ! {join, self(), g5, self()}.",
    ];
    for h in hostile {
        b.eval(o, h);
    }
    // Everything hostile was sent before this join, on the same connection.
    let e5 = match b.eval(
        o,
        "E5 = spawn(fun() -> receive stop -> ok end end), ok = pg:join(g6, E5), E5.",
    ) {
        Term::Pid(p) => orbit_dist::from_wire(&p),
        t => panic!("{t}"),
    };
    eventually("Orbit lists e5 after the hostile messages", 15, || {
        scope.get_members("g6") == vec![e5]
    });
    assert_eq!(scope.pid(), before);
    // 10 malformed, 3 with a local pid as the peer, 3 with members off the peer's node
    // (the unknown peer's join is dropped silently, as OTP does).
    assert_eq!(scope.ignored() - ignored, 16);
    assert!(
        scope.get_members("g5").is_empty(),
        "{:?}",
        scope.get_members("g5")
    );
    assert_eq!(scope.get_members("g3"), vec![a1, a2, a2]);
    assert_eq!(pg::scope("pg").map(|s| s.pid()), Some(before));

    // The connection drops: each side drops the other's members.
    assert!(o.node.disconnect(&b.name));
    eventually("Orbit drops the BEAM's members", 15, || {
        scope.get_members("g6").is_empty()
    });
    eventually("the BEAM drops Orbit's members", 15, || {
        b.eval_print("length(pg:get_members(g3)).") == "0"
    });
    // Reconnected: discover/sync restore both views.
    assert!(rt().block_on(o.node.connect(&b.name)));
    eventually("Orbit lists e5 again", 15, || {
        scope.get_members("g6") == vec![e5]
    });
    eventually("the BEAM lists a1, a2, a2 again", 15, || {
        beam_members(&mut b, o, "g3") == sorted(vec![a1, a2, a2])
    });

    // The BEAM's scope never crashed.
    assert_eq!(b.eval(o, "whereis(pg)."), beam_scope);
}
