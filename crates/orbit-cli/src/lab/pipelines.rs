//! Pipelines: a producer feeding consumers that take 1 ms per event (a write to a
//! database, say), with and without back-pressure.
//!
//! - `demand-driven`: an `orbit::stage` (GenStage) pipeline. Each consumer subscribes
//!   with `max_demand` [`MAX_DEMAND`] and `min_demand` [`MIN_DEMAND`]: it asks for
//!   `MAX_DEMAND` events, handles them in batches of at most `MAX_DEMAND - MIN_DEMAND`
//!   and asks again for what it finished. The producer makes events only in
//!   `handle_demand`, exactly as many as asked. Memory stays flat and latency low.
//! - `flooded mailbox`: plain processes. The producer sends events as fast as it likes
//!   (3x what the consumers manage) into the consumers' unbounded mailboxes. Nothing
//!   pushes back: mailboxes, memory and each event's wait grow for as long as it runs.
//!
//! There are as many consumers as the scenario has clients, at most 8 (so the flood
//! stays within a few hundred MB). Latency is each event's age when a consumer finishes
//! it. When the run ends the consumers exit after the batch in hand; the demand-driven
//! producer is then stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit::stage::{
    self, Consumer, ConsumerContext, ConsumerOptions, NoEvents, Producer, ProducerContext,
    ProducerOptions, StageRef, SubscribeOptions, Subscription,
};
use orbit::{Context, ExitReason, Handle, Message, Pid};
use serde_json::{json, Map};

use super::measure::{spawn_clients, watch, Probe, Recorder, VariantResult};
use super::report::{dur, mb, num};
use super::{Error, Lab, Report};

const SCENARIO: &str = "pipelines";
const EVENT_BYTES: usize = 2 * 1024;
const WORK: Duration = Duration::from_millis(1);
const MAX_CONSUMERS: usize = 8;
/// Events per second per consumer the flooding producer sends (a consumer does ~500–900).
const FLOOD_PER_CONSUMER: f64 = 2_000.0;

/// One event: when it was made, and its data.
struct Event {
    made: Instant,
    #[allow(dead_code)] // carried, never read: it is the memory a queued event holds
    payload: Vec<u8>,
}

fn event() -> Event {
    Event {
        made: Instant::now(),
        payload: vec![1; EVENT_BYTES],
    }
}

/// Handles one event: the simulated 1 ms of I/O, then its age is its latency.
async fn consume(e: Event, rec: &mut Recorder) {
    tokio::time::sleep(WORK).await;
    rec.record(e.made.elapsed());
}

/// At most this many events outstanding per demand-driven consumer.
const MAX_DEMAND: usize = 20;
/// A demand-driven consumer asks again once this few are left outstanding.
const MIN_DEMAND: usize = 10;

/// The demand-driven producer: a stage that makes events only when asked.
struct Source;

impl Producer for Source {
    type Event = Event;
    type Info = ();

    async fn handle_demand(
        &mut self,
        demand: usize,
        _ctx: &mut ProducerContext<Self>,
    ) -> Result<Vec<Event>, ExitReason> {
        Ok((0..demand).map(|_| event()).collect())
    }
}

/// A demand-driven consumer: a stage that handles the events it asked for and exits
/// (normally) after the first batch it finishes once the probe has stopped.
struct Sink {
    probe: Arc<Probe>,
    rec: Recorder,
}

impl Consumer for Sink {
    type Event = Event;
    type Info = ();

    async fn handle_events(
        &mut self,
        events: Vec<Event>,
        _from: &Subscription,
        _ctx: &mut ConsumerContext<Self>,
    ) -> Result<(), ExitReason> {
        for e in events {
            consume(e, &mut self.rec).await;
        }
        if self.probe.running() {
            Ok(())
        } else {
            Err(ExitReason::Normal)
        }
    }
}

/// The demand-driven producer stage: emits [`Event`]s, takes no messages.
type SourceStage = StageRef<NoEvents, Event, ()>;
/// A demand-driven consumer stage: takes [`Event`]s, emits none, takes no messages.
type SinkStage = StageRef<Event, NoEvents, ()>;

