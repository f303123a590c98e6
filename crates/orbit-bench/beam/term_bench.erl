-module(term_bench).
-export([run/1]).

%% orbit-bench's `term` scenario, BEAM side, compiled (it ran interpreted in `erl -eval`).
%% `erl -s term_bench run CORPUS_FILE`: the corpus is `[{Name, [EncodedTerm]}]` written
%% by the bench (the same bytes every subject encodes and decodes). For every shape it
%% times term_to_binary over the decoded terms and binary_to_term over the encoded
%% bytes, each pass repeated for at least 300 ms, and prints
%% `Name EncNsPerPass DecNsPerPass EncCpuNsPerPass DecCpuNsPerPass` (CPU of every
%% emulator thread, statistics(runtime), milliseconds resolution).

run([File]) ->
    {ok, Bin} = file:read_file(atom_to_list(File)),
    Shapes = binary_to_term(Bin),
    lists:foreach(fun shape/1, Shapes).

shape({Name, Encoded}) ->
    Terms = [binary_to_term(E) || E <- Encoded],
    {Enc, EncCpu} = time(fun() -> enc(Terms, none) end),
    {Dec, DecCpu} = time(fun() -> dec(Encoded, none) end),
    io:format("~s ~f ~f ~f ~f~n", [Name, Enc, Dec, EncCpu, DecCpu]).

%% Each result is carried to the next step and the last one returned: the compiler
%% drops a call to a pure BIF such as term_to_binary/1 whose result is unused (an
%% earlier version measured nothing: 885 GB/s).
enc([], Last) -> Last;
enc([T | Ts], _) -> enc(Ts, term_to_binary(T)).

dec([], Last) -> Last;
dec([E | Es], _) -> dec(Es, binary_to_term(E)).

%% Nanoseconds and CPU nanoseconds per pass of F, over at least 300 ms after one warm-up.
time(F) ->
    F(),
    {C0, _} = statistics(runtime),
    Start = erlang:monotonic_time(nanosecond),
    {Passes, Ns} = loop(F, Start, 0),
    {C1, _} = statistics(runtime),
    {Ns / Passes, (C1 - C0) * 1000000 / Passes}.

loop(F, Start, N) ->
    put(term_bench_last, F()),
    Now = erlang:monotonic_time(nanosecond),
    if Now - Start >= 300000000 -> {N + 1, Now - Start};
       true -> loop(F, Start, N + 1)
    end.
