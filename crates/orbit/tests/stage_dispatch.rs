//! Dispatchers: DemandDispatcher, BroadcastDispatcher (with GenStage issue 310's case)
//! and PartitionDispatcher, with their errors.

mod stage_common;

use orbit::stage::{
    self, BroadcastDispatcher, ConsumerOptions, DemandMode, PartitionDispatcher, ProducerOptions,
    StageRef, SubscribeError, SubscribeOptions,
};
use orbit::ExitReason;
use stage_common::*;
use tokio::sync::{mpsc, oneshot};

async fn sync_producer<I: Send + 'static>(p: &StageRef<I, u64, Cmd>) -> usize {
    let (tx, rx) = oneshot::channel();
    p.send(Cmd::Sync(tx)).ok().unwrap();
    rx.await.unwrap()
}

/// Collects `n` events from a recorder.
async fn collect(rx: &mut mpsc::UnboundedReceiver<Seen>, n: usize) -> Vec<u64> {
    let mut all = Vec::new();
    while all.len() < n {
        match rx.recv().await {
            Some(Seen::Batch(b)) => all.extend(b),
            // A refused extra subscription is reported to handle_cancel; skip it.
            Some(Seen::Cancelled(c)) => assert_eq!(c.kind, stage::CancelKind::Refused),
            None => panic!("consumer exited"),
        }
    }
    all
}

async fn recorder(
    manual: bool,
) -> (
    StageRef<u64, stage::NoEvents, CCmd>,
    mpsc::UnboundedReceiver<Seen>,
) {
    let (mut rec, rx) = Recorder::new();
    rec.manual = manual;
    (
        stage::start_consumer(rec, ConsumerOptions::new())
            .await
            .unwrap(),
        rx,
    )
}

#[tokio::test]
async fn demand_dispatcher_serves_largest_demand_first() {
    let (dtx, mut drx) = mpsc::unbounded_channel();
    let producer = stage::start_producer(Scripted { demands: dtx }, ProducerOptions::new())
        .await
        .unwrap();
    let (c1, mut rx1) = recorder(true).await;
    let (c2, mut rx2) = recorder(true).await;
    let s1 = c1
        .subscribe(&producer.producer(), SubscribeOptions::new())
        .await
        .unwrap();
    let s2 = c2
        .subscribe(&producer.producer(), SubscribeOptions::new())
        .await
        .unwrap();
    s1.ask(3);
    s2.ask(5);
    producer.send(Cmd::Emit((0..6).collect())).ok().unwrap();
    assert_eq!(batch(&mut rx2).await, vec![0, 1, 2, 3, 4]);
    assert_eq!(batch(&mut rx1).await, vec![5]);
    // c1 still wants 2: the next events go to it.
    producer.send(Cmd::Emit(vec![6, 7, 8])).ok().unwrap();
    assert_eq!(batch(&mut rx1).await, vec![6, 7]);
    assert_eq!(sync_producer(&producer).await, 0);
    assert_eq!(
        producer.info().buffered,
        1,
        "the event beyond all demand waits"
    );
    assert_eq!(drain(&mut drx), vec![3, 5]);
}

#[tokio::test]
async fn demand_dispatcher_forgets_a_cancelled_consumers_demand() {
    let (dtx, mut drx) = mpsc::unbounded_channel();
    let producer = stage::start_producer(Scripted { demands: dtx }, ProducerOptions::new())
        .await
        .unwrap();
    let (c1, mut rx1) = recorder(true).await;
    let s1 = c1
        .subscribe(
            &producer.producer(),
            SubscribeOptions::new().cancel(stage::CancelMode::Temporary),
        )
        .await
        .unwrap();
    s1.ask(10);
    assert_eq!(sync_producer(&producer).await, 10);
    s1.cancel(ExitReason::Normal);
    assert!(matches!(rx1.recv().await, Some(Seen::Cancelled(_))));
    let (c2, mut rx2) = recorder(true).await;
    let s2 = c2
        .subscribe(&producer.producer(), SubscribeOptions::new())
        .await
        .unwrap();
    s2.ask(4);
    // The 10 already asked of handle_demand cover the new ask: nothing asked again.
    assert_eq!(sync_producer(&producer).await, 10);
    assert_eq!(drain(&mut drx), vec![10]);
    producer.send(Cmd::Emit(vec![1, 2, 3, 4])).ok().unwrap();
    assert_eq!(batch(&mut rx2).await, vec![1, 2, 3, 4]);
    assert!(
        c1.is_alive(),
        "a temporary subscription survives its cancel"
    );
}

