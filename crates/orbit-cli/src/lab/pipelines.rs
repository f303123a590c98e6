//! Pipelines: a producer feeding consumers that take 1 ms per event (a write to a
//! database, say), with and without back-pressure.
//!
//! - `demand-driven`: consumers ask for events (at most `MAX_DEMAND` outstanding, asking
//!   again after `MAX_DEMAND - MIN_DEMAND` are done, GenStage's rule); the producer
//!   makes events only when asked. Memory stays flat and latency low.
//! - `flooded mailbox`: the producer sends events as fast as it likes (3x what the
//!   consumers manage) into their unbounded mailboxes. Nothing pushes back: mailboxes,
//!   memory and each event's wait grow for as long as it runs.
//!
//! Consumers are the scenario's client processes, at most 8 (so the flood stays within
//! a few hundred MB). Latency is each event's age when a consumer finishes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit::{Context, Handle, Message, Pid};
use serde_json::{json, Map};

use super::measure::{spawn_clients, watch, Probe, Recorder, VariantResult};
use super::report::{count, dur, mb};
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

/// GENSTAGE SHIM. `orbit::stage` (GenStage) is being written on another branch; until it
/// merges, this is the smallest demand protocol over plain processes: a consumer sends
/// `Ask { from, n }`, the producer answers with a batch of at most `n` events.
///
/// To switch to `orbit::stage`: make [`demand::producer`] a `Producer` whose
/// `handle_demand(n)` returns `n` events from [`event`], make [`demand::consumer`] a
/// `Consumer` subscribed with `max_demand: MAX_DEMAND, min_demand: MIN_DEMAND` whose
/// `handle_events` calls [`consume`] per event, and delete this module. The flooded
/// variant stays as it is: it is the anti-pattern.
mod demand {
    use super::*;

    /// At most this many events outstanding per consumer.
    pub const MAX_DEMAND: usize = 20;
    /// Ask again when this few are left outstanding.
    pub const MIN_DEMAND: usize = 10;

    /// What the producer receives.
    pub enum ToProducer {
        /// Send up to `n` events to `from`.
        Ask { from: Pid, n: usize },
        /// The run is over.
        Stop,
    }

    /// The producer: makes events only when asked.
    pub fn producer() -> Result<Handle<ToProducer>, orbit::Error> {
        orbit::Spawn::new()
            .label("producer")
            .spawn(|mut ctx: Context<ToProducer>| async move {
                while let Message::Msg(ToProducer::Ask { from, n }) = ctx.recv().await {
                    let batch: Vec<Event> = (0..n).map(|_| event()).collect();
                    let _ = orbit::send(from, batch);
                }
            })
    }

    /// A consumer: asks for `MAX_DEMAND`, asks again for what it finished each time
    /// `MAX_DEMAND - MIN_DEMAND` are done.
    pub async fn consumer(
        producer: Handle<ToProducer>,
        probe: Arc<Probe>,
        mut ctx: Context<Vec<Event>>,
    ) {
        let me = ctx.pid();
        let mut rec = probe.recorder();
        let ask = |n| producer.send(ToProducer::Ask { from: me, n }).is_ok();
        if !ask(MAX_DEMAND) {
            return;
        }
        let mut done_since_ask = 0;
        while let Message::Msg(batch) = ctx.recv().await {
            for e in batch {
                consume(e, &mut rec).await;
                done_since_ask += 1;
                if done_since_ask == MAX_DEMAND - MIN_DEMAND {
                    if !ask(done_since_ask) {
                        return;
                    }
                    done_since_ask = 0;
                }
            }
            if !probe.running() {
                return;
            }
        }
    }
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
    let producer = demand::producer()?;
    let p = producer.clone();
    let consumers = spawn_clients(n, &probe, move |_, probe, ctx| {
        demand::consumer(p.clone(), probe, ctx)
    })?;
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
    let _ = producer.send(demand::ToProducer::Stop);
    producer.wait_exit().await;

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
        count(f.peak_mailbox as f64),
        mb(f.heap_peak),
        dur(f.latency.p99),
        mb(d.heap_peak),
        d.peak_mailbox,
        dur(d.latency.p99),
        count(d.rps),
        count(f.rps),
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
