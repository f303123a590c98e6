//! Shared test helpers: one tokio runtime and one Orbit node per test binary, and real
//! BEAM nodes (`erl`, `elixir`) as child processes whose output lines are awaited with
//! bounded waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

pub const COOKIE: &str = "orbit_test_cookie";

/// The runtime every test of the binary runs on (node tasks outlive single tests).
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "orbit_dist=info".into()),
            )
            .with_writer(std::io::stderr)
            .try_init();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A unique long node name for this test process (`prefix_PID[_N]@127.0.0.1`).
pub fn unique(prefix: &str) -> String {
    format!("{}@127.0.0.1", unique_alive(prefix))
}

/// A unique name part (before `@`) for this test process.
pub fn unique_alive(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    match N.fetch_add(1, Ordering::Relaxed) {
        0 => format!("{prefix}_{}", std::process::id()),
        n => format!("{prefix}_{}_{n}", std::process::id()),
    }
}

/// This machine's short hostname (up to the first dot), the host of short names.
pub fn short_host() -> String {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    h.trim()
        .split('.')
        .next()
        .unwrap_or("localhost")
        .to_string()
}

/// This binary's Orbit node (started once).
pub fn node(prefix: &str) -> orbit_dist::Node {
    node_with(prefix, orbit_dist::Options::cookie(COOKIE))
}

/// This binary's Orbit node, started once with `opts`.
pub fn node_with(prefix: &str, opts: orbit_dist::Options) -> orbit_dist::Node {
    node_named(|| unique(prefix), opts)
}

/// This binary's Orbit node, started once as `name()` with `opts`.
pub fn node_named(name: impl FnOnce() -> String, opts: orbit_dist::Options) -> orbit_dist::Node {
    static NODE: OnceLock<orbit_dist::Node> = OnceLock::new();
    *NODE.get_or_init(|| {
        let name = name();
        rt().block_on(async move { orbit_dist::Node::start(&name, opts).await.unwrap() })
    })
}

/// An `orbit-node` child process (see `src/bin/orbit-node.rs`), waited for until ready.
pub fn orbit_node(prefix: &str, hidden: bool) -> Peer {
    let name = unique(prefix);
    let mut args = vec![COOKIE];
    if hidden {
        args.push("hidden");
    }
    orbit_node_with(&name, &args, &[])
}

/// An `orbit-node NAME ARGS...` child with extra environment variables, waited for
/// until ready.
pub fn orbit_node_with(name: &str, args: &[&str], env: &[(&str, &str)]) -> Peer {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orbit-node"));
    cmd.arg(name).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Peer::command(cmd, name.to_string());
    p.expect("ready ", 30);
    p
}

