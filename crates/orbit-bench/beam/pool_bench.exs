# poolboy and NimblePool (the real libraries, from ../shared/beamlibs) doing the same
# work as orbit-bench's pool scenario: CLIENTS client processes, PER_CLIENT
# transactions each, on a pool of SIZE trivial workers (no overflow).
#
#   poolboy        :poolboy.transaction/3 with a function touching the worker (no call)
#   poolboy_call   the same, the function calling the worker (GenServer.call)
#   nimble         NimblePool.checkout!/4 with a function handing the resource back
#
# Prints `rate R cpu_s C` (transactions per second over the measured part; CPU seconds
# of every emulator thread over it, statistics(runtime)).
# Usage: ERL_LIBS=$(build.sh) elixir --erl "+S N:N" pool_bench.exs TEST CLIENTS PER_CLIENT SIZE
defmodule Trivial do
  use GenServer
  def start_link(_), do: GenServer.start_link(__MODULE__, :ok)
  def init(:ok), do: {:ok, :ok}
  def handle_call(:ping, _from, s), do: {:reply, :ok, s}
end

defmodule Numbers do
  @behaviour NimblePool
  def init_pool(n), do: {:ok, n}
  def init_worker(n), do: {:ok, n + 1, n + 1}
  def handle_checkout(:checkout, _from, n, pool), do: {:ok, n, n, pool}
end

[test, clients, per, size] = System.argv()
[clients, per, size] = Enum.map([clients, per, size], &String.to_integer/1)
{:ok, _} = Application.ensure_all_started(:poolboy)
{:ok, _} = Application.ensure_all_started(:nimble_pool)

defmodule Loop do
  def times(0, _), do: :ok
  def times(n, f), do: (f.(); times(n - 1, f))
end

op =
  case test do
    "nimble" ->
      {:ok, pool} = NimblePool.start_link(worker: {Numbers, 0}, pool_size: size)
      fn -> NimblePool.checkout!(pool, :checkout, fn _from, n -> {n, :ok} end, 60_000) end

    _ ->
      {:ok, pool} =
        :poolboy.start_link(
          [worker_module: Trivial, size: size, max_overflow: 0],
          []
        )

      if test == "poolboy_call" do
        fn -> :poolboy.transaction(pool, fn w -> GenServer.call(w, :ping) end, 60_000) end
      else
        fn -> :poolboy.transaction(pool, fn w -> w end, 60_000) end
      end
  end

parent = self()

procs =
  for _ <- 1..clients do
    spawn(fn ->
      send(parent, :ready)
      receive(do: (:go -> :ok))
      Loop.times(per, op)
      send(parent, :done)
    end)
  end

for _ <- procs, do: receive(do: (:ready -> :ok))
{c0, _} = :erlang.statistics(:runtime)
t0 = System.monotonic_time(:microsecond)
for p <- procs, do: send(p, :go)
for _ <- procs, do: receive(do: (:done -> :ok))
us = System.monotonic_time(:microsecond) - t0
{c1, _} = :erlang.statistics(:runtime)
IO.puts("rate #{clients * per * 1_000_000 / max(us, 1)} cpu_s #{(c1 - c0) / 1000}")
