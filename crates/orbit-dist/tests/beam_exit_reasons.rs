//! Exit reasons are terms and cross to and from a real Elixir node exactly: Orbit
//! processes exit with `normal`, `shutdown`, `{shutdown, x}`, `{error, 1}`, text, a nested
//! term, `killed` or a panic and Elixir's `DOWN`/`EXIT` show that very term; Elixir
//! processes exit with terms and Orbit's `DOWN`/`EXIT` carry the equal term; an exit
//! signal sent from Elixir (`Process.exit/2`) carries its term; remote calls fail with
//! `orbit::CallError` carrying the server's exit term; a served GenServer knows its
//! remote caller.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use orbit::{CallError, ExitReason, Message, Pid};
use orbit_term::{atom, Term};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

fn atom(a: &str) -> Term {
    Term::atom(a)
}

fn tuple(el: Vec<Term>) -> Term {
    Term::Tuple(el)
}

/// `{a, #{b => [1, {2, <<"three">>}], c => {d, 1.5}}}`
fn nested() -> Term {
    tuple(vec![
        atom("a"),
        Term::Map(vec![
            (
                atom("b"),
                Term::List(vec![
                    Term::Int(1),
                    tuple(vec![Term::Int(2), "three".into()]),
                ]),
            ),
            (atom("c"), tuple(vec![atom("d"), Term::Float(1.5)])),
        ]),
    ])
}

/// A value whose serialization always fails.
struct Unencodable;

impl serde::Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value refuses to encode"))
    }
}

/// A trapping process that reports everything it receives.
fn observer(tx: UnboundedSender<Message<Term>>) -> Pid {
    orbit::Spawn::new()
        .trap_exit()
        .spawn(move |mut ctx: orbit::Context<Term>| async move {
            loop {
                if tx.send(ctx.recv().await).is_err() {
                    break;
                }
            }
        })
        .unwrap()
        .pid()
}

async fn next<T>(rx: &mut UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a message within 15s")
        .expect("sender alive")
}

fn pid_of(t: &Term) -> Pid {
    match t {
        Term::Pid(p) => orbit_dist::convert::pid_from_wire(p),
        other => panic!("expected a pid, got {other}"),
    }
}

/// Orbit -> Elixir: an Elixir process links to and monitors each Orbit process, which
/// then exits with the case's reason; Elixir prints what its `DOWN` and `EXIT` carried.
#[test]
fn orbit_exit_reasons_reach_elixir_exactly() {
    let node = node("orbit_xr");
    let me = node.name();
    let code = format!(
        r##"
        orbit = :"{me}"
        true = Node.connect(orbit)
        Process.flag(:trap_exit, true)
        Process.register(self(), :xr_watch)
        IO.puts("ready")
        loop = fn loop ->
          receive do
            {{:watch, label, p, go}} ->
              Process.link(p)
              ref = Process.monitor(p)
              if go, do: send(p, :go)
              down = receive do {{:DOWN, ^ref, :process, ^p, r}} -> r after 10000 -> :no_down end
              ex = receive do {{:EXIT, ^p, r}} -> r after 10000 -> :no_exit end
              IO.puts("#{{label}} down=#{{inspect(down)}} exit=#{{inspect(ex)}}")
              loop.(loop)
            {{:whoareyou, to}} ->
              send(to, {{:me, self()}})
              loop.(loop)
            {{:EXIT, _from, r}} ->
              IO.puts("signal #{{inspect(r)}}")
              loop.(loop)
          end
        end
        loop.(loop)
        "##
    );
    let mut ex = Peer::elixir("ex_xr_out", COOKIE, &code);
    ex.expect("ready", 20);
    let cases: Vec<(&str, Option<ExitReason>, &str)> = vec![
        ("normal", Some(ExitReason::Normal), ":normal"),
        ("shutdown", Some(ExitReason::Shutdown), ":shutdown"),
        (
            "shutdown_x",
            Some(ExitReason::shutdown_with_term(atom("x"))),
            "{:shutdown, :x}",
        ),
        (
            "error_1",
            Some(ExitReason::from_term(tuple(vec![
                atom("error"),
                Term::Int(1),
            ]))),
            "{:error, 1}",
        ),
        ("text", Some(ExitReason::error("it broke")), "\"it broke\""),
        (
            "nested",
            Some(ExitReason::from_term(nested())),
            "{:a, %{b: [1, {2, \"three\"}], c: {:d, 1.5}}}",
        ),
        ("killed", Some(ExitReason::Killed), ":killed"),
        // None: the process panics with "boom".
        ("panic", None, "{:panic, \"boom\"}"),
    ];
    let ex_name = ex.name.clone();
    for (label, reason, want) in &cases {
        let reason = reason.clone();
        let p = rt().block_on(async move {
            orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
                let _ = ctx.recv().await;
                match reason {
                    Some(r) => r,
                    None => panic!("boom"),
                }
            })
            .unwrap()
            .pid()
        });
        let msg = (atom!("watch"), *label, orbit_dist::to_wire(p), true);
        orbit_dist::send_named(&ex_name, "xr_watch", &msg).unwrap();
        let line = ex.expect(&format!("{label} "), 20);
        assert_eq!(line, format!("{label} down={want} exit={want}"));
    }
    // A pid that is gone: Elixir's link and monitor get `noproc`.
    let gone = rt().block_on(async {
        let h = orbit::spawn(|_ctx: orbit::Context<Term>| async {}).unwrap();
        assert_eq!(h.wait_exit().await, ExitReason::Normal);
        h.pid()
    });
    let msg = (atom!("watch"), "gone", orbit_dist::to_wire(gone), false);
    orbit_dist::send_named(&ex_name, "xr_watch", &msg).unwrap();
    assert_eq!(ex.expect("gone ", 20), "gone down=:noproc exit=:noproc");
    // Exit signals from an Orbit process to the (trapping) Elixir process: `exit/2`.
    let (ptx, mut prx) = unbounded_channel();
    rt().block_on(async {
        let asker = observer(ptx);
        let msg = (atom!("whoareyou"), orbit_dist::to_wire(asker));
        orbit_dist::send_named(&ex_name, "xr_watch", &msg).unwrap();
        let Message::Msg(Term::Tuple(el)) = next(&mut prx).await else {
            panic!("expected {{me, pid}}")
        };
        let ex_pid = pid_of(&el[1]);
        orbit::spawn(move |_ctx: orbit::Context<Term>| async move {
            orbit::exit(
                ex_pid,
                ExitReason::from_term(tuple(vec![atom("error"), Term::Int(1)])),
            );
            orbit::exit(ex_pid, ExitReason::shutdown_with_term(atom("x")));
        })
        .unwrap();
    });
    assert_eq!(ex.expect("signal ", 20), "signal {:error, 1}");
    assert_eq!(ex.expect("signal ", 20), "signal {:shutdown, :x}");
}

