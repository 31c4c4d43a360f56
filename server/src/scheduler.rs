//! `spool serve`'s scheduler: starts the runs of every pipeline's `[schedule]` on time.
//!
//! The rule of what is due is core's ([`Schedule::due`], a function of the time); this drives
//! it. One pass ([`Scheduler::tick`]) reads the pipelines that have a schedule, records in the
//! history (table `schedules`) the newest slot handled before starting its runs (a run is
//! started at most once per slot, also across a crash), and says when the next slot comes;
//! the loop sleeps until then, at most [`RESCAN`], and wakes at once when the API saves a
//! file or pauses or resumes a schedule (files changed otherwise count within [`RESCAN`]). What was missed while the server was down is found from the
//! recorded slot at the first pass after a restart, and `catch_up` decides.

use crate::fs_sources::DiskSources;
use crate::history::History;
use crate::runs::{RunManager, RunRequest};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use spool_core::dag::load;
use spool_core::notify::Notify;
use spool_core::parse::parse_pipeline;
use spool_core::runlog::Trigger;
use spool_core::schedule::{FireTime, Schedule, ON_TIME_GRACE_MS};
use spool_core::source::Sources;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The scheduler looks at the pipelines at least this often (new, edited or resumed schedules
/// count by then); it stays well within [`ON_TIME_GRACE_MS`], so such a slot still runs.
pub const RESCAN: Duration = Duration::from_secs(20);
/// How deep the pipelines folder is searched, and how many files at most (as the listing).
const MAX_DEPTH: usize = 4;
const MAX_FILES: usize = 2000;

/// A schedule's state as kept in the history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleState {
    /// The newest slot handled (run or skipped); `None` for a schedule never seen.
    pub handled_ms: Option<i64>,
    pub paused: bool,
    /// The last pause or resume: when, and who asked.
    pub changed: Option<ScheduleChange>,
}

/// A pause or resume of a schedule, as the history keeps it and the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleChange {
    pub at_ms: i64,
    /// The name of the API token that asked (`None`: a token without a name, or no token);
    /// never its secret.
    pub by: Option<String>,
}

/// The columns [`ScheduleState`] is read from, in order.
const STATE_COLUMNS: &str = "handled_ms, paused, changed_ms, changed_by";

fn state_of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ScheduleState> {
    let changed = match r.get::<_, Option<i64>>(first + 2)? {
        Some(at_ms) => Some(ScheduleChange {
            at_ms,
            by: r.get(first + 3)?,
        }),
        None => None,
    };
    Ok(ScheduleState {
        handled_ms: r.get(first)?,
        paused: r.get(first + 1)?,
        changed,
    })
}

impl History {
    /// Every file's scheduler state.
    pub fn schedule_states(&self) -> anyhow::Result<HashMap<String, ScheduleState>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT file, {STATE_COLUMNS} FROM schedules"))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, state_of(r, 1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn schedule_state(&self, file: &str) -> anyhow::Result<ScheduleState> {
        let found = self
            .conn()
            .query_row(
                &format!("SELECT {STATE_COLUMNS} FROM schedules WHERE file = ?1"),
                params![file],
                |r| state_of(r, 0),
            )
            .optional()?;
        Ok(found.unwrap_or_default())
    }

    /// Records that every slot of `file` up to `ms` is handled.
    pub fn set_schedule_handled(&self, file: &str, ms: i64) -> anyhow::Result<()> {
        self.conn().execute(
            "INSERT INTO schedules (file, handled_ms) VALUES (?1, ?2) \
             ON CONFLICT(file) DO UPDATE SET handled_ms = excluded.handled_ms",
            params![file, ms],
        )?;
        Ok(())
    }

    /// Pauses or resumes `file`'s schedule at `now_ms`, asked by the token named `by`. The
    /// slots of a pause are not caught up: they count as handled when it resumes.
    pub fn set_schedule_paused(
        &self,
        file: &str,
        paused: bool,
        now_ms: i64,
        by: Option<&str>,
    ) -> anyhow::Result<()> {
        self.conn().execute(
            "INSERT INTO schedules (file, handled_ms, paused, changed_ms, changed_by) \
             VALUES (?1, ?2, ?3, ?2, ?4) \
             ON CONFLICT(file) DO UPDATE SET paused = excluded.paused, \
             handled_ms = CASE WHEN excluded.paused THEN handled_ms ELSE excluded.handled_ms END, \
             changed_ms = excluded.changed_ms, changed_by = excluded.changed_by",
            params![file, now_ms, paused, by],
        )?;
        Ok(())
    }
}

/// A pipeline's schedule as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    #[serde(flatten)]
    pub schedule: Schedule,
    pub paused: bool,
    /// The last pause or resume: when, and the name of the token that asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<ScheduleChange>,
    /// The next fire times (none while paused or disabled).
    pub next: Vec<FireTime>,
}

impl ScheduleView {
    pub fn of(schedule: Schedule, state: ScheduleState, now_ms: i64, n: usize) -> ScheduleView {
        let next = if state.paused || !schedule.enabled {
            Vec::new()
        } else {
            schedule.upcoming(now_ms, n)
        };
        ScheduleView {
            schedule,
            paused: state.paused,
            changed: state.changed,
            next,
        }
    }
}

/// A pipeline file with a `[schedule]`, and what its refused starts are recorded with.
#[derive(Clone)]
struct Scheduled {
    file: String,
    /// The pipeline's name (its file's, when the plan does not load).
    pipeline: String,
    schedule: Schedule,
    /// Told when a start is refused.
    notify: Vec<Notify>,
}

