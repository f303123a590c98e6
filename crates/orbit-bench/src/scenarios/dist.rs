//! `dist`: the Erlang distribution protocol on loopback, two Orbit nodes against two BEAM
//! nodes running `../shared/beam/dist_bench.erl`, in the same run.
//!
//! Every node is its own OS process (one node per process): the bench starts an Orbit
//! node `B` (`__dist-node`, serving `echo` and `sink` like `dist_bench:server/0` and
//! `sink_loop/2`) and an Orbit driver node `A` (`__dist-driver`) that runs the same three
//! measurements as `dist_bench:run/1` and prints `key value` lines:
//!
//! - round trips: `{echo, B} ! {self(), x}`, wait for `x` (200k, sequential);
//! - one-way small messages: 1M `{msg, I, <<"payload-0123456789">>}` to a sink on `B`,
//!   clock stopped by the sink's `done`;
//! - 100 KB binaries: 20k `{big, Bin}` to a sink, bytes per second.
//!
//! The BEAM pair runs `dist_bench:server/0` and `dist_bench:run/1`. Beside them, Orbit ->
//! BEAM one-way: the Orbit driver sends the 1M small messages to a sink on a BEAM node.
//! Goals: one-way ≥ 3x the BEAM, 100 KB bytes/s ≥ 1x, round trips ≥ 2x.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orbit::{Context, Message};
use orbit_term::{Atom, Term};
use serde::Deserialize;

use super::Ctx;
use crate::beam;

const SCENARIO: &str = "dist";
const COOKIE: &str = "orbit_bench_dist";

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let (rt_n, one_n, big_n) = (ctx.n(200_000), ctx.n(1_000_000), ctx.n(20_000));
    let mut best: std::collections::BTreeMap<String, f64> = Default::default();
    let mut keep = |subject: &str, v: beam::Values| {
        for (k, x) in v {
            let e = best.entry(format!("{subject}/{k}")).or_insert(0.0);
            *e = e.max(x);
        }
    };
    for _ in 0..ctx.rounds.min(2) {
        match orbit_pair(rt_n, one_n, big_n) {
            Ok(v) => keep("orbit", v),
            Err(e) => eprintln!("dist: orbit pair failed: {e}"),
        }
        match beam_pair() {
            Ok(v) => keep("beam", v),
            Err(e) => eprintln!("dist: beam pair skipped: {e}"),
        }
        match orbit_to_beam(one_n) {
            Ok(v) => keep("orbit_to_beam", v),
            Err(e) => eprintln!("dist: orbit -> beam skipped: {e}"),
        }
    }
    let get = |k: &str| best.get(k).copied();
    let rows = [
        (
            "orbit",
            "roundtrips_per_s",
            get("orbit/dist_roundtrips_per_s"),
        ),
        (
            "orbit",
            "oneway_msgs_per_s",
            get("orbit/dist_oneway_msgs_per_s"),
        ),
        (
            "orbit",
            "100KB_msgs_per_s",
            get("orbit/dist_100KB_msgs_per_s"),
        ),
        ("orbit", "100KB_MB_per_s", get("orbit/MB_per_s")),
        (
            "beam",
            "roundtrips_per_s",
            get("beam/dist_roundtrips_per_s"),
        ),
        (
            "beam",
            "oneway_msgs_per_s",
            get("beam/dist_oneway_msgs_per_s"),
        ),
        (
            "beam",
            "100KB_msgs_per_s",
            get("beam/dist_100KB_msgs_per_s"),
        ),
        ("beam", "100KB_MB_per_s", get("beam/MB_per_s")),
        (
            "orbit_to_beam",
            "oneway_msgs_per_s",
            get("orbit_to_beam/dist_oneway_msgs_per_s"),
        ),
    ];
    for (s, m, v) in rows {
        ctx.emit_opt(SCENARIO, s, m, v);
    }
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_oneway_min_3x",
        rows[1].2,
        rows[5].2,
    );
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_100KB_bytes_min_1x",
        rows[3].2,
        rows[7].2,
    );
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_roundtrips_min_2x",
        rows[0].2,
        rows[4].2,
    );
}

fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}_{}_{n}@127.0.0.1", std::process::id())
}

/// A child process killed when dropped.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child and waits (30 s at most) for a stdout line starting with `ready`.
fn start_ready(mut cmd: Command) -> Result<Kid, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let kid = Kid(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if l.starts_with("ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|_| "child did not become ready".to_string())?;
    Ok(kid)
}

fn run_to_end(mut cmd: Command) -> Result<beam::Values, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(beam::parse_kv(&String::from_utf8_lossy(&out.stdout)))
}

