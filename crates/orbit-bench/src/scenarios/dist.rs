//! `dist`: the Erlang distribution protocol on loopback, two Orbit nodes against two BEAM
//! nodes running this crate's `beam/dist_bench.erl`, interleaved in every round.
//!
//! Every node is its own OS process (one node per process): the bench starts an Orbit
//! node `B` (`__dist-node`, serving `echo`, `sink` and `cpu` like `dist_bench:server/0`)
//! and an Orbit driver node `A` (`__dist-driver`) that runs the same measurements as
//! `dist_bench:run/1` and prints `key value` lines:
//!
//! - round trips: `{echo, B} ! {self(), x}`, wait for `x` (200k, sequential, after 1000
//!   unmeasured ones);
//! - one-way small messages: 1M `{msg, I, <<"payload-0123456789">>}` to a sink on `B`,
//!   clock stopped by the sink's `done` (both senders are plain loops);
//! - 100 KB binaries: 20k `{big, Bin}` to a sink, bytes per second.
//!
//! Counts honour `--scale` on both sides. Every part also prints the CPU microseconds
//! both nodes spent during it (`utime + stime` of each OS process from
//! `/proc/self/stat`, read the same way by the Orbit and the BEAM nodes; the remote
//! node's through its registered `cpu` process), reported per unit of work.
//!
//! Each round runs, in alternating order, the Orbit pair and the BEAM pair (BEAM nodes
//! with `+S N:N`, N = the Orbit nodes' worker count), then Orbit -> BEAM one-way, then
//! the round trips of both pairs again under a background load that keeps every core
//! busy (`__dist-burn`: one spinning thread per core, the same for both pairs;
//! subjects `orbit_loaded`, `beam_loaded`). The Orbit nodes run WITHOUT
//! `spin_before_park`; a spin variant (`orbit_spin`) runs only when
//! `available_parallelism()` exceeds the busy workers of the two nodes (2 x N), and the
//! output says whether it ran. Headline figures are medians of rounds with best, spread
//! and CPU per unit beside (`emit_rounds`).
//!
//! Goals: round trips ≥ 2x the BEAM with CPU per round trip ≤ the BEAM's, loaded round
//! trips ≥ 1.5x, one-way ≥ 3x, 100 KB bytes/s ≥ 1x.
//!
//! Beside them, `floor` (and `floor_loaded`): the kernel's floor for a blocking round
//! trip on this machine, two threads bouncing 60 bytes over loopback TCP with plain
//! blocking `read`/`write` (`__dist-floor`), no runtime and no spin; and
//! `floor_2p` (`floor_2p_loaded`), the same with the echo thread in a second process,
//! as the two nodes of a pair are (a wake-up then also switches address spaces). The
//! goals cannot be read without it: when `floor_2p` is not 2x the BEAM's rate, no
//! runtime that sleeps while it waits (spin off) reaches 2x on this machine.
//!
//! And `beam_nospin`: the BEAM pair's round trips with its schedulers' busy wait off
//! (`+sbwt none +sbwtdcpu none +sbwtdio none` on both nodes), so the BEAM is also seen
//! without the spare-core trick Orbit leaves off by default (not a goal: the goals
//! compare with the BEAM as it runs by default).
//!
//! The child processes (the nodes, the load, the floor) are in [`super::dist_nodes`].
//!
//! `ORBIT_BENCH_DIST_RT_ONLY=1` skips the one-way and 100 KB parts (for profiling);
//! `ORBIT_BENCH_DIST_SUBJECTS=orbit_loaded,beam_loaded` (comma-separated subjects) runs
//! only those subjects' parts, one pair at a time, so that a profiler can watch them.
//!
//! Threads: every Orbit node runs [`node_workers`] tokio workers and every BEAM node
//! `+S N:N` with the same N (reported as `workers`): [`WORKERS`] unless
//! `ORBIT_BENCH_DIST_WORKERS=N` says otherwise. `ORBIT_BENCH_DIST_CURRENT_THREAD=1`
//! runs the Orbit nodes on tokio's current-thread runtime (one thread, so N = 1 on both
//! sides). Experiment only: `ORBIT_BENCH_DIST_NO_COUNTERS=1` switches the Orbit nodes'
//! per-process counters off (work the BEAM side still does), so that their
//! `orbit-clock` thread stops ticking; the output says so.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::Ctx;
use crate::beam;
use crate::util::{Rounds, WORKERS};

const SCENARIO: &str = "dist";
pub(super) const COOKIE: &str = "orbit_bench_dist";

