//! The dry run as every front end asks for it and shows it: [`SimOptions`] (one type, one
//! [`SimOptions::validate`], one set of limits) in, [`DryRunReport`] out. `spool simulate
//! --json`, `POST /api/pipelines/{file}/simulate` and the browser serialise the same report,
//! so they agree to the digit; no front end derives a figure of its own.

use crate::calibrate::{Calibration, DurationsFrom, DEFAULT_HISTORY_RUNS, MAX_HISTORY_RUNS};
use crate::dag::{Plan, TaskKind};
use crate::sched::{Policy, RunOutcome};
use crate::sim::{
    baseline, cheapest_within, simulate, sweep, BaselineReport, BusyPoint, Durations, LowerBound,
    PoolSpec, SimSetup, SweepPoint, MAX_SWEEP_EXECUTORS,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest pool of a dry run.
pub const MAX_EXECUTORS: u32 = 100_000;
pub const MAX_EXECUTOR_CORES: u32 = 1_024;
/// Largest log-normal spread of durations.
pub const MAX_VARIATION: f64 = 5.0;
/// A day: no Spark pool takes longer to start.
pub const MAX_NODE_STARTUP_SECS: f64 = 86_400.0;
pub const MAX_PRICE_PER_NODE_HOUR: f64 = 1e6;
pub const MAX_BASELINE_NODES: u32 = 10_000;
/// A year.
pub const MAX_SECS: f64 = 31_536_000.0;
/// An hour between a dependency's end and its dependent's start.
pub const MAX_DISPATCH_LATENCY_SECS: f64 = 3_600.0;
/// Notebooks with a duration of their own (a run's, or a history statistic).
pub const MAX_DURATIONS: usize = 100_000;
/// Longest notebook id in `durations`.
pub const MAX_ID_LEN: usize = 1_024;

/// What a dry run is asked for: the CLI's flags, the body of `POST
/// /api/pipelines/{file}/simulate` (every field optional) and the browser's form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimOptions {
    /// Executors in the pool; `None`: the pipeline's `[pool]`.
    pub executors: Option<u32>,
    pub executor_cores: Option<u32>,
    /// Slots Spark really gives (a real run's live capacity) instead of executors × cores.
    pub capacity_slots: Option<u32>,
    #[serde(with = "policy_name")]
    pub policy: Policy,
    /// Seed of the random durations and failures.
    pub seed: u64,
    /// Spread of a log-normal factor (mean 1) on each duration; 0 runs them exactly.
    pub variation: f64,
    /// Chance that an attempt fails.
    pub failure_rate: f64,
    /// Seconds the shared pool takes to start; `None`: the measured session start-up of the
    /// run the durations come from, else [`PoolSpec::DEFAULT_NODE_STARTUP_SECS`].
    pub node_startup_secs: Option<f64>,
    pub price_per_node_hour: f64,
    /// Nodes each notebook's own pool holds in the baseline.
    pub baseline_min_nodes: u32,
    /// Also simulate pools of 1 to this many executors.
    pub sweep: Option<u32>,
    /// With `sweep`: the cheapest pool that finishes within this many seconds.
    pub deadline_secs: Option<f64>,
    /// Seconds from a dependency's end to its dependent's start; `None`: the measured one
    /// when calibrated, else 0.
    pub dispatch_latency_secs: Option<f64>,
    /// Seconds per notebook id replacing `estimate_secs` (and the calibration's).
    pub durations: BTreeMap<String, f64>,
    /// Calibrate from history: durations, start-up, dispatch latency and live capacity of a
    /// run (`12`, `"last"`) or each notebook's `"p50"`/`"p90"` over the last `history_runs`
    /// successful runs. Options given explicitly win over what was measured.
    pub durations_from: Option<DurationsFrom>,
    pub history_runs: u32,
    /// Values notebooks publish in the simulation, for conditions on values (`--assume
    /// check.rows=0`): see [`SimSetup::assume`].
    pub assume: BTreeMap<String, serde_json::Value>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            executors: None,
            executor_cores: None,
            capacity_slots: None,
            policy: Policy::default(),
            seed: 0,
            variation: 0.0,
            failure_rate: 0.0,
            node_startup_secs: None,
            price_per_node_hour: PoolSpec::DEFAULT_PRICE_PER_NODE_HOUR,
            baseline_min_nodes: BaselineReport::DEFAULT_MIN_NODES,
            sweep: None,
            deadline_secs: None,
            dispatch_latency_secs: None,
            durations: BTreeMap::new(),
            durations_from: None,
            history_runs: DEFAULT_HISTORY_RUNS,
            assume: BTreeMap::new(),
        }
    }
}

