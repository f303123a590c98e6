//! `Cluster.Strategy.Kubernetes`: the Kubernetes API's endpoints (or pods, or
//! endpointslices) that match a label selector.
//!
//! Contract (libcluster's `kubernetes.ex`): every `polling_interval` (5 s) it sends
//! `GET https://<master>/api/v1/namespaces/<ns>/endpoints?labelSelector=<selector>`
//! (`/pods` with `ip_lookup_mode = "pods"`; `resourceVersion=0` first when
//! `kubernetes_use_cached_resources`) with the service account's bearer token
//! (`<sa>/token`), verifying the server against `<sa>/ca.crt` (no verification when that
//! file is missing, as libcluster). The namespace is `kubernetes_namespace` or
//! `<sa>/namespace`. `<master>` is `kubernetes_master` (`kubernetes.default.svc`) with
//! `.<cluster domain>` appended unless it already ends with it or with `.`; the cluster
//! domain is `$CLUSTER_DOMAIN` or `<kubernetes_cluster_name>.local`. Each address
//! becomes a node by `mode`: `ip` → `base@IP`, `dns` → `base@a-b-c-d.<ns>.pod.<cluster>.local`,
//! `hostname` → `base@<hostname>.<service>.<ns>.svc.<cluster>.local`. New nodes are
//! connected, nodes no longer listed are disconnected. A 403 answer lists nobody (as
//! libcluster); any other failure keeps the previous list and retries with backoff.
//!
//! Differences: `ip_lookup_mode = "endpointslices"` (Orbit's) reads
//! `discovery.k8s.io/v1` EndpointSlices and skips endpoints whose `conditions.ready` is
//! false; a master given as an IP or `host:port` gets no domain appended; an address
//! without `targetRef.namespace` uses the item's namespace (libcluster crashes on it);
//! an address without a hostname is skipped in `hostname` mode.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::https;
use super::{Poll, StrategyContext, StrategyError};

/// Where the addresses come from (`kubernetes_ip_lookup_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpLookupMode {
    /// `endpoints` (default): Endpoints objects' subsets.
    Endpoints,
    /// `pods`: Pods' `status.podIP`.
    Pods,
    /// `endpointslices` (Orbit's): `discovery.k8s.io/v1` EndpointSlices.
    EndpointSlices,
}

/// How a node is named (`mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeNameMode {
    /// `base@IP` (default).
    Ip,
    /// `base@a-b-c-d.<ns>.pod.<cluster>.local`.
    Dns,
    /// `base@<hostname>.<service>.<ns>.svc.<cluster>.local`.
    Hostname,
}

/// libcluster's Kubernetes config keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// `kubernetes_node_basename` (required).
    pub node_basename: String,
    /// `kubernetes_selector` (required), e.g. `app=myapp`.
    pub selector: String,
    /// `kubernetes_namespace` (none: `<sa>/namespace`).
    pub namespace: Option<String>,
    /// `kubernetes_ip_lookup_mode`.
    pub ip_lookup_mode: IpLookupMode,
    /// `mode`.
    pub mode: NodeNameMode,
    /// `kubernetes_service_name` (for `hostname` mode).
    pub service_name: Option<String>,
    /// `kubernetes_cluster_name` (`cluster`).
    pub cluster_name: String,
    /// `kubernetes_master` (`kubernetes.default.svc`).
    pub master: String,
    /// `kubernetes_service_account_path`.
    pub service_account_path: PathBuf,
    /// `polling_interval` (5 s).
    pub polling_interval: Duration,
    /// `kubernetes_use_cached_resources` (adds `resourceVersion=0`).
    pub use_cached_resources: bool,
}

impl KubernetesConfig {
    /// The required keys, the rest libcluster's defaults.
    pub fn new(node_basename: &str, selector: &str) -> KubernetesConfig {
        KubernetesConfig {
            node_basename: node_basename.into(),
            selector: selector.into(),
            namespace: None,
            ip_lookup_mode: IpLookupMode::Endpoints,
            mode: NodeNameMode::Ip,
            service_name: None,
            cluster_name: "cluster".into(),
            master: "kubernetes.default.svc".into(),
            service_account_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
            polling_interval: Duration::from_secs(5),
            use_cached_resources: false,
        }
    }
}

/// The Kubernetes API source.
#[derive(Debug, Clone)]
pub struct Kubernetes(pub KubernetesConfig);

/// One address the API listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub ip: String,
    pub namespace: String,
    pub hostname: Option<String>,
}

