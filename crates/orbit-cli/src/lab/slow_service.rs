//! A slow external service: every request makes one 2 ms call (a database, an HTTP API;
//! here a timer).
//!
//! - `one GenServer`: the call is made inside one GenServer's `handle_call`, so requests
//!   queue in its mailbox and the service sees one call at a time: ~500 requests/s at
//!   most, whatever the number of clients.
//! - `Pool of 10`: `orbit::Pool` of 10 such GenServers (poolboy): 10 calls at a time.
//! - `TaskSupervisor`: one `async_nolink` task per request (Task.Supervisor): as many
//!   calls at a time as there are requests; the limit is now the service itself.

use std::sync::Arc;
use std::time::Duration;

use orbit::pool::{Pool, PoolOptions};
use orbit::{CallReply, Context, GenServer, ReplyTo, ServerContext, TaskSupervisor};
use serde_json::{json, Map};

use super::measure::{closed_loop, spawn_clients, watch, Probe, VariantResult};
use super::report::hundredths;
use super::{Error, Lab, Report};

const SCENARIO: &str = "slow_service";
const CALL: Duration = Duration::from_millis(2);
const POOL: usize = 10;
const TIMEOUT: Duration = Duration::from_secs(60);

/// The stand-in for an external service.
async fn external_call() {
    tokio::time::sleep(CALL).await;
}

/// A GenServer that makes the external call inside `handle_call`.
struct Client;

impl GenServer for Client {
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
        external_call().await;
        CallReply::Reply(())
    }
}

/// How a request reaches the service.
#[derive(Clone)]
enum Via {
    One(orbit::ServerRef<Client>),
    Pool(Pool<Client>),
    Tasks(TaskSupervisor),
}

impl Via {
    async fn request(&self) {
        match self {
            Via::One(s) => drop(s.call_timeout((), TIMEOUT).await),
            Via::Pool(p) => drop(
                p.transaction(
                    |w| async move { w.call_timeout((), TIMEOUT).await },
                    TIMEOUT,
                )
                .await,
            ),
            Via::Tasks(sup) => {
                if let Ok(task) = sup.async_nolink(external_call()) {
                    drop(task.await_timeout(TIMEOUT).await);
                }
            }
        }
    }
}

/// Runs the scenario.
pub async fn run(lab: &Lab) -> Result<Report, Error> {
    let one = orbit::gen_server::start(Client).await?;
    let pool = Pool::start(PoolOptions::new(POOL, 0), || Client).await?;
    let tasks = TaskSupervisor::start()?;
    let variants = [
        ("one GenServer", Via::One(one.clone())),
        ("Pool of 10", Via::Pool(pool.clone())),
        ("TaskSupervisor", Via::Tasks(tasks.clone())),
    ];
    let mut results = Vec::new();
    for (name, via) in variants {
        let probe = Probe::new();
        let clients = spawn_clients(
            lab.clients(),
            &probe,
            move |_, probe: Arc<Probe>, _ctx: Context<()>| {
                let via = via.clone();
                async move { closed_loop(probe, || via.request()).await }
            },
        )?;
        results.push(
            watch(
                lab,
                SCENARIO,
                name,
                lab.duration(),
                &probe,
                &clients,
                |_| {},
            )
            .await,
        );
    }
    one.stop(orbit::ExitReason::Normal, Duration::from_secs(5))
        .await
        .ok();
    pool.stop(Duration::from_secs(5)).await.ok();
    tasks.stop().await;
    Ok(verdict(lab, results))
}

fn verdict(lab: &Lab, results: Vec<VariantResult>) -> Report {
    let rps = |n: &str| {
        results
            .iter()
            .find(|r| r.variant == n)
            .map_or(0.0, |r| r.rps)
    };
    let (one, pool, tasks) = (
        rps("one GenServer"),
        rps("Pool of 10"),
        rps("TaskSupervisor"),
    );
    let peak = results.first().map_or(0, |r| r.peak_mailbox);
    let p99 = results.first().map_or(Duration::ZERO, |r| r.latency.p99);
    let pool_x = pool / one.max(1.0);
    let tasks_x = tasks / one.max(1.0);
    let mut facts = Map::new();
    facts.insert("pool_vs_one".into(), json!(hundredths(pool_x)));
    facts.insert("tasks_vs_one".into(), json!(hundredths(tasks_x)));
    Report {
        scenario: SCENARIO,
        title: format!("{} clients, each request one 2 ms external call", lab.clients()),
        bottleneck: "the one GenServer".into(),
        verdict: format!(
            "bottleneck: the one GenServer — it makes one 2 ms call at a time ({} req/s, {} clients queued in its mailbox, p99 {}); a Pool of 10 gives {:.1}x, TaskSupervisor fan-out {:.1}x",
            super::report::num(one),
            super::report::num(peak as f64),
            super::report::dur(p99),
            pool_x,
            tasks_x
        ),
        results,
        facts,
    }
}
