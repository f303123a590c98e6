//! What an Elixir node connected to a bare Orbit node (no `orbit-cluster`) gets from
//! `:global` and `:rpc` while Orbit takes no part in either: the lock protocol is
//! answered so `trans`/`set_lock` return, `rpc:call` fails at once with `notsup`, and
//! `rex`'s `erlang:node` call is answered by the built-in `rex` (the C-node forms are
//! `orbit-cluster`'s, tested there).

mod common;

use common::*;

#[test]
fn global_locks_and_rpc_answer_cleanly_with_orbit_connected() {
    let node = node("orbit_glob");
    let me = node.name();
    let code = format!(
        r#"
        orbit = :"{me}"
        true = Node.connect(orbit)
        # Every global lock call goes to [node() | nodes()]: Orbit must answer it.
        t = Task.async(fn -> :global.trans({{:lk, self()}}, fn -> :done end) end)
        IO.puts("trans #{{inspect(Task.yield(t, 5000))}}")
        t = Task.async(fn ->
          got = :global.set_lock({{:lk2, self()}})
          :global.del_lock({{:lk2, self()}})
          got
        end)
        IO.puts("set_lock #{{inspect(Task.yield(t, 5000))}}")
        t = Task.async(fn -> :global.set_lock({{:lk3, self()}}, [node(), orbit], 0) end)
        IO.puts("set_lock_orbit #{{inspect(Task.yield(t, 5000))}}")
        IO.puts("register #{{:global.register_name(:gx, self())}}")
        {{us, r}} = :timer.tc(fn -> :rpc.call(orbit, :erlang, :node, [], 5000) end)
        IO.puts("rpc #{{inspect(r)}} fast=#{{us < 1_000_000}}")
        IO.puts("block_call #{{inspect(:rpc.block_call(orbit, :erlang, :node, [], 5000))}}")
        IO.puts("block_undef #{{inspect(:rpc.block_call(orbit, :nomod, :nofun, [1], 5000))}}")
        send({{:global_name_server, orbit}}, {{:whereis, :gx, {{self(), :tg}}}})
        receive do {{:tg, v}} -> IO.puts("whereis #{{inspect(v)}}") after 5000 -> IO.puts("whereis none") end
        IO.gets("")
        "#
    );
    let mut ex = Peer::elixir("ex_glob", COOKIE, &code);
    assert_eq!(ex.expect("trans ", 20), "trans {:ok, :done}");
    assert_eq!(ex.expect("set_lock ", 10), "set_lock {:ok, true}");
    assert_eq!(
        ex.expect("set_lock_orbit ", 10),
        "set_lock_orbit {:ok, true}"
    );
    assert_eq!(ex.expect("register ", 10), "register yes");
    assert_eq!(ex.expect("rpc ", 10), "rpc {:badrpc, :notsup} fast=true");
    assert_eq!(
        ex.expect("block_call ", 10),
        format!("block_call :\"{me}\"")
    );
    assert_eq!(
        ex.expect("block_undef ", 10),
        "block_undef {:badrpc, :notsup}"
    );
    assert_eq!(ex.expect("whereis ", 10), "whereis :undefined");
}
