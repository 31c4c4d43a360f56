//! `spool-bench launches`: the statements Spool's executor would send to its driver
//! agent for every notebook of a pipeline, in the order a one-at-a-time run starts them.
//!
//! The run benchmark (`scripts/bench-runs.sh`) replays them in one Spark application per
//! notebook, so that its "every notebook its own application" baseline runs each notebook
//! through the same agent, with the same cells and parameters, as `spool run` does.

use serde::Serialize;
use spool_core::dag::{Plan, TaskId};
use spool_core::sched::{Admission, Command, Event, Machine, Policy};
use spool_server::agent::{inject_statement, poll_statement, start_statement, NotebookLaunch};
use spool_server::fs_sources::DiskSources;
use spool_server::plan_cmd::load_file;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub file: PathBuf,
}

/// What the command prints: the agent's inject statement, the poll that reports every attempt
/// the agent holds, and one start statement per notebook.
#[derive(Serialize)]
struct Launches {
    inject: String,
    poll: String,
    notebooks: Vec<NotebookStart>,
}

#[derive(Serialize)]
struct NotebookStart {
    id: String,
    attempt: u32,
    /// Relative to the pipeline's folder.
    path: String,
    start: String,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let loaded = load_file(&args.file)?;
    let Some(plan) = loaded.plan else {
        for d in &loaded.diagnostics {
            eprintln!("{d}");
        }
        return Ok(1);
    };
    let (sources, _) = DiskSources::for_file(&args.file)?;
    // The defaults of `[params]`; a value read from another notebook's has none here.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let bound = spool_core::params::bind(
        &plan,
        &Default::default(),
        spool_core::template::RunInfo {
            id: 0,
            trigger_ms: now_ms,
        },
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let mut notebooks = Vec::new();
    for (task, attempt) in one_at_a_time(&plan)? {
        let spec = &plan.tasks[task];
        let cells = spool_server::runs::read_cells(&sources, &spec.path)
            .map_err(|e| anyhow::anyhow!("{}: {}", e.ename, e.evalue))?;
        let launch = NotebookLaunch {
            id: spec.id.clone(),
            attempt,
            cells,
            params: bound
                .params_for(&plan, task, &|_| None)
                .map_err(|e| anyhow::anyhow!("{}: {e}", spec.id))?,
            upstream: Default::default(),
            isolated: spec.settings.isolated,
            // No executor watches the replay: the agent's own timeout is the only one.
            timeout: Some(Duration::from_secs(spec.settings.timeout_secs)),
            // The benchmark's pipelines have no secrets.
            mask: Vec::new(),
        };
        notebooks.push(NotebookStart {
            id: spec.id.clone(),
            attempt,
            path: spec.path.clone(),
            start: start_statement(&launch),
        });
    }
    let launches = Launches {
        inject: inject_statement(),
        poll: poll_statement(0, "bench", std::time::Duration::ZERO),
        notebooks,
    };
    println!("{}", serde_json::to_string_pretty(&launches)?);
    Ok(0)
}

/// The notebooks a run starts when every notebook succeeds, in the order Spool's scheduler
/// starts them when only one may run at a time (skips and bridged steps as in a real run).
fn one_at_a_time(plan: &Plan) -> anyhow::Result<Vec<(TaskId, u32)>> {
    let admission = Admission {
        capacity_slots: 1,
        max_concurrency: Some(1),
    };
    let mut machine = Machine::new(plan, Policy::default(), admission);
    let mut order = Vec::new();
    let mut commands: VecDeque<Command> = machine.handle(Event::RunStarted, 0.0).into();
    while let Some(command) = commands.pop_front() {
        if let Command::StartNotebook { task, attempt, .. } = command {
            // Every notebook succeeds at once, so each starts at most once.
            if order.len() >= plan.tasks.len() {
                anyhow::bail!("the scheduler started more notebooks than the plan has");
            }
            order.push((task, attempt));
            commands.extend(machine.handle(Event::NotebookSucceeded { task, attempt }, 0.0));
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spool_core::dag::load;
    use spool_core::source::MemorySources;

    #[test]
    fn the_replay_order_respects_dependencies_and_skips_failure_branches() {
        let notebook = "# %%\nprint(1)\n";
        let sources = MemorySources::default()
            .with("a.py", notebook)
            .with("b.py", notebook)
            .with("r.py", notebook)
            .with("x.py", notebook)
            .with(
                "main.toml",
                r#"
name = "p"
[[notebook]]
id = "report"
path = "r.py"
depends_on = ["load_b", "load_a"]
[[notebook]]
id = "load_a"
path = "a.py"
[[notebook]]
id = "load_b"
path = "b.py"
depends_on = ["load_a"]
[[notebook]]
id = "alert"
path = "x.py"
depends_on = [{ id = "report", on = "failed" }]
"#,
            );
        let plan = load("main.toml", &sources).plan.expect("valid pipeline");
        let ids: Vec<&str> = one_at_a_time(&plan)
            .expect("terminates")
            .into_iter()
            .map(|(t, _)| plan.tasks[t].id.as_str())
            .collect();
        assert_eq!(ids, ["load_a", "load_b", "report"]);
    }
}
