//! Real runs end to end: `spool run` on local PySpark behind the Livy-compatible endpoint.
//! Each test gets its own endpoint and data directory.

use serde_json::Value;
use spool_tests::{send_signal, simulate_json, spool, wait_for, LocalLivy, Served};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn fixture(name: &str) -> String {
    format!("tests/fixtures/runs/{name}")
}

/// `spool run … --json` of a fixture: exit code and the finished run.
fn run(livy: &str, data: &Path, file: &str, extra: &[&str]) -> (i32, Value, String) {
    run_file(livy, data, &fixture(file), extra)
}

/// `spool run PATH … --json` (PATH from the repository's root).
fn run_file(livy: &str, data: &Path, path: &str, extra: &[&str]) -> (i32, Value, String) {
    let out: Output = spool()
        .args(["run", path, "--json", "--livy", livy, "--data-dir"])
        .arg(data)
        .args(extra)
        .output()
        .expect("spool run");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let run: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no run JSON ({e}); stderr:\n{stderr}"));
    (out.status.code().unwrap_or(-1), run, stderr)
}

fn outcome(run: &Value, task: &str) -> String {
    let t = &run["tasks"][task];
    if t["carried_over"] == true {
        return "carried_over".into();
    }
    if !t["skipped"].is_null() {
        return "skipped".into();
    }
    t["attempts"]
        .as_array()
        .and_then(|a| a.last())
        .map_or("none".into(), |a| {
            a["outcome"].as_str().unwrap_or("running").to_string()
        })
}

