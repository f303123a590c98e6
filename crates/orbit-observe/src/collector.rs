//! The node collector: samples the node once per tick, publishes the figures through
//! the `metrics` facade, learns what "normal" is, and keeps a short history.
//!
//! Each tick (1 s by default) it reads CPU, resident memory and fds from `/proc`
//! ([`orbit::telemetry::cpu_time`], ...), the long-handler total, and every process's
//! counters once (on a node of more than [`PER_PROCESS_LIMIT`] processes, once every
//! `count / PER_PROCESS_LIMIT + 1` ticks) to get the process count, the longest mailbox,
//! the node's messages handled per second and the
//! handling time per message (p50 and p99 over processes, weighted by the messages each
//! handled during the tick; above [`PER_PROCESS_LIMIT`] processes only the node-wide
//! mean is kept, so a tick stays cheap), tokio's run queue (tasks waiting in the global
//! queue) and alive tasks, the named processes' counters and the distribution links.
//! Everything is published as `orbit_*` series (see the crate docs), then fed to a
//! [`Baseline`], whose normal band and deviations go with each [`NodeSample`] to the
//! dashboard. Nothing here runs inside a process's message path: with the collector
//! on, sends and calls pay nothing extra.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orbit::info::each_process;
use orbit::telemetry::{Baseline, BaselineOptions};
use orbit::Pid;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::links::{self, LinkStats};

/// Above this many processes, a tick keeps no per-process history (only node totals).
pub const PER_PROCESS_LIMIT: usize = 200_000;

/// Samples kept for the dashboard's charts.
const HISTORY: usize = 300;

/// A metric's normal band, as learned by the baseline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Band {
    /// The metric (`messages_per_second`, `handling_p99_us`, `cpu_percent`, ...).
    pub metric: String,
    /// Lower bound (never below 0).
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Learned mean.
    pub mean: f64,
    /// Still learning (no judgement yet).
    pub learning: bool,
}

/// A value outside its normal band.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Flag {
    /// The metric.
    pub metric: String,
    /// What was observed.
    pub observed: f64,
    /// Normal lower bound.
    pub low: f64,
    /// Normal upper bound.
    pub high: f64,
}

/// One tick's figures for the node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSample {
    /// This node's name (`nonode@nohost` without distribution).
    pub node: String,
    /// Wall-clock time of the sample, Unix milliseconds.
    pub at_ms: u64,
    /// Ticks taken since the collector started (1 for the first).
    pub tick: u64,
    /// Live processes.
    pub processes: usize,
    /// Messages handled per second over the last tick.
    pub messages_per_second: f64,
    /// Median handling time per message over the last tick, microseconds.
    pub handling_p50_us: f64,
    /// 99th percentile handling time per message over the last tick, microseconds.
    pub handling_p99_us: f64,
    /// CPU since the previous tick, percent of one core.
    pub cpu_percent: Option<f64>,
    /// Resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Tasks waiting in tokio's global run queue.
    pub run_queue: usize,
    /// Live tokio tasks.
    pub tasks: usize,
    /// Long handlers since start, all processes.
    pub long_handlers: u64,
    /// The longest mailbox.
    pub max_mailbox: u64,
    /// Distribution links.
    pub links: Vec<LinkStats>,
    /// Normal bands of the judged metrics.
    pub normal: Vec<Band>,
    /// Metrics outside their band in this sample.
    pub deviations: Vec<Flag>,
}

/// The judged metrics, in display order.
const JUDGED: &[&str] = &[
    "messages_per_second",
    "handling_p99_us",
    "cpu_percent",
    "rss_bytes",
    "processes",
];

/// Per-process `(handled, busy_ns)`.
type PerProcess = HashMap<Pid, (u64, u64)>;

struct State {
    /// The previous CPU reading: when, and the process's CPU time then.
    last_cpu: Option<(Instant, Duration)>,
    /// Figures of the last pass over the processes: processes, messages/s, p50, p99,
    /// largest mailbox (kept between passes on big nodes).
    pass: (usize, f64, f64, f64, u64),
    baseline: Baseline,
    /// The previous tick: when, per-process counters, total handled, total ns.
    last: Option<(Instant, PerProcess, u64, u64)>,
    tick: u64,
    history: VecDeque<Arc<NodeSample>>,
}