/// An option out of its range: the field as named in JSON, and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptionError {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

/// `Err` unless `v` is a whole number from 1 to `max`.
pub fn check_count(field: &'static str, v: u32, max: u32) -> Result<u32, OptionError> {
    if (1..=max).contains(&v) {
        Ok(v)
    } else {
        Err(OptionError {
            field,
            message: format!("a whole number from 1 to {max}"),
        })
    }
}

/// `Err` unless `v` is a finite number from 0 to `max`.
pub fn check_number(field: &'static str, v: f64, max: f64) -> Result<f64, OptionError> {
    if v.is_finite() && (0.0..=max).contains(&v) {
        Ok(v)
    } else {
        Err(OptionError {
            field,
            message: format!("a number from 0 to {max}"),
        })
    }
}

/// `Err` unless `durations` names at most [`MAX_DURATIONS`] notebooks by ids of at most
/// [`MAX_ID_LEN`] bytes, each with seconds from 0 to [`MAX_SECS`].
pub fn check_durations(
    field: &'static str,
    durations: &BTreeMap<String, f64>,
) -> Result<(), OptionError> {
    if durations.len() > MAX_DURATIONS {
        return Err(OptionError {
            field,
            message: format!("at most {MAX_DURATIONS} notebooks"),
        });
    }
    match durations
        .iter()
        .find(|(id, secs)| id.len() > MAX_ID_LEN || check_number(field, **secs, MAX_SECS).is_err())
    {
        Some((id, _)) => {
            let id: String = id.chars().take(64).collect();
            Err(OptionError {
                field,
                message: format!("`{id}`: a number of seconds from 0 to {MAX_SECS}"),
            })
        }
        None => Ok(()),
    }
}

/// Reads assumed values for [`SimOptions::assume`], each `ID.KEY=VALUE` (what notebook `ID`
/// publishes as `tasks.ID.values.KEY`) or `ID=VALUE` (its exit value), VALUE as JSON when it
/// reads as JSON and as text otherwise (`region=eu` is the string `"eu"`): the one rule of
/// `spool simulate --assume` and the browser's dry run form. Whether each names a notebook of
/// the plan is [`SimOptions::unknown_assumptions`].
pub fn parse_assumptions<'a>(
    given: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, serde_json::Value>, OptionError> {
    let mut out = BTreeMap::new();
    for pair in given {
        let shown: String = pair.chars().take(64).collect();
        let error = |message: String| OptionError {
            field: "assume",
            message,
        };
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| error(format!("`{shown}` must be ID.KEY=VALUE or ID=VALUE")))?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(error(format!("`{shown}` names no notebook before `=`")));
        }
        if out.len() >= MAX_DURATIONS {
            return Err(error(format!("at most {MAX_DURATIONS} values")));
        }
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

