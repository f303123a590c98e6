//! Topology config: libcluster's `config :libcluster, topologies: [...]` as a TOML file
//! or a Rust builder.
//!
//! ```toml
//! [topologies.gossip]
//! strategy = "Cluster.Strategy.Gossip"
//! [topologies.gossip.config]
//! port = 45892
//! multicast_addr = "127.255.255.255"
//! broadcast_only = true
//! secret = "s3cret"
//! ```
//!
//! Contract: the keys are libcluster's keyword-config keys, values as TOML scalars
//! (addresses as strings, times in milliseconds, `timeout = "infinity"` allowed); the
//! strategy is named as in Elixir (`Cluster.Strategy.Epmd`, with or without `Elixir.`,
//! or the bare `Epmd`). An unknown key, a wrong type or an out-of-range value is a
//! [`ConfigError`] naming the topology and the key. Orbit adds `epmd_port` (LocalEpmd,
//! ErlangHosts) and `hosts_file` (ErlangHosts). Differences: libcluster's per-topology
//! `connect`/`disconnect`/`list_nodes` MFAs and `child_spec` are refused (Orbit connects
//! through its node); instead of libcluster's `resolver` function the DNS strategies take
//! `nameserver = "IP:PORT"`; Kubernetes' `kubernetes_ip_lookup_mode` also takes
//! `"endpointslices"`.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use toml::{Table, Value};

use super::{ClusterStrategy, LocalEpmd, Polling};
use super::{DnsPoll, DnsPollConfig, KubernetesDns, KubernetesDnsConfig, KubernetesDnsMode};
use super::{Epmd, EpmdConfig, ErlangHosts, ErlangHostsConfig, Gossip, GossipConfig};
use super::{IpLookupMode, Kubernetes, KubernetesConfig, NodeNameMode};

/// A config that cannot be used, saying where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML.
    #[error("not valid TOML: {0}")]
    Toml(String),
    /// A key this place does not take.
    #[error("{place}: unknown key `{key}` (known: {known})")]
    UnknownKey {
        /// `topology gossip (Cluster.Strategy.Gossip) config`, or the like.
        place: String,
        /// The key.
        key: String,
        /// The keys that are taken there.
        known: String,
    },
    /// A key that must be there.
    #[error("{place}: missing key `{key}`")]
    Missing {
        /// Where.
        place: String,
        /// The key.
        key: String,
    },
    /// A value of the wrong type or out of range.
    #[error("{place}: key `{key}`: expected {expected}, found {found}")]
    BadValue {
        /// Where.
        place: String,
        /// The key.
        key: String,
        /// What is taken.
        expected: String,
        /// What was there.
        found: String,
    },
    /// A strategy name that is not libcluster's.
    #[error("topology {topology}: unknown strategy {strategy:?} (known: Cluster.Strategy.Gossip, Epmd, LocalEpmd, ErlangHosts, DNSPoll, Kubernetes, Kubernetes.DNS, Kubernetes.DNSSRV)")]
    UnknownStrategy {
        /// The topology.
        topology: String,
        /// What it named.
        strategy: String,
    },
}

/// One topology: a name and its strategy with config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The topology's name (`[topologies.NAME]`).
    pub name: String,
    /// Its strategy and config.
    pub config: TopologyConfig,
}

/// A strategy with its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyConfig {
    /// `Cluster.Strategy.Gossip`.
    Gossip(GossipConfig),
    /// `Cluster.Strategy.Epmd`.
    Epmd(EpmdConfig),
    /// `Cluster.Strategy.LocalEpmd` (EPMD port; none: the default).
    LocalEpmd(Option<u16>),
    /// `Cluster.Strategy.ErlangHosts`.
    ErlangHosts(ErlangHostsConfig),
    /// `Cluster.Strategy.DNSPoll`.
    DnsPoll(DnsPollConfig),
    /// `Cluster.Strategy.Kubernetes.DNS`.
    KubernetesDns(KubernetesDnsConfig),
    /// `Cluster.Strategy.Kubernetes.DNSSRV`.
    KubernetesDnsSrv(KubernetesDnsConfig),
    /// `Cluster.Strategy.Kubernetes` (the API).
    Kubernetes(KubernetesConfig),
}

