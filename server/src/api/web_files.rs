//! Serves the built web app: from the copy embedded in the binary at build time, or from a
//! folder (`spool serve --web DIR`, for working on the web app without rebuilding the server).
//! Paths are confined to the app; unknown paths get `index.html` (the app routes on the
//! client).

use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

/// `dist/` as `scripts/build-web.sh` left it when this binary was compiled (server/build.rs
/// recompiles this when it changes): empty when the web app had not been built.
#[derive(rust_embed::RustEmbed)]
#[folder = "../dist"]
#[allow_missing = true]
struct Embedded;

/// Where the web app's files come from.
#[derive(Debug, Clone)]
pub enum WebApp {
    /// Compiled into this binary.
    Embedded,
    /// Read from this folder (canonical path) at every request.
    Folder(PathBuf),
    /// Neither: `/` explains how to get one; the API works.
    Missing,
}

/// Shown at `/` when there is no web app.
const MISSING: &str = "this spool was compiled without the web app: run scripts/build-web.sh, \
    then build spool again (or serve a built app with --web DIR); the API is under /api";

impl WebApp {
    /// The embedded app when it was built into this binary, else `Missing`.
    pub fn embedded() -> WebApp {
        if Embedded::get("index.html").is_some() {
            WebApp::Embedded
        } else {
            WebApp::Missing
        }
    }

    /// What `spool serve` says about the web app at start.
    pub fn describe(&self) -> String {
        match self {
            WebApp::Embedded => "web app: built into this binary".into(),
            WebApp::Folder(dir) => format!("web app: served from {}", dir.display()),
            WebApp::Missing => format!("warning: {MISSING}"),
        }
    }

    /// The file at `rel` (already confined by `source::resolve`), if it is there.
    async fn read(&self, rel: &str) -> Option<Cow<'static, [u8]>> {
        match self {
            WebApp::Embedded => Embedded::get(rel).map(|f| f.data),
            WebApp::Folder(dir) => {
                let file = dir.join(rel);
                let regular = tokio::fs::metadata(&file).await.ok()?.is_file();
                if !regular {
                    return None;
                }
                tokio::fs::read(file).await.ok().map(Cow::Owned)
            }
            WebApp::Missing => None,
        }
    }
}

pub async fn serve(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    if matches!(state.web, WebApp::Missing) {
        return (StatusCode::NOT_FOUND, MISSING).into_response();
    }
    let asked = spool_core::source::resolve("", uri.path().trim_start_matches('/'))
        .ok()
        .filter(|rel| !rel.is_empty());
    let mut found = None;
    if let Some(rel) = asked {
        found = state.web.read(&rel).await.map(|bytes| (rel, bytes));
    }
    if found.is_none() {
        let index = "index.html".to_string();
        found = state.web.read(&index).await.map(|bytes| (index, bytes));
    }
    let Some((rel, bytes)) = found else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let policy = rel
        .ends_with(".html")
        .then(|| super::headers::app_page_policy(&bytes));
    let mut res = (
        [
            (header::CONTENT_TYPE, content_type(&rel)),
            (header::CACHE_CONTROL, cache_control(&rel)),
        ],
        bytes,
    )
        .into_response();
    if let Some(policy) = policy.and_then(|p| HeaderValue::from_str(&p).ok()) {
        res.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    res
}

/// scripts/build-web.sh names the script, style sheet and wasm module `NAME-HASH.EXT` (16 hex
/// digits of their content's SHA-256), so such a file never changes: browsers keep it.
/// Everything else (`index.html`, which names the current ones) is checked every time.
fn cache_control(rel: &str) -> &'static str {
    let stem = rel.rsplit_once('.').map_or(rel, |(stem, _)| stem);
    let hashed = stem
        .rsplit_once('-')
        .is_some_and(|(_, hash)| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    if hashed {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

fn content_type(rel: &str) -> &'static str {
    match rel.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
