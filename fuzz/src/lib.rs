//! The properties the fuzz targets check, one function per target, each taking the fuzzer's
//! bytes. Every target asserts that hostile input never panics (libFuzzer also bounds each
//! input's time and memory); some assert more, named in their docs. The same functions replay
//! the kept crash inputs on stable (`server/tests/fuzz_regressions.rs` includes this file), so
//! this file uses only crates the server's tests also have.

use spool_core::dag::{load, Plan};
use spool_core::diag::{has_errors, Diagnostic};
use spool_core::edit::{apply, Edit};
use spool_core::import::{self as im, Converted, Level, Target};
use spool_core::layout::{draw_plan, LayoutOptions};
use spool_core::notebook::{self, Format};
use spool_core::runlog::{RunEvent, RunRecord, StoredEvent};
use spool_core::source::{MemorySources, Sources};
use std::collections::BTreeMap;

/// One target's check: panics when the input breaks a property.
pub type Check = fn(&[u8]);

/// Every target, by the name of its binary and of its folder of kept inputs.
pub const TARGETS: &[(&str, Check)] = &[
    ("pipeline_load", pipeline_load),
    ("notebook_ipynb", notebook_ipynb),
    ("notebook_py", notebook_py),
    ("notebook_sql", notebook_sql),
    ("import_synapse", import_synapse),
    ("import_genie", import_genie),
    ("import_runmultiple", import_runmultiple),
    ("livy_wire", livy_wire),
    ("agent_reply", agent_reply),
    ("runlog", runlog),
    ("edit", edit),
    ("api_bodies", api_bodies),
    ("value_condition", value_condition),
    ("template", template),
];

/// A line `#@ PATH` starts the next file of a bundle.
const FILE_MARKER: &str = "#@ ";
/// Files a bundle holds at most (the rest is ignored), so one input stays one small folder.
const MAX_BUNDLE_FILES: usize = 16;

/// Several files in one input: the text before the first `#@ PATH` line is `root`, each such
/// line starts the file `PATH`. A one-file input is plain text of the root, so fixtures are
/// seeds as they are, and the fuzzer can add files that include each other by writing markers.
pub fn bundle(root: &str, text: &str) -> MemorySources {
    let mut files = MemorySources::default();
    let mut name = root.to_string();
    let mut body = String::new();
    for line in text.split_inclusive('\n') {
        if let Some(next) = line.strip_prefix(FILE_MARKER) {
            if files.0.len() + 1 >= MAX_BUNDLE_FILES {
                break;
            }
            files.0.entry(std::mem::take(&mut name)).or_insert(body);
            body = String::new();
            name = next.trim_end().to_string();
        } else {
            body.push_str(line);
        }
    }
    files.0.entry(name).or_insert(body);
    files
}

/// A bundle in which every notebook file exists (empty unless the bundle holds it), so that
/// inputs get past "missing notebook" to the checks after it.
struct WithNotebooks(MemorySources);

impl Sources for WithNotebooks {
    fn read(&self, path: &str) -> Result<String, String> {
        match self.0.read(path) {
            Err(_) if Format::from_path(path).is_some() => Ok(String::new()),
            found => found,
        }
    }