/// Samples the node each tick; see the module docs.
#[derive(Clone)]
pub struct Collector {
    state: Arc<Mutex<State>>,
    tx: broadcast::Sender<Arc<NodeSample>>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").finish_non_exhaustive()
    }
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    /// A collector with a baseline of 20 warm-up ticks.
    pub fn new() -> Collector {
        let mut baseline = Baseline::new(BaselineOptions::default());
        baseline.floor("messages_per_second", 50.0);
        baseline.floor("handling_p99_us", 50.0);
        baseline.floor("cpu_percent", 10.0);
        baseline.floor("processes", 10.0);
        baseline.floor("rss_bytes", 16e6);
        Collector {
            state: Arc::new(Mutex::new(State {
                last_cpu: orbit::telemetry::cpu_time().map(|c| (Instant::now(), c)),
                pass: (0, 0.0, 0.0, 0.0, 0),
                baseline,
                last: None,
                tick: 0,
                history: VecDeque::with_capacity(HISTORY),
            })),
            tx: broadcast::channel(16).0,
        }
    }

    /// Samples now, publishes, and returns the sample (also sent to subscribers).
    pub fn tick(&self) -> Arc<NodeSample> {
        let mut st = self.state.lock();
        let now = Instant::now();
        let cpu = orbit::telemetry::cpu_time();
        let cpu_percent = match (st.last_cpu, cpu) {
            (Some((t0, c0)), Some(c1)) if now > t0 => Some(
                c1.saturating_sub(c0).as_secs_f64() / now.duration_since(t0).as_secs_f64() * 100.0,
            ),
            _ => None,
        };
        if let Some(c) = cpu {
            st.last_cpu = Some((now, c));
        }
        let rss = orbit::telemetry::rss_bytes();
        let fds = orbit::telemetry::open_fds();
        let long_handlers = orbit::clock::long_handler_total();
        // One pass over the processes per tick; on a node with more than
        // PER_PROCESS_LIMIT processes, one every (count / limit + 1) ticks, the figures
        // of the last pass standing in between (rates are over the pass interval).
        let every = (st.pass.0 / PER_PROCESS_LIMIT + 1) as u64;
        if st.tick.is_multiple_of(every) {
            let (per_process, total_handled, total_ns, count, max_mailbox) = read_counters();
            let (rate, p50, p99) = match &st.last {
                Some((t, prev, h0, ns0)) => {
                    let dt = now.duration_since(*t).as_secs_f64().max(1e-6);
                    let dh = total_handled.saturating_sub(*h0);
                    let dns = total_ns.saturating_sub(*ns0);
                    let mean = if dh == 0 {
                        0.0
                    } else {
                        dns as f64 / dh as f64 / 1e3
                    };
                    let (p50, p99) = match &per_process {
                        Some(now_map) => weighted_quantiles(prev, now_map).unwrap_or((mean, mean)),
                        None => (mean, mean),
                    };
                    (dh as f64 / dt, p50, p99)
                }
                None => (0.0, 0.0, 0.0),
            };
            st.last = Some((
                now,
                per_process.unwrap_or_default(),
                total_handled,
                total_ns,
            ));
            st.pass = (count, rate, p50, p99, max_mailbox);
        }
        let (count, rate, p50, p99, max_mailbox) = st.pass;
        let opt = |name: &'static str, v: Option<f64>| {
            if let Some(v) = v {
                metrics::gauge!(name).set(v);
            }
        };
        opt("orbit_cpu_percent", cpu_percent);
        opt("orbit_rss_bytes", rss.map(|v| v as f64));
        opt("orbit_open_fds", fds.map(|v| v as f64));
        metrics::gauge!("orbit_max_mailbox_len").set(max_mailbox as f64);
        metrics::gauge!("orbit_long_handlers_total").set(long_handlers as f64);
        st.tick += 1;
        let (run_queue, tasks) = match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                let m = h.metrics();
                (m.global_queue_depth(), m.num_alive_tasks())
            }
            Err(_) => (0, 0),
        };
        let links = links::read();
        publish_node(rate, p50, p99, run_queue, tasks, count);
        links::publish(&links);
        crate::named::publish();
        let tick = st.tick;
        let figures = [
            ("messages_per_second", Some(rate)),
            ("handling_p99_us", Some(p99)),
            ("cpu_percent", cpu_percent),
            ("rss_bytes", rss.map(|v| v as f64)),
            ("processes", Some(count as f64)),
        ];
        let mut deviations = Vec::new();
        // The first tick has no rates yet: learning from it would skew the band.
        if tick > 1 {
            for (m, v) in figures {
                if let Some(v) = v {
                    if let Some(d) = st.baseline.observe(m, v) {
                        deviations.push(Flag {
                            metric: d.metric,
                            observed: d.observed,
                            low: d.normal.low.max(0.0),
                            high: d.normal.high,
                        });
                    }
                }
            }
        }
        let normal = JUDGED
            .iter()
            .map(|m| match st.baseline.normal(m) {
                Some(n) => Band {
                    metric: m.to_string(),
                    low: n.low.max(0.0),
                    high: n.high,
                    mean: n.mean,
                    learning: false,
                },
                // Still learning: the page says so instead of a band.
                None => Band {
                    metric: m.to_string(),
                    low: 0.0,
                    high: 0.0,
                    mean: 0.0,
                    learning: true,
                },
            })
            .collect();
        let sample = Arc::new(NodeSample {
            node: node_name(),
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            tick,
            processes: count,
            messages_per_second: rate,
            handling_p50_us: p50,
            handling_p99_us: p99,
            cpu_percent,
            rss_bytes: rss,
            open_fds: fds,
            run_queue,
            tasks,
            long_handlers,
            max_mailbox,
            links,
            normal,
            deviations,
        });
        if st.history.len() == HISTORY {
            st.history.pop_front();
        }
        st.history.push_back(sample.clone());
        drop(st);
        // No subscriber is not an error.
        let _ = self.tx.send(sample.clone());
        sample
    }

    /// The latest sample, if any tick ran.
    pub fn latest(&self) -> Option<Arc<NodeSample>> {
        self.state.lock().history.back().cloned()
    }

    /// The kept samples, oldest first.
    pub fn history(&self) -> Vec<Arc<NodeSample>> {
        self.state.lock().history.iter().cloned().collect()
    }

    /// Samples as they are taken (a slow subscriber skips samples, it never blocks).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<NodeSample>> {
        self.tx.subscribe()
    }

    /// Ticks every `every` on the current tokio runtime until the returned handle is
    /// aborted (or dropped with [`tokio::task::JoinHandle::abort`]).
    pub fn spawn(
        &self,
        every: Duration,
        exporter: Option<crate::PrometheusExporter>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let every = every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(every);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                iv.tick().await;
                // Reading a million processes takes a while: off the async workers.
                let c = me.clone();
                if tokio::task::spawn_blocking(move || c.tick()).await.is_err() {
                    tracing::error!("the observe collector's tick panicked; sampling goes on");
                }
                if let Some(e) = &exporter {
                    e.upkeep();
                }
            }
        })
    }
}