fn read_trimmed(p: PathBuf) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Kubernetes {
    fn cluster_domain(&self) -> String {
        std::env::var("CLUSTER_DOMAIN").unwrap_or_else(|_| format!("{}.local", self.0.cluster_name))
    }

    /// The API server's host and port.
    pub fn master(&self) -> (String, u16) {
        let m = &self.0.master;
        if let Ok(sa) = m.parse::<std::net::SocketAddr>() {
            return (sa.ip().to_string(), sa.port());
        }
        if m.parse::<std::net::IpAddr>().is_ok() {
            return (m.clone(), 443);
        }
        let (host, port) = match m.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_string(), p.parse().unwrap_or(443)),
            _ => (m.clone(), 443),
        };
        let domain = self.cluster_domain();
        let host = if host.ends_with(&domain) || host.ends_with('.') {
            host
        } else {
            format!("{host}.{domain}")
        };
        (host.trim_end_matches('.').to_string(), port)
    }

    /// The request path (with its query) for this namespace.
    pub fn path(&self, namespace: &str) -> String {
        let mut q = Vec::new();
        if self.0.use_cached_resources {
            q.push("resourceVersion=0".to_string());
        }
        q.push(format!("labelSelector={}", encode(&self.0.selector)));
        let q = q.join("&");
        match self.0.ip_lookup_mode {
            IpLookupMode::Endpoints => format!("/api/v1/namespaces/{namespace}/endpoints?{q}"),
            IpLookupMode::Pods => format!("/api/v1/namespaces/{namespace}/pods?{q}"),
            IpLookupMode::EndpointSlices => {
                format!("/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices?{q}")
            }
        }
    }

    /// The node name for an address (none when `hostname` mode has no hostname).
    pub(crate) fn node_name(&self, a: &Address) -> Option<String> {
        let base = &self.0.node_basename;
        let cluster = &self.0.cluster_name;
        match self.0.mode {
            NodeNameMode::Ip => Some(format!("{base}@{}", a.ip)),
            NodeNameMode::Dns => Some(format!(
                "{base}@{}.{}.pod.{cluster}.local",
                a.ip.replace('.', "-"),
                a.namespace
            )),
            NodeNameMode::Hostname => a.hostname.as_ref().map(|h| {
                let svc = self.0.service_name.as_deref().unwrap_or_default();
                format!("{base}@{h}.{svc}.{}.svc.{cluster}.local", a.namespace)
            }),
        }
    }
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(String::from)
}

