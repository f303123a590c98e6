//! `orbit-bench`: side-by-side benchmarks of Orbit against the BEAM and peer Rust crates
//! (raw tokio, ractor, kameo, actix).
//!
//! ```text
//! cargo run --release -p orbit-bench -- SCENARIO [--json] [--rounds N] [--scale F]
//! ```
//!
//! SCENARIO is one scenario (`send`, `pingpong`, `call`, `spawn`, `counters`, ...), a
//! group (`runtime` = those five) or `all`. Each scenario runs its subjects in the same
//! invocation, interleaved round by round, and reports each subject's median of rounds
//! with best, spread and CPU per unit (see each scenario module). With `--json` every figure is one line
//! `{"scenario": S, "subject": WHO, "metric": M, "value": V}`; `"subject": "ratio"`
//! lines give orbit's figure over the goal's reference, the goal in the metric name
//! (e.g. `orbit_vs_beam_min_3x`: value must be ≥ 3).
//!
//! The BEAM figures come from this crate's `beam/` modules and scripts, run in every
//! round when `erl` / `elixir` are on the PATH (see [`beam`]); without them the beam
//! subjects are skipped with a note.

// Both modules are shared API for later scenarios (ets, term, dist); not all of it is
// used by the runtime scenarios yet.
#[allow(dead_code)]
mod beam;
mod pairs;
mod placement;
#[allow(dead_code)]
mod report;
mod scenarios;
mod sched;
mod util;

/// Every subject runs on mimalloc, as Orbit's own binaries do (`orbit`): the process
/// spawn path is bound by allocation and first-touch page faults, where glibc's malloc
/// gives about half of mimalloc's rate (see the README). Set here, the allocator is the
/// same for Orbit and for every peer crate measured beside it.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(about = "Side-by-side benchmarks of Orbit against the BEAM and peer crates")]
struct Args {
    /// Scenario, group (`runtime`) or `all`.
    scenario: String,
    /// Print one JSON object per figure.
    #[arg(long)]
    json: bool,
    /// Interleaved rounds per subject; the median is reported, best and spread beside.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Scale the message and process counts (1.0 = the counts of the goals).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    // Hidden child command of the `spawn` scenario: `__spawn-child SUBJECT N`.
    if argv.get(1).map(String::as_str) == Some("__spawn-child") {
        let subject = argv.get(2).map(String::as_str).unwrap_or("");
        let n = argv
            .get(3)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        if let Err(e) = scenarios::spawn::child_main(subject, n) {
            eprintln!("spawn child: {e}");
            std::process::exit(1);
        }
        return;
    }
    // Hidden child command of the `cache` scenario: `__cache-mem-child SUBJECT N`.
    if argv.get(1).map(String::as_str) == Some("__cache-mem-child") {
        let subject = argv.get(2).map(String::as_str).unwrap_or("");
        let n = argv
            .get(3)
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        if let Err(e) = scenarios::cache::child_main(subject, n) {
            eprintln!("cache child: {e}");
            std::process::exit(1);
        }
        return;
    }
    // Hidden child commands of the `erpc` scenario: the Orbit target and driver nodes.
    #[cfg(feature = "dist")]
    if let Some(cmd) = argv.get(1).filter(|a| a.starts_with("__erpc-")) {
        std::process::exit(scenarios::erpc::child_main(cmd, &argv[2..]));
    }
    // Hidden child commands of the `pg` scenario: the two Orbit nodes.
    #[cfg(feature = "dist")]
    if let Some(cmd) = argv.get(1).filter(|a| a.starts_with("__pg-")) {
        std::process::exit(scenarios::pg::child_main(cmd, &argv[2..]));
    }
    // Hidden child commands of the `dist` scenario: the two Orbit nodes.
    #[cfg(feature = "dist")]
    if let Some(cmd) = argv.get(1).filter(|a| a.starts_with("__dist-")) {
        std::process::exit(scenarios::dist_nodes::child_main(cmd, &argv[2..]));
    }
    // Hidden child commands of the `cluster_stage` scenario: the three Orbit nodes.
    #[cfg(feature = "dist")]
    if let Some(cmd) = argv.get(1).filter(|a| a.starts_with("__cstage-")) {
        std::process::exit(scenarios::cluster_stage::child_main(cmd, &argv[2..]));
    }
    // Hidden child commands of the `web` scenario: the servers.
    if let Some(cmd) = argv.get(1).filter(|a| a.starts_with("__web-")) {
        std::process::exit(scenarios::web::child_main(cmd, &argv[2..]));
    }
    let args = Args::parse();
    let selected = scenarios::select(&args.scenario);
    if selected.is_empty() {
        eprintln!(
            "unknown scenario {:?}; choose one of: {}",
            args.scenario,
            scenarios::names().join(", ")
        );
        std::process::exit(2);
    }
    let mut ctx = scenarios::Ctx {
        rep: report::Reporter::new(args.json),
        rounds: args.rounds.max(1),
        scale: args.scale,
    };
    for s in selected {
        eprintln!("== {}: {}", s.name, s.about);
        (s.run)(&mut ctx);
    }
    beam::cleanup();
}