fn attempts(run: &Value, task: &str) -> usize {
    run["tasks"][task]["attempts"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn a_failure_skips_its_dependents_runs_its_handler_and_resume_reruns_only_the_failed_part() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let data = tmp.path().join("data");

    let (code, first, stderr) = run(&livy.url, &data, "branches.toml", &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(first["status"], "failed");
    for (task, want) in [
        ("extract", "succeeded"),
        ("transform", "failed"),
        ("publish", "skipped"),
        ("on_failure", "succeeded"),
        ("side_a", "succeeded"),
        ("side_b", "succeeded"),
    ] {
        assert_eq!(outcome(&first, task), want, "{task}");
    }
    let error = &first["tasks"]["transform"]["attempts"][0]["error"];
    assert_eq!(error["ename"], "ValueError");
    assert!(error["traceback"]
        .to_string()
        .contains("transform failed on purpose"));

    let id = first["id"].to_string();
    let (code, second, stderr) = run(
        &livy.url,
        &data,
        "branches.toml",
        &["--resume", &id, "--param", "transform.should_fail=false"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(second["resumed_from"], first["id"]);
    for (task, want) in [
        ("extract", "carried_over"),
        ("side_a", "carried_over"),
        ("side_b", "carried_over"),
        ("transform", "succeeded"),
        ("publish", "succeeded"),
        ("on_failure", "skipped"),
    ] {
        assert_eq!(outcome(&second, task), want, "{task}");
    }

    let shown = spool()
        .args(["show", &id, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let trace = String::from_utf8_lossy(&shown.stdout);
    assert!(
        trace.contains("failed (attempt 1): ValueError: transform failed on purpose"),
        "{trace}"
    );
    // The traceback follows, down to the notebook's own line.
    assert!(trace.contains("raise ValueError"), "{trace}");
}

/// Invariant "A resume rebuilds the session state it reads", on real Spark and the example
/// pipeline: `daily_report` fails (a negative `top_n`); the resume runs in a new session, where
/// the temp views of the kept notebooks it reads are gone, so those run again first, and the
/// run succeeds (it failed with `TABLE_OR_VIEW_NOT_FOUND` before they were rebuilt).
#[test]
fn resuming_the_example_after_daily_report_failed_rebuilds_the_views_it_reads_and_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let data = tmp.path().join("data");
    let example = "examples/daily_sales.toml";
    // A tenth of the orders: the same notebooks and views, in less time.
    let orders = "load_orders.order_count=400000";
    let (code, first, stderr) = run_file(
        &livy.url,
        &data,
        example,
        &["--param", orders, "--param", "daily_report.top_n=-1"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(outcome(&first, "daily_report"), "failed");
    assert_eq!(
        first["tasks"]["sales_by_customer"]["session_state"],
        serde_json::json!(["view:sales_by_customer"])
    );
    assert_eq!(
        first["tasks"]["build_calendar"]["session_state"],
        serde_json::json!(["global_view:calendar"]),
        "an isolated notebook's global temp view is shared state"
    );

    let id = first["id"].to_string();
    // `spool plan --resume` says so before anything runs.
    let planned = spool()
        .args(["plan", example, "--json", "--resume", &id, "--data-dir"])
        .arg(&data)
        .output()
        .expect("spool plan");
    let planned: Value = serde_json::from_slice(&planned.stdout).expect("plan JSON");
    let listed = |list: &str, item: Value| {
        planned["resume"][list]
            .as_array()
            .is_some_and(|r| r.contains(&item))
    };
    assert!(
        listed(
            "rebuild",
            serde_json::json!(["sales_by_customer", ["view:sales_by_customer"]])
        ),
        "{}",
        planned["resume"]
    );
    assert!(
        listed("run_again", serde_json::json!("daily_report")),
        "{}",
        planned["resume"]
    );
    let (code, second, stderr) = run_file(
        &livy.url,
        &data,
        example,
        &[
            "--resume",
            &id,
            "--param",
            orders,
            "--param",
            "daily_report.top_n=5",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    for task in ["daily_report", "publish_dashboard"] {
        assert_eq!(outcome(&second, task), "succeeded", "{task}: {stderr}");
    }
    for task in ["sales_by_customer", "sales_by_product", "build_calendar"] {
        let t = &second["tasks"][task];
        assert_eq!(t["rebuilt"], true, "{task} rebuilt");
        assert_eq!(attempts(&second, task), 1, "{task} ran once");
        assert_eq!(outcome(&second, task), "succeeded", "{task}");
    }
    assert_eq!(outcome(&second, "alert_on_failure"), "skipped");
}

#[test]
fn a_notebook_that_fails_once_is_retried_and_the_run_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let marker = tmp.path().join("flaky-marker");
    let (code, run, stderr) = run(
        &livy.url,
        &tmp.path().join("data"),
        "flaky.toml",
        &["--param", &format!("flaky.marker={}", marker.display())],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(attempts(&run, "flaky"), 2);
    assert_eq!(run["tasks"]["flaky"]["attempts"][0]["outcome"], "failed");
    assert_eq!(
        run["tasks"]["flaky"]["attempts"][1]["exit_value"],
        "second attempt"
    );
    assert_eq!(outcome(&run, "after"), "succeeded");
}

fn events(data: &Path, id: &str) -> Value {
    let out = spool()
        .args(["show", id, "--json", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn has_event(shown: &Value, kind: &str, task: &str) -> bool {
    shown["events"].as_array().is_some_and(|evs| {
        evs.iter()
            .any(|e| e["event"]["type"] == kind && e["event"]["task"] == task)
    })
}

/// `spool run long.toml --json` in the background, returned once its slow notebook runs.
fn start_long_run(livy: &str, data: &Path, marker: &Path) -> std::process::Child {
    let child = spool()
        .args([
            "run",
            &fixture("long.toml"),
            "--json",
            "--livy",
            livy,
            "--data-dir",
        ])
        .arg(data)
        .args(["--param", &format!("slow.marker={}", marker.display())])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the slow notebook to start",
        Duration::from_secs(180),
        || marker.exists().then_some(()),
    );
    child
}

/// What `spool run --json` printed once it ended.
fn finished_run(child: &mut std::process::Child) -> Value {
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_killed_driver_fails_its_notebooks_and_a_new_session_finishes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let data = tmp.path().join("data");
    let marker = tmp.path().join("slow-marker");
    let mut child = start_long_run(&livy.url, &data, &marker);
    let ours = livy.driver_pids();
    assert!(!ours.is_empty(), "no driver process found");
    for pid in &ours {
        send_signal(pid, "KILL");
    }
    let status = child.wait().unwrap();
    let run = finished_run(&mut child);
    assert!(status.success(), "{run:#}");
    let first = &run["tasks"]["slow"]["attempts"][0];
    assert_eq!(first["outcome"], "failed");
    assert_eq!(first["error"]["ename"], "SparkSessionLost");
    assert_eq!(run["tasks"]["slow"]["attempts"][1]["exit_value"], "retry");
    assert_eq!(outcome(&run, "last"), "succeeded");
    // The loss was seen within a poll or two, not after the notebook's two minutes.
    let lost_after = first["ended_ms"].as_i64().unwrap() - first["started_ms"].as_i64().unwrap();
    assert!(lost_after < 60_000, "loss detected after {lost_after} ms");
}

#[test]
fn a_sigkilled_runner_loses_nothing_recorded_and_its_run_can_be_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let data = tmp.path().join("data");
    let marker = tmp.path().join("slow-marker");
    let mut child = spool()
        .args([
            "run",
            &fixture("long.toml"),
            "--livy",
            &livy.url,
            "--data-dir",
        ])
        .arg(&data)
        .args(["--param", &format!("slow.marker={}", marker.display())])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let shown = wait_for(
        "quick to finish while slow runs",
        Duration::from_secs(180),
        || {
            let shown = events(&data, "1");
            (marker.exists() && has_event(&shown, "task_finished", "quick")).then_some(shown)
        },
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(shown["run"]["status"], "running");
    assert!(has_event(&shown, "task_started", "slow"));

    let (code, resumed, stderr) = run(
        &livy.url,
        &data,
        "long.toml",
        &[
            "--resume",
            "1",
            "--param",
            &format!("slow.marker={}", marker.display()),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let old = events(&data, "1");
    assert_eq!(old["run"]["status"], "interrupted");
    assert!(
        has_event(&old, "task_finished", "quick"),
        "recorded events survive the kill"
    );
    assert_eq!(outcome(&resumed, "quick"), "carried_over");
    assert_eq!(
        resumed["tasks"]["slow"]["attempts"][0]["exit_value"],
        "retry"
    );
    assert_eq!(outcome(&resumed, "last"), "succeeded");
}

/// Faults the proxy injected: on GETs, and on POSTs/DELETEs (statements that start, cancel
/// and poll notebooks, session creation and deletion).
#[derive(Default)]
struct Faults {
    gets: AtomicUsize,
    writes: AtomicUsize,
}

/// An HTTP proxy in front of Livy that answers 503 to some GETs and drops other connections
/// without an answer; of POSTs and DELETEs it drops some before Livy sees them and forwards
/// others but loses Livy's answer (the request took effect, the client cannot know). One
/// request per connection (it asks both sides to close).
fn faulty_proxy(upstream: &str) -> (String, Arc<Faults>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_string();
    let faults = Arc::new(Faults::default());
    let gets = Arc::new(AtomicUsize::new(0));
    let writes = Arc::new(AtomicUsize::new(0));
    let f = faults.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = upstream.clone();
            let faults = f.clone();
            let (gets, writes) = (gets.clone(), writes.clone());
            std::thread::spawn(move || proxy_one(client, &upstream, &gets, &writes, &faults));
        }
    });
    (url, faults)
}

fn proxy_one(
    mut client: TcpStream,
    upstream: &str,
    gets: &AtomicUsize,
    writes: &AtomicUsize,
    faults: &Faults,
) {
    let Some(request) = read_request(&mut client) else {
        return;
    };
    let mut lose_answer = false;
    if request.starts_with(b"GET ") {
        let n = gets.fetch_add(1, Ordering::SeqCst);
        if n % 5 == 3 {
            faults.gets.fetch_add(1, Ordering::SeqCst);
            let _ = client.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbusy",
            );
            return;
        }
        if n % 7 == 5 {
            faults.gets.fetch_add(1, Ordering::SeqCst);
            return; // dropped: the connection closes without an answer
        }
    } else {
        let n = writes.fetch_add(1, Ordering::SeqCst);
        if n % 4 == 2 {
            faults.writes.fetch_add(1, Ordering::SeqCst);
            if n % 8 == 2 {
                return; // dropped before Livy saw it
            }
            lose_answer = true; // Livy acts on it; its answer is lost
        }
    }
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = up.write_all(&request);
    let mut response = Vec::new();
    let _ = up.read_to_end(&mut response);
    if !lose_answer {
        let _ = client.write_all(&response);
    }
}

/// One request, with `Connection: close` so the upstream ends its answer by closing.
fn read_request(client: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = client.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = client.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut out: Vec<u8> = Vec::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&buf[head_end..]);
    Some(out)
}

#[test]
fn a_livy_that_breaks_gets_and_posts_runs_every_notebook_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let (proxy, faults) = faulty_proxy(&livy.url);
    let log = tmp.path().join("executions.log");
    let (code, run, stderr) = run(
        &proxy,
        &tmp.path().join("data"),
        "appends.toml",
        &["--param", &format!("log={}", log.display())],
    );
    assert_eq!(code, 0, "{stderr}\n{run:#}");
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    for layer in ["first", "second"] {
        for i in 0..4 {
            let task = format!("{layer}_{i}");
            assert_eq!(outcome(&run, &task), "succeeded", "{task}");
            let ran = lines.lines().filter(|l| *l == task).count();
            assert_eq!(ran, 1, "{task} ran {ran} times:\n{lines}");
        }
    }
    assert!(
        faults.gets.load(Ordering::SeqCst) >= 3 && faults.writes.load(Ordering::SeqCst) >= 3,
        "the proxy injected too few faults to prove anything"
    );
}

/// Ctrl-C cancels; every task ends final in the run `spool run --json` prints and in
/// `spool show --json`, including the one that never started (invariant: "every final state is
/// a recorded event").
#[test]
fn ctrl_c_cancels_the_run_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let data = tmp.path().join("data");
    let marker = tmp.path().join("slow-marker");
    let mut child = start_long_run(&livy.url, &data, &marker);
    send_signal(&child.id().to_string(), "INT");
    let status = wait_for("the run to stop", Duration::from_secs(60), || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(1));
    let run = finished_run(&mut child);
    assert_eq!(run["status"], "cancelled");
    assert_eq!(run["tasks"]["slow"]["attempts"][0]["outcome"], "cancelled");
    assert_eq!(attempts(&run, "slow"), 1, "a cancelled run retries nothing");
    let shown = events(&data, "1");
    assert!(has_event(&shown, "task_finished", "slow"));
    for run in [&run, &shown["run"]] {
        let state = |t: &str| {
            run["tasks"][t]["state"]
                .as_str()
                .unwrap_or("none")
                .to_string()
        };
        // `quick` may have finished before the cancel, or been cancelled with the run.
        assert!(
            ["succeeded", "cancelled"].contains(&state("quick").as_str()),
            "{run:#}"
        );
        assert_eq!(
            (state("slow"), state("last")),
            ("cancelled".into(), "cancelled".into())
        );
        assert_eq!(run["tasks"]["last"]["reason"]["kind"], "run_cancelled");
        assert_eq!(attempts(run, "last"), 0, "`last` never started");
    }
    assert!(has_event(&shown, "task_settled", "last"));
}

/// Invariant "stopping Spool ends what it started": SIGTERM to `spool serve` (what a service
/// manager sends) cancels its running run, records every task final and deletes the run's Livy
/// session before the process exits, so nothing keeps billing until Livy's idle timeout.
#[test]
fn sigterm_to_spool_serve_cancels_its_runs_and_deletes_their_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let mut served = Served::start(tmp.path(), &["--livy", &livy.url]);
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(spool_tests::root().join("tests/fixtures/runs"))
        .arg(served.pipelines.join("runs"))
        .status()
        .unwrap();
    assert!(copied.success());
    let marker = tmp.path().join("slow-marker");
    let origin = served.base.trim_end_matches('/').to_string();
    let started: Value = ureq::post(&format!("{}api/runs", served.base))
        .set("Origin", &origin)
        .send_json(serde_json::json!({
            "file": "runs/long.toml",
            "params": { "slow.marker": marker.display().to_string() },
        }))
        .unwrap()
        .into_json()
        .unwrap();
    let id = started["id"].to_string();
    wait_for(
        "the slow notebook to start",
        Duration::from_secs(180),
        || marker.exists().then_some(()),
    );
    let sessions = |url: &str| -> Vec<Value> {
        get_json(&format!("{url}/sessions"))["sessions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(sessions(&livy.url).len(), 1, "the run's session is open");

    let status = served.signal_and_wait("TERM", Duration::from_secs(60));
    assert!(status.success(), "spool serve exits cleanly: {status:?}");

    assert_eq!(
        sessions(&livy.url),
        Vec::<Value>::new(),
        "the run's session was deleted before spool serve exited"
    );
    let shown = events(&tmp.path().join("data"), &id);
    let run = &shown["run"];
    assert_eq!(run["status"], "cancelled", "{run:#}");
    for task in ["quick", "slow", "last"] {
        let state = run["tasks"][task]["state"].as_str().unwrap_or("none");
        assert!(
            ["succeeded", "cancelled"].contains(&state),
            "{task} is final after the shutdown: {run:#}"
        );
    }
    assert_eq!(run["tasks"]["slow"]["state"], "cancelled");
    assert_eq!(
        attempts(run, "slow"),
        1,
        "nothing is retried on the way out"
    );
}

/// The Livy session ids a run used, from its `session_changed` events.
fn sessions_used(data: &Path, id: &str) -> Vec<String> {
    let shown = events(data, id);
    let mut ids: Vec<String> = shown["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"]["type"] == "session_changed")
        .filter_map(|e| e["event"]["session"].as_str().map(str::to_string))
        .collect();
    ids.dedup();
    ids
}

#[test]
fn runs_with_a_named_session_reuse_it_and_leave_it_running() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let data = tmp.path().join("data");
    let args = [
        "--session",
        "nightly",
        "--param",
        "transform.should_fail=false",
    ];
    for _ in 0..2 {
        let (code, _, stderr) = run(&livy.url, &data, "branches.toml", &args);
        assert_eq!(code, 0, "{stderr}");
    }
    let (first, second) = (sessions_used(&data, "1"), sessions_used(&data, "2"));
    assert_eq!(first.len(), 1);
    assert_eq!(
        first, second,
        "the second run reuses the first run's session"
    );
    let sessions: Value = get_json(&format!("{}/sessions", livy.url));
    let kept = sessions["sessions"].as_array().unwrap().iter().any(|s| {
        s["name"] == "nightly"
            && s["id"]
                .as_u64()
                .is_some_and(|id| id.to_string() == first[0])
            && s["state"] == "idle"
    });
    assert!(kept, "the named session is left running: {sessions:#}");
}

fn get_json(url: &str) -> Value {
    ureq::get(url).call().unwrap().into_json().unwrap()
}

#[test]
fn an_invalid_pipeline_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = spool()
        .args([
            "run",
            &fixture("branches.toml"),
            "--livy",
            "http://127.0.0.1:9",
            "--data-dir",
        ])
        .arg(tmp.path())
        .args(["--param", "nope=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no notebook declares it"));
}

#[test]
fn a_session_still_starting_after_its_timeout_is_deleted_and_the_run_fails_saying_so() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let (code, run, stderr) = run(
        &livy.url,
        &tmp.path().join("data"),
        "start_timeout.toml",
        &[],
    );
    assert_eq!(code, 1, "{stderr}");
    let error = &run["tasks"]["never"]["attempts"][0]["error"];
    assert!(
        error["evalue"]
            .as_str()
            .is_some_and(|e| e.contains("session_start_timeout_secs = 1")),
        "{error}"
    );
    let sessions: Value = ureq::get(&format!("{}/sessions", livy.url))
        .call()
        .expect("list sessions")
        .into_json()
        .expect("JSON");
    assert_eq!(
        sessions["total"], 0,
        "the stuck session was deleted: {sessions}"
    );
}

#[test]
fn a_conditional_notebook_runs_only_when_a_published_count_is_positive() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let data = tmp.path().join("data");
    let state = |run: &Value, task: &str| run["tasks"][task]["state"].clone();

    // `count_rows` publishes 20: `publish` runs, `alert_empty` is skipped saying why.
    let (code, first, stderr) = run(&livy.url, &data, "conditions.toml", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(state(&first, "publish"), "succeeded");
    assert_eq!(first["tasks"]["publish"]["values"]["value"], "published");
    assert_eq!(state(&first, "alert_empty"), "skipped");
    assert_eq!(
        first["tasks"]["alert_empty"]["skipped"],
        "the `if` of its dependency on `count_rows` did not hold: \
         {{ tasks.count_rows.values.row_count }} == 0 (tasks.count_rows.values.row_count = 20)"
    );
    assert!(first["tasks"]["alert_empty"]["attempts"]
        .as_array()
        .is_some_and(Vec::is_empty));

    // No tables: the count is 0, and the other branch runs.
    let (code, second, stderr) = run(
        &livy.url,
        &data,
        "conditions.toml",
        &["--param", "count_rows.tables=[]"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        second["tasks"]["count_rows"]["values"]["values"]["row_count"],
        0
    );
    assert_eq!(state(&second, "publish"), "skipped");
    assert_eq!(state(&second, "alert_empty"), "succeeded");
    let evaluated = &second["tasks"]["publish"]["conditions"][0];
    assert_eq!(evaluated["holds"], false, "{evaluated}");
    assert_eq!(evaluated["read"]["tasks.count_rows.values.row_count"], 0);
}

#[test]
fn values_set_by_notebooks_reach_their_dependents_and_the_run_log() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let data = tmp.path().join("data");

    // A value of the wrong type stops the run before anything starts.
    let refused = spool()
        .args([
            "run",
            &fixture("values.toml"),
            "--livy",
            &livy.url,
            "--data-dir",
        ])
        .arg(&data)
        .args(["--param", "run_date=tomorrow"])
        .output()
        .expect("spool run");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        stderr.contains("parameter `run_date`: expected a date (YYYY-MM-DD)"),
        "{stderr}"
    );

    let (code, run, stderr) = run(
        &livy.url,
        &data,
        "values.toml",
        &["--param", "run_date=2024-07-01"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(run["id"], 1, "the refused run was not recorded");
    assert_eq!(run["pipeline_params"]["run_date"], "2024-07-01");
    let count = &run["tasks"]["count_rows"];
    assert_eq!(
        count["attempts"][0]["params"],
        serde_json::json!({"tables": ["orders", "returns"], "day": "2024-06-30"})
    );
    assert_eq!(count["values"]["values"]["row_count"], 20);
    // Spark's figures for the attempt, read after its end was reported (attempt_metrics).
    let metrics = &count["attempts"][0]["metrics"];
    assert!(metrics["jobs"].as_u64() >= Some(1), "{metrics}");
    assert!(metrics["tasks"].as_u64() >= Some(1), "{metrics}");
    // The last notebook's too: the run waits briefly for them after its end.
    assert!(
        run["tasks"]["report"]["attempts"][0]["metrics"].is_object(),
        "{run}"
    );
    let report = &run["tasks"]["report"];
    assert_eq!(
        report["attempts"][0]["params"],
        serde_json::json!({"rows": 20, "title": "2024-06-30: 20 rows"})
    );
    assert_eq!(
        report["values"]["value"],
        serde_json::json!({"rows": 20, "title": "2024-06-30: 20 rows", "upstream_day": "2024-06-30"})
    );
}

/// Issue 15's secrets: a notebook that prints, publishes, exits with and raises its secret
/// leaves no trace of it in `spool run`'s output, the logs (at debug level, the embedded Livy
/// endpoint's included), any file of the data directory, or the API's answers.
#[test]
fn a_notebook_that_prints_its_secret_leaves_no_trace_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let secret = "s3cr3t-Pa55w0rd-of-the-e2e-test";
    let out = spool()
        .args(["run", &fixture("secrets.toml"), "--json", "--data-dir"])
        .arg(&data)
        .env("DB_PASSWORD", secret)
        .env("RUST_LOG", "debug")
        .output()
        .expect("spool run");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "`raises` fails the run: {stderr}"
    );
    let run: Value = serde_json::from_str(&stdout).expect("the run as JSON");
    let leaky = &run["tasks"]["leaky"];
    assert_eq!(outcome(&run, "leaky"), "succeeded", "{run:#}");
    // The notebook got the secret itself: every place it wrote it shows the mask.
    let attempt = &leaky["attempts"][0];
    let output = attempt["output"].as_str().unwrap_or_default();
    assert!(output.contains("connecting as etl with ***"), "{output}");
    assert!(output.contains(r#"{"password": "***"}"#), "{output}");
    assert!(output.contains("warning: password is ***"), "{output}");
    assert_eq!(attempt["exit_value"], "done with ***");
    assert_eq!(
        leaky["values"]["values"],
        serde_json::json!({"echoed": "***", "shape": {"inner": ["***", secret.len()]}})
    );
    // What was recorded as its parameters is the reference.
    assert_eq!(
        attempt["params"]["password"],
        serde_json::json!({"$secret": "env:DB_PASSWORD"})
    );
    let error = &run["tasks"]["raises"]["attempts"][0]["error"];
    assert_eq!(error["ename"], "ValueError", "{error}");
    assert!(
        error["evalue"]
            .as_str()
            .is_some_and(|e| e.contains("password ***")),
        "{error}"
    );
    assert!(
        !stdout.contains(secret),
        "spool run's output holds the secret"
    );
    assert!(!stderr.contains(secret), "the logs hold the secret");
    assert!(
        stderr.contains("DEBUG"),
        "the logs were written at debug level: {stderr}"
    );
    let mut folders = vec![data.clone()];
    let mut files = 0;
    while let Some(dir) = folders.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files += 1;
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} holds the secret",
                    path.display()
                );
            }
        }
    }
    assert!(files > 0, "the data directory has the history");

    // The API serves the same history.
    let served = Served::api(tmp.path());
    for (path, shows) in [
        ("api/runs", "\"pipeline\":\"secrets\""),
        ("api/runs/1", "leaky"),
        ("api/runs/1/events", "leaky"),
    ] {
        let body = ureq::get(&format!("{}{path}", served.base))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_string()
            .unwrap();
        assert!(body.contains(shows), "GET {path} answers the run: {body}");
        assert!(!body.contains(secret), "GET {path} holds the secret");
    }
}