/// The addresses in an API answer (items of the kind `mode` asks for). Never panics.
pub(crate) fn parse_addresses(mode: IpLookupMode, body: &Value, default_ns: &str) -> Vec<Address> {
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for item in &items {
        let item_ns = item
            .pointer("/metadata/namespace")
            .and_then(s)
            .unwrap_or_else(|| default_ns.to_string());
        match mode {
            IpLookupMode::Endpoints => {
                let subsets = item.get("subsets").and_then(Value::as_array);
                for sub in subsets.into_iter().flatten() {
                    let addrs = sub.get("addresses").and_then(Value::as_array);
                    for a in addrs.into_iter().flatten() {
                        let Some(ip) = a.get("ip").and_then(s) else {
                            continue;
                        };
                        let namespace = a
                            .pointer("/targetRef/namespace")
                            .and_then(s)
                            .unwrap_or_else(|| item_ns.clone());
                        out.push(Address {
                            ip,
                            namespace,
                            hostname: a.get("hostname").and_then(s),
                        });
                    }
                }
            }
            IpLookupMode::Pods => {
                let Some(ip) = item.pointer("/status/podIP").and_then(s) else {
                    continue;
                };
                let hostname = item.pointer("/spec/hostname").and_then(s);
                out.push(Address {
                    ip,
                    namespace: item_ns,
                    hostname,
                });
            }
            IpLookupMode::EndpointSlices => {
                let eps = item.get("endpoints").and_then(Value::as_array);
                for ep in eps.into_iter().flatten() {
                    if ep.pointer("/conditions/ready").and_then(Value::as_bool) == Some(false) {
                        continue;
                    }
                    let namespace = ep
                        .pointer("/targetRef/namespace")
                        .and_then(s)
                        .unwrap_or_else(|| item_ns.clone());
                    let hostname = ep.get("hostname").and_then(s);
                    let addrs = ep.get("addresses").and_then(Value::as_array);
                    for ip in addrs.into_iter().flatten().filter_map(s) {
                        out.push(Address {
                            ip,
                            namespace: namespace.clone(),
                            hostname: hostname.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

impl Poll for Kubernetes {
    fn kind(&self) -> &'static str {
        "Cluster.Strategy.Kubernetes"
    }
    fn interval(&self) -> Option<Duration> {
        Some(self.0.polling_interval)
    }
    fn disconnect_vanished(&self) -> bool {
        true
    }
    fn discover<'a>(
        &'a mut self,
        ctx: &'a StrategyContext,
    ) -> BoxFuture<'a, Result<Vec<String>, StrategyError>> {
        Box::pin(async move {
            let sa = &self.0.service_account_path;
            let token = read_trimmed(sa.join("token")).unwrap_or_default();
            let ca = std::fs::read(sa.join("ca.crt")).ok();
            let namespace = match &self.0.namespace {
                Some(n) => n.clone(),
                None => read_trimmed(sa.join("namespace")).unwrap_or_default(),
            };
            let tls = https::client_config(ca.as_deref()).map_err(StrategyError::Discovery)?;
            let (host, port) = self.master();
            let path = self.path(&namespace);
            let auth = format!("Bearer {token}");
            let r = https::get(
                Arc::new(tls),
                &host,
                port,
                &path,
                &[("Authorization", &auth)],
                Duration::from_secs(15),
            )
            .await
            .map_err(|e| StrategyError::Discovery(format!("request to kubernetes failed: {e}")))?;
            match r.status {
                200 => {}
                403 => {
                    let msg = serde_json::from_slice::<Value>(&r.body)
                        .ok()
                        .and_then(|v| v.get("message").and_then(s))
                        .unwrap_or_default();
                    tracing::warn!(topology = %ctx.topology, "cannot query kubernetes (unauthorized): {msg}");
                    return Ok(Vec::new());
                }
                code => {
                    let body =
                        String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).into_owned();
                    return Err(StrategyError::Discovery(format!(
                        "cannot query kubernetes ({code}): {body}"
                    )));
                }
            }
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| {
                StrategyError::Discovery(format!("kubernetes answer is not JSON: {e}"))
            })?;
            let me = ctx.connector.self_name();
            let mut nodes: Vec<String> = parse_addresses(self.0.ip_lookup_mode, &v, &namespace)
                .iter()
                .filter_map(|a| self.node_name(a))
                .filter(|n| *n != me)
                .collect();
            nodes.sort();
            nodes.dedup();
            Ok(nodes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_and_path() {
        let mut k = Kubernetes(KubernetesConfig::new("app", "app=my app,tier in (a)"));
        assert_eq!(
            k.master(),
            ("kubernetes.default.svc.cluster.local".into(), 443)
        );
        assert_eq!(
            k.path("prod"),
            "/api/v1/namespaces/prod/endpoints?labelSelector=app%3Dmy%20app%2Ctier%20in%20%28a%29"
        );
        k.0.master = "127.0.0.1:6443".into();
        assert_eq!(k.master(), ("127.0.0.1".into(), 6443));
        k.0.master = "api.example.com.".into();
        assert_eq!(k.master(), ("api.example.com".into(), 443));
        k.0.use_cached_resources = true;
        k.0.ip_lookup_mode = IpLookupMode::Pods;
        assert!(k
            .path("ns")
            .starts_with("/api/v1/namespaces/ns/pods?resourceVersion=0&labelSelector="));
    }

    #[test]
    fn node_names_by_mode() {
        let mut k = Kubernetes(KubernetesConfig::new("app", "x"));
        let a = Address {
            ip: "10.1.2.3".into(),
            namespace: "prod".into(),
            hostname: Some("app-0".into()),
        };
        assert_eq!(k.node_name(&a).unwrap(), "app@10.1.2.3");
        k.0.mode = NodeNameMode::Dns;
        assert_eq!(
            k.node_name(&a).unwrap(),
            "app@10-1-2-3.prod.pod.cluster.local"
        );
        k.0.mode = NodeNameMode::Hostname;
        k.0.service_name = Some("svc".into());
        assert_eq!(
            k.node_name(&a).unwrap(),
            "app@app-0.svc.prod.svc.cluster.local"
        );
        assert_eq!(
            k.node_name(&Address {
                hostname: None,
                ..a
            }),
            None
        );
    }

    #[test]
    fn hostile_json_is_ignored() {
        for body in [
            serde_json::json!(null),
            serde_json::json!({"items": 3}),
            serde_json::json!({"items": [1, {"subsets": "x"}, {"subsets": [{"addresses": [{"ip": 5}]}]}]}),
            serde_json::json!({"items": [{"endpoints": [{"addresses": [1, null]}]}]}),
        ] {
            for m in [
                IpLookupMode::Endpoints,
                IpLookupMode::Pods,
                IpLookupMode::EndpointSlices,
            ] {
                assert!(parse_addresses(m, &body, "ns").is_empty(), "{m:?} {body}");
            }
        }
    }
}
