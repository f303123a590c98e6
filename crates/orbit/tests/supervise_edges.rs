//! Supervised behaviours at the edges: a stage pipeline restarted rest-for-one that
//! resubscribes by name, names and tables that cannot be had, callers that keep using a
//! pool by name while it is killed again and again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use orbit::ets::{self, Table};
use orbit::pool::Pool;
use orbit::stage::{NoEvents, StageRef};
use orbit::*;
use supervise_common::*;
use tokio::sync::mpsc;

mod common;
mod supervise_common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_pipeline_restarts_rest_for_one_and_resubscribes_by_name() {
    let (btx, mut brx) = mpsc::unbounded_channel();
    let (stx, mut crx) = mpsc::unbounded_channel();
    let children = stage_specs("t3", 5, &btx, &stx);
    let sup = Supervisor::start(children, options(Strategy::RestForOne))
        .await
        .unwrap();
    let cons = child_pid(&sup, "cons").await;
    // Five events: two go to the ConsumerSupervisor's children (max_demand 2, they never
    // finish), the rest to the sink, in some split; count them all.
    let mut seen = 0;
    let mut csup_children = Vec::new();
    while seen + csup_children.len() < 5 {
        tokio::select! {
            Some((pid, b)) = brx.recv() => { assert_eq!(pid, cons); seen += b.len(); }
            Some(pid) = crx.recv() => csup_children.push(pid),
        }
    }
    assert!(csup_children.len() <= 2);

