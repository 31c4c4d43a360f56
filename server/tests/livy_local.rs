//! End to end with real local Spark: `spool livy-local` (embedded), Spool's Livy client, the
//! driver agent, and the `livy` package from PyPI. One Spark driver session is shared by most
//! tests, which run at the same time inside it, as notebooks of a pipeline do.

use serde_json::{json, Value};
use spool_core::notebook::{self, Cell, CellKind, Format};
use spool_core::params::TaskValues;
use spool_server::agent::{Agent, NotebookLaunch, NotebookState, NotebookUpdate};
use spool_server::livy::wire::{CreateSession, Kind, SessionState, StatementState};
use spool_server::livy::{ClientConfig, LivyClient, SessionId, StatementId};
use spool_server::livy_local::{self, LocalLivy};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Every wait in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(300);

struct Shared {
    runtime: Runtime,
    endpoint: LocalLivy,
    client: LivyClient,
    session: SessionId,
    agent: Agent,
    /// One poller for the shared session (each poll acknowledges what it returns), and every
    /// update it has seen, for any test to find its own in.
    poll: tokio::sync::Mutex<u64>,
    updates: Mutex<HashMap<(String, u32), NotebookUpdate>>,
}

fn python() -> PathBuf {
    std::env::var_os("SPOOL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python"))
        })
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (endpoint, client, session, agent) = runtime.block_on(async {
            let endpoint = livy_local::start(livy_local::Args {
                port: 0,
                python: Some(python()),
                cores: Some(2),
                driver_memory: "1g".into(),
                max_sessions: 4,
                work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("livy-local"),
                ..livy_local::Args::default()
            })
            .await
            .expect("the endpoint starts (PySpark and Java present)");
            let client = LivyClient::new(ClientConfig::new(endpoint.base_url())).expect("client");
            let session = new_session(&client, "spool-tests-shared").await;
            let agent = Agent::new(client.clone());
            let capacity = agent.inject(session).await.expect("agent injected");
            assert_eq!(capacity.total_cores, 2, "local[2]");
            (endpoint, client, session, agent)
        });
        Shared {
            runtime,
            endpoint,
            client,
            session,
            agent,
            poll: tokio::sync::Mutex::new(0),
            updates: Mutex::new(HashMap::new()),
        }
    })
}

