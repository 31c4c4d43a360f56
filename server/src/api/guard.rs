//! Who may call Spool's HTTP endpoints. One check serves the API and the Livy-compatible
//! endpoint (`livy_local`): without a token they answer only requests whose Host names
//! loopback (so a DNS-rebound page cannot pass as same-origin) and refuse changes from another
//! origin; with a token every call must carry it (the API also accepts its HttpOnly cookie,
//! for changes only with same-origin proof).

use super::error::ApiError;
use super::session::Token;
use super::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The cookie `POST /api/session` sets, so the browser (whose `EventSource` cannot send
/// headers) can present the token.
pub const TOKEN_COOKIE: &str = "spool_token";

/// What an endpoint asks of its callers.
pub(crate) struct Policy<'a> {
    /// When there are any, every request must carry one (`Authorization: Bearer`, or the
    /// cookie).
    pub tokens: &'a [Token],
    /// The API: a browser app whose changes always say where they come from, so a change
    /// needs positive proof of the same origin (or the bearer token). The Livy endpoint's
    /// clients are programs that send no `Origin`, so there only a foreign origin is refused.
    pub changes_need_same_origin: bool,
    /// The API's token cookie is accepted (not by the Livy endpoint).
    pub cookie: bool,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The Host header is not loopback and no token is configured.
    ForeignHost(String),
    /// A change from another origin, or without proof of the same one.
    CrossOrigin,
    /// A token is configured and the request does not carry it.
    Unauthorized,
    /// A read-only token asked for a change.
    ReadOnly(Option<String>),
}

impl Refusal {
    pub(crate) fn message(&self) -> String {
        match self {
            Refusal::ForeignHost(host) => format!(
                "host `{host}` is not loopback; start the server with a token to serve other hosts"
            ),
            Refusal::CrossOrigin => {
                "a request that changes something must come from the same origin or carry the token"
                    .into()
            }
            Refusal::Unauthorized => "a valid token is required".into(),
            Refusal::ReadOnly(name) => format!(
                "the token{} is read-only: it can list and watch runs, not start, cancel, resume or save",
                name.as_ref().map_or(String::new(), |n| format!(" `{n}`"))
            ),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Unauthorized => ApiError::Unauthorized,
            other => ApiError::Forbidden(other.message()),
        }
    }
}

/// Who made an API request, as the handlers see it (the guard puts it in the request's
/// extensions).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The name of the token it presented, if it has one.
    pub name: Option<String>,
}

/// What a read-only token may do besides reading: sign in, and ask for a dry run (which
/// changes nothing). `path` is within `/api`.
fn read_only_may(method: &Method, path: &str) -> bool {
    let simulate = path
        .strip_prefix("/pipelines/")
        .and_then(|rest| rest.strip_suffix("/simulate"))
        .is_some_and(|file| !file.is_empty() && !file.contains('/'));
    !is_change(method) || (*method == Method::POST && (path == "/session" || simulate))
}

