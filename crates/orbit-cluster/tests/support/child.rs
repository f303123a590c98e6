//! The nodes a partition test runs in its namespaces.
//!
//! An Orbit node is this very test binary run again (`ip netns exec NS <test binary>
//! netns_child --exact --nocapture`) with `ORBIT_NETNS_CHILD` set: each test file has a
//! `#[test] fn netns_child()` that calls [`child_main`], which returns at once unless
//! that variable is set. A BEAM node is `erl` or `elixir` with the same services.
//!
//! Services every node runs (Orbit and erl alike):
//! - `holder`: on `{From, spawn, K}` spawns K idle processes and sends `{pids, Pids}`;
//! - `blackhole`: takes any message (a `$gen_call` too) and never answers;
//! - `seq`: echoes `{seq, From, I}` back to `From`;
//! - on Orbit nodes, the cluster view service (`orbit_cluster_view`).
//!
//! Both print `ready NODE`, `nodeup NODE`, `nodedown NODE`. BEAM nodes (erl and
//! Elixir) take `links N K` and `counts` on stdin, as below. Orbit nodes take these
//! commands on stdin (one per line, each answered by a line starting with its name):
//! `connect N`, `list`, `links N K` (K local processes, each trapping exits, linked to
//! and monitoring one of K processes of N's holder; `noconn-all links=K monitors=K` is
//! printed once every link and monitor fired with `noconnection`), `counts`,
//! `calls N K` (K concurrent calls to N's blackhole, 60 s timeout; `calls-done ...`
//! when all returned), `seq N FROM TO`, `seqwait M`, `seqcheck FROM TO`,
//! `rpc N K` (K calls one after the other to N's `rex`, `erlang:node()`, 10 s timeout
//! each; `rpc ok=.. failed=.. min_ms=.. median_ms=.. max_ms=..`),
//! `view SEED...` (the cluster view as JSON on one line), `flood N K BYTES` (K binaries
//! of BYTES to N's blackhole), `established IP SECS` (waits until no TCP connection to
//! IP is established, then prints how many are).

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use orbit::Message;
use orbit_dist::{Node, NodeEvent, Options};
use orbit_term::Term;
use parking_lot::Mutex;

use super::netns::Net;
use super::peer::Peer;

/// A process body (a boxed future, so that a body looping forever still has type `()`).
type Proc = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The cookie of every test node.
pub const COOKIE: &str = "orbit_partition_cookie";

/// Starts an Orbit node `alive@10.77.0.{i+1}` in node `i`'s namespace, with
/// `net_ticktime` `tick_secs`; waits until it is ready.
pub fn orbit_node(net: &Net, i: usize, alive: &str, tick_secs: u64, hidden: bool) -> Peer {
    start_orbit(net, i, alive, tick_secs, hidden, None)
}

/// [`orbit_node`] (visible) whose EPMD, its own and the one it asks of other hosts,
/// is on `epmd_port`: it reaches a node behind a [`super::relay::Relay`] with that
/// front EPMD port only through the relay.
pub fn orbit_node_epmd(net: &Net, i: usize, alive: &str, tick_secs: u64, epmd_port: u16) -> Peer {
    start_orbit(net, i, alive, tick_secs, false, Some(epmd_port))
}

