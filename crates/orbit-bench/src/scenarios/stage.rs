//! `stage`: GenStage pipelines moving 5M integer events, default demand (max 1000,
//! min 500: batches of 500).
//!
//! Subjects, each on a fresh 2-worker runtime, rounds interleaved:
//! - `orbit` `producer_consumer`: a producer emitting `demand` consecutive integers per
//!   `handle_demand`, and a consumer summing them;
//! - `orbit` `three_stage`: the same with a producer_consumer in the middle passing the
//!   batches on;
//! - `tokio`: raw tasks over bounded `mpsc` channels of the same shape, moving the same
//!   batches (`Vec<u64>` of 500, channel capacity 2 = `max_demand` events in flight);
//! - `orbit` `broadcast`: a BroadcastDispatcher feeding 2 consumers (events/s per
//!   consumer) and `partition`: a PartitionDispatcher with 2 partitions (events/s in
//!   total);
//! - `beam_baseline`: Elixir GenStage 1.3.2's figures on this kind of machine, from
//!   `shared/reference/beam-baselines.md` (GenStage is not installed here; the figure
//!   is the middle of the measured spread).
//!
//! Goals: orbit at least 3x GenStage and 0.5x the raw tokio pipeline, for both shapes.
//!
//! Each round runs [`REPEAT`] pipelines of 5M events per subject, the subjects taking
//! turns pipeline by pipeline, and reports each subject's combined rate (all its events
//! over the sum of its times). One 5M-event pipeline takes about 20 ms here, too short
//! for this shared machine: with one per subject per round, orbit's three-stage ratio
//! to tokio ranged from 0.27 to 1.3 between runs.

use std::time::Instant;

use orbit::stage::{
    self, BroadcastDispatcher, Consumer, ConsumerContext, ConsumerOptions, DemandMode,
    PartitionDispatcher, Producer, ProducerConsumer, ProducerConsumerContext,
    ProducerConsumerOptions, ProducerContext, ProducerOptions, SubscribeOptions, Subscription,
};
use orbit::ExitReason;
use tokio::sync::{mpsc, oneshot};

use super::Ctx;
use crate::util::{on_runtime, per_s, Rounds};

const SCENARIO: &str = "stage";
const N: u64 = 5_000_000;
const BATCH: u64 = 500;
/// Pipelines per subject per round (see the module docs).
pub const REPEAT: u32 = 5;

