//! The Livy client against a scripted HTTP server on the loopback interface: retries only where
//! harmless, session creation reconciled by name instead of a second POST, credentials refreshed
//! once on a 401, and errors that say what failed and what Livy answered.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use spool_server::livy::wire::{CreateSession, SessionState, StatementState};
use spool_server::livy::{
    Auth, ClientConfig, LivyClient, RetryPolicy, SessionId, StatementId, TokenSource,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Script {
    gets: AtomicUsize,
    posts: AtomicUsize,
    /// Answers for successive `GET /sessions/1`, then 200.
    get_failures: Mutex<Vec<u16>>,
    /// Sessions `GET /sessions` lists.
    listed: Mutex<Vec<serde_json::Value>>,
    /// `POST /sessions` records the session, then answers only after this long.
    post_delay: Mutex<Duration>,
    authorizations: Mutex<Vec<String>>,
    /// `GET /sessions/1/statements/7` answers `running` until this instant, then `available`.
    statement_done_at: Mutex<Option<tokio::time::Instant>>,
    /// The query strings of those reads.
    statement_queries: Mutex<Vec<String>>,
}

fn session_json(id: u64, name: &str, state: &str) -> serde_json::Value {
    json!({"id": id, "name": name, "state": state, "kind": "pyspark", "proxyUser": null,
           "appId": null, "appInfo": {}, "log": []})
}

async fn serve(script: Arc<Script>) -> String {
    async fn get_session(State(s): State<Arc<Script>>, headers: HeaderMap) -> impl IntoResponse {
        s.gets.fetch_add(1, Ordering::SeqCst);
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        s.authorizations.lock().expect("lock").push(auth);
        let next = {
            let mut failures = s.get_failures.lock().expect("lock");
            (!failures.is_empty()).then(|| failures.remove(0))
        };
        match next {
            Some(code) => (
                StatusCode::from_u16(code).expect("status"),
                Json(json!({"msg": format!("scripted {code}")})),
            ),
            None => (StatusCode::OK, Json(session_json(1, "one", "idle"))),
        }
    }
    async fn list(State(s): State<Arc<Script>>) -> Json<serde_json::Value> {
        let sessions = s.listed.lock().expect("lock").clone();
        Json(json!({"from": 0, "total": sessions.len(), "sessions": sessions}))
    }
    async fn create(
        State(s): State<Arc<Script>>,
        Json(body): Json<serde_json::Value>,
    ) -> impl IntoResponse {
        let n = s.posts.fetch_add(1, Ordering::SeqCst) as u64;
        let name = body["name"].as_str().unwrap_or("").to_string();
        let created = session_json(10 + n, &name, "starting");
        s.listed.lock().expect("lock").push(created.clone());
        let delay = *s.post_delay.lock().expect("lock");
        tokio::time::sleep(delay).await;
        (StatusCode::CREATED, Json(created))
    }
    async fn statement(
        State(s): State<Arc<Script>>,
        uri: axum::http::Uri,
    ) -> Json<serde_json::Value> {
        let query = uri.query().unwrap_or("").to_string();
        s.statement_queries.lock().expect("lock").push(query);
        let done_at = s.statement_done_at.lock().expect("lock").expect("scripted");
        let state = if tokio::time::Instant::now() >= done_at {
            "available"
        } else {
            "running"
        };
        Json(json!({"id": 7, "code": "1", "state": state, "output": null}))
    }
    let app = Router::new()
        .route("/sessions/1", get(get_session))
        .route("/sessions/1/statements/7", get(statement))
        .route("/sessions", get(list).post(create))
        .with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn client(url: &str, auth: Auth) -> LivyClient {
    let mut config = ClientConfig::new(url);
    config.auth = auth;
    config.request_timeout = Duration::from_millis(500);
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    };
    LivyClient::new(config).expect("valid config")
}

#[tokio::test]
async fn reads_are_retried_through_busy_answers_only() {
    let script = Arc::new(Script::default());
    let url = serve(script.clone()).await;
    let livy = client(&url, Auth::None);

    *script.get_failures.lock().expect("lock") = vec![503, 502, 429];
    let session = livy
        .get_session(SessionId(1))
        .await
        .expect("fourth try works");
    assert_eq!(session.state, SessionState::Idle);
    assert_eq!(script.gets.load(Ordering::SeqCst), 4);

    *script.get_failures.lock().expect("lock") = vec![500, 500];
    let error = livy
        .get_session(SessionId(1))
        .await
        .expect_err("500 is final");
    assert_eq!(
        script.gets.load(Ordering::SeqCst),
        5,
        "no retry after a 500"
    );
    assert_eq!(
        error.to_string(),
        format!("GET {url}/sessions/1: Livy answered HTTP 500: {{\"msg\":\"scripted 500\"}}")
    );
}

#[tokio::test]
async fn a_session_post_is_never_repeated_blindly() {
    let script = Arc::new(Script::default());
    let url = serve(script.clone()).await;
    let livy = client(&url, Auth::None);
    let request = CreateSession {
        name: Some("spool-run-7".into()),
        ..CreateSession::default()
    };

    // The POST times out after Livy created the session: it is found by name, not re-posted.
    *script.post_delay.lock().expect("lock") = Duration::from_secs(5);
    let found = livy.create_session(&request).await.expect("reconciled");
    assert_eq!(found.name.as_deref(), Some("spool-run-7"));
    assert_eq!(script.posts.load(Ordering::SeqCst), 1);

    // Asking again adopts the live session of that name.
    let again = livy.create_session(&request).await.expect("adopted");
    assert_eq!(again.id, found.id);
    assert_eq!(script.posts.load(Ordering::SeqCst), 1);

    // A dead session of that name is not adopted.
    script.listed.lock().expect("lock")[0]["state"] = json!("dead");
    *script.post_delay.lock().expect("lock") = Duration::ZERO;
    let fresh = livy.create_session(&request).await.expect("created");
    assert_ne!(fresh.id, found.id);
    assert_eq!(script.posts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_rejected_command_token_is_fetched_again_once() {
    let script = Arc::new(Script::default());
    let url = serve(script.clone()).await;
    let command = "echo tok-$(date +%s%N)".to_string();
    let livy = client(&url, Auth::Bearer(TokenSource::Command(command)));

    *script.get_failures.lock().expect("lock") = vec![401];
    livy.get_session(SessionId(1))
        .await
        .expect("second token works");
    let seen = script.authorizations.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|a| a.starts_with("Bearer tok-")));
    assert_ne!(seen[0], seen[1], "a new token after the 401");

    *script.get_failures.lock().expect("lock") = vec![401, 401];
    let error = livy
        .get_session(SessionId(1))
        .await
        .expect_err("still refused");
    assert!(error.to_string().contains("HTTP 401"), "{error}");
}

#[tokio::test]
async fn unreachable_livy_is_reported_with_the_request() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let livy = client(&format!("http://127.0.0.1:{port}"), Auth::None);
    let error = livy.list_sessions().await.expect_err("nothing listens");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("GET http://127.0.0.1:{port}/sessions?from=0&size=100: could not get an answer from Livy")),
        "{message}"
    );
}

