//! `pingpong`: 1M round trips between two processes. The pinger sends a ping, waits for
//! the pong, and repeats; the clock runs inside the pinger from its first ping to its
//! last pong.
//!
//! As on the BEAM (`{ping, self()}`), orbit's and tokio's pings carry the sender's
//! address (a cloned `Handle` / reply sender); ractor and kameo still learn it once at
//! setup (not yet converted). Pongs are empty. Subjects, each on a fresh 2-worker
//! tokio runtime:
//! - `orbit`: two `orbit::spawn` processes, `Handle::send` both ways;
//! - `tokio`: two raw tasks, pings on an unbounded `mpsc` channel carrying the reply sender;
//! - `ractor`: two actors, `cast` both ways;
//! - `kameo`: two actors (default mailboxes), `tell(..).await` both ways;
//! - `beam`: `beam_bench:run([pingpong, N])` (`{ping, self()}` / `pong`), `+S 2:2`.
//!
//! Interleaved rounds, the BEAM in every round; `roundtrips_per_s` is the median of
//! rounds, with best/min/max and `cpu_us_per_roundtrip`; ratios use medians. Goals: orbit at least
//! 1x tokio, ahead of the BEAM, ractor and kameo.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::Ctx;
use crate::util::{measured, on_runtime, per_s, Rounds};

const SCENARIO: &str = "pingpong";
const N: u64 = 1_000_000;

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n = ctx.n(N);
    let mut r = Rounds::default();
    for _ in 0..ctx.rounds {
        measured(&mut r, "orbit", n, || orbit(n));
        ctx.beam_round(&mut r, "pingpong", n);
        measured(&mut r, "tokio", n, || tokio_tasks(n));
        measured(&mut r, "ractor", n, || ractor_pingpong(n));
        measured(&mut r, "kameo", n, || kameo_pingpong(n));
    }
    for s in ["orbit", "beam", "tokio", "ractor", "kameo"] {
        ctx.emit_rounds(SCENARIO, s, "roundtrips_per_s", "roundtrip", &r);
    }
    let o = r.median("orbit");
    ctx.goal(SCENARIO, "orbit_vs_tokio_min_1x", o, r.median("tokio"));
    ctx.goal(SCENARIO, "orbit_vs_beam_min_1x", o, r.median("beam"));
    ctx.goal(SCENARIO, "orbit_vs_ractor_min_1x", o, r.median("ractor"));
    ctx.goal(SCENARIO, "orbit_vs_kameo_min_1x", o, r.median("kameo"));
}

/// What the orbit ponger receives.
enum Pong {
    /// `{ping, self()}`: the sender's handle travels with every ping, as on the BEAM.
    Ping(orbit::Handle<()>),
    Stop,
}

/// Orbit: `n` round trips between two processes; returns round trips per second.
pub fn orbit(n: u64) -> f64 {
    on_runtime(move || async move {
        let ponger = orbit::spawn(|mut ctx: orbit::Context<Pong>| async move {
            loop {
                match ctx.recv().await {
                    orbit::Message::Msg(Pong::Ping(from)) => {
                        let _ = from.send(());
                    }
                    orbit::Message::Msg(Pong::Stop) => break,
                    _ => {}
                }
            }
        })
        .expect("orbit::spawn");
        let (done_tx, done_rx) = oneshot::channel::<Duration>();
        let pong = ponger.clone();
        orbit::spawn(move |mut ctx: orbit::Context<()>| async move {
            let me = ctx.handle();
            let t0 = Instant::now();
            for _ in 0..n {
                let _ = pong.send(Pong::Ping(me.clone()));
                while !matches!(ctx.recv().await, orbit::Message::Msg(())) {}
            }
            let _ = done_tx.send(t0.elapsed());
            let _ = pong.send(Pong::Stop);
        })
        .expect("orbit::spawn");
        let took = done_rx.await.expect("orbit pinger finished");
        ponger.wait_exit().await;
        per_s(n, took)
    })
}

/// Raw tokio: two tasks, two unbounded mpsc channels.
fn tokio_tasks(n: u64) -> f64 {
    on_runtime(move || async move {
        // Each ping carries the reply sender, like `{ping, self()}`.
        let (ping_tx, mut ping_rx) = mpsc::unbounded_channel::<mpsc::UnboundedSender<()>>();
        let (pong_tx, mut pong_rx) = mpsc::unbounded_channel::<()>();
        let ponger = tokio::spawn(async move {
            while let Some(from) = ping_rx.recv().await {
                if from.send(()).is_err() {
                    break;
                }
            }
        });
        let pinger = tokio::spawn(async move {
            let t0 = Instant::now();
            for _ in 0..n {
                ping_tx.send(pong_tx.clone()).expect("ponger alive");
                pong_rx.recv().await.expect("pong");
            }
            t0.elapsed()
        });
        let took = pinger.await.expect("tokio pinger finished");
        ponger.await.expect("tokio ponger finished");
        per_s(n, took)
    })
}

/// Messages of the ractor ponger.
enum RPong {
    Hello(ractor::ActorRef<RPing>),
    Ping,
}

/// Messages of the ractor pinger.
enum RPing {
    Start,
    Pong,
}

