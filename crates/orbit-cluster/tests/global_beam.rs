//! `:global` interop with a real `erl` node (OTP 25): the two name servers
//! synchronise (`:global.sync/0` returns on the BEAM with Orbit connected), names
//! registered on either side are seen on the other, a dead process's name goes on both
//! sides, locks taken on either side block the other's conflicting `set_lock` and go
//! with their holder (its death or its node's disconnection), a reconnect resolves a name registered on both sides as OTP does,
//! and hostile or out-of-order `global` messages are logged, counted and ignored.

mod beam;

use beam::*;
use orbit_cluster::global::{self, LockId, Retries};
use orbit_term::Term;

fn beam_pid(t: Term) -> orbit::Pid {
    match t {
        Term::Pid(p) => orbit_dist::from_wire(&p),
        t => panic!("not a pid: {t}"),
    }
}

/// An Orbit process that takes `id` on `nodes`, reports, and holds it until killed.
fn lock_holder(id: LockId, nodes: Vec<String>) -> (orbit::Pid, bool) {
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = rt().block_on(async move {
        orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
            let got = global::set_lock(&id, &nodes, Retries::Times(0)).await;
            let _ = tx.send(got == Ok(true));
            let _ = ctx.recv().await;
        })
        .unwrap()
        .pid()
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the holder answers");
    (pid, got)
}

