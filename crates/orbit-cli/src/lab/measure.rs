//! Measuring one variant: client processes record each request's latency; a watcher
//! samples throughput, latency, CPU, memory and mailboxes every interval, then stops the
//! clients and sums up.
//!
//! Clients record into their own histogram ([`Recorder`]) and merge it into the probe's
//! every few milliseconds, so measuring never becomes the bottleneck it looks for.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use orbit::stage::StageRef;
use orbit::telemetry::{self, Latency, LatencySummary, SystemSampler};
use orbit::{Context, ExitReason, Handle, Spawn};
use serde_json::{json, Value};

use super::alloc::heap_bytes;
use super::Lab;

/// What the clients of one variant share with its watcher.
#[derive(Debug)]
pub struct Probe {
    stop: AtomicBool,
    ops: AtomicU64,
    interval: Latency,
}

impl Probe {
    /// A probe for a new variant.
    pub fn new() -> Arc<Probe> {
        Arc::new(Probe {
            stop: AtomicBool::new(false),
            ops: AtomicU64::new(0),
            interval: Latency::new(),
        })
    }

    /// Whether clients should keep going.
    pub fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    /// Tells the clients to stop after their current request.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// A recorder for one client.
    pub fn recorder(self: &Arc<Self>) -> Recorder {
        Recorder {
            probe: self.clone(),
            local: Latency::local(),
            n: 0,
            last: Instant::now(),
        }
    }
}

/// One client's unshared latency record; merged into the probe every 5 ms and on drop.
pub struct Recorder {
    probe: Arc<Probe>,
    local: Histogram<u64>,
    n: u64,
    last: Instant,
}

impl Recorder {
    /// Records one request that started at `start` and has just finished (one clock
    /// read, which also decides when to flush).
    pub fn time(&mut self, start: Instant) {
        let now = Instant::now();
        self.add(now.saturating_duration_since(start), now);
    }

    /// Records one value `d` (e.g. an event's age).
    pub fn record(&mut self, d: Duration) {
        self.add(d, Instant::now());
    }

    fn add(&mut self, d: Duration, now: Instant) {
        Latency::record_local(&mut self.local, d);
        self.n += 1;
        // Flushing every 5 ms keeps the per-interval counts smooth for the series.
        if now.saturating_duration_since(self.last) >= Duration::from_millis(5) {
            self.flush();
        }
    }

    /// Merges what was recorded into the probe.
    pub fn flush(&mut self) {
        if self.n > 0 {
            self.probe.ops.fetch_add(self.n, Ordering::Relaxed);
            self.probe.interval.merge(&self.local);
            self.local.reset();
            self.n = 0;
        }
        self.last = Instant::now();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Runs `op` back to back until the probe stops, recording each one's latency. Yields to
/// the scheduler every 16 requests: tokio does not preempt, and an operation that never
/// waits (an ets read) would otherwise keep its worker thread from everyone else.
pub async fn closed_loop<F, Fut>(probe: Arc<Probe>, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut rec = probe.recorder();
    let mut i = 0u32;
    while probe.running() {
        let t = Instant::now();
        op().await;
        rec.time(t);
        i = i.wrapping_add(1);
        if i.is_multiple_of(16) {
            tokio::task::yield_now().await;
        }
    }
}

/// Spawns `n` client processes (label `lab_client`) running `f(index, probe, ctx)`.
pub fn spawn_clients<M, F, Fut>(
    n: usize,
    probe: &Arc<Probe>,
    f: F,
) -> Result<Vec<Handle<M>>, orbit::Error>
where
    M: Send + 'static,
    F: Fn(usize, Arc<Probe>, Context<M>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    (0..n)
        .map(|i| {
            let (f, probe) = (f.clone(), probe.clone());
            Spawn::new()
                .label("lab_client")
                .spawn(move |ctx: Context<M>| async move { f(i, probe, ctx).await })
        })
        .collect()
}

/// A client [`watch`] waits for once it has stopped the probe: a client process or a
/// stage. Either must exit by itself when it sees the probe stopped.
pub trait Client {
    /// Resolves once the client has exited.
    fn wait_exit(&self) -> impl Future<Output = ExitReason> + Send;
}

impl<M: Send + 'static> Client for Handle<M> {
    fn wait_exit(&self) -> impl Future<Output = ExitReason> + Send {
        Handle::wait_exit(self)
    }
}

impl<I: Send + 'static, O: Send + 'static, M: Send + 'static> Client for StageRef<I, O, M> {
    fn wait_exit(&self) -> impl Future<Output = ExitReason> + Send {
        StageRef::wait_exit(self)
    }
}

/// One sample of a running variant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Point {
    /// Seconds since the variant started.
    pub t: f64,
    /// Requests per second over the interval.
    pub rps: f64,
    /// Median latency over the interval, µs.
    pub p50_us: f64,
    /// 99th percentile latency over the interval, µs.
    pub p99_us: f64,
    /// Heap in use, MB.
    pub heap_mb: f64,
    /// Resident memory, MB.
    pub rss_mb: f64,
    /// CPU over the interval, % of one core.
    pub cpu: f64,
    /// The longest mailbox.
    pub mailbox: u64,
}

