//! `:global` interop with a real Elixir node (OTP 25): `:global.sync/0` returns with
//! Orbit connected, names registered on either side resolve on the other (and
//! `:global.send/2` reaches an Orbit process), `:global.trans/2` completes, a lock
//! Orbit holds blocks Elixir's `set_lock(.., 0)`, and a dead process's name goes.

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

#[test]
fn global_with_elixir() {
    if !have("elixir") {
        println!("SKIP global_with_elixir: elixir is not installed");
        return;
    }
    let Some(libs) = beamlibs() else {
        println!("SKIP global_with_elixir: the BEAM libraries did not build");
        return;
    };
    let o = orbit("orbit_global_ex");
    rt().block_on(async { global::start() }).unwrap();
    let mut b = Beam::elixir("ex_global", o, &libs);

    eventually("Orbit is synced with Elixir", 20, || {
        global::synced_nodes().contains(&b.name)
    });
    assert_eq!(b.eval(o, ":global.sync()"), Term::atom("ok"));

    // Elixir registers; Orbit resolves it.
    let ex1 = beam_pid(b.eval(
        o,
        "ex1 = spawn(fn -> receive do :stop -> :ok end end); :yes = :global.register_name(:ex1, ex1); ex1",
    ));
    assert_eq!(global::whereis_name("ex1"), Some(ex1));
    // Orbit registers; Elixir resolves it and sends to it by name.
    let (orb, mut inbox) = rt().block_on(async { forwarder(None) });
    assert_eq!(rt().block_on(global::register_name("orb1", orb)), Ok(true));
    assert_eq!(beam_pid(b.eval(o, ":global.whereis_name(:orb1)")), orb);
    b.eval(o, ":global.send(:orb1, {:hello, 1})");
    let got = rt().block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), inbox.recv())
            .await
            .expect("a message within 10s")
            .expect("inbox alive")
    });
    assert_eq!(got, Term::tuple(vec![Term::atom("hello"), Term::Int(1)]));

    // :global.trans on Elixir, Orbit connected, completes.
    assert_eq!(
        b.eval(
            o,
            "Task.async(fn -> :global.trans({:lk, self()}, fn -> :ok end) end) |> Task.await(5000)"
        ),
        Term::atom("ok")
    );
    // A lock Orbit holds makes Elixir's conflicting set_lock(.., 0) fail.
    let id = LockId::new(Term::atom("res"), Term::atom("orbit"));
    let me = vec![o.name.clone()];
    assert_eq!(
        rt().block_on(global::set_lock(&id, &me, Retries::Times(0))),
        Ok(true)
    );
    assert_eq!(
        b.eval(
            o,
            ":global.set_lock({:res, :elixir}, [node() | Node.list()], 0)"
        ),
        Term::bool(false)
    );
    rt().block_on(global::del_lock(&id, &me)).unwrap();
    assert_eq!(
        b.eval(
            o,
            ":global.set_lock({:res, :elixir}, [node() | Node.list()], 0)"
        ),
        Term::bool(true)
    );

    // The Elixir process dies: Orbit drops its name.
    b.eval(o, "Process.exit(ex1, :kill)");
    eventually("Orbit drops ex1", 15, || {
        global::whereis_name("ex1").is_none()
    });
    assert_eq!(global::ignored(), 0);
}
