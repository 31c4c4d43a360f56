//! Pipeline files: list, read, check, write.

use super::{ApiError, ApiJson, ApiResult, AppState};
use crate::fs_sources::DiskSources;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use spool_core::dag::{load, load_text, Loaded, Plan};
use spool_core::diag::{has_errors, Diagnostic};
use spool_core::model::MAX_METADATA_BYTES;
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
    notebooks: usize,
    errors: usize,
}

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
    notebooks: Vec<String>,
}

/// Files under the pipelines folder with one of `exts`, relative and `/`-separated.
fn walk(state: &AppState, exts: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(state.pipelines_dir.clone(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            if path.is_dir() && depth < MAX_DEPTH {
                stack.push((path, depth + 1));
            } else if exts.iter().any(|e| name.ends_with(e)) && out.len() < MAX_FILES {
                if let Ok(rel) = path.strip_prefix(&state.pipelines_dir) {
                    let rel: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().to_string())
                        .collect();
                    out.push(rel.join("/"));
                }
            }
        }
    }
    out.sort();
    out
}

fn sources(state: &AppState) -> ApiResult<DiskSources> {
    DiskSources::new(&state.pipelines_dir).map_err(|e| ApiError::Internal(e.into()))
}

/// The file name from the URL, normalised and confined to the pipelines folder.
fn pipeline_path(file: &str) -> ApiResult<String> {
    let p = spool_core::source::resolve("", file).map_err(|_| {
        ApiError::BadRequest(format!(
            "`{file}` is not a path inside the pipelines folder"
        ))
    })?;
    if !p.ends_with(".toml") {
        return Err(ApiError::BadRequest(format!(
            "`{file}` is not a .toml pipeline file"
        )));
    }
    Ok(p)
}

pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<Entry>>> {
    let src = sources(&state)?;
    let entries = walk(&state, &[".toml"])
        .into_iter()
        .map(|file| {
            let loaded = load(&file, &src);
            let errors = loaded
                .diagnostics
                .iter()
                .filter(|d| d.severity == spool_core::diag::Severity::Error)
                .count();
            let (name, notebooks) = loaded.plan.as_ref().map_or_else(
                || (file.trim_end_matches(".toml").to_string(), 0),
                |p| (p.name.clone(), p.tasks.len()),
            );
            Entry {
                file,
                name,
                notebooks,
                errors,
            }
        })
        .collect();
    Ok(Json(entries))
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
    Path(file): Path<String>,
) -> ApiResult<Json<Checked>> {
    let file = pipeline_path(&file)?;
    let src = sources(&state)?;
    let text = read_text(&src, &file)?;
    let Loaded { plan, diagnostics } = load(&file, &src);
    Ok(Json(Checked {
        file: Some(file),
        text: Some(text),
        diagnostics,
        plan,
    }))
}

pub async fn bundle(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
) -> ApiResult<Json<Bundle>> {
    let root = pipeline_path(&file)?;
    let src = sources(&state)?;
    read_text(&src, &root)?;
    let mut files = BTreeMap::new();
    let mut total = 0;
    for f in walk(&state, &[".toml"]) {
        let text = read_text(&src, &f)?;
        total += text.len();
        if total > MAX_METADATA_BYTES {
            return Err(ApiError::BadRequest(
                "the pipelines folder holds more metadata than one bundle may carry".into(),
            ));
        }
        files.insert(f, text);
    }
    Ok(Json(Bundle {
        root,
        files,
        notebooks: walk(&state, &[".ipynb", ".py", ".sql"]),
    }))
}

pub async fn put(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    ApiJson(body): ApiJson<PutBody>,
) -> ApiResult<Json<Checked>> {
    let file = pipeline_path(&file)?;
    let Loaded { plan, diagnostics } = load_text(&file, &body.text, &sources(&state)?);
    if has_errors(&diagnostics) {
        return Err(ApiError::InvalidPipeline(diagnostics));
    }
    write_atomically(&state.pipelines_dir.join(&file), &body.text)?;
    Ok(Json(Checked {
        file: None,
        text: None,
        diagnostics,
        plan,
    }))
}

/// Temp file in the same folder, flushed, then renamed over the target: readers see the old
/// file or the new one, never half of one.
fn write_atomically(target: &std::path::Path, text: &str) -> ApiResult<()> {
    use std::io::Write;
    let dir = target
        .parent()
        .ok_or_else(|| ApiError::BadRequest("bad file name".into()))?;
    std::fs::create_dir_all(dir).map_err(|e| ApiError::Internal(e.into()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("pipeline"),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| {
        ApiError::Internal(anyhow::anyhow!("cannot write `{}`: {e}", target.display()))
    })
}

pub async fn simulate(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    ApiJson(options): ApiJson<crate::simulate::SimOptions>,
) -> ApiResult<Json<serde_json::Value>> {
    options.check().map_err(ApiError::BadRequest)?;
    let file = pipeline_path(&file)?;
    let src = sources(&state)?;
    read_text(&src, &file)?;
    let Loaded { plan, diagnostics } = load(&file, &src);
    let plan = plan.ok_or(ApiError::InvalidPipeline(diagnostics))?;
    Ok(Json(options.report_json(&plan)))
}
