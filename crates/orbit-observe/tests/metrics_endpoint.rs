//! `/metrics`: the exposition parses with a Prometheus text parser, has the node,
//! named-process, pool, cache and stage series, and they move under load; the JSON
//! API agrees; the token rules hold.

mod common;

use std::time::Duration;

use common::{eventually, get, http, max_value, parse, value};
use orbit::cache::{CacheOptions, ConCache, Ttl};
use orbit::pool::{Pool, PoolOptions};
use orbit::stage::{
    self, Consumer, ConsumerContext, ConsumerOptions, Producer, ProducerContext, ProducerOptions,
    SubscribeOptions, Subscription,
};
use orbit::{gen_server, ExitReason, SimpleServer};
use orbit_observe::{serve, ObserveError, ObserveOptions};

struct Counter(u64);

impl SimpleServer for Counter {
    type Call = ();
    type Reply = u64;
    type Cast = u64;
    fn call(&mut self, _: ()) -> u64 {
        self.0
    }
    fn cast(&mut self, k: u64) {
        self.0 += k;
    }
}

struct Numbers(u64);

impl Producer for Numbers {
    type Event = u64;
    type Info = ();
    async fn handle_demand(
        &mut self,
        demand: usize,
        _ctx: &mut ProducerContext<Self>,
    ) -> Result<Vec<u64>, ExitReason> {
        let events = (self.0..self.0 + demand as u64).collect();
        self.0 += demand as u64;
        Ok(events)
    }
}

struct Sink;

impl Consumer for Sink {
    type Event = u64;
    type Info = ();
    async fn handle_events(
        &mut self,
        _events: Vec<u64>,
        _from: &Subscription,
        _ctx: &mut ConsumerContext<Self>,
    ) -> Result<(), ExitReason> {
        tokio::task::yield_now().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposition_parses_has_every_family_and_moves_under_load() {
    let dash =
        serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()).tick(Duration::from_millis(100)))
            .await
            .expect("the dashboard starts on loopback without a token");
    let addr = dash.local_addr();

    // Started after the exporter: their series bind to it.
    let counter = gen_server::start_named(Counter(0), "observed_counter", false)
        .await
        .unwrap();
    let pool = Pool::start(PoolOptions::new(1, 0).name("observed_pool"), || Counter(0))
        .await
        .unwrap();
    let cache: ConCache<u64, u64> = ConCache::start(
        CacheOptions::new()
            .name("observed_cache")
            .ttl_check_interval(Duration::from_millis(20))
            .global_ttl(Ttl::After(Duration::from_millis(30))),
    )
    .await
    .unwrap();
    let producer = stage::start_producer(Numbers(0), ProducerOptions::new())
        .await
        .unwrap();
    let _consumer = stage::start_consumer(
        Sink,
        ConsumerOptions::new()
            .subscribe_to(&producer.producer(), SubscribeOptions::new().max_demand(50)),
    )
    .await
    .unwrap();

    // Load: casts to the named server, checkouts that queue, cache hits, misses, expiries.
    for _ in 0..5000 {
        counter.cast(1);
    }
    assert_eq!(counter.call(()).await.unwrap(), 5000);
    // Calls: sampled into the call-duration histogram.
    for _ in 0..640 {
        counter.call(()).await.unwrap();
    }
    let lease = pool.checkout(true, Duration::from_secs(5)).await.unwrap();
    let p2 = pool.clone();
    let waiter =
        tokio::spawn(async move { p2.checkout(true, Duration::from_secs(5)).await.map(drop) });
    eventually("a checkout queues", Duration::from_secs(10), || {
        let p = pool.clone();
        async move { p.stats().waiting == 1 }
    })
    .await;
    drop(lease);
    waiter.await.unwrap().unwrap();
    for k in 0..100u64 {
        cache.put(k, k).await.unwrap();
        assert_eq!(cache.get(&k).unwrap(), Some(k));
        assert_eq!(cache.get(&(k + 1000)).unwrap(), None);
    }