#[test]
fn global_with_erl() {
    if !have("erl") {
        println!("SKIP global_with_erl: erl is not installed");
        return;
    }
    let o = orbit("orbit_global");
    rt().block_on(async { global::start() }).unwrap();
    let mut b = Beam::erl("erl_global", o);
    let beam_gns = b.eval(o, "whereis(global_name_server).");

    // Synchronised both ways: :global.sync/0 returns with Orbit connected.
    eventually("Orbit is synced with the BEAM", 20, || {
        global::synced_nodes().contains(&b.name)
    });
    assert_eq!(b.eval(o, "global:sync()."), Term::atom("ok"));
    assert_eq!(
        b.eval(
            o,
            "lists:member(Orbit, gen_server:call(global_name_server, get_synced))."
        ),
        Term::bool(true)
    );

    // A name registered on the BEAM is seen by Orbit, and the reverse.
    let e1 = beam_pid(b.eval(
        o,
        "E1 = spawn(fun() -> receive stop -> ok end end), yes = global:register_name(e1, E1), E1.",
    ));
    assert_eq!(global::whereis_name("e1"), Some(e1));
    let a1 = rt().block_on(async { member() });
    assert_eq!(rt().block_on(global::register_name("a1", a1)), Ok(true));
    assert_eq!(beam_pid(b.eval(o, "global:whereis_name(a1).")), a1);
    // Taken names (and a pid that has a name) are refused on both sides.
    let a2 = rt().block_on(async { member() });
    assert_eq!(rt().block_on(global::register_name("e1", a2)), Ok(false));
    assert_eq!(
        rt().block_on(global::register_name("a1_again", a1)),
        Ok(false)
    );
    assert_eq!(
        b.eval(o, "global:register_name(a1, self())."),
        Term::atom("no")
    );
    let names = global::registered_names();
    assert!(names.contains(&Term::atom("e1")) && names.contains(&Term::atom("a1")));

    // A registered process dies: its name goes on both sides.
    b.eval(o, "exit(E1, kill).");
    eventually("Orbit drops e1", 15, || {
        global::whereis_name("e1").is_none()
    });
    orbit::exit(a1, orbit::ExitReason::Kill);
    eventually("the BEAM drops a1", 15, || {
        b.eval(o, "global:whereis_name(a1).") == Term::atom("undefined")
    });
    assert!(global::whereis_name("a1").is_none());

    // Unregistering, both ways; re-registering moves a name.
    assert_eq!(rt().block_on(global::register_name("a2", a2)), Ok(true));
    assert_eq!(beam_pid(b.eval(o, "global:whereis_name(a2).")), a2);
    let a3 = rt().block_on(async { member() });
    rt().block_on(global::re_register_name("a2", a3)).unwrap();
    assert_eq!(beam_pid(b.eval(o, "global:whereis_name(a2).")), a3);
    rt().block_on(global::unregister_name("a2")).unwrap();
    assert_eq!(
        b.eval(o, "global:whereis_name(a2)."),
        Term::atom("undefined")
    );
    b.eval(o, "yes = global:register_name(e2, self()).");
    assert!(global::whereis_name("e2").is_some());
    b.eval(o, "global:unregister_name(e2).");
    assert!(global::whereis_name("e2").is_none());

    // Locks. trans on the BEAM (default nodes: Orbit included) completes.
    assert_eq!(
        b.eval(o, "global:trans({lk, self()}, fun() -> done end)."),
        Term::atom("done")
    );
    // A lock held by the BEAM blocks Orbit's conflicting set_lock, on Orbit's table too.
    assert_eq!(
        b.eval(o, "global:set_lock({res1, req_e})."),
        Term::bool(true)
    );
    let conflicting = LockId::new(Term::atom("res1"), Term::atom("req_o"));
    for nodes in [vec![b.name.clone()], vec![o.name.clone()]] {
        assert_eq!(
            rt().block_on(global::set_lock(&conflicting, &nodes, Retries::Times(0))),
            Ok(false),
            "{nodes:?}"
        );
    }
    assert_eq!(
        b.eval(o, "global:del_lock({res1, req_e})."),
        Term::bool(true)
    );
    // A lock Orbit holds on itself blocks the BEAM's set_lock(.., 0) over all nodes.
    let on_orbit = LockId::new(Term::atom("res2"), Term::atom("req_o"));
    let me = vec![o.name.clone()];
    assert_eq!(
        rt().block_on(global::set_lock(&on_orbit, &me, Retries::Times(0))),
        Ok(true)
    );
    // The same requester may take it again.
    assert_eq!(
        rt().block_on(global::set_lock(&on_orbit, &me, Retries::Times(0))),
        Ok(true)
    );
    assert_eq!(
        b.eval(o, "global:set_lock({res2, req_e}, [node() | nodes()], 0)."),
        Term::bool(false)
    );
    assert_eq!(
        b.eval(
            o,
            "global:trans({res2, req_e}, fun() -> ran end, [node() | nodes()], 0)."
        ),
        Term::atom("aborted")
    );
    rt().block_on(global::del_lock(&on_orbit, &me)).unwrap();
    assert_eq!(
        b.eval(o, "global:set_lock({res2, req_e}, [node() | nodes()], 0)."),
        Term::bool(true)
    );
    b.eval(o, "global:del_lock({res2, req_e}).");
    // An Orbit process holds a lock on both nodes; it dies: both release it.
    let (holder, got) = lock_holder(
        LockId::new(Term::atom("res3"), Term::atom("req_o")),
        global::all_nodes(),
    );
    assert!(got);
    assert_eq!(
        b.eval(o, "global:set_lock({res3, req_e}, [node()], 0)."),
        Term::bool(false)
    );
    orbit::exit(holder, orbit::ExitReason::Kill);
    eventually("the BEAM releases the dead Orbit holder's lock", 15, || {
        b.eval(o, "global:set_lock({res3, req_e}, [node() | nodes()], 0).") == Term::bool(true)
    });
    b.eval(o, "global:del_lock({res3, req_e}).");
    // A BEAM process holds a lock on Orbit; it dies: Orbit releases it.
    assert_eq!(
        b.eval(
        o,
        "Self = self(), P3 = spawn(fun() -> true = global:set_lock({res4, req_e}, [Orbit], 0), Self ! locked, receive stop -> ok end end), receive locked -> ok after 10000 -> timeout end.",
        ),
        Term::atom("ok")
    );
    let res4 = LockId::new(Term::atom("res4"), Term::atom("req_o"));
    assert_eq!(
        rt().block_on(global::set_lock(&res4, &me, Retries::Times(0))),
        Ok(false)
    );
    b.eval(o, "exit(P3, kill).");
    eventually("Orbit releases the dead BEAM holder's lock", 15, || {
        rt().block_on(global::set_lock(&res4, &me, Retries::Times(0))) == Ok(true)
    });
    rt().block_on(global::del_lock(&res4, &me)).unwrap();
    // trans from Orbit, over every node.
    let t = rt().block_on(global::trans(
        &LockId::new(Term::atom("res5"), Term::atom("req_o")),
        || async { 42 },
        &global::all_nodes(),
        Retries::Infinity,
    ));
    assert_eq!(t, Ok(Some(42)));

    // Hostile and out-of-order messages: logged, counted, ignored.
    let ignored = global::ignored();
    let malformed = [
        "{global_name_server, Orbit} ! hello.",
        "{global_name_server, Orbit} ! {'$gen_cast', hello}.",
        "{global_name_server, Orbit} ! {'$gen_cast', {init_connect, bad}}.",
        "{global_name_server, Orbit} ! {'$gen_cast', {init_connect, {8, 1}, node(), {locker, x, #{}, not_a_pid}}}.",
        "{global_name_server, Orbit} ! {'$gen_cast', {exchange, node(), not_a_list, [], 1}}.",
        "{global_name_server, Orbit} ! {'$gen_cast', {resolved, node(), [{bogus}], [], unused, [], 1}}.",
        "{global_name_server, Orbit} ! {'$gen_cast', {new_nodes, node(), bad_ops, [], [], []}}.",
        "{global_name_server, Orbit} ! {'$gen_cast', {in_sync, 42, true}}.",
        "{global_name_server, Orbit} ! {whereis, x}.",
        "{global_name_server, Orbit} ! {'$gen_call', {self(), make_ref()}, {set_lock, not_a_pair}}.",
        "{global_name_server, Orbit} ! {'$gen_call', {self(), make_ref()}, {register, n, not_a_pid, m}}.",
        // in_sync naming another node than its sender.
        "{global_name_server, Orbit} ! {'$gen_cast', {in_sync, 'other@host', true}}.",
    ];
    for h in malformed {
        b.eval(o, h);
    }
    let out_of_order = [
        // Messages of sessions that do not exist (wrong or old tags): dropped.
        "{global_name_server, Orbit} ! {'$gen_cast', {exchange, node(), [{x1, self(), m}], [], 12345}}.",
        "{global_name_server, Orbit} ! {'$gen_cast', {resolved, node(), [{insert, {x2, self(), m}}], [], unused, [], 999}}.",
        "{global_name_server, Orbit} ! {'$gen_cast', {lock_set, self(), true, [], 777}}.",
        "{global_name_server, Orbit} ! {init_connect_ack, node(), 1, 2}.",
        "{global_name_server, Orbit} ! {cancel_connect, node(), 5}.",
        "{global_name_server, Orbit} ! {'$gen_cast', {async_del_name, x, self()}}.",
    ];
    for h in out_of_order {
        b.eval(o, h);
    }
    // A call Orbit's name server does not answer, as OTP's.
    let t = b.eval(
        o,
        "catch gen_server:call({global_name_server, Orbit}, bogus, 300).",
    );
    assert!(
        matches!(&t, Term::Tuple(e) if e.first().and_then(Term::as_atom) == Some("EXIT")),
        "{t}"
    );
    rt().block_on(global::barrier()).unwrap();
    assert_eq!(global::ignored() - ignored, malformed.len() as u64 + 1);
    assert!(global::whereis_name("x1").is_none() && global::whereis_name("x2").is_none());
    // Everything still works after them, both ways.
    let e4 = beam_pid(b.eval(
        o,
        "E4 = spawn(fun() -> receive stop -> ok end end), yes = global:register_name(e4, E4), E4.",
    ));
    assert_eq!(global::whereis_name("e4"), Some(e4));
    let a4 = rt().block_on(async { member() });
    assert_eq!(rt().block_on(global::register_name("a4", a4)), Ok(true));
    assert_eq!(beam_pid(b.eval(o, "global:whereis_name(a4).")), a4);
    assert_eq!(b.eval(o, "global:sync()."), Term::atom("ok"));

    // A BEAM process holds a lock on Orbit when the connection drops.
    assert_eq!(
        b.eval(
        o,
        "Self = self(), P6 = spawn(fun() -> true = global:set_lock({res6, req_e}, [Orbit], 0), Self ! locked, receive stop -> ok end end), receive locked -> ok after 10000 -> timeout end.",
        ),
        Term::atom("ok")
    );
    let res6 = LockId::new(Term::atom("res6"), Term::atom("req_o"));
    assert_eq!(
        rt().block_on(global::set_lock(&res6, &me, Retries::Times(0))),
        Ok(false)
    );

    // The connection drops: each side drops the other's names, and Orbit the BEAM
    // holder's lock.
    assert!(o.node.disconnect(&b.name));
    eventually(
        "Orbit releases the lock of the gone node's process",
        15,
        || rt().block_on(global::set_lock(&res6, &me, Retries::Times(0))) == Ok(true),
    );
    rt().block_on(global::del_lock(&res6, &me)).unwrap();
    eventually("Orbit drops the BEAM's names", 15, || {
        global::whereis_name("e4").is_none() && !global::synced_nodes().contains(&b.name)
    });
    eventually("the BEAM drops Orbit's names", 15, || {
        b.eval_print("global:whereis_name(a4).") == "undefined"
    });
    // While apart, both register `dup`.
    let dup_o = rt().block_on(async { member() });
    assert_eq!(rt().block_on(global::register_name("dup", dup_o)), Ok(true));
    assert_eq!(
        b.eval_print("begin D = spawn(fun() -> receive stop -> ok end end), put(dup, D), global:register_name(dup, D) end."),
        "yes"
    );
    // Reconnected: the names are exchanged again, and the conflict resolved as OTP's
    // random_exit_name: the BEAM node's name sorts first, its pid keeps `dup` and
    // Orbit's is killed.
    assert!(rt().block_on(o.node.connect(&b.name)));
    eventually("synced again", 20, || {
        global::synced_nodes().contains(&b.name)
    });
    assert_eq!(b.eval(o, "global:sync()."), Term::atom("ok"));
    let dup_b = beam_pid(b.eval(o, "get(dup)."));
    assert!(b.name < o.name);
    eventually("Orbit resolves dup to the BEAM pid", 15, || {
        global::whereis_name("dup") == Some(dup_b)
    });
    assert_eq!(beam_pid(b.eval(o, "global:whereis_name(dup).")), dup_b);
    eventually("Orbit's dup process was killed", 15, || {
        orbit::process_info(dup_o).is_none()
    });
    assert_eq!(global::whereis_name("e4"), Some(e4));
    assert_eq!(beam_pid(b.eval(o, "global:whereis_name(a4).")), a4);

    // The BEAM's name server never crashed.
    assert_eq!(b.eval(o, "whereis(global_name_server)."), beam_gns);
}
