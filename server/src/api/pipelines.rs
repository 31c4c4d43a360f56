//! Pipeline files: list, read, check, write.

use super::{blocking, ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, AppState};
use crate::calibration::{calibrate, CalibrationError};
use crate::fs_sources::{DiskSources, WriteError};
use crate::scheduler::ScheduleView;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::Json;
use serde::{Deserialize, Serialize};
use spool_core::calibrate::{Calibration, CalibrationQuery, DurationsFrom};
use spool_core::dag::{
    check_notebooks, load, load_text, load_with_notebooks, notebook_diagnostics_of, outline,
    Loaded, Plan,
};
use spool_core::diag::{has_errors, Diagnostic};
use spool_core::dry_run::{DryRunReport, SimOptions};
use spool_core::model::MAX_METADATA_BYTES;
use spool_core::notebook::{self, Format};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How deep the pipelines folder is searched for files.
const MAX_DEPTH: usize = 4;
/// Files listed at most, so a huge folder cannot stall the server.
const MAX_FILES: usize = 2000;

#[derive(Serialize)]
pub struct Entry {
    file: String,
    name: String,
    notebooks: u64,
    errors: usize,
    /// Its `[schedule]` with the next fire times, when the file has one and no errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<ScheduleView>,
}

/// Fire times shown per pipeline in the listing.
const LISTED_FIRE_TIMES: usize = 3;

#[derive(Serialize)]
pub struct Checked {
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    diagnostics: Vec<Diagnostic>,
    plan: Option<Plan>,
}

#[derive(Deserialize)]
pub struct PutBody {
    text: String,
}

#[derive(Serialize)]
pub struct Bundle {
    root: String,
    files: BTreeMap<String, String>,
    /// Each file's `ETag`, for `If-Match` when it is saved.
    etags: BTreeMap<String, String>,
    notebooks: Vec<String>,
    /// What parsing found in each notebook the saved pipeline runs (only those with
    /// findings), for the browser's check of the text being edited.
    notebook_diagnostics: BTreeMap<String, Vec<Diagnostic>>,
}

fn sources(state: &AppState) -> ApiResult<DiskSources> {
    DiskSources::new(&state.pipelines_dir).map_err(|e| ApiError::Internal(e.into()))
}

/// Bytes of one path component at most (the usual file-system limit), and of a whole path.
const MAX_NAME_BYTES: usize = 255;
const MAX_PATH_BYTES: usize = 1024;

/// The extensions of the notebook files the API writes.
const NOTEBOOK_EXTENSIONS: &[&str] = &[".ipynb", ".py", ".sql"];

/// The file name from the URL, normalised and confined to the pipelines folder: a `.toml`
/// path of visible names (a hidden one would never be listed) without control characters.
pub(super) fn pipeline_path(file: &str) -> ApiResult<String> {
    folder_path(file, &[".toml"], "pipeline")
}

/// A path of the pipelines folder as [`pipeline_path`] checks it, ending with one of
/// `extensions` (a `what` file).
fn folder_path(file: &str, extensions: &[&str], what: &str) -> ApiResult<String> {
    let bad = |why: &str| ApiError::BadRequest(format!("`{}` {why}", file.escape_debug()));
    if file.len() > MAX_PATH_BYTES {
        return Err(bad(&format!("is too long for a {what} path")));
    }
    let p = spool_core::source::resolve("", file)
        .map_err(|_| bad("is not a path inside the pipelines folder"))?;
    for part in p.split('/') {
        if part.chars().any(char::is_control) {
            return Err(bad("has control characters"));
        }
        if part.starts_with('.') {
            return Err(bad("has a hidden (dot) name"));
        }
        if part.len() > MAX_NAME_BYTES {
            return Err(bad("has a name over 255 bytes"));
        }
    }
    if !extensions.iter().any(|e| p.ends_with(e)) {
        return Err(bad(&format!(
            "is not a {} {what} file",
            extensions.join(" or ")
        )));
    }
    Ok(p)
}

/// The entity tag of a pipeline text: its length and a 64-bit FNV-1a hash. It detects
/// that a file changed since it was read (optimistic concurrency), nothing more.
fn etag(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("\"{:x}-{hash:016x}\"", text.len())
}

fn etag_header(text: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag(text)) {
        headers.insert(header::ETAG, v);
    }
    headers
}

pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Entry>>> {
    blocking(move || {
        let src = sources(&state)?;
        let schedules = state.history.schedule_states()?;
        let now = crate::runs::now_ms();
        let entries = src
            .list(&[".toml"], MAX_DEPTH, MAX_FILES)
            .into_iter()
            .map(|file| {
                // Counted, never expanded: a listing reads each file once whatever it includes.
                let outline = outline(&file, &src);
                let errors = outline
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == spool_core::diag::Severity::Error)
                    .count();
                let name = match outline.name {
                    Some(name) if errors == 0 => name,
                    _ => file.trim_end_matches(".toml").to_string(),
                };
                let schedule = outline.schedule.filter(|_| errors == 0).map(|s| {
                    let state = schedules.get(&file).cloned().unwrap_or_default();
                    ScheduleView::of(s, state, now, LISTED_FIRE_TIMES)
                });
                Entry {
                    file,
                    name,
                    notebooks: if errors == 0 { outline.notebooks } else { 0 },
                    errors,
                    schedule,
                }
            })
            .collect();
        Ok(Json(entries))
    })
    .await
}

