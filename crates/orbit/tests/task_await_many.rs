//! `Task::await_many`: all results in order under one deadline; a crash or a timeout
//! fails it and leaves no task running.

use std::time::Duration;

use orbit::{ExitReason, Task, TaskError};
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_results_in_order() {
    let tasks: Vec<Task<u32>> = (0..100u32)
        .map(|i| {
            Task::run_async(async move {
                // Finish out of order.
                for _ in 0..(100 - i) % 7 {
                    tokio::task::yield_now().await;
                }
                i * 2
            })
            .unwrap()
        })
        .collect();
    let out = Task::await_many(tasks, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(out, (0..100u32).map(|i| i * 2).collect::<Vec<_>>());
    assert!(Task::<u32>::await_many(Vec::new(), Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_shuts_the_rest_down() {
    let mut tasks = Vec::new();
    let mut pids = Vec::new();
    for i in 0..20u32 {
        let t = Task::run_async(async move {
            if i % 4 == 0 {
                std::future::pending::<()>().await;
            }
            i
        })
        .unwrap();
        pids.push(t.pid());
        tasks.push(t);
    }
    let r = Task::await_many(tasks, Duration::from_millis(50)).await;
    assert_eq!(r, Err(TaskError::Timeout));
    for pid in pids {
        assert!(orbit::process_info(pid).is_none(), "{pid} still running");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_fails_it_and_stops_the_others() {
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let slow = Task::run_async(async move {
        std::future::pending::<()>().await;
        1u32
    })
    .unwrap();
    let slow_pid = slow.pid();
    let crash = Task::run_async(async move {
        let _ = go_rx.await;
        panic!("task crashed");
    })
    .unwrap();
    let ok = Task::run_async(async { 3u32 }).unwrap();
    go_tx.send(()).unwrap();
    let r = Task::await_many(vec![slow, crash, ok], Duration::from_secs(5)).await;
    assert!(
        matches!(r, Err(TaskError::Exit(ExitReason::Panic(_)))),
        "{r:?}"
    );
    assert!(orbit::process_info(slow_pid).is_none());
}
