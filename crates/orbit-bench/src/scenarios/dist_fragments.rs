//! `dist_fragments`: do large messages block small ones to the same node?
//!
//! Two Orbit nodes on loopback (each its own OS process): `B` is the `dist` scenario's
//! node (`__dist-node`: `echo`, `sink`); the driver `A` (`__dist-frag-driver`) measures
//! the latency of each of N small round trips to `B`'s `echo` (`{Pid, x}`), first on a
//! quiet connection, then while another process on `A` streams 10 MB binaries to `B`'s
//! `sink` over the same connection (flow-controlled with `wait_writable`). It reports
//! p50 and p99 of both, and the stream's MB/s. Subjects: `orbit_fragments` (the default:
//! `DFLAG_FRAGMENTS`, 10 MB messages cut into 64 KiB fragments interleaved with small
//! frames) and `orbit_no_fragments` (`Options::fragments = false`: every 10 MB message
//! holds the connection until it is written), and `beam`: two BEAM nodes (`+S N:N`),
//! `B` running `dist_bench:server()`, the driver the same measurement in Erlang (the
//! stream to a `dist_bench:sink_loop` spawned on `B`; the BEAM fragments by default and
//! suspends a sender on a busy connection), interleaved in every round.
//!
//! CPU: `cpu_us_per_MB` is the CPU of both nodes (`RUSAGE_CHILDREN` around the pair,
//! start to exit: warm-up, quiet and loaded phases) per MB streamed. Ratio lines:
//! `loaded_p99_fragments_over_no_fragments` (below 1: fragments keep small messages
//! moving) and `loaded_p99_orbit_fragments_over_beam`,
//! `loaded_p99_orbit_no_fragments_over_beam` (the BEAM's own p99 under the same load).

use std::process::Command;
use std::time::{Duration, Instant};

use orbit::Context;
use orbit_term::{atom, Term};

use super::dist::{me, run_to_end, start_ready, unique, COOKIE};
use super::Ctx;
use crate::util::Rounds;

const SCENARIO: &str = "dist_fragments";
const BIG: usize = 10 << 20;

/// Per-metric rounds of both subjects.
#[derive(Default)]
struct All {
    quiet_p50: Rounds,
    quiet_p99: Rounds,
    loaded_p50: Rounds,
    loaded_p99: Rounds,
    mb_per_s: Rounds,
}

/// Runs the scenario.
pub fn run(ctx: &mut Ctx) {
    let n = ctx.n(2000);
    let subjects = [
        ("orbit_fragments", Some(true)),
        ("orbit_no_fragments", Some(false)),
        ("beam", None),
    ];
    let mut s = All::default();
    for round in 0..ctx.rounds {
        for i in 0..subjects.len() {
            // Alternate which subject goes first.
            let i = if round % 2 == 0 {
                i
            } else {
                subjects.len() - 1 - i
            };
            let (name, frags) = subjects[i];
            let cpu0 = crate::util::cpu_s(libc::RUSAGE_CHILDREN);
            let r = match frags {
                Some(f) => pair(n, f),
                None => beam_pair(n),
            };
            let cpu = crate::util::cpu_s(libc::RUSAGE_CHILDREN) - cpu0;
            match r {
                Ok(v) => {
                    let g = |k: &str| v.get(k).copied();
                    if let (Some(a), Some(b), Some(c), Some(d), Some(e)) = (
                        g("quiet_p50_us"),
                        g("quiet_p99_us"),
                        g("loaded_p50_us"),
                        g("loaded_p99_us"),
                        g("big_MB_per_s"),
                    ) {
                        s.quiet_p50.add(name, a);
                        s.quiet_p99.add(name, b);
                        s.loaded_p50.add(name, c);
                        s.loaded_p99.add(name, d);
                        s.mb_per_s.add(name, e);
                        if let Some(mb) = g("big_MB").filter(|mb| *mb > 0.0) {
                            s.mb_per_s.add_cpu(name, cpu * 1e6 / mb);
                        }
                    }
                }
                Err(e) => eprintln!("{SCENARIO}: {name}: {e}"),
            }
        }
    }
    for (name, _) in subjects {
        ctx.emit_rounds(SCENARIO, name, "quiet_p50_us", "rt", &s.quiet_p50);
        ctx.emit_rounds(SCENARIO, name, "quiet_p99_us", "rt", &s.quiet_p99);
        ctx.emit_rounds(SCENARIO, name, "loaded_p50_us", "rt", &s.loaded_p50);
        ctx.emit_rounds(SCENARIO, name, "loaded_p99_us", "rt", &s.loaded_p99);
        ctx.emit_rounds(SCENARIO, name, "big_MB_per_s", "MB", &s.mb_per_s);
    }
    let p99 = |who: &str| s.loaded_p99.median(who);
    ctx.goal(
        SCENARIO,
        "loaded_p99_fragments_over_no_fragments",
        p99("orbit_fragments"),
        p99("orbit_no_fragments"),
    );
    ctx.goal(
        SCENARIO,
        "loaded_p99_orbit_fragments_over_beam",
        p99("orbit_fragments"),
        p99("beam"),
    );
    ctx.goal(
        SCENARIO,
        "loaded_p99_orbit_no_fragments_over_beam",
        p99("orbit_no_fragments"),
        p99("beam"),
    );
}

