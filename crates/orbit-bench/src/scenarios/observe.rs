//! `observe`: what observing a node costs, and how fast the processes page answers for
//! a million processes.
//!
//! Part 1, the cost: three workloads — `send` (N one-way messages to one process, the
//! `send` scenario's orbit subject, [`SEND_REPEATS`] times per round), `call` (sequential GenServer calls with a 5 s
//! timeout, the `call` scenario's), `call_1w` (the same on a 1-worker runtime), `spawn`
//! (N idle processes spawned, then stopped; [`SPAWN_REPEATS`] times per round) — each run with observation `off` and `on`.
//! `on` means what `orbit node --dashboard` runs: the dashboard server on its own
//! 1-worker runtime, the collector ticking every second (a pass over every process, the system sample, the named-process and link
//! series), orbit-observe's telemetry handlers attached (so events are built), and a
//! scraper fetching `/metrics` and `/api/processes?sort=mailbox&limit=50` every second
//! (Prometheus and one open dashboard page). `on` is measured in its steady state: the
//! first sample and the first scrape are done before the workload starts (a node's
//! dashboard starts once, not with each workload), then the workloads start at a phase
//! of the dashboard's 1 s cycle spread evenly over the pairs (the same idle wait before
//! `off`), so the tick and the scrapes land inside the rounds as often as they would on
//! a running node. The Prometheus recorder is installed before the first round and stays
//! for both subjects (it is global and cannot be removed).
//!
//! The rounds run in pairs, `--rounds` × 4 of them, in ABBA order (`off` first in even
//! pairs, `on` first in odd ones); each pair gives one on/off ratio per workload
//! ([`CALL_RUNS`] for each call workload: a subject window runs that many call rounds,
//! paired with the other window's by index). The goal lines `{send,call,call_1w,spawn}_on_vs_off_min_0.97x` are the **median of the per-pair
//! ratios** (with `_pair_ratio_min/_max/_p25/_p75` and `_pairs`), `_on_vs_off_of_medians`
//! the older statistic (the ratio of the subjects' medians of rounds), and
//! `_cpu_per_UNIT_on_vs_off` the median per-pair ratio of CPU per unit (see
//! [`crate::pairs`] for why the median of pair ratios is the fair one here). Per subject:
//! `msgs_per_s`, `calls_per_s`, `calls_per_s_1_worker`, `spawns_per_s` (median of
//! rounds, with spread) and CPU per unit.
//!
//! **Placement** (`call`): on the 2-worker runtime the caller and the server share one
//! worker (each wake-up handed over in tokio's LIFO slot) until a worker is preempted,
//! then hop across both for stretches of the round, and the round's speed follows that
//! (about 2.2M against 1.35M calls/s here) and the machine's other load, not the
//! subject. So every call round records its placement ([`crate::placement`]: the
//! server answers each call with the token of the thread that handled it, the caller
//! counts the calls handled on the thread that sent them; both subjects pay the same
//! thread-local read), and the `call` headline `call_on_vs_off_min_0.97x` (with `call_pair_ratio_*` and
//! `call_pairs`) is the median over the pairs whose two rounds ran with the same
//! placement (same-thread shares within [`SAME_PLACEMENT`]); the median over all pairs
//! is `call_all_pairs_on_vs_off` beside it. Whether observation moves the placement is
//! reported, not filtered away: per subject `call_same_thread_share` (median),
//! `call_same_thread_rounds` (rounds with ≥ 99% of calls on one thread) and
//! `call_placement_switches_per_round`. `call_1w` is the same call workload on a
//! 1-worker runtime: one placement by construction (every call on the one worker, as a
//! test checks), so all its pairs compare like with like; it gives the dashboard's
//! threads the other vCPU, as the 2-worker fast mode does (its second worker parked).
//!
//! The call rounds also carry their scheduler counters (tokio worker parks, the
//! workers' voluntary switches, preemptions and CPU migrations per call, the workers'
//! own CPU per call, the dashboard's threads' wake-ups per round; [`crate::sched`]):
//! `{call,call_1w}_worker_cpu_per_call_on_vs_off` is the median per-pair ratio of the
//! workers' own CPU per call (the dashboard's threads left out; the machine's other
//! load moves it far less than the wall clock). The older mode split by parks (a round
//! with more than one park per 20 calls ran in the slow mode) stays beside:
//! `call_cross_mode_rounds` per subject, `call_on_vs_off_same_mode_pairs`.
//!
//! To split the cost, `OBSERVE_PART=events` makes `on` attach orbit-observe's telemetry
//! handlers only, `OBSERVE_PART=dashboard` serve the dashboard and its collector without
//! the scraper; `OBSERVE_ONLY=send|call|call_1w|spawn` runs that workload alone (parts
//! 0 and 2 skipped); `OBSERVE_SUBJECT=off|on` runs that subject's rounds alone (for a
//! profiler: callgrind's instructions per call of each subject, from two runs). The
//! scraper sleeps until its next scrape (it polled every 20 ms before).
//!
//! Part 0, the emit path: `telemetry::execute` of a cache-hit-shaped event with no
//! handler attached (one atomic load), and with orbit-observe's handlers attached but
//! none on that event, in nanoseconds per call (`execute_ns_idle`,
//! `execute_ns_other_attached`; median of rounds).
//!
//! Part 2, one million processes (scaled by `--scale`): with the dashboard on, the time
//! `GET /api/processes?sort=S&limit=50` takes end to end over HTTP for each sort, the
//! median of rounds in milliseconds (`top_ms_S`); goal `top_1m_within_1s` =
//! 1000 / the slowest sort's median (must be ≥ 1).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::Ctx;
use crate::util::{measure, median, on_runtime, per_s, Rounds};

