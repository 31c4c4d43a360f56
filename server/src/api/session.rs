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
        (None, Some(path)) => read_small_file(path)?.trim().to_string(),
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
/// Longer token names are refused.
pub const MAX_TOKEN_NAME_LEN: usize = 64;
/// Tokens one server accepts at most.
pub const MAX_TOKENS: usize = 64;
/// What `:read-only` after a token's secret means.
const READ_ONLY: &str = "read-only";

/// A token the API accepts: its secret, and who holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Who holds it, as the run log records them (`None`: a token given without a name).
    pub name: Option<String>,
    secret: String,
    /// Can list and watch, and dry-run; cannot start, cancel, resume or save.
    pub read_only: bool,
}

/// Never shows the secret (tokens end up in debug output of the state).
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// A token without a name, with every right (the single `--token` of older versions).
    pub fn unnamed(secret: String) -> Token {
        Token {
            name: None,
            secret,
            read_only: false,
        }
    }

    /// `SECRET`, `NAME=SECRET` or `NAME=SECRET:read-only`. A name is 1 to 64 letters, digits
    /// and `. _ -`; the secret as [`valid_token`] says (neither holds `=` or `:`).
    pub fn parse(spec: &str) -> anyhow::Result<Token> {
        let (name, rest) = match spec.split_once('=') {
            Some((name, rest)) => (Some(name), rest),
            None => (None, spec),
        };
        let (secret, read_only) = match rest.split_once(':') {
            Some((secret, READ_ONLY)) => (secret, true),
            // What follows is not echoed: it may be part of a secret that holds a `:`.
            Some(_) => anyhow::bail!(
                "a token's secret is 1 to {MAX_TOKEN_LEN} letters, digits and `. _ ~ -`, \
                 followed by nothing or `:{READ_ONLY}`"
            ),
            None => (rest, false),
        };
        if let Some(name) = name {
            let valid = !name.is_empty()
                && name.len() <= MAX_TOKEN_NAME_LEN
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            anyhow::ensure!(
                valid,
                "a token's name is 1 to {MAX_TOKEN_NAME_LEN} letters, digits and `. _ -` (give `name=secret`)"
            );
        }
        anyhow::ensure!(
            valid_token(secret),
            "a token is 1 to {MAX_TOKEN_LEN} letters, digits and `. _ ~ -` (it travels in headers and cookies as it is)"
        );
        Ok(Token {
            name: name.map(str::to_string),
            secret: secret.to_string(),
            read_only,
        })
    }

    /// Whether `presented` is this token, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        constant_time_eq(presented.as_bytes(), self.secret.as_bytes())
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }
}

/// The tokens of `spool serve`: each `--token` value (or `SPOOL_TOKEN`, comma-separated), or
/// each non-empty line of a file that is not a `#` comment. Names and secrets must differ.
pub fn load_tokens(
    values: &[String],
    file: Option<&std::path::Path>,
) -> anyhow::Result<Vec<Token>> {
    let specs: Vec<String> = match (values.iter().any(|v| !v.is_empty()), file) {
        (true, Some(_)) => anyhow::bail!("give the tokens once: as values or in a file"),
        (true, None) => values.iter().filter(|v| !v.is_empty()).cloned().collect(),
        (false, Some(path)) => read_small_file(path)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect(),
        (false, None) => Vec::new(),
    };
    anyhow::ensure!(
        specs.len() <= MAX_TOKENS,
        "{} tokens given, at most {MAX_TOKENS} are accepted",
        specs.len()
    );
    let tokens = specs
        .iter()
        .map(|s| Token::parse(s))
        .collect::<anyhow::Result<Vec<Token>>>()?;
    for (i, t) in tokens.iter().enumerate() {
        for earlier in &tokens[..i] {
            anyhow::ensure!(
                earlier.secret != t.secret,
                "two tokens have the same secret: each holder needs their own"
            );
            if let (Some(a), Some(b)) = (&earlier.name, &t.name) {
                anyhow::ensure!(a != b, "two tokens are named `{a}`");
            }
        }
    }
    Ok(tokens)
}