fn pair(n: u64, fragments: bool) -> Result<crate::beam::Values, String> {
    let b = unique("orbit_frag_b");
    let mut cmd = Command::new(me()?);
    cmd.args(["__dist-node", &b]);
    let _kid = start_ready(cmd)?;
    let mut cmd = Command::new(me()?);
    cmd.args([
        "__dist-frag-driver",
        &unique("orbit_frag_a"),
        &b,
        &n.to_string(),
        if fragments { "1" } else { "0" },
    ]);
    run_to_end(cmd)
}

fn beam_pair(n: u64) -> Result<crate::beam::Values, String> {
    let b = unique("beam_frag_b");
    let _kid = super::dist::start_erl_node(&b, "io:format(\"ready~n\"), dist_bench:server().")?;
    let a = unique("beam_frag_a");
    let code = format!(
        r#"B = '{b}', pong = net_adm:ping(B), Me = self(),
        Rts = fun(N) -> [begin T0 = erlang:monotonic_time(nanosecond), {{echo, B}} ! {{Me, x}},
                              receive x -> ok end, erlang:monotonic_time(nanosecond) - T0 end
                         || _ <- lists:seq(1, N)] end,
        Pct = fun(L) -> S = lists:sort(L), Len = length(S),
                        {{lists:nth(1 + (Len - 1) * 50 div 100, S) / 1000,
                          lists:nth(1 + (Len - 1) * 99 div 100, S) / 1000}} end,
        _ = Rts({n}), {{Q50, Q99}} = Pct(Rts({n})),
        Sink = spawn(B, dist_bench, sink_loop, [100000000, Me]),
        Big = binary:copy(<<"y">>, {BIG}),
        C = counters:new(1, []),
        St = spawn(fun() -> Loop = fun L() -> Sink ! {{big, Big}}, counters:add(C, 1, 1),
                                              receive stop -> ok after 0 -> L() end end,
                            Loop() end),
        timer:sleep(50),
        T0 = erlang:monotonic_time(microsecond),
        {{L50, L99}} = Pct(Rts({n})),
        Secs = (erlang:monotonic_time(microsecond) - T0) / 1.0e6,
        St ! stop,
        MB = counters:get(C, 1) * {BIG} / 1.0e6,
        io:format("quiet_p50_us ~.1f~nquiet_p99_us ~.1f~nloaded_p50_us ~.1f~nloaded_p99_us ~.1f~nbig_MB_per_s ~.1f~nbig_MB ~.1f~n",
                  [Q50, Q99, L50, L99, MB / Secs, MB])."#
    );
    crate::beam::run_erl(&["-name", &a, "-setcookie", COOKIE, "-eval", &code])
        .map(|out| crate::beam::parse_kv(&out))
}

/// p50 and p99 of `v` (sorted here), in microseconds.
fn percentiles(v: &mut [Duration]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

/// `n` round trips to `echo` on `b`, each timed.
async fn rts<T: serde::Serialize>(
    ctx: &mut Context<Term>,
    b: &str,
    echo: &T,
    n: u64,
) -> Vec<Duration> {
    let mut v = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t0 = Instant::now();
        let _ = orbit_dist::send_named(b, "echo", echo);
        let _ = ctx.recv().await;
        v.push(t0.elapsed());
    }
    v
}

/// `__dist-frag-driver NAME B N FRAGMENTS`: the measuring node (prints `key value`).
pub async fn driver_main(name: String, b: String, n: u64, fragments: bool) -> Result<(), String> {
    let opts = orbit_dist::Options {
        fragments,
        ..orbit_dist::Options::cookie(COOKIE)
    };
    let node = orbit_dist::Node::start(&name, opts)
        .await
        .map_err(|e| e.to_string())?;
    if !node.connect(&b).await {
        return Err(format!("cannot connect to {b}"));
    }
    let h = orbit::spawn(move |mut ctx: Context<Term>| async move {
        let me = orbit::self_pid().expect("in a process");
        let wire_me = orbit_dist::to_wire(me);
        let x = atom!("x");
        let echo = (&wire_me, &x);
        // Warm-up.
        let _ = rts(&mut ctx, &b, &echo, n).await;
        let mut quiet = rts(&mut ctx, &b, &echo, n).await;
        // The stream of 10 MB messages from another process.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (stop2, sent2, b2) = (stop.clone(), sent.clone(), b.clone());
        let streamer = orbit::spawn(move |_ctx: Context<Term>| async move {
            let big = atom!("big");
            let data = vec![b'y'; BIG];
            let bin = serde_bytes::Bytes::new(&data);
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = orbit_dist::send_named(&b2, "sink", &(&big, bin));
                sent2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                orbit_dist::wait_writable(&b2).await;
            }
        });
        // Let the stream fill the connection first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t0 = Instant::now();
        let mut loaded = rts(&mut ctx, &b, &echo, n).await;
        let secs = t0.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mb = sent.load(std::sync::atomic::Ordering::Relaxed) as f64 * BIG as f64 / 1e6;
        if let Ok(s) = streamer {
            s.wait_exit().await;
        }
        let (q50, q99) = percentiles(&mut quiet);
        let (l50, l99) = percentiles(&mut loaded);
        println!(
            "quiet_p50_us {q50:.1} quiet_p99_us {q99:.1} loaded_p50_us {l50:.1} \
             loaded_p99_us {l99:.1} big_MB_per_s {:.1} big_MB {mb:.1}",
            mb / secs
        );
    })
    .map_err(|e| e.to_string())?;
    h.wait_exit().await;
    Ok(())
}
