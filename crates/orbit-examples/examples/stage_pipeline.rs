//! Lesson 6: a pipeline with back-pressure: consumers ask, producers answer.
//!
//! Run: `cargo run -p orbit-examples --example stage_pipeline`
//! (bigger run: `ORBIT_EXAMPLE_SCALE=20 cargo run --release -p orbit-examples --example stage_pipeline`)
//!
//! GenStage: a producer (numbers) -> a producer_consumer (keeps the even ones, squares
//! them) -> a consumer (sums). Nothing is pushed: the consumer asks for `max_demand`
//! events, the producer_consumer passes demand up, and the producer emits only what was
//! asked, so no stage's mailbox grows however slow the consumer is. Events move in
//! batches of at most `max_demand - min_demand`; the run prints events/s and the largest
//! batch for a few `max_demand` values (small demand: many small messages; large:
//! fewer, bigger ones).
//!
//! Elixir: `GenStage.sync_subscribe(consumer, to: pc, max_demand: 100)` with
//! `handle_demand/2`, `handle_events/3` and `{:noreply, events, state}`.

use std::time::{Duration, Instant};

use orbit::stage::{
    self, Consumer, ConsumerContext, ConsumerOptions, Producer, ProducerConsumer,
    ProducerConsumerContext, ProducerConsumerOptions, ProducerContext, ProducerOptions,
    SubscribeOptions, Subscription,
};
use orbit::ExitReason;
use orbit_examples::{rate, scaled};
use tokio::sync::oneshot;

/// Emits 0, 1, 2, ... up to `limit` (exclusive), only as much as asked.
struct Numbers {
    next: u64,
    limit: u64,
}

impl Producer for Numbers {
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

/// Keeps the even numbers, squared.
struct EvenSquares;

impl ProducerConsumer for EvenSquares {
    type In = u64;
    type Out = u64;
    type Info = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _from: &Subscription,
        _ctx: &mut ProducerConsumerContext<Self>,
    ) -> Result<Vec<u64>, ExitReason> {
        Ok(events
            .into_iter()
            .filter(|n| n.is_multiple_of(2))
            .map(|n| n * n)
            .collect())
    }
}

/// Sums what it gets; reports when it has seen `expect` events.
struct Sum {
    total: u64,
    seen: u64,
    expect: u64,
    largest_batch: usize,
    batches: u64,
    done: Option<oneshot::Sender<(u64, usize, u64)>>,
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
        self.largest_batch = self.largest_batch.max(events.len());
        self.batches += 1;
        self.seen += events.len() as u64;
        self.total = events.iter().fold(self.total, |a, n| a.wrapping_add(*n));
        if self.seen == self.expect {
            if let Some(done) = self.done.take() {
                let _ = done.send((self.total, self.largest_batch, self.batches));
            }
        }
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = scaled(100_000);
    let want: u64 = (0..n)
        .filter(|x| x.is_multiple_of(2))
        .fold(0u64, |a, x| a.wrapping_add(x * x));
    if cfg!(debug_assertions) {
        println!("(debug build: rates are low; --release for real numbers)");
    }
    println!(
        "{n} numbers through producer -> producer_consumer (even, squared) -> consumer (sum)\n"
    );
    for max_demand in [10usize, 100, 1000] {
        let producer = stage::start_producer(Numbers { next: 0, limit: n }, ProducerOptions::new())
            .await
            .expect("the producer starts");
        let sub = || SubscribeOptions::new().max_demand(max_demand);
        let pc = stage::start_producer_consumer(
            EvenSquares,
            ProducerConsumerOptions::new().subscribe_to(&producer.producer(), sub()),
        )
        .await
        .expect("the producer_consumer starts");
        let (tx, rx) = oneshot::channel();
        let t0 = Instant::now();
        let consumer = stage::start_consumer(
            Sum {
                total: 0,
                seen: 0,
                expect: n / 2 + n % 2,
                largest_batch: 0,
                batches: 0,
                done: Some(tx),
            },
            ConsumerOptions::new().subscribe_to(&pc.producer(), sub()),
        )
        .await
        .expect("the consumer starts");
        let (total, largest, batches) = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .expect("the pipeline finishes within 60 s")
            .expect("the consumer reports");
        let took = t0.elapsed();
        assert_eq!(total, want, "every event arrives exactly once");
        let (p, c) = (producer.info(), pc.info());
        println!(
            "max_demand {max_demand:>4}: {:>9} events, {batches:>5} batches to the consumer, largest {largest:>3} \
             (filtered from <= max_demand - min_demand = {}), peak buffered in a stage: {}",
            rate(n, took),
            max_demand - max_demand / 2,
            p.peak_buffered.max(c.peak_buffered)
        );
        assert!(largest <= max_demand - max_demand / 2);
        // Stopping the producer cancels the subscriptions downstream: the
        // producer_consumer and then the consumer exit with the same reason.
        producer
            .stop(ExitReason::Shutdown, Duration::from_secs(5))
            .await
            .expect("the producer stops");
        let why = consumer.wait_exit().await;
        assert_eq!(why, ExitReason::Shutdown);
    }
    println!("\nsum checked against a plain loop: {want}");
}