#[test]
fn a_for_each_fans_out_over_a_returned_list_and_the_notebooks_after_it_see_every_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let data = tmp.path().join("data");
    let state = |run: &Value, task: &str| run["tasks"][task]["state"].clone();

    let (code, run, stderr) = run(&livy.url, &data, "for_each.toml", &[]);
    assert_eq!(code, 0, "{stderr}");
    let iterations = ["copy_table[orders]", "copy_table[returns]"];
    assert_eq!(
        run["tasks"]["copy_table"]["iterations"],
        serde_json::json!(iterations)
    );
    assert_eq!(state(&run, "copy_table"), "succeeded");
    for (index, (task, table)) in iterations.iter().zip(["orders", "returns"]).enumerate() {
        let it = &run["tasks"][*task];
        assert_eq!(it["state"], "succeeded", "{task}: {it}");
        assert_eq!(
            it["attempts"][0]["params"],
            serde_json::json!({"item": table, "item_index": index})
        );
        assert_eq!(
            it["values"]["value"],
            serde_json::json!({"table": table, "index": index})
        );
    }
    // 10 + 20 rows, read from the copies both iterations left in the session.
    assert_eq!(
        run["tasks"]["count_rows"]["values"]["values"]["row_count"],
        30
    );
    assert_eq!(state(&run, "report"), "succeeded");
    assert_eq!(state(&run, "alert_empty"), "skipped");

    // `spool show` lists the iterations where the list was read.
    let out = spool()
        .args(["show", "1", "--data-dir"])
        .arg(&data)
        .output()
        .expect("spool show");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(
            "copy_table                   for each: 2 iteration(s): copy_table[orders], \
             copy_table[returns]"
        ),
        "{shown}"
    );

    // A dry run calibrated from this run runs the two iterations it had, each for the time it
    // took, not the file's `expected_items`.
    let flags = ["--durations-from".to_string(), "last".to_string()];
    let report = simulate_json(&data, Path::new(&fixture("for_each.toml")), &flags);
    let simulated: Vec<&str> = report["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .filter(|id| id.starts_with("copy_table["))
        .collect();
    assert_eq!(simulated, iterations);
    let estimated = report["calibration"]["estimated"].to_string();
    assert!(
        !estimated.contains("copy_table["),
        "every iteration has its measured duration: {estimated}"
    );
}
