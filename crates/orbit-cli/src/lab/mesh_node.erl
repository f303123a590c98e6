%% One BEAM node of `orbit lab mesh`: the same stdin/stdout lines as `orbit mesh-node`
%% (see mesh_node.rs). Compiled by the lab with erlc into a temporary directory and run
%% as `erl -noshell -name N -setcookie C [-connect_all false] -pa DIR -eval 'orbit_mesh_node:main()'`.
-module(orbit_mesh_node).
-export([main/0]).

main() ->
    register(mesh_ack, spawn(fun ack_loop/0)),
    ok = net_kernel:monitor_nodes(true),
    io:format("ready ~s~n", [node()]),
    loop().

ack_loop() ->
    receive
        {mesh, From, Ref, []} -> From ! {ack, Ref};
        {mesh, From, Ref, [Next | Rest]} -> {mesh_ack, Next} ! {mesh, From, Ref, Rest};
        _ -> ok
    end,
    ack_loop().

loop() ->
    case io:get_line('') of
        eof -> halt();
        {error, _} -> halt();
        Line ->
            command(string:lexemes(string:trim(Line), " ")),
            loop()
    end.

command(["connect" | Nodes]) ->
    Self = self(),
    [spawn(fun() -> Self ! {connected, net_kernel:connect_node(list_to_atom(N))} end)
     || N <- Nodes],
    Results = [receive {connected, R} -> R end || _ <- Nodes],
    Ok = length([R || R <- Results, R =:= true]),
    io:format("connected ~p ~p~n", [Ok, length(Results) - Ok]);
command(["await", K, Ms]) ->
    Deadline = erlang:monotonic_time(millisecond) + list_to_integer(Ms),
    await(list_to_integer(K), Deadline);
command(["nodes"]) ->
    io:format("nodes ~s~n", [lists:join(",", [atom_to_list(N) || N <- nodes()])]);
command(["bcast", Rounds, Mode | Targets]) ->
    Ts = [list_to_atom(T) || T <- Targets],
    Us = [round_trip(Mode, Ts, R) || R <- lists:seq(1, list_to_integer(Rounds))],
    io:format("bcast~s~n", [[[" ", integer_to_list(U)] || U <- Us]]);
command(["quit"]) ->
    halt();
command(Other) ->
    io:format("error unknown command: ~p~n", [Other]).

await(K, Deadline) ->
    case length(nodes()) >= K of
        true ->
            io:format("reached ~p~n", [K]);
        false ->
            Left = Deadline - erlang:monotonic_time(millisecond),
            if
                Left =< 0 ->
                    io:format("timeout ~p~n", [length(nodes())]);
                true ->
                    receive
                        {nodeup, _} -> ok;
                        {nodedown, _} -> ok
                    after Left -> ok
                    end,
                    await(K, Deadline)
            end
    end.

round_trip("relay", [], _R) ->
    0;
round_trip("relay", [First | Rest], R) ->
    T0 = erlang:monotonic_time(microsecond),
    {mesh_ack, First} ! {mesh, self(), R, Rest},
    acks(1, R, T0);
round_trip(_Direct, Ts, R) ->
    T0 = erlang:monotonic_time(microsecond),
    [{mesh_ack, T} ! {mesh, self(), R, []} || T <- Ts],
    acks(length(Ts), R, T0).

acks(0, _R, T0) ->
    erlang:monotonic_time(microsecond) - T0;
acks(N, R, T0) ->
    receive
        {ack, R} -> acks(N - 1, R, T0)
    after 10000 -> -1
    end.
