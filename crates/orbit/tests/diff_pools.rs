//! Differential tests: Orbit's pools against the real libraries in `../shared/beamlibs`:
//! [`Pool`] against poolboy 1.5.2. Seeded random scripts from one caller (non-blocking
//! and blocking checkouts, check-ins of the held workers in a chosen order, status) run
//! on a fresh pool on each side with the same `size`, `max_overflow` and strategy; every
//! result is compared exactly: which worker each checkout gets (workers are numbered in
//! the order each side first hands them out, so LIFO/FIFO order, overflow workers being
//! new ones and dismissed ones never coming back are all compared), `full`, the
//! blocking checkout's timeout, and `poolboy:status/1` (`{StateName, Workers, Overflow,
//! Monitors}` against [`Pool::status`]). One `elixir` process answers every script of a
//! test; fixed seed, `ORBIT_DIFF_SEED=<u64>` overrides it; a failure is shrunk against
//! the live oracle. Skipped with a message when `elixir` is absent.
//!
//! Excluded on purpose: a `size` of 0 (poolboy accepts it, Orbit refuses it at start:
//! `Pool::start`'s `InvalidOptions`, see `tests/pool_worker.rs`
//! `bad_input_gets_clear_errors`), worker crashes and dying callers (not sequential).

mod beam_common;

use std::collections::HashMap;
use std::time::Duration;

use orbit::pool::{Lease, Pool, PoolError, PoolOptions, PoolState, Strategy as PoolStrategy};
use orbit::{CallReply, GenServer, Pid, ReplyTo, ServerContext};
use proptest::prelude::*;

/// How long a blocking checkout on a full pool waits before it times out (both sides).
const BLOCK_TIMEOUT_MS: u64 = 20;

const POOLBOY: &str = r##"
{:ok, _} = Application.ensure_all_started(:poolboy)

defmodule W do
  use GenServer
  def start_link(_), do: GenServer.start_link(__MODULE__, nil)
  def init(nil), do: {:ok, nil}
end

defmodule D do
  def id(ids, pid) do
    case Map.fetch(ids, pid) do
      {:ok, n} -> {n, ids}
      :error -> n = map_size(ids); {n, Map.put(ids, pid, n)}
    end
  end

  def step(pool, "co 0", {held, ids}) do
    case :poolboy.checkout(pool, false) do
      :full -> {"full", {held, ids}}
      pid -> {n, ids} = id(ids, pid); {"w#{n}", {held ++ [pid], ids}}
    end
  end

  def step(pool, "co 1", {held, ids}) do
    try do
      pid = :poolboy.checkout(pool, true, __TIMEOUT__)
      {n, ids} = id(ids, pid)
      {"w#{n}", {held ++ [pid], ids}}
    catch
      :exit, {:timeout, _} -> {"timeout", {held, ids}}
    end
  end

  def step(_pool, "ci " <> _, {[], ids}), do: {"none", {[], ids}}

  def step(pool, "ci " <> i, {held, ids}) do
    at = rem(String.to_integer(i), length(held))
    :ok = :poolboy.checkin(pool, Enum.at(held, at))
    {"ok", {List.delete_at(held, at), ids}}
  end

  def step(pool, "st", acc) do
    {s, a, o, m} = :poolboy.status(pool)
    {"#{s},#{a},#{o},#{m}", acc}
  end

  def run("p:" <> rest) do
    [cfg | ops] = String.split(rest, ";", trim: true)
    [size, ov, strat] = String.split(cfg, " ")
    {:ok, pool} =
      :poolboy.start_link(
        worker_module: W,
        size: String.to_integer(size),
        max_overflow: String.to_integer(ov),
        strategy: String.to_atom(strat)
      )
    {res, _} = Enum.map_reduce(ops, {[], %{}}, fn o, acc -> step(pool, o, acc) end)
    :ok = :poolboy.stop(pool)
    Enum.join(res, ";")
  end

  def loop do
    case IO.read(:stdio, :line) do
      :eof -> :ok
      {:error, _} -> :ok
      line ->
        IO.puts(run(String.trim_trailing(line, "\n")))
        loop()
    end
  end
end

IO.puts("ready")
D.loop()
"##;

struct Worker;

impl GenServer for Worker {
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        _req: (),
        _from: &mut ReplyTo<()>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<(), ()> {
        CallReply::Reply(())
    }
}

