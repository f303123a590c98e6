//! Every behaviour as a supervised child (issue 18 item 1): started, named, restarted
//! and stopped by a `Supervisor`. Each test kills a child, waits for its `DOWN` (which
//! comes after the supervisor's `EXIT`, so a request sent then sees the restart), and
//! uses the new instance by name; stopping the tree is watched by one process whose
//! mailbox orders the `DOWN`s as the children finished.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orbit::cache::{ConCache, Options};
use orbit::ets::{self, Table};
use orbit::pool::{
    Caller, CheckoutResult, InitWorker, Pool, PoolOptions, ResourcePool, ResourcePoolOptions,
    ResourceWorker,
};
use orbit::stage::{
    self, Consumer, ConsumerContext, ConsumerOptions, ConsumerSupervisor, NoEvents, Producer,
    ProducerContext, ProducerOptions, StageRef, SubscribeOptions, Subscription,
};
use orbit::*;
use tokio::sync::{mpsc, oneshot};

mod common;

const T: Duration = Duration::from_secs(10);

// ---- children -----------------------------------------------------------------------

struct Echo;

impl GenServer for Echo {
    type Call = u32;
    type Reply = (u32, Pid);
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        n: u32,
        _: &mut ReplyTo<(u32, Pid)>,
        ctx: &mut ServerContext<Self>,
    ) -> CallReply<(u32, Pid), ()> {
        CallReply::Reply((n, ctx.pid()))
    }
}

/// Numbered buffers; counts the resources terminated.
struct Buffers(Arc<AtomicUsize>);

impl ResourceWorker for Buffers {
    type Worker = u32;
    type Command = ();
    type Client = u32;
    type Checkin = ();
    type Error = ();

    fn init_worker(&mut self) -> InitWorker<u32> {
        InitWorker::Ok(7)
    }

    fn handle_checkout(&mut self, _: &(), _: Caller, w: u32) -> CheckoutResult<u32, u32, ()> {
        CheckoutResult::Ok {
            client: w,
            worker: w,
        }
    }

    fn terminate_worker(&mut self, _: &ExitReason, _: u32) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Emits 0, 1, 2, ... up to `limit` on demand.
struct Numbers {
    next: u64,
    limit: u64,
}

impl Producer for Numbers {
    type Event = u64;
    type Info = ();

    async fn handle_demand(
        &mut self,
        demand: usize,
        _: &mut ProducerContext<Self>,
    ) -> Result<Vec<u64>, ExitReason> {
        let end = (self.next + demand as u64).min(self.limit);
        let events = (self.next..end).collect();
        self.next = end;
        Ok(events)
    }
}

/// Reports every batch with its own pid.
struct Sink(mpsc::UnboundedSender<(Pid, Vec<u64>)>);

impl Consumer for Sink {
    type Event = u64;
    type Info = ();

    async fn handle_events(
        &mut self,
        events: Vec<u64>,
        _: &Subscription,
        ctx: &mut ConsumerContext<Self>,
    ) -> Result<(), ExitReason> {
        let _ = self.0.send((ctx.pid(), events));
        Ok(())
    }
}

// ---- helpers ------------------------------------------------------------------------

/// Kills `pid` and returns once its `DOWN` arrived (its supervisor's `EXIT` is queued
/// by then).
async fn kill_and_wait(pid: Pid) -> ExitReason {
    down(pid, true).await
}

/// Monitors `pid` (killing it when `kill`) and returns the reason of its `DOWN`
/// (`noproc` when it was already gone).
async fn down(pid: Pid, kill: bool) -> ExitReason {
    let (tx, rx) = oneshot::channel();
    orbit::spawn(move |mut ctx: Context<()>| async move {
        let r = orbit::monitor(pid).expect("in a process");
        if kill {
            orbit::exit(pid, ExitReason::Kill);
        }
        loop {
            if let Message::Down(d) = ctx.recv().await {
                if d.monitor == r {
                    let _ = tx.send(d.reason);
                    return;
                }
            }
        }
    })
    .unwrap();
    tokio::time::timeout(T, rx).await.expect("no DOWN").unwrap()
}

/// One process monitoring all `pids`: reports each `DOWN` in the order its mailbox got
/// them, which is the order the processes finished.
async fn watch(pids: Vec<(String, Pid)>) -> mpsc::UnboundedReceiver<(String, Pid)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    orbit::spawn(move |mut ctx: Context<()>| async move {
        let mut refs = std::collections::HashMap::new();
        for (id, pid) in pids {
            refs.insert(orbit::monitor(pid).expect("in a process"), (id, pid));
        }
        let _ = ready_tx.send(());
        while !refs.is_empty() {
            if let Message::Down(d) = ctx.recv().await {
                if let Some(who) = refs.remove(&d.monitor) {
                    let _ = tx.send(who);
                }
            }
        }
    })
    .unwrap();
    ready_rx.await.unwrap();
    rx
}

