# GenStage (the real library, from ../shared/beamlibs) across three BEAM nodes, the same
# pipeline as orbit-bench's `cluster_stage` Orbit subject: a counting producer `src` on
# node A, a producer_consumer `pc` on node B (x -> x * 2 + 1, subscribed to {src, A}),
# a consumer on node C (subscribed to {pc, B}) that counts N events; default demand at
# both hops (max 1000, min 500).
#
#   elixir --name A --cookie C cluster_stage.exs a          # prints `ready`, runs until stdin closes
#   elixir --name B --cookie C cluster_stage.exs b A        # idem
#   elixir --name C --cookie C cluster_stage.exs c B N      # prints `rate R cpu_s S`, exits
defmodule Src do
  use GenStage
  def init(:ok), do: {:producer, 0}
  def handle_demand(d, next), do: {:noreply, Enum.to_list(next..(next + d - 1)), next + d}
end

defmodule Work do
  use GenStage
  def init(:ok), do: {:producer_consumer, :ok}
  def handle_events(ev, _from, s), do: {:noreply, Enum.map(ev, &(&1 * 2 + 1)), s}
end

defmodule Sink do
  use GenStage
  def init({n, parent}), do: {:consumer, {0, n, parent}}
  def handle_events(ev, _from, {seen, n, parent}) do
    seen = seen + length(ev)
    if seen >= n, do: send(parent, :done)
    {:noreply, [], {seen, n, parent}}
  end
end

defmodule Main do
  def wait_stdin do
    case IO.gets("") do
      :eof -> System.halt(0)
      {:error, _} -> System.halt(0)
      _ -> wait_stdin()
    end
  end

  def main(["a"]) do
    {:ok, _} = GenStage.start(Src, :ok, name: :src)
    IO.puts("ready")
    wait_stdin()
  end

  def main(["b", a]) do
    a = String.to_atom(a)
    true = Node.connect(a)
    {:ok, pc} = GenStage.start(Work, :ok, name: :pc)
    {:ok, _} = GenStage.sync_subscribe(pc, to: {:src, a})
    IO.puts("ready")
    wait_stdin()
  end

  def main(["c", b, n]) do
    b = String.to_atom(b)
    n = String.to_integer(n)
    true = Node.connect(b)
    {:ok, sink} = GenStage.start(Sink, {n, self()})
    {cpu0, _} = :erlang.statistics(:runtime)
    t0 = System.monotonic_time(:microsecond)
    {:ok, _} = GenStage.sync_subscribe(sink, to: {:pc, b})
    receive do
      :done -> :ok
    after
      600_000 -> IO.puts("timeout"); System.halt(1)
    end
    t = System.monotonic_time(:microsecond) - t0
    {cpu1, _} = :erlang.statistics(:runtime)
    IO.puts("rate #{n * 1_000_000 / t} cpu_s #{(cpu1 - cpu0) / 1000}")
    System.halt(0)
  end
end

Main.main(System.argv())
