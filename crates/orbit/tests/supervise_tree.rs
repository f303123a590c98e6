//! Every behaviour as a supervised child (issue 18 item 1): started, named, restarted
//! and stopped by a `Supervisor`. Each test kills a child, waits for its `DOWN` (which
//! comes after the supervisor's `EXIT`, so a request sent then sees the restart), and
//! uses the new instance by name; stopping the tree is watched by one process whose
//! mailbox orders the `DOWN`s as the children finished.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use orbit::cache::ConCache;
use orbit::ets;
use orbit::pool::{Pool, ResourcePool};
use orbit::*;
use supervise_common::*;
use tokio::sync::{mpsc, oneshot};

mod common;
mod supervise_common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_server_child_is_found_by_name_after_a_restart() {
    let spec = ChildSpec::gen_server("echo", || Echo).name("t1_echo");
    let sup = Supervisor::start(vec![spec], options(Strategy::OneForOne))
        .await
        .unwrap();
    let first = child_pid(&sup, "echo").await;
    assert_eq!(orbit::whereis("t1_echo"), Some(first));
    assert_eq!(
        gen_server::call::<Echo>("t1_echo", 1).await.unwrap(),
        (1, first)
    );

    assert_eq!(kill_and_wait(first).await, ExitReason::Killed);
    let second = child_pid(&sup, "echo").await;
    assert_ne!(first, second);
    assert_eq!(orbit::whereis("t1_echo"), Some(second));
    assert_eq!(
        gen_server::call::<Echo>("t1_echo", 2).await.unwrap(),
        (2, second)
    );
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
    assert_eq!(orbit::whereis("t1_echo"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_child_starts_afresh_and_is_found_by_name() {
    let spec = Agent::child_spec("agent", || 0u32).name("t10_agent");
    let sup = Supervisor::start(vec![spec], options(Strategy::OneForOne))
        .await
        .unwrap();
    let agent = Agent::<u32>::whereis("t10_agent").expect("agent by name");
    agent.update(|n| *n += 5).await.unwrap();
    assert_eq!(agent.get(|n| *n).await.unwrap(), 5);
    assert!(
        Agent::<String>::whereis("t10_agent").is_none(),
        "typed lookup"
    );
    kill_and_wait(agent.pid()).await;
    let now = child_pid(&sup, "agent").await;
    let agent2 = Agent::<u32>::whereis("t10_agent").unwrap();
    assert_eq!(agent2.pid(), now);
    assert_eq!(
        agent2.get(|n| *n).await.unwrap(),
        0,
        "a restart starts from init"
    );
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
    assert!(Agent::<u32>::whereis("t10_agent").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_server_named_is_registered_before_init_at_every_start() {
    /// Reports whether it could find itself by name in `init`.
    struct SelfAware(mpsc::UnboundedSender<(Pid, Option<Pid>)>);
    impl GenServer for SelfAware {
        type Call = ();
        type Reply = ();
        type Cast = ();
        type Info = ();
        type Continue = ();
        async fn init(&mut self, ctx: &mut ServerContext<Self>) -> Init<()> {
            let _ = self.0.send((ctx.pid(), orbit::whereis("t8_self")));
            Init::Ok
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let spec = ChildSpec::gen_server_named("me", "t8_self", move || SelfAware(tx.clone()));
    let sup = Supervisor::start(vec![spec], options(Strategy::OneForOne))
        .await
        .unwrap();
    let (first, seen) = rx.recv().await.unwrap();
    assert_eq!(seen, Some(first));
    kill_and_wait(first).await;
    let (second, seen) = tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap();
    assert_ne!(first, second);
    assert_eq!(seen, Some(second));
    assert_eq!(child_pid(&sup, "me").await, second);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_behaviour_restarts_under_its_name() {
    let terminated = Arc::new(AtomicUsize::new(0));
    let children = vec![
        table_spec("t2_table"),
        cache_spec("t2_cache"),
        pool_spec("t2_pool"),
        rpool_spec("t2_rpool", &terminated),
        TaskSupervisor::child_spec("tasks", Some("t2_tasks")),
        dyn_spec("t2_dyn"),
    ];
    let sup = Supervisor::start(children, options(Strategy::OneForOne))
        .await
        .unwrap();

    // ETS table owner: the restarted owner makes a new, empty table under the name.
    let table = ets::whereis::<u64, u64>("t2_table").unwrap();
    table.insert(1, 10).unwrap();
    kill_and_wait(child_pid(&sup, "table").await).await;
    let _ = child_pid(&sup, "table").await;
    assert!(!table.is_alive(), "the old table went with its owner");
    let table2 = ets::whereis::<u64, u64>("t2_table").unwrap();
    assert_eq!(table2.lookup(&1).unwrap(), Vec::<(u64, u64)>::new());
    table2.insert(2, 20).unwrap();

    // ConCache: kept alive by its owner, found by name; a restart gives an empty cache.
    let cache = ConCache::<u64, u64>::whereis("t2_cache").expect("cache by name");
    cache.put(1, 1).await.unwrap();
    drop(cache);
    let cache = ConCache::<u64, u64>::whereis("t2_cache").expect("still there without handles");
    assert_eq!(cache.get(&1).unwrap(), Some(1));
    let old_owner = cache.owner();
    assert_eq!(child_pid(&sup, "cache").await, old_owner);
    kill_and_wait(old_owner).await;
    let new_owner = child_pid(&sup, "cache").await;
    assert_ne!(old_owner, new_owner);
    let cache2 = ConCache::<u64, u64>::whereis("t2_cache").unwrap();
    assert_eq!(cache2.owner(), new_owner);
    assert_eq!(cache2.get(&1).unwrap(), None);
    cache2.put(2, 2).await.unwrap();

    // Pool: a new manager with new workers; the old workers died with the old one.
    let pool = Pool::<Echo>::whereis("t2_pool").expect("pool by name");
    let old_workers = pool.workers();
    assert_eq!(old_workers.len(), 3);
    kill_and_wait(pool.pid()).await;
    let now = child_pid(&sup, "pool").await; // served after the restart
    let pool2 = Pool::<Echo>::whereis("t2_pool").unwrap();
    assert_eq!(pool2.pid(), now);
    assert_ne!(pool2.pid(), pool.pid());
    let (n, worker) = pool2
        .transaction(|w| async move { w.call(5).await.unwrap() }, T)
        .await
        .unwrap();
    assert_eq!(n, 5);
    assert!(pool2.workers().contains(&worker));
    // The old workers were linked to the killed manager and die with it.
    for w in old_workers {
        let r = down(w, false).await;
        assert!(r == ExitReason::NoProc || r == ExitReason::Killed, "{r:?}");
    }

    // ResourcePool.
    let rpool = ResourcePool::<Buffers>::whereis("t2_rpool").expect("resource pool by name");
    kill_and_wait(rpool.pid()).await;
    let now = child_pid(&sup, "rpool").await; // served after the restart
    let rpool2 = ResourcePool::<Buffers>::whereis("t2_rpool").unwrap();
    assert_eq!(rpool2.pid(), now);
    let got = rpool2
        .checkout((), |w| async move { (w, ()) }, T)
        .await
        .unwrap_or_else(|_| panic!("checkout"));
    assert_eq!(got, 7);

    // Task.Supervisor.
    let tasks = TaskSupervisor::whereis("t2_tasks").expect("task supervisor by name");
    kill_and_wait(tasks.pid()).await;
    let now = child_pid(&sup, "tasks").await; // served after the restart
    let tasks2 = TaskSupervisor::whereis("t2_tasks").unwrap();
    assert_eq!(tasks2.pid(), now);
    let (tx, rx) = oneshot::channel();
    tasks2
        .start_child(async move {
            let _ = tx.send(42);
        })
        .unwrap();
    assert_eq!(rx.await.unwrap(), 42);

    // DynamicSupervisor.
    let dsup = DynamicSupervisorRef::whereis("t2_dyn").expect("dynamic supervisor by name");
    kill_and_wait(dsup.pid()).await;
    let now = child_pid(&sup, "dyn").await; // served after the restart
    let dsup2 = DynamicSupervisorRef::whereis("t2_dyn").unwrap();
    assert_eq!(dsup2.pid(), now);
    let echo = dsup2
        .start_child(ChildSpec::gen_server("e", || Echo))
        .await
        .unwrap();
    assert!(alive(echo));

    assert_eq!(sup.count_children().await.unwrap().active, 6);
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
    assert!(
        !alive(echo),
        "the dynamic supervisor's child stopped with it"
    );
    for name in ["t2_cache", "t2_pool", "t2_rpool", "t2_tasks", "t2_dyn"] {
        assert_eq!(orbit::whereis(name), None, "{name} still registered");
    }
    assert!(ets::whereis::<u64, u64>("t2_table").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_tree_stops_every_child_in_reverse_order() {
    let terminated = Arc::new(AtomicUsize::new(0));
    let (btx, mut brx) = mpsc::unbounded_channel();
    let (stx, mut crx) = mpsc::unbounded_channel();
    let mut children = vec![
        table_spec("t4_table"),
        cache_spec("t4_cache"),
        pool_spec("t4_pool"),
        rpool_spec("t4_rpool", &terminated),
        TaskSupervisor::child_spec("tasks", Some("t4_tasks")),
        dyn_spec("t4_dyn"),
    ];
    // 3 events: with max_demand 2 the ConsumerSupervisor runs at most 2 children.
    children.extend(stage_specs("t4", 3, &btx, &stx));
    let sup = Supervisor::start(children, options(Strategy::OneForOne))
        .await
        .unwrap();
    let ids: Vec<String> = sup
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        ids,
        ["table", "cache", "pool", "rpool", "tasks", "dyn", "prod", "cons", "csup"]
    );
    let mut pids = Vec::new();
    for id in &ids {
        pids.push((id.clone(), child_pid(&sup, id).await));
    }

    // Things running under the children.
    let pool_workers = Pool::<Echo>::whereis("t4_pool").unwrap().workers();
    assert_eq!(pool_workers.len(), 3);
    let (task_tx, task_rx) = oneshot::channel();
    let task = TaskSupervisor::whereis("t4_tasks")
        .unwrap()
        .start_child(async move {
            let _ = task_tx.send(());
            std::future::pending::<()>().await
        })
        .unwrap();
    task_rx.await.unwrap();
    let dyn_child = DynamicSupervisorRef::whereis("t4_dyn")
        .unwrap()
        .start_child(ChildSpec::gen_server("e", || Echo))
        .await
        .unwrap();
    let mut seen = 0;
    let mut csup_children = Vec::new();
    while seen + csup_children.len() < 3 {
        tokio::select! {
            Some((_, b)) = brx.recv() => seen += b.len(),
            Some(pid) = crx.recv() => csup_children.push(pid),
        }
    }
    let cache_owner = ConCache::<u64, u64>::whereis("t4_cache").unwrap().owner();

    let mut downs = watch(pids.clone()).await;
    sup.stop(ExitReason::Shutdown, T).await.unwrap();
    let mut order = Vec::new();
    while let Some((id, _)) = downs.recv().await {
        order.push(id);
    }
    let mut reverse = ids.clone();
    reverse.reverse();
    assert_eq!(order, reverse, "children stop in reverse start order");

    // Everything under them is gone too, counted.
    assert_eq!(
        pool_workers.iter().filter(|p| alive(**p)).count(),
        0,
        "pool workers left"
    );
    assert_eq!(
        terminated.load(Ordering::SeqCst),
        2,
        "both idle resources terminated"
    );
    assert!(!alive(cache_owner));
    assert!(ConCache::<u64, u64>::whereis("t4_cache").is_none());
    assert!(ets::whereis::<u64, u64>("t4_table").is_err());
    assert!(!alive(task));
    assert!(!alive(dyn_child));
    assert_eq!(
        csup_children.iter().filter(|p| alive(**p)).count(),
        0,
        "consumer supervisor children left"
    );
    for (id, pid) in pids {
        assert!(!alive(pid), "{id} still alive");
    }
}
