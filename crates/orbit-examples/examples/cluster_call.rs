//! Lesson 7: calls across nodes: Orbit <-> Orbit and Orbit <-> Elixir, with the same
//! `GenServer.call`.
//!
//! Run: `cargo run -p orbit-examples --example cluster_call`
//!
//! One node per OS process, as on the BEAM: this program starts an Orbit node
//! (`orbit_main_<pid>@127.0.0.1`), serves a counter GenServer to other nodes
//! (`orbit_dist::serve_gen_server`), and starts itself again as a second Orbit node
//! (`--peer`), which serves its own counter. Each node then calls the other's counter
//! (`orbit::gen_server::call::<Counter>(("counter", node), ...)` or the serde-typed
//! `orbit_dist::call(("counter", node), ...)`, Elixir's `GenServer.call({:counter,
//! node}, ...)`). When `elixir` is on PATH, an Elixir node joins with the same cookie,
//! calls the Orbit counter and is called back at its own `:ex_counter`; without
//! `elixir` that part is skipped with a message.
//!
//! EPMD: the first node starts Orbit's embedded EPMD when nothing listens on port 4369
//! (or uses the `epmd` already there); the others register with it. Requests travel as
//! Erlang terms: `CounterReq` is the map `%{op: "add", n: 5}` on the Elixir side.

use std::process::Stdio;
use std::time::Duration;

use orbit::{CallReply, GenServer, ReplyTo, ServerContext};
use orbit_dist::{Node, Options};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const COOKIE: &str = "orbit_example_cookie";
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A counter request: `%{op: "add" | "get", n: integer}` on the wire.
#[derive(Serialize, Deserialize, Debug)]
struct CounterReq {
    op: String,
    n: i64,
}

fn add(n: i64) -> CounterReq {
    CounterReq {
        op: "add".into(),
        n,
    }
}

/// The counter each node serves.
struct Counter(i64);

impl GenServer for Counter {
    type Call = CounterReq;
    type Reply = i64;
    type Cast = CounterReq;
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        req: CounterReq,
        from: &mut ReplyTo<i64>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<i64, ()> {
        if req.op == "add" {
            self.0 += req.n;
        }
        // `from.caller()` is the remote caller's pid, as OTP's `from`.
        println!(
            "  [{}] counter: {:?} from {:?} -> {}",
            node_name(),
            req,
            from.caller(),
            self.0
        );
        CallReply::Reply(self.0)
    }
}

fn node_name() -> String {
    Node::current().map(|n| n.name()).unwrap_or_default()
}

/// Starts this process's node and serves a counter named `counter` from `start`.
async fn start_node(name: &str, start: i64) -> Node {
    let node = Node::start(name, Options::cookie(COOKIE))
        .await
        .unwrap_or_else(|e| panic!("node {name} did not start: {e}"));
    orbit::gen_server::start_with(
        Counter(start),
        orbit::gen_server::StartOptions {
            name: Some("counter".into()),
            link: false,
            timeout: None,
        },
    )
    .await
    .expect("the counter starts");
    orbit_dist::serve_gen_server::<Counter>("counter");
    // Calls from here to a `Counter` on another node through orbit's own
    // `gen_server::call` (its request and reply types go on the wire with serde).
    orbit_dist::remote_server::<Counter>();
    node
}

/// A child process whose stdout lines are awaited with a bound.
struct Peer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    label: &'static str,
}

