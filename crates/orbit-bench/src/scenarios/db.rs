//! `db`: Orbit's PostgreSQL pool (`orbit_db::PgPool`) against deadpool-postgres,
//! bb8-postgres and Elixir's Postgrex + DBConnection, on one throwaway PostgreSQL
//! server started for the run (`initdb` in a temp dir, loopback port; skipped with a
//! note when PostgreSQL is not installed).
//!
//! Same server, same table (`kv`, 1000 rows), same query, same pool size, same
//! clients: [`CLIENTS`] closed-loop clients, each doing one checkout + the point query
//! `SELECT v FROM kv WHERE id = $1` + check-in per operation, through a pool of
//! [`POOL`] connections, for [`SECONDS`] s (× `--scale`) after a warm-up of a fifth of
//! that (connections open, statements prepared). Every subject runs the query the same
//! way: a named statement prepared once per connection, found again by its SQL text in
//! a per-connection cache, then one Bind/Execute/Sync round trip per query:
//! - `orbit_db`: `PgPool::run` with `query_one` (the pool's statement cache,
//!   DBConnection's queue defaults and per-call timeout);
//! - `deadpool`: `deadpool_postgres` (`RecyclingMethod::Fast`), `prepare_cached` +
//!   `query_one`;
//! - `deadpool_deadline`: `deadpool` with each operation (wait for a connection and
//!   query) under one `tokio::time::timeout` of `orbit_db`'s default `timeout`
//!   (DBConnection's 15 s): one timer per call, as `orbit_db` arms, to tell the price of
//!   a deadline from the pool's own cost (no queue shedding; not a goal subject);
//! - `bb8`: `bb8_postgres`'s manager wrapped so each connection carries a statement
//!   cache (bb8-postgres has none), `test_on_check_out(false)` (as the others, no ping
//!   per checkout), `query_one`;
//! - `postgrex`: `beam/db_bench.exs`, a Postgrex pool (DBConnection) of the same size,
//!   `Postgrex.execute!` of a query prepared by name (Postgrex prepares it once on each
//!   connection) from as many processes, `+S N:N` with N = the Rust runtime's workers
//!   (skipped with a note without `elixir`).
//!
//! Every subject runs in every round, the order rotated; each reports `queries_per_s`
//! (median of rounds, with `_best`, `_min`, `_max`), `p99_ms` (median of rounds),
//! `cpu_us_per_query` (client process, user + system, every thread: `getrusage` for
//! the Rust subjects, `/proc/PID/stat` of the emulator for Postgrex, over the measured
//! window only; with `_min`/`_max`), `switches_per_query` (the client's context
//! switches, every thread) and `server_cpu_us_per_query` (every PostgreSQL process,
//! from `/proc`, over the same window), `server_switches_per_query` (every
//! PostgreSQL process's context switches, same window) and, for the Rust subjects,
//! what the server did over the whole round (pool start to its backends gone, when
//! each backend flushes its statistics): `server_xacts_per_query` (`pg_stat_database`
//! commits + rollbacks per query, warm-up included: a ping, `ROLLBACK`, `SET` or
//! re-prepare per call would show above 1), `server_sessions_per_round` and
//! `server_connections_per_round` (connections the postmaster accepted, from the
//! `log_connections` lines the run turns on: a session or a cancel request each).
//! `host` `loadavg_1m_start`/`_end` frame the run. Goals: `orbit_db` ≥ 1x deadpool and bb8, ≥ 2x Postgrex.
//!
//! `ORBIT_BENCH_DB_SUBJECTS=orbit_db,deadpool` (comma-separated names of
//! [`SUBJECTS`]) runs only those subjects, e.g. to profile one pool with `perf record`;
//! unset, every subject runs. `ORBIT_BENCH_DB_DEADPOOL_HOLD_NS=N` (diagnostic) makes
//! the deadpool subjects spin N ns after each query while still holding the
//! connection, to see how the server's CPU per query follows a slower client.

#[path = "../../../orbit-db/tests/support/mod.rs"]
mod db_support;

use std::collections::HashMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use db_support::pg::PgServer;
use hdrhistogram::Histogram;
use tokio_postgres::{Client, Statement};

use super::Ctx;
use crate::util::{cpu_s, least, median, run_rotated, Rounds, Step};

