//! ConsumerSupervisor: one child per event, demand re-asked as children finish,
//! transient restarts.

mod stage_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use orbit::stage::{
    self, ConsumerChildSpec, ConsumerOptions, ConsumerRestart, ConsumerSupervisor, NoEvents,
    ProducerOptions, StageRef, SubscribeOptions, SupervisorRequest,
};
use orbit::ExitReason;
use stage_common::*;
use tokio::sync::{mpsc, oneshot, Semaphore};

async fn count(sup: &StageRef<u64, NoEvents, SupervisorRequest>) -> usize {
    let (tx, rx) = oneshot::channel();
    sup.send(SupervisorRequest::CountChildren(tx)).ok().unwrap();
    rx.await.unwrap()
}

#[tokio::test]
async fn one_child_per_event_and_asks_as_children_finish() {
    let (dtx, mut drx) = mpsc::unbounded_channel();
    let mut counting = Counting::up_to(40);
    counting.demands = Some(dtx);
    let producer = stage::start_producer(counting, ProducerOptions::new())
        .await
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let (etx, mut erx) = mpsc::unbounded_channel();
    let g = gate.clone();
    let spec = ConsumerChildSpec::task(move |e: u64| {
        let (g, etx) = (g.clone(), etx.clone());
        async move {
            let _ = etx.send(e);
            // Each child holds its slot until the test lets one go.
            g.acquire().await.unwrap().forget();
        }
    });
    let sup = stage::start_consumer(ConsumerSupervisor::new(spec), ConsumerOptions::new())
        .await
        .unwrap();
    sup.subscribe(
        &producer.producer(),
        SubscribeOptions::new().max_demand(10).min_demand(5),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(erx.recv().await.unwrap());
    }
    assert_eq!(count(&sup).await, 10, "at most max_demand children at once");
    assert!(erx.try_recv().is_err());
    // Five children finish: that reaches min_demand, so the supervisor asks 5.
    gate.add_permits(5);
    for _ in 0..5 {
        seen.push(erx.recv().await.unwrap());
    }
    gate.add_permits(1000);
    while seen.len() < 40 {
        seen.push(erx.recv().await.unwrap());
    }
    seen.sort();
    assert_eq!(seen, (0..40).collect::<Vec<u64>>());
    let demands = drain(&mut drx);
    assert_eq!(demands[..2], [10, 5]);
    assert!(demands.iter().all(|d| *d <= 10));
    assert!(orbit::process_info(sup.pid()).unwrap().trap_exit);
}

#[tokio::test]
async fn transient_children_restart_with_their_event() {
    for (restart, runs_of_3) in [
        (ConsumerRestart::Transient, 2),
        (ConsumerRestart::Temporary, 1),
    ] {
        let producer = stage::start_producer(Counting::up_to(5), ProducerOptions::new())
            .await
            .unwrap();
        let failed_once = Arc::new(AtomicBool::new(false));
        let (etx, mut erx) = mpsc::unbounded_channel();
        let f = failed_once.clone();
        let spec = ConsumerChildSpec::task(move |e: u64| {
            let (f, etx) = (f.clone(), etx.clone());
            async move {
                let _ = etx.send(e);
                if e == 3 && !f.swap(true, Ordering::SeqCst) {
                    return Err::<(), _>("first try fails");
                }
                Ok(())
            }
        })
        .restart(restart);
        let sup = stage::start_consumer(ConsumerSupervisor::new(spec), ConsumerOptions::new())
            .await
            .unwrap();
        sup.subscribe(&producer.producer(), SubscribeOptions::new())
            .await
            .unwrap();
        let mut seen = Vec::new();
        while seen.len() < 4 + runs_of_3 {
            seen.push(erx.recv().await.unwrap());
        }
        assert_eq!(
            seen.iter().filter(|e| **e == 3).count(),
            runs_of_3,
            "{restart:?}"
        );
        sup.stop(ExitReason::Shutdown, std::time::Duration::from_secs(5))
            .await
            .unwrap();
    }
}
