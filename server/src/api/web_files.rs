//! Serves the built web app. Paths are confined to the web folder; unknown paths get
//! `index.html` (the app routes on the client).

use super::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn serve(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let Some(dir) = &state.web_dir else {
        return (
            StatusCode::NOT_FOUND,
            "the web app is not built: run scripts/build-web.sh (the API is under /api)",
        )
            .into_response();
    };
    let rel = uri.path().trim_start_matches('/');
    let file = match spool_core::source::resolve("", rel) {
        Ok(p) => dir.join(p),
        Err(_) => dir.join("index.html"),
    };
    let file = if file.is_file() {
        file
    } else {
        dir.join("index.html")
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) if content_type(&file).starts_with("text/html") => {
            let policy = super::headers::app_page_policy(&bytes);
            (
                [
                    (header::CONTENT_TYPE, content_type(&file).to_string()),
                    (header::CONTENT_SECURITY_POLICY, policy),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(&file))], bytes).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

fn content_type(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
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