const SCENARIO: &str = "db";
/// Connections in every pool.
pub const POOL: usize = 10;
/// Concurrent clients.
pub const CLIENTS: usize = 32;
/// Measured seconds per subject and round (× `--scale`).
pub const SECONDS: f64 = 2.0;
const SQL: &str = "SELECT v FROM kv WHERE id = $1";
const SUBJECTS: [&str; 5] = [
    "orbit_db",
    "deadpool",
    "deadpool_deadline",
    "bb8",
    "postgrex",
];

/// One subject-round's figures.
#[derive(Clone, Copy)]
struct Round {
    queries_per_s: f64,
    p99_ms: f64,
    /// Client process CPU µs per query.
    cpu_us: f64,
    /// PostgreSQL server CPU µs per query, when /proc could be read.
    server_cpu_us: Option<f64>,
    /// Client context switches (voluntary + involuntary, every thread) per query.
    switches: Option<f64>,
    /// PostgreSQL processes' context switches per query (voluntary + involuntary).
    server_switches: Option<f64>,
    /// Server-side counts per query over the whole round (warm-up included).
    counts: Option<ServerCounts>,
}

/// What the server did per query, over a whole round (pool start to pool closed):
/// transactions (an autocommit statement is one; a ping, `ROLLBACK` or re-prepare
/// sent at checkout/check-in would show here), sessions opened and connections the
/// postmaster accepted (every session and every cancel request is one).
#[derive(Clone, Copy)]
struct ServerCounts {
    xacts_per_query: f64,
    sessions: f64,
    connections: f64,
}

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    if std::fs::read_dir("/usr/lib/postgresql").is_err() {
        eprintln!(
            "note: PostgreSQL not installed (Debian package postgresql); skipping the db scenario"
        );
        return;
    }
    let Some(server) = PgServer::start(100) else {
        return;
    };
    let conn_str = server.conn_str("orbit_bench");
    let setup = crate::util::runtime().block_on(async {
        let admin = server.admin().await;
        admin
            .batch_execute(
                "CREATE TABLE kv (id int PRIMARY KEY, v text NOT NULL);
                 INSERT INTO kv SELECT i, md5(i::text) FROM generate_series(1, 1000) i;
                 ANALYZE kv;",
            )
            .await
    });
    if let Err(e) = setup {
        eprintln!("note: db scenario setup failed: {e}");
        return;
    }
    // Every connection the postmaster accepts (sessions and cancel requests) logged, to
    // be counted per round.
    let logging = crate::util::runtime().block_on(async {
        let admin = server.admin().await;
        admin
            .batch_execute("ALTER SYSTEM SET log_connections = on")
            .await?;
        admin.batch_execute("SELECT pg_reload_conf()").await
    });
    if let Err(e) = logging {
        eprintln!("note: log_connections not set ({e}); no connection counts");
    }
    ctx.emit_loadavg(SCENARIO, "start");
    let dur = Duration::from_secs_f64((SECONDS * ctx.scale).max(0.2));
    let mut r = Rounds::default();
    let mut extra: HashMap<&'static str, Vec<Round>> = HashMap::new();
    let extra_cell = std::cell::RefCell::new(&mut extra);
    let record = |r: &mut Rounds, subject: &'static str, out: Option<Round>| {
        if let Some(x) = out {
            r.add(subject, x.queries_per_s);
            r.add_cpu(subject, x.cpu_us);
            extra_cell.borrow_mut().entry(subject).or_default().push(x);
        }
    };
    let server = &server;
    let conn_str = conn_str.as_str();
    let steps: Vec<Step> = vec![
        Box::new(|r| {
            let out = rust_round(server, conn_str, dur, Subject::Orbit);
            record(r, "orbit_db", out)
        }),
        Box::new(|r| {
            let out = rust_round(server, conn_str, dur, Subject::Deadpool);
            record(r, "deadpool", out)
        }),
        Box::new(|r| {
            let out = rust_round(server, conn_str, dur, Subject::DeadpoolDeadline);
            record(r, "deadpool_deadline", out)
        }),
        Box::new(|r| record(r, "bb8", rust_round(server, conn_str, dur, Subject::Bb8))),
        Box::new(|r| record(r, "postgrex", postgrex_round(server, dur))),
    ];
    let chosen = chosen_subjects();
    let mut steps: Vec<Step> = steps
        .into_iter()
        .zip(SUBJECTS)
        .filter(|(_, name)| chosen.contains(name))
        .map(|(step, _)| step)
        .collect();
    run_rotated(ctx.rounds, &mut steps, &mut r);
    drop(steps);
    for s in SUBJECTS {
        ctx.emit_rounds(SCENARIO, s, "queries_per_s", "query", &r);
        let xs = extra.get(s).cloned().unwrap_or_default();
        if xs.is_empty() {
            continue;
        }
        let of = |f: fn(&Round) -> Option<f64>| xs.iter().filter_map(f).collect::<Vec<f64>>();
        ctx.emit_opt(SCENARIO, s, "p99_ms", median(&of(|x| Some(x.p99_ms))));
        let cpu = of(|x| Some(x.cpu_us));
        ctx.emit_opt(SCENARIO, s, "cpu_us_per_query_min", least(&cpu));
        ctx.emit_opt(SCENARIO, s, "cpu_us_per_query_max", crate::util::best(&cpu));
        let server_cpu = of(|x| x.server_cpu_us);
        ctx.emit_opt(SCENARIO, s, "server_cpu_us_per_query", median(&server_cpu));
        ctx.emit_opt(
            SCENARIO,
            s,
            "server_cpu_us_per_query_min",
            least(&server_cpu),
        );
        ctx.emit_opt(
            SCENARIO,
            s,
            "server_cpu_us_per_query_max",
            crate::util::best(&server_cpu),
        );
        let switches = of(|x| x.switches);
        ctx.emit_opt(SCENARIO, s, "switches_per_query", median(&switches));
        let server_switches = of(|x| x.server_switches);
        ctx.emit_opt(
            SCENARIO,
            s,
            "server_switches_per_query",
            median(&server_switches),
        );
        let xacts = of(|x| x.counts.map(|c| c.xacts_per_query));
        ctx.emit_opt(SCENARIO, s, "server_xacts_per_query", median(&xacts));
        let sessions = of(|x| x.counts.map(|c| c.sessions));
        ctx.emit_opt(SCENARIO, s, "server_sessions_per_round", median(&sessions));
        let conns = of(|x| x.counts.map(|c| c.connections));
        ctx.emit_opt(SCENARIO, s, "server_connections_per_round", median(&conns));
        ctx.rep.emit(SCENARIO, s, "pool_size", POOL as f64);
        ctx.rep.emit(SCENARIO, s, "clients", CLIENTS as f64);
        if s == "postgrex" {
            ctx.rep
                .emit(SCENARIO, s, "schedulers_S", crate::util::WORKERS as f64);
        }
    }
    ctx.emit_loadavg(SCENARIO, "end");
    let o = r.median("orbit_db");
    ctx.goal(
        SCENARIO,
        "orbit_db_vs_deadpool_min_1x",
        o,
        r.median("deadpool"),
    );
    ctx.goal(SCENARIO, "orbit_db_vs_bb8_min_1x", o, r.median("bb8"));
    // Not a goal: against deadpool given the same one deadline per call.
    ctx.rep.ratio(
        SCENARIO,
        "orbit_db_vs_deadpool_deadline",
        o,
        r.median("deadpool_deadline"),
    );
    ctx.goal(
        SCENARIO,
        "orbit_db_vs_postgrex_min_2x",
        o,
        r.median("postgrex"),
    );
}

