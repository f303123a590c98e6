//! Destructors that panic while a process ends (issue 15, item 4): every way a process
//! ends still finishes it exactly once (DOWN, EXIT, table, `wait_exit`), with a sensible
//! reason, and no panic escapes to tokio's worker. Each wait is bounded by T (a hang is
//! the old failure).

use std::time::Duration;

use orbit::*;

const T: Duration = Duration::from_secs(10);

/// Panics when dropped (unless already panicking, which would abort).
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("bomb in drop");
        }
    }
}

/// A process holding a `Bomb` across an await: killing it drops the body, whose
/// destructor panics.
fn spawn_bomb(started: tokio::sync::oneshot::Sender<()>) -> Handle<()> {
    spawn(move |_ctx: Context<()>| async move {
        let bomb = Bomb;
        let _ = started.send(());
        std::future::pending::<()>().await;
        drop(bomb);
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_whose_destructor_panics_still_exits_with_the_kill_reason() {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let h = spawn_bomb(started_tx);
    started_rx.await.unwrap();
    let pid = h.pid();
    let watch = run_in_process(async move {
        let r = monitor(pid).unwrap();
        exit(pid, ExitReason::error("stop"));
        r
    })
    .await
    .unwrap();
    let reason = tokio::time::timeout(T, h.wait_exit())
        .await
        .expect("the killed process never finished (zombie)");
    assert_eq!(reason, ExitReason::error("stop"), "the kill reason is kept");
    assert!(process_info(pid).is_none(), "the pid left the table");
    let _ = watch;

    // And a monitor's DOWN arrives.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let h = spawn_bomb(started_tx);
    started_rx.await.unwrap();
    let pid = h.pid();
    let down = tokio::time::timeout(
        T,
        run_in_process(async move {
            let me = spawn(|mut ctx: Context<()>| async move {
                let r = monitor(pid).unwrap();
                exit(pid, ExitReason::Kill);
                match ctx.recv().await {
                    Message::Down(d) if d.monitor == r => d.reason,
                    _ => ExitReason::error("unexpected message"),
                }
            })
            .unwrap();
            me.wait_exit().await
        }),
    )
    .await
    .expect("no DOWN from the killed process")
    .unwrap();
    assert_eq!(down, ExitReason::Killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_restarts_a_child_whose_destructor_panics_and_stops() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Pid>();
    let spec = ChildSpec::worker("bomb", move || {
        let tx = tx.clone();
        async move {
            let h = spawn_link(move |_ctx: Context<()>| async move {
                let bomb = Bomb;
                let _ = tx.send(self_pid().unwrap());
                std::future::pending::<()>().await;
                drop(bomb);
            })?;
            Ok::<_, Error>(h.pid())
        }
    })
    .shutdown(Shutdown::BrutalKill);
    let sup = Supervisor::start(vec![spec], SupervisorOptions::default())
        .await
        .unwrap();
    let first = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    exit(first, ExitReason::error("crash"));
    let second = tokio::time::timeout(T, rx.recv())
        .await
        .expect("the supervisor did not restart the child")
        .unwrap();
    assert_ne!(first, second);
    assert!(process_info(first).is_none());
    tokio::time::timeout(T, sup.stop(ExitReason::Shutdown, T))
        .await
        .expect("stop hung")
        .unwrap();
    assert!(process_info(second).is_none());
}

/// A panic whose payload panics when dropped.
struct PayloadBomb;

impl Drop for PayloadBomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("payload bomb in drop");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_payload_that_panics_on_drop_gives_the_panic_reason() {
    let h = spawn(|_ctx: Context<()>| async move {
        if !std::thread::panicking() {
            std::panic::panic_any(PayloadBomb);
        }
    })
    .unwrap();
    let reason = tokio::time::timeout(T, h.wait_exit()).await.unwrap();
    assert!(
        matches!(reason, ExitReason::Panic(_)),
        "expected a panic reason, got {reason}"
    );
}

#[test]
fn a_process_dropped_at_runtime_shutdown_whose_destructor_panics_is_finished() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let h = rt.block_on(async move {
        let h = spawn_bomb(started_tx);
        started_rx.await.unwrap();
        h
    });
    drop(rt);
    assert!(!h.is_alive(), "the process was never finished");
    assert!(process_info(h.pid()).is_none());
}
