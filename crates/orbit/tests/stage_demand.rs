//! The demand protocol: GenStage's batch sizes and asks, manual demand, accumulate and
//! forward, unmet demand kept by the producer, buffer overflow, and backpressure.

mod stage_common;

use std::time::Duration;

use orbit::stage::{
    self, BufferKeep, ConsumerOptions, DemandMode, ProducerOptions, SubscribeOptions,
};
use stage_common::*;
use tokio::sync::{mpsc, oneshot};

async fn sync_producer<I: Send + 'static>(p: &orbit::stage::StageRef<I, u64, Cmd>) -> usize {
    let (tx, rx) = oneshot::channel();
    p.send(Cmd::Sync(tx)).ok().unwrap();
    rx.await.unwrap()
}

async fn sync_consumer<O: Send + 'static>(c: &orbit::stage::StageRef<u64, O, CCmd>) {
    let (tx, rx) = oneshot::channel();
    c.send(CCmd::Sync(tx)).ok().unwrap();
    rx.await.unwrap()
}

/// Emits `messages` (sizes) one message each into a consumer with (min, max) and
/// returns the batch sizes it handled and the asks the producer saw.
async fn run_case(min: usize, max: usize, messages: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let (dtx, mut drx) = mpsc::unbounded_channel();
    let producer = stage::start_producer(Scripted { demands: dtx }, ProducerOptions::new())
        .await
        .unwrap();
    let (rec, mut rx) = Recorder::new();
    let consumer = stage::start_consumer(rec, ConsumerOptions::new())
        .await
        .unwrap();
    consumer
        .subscribe(
            &producer.producer(),
            SubscribeOptions::new().max_demand(max).min_demand(min),
        )
        .await
        .unwrap();
    let mut next = 0u64;
    let total: usize = messages.iter().sum();
    for &m in messages {
        producer
            .send(Cmd::Emit((next..next + m as u64).collect()))
            .ok()
            .unwrap();
        next += m as u64;
    }
    let mut batches = Vec::new();
    let mut seen = 0;
    let mut expect = 0u64;
    while seen < total {
        let b = batch(&mut rx).await;
        for e in &b {
            assert_eq!(*e, expect, "events arrive in order");
            expect += 1;
        }
        seen += b.len();
        batches.push(b.len());
    }
    // Every ask is sent before the consumer answers, and reaches the producer first.
    sync_consumer(&consumer).await;
    sync_producer(&producer).await;
    (batches, drain(&mut drx))
}

/// (min, max, message sizes, expected batch sizes, expected asks incl. the first)
type Case = (
    usize,
    usize,
    &'static [usize],
    &'static [usize],
    &'static [usize],
);

#[tokio::test]
async fn batch_sizes_and_asks_follow_genstage() {
    // (min, max, message sizes, expected batches, expected asks incl. the first)
    let cases: &[Case] = &[
        // The worked example: batches of at most 250, asks of 250.
        (
            750,
            1000,
            &[1000],
            &[250, 250, 250, 250],
            &[1000, 250, 250, 250, 250],
        ),
        // The default: min = max / 2.
        (500, 1000, &[1000], &[500, 500], &[1000, 500, 500]),
        (500, 1000, &[300, 300], &[300, 300], &[1000, 600]),
        (0, 10, &[10], &[10], &[10, 10]),
        (5, 10, &[7, 3], &[5, 2, 3], &[10, 5, 5]),
        (2, 10, &[10], &[8, 2], &[10, 8]),
        (9, 10, &[3], &[1, 1, 1], &[10, 1, 1, 1]),
        (3, 7, &[7], &[4, 3], &[7, 4]),
    ];
    for &(min, max, msgs, batches, asks) in cases {
        let (b, a) = run_case(min, max, msgs).await;
        assert_eq!(
            b, batches,
            "batches for min {min} max {max} messages {msgs:?}"
        );
        assert_eq!(a, asks, "asks for min {min} max {max} messages {msgs:?}");
    }
}

