//! `spawn`: 1M idle processes — spawns per second and resident bytes per idle process.
//!
//! Each measurement runs in a fresh child process (this binary re-executed with the
//! hidden `__spawn-child SUBJECT N` command) so the memory of one subject never pollutes
//! another's. In the child, from a task on a 2-worker tokio runtime (actix: from its own
//! single-threaded `System`, in a thread of its own):
//! 1. read the resident set size (`/proc/self/statm`, field 2 × page size);
//! 2. spawn N idle processes, each waiting for one message, keeping their handles in a
//!    vector (the clock runs around this loop only: `spawns_per_s`);
//!    For orbit and tokio the child then waits until every body has begun (each bumps
//!    a counter as it starts): `started_per_s` = N / the time from the first spawn to
//!    the last start. Orbit's spawn hands a burst's tasks to the runtime in batches,
//!    on the other worker (see `orbit`'s `start` module), so the two rates differ;
//!    a tokio task is queued by `tokio::spawn` itself.
//! 3. wait until the RSS stops growing (two reads 50 ms apart within 64 KiB), so every
//!    process has started and parked, all still alive;
//! 4. read RSS again: `bytes_per_process` = growth / N (it includes the 8–16 byte handle
//!    each process is kept by);
//! 5. stop them all (a message, a dropped sender, `stop` or `kill`), then exit.
//!
//! Subjects: `orbit` (`orbit::spawn`, `Context::recv`), `tokio` (task awaiting an
//! unbounded mpsc receiver), `ractor` (`Actor::spawn`, which awaits the actor's
//! start), `kameo` (`Spawn::spawn`, default mailbox), `actix` (`Actor::start` in a
//! `System`), and `beam` (`beam_bench:spawn_many/1`; its bytes come from
//! `erlang:memory(processes)`, not RSS).
//!
//! Rounds are interleaved (orbit, beam, tokio, ractor, kameo, actix, every round; the
//! BEAM with `+S 2:2` via `beam_bench:run([spawn, N])`, whose `spawn` returns a started,
//! runnable process). Headline (issue 17): `started_per_s`, the median of rounds with
//! best/min/max and `cpu_us_per_process` (CPU of the whole child process per process,
//! from `RUSAGE_CHILDREN` deltas; for the BEAM, emulator CPU during the spawn loop).
//! `spawns_per_s` (orbit's clock stops before the deferred start) is secondary; kameo and
//! actix have no started figure yet. Bytes: the median. Goals: orbit at least 1M
//! *started*/s and at most 1,000 bytes per idle process; orbit vs the BEAM on started/s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Ctx;
use crate::util::{cpu_s, per_s, rss_bytes, runtime, Rounds};

const SCENARIO: &str = "spawn";
const N: u64 = 1_000_000;
const SUBJECTS: [&str; 5] = ["orbit", "tokio", "ractor", "kameo", "actix"];

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n = ctx.n(N);
    let mut rate = Rounds::default();
    let mut started = Rounds::default();
    let mut bytes = Rounds::default();
    for _ in 0..ctx.rounds {
        for subject in SUBJECTS {
            let c0 = cpu_s(libc::RUSAGE_CHILDREN);
            match run_child(subject, n) {
                Ok(f) => {
                    // CPU of the whole child (spawn, start, teardown) per process.
                    let cpu = (cpu_s(libc::RUSAGE_CHILDREN) - c0) * 1e6 / n as f64;
                    rate.add(subject, f.spawns_per_s);
                    if let Some(v) = f.started_per_s {
                        started.add(subject, v);
                        started.add_cpu(subject, cpu);
                    }
                    bytes.add(subject, f.bytes_per_process);
                }
                Err(e) => eprintln!("note: spawn child for {subject} failed: {e}"),
            }
            if subject == "orbit" {
                // A BEAM spawn returns a started, runnable process: its rate is a started rate.
                if let Some(v) = ctx.beam_round(&mut started, "spawn", n) {
                    if let Some(b) = v.get("bytes_per_idle_process") {
                        bytes.add("beam", *b);
                    }
                }
            }
        }
    }
    for s in SUBJECTS.iter().copied().chain(["beam"]) {
        ctx.emit_rounds(SCENARIO, s, "started_per_s", "process", &started);
        ctx.emit_opt(SCENARIO, s, "spawns_per_s", rate.median(s));
        ctx.emit_opt(SCENARIO, s, "bytes_per_process", bytes.median(s));
    }
    ctx.goal(
        SCENARIO,
        "orbit_started_per_s_vs_1m_min_1x",
        started.median("orbit"),
        Some(1e6),
    );
    ctx.goal(
        SCENARIO,
        "orbit_started_per_s_vs_beam",
        started.median("orbit"),
        started.median("beam"),
    );
    ctx.goal(
        SCENARIO,
        "orbit_bytes_per_process_vs_1000_max_1x",
        bytes.median("orbit"),
        Some(1000.0),
    );
}