async fn new_session(client: &LivyClient, name: &str) -> SessionId {
    let created = client
        .create_session(&CreateSession {
            kind: Some(Kind::Pyspark),
            name: Some(name.into()),
            ..CreateSession::default()
        })
        .await
        .expect("session created");
    let id = SessionId(created.id);
    let started = Instant::now();
    loop {
        let state = client.get_session(id).await.expect("session").state;
        match state {
            SessionState::Idle => return id,
            SessionState::Starting => {}
            other => panic!(
                "session {name} is {other}: {:?}",
                client.session_log(id, None, 50).await.map(|l| l.log)
            ),
        }
        assert!(started.elapsed() < LIMIT, "session {name} did not start");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs a raw Livy statement on the shared session and returns its text output.
async fn run(code: &str) -> String {
    let s = shared();
    let submitted = s
        .client
        .submit_statement(s.session, code, Kind::Pyspark)
        .await
        .expect("submitted");
    let done = s
        .client
        .wait_statement(s.session, StatementId(submitted.id), LIMIT)
        .await
        .expect("finished");
    let output = done.output.expect("output");
    assert_eq!(
        output.ename, None,
        "{code}: {:?} {:?}",
        output.evalue, output.traceback
    );
    output.text().unwrap_or_default().to_string()
}

fn python_cells(sources: &[&str]) -> Vec<Cell> {
    sources
        .iter()
        .enumerate()
        .map(|(i, source)| Cell {
            kind: CellKind::Python,
            source: source.to_string(),
            number: i + 1,
            line: 1,
            cell_line: 1,
            parameters: false,
        })
        .collect()
}

fn launch(id: &str, cells: Vec<Cell>) -> NotebookLaunch {
    NotebookLaunch {
        id: id.into(),
        attempt: 0,
        cells,
        params: serde_json::Map::new(),
        upstream: Default::default(),
        isolated: false,
        timeout: None,
        mask: Vec::new(),
    }
}

async fn start(l: &NotebookLaunch) {
    let s = shared();
    let reply = s.agent.start_notebook(s.session, l).await.expect("started");
    assert!(reply.started, "{} was new", l.id);
}

/// Waits until the attempt has finished, polling the shared session's agent.
async fn finished(id: &str, attempt: u32) -> NotebookUpdate {
    reported(id, attempt, |u| u.state.is_finished()).await
}

/// The newest report of an attempt once `wanted` holds for it (the agent reports an end at
/// once and its Spark metrics in a later poll).
async fn reported(
    id: &str,
    attempt: u32,
    wanted: impl Fn(&NotebookUpdate) -> bool,
) -> NotebookUpdate {
    let s = shared();
    let key = (id.to_string(), attempt);
    let started = Instant::now();
    loop {
        if let Some(update) = s.updates.lock().expect("lock").get(&key) {
            if wanted(update) {
                return update.clone();
            }
        }
        {
            let mut since = s.poll.lock().await;
            let reply = s
                .agent
                .poll(s.session, *since, "livy-local tests", Duration::ZERO)
                .await
                .expect("poll");
            *since = reply.seq;
            let mut updates = s.updates.lock().expect("lock");
            for update in reply.updates {
                updates.insert((update.id.clone(), update.attempt), update);
            }
        }
        assert!(started.elapsed() < LIMIT, "{id} did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The exit value of a notebook that must have succeeded (`null` when it did not call exit).
fn succeeded(update: &NotebookUpdate) -> &Value {
    static NO_EXIT_VALUE: Value = Value::Null;
    assert_eq!(
        update.state,
        NotebookState::Succeeded,
        "{}: {:?}\nstdout: {}\nstderr: {}",
        update.id,
        update.error,
        update.stdout,
        update.stderr
    );
    update.exit_value.as_ref().unwrap_or(&NO_EXIT_VALUE)
}

#[test]
fn two_notebooks_run_at_the_same_time_in_one_session() {
    shared().runtime.block_on(async {
        let body = "import time\n\
                    t0 = time.time()\n\
                    spark.range(1000).selectExpr('sum(id)').collect()\n\
                    time.sleep(2)\n\
                    spark.range(1000).selectExpr('sum(id)').collect()\n\
                    spool.exit({'t0': t0, 't1': time.time(),\n\
                                'group': sc.getLocalProperty('spark.jobGroup.id'),\n\
                                'pool': sc.getLocalProperty('spark.scheduler.pool')})";
        let a = launch("overlap-a", python_cells(&[body]));
        let b = launch("overlap-b", python_cells(&[body]));
        start(&a).await;
        start(&b).await;
        let (a, b) = tokio::join!(finished("overlap-a", 0), finished("overlap-b", 0));
        let (va, vb) = (succeeded(&a), succeeded(&b));
        let t = |v: &Value, k: &str| v[k].as_f64().expect("a time");
        // Both were inside their two-second sleep at the same moment.
        assert!(
            t(va, "t0").max(t(vb, "t0")) < t(va, "t1").min(t(vb, "t1")),
            "no overlap: {va} {vb}"
        );
        assert_eq!(va["group"], "spool:overlap-a:0");
        assert_eq!(vb["pool"], "spool:overlap-b");
        let later = reported("overlap-a", 0, |u| u.metrics.is_some()).await;
        assert_eq!(later.state, NotebookState::Succeeded, "still the same end");
        let metrics = later.metrics.expect("metrics");
        assert!(metrics.jobs >= 2 && metrics.tasks >= 2, "{metrics:?}");
    });
}

#[test]
fn a_temp_view_of_one_notebook_is_read_by_the_next() {
    shared().runtime.block_on(async {
        let producer = notebook::parse(
            "orders.sql",
            "-- a ; in a comment\n\
             CREATE OR REPLACE TEMP VIEW spool_orders AS SELECT id, id * 10 AS amount FROM range(5);\n\
             SELECT count(*) AS small FROM spool_orders WHERE amount < :limit;",
            Format::Sql,
        );
        assert!(producer.diagnostics.is_empty(), "{:?}", producer.diagnostics);
        let mut make = launch("view-producer", producer.cells);
        make.params.insert("limit".into(), json!(25));
        start(&make).await;
        let made = finished("view-producer", 0).await;
        assert_eq!(made.state, NotebookState::Succeeded, "{:?}", made.error);
        assert!(made.stdout.contains("|3    |"), "the bound :limit kept 3 rows: {}", made.stdout);

        let consumer = launch(
            "view-consumer",
            python_cells(&["spool.exit(spark.sql('SELECT sum(amount) FROM spool_orders').first()[0])"]),
        );
        start(&consumer).await;
        assert_eq!(succeeded(&finished("view-consumer", 0).await), &json!(100));
    });
}

#[test]
fn an_isolated_notebook_has_its_own_views_and_sql_conf() {
    shared().runtime.block_on(async {
        start(&launch(
            "iso-shared-view",
            python_cells(&["spark.range(1).createOrReplaceTempView('spool_everyone')"]),
        ))
        .await;
        assert_eq!(
            succeeded(&finished("iso-shared-view", 0).await),
            &Value::Null
        );

        let mut isolated = launch(
            "iso-private",
            python_cells(
                &["spark.range(1).createOrReplaceTempView('spool_private')\n\
                 spark.conf.set('spark.sql.shuffle.partitions', '7')\n\
                 spool.exit({'sees_shared': spark.catalog.tableExists('spool_everyone'),\n\
                             'sees_own': spark.catalog.tableExists('spool_private')})"],
            ),
        );
        isolated.isolated = true;
        start(&isolated).await;
        assert_eq!(
            succeeded(&finished("iso-private", 0).await),
            &json!({"sees_shared": false, "sees_own": true})
        );

        start(&launch(
            "iso-outsider",
            python_cells(&[
                "spool.exit({'sees_private': spark.catalog.tableExists('spool_private'),\n\
                             'partitions': spark.conf.get('spark.sql.shuffle.partitions')})",
            ]),
        ))
        .await;
        assert_eq!(
            succeeded(&finished("iso-outsider", 0).await),
            &json!({"sees_private": false, "partitions": "2"})
        );
    });
}

#[test]
fn a_failing_notebook_reports_its_traceback_cell_and_line() {
    shared().runtime.block_on(async {
        let text = "# %%\n\
                    def helper(v):\n\
                    \x20   return 10 / v\n\
                    \n\
                    # %% tags=[\"parameters\"]\n\
                    divisor = 1\n\
                    \n\
                    # %%\n\
                    print('before the failure')\n\
                    helper(divisor)\n\
                    print('never printed')\n";
        let parsed = notebook::parse("failing.py", text, Format::Py);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let mut failing = launch("failing", parsed.cells.clone());
        failing.params.insert("divisor".into(), json!(0));
        start(&failing).await;
        let update = finished("failing", 0).await;
        assert_eq!(update.state, NotebookState::Failed);
        assert_eq!(update.stdout, "before the failure\n");
        let error = update.error.expect("an error");
        assert_eq!(error.ename, "ZeroDivisionError");
        // The notebook's third cell, its second line (`helper(divisor)`).
        assert_eq!((error.cell, error.line), (Some(3), Some(2)));
        let traceback = error.traceback.concat();
        assert!(traceback.contains("helper(divisor)"), "{traceback}");
        assert!(traceback.contains("return 10 / v"), "{traceback}");
        assert!(
            !traceback.contains("spool_agent"),
            "agent frames hidden: {traceback}"
        );
    });
}

#[test]
fn parameters_override_the_parameters_cell_and_stay_data() {
    shared().runtime.block_on(async {
        let mut cells = python_cells(&[
            "trace.append('first cell')",
            "trace = ['parameters cell']\nevil = 'default'\nkept = 'default'",
            "spool.exit({'trace': trace, 'evil': evil, 'kept': kept, 'nested': nested,\n\
                         'params': sorted(spool.params)})",
        ]);
        cells[1].parameters = true;
        let hostile = "\"; import os; os._exit(1) #\n'''\"\"\"\\";
        let mut l = launch("hostile-params", cells);
        l.params.insert("evil".into(), json!(hostile));
        l.params.insert(
            "nested".into(),
            json!({"list": [1, "x\"y", null], "flag": true}),
        );
        start(&l).await;
        assert_eq!(
            succeeded(&finished("hostile-params", 0).await),
            &json!({
                "trace": ["parameters cell", "first cell"],
                "evil": hostile,
                "kept": "default",
                "nested": {"list": [1, "x\"y", null], "flag": true},
                "params": ["evil", "nested"],
            })
        );
        // The driver is alive and well.
        assert_eq!(run("6 * 7").await, "42");

        let mut bad_name = launch("bad-param-name", python_cells(&["pass"]));
        bad_name.params.insert("os; import os".into(), json!(1));
        let s = shared();
        let refused = s.agent.start_notebook(s.session, &bad_name).await;
        let message = refused.expect_err("refused").to_string();
        assert!(
            message.contains("not usable as a Python variable name"),
            "{message}"
        );
    });
}

/// The agent masks the launch's secrets in everything it reports: printed text, the error and
/// its traceback, the exit value and published values (keys too), as deep as they nest.
#[test]
fn the_agent_masks_secrets_in_what_it_reports() {
    shared().runtime.block_on(async {
        let secret = "pa55-w0rd-of-the-agent-test";
        let mut leaky = launch(
            "leaky",
            python_cells(&["print('pw', password)\n\
                 spool.set_value(password, {'deep': [[password]]})\n\
                 spool.exit({'said': 'pw=' + password})"]),
        );
        leaky.params.insert("password".into(), json!(secret));
        leaky.mask = vec![secret.to_string()];
        start(&leaky).await;
        let update = finished("leaky", 0).await;
        assert_eq!(update.stdout, "pw ***\n");
        assert_eq!(succeeded(&update), &json!({"said": "pw=***"}));
        assert_eq!(
            update.values.map(serde_json::Value::Object),
            Some(json!({"***": {"deep": [["***"]]}}))
        );
        let mut raising = launch(
            "raising",
            python_cells(&["raise RuntimeError('no login with ' + password)"]),
        );
        raising.params.insert("password".into(), json!(secret));
        raising.mask = vec![secret.to_string()];
        start(&raising).await;
        let error = finished("raising", 0).await.error.expect("an error");
        assert_eq!(error.evalue, "no login with ***");
        assert!(!error.traceback.concat().contains(secret), "{error:?}");
    });
}

/// Ids of the attempt's Spark jobs and their statuses, from the driver.
async fn job_statuses(group: &str) -> Vec<String> {
    let text = run(&format!(
        "st = sc.statusTracker()\n\
         print(','.join(st.getJobInfo(j).status for j in st.getJobIdsForGroup({group:?})))"
    ))
    .await;
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

async fn wait_for_running_job(group: &str) {
    let started = Instant::now();
    while !job_statuses(group).await.iter().any(|s| s == "RUNNING") {
        assert!(started.elapsed() < LIMIT, "no job of {group} ran");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A Spark job that would run for many minutes on two cores.
const ENDLESS_JOB: &str = "spark.range(0, 10**12, 1, 2).selectExpr('max(id)').collect()";

#[test]
fn cancel_stops_exactly_that_notebooks_spark_job() {
    shared().runtime.block_on(async {
        let s = shared();
        start(&launch(
            "cancel-spark",
            python_cells(&[ENDLESS_JOB, "print('next cell')"]),
        ))
        .await;
        start(&launch(
            "cancel-python",
            python_cells(&["import time\nwhile True:\n    time.sleep(0.05)"]),
        ))
        .await;
        wait_for_running_job("spool:cancel-spark:0").await;
        // Runs Spark jobs while the others are cancelled, and must not notice.
        start(&launch(
            "cancel-bystander",
            python_cells(&[
                "spark.range(0, 10**8, 1, 2).selectExpr('max(id)').collect()",
                "import time\ntime.sleep(1)\nspool.exit(spark.range(10).count())",
            ]),
        ))
        .await;

        let asked = Instant::now();
        for id in ["cancel-spark", "cancel-python"] {
            let reply = s.agent.cancel(s.session, id, 0).await.expect("cancel");
            assert!(reply.found);
        }
        let spark = finished("cancel-spark", 0).await;
        let python = finished("cancel-python", 0).await;
        assert_eq!(spark.state, NotebookState::Cancelled);
        assert_eq!(python.state, NotebookState::Cancelled);
        assert!(!spark.stdout.contains("next cell"));
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "took {:?}",
            asked.elapsed()
        );
        let statuses = job_statuses("spool:cancel-spark:0").await;
        assert!(
            !statuses.is_empty() && statuses.iter().all(|s| s == "FAILED"),
            "the job was cancelled: {statuses:?}"
        );
        assert_eq!(
            succeeded(&finished("cancel-bystander", 0).await),
            &json!(10)
        );
        let bystander = job_statuses("spool:cancel-bystander:0").await;
        assert!(bystander.iter().all(|s| s == "SUCCEEDED"), "{bystander:?}");
        // A second cancel changes nothing (the agent may already have forgotten the attempt,
        // once a poll acknowledged its end).
        let again = s
            .agent
            .cancel(s.session, "cancel-spark", 0)
            .await
            .expect("cancel");
        assert!(
            matches!(again.state, None | Some(NotebookState::Cancelled)),
            "{again:?}"
        );
    });
}

#[test]
fn a_timeout_stops_the_notebook_and_its_job() {
    shared().runtime.block_on(async {
        let mut slow = launch("timeout", python_cells(&[ENDLESS_JOB]));
        slow.timeout = Some(Duration::from_secs(4));
        start(&slow).await;
        let update = finished("timeout", 0).await;
        assert_eq!(update.state, NotebookState::TimedOut);
        let ran = update.ended_at.expect("ended") - update.started_at;
        assert!((4_000..60_000).contains(&ran), "ran {ran} ms");
        let statuses = job_statuses("spool:timeout:0").await;
        assert!(statuses.iter().all(|s| s == "FAILED"), "{statuses:?}");
    });
}

#[test]
fn statements_run_one_at_a_time_in_submission_order() {
    shared().runtime.block_on(async {
        let s = shared();
        let code = "import time\nt0 = time.time()\ntime.sleep(0.5)\nprint(t0, time.time())";
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(
                s.client
                    .submit_statement(s.session, code, Kind::Pyspark)
                    .await
                    .expect("submitted")
                    .id,
            );
        }
        let mut spans = Vec::new();
        for id in ids {
            let done = s
                .client
                .wait_statement(s.session, StatementId(id), LIMIT)
                .await
                .expect("done");
            assert_eq!(done.state, StatementState::Available);
            let text = done
                .output
                .as_ref()
                .and_then(|o| o.text())
                .unwrap_or("")
                .to_string();
            let times: Vec<f64> = text
                .split(' ')
                .map(|t| t.parse().expect("a time"))
                .collect();
            spans.push((times[0], times[1]));
        }
        for pair in spans.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "serial and in order: {spans:?}");
        }
    });
}

#[test]
fn statements_are_cancelled_as_livy_does() {
    shared().runtime.block_on(async {
        let s = shared();
        let submit = |code: &'static str| async move {
            StatementId(
                s.client
                    .submit_statement(s.session, code, Kind::Pyspark)
                    .await
                    .expect("submitted")
                    .id,
            )
        };
        let sleeping = submit("import time\ntime.sleep(120)").await;
        let queued = submit("'never run'").await;
        let started = Instant::now();
        while s
            .client
            .get_statement(s.session, sleeping)
            .await
            .expect("get")
            .state
            != StatementState::Running
        {
            assert!(started.elapsed() < LIMIT);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s.client
            .cancel_statement(s.session, queued)
            .await
            .expect("cancel");
        let queued_state = s
            .client
            .get_statement(s.session, queued)
            .await
            .expect("get");
        assert_eq!(queued_state.state, StatementState::Cancelled);
        assert!(queued_state.output.is_none());

        s.client
            .cancel_statement(s.session, sleeping)
            .await
            .expect("cancel");
        let done = s
            .client
            .wait_statement(s.session, sleeping, Duration::from_secs(30))
            .await
            .expect("stopped well before its two minutes");
        assert_eq!(done.state, StatementState::Cancelled);
        assert_eq!(run("'after'").await, "'after'");
    });
}

#[test]
fn a_killed_driver_makes_the_session_dead() {
    shared().runtime.block_on(async {
        let client = &shared().client;
        let session = new_session(client, "spool-tests-doomed").await;
        let pid = {
            let submitted = client
                .submit_statement(session, "import os\nos.getpid()", Kind::Pyspark)
                .await
                .expect("submitted");
            let done = client
                .wait_statement(session, StatementId(submitted.id), LIMIT)
                .await
                .expect("done");
            done.output
                .and_then(|o| o.text().map(String::from))
                .expect("a pid")
        };
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let started = Instant::now();
        while client.get_session(session).await.expect("listed").state != SessionState::Dead {
            assert!(started.elapsed() < Duration::from_secs(60), "not dead");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let refused = client
            .submit_statement(session, "1", Kind::Pyspark)
            .await
            .expect_err("a dead session runs nothing");
        assert!(refused.to_string().contains("HTTP 400"), "{refused}");
        let log = client
            .session_log(session, None, 20)
            .await
            .expect("log")
            .log;
        assert!(log.iter().any(|l| l.contains("SIGKILL")), "{log:?}");
        client.delete_session(session).await.expect("deleted");
        assert!(client
            .get_session(session)
            .await
            .expect_err("gone")
            .is_not_found());
    });
}

#[test]
fn the_livy_package_from_pypi_works_against_the_endpoint() {
    python_client_passes("livy_python_client.py");
}

#[test]
fn sparkmagic_livy_client_works_against_the_endpoint() {
    python_client_passes("livy_sparkmagic_client.py");
}

/// Runs a Python Livy client script of `server/tests/` against the shared endpoint.
fn python_client_passes(script: &str) {
    let url = shared().endpoint.base_url().to_string();
    let output = std::process::Command::new(python())
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join(script),
        )
        .arg(&url)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{script}:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An endpoint of its own (no Spark session is started unless a test lets one through).
async fn guarded_endpoint(token: Option<&str>) -> LocalLivy {
    livy_local::start(livy_local::Args {
        python: Some(python()),
        token: token.map(str::to_string),
        work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("livy-local-guard"),
        ..livy_local::Args::default()
    })
    .await
    .expect("the endpoint starts")
}

async fn status_of(request: reqwest::RequestBuilder) -> (u16, Value) {
    let res = request.send().await.expect("answered");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn new_session_body() -> Value {
    json!({ "kind": "pyspark", "name": "should-never-start" })
}

#[test]
fn the_endpoint_refuses_rebound_hosts_and_other_origins_changes() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let endpoint = guarded_endpoint(None).await;
        let url = endpoint.base_url().to_string();
        let http = reqwest::Client::new();
        // DNS rebinding: the page's name resolves to 127.0.0.1, the Host header still names it.
        let (status, body) = status_of(
            http.post(format!("{url}/sessions"))
                .header("host", "evil.example:8998")
                .json(&new_session_body()),
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(body["msg"].as_str().unwrap().contains("not loopback"));
        let (status, _) = status_of(
            http.get(format!("{url}/sessions"))
                .header("host", "evil.example"),
        )
        .await;
        assert_eq!(status, 403);
        // A page of another origin posting to the loopback name (a form, or fetch no-cors).
        for (name, value) in [
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ] {
            let (status, body) = status_of(
                http.post(format!("{url}/sessions"))
                    .header(name, value)
                    .header("content-type", "text/plain")
                    .body(new_session_body().to_string()),
            )
            .await;
            assert_eq!(status, 403, "{name}: {body}");
        }
        let (status, list) = status_of(http.get(format!("{url}/sessions"))).await;
        assert_eq!((status, &list["total"]), (200, &json!(0)), "{list}");
        // Programs send no Origin: Livy clients keep working without a token on loopback.
        let (status, _) = status_of(http.get(format!("{url}/version"))).await;
        assert_eq!(status, 200);
        endpoint.shutdown().await;
    });
}

#[test]
fn with_a_token_every_request_needs_it_exactly() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let token = "s3cret-Token_1";
        let endpoint = guarded_endpoint(Some(token)).await;
        let url = endpoint.base_url().to_string();
        let http = reqwest::Client::new();
        let wrong = [
            None,
            Some("Bearer s3cret-Token_"),
            Some("Bearer s3cret-Token_12"),
            Some("Bearer S3CRET-TOKEN_1"),
            Some("bearer s3cret-Token_1x"),
            Some("Basic czNjcmV0LVRva2VuXzE="),
        ];
        for auth in wrong {
            let mut get = http.get(format!("{url}/sessions"));
            let mut post = http
                .post(format!("{url}/sessions"))
                .json(&new_session_body());
            if let Some(a) = auth {
                get = get.header("authorization", a);
                post = post.header("authorization", a);
            }
            let (status, body) = status_of(get).await;
            assert_eq!(status, 401, "{auth:?}: {body}");
            let (status, _) = status_of(post).await;
            assert_eq!(status, 401, "{auth:?}");
        }
        let (status, list) = status_of(
            http.get(format!("{url}/sessions"))
                .bearer_auth(token)
                .header("host", "spark-gateway.internal"),
        )
        .await;
        assert_eq!((status, &list["total"]), (200, &json!(0)), "{list}");
        endpoint.shutdown().await;
    });
}

#[test]
fn off_loopback_the_endpoint_requires_a_token() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let refused = runtime.block_on(livy_local::start(livy_local::Args {
        python: Some(python()),
        host: "0.0.0.0".parse().unwrap(),
        work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("livy-local-guard"),
        ..livy_local::Args::default()
    }));
    let message = refused.err().expect("refused without a token").to_string();
    assert!(message.contains("token"), "{message}");
    let bad = runtime.block_on(livy_local::start(livy_local::Args {
        python: Some(python()),
        token: Some("tok; Path=/".into()),
        work_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("livy-local-guard"),
        ..livy_local::Args::default()
    }));
    assert!(
        bad.is_err(),
        "a token that would break its header is refused"
    );
}

