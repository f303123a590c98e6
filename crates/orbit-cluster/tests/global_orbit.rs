//! `:global` between two Orbit nodes (this test process and a child running this same
//! binary): neither has a BEAM locker to answer, so one locks first; the two
//! synchronise, the name the child registered before connecting reaches the parent,
//! a name both registered while apart is resolved by the node whose name sorts first
//! (OTP's `random_exit_name`: the other process is killed), and a name the parent
//! registers afterwards reaches the child.

mod beam;

use beam::*;
use orbit_cluster::global;
use orbit_term::Term;

/// The child node: registers `child_name` before connecting, then answers
/// `D whereis NAME` with the pid or `undefined`.
fn child_main(parent: String, name: String) {
    let rt = rt();
    rt.block_on(async {
        let node = orbit_dist::Node::start(&name, orbit_dist::Options::cookie(COOKIE))
            .await
            .unwrap();
        global::start().unwrap();
        let p = member();
        assert_eq!(global::register_name("child_name", p).await, Ok(true));
        let d = member();
        assert_eq!(global::register_name("dup", d).await, Ok(true));
        assert!(node.connect(&parent).await);
    });
    serve_parent(&parent, |w| match w {
        ["D", "whereis", n] => global::whereis_name(*n).map_or_else(
            || Term::atom("undefined"),
            |p| Term::Pid(Box::new(orbit_dist::to_wire(p))),
        ),
        ["D", "synced"] => Term::List(
            global::synced_nodes()
                .iter()
                .map(|n| Term::atom(n))
                .collect(),
        ),
        _ => Term::atom("unknown"),
    });
}

#[test]
fn child() {
    if let (Ok(parent), Ok(name)) = (std::env::var("ORBIT_NODE"), std::env::var("GLOBAL_CHILD")) {
        child_main(parent, name);
    }
}

#[test]
fn global_between_orbit_nodes() {
    if std::env::var("GLOBAL_CHILD").is_ok() {
        return;
    }
    let o = orbit("global_parent");
    rt().block_on(async { global::start() }).unwrap();
    // Registered here and on the child while apart: a conflict at the sync.
    let dup = rt().block_on(async { member() });
    assert_eq!(rt().block_on(global::register_name("dup", dup)), Ok(true));
    let mut c = Beam::orbit_child(o, "global_child", "GLOBAL_CHILD", &[]);

    eventually("the parent is synced with the child", 20, || {
        global::synced_nodes().contains(&c.name)
    });
    let on_child = |c: &mut Beam, what: &str| c.eval(o, what);
    assert_eq!(
        on_child(&mut c, "synced"),
        Term::List(vec![Term::atom(&o.name)])
    );
    // The child's name, registered before the connection, came with the sync.
    let child_pid = global::whereis_name("child_name").expect("child_name on the parent");
    assert_eq!(child_pid.node().as_ref(), c.name.as_str());
    // The conflict over `dup` was resolved by the child (its name sorts first) with
    // OTP's random_exit_name: its pid keeps the name, the parent's process is killed.
    assert!(c.name < o.name);
    eventually("the parent's dup process was killed", 15, || {
        orbit::process_info(dup).is_none()
    });
    let dup_now = global::whereis_name("dup").expect("dup still registered");
    assert_eq!(dup_now.node().as_ref(), c.name.as_str());
    assert_eq!(
        on_child(&mut c, "whereis dup"),
        Term::Pid(Box::new(orbit_dist::to_wire(dup_now)))
    );
    // A name registered now reaches the child.
    let p = rt().block_on(async { member() });
    assert_eq!(
        rt().block_on(global::register_name("parent_name", p)),
        Ok(true)
    );
    let t = on_child(&mut c, "whereis parent_name");
    assert_eq!(t, Term::Pid(Box::new(orbit_dist::to_wire(p))));
    // The parent's process dies: the child drops its name.
    orbit::exit(p, orbit::ExitReason::Kill);
    eventually("the child drops parent_name", 15, || {
        on_child(&mut c, "whereis parent_name") == Term::atom("undefined")
    });
}