impl TopologyConfig {
    /// The strategy, ready to run.
    pub fn into_strategy(self) -> Box<dyn ClusterStrategy> {
        match self {
            TopologyConfig::Gossip(c) => Box::new(Gossip::new(c)),
            TopologyConfig::Epmd(c) => Box::new(Polling::new(Epmd(c))),
            TopologyConfig::LocalEpmd(p) => Box::new(Polling::new(LocalEpmd { epmd_port: p })),
            TopologyConfig::ErlangHosts(c) => Box::new(Polling::new(ErlangHosts(c))),
            TopologyConfig::DnsPoll(c) => Box::new(Polling::new(DnsPoll::new(c))),
            TopologyConfig::KubernetesDns(c) => Box::new(Polling::new(KubernetesDns::new(
                c,
                KubernetesDnsMode::Addresses,
            ))),
            TopologyConfig::KubernetesDnsSrv(c) => {
                Box::new(Polling::new(KubernetesDns::new(c, KubernetesDnsMode::Srv)))
            }
            TopologyConfig::Kubernetes(c) => Box::new(Polling::new(Kubernetes(c))),
        }
    }
}

impl Topology {
    /// A Gossip topology.
    pub fn gossip(name: &str, config: GossipConfig) -> Topology {
        Topology {
            name: name.into(),
            config: TopologyConfig::Gossip(config),
        }
    }
    /// An Epmd topology.
    pub fn epmd(name: &str, config: EpmdConfig) -> Topology {
        Topology {
            name: name.into(),
            config: TopologyConfig::Epmd(config),
        }
    }
    /// A LocalEpmd topology.
    pub fn local_epmd(name: &str) -> Topology {
        Topology {
            name: name.into(),
            config: TopologyConfig::LocalEpmd(None),
        }
    }
    /// An ErlangHosts topology.
    pub fn erlang_hosts(name: &str, config: ErlangHostsConfig) -> Topology {
        Topology {
            name: name.into(),
            config: TopologyConfig::ErlangHosts(config),
        }
    }
}

/// Reads a topology file.
pub fn load(path: &Path) -> Result<Vec<Topology>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text)
}