/// Per-metric rounds of every subject.
#[derive(Default)]
struct All {
    rt: Rounds,
    oneway: Rounds,
    big_msgs: Rounds,
    big_mb: Rounds,
    /// (orbit, beam) round trips per second of the same round, unloaded and loaded.
    pairs: Vec<(f64, f64)>,
    loaded_pairs: Vec<(f64, f64)>,
}

impl All {
    /// Records one run's figures for `subject` (`rt_n`, `one_n`, `big_n`: its units).
    fn keep(&mut self, subject: &'static str, v: &beam::Values, n: (u64, u64, u64)) {
        let per = |k: &str, units: u64| v.get(k).map(|c| c / units.max(1) as f64);
        if let Some(&r) = v.get("dist_roundtrips_per_s") {
            self.rt.add(subject, r);
            if let Some(c) = per("rt_cpu_us", n.0) {
                self.rt.add_cpu(subject, c);
            }
        }
        if let Some(&r) = v.get("dist_oneway_msgs_per_s") {
            self.oneway.add(subject, r);
            if let Some(c) = per("oneway_cpu_us", n.1) {
                self.oneway.add_cpu(subject, c);
            }
        }
        if let Some(&r) = v.get("dist_100KB_msgs_per_s") {
            self.big_msgs.add(subject, r);
            if let Some(c) = per("big_cpu_us", n.2) {
                self.big_msgs.add_cpu(subject, c);
            }
        }
        if let Some(&r) = v.get("MB_per_s") {
            self.big_mb.add(subject, r);
        }
    }
}

/// The subjects `ORBIT_BENCH_DIST_SUBJECTS` selects (comma-separated); all when unset.
struct Only(Option<Vec<String>>);

impl Only {
    fn from_env() -> Only {
        Only::parse(std::env::var("ORBIT_BENCH_DIST_SUBJECTS").ok().as_deref())
    }

    /// The selection a variable's value (`None`: unset) makes.
    fn parse(v: Option<&str>) -> Only {
        Only(v.map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }))
    }

    /// Whether `subject`'s part runs.
    fn has(&self, subject: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|v| v.iter().any(|s| s == subject))
    }
}

/// Whether the Orbit nodes run on tokio's current-thread runtime
/// (`ORBIT_BENCH_DIST_CURRENT_THREAD=1`).
pub(super) fn current_thread() -> bool {
    std::env::var_os("ORBIT_BENCH_DIST_CURRENT_THREAD").is_some_and(|v| v == "1")
}

/// Worker threads of every Orbit node and schedulers (`+S N:N`) of every BEAM node: 1
/// on the current-thread runtime, else `ORBIT_BENCH_DIST_WORKERS` when it is a positive
/// number, else [`WORKERS`].
pub(super) fn node_workers() -> usize {
    if current_thread() {
        return 1;
    }
    crate::util::workers_from_env("ORBIT_BENCH_DIST_WORKERS")
}

/// The BEAM nodes' scheduler flags (`+S N:N`, N = [`node_workers`]).
fn beam_threads() -> [String; 2] {
    let n = node_workers();
    ["+S".to_string(), format!("{n}:{n}")]
}

