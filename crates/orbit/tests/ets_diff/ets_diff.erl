%% Runs the operation sequences written by tests/ets_diff.rs on OTP's ets and writes one
%% line per sequence: the list of results, printed with ~w.
-module(ets_diff).
-export([main/2]).

main(In, Out) ->
    {ok, Seqs} = file:consult(In),
    Lines = [io_lib:format("~w~n", [run(Ty, Ops)]) || {Ty, Ops} <- Seqs],
    ok = file:write_file(Out, Lines).

run(Ty, Ops) ->
    T = ets:new(t, [Ty, public]),
    R = [try op(T, Ty, Op) catch error:badarg -> badarg end || Op <- Ops],
    ets:delete(T),
    R.

op(T, _, {insert, O}) -> ets:insert(T, O);
op(T, _, {insert_new, O}) -> ets:insert_new(T, O);
op(T, _, {lookup, K}) -> ets:lookup(T, K);
op(T, _, {delete, K}) -> ets:delete(T, K);
op(T, _, {delete_object, O}) -> ets:delete_object(T, O);
op(T, _, {take, K}) -> ets:take(T, K);
op(T, _, {counter, K, U}) -> ets:update_counter(T, K, U);
op(T, _, {counter, K, U, D}) -> ets:update_counter(T, K, U, D);
op(T, _, {element, K, U}) -> ets:update_element(T, K, U);
op(T, Ty, {match_key, K}) -> srt(Ty, ets:match_object(T, {K, '_', '_'}));
op(T, Ty, {match_elem, A}) -> srt(Ty, ets:match_object(T, {'_', A, '_'}));
op(T, Ty, {select, MS}) -> srt(Ty, ets:select(T, MS));
op(T, Ty, {select_reverse, MS}) -> srt(Ty, ets:select_reverse(T, MS));
op(T, _, {select_count, MS}) -> ets:select_count(T, MS);
op(T, Ty, {select_delete, MS}) ->
    N = ets:select_delete(T, MS),
    {N, srt(Ty, ets:tab2list(T))};
op(T, Ty, {match_delete, P}) ->
    R = ets:match_delete(T, P),
    {R, srt(Ty, ets:tab2list(T))};
op(T, Ty, walk) ->
    F = fwd(T, ets:first(T)),
    B = bwd(T, ets:last(T)),
    {srt(Ty, F), srt(Ty, B)}.

fwd(_, '$end_of_table') -> [];
fwd(T, K) -> [K | fwd(T, ets:next(T, K))].
bwd(_, '$end_of_table') -> [];
bwd(T, K) -> [K | bwd(T, ets:prev(T, K))].

srt(ordered_set, L) -> L;
srt(_, L) -> lists:sort(L).
