//! Discovery strategies: libcluster's, finding nodes and connecting to them.
//!
//! A [`ClusterStrategy`] either listens (Gossip: heartbeats arrive and trigger connects) or
//! polls (Epmd, LocalEpmd, ErlangHosts, DNSPoll, Kubernetes.DNS, Kubernetes.DNSSRV,
//! Kubernetes: a [`Poll`] source is asked for the node list, run by [`Polling`]). Every strategy ends in [`connect_nodes`], libcluster's
//! `Cluster.Strategy.connect_nodes/4`: the nodes found, minus those already connected
//! (visible or hidden) and minus this node, are connected through a [`Connector`]
//! (an [`orbit_dist::Node`] in production, a fake in tests).
//!
//! Topologies come from a TOML file with libcluster's keyword-config keys or from the
//! Rust builder ([`config`]); [`Cluster::start`] runs them, each in its own task, until
//! the returned [`Cluster`] is stopped or dropped.
//!
//! Differences from libcluster: polling strategies that run once in libcluster
//! (`Epmd` without `timeout`, `LocalEpmd`) also heal here: when a discovered node goes
//! down they retry it with backoff (0.5 s doubling to 30 s); and a node that fails to
//! connect is retried with the same backoff instead of waiting a whole interval.

pub mod config;
mod dns;
mod dns_poll;
mod epmd;
mod erlang_hosts;
mod gossip;
pub mod gossip_packet;
mod https;
mod kubernetes;
mod kubernetes_dns;
mod local_epmd;
mod poll;

use std::sync::Arc;

use futures::future::BoxFuture;
use orbit_dist::NodeEvent;
use tokio::sync::mpsc;

pub use config::{ConfigError, Topology, TopologyConfig};
pub use dns_poll::{DnsPoll, DnsPollConfig};
pub use epmd::{Epmd, EpmdConfig};
pub use erlang_hosts::{parse_hosts_erlang, ErlangHosts, ErlangHostsConfig};
pub use gossip::{Gossip, GossipConfig, GossipCounts, GossipStats};
pub use kubernetes::{IpLookupMode, Kubernetes, KubernetesConfig, NodeNameMode};
pub use kubernetes_dns::{KubernetesDns, KubernetesDnsConfig, KubernetesDnsMode};
pub use local_epmd::LocalEpmd;
pub use poll::{Backoff, Poll, Polling};

/// Why a strategy stopped.
#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    /// A socket or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (`binding the gossip socket to 0.0.0.0:45892`).
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Discovery failed in a way retrying will not fix.
    #[error("{0}")]
    Discovery(String),
}

impl StrategyError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StrategyError {
        let what = what.into();
        move |source| StrategyError::Io { what, source }
    }
}

/// What strategies connect through: this node's view of its connections.
/// [`orbit_dist::Node`] implements it; tests use fakes.
pub trait Connector: Send + Sync + 'static {
    /// This node's full name (`name@host`).
    fn self_name(&self) -> String;
    /// Every connected node, visible and hidden (`nodes(connected)`).
    fn connected(&self) -> Vec<String>;
    /// Connects to `node`; resolves to true when connected (`net_kernel:connect_node/1`).
    fn connect(&self, node: &str) -> BoxFuture<'static, bool>;
    /// Drops the connection to `node`; true when there was one.
    fn disconnect(&self, node: &str) -> bool;
    /// Node up/down events from now on (`net_kernel:monitor_nodes(true)`).
    fn events(&self) -> mpsc::UnboundedReceiver<NodeEvent>;
}

impl Connector for orbit_dist::Node {
    fn self_name(&self) -> String {
        self.name()
    }
    fn connected(&self) -> Vec<String> {
        let mut v = self.list();
        v.extend(self.list_hidden());
        v
    }
    fn connect(&self, node: &str) -> BoxFuture<'static, bool> {
        let n = *self;
        let node = node.to_string();
        Box::pin(async move {
            match n.try_connect(&node).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(%node, error = %e, "connect failed");
                    false
                }
            }
        })
    }
    fn disconnect(&self, node: &str) -> bool {
        orbit_dist::Node::disconnect(self, node)
    }
    fn events(&self) -> mpsc::UnboundedReceiver<NodeEvent> {
        self.monitor_nodes()
    }
}

/// What a running strategy gets: its topology's name and the connector.
#[derive(Clone)]
pub struct StrategyContext {
    /// The topology's name (used in logs, as libcluster's `[libcluster:NAME]`).
    pub topology: Arc<str>,
    /// Where connects go.
    pub connector: Arc<dyn Connector>,
}

