%% Evaluated by `erl -noshell -sname ... -eval`: prints "Name Hex" for every edge case,
%% then "END"; reads back "Name Hex" lines of Orbit's encodings until "END" and prints
%% "Name ok" when binary_to_term gives a term =:= the original, then "DONE".
Pow = fun(B, E) -> lists:foldl(fun(_, A) -> A * B end, 1, lists:seq(1, E)) end,
Ints = lists:append([[{"int_pos_m1_" ++ integer_to_list(N), Pow(2, 8 * N) - 1, []},
                      {"int_pos_" ++ integer_to_list(N), Pow(2, 8 * N), []},
                      {"int_neg_" ++ integer_to_list(N), -Pow(2, 8 * N), []},
                      {"int_neg_p1_" ++ integer_to_list(N), -Pow(2, 8 * N) + 1, []}]
                     || N <- lists:seq(1, 260)]),
Port = hd(erlang:ports()),
Y = 42,
Cases = Ints ++ [
  {"int_i32_max", 2147483647, []}, {"int_i32_over", 2147483648, []},
  {"int_i32_min", -2147483648, []}, {"int_i32_under", -2147483649, []},
  {"int_zero", 0, []}, {"int_m1", -1, []},
  {"float_zero", 0.0, []}, {"float_neg_zero", binary_to_term(<<131,70,128,0,0,0,0,0,0,0>>), []},
  {"float_1_5", 1.5, []}, {"float_big", 1.0e300, []}, {"float_tiny", 5.0e-324, []},
  {"float_neg", -123.456, []},
  {"atom_empty", '', []}, {"atom_ok", ok, []},
  {"atom_unicode_255", list_to_atom(lists:duplicate(255, 16#1F600)), []},
  {"atom_latin1_255", list_to_atom(lists:duplicate(255, 16#E9)), []},
  {"map_empty", #{}, []}, {"map_nested", #{a => #{b => #{}}, <<"k">> => [1, 2]}, []},
  {"map_int_float_keys", #{1 => 1.0, 1.0 => 1}, []},
  {"map_100", maps:from_list([{I, integer_to_binary(I)} || I <- lists:seq(1, 100)]), []},
  {"improper_1", [1 | 2], []}, {"improper_2", [a, b | c], []}, {"improper_bin", [a | <<"t">>], []},
  {"nil", [], []}, {"string_hello", "hello", []}, {"list_unicode", [256, 1000], []},
  {"string_65535", lists:duplicate(65535, $a), []}, {"string_65536", lists:duplicate(65536, $a), []},
  {"binary_empty", <<>>, []}, {"binary_65535", binary:copy(<<"b">>, 65535), []},
  {"binary_65536", binary:copy(<<"b">>, 65536), []},
  {"bits_1", <<1:1>>, []}, {"bits_18", <<255, 3:2>>, []},
  {"tuple_empty", {}, []}, {"tuple_256", list_to_tuple(lists:seq(1, 256)), []},
  {"tuple_nested", {ok, {error, {[1], #{x => {}}}}}, []},
  {"pid_self", self(), []}, {"ref", make_ref(), []}, {"port", Port, []},
  {"export", fun erlang:self/0, []}, {"fun_closure", fun(X) -> X + Y end, []},
  {"compressed_seq", lists:seq(1, 1000), [compressed]},
  {"compressed_bin", binary:copy(<<0>>, 100000), [{compressed, 9}]},
  {"serde_user", #{name => <<"José"/utf8>>, age => 41, email => nil, tags => [<<"a">>, <<"b">>], score => 1.5, admin => true}, []},
  {"serde_login", {login, #{user => <<"u">>, token => 9}}, []},
  {"serde_move", {move, 1, -2}, []},
  {"serde_uri", #{'__struct__' => 'Elixir.URI', host => <<"x">>, port => 80}, []},
  {"compressed_map", #{list => lists:seq(1, 300), node => node()}, [{compressed, 1}]}
],
lists:foreach(fun({N, T, O}) ->
    io:format("~s ~s~n", [N, binary:encode_hex(term_to_binary(T, O))]) end, Cases),
io:format("END~n"),
Check = fun Loop() ->
    case io:get_line("") of
      eof -> ok;
      {error, _} -> ok;
      "END\n" -> ok;
      Line ->
        [N, H] = string:split(string:trim(Line), " "),
        {_, T, _} = lists:keyfind(N, 1, Cases),
        R = try binary_to_term(binary:decode_hex(list_to_binary(H))) of
              T2 when T2 =:= T -> ok;
              T2 -> {mismatch, T2}
            catch C:E -> {C, E} end,
        io:format("~s ~P~n", [N, R, 12]),
        Loop()
    end
  end,
Check(),
io:format("DONE~n"),
halt().
