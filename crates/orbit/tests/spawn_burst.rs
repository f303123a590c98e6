//! A burst of spawns from one task hands the new processes' tasks to the runtime in
//! batches (see the `start` module of `orbit`). These tests check that a batched
//! process is a process like any other: it exists when `spawn` returns, runs, takes
//! messages sent before it started, can be killed before it starts, and ends (as
//! killed) if the runtime goes away before its batch is started.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use orbit::*;
use tokio::sync::mpsc;

/// Enough spawns in a row to go well past the first few, which start directly, and to
/// fill more than one batch (a batch holds 256).
const BURST: usize = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_of_a_burst_runs_and_gets_messages_sent_before_it_started() {
    // Bursts are counted per tokio task: the test's own future is not one.
    tokio::spawn(burst_gets_its_messages()).await.unwrap();
}

async fn burst_gets_its_messages() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut handles = Vec::new();
    for i in 0..BURST {
        let tx = tx.clone();
        let h = spawn(move |mut ctx: Context<u32>| async move {
            if let Message::Msg(m) = ctx.recv().await {
                let _ = tx.send((i, m));
            }
        })
        .unwrap();
        // Sent in the same poll as the spawns: most of these processes have not begun.
        h.send(i as u32 * 2).unwrap();
        handles.push(h);
    }
    drop(tx);
    let mut seen = [false; BURST];
    while let Some((i, m)) = rx.recv().await {
        assert_eq!(m, i as u32 * 2);
        assert!(!seen[i], "process {i} ran twice");
        seen[i] = true;
    }
    assert!(seen.iter().all(|s| *s), "a process of the burst never ran");
    for h in handles {
        assert_eq!(h.wait_exit().await, ExitReason::Normal);
    }
}

#[test]
fn a_batched_process_killed_before_it_starts_exits_killed_without_running() {
    // One thread: nothing else runs until the spawning task yields, so the last
    // processes of the burst are still waiting in their batch when they are killed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = ran.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            let mut handles = Vec::new();
            for _ in 0..BURST {
                let ran = ran2.clone();
                handles.push(
                    spawn(move |mut ctx: Context<()>| async move {
                        ran.fetch_add(1, Ordering::SeqCst);
                        let _ = ctx.recv().await;
                    })
                    .unwrap(),
                );
            }
            let last = handles.pop().unwrap();
            exit(last.pid(), ExitReason::Kill);
            assert_eq!(last.wait_exit().await, ExitReason::Killed);
            for h in &handles {
                h.send(()).unwrap();
            }
            for h in handles {
                assert_eq!(h.wait_exit().await, ExitReason::Normal);
            }
        })
        .await
        .unwrap();
    });
    assert_eq!(ran.load(Ordering::SeqCst), BURST - 1);
}

#[test]
fn processes_still_waiting_for_their_batch_end_killed_when_the_runtime_goes() {
    // The scheduler polls the block_on future again after at most 8 tasks.
    let rt = tokio::runtime::Builder::new_current_thread()
        .event_interval(8)
        .enable_all()
        .build()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let (htx, hrx) = std::sync::mpsc::channel();
    let ran2 = ran.clone();
    rt.block_on(async move {
        // The spawner runs its whole burst in one poll; block_on's future is polled
        // again after at most 8 more tasks and returns, so most of the burst is still
        // waiting in a batch.
        tokio::spawn(async move {
            for _ in 0..BURST {
                let ran = ran2.clone();
                let h = spawn(move |mut ctx: Context<()>| async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                    let _ = ctx.recv().await;
                })
                .unwrap();
                htx.send(h).unwrap();
            }
        });
        tokio::task::yield_now().await;
    });
    drop(rt);
    let handles: Vec<Handle<()>> = hrx.try_iter().collect();
    assert_eq!(handles.len(), BURST);
    let started = ran.load(Ordering::SeqCst);
    assert!(
        started < BURST,
        "every process started: nothing was left in a batch"
    );
    for h in &handles {
        assert!(!h.is_alive(), "{} outlived its runtime", h.pid());
    }
    // Those that never ran ended as killed, like tasks tokio drops unpolled.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut killed = 0;
        for h in &handles {
            if h.wait_exit().await == ExitReason::Killed {
                killed += 1;
            }
        }
        assert_eq!(
            killed, BURST,
            "processes dropped with their runtime end killed"
        );
    });
}

#[test]
fn a_burst_into_another_runtimes_context_runs_there() {
    let rt_a = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rt_b = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (a_id, b_id) = (rt_a.handle().id(), rt_b.handle().id());
    let b = rt_b.handle().clone();
    let (tx, mut rx) = mpsc::unbounded_channel();
    rt_a.block_on(async move {
        tokio::spawn(async move {
            let report = |tx: mpsc::UnboundedSender<(bool, tokio::runtime::Id)>, into_b| {
                move |_ctx: Context<()>| async move {
                    let _ = tx.send((into_b, tokio::runtime::Handle::current().id()));
                }
            };
            // A burst onto this runtime opens a batch here; the next burst, in the
            // other runtime's context, comes before that batch has started.
            for _ in 0..BURST {
                spawn(report(tx.clone(), false)).unwrap();
            }
            let _in_b = b.enter();
            for _ in 0..BURST {
                spawn(report(tx.clone(), true)).unwrap();
            }
        })
        .await
        .unwrap();
        let mut seen = 0;
        while seen < 2 * BURST {
            let (into_b, id) = rx.recv().await.unwrap();
            assert_eq!(id, if into_b { b_id } else { a_id });
            seen += 1;
        }
    });
}
