//! erpc between Orbit nodes: this test process and a child running this same binary
//! (and a bare child that never runs `orbit_cluster::start`). Every outcome has the
//! shape an OTP caller gets (`ErpcError::exception_term`).

mod beam;

use std::time::Duration;

use beam::*;
use orbit_cluster::erpc::{self, ErpcError};
use orbit_term::Term;

fn register_calc() {
    erpc::register_typed("Elixir.Calc", "add", |(a, b): (i64, i64)| {
        a.checked_add(b)
            .ok_or_else(|| ErpcError::error(Term::atom("badarith")))
    })
    .unwrap();
    erpc::register("Elixir.Calc", "throw_it", 1, |mut a| {
        Err(ErpcError::Throw(a.remove(0)))
    })
    .unwrap();
    erpc::register("Elixir.Calc", "exit_it", 1, |mut a| {
        Err(ErpcError::Exit(a.remove(0)))
    })
    .unwrap();
    erpc::register("Elixir.Calc", "panic", 0, |_| panic!("boom")).unwrap();
    erpc::register_async("Elixir.Calc", "slow", 1, |a| async move {
        let ms = a[0].as_i64().unwrap_or(0).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Term::atom("slept"))
    })
    .unwrap();
    erpc::register("Elixir.Calc", "notify", 2, |a| {
        if let Term::Pid(p) = &a[0] {
            let _ = orbit::send(orbit_dist::from_wire(p), a[1].clone());
        }
        Ok(a[1].clone())
    })
    .unwrap();
}

fn outcome(r: Result<Term, ErpcError>) -> Term {
    match r {
        Ok(v) => Term::tuple(vec![Term::atom("ok"), v]),
        Err(e) => e.exception_term().unwrap_or_else(|| Term::atom("local")),
    }
}

/// The child node: `D call F Arg` calls `Calc.F(Arg...)` on the parent.
fn child_main(parent: String, name: String, bare: bool) {
    let rt = rt();
    rt.block_on(async {
        let node = orbit_dist::Node::start(&name, orbit_dist::Options::cookie(COOKIE))
            .await
            .unwrap();
        if !bare {
            orbit_cluster::start(&node).unwrap();
            register_calc();
            erpc::serve_task_supervisor("Elixir.OrbitSup").unwrap();
        }
        assert!(node.connect(&parent).await);
    });
    serve_parent(&parent, |w| match w {
        ["D", "add", a, b] => {
            let args = (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap());
            outcome(rt.block_on(erpc::call::<Term>(
                &parent,
                "Elixir.Calc",
                "add",
                args,
                Duration::from_secs(5),
            )))
        }
        _ => Term::atom("unknown"),
    });
}

#[test]
fn child() {
    if let (Ok(parent), Ok(name)) = (std::env::var("ORBIT_NODE"), std::env::var("ERPC_CHILD")) {
        child_main(parent, name, std::env::var("ERPC_BARE").is_ok());
    }
}

fn spawn_child(o: &Orbit, prefix: &str, bare: bool) -> Beam {
    let env: &[(&str, &str)] = if bare { &[("ERPC_BARE", "1")] } else { &[] };
    Beam::orbit_child(o, prefix, "ERPC_CHILD", env)
}

fn call(node: &str, f: &str, args: Vec<Term>, ms: u64) -> Term {
    outcome(rt().block_on(erpc::call(
        node,
        "Elixir.Calc",
        f,
        args,
        Duration::from_millis(ms),
    )))
}

