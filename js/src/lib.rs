//! `spool-core` as a JavaScript library (wasm-bindgen): a CI job, an editor extension or a web
//! page can check, plan, simulate, lay out and import Spool pipelines without the server.
//! Values cross the boundary as JavaScript objects through serde-wasm-bindgen (never JSON
//! strings); field names are the same as in the HTTP API's JSON. See docs/js.md.
//!
//! Files are passed as an object from path (relative to the pipeline's folder) to text: the
//! sub-pipelines and notebooks the pipeline references. Nothing here touches a disk.

use serde::de::DeserializeOwned;
use serde::Serialize;
use spool_core::calibrate::Calibration;
use spool_core::dag::{self, Loaded, Plan};
use spool_core::diag::Diagnostic;
use spool_core::dry_run::{DryRunReport, OptionError, SimOptions};
use spool_core::import::{self, Target};
use spool_core::layout::{draw_plan, LayoutOptions, PlanDrawing};
use spool_core::source::MemorySources;
use std::collections::BTreeMap;
use wasm_bindgen::prelude::*;

/// The root file's name when the caller gives none.
const DEFAULT_PATH: &str = "pipeline.toml";

/// `value` read as `T`. Through a `serde_json::Value` tree (built by serde-wasm-bindgen, no
/// JSON text): serde-wasm-bindgen reads a struct's known fields only, so an option misspelt
/// would be ignored silently; the tree keeps every key, and `T`'s `deny_unknown_fields` sees it.
fn from_js<T: DeserializeOwned>(value: JsValue, what: &str) -> Result<T, JsError> {
    let error = |e: &dyn std::fmt::Display| JsError::new(&format!("{what}: {e}"));
    let tree: serde_json::Value = serde_wasm_bindgen::from_value(value).map_err(|e| error(&e))?;
    serde_json::from_value(tree).map_err(|e| error(&e))
}

/// `value` read as `T`; nothing (`undefined`, `null`) is `T`'s default.
fn from_js_or_default<T: DeserializeOwned + Default>(
    value: JsValue,
    what: &str,
) -> Result<T, JsError> {
    if value.is_undefined() || value.is_null() {
        Ok(T::default())
    } else {
        from_js(value, what)
    }
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    // Maps as plain objects and 64-bit integers as numbers, as JSON would have them.
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()))
}

/// `{ "path": "text", … }`, or nothing; `what` names the argument in errors.
fn sources(files: JsValue, what: &str) -> Result<MemorySources, JsError> {
    from_js_or_default::<BTreeMap<String, String>>(files, what).map(MemorySources)
}

fn load(text: &str, files: JsValue, path: Option<String>) -> Result<Loaded, JsError> {
    let sources = sources(files, "files")?;
    let path = path.unwrap_or_else(|| DEFAULT_PATH.to_string());
    Ok(dag::load_text(&path, text, &sources))
}

/// What `validate` answers.
#[derive(Serialize)]
struct Validation {
    /// No errors (warnings allowed).
    valid: bool,
    diagnostics: Vec<Diagnostic>,
}

/// Checks a pipeline (`text`, the file at `path`, default `pipeline.toml`) and everything it
/// references in `files`: `{ valid, diagnostics: [{ file, line, col, severity, message, … }] }`.
#[wasm_bindgen]
pub fn validate(text: &str, files: JsValue, path: Option<String>) -> Result<JsValue, JsError> {
    let loaded = load(text, files, path)?;
    to_js(&Validation {
        valid: loaded.plan.is_some(),
        diagnostics: loaded.diagnostics,
    })
}

/// What `plan` answers: the plan is absent when there are errors.
#[derive(Serialize)]
struct Planned {
    plan: Option<Plan>,
    /// Topological level of each task, in the plan's task order.
    levels: Vec<usize>,
    critical_path: Vec<String>,
    critical_path_secs: f64,
    diagnostics: Vec<Diagnostic>,
}

/// The expanded DAG: `{ plan, levels, critical_path, critical_path_secs, diagnostics }`.
#[wasm_bindgen]
pub fn plan(text: &str, files: JsValue, path: Option<String>) -> Result<JsValue, JsError> {
    let Loaded { plan, diagnostics } = load(text, files, path)?;
    let (levels, critical_path, critical_path_secs) = match &plan {
        Some(p) => {
            let (path, secs) = p.critical_path();
            let ids = path.iter().map(|&t| p.tasks[t].id.clone()).collect();
            (p.levels(), ids, secs)
        }
        None => (Vec::new(), Vec::new(), 0.0),
    };
    to_js(&Planned {
        plan,
        levels,
        critical_path,
        critical_path_secs,
        diagnostics,
    })
}

