//! erpc between Orbit and real BEAM nodes, each outcome compared with what the BEAM
//! gives in the same situation.
//!
//! Two Elixir nodes define the same `Calc` module: `caller` (a REPL) and `callee`. The
//! Orbit node registers Rust functions under the same names. Into Orbit: the caller
//! runs every call against the Orbit node and against `callee` and the two terms must
//! be equal (stack locations aside: a Rust function has no file and line). Out of
//! Orbit: Orbit calls `callee` and the caller calls `callee` with the same arguments;
//! `Ok(v)` must be `{:ok, v}` and an error's `exception_term()` exactly the `{class,
//! reason}` the caller caught. An `erl` node checks the Erlang spelling (`calc:add/2`,
//! `rpc:call`).

mod beam;

use std::process::Command;
use std::time::Duration;

use beam::*;
use orbit_cluster::erpc::{self, ErpcError};
use orbit_term::Term;

const CALC_EX: &str = r#"
defmodule Calc do
  def add(a, b), do: a + b
  def boom(msg), do: raise(msg)
  def panic(), do: raise("boom")
  def throw_it(v), do: throw(v)
  def exit_it(r), do: exit(r)
  def slow(ms), do: (Process.sleep(ms); :slept)
  def notify(pid, msg), do: send(pid, msg)
  def drop_caller(n), do: (Node.disconnect(n); Process.sleep(2000); :unreachable)
end
"#;

const REPL_EX: &str = r#"
orbit = String.to_atom(System.get_env("ORBIT_NODE"))
true = Node.connect(orbit)
defmodule R do
  def eval(line, b) do
    try do
      Code.eval_string(line, b)
    catch c, e -> {{:caught, c, e}, b}
    end
  end
  def loop(b, orbit) do
    case IO.gets("") do
      :eof -> System.halt(0)
      "D " <> line -> {v, b2} = eval(line, b); send({:pg_inbox, orbit}, {:reply, v}); loop(b2, orbit)
      _ -> loop(b, orbit)
    end
  end
end
send({:pg_inbox, orbit}, {:reply, :ready})
R.loop([orbit: orbit], orbit)
"#;

fn elixir(prefix: &str, o: &Orbit) -> Beam {
    let name = format!("{prefix}_{}@127.0.0.1", std::process::id());
    let mut cmd = Command::new("elixir");
    cmd.args([
        "--name",
        &name,
        "--cookie",
        COOKIE,
        "-e",
        &format!("{CALC_EX}\n{REPL_EX}"),
    ]);
    Beam::spawn(cmd, name, o)
}

