//! `spool validate` and `spool plan`.

use crate::fs_sources::DiskSources;
use spool_core::dag::{load_with_notebooks, Loaded, Plan};
use spool_core::diag::{escape_controls_in_lines, has_errors, Diagnostic};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The pipeline file (TOML).
    pub file: PathBuf,
    /// Print the diagnostics as a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// The pipeline file (TOML).
    pub file: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Loads a pipeline from disk, its notebooks parsed too; diagnostics name files as the user
/// wrote the path.
pub fn load_file(file: &Path) -> anyhow::Result<Loaded> {
    let (sources, name) = DiskSources::for_file(file)?;
    let mut loaded = load_with_notebooks(&name, &sources);
    let shown_dir = file.parent().unwrap_or(Path::new(""));
    for d in &mut loaded.diagnostics {
        d.file = shown_dir.join(&d.file).display().to_string();
    }
    Ok(loaded)
}

pub fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<u8> {
    let loaded = load_file(&args.file)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&loaded.diagnostics)?);
    } else {
        print_diagnostics(&loaded.diagnostics);
        if let Some(plan) = &loaded.plan {
            println!(
                "{}: ok, {} notebooks, {} inactive",
                args.file.display(),
                plan.tasks
                    .iter()
                    .filter(|t| t.kind == spool_core::dag::TaskKind::Notebook)
                    .count(),
                plan.inactive.len()
            );
        }
    }
    Ok(u8::from(has_errors(&loaded.diagnostics)))
}

pub fn plan(args: PlanArgs) -> anyhow::Result<u8> {
    let loaded = load_file(&args.file)?;
    let Some(plan) = loaded.plan else {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&loaded.diagnostics)?);
        } else {
            print_diagnostics(&loaded.diagnostics);
        }
        return Ok(1);
    };
    if !args.json {
        print_diagnostics(&loaded.diagnostics);
    }
    let summary = PlanSummary::of(&plan);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", escape_controls_in_lines(&summary.render()));
    }
    Ok(0)
}

/// What `spool plan` shows, also its JSON form.
#[derive(serde::Serialize)]
struct PlanSummary<'p> {
    name: &'p str,
    capacity_slots: u32,
    levels: Vec<Vec<&'p str>>,
    critical_path: Vec<&'p str>,
    critical_path_secs: f64,
    total_work_slot_secs: f64,
    inactive: &'p [spool_core::dag::InactiveStep],
    plan: &'p Plan,
}

impl<'p> PlanSummary<'p> {
    fn of(plan: &'p Plan) -> Self {
        let levels_of = plan.levels();
        let depth = levels_of.iter().max().map_or(0, |m| m + 1);
        let mut levels = vec![Vec::new(); depth];
        for (t, &l) in levels_of.iter().enumerate() {
            levels[l].push(plan.tasks[t].id.as_str());
        }
        let (path, secs) = plan.critical_path();
        PlanSummary {
            name: &plan.name,
            capacity_slots: plan.pool.capacity(),
            levels,
            critical_path: path.iter().map(|&t| plan.tasks[t].id.as_str()).collect(),
            critical_path_secs: secs,
            total_work_slot_secs: plan.total_work_slot_secs(),
            inactive: &plan.inactive,
            plan,
        }
    }

    fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let p = self.plan;
        let _ = writeln!(
            s,
            "pipeline {}: {} tasks on {} executors × {} cores = {} slots{}",
            self.name,
            p.tasks.len(),
            p.pool.executors,
            p.pool.executor_cores,
            self.capacity_slots,
            p.pool
                .max_concurrency
                .map(|c| format!(", at most {c} at once"))
                .unwrap_or_default()
        );
        for (i, level) in self.levels.iter().enumerate() {
            let _ = writeln!(s, "  level {i}: {}", level.join(", "));
        }
        let _ = writeln!(
            s,
            "critical path ({:.0} s): {}",
            self.critical_path_secs,
            self.critical_path.join(" -> ")
        );
        let _ = writeln!(
            s,
            "total work: {:.0} slot-seconds",
            self.total_work_slot_secs
        );
        for step in self.inactive {
            let bridges: Vec<String> = step
                .bridged
                .iter()
                .map(|e| format!("{} -> {} (on {})", e.from, e.to, e.on.name()))
                .collect();
            let what = match step.why {
                spool_core::dag::LeftOut::Inactive => "inactive",
                spool_core::dag::LeftOut::NeverRuns => "never runs (its conditions cannot hold)",
            };
            let _ = writeln!(
                s,
                "{what}: {}{}",
                step.id,
                if bridges.is_empty() {
                    String::new()
                } else {
                    format!(", bridged: {}", bridges.join(", "))
                }
            );
        }
        s
    }
}
