//! Messages, GenServer calls, links and monitors between an Orbit node and a real Elixir
//! node; killing the Elixir node gives `noconnection` on the Orbit side.

mod common;

use std::time::Duration;

use common::*;
use orbit::{ExitReason, Message, Pid};
use orbit_term::{atom, Term};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// A trapping process that reports everything it receives.
fn observer(tx: UnboundedSender<Message<Term>>) -> Pid {
    orbit::Spawn::new()
        .trap_exit()
        .spawn(move |mut ctx: orbit::Context<Term>| async move {
            loop {
                let m = ctx.recv().await;
                if tx.send(m).is_err() {
                    break;
                }
            }
        })
        .unwrap()
        .pid()
}

async fn next(rx: &mut UnboundedReceiver<Message<Term>>) -> Message<Term> {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a message within 15s")
        .expect("observer alive")
}

fn pid_of(t: &Term) -> Pid {
    match t {
        Term::Pid(p) => orbit_dist::convert::pid_from_wire(p),
        other => panic!("expected a pid, got {other}"),
    }
}

#[test]
fn messages_calls_links_and_monitors_with_elixir() {
    let node = node("orbit_msg");
    let me = node.name();
    let rt = rt();
    let (inbox_tx, mut inbox) = unbounded_channel();
    let inbox_pid = rt.block_on(async {
        let p = observer(inbox_tx);
        orbit::register("orbit_inbox", p).unwrap();
        serve_counter("counter", 0).await;
        p
    });
    let _ = inbox_pid;
    let code = format!(
        r#"
        orbit = :"{me}"
        true = Node.connect(orbit)
        Process.register(self(), :ex_main)
        send({{:orbit_inbox, orbit}}, {{:hello, self()}})
        receive do {{:reply, x}} -> IO.puts("reply #{{x}}") after 10000 -> IO.puts("reply none") end
        IO.puts("call1 #{{GenServer.call({{:counter, orbit}}, %{{op: "add", n: 5}})}}")
        IO.puts("call2 #{{GenServer.call({{:counter, orbit}}, %{{op: "add", n: 2}})}}")
        GenServer.cast({{:counter, orbit}}, %{{op: "add", n: 10}})
        IO.puts("call3 #{{GenServer.call({{:counter, orbit}}, %{{op: "get", n: 0}})}}")
        {{:ok, _}} = Agent.start(fn -> %{{"k" => 42}} end, name: :ex_agent)
        w = spawn(fn -> receive do :die -> exit(:bye) end end)
        send({{:orbit_inbox, orbit}}, {{:watched, w}})
        IO.puts("agent ready")
        receive do
          {{:orbit_proc, p}} ->
            ref = Process.monitor(p)
            send(p, :go)
            receive do {{:DOWN, ^ref, :process, ^p, r}} -> IO.puts("down #{{inspect(r)}}") after 10000 -> IO.puts("down none") end
        after 20000 -> IO.puts("no orbit_proc")
        end
        IO.gets("")
        "#
    );
    let mut ex = Peer::elixir("ex_msg", COOKIE, &code);
    let ex_main = rt.block_on(async {
        // Elixir -> Orbit by name; Orbit -> Elixir by pid.
        let Message::Msg(Term::Tuple(el)) = next(&mut inbox).await else {
            panic!("hello")
        };
        assert_eq!(el[0], Term::atom("hello"));
        let ex_main = pid_of(&el[1]);
        assert!(!ex_main.is_local());
        orbit_dist::send(ex_main, &(atom!("reply"), 7)).unwrap();
        ex_main
    });
    assert_eq!(ex.expect("reply ", 15), "reply 7");
    // Elixir -> Orbit GenServer calls (alias tags) and a cast.
    assert_eq!(ex.expect("call1 ", 15), "call1 5");
    assert_eq!(ex.expect("call2 ", 15), "call2 7");
    assert_eq!(ex.expect("call3 ", 15), "call3 17");
    ex.expect("agent ready", 15);
    let exname = ex.name.clone();
    rt.block_on(async {
        // Orbit -> Elixir Agent: call and cast.
        let get = Term::tuple(vec![
            Term::atom("get"),
            Term::tuple(vec![
                Term::atom("Elixir.Map"),
                Term::atom("get"),
                Term::List(vec![Term::Binary(b"k".to_vec())]),
            ]),
        ]);
        let v: i64 = orbit_dist::call(("ex_agent", exname.as_str()), &get, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(v, 42);
        let put = Term::tuple(vec![
            Term::atom("cast"),
            Term::tuple(vec![
                Term::atom("Elixir.Map"),
                Term::atom("put"),
                Term::List(vec![Term::Binary(b"k".to_vec()), Term::Int(43)]),
            ]),
        ]);
        orbit_dist::cast(("ex_agent", exname.as_str()), &put).unwrap();
        let v: i64 = orbit_dist::call(("ex_agent", exname.as_str()), &get, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(v, 43);
        // A call to a name that is not registered fails fast with noproc.
        let r: Result<i64, _> =
            orbit_dist::call(("no_such", exname.as_str()), &get, Duration::from_secs(5)).await;
        assert_eq!(
            r,
            Err(orbit_dist::CallError::on_node(
                exname.as_str(),
                orbit_dist::CallError::NoProc
            ))
        );

        // Orbit monitors and links to an Elixir process, which exits with :bye.
        let Message::Msg(Term::Tuple(el)) = next(&mut inbox).await else {
            panic!("watched")
        };
        let w = pid_of(&el[1]);
        let (otx, mut orx) = unbounded_channel();
        let watcher = orbit::Spawn::new()
            .trap_exit()
            .spawn(move |mut ctx: orbit::Context<Term>| async move {
                let r = orbit::monitor(w).unwrap();
                orbit::link(w).unwrap();
                let _ = otx.send(Message::Msg(Term::atom("linked")));
                for _ in 0..2 {
                    let m = ctx.recv().await;
                    if let Message::Down(d) = &m {
                        assert_eq!(d.monitor, r);
                    }
                    let _ = otx.send(m);
                }
            })
            .unwrap();
        let _ = watcher;
        assert!(matches!(next(&mut orx).await, Message::Msg(_)));
        orbit_dist::send(w, &atom!("die")).unwrap();
        let mut got = Vec::new();
        for _ in 0..2 {
            match next(&mut orx).await {
                Message::Down(d) => {
                    assert_eq!(d.pid, w);
                    got.push(format!("down {}", d.reason));
                }
                Message::Exit { from, reason } => {
                    assert_eq!(from, w);
                    got.push(format!("exit {reason}"));
                }
                m => panic!("unexpected {m:?}"),
            }
        }
        got.sort();
        assert_eq!(got, vec!["down bye".to_string(), "exit bye".to_string()]);

        // Elixir monitors an Orbit process, which exits with an error.
        let p = orbit::spawn(|mut ctx: orbit::Context<Term>| async move {
            let _ = ctx.recv().await;
            ExitReason::error("oops")
        })
        .unwrap()
        .pid();
        let msg = (atom!("orbit_proc"), orbit_dist::to_wire(p));
        orbit_dist::send_named(&exname, "ex_main", &msg).unwrap();
    });
    // A text reason is a binary, as Elixir's `exit("oops")`.
    assert_eq!(ex.expect("down ", 15), "down \"oops\"");

    // Killing the Elixir node: monitors fire and links exit with noconnection.
    let (dtx, mut drx) = unbounded_channel();
    rt.block_on(async {
        orbit::Spawn::new()
            .trap_exit()
            .spawn(move |mut ctx: orbit::Context<Term>| async move {
                orbit::monitor(ex_main).unwrap();
                orbit::link(ex_main).unwrap();
                let _ = dtx.send(None);
                for _ in 0..2 {
                    let _ = dtx.send(Some(ctx.recv().await));
                }
            })
            .unwrap();
        assert!(tokio::time::timeout(Duration::from_secs(5), drx.recv())
            .await
            .unwrap()
            .unwrap()
            .is_none());
    });
    ex.kill();
    rt.block_on(async {
        let mut got = Vec::new();
        for _ in 0..2 {
            let m = tokio::time::timeout(Duration::from_secs(20), drx.recv())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            match m {
                Message::Down(d) => got.push(format!("down {}", d.reason)),
                Message::Exit { reason, .. } => got.push(format!("exit {reason}")),
                m => panic!("unexpected {m:?}"),
            }
        }
        got.sort();
        assert_eq!(
            got,
            vec![
                "down noconnection".to_string(),
                "exit noconnection".to_string()
            ]
        );
    });
}

/// Takes only structs (`ExStruct`), and answers with the struct's module.
struct ModuleEcho;

impl orbit::GenServer for ModuleEcho {
    type Call = orbit_term::ExStruct<CounterReq>;
    type Reply = String;
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        req: orbit_term::ExStruct<CounterReq>,
        _from: &mut orbit::ReplyTo<String>,
        _ctx: &mut orbit::ServerContext<Self>,
    ) -> orbit::CallReply<String, ()> {
        let v = &req.value;
        orbit::CallReply::Reply(format!("{} {} {}", req.module.as_str(), v.op, v.n))
    }
}

#[test]
fn elixir_calls_typed_gen_servers_with_structs_and_raw_call_tags() {
    let node = node("orbit_msg");
    let me = node.name();
    rt().block_on(async {
        let opts = |name: &str| orbit::gen_server::StartOptions {
            name: Some(name.into()),
            link: false,
            timeout: None,
        };
        serve_counter("scounter", 0).await;
        orbit::gen_server::start_with(ModuleEcho, opts("modecho"))
            .await
            .unwrap();
        orbit_dist::serve_gen_server::<ModuleEcho>("modecho");
    });
    // `Req` is defined at run time (a struct cannot be used in the script that defines
    // it). A bad request must end the call at once: the 5 s call timeout would print
    // `bad {:timeout, ...}` instead.
    let code = format!(
        r#"
        Code.eval_string(~s(defmodule Req do defstruct op: "get", n: 0 end))
        req = fn kv -> struct(Req, kv) end
        orbit = :"{me}"
        true = Node.connect(orbit)
        IO.puts("s1 #{{GenServer.call({{:scounter, orbit}}, req.(op: "add", n: 5))}}")
        IO.puts("m1 #{{GenServer.call({{:modecho, orbit}}, req.(op: "add", n: 1))}}")
        bad = fn server, req ->
          try do
            GenServer.call({{server, orbit}}, req, 5000)
          catch
            :exit, {{reason, {{GenServer, :call, _}}}} -> inspect(reason)
          end
        end
        IO.puts("bad1 #{{bad.(:scounter, %{{op: "add"}})}}")
        IO.puts("bad2 #{{bad.(:modecho, %{{op: "add", n: 1}})}}")
        ref = make_ref()
        send({{:scounter, orbit}}, {{:"$gen_call", {{self(), ref}}, req.(op: "add", n: 1)}})
        receive do {{^ref, v}} -> IO.puts("plain #{{v}}") after 5000 -> IO.puts("plain none") end
        a = :erlang.alias()
        send({{:scounter, orbit}}, {{:"$gen_call", {{self(), [:alias | a]}}, req.([])}})
        receive do {{[:alias | ^a], v}} -> IO.puts("alias #{{v}}") after 5000 -> IO.puts("alias none") end
        GenServer.cast({{:scounter, orbit}}, req.(op: "add", n: 10))
        IO.puts("s2 #{{GenServer.call({{:scounter, orbit}}, req.([]))}}")
        IO.gets("")
        "#
    );
    let mut ex = Peer::elixir("ex_struct", COOKIE, &code);
    assert_eq!(ex.expect("s1 ", 20), "s1 5");
    assert_eq!(ex.expect("m1 ", 10), "m1 Elixir.Req add 1");
    let l = ex.expect("bad1 ", 10);
    assert!(
        l.starts_with("bad1 {:bad_request,") && l.contains("missing field `n`"),
        "{l}"
    );
    let l = ex.expect("bad2 ", 10);
    assert!(
        l.starts_with("bad2 {:bad_request,") && l.contains("an Elixir struct"),
        "{l}"
    );
    assert_eq!(ex.expect("plain ", 10), "plain 6");
    assert_eq!(ex.expect("alias ", 10), "alias 6");
    assert_eq!(ex.expect("s2 ", 10), "s2 16");
    // The servers lived through the bad requests.
    rt().block_on(async {
        assert!(orbit::whereis("scounter").is_some());
        assert!(orbit::whereis("modecho").is_some());
    });
}

#[test]
fn unlink_and_demonitor_across_nodes_with_elixir() {
    let node = node("orbit_msg");
    let me = node.name();
    let rt = rt();
    let (tx, mut inbox) = unbounded_channel();
    rt.block_on(async {
        orbit::register("ul_inbox", observer(tx)).unwrap();
    });
    // `w` answers {:links, to} with its number of links and exits on :die.
    let code = format!(
        r#"
        orbit = :"{me}"
        true = Node.connect(orbit)
        loop = fn loop ->
          receive do
            {{:links, to}} ->
              {{:links, l}} = Process.info(self(), :links)
              send(to, {{:links, length(l)}})
              loop.(loop)
            :die -> exit(:bye)
          end
        end
        w = spawn(fn -> loop.(loop) end)
        send({{:ul_inbox, orbit}}, {{:w, w}})
        IO.gets("")
        "#
    );
    let _ex = Peer::elixir("ex_unlink", COOKIE, &code);
    rt.block_on(async {
        let Message::Msg(Term::Tuple(el)) = next(&mut inbox).await else {
            panic!("w")
        };
        let w = pid_of(&el[1]);
        let (otx, mut orx) = unbounded_channel();
        orbit::Spawn::new()
            .trap_exit()
            .spawn(move |mut ctx: orbit::Context<Term>| async move {
                let me = orbit_dist::to_wire(orbit::self_pid().unwrap());
                let ask = (atom!("links"), me);
                let mut links = Vec::new();
                orbit::link(w).unwrap();
                orbit_dist::send(w, &ask).unwrap();
                links.push(ctx.recv().await);
                // UNLINK_ID reaches w before the next message from this process.
                orbit::unlink(w).unwrap();
                orbit_dist::send(w, &ask).unwrap();
                links.push(ctx.recv().await);
                let _ = otx.send(links);
                // Two monitors; the first is taken off (DEMONITOR_P) before w dies.
                let r1 = orbit::monitor(w).unwrap();
                let r2 = orbit::monitor(w).unwrap();
                assert!(orbit::demonitor(r1, true).unwrap());
                orbit_dist::send(w, &atom!("die")).unwrap();
                let down = ctx.recv().await;
                // Anything from the dropped link or monitor would be here by now:
                // w's signals to this process travel in order on one connection.
                let wrong_ref = !matches!(&down, Message::Down(d) if d.monitor == r2);
                let mut got = vec![down];
                if wrong_ref {
                    got.push(Message::Msg(Term::atom("not_the_second_monitor")));
                }
                got.extend(ctx.recv_timeout(Duration::from_millis(200)).await);
                let _ = otx.send(got);
            })
            .unwrap();
        let links = tokio::time::timeout(Duration::from_secs(10), orx.recv())
            .await
            .unwrap()
            .unwrap();
        let counts: Vec<String> = links
            .iter()
            .map(|m| match m {
                Message::Msg(t) => t.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(counts, vec!["{links, 1}", "{links, 0}"]);
        let got = tokio::time::timeout(Duration::from_secs(10), orx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), 1, "only the second monitor's DOWN: {got:?}");
        match &got[0] {
            Message::Down(d) => {
                assert_eq!(d.pid, w);
                assert_eq!(d.reason.to_string(), "bye");
            }
            other => panic!("expected the DOWN of the second monitor, got {other:?}"),
        }
    });
}

/// An Elixir process links to an Orbit process (the link is made on the Elixir side):
/// the Orbit process lists the link, and its exit reaches Elixir as `{:EXIT, pid, reason}`
/// while a non-trapping linked Elixir process dies with the same reason.
#[test]
fn elixir_links_to_an_orbit_process_and_gets_its_exit() {
    let node = node("orbit_msg");
    let me = node.name();
    let rt = rt();
    let (tx, mut inbox) = unbounded_channel();
    let p = rt.block_on(async {
        orbit::register("lk_inbox", observer(tx)).unwrap();
        // The linkee waits for `stop`, then exits with reason `boom`.
        let p = orbit::spawn(|mut ctx: orbit::Context<Term>| async move {
            while let Message::Msg(t) = ctx.recv().await {
                if t == Term::atom("stop") {
                    return ExitReason::error("boom");
                }
            }
            ExitReason::Normal
        })
        .unwrap()
        .pid();
        p
    });
    // The Elixir side learns the pid from a message sent by Orbit.
    let code = format!(
        r#"
        orbit = :"{me}"
        true = Node.connect(orbit)
        Process.flag(:trap_exit, true)
        Process.register(self(), :ex_link_main)
        send({{:lk_inbox, orbit}}, {{:ready, self()}})
        p = receive do {{:pid, p}} -> p after 10_000 -> exit(:no_pid) end
        bystander = spawn(fn -> Process.link(p); send(:ex_link_main, :bystander_linked); receive do _ -> :ok end end)
        receive do :bystander_linked -> :ok end
        ref = Process.monitor(bystander)
        Process.link(p)
        send({{:lk_inbox, orbit}}, :linked)
        receive do {{:EXIT, ^p, r}} -> IO.puts("exit #{{inspect(r)}}") after 10_000 -> IO.puts("exit none") end
        receive do {{:DOWN, ^ref, :process, _, r}} -> IO.puts("bystander #{{inspect(r)}}") after 10_000 -> IO.puts("bystander alive") end
        IO.gets("")
        "#
    );
    let mut ex = Peer::elixir("ex_link", COOKIE, &code);
    rt.block_on(async {
        let Message::Msg(Term::Tuple(el)) = next(&mut inbox).await else {
            panic!("ready")
        };
        let ex_pid = pid_of(&el[1]);
        orbit_dist::send(ex_pid, &(atom!("pid"), orbit_dist::to_wire(p))).unwrap();
        assert!(matches!(next(&mut inbox).await, Message::Msg(t) if t == Term::atom("linked")));
        // The link made on the Elixir side is on the Orbit process too.
        let links = orbit::process_info(p).unwrap().links;
        assert!(links.contains(&ex_pid), "{links:?} lacks {ex_pid}");
        orbit::send(p, Term::atom("stop")).unwrap();
    });
    assert_eq!(ex.expect("exit ", 20), "exit \"boom\"");
    assert_eq!(ex.expect("bystander ", 20), "bystander \"boom\"");
}

/// A served GenServer stays reachable by pid after it is restarted under its name: the
/// new pid was never seen by `serve_gen_server`, which captured the first pid only (calls
/// to the new pid were dropped until the caller's timeout).
#[test]
fn elixir_calls_a_served_gen_server_by_pid_across_restarts() {
    let node = node("orbit_msg");
    let me = node.name();
    let start = || async {
        orbit::gen_server::start_with(
            Counter(0),
            orbit::gen_server::StartOptions {
                name: Some("rcounter".into()),
                link: false,
                timeout: None,
            },
        )
        .await
        .expect("counter started")
    };
    let first = rt().block_on(async {
        let server = start().await;
        orbit_dist::serve_gen_server::<Counter>("rcounter");
        server
    });
    let code = format!(
        r#"
        orbit = :"{me}"
        true = Node.connect(orbit)
        Process.register(self(), :ex_main)
        IO.puts("ready")
        for round <- 1..3 do
          pid = receive do {{:server, p}} -> p after 15000 -> exit(:no_pid) end
          r = try do
            GenServer.call(pid, %{{op: "add", n: round}}, 5000)
          catch
            :exit, {{reason, _}} -> inspect(reason)
          end
          IO.puts("call#{{round}} #{{r}}")
        end
        IO.gets("")
        "#
    );
    let mut ex = Peer::elixir("ex_restart", COOKIE, &code);
    ex.expect("ready", 20);
    let ex_name = ex.name.clone();
    let tell = |pid: Pid| {
        let msg = Term::tuple(vec![
            Term::atom("server"),
            Term::Pid(Box::new(orbit_dist::to_wire(pid))),
        ]);
        orbit_dist::send_named(&ex_name, "ex_main", &msg).expect("sent to ex_main");
    };
    rt().block_on(async { tell(first.pid()) });
    assert_eq!(ex.expect("call1 ", 10), "call1 1");
    let mut last = first;
    for round in 2..=3 {
        let next = rt().block_on(async {
            // A restart: the server dies and a new one takes the name.
            orbit::signal::exit(last.pid(), ExitReason::Kill);
            last.wait_exit().await;
            let server = start().await;
            tell(server.pid());
            server
        });
        assert_ne!(next.pid(), last.pid());
        // A fresh counter: the call's own increment, not a timeout.
        assert_eq!(
            ex.expect(&format!("call{round} "), 10),
            format!("call{round} {round}")
        );
        last = next;
    }
}