/// Stack locations (`[file: ..., line: ...]`, `[error_info: ...]`) replaced by `[]`.
fn no_locations(t: &Term) -> Term {
    match t {
        Term::Tuple(el) => {
            let frame = el.len() == 4
                && el[0].as_atom().is_some()
                && el[1].as_atom().is_some()
                && matches!(&el[3], Term::List(kw) if kw.iter().all(|e| matches!(e, Term::Tuple(p) if p.len() == 2 && p[0].as_atom().is_some())));
            if frame {
                Term::Tuple(vec![
                    el[0].clone(),
                    el[1].clone(),
                    no_locations(&el[2]),
                    Term::nil(),
                ])
            } else {
                Term::Tuple(el.iter().map(no_locations).collect())
            }
        }
        Term::List(l) => Term::List(l.iter().map(no_locations).collect()),
        Term::Map(m) => Term::Map(
            m.iter()
                .map(|(k, v)| (no_locations(k), no_locations(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn is_frame(t: &Term) -> bool {
    matches!(t, Term::Tuple(el) if el.len() == 4 && el[0].as_atom().is_some() && el[1].as_atom().is_some())
}

/// Stacks cut to their first frame (the function's own): a BEAM task's stack goes on
/// into `Task.Supervised` and `proc_lib`, which a Rust task does not have.
fn first_frames(t: &Term) -> Term {
    match t {
        Term::List(l) if l.len() > 1 && l.iter().all(is_frame) => Term::List(vec![l[0].clone()]),
        Term::List(l) => Term::List(l.iter().map(first_frames).collect()),
        Term::Tuple(el) => Term::Tuple(el.iter().map(first_frames).collect()),
        other => other.clone(),
    }
}

fn register_calc() {
    erpc::register_typed("Elixir.Calc", "add", |(a, b): (i64, i64)| {
        Ok::<_, ErpcError>(a + b)
    })
    .unwrap();
    erpc::register("Elixir.Calc", "boom", 1, |a| {
        let msg = a[0].as_binary().unwrap_or_default();
        Err(ErpcError::raise(String::from_utf8_lossy(msg)))
    })
    .unwrap();
    erpc::register("Elixir.Calc", "panic", 0, |_| panic!("boom")).unwrap();
    erpc::register("Elixir.Calc", "throw_it", 1, |mut a| {
        Err(ErpcError::Throw(a.remove(0)))
    })
    .unwrap();
    erpc::register("Elixir.Calc", "exit_it", 1, |mut a| {
        Err(ErpcError::Exit(a.remove(0)))
    })
    .unwrap();
    erpc::register_async("Elixir.Calc", "slow", 1, |a| async move {
        let ms = a[0].as_i64().unwrap_or(0).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(Term::atom("slept"))
    })
    .unwrap();
    erpc::register("Elixir.Calc", "notify", 2, |a| {
        let Term::Pid(p) = &a[0] else {
            return Err(ErpcError::error(Term::atom("badarg")));
        };
        let _ = orbit::send(orbit_dist::from_wire(p), a[1].clone());
        Ok(a[1].clone())
    })
    .unwrap();
    erpc::register_async("Elixir.Calc", "drop_caller", 1, |a| async move {
        if let (Some(n), Some(node)) = (a[0].as_atom(), orbit_dist::Node::current()) {
            node.disconnect(n);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(Term::atom("unreachable"))
    })
    .unwrap();
    erpc::register_typed("calc", "add", |(a, b): (i64, i64)| {
        Ok::<_, ErpcError>(a + b)
    })
    .unwrap();
}

/// Evaluates `template` (with `$N` standing for the node) on the caller against the Orbit
/// node and against `callee`; both values, the Orbit one first.
fn both(caller: &mut Beam, o: &Orbit, callee: &str, template: &str) -> (Term, Term) {
    let on_orbit = caller.eval(o, &template.replace("$N", "orbit"));
    let on_beam = caller.eval(o, &template.replace("$N", &format!(":\"{callee}\"")));
    (on_orbit, on_beam)
}

fn same(caller: &mut Beam, o: &Orbit, callee: &str, template: &str) -> Term {
    let (a, b) = both(caller, o, callee, template);
    assert_eq!(
        no_locations(&a),
        no_locations(&b),
        "{template}: Orbit gave {a}, the BEAM {b}"
    );
    a
}

/// [`same`] for task outcomes: stacks compared by their first frame.
fn same_task(caller: &mut Beam, o: &Orbit, callee: &str, template: &str) -> Term {
    let (a, b) = both(caller, o, callee, template);
    let (na, nb) = (
        first_frames(&no_locations(&a)),
        first_frames(&no_locations(&b)),
    );
    assert_eq!(na, nb, "{template}: Orbit gave {a}, the BEAM {b}");
    a
}

fn caught(call: &str) -> String {
    format!("try do {{:ok, {call}}} catch c, r -> {{c, r}} end")
}

fn into_orbit(caller: &mut Beam, o: &Orbit, callee: &str) {
    let ok = |v: Term| Term::tuple(vec![Term::atom("ok"), v]);
    assert_eq!(
        same(
            caller,
            o,
            callee,
            &caught(":erpc.call($N, Calc, :add, [1, 2])")
        ),
        ok(Term::Int(3))
    );
    // Unregistered function, unregistered module, wrong arity: undef.
    let undef = same(
        caller,
        o,
        callee,
        &caught(":erpc.call($N, Calc, :nope, [1])"),
    );
    assert!(undef.to_string().contains("undef"), "{undef}");
    same(
        caller,
        o,
        callee,
        &caught(":erpc.call($N, NoSuchMod, :f, [])"),
    );
    same(
        caller,
        o,
        callee,
        &caught(":erpc.call($N, Calc, :add, [1])"),
    );
    // Raised errors (a Rust panic is a RuntimeError like Elixir's raise), throw, exit.
    let boom = same(
        caller,
        o,
        callee,
        &caught(":erpc.call($N, Calc, :boom, [\"bad\"])"),
    );
    assert!(boom.to_string().contains("RuntimeError"), "{boom}");
    same(
        caller,
        o,
        callee,
        &caught(":erpc.call($N, Calc, :panic, [])"),
    );
    assert_eq!(
        same(
            caller,
            o,
            callee,
            &caught(":erpc.call($N, Calc, :throw_it, [:ball])")
        ),
        Term::tuple(vec![Term::atom("throw"), Term::atom("ball")])
    );
    same(
        caller,
        o,
        callee,
        &caught(":erpc.call($N, Calc, :exit_it, [:bye])"),
    );
    same(
        caller,
        o,
        callee,
        &caught(":erpc.call($N, Calc, :exit_it, [{:shutdown, 1}])"),
    );
    // Timeout, then the same node still answers (the late result is dropped).
    let t = same(
        caller,
        o,
        callee,
        &caught(":erpc.call($N, Calc, :slow, [3000], 100)"),
    );
    assert_eq!(t.to_string(), "{error, {erpc, timeout}}");
    same(
        caller,
        o,
        callee,
        &caught(":erpc.call($N, Calc, :add, [2, 2], 5000)"),
    );
    // rpc:call (erpc in OTP 25): each badrpc form.
    for call in [
        ":rpc.call($N, Calc, :add, [1, 2])",
        ":rpc.call($N, Calc, :nope, [])",
        ":rpc.call($N, Calc, :boom, [\"x\"])",
        ":rpc.call($N, Calc, :throw_it, [:ball])",
        ":rpc.call($N, Calc, :exit_it, [:bye])",
        ":rpc.call($N, Calc, :slow, [3000], 100)",
    ] {
        same(caller, o, callee, call);
    }
    // rpc:block_call goes through rex (stacks compared by their first frame: the BEAM's
    // go on into rpc's own frames).
    for call in [
        ":rpc.block_call($N, Calc, :add, [1, 2])",
        ":rpc.block_call($N, Calc, :nope, [1])",
        ":rpc.block_call($N, Calc, :boom, [\"x\"])",
        ":rpc.block_call($N, Calc, :throw_it, [:ball])",
        ":rpc.block_call($N, Calc, :exit_it, [:bye])",
    ] {
        same_task(caller, o, callee, call);
    }
    // multicall on both, cast.
    let m = caller.eval(
        o,
        &format!(":erpc.multicall([orbit, :\"{callee}\"], Calc, :add, [1, 2])"),
    );
    assert_eq!(m.to_string(), "[{ok, 3}, {ok, 3}]");
    assert_eq!(
        same(
            caller,
            o,
            callee,
            ":erpc.cast($N, Calc, :notify, [self(), :casted]); receive do :casted -> :got after 5000 -> :none end"
        ),
        Term::atom("got")
    );
    // spawn_request of a registered MFA with link and monitor: the exit reason reaches
    // both, as from a BEAM process.
    let spawn = "Process.flag(:trap_exit, true); ref = :erlang.spawn_request($N, Calc, :exit_it, [:bye], [:monitor, :link]); \
        r = receive do {:spawn_reply, ^ref, :ok, pid} -> \
          d = receive do {:DOWN, ^ref, :process, ^pid, why} -> why after 5000 -> :nodown end; \
          e = receive do {:EXIT, ^pid, why} -> why after 5000 -> :noexit end; {d, e} \
        after 5000 -> :noreply end; Process.flag(:trap_exit, false); r";
    assert_eq!(same(caller, o, callee, spawn).to_string(), "{bye, bye}");
    // erpc's own protocol, by hand: the DOWN reason carries the result.
    let by_hand = "res = make_ref(); ref = :erlang.spawn_request($N, :erpc, :execute_call, [res, Calc, :add, [1, 2]], [:monitor]); \
        receive do {:DOWN, ^ref, :process, _, {^res, :return, v}} -> {:return, v} after 5000 -> :none end";
    assert_eq!(same(caller, o, callee, by_hand).to_string(), "{return, 3}");
    // The process behind a call of a sync function (Orbit answers it without one): the
    // reply names a pid of the callee before the DOWN with the result; afterwards the
    // pid is an exited process's (a new monitor: noproc; an exit signal: nothing).
    let pid_after = "res = make_ref(); ref = :erlang.spawn_request($N, :erpc, :execute_call, [res, Calc, :add, [1, 2]], [:monitor]); \
        receive do {:spawn_reply, ^ref, :ok, pid} -> \
          receive do {:DOWN, ^ref, :process, ^pid, {^res, :return, v}} -> \
            Process.exit(pid, :kill); m = Process.monitor(pid); \
            n = receive do {:DOWN, ^m, :process, ^pid, why} -> why after 5000 -> :nodown end; \
            {v, node(pid) == $N, n} \
          after 5000 -> :nodown end \
        after 5000 -> :noreply end";
    assert_eq!(
        same(caller, o, callee, pid_after).to_string(),
        "{3, true, noproc}"
    );
    // A connection lost during the call.
    let nc = same(
        caller,
        o,
        callee,
        &caught(":erpc.call($N, Calc, :drop_caller, [node()], 10000)"),
    );
    assert_eq!(nc.to_string(), "{error, {erpc, noconnection}}");
    // Built-in erlang:node/0 through rpc.
    let n = caller.eval(o, ":rpc.call(orbit, :erlang, :node, [])");
    assert_eq!(n, Term::atom(&o.name));
    // A fun cannot run here: the spawn is refused with notsup (what OTP gives for a
    // node that cannot spawn it); Node.spawn still returns a pid (a local stand-in).
    let fun = caller.eval(
        o,
        "ref = :erlang.spawn_request(orbit, fn -> :ok end, []); receive do {:spawn_reply, ^ref, :error, r} -> r after 5000 -> :none end",
    );
    assert_eq!(fun, Term::atom("notsup"));
    let pid = caller.eval(o, "is_pid(Node.spawn(orbit, fn -> :ok end))");
    assert_eq!(pid, Term::atom("true"));
    let sm = caller.eval(o, &caught("Node.spawn_monitor(orbit, fn -> :ok end)"));
    assert_eq!(sm.to_string(), "{error, notsup}");
    // Orbit is still fine.
    assert_eq!(
        caller.eval(o, ":erpc.call(orbit, Calc, :add, [20, 22])"),
        Term::Int(42)
    );
}

fn out_of_orbit(caller: &mut Beam, o: &Orbit, callee: &str) {
    let cases: Vec<(&str, Vec<Term>, u64, String)> = vec![
        (
            "add",
            vec![Term::Int(1), Term::Int(2)],
            5000,
            "[1, 2]".into(),
        ),
        ("nope", vec![Term::Int(1)], 5000, "[1]".into()),
        ("add", vec![Term::Int(1)], 5000, "[1]".into()),
        (
            "boom",
            vec![Term::Binary(b"bad".to_vec())],
            5000,
            "[\"bad\"]".into(),
        ),
        ("throw_it", vec![Term::atom("ball")], 5000, "[:ball]".into()),
        ("exit_it", vec![Term::atom("bye")], 5000, "[:bye]".into()),
        ("slow", vec![Term::Int(3000)], 100, "[3000]".into()),
        (
            "drop_caller",
            vec![Term::atom(&o.name)],
            10000,
            format!("[:\"{}\"]", caller.name),
        ),
    ];
    for (f, args, ms, ex_args) in cases {
        let ours: Result<Term, ErpcError> = rt().block_on(erpc::call(
            callee,
            "Elixir.Calc",
            f,
            args,
            Duration::from_millis(ms),
        ));
        let theirs = caller.eval(
            o,
            &caught(&format!(
                ":erpc.call(:\"{callee}\", Calc, :{f}, {ex_args}, {ms})"
            )),
        );
        let ours_t = match &ours {
            Ok(v) => Term::tuple(vec![Term::atom("ok"), v.clone()]),
            Err(e) => e.exception_term().expect("an OTP shape"),
        };
        assert_eq!(ours_t, theirs, "Calc.{f}{ex_args}: Orbit got {ours:?}");
    }
    // Typed arguments and results.
    let sum: i64 = rt()
        .block_on(erpc::call(
            callee,
            "Elixir.Calc",
            "add",
            (40, 2),
            Duration::from_secs(5),
        ))
        .unwrap();
    assert_eq!(sum, 42);
    let wrong: Result<String, _> = rt().block_on(erpc::call(
        callee,
        "Elixir.Calc",
        "add",
        (40, 2),
        Duration::from_secs(5),
    ));
    assert!(matches!(wrong, Err(ErpcError::Decode { .. })), "{wrong:?}");
    // A function that prints: the group leader answers its I/O.
    let io: Term = rt()
        .block_on(erpc::call(
            callee,
            "Elixir.IO",
            "puts",
            ("hello from elixir",),
            Duration::from_secs(5),
        ))
        .unwrap();
    assert_eq!(io, Term::atom("ok"));
    // erlang:node/0 on each node, this one included.
    let nodes = [callee.to_string(), o.name.clone(), caller.name.clone()];
    let names: Vec<Result<Term, ErpcError>> = rt().block_on(erpc::multicall(
        &nodes,
        "erlang",
        "node",
        (),
        Duration::from_secs(5),
    ));
    let names: Vec<Term> = names.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        names,
        nodes.iter().map(|n| Term::atom(n)).collect::<Vec<_>>()
    );
    // send_request / receive_response, answered out of order.
    rt().block_on(async {
        let slow = erpc::send_request(callee, "Elixir.Calc", "slow", (300,))
            .await
            .unwrap();
        let fast = erpc::send_request(callee, "Elixir.Calc", "add", (1, 1))
            .await
            .unwrap();
        let f: i64 = fast.receive_response(Duration::from_secs(5)).await.unwrap();
        let s: Term = slow.receive_response(Duration::from_secs(5)).await.unwrap();
        assert_eq!((f, s), (2, Term::atom("slept")));
        // wait_response keeps the request on a timeout.
        let r = erpc::send_request(callee, "Elixir.Calc", "slow", (300,))
            .await
            .unwrap();
        let r = match r.wait_response::<Term>(Duration::from_millis(10)).await {
            Err(again) => again,
            Ok(v) => panic!("answered too early: {v:?}"),
        };
        let v = r.wait_response::<Term>(Duration::from_secs(5)).await;
        assert_eq!(v.ok().map(|r| r.unwrap()), Some(Term::atom("slept")));
    });
    // cast: Calc.notify sends to a local forwarder.
    let (pid, mut rx) = rt().block_on(async { forwarder(None) });
    erpc::cast(
        callee,
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
    // A node that is not there.
    let gone: Result<Term, _> = rt().block_on(erpc::call(
        "nobody_here@127.0.0.1",
        "erlang",
        "node",
        (),
        Duration::from_secs(10),
    ));
    assert!(
        matches!(gone, Err(ErpcError::NoConnection { .. })),
        "{gone:?}"
    );
    assert_eq!(
        gone.unwrap_err().exception_term().unwrap().to_string(),
        "{error, {erpc, noconnection}}"
    );
}

/// `Task.Supervisor` across nodes: Elixir starting tasks on Orbit (compared with the
/// same on an Elixir node's real `Task.Supervisor`), and Orbit starting them on Elixir.
fn tasks(caller: &mut Beam, o: &Orbit, callee: &mut Beam) {
    erpc::serve_task_supervisor("Elixir.OrbitSup").unwrap();
    let started = callee.eval(
        o,
        "{:ok, _} = Task.Supervisor.start_link(name: OrbitSup); :started",
    );
    assert_eq!(started, Term::atom("started"));
    let c = callee.name.clone();
    assert_eq!(
        same_task(
            caller,
            o,
            &c,
            "Task.Supervisor.async({OrbitSup, $N}, Calc, :add, [1, 2]) |> Task.await()"
        ),
        Term::Int(3)
    );
    assert_eq!(
        same_task(
            caller,
            o,
            &c,
            "Task.Supervisor.async_nolink({OrbitSup, $N}, Calc, :add, [2, 3]) |> Task.await()"
        ),
        Term::Int(5)
    );
    // A crash: the DOWN reason (yield's {:exit, reason}), as from an Elixir task.
    let crash = same_task(
        caller,
        o,
        &c,
        "Task.Supervisor.async_nolink({OrbitSup, $N}, Calc, :boom, [\"x\"]) |> Task.yield(5000)",
    );
    assert!(crash.to_string().contains("RuntimeError"), "{crash}");
    same_task(
        caller,
        o,
        &c,
        "Task.Supervisor.async_nolink({OrbitSup, $N}, Calc, :nope, []) |> Task.yield(5000)",
    );
    same_task(
        caller,
        o,
        &c,
        "Task.Supervisor.async_nolink({OrbitSup, $N}, Calc, :throw_it, [:ball]) |> Task.yield(5000)",
    );
    // yield times out, the task runs on; shutdown stops it.
    same_task(
        caller,
        o,
        &c,
        "t = Task.Supervisor.async_nolink({OrbitSup, $N}, Calc, :slow, [3000]); {Task.yield(t, 50), Task.shutdown(t)}",
    );
    // No such supervisor: noproc at once.
    same_task(
        caller,
        o,
        &c,
        "try do Task.Supervisor.async_nolink({NoSup, $N}, Calc, :add, [1, 2]) catch :exit, {r, _} -> r end",
    );

    // Out of Orbit, against the Elixir supervisor.
    let t = rt().block_on(async {
        erpc::async_nolink(
            &c,
            "Elixir.OrbitSup",
            "Elixir.Calc",
            "add",
            (20, 22),
            Duration::from_secs(5),
        )
        .await
        .unwrap()
        .await_result::<i64>(Duration::from_secs(5))
        .await
    });
    assert_eq!(t.unwrap(), 42);
    let ours = rt().block_on(async {
        erpc::async_nolink(
            &c,
            "Elixir.OrbitSup",
            "Elixir.Calc",
            "boom",
            ("x",),
            Duration::from_secs(5),
        )
        .await
        .unwrap()
        .await_result::<Term>(Duration::from_secs(5))
        .await
    });
    let theirs = caller.eval(
        o,
        &format!(
            "{{:exit, r}} = Task.Supervisor.async_nolink({{OrbitSup, :\"{c}\"}}, Calc, :boom, [\"x\"]) |> Task.yield(5000); r"
        ),
    );
    match ours {
        Err(ErpcError::Exit(r)) => assert_eq!(r, theirs, "the same Elixir task's exit"),
        other => panic!("expected the task's exit, got {other:?}"),
    }
    let (first, second) = rt().block_on(async {
        let mut t = erpc::async_nolink(
            &c,
            "Elixir.OrbitSup",
            "Elixir.Calc",
            "slow",
            (3000,),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let first = t.yield_result::<Term>(Duration::from_millis(50)).await;
        (
            first.is_none(),
            t.shutdown::<Term>(Duration::from_secs(5)).await.is_none(),
        )
    });
    assert!(first && second, "yield timed out and shutdown stopped it");
    let missing = rt().block_on(erpc::async_nolink(
        &c,
        "Elixir.NoSup",
        "Elixir.Calc",
        "add",
        (1, 2),
        Duration::from_secs(5),
    ));
    assert!(
        matches!(&missing, Err(ErpcError::Exit(r)) if r.as_atom() == Some("noproc")),
        "{missing:?}"
    );
    // Orbit to itself through the wire is not needed: Orbit -> Orbit is in erpc_orbit.
}

#[test]
fn erpc_with_elixir_and_erl() {
    if !have("elixir") || !have("erl") {
        println!("SKIP erpc_with_elixir_and_erl: elixir or erl is not installed");
        return;
    }
    let o = orbit("erpc_beam");
    orbit_cluster::start(&o.node).unwrap();
    register_calc();
    let mut callee = elixir("callee", o);
    let mut caller = elixir("caller", o);
    // The callee and the caller know each other.
    assert_eq!(
        caller.eval(o, &format!("Node.connect(:\"{}\")", callee.name)),
        Term::atom("true")
    );
    let callee_name = callee.name.clone();
    into_orbit(&mut caller, o, &callee_name);
    out_of_orbit(&mut caller, o, &callee_name);
    tasks(&mut caller, o, &mut callee);

    // Erlang's spelling, from erl.
    let mut erl = Beam::erl("erl_erpc", o);
    assert_eq!(
        erl.eval(o, "erpc:call(Orbit, calc, add, [1, 2])."),
        Term::Int(3)
    );
    assert_eq!(
        erl.eval(o, "rpc:call(Orbit, calc, add, [1, 2])."),
        Term::Int(3)
    );
    assert_eq!(
        erl.eval(
            o,
            "try erpc:call(Orbit, calc, nope, [1]) catch C:R -> {C, R} end."
        )
        .to_string(),
        "{error, {exception, undef, [{calc, nope, [1], []}]}}"
    );
    assert_eq!(
        erl.eval(o, "rpc:call(Orbit, calc, add, [1, a]).")
            .to_string(),
        "{badrpc, {'EXIT', {function_clause, [{calc, add, [1, a], []}]}}}"
    );
    let _ = callee.eval(o, ":ok");
}