/// Parses a topology file's text. Topologies come back sorted by name.
pub fn parse(text: &str) -> Result<Vec<Topology>, ConfigError> {
    let root: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Toml(e.to_string()))?;
    check_keys(&root, "the file", &["topologies"])?;
    let Some(tops) = root.get("topologies") else {
        return Ok(Vec::new());
    };
    let tops = tops
        .as_table()
        .ok_or_else(|| bad("the file", "topologies", "a table of topologies", tops))?;
    let mut out = Vec::new();
    for (name, t) in tops {
        let place = format!("topology {name}");
        let t = t
            .as_table()
            .ok_or_else(|| bad("topologies", name, "a table", t))?;
        for k in ["connect", "disconnect", "list_nodes", "child_spec"] {
            if t.contains_key(k) {
                return Err(ConfigError::BadValue {
                    place,
                    key: k.into(),
                    expected: "nothing (Orbit connects through its own node; remove the key)"
                        .into(),
                    found: "a value".into(),
                });
            }
        }
        check_keys(t, &place, &["strategy", "config"])?;
        let strategy = match t.get("strategy") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(bad(&place, "strategy", "a string", v)),
            None => {
                return Err(ConfigError::Missing {
                    place,
                    key: "strategy".into(),
                })
            }
        };
        let empty = Table::new();
        let cfg = match t.get("config") {
            None => &empty,
            Some(Value::Table(c)) => c,
            Some(v) => return Err(bad(&place, "config", "a table", v)),
        };
        let short = strategy
            .trim_start_matches("Elixir.")
            .trim_start_matches("Cluster.Strategy.");
        let place = format!("topology {name} (Cluster.Strategy.{short}) config");
        let config = match short {
            "Gossip" => TopologyConfig::Gossip(gossip(cfg, &place)?),
            "Epmd" => {
                check_keys(cfg, &place, &["hosts", "timeout"])?;
                let hosts = match cfg.get("hosts") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| match v.as_str() {
                            Some(s) if is_node_name(s) => Ok(s.to_string()),
                            _ => Err(bad(&place, "hosts", "node names \"name@host\"", v)),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    Some(v) => return Err(bad(&place, "hosts", "an array of node names", v)),
                    None => {
                        return Err(ConfigError::Missing {
                            place,
                            key: "hosts".into(),
                        })
                    }
                };
                TopologyConfig::Epmd(EpmdConfig {
                    hosts,
                    timeout: timeout(cfg, &place)?,
                })
            }
            "LocalEpmd" => {
                check_keys(cfg, &place, &["epmd_port"])?;
                TopologyConfig::LocalEpmd(port(cfg, &place, "epmd_port")?)
            }
            "ErlangHosts" => {
                check_keys(cfg, &place, &["timeout", "hosts_file", "epmd_port"])?;
                let hosts_file = match cfg.get("hosts_file") {
                    None => None,
                    Some(Value::String(s)) => Some(s.into()),
                    Some(v) => return Err(bad(&place, "hosts_file", "a path string", v)),
                };
                TopologyConfig::ErlangHosts(ErlangHostsConfig {
                    timeout: timeout(cfg, &place)?,
                    hosts_file,
                    epmd_port: port(cfg, &place, "epmd_port")?,
                })
            }
            "DNSPoll" => {
                check_keys(
                    cfg,
                    &place,
                    &["query", "node_basename", "polling_interval", "nameserver"],
                )?;
                TopologyConfig::DnsPoll(DnsPollConfig {
                    query: string_key(cfg, &place, "query")?,
                    node_basename: string_key(cfg, &place, "node_basename")?,
                    polling_interval: interval(cfg, &place)?,
                    nameserver: nameserver(cfg, &place)?,
                })
            }
            "Kubernetes.DNS" | "Kubernetes.DNSSRV" => {
                let srv = short == "Kubernetes.DNSSRV";
                let mut known = vec![
                    "service",
                    "application_name",
                    "polling_interval",
                    "nameserver",
                ];
                if srv {
                    known.push("namespace");
                }
                check_keys(cfg, &place, &known)?;
                let c = KubernetesDnsConfig {
                    service: string_key(cfg, &place, "service")?,
                    application_name: string_key(cfg, &place, "application_name")?,
                    namespace: if srv {
                        Some(string_key(cfg, &place, "namespace")?)
                    } else {
                        None
                    },
                    polling_interval: interval(cfg, &place)?,
                    nameserver: nameserver(cfg, &place)?,
                };
                if srv {
                    TopologyConfig::KubernetesDnsSrv(c)
                } else {
                    TopologyConfig::KubernetesDns(c)
                }
            }
            "Kubernetes" => TopologyConfig::Kubernetes(kubernetes(cfg, &place)?),
            _ => {
                return Err(ConfigError::UnknownStrategy {
                    topology: name.clone(),
                    strategy,
                })
            }
        };
        out.push(Topology {
            name: name.clone(),
            config,
        });
    }
    Ok(out)
}

fn gossip(cfg: &Table, place: &str) -> Result<GossipConfig, ConfigError> {
    check_keys(
        cfg,
        place,
        &[
            "port",
            "if_addr",
            "multicast_if",
            "multicast_addr",
            "multicast_ttl",
            "broadcast_only",
            "secret",
        ],
    )?;
    let d = GossipConfig::default();
    Ok(GossipConfig {
        port: port(cfg, place, "port")?.unwrap_or(d.port),
        if_addr: ipv4(cfg, place, "if_addr")?.unwrap_or(d.if_addr),
        multicast_if: ipv4(cfg, place, "multicast_if")?,
        multicast_addr: ipv4(cfg, place, "multicast_addr")?.unwrap_or(d.multicast_addr),
        multicast_ttl: match cfg.get("multicast_ttl") {
            None => d.multicast_ttl,
            Some(Value::Integer(i)) if (0..=255).contains(i) => *i as u32,
            Some(v) => return Err(bad(place, "multicast_ttl", "an integer 0..=255", v)),
        },
        broadcast_only: match cfg.get("broadcast_only") {
            None => false,
            Some(Value::Boolean(b)) => *b,
            Some(v) => return Err(bad(place, "broadcast_only", "true or false", v)),
        },
        secret: match cfg.get("secret") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(bad(place, "secret", "a string", v)),
        },
    })
}

