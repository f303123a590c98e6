# Runs GenStage scenarios read from the file given as the first argument and prints,
# per scenario, the handle_demand values the producer saw and each consumer's batches.
# Input lines: "S <demand|partition> <consumers>", "A <consumer> <n>",
# "E <e1,e2,...>", "END". Output: "D <d1> <d2> ...", "B <consumer> <e1,e2,...>" in
# the order each consumer received them, "END".
defmodule DiffProducer do
  use GenStage
  def init({test, dispatcher}), do: {:producer, test, dispatcher: dispatcher}

  def handle_demand(d, test) do
    send(test, {:demand, d})
    {:noreply, [], test}
  end

  def handle_info({:emit, events}, test), do: {:noreply, events, test}
  def handle_call(:sync, _from, test), do: {:reply, :ok, [], test}
end

defmodule DiffConsumer do
  use GenStage
  def init({test, idx}), do: {:consumer, {test, idx, nil}}

  def handle_subscribe(:producer, _opts, from, {test, idx, _}) do
    send(test, {:subscribed, idx})
    {:manual, {test, idx, from}}
  end

  # Asks come from the consumer itself (GenStage.ask sends as self()).
  def handle_info(:cancel, {_, _, from} = s) do
    GenStage.cancel(from, :normal)
    {:noreply, [], s}
  end

  def handle_info({:ask, n}, {_, _, from} = s) do
    GenStage.ask(from, n)
    {:noreply, [], s}
  end

  def handle_events(events, _from, {test, idx, _} = s) do
    send(test, {:batch, idx, events})
    {:noreply, [], s}
  end

  def handle_call(:sync, _from, s), do: {:reply, :ok, [], s}
end

defmodule Diff do
  def run([]), do: :ok

  def run([line | rest]) do
    ["S", kind, n] = String.split(line)
    n = String.to_integer(n)
    {ops, ["END" | rest]} = Enum.split_while(rest, &(&1 != "END"))

    dispatcher =
      case kind do
        "demand" -> GenStage.DemandDispatcher
        "broadcast" -> GenStage.BroadcastDispatcher
        "partition" -> {GenStage.PartitionDispatcher, partitions: n, hash: &{&1, rem(&1, n)}}
      end

    {:ok, p} = GenStage.start_link(DiffProducer, {self(), dispatcher})

    cs =
      for i <- 0..(n - 1) do
        {:ok, c} = GenStage.start_link(DiffConsumer, {self(), i})
        opts = [to: p, max_demand: 1000, cancel: :temporary]
        opts = if kind == "partition", do: [{:partition, i} | opts], else: opts
        {:ok, _} = GenStage.sync_subscribe(c, opts)
        receive do: ({:subscribed, ^i} -> :ok)
        c
      end
      |> List.to_tuple()

    for op <- ops do
      case String.split(op) do
        ["A", c, k] ->
          send(elem(cs, String.to_integer(c)), {:ask, String.to_integer(k)})

        ["C", c] ->
          send(elem(cs, String.to_integer(c)), :cancel)

        ["E", evs] ->
          send(p, {:emit, evs |> String.split(",") |> Enum.map(&String.to_integer/1)})
      end

      sync(p, cs)
    end

    sync(p, cs)
    IO.puts(Enum.join(["D" | collect_demands([])], " "))
    print_batches()
    IO.puts("END")
    GenStage.stop(p)
    for c <- Tuple.to_list(cs), do: GenStage.stop(c)
    flush()
    run(rest)
  end

  # Consumers (their asks reach the producer), the producer, consumers (its events).
  defp sync(p, cs) do
    for c <- Tuple.to_list(cs), do: GenStage.call(c, :sync)
    GenStage.call(p, :sync)
    for c <- Tuple.to_list(cs), do: GenStage.call(c, :sync)
  end

  defp flush do
    receive do
      _ -> flush()
    after
      0 -> :ok
    end
  end

  defp collect_demands(acc) do
    receive do
      {:demand, d} -> collect_demands([Integer.to_string(d) | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  defp print_batches do
    receive do
      {:batch, i, evs} ->
        IO.puts("B #{i} #{Enum.join(evs, ",")}")
        print_batches()
    after
      0 -> :ok
    end
  end
end

Application.ensure_all_started(:gen_stage)
[file] = System.argv()
file |> File.read!() |> String.split("\n", trim: true) |> Diff.run()
