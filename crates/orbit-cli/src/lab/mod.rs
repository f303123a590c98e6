//! The scaling lab: each bottleneck of the Elixir/OTP scaling method, run on this
//! machine next to the Orbit tool that removes it.
//!
//! The method: measure (requests per second, latency, CPU, memory), know what normal
//! is, find the bottleneck. Every scenario runs its variants under the same number of
//! concurrent client processes for the same time, prints RPS, latency p50/p99/max,
//! CPU %, resident memory, heap growth and the peak mailbox length, and ends with a
//! one-line verdict naming the bottleneck:
//!
//! | scenario | variants | the lesson |
//! |---|---|---|
//! | `shared_state` | GenServer map, Agent, ets table, ConCache (90% reads) | one process serialises every read; a table reads in parallel |
//! | `slow_service` | a 2 ms call inside one GenServer, through a Pool of 10, TaskSupervisor fan-out | a process does one thing at a time |
//! | `message_size` | 1 KB and 1 MB messages moved vs cloned per send | moving is free whatever the size; copying (modelled in Orbit by a clone per send, as a copying send would; no BEAM is run) is not |
//! | `pipelines` | demand-driven producer → consumers vs a producer flooding mailboxes | without back-pressure, mailboxes and memory grow |
//! | `spike` | steady load, then a burst | the baseline learner flags what is not normal |
//! | `web` | two axum routes behind one named middleware (`orbit_web::Timing`) | a route's time can be its middleware's, not its handler's |
//! | `db` (only with `--scenario db`: needs PostgreSQL) | a PgPool of 1 → 2 × cores → 50 connections, fixed `max_connections` | past the database's cores a bigger pool adds latency, not throughput |
//!
//! `orbit lab mesh` (a subcommand, [`mesh`]) is the cluster's lesson: the cost of a full
//! mesh against N (time to connect, connections, memory and idle CPU per node,
//! broadcast latency), Orbit nodes and BEAM nodes side by side, and the partial meshes
//! (`connect_all` false: star, ring) that avoid it.
//!
//! The lab uses only Orbit's public API; each scenario's module is also an example of
//! the tools it compares. Every ratio it prints compares variants measured in the same
//! run; it runs no BEAM and prints no ratio against one (`orbit-bench` does that).

pub mod alloc;
mod child;
mod db;
mod html;
mod machine;
mod measure;
pub mod mesh;
mod mesh_html;
pub mod mesh_node;
mod message_size;
mod pipelines;
mod report;
mod shared_state;
mod slow_service;
mod spike;
mod web;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value};

pub use measure::VariantResult;

/// A failure that ends the lab run.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The scenarios, in the order they run, with the number of variant-durations each
/// takes (for the progress bar).
const SCENARIOS: [(&str, u64); 7] = [
    ("shared_state", 4),
    ("slow_service", 3),
    ("message_size", 4),
    ("pipelines", 2),
    ("spike", spike::DURATIONS),
    ("web", 2),
    // Not in the default run: it needs PostgreSQL.
    ("db", 6),
];

