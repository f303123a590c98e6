# GenStage (the real library, from ../shared/beamlibs) running the same pipelines as
# orbit-bench's stage scenario, default demand (max 1000, min 500), N integer events:
#
#   pc          producer -> consumer (sums)
#   pcc         producer -> producer_consumer (maps x*2 into a new list) -> consumer
#   broadcast   BroadcastDispatcher, 2 consumers (events/s per consumer)
#   partition   PartitionDispatcher, 2 partitions by parity (events/s in total)
#
# Each shape runs REPEAT pipelines; prints `SHAPE_rate R SHAPE_cpu_s C` per shape: the
# combined rate (all events over the sum of the times) and the CPU seconds of every
# emulator thread over the measured parts (statistics(runtime)).
# Usage: ERL_LIBS=$(build.sh) elixir --erl "+S N:N" stage_bench.exs N REPEAT
defmodule Count do
  use GenStage
  def init({limit, opts}), do: {:producer, {0, limit}, opts}

  def handle_demand(demand, {next, limit}) do
    stop = min(next + demand, limit)
    {:noreply, Enum.to_list(next..(stop - 1)//1), {stop, limit}}
  end
end

defmodule Double do
  use GenStage
  def init(:ok), do: {:producer_consumer, :ok}
  def handle_events(events, _from, s), do: {:noreply, Enum.map(events, &(&1 * 2)), s}
end

defmodule Sum do
  use GenStage
  def init({n, parent}), do: {:consumer, {0, 0, n, parent}}

  def handle_events(events, _from, {seen, sum, n, parent}) do
    seen = seen + length(events)
    sum = sum + Enum.sum(events)
    if seen >= n, do: send(parent, {:sum, sum})
    {:noreply, [], {seen, sum, n, parent}}
  end
end

defmodule Bench do
  def clock(f) do
    {c0, _} = :erlang.statistics(:runtime)
    t0 = System.monotonic_time(:microsecond)
    f.()
    us = System.monotonic_time(:microsecond) - t0
    {c1, _} = :erlang.statistics(:runtime)
    {us, (c1 - c0) / 1000}
  end

  def expect(sum), do: receive(do: ({:sum, ^sum} -> :ok))

  def one("pc", n) do
    {:ok, p} = GenStage.start_link(Count, {n, []})
    {:ok, c} = GenStage.start_link(Sum, {n, self()})
    r = clock(fn -> GenStage.sync_subscribe(c, to: p); expect(div(n * (n - 1), 2)) end)
    Enum.each([c, p], &GenStage.stop/1)
    r
  end

  def one("pcc", n) do
    {:ok, p} = GenStage.start_link(Count, {n, []})
    {:ok, m} = GenStage.start_link(Double, :ok)
    {:ok, c} = GenStage.start_link(Sum, {n, self()})

    r =
      clock(fn ->
        GenStage.sync_subscribe(m, to: p)
        GenStage.sync_subscribe(c, to: m)
        expect(n * (n - 1))
      end)

    Enum.each([c, m, p], &GenStage.stop/1)
    r
  end

  def one("broadcast", n) do
    {:ok, p} =
      GenStage.start_link(Count, {n, [dispatcher: GenStage.BroadcastDispatcher, demand: :accumulate]})

    cs = for _ <- 1..2, do: elem(GenStage.start_link(Sum, {n, self()}), 1)
    for c <- cs, do: GenStage.sync_subscribe(c, to: p)
    r = clock(fn -> GenStage.demand(p, :forward); for _ <- cs, do: expect(div(n * (n - 1), 2)) end)
    Enum.each(cs ++ [p], &GenStage.stop/1)
    r
  end

  def one("partition", n) do
    disp = {GenStage.PartitionDispatcher, partitions: 2, hash: fn e -> {e, rem(e, 2)} end}
    {:ok, p} = GenStage.start_link(Count, {n, [dispatcher: disp, demand: :accumulate]})
    evens = div(n + 1, 2)
    cs = for k <- [evens, n - evens], do: elem(GenStage.start_link(Sum, {k, self()}), 1)
    for {c, part} <- Enum.zip(cs, [0, 1]), do: GenStage.sync_subscribe(c, to: p, partition: part)

    r =
      clock(fn ->
        GenStage.demand(p, :forward)
        for _ <- cs, do: receive(do: ({:sum, _} -> :ok))
      end)

    Enum.each(cs ++ [p], &GenStage.stop/1)
    r
  end
end

[n, repeat] = Enum.map(System.argv(), &String.to_integer/1)
{:ok, _} = Application.ensure_all_started(:gen_stage)
Process.flag(:trap_exit, true)

for shape <- ["pc", "pcc", "broadcast", "partition"] do
  {us, cpu} =
    Enum.reduce(1..repeat, {0, 0.0}, fn _, {us, cpu} ->
      {u, c} = Bench.one(shape, n)
      {us + u, cpu + c}
    end)

  IO.puts("#{shape}_rate #{repeat * n * 1_000_000 / max(us, 1)} #{shape}_cpu_s #{cpu}")
end
