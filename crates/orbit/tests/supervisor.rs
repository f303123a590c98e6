//! Supervisor rules (otp-semantics §3). Tests wait on events: children report their
//! start and stop through a channel; exits are awaited with `wait_exit`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use orbit::*;

const T: Duration = Duration::from_secs(10);

fn opts(strategy: Strategy) -> SupervisorOptions {
    SupervisorOptions::strategy(strategy)
}

async fn pids(sup: &SupervisorRef) -> Vec<(String, Option<Pid>)> {
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id, c.pid))
        .collect()
}

fn assert_quiet(rx: &mut Rx) {
    assert_eq!(rx.try_recv().ok(), None, "no further child events expected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_start_in_order_and_stop_in_reverse_order() {
    let (tx, mut rx) = events();
    let children = vec![worker("a", &tx), worker("b", &tx), worker("c", &tx)];
    let sup = Supervisor::start(children, SupervisorOptions::default())
        .await
        .unwrap();
    started(&mut rx, "a").await;
    started(&mut rx, "b").await;
    started(&mut rx, "c").await;
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
    assert_eq!(stopped(&mut rx, "c").await, ExitReason::Shutdown);
    assert_eq!(stopped(&mut rx, "b").await, ExitReason::Shutdown);
    assert_eq!(stopped(&mut rx, "a").await, ExitReason::Shutdown);
    assert_eq!(sup.wait_exit().await, ExitReason::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_one_restarts_only_the_failed_child() {
    let (tx, mut rx) = events();
    let children = vec![worker("a", &tx), worker("b", &tx), worker("c", &tx)];
    let sup = Supervisor::start(children, opts(Strategy::OneForOne))
        .await
        .unwrap();
    let a = started(&mut rx, "a").await;
    let b = started(&mut rx, "b").await;
    let c = started(&mut rx, "c").await;
    stop_worker(b, crash()).await;
    assert_eq!(stopped(&mut rx, "b").await, crash());
    let b2 = started(&mut rx, "b").await;
    assert_ne!(b, b2);
    assert_eq!(
        pids(&sup).await,
        vec![
            ("a".into(), Some(a)),
            ("b".into(), Some(b2)),
            ("c".into(), Some(c))
        ]
    );
    assert_quiet(&mut rx);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_restarts_all_children() {
    let (tx, mut rx) = events();
    // An array and a bare strategy, as Elixir's `Supervisor.start_link(children,
    // strategy: :one_for_all)`: the strategy must take effect.
    let children = [worker("a", &tx), worker("b", &tx), worker("c", &tx)];
    let sup = Supervisor::start(children, Strategy::OneForAll)
        .await
        .unwrap();
    let a = started(&mut rx, "a").await;
    let b = started(&mut rx, "b").await;
    let c = started(&mut rx, "c").await;
    stop_worker(b, crash()).await;
    assert_eq!(stopped(&mut rx, "b").await, crash());
    // The others stop in reverse order, then all start in order.
    assert_eq!(stopped(&mut rx, "c").await, ExitReason::Shutdown);
    assert_eq!(stopped(&mut rx, "a").await, ExitReason::Shutdown);
    let a2 = started(&mut rx, "a").await;
    let b2 = started(&mut rx, "b").await;
    let c2 = started(&mut rx, "c").await;
    for (old, new) in [(a, a2), (b, b2), (c, c2)] {
        assert_ne!(old, new);
    }
    assert_eq!(
        pids(&sup).await,
        vec![
            ("a".into(), Some(a2)),
            ("b".into(), Some(b2)),
            ("c".into(), Some(c2))
        ]
    );
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_for_one_restarts_only_the_later_siblings() {
    let (tx, mut rx) = events();
    let children = vec![
        worker("a", &tx),
        worker("b", &tx),
        worker("c", &tx),
        worker("d", &tx),
    ];
    let sup = Supervisor::start(children, opts(Strategy::RestForOne))
        .await
        .unwrap();
    let a = started(&mut rx, "a").await;
    let b = started(&mut rx, "b").await;
    started(&mut rx, "c").await;
    started(&mut rx, "d").await;
    stop_worker(b, crash()).await;
    assert_eq!(stopped(&mut rx, "b").await, crash());
    assert_eq!(stopped(&mut rx, "d").await, ExitReason::Shutdown);
    assert_eq!(stopped(&mut rx, "c").await, ExitReason::Shutdown);
    let b2 = started(&mut rx, "b").await;
    let c2 = started(&mut rx, "c").await;
    let d2 = started(&mut rx, "d").await;
    assert_eq!(
        pids(&sup).await,
        vec![
            ("a".into(), Some(a)),
            ("b".into(), Some(b2)),
            ("c".into(), Some(c2)),
            ("d".into(), Some(d2))
        ]
    );
    assert_quiet(&mut rx);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_child_is_restarted_only_on_abnormal_exit() {
    let (tx, mut rx) = events();
    let children = vec![worker("t", &tx).restart(Restart::Transient)];
    let sup = Supervisor::start(children, SupervisorOptions::default())
        .await
        .unwrap();

    // Clean exits: normal, shutdown, {shutdown, _} — not restarted, spec kept.
    for reason in [
        ExitReason::Normal,
        ExitReason::Shutdown,
        ExitReason::shutdown_with("done"),
    ] {
        let pid = started(&mut rx, "t").await;
        stop_worker(pid, reason.clone()).await;
        assert_eq!(stopped(&mut rx, "t").await, reason);
        assert_eq!(pids(&sup).await, vec![("t".into(), None)]);
        assert_quiet(&mut rx);
        sup.restart_child("t").await.unwrap();
    }

    // An abnormal exit: restarted.
    let pid = started(&mut rx, "t").await;
    stop_worker(pid, crash()).await;
    assert_eq!(stopped(&mut rx, "t").await, crash());
    let again = started(&mut rx, "t").await;
    assert_eq!(pids(&sup).await, vec![("t".into(), Some(again))]);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_child_is_never_restarted_and_is_removed() {
    let (tx, mut rx) = events();
    let children = vec![
        worker("p", &tx),
        worker("tmp", &tx).restart(Restart::Temporary),
    ];
    let sup = Supervisor::start(children, SupervisorOptions::default())
        .await
        .unwrap();
    let p = started(&mut rx, "p").await;
    let tmp = started(&mut rx, "tmp").await;
    stop_worker(tmp, crash()).await;
    assert_eq!(stopped(&mut rx, "tmp").await, crash());
    assert_eq!(pids(&sup).await, vec![("p".into(), Some(p))]);
    assert_quiet(&mut rx);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_child_is_restarted_even_after_normal_exit() {
    let (tx, mut rx) = events();
    let sup = Supervisor::start(vec![worker("p", &tx)], SupervisorOptions::default())
        .await
        .unwrap();
    let p = started(&mut rx, "p").await;
    stop_worker(p, ExitReason::Normal).await;
    assert_eq!(stopped(&mut rx, "p").await, ExitReason::Normal);
    let p2 = started(&mut rx, "p").await;
    assert_ne!(p, p2);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_intensity_exceeded_stops_the_supervisor_with_shutdown() {
    let (tx, mut rx) = events();
    let children = vec![worker("steady", &tx), worker("flaky", &tx)];
    let options = SupervisorOptions {
        max_restarts: 2,
        ..SupervisorOptions::default()
    };
    let sup = Supervisor::start(children, options).await.unwrap();
    started(&mut rx, "steady").await;
    let mut flaky = started(&mut rx, "flaky").await;
    // Two restarts are allowed.
    for _ in 0..2 {
        stop_worker(flaky, crash()).await;
        assert_eq!(stopped(&mut rx, "flaky").await, crash());
        flaky = started(&mut rx, "flaky").await;
    }
    // The third crash within the window exceeds the intensity.
    stop_worker(flaky, crash()).await;
    assert_eq!(stopped(&mut rx, "flaky").await, crash());
    assert_eq!(stopped(&mut rx, "steady").await, ExitReason::Shutdown);
    assert_eq!(sup.wait_exit().await, ExitReason::Shutdown);
    assert_quiet(&mut rx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_keeps_failing_is_retried_until_the_intensity_is_exceeded() {
    let (tx, mut rx) = events();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let tx2 = tx.clone();
    let flaky = ChildSpec::worker("flaky", move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let tx = tx2.clone();
        async move {
            if n == 0 {
                gen_server::start_link(Worker { id: "flaky", tx }).await
            } else {
                Err(StartError::Init(ExitReason::error("cannot start")))
            }
        }
    });
    let sup = Supervisor::start(vec![flaky], SupervisorOptions::default())
        .await
        .unwrap();
    let pid = started(&mut rx, "flaky").await;
    stop_worker(pid, crash()).await;
    assert_eq!(sup.wait_exit().await, ExitReason::Shutdown);
    // The first start, then one failed attempt per allowed restart (3); the fourth
    // restart exceeds the intensity before any start is tried.
    assert_eq!(calls.load(Ordering::SeqCst), 1 + 3);
}

/// A child that traps exits and ignores every signal, reporting its handle.
fn stubborn(
    id: &'static str,
    handles: tokio::sync::mpsc::UnboundedSender<Handle<()>>,
) -> ChildSpec {
    ChildSpec::worker(id, move || {
        let handles = handles.clone();
        async move {
            let h = Spawn::new()
                .link()
                .trap_exit()
                .spawn(|mut ctx: Context<()>| async move {
                    loop {
                        ctx.recv().await;
                    }
                    #[allow(unreachable_code)]
                    ExitReason::Normal
                });
            if let Ok(h) = &h {
                let _ = handles.send(h.clone());
            }
            h
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_escalates_to_kill() {
    let (htx, mut hrx) = tokio::sync::mpsc::unbounded_channel();
    let child = stubborn("stubborn", htx).shutdown(Shutdown::Timeout(Duration::from_millis(50)));
    let sup = Supervisor::start(vec![child], SupervisorOptions::default())
        .await
        .unwrap();
    let h = hrx.recv().await.unwrap();
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
    assert_eq!(h.wait_exit().await, ExitReason::Killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brutal_kill_kills_at_once() {
    let (htx, mut hrx) = tokio::sync::mpsc::unbounded_channel();
    // The child ignores `shutdown`; only a kill ends it.
    let child = stubborn("stubborn", htx).shutdown(Shutdown::BrutalKill);
    let sup = Supervisor::start(vec![child], SupervisorOptions::default())
        .await
        .unwrap();
    let h = hrx.recv().await.unwrap();
    sup.terminate_child("stubborn").await.unwrap();
    assert_eq!(h.wait_exit().await, ExitReason::Killed);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_failing_to_start_fails_the_start_and_stops_the_started_ones() {
    let (tx, mut rx) = events();
    let bad = ChildSpec::worker("bad", || async {
        Err::<Pid, _>(ExitReason::error("no database"))
    });
    let children = vec![worker("a", &tx), worker("b", &tx), bad, worker("c", &tx)];
    let err = Supervisor::start(children, SupervisorOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SupervisorError::StartFailed {
            id: "bad".into(),
            reason: ExitReason::error("no database")
        }
    );
    started(&mut rx, "a").await;
    started(&mut rx, "b").await;
    assert_eq!(stopped(&mut rx, "b").await, ExitReason::Shutdown);
    assert_eq!(stopped(&mut rx, "a").await, ExitReason::Shutdown);
    drop(tx);
    // "c" never started: the channel ends once every sender (the specs) is gone.
    assert_eq!(rx.recv().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_start_function_is_a_start_failure() {
    let bad = ChildSpec::worker("bad", || async {
        if true {
            panic!("start exploded");
        }
        Err::<Pid, _>(ExitReason::Normal)
    });
    let err = Supervisor::start(vec![bad], SupervisorOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SupervisorError::StartFailed { id, reason: ExitReason::Panic(m) }
            if id == "bad" && m.contains("start exploded")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ids_are_refused() {
    let (tx, _rx) = events();
    let err = Supervisor::start(
        vec![worker("a", &tx), worker("a", &tx)],
        SupervisorOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err, SupervisorError::DuplicateId("a".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_requests_and_their_errors() {
    let (tx, mut rx) = events();
    let nested = Supervisor::child_spec(
        "nested",
        vec![worker("inner", &tx)],
        SupervisorOptions::default(),
    );
    let sup = Supervisor::start(vec![worker("a", &tx), nested], SupervisorOptions::default())
        .await
        .unwrap();
    started(&mut rx, "a").await;
    started(&mut rx, "inner").await;

    let infos = sup.which_children().await.unwrap();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0].id, "a");
    assert_eq!(infos[0].kind, ChildKind::Worker);
    assert_eq!(infos[0].restart, Restart::Permanent);
    assert_eq!(infos[1].id, "nested");
    assert_eq!(infos[1].kind, ChildKind::Supervisor);
    assert_eq!(
        sup.count_children().await.unwrap(),
        Counts {
            specs: 2,
            active: 2,
            supervisors: 1,
            workers: 1
        }
    );

    // terminate_child keeps the spec, not running.
    sup.terminate_child("a").await.unwrap();
    assert_eq!(stopped(&mut rx, "a").await, ExitReason::Shutdown);
    assert_eq!(sup.which_children().await.unwrap()[0].pid, None);
    assert_eq!(
        sup.count_children().await.unwrap(),
        Counts {
            specs: 2,
            active: 1,
            supervisors: 1,
            workers: 1
        }
    );
    // Terminating a stopped child is fine.
    sup.terminate_child("a").await.unwrap();

    // restart_child only for a stopped child.
    let a = sup.restart_child("a").await.unwrap().unwrap();
    assert_eq!(started(&mut rx, "a").await, a);
    assert_eq!(
        sup.restart_child("a").await,
        Err(SupervisorError::Running("a".into()))
    );

    // delete_child only when stopped.
    assert_eq!(
        sup.delete_child("a").await,
        Err(SupervisorError::Running("a".into()))
    );

    // start_child: the id must be new.
    assert_eq!(
        sup.start_child(worker("a", &tx)).await,
        Err(SupervisorError::AlreadyStarted {
            id: "a".into(),
            pid: a
        })
    );
    sup.terminate_child("a").await.unwrap();
    stopped(&mut rx, "a").await;
    assert_eq!(
        sup.start_child(worker("a", &tx)).await,
        Err(SupervisorError::AlreadyPresent("a".into()))
    );
    sup.delete_child("a").await.unwrap();
    let ids: Vec<_> = sup
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec!["nested"]);

    // A new child goes last.
    let b = sup.start_child(worker("b", &tx)).await.unwrap().unwrap();
    assert_eq!(started(&mut rx, "b").await, b);
    let ids: Vec<_> = sup
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec!["nested", "b"]);

    // A failing start adds nothing.
    let bad = ChildSpec::worker("bad", || async { Err::<Pid, _>(ExitReason::error("nope")) });
    assert_eq!(
        sup.start_child(bad).await,
        Err(SupervisorError::StartFailed {
            id: "bad".into(),
            reason: ExitReason::error("nope")
        })
    );
    assert_eq!(sup.count_children().await.unwrap().specs, 2);

    // Unknown ids.
    let missing = || Err(SupervisorError::NotFound("zz".into()));
    assert_eq!(sup.terminate_child("zz").await, missing());
    assert_eq!(sup.restart_child("zz").await, missing().map(|()| None));
    assert_eq!(sup.delete_child("zz").await, missing());

    // Stopping stops "b", then the nested supervisor (and its child).
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
    assert_eq!(stopped(&mut rx, "b").await, ExitReason::Shutdown);
    assert_eq!(stopped(&mut rx, "inner").await, ExitReason::Shutdown);
    assert!(matches!(
        sup.which_children().await,
        Err(SupervisorError::Call(CallError::NoProc))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignored_child_is_kept_not_running() {
    let ignoring = ChildSpec::worker("ignored", || async { Err::<Pid, _>(StartError::Ignored) });
    let sup = Supervisor::start(vec![ignoring], SupervisorOptions::default())
        .await
        .unwrap();
    assert_eq!(pids(&sup).await, vec![("ignored".into(), None)]);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parent_exiting_stops_a_linked_supervisor_and_its_children() {
    let (tx, mut rx) = events();
    let (sup_tx, sup_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let parent = spawn(move |_ctx: Context<()>| async move {
        let sup = Supervisor::start_link(vec![worker("a", &tx)], SupervisorOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let _ = sup_tx.send(sup);
        let _ = go_rx.await;
        Err::<(), _>("parent gave up".to_string())
    })
    .unwrap();
    let sup = sup_rx.await.unwrap();
    started(&mut rx, "a").await;
    go_tx.send(()).unwrap();
    assert_eq!(
        parent.wait_exit().await,
        ExitReason::error("parent gave up")
    );
    // The supervisor stops its children with `shutdown`, then exits with its parent's reason.
    assert_eq!(stopped(&mut rx, "a").await, ExitReason::Shutdown);
    assert_eq!(sup.wait_exit().await, ExitReason::error("parent gave up"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_supervisor_is_found_by_name() {
    let options = SupervisorOptions {
        name: Some("sup-by-name".into()),
        ..SupervisorOptions::default()
    };
    let sup = Supervisor::start(vec![], options).await.unwrap();
    let found = SupervisorRef::whereis("sup-by-name").unwrap();
    assert_eq!(found.pid(), sup.pid());
    assert_eq!(found.count_children().await.unwrap(), Counts::default());
    sup.stop(ExitReason::Normal, T).await.unwrap();
}
