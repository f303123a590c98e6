//! `Cluster.Strategy.Gossip`: UDP multicast (or broadcast) heartbeats, wire-compatible
//! with libcluster 3.5.
//!
//! Contract (libcluster's `gossip.ex`): the socket binds `if_addr:port` (default
//! `0.0.0.0:45892`) with `SO_REUSEADDR` (so BEAM nodes and Orbit nodes on one host share
//! the port: on Linux that is what the BEAM really sets), `SO_BROADCAST`, and unless
//! `broadcast_only` joins `multicast_addr` (default `233.252.1.32`) with TTL
//! `multicast_ttl` (1) and loopback on. A heartbeat ([`gossip_packet`](super::gossip_packet))
//! goes to `multicast_addr:port` at start and then after a uniform 1..=5000 ms each time.
//! A heartbeat from another node not yet connected is connected to
//! ([`connect_nodes`](super::connect_nodes)); packets that do not decode (wrong secret,
//! bad padding, bad or hostile terms, a non-atom node) and our own heartbeats are
//! dropped with a debug log and counted ([`GossipStats`]). Gossip never disconnects
//! anyone; a dropped connection heals on the next heartbeat either side hears.
//!
//! Differences: connects run in their own tasks (one at a time per node) so a slow
//! handshake does not hold up receiving; libcluster connects inline.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::gossip_packet::{self, MAX_PACKET};
use super::{connect_nodes, ClusterStrategy, StrategyContext, StrategyError};

/// libcluster's Gossip config keys, with its defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipConfig {
    /// UDP port (`port`, 45892).
    pub port: u16,
    /// Address to bind (`if_addr`, 0.0.0.0).
    pub if_addr: Ipv4Addr,
    /// Interface for multicast (`multicast_if`); none: the system's choice.
    pub multicast_if: Option<Ipv4Addr>,
    /// Group, or broadcast address with `broadcast_only` (`multicast_addr`, 233.252.1.32).
    pub multicast_addr: Ipv4Addr,
    /// Multicast TTL (`multicast_ttl`, 1).
    pub multicast_ttl: u32,
    /// Send to `multicast_addr` as a broadcast address, no multicast options.
    pub broadcast_only: bool,
    /// Encrypt heartbeats with AES-256-CBC under SHA-256(secret) (`secret`).
    pub secret: Option<String>,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            port: 45892,
            if_addr: Ipv4Addr::UNSPECIFIED,
            multicast_if: None,
            multicast_addr: Ipv4Addr::new(233, 252, 1, 32),
            multicast_ttl: 1,
            broadcast_only: false,
            secret: None,
        }
    }
}

impl GossipConfig {
    /// This UDP port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    /// Bind this address.
    pub fn if_addr(mut self, addr: Ipv4Addr) -> Self {
        self.if_addr = addr;
        self
    }
    /// Multicast to this group.
    pub fn multicast(mut self, group: Ipv4Addr) -> Self {
        self.multicast_addr = group;
        self.broadcast_only = false;
        self
    }
    /// Broadcast to this address instead of multicasting (e.g. `127.255.255.255`).
    pub fn broadcast(mut self, addr: Ipv4Addr) -> Self {
        self.multicast_addr = addr;
        self.broadcast_only = true;
        self
    }
    /// Encrypt with this secret.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }
}

/// Counters of one Gossip strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipCounts {
    /// Heartbeats sent.
    pub sent: u64,
    /// Packets received (all, before decoding).
    pub received: u64,
    /// Our own heartbeats heard back (multicast loop, broadcast).
    pub own: u64,
    /// Packets dropped: did not decode (wrong secret, hostile bytes, bad term).
    pub dropped: u64,
    /// Heartbeats from other nodes accepted.
    pub accepted: u64,
    /// Connects that succeeded.
    pub connected: u64,
    /// Connects that failed.
    pub failed: u64,
}

/// A live view of a Gossip strategy's counters (wait on it: [`GossipStats::wait_for`]).
#[derive(Debug, Clone)]
pub struct GossipStats {
    tx: Arc<watch::Sender<GossipCounts>>,
}

impl GossipStats {
    fn new() -> GossipStats {
        GossipStats {
            tx: Arc::new(watch::channel(GossipCounts::default()).0),
        }
    }

    fn bump(&self, f: impl FnOnce(&mut GossipCounts)) {
        self.tx.send_modify(f);
    }

    /// The counters now.
    pub fn get(&self) -> GossipCounts {
        *self.tx.borrow()
    }

    /// Waits until `pred` holds for the counters (or `timeout` passes: then the counters
    /// as they are, in `Err`).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl FnMut(&GossipCounts) -> bool,
    ) -> Result<GossipCounts, GossipCounts> {
        let mut rx = self.tx.subscribe();
        let waited =
            tokio::time::timeout(timeout, async { rx.wait_for(pred).await.map(|c| *c) }).await;
        match waited {
            Ok(Ok(c)) => Ok(c),
            _ => Err(self.get()),
        }
    }
}

/// The Gossip strategy.
pub struct Gossip {
    config: GossipConfig,
    stats: GossipStats,
}

impl Gossip {
    /// Gossip with this config.
    pub fn new(config: GossipConfig) -> Gossip {
        Gossip {
            config,
            stats: GossipStats::new(),
        }
    }