#[tokio::test]
async fn broadcast_sends_every_event_to_every_consumer_with_selectors() {
    let producer = stage::start_producer(
        Counting::up_to(1000),
        ProducerOptions::new()
            .dispatcher(BroadcastDispatcher::new())
            .demand(DemandMode::Accumulate),
    )
    .await
    .unwrap();
    let (a, mut rxa) = recorder(false).await;
    let (b, mut rxb) = recorder(false).await;
    a.subscribe(&producer.producer(), SubscribeOptions::new().max_demand(50))
        .await
        .unwrap();
    b.subscribe(
        &producer.producer(),
        SubscribeOptions::new()
            .max_demand(50)
            .selector(|e: &u64| e.is_multiple_of(2)),
    )
    .await
    .unwrap();
    // The same consumer cannot subscribe twice.
    let again = b
        .subscribe(&producer.producer(), SubscribeOptions::new())
        .await;
    assert_eq!(
        again.unwrap_err(),
        SubscribeError::AlreadySubscribed(b.pid())
    );
    producer.demand(DemandMode::Forward).unwrap();
    assert_eq!(collect(&mut rxa, 1000).await, (0..1000).collect::<Vec<_>>());
    assert_eq!(
        collect(&mut rxb, 500).await,
        (0..1000).step_by(2).collect::<Vec<_>>()
    );
}

/// GenStage issue 310: consumers with max_demand 100 and 10, demand accumulated until
/// both subscribed. GenStage stalls with events stuck in the producer's buffer; here
/// every event reaches both, whether the producer emits exactly the demand or more.
#[tokio::test]
async fn broadcast_with_unequal_demand_delivers_everything_issue_310() {
    for burst in [1, 3] {
        let mut counting = Counting::up_to(10_000);
        counting.burst = burst;
        let producer = stage::start_producer(
            counting,
            ProducerOptions::new()
                .dispatcher(BroadcastDispatcher::new())
                .demand(DemandMode::Accumulate),
        )
        .await
        .unwrap();
        let (greedy, mut rxg) = recorder(false).await;
        let (modest, mut rxm) = recorder(false).await;
        greedy
            .subscribe(
                &producer.producer(),
                SubscribeOptions::new().max_demand(100),
            )
            .await
            .unwrap();
        modest
            .subscribe(&producer.producer(), SubscribeOptions::new().max_demand(10))
            .await
            .unwrap();
        producer.demand(DemandMode::Forward).unwrap();
        let all: Vec<u64> = (0..10_000).collect();
        assert_eq!(collect(&mut rxm, 10_000).await, all, "burst {burst}");
        assert_eq!(collect(&mut rxg, 10_000).await, all, "burst {burst}");
        sync_producer(&producer).await;
        assert_eq!(producer.info().buffered, 0);
    }
}

