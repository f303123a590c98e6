//! Lesson 5: the whole program is one supervision tree; a crash is restarted, not
//! handled.
//!
//! Run: `cargo run -p orbit-examples --example supervised_app`
//!
//! An [`orbit::Application`] (an OTP application's top supervisor) starts, in order: a
//! counter GenServer (registered as `counter`), a worker pool, a ConCache and a
//! `Task.Supervisor`. The example kills the counter: the supervisor starts a fresh one
//! under the same name (its state is gone: state that must survive a crash lives in a
//! table or a cache, not in the process). Then it stops the application: children stop
//! in reverse start order, each after the one started after it has exited.
//!
//! Elixir: `children = [{Counter, 0}, :poolboy.child_spec(...), {ConCache, ...},
//! {Task.Supervisor, name: Shop.Tasks}]` in `Shop.Application.start/2`.

use std::time::Duration;

use orbit::cache::{CacheOptions, ConCache};
use orbit::{
    Application, CallReply, ChildSpec, ExitReason, GenServer, Init, Message, Next, Pid, Pool,
    PoolOptions, ReplyTo, ServerContext, ServerRef, TaskSupervisor,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

const WAIT: Duration = Duration::from_secs(5);

/// A counter that reports its start and its terminate.
struct Counter {
    n: u64,
    events: UnboundedSender<String>,
}

impl GenServer for Counter {
    type Call = ();
    type Reply = u64;
    type Cast = u64;
    type Info = ();
    type Continue = ();

    async fn init(&mut self, ctx: &mut ServerContext<Self>) -> Init<()> {
        // Trapping exits makes the supervisor's `shutdown` run `terminate`.
        ctx.trap_exit(true);
        let _ = self
            .events
            .send(format!("counter started as {}", ctx.pid()));
        Init::Ok
    }

    async fn handle_call(
        &mut self,
        _: (),
        _from: &mut ReplyTo<u64>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<u64, ()> {
        CallReply::Reply(self.n)
    }

    async fn handle_cast(&mut self, by: u64, _ctx: &mut ServerContext<Self>) -> Next<()> {
        self.n += by;
        Next::NoReply
    }

    async fn terminate(&mut self, reason: &ExitReason, _ctx: &mut ServerContext<Self>) {
        let _ = self
            .events
            .send(format!("counter terminate({reason}) with n = {}", self.n));
    }
}

/// A pool worker (does nothing here: the pool is part of the tree).
struct Worker;

impl GenServer for Worker {
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Continue = ();
}

async fn next(rx: &mut UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("the sender lives")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (tx, mut events) = unbounded_channel();
    let app = Application::new("shop")
        .child(ChildSpec::gen_server_named(
            "counter",
            "counter",
            move || Counter {
                n: 0,
                events: tx.clone(),
            },
        ))
        .child(Pool::child_spec(
            "pool",
            PoolOptions::new(2, 1).name("shop.pool"),
            || Worker,
        ))
        .child(ConCache::<String, u64>::child_spec(
            "cache",
            CacheOptions::new().no_ttl_check().name("shop.cache"),
        ))
        .child(TaskSupervisor::child_spec("tasks", Some("shop.tasks")))
        .start()
        .await
        .expect("the application starts");
    println!("{}", next(&mut events).await);
    println!("application {:?} started; its children:", app.name());
    for c in app.supervisor().which_children().await.expect("children") {
        println!("  {:<8} {:?} {:?}", c.id, c.pid.expect("running"), c.kind);
    }

    // Use the tree by name, as any part of the program would.
    let counter = ServerRef::<Counter>::whereis("counter").expect("counter registered");
    counter.cast(5);
    let cache = ConCache::<String, u64>::whereis("shop.cache").expect("cache registered");
    cache.put("visits".into(), 5).await.expect("put");
    let pool = Pool::<Worker>::whereis("shop.pool").expect("pool registered");
    let tasks = TaskSupervisor::whereis("shop.tasks").expect("task supervisor registered");
    let answer = tasks
        .run_async(async { 6 * 7 })
        .expect("task started")
        .await_timeout(WAIT)
        .await
        .expect("task result");
    println!(
        "counter = {}, cache visits = {:?}, pool status {:?}, a supervised task answered {answer}",
        counter.call(()).await.expect("call"),
        cache.get("visits").expect("get"),
        pool.status().state
    );

    // Kill the counter: untrappable, so no terminate; the supervisor restarts it.
    let old = counter.pid();
    println!("\nkilling the counter {old} (exit(pid, kill))");
    orbit::exit(old, ExitReason::Kill);
    let restarted = next(&mut events).await;
    println!("{restarted}");
    let fresh = ServerRef::<Counter>::whereis("counter").expect("counter registered again");
    assert_ne!(fresh.pid(), old);
    println!(
        "the name `counter` now points at {}; its state restarted: counter = {} (the cache, \
         another process, kept visits = {:?})",
        fresh.pid(),
        fresh.call(()).await.expect("call"),
        cache.get("visits").expect("get")
    );
    let counts = app.supervisor().count_children().await.expect("counts");
    println!("supervisor counts: {counts:?}");

    // Stop: children exit in reverse start order. A watcher process monitors each child
    // and reports the DOWNs in the order they arrive.
    let children: Vec<(String, Pid)> = app
        .supervisor()
        .which_children()
        .await
        .expect("children")
        .into_iter()
        .map(|c| (c.id, c.pid.expect("running")))
        .collect();
    let (down_tx, mut downs) = unbounded_channel::<String>();
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let watched = children.clone();
    orbit::spawn(move |mut ctx: orbit::Context<()>| async move {
        let mut by_pid = std::collections::HashMap::new();
        for (id, pid) in &watched {
            orbit::monitor(*pid).expect("in a process");
            by_pid.insert(*pid, id.clone());
        }
        let _ = ready_tx.send(());
        while !by_pid.is_empty() {
            if let Message::Down(d) = ctx.recv().await {
                if let Some(id) = by_pid.remove(&d.pid) {
                    let _ = down_tx.send(format!("{id} exited: {}", d.reason));
                }
            }
        }
    })
    .expect("the watcher starts");
    ready.await.expect("the watcher monitors");
    println!("\nstopping the application:");
    app.stop().await.expect("the application stops");
    println!("  {}", next(&mut events).await);
    let mut order = Vec::new();
    for _ in 0..children.len() {
        let line = tokio::time::timeout(WAIT, downs.recv())
            .await
            .expect("a DOWN within 5 s")
            .expect("the watcher lives");
        println!("  {line}");
        order.push(line.split(' ').next().unwrap_or_default().to_string());
    }
    assert_eq!(
        order,
        ["tasks", "cache", "pool", "counter"],
        "reverse start order"
    );
    assert!(orbit::whereis("counter").is_none());
    println!("stopped in reverse start order; no name is left registered");
}
