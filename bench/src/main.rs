//! `spool-bench`: what the benchmark scripts (scripts/bench-*.sh) need from Spool and a user
//! never does, kept out of the shipped `spool` binary.

mod history;
mod launches;
mod sim;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "spool-bench", about = "Helpers of Spool's benchmark scripts")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The agent statements of every notebook, in one-at-a-time order (scripts/bench-runs.sh).
    Launches(launches::Args),
    /// Times simulations of a generated pipeline, as JSON (scripts/bench-sim.sh).
    Simulate(sim::SimulateArgs),
    /// The schedule-quality table over generated DAGs (scripts/bench-sim.sh).
    QualitySuite(sim::QualityArgs),
    /// Listing and server start on a history of many runs (scripts/bench-history.sh).
    History(history::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Launches(a) => launches::run(a),
        Command::Simulate(a) => sim::run_simulate(a),
        Command::QualitySuite(a) => sim::run_quality(a),
        Command::History(a) => history::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