fn me() -> Result<std::path::PathBuf, String> {
    std::env::current_exe().map_err(|e| e.to_string())
}

fn orbit_pair(rt_n: u64, one_n: u64, big_n: u64) -> Result<beam::Values, String> {
    let b = unique("orbit_dist_b");
    let mut cmd = Command::new(me()?);
    cmd.args(["__dist-node", &b]);
    let _kid = start_ready(cmd)?;
    run_driver(&b, rt_n, one_n, big_n)
}

fn beam_pair() -> Result<beam::Values, String> {
    let b = unique("beam_dist_b");
    let _kid = start_erl_node(&b, "io:format(\"ready~n\"), dist_bench:server().")?;
    let a = unique("beam_dist_a");
    beam::run_erl(&[
        "-name",
        &a,
        "-setcookie",
        COOKIE,
        "-eval",
        &format!("dist_bench:run(['{b}'])."),
    ])
    .map(|out| beam::parse_kv(&out))
}

fn orbit_to_beam(one_n: u64) -> Result<beam::Values, String> {
    let b = unique("beam_dist_sink");
    let _kid = start_erl_node(
        &b,
        "register(sink, self()), io:format(\"ready~n\"), \
         receive {start, N, P} -> dist_bench:sink_loop(N, P) end, receive stop -> ok end.",
    )?;
    run_driver(&b, 0, one_n, 0)
}

/// Starts a BEAM node `name` with `dist_bench` loaded, running `eval` (which prints
/// `ready`), and waits until it is ready.
fn start_erl_node(name: &str, eval: &str) -> Result<Kid, String> {
    let dir = beam::compiled_dir()?;
    let mut cmd = Command::new("erl");
    cmd.arg("-pa").arg(dir).args([
        "-noshell",
        "-name",
        name,
        "-setcookie",
        COOKIE,
        "-eval",
        eval,
    ]);
    start_ready(cmd)
}

/// Runs the Orbit driver node against node `b` to the end; its figures.
fn run_driver(b: &str, rt_n: u64, one_n: u64, big_n: u64) -> Result<beam::Values, String> {
    let mut cmd = Command::new(me()?);
    cmd.args([
        "__dist-driver",
        &unique("orbit_dist_a"),
        b,
        &rt_n.to_string(),
        &one_n.to_string(),
        &big_n.to_string(),
    ]);
    run_to_end(cmd)
}

// ---- the child nodes -----------------------------------------------------------------

/// Entry point of the hidden child commands; returns the exit code.
pub fn child_main(cmd: &str, args: &[String]) -> i32 {
    // Keep freed memory in the heap instead of trimming it back to the OS after every
    // 100 KB message (glibc's default trims above 128 KB), as the BEAM's allocators keep
    // their carriers: otherwise every message pays fresh page faults.
    // SAFETY: mallopt only changes allocator tuning parameters.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
    // The node runtime busy-waits briefly before a worker sleeps, as the BEAM's
    // schedulers do by default (`+sbwt`); ORBIT_BENCH_NO_SPIN=1 turns it off.
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(2).enable_all();
    if std::env::var_os("ORBIT_BENCH_NO_SPIN").is_none() {
        b.on_thread_park(orbit_dist::spin_before_park);
    }
    let rt = match b.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{cmd}: cannot build a runtime: {e}");
            return 1;
        }
    };
    let r = match (cmd, args) {
        ("__dist-node", [name]) => rt.block_on(node_main(name.clone())),
        ("__dist-driver", [name, b, rt_n, one_n, big_n]) => {
            let p = |s: &str| s.parse::<u64>().unwrap_or(0);
            rt.block_on(driver_main(
                name.clone(),
                b.clone(),
                p(rt_n),
                p(one_n),
                p(big_n),
            ))
        }
        _ => Err(format!("bad child command {cmd} {args:?}")),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{cmd}: {e}");
            1
        }
    }
}

/// What the sink on node B takes (`{start, N, Parent}`, `{msg, I, Bin}`, `{big, Bin}`).
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum SinkMsg {
    Start(u64, orbit_term::Pid),
    Msg(u64, serde_bytes::ByteBuf),
    Big(serde_bytes::ByteBuf),
}