const SCENARIO: &str = "observe";

/// The dashboard, collector and scraper of an `on` round.
struct On {
    rt: tokio::runtime::Runtime,
    dash: Option<orbit_observe::Dashboard>,
    /// Dropped (or sent to) to stop the scraper.
    stop: Option<std::sync::mpsc::Sender<()>>,
    scraper: Option<std::thread::JoinHandle<()>>,
}

impl On {
    fn start(scrape: bool) -> On {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(DASH_THREAD)
            .enable_all()
            .build()
            .expect("the dashboard's runtime");
        let dash = rt
            .block_on(orbit_observe::serve(orbit_observe::ObserveOptions::new(
                "127.0.0.1:0".parse().expect("an address"),
            )))
            .expect("the dashboard starts");
        // The collector's first tick (spawned by `serve`) is the start-up's too: done
        // before `start` returns, with or without the scraper.
        let first = dash.observer().collector().subscribe();
        if dash.observer().collector().latest().is_none() {
            let mut first = first;
            let _ = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), first.recv()).await
            });
        }
        let addr = dash.local_addr();
        let (stop, stop_rx) = std::sync::mpsc::channel::<()>();
        // Measure the steady state of a node whose dashboard is already up: the first
        // sample and the first scrape (the dashboard's start-up) finish before `start`
        // returns, as they would long before a workload on a real node.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let scraper = scrape.then(|| {
            let t = std::thread::Builder::new().name(SCRAPE_THREAD.into());
            t.spawn(move || {
                let _ = get(addr, "/api/node");
                let _ = get(addr, "/metrics");
                let _ = get(addr, "/api/processes?sort=mailbox&limit=50");
                let _ = ready_tx.send(());
                // Asleep until the next scrape or the stop (no polling: a Prometheus
                // server and a dashboard page wake the node once a second, not more).
                let mut next = Instant::now() + Duration::from_secs(1);
                let until_next = |next: Instant| next.saturating_duration_since(Instant::now());
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(until_next(next))
                {
                    let _ = get(addr, "/metrics");
                    let _ = get(addr, "/api/processes?sort=mailbox&limit=50");
                    next += Duration::from_secs(1);
                }
            })
            .expect("the scraper thread")
        });
        if scrape {
            let _ = ready_rx.recv_timeout(Duration::from_secs(10));
        }
        On {
            rt,
            dash: Some(dash),
            stop: Some(stop),
            scraper,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.dash.as_ref().map(|d| d.local_addr()).expect("running")
    }
}

