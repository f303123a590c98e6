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

use orbit::pool::{CheckoutOrder, Lease, Pool, PoolError, PoolOptions, PoolState};
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
        CheckoutOrder::Fifo
    } else {
        CheckoutOrder::Lifo
    });
    let pool = Pool::start(opts, || Worker)
        .await
        .expect("starting the pool");
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
    pool.stop(Duration::from_secs(5))
        .await
        .expect("stopping the pool");
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

// ---- ResourcePool against NimblePool ---------------------------------------------------

/// The NimblePool side: resources are numbered 1, 2, ... in the order `init_worker`
/// makes them; `handle_checkout` hands out the number (`remove_odd` removes odd ones,
/// `skip` skips with `busy <id>`); check-in keeps or removes. Each checkout runs in a
/// holder process that keeps the resource until the script releases it.
const NIMBLE: &str = r##"
{:ok, _} = Application.ensure_all_started(:nimble_pool)

defmodule P do
  @behaviour NimblePool
  @impl true
  def init_pool(n), do: {:ok, n}
  @impl true
  def init_worker(n), do: {:ok, n + 1, n + 1}
  @impl true
  def handle_checkout(cmd, _from, id, n) do
    cond do
      cmd == :remove_odd and rem(id, 2) == 1 -> {:remove, :odd, n}
      cmd == :skip -> {:skip, %RuntimeError{message: "busy #{id}"}, n}
      true -> {:ok, id, id, n}
    end
  end
  @impl true
  def handle_checkin(:keep, _from, id, n), do: {:ok, id, n}
  def handle_checkin(:remove, _from, _id, n), do: {:remove, :closed, n}
end

defmodule D do
  def hold(pool, cmd) do
    driver = self()
    spawn(fn ->
      try do
        NimblePool.checkout!(pool, cmd, fn _from, id ->
          send(driver, {:got, self(), id})
          receive do
            {:release, back} -> {:ok, back}
          end
        end, __TIMEOUT__)
        send(driver, {:done, self()})
      rescue
        e -> send(driver, {:err, "skip:" <> Exception.message(e)})
      catch
        :exit, _ -> send(driver, {:err, "timeout"})
      end
    end)
    receive do
      {:got, pid, id} -> {"r#{id}", pid}
      {:err, msg} -> {msg, nil}
    end
  end

  def step(pool, "h " <> cmd, held) do
    case hold(pool, String.to_atom(cmd)) do
      {r, nil} -> {r, held}
      {r, pid} -> {r, held ++ [pid]}
    end
  end

  def step(_pool, "r " <> _, []), do: {"none", []}

  def step(_pool, "r " <> rest, held) do
    [i, back] = String.split(rest, " ")
    at = rem(String.to_integer(i), length(held))
    pid = Enum.at(held, at)
    send(pid, {:release, String.to_atom(back)})
    receive do
      {:done, ^pid} -> :ok
    end
    {"ok", List.delete_at(held, at)}
  end

  def run("n:" <> rest) do
    [cfg | ops] = String.split(rest, ";", trim: true)
    [size, lazy] = String.split(cfg, " ")
    {:ok, pool} =
      NimblePool.start_link(worker: {P, 0}, pool_size: String.to_integer(size), lazy: lazy == "true")
    {res, held} = Enum.map_reduce(ops, [], fn o, acc -> step(pool, o, acc) end)
    Enum.each(held, fn pid -> send(pid, {:release, :keep}); receive do {:done, ^pid} -> :ok end end)
    NimblePool.stop(pool)
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

use orbit::pool::{
    Caller, CheckinResult, CheckoutError, CheckoutResult, InitWorker, ResourcePool,
    ResourcePoolOptions, ResourceWorker,
};
use orbit::ExitReason;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Ok,
    RemoveOdd,
    Skip,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Ok => "ok",
            Cmd::RemoveOdd => "remove_odd",
            Cmd::Skip => "skip",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Back {
    Keep,
    Remove,
}

