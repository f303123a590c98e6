//! Issue 16 item 6: a PartitionDispatcher whose partitions' consumers ask unequally
//! must not starve a partition that has demand. Events hashed to a partition without
//! demand wait in that partition's queue; when its consumer later asks, the ask is
//! served from the queue AND forwarded to `handle_demand` (as GenStage's
//! `PartitionDispatcher.ask/3` returns the full counter), so the producer keeps
//! producing and the other partition's demand is met.

mod stage_common;

use orbit::stage::SubscribeOptions;
use orbit::stage::{self, ConsumerOptions, PartitionDispatcher, ProducerOptions, StageRef};
use stage_common::*;
use tokio::sync::{mpsc, oneshot};

async fn sync_producer<I: Send + 'static>(p: &StageRef<I, u64, Cmd>) -> usize {
    let (tx, rx) = oneshot::channel();
    p.send(Cmd::Sync(tx)).ok().unwrap();
    rx.await.unwrap()
}

async fn manual_recorder() -> (
    StageRef<u64, stage::NoEvents, CCmd>,
    mpsc::UnboundedReceiver<Seen>,
) {
    let (mut rec, rx) = Recorder::new();
    rec.manual = true;
    (
        stage::start_consumer(rec, ConsumerOptions::new())
            .await
            .unwrap(),
        rx,
    )
}

#[tokio::test]
async fn a_slow_partition_does_not_starve_the_other() {
    let (dtx, mut drx) = mpsc::unbounded_channel();
    let producer = stage::start_producer(
        Scripted { demands: dtx },
        ProducerOptions::new().dispatcher(PartitionDispatcher::with_hash(2, |e: &u64| {
            Some((e % 2) as usize)
        })),
    )
    .await
    .unwrap();
    let (fast, mut rx0) = manual_recorder().await;
    let (slow, mut rx1) = manual_recorder().await;
    let s0 = fast
        .subscribe(
            &producer.producer(),
            SubscribeOptions::new().max_demand(4).partition(0),
        )
        .await
        .unwrap();
    let s1 = slow
        .subscribe(
            &producer.producer(),
            SubscribeOptions::new().max_demand(2).partition(1),
        )
        .await
        .unwrap();
    s0.ask(4);
    sync_producer(&producer).await;
    s1.ask(2);
    sync_producer(&producer).await;
    // Six events, all for the slow partition: 2 go out, 4 wait in its queue.
    producer
        .send(Cmd::Emit(vec![1, 3, 5, 7, 9, 11]))
        .ok()
        .unwrap();
    assert_eq!(batch(&mut rx1).await, vec![1, 3]);
    // The slow consumer asks again: served from its queue, and (as in GenStage) the
    // ask is forwarded to handle_demand.
    s1.ask(2);
    assert_eq!(batch(&mut rx1).await, vec![5, 7]);
    sync_producer(&producer).await;
    assert_eq!(
        drain(&mut drx),
        vec![4, 2, 2],
        "handle_demand sees each ask, as GenStage's does"
    );
    // The fast partition still wants 4: its event goes straight out.
    producer.send(Cmd::Emit(vec![0])).ok().unwrap();
    sync_producer(&producer).await;
    assert_eq!(
        producer.info().buffered,
        2,
        "only the slow partition's queued 9 and 11 wait; the event for the partition \
         with demand went out"
    );
    assert_eq!(batch(&mut rx0).await, vec![0]);
}
