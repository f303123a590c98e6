-module(beam_bench).
-export([main/0, run/1, pong/0, counter/2, sink/3, idle/0]).

%% Copy of shared/beam/beam_bench.erl owned by orbit-bench (issue 17): `run/1` runs ONE
%% test per `erl` invocation (so the bench can run the BEAM inside every round), with the
%% count given on the command line (honours --scale), and prints the CPU seconds the
%% whole emulator used during the measured part (statistics(runtime), all threads).
%% The one-way sender is a plain loop (no list comprehension building a result list).

now_us() -> erlang:monotonic_time(microsecond).

pong() -> receive {ping, From} -> From ! pong, pong(); stop -> ok end.

pingpong(N) ->
    P = spawn(?MODULE, pong, []),
    T0 = now_us(),
    loop_ping(P, N),
    T1 = now_us(),
    P ! stop,
    {N, T1 - T0}.
loop_ping(_, 0) -> ok;
loop_ping(P, N) -> P ! {ping, self()}, receive pong -> ok end, loop_ping(P, N-1).

sink(0, Parent, _) -> Parent ! done;
sink(N, Parent, x) -> receive _ -> sink(N-1, Parent, x) end.

oneway(N) ->
    S = spawn(?MODULE, sink, [N, self(), x]),
    T0 = now_us(),
    send_loop(S, 1, N),
    receive done -> ok end,
    {N, now_us() - T0}.

send_loop(_, I, N) when I > N -> ok;
send_loop(S, I, N) -> S ! {msg, I}, send_loop(S, I + 1, N).

idle() -> receive stop -> ok end.

spawn_many(N) ->
    erlang:garbage_collect(),
    M0 = erlang:memory(processes),
    T0 = now_us(),
    Ps = [spawn(?MODULE, idle, []) || _ <- lists:seq(1, N)],
    T1 = now_us(),
    M1 = erlang:memory(processes),
    [P ! stop || P <- Ps],
    {N, T1 - T0, (M1 - M0) div N}.

counter(init, _) -> ok.

gen_calls(N) ->
    {ok, C} = gen_server:start(beam_bench_gs, 0, []),
    T0 = now_us(),
    [gen_server:call(C, incr) || _ <- lists:seq(1, N)],
    T1 = now_us(),
    gen_server:stop(C),
    {N, T1 - T0}.

ets_bench(N) ->
    T = ets:new(t, [set, public, {read_concurrency, true}, {write_concurrency, true}]),
    C0 = cpu_ms(),
    T0 = now_us(),
    ets_fill(T, 0, N),
    T1 = now_us(),
    C1 = cpu_ms(),
    Bytes = ets:info(T, memory) * erlang:system_info(wordsize) / max(N, 1),
    Self = self(),
    Readers = 2,
    %% Same random key sequence as orbit-bench's ets.rs (xorshift64 seeded
    %% 0x9E3779B97F4A7C15 bxor (R + 1), key = X rem N), generated before the clock.
    %% 2N lookups per reader, as orbit-bench's LOOKUPS (2M for 1M keys).
    Keys = [xs_keys(16#9E3779B97F4A7C15 bxor (R + 1), 2 * N, N, []) || R <- lists:seq(0, Readers - 1)],
    C1b = cpu_ms(),
    T1b = now_us(),
    [spawn(fun() -> ets_read(T, Ks), Self ! rdone end) || Ks <- Keys],
    [receive rdone -> ok end || _ <- lists:seq(1, Readers)],
    T2 = now_us(),
    C2 = cpu_ms(),
    {N, T1 - T0, (C1 - C0) / 1000, Readers * 2 * N, T2 - T1b, (C2 - C1b) / 1000, Bytes}.

ets_fill(_, I, N) when I >= N -> ok;
ets_fill(T, I, N) -> ets:insert(T, {I, I}), ets_fill(T, I + 1, N).

ets_read(_, []) -> ok;
ets_read(T, [K | Ks]) -> _ = ets:lookup(T, K), ets_read(T, Ks).

-define(M64, 16#FFFFFFFFFFFFFFFF).
xs_keys(_, 0, _, Acc) -> lists:reverse(Acc);
xs_keys(X0, C, N, Acc) ->
    X1 = (X0 bxor (X0 bsl 13)) band ?M64,
    X2 = X1 bxor (X1 bsr 7),
    X3 = (X2 bxor (X2 bsl 17)) band ?M64,
    xs_keys(X3, C - 1, N, [X3 rem N | Acc]).

%% `erl -s beam_bench run TEST N`: one test, `N` operations; prints `rate R cpu_s C`
%% (plus `started_per_s`/`bytes_per_idle_process` for spawn).
run([Test, NA]) ->
    N = list_to_integer(atom_to_list(NA)),
    {_, _} = statistics(runtime),
    C0 = cpu_ms(),
    case Test of
        pingpong -> {K, Us} = pingpong(N), out(K, Us, C0);
        oneway -> {K, Us} = oneway(N), out(K, Us, C0);
        gen_calls -> {K, Us} = gen_calls(N), out(K, Us, C0);
        ets -> {K, Us, Ci, R, Us2, Cl, B} = ets_bench(N),
               io:format("ets_inserts_per_s ~p ins_cpu_s ~p~n", [K * 1000000 / max(Us, 1), Ci]),
               io:format("ets_lookups_per_s_2readers ~p look_cpu_s ~p~n", [R * 1000000 / max(Us2, 1), Cl]),
               io:format("bytes_per_object ~p rate ~p~n", [B, R * 1000000 / max(Us2, 1)]);
        spawn -> {K, Us, B} = spawn_many(N), out(K, Us, C0),
                 io:format("bytes_per_idle_process ~p~n", [B])
    end.

cpu_ms() -> {T, _} = statistics(runtime), T.

out(K, Us, C0) ->
    io:format("rate ~p cpu_s ~p~n", [K * 1000000 / max(Us, 1), (cpu_ms() - C0) / 1000]).

main() ->
    {N1, Us1} = pingpong(1000000),
    io:format("pingpong_roundtrips_per_s ~p~n", [N1 * 1000000 div Us1]),
    {N2, Us2} = oneway(5000000),
    io:format("oneway_msgs_per_s ~p~n", [N2 * 1000000 div Us2]),
    {N3, Us3, Bytes} = spawn_many(1000000),
    io:format("spawn_per_s ~p bytes_per_idle_process ~p~n", [N3 * 1000000 div Us3, Bytes]),
    {N4, Us4} = gen_calls(1000000),
    io:format("gen_server_calls_per_s ~p~n", [N4 * 1000000 div Us4]),
    {N5, Us5, _, R5, Us6, _, _} = ets_bench(1000000),
    io:format("ets_inserts_per_s ~p ets_lookups_per_s_2readers ~p~n", [N5 * 1000000 div Us5, R5 * 1000000 div Us6]),
    ok.
