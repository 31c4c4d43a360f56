//! `spool-bench simulate` and `spool-bench quality-suite`, for `scripts/bench-sim.sh`: timing
//! simulations of a generated pipeline, the DAG for the Python reference, and the
//! schedule-quality suite.

use serde::Serialize;
use spool_core::dag::Plan;
use spool_core::dry_run::SimOptions;
use spool_core::gen::{quality_suite, LayeredDag};
use spool_core::sched::Policy;
use spool_core::sim::{simulate, PoolSpec, SimSetup};
use spool_server::simulate::MAX_GENERATED_NOTEBOOKS;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Most timing runs of one simulation.
const MAX_BENCH_REPEAT: u32 = 1_000;
/// Most DAGs in the quality suite.
const MAX_SUITE: u32 = 10_000;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Notebooks of the random layered pipeline (seeded by --seed).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_GENERATED_NOTEBOOKS))]
    pub generate: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// critical-path or fifo.
    #[arg(long, default_value = "critical-path", value_parser = parse_policy)]
    pub policy: Policy,
    /// Seconds the pool takes to start (default: core's).
    #[arg(long)]
    pub node_startup_secs: Option<f64>,
    /// Time this many simulations; print the timings as JSON.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BENCH_REPEAT)))]
    pub repeat: u32,
    /// Also write the DAG as JSON for scripts/bench_sim_reference.py.
    #[arg(long)]
    pub export_dag: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct QualityArgs {
    /// How many generated DAGs.
    #[arg(value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SUITE)))]
    pub count: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s).ok_or_else(|| format!("expected one of {}", Policy::NAMES.join(", ")))
}

pub fn run_simulate(args: SimulateArgs) -> anyhow::Result<u8> {
    let options = SimOptions {
        policy: args.policy,
        seed: args.seed,
        node_startup_secs: args.node_startup_secs,
        ..SimOptions::default()
    };
    if let Some(e) = options.validate().first() {
        anyhow::bail!("--{}: {}", e.field.replace('_', "-"), e.message);
    }
    let plan = LayeredDag::benchmark(args.generate as usize, args.seed).generate();
    let setup = options.setup(&plan, None);
    if let Some(path) = &args.export_dag {
        export_dag(&plan, &setup.pool, path)?;
    }
    println!(
        "{}",
        serde_json::to_string(&bench(&plan, &setup, args.repeat))?
    );
    Ok(0)
}

pub fn run_quality(args: QualityArgs) -> anyhow::Result<u8> {
    print!("{}", quality_table(args.count as usize, args.seed));
    Ok(0)
}

/// The DAG in the reference script's format: tasks in order, each with its dependencies by
/// index, its duration, and the thread count a Genie-style runner would use (the capacity,
/// or `max_concurrency` when lower).
fn export_dag(plan: &Plan, pool: &PoolSpec, path: &Path) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Dag<'a> {
        threads: u32,
        tasks: Vec<DagTask<'a>>,
    }
    #[derive(Serialize)]
    struct DagTask<'a> {
        id: &'a str,
        secs: f64,
        deps: Vec<usize>,
    }
    let threads = pool
        .max_concurrency
        .map_or(pool.capacity_slots(), |c| c.min(pool.capacity_slots()));
    let dag = Dag {
        threads,
        tasks: plan
            .tasks
            .iter()
            .zip(&plan.deps)
            .map(|(t, deps)| DagTask {
                id: &t.id,
                secs: t.estimate_secs(),
                deps: deps.iter().map(|&(d, _)| d).collect(),
            })
            .collect(),
    };
    let file = std::fs::File::create(path)
        .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))?;
    serde_json::to_writer(std::io::BufWriter::new(file), &dag)?;
    Ok(())
}

