//! `pool`: worker pools and resource pools against deadpool, bb8 and the BEAM's poolboy
//! and NimblePool, plus the seed's case (a slow external call behind one process).
//!
//! Throughput: 4 clients × 250k transactions on a pool of 10 trivial workers (each on a
//! fresh 2-worker tokio runtime; the clock runs from the clients' start to the last
//! one's end):
//! - `orbit_pool`: `orbit::pool::Pool` of 10 GenServers (no overflow), clients are orbit
//!   processes doing `transaction(f)` with `f` touching the worker (no call), as
//!   deadpool's and bb8's loops touch their object;
//! - `orbit_pool_call`: the same, `f` calling the worker (`ServerRef::call`);
//! - `orbit_resource_pool`: `orbit::pool::ResourcePool` of 10 resources, `checkout`
//!   with a function that hands the resource straight back;
//! - `deadpool`: `deadpool::managed::Pool` (max_size 10), `get().await` and drop, from
//!   tokio tasks;
//! - `bb8`: `bb8::Pool` (max_size 10, no test on checkout), `get().await` and drop;
//! - `poolboy`, `poolboy_call`, `nimble_pool`: the real libraries on the BEAM
//!   (`beam/pool_bench.exs` with `../shared/beamlibs`, `elixir --erl "+S N:N"`), the
//!   same clients, transactions and pool size: `:poolboy.transaction/3` touching the
//!   worker / calling it, `NimblePool.checkout!/4` handing the resource back. Skipped
//!   with a note without `elixir`.
//!
//! Every subject runs in every round, the order rotated each round; each reports
//! `transactions_per_s` = the median of rounds (used by the ratios) with `_best`, `_min`,
//! `_max` and `cpu_us_per_transaction` (`getrusage(RUSAGE_SELF)` around a Rust round,
//! pool start included; the BEAM's `statistics(runtime)` around its measured part).
//!
//! Goals: `orbit_pool` ≥ 0.5x deadpool and bb8 (they are a bare semaphore and queue;
//! the orbit pool also supervises processes), ≥ 5x poolboy (`orbit_pool_call` against
//! `poolboy_call` beside it); `orbit_resource_pool` ≥ 5x NimblePool.
//!
//! The seed's case, ~2 s per variant, 100 closed-loop clients, each request one external
//! call of 2 ms (a tokio sleep; 2–3 ms with the timer's 1 ms resolution):
//! - `seed_one_genserver`: the call made inside one GenServer's `handle_call`;
//! - `seed_pool_10`: through a `Pool` of 10 such GenServers (`transaction` + `call`);
//! - `seed_task_supervisor`: one `TaskSupervisor::async_nolink` task per request.
//!
//! Each reports `requests_per_s` and `p99_ms` (client-side latency).

use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit::pool::{
    Caller, CheckoutResult, InitWorker, Pool, PoolOptions, ResourcePool, ResourcePoolOptions,
    ResourceWorker,
};
use orbit::{CallReply, GenServer, ReplyTo, ServerContext};

use super::Ctx;
use crate::util::{measured, on_runtime, per_s, run_rotated, Rounds, Step};

const SCENARIO: &str = "pool";
const CLIENTS: u64 = 4;
const PER_CLIENT: u64 = 250_000;
const SIZE: usize = 10;
const T: Duration = Duration::from_secs(60);

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let per = ctx.n(PER_CLIENT);
    let units = CLIENTS * per;
    let mut r = Rounds::default();
    let beam = |r: &mut Rounds, subject: &'static str, test: &str| {
        let args = [
            test.to_string(),
            CLIENTS.to_string(),
            per.to_string(),
            SIZE.to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Some(v) = crate::beam::run_elixir("pool_bench.exs", &args) {
            if let (Some(rate), Some(cpu)) = (v.get("rate"), v.get("cpu_s")) {
                r.add(subject, *rate);
                r.add_cpu(subject, cpu * 1e6 / units as f64);
            }
        }
    };
    let mut steps: Vec<Step> = vec![
        Box::new(|r| measured(r, "orbit_pool", units, || orbit_pool(per, false))),
        Box::new(|r| beam(r, "poolboy", "poolboy")),
        Box::new(|r| measured(r, "deadpool", units, || deadpool_run(per))),
        Box::new(|r| measured(r, "bb8", units, || bb8_run(per))),
        Box::new(|r| measured(r, "orbit_resource_pool", units, || orbit_resource(per))),
        Box::new(|r| beam(r, "nimble_pool", "nimble")),
        Box::new(|r| measured(r, "orbit_pool_call", units, || orbit_pool(per, true))),
        Box::new(|r| beam(r, "poolboy_call", "poolboy_call")),
    ];
    run_rotated(ctx.rounds, &mut steps, &mut r);
    drop(steps);
    for s in [
        "orbit_pool",
        "orbit_pool_call",
        "orbit_resource_pool",
        "deadpool",
        "bb8",
        "poolboy",
        "poolboy_call",
        "nimble_pool",
    ] {
        ctx.emit_rounds(SCENARIO, s, "transactions_per_s", "transaction", &r);
    }
    let m = |s: &str| r.median(s);
    let o = m("orbit_pool");
    ctx.goal(
        SCENARIO,
        "orbit_pool_vs_deadpool_min_0.5x",
        o,
        m("deadpool"),
    );
    ctx.goal(SCENARIO, "orbit_pool_vs_bb8_min_0.5x", o, m("bb8"));
    ctx.goal(SCENARIO, "orbit_pool_vs_poolboy_min_5x", o, m("poolboy"));
    ctx.goal(
        SCENARIO,
        "orbit_pool_call_vs_poolboy_call",
        m("orbit_pool_call"),
        m("poolboy_call"),
    );
    ctx.goal(
        SCENARIO,
        "orbit_resource_pool_vs_nimble_pool_min_5x",
        m("orbit_resource_pool"),
        m("nimble_pool"),
    );
    seed(ctx);
}