#[tokio::test]
async fn manual_demand_asks_only_when_told() {
    let (dtx, mut drx) = mpsc::unbounded_channel();
    let mut counting = Counting::new();
    counting.demands = Some(dtx);
    let producer = stage::start_producer(counting, ProducerOptions::new())
        .await
        .unwrap();
    let (mut rec, mut rx) = Recorder::new();
    rec.manual = true;
    let consumer = stage::start_consumer(rec, ConsumerOptions::new())
        .await
        .unwrap();
    let sub = consumer
        .subscribe(&producer.producer(), SubscribeOptions::new())
        .await
        .unwrap();
    sync_producer(&producer).await;
    assert!(
        drain(&mut drx).is_empty(),
        "a manual consumer asks nothing by itself"
    );
    assert!(sub.ask(3));
    assert_eq!(batch(&mut rx).await, vec![0, 1, 2]);
    assert!(sub.ask(5));
    assert_eq!(batch(&mut rx).await, vec![3, 4, 5, 6, 7]);
    sync_consumer(&consumer).await;
    sync_producer(&producer).await;
    assert_eq!(drain(&mut drx), vec![3, 5]);
}

#[tokio::test]
async fn accumulate_holds_demand_and_events_until_forward() {
    let (dtx, mut drx) = mpsc::unbounded_channel();
    let mut counting = Counting::new();
    counting.demands = Some(dtx);
    let producer = stage::start_producer(
        counting,
        ProducerOptions::new().demand(DemandMode::Accumulate),
    )
    .await
    .unwrap();
    let (rec, mut rx) = Recorder::new();
    let consumer = stage::start_consumer(rec, ConsumerOptions::new())
        .await
        .unwrap();
    consumer
        .subscribe(&producer.producer(), SubscribeOptions::new().max_demand(10))
        .await
        .unwrap();
    producer.send(Cmd::Emit(vec![100, 101])).ok().unwrap();
    sync_producer(&producer).await;
    assert!(
        drain(&mut drx).is_empty(),
        "no handle_demand while accumulating"
    );
    let info = producer.info();
    assert_eq!(info.demand_mode, Some(DemandMode::Accumulate));
    assert_eq!(info.buffered, 2);
    assert_eq!(
        producer.demand_mode().await.unwrap(),
        Some(DemandMode::Accumulate)
    );

    producer.demand(DemandMode::Forward).unwrap();
    // Replayed in order, as GenStage 1.3.2 does (checked with elixir): the ask of 10
    // came first, so handle_demand(10) fills it (batches of at most max - min = 5);
    // the held 100, 101 then wait in the buffer and go out on the next ask (5: the
    // two buffered, then handle_demand(3)).
    assert_eq!(batch(&mut rx).await, (0..5).collect::<Vec<_>>());
    assert_eq!(batch(&mut rx).await, (5..10).collect::<Vec<_>>());
    assert_eq!(batch(&mut rx).await, vec![100, 101]);
    assert_eq!(batch(&mut rx).await, vec![10, 11, 12]);
    sync_producer(&producer).await;
    assert_eq!(drain(&mut drx)[..2], [10, 3]);
    assert_eq!(
        producer.demand_mode().await.unwrap(),
        Some(DemandMode::Forward)
    );
    assert_eq!(consumer.demand_mode().await.unwrap(), None);
}

#[tokio::test]
async fn producer_keeps_unmet_demand() {
    let (dtx, mut drx) = mpsc::unbounded_channel();
    let producer = stage::start_producer(Scripted { demands: dtx }, ProducerOptions::new())
        .await
        .unwrap();
    let (rec, mut rx) = Recorder::new();
    let consumer = stage::start_consumer(rec, ConsumerOptions::new())
        .await
        .unwrap();
    consumer
        .subscribe(&producer.producer(), SubscribeOptions::new().max_demand(10))
        .await
        .unwrap();
    assert_eq!(sync_producer(&producer).await, 10, "asked 10, emitted none");
    assert_eq!(producer.info().pending_demand, 10);
    // Later, with no new ask, events emitted from handle_info go straight out.
    producer.send(Cmd::Emit(vec![1, 2, 3, 4])).ok().unwrap();
    assert_eq!(batch(&mut rx).await, vec![1, 2, 3, 4]);
    assert_eq!(sync_producer(&producer).await, 6);
    assert_eq!(drain(&mut drx), vec![10]);
}

