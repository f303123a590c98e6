//! `web`: orbit-web against plain axum, same run, interleaved round by round.
//!
//! 1. **Timing overhead** (issue 22: "≤ 2% on a hello-world route versus plain axum"):
//!    a hello-world route served by plain axum (`plain`), and the same router timed
//!    from outside, its handler naming its route (`wrapped`: `Timing::wrap` and
//!    `Timing::route`; per-route count, rps and latency) — the headline pair; with
//!    orbit-web's `Timing` outer layer added instead (`layer`: the same figures, routes
//!    by axum's matched path); `plain_layer` (an untimed `Identity` layer in its place)
//!    separates axum's own cost of a layer (it boxes the route and its future once
//!    more) from the timing's. Second pair, the full middleware/handler split: `timed` (the
//!    outer layer, one named `Identity` middleware and the handler layer; the split
//!    recorded for at most `orbit_web::SPLIT_PER_S` requests/s per thread, the default)
//!    against `plain_layers` (the same router with untimed `Identity` layers in the same
//!    three places: axum's own cost of layering); `timed_every` splits every request.
//!    Each subject is a child process (`__web-http`) with [`WORKERS`] worker threads;
//!    load from `wrk` (Debian's, `-t1 -c32`, 2 s per round), subjects interleaved,
//!    rotated each round. Figures: requests/s (goal `≥ 0.98` of the reference), the
//!    server's CPU per request (all its threads' run time over the requests `wrk` made;
//!    reference over subject, goal `≥ 0.98`) and the load average before and after.
//!    Skipped with a note without `wrk`. Then the headline pair alone in ABBA order
//!    (plain, wrapped, wrapped, plain; reversed in odd rounds), each run against its
//!    neighbour: the median of the per-pair ratios (`ratio` `wrapped_vs_plain_pair_ratio_rps`,
//!    `plain_vs_wrapped_pair_ratio_cpu_per_request`) with their spread.
//!    `ORBIT_BENCH_WEB=timing` runs only this part, `pair` only the pairs,
//!    `ORBIT_BENCH_WEB=ws` only the next.
//! 2. **Websockets** (child processes `__web-ws orbit|plain`): `N` (10,000 × `--scale`)
//!    clients connect on loopback; orbit's join `room:lobby` over the Phoenix protocol,
//!    plain axum's subscribe to a `tokio::sync::broadcast` channel (the usual hand-rolled
//!    fan-out; with orbit-web's buffer sizes: its default read buffer, no write
//!    buffering).
//!    Figures: the server's resident memory per idle connection (RSS delta / N; goal
//!    ≤ 10 KB), then 20 broadcasts of one small JSON frame, each waited for
//!    on every client: delivery latency p50/p99 (send time in the frame, wall clock of
//!    this machine) and deliveries/s.
//!
//! The clients run in this process on their own runtime; the server's work is the same
//! on both sides (accept, hold, fan one frame out), except that orbit's clients send a
//! join first.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as Ws;

use super::Ctx;
use crate::util::{Rounds, WORKERS};

const SCENARIO: &str = "web";
const BROADCASTS: usize = 20;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A child server, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(args: &[&str]) -> Result<Server, String> {
        use std::io::BufRead;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| e.to_string())?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("unexpected first line {line:?}"))?;
        Ok(Server { child, port })
    }

    /// CPU seconds the server used so far, every thread (the scheduler's run time in
    /// `/proc/PID/task/*/schedstat`, nanoseconds; 0 when unreadable).
    fn cpu_s(&self) -> f64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.child.id())) else {
            return 0.0;
        };
        let ns: u64 = tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        ns as f64 / 1e9
    }

    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

/// One `wrk` round: requests/s and the requests made.
fn wrk(port: u16) -> Option<(f64, u64)> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            "-c32",
            "-d2s",
            &format!("http://127.0.0.1:{port}/hello"),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())?;
    // "  123456 requests in 2.00s, ..."
    let n = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())?;
    Some((rps, n))
}

/// Which parts run: `ORBIT_BENCH_WEB=timing` (the timing overhead and its headline
/// pairs), `ws` (the websockets only), `pair` (only the ABBA pairs of plain and `wrapped`); unset or
/// anything else, all.
pub fn run(ctx: &mut Ctx) {
    let part = std::env::var("ORBIT_BENCH_WEB").unwrap_or_default();
    if part != "ws" && part != "pair" {
        timing_overhead(ctx);
    }
    if part != "ws" {
        headline_pairs(ctx);
    }
    if part != "timing" && part != "pair" {
        websockets(ctx);
    }
}