/// Starts the producer and `n` consumers subscribed to it.
async fn start_demand_driven(
    n: usize,
    probe: &Arc<Probe>,
) -> Result<(SourceStage, Vec<SinkStage>), Error> {
    let producer = stage::start_producer(Source, ProducerOptions::new()).await?;
    let mut consumers = Vec::with_capacity(n);
    for _ in 0..n {
        let sink = Sink {
            probe: probe.clone(),
            rec: probe.recorder(),
        };
        let demand = SubscribeOptions::new()
            .max_demand(MAX_DEMAND)
            .min_demand(MIN_DEMAND);
        let opts = ConsumerOptions::new().subscribe_to(&producer.producer(), demand);
        consumers.push(stage::start_consumer(sink, opts).await?);
    }
    Ok((producer, consumers))
}

/// The flooding producer: sends at a fixed rate, round robin, asking nobody.
fn flood(consumers: Vec<Pid>, probe: Arc<Probe>) -> Result<Handle<()>, orbit::Error> {
    orbit::Spawn::new()
        .label("producer")
        .spawn(move |_ctx: Context<()>| async move {
            let start = Instant::now();
            let rate = FLOOD_PER_CONSUMER * consumers.len() as f64;
            let mut sent = 0u64;
            while probe.running() {
                let due = (start.elapsed().as_secs_f64() * rate) as u64;
                while sent < due {
                    let to = consumers[sent as usize % consumers.len()];
                    let _ = orbit::send(to, vec![event()]);
                    sent += 1;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
}

/// A consumer of the flood: takes what arrives.
async fn flooded_consumer(probe: Arc<Probe>, mut ctx: Context<Vec<Event>>) {
    let mut rec = probe.recorder();
    while let Message::Msg(batch) = ctx.recv().await {
        for e in batch {
            consume(e, &mut rec).await;
            if !probe.running() {
                // Returning drops the mailbox and everything queued in it.
                return;
            }
        }
    }
}

/// Runs the scenario.
pub async fn run(lab: &Lab) -> Result<Report, Error> {
    let n = lab.clients().min(MAX_CONSUMERS);
    let mut results = Vec::new();

    let probe = Probe::new();
    let (producer, consumers) = start_demand_driven(n, &probe).await?;
    results.push(
        watch(
            lab,
            SCENARIO,
            "demand-driven",
            lab.duration(),
            &probe,
            &consumers,
            |_| {},
        )
        .await,
    );
    // The consumers have exited; the producer waits for nothing more.
    producer
        .stop(ExitReason::Shutdown, Duration::from_secs(5))
        .await?;

    let probe = Probe::new();
    let consumers = spawn_clients(n, &probe, |_, probe, ctx| flooded_consumer(probe, ctx))?;
    let producer = flood(consumers.iter().map(|c| c.pid()).collect(), probe.clone())?;
    results.push(
        watch(
            lab,
            SCENARIO,
            "flooded mailbox",
            lab.duration(),
            &probe,
            &consumers,
            |_| {},
        )
        .await,
    );
    producer.wait_exit().await;

    Ok(verdict(n, results))
}

fn verdict(consumers: usize, results: Vec<VariantResult>) -> Report {
    let (d, f) = (&results[0], &results[1]);
    let mut facts = Map::new();
    facts.insert("heap_peak_demand_bytes".into(), json!(d.heap_peak));
    facts.insert("heap_peak_flood_bytes".into(), json!(f.heap_peak));
    facts.insert("mailbox_demand".into(), json!(d.peak_mailbox));
    facts.insert("mailbox_flood".into(), json!(f.peak_mailbox));
    let verdict = format!(
        "bottleneck: the flooded consumers' mailboxes — the producer outran them, so a mailbox grew to {} events, heap +{} MB, event age p99 {}; with demand: heap +{} MB, mailbox {}, p99 {} at {} vs {} events/s",
        num(f.peak_mailbox as f64),
        mb(f.heap_peak),
        dur(f.latency.p99),
        mb(d.heap_peak),
        num(d.peak_mailbox as f64),
        dur(d.latency.p99),
        num(d.rps),
        num(f.rps),
    );
    Report {
        scenario: SCENARIO,
        title: format!(
            "a producer and {consumers} consumers taking 1 ms per {} KB event",
            EVENT_BYTES / 1024
        ),
        results,
        bottleneck: "the flooded consumers' mailboxes".into(),
        verdict,
        facts,
    }
}
