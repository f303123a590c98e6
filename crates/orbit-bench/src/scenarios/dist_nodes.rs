//! The `dist` scenario's child processes (hidden commands of this binary): the Orbit
//! nodes (`__dist-node` serving `echo`, `sink` and `cpu` like `dist_bench:server/0`;
//! `__dist-driver` running the measurements of `dist_bench:run/1`), the background load
//! (`__dist-burn`) and the kernel's blocking floor (`__dist-floor`). What they measure
//! and how the parent compares them: [`super::dist`].

use std::time::Instant;

use orbit::{Context, Message};
use orbit_term::{atom, Term};
use serde::Deserialize;

use super::dist::{cpu_us, current_thread, node_workers, COOKIE};

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
    if cmd == "__dist-burn" {
        return burn_main(args);
    }
    if cmd == "__dist-floor" {
        return floor_main(args);
    }
    if cmd == "__dist-floor-echo" {
        return floor_echo_main();
    }
    // The counters' experiment (`ORBIT_BENCH_DIST_NO_COUNTERS`, see `super::dist`).
    if std::env::var_os("ORBIT_BENCH_DIST_NO_COUNTERS").is_some() {
        orbit::set_counters(false);
    }
    // The node's threads (see `super::dist`'s docs).
    let mut b = if current_thread() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(node_workers());
        b
    };
    b.enable_all();
    // The node runtime busy-waits before a worker sleeps (as the BEAM's schedulers do by
    // default, `+sbwt`) only in the spin variant (ORBIT_BENCH_SPIN=1).
    if std::env::var_os("ORBIT_BENCH_SPIN").is_some() {
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
        ("__dist-frag-driver", [name, b, n, frags]) => {
            rt.block_on(super::dist_fragments::driver_main(
                name.clone(),
                b.clone(),
                n.parse().unwrap_or(2000),
                frags == "1",
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

/// `__dist-burn THREADS`: spins THREADS threads until killed (the background load).
fn burn_main(args: &[String]) -> i32 {
    let n = args
        .first()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1);
    for _ in 0..n {
        std::thread::spawn(|| {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
    }
    println!("ready");
    loop {
        std::thread::park();
    }
}

/// The echo side of the floor: blocked in `read`, writes back what it read, until EOF.
fn floor_echo(l: std::net::TcpListener) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let (mut s, _) = l.accept()?;
    s.set_nodelay(true)?;
    let mut b = [0u8; 60];
    loop {
        match s.read(&mut b)? {
            0 => return Ok(()),
            k => s.write_all(&b[..k])?,
        }
    }
}

/// `__dist-floor-echo`: the echo side of the two-process floor in its own process;
/// prints `port P` once it listens, then serves one connection.
fn floor_echo_main() -> i32 {
    use std::io::Write;
    let run = || -> std::io::Result<()> {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let mut out = std::io::stdout();
        writeln!(out, "port {}", l.local_addr()?.port())?;
        out.flush()?;
        floor_echo(l)
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("__dist-floor-echo: {e}");
            1
        }
    }
}

/// `__dist-floor N [2p]`: the kernel's floor for a round trip, without any runtime:
/// two threads, each blocked in `read` on its end of a loopback TCP connection
/// (`TCP_NODELAY`), bounce a 60-byte message N times (after 1000 unmeasured). The two
/// threads are in this one process, or with `2p` the echo is a second process
/// (`__dist-floor-echo`), as the two nodes of a pair are: a wake-up then switches
/// address spaces, which a thread switch does not. Prints `dist_roundtrips_per_s R
/// rt_cpu_us C` (C: the CPU of both sides over the N).
fn floor_main(args: &[String]) -> i32 {
    use std::io::{BufRead, Read, Write};
    let n = args
        .first()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(100_000);
    let two_procs = args.get(1).is_some_and(|a| a == "2p");
    let run = || -> std::io::Result<(f64, u64)> {
        let (addr, echo, child) = if two_procs {
            let exe = std::env::current_exe()?;
            let mut child = std::process::Command::new(exe)
                .arg("__dist-floor-echo")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()?;
            let mut line = String::new();
            if let Some(out) = child.stdout.take() {
                std::io::BufReader::new(out).read_line(&mut line)?;
            }
            let port = line
                .trim()
                .strip_prefix("port ")
                .and_then(|p| p.parse::<u16>().ok());
            let Some(port) = port else {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::other(format!(
                    "the echo process printed {line:?}, not `port P`"
                )));
            };
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            (addr, None, Some(child))
        } else {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            let addr = l.local_addr()?;
            (addr, Some(std::thread::spawn(move || floor_echo(l))), None)
        };
        let child_cpu = || {
            child
                .as_ref()
                .and_then(|c| crate::util::proc_cpu_us(c.id()))
                .unwrap_or(0)
        };
        let mut s = std::net::TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let mut b = [7u8; 60];
        let mut rt = |s: &mut std::net::TcpStream| -> std::io::Result<()> {
            s.write_all(&b)?;
            s.read_exact(&mut b)
        };
        for _ in 0..1000 {
            rt(&mut s)?;
        }
        let c0 = cpu_us() + child_cpu();
        let t0 = Instant::now();
        for _ in 0..n {
            rt(&mut s)?;
        }
        let rate = n as f64 / t0.elapsed().as_secs_f64();
        let c1 = cpu_us() + child_cpu();
        drop(s);
        if let Some(echo) = echo {
            let _ = echo.join();
        }
        if let Some(mut child) = child {
            let _ = child.wait();
        }
        Ok((rate, c1.saturating_sub(c0)))
    };
    match run() {
        Ok((rate, cpu)) => {
            println!("dist_roundtrips_per_s {} rt_cpu_us {cpu}", rate as u64);
            0
        }
        Err(e) => {
            eprintln!("__dist-floor: {e}");
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
    let cpu = orbit::spawn(cpu_loop).map_err(|e| e.to_string())?;
    orbit::register("cpu", cpu.pid()).map_err(|e| e.to_string())?;
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

/// `{cpu, From}` -> `From ! {cpu_us, N}` (this node's CPU microseconds so far).
async fn cpu_loop(mut ctx: Context<Term>) {
    loop {
        if let Message::Msg(Term::Tuple(el)) = ctx.recv().await {
            if let Some(Term::Pid(p)) = el.get(1) {
                let tag = atom!("cpu_us");
                let _ = orbit_dist::send(orbit_dist::from_wire(p), &(&tag, cpu_us()));
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
                        let _ = orbit_dist::send(p, &atom!("done"));
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
        let x = atom!("x");
        let cpu = atom!("cpu");
        // Both nodes' CPU microseconds so far (B's asked through its `cpu` process).
        macro_rules! both_cpu {
            () => {{
                let _ = orbit_dist::send_named(&b, "cpu", &(&cpu, &wire_me));
                let remote = match ctx.recv().await {
                    Message::Msg(Term::Tuple(el)) => match el.get(1) {
                        Some(Term::Int(n)) => *n as u64,
                        _ => 0,
                    },
                    _ => 0,
                };
                cpu_us() + remote
            }};
        }
        if rt_n > 0 {
            // Warm-up, as `dist_bench:run/1` does.
            for _ in 0..1000 {
                let _ = orbit_dist::send_named(&b, "echo", &(&wire_me, &x));
                let _ = ctx.recv().await;
            }
            let c0 = both_cpu!();
            let t0 = Instant::now();
            for _ in 0..rt_n {
                let _ = orbit_dist::send_named(&b, "echo", &(&wire_me, &x));
                let _ = ctx.recv().await;
            }
            let rate = rt_n as f64 / t0.elapsed().as_secs_f64();
            let c1 = both_cpu!();
            println!(
                "dist_roundtrips_per_s {} rt_cpu_us {}",
                rate as u64,
                c1.saturating_sub(c0)
            );
        }
        let start = atom!("start");
        if one_n > 0 {
            let _ = orbit_dist::send_named(&b, "sink", &(&start, one_n, &wire_me));
            let msg = atom!("msg");
            let payload = serde_bytes::Bytes::new(b"payload-0123456789");
            let c0 = both_cpu!();
            let t0 = Instant::now();
            for i in 1..=one_n {
                let _ = orbit_dist::send_named(&b, "sink", &(&msg, i, payload));
                if i % 64 == 0 {
                    orbit_dist::wait_writable(&b).await;
                }
            }
            let _ = ctx.recv().await;
            let rate = one_n as f64 / t0.elapsed().as_secs_f64();
            let c1 = both_cpu!();
            println!(
                "dist_oneway_msgs_per_s {} oneway_cpu_us {}",
                rate as u64,
                c1.saturating_sub(c0)
            );
        }
        if big_n > 0 {
            let _ = orbit_dist::send_named(&b, "sink", &(&start, big_n, &wire_me));
            let big = atom!("big");
            let data = vec![b'x'; 100_000];
            let bin = serde_bytes::Bytes::new(&data);
            let c0 = both_cpu!();
            let t0 = Instant::now();
            for _ in 0..big_n {
                let _ = orbit_dist::send_named(&b, "sink", &(&big, bin));
                orbit_dist::wait_writable(&b).await;
            }
            let _ = ctx.recv().await;
            let s = t0.elapsed().as_secs_f64();
            let c1 = both_cpu!();
            println!(
                "dist_100KB_msgs_per_s {} MB_per_s {} big_cpu_us {}",
                (big_n as f64 / s) as u64,
                (big_n as f64 * 100_000.0 / s / 1e6) as u64,
                c1.saturating_sub(c0)
            );
        }
    })
    .map_err(|e| e.to_string())?;
    h.wait_exit().await;
    Ok(())
}
