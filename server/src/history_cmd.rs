//! `spool runs` and `spool show`: the run history, read from the data directory.

use crate::history::{
    AttemptOutcome, History, RunEvent, RunRecord, RunSummary, StoredEvent, TaskRecord,
};
use spool_core::diag::escape_controls_in_lines;
use spool_core::listing::{RunQuery, DEFAULT_LIMIT};
use spool_core::params::TaskValues;
use spool_core::runlog::FinalReason;
use spool_core::sched::Final;
use spool_core::schedule::utc_minute;
use spool_core::template::Source;
use std::fmt::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RunsArgs {
    /// Where run history is kept.
    #[arg(long, default_value = ".spool")]
    pub data_dir: PathBuf,
    /// How many runs, newest first (at most 500).
    #[arg(long, default_value_t = DEFAULT_LIMIT.to_string())]
    pub limit: String,
    /// Only runs older than this run id (the next page: the last id of this one).
    #[arg(long)]
    pub before: Option<String>,
    /// Only runs of this pipeline (its file, or its name).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Only runs with this status (running, succeeded, failed, cancelled, interrupted; several
    /// comma-separated).
    #[arg(long)]
    pub status: Option<String>,
    /// Only runs started so (cli, api, resume, schedule; several comma-separated).
    #[arg(long)]
    pub trigger: Option<String>,
    /// Only runs started at or after this time (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ in UTC, or
    /// milliseconds since 1970).
    #[arg(long)]
    pub since: Option<String>,
    /// Only runs started before this time.
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ShowArgs {
    pub run: i64,
    #[arg(long, default_value = ".spool")]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn runs(args: RunsArgs) -> anyhow::Result<u8> {
    let query = RunQuery {
        limit: Some(args.limit),
        before: args.before,
        pipeline: args.pipeline,
        status: args.status,
        trigger: args.trigger,
        since: args.since,
        until: args.until,
    };
    let filter = match query.check() {
        Ok(f) => f,
        Err(why) => {
            eprintln!("error: {why}");
            return Ok(2);
        }
    };
    let history = History::open(&args.data_dir)?;
    let runs = history.list(&filter)?;
    for (id, reason) in history.quarantined()? {
        eprintln!("run {id} is set aside, its history does not decode: {reason}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else if runs.is_empty() {
        println!("no such runs in {}", args.data_dir.display());
    } else {
        // Names and errors come from files and from Spark: shown with control characters escaped.
        print!("{}", escape_controls_in_lines(&runs_table(&runs)));
        // A full page: there may be older runs.
        if let Some(last) = runs.last().filter(|_| runs.len() == filter.limit as usize) {
            println!("older runs: --before {}", last.id);
        }
    }
    Ok(0)
}

pub fn show(args: ShowArgs) -> anyhow::Result<u8> {
    let history = History::open(&args.data_dir)?;
    let Some(run) = history.run(args.run)? else {
        eprintln!("no run {} in {}", args.run, args.data_dir.display());
        return Ok(1);
    };
    let events = history.events(args.run, None)?;
    if args.json {
        let both = serde_json::json!({ "run": run, "events": events });
        println!("{}", serde_json::to_string_pretty(&both)?);
    } else {
        print!("{}", escape_controls_in_lines(&trace(&run, &events)));
    }
    Ok(0)
}

pub fn secs(ms: i64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn runs_table(runs: &[RunSummary]) -> String {
    let mut s = format!(
        "{:>5}  {:<24} {:<12} {:>9} {:>4} {:>4} {:>4}  {}\n",
        "run", "pipeline", "status", "duration", "ok", "fail", "skip", "resumes"
    );
    for r in runs {
        let c = r.task_counts;
        let _ = writeln!(
            s,
            "{:>5}  {:<24} {:<12} {:>9} {:>4} {:>4} {:>4}  {}",
            r.id,
            r.pipeline,
            r.status.name(),
            r.ended_ms.map_or("-".into(), |e| secs(e - r.started_ms)),
            c.succeeded,
            c.failed,
            c.skipped,
            r.resumed_from.map_or(String::new(), |p| p.to_string())
        );
    }
    s
}

/// The run's events in order, times relative to its start, errors with tracebacks.
fn trace(run: &RunRecord, events: &[StoredEvent]) -> String {
    let mut s = format!(
        "run {} of {} ({}): {}\n",
        run.id,
        run.pipeline,
        run.file,
        format!("{:?}", run.status).to_lowercase()
    );
    if let Some(p) = run.resumed_from {
        let _ = writeln!(s, "resumes run {p}");
    }
    if let Some(by) = &run.started_by {
        let _ = writeln!(s, "started by {by}");
    }
    for e in events {
        if let Some(line) = describe(&e.event, true) {
            let at = secs(e.at_ms - run.started_ms);
            let _ = writeln!(s, "{at:>9}  {line}");
        }
    }
    s
}

/// How a task ended, in words (the `spool run` summary).
pub fn task_outcome(t: &TaskRecord) -> String {
    let last = t.attempts.last().and_then(|a| a.outcome);
    match (t.state, &t.reason) {
        (None, _) => "unfinished".into(),
        _ if t.carried_over => "kept from resumed run".into(),
        (Some(Final::Skipped), _) => format!("skipped ({})", t.skipped.as_deref().unwrap_or("-")),
        (Some(Final::Cancelled), Some(FinalReason::RunCancelled)) if t.attempts.is_empty() => {
            "cancelled before it started".into()
        }
        // The attempt's own outcome says more (a timeout is a failure of the task).
        (Some(_), None | Some(FinalReason::Attempt)) if last.is_some() => {
            last.map_or("-", outcome_name).into()
        }
        (Some(state), Some(reason)) => format!("{} ({})", state.name(), reason.describe()),
        (Some(state), None) => state.name().into(),
    }
}

/// Published values as one line of JSON.
fn shown(values: &TaskValues) -> String {
    serde_json::to_string(values).unwrap_or_default()
}

/// One event as a line of text (`spool show`, and `spool run`'s progress); with `tracebacks`,
/// a failure's traceback follows on indented lines. `None` for a task settled by its last
/// attempt, whose own line already says how it ended.
pub fn describe(event: &RunEvent, tracebacks: bool) -> Option<String> {
    Some(match event {
        RunEvent::RunStarted {
            params, trigger, ..
        } => format!(
            "run started{}, parameters {}",
            trigger.as_ref().map_or(String::new(), |t| match t.scheduled_ms {
                Some(slot) => format!(" by its schedule for {} UTC", utc_minute(slot)),
                None => format!(" ({})", t.kind.name()),
            }),
            serde_json::Value::from(serde_json::Map::from_iter(params.clone()))
        ),
        RunEvent::SessionChanged {
            session,
            state,
            message,
            capacity,
            spark_ui,
        } => format!(
            "Spark session {session} {state}{}{}{}",
            capacity.map_or(String::new(), |c| format!(", {c} cores")),
            message
                .as_ref()
                .map_or(String::new(), |m| format!(" ({m})")),
            spark_ui
                .as_ref()
                .map_or(String::new(), |ui| format!(", Spark UI {ui}"))
        ),
        RunEvent::TaskStarted { task, attempt } => {
            format!("{task:<28} started (attempt {attempt})")
        }
        RunEvent::ParamsBound { run, pipeline } => format!(
            "values: run.id {}, run.trigger_time {}, params {}",
            run.id,
            run.value(&Source::RunTriggerTime).unwrap_or_default(),
            serde_json::Value::Object(pipeline.clone())
        ),
        RunEvent::AttemptParams {
            task,
            attempt,
            params,
        } => format!(
            "{task:<28} attempt {attempt} with {}",
            serde_json::Value::Object(params.clone())
        ),
        RunEvent::ValuesPublished {
            task,
            attempt: 0,
            values,
        } => format!(
            "{task:<28} values kept from the resumed run: {}",
            shown(values)
        ),
        RunEvent::ValuesPublished { task, values, .. } => {
            format!("{task:<28} published {}", shown(values))
        }
        RunEvent::TaskFinished {
            task,
            attempt,
            outcome,
            error,
            exit_value,
            ..
        } => {
            let mut l = format!("{task:<28} {} (attempt {attempt})", outcome_name(*outcome));
            if let Some(v) = exit_value {
                let _ = write!(l, ", exit value {v:?}");
            }
            if let Some(err) = error {
                let _ = write!(l, ": {}: {}", err.ename, err.evalue);
                if let Some(at) = err.location() {
                    let _ = write!(l, " ({at})");
                }
                if tracebacks {
                    for tl in err.traceback.iter().flat_map(|t| t.lines()) {
                        let _ = write!(l, "\n        {tl}");
                    }
                }
            }
            l
        }
        RunEvent::SessionStateCreated {
            task,
            attempt: 0,
            names,
        } => format!(
            "{task:<28} session state kept from the resumed run: {}",
            names.join(", ")
        ),
        RunEvent::SessionStateCreated { task, names, .. } => {
            format!("{task:<28} left in the session: {}", names.join(", "))
        }
        RunEvent::ForEachExpanded {
            task,
            iterations,
            error: None,
        } => format!(
            "{task:<28} for each: {} iteration(s){}{}",
            iterations.len(),
            if iterations.is_empty() { "" } else { ": " },
            iterations.join(", ")
        ),
        RunEvent::ForEachExpanded {
            task,
            error: Some(why),
            ..
        } => format!("{task:<28} for each: no list to run over: {why}"),
        RunEvent::RebuildingSessionState { task, names } => format!(
            "{task:<28} runs again to rebuild what it left in the Spark session ({}) for the notebooks after it",
            names.join(", ")
        ),
        RunEvent::Notified {
            event,
            target,
            tries,
            status,
            error,
        } => {
            let event = event.name();
            match (status, error) {
                (Some(code), _) if (200..300).contains(code) => {
                    format!("notified {target} ({event}), HTTP {code}")
                }
                (status, error) => format!(
                    "could not notify {target} ({event}) in {tries} tries: {}",
                    error
                        .clone()
                        .or(status.map(|c| format!("HTTP {c}")))
                        .unwrap_or_default()
                ),
            }
        }
        RunEvent::AttemptMetrics {
            task,
            attempt,
            metrics,
        } => format!("{task:<28} attempt {attempt} Spark metrics {metrics}"),
        RunEvent::RetryScheduled {
            task,
            attempt,
            at_secs,
        } => format!("{task:<28} retry {attempt} at {at_secs:.1}s"),
        RunEvent::TaskSkipped { task, reason } => format!("{task:<28} skipped: {reason}"),
        RunEvent::TaskCarriedOver { task } => format!("{task:<28} kept from the resumed run"),
        RunEvent::TaskSettled {
            reason: FinalReason::Attempt,
            ..
        } => return None,
        RunEvent::TaskSettled {
            task,
            state,
            reason,
        } => format!("{task:<28} {}: {}", state.name(), reason.describe()),
        RunEvent::ConditionsEvaluated { task, conditions } => {
            let each: Vec<String> = conditions
                .iter()
                .map(|c| {
                    let held = if c.verdict.holds {
                        "held"
                    } else {
                        "did not hold"
                    };
                    format!("`{}` {held} ({})", c.condition, c.describe_reads())
                })
                .collect();
            format!("{task:<28} if {}", each.join("; "))
        }
        RunEvent::CancelRequested { reason, by } => {
            let mut l = "cancel requested".to_string();
            if let Some(by) = by {
                let _ = write!(l, " by {by}");
            }
            if let Some(why) = reason {
                let _ = write!(l, ": {why}");
            }
            l
        }
        RunEvent::SessionLeaked { session, reason } => {
            format!("Spark session {session} LEAKED (could not be deleted: {reason})")
        }
        RunEvent::RunFinished { status } => {
            format!("run finished: {}", format!("{status:?}").to_lowercase())
        }
        RunEvent::RunInterrupted { reason } => format!("run interrupted: {reason}"),
        RunEvent::RunQueued { reason } => format!("run waits: {reason}"),
        RunEvent::RunAdmitted => "run leaves the queue and starts".into(),
        RunEvent::Unknown => "an event of a kind this version does not know".into(),
    })
}

pub fn outcome_name(o: AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::TimedOut => "timed out",
        AttemptOutcome::Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spool_core::runlog::{Trigger, TriggerKind};

    fn started(trigger: Option<Trigger>) -> Option<String> {
        let event = RunEvent::RunStarted {
            pipeline: "p".into(),
            file: "p.toml".into(),
            params: Default::default(),
            resumed_from: None,
            plan: serde_json::json!({}),
            trigger,
            started_by: None,
        };
        describe(&event, false)
    }

    #[test]
    fn the_start_of_a_run_says_what_started_it() {
        // 2026-06-01T00:00:00Z.
        let slot = 1_780_272_000_000;
        assert_eq!(
            started(Some(Trigger::schedule(slot))).as_deref(),
            Some("run started by its schedule for 2026-06-01 00:00 UTC, parameters {}")
        );
        assert_eq!(
            started(Some(Trigger::of(TriggerKind::Api))).as_deref(),
            Some("run started (api), parameters {}")
        );
        assert_eq!(started(None).as_deref(), Some("run started, parameters {}"));
    }
}
