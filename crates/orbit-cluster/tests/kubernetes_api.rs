//! The Kubernetes API strategy against a local HTTPS server (rustls, certificates made
//! by rcgen) that answers with the API's real response shapes (EndpointsList, PodList,
//! discovery.k8s.io/v1 EndpointSliceList): the request carries the service account's
//! bearer token and label selector to the right path, the server is verified against
//! the service account's `ca.crt`, and each mode names nodes as libcluster does. A
//! server signed by another CA is refused (nothing connected, the strategy retries).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::fake::Fake;
use orbit_cluster::strategy::{
    Cluster, IpLookupMode, Kubernetes, KubernetesConfig, NodeNameMode, Polling,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

fn endpoints_list() -> serde_json::Value {
    json!({
      "kind": "EndpointsList", "apiVersion": "v1",
      "metadata": {"resourceVersion": "1234"},
      "items": [{
        "metadata": {"name": "myapp-headless", "namespace": "prod", "labels": {"app": "myapp"}},
        "subsets": [{
          "addresses": [
            {"ip": "10.0.0.5", "hostname": "myapp-0", "nodeName": "node-a",
             "targetRef": {"kind": "Pod", "namespace": "prod", "name": "myapp-0", "uid": "u0"}},
            {"ip": "10.0.0.6", "hostname": "myapp-1", "nodeName": "node-b",
             "targetRef": {"kind": "Pod", "namespace": "prod", "name": "myapp-1", "uid": "u1"}}
          ],
          "notReadyAddresses": [
            {"ip": "10.0.0.9", "targetRef": {"kind": "Pod", "namespace": "prod", "name": "myapp-9"}}
          ],
          "ports": [{"name": "epmd", "port": 4369, "protocol": "TCP"}]
        }]
      }]
    })
}

fn pod_list() -> serde_json::Value {
    json!({
      "kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "99"},
      "items": [
        {"metadata": {"name": "myapp-7", "namespace": "prod", "labels": {"app": "myapp"}},
         "spec": {"hostname": "myapp-7", "containers": [{"name": "app", "image": "myapp:1"}]},
         "status": {"phase": "Running", "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}]}},
        {"metadata": {"name": "myapp-8", "namespace": "prod"},
         "spec": {"containers": []},
         "status": {"phase": "Pending"}}
      ]
    })
}

fn endpoint_slice_list() -> serde_json::Value {
    json!({
      "kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
      "metadata": {"resourceVersion": "77"},
      "items": [{
        "metadata": {"name": "myapp-headless-abcde", "namespace": "prod",
                     "labels": {"app": "myapp", "kubernetes.io/service-name": "myapp-headless"}},
        "addressType": "IPv4",
        "endpoints": [
          {"addresses": ["10.0.0.8"], "conditions": {"ready": true, "serving": true, "terminating": false},
           "hostname": "myapp-8", "nodeName": "node-a",
           "targetRef": {"kind": "Pod", "namespace": "prod", "name": "myapp-8", "uid": "u8"}},
          {"addresses": ["10.0.0.10"], "conditions": {"ready": false},
           "hostname": "myapp-10", "targetRef": {"kind": "Pod", "namespace": "prod", "name": "myapp-10"}}
        ],
        "ports": [{"name": "epmd", "port": 4369, "protocol": "TCP"}]
      }]
    })
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn new_ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

/// An HTTPS server for 127.0.0.1 signed by `ca`; each request's head goes to the channel.
async fn api_server(ca: &Ca) -> (u16, mpsc::UnboundedReceiver<String>) {
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca.cert, &ca.key)
        .unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                let (status, body) = if !head.contains("Authorization: Bearer tok123\r\n") {
                    (
                        "403 Forbidden",
                        json!({"kind": "Status", "message": "forbidden: no token"}),
                    )
                } else if path.starts_with("/api/v1/namespaces/prod/endpoints?") {
                    ("200 OK", endpoints_list())
                } else if path.starts_with("/api/v1/namespaces/prod/pods?") {
                    ("200 OK", pod_list())
                } else if path
                    .starts_with("/apis/discovery.k8s.io/v1/namespaces/prod/endpointslices?")
                {
                    ("200 OK", endpoint_slice_list())
                } else {
                    (
                        "404 Not Found",
                        json!({"kind": "Status", "message": "not found"}),
                    )
                };
                let body = body.to_string();
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = tx.send(head);
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, rx)
}

fn service_account(dir: &Path, ca: &Ca) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("token"), "tok123\n").unwrap();
    std::fs::write(dir.join("namespace"), "prod\n").unwrap();
    std::fs::write(dir.join("ca.crt"), ca.cert.pem()).unwrap();
    dir.to_path_buf()
}