    let scrape = || async move {
        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200, "/metrics answered {status}: {body}");
        parse(&body)
    };
    // Every family, once the collector ticked and the sweeper expired the items.
    eventually(
        "every family in /metrics",
        Duration::from_secs(20),
        || async {
            let s = scrape().await;
            let missing: Vec<&str> = [
                ("orbit_processes", vec![]),
                ("orbit_messages_per_second", vec![]),
                ("orbit_rss_bytes", vec![]),
                ("orbit_run_queue", vec![]),
                (
                    "orbit_process_mailbox_len",
                    vec![("name", "observed_counter")],
                ),
                (
                    "orbit_process_messages_handled_total",
                    vec![("name", "observed_counter")],
                ),
                (
                    "orbit_pool_checkouts_total",
                    vec![("pool", "observed_pool")],
                ),
                ("orbit_pool_wait_seconds", vec![("pool", "observed_pool")]),
                ("orbit_cache_hits_total", vec![("cache", "observed_cache")]),
                (
                    "orbit_cache_misses_total",
                    vec![("cache", "observed_cache")],
                ),
                (
                    "orbit_cache_expirations_total",
                    vec![("cache", "observed_cache")],
                ),
                ("orbit_cache_size", vec![("cache", "observed_cache")]),
                ("orbit_stage_events_out_total", vec![]),
                ("orbit_stage_buffered", vec![]),
                ("orbit_call_duration_seconds", vec![]),
            ]
            .iter()
            .filter(|(m, l)| value(&s, m, l).is_none())
            .map(|(m, _)| *m)
            .collect();
            if !missing.is_empty() {
                eprintln!("still missing: {missing:?}");
            }
            missing.is_empty()
        },
    )
    .await;
    let s = scrape().await;
    assert_eq!(
        value(&s, "orbit_cache_hits_total", &[("cache", "observed_cache")]),
        Some(100.0)
    );
    assert_eq!(
        value(
            &s,
            "orbit_cache_misses_total",
            &[("cache", "observed_cache")]
        ),
        Some(100.0)
    );
    assert_eq!(
        value(&s, "orbit_pool_wait_seconds", &[("pool", "observed_pool")]),
        Some(2.0)
    );
    let expired = value(
        &s,
        "orbit_cache_expirations_total",
        &[("cache", "observed_cache")],
    )
    .unwrap();
    let handled = |s: &prometheus_parse::Scrape| {
        value(
            s,
            "orbit_process_messages_handled_total",
            &[("name", "observed_counter")],
        )
        .unwrap()
    };
    // The series is set at each collector tick: the next ones see every message.
    eventually(
        "the named process's 5001 messages in its series",
        Duration::from_secs(10),
        || async { handled(&scrape().await) >= 5001.0 },
    )
    .await;
    let before = handled(&scrape().await);
    let stage_out = max_value(&s, "orbit_stage_events_out_total").unwrap();

    // More load: the series move.
    for _ in 0..3000 {
        counter.cast(1);
    }
    counter.call(()).await.unwrap();
    eventually(
        "the named process's handled count moves",
        Duration::from_secs(10),
        || async { handled(&scrape().await) >= before + 3001.0 },
    )
    .await;
    eventually(
        "the expirations counter moves",
        Duration::from_secs(10),
        || async {
            value(
                &scrape().await,
                "orbit_cache_expirations_total",
                &[("cache", "observed_cache")],
            )
            .unwrap_or(0.0)
                >= 100.0
        },
    )
    .await;
    assert!(expired <= 100.0);
    eventually(
        "the stage's events out move",
        Duration::from_secs(10),
        || async {
            max_value(&scrape().await, "orbit_stage_events_out_total").unwrap_or(0.0) > stage_out
        },
    )
    .await;

    // The JSON API sees the same node.
    let (status, body) = get(addr, "/api/node").await;
    assert_eq!(status, 200);
    let node: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(node["processes"].as_u64().unwrap() >= 4, "{node}");
    let (status, body) = get(addr, "/api/resources").await;
    assert_eq!(status, 200);
    let r: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        r["caches"]["observed_cache"]["hits_total"].as_f64(),
        Some(100.0),
        "{r}"
    );
    assert!(
        r["pools"]["observed_pool"]["wait_seconds_count"]
            .as_f64()
            .is_some(),
        "{r}"
    );
    assert!(
        r["named"]["observed_counter"]["messages_handled_total"]
            .as_f64()
            .is_some(),
        "{r}"
    );
    dash.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rules() {
    // Beyond loopback without a token: refused, saying why.
    let e = serve(ObserveOptions::new("0.0.0.0:0".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(e, ObserveError::TokenRequired(_)), "{e}");
    assert!(e.to_string().contains("token"), "{e}");
    let e = serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()).token("short"))
        .await
        .unwrap_err();
    assert!(matches!(e, ObserveError::WeakToken(5)), "{e}");

    // Without a token, only loopback names: a rebound DNS name is refused.
    let open = serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let a = open.local_addr();
    assert_eq!(get(a, "/api/node").await.0, 200);
    assert_eq!(
        http(a, "GET", "/api/node", &[("Host", "evil.example:80")])
            .await
            .0,
        403
    );
    assert_eq!(
        http(a, "GET", "/api/node", &[("Host", "localhost")])
            .await
            .0,
        200
    );
    open.stop();

    let token = "0123456789abcdef-token";
    let dash = serve(ObserveOptions::new("127.0.0.1:0".parse().unwrap()).token(token))
        .await
        .unwrap();
    let addr = dash.local_addr();
    for path in ["/", "/metrics", "/api/node", "/api/processes"] {
        assert_eq!(get(addr, path).await.0, 401, "{path} without the token");
        assert_eq!(
            get(addr, &format!("{path}?token=wrong-wrong-wrong-1"))
                .await
                .0,
            401,
            "{path} wrong token"
        );
        assert_eq!(
            get(addr, &format!("{path}?token={token}")).await.0,
            200,
            "{path} with ?token"
        );
        assert_eq!(
            http(addr, "GET", path, &[("x-orbit-token", token)]).await.0,
            200,
            "{path} with the header"
        );
        assert_eq!(
            http(
                addr,
                "GET",
                path,
                &[("Authorization", &format!("Bearer {token}"))]
            )
            .await
            .0,
            200,
            "{path} with a bearer token"
        );
    }
    dash.stop();
}