    fn exists(&self, path: &str) -> bool {
        self.0.exists(path) || Format::from_path(path).is_some()
    }
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Diagnostics point into the file they name: a line of it (or the line after its end).
fn assert_located(diags: &[Diagnostic], files: &dyn Sources) {
    for d in diags {
        if let Ok(text) = files.read(&d.file) {
            let lines = text.lines().count().max(1);
            assert!(
                d.line <= lines + 1,
                "diagnostic past the end of its file: {d}"
            );
        }
    }
}

/// What a plan feeds besides the scheduler: levels, critical path, the drawing, the export.
fn use_plan(plan: &Plan) {
    let levels = plan.levels();
    assert_eq!(levels.len(), plan.tasks.len());
    plan.critical_path();
    draw_plan(plan, &LayoutOptions::default());
    im::export_runmultiple("fuzz.toml", plan, 60);
}

/// `dag::load` of a bundle (root `main.toml`): sub-pipelines may include each other in any
/// graph. Diagnostics are located in their files; a plan has no errors.
pub fn pipeline_load(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let files = WithNotebooks(bundle("main.toml", text));
    let loaded = load("main.toml", &files);
    assert_located(&loaded.diagnostics, &files);
    if let Some(plan) = &loaded.plan {
        assert!(!has_errors(&loaded.diagnostics));
        use_plan(plan);
    }
}

fn notebook(data: &[u8], file: &str, format: Format) {
    let Some(text) = text(data) else { return };
    let parsed = notebook::parse(file, text, format);
    assert_located(
        &parsed.diagnostics,
        &MemorySources::default().with(file, text),
    );
}

pub fn notebook_ipynb(data: &[u8]) {
    notebook(data, "nb.ipynb", Format::Ipynb);
}

pub fn notebook_py(data: &[u8]) {
    notebook(data, "nb.py", Format::Py);
}

pub fn notebook_sql(data: &[u8]) {
    notebook(data, "nb.sql", Format::Sql);
    if let Some(text) = text(data) {
        notebook::split_sql_statements(text);
    }
}

/// An import writes files only without errors, and what it writes loads without errors once
/// the notebooks it lists exist (the importers' promise, `core/src/import/mod.rs`). `main` is
/// the file an import of one pipeline writes first; without it every file is a pipeline.
fn assert_loads(converted: &Converted, main: Option<&str>) {
    let errors = converted
        .report
        .findings
        .iter()
        .any(|f| f.level == Level::Error);
    if errors {
        assert!(
            converted.files.is_empty(),
            "an import with errors wrote files"
        );
        return;
    }
    let mut out = MemorySources::default();
    for f in &converted.files {
        out.0.insert(f.path.clone(), f.text.clone());
    }
    for nb in &converted.notebooks_to_provide {
        out.0.insert(nb.clone(), String::new());
    }
    let roots: Vec<&str> = match (main, converted.files.first()) {
        (Some(main), Some(first)) => {
            assert_eq!(first.path, main, "the main pipeline comes first");
            vec![main]
        }
        _ => converted.files.iter().map(|f| f.path.as_str()).collect(),
    };
    for root in roots {
        let loaded = load(root, &out);
        assert!(
            !has_errors(&loaded.diagnostics),
            "imported pipeline `{root}` does not load: {:?}\n{:#?}",
            loaded
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            converted.files
        );
    }
}

/// A Synapse/ADF pipeline JSON; further `#@ NAME.json` files are the pipelines its
/// `ExecutePipeline` activities name.
pub fn import_synapse(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let files = bundle("main.json", text);
    let root = files.read("main.json").unwrap_or_default();
    let nothing = MemorySources::default();
    let target = Target {
        main: "main.toml",
        existing: &nothing,
    };
    let converted = im::import_synapse("main.json", &root, &files, &target);
    assert_loads(&converted, Some("main.toml"));
}

pub fn import_genie(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let converted = im::import_genie("genie.csv", text, &MemorySources::default());
    assert_loads(&converted, None);
}

pub fn import_runmultiple(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let nothing = MemorySources::default();
    let target = Target {
        main: "main.toml",
        existing: &nothing,
    };
    let converted = im::import_runmultiple("dag.json", text, &target);
    assert_loads(&converted, Some("main.toml"));
}

/// Decodes `data` as `T` and, when it decodes, checks that writing it back reads as the same.
fn round_trip<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let json = serde_json::to_vec(&v).expect("decoded values serialize");
        let back: T = serde_json::from_slice(&json).expect("written JSON reads back");
        assert_eq!(v, back);
    }
}

fn decodes<T: serde::de::DeserializeOwned + serde::Serialize>(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        serde_json::to_vec(&v).expect("decoded values serialize");
    }
}

/// Every Livy answer the client reads and every request `spool livy-local` reads.
pub fn livy_wire(data: &[u8]) {
    use spool_server::livy::wire::*;
    decodes::<CreateSession>(data);
    decodes::<Session>(data);
    decodes::<SessionList>(data);
    decodes::<SessionStateReply>(data);
    decodes::<SessionLog>(data);
    decodes::<SubmitStatement>(data);
    decodes::<Statement>(data);
    decodes::<StatementList>(data);
    round_trip::<StatementOutput>(data);
    decodes::<Message>(data);
    decodes::<Version>(data);
    if let Ok(s) = serde_json::from_slice::<Statement>(data) {
        s.output.as_ref().and_then(StatementOutput::text);
        s.state.is_finished();
    }
}

