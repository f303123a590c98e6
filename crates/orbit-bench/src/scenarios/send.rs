//! `send`: 5M small one-way messages (a 2-field `(u32, u64)` tuple, the shape of the
//! BEAM's `{msg, I}`) from one sender to one receiving process;
//! the clock runs from the first send until the receiver has counted all of them.
//!
//! Subjects, each on a fresh 2-worker tokio runtime, with the sender a tokio task:
//! - `orbit`: `orbit::spawn` receiver, `Handle::send` (counters on, the default);
//! - `tokio`: a raw task reading an unbounded `mpsc` channel;
//! - `ractor`: an actor, `ActorRef::cast` (ractor mailboxes are unbounded);
//! - `kameo`: an actor spawned with an unbounded mailbox, `tell(..).await` (the default
//!   mailbox is bounded to 64 and would measure backpressure instead);
//! - `beam`: `beam_bench:run([oneway, N])` (N `{msg, I}` to a receiving process, sent by
//!   a plain loop), `+S 2:2`.
//!
//! Rounds are interleaved (orbit, beam, tokio, ractor, kameo, every round); each subject
//! reports `msgs_per_s` = the median of rounds, with best/min/max and
//! `cpu_us_per_msg`. Ratios use the medians.
//! Goals: orbit at least 3x the BEAM and 0.7x tokio, ahead of ractor and kameo.

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::Ctx;
use crate::util::{measured, on_runtime, per_s, Rounds};

/// The message: two fields, like the BEAM's `{msg, I}` (a tag and a counter).
type Msg = (u32, u64);
const TAG: u32 = 1;

const SCENARIO: &str = "send";
const N: u64 = 5_000_000;

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n = ctx.n(N);
    let mut r = Rounds::default();
    for _ in 0..ctx.rounds {
        measured(&mut r, "orbit", n, || orbit(n));
        ctx.beam_round(&mut r, "oneway", n);
        measured(&mut r, "tokio", n, || tokio_mpsc(n));
        measured(&mut r, "ractor", n, || ractor_cast(n));
        measured(&mut r, "kameo", n, || kameo_tell(n));
    }
    for s in ["orbit", "beam", "tokio", "ractor", "kameo"] {
        ctx.emit_rounds(SCENARIO, s, "msgs_per_s", "msg", &r);
    }
    let o = r.median("orbit");
    ctx.goal(SCENARIO, "orbit_vs_beam_min_3x", o, r.median("beam"));
    ctx.goal(SCENARIO, "orbit_vs_tokio_min_0.7x", o, r.median("tokio"));
    ctx.goal(SCENARIO, "orbit_vs_ractor_min_1x", o, r.median("ractor"));
    ctx.goal(SCENARIO, "orbit_vs_kameo_min_1x", o, r.median("kameo"));
}

/// Orbit: `n` messages to one process; returns messages per second.
pub fn orbit(n: u64) -> f64 {
    on_runtime(move || async move {
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let sink = orbit::spawn(move |mut ctx: orbit::Context<Msg>| async move {
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
            let _ = sink.send((TAG, i));
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
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
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
            let _ = tx.send((TAG, i));
        }
        sink.await.expect("tokio receiver finished");
        per_s(n, t0.elapsed())
    })
}

/// The ractor receiver: counts to `n`, then signals.
struct RSink;

impl ractor::Actor for RSink {
    type Msg = Msg;
    type State = (u64, u64, Option<oneshot::Sender<()>>);
    type Arguments = (u64, oneshot::Sender<()>);

    async fn pre_start(
        &self,
        _me: ractor::ActorRef<Msg>,
        (n, done): Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok((0, n, Some(done)))
    }

    async fn handle(
        &self,
        _me: ractor::ActorRef<Msg>,
        _msg: Msg,
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
            actor.cast((TAG, i)).expect("ractor cast");
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

impl kameo::message::Message<Msg> for KSink {
    type Reply = ();

    async fn handle(&mut self, _msg: Msg, _ctx: &mut kameo::message::Context<Self, ()>) {
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
            sink.tell((TAG, i)).await.expect("kameo tell");
        }
        done_rx.await.expect("kameo receiver finished");
        let rate = per_s(n, t0.elapsed());
        sink.kill();
        sink.wait_for_shutdown().await;
        rate
    })
}