struct Numbered {
    next: u64,
}

impl ResourceWorker for Numbered {
    type Worker = u64;
    type Command = Cmd;
    type Client = u64;
    type Checkin = Back;
    type Error = String;

    fn init_worker(&mut self) -> InitWorker<u64> {
        self.next += 1;
        InitWorker::Ok(self.next)
    }

    fn handle_checkout(
        &mut self,
        cmd: &Cmd,
        _from: Caller,
        id: u64,
    ) -> CheckoutResult<u64, u64, String> {
        match cmd {
            Cmd::RemoveOdd if id % 2 == 1 => CheckoutResult::Remove(ExitReason::error("odd"), id),
            Cmd::Skip => CheckoutResult::Skip(format!("busy {id}"), id),
            _ => CheckoutResult::Ok {
                client: id,
                worker: id,
            },
        }
    }

    fn handle_checkin(&mut self, back: Back, _from: Caller, id: u64) -> CheckinResult<u64> {
        match back {
            Back::Keep => CheckinResult::Ok(id),
            Back::Remove => CheckinResult::Remove(ExitReason::error("closed"), id),
        }
    }
}

#[derive(Debug, Clone)]
enum ResOp {
    /// Check out with this command in a new holder, which keeps the resource.
    Hold(Cmd),
    /// Release the held resource at this index (modulo the number held) with this
    /// check-in value.
    Release(usize, Back),
}

#[derive(Debug, Clone)]
struct ResCase {
    size: usize,
    lazy: bool,
    ops: Vec<ResOp>,
}

fn res_case() -> impl Strategy<Value = ResCase> {
    let cmd = prop_oneof![
        6 => Just(Cmd::Ok),
        2 => Just(Cmd::RemoveOdd),
        1 => Just(Cmd::Skip)
    ];
    let back = prop_oneof![3 => Just(Back::Keep), 1 => Just(Back::Remove)];
    let op = prop_oneof![
        cmd.prop_map(ResOp::Hold),
        ((0usize..4), back).prop_map(|(i, b)| ResOp::Release(i, b)),
    ];
    (
        1usize..4,
        any::<bool>(),
        proptest::collection::vec(op, 0..24),
    )
        .prop_map(|(size, lazy, ops)| ResCase { size, lazy, ops })
}

fn nimble_script(c: &ResCase) -> String {
    let mut s = format!("n:{} {}", c.size, c.lazy);
    for o in &c.ops {
        s.push(';');
        match o {
            ResOp::Hold(cmd) => s.push_str(&format!("h {}", cmd.name())),
            ResOp::Release(i, b) => s.push_str(&format!(
                "r {i} {}",
                if *b == Back::Keep { "keep" } else { "remove" }
            )),
        }
    }
    s
}

enum HolderMsg {
    Got(u64),
    Err(String),
}

struct Holder {
    release: oneshot::Sender<Back>,
    done: tokio::task::JoinHandle<()>,
}

async fn hold(pool: &ResourcePool<Numbered>, cmd: Cmd) -> (String, Option<Holder>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (rel_tx, rel_rx) = oneshot::channel();
    let pool = pool.clone();
    let done = tokio::spawn(async move {
        let tx2 = tx.clone();
        let r = pool
            .checkout(
                cmd,
                move |id| async move {
                    let _ = tx2.send(HolderMsg::Got(id));
                    let back = rel_rx.await.unwrap_or(Back::Keep);
                    ((), back)
                },
                Duration::from_millis(BLOCK_TIMEOUT_MS),
            )
            .await;
        let msg = match r {
            Ok(()) => return,
            Err(CheckoutError::Skipped(e)) => format!("skip:{e}"),
            Err(CheckoutError::Timeout(_)) => "timeout".into(),
            Err(e) => format!("orbit-error:{e}"),
        };
        let _ = tx.send(HolderMsg::Err(msg));
    });
    match rx.recv().await {
        Some(HolderMsg::Got(id)) => (
            format!("r{id}"),
            Some(Holder {
                release: rel_tx,
                done,
            }),
        ),
        Some(HolderMsg::Err(m)) => (m, None),
        None => ("orbit-error:holder vanished".into(), None),
    }
}