/// The subjects of a round: name and one measurement (events per second).
type Subject = (&'static str, Box<dyn Fn() -> f64>);

/// One round: every subject [`REPEAT`] times, taking turns; each subject's combined
/// events per second.
fn round(subjects: &[Subject], r: &mut Rounds) {
    let mut secs_per_event = vec![0.0f64; subjects.len()];
    for _ in 0..REPEAT {
        for (i, (_, measure)) in subjects.iter().enumerate() {
            secs_per_event[i] += 1.0 / measure();
        }
    }
    // Each run moves the same number of events: combined rate = REPEAT / sum(1 / rate).
    for ((name, _), spe) in subjects.iter().zip(secs_per_event) {
        r.add(name, f64::from(REPEAT) / spe);
    }
}

/// GenStage figures (events/s) from beam-baselines.md, middle of each spread.
const BEAM_PC: f64 = 31.5e6;
const BEAM_PCC: f64 = 12.25e6;
const BEAM_BROADCAST: f64 = 18.0e6;
const BEAM_PARTITION: f64 = 8.7e6;

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n = ctx.n(N);
    let mut r = Rounds::default();
    let subjects: [Subject; 6] = [
        ("orbit_pc", Box::new(move || orbit_pipeline(n, false))),
        ("tokio_pc", Box::new(move || tokio_pipeline(n, false))),
        ("orbit_pcc", Box::new(move || orbit_pipeline(n, true))),
        ("tokio_pcc", Box::new(move || tokio_pipeline(n, true))),
        ("orbit_broadcast", Box::new(move || orbit_broadcast(n))),
        ("orbit_partition", Box::new(move || orbit_partition(n))),
    ];
    for _ in 0..ctx.rounds {
        round(&subjects, &mut r);
    }
    let m = "producer_consumer_events_per_s";
    ctx.emit_opt(SCENARIO, "orbit", m, r.best("orbit_pc"));
    ctx.emit_opt(SCENARIO, "tokio", m, r.best("tokio_pc"));
    ctx.rep.emit(SCENARIO, "beam_baseline", m, BEAM_PC);
    let m3 = "three_stage_events_per_s";
    ctx.emit_opt(SCENARIO, "orbit", m3, r.best("orbit_pcc"));
    ctx.emit_opt(SCENARIO, "tokio", m3, r.best("tokio_pcc"));
    ctx.rep.emit(SCENARIO, "beam_baseline", m3, BEAM_PCC);
    let mb = "broadcast_2_consumers_events_per_s_per_consumer";
    ctx.emit_opt(SCENARIO, "orbit", mb, r.best("orbit_broadcast"));
    ctx.rep.emit(SCENARIO, "beam_baseline", mb, BEAM_BROADCAST);
    let mp = "partition_2_events_per_s_total";
    ctx.emit_opt(SCENARIO, "orbit", mp, r.best("orbit_partition"));
    ctx.rep.emit(SCENARIO, "beam_baseline", mp, BEAM_PARTITION);

    let beam = |v| Some(v);
    ctx.goal(
        SCENARIO,
        "pc_orbit_vs_beam_min_3x",
        r.best("orbit_pc"),
        beam(BEAM_PC),
    );
    ctx.goal(
        SCENARIO,
        "pc_orbit_vs_tokio_min_0.5x",
        r.best("orbit_pc"),
        r.best("tokio_pc"),
    );
    ctx.goal(
        SCENARIO,
        "pcc_orbit_vs_beam_min_3x",
        r.best("orbit_pcc"),
        beam(BEAM_PCC),
    );
    ctx.goal(
        SCENARIO,
        "pcc_orbit_vs_tokio_min_0.5x",
        r.best("orbit_pcc"),
        r.best("tokio_pcc"),
    );
    ctx.goal(
        SCENARIO,
        "broadcast_orbit_vs_beam",
        r.best("orbit_broadcast"),
        beam(BEAM_BROADCAST),
    );
    ctx.goal(
        SCENARIO,
        "partition_orbit_vs_beam",
        r.best("orbit_partition"),
        beam(BEAM_PARTITION),
    );
}

/// Emits `demand` consecutive integers per call, up to `limit`.
struct Count {
    next: u64,
    limit: u64,
}

impl Producer for Count {
    type Event = u64;
    type Info = ();

    async fn handle_demand(
        &mut self,
        demand: usize,
        _ctx: &mut ProducerContext<Self>,
    ) -> Result<Vec<u64>, ExitReason> {
        let end = (self.next + demand as u64).min(self.limit);
        let events = (self.next..end).collect();
        self.next = end;
        Ok(events)
    }
}

/// Passes batches on unchanged (moved, not copied).
struct Pass;

impl ProducerConsumer for Pass {
    type In = u64;
    type Out = u64;
    type Info = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _from: &Subscription,
        _ctx: &mut ProducerConsumerContext<Self>,
    ) -> Result<Vec<u64>, ExitReason> {
        Ok(events)
    }
}

/// Sums events; reports when it has seen `n`.
struct Sum {
    seen: u64,
    sum: u64,
    n: u64,
    done: Option<oneshot::Sender<u64>>,
}

impl Sum {
    fn new(n: u64) -> (Self, oneshot::Receiver<u64>) {
        let (tx, rx) = oneshot::channel();
        (
            Sum {
                seen: 0,
                sum: 0,
                n,
                done: Some(tx),
            },
            rx,
        )
    }
}

impl Consumer for Sum {
    type Event = u64;
    type Info = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _from: &Subscription,
        _ctx: &mut ConsumerContext<Self>,
    ) -> Result<(), ExitReason> {
        self.seen += events.len() as u64;
        self.sum = self.sum.wrapping_add(events.iter().sum::<u64>());
        if self.seen >= self.n {
            if let Some(tx) = self.done.take() {
                let _ = tx.send(self.sum);
            }
        }
        Ok(())
    }
}

fn expected_sum(n: u64) -> u64 {
    n * (n - 1) / 2
}