    /// Its counters (keep a clone before handing the strategy to [`Cluster`](super::Cluster)).
    pub fn stats(&self) -> GossipStats {
        self.stats.clone()
    }
}

impl ClusterStrategy for Gossip {
    fn kind(&self) -> &'static str {
        "Cluster.Strategy.Gossip"
    }

    fn run(self: Box<Self>, ctx: StrategyContext) -> BoxFuture<'static, Result<(), StrategyError>> {
        Box::pin(run(*self, ctx))
    }
}

/// The socket libcluster opens, as a tokio socket.
fn open(c: &GossipConfig) -> Result<UdpSocket, StrategyError> {
    let bind = SocketAddrV4::new(c.if_addr, c.port);
    let err = |what: &str| StrategyError::io(format!("{what} for gossip on {bind}"));
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(err("creating the UDP socket"))?;
    s.set_reuse_address(true)
        .map_err(err("setting SO_REUSEADDR"))?;
    s.set_broadcast(true).map_err(err("setting SO_BROADCAST"))?;
    if !c.broadcast_only {
        s.set_multicast_ttl_v4(c.multicast_ttl)
            .map_err(err("setting the multicast TTL"))?;
        s.set_multicast_loop_v4(true)
            .map_err(err("turning multicast loop on"))?;
        if let Some(i) = c.multicast_if {
            s.set_multicast_if_v4(&i)
                .map_err(err("setting the multicast interface"))?;
        }
        let iface = c.multicast_if.unwrap_or(Ipv4Addr::UNSPECIFIED);
        s.join_multicast_v4(&c.multicast_addr, &iface)
            .map_err(err(&format!(
                "joining multicast group {} (is multicast enabled on an interface? \
             `broadcast_only` avoids multicast)",
                c.multicast_addr
            )))?;
    }
    s.bind(&SocketAddr::V4(bind).into()).map_err(err(
        "binding (another socket on the port without SO_REUSEADDR?)",
    ))?;
    s.set_nonblocking(true)
        .map_err(err("setting non-blocking"))?;
    UdpSocket::from_std(s.into()).map_err(err("registering with tokio"))
}

/// A uniform delay in 1..=5000 ms, as `:rand.uniform(5_000)`.
fn next_heartbeat_delay() -> Duration {
    let mut b = [0u8; 4];
    let r = match getrandom::getrandom(&mut b) {
        Ok(()) => u32::from_le_bytes(b),
        // No OS randomness: the clock's low bits still spread nodes out.
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    };
    Duration::from_millis(1 + u64::from(r % 5000))
}

fn packet(node: &str, secret: Option<&str>) -> Vec<u8> {
    let mut iv = [0u8; 16];
    if secret.is_some() && getrandom::getrandom(&mut iv).is_err() {
        // Only the IV's uniqueness matters for CBC here; fall back to the clock.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        iv = t.to_le_bytes();
    }
    gossip_packet::encode(node, secret, iv)
}

async fn run(g: Gossip, ctx: StrategyContext) -> Result<(), StrategyError> {
    let c = g.config;
    let stats = g.stats;
    let socket = open(&c)?;
    let to = SocketAddr::V4(SocketAddrV4::new(c.multicast_addr, c.port));
    let me = ctx.connector.self_name();
    let secret = c.secret.as_deref();
    let heartbeat = packet(&me, secret);
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut buf = vec![0u8; MAX_PACKET + 1];
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {
                let pkt = if secret.is_some() { packet(&me, secret) } else { heartbeat.clone() };
                match socket.send_to(&pkt, to).await {
                    Ok(_) => stats.bump(|s| s.sent += 1),
                    Err(e) => tracing::debug!(topology = %ctx.topology, error = %e, "heartbeat not sent"),
                }
                next = tokio::time::Instant::now() + next_heartbeat_delay();
            }
            r = socket.recv_from(&mut buf) => {
                let (n, from) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::debug!(topology = %ctx.topology, error = %e, "gossip receive failed");
                        // An error that repeats must not spin this task.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                stats.bump(|s| s.received += 1);
                let node = match gossip_packet::decode(&buf[..n], secret) {
                    Ok(node) => node,
                    Err(why) => {
                        tracing::debug!(topology = %ctx.topology, %from, reason = %why, "gossip packet dropped");
                        stats.bump(|s| s.dropped += 1);
                        continue;
                    }
                };
                if node == me {
                    stats.bump(|s| s.own += 1);
                    continue;
                }
                stats.bump(|s| s.accepted += 1);
                tracing::debug!(topology = %ctx.topology, %node, "received heartbeat from {node}");
                if ctx.connector.connected().contains(&node) || !in_flight.lock().insert(node.clone()) {
                    continue;
                }
                let (ctx, stats, in_flight) = (ctx.clone(), stats.clone(), in_flight.clone());
                tokio::spawn(async move {
                    let r = connect_nodes(&ctx, std::slice::from_ref(&node)).await;
                    for (_, ok) in r {
                        stats.bump(|s| if ok { s.connected += 1 } else { s.failed += 1 });
                    }
                    in_flight.lock().remove(&node);
                });
            }
        }
    }
}