async fn run_resource_pool(c: &ResCase) -> String {
    let pool = ResourcePool::start(
        Numbered { next: 0 },
        ResourcePoolOptions::new(c.size).lazy(c.lazy),
    )
    .await
    .expect("starting the pool");
    let mut held: Vec<Holder> = Vec::new();
    let mut out = Vec::new();
    for o in &c.ops {
        let r = match *o {
            ResOp::Hold(cmd) => {
                let (r, h) = hold(&pool, cmd).await;
                held.extend(h);
                r
            }
            ResOp::Release(_, _) if held.is_empty() => "none".into(),
            ResOp::Release(i, back) => {
                let h = held.remove(i % held.len());
                let _ = h.release.send(back);
                h.done.await.expect("holder task");
                "ok".into()
            }
        };
        out.push(r);
    }
    for h in held {
        let _ = h.release.send(Back::Keep);
        h.done.await.expect("holder task");
    }
    pool.stop(Duration::from_secs(5))
        .await
        .expect("stopping the pool");
    out.join(";")
}

#[test]
fn resource_pool_matches_nimble_pool() {
    let script = NIMBLE.replace("__TIMEOUT__", &BLOCK_TIMEOUT_MS.to_string());
    let mut oracle = match beam_common::Oracle::start("nimble_pool", &script) {
        Ok(o) => o,
        Err(why) => {
            eprintln!("SKIPPED resource_pool_matches_nimble_pool: {why}");
            return;
        }
    };
    let rt = runtime();
    beam_common::differential("nimble_pool", res_case(), 100, |c| {
        let theirs = oracle.ask(&nimble_script(c));
        let ours = rt.block_on(run_resource_pool(c));
        compare(ours, theirs)
    });
}

/// Found by `resource_pool_matches_nimble_pool` (minimal script: size 3, eager;
/// `h remove_odd; r 0 keep; h ok; h skip`): the replacement of a resource removed by
/// `handle_checkout` was made later by the manager, so a check-in that came first went
/// ahead of it in the idle queue. NimblePool makes the replacement before its next
/// message: the order is 3, 4, 2 and the skip sees resource 4. A current-thread runtime
/// keeps the manager from running in between, which made the old order certain here.
#[tokio::test(flavor = "current_thread")]
async fn a_replacement_is_queued_before_later_checkins_as_in_nimble_pool() {
    let pool = ResourcePool::start(Numbered { next: 0 }, ResourcePoolOptions::new(3))
        .await
        .expect("starting the pool");
    let t = Duration::from_secs(1);
    // Removes 1 (replacement: 4), hands out 2 and checks it in.
    let got = pool
        .checkout(Cmd::RemoveOdd, |id| async move { (id, Back::Keep) }, t)
        .await
        .expect("checkout");
    assert_eq!(got, 2);
    let (tx, rx) = oneshot::channel::<()>();
    let p = pool.clone();
    // Holds 3 until told.
    let holder = tokio::spawn(async move {
        p.checkout(
            Cmd::Ok,
            |id| async move {
                let _ = rx.await;
                (id, Back::Keep)
            },
            t,
        )
        .await
    });
    tokio::task::yield_now().await;
    let skipped = pool
        .checkout(Cmd::Skip, |id| async move { (id, Back::Keep) }, t)
        .await;
    assert_eq!(skipped, Err(CheckoutError::Skipped("busy 4".to_string())));
    let _ = tx.send(());
    assert_eq!(holder.await.expect("holder"), Ok(3));
    pool.stop(t).await.expect("stop");
}