#[test]
fn the_embedded_endpoint_has_a_random_token_only_the_executor_uses() {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        spark: spool_server::spark_args::SparkArgs,
    }
    std::env::set_var("SPOOL_PYTHON", python());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let cli = <Cli as clap::Parser>::parse_from(["spool"]);
        let work = tempfile::tempdir().expect("tmp");
        let (target, local) = cli.spark.connect(work.path()).await.expect("connects");
        let local = local.expect("an embedded endpoint");
        let token = local.token().expect("a token").to_string();
        assert_eq!(token.len(), 64, "{} random bytes in hex", 32);
        // The executor's client carries it ...
        let sessions = target.spark.find_session("token-check").await;
        assert!(sessions.is_ok(), "{sessions:?}");
        // ... and nobody else gets in.
        let anonymous = LivyClient::new(ClientConfig::new(local.base_url())).expect("client");
        let refused = anonymous.list_sessions().await.expect_err("refused");
        assert!(refused.to_string().contains("401"), "{refused}");
        let (again, other) = cli.spark.connect(work.path()).await.expect("connects");
        let other = other.expect("an embedded endpoint");
        assert_ne!(
            other.token(),
            Some(token.as_str()),
            "one token per endpoint"
        );
        drop(again);
        other.shutdown().await;
        local.shutdown().await;
    });
}

