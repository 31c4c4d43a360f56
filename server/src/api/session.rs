//! `POST /api/session`: the browser trades the token for an HttpOnly cookie, because its
//! `EventSource` (the live run stream) cannot send an `Authorization` header.

use super::guard::{constant_time_eq, TOKEN_COOKIE};
use super::{ApiError, ApiJson, ApiResult, AppState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// Characters a token may have, so that it can travel in a cookie as it is.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
}

pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<SignIn>,
) -> ApiResult<Response> {
    let Some(expected) = &state.token else {
        // No token configured: nothing to sign in to.
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    if !constant_time_eq(body.token.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::Unauthorized);
    }
    let cookie = format!("{TOKEN_COOKIE}={expected}; HttpOnly; SameSite=Strict; Path=/api");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}
