//! The DNS stub resolver the DNS strategies share (hickory-resolver).
//!
//! Contract: queries go to one configured nameserver (`nameserver = "IP:PORT"`, an
//! Orbit key standing in for libcluster's `resolver` function), or, when none is set,
//! to the nameservers of `/etc/resolv.conf` (port 53). Answers are never cached (each
//! poll sees the records as they are now), a query times out after 2 s, and records
//! of other types in an answer are ignored. A failed lookup (NXDOMAIN, timeout, a
//! refused or malformed answer) is an error for that poll only.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use super::StrategyError;

/// The resolver kept in `slot`, made on first use (against `nameserver`, or the
/// system's nameservers); a failure leaves the slot empty for the next poll to retry.
pub(crate) fn cached_resolver(
    slot: &mut Option<TokioResolver>,
    nameserver: Option<SocketAddr>,
) -> Result<&TokioResolver, StrategyError> {
    let r = match slot.take() {
        Some(r) => r,
        None => resolver(nameserver)?,
    };
    Ok(slot.insert(r))
}

/// A resolver against `nameserver`, or the system's nameservers.
fn resolver(nameserver: Option<SocketAddr>) -> Result<TokioResolver, StrategyError> {
    let servers: Vec<SocketAddr> = match nameserver {
        Some(s) => vec![s],
        None => system_nameservers()?,
    };
    let configs = servers
        .iter()
        .map(|s| {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = s.port();
            NameServerConfig::new(s.ip(), true, vec![udp, tcp])
        })
        .collect();
    let mut b = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(configs),
        TokioRuntimeProvider::default(),
    );
    let o = b.options_mut();
    o.cache_size = 0;
    o.timeout = Duration::from_secs(2);
    o.attempts = 1;
    o.ndots = 0;
    b.build()
        .map_err(|e| StrategyError::Discovery(format!("building the DNS resolver: {e}")))
}

fn system_nameservers() -> Result<Vec<SocketAddr>, StrategyError> {
    let text = std::fs::read_to_string("/etc/resolv.conf").map_err(StrategyError::io(
        "reading /etc/resolv.conf (or set `nameserver`)",
    ))?;
    let v: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if v.is_empty() {
        return Err(StrategyError::Discovery(
            "no nameserver in /etc/resolv.conf (set `nameserver`)".into(),
        ));
    }
    Ok(v)
}

/// The A and AAAA addresses of `name` (an empty answer is an empty list).
pub(crate) async fn addresses(r: &TokioResolver, name: &str) -> Result<Vec<IpAddr>, StrategyError> {
    let ips = r
        .lookup_ip(name)
        .await
        .map_err(|e| StrategyError::Discovery(format!("looking up {name}: {e}")))?;
    let mut v: Vec<IpAddr> = ips.iter().collect();
    v.sort();
    v.dedup();
    Ok(v)
}

/// The SRV targets of `name`, without the trailing dot (as `inet_res` gives them).
pub(crate) async fn srv_targets(
    r: &TokioResolver,
    name: &str,
) -> Result<Vec<String>, StrategyError> {
    let l = r
        .srv_lookup(name)
        .await
        .map_err(|e| StrategyError::Discovery(format!("looking up SRV {name}: {e}")))?;
    let mut v: Vec<String> = l
        .answers()
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::SRV(srv) => Some(srv.target.to_ascii().trim_end_matches('.').to_string()),
            _ => None,
        })
        .filter(|t| !t.is_empty())
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

/// `base@ip` as `:inet_parse.ntoa/1` writes IPs (IPv6 in its compressed form).
pub(crate) fn node_at(base: &str, ip: IpAddr) -> String {
    format!("{base}@{ip}")
}