struct RPonger;

impl ractor::Actor for RPonger {
    type Msg = RPong;
    type State = Option<ractor::ActorRef<RPing>>;
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ractor::ActorRef<RPong>,
        _: (),
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(None)
    }

    async fn handle(
        &self,
        _me: ractor::ActorRef<RPong>,
        msg: RPong,
        peer: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match msg {
            RPong::Ping => {
                if let Some(p) = peer {
                    p.cast(RPing::Pong)?;
                }
            }
            RPong::Hello(p) => *peer = Some(p),
        }
        Ok(())
    }
}

struct RPinger;

struct RPingState {
    pong: ractor::ActorRef<RPong>,
    left: u64,
    t0: Instant,
    done: Option<oneshot::Sender<Duration>>,
}

impl ractor::Actor for RPinger {
    type Msg = RPing;
    type State = RPingState;
    type Arguments = (ractor::ActorRef<RPong>, u64, oneshot::Sender<Duration>);

    async fn pre_start(
        &self,
        me: ractor::ActorRef<RPing>,
        (pong, n, done): Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        pong.cast(RPong::Hello(me))?;
        Ok(RPingState {
            pong,
            left: n,
            t0: Instant::now(),
            done: Some(done),
        })
    }

    async fn handle(
        &self,
        _me: ractor::ActorRef<RPing>,
        msg: RPing,
        st: &mut RPingState,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match msg {
            RPing::Start => {
                st.t0 = Instant::now();
                st.pong.cast(RPong::Ping)?;
            }
            RPing::Pong => {
                st.left -= 1;
                if st.left == 0 {
                    if let Some(d) = st.done.take() {
                        let _ = d.send(st.t0.elapsed());
                    }
                } else {
                    st.pong.cast(RPong::Ping)?;
                }
            }
        }
        Ok(())
    }
}

fn ractor_pingpong(n: u64) -> f64 {
    on_runtime(move || async move {
        let (pong, pong_h) = ractor::Actor::spawn(None, RPonger, ())
            .await
            .expect("ractor spawn");
        let (done_tx, done_rx) = oneshot::channel();
        let (ping, ping_h) = ractor::Actor::spawn(None, RPinger, (pong.clone(), n, done_tx))
            .await
            .expect("ractor spawn");
        ping.cast(RPing::Start).expect("ractor cast");
        let took = done_rx.await.expect("ractor pinger finished");
        ping.stop(None);
        pong.stop(None);
        let _ = ping_h.await;
        let _ = pong_h.await;
        per_s(n, took)
    })
}

/// The kameo ponger.
#[derive(kameo::Actor)]
struct KPonger {
    peer: Option<kameo::actor::ActorRef<KPinger>>,
}

/// Tells the kameo ponger where to reply.
struct Hello(kameo::actor::ActorRef<KPinger>);
/// A ping.
struct Ping;
/// A pong.
struct PongMsg;
/// Starts the kameo pinger.
struct Start;

impl kameo::message::Message<Hello> for KPonger {
    type Reply = ();
    async fn handle(&mut self, msg: Hello, _ctx: &mut kameo::message::Context<Self, ()>) {
        self.peer = Some(msg.0);
    }
}

impl kameo::message::Message<Ping> for KPonger {
    type Reply = ();
    async fn handle(&mut self, _: Ping, _ctx: &mut kameo::message::Context<Self, ()>) {
        if let Some(p) = &self.peer {
            let _ = p.tell(PongMsg).await;
        }
    }
}

/// The kameo pinger.
#[derive(kameo::Actor)]
struct KPinger {
    pong: kameo::actor::ActorRef<KPonger>,
    left: u64,
    t0: Instant,
    done: Option<oneshot::Sender<Duration>>,
}

impl kameo::message::Message<Start> for KPinger {
    type Reply = ();
    async fn handle(&mut self, _: Start, _ctx: &mut kameo::message::Context<Self, ()>) {
        self.t0 = Instant::now();
        let _ = self.pong.tell(Ping).await;
    }
}

impl kameo::message::Message<PongMsg> for KPinger {
    type Reply = ();
    async fn handle(&mut self, _: PongMsg, _ctx: &mut kameo::message::Context<Self, ()>) {
        self.left -= 1;
        if self.left == 0 {
            if let Some(d) = self.done.take() {
                let _ = d.send(self.t0.elapsed());
            }
        } else {
            let _ = self.pong.tell(Ping).await;
        }
    }
}

fn kameo_pingpong(n: u64) -> f64 {
    use kameo::actor::Spawn;
    on_runtime(move || async move {
        let pong = KPonger::spawn(KPonger { peer: None });
        let (done_tx, done_rx) = oneshot::channel();
        let ping = KPinger::spawn(KPinger {
            pong: pong.clone(),
            left: n,
            t0: Instant::now(),
            done: Some(done_tx),
        });
        pong.tell(Hello(ping.clone())).await.expect("kameo tell");
        ping.tell(Start).await.expect("kameo tell");
        let took = done_rx.await.expect("kameo pinger finished");
        ping.kill();
        pong.kill();
        ping.wait_for_shutdown().await;
        pong.wait_for_shutdown().await;
        per_s(n, took)
    })
}
