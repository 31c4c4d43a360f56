//! `spool simulate`: dry-runs a pipeline on a described pool and compares it with one pool per
//! notebook. Hidden options serve `scripts/bench-sim.sh`: timing runs, exporting the DAG for
//! the Python reference, and the schedule-quality suite.

use crate::plan_cmd::load_file;
use serde::Serialize;
use spool_core::dag::Plan;
use spool_core::gen::{quality_suite, LayeredDag};
use spool_core::sched::{Policy, RunOutcome};
use spool_core::sim::{
    baseline, cheapest_within, simulate, sweep, AttemptOutcome, BaselineReport, Durations,
    PoolSpec, SimReport, SimSetup, SweepPoint, MAX_SWEEP_EXECUTORS,
};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Largest generated pipeline.
const MAX_GENERATED_NOTEBOOKS: usize = 1_000_000;
/// Most timing runs of one simulation.
const MAX_BENCH_REPEAT: u32 = 1_000;
/// Most DAGs in the quality suite.
const MAX_SUITE: usize = 10_000;
/// Rows of the text Gantt chart; the JSON has them all.
const GANTT_ROWS: usize = 40;
const GANTT_WIDTH: usize = 60;

#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file (TOML); not needed with --generate.
    #[arg(required_unless_present_any = ["generate", "quality_suite"])]
    pub file: Option<PathBuf>,
    /// Executors in the pool (default: the pipeline's [pool]).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub executors: Option<u32>,
    /// Cores per executor (default: the pipeline's [pool]).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_024))]
    pub executor_cores: Option<u32>,
    /// Order of ready notebooks: critical-path (longest remaining path first) or fifo.
    #[arg(long, default_value = "critical-path", value_parser = parse_policy)]
    pub policy: Policy,
    /// Seed of the random durations and failures (with --variation or --failure-rate).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Spread of a random log-normal factor (mean 1) on each estimate; 0 runs estimates exactly.
    #[arg(long, default_value_t = 0.0, value_parser = parse_spread)]
    pub variation: f64,
    /// Chance that an attempt fails, to see retries.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub failure_rate: f64,
    /// Seconds a pool takes to start.
    #[arg(long, default_value_t = PoolSpec::DEFAULT_NODE_STARTUP_SECS, value_parser = parse_secs)]
    pub node_startup_secs: f64,
    /// Price of one node for one hour (driver and executors are one node each).
    #[arg(long, default_value_t = PoolSpec::DEFAULT_PRICE_PER_NODE_HOUR, value_parser = parse_secs)]
    pub price_per_node_hour: f64,
    /// Nodes each notebook's own pool holds in the baseline (driver plus executors).
    #[arg(long, default_value_t = BaselineReport::DEFAULT_MIN_NODES,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub baseline_min_nodes: u32,
    /// Also simulate pools of 1 to N executors.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SWEEP_EXECUTORS)))]
    pub sweep: Option<u32>,
    /// With --sweep: pick the cheapest pool that finishes within this many seconds.
    #[arg(long, requires = "sweep", value_parser = parse_secs)]
    pub deadline_secs: Option<f64>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Simulate a random layered pipeline of N notebooks (seeded by --seed) instead of FILE.
    #[arg(long, conflicts_with = "file",
          value_parser = clap::value_parser!(u64).range(1..=MAX_GENERATED_NOTEBOOKS as u64))]
    pub generate: Option<u64>,
    /// Write the DAG as JSON for scripts/bench_sim_reference.py.
    #[arg(long, hide = true)]
    pub export_dag: Option<PathBuf>,
    /// Time N simulations and print the timings as JSON.
    #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_BENCH_REPEAT)))]
    pub bench_repeat: Option<u32>,
    /// Print the schedule-quality table over N generated DAGs.
    #[arg(long, hide = true, conflicts_with = "file")]
    pub quality_suite: Option<usize>,
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s).ok_or_else(|| format!("expected one of {}", Policy::NAMES.join(", ")))
}

fn parse_number(s: &str, what: &str, ok: impl Fn(f64) -> bool) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && ok(v) => Ok(v),
        _ => Err(format!("expected {what}, found `{s}`")),
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    parse_number(s, "a number of 0 or more", |v| v >= 0.0)
}