/// The subjects to run: those named in `ORBIT_BENCH_DB_SUBJECTS` (comma-separated),
/// every one when it is unset; unknown names are reported and ignored.
fn chosen_subjects() -> Vec<&'static str> {
    let Ok(list) = std::env::var("ORBIT_BENCH_DB_SUBJECTS") else {
        return SUBJECTS.to_vec();
    };
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    for n in &names {
        if !SUBJECTS.contains(n) {
            eprintln!(
                "note: ORBIT_BENCH_DB_SUBJECTS names {n:?}, not one of {SUBJECTS:?}; ignored"
            );
        }
    }
    SUBJECTS.into_iter().filter(|s| names.contains(s)).collect()
}

/// CPU seconds (user + system) process `pid` has used, from `/proc/PID/stat`.
fn proc_cpu_s(pid: u32) -> Option<f64> {
    crate::util::proc_cpu_us(pid).map(|us| us as f64 / 1e6)
}

/// Context switches (voluntary + involuntary) of every thread of process `pid`.
fn proc_switches(pid: u32) -> Option<f64> {
    let mut n = 0.0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let status = std::fs::read_to_string(t.ok()?.path().join("status")).ok()?;
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                n += v.trim().parse::<f64>().ok()?;
            }
        }
    }
    Some(n)
}

