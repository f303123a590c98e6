//! DynamicSupervisor rules (otp-semantics §3), waiting on events.

mod common;

use std::time::Duration;

use common::*;
use orbit::*;

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_child_which_children_count_children() {
    let (tx, mut rx) = events();
    let sup = DynamicSupervisor::start(DynamicOptions::default())
        .await
        .unwrap();
    assert_eq!(sup.count_children().await.unwrap(), Counts::default());
    let a = sup.start_child(worker("a", &tx)).await.unwrap();
    assert_eq!(started(&mut rx, "a").await, a);
    let b = sup
        .start_child(worker("b", &tx).restart(Restart::Temporary))
        .await
        .unwrap();
    assert_eq!(started(&mut rx, "b").await, b);
    let infos = sup.which_children().await.unwrap();
    assert_eq!(
        infos.iter().map(|c| (c.pid, c.restart)).collect::<Vec<_>>(),
        vec![(Some(a), Restart::Permanent), (Some(b), Restart::Temporary)]
    );
    assert_eq!(
        sup.count_children().await.unwrap(),
        Counts {
            specs: 2,
            active: 2,
            supervisors: 0,
            workers: 2
        }
    );
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
    let mut stops = vec![next(&mut rx).await, next(&mut rx).await];
    stops.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        stops,
        vec![
            Ev::Stopped("a", ExitReason::Shutdown),
            Ev::Stopped("b", ExitReason::Shutdown)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_children_past_max_children() {
    let (tx, mut rx) = events();
    let options = DynamicOptions {
        max_children: Some(2),
        ..DynamicOptions::default()
    };
    let sup = DynamicSupervisor::start(options).await.unwrap();
    let a = sup.start_child(worker("a", &tx)).await.unwrap();
    sup.start_child(worker("b", &tx)).await.unwrap();
    started(&mut rx, "a").await;
    started(&mut rx, "b").await;
    assert_eq!(
        sup.start_child(worker("c", &tx)).await,
        Err(SupervisorError::MaxChildren)
    );
    assert_eq!(sup.count_children().await.unwrap().specs, 2);
    // Nothing was started for "c".
    assert_eq!(rx.try_recv().ok(), None);
    // Room again after a child is terminated.
    sup.terminate_child(a).await.unwrap();
    assert_eq!(stopped(&mut rx, "a").await, ExitReason::Shutdown);
    let c = sup.start_child(worker("c", &tx)).await.unwrap();
    assert_eq!(started(&mut rx, "c").await, c);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_child_removes_it_and_refuses_strangers() {
    let (tx, mut rx) = events();
    let sup = DynamicSupervisor::start(DynamicOptions::default())
        .await
        .unwrap();
    let a = sup.start_child(worker("a", &tx)).await.unwrap();
    started(&mut rx, "a").await;
    sup.terminate_child(a).await.unwrap();
    assert_eq!(stopped(&mut rx, "a").await, ExitReason::Shutdown);
    assert_eq!(sup.which_children().await.unwrap(), vec![]);
    assert_eq!(
        sup.terminate_child(a).await,
        Err(SupervisorError::NotAChild(a))
    );
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_children_as_their_restart_type_says() {
    let (tx, mut rx) = events();
    let sup = DynamicSupervisor::start(DynamicOptions::default())
        .await
        .unwrap();
    let p = sup.start_child(worker("p", &tx)).await.unwrap();
    started(&mut rx, "p").await;
    let t = sup
        .start_child(worker("t", &tx).restart(Restart::Transient))
        .await
        .unwrap();
    started(&mut rx, "t").await;
    let tmp = sup
        .start_child(worker("tmp", &tx).restart(Restart::Temporary))
        .await
        .unwrap();
    started(&mut rx, "tmp").await;

    // Permanent: restarted after a crash, under a new pid.
    stop_worker(p, crash()).await;
    assert_eq!(stopped(&mut rx, "p").await, crash());
    let p2 = started(&mut rx, "p").await;
    assert_ne!(p, p2);

    // Transient: restarted after a crash, removed after a normal exit.
    stop_worker(t, crash()).await;
    stopped(&mut rx, "t").await;
    let t2 = started(&mut rx, "t").await;
    stop_worker(t2, ExitReason::Normal).await;
    stopped(&mut rx, "t").await;

    // Temporary: removed after a crash.
    stop_worker(tmp, crash()).await;
    stopped(&mut rx, "tmp").await;

    let pids: Vec<_> = sup
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.pid)
        .collect();
    assert_eq!(pids, vec![Some(p2)]);
    assert_eq!(rx.try_recv().ok(), None);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_intensity_exceeded_stops_the_dynamic_supervisor() {
    let (tx, mut rx) = events();
    let options = DynamicOptions {
        max_restarts: 1,
        ..DynamicOptions::default()
    };
    let sup = DynamicSupervisor::start(options).await.unwrap();
    let steady = sup.start_child(worker("steady", &tx)).await.unwrap();
    started(&mut rx, "steady").await;
    let flaky = sup.start_child(worker("flaky", &tx)).await.unwrap();
    started(&mut rx, "flaky").await;
    stop_worker(flaky, crash()).await;
    stopped(&mut rx, "flaky").await;
    let flaky = started(&mut rx, "flaky").await;
    stop_worker(flaky, crash()).await;
    stopped(&mut rx, "flaky").await;
    assert_eq!(stopped(&mut rx, "steady").await, ExitReason::Shutdown);
    assert_eq!(sup.wait_exit().await, ExitReason::Shutdown);
    assert!(ServerRef::<Worker>::from_pid(steady).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_errors_add_nothing() {
    let sup = DynamicSupervisor::start(DynamicOptions::default())
        .await
        .unwrap();
    let failing = ChildSpec::worker("bad", || async { Err::<Pid, _>(ExitReason::error("nope")) });
    assert_eq!(
        sup.start_child(failing).await,
        Err(SupervisorError::StartFailed {
            id: "bad".into(),
            reason: ExitReason::error("nope")
        })
    );
    let ignoring = ChildSpec::worker("ign", || async { Err::<Pid, _>(StartError::Ignored) });
    assert_eq!(
        sup.start_child(ignoring).await,
        Err(SupervisorError::Ignored)
    );
    assert_eq!(sup.count_children().await.unwrap(), Counts::default());
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_supervisor_under_a_supervisor() {
    let (tx, mut rx) = events();
    let options = DynamicOptions {
        name: Some("dyn-under-sup".into()),
        ..DynamicOptions::default()
    };
    let top = Supervisor::start(
        vec![DynamicSupervisor::child_spec("dyn", options)],
        SupervisorOptions::default(),
    )
    .await
    .unwrap();
    let dynsup = DynamicSupervisorRef::whereis("dyn-under-sup").unwrap();
    dynsup.start_child(worker("a", &tx)).await.unwrap();
    started(&mut rx, "a").await;
    top.stop(ExitReason::Shutdown, T).await.unwrap();
    assert_eq!(stopped(&mut rx, "a").await, ExitReason::Shutdown);
    assert_eq!(dynsup.wait_exit().await, ExitReason::Shutdown);
}