/// A trivial worker.
struct Trivial;

impl GenServer for Trivial {
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _: (),
        _: &mut ReplyTo<()>,
        _: &mut ServerContext<Self>,
    ) -> CallReply<(), ()> {
        CallReply::Reply(())
    }
}

/// Runs `clients` orbit processes, each running `body(i)`; returns once all are done.
async fn orbit_clients<F, Fut>(clients: u64, body: F)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut done = Vec::new();
    for i in 0..clients {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let fut = body(i);
        orbit::spawn(move |_ctx: orbit::Context<()>| async move {
            fut.await;
            let _ = tx.send(());
        })
        .expect("client process");
        done.push(rx);
    }
    for d in done {
        d.await.expect("client finished");
    }
}

fn orbit_pool(per: u64, call: bool) -> f64 {
    on_runtime(move || async move {
        let pool = Pool::start(PoolOptions::new(SIZE, 0), || Trivial)
            .await
            .expect("pool start");
        let t0 = Instant::now();
        orbit_clients(CLIENTS, |_| {
            let pool = pool.clone();
            async move {
                for _ in 0..per {
                    pool.transaction(
                        |w| async move {
                            if call {
                                w.call(()).await.expect("worker call");
                            } else {
                                std::hint::black_box(w.pid());
                            }
                        },
                        T,
                    )
                    .await
                    .expect("transaction");
                }
            }
        })
        .await;
        let rate = per_s(CLIENTS * per, t0.elapsed());
        let _ = pool.stop(Duration::from_secs(5)).await;
        rate
    })
}

/// Trivial resources: a number handed to the caller and back.
struct Numbers(u64);

impl ResourceWorker for Numbers {
    type Worker = u64;
    type Command = ();
    type Client = u64;
    type Checkin = ();
    type Error = ();

    fn init_worker(&mut self) -> InitWorker<u64> {
        self.0 += 1;
        InitWorker::Ok(self.0)
    }

    fn handle_checkout(&mut self, _: &(), _: Caller, n: u64) -> CheckoutResult<u64, u64, ()> {
        CheckoutResult::Ok {
            client: n,
            worker: n,
        }
    }
}

fn orbit_resource(per: u64) -> f64 {
    on_runtime(move || async move {
        let pool = ResourcePool::start(Numbers(0), ResourcePoolOptions::new(SIZE))
            .await
            .expect("pool start");
        let t0 = Instant::now();
        orbit_clients(CLIENTS, |_| {
            let pool = pool.clone();
            async move {
                for _ in 0..per {
                    pool.checkout((), |n| async move { (std::hint::black_box(n), ()) }, T)
                        .await
                        .expect("checkout");
                }
            }
        })
        .await;
        let rate = per_s(CLIENTS * per, t0.elapsed());
        let _ = pool.stop(Duration::from_secs(5)).await;
        rate
    })
}

struct DeadpoolManager;

impl deadpool::managed::Manager for DeadpoolManager {
    type Type = u64;
    type Error = ();

    async fn create(&self) -> Result<u64, ()> {
        Ok(0)
    }

    async fn recycle(
        &self,
        _: &mut u64,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<()> {
        Ok(())
    }
}

async fn tokio_clients<F, Fut>(clients: u64, body: F)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = (0..clients).map(|i| tokio::spawn(body(i))).collect();
    for t in tasks {
        t.await.expect("client task");
    }
}

