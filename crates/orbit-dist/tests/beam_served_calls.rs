//! How long a served GenServer call from Elixir may take: the served call is abandoned
//! at `ServeOptions::call_timeout` (its late reply then goes nowhere), and a longer
//! `call_timeout` keeps a slow reply deliverable.

mod common;

use std::time::Duration;

use common::*;
use orbit::{CallReply, GenServer, Next, ReplyTo, ServerContext};
use orbit_dist::ServeOptions;
use orbit_term::Term;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// Keeps each call's `ReplyTo`; a cast answers the kept call and reports whether the
/// reply was taken (false: the call was abandoned).
struct Deferrer {
    pending: Option<ReplyTo<Term>>,
    events: UnboundedSender<&'static str>,
}

impl GenServer for Deferrer {
    type Call = Term;
    type Reply = Term;
    type Cast = Term;
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _req: Term,
        from: &mut ReplyTo<Term>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<Term, ()> {
        self.pending = Some(from.defer());
        let _ = self.events.send("call kept");
        CallReply::NoReply
    }

    async fn handle_cast(&mut self, _req: Term, _ctx: &mut ServerContext<Self>) -> Next<()> {
        let taken = match self.pending.take() {
            Some(r) => r.reply(Term::atom("late")),
            None => false,
        };
        let _ = self.events.send(if taken {
            "reply taken"
        } else {
            "reply dropped"
        });
        Next::NoReply
    }
}

async fn start(
    name: &str,
    call_timeout: Duration,
) -> tokio::sync::mpsc::UnboundedReceiver<&'static str> {
    let (tx, rx) = unbounded_channel();
    orbit::gen_server::start_with(
        Deferrer {
            pending: None,
            events: tx,
        },
        orbit::gen_server::StartOptions {
            name: Some(name.into()),
            link: false,
            timeout: None,
        },
    )
    .await
    .unwrap();
    orbit_dist::serve_gen_server_with::<Deferrer>(name, ServeOptions { call_timeout });
    rx
}

#[test]
fn served_calls_are_abandoned_at_their_timeout_and_no_sooner() {
    let node = node("orbit_served");
    let me = node.name();
    // "short" abandons served calls after 50 ms, "long" never does. The Elixir caller
    // waits 1.5 s for each, then casts: the cast makes the server reply to the kept call.
    let (mut short, mut long) = rt().block_on(async {
        (
            start("sv_short", Duration::from_millis(50)).await,
            start("sv_long", orbit::gen_server::INFINITY).await,
        )
    });
    let code = format!(
        r#"
        orbit = :"{me}"
        true = Node.connect(orbit)
        r = try do GenServer.call({{:sv_short, orbit}}, :q, 1500) catch :exit, {{r, _}} -> r end
        IO.puts("short #{{inspect(r)}}")
        GenServer.cast({{:sv_short, orbit}}, :now)
        t = Task.async(fn -> GenServer.call({{:sv_long, orbit}}, :q, 10000) end)
        IO.puts("long waiting")
        IO.puts("long #{{inspect(Task.await(t, 15000))}}")
        IO.gets("")
        "#
    );
    let mut ex = Peer::elixir("ex_served", COOKIE, &code);
    let next = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<&'static str>| {
        rt().block_on(async {
            tokio::time::timeout(Duration::from_secs(15), rx.recv())
                .await
                .expect("an event within 15 s")
                .expect("server alive")
        })
    };
    assert_eq!(next(&mut short), "call kept");
    // The Elixir caller gives up at 1.5 s; the served call was abandoned at 50 ms, so the
    // late reply finds nobody waiting.
    assert_eq!(ex.expect("short ", 20), "short :timeout");
    assert_eq!(next(&mut short), "reply dropped");
    // With an infinite served timeout, the kept call is answered when the test says so.
    assert_eq!(next(&mut long), "call kept");
    ex.expect("long waiting", 20);
    rt().block_on(async {
        orbit::gen_server::ServerRef::<Deferrer>::whereis("sv_long")
            .unwrap()
            .cast(Term::atom("now"));
    });
    assert_eq!(next(&mut long), "reply taken");
    assert_eq!(ex.expect("long ", 20), "long :late");
}
