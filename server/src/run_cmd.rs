//! `spool run`: one run in the terminal, with live progress, a summary table and an exit code.

use crate::history::{History, RunEvent, RunRecord, RunStatus};
use crate::history_cmd::{describe, secs, task_outcome};
use crate::runs::{RunManager, RunRequest, StartError};
use crate::spark_args::SparkArgs;
use spool_core::diag::escape_controls_in_lines;
use spool_core::runlog::{Trigger, TriggerKind};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The pipeline file (TOML).
    pub file: PathBuf,
    /// Parameter, `name=value` for a `[params]` entry of the pipeline (read as its declared
    /// type), else a notebook's own parameter: `key=value` (every notebook declaring `key`) or
    /// `notebook.key=value`; a value that reads as JSON (number, true, [..]) is taken as such.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Re-run only what did not succeed in this earlier run (and what depends on it).
    #[arg(long)]
    pub resume: Option<i64>,
    /// With --resume, a repair: re-run this task (or sub-pipeline) and everything downstream
    /// of it even if it succeeded; may be given several times.
    #[arg(long, value_name = "TASK", requires = "resume")]
    pub rerun: Vec<String>,
    /// Print the finished run as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where run history is kept.
    #[arg(long, default_value = ".spool")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub spark: SparkArgs,
}

/// `key=value` pairs given with `flag`; values are JSON when they parse as JSON, strings
/// otherwise.
pub fn parse_pairs(
    flag: &str,
    given: &[String],
) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let mut out = BTreeMap::new();
    for p in given {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("{flag} `{p}` must be KEY=VALUE"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::from(v));
        out.insert(k.trim().to_string(), value);
    }
    Ok(out)
}

pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    let params = parse_pairs("--param", &args.params)?;
    let dir = match args.file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = dir
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("folder `{}`: {e}", dir.display()))?;
    let name = args
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow::anyhow!("`{}` is not a file name", args.file.display()))?
        .to_string();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let history = Arc::new(History::open(&args.data_dir)?);
        let interrupted = history.mark_interrupted(crate::runs::now_ms())?;
        let (spark, local) = args.spark.connect(&args.data_dir).await?;
        let manager = RunManager::new(history.clone(), dir, spark);
        manager.reap(&interrupted).await;
        let started = manager
            .start(RunRequest {
                file: name,
                params,
                trigger: Trigger::of(if args.resume.is_some() {
                    TriggerKind::Resume
                } else {
                    TriggerKind::Cli
                }),
                resume: args.resume,
                rerun: args.rerun,
                started_by: None,
            })
            .await;
        let id = match started {
            Ok(id) => id,
            Err(StartError::Invalid(diags)) => {
                for d in diags {
                    eprintln!("{d}");
                }
                if let Some(l) = local {
                    l.shutdown().await;
                }
                return Ok(1);
            }
            Err(e) => {
                if let Some(l) = local {
                    l.shutdown().await;
                }
                return Err(e.into());
            }
        };
        eprintln!("run {id} started (history in {})", args.data_dir.display());
        let status = follow(&manager, &history, id).await?;
        // Webhooks about the run's end go out before the process does.
        manager.notifications_sent().await;
        for e in history.events(id, None)? {
            if matches!(e.event, RunEvent::Notified { .. }) {
                if let Some(line) = describe(&e.event, false) {
                    eprintln!("{line}");
                }
            }
        }
        let run = history
            .run(id)?
            .ok_or_else(|| anyhow::anyhow!("run {id} vanished"))?;
        if let Some(l) = local {
            l.shutdown().await;
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&run)?);
        } else {
            print!("{}", summary(&run));
        }
        Ok(u8::from(status != RunStatus::Succeeded))
    })
}