/// Answers every call with the caller's pid, as the caller sees itself (`from`); stops
/// with `{error, 1}` when called with `stop`.
struct WhoAmI;

impl orbit::GenServer for WhoAmI {
    type Call = Term;
    type Reply = Term;
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        req: Term,
        from: &mut orbit::ReplyTo<Term>,
        _ctx: &mut orbit::ServerContext<Self>,
    ) -> orbit::CallReply<Term, ()> {
        if req == atom("stop") {
            let reason = ExitReason::from_term(tuple(vec![atom("error"), Term::Int(1)]));
            return orbit::CallReply::Stop(reason, None);
        }
        let who = match from.caller() {
            Some(p) => Term::Pid(Box::new(orbit_dist::to_wire(p))),
            None => atom("no_caller"),
        };
        orbit::CallReply::Reply(who)
    }
}

/// Elixir -> Orbit: Elixir processes exit with terms (Orbit links to and monitors them);
/// `Process.exit/2` from Elixir to a trapping and a non-trapping Orbit process; a call to
/// an Elixir server that exits; a served GenServer sees its remote caller.
#[test]
fn elixir_exit_reasons_reach_orbit_exactly() {
    let node = node("orbit_xr");
    let me = node.name();
    let (tx, mut inbox) = unbounded_channel();
    rt().block_on(async {
        orbit::register("xr_inbox", observer(tx)).unwrap();
        orbit::gen_server::start_with(
            WhoAmI,
            orbit::gen_server::StartOptions {
                name: Some("xr_who".into()),
                link: false,
                timeout: None,
            },
        )
        .await
        .unwrap();
        orbit_dist::serve_gen_server::<WhoAmI>("xr_who");
    });
    let code = format!(
        r##"
        orbit = :"{me}"
        true = Node.connect(orbit)
        Process.register(self(), :xr_main)
        reasons = [
          {{"error_1", {{:error, 1}}}},
          {{"shutdown_x", {{:shutdown, :x}}}},
          {{"killed", :killed}},
          {{"nested", {{:a, %{{b: [1, {{2, "three"}}], c: {{:d, 1.5}}}}}}}},
          {{"text", "it broke"}},
          {{"charlist", String.to_charlist("abc")}},
          {{"panic", {{:panic, "boom"}}}},
          {{"shutdown", :shutdown}},
          {{"normal", :normal}}
        ]
        for {{label, r}} <- reasons do
          w = spawn(fn -> receive do :go -> exit(r) end end)
          send({{:xr_inbox, orbit}}, {{:w, label, w}})
        end
        crash = spawn(fn -> receive do {{:"$gen_call", _, _}} -> exit({{:error, 1}}) end end)
        Process.register(crash, :xr_crash)
        silent = spawn(fn -> receive do :never -> :ok end end)
        Process.register(silent, :xr_silent)
        odd = spawn(fn -> receive do {{:"$gen_call", {{from, tag}}, _}} -> send(from, {{tag, :not_an_int}}) end end)
        Process.register(odd, :xr_odd)
        IO.puts("whoami #{{GenServer.call({{:xr_who, orbit}}, :who) == self()}}")
        r = try do GenServer.call({{:xr_who, orbit}}, :stop) catch :exit, {{r, _}} -> r end
        IO.puts("stopped #{{inspect(r)}}")
        send({{:xr_inbox, orbit}}, {{:ready, self()}})
        {{t1, t2}} = receive do {{:targets, t1, t2}} -> {{t1, t2}} after 15000 -> exit(:no_targets) end
        Process.exit(t1, {{:error, 1}})
        Process.exit(t2, {{:shutdown, %{{why: :x}}}})
        IO.gets("")
        "##
    );
    let mut ex = Peer::elixir("ex_xr_in", COOKIE, &code);
    let expected: Vec<(&str, Term)> = vec![
        ("error_1", tuple(vec![atom("error"), Term::Int(1)])),
        ("shutdown_x", tuple(vec![atom("shutdown"), atom("x")])),
        ("killed", atom("killed")),
        ("nested", nested()),
        ("text", "it broke".into()),
        (
            "charlist",
            Term::List(vec![Term::Int(97), Term::Int(98), Term::Int(99)]),
        ),
        ("panic", tuple(vec![atom("panic"), "boom".into()])),
        ("shutdown", atom("shutdown")),
        ("normal", atom("normal")),
    ];
    let ex_name = ex.name.clone();
    rt().block_on(async {
        let (rtx, mut results) = unbounded_channel();
        for _ in 0..expected.len() {
            let Message::Msg(Term::Tuple(el)) = next(&mut inbox).await else {
                panic!("expected {{w, label, pid}}")
            };
            let label = String::from_utf8(el[1].as_binary().unwrap().to_vec()).unwrap();
            let w = pid_of(&el[2]);
            let rtx = rtx.clone();
            orbit::Spawn::new()
                .trap_exit()
                .spawn(move |mut ctx: orbit::Context<Term>| async move {
                    let mref = orbit::monitor(w).unwrap();
                    orbit::link(w).unwrap();
                    orbit_dist::send(w, &atom!("go")).unwrap();
                    let (mut down, mut exit) = (None, None);
                    while down.is_none() || exit.is_none() {
                        match ctx.recv().await {
                            Message::Down(d) if d.monitor == mref && d.pid == w => {
                                down = Some(d.reason)
                            }
                            Message::Exit { from, reason } if from == w => exit = Some(reason),
                            other => panic!("{label}: unexpected {other:?}"),
                        }
                    }
                    let _ = rtx.send((label, down.unwrap(), exit.unwrap()));
                })
                .unwrap();
        }
        for _ in 0..expected.len() {
            let (label, down, exit) = next(&mut results).await;
            let want = &expected.iter().find(|(l, _)| *l == label).unwrap().1;
            let reason = ExitReason::from_term(want.clone());
            assert_eq!(down, reason, "{label}: DOWN");
            assert_eq!(exit, reason, "{label}: EXIT");
            assert!(down.to_term().exact_eq(want), "{label}: {}", down.to_term());
        }
        // Idiomatic matches on what arrived.
        let e1 = ExitReason::from_term(expected[0].1.clone());
        assert!(matches!(e1.as_term(), Some(Term::Tuple(el)) if el[0] == atom("error")));
        assert!(matches!(
            ExitReason::from_term(expected[1].1.clone()),
            ExitReason::ShutdownWith(d) if *d == atom("x")
        ));
        assert_eq!(
            ExitReason::from_term(expected[6].1.clone()),
            ExitReason::Panic(Arc::from("boom"))
        );

        // A call to an Elixir process that exits while serving it: the exit term, as is
        // (and an infinite timeout is a timeout that never fires, not an overflow).
        let r: Result<Term, CallError> = orbit_dist::call(
            ("xr_crash", ex_name.as_str()),
            &atom("hi"),
            orbit::gen_server::INFINITY,
        )
        .await;
        // Remote failures name the node; `cause` is what a local call would give.
        assert_eq!(r.as_ref().err().and_then(|e| e.node()), Some(ex_name.as_str()));
        match r.as_ref().map_err(|e| e.cause()) {
            Err(CallError::Exit(reason)) => assert!(
                reason
                    .to_term()
                    .exact_eq(&tuple(vec![atom("error"), Term::Int(1)])),
                "{reason}"
            ),
            other => panic!("expected the server's exit {{error, 1}}, got {other:?}"),
        }
        // A server that never answers: Timeout, at the call's own timeout.
        let r: Result<Term, CallError> = orbit_dist::call(
            ("xr_silent", ex_name.as_str()),
            &atom("hi"),
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(
            r,
            Err(CallError::on_node(ex_name.as_str(), CallError::Timeout))
        );
        // A reply that does not decode into the expected type: Decode, naming it.
        let r: Result<i64, CallError> = orbit_dist::call(
            ("xr_odd", ex_name.as_str()),
            &atom("hi"),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            matches!(
                &r,
                Err(CallError::Decode {
                    type_name: "i64",
                    ..
                })
            ),
            "{r:?}"
        );
        // A request that does not encode: Encode naming its type, nothing sent; a plain
        // message that does not encode: NotEncodable (not a connection failure).
        let r: Result<Term, CallError> =
            orbit_dist::call(("xr_odd", ex_name.as_str()), &Unencodable, Duration::from_secs(5))
                .await;
        assert!(
            matches!(&r, Err(CallError::Encode { type_name, .. }) if type_name.ends_with("Unencodable")),
            "{r:?}"
        );
        let r = orbit_dist::send_named(&ex_name, "xr_odd", &Unencodable);
        assert!(matches!(r, Err(orbit::SendError::NotEncodable(_))), "{r:?}");
        // A node that is not there: NoConnection naming it.
        let r: Result<Term, CallError> = orbit_dist::call(
            ("any", "nobody_here@127.0.0.1"),
            &atom("hi"),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            r,
            Err(CallError::NoConnection {
                node: "nobody_here@127.0.0.1".into()
            })
        );
    });
    assert_eq!(ex.expect("whoami ", 20), "whoami true");
    // The served server stops during a call: the caller exits with its very reason.
    assert_eq!(ex.expect("stopped ", 20), "stopped {:error, 1}");
    rt().block_on(async {
        let Message::Msg(Term::Tuple(el)) = next(&mut inbox).await else {
            panic!("ready")
        };
        let ex_main = pid_of(&el[1]);
        // Exit signals from Elixir: t1 traps and receives it; t2 dies of it.
        let (ttx, mut trapped) = unbounded_channel();
        let t1 = orbit::Spawn::new()
            .trap_exit()
            .spawn(move |mut ctx: orbit::Context<Term>| async move {
                let _ = ttx.send(ctx.recv().await);
            })
            .unwrap();
        let t2 = orbit::spawn(|mut ctx: orbit::Context<Term>| async move {
            let _ = ctx.recv().await;
        })
        .unwrap();
        let msg = (
            atom!("targets"),
            orbit_dist::to_wire(t1.pid()),
            orbit_dist::to_wire(t2.pid()),
        );
        orbit_dist::send(ex_main, &msg).unwrap();
        match next(&mut trapped).await {
            Message::Exit { from, reason } => {
                assert_eq!(from, ex_main);
                assert_eq!(
                    reason,
                    ExitReason::from_term(tuple(vec![atom("error"), Term::Int(1)]))
                );
            }
            other => panic!("expected an exit signal, got {other:?}"),
        }
        let why = Term::Map(vec![(atom("why"), atom("x"))]);
        let got = tokio::time::timeout(Duration::from_secs(15), t2.wait_exit())
            .await
            .expect("t2 killed by the exit signal");
        assert_eq!(got, ExitReason::shutdown_with_term(why));
    });
}

/// The same from plain Erlang: `gen_server:call` into a served Orbit GenServer sees
/// itself as `from`, and a server stopping mid-call exits the caller with its reason.
#[test]
fn erlang_caller_is_known_and_gets_the_stop_reason() {
    let node = node("orbit_xr");
    let me = node.name();
    rt().block_on(async {
        orbit::gen_server::start_with(
            WhoAmI,
            orbit::gen_server::StartOptions {
                name: Some("xr_who2".into()),
                link: false,
                timeout: None,
            },
        )
        .await
        .unwrap();
        orbit_dist::serve_gen_server::<WhoAmI>("xr_who2");
    });
    let code = format!(
        "Orbit = '{me}', true = net_kernel:connect_node(Orbit), \
         io:format(\"whoami ~p~n\", [gen_server:call({{xr_who2, Orbit}}, who) =:= self()]), \
         R = try gen_server:call({{xr_who2, Orbit}}, stop) catch exit:{{Why, _}} -> Why end, \
         io:format(\"stopped ~p~n\", [R]), \
         receive after infinity -> ok end."
    );
    let mut erl = Peer::erl("erl_xr", COOKIE, &code);
    assert_eq!(erl.expect("whoami ", 20), "whoami true");
    assert_eq!(erl.expect("stopped ", 20), "stopped {error,1}");
}
