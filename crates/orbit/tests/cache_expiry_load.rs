//! ConCache expiry on the real clock under a CPU hog: a read never returns an item past
//! its TTL, however late the sweeper runs. (Removal from memory, and the callback's
//! Delete, still wait for the sweeper; its lateness is printed, not asserted.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orbit::cache::{CacheEvent, CacheOptions, ConCache, Ttl};

const TTL: Duration = Duration::from_millis(30);
const INTERVAL: Duration = Duration::from_millis(10);
/// The cache measures TTLs on its own clock (`quanta`); this test measures on
/// `std::time::Instant`. The two may disagree by a little: 1 ms of slack covers that.
const SLACK: Duration = Duration::from_millis(1);

/// Busy threads, more than the machine has cores, until dropped.
struct Hog(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl Hog {
    fn start(threads: usize) -> Hog {
        let stop = Arc::new(AtomicBool::new(false));
        let hs = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                })
            })
            .collect();
        Hog(stop, hs)
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for h in self.1.drain(..) {
            let _ = h.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_cpu_hog_no_read_returns_an_item_past_its_ttl() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _hog = Hog::start(2 * cores);
    let deleted = Arc::new(Mutex::new(HashMap::new()));
    let log = deleted.clone();
    let c: ConCache<u64, u64> = ConCache::start(
        CacheOptions::new()
            .ttl_check_interval(INTERVAL)
            .global_ttl(Ttl::After(TTL))
            .callback(move |e| {
                if let CacheEvent::Delete { key } = e {
                    log.lock().unwrap().insert(*key, Instant::now());
                }
            }),
    )
    .await
    .unwrap();
    let mut late_reads = 0u64;
    let mut reads = 0u64;
    let mut worst_read = Duration::ZERO;
    let mut worst_removal = Duration::ZERO;
    for k in 0..25u64 {
        c.put(k, k).await.unwrap();
        // The item's deadline is at most TTL after this instant.
        let written = Instant::now();
        let give_up = written + Duration::from_secs(2);
        loop {
            let asked = Instant::now();
            let v = c.get(&k).unwrap();
            reads += 1;
            if v.is_none() {
                break;
            }
            let age = asked - written;
            if age > TTL + SLACK {
                late_reads += 1;
                worst_read = worst_read.max(age - TTL);
            }
            assert!(Instant::now() < give_up, "key {k} never expired");
            tokio::task::yield_now().await;
        }
        // Removal waits for the sweeper (its Delete callback runs just before):
        // measured for the record only.
        while c.ets().member(&k).unwrap() && Instant::now() < give_up {
            tokio::task::yield_now().await;
        }
        if let Some(at) = deleted.lock().unwrap().get(&k) {
            worst_removal = worst_removal.max(at.saturating_duration_since(written + TTL));
        }
    }
    eprintln!(
        "reads {reads}, late reads {late_reads} (worst {worst_read:?} past TTL + {SLACK:?}); \
         worst removal by the sweeper {worst_removal:?} past TTL (interval {INTERVAL:?})"
    );
    assert_eq!(
        late_reads, 0,
        "{late_reads} reads returned an item up to {worst_read:?} past its TTL"
    );
}
