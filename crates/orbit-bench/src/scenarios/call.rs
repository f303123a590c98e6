//! `call`: 1M sequential request/reply calls to a counter server whose handler returns
//! `n + 1`. One caller waits for each reply before the next call; the clock runs around
//! the caller's loop.
//!
//! Subjects, each on a fresh 2-worker tokio runtime. Every call waits with a 5 s
//! timeout unless its name says `no_timeout` (ractor and kameo arm none):
//! - `orbit`: an `orbit::GenServer`, `ServerRef::call` (default 5 s timeout), called
//!   from inside an orbit process (`orbit::run_in_process`), as OTP code would;
//! - `orbit_no_timeout`: the same with `call_timeout(.., INFINITY)` (no timer);
//! - `tokio`: a raw task serving an unbounded `mpsc` of `oneshot` senders, called from a
//!   task, the reply awaited in `tokio::time::timeout(5 s, ..)`: the same work as
//!   Orbit's call;
//! - `tokio_no_timeout`: the same, awaiting the `oneshot` bare;
//! - `ractor`: an actor with an `RpcReplyPort`, `ractor::call!` (no timeout);
//! - `kameo`: an actor (default mailbox), `ask(..).await` (no timeout);
//! - `beam`: `gen_server:call/2` to `beam_bench_gs` (its default 5 s timeout).
//!
//! Interleaved rounds (the BEAM in every round, `+S 2:2`); `calls_per_s` is the median
//! of rounds, with best/min/max and `cpu_us_per_call`. Goals: orbit at least 2x
//! the BEAM and 0.8x tokio (both with a timeout), ahead of ractor and kameo; the
//! no-timeout pair is reported beside (`orbit_vs_tokio_no_timeout`, no goal). The
//! `call_timer` scenario compares timer designs for the orbit call.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::Ctx;
use crate::util::{measured, on_runtime, per_s, Rounds};

const SCENARIO: &str = "call";
const N: u64 = 1_000_000;
/// The timeout every call waits with: OTP's and Orbit's default.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n = ctx.n(N);
    let mut r = Rounds::default();
    for _ in 0..ctx.rounds {
        measured(&mut r, "orbit", n, || orbit_call(n, CALL_TIMEOUT));
        ctx.beam_round(&mut r, "gen_calls", n);
        measured(&mut r, "tokio", n, || tokio_call(n, Some(CALL_TIMEOUT)));
        measured(&mut r, "orbit_no_timeout", n, || {
            orbit_call(n, orbit::gen_server::INFINITY)
        });
        measured(&mut r, "tokio_no_timeout", n, || tokio_call(n, None));
        measured(&mut r, "ractor", n, || ractor_call(n));
        measured(&mut r, "kameo", n, || kameo_ask(n));
    }
    for s in [
        "orbit",
        "beam",
        "tokio",
        "orbit_no_timeout",
        "tokio_no_timeout",
        "ractor",
        "kameo",
    ] {
        ctx.emit_rounds(SCENARIO, s, "calls_per_s", "call", &r);
    }
    let o = r.median("orbit");
    ctx.goal(SCENARIO, "orbit_vs_beam_min_2x", o, r.median("beam"));
    ctx.goal(SCENARIO, "orbit_vs_tokio_min_0.8x", o, r.median("tokio"));
    ctx.goal(
        SCENARIO,
        "orbit_vs_tokio_no_timeout",
        r.median("orbit_no_timeout"),
        r.median("tokio_no_timeout"),
    );
    ctx.goal(SCENARIO, "orbit_vs_ractor_min_1x", o, r.median("ractor"));
    ctx.goal(SCENARIO, "orbit_vs_kameo_min_1x", o, r.median("kameo"));
}

/// The orbit counter server.
pub struct Counter(pub u64);

impl orbit::GenServer for Counter {
    type Call = ();
    type Reply = u64;
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _req: (),
        _from: &mut orbit::ReplyTo<u64>,
        _ctx: &mut orbit::ServerContext<Self>,
    ) -> orbit::CallReply<u64, ()> {
        self.0 += 1;
        orbit::CallReply::Reply(self.0)
    }
}

/// `n` sequential calls with `timeout` from an orbit process; calls per second.
pub fn orbit_call(n: u64, timeout: Duration) -> f64 {
    on_runtime(move || async move {
        let server = orbit::gen_server::start(Counter(0))
            .await
            .expect("GenServer start");
        let s = server.clone();
        let rate = orbit::run_in_process(async move {
            let t0 = Instant::now();
            for _ in 0..n {
                s.call_timeout((), timeout).await.expect("call");
            }
            per_s(n, t0.elapsed())
        })
        .await
        .expect("caller process");
        let _ = server
            .stop(orbit::ExitReason::Normal, std::time::Duration::from_secs(5))
            .await;
        rate
    })
}

/// `n` sequential oneshot calls to a task, each reply awaited within `timeout` (bare
/// when `None`); calls per second.
fn tokio_call(n: u64, timeout: Option<Duration>) -> f64 {
    on_runtime(move || async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<u64>>();
        let server = tokio::spawn(async move {
            let mut count = 0u64;
            while let Some(reply) = rx.recv().await {
                count += 1;
                let _ = reply.send(count);
            }
        });
        let t0 = Instant::now();
        for _ in 0..n {
            let (rtx, rrx) = oneshot::channel();
            tx.send(rtx).expect("server alive");
            match timeout {
                Some(t) => {
                    tokio::time::timeout(t, rrx)
                        .await
                        .expect("no timeout")
                        .expect("reply");
                }
                None => {
                    rrx.await.expect("reply");
                }
            }
        }
        let rate = per_s(n, t0.elapsed());
        drop(tx);
        server.await.expect("tokio server finished");
        rate
    })
}

/// Requests of the ractor counter.
enum RCounterMsg {
    Incr(ractor::RpcReplyPort<u64>),
}

struct RCounter;

impl ractor::Actor for RCounter {
    type Msg = RCounterMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ractor::ActorRef<RCounterMsg>,
        _: (),
    ) -> Result<u64, ractor::ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _me: ractor::ActorRef<RCounterMsg>,
        msg: RCounterMsg,
        count: &mut u64,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match msg {
            RCounterMsg::Incr(reply) => {
                *count += 1;
                let _ = reply.send(*count);
            }
        }
        Ok(())
    }
}

fn ractor_call(n: u64) -> f64 {
    on_runtime(move || async move {
        let (actor, handle) = ractor::Actor::spawn(None, RCounter, ())
            .await
            .expect("ractor spawn");
        let t0 = Instant::now();
        for _ in 0..n {
            ractor::call!(actor, RCounterMsg::Incr).expect("ractor call");
        }
        let rate = per_s(n, t0.elapsed());
        actor.stop(None);
        let _ = handle.await;
        rate
    })
}

/// The kameo counter.
#[derive(kameo::Actor)]
struct KCounter(u64);

/// Asks the kameo counter for `n + 1`.
struct Incr;

impl kameo::message::Message<Incr> for KCounter {
    type Reply = u64;
    async fn handle(&mut self, _: Incr, _ctx: &mut kameo::message::Context<Self, u64>) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn kameo_ask(n: u64) -> f64 {
    use kameo::actor::Spawn;
    on_runtime(move || async move {
        let counter = KCounter::spawn(KCounter(0));
        let t0 = Instant::now();
        for _ in 0..n {
            counter.ask(Incr).await.expect("kameo ask");
        }
        let rate = per_s(n, t0.elapsed());
        counter.kill();
        counter.wait_for_shutdown().await;
        rate
    })
}
