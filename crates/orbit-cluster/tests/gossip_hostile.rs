//! Orbit's Gossip fed hostile packets on loopback (a fake connector records connects):
//! random bytes, truncated and malformed terms, a non-atom node, huge packets, our own
//! name, the wrong secret. Every one is dropped and counted, none panics the strategy,
//! and a good heartbeat afterwards still connects; a dropped connection heals on the
//! next heartbeat.

mod common;

use std::time::Duration;

use common::fake::Fake;
use orbit_cluster::strategy::gossip_packet::{self, PREFIX};
use orbit_cluster::strategy::{Cluster, Gossip, GossipConfig, GossipStats};
use orbit_term::Term;
use tokio::net::UdpSocket;

const T: Duration = Duration::from_secs(10);

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn hostile(rng: &mut Rng, secret: Option<&str>) -> Vec<Vec<u8>> {
    let iv = [7u8; 16];
    let wrap = |body: Vec<u8>| -> Vec<u8> {
        // Valid framing (prefix, and encryption when a secret is set) around a bad body.
        let plain = [PREFIX.to_vec(), body].concat();
        match secret {
            None => plain,
            Some(s) => {
                use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
                let ct =
                    cbc::Encryptor::<aes::Aes256>::new(&gossip_packet::key(s).into(), &iv.into())
                        .encrypt_padded_vec_mut::<Pkcs7>(&plain);
                [iv.to_vec(), ct].concat()
            }
        }
    };
    let map = |v: Term| Term::map(vec![(Term::atom("node"), v)]).encode();
    let mut v = vec![
        Vec::new(),
        b"heartbeat::".to_vec(),
        wrap(vec![131]),
        wrap(map(Term::Int(42))),
        wrap(map(Term::Binary(b"a@b".to_vec()))),
        wrap(map(Term::atom("no_host"))),
        wrap(Term::atom("a@b").encode()),
        wrap(
            Term::map(vec![
                (Term::atom("node"), Term::atom("a@b")),
                (Term::atom("x"), Term::Int(1)),
            ])
            .encode(),
        ),
        // A list that claims 4 billion elements, a compressed term that claims 4 GB.
        wrap(vec![131, 108, 255, 255, 255, 255]),
        wrap(vec![131, 80, 255, 255, 255, 255, 1, 2, 3]),
        wrap(
            [
                vec![131],
                (0..200).flat_map(|_| [104u8, 1]).collect(),
                vec![106],
            ]
            .concat(),
        ),
        vec![0xAB; 60_000],
        gossip_packet::encode("x@127.0.0.1", Some("the wrong one"), iv),
    ];
    if secret.is_none() {
        v.pop();
    }
    for i in 0..300 {
        let n = (rng.next() % 200) as usize;
        let mut p = rng.bytes(n);
        if i % 2 == 0 {
            p = wrap(p);
        }
        v.push(p);
    }
    v
}

async fn feed(stats: &GossipStats, to: u16, packets: &[Vec<u8>]) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let base = stats.get().received;
    for (i, p) in packets.iter().enumerate() {
        s.send_to(p, ("127.0.0.1", to)).await.unwrap();
        if i % 50 == 49 {
            // Flow control: wait until the strategy has read what was sent so far.
            let want = base + i as u64 + 1;
            stats
                .wait_for(T, |c| c.received >= want)
                .await
                .expect("packets read");
        }
    }
    // Every packet read and handled (each ends as dropped, own or accepted).
    let want = base + packets.len() as u64;
    stats
        .wait_for(T, |c| {
            c.received >= want && c.dropped + c.own + c.accepted == c.received
        })
        .await
        .expect("packets handled");
}

async fn run(port: u16, secret: Option<&str>) {
    let me = "me@127.0.0.1";
    let (fake, mut attempts) = Fake::new(me);
    // Bound to 127.0.0.1, the strategy does not hear its own broadcasts: every packet
    // it receives is one this test sent.
    let mut cfg = GossipConfig::default()
        .port(port)
        .if_addr("127.0.0.1".parse().unwrap())
        .broadcast("127.255.255.255".parse().unwrap());
    if let Some(s) = secret {
        cfg = cfg.secret(s);
    }
    let g = Gossip::new(cfg);
    let stats = g.stats();
    let cluster = Cluster::start_one("t", Box::new(g), fake.clone());
    // Probe until the socket is bound (a probe sent before that is lost).
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut up = false;
    for _ in 0..100 {
        probe.send_to(b"probe", ("127.0.0.1", port)).await.unwrap();
        if stats
            .wait_for(Duration::from_millis(100), |c| c.received >= 1)
            .await
            .is_ok()
        {
            up = true;
            break;
        }
    }
    assert!(up, "the gossip socket never received a probe");
    stats
        .wait_for(T, |c| c.dropped == c.received)
        .await
        .expect("probes dropped");

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let bad = hostile(&mut rng, secret);
    let before = stats.get();
    feed(&stats, port, &bad).await;
    let after = stats.get();
    assert_eq!(
        after.dropped - before.dropped,
        bad.len() as u64,
        "before {before:?} after {after:?}"
    );
    assert_eq!(after.accepted, 0, "{after:?}");

    // Our own name from elsewhere: ignored, not connected.
    let own = gossip_packet::encode(me, secret, [1; 16]);
    feed(&stats, port, &[own]).await;
    assert_eq!((stats.get().own, stats.get().accepted), (1, 0));

    // A good heartbeat still connects.
    let good = gossip_packet::encode("peer@127.0.0.1", secret, [2; 16]);
    feed(&stats, port, std::slice::from_ref(&good)).await;
    let (n, ok, _) = tokio::time::timeout(T, attempts.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n.as_str(), ok), ("peer@127.0.0.1", true));
    // Already connected: the next heartbeat does not dial again.
    feed(&stats, port, std::slice::from_ref(&good)).await;
    // The connection drops; the next heartbeat heals it.
    fake.drop_node("peer@127.0.0.1");
    feed(&stats, port, std::slice::from_ref(&good)).await;
    let (n, ok, _) = tokio::time::timeout(T, attempts.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n.as_str(), ok), ("peer@127.0.0.1", true));
    assert!(
        attempts.try_recv().is_err(),
        "one dial per missing connection"
    );
    // `connected` is bumped when the dial returns, after the fake recorded it.
    let c = stats
        .wait_for(T, |c| c.connected >= 2)
        .await
        .expect("two dials counted");
    assert_eq!((c.accepted, c.connected, c.failed), (3, 2, 0), "{c:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_gossip_survives_hostile_packets() {
    run(47321, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_gossip_survives_hostile_packets() {
    run(47322, Some("s3cret")).await;
}
