//! DNSPoll, Kubernetes.DNS and Kubernetes.DNSSRV against a real DNS server on loopback
//! (hickory-server in-process, authoritative for `cluster.test.`), with a fake connector
//! that records the nodes each strategy connects: the names libcluster would form
//! (`basename@IP` for A and AAAA, `app@target` for SRV), and a record added between
//! polls is connected on the next poll.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use common::fake::Fake;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use hickory_server::Server;
use orbit_cluster::strategy::{
    Cluster, DnsPoll, DnsPollConfig, KubernetesDns, KubernetesDnsConfig, KubernetesDnsMode, Polling,
};
use tokio::sync::mpsc;

type Zone = InMemoryZoneHandler<TokioRuntimeProvider>;

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn rec(n: &str, data: RData) -> Record {
    Record::from_rdata(name(n), 0, data)
}

async fn dns_server(zone: Arc<Zone>) -> (Server<Catalog>, SocketAddr) {
    let mut catalog = Catalog::new();
    catalog.upsert(
        LowerName::new(&name("cluster.test.")),
        vec![zone as Arc<dyn ZoneHandler>],
    );
    let mut server = Server::new(catalog);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    server.register_socket(sock);
    (server, addr)
}

/// Collects connect attempts until `want` are all seen (or 10 s pass).
async fn attempts_until(
    rx: &mut mpsc::UnboundedReceiver<(String, bool, tokio::time::Instant)>,
    want: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !want.is_subset(&seen) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((n, _, _))) => {
                seen.insert(n);
            }
            _ => break,
        }
    }
    seen
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_strategies_against_a_real_dns_server() {
    // SAFETY of the environment: this is the only test in this binary.
    std::env::set_var("CLUSTER_DOMAIN", "cluster.test.");
    let mut zone = Zone::empty(name("cluster.test."), ZoneType::Primary, AxfrPolicy::Deny);
    let soa = SOA::new(
        name("ns.cluster.test."),
        name("admin.cluster.test."),
        1,
        3600,
        1800,
        604800,
        0,
    );
    zone.upsert_mut(rec("cluster.test.", RData::SOA(soa)), 1);
    for ip in [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)] {
        zone.upsert_mut(rec("app.cluster.test.", RData::A(A(ip))), 1);
    }
    zone.upsert_mut(
        rec("app.cluster.test.", RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))),
        1,
    );
    zone.upsert_mut(
        rec(
            "svc.cluster.test.",
            RData::A(A(Ipv4Addr::new(127, 0, 0, 3))),
        ),
        1,
    );
    for pod in ["pod-0", "pod-1"] {
        let target = name(&format!("{pod}.svc.ns.svc.cluster.test."));
        zone.upsert_mut(
            rec(
                "svc.ns.svc.cluster.test.",
                RData::SRV(SRV::new(0, 50, 4369, target)),
            ),
            1,
        );
    }
    let zone = Arc::new(zone);
    let (_server, addr) = dns_server(zone.clone()).await;

    // DNSPoll: A and AAAA, `basename@IP`, this node itself left out.
    let (fake, mut rx) = Fake::new("dnsapp@127.0.0.1");
    let cfg = DnsPollConfig {
        polling_interval: Duration::from_millis(200),
        nameserver: Some(addr),
        ..DnsPollConfig::new("app.cluster.test.", "dnsapp")
    };
    let cluster = Cluster::start_one(
        "dns",
        Box::new(Polling::new(DnsPoll::new(cfg))),
        fake.clone(),
    );
    let want = set(&["dnsapp@127.0.0.2", "dnsapp@::1"]);
    assert_eq!(attempts_until(&mut rx, &want).await, want);
    // A record added between polls is connected on a following poll.
    zone.upsert(
        rec(
            "app.cluster.test.",
            RData::A(A(Ipv4Addr::new(127, 0, 0, 4))),
        ),
        2,
    )
    .await;
    let want = set(&["dnsapp@127.0.0.4"]);
    assert_eq!(
        attempts_until(&mut rx, &want).await,
        want,
        "connected ones are not dialled again"
    );
    cluster.stop().await;

    // Kubernetes.DNS: the service's A records, `application_name@IP`.
    let (fake, mut rx) = Fake::new("k8s@10.0.0.1");
    let cfg = KubernetesDnsConfig {
        nameserver: Some(addr),
        ..KubernetesDnsConfig::new("svc.cluster.test.", "k8s")
    };
    let s = Polling::new(KubernetesDns::new(cfg, KubernetesDnsMode::Addresses));
    let cluster = Cluster::start_one("k8s-dns", Box::new(s), fake.clone());
    let want = set(&["k8s@127.0.0.3"]);
    assert_eq!(attempts_until(&mut rx, &want).await, want);
    cluster.stop().await;

    // Kubernetes.DNSSRV: SRV of service.namespace.svc.$CLUSTER_DOMAIN, `app@target`.
    let (fake, mut rx) = Fake::new("k8s@pod-0.svc.ns.svc.cluster.test");
    let cfg = KubernetesDnsConfig {
        namespace: Some("ns".into()),
        nameserver: Some(addr),
        ..KubernetesDnsConfig::new("svc", "k8s")
    };
    let s = KubernetesDns::new(cfg, KubernetesDnsMode::Srv);
    assert_eq!(s.srv_name(), "svc.ns.svc.cluster.test.");
    let cluster = Cluster::start_one("k8s-srv", Box::new(Polling::new(s)), fake.clone());
    let want = set(&["k8s@pod-1.svc.ns.svc.cluster.test"]);
    assert_eq!(attempts_until(&mut rx, &want).await, want);
    cluster.stop().await;

    // A name that does not exist: discovery fails, retried with backoff, nothing dialled.
    let (fake, mut rx) = Fake::new("x@127.0.0.1");
    let cfg = DnsPollConfig {
        nameserver: Some(addr),
        ..DnsPollConfig::new("nope.cluster.test.", "x")
    };
    let cluster = Cluster::start_one(
        "nx",
        Box::new(Polling::new(DnsPoll::new(cfg))),
        fake.clone(),
    );
    assert!(tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .is_err());
    assert!(
        !cluster.any_stopped(),
        "a failed lookup must not stop the strategy"
    );
    cluster.stop().await;
}