    let prod: StageRef<NoEvents, u64, ()> = StageRef::whereis("t3_prod").expect("producer by name");
    assert_eq!(prod.pid(), child_pid(&sup, "prod").await);
    kill_and_wait(prod.pid()).await;
    // Rest for one: the consumers after the producer were restarted too, after it (a
    // request to the supervisor is served after the restart).
    let cons2 = child_pid(&sup, "cons").await;
    let prod2: StageRef<NoEvents, u64, ()> = StageRef::whereis("t3_prod").unwrap();
    assert_ne!(prod2.pid(), prod.pid());
    assert_ne!(cons2, cons);
    let sink: StageRef<u64, NoEvents, ()> = StageRef::whereis("t3_cons").unwrap();
    assert_eq!(sink.pid(), cons2);
    for pid in &csup_children {
        assert!(
            !alive(*pid),
            "the old ConsumerSupervisor's children stopped with it"
        );
    }
    // The new producer counts from 0 again and feeds the new consumers.
    let mut seen2 = 0;
    let mut csup2 = Vec::new();
    while seen2 + csup2.len() < 5 {
        tokio::select! {
            Some((pid, b)) = brx.recv() => {
                assert_eq!(pid, cons2, "a batch reached the old consumer");
                seen2 += b.len();
            }
            Some(pid) = crx.recv() => csup2.push(pid),
        }
    }
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
    for pid in csup2 {
        assert!(!alive(pid));
    }
    assert!(!prod2.is_alive() && !sink.is_alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_held_by_another_process_fails_the_start_and_says_so() {
    let holder = orbit::spawn(|mut ctx: Context<()>| async move {
        let _ = ctx.recv().await;
    })
    .unwrap();
    orbit::register("t5_taken", holder.pid()).unwrap();
    let (tx, mut rx) = common::events();
    let spec = common::worker("w", &tx).name("t5_taken");
    let err = Supervisor::start(vec![spec], SupervisorOptions::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, SupervisorError::StartFailed { ref id, .. } if id == "w"),
        "{msg}"
    );
    assert!(msg.contains("t5_taken"), "{msg}");
    // The child was started, then stopped because it could not be named.
    let pid = common::started(&mut rx, "w").await;
    assert_eq!(common::stopped(&mut rx, "w").await, ExitReason::Shutdown);
    assert!(!alive(pid));
    assert_eq!(orbit::whereis("t5_taken"), Some(holder.pid()));
    let _ = holder.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_owner_whose_table_cannot_be_made_fails_to_start() {
    let held = Table::<u64, u64>::builder()
        .named("t6_table")
        .build()
        .unwrap();
    let err = Supervisor::start(vec![table_spec("t6_table")], SupervisorOptions::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"table\"") && msg.contains("could not create its table"),
        "{msg}"
    );
    held.delete_table().unwrap();
    // With the name free the same spec starts.
    let sup = Supervisor::start(vec![table_spec("t6_table")], SupervisorOptions::default())
        .await
        .unwrap();
    assert!(ets::whereis::<u64, u64>("t6_table").is_ok());
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
    assert!(ets::whereis::<u64, u64>("t6_table").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_by_name_ride_through_repeated_pool_restarts() {
    let sup = Supervisor::start(vec![pool_spec("t7_pool")], options(Strategy::OneForOne))
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok_tx, mut ok_rx) = mpsc::unbounded_channel::<()>();
    let mut callers = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        let ok_tx = ok_tx.clone();
        callers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(Ordering::SeqCst) {
                let Some(pool) = Pool::<Echo>::whereis("t7_pool") else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let r = pool
                    .transaction(|w| async move { w.call(1).await }, Duration::from_secs(1))
                    .await;
                match r {
                    Ok(Ok(_)) => {
                        ok += 1;
                        let _ = ok_tx.send(());
                    }
                    // The pool or its worker was killed under the caller.
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    let mut managers = Vec::new();
    let mut old_workers = Vec::new();
    for _ in 0..5 {
        let pid = child_pid(&sup, "pool").await;
        managers.push(pid);
        old_workers.extend(Pool::<Echo>::from_pid(pid).unwrap().workers());
        kill_and_wait(pid).await;
    }
    let last = child_pid(&sup, "pool").await;
    managers.push(last);
    // The callers keep getting through (drain what came before, then one more).
    while ok_rx.try_recv().is_ok() {}
    tokio::time::timeout(T, ok_rx.recv())
        .await
        .expect("no caller got through after the restarts");
    stop.store(true, Ordering::SeqCst);
    let mut ok = 0;
    for c in callers {
        let (o, _failed) = tokio::time::timeout(T, c)
            .await
            .expect("a caller hung")
            .unwrap();
        ok += o;
    }
    assert!(ok > 0, "no transaction went through");
    managers.sort();
    managers.dedup();
    assert_eq!(managers.len(), 6, "each restart is a new manager");
    assert!(old_workers.len() >= 10);
    for w in old_workers {
        let r = down(w, false).await;
        assert!(r == ExitReason::NoProc || r == ExitReason::Killed, "{r:?}");
    }
    let pool = Pool::<Echo>::whereis("t7_pool").unwrap();
    assert_eq!(pool.pid(), last);
    let (n, _) = pool
        .transaction(|w| async move { w.call(9).await.unwrap() }, T)
        .await
        .unwrap();
    assert_eq!(n, 9);
    assert_eq!(pool.workers().len(), 3);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_whose_producer_is_not_registered_fails_to_start_naming_it() {
    let (btx, _brx) = mpsc::unbounded_channel();
    let spec = ChildSpec::consumer("cons", move || {
        let opts = orbit::stage::ConsumerOptions::new()
            .subscribe_to_name("t9_nobody", orbit::stage::SubscribeOptions::new());
        (Sink(btx.clone()), opts)
    });
    let err = Supervisor::start(vec![spec], SupervisorOptions::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, SupervisorError::StartFailed { ref id, .. } if id == "cons"),
        "{msg}"
    );
    assert!(
        msg.contains("\"t9_nobody\"") && msg.contains("start it first"),
        "{msg}"
    );
    // A process of another type under the name is not a producer either.
    let other = orbit::spawn(|mut ctx: Context<()>| async move {
        let _ = ctx.recv().await;
    })
    .unwrap();
    orbit::register("t9_nobody", other.pid()).unwrap();
    let (btx, _brx) = mpsc::unbounded_channel();
    let spec = ChildSpec::consumer("cons", move || {
        let opts = orbit::stage::ConsumerOptions::new()
            .subscribe_to_name("t9_nobody", orbit::stage::SubscribeOptions::new());
        (Sink(btx.clone()), opts)
    });
    let err = Supervisor::start(vec![spec], SupervisorOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a producer"), "{err}");
    let _ = other.send(());
}