async fn nodes_seen(
    rx: &mut mpsc::UnboundedReceiver<(String, bool, tokio::time::Instant)>,
    n: usize,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    while seen.len() < n {
        let (node, _, _) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        seen.insert(node);
    }
    seen
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_api_strategy_against_a_local_https_server() {
    let tmp = std::env::temp_dir().join(format!("orbit-k8s-{}", std::process::id()));
    let ca = new_ca();
    let (port, mut requests) = api_server(&ca).await;
    let sa = service_account(&tmp.join("sa"), &ca);
    let config = |lookup, mode| KubernetesConfig {
        master: format!("127.0.0.1:{port}"),
        service_account_path: sa.clone(),
        ip_lookup_mode: lookup,
        mode,
        service_name: Some("myapp-headless".into()),
        polling_interval: Duration::from_millis(300),
        ..KubernetesConfig::new("myapp", "app=myapp")
    };

    // Endpoints, `ip` mode: ready addresses only.
    let (fake, mut rx) = Fake::new("myapp@10.0.0.6");
    let s = Polling::new(Kubernetes(config(
        IpLookupMode::Endpoints,
        NodeNameMode::Ip,
    )));
    let cluster = Cluster::start_one("k8s", Box::new(s), fake.clone());
    assert_eq!(
        nodes_seen(&mut rx, 1).await,
        set(&["myapp@10.0.0.5"]),
        "itself left out"
    );
    let head = requests.recv().await.unwrap();
    assert!(
        head.starts_with(
            "GET /api/v1/namespaces/prod/endpoints?labelSelector=app%3Dmyapp HTTP/1.1\r\n"
        ),
        "{head}"
    );
    assert!(head.contains("Host: 127.0.0.1\r\n"), "{head}");
    cluster.stop().await;

    // Pods, `dns` mode.
    let (fake, mut rx) = Fake::new("me@127.0.0.1");
    let s = Polling::new(Kubernetes(config(IpLookupMode::Pods, NodeNameMode::Dns)));
    let cluster = Cluster::start_one("k8s", Box::new(s), fake.clone());
    assert_eq!(
        nodes_seen(&mut rx, 1).await,
        set(&["myapp@10-0-0-7.prod.pod.cluster.local"])
    );
    cluster.stop().await;

    // EndpointSlices, `hostname` mode: not-ready endpoints skipped.
    let (fake, mut rx) = Fake::new("me@127.0.0.1");
    let s = Polling::new(Kubernetes(config(
        IpLookupMode::EndpointSlices,
        NodeNameMode::Hostname,
    )));
    let cluster = Cluster::start_one("k8s", Box::new(s), fake.clone());
    assert_eq!(
        nodes_seen(&mut rx, 1).await,
        set(&["myapp@myapp-8.myapp-headless.prod.svc.cluster.local"])
    );
    // Polled again after the interval: the same node, already connected, not dialled.
    while requests.try_recv().is_ok() {}
    for _ in 0..2 {
        let head = tokio::time::timeout(Duration::from_secs(10), requests.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            head.contains("/endpointslices?labelSelector=app%3Dmyapp"),
            "{head}"
        );
    }
    assert!(rx.try_recv().is_err(), "no second dial while connected");
    cluster.stop().await;

    // A server whose certificate another CA signed: refused, nothing dialled, retried.
    while requests.try_recv().is_ok() {}
    let other = new_ca();
    let sa2 = service_account(&tmp.join("sa2"), &other);
    let (fake, mut rx) = Fake::new("me@127.0.0.1");
    let cfg = KubernetesConfig {
        service_account_path: sa2,
        ..config(IpLookupMode::Endpoints, NodeNameMode::Ip)
    };
    let cluster = Cluster::start_one("k8s", Box::new(Polling::new(Kubernetes(cfg))), fake.clone());
    assert!(tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .is_err());
    assert!(!cluster.any_stopped());
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&tmp);
}
