//! `orbit node`: a standalone Orbit node that joins a cluster.
//!
//! `orbit node --name app@host --cookie C [--cluster cluster.toml]` starts the node
//! (registering with EPMD, accepting peers), runs the topologies of the cluster file
//! (libcluster's strategies, see `orbit_cluster::strategy::config`), prints each
//! membership change on stdout as `nodeup NODE` / `nodedown NODE REASON` (logs go to
//! stderr; `RUST_LOG` filters them), serves a demo service (`echo`, a registered process
//! that sends `Msg` back to `From` for each `{From, Msg}`, so a peer can check the node
//! answers: `send({:echo, node}, {self(), :hi})`), and on SIGTERM or SIGINT leaves: stops the
//! strategies, closes every connection (peers see `nodedown`) and exits 0. A bad
//! cluster file, a node that cannot start, or a topology that stops on an error (a
//! Gossip port it cannot bind) exits 1 with the reason, after leaving the same way.
//!
//! With `--dashboard 127.0.0.1:PORT` it also serves the live dashboard, its JSON API
//! and Prometheus `/metrics` (crate `orbit-observe`); a non-loopback address needs
//! `--dashboard-token` (16+ characters).
//!
//! ```text
//! $ cat cluster.toml
//! [topologies.lan]
//! strategy = "Cluster.Strategy.Gossip"
//! [topologies.lan.config]
//! multicast_addr = "127.255.255.255"
//! broadcast_only = true
//! secret = "s3cret"
//! $ orbit node --name app@127.0.0.1 --cookie-file ./cookie --cluster cluster.toml
//! started app@127.0.0.1 port 40123
//! nodeup other@127.0.0.1
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use orbit_cluster::strategy::{config, Cluster};
use orbit_dist::{CookieSource, Node, NodeEvent, Options};

/// `orbit node` options.
#[derive(Args, Debug)]
pub struct NodeOptions {
    /// The node's name: `name@host` (a host with a dot or an IP: long names).
    #[arg(long)]
    name: String,
    /// The cookie (else `--cookie-file`, `ORBIT_COOKIE` or `~/.erlang.cookie`).
    #[arg(long, conflicts_with = "cookie_file")]
    cookie: Option<String>,
    /// A file holding the cookie (same rules as `~/.erlang.cookie`).
    #[arg(long)]
    cookie_file: Option<PathBuf>,
    /// The topology file (TOML with libcluster's keys); none: connect to nobody.
    #[arg(long)]
    cluster: Option<PathBuf>,
    /// Port to accept peers on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Keep out of the transitive mesh (`erl -connect_all false`): connect only to the
    /// nodes the topologies find, not to their peers, and let no peers connect to each
    /// other through this node (a partial mesh).
    #[arg(long)]
    no_connect_all: bool,
    /// Serve the live dashboard, its JSON API and Prometheus `/metrics` on this
    /// address (e.g. 127.0.0.1:4000); prints `dashboard http://ADDR/`.
    #[arg(long)]
    dashboard: Option<std::net::SocketAddr>,
    /// The token the dashboard requires (needed when it listens beyond loopback;
    /// else `ORBIT_DASHBOARD_TOKEN`).
    #[arg(long, env = "ORBIT_DASHBOARD_TOKEN")]
    dashboard_token: Option<String>,
}

/// Runs the node until SIGTERM/SIGINT.
pub async fn run(o: NodeOptions) -> Result<(), String> {
    let topologies = match &o.cluster {
        Some(p) => config::load(p).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let cookie = match (o.cookie, o.cookie_file) {
        (Some(c), _) => CookieSource::Given(c),
        (None, Some(f)) => CookieSource::File(f),
        (None, None) => CookieSource::Default,
    };
    let opts = Options {
        cookie,
        listen_port: o.port,
        connect_all: !o.no_connect_all,
        ..Options::default()
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    // Before anything registers metrics (pools and caches bind to the recorder at start).
    let dashboard = match o.dashboard {
        Some(addr) => {
            let mut d = orbit_observe::ObserveOptions::new(addr);
            d.token = o.dashboard_token.clone();
            Some(
                orbit_observe::serve(d)
                    .await
                    .map_err(|e| format!("starting the dashboard: {e}"))?,
            )
        }
        None => None,
    };
    let node = Node::start(&o.name, opts)
        .await
        .map_err(|e| format!("starting node {}: {e}", o.name))?;
    let echo = orbit::spawn(echo_loop).map_err(|e| format!("starting the echo service: {e}"))?;
    orbit::register("echo", echo.pid()).map_err(|e| format!("registering echo: {e}"))?;
    let mut events = node.monitor_nodes();
    let mut cluster = Cluster::start(topologies, Arc::new(node));
    println!("started {} port {}", node.name(), node.port());
    if let Some(d) = &dashboard {
        println!("dashboard http://{}/", d.local_addr());
    }
    tracing::info!(node = %node.name(), topologies = ?cluster.topologies(), "node running");
    let mut failure = None;
    let why = loop {
        tokio::select! {
            (topology, e) = cluster.failed() => {
                failure = Some(format!("topology {topology} stopped: {e}"));
                break "a topology failed";
            }
            ev = events.recv() => match ev {
                Some(NodeEvent::NodeUp(n)) => println!("nodeup {n}"),
                Some(NodeEvent::NodeDown(n, why)) => println!("nodedown {n} {why}"),
                None => break "node events ended",
            },
            _ = term.recv() => break "SIGTERM",
            _ = tokio::signal::ctrl_c() => break "SIGINT",
        }
    };
    tracing::info!(reason = why, "leaving the cluster");
    cluster.stop().await;
    let peers: Vec<String> = node.list().into_iter().chain(node.list_hidden()).collect();
    for p in &peers {
        node.disconnect(p);
    }
    if let Some(d) = dashboard {
        d.stop();
    }
    println!("stopped ({why}); closed {} connection(s)", peers.len());
    match failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// The `echo` demo service: `{From, Msg}` → `Msg` to `From`; anything else is dropped.
async fn echo_loop(mut ctx: orbit::Context<orbit_term::Term>) {
    loop {
        if let orbit::Message::Msg(orbit_term::Term::Tuple(mut el)) = ctx.recv().await {
            if el.len() == 2 {
                if let (Some(msg), Some(orbit_term::Term::Pid(p))) = (el.pop(), el.first()) {
                    let _ = orbit::send(orbit_dist::from_wire(p), msg);
                }
            }
        }
    }
}
