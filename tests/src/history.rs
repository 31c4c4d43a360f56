//! Finished runs written straight into a history, as `spool run` would have logged them: the
//! calibration tests need a known history without waiting for Spark.

use serde_json::json;
use spool_core::runlog::RunEvent;
use spool_server::fs_sources::DiskSources;
use spool_server::history::History;
use std::path::Path;

/// Session start-up of a written run: 20 s from the trigger to Spark reporting
/// [`CAPACITY_SLOTS`].
pub const SESSION_STARTUP_MS: i64 = 20_000;
pub const CAPACITY_SLOTS: u32 = 4;
/// The Spark UI the written runs' session reports (a local Spark's default address).
pub const LOCAL_SPARK_UI: &str = "http://127.0.0.1:4040/";
/// From one notebook's end to the next one's start.
pub const DISPATCH_LATENCY_MS: i64 = 400;

fn event(v: serde_json::Value) -> RunEvent {
    serde_json::from_value(v).expect("a run event")
}

/// The plan of `file` in `pipelines` as a run records it (`RunStarted`'s `plan`).
pub fn recorded_plan(pipelines: &Path, file: &str) -> serde_json::Value {
    let sources = DiskSources::new(pipelines).expect("the pipelines folder");
    let loaded = spool_core::dag::load(file, &sources);
    let plan = loaded
        .plan
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
    serde_json::to_value(plan).expect("plan JSON")
}

/// The example's plan (`examples/daily_sales.toml`) as a run records it.
pub fn example_plan() -> serde_json::Value {
    recorded_plan(&crate::root().join("examples"), "daily_sales.toml")
}

/// A succeeded run of `pipeline` (in `file`, which `plan` is the recorded plan of) in the
/// history of `data`, started at `start_ms`: its notebooks one after another, each taking its
/// milliseconds. Returns the run's id.
pub fn write_finished_run(
    data: &Path,
    run: (&str, &str, &serde_json::Value),
    start_ms: i64,
    notebooks: &[(String, i64)],
) -> i64 {
    let succeeded: Vec<(String, i64, &str)> = notebooks
        .iter()
        .map(|(task, ms)| (task.clone(), *ms, "succeeded"))
        .collect();
    write_run_with_outcomes(data, run, start_ms, &succeeded)
}

/// As [`write_finished_run`], each notebook's one attempt ending with its outcome
/// (`succeeded`, `failed`, …); the run failed if one did not succeed.
pub fn write_run_with_outcomes(
    data: &Path,
    (pipeline, file, plan): (&str, &str, &serde_json::Value),
    start_ms: i64,
    notebooks: &[(String, i64, &str)],
) -> i64 {
    let history = History::open(data).expect("history");
    let started = event(
        json!({"type": "run_started", "pipeline": pipeline, "file": file,
        "params": {}, "resumed_from": null, "plan": plan}),
    );
    let id = history.create_run(&started, start_ms).expect("a run");
    let log = |v: serde_json::Value, at: i64| {
        history.append(id, &event(v), at).expect("an event");
    };
    let mut at = start_ms + SESSION_STARTUP_MS;
    log(
        json!({"type": "session_changed", "session": "0", "state": "idle",
               "capacity": CAPACITY_SLOTS, "spark_ui": LOCAL_SPARK_UI}),
        at,
    );
    for (task, ms, outcome) in notebooks {
        at += DISPATCH_LATENCY_MS;
        log(
            json!({"type": "task_started", "task": task, "attempt": 1}),
            at,
        );
        at += ms;
        log(
            json!({"type": "task_finished", "task": task, "attempt": 1, "outcome": outcome}),
            at,
        );
    }
    let status = match notebooks.iter().all(|(_, _, o)| *o == "succeeded") {
        true => "succeeded",
        false => "failed",
    };
    log(json!({"type": "run_finished", "status": status}), at + 100);
    id
}

/// A succeeded run of the example (`daily_sales`, its plan recorded) in the history of `data`:
/// `load_orders` took 3 s, then `load_fx_rates` 2 s; the other notebooks have no record.
pub fn write_example_run(data: &Path) -> i64 {
    write_finished_run(
        data,
        ("daily_sales", "daily_sales.toml", &example_plan()),
        1_750_000_000_000,
        &[
            ("load_orders".into(), 3_000),
            ("load_fx_rates".into(), 2_000),
        ],
    )
}

/// `count` succeeded runs of the example (`daily_sales`), an hour apart, each slower than the
/// one before: in run k (from 1), the i-th of `notebooks` takes (3 + i) × k seconds; the
/// example's other notebooks have no measurement. Returns their ids, oldest first.
pub fn write_slowing_runs(data: &Path, notebooks: &[String], count: i64) -> Vec<i64> {
    let plan = example_plan();
    (1..=count)
        .map(|k| {
            let durations: Vec<(String, i64)> = (0..)
                .zip(notebooks)
                .map(|(i, id)| (id.clone(), (3_000 + 1_000 * i) * k))
                .collect();
            write_finished_run(
                data,
                ("daily_sales", "daily_sales.toml", &plan),
                k * 3_600_000,
                &durations,
            )
        })
        .collect()
}
