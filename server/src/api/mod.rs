//! The HTTP API (`/api`, see docs/api.md) and the built web app (`/`), as one axum router.

mod drafts;
mod error;
mod grid;
mod guard;
mod headers;
mod listen;
mod pipelines;
mod runs;
mod schedule;
mod session;
mod web_files;

pub use error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
pub use guard::Caller;
pub(crate) use guard::{check as check_caller, Policy as CallerPolicy, Refusal};
pub use listen::{serve, HEADER_READ_TIMEOUT};
use session::SignInThrottle;
pub use session::{load_token, load_tokens, random_token, valid_token, Token, MAX_TOKEN_LEN};
pub use web_files::WebApp;
/// The JSON request bodies, as the handlers read them (the fuzz targets decode them too).
pub use {
    pipelines::PutBody, runs::ResumeBody, runs::StartBody, schedule::ScheduleBody, session::SignIn,
};

use crate::history::History;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use std::path::PathBuf;
use std::sync::Arc;

/// Request bodies larger than this are refused (413).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

pub struct AppState {
    /// The folder whose `.toml` files are the pipelines (canonical path).
    pub pipelines_dir: PathBuf,
    /// Where the web app's files come from.
    pub web: WebApp,
    /// When there are any, every API call must carry one of them as a bearer token (or
    /// its cookie); read-only ones cannot change anything.
    pub tokens: Vec<Token>,
    pub history: Arc<History>,
    pub runs: Arc<crate::runs::RunManager>,
    pub limits: Limits,
    /// Told when a pipeline file is saved or a schedule paused or resumed: the scheduler
    /// looks again at once instead of at its next rescan.
    pub schedules_changed: Arc<tokio::sync::Notify>,
}

/// Bounds on what callers can make the server do: guess the token, hold event streams open.
#[derive(Default)]
pub struct Limits {
    /// Answers wrong tokens slowly.
    pub(crate) sign_ins: SignInThrottle,
    /// Event streams open now (at most [`MAX_LIVE_STREAMS`]).
    pub(crate) live_streams: std::sync::atomic::AtomicUsize,
}

/// Event streams open at once; more are refused with 503.
pub const MAX_LIVE_STREAMS: usize = 256;

/// Runs blocking work (files, SQLite, planning) on tokio's blocking pool, never on the async
/// workers that answer other requests.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("blocking task failed: {e}")))?
}

pub fn app(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/session", post(session::sign_in))
        .route("/pipelines", get(pipelines::list))
        .route("/pipelines/:file", get(pipelines::get).put(pipelines::put))
        .route("/pipelines/:file/bundle", get(pipelines::bundle))
        .route(
            "/pipelines/:file/draft",
            get(drafts::get).put(drafts::put).delete(drafts::delete),
        )
        .route("/notebooks/:file", put(pipelines::put_notebook))
        .route("/pipelines/:file/simulate", post(pipelines::simulate))
        .route("/pipelines/:file/calibration", get(pipelines::calibration))
        .route("/pipelines/:file/grid", get(grid::get))
        .route(
            "/pipelines/:file/schedule",
            get(schedule::get).post(schedule::set),
        )
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
        .layer(axum::middleware::map_response(headers::add))
        .with_state(state)
}