fn parse_spread(s: &str) -> Result<f64, String> {
    parse_number(s, "a spread between 0 and 5", |v| (0.0..=5.0).contains(&v))
}

fn parse_probability(s: &str) -> Result<f64, String> {
    parse_number(s, "a probability between 0 and 1", |v| {
        (0.0..=1.0).contains(&v)
    })
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if let Some(count) = args.quality_suite {
        anyhow::ensure!(
            (1..=MAX_SUITE).contains(&count),
            "--quality-suite takes 1 to {MAX_SUITE} DAGs"
        );
        print!("{}", quality_table(count, args.seed));
        return Ok(0);
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
    let options = SimOptions::of_args(&args);
    let setup = options.setup(&plan);
    if let Some(path) = &args.export_dag {
        export_dag(&plan, &setup.pool, path)?;
    }
    if let Some(repeat) = args.bench_repeat {
        println!("{}", serde_json::to_string(&bench(&plan, &setup, repeat))?);
        return Ok(0);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&options.report_json(&plan))?
        );
        return Ok(0);
    }
    let report = simulate(&plan, &setup);
    let base = baseline(&plan, &setup, options.baseline_min_nodes);
    let points = options.sweep.map(|n| sweep(&plan, &setup, n));
    let best = points
        .as_deref()
        .zip(options.deadline_secs)
        .and_then(|(p, d)| cheapest_within(p, d));
    {
        print!(
            "{}",
            render(
                &plan,
                &setup,
                &report,
                &base,
                points.as_deref(),
                options.deadline_secs,
                best
            )
        );
    }
    Ok(0)
}

/// What a dry run is asked for: the CLI's flags, or the body of
/// `POST /api/pipelines/{file}/simulate` (every field optional there).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimOptions {
    pub executors: Option<u32>,
    pub executor_cores: Option<u32>,
    pub policy: Option<String>,
    pub seed: u64,
    pub variation: f64,
    pub failure_rate: f64,
    pub node_startup_secs: f64,
    pub price_per_node_hour: f64,
    pub baseline_min_nodes: u32,
    pub sweep: Option<u32>,
    pub deadline_secs: Option<f64>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            executors: None,
            executor_cores: None,
            policy: None,
            seed: 0,
            variation: 0.0,
            failure_rate: 0.0,
            node_startup_secs: PoolSpec::DEFAULT_NODE_STARTUP_SECS,
            price_per_node_hour: PoolSpec::DEFAULT_PRICE_PER_NODE_HOUR,
            baseline_min_nodes: BaselineReport::DEFAULT_MIN_NODES,
            sweep: None,
            deadline_secs: None,
        }
    }
}

impl SimOptions {
    fn of_args(args: &Args) -> Self {
        SimOptions {
            executors: args.executors,
            executor_cores: args.executor_cores,
            policy: Some(args.policy.name().to_string()),
            seed: args.seed,
            variation: args.variation,
            failure_rate: args.failure_rate,
            node_startup_secs: args.node_startup_secs,
            price_per_node_hour: args.price_per_node_hour,
            baseline_min_nodes: args.baseline_min_nodes,
            sweep: args.sweep,
            deadline_secs: args.deadline_secs,
        }
    }

    /// Checks the ranges the CLI's parsers enforce, for options that come from elsewhere.
    pub fn check(&self) -> Result<(), String> {
        let positive = |v: Option<u32>, max: u32, what: &str| match v {
            Some(n) if n == 0 || n > max => Err(format!("`{what}` must be 1 to {max}")),
            _ => Ok(()),
        };
        positive(self.executors, 100_000, "executors")?;
        positive(self.executor_cores, 1_024, "executor_cores")?;
        positive(self.sweep, MAX_SWEEP_EXECUTORS, "sweep")?;
        positive(Some(self.baseline_min_nodes), 10_000, "baseline_min_nodes")?;
        if let Some(p) = &self.policy {
            parse_policy(p).map_err(|e| format!("`policy`: {e}"))?;
        }
        for (v, what) in [
            (self.node_startup_secs, "node_startup_secs"),
            (self.price_per_node_hour, "price_per_node_hour"),
            (self.deadline_secs.unwrap_or(0.0), "deadline_secs"),
        ] {
            parse_secs(&v.to_string()).map_err(|e| format!("`{what}`: {e}"))?;
        }
        parse_spread(&self.variation.to_string()).map_err(|e| format!("`variation`: {e}"))?;
        parse_probability(&self.failure_rate.to_string())
            .map_err(|e| format!("`failure_rate`: {e}"))?;
        Ok(())
    }

