//! Calibration of the dry run from run history: what real runs measured (each notebook's
//! duration, the session's start-up, the dispatch latency, the capacity Spark reported), read
//! from their run logs, and which runs a request means (`12`, `last`, `p50`, `p90`).

use crate::dag::Plan;
use crate::dry_run::{
    check_count, check_durations, check_number, notebook_ids, OptionError,
    MAX_DISPATCH_LATENCY_SECS, MAX_DURATIONS, MAX_EXECUTORS, MAX_EXECUTOR_CORES,
    MAX_NODE_STARTUP_SECS, MAX_SECS,
};
use crate::for_each::MAX_ITEMS;
use crate::runlog::{AttemptOutcome, RunEvent, RunRecord, RunStatus, RunSummary, StoredEvent};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// Runs a history statistic reads by default, and at most.
pub const DEFAULT_HISTORY_RUNS: u32 = 20;
pub const MAX_HISTORY_RUNS: u32 = 1_000;

/// Where a calibrated dry run takes its durations from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationsFrom {
    /// One run, by id.
    Run(i64),
    /// The newest finished run of the pipeline.
    Last,
    /// Each notebook's median over the pipeline's last successful runs.
    P50,
    /// Each notebook's 90th percentile over them: a pessimistic plan.
    P90,
}

impl DurationsFrom {
    pub const HELP: &'static str = "a run id, `last`, `p50` or `p90`";

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "last" => Some(DurationsFrom::Last),
            "p50" => Some(DurationsFrom::P50),
            "p90" => Some(DurationsFrom::P90),
            other => other
                .strip_prefix('#')
                .unwrap_or(other)
                .parse()
                .ok()
                .filter(|id| *id > 0)
                .map(DurationsFrom::Run),
        }
    }

    pub fn name(self) -> String {
        match self {
            DurationsFrom::Run(id) => id.to_string(),
            DurationsFrom::Last => "last".into(),
            DurationsFrom::P50 => "p50".into(),
            DurationsFrom::P90 => "p90".into(),
        }
    }

    fn quantile(self) -> Option<f64> {
        match self {
            DurationsFrom::P50 => Some(0.5),
            DurationsFrom::P90 => Some(0.9),
            DurationsFrom::Run(_) | DurationsFrom::Last => None,
        }
    }

    /// The runs this choice reads, newest first, out of `runs` (the history, newest first):
    /// only runs of the pipeline named `pipeline`; for a statistic, its last `limit`
    /// successful runs; for `last`, the newest one that is not running.
    pub fn pick(self, runs: &[RunSummary], pipeline: &str, limit: u32) -> Vec<i64> {
        let mine = runs.iter().filter(|r| r.pipeline == pipeline);
        match self {
            DurationsFrom::Run(id) => vec![id],
            DurationsFrom::Last => mine
                .filter(|r| r.status != RunStatus::Running)
                .map(|r| r.id)
                .take(1)
                .collect(),
            DurationsFrom::P50 | DurationsFrom::P90 => mine
                .filter(|r| r.status == RunStatus::Succeeded)
                .map(|r| r.id)
                .take(limit.min(MAX_HISTORY_RUNS) as usize)
                .collect(),
        }
    }
}

impl Serialize for DurationsFrom {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DurationsFrom::Run(id) => s.serialize_i64(*id),
            other => s.serialize_str(&other.name()),
        }
    }
}

impl<'de> Deserialize<'de> for DurationsFrom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Id(i64),
            Name(String),
        }
        let parsed = match Raw::deserialize(d)? {
            Raw::Id(id) => (id > 0).then_some(DurationsFrom::Run(id)),
            Raw::Name(s) => DurationsFrom::parse(&s),
        };
        parsed.ok_or_else(|| {
            serde::de::Error::custom(format!("`durations_from`: expected {}", Self::HELP))
        })
    }
}