#[test]
fn a_notebook_reads_upstream_values_and_publishes_its_own() {
    shared().runtime.block_on(async {
        let mut l = launch(
            "values",
            python_cells(&[
                "spool.set_value('rows', spool.upstream['load']['rows'] + 1)\n\
                 spool.set_value('tables', ['a', 'b'])\n\
                 spool.exit(spool.upstream['load'].value * 2)",
            ]),
        );
        l.upstream.insert(
            "load".into(),
            TaskValues {
                value: Some(json!(21)),
                values: serde_json::Map::from_iter([("rows".to_string(), json!(3))]),
            },
        );
        start(&l).await;
        let done = finished("values", 0).await;
        assert_eq!(succeeded(&done), &json!(42));
        assert_eq!(
            done.values.map(Value::Object),
            Some(json!({"rows": 4, "tables": ["a", "b"]}))
        );

        // What JSON cannot hold fails the notebook where it was set; a failure publishes nothing.
        let bad = launch(
            "bad-value",
            python_cells(&["spool.set_value('ok', 1)", "spool.set_value('x', object())"]),
        );
        start(&bad).await;
        let done = finished("bad-value", 0).await;
        assert_eq!(done.state, NotebookState::Failed);
        assert_eq!(done.error.expect("an error").ename, "TypeError");
        assert_eq!(done.values, None);
    });
}