/// The busy workers of the two nodes of a pair.
fn busy_workers() -> usize {
    2 * node_workers()
}

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let (rt_n, one_n, big_n) = (ctx.n(200_000), ctx.n(1_000_000), ctx.n(20_000));
    let (one_n, big_n) = if std::env::var_os("ORBIT_BENCH_DIST_RT_ONLY").is_some() {
        (0, 0)
    } else {
        (one_n, big_n)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spin = cores > busy_workers();
    eprintln!(
        "dist: available_parallelism {cores}, busy workers {} (2 nodes x {}{}): spin variant {}",
        busy_workers(),
        node_workers(),
        if current_thread() {
            ", Orbit on the current-thread runtime"
        } else {
            ""
        },
        if spin { "runs (orbit_spin)" } else { "skipped" }
    );
    ctx.rep
        .emit(SCENARIO, "setup", "available_parallelism", cores as f64);
    ctx.rep
        .emit(SCENARIO, "setup", "busy_workers", busy_workers() as f64);
    ctx.rep.emit(
        SCENARIO,
        "setup",
        "spin_variant_ran",
        f64::from(u8::from(spin)),
    );
    ctx.rep
        .emit(SCENARIO, "setup", "background_load_threads", cores as f64);
    ctx.rep.emit(
        SCENARIO,
        "setup",
        "orbit_current_thread",
        f64::from(u8::from(current_thread())),
    );
    if std::env::var_os("ORBIT_BENCH_DIST_NO_COUNTERS").is_some() {
        eprintln!("dist: EXPERIMENT: Orbit nodes with their per-process counters off");
        ctx.rep.emit(SCENARIO, "setup", "orbit_counters_off", 1.0);
    }
    let full = (rt_n, one_n, big_n);
    let only = Only::from_env();
    let mut all = All::default();
    for round in 0..ctx.rounds {
        // Alternate which pair goes first.
        let mut o = None;
        let mut b = None;
        for first_orbit in [round % 2 == 0, round % 2 != 0] {
            if first_orbit && only.has("orbit") {
                match orbit_pair(full, false) {
                    Ok(v) => {
                        all.keep("orbit", &v, full);
                        o = v.get("dist_roundtrips_per_s").copied();
                    }
                    Err(e) => eprintln!("dist: orbit pair failed: {e}"),
                }
            } else if !first_orbit && only.has("beam") {
                match beam_pair(full, &[]) {
                    Ok(v) => {
                        all.keep("beam", &v, full);
                        b = v.get("dist_roundtrips_per_s").copied();
                    }
                    Err(e) => eprintln!("dist: beam pair skipped: {e}"),
                }
            }
        }
        if let (Some(o), Some(b)) = (o, b) {
            all.pairs.push((o, b));
        }
        // The kernel's floor for a blocking round trip (no runtime, no spin).
        if only.has("floor") {
            match crate::util::run_self(&["__dist-floor", &rt_n.to_string()]) {
                Ok(v) => all.keep("floor", &v, (rt_n, 0, 0)),
                Err(e) => eprintln!("dist: floor run failed: {e}"),
            }
        }
        if only.has("floor_2p") {
            match crate::util::run_self(&["__dist-floor", &rt_n.to_string(), "2p"]) {
                Ok(v) => all.keep("floor_2p", &v, (rt_n, 0, 0)),
                Err(e) => eprintln!("dist: two-process floor run failed: {e}"),
            }
        }
        // The BEAM without its schedulers' busy wait (round trips only).
        if only.has("beam_nospin") {
            match beam_pair((rt_n, 0, 0), &beam::NO_BUSY_WAIT) {
                Ok(v) => all.keep("beam_nospin", &v, (rt_n, 0, 0)),
                Err(e) => eprintln!("dist: beam pair without busy wait skipped: {e}"),
            }
        }
        if spin && only.has("orbit_spin") {
            match orbit_pair(full, true) {
                Ok(v) => all.keep("orbit_spin", &v, full),
                Err(e) => eprintln!("dist: orbit spin pair failed: {e}"),
            }
        }
        if one_n > 0 && only.has("orbit_to_beam") {
            match orbit_to_beam(one_n) {
                Ok(v) => all.keep("orbit_to_beam", &v, (0, one_n, 0)),
                Err(e) => eprintln!("dist: orbit -> beam skipped: {e}"),
            }
        }
        // Round trips under a background load that keeps every core busy.
        let rt_only = (rt_n, 0, 0);
        if ![
            "orbit_loaded",
            "beam_loaded",
            "floor_loaded",
            "floor_2p_loaded",
        ]
        .iter()
        .any(|s| only.has(s))
        {
            continue;
        }
        match Burn::start(cores) {
            Ok(_burn) => {
                let mut o = None;
                let mut b = None;
                for first_orbit in [round % 2 == 0, round % 2 != 0] {
                    if first_orbit && only.has("orbit_loaded") {
                        match orbit_pair(rt_only, false) {
                            Ok(v) => {
                                all.keep("orbit_loaded", &v, rt_only);
                                o = v.get("dist_roundtrips_per_s").copied();
                            }
                            Err(e) => eprintln!("dist: loaded orbit pair failed: {e}"),
                        }
                    } else if !first_orbit && only.has("beam_loaded") {
                        match beam_pair(rt_only, &[]) {
                            Ok(v) => {
                                all.keep("beam_loaded", &v, rt_only);
                                b = v.get("dist_roundtrips_per_s").copied();
                            }
                            Err(e) => eprintln!("dist: loaded beam pair skipped: {e}"),
                        }
                    }
                }
                if let (Some(o), Some(b)) = (o, b) {
                    all.loaded_pairs.push((o, b));
                }
                if only.has("floor_loaded") {
                    match crate::util::run_self(&["__dist-floor", &rt_n.to_string()]) {
                        Ok(v) => all.keep("floor_loaded", &v, rt_only),
                        Err(e) => eprintln!("dist: loaded floor run failed: {e}"),
                    }
                }
                if only.has("floor_2p_loaded") {
                    match crate::util::run_self(&["__dist-floor", &rt_n.to_string(), "2p"]) {
                        Ok(v) => all.keep("floor_2p_loaded", &v, rt_only),
                        Err(e) => eprintln!("dist: loaded two-process floor run failed: {e}"),
                    }
                }
            }
            Err(e) => eprintln!("dist: no background load: {e}"),
        }
    }
    let subjects = [
        "orbit",
        "beam",
        "beam_nospin",
        "orbit_spin",
        "orbit_loaded",
        "beam_loaded",
        "orbit_to_beam",
        "floor",
        "floor_loaded",
        "floor_2p",
        "floor_2p_loaded",
    ];
    let w = node_workers();
    for s in subjects {
        ctx.emit_rounds_on(SCENARIO, s, "roundtrips_per_s", "roundtrip", &all.rt, w);
        ctx.emit_rounds_on(SCENARIO, s, "oneway_msgs_per_s", "msg", &all.oneway, w);
        ctx.emit_rounds_on(
            SCENARIO,
            s,
            "100KB_msgs_per_s",
            "100KB_msg",
            &all.big_msgs,
            w,
        );
        ctx.emit_rounds_on(SCENARIO, s, "100KB_MB_per_s", "MB", &all.big_mb, w);
    }
    let per_round = |ctx: &mut Ctx, name: &str, pairs: &[(f64, f64)]| {
        let r: Vec<f64> = pairs.iter().map(|(o, b)| o / b).collect();
        ctx.emit_spread(SCENARIO, "ratio_rounds", name, &r);
    };
    per_round(ctx, "roundtrips", &all.pairs);
    per_round(ctx, "loaded_roundtrips", &all.loaded_pairs);
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_roundtrips_min_2x",
        all.rt.median("orbit"),
        all.rt.median("beam"),
    );
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_cpu_per_roundtrip_max_1x",
        all.rt.cpu_median("orbit"),
        all.rt.cpu_median("beam"),
    );
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_loaded_roundtrips_min_1_5x",
        all.rt.median("orbit_loaded"),
        all.rt.median("beam_loaded"),
    );
    // Not goals: how far each pair is from the kernel's blocking floor.
    ctx.goal(
        SCENARIO,
        "info_orbit_vs_floor_roundtrips",
        all.rt.median("orbit"),
        all.rt.median("floor"),
    );
    ctx.goal(
        SCENARIO,
        "info_beam_vs_floor_roundtrips",
        all.rt.median("beam"),
        all.rt.median("floor"),
    );
    ctx.goal(
        SCENARIO,
        "info_orbit_vs_floor_2p_roundtrips",
        all.rt.median("orbit"),
        all.rt.median("floor_2p"),
    );
    ctx.goal(
        SCENARIO,
        "info_floor_2p_vs_beam_roundtrips",
        all.rt.median("floor_2p"),
        all.rt.median("beam"),
    );
    ctx.goal(
        SCENARIO,
        "info_floor_2p_vs_beam_loaded_roundtrips",
        all.rt.median("floor_2p_loaded"),
        all.rt.median("beam_loaded"),
    );
    ctx.goal(
        SCENARIO,
        "info_orbit_vs_beam_nospin_roundtrips",
        all.rt.median("orbit"),
        all.rt.median("beam_nospin"),
    );
    ctx.goal(
        SCENARIO,
        "info_orbit_vs_beam_nospin_cpu_per_roundtrip",
        all.rt.cpu_median("orbit"),
        all.rt.cpu_median("beam_nospin"),
    );
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_oneway_min_3x",
        all.oneway.median("orbit"),
        all.oneway.median("beam"),
    );
    ctx.goal(
        SCENARIO,
        "orbit_vs_beam_100KB_bytes_min_1x",
        all.big_mb.median("orbit"),
        all.big_mb.median("beam"),
    );
}

