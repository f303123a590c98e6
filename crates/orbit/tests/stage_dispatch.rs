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

async fn sync_consumer(c: &StageRef<u64, stage::NoEvents, CCmd>) {
    let (tx, rx) = oneshot::channel();
    c.send(CCmd::Sync(tx)).ok().unwrap();
    rx.await.unwrap();
}

/// Batches a consumer has received by now (a cancel notice is skipped).
async fn received(
    c: &StageRef<u64, stage::NoEvents, CCmd>,
    rx: &mut mpsc::UnboundedReceiver<Seen>,
) -> Vec<Vec<u64>> {
    sync_consumer(c).await;
    drain(rx)
        .into_iter()
        .filter_map(|s| match s {
            Seen::Batch(b) => Some(b),
            Seen::Cancelled(_) => None,
        })
        .collect()
}

/// As GenStage 1.3.2 (`DemandDispatcher.cancel/2`, `ask/3`, `dispatch/3`; the case is
/// one of `tests/stage_diff.rs`'s): a cancelled consumer's demand (5, already asked of
/// `handle_demand`) becomes pending; 3 events emitted with no demand are buffered and use
/// up 3 of it; the next ask of 4 forwards only 4 - 2 = 2, so only 2 buffered events go
/// out and the third stays buffered although the consumer still wants 2. Before the
/// fix the producer drained its buffer to the consumers' demand: c2 got [1, 2, 3].
#[tokio::test]
async fn demand_dispatcher_after_a_cancel_takes_from_the_buffer_only_what_it_forwards() {
    let (dtx, mut drx) = mpsc::unbounded_channel();
    let producer = stage::start_producer(Scripted { demands: dtx }, ProducerOptions::new())
        .await
        .unwrap();
    let (c1, _rx1) = recorder(true).await;
    let (c2, mut rx2) = recorder(true).await;
    let temporary = || SubscribeOptions::new().cancel(stage::CancelMode::Temporary);
    let s1 = c1
        .subscribe(&producer.producer(), temporary())
        .await
        .unwrap();
    let s2 = c2
        .subscribe(&producer.producer(), temporary())
        .await
        .unwrap();
    s1.ask(5);
    s1.cancel(ExitReason::Normal);
    producer.send(Cmd::Emit(vec![1, 2, 3])).ok().unwrap();
    s2.ask(4);
    sync_producer(&producer).await;
    assert_eq!(received(&c2, &mut rx2).await, vec![vec![1, 2]]);
    assert_eq!(
        producer.info().buffered,
        1,
        "GenStage keeps event 3 buffered"
    );
    assert_eq!(drain(&mut drx), vec![5], "the ask of 4 was covered");
}

/// As GenStage 1.3.2 (`PartitionDispatcher.cancel/2`; cases of `tests/stage_diff.rs`):
/// a cancelled partition's queued events are dropped and asked for again (taken from
/// the buffer first, then from `handle_demand`), and its unfilled demand becomes
/// pending, absorbing later asks. Before the fix the queue was kept for the next
/// consumer and its demand was forgotten: `handle_demand` saw [2, 2] instead of
/// [2, 2, 1] in the first case and [1, 1] instead of [1] in the second.
#[tokio::test]
async fn partition_dispatcher_cancel_drops_the_queue_and_keeps_the_demand_pending() {
    async fn setup(
        n: usize,
    ) -> (
        StageRef<stage::NoEvents, u64, Cmd>,
        mpsc::UnboundedReceiver<usize>,
        Vec<(
            StageRef<u64, stage::NoEvents, CCmd>,
            stage::Subscription,
            mpsc::UnboundedReceiver<Seen>,
        )>,
    ) {
        let (dtx, drx) = mpsc::unbounded_channel();
        let producer = stage::start_producer(
            Scripted { demands: dtx },
            ProducerOptions::new().dispatcher(PartitionDispatcher::with_hash(n, move |e: &u64| {
                Some((*e % n as u64) as usize)
            })),
        )
        .await
        .unwrap();
        let mut cs = Vec::new();
        for i in 0..n {
            let (c, rx) = recorder(true).await;
            let o = SubscribeOptions::new()
                .partition(i)
                .cancel(stage::CancelMode::Temporary);
            let s = c.subscribe(&producer.producer(), o).await.unwrap();
            cs.push((c, s, rx));
        }
        (producer, drx, cs)
    }

    // Event 4 is queued for partition 0 (its consumer asked 2); cancelling it drops the
    // event and asks handle_demand for 1 again.
    let (producer, mut drx, mut cs) = setup(2).await;
    cs[0].1.ask(2);
    cs[1].1.ask(2);
    producer.send(Cmd::Emit(vec![0, 2, 4, 1])).ok().unwrap();
    cs[0].1.cancel(ExitReason::Normal);
    sync_producer(&producer).await;
    assert_eq!(drain(&mut drx), vec![2, 2, 1]);
    assert_eq!(producer.info().buffered, 0, "event 4 was dropped");
    assert_eq!(
        {
            let (c, _, rx) = &mut cs[0];
            received(c, rx).await
        },
        vec![vec![0, 2]]
    );
    assert_eq!(
        {
            let (c, _, rx) = &mut cs[1];
            received(c, rx).await
        },
        vec![vec![1]]
    );

    // Partition 2's consumer leaves 3 of its demand unfilled; the next ask (1, from
    // partition 0) is covered by it and not forwarded.
    let (producer, mut drx, mut cs) = setup(3).await;
    cs[2].1.ask(1);
    producer.send(Cmd::Emit(vec![3, 2, 8, 9])).ok().unwrap();
    cs[2].1.ask(3);
    cs[2].1.cancel(ExitReason::Normal);
    cs[0].1.ask(1);
    sync_producer(&producer).await;
    assert_eq!(drain(&mut drx), vec![1]);
    assert_eq!(
        {
            let (c, _, rx) = &mut cs[0];
            received(c, rx).await
        },
        vec![vec![3]]
    );
    assert_eq!(
        {
            let (c, _, rx) = &mut cs[2];
            received(c, rx).await
        },
        vec![vec![2, 8]]
    );
}

/// `[orbit, stage, dispatch]` reports each batch sent to a consumer, with its size and
/// the producer's pid.
#[tokio::test]
async fn dispatch_emits_a_telemetry_event_per_batch() {
    let (dtx, _drx) = mpsc::unbounded_channel();
    let producer = stage::start_producer(Scripted { demands: dtx }, ProducerOptions::new())
        .await
        .unwrap();
    let me = producer.pid().to_string();
    let (tx, mut batches) = mpsc::unbounded_channel();
    orbit::telemetry::attach(
        "stage_dispatch_test",
        &["orbit", "stage", "dispatch"],
        move |ev| {
            if ev.meta("producer").as_deref() == Some(me.as_str()) {
                let _ = tx.send(ev.measurement("events").unwrap_or(-1.0));
            }
        },
    )
    .unwrap();
    let (c, mut rx) = recorder(true).await;
    let s = c
        .subscribe(&producer.producer(), SubscribeOptions::new())
        .await
        .unwrap();
    s.ask(4);
    producer.send(Cmd::Emit((0..6).collect())).ok().unwrap();
    assert_eq!(batch(&mut rx).await, vec![0, 1, 2, 3]);
    assert_eq!(batches.recv().await, Some(4.0));
    s.ask(2);
    assert_eq!(batch(&mut rx).await, vec![4, 5]);
    assert_eq!(batches.recv().await, Some(2.0));
    orbit::telemetry::detach("stage_dispatch_test");
    assert!(batches.try_recv().is_err());
}