    fn setup(&self, plan: &Plan) -> SimSetup {
        let mut setup = SimSetup::of_plan(plan);
        if let Some(e) = self.executors {
            setup.pool.executors = e;
        }
        if let Some(c) = self.executor_cores {
            setup.pool.executor_cores = c;
        }
        setup.pool.node_startup_secs = self.node_startup_secs;
        setup.pool.price_per_node_hour = self.price_per_node_hour;
        setup.policy = self
            .policy
            .as_deref()
            .and_then(Policy::parse)
            .unwrap_or_default();
        setup.durations = Durations {
            seed: self.seed,
            variation: self.variation,
            failure_probability: self.failure_rate,
        };
        setup
    }

    /// The simulation, the baseline and the sweep as `spool simulate --json` prints them.
    pub fn report_json(&self, plan: &Plan) -> serde_json::Value {
        let setup = self.setup(plan);
        let report = simulate(plan, &setup);
        let base = baseline(plan, &setup, self.baseline_min_nodes);
        let points = self.sweep.map(|n| sweep(plan, &setup, n));
        let best = points
            .as_deref()
            .zip(self.deadline_secs)
            .and_then(|(p, d)| cheapest_within(p, d));
        let out = JsonReport::of(plan, &setup, &report, &base, points.as_deref(), best);
        serde_json::to_value(out).unwrap_or_default()
    }
}

fn outcome_name(o: RunOutcome) -> &'static str {
    match o {
        RunOutcome::Succeeded => "succeeded",
        RunOutcome::Failed => "failed",
        RunOutcome::Cancelled => "cancelled",
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    pipeline: &'a str,
    policy: &'static str,
    executors: u32,
    executor_cores: u32,
    capacity_slots: u32,
    outcome: &'static str,
    makespan_secs: f64,
    lower_bound_secs: f64,
    lower_bound: JsonBound,
    utilization: f64,
    node_hours: f64,
    cost: f64,
    tasks: Vec<JsonAttempt<'a>>,
    utilization_series: Vec<JsonBusy>,
    baseline: JsonBaseline,
    #[serde(skip_serializing_if = "Option::is_none")]
    sweep: Option<Vec<JsonSweep>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cheapest_within_deadline: Option<JsonSweep>,
}

#[derive(Serialize)]
struct JsonBound {
    startup_secs: f64,
    critical_path_secs: f64,
    work_secs: f64,
    concurrency_secs: f64,
}

#[derive(Serialize)]
struct JsonAttempt<'a> {
    id: &'a str,
    attempt: u32,
    start_secs: f64,
    end_secs: f64,
    outcome: &'static str,
    slots: u32,
}

#[derive(Serialize)]
struct JsonBusy {
    at_secs: f64,
    busy_slots: u64,
}

#[derive(Serialize)]
struct JsonBaseline {
    min_nodes: u32,
    makespan_secs: f64,
    node_hours: f64,
    cost: f64,
    /// Shared pool over baseline.
    makespan_ratio: f64,
    cost_ratio: f64,
}

#[derive(Serialize)]
struct JsonSweep {
    executors: u32,
    makespan_secs: f64,
    utilization: f64,
    node_hours: f64,
    cost: f64,
}

impl From<SweepPoint> for JsonSweep {
    fn from(p: SweepPoint) -> Self {
        JsonSweep {
            executors: p.executors,
            makespan_secs: p.makespan_secs,
            utilization: p.utilization,
            node_hours: p.node_hours,
            cost: p.cost,
        }
    }
}

/// `a / b`, or 0 when `b` is 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