fn start_orbit(
    net: &Net,
    i: usize,
    alive: &str,
    tick_secs: u64,
    hidden: bool,
    epmd_port: Option<u16>,
) -> Peer {
    let name = format!("{alive}@{}", net.ip(i));
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = net.command(i, exe.to_str().expect("a UTF-8 path"));
    cmd.args(["netns_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("ORBIT_NETNS_CHILD", "1")
        .env("ORBIT_NETNS_NAME", &name)
        .env("ORBIT_NETNS_TICK", tick_secs.to_string())
        .env("ORBIT_NETNS_HIDDEN", if hidden { "1" } else { "0" });
    if let Some(port) = epmd_port {
        cmd.env("ORBIT_NETNS_EPMD", port.to_string());
    }
    let mut p = Peer::spawn(cmd, &name);
    p.expect("ready ", 30);
    p
}

/// True when `erl` runs here.
pub fn have_erl() -> bool {
    Command::new("erl")
        .args(["-noshell", "-eval", "halt()."])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts `erl -name alive@10.77.0.{i+1} -kernel net_ticktime T` in node `i`'s
/// namespace with the services; waits until it is ready.
pub fn erl_node(net: &Net, i: usize, alive: &str, tick_secs: u64) -> Peer {
    let name = format!("{alive}@{}", net.ip(i));
    let code = r#"
        Holder = fun H() -> receive {From, spawn, K} ->
            Ps = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, K)],
            From ! {pids, Ps}, H() end end,
        register(holder, spawn(Holder)),
        register(blackhole, spawn(fun B() -> receive _ -> B() end end)),
        register(seq, spawn(fun S() -> receive {seq, From, I} -> From ! {seq, From, I}, S() end end)),
        Counter = spawn(fun() -> (fun C(Lk, Mo, Ot, Ex, Rep) ->
            {Lk2, Mo2, Ot2, Ex2} = receive
                {expect, K} -> {Lk, Mo, Ot, Ex + K};
                link -> {Lk + 1, Mo, Ot, Ex};
                monitor -> {Lk, Mo + 1, Ot, Ex};
                other -> {Lk, Mo, Ot + 1, Ex};
                {counts, From} -> From ! {counts, Lk, Mo, Ot}, {Lk, Mo, Ot, Ex}
            end,
            Rep2 = case (not Rep) andalso Ex2 > 0 andalso Lk2 >= Ex2 andalso Mo2 >= Ex2 of
                true -> io:format("noconn-all links=~b monitors=~b~n", [Lk2, Mo2]), true;
                false -> Rep
            end,
            C(Lk2, Mo2, Ot2, Ex2, Rep2) end)(0, 0, 0, 0, false) end),
        Links = fun(Node, K) ->
            {holder, Node} ! {self(), spawn, K},
            receive {pids, Ps} ->
                Counter ! {expect, length(Ps)},
                Me = self(),
                [spawn(fun() ->
                    process_flag(trap_exit, true), link(P), erlang:monitor(process, P), Me ! ready,
                    (fun W() -> receive
                        {'EXIT', _, noconnection} -> Counter ! link, W();
                        {'DOWN', _, process, _, noconnection} -> Counter ! monitor, W();
                        _ -> Counter ! other, W()
                    end end)() end) || P <- Ps],
                [receive ready -> ok end || _ <- Ps],
                io:format("links ~b~n", [length(Ps)])
            after 10000 -> io:format("links failed: no answer from holder~n")
            end end,
        spawn(fun In() -> case io:get_line("") of
            eof -> ok;
            Line ->
                case string:lexemes(string:trim(Line), " ") of
                    ["links", Node, K] -> Links(list_to_atom(Node), list_to_integer(K));
                    ["counts"] -> Counter ! {counts, self()},
                        receive {counts, Lk, Mo, Ot} ->
                            io:format("counts links=~b monitors=~b other=~b~n", [Lk, Mo, Ot]) end;
                    _ -> io:format("unknown ~s~n", [string:trim(Line)])
                end,
                In()
            end end),
        ok = net_kernel:monitor_nodes(true),
        io:format("ready ~s~n", [node()]),
        (fun L() -> receive
            {nodeup, N} -> io:format("nodeup ~s~n", [N]), L();
            {nodedown, N} -> io:format("nodedown ~s~n", [N]), L()
        end end)()."#;
    let mut cmd = net.command(i, "erl");
    cmd.args([
        "-noshell",
        "-name",
        &name,
        "-setcookie",
        COOKIE,
        "-kernel",
        "net_ticktime",
        &tick_secs.to_string(),
        "-eval",
        code,
    ]);
    let mut p = Peer::spawn(cmd, &name);
    p.expect("ready ", 30);
    p
}

/// True when `elixir` runs here.
pub fn have_elixir() -> bool {
    Command::new("elixir")
        .args(["-e", ":ok"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts `elixir --name alive@10.77.0.{i+1}` with `net_ticktime` T in node `i`'s
/// namespace, with the same services as [`erl_node`], written in Elixir.
pub fn elixir_node(net: &Net, i: usize, alive: &str, tick_secs: u64) -> Peer {
    let name = format!("{alive}@{}", net.ip(i));
    let code = r#"
        holder = fn f -> receive do {from, :spawn, k} ->
            ps = for _ <- 1..k, do: spawn(fn -> receive do :stop -> :ok end end)
            send(from, {:pids, ps}); f.(f) end end
        Process.register(spawn(fn -> holder.(holder) end), :holder)
        hole = fn f -> receive do _ -> f.(f) end end
        Process.register(spawn(fn -> hole.(hole) end), :blackhole)
        seq = fn f -> receive do {:seq, from, i} -> send(from, {:seq, from, i}); f.(f) end end
        Process.register(spawn(fn -> seq.(seq) end), :seq)
        count = fn f, {lk, mo, ot, ex, rep} ->
            {lk, mo, ot, ex} = receive do
                {:expect, k} -> {lk, mo, ot, ex + k}
                :link -> {lk + 1, mo, ot, ex}
                :monitor -> {lk, mo + 1, ot, ex}
                :other -> {lk, mo, ot + 1, ex}
                {:counts, from} -> send(from, {:counts, lk, mo, ot}); {lk, mo, ot, ex}
            end
            rep = if not rep and ex > 0 and lk >= ex and mo >= ex do
                IO.puts("noconn-all links=#{lk} monitors=#{mo}"); true
            else rep end
            f.(f, {lk, mo, ot, ex, rep})
        end
        counter = spawn(fn -> count.(count, {0, 0, 0, 0, false}) end)
        watch = fn f -> receive do
            {:EXIT, _, :noconnection} -> send(counter, :link)
            {:DOWN, _, :process, _, :noconnection} -> send(counter, :monitor)
            _ -> send(counter, :other)
        end; f.(f) end
        links = fn node, k ->
            send({:holder, node}, {self(), :spawn, k})
            receive do {:pids, ps} ->
                send(counter, {:expect, length(ps)})
                me = self()
                for p <- ps, do: spawn(fn ->
                    Process.flag(:trap_exit, true); Process.link(p); Process.monitor(p)
                    send(me, :ready); watch.(watch) end)
                for _ <- ps, do: (receive do :ready -> :ok end)
                IO.puts("links #{length(ps)}")
            after 10_000 -> IO.puts("links failed: no answer from holder") end
        end
        input = fn f -> case IO.gets("") do
            :eof -> :ok
            line ->
                case String.split(String.trim(line)) do
                    ["links", node, k] -> links.(String.to_atom(node), String.to_integer(k))
                    ["counts"] ->
                        send(counter, {:counts, self()})
                        receive do {:counts, lk, mo, ot} ->
                            IO.puts("counts links=#{lk} monitors=#{mo} other=#{ot}") end
                    _ -> IO.puts("unknown #{String.trim(line)}")
                end
                f.(f)
        end end
        spawn(fn -> input.(input) end)
        :ok = :net_kernel.monitor_nodes(true)
        IO.puts("ready #{node()}")
        events = fn f -> receive do
            {:nodeup, n} -> IO.puts("nodeup #{n}"); f.(f)
            {:nodedown, n} -> IO.puts("nodedown #{n}"); f.(f)
        end end
        events.(events)"#;
    let mut cmd = net.command(i, "elixir");
    cmd.args([
        "--name",
        &name,
        "--cookie",
        COOKIE,
        "--erl",
        &format!("-kernel net_ticktime {tick_secs}"),
        "-e",
        code,
    ]);
    let mut p = Peer::spawn(cmd, &name);
    p.expect("ready ", 60);
    p
}

/// The child's entry: runs the node when `ORBIT_NETNS_CHILD` is set, else returns.
pub fn child_main() {
    if std::env::var_os("ORBIT_NETNS_CHILD").is_none() {
        return;
    }
    // The test harness printed `test netns_child ... ` without a newline.
    println!();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(run());
    std::process::exit(0);
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_default()
}

/// Link/monitor outcomes seen by the watchers.
#[derive(Default)]
struct Counts {
    links: usize,
    monitors: usize,
    other: usize,
    expected: usize,
    reported: bool,
}

/// Sequence numbers echoed back.
#[derive(Default)]
struct Seqs {
    got: BTreeSet<i64>,
    dups: usize,
    out_of_order: usize,
    max: i64,
}

async fn run() {
    let name = env("ORBIT_NETNS_NAME");
    let tick: u64 = env("ORBIT_NETNS_TICK").parse().unwrap_or(60);
    let opts = Options {
        net_ticktime: Duration::from_secs(tick),
        hidden: env("ORBIT_NETNS_HIDDEN") == "1",
        epmd_port: env("ORBIT_NETNS_EPMD").parse().ok(),
        ..Options::cookie(COOKIE)
    };
    let node = Node::start(&name, opts).await.expect("node started");
    orbit_cluster::view::serve().await.expect("view service");
    spawn_services();
    let counts = Arc::new(Mutex::new(Counts::default()));
    let seqs = Arc::new(Mutex::new(Seqs::default()));
    let seq_changed = Arc::new(tokio::sync::Notify::new());
    let seqrx = {
        let (seqs, changed) = (seqs.clone(), seq_changed.clone());
        orbit::spawn(move |mut ctx: orbit::Context<Term>| -> Proc {
            Box::pin(async move {
                loop {
                    if let Message::Msg(Term::Tuple(el)) = ctx.recv().await {
                        if let [_, _, Term::Int(i)] = &el[..] {
                            let mut s = seqs.lock();
                            if !s.got.insert(*i) {
                                s.dups += 1;
                            }
                            if *i < s.max {
                                s.out_of_order += 1;
                            }
                            s.max = s.max.max(*i);
                            drop(s);
                            changed.notify_waiters();
                        }
                    }
                }
            })
        })
        .expect("seq receiver")
        .pid()
    };
    let mut events = node.monitor_nodes();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                NodeEvent::NodeUp(n) => println!("nodeup {n}"),
                NodeEvent::NodeDown(n, why) => println!("nodedown {n} {why}"),
            }
        }
    });
    println!("ready {}", node.name());
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for l in std::io::stdin().lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["connect", n] => match node.try_connect(n).await {
                Ok(()) => println!("connect {n} true"),
                Err(e) => println!("connect {n} false: {e}"),
            },
            ["list"] => println!("list {}", node.list().join(",")),
            ["links", n, k] => {
                let k: usize = k.parse().unwrap_or(0);
                links(n, k, counts.clone()).await;
            }
            ["counts"] => {
                let c = counts.lock();
                println!(
                    "counts links={} monitors={} other={}",
                    c.links, c.monitors, c.other
                );
            }
            ["calls", n, k] => calls(n.to_string(), k.parse().unwrap_or(0)),
            ["rpc", n, k] => rpc(n, k.parse().unwrap_or(0)).await,
            ["seq", n, from, to] => {
                let (from, to): (i64, i64) = (from.parse().unwrap_or(0), to.parse().unwrap_or(0));
                let me = Term::Pid(Box::new(orbit_dist::to_wire(seqrx)));
                let mut failed = 0;
                for i in from..=to {
                    let m = Term::tuple(vec![Term::atom("seq"), me.clone(), Term::Int(i)]);
                    if orbit_dist::send_named(n, "seq", &m).is_err() {
                        failed += 1;
                    }
                }
                println!("seq-sent {from} {to} failed={failed}");
            }
            ["seqwait", m] => {
                let m: i64 = m.parse().unwrap_or(0);
                let wait = async {
                    loop {
                        let n = seq_changed.notified();
                        if seqs.lock().max >= m {
                            return;
                        }
                        n.await;
                    }
                };
                let ok = tokio::time::timeout(Duration::from_secs(20), wait)
                    .await
                    .is_ok();
                let s = seqs.lock();
                println!(
                    "seqwait {m} {ok} received={} dups={} out_of_order={} max={}",
                    s.got.len(),
                    s.dups,
                    s.out_of_order,
                    s.max
                );
            }
            ["seqcheck", from, to] => {
                let (from, to): (i64, i64) = (from.parse().unwrap_or(0), to.parse().unwrap_or(0));
                let s = seqs.lock();
                let missing = (from..=to).filter(|i| !s.got.contains(i)).count();
                println!("seqcheck {from} {to} missing={missing}");
            }
            ["view", seeds @ ..] => {
                let seeds: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
                let v = orbit_cluster::view::status(&seeds, Duration::from_secs(3)).await;
                eprintln!("{}", v.table());
                println!("view {}", serde_json::to_string(&v).unwrap_or_default());
            }
            ["flood", n, k, bytes] => {
                let (k, bytes): (usize, usize) =
                    (k.parse().unwrap_or(0), bytes.parse().unwrap_or(0));
                let m = Term::Binary(vec![7; bytes]);
                let failed = (0..k)
                    .filter(|_| orbit_dist::send_named(n, "blackhole", &m).is_err())
                    .count();
                println!("flood-sent {k} failed={failed}");
            }
            ["established", ip, secs] => {
                // Waits (at most `secs`) until no TCP connection to `ip` is established.
                let deadline =
                    std::time::Instant::now() + Duration::from_secs(secs.parse().unwrap_or(0));
                let mut n = established_to(ip);
                while n > 0 && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    n = established_to(ip);
                }
                println!("established {ip} {n}");
            }
            ["quit"] => break,
            _ => println!("unknown {line}"),
        }
    }
}