#[derive(Debug, Clone)]
enum PoolOp {
    /// `checkout(block, ..)`.
    Checkout(bool),
    /// Check in the held worker at this index (modulo the number held).
    Checkin(usize),
    Status,
}

#[derive(Debug, Clone)]
struct PoolCase {
    size: usize,
    max_overflow: usize,
    fifo: bool,
    ops: Vec<PoolOp>,
}

fn pool_case() -> impl Strategy<Value = PoolCase> {
    let op = prop_oneof![
        4 => any::<bool>().prop_map(PoolOp::Checkout),
        4 => (0usize..4).prop_map(PoolOp::Checkin),
        2 => Just(PoolOp::Status),
    ];
    (
        1usize..4,
        0usize..3,
        any::<bool>(),
        proptest::collection::vec(op, 0..24),
    )
        .prop_map(|(size, max_overflow, fifo, ops)| PoolCase {
            size,
            max_overflow,
            fifo,
            ops,
        })
}

fn poolboy_script(c: &PoolCase) -> String {
    let mut s = format!(
        "p:{} {} {}",
        c.size,
        c.max_overflow,
        if c.fifo { "fifo" } else { "lifo" }
    );
    for o in &c.ops {
        s.push(';');
        match o {
            PoolOp::Checkout(b) => s.push_str(if *b { "co 1" } else { "co 0" }),
            PoolOp::Checkin(i) => s.push_str(&format!("ci {i}")),
            PoolOp::Status => s.push_str("st"),
        }
    }
    s
}

async fn run_pool(c: &PoolCase) -> String {
    let opts = PoolOptions::new(c.size, c.max_overflow).strategy(if c.fifo {
        PoolStrategy::Fifo
    } else {
        PoolStrategy::Lifo
    });
    let pool = Pool::start(opts, || Worker).await.expect("starting the pool");
    let mut ids: HashMap<Pid, usize> = HashMap::new();
    let mut held: Vec<Lease<Worker>> = Vec::new();
    let mut out = Vec::new();
    let mut name = |pid: Pid| {
        let n = ids.len();
        format!("w{}", *ids.entry(pid).or_insert(n))
    };
    for o in &c.ops {
        let r = match *o {
            PoolOp::Checkout(block) => {
                match pool
                    .checkout(block, Duration::from_millis(BLOCK_TIMEOUT_MS))
                    .await
                {
                    Ok(l) => {
                        let r = name(l.pid());
                        held.push(l);
                        r
                    }
                    Err(PoolError::Full) => "full".into(),
                    Err(PoolError::Timeout(_)) => "timeout".into(),
                    Err(e) => format!("orbit-error:{e}"),
                }
            }
            PoolOp::Checkin(_) if held.is_empty() => "none".into(),
            PoolOp::Checkin(i) => {
                let l = held.remove(i % held.len());
                match pool.checkin(l) {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("orbit-error:{e}"),
                }
            }
            PoolOp::Status => {
                let s = pool.status();
                let st = match s.state {
                    PoolState::Ready => "ready",
                    PoolState::Overflow => "overflow",
                    PoolState::Full => "full",
                };
                format!("{st},{},{},{}", s.available, s.overflow, s.checked_out)
            }
        };
        out.push(r);
    }
    drop(held);
    pool.stop(Duration::from_secs(5)).await.expect("stopping the pool");
    out.join(";")
}

fn compare(ours: String, theirs: String) -> Result<(), String> {
    if ours == theirs {
        return Ok(());
    }
    let o: Vec<&str> = ours.split(';').collect();
    let t: Vec<&str> = theirs.split(';').collect();
    let i = o
        .iter()
        .zip(&t)
        .position(|(a, b)| a != b)
        .unwrap_or(o.len().min(t.len()));
    Err(format!(
        "first difference at result {i}: orbit {:?}, original {:?}\norbit:    {ours}\noriginal: {theirs}",
        o.get(i),
        t.get(i)
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn pool_matches_poolboy() {
    let script = POOLBOY.replace("__TIMEOUT__", &BLOCK_TIMEOUT_MS.to_string());
    let mut oracle = match beam_common::Oracle::start("poolboy", &script) {
        Ok(o) => o,
        Err(why) => {
            eprintln!("SKIPPED pool_matches_poolboy: {why}");
            return;
        }
    };
    let rt = runtime();
    beam_common::differential("poolboy", pool_case(), 150, |c| {
        let theirs = oracle.ask(&poolboy_script(c));
        let ours = rt.block_on(run_pool(c));
        compare(ours, theirs)
    });
}
