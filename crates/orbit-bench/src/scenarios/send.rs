//! `send`: 5M small one-way messages (a `u64`) from one sender to one receiving process;
//! the clock runs from the first send until the receiver has counted all of them.
//!
//! Subjects, each on a fresh 2-worker tokio runtime, with the sender a tokio task:
//! - `orbit`: `orbit::spawn` receiver, `Handle::send` (counters on, the default);
//! - `tokio`: a raw task reading an unbounded `mpsc` channel;
//! - `ractor`: an actor, `ActorRef::cast` (ractor mailboxes are unbounded);
//! - `kameo`: an actor spawned with an unbounded mailbox, `tell(..).await` (the default
//!   mailbox is bounded to 64 and would measure backpressure instead);
//! - `beam`: `beam_bench:oneway/1` (5M `{msg, I}` to a receiving process).
//!
//! Rounds are interleaved (orbit, tokio, ractor, kameo; the BEAM once, after the first
//! orbit round) and the best round of each subject is reported as `msgs_per_s`.
//! Goals: orbit at least 3x the BEAM and 0.7x tokio, ahead of ractor and kameo.

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::Ctx;
use crate::beam;
use crate::util::{on_runtime, per_s, Rounds};

const SCENARIO: &str = "send";
const N: u64 = 5_000_000;

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n = ctx.n(N);
    let mut r = Rounds::default();
    for round in 0..ctx.rounds {
        r.add("orbit", orbit(n));
        if round == 0 {
            beam::baseline();
        }
        r.add("tokio", tokio_mpsc(n));
        r.add("ractor", ractor_cast(n));
        r.add("kameo", kameo_tell(n));
    }
    let beam = beam::baseline_value("oneway_msgs_per_s");
    for s in ["orbit", "tokio", "ractor", "kameo"] {
        ctx.emit_opt(SCENARIO, s, "msgs_per_s", r.best(s));
    }
    ctx.emit_opt(SCENARIO, "beam", "msgs_per_s", beam);
    let o = r.best("orbit");
    ctx.goal(SCENARIO, "orbit_vs_beam_min_3x", o, beam);
    ctx.goal(SCENARIO, "orbit_vs_tokio_min_0.7x", o, r.best("tokio"));
    ctx.goal(SCENARIO, "orbit_vs_ractor_min_1x", o, r.best("ractor"));
    ctx.goal(SCENARIO, "orbit_vs_kameo_min_1x", o, r.best("kameo"));
}

/// Orbit: `n` messages to one process; returns messages per second.
pub fn orbit(n: u64) -> f64 {
    on_runtime(move || async move {
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let sink = orbit::spawn(move |mut ctx: orbit::Context<u64>| async move {
            let mut count = 0u64;
            while count < n {
                if let orbit::Message::Msg(_) = ctx.recv().await {
                    count += 1;
                }
            }
            let _ = done_tx.send(());
        })
        .expect("orbit::spawn");
        let t0 = Instant::now();
        for i in 0..n {
            let _ = sink.send(i);
        }
        done_rx.await.expect("orbit receiver finished");
        let rate = per_s(n, t0.elapsed());
        sink.wait_exit().await;
        rate
    })
}

/// Raw tokio: a task reading an unbounded mpsc channel.
fn tokio_mpsc(n: u64) -> f64 {
    on_runtime(move || async move {
        let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
        let sink = tokio::spawn(async move {
            let mut count = 0u64;
            while count < n {
                if rx.recv().await.is_none() {
                    break;
                }
                count += 1;
            }
        });
        let t0 = Instant::now();
        for i in 0..n {
            let _ = tx.send(i);
        }
        sink.await.expect("tokio receiver finished");
        per_s(n, t0.elapsed())
    })
}

/// The ractor receiver: counts to `n`, then signals.
struct RSink;

impl ractor::Actor for RSink {
    type Msg = u64;
    type State = (u64, u64, Option<oneshot::Sender<()>>);
    type Arguments = (u64, oneshot::Sender<()>);

    async fn pre_start(
        &self,
        _me: ractor::ActorRef<u64>,
        (n, done): Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok((0, n, Some(done)))
    }

    async fn handle(
        &self,
        _me: ractor::ActorRef<u64>,
        _msg: u64,
        st: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        st.0 += 1;
        if st.0 == st.1 {
            if let Some(d) = st.2.take() {
                let _ = d.send(());
            }
        }
        Ok(())
    }
}

fn ractor_cast(n: u64) -> f64 {
    on_runtime(move || async move {
        let (done_tx, done_rx) = oneshot::channel();
        let (actor, handle) = ractor::Actor::spawn(None, RSink, (n, done_tx))
            .await
            .expect("ractor spawn");
        let t0 = Instant::now();
        for i in 0..n {
            actor.cast(i).expect("ractor cast");
        }
        done_rx.await.expect("ractor receiver finished");
        let rate = per_s(n, t0.elapsed());
        actor.stop(None);
        let _ = handle.await;
        rate
    })
}

/// The kameo receiver: counts to `n`, then signals.
#[derive(kameo::Actor)]
struct KSink {
    count: u64,
    n: u64,
    done: Option<oneshot::Sender<()>>,
}

impl kameo::message::Message<u64> for KSink {
    type Reply = ();

    async fn handle(&mut self, _msg: u64, _ctx: &mut kameo::message::Context<Self, ()>) {
        self.count += 1;
        if self.count == self.n {
            if let Some(d) = self.done.take() {
                let _ = d.send(());
            }
        }
    }
}

fn kameo_tell(n: u64) -> f64 {
    use kameo::actor::Spawn;
    on_runtime(move || async move {
        let (done_tx, done_rx) = oneshot::channel();
        let sink = KSink::spawn_with_mailbox(
            KSink {
                count: 0,
                n,
                done: Some(done_tx),
            },
            kameo::mailbox::unbounded(),
        );
        let t0 = Instant::now();
        for i in 0..n {
            sink.tell(i).await.expect("kameo tell");
        }
        done_rx.await.expect("kameo receiver finished");
        let rate = per_s(n, t0.elapsed());
        sink.kill();
        sink.wait_for_shutdown().await;
        rate
    })
}
