//! `POST /api/session`: the browser trades the token for an HttpOnly cookie, because its
//! `EventSource` (the live run stream) cannot send an `Authorization` header.

use super::guard::{constant_time_eq, TOKEN_COOKIE};
use super::{ApiError, ApiJson, ApiResult, AppState};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The first wrong token is answered after this long; each further one in a row doubles it.
const FIRST_FAILURE_DELAY: Duration = Duration::from_millis(100);
/// The longest a wrong token waits for its answer.
const MAX_FAILURE_DELAY: Duration = Duration::from_secs(3);
/// Failures further apart than this no longer add up.
const FAILURE_MEMORY: Duration = Duration::from_secs(10 * 60);

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// Characters a token may have, so that it can travel in a header and a cookie as it is.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
}

/// The token given on the command line (or its environment variable) or in a file (its
/// content, trimmed; a file keeps it out of `ps`), checked against [`valid_token`].
pub fn load_token(
    value: Option<&str>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<String>> {
    let token = match (value.filter(|t| !t.is_empty()), file) {
        (Some(_), Some(_)) => anyhow::bail!("give the token once: as a value or in a file"),
        (Some(t), None) => t.to_string(),
        (None, Some(path)) => {
            let meta = std::fs::metadata(path)
                .map_err(|e| anyhow::anyhow!("token file `{}`: {e}", path.display()))?;
            if !meta.is_file() || meta.len() > 4 * MAX_TOKEN_LEN as u64 {
                anyhow::bail!(
                    "token file `{}` is not a small regular file",
                    path.display()
                );
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("token file `{}`: {e}", path.display()))?;
            text.trim().to_string()
        }
        (None, None) => return Ok(None),
    };
    if !valid_token(&token) {
        anyhow::bail!(
            "a token is 1 to {MAX_TOKEN_LEN} letters, digits and `. _ ~ -` (it travels in headers and cookies as it is)"
        );
    }
    Ok(Some(token))
}

/// Longer tokens are refused (they would only make headers long).
pub const MAX_TOKEN_LEN: usize = 256;

/// A fresh random token (32 bytes from the OS, as 64 hex digits).
pub fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness from the OS for a token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Slows guessing down: answers to wrong tokens are given one at a time, each after a delay
/// that doubles with every failure in a row (up to [`MAX_FAILURE_DELAY`]). Right tokens never
/// wait.
#[derive(Default)]
pub struct SignInThrottle {
    /// Failures in a row and when the last one was; held while a wrong answer waits.
    failures: tokio::sync::Mutex<(u32, Option<Instant>)>,
}

impl SignInThrottle {
    pub async fn failed(&self) {
        let mut failures = self.failures.lock().await;
        let (count, last) = &mut *failures;
        if last.is_some_and(|t| t.elapsed() > FAILURE_MEMORY) {
            *count = 0;
        }
        let delay = FIRST_FAILURE_DELAY
            .saturating_mul(1 << (*count).min(10))
            .min(MAX_FAILURE_DELAY);
        *count = count.saturating_add(1);
        tokio::time::sleep(delay).await;
        *last = Some(Instant::now());
    }
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
        state.limits.sign_ins.failed().await;
        return Err(ApiError::Unauthorized);
    }
    let cookie = format!("{TOKEN_COOKIE}={expected}; HttpOnly; SameSite=Strict; Path=/api");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}
