//! `orbit lab mesh`: the cost of a mesh, measured on this machine.
//!
//! For N = 2, 4, 8, 16, 32 (up to `--max-nodes`) the lab starts N Orbit nodes as child
//! processes (`orbit mesh-node`, this same binary) and, for N up to `--max-beam-nodes`,
//! N BEAM nodes (`erl`, running `mesh_node.erl`), and wires them three ways:
//!
//! - `full`: node 1 connects to every other node and the transitive mesh (OTP's
//!   `connect_all`) does the rest: N(N-1)/2 connections;
//! - `star`: every node started with `connect_all` false (`erl -connect_all false`,
//!   `orbit mesh-node --no-connect-all`), node 1 connects to every other: N-1;
//! - `ring`: `connect_all` false, node k connects to node k+1 and N to 1: N.
//!
//! Per (implementation, N, topology) it reports: the time from the first connect until
//! every node sees its expected number of peers (each node waits on its own node events
//! and says when), the connections counted from every node's `nodes()`, resident memory
//! and CPU per node over `--idle` seconds with nothing to do but ticks
//! (`/proc/PID/stat`, `/proc/PID/status`), and the latency of a broadcast from node 1:
//! one message to the registered `mesh_ack` of every other node, each acknowledging
//! (full and star: sent directly; ring: relayed node to node, the last one
//! acknowledging), `--rounds` rounds, median and spread.
//!
//! The nodes use a private EPMD (an embedded one this process serves on a free port,
//! passed as `ERL_EPMD_PORT`), so the lab neither collides with nor leaves behind
//! anything on 4369. Every child is killed when its row is done and on every exit path
//! (see `child.rs`). BEAM nodes are skipped, saying so, when `erl`/`erlc` are missing.
//! Goals (the issue's): an idle Orbit node in a 32-node full mesh under 1% of a core
//! and 20 MB, the 32 nodes connected in under 2 s; the last line says whether they hold.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::child::{cpu_time, rss_bytes, Child};
use super::Error;

/// `orbit lab mesh` options.
#[derive(clap::Args, Debug, Clone)]
pub struct MeshOptions {
    /// Largest number of Orbit nodes (runs 2, 4, 8, ... up to it, and it).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(2..=128))]
    pub max_nodes: u16,
    /// Largest number of BEAM nodes (0: none).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub max_beam_nodes: u16,
    /// Seconds of idle per row over which CPU and memory are measured.
    #[arg(long, default_value_t = 3.0, value_parser = parse_idle)]
    pub idle: f64,
    /// Broadcast rounds per row.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub rounds: u16,
    /// Print one JSON object per (implementation, N, topology) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write an HTML page with charts of cost against N to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

fn parse_idle(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=600.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds from 0.1 to 600")),
    }
}

/// How the nodes are wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// The transitive mesh: node 1 connects to all, `connect_all` true.
    Full,
    /// `connect_all` false; node 1 connects to all.
    Star,
    /// `connect_all` false; node k to node k+1, N to 1.
    Ring,
}

impl Topology {
    fn name(self) -> &'static str {
        match self {
            Topology::Full => "full",
            Topology::Star => "star",
            Topology::Ring => "ring",
        }
    }

    /// The nodes (0-based) each node dials.
    fn dials(self, n: usize) -> Vec<Vec<usize>> {
        let mut d = vec![Vec::new(); n];
        match self {
            Topology::Full | Topology::Star => d[0] = (1..n).collect(),
            Topology::Ring if n == 2 => d[0] = vec![1],
            Topology::Ring => {
                for (k, dk) in d.iter_mut().enumerate() {
                    dk.push((k + 1) % n);
                }
            }
        }
        d
    }

    /// The number of peers each node should see.
    fn degrees(self, n: usize) -> Vec<usize> {
        match self {
            Topology::Full => vec![n - 1; n],
            Topology::Star => (0..n).map(|k| if k == 0 { n - 1 } else { 1 }).collect(),
            Topology::Ring => vec![if n == 2 { 1 } else { 2 }; n],
        }
    }
}

/// Which runtime the nodes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// `orbit mesh-node` children.
    Orbit,
    /// `erl` children.
    Beam,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Orbit => "orbit",
            Impl::Beam => "beam",
        }
    }
}