/// TCP connections of this namespace in state ESTABLISHED with remote address `ip`
/// (IPv4, from `/proc/net/tcp`).
fn established_to(ip: &str) -> usize {
    let Ok(addr) = ip.parse::<std::net::Ipv4Addr>() else {
        return 0;
    };
    // /proc/net/tcp writes the address as the u32 in host order, in hex.
    let hex = format!("{:08X}", u32::from_ne_bytes(addr.octets()));
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2].starts_with(&hex) && f[3] == "01"
        })
        .count()
}

fn spawn_services() {
    let holder = orbit::spawn(|mut ctx: orbit::Context<Term>| -> Proc {
        Box::pin(async move {
            loop {
                let Message::Msg(Term::Tuple(el)) = ctx.recv().await else {
                    continue;
                };
                let [Term::Pid(from), Term::Atom(_), Term::Int(k)] = &el[..] else {
                    continue;
                };
                let mut pids = Vec::new();
                for _ in 0..*k {
                    let h = orbit::spawn(|mut ctx: orbit::Context<Term>| -> Proc {
                        Box::pin(async move {
                            loop {
                                let _ = ctx.recv().await;
                            }
                        })
                    })
                    .expect("held process");
                    pids.push(Term::Pid(Box::new(orbit_dist::to_wire(h.pid()))));
                }
                let reply = Term::tuple(vec![Term::atom("pids"), Term::List(pids)]);
                let _ = orbit::send(orbit_dist::from_wire(from), reply);
            }
        })
    })
    .expect("holder");
    orbit::register("holder", holder.pid()).expect("register holder");
    let blackhole = orbit::spawn(|mut ctx: orbit::Context<Term>| -> Proc {
        Box::pin(async move {
            loop {
                let _ = ctx.recv().await;
            }
        })
    })
    .expect("blackhole");
    orbit::register("blackhole", blackhole.pid()).expect("register blackhole");
    let seq = orbit::spawn(|mut ctx: orbit::Context<Term>| -> Proc {
        Box::pin(async move {
            loop {
                if let Message::Msg(t @ Term::Tuple(_)) = ctx.recv().await {
                    if let Term::Tuple(el) = &t {
                        if let Some(Term::Pid(from)) = el.get(1) {
                            let _ = orbit::send(orbit_dist::from_wire(from), t.clone());
                        }
                    }
                }
            }
        })
    })
    .expect("seq");
    orbit::register("seq", seq.pid()).expect("register seq");
}