/// The measurements of one variant.
#[derive(Debug, Clone)]
pub struct VariantResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Variant name.
    pub variant: String,
    /// Client processes.
    pub clients: usize,
    /// Measured time.
    pub elapsed: Duration,
    /// Requests completed in that time.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency over the whole run.
    pub latency: LatencySummary,
    /// Mean CPU, % of one core.
    pub cpu: f64,
    /// Peak resident memory, bytes (the whole process: cumulative over the run).
    pub rss_peak: u64,
    /// Resident memory when the variant started, bytes.
    pub rss_start: u64,
    /// Peak heap growth over the heap at the start, bytes.
    pub heap_peak: u64,
    /// Longest mailbox seen.
    pub peak_mailbox: u64,
    /// The samples.
    pub series: Vec<Point>,
}

impl VariantResult {
    /// What this variant added to resident memory: its peak minus the RSS at its start
    /// (negative if memory was returned), bytes.
    pub fn rss_delta(&self) -> i64 {
        self.rss_peak as i64 - self.rss_start as i64
    }

    /// The result as one JSON object.
    pub fn to_json(&self) -> Value {
        let us = |d: Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
        json!({
            "kind": "result",
            "scenario": self.scenario,
            "variant": self.variant,
            "clients": self.clients,
            "duration_s": self.elapsed.as_secs_f64(),
            "requests": self.requests,
            "rps": self.rps.round(),
            "latency_us": {
                "p50": us(self.latency.p50),
                "p90": us(self.latency.p90),
                "p99": us(self.latency.p99),
                "max": us(self.latency.max),
            },
            "cpu_percent": (self.cpu * 10.0).round() / 10.0,
            "rss_peak_bytes": self.rss_peak,
            "rss_delta_bytes": self.rss_delta(),
            "heap_peak_bytes": self.heap_peak,
            "peak_mailbox": self.peak_mailbox,
            "series": self.series.iter().map(|p| json!([
                (p.t * 1000.0).round() / 1000.0, p.rps.round(), p.p50_us.round(),
                p.p99_us.round(), super::report::hundredths(p.heap_mb),
                super::report::hundredths(p.rss_mb), p.cpu.round(), p.mailbox,
            ])).collect::<Vec<_>>(),
        })
    }
}

/// Samples a running variant for `duration`, calling `on_sample` with each point, then
/// stops its clients, waits for them and sums up.
pub async fn watch(
    lab: &Lab,
    scenario: &'static str,
    variant: &str,
    duration: Duration,
    probe: &Arc<Probe>,
    clients: &[impl Client],
    mut on_sample: impl FnMut(&Point),
) -> VariantResult {
    lab.progress_message(&format!("{scenario}: {variant}"));
    let interval = lab.sample_interval();
    let mut sampler = SystemSampler::new().top(1);
    let heap0 = heap_bytes();
    let rss_start = telemetry::rss_bytes().unwrap_or(0);
    let cpu0 = telemetry::cpu_time();
    let start = Instant::now();
    let mut total = Latency::local();
    let (mut series, mut last_ops, mut last_t) = (Vec::new(), 0u64, Duration::ZERO);
    let (mut rss_peak, mut heap_peak, mut peak_mailbox) = (0u64, 0u64, 0u64);
    loop {
        let next = (last_t + interval).min(duration);
        tokio::time::sleep_until((start + next).into()).await;
        let now = start.elapsed();
        let ops = probe.ops.load(Ordering::Relaxed);
        let h = probe.interval.take_histogram();
        let _ = total.add(&h);
        let lat = telemetry::summarize(&h);
        let snap = sampler.sample();
        let heap = heap_bytes();
        let p = Point {
            t: now.as_secs_f64(),
            rps: (ops - last_ops) as f64 / (now - last_t).as_secs_f64().max(1e-6),
            p50_us: lat.p50.as_secs_f64() * 1e6,
            p99_us: lat.p99.as_secs_f64() * 1e6,
            heap_mb: heap as f64 / 1e6,
            rss_mb: snap.rss_bytes.unwrap_or(0) as f64 / 1e6,
            cpu: snap.cpu_percent.unwrap_or(0.0),
            mailbox: snap.max_mailbox(),
        };
        rss_peak = rss_peak.max(snap.rss_bytes.unwrap_or(0));
        heap_peak = heap_peak.max(heap.saturating_sub(heap0));
        peak_mailbox = peak_mailbox.max(p.mailbox);
        on_sample(&p);
        series.push(p);
        lab.progress_inc((now - last_t).as_millis() as u64);
        (last_ops, last_t) = (ops, now);
        if now >= duration {
            break;
        }
    }
    let elapsed = start.elapsed();
    let requests = probe.ops.load(Ordering::Relaxed);
    let cpu = match (cpu0, telemetry::cpu_time()) {
        (Some(a), Some(b)) => b.saturating_sub(a).as_secs_f64() / elapsed.as_secs_f64() * 100.0,
        _ => 0.0,
    };
    probe.stop();
    for c in clients {
        // A client queued behind a slow server finishes its request first; don't wait
        // forever for one that is stuck.
        let _ = tokio::time::timeout(Duration::from_secs(10), c.wait_exit()).await;
    }
    let _ = total.add(probe.interval.take_histogram());
    VariantResult {
        scenario,
        variant: variant.to_string(),
        clients: clients.len(),
        elapsed,
        requests,
        rps: requests as f64 / elapsed.as_secs_f64(),
        latency: telemetry::summarize(&total),
        cpu,
        rss_peak,
        rss_start,
        heap_peak,
        peak_mailbox,
        series,
    }
}