/// One row: an implementation, N nodes, a topology.
#[derive(Debug, Clone)]
pub struct MeshResult {
    /// Orbit or BEAM.
    pub imp: Impl,
    /// Number of nodes.
    pub nodes: usize,
    /// How they were wired.
    pub topology: Topology,
    /// Every node saw its expected number of peers in time.
    pub complete: bool,
    /// From the first connect until the last node saw its peers (or gave up).
    pub connect: Duration,
    /// Connections, from every node's `nodes()` (each counted once).
    pub connections: usize,
    /// Connections the topology has.
    pub expected: usize,
    /// Fewest and most peers a node saw.
    pub seen: (usize, usize),
    /// Resident memory per node: mean and largest, bytes.
    pub rss: (f64, u64),
    /// CPU per node at idle, % of one core: mean and largest.
    pub cpu: (f64, f64),
    /// Broadcast latencies per round, µs (-1: a round not acknowledged in time).
    pub bcast_us: Vec<i64>,
}

impl MeshResult {
    fn bcast_stats(&self) -> Option<(i64, i64, i64)> {
        let mut ok: Vec<i64> = self.bcast_us.iter().copied().filter(|t| *t >= 0).collect();
        if ok.is_empty() {
            return None;
        }
        ok.sort_unstable();
        Some((ok[0], ok[ok.len() / 2], ok[ok.len() - 1]))
    }

    /// The row as a JSON object.
    pub fn to_json(&self, idle: f64) -> Value {
        let b = self.bcast_stats();
        json!({
            "scenario": "mesh",
            "kind": "result",
            "impl": self.imp.name(),
            "nodes": self.nodes,
            "topology": self.topology.name(),
            "complete": self.complete,
            "connect_ms": self.connect.as_secs_f64() * 1e3,
            "connections": self.connections,
            "expected_connections": self.expected,
            "min_peers": self.seen.0,
            "max_peers": self.seen.1,
            "rss_mb_mean": self.rss.0 / 1e6,
            "rss_mb_max": self.rss.1 as f64 / 1e6,
            "cpu_pct_mean": self.cpu.0,
            "cpu_pct_max": self.cpu.1,
            "idle_s": idle,
            "bcast_mode": if self.topology == Topology::Ring { "relay" } else { "direct" },
            "bcast_rounds": self.bcast_us.len(),
            "bcast_lost": self.bcast_us.iter().filter(|t| **t < 0).count(),
            "bcast_us_min": b.map(|b| b.0),
            "bcast_us_p50": b.map(|b| b.1),
            "bcast_us_max": b.map(|b| b.2),
        })
    }
}

/// What every row shares.
struct Setup {
    exe: PathBuf,
    epmd_port: u16,
    cookie: String,
    tag: u32,
    /// The compiled `orbit_mesh_node` beam's directory, when BEAM nodes run.
    beam_dir: Option<TempDir>,
    idle: Duration,
    rounds: u16,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `orbit lab mesh`.
pub async fn run(o: MeshOptions) -> Result<(), Error> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program's path to start nodes: {e}"))?;
    let epmd_port = private_epmd().await?;
    let tag = std::process::id();
    let beam_dir = if o.max_beam_nodes >= 2 {
        match compile_beam_node(tag) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("SKIP BEAM nodes: {e}");
                None
            }
        }
    } else {
        None
    };
    let setup = Setup {
        exe,
        epmd_port,
        cookie: format!("orbit_lab_mesh_{tag}"),
        tag,
        beam_dir,
        idle: Duration::from_secs_f64(o.idle),
        rounds: o.rounds,
    };
    let max = usize::from(o.max_nodes);
    let mut sizes: Vec<usize> = [2, 4, 8, 16, 32, 64, 128]
        .into_iter()
        .filter(|n| *n <= max)
        .collect();
    if sizes.last() != Some(&max) {
        sizes.push(max);
    }
    if !o.json {
        println!(
            "orbit lab mesh: Orbit nodes up to {max}, BEAM nodes up to {}, {:.1}s idle per row, {} broadcast rounds, {} cores\n",
            if setup.beam_dir.is_some() { o.max_beam_nodes } else { 0 },
            o.idle,
            o.rounds,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!("{}", table_header());
    }
    let mut results = Vec::new();
    for &n in &sizes {
        let mut imps = vec![Impl::Orbit];
        if setup.beam_dir.is_some() && n <= usize::from(o.max_beam_nodes) {
            imps.push(Impl::Beam);
        }
        for imp in imps {
            for topology in [Topology::Full, Topology::Star, Topology::Ring] {
                let r = run_one(&setup, imp, n, topology)?;
                let mut out = std::io::stdout().lock();
                let line = if o.json {
                    r.to_json(o.idle).to_string()
                } else {
                    table_row(&r)
                };
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                results.push(r);
            }
        }
    }
    let goals = goals(&results);
    if o.json {
        println!("{goals}");
    } else {
        println!("\n{}", summary(&results, &goals));
    }
    if let Some(path) = &o.html {
        std::fs::write(path, super::mesh_html::render(&results, &goals)).map_err(|e| {
            format!(
                "could not write the HTML report to {}: {e}; check the directory exists and is writable",
                path.display()
            )
        })?;
        if !o.json {
            println!("HTML report: {}", path.display());
        }
    }
    Ok(())
}