#[tokio::test]
async fn partition_dispatcher_routes_by_hash_and_discards() {
    let producer = stage::start_producer(
        Counting::up_to(300),
        ProducerOptions::new()
            .dispatcher(PartitionDispatcher::with_hash(2, |e: &u64| {
                (!e.is_multiple_of(3)).then_some((e % 2) as usize)
            }))
            .demand(DemandMode::Accumulate),
    )
    .await
    .unwrap();
    let (even, mut rx0) = recorder(false).await;
    let (odd, mut rx1) = recorder(false).await;
    even.subscribe(
        &producer.producer(),
        SubscribeOptions::new().max_demand(10).partition(0),
    )
    .await
    .unwrap();
    odd.subscribe(
        &producer.producer(),
        SubscribeOptions::new().max_demand(10).partition(1),
    )
    .await
    .unwrap();
    producer.demand(DemandMode::Forward).unwrap();
    let evens: Vec<u64> = (0..300).filter(|e| e % 3 != 0 && e % 2 == 0).collect();
    let odds: Vec<u64> = (0..300).filter(|e| e % 3 != 0 && e % 2 == 1).collect();
    assert_eq!(collect(&mut rx0, evens.len()).await, evens);
    assert_eq!(collect(&mut rx1, odds.len()).await, odds);
}

#[tokio::test]
async fn partition_dispatcher_by_name_and_its_subscribe_errors() {
    let names = PartitionDispatcher::with_names(["even", "odd"], |e: &u64| Some((e % 2) as usize));
    let producer = stage::start_producer(
        Counting::up_to(20),
        ProducerOptions::new().dispatcher(names),
    )
    .await
    .unwrap();
    let (odd, mut rx) = recorder(false).await;
    odd.subscribe(
        &producer.producer(),
        SubscribeOptions::new().partition("odd"),
    )
    .await
    .unwrap();
    assert_eq!(
        batch(&mut rx).await,
        (1..20).step_by(2).collect::<Vec<u64>>()
    );
    // The even events wait in their partition's queue for a consumer; the producer
    // (which had only 20 events) still owes 980 of the 1000 asked.
    assert_eq!(sync_producer(&producer).await, 980);
    assert_eq!(producer.info().buffered, 10);
    let (other, _rx) = recorder(false).await;
    let taken = other
        .subscribe(
            &producer.producer(),
            SubscribeOptions::new().partition("odd"),
        )
        .await;
    assert_eq!(
        taken.unwrap_err(),
        SubscribeError::PartitionTaken {
            partition: "\"odd\"".into(),
            by: odd.pid()
        }
    );
    let unknown = other
        .subscribe(
            &producer.producer(),
            SubscribeOptions::new().partition("three"),
        )
        .await;
    assert!(matches!(
        unknown,
        Err(SubscribeError::UnknownPartition { .. })
    ));
    let missing = other
        .subscribe(&producer.producer(), SubscribeOptions::new())
        .await;
    assert_eq!(missing.unwrap_err(), SubscribeError::PartitionRequired);
    let numbered = stage::start_producer(
        Counting::new(),
        ProducerOptions::new().dispatcher(PartitionDispatcher::<u64>::new(2)),
    )
    .await
    .unwrap();
    let out_of_range = other
        .subscribe(&numbered.producer(), SubscribeOptions::new().partition(2))
        .await;
    assert!(matches!(
        out_of_range,
        Err(SubscribeError::UnknownPartition { .. })
    ));
    // Refusals never stop the consumer, whatever its cancel mode.
    assert!(other.is_alive());
    assert!(producer.is_alive());
}

#[tokio::test]
async fn a_hash_returning_a_missing_partition_stops_the_producer_clearly() {
    let producer = stage::start_producer(
        Counting::new(),
        ProducerOptions::new().dispatcher(PartitionDispatcher::with_hash(2, |_: &u64| Some(7))),
    )
    .await
    .unwrap();
    let (c, _rx) = recorder(false).await;
    c.subscribe(&producer.producer(), SubscribeOptions::new().partition(0))
        .await
        .unwrap();
    let reason = producer.wait_exit().await.to_string();
    assert!(
        reason.contains("partition 7") && reason.contains("only 2"),
        "{reason}"
    );
    // The permanent consumer follows its producer.
    assert_eq!(c.wait_exit().await.to_string(), reason);
}
