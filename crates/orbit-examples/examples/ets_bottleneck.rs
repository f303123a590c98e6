//! Lesson 1: find the bottleneck process, then take the shared state out of it.
//!
//! Run: `cargo run -p orbit-examples --example ets_bottleneck`
//! (bigger run: `ORBIT_EXAMPLE_SCALE=20 cargo run --release -p orbit-examples --example ets_bottleneck`)
//!
//! A key-value map lives in one GenServer; N concurrent callers read (90%) and write
//! (10%) it with `call`. One process handles one message at a time, so every caller
//! queues in its mailbox: `orbit::process_info` shows the queue and `orbit::top` names
//! the process. The same state in a public ETS table with `read_concurrency` and
//! `write_concurrency` is read and written by the callers directly, in parallel, with
//! no process in the way. (Elixir: a `GenServer` holding a map vs `:ets.new(:kv,
//! [:public, read_concurrency: true, write_concurrency: true])`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orbit::ets::Table;
use orbit::{CallReply, GenServer, ReplyTo, ServerContext};
use orbit_examples::{rate, scaled};

const CALLERS: u64 = 16;
const KEYS: u64 = 1_000;

/// A request to the map server.
enum Op {
    Get(u64),
    Put(u64, u64),
}

/// The map behind one GenServer: the bottleneck.
struct KvServer(HashMap<u64, u64>);

impl GenServer for KvServer {
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

/// The i-th operation of a caller: every tenth is a write.
fn op(caller: u64, i: u64) -> Op {
    let k = (caller * 7919 + i * 31) % KEYS;
    if i.is_multiple_of(10) {
        Op::Put(k, i)
    } else {
        Op::Get(k)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let ops = scaled(4_000);
    if cfg!(debug_assertions) {
        println!("(debug build: rates are low; --release for real numbers)");
    }
    println!("{CALLERS} callers x {ops} operations each, 90% reads, {KEYS} keys\n");

    // 1. The GenServer.
    let server = orbit::gen_server::start_with(
        KvServer(HashMap::new()),
        orbit::gen_server::StartOptions {
            name: Some("kv_server".into()),
            link: false,
            timeout: None,
        },
    )
    .await
    .expect("the kv server starts");
    let done = Arc::new(AtomicBool::new(false));
    // Samples the server's mailbox while the callers run: the lesson's instrument.
    let sampler = {
        let (pid, done) = (server.pid(), done.clone());
        tokio::spawn(async move {
            let (mut max_queue, mut top_name) = (0u64, None);
            while !done.load(Ordering::Relaxed) {
                if let Some(info) = orbit::process_info(pid) {
                    max_queue = max_queue.max(info.message_queue_len);
                }
                if let Some(first) = orbit::top(1).into_iter().next() {
                    if first.message_queue_len > 0 {
                        top_name = first.registered_name.clone();
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (max_queue, top_name)
        })
    };
    let t0 = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let server = server.clone();
            tokio::spawn(async move {
                for i in 0..ops {
                    server.call(op(c, i)).await.expect("the kv server answers");
                }
            })
        })
        .collect();
    for c in callers {
        c.await.expect("a caller finishes");
    }
    let server_time = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    let (max_queue, top_name) = sampler.await.expect("the sampler finishes");
    let info = orbit::process_info(server.pid()).expect("the server is alive");
    println!("GenServer map: {} calls", rate(CALLERS * ops, server_time));
    println!(
        "  its mailbox: up to {max_queue} waiting calls (process_info.message_queue_len), \
         {} handled, mean handling {:?}",
        info.messages_handled, info.mean_handling_time
    );
    println!(
        "  orbit::top(1) during the run named: {}",
        top_name.as_deref().unwrap_or("(no queue seen)")
    );

    // 2. The same state in ETS: no process between the callers and the data.
    let table: Table<u64, u64> = Table::builder()
        .public()
        .read_concurrency(true)
        .write_concurrency(true)
        .build()
        .expect("the table is created");
    let t0 = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let table = table.clone();
            tokio::spawn(async move {
                for i in 0..ops {
                    match op(c, i) {
                        Op::Get(k) => drop(table.get(&k).expect("the table is alive")),
                        Op::Put(k, v) => table.insert(k, v).expect("the table is alive"),
                    }
                    // Callers are processes that do other work too: let them interleave.
                    if i.is_multiple_of(256) {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for c in callers {
        c.await.expect("a caller finishes");
    }
    let ets_time = t0.elapsed();
    println!(
        "\nETS table (read/write concurrency): {} operations, {} keys, no mailbox in the way",
        rate(CALLERS * ops, ets_time),
        table.size().expect("the table is alive")
    );
    println!(
        "\nspeed-up: {:.1}x. Lesson: the process with the long mailbox is the bottleneck; \
         state every caller reads belongs in a table, not behind one process.",
        server_time.as_secs_f64() / ets_time.as_secs_f64().max(1e-9)
    );
    server
        .stop(orbit::ExitReason::Normal, Duration::from_secs(5))
        .await
        .expect("the server stops");
}
