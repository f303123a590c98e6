//! `Cluster.Strategy.Kubernetes.DNS` and `Cluster.Strategy.Kubernetes.DNSSRV`: a
//! headless service's records.
//!
//! Contract (libcluster's `kubernetes_dns.ex`, `kubernetes_dns_srv.ex`): every
//! `polling_interval` (5 s), `Kubernetes.DNS` resolves the A records of `service` and
//! names each `application_name@IP`; `Kubernetes.DNSSRV` resolves the SRV records of
//! `service.namespace.svc.$CLUSTER_DOMAIN` (`CLUSTER_DOMAIN` from the environment,
//! default `cluster.local.`) and names each `application_name@TARGET` (the target host
//! without its trailing dot). New nodes are connected, nodes that left are disconnected.
//! The nameserver is `nameserver` (Orbit's key for libcluster's `resolver` function) or
//! the system's. Differences: `Kubernetes.DNS` also takes AAAA records (libcluster asks
//! for A only); failed connects are retried with backoff before the next interval.

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use hickory_resolver::TokioResolver;

use super::dns;
use super::{Poll, StrategyContext, StrategyError};

/// The config keys of both Kubernetes DNS strategies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesDnsConfig {
    /// The headless service (`service`).
    pub service: String,
    /// The node name's part before `@` (`application_name`).
    pub application_name: String,
    /// The namespace (`namespace`; DNSSRV only).
    pub namespace: Option<String>,
    /// Time between polls (`polling_interval`, 5 s).
    pub polling_interval: Duration,
    /// The nameserver (`nameserver`; none: `/etc/resolv.conf`).
    pub nameserver: Option<SocketAddr>,
}

impl KubernetesDnsConfig {
    /// `service` and `application_name`, polling every 5 s.
    pub fn new(service: &str, application_name: &str) -> KubernetesDnsConfig {
        KubernetesDnsConfig {
            service: service.into(),
            application_name: application_name.into(),
            namespace: None,
            polling_interval: Duration::from_secs(5),
            nameserver: None,
        }
    }
}

/// Which records a [`KubernetesDns`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubernetesDnsMode {
    /// `Kubernetes.DNS`: A/AAAA of the service.
    Addresses,
    /// `Kubernetes.DNSSRV`: SRV of `service.namespace.svc.<domain>`.
    Srv,
}

/// The Kubernetes.DNS / Kubernetes.DNSSRV source.
pub struct KubernetesDns {
    config: KubernetesDnsConfig,
    mode: KubernetesDnsMode,
    resolver: Option<TokioResolver>,
}

impl KubernetesDns {
    /// The source in this mode.
    pub fn new(config: KubernetesDnsConfig, mode: KubernetesDnsMode) -> KubernetesDns {
        KubernetesDns {
            config,
            mode,
            resolver: None,
        }
    }

    /// The SRV name asked in [`KubernetesDnsMode::Srv`].
    pub fn srv_name(&self) -> String {
        let domain = std::env::var("CLUSTER_DOMAIN").unwrap_or_else(|_| "cluster.local.".into());
        let ns = self.config.namespace.as_deref().unwrap_or("default");
        format!("{}.{ns}.svc.{domain}", self.config.service)
    }
}

impl Poll for KubernetesDns {
    fn kind(&self) -> &'static str {
        match self.mode {
            KubernetesDnsMode::Addresses => "Cluster.Strategy.Kubernetes.DNS",
            KubernetesDnsMode::Srv => "Cluster.Strategy.Kubernetes.DNSSRV",
        }
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
            let srv_name = self.srv_name();
            let r = dns::cached_resolver(&mut self.resolver, self.config.nameserver)?;
            let app = &self.config.application_name;
            let nodes: Vec<String> = match self.mode {
                KubernetesDnsMode::Addresses => dns::addresses(r, &self.config.service)
                    .await?
                    .into_iter()
                    .map(|ip| dns::node_at(app, ip))
                    .collect(),
                KubernetesDnsMode::Srv => dns::srv_targets(r, &srv_name)
                    .await?
                    .into_iter()
                    .map(|t| format!("{app}@{t}"))
                    .collect(),
            };
            let me = ctx.connector.self_name();
            Ok(nodes.into_iter().filter(|n| *n != me).collect())
        })
    }
}