/// Prints every event as it is recorded until the run ends; Ctrl-C cancels the run (a second
/// Ctrl-C stops waiting for the cancel to finish).
async fn follow(
    manager: &Arc<RunManager>,
    history: &History,
    id: i64,
) -> anyhow::Result<RunStatus> {
    let tty = std::io::stderr().is_terminal();
    let mut notify = manager.subscribe(id);
    let mut after = None;
    let mut ctrl_c = 0;
    let total = history
        .events(id, None)?
        .first()
        .and_then(|e| match &e.event {
            RunEvent::RunStarted { plan, .. } => plan["tasks"].as_array().map(Vec::len),
            _ => None,
        })
        .unwrap_or(0);
    let mut started_ms = None;
    loop {
        for e in history.events(id, after)? {
            after = Some(e.seq);
            let t0 = *started_ms.get_or_insert(e.at_ms);
            if let Some(line) = progress_line(&e.event) {
                if tty {
                    eprint!("\r\x1b[2K");
                }
                let line = escape_controls_in_lines(&line);
                eprintln!("[{:>8}] {line}", secs(e.at_ms - t0));
            }
        }
        if tty {
            if let Some(run) = history.run(id)? {
                eprint!("\r\x1b[2K{}", progress_bar(&run, total));
                let _ = std::io::stderr().flush();
            }
        }
        if let Some(status) = manager.wait_now(id) {
            if tty {
                eprintln!();
            }
            return Ok(status);
        }
        let changed = async {
            match notify.as_mut() {
                Some(rx) => {
                    let _ = rx.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(Duration::from_millis(500), changed) => {}
            _ = tokio::signal::ctrl_c() => {
                ctrl_c += 1;
                if ctrl_c > 1 {
                    anyhow::bail!("stopped waiting; run {id} may still be cancelling");
                }
                eprintln!("\ncancelling run {id} (Ctrl-C again to stop waiting)");
                manager.cancel(id, None).await;
            }
        }
    }
}

/// The progress line of an event; the run's start and unknown kinds are not shown.
fn progress_line(e: &RunEvent) -> Option<String> {
    match e {
        RunEvent::RunStarted { .. } | RunEvent::RunInterrupted { .. } | RunEvent::Unknown => None,
        other => describe(other, false),
    }
}

fn progress_bar(run: &RunRecord, total: usize) -> String {
    let done = run
        .tasks
        .values()
        .filter(|t| t.state.is_some())
        .count()
        .min(total);
    let running = run
        .tasks
        .values()
        .filter(|t| t.attempts.last().is_some_and(|a| a.outcome.is_none()))
        .count();
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    format!(
        "[{}{}] {done}/{total} done, {running} running",
        "#".repeat(filled),
        "-".repeat(width - filled)
    )
}

/// The final table: notebook, attempts, duration, outcome.
fn summary(run: &RunRecord) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "\n{:<32} {:>8} {:>10}  {}\n",
        "notebook", "attempts", "duration", "outcome"
    );
    for (id, t) in &run.tasks {
        let outcome = task_outcome(t);
        let duration: i64 = t
            .attempts
            .iter()
            .filter_map(|a| a.ended_ms.map(|e| e - a.started_ms))
            .sum();
        let _ = writeln!(
            s,
            "{id:<32} {:>8} {:>10}  {outcome}",
            t.attempts.len(),
            if t.attempts.is_empty() {
                "-".to_string()
            } else {
                secs(duration)
            }
        );
    }
    let _ = writeln!(
        s,
        "run {} {} in {}",
        run.id,
        format!("{:?}", run.status).to_lowercase(),
        run.ended_ms
            .map_or("-".into(), |e| secs(e - run.started_ms))
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_of_a_cancelled_run_lists_every_task_final() {
        let events: Vec<crate::history::StoredEvent> = serde_json::from_str(
            r#"[
            {"seq":0,"at_ms":0,"event":{"type":"run_started","pipeline":"p","file":"p.toml","params":{},"resumed_from":null,"plan":{}}},
            {"seq":1,"at_ms":100,"event":{"type":"task_started","task":"slow","attempt":1}},
            {"seq":2,"at_ms":900,"event":{"type":"cancel_requested"}},
            {"seq":3,"at_ms":900,"event":{"type":"task_settled","task":"last","state":"cancelled","reason":{"kind":"run_cancelled"}}},
            {"seq":4,"at_ms":900,"event":{"type":"task_settled","task":"on_fail","state":"skipped","reason":{"kind":"condition","dependency":"a","state":"succeeded","condition":"failed"}}},
            {"seq":5,"at_ms":1000,"event":{"type":"task_finished","task":"slow","attempt":1,"outcome":"cancelled"}},
            {"seq":6,"at_ms":1000,"event":{"type":"task_settled","task":"slow","state":"cancelled","reason":{"kind":"attempt"}}},
            {"seq":7,"at_ms":1000,"event":{"type":"run_finished","status":"cancelled"}}
        ]"#,
        )
        .expect("events parse");
        let run = RunRecord::fold(1, &events).expect("a run");
        let text = summary(&run);
        let line = |task: &str| {
            text.lines()
                .find(|l| l.starts_with(task))
                .unwrap_or_else(|| panic!("no line for {task}:\n{text}"))
                .to_string()
        };
        assert!(
            line("last").ends_with("cancelled before it started"),
            "{text}"
        );
        assert!(line("slow").ends_with("cancelled"), "{text}");
        assert!(
            line("on_fail").contains("skipped (`a` succeeded, but it runs only when `a` failed)"),
            "{text}"
        );
        assert_eq!(
            progress_bar(&run, 3),
            format!("[{}] 3/3 done, 0 running", "#".repeat(30))
        );
    }
}