/// Starts an embedded EPMD on a free port; the port.
async fn private_epmd() -> Result<u16, Error> {
    for _ in 0..10 {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port for the lab's EPMD: {e}"))?
            .port();
        match orbit_dist::epmd::server::start(port).await {
            Ok(Some(_)) => return Ok(port),
            Ok(None) => continue,
            Err(e) => return Err(format!("cannot start the lab's EPMD on port {port}: {e}").into()),
        }
    }
    Err("cannot start the lab's EPMD: no free port after 10 tries".into())
}

/// Removes the directories of earlier labs that were interrupted (Ctrl-C runs no
/// destructor): `orbit-lab-mesh-PID` whose PID is not running.
fn remove_stale_dirs() {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("orbit-lab-mesh-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Writes and compiles `orbit_mesh_node.erl` into a fresh temporary directory.
fn compile_beam_node(tag: u32) -> Result<TempDir, Error> {
    remove_stale_dirs();
    let dir = TempDir(std::env::temp_dir().join(format!("orbit-lab-mesh-{tag}")));
    std::fs::create_dir_all(&dir.0)
        .map_err(|e| format!("cannot create {}: {e}", dir.0.display()))?;
    let src = dir.0.join("orbit_mesh_node.erl");
    std::fs::write(&src, include_str!("mesh_node.erl"))
        .map_err(|e| format!("cannot write {}: {e}", src.display()))?;
    let out = Command::new("erlc")
        .arg("-o")
        .arg(&dir.0)
        .arg(&src)
        .output()
        .map_err(|e| {
            format!("`erlc` not found ({e}); install Erlang/OTP to compare with BEAM nodes")
        })?;
    if !out.status.success() {
        return Err(format!(
            "erlc failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(dir)
}

/// One row: starts the nodes, wires them, measures, kills them.
fn run_one(s: &Setup, imp: Impl, n: usize, topology: Topology) -> Result<MeshResult, Error> {
    let names: Vec<String> = (1..=n)
        .map(|k| {
            format!(
                "{}{}{n}x{k}_{}@127.0.0.1",
                &imp.name()[..1],
                &topology.name()[..1],
                s.tag
            )
        })
        .collect();
    let connect_all = topology == Topology::Full;
    // Dropping `kids` (on return or unwinding) kills and reaps them.
    let mut kids = Vec::with_capacity(n);
    for name in &names {
        kids.push(start_node(s, imp, name, connect_all)?);
    }
    let start_deadline = Instant::now() + Duration::from_secs(30 + 2 * n as u64);
    for k in &mut kids {
        k.expect("ready", start_deadline)?;
    }

    let dials = topology.dials(n);
    let degrees = topology.degrees(n);
    let t0 = Instant::now();
    for (k, targets) in dials.iter().enumerate() {
        if !targets.is_empty() {
            let list: Vec<&str> = targets.iter().map(|t| names[*t].as_str()).collect();
            kids[k].say(&format!("connect {}", list.join(" ")))?;
        }
    }
    let wait_ms = 30_000 + 500 * n as u64;
    for (k, d) in degrees.iter().enumerate() {
        kids[k].say(&format!("await {d} {wait_ms}"))?;
    }
    let deadline = Instant::now() + Duration::from_millis(wait_ms + 10_000);
    let mut complete = true;
    for k in &mut kids {
        let l = k.expect_any(&["reached", "timeout"], deadline)?;
        complete &= l.starts_with("reached");
    }
    let connect = t0.elapsed();

    let mut seen = Vec::with_capacity(n);
    for k in &mut kids {
        k.say("nodes")?;
        let l = k.expect("nodes", Instant::now() + Duration::from_secs(10))?;
        seen.push(
            l.trim_start_matches("nodes")
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .count(),
        );
    }

    let pids: Vec<u32> = kids.iter().map(Child::pid).collect();
    let before: Vec<Option<Duration>> = pids.iter().map(|p| cpu_time(*p)).collect();
    let idle_start = Instant::now();
    std::thread::sleep(s.idle);
    let idle = idle_start.elapsed().as_secs_f64();
    let after: Vec<Option<Duration>> = pids.iter().map(|p| cpu_time(*p)).collect();
    let rss: Vec<u64> = pids.iter().filter_map(|p| rss_bytes(*p)).collect();
    let cpu: Vec<f64> = before
        .iter()
        .zip(&after)
        .filter_map(|(b, a)| Some((a.as_ref()?.saturating_sub(*b.as_ref()?)).as_secs_f64()))
        .map(|busy| busy / idle * 100.0)
        .collect();
    if rss.len() != n || cpu.len() != n {
        return Err(format!(
            "could not read /proc for every {} node (N={n}, {}): did one exit?",
            imp.name(),
            topology.name()
        )
        .into());
    }

    let mode = if topology == Topology::Ring {
        "relay"
    } else {
        "direct"
    };
    let targets = names[1..].join(" ");
    kids[0].say(&format!("bcast {} {mode} {targets}", s.rounds))?;
    let l = kids[0].expect(
        "bcast",
        Instant::now() + Duration::from_secs(15 + 11 * u64::from(s.rounds)),
    )?;
    let bcast_us = l
        .trim_start_matches("bcast")
        .split_whitespace()
        .map(|t| t.parse::<i64>().unwrap_or(-1))
        .collect();
    drop(kids);

    Ok(MeshResult {
        imp,
        nodes: n,
        topology,
        complete,
        connect,
        connections: seen.iter().sum::<usize>() / 2,
        expected: degrees.iter().sum::<usize>() / 2,
        seen: (
            seen.iter().copied().min().unwrap_or(0),
            seen.iter().copied().max().unwrap_or(0),
        ),
        rss: (
            rss.iter().sum::<u64>() as f64 / n as f64,
            rss.iter().copied().max().unwrap_or(0),
        ),
        cpu: (
            cpu.iter().sum::<f64>() / n as f64,
            cpu.iter().copied().fold(0.0, f64::max),
        ),
        bcast_us,
    })
}

/// Starts one node child.
fn start_node(s: &Setup, imp: Impl, name: &str, connect_all: bool) -> Result<Child, Error> {
    let mut cmd = match (imp, &s.beam_dir) {
        (Impl::Orbit, _) => {
            let mut c = Command::new(&s.exe);
            c.args(["mesh-node", "--name", name, "--cookie", &s.cookie]);
            if !connect_all {
                c.arg("--no-connect-all");
            }
            c
        }
        (Impl::Beam, Some(dir)) => {
            let mut c = Command::new("erl");
            c.args(["-noshell", "-name", name, "-setcookie", &s.cookie]);
            if !connect_all {
                c.args(["-connect_all", "false"]);
            }
            c.arg("-pa")
                .arg(&dir.0)
                .args(["-eval", "orbit_mesh_node:main()"]);
            c
        }
        (Impl::Beam, None) => return Err("BEAM nodes asked for but not prepared".into()),
    };
    cmd.env("ERL_EPMD_PORT", s.epmd_port.to_string());
    Child::spawn(cmd, name)
}

fn table_header() -> String {
    format!(
        "{:<6} {:>4} {:<5} {:>10} {:>11} {:>15} {:>13} {:>26}",
        "impl",
        "N",
        "topo",
        "connect",
        "connections",
        "RSS/node MB",
        "CPU/node %",
        "broadcast p50 (min-max)"
    )
}

fn table_row(r: &MeshResult) -> String {
    let connect = if r.complete {
        format!("{:.0} ms", r.connect.as_secs_f64() * 1e3)
    } else {
        "incomplete".to_string()
    };
    let bcast = match r.bcast_stats() {
        Some((lo, mid, hi)) => format!("{} ({}-{})", us(mid), us(lo), us(hi)),
        None => "lost".into(),
    };
    format!(
        "{:<6} {:>4} {:<5} {:>10} {:>11} {:>15} {:>13} {:>26}",
        r.imp.name(),
        r.nodes,
        r.topology.name(),
        connect,
        format!("{}/{}", r.connections, r.expected),
        format!("{:.1} (max {:.1})", r.rss.0 / 1e6, r.rss.1 as f64 / 1e6),
        format!("{:.2} (max {:.2})", r.cpu.0, r.cpu.1),
        bcast
    )
}

fn us(v: i64) -> String {
    if v >= 10_000 {
        format!("{:.1}ms", v as f64 / 1e3)
    } else {
        format!("{v}µs")
    }
}

/// The goals against the largest Orbit full mesh of this run.
fn goals(results: &[MeshResult]) -> Value {
    let largest = results
        .iter()
        .filter(|r| r.imp == Impl::Orbit && r.topology == Topology::Full)
        .max_by_key(|r| r.nodes);
    let Some(r) = largest else {
        return json!({"scenario": "mesh", "kind": "goals", "nodes": 0});
    };
    let connect_ms = r.connect.as_secs_f64() * 1e3;
    let rss_mb = r.rss.1 as f64 / 1e6;
    json!({
        "scenario": "mesh",
        "kind": "goals",
        "nodes": r.nodes,
        "complete": r.complete,
        "connect_ms": connect_ms,
        "goal_connect_ms": 2000.0,
        "cpu_pct_max": r.cpu.1,
        "goal_cpu_pct": 1.0,
        "rss_mb_max": rss_mb,
        "goal_rss_mb": 20.0,
        "met": r.complete && connect_ms < 2000.0 && r.cpu.1 < 1.0 && rss_mb < 20.0,
        "goals_are_for_32_nodes": r.nodes >= 32,
    })
}

/// The closing lines: the goals, and Orbit against BEAM at the largest common N.
fn summary(results: &[MeshResult], goals: &Value) -> String {
    let mut s = String::new();
    if let Some(n) = goals["nodes"].as_u64().filter(|n| *n > 0) {
        s.push_str(&format!(
            "Goals (Orbit full mesh of {n}{}): connect {:.0} ms (< 2000), idle CPU max {:.2}% (< 1), RSS max {:.1} MB (< 20): {}\n",
            if n < 32 { ", goals are for 32" } else { "" },
            goals["connect_ms"].as_f64().unwrap_or(0.0),
            goals["cpu_pct_max"].as_f64().unwrap_or(0.0),
            goals["rss_mb_max"].as_f64().unwrap_or(0.0),
            if goals["met"] == true { "met" } else { "NOT met" },
        ));
    }
    let both = results
        .iter()
        .filter(|r| r.imp == Impl::Beam && r.topology == Topology::Full)
        .max_by_key(|r| r.nodes);
    if let Some(b) = both {
        if let Some(o) = results
            .iter()
            .find(|r| r.imp == Impl::Orbit && r.topology == Topology::Full && r.nodes == b.nodes)
        {
            s.push_str(&format!(
                "Same run, full mesh of {}: Orbit connects in {:.0} ms vs BEAM {:.0} ms; {:.1} MB vs {:.1} MB per node; idle CPU {:.2}% vs {:.2}%\n",
                b.nodes,
                o.connect.as_secs_f64() * 1e3,
                b.connect.as_secs_f64() * 1e3,
                o.rss.0 / 1e6,
                b.rss.0 / 1e6,
                o.cpu.0,
                b.cpu.0
            ));
        }
    }
    s.push_str(
        "A full mesh costs N(N-1)/2 connections (ticks on each); star and ring keep N-1 and N, at the price of relaying (ring) or one hub.",
    );
    s
}