/// The background load: a child process with one spinning thread per core, killed when
/// dropped.
struct Burn(#[allow(dead_code)] Kid);

impl Burn {
    fn start(threads: usize) -> Result<Burn, String> {
        let mut cmd = Command::new(me()?);
        cmd.args(["__dist-burn", &threads.to_string()]);
        Ok(Burn(start_ready(cmd)?))
    }
}

/// CPU microseconds (user + system, all threads) this process used so far, from
/// `/proc/self/stat` (what `dist_bench:cpu_us/0` reads on the BEAM nodes); 0 when
/// unreadable.
pub(super) fn cpu_us() -> u64 {
    crate::util::proc_cpu_us("self").unwrap_or(0)
}

pub(super) fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}_{}_{n}@127.0.0.1", std::process::id())
}

/// A child process killed when dropped.
pub(super) struct Kid(Child);

impl Kid {
    /// The OS process id of the child.
    pub(super) fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a child and waits (30 s at most) for a stdout line starting with `ready`.
pub(super) fn start_ready(mut cmd: Command) -> Result<Kid, String> {
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

pub(super) fn run_to_end(mut cmd: Command) -> Result<beam::Values, String> {
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

pub(super) fn me() -> Result<std::path::PathBuf, String> {
    std::env::current_exe().map_err(|e| e.to_string())
}

fn orbit_pair((rt_n, one_n, big_n): (u64, u64, u64), spin: bool) -> Result<beam::Values, String> {
    let b = unique("orbit_dist_b");
    let mut cmd = Command::new(me()?);
    cmd.args(["__dist-node", &b]);
    if spin {
        cmd.env("ORBIT_BENCH_SPIN", "1");
    }
    let _kid = start_ready(cmd)?;
    run_driver(&b, rt_n, one_n, big_n, spin)
}

/// The BEAM pair's figures; `flags` go to both nodes' emulators.
fn beam_pair(
    (rt_n, one_n, big_n): (u64, u64, u64),
    flags: &[&str],
) -> Result<beam::Values, String> {
    let threads = beam_threads();
    let mut flags_s: Vec<&str> = threads.iter().map(String::as_str).collect();
    flags_s.extend_from_slice(flags);
    let b = unique("beam_dist_b");
    let _kid = start_erl_node_with(&b, "io:format(\"ready~n\"), dist_bench:server().", &flags_s)?;
    let a = unique("beam_dist_a");
    let run = format!("dist_bench:run(['{b}', {rt_n}, {one_n}, {big_n}]).");
    let mut args = flags_s;
    args.extend(["-name", &a, "-setcookie", COOKIE, "-eval", &run]);
    beam::run_erl(&args).map(|out| beam::parse_kv(&out))
}

fn orbit_to_beam(one_n: u64) -> Result<beam::Values, String> {
    let b = unique("beam_dist_sink");
    let threads = beam_threads();
    let _kid = start_erl_node_with(
        &b,
        "register(sink, self()), register(cpu, spawn(fun dist_bench:cpu_server/0)), \
         io:format(\"ready~n\"), \
         receive {start, N, P} -> dist_bench:sink_loop(N, P) end, receive stop -> ok end.",
        &[&threads[0], &threads[1]],
    )?;
    run_driver(&b, 0, one_n, 0, false)
}

/// Starts a BEAM node `name` (`+S N:N`) with `dist_bench` loaded, running `eval` (which
/// prints `ready`), and waits until it is ready.
pub(super) fn start_erl_node(name: &str, eval: &str) -> Result<Kid, String> {
    start_erl_node_with(name, eval, &[])
}

/// [`start_erl_node`] with extra emulator `flags`.
pub(super) fn start_erl_node_with(name: &str, eval: &str, flags: &[&str]) -> Result<Kid, String> {
    let dir = beam::compiled_dir()?;
    let mut cmd = Command::new("erl");
    cmd.arg("-pa")
        .arg(dir)
        .arg("+S")
        .arg(format!("{WORKERS}:{WORKERS}"))
        .args(flags)
        .args([
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
fn run_driver(
    b: &str,
    rt_n: u64,
    one_n: u64,
    big_n: u64,
    spin: bool,
) -> Result<beam::Values, String> {
    let mut cmd = Command::new(me()?);
    cmd.args([
        "__dist-driver",
        &unique("orbit_dist_a"),
        b,
        &rt_n.to_string(),
        &one_n.to_string(),
        &big_n.to_string(),
    ]);
    if spin {
        cmd.env("ORBIT_BENCH_SPIN", "1");
    }
    run_to_end(cmd)
}

#[cfg(test)]
mod tests {
    use super::Only;

    #[test]
    fn subjects_filter() {
        let all = Only::parse(None);
        assert!(all.has("orbit") && all.has("beam_loaded"));
        let some = Only::parse(Some("orbit_loaded, beam_loaded"));
        assert!(some.has("orbit_loaded") && some.has("beam_loaded"));
        assert!(!some.has("orbit") && !some.has("beam") && !some.has("floor_loaded"));
    }
}
