//! The `spool` binary: command-line entry points.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

use spool_server::{
    history_cmd, import, livy_local, plan_cmd, run_cmd, schedule_cmd, serve, simulate,
};

#[derive(Parser)]
#[command(
    name = "spool",
    version,
    about = "Run a DAG of Spark notebooks in one shared Spark session"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a pipeline file and everything it references; exit 1 when there are errors.
    Validate(plan_cmd::ValidateArgs),
    /// Print the expanded DAG: topological levels, critical path, inactive steps.
    Plan(plan_cmd::PlanArgs),
    /// The next fire times of the pipeline's [schedule], in its time zone beside UTC.
    Schedule(schedule_cmd::ScheduleArgs),
    /// Dry-run the pipeline on a simulated Spark pool.
    Simulate(simulate::Args),
    /// Run the pipeline on Spark (Livy, or a local PySpark), with live progress.
    Run(run_cmd::RunArgs),
    /// List recorded runs, newest first.
    Runs(history_cmd::RunsArgs),
    /// The trace of one run: events in order, errors with tracebacks.
    Show(history_cmd::ShowArgs),
    /// Serve the web app and the HTTP API.
    Serve(serve::ServeArgs),
    /// Serve a Livy-compatible REST endpoint backed by local PySpark drivers.
    LivyLocal(livy_local::Args),
    /// Convert a Synapse/ADF pipeline, Genie metadata or a runMultiple DAG into Spool files.
    Import(import::ImportArgs),
    /// Write a Spool pipeline in another tool's format.
    Export(import::ExportArgs),
}

fn main() -> ExitCode {
    // Warnings and errors of the executor, API and Livy client go to stderr; `RUST_LOG`
    // (e.g. `RUST_LOG=spool_server=debug`) asks for more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(a) => plan_cmd::validate(a),
        Command::Plan(a) => plan_cmd::plan(a),
        Command::Schedule(a) => schedule_cmd::schedule(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Run(a) => run_cmd::run(a),
        Command::Runs(a) => history_cmd::runs(a),
        Command::Show(a) => history_cmd::show(a),
        Command::Serve(a) => serve::serve(a),
        Command::LivyLocal(a) => livy_local::run(a),
        Command::Import(a) => import::import(a),
        Command::Export(a) => import::export(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
