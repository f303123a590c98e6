//! `orbit`: the Orbit command line.
//!
//! `orbit lab` is the scaling lab: it runs, on this machine, each bottleneck the
//! Elixir/OTP scaling method describes next to the Orbit tool that removes it, and
//! measures both (requests per second, latency, CPU, memory, mailboxes). See
//! [`lab`] for the scenarios.

mod lab;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Counts heap bytes in use, so the lab can report memory exactly (resident memory
/// alone hides what the allocator keeps for reuse).
#[global_allocator]
static ALLOC: lab::alloc::Counting = lab::alloc::Counting;

#[derive(Parser)]
#[command(
    name = "orbit",
    version,
    about = "Orbit: the Elixir/OTP scaling toolkit, in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The scaling lab: measure each bottleneck and the Orbit tool that removes it.
    Lab(lab::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lab(opts) => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("orbit lab: could not start the tokio runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(lab::run(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("orbit lab: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