fn read_text(src: &DiskSources, file: &str) -> ApiResult<String> {
    use spool_core::source::Sources;
    if !src.exists(file) {
        return Err(ApiError::NotFound(format!("no pipeline `{file}`")));
    }
    src.read(file)
        .map_err(|e| ApiError::BadRequest(format!("cannot read `{file}`: {e}")))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(file): ApiPath<String>,
) -> ApiResult<(HeaderMap, Json<Checked>)> {
    let file = pipeline_path(&file)?;
    blocking(move || {
        let src = sources(&state)?;
        let text = read_text(&src, &file)?;
        let Loaded { plan, diagnostics } = load_with_notebooks(&file, &src);
        Ok((
            etag_header(&text),
            Json(Checked {
                file: Some(file),
                text: Some(text),
                diagnostics,
                plan,
            }),
        ))
    })
    .await
}

pub async fn bundle(
    State(state): State<Arc<AppState>>,
    ApiPath(file): ApiPath<String>,
) -> ApiResult<Json<Bundle>> {
    let root = pipeline_path(&file)?;
    blocking(move || {
        let src = sources(&state)?;
        read_text(&src, &root)?;
        let mut files = BTreeMap::new();
        let mut etags = BTreeMap::new();
        let mut total = 0;
        for f in src.list(&[".toml"], MAX_DEPTH, MAX_FILES) {
            let text = read_text(&src, &f)?;
            total += text.len();
            if total > MAX_METADATA_BYTES {
                return Err(ApiError::BadRequest(
                    "the pipelines folder holds more metadata than one bundle may carry".into(),
                ));
            }
            etags.insert(f.clone(), etag(&text));
            files.insert(f, text);
        }
        // The notebooks `load_with_notebooks` would check, each read once.
        let mut notebook_diagnostics = BTreeMap::new();
        check_notebooks(&root, &mut load(&root, &src), |path, format| {
            let found = notebook_diagnostics_of(&src, path, format);
            if !found.is_empty() {
                notebook_diagnostics.insert(path.to_string(), found.clone());
            }
            found
        });
        Ok(Json(Bundle {
            notebooks: src.list(&[".ipynb", ".py", ".sql"], MAX_DEPTH, MAX_FILES),
            root,
            files,
            etags,
            notebook_diagnostics,
        }))
    })
    .await
}

/// Writes of files, one at a time, so that a precondition check and the write it guards are
/// one step for every writer of this process.
static WRITES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a save asks of the file it replaces.
enum Precondition {
    /// `If-Match`: the file exists in one of these versions (`*`: any).
    Matches(String),
    /// `If-None-Match: *`: there is no such file yet.
    Absent,
}

fn precondition(headers: &HeaderMap) -> ApiResult<Option<Precondition>> {
    let text = |name: header::HeaderName| -> ApiResult<Option<String>> {
        headers
            .get(&name)
            .map(|v| {
                v.to_str()
                    .map(str::to_string)
                    .map_err(|_| ApiError::BadRequest(format!("{name} is not text")))
            })
            .transpose()
    };
    match (text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "give If-Match or If-None-Match, not both".into(),
        )),
        (Some(tags), None) => Ok(Some(Precondition::Matches(tags))),
        (None, Some(tag)) if tag.trim() == "*" => Ok(Some(Precondition::Absent)),
        (None, Some(_)) => Err(ApiError::BadRequest(
            "If-None-Match takes only `*` (create the file, never replace one)".into(),
        )),
        (None, None) => Ok(None),
    }
}

/// Writes `text` to `file` when `precondition` holds for what is there now; the answer carries
/// the new `ETag`.
fn write_checked(
    state: &AppState,
    src: &DiskSources,
    file: &str,
    text: &str,
    precondition: Option<Precondition>,
) -> ApiResult<HeaderMap> {
    use spool_core::source::Sources;
    let _one_writer = WRITES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(precondition) = precondition {
        let current = src.exists(file).then(|| src.read(file)).transpose();
        let current =
            current.map_err(|e| ApiError::BadRequest(format!("cannot read `{file}`: {e}")))?;
        match (precondition, current.as_deref()) {
            (Precondition::Absent, None) => {}
            (Precondition::Absent, Some(_)) => {
                return Err(ApiError::PreconditionFailed(format!(
                    "`{file}` exists already; it was not replaced"
                )))
            }
            (Precondition::Matches(expected), current) => {
                let matches = current.is_some_and(|text| {
                    let tag = etag(text);
                    expected
                        .split(',')
                        .map(str::trim)
                        .any(|e| e == "*" || e == tag)
                });
                if !matches {
                    return Err(ApiError::PreconditionFailed(format!(
                        "`{file}` changed since it was read (it is now {})",
                        current.map_or("deleted".to_string(), etag)
                    )));
                }
            }
        }
    }
    src.write(file, text).map_err(|e| match e {
        WriteError::Refused(m) => ApiError::BadRequest(m),
        io => ApiError::Internal(io.into()),
    })?;
    // A pipeline's `[schedule]` may be new or changed.
    state.schedules_changed.notify_one();
    Ok(etag_header(text))
}

