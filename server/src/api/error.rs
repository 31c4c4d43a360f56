//! The one error type of the HTTP API: each variant is a status code and a JSON body. Internal
//! details are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use spool_core::diag::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("a valid token is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the pipeline has errors")]
    InvalidPipeline(Vec<Diagnostic>),
    #[error("the notebook has errors")]
    InvalidNotebook(Vec<Diagnostic>),
    #[error(
        "the request body is over the limit of {} bytes",
        super::MAX_BODY_BYTES
    )]
    TooLarge,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PreconditionFailed(_) => {
                (StatusCode::PRECONDITION_FAILED, "precondition_failed")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::InvalidPipeline(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_pipeline"),
            ApiError::InvalidNotebook(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_notebook"),
            ApiError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(e) = &self {
            tracing::error!("internal error: {e:#}");
        }
        let mut body = serde_json::json!({ "error": code, "message": self.to_string() });
        if let ApiError::InvalidPipeline(diags) | ApiError::InvalidNotebook(diags) = &self {
            body["diagnostics"] = serde_json::to_value(diags).unwrap_or_default();
        }
        (status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadRequest(r.body_text())
        }
    }
}

/// `axum::Json` whose rejections (bad JSON, wrong fields) are `ApiError`s like every other
/// error of the API.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        if r.status().is_server_error() {
            ApiError::Internal(anyhow::anyhow!("path extraction: {}", r.body_text()))
        } else {
            ApiError::BadRequest(r.body_text())
        }
    }
}

/// `axum::extract::Path` whose rejections (`/api/runs/abc`) are JSON `ApiError`s too.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::BadRequest(r.body_text())
    }
}

/// `axum::extract::Query` whose rejections (a missing or unknown parameter) are JSON
/// `ApiError`s too.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);
