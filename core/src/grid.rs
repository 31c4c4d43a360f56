//! The grid of a pipeline's last runs (Airflow's grid view): a row per task, a column per run,
//! each cell the task's state in that run and how long its last attempt took. It makes "which
//! notebook got slower, or flaky" visible at a glance. The server folds the runs and builds the
//! grid (`GET /api/pipelines/{file}/grid`); the browser draws it.

use crate::runlog::{AttemptOutcome, RunRecord, RunStatus, TaskRecord};
use crate::sched::Final;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Runs a grid shows when not told.
pub const DEFAULT_GRID_RUNS: u32 = 10;
/// Runs a grid shows at most: each is folded from its whole log.
pub const MAX_GRID_RUNS: u32 = 50;

/// A task's state in one run, as a cell of the grid and a node of the browser's run graph show
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    /// Not decided yet, and no attempt running.
    Pending,
    Running,
    /// An attempt failed; another one is scheduled.
    Retrying,
    Succeeded,
    Failed,
    /// Failed: its last attempt ran out of time.
    TimedOut,
    Cancelled,
    Skipped,
    /// Kept from the resumed run instead of running again.
    Kept,
}

impl CellState {
    /// Also the CSS class suffix and the `data-state` attribute.
    pub fn name(self) -> &'static str {
        match self {
            CellState::Pending => "pending",
            CellState::Running => "running",
            CellState::Retrying => "retrying",
            CellState::Succeeded => "succeeded",
            CellState::Failed => "failed",
            CellState::TimedOut => "timed_out",
            CellState::Cancelled => "cancelled",
            CellState::Skipped => "skipped",
            CellState::Kept => "kept",
        }
    }

    /// The state an attempt ended in.
    pub fn of_outcome(outcome: AttemptOutcome) -> Self {
        match outcome {
            AttemptOutcome::Succeeded => CellState::Succeeded,
            AttemptOutcome::Failed => CellState::Failed,
            AttemptOutcome::TimedOut => CellState::TimedOut,
            AttemptOutcome::Cancelled => CellState::Cancelled,
        }
    }

    /// The state of a task as its run's record has it.
    pub fn of(task: &TaskRecord) -> CellState {
        let last = task.attempts.last();
        let last_outcome = last.and_then(|a| a.outcome);
        match task.state {
            _ if task.carried_over => CellState::Kept,
            Some(Final::Succeeded) => CellState::Succeeded,
            Some(Final::Failed) if last_outcome == Some(AttemptOutcome::TimedOut) => {
                CellState::TimedOut
            }
            Some(Final::Failed) => CellState::Failed,
            Some(Final::Skipped) => CellState::Skipped,
            Some(Final::Cancelled) => CellState::Cancelled,
            None => match (last, last_outcome) {
                (Some(_), None) => CellState::Running,
                (Some(_), Some(_)) => CellState::Retrying,
                (None, _) => CellState::Pending,
            },
        }
    }
}

/// A column: one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridRun {
    pub id: i64,
    pub status: RunStatus,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub resumed_from: Option<i64>,
}

/// A task in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub state: CellState,
    /// Attempts it made in this run.
    pub attempts: u32,
    /// Seconds its last attempt took, once ended.
    pub secs: Option<f64>,
}

/// A row: one task, with a cell per run (`None` where the run has no record of it: not
/// reached, or not in that run's plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridRow {
    pub task: String,
    pub cells: Vec<Option<Cell>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Oldest first (left to right).
    pub runs: Vec<GridRun>,
    pub rows: Vec<GridRow>,
}