/// Per-process `(handled, busy_ns)` (below the limit), total handled, total ns, count,
/// longest mailbox.
type Counters = (Option<PerProcess>, u64, u64, usize, u64);

fn read_counters() -> Counters {
    let mut map = HashMap::new();
    let (mut handled, mut ns, mut count, mut max_mailbox) = (0u64, 0u64, 0usize, 0u64);
    let mut keep = true;
    each_process(|c| {
        count += 1;
        max_mailbox = max_mailbox.max(c.message_queue_len);
        handled = handled.wrapping_add(c.messages_handled);
        ns = ns.wrapping_add(c.handling_ns);
        if keep {
            if count > PER_PROCESS_LIMIT {
                keep = false;
                map = HashMap::new();
            } else {
                map.insert(c.pid, (c.messages_handled, c.handling_ns));
            }
        }
    });
    (keep.then_some(map), handled, ns, count, max_mailbox)
}

/// p50 and p99 of per-process mean handling time over the tick, in µs, weighted by
/// messages handled in the tick; `None` when nothing was handled.
fn weighted_quantiles(
    prev: &HashMap<Pid, (u64, u64)>,
    now: &HashMap<Pid, (u64, u64)>,
) -> Option<(f64, f64)> {
    let mut v: Vec<(f64, u64)> = now
        .iter()
        .filter_map(|(pid, &(h, ns))| {
            let (h0, ns0) = prev.get(pid).copied().unwrap_or((0, 0));
            let dh = h.saturating_sub(h0);
            (dh > 0).then(|| (ns.saturating_sub(ns0) as f64 / dh as f64 / 1e3, dh))
        })
        .collect();
    let total: u64 = v.iter().map(|x| x.1).sum();
    if total == 0 {
        return None;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let q = |p: f64| {
        let want = (total as f64 * p).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (m, w) in &v {
            acc += w;
            if acc >= want {
                return *m;
            }
        }
        v.last().map_or(0.0, |x| x.0)
    };
    Some((q(0.5), q(0.99)))
}

fn publish_node(rate: f64, p50: f64, p99: f64, run_queue: usize, tasks: usize, count: usize) {
    metrics::gauge!("orbit_messages_per_second").set(rate);
    metrics::gauge!("orbit_handling_seconds", "quantile" => "0.5").set(p50 / 1e6);
    metrics::gauge!("orbit_handling_seconds", "quantile" => "0.99").set(p99 / 1e6);
    metrics::gauge!("orbit_run_queue").set(run_queue as f64);
    metrics::gauge!("orbit_tasks").set(tasks as f64);
    metrics::gauge!("orbit_processes").set(count as f64);
}

/// This node's name, or `nonode@nohost`.
pub fn node_name() -> String {
    orbit_dist::Node::current()
        .map(|n| n.name())
        .unwrap_or_else(|| "nonode@nohost".to_string())
}
