//! Schedules and overlapping runs through the API (`oneshot`): each pipeline's schedule and
//! next fire times in the listing, pause and resume persisted in the history, the guard on the
//! mutation; a run over its pipeline's limit queued (visible, cancellable) or skipped.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{call, fixture, fixture_with_tokens, get, Fixture};
use serde_json::{json, Value};
use spool_server::history::History;

const SCHEDULED: &str = r#"name = "hourly"

[schedule]
cron = "15 * * * *"
timezone = "Asia/Kolkata"

[[notebook]]
id = "load"
path = "nb/load.py"
"#;

fn with_schedule() -> Fixture {
    let f = fixture(None);
    std::fs::write(f.root.join("hourly.toml"), SCHEDULED).unwrap();
    f
}

fn post_schedule(file: &str, body: Value, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::post(format!("/api/pipelines/{file}/schedule"))
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json");
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

const SAME_ORIGIN: Option<&str> = Some("http://127.0.0.1:8080");

/// The listing's entry of `file`.
async fn entry(f: &Fixture, file: &str) -> Value {
    let (status, list) = call(f, get("/api/pipelines")).await;
    assert_eq!(status, StatusCode::OK);
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == file)
        .cloned()
        .unwrap_or_else(|| panic!("{file} is listed: {list}"))
}

#[tokio::test]
async fn the_listing_shows_each_schedule_with_its_next_fire_times_in_its_zone_and_utc() {
    let f = with_schedule();
    let hourly = entry(&f, "hourly.toml").await;
    let schedule = &hourly["schedule"];
    assert_eq!(schedule["cron"], "15 * * * *");
    assert_eq!(schedule["timezone"], "Asia/Kolkata");
    assert_eq!(schedule["catch_up"], "none");
    assert_eq!(schedule["paused"], false);
    let next = schedule["next"].as_array().unwrap();
    assert_eq!(next.len(), 3);
    for t in next {
        // Kolkata is UTC+05:30: local :15 is :45 in UTC, an hour apart each.
        assert!(t["local"].as_str().unwrap().ends_with(":15"), "{t}");
        assert!(t["utc"].as_str().unwrap().ends_with(":45"), "{t}");
    }
    let gap = next[1]["ms"].as_i64().unwrap() - next[0]["ms"].as_i64().unwrap();
    assert_eq!(gap, 3_600_000);
    let nightly = entry(&f, "nightly.toml").await;
    assert!(nightly.get("schedule").is_none(), "{nightly}");
}