/// 1b. The headline pair alone, `plain` and `wrapped`, in ABBA order: per round four
/// `wrk` runs (plain, wrapped, wrapped, plain; the reverse in odd rounds), each run
/// compared with its neighbour of the other subject, so that neither side gains from
/// its place (a machine warming up or getting busier). Figures: the median of the
/// per-pair ratios (wrapped over plain by requests/s, plain over wrapped by server CPU
/// per request; ≥ 0.98 is the goal) with their spread.
fn headline_pairs(ctx: &mut Ctx) {
    if Command::new("wrk").arg("--version").output().is_err() {
        return;
    }
    let (plain, wrapped) = match (
        Server::start(&["__web-http", "plain"]),
        Server::start(&["__web-http", "wrapped"]),
    ) {
        (Ok(p), Ok(w)) => (p, w),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{SCENARIO}: pairs: {e}");
            return;
        }
    };
    ctx.emit_loadavg(SCENARIO, "pairs_start");
    let (mut rps, mut cpu) = (Vec::new(), Vec::new());
    for round in 0..ctx.rounds {
        // `true`: plain.
        let order = if round % 2 == 0 {
            [true, false, false, true]
        } else {
            [false, true, true, false]
        };
        let runs: Vec<(bool, Option<(f64, f64)>)> = order
            .iter()
            .map(|&p| (p, wrk_cpu(if p { &plain } else { &wrapped })))
            .collect();
        // The pairs: runs 0 and 1, runs 2 and 3.
        for pair in runs.chunks(2) {
            let (p, w) = if pair[0].0 {
                (pair[0].1, pair[1].1)
            } else {
                (pair[1].1, pair[0].1)
            };
            if let (Some((p_rps, p_cpu)), Some((w_rps, w_cpu))) = (p, w) {
                rps.push(w_rps / p_rps);
                cpu.push(p_cpu / w_cpu);
            }
        }
    }
    ctx.emit_loadavg(SCENARIO, "pairs_end");
    for (metric, xs) in [
        ("wrapped_vs_plain_pair_ratio_rps", &rps),
        ("plain_vs_wrapped_pair_ratio_cpu_per_request", &cpu),
    ] {
        ctx.emit_opt(SCENARIO, "ratio", metric, crate::util::median(xs));
        ctx.emit_spread(SCENARIO, "ratio", metric, xs);
        ctx.rep.emit(
            SCENARIO,
            "ratio",
            &format!("{metric}_pairs"),
            xs.len() as f64,
        );
    }
}

/// One `wrk` round on `s`: requests/s and the server's CPU microseconds per request.
fn wrk_cpu(s: &Server) -> Option<(f64, f64)> {
    let c0 = s.cpu_s();
    let (rps, n) = wrk(s.port)?;
    Some((rps, (s.cpu_s() - c0) * 1e6 / n.max(1) as f64))
}

/// The HTTP subjects, in the order of the first round.
const HTTP_SUBJECTS: [&str; 7] = [
    "plain",
    "wrapped",
    "layer",
    "plain_layer",
    "plain_layers",
    "timed",
    "timed_every",
];