/// What `simulate` answers: a report only when the pipeline and the options are valid.
#[derive(Serialize)]
struct Simulated {
    report: Option<DryRunReport>,
    option_errors: Vec<OptionError>,
    diagnostics: Vec<Diagnostic>,
}

/// A dry run on a simulated pool. `options` are those of `POST /api/pipelines/{file}/simulate`
/// and `spool simulate --json` (every field optional); the report is the same type.
/// `calibration` is what `GET /api/pipelines/{file}/calibration` answers (the history is the
/// server's): durations, start-up, dispatch latency and capacity measured by real runs. It is
/// required exactly when `options.durations_from` is given, and must be of that choice.
#[wasm_bindgen]
pub fn simulate(
    text: &str,
    files: JsValue,
    options: JsValue,
    path: Option<String>,
    calibration: JsValue,
) -> Result<JsValue, JsError> {
    let options: SimOptions = from_js_or_default(options, "options")?;
    let calibration: Option<Calibration> = from_js_or_default(calibration, "calibration")?;
    if options.durations_from != calibration.as_ref().map(|c| c.durations_from) {
        return Err(JsError::new(
            "calibration: give the calibration of `durations_from` (GET \
             /api/pipelines/{file}/calibration), and only with it",
        ));
    }
    let Loaded { plan, diagnostics } = load(text, files, path)?;
    let option_errors = options.validate();
    let report = plan
        .filter(|_| option_errors.is_empty())
        .map(|p| DryRunReport::of(&p, &options, calibration));
    to_js(&Simulated {
        report,
        option_errors,
        diagnostics,
    })
}

/// What `layout` answers: the drawing is absent when there are errors.
#[derive(Serialize)]
struct Drawn {
    drawing: Option<PlanDrawing>,
    diagnostics: Vec<Diagnostic>,
}

/// The DAG view's layered layout: node boxes and edge polylines in one coordinate space.
#[wasm_bindgen]
pub fn layout(text: &str, files: JsValue, path: Option<String>) -> Result<JsValue, JsError> {
    let Loaded { plan, diagnostics } = load(text, files, path)?;
    let drawing = plan.map(|p| draw_plan(&p, &LayoutOptions::default()));
    to_js(&Drawn {
        drawing,
        diagnostics,
    })
}

/// Imports a Synapse/ADF pipeline JSON (`text`, named `label`). `pipelines` holds the
/// pipelines its `ExecutePipeline` activities name (`<name>.json`), `existing` what the output
/// folder holds already; `main` names the main output file. Answers `{ files: [{ path, text }],
/// report: { findings }, notebooks_to_provide }`; `files` is empty when the report has errors.
#[wasm_bindgen(js_name = importSynapse)]
pub fn import_synapse(
    label: &str,
    text: &str,
    pipelines: JsValue,
    main: &str,
    existing: JsValue,
) -> Result<JsValue, JsError> {
    let pipelines = sources(pipelines, "pipelines")?;
    let existing = sources(existing, "existing")?;
    let target = Target {
        main,
        existing: &existing,
    };
    to_js(&import::import_synapse(label, text, &pipelines, &target))
}

/// Imports Genie metadata (CSV, named `label`); answers as `importSynapse`.
#[wasm_bindgen(js_name = importGenie)]
pub fn import_genie(label: &str, text: &str, existing: JsValue) -> Result<JsValue, JsError> {
    let existing = sources(existing, "existing")?;
    to_js(&import::import_genie(label, text, &existing))
}

/// Imports a runMultiple DAG (JSON, named `label`) into `main`; answers as `importSynapse`.
#[wasm_bindgen(js_name = importRunMultiple)]
pub fn import_run_multiple(
    label: &str,
    text: &str,
    main: &str,
    existing: JsValue,
) -> Result<JsValue, JsError> {
    let existing = sources(existing, "existing")?;
    let target = Target {
        main,
        existing: &existing,
    };
    to_js(&import::import_runmultiple(label, text, &target))
}