pub async fn put(
    State(state): State<Arc<AppState>>,
    ApiPath(file): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PutBody>,
) -> ApiResult<(HeaderMap, Json<Checked>)> {
    let file = pipeline_path(&file)?;
    let precondition = precondition(&headers)?;
    blocking(move || {
        let src = sources(&state)?;
        let Loaded { plan, diagnostics } = load_text(&file, &body.text, &src);
        if has_errors(&diagnostics) {
            return Err(ApiError::InvalidPipeline(diagnostics));
        }
        let headers = write_checked(&state, &src, &file, &body.text, precondition)?;
        // The saved file supersedes a draft of it.
        state.history.delete_draft(&file)?;
        Ok((
            headers,
            Json(Checked {
                file: None,
                text: None,
                diagnostics,
                plan,
            }),
        ))
    })
    .await
}

/// Saves a notebook file (`.ipynb`, `.py`, `.sql`; the import dialog's notebooks): it must
/// read as a notebook, and the request says whether it creates the file (`If-None-Match: *`)
/// or replaces a version it read (`If-Match`), so that no notebook is overwritten unseen.
pub async fn put_notebook(
    State(state): State<Arc<AppState>>,
    ApiPath(file): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PutBody>,
) -> ApiResult<HeaderMap> {
    let file = folder_path(&file, NOTEBOOK_EXTENSIONS, "notebook")?;
    let precondition = precondition(&headers)?.ok_or_else(|| {
        ApiError::BadRequest(
            "saving a notebook needs If-None-Match: * (a new file) or If-Match (the version \
             it replaces)"
                .into(),
        )
    })?;
    blocking(move || {
        let format = Format::from_path(&file)
            .ok_or_else(|| ApiError::BadRequest(format!("`{file}` is not a notebook file")))?;
        let parsed = notebook::parse(&file, &body.text, format);
        if has_errors(&parsed.diagnostics) {
            return Err(ApiError::InvalidNotebook(parsed.diagnostics));
        }
        let src = sources(&state)?;
        write_checked(&state, &src, &file, &body.text, Some(precondition))
    })
    .await
}

/// The plan of the pipeline `file`, or why there is none.
pub(super) fn load_plan(state: &AppState, file: &str) -> ApiResult<Plan> {
    let src = sources(state)?;
    read_text(&src, file)?;
    let Loaded { plan, diagnostics } = load(file, &src);
    plan.ok_or(ApiError::InvalidPipeline(diagnostics))
}

/// What the history measured for `plan` in the runs `from` picks.
fn calibration_of(
    state: &AppState,
    plan: &Plan,
    from: DurationsFrom,
    history_runs: u32,
) -> ApiResult<Calibration> {
    calibrate(&state.history, plan, from, history_runs).map_err(|e| match e {
        CalibrationError::NotFound(why) => ApiError::NotFound(why),
        CalibrationError::History(e) => ApiError::Internal(e),
    })
}

/// The dry run of `file` (docs/api.md), calibrated from the history when asked; the history
/// and the simulation, which can be large, run off the async workers.
pub async fn simulate(
    State(state): State<Arc<AppState>>,
    ApiPath(file): ApiPath<String>,
    ApiJson(options): ApiJson<SimOptions>,
) -> ApiResult<Json<DryRunReport>> {
    let errors: Vec<String> = options.validate().iter().map(ToString::to_string).collect();
    if !errors.is_empty() {
        return Err(ApiError::BadRequest(errors.join("; ")));
    }
    let file = pipeline_path(&file)?;
    blocking(move || {
        let plan = load_plan(&state, &file)?;
        let unknown: Vec<String> = options
            .unknown_assumptions(&plan)
            .iter()
            .map(ToString::to_string)
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::BadRequest(unknown.join("; ")));
        }
        let calibration = match options.durations_from {
            Some(from) => Some(calibration_of(&state, &plan, from, options.history_runs)?),
            None => None,
        };
        Ok(Json(DryRunReport::of(&plan, &options, calibration)))
    })
    .await
}

/// What the history measured for `file` (docs/api.md): the browser simulates with it, so its
/// calibrated dry run is the one `simulate` answers.
pub async fn calibration(
    State(state): State<Arc<AppState>>,
    ApiPath(file): ApiPath<String>,
    ApiQuery(query): ApiQuery<CalibrationQuery>,
) -> ApiResult<Json<Calibration>> {
    query
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let file = pipeline_path(&file)?;
    blocking(move || {
        let plan = load_plan(&state, &file)?;
        calibration_of(&state, &plan, query.durations_from, query.history_runs).map(Json)
    })
    .await
}