impl Drop for On {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.scraper.take() {
            let _ = t.join();
        }
        if let Some(d) = self.dash.take() {
            let _g = self.rt.enter();
            d.stop();
        }
    }
}

/// What an `on` round switches on (`OBSERVE_PART`, to find what costs what): `events`
/// only orbit-observe's telemetry handlers; `dashboard` the dashboard and its collector
/// without the scraper; anything else (the default) all of [`On`].
enum Part {
    Events,
    Dashboard { _on: Box<On> },
}

impl Part {
    fn start(part: &str) -> Part {
        match part {
            "events" => {
                orbit_observe::events::attach();
                Part::Events
            }
            "dashboard" => Part::Dashboard {
                _on: Box::new(On::start(false)),
            },
            _ => Part::Dashboard {
                _on: Box::new(On::start(true)),
            },
        }
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if let Part::Events = self {
            orbit_observe::events::detach();
        }
    }
}

/// One GET; the status line and the time it took.
fn get(addr: SocketAddr, path: &str) -> Result<(String, Duration), String> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out);
    Ok((
        text.lines().next().unwrap_or_default().to_string(),
        t0.elapsed(),
    ))
}

/// Spawns `n` idle processes (the clock runs around the spawn loop), then stops them.
fn spawn_rate(n: u64) -> f64 {
    on_runtime(move || async move {
        let t0 = Instant::now();
        let mut hs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            hs.push(
                orbit::spawn(|mut ctx: orbit::Context<()>| async move {
                    ctx.recv().await;
                })
                .expect("orbit::spawn"),
            );
        }
        let rate = per_s(n, t0.elapsed());
        for h in &hs {
            let _ = h.send(());
        }
        for h in hs {
            h.wait_exit().await;
        }
        rate
    })
}

/// ABBA pairs per `--rounds` round: each round of the old statistic became four short
/// pairs (the same work per subject-round as before, four times as many rounds).
const PAIRS_PER_ROUND: usize = 4;

/// Thread names of the `on` subject's own threads (the dashboard's runtime, the
/// scraper), so the scheduler counters can tell them from the workload's.
const DASH_THREAD: &str = "observe-dash";
const SCRAPE_THREAD: &str = "observe-scrape";
/// The name tokio (1.54) gives the workload runtime's threads.
const WORKER_THREAD: &str = "tokio-rt-worker";

/// One per-round figure of [`CallSched`].
type SchedField = fn(&CallSched) -> f64;

/// What one call round's threads did besides the calls, per call (the kernel's and
/// tokio's counters; see [`crate::sched`]).
#[derive(Default, Clone, Copy)]
struct CallSched {
    /// tokio worker parks of the workload's runtime.
    parks: f64,
    /// Its workers' voluntary switches (parks, each a wake-up to come).
    worker_waits: f64,
    /// Its workers' preemptions.
    worker_preempted: f64,
    /// Its workers' moves to another CPU.
    worker_migrations: f64,
    /// Its workers' CPU time per call, microseconds (the workload's own, without the
    /// dashboard's threads).
    worker_cpu_us: f64,
    /// Wake-ups of the dashboard's and the scraper's threads during the round (a count
    /// per round, not per call).
    dash_wakeups: f64,
    /// CPU time of the dashboard's and the scraper's threads during the round, ms.
    dash_cpu_ms: f64,
    /// Where the server handled the round's calls ([`crate::placement`]).
    placement: crate::placement::Placement,
}