#[derive(Serialize)]
struct BenchResult {
    notebooks: usize,
    edges: usize,
    policy: &'static str,
    makespan_secs: f64,
    lower_bound_secs: f64,
    runs: u32,
    best_ms: f64,
    median_ms: f64,
    /// Peak resident memory of the whole process (Linux), in KiB.
    peak_rss_kib: Option<u64>,
}

fn bench(plan: &Plan, setup: &SimSetup, repeat: u32) -> BenchResult {
    let mut times = Vec::with_capacity(repeat as usize);
    let mut last = None;
    for _ in 0..repeat {
        let t = Instant::now();
        let r = simulate(plan, setup);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        last = Some(r);
    }
    times.sort_by(f64::total_cmp);
    let (makespan_secs, lower_bound_secs) =
        last.map_or((0.0, 0.0), |r| (r.makespan_secs, r.lower_bound.secs));
    BenchResult {
        notebooks: plan.tasks.len(),
        edges: plan.deps.iter().map(Vec::len).sum(),
        policy: setup.policy.name(),
        makespan_secs,
        lower_bound_secs,
        runs: repeat,
        best_ms: times.first().copied().unwrap_or(0.0),
        median_ms: times.get(times.len() / 2).copied().unwrap_or(0.0),
        peak_rss_kib: peak_rss_kib(),
    }
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Mean makespan over lower bound for both policies on the generated suite, by workload.
fn quality_table(count: usize, seed: u64) -> String {
    struct Row {
        sigma: f64,
        wide: bool,
        cp: f64,
        fifo: f64,
    }
    let rows: Vec<Row> = quality_suite(count, seed)
        .into_iter()
        .map(|dag| {
            let plan = dag.generate();
            let quality = |policy| {
                let mut setup = SimSetup::of_plan(&plan);
                setup.pool.node_startup_secs = 0.0;
                setup.policy = policy;
                let r = simulate(&plan, &setup);
                if r.lower_bound.secs > 0.0 {
                    r.makespan_secs / r.lower_bound.secs
                } else {
                    1.0
                }
            };
            Row {
                sigma: dag.sigma,
                wide: dag.wide_share > 0.0,
                cp: quality(Policy::CriticalPath),
                fifo: quality(Policy::Fifo),
            }
        })
        .collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "schedule quality on {count} generated DAGs (mean makespan / lower bound; 1.000 is optimal)"
    );
    let _ = writeln!(
        s,
        "{:<34} {:>4} {:>14} {:>8} {:>9} {:>9} {:>9}",
        "workload", "DAGs", "critical-path", "fifo", "cp worst", "cp better", "cp worse"
    );
    type Keep = fn(&Row) -> bool;
    let groups: [(&str, Keep); 6] = [
        ("all", |_| true),
        ("skewed durations (sigma 1.5)", |r| r.sigma >= 1.5),
        ("moderate durations (sigma 0.8)", |r| {
            (0.5..1.5).contains(&r.sigma)
        }),
        ("even durations (sigma 0.3)", |r| r.sigma < 0.5),
        ("one-slot notebooks only", |r| !r.wide),
        ("25 % wide notebooks (2-4 slots)", |r| r.wide),
    ];
    for (name, keep) in groups {
        let group: Vec<&Row> = rows.iter().filter(|r| keep(r)).collect();
        if group.is_empty() {
            continue;
        }
        let n = group.len() as f64;
        let mean = |f: &dyn Fn(&Row) -> f64| group.iter().map(|r| f(r)).sum::<f64>() / n;
        let worst = group.iter().map(|r| r.cp).fold(0.0, f64::max);
        let better = group.iter().filter(|r| r.cp < r.fifo - 1e-9).count();
        let worse = group.iter().filter(|r| r.cp > r.fifo + 1e-9).count();
        let _ = writeln!(
            s,
            "{:<34} {:>4} {:>14.3} {:>8.3} {:>9.3} {:>9} {:>9}",
            name,
            group.len(),
            mean(&|r| r.cp),
            mean(&|r| r.fifo),
            worst,
            better,
            worse
        );
    }
    s
}
