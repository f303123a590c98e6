# Postgrex + DBConnection (the real libraries, from ../shared/beamlibs) doing the same
# work as orbit-bench's db scenario: CLIENTS client processes in a closed loop, each
# executing the prepared point query `SELECT v FROM kv WHERE id = $1` through one
# Postgrex pool of SIZE connections (DBConnection's default queue settings), for
# DURATION_MS after a warm-up of a fifth of that.
#
# Prints `measure start` and `measure end` around the measured part (orbit-bench reads
# the emulator's and the server's CPU from /proc there), then `rate R p99_ms P cpu_s C`
# (queries per second over the measured part, the client-side p99 latency, CPU seconds
# of every emulator thread, statistics(runtime), kept as a cross-check).
# Usage: ERL_LIBS=$(build.sh) elixir --erl "+S N:N" db_bench.exs HOST PORT CLIENTS DURATION_MS SIZE
[host, port, clients, dur, size] = System.argv()
[port, clients, dur, size] = Enum.map([port, clients, dur, size], &String.to_integer/1)
{:ok, _} = Application.ensure_all_started(:postgrex)

{:ok, pid} =
  Postgrex.start_link(
    hostname: host,
    port: port,
    username: "postgres",
    database: "postgres",
    pool_size: size
  )

query = Postgrex.prepare!(pid, "kv_get", "SELECT v FROM kv WHERE id = $1")

defmodule Client do
  def loop(pid, query, seed, i, deadline, count, lats) do
    t0 = System.monotonic_time(:microsecond)

    if t0 >= deadline do
      {count, lats}
    else
      id = rem(seed * 7919 + i, 1000) + 1
      %Postgrex.Result{num_rows: 1} = Postgrex.execute!(pid, query, [id])
      t1 = System.monotonic_time(:microsecond)
      loop(pid, query, seed, i + 1, deadline, count + 1, [t1 - t0 | lats])
    end
  end
end

run = fn ms ->
  parent = self()
  deadline = System.monotonic_time(:microsecond) + ms * 1000

  for c <- 1..clients do
    spawn(fn -> send(parent, {:done, Client.loop(pid, query, c, 0, deadline, 0, [])}) end)
  end

  for _ <- 1..clients, reduce: {0, []} do
    {n, lats} ->
      receive do
        {:done, {k, l}} -> {n + k, l ++ lats}
      end
  end
end

_ = run.(div(dur, 5))
{_, _} = :erlang.statistics(:runtime)
# The caller samples this OS process's and the server's CPU (/proc) at the markers.
IO.puts("measure start")
t0 = System.monotonic_time(:microsecond)
{n, lats} = run.(dur)
elapsed = (System.monotonic_time(:microsecond) - t0) / 1.0e6
IO.puts("measure end")
{_, cpu_ms} = :erlang.statistics(:runtime)
sorted = Enum.sort(lats)
p99 = Enum.at(sorted, min(length(sorted) - 1, trunc(length(sorted) * 0.99)))
IO.puts("rate #{n / elapsed}")
IO.puts("p99_ms #{p99 / 1000}")
IO.puts("cpu_s #{cpu_ms / 1000}")