/// 1. Timing overhead: every subject in its own child process, `wrk` on each in turn.
fn timing_overhead(ctx: &mut Ctx) {
    let have_wrk = Command::new("wrk").arg("--version").output().is_ok();
    if !have_wrk {
        eprintln!("{SCENARIO}: wrk is not installed (apt-get install wrk): the timing overhead part is skipped");
        return;
    }
    ctx.emit_loadavg(SCENARIO, "start");
    let mut r = Rounds::default();
    let servers: Vec<(&'static str, Result<Server, String>)> = HTTP_SUBJECTS
        .into_iter()
        .map(|s| (s, Server::start(&["__web-http", s])))
        .collect();
    for (name, s) in &servers {
        if let Err(e) = s {
            eprintln!("{SCENARIO}: {name}: {e}");
        }
    }
    for round in 0..ctx.rounds {
        for k in crate::util::rotation(round, servers.len()) {
            if let (name, Ok(s)) = &servers[k] {
                let c0 = s.cpu_s();
                if let Some((rps, n)) = wrk(s.port) {
                    r.add(name, rps);
                    // The server's CPU per request: the overhead in work rather
                    // than in throughput, steadier on a shared machine.
                    r.add_cpu(name, (s.cpu_s() - c0) * 1e6 / n.max(1) as f64);
                }
            }
        }
    }
    ctx.emit_loadavg(SCENARIO, "end");
    for s in HTTP_SUBJECTS {
        ctx.emit_rounds(SCENARIO, s, "http_requests_per_s", "request", &r);
    }
    // The headline (issue 22): the cheapest timing (the router wrapped from outside,
    // handlers naming their routes) against plain axum.
    ctx.goal(
        SCENARIO,
        "wrapped_vs_plain_http_rps",
        r.median("wrapped"),
        r.median("plain"),
    );
    ctx.goal(
        SCENARIO,
        "plain_vs_wrapped_cpu_per_request",
        r.cpu_median("plain"),
        r.cpu_median("wrapped"),
    );
    // The timing layer alone (`Router::layer`) against plain axum.
    ctx.goal(
        SCENARIO,
        "layer_vs_plain_http_rps",
        r.median("layer"),
        r.median("plain"),
    );
    // CPU per request, plain over timed: ≥ 0.98 when timing costs ≤ 2% of the work.
    ctx.goal(
        SCENARIO,
        "plain_vs_layer_cpu_per_request",
        r.cpu_median("plain"),
        r.cpu_median("layer"),
    );
    // The same pair with axum's own cost of one more layer on both sides: the cost of
    // the timing itself.
    ctx.goal(
        SCENARIO,
        "layer_vs_plain_layer_http_rps",
        r.median("layer"),
        r.median("plain_layer"),
    );
    ctx.goal(
        SCENARIO,
        "plain_layer_vs_layer_cpu_per_request",
        r.cpu_median("plain_layer"),
        r.cpu_median("layer"),
    );
    // The full split against the same router with untimed layers in the same places.
    ctx.goal(
        SCENARIO,
        "timed_vs_plain_layers_http_rps",
        r.median("timed"),
        r.median("plain_layers"),
    );
    ctx.goal(
        SCENARIO,
        "plain_layers_vs_timed_cpu_per_request",
        r.cpu_median("plain_layers"),
        r.cpu_median("timed"),
    );
    // The full split against plain axum: the timing plus axum's cost of three layers.
    ctx.goal(
        SCENARIO,
        "timed_vs_plain_http_rps",
        r.median("timed"),
        r.median("plain"),
    );
    ctx.goal(
        SCENARIO,
        "plain_vs_timed_cpu_per_request",
        r.cpu_median("plain"),
        r.cpu_median("timed"),
    );
    ctx.goal(
        SCENARIO,
        "timed_every_vs_plain_layers_http_rps",
        r.median("timed_every"),
        r.median("plain_layers"),
    );
}

/// 2. Websockets: memory per idle connection and broadcast fan-out.
fn websockets(ctx: &mut Ctx) {
    let n = ctx.n(10_000) as usize;
    let mut mem = Rounds::default();
    let mut p50 = Rounds::default();
    let mut p99 = Rounds::default();
    let mut rate = Rounds::default();
    for round in 0..ctx.rounds {
        for k in crate::util::rotation(round, 2) {
            let subject = ["orbit", "plain"][k];
            match ws_round(subject, n) {
                Ok(f) => {
                    mem.add(subject, f.bytes_per_conn);
                    p50.add(subject, f.p50_us);
                    p99.add(subject, f.p99_us);
                    rate.add(subject, f.deliveries_per_s);
                }
                Err(e) => eprintln!("{SCENARIO}: {subject} websockets: {e}"),
            }
        }
    }
    for s in ["orbit", "plain"] {
        ctx.emit_rounds(SCENARIO, s, "ws_bytes_per_idle_conn", "conn", &mem);
        ctx.emit_rounds(SCENARIO, s, "broadcast_p50_us", "broadcast", &p50);
        ctx.emit_rounds(SCENARIO, s, "broadcast_p99_us", "broadcast", &p99);
        ctx.emit_rounds(SCENARIO, s, "broadcast_deliveries_per_s", "delivery", &rate);
    }
    ctx.emit_opt(SCENARIO, "setup", "ws_connections", Some(n as f64));
    ctx.goal(
        SCENARIO,
        "orbit_vs_plain_deliveries_per_s",
        rate.median("orbit"),
        rate.median("plain"),
    );
}

struct WsFigures {
    bytes_per_conn: f64,
    p50_us: f64,
    p99_us: f64,
    deliveries_per_s: f64,
}

fn ws_round(subject: &str, n: usize) -> Result<WsFigures, String> {
    let server = Server::start(&["__web-ws", subject])?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let port = server.port;
    let join = subject == "orbit";
    rt.block_on(async move {
        // Settle the server, then its baseline.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = server.rss();
        let url = format!("ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0");
        let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let mut ready = Vec::with_capacity(n);
        // Connect in batches of 200 so the accept queue never overflows.
        for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
            let mut batch = Vec::new();
            for _ in chunk {
                let url = url.clone();
                let lat_tx = lat_tx.clone();
                batch.push(tokio::spawn(client(url, join, lat_tx)));
            }
            for b in batch {
                ready.push(b.await.map_err(|e| e.to_string())??);
            }
        }
        // Every client joined (orbit) or subscribed (plain): idle memory.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = server.rss();
        let bytes_per_conn = after.saturating_sub(before) as f64 / n as f64;
        let http = format!("127.0.0.1:{port}");
        let mut lats = Vec::with_capacity(n * BROADCASTS);
        let start = Instant::now();
        for _ in 0..BROADCASTS {
            trigger(&http).await?;
            for _ in 0..n {
                let l = tokio::time::timeout(Duration::from_secs(30), lat_rx.recv())
                    .await
                    .map_err(|_| "a broadcast did not reach every client within 30 s".to_string())?
                    .ok_or("clients gone")?;
                lats.push(l);
            }
        }
        let elapsed = start.elapsed();
        lats.sort_unstable();
        let pct = |p: f64| lats[((lats.len() - 1) as f64 * p) as usize] as f64;
        drop(ready);
        Ok(WsFigures {
            bytes_per_conn,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            deliveries_per_s: (n * BROADCASTS) as f64 / elapsed.as_secs_f64(),
        })
    })
}

