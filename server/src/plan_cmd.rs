//! `spool validate` and `spool plan`.

use crate::fs_sources::DiskSources;
use crate::history::History;
use crate::run_params;
use spool_core::dag::{load_with_notebooks, Loaded, Plan};
use spool_core::diag::{escape_controls_in_lines, has_errors, Diagnostic};
use spool_core::repair::Outline;
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
    /// Also show what resuming this run would keep, rebuild (session state in a new session)
    /// and run again, as `spool run --resume` decides it.
    #[arg(long, value_name = "RUN_ID")]
    pub resume: Option<i64>,
    /// With --resume: a task or sub-pipeline to run again with everything downstream (repair).
    #[arg(long, value_name = "TASK", requires = "resume")]
    pub rerun: Vec<String>,
    /// With --resume: the long-lived Livy session the resume would use (it still holds the
    /// kept notebooks' temp views: nothing is rebuilt).
    #[arg(long, value_name = "NAME", requires = "resume")]
    pub session: Option<String>,
    /// With --resume: where run history is kept.
    #[arg(long, default_value = ".spool")]
    pub data_dir: PathBuf,
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
    let mut summary = PlanSummary::of(&plan);
    if let Some(id) = args.resume {
        let (_, name) = DiskSources::for_file(&args.file)?;
        let history = History::open(&args.data_dir)?;
        match ResumeOutline::of(
            &history,
            id,
            &name,
            &plan,
            &args.rerun,
            args.session.is_some(),
        )? {
            Ok(outline) => summary.resume = Some(outline),
            Err(refused) => {
                eprintln!("error: run {id} cannot be resumed: {refused}");
                return Ok(1);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", escape_controls_in_lines(&summary.render()));
    }
    Ok(0)
}

/// What a resume of a run keeps, rebuilds and runs again.
#[derive(serde::Serialize)]
struct ResumeOutline {
    run: i64,
    #[serde(flatten)]
    outline: Outline,
}

impl ResumeOutline {
    /// `Ok(Err(why))` when the resume would be refused.
    fn of(
        history: &History,
        id: i64,
        file: &str,
        plan: &Plan,
        rerun: &[String],
        named_session: bool,
    ) -> anyhow::Result<Result<Self, String>> {
        let Some(old) = history.run(id)? else {
            return Ok(Err(format!("no run {id} in this history")));
        };
        let old_plan = run_params::started_plan(history, id)?;
        let resumed =
            match run_params::resume(&old, &old_plan, file, plan, &Default::default(), rerun) {
                Ok(r) => r,
                Err(refused) => return Ok(Err(refused)),
            };
        let state = spool_core::repair::session_state(&old);
        Ok(Ok(ResumeOutline {
            run: id,
            outline: Outline::of(plan, &resumed.previous, &state, named_session),
        }))
    }

    fn render(&self, s: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(s, "resume of run {}:", self.run);
        let none = || "(none)".to_string();
        let list = |ids: &[String]| {
            if ids.is_empty() {
                none()
            } else {
                ids.join(", ")
            }
        };
        let _ = writeln!(s, "  keep:      {}", list(&self.outline.keep));
        let rebuilt = self.outline.rebuild_described();
        let _ = writeln!(s, "  rebuild:   {}", list(&rebuilt));
        let _ = writeln!(s, "  run again: {}", list(&self.outline.run_again));
    }
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
    #[serde(skip_serializing_if = "Option::is_none")]
    resume: Option<ResumeOutline>,
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
            resume: None,
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
        for task in &p.tasks {
            for c in &task.conditions {
                let _ = writeln!(
                    s,
                    "if: {} runs only when {} (on its dependency on {})",
                    task.id, c.condition.text, c.dependency
                );
            }
        }
        for task in &p.tasks {
            let Some(f) = &task.for_each else { continue };
            let cap = f
                .concurrency
                .map(|c| format!(", at most {c} at once"))
                .unwrap_or_default();
            let _ = match &f.items {
                spool_core::for_each::Items::List(items) => writeln!(
                    s,
                    "for each: {} runs {} iteration(s){cap}",
                    task.id,
                    items.len()
                ),
                spool_core::for_each::Items::Reference(r) => writeln!(
                    s,
                    "for each: {} runs once per item of {} when the run reaches it{cap} \
                     (a dry run assumes {})",
                    task.id, r.text, f.expected_items
                ),
            };
        }
        if let Some(resume) = &self.resume {
            resume.render(&mut s);
        }
        s
    }
}
