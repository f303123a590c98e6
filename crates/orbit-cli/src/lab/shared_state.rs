//! Shared state: one map read and written by every client, 90% reads.
//!
//! - `GenServer map`: the map lives in one GenServer; every read is a `call`.
//! - `Agent`: the same through an `Agent` (a GenServer with closures).
//! - `ets table`: an `orbit::ets` public table with read and write concurrency; clients
//!   read and write it directly, in parallel.
//! - `ConCache`: `orbit::cache::ConCache` on ets (reads lock-free, writes take the
//!   key's lock).
//!
//! One process handles one message at a time, so the first two serialise every read:
//! their mailbox holds the waiting clients. The tables don't.

use std::collections::HashMap;
use std::sync::Arc;

use orbit::cache::{CacheOptions, ConCache};
use orbit::ets::Table;
use orbit::{Agent, CallReply, Context, GenServer, ReplyTo, ServerContext, ServerRef};
use serde_json::{json, Map};

use super::measure::{closed_loop, spawn_clients, watch, Probe, VariantResult};
use super::{Error, Lab, Report};

const SCENARIO: &str = "shared_state";
const KEYS: u64 = 10_000;

/// A request to the map server.
#[derive(Debug)]
enum Op {
    Get(u64),
    Put(u64, u64),
}

/// The map behind one GenServer.
struct MapServer(HashMap<u64, u64>);

impl GenServer for MapServer {
    type Call = Op;
    type Reply = Option<u64>;
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        op: Op,
        _from: &mut ReplyTo<Option<u64>>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<Option<u64>, ()> {
        CallReply::Reply(match op {
            Op::Get(k) => self.0.get(&k).copied(),
            Op::Put(k, v) => self.0.insert(k, v),
        })
    }
}

/// Where the clients' map lives.
#[derive(Clone)]
enum Store {
    Server(ServerRef<MapServer>),
    Agent(Agent<HashMap<u64, u64>>),
    Ets(Table<u64, u64>),
    Cache(ConCache<u64, u64>),
}

impl Store {
    async fn op(&self, op: Op) {
        // Errors would mean the store stopped, which the lab never does mid-run; a
        // failed request is simply not a result.
        match (self, op) {
            (Store::Server(s), op) => drop(s.call(op).await),
            (Store::Agent(a), Op::Get(k)) => drop(a.get(move |m| m.get(&k).copied()).await),
            (Store::Agent(a), Op::Put(k, v)) => drop(
                a.update(move |m| {
                    m.insert(k, v);
                })
                .await,
            ),
            (Store::Ets(t), Op::Get(k)) => drop(t.get(&k)),
            (Store::Ets(t), Op::Put(k, v)) => drop(t.insert(k, v)),
            (Store::Cache(c), Op::Get(k)) => drop(c.get(&k)),
            (Store::Cache(c), Op::Put(k, v)) => drop(c.put(k, v).await),
        }
    }
}

fn initial() -> HashMap<u64, u64> {
    (0..KEYS).map(|k| (k, k)).collect()
}

/// Runs the scenario.
pub async fn run(lab: &Lab) -> Result<Report, Error> {
    let server = orbit::gen_server::start(MapServer(initial())).await?;
    let agent = Agent::start(initial).await?;
    let table: Table<u64, u64> = Table::builder()
        .public()
        .read_concurrency(true)
        .write_concurrency(true)
        .build()?;
    table.insert_many(initial())?;
    let cache: ConCache<u64, u64> = ConCache::start(CacheOptions::new().no_ttl_check()).await?;
    for (k, v) in initial() {
        cache.dirty_put(k, v)?;
    }
    let variants = [
        ("GenServer map", Store::Server(server.clone())),
        ("Agent", Store::Agent(agent.clone())),
        ("ets table", Store::Ets(table.clone())),
        ("ConCache", Store::Cache(cache.clone())),
    ];
    let mut results = Vec::new();
    for (name, store) in variants {
        results.push(variant(lab, name, store).await?);
    }
    server
        .stop(orbit::ExitReason::Normal, std::time::Duration::from_secs(5))
        .await
        .ok();
    cache.stop().await;
    table.delete_table().ok();
    drop(agent);
    Ok(verdict(lab, results))
}

async fn variant(lab: &Lab, name: &str, store: Store) -> Result<VariantResult, Error> {
    let probe = Probe::new();
    let clients = spawn_clients(
        lab.clients(),
        &probe,
        move |i, probe: Arc<Probe>, _ctx: Context<()>| {
            let store = store.clone();
            async move {
                // xorshift: a cheap per-client random stream.
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
                closed_loop(probe, || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = x % KEYS;
                    let op = if x.is_multiple_of(10) {
                        Op::Put(k, x)
                    } else {
                        Op::Get(k)
                    };
                    let store = &store;
                    async move { store.op(op).await }
                })
                .await
            }
        },
    )?;
    Ok(watch(
        lab,
        SCENARIO,
        name,
        lab.duration(),
        &probe,
        &clients,
        |_| {},
    )
    .await)
}

fn verdict(lab: &Lab, results: Vec<VariantResult>) -> Report {
    let best = results
        .iter()
        .max_by(|a, b| a.rps.total_cmp(&b.rps))
        .map(|r| (r.variant.clone(), r.rps))
        .unwrap_or_default();
    // The single-process variants slower than half the best are the bottleneck,
    // slowest first.
    let mut slow: Vec<&VariantResult> = results
        .iter()
        .filter(|r| r.variant == "GenServer map" || r.variant == "Agent")
        .filter(|r| r.rps < best.1 / 2.0)
        .collect();
    slow.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mut facts = Map::new();
    for r in &results {
        facts.insert(format!("rps_{}", key(&r.variant)), json!(r.rps.round()));
    }
    let (bottleneck, verdict) = match slow.first() {
        Some(worst) => {
            let names: Vec<&str> = slow.iter().map(|r| r.variant.as_str()).collect();
            let names = names.join(" and the ");
            (
                format!("the {names}"),
                format!(
                    "bottleneck: the {names} — one process serves every read in turn (peak mailbox {}); the {} reads in parallel at {:.1}x the {}'s throughput",
                    super::report::num(worst.peak_mailbox as f64), best.0, best.1 / worst.rps.max(1.0), worst.variant
                ),
            )
        }
        None => (
            "none".to_string(),
            format!(
                "no clear bottleneck at {} clients: every store kept within 2x of the {}",
                lab.clients(),
                best.0
            ),
        ),
    };
    Report {
        scenario: SCENARIO,
        title: format!(
            "a {KEYS}-key map shared by {} clients, 90% reads",
            lab.clients()
        ),
        results,
        bottleneck,
        verdict,
        facts,
    }
}

/// A variant name as a JSON key: `GenServer map` → `genserver_map`.
pub fn key(s: &str) -> String {
    s.to_lowercase().replace([' ', '-'], "_")
}
