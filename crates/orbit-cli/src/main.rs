//! `orbit`: the Orbit command line.
//!
//! `orbit lab` is the scaling lab: it runs, on this machine, each bottleneck the
//! Elixir/OTP scaling method describes next to the Orbit tool that removes it, and
//! measures both (requests per second, latency, CPU, memory, mailboxes). See
//! [`lab`] for the scenarios. `orbit node` runs a standalone node that joins a cluster
//! ([`node`]).

mod cluster;
mod lab;
mod node;
mod top;

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
    /// A standalone node: joins the topologies of a cluster file, logs membership,
    /// leaves cleanly on SIGTERM.
    Node(node::NodeOptions),
    /// The cluster view: which node sees which, partitions, history.
    Cluster(cluster::Options),
    /// One node of `orbit lab mesh`, driven over stdin (started by the lab).
    #[command(hide = true)]
    MeshNode(lab::mesh_node::MeshNodeOptions),
    /// The top processes of a node serving the dashboard (`orbit node --dashboard`), live.
    Top(top::TopOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::MeshNode(opts) => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("orbit mesh-node: could not start the tokio runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(lab::mesh_node::run(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("orbit mesh-node: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Top(opts) => match top::run(opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("orbit top: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Cluster(opts) => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("orbit cluster: could not start the tokio runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(cluster::run(opts)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("orbit cluster: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Node(opts) => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("orbit node: could not start the tokio runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(node::run(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("orbit node: {e}");
                    ExitCode::FAILURE
                }
            }
        }
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