/// A BEAM (or any) child process whose stdout lines can be awaited.
pub struct Peer {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Peer {
    fn spawn(mut cmd: Command, name: String) -> Peer {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start peer");
        let out = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(l) = line else { break };
                eprintln!("[peer] {l}");
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Peer {
            name,
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// `erl -name NAME -setcookie COOKIE -noshell -eval CODE`.
    pub fn erl(prefix: &str, cookie: &str, code: &str) -> Peer {
        let name = unique(prefix);
        let mut cmd = Command::new("erl");
        cmd.args([
            "-noshell",
            "-name",
            &name,
            "-setcookie",
            cookie,
            "-eval",
            code,
        ]);
        Peer::spawn(cmd, name)
    }

    /// `elixir --name NAME --cookie COOKIE -e CODE`.
    pub fn elixir(prefix: &str, cookie: &str, code: &str) -> Peer {
        let name = unique(prefix);
        let mut cmd = Command::new("elixir");
        cmd.args(["--name", &name, "--cookie", cookie, "-e", code]);
        Peer::spawn(cmd, name)
    }

    /// `elixir --sname NAME --cookie COOKIE -e CODE`: a short name on this host.
    pub fn elixir_sname(prefix: &str, cookie: &str, code: &str) -> Peer {
        let alive = unique_alive(prefix);
        let mut cmd = Command::new("elixir");
        cmd.args(["--sname", &alive, "--cookie", cookie, "-e", code]);
        Peer::spawn(cmd, format!("{alive}@{}", short_host()))
    }

    /// `elixir --name NAME -e CODE` with no cookie option (it reads
    /// `$HOME/.erlang.cookie`) and `HOME` set to `home`.
    pub fn elixir_home(prefix: &str, home: &std::path::Path, code: &str) -> Peer {
        let name = unique(prefix);
        let mut cmd = Command::new("elixir");
        cmd.args(["--name", &name, "-e", code]).env("HOME", home);
        Peer::spawn(cmd, name)
    }

    /// Any command.
    pub fn command(cmd: Command, name: String) -> Peer {
        Peer::spawn(cmd, name)
    }

    /// Waits (at most `secs`) for a line starting with `prefix`; returns the line.
    pub fn expect(&mut self, prefix: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "{}: no line starting with {prefix:?} within {secs}s; seen: {:?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Writes a line to the child's stdin.
    pub fn say(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// The child's OS pid (for `kill -STOP` and the like).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for a node event matching `f`, at most `secs`.
pub async fn wait_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<orbit_dist::NodeEvent>,
    secs: u64,
    f: impl Fn(&orbit_dist::NodeEvent) -> bool,
) -> orbit_dist::NodeEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if f(&ev) => return ev,
            Ok(Some(_)) => continue,
            other => panic!("no matching node event within {secs}s: {other:?}"),
        }
    }
}

/// The next node event about `node` (events about other nodes are skipped), at most
/// `secs`: for checking the order of one peer's nodeup / nodedown.
pub async fn next_for(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<orbit_dist::NodeEvent>,
    node: &str,
    secs: u64,
) -> orbit_dist::NodeEvent {
    use orbit_dist::NodeEvent::*;
    wait_event(rx, secs, |e| match e {
        NodeUp(n) | NodeDown(n, _) => n == node,
    })
    .await
}

/// A counter request, `%{op: "add" | "get", n: integer}` on the Elixir side (a map or
/// a struct: a struct's `__struct__` key is ignored like any unknown field).
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct CounterReq {
    pub op: String,
    pub n: i64,
}

impl CounterReq {
    pub fn add(n: i64) -> Self {
        CounterReq {
            op: "add".into(),
            n,
        }
    }
    pub fn get() -> Self {
        CounterReq {
            op: "get".into(),
            n: 0,
        }
    }
}

/// The typed GenServer the tests serve to other nodes: calls and casts take a
/// [`CounterReq`]; calls reply the total.
pub struct Counter(pub i64);

impl Counter {
    fn apply(&mut self, req: &CounterReq) {
        if req.op == "add" {
            self.0 += req.n;
        }
    }
}

impl orbit::GenServer for Counter {
    type Call = CounterReq;
    type Reply = i64;
    type Cast = CounterReq;
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        req: CounterReq,
        _from: &mut orbit::ReplyTo<i64>,
        _ctx: &mut orbit::ServerContext<Self>,
    ) -> orbit::CallReply<i64, ()> {
        self.apply(&req);
        orbit::CallReply::Reply(self.0)
    }

    async fn handle_cast(
        &mut self,
        req: CounterReq,
        _ctx: &mut orbit::ServerContext<Self>,
    ) -> orbit::Next<()> {
        self.apply(&req);
        orbit::Next::NoReply
    }
}

/// Starts a [`Counter`] registered as `name`, starting from `total`, and serves it to
/// other nodes.
pub async fn serve_counter(name: &str, total: i64) {
    orbit::gen_server::start_with(
        Counter(total),
        orbit::gen_server::StartOptions {
            name: Some(name.into()),
            link: false,
            timeout: None,
        },
    )
    .await
    .expect("counter started");
    orbit_dist::serve_gen_server::<Counter>(name);
}
