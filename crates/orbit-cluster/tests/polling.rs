//! The polling loop (Epmd's static list) with a fake connector and paused time: failed
//! connects are retried with backoff (0.5 s, 1 s, 2 s...), a node that goes down is
//! reconnected after the backoff, and an interval strategy polls on its interval.

mod common;

use common::fake;

use std::time::Duration;

use orbit_cluster::strategy::{Cluster, Epmd, EpmdConfig, Polling};

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::test(start_paused = true)]
async fn failed_connects_back_off_and_downed_nodes_heal() {
    let (fake, mut attempts) = fake::Fake::new("me@h");
    fake.fail_next("b@h", 3);
    let cfg = EpmdConfig::hosts(["me@h", "b@h", "c@h"]);
    let cluster = Cluster::start_one("t", Box::new(Polling::new(Epmd(cfg))), fake.clone());
    let t0 = tokio::time::Instant::now();
    let mut log = Vec::new();
    // Round 1: b fails, c connects; then b alone at +0.5, +1.5 (fails), +3.5 (connects).
    while log.len() < 5 {
        let (n, ok, at) = attempts.recv().await.unwrap();
        log.push((n, ok, ms(at - t0)));
    }
    let want: Vec<(String, bool, u128)> = vec![
        ("b@h".into(), false, 0),
        ("c@h".into(), true, 0),
        ("b@h".into(), false, 500),
        ("b@h".into(), false, 1500),
        ("b@h".into(), true, 3500),
    ];
    assert_eq!(log, want, "never asked to connect to itself");
    assert!(fake.is_connected("b@h") && fake.is_connected("c@h"));

    // No interval and all connected: nothing happens until a node goes down.
    let quiet = tokio::time::timeout(Duration::from_secs(600), attempts.recv()).await;
    assert!(
        quiet.is_err(),
        "an attempt while all were connected: {quiet:?}"
    );

    // c goes down, and comes back after two more failures: 0.5 s, then 1 s, then 2 s.
    fake.fail_next("c@h", 2);
    let t1 = tokio::time::Instant::now();
    fake.drop_node("c@h");
    let mut log = Vec::new();
    while log.len() < 3 {
        let (n, ok, at) = attempts.recv().await.unwrap();
        log.push((n, ok, ms(at - t1)));
    }
    assert_eq!(
        log,
        vec![
            ("c@h".to_string(), false, 500),
            ("c@h".into(), false, 1500),
            ("c@h".into(), true, 3500)
        ]
    );
    // The backoff reset after everything connected: the next drop heals in 0.5 s.
    let t2 = tokio::time::Instant::now();
    fake.drop_node("b@h");
    let (n, ok, at) = attempts.recv().await.unwrap();
    assert_eq!((n.as_str(), ok, ms(at - t2)), ("b@h", true, 500));
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn timeout_polls_on_its_interval() {
    let (fake, mut attempts) = fake::Fake::new("me@h");
    let cfg = EpmdConfig::hosts(["b@h"]).timeout(Duration::from_secs(10));
    let cluster = Cluster::start_one("t", Box::new(Polling::new(Epmd(cfg))), fake.clone());
    let t0 = tokio::time::Instant::now();
    let (_, ok, at) = attempts.recv().await.unwrap();
    assert!(ok);
    assert_eq!(ms(at - t0), 0);
    // Dropped without an event (as if missed): the next round, 10 s later, reconnects.
    fake.disconnect_silently("b@h");
    let (_, ok, at) = attempts.recv().await.unwrap();
    assert!(ok);
    assert_eq!(ms(at - t0), 10_000);
    cluster.stop().await;
}

/// A source whose answer the test changes (as DNS records change).
struct Changing(std::sync::Arc<parking_lot::Mutex<Vec<String>>>);

impl orbit_cluster::strategy::Poll for Changing {
    fn kind(&self) -> &'static str {
        "test"
    }
    fn interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(5))
    }
    fn disconnect_vanished(&self) -> bool {
        true
    }
    fn discover<'a>(
        &'a mut self,
        _ctx: &'a orbit_cluster::strategy::StrategyContext,
    ) -> futures::future::BoxFuture<'a, Result<Vec<String>, orbit_cluster::strategy::StrategyError>>
    {
        let v = self.0.lock().clone();
        Box::pin(async move { Ok(v) })
    }
}

#[tokio::test(start_paused = true)]
async fn nodes_that_leave_the_answer_are_disconnected() {
    let (fake, mut attempts) = fake::Fake::new("me@h");
    let answer = std::sync::Arc::new(parking_lot::Mutex::new(vec![
        "a@h".to_string(),
        "b@h".into(),
    ]));
    let cluster = Cluster::start_one(
        "t",
        Box::new(Polling::new(Changing(answer.clone()))),
        fake.clone(),
    );
    for _ in 0..2 {
        attempts.recv().await.unwrap();
    }
    assert!(fake.is_connected("a@h") && fake.is_connected("b@h"));
    *answer.lock() = vec!["b@h".into(), "c@h".into()];
    let (n, ok, _) = attempts.recv().await.unwrap();
    assert_eq!((n.as_str(), ok), ("c@h", true));
    assert!(!fake.is_connected("a@h"), "a left the answer: disconnected");
    assert!(fake.is_connected("b@h"));
    cluster.stop().await;
}
