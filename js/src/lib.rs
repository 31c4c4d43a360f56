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

/// The shapes the functions take and answer, for `spool.d.ts` (the Rust types serialise to
/// them; `spool simulate --json` and the HTTP API use the same field names).
#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** File texts by path, relative to the pipeline's folder. */
export type Files = Record<string, string>;
export interface Diagnostic {
  file: string; line: number; col: number; severity: "error" | "warning"; message: string;
  item?: string; key?: string;
}
export interface Validation { valid: boolean; diagnostics: Diagnostic[]; }
/** The expanded pipeline (docs/api.md); tasks in topological order. */
export interface Plan {
  name: string;
  tasks: { id: string; kind: string; [field: string]: unknown }[];
  inactive: { id: string; kind: string; [field: string]: unknown }[];
  [field: string]: unknown;
}
export interface Planned {
  plan: Plan | null; levels: number[]; critical_path: string[]; critical_path_secs: number;
  diagnostics: Diagnostic[];
}
/** A run id, or `"last"`, `"p50"`, `"p90"`. */
export type DurationsFrom = number | "last" | "p50" | "p90";
export interface SimOptions {
  executors?: number | null; executor_cores?: number | null; capacity_slots?: number | null;
  policy?: "critical-path" | "fifo"; seed?: number | bigint; variation?: number;
  failure_rate?: number; node_startup_secs?: number | null; price_per_node_hour?: number;
  baseline_min_nodes?: number; sweep?: number | null; deadline_secs?: number | null;
  dispatch_latency_secs?: number | null; durations?: Record<string, number>;
  durations_from?: DurationsFrom | null; history_runs?: number;
  /** Values notebooks publish in the dry run, for `if` conditions: `"ID.KEY"` or `"ID"`. */
  assume?: Record<string, unknown>;
}
export interface Calibration {
  durations_from: DurationsFrom; runs: number[]; durations: Record<string, number>;
  estimated: string[]; session_startup_secs: number | null;
  dispatch_latency_secs: number | null; live_capacity_slots: number | null;
  real_makespan_secs: number | null;
  stats?: { id: string; runs: number; p50_secs: number; p90_secs: number }[];
  /** Each for-each's iteration ids in the newest run read that expanded it. */
  iterations?: Record<string, string[]>;
}
export interface SweepPoint {
  executors: number; makespan_secs: number; utilization: number; node_hours: number;
  cost: number;
}
export interface DryRunReport {
  pipeline: string; policy: "critical-path" | "fifo"; executors: number;
  executor_cores: number; capacity_slots: number; node_startup_secs: number;
  price_per_node_hour: number; dispatch_latency_secs: number;
  outcome: "succeeded" | "failed" | "cancelled"; makespan_secs: number;
  lower_bound: {
    secs: number; startup_secs: number; critical_path_secs: number; work_secs: number;
    concurrency_secs: number;
  };
  utilization: number; node_hours: number; cost: number;
  tasks: {
    id: string; attempt: number; start_secs: number; end_secs: number;
    outcome: "succeeded" | "failed" | "timed_out" | "cancelled" | "skipped"; slots: number;
  }[];
  utilization_series: { at_secs: number; busy_slots: number }[];
  baseline: { min_nodes: number; makespan_secs: number; node_hours: number; cost: number };
  /** Baseline ÷ shared pool: above 1 the shared pool is better. */
  gain: { makespan: number; node_hours: number; cost: number };
  sweep?: SweepPoint[]; cheapest_within_deadline?: SweepPoint; calibration?: Calibration;
}
export interface Simulated {
  report: DryRunReport | null; option_errors: { field: string; message: string }[];
  diagnostics: Diagnostic[];
}
export interface Drawn {
  drawing: {
    nodes: { id: string; kind: string; active: boolean; critical: boolean }[];
    edges: { from: number; to: number; on: string; bridged: boolean; critical: boolean }[];
    layout: {
      nodes: { x: number; y: number }[]; layers: number[]; edges: { x: number; y: number }[][];
      width: number; height: number; crossings: number;
    };
  } | null;
  diagnostics: Diagnostic[];
}
export interface Converted {
  files: { path: string; text: string }[];
  report: {
    findings: {
      level: "error" | "warning" | "note"; file: string; line?: number; item?: string;
      field?: string; message: string;
    }[];
  };
  notebooks_to_provide: string[];
}
"#;

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
#[wasm_bindgen(unchecked_return_type = "Validation")]
pub fn validate(
    text: &str,
    #[wasm_bindgen(unchecked_param_type = "Files")] files: JsValue,
    path: Option<String>,
) -> Result<JsValue, JsError> {
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
#[wasm_bindgen(unchecked_return_type = "Planned")]
pub fn plan(
    text: &str,
    #[wasm_bindgen(unchecked_param_type = "Files")] files: JsValue,
    path: Option<String>,
) -> Result<JsValue, JsError> {
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
#[wasm_bindgen(unchecked_return_type = "Simulated")]
pub fn simulate(
    text: &str,
    #[wasm_bindgen(unchecked_param_type = "Files")] files: JsValue,
    #[wasm_bindgen(unchecked_param_type = "SimOptions | null | undefined")] options: JsValue,
    path: Option<String>,
    #[wasm_bindgen(unchecked_param_type = "Calibration | null | undefined")] calibration: JsValue,
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
    let mut option_errors = options.validate();
    option_errors.extend(calibration.iter().flat_map(Calibration::validate));
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
#[wasm_bindgen(unchecked_return_type = "Drawn")]
pub fn layout(
    text: &str,
    #[wasm_bindgen(unchecked_param_type = "Files")] files: JsValue,
    path: Option<String>,
) -> Result<JsValue, JsError> {
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
#[wasm_bindgen(js_name = importSynapse, unchecked_return_type = "Converted")]
pub fn import_synapse(
    label: &str,
    text: &str,
    #[wasm_bindgen(unchecked_param_type = "Files")] pipelines: JsValue,
    main: &str,
    #[wasm_bindgen(unchecked_param_type = "Files | null | undefined")] existing: JsValue,
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
#[wasm_bindgen(js_name = importGenie, unchecked_return_type = "Converted")]
pub fn import_genie(
    label: &str,
    text: &str,
    #[wasm_bindgen(unchecked_param_type = "Files | null | undefined")] existing: JsValue,
) -> Result<JsValue, JsError> {
    let existing = sources(existing, "existing")?;
    to_js(&import::import_genie(label, text, &existing))
}

/// Imports a runMultiple DAG (JSON, named `label`) into `main`; answers as `importSynapse`.
#[wasm_bindgen(js_name = importRunMultiple, unchecked_return_type = "Converted")]
pub fn import_run_multiple(
    label: &str,
    text: &str,
    main: &str,
    #[wasm_bindgen(unchecked_param_type = "Files | null | undefined")] existing: JsValue,
) -> Result<JsValue, JsError> {
    let existing = sources(existing, "existing")?;
    let target = Target {
        main,
        existing: &existing,
    };
    to_js(&import::import_runmultiple(label, text, &target))
}
