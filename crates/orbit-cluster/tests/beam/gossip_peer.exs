# An Elixir node running the real libcluster Gossip strategy, for orbit-cluster's tests.
# Env: GOSSIP_PORT (required), GOSSIP_SECRET (optional), GOSSIP_NO_CONNECT=1 (libcluster
# hears heartbeats but does not connect: the other side must), GOSSIP_ADDR (broadcast
# address, default 127.255.255.255), GOSSIP_MULTICAST=1 (libcluster's default multicast
# options instead of broadcast_only; GOSSIP_ADDR then names the group).
# Prints "ready NODE", then "nodeup N" / "nodedown N"; answers "list" on stdin with
# "list N1,N2", and "echo NODE" with "echo ok" once NODE's `echo` process answered
# {self(), :hi}; halts when stdin closes.
port = String.to_integer(System.fetch_env!("GOSSIP_PORT"))
config =
  if System.get_env("GOSSIP_MULTICAST") == "1" do
    [port: port, if_addr: "0.0.0.0", multicast_addr: System.get_env("GOSSIP_ADDR", "233.252.1.32")]
  else
    addr = System.get_env("GOSSIP_ADDR", "127.255.255.255")
    [port: port, if_addr: "0.0.0.0", multicast_addr: addr, broadcast_only: true]
  end

config =
  case System.get_env("GOSSIP_SECRET") do
    nil -> config
    s -> Keyword.put(config, :secret, s)
  end

topology = [strategy: Cluster.Strategy.Gossip, config: config]

topology =
  if System.get_env("GOSSIP_NO_CONNECT") == "1",
    do: Keyword.put(topology, :connect, {:erlang, :is_atom, []}),
    else: topology

:ok = :net_kernel.monitor_nodes(true, node_type: :all)
{:ok, _} = Application.ensure_all_started(:libcluster)

{:ok, _} =
  Supervisor.start_link(
    [{Cluster.Supervisor, [[gossip: topology], [name: Peer.ClusterSupervisor]]}],
    strategy: :one_for_one
  )

main = self()

spawn_link(fn ->
  Stream.repeatedly(fn -> IO.gets("") end)
  |> Enum.each(fn
    :eof -> System.halt(0)
    {:error, _} -> System.halt(0)
    "list\n" -> send(main, :list)
    "echo " <> node -> send(main, {:echo, String.to_atom(String.trim(node))})
    _ -> :ok
  end)
end)

IO.puts("ready #{node()}")

loop = fn loop ->
  receive do
    {:nodeup, n, _} -> IO.puts("nodeup #{n}")
    {:nodedown, n, _} -> IO.puts("nodedown #{n}")
    :list ->
      IO.puts("list " <> Enum.join(Node.list(), ","))

    {:echo, node} ->
      send({:echo, node}, {self(), :hi})

      receive do
        :hi -> IO.puts("echo ok")
      after
        5_000 -> IO.puts("echo timeout")
      end
  end

  loop.(loop)
end

loop.(loop)
