# A BEAM peer for the GenStage tests: real gen_stage from /work/shared/beamlibs, a few
# stages, and the stdin REPL of beam/mod.rs (`D expr` replies over distribution).
orbit = String.to_atom(System.get_env("ORBIT_NODE"))
true = Node.connect(orbit)
{:ok, _} = Application.ensure_all_started(:gen_stage)

defmodule Prod do
  # Counts from `first` up to `limit` (exclusive); reports each demand to `sink`.
  use GenStage
  def init({first, limit, sink}), do: {:producer, %{c: first, limit: limit, sink: sink}}
  def handle_demand(d, s) do
    if s.sink, do: send(s.sink, {:demand, d})
    top = min(s.c + d, s.limit)
    {:noreply, Enum.to_list(s.c..(top - 1)//1), %{s | c: top}}
  end
end

defmodule Cons do
  # Forwards each batch to `sink` (unless nil) and keeps them; `:manual` mode asks only
  # on `{:ask, n}` calls and reports any event beyond what it asked.
  use GenStage
  def init({sink, mode}), do: {:consumer, %{sink: sink, mode: mode, asked: 0, got: [], from: nil}}
  def handle_subscribe(:producer, _opts, from, s) do
    case s.mode do
      :manual -> {:manual, %{s | from: from}}
      _ -> {:automatic, %{s | from: from}}
    end
  end
  def handle_call({:ask, n}, _, s) do
    GenStage.ask(s.from, n)
    {:reply, :ok, [], %{s | asked: s.asked + n}}
  end
  def handle_call(:got, _, s), do: {:reply, Enum.reverse(s.got), [], s}
  def handle_call(:count, _, s), do: {:reply, length(s.got), [], s}
  def handle_events(ev, _from, s) do
    if s.sink, do: send(s.sink, {:events, self(), ev})
    got = Enum.reverse(ev, s.got)
    if s.mode == :manual and length(got) > s.asked, do: send(s.sink, {:excess, length(got), s.asked})
    {:noreply, [], %{s | got: got}}
  end
  def handle_cancel(reason, _from, s) do
    if s.sink, do: send(s.sink, {:cancelled, self(), reason})
    {:noreply, [], s}
  end
end

defmodule Work do
  # The per-event work both benchmarks' processors do.
  def f(x), do: x * 2 + 1
end

defmodule PC do
  use GenStage
  def init(id), do: {:producer_consumer, id}
  def handle_events(ev, _from, id), do: {:noreply, Enum.map(ev, &{id, &1}), id}
end

defmodule T do
  def eval(line, b) do
    try do
      {v, b1} = Code.eval_string(line, b)
      {v, b1}
    catch c, e -> {{:caught, c, e}, b}
    end
  end
  def loop(b, orbit) do
    case IO.gets("") do
      :eof -> System.halt(0)
      "D " <> line -> {v, b2} = eval(line, b); send({:pg_inbox, orbit}, {:reply, v}); loop(b2, orbit)
      "P " <> line -> {v, b2} = eval(line, b); IO.puts("val #{inspect(v)}"); loop(b2, orbit)
      _ -> loop(b, orbit)
    end
  end
end

send({:pg_inbox, orbit}, {:reply, :ready})
T.loop([orbit: orbit, sink: {:pg_events, orbit}], orbit)
