//! `Cluster.Strategy.Epmd`: a fixed list of nodes.
//!
//! Contract (libcluster's `epmd.ex`): connects to `hosts` at start; with `timeout` set,
//! again every `timeout`. Difference: without `timeout` libcluster never retries; here
//! [`Polling`](super::Polling) retries nodes that failed or went down, with backoff.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{Poll, StrategyContext, StrategyError};

/// libcluster's Epmd config keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpmdConfig {
    /// The nodes to connect (`hosts`: `name@host` each).
    pub hosts: Vec<String>,
    /// Reconnect round every this long (`timeout`; none: `:infinity`).
    pub timeout: Option<Duration>,
}

impl EpmdConfig {
    /// These nodes.
    pub fn hosts<S: Into<String>>(hosts: impl IntoIterator<Item = S>) -> EpmdConfig {
        EpmdConfig {
            hosts: hosts.into_iter().map(Into::into).collect(),
            timeout: None,
        }
    }
    /// A round every `t`.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

/// The Epmd source.
#[derive(Debug, Clone)]
pub struct Epmd(pub EpmdConfig);

impl Poll for Epmd {
    fn kind(&self) -> &'static str {
        "Cluster.Strategy.Epmd"
    }
    fn interval(&self) -> Option<Duration> {
        self.0.timeout
    }
    fn discover<'a>(
        &'a mut self,
        _ctx: &'a StrategyContext,
    ) -> BoxFuture<'a, Result<Vec<String>, StrategyError>> {
        Box::pin(async move { Ok(self.0.hosts.clone()) })
    }
}