/// Starts the attempt (cancelling it after half a second when asked) on a session of its own and
/// polls until it has finished.
async fn run_alone(
    session: SessionId,
    since: &mut u64,
    l: NotebookLaunch,
    cancel: bool,
) -> NotebookUpdate {
    let agent = &shared().agent;
    assert!(
        agent
            .start_notebook(session, &l)
            .await
            .expect("started")
            .started
    );
    if cancel {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(agent.cancel(session, &l.id, 0).await.expect("cancel").found);
    }
    let started = Instant::now();
    loop {
        let reply = agent
            .poll(session, *since, "thread test", Duration::from_secs(1))
            .await
            .expect("poll");
        *since = reply.seq;
        if let Some(u) = reply.updates.into_iter().find(|u| u.id == l.id) {
            if u.state.is_finished() {
                return u;
            }
        }
        assert!(started.elapsed() < LIMIT, "{} did not finish", l.id);
    }
}

/// Notebook threads are reused from one attempt to the next (a warm py4j connection saves each
/// start a few milliseconds); what a notebook left on its thread, a job tag or a cancel, does
/// not reach the next notebook there. A session of its own: the shared one's other tests would
/// take the idle thread.
#[test]
fn a_reused_notebook_thread_carries_neither_job_tags_nor_a_cancel_into_the_next_notebook() {
    shared().runtime.block_on(async {
        let s = shared();
        let session = new_session(&s.client, "spool-tests-threads").await;
        s.agent.inject(session).await.expect("agent injected");
        let mut since = 0;
        // Thread idents are reused by new threads; a mark set on the thread object is not.
        let thread = "import threading\nt = threading.current_thread()\n\
                      print('mark', getattr(t, 'spool_test_mark', None))\nt.spool_test_mark = 1";
        let mark = |u: &NotebookUpdate| {
            let line = u.stdout.lines().find(|l| l.starts_with("mark "));
            line.expect("the mark was printed").to_string()
        };
        let tagged = run_alone(
            session,
            &mut since,
            launch(
                "tags",
                python_cells(&[thread, "sc.addJobTag('left-behind')"]),
            ),
            false,
        )
        .await;
        succeeded(&tagged);
        let sleeper = "import time\nwhile True:\n    time.sleep(0.05)";
        let cancelled = run_alone(
            session,
            &mut since,
            launch("cancelled", python_cells(&[thread, sleeper])),
            true,
        )
        .await;
        assert_eq!(cancelled.state, NotebookState::Cancelled);
        // Long enough for a stray cancel to land in it, were one still pending on the thread.
        let next = run_alone(
            session,
            &mut since,
            launch(
                "next",
                python_cells(&[
                    thread,
                    "import time\ntime.sleep(1)\nspool.exit(sorted(sc.getJobTags()))",
                ]),
            ),
            false,
        )
        .await;
        assert_eq!(succeeded(&next), &json!([]));
        assert_eq!(mark(&tagged), "mark None");
        assert_eq!(mark(&cancelled), "mark 1", "the thread was reused");
        assert_eq!(mark(&next), "mark 1", "the thread was reused");
        s.client.delete_session(session).await.expect("deleted");
    });
}

