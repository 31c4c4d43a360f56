//! Data-driven tests of pipeline loading: each folder under `tests/fixtures/{invalid,valid}/`
//! holds a root `pipeline.toml`, the files it refers to, and `expected.txt` with what a user
//! should see: the diagnostics (`file:line:col: severity: message`, one per line) and, for
//! valid pipelines, a summary of the plan. A valid case with `run.json` (`{"params": {…},
//! "published": {"task": {"value": …, "values": {…}}}}`) also shows the values each notebook
//! would start with in run 1, triggered at 2024-07-01T00:00:00Z, with those overrides and
//! upstream values. A valid case with `[schedule]` shows it and its next three fire times after
//! that instant. `SPOOL_BLESS=1 cargo test --test fixtures` rewrites
//! every `expected.txt` from the current behaviour (review the diff by eye).

use spool_core::dag::{load, LeftOut, Plan, TaskKind};
use spool_core::diag::has_errors;
use spool_core::model::{RunSettings, MAX_METADATA_BYTES};
use spool_core::params::{bind, Given, TaskValues};
use spool_core::source::MemorySources;
use spool_core::template::RunInfo;
use spool_core::value_condition::evaluate_all;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

const EXPECTED: &str = "expected.txt";

/// Every file of a case folder except `expected.txt`, by `/`-separated path inside it.
fn case_sources(dir: &Path) -> MemorySources {
    fn walk(dir: &Path, prefix: &str, out: &mut MemorySources) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("fixture file names are UTF-8");
            let rel = format!("{prefix}{name}");
            if path.is_dir() {
                walk(&path, &format!("{rel}/"), out);
            } else if rel != EXPECTED {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                out.0.insert(rel, text);
            }
        }
    }
    let mut sources = MemorySources::default();
    walk(dir, "", &mut sources);
    sources
}

/// The plan as `spool plan` would describe it, with every dependency after bridging.
fn summary(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "plan {}: {} tasks, pool {}",
        plan.name,
        plan.tasks.len(),
        serde_json::json!(plan.pool)
    );
    let levels = plan.levels();
    for (t, task) in plan.tasks.iter().enumerate() {
        let deps: Vec<String> = plan.deps[t]
            .iter()
            .map(|&(d, on)| format!("{} on {}", plan.tasks[d].id, on.name()))
            .collect();
        let what = match task.kind {
            TaskKind::Notebook => format!(
                "{}, {} slot(s), {} s",
                task.path,
                task.slots(),
                task.estimate_secs()
            ),
            TaskKind::PipelineEnd => "end of sub-pipeline".to_string(),
            TaskKind::ForEach => format!(
                "for each: {}",
                serde_json::json!(task.for_each.as_ref().map(|f| &f.items))
            ),
        };
        let _ = writeln!(
            s,
            "  [level {}] {} ({what}){}",
            levels[t],
            task.id,
            if deps.is_empty() {
                String::new()
            } else {
                format!(" <- {}", deps.join(", "))
            }
        );
        for c in &task.conditions {
            let _ = writeln!(
                s,
                "    if ({} of scope {}): {}",
                c.dependency, c.scope, c.condition.text
            );
        }
        // A sub-pipeline's end runs nothing: its params and settings mean nothing either.
        if task.kind == TaskKind::PipelineEnd {
            continue;
        }
        if let Some(f) = &task.for_each {
            let _ = writeln!(
                s,
                "    concurrency: {:?}, expected_items: {}",
                f.concurrency, f.expected_items
            );
        }
        if let Some(it) = &task.iteration {
            let _ = writeln!(s, "    item {} of {}: {}", it.index, it.group, it.item);
        }
        if !task.params.is_empty() {
            let _ = writeln!(s, "    params: {}", serde_json::json!(task.params));
        }
        let changed = non_default_settings(&task.settings);
        if !changed.is_empty() {
            let _ = writeln!(s, "    settings: {changed}");
        }
    }
    for step in &plan.inactive {
        let why = match step.why {
            LeftOut::Inactive => "inactive",
            LeftOut::NeverRuns => "never runs",
        };
        let _ = writeln!(s, "  left out: {} ({why})", step.id);
        for e in &step.bridged {
            let _ = writeln!(s, "    bridged: {} -> {} on {}", e.from, e.to, e.on.name());
        }
    }
    let (path, secs) = plan.critical_path();
    let names: Vec<&str> = path.iter().map(|&t| plan.tasks[t].id.as_str()).collect();
    let _ = writeln!(s, "critical path ({secs} s): {}", names.join(" -> "));
    if plan.concurrency != Default::default() {
        let c = plan.concurrency;
        let _ = writeln!(
            s,
            "runs at once: {}, on_overlap {}",
            c.max_runs,
            c.on_overlap.name()
        );
    }
    if let Some(schedule) = &plan.schedule {
        let _ = writeln!(s, "schedule: {}", serde_json::json!(schedule));
        for t in schedule.upcoming(TRIGGER_MS, 3) {
            let zone = schedule.timezone.name();
            let _ = writeln!(s, "  {} {zone} = {} UTC", t.local, t.utc);
        }
    }
    s
}

