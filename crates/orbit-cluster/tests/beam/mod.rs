//! Support for the pg / PubSub interop tests: one Orbit node per test binary, an inbox
//! (`pg_inbox`) for replies from BEAM peers and one (`pg_events`) for their events, and
//! BEAM peers that evaluate lines from stdin (a small REPL): `D expr` sends `{reply, V}`
//! to the inbox over distribution, `P expr` prints `val V` on stdout (for when the
//! connection is down).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use orbit_term::Term;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

pub const COOKIE: &str = "orbit_pg_cookie";

pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

pub struct Orbit {
    pub node: orbit_dist::Node,
    pub name: String,
    replies: Mutex<UnboundedReceiver<Term>>,
    events: Mutex<UnboundedReceiver<Term>>,
}

/// A process registered as `name` that forwards every Term it receives to a channel.
pub fn forwarder(name: Option<&str>) -> (orbit::Pid, UnboundedReceiver<Term>) {
    let (tx, rx) = unbounded_channel();
    let h = orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
        loop {
            if let orbit::Message::Msg(t) = ctx.recv().await {
                if tx.send(t).is_err() {
                    break;
                }
            }
        }
    })
    .unwrap();
    if let Some(n) = name {
        orbit::register(n, h.pid()).unwrap();
    }
    (h.pid(), rx)
}

pub fn orbit(prefix: &str) -> &'static Orbit {
    static O: OnceLock<Orbit> = OnceLock::new();
    O.get_or_init(|| {
        let name = format!("{prefix}_{}@127.0.0.1", std::process::id());
        rt().block_on(async {
            let node = orbit_dist::Node::start(&name, orbit_dist::Options::cookie(COOKIE))
                .await
                .unwrap();
            let (_, replies) = forwarder(Some("pg_inbox"));
            let (_, events) = forwarder(Some("pg_events"));
            Orbit {
                node,
                name,
                replies: Mutex::new(replies),
                events: Mutex::new(events),
            }
        })
    })
}

