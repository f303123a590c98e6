//! Cancellation and subscription errors: each cancel mode when the producer exits
//! normally and abnormally, consumer-side cancel, dead producers, bad options, and
//! a producer_consumer in the middle of a pipeline.

mod stage_common;

use orbit::stage::{
    self, CancelKind, CancelMode, ConsumerOptions, NoEvents, ProducerConsumer,
    ProducerConsumerContext, ProducerConsumerOptions, ProducerOptions, ProducerRef, StageRef,
    SubscribeError, SubscribeOptions, Subscription,
};
use orbit::ExitReason;
use stage_common::*;
use tokio::sync::{mpsc, oneshot};

async fn consumer() -> (StageRef<u64, NoEvents, CCmd>, mpsc::UnboundedReceiver<Seen>) {
    let (rec, rx) = Recorder::new();
    (
        stage::start_consumer(rec, ConsumerOptions::new())
            .await
            .unwrap(),
        rx,
    )
}

/// True if the consumer answers after handling everything sent before.
async fn answers(c: &StageRef<u64, NoEvents, CCmd>) -> bool {
    let (tx, rx) = oneshot::channel();
    c.send(CCmd::Sync(tx)).is_ok() && rx.await.is_ok()
}

#[tokio::test]
async fn cancel_modes_on_producer_exit() {
    let crash = ExitReason::error("boom");
    // (mode, producer's reason, consumer survives)
    let cases = [
        (CancelMode::Permanent, ExitReason::Normal, false),
        (CancelMode::Permanent, crash.clone(), false),
        (CancelMode::Transient, ExitReason::Normal, true),
        (CancelMode::Transient, ExitReason::Shutdown, true),
        (CancelMode::Transient, crash.clone(), false),
        (CancelMode::Temporary, ExitReason::Normal, true),
        (CancelMode::Temporary, crash.clone(), true),
    ];
    for (mode, reason, survives) in cases {
        let producer = stage::start_producer(Counting::up_to(0), ProducerOptions::new())
            .await
            .unwrap();
        let (c, mut rx) = consumer().await;
        c.subscribe(&producer.producer(), SubscribeOptions::new().cancel(mode))
            .await
            .unwrap();
        producer.send(Cmd::Stop(reason.clone())).ok().unwrap();
        assert_eq!(producer.wait_exit().await, reason);
        match rx.recv().await {
            Some(Seen::Cancelled(cancel)) => {
                assert_eq!(cancel.kind, CancelKind::Down);
                assert_eq!(cancel.reason, reason);
            }
            other => panic!("expected handle_cancel, got {other:?}"),
        }
        assert_eq!(answers(&c).await, survives, "{mode:?} on {reason}");
        if !survives {
            assert_eq!(
                c.wait_exit().await,
                reason,
                "{mode:?} exits with the producer's reason"
            );
        }
    }
}

#[tokio::test]
async fn consumer_cancel_is_confirmed_then_the_mode_applies() {
    for (mode, survives) in [
        (CancelMode::Permanent, false),
        (CancelMode::Temporary, true),
    ] {
        let producer = stage::start_producer(Counting::up_to(0), ProducerOptions::new())
            .await
            .unwrap();
        let (c, mut rx) = consumer().await;
        let sub = c
            .subscribe(&producer.producer(), SubscribeOptions::new().cancel(mode))
            .await
            .unwrap();
        assert!(sub.cancel(ExitReason::Shutdown));
        match rx.recv().await {
            Some(Seen::Cancelled(cancel)) => {
                assert_eq!(cancel.kind, CancelKind::Cancel);
                assert_eq!(cancel.reason, ExitReason::Shutdown);
            }
            other => panic!("expected handle_cancel, got {other:?}"),
        }
        assert_eq!(answers(&c).await, survives);
        assert!(producer.is_alive());
        assert_eq!(producer.info().consumers, 0);
    }
}

