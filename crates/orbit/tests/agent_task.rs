//! Agent, Task and Task.Supervisor: otp-semantics §2.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orbit::*;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_get_update_get_and_update_cast_stop() {
    let a = Agent::start(HashMap::<String, u32>::new).await.unwrap();
    a.update(|m| {
        m.insert("a".into(), 1);
    })
    .await
    .unwrap();
    a.cast(|m| *m.entry("a".into()).or_default() += 10);
    assert_eq!(a.get(|m| m.get("a").copied()).await.unwrap(), Some(11));
    let old = a.get_and_update(|m| m.insert("a".into(), 0)).await.unwrap();
    assert_eq!(old, Some(11));
    a.stop(ExitReason::Normal, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(a.get(|m| m.len()).await, Err(CallError::NoProc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_agent_function_crashes_the_agent_and_the_caller_gets_the_reason() {
    let a = Agent::start(|| 0u32).await.unwrap();
    let r: Result<(), CallError> = a
        .update(|_| {
            if true {
                panic!("agent fn failed");
            }
        })
        .await;
    assert_eq!(
        r,
        Err(CallError::Exit(ExitReason::Panic("agent fn failed".into())))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_start_link_needs_a_process() {
    assert_eq!(
        Agent::start_link(|| 1).await.unwrap_err(),
        Error::NotInProcess
    );
    let v = run_in_process(async {
        let a = Agent::start_link(|| 41).await.unwrap();
        a.get_and_update(|v| {
            *v += 1;
            *v
        })
        .await
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(v, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_and_await() {
    let t = Task::run_async(async { 6 * 7 }).unwrap();
    assert_eq!(t.await_result().await, Ok(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_await_timeout_shuts_the_task_down() {
    let (_never, gate) = oneshot::channel::<()>();
    let t = Task::run_async(async move {
        let _ = gate.await;
    })
    .unwrap();
    let pid = t.pid();
    assert_eq!(
        t.await_timeout(Duration::from_millis(10)).await,
        Err(TaskError::Timeout)
    );
    assert!(
        process_info(pid).is_none(),
        "the timed-out task was stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_yield_keeps_the_task_running() {
    let (go, gate) = oneshot::channel::<u32>();
    let mut t = Task::run_async(async move { gate.await.unwrap_or(0) + 1 }).unwrap();
    assert_eq!(t.yield_result(Duration::from_millis(5)).await, None);
    go.send(9).unwrap();
    assert_eq!(t.yield_result(Duration::from_secs(5)).await, Some(Ok(10)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_shutdown_stops_a_running_task() {
    let (_never, gate) = oneshot::channel::<()>();
    let t = Task::run_async(async move {
        let _ = gate.await;
        1
    })
    .unwrap();
    let pid = t.pid();
    assert_eq!(t.shutdown(Duration::from_secs(1)).await, None);
    assert!(process_info(pid).is_none());
    let done = Task::run_async(async { 5 }).unwrap();
    let mut done = done;
    assert_eq!(done.yield_result(Duration::from_secs(5)).await, Some(Ok(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_async_task_kills_its_linked_caller() {
    let caller = spawn(|mut c: Context<()>| async move {
        let _t = Task::run_async(async {
            if true {
                panic!("task crashed");
            }
        })
        .unwrap();
        c.recv().await; // never comes: the link kills this process first
    })
    .unwrap();
    assert_eq!(
        caller.wait_exit().await,
        ExitReason::Panic("task crashed".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_nolink_crash_does_not_kill_the_caller() {
    let sup = TaskSupervisor::start().unwrap();
    let s = sup.clone();
    let outcome = run_in_process(async move {
        let t = s
            .async_nolink(async {
                if true {
                    panic!("nolink crash");
                }
            })
            .unwrap();
        t.await_result().await
    })
    .await
    .expect("the caller survives");
    assert_eq!(
        outcome,
        Err(TaskError::Exit(ExitReason::Panic("nolink crash".into())))
    );
    sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_supervisor_async_links_to_the_caller() {
    let sup = TaskSupervisor::start().unwrap();
    let s = sup.clone();
    let caller = spawn(move |mut c: Context<()>| async move {
        let _t = s
            .run_async(async {
                if true {
                    panic!("linked crash");
                }
            })
            .unwrap();
        c.recv().await;
    })
    .unwrap();
    assert_eq!(
        caller.wait_exit().await,
        ExitReason::Panic("linked crash".into())
    );
    assert!(
        process_info(sup.pid()).is_some(),
        "the supervisor survives its task"
    );
    sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_task_supervisor_stops_its_children() {
    let sup = TaskSupervisor::start().unwrap();
    let (_never, gate) = oneshot::channel::<()>();
    let child = sup
        .start_child(async move {
            let _ = gate.await;
        })
        .unwrap();
    assert_eq!(sup.children(), vec![child]);
    sup.stop().await;
    assert!(process_info(child).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_stream_ordered_with_bounded_concurrency() {
    let sup = TaskSupervisor::start().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let out: Vec<_> = sup
        .async_stream(
            0..20u64,
            move |i| {
                let (r, p) = (r.clone(), p.clone());
                async move {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    // Later items finish first, so ordering is really exercised.
                    for _ in 0..(20 - i) {
                        tokio::task::yield_now().await;
                    }
                    r.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                }
            },
            StreamOptions {
                max_concurrency: 3,
                ..Default::default()
            },
        )
        .collect()
        .await;
    let values: Vec<u64> = out.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(values, (0..20).map(|i| i * 2).collect::<Vec<_>>());
    assert!(peak.load(Ordering::SeqCst) <= 3);
    sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_stream_unordered_and_timeouts() {
    let sup = TaskSupervisor::start().unwrap();
    // kill_task: the slow item yields a timeout, the others go on.
    let out: Vec<_> = sup
        .async_stream(
            vec![1u32, 2, 3],
            |i| async move {
                if i == 2 {
                    std::future::pending::<()>().await;
                }
                i
            },
            StreamOptions {
                ordered: false,
                timeout: Duration::from_millis(20),
                on_timeout: OnTimeout::KillTask,
                ..Default::default()
            },
        )
        .collect()
        .await;
    let mut ok: Vec<u32> = out.iter().filter_map(|r| r.clone().ok()).collect();
    ok.sort();
    assert_eq!(ok, vec![1, 3]);
    assert_eq!(
        out.iter()
            .filter(|r| **r == Err(TaskError::Timeout))
            .count(),
        1
    );
    // exit: the stream ends at the first timeout.
    let out: Vec<_> = sup
        .async_stream(
            vec![1u32, 2, 3],
            |i| async move {
                if i == 2 {
                    std::future::pending::<()>().await;
                }
                i
            },
            StreamOptions {
                max_concurrency: 1,
                timeout: Duration::from_millis(20),
                ..Default::default()
            },
        )
        .collect()
        .await;
    assert_eq!(out, vec![Ok(1), Err(TaskError::Timeout)]);
    sup.stop().await;
}