#[test]
fn erpc_between_orbit_nodes() {
    if std::env::var("ERPC_CHILD").is_ok() {
        return;
    }
    let o = orbit("erpc_parent");
    orbit_cluster::start(&o.node).unwrap();
    register_calc();
    let mut c = spawn_child(o, "erpc_child", false);
    let n = c.name.clone();

    assert_eq!(
        call(&n, "add", vec![Term::Int(1), Term::Int(2)], 5000).to_string(),
        "{ok, 3}"
    );
    assert_eq!(
        call(&n, "add", vec![Term::Int(i64::MAX), Term::Int(1)], 5000).to_string(),
        "{error, {exception, badarith, [{'Elixir.Calc', add, 2, []}]}}"
    );
    assert_eq!(
        call(&n, "nope", vec![Term::Int(1)], 5000).to_string(),
        "{error, {exception, undef, [{'Elixir.Calc', nope, [1], []}]}}"
    );
    // Arguments that do not decode: function_clause, as a BEAM clause mismatch.
    assert_eq!(
        call(&n, "add", vec![Term::Int(1), Term::atom("a")], 5000).to_string(),
        "{error, {exception, function_clause, [{'Elixir.Calc', add, [1, a], []}]}}"
    );
    assert_eq!(
        call(&n, "throw_it", vec![Term::atom("ball")], 5000).to_string(),
        "{throw, ball}"
    );
    assert_eq!(
        call(&n, "exit_it", vec![Term::atom("bye")], 5000).to_string(),
        "{exit, {exception, bye}}"
    );
    let p = call(&n, "panic", vec![], 5000).to_string();
    assert!(p.contains("RuntimeError") && p.contains("boom"), "{p}");
    assert_eq!(
        call(&n, "slow", vec![Term::Int(2000)], 100).to_string(),
        "{error, {erpc, timeout}}"
    );
    // The node answers on after a timeout.
    assert_eq!(
        call(&n, "add", vec![Term::Int(2), Term::Int(2)], 5000).to_string(),
        "{ok, 4}"
    );
    // erlang:node/0 built in; a call to this node itself runs here.
    let names: Vec<Result<Term, ErpcError>> = rt().block_on(erpc::multicall(
        [n.as_str(), o.name.as_str()],
        "erlang",
        "node",
        (),
        Duration::from_secs(5),
    ));
    let names: Vec<Term> = names.into_iter().map(Result::unwrap).collect();
    assert_eq!(names, vec![Term::atom(&n), Term::atom(&o.name)]);
    // Typed.
    let s: i64 = rt()
        .block_on(erpc::call(
            &n,
            "Elixir.Calc",
            "add",
            (40, 2),
            Duration::from_secs(5),
        ))
        .unwrap();
    assert_eq!(s, 42);
    // send_request: many in flight, answered in any order.
    rt().block_on(async {
        let mut reqs = Vec::new();
        for i in 0..50i64 {
            reqs.push(
                erpc::send_request(&n, "Elixir.Calc", "add", (i, i))
                    .await
                    .unwrap(),
            );
        }
        for (i, r) in reqs.into_iter().enumerate().rev() {
            let v: i64 = r.receive_response(Duration::from_secs(5)).await.unwrap();
            assert_eq!(v, 2 * i as i64);
        }
        // Abandoned (dropped) requests leave nothing behind that breaks later calls.
        for _ in 0..10 {
            drop(
                erpc::send_request(&n, "Elixir.Calc", "slow", (50,))
                    .await
                    .unwrap(),
            );
        }
    });
    // cast.
    let (pid, mut rx) = rt().block_on(async { forwarder(None) });
    erpc::cast(
        &n,
        "Elixir.Calc",
        "notify",
        vec![
            Term::Pid(Box::new(orbit_dist::to_wire(pid))),
            Term::atom("casted"),
        ],
    )
    .unwrap();
    let got = rt().block_on(async {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .ok()
            .flatten()
    });
    assert_eq!(got, Some(Term::atom("casted")));
    // Tasks under the child's Task.Supervisor stand-in.
    rt().block_on(async {
        let t = erpc::async_nolink(
            &n,
            "Elixir.OrbitSup",
            "Elixir.Calc",
            "add",
            (1, 2),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(
            t.await_result::<i64>(Duration::from_secs(5)).await.unwrap(),
            3
        );
        let t = erpc::async_nolink(
            &n,
            "Elixir.OrbitSup",
            "Elixir.Calc",
            "throw_it",
            (Term::atom("ball"),),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let r = t.await_result::<Term>(Duration::from_secs(5)).await;
        assert_eq!(
            r.unwrap_err().exception_term().unwrap().to_string(),
            "{exit, {exception, {{nocatch, ball}, [{'Elixir.Calc', throw_it, 1, []}]}}}"
        );
        let mut t = erpc::async_nolink(
            &n,
            "Elixir.OrbitSup",
            "Elixir.Calc",
            "slow",
            (5000,),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(t
            .yield_result::<Term>(Duration::from_millis(20))
            .await
            .is_none());
        assert!(t.shutdown::<Term>(Duration::from_secs(5)).await.is_none());
        let missing = erpc::async_nolink(
            &n,
            "Elixir.NoSup",
            "Elixir.Calc",
            "add",
            (1, 2),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(&missing, Err(ErpcError::Exit(r)) if r.as_atom() == Some("noproc")),
            "{missing:?}"
        );
    });
    // The child calls this node.
    assert_eq!(c.eval(o, "add 5 6").to_string(), "{ok, 11}");

    // A bare node (no orbit_cluster::start) refuses spawns: notsup.
    let mut bare = spawn_child(o, "erpc_bare", true);
    let b = bare.name.clone();
    assert_eq!(
        call(&b, "add", vec![Term::Int(1), Term::Int(2)], 5000).to_string(),
        "{error, {erpc, notsup}}"
    );
    let _ = bare.eval(o, "ping");

    // The node goes away during a call: noconnection, at once.
    let slow = rt().block_on(async {
        erpc::send_request(&n, "Elixir.Calc", "slow", (30_000,))
            .await
            .unwrap()
    });
    drop(c);
    let started = std::time::Instant::now();
    let r: Result<Term, _> = rt().block_on(slow.receive_response(Duration::from_secs(60)));
    assert!(matches!(r, Err(ErpcError::NoConnection { .. })), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}
