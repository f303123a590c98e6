//! `orbit cluster status`: the cluster view from the command line.
//!
//! Starts a hidden node in this process (so it appears in no node's `nodes()` and does
//! not join the mesh), asks the given nodes and every node they see for their view
//! ([`orbit_cluster::view::status`]: the `orbit_cluster_view` service on Orbit nodes,
//! `rex` on BEAM nodes) and prints one row per node with the nodes it sees, the
//! partitions found, and, with `--history`, each node's timestamped `nodeup`/`nodedown`
//! changes; `--json` prints the whole [`orbit_cluster::view::ClusterView`] instead.
//! `--watch MS` then keeps taking the view and prints each change in who sees whom
//! ([`orbit_cluster::view::Tracker`]), also for BEAM nodes, which keep no history.
//! Exits 0 when every node sees every other, 2 when the view shows a partition, 1 on
//! an error.

use std::time::Duration;

use clap::{Args, Subcommand};
use orbit_dist::{CookieSource, Node, Options as NodeOptions};

/// `orbit cluster ...`.
#[derive(Args)]
pub struct Options {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Which node sees which, partitions, and each node's history of changes.
    /// Exits 2 when the view shows a partition.
    Status(Status),
}

#[derive(Args)]
struct Status {
    /// Nodes to start from (`name@host`); the nodes they see are queried too.
    #[arg(required = true)]
    nodes: Vec<String>,
    /// The cluster's cookie (default: `ORBIT_COOKIE`, else `~/.erlang.cookie`).
    #[arg(long)]
    cookie: Option<String>,
    /// This observer's node name (default: `orbit_status_PID` on `127.0.0.1` for long
    /// names, on this host for short ones, following the first node's kind).
    #[arg(long)]
    name: Option<String>,
    /// Print the view as JSON.
    #[arg(long)]
    json: bool,
    /// Also print each node's history of changes.
    #[arg(long)]
    history: bool,
    /// How long to wait for each node's answer, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Keep watching: take the view again every MS milliseconds and print each change
    /// (`AT_MS OBSERVER nodeup|nodedown NODE`, or a JSON line per change with
    /// `--json`) and when a partition appears or heals.
    #[arg(long, value_name = "MS")]
    watch: Option<u64>,
    /// With `--watch`: stop after this many views (default: until interrupted).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

/// Runs the command; the process's exit code on success (0, or 2 for a partition).
pub async fn run(opts: Options) -> Result<u8, String> {
    match opts.command {
        Command::Status(s) => status(s).await,
    }
}

async fn status(s: Status) -> Result<u8, String> {
    let name = s.name.clone().unwrap_or_else(|| {
        let long = s.nodes[0]
            .split_once('@')
            .is_some_and(|(_, h)| h.contains('.') || h.parse::<std::net::IpAddr>().is_ok());
        let alive = format!("orbit_status_{}", std::process::id());
        if long {
            format!("{alive}@127.0.0.1")
        } else {
            alive
        }
    });
    let opts = NodeOptions {
        cookie: match s.cookie {
            Some(c) => CookieSource::Given(c),
            None => CookieSource::Default,
        },
        hidden: true,
        ..NodeOptions::default()
    };
    Node::start(&name, opts)
        .await
        .map_err(|e| format!("cannot start the observer node {name}: {e}"))?;
    let view = orbit_cluster::view::status(&s.nodes, Duration::from_millis(s.timeout_ms)).await;
    if s.json {
        let j = serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?;
        println!("{j}");
    } else {
        print!("{}", view.table());
        if s.history {
            let mut all: Vec<_> = view.nodes.iter().flat_map(|n| n.history.iter()).collect();
            all.sort_by_key(|c| c.at_ms);
            println!("history:");
            for c in all {
                let what = if c.up { "nodeup" } else { "nodedown" };
                println!(
                    "  {} {} {what} {} {}",
                    c.at_ms, c.observer, c.node, c.reason
                );
            }
        }
    }
    let Some(every) = s.watch else {
        return Ok(if view.partitioned() { 2 } else { 0 });
    };
    let mut tracker = orbit_cluster::view::Tracker::new();
    tracker.update(&view);
    let mut last = view;
    let mut taken = 1u64;
    while s.count.is_none_or(|c| taken < c) {
        tokio::time::sleep(Duration::from_millis(every.max(10))).await;
        let seeds: Vec<String> = s
            .nodes
            .iter()
            .cloned()
            .chain(last.nodes.iter().map(|n| n.node.clone()))
            .collect();
        let view = orbit_cluster::view::status(&seeds, Duration::from_millis(s.timeout_ms)).await;
        taken += 1;
        for c in tracker.update(&view) {
            if s.json {
                println!("{}", serde_json::to_string(&c).map_err(|e| e.to_string())?);
            } else {
                let what = if c.up { "nodeup" } else { "nodedown" };
                println!("{} {} {what} {}", c.at_ms, c.observer, c.node);
            }
        }
        if view.findings != last.findings && !s.json {
            if view.partitioned() {
                println!("{} PARTITION:", view.taken_at_ms);
                for f in &view.findings {
                    println!("  {f}");
                }
            } else {
                println!(
                    "{} no partition: every node sees every other",
                    view.taken_at_ms
                );
            }
        }
        last = view;
    }
    Ok(if last.partitioned() { 2 } else { 0 })
}