/// Context switches (voluntary + involuntary) of this process, every thread.
fn self_switches() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    (ru.ru_nvcsw + ru.ru_nivcsw) as f64
}

/// CPU seconds of every PostgreSQL process now, by pid.
fn server_cpu(server: &PgServer) -> HashMap<u32, f64> {
    server
        .processes()
        .into_iter()
        .filter_map(|p| Some((p, proc_cpu_s(p)?)))
        .collect()
}

/// Context switches of every PostgreSQL process now, by pid.
fn server_switches(server: &PgServer) -> HashMap<u32, f64> {
    server
        .processes()
        .into_iter()
        .filter_map(|p| Some((p, proc_switches(p)?)))
        .collect()
}

/// Connections the postmaster has accepted so far (`log_connections` lines: a
/// session or a cancel request each).
fn connections_logged(server: &PgServer) -> f64 {
    server.log().matches("connection received:").count() as f64
}

/// `pg_stat_database` of the bench's database now: (transactions committed + rolled
/// back, sessions).
async fn db_stats(admin: &Client) -> Option<(f64, f64)> {
    let row = admin
        .query_one(
            "SELECT (xact_commit + xact_rollback)::float8, sessions::float8 \
             FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .ok()?;
    Some((row.get(0), row.get(1)))
}

/// Waits (at most 10 s) until no backend of the bench's pools is left, so that every
/// one has flushed its statistics (a backend flushes them when it exits).
async fn pool_backends_gone(admin: &Client) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let left = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orbit_bench'",
                &[],
            )
            .await
            .map(|r| r.get::<_, i64>(0));
        if !matches!(left, Ok(n) if n > 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the server's processes added between two per-pid samples (CPU seconds,
/// context switches; a process born in between counts from zero). `None` when /proc
/// gave nothing.
fn grown_between(a: &HashMap<u32, f64>, b: &HashMap<u32, f64>) -> Option<f64> {
    if b.is_empty() {
        return None;
    }
    Some(
        b.iter()
            .map(|(p, t)| t - a.get(p).copied().unwrap_or(0.0))
            .sum(),
    )
}

/// One round of Postgrex + DBConnection (`beam/db_bench.exs`): the emulator's and the
/// server's CPU are sampled at the script's `measure start`/`measure end` lines.
fn postgrex_round(server: &PgServer, dur: Duration) -> Option<Round> {
    let args = [
        "127.0.0.1".to_string(),
        server.port.to_string(),
        CLIENTS.to_string(),
        dur.as_millis().to_string(),
        POOL.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = crate::beam::spawn_elixir("db_bench.exs", &args)?;
    let pid = child.id();
    let stdout = child.stdout.take()?;
    let (mut start, mut end) = (None, None);
    let mut text = String::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "measure start" => {
                start = Some((
                    proc_cpu_s(pid),
                    server_cpu(server),
                    proc_switches(pid),
                    server_switches(server),
                ))
            }
            "measure end" => {
                end = Some((
                    proc_cpu_s(pid),
                    server_cpu(server),
                    proc_switches(pid),
                    server_switches(server),
                ))
            }
            _ => {
                text.push_str(&line);
                text.push('\n');
            }
        }
    }
    match child.wait() {
        Ok(st) if st.success() => {}
        other => {
            eprintln!("note: elixir db_bench.exs failed ({other:?})");
            return None;
        }
    }
    let v = crate::beam::parse_kv(&text);
    let (rate, p99_ms) = (*v.get("rate")?, *v.get("p99_ms")?);
    let queries = (rate * dur.as_secs_f64()).max(1.0);
    let ((c0, s0, w0, sw0), (c1, s1, w1, sw1)) = (start?, end?);
    let cpu = match (c0, c1) {
        (Some(a), Some(b)) => b - a,
        _ => *v.get("cpu_s")?,
    };
    Some(Round {
        queries_per_s: rate,
        p99_ms,
        cpu_us: cpu * 1e6 / queries,
        server_cpu_us: grown_between(&s0, &s1).map(|c| c * 1e6 / queries),
        switches: w0.zip(w1).map(|(a, b)| (b - a) / queries),
        server_switches: grown_between(&sw0, &sw1).map(|c| c / queries),
        counts: None,
    })
}