/// One child's figures.
struct Figures {
    spawns_per_s: f64,
    started_per_s: Option<f64>,
    bytes_per_process: f64,
}

/// Re-executes this binary as `__spawn-child SUBJECT N` and reads its figures.
fn run_child(subject: &str, n: u64) -> Result<Figures, String> {
    let v = crate::util::run_self(&["__spawn-child", subject, &n.to_string()])?;
    match (v.get("spawns_per_s"), v.get("bytes_per_process")) {
        (Some(r), Some(b)) => Ok(Figures {
            spawns_per_s: *r,
            started_per_s: v.get("started_per_s").copied(),
            bytes_per_process: *b,
        }),
        _ => Err("no figures in its output".into()),
    }
}

/// The hidden child command: measures one subject and prints
/// `spawns_per_s X bytes_per_process Y`, and `started_per_s Z` where measured.
pub fn child_main(subject: &str, n: u64) -> Result<(), String> {
    let f = match subject {
        "orbit" => on_tokio(n, orbit_child),
        "tokio" => on_tokio(n, tokio_child),
        "ractor" => on_tokio(n, ractor_child),
        "kameo" => on_tokio(n, kameo_child),
        "actix" => std::thread::spawn(move || actix_child(n))
            .join()
            .map_err(|_| "actix thread panicked".to_string())?,
        other => return Err(format!("unknown spawn subject {other}")),
    };
    print!(
        "spawns_per_s {} bytes_per_process {}",
        f.spawns_per_s, f.bytes_per_process
    );
    if let Some(v) = f.started_per_s {
        print!(" started_per_s {v}");
    }
    println!();
    Ok(())
}

/// Waits until the RSS stops growing: two reads 50 ms apart within 64 KiB (at most 10 s).
async fn settle() -> u64 {
    let mut last = rss_bytes();
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = rss_bytes();
        if now.abs_diff(last) < 64 * 1024 {
            return now;
        }
        last = now;
    }
    last
}

/// Bodies that have begun, in the orbit and tokio children.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// Waits until `n` bodies have begun.
async fn all_started(n: u64) {
    while STARTED.load(Ordering::Relaxed) < n {
        tokio::task::yield_now().await;
    }
}

/// What one child measurement found: the spawn-loop time and RSS before and after.
struct Measured {
    spawn_time: Duration,
    /// From the first spawn until every body had begun (orbit and tokio only).
    start_time: Option<Duration>,
    rss_before: u64,
    rss_after: u64,
}

impl Measured {
    fn figures(&self, n: u64) -> Figures {
        Figures {
            spawns_per_s: per_s(n, self.spawn_time),
            started_per_s: self.start_time.map(|t| per_s(n, t)),
            bytes_per_process: self.rss_after.saturating_sub(self.rss_before) as f64 / n as f64,
        }
    }
}

