//! `async_stream` timeouts and cleanup: `kill_task` yields a timeout for the late item
//! and goes on; `exit` ends the stream and kills what still runs; dropping a stream
//! kills its tasks; `Task::async_stream` without a supervisor of one's own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orbit::{OnTimeout, StreamOptions, Task, TaskError, TaskSupervisor};

fn opts(max: usize, ordered: bool, on_timeout: OnTimeout) -> StreamOptions {
    StreamOptions {
        max_concurrency: max,
        ordered,
        timeout: Duration::from_millis(100),
        on_timeout,
    }
}

/// Waits (through its exit) for task `pid` to be gone; fails after 5 s.
async fn assert_exits(pid: orbit::Pid) {
    if let Some(h) = orbit::Handle::<()>::from_pid(pid) {
        let r = tokio::time::timeout(Duration::from_secs(5), h.wait_exit()).await;
        assert!(r.is_ok(), "{pid} still running");
    }
}

/// Every fifth item never finishes.
async fn work(i: u32) -> u32 {
    if i.is_multiple_of(5) {
        std::future::pending::<()>().await;
    }
    i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_task_yields_a_timeout_per_late_item_and_goes_on() {
    let sup = TaskSupervisor::start().unwrap();
    let out: Vec<_> = sup
        .async_stream(0..40u32, work, opts(8, true, OnTimeout::KillTask))
        .collect()
        .await;
    assert_eq!(out.len(), 40);
    for (i, r) in out.iter().enumerate() {
        if i % 5 == 0 {
            assert_eq!(r, &Err(TaskError::Timeout));
        } else {
            assert_eq!(r, &Ok(i as u32));
        }
    }
    // No task is left running (the last ones may still be finishing).
    for pid in sup.children() {
        assert_exits(pid).await;
    }
    sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_ends_the_stream_and_kills_the_rest() {
    let sup = TaskSupervisor::start().unwrap();
    let mut s = Box::pin(sup.async_stream(1..100u32, work, opts(4, false, OnTimeout::Exit)));
    let mut oks = 0;
    let mut last = None;
    while let Some(r) = s.next().await {
        match r {
            Ok(_) => oks += 1,
            Err(e) => last = Some(e),
        }
    }
    assert_eq!(last, Some(TaskError::Timeout));
    assert!(oks < 99);
    // Ended, not yet dropped: nothing runs any more.
    for pid in sup.children() {
        assert_exits(pid).await;
    }
    drop(s);
    sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_stream_kills_its_tasks() {
    let sup = TaskSupervisor::start().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let st = started.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut s = Box::pin(sup.async_stream(
        0..20u32,
        move |i| {
            let st = st.clone();
            let tx = tx.clone();
            async move {
                st.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(orbit::self_pid().unwrap());
                if i > 0 {
                    std::future::pending::<()>().await;
                }
                i
            }
        },
        StreamOptions {
            timeout: orbit::gen_server::INFINITY,
            ..opts(4, true, OnTimeout::Exit)
        },
    ));
    assert_eq!(s.next().await, Some(Ok(0)));
    // Four tasks at most have run; the three still running are killed on drop.
    drop(s);
    let mut pids = Vec::new();
    while let Ok(p) = rx.try_recv() {
        pids.push(p);
    }
    assert!(started.load(Ordering::SeqCst) <= 5);
    for pid in pids {
        assert_exits(pid).await;
    }
    sup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_stream_without_a_supervisor() {
    let out: Vec<_> = Task::async_stream(
        0..50u32,
        |i| async move { i * i },
        opts(4, true, OnTimeout::Exit),
    )
    .unwrap()
    .collect()
    .await;
    let want: Vec<_> = (0..50u32).map(|i| Ok(i * i)).collect();
    assert_eq!(out, want);
    let crashed: Vec<_> = Task::async_stream(
        0..3u32,
        |i| async move {
            if i == 1 {
                panic!("item 1");
            }
            i
        },
        // Long enough for a panic hook printing a backtrace.
        StreamOptions {
            timeout: Duration::from_secs(10),
            ..opts(2, true, OnTimeout::KillTask)
        },
    )
    .unwrap()
    .collect()
    .await;
    assert_eq!(crashed[0], Ok(0));
    assert!(matches!(crashed[1], Err(TaskError::Exit(_))), "{crashed:?}");
    assert_eq!(crashed[2], Ok(2));
}

#[test]
fn stream_options_builders_set_the_fields_as_elixirs_keywords() {
    let o = orbit::StreamOptions::default()
        .max_concurrency(3)
        .ordered(false)
        .timeout(Duration::from_millis(7))
        .on_timeout(orbit::OnTimeout::KillTask);
    assert_eq!(o.max_concurrency, 3);
    assert!(!o.ordered);
    assert_eq!(o.timeout, Duration::from_millis(7));
    assert_eq!(o.on_timeout, orbit::OnTimeout::KillTask);
    let d = orbit::StreamOptions::default();
    assert!(d.ordered);
    assert_eq!(d.on_timeout, orbit::OnTimeout::Exit);
}