async fn child_pid(sup: &SupervisorRef, id: &str) -> Pid {
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.pid)
        .unwrap_or_else(|| panic!("child {id} is not running"))
}

fn alive(pid: Pid) -> bool {
    orbit::process_info(pid).is_some()
}

fn options(strategy: Strategy) -> SupervisorOptions {
    SupervisorOptions {
        strategy,
        max_restarts: 50,
        ..SupervisorOptions::default()
    }
}

fn table_spec(name: &'static str) -> ChildSpec {
    ChildSpec::ets_table("table", move || {
        Table::<u64, u64>::builder().named(name).public().build()
    })
}

fn cache_spec(name: &str) -> ChildSpec {
    ConCache::<u64, u64>::child_spec("cache", Options::new().no_ttl_check().name(name))
}

fn pool_spec(name: &str) -> ChildSpec {
    Pool::child_spec("pool", PoolOptions::new(3, 0).name(name), || Echo)
}

fn rpool_spec(name: &str, terminated: &Arc<AtomicUsize>) -> ChildSpec {
    let t = terminated.clone();
    ResourcePool::child_spec(
        "rpool",
        move || Buffers(t.clone()),
        ResourcePoolOptions::new(2).name(name),
    )
}

fn dyn_spec(name: &str) -> ChildSpec {
    DynamicSupervisor::child_spec(
        "dyn",
        DynamicOptions {
            name: Some(name.into()),
            ..DynamicOptions::default()
        },
    )
}

type Batches = mpsc::UnboundedSender<(Pid, Vec<u64>)>;

fn stage_specs(
    prefix: &str,
    limit: u64,
    batches: &Batches,
    csup_started: &mpsc::UnboundedSender<Pid>,
) -> Vec<ChildSpec> {
    let prod = format!("{prefix}_prod");
    let (p1, p2) = (prod.clone(), prod.clone());
    let cons = format!("{prefix}_cons");
    let csup = format!("{prefix}_csup");
    let b = batches.clone();
    let s = csup_started.clone();
    vec![
        ChildSpec::producer("prod", move || {
            (
                Numbers { next: 0, limit },
                ProducerOptions::new().name(p1.clone()),
            )
        }),
        ChildSpec::consumer("cons", move || {
            let opts = ConsumerOptions::new()
                .name(cons.clone())
                .subscribe_to_name(p2.clone(), SubscribeOptions::new().max_demand(10));
            (Sink(b.clone()), opts)
        }),
        ChildSpec::consumer_supervisor("csup", move || {
            let s = s.clone();
            let children = stage::ChildSpec::task(move |_e: u64| {
                let s = s.clone();
                async move {
                    let _ = s.send(orbit::self_pid().unwrap_or(Pid::NONE));
                    // Runs until its supervisor stops it.
                    std::future::pending::<()>().await;
                }
            });
            let opts = ConsumerOptions::new().name(csup.clone()).subscribe_to_name(
                prod.clone(),
                SubscribeOptions::new().max_demand(2).min_demand(1),
            );
            (ConsumerSupervisor::new(children), opts)
        }),
    ]
}

// ---- tests --------------------------------------------------------------------------

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
