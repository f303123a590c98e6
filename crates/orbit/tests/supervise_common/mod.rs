//! Children and helpers shared by the supervision tests (`supervise_tree.rs`,
//! `supervise_edges.rs`): one small child per behaviour, a kill that waits for the
//! `DOWN`, and a watcher that orders `DOWN`s as the children finished.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use orbit::cache::{CacheOptions, ConCache};
use orbit::ets::Table;
use orbit::pool::{
    Caller, CheckoutResult, InitWorker, Pool, PoolOptions, ResourcePool, ResourcePoolOptions,
    ResourceWorker,
};
use orbit::stage::{
    self, Consumer, ConsumerContext, ConsumerOptions, ConsumerSupervisor, Producer,
    ProducerContext, ProducerOptions, SubscribeOptions, Subscription,
};
use orbit::*;
use tokio::sync::{mpsc, oneshot};

pub const T: Duration = Duration::from_secs(10);

// ---- children -----------------------------------------------------------------------

pub struct Echo;

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
pub struct Buffers(pub Arc<AtomicUsize>);

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
pub struct Numbers {
    pub next: u64,
    pub limit: u64,
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
pub struct Sink(pub mpsc::UnboundedSender<(Pid, Vec<u64>)>);

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
pub async fn kill_and_wait(pid: Pid) -> ExitReason {
    down(pid, true).await
}

/// Monitors `pid` (killing it when `kill`) and returns the reason of its `DOWN`
/// (`noproc` when it was already gone).
pub async fn down(pid: Pid, kill: bool) -> ExitReason {
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
pub async fn watch(pids: Vec<(String, Pid)>) -> mpsc::UnboundedReceiver<(String, Pid)> {
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

pub async fn child_pid(sup: &SupervisorRef, id: &str) -> Pid {
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.pid)
        .unwrap_or_else(|| panic!("child {id} is not running"))
}

pub fn alive(pid: Pid) -> bool {
    orbit::process_info(pid).is_some()
}

pub fn options(strategy: Strategy) -> SupervisorOptions {
    SupervisorOptions {
        strategy,
        max_restarts: 50,
        ..SupervisorOptions::default()
    }
}

pub fn table_spec(name: &'static str) -> ChildSpec {
    ChildSpec::ets_table("table", move || {
        Table::<u64, u64>::builder().named(name).public().build()
    })
}

pub fn cache_spec(name: &str) -> ChildSpec {
    ConCache::<u64, u64>::child_spec("cache", CacheOptions::new().no_ttl_check().name(name))
}

pub fn pool_spec(name: &str) -> ChildSpec {
    Pool::child_spec("pool", PoolOptions::new(3, 0).name(name), || Echo)
}

pub fn rpool_spec(name: &str, terminated: &Arc<AtomicUsize>) -> ChildSpec {
    let t = terminated.clone();
    ResourcePool::child_spec(
        "rpool",
        move || Buffers(t.clone()),
        ResourcePoolOptions::new(2).name(name),
    )
}

pub fn dyn_spec(name: &str) -> ChildSpec {
    DynamicSupervisor::child_spec(
        "dyn",
        DynamicOptions {
            name: Some(name.into()),
            ..DynamicOptions::default()
        },
    )
}

pub type Batches = mpsc::UnboundedSender<(Pid, Vec<u64>)>;

pub fn stage_specs(
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
            let children = stage::ConsumerChildSpec::task(move |_e: u64| {
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
