//! Who may call the API: a bearer token when one is configured, and, for requests that change
//! something, the token or proof of coming from the same origin (against CSRF). Without a
//! token the server only listens on loopback, and the Host header must name loopback too (so a
//! DNS-rebound page cannot pass as same-origin).

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

pub async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match check(
        state.token.as_deref(),
        req.method(),
        req.uri().path(),
        req.headers(),
    ) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check(
    token: Option<&str>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header(header::HOST).unwrap_or("");
    let mutating = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let same_site =
        header(header::HeaderName::from_static("sec-fetch-site")) == Some("same-origin");
    let same_origin = same_site
        || header(header::ORIGIN).is_some_and(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .is_some_and(|rest| rest == host)
        });
    let cross_site = || {
        ApiError::Forbidden(
            "a request that changes something must come from the Spool page (same origin) or carry the token"
                .into(),
        )
    };
    let Some(expected) = token else {
        if !is_loopback_host(host) {
            return Err(ApiError::Forbidden(format!(
                "host `{host}` is not loopback; start the server with --token to serve other hosts"
            )));
        }
        return if mutating && !same_origin {
            Err(cross_site())
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
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == TOKEN_COOKIE && matches(v));
    let signing_in = *method == Method::POST && path.ends_with("/session");
    match (cookie, signing_in) {
        (true, _) | (false, true) if mutating && !same_origin => Err(cross_site()),
        (true, _) | (false, true) => Ok(()),
        (false, false) => Err(ApiError::Unauthorized),
    }
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

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
        assert!(check(None, &Method::GET, "/pipelines", &headers(&local)).is_ok());
        assert!(check(None, &Method::POST, "/pipelines", &headers(&local)).is_err());
        let same = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ];
        assert!(check(None, &Method::POST, "/pipelines", &headers(&same)).is_ok());
        let other = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ];
        assert!(check(None, &Method::PUT, "/pipelines", &headers(&other)).is_err());
        let fetch = [
            ("host", "localhost:8080"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert!(check(None, &Method::DELETE, "/pipelines", &headers(&fetch)).is_ok());
    }

    #[test]
    fn rebound_host_names_are_refused_without_a_token() {
        let rebound = [
            ("host", "evil.example:8080"),
            ("origin", "http://evil.example:8080"),
        ];
        assert!(check(None, &Method::GET, "/pipelines", &headers(&rebound)).is_err());
        assert!(check(
            None,
            &Method::GET,
            "/pipelines",
            &headers(&[("host", "[::1]:80")])
        )
        .is_ok());
    }

    #[test]
    fn a_configured_token_is_required_for_everything() {
        let h = [("host", "10.0.0.5:8080")];
        assert!(matches!(
            check(Some("s3cret"), &Method::GET, "/pipelines", &headers(&h)),
            Err(ApiError::Unauthorized)
        ));
        let ok = [
            ("host", "10.0.0.5:8080"),
            ("authorization", "Bearer s3cret"),
        ];
        assert!(check(Some("s3cret"), &Method::POST, "/pipelines", &headers(&ok)).is_ok());
        let bad = [
            ("host", "10.0.0.5:8080"),
            ("authorization", "Bearer s3creT"),
        ];
        assert!(check(Some("s3cret"), &Method::GET, "/pipelines", &headers(&bad)).is_err());
    }
}