/// `statement_wait` is for Spool's own endpoint; a Livy that ignores `wait_ms` answers at once,
/// and the client then reads at its check interval, never in a tight loop.
#[tokio::test]
async fn a_statement_wait_against_a_livy_that_ignores_it_reads_at_the_check_interval() {
    let script = Arc::new(Script::default());
    let url = serve(script.clone()).await;
    let mut config = ClientConfig::new(&url);
    config.statement_wait = Some(Duration::from_secs(1));
    let livy = LivyClient::new(config).expect("valid config");
    *script.statement_done_at.lock().expect("lock") =
        Some(tokio::time::Instant::now() + Duration::from_millis(400));
    let done = livy
        .wait_statement_every(
            SessionId(1),
            StatementId(7),
            Duration::from_secs(30),
            (Duration::from_millis(20), Duration::from_millis(40)),
        )
        .await
        .expect("finished");
    assert_eq!(done.state, StatementState::Available);
    let queries = script.statement_queries.lock().expect("lock").clone();
    // 400 ms at 20-40 ms between reads: about a dozen reads, not thousands.
    assert!((5..=25).contains(&queries.len()), "{} reads", queries.len());
    assert!(
        queries.iter().all(|q| q.starts_with("wait_ms=")),
        "{queries:?}"
    );
}