impl SimOptions {
    /// Every option out of its range, in field order; empty when the options are usable.
    pub fn validate(&self) -> Vec<OptionError> {
        let counts = [
            ("executors", self.executors, MAX_EXECUTORS),
            ("executor_cores", self.executor_cores, MAX_EXECUTOR_CORES),
            (
                "capacity_slots",
                self.capacity_slots,
                MAX_EXECUTORS.saturating_mul(MAX_EXECUTOR_CORES),
            ),
            (
                "baseline_min_nodes",
                Some(self.baseline_min_nodes),
                MAX_BASELINE_NODES,
            ),
            ("sweep", self.sweep, MAX_SWEEP_EXECUTORS),
            ("history_runs", Some(self.history_runs), MAX_HISTORY_RUNS),
        ];
        let numbers = [
            ("variation", Some(self.variation), MAX_VARIATION),
            ("failure_rate", Some(self.failure_rate), 1.0),
            (
                "node_startup_secs",
                self.node_startup_secs,
                MAX_NODE_STARTUP_SECS,
            ),
            (
                "price_per_node_hour",
                Some(self.price_per_node_hour),
                MAX_PRICE_PER_NODE_HOUR,
            ),
            ("deadline_secs", self.deadline_secs, MAX_SECS),
            (
                "dispatch_latency_secs",
                self.dispatch_latency_secs,
                MAX_DISPATCH_LATENCY_SECS,
            ),
        ];
        let mut errors: Vec<OptionError> = counts
            .into_iter()
            .filter_map(|(field, v, max)| check_count(field, v?, max).err())
            .chain(
                numbers
                    .into_iter()
                    .filter_map(|(field, v, max)| check_number(field, v?, max).err()),
            )
            .collect();
        errors.extend(check_durations("durations", &self.durations).err());
        if self.assume.len() > MAX_DURATIONS || self.assume.keys().any(|k| k.len() > MAX_ID_LEN) {
            errors.push(OptionError {
                field: "assume",
                message: format!(
                    "at most {MAX_DURATIONS} values, each named by at most {MAX_ID_LEN} bytes"
                ),
            });
        }
        errors
    }

    /// The `assume` keys that name no task of `plan` (`ID` or `ID.KEY`): a misspelt id would
    /// leave the conditions reading it holding, without a word.
    pub fn unknown_assumptions(&self, plan: &Plan) -> Vec<OptionError> {
        let names_a_task = |key: &str| {
            plan.tasks.iter().any(|t| {
                key.strip_prefix(t.id.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            })
        };
        self.assume
            .keys()
            .filter(|k| !names_a_task(k))
            .map(|k| OptionError {
                field: "assume",
                message: format!(
                    "`{}` names no notebook of the plan (write ID.KEY or ID)",
                    k.chars().take(64).collect::<String>()
                ),
            })
            .collect()
    }

    /// The simulation set-up on `plan`: these options, and what `calibration` measured where
    /// they leave a figure open (the live capacity only when no pool size is given).
    pub fn setup(&self, plan: &Plan, calibration: Option<&Calibration>) -> SimSetup {
        let mut setup = SimSetup::of_plan(plan);
        if let Some(e) = self.executors {
            setup.pool.executors = e;
        }
        if let Some(c) = self.executor_cores {
            setup.pool.executor_cores = c;
        }
        let pool_given = self.executors.is_some() || self.executor_cores.is_some();
        setup.pool.live_capacity_slots = self.capacity_slots.or_else(|| {
            calibration
                .filter(|_| !pool_given)
                .and_then(|c| c.live_capacity_slots)
        });
        setup.pool.node_startup_secs = self
            .node_startup_secs
            .or_else(|| calibration.and_then(|c| c.session_startup_secs))
            .unwrap_or(PoolSpec::DEFAULT_NODE_STARTUP_SECS);
        setup.pool.price_per_node_hour = self.price_per_node_hour;
        setup.policy = self.policy;
        setup.dispatch_latency_secs = self
            .dispatch_latency_secs
            .or_else(|| calibration.and_then(|c| c.dispatch_latency_secs))
            .unwrap_or(0.0);
        setup.assume.clone_from(&self.assume);
        let measured = calibration.map(|c| &c.durations);
        setup.durations = Durations {
            seed: self.seed,
            variation: self.variation,
            failure_probability: self.failure_rate,
            measured_secs: if self.durations.is_empty() && measured.is_none() {
                Vec::new()
            } else {
                plan.tasks
                    .iter()
                    .map(|t| {
                        self.durations
                            .get(&t.id)
                            .or_else(|| measured.and_then(|m| m.get(&t.id)))
                            .copied()
                    })
                    .collect()
            },
        };
        setup
    }
}

/// Shared-pool figures over the baseline's, as "baseline ÷ shared": above 1 the shared pool
/// is better (2.0 = twice as fast, or half the cost). 0 when the shared figure is 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Gain {
    pub makespan: f64,
    pub node_hours: f64,
    pub cost: f64,
}

