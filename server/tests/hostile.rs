//! The hostile-client suite: what a web page of another origin, a DNS-rebinding page, a
//! token guesser, or a careless or malicious local client can make the API do. Every answer
//! must be the documented status with the JSON error body, nothing may be written outside
//! the pipelines folder (or at all, when refused), and nothing internal may be leaked.
//! Most go through `app(state)` with `oneshot`; the timeouts need a real bound server.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{call, fixture, fixture_with_web, get, put_text, Fixture, PIPELINE};
use serde_json::{json, Value};
use spool_server::api::{app, WebApp, MAX_LIVE_STREAMS};
use spool_server::history::{RunEvent, RunStatus};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const SAME_ORIGIN: Option<&str> = Some("http://127.0.0.1:8080");

/// The JSON error shape of docs/api.md, with the expected code; nothing else in it.
fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().expect("a message");
    for leak in ["/tmp", "panicked", "rusqlite", "os error"] {
        assert!(!message.contains(leak), "leaks `{leak}`: {message}");
    }
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn post_same_origin(uri: &str, body: &str) -> Request<Body> {
    request(
        "POST",
        uri,
        &[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("content-type", "application/json"),
        ],
        body,
    )
}

/// A save of `nightly.toml` with these headers is refused with 403.
async fn put_is_forbidden(f: &Fixture, headers: &[(&str, &str)]) {
    let (status, body) = call(
        f,
        request("PUT", "/api/pipelines/nightly.toml", headers, &put_body()),
    )
    .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

fn pipeline_unchanged(f: &Fixture) {
    assert_eq!(
        std::fs::read_to_string(f.root.join("nightly.toml")).unwrap(),
        PIPELINE
    );
}

/// The pipeline as it would be valid one folder down (its notebooks are `../nb/…`).
fn one_folder_down() -> String {
    PIPELINE.replace("\"nb/", "\"../nb/")
}

fn put_body() -> String {
    json!({ "text": PIPELINE.replace("nightly", "pwned") }).to_string()
}

#[tokio::test]
async fn dns_rebinding_pages_get_nothing() {
    let f = fixture(None);
    for host in [
        "evil.example",
        "evil.example:8080",
        "127.0.0.1.evil.example",
        "",
    ] {
        let (status, body) =
            call(&f, request("GET", "/api/pipelines", &[("host", host)], "")).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let origin = format!("http://{host}");
        put_is_forbidden(
            &f,
            &[
                ("host", host),
                ("origin", &origin),
                ("content-type", "application/json"),
            ],
        )
        .await;
    }
    pipeline_unchanged(&f);
}

#[tokio::test]
async fn cross_origin_writes_and_csrf_forms_are_refused() {
    let f = fixture(None);
    let attempts: Vec<Vec<(&str, &str)>> = vec![
        // fetch() from another origin.
        vec![
            ("origin", "http://evil.example"),
            ("content-type", "application/json"),
        ],
        // A form or a no-cors fetch with a "simple" content type.
        vec![
            ("origin", "http://evil.example"),
            ("content-type", "text/plain"),
        ],
        vec![
            ("origin", "null"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("content-type", "text/plain"),
        ],
        // A same-site (another port) page: still another origin.
        vec![
            ("origin", "http://127.0.0.1:9999"),
            ("content-type", "application/json"),
        ],
        // The origin's name as a prefix.
        vec![("origin", "http://127.0.0.1:8080.evil.example")],
        // No proof at all.
        vec![("content-type", "application/json")],
    ];
    for extra in attempts {
        let mut headers = vec![("host", "127.0.0.1:8080")];
        headers.extend(extra.iter().copied());
        for (method, uri) in [
            ("PUT", "/api/pipelines/nightly.toml"),
            ("PUT", "/api/pipelines/new.toml"),
            ("POST", "/api/runs"),
        ] {
            let (status, body) = call(&f, request(method, uri, &headers, &put_body())).await;
            assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
        }
    }
    pipeline_unchanged(&f);
    assert!(!f.root.join("new.toml").exists());
    let (_, runs) = call(&f, get("/api/runs")).await;
    assert_eq!(runs, json!([]));
}

#[tokio::test]
async fn near_miss_tokens_are_unauthorized_and_cookies_need_the_same_origin() {
    let token = "Abc.def_123-~xyz";
    let host = ("host", "spool.internal:8080");
    let near_misses = [
        "Bearer Abc.def_123-~xy".to_string(),
        "Bearer Abc.def_123-~xyzz".to_string(),
        "Bearer abc.def_123-~xyz".to_string(),
        format!("Bearer {token} "),
        format!("bearer {token}"),
        format!("Bearer  {token}"),
        format!("Basic {token}"),
        token.to_string(),
        "Bearer ".to_string(),
    ];
    for auth in &near_misses {
        // A fresh server each time: wrong tokens in a row are answered more and more slowly.
        let f = fixture(Some(token));
        let (status, body) = call(
            &f,
            request(
                "GET",
                "/api/pipelines",
                &[host, ("authorization", auth)],
                "",
            ),
        )
        .await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let f = fixture(Some(token));
    let cookie = format!("spool_token={token}");
    // A cookie reads, but a change with it must prove the same origin (against CSRF).
    let (status, _) = call(
        &f,
        request("GET", "/api/pipelines", &[host, ("cookie", &cookie)], ""),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    put_is_forbidden(
        &f,
        &[
            host,
            ("cookie", &cookie),
            ("origin", "http://evil.example"),
            ("content-type", "application/json"),
        ],
    )
    .await;
    pipeline_unchanged(&f);
}

#[tokio::test]
async fn repeated_wrong_tokens_are_answered_more_and_more_slowly() {
    let f = fixture(Some("s3cret"));
    let sign_in = |token: &str| {
        request(
            "POST",
            "/api/session",
            &[
                ("host", "spool.internal:8080"),
                ("origin", "http://spool.internal:8080"),
                ("content-type", "application/json"),
            ],
            &json!({ "token": token }).to_string(),
        )
    };
    let started = Instant::now();
    for guess in ["a", "b", "c", "d"] {
        let (status, body) = call(&f, sign_in(guess)).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // 100 + 200 + 400 + 800 ms: guessing is slowed down, and guesses wait for each other.
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let res = app(f.state.clone())
        .oneshot(sign_in("s3cret"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn traversal_encodings_nul_and_separators_are_refused_and_write_nothing() {
    let f = fixture(None);
    let outside = f.root.parent().unwrap().join("escaped.toml");
    let names = [
        "..%2F..%2Fescaped.toml",
        "..%2Fescaped.toml",
        "..%252F..%252Fescaped.toml",
        "%2E%2E%2Fescaped.toml",
        "..%5Cescaped.toml",
        "a%2F..%2F..%2Fescaped.toml",
        "%2Fetc%2Fescaped.toml",
        "C%3A%5Cescaped.toml",
        "nul%00.toml",
        "line%0Abreak.toml",
        "tab%09.toml",
        ".hidden.toml",
        "sub%2F.git%2Fx.toml",
        "notes.txt",
        "nightly.toml%00.txt",
    ];
    for name in names {
        let uri = format!("/api/pipelines/{name}");
        let (status, body) = call(&f, put_text(&uri, PIPELINE, SAME_ORIGIN)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
        let (status, body) = call(&f, get(&uri)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    // Double encoding decodes once: a strange but confined name, never a path out.
    let uri = "/api/pipelines/a%252F..%252F..%252Fescaped.toml";
    let (status, body) = call(&f, get(uri)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, _) = call(&f, put_text(uri, PIPELINE, SAME_ORIGIN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(f.root.join("a%2F..%2F..%2Fescaped.toml").is_file());
    assert!(!outside.exists());
    // A folder where the file would be, a file where a folder would be.
    std::fs::create_dir(f.root.join("dir.toml")).unwrap();
    for (name, text) in [
        ("dir.toml", PIPELINE.to_string()),
        ("nightly.toml%2Fx.toml", one_folder_down()),
    ] {
        let uri = format!("/api/pipelines/{name}");
        let (status, body) = call(&f, put_text(&uri, &text, SAME_ORIGIN)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    pipeline_unchanged(&f);
}

#[cfg(unix)]
#[tokio::test]
async fn writes_through_a_link_out_of_the_folder_are_refused_and_links_are_not_listed() {
    let f = fixture(None);
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("theirs.toml"), PIPELINE).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), f.root.join("linkout")).unwrap();
    for name in ["linkout%2Fescaped.toml", "linkout%2Ftheirs.toml"] {
        let uri = format!("/api/pipelines/{name}");
        let (status, body) = call(&f, put_text(&uri, &one_folder_down(), SAME_ORIGIN)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
        assert!(body["message"].as_str().unwrap().contains("link"), "{body}");
    }
    assert!(!elsewhere.path().join("escaped.toml").exists());
    assert_eq!(
        std::fs::read_to_string(elsewhere.path().join("theirs.toml")).unwrap(),
        PIPELINE
    );
    let (_, list) = call(&f, get("/api/pipelines")).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (_, bundle) = call(&f, get("/api/pipelines/nightly.toml/bundle")).await;
    assert_eq!(bundle["files"].as_object().unwrap().len(), 1, "{bundle}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_fifo_named_like_a_pipeline_stalls_nothing() {
    let f = fixture(None);
    let fifo = f.root.join("x.toml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let answered = tokio::time::timeout(Duration::from_secs(20), async {
        let (status, list) = call(&f, get("/api/pipelines")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            list.as_array().unwrap().len(),
            1,
            "the FIFO is not listed: {list}"
        );
        let (status, body) = call(&f, get("/api/pipelines/x.toml")).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
        let (status, _) = call(&f, get("/api/pipelines/nightly.toml/bundle")).await;
        assert_eq!(status, StatusCode::OK);
    })
    .await;
    assert!(answered.is_ok(), "a request blocked on the FIFO");
}

#[tokio::test]
async fn oversized_and_deeply_nested_bodies_are_refused_as_json() {
    let f = fixture(None);
    let huge = "x".repeat(spool_server::api::MAX_BODY_BYTES + 1);
    let (status, body) = call(&f, post_same_origin("/api/runs", &huge)).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    let nested = format!(
        "{{\"file\":\"nightly.toml\",\"params\":{{\"x\":{}1{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, body) = call(&f, post_same_origin("/api/runs", &nested)).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (_, runs) = call(&f, get("/api/runs")).await;
    assert_eq!(runs, json!([]));
}

#[tokio::test]
async fn bad_ids_and_non_pipeline_files_are_json_400s() {
    let f = fixture(None);
    for uri in [
        "/api/runs/abc",
        "/api/runs/1e3/events",
        "/api/runs/99999999999999999999",
    ] {
        let (status, body) = call(&f, get(uri)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    for file in ["nb/load.py", "../nightly.toml", "nightly.toml.bak"] {
        let (status, body) = call(
            &f,
            post_same_origin("/api/runs", &json!({ "file": file }).to_string()),
        )
        .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
}

#[tokio::test]
async fn every_answer_has_the_security_headers_and_the_page_a_strict_policy() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(
        web.path().join("index.html"),
        "<html><body><script type=\"module\">import init from '/app.js'; await init();</script></body></html>",
    )
    .unwrap();
    let f = fixture_with_web(None, WebApp::Folder(web.path().to_path_buf()));
    for uri in ["/", "/api/pipelines", "/api/nope", "/api/runs/abc"] {
        let res = app(f.state.clone()).oneshot(get(uri)).await.unwrap();
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{uri}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{uri}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        if uri == "/" {
            assert!(
                csp.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-"),
                "{csp}"
            );
            assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
        } else {
            assert!(csp.starts_with("default-src 'none'"), "{uri}: {csp}");
        }
    }
}

/// A run of `nightly.toml` that has started (and not finished) in the history.
fn started_run(f: &Fixture) -> i64 {
    f.state
        .history
        .create_run(
            &RunEvent::RunStarted {
                pipeline: "nightly".into(),
                file: "nightly.toml".into(),
                params: BTreeMap::new(),
                resumed_from: None,
                plan: json!({}),
                trigger: None,
                started_by: None,
            },
            1,
        )
        .unwrap()
}

fn finished_run(f: &Fixture) -> (i64, i64) {
    let h = &f.state.history;
    let id = started_run(f);
    let last = h
        .append(
            id,
            &RunEvent::RunFinished {
                status: RunStatus::Succeeded,
            },
            2,
        )
        .unwrap();
    (id, last)
}

async fn stream_text(f: &Fixture, uri: &str, last_event_id: Option<i64>) -> (StatusCode, String) {
    let mut req = get(uri);
    if let Some(id) = last_event_id {
        req.headers_mut()
            .insert("last-event-id", id.to_string().parse().unwrap());
    }
    let res = app(f.state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let body = tokio::time::timeout(
        Duration::from_secs(10),
        axum::body::to_bytes(res.into_body(), 1 << 20),
    )
    .await
    .expect("the stream of a finished run ends")
    .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_stream_of_a_finished_run_resumed_at_its_end_closes_at_once() {
    let f = fixture(None);
    let (id, last) = finished_run(&f);
    let uri = format!("/api/runs/{id}/events");
    let (status, all) = stream_text(&f, &uri, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.matches("data:").count(), 2, "{all}");
    let (_, rest) = stream_text(&f, &uri, Some(last - 1)).await;
    assert_eq!(rest.matches("data:").count(), 1, "{rest}");
    let (_, nothing) = stream_text(&f, &uri, Some(last)).await;
    assert!(!nothing.contains("data:"), "{nothing}");
}

#[tokio::test]
async fn event_streams_are_capped_with_a_clear_503() {
    let f = fixture(None);
    // A run that is still going: its streams stay open.
    let id = started_run(&f);
    let uri = format!("/api/runs/{id}/events");
    let mut open = Vec::new();
    for _ in 0..MAX_LIVE_STREAMS {
        let res = app(f.state.clone()).oneshot(get(&uri)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        open.push(res);
    }
    let (status, body) = call(&f, get(&uri)).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    open.pop();
    let res = app(f.state.clone()).oneshot(get(&uri)).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a closed stream frees its place"
    );
}

#[tokio::test]
async fn concurrent_saves_of_one_file_all_succeed() {
    let f = fixture(None);
    let texts: Vec<String> = (0..12)
        .map(|i| PIPELINE.replace("executors = 2", &format!("executors = {}", i + 1)))
        .collect();
    let saves = texts.iter().map(|t| {
        let state = f.state.clone();
        let req = put_text("/api/pipelines/nightly.toml", t, SAME_ORIGIN);
        tokio::spawn(async move { app(state).oneshot(req).await.unwrap().status() })
    });
    for save in futures_util::future::join_all(saves).await {
        assert_eq!(save.unwrap(), StatusCode::OK);
    }
    let now = std::fs::read_to_string(f.root.join("nightly.toml")).unwrap();
    assert!(texts.contains(&now));
}

/// A real bound server: a client that sends its headers too slowly is cut off, while others
/// are served meanwhile.
#[tokio::test]
async fn slow_loris_clients_are_cut_off_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture(None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let timeout = Duration::from_millis(500);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(spool_server::api::serve(
        listener,
        app(f.state.clone()),
        timeout,
        async {
            let _ = stopped.await;
        },
    ));
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /api/pipelines HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let other = reqwest::get(format!("http://{addr}/api/pipelines"))
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the slow connection is closed by the server"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