impl Peer {
    fn spawn(mut cmd: Command, label: &'static str) -> Peer {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{label} did not start: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        Peer {
            child,
            lines: BufReader::new(out).lines(),
            label,
        }
    }

    /// The next line starting with `prefix` (other lines are echoed), within `secs`.
    async fn expect(&mut self, prefix: &str, secs: u64) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(l))) if l.starts_with(prefix) => return l,
                Ok(Ok(Some(l))) => println!("{l}"),
                other => panic!(
                    "{}: no line starting with {prefix:?} within {secs} s ({other:?})",
                    self.label
                ),
            }
        }
    }

    async fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("the peer reads its stdin");
        stdin.flush().await.expect("flush");
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The second Orbit node: `cluster_call --peer NAME`; commands on stdin.
async fn peer(name: &str) {
    start_node(name, 100).await;
    println!("ready");
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = stdin.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["call", node, n] => {
                let n: i64 = n.parse().unwrap_or(1);
                let r: Result<i64, _> =
                    orbit_dist::call(("counter", *node), &add(n), CALL_TIMEOUT).await;
                println!("called {node}: {r:?}");
            }
            ["quit"] => break,
            _ => println!("unknown command {line:?}"),
        }
    }
    // Leave at once: nothing of this node needs an orderly stop.
    std::process::exit(0);
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--peer") {
        return peer(args.get(2).expect("--peer NAME")).await;
    }
    let me = format!("orbit_main_{}@127.0.0.1", std::process::id());
    let node = start_node(&me, 0).await;
    println!("started {me}, serving `counter`");

    // The second Orbit node: this program again, in another OS process.
    let peer_name = format!("orbit_peer_{}@127.0.0.1", std::process::id());
    let mut cmd = Command::new(std::env::current_exe().expect("this program's path"));
    cmd.args(["--peer", &peer_name]);
    let mut peer = Peer::spawn(cmd, "the peer node");
    peer.expect("ready", 30).await;
    assert!(node.connect(&peer_name).await, "connect to {peer_name}");
    println!("connected to {peer_name}; nodes(): {:?}", node.list());

    // The same call as to a local server, with `{name, node}` as the destination.
    let r = orbit::gen_server::call_timeout::<Counter>(
        ("counter", peer_name.as_str()),
        add(5),
        CALL_TIMEOUT,
    )
    .await
    .expect("the peer's counter answers");
    println!("{me} called {peer_name}'s counter: add 5 -> {r}");
    assert_eq!(r, 105);
    peer.say(&format!("call {me} 7")).await;
    let line = peer.expect("called ", 10).await;
    println!("{peer_name} {line}");
    assert!(line.ends_with("Ok(7)"), "{line}");

    if on_path("elixir") {
        let ex_name = format!("ex_{}@127.0.0.1", std::process::id());
        let code = format!(
            r#"
            defmodule ExCounter do
              use GenServer
              def init(n), do: {{:ok, n}}
              def handle_call(%{{op: "add", n: k}}, _from, s), do: {{:reply, s + k, s + k}}
              def handle_call(%{{op: "get"}}, _from, s), do: {{:reply, s, s}}
            end
            {{:ok, _}} = GenServer.start_link(ExCounter, 1000, name: :ex_counter)
            orbit = :"{me}"
            true = Node.connect(orbit)
            r = GenServer.call({{:counter, orbit}}, %{{op: "add", n: 100}})
            IO.puts("elixir called orbit: #{{r}}")
            IO.puts("ready")
            IO.gets("")
            "#
        );
        let mut cmd = Command::new("elixir");
        cmd.args(["--name", &ex_name, "--cookie", COOKIE, "-e", &code]);
        let mut ex = Peer::spawn(cmd, "the elixir node");
        let line = ex.expect("elixir called orbit: ", 60).await;
        println!("{ex_name}: {line}");
        assert_eq!(line, "elixir called orbit: 107");
        ex.expect("ready", 10).await;
        let r: i64 = orbit_dist::call(("ex_counter", ex_name.as_str()), &add(1), CALL_TIMEOUT)
            .await
            .expect("the Elixir counter answers");
        println!("{me} called {ex_name}'s :ex_counter: add 1 -> {r}");
        assert_eq!(r, 1001);
        ex.stop().await;
    } else {
        println!("elixir is not on PATH: skipping the Elixir node (install elixir to see Orbit and Elixir call each other)");
    }

    peer.say("quit").await;
    let _ = tokio::time::timeout(Duration::from_secs(5), peer.child.wait()).await;
    peer.stop().await;
    println!("done");
}