fn on_tokio<Fut>(n: u64, f: fn(u64) -> Fut) -> Figures
where
    Fut: std::future::Future<Output = Measured> + Send + 'static,
{
    let rt = runtime();
    let m = rt.block_on(async move { tokio::spawn(f(n)).await.expect("spawn child task") });
    rt.shutdown_timeout(Duration::from_secs(10));
    m.figures(n)
}

async fn orbit_child(n: u64) -> Measured {
    let mut procs = Vec::with_capacity(n as usize);
    let rss_before = rss_bytes();
    let t0 = Instant::now();
    for _ in 0..n {
        let h = orbit::spawn(|mut ctx: orbit::Context<()>| async move {
            STARTED.fetch_add(1, Ordering::Relaxed);
            let _ = ctx.recv().await;
        })
        .expect("orbit::spawn");
        procs.push(h);
    }
    let spawn_time = t0.elapsed();
    all_started(n).await;
    let start_time = Some(t0.elapsed());
    let rss_after = settle().await;
    for p in &procs {
        let _ = p.send(());
    }
    Measured {
        spawn_time,
        start_time,
        rss_before,
        rss_after,
    }
}

async fn tokio_child(n: u64) -> Measured {
    let mut senders = Vec::with_capacity(n as usize);
    let rss_before = rss_bytes();
    let t0 = Instant::now();
    for _ in 0..n {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        tokio::spawn(async move {
            STARTED.fetch_add(1, Ordering::Relaxed);
            let _ = rx.recv().await;
        });
        senders.push(tx);
    }
    let spawn_time = t0.elapsed();
    all_started(n).await;
    let start_time = Some(t0.elapsed());
    let rss_after = settle().await;
    drop(senders);
    Measured {
        spawn_time,
        start_time,
        rss_before,
        rss_after,
    }
}

/// An idle ractor actor.
struct RIdle;

impl ractor::Actor for RIdle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _me: ractor::ActorRef<()>,
        _: (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }
}

async fn ractor_child(n: u64) -> Measured {
    let mut actors = Vec::with_capacity(n as usize);
    let rss_before = rss_bytes();
    let t0 = Instant::now();
    for _ in 0..n {
        let (a, h) = ractor::Actor::spawn(None, RIdle, ())
            .await
            .expect("ractor spawn");
        actors.push((a, h));
    }
    let spawn_time = t0.elapsed();
    let rss_after = settle().await;
    for (a, _) in &actors {
        a.stop(None);
    }
    Measured {
        spawn_time,
        start_time: None,
        rss_before,
        rss_after,
    }
}

/// An idle kameo actor.
#[derive(kameo::Actor)]
struct KIdle;

async fn kameo_child(n: u64) -> Measured {
    use kameo::actor::Spawn;
    let mut actors = Vec::with_capacity(n as usize);
    let rss_before = rss_bytes();
    let t0 = Instant::now();
    for _ in 0..n {
        actors.push(KIdle::spawn(KIdle));
    }
    let spawn_time = t0.elapsed();
    let rss_after = settle().await;
    for a in &actors {
        a.kill();
    }
    Measured {
        spawn_time,
        start_time: None,
        rss_before,
        rss_after,
    }
}

/// An idle actix actor.
struct AIdle;

impl actix::Actor for AIdle {
    type Context = actix::Context<Self>;
}

fn actix_child(n: u64) -> Figures {
    let system = actix::System::new();
    let m = system.block_on(async move {
        use actix::Actor;
        let mut addrs = Vec::with_capacity(n as usize);
        let rss_before = rss_bytes();
        let t0 = Instant::now();
        for _ in 0..n {
            addrs.push(AIdle.start());
        }
        let spawn_time = t0.elapsed();
        let rss_after = settle().await;
        // Dropping every address stops the actors.
        drop(addrs);
        actix::System::current().stop();
        Measured {
            spawn_time,
            start_time: None,
            rss_before,
            rss_after,
        }
    });
    m.figures(n)
}