pub async fn guard(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let policy = Policy {
        tokens: &state.tokens,
        changes_need_same_origin: true,
        cookie: true,
    };
    let signing_in = *req.method() == Method::POST && req.uri().path().ends_with("/session");
    let checked =
        check(&policy, req.method(), signing_in, req.headers()).and_then(|token| match token {
            Some(t) if t.read_only && !read_only_may(req.method(), req.uri().path()) => {
                Err(Refusal::ReadOnly(t.name.clone()))
            }
            _ => Ok(Caller {
                name: token.and_then(|t| t.name.clone()),
            }),
        });
    match checked {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(Refusal::Unauthorized) => {
            // A wrong credential is a guess: guesses are answered one at a time, slowly.
            state.limits.sign_ins.failed().await;
            ApiError::Unauthorized.into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn is_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks a request against a policy; the token it presented, if any. `signing_in`: the
/// request trades the token for the cookie (its handler checks the token), so it needs only
/// the same-origin proof.
pub(crate) fn check<'a>(
    policy: &Policy<'a>,
    method: &Method,
    signing_in: bool,
    headers: &HeaderMap,
) -> Result<Option<&'a Token>, Refusal> {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header(header::HOST).unwrap_or("");
    let mutating = is_change(method);
    let fetch_site = header(header::HeaderName::from_static("sec-fetch-site"));
    let origin = header(header::ORIGIN);
    let origin_is_host = |o: &str| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            .is_some_and(|rest| rest == host)
    };
    let same_origin = fetch_site == Some("same-origin") || origin.is_some_and(origin_is_host);
    // Evidence of a browser page of another origin (`none`: the user typed the address).
    let foreign_origin = fetch_site.is_some_and(|s| s != "same-origin" && s != "none")
        || origin.is_some_and(|o| !origin_is_host(o));
    let changes_refused =
        |proven: bool| mutating && (foreign_origin || (policy.changes_need_same_origin && !proven));
    if policy.tokens.is_empty() {
        if !is_loopback_host(host) {
            return Err(Refusal::ForeignHost(host.to_string()));
        }
        return if changes_refused(same_origin) {
            Err(Refusal::CrossOrigin)
        } else {
            Ok(None)
        };
    }
    let token_of = |p: &str| policy.tokens.iter().find(|t| t.matches(p));
    if let Some(token) = header(header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(token_of)
    {
        return Ok(Some(token));
    }
    // A cookie is sent by the browser whoever made the page, so it only counts for changes
    // that prove they come from the Spool page.
    let cookie = match policy.cookie {
        true => headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find_map(|(k, v)| (k == TOKEN_COOKIE).then(|| token_of(v)).flatten()),
        false => None,
    };
    if cookie.is_none() && !(signing_in && policy.cookie) {
        return Err(Refusal::Unauthorized);
    }
    if mutating && (foreign_origin || !same_origin) {
        return Err(Refusal::CrossOrigin);
    }
    Ok(cookie)
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn api(tokens: &[Token]) -> Policy<'_> {
        Policy {
            tokens,
            changes_need_same_origin: true,
            cookie: true,
        }
    }

    fn token(spec: &str) -> Vec<Token> {
        vec![Token::parse(spec).unwrap()]
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn loopback_reads_are_free_and_writes_need_same_origin() {
        let local = [("host", "127.0.0.1:8080")];
        assert!(check(&api(&[]), &Method::GET, false, &headers(&local)).is_ok());
        assert!(check(&api(&[]), &Method::POST, false, &headers(&local)).is_err());
        let same = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ];
        assert!(check(&api(&[]), &Method::POST, false, &headers(&same)).is_ok());
        let other = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ];
        assert!(check(&api(&[]), &Method::PUT, false, &headers(&other)).is_err());
        let fetch = [
            ("host", "localhost:8080"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert!(check(&api(&[]), &Method::DELETE, false, &headers(&fetch)).is_ok());
    }

    #[test]
    fn rebound_host_names_are_refused_without_a_token() {
        let rebound = [
            ("host", "evil.example:8080"),
            ("origin", "http://evil.example:8080"),
        ];
        assert!(check(&api(&[]), &Method::GET, false, &headers(&rebound)).is_err());
        assert!(check(
            &api(&[]),
            &Method::GET,
            false,
            &headers(&[("host", "[::1]:80")])
        )
        .is_ok());
    }

    #[test]
    fn a_configured_token_is_required_for_everything() {
        let h = [("host", "10.0.0.5:8080")];
        assert!(matches!(
            check(&api(&token("s3cret")), &Method::GET, false, &headers(&h)),
            Err(Refusal::Unauthorized)
        ));
        let ok = [
            ("host", "10.0.0.5:8080"),
            ("authorization", "Bearer s3cret"),
        ];
        assert!(check(&api(&token("s3cret")), &Method::POST, false, &headers(&ok)).is_ok());
        let bad = [
            ("host", "10.0.0.5:8080"),
            ("authorization", "Bearer s3creT"),
        ];
        assert!(check(&api(&token("s3cret")), &Method::GET, false, &headers(&bad)).is_err());
    }
}