/// Gets `k` pids from `node`'s holder, then links and monitors one each from `k` local
/// watchers; prints `links K` when set up.
async fn links(node: &str, k: usize, counts: Arc<Mutex<Counts>>) {
    let node = node.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let asker = orbit::spawn(move |mut ctx: orbit::Context<Term>| -> Proc {
        Box::pin(async move {
            let me = Term::Pid(Box::new(orbit_dist::to_wire(ctx.pid())));
            let req = Term::tuple(vec![me, Term::atom("spawn"), Term::Int(k as i64)]);
            let _ = orbit_dist::send_named(&node, "holder", &req);
            let got = ctx.recv_timeout(Duration::from_secs(10)).await;
            let _ = tx.send(got);
        })
    });
    if asker.is_err() {
        println!("links failed: spawn");
        return;
    }
    let Ok(Some(Message::Msg(Term::Tuple(el)))) = rx.await else {
        println!("links failed: no answer from holder");
        return;
    };
    let Some(Term::List(pids)) = el.get(1) else {
        println!("links failed: bad answer");
        return;
    };
    counts.lock().expected += pids.len();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut spawned = 0;
    for p in pids {
        let Term::Pid(p) = p else { continue };
        let remote = orbit_dist::from_wire(p);
        let (counts, ready) = (counts.clone(), ready_tx.clone());
        spawned += 1;
        let _ = orbit::spawn(move |mut ctx: orbit::Context<Term>| -> Proc {
            Box::pin(async move {
                ctx.trap_exit(true);
                let _ = orbit::link(remote);
                let _ = orbit::monitor(remote);
                let _ = ready.send(());
                loop {
                    let msg = ctx.recv().await;
                    let mut c = counts.lock();
                    match msg {
                        Message::Exit {
                            reason: orbit::ExitReason::NoConnection,
                            ..
                        } => c.links += 1,
                        Message::Down(d) if matches!(d.reason, orbit::ExitReason::NoConnection) => {
                            c.monitors += 1
                        }
                        _ => c.other += 1,
                    }
                    if !c.reported && c.links >= c.expected && c.monitors >= c.expected {
                        c.reported = true;
                        println!("noconn-all links={} monitors={}", c.links, c.monitors);
                    }
                }
            })
        });
    }
    drop(ready_tx);
    let mut n = 0;
    while n < spawned && ready_rx.recv().await.is_some() {
        n += 1;
    }
    println!("links {n}");
}