/// How many times better `shared` is than `baseline` (lower is better for both).
pub fn gain(baseline: f64, shared: f64) -> f64 {
    if shared > 0.0 {
        baseline / shared
    } else {
        0.0
    }
}

/// One attempt on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineAttempt {
    pub id: String,
    pub attempt: u32,
    pub start_secs: f64,
    pub end_secs: f64,
    /// `succeeded`, `failed`, `timed_out`, `cancelled` or `skipped`.
    pub outcome: &'static str,
    pub slots: u32,
}

/// The dry run's answer, as the CLI prints it (`--json`), the API sends it and the browser
/// shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRunReport {
    pub pipeline: String,
    pub policy: &'static str,
    pub executors: u32,
    pub executor_cores: u32,
    pub capacity_slots: u32,
    pub node_startup_secs: f64,
    pub price_per_node_hour: f64,
    pub dispatch_latency_secs: f64,
    /// `succeeded`, `failed` or `cancelled`.
    pub outcome: &'static str,
    /// From the trigger to the run's end, start-up included; with no start-up, from the first
    /// notebook's start to the last one's end.
    pub makespan_secs: f64,
    pub lower_bound: LowerBound,
    pub utilization: f64,
    pub node_hours: f64,
    pub cost: f64,
    /// Notebook attempts in start order (a skipped notebook once, at its skip time).
    pub tasks: Vec<TimelineAttempt>,
    pub utilization_series: Vec<BusyPoint>,
    pub baseline: BaselineReport,
    pub gain: Gain,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Vec<SweepPoint>>,
    /// The cheapest sweep point within `deadline_secs` (within any time without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cheapest_within_deadline: Option<SweepPoint>,
    /// Where the durations came from and what the real run measured, when calibrated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

impl DryRunReport {
    /// The dry run of `plan` with `options` (which [`SimOptions::validate`] accepted), durations
    /// and start-up calibrated by `calibration` where the options leave them open.
    pub fn of(plan: &Plan, options: &SimOptions, calibration: Option<Calibration>) -> Self {
        let mut report = Self::without_sweep(plan, options, calibration);
        report.add_sweep(plan, options);
        report
    }

    /// The report before its sweep (which is many simulations), for a page that shows the
    /// rest first; [`DryRunReport::add_sweep`] completes it.
    pub fn without_sweep(
        plan: &Plan,
        options: &SimOptions,
        calibration: Option<Calibration>,
    ) -> Self {
        // A for-each whose list is read at run time runs what past runs had, else its
        // `expected_items`.
        let expanded = plan.with_expected_items(measured_iterations(calibration.as_ref()));
        let plan = &*expanded;
        let setup = options.setup(plan, calibration.as_ref());
        let r = simulate(plan, &setup);
        let b = baseline(plan, &setup, options.baseline_min_nodes);
        DryRunReport {
            pipeline: plan.name.clone(),
            policy: setup.policy.name(),
            executors: setup.pool.executors,
            executor_cores: setup.pool.executor_cores,
            capacity_slots: r.capacity_slots,
            node_startup_secs: setup.pool.node_startup_secs,
            price_per_node_hour: setup.pool.price_per_node_hour,
            dispatch_latency_secs: setup.dispatch_latency_secs,
            outcome: match r.run_outcome {
                RunOutcome::Succeeded => "succeeded",
                RunOutcome::Failed => "failed",
                RunOutcome::Cancelled => "cancelled",
            },
            makespan_secs: r.makespan_secs,
            lower_bound: r.lower_bound,
            utilization: r.utilization,
            node_hours: r.node_hours,
            cost: r.cost,
            tasks: r
                .attempts
                .iter()
                .map(|a| TimelineAttempt {
                    id: plan.tasks[a.task].id.clone(),
                    attempt: a.attempt,
                    start_secs: a.start_secs,
                    end_secs: a.end_secs,
                    outcome: a.outcome.name(),
                    slots: a.slots,
                })
                .collect(),
            utilization_series: r.utilization_series,
            gain: Gain {
                makespan: gain(b.makespan_secs, r.makespan_secs),
                node_hours: gain(b.node_hours, r.node_hours),
                cost: gain(b.cost, r.cost),
            },
            baseline: b,
            sweep: None,
            cheapest_within_deadline: None,
            calibration,
        }
    }