async fn overflow(keep: BufferKeep) -> (Vec<u64>, orbit::stage::StageInfo) {
    let (dtx, _drx) = mpsc::unbounded_channel();
    let producer = stage::start_producer(
        Scripted { demands: dtx },
        ProducerOptions::new().buffer_size(5).buffer_keep(keep),
    )
    .await
    .unwrap();
    producer.send(Cmd::Emit((0..8).collect())).ok().unwrap();
    sync_producer(&producer).await;
    let info = producer.info();
    let (rec, mut rx) = Recorder::new();
    let consumer = stage::start_consumer(rec, ConsumerOptions::new())
        .await
        .unwrap();
    consumer
        .subscribe(&producer.producer(), SubscribeOptions::new())
        .await
        .unwrap();
    (batch(&mut rx).await, info)
}

#[tokio::test]
async fn buffer_overflow_keeps_last_or_first() {
    let (events, info) = overflow(BufferKeep::Last).await;
    assert_eq!(events, vec![3, 4, 5, 6, 7]);
    assert_eq!((info.buffered, info.dropped), (5, 3));
    let (events, info) = overflow(BufferKeep::First).await;
    assert_eq!(events, vec![0, 1, 2, 3, 4]);
    assert_eq!((info.buffered, info.dropped), (5, 3));
}

/// Emits 100 events every millisecond, whatever the demand.
struct Flood {
    next: u64,
}

impl orbit::stage::Producer for Flood {
    type Event = u64;
    type Info = ();

    async fn init(
        &mut self,
        ctx: &mut orbit::stage::ProducerContext<Self>,
    ) -> Result<(), orbit::ExitReason> {
        ctx.send_after((), Duration::from_millis(1)).unwrap();
        Ok(())
    }

    async fn handle_demand(
        &mut self,
        _demand: usize,
        _ctx: &mut orbit::stage::ProducerContext<Self>,
    ) -> Result<Vec<u64>, orbit::ExitReason> {
        Ok(Vec::new())
    }

    async fn handle_info(
        &mut self,
        _msg: orbit::Message<()>,
        ctx: &mut orbit::stage::ProducerContext<Self>,
    ) -> Result<Vec<u64>, orbit::ExitReason> {
        ctx.send_after((), Duration::from_millis(1)).unwrap();
        let events = (self.next..self.next + 100).collect();
        self.next += 100;
        Ok(events)
    }
}

#[tokio::test(start_paused = true)]
async fn backpressure_bounds_what_a_flooding_producer_holds() {
    let producer = stage::start_producer(Flood { next: 0 }, ProducerOptions::new())
        .await
        .unwrap();
    let (mut rec, mut rx) = Recorder::new();
    rec.per_event = Some(Duration::from_millis(1));
    let consumer = stage::start_consumer(rec, ConsumerOptions::new())
        .await
        .unwrap();
    consumer
        .subscribe(&producer.producer(), SubscribeOptions::new())
        .await
        .unwrap();
    let (max_demand, buffer_size) = (1000u64, 10_000u64);
    let mut handled = 0u64;
    while handled < 5_000 {
        handled += batch(&mut rx).await.len() as u64;
        let p = producer.info();
        let in_flight = p.events_out - handled;
        assert!(
            p.buffered <= buffer_size,
            "buffer {} over its size",
            p.buffered
        );
        assert!(in_flight <= max_demand, "{in_flight} events in flight");
        assert!(p.buffered + in_flight <= max_demand + buffer_size);
    }
    let p = producer.info();
    assert!(p.peak_buffered <= buffer_size);
    assert!(
        p.dropped > 0,
        "the flood overflowed the buffer and was dropped"
    );
    let c = consumer.info();
    assert!(c.events_in <= p.events_out && p.events_out - c.events_in <= max_demand);
}
