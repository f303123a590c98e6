//! The telemetry events a dashboard needs: cache hits, misses and sweeps (with the
//! cache's name), stage demand and buffers after each stage message, and the resource
//! pool's checkout with its queue time and queue length.
//!
//! Handlers are global: each test filters by its own cache name, stage pid or pool pid.

use std::time::Duration;

use orbit::cache::{CacheOptions, ConCache, Ttl};
use orbit::pool::{
    Caller, CheckinResult, CheckoutResult, InitWorker, ResourcePool, ResourcePoolOptions,
    ResourceWorker,
};
use orbit::stage::{
    self, Consumer, ConsumerContext, ConsumerOptions, Producer, ProducerContext, ProducerOptions,
    SubscribeOptions, Subscription,
};
use orbit::telemetry;
use orbit::ExitReason;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_reports_hits_misses_and_sweeps_with_its_name() {
    let c = ConCache::<u64, u64>::start(
        CacheOptions::new()
            .name("events_cache")
            .ttl_check_interval(Duration::from_millis(20))
            .global_ttl(Ttl::After(Duration::from_millis(20))),
    )
    .await
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, f64, f64)>();
    for (id, ev) in [
        ("o1-hit", "hit"),
        ("o1-miss", "miss"),
        ("o1-expire", "expire"),
    ] {
        let tx = tx.clone();
        telemetry::attach(id, &["orbit", "cache", ev], move |e| {
            if e.meta("cache").as_deref() == Some("events_cache") {
                let _ = tx.send((
                    e.name[2].to_string(),
                    e.measurement("count").unwrap_or(-1.0),
                    e.measurement("size").unwrap_or(-1.0),
                ));
            }
        })
        .unwrap();
    }
    c.put(1, 1).await.unwrap();
    c.put(2, 2).await.unwrap();
    assert_eq!(c.get(&1).unwrap(), Some(1));
    assert_eq!(c.get(&3).unwrap(), None);
    assert_eq!(rx.recv().await.unwrap(), ("hit".into(), 1.0, -1.0));
    assert_eq!(rx.recv().await.unwrap(), ("miss".into(), 1.0, -1.0));
    // The sweeper expires both items: the events count them and say what is left.
    let mut expired = 0.0;
    while expired < 2.0 {
        let (name, count, size) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a sweep within 10 s")
            .unwrap();
        assert_eq!(name, "expire");
        assert!(size >= 0.0);
        expired += count;
    }
    assert_eq!(expired, 2.0);
    assert_eq!(c.stats().unwrap().expired, 2);
    for id in ["o1-hit", "o1-miss", "o1-expire"] {
        telemetry::detach(id);
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
        let n = demand as u64;
        let events = (self.0..self.0 + n).collect();
        self.0 += n;
        Ok(events)
    }
}

struct Sink;

