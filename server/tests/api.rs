//! The HTTP API through `app(state)` with `oneshot`: pipelines, validation, guards, limits.
//! (Runs against real Spark are covered by the end-to-end tests.)

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use spool_server::agent::Agent;
use spool_server::api::{app, AppState};
use spool_server::history::History;
use spool_server::livy::{ClientConfig, LivyClient};
use spool_server::runs::{RunManager, SparkTarget};
use std::sync::Arc;
use tower::ServiceExt;

const PIPELINE: &str = r#"# the team's nightly job
name = "nightly"

[pool]
executors = 2
executor_cores = 2

[[notebook]]
id = "load"   # first
path = "nb/load.py"

[[notebook]]
id = "report"
path = "nb/report.py"
depends_on = ["load"]
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    state: Arc<AppState>,
}

fn fixture(token: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("nb")).unwrap();
    std::fs::write(root.join("nb/load.py"), "x = 1\n").unwrap();
    std::fs::write(root.join("nb/report.py"), "y = 2\n").unwrap();
    std::fs::write(root.join("nightly.toml"), PIPELINE).unwrap();
    let history = Arc::new(History::open(&root.join(".spool")).unwrap());
    // Never contacted by these tests: nothing here starts a run that reaches Spark.
    let client = LivyClient::new(ClientConfig::new("http://127.0.0.1:9")).unwrap();
    let runs = RunManager::new(
        history.clone(),
        root.clone(),
        SparkTarget {
            agent: Arc::new(Agent::new(client)),
            policy: Default::default(),
            session_name: None,
        },
    );
    let state = Arc::new(AppState {
        pipelines_dir: root.clone(),
        web_dir: None,
        token: token.map(str::to_string),
        history,
        runs,
    });
    Fixture {
        _dir: dir,
        root,
        state,
    }
}

async fn call(f: &Fixture, req: Request<Body>) -> (StatusCode, Value) {
    let res = app(f.state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("host", "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap()
}

fn put_text(uri: &str, text: &str, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::put(uri)
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json");
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    b.body(Body::from(json!({ "text": text }).to_string()))
        .unwrap()
}

#[tokio::test]
async fn lists_and_reads_pipelines_with_their_plan() {
    let f = fixture(None);
    let (status, list) = call(&f, get("/api/pipelines")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["file"], "nightly.toml");
    assert_eq!(list[0]["name"], "nightly");
    assert_eq!(list[0]["errors"], 0);
    let (status, one) = call(&f, get("/api/pipelines/nightly.toml")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["text"], PIPELINE);
    assert_eq!(one["plan"]["tasks"][1]["id"], "report");
    let (status, bundle) = call(&f, get("/api/pipelines/nightly.toml/bundle")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bundle["notebooks"], json!(["nb/load.py", "nb/report.py"]));
    let (status, err) = call(&f, get("/api/pipelines/nope.toml")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"], "not_found");
    let (status, _) = call(&f, get("/api/pipelines/..%2F..%2Fetc%2Fpasswd.toml")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_put_with_errors_is_refused_with_diagnostics_and_writes_nothing() {
    let f = fixture(None);
    let bad = PIPELINE.replace("depends_on = [\"load\"]", "depends_on = [\"lod\"]");
    let (status, body) = call(
        &f,
        put_text(
            "/api/pipelines/nightly.toml",
            &bad,
            Some("http://127.0.0.1:8080"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "invalid_pipeline");
    let d = &body["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["item"].as_str()),
        (Some(15), Some("report"))
    );
    assert!(d["message"]
        .as_str()
        .unwrap()
        .contains("did you mean `load`"));
    assert_eq!(
        std::fs::read_to_string(f.root.join("nightly.toml")).unwrap(),
        PIPELINE
    );
}

#[tokio::test]
async fn a_valid_put_is_written_as_sent_comments_included() {
    let f = fixture(None);
    let new = PIPELINE.replace("executors = 2", "executors = 3  # bigger pool");
    let (status, body) = call(
        &f,
        put_text(
            "/api/pipelines/nightly.toml",
            &new,
            Some("http://127.0.0.1:8080"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["plan"]["pool"]["executors"], 3);
    assert_eq!(
        std::fs::read_to_string(f.root.join("nightly.toml")).unwrap(),
        new
    );
}

#[tokio::test]
async fn mutations_from_another_origin_or_without_origin_are_forbidden() {
    let f = fixture(None);
    for origin in [Some("http://evil.example"), None] {
        let (status, body) = call(
            &f,
            put_text("/api/pipelines/nightly.toml", PIPELINE, origin),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin:?}");
        assert_eq!(body["error"], "forbidden");
    }
}

#[tokio::test]
async fn with_a_token_every_call_needs_it() {
    let f = fixture(Some("s3cret"));
    let (status, _) = call(&f, get("/api/pipelines")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let req = Request::get("/api/pipelines")
        .header("host", "spool.internal:8080")
        .header("authorization", "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    let (status, _) = call(&f, req).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let f = fixture(None);
    let huge = "#".repeat(spool_server::api::MAX_BODY_BYTES + 10);
    let (status, _) = call(
        &f,
        put_text(
            "/api/pipelines/nightly.toml",
            &huge,
            Some("http://127.0.0.1:8080"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn runs_of_unknown_ids_and_bad_parameters_are_reported() {
    let f = fixture(None);
    let (status, _) = call(&f, get("/api/runs/42")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let req = Request::post("/api/runs")
        .header("host", "127.0.0.1:8080")
        .header("origin", "http://127.0.0.1:8080")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({ "file": "nightly.toml", "params": { "nope": 1 } }).to_string(),
        ))
        .unwrap();
    let (status, body) = call(&f, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("no notebook declares it"));
    let (status, runs) = call(&f, get("/api/runs")).await;
    assert_eq!((status, runs), (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn simulates_on_the_server_with_options_and_refuses_bad_ones() {
    let f = fixture(None);
    let post = |body: Value| {
        Request::post("/api/pipelines/nightly.toml/simulate")
            .header("host", "127.0.0.1:8080")
            .header("origin", "http://127.0.0.1:8080")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, report) = call(&f, post(json!({ "executors": 1, "node_startup_secs": 0 }))).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    // Two 60 s notebooks in a chain (the default estimate) on a pool that starts at once.
    assert_eq!(report["makespan_secs"], 120.0);
    assert_eq!(report["tasks"].as_array().unwrap().len(), 2);
    let (status, err) = call(&f, post(json!({ "policy": "random" }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["message"].as_str().unwrap().contains("policy"));
    let (status, err) = call(&f, post(json!({ "executorz": 2 }))).await;
    assert_eq!(
        (status, &err["error"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request"))
    );
    assert!(
        err["message"].as_str().unwrap().contains("executorz"),
        "{err}"
    );
}

#[tokio::test]
async fn the_browser_signs_in_with_the_token_and_gets_a_cookie_the_api_accepts() {
    let f = fixture(Some("s3cret"));
    let sign_in = |token: &str| {
        Request::post("/api/session")
            .header("host", "spool.internal:8080")
            .header("origin", "http://spool.internal:8080")
            .header("content-type", "application/json")
            .body(Body::from(json!({ "token": token }).to_string()))
            .unwrap()
    };
    let res = app(f.state.clone())
        .oneshot(sign_in("wrong"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app(f.state.clone())
        .oneshot(sign_in("s3cret"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let req = Request::get("/api/runs")
        .header("host", "spool.internal:8080")
        .header("cookie", pair)
        .body(Body::empty())
        .unwrap();
    let (status, _) = call(&f, req).await;
    assert_eq!(status, StatusCode::OK);
}
