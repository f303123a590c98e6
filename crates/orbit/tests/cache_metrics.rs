//! ConCache hit and miss counters reach the `metrics` facade, labelled with the cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use orbit::cache::{CacheOptions, ConCache, HITS_METRIC, MISSES_METRIC};

#[derive(Default)]
struct Count(AtomicU64);

impl CounterFn for Count {
    fn increment(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn absolute(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

/// Counters by "name{label=value}".
#[derive(Default, Clone)]
struct Collect(Arc<Mutex<HashMap<String, Arc<Count>>>>);

impl Collect {
    fn get(&self, name: &str, cache: &str) -> u64 {
        let k = format!("{name}{{cache={cache}}}");
        self.0
            .lock()
            .unwrap()
            .get(&k)
            .map_or(0, |c| c.0.load(Ordering::Relaxed))
    }
}

impl Recorder for Collect {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let k = format!("{}{{{}}}", key.name(), labels.join(","));
        let c = self.0.lock().unwrap().entry(k).or_default().clone();
        Counter::from_arc(c)
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_and_misses_are_counted_in_the_metrics_facade() {
    let rec = Collect::default();
    metrics::set_global_recorder(rec.clone()).unwrap();
    let c: ConCache<u64, u64> =
        ConCache::start(CacheOptions::new().no_ttl_check().name("sessions"))
            .await
            .unwrap();
    c.get(&1).unwrap();
    c.put(1, 1).await.unwrap();
    c.get(&1).unwrap();
    c.get(&1).unwrap();
    c.get_or_store(&2, || async { 2 }).await.unwrap();
    assert_eq!(rec.get(HITS_METRIC, "sessions"), 2);
    assert_eq!(rec.get(MISSES_METRIC, "sessions"), 2);
    let s = c.stats().unwrap();
    assert_eq!((s.hits, s.misses), (2, 2));
}