/// Which runs a calibration reads, on its own (the query of `GET
/// /api/pipelines/{file}/calibration`); a dry run's options carry the same two fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationQuery {
    pub durations_from: DurationsFrom,
    #[serde(default = "default_history_runs")]
    pub history_runs: u32,
}

fn default_history_runs() -> u32 {
    DEFAULT_HISTORY_RUNS
}

impl CalibrationQuery {
    /// `Err` when `history_runs` is out of range.
    pub fn validate(&self) -> Result<(), OptionError> {
        check_count("history_runs", self.history_runs, MAX_HISTORY_RUNS).map(drop)
    }
}

/// What one real run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunMeasurement {
    pub run_id: i64,
    /// Seconds of each notebook's last attempt, if it succeeded.
    pub durations: BTreeMap<String, f64>,
    /// Start of each notebook's first attempt, seconds after the run's first notebook start.
    pub starts: BTreeMap<String, f64>,
    /// From the trigger to the Spark session reporting its capacity.
    pub session_startup_secs: Option<f64>,
    /// Median seconds from an attempt's end to the next start it allowed (starts of notebooks
    /// with dependencies; each measured from the last end before it).
    pub dispatch_latency_secs: Option<f64>,
    /// Slots the live Spark application reported.
    pub live_capacity_slots: Option<u32>,
    /// From the first notebook start to the last notebook end: the figure a dry run with no
    /// start-up predicts.
    pub makespan_secs: Option<f64>,
    /// The iteration ids of each for-each whose list the run read (group id → ids).
    pub iterations: BTreeMap<String, Vec<String>>,
}

impl RunMeasurement {
    /// Measures a run from its log; `None` when the log does not begin with `RunStarted`.
    /// `plan` tells which notebooks have dependencies.
    pub fn of(plan: &Plan, run_id: i64, events: &[StoredEvent]) -> Option<Self> {
        let record = RunRecord::fold(run_id, events)?;
        let secs = |ms: i64| ms as f64 / 1000.0;
        let session_ready = events.iter().find_map(|e| match &e.event {
            RunEvent::SessionChanged {
                capacity: Some(c), ..
            } => Some((e.at_ms, *c)),
            _ => None,
        });
        let durations = measured_durations(&record);
        let first_start = first_notebook_start_ms(&record);
        let starts = first_start.map_or_else(BTreeMap::new, |first| {
            record
                .tasks
                .iter()
                .filter_map(|(id, t)| {
                    let a = t.attempts.first()?;
                    Some((id.clone(), secs(a.started_ms - first)))
                })
                .collect()
        });
        let has_deps: BTreeMap<&str, bool> = plan
            .tasks
            .iter()
            .zip(&plan.deps)
            .map(|(t, d)| (t.id.as_str(), !d.is_empty()))
            .collect();
        let mut ends: Vec<i64> = record
            .tasks
            .values()
            .flat_map(|t| t.attempts.iter().filter_map(|a| a.ended_ms))
            .collect();
        ends.sort_unstable();
        let latencies: Vec<f64> = record
            .tasks
            .iter()
            .filter(|(id, _)| has_deps.get(id.as_str()).copied().unwrap_or(false))
            .filter_map(|(_, t)| {
                let start = t.attempts.first()?.started_ms;
                let before = ends.partition_point(|&e| e <= start);
                let prev = ends.get(before.checked_sub(1)?)?;
                Some(secs(start - prev))
            })
            .collect();
        Some(RunMeasurement {
            run_id,
            durations,
            starts,
            session_startup_secs: session_ready
                .map(|(at, _)| secs((at - record.started_ms).max(0))),
            dispatch_latency_secs: quantile(latencies, 0.5),
            live_capacity_slots: session_ready.map(|(_, c)| c),
            makespan_secs: notebook_span_secs(&record),
            iterations: events
                .iter()
                .filter_map(|e| match &e.event {
                    RunEvent::ForEachExpanded {
                        task,
                        iterations,
                        error: None,
                    } => Some((task.clone(), iterations.clone())),
                    _ => None,
                })
                .collect(),
        })
    }
}

