%% Evaluated by `erl -noshell -eval`: for every hex line read, prints
%% "Hex Cmp" where Hex is term_to_binary(binary_to_term(Line)) and Cmp is how the term
%% compares with the previous one (lt, eq or gt under ==/<); at end of input prints
%% "SORT I1 I2 ..." (the 0-based indices in lists:sort order of {Term, Index}), "DONE".
Loop2 = fun L3(Prev, Acc) ->
    case io:get_line("") of
      eof -> Acc;
      {error, _} -> Acc;
      "END\n" -> Acc;
      Line ->
        T = binary_to_term(binary:decode_hex(list_to_binary(string:trim(Line)))),
        Cmp = case Prev of none -> none; {P} when P == T -> eq; {P} when P < T -> lt; _ -> gt end,
        io:format("~s ~s~n", [binary:encode_hex(term_to_binary(T)), Cmp]),
        L3({T}, [T | Acc])
    end
  end,
Ts = lists:reverse(Loop2(none, [])),
Sorted = lists:sort(lists:zip(Ts, lists:seq(0, length(Ts) - 1))),
io:format("SORT~s~n", [[[" ", integer_to_list(I)] || {_, I} <- Sorted]]),
io:format("DONE~n"),
halt().