/// A discovery strategy: runs until its task is stopped, connecting what it finds.
pub trait ClusterStrategy: Send + 'static {
    /// The libcluster module name it implements (`Cluster.Strategy.Gossip`).
    fn kind(&self) -> &'static str;
    /// Runs the strategy. Returns only on an error it cannot recover from (a socket
    /// that cannot be bound); a one-shot discovery keeps watching for nodes to heal.
    fn run(self: Box<Self>, ctx: StrategyContext) -> BoxFuture<'static, Result<(), StrategyError>>;
}

/// libcluster's `connect_nodes`: connects every node in `nodes` that is neither this
/// node nor already connected, concurrently; returns each attempted node with whether
/// it connected. Logs each result (info on success, warning on failure).
pub async fn connect_nodes(ctx: &StrategyContext, nodes: &[String]) -> Vec<(String, bool)> {
    let me = ctx.connector.self_name();
    let connected = ctx.connector.connected();
    let mut need: Vec<&String> = nodes
        .iter()
        .filter(|n| **n != me && !connected.contains(n))
        .collect();
    need.sort();
    need.dedup();
    let attempts = need.iter().map(|n| {
        let fut = ctx.connector.connect(n);
        let n = (*n).clone();
        async move { (n, fut.await) }
    });
    let results = futures::future::join_all(attempts).await;
    for (n, ok) in &results {
        if *ok {
            tracing::info!(topology = %ctx.topology, node = %n, "connected to {n}");
        } else {
            tracing::warn!(topology = %ctx.topology, node = %n, "unable to connect to {n}");
        }
    }
    results
}

/// Running topologies: each strategy in its own task. Dropping it (or [`Cluster::stop`])
/// stops them all; connections already made stay up.
pub struct Cluster {
    tasks: Vec<(Arc<str>, tokio::task::JoinHandle<()>)>,
    failures: mpsc::UnboundedReceiver<(String, StrategyError)>,
}

impl Cluster {
    /// Starts every topology's strategy against `connector` (call inside a tokio runtime).
    /// A strategy that stops with an error is logged at error level with its topology.
    pub fn start(topologies: Vec<Topology>, connector: Arc<dyn Connector>) -> Cluster {
        let (tx, failures) = mpsc::unbounded_channel();
        let tasks = topologies
            .into_iter()
            .map(|t| {
                let name: Arc<str> = Arc::from(t.name.as_str());
                let strategy = t.config.into_strategy();
                let task = Self::spawn(name.clone(), strategy, connector.clone(), tx.clone());
                (name, task)
            })
            .collect();
        Cluster { tasks, failures }
    }

    /// Runs one strategy under a topology name (for strategies built by hand, e.g. a
    /// [`Gossip`] whose [`GossipStats`] the caller keeps).
    pub fn start_one(
        name: &str,
        strategy: Box<dyn ClusterStrategy>,
        connector: Arc<dyn Connector>,
    ) -> Cluster {
        let name: Arc<str> = Arc::from(name);
        let (tx, failures) = mpsc::unbounded_channel();
        Cluster {
            tasks: vec![(name.clone(), Self::spawn(name, strategy, connector, tx))],
            failures,
        }
    }

    fn spawn(
        name: Arc<str>,
        strategy: Box<dyn ClusterStrategy>,
        connector: Arc<dyn Connector>,
        failures: mpsc::UnboundedSender<(String, StrategyError)>,
    ) -> tokio::task::JoinHandle<()> {
        let kind = strategy.kind();
        let ctx = StrategyContext {
            topology: name.clone(),
            connector,
        };
        tokio::spawn(async move {
            tracing::info!(topology = %name, strategy = kind, "starting topology");
            if let Err(e) = strategy.run(ctx).await {
                tracing::error!(topology = %name, strategy = kind, error = %e, "strategy stopped");
                let _ = failures.send((name.to_string(), e));
            }
        })
    }

    /// The names of the running topologies.
    pub fn topologies(&self) -> Vec<String> {
        self.tasks.iter().map(|(n, _)| n.to_string()).collect()
    }

    /// True when a strategy's task has ended (stopped by an error it logged).
    pub fn any_stopped(&self) -> bool {
        self.tasks.iter().any(|(_, t)| t.is_finished())
    }

    /// Waits until a strategy stops with an error (a socket it cannot bind...): its
    /// topology and the error. Pending forever while all run.
    pub async fn failed(&mut self) -> (String, StrategyError) {
        match self.failures.recv().await {
            Some(f) => f,
            // Every strategy ended without an error: nothing more can fail.
            None => std::future::pending().await,
        }
    }

    /// Stops every strategy and waits until their tasks (and sockets) are gone.
    pub async fn stop(mut self) {
        for (_, t) in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, t) in &self.tasks {
            t.abort();
        }
    }
}