    /// Adds the pool-size sweep `options` asks for (none without `sweep`) and its cheapest
    /// point within the deadline (within any time without one).
    pub fn add_sweep(&mut self, plan: &Plan, options: &SimOptions) {
        let Some(max) = options.sweep else { return };
        let expanded = plan.with_expected_items(measured_iterations(self.calibration.as_ref()));
        let plan = &*expanded;
        let setup = options.setup(plan, self.calibration.as_ref());
        let points = sweep(plan, &setup, max);
        self.cheapest_within_deadline =
            cheapest_within(&points, options.deadline_secs.unwrap_or(f64::INFINITY));
        self.sweep = Some(points);
    }

    /// Counts of notebooks by how they ended (`succeeded`, `failed`, …), in a fixed order.
    pub fn final_counts(&self) -> Vec<(&'static str, usize)> {
        let mut last: BTreeMap<&str, &'static str> = BTreeMap::new();
        for a in &self.tasks {
            last.insert(&a.id, a.outcome);
        }
        ["succeeded", "failed", "timed_out", "cancelled", "skipped"]
            .into_iter()
            .map(|o| (o, last.values().filter(|v| **v == o).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// Notebook ids of `plan` (sub-pipeline ends have no duration to calibrate).
/// The for-each iterations a calibration measured (none without one).
fn measured_iterations(calibration: Option<&Calibration>) -> &BTreeMap<String, Vec<String>> {
    static NONE: BTreeMap<String, Vec<String>> = BTreeMap::new();
    calibration.map_or(&NONE, |c| &c.iterations)
}

pub fn notebook_ids(plan: &Plan) -> impl Iterator<Item = &str> {
    plan.tasks
        .iter()
        .filter(|t| t.kind == TaskKind::Notebook)
        .map(|t| t.id.as_str())
}

/// Policies travel by their CLI names (`critical-path`, `fifo`).
mod policy_name {
    use crate::sched::Policy;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Policy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
        let name = String::deserialize(d)?;
        Policy::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`policy`: expected one of {}, found `{name}`",
                Policy::NAMES.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::{DurationsFrom, RunMeasurement};
    use crate::dag::load_text;
    use crate::runlog::StoredEvent;
    use crate::source::MemorySources;
    use serde_json::json;

    /// a (100 s) then b (50 s), and c (10 s) alone, on the default pool (2 executors × 4 cores).
    fn plan() -> Plan {
        let text = "name = \"chain\"\n\
            [[notebook]]\nid = \"a\"\npath = \"a.py\"\nestimate_secs = 100\n\
            [[notebook]]\nid = \"b\"\npath = \"b.py\"\nestimate_secs = 50\ndepends_on = [\"a\"]\n\
            [[notebook]]\nid = \"c\"\npath = \"c.py\"\nestimate_secs = 10\n";
        let sources = MemorySources::default()
            .with("a.py", "")
            .with("b.py", "")
            .with("c.py", "");
        load_text("main.toml", text, &sources)
            .plan
            .expect("fixture loads")
    }

    fn report(options: serde_json::Value) -> serde_json::Value {
        let options: SimOptions = serde_json::from_value(options).expect("options read");
        assert_eq!(options.validate(), []);
        serde_json::to_value(DryRunReport::of(&plan(), &options, None)).expect("serializes")
    }

    #[test]
    fn the_report_has_the_documented_fields_and_figures() {
        let r = report(json!({}));
        let want = json!({
            "pipeline": "chain", "policy": "critical-path", "executors": 2,
            "executor_cores": 4, "capacity_slots": 8, "node_startup_secs": 180.0,
            "outcome": "succeeded", "makespan_secs": 330.0,
            "lower_bound": {"secs": 330.0, "startup_secs": 180.0, "critical_path_secs": 150.0,
                            "work_secs": 160.0 / 8.0, "concurrency_secs": 0.0},
            "node_hours": 3.0 * 330.0 / 3600.0,
            "tasks": [
                {"id": "a", "attempt": 1, "start_secs": 180.0, "end_secs": 280.0,
                 "outcome": "succeeded", "slots": 1},
                {"id": "c", "attempt": 1, "start_secs": 180.0, "end_secs": 190.0,
                 "outcome": "succeeded", "slots": 1},
                {"id": "b", "attempt": 1, "start_secs": 280.0, "end_secs": 330.0,
                 "outcome": "succeeded", "slots": 1},
            ],
            "utilization_series": [
                {"at_secs": 0.0, "busy_slots": 0}, {"at_secs": 180.0, "busy_slots": 2},
                {"at_secs": 190.0, "busy_slots": 1}, {"at_secs": 330.0, "busy_slots": 0},
            ],
        });
        for (key, value) in want.as_object().into_iter().flatten() {
            assert_eq!(&r[key], value, "{key}");
        }
        // Each notebook in its own 3-node pool paying the start-up: a then b, c beside them.
        assert_eq!(r["baseline"]["makespan_secs"], 180.0 + 100.0 + 180.0 + 50.0);
        assert!(r.get("sweep").is_none() && r.get("calibration").is_none());
    }

    #[test]
    fn assumptions_are_read_as_json_or_text() {
        let read = parse_assumptions(["check.rows=0", " a.ok = true ", "b=eu", "c.list=[1, 2]"])
            .expect("they read");
        assert_eq!(
            serde_json::to_value(&read).unwrap(),
            json!({"check.rows": 0, "a.ok": true, "b": "eu", "c.list": [1, 2]})
        );
        for (bad, why) in [
            (
                "check.rows",
                "`check.rows` must be ID.KEY=VALUE or ID=VALUE",
            ),
            (" = 1", "` = 1` names no notebook before `=`"),
        ] {
            let e = parse_assumptions([bad]).unwrap_err();
            assert_eq!((e.field, e.message.as_str()), ("assume", why));
        }
    }

    #[test]
    fn assumed_values_must_name_a_notebook_of_the_plan() {
        let options: SimOptions =
            serde_json::from_value(json!({"assume": {"a.rows": 0, "b": "x", "ab.rows": 1}}))
                .expect("options read");
        let unknown = options.unknown_assumptions(&plan());
        assert_eq!(unknown.len(), 1, "{unknown:?}");
        assert!(unknown[0]
            .message
            .starts_with("`ab.rows` names no notebook"));
    }

    #[test]
    fn gain_is_baseline_over_shared_so_above_one_is_better() {
        let r = report(json!({}));
        let b = &r["baseline"];
        for (gain, figure) in [
            ("makespan", "makespan_secs"),
            ("node_hours", "node_hours"),
            ("cost", "cost"),
        ] {
            let want = b[figure].as_f64().unwrap_or(0.0) / r[figure].as_f64().unwrap_or(1.0);
            assert_eq!(r["gain"][gain].as_f64(), Some(want), "{gain}");
        }
        // 510 s of baseline against 330 s shared: the shared pool is faster.
        assert!(r["gain"]["makespan"].as_f64().unwrap_or(0.0) > 1.0);
        assert_eq!(gain(10.0, 0.0), 0.0);
    }

    #[test]
    fn every_option_out_of_range_is_reported_with_its_field() {
        let options = SimOptions {
            executors: Some(MAX_EXECUTORS + 1),
            executor_cores: Some(0),
            variation: MAX_VARIATION + 0.5,
            failure_rate: 1.5,
            node_startup_secs: Some(-1.0),
            price_per_node_hour: f64::NAN,
            sweep: Some(MAX_SWEEP_EXECUTORS + 1),
            durations: BTreeMap::from([("a".to_string(), -3.0)]),
            history_runs: 0,
            ..SimOptions::default()
        };
        let fields: Vec<&str> = options.validate().iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "executors",
                "executor_cores",
                "sweep",
                "history_runs",
                "variation",
                "failure_rate",
                "node_startup_secs",
                "price_per_node_hour",
                "durations"
            ]
        );
        let biggest = SimOptions {
            executors: Some(MAX_EXECUTORS),
            sweep: Some(MAX_SWEEP_EXECUTORS),
            ..SimOptions::default()
        };
        assert_eq!(biggest.validate(), []);
    }

    #[test]
    fn options_read_from_json_refuse_unknown_fields_policies_and_sources() {
        let read = |v: serde_json::Value| {
            serde_json::from_value::<SimOptions>(v).map_err(|e| e.to_string())
        };
        assert!(read(json!({"executorz": 2})).is_err_and(|e| e.contains("executorz")));
        assert!(read(json!({"policy": "random"})).is_err_and(|e| e.contains("policy")));
        assert!(read(json!({"durations_from": "p75"})).is_err_and(|e| e.contains("durations_from")));
        let ok = read(json!({"policy": "fifo", "durations_from": 12})).expect("reads");
        assert_eq!(
            (ok.policy, ok.durations_from),
            (Policy::Fifo, Some(DurationsFrom::Run(12)))
        );
        let back: SimOptions =
            serde_json::from_value(serde_json::to_value(&ok).expect("writes")).expect("reads back");
        assert_eq!(back, ok);
    }

    #[test]
    fn given_durations_replace_estimates_and_latency_delays_dependents() {
        let r = report(json!({
            "node_startup_secs": 0, "durations": {"a": 20, "b": 5}, "dispatch_latency_secs": 2
        }));
        let spans: Vec<(&str, f64, f64)> = r["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["id"].as_str().unwrap_or(""),
                    t["start_secs"].as_f64().unwrap_or(-1.0),
                    t["end_secs"].as_f64().unwrap_or(-1.0),
                )
            })
            .collect();
        // c keeps its estimate; b starts 2 s after a's end.
        assert_eq!(
            spans,
            [("a", 0.0, 20.0), ("c", 0.0, 10.0), ("b", 22.0, 27.0)]
        );
        assert_eq!(r["makespan_secs"], 27.0);
    }

