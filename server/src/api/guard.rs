//! Who may call Spool's HTTP endpoints. One check serves the API and the Livy-compatible
//! endpoint (`livy_local`): without a token they answer only requests whose Host names
//! loopback (so a DNS-rebound page cannot pass as same-origin) and refuse changes from another
//! origin; with a token every call must carry it (the API also accepts its HttpOnly cookie,
//! for changes only with same-origin proof).

use super::error::ApiError;
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
    /// When set, every request must carry it (`Authorization: Bearer`, or the cookie).
    pub token: Option<&'a str>,
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

pub async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let policy = Policy {
        token: state.token.as_deref(),
        changes_need_same_origin: true,
        cookie: true,
    };
    let signing_in = *req.method() == Method::POST && req.uri().path().ends_with("/session");
    match check(&policy, req.method(), signing_in, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(Refusal::Unauthorized) => {
            // A wrong credential is a guess: guesses are answered one at a time, slowly.
            state.limits.sign_ins.failed().await;
            ApiError::Unauthorized.into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Checks a request against a policy. `signing_in`: the request trades the token for the
/// cookie (its handler checks the token), so it needs only the same-origin proof.
pub(crate) fn check(
    policy: &Policy,
    method: &Method,
    signing_in: bool,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header(header::HOST).unwrap_or("");
    let mutating = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
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
    let Some(expected) = policy.token else {
        if !is_loopback_host(host) {
            return Err(Refusal::ForeignHost(host.to_string()));
        }
        return if changes_refused(same_origin) {
            Err(Refusal::CrossOrigin)
        } else {
            Ok(())
        };
    };
    let matches = |p: &str| constant_time_eq(p.as_bytes(), expected.as_bytes());
    if header(header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(matches)
    {
        return Ok(());
    }
    // A cookie is sent by the browser whoever made the page, so it only counts for changes
    // that prove they come from the Spool page.
    let cookie = policy.cookie
        && headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| k == TOKEN_COOKIE && matches(v));
    if !(cookie || (signing_in && policy.cookie)) {
        return Err(Refusal::Unauthorized);
    }
    if mutating && (foreign_origin || !same_origin) {
        return Err(Refusal::CrossOrigin);
    }
    Ok(())
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

    fn api(token: Option<&str>) -> Policy<'_> {
        Policy {
            token,
            changes_need_same_origin: true,
            cookie: true,
        }
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
        assert!(check(&api(None), &Method::GET, false, &headers(&local)).is_ok());
        assert!(check(&api(None), &Method::POST, false, &headers(&local)).is_err());
        let same = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ];
        assert!(check(&api(None), &Method::POST, false, &headers(&same)).is_ok());
        let other = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ];
        assert!(check(&api(None), &Method::PUT, false, &headers(&other)).is_err());
        let fetch = [
            ("host", "localhost:8080"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert!(check(&api(None), &Method::DELETE, false, &headers(&fetch)).is_ok());
    }

    #[test]
    fn rebound_host_names_are_refused_without_a_token() {
        let rebound = [
            ("host", "evil.example:8080"),
            ("origin", "http://evil.example:8080"),
        ];
        assert!(check(&api(None), &Method::GET, false, &headers(&rebound)).is_err());
        assert!(check(
            &api(None),
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
            check(&api(Some("s3cret")), &Method::GET, false, &headers(&h)),
            Err(Refusal::Unauthorized)
        ));
        let ok = [
            ("host", "10.0.0.5:8080"),
            ("authorization", "Bearer s3cret"),
        ];
        assert!(check(&api(Some("s3cret")), &Method::POST, false, &headers(&ok)).is_ok());
        let bad = [
            ("host", "10.0.0.5:8080"),
            ("authorization", "Bearer s3creT"),
        ];
        assert!(check(&api(Some("s3cret")), &Method::GET, false, &headers(&bad)).is_err());
    }
}