/// The agent's replies: `data` is a statement's whole output (JSON) or, when it is not one,
/// the text the statement printed. A poll's updates read back as written.
pub fn agent_reply(data: &[u8]) {
    use spool_server::agent::{
        decode_reply, CancelReply, Capacity, NotebookUpdate, PollReply, StartReply,
    };
    use spool_server::livy::wire::{OutputStatus, StatementOutput, StatementState};
    let output = serde_json::from_slice::<StatementOutput>(data).unwrap_or_else(|_| {
        let printed = String::from_utf8_lossy(data).into_owned();
        StatementOutput {
            status: OutputStatus::Ok,
            execution_count: Some(1),
            data: Some(serde_json::Map::from_iter([(
                "text/plain".to_string(),
                printed.into(),
            )])),
            ename: None,
            evalue: None,
            traceback: None,
        }
    });
    let state = StatementState::Available;
    if let Ok(poll) = decode_reply::<PollReply>(&state, Some(&output)) {
        for update in &poll.updates {
            round_trip::<NotebookUpdate>(&serde_json::to_vec(update).expect("updates serialize"));
        }
    }
    let _ = decode_reply::<StartReply>(&state, Some(&output));
    let _ = decode_reply::<CancelReply>(&state, Some(&output));
    let _ = decode_reply::<Capacity>(&state, Some(&output));
}

/// A run's events as stored, one JSON per line: each event reads back as written, and the
/// run folds from any sequence of them.
pub fn runlog(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let events: Vec<StoredEvent> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for e in &events {
        if e.event != RunEvent::Unknown {
            round_trip::<StoredEvent>(&serde_json::to_vec(e).expect("events serialize"));
        }
    }
    if let Some(run) = RunRecord::fold(1, &events) {
        serde_json::to_vec(&run).expect("runs serialize");
    }
}

/// The first line is an `Edit` (JSON), the rest a pipeline file. An edit that applies leaves
/// TOML that parses; one that only adds or changes (a step, a dependency or its key, a key's value) keeps every
/// comment line. Files with a multi-line string are left out of the comment check: a line that
/// starts with `#` inside one is string text, and the line that closes the string may change.
pub fn edit(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let (first, toml) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(edit) = serde_json::from_str::<Edit>(first) else {
        return;
    };
    let Ok(out) = apply(toml, &edit) else { return };
    if let Err(e) = out.parse::<toml_edit::DocumentMut>() {
        panic!("the edit left invalid TOML: {e}\n{out}");
    }
    let adds = match &edit {
        Edit::AddNotebook { .. }
        | Edit::AddPipeline { .. }
        | Edit::AddDependency { .. }
        | Edit::SetParam { .. }
        | Edit::RenameParam { .. }
        | Edit::SetDependencyKey { .. } => true,
        Edit::SetStepKey { value, .. } | Edit::SetTableKey { value, .. } => !value.is_null(),
        Edit::RemoveStep { .. } | Edit::RemoveDependency { .. } | Edit::RemoveParam { .. } => false,
    };
    let has_multiline_string = toml.contains("'''") || toml.contains("\"\"\"");
    if adds && !has_multiline_string {
        for comment in toml.lines().map(str::trim).filter(|l| l.starts_with('#')) {
            assert!(out.contains(comment), "comment `{comment}` lost:\n{out}");
        }
    }
    spool_core::parse::parse_pipeline("main.toml", &out);
}

/// A dependency's `if`: parsed within its limits or refused with a span inside the text; what
/// parses checks and evaluates (on values of every JSON type) without panicking.
pub fn value_condition(data: &[u8]) {
    use spool_core::template::{Source, ValueType};
    use spool_core::value_condition::{ValueCondition, MAX_CONDITION_BYTES};
    let Some(text) = text(data) else { return };
    let c = match ValueCondition::parse(text) {
        Ok(c) => c,
        Err(e) => {
            assert!(
                e.span.end <= text.len() && e.span.start <= e.span.end,
                "{e:?}"
            );
            return;
        }
    };
    assert!(text.len() <= MAX_CONDITION_BYTES);
    let _ = c.check(&mut |src| {
        Ok(match src {
            Source::Param(p) if p.len() % 2 == 0 => ValueType::Number,
            Source::Param(_) => ValueType::String,
            _ => ValueType::Any,
        })
    });
    let values = [
        serde_json::json!(0),
        serde_json::json!(-1.5),
        serde_json::json!("x"),
        serde_json::json!(true),
        serde_json::json!(null),
        serde_json::json!([1]),
        serde_json::json!({"a": 1}),
    ];
    for (i, _) in values.iter().enumerate() {
        let lookup = |src: &Source| {
            let n = format!("{src:?}").len() + i;
            Ok(values[n % values.len()].clone())
        };
        let verdict = c.evaluate(&lookup);
        assert!(verdict.error.is_none() || !verdict.holds);
    }
}

