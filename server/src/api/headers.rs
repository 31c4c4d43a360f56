//! Security headers on every answer: no MIME sniffing, no referrer, never framed, and a
//! Content-Security-Policy. Pages of the web app may run only the server's own scripts and
//! WebAssembly (plus the inline start-up script of its `index.html`, allowed by its hash) and
//! talk only to their own origin; every other answer may load nothing at all.

use axum::http::{header, HeaderValue};
use axum::response::Response;
use base64::Engine;

/// The policy of answers that are not web app pages (JSON, event streams, assets).
const NOTHING_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

pub async fn add(mut res: Response) -> Response {
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(NOTHING_POLICY),
        );
    }
    res
}

/// The policy of a web app page: its own files, WebAssembly compilation
/// (`'wasm-unsafe-eval'`, not `eval`), its inline scripts by hash, style attributes (Yew
/// sets a few), same-origin fetches and event streams.
pub fn app_page_policy(html: &[u8]) -> String {
    let hashes: String = inline_scripts(html)
        .map(|script| {
            let digest = ring::digest::digest(&ring::digest::SHA256, script);
            format!(
                " 'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
            )
        })
        .collect();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; \
         style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The contents of the `<script>` elements without a `src`, as the browser hashes them.
fn inline_scripts(html: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = html;
    std::iter::from_fn(move || loop {
        let open = find(rest, b"<script")?;
        let after_open = &rest[open..];
        let tag_end = find(after_open, b">")?;
        let tag = &after_open[..tag_end];
        let body = &after_open[tag_end + 1..];
        let close = find(body, b"</script")?;
        rest = &body[close..];
        if find(tag, b"src=").is_none() {
            return Some(&body[..close]);
        }
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_allowed_by_hash_and_nothing_else_inline() {
        let html = b"<html><script src=\"/a.js\"></script>\
            <script type=\"module\">import init from '/a.js';</script></html>";
        let policy = app_page_policy(html);
        // echo -n "import init from '/a.js';" | openssl dgst -sha256 -binary | base64
        let expected = ring::digest::digest(&ring::digest::SHA256, b"import init from '/a.js';");
        let expected = base64::engine::general_purpose::STANDARD.encode(expected.as_ref());
        assert!(policy.contains(&format!("'sha256-{expected}'")), "{policy}");
        assert_eq!(policy.matches("'sha256-").count(), 1, "{policy}");
        assert!(policy.contains("'wasm-unsafe-eval'") && !policy.contains("'unsafe-eval'"));
        assert!(policy.contains("frame-ancestors 'none'"));
    }
}
