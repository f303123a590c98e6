# ConCache (the real library, from ../shared/beamlibs) doing the same work as
# orbit-bench's cache scenario, one test per run, on a cache with a global TTL of 60 s
# (ttl_check_interval 1 s). Every worker process walks the same xorshift64 key sequence
# as the Rust side (same seeds), drawn before the clock, then waits for :go.
#
#   get PER_READER           100k keys stored; 2 readers, PER_READER `get`s each
#   put WRITERS PER_WRITER   locked `put` of random keys of 2^20, WRITERS processes
#   get_or_store N           every key of 2^20 once (the first N of a scrambled order),
#                            the even ones stored beforehand; 1 process
#   update PER_PROC          `update` (+1) on 1,000 hot keys from 2 processes
#
# Prints `rate R cpu_s C` (operations per second over the measured part; CPU seconds
# of every emulator thread over it, statistics(runtime)).
# Usage: ERL_LIBS=$(build.sh) elixir --erl "+S N:N" concache_bench.exs TEST ARGS...
import Bitwise

[test | args] = System.argv()
args = Enum.map(args, &String.to_integer/1)
{:ok, _} = Application.ensure_all_started(:con_cache)
{:ok, _} = ConCache.start_link(name: :c, ttl_check_interval: 1_000, global_ttl: 60_000)

m64 = 0xFFFFFFFFFFFFFFFF
put_keys = 1 <<< 20

xs = fn x ->
  x = bxor(x, x <<< 13 &&& m64)
  x = bxor(x, x >>> 7)
  bxor(x, x <<< 17 &&& m64)
end

# `count` keys from seed `seed`: f(xorshift state) after each step.
keys = fn seed, count, f ->
  {ks, _} = Enum.map_reduce(1..count//1, seed, fn _, s -> s = xs.(s); {f.(s), s} end)
  ks
end

parent = self()

# Runs one process per job ({keys, op}); returns {microseconds, cpu seconds, ops}.
run = fn jobs ->
  procs =
    for {ks, op} <- jobs do
      spawn(fn ->
        send(parent, :ready)
        receive(do: (:go -> :ok))
        Enum.each(ks, op)
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
  ops = jobs |> Enum.map(fn {ks, _} -> length(ks) end) |> Enum.sum()
  {us, (c1 - c0) / 1000, ops}
end

{us, cpu, ops} =
  case {test, args} do
    {"get", [per_reader]} ->
      for k <- 0..(100_000 - 1), do: ConCache.dirty_put(:c, k, k)
      get = fn k -> ConCache.get(:c, k) end

      run.(for i <- 0..1, do: {keys.(0x1234_5678 + i, per_reader, &rem(&1, 100_000)), get})

    {"put", [writers, per_writer]} ->
      put = fn k -> :ok = ConCache.put(:c, k, k) end

      run.(
        for i <- 0..(writers - 1)//1,
            do: {keys.(0x9876_5431 + i * 7919, per_writer, &(&1 &&& put_keys - 1)), put}
      )

    {"get_or_store", [n]} ->
      for k <- 0..(put_keys - 1)//2, do: ConCache.dirty_put(:c, k, k)
      ks = for i <- 0..(n - 1)//1, do: i * 0x9E37_79B1 &&& put_keys - 1
      gos = fn k -> ^k = ConCache.get_or_store(:c, k, fn -> k end) end
      run.([{ks, gos}])

    {"update", [per_proc]} ->
      for k <- 0..999, do: ConCache.dirty_put(:c, k, 0)
      upd = fn k -> :ok = ConCache.update(:c, k, fn v -> {:ok, (v || 0) + 1} end) end
      res = run.(for i <- 0..1, do: {keys.(0x5555_1234 + i, per_proc, &rem(&1, 1_000)), upd})
      total = Enum.sum(for k <- 0..999, do: ConCache.get(:c, k))
      if total != 2 * per_proc, do: raise("isolated updates lost increments: #{total}")
      res
  end

IO.puts("rate #{ops * 1_000_000 / max(us, 1)} cpu_s #{cpu}")