fn deadpool_run(per: u64) -> f64 {
    on_runtime(move || async move {
        let pool: deadpool::managed::Pool<DeadpoolManager> =
            deadpool::managed::Pool::builder(DeadpoolManager)
                .max_size(SIZE)
                .build()
                .expect("deadpool build");
        let t0 = Instant::now();
        tokio_clients(CLIENTS, |_| {
            let pool = pool.clone();
            async move {
                for _ in 0..per {
                    let obj = pool.get().await.expect("deadpool get");
                    std::hint::black_box(*obj);
                }
            }
        })
        .await;
        per_s(CLIENTS * per, t0.elapsed())
    })
}

struct Bb8Manager;

impl bb8::ManageConnection for Bb8Manager {
    type Connection = u64;
    type Error = std::convert::Infallible;

    async fn connect(&self) -> Result<u64, Self::Error> {
        Ok(0)
    }

    async fn is_valid(&self, _: &mut u64) -> Result<(), Self::Error> {
        Ok(())
    }

    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

fn bb8_run(per: u64) -> f64 {
    on_runtime(move || async move {
        let pool = bb8::Pool::builder()
            .max_size(SIZE as u32)
            .min_idle(Some(SIZE as u32))
            .test_on_check_out(false)
            .build(Bb8Manager)
            .await
            .expect("bb8 build");
        let t0 = Instant::now();
        tokio_clients(CLIENTS, |_| {
            let pool = pool.clone();
            async move {
                for _ in 0..per {
                    let conn = pool.get().await.expect("bb8 get");
                    std::hint::black_box(*conn);
                }
            }
        })
        .await;
        per_s(CLIENTS * per, t0.elapsed())
    })
}

// ---- the seed's case: a slow external call ----

const SEED_CLIENTS: u64 = 100;
const SEED_RUN: Duration = Duration::from_secs(2);
const EXTERNAL_CALL: Duration = Duration::from_millis(2);

/// A GenServer that makes the external call inside `handle_call`.
struct External;

impl GenServer for External {
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _: (),
        _: &mut ReplyTo<()>,
        _: &mut ServerContext<Self>,
    ) -> CallReply<(), ()> {
        tokio::time::sleep(EXTERNAL_CALL).await;
        CallReply::Reply(())
    }
}

/// How one request is made in a seed variant.
#[derive(Clone)]
enum Via {
    One(orbit::ServerRef<External>),
    Pool(Pool<External>),
    Tasks(orbit::TaskSupervisor),
}

impl Via {
    async fn request(&self) {
        match self {
            Via::One(s) => s.call_timeout((), T).await.expect("call"),
            Via::Pool(p) => p
                .transaction(|w| async move { w.call_timeout((), T).await }, T)
                .await
                .expect("checkout")
                .expect("call"),
            Via::Tasks(sup) => sup
                .async_nolink(tokio::time::sleep(EXTERNAL_CALL))
                .expect("task")
                .await_timeout(T)
                .await
                .expect("task result"),
        }
    }
}

/// Runs closed-loop clients for [`SEED_RUN`]; returns (requests/s, p99 ms).
fn seed_variant(kind: &'static str) -> (f64, f64) {
    on_runtime(move || async move {
        let via = match kind {
            "one" => Via::One(orbit::gen_server::start(External).await.expect("start")),
            "pool" => Via::Pool(
                Pool::start(PoolOptions::new(SIZE, 0), || External)
                    .await
                    .expect("pool"),
            ),
            _ => Via::Tasks(orbit::TaskSupervisor::start().expect("task supervisor")),
        };
        let latencies = Arc::new(parking_lot::Mutex::new(Vec::<u64>::new()));
        let t0 = Instant::now();
        let deadline = t0 + SEED_RUN;
        orbit_clients(SEED_CLIENTS, |_| {
            let (via, latencies) = (via.clone(), latencies.clone());
            async move {
                let mut mine = Vec::new();
                while Instant::now() < deadline {
                    let s = Instant::now();
                    via.request().await;
                    mine.push(s.elapsed().as_micros() as u64);
                }
                latencies.lock().extend(mine);
            }
        })
        .await;
        let elapsed = t0.elapsed();
        let mut l = std::mem::take(&mut *latencies.lock());
        l.sort_unstable();
        let p99 = l
            .get(((l.len() as f64 * 0.99) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0;
        (per_s(l.len() as u64, elapsed), p99)
    })
}

fn seed(ctx: &mut Ctx) {
    for (kind, subject) in [
        ("one", "seed_one_genserver"),
        ("pool", "seed_pool_10"),
        ("tasks", "seed_task_supervisor"),
    ] {
        let (rate, p99) = seed_variant(kind);
        ctx.rep.emit(SCENARIO, subject, "requests_per_s", rate);
        ctx.rep.emit(SCENARIO, subject, "p99_ms", p99);
    }
}