    #[test]
    fn a_calibrated_dry_run_replays_the_run_it_measured() {
        let events: Vec<StoredEvent> = serde_json::from_value(json!([
            {"seq":0,"at_ms":1000,"event":{"type":"run_started","pipeline":"chain","file":"main.toml","params":{},"resumed_from":null,"plan":{}}},
            {"seq":1,"at_ms":1500,"event":{"type":"session_changed","session":"0","state":"starting"}},
            {"seq":2,"at_ms":9000,"event":{"type":"session_changed","session":"0","state":"idle","capacity":1}},
            {"seq":3,"at_ms":10000,"event":{"type":"task_started","task":"a","attempt":1}},
            {"seq":4,"at_ms":22000,"event":{"type":"task_finished","task":"a","attempt":1,"outcome":"succeeded"}},
            {"seq":5,"at_ms":22500,"event":{"type":"task_started","task":"c","attempt":1}},
            {"seq":6,"at_ms":25500,"event":{"type":"task_finished","task":"c","attempt":1,"outcome":"succeeded"}},
            {"seq":7,"at_ms":26000,"event":{"type":"task_started","task":"b","attempt":1}},
            {"seq":8,"at_ms":30000,"event":{"type":"task_finished","task":"b","attempt":1,"outcome":"succeeded"}},
            {"seq":9,"at_ms":30100,"event":{"type":"run_finished","status":"succeeded"}}
        ]))
        .expect("events read");
        let plan = plan();
        let m = RunMeasurement::of(&plan, 7, &events).expect("a run log");
        let c = Calibration::of(&plan, DurationsFrom::Run(7), &[m]);
        assert_eq!(
            (
                c.session_startup_secs,
                c.live_capacity_slots,
                c.real_makespan_secs
            ),
            (Some(8.0), Some(1), Some(20.0))
        );
        let options = SimOptions {
            node_startup_secs: Some(0.0),
            ..SimOptions::default()
        };
        let r = DryRunReport::of(&plan, &options, Some(c));
        // One slot, as Spark reported: a, then b (longest path first) and c, each 0.5 s after
        // the end before it.
        assert_eq!(r.capacity_slots, 1);
        assert_eq!(r.dispatch_latency_secs, 0.5);
        let starts: Vec<(&str, f64)> = r
            .tasks
            .iter()
            .map(|t| (t.id.as_str(), t.start_secs))
            .collect();
        assert_eq!(starts, [("a", 0.0), ("b", 12.5), ("c", 17.0)]);
        assert_eq!(r.makespan_secs, 20.0);
        assert_eq!(r.calibration.and_then(|c| c.real_makespan_secs), Some(20.0));
    }

