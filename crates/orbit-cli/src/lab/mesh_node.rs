//! `orbit mesh-node` (hidden): one Orbit node of `orbit lab mesh`, driven over stdin.
//!
//! The lab starts N of these as child processes (see `mesh.rs`); each starts a node
//! (`connect_all` as told), registers `mesh_ack` and answers one line per command on
//! stdout. The BEAM nodes of the lab run `mesh_node.erl`, which speaks the same lines:
//!
//! | command | answer |
//! |---|---|
//! | (at start) | `ready NAME` |
//! | `connect N1 N2 ...` | `connected OK FAILED` (all dialled at once) |
//! | `await K MS` | `reached K` once it sees K visible nodes, else `timeout HAVE` after MS |
//! | `nodes` | `nodes N1,N2,...` |
//! | `bcast ROUNDS direct T1 T2 ...` | `bcast US...`: per round, µs until every target acknowledged |
//! | `bcast ROUNDS relay T1 T2 ...` | the message goes T1 → T2 → ... and the last one acknowledges |
//! | `quit`, or stdin closed | exits |
//!
//! `mesh_ack` takes `{mesh, From, Ref, Rest}`: with `Rest = []` it sends `{ack, Ref}` to
//! `From`, else it forwards `{mesh, From, Ref, tl(Rest)}` to `{mesh_ack, hd(Rest)}`. A
//! round that is not acknowledged within 10 s is reported as `-1`.

use std::time::{Duration, Instant};

use orbit::Message;
use orbit_dist::{CookieSource, Node, NodeEvent, Options};
use orbit_term::Term;

/// How long one broadcast round may wait for its acknowledgements.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

/// `orbit mesh-node` options.
#[derive(clap::Args, Debug)]
pub struct MeshNodeOptions {
    /// The node's name (`name@host`).
    #[arg(long)]
    name: String,
    /// The cookie.
    #[arg(long)]
    cookie: String,
    /// Start outside the transitive mesh (`erl -connect_all false`).
    #[arg(long)]
    no_connect_all: bool,
}

/// Runs the node until `quit` or the end of stdin.
pub async fn run(o: MeshNodeOptions) -> Result<(), String> {
    let opts = Options {
        cookie: CookieSource::Given(o.cookie),
        connect_all: !o.no_connect_all,
        ..Options::default()
    };
    let node = Node::start(&o.name, opts)
        .await
        .map_err(|e| format!("starting node {}: {e}", o.name))?;
    let ack = orbit::spawn(ack_loop).map_err(|e| format!("starting mesh_ack: {e}"))?;
    orbit::register("mesh_ack", ack.pid()).map_err(|e| format!("registering mesh_ack: {e}"))?;
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
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["connect", nodes @ ..] => connect(node, nodes).await,
            ["await", k, ms] => match (k.parse(), ms.parse()) {
                (Ok(k), Ok(ms)) => wait_for(node, k, Duration::from_millis(ms)).await,
                _ => format!("error bad await: {line}"),
            },
            ["nodes"] => format!("nodes {}", node.list().join(",")),
            ["bcast", rounds, mode, targets @ ..] => match rounds.parse::<usize>() {
                Ok(r) => broadcast(r, *mode == "relay", targets).await,
                Err(_) => format!("error bad bcast: {line}"),
            },
            ["quit"] => break,
            _ => format!("error unknown command: {line}"),
        };
        println!("{answer}");
    }
    Ok(())
}

/// Dials every node at once; `connected OK FAILED`.
async fn connect(node: Node, nodes: &[&str]) -> String {
    let tasks: Vec<_> = nodes
        .iter()
        .map(|n| {
            let n = n.to_string();
            tokio::spawn(async move { node.connect(&n).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if matches!(t.await, Ok(true)) {
            ok += 1;
        }
    }
    format!("connected {ok} {}", nodes.len() - ok)
}

/// Waits until `k` visible nodes are connected (driven by node events).
async fn wait_for(node: Node, k: usize, within: Duration) -> String {
    let mut events = node.monitor_nodes();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if node.list().len() >= k {
            return format!("reached {k}");
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(NodeEvent::NodeUp(_) | NodeEvent::NodeDown(..))) => continue,
            _ => return format!("timeout {}", node.list().len()),
        }
    }
}

/// `rounds` broadcasts from a fresh process; `bcast US...` (µs per round, -1 when a
/// round timed out).
async fn broadcast(rounds: usize, relay: bool, targets: &[&str]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = orbit::spawn(move |mut ctx: orbit::Context<Term>| async move {
        let Some(me) = orbit::self_pid() else { return };
        let me = Term::Pid(Box::new(orbit_dist::to_wire(me)));
        let mut times = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let r = Term::Int(round as i64);
            let t0 = Instant::now();
            let want = if relay {
                let rest = targets[1.min(targets.len())..]
                    .iter()
                    .map(|t| Term::atom(t))
                    .collect();
                if let Some(first) = targets.first() {
                    send(first, me.clone(), r.clone(), Term::List(rest));
                }
                usize::from(!targets.is_empty())
            } else {
                for t in &targets {
                    send(t, me.clone(), r.clone(), Term::nil());
                }
                targets.len()
            };
            let mut got = 0;
            while got < want {
                let left = ROUND_TIMEOUT.saturating_sub(t0.elapsed());
                match ctx.recv_timeout(left).await {
                    Some(Message::Msg(Term::Tuple(el)))
                        if el.len() == 2 && el[0].as_atom() == Some("ack") && el[1] == r =>
                    {
                        got += 1
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            times.push(if got == want {
                t0.elapsed().as_micros() as i64
            } else {
                -1
            });
        }
        let _ = tx.send(times);
    });
    if let Err(e) = spawned {
        return format!("error cannot spawn the broadcaster: {e}");
    }
    match rx.await {
        Ok(times) => {
            let mut s = String::from("bcast");
            for t in times {
                s.push_str(&format!(" {t}"));
            }
            s
        }
        Err(_) => "error the broadcaster ended without an answer".into(),
    }
}

/// `{mesh, From, Ref, Rest}` to `{mesh_ack, node}`; a failed send is logged (the round
/// then times out and says so).
fn send(node: &str, from: Term, r: Term, rest: Term) {
    let msg = Term::tuple(vec![Term::atom("mesh"), from, r, rest]);
    if let Err(e) = orbit_dist::send_named(node, "mesh_ack", &msg) {
        tracing::warn!(%node, error = %e, "mesh broadcast send failed");
    }
}

/// The registered `mesh_ack` process.
async fn ack_loop(mut ctx: orbit::Context<Term>) {
    loop {
        let Message::Msg(Term::Tuple(el)) = ctx.recv().await else {
            continue;
        };
        let [tag, Term::Pid(from), r, rest] = el.as_slice() else {
            continue;
        };
        if tag.as_atom() != Some("mesh") {
            continue;
        }
        match rest {
            Term::List(rest) if !rest.is_empty() => {
                if let Some(next) = rest[0].as_atom() {
                    let fwd = Term::List(rest[1..].to_vec());
                    send(next, Term::Pid(from.clone()), r.clone(), fwd);
                }
            }
            _ => {
                let ack = Term::tuple(vec![Term::atom("ack"), r.clone()]);
                let _ = orbit::send(orbit_dist::from_wire(from), ack);
            }
        }
    }
}
