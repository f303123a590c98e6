# ConCache (the real library, from ../shared/beamlibs) doing the same get work as
# orbit-bench's cache scenario: 100k keys, global TTL 60 s (check interval 1 s),
# 2 reader processes, PER_READER random gets each. Prints `get_per_s_2readers R cpu_s C`.
# Usage: ERL_LIBS=$(build.sh) elixir --erl "+S N:N" concache_bench.exs PER_READER
[per_reader] = System.argv() |> Enum.map(&String.to_integer/1)
{:ok, _} = Application.ensure_all_started(:con_cache)
keys = 100_000
{:ok, _} = ConCache.start_link(name: :c, ttl_check_interval: 1_000, global_ttl: 60_000)
for k <- 0..(keys - 1), do: ConCache.dirty_put(:c, k, k)
parent = self()
# Each reader draws its random keys before the clock (Orbit's xorshift costs ~1 ns;
# :rand per get would charge the BEAM for key generation), then waits for :go.
readers =
  for r <- 1..2 do
    spawn(fn ->
      :rand.seed(:exsss, {r, 2, 3})
      ks = for _ <- 1..per_reader, do: :rand.uniform(keys) - 1
      send(parent, :ready)
      receive(do: (:go -> :ok))
      Enum.each(ks, fn k -> ConCache.get(:c, k) end)
      send(parent, :done)
    end)
  end
for _ <- readers, do: receive(do: (:ready -> :ok))
{c0, _} = :erlang.statistics(:runtime)
t0 = System.monotonic_time(:microsecond)
for p <- readers, do: send(p, :go)
for _ <- readers, do: receive(do: (:done -> :ok))
us = System.monotonic_time(:microsecond) - t0
{c1, _} = :erlang.statistics(:runtime)
IO.puts("get_per_s_2readers #{2 * per_reader * 1_000_000 / max(us, 1)} cpu_s #{(c1 - c0) / 1000}")