/// producer → consumer, or producer → producer_consumer → consumer.
pub fn orbit_pipeline(n: u64, middle: bool) -> f64 {
    on_runtime(move || async move {
        let producer = stage::start_producer(Count { next: 0, limit: n }, ProducerOptions::new())
            .await
            .expect("producer");
        let (sum, done) = Sum::new(n);
        let consumer = stage::start_consumer(sum, ConsumerOptions::new())
            .await
            .expect("consumer");
        let t0 = Instant::now();
        if middle {
            let mid = stage::start_producer_consumer(
                Pass,
                ProducerConsumerOptions::new()
                    .subscribe_to(&producer.producer(), SubscribeOptions::new()),
            )
            .await
            .expect("producer_consumer");
            consumer
                .subscribe(&mid.producer(), SubscribeOptions::new())
                .await
                .expect("subscribe");
        } else {
            consumer
                .subscribe(&producer.producer(), SubscribeOptions::new())
                .await
                .expect("subscribe");
        }
        let total = done.await.expect("consumer finished");
        let rate = per_s(n, t0.elapsed());
        assert_eq!(total, expected_sum(n));
        rate
    })
}

/// The same shapes as raw tokio tasks over bounded channels moving `Vec<u64>` batches.
pub fn tokio_pipeline(n: u64, middle: bool) -> f64 {
    on_runtime(move || async move {
        let (tx, mut rx) = mpsc::channel::<Vec<u64>>(2);
        let t0 = Instant::now();
        tokio::spawn(async move {
            let mut next = 0;
            while next < n {
                let end = (next + BATCH).min(n);
                if tx.send((next..end).collect()).await.is_err() {
                    break;
                }
                next = end;
            }
        });
        if middle {
            let (tx2, rx2) = mpsc::channel::<Vec<u64>>(2);
            tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if tx2.send(b).await.is_err() {
                        break;
                    }
                }
            });
            rx = rx2;
        }
        let sink = tokio::spawn(async move {
            let (mut seen, mut sum) = (0u64, 0u64);
            while let Some(b) = rx.recv().await {
                seen += b.len() as u64;
                sum = sum.wrapping_add(b.iter().sum::<u64>());
                if seen >= n {
                    break;
                }
            }
            sum
        });
        let total = sink.await.expect("tokio sink");
        let rate = per_s(n, t0.elapsed());
        assert_eq!(total, expected_sum(n));
        rate
    })
}

/// BroadcastDispatcher, 2 consumers; events/s per consumer.
pub fn orbit_broadcast(n: u64) -> f64 {
    on_runtime(move || async move {
        let producer = stage::start_producer(
            Count { next: 0, limit: n },
            ProducerOptions::new()
                .dispatcher(BroadcastDispatcher::new())
                .demand(DemandMode::Accumulate),
        )
        .await
        .expect("producer");
        let mut dones = Vec::new();
        for _ in 0..2 {
            let (sum, done) = Sum::new(n);
            let c = stage::start_consumer(sum, ConsumerOptions::new())
                .await
                .expect("consumer");
            c.subscribe(&producer.producer(), SubscribeOptions::new())
                .await
                .expect("subscribe");
            dones.push(done);
        }
        let t0 = Instant::now();
        producer.demand(DemandMode::Forward).expect("forward");
        for d in dones {
            assert_eq!(d.await.expect("consumer finished"), expected_sum(n));
        }
        per_s(n, t0.elapsed())
    })
}

/// PartitionDispatcher with 2 partitions (even, odd); events/s in total.
pub fn orbit_partition(n: u64) -> f64 {
    on_runtime(move || async move {
        let producer = stage::start_producer(
            Count { next: 0, limit: n },
            ProducerOptions::new()
                .dispatcher(PartitionDispatcher::with_hash(2, |e: &u64| {
                    Some((*e & 1) as usize)
                }))
                .demand(DemandMode::Accumulate),
        )
        .await
        .expect("producer");
        let mut dones = Vec::new();
        for p in 0..2usize {
            let (sum, done) = Sum::new(n / 2 + (n % 2) * (1 - p as u64));
            let c = stage::start_consumer(sum, ConsumerOptions::new())
                .await
                .expect("consumer");
            c.subscribe(&producer.producer(), SubscribeOptions::new().partition(p))
                .await
                .expect("subscribe");
            dones.push(done);
        }
        let t0 = Instant::now();
        producer.demand(DemandMode::Forward).expect("forward");
        let mut total = 0u64;
        for d in dones {
            total = total.wrapping_add(d.await.expect("consumer finished"));
        }
        assert_eq!(total, expected_sum(n));
        per_s(n, t0.elapsed())
    })
}
