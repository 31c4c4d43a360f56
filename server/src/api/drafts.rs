//! A pipeline's draft (`crate::drafts`): read, keep, discard. Any text is kept, errors and
//! all; the pipeline file itself is only written by a save that validates, which also
//! discards the draft.

use super::pipelines::pipeline_path;
use super::{blocking, ApiError, ApiJson, ApiPath, ApiResult, AppState, Caller};
use crate::drafts::Draft;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftBody {
    text: String,
    /// The version of the file the draft was made on (its `ETag`), if it was read.
    #[serde(default)]
    etag: Option<String>,
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(file): ApiPath<String>,
) -> ApiResult<Json<Draft>> {
    let file = pipeline_path(&file)?;
    blocking(move || {
        state
            .history
            .draft(&file)?
            .map(Json)
            .ok_or_else(|| ApiError::NotFound(format!("`{file}` has no draft")))
    })
    .await
}

pub async fn put(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(file): ApiPath<String>,
    ApiJson(body): ApiJson<DraftBody>,
) -> ApiResult<Json<Draft>> {
    let file = pipeline_path(&file)?;
    blocking(move || {
        let draft = Draft {
            text: body.text,
            etag: body.etag,
            saved_ms: crate::runs::now_ms(),
            saved_by: caller.name,
        };
        state
            .history
            .save_draft(&file, &draft)?
            .map_err(|refused| ApiError::BadRequest(refused.to_string()))?;
        tracing::info!(file, by = draft.saved_by.as_deref(), "draft saved");
        Ok(Json(draft))
    })
    .await
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    ApiPath(file): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let file = pipeline_path(&file)?;
    blocking(move || match state.history.delete_draft(&file)? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound(format!("`{file}` has no draft"))),
    })
    .await
}
