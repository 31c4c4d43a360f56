//! What the API tests share: a pipelines folder with one pipeline, its app state (runs never
//! reach Spark), and calls through `oneshot`.
#![allow(dead_code)] // each test file uses part of it

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use spool_server::agent::Agent;
use spool_server::api::{app, AppState, Token, WebApp};
use spool_server::history::History;
use spool_server::livy::{ClientConfig, LivyClient};
use spool_server::runs::spark::LivySpark;
use spool_server::runs::{RunManager, SparkTarget};
use std::sync::Arc;
use tower::ServiceExt;

pub const PIPELINE: &str = r#"# the team's nightly job
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

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub root: std::path::PathBuf,
    pub state: Arc<AppState>,
}

pub fn fixture(token: Option<&str>) -> Fixture {
    fixture_with_web(token, WebApp::Missing)
}

/// Serving `web` at `/`.
pub fn fixture_with_web(token: Option<&str>, web: WebApp) -> Fixture {
    fixture_of(token.as_slice(), web)
}

/// With these tokens (as `spool serve --token` takes them).
pub fn fixture_with_tokens(specs: &[&str]) -> Fixture {
    fixture_of(specs, WebApp::Missing)
}

fn fixture_of(tokens: &[&str], web: WebApp) -> Fixture {
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
            spark: Arc::new(LivySpark {
                agent: Agent::new(client),
            }),
            policy: Default::default(),
            session_name: None,
            secret_sources: Default::default(),
        },
    );
    let state = Arc::new(AppState {
        pipelines_dir: root.clone(),
        web,
        tokens: tokens
            .iter()
            .map(|t| Token::parse(t).expect("a token"))
            .collect(),
        history,
        runs,
        limits: Default::default(),
        schedules_changed: Default::default(),
    });
    Fixture {
        _dir: dir,
        root,
        state,
    }
}

pub async fn call(f: &Fixture, req: Request<Body>) -> (StatusCode, Value) {
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

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("host", "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap()
}

pub fn put_text(uri: &str, text: &str, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::put(uri)
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json");
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    b.body(Body::from(json!({ "text": text }).to_string()))
        .unwrap()
}