/// One call round (the `call` scenario's orbit subject, its server answering with the
/// token of the thread that handled the call: [`crate::placement`]) on a runtime of
/// `workers` workers, with its scheduler counters and its placement.
fn call_round(workers: usize, n: u64) -> (f64, CallSched) {
    let parks = || {
        let m = tokio::runtime::Handle::current().metrics();
        (0..m.num_workers())
            .map(|w| m.worker_park_count(w))
            .sum::<u64>()
    };
    let (rate, placement, sched) = crate::placement::call_round(
        workers,
        n,
        Duration::from_secs(5),
        move || (crate::sched::Snapshot::now(), parks()),
        move |(s0, p0)| {
            let p1 = parks();
            let s1 = crate::sched::Snapshot::now();
            let w = s1.since(&s0, |t| t == WORKER_THREAD);
            let d = s1.since(&s0, |t| t == DASH_THREAD || t == SCRAPE_THREAD);
            let per = |x: u64| x as f64 / n.max(1) as f64;
            CallSched {
                parks: per(p1.saturating_sub(p0)),
                worker_waits: per(w.voluntary),
                worker_preempted: per(w.involuntary),
                worker_migrations: per(w.migrations),
                worker_cpu_us: per(w.cpu_ns) / 1e3,
                dash_wakeups: d.voluntary as f64,
                dash_cpu_ms: d.cpu_ns as f64 / 1e6,
                placement: Default::default(),
            }
        },
    );
    (rate, CallSched { placement, ..sched })
}

/// A call round is in the slow mode (caller and server on different workers for most
/// of the round) when its workers park more than this per call: seen on the 2-vCPU VM,
/// about 0.14 parks per call in the slow mode (about 1M calls/s), 0.005 in the fast one
/// (about 2M calls/s).
const CROSS_MODE_PARKS_PER_CALL: f64 = 0.05;

/// Two call rounds ran with the same placement when their shares of calls handled on
/// the sending thread differ by at most this.
/// (Seen here: 0.99–1.0 in the fast rounds, 0.93–0.97 in the slow ones.)
const SAME_PLACEMENT: f64 = 0.02;

/// Times the `send` workload runs per round (each run on a fresh runtime, its
/// messages counted together): one run of 2M messages takes about 35 ms here, less
/// than the swings of this machine's scheduling, and its pairs spread 0.52-1.34x.
const SEND_REPEATS: u64 = 5;

/// Times the `spawn` workload runs per round, for the same reason: one run of 200k
/// spawns takes about 75 ms here, and its pairs spread 0.78-1.28x.
const SPAWN_REPEATS: u64 = 3;

/// Runs `run(n)` (a rate of `n` units) `times` times: the units of all the runs over
/// the time of all of them.
fn repeated(n: u64, times: u64, run: impl Fn(u64) -> f64) -> f64 {
    let secs: f64 = (0..times).map(|_| n as f64 / run(n)).sum();
    (n * times) as f64 / secs
}

/// Call rounds per subject window (each its own round, paired with the other
/// subject's round of the same index in the pair): a call round takes 150-300 ms here
/// and its placement is drawn afresh each round, so one pair is a coin toss between two
/// speeds; with twenty 2-worker pairs the median still missed 0.97x once in seven quiet
/// runs (0.956, pairs spreading 0.83-1.51x under load). Two rounds per window double the
/// pairs for about 0.4 s per window.
const CALL_RUNS: usize = 2;

