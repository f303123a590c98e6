//! `Cluster.Strategy.DNSPoll`: the A and AAAA records of `query`, as `node_basename@IP`.
//!
//! Contract (libcluster's `dns_poll.ex`): every `polling_interval` (5 s) the name is
//! resolved, each address becomes `node_basename@IP` (this node excluded), new ones are
//! connected and nodes that left the answer are disconnected. The nameserver is
//! `nameserver` (Orbit's key for libcluster's `resolver` function) or the system's.
//! Differences: failed connects are retried with backoff before the next interval.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use hickory_resolver::TokioResolver;

use super::dns;
use super::{Poll, StrategyContext, StrategyError};

/// libcluster's DNSPoll config keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPollConfig {
    /// The name to resolve (`query`).
    pub query: String,
    /// The node name's part before `@` (`node_basename`).
    pub node_basename: String,
    /// Time between polls (`polling_interval`, 5 s).
    pub polling_interval: Duration,
    /// The nameserver (`nameserver`; none: `/etc/resolv.conf`).
    pub nameserver: Option<SocketAddr>,
}

impl DnsPollConfig {
    /// Resolve `query`, name nodes `node_basename@IP`, poll every 5 s.
    pub fn new(query: &str, node_basename: &str) -> DnsPollConfig {
        DnsPollConfig {
            query: query.into(),
            node_basename: node_basename.into(),
            polling_interval: Duration::from_secs(5),
            nameserver: None,
        }
    }
}

/// The DNSPoll source.
pub struct DnsPoll {
    config: DnsPollConfig,
    resolver: Option<TokioResolver>,
}

impl DnsPoll {
    /// DNSPoll with this config.
    pub fn new(config: DnsPollConfig) -> DnsPoll {
        DnsPoll {
            config,
            resolver: None,
        }
    }
}

impl Poll for DnsPoll {
    fn kind(&self) -> &'static str {
        "Cluster.Strategy.DNSPoll"
    }
    fn interval(&self) -> Option<Duration> {
        Some(self.config.polling_interval)
    }
    fn disconnect_vanished(&self) -> bool {
        true
    }
    fn discover<'a>(
        &'a mut self,
        ctx: &'a StrategyContext,
    ) -> BoxFuture<'a, Result<Vec<String>, StrategyError>> {
        Box::pin(async move {
            let r = dns::cached_resolver(&mut self.resolver, self.config.nameserver)?;
            let me = ctx.connector.self_name();
            Ok(dns::addresses(r, &self.config.query)
                .await?
                .into_iter()
                .map(|ip| dns::node_at(&self.config.node_basename, ip))
                .filter(|n| *n != me)
                .collect())
        })
    }
}