/// A client: connects (and joins, for orbit), then reports each broadcast's latency.
async fn client(
    url: String,
    join: bool,
    lat: tokio::sync::mpsc::UnboundedSender<u64>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if join {
        let j = json!(["1", "1", "room:lobby", "phx_join", {}]).to_string();
        ws.send(Ws::Text(j.into()))
            .await
            .map_err(|e| e.to_string())?;
        // The join's reply.
        match ws.next().await {
            Some(Ok(Ws::Text(t))) if t.as_str().contains("\"ok\"") => {}
            other => return Err(format!("join: {other:?}")),
        }
    }
    Ok(tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let Ws::Text(t) = m {
                if let Some(ts) = ts_of(t.as_str()) {
                    let _ = lat.send(now_us().saturating_sub(ts));
                }
            }
        }
    }))
}

/// The `ts` field of a broadcast frame (`..."ts":123...`).
fn ts_of(frame: &str) -> Option<u64> {
    let i = frame.find("\"ts\":")? + 5;
    let digits: String = frame[i..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Asks the server to broadcast one frame (`GET /broadcast` over a fresh connection).
async fn trigger(addr: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let req = format!("GET /broadcast HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    if !buf.starts_with(b"HTTP/1.1 200") {
        return Err(format!("broadcast: {}", String::from_utf8_lossy(&buf)));
    }
    Ok(())
}

/// The hidden child commands: `__web-http plain|wrapped|layer|plain_layer|plain_layers|timed|timed_every`, `__web-ws orbit|plain`.
pub fn child_main(cmd: &str, args: &[String]) -> i32 {
    let Some(rt) = crate::util::child_runtime(cmd, WORKERS) else {
        return 1;
    };
    let subject = args.first().map(String::as_str).unwrap_or("");
    let r = rt.block_on(async {
        let app = match (cmd, subject) {
            ("__web-http", "wrapped") => App::Timed(http_app_wrapped()),
            ("__web-http", "plain") => App::Plain(http_app(None)),
            ("__web-http", "layer") => App::Plain(http_app_layer_only()),
            ("__web-http", "plain_layer") => App::Plain(http_app_untimed_layer()),
            ("__web-http", "plain_layers") => App::Plain(http_app_untimed_layers()),
            ("__web-http", "timed") => App::Plain(http_app(Some(orbit_web::Timing::new()))),
            ("__web-http", "timed_every") => {
                App::Plain(http_app(Some(orbit_web::Timing::with_split_rate(None))))
            }
            ("__web-ws", "orbit") => App::Plain(orbit_ws_app()),
            ("__web-ws", "plain") => App::Plain(plain_ws_app()),
            _ => return Err(format!("unknown {cmd} {subject}")),
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        println!("port {port}");
        match app {
            App::Plain(app) => axum::serve(l, app).await,
            App::Timed(app) => axum::serve(l, app).await,
        }
        .map_err(|e| e.to_string())
    });
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{cmd}: {e}");
            1
        }
    }
}

/// A child's app: a router, or one timed from outside.
enum App {
    Plain(axum::Router),
    Timed(orbit_web::TimedRouter),
}

/// The cheapest timing: plain axum's router wrapped from outside, its handler naming
/// its route (`Timing::wrap`, `Timing::route`): per-route count and latency.
fn http_app_wrapped() -> orbit_web::TimedRouter {
    use axum::routing::get;
    let t = orbit_web::Timing::new();
    let app = axum::Router::new().route("/hello", get(t.route("/hello", || async { "hello" })));
    t.wrap(app)
}

fn http_app(timing: Option<orbit_web::Timing>) -> axum::Router {
    use axum::routing::get;
    let app = axum::Router::new().route("/hello", get(|| async { "hello" }));
    let Some(t) = timing else {
        return app;
    };
    app.route_layer(t.handler())
        .layer(t.timed("identity", tower_layer::Identity::new()))
        .layer(t.layer())
}

/// `layer`'s router with an untimed layer in its place: axum's own cost of a `layer`.
fn http_app_untimed_layer() -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(tower_layer::Identity::new())
}

