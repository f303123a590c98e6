//! `stage`: GenStage pipelines moving 5M integer events, default demand (max 1000,
//! min 500: batches of 500).
//!
//! Subjects, each on a fresh 2-worker runtime, rounds interleaved:
//! - `orbit` `producer_consumer`: a producer emitting `demand` consecutive integers per
//!   `handle_demand`, and a consumer summing them;
//! - `orbit` `three_stage`: the same with a producer_consumer in the middle mapping
//!   every event to `x * 2` into a new batch (as the GenStage side's `Enum.map`);
//! - `tokio`: raw tasks over bounded `mpsc` channels of the same shape, moving the same
//!   batches (`Vec<u64>` of 500, channel capacity 2 = `max_demand` events in flight),
//!   the middle task mapping `x * 2` into a new `Vec`;
//! - `orbit` `broadcast`: a BroadcastDispatcher feeding 2 consumers (events/s per
//!   consumer) and `partition`: a PartitionDispatcher with 2 partitions (events/s in
//!   total);
//! - `beam`: the real GenStage (`beam/stage_bench.exs` with `../shared/beamlibs`,
//!   `elixir --erl "+S N:N"`), the same four shapes, events and per-event work, in every
//!   round ([`REPEAT`] pipelines per shape per run); skipped with a note without
//!   `elixir`.
//!
//! Every figure is the median of rounds (used by the ratios) with `_best`, `_min`,
//! `_max` and `cpu_us_per_event_SHAPE` (`getrusage(RUSAGE_SELF)` around each Rust pipeline,
//! runtime start included; the BEAM's `statistics(runtime)` around its measured parts).
//! The BEAM's run goes first in even rounds and last in odd ones.
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
use crate::util::{cpu_of, on_runtime, per_s, Rounds};

const SCENARIO: &str = "stage";
const N: u64 = 5_000_000;
const BATCH: u64 = 500;
/// Pipelines per subject per round (see the module docs).
pub const REPEAT: u32 = 5;

/// The subjects of a round: name and one measurement (events per second).
type Subject = (&'static str, Box<dyn Fn() -> f64>);

/// One round: every subject [`REPEAT`] times, taking turns; each subject's combined
/// events per second.
fn round(subjects: &[Subject], n: u64, r: &mut Rounds) {
    let mut secs_per_event = vec![0.0f64; subjects.len()];
    let mut cpu = vec![0.0f64; subjects.len()];
    for _ in 0..REPEAT {
        for (i, (_, measure)) in subjects.iter().enumerate() {
            let (rate, c) = cpu_of(measure);
            secs_per_event[i] += 1.0 / rate;
            cpu[i] += c;
        }
    }
    // Each run moves the same number of events: combined rate = REPEAT / sum(1 / rate).
    let events = f64::from(REPEAT) * n as f64;
    for (((name, _), spe), c) in subjects.iter().zip(secs_per_event).zip(cpu) {
        r.add(name, f64::from(REPEAT) / spe);
        r.add_cpu(name, c * 1e6 / events);
    }
}

/// One round of the real GenStage: the four shapes, [`REPEAT`] pipelines each, recorded
/// as `beam_pc`, `beam_pcc`, `beam_broadcast`, `beam_partition`.
fn beam_round(n: u64, r: &mut Rounds) {
    let args = [n.to_string(), REPEAT.to_string()];
    let Some(v) = crate::beam::run_elixir("stage_bench.exs", &[&args[0], &args[1]]) else {
        return;
    };
    let events = f64::from(REPEAT) * n as f64;
    for (shape, subject) in [
        ("pc", "beam_pc"),
        ("pcc", "beam_pcc"),
        ("broadcast", "beam_broadcast"),
        ("partition", "beam_partition"),
    ] {
        let (rate, cpu) = (
            v.get(&format!("{shape}_rate")),
            v.get(&format!("{shape}_cpu_s")),
        );
        if let (Some(rate), Some(cpu)) = (rate, cpu) {
            r.add(subject, *rate);
            r.add_cpu(subject, cpu * 1e6 / events);
        }
    }
}

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
    for k in 0..ctx.rounds {
        if k % 2 == 0 {
            beam_round(n, &mut r);
            round(&subjects, n, &mut r);
        } else {
            round(&subjects, n, &mut r);
            beam_round(n, &mut r);
        }
    }
    // (shape, metric, CPU unit: `cpu_us_per_UNIT`, one per shape, with tokio?)
    let shapes = [
        ("pc", "producer_consumer_events_per_s", "event_pc", true),
        ("pcc", "three_stage_events_per_s", "event_three_stage", true),
        (
            "broadcast",
            "broadcast_2_consumers_events_per_s_per_consumer",
            "event_broadcast",
            false,
        ),
        (
            "partition",
            "partition_2_events_per_s_total",
            "event_partition",
            false,
        ),
    ];
    for (shape, metric, unit, with_tokio) in shapes {
        let mut who = vec!["orbit", "beam"];
        if with_tokio {
            who.push("tokio");
        }
        for w in who {
            let subject = format!("{w}_{shape}");
            emit_as(ctx, w, &subject, metric, unit, &r);
        }
        let o = r.median(&format!("orbit_{shape}"));
        let b = r.median(&format!("beam_{shape}"));
        if with_tokio {
            ctx.goal(SCENARIO, &format!("{shape}_orbit_vs_beam_min_3x"), o, b);
            let t = r.median(&format!("tokio_{shape}"));
            ctx.goal(SCENARIO, &format!("{shape}_orbit_vs_tokio_min_0.5x"), o, t);
        } else {
            ctx.goal(SCENARIO, &format!("{shape}_orbit_vs_beam"), o, b);
        }
    }
}

/// Emits the figures recorded under `key` (e.g. `orbit_pc`) as subject `subject`.
fn emit_as(ctx: &mut Ctx, subject: &str, key: &str, metric: &str, unit: &str, r: &Rounds) {
    let mut one = Rounds::default();
    let xs = r.of(key);
    for x in xs {
        one.add(leak(subject), x);
    }
    if let Some(c) = r.cpu_median(key) {
        one.add_cpu(leak(subject), c);
    }
    ctx.emit_rounds(SCENARIO, subject, metric, unit, &one);
}

/// A `'static` subject name (`Rounds` keys are `&'static str`; a handful per run).
fn leak(s: &str) -> &'static str {
    match s {
        "orbit" => "orbit",
        "beam" => "beam",
        _ => "tokio",
    }
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

/// Maps every event to `x * 2` into a new batch (GenStage side: `Enum.map(events, &(&1 * 2))`).
struct Double;

impl ProducerConsumer for Double {
    type In = u64;
    type Out = u64;
    type Info = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _from: &Subscription,
        _ctx: &mut ProducerConsumerContext<Self>,
    ) -> Result<Vec<u64>, ExitReason> {
        Ok(events.iter().map(|x| x * 2).collect())
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
                Double,
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
        assert_eq!(total, expected_sum(n) * if middle { 2 } else { 1 });
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
                    let doubled: Vec<u64> = b.iter().map(|x| x * 2).collect();
                    if tx2.send(doubled).await.is_err() {
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
        assert_eq!(total, expected_sum(n) * if middle { 2 } else { 1 });
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