/// A call round ran on one thread when at least this share of its calls did.
const ONE_THREAD_SHARE: f64 = 0.99;

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    if let Err(e) = orbit_observe::PrometheusExporter::install() {
        eprintln!("observe: {e}");
        return;
    }
    ctx.emit_loadavg(SCENARIO, "start");
    let only = std::env::var("OBSERVE_ONLY").ok();
    if only.is_none() {
        execute_cost(ctx);
    }
    let (n_send, n_call, n_spawn) = (ctx.n(2_000_000), ctx.n(300_000), ctx.n(200_000));
    // Per workload (send, call, call_1w, spawn): the rounds of both subjects.
    let mut rounds: [Rounds; 4] = Default::default();
    // Per workload, per pair: (off, on) rate and CPU per unit.
    let mut pairs: [Vec<Pair>; 4] = Default::default();
    // Per call workload (call, call_1w), per subject: each round's counters.
    let mut sched: [[Vec<CallSched>; 2]; 2] = Default::default();
    let part = std::env::var("OBSERVE_PART").unwrap_or_default();
    let runs = |w: &str| only.as_deref().is_none_or(|o| o == w);
    // `OBSERVE_VERBOSE=1`: each call round's figures on stderr.
    let verbose = std::env::var_os("OBSERVE_VERBOSE").is_some();
    // `OBSERVE_SUBJECT=off|on`: that subject's rounds alone (for a profiler: callgrind's
    // instructions per call of each subject, from two runs).
    let only_subject = std::env::var("OBSERVE_SUBJECT").ok();
    for k in 0..ctx.rounds * PAIRS_PER_ROUND {
        // Where in the dashboard's 1 s cycle (its tick, the scraper's two requests) the
        // workloads start: spread evenly over the cycle (golden-ratio steps), the same
        // idle before both subjects of a pair. Without it every `on` window would start
        // right after the dashboard's first tick and end before its second.
        let phase = Duration::from_secs_f64((k as f64 * 0.618_033_988_75).fract());
        let mut pair = [Pair::default(); 4];
        // The call workloads' pairs of this window: [`CALL_RUNS`] per workload.
        let mut call_pairs = [[Pair::default(); CALL_RUNS]; 2];
        for v in crate::pairs::abba(k) {
            let subject = ["off", "on"][v];
            if only_subject.as_deref().is_some_and(|o| o != subject) {
                continue;
            }
            let on = (v == 1).then(|| Part::start(&part));
            std::thread::sleep(phase);
            if runs("send") {
                pair[0].set(
                    v,
                    measure(&mut rounds[0], subject, n_send * SEND_REPEATS, || {
                        repeated(n_send, SEND_REPEATS, super::send::orbit)
                    }),
                );
            }
            for (c, (name, workers)) in [("call", crate::util::WORKERS), ("call_1w", 1)]
                .into_iter()
                .enumerate()
            {
                if !runs(name) {
                    continue;
                }
                for call_pair in &mut call_pairs[c] {
                    call_pair.set(
                        v,
                        measure(&mut rounds[1 + c], subject, n_call, || {
                            let (rate, s) = call_round(workers, n_call);
                            if verbose {
                                eprintln!(
                                    "observe: pair {k} {subject} {name} {:.0}/s same-thread {:.3} \
                                 switches {} parks/call {:.4} waits/call {:.4} \
                                 preempted/call {:.4} migrations/call {:.4} \
                                 worker CPU/call {:.3} µs dashboard wake-ups {} CPU {:.2} ms",
                                    rate,
                                    s.placement.same_share(),
                                    s.placement.switches,
                                    s.parks,
                                    s.worker_waits,
                                    s.worker_preempted,
                                    s.worker_migrations,
                                    s.worker_cpu_us,
                                    s.dash_wakeups,
                                    s.dash_cpu_ms
                                );
                            }
                            sched[c][v].push(s);
                            rate
                        }),
                    );
                }
            }
            if runs("spawn") {
                pair[3].set(
                    v,
                    measure(&mut rounds[3], subject, n_spawn * SPAWN_REPEATS, || {
                        repeated(n_spawn, SPAWN_REPEATS, spawn_rate)
                    }),
                );
            }
            drop(on);
        }
        for (i, (w, p)) in pairs.iter_mut().zip(pair).enumerate() {
            match i {
                1 | 2 if runs(["call", "call_1w"][i - 1]) => w.extend(call_pairs[i - 1]),
                _ => w.push(p),
            }
        }
    }
    // The call pairs whose two rounds ran with the same placement (the headline for
    // `call`); every pair for the others (`call_1w` has one placement by construction).
    let placed: Vec<bool> = sched[0][0]
        .iter()
        .zip(&sched[0][1])
        .map(|(a, b)| a.placement.matches(&b.placement, SAME_PLACEMENT))
        .collect();
    for (i, (metric, unit, bench)) in [
        ("msgs_per_s", "msg", "send"),
        ("calls_per_s", "call", "call"),
        ("calls_per_s_1_worker", "call", "call_1w"),
        ("spawns_per_s", "spawn", "spawn"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = &rounds[i];
        for s in ["off", "on"] {
            ctx.emit_rounds(SCENARIO, s, metric, unit, r);
        }
        // The old statistic: the ratio of the two subjects' medians of rounds.
        ctx.goal(
            SCENARIO,
            &format!("{bench}_on_vs_off_of_medians"),
            r.median("on"),
            r.median("off"),
        );
        let all: Vec<_> = pairs[i].iter().map(|p| (p.rate[0], p.rate[1])).collect();
        let cpus: Vec<_> = pairs[i].iter().map(|p| (p.cpu[0], p.cpu[1])).collect();
        let kept: Vec<_> = if i == 1 && !all.is_empty() {
            // The median of all pairs' ratios (the statistic before placement was
            // recorded), beside the headline.
            let r = crate::pairs::ratios(&all);
            ctx.emit_opt(SCENARIO, "ratio", "call_all_pairs_on_vs_off", median(&r));
            ctx.rep
                .emit(SCENARIO, "ratio", "call_all_pairs", r.len() as f64);
            all.iter()
                .zip(&placed)
                .filter(|(_, &same)| same)
                .map(|(p, _)| *p)
                .collect()
        } else {
            all
        };
        // The headline: the median of the (kept) per-pair ratios (see `crate::pairs`).
        let ratios = crate::pairs::ratios(&kept);
        if let Some(m) = median(&ratios) {
            ctx.rep.emit(
                SCENARIO,
                "ratio",
                &format!("{bench}_on_vs_off_min_0.97x"),
                m,
            );
            ctx.emit_spread(SCENARIO, "ratio", &format!("{bench}_pair_ratio"), &ratios);
            for (q, name) in [(0.25, "p25"), (0.75, "p75")] {
                ctx.emit_opt(
                    SCENARIO,
                    "ratio",
                    &format!("{bench}_pair_ratio_{name}"),
                    crate::pairs::quantile(&ratios, q),
                );
            }
            ctx.rep.emit(
                SCENARIO,
                "ratio",
                &format!("{bench}_pairs"),
                ratios.len() as f64,
            );
        }
        // CPU per unit on / off, per pair (above 1: observation costs CPU per unit).
        ctx.emit_opt(
            SCENARIO,
            "ratio",
            &format!("{bench}_cpu_per_{unit}_on_vs_off"),
            crate::pairs::median_ratio(&cpus),
        );
    }
    emit_call_sched(ctx, "call", &sched[0], &pairs[1]);
    emit_call_sched(ctx, "call_1w", &sched[1], &pairs[2]);
    ctx.emit_loadavg(SCENARIO, "end");
    if only.is_none() {
        million(ctx);
    }
}