fn is_node_name(s: &str) -> bool {
    matches!(s.split_once('@'), Some((n, h)) if !n.is_empty() && !h.is_empty() && !h.contains('@'))
}

fn check_keys(t: &Table, place: &str, known: &[&str]) -> Result<(), ConfigError> {
    match t.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(ConfigError::UnknownKey {
            place: place.into(),
            key: k.clone(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        }),
    }
}

fn bad(place: &str, key: &str, expected: &str, found: &Value) -> ConfigError {
    let mut f = found.to_string();
    if f.len() > 60 {
        f = format!("{}...", f.chars().take(60).collect::<String>());
    }
    ConfigError::BadValue {
        place: place.into(),
        key: key.into(),
        expected: expected.into(),
        found: f,
    }
}

fn port(cfg: &Table, place: &str, key: &str) -> Result<Option<u16>, ConfigError> {
    match cfg.get(key) {
        None => Ok(None),
        Some(Value::Integer(i)) if (1..=65535).contains(i) => Ok(Some(*i as u16)),
        Some(v) => Err(bad(place, key, "a port 1..=65535", v)),
    }
}

fn ipv4(cfg: &Table, place: &str, key: &str) -> Result<Option<Ipv4Addr>, ConfigError> {
    match cfg.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => match s.parse() {
            Ok(a) => Ok(Some(a)),
            Err(_) => Err(bad(
                place,
                key,
                "an IPv4 address like \"233.252.1.32\"",
                &Value::String(s.clone()),
            )),
        },
        Some(v) => Err(bad(place, key, "an IPv4 address string", v)),
    }
}

fn kubernetes(cfg: &Table, place: &str) -> Result<KubernetesConfig, ConfigError> {
    check_keys(
        cfg,
        place,
        &[
            "kubernetes_node_basename",
            "kubernetes_selector",
            "kubernetes_namespace",
            "kubernetes_ip_lookup_mode",
            "mode",
            "kubernetes_service_name",
            "kubernetes_cluster_name",
            "kubernetes_master",
            "kubernetes_service_account_path",
            "polling_interval",
            "kubernetes_use_cached_resources",
        ],
    )?;
    let opt = |key: &str| -> Result<Option<String>, ConfigError> {
        match cfg.get(key) {
            None => Ok(None),
            Some(_) => string_key(cfg, place, key).map(Some),
        }
    };
    let mut c = KubernetesConfig::new(
        &string_key(cfg, place, "kubernetes_node_basename")?,
        &string_key(cfg, place, "kubernetes_selector")?,
    );
    c.namespace = opt("kubernetes_namespace")?;
    c.ip_lookup_mode = match opt("kubernetes_ip_lookup_mode")?.as_deref() {
        None | Some("endpoints") => IpLookupMode::Endpoints,
        Some("pods") => IpLookupMode::Pods,
        Some("endpointslices") => IpLookupMode::EndpointSlices,
        Some(o) => {
            let v = Value::String(o.into());
            return Err(bad(
                place,
                "kubernetes_ip_lookup_mode",
                "\"endpoints\", \"pods\" or \"endpointslices\"",
                &v,
            ));
        }
    };
    c.mode = match opt("mode")?.as_deref() {
        None | Some("ip") => NodeNameMode::Ip,
        Some("dns") => NodeNameMode::Dns,
        Some("hostname") => NodeNameMode::Hostname,
        Some(o) => {
            let v = Value::String(o.into());
            return Err(bad(place, "mode", "\"ip\", \"dns\" or \"hostname\"", &v));
        }
    };
    c.service_name = opt("kubernetes_service_name")?;
    if c.mode == NodeNameMode::Hostname && c.service_name.is_none() {
        return Err(ConfigError::Missing {
            place: format!("{place} (mode = \"hostname\")"),
            key: "kubernetes_service_name".into(),
        });
    }
    if let Some(n) = opt("kubernetes_cluster_name")? {
        c.cluster_name = n;
    }
    if let Some(m) = opt("kubernetes_master")? {
        c.master = m;
    }
    if let Some(p) = opt("kubernetes_service_account_path")? {
        c.service_account_path = p.into();
    }
    c.polling_interval = interval(cfg, place)?;
    c.use_cached_resources = match cfg.get("kubernetes_use_cached_resources") {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(v) => {
            return Err(bad(
                place,
                "kubernetes_use_cached_resources",
                "true or false",
                v,
            ))
        }
    };
    Ok(c)
}

