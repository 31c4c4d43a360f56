//! The HTTP API (`/api`, see docs/api.md) and the built web app (`/`), as one axum router.

mod error;
mod guard;
mod pipelines;
mod runs;
mod session;
mod web_files;

pub use error::{ApiError, ApiJson, ApiResult};
pub use session::valid_token;

use crate::history::History;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::path::PathBuf;
use std::sync::Arc;

/// Request bodies larger than this are refused (413).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

pub struct AppState {
    /// The folder whose `.toml` files are the pipelines (canonical path).
    pub pipelines_dir: PathBuf,
    /// The built web app (trunk's `dist/`), if there is one.
    pub web_dir: Option<PathBuf>,
    /// When set, every API call must carry it as a bearer token.
    pub token: Option<String>,
    pub history: Arc<History>,
    pub runs: Arc<crate::runs::RunManager>,
}

pub fn app(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/session", post(session::sign_in))
        .route("/pipelines", get(pipelines::list))
        .route("/pipelines/:file", get(pipelines::get).put(pipelines::put))
        .route("/pipelines/:file/bundle", get(pipelines::bundle))
        .route("/pipelines/:file/simulate", post(pipelines::simulate))
        .route("/runs", get(runs::list).post(runs::start))
        .route("/runs/:id", get(runs::get))
        .route("/runs/:id/cancel", post(runs::cancel))
        .route("/runs/:id/resume", post(runs::resume))
        .route("/runs/:id/events", get(runs::events))
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new()
        .nest("/api", api)
        .fallback(web_files::serve)
        .with_state(state)
}