#[tokio::test]
async fn pausing_a_schedule_is_kept_in_the_history_and_resuming_shows_its_fire_times_again() {
    let f = with_schedule();
    let (status, paused) = call(
        &f,
        post_schedule("hourly.toml", json!({ "paused": true }), SAME_ORIGIN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["next"], json!([]), "a paused schedule fires never");
    assert_eq!(entry(&f, "hourly.toml").await["schedule"]["paused"], true);
    // Another process on the same data dir (a restart) reads it paused.
    let reopened = History::open(&f.root.join(".spool")).unwrap();
    assert!(reopened.schedule_state("hourly.toml").unwrap().paused);

    let (status, resumed) = call(
        &f,
        post_schedule("hourly.toml", json!({ "paused": false }), SAME_ORIGIN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resumed["paused"], false);
    assert_eq!(resumed["next"].as_array().unwrap().len(), 10);
    let (status, read) = call(&f, get("/api/pipelines/hourly.toml/schedule")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["paused"], false);
    assert!(!reopened.schedule_state("hourly.toml").unwrap().paused);
}

/// `POST /api/pipelines/{file}/schedule` as the holder of token `secret`.
fn post_schedule_as(file: &str, paused: bool, secret: &str) -> Request<Body> {
    Request::post(format!("/api/pipelines/{file}/schedule"))
        .header("host", "spool.internal:8080")
        .header("authorization", format!("Bearer {secret}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({ "paused": paused }).to_string()))
        .unwrap()
}

/// `hourly.toml`'s schedule in the listing, read with token `secret`.
async fn listed_schedule(f: &Fixture, secret: &str) -> Value {
    let req = Request::get("/api/pipelines")
        .header("host", "spool.internal:8080")
        .header("authorization", format!("Bearer {secret}"))
        .body(Body::empty())
        .unwrap();
    let (status, list) = call(f, req).await;
    assert_eq!(status, StatusCode::OK);
    let hourly = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == "hourly.toml");
    hourly.expect("listed")["schedule"].clone()
}

#[tokio::test]
async fn who_paused_or_resumed_a_schedule_is_kept_by_token_name_and_shown_never_the_secret() {
    let (ops, ci, viewer) = ("0ps-s3cret", "c1-s3cret", "v1ewer-s3cret");
    let f = fixture_with_tokens(&[
        &format!("ops={ops}"),
        &format!("ci={ci}"),
        &format!("viewer={viewer}:read-only"),
    ]);
    std::fs::write(f.root.join("hourly.toml"), SCHEDULED).unwrap();
    assert!(
        listed_schedule(&f, viewer).await.get("changed").is_none(),
        "never paused yet"
    );

    let before = spool_server::runs::now_ms();
    let (status, paused) = call(&f, post_schedule_as("hourly.toml", true, ops)).await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["changed"]["by"], "ops");
    let at = paused["changed"]["at_ms"].as_i64().unwrap();
    assert!(
        at >= before && at <= spool_server::runs::now_ms(),
        "{paused}"
    );
    // Shown wherever the pause is: the listing (the browser's schedule bar) and the schedule.
    let shown = listed_schedule(&f, viewer).await;
    assert_eq!(
        (&shown["paused"], &shown["changed"]["by"]),
        (&json!(true), &json!("ops"))
    );
    // A read-only token cannot resume it, and does not become who changed it.
    let (status, _) = call(&f, post_schedule_as("hourly.toml", false, viewer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(listed_schedule(&f, viewer).await["changed"]["by"], "ops");

    let (status, resumed) = call(&f, post_schedule_as("hourly.toml", false, ci)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&resumed["paused"], &resumed["changed"]["by"]),
        (&json!(false), &json!("ci"))
    );
    // Kept across a restart: another process on the same history reads it.
    let reopened = History::open(&f.root.join(".spool")).unwrap();
    let kept = reopened.schedule_state("hourly.toml").unwrap();
    assert_eq!(kept.changed.and_then(|c| c.by).as_deref(), Some("ci"));
    drop(reopened);
    // Names only: no secret in the answers or anywhere in the history's files.
    for answer in [&paused, &resumed] {
        let text = answer.to_string();
        assert!(!text.contains(ops) && !text.contains(ci), "{text}");
    }
    for entry in std::fs::read_dir(f.root.join(".spool")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(ops) && !text.contains(ci));
    }
}

#[tokio::test]
async fn a_schedule_mutation_is_guarded_and_checked() {
    let f = with_schedule();
    for origin in [Some("http://evil.example"), None] {
        let (status, _) = call(
            &f,
            post_schedule("hourly.toml", json!({ "paused": true }), origin),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin:?}");
    }
    let reopened = History::open(&f.root.join(".spool")).unwrap();
    assert!(!reopened.schedule_state("hourly.toml").unwrap().paused);
    let cases = [
        (
            "nightly.toml",
            json!({ "paused": true }),
            StatusCode::NOT_FOUND,
        ),
        (
            "nope.toml",
            json!({ "paused": true }),
            StatusCode::NOT_FOUND,
        ),
        (
            "hourly.toml",
            json!({ "paused": "yes" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            "hourly.toml",
            json!({ "pause": true }),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (file, body, want) in cases {
        let (status, answer) = call(&f, post_schedule(file, body.clone(), SAME_ORIGIN)).await;
        assert_eq!(status, want, "{file} {body}: {answer}");
    }
}

fn post(uri: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header("host", "127.0.0.1:8080")
        .header("origin", "http://127.0.0.1:8080")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Starts a run of `file` through the API; its id.
async fn start(f: &Fixture, file: &str) -> i64 {
    let (status, started) = call(f, post("/api/runs", json!({ "file": file }))).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    started["id"].as_i64().unwrap()
}

/// Run `id` as the API answers it: the record and the types of its events.
async fn run(f: &Fixture, id: i64) -> (Value, Vec<Value>) {
    let (status, body) = call(f, get(&format!("/api/runs/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let events = body["events"].as_array().unwrap().clone();
    (body["run"].clone(), events)
}

fn of_type<'e>(events: &'e [Value], kind: &str) -> Option<&'e Value> {
    events.iter().find(|e| e["event"]["type"] == kind)
}

/// The nightly pipeline with an overlap rule. Its runs reach for a Livy that is not there
/// (127.0.0.1:9): the first stays in progress while its session request is retried.
fn overlapping(on_overlap: &str) -> Fixture {
    let f = fixture(None);
    let text = common::PIPELINE.replace(
        "name = \"nightly\"",
        &format!("name = \"nightly\"\non_overlap = \"{on_overlap}\""),
    );
    std::fs::write(f.root.join("nightly.toml"), text).unwrap();
    f
}

#[tokio::test]
async fn a_run_over_the_pipelines_limit_is_queued_visibly_and_cancellable() {
    let f = overlapping("queue");
    let first = start(&f, "nightly.toml").await;
    let second = start(&f, "nightly.toml").await;
    let (record, events) = run(&f, second).await;
    let queued = of_type(&events, "run_queued").expect("the decision is recorded");
    assert!(
        queued["event"]["reason"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_runs = 1"),
        "{queued}"
    );
    assert_eq!(
        record["status"], "queued",
        "the first run is still reaching for Livy"
    );
    let (status, listed) = call(&f, get("/api/runs?status=queued")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed[0]["id"], second, "{listed}");
    let (status, _) = call(&f, post(&format!("/api/runs/{second}/cancel"), json!({}))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (record, events) = run(&f, second).await;
    assert_eq!(record["status"], "cancelled");
    assert!(
        of_type(&events, "run_admitted").is_none(),
        "it never started"
    );
    assert!(of_type(&events, "task_started").is_none());
    f.state.runs.cancel(first, None).await;
}

#[tokio::test]
async fn a_run_over_the_pipelines_limit_with_skip_is_recorded_cancelled_with_why() {
    let f = overlapping("skip");
    let first = start(&f, "nightly.toml").await;
    let second = start(&f, "nightly.toml").await;
    let (record, events) = run(&f, second).await;
    assert_eq!(record["status"], "cancelled");
    let why = of_type(&events, "cancel_requested").expect("why");
    assert!(
        why["event"]["reason"]
            .as_str()
            .unwrap()
            .contains("on_overlap = skip"),
        "{why}"
    );
    assert!(of_type(&events, "task_started").is_none());
    f.state.runs.cancel(first, None).await;
}

#[tokio::test]
async fn a_read_only_token_cannot_pause_a_schedule_and_a_full_one_can() {
    let f = common::fixture_with_tokens(&["ops=0ps-s3cret", "viewer=v1ewer-s3cret:read-only"]);
    std::fs::write(f.root.join("hourly.toml"), SCHEDULED).unwrap();
    let pause = |token: &str| {
        Request::post("/api/pipelines/hourly.toml/schedule")
            .header("host", "127.0.0.1:8080")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(json!({ "paused": true }).to_string()))
            .unwrap()
    };
    let (status, err) = call(&f, pause("v1ewer-s3cret")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    let history = History::open(&f.root.join(".spool")).unwrap();
    assert!(!history.schedule_state("hourly.toml").unwrap().paused);
    let (status, answer) = call(&f, pause("0ps-s3cret")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(history.schedule_state("hourly.toml").unwrap().paused);
}
