%% erpc calls per second from this node to a target node (the `erpc` scenario).
%% The target is either a BEAM node running server/0 or an Orbit node that registered
%% erpc_bench:add/2 in Rust. Elixir's :erpc is this same module, so an Elixir caller
%% measures the same.
-module(erpc_bench).
-export([add/2, server/0, run/1]).

add(A, B) -> A + B.

%% A target node: prints ready and waits to be killed.
server() ->
    io:format("ready~n"),
    receive stop -> ok end.

%% run([Target, N, Concurrency]): N calls of erpc_bench:add(1, 2) on Target, spread over
%% Concurrency processes calling one after the other; prints erpc_calls_per_s and the
%% CPU microseconds this node spent.
run([Target, N, C]) ->
    true = net_kernel:connect_node(Target),
    Per = max(1, N div C),
    [3 = erpc:call(Target, erpc_bench, add, [1, 2], 5000) || _ <- lists:seq(1, 1000)],
    Cpu0 = dist_bench:cpu_us(),
    W0 = wakeups(),
    T0 = erlang:monotonic_time(microsecond),
    Parent = self(),
    Pids = [spawn_link(fun() -> loop(Target, Per), Parent ! {done, self()} end)
            || _ <- lists:seq(1, C)],
    [receive {done, P} -> ok end || P <- Pids],
    T1 = erlang:monotonic_time(microsecond),
    Cpu1 = dist_bench:cpu_us(),
    W1 = wakeups(),
    io:format("erpc_calls_per_s ~p cpu_us ~p wakeups ~p~n",
              [Per * C * 1000000 / max(1, T1 - T0), Cpu1 - Cpu0, W1 - W0]).

%% Voluntary context switches (a thread blocked, to be woken again) of every live
%% thread of this OS process, as the Orbit driver counts its own (util::proc_wakeups).
wakeups() ->
    {ok, Tids} = file:list_dir("/proc/self/task"),
    lists:sum([task_wakeups(T) || T <- Tids]).

task_wakeups(T) ->
    case file:read_file("/proc/self/task/" ++ T ++ "/status") of
        {ok, B} ->
            case re:run(B, "^voluntary_ctxt_switches:\\s+(\\d+)",
                        [multiline, {capture, all_but_first, binary}]) of
                {match, [N]} -> binary_to_integer(N);
                nomatch -> 0
            end;
        _ -> 0
    end.

loop(_, 0) -> ok;
loop(T, K) ->
    3 = erpc:call(T, erpc_bench, add, [1, 2], 5000),
    loop(T, K - 1).