/// `timed`'s router with untimed layers in the same places: axum's own cost of a
/// `route_layer` and two `layer`s (each boxes the route and its future once more).
fn http_app_untimed_layers() -> axum::Router {
    use axum::routing::get;
    use tower_layer::Identity;
    axum::Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route_layer(Identity::new())
        .layer(Identity::new())
        .layer(Identity::new())
}

/// Only the outer layer: per-route totals, no middleware or handler split.
fn http_app_layer_only() -> axum::Router {
    use axum::routing::get;
    let t = orbit_web::Timing::new();
    axum::Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(t.layer())
}

fn frame_payload() -> serde_json::Value {
    json!({"ts": now_us(), "body": "tick"})
}

struct Lobby;

impl orbit_web::Channel for Lobby {
    type Info = ();
    async fn join(
        _t: &str,
        _p: serde_json::Value,
        _s: &orbit_web::SocketInfo,
    ) -> Result<(Self, serde_json::Value), serde_json::Value> {
        Ok((Lobby, json!({})))
    }
}

fn orbit_ws_app() -> axum::Router {
    use axum::routing::get;
    // The bench's clients send no heartbeat (phoenix.js sends one every 30 s): the
    // idle timeout must outlast connecting 10,000 of them on a loaded machine.
    let limits = orbit_web::Limits {
        timeout: Duration::from_secs(600),
        ..orbit_web::Limits::default()
    };
    let ep = orbit_web::Endpoint::builder()
        .channel::<Lobby>("room:*")
        .limits(limits)
        .build();
    let e = ep.clone();
    axum::Router::new()
        .route(
            "/broadcast",
            get(move || async move {
                e.broadcast("room:lobby", "tick", &frame_payload());
                "ok"
            }),
        )
        .merge(ep.router("/socket"))
}

fn plain_ws_app() -> axum::Router {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use axum::routing::get;
    use std::sync::Arc;
    let (tx, _) = tokio::sync::broadcast::channel::<Arc<str>>(1024);
    let tx2 = tx.clone();
    axum::Router::new()
        .route(
            "/broadcast",
            get(move || async move {
                let frame = json!([null, null, "room:lobby", "tick", frame_payload()]).to_string();
                let _ = tx2.send(Arc::from(frame));
                "ok"
            }),
        )
        .route(
            "/socket/websocket",
            get(move |ws: WebSocketUpgrade| {
                let mut rx = tx.subscribe();
                async move {
                    // The same buffer sizes as orbit-web's defaults.
                    ws.read_buffer_size(orbit_web::Limits::default().read_buffer).write_buffer_size(0).on_upgrade(move |mut socket| async move {
                        loop {
                            tokio::select! {
                                m = rx.recv() => match m {
                                    Ok(f) => if socket.send(Message::Text(f.as_ref().into())).await.is_err() { break },
                                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                                    Err(_) => break,
                                },
                                m = socket.recv() => if !matches!(m, Some(Ok(_))) { break },
                            }
                        }
                    })
                }
            }),
        )
}
