//! A kill lands while the process waits on something other than its mailbox (a future
//! that never completes, a long sleep): its task is woken, the body is dropped unpolled
//! and the process exits with the kill's reason.

use std::time::Duration;

use orbit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_waiting_on_a_pending_future_is_killed() {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let h = spawn(|_ctx: Context<()>| async move {
        let _ = started_tx.send(());
        std::future::pending::<()>().await;
    })
    .unwrap();
    started_rx.await.unwrap();
    exit(h.pid(), ExitReason::Kill);
    assert_eq!(h.wait_exit().await, ExitReason::Killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_asleep_exits_with_the_reason_of_an_exit_signal() {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let h = spawn(|_ctx: Context<()>| async move {
        let _ = started_tx.send(());
        tokio::time::sleep(Duration::from_secs(3600)).await;
    })
    .unwrap();
    started_rx.await.unwrap();
    exit(h.pid(), ExitReason::error("shutdown"));
    assert_eq!(h.wait_exit().await, ExitReason::error("shutdown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_drops_its_body() {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
    let h = spawn(move |_ctx: Context<()>| async move {
        // Dropped with the body: the receiver then sees the channel closed.
        let _keep = dropped_tx;
        let _ = started_tx.send(());
        std::future::pending::<()>().await;
    })
    .unwrap();
    started_rx.await.unwrap();
    exit(h.pid(), ExitReason::Kill);
    assert!(dropped_rx.await.is_err(), "the body was dropped");
    assert_eq!(h.wait_exit().await, ExitReason::Killed);
}