/// The grid of `runs` (in any order), rows in `order` (the tasks of the file's plan now), then
/// the tasks only older runs had, by name.
pub fn grid(runs: &[RunRecord], order: &[String]) -> Grid {
    let mut runs: Vec<&RunRecord> = runs.iter().collect();
    runs.sort_by_key(|r| r.id);
    let listed: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    let others: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.tasks.keys().map(String::as_str))
        .filter(|t| !listed.contains(t))
        .collect();
    let rows = order
        .iter()
        .map(String::as_str)
        .chain(others)
        .map(|task| GridRow {
            task: task.to_string(),
            cells: runs
                .iter()
                .map(|r| {
                    r.tasks.get(task).map(|t| Cell {
                        state: CellState::of(t),
                        attempts: t.attempts.len() as u32,
                        secs: t.attempts.last().and_then(|a| {
                            a.ended_ms
                                .map(|end| (end - a.started_ms).max(0) as f64 / 1000.0)
                        }),
                    })
                })
                .collect(),
        })
        .collect();
    Grid {
        runs: runs
            .iter()
            .map(|r| GridRun {
                id: r.id,
                status: r.status,
                started_ms: r.started_ms,
                ended_ms: r.ended_ms,
                resumed_from: r.resumed_from,
            })
            .collect(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runlog::StoredEvent;

    /// A run folded from its events, as the history does.
    fn run(id: i64, events: serde_json::Value) -> RunRecord {
        let events: Vec<StoredEvent> = serde_json::from_value(events).expect("events");
        let mut record = RunRecord::started(id, &events[0]).expect("a run_started first");
        for e in &events[1..] {
            record.apply(e);
        }
        record
    }

    fn started(resumed_from: Option<i64>) -> serde_json::Value {
        serde_json::json!({"seq": 0, "at_ms": 0, "event": {"type": "run_started", "pipeline": "p",
            "file": "p.toml", "params": {}, "resumed_from": resumed_from, "plan": {}}})
    }

    #[test]
    fn a_grid_has_a_row_per_task_and_a_column_per_run_oldest_first() {
        let failed = run(
            1,
            serde_json::json!([started(None),
            {"seq":1,"at_ms":1000,"event":{"type":"task_started","task":"a","attempt":1}},
            {"seq":2,"at_ms":3500,"event":{"type":"task_finished","task":"a","attempt":1,"outcome":"succeeded"}},
            {"seq":3,"at_ms":3500,"event":{"type":"task_settled","task":"a","state":"succeeded","reason":{"kind":"attempt"}}},
            {"seq":4,"at_ms":3600,"event":{"type":"task_started","task":"b","attempt":1}},
            {"seq":5,"at_ms":4600,"event":{"type":"task_finished","task":"b","attempt":1,"outcome":"timed_out"}},
            {"seq":6,"at_ms":4600,"event":{"type":"task_settled","task":"b","state":"failed","reason":{"kind":"attempt"}}},
            {"seq":7,"at_ms":4700,"event":{"type":"run_finished","status":"failed"}}]),
        );
        let resumed = run(
            2,
            serde_json::json!([started(Some(1)),
            {"seq":1,"at_ms":1000,"event":{"type":"task_carried_over","task":"a"}},
            {"seq":2,"at_ms":1100,"event":{"type":"task_started","task":"b","attempt":1}},
            {"seq":3,"at_ms":1200,"event":{"type":"task_finished","task":"b","attempt":1,"outcome":"failed"}},
            {"seq":4,"at_ms":1200,"event":{"type":"retry_scheduled","task":"b","attempt":2,"at_secs":5.0}},
            {"seq":5,"at_ms":6200,"event":{"type":"task_started","task":"b","attempt":2}}]),
        );
        let order = ["a".to_string(), "c".to_string()];
        let g = grid(&[resumed, failed], &order);
        assert_eq!(g.runs.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(g.runs[1].resumed_from, Some(1));
        let tasks: Vec<&str> = g.rows.iter().map(|r| r.task.as_str()).collect();
        assert_eq!(
            tasks,
            ["a", "c", "b"],
            "the file's order, then what only runs had"
        );
        let states = |row: usize| -> Vec<Option<CellState>> {
            g.rows[row]
                .cells
                .iter()
                .map(|c| c.as_ref().map(|c| c.state))
                .collect()
        };
        assert_eq!(
            states(0),
            [Some(CellState::Succeeded), Some(CellState::Kept)]
        );
        assert_eq!(states(1), [None, None], "never reached");
        assert_eq!(
            states(2),
            [Some(CellState::TimedOut), Some(CellState::Running)]
        );
        let a1 = g.rows[0].cells[0].as_ref().expect("a in run 1");
        assert_eq!((a1.secs, a1.attempts), (Some(2.5), 1));
        let b2 = g.rows[2].cells[1].as_ref().expect("b in run 2");
        assert_eq!((b2.secs, b2.attempts), (None, 2), "its second attempt runs");
    }

    #[test]
    fn a_grid_of_no_runs_lists_the_files_tasks_with_no_cells() {
        let g = grid(&[], &["a".to_string()]);
        assert!(g.runs.is_empty());
        assert_eq!(g.rows.len(), 1);
        assert!(g.rows[0].cells.is_empty());
    }
}