impl Consumer for Sink {
    type Event = u64;
    type Info = ();
    async fn handle_events(
        &mut self,
        _e: Vec<u64>,
        _f: &Subscription,
        _c: &mut ConsumerContext<Self>,
    ) -> Result<(), ExitReason> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_report_demand_and_events() {
    let producer = stage::start_producer(Numbers(0), ProducerOptions::new())
        .await
        .unwrap();
    let me = producer.producer().pid().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel::<(f64, f64)>();
    telemetry::attach("o2-demand", &["orbit", "stage", "demand"], move |e| {
        if e.meta("stage").as_deref() == Some(me.as_str()) {
            let _ = tx.send((
                e.measurement("events_out").unwrap_or(-1.0),
                e.measurement("pending_demand").unwrap_or(-1.0),
            ));
        }
    })
    .unwrap();
    let _consumer = stage::start_consumer(
        Sink,
        ConsumerOptions::new().subscribe_to(
            &producer.producer(),
            SubscribeOptions::new().max_demand(100),
        ),
    )
    .await
    .unwrap();
    // The producer's events out grow with each batch it dispatches.
    let mut last = 0.0;
    while last < 30.0 {
        let (out, pending) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("stage events within 10 s")
            .unwrap();
        assert!(
            out >= last,
            "events_out never decreases: {out} after {last}"
        );
        assert!(pending >= 0.0);
        last = out;
    }
    telemetry::detach("o2-demand");
}

struct Slots;

impl ResourceWorker for Slots {
    type Worker = ();
    type Command = ();
    type Client = ();
    type Checkin = ();
    type Error = ();
    fn init_worker(&mut self) -> InitWorker<()> {
        InitWorker::Ok(())
    }
    fn handle_checkout(&mut self, _: &(), _: Caller, w: ()) -> CheckoutResult<(), (), ()> {
        CheckoutResult::Ok {
            client: (),
            worker: w,
        }
    }
    fn handle_checkin(&mut self, _: (), _: Caller, w: ()) -> CheckinResult<()> {
        CheckinResult::Ok(w)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_pool_reports_checkout_wait_and_queue() {
    let pool = ResourcePool::start(Slots, ResourcePoolOptions::new(1))
        .await
        .unwrap();
    let me = pool.pid().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel::<(f64, f64)>();
    telemetry::attach("o3-checkout", &["orbit", "pool", "checkout"], move |e| {
        if e.meta("pool").as_deref() == Some(me.as_str()) {
            let _ = tx.send((
                e.measurement("queue_time_us").unwrap_or(-1.0),
                e.measurement("queue_length").unwrap_or(-1.0),
            ));
        }
    })
    .unwrap();
    // One holds the resource; two more queue behind it.
    let (hold_tx, hold_rx) = tokio::sync::oneshot::channel::<()>();
    let p = pool.clone();
    let holder = tokio::spawn(async move {
        p.checkout(
            (),
            |()| async move {
                let _ = hold_rx.await;
                ((), ())
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap()
    });
    let (first, len) = rx.recv().await.unwrap();
    assert!(first >= 0.0 && len == 0.0, "{first} {len}");
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let p = pool.clone();
            tokio::spawn(async move {
                p.checkout((), |()| async { ((), ()) }, Duration::from_secs(5))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let t0 = std::time::Instant::now();
    while pool.stats().waiting < 2 {
        assert!(t0.elapsed() < Duration::from_secs(10), "two callers queue");
        tokio::task::yield_now().await;
    }
    let _ = hold_tx.send(());
    holder.await.unwrap();
    for w in waiters {
        w.await.unwrap();
    }
    let (waited1, len1) = rx.recv().await.unwrap();
    let (_, len2) = rx.recv().await.unwrap();
    assert!(waited1 > 0.0, "the first waiter waited: {waited1} us");
    // The first served waiter left one behind it (or none, if it was already served).
    assert!(len1 <= 1.0 && len2 == 0.0, "queue lengths {len1}, {len2}");
    telemetry::detach("o3-checkout");
}

struct Echo;

impl orbit::SimpleServer for Echo {
    type Call = u32;
    type Reply = u32;
    type Cast = ();
    fn call(&mut self, n: u32) -> u32 {
        n
    }
    fn cast(&mut self, _: ()) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_server_calls_are_sampled() {
    let server = orbit::gen_server::start(Echo).await.unwrap();
    let me = server.pid().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel::<(f64, f64, f64)>();
    telemetry::attach("o4-call", &["orbit", "gen_server", "call"], move |e| {
        if e.meta("server").as_deref() == Some(me.as_str()) {
            let _ = tx.send((
                e.measurement("duration_us").unwrap_or(-1.0),
                e.measurement("sample_every").unwrap_or(-1.0),
                e.measurement("ok").unwrap_or(-1.0),
            ));
        }
    })
    .unwrap();
    // From one process (one thread's counter at a time is not guaranteed across
    // awaits, so count events over many calls).
    let n = 64 * 20;
    for i in 0..n {
        assert_eq!(server.call(i).await.unwrap(), i);
    }
    telemetry::detach("o4-call");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    assert!(!events.is_empty(), "some of {n} calls sampled");
    assert!(
        events.len() <= n as usize / 8,
        "sampled, not every call: {}",
        events.len()
    );
    for (us, every, ok) in events {
        assert!(us >= 0.0);
        assert_eq!(every, orbit::gen_server::CALL_SAMPLE_EVERY as f64);
        assert_eq!(ok, 1.0);
    }
}