async fn node_main(name: String) -> Result<(), String> {
    orbit_dist::Node::start(&name, orbit_dist::Options::cookie(COOKIE))
        .await
        .map_err(|e| e.to_string())?;
    let echo = orbit::spawn(echo_loop).map_err(|e| e.to_string())?;
    orbit::register("echo", echo.pid()).map_err(|e| e.to_string())?;
    let sink = orbit::spawn(sink_loop).map_err(|e| e.to_string())?;
    orbit::register("sink", sink.pid()).map_err(|e| e.to_string())?;
    orbit_dist::serve::<SinkMsg>(sink.pid());
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}

async fn echo_loop(mut ctx: Context<Term>) {
    loop {
        if let Message::Msg(Term::Tuple(mut el)) = ctx.recv().await {
            if let (Some(x), Some(Term::Pid(p))) = (el.pop(), el.pop()) {
                let _ = orbit::send(orbit_dist::from_wire(&p), x);
            }
        }
    }
}

async fn sink_loop(mut ctx: Context<SinkMsg>) {
    let mut left = 0u64;
    let mut parent = None;
    let mut bytes = 0usize;
    loop {
        match ctx.recv().await {
            Message::Msg(SinkMsg::Start(n, p)) => {
                left = n;
                parent = Some(orbit_dist::from_wire(&p));
            }
            Message::Msg(m) => {
                // Touch the payload so the decode is not optimised away.
                bytes += match &m {
                    SinkMsg::Msg(i, b) => b.len() + (*i as usize & 1),
                    SinkMsg::Big(b) => b.len(),
                    SinkMsg::Start(..) => 0,
                };
                left = left.saturating_sub(1);
                if left == 0 {
                    if let Some(p) = parent.take() {
                        let _ = orbit_dist::send(p, &Atom::new("done").expect("atom"));
                    }
                    std::hint::black_box(bytes);
                }
            }
            _ => {}
        }
    }
}

async fn driver_main(
    name: String,
    b: String,
    rt_n: u64,
    one_n: u64,
    big_n: u64,
) -> Result<(), String> {
    let node = orbit_dist::Node::start(&name, orbit_dist::Options::cookie(COOKIE))
        .await
        .map_err(|e| e.to_string())?;
    if !node.connect(&b).await {
        return Err(format!("cannot connect to {b}"));
    }
    let h = orbit::spawn(move |mut ctx: Context<Term>| async move {
        let me = orbit::self_pid().expect("in a process");
        let wire_me = orbit_dist::to_wire(me);
        let x = Atom::new("x").expect("atom");
        if rt_n > 0 {
            let t0 = Instant::now();
            for _ in 0..rt_n {
                let _ = orbit_dist::send_named(&b, "echo", &(&wire_me, &x));
                let _ = ctx.recv().await;
            }
            println!(
                "dist_roundtrips_per_s {}",
                (rt_n as f64 / t0.elapsed().as_secs_f64()) as u64
            );
        }
        let start = Atom::new("start").expect("atom");
        if one_n > 0 {
            let _ = orbit_dist::send_named(&b, "sink", &(&start, one_n, &wire_me));
            let msg = Atom::new("msg").expect("atom");
            let payload = serde_bytes::Bytes::new(b"payload-0123456789");
            let t0 = Instant::now();
            for i in 1..=one_n {
                let _ = orbit_dist::send_named(&b, "sink", &(&msg, i, payload));
                if i % 64 == 0 {
                    orbit_dist::wait_writable(&b).await;
                }
            }
            let _ = ctx.recv().await;
            println!(
                "dist_oneway_msgs_per_s {}",
                (one_n as f64 / t0.elapsed().as_secs_f64()) as u64
            );
        }
        if big_n > 0 {
            let _ = orbit_dist::send_named(&b, "sink", &(&start, big_n, &wire_me));
            let big = Atom::new("big").expect("atom");
            let data = vec![b'x'; 100_000];
            let bin = serde_bytes::Bytes::new(&data);
            let t0 = Instant::now();
            for _ in 0..big_n {
                let _ = orbit_dist::send_named(&b, "sink", &(&big, bin));
                orbit_dist::wait_writable(&b).await;
            }
            let _ = ctx.recv().await;
            let s = t0.elapsed().as_secs_f64();
            println!(
                "dist_100KB_msgs_per_s {} MB_per_s {}",
                (big_n as f64 / s) as u64,
                (big_n as f64 * 100_000.0 / s / 1e6) as u64
            );
        }
    })
    .map_err(|e| e.to_string())?;
    h.wait_exit().await;
    Ok(())
}
