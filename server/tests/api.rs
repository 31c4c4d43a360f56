//! The HTTP API through `app(state)` with `oneshot`: pipelines, validation, guards, limits.
//! (Runs against real Spark are covered by the end-to-end tests.)

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{
    call, fixture, fixture_with_tokens, fixture_with_web, get, put_text, Fixture, PIPELINE,
};
use serde_json::{json, Value};
use spool_server::api::{app, WebApp};
use tower::ServiceExt;

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
async fn the_bundle_carries_the_parse_errors_of_the_notebooks_the_pipeline_runs() {
    let f = fixture(None);
    // A cell in a language Spool cannot run: the pipeline file itself is fine.
    std::fs::write(f.root.join("nb/report.py"), "# %%\n%%scala\nval y = 2\n").unwrap();
    std::fs::write(f.root.join("nb/unused.py"), "# %%\n%%scala\n").unwrap();
    let (status, bundle) = call(&f, get("/api/pipelines/nightly.toml/bundle")).await;
    assert_eq!(status, StatusCode::OK);
    let found = bundle["notebook_diagnostics"]
        .as_object()
        .expect("notebook diagnostics");
    // Only the notebooks the pipeline runs, only those with findings.
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["nb/report.py"],
        "{bundle}"
    );
    let d = &found["nb/report.py"][0];
    assert_eq!(
        (
            d["file"].as_str(),
            d["line"].as_u64(),
            d["severity"].as_str()
        ),
        (Some("nb/report.py"), Some(2), Some("error")),
        "{d}"
    );
    assert!(d["message"].as_str().unwrap().contains("%%scala"), "{d}");
    // The same error `GET /api/pipelines/{file}` (and `spool validate`) reports.
    let (_, one) = call(&f, get("/api/pipelines/nightly.toml")).await;
    assert_eq!(one["diagnostics"][0], *d);
    assert!(one["plan"].is_null());
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
async fn a_draft_with_errors_is_kept_beside_the_file_until_a_valid_save() {
    let f = fixture(None);
    let bad = PIPELINE.replace("depends_on = [\"load\"]", "depends_on = [\"lod\"]");
    let origin = Some("http://127.0.0.1:8080");
    let draft_uri = "/api/pipelines/nightly.toml/draft";
    let (status, _) = call(&f, get(draft_uri)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no draft yet");
    // Another origin's page cannot keep one.
    let (status, _) = call(&f, put_text(draft_uri, &bad, Some("http://evil.example"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, kept) = call(&f, put_text(draft_uri, &bad, origin)).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    let (status, read) = call(&f, get(draft_uri)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["text"], bad);
    assert_eq!(read["saved_ms"], kept["saved_ms"]);
    // What runs and schedules read is untouched.
    assert_eq!(
        std::fs::read_to_string(f.root.join("nightly.toml")).unwrap(),
        PIPELINE
    );
    let (_, one) = call(&f, get("/api/pipelines/nightly.toml")).await;
    assert_eq!(one["text"], PIPELINE);
    // A draft for a file outside the folder is refused like the file.
    let (status, _) = call(
        &f,
        put_text("/api/pipelines/..%2Fx.toml/draft", &bad, origin),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Saving the file (fixed) discards its draft.
    let fixed = PIPELINE.replace("executors = 2", "executors = 3");
    let (status, _) = call(&f, put_text("/api/pipelines/nightly.toml", &fixed, origin)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&f, get(draft_uri)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the save superseded the draft"
    );
    // And one can be discarded.
    call(&f, put_text(draft_uri, &bad, origin)).await;
    let discard = axum::http::Request::delete(draft_uri)
        .header("host", "127.0.0.1:8080")
        .header("origin", "http://127.0.0.1:8080")
        .body(Body::empty())
        .unwrap();
    let (status, _) = call(&f, discard).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&f, get(draft_uri)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
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
    let (status, err) = call(&f, post(json!({ "executors": 0, "failure_rate": 2 }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("`executors`") && message.contains("`failure_rate`"),
        "every field out of range is named: {message}"
    );
    let (status, err) = call(&f, post(json!({ "assume": { "lod.rows": 0 } }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("`lod.rows` names no notebook"));
    let (status, err) = call(&f, post(json!({ "durations_from": 41 }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert!(err["message"].as_str().unwrap().contains("no run 41"));
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

/// A finished run of the fixture's pipeline in its history: `load` then `report`, taking the
/// given seconds, after a session that took 5 s to report 3 slots.
fn finished_run(f: &Fixture, load_secs: i64, report_secs: i64) -> i64 {
    let event =
        |v: Value| -> spool_core::runlog::RunEvent { serde_json::from_value(v).expect("an event") };
    let h = &f.state.history;
    let started = event(json!({"type": "run_started", "pipeline": "nightly",
        "file": "nightly.toml", "params": {}, "resumed_from": null, "plan": {}}));
    let id = h.create_run(&started, 0).unwrap();
    let mut at = 5_000;
    let log = |v: Value, at: i64| h.append(id, &event(v), at).unwrap();
    log(
        json!({"type": "session_changed", "session": "0", "state": "idle", "capacity": 3}),
        at,
    );
    for (task, secs) in [("load", load_secs), ("report", report_secs)] {
        log(
            json!({"type": "task_started", "task": task, "attempt": 1}),
            at,
        );
        at += secs * 1000;
        log(
            json!({"type": "task_finished", "task": task, "attempt": 1, "outcome": "succeeded"}),
            at,
        );
    }
    log(json!({"type": "run_finished", "status": "succeeded"}), at);
    id
}

#[tokio::test]
async fn the_calibration_of_a_pipeline_is_what_its_calibrated_dry_run_used() {
    let f = fixture(None);
    let calibration = |query: &str| {
        call(
            &f,
            get(&format!("/api/pipelines/nightly.toml/calibration?{query}")),
        )
    };
    let (status, err) = calibration("durations_from=p90").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("no successful run"));
    for (load, report) in [(10, 20), (30, 40), (20, 30)] {
        finished_run(&f, load, report);
    }
    let (status, c) = calibration("durations_from=p90&history_runs=5").await;
    assert_eq!(status, StatusCode::OK, "{c}");
    // Each notebook's 90th percentile over the three runs, the newest run's measurements.
    assert_eq!(c["durations"], json!({"load": 28.0, "report": 38.0}));
    assert_eq!(
        c["stats"][0],
        json!({"id": "load", "runs": 3, "p50_secs": 20.0, "p90_secs": 28.0})
    );
    assert_eq!(
        (&c["runs"], &c["live_capacity_slots"]),
        (&json!([3, 2, 1]), &json!(3))
    );
    assert_eq!(c["real_makespan_secs"], 50.0);
    // The very calibration the server's calibrated dry run reports.
    let (status, report) = call(
        &f,
        Request::post("/api/pipelines/nightly.toml/simulate")
            .header("host", "127.0.0.1:8080")
            .header("origin", "http://127.0.0.1:8080")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"durations_from": "p90", "history_runs": 5}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["calibration"], c);
    let (status, one) = calibration("durations_from=2").await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["durations"], json!({"load": 30.0, "report": 40.0}));
    for bad in [
        "durations_from=p75",
        "durations_from=p50&history_runs=0",
        "durations_from=p50&runs=2",
        "",
    ] {
        let (status, err) = calibration(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {err}");
        assert_eq!(err["error"], "bad_request", "{bad}");
    }
}

#[tokio::test]
async fn the_grid_shows_each_notebook_in_the_last_runs_oldest_first() {
    let f = fixture(None);
    let ids: Vec<i64> = [(10, 20), (30, 40), (20, 30)]
        .into_iter()
        .map(|(load, report)| finished_run(&f, load, report))
        .collect();
    let (status, g) = call(&f, get("/api/pipelines/nightly.toml/grid?runs=2")).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    let columns: Vec<i64> = g["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(columns, ids[1..], "the two newest, oldest first");
    assert_eq!(g["rows"][0]["task"], "load");
    assert_eq!(g["rows"][1]["task"], "report");
    assert_eq!(
        g["rows"][1]["cells"],
        json!([
            {"state": "succeeded", "attempts": 1, "secs": 40.0},
            {"state": "succeeded", "attempts": 1, "secs": 30.0}
        ])
    );
    let (status, all) = call(&f, get("/api/pipelines/nightly.toml/grid")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["runs"].as_array().map(Vec::len), Some(3));
    for bad in ["runs=0", "runs=51", "runs=two"] {
        let (status, err) = call(&f, get(&format!("/api/pipelines/nightly.toml/grid?{bad}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {err}");
    }
    let (status, _) = call(&f, get("/api/pipelines/..%2Fx.toml/grid")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
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

#[tokio::test]
async fn a_save_based_on_a_stale_read_is_refused_with_412_and_writes_nothing() {
    let f = fixture(None);
    let res = app(f.state.clone())
        .oneshot(get("/api/pipelines/nightly.toml"))
        .await
        .unwrap();
    let read_tag = res.headers()["etag"].to_str().unwrap().to_string();
    let (_, bundle) = call(&f, get("/api/pipelines/nightly.toml/bundle")).await;
    assert_eq!(bundle["etags"]["nightly.toml"], read_tag.as_str());
    let save = |text: &str, if_match: &str| {
        let mut req = put_text(
            "/api/pipelines/nightly.toml",
            text,
            Some("http://127.0.0.1:8080"),
        );
        req.headers_mut()
            .insert("if-match", if_match.parse().unwrap());
        req
    };
    // The first editor saves on top of what it read: accepted, with the new tag.
    let mine = PIPELINE.replace("executors = 2", "executors = 3");
    let res = app(f.state.clone())
        .oneshot(save(&mine, &read_tag))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let new_tag = res.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_tag, read_tag);
    // The second editor read the same version: its save would lose the first one's edit.
    let theirs = PIPELINE.replace("executors = 2", "executors = 5");
    let (status, body) = call(&f, save(&theirs, &read_tag)).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(body["error"], "precondition_failed");
    assert_eq!(
        std::fs::read_to_string(f.root.join("nightly.toml")).unwrap(),
        mine
    );
    // After reloading (or choosing to overwrite) it can save.
    let (status, _) = call(&f, save(&theirs, &new_tag)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&f, save(&mine, "*")).await;
    assert_eq!(status, StatusCode::OK);
    // `If-Match` on a file that does not exist fails too; without it, a save creates it.
    let mut req = put_text(
        "/api/pipelines/other.toml",
        PIPELINE,
        Some("http://127.0.0.1:8080"),
    );
    req.headers_mut().insert("if-match", "*".parse().unwrap());
    let (status, _) = call(&f, req).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert!(!f.root.join("other.toml").exists());
}

/// Nine files, each including the next ten times (10^8 tasks if expanded), and a chain of
/// 1,500 files: the listing counts them without expanding, a read reports the limit.
#[tokio::test]
async fn hostile_include_graphs_are_listed_and_read_within_the_limits() {
    let f = fixture(None);
    for level in 0..9 {
        let text = if level == 8 {
            "[[notebook]]\nid = \"n\"\npath = \"nb/load.py\"\n".to_string()
        } else {
            (0..10)
                .map(|c| {
                    format!(
                        "[[pipeline]]\nid = \"p{c}\"\npath = \"l{}.toml\"\n",
                        level + 1
                    )
                })
                .collect()
        };
        std::fs::write(f.root.join(format!("l{level}.toml")), text).unwrap();
    }
    std::fs::create_dir_all(f.root.join("chain")).unwrap();
    for i in 0..1500 {
        let text = format!("[[pipeline]]\nid = \"p\"\npath = \"c{}.toml\"\n", i + 1);
        std::fs::write(f.root.join(format!("chain/c{i}.toml")), text).unwrap();
    }
    let (status, list) = call(&f, get("/api/pipelines")).await;
    assert_eq!(status, StatusCode::OK);
    let entry = |file: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|e| e["file"] == file)
            .cloned()
            .unwrap_or_else(|| panic!("{file} is listed"))
    };
    assert_eq!(entry("l0.toml")["errors"], 1);
    assert_eq!(entry("l5.toml")["errors"], 0);
    assert_eq!(entry("l5.toml")["notebooks"], 1000);
    assert_eq!(entry("chain/c0.toml")["errors"], 1);
    assert_eq!(entry("nightly.toml")["notebooks"], 2);

    let (status, body) = call(&f, get("/api/pipelines/chain%2Fc0.toml")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["plan"], Value::Null);
    let message = body["diagnostics"][0]["message"].as_str().unwrap();
    assert!(message.contains("nested more than 32 deep"), "{message}");
}

/// The raw answer to a GET: status, one header's value, body.
async fn fetch(f: &Fixture, uri: &str, header: &str) -> (StatusCode, String, String) {
    let res = app(f.state.clone()).oneshot(get(uri)).await.unwrap();
    let status = res.status();
    let value = res
        .headers()
        .get(header)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, value, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn the_web_app_is_served_with_client_routes_and_cached_hashed_files() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "<!doctype html>app").unwrap();
    std::fs::write(web.path().join("spool-web-0123456789abcdef.js"), "js").unwrap();
    let f = fixture_with_web(None, WebApp::Folder(web.path().canonicalize().unwrap()));
    for page in ["/", "/runs/7", "/../../etc/passwd", "/nope.js"] {
        let (status, cache, body) = fetch(&f, page, "cache-control").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "<!doctype html>app"),
            "{page}"
        );
        assert_eq!(
            cache, "no-cache",
            "{page}: index.html names the current build"
        );
    }
    let (status, cache, body) = fetch(&f, "/spool-web-0123456789abcdef.js", "cache-control").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "js"));
    assert!(cache.contains("immutable"), "{cache}");
    let (_, kind, _) = fetch(&f, "/spool-web-0123456789abcdef.js", "content-type").await;
    assert_eq!(kind, "text/javascript");
}

#[tokio::test]
async fn without_a_web_app_the_page_says_how_to_build_one_and_the_api_works() {
    let f = fixture(None);
    let (status, _, body) = fetch(&f, "/", "content-type").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("scripts/build-web.sh"), "{body}");
    let (status, _) = call(&f, get("/api/pipelines")).await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn this_build_embeds_the_web_app_when_dist_was_built() {
    // server/build.rs recompiles the embedding whenever dist/ changes.
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dist/index.html")
        .is_file();
    assert_eq!(matches!(WebApp::embedded(), WebApp::Embedded), built);
}

/// A run of `file` (pipeline `name`) started at `at_ms` and ended with `status` (`None`:
/// still running), with one task settled `succeeded`.
fn run_of(f: &Fixture, file: &str, name: &str, at_ms: i64, status: Option<&str>) -> i64 {
    let event =
        |v: Value| -> spool_core::runlog::RunEvent { serde_json::from_value(v).expect("an event") };
    let h = &f.state.history;
    let started = event(json!({"type": "run_started", "pipeline": name,
        "file": file, "params": {}, "resumed_from": null, "plan": {}}));
    let id = h.create_run(&started, at_ms).unwrap();
    let settled = json!({"type": "task_settled", "task": "load", "state": "succeeded",
        "reason": {"kind": "attempt"}});
    h.append(id, &event(settled), at_ms + 1).unwrap();
    if let Some(status) = status {
        h.append(
            id,
            &event(json!({"type": "run_finished", "status": status})),
            at_ms + 2,
        )
        .unwrap();
    }
    id
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|r| r["id"].as_i64().expect("an id"))
        .collect()
}

#[tokio::test]
async fn the_runs_list_pages_newest_first_and_filters_by_pipeline_status_and_time() {
    let f = fixture(None);
    let day = 86_400_000;
    // Day 0..10: nightly.toml runs alternate succeeded/failed; weekly.toml runs on days 3, 7;
    // the newest nightly run is still running.
    let mut nightly = Vec::new();
    let mut weekly = Vec::new();
    for d in 0..10 {
        let status = match d {
            9 => None,
            _ if d % 2 == 0 => Some("succeeded"),
            _ => Some("failed"),
        };
        nightly.push(run_of(&f, "nightly.toml", "nightly", d * day, status));
        if d == 3 || d == 7 {
            weekly.push(run_of(
                &f,
                "weekly.toml",
                "weekly",
                d * day + 5,
                Some("failed"),
            ));
        }
    }
    let all: Vec<i64> = {
        let mut v: Vec<i64> = nightly.iter().chain(&weekly).copied().collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    };

    let (status, list) = call(&f, get("/api/runs")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ids(&list), all, "every run, newest first");
    let newest = &list[0];
    assert_eq!(
        (
            &newest["file"],
            &newest["status"],
            &newest["task_counts"]["succeeded"]
        ),
        (&json!("nightly.toml"), &json!("running"), &json!(1))
    );
    assert!(newest.get("tasks").is_none(), "a summary, not a folded run");

    // Pages of 5: the next page starts before the last id of this one, and they add up.
    let mut paged: Vec<i64> = Vec::new();
    let mut uri = "/api/runs?limit=5".to_string();
    loop {
        let (status, page) = call(&f, get(&uri)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page = ids(&page);
        assert!(page.len() <= 5);
        paged.extend(&page);
        match page.last() {
            Some(last) if page.len() == 5 => uri = format!("/api/runs?limit=5&before={last}"),
            _ => break,
        }
    }
    assert_eq!(paged, all);

    let (_, list) = call(&f, get("/api/runs?pipeline=weekly.toml")).await;
    assert_eq!(ids(&list), weekly.iter().rev().copied().collect::<Vec<_>>());
    let (_, by_name) = call(&f, get("/api/runs?pipeline=weekly")).await;
    assert_eq!(by_name, list, "a pipeline's name or its file");
    let (_, list) = call(&f, get("/api/runs?pipeline=nightly.toml&status=failed")).await;
    assert_eq!(ids(&list), [nightly[7], nightly[5], nightly[3], nightly[1]]);
    let (_, list) = call(&f, get("/api/runs?status=running,succeeded&limit=2")).await;
    assert_eq!(ids(&list), [nightly[9], nightly[8]]);
    // Started on day 3 to day 5 (since inclusive, until exclusive), in dates and in ms.
    let (_, list) = call(&f, get("/api/runs?since=1970-01-04&until=1970-01-06")).await;
    assert_eq!(ids(&list), [nightly[4], weekly[0], nightly[3]]);
    let (_, in_ms) = call(
        &f,
        get(&format!("/api/runs?since={}&until={}", 3 * day, 5 * day)),
    )
    .await;
    assert_eq!(in_ms, list);

    // Limits and bad options are 400s naming what is wrong.
    for (query, named) in [
        ("limit=501", "`limit`"),
        ("limit=0", "`limit`"),
        ("status=done", "`done`"),
        ("since=yesterday", "`since`"),
        ("page=2", "page"),
        ("before=x", "before"),
    ] {
        let (status, err) = call(&f, get(&format!("/api/runs?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {err}");
        assert_eq!(err["error"], "bad_request");
        assert!(
            err["message"].as_str().unwrap().contains(named),
            "{query}: {err}"
        );
    }
    let (status, list) = call(&f, get("/api/runs?limit=500")).await;
    assert_eq!((status, ids(&list).len()), (StatusCode::OK, all.len()));

    // By what started them: logs that say so.
    let scheduled = serde_json::from_value(json!({"type": "run_started", "pipeline": "nightly",
        "file": "nightly.toml", "params": {}, "resumed_from": null, "plan": {},
        "trigger": {"kind": "schedule", "scheduled_ms": 10 * day}}))
    .unwrap();
    let scheduled = f.state.history.create_run(&scheduled, 10 * day).unwrap();
    let (_, list) = call(&f, get("/api/runs?trigger=schedule,resume")).await;
    assert_eq!(ids(&list), [scheduled]);
    assert_eq!(list[0]["trigger"]["kind"], "schedule");
    let (_, list) = call(&f, get("/api/runs?trigger=api")).await;
    assert_eq!(ids(&list), Vec::<i64>::new());
    let (status, err) = call(&f, get("/api/runs?trigger=cron")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["message"].as_str().unwrap().contains("`cron`"));

    // `spool runs` takes the same options and lists the same runs.
    let spool_runs = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_spool"))
            .arg("runs")
            .arg("--data-dir")
            .arg(f.root.join(".spool"))
            .args(args)
            .output()
            .expect("spool runs")
    };
    let out = spool_runs(&[
        "--pipeline",
        "nightly",
        "--status",
        "failed",
        "--limit",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let (_, api) = call(&f, get("/api/runs?pipeline=nightly&status=failed&limit=2")).await;
    assert_eq!(listed, api);
    let out = spool_runs(&["--trigger", "schedule", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(ids(&listed), [scheduled]);
    let out = spool_runs(&["--limit", "2", "--before", &nightly[8].to_string()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&format!("older runs: --before {}", nightly[7])),
        "a full page says how to read on: {table}"
    );
    let out = spool_runs(&["--since", "tomorrow"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("`since`"));
}

/// A request carrying `Authorization: Bearer secret` (and a JSON body, when given).
fn as_holder(method: &str, uri: &str, secret: &str, body: Option<Value>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "spool.internal:8080")
        .header("authorization", format!("Bearer {secret}"))
        .header("content-type", "application/json")
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap()
}

#[tokio::test]
async fn named_tokens_are_recorded_and_read_only_ones_can_list_and_watch_but_not_change() {
    let (ops, viewer) = ("0ps-s3cret", "v1ewer-s3cret");
    let f = fixture_with_tokens(&[&format!("ops={ops}"), &format!("viewer={viewer}:read-only")]);
    // Reading and a dry run are open to the read-only token.
    for uri in ["/api/runs", "/api/pipelines", "/api/pipelines/nightly.toml"] {
        let (status, _) = call(&f, as_holder("GET", uri, viewer, None)).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    let simulate = as_holder(
        "POST",
        "/api/pipelines/nightly.toml/simulate",
        viewer,
        Some(json!({})),
    );
    assert_eq!(call(&f, simulate).await.0, StatusCode::OK);

    // Starting, saving, cancelling and resuming are not.
    let start = json!({ "file": "nightly.toml" });
    let changes = [
        ("POST", "/api/runs", Some(start.clone())),
        (
            "PUT",
            "/api/pipelines/nightly.toml",
            Some(json!({ "text": "name = \"x\"\n" })),
        ),
        ("POST", "/api/runs/1/cancel", None),
        ("POST", "/api/runs/1/resume", Some(json!({}))),
    ];
    for (method, uri, body) in changes.clone() {
        let (status, err) = call(&f, as_holder(method, uri, viewer, body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {err}");
        assert_eq!(err["error"], "forbidden");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("`viewer` is read-only"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(f.root.join("nightly.toml")).unwrap(),
        PIPELINE
    );
    let (_, runs) = call(&f, as_holder("GET", "/api/runs", viewer, None)).await;
    assert_eq!(runs, json!([]), "nothing was started");

    // The named token starts a run: the log names it, never its secret.
    let (status, started) = call(&f, as_holder("POST", "/api/runs", ops, Some(start))).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["id"].as_i64().unwrap();
    let res = app(f.state.clone())
        .oneshot(as_holder("GET", &format!("/api/runs/{id}"), viewer, None))
        .await
        .unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(res.into_body(), 1 << 24)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(!text.contains(ops), "the secret is never written");
    let detail: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(detail["run"]["started_by"], "ops");
    assert_eq!(detail["events"][0]["event"]["started_by"], "ops");
    let (_, runs) = call(&f, as_holder("GET", "/api/runs", viewer, None)).await;
    assert_eq!(runs[0]["started_by"], "ops");
    // It may cancel (the run may have ended already: Spark is not reachable here).
    let (status, _) = call(
        &f,
        as_holder("POST", &format!("/api/runs/{id}/cancel"), ops, None),
    )
    .await;
    assert!(
        matches!(status, StatusCode::ACCEPTED | StatusCode::CONFLICT),
        "{status}"
    );

    // The browser's cookie carries the same rights as the token it was traded for.
    let sign_in = Request::post("/api/session")
        .header("host", "spool.internal:8080")
        .header("origin", "http://spool.internal:8080")
        .header("content-type", "application/json")
        .body(Body::from(json!({ "token": viewer }).to_string()))
        .unwrap();
    let res = app(f.state.clone()).oneshot(sign_in).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let by_cookie = Request::post("/api/runs")
        .header("host", "spool.internal:8080")
        .header("origin", "http://spool.internal:8080")
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .body(Body::from(json!({ "file": "nightly.toml" }).to_string()))
        .unwrap();
    assert_eq!(call(&f, by_cookie).await.0, StatusCode::FORBIDDEN);
    let unknown = as_holder("GET", "/api/runs", "n0t-a-t0ken", None);
    assert_eq!(call(&f, unknown).await.0, StatusCode::UNAUTHORIZED);
}

/// `PUT /api/notebooks/{file}` (the import dialog's notebooks): a notebook file inside the
/// folder that reads as a notebook, created only with `If-None-Match: *`, replaced only with the
/// `If-Match` of the version read; anything else writes nothing.
#[tokio::test]
async fn notebooks_are_saved_only_as_new_files_or_over_the_version_read() {
    let f = fixture(None);
    let save = |path: &str, text: &str, header: Option<(&str, &str)>| {
        let mut req = put_text(
            &format!("/api/notebooks/{path}"),
            text,
            Some("http://127.0.0.1:8080"),
        );
        if let Some((name, value)) = header {
            req.headers_mut().insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                value.parse().expect("header value"),
            );
        }
        req
    };
    let create = Some(("if-none-match", "*"));
    let (status, body) = call(&f, save("nb%2Fnew.py", "x = 1\n", create)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        std::fs::read_to_string(f.root.join("nb/new.py")).unwrap(),
        "x = 1\n"
    );
    // Created once: a second create, or a save without a precondition, replaces nothing.
    for header in [create, None] {
        let (status, body) = call(&f, save("nb%2Fnew.py", "x = 2\n", header)).await;
        assert_ne!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = call(&f, save("nb%2Fnew.py", "x = 2\n", create)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PRECONDITION_FAILED, Some("precondition_failed"))
    );
    let res = app(f.state.clone())
        .oneshot(save("nb%2Fnew.py", "x = 3\n", Some(("if-match", "*"))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["etag"].to_str().unwrap().starts_with("\"6-"));
    // What is not a notebook file, or does not read as one, or leaves the folder: refused.
    let bad_ipynb = "{\"cells\": 7}";
    for (path, text, status, code) in [
        ("nb%2Fx.txt", "x", StatusCode::BAD_REQUEST, "bad_request"),
        (
            "nb%2Fx.toml",
            "x = 1",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "..%2Fout.py",
            "x = 1",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "nb%2F.hidden.py",
            "x = 1",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "nb%2Fbroken.ipynb",
            bad_ipynb,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_notebook",
        ),
    ] {
        let (got, body) = call(&f, save(path, text, create)).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    assert!(!f.root.join("nb/broken.ipynb").exists());
    assert!(!f.root.join("nb/x.txt").exists());
    assert_eq!(
        std::fs::read_to_string(f.root.join("nb/new.py")).unwrap(),
        "x = 3\n"
    );
}