/// `{{ … }}` references in parameter values: parse errors point into the text, checking and
/// evaluating (with values of every type, a secret reference among them) never panic, and a
/// value that is one whole reference evaluates to the looked-up value itself. The same text as
/// a secret reference and as a secret: parsing it never panics, and masking the secret in
/// itself leaves only the mask.
pub fn template(data: &[u8]) {
    use spool_core::secret::{self, Masker, MASK, MIN_LEN};
    use spool_core::template::{Source, Template, ValueType};
    let Some(text) = text(data) else { return };
    let _ = secret::parse(text);
    let mut masker = Masker::default();
    if masker.add(text).is_ok() {
        assert!(text.chars().count() >= MIN_LEN);
        assert_eq!(masker.mask(text), MASK, "{text:?}");
    }
    let t = match Template::parse(text) {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => {
            assert!(
                e.span.end <= text.len() && e.span.start <= e.span.end,
                "{e:?}"
            );
            return;
        }
    };
    let _ = t.check(&mut |src| {
        Ok(match src {
            Source::Param(p) if p.len() % 3 == 0 => ValueType::Date,
            Source::Param(p) if p.len() % 3 == 1 => ValueType::Number,
            _ => ValueType::Any,
        })
    });
    let values = [
        serde_json::json!("2024-02-29"),
        serde_json::json!(7),
        serde_json::json!("x"),
        serde_json::json!(true),
        serde_json::json!(null),
        serde_json::json!([1, "a"]),
        serde_json::json!({"a": 1}),
        serde_json::json!({ secret::MARKER: "env:PW" }),
    ];
    for i in 0..values.len() {
        let lookup = |src: &Source| {
            let n = format!("{src:?}").len() + i;
            Ok(values[n % values.len()].clone())
        };
        let evaluated = t.eval(&lookup);
        if let (Some(whole), Ok(v)) = (t.whole(), &evaluated) {
            if whole.helpers.is_empty() {
                assert_eq!(Ok(v.clone()), lookup(&whole.source), "{text:?}");
            }
        }
    }
}

/// The API's JSON request bodies, read as its handlers read them; a refused body is a
/// response, not a panic. Simulation options that pass their check simulate a small plan.
pub fn api_bodies(data: &[u8]) {
    use axum::response::IntoResponse;
    use spool_core::calibrate::{Calibration, CalibrationQuery};
    use spool_core::dry_run::{DryRunReport, SimOptions};
    use spool_server::api::{ApiError, PutBody, ResumeBody, ScheduleBody, SignIn, StartBody};
    fn body<T: serde::de::DeserializeOwned>(data: &[u8]) -> Option<T> {
        match axum::Json::<T>::from_bytes(data) {
            Ok(axum::Json(v)) => Some(v),
            Err(rejection) => {
                let _ = ApiError::from(rejection).into_response();
                None
            }
        }
    }
    body::<PutBody>(data);
    body::<StartBody>(data);
    body::<ResumeBody>(data);
    body::<SignIn>(data);
    body::<ScheduleBody>(data);
    if let Some(options) = body::<SimOptions>(data) {
        if options.validate().is_empty() {
            let report = DryRunReport::of(&small_plan(), &options, None);
            let _ = serde_json::to_string(&report);
        }
    }
    // A calibration as the JavaScript API reads it: checked, then simulated with.
    if let Some(calibration) = body::<Calibration>(data) {
        if calibration.validate().is_empty() {
            let report = DryRunReport::of(&small_plan(), &SimOptions::default(), Some(calibration));
            let _ = serde_json::to_string(&report);
        }
    }
    // The same bytes as the query of `GET /api/pipelines/{file}/calibration`.
    let query = String::from_utf8_lossy(data);
    if let Ok(uri) = format!("/?{query}").parse::<axum::http::Uri>() {
        match axum::extract::Query::<CalibrationQuery>::try_from_uri(&uri) {
            Ok(axum::extract::Query(q)) => {
                let _ = q.validate();
            }
            Err(rejection) => {
                let _ = ApiError::from(rejection).into_response();
            }
        }
    }
}

/// A three-notebook pipeline with a fan-in, for the simulation options.
fn small_plan() -> Plan {
    let files = WithNotebooks(MemorySources(BTreeMap::from([(
        "p.toml".to_string(),
        "name = \"p\"\n[pool]\nexecutors = 2\nexecutor_cores = 4\n\
         [[notebook]]\nid = \"a\"\npath = \"a.py\"\nestimate_secs = 30\n\
         [[notebook]]\nid = \"b\"\npath = \"b.py\"\nestimate_secs = 60\n\
         [[notebook]]\nid = \"c\"\npath = \"c.py\"\ndepends_on = [\"a\", \"b\"]\n"
            .to_string(),
    )])));
    load("p.toml", &files)
        .plan
        .expect("the small plan is valid")
}
