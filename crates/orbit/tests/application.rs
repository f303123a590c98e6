//! `Application`: children start in order, stop in reverse order, a failed start stops
//! the ones already started and names the child; `run` reports a root supervisor that
//! gave up. Children report through a channel (tests/common).

mod common;

use std::time::Duration;

use common::*;
use orbit::application::ApplicationError;
use orbit::*;

fn failing(id: &'static str) -> ChildSpec {
    ChildSpec::worker(id, || async {
        Err::<Pid, ExitReason>(ExitReason::error("no database"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_start_in_order_and_stop_in_reverse_order() {
    let (tx, mut rx) = events();
    let app = Application::new("shop")
        .child(worker("a", &tx).name("shop.a"))
        .children([worker("b", &tx), worker("c", &tx)])
        .start()
        .await
        .unwrap();
    assert_eq!(app.name(), "shop");
    let a = started(&mut rx, "a").await;
    started(&mut rx, "b").await;
    started(&mut rx, "c").await;
    assert_eq!(orbit::whereis("shop.a"), Some(a));
    assert_eq!(app.supervisor().count_children().await.unwrap().active, 3);

    app.stop().await.unwrap();
    assert_eq!(stopped(&mut rx, "c").await, ExitReason::Shutdown);
    assert_eq!(stopped(&mut rx, "b").await, ExitReason::Shutdown);
    assert_eq!(stopped(&mut rx, "a").await, ExitReason::Shutdown);
    assert!(!app.supervisor().is_alive());
    assert_eq!(orbit::whereis("shop.a"), None);
    // Stopping again is harmless.
    app.stop().await.unwrap();
    assert_eq!(rx.try_recv().ok(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_fails_to_start_stops_the_started_ones_in_reverse() {
    let (tx, mut rx) = events();
    let err = Application::new("shop")
        .child(worker("a", &tx))
        .child(worker("b", &tx))
        .child(failing("db"))
        .child(worker("never", &tx))
        .start()
        .await
        .unwrap_err();
    match &err {
        ApplicationError::ChildFailed { app, child, reason } => {
            assert_eq!(app, "shop");
            assert_eq!(child, "db");
            assert_eq!(reason, &ExitReason::error("no database"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("\"shop\"") && msg.contains("\"db\"") && msg.contains("no database"),
        "{msg}"
    );
    started(&mut rx, "a").await;
    started(&mut rx, "b").await;
    assert_eq!(stopped(&mut rx, "b").await, ExitReason::Shutdown);
    assert_eq!(stopped(&mut rx, "a").await, ExitReason::Shutdown);
    // "never" was never started.
    assert_eq!(rx.try_recv().ok(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ids_are_a_supervisor_error() {
    let (tx, _rx) = events();
    let err = Application::new("dup")
        .child(worker("a", &tx))
        .child(worker("a", &tx))
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ApplicationError::Supervisor { app, error: SupervisorError::DuplicateId(id) } if app == "dup" && id == "a"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_returns_an_error_when_the_root_supervisor_gives_up() {
    let (tx, mut rx) = events();
    let run = tokio::spawn(
        Application::new("flaky")
            .child(worker("w", &tx))
            .max_restarts(0, Duration::from_secs(5))
            .supervisor_name("flaky.sup")
            .run(),
    );
    let pid = started(&mut rx, "w").await;
    stop_worker(pid, crash()).await;
    let err = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run did not return")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, ApplicationError::Exited { app, reason } if app == "flaky" && *reason == ExitReason::Shutdown),
        "{err:?}"
    );
    assert!(err.to_string().contains("restart intensity"), "{err}");
    assert!(orbit::whereis("flaky.sup").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_timeout_bounds_the_stop() {
    // A child that ignores `shutdown` (a process trapping exits that never stops)
    // until it is killed 1 s later; the application gives up waiting after 50 ms and
    // says so, while the supervisor still finishes the stop.
    let stubborn = ChildSpec::worker("stubborn", || async {
        Spawn::new()
            .link()
            .trap_exit()
            .spawn(|_ctx: Context<()>| std::future::pending::<()>())
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(1)));
    let app = Application::new("slow")
        .child(stubborn)
        .stop_timeout(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let err = app.stop().await.unwrap_err();
    assert!(
        matches!(err, ApplicationError::Supervisor { .. }),
        "{err:?}"
    );
    // The child is killed after its 1 s shutdown and the root exits.
    let reason = tokio::time::timeout(Duration::from_secs(10), app.wait())
        .await
        .expect("the root supervisor did not exit");
    assert_eq!(reason, ExitReason::Shutdown);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_the_application_on_sigterm() {
    let (tx, mut rx) = events();
    let run = tokio::spawn(
        Application::new("served")
            .children([worker("a", &tx), worker("b", &tx)])
            .stop_on_signals(true)
            .run(),
    );
    // The handlers are installed before the first child starts.
    started(&mut rx, "a").await;
    started(&mut rx, "b").await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run did not return after SIGTERM")
        .unwrap();
    assert_eq!(out, Ok(()));
    assert_eq!(stopped(&mut rx, "b").await, ExitReason::Shutdown);
    assert_eq!(stopped(&mut rx, "a").await, ExitReason::Shutdown);
}
