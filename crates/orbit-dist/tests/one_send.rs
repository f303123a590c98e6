//! One send and one call, local or remote (issue 18 item 3): `orbit::send` of a serde
//! type to a pid or `(name, node)` of another Orbit node and of an Elixir node,
//! `orbit::gen_server::call`/`cast` to a GenServer on another node, the error at the
//! send for a type the wire does not know, a call to a GenServer nobody served failing
//! at once, and remote errors naming the node. The second Orbit node is an `orbit-node`
//! child process (one node per OS process).

mod common;

use std::time::{Duration, Instant};

use common::*;
use orbit::{CallError, Message, Pid, SendError};
use orbit_term::Term;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Point {
    x: i64,
    y: i64,
    label: String,
}

fn point(x: i64) -> Point {
    Point {
        x,
        y: -x,
        label: format!("p{x}"),
    }
}

/// A process that forwards every message it receives; its pid.
fn inbox() -> (Pid, UnboundedReceiver<Term>) {
    let (tx, rx) = unbounded_channel();
    let p = orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
        while let Message::Msg(t) = ctx.recv().await {
            if tx.send(t).is_err() {
                break;
            }
        }
    })
    .unwrap();
    (p.pid(), rx)
}

async fn next(rx: &mut UnboundedReceiver<Term>) -> Term {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a message within 10 s")
        .expect("inbox alive")
}

/// `{MirrorPid, Msg}` from `orbit-node`'s `mirror`.
fn mirrored(t: Term) -> (Pid, Term) {
    match t {
        Term::Tuple(mut el) if el.len() == 2 => {
            let msg = el.pop().unwrap();
            match el.pop().unwrap() {
                Term::Pid(p) => (orbit_dist::from_wire(&p), msg),
                other => panic!("expected the mirror's pid, got {other}"),
            }
        }
        other => panic!("expected {{Pid, Msg}}, got {other}"),
    }
}

/// The caller-side view of `orbit-node`'s `counter` (Call `CounterReq`, Cast `i64`,
/// Reply `i64`): never started here, only named in `orbit::gen_server::call::<NodeCounter>`.
struct NodeCounter;

impl orbit::GenServer for NodeCounter {
    type Call = CounterReq;
    type Reply = i64;
    type Cast = i64;
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _: CounterReq,
        _from: &mut orbit::ReplyTo<i64>,
        _ctx: &mut orbit::ServerContext<Self>,
    ) -> orbit::CallReply<i64, ()> {
        orbit::CallReply::Reply(0)
    }
}