/// One pair's figures for one workload, subject 0 (`off`) and 1 (`on`).
#[derive(Default, Clone, Copy)]
struct Pair {
    rate: [Option<f64>; 2],
    cpu: [Option<f64>; 2],
}

impl Pair {
    fn set(&mut self, v: usize, (rate, cpu): (f64, f64)) {
        self.rate[v] = Some(rate);
        self.cpu[v] = Some(cpu);
    }
}

/// A call workload's per-round counters per subject (medians): scheduler counters,
/// placement (the share of calls the server handled on the sending thread, and how many
/// rounds ran mostly on one thread: whether observation moves the pair), how many rounds
/// ran in the slow (cross-worker) mode by the parks, and the pair ratio among the pairs
/// whose two rounds ran in the same mode by the parks (the statistic before placement
/// was recorded).
fn emit_call_sched(ctx: &mut Ctx, bench: &str, sched: &[Vec<CallSched>; 2], pairs: &[Pair]) {
    if sched.iter().all(|xs| xs.is_empty()) {
        return;
    }
    let cross = |s: &CallSched| s.parks > CROSS_MODE_PARKS_PER_CALL;
    for (v, subject) in ["off", "on"].into_iter().enumerate() {
        let xs = &sched[v];
        if xs.is_empty() {
            continue;
        }
        let med = |f: &dyn Fn(&CallSched) -> f64| median(&xs.iter().map(f).collect::<Vec<_>>());
        let per_round: [(&str, SchedField); 8] = [
            ("parks_per_call", |s| s.parks),
            ("worker_waits_per_call", |s| s.worker_waits),
            ("worker_preemptions_per_call", |s| s.worker_preempted),
            ("worker_migrations_per_call", |s| s.worker_migrations),
            ("worker_cpu_us_per_call", |s| s.worker_cpu_us),
            ("dash_wakeups_per_round", |s| s.dash_wakeups),
            ("same_thread_share", |s| s.placement.same_share()),
            ("placement_switches_per_round", |s| {
                s.placement.switches as f64
            }),
        ];
        for (metric, f) in per_round {
            ctx.emit_opt(SCENARIO, subject, &format!("{bench}_{metric}"), med(&f));
        }
        // The mean, not the median: the tick and the scrapes land in a minority of rounds.
        let mean = |f: SchedField| xs.iter().map(f).sum::<f64>() / xs.len() as f64;
        ctx.rep.emit(
            SCENARIO,
            subject,
            &format!("{bench}_dash_wakeups_per_round_mean"),
            mean(|s| s.dash_wakeups),
        );
        ctx.rep.emit(
            SCENARIO,
            subject,
            &format!("{bench}_dash_cpu_ms_per_round_mean"),
            mean(|s| s.dash_cpu_ms),
        );
        let one_thread = xs
            .iter()
            .filter(|s| s.placement.same_share() >= ONE_THREAD_SHARE)
            .count();
        ctx.rep.emit(
            SCENARIO,
            subject,
            &format!("{bench}_same_thread_rounds"),
            one_thread as f64,
        );
        let slow = xs.iter().filter(|s| cross(s)).count();
        ctx.rep.emit(
            SCENARIO,
            subject,
            &format!("{bench}_cross_mode_rounds"),
            slow as f64,
        );
        ctx.rep.emit(
            SCENARIO,
            subject,
            &format!("{bench}_rounds"),
            xs.len() as f64,
        );
    }
    // The workers' own CPU per call, per pair (the dashboard's threads left out).
    let worker_cpu: Vec<(Option<f64>, Option<f64>)> = sched[0]
        .iter()
        .zip(&sched[1])
        .map(|(a, b)| (Some(a.worker_cpu_us), Some(b.worker_cpu_us)))
        .collect();
    ctx.emit_opt(
        SCENARIO,
        "ratio",
        &format!("{bench}_worker_cpu_per_call_on_vs_off"),
        crate::pairs::median_ratio(&worker_cpu),
    );
    // Pairs whose two rounds ran in the same mode by the parks.
    let same: Vec<(Option<f64>, Option<f64>)> = pairs
        .iter()
        .zip(sched[0].iter().zip(&sched[1]))
        .filter(|(_, (a, b))| cross(a) == cross(b))
        .map(|(p, _)| (p.rate[0], p.rate[1]))
        .collect();
    let r = crate::pairs::ratios(&same);
    ctx.emit_opt(
        SCENARIO,
        "ratio",
        &format!("{bench}_on_vs_off_same_mode_pairs"),
        median(&r),
    );
    ctx.rep.emit(
        SCENARIO,
        "ratio",
        &format!("{bench}_same_mode_pairs"),
        r.len() as f64,
    );
}