/// When the fixtures' run is triggered, and what their schedules' next fire times follow:
/// 2024-07-01T00:00:00Z.
const TRIGGER_MS: i64 = 1_719_792_000_000;

/// The run settings that differ from the built-in defaults, as `key = value` pairs (slots and
/// estimate are shown with the task already).
fn non_default_settings(settings: &RunSettings) -> String {
    let of = |s: &RunSettings| match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let defaults = of(&RunSettings::default());
    of(settings)
        .into_iter()
        .filter(|(k, v)| defaults.get(k) != Some(v) && k != "slots" && k != "estimate_secs")
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The values each notebook starts with in the run `run.json` describes.
fn resolved(plan: &Plan, run: &str) -> String {
    let run: serde_json::Value = serde_json::from_str(run).expect("run.json is JSON");
    let given: Given = serde_json::from_value(run["params"].clone()).unwrap_or_default();
    let published: BTreeMap<String, TaskValues> =
        serde_json::from_value(run["published"].clone()).unwrap_or_default();
    let info = RunInfo {
        id: 1,
        trigger_ms: TRIGGER_MS,
    };
    let mut s = format!("run 1 with {}:\n", serde_json::json!(given));
    let bound = match bind(plan, &given, info) {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(s, "  refused: {e}");
            return s;
        }
    };
    let _ = writeln!(
        s,
        "  pipeline: {}",
        serde_json::json!(bound.pipeline_values())
    );
    let values = |t: usize| published.get(&plan.tasks[t].id).cloned();
    for (t, task) in plan.tasks.iter().enumerate() {
        let lookup = |scope: usize, src: &_| bound.value_of(plan, scope, src, &values);
        for verdict in evaluate_all(&task.conditions, &lookup) {
            let _ = writeln!(s, "  {} if: {}", task.id, serde_json::json!(verdict));
        }
        if task.kind == TaskKind::Notebook {
            let got = match bound.params_for(plan, t, &values) {
                Ok(v) => serde_json::json!(v).to_string(),
                Err(e) => format!("cannot start: {e}"),
            };
            let _ = writeln!(s, "  {}: {got}", task.id);
        }
    }
    s
}

/// What loading the case shows a user; `Err` when the outcome contradicts the folder it is in.
fn render(dir: &Path, expect_valid: bool) -> Result<String, String> {
    let sources = case_sources(dir);
    let loaded = load("pipeline.toml", &sources);
    let mut out = String::new();
    for d in &loaded.diagnostics {
        let _ = writeln!(out, "{d}");
    }
    match (&loaded.plan, expect_valid) {
        (Some(plan), true) => {
            out.push_str(&summary(plan));
            if let Some(run) = sources.0.get("run.json") {
                out.push_str(&resolved(plan, run));
            }
        }
        (None, false) if has_errors(&loaded.diagnostics) => {}
        _ => {
            return Err(format!(
                "expected the pipeline to be {}, got:\n{out}",
                if expect_valid { "valid" } else { "invalid" }
            ))
        }
    }
    Ok(out)
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures under {}", root.display());
    dirs
}

fn check_all(kind: &str, expect_valid: bool) {
    let bless = std::env::var_os("SPOOL_BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for dir in cases(kind) {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let actual = match render(&dir, expect_valid) {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{kind}/{name}: {e}"));
                continue;
            }
        };
        let expected_path = dir.join(EXPECTED);
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expected.txt");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{kind}/{name}: output differs from {EXPECTED}\n--- expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed (SPOOL_BLESS=1 rewrites expected.txt):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_pipelines_report_every_problem() {
    check_all("invalid", false);
}

#[test]
fn valid_pipelines_expand_bridge_and_order() {
    check_all("valid", true);
}

#[test]
fn metadata_over_the_size_limit_is_refused_before_parsing() {
    // Valid TOML, so only the size can be the problem.
    let mut text = String::from("name = \"big\"\n");
    while text.len() <= MAX_METADATA_BYTES {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let sources = MemorySources::default().with("pipeline.toml", &text);
    let loaded = load("pipeline.toml", &sources);
    assert!(loaded.plan.is_none());
    let messages: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        messages,
        [format!(
            "pipeline.toml:1:1: error: metadata file is {} bytes, over the 10 MiB limit; split it into sub-pipelines",
            text.len()
        )]
    );
}
