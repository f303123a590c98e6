//! `orbit_cluster::start` replaces the wire's built-in `rex` with the full legacy rex:
//! an Elixir node gets answers to the C-node form, `features_request` and
//! `rpc:block_call`, and `rpc:call` (erpc in OTP 25) is answered by `orbit_cluster::erpc`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const COOKIE: &str = "orbit_cluster_test_cookie";

/// An Elixir node running `code`, its stdout lines on a channel; killed on drop.
struct Elixir {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Elixir {
    fn start(name: &str, code: &str) -> Elixir {
        let mut child = Command::new("elixir")
            .args(["--name", name, "--cookie", COOKIE, "-e", code])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("elixir runs (install elixir: scripts/test does)");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("[elixir] {l}");
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Elixir {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The first line starting with `prefix` within `secs`.
    fn expect(&mut self, prefix: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no line {prefix:?} within {secs}s; seen {:?}", self.seen),
            }
        }
    }
}

impl Drop for Elixir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn cluster_rex_answers_the_legacy_forms() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pid = std::process::id();
    let name = format!("orbit_rex_{pid}@127.0.0.1");
    let node = rt
        .block_on(orbit_dist::Node::start(
            &name,
            orbit_dist::Options::cookie(COOKIE),
        ))
        .expect("node starts");
    orbit_cluster::start(&node).expect("services register");
    assert!(orbit_dist::service::is_registered("rex"));

    let code = format!(
        r#"
        orbit = :"{name}"
        true = Node.connect(orbit)
        send({{:rex, orbit}}, {{self(), {{:call, :erlang, :node, [], :user}}}})
        receive do {{:rex, v}} -> IO.puts("cnode #{{inspect(v)}}") after 5000 -> IO.puts("cnode none") end
        send({{:rex, orbit}}, {{self(), {{:call, :nomod, :nofun, [1], :user}}}})
        receive do {{:rex, v}} -> IO.puts("cnode_undef #{{inspect(v)}}") after 5000 -> IO.puts("cnode_undef none") end
        send({{:rex, orbit}}, {{self(), :features_request}})
        receive do {{:features_reply, n, f}} -> IO.puts("features #{{inspect({{n, f}})}}") after 5000 -> IO.puts("features none") end
        IO.puts("block_call #{{inspect(:rpc.block_call(orbit, :erlang, :node, [], 5000))}}")
        IO.puts("block_undef #{{inspect(:rpc.block_call(orbit, :nomod, :nofun, [1], 5000))}}")
        {{us, r}} = :timer.tc(fn -> :rpc.call(orbit, :erlang, :node, [], 5000) end)
        IO.puts("rpc #{{inspect(r)}} fast=#{{us < 1_000_000}}")
        IO.gets("")
        "#
    );
    let mut ex = Elixir::start(&format!("ex_rex_{pid}@127.0.0.1"), &code);
    assert_eq!(ex.expect("cnode ", 20), format!("cnode :\"{name}\""));
    assert_eq!(
        ex.expect("cnode_undef ", 10),
        "cnode_undef {:badrpc, {:EXIT, {:undef, [{:nomod, :nofun, [1], []}]}}}"
    );
    assert_eq!(
        ex.expect("features ", 10),
        format!("features {{:\"{name}\", [:erpc]}}")
    );
    assert_eq!(
        ex.expect("block_call ", 10),
        format!("block_call :\"{name}\"")
    );
    assert_eq!(
        ex.expect("block_undef ", 10),
        "block_undef {:badrpc, {:EXIT, {:undef, [{:nomod, :nofun, [1], []}]}}}"
    );
    assert_eq!(ex.expect("rpc ", 10), format!("rpc :\"{name}\" fast=true"));
}