    #[test]
    fn a_calibrated_dry_run_runs_the_iterations_the_run_had_not_the_expected_items() {
        let text = "[[notebook]]\nid = \"list\"\npath = \"a.py\"\n\
             [[notebook]]\nid = \"copy\"\npath = \"a.py\"\ndepends_on = [\"list\"]\n\
             for_each = \"{{ tasks.list.value }}\"\nexpected_items = 10\n";
        let sources = crate::source::MemorySources::default().with("a.py", "");
        let plan = crate::dag::load_text("p.toml", text, &sources)
            .plan
            .expect("loads");
        let uncalibrated = DryRunReport::of(&plan, &SimOptions::default(), None);
        assert_eq!(
            uncalibrated
                .tasks
                .iter()
                .filter(|t| t.id.starts_with("copy["))
                .count(),
            10
        );
        let events: Vec<StoredEvent> = serde_json::from_value(json!([
            {"seq":0,"at_ms":0,"event":{"type":"run_started","pipeline":"p","file":"p.toml","params":{},"resumed_from":null,"plan":{}}},
            {"seq":1,"at_ms":1000,"event":{"type":"task_started","task":"list","attempt":1}},
            {"seq":2,"at_ms":2000,"event":{"type":"task_finished","task":"list","attempt":1,"outcome":"succeeded"}},
            {"seq":3,"at_ms":2000,"event":{"type":"for_each_expanded","task":"copy","iterations":["copy[orders]","copy[#1]"]}},
            {"seq":4,"at_ms":2000,"event":{"type":"task_started","task":"copy[orders]","attempt":1}},
            {"seq":5,"at_ms":2000,"event":{"type":"task_started","task":"copy[#1]","attempt":1}},
            {"seq":6,"at_ms":32000,"event":{"type":"task_finished","task":"copy[orders]","attempt":1,"outcome":"succeeded"}},
            {"seq":7,"at_ms":42000,"event":{"type":"task_finished","task":"copy[#1]","attempt":1,"outcome":"succeeded"}},
            {"seq":8,"at_ms":42000,"event":{"type":"run_finished","status":"succeeded"}}
        ]))
        .expect("events read");
        let m = RunMeasurement::of(&plan, 3, &events).expect("a run log");
        let c = Calibration::of(&plan, DurationsFrom::P50, &[m]);
        assert_eq!(
            c.iterations["copy"],
            ["copy[orders]", "copy[#1]"],
            "what the run read"
        );
        assert!(c.estimated.is_empty(), "{:?}", c.estimated);
        let options = SimOptions {
            node_startup_secs: Some(0.0),
            capacity_slots: Some(4),
            ..SimOptions::default()
        };
        let r = DryRunReport::of(&plan, &options, Some(c));
        let spans: Vec<(&str, f64)> = r
            .tasks
            .iter()
            .filter(|t| t.id.starts_with("copy["))
            .map(|t| (t.id.as_str(), t.end_secs - t.start_secs))
            .collect();
        assert_eq!(spans, [("copy[orders]", 30.0), ("copy[#1]", 40.0)]);
        assert_eq!(r.makespan_secs, 41.0);
    }

    #[test]
    fn the_sweep_and_its_cheapest_point_come_with_the_report() {
        let r = report(json!({"sweep": 3, "deadline_secs": 1000}));
        let points = r["sweep"].as_array().map(Vec::len);
        assert_eq!(points, Some(3));
        // Nothing runs faster on more executors, so one executor is the cheapest.
        assert_eq!(r["cheapest_within_deadline"]["executors"], 1);
    }
}