fn string_key(cfg: &Table, place: &str, key: &str) -> Result<String, ConfigError> {
    match cfg.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(v) => Err(bad(place, key, "a non-empty string", v)),
        None => Err(ConfigError::Missing {
            place: place.into(),
            key: key.into(),
        }),
    }
}

fn interval(cfg: &Table, place: &str) -> Result<Duration, ConfigError> {
    match cfg.get("polling_interval") {
        None => Ok(Duration::from_secs(5)),
        Some(Value::Integer(i)) if *i > 0 => Ok(Duration::from_millis(*i as u64)),
        Some(v) => Err(bad(place, "polling_interval", "milliseconds > 0", v)),
    }
}

fn nameserver(cfg: &Table, place: &str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match cfg.get("nameserver") {
        None => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
            .map(Some)
            .map_err(|_| {
                bad(
                    place,
                    "nameserver",
                    "\"IP\" or \"IP:PORT\"",
                    &Value::String(s.clone()),
                )
            }),
        Some(v) => Err(bad(place, "nameserver", "\"IP\" or \"IP:PORT\"", v)),
    }
}

fn timeout(cfg: &Table, place: &str) -> Result<Option<Duration>, ConfigError> {
    match cfg.get("timeout") {
        None => Ok(None),
        Some(Value::String(s)) if s == "infinity" => Ok(None),
        Some(Value::Integer(i)) if *i > 0 => Ok(Some(Duration::from_millis(*i as u64))),
        Some(v) => Err(bad(place, "timeout", "milliseconds > 0 or \"infinity\"", v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_strategy() {
        let mut t = parse(
            r#"
            [topologies.g]
            strategy = "Cluster.Strategy.Gossip"
            [topologies.g.config]
            port = 45999
            multicast_addr = "127.255.255.255"
            broadcast_only = true
            secret = "s"
            [topologies.e]
            strategy = "Elixir.Cluster.Strategy.Epmd"
            config = { hosts = ["a@127.0.0.1", "b@127.0.0.1"], timeout = 3000 }
            [topologies.l]
            strategy = "LocalEpmd"
            [topologies.h]
            strategy = "Cluster.Strategy.ErlangHosts"
            config = { hosts_file = "/tmp/h", timeout = "infinity" }
            [topologies.d]
            strategy = "Cluster.Strategy.DNSPoll"
            config = { query = "app.local", node_basename = "app", polling_interval = 1000, nameserver = "127.0.0.1:5353" }
            [topologies.k]
            strategy = "Cluster.Strategy.Kubernetes.DNSSRV"
            config = { service = "svc", application_name = "app", namespace = "ns", nameserver = "127.0.0.1" }
            "#,
        )
        .unwrap();
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["d", "e", "g", "h", "k", "l"]);
        let (d, k) = (t.remove(0), t.remove(3));
        assert_eq!(
            d.config,
            TopologyConfig::DnsPoll(DnsPollConfig {
                polling_interval: Duration::from_secs(1),
                nameserver: Some("127.0.0.1:5353".parse().unwrap()),
                ..DnsPollConfig::new("app.local", "app")
            })
        );
        assert_eq!(
            k.config,
            TopologyConfig::KubernetesDnsSrv(KubernetesDnsConfig {
                namespace: Some("ns".into()),
                nameserver: Some("127.0.0.1:53".parse().unwrap()),
                ..KubernetesDnsConfig::new("svc", "app")
            })
        );
        assert_eq!(
            t[1],
            Topology::gossip(
                "g",
                GossipConfig::default()
                    .port(45999)
                    .broadcast("127.255.255.255".parse().unwrap())
                    .secret("s")
            )
        );
        assert_eq!(
            t[0],
            Topology::epmd(
                "e",
                EpmdConfig::hosts(["a@127.0.0.1", "b@127.0.0.1"]).timeout(Duration::from_secs(3))
            )
        );
        assert_eq!(t[3], Topology::local_epmd("l"));
        assert_eq!(
            t[2].config,
            TopologyConfig::ErlangHosts(ErlangHostsConfig {
                hosts_file: Some("/tmp/h".into()),
                ..Default::default()
            })
        );
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key() {
        let e = err("[topologies.g]\nstrategy = \"Gossip\"\nconfig = { prot = 1 }");
        assert!(
            e.contains("unknown key `prot`") && e.contains("topology g"),
            "{e}"
        );
        let e = err("[topologies.g]\nstrategy = \"Gossip\"\nconfig = { port = 70000 }");
        assert!(e.contains("key `port`") && e.contains("70000"), "{e}");
        let e = err("[topologies.g]\nstrategy = \"Gossip\"\nconfig = { if_addr = \"nope\" }");
        assert!(e.contains("key `if_addr`") && e.contains("IPv4"), "{e}");
        let e = err("[topologies.g]\nstrategy = \"Gossip\"\nconfig = { broadcast_only = 1 }");
        assert!(e.contains("key `broadcast_only`"), "{e}");
        let e = err("[topologies.e]\nstrategy = \"Epmd\"\nconfig = { hosts = [\"nohost\"] }");
        assert!(e.contains("key `hosts`"), "{e}");
        let e = err("[topologies.e]\nstrategy = \"Epmd\"");
        assert!(e.contains("missing key `hosts`"), "{e}");
        let e = err("[topologies.e]\nstrategy = \"Epmd\"\nconfig = { hosts = [], timeout = -1 }");
        assert!(e.contains("key `timeout`"), "{e}");
        let e = err("[topologies.x]\nstrategy = \"Cluster.Strategy.Nope\"");
        assert!(e.contains("unknown strategy"), "{e}");
        let e = err("[topologies.x]\nstrategy = \"Cluster.Strategy.Kubernetes\"");
        assert!(e.contains("missing key `kubernetes_node_basename`"), "{e}");
        let e = err("[topologies.x]\nstrategy = \"Kubernetes\"\nconfig = { kubernetes_node_basename = \"a\", kubernetes_selector = \"s\", mode = \"ipv9\" }");
        assert!(e.contains("key `mode`"), "{e}");
        let e = err("[topologies.x]\nstrategy = \"Kubernetes\"\nconfig = { kubernetes_node_basename = \"a\", kubernetes_selector = \"s\", mode = \"hostname\" }");
        assert!(e.contains("kubernetes_service_name"), "{e}");
        let e = err("[topologies.x]\nstrategy = \"DNSPoll\"\nconfig = { query = \"q\" }");
        assert!(e.contains("missing key `node_basename`"), "{e}");
        let e = err("[topologies.x]\nstrategy = \"DNSPoll\"\nconfig = { query = \"q\", node_basename = \"a\", nameserver = \"x\" }");
        assert!(e.contains("key `nameserver`"), "{e}");
        let e = err("[topologies.x]\nstrategy = \"Kubernetes.DNS\"\nconfig = { service = \"s\", application_name = \"a\", namespace = \"n\" }");
        assert!(e.contains("unknown key `namespace`"), "{e}");
        let e = err("[topologies.x]\nstrategy = \"Gossip\"\nconnect = \"x\"");
        assert!(e.contains("key `connect`"), "{e}");
        let e = err("[topologies.x]\nconfig = {}");
        assert!(e.contains("missing key `strategy`"), "{e}");
        let e = err("topology = 1");
        assert!(e.contains("unknown key `topology`"), "{e}");
        assert!(err("[[[").contains("TOML"));
    }
}