#[derive(Clone, Copy)]
enum Subject {
    Orbit,
    Deadpool,
    /// `deadpool` with every operation under one timeout.
    DeadpoolDeadline,
    Bb8,
}

/// bb8-postgres's manager, with a statement cache on each connection (as
/// deadpool-postgres and orbit_db have), so bb8 prepares once per connection too.
struct Bb8Manager(bb8_postgres::PostgresConnectionManager<tokio_postgres::NoTls>);

/// A bb8 connection: the client and its prepared statements by SQL text.
struct Bb8Conn {
    client: Client,
    stmts: HashMap<String, Statement>,
}

impl bb8::ManageConnection for Bb8Manager {
    type Connection = Bb8Conn;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<Bb8Conn, tokio_postgres::Error> {
        Ok(Bb8Conn {
            client: self.0.connect().await?,
            stmts: HashMap::new(),
        })
    }

    async fn is_valid(&self, c: &mut Bb8Conn) -> Result<(), tokio_postgres::Error> {
        self.0.is_valid(&mut c.client).await
    }

    fn has_broken(&self, c: &mut Bb8Conn) -> bool {
        self.0.has_broken(&mut c.client)
    }
}

/// A pool of one subject, behind one call: one operation = checkout, query, check-in.
#[derive(Clone)]
enum AnyPool {
    Orbit(orbit_db::PgPool),
    /// With the deadline of every operation, when timed.
    Deadpool(deadpool_postgres::Pool, Option<Duration>),
    Bb8(bb8::Pool<Bb8Manager>),
}

impl AnyPool {
    async fn start(conn_str: &str, s: Subject) -> Result<AnyPool, String> {
        let config: tokio_postgres::Config = conn_str.parse().map_err(|e| format!("{e}"))?;
        Ok(match s {
            Subject::Orbit => AnyPool::Orbit(
                orbit_db::PgPool::start(config, orbit_db::DbPoolOptions::new(POOL))
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            Subject::Deadpool | Subject::DeadpoolDeadline => {
                let mgr = deadpool_postgres::Manager::from_config(
                    config,
                    tokio_postgres::NoTls,
                    deadpool_postgres::ManagerConfig {
                        recycling_method: deadpool_postgres::RecyclingMethod::Fast,
                    },
                );
                let deadline = matches!(s, Subject::DeadpoolDeadline)
                    .then(|| orbit_db::DbPoolOptions::new(POOL).timeout);
                AnyPool::Deadpool(
                    deadpool_postgres::Pool::builder(mgr)
                        .max_size(POOL)
                        .build()
                        .map_err(|e| e.to_string())?,
                    deadline,
                )
            }
            Subject::Bb8 => {
                let mgr = Bb8Manager(bb8_postgres::PostgresConnectionManager::new(
                    config,
                    tokio_postgres::NoTls,
                ));
                AnyPool::Bb8(
                    bb8::Pool::builder()
                        .max_size(POOL as u32)
                        .test_on_check_out(false)
                        .build(mgr)
                        .await
                        .map_err(|e| e.to_string())?,
                )
            }
        })
    }

    async fn op(&self, id: i32) -> Result<(), String> {
        match self {
            AnyPool::Orbit(p) => p
                .run(|c| async move {
                    let row = c.query_one(SQL, &[&id]).await?;
                    let _: &str = row.get(0);
                    Ok::<_, orbit_db::DbError>(())
                })
                .await
                .map_err(|e| e.to_string()),
            AnyPool::Deadpool(p, deadline) => {
                let work = async {
                    let c = p.get().await.map_err(|e| e.to_string())?;
                    let stmt = c.prepare_cached(SQL).await.map_err(|e| e.to_string())?;
                    let row = c
                        .query_one(&stmt, &[&id])
                        .await
                        .map_err(|e| e.to_string())?;
                    let _: &str = row.get(0);
                    hold_spin();
                    Ok(())
                };
                match deadline {
                    None => work.await,
                    Some(d) => tokio::time::timeout(*d, work)
                        .await
                        .map_err(|_| format!("deadpool call over its {d:?} deadline"))?,
                }
            }
            AnyPool::Bb8(p) => {
                let mut c = p.get().await.map_err(|e| e.to_string())?;
                let stmt = match c.stmts.get(SQL) {
                    Some(s) => s.clone(),
                    None => {
                        let s = c.client.prepare(SQL).await.map_err(|e| e.to_string())?;
                        c.stmts.insert(SQL.to_string(), s.clone());
                        s
                    }
                };
                let row = c
                    .client
                    .query_one(&stmt, &[&id])
                    .await
                    .map_err(|e| e.to_string())?;
                let _: &str = row.get(0);
                Ok(())
            }
        }
    }

    async fn close(self) {
        match self {
            AnyPool::Orbit(p) => {
                let _ = p.stop(Duration::from_secs(5)).await;
            }
            AnyPool::Deadpool(p, _) => p.close(),
            AnyPool::Bb8(p) => drop(p),
        }
    }
}

/// Diagnostic: `ORBIT_BENCH_DB_DEADPOOL_HOLD_NS` makes the deadpool subjects spin
/// that long (client CPU) after each query while still holding the connection, to see
/// how the server's CPU per query follows a slower client. Unset: nothing.
fn hold_spin() {
    static HOLD: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    let hold = *HOLD.get_or_init(|| {
        std::env::var("ORBIT_BENCH_DB_DEADPOOL_HOLD_NS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_nanos)
            .unwrap_or_default()
    });
    if hold.is_zero() {
        return;
    }
    let t0 = Instant::now();
    while t0.elapsed() < hold {
        std::hint::spin_loop();
    }
}

/// Closed-loop clients for `dur`: (ops, latency histogram in µs).
async fn drive(pool: &AnyPool, dur: Duration) -> Result<(u64, Histogram<u64>), String> {
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
            let mut n = 0u64;
            let mut i = 0usize;
            loop {
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                let id = ((c * 7919 + i) % 1000 + 1) as i32;
                i += 1;
                pool.op(id).await?;
                h.record(t0.elapsed().as_micros() as u64)
                    .map_err(|e| e.to_string())?;
                n += 1;
            }
            Ok::<_, String>((n, h))
        }));
    }
    let mut total = 0;
    let mut all = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    for t in tasks {
        let (n, h) = t.await.map_err(|e| e.to_string())??;
        total += n;
        all.add(h).map_err(|e| e.to_string())?;
    }
    Ok((total, all))
}