impl<'a> JsonReport<'a> {
    fn of(
        plan: &'a Plan,
        setup: &SimSetup,
        r: &SimReport,
        b: &BaselineReport,
        points: Option<&[SweepPoint]>,
        best: Option<SweepPoint>,
    ) -> Self {
        JsonReport {
            pipeline: &plan.name,
            policy: r.policy.name(),
            executors: setup.pool.executors,
            executor_cores: setup.pool.executor_cores,
            capacity_slots: r.capacity_slots,
            outcome: outcome_name(r.run_outcome),
            makespan_secs: r.makespan_secs,
            lower_bound_secs: r.lower_bound.secs,
            lower_bound: JsonBound {
                startup_secs: r.lower_bound.startup_secs,
                critical_path_secs: r.lower_bound.critical_path_secs,
                work_secs: r.lower_bound.work_secs,
                concurrency_secs: r.lower_bound.concurrency_secs,
            },
            utilization: r.utilization,
            node_hours: r.node_hours,
            cost: r.cost,
            tasks: r
                .attempts
                .iter()
                .map(|a| JsonAttempt {
                    id: &plan.tasks[a.task].id,
                    attempt: a.attempt,
                    start_secs: a.start_secs,
                    end_secs: a.end_secs,
                    outcome: a.outcome.name(),
                    slots: a.slots,
                })
                .collect(),
            utilization_series: r
                .utilization_series
                .iter()
                .map(|p| JsonBusy {
                    at_secs: p.at_secs,
                    busy_slots: p.busy_slots,
                })
                .collect(),
            baseline: JsonBaseline {
                min_nodes: b.min_nodes,
                makespan_secs: b.makespan_secs,
                node_hours: b.node_hours,
                cost: b.cost,
                makespan_ratio: ratio(r.makespan_secs, b.makespan_secs),
                cost_ratio: ratio(r.cost, b.cost),
            },
            sweep: points.map(|p| p.iter().copied().map(JsonSweep::from).collect()),
            cheapest_within_deadline: best.map(JsonSweep::from),
        }
    }
}

/// `1h02m05s`, `3m07s`, `42.5s`.
fn duration(secs: f64) -> String {
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let s = secs.round() as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else {
        format!("{m}m{s:02}s")
    }
}

fn render(
    plan: &Plan,
    setup: &SimSetup,
    r: &SimReport,
    b: &BaselineReport,
    points: Option<&[SweepPoint]>,
    deadline: Option<f64>,
    best: Option<SweepPoint>,
) -> String {
    let mut s = String::new();
    let pool = &setup.pool;
    let lb = &r.lower_bound;
    let _ = writeln!(
        s,
        "pipeline {}: {} tasks on {} executors × {} cores = {} slots, policy {}",
        plan.name,
        plan.tasks.len(),
        pool.executors,
        pool.executor_cores,
        r.capacity_slots,
        r.policy.name()
    );
    let _ = writeln!(
        s,
        "makespan     {}  (lower bound {}: start-up {}, then the longest of critical path {}, \
         work/capacity {}{})",
        duration(r.makespan_secs),
        duration(lb.secs),
        duration(lb.startup_secs),
        duration(lb.critical_path_secs),
        duration(lb.work_secs),
        pool.max_concurrency
            .map(|c| format!(", attempts/{c} at once {}", duration(lb.concurrency_secs)))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "utilisation  {:.1} %", 100.0 * r.utilization);
    let _ = writeln!(
        s,
        "node-hours   {:.2} ({} nodes)   cost {:.2} at {:.2} per node-hour",
        r.node_hours,
        pool.nodes(),
        r.cost,
        pool.price_per_node_hour
    );
    let counts = count_finals(r);
    let _ = writeln!(s, "outcome      {} ({counts})", outcome_name(r.run_outcome));
    let _ = writeln!(
        s,
        "baseline     one pool per notebook (at least {} nodes, {} start-up each): makespan {}, \
         node-hours {:.2}, cost {:.2}",
        b.min_nodes,
        duration(pool.node_startup_secs),
        duration(b.makespan_secs),
        b.node_hours,
        b.cost
    );
    let _ = writeln!(
        s,
        "shared pool  {:.2}× the baseline's time, {:.2}× its cost",
        ratio(r.makespan_secs, b.makespan_secs),
        ratio(r.cost, b.cost)
    );
    s.push_str(&gantt(plan, r, pool.node_startup_secs));
    if let Some(points) = points {
        let _ = writeln!(s, "\npool-size sweep:");
        let _ = writeln!(
            s,
            "  executors  makespan     utilisation  node-hours      cost"
        );
        for p in points {
            let mark = if best.is_some_and(|b| b.executors == p.executors) {
                "  <- cheapest within the deadline"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {:>9}  {:>10}  {:>10.1} %  {:>10.2}  {:>8.2}{mark}",
                p.executors,
                duration(p.makespan_secs),
                100.0 * p.utilization,
                p.node_hours,
                p.cost
            );
        }
        if let (Some(d), None) = (deadline, best) {
            let _ = writeln!(s, "  no pool size finishes within {}", duration(d));
        }
    }
    s
}

