//! `spool simulate`: dry-runs a pipeline on a described pool and compares it with one pool per
//! notebook. The options and the report are `spool_core::dry_run`'s, as in the API and the
//! browser; this module reads them from flags, resolves `--durations-from` against the
//! history, and prints the report as JSON or text.

mod text;

use crate::calibration::calibrate;
use crate::history::History;
use crate::plan_cmd::load_file;
use spool_core::calibrate::{Calibration, DurationsFrom};
use spool_core::dry_run::{parse_assumptions, DryRunReport, SimOptions};
use spool_core::gen::LayeredDag;
use spool_core::sched::Policy;
use std::path::PathBuf;

/// Largest generated pipeline (`--generate`, and spool-bench's).
pub const MAX_GENERATED_NOTEBOOKS: u64 = 1_000_000;

#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file (TOML); not needed with --generate.
    #[arg(required_unless_present = "generate")]
    pub file: Option<PathBuf>,
    /// Executors in the pool (default: the pipeline's [pool]).
    #[arg(long)]
    pub executors: Option<u32>,
    /// Cores per executor (default: the pipeline's [pool]).
    #[arg(long)]
    pub executor_cores: Option<u32>,
    /// Slots Spark really gives, instead of executors × cores (default with --durations-from
    /// and no pool size: the capacity the run's Spark session reported).
    #[arg(long)]
    pub capacity_slots: Option<u32>,
    /// Order of ready notebooks: critical-path (longest remaining path first) or fifo.
    #[arg(long, default_value = "critical-path", value_parser = parse_policy)]
    pub policy: Policy,
    /// Seed of the random durations and failures (with --variation or --failure-rate).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Spread of a random log-normal factor (mean 1) on each duration; 0 runs them exactly.
    #[arg(long)]
    pub variation: Option<f64>,
    /// Chance that an attempt fails, to see retries.
    #[arg(long)]
    pub failure_rate: Option<f64>,
    /// Seconds the pool takes to start (default 180, or the measured session start-up with
    /// --durations-from). With 0, the makespan is the first notebook start to the last end,
    /// the figure to compare with a real run.
    #[arg(long)]
    pub node_startup_secs: Option<f64>,
    /// Price of one node for one hour (driver and executors are one node each; default 1).
    #[arg(long)]
    pub price_per_node_hour: Option<f64>,
    /// Nodes each notebook's own pool holds in the baseline (default 3).
    #[arg(long)]
    pub baseline_min_nodes: Option<u32>,
    /// Also simulate pools of 1 to N executors.
    #[arg(long)]
    pub sweep: Option<u32>,
    /// With --sweep: pick the cheapest pool that finishes within this many seconds.
    #[arg(long, requires = "sweep")]
    pub deadline_secs: Option<f64>,
    /// Seconds from a dependency's end to its dependent's start (default 0, or the measured
    /// one with --durations-from).
    #[arg(long)]
    pub dispatch_latency_secs: Option<f64>,
    /// Durations from history instead of estimate_secs: a run id, `last` (the newest finished
    /// run of this pipeline), or `p50`/`p90` of each notebook over its last successful runs.
    #[arg(long, value_parser = parse_durations_from)]
    pub durations_from: Option<DurationsFrom>,
    /// How many successful runs `p50`/`p90` read (default 20).
    #[arg(long)]
    pub history_runs: Option<u32>,
    /// Print each notebook's median and 90th percentile over the last successful runs (and
    /// simulate with the medians unless --durations-from says otherwise).
    #[arg(long)]
    pub history_stats: bool,
    /// Where run history is kept.
    #[arg(long, default_value = ".spool")]
    pub data_dir: PathBuf,
    /// A value a notebook publishes in the simulation, for conditions on values (`if` on a
    /// dependency): `ID.KEY=VALUE` (`tasks.ID.values.KEY`) or `ID=VALUE` (its exit value),
    /// VALUE as JSON or text. Conditions reading values not given hold.
    #[arg(long, value_name = "ID.KEY=VALUE")]
    pub assume: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Simulate a random layered pipeline of N notebooks (seeded by --seed) instead of FILE.
    #[arg(long, conflicts_with = "file",
          value_parser = clap::value_parser!(u64).range(1..=MAX_GENERATED_NOTEBOOKS))]
    pub generate: Option<u64>,
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s).ok_or_else(|| format!("expected one of {}", Policy::NAMES.join(", ")))
}

fn parse_durations_from(s: &str) -> Result<DurationsFrom, String> {
    DurationsFrom::parse(s).ok_or_else(|| format!("expected {}", DurationsFrom::HELP))
}

impl Args {
    /// The flags as core's options; what is not given keeps core's default.
    fn options(&self) -> anyhow::Result<SimOptions> {
        let d = SimOptions::default();
        Ok(SimOptions {
            executors: self.executors,
            executor_cores: self.executor_cores,
            capacity_slots: self.capacity_slots,
            policy: self.policy,
            seed: self.seed,
            variation: self.variation.unwrap_or(d.variation),
            failure_rate: self.failure_rate.unwrap_or(d.failure_rate),
            node_startup_secs: self.node_startup_secs,
            price_per_node_hour: self.price_per_node_hour.unwrap_or(d.price_per_node_hour),
            baseline_min_nodes: self.baseline_min_nodes.unwrap_or(d.baseline_min_nodes),
            sweep: self.sweep,
            deadline_secs: self.deadline_secs,
            dispatch_latency_secs: self.dispatch_latency_secs,
            durations: d.durations,
            durations_from: self
                .durations_from
                .or(self.history_stats.then_some(DurationsFrom::P50)),
            history_runs: self.history_runs.unwrap_or(d.history_runs),
            assume: parse_assumptions(self.assume.iter().map(String::as_str))
                .map_err(|e| anyhow::anyhow!("--assume: {}", e.message))?,
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let options = args.options()?;
    let errors = options.validate();
    if !errors.is_empty() {
        for e in errors {
            eprintln!("error: --{}: {}", e.field.replace('_', "-"), e.message);
        }
        return Ok(2);
    }
    let plan = match (args.generate, &args.file) {
        (Some(n), _) => LayeredDag::benchmark(n as usize, args.seed).generate(),
        (None, Some(file)) => {
            let loaded = load_file(file)?;
            for d in &loaded.diagnostics {
                eprintln!("{d}");
            }
            match loaded.plan {
                Some(plan) => plan,
                None => return Ok(1),
            }
        }
        (None, None) => anyhow::bail!("give a pipeline file or --generate N"),
    };
    let unknown = options.unknown_assumptions(&plan);
    if !unknown.is_empty() {
        for e in unknown {
            eprintln!("error: --{}: {}", e.field, e.message);
        }
        return Ok(2);
    }
    let calibration: Option<Calibration> = match options.durations_from {
        Some(from) => {
            let history = History::open(&args.data_dir)?;
            match calibrate(&history, &plan, from, options.history_runs) {
                Ok(c) => Some(c),
                Err(crate::calibration::CalibrationError::NotFound(why)) => {
                    eprintln!("error: {why} ({})", args.data_dir.display());
                    return Ok(1);
                }
                Err(crate::calibration::CalibrationError::History(e)) => return Err(e),
            }
        }
        None => None,
    };
    let report = DryRunReport::of(&plan, &options, calibration);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    print!("{}", text::render(&report, plan.pool.max_concurrency));
    if let Some(c) = report.calibration.as_ref().filter(|_| args.history_stats) {
        print!("{}", text::history_stats(c));
    }
    Ok(0)
}