/// `orbit lab` options.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// A lab of its own (`orbit lab mesh`); none: the scenarios below.
    #[command(subcommand)]
    pub command: Option<LabCommand>,
    /// Run only this scenario (repeat for several): shared_state, slow_service,
    /// message_size, pipelines, spike, web, db (needs PostgreSQL; not run by default).
    #[arg(long, value_parser = ["shared_state", "slow_service", "message_size", "pipelines", "spike", "web", "db"])]
    pub scenario: Vec<String>,
    /// How long each variant runs (e.g. 2s, 500ms); the spike scenario runs twice as long.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent client processes per variant.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub clients: u64,
    /// Print one JSON object per result (and per verdict) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write a self-contained HTML report with a chart per scenario to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// The labs that are subcommands of `orbit lab`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum LabCommand {
    /// The cost of a mesh against N: Orbit and BEAM nodes as child processes, full mesh,
    /// star and ring (connect_all false): time to connect, connections, memory and idle
    /// CPU per node, broadcast latency.
    Mesh(mesh::MeshOptions),
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write e.g. 2s, 500ms or 1.5s"))?;
    let secs = match unit {
        "s" => v,
        "ms" => v / 1000.0,
        "m" => v * 60.0,
        _ => return Err(format!("unknown unit `{unit}` in `{s}`; use ms, s or m")),
    };
    if !(0.05..=3600.0).contains(&secs) {
        return Err(format!("`{s}` is out of range; use 50ms to 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A scenario's results and verdict.
#[derive(Debug, Clone)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// What it measures, one line.
    pub title: String,
    /// One result per variant.
    pub results: Vec<VariantResult>,
    /// The bottleneck, named.
    pub bottleneck: String,
    /// The one-line verdict.
    pub verdict: String,
    /// Figures behind the verdict (ratios, flags), for JSON readers and tests.
    pub facts: Map<String, Value>,
}

/// What scenarios share: options and the progress bar.
pub struct Lab {
    opts: Options,
    progress: ProgressBar,
}

impl Lab {
    /// Client processes per variant.
    pub fn clients(&self) -> usize {
        self.opts.clients as usize
    }

    /// How long each variant runs.
    pub fn duration(&self) -> Duration {
        self.opts.duration
    }

    /// Time between samples: a twentieth of a variant, 25 to 200 ms.
    pub fn sample_interval(&self) -> Duration {
        (self.opts.duration / 20).clamp(Duration::from_millis(25), Duration::from_millis(200))
    }

    fn progress_message(&self, m: &str) {
        self.progress.set_message(m.to_string());
    }

    fn progress_inc(&self, ms: u64) {
        self.progress.inc(ms);
    }
}

/// Runs the lab.
pub async fn run(opts: Options) -> Result<(), Error> {
    if let Some(LabCommand::Mesh(m)) = opts.command.clone() {
        return mesh::run(m).await;
    }
    let chosen: Vec<(&'static str, u64)> = SCENARIOS
        .into_iter()
        .filter(|(n, _)| {
            (opts.scenario.is_empty() && *n != "db") || opts.scenario.iter().any(|s| s == n)
        })
        .collect();
    let total_ms: u64 = chosen
        .iter()
        .map(|(_, k)| k * opts.duration.as_millis() as u64)
        .sum();
    let target = if opts.json || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let progress = ProgressBar::with_draw_target(Some(total_ms), target);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {percent}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let lab = Lab { opts, progress };
    if !lab.opts.json {
        println!(
            "orbit lab: {} client processes, {:?} per variant, {} cores\n",
            lab.clients(),
            lab.duration(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
    }
    let mut reports = Vec::new();
    let mut memory = Vec::new();
    for (name, _) in chosen {
        let rss_before = orbit::telemetry::rss_bytes().unwrap_or(0);
        let r = match name {
            "shared_state" => shared_state::run(&lab).await?,
            "slow_service" => slow_service::run(&lab).await?,
            "message_size" => message_size::run(&lab).await?,
            "pipelines" => pipelines::run(&lab).await?,
            "web" => web::run(&lab).await?,
            "db" => db::run(&lab).await?,
            _ => spike::run(&lab).await?,
        };
        lab.progress.suspend(|| {
            let mut out = std::io::stdout().lock();
            let text = if lab.opts.json {
                report::json_lines(&r)
            } else {
                report::table(&r)
            };
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        });
        memory.push(html::ScenarioMemory::of(rss_before, &r));
        reports.push(r);
    }
    lab.progress.finish_and_clear();
    if let Some(path) = &lab.opts.html {
        std::fs::write(path, html::render(&reports, &memory, &lab.opts)).map_err(|e| {
            format!(
                "could not write the HTML report to {}: {e}; check the directory exists and is writable",
                path.display()
            )
        })?;
        if !lab.opts.json {
            println!("HTML report: {}", path.display());
        }
    }
    Ok(())
}