/// Seconds of each notebook's last attempt, if it succeeded: what "use measured durations" and
/// a calibration take as the notebook's duration.
pub fn measured_durations(run: &RunRecord) -> BTreeMap<String, f64> {
    run.tasks
        .iter()
        .filter_map(|(id, t)| {
            let last = t.attempts.last()?;
            let end = last.ended_ms?;
            (last.outcome == Some(AttemptOutcome::Succeeded))
                .then(|| (id.clone(), (end - last.started_ms).max(0) as f64 / 1000.0))
        })
        .collect()
}

fn first_notebook_start_ms(run: &RunRecord) -> Option<i64> {
    run.tasks
        .values()
        .filter_map(|t| t.attempts.first().map(|a| a.started_ms))
        .min()
}

/// A run's makespan as a dry run without start-up predicts it: from the first notebook start
/// to the last notebook end (`None` before a notebook ended).
pub fn notebook_span_secs(run: &RunRecord) -> Option<f64> {
    RunSummary::of(run).notebook_span_secs()
}

/// One notebook's spread over the runs a statistic read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotebookStats {
    pub id: String,
    /// Runs in which it succeeded.
    pub runs: usize,
    pub p50_secs: f64,
    pub p90_secs: f64,
}

/// What a calibrated dry run took from history; shown in the report beside the prediction.
/// It travels too (`GET /api/pipelines/{file}/calibration`, the JavaScript API's `simulate`):
/// the server reads the history, the browser simulates with what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub durations_from: DurationsFrom,
    /// The runs read, newest first.
    pub runs: Vec<i64>,
    /// The duration used for each notebook that has one.
    pub durations: BTreeMap<String, f64>,
    /// Notebooks without a measurement: they keep `estimate_secs`.
    pub estimated: Vec<String>,
    /// Measured in the newest run read (median over them for a statistic).
    pub session_startup_secs: Option<f64>,
    pub dispatch_latency_secs: Option<f64>,
    pub live_capacity_slots: Option<u32>,
    /// The newest run's first notebook start to last notebook end.
    pub real_makespan_secs: Option<f64>,
    /// Per notebook over the runs read (empty for a single run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stats: Vec<NotebookStats>,
    /// The iterations each for-each whose list is read at run time had in the newest run read
    /// that reached it (group id → iteration ids): the dry run runs these instead of
    /// `expected_items`, under the ids the measured durations have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub iterations: BTreeMap<String, Vec<String>>,
}