impl Orbit {
    /// The next message on `pg_events`, at most `secs`.
    pub fn event(&self, secs: u64) -> Term {
        let mut rx = self.events.lock().unwrap();
        rt().block_on(async {
            tokio::time::timeout(Duration::from_secs(secs), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no event within {secs}s"))
                .expect("events inbox alive")
        })
    }
}

pub fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        || Command::new("which")
            .arg(cmd)
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

pub struct Beam {
    pub name: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

const ERL_REPL: &str = r#"
Orbit = list_to_atom(os:getenv("ORBIT_NODE")),
true = net_kernel:connect_node(Orbit),
Eval = fun(Line, B) ->
  try
    {ok, Toks, _} = erl_scan:string(Line),
    {ok, Es} = erl_parse:parse_exprs(Toks),
    {value, V, B1} = erl_eval:exprs(Es, B),
    {V, B1}
  catch C:E -> {{caught, C, E}, B} end
end,
Loop = fun L(B) ->
  case io:get_line("") of
    eof -> halt();
    [$D, $\s | Line] -> {V, B2} = Eval(Line, B), {pg_inbox, Orbit} ! {reply, V}, L(B2);
    [$P, $\s | Line] -> {V, B2} = Eval(Line, B), io:format("val ~w~n", [V]), L(B2);
    _ -> L(B)
  end
end,
{pg_inbox, Orbit} ! {reply, ready},
Loop(erl_eval:add_binding('Orbit', Orbit, erl_eval:new_bindings())).
"#;

const EX_REPL: &str = r#"
orbit = String.to_atom(System.get_env("ORBIT_NODE"))
true = Node.connect(orbit)
{:ok, _} = Application.ensure_all_started(:phoenix_pubsub)
children = for n <- [1, 3] do
  name = Module.concat(OrbitTest, "PubSub#{n}")
  Supervisor.child_spec({Phoenix.PubSub, name: name, pool_size: n}, id: name)
end
{:ok, _} = Supervisor.start_link(children, strategy: :one_for_one)
defmodule T do
  def sub(ps, topic, orbit) do
    me = self()
    pid = spawn(fn ->
      Phoenix.PubSub.subscribe(ps, topic)
      send(me, :subbed)
      loop = fn loop -> receive do m -> send({:pg_events, orbit}, {:got, topic, m}); loop.(loop) end end
      loop.(loop)
    end)
    receive do :subbed -> pid end
  end
  def eval(line, b) do
    try do
      {v, b1} = Code.eval_string(line, b)
      {v, b1}
    catch c, e -> {{:caught, c, e}, b}
    end
  end
  def loop(b, orbit) do
    case IO.gets("") do
      :eof -> System.halt(0)
      "D " <> line -> {v, b2} = eval(line, b); send({:pg_inbox, orbit}, {:reply, v}); loop(b2, orbit)
      "P " <> line -> {v, b2} = eval(line, b); IO.puts("val #{inspect(v)}"); loop(b2, orbit)
      _ -> loop(b, orbit)
    end
  end
end
send({:pg_inbox, orbit}, {:reply, :ready})
T.loop([orbit: orbit], orbit)
"#;

/// The beamlibs' ERL_LIBS, or None (with the reason printed).
pub fn beamlibs() -> Option<String> {
    let out = Command::new("/work/shared/beamlibs/build.sh")
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !out.status.success() {
        println!("beamlibs build failed");
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Beam {
    /// Any child that connects to the Orbit node and sends `{reply, ready}` first.
    pub fn spawn(mut cmd: Command, name: String, o: &Orbit) -> Beam {
        cmd.env("ORBIT_NODE", &o.name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start BEAM peer");
        let out = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(l) = line else { break };
                eprintln!("[beam] {l}");
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut b = Beam {
            name,
            child,
            stdin,
            lines: rx,
        };
        let ready = b.reply(o, 60);
        assert_eq!(ready, Term::atom("ready"));
        b
    }

    /// This test binary run again as an Orbit node `PREFIX_PID@127.0.0.1`: its test
    /// `child` runs with `var` set to the node's name (and `env`), and must end in
    /// [`serve_parent`].
    pub fn orbit_child(o: &Orbit, prefix: &str, var: &str, env: &[(&str, &str)]) -> Beam {
        let name = format!("{prefix}_{}@127.0.0.1", std::process::id());
        let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
        cmd.args(["--exact", "child", "--nocapture", "--test-threads", "1"])
            .env(var, &name)
            .envs(env.iter().copied());
        Beam::spawn(cmd, name, o)
    }

    /// `erl` with `-kernel start_pg true`, connected to the Orbit node.
    pub fn erl(prefix: &str, o: &Orbit) -> Beam {
        let name = format!("{prefix}_{}@127.0.0.1", std::process::id());
        let mut cmd = Command::new("erl");
        cmd.args([
            "-noshell",
            "-name",
            &name,
            "-setcookie",
            COOKIE,
            "-kernel",
            "start_pg",
            "true",
            "-eval",
            ERL_REPL,
        ]);
        Beam::spawn(cmd, name, o)
    }

    /// `elixir` with phoenix_pubsub (`OrbitTest.PubSub1`, pool 1, and `OrbitTest.PubSub3`,
    /// pool 3), connected to the Orbit node.
    pub fn elixir(prefix: &str, o: &Orbit, erl_libs: &str) -> Beam {
        let name = format!("{prefix}_{}@127.0.0.1", std::process::id());
        let mut cmd = Command::new("elixir");
        cmd.env("ERL_LIBS", erl_libs)
            .args(["--name", &name, "--cookie", COOKIE, "-e", EX_REPL]);
        Beam::spawn(cmd, name, o)
    }

    fn reply(&mut self, o: &Orbit, secs: u64) -> Term {
        let mut rx = o.replies.lock().unwrap();
        rt().block_on(async {
            let t = tokio::time::timeout(Duration::from_secs(secs), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: no reply within {secs}s", self.name))
                .expect("inbox alive");
            match t {
                Term::Tuple(mut e) if e.len() == 2 && e[0].as_atom() == Some("reply") => {
                    e.remove(1)
                }
                other => panic!("unexpected inbox message {other}"),
            }
        })
    }

    /// Evaluates `expr` (Erlang: ending with `.`) on the peer; its value, over the wire.
    pub fn eval(&mut self, o: &Orbit, expr: &str) -> Term {
        writeln!(self.stdin, "D {expr}").unwrap();
        self.stdin.flush().unwrap();
        let v = self.reply(o, 20);
        if let Term::Tuple(e) = &v {
            if e.first().and_then(Term::as_atom) == Some("caught") {
                panic!("{}: {expr} raised {v}", self.name);
            }
        }
        v
    }

    /// Evaluates `expr` and returns the printed value (no distribution needed).
    pub fn eval_print(&mut self, expr: &str) -> String {
        writeln!(self.stdin, "P {expr}").unwrap();
        self.stdin.flush().unwrap();
        loop {
            let l = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("{}: nothing printed for {expr}", self.name));
            if let Some(v) = l.strip_prefix("val ") {
                return v.to_string();
            }
        }
    }
}

/// An Orbit child node's command loop (this test binary run again by [`Beam::orbit_child`]):
/// sends `{reply, ready}` to the parent's `pg_inbox`, then answers every stdin line, split
/// on whitespace (`D` first, as [`Beam::eval`] writes it), with `{reply, handle(words)}`,
/// until stdin closes.
pub fn serve_parent(parent: &str, mut handle: impl FnMut(&[&str]) -> Term) {
    let reply = |t: Term| {
        let m = Term::tuple(vec![Term::atom("reply"), t]);
        orbit_dist::send_named(parent, "pg_inbox", &m).unwrap();
    };
    reply(Term::atom("ready"));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        reply(handle(&words));
    }
}

impl Drop for Beam {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Re-checks `f` until it holds, at most `secs` (each check is a round trip to a peer or
/// a read of the table, so the loop waits on those events; it fails loudly).
pub fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut pause = Duration::from_millis(5);
    while !f() {
        assert!(Instant::now() < deadline, "not within {secs}s: {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The pids in a term list, as Orbit pids, sorted.
pub fn pids(t: &Term) -> Vec<orbit::Pid> {
    let Term::List(l) = t else {
        return Vec::new();
    };
    let mut v: Vec<orbit::Pid> = l
        .iter()
        .filter_map(|e| match e {
            Term::Pid(p) => Some(orbit_dist::from_wire(p)),
            _ => None,
        })
        .collect();
    v.sort_by_key(|p| format!("{p:?}"));
    v
}

pub fn sorted(mut v: Vec<orbit::Pid>) -> Vec<orbit::Pid> {
    v.sort_by_key(|p| format!("{p:?}"));
    v
}

/// A local process that waits for any message and then exits `kill`-like (a panic), or
/// lives until killed.
pub fn member() -> orbit::Pid {
    orbit::spawn(|mut ctx: orbit::Context<Term>| async move {
        let _ = ctx.recv().await;
    })
    .unwrap()
    .pid()
}