fn count_finals(r: &SimReport) -> String {
    use spool_core::sched::Final;
    let names = [
        (Final::Succeeded, "succeeded"),
        (Final::Failed, "failed"),
        (Final::Skipped, "skipped"),
        (Final::Cancelled, "cancelled"),
    ];
    let parts: Vec<String> = names
        .iter()
        .filter_map(|(f, name)| {
            let n = r.final_states.iter().filter(|x| *x == f).count();
            (n > 0).then(|| format!("{n} {name}"))
        })
        .collect();
    format!("{} of {} tasks", parts.join(", "), r.final_states.len())
}

/// One row per notebook, in order of first start: `~` pool start-up, `#` a succeeded attempt,
/// `x` a failed one, `T` timed out, `c` cancelled, `-` skipped.
fn gantt(plan: &Plan, r: &SimReport, startup: f64) -> String {
    let mut s = String::new();
    let end = r.makespan_secs;
    if end <= 0.0 || r.attempts.is_empty() {
        return s;
    }
    let col = |t: f64| ((t / end * GANTT_WIDTH as f64) as usize).min(GANTT_WIDTH - 1);
    let mut order: Vec<usize> = Vec::new();
    let mut rows: Vec<Vec<u8>> = Vec::new();
    let mut row_of = vec![usize::MAX; plan.tasks.len()];
    for a in &r.attempts {
        if row_of[a.task] == usize::MAX {
            row_of[a.task] = rows.len();
            order.push(a.task);
            rows.push(vec![b' '; GANTT_WIDTH]);
        }
        let mark = match a.outcome {
            AttemptOutcome::Succeeded => b'#',
            AttemptOutcome::Failed => b'x',
            AttemptOutcome::TimedOut => b'T',
            AttemptOutcome::Cancelled => b'c',
            AttemptOutcome::Skipped => b'-',
        };
        let row = &mut rows[row_of[a.task]];
        for c in &mut row[col(a.start_secs)..=col(a.end_secs.max(a.start_secs))] {
            *c = mark;
        }
    }
    let name_width = order
        .iter()
        .take(GANTT_ROWS)
        .map(|&t| plan.tasks[t].id.chars().count())
        .max()
        .unwrap_or(0)
        .clamp("(start-up)".len(), 32);
    let _ = writeln!(
        s,
        "\ntimeline (0 to {}, one column ≈ {}):",
        duration(end),
        duration(end / GANTT_WIDTH as f64)
    );
    if startup > 0.0 {
        let mut row = vec![b' '; GANTT_WIDTH];
        for c in &mut row[..=col(startup)] {
            *c = b'~';
        }
        let _ = writeln!(
            s,
            "  {:<name_width$} |{}|",
            "(start-up)",
            String::from_utf8_lossy(&row)
        );
    }
    for (&t, row) in order.iter().zip(&rows).take(GANTT_ROWS) {
        let id: String = plan.tasks[t].id.chars().take(name_width).collect();
        let _ = writeln!(s, "  {id:<name_width$} |{}|", String::from_utf8_lossy(row));
    }
    if order.len() > GANTT_ROWS {
        let _ = writeln!(
            s,
            "  ... {} more notebooks (--json lists them all)",
            order.len() - GANTT_ROWS
        );
    }
    s
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
                ratio(r.makespan_secs, r.lower_bound.secs)
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

#[cfg(test)]
mod tests {
    use super::*;
    use spool_core::dag::load_text;
    use spool_core::source::MemorySources;

    /// a (100 s) then b (50 s) on the default pool (2 executors × 4 cores), 180 s start-up.
    fn chain() -> (Plan, SimSetup) {
        let text = "name = \"chain\"\n\
            [[notebook]]\nid = \"a\"\npath = \"a.py\"\nestimate_secs = 100\n\
            [[notebook]]\nid = \"b\"\npath = \"b.py\"\nestimate_secs = 50\ndepends_on = [\"a\"]\n";
        let sources = MemorySources::default().with("a.py", "").with("b.py", "");
        let plan = load_text("main.toml", text, &sources)
            .plan
            .unwrap_or_else(|| panic!("fixture does not load"));
        let setup = SimSetup::of_plan(&plan);
        (plan, setup)
    }

    #[test]
    fn json_report_has_the_documented_fields_and_figures() {
        let (plan, setup) = chain();
        let r = simulate(&plan, &setup);
        let b = baseline(&plan, &setup, BaselineReport::DEFAULT_MIN_NODES);
        let json = serde_json::to_value(JsonReport::of(&plan, &setup, &r, &b, None, None))
            .unwrap_or_default();
        let want = serde_json::json!({
            "makespan_secs": 330.0,
            "lower_bound_secs": 330.0,
            "node_hours": 3.0 * 330.0 / 3600.0,
            "cost": 3.0 * 330.0 / 3600.0,
            "outcome": "succeeded",
            "tasks": [
                {"id": "a", "attempt": 1, "start_secs": 180.0, "end_secs": 280.0,
                 "outcome": "succeeded", "slots": 1},
                {"id": "b", "attempt": 1, "start_secs": 280.0, "end_secs": 330.0,
                 "outcome": "succeeded", "slots": 1},
            ],
            "utilization_series": [
                {"at_secs": 0.0, "busy_slots": 0},
                {"at_secs": 180.0, "busy_slots": 1},
                {"at_secs": 330.0, "busy_slots": 0},
            ],
        });
        for (key, value) in want.as_object().into_iter().flatten() {
            assert_eq!(&json[key], value, "{key}");
        }
        let utilization = json["utilization"].as_f64().unwrap_or(-1.0);
        assert!((utilization - 150.0 / (8.0 * 330.0)).abs() < 1e-12);
        // Each notebook in its own 3-node pool, paying start-up: 280 s + 230 s of 3 nodes.
        assert_eq!(
            json["baseline"]["makespan_secs"],
            180.0 + 100.0 + 180.0 + 50.0
        );
        let node_hours = json["baseline"]["node_hours"].as_f64().unwrap_or(-1.0);
        assert!((node_hours - 3.0 * 510.0 / 3600.0).abs() < 1e-12);
        assert!(json["baseline"]["cost"].is_number());
    }

    #[test]
    fn text_gantt_draws_start_up_and_attempts() {
        let (plan, setup) = chain();
        let r = simulate(&plan, &setup);
        let chart = gantt(&plan, &r, setup.pool.node_startup_secs);
        let lines: Vec<&str> = chart.lines().collect();
        // 330 s over 60 columns: start-up to column 32, a from 32 to 50, b from 50 to the end.
        let bar = |from: usize, to: usize, c: char| -> String {
            (0..GANTT_WIDTH)
                .map(|i| if (from..=to).contains(&i) { c } else { ' ' })
                .collect()
        };
        assert_eq!(lines[1], "timeline (0 to 5m30s, one column ≈ 5.5s):");
        assert_eq!(lines[2], format!("  (start-up) |{}|", bar(0, 32, '~')));
        assert_eq!(lines[3], format!("  a          |{}|", bar(32, 50, '#')));
        assert_eq!(lines[4], format!("  b          |{}|", bar(50, 59, '#')));
    }
}