#[tokio::test]
async fn subscribing_to_a_dead_producer() {
    for mode in [
        CancelMode::Permanent,
        CancelMode::Transient,
        CancelMode::Temporary,
    ] {
        let producer = stage::start_producer(Counting::new(), ProducerOptions::new())
            .await
            .unwrap();
        producer.send(Cmd::Stop(ExitReason::Normal)).ok().unwrap();
        producer.wait_exit().await;
        let (c, _rx) = consumer().await;
        let r = c
            .subscribe(&producer.producer(), SubscribeOptions::new().cancel(mode))
            .await;
        if mode == CancelMode::Temporary {
            assert!(r.is_ok());
            assert!(answers(&c).await);
        } else {
            assert_eq!(r.unwrap_err(), SubscribeError::NoProc(producer.pid()));
            assert_eq!(c.wait_exit().await, ExitReason::NoProc);
        }
    }
    // Also at start, through subscribe_to.
    let producer = stage::start_producer(Counting::new(), ProducerOptions::new())
        .await
        .unwrap();
    producer.send(Cmd::Stop(ExitReason::Normal)).ok().unwrap();
    producer.wait_exit().await;
    let (rec, _rx) = Recorder::new();
    let started = stage::start_consumer(
        rec,
        ConsumerOptions::new().subscribe_to(&producer.producer(), SubscribeOptions::new()),
    )
    .await;
    assert_eq!(
        started.unwrap_err(),
        stage::StartError::Init(ExitReason::NoProc)
    );
}

#[tokio::test]
async fn bad_subscriptions_are_clear_errors() {
    let producer = stage::start_producer(Counting::new(), ProducerOptions::new())
        .await
        .unwrap();
    let (c, _rx) = consumer().await;
    for (min, max) in [(10, 10), (11, 10), (0, 0)] {
        let r = c
            .subscribe(
                &producer.producer(),
                SubscribeOptions::new().max_demand(max).min_demand(min),
            )
            .await;
        assert_eq!(r.unwrap_err(), SubscribeError::InvalidDemand { min, max });
    }
    // A consumer is not a producer: found by pid, it is refused.
    let (other, _rx2) = consumer().await;
    let r = ProducerRef::<u64>::from_pid(other.pid()).await;
    assert_eq!(r.unwrap_err(), SubscribeError::NotAProducer(other.pid()));
    // A producer of u64 found by pid works.
    let p = ProducerRef::<u64>::from_pid(producer.pid()).await.unwrap();
    assert_eq!(p.pid(), producer.pid());
    // A producer cannot subscribe to anything.
    let r = producer
        .subscribe(&other.producer(), SubscribeOptions::new())
        .await;
    assert_eq!(r.unwrap_err(), SubscribeError::NotAConsumer(producer.pid()));
    assert!(answers(&c).await && answers(&other).await && producer.is_alive());
    let info = orbit::process_info(producer.pid()).unwrap();
    assert_eq!(info.label, Some("stage_producer"));
}

/// Doubles every event.
struct Doubler;

impl ProducerConsumer for Doubler {
    type In = u64;
    type Out = u64;
    type Info = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _from: &Subscription,
        _ctx: &mut ProducerConsumerContext<Self>,
    ) -> Result<Vec<u64>, ExitReason> {
        Ok(events.into_iter().map(|e| e * 2).collect())
    }
}

#[tokio::test]
async fn producer_consumer_pipeline_and_its_backpressure() {
    let (dtx, mut drx) = mpsc::unbounded_channel();
    let mut counting = Counting::up_to(5000);
    counting.demands = Some(dtx);
    let producer = stage::start_producer(counting, ProducerOptions::new())
        .await
        .unwrap();
    let middle = stage::start_producer_consumer(
        Doubler,
        ProducerConsumerOptions::new().subscribe_to(
            &producer.producer(),
            SubscribeOptions::new().max_demand(100),
        ),
    )
    .await
    .unwrap();
    // No consumer yet: the middle stage holds at most its max_demand, asks no more.
    let (tx, rx) = oneshot::channel();
    producer.send(Cmd::Sync(tx)).ok().unwrap();
    rx.await.unwrap();
    let (c, mut rx) = consumer().await;
    assert_eq!(drain(&mut drx), vec![100]);
    assert!(middle.info().buffered <= 100);
    c.subscribe(&middle.producer(), SubscribeOptions::new())
        .await
        .unwrap();
    let mut all = Vec::new();
    while all.len() < 5000 {
        all.extend(batch(&mut rx).await);
    }
    assert_eq!(all, (0..5000).map(|e| e * 2).collect::<Vec<u64>>());
    let m = middle.info();
    assert_eq!((m.events_in, m.events_out), (5000, 5000));
    // The producer ends; the permanent middle stage follows, then the consumer.
    producer.send(Cmd::Stop(ExitReason::Normal)).ok().unwrap();
    assert_eq!(middle.wait_exit().await, ExitReason::Normal);
    assert_eq!(c.wait_exit().await, ExitReason::Normal);
}
