//! `:global` with two `erl` nodes and Orbit (the three meet through Orbit): every node
//! ends synced with the others (`global:sync/0` returns on both BEAM nodes), a name
//! registered on any node resolves on the other two, and a dead Orbit process's name
//! goes on both BEAM nodes.

mod beam;

use beam::*;
use orbit_cluster::global;
use orbit_term::Term;

fn beam_pid(t: Term) -> orbit::Pid {
    match t {
        Term::Pid(p) => orbit_dist::from_wire(&p),
        t => panic!("not a pid: {t}"),
    }
}

#[test]
fn global_with_two_erl_nodes() {
    if !have("erl") {
        println!("SKIP global_with_two_erl_nodes: erl is not installed");
        return;
    }
    let o = orbit("orbit_global3");
    rt().block_on(async { global::start() }).unwrap();
    let mut a = Beam::erl("erl_ga", o);
    let mut b = Beam::erl("erl_gb", o);
    eventually("Orbit is synced with both", 30, || {
        let s = global::synced_nodes();
        s.contains(&a.name) && s.contains(&b.name)
    });
    assert_eq!(a.eval(o, "global:sync()."), Term::atom("ok"));
    assert_eq!(b.eval(o, "global:sync()."), Term::atom("ok"));
    let b_name = Term::atom(&b.name);
    assert_eq!(
        a.eval(o, &format!("lists:member('{}', nodes()).", b.name)),
        Term::bool(true),
        "{b_name}"
    );

    // A name from each node resolves on the two others.
    let ra = beam_pid(a.eval(
        o,
        "RA = spawn(fun() -> receive stop -> ok end end), yes = global:register_name(ra, RA), RA.",
    ));
    assert_eq!(global::whereis_name("ra"), Some(ra));
    assert_eq!(beam_pid(b.eval(o, "global:whereis_name(ra).")), ra);
    let rb = beam_pid(b.eval(
        o,
        "RB = spawn(fun() -> receive stop -> ok end end), yes = global:register_name(rb, RB), RB.",
    ));
    assert_eq!(global::whereis_name("rb"), Some(rb));
    assert_eq!(beam_pid(a.eval(o, "global:whereis_name(rb).")), rb);
    let ro = rt().block_on(async { member() });
    assert_eq!(rt().block_on(global::register_name("ro", ro)), Ok(true));
    assert_eq!(beam_pid(a.eval(o, "global:whereis_name(ro).")), ro);
    assert_eq!(beam_pid(b.eval(o, "global:whereis_name(ro).")), ro);
    // trans over all three nodes from a BEAM node.
    assert_eq!(
        a.eval(o, "global:trans({lk, self()}, fun() -> done end)."),
        Term::atom("done")
    );
    // The Orbit process dies: both BEAM nodes drop its name.
    orbit::exit(ro, orbit::ExitReason::Kill);
    eventually("both BEAM nodes drop ro", 15, || {
        a.eval(o, "global:whereis_name(ro).") == Term::atom("undefined")
            && b.eval(o, "global:whereis_name(ro).") == Term::atom("undefined")
    });
    assert_eq!(global::ignored(), 0);
}