#[test]
fn orbit_send_and_call_reach_another_orbit_node() {
    let a = node("one_send_a");
    let rt = rt();
    let b = orbit_node("one_send_b", false);
    let bn = b.name.clone();
    rt.block_on(async {
        assert!(a.connect(&bn).await);
        let (me, mut rx) = inbox();
        let wire_me = orbit_dist::to_wire(me);

        // Not registered for the wire: the error is at the send, names the type and the fix.
        match orbit::send(("mirror", bn.as_str()), (wire_me.clone(), point(0))) {
            Err(SendError::NotEncodable(why)) => assert!(
                why.contains("Point") && why.contains("orbit_dist::remote::<"),
                "{why}"
            ),
            other => panic!("expected NotEncodable, got {other:?}"),
        }
        // Also by pid, and as a GenServer request.
        let remote_pid = Pid::remote(&bn, 1, 0, 0);
        assert!(matches!(
            orbit::send(remote_pid, point(0)),
            Err(SendError::NotEncodable(_))
        ));
        let r = orbit::gen_server::call::<NodeCounter>(("counter", bn.as_str()), CounterReq::get())
            .await;
        assert!(
            matches!(&r, Err(CallError::Encode { type_name, .. }) if type_name.contains("CounterReq")),
            "{r:?}"
        );

        // One line registers the type; then `{name, node}` and the remote pid both work.
        orbit_dist::remote::<(orbit_term::Pid, Point)>();
        orbit::send(("mirror", bn.as_str()), (wire_me.clone(), point(1))).unwrap();
        let (mirror, got) = mirrored(next(&mut rx).await);
        assert!(!mirror.is_local());
        assert_eq!(orbit_term::from_term::<Point>(&got).unwrap(), point(1));
        orbit::send(mirror, (wire_me.clone(), point(2))).unwrap();
        let (again, got) = mirrored(next(&mut rx).await);
        assert_eq!(again, mirror);
        assert_eq!(orbit_term::from_term::<Point>(&got).unwrap(), point(2));
        // Built-in types need no registration; a Term arrives as itself.
        orbit::send(mirror, Term::tuple(vec![Term::Pid(Box::new(wire_me.clone())), Term::Int(7)]))
            .unwrap();
        assert_eq!(mirrored(next(&mut rx).await).1, Term::Int(7));

        // orbit::gen_server::call / cast to a served GenServer on the other node.
        orbit_dist::remote_server::<NodeCounter>();
        let v = orbit::gen_server::call::<NodeCounter>(("counter", bn.as_str()), CounterReq::add(4))
            .await
            .unwrap();
        assert_eq!(v, 4);
        orbit::gen_server::cast::<NodeCounter>(("counter", bn.as_str()), 6);
        let v = orbit::gen_server::call::<NodeCounter>(("counter", bn.as_str()), CounterReq::get())
            .await
            .unwrap();
        assert_eq!(v, 10, "the cast went before the call on the same connection");

        // A GenServer that runs there but was never served fails at once, both APIs.
        let t0 = Instant::now();
        let r: Result<i64, _> =
            orbit_dist::call(("unserved", bn.as_str()), &CounterReq::get(), Duration::from_secs(5))
                .await;
        let took = t0.elapsed();
        assert_eq!(
            r,
            Err(CallError::NotServed {
                node: bn.clone(),
                server: "unserved".into()
            })
        );
        assert!(took < Duration::from_secs(1), "took {took:?}");
        let e = r.unwrap_err().to_string();
        assert!(e.contains("remote_server") && e.contains(&bn), "{e}");
        let t0 = Instant::now();
        let r = orbit::gen_server::call::<NodeCounter>(("unserved", bn.as_str()), CounterReq::get())
            .await;
        assert!(matches!(r, Err(CallError::NotServed { .. })), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(1));
        // Many at once: every one ends at once with NotServed, none waits for a timeout,
        // and the served counter on the same node still answers afterwards.
        let t0 = Instant::now();
        let calls: Vec<_> = (0..50)
            .map(|_| {
                let bn = bn.clone();
                tokio::spawn(async move {
                    orbit_dist::call::<_, i64>(
                        ("unserved", bn.as_str()),
                        &CounterReq::get(),
                        Duration::from_secs(5),
                    )
                    .await
                })
            })
            .collect();
        let mut not_served = 0;
        for c in calls {
            if matches!(c.await.unwrap(), Err(CallError::NotServed { .. })) {
                not_served += 1;
            }
        }
        assert_eq!(not_served, 50);
        assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
        let v = orbit::gen_server::call::<NodeCounter>(("counter", bn.as_str()), CounterReq::get())
            .await
            .unwrap();
        assert_eq!(v, 10);

        // Remote noproc names the node, and matches like a local one through `cause`.
        let r: Result<i64, _> =
            orbit_dist::call(("no_such", bn.as_str()), &CounterReq::get(), Duration::from_secs(5))
                .await;
        let e = r.unwrap_err();
        assert_eq!(e.cause(), &CallError::NoProc);
        assert_eq!(e.node(), Some(bn.as_str()));
        assert!(e.to_string().contains(&bn), "{e}");
        let r = orbit::gen_server::call::<NodeCounter>(("no_such", bn.as_str()), CounterReq::get())
            .await;
        assert_eq!(r, Err(CallError::on_node(bn.clone(), CallError::NoProc)));

        // An unreachable node is NoConnection naming it, for sends and calls.
        let gone = "nobody_here@127.0.0.1";
        let r = orbit::gen_server::call::<NodeCounter>(("counter", gone), CounterReq::get()).await;
        assert_eq!(r, Err(CallError::NoConnection { node: gone.into() }));
    });
}

#[test]
fn orbit_send_reaches_an_elixir_process_as_the_serde_term() {
    if std::process::Command::new("elixir")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: `elixir` is not on PATH (this test needs a real Elixir node)");
        return;
    }
    let node = node("one_send_a");
    let me = node.name();
    let rt = rt();
    let (inbox_pid, mut rx) = rt.block_on(async {
        // A GenServer nobody served: a BEAM caller gets OTP's behaviour (no reply).
        orbit::gen_server::start_named(Counter(0), "one_send_unserved", false)
            .await
            .unwrap();
        inbox()
    });
    rt.block_on(async { orbit::register("one_send_inbox", inbox_pid).unwrap() });
    let code = format!(
        r##"
        orbit = :"{me}"
        true = Node.connect(orbit)
        Process.register(self(), :ex_inbox)
        send({{:one_send_inbox, orbit}}, {{:hello, self()}})
        for tag <- ["by_pid", "by_name"] do
          receive do
            m -> IO.puts("#{{tag}} #{{inspect(m)}}")
          after 10000 -> IO.puts("#{{tag}} none")
          end
        end
        try do
          GenServer.call({{:one_send_unserved, orbit}}, %{{op: "get", n: 0}}, 500)
        catch
          :exit, {{r, _}} -> IO.puts("unserved #{{inspect(r)}}")
        end
        IO.gets("")
        "##
    );
    let mut ex = Peer::elixir("one_send_ex", COOKIE, &code);
    let exname = ex.name.clone();
    rt.block_on(async {
        let Term::Tuple(el) = next(&mut rx).await else {
            panic!("hello")
        };
        let Term::Pid(p) = &el[1] else {
            panic!("a pid")
        };
        let ex_pid = orbit_dist::from_wire(p);
        orbit_dist::remote::<Point>();
        orbit::send(ex_pid, point(1)).unwrap();
        orbit::send(("ex_inbox", exname.as_str()), point(2)).unwrap();
    });
    assert_eq!(
        ex.expect("by_pid ", 15),
        r#"by_pid %{label: "p1", x: 1, y: -1}"#
    );
    assert_eq!(
        ex.expect("by_name ", 15),
        r#"by_name %{label: "p2", x: 2, y: -2}"#
    );
    // No fake reply or exit for a BEAM caller: it times out, as with a BEAM process
    // that is not a gen_server (the warning is logged on this side).
    assert_eq!(ex.expect("unserved ", 15), "unserved :timeout");
}