/// The pipeline files of `dir` that have a `[schedule]`. A file with errors elsewhere keeps
/// its schedule (read from the file alone): its slots are still due, and their starts fail
/// visibly, as runs that failed with the errors, instead of silently not happening.
fn scheduled_pipelines(dir: &std::path::Path) -> anyhow::Result<Vec<Scheduled>> {
    let sources = DiskSources::new(dir)?;
    let mut out = Vec::new();
    for file in sources.list(&[".toml"], MAX_DEPTH, MAX_FILES) {
        // Most files have no schedule: only those that mention one are loaded.
        let text = match sources.read(&file) {
            Ok(text) if text.contains("schedule") => text,
            _ => continue,
        };
        let loaded = load(&file, &sources);
        let scheduled = match loaded.plan {
            Some(plan) => plan.schedule.map(|schedule| Scheduled {
                file: file.clone(),
                pipeline: plan.name,
                schedule,
                notify: plan.notify,
            }),
            None => parse_pipeline(&file, &text).0.and_then(|p| {
                tracing::debug!(file, "the scheduled pipeline has errors");
                Some(Scheduled {
                    file: file.clone(),
                    pipeline: p.name,
                    schedule: p.schedule?,
                    notify: p.notify,
                })
            }),
        };
        out.extend(scheduled);
    }
    Ok(out)
}

pub struct Scheduler {
    history: Arc<History>,
    runs: Arc<RunManager>,
    pipelines_dir: PathBuf,
}

/// What one pass decided: runs to start, and when the next slot comes.
struct Pass {
    starts: Vec<(RunRequest, Scheduled)>,
    next_ms: Option<i64>,
}

impl Scheduler {
    pub fn new(history: Arc<History>, runs: Arc<RunManager>, pipelines_dir: PathBuf) -> Self {
        Scheduler {
            history,
            runs,
            pipelines_dir,
        }
    }

    /// One pass at `now_ms`: starts the runs that are due (after recording their slots as
    /// handled); returns when the next slot of any schedule comes.
    pub async fn tick(&self, now_ms: i64) -> Option<i64> {
        let history = self.history.clone();
        let dir = self.pipelines_dir.clone();
        let pass = tokio::task::spawn_blocking(move || decide(&history, &dir, now_ms)).await;
        let pass = match pass {
            Ok(Ok(pass)) => pass,
            Ok(Err(e)) => {
                tracing::error!("scheduler: {e:#}");
                return None;
            }
            Err(e) => {
                tracing::error!("scheduler: {e}");
                return None;
            }
        };
        for (req, scheduled) in pass.starts {
            let (file, slot) = (req.file.clone(), req.trigger.scheduled_ms);
            let refused = match self.runs.start(req.clone()).await {
                Ok(id) => {
                    tracing::info!(file, slot, run = id, "scheduled run started");
                    continue;
                }
                Err(refused) => refused,
            };
            let (pipeline, notify) = (&scheduled.pipeline, &scheduled.notify);
            match self
                .runs
                .record_refused_start(&req, pipeline, &refused, notify)
                .await
            {
                Ok(id) => tracing::warn!(file, slot, run = id, "scheduled run failed to start"),
                Err(e) => tracing::error!(
                    file,
                    slot,
                    "scheduled run not started ({refused}), and not recorded: {e:#}"
                ),
            }
        }
        pass.next_ms
    }

    /// Runs passes until `stop` turns true: after each, sleeps until the next slot, at most
    /// [`RESCAN`], or until `changed` is told (a file saved, a schedule paused or resumed).
    pub async fn run(
        self: Arc<Self>,
        changed: Arc<tokio::sync::Notify>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let now = crate::runs::now_ms();
            let next = self.tick(now).await;
            let wait = next
                .map(|n| Duration::from_millis(u64::try_from(n - now).unwrap_or(0)))
                .map_or(RESCAN, |w| w.min(RESCAN));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = changed.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// The blocking half of a pass: reads the schedules and their state, records the slots
/// handled, and says which runs to start.
fn decide(history: &History, dir: &std::path::Path, now_ms: i64) -> anyhow::Result<Pass> {
    let states = history.schedule_states()?;
    let mut pass = Pass {
        starts: Vec::new(),
        next_ms: None,
    };
    for scheduled in scheduled_pipelines(dir)? {
        let (file, schedule) = (&scheduled.file, &scheduled.schedule);
        let state = states.get(file).cloned().unwrap_or_default();
        // A schedule seen for the first time counts from a grace period ago, so that a slot
        // that came while the file was being saved still runs.
        let last = state.handled_ms.unwrap_or(now_ms - ON_TIME_GRACE_MS);
        let due = schedule.due(last, now_ms);
        let active = schedule.enabled && !state.paused;
        if let Some(handled) = due.handled.or(state.handled_ms.is_none().then_some(last)) {
            history.set_schedule_handled(file, handled)?;
        }
        if !active {
            continue;
        }
        if due.skipped > 0 {
            tracing::warn!(
                file,
                skipped = due.skipped,
                catch_up = ?schedule.catch_up,
                "scheduled slots missed while Spool was not running are not run"
            );
        }
        if let Some(&next) = schedule.next_after(now_ms, 1).first() {
            pass.next_ms = Some(pass.next_ms.map_or(next, |n: i64| n.min(next)));
        }
        for slot in due.fire {
            let req = RunRequest {
                file: file.clone(),
                params: schedule.params.clone(),
                resume: None,
                rerun: Vec::new(),
                trigger: Trigger::schedule(slot),
                started_by: None,
            };
            pass.starts.push((req, scheduled.clone()));
        }
    }
    Ok(pass)
}

#[cfg(test)]
mod tests;
