%% pg broadcast over two nodes (the `pg` scenario of orbit-bench, issue 20): the same
%% work the Orbit nodes do (`src/scenarios/pg.rs`).
%%
%% - `members(SenderNode, K, N)`: node B. Starts the default pg scope, spawns N members
%%   of group `bench`, prints `ready`, waits. Each member counts K deliveries, then sends
%%   `done` to `{pg_sender, SenderNode}`.
%% - `run([B, K, N])`: node A. Starts the scope, registers itself as `pg_sender`, spawns
%%   N local members, connects to B, waits until the group lists 2N members, then K times:
%%   `pg:get_members(bench)` and one small message (the integer I) to each member, in a
%%   plain loop. The clock stops when all 2N members acknowledged. Prints
%%   `rate` (deliveries per second) and `cpu_us` (this node's CPU during the measured part,
%%   /proc/self/stat, the same source the Orbit nodes read).
-module(pg_bench).
-export([members/3, run/1]).

-define(GROUP, bench).

members(SenderNode, K, N) ->
    {ok, _} = pg:start_link(),
    Ack = {pg_sender, SenderNode},
    spawn_members(N, K, Ack),
    io:format("ready~n"),
    receive stop -> ok end.

spawn_members(0, _, _) -> ok;
spawn_members(I, K, Ack) ->
    P = spawn(fun() -> member(K, Ack) end),
    ok = pg:join(?GROUP, P),
    spawn_members(I - 1, K, Ack).

member(0, Ack) ->
    Ack ! done,
    receive stop -> ok end;
member(K, Ack) ->
    receive _ -> member(K - 1, Ack) end.

run([B, K, N]) ->
    {ok, _} = pg:start_link(),
    register(pg_sender, self()),
    spawn_members(N, K, self()),
    true = net_kernel:connect_node(B),
    wait_members(2 * N, 6000),
    Cpu0 = dist_bench:cpu_us(),
    T0 = erlang:monotonic_time(microsecond),
    broadcast(1, K),
    acks(2 * N),
    T1 = erlang:monotonic_time(microsecond),
    Cpu1 = dist_bench:cpu_us(),
    io:format("rate ~p cpu_us ~p~n",
              [K * 2 * N * 1000000 / max(1, T1 - T0), Cpu1 - Cpu0]).

wait_members(Want, 0) ->
    error({members_missing, Want, length(pg:get_members(?GROUP))});
wait_members(Want, Tries) ->
    case length(pg:get_members(?GROUP)) of
        Want -> ok;
        _ -> timer:sleep(5), wait_members(Want, Tries - 1)
    end.

broadcast(I, K) when I > K -> ok;
broadcast(I, K) ->
    send_all(pg:get_members(?GROUP), I),
    broadcast(I + 1, K).

send_all([], _) -> ok;
send_all([P | T], I) ->
    P ! I,
    send_all(T, I).

acks(0) -> ok;
acks(C) ->
    receive done -> acks(C - 1)
    after 60000 -> error({acks_missing, C})
    end.