impl Calibration {
    /// The calibration of `plan` from `measured` (the runs `from` picked, newest first).
    pub fn of(plan: &Plan, from: DurationsFrom, measured: &[RunMeasurement]) -> Self {
        let newest = measured.first();
        let median = |f: &dyn Fn(&RunMeasurement) -> Option<f64>| {
            quantile(measured.iter().filter_map(f).collect(), 0.5)
        };
        let mut iterations: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in measured {
            for (group, ids) in &m.iterations {
                if plan.index_of(group).is_some() {
                    iterations
                        .entry(group.clone())
                        .or_insert_with(|| ids.clone());
                }
            }
        }
        // Iterations are notebooks of the runs, measured under their own ids.
        let ids: Vec<&str> = notebook_ids(plan)
            .chain(iterations.values().flatten().map(String::as_str))
            .collect();
        let stats: Vec<NotebookStats> = match from.quantile() {
            Some(_) => ids
                .iter()
                .filter_map(|&id| {
                    let values: Vec<f64> = measured
                        .iter()
                        .filter_map(|m| m.durations.get(id).copied())
                        .collect();
                    let runs = values.len();
                    Some(NotebookStats {
                        id: id.to_string(),
                        runs,
                        p50_secs: quantile(values.clone(), 0.5)?,
                        p90_secs: quantile(values, 0.9)?,
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let durations: BTreeMap<String, f64> = match from.quantile() {
            Some(q) => stats
                .iter()
                .map(|s| (s.id.clone(), if q > 0.5 { s.p90_secs } else { s.p50_secs }))
                .collect(),
            None => newest.map(|m| m.durations.clone()).unwrap_or_default(),
        };
        let estimated = ids
            .iter()
            .filter(|id| !durations.contains_key(**id))
            .map(|id| id.to_string())
            .collect();
        Calibration {
            durations_from: from,
            runs: measured.iter().map(|m| m.run_id).collect(),
            estimated,
            session_startup_secs: median(&|m| m.session_startup_secs),
            dispatch_latency_secs: median(&|m| m.dispatch_latency_secs),
            live_capacity_slots: newest.and_then(|m| m.live_capacity_slots),
            real_makespan_secs: newest.and_then(|m| m.makespan_secs),
            durations,
            stats,
            iterations,
        }
    }
}

impl Calibration {
    /// Every figure out of its range, as `calibration.FIELD`; empty when usable. A calibration
    /// the server measured always is; one that comes from outside (the JavaScript API) may not
    /// be, and a dry run refuses it rather than simulate negative durations.
    pub fn validate(&self) -> Vec<OptionError> {
        let numbers = [
            (
                "calibration.session_startup_secs",
                self.session_startup_secs,
                MAX_NODE_STARTUP_SECS,
            ),
            (
                "calibration.dispatch_latency_secs",
                self.dispatch_latency_secs,
                MAX_DISPATCH_LATENCY_SECS,
            ),
            (
                "calibration.real_makespan_secs",
                self.real_makespan_secs,
                MAX_SECS,
            ),
        ];
        let mut errors: Vec<OptionError> = numbers
            .into_iter()
            .filter_map(|(field, v, max)| check_number(field, v?, max).err())
            .collect();
        if let Some(slots) = self.live_capacity_slots {
            let max = MAX_EXECUTORS.saturating_mul(MAX_EXECUTOR_CORES);
            errors.extend(check_count("calibration.live_capacity_slots", slots, max).err());
        }
        errors.extend(check_durations("calibration.durations", &self.durations).err());
        // The rest is only shown, but a dry run should not carry an unbounded list either.
        let iterations = self.iterations.values().map(Vec::len);
        if iterations.clone().any(|n| n > MAX_ITEMS) || iterations.sum::<usize>() > MAX_DURATIONS {
            errors.push(OptionError {
                field: "calibration.iterations",
                message: format!(
                    "at most {MAX_ITEMS} iterations of a for-each and {MAX_DURATIONS} in all"
                ),
            });
        }
        if self.estimated.len() + self.stats.len() > MAX_DURATIONS
            || self.runs.len() > MAX_HISTORY_RUNS as usize
        {
            errors.push(OptionError {
                field: "calibration",
                message: format!("at most {MAX_DURATIONS} notebooks and {MAX_HISTORY_RUNS} runs"),
            });
        }
        errors
    }
}

/// The `q` quantile of `values` with linear interpolation between neighbours (`None` when
/// empty).
pub fn quantile(mut values: Vec<f64>, q: f64) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let last = values.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    let hi = (lo + 1).min(last);
    Some(values[lo] + (values[hi] - values[lo]) * frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::LayeredDag;
    use serde_json::json;

    fn record(id: i64, pipeline: &str, status: &str) -> RunSummary {
        RunSummary {
            id,
            pipeline: pipeline.into(),
            file: "p.toml".into(),
            status: RunStatus::parse(status).expect("a status"),
            started_ms: 0,
            ended_ms: None,
            resumed_from: None,
            started_by: None,
            task_counts: Default::default(),
            first_start_ms: None,
            last_end_ms: None,
            trigger: None,
        }
    }

    #[test]
    fn choices_pick_runs_of_the_pipeline_newest_first() {
        let runs = [
            record(9, "p", "running"),
            record(8, "other", "succeeded"),
            record(7, "p", "failed"),
            record(6, "p", "succeeded"),
            record(5, "p", "succeeded"),
            record(4, "p", "succeeded"),
        ];
        assert_eq!(DurationsFrom::Last.pick(&runs, "p", 20), [7]);
        assert_eq!(DurationsFrom::P90.pick(&runs, "p", 2), [6, 5]);
        assert_eq!(DurationsFrom::P50.pick(&runs, "p", 20), [6, 5, 4]);
        assert_eq!(DurationsFrom::Run(8).pick(&runs, "p", 20), [8]);
        assert_eq!(DurationsFrom::parse("#12"), Some(DurationsFrom::Run(12)));
        assert_eq!(DurationsFrom::parse("0"), None);
        assert_eq!(DurationsFrom::parse("p75"), None);
    }

    #[test]
    fn a_calibration_from_outside_is_checked_like_the_options() {
        let c: Calibration = serde_json::from_value(json!({
            "durations_from": "p50", "runs": [1], "durations": {"a": -5.0, "b": 3.0},
            "estimated": [], "session_startup_secs": -1.0, "dispatch_latency_secs": 0.5,
            "live_capacity_slots": 0, "real_makespan_secs": null
        }))
        .expect("a calibration");
        let fields: Vec<&str> = c.validate().iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "calibration.session_startup_secs",
                "calibration.live_capacity_slots",
                "calibration.durations"
            ]
        );
        let fine = Calibration {
            durations: BTreeMap::from([("a".to_string(), 5.0)]),
            session_startup_secs: Some(12.0),
            live_capacity_slots: Some(4),
            ..c
        };
        assert_eq!(fine.validate(), []);
    }

    #[test]
    fn quantiles_interpolate_between_neighbours() {
        assert_eq!(quantile(vec![], 0.5), None);
        assert_eq!(quantile(vec![3.0], 0.9), Some(3.0));
        assert_eq!(quantile(vec![4.0, 1.0, 3.0, 2.0], 0.5), Some(2.5));
        assert_eq!(quantile((1..=11).map(f64::from).collect(), 0.9), Some(10.0));
    }

    #[test]
    fn statistics_take_each_notebooks_median_or_p90_over_the_runs() {
        let plan = LayeredDag::benchmark(3, 1).generate();
        let ids: Vec<String> = plan.tasks.iter().map(|t| t.id.clone()).collect();
        let run = |id: i64, secs: f64| RunMeasurement {
            run_id: id,
            // The last notebook only ran in the newest run.
            durations: ids
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 2 || id == 3)
                .map(|(_, t)| (t.clone(), secs))
                .collect(),
            starts: BTreeMap::new(),
            session_startup_secs: Some(secs),
            dispatch_latency_secs: None,
            live_capacity_slots: Some(id as u32),
            makespan_secs: Some(secs * 10.0),
            iterations: BTreeMap::new(),
        };
        let measured = [run(3, 30.0), run(2, 10.0), run(1, 20.0)];
        let p90 = Calibration::of(&plan, DurationsFrom::P90, &measured);
        assert_eq!(p90.runs, [3, 2, 1]);
        assert_eq!(p90.durations[&ids[0]], 28.0);
        assert_eq!(p90.durations[&ids[2]], 30.0, "one run is its own p90");
        assert_eq!(p90.stats[0].p50_secs, 20.0);
        assert_eq!(p90.stats[2].runs, 1);
        assert_eq!(p90.session_startup_secs, Some(20.0));
        assert_eq!(p90.dispatch_latency_secs, None);
        assert_eq!(
            (p90.live_capacity_slots, p90.real_makespan_secs),
            (Some(3), Some(300.0))
        );
        let p50 = Calibration::of(&plan, DurationsFrom::P50, &measured);
        assert_eq!(p50.durations[&ids[0]], 20.0);
        let one = Calibration::of(&plan, DurationsFrom::Run(2), &measured[1..2]);
        assert_eq!(one.estimated, [ids[2].clone()]);
        assert!(one.stats.is_empty());
    }
}
