# The side-by-side app, Elixir version (docs/side-by-side.md). Run:
#   ERL_LIBS="$(/work/shared/beamlibs/build.sh)" elixir docs/side-by-side/app.exs
# With NAME=me@host PEER=other@host it then starts its node (cookie side_by_side), calls
# the peer's counter, and serves its own until stdin closes. The Orbit version: crates/orbit-examples/examples/side_by_side.rs
{:ok, _} = Application.ensure_all_started(:con_cache)
{:ok, _} = Application.ensure_all_started(:poolboy)

defmodule Counter do
  use GenServer
  def start_link(n), do: GenServer.start_link(__MODULE__, n, name: :counter)
  def init(n), do: {:ok, n}
  def handle_call(:get, _from, n), do: {:reply, n, n}
  def handle_cast({:add, k}, n), do: {:noreply, n + k}
end

defmodule Squarer do
  use GenServer
  def start_link(_), do: GenServer.start_link(__MODULE__, nil)
  def init(s), do: {:ok, s}
  def handle_call({:square, x}, _from, s), do: {:reply, x * x, s}
end

children = [
  {Counter, 0},
  :poolboy.child_spec(:pool, name: {:local, :pool}, worker_module: Squarer, size: 2, max_overflow: 0),
  {ConCache, name: :cache, ttl_check_interval: 10, global_ttl: 50},
  {Task.Supervisor, name: Tasks}
]
{:ok, _} = Supervisor.start_link(children, strategy: :one_for_one)

for k <- 1..3, do: GenServer.cast(:counter, {:add, k})
IO.puts("counter: #{GenServer.call(:counter, :get)}")

square = fn x -> :poolboy.transaction(:pool, &GenServer.call(&1, {:square, x})) end
IO.puts("pool: #{square.(7)}")

squares = Task.Supervisor.async_stream(Tasks, 1..5, square, max_concurrency: 2)
IO.puts("tasks: #{inspect(Enum.map(squares, fn {:ok, v} -> v end))}")

ConCache.put(:cache, :greeting, "hello")
IO.puts("cache: #{ConCache.get(:cache, :greeting)}")
Process.sleep(200)
IO.puts("cache after ttl: #{inspect(ConCache.get(:cache, :greeting))}")

if peer = System.get_env("PEER") do
  {:ok, _} = Node.start(String.to_atom(System.fetch_env!("NAME")))
  Node.set_cookie(:side_by_side)
  peer = String.to_atom(peer)
  for _ <- 1..100, Node.ping(peer) == :pang, do: Process.sleep(100)
  IO.puts("remote counter: #{GenServer.call({:counter, peer}, :get)}")
  IO.read(:eof)
end
