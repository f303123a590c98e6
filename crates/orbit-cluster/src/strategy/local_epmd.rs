//! `Cluster.Strategy.LocalEpmd`: the nodes registered in this host's EPMD.
//!
//! Contract (libcluster's `local_epmd.ex`): asks the EPMD on this host for its names
//! (`NAMES_REQ`) and connects `name@H` for each, where `H` is this node's own host part.
//! Difference: libcluster asks once; here [`Polling`](super::Polling) asks again when a
//! node failed or went down (with backoff), so a restarted neighbour is reconnected.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{Poll, StrategyContext, StrategyError};

/// The LocalEpmd source.
#[derive(Debug, Clone, Default)]
pub struct LocalEpmd {
    /// EPMD port (none: `ERL_EPMD_PORT` or 4369).
    pub epmd_port: Option<u16>,
}

impl Poll for LocalEpmd {
    fn kind(&self) -> &'static str {
        "Cluster.Strategy.LocalEpmd"
    }
    fn interval(&self) -> Option<Duration> {
        None
    }
    fn discover<'a>(
        &'a mut self,
        ctx: &'a StrategyContext,
    ) -> BoxFuture<'a, Result<Vec<String>, StrategyError>> {
        Box::pin(async move {
            let me = ctx.connector.self_name();
            let Some((_, host)) = me.split_once('@') else {
                return Err(StrategyError::Discovery(format!(
                    "this node's name {me:?} has no host part"
                )));
            };
            let port = self.epmd_port.unwrap_or_else(orbit_dist::epmd::port);
            let names = orbit_dist::epmd::client::names("127.0.0.1", port)
                .await
                .map_err(|e| {
                    StrategyError::Discovery(format!("asking the local EPMD for names: {e}"))
                })?;
            Ok(names
                .into_iter()
                .map(|(name, _)| format!("{name}@{host}"))
                .collect())
        })
    }
}
