//! `orbit-node`: a small Orbit node for tests, benchmarks and trying the cluster by
//! hand. It serves:
//!
//! - `echo`: on `{From, Msg}` sends `Msg` back to `From` (as `dist_bench.erl`'s echo);
//! - `sink`: counts messages; on `{From, count}` replies `{count, N}`;
//! - `counter`: a GenServer reachable from other nodes; calls are maps
//!   `%{op: "add" | "get", n: integer}` and replies the new total;
//! - `mirror`: on `{From, Msg}` sends `{self(), Msg}` back to `From` (so the sender
//!   learns a remote pid);
//! - `unserved`: a GenServer like `counter`, registered but deliberately not served to
//!   other nodes (calls to it fail at once with `CallError::NotServed`);
//!
//! and reads commands on stdin, one per line, answering on stdout:
//! `connect NODE` (answers `connect NODE true`, or `connect NODE false: why`),
//! `ping NODE`, `list`, `call NODE N` (adds N to NODE's counter), `quit`. Node events
//! are printed as `nodeup NODE` / `nodedown NODE`.
//!
//! Usage: `orbit-node NAME COOKIE [hidden | no-connect-all]` (`no-connect-all`: outside
//! the transitive mesh, as `erl -connect_all false`); a COOKIE of `-` takes the default source
//! (`ORBIT_COOKIE`, else `~/.erlang.cookie`).

use std::time::Duration;

use orbit::{CallReply, GenServer, ReplyTo, ServerContext};
use orbit_dist::{Node, NodeEvent, Options};
use orbit_term::Term;
use serde::Deserialize;

#[derive(Deserialize)]
struct CounterReq {
    op: String,
    n: i64,
}

struct Counter(i64);

impl GenServer for Counter {
    type Call = CounterReq;
    type Reply = i64;
    type Cast = i64;
    type Info = ();
    type Continue = ();

    async fn handle_call(
        &mut self,
        req: CounterReq,
        _from: &mut ReplyTo<i64>,
        _ctx: &mut ServerContext<Self>,
    ) -> CallReply<i64, ()> {
        if req.op == "add" {
            self.0 += req.n;
        }
        CallReply::Reply(self.0)
    }

    async fn handle_cast(&mut self, n: i64, _ctx: &mut ServerContext<Self>) -> orbit::Next<()> {
        self.0 += n;
        orbit::Next::NoReply
    }
}

fn main() {
    // Busy-wait briefly before a worker sleeps, as a BEAM node's schedulers do.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(orbit_dist::spin_before_park)
        .build();
    match rt {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("orbit-node: cannot start the tokio runtime: {e}");
            std::process::exit(1);
        }
    }
}

async fn run() {
    let _ = tracing_subscriber_init();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: orbit-node NAME COOKIE [hidden | no-connect-all]");
        std::process::exit(2);
    }
    let mut opts = match args[2].as_str() {
        "-" => Options::default(),
        c => Options::cookie(c),
    };
    opts.hidden = args.get(3).is_some_and(|a| a == "hidden");
    opts.connect_all = args.get(3).is_none_or(|a| a != "no-connect-all");
    let node = match Node::start(&args[1], opts).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("orbit-node: {e}");
            std::process::exit(1);
        }
    };
    let echo = orbit::spawn(echo_loop).expect("spawn echo");
    orbit::register("echo", echo.pid()).expect("register echo");
    let sink = orbit::spawn(sink_loop).expect("spawn sink");
    orbit::register("sink", sink.pid()).expect("register sink");
    let counter = orbit::gen_server::start_with(
        Counter(0),
        orbit::gen_server::StartOptions {
            name: Some("counter".into()),
            link: false,
            timeout: None,
        },
    )
    .await
    .expect("start counter");
    let _ = counter;
    orbit_dist::serve_gen_server::<Counter>("counter");
    let mirror = orbit::spawn(mirror_loop).expect("spawn mirror");
    orbit::register("mirror", mirror.pid()).expect("register mirror");
    orbit::gen_server::start_named(Counter(0), "unserved", false)
        .await
        .expect("start unserved");

    let mut events = node.monitor_nodes();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                NodeEvent::NodeUp(n) => println!("nodeup {n}"),
                NodeEvent::NodeDown(n, _) => println!("nodedown {n}"),
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
            ["ping", n] => println!("ping {n} {:?}", node.ping(n).await),
            ["list"] => println!("list {}", node.list().join(",")),
            ["call", n, k] => {
                let k: i64 = k.parse().unwrap_or(0);
                #[derive(serde::Serialize)]
                struct Req<'a> {
                    op: &'a str,
                    n: i64,
                }
                let r: Result<i64, _> = orbit_dist::call(
                    ("counter", *n),
                    &Req { op: "add", n: k },
                    Duration::from_secs(5),
                )
                .await;
                println!("call {n} {r:?}");
            }
            ["quit"] => break,
            _ => println!("unknown {line}"),
        }
    }
}

fn tracing_subscriber_init() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "orbit_dist=info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init()
}

async fn echo_loop(mut ctx: orbit::Context<Term>) {
    loop {
        if let orbit::Message::Msg(Term::Tuple(mut el)) = ctx.recv().await {
            if el.len() == 2 {
                if let Term::Pid(p) = &el[0] {
                    let to = orbit_dist::convert::pid_from_wire(p);
                    let _ = orbit::send(to, el.pop().unwrap_or_else(Term::nil));
                }
            }
        }
    }
}

async fn sink_loop(mut ctx: orbit::Context<Term>) {
    let mut n: i64 = 0;
    loop {
        if let orbit::Message::Msg(m) = ctx.recv().await {
            n += 1;
            if let Term::Tuple(el) = &m {
                if el.len() == 2 && el[1].as_atom() == Some("count") {
                    if let Term::Pid(p) = &el[0] {
                        let to = orbit_dist::convert::pid_from_wire(p);
                        let reply = Term::tuple(vec![Term::atom("count"), Term::Int(n - 1)]);
                        let _ = orbit::send(to, reply);
                    }
                }
            }
        }
    }
}

async fn mirror_loop(mut ctx: orbit::Context<Term>) {
    let me = orbit_dist::to_wire(ctx.pid());
    loop {
        if let orbit::Message::Msg(Term::Tuple(mut el)) = ctx.recv().await {
            if el.len() == 2 {
                if let Term::Pid(p) = &el[0] {
                    let to = orbit_dist::convert::pid_from_wire(p);
                    let msg = el.pop().unwrap_or_else(Term::nil);
                    let _ =
                        orbit::send(to, Term::tuple(vec![Term::Pid(Box::new(me.clone())), msg]));
                }
            }
        }
    }
}
