//! Polling strategies: a [`Poll`] source asked for the node list, and [`Polling`], the
//! loop that connects what it returns and heals what goes away.
//!
//! Contract of the loop: each round asks the source, disconnects nodes that left the
//! list when the source says so (`DNSPoll`/Kubernetes semantics), and connects the rest
//! with [`connect_nodes`](super::connect_nodes). The next round comes after the source's
//! interval when every node is connected; sooner, after a [`Backoff`] delay (0.5 s
//! doubling to 30 s, never longer than the interval), when a node failed to connect or
//! the source failed; and, for a source with no interval (one-shot in libcluster), when
//! a discovered node goes down (then after the backoff delay). A node that is up again
//! is reconnected on such a round; the backoff resets once all are connected.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::BoxFuture;
use orbit_dist::NodeEvent;

use super::{connect_nodes, ClusterStrategy, StrategyContext, StrategyError};

/// A source of node names for [`Polling`].
pub trait Poll: Send + 'static {
    /// The libcluster module name it implements.
    fn kind(&self) -> &'static str;
    /// Time between rounds; `None` polls once and then only to heal.
    fn interval(&self) -> Option<Duration>;
    /// The nodes that should be connected now.
    fn discover<'a>(
        &'a mut self,
        ctx: &'a StrategyContext,
    ) -> BoxFuture<'a, Result<Vec<String>, StrategyError>>;
    /// True when nodes that leave the list are disconnected (DNS and Kubernetes do).
    fn disconnect_vanished(&self) -> bool {
        false
    }
}

/// Exponential backoff: `min` doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// From `min` doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The next delay (and doubles the one after).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Back to `min` (after a success).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Runs a [`Poll`] source as a [`ClusterStrategy`].
pub struct Polling<P> {
    source: P,
    backoff: Backoff,
}

impl<P: Poll> Polling<P> {
    /// The loop around `source`, with the default backoff (0.5 s to 30 s).
    pub fn new(source: P) -> Polling<P> {
        let max = source
            .interval()
            .unwrap_or(Duration::from_secs(30))
            .min(Duration::from_secs(30));
        Polling {
            source,
            backoff: Backoff::new(Duration::from_millis(500), max),
        }
    }

    /// The same with another backoff.
    pub fn with_backoff(source: P, backoff: Backoff) -> Polling<P> {
        Polling { source, backoff }
    }
}

impl<P: Poll> ClusterStrategy for Polling<P> {
    fn kind(&self) -> &'static str {
        self.source.kind()
    }

    fn run(self: Box<Self>, ctx: StrategyContext) -> BoxFuture<'static, Result<(), StrategyError>> {
        Box::pin(run(*self, ctx))
    }
}

async fn run<P: Poll>(mut p: Polling<P>, ctx: StrategyContext) -> Result<(), StrategyError> {
    let mut events = Some(ctx.connector.events());
    let mut known: BTreeSet<String> = BTreeSet::new();
    loop {
        let all_ok = match p.source.discover(&ctx).await {
            Ok(found) => {
                let found: BTreeSet<String> = found.into_iter().collect();
                if p.source.disconnect_vanished() {
                    let connected = ctx.connector.connected();
                    for gone in known.difference(&found) {
                        if connected.contains(gone) && ctx.connector.disconnect(gone) {
                            tracing::info!(topology = %ctx.topology, node = %gone, "disconnected from {gone}");
                        }
                    }
                }
                known = found;
                let list: Vec<String> = known.iter().cloned().collect();
                connect_nodes(&ctx, &list).await.iter().all(|(_, ok)| *ok)
            }
            Err(e) => {
                tracing::warn!(topology = %ctx.topology, error = %e, "discovery failed");
                false
            }
        };
        let wait = if all_ok {
            p.backoff.reset();
            p.source.interval()
        } else {
            let d = p.backoff.next_delay();
            Some(p.source.interval().map_or(d, |i| i.min(d)))
        };
        // Wait for the next round; a discovered node going down starts a backoff wait.
        let mut deadline = wait.map(|d| tokio::time::Instant::now() + d);
        loop {
            let ev = match (deadline, events.as_mut()) {
                (Some(at), Some(rx)) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => break,
                    ev = rx.recv() => ev,
                },
                (Some(at), None) => {
                    tokio::time::sleep_until(at).await;
                    break;
                }
                (None, Some(rx)) => rx.recv().await,
                (None, None) => {
                    deadline = Some(tokio::time::Instant::now() + p.backoff.next_delay());
                    continue;
                }
            };
            match ev {
                Some(NodeEvent::NodeDown(n, why)) if known.contains(&n) => {
                    tracing::info!(topology = %ctx.topology, node = %n, reason = %why, "node down; will reconnect");
                    let at = tokio::time::Instant::now() + p.backoff.next_delay();
                    deadline = Some(deadline.map_or(at, |old| old.min(at)));
                }
                Some(_) => {}
                // The node stopped publishing events: plain polling from now on.
                None => events = None,
            }
        }
    }
}