/// Spool's extension of the statement read: with `wait_ms` the endpoint holds the read until the
/// statement finishes (or that long), so a client sees an end at once without reading again
/// and again.
#[test]
fn a_statement_read_with_wait_ms_answers_when_the_statement_finishes() {
    shared().runtime.block_on(async {
        let s = shared();
        let code = "import time\ntime.sleep(1.5)\n'slept'";
        let id = s
            .client
            .submit_statement(s.session, code, Kind::Pyspark)
            .await
            .expect("submitted")
            .id;
        let url = format!(
            "{}/sessions/{}/statements/{id}",
            s.endpoint.base_url(),
            s.session
        );
        let http = reqwest::Client::new();
        let read = |wait_ms: u64| {
            let request = http.get(format!("{url}?wait_ms={wait_ms}"));
            async move {
                let asked = Instant::now();
                let body: Value = request
                    .send()
                    .await
                    .expect("answer")
                    .json()
                    .await
                    .expect("json");
                (asked.elapsed(), body)
            }
        };
        let (took, early) = read(300).await;
        assert!(
            matches!(early["state"].as_str(), Some("waiting" | "running")),
            "{early}"
        );
        assert!(took >= Duration::from_millis(290), "held for {took:?}");
        let started = Instant::now();
        loop {
            let (took, body) = read(5_000).await;
            let arrived_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis() as i64;
            if body["state"] == "available" {
                let completed = body["completed"].as_i64().expect("completed");
                let late = arrived_ms - completed;
                assert!(late < 1_000, "answered {late} ms after the end");
                assert_eq!(body["output"]["data"]["text/plain"], "'slept'");
                break;
            }
            assert!(took >= Duration::from_millis(4_900), "{took:?}: {body}");
            assert!(started.elapsed() < LIMIT, "never finished");
        }
    });
}