/// A token file's text: a small regular file (it keeps tokens out of `ps`).
fn read_small_file(path: &std::path::Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("token file `{}`: {e}", path.display()))?;
    if !meta.is_file()
        || meta.len() > (MAX_TOKENS * (MAX_TOKEN_LEN + MAX_TOKEN_NAME_LEN + 16)) as u64
    {
        anyhow::bail!(
            "token file `{}` is not a small regular file",
            path.display()
        );
    }
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("token file `{}`: {e}", path.display()))
}

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
    if state.tokens.is_empty() {
        // No token configured: nothing to sign in to.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let Some(token) = state.tokens.iter().find(|t| t.matches(&body.token)) else {
        state.limits.sign_ins.failed().await;
        return Err(ApiError::Unauthorized);
    };
    let cookie = format!(
        "{TOKEN_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/api",
        token.secret()
    );
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_secrets_with_an_optional_name_and_read_only_flag() {
        let t = Token::parse("ops=s3cret").unwrap();
        assert_eq!((t.name.as_deref(), t.read_only), (Some("ops"), false));
        assert!(t.matches("s3cret") && !t.matches("ops=s3cret"));
        let t = Token::parse("viewer=v1ew:read-only").unwrap();
        assert_eq!((t.name.as_deref(), t.read_only), (Some("viewer"), true));
        assert!(t.matches("v1ew"));
        assert_eq!(
            Token::parse("s3cret").unwrap(),
            Token::unnamed("s3cret".into())
        );
        for bad in [
            "=s3cret",
            "ops=",
            "ops=s3cret:admin",
            "a b=s3cret",
            "ops=s3 cret",
        ] {
            assert!(Token::parse(bad).is_err(), "{bad}");
        }
        assert!(!format!("{:?}", Token::parse("ops=s3cret").unwrap()).contains("s3cret"));
    }

    /// SECURITY.md's token set: 1 to 256 of `A-Z a-z 0-9 . _ ~ -`, whether given as a value
    /// (`--token`, `SPOOL_TOKEN`, `SPOOL_LIVY_TOKEN`) or in a file. Anything else (a `;` would
    /// add cookie attributes, spaces and control characters would split or end a header) is
    /// refused before the server starts, with an error that names the set and not the secret.
    #[test]
    fn tokens_are_the_documented_characters_only_and_others_are_refused_clearly() {
        let set = "ABCXYZabcxyz0189._~-";
        assert_eq!(load_token(Some(set), None).unwrap().as_deref(), Some(set));
        let longest = "t".repeat(MAX_TOKEN_LEN);
        assert_eq!(load_token(Some(&longest), None).unwrap(), Some(longest));
        assert_eq!(load_token(Some(""), None).unwrap(), None, "empty: no token");
        assert_eq!(load_token(None, None).unwrap(), None);
        let refused = [
            "s3c;ret",
            "s3c;ret; Domain=evil.example",
            "s3c ret",
            " s3cret",
            "s3c\tret",
            "s3c\nret",
            "s3c\rret",
            "s3c\0ret",
            "s3c\u{7f}ret",
            "s3c\u{1b}[2Jret",
            "s3cr\u{e9}t",
            "s3c=ret",
            "s3c:ret",
            "s3c,ret",
            "s3c\"ret",
            "s3c%3Bret",
            "s3c/ret",
        ];
        let too_long = "t".repeat(MAX_TOKEN_LEN + 1);
        for bad in refused.iter().copied().chain([too_long.as_str()]) {
            let err = load_token(Some(bad), None).unwrap_err().to_string();
            assert!(
                err.contains("1 to 256 letters, digits and `. _ ~ -`"),
                "{bad:?}: {err}"
            );
            assert!(!err.contains(bad), "the error repeats the secret: {err}");
            // `spool serve --token NAME=SECRET`: the same set for the secret.
            let spec = format!("ops={bad}");
            let err = load_tokens(&[spec], None).unwrap_err().to_string();
            assert!(
                err.contains("letters, digits and `. _ ~ -`"),
                "{bad:?}: {err}"
            );
            assert!(!err.contains(bad), "the error repeats the secret: {err}");
        }
        // A file's surrounding whitespace (its final newline) is not part of the token; what
        // is inside it is checked like a value.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  s3cret\n").unwrap();
        assert_eq!(
            load_token(None, Some(&file)).unwrap().as_deref(),
            Some("s3cret")
        );
        for bad in ["s3c ret\n", "s3c;ret\n", "s3c\u{1b}ret\n"] {
            std::fs::write(&file, bad).unwrap();
            let err = load_token(None, Some(&file)).unwrap_err().to_string();
            assert!(
                err.contains("letters, digits and `. _ ~ -`"),
                "{bad:?}: {err}"
            );
        }
        assert!(
            load_token(Some("s3cret"), Some(&file)).is_err(),
            "given twice"
        );
    }

    #[test]
    fn several_tokens_come_from_values_or_a_file_and_must_differ() {
        let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            load_tokens(&values(&["a=x1", "b=x2"]), None).unwrap().len(),
            2
        );
        assert!(load_tokens(&values(&["a=x1", "b=x1"]), None).is_err());
        assert!(load_tokens(&values(&["a=x1", "a=x2"]), None).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# the team\nops=x1\n\nviewer=x2:read-only\n").unwrap();
        let tokens = load_tokens(&[], Some(&file)).unwrap();
        assert_eq!(
            tokens.iter().map(|t| t.read_only).collect::<Vec<_>>(),
            [false, true]
        );
        assert!(load_tokens(&values(&["a=x1"]), Some(&file)).is_err());
        assert!(load_tokens(&[], None).unwrap().is_empty());
    }
}