/// Part 0: nanoseconds per `telemetry::execute` with nothing listening to it.
fn execute_cost(ctx: &mut Ctx) {
    const CALLS: u64 = 50_000_000;
    let label = String::from("bench_cache");
    let once = |label: &String| {
        let t0 = Instant::now();
        for i in 0..CALLS {
            orbit::telemetry::execute(
                std::hint::black_box(&["orbit", "cache", "hit"]),
                &[("count", std::hint::black_box(i as f64))],
                &[("cache", label)],
            );
        }
        t0.elapsed().as_nanos() as f64 / CALLS as f64
    };
    let mut r = Rounds::default();
    for _ in 0..ctx.rounds {
        r.add("idle", once(&label));
        // orbit-observe attaches to stage, pool, supervisor and dist events, not to
        // cache hits: the emitter finds handlers and filters them by name.
        orbit_observe::events::attach();
        r.add("other_attached", once(&label));
        orbit_observe::events::detach();
    }
    ctx.emit_opt(SCENARIO, "orbit", "execute_ns_idle", r.median("idle"));
    ctx.emit_opt(
        SCENARIO,
        "orbit",
        "execute_ns_other_attached",
        r.median("other_attached"),
    );
}

/// Part 2: ranking a million processes over HTTP.
fn million(ctx: &mut Ctx) {
    let n = ctx.n(1_000_000);
    let on = On::start(false);
    let addr = on.addr();
    let rounds = ctx.rounds;
    let results = on_runtime(move || async move {
        let mut hs = Vec::with_capacity(n as usize);
        for i in 0..n {
            let h = orbit::spawn(|mut ctx: orbit::Context<u64>| async move {
                while let orbit::Message::Msg(_) = ctx.recv().await {}
            })
            .expect("orbit::spawn");
            if i % 997 == 0 {
                let _ = h.send(i);
            }
            hs.push(h);
        }
        let res = tokio::task::spawn_blocking(move || {
            let mut r = Rounds::default();
            for _ in 0..rounds {
                for sort in ["mailbox", "memory", "time", "rate"] {
                    match get(addr, &format!("/api/processes?sort={sort}&limit=50")) {
                        Ok((status, took)) if status.contains("200") => {
                            r.add(sort, took.as_secs_f64() * 1e3)
                        }
                        Ok((status, _)) => eprintln!("observe: /api/processes answered {status}"),
                        Err(e) => eprintln!("observe: /api/processes: {e}"),
                    }
                }
            }
            r
        })
        .await
        .expect("the ranking requests");
        for h in &hs {
            orbit::exit(h.pid(), orbit::ExitReason::Kill);
        }
        for h in hs {
            h.wait_exit().await;
        }
        res
    });
    let mut worst: Option<f64> = None;
    for sort in ["mailbox", "memory", "time", "rate"] {
        let m = results.median(sort);
        ctx.emit_opt(SCENARIO, "orbit", &format!("top_ms_{sort}"), m);
        ctx.emit_opt(
            SCENARIO,
            "orbit",
            &format!("top_ms_{sort}_max"),
            results.best(sort),
        );
        worst = match (worst, m) {
            (Some(w), Some(m)) => Some(w.max(m)),
            (None, m) => m,
            (w, None) => w,
        };
    }
    ctx.rep.emit(SCENARIO, "orbit", "top_processes", n as f64);
    ctx.goal(SCENARIO, "top_1m_within_1s", Some(1000.0), worst);
    drop(on);
}
