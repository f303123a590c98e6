//! `observe`: what observing a node costs, and how fast the processes page answers for
//! a million processes.
//!
//! Part 1, the cost: three workloads — `send` (N one-way messages to one process, the
//! `send` scenario's orbit subject), `call` (sequential GenServer calls with a 5 s
//! timeout, the `call` scenario's), `spawn` (N idle processes spawned, then stopped) —
//! each run with observation `off` and `on`, interleaved round by round (the order
//! rotates each round). `on` means what `orbit node --dashboard` runs: the dashboard
//! server on its own 1-worker runtime, the collector ticking every second (a pass over
//! every process, the system sample, the named-process and link series), orbit-observe's
//! telemetry handlers attached (so events are built), and a scraper fetching
//! `/metrics` and `/api/processes?sort=mailbox&limit=50` every second (Prometheus and
//! one open dashboard page). `on` is measured in its steady state: the first sample and
//! the first scrape are done before the workload starts (a node's dashboard starts once,
//! not with each workload; before this, the start-up burst landed inside the 0.1 s send
//! rounds). The Prometheus recorder is installed before the first
//! round and stays for both subjects (it is global and cannot be removed). Figures:
//! `msgs_per_s`, `calls_per_s`, `spawns_per_s` (median of rounds, with spread) per
//! subject, and the ratios `on_vs_off_min_0.97x` (goal: at most 3% slower).
//!
//! To split the cost, `OBSERVE_PART=events` makes `on` attach orbit-observe's telemetry
//! handlers only, `OBSERVE_PART=dashboard` serve the dashboard and its collector without
//! the scraper; `OBSERVE_ONLY=send|call|spawn` runs that workload alone (parts 0 and 2
//! skipped). The scraper sleeps until its next scrape (it polled every 20 ms before).
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
use crate::util::{measured, on_runtime, per_s, rotation, Rounds};

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
            std::thread::spawn(move || {
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

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    if let Err(e) = orbit_observe::PrometheusExporter::install() {
        eprintln!("observe: {e}");
        return;
    }
    let only = std::env::var("OBSERVE_ONLY").ok();
    if only.is_none() {
        execute_cost(ctx);
    }
    let (n_send, n_call, n_spawn) = (ctx.n(2_000_000), ctx.n(300_000), ctx.n(200_000));
    let (mut send, mut call, mut spawn) = (Rounds::default(), Rounds::default(), Rounds::default());
    let part = std::env::var("OBSERVE_PART").unwrap_or_default();
    let runs = |w: &str| only.as_deref().is_none_or(|o| o == w);
    for round in 0..ctx.rounds {
        for v in rotation(round, 2) {
            let subject = ["off", "on"][v];
            let on = (v == 1).then(|| Part::start(&part));
            if runs("send") {
                measured(&mut send, subject, n_send, || super::send::orbit(n_send));
            }
            if runs("call") {
                measured(&mut call, subject, n_call, || {
                    super::call::orbit_call(n_call, Duration::from_secs(5))
                });
            }
            if runs("spawn") {
                measured(&mut spawn, subject, n_spawn, || spawn_rate(n_spawn));
            }
            drop(on);
        }
    }
    for (r, metric, unit, bench) in [
        (&send, "msgs_per_s", "msg", "send"),
        (&call, "calls_per_s", "call", "call"),
        (&spawn, "spawns_per_s", "spawn", "spawn"),
    ] {
        for s in ["off", "on"] {
            ctx.emit_rounds(SCENARIO, s, metric, unit, r);
        }
        ctx.goal(
            SCENARIO,
            &format!("{bench}_on_vs_off_min_0.97x"),
            r.median("on"),
            r.median("off"),
        );
    }
    if only.is_none() {
        million(ctx);
    }
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