/// `k` concurrent calls to `node`'s blackhole; prints `calls-sent K`, then
/// `calls-done ok=.. noconnection=.. timeout=.. other=.. returns=..` once all returned.
fn calls(node: String, k: usize) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..k {
        let (node, tx) = (node.clone(), tx.clone());
        tokio::spawn(async move {
            let r = orbit_dist::call::<_, Term>(
                ("blackhole", node.as_str()),
                &Term::atom("hello"),
                Duration::from_secs(60),
            )
            .await;
            let _ = tx.send(r);
        });
    }
    drop(tx);
    println!("calls-sent {k}");
    tokio::spawn(async move {
        let (mut ok, mut noconn, mut timeout, mut other, mut returns) = (0, 0, 0, 0, 0);
        while let Some(r) = rx.recv().await {
            returns += 1;
            match r.as_ref().map_err(|e| e.cause()) {
                Ok(_) => ok += 1,
                Err(orbit::CallError::NoConnection { .. }) => noconn += 1,
                Err(orbit::CallError::Timeout) => timeout += 1,
                Err(_) => other += 1,
            }
        }
        println!(
            "calls-done ok={ok} noconnection={noconn} timeout={timeout} other={other} returns={returns}"
        );
    });
}

/// `k` calls one after the other to `node`'s `rex` (`{call, erlang, node, [], user}`,
/// which BEAM and Orbit nodes answer with the node's name); prints how many returned
/// that name and their round-trip times.
async fn rpc(node: &str, k: usize) {
    let req = Term::tuple(vec![
        Term::atom("call"),
        Term::atom("erlang"),
        Term::atom("node"),
        Term::List(vec![]),
        Term::atom("user"),
    ]);
    let (mut ok, mut failed, mut rtts) = (0, 0, Vec::new());
    for _ in 0..k {
        let t0 = std::time::Instant::now();
        let r = orbit_dist::call::<_, Term>(("rex", node), &req, Duration::from_secs(10)).await;
        match r {
            Ok(t) if t.as_atom() == Some(node) => {
                ok += 1;
                rtts.push(t0.elapsed());
            }
            Ok(t) => {
                failed += 1;
                eprintln!("rpc {node}: unexpected answer {t:?}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("rpc {node}: {e}");
            }
        }
    }
    rtts.sort();
    let ms = |d: Option<&Duration>| d.map_or(0, |d| d.as_millis());
    println!(
        "rpc ok={ok} failed={failed} min_ms={} median_ms={} max_ms={}",
        ms(rtts.first()),
        ms(rtts.get(rtts.len() / 2)),
        ms(rtts.last())
    );
}