/// One round of a Rust subject on a fresh runtime, the server's CPU sampled around
/// the measured window.
fn rust_round(server: &PgServer, conn_str: &str, dur: Duration, s: Subject) -> Option<Round> {
    let rt = crate::util::runtime();
    let conn_str = conn_str.to_string();
    let admin_str = server.conn_str("orbit_bench_admin");
    let out = rt.block_on(async move {
        let (admin, conn) = tokio_postgres::connect(&admin_str, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("admin connection: {e}"))?;
        tokio::spawn(conn);
        let d0 = db_stats(&admin).await;
        let l0 = connections_logged(server);
        let pool = AnyPool::start(&conn_str, s).await?;
        let (warm, _) = drive(&pool, dur / 5).await?;
        let s0 = server_cpu(server);
        let sw0 = server_switches(server);
        let w0 = self_switches();
        let c0 = cpu_s(libc::RUSAGE_SELF);
        let t0 = Instant::now();
        let (n, h) = drive(&pool, dur).await?;
        let elapsed = t0.elapsed();
        let cpu = cpu_s(libc::RUSAGE_SELF) - c0;
        let w1 = self_switches();
        let s1 = server_cpu(server);
        let sw1 = server_switches(server);
        pool.close().await;
        pool_backends_gone(&admin).await;
        let d1 = db_stats(&admin).await;
        let l1 = connections_logged(server);
        let queries = n.max(1) as f64;
        // The admin's own few statements count too: negligible beside the queries.
        let counts = d0.zip(d1).map(|((x0, s0), (x1, s1))| ServerCounts {
            xacts_per_query: (x1 - x0) / (n + warm).max(1) as f64,
            sessions: s1 - s0,
            connections: l1 - l0,
        });
        Ok::<_, String>(Round {
            queries_per_s: n as f64 / elapsed.as_secs_f64(),
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            cpu_us: cpu * 1e6 / queries,
            server_cpu_us: grown_between(&s0, &s1).map(|c| c * 1e6 / queries),
            switches: Some((w1 - w0) / queries),
            server_switches: grown_between(&sw0, &sw1).map(|c| c / queries),
            counts,
        })
    });
    drop(rt);
    match out {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("note: db round failed: {e}");
            None
        }
    }
}
