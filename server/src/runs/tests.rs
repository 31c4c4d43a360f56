//! The executor against the fake Spark: one test per fault, and a property test over random
//! fault schedules. Time is paused (tokio), so minutes of notebooks take milliseconds. Each
//! test names the ARCHITECTURE.md invariant it checks.

use super::fake::{Behaviour, FakeSpark, Fault, Op};
use super::spark::Spark;
use super::{driver::Execution, Begun, RunManager, RunRequest, SparkTarget};
use crate::agent::NotebookState;
use crate::history::{AttemptOutcome, History, RunEvent, RunRecord, RunStatus};
use spool_core::runlog::{Trigger, TriggerKind};
use spool_core::sched::{Final, TaskState};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// A pipelines folder, its history and the fake Spark (the scheduler's tests use it too).
pub(crate) struct Harness {
    _dir: tempfile::TempDir,
    pub(crate) root: std::path::PathBuf,
    pub(crate) history: Arc<History>,
    pub(crate) fake: Arc<FakeSpark>,
}

impl Harness {
    /// A pipelines folder with `pipeline` as `p.toml` and one notebook every task uses.
    pub(crate) fn new(pipeline: &str, fake: FakeSpark) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir_all(root.join("nb")).expect("nb");
        std::fs::write(root.join("nb/n.py"), "x = 1\n").expect("notebook");
        std::fs::write(root.join("p.toml"), pipeline).expect("pipeline");
        let history = Arc::new(History::open(&root.join(".spool")).expect("history"));
        Harness {
            _dir: dir,
            root,
            history,
            fake: Arc::new(fake),
        }
    }

    pub(crate) fn manager(&self, session_name: Option<&str>) -> Arc<RunManager> {
        let spark: Arc<dyn Spark> = self.fake.clone();
        RunManager::new(
            self.history.clone(),
            self.root.clone(),
            SparkTarget {
                spark,
                policy: Default::default(),
                session_name: session_name.map(str::to_string),
                secret_sources: Default::default(),
            },
        )
    }

    fn events(&self, id: i64) -> Vec<RunEvent> {
        let stored = self.history.events(id, None).expect("events");
        stored.into_iter().map(|e| e.event).collect()
    }

    fn record(&self, id: i64) -> RunRecord {
        self.history.run(id).expect("read").expect("the run exists")
    }
}

fn request(resume: Option<i64>) -> RunRequest {
    RunRequest {
        file: "p.toml".into(),
        params: BTreeMap::new(),
        resume,
        rerun: Vec::new(),
        trigger: Trigger::of(TriggerKind::Cli),
        started_by: None,
    }
}

/// Starts a run and drives it in a task; the execution comes back for inspection.
async fn begin(
    manager: &Arc<RunManager>,
    resume: Option<i64>,
) -> (i64, tokio::task::JoinHandle<Execution>) {
    let begun: Begun = manager
        .begin(request(resume))
        .await
        .expect("the run starts");
    let id = begun.id;
    (id, tokio::spawn(begun.drive()))
}

async fn run_to_end(h: &Harness, manager: &Arc<RunManager>) -> (i64, Execution) {
    let (id, handle) = begin(manager, None).await;
    let exec = handle.await.expect("the run's task");
    check_invariants(h, id, &exec);
    (id, exec)
}

/// A runtime on the real clock (tests that talk to a local HTTP receiver).
pub(crate) fn real_clock() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub(crate) fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

/// The executor's invariants (ARCHITECTURE.md, "The executor"), checked on the fake's ground
/// truth and the recorded history of run `id`.
fn check_invariants(h: &Harness, id: i64, exec: &Execution) {
    let executions = h.fake.executions();
    let prefix = format!("run{id}/");
    let ours: Vec<_> = executions
        .iter()
        .filter(|e| e.id.starts_with(&prefix))
        .collect();
    // exactly-once: no (task, attempt) runs twice ...
    let mut seen: HashMap<(&str, u32), usize> = HashMap::new();
    for e in &ours {
        *seen.entry((e.id.as_str(), e.attempt)).or_default() += 1;
    }
    for (key, n) in &seen {
        assert_eq!(*n, 1, "{key:?} ran {n} times");
    }
    // ... or at the same time as its successor: attempt n ended before attempt n + 1 began.
    for e in &ours {
        for earlier in ours
            .iter()
            .filter(|p| p.id == e.id && p.attempt < e.attempt)
        {
            let ended = earlier.ended.unwrap_or_else(|| {
                panic!("{} attempt {} never ended", earlier.id, earlier.attempt)
            });
            assert!(
                ended <= e.began,
                "{} attempt {} began before attempt {} ended",
                e.id,
                e.attempt,
                earlier.attempt
            );
        }
    }
    let events = h.events(id);
    admission_within_recorded_capacity(&exec.plan, &events);
    // `run_finished` is last: a live stream ends there and must miss nothing.
    if let Some(at) = events
        .iter()
        .position(|e| matches!(e, RunEvent::RunFinished { .. }))
    {
        assert_eq!(
            at,
            events.len() - 1,
            "recorded after run_finished: {:?}",
            &events[at + 1..]
        );
    }
    // Every execution was recorded as started first; nothing starts after a cancel.
    let mut started: Vec<(String, u32)> = Vec::new();
    let mut cancelled = false;
    for e in &events {
        match e {
            RunEvent::CancelRequested { .. } => cancelled = true,
            RunEvent::TaskStarted { task, attempt } => {
                assert!(
                    !cancelled,
                    "{task} attempt {attempt} started after the cancel"
                );
                started.push((task.clone(), *attempt));
            }
            _ => {}
        }
    }
    for e in &ours {
        let task = e.id.trim_start_matches(&prefix).to_string();
        assert!(
            started.contains(&(task.clone(), e.attempt)),
            "{task} attempt {} ran without a recorded start",
            e.attempt
        );
    }
    // The history's fold equals the machine's final state, one final state per task.
    let record = h.record(id);
    let machine_outcome = exec_status(exec);
    assert_eq!(record.status, machine_outcome, "run status");
    for (t, task) in exec.plan.tasks.iter().enumerate() {
        let Some(TaskState::Done(fin)) = exec.machine.state_of(t) else {
            panic!("{} is not final in the machine", task.id);
        };
        let rec = record.tasks.get(&task.id);
        if let Some(rec) = rec {
            for a in &rec.attempts {
                assert!(
                    a.outcome.is_some(),
                    "{} attempt {} has no end",
                    task.id,
                    a.attempt
                );
            }
        }
        let last = rec.and_then(|r| r.attempts.last()).and_then(|a| a.outcome);
        let folded = match (rec, last) {
            (Some(r), _) if r.carried_over => Some(Final::Succeeded),
            (Some(r), _) if r.skipped.is_some() => Some(Final::Skipped),
            (_, Some(AttemptOutcome::Succeeded)) => Some(Final::Succeeded),
            (_, Some(AttemptOutcome::Failed | AttemptOutcome::TimedOut)) => Some(Final::Failed),
            (_, Some(AttemptOutcome::Cancelled)) => Some(Final::Cancelled),
            (_, None) => None,
        };
        // Tasks that never had an attempt (cancelled before they were ready, sub-pipeline
        // ends) leave no event yet.
        if let Some(folded) = folded {
            let expected = if fin == Final::Cancelled && folded == Final::Failed {
                // A cancelled run's failed-then-cancelled attempt: the machine counts it
                // cancelled.
                Final::Failed
            } else {
                fin
            };
            assert_eq!(folded, expected, "{}: history vs machine", task.id);
        }
    }
    // Every session the run created was deleted or recorded as leaked.
    let mut open: Vec<String> = Vec::new();
    let mut created: Vec<String> = Vec::new();
    for e in &events {
        match e {
            RunEvent::SessionChanged { session, state, .. } if state == "created" => {
                open.push(session.clone());
                created.push(session.clone());
            }
            RunEvent::SessionChanged { session, state, .. } if state == "closed" => {
                open.retain(|s| s != session)
            }
            RunEvent::SessionLeaked { session, .. } => open.retain(|s| s != session),
            _ => {}
        }
    }
    assert!(
        open.is_empty(),
        "sessions neither closed nor leaked: {open:?}"
    );
    let leaked: Vec<String> = record
        .leaked_sessions
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    for s in h.fake.live_sessions() {
        let s = s.to_string();
        assert!(
            !created.contains(&s) || leaked.contains(&s),
            "session {s} still runs and is not recorded as leaked"
        );
    }
}

/// capacity: replaying the run log, no start ever made the running notebooks hold more slots
/// than the capacity last recorded (each notebook holds its slots, clamped to the capacity).
fn admission_within_recorded_capacity(plan: &spool_core::dag::Plan, events: &[RunEvent]) {
    let mut capacity = plan.pool.capacity().max(1);
    let mut running: BTreeMap<String, u32> = BTreeMap::new();
    for e in events {
        match e {
            RunEvent::SessionChanged {
                capacity: Some(c), ..
            } => capacity = (*c).max(1),
            RunEvent::TaskStarted { task, .. } => {
                let slots = plan.tasks[plan.index_of(task).expect("a planned task")].slots();
                running.insert(task.clone(), slots.min(capacity));
                let held: u32 = running.values().sum();
                assert!(
                    held <= capacity,
                    "{task} started holding {held} slots of {capacity}: {events:#?}"
                );
            }
            RunEvent::TaskFinished { task, .. } => {
                running.remove(task);
            }
            _ => {}
        }
    }
}

fn exec_status(exec: &Execution) -> RunStatus {
    use spool_core::sched::RunOutcome;
    match exec.machine.outcome() {
        Some(RunOutcome::Succeeded) => RunStatus::Succeeded,
        Some(RunOutcome::Failed) => RunStatus::Failed,
        Some(RunOutcome::Cancelled) => RunStatus::Cancelled,
        None => RunStatus::Running,
    }
}

fn attempts(record: &RunRecord, task: &str) -> Vec<(u32, Option<AttemptOutcome>)> {
    record.tasks[task]
        .attempts
        .iter()
        .map(|a| (a.attempt, a.outcome))
        .collect()
}

const CHAIN: &str = r#"
name = "chain"
[pool]
executors = 1
executor_cores = 4
recreate_session = true
[defaults]
retry = 1
retry_interval_secs = 1
[[notebook]]
id = "a"
path = "nb/n.py"
[[notebook]]
id = "b"
path = "nb/n.py"
depends_on = ["a"]
"#;

#[test]
fn exactly_once_a_start_whose_reply_is_lost_is_sent_again_not_replaced() {
    paused().block_on(async {
        let h = Harness::new(CHAIN, FakeSpark::uniform(2.0));
        h.fake.script(
            Op::Start,
            &[
                Fault::Fail,
                Fault::Slow(Duration::from_secs(30)),
                Fault::LoseReply,
            ],
        );
        let (id, _) = run_to_end(&h, &h.manager(None)).await;
        let record = h.record(id);
        assert_eq!(record.status, RunStatus::Succeeded);
        assert_eq!(
            attempts(&record, "a"),
            [(1, Some(AttemptOutcome::Succeeded))]
        );
        assert_eq!(h.fake.executions().len(), 2, "one execution per notebook");
        // `a`'s first start did not arrive: it was sent again (the later unanswered ones were
        // confirmed by a poll instead).
        assert!(
            h.fake.calls(Op::Start) >= 3,
            "the lost start was sent again"
        );
    });
}

/// The agent reports an end at once and that attempt's Spark metrics in a later poll: the
/// dependent starts without waiting for them, and every attempt's metrics still reach the run
/// log, the last one's too (the run waits briefly for them after its end).
#[test]
fn metrics_follow_the_end_without_delaying_the_dependent() {
    paused().block_on(async {
        let h = Harness::new(CHAIN, FakeSpark::uniform(2.0));
        let (id, _) = run_to_end(&h, &h.manager(None)).await;
        let record = h.record(id);
        assert_eq!(record.status, RunStatus::Succeeded);
        for task in ["a", "b"] {
            let metrics = record.tasks[task].attempts[0].metrics.clone();
            assert_eq!(
                metrics.as_ref().map(|m| m["executor_run_time_ms"].clone()),
                Some(2000.into()),
                "{task}'s metrics are in the run log"
            );
        }
        let kinds: Vec<String> = h
            .events(id)
            .iter()
            .filter_map(|e| match e {
                RunEvent::TaskStarted { task, .. } => Some(format!("start {task}")),
                RunEvent::AttemptMetrics { task, .. } => Some(format!("metrics {task}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            ["start a", "start b", "metrics a", "metrics b"],
            "b started before a's metrics were read"
        );
    });
}

/// The Spark UI's address the server reports is in the run log (for the browser's link), and
/// only when it is a web address: a `javascript:` one from a hostile server is dropped.
#[test]
fn the_spark_ui_the_server_reports_is_recorded_when_it_is_a_web_address() {
    paused().block_on(async {
        let spark_ui_of = |reported: &str| {
            let mut fake = FakeSpark::uniform(1.0);
            fake.spark_ui = Some(reported.to_string());
            async move {
                let h = Harness::new(CHAIN, fake);
                let (id, _) = run_to_end(&h, &h.manager(None)).await;
                let recorded: Vec<Option<String>> = h
                    .events(id)
                    .into_iter()
                    .filter_map(|e| match e {
                        RunEvent::SessionChanged {
                            state, spark_ui, ..
                        } if state == "idle" => Some(spark_ui),
                        _ => None,
                    })
                    .collect();
                recorded
            }
        };
        let ui = "http://ip-10-0-0-10.ec2.internal:20888/proxy/application_1700000000000_0042/";
        assert_eq!(spark_ui_of(ui).await, [Some(ui.to_string())]);
        assert_eq!(spark_ui_of("javascript:alert(1)").await, [None]);
    });
}

/// Invariant "every decision is recorded before it is carried out": a start reaches Spark only
/// once its `task_started` is in the history (the journal is written before each Spark call).
#[test]
fn recorded_every_start_is_in_the_history_before_spark_hears_of_it() {
    paused().block_on(async {
        let history: Arc<std::sync::OnceLock<Arc<History>>> = Arc::default();
        let seen: Arc<std::sync::Mutex<Vec<(String, u32, bool)>>> = Arc::default();
        let mut fake = FakeSpark::uniform(1.0);
        let (history_at_start, seen_at_start) = (history.clone(), seen.clone());
        fake.watch_starts = Some(Box::new(move |agent_id, attempt| {
            let (run, task) = agent_id
                .strip_prefix("run")
                .and_then(|rest| rest.split_once('/'))
                .expect("agent ids are run<N>/<task>");
            let events = history_at_start
                .get()
                .expect("history set")
                .events(run.parse().expect("run id"), None)
                .expect("events");
            let recorded = events.iter().any(|e| {
                matches!(&e.event, RunEvent::TaskStarted { task: t, attempt: a }
                    if t == task && *a == attempt)
            });
            seen_at_start
                .lock()
                .expect("lock")
                .push((task.to_string(), attempt, recorded));
        }));
        let h = Harness::new(CHAIN, fake);
        history.set(h.history.clone()).ok();
        let (id, _) = run_to_end(&h, &h.manager(None)).await;
        assert_eq!(h.record(id).status, RunStatus::Succeeded);
        let seen = seen.lock().expect("lock").clone();
        assert!(seen.len() >= 2, "every notebook was started: {seen:?}");
        for (task, attempt, recorded) in seen {
            assert!(
                recorded,
                "{task} attempt {attempt} reached Spark before the history"
            );
        }
    });
}

#[test]
fn exactly_once_a_retry_waits_until_a_timed_out_attempt_is_confirmed_cancelled() {
    paused().block_on(async {
        let pipeline = CHAIN.replace("retry = 1\n", "retry = 1\ntimeout_secs = 5\n");
        // The first attempt of `a` would run for an hour; the retry takes a second.
        let behaviour: Behaviour = Box::new(|id, attempt| {
            let secs = if id.ends_with("/a") && attempt == 1 {
                3600
            } else {
                1
            };
            (Duration::from_secs(secs), NotebookState::Succeeded)
        });
        let h = Harness::new(&pipeline, FakeSpark::new(behaviour));
        h.fake
            .script(Op::Cancel, &[Fault::Fail, Fault::Fail, Fault::LoseReply]);
        let (id, _) = run_to_end(&h, &h.manager(None)).await;
        let record = h.record(id);
        assert_eq!(
            attempts(&record, "a"),
            [
                (1, Some(AttemptOutcome::TimedOut)),
                (2, Some(AttemptOutcome::Succeeded))
            ]
        );
        assert_eq!(record.status, RunStatus::Succeeded);
        assert!(
            h.fake.calls(Op::Cancel) >= 3,
            "failed cancels were sent again"
        );
    });
}

#[test]
fn exactly_once_failed_polls_are_retried_and_a_dead_session_is_replaced_before_retries() {
    paused().block_on(async {
        let h = Harness::new(CHAIN, FakeSpark::uniform(10.0));
        h.fake.script(Op::Poll, &[Fault::Fail, Fault::Fail]);
        let manager = h.manager(None);
        let (id, handle) = begin(&manager, None).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        h.fake.kill(1);
        let exec = handle.await.expect("run");
        check_invariants(&h, id, &exec);
        let record = h.record(id);
        assert_eq!(record.status, RunStatus::Succeeded);
        let first = &record.tasks["a"].attempts[0];
        let error = first.error.as_ref().expect("the lost attempt says why");
        assert_eq!(error.ename, "SparkSessionLost");
        assert_eq!(h.fake.calls(Op::Create), 2, "a second session");
    });
}

#[test]
fn exactly_once_a_session_that_stops_answering_is_deleted_before_its_tasks_run_again() {
    paused().block_on(async {
        let h = Harness::new(CHAIN, FakeSpark::uniform(10.0));
        // Every poll after the first few fails: the session looks alive but never answers.
        h.fake.script(Op::Poll, &[Fault::Fail; 5]);
        let (id, exec) = run_to_end(&h, &h.manager(None)).await;
        let events = h.events(id);
        assert!(events.iter().any(|e| matches!(e,
            RunEvent::SessionChanged { state, .. } if state == "abandoned")));
        assert_eq!(exec_status(&exec), RunStatus::Succeeded);
        assert_eq!(attempts(&h.record(id), "a").len(), 2);
    });
}

#[test]
fn sessions_a_session_that_cannot_be_deleted_is_recorded_leaked_and_its_task_not_rerun() {
    paused().block_on(async {
        let h = Harness::new(CHAIN, FakeSpark::uniform(10.0));
        h.fake.script(Op::Poll, &[Fault::Fail; 5]);
        h.fake.script(Op::Close, &[Fault::Fail; 4]);
        let (id, exec) = run_to_end(&h, &h.manager(None)).await;
        let record = h.record(id);
        assert_eq!(record.leaked_sessions.len(), 1, "{record:?}");
        assert_eq!(record.leaked_sessions[0].0, "1");
        let a = &record.tasks["a"].attempts;
        assert_eq!(a.len(), 2);
        let refused = a[1].error.as_ref().expect("why the retry did not run");
        assert_eq!(refused.ename, "NotRetried");
        assert!(
            refused.evalue.contains("may still be running"),
            "{}",
            refused.evalue
        );
        assert_eq!(exec_status(&exec), RunStatus::Failed);
        let runs_of_a = h
            .fake
            .executions()
            .iter()
            .filter(|e| e.id.ends_with("/a"))
            .count();
        assert_eq!(
            runs_of_a, 1,
            "never a second execution beside a possible first"
        );
    });
}

#[test]
fn sessions_a_delete_that_fails_at_the_end_is_retried_then_recorded_leaked() {
    paused().block_on(async {
        let h = Harness::new(CHAIN, FakeSpark::uniform(1.0));
        h.fake.script(
            Op::Close,
            &[Fault::Fail, Fault::Slow(Duration::from_secs(20))],
        );
        let (id, _) = run_to_end(&h, &h.manager(None)).await;
        assert!(
            h.record(id).leaked_sessions.is_empty(),
            "the third delete worked"
        );
        assert_eq!(h.fake.calls(Op::Close), 3);
        assert!(h.fake.live_sessions().is_empty());

        let h = Harness::new(CHAIN, FakeSpark::uniform(1.0));
        h.fake.script(Op::Close, &[Fault::Fail; 4]);
        let (id, _) = run_to_end(&h, &h.manager(None)).await;
        assert_eq!(h.record(id).status, RunStatus::Succeeded);
        assert_eq!(h.record(id).leaked_sessions.len(), 1);
        assert_eq!(h.fake.live_sessions(), [1]);
    });
}

#[test]
fn cancel_stops_everything_even_when_cancels_fail_and_starts_nothing_after() {
    paused().block_on(async {
        let wide = CHAIN.to_string()
            + "[[notebook]]\nid = \"c\"\npath = \"nb/n.py\"\n[[notebook]]\nid = \"d\"\npath = \"nb/n.py\"\ndepends_on = [\"c\"]\n";
        let h = Harness::new(&wide, FakeSpark::uniform(60.0));
        h.fake.script(Op::Cancel, &[Fault::Fail, Fault::LoseReply]);
        let manager = h.manager(None);
        let (id, handle) = begin(&manager, None).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(manager.cancel(id, Some("ops".into())).await);
        let exec = handle.await.expect("run");
        check_invariants(&h, id, &exec);
        let record = h.record(id);
        assert_eq!(record.status, RunStatus::Cancelled);
        let asked: Vec<_> = h
            .events(id)
            .into_iter()
            .filter_map(|e| match e {
                RunEvent::CancelRequested { by, .. } => Some(by),
                _ => None,
            })
            .collect();
        assert_eq!(asked, [Some("ops".to_string())], "the log names who cancelled");
        for t in ["a", "c"] {
            assert_eq!(attempts(&record, t), [(1, Some(AttemptOutcome::Cancelled))]);
        }
        assert!(h.fake.live_sessions().is_empty());
    });
}

#[test]
fn one_owner_a_second_process_on_a_named_session_is_refused_naming_the_owner() {
    paused().block_on(async {
        let h = Harness::new(CHAIN, FakeSpark::uniform(30.0));
        let first = h.manager(Some("nightly"));
        let (a, handle_a) = begin(&first, None).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Another process: its own manager, the same Spark.
        let second = h.manager(Some("nightly"));
        let (b, handle_b) = begin(&second, None).await;
        let exec_b = handle_b.await.expect("run b");
        check_invariants(&h, b, &exec_b);
        let record_b = h.record(b);
        assert_eq!(record_b.status, RunStatus::Failed);
        let error = record_b.tasks["a"].attempts[0].error.clone().expect("why");
        assert!(
            error.evalue.contains(&format!("run {a}")),
            "the refusal names the owner: {}",
            error.evalue
        );
        let exec_a = handle_a.await.expect("run a");
        check_invariants(&h, a, &exec_a);
        assert_eq!(h.record(a).status, RunStatus::Succeeded);
        assert_eq!(h.fake.live_sessions(), [1], "a named session is kept");
    });
}

#[test]
fn one_owner_concurrent_starts_are_checked_and_inserted_atomically() {
    paused().block_on(async {
        let h = Harness::new(CHAIN, FakeSpark::uniform(1.0));
        // A named session has one owner: of two concurrent starts, one runs, one waits.
        let manager = h.manager(Some("nightly"));
        let (x, y) = tokio::join!(manager.start(request(None)), manager.start(request(None)));
        let (x, y) = (x.expect("recorded"), y.expect("recorded"));
        let statuses = [h.record(x).status, h.record(y).status];
        assert!(
            statuses.contains(&RunStatus::Running) && statuses.contains(&RunStatus::Queued),
            "exactly one runs: {statuses:?}"
        );
        let runs = ended(&h, &[x, y]).await;
        assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
        assert_one_after_another(&runs);

        // Without one: the server's cap holds under concurrent starts, the rest wait.
        let many = CHAIN.replace(
            "name = \"chain\"",
            "name = \"chain\"\nmax_concurrent_runs = 100",
        );
        std::fs::write(h.root.join("p.toml"), many).expect("pipeline");
        let manager = h.manager(None);
        let starts = (0..super::MAX_ACTIVE_RUNS + 1).map(|_| manager.start(request(None)));
        let ids: Vec<i64> = futures_util::future::join_all(starts)
            .await
            .into_iter()
            .map(|r| r.expect("recorded"))
            .collect();
        let queued = ids
            .iter()
            .filter(|&&id| h.record(id).status == RunStatus::Queued)
            .count();
        assert_eq!(
            queued, 1,
            "the active-run cap holds under concurrent starts"
        );
        let runs = ended(&h, &ids).await;
        assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    });
}

/// The runs `ids` once each has ended.
async fn ended(h: &Harness, ids: &[i64]) -> Vec<RunRecord> {
    loop {
        let runs: Vec<RunRecord> = ids.iter().map(|&id| h.record(id)).collect();
        if runs.iter().all(|r| r.status.is_final()) {
            return runs;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Each run's first notebook started after the previous run's last one ended.
fn assert_one_after_another(runs: &[RunRecord]) {
    let span = |r: &RunRecord| {
        let attempts = || r.tasks.values().flat_map(|t| &t.attempts);
        let first = attempts().map(|a| a.started_ms).min();
        let last = attempts().filter_map(|a| a.ended_ms).max();
        (first, last)
    };
    let mut spans: Vec<(Option<i64>, Option<i64>)> = runs.iter().map(span).collect();
    spans.retain(|(first, _)| first.is_some());
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "runs overlapped: {spans:?}");
    }
}

/// `CHAIN` with the overlap rule `on_overlap`, one run at a time.
fn overlapping(on_overlap: &str) -> String {
    CHAIN.replace(
        "name = \"chain\"",
        &format!("name = \"chain\"\non_overlap = \"{on_overlap}\""),
    )
}

#[test]
fn overlap_queue_runs_one_after_another_and_a_queued_run_can_be_cancelled() {
    paused().block_on(async {
        let h = Harness::new(&overlapping("queue"), FakeSpark::uniform(10.0));
        let manager = h.manager(None);
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(manager.start(request(None)).await.expect("recorded"));
        }
        let statuses: Vec<RunStatus> = ids.iter().map(|&id| h.record(id).status).collect();
        assert_eq!(
            statuses,
            [RunStatus::Running, RunStatus::Queued, RunStatus::Queued]
        );
        assert!(
            manager.cancel(ids[2], None).await,
            "a queued run is cancellable"
        );
        let runs = ended(&h, &ids).await;
        let statuses: Vec<RunStatus> = runs.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [
                RunStatus::Succeeded,
                RunStatus::Succeeded,
                RunStatus::Cancelled
            ]
        );
        assert_one_after_another(&runs);
        let second = h.events(ids[1]);
        let why = second.iter().find_map(|e| match e {
            RunEvent::RunQueued { reason } => Some(reason.clone()),
            _ => None,
        });
        assert_eq!(
            why.as_deref(),
            Some("queued: 1 run(s) of `p.toml` in progress (max_concurrent_runs = 1)")
        );
        assert!(
            second.contains(&RunEvent::RunAdmitted),
            "the decision and the turn are recorded"
        );
        assert!(
            runs[2].tasks.is_empty(),
            "the cancelled queued run ran nothing"
        );
        assert!(
            !manager.cancel(ids[2], None).await,
            "no longer queued nor running"
        );
    });
}

#[test]
fn overlap_skip_records_the_skipped_run_cancelled_with_why() {
    paused().block_on(async {
        let h = Harness::new(&overlapping("skip"), FakeSpark::uniform(10.0));
        let manager = h.manager(None);
        let first = manager.start(request(None)).await.expect("recorded");
        let skipped = manager.start(request(None)).await.expect("recorded");
        let runs = ended(&h, &[first, skipped]).await;
        assert_eq!(runs[0].status, RunStatus::Succeeded);
        assert_eq!(runs[1].status, RunStatus::Cancelled);
        assert!(runs[1].tasks.is_empty());
        assert!(h.events(skipped).iter().any(|e| matches!(e,
            RunEvent::CancelRequested { reason: Some(r), .. } if r.contains("on_overlap = skip"))));
    });
}

#[test]
fn overlap_cancel_running_cancels_the_run_in_progress_then_starts_the_new_one() {
    paused().block_on(async {
        let h = Harness::new(&overlapping("cancel_running"), FakeSpark::uniform(60.0));
        let manager = h.manager(None);
        let old = manager.start(request(None)).await.expect("recorded");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let new = manager.start(request(None)).await.expect("recorded");
        let runs = ended(&h, &[old, new]).await;
        assert_eq!(runs[0].status, RunStatus::Cancelled);
        assert!(h.events(old).iter().any(|e| matches!(e,
            RunEvent::CancelRequested { reason: Some(r), .. } if r.contains("cancel_running"))));
        assert_eq!(runs[1].status, RunStatus::Succeeded);
        assert_one_after_another(&runs);
    });
}

#[test]
fn restart_a_resumed_run_first_deletes_what_the_interrupted_one_left_running() {
    paused().block_on(async {
        let h = Harness::new(CHAIN, FakeSpark::uniform(20.0));
        let (old, handle) = begin(&h.manager(None), None).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        // The server dies: its task is gone, its session and notebook live on.
        handle.abort();
        let _ = handle.await;
        assert_eq!(h.fake.live_sessions(), [1]);
        let interrupted = h.history.mark_interrupted(super::now_ms()).expect("marked");
        assert_eq!(interrupted, [old]);
        let manager = h.manager(None);
        let (new, handle) = begin(&manager, Some(old)).await;
        let exec = handle.await.expect("resumed run");
        check_invariants(&h, new, &exec);
        assert_eq!(h.record(new).status, RunStatus::Succeeded);
        let executions = h.fake.executions();
        let before = executions
            .iter()
            .find(|e| e.id == format!("run{old}/a"))
            .expect("the interrupted run ran a");
        let after = executions
            .iter()
            .find(|e| e.id == format!("run{new}/a"))
            .expect("the resumed run ran a");
        assert!(before.ended.is_some_and(|end| end <= after.began));
        assert!(h.events(old).iter().any(|e| matches!(e,
            RunEvent::SessionChanged { state, .. } if state == "closed")));
        assert!(h.fake.live_sessions().is_empty());
    });
}

#[test]
fn shutdown_cancels_runs_and_deletes_sessions_within_a_bounded_time() {
    paused().block_on(async {
        let mut fake = FakeSpark::uniform(600.0);
        // A notebook stuck in native code: its cancel never takes effect.
        fake.cancel_delay = Duration::from_secs(3600);
        let h = Harness::new(CHAIN, fake);
        let manager = h.manager(None);
        let (id, handle) = begin(&manager, None).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = tokio::time::Instant::now();
        manager.shutdown(false, Duration::from_secs(5)).await;
        assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
        let exec = handle.await.expect("run");
        check_invariants(&h, id, &exec);
        let record = h.record(id);
        assert_eq!(record.status, RunStatus::Cancelled);
        assert!(h.events(id).iter().any(|e| matches!(e,
            RunEvent::CancelRequested { reason: Some(r), .. } if r.contains("stopping"))));
        assert!(h.fake.live_sessions().is_empty());
    });
}

#[test]
fn shutdown_keeping_runs_leaves_them_interrupted_for_a_resume() {
    paused().block_on(async {
        let h = Harness::new(CHAIN, FakeSpark::uniform(60.0));
        let manager = h.manager(None);
        let (id, handle) = begin(&manager, None).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        manager.shutdown(true, Duration::from_secs(5)).await;
        let _ = handle.await.expect("run");
        assert_eq!(h.record(id).status, RunStatus::Interrupted);
        assert_eq!(h.fake.live_sessions(), [1], "left running");
        assert!(h
            .history
            .mark_interrupted(super::now_ms())
            .expect("marked")
            .is_empty());
    });
}

/// Ten independent one-slot notebooks of `secs` each on a pool of 4 slots.
fn wide(secs: u32) -> String {
    let mut s = format!(
        "name = \"wide\"\n[pool]\nexecutors = 1\nexecutor_cores = 4\n\
         [defaults]\nestimate_secs = {secs}\n"
    );
    for i in 0..10 {
        s += &format!("[[notebook]]\nid = \"n{i}\"\npath = \"nb/n.py\"\n");
    }
    s
}

/// The most notebook executions running at once just after one began in `[from, to)`, by
/// the fake's ground truth.
fn most_running_at_starts(
    fake: &FakeSpark,
    from: Duration,
    to: Duration,
    t0: tokio::time::Instant,
) -> usize {
    let executions = fake.executions();
    executions
        .iter()
        .map(|e| e.began)
        .filter(|b| *b >= t0 + from && *b < t0 + to)
        .map(|at| {
            executions
                .iter()
                .filter(|e| e.began <= at && e.ended.is_none_or(|end| end > at))
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn capacity_admission_follows_executors_lost_and_added_and_the_run_log_shows_each_change() {
    paused().block_on(async {
        let h = Harness::new(&wide(10), FakeSpark::uniform(10.0));
        let t0 = tokio::time::Instant::now();
        let manager = h.manager(None);
        let (id, handle) = begin(&manager, None).await;
        // Four notebooks run when two of the four executors' cores go away ...
        tokio::time::sleep(Duration::from_secs(5)).await;
        h.fake.set_capacity(1, 2);
        // ... and come back while the third pair runs.
        tokio::time::sleep(Duration::from_secs(20)).await;
        h.fake.set_capacity(2, 4);
        let exec = handle.await.expect("run");
        check_invariants(&h, id, &exec);
        assert_eq!(h.record(id).status, RunStatus::Succeeded);
        let resized: Vec<(Option<u32>, Option<String>)> = h
            .events(id)
            .into_iter()
            .filter_map(|e| match e {
                RunEvent::SessionChanged {
                    state,
                    capacity,
                    message,
                    ..
                } if state == "resized" => Some((capacity, message)),
                _ => None,
            })
            .collect();
        assert_eq!(
            resized,
            [
                (Some(2), Some("1 executors, 2 slots (was 4)".to_string())),
                (Some(4), Some("2 executors, 4 slots (was 2)".to_string()))
            ]
        );
        assert_eq!(
            most_running_at_starts(&h.fake, Duration::ZERO, Duration::from_secs(5), t0),
            4
        );
        // The four running ones keep their cores; then only two run at once ...
        assert_eq!(
            most_running_at_starts(&h.fake, Duration::from_secs(5), Duration::from_secs(25), t0),
            2
        );
        // ... until the capacity is back: the last two start beside the two still running.
        assert_eq!(
            most_running_at_starts(
                &h.fake,
                Duration::from_secs(25),
                Duration::from_secs(30),
                t0
            ),
            4
        );
    });
}

#[test]
fn session_start_minutes_of_starting_are_shown_in_the_run_log_then_the_run_goes_on() {
    paused().block_on(async {
        let mut fake = FakeSpark::uniform(1.0);
        fake.session_start = Duration::from_secs(95);
        let h = Harness::new(CHAIN, fake);
        let (id, _) = run_to_end(&h, &h.manager(None)).await;
        assert_eq!(h.record(id).status, RunStatus::Succeeded);
        let progress: Vec<String> = h
            .events(id)
            .into_iter()
            .filter_map(|e| match e {
                RunEvent::SessionChanged {
                    state,
                    message: Some(m),
                    ..
                } if state == "starting" => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(
            progress,
            [
                "session starting, 30s",
                "session starting, 1m00s",
                "session starting, 1m30s"
            ]
        );
    });
}

#[test]
fn session_start_a_session_still_starting_after_its_timeout_is_deleted_and_the_run_fails_saying_so()
{
    paused().block_on(async {
        let mut fake = FakeSpark::uniform(1.0);
        fake.session_start = Duration::MAX;
        let pipeline = CHAIN.replace(
            "recreate_session = true\n",
            "session_start_timeout_secs = 300\n",
        );
        let h = Harness::new(&pipeline, fake);
        let t0 = tokio::time::Instant::now();
        let (id, _) = run_to_end(&h, &h.manager(None)).await;
        assert!(
            t0.elapsed() < Duration::from_secs(310),
            "{:?}",
            t0.elapsed()
        );
        let record = h.record(id);
        assert_eq!(record.status, RunStatus::Failed);
        let error = record.tasks["a"].attempts[0].error.clone().expect("why");
        assert!(
            error.evalue.contains("still starting after 5m00s")
                && error.evalue.contains("session_start_timeout_secs = 300"),
            "{}",
            error.evalue
        );
        assert!(
            h.fake.live_sessions().is_empty(),
            "the stuck session was deleted"
        );
        assert_eq!(
            h.fake.calls(Op::Create),
            1,
            "not created again for each retry"
        );
    });
}

#[test]
fn session_start_a_session_that_fails_while_starting_fails_the_run_with_the_server_reason() {
    paused().block_on(async {
        let mut fake = FakeSpark::uniform(1.0);
        fake.session_start = Duration::from_secs(600);
        let pipeline = CHAIN.replace("recreate_session = true\n", "");
        let h = Harness::new(&pipeline, fake);
        let manager = h.manager(None);
        let (id, handle) = begin(&manager, None).await;
        tokio::time::sleep(Duration::from_secs(40)).await;
        let reason = "SPARK_POOL_CAPACITY_EXCEEDED (User): Your Spark job requested 48 vcores";
        h.fake.kill_saying(1, reason);
        let exec = handle.await.expect("run");
        check_invariants(&h, id, &exec);
        let record = h.record(id);
        assert_eq!(record.status, RunStatus::Failed);
        let error = record.tasks["a"].attempts[0].error.clone().expect("why");
        assert!(error.evalue.contains(reason), "{}", error.evalue);
    });
}

#[test]
fn sessions_a_session_that_dies_mid_run_fails_its_notebooks_with_the_server_reason() {
    paused().block_on(async {
        let h = Harness::new(
            &CHAIN.replace("recreate_session = true\n", ""),
            FakeSpark::uniform(10.0),
        );
        let manager = h.manager(None);
        let (id, handle) = begin(&manager, None).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let reason = "java.lang.OutOfMemoryError: Java heap space";
        h.fake.kill_saying(1, reason);
        let exec = handle.await.expect("run");
        check_invariants(&h, id, &exec);
        let record = h.record(id);
        assert_eq!(record.status, RunStatus::Failed);
        let lost = record.tasks["a"].attempts[0].error.clone().expect("why");
        assert_eq!(lost.ename, "SparkSessionLost");
        assert!(lost.evalue.contains(reason), "{}", lost.evalue);
        // The retry cannot run without a session; it says why the session went.
        let retry = record.tasks["a"].attempts[1].error.clone().expect("why");
        assert!(retry.evalue.contains(reason), "{}", retry.evalue);
    });
}

/// A deadline the driver wakes for is due when it wakes: the seconds the machine keeps are not
/// whole nanoseconds (the executor's property test hung on 31.01 + 1.0).
#[test]
fn deadlines_a_deadline_is_never_woken_for_before_it_is_due() {
    let t0 = tokio::time::Instant::now();
    for at in [31.01 + 1.0, 0.1 + 0.2, 1e-9, 7.0 * 86_400.0 + 0.3, 0.0] {
        let woken = super::driver::wake_for(t0, at)
            .duration_since(t0)
            .as_secs_f64();
        assert!(woken >= at, "deadline {at}: woken at {woken}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Case {
        /// Per task: dependencies (earlier tasks), retries, duration (s), fails first try.
        tasks: Vec<(Vec<usize>, u32, u32, bool)>,
        timeout: u32,
        /// The whole run's `timeout_secs`.
        run_timeout: Option<u32>,
        faults: Vec<Option<Fault>>,
        kill_at: Option<u32>,
        cancel_at: Option<u32>,
    }

    fn fault() -> impl Strategy<Value = Option<Fault>> {
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(Fault::Fail)),
            1 => Just(Some(Fault::LoseReply)),
            1 => (1u64..40).prop_map(|s| Some(Fault::Slow(Duration::from_secs(s)))),
        ]
    }

    fn case() -> impl Strategy<Value = Case> {
        let task = (
            proptest::collection::vec(0usize..8, 0..3),
            0u32..3,
            1u32..30,
            any::<bool>(),
        );
        (
            proptest::collection::vec(task, 1..7),
            prop_oneof![Just(8u32), Just(3600)],
            proptest::option::of(5u32..60),
            proptest::collection::vec(fault(), 0..120),
            proptest::option::of(1u32..60),
            proptest::option::of(1u32..60),
        )
            .prop_map(
                |(mut tasks, timeout, run_timeout, faults, kill_at, cancel_at)| {
                    for (i, t) in tasks.iter_mut().enumerate() {
                        t.0.retain(|&d| d < i);
                        t.0.sort_unstable();
                        t.0.dedup();
                    }
                    Case {
                        tasks,
                        timeout,
                        run_timeout,
                        faults,
                        kill_at,
                        cancel_at,
                    }
                },
            )
    }

    fn pipeline(case: &Case) -> String {
        let mut s = format!(
            "name = \"p\"\n{}[pool]\nexecutors = 1\nexecutor_cores = 2\nrecreate_session = true\n\
             [defaults]\nretry_interval_secs = 1\ntimeout_secs = {}\n",
            case.run_timeout
                .map_or(String::new(), |t| format!("timeout_secs = {t}\n")),
            case.timeout
        );
        for (i, (deps, retry, _, _)) in case.tasks.iter().enumerate() {
            let deps: Vec<String> = deps.iter().map(|d| format!("\"t{d}\"")).collect();
            s += &format!(
                "[[notebook]]\nid = \"t{i}\"\npath = \"nb/n.py\"\nretry = {retry}\ndepends_on = [{}]\n",
                deps.join(", ")
            );
        }
        s
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// exactly-once, one final state per task, nothing after cancel, fold == machine,
        /// sessions closed or leaked: under random faults, deaths, cancels and run timeouts
        /// (no notebook starts after the run's `timeout_secs`).
        #[test]
        fn executor_invariants_hold_under_random_faults(case in case()) {
            let specs: Vec<(u32, bool)> = case.tasks.iter().map(|t| (t.2, t.3)).collect();
            let behaviour: Behaviour = Box::new(move |id, attempt| {
                let i: usize = id.rsplit("/t").next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let (secs, fails) = specs.get(i).copied().unwrap_or((1, false));
                let state = if fails && attempt == 1 {
                    NotebookState::Failed
                } else {
                    NotebookState::Succeeded
                };
                (Duration::from_secs(u64::from(secs)), state)
            });
            let h = Harness::new(&pipeline(&case), FakeSpark::new(behaviour));
            h.fake.stream(case.faults.clone());
            paused().block_on(async {
                let manager = h.manager(None);
                let triggered = tokio::time::Instant::now();
                let (id, handle) = begin(&manager, None).await;
                let fake = h.fake.clone();
                let kill = case.kill_at.map(|at| tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(u64::from(at))).await;
                    fake.kill(1);
                }));
                if let Some(at) = case.cancel_at {
                    let m = manager.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(u64::from(at))).await;
                        m.cancel(id, None).await;
                    });
                }
                let exec = handle.await.expect("run");
                if let Some(k) = kill {
                    k.abort();
                }
                check_invariants(&h, id, &exec);
                if let Some(limit) = case.run_timeout {
                    // A start decided before the deadline reaches the fake a call's latency later.
                    let deadline = triggered + Duration::from_secs(u64::from(limit))
                        + Duration::from_millis(100);
                    for e in h.fake.executions() {
                        assert!(e.began <= deadline, "{} began after the run's timeout: at {:?}; {:#?}", e.id, e.began - triggered, h.events(id).iter().skip(1).map(|e| format!("{e:?}")).collect::<Vec<_>>());
                    }
                }
            });
        }
    }
}

const VALUES: &str = r#"
name = "values"
[pool]
executors = 1
executor_cores = 4
[params]
day = { type = "date", default = "{{ run.date | add_days(-1) }}" }
[[notebook]]
id = "a"
path = "nb/n.py"
params = { marker = 7 }
[[notebook]]
id = "b"
path = "nb/n.py"
depends_on = ["a"]
params = { got = "{{ tasks.a.values.marker }}", day = "{{ params.day }}", note = "m={{ tasks.a.values.marker }}" }
"#;

/// The values attempt `attempt` of `task` started with, as run `id` recorded them.
fn started_with(h: &Harness, id: i64, task: &str) -> Vec<serde_json::Value> {
    h.events(id)
        .into_iter()
        .filter_map(|e| match e {
            RunEvent::AttemptParams {
                task: t, params, ..
            } if t == task => Some(serde_json::Value::Object(params)),
            _ => None,
        })
        .collect()
}

#[test]
fn values_reach_dependents_are_recorded_and_kept_by_a_resume() {
    paused().block_on(async {
        // `b` fails in the first run, whatever its attempt: the resume keeps `a`.
        let first_run = std::sync::atomic::AtomicBool::new(true);
        let behaviour: Behaviour = Box::new(move |id: &str, _| {
            let fail = id.ends_with("/b") && first_run.load(std::sync::atomic::Ordering::SeqCst);
            if fail {
                first_run.store(false, std::sync::atomic::Ordering::SeqCst);
                (Duration::from_secs(2), NotebookState::Failed)
            } else {
                (Duration::from_secs(2), NotebookState::Succeeded)
            }
        });
        let h = Harness::new(VALUES, FakeSpark::new(behaviour));
        let manager = h.manager(None);
        let (first, exec) = run_to_end(&h, &manager).await;
        drop(exec);
        let record = h.record(first);
        assert_eq!(record.status, RunStatus::Failed);
        // `a`'s parameters are what the fake publishes as its values; `b` got them.
        let run = record.run_info.expect("values bound");
        let day = spool_core::template::Date::from_days(run.trigger_ms.div_euclid(86_400_000) - 1)
            .expect("a day")
            .to_string();
        assert_eq!(record.pipeline_params["day"], serde_json::json!(day));
        let expected = serde_json::json!({ "got": 7, "day": day, "note": "m=7" });
        assert_eq!(started_with(&h, first, "b"), std::slice::from_ref(&expected));
        assert_eq!(
            record.tasks["a"].published().expect("a succeeded").values["marker"],
            serde_json::json!(7)
        );

        let (second, handle) = begin(&manager, Some(first)).await;
        let exec = handle.await.expect("resumed run");
        check_invariants(&h, second, &exec);
        let record = h.record(second);
        assert_eq!(record.status, RunStatus::Succeeded);
        assert!(record.tasks["a"].carried_over);
        // The resumed run computes the first run's day, from the values `a` published then.
        assert_eq!(record.run_info, Some(run));
        assert_eq!(started_with(&h, second, "b"), [expected]);
        // What reached `b` as `spool.upstream` is what `a` published (the fake echoes it).
        let b = record.tasks["b"].published().expect("b succeeded");
        assert_eq!(
            b.value,
            Some(serde_json::json!({"upstream": {"a": {"value": {"upstream": {}}, "values": {"marker": 7}}}}))
        );
        // Carried-over values are in the resumed run's log too: a resume of it keeps them.
        assert_eq!(record.tasks["a"].published(), h.record(first).tasks["a"].published());

        // A repair of the succeeded run re-runs `a` and what is downstream of it.
        let repair = |rerun: &[&str]| RunRequest {
            rerun: rerun.iter().map(|t| t.to_string()).collect(),
            ..request(Some(second))
        };
        let err = manager.begin(repair(&["zz"])).await.err().expect("refused");
        assert!(err.to_string().contains("cannot re-run `zz`"), "{err}");
        let begun = manager.begin(repair(&["a"])).await.expect("a repair");
        let third = begun.id;
        let exec = begun.drive().await;
        check_invariants(&h, third, &exec);
        let record = h.record(third);
        assert_eq!(record.status, RunStatus::Succeeded);
        assert!(!record.tasks["a"].carried_over && !record.tasks["b"].carried_over);
        assert_eq!(record.tasks["a"].attempts.len(), 1);
        assert_eq!(record.tasks["b"].attempts.len(), 1);
    });
}

const SESSION_STATE: &str = r#"
name = "state"
[pool]
executors = 1
executor_cores = 4
[defaults]
retry = 0
[[notebook]]
id = "views"
path = "nb/n.py"
params = { leaves = "sales" }
[[notebook]]
id = "side"
path = "nb/n.py"
params = { leaves = "other" }
[[notebook]]
id = "report"
path = "nb/n.py"
depends_on = ["views"]
"#;

/// Invariant "A resume rebuilds the session state it reads", end to end on the fake: the kept
/// notebook whose temp view a re-run notebook reads runs again first in the new session; one
/// that nothing re-run follows stays kept, and its state is written again for later resumes.
/// A long-lived named session keeps the views: nothing is rebuilt there.
#[test]
fn a_resume_in_a_new_session_first_rebuilds_the_temp_views_its_notebooks_read() {
    paused().block_on(async {
        for session in [None, Some("nightly")] {
            let first_run = std::sync::atomic::AtomicBool::new(true);
            let behaviour: Behaviour = Box::new(move |id: &str, _| {
                let fail = id.ends_with("/report")
                    && first_run.swap(false, std::sync::atomic::Ordering::SeqCst);
                let state = if fail {
                    NotebookState::Failed
                } else {
                    NotebookState::Succeeded
                };
                (Duration::from_secs(2), state)
            });
            let h = Harness::new(SESSION_STATE, FakeSpark::new(behaviour));
            let manager = h.manager(session);
            let (first, exec) = run_to_end(&h, &manager).await;
            drop(exec);
            let record = h.record(first);
            assert_eq!(record.status, RunStatus::Failed);
            assert_eq!(record.tasks["views"].session_state, ["view:sales"]);

            let (second, handle) = begin(&manager, Some(first)).await;
            let exec = handle.await.expect("resumed run");
            check_invariants(&h, second, &exec);
            let record = h.record(second);
            assert_eq!(record.status, RunStatus::Succeeded);
            assert!(record.tasks["side"].carried_over);
            assert_eq!(
                record.tasks["side"].session_state,
                ["view:other"],
                "kept for later resumes"
            );
            let starts: Vec<String> = h
                .events(second)
                .iter()
                .filter_map(|e| match e {
                    RunEvent::TaskStarted { task, .. } => Some(task.clone()),
                    _ => None,
                })
                .collect();
            if session.is_none() {
                assert!(record.tasks["views"].rebuilt && !record.tasks["views"].carried_over);
                assert_eq!(starts, ["views", "report"]);
                assert!(h
                    .events(second)
                    .contains(&RunEvent::RebuildingSessionState {
                        task: "views".into(),
                        names: vec!["view:sales".into()],
                    }));
            } else {
                assert!(!record.tasks["views"].rebuilt && record.tasks["views"].carried_over);
                assert_eq!(starts, ["report"], "the named session still has the view");
            }
        }
    });
}

#[test]
fn a_run_past_its_timeout_is_cancelled_with_the_reason() {
    paused().block_on(async {
        let pipeline = CHAIN.replace("name = \"chain\"", "name = \"chain\"\ntimeout_secs = 30");
        let h = Harness::new(&pipeline, FakeSpark::uniform(20.0));
        let manager = h.manager(None);
        let (id, _exec) = run_to_end(&h, &manager).await;
        let record = h.record(id);
        assert_eq!(record.status, RunStatus::Cancelled);
        assert_eq!(record.tasks["a"].state, Some(Final::Succeeded));
        assert_eq!(record.tasks["b"].state, Some(Final::Cancelled));
        assert!(h.events(id).iter().any(|e| matches!(e,
            RunEvent::CancelRequested { reason: Some(r), .. } if r.contains("timeout_secs = 30"))));
        assert!(h.fake.live_sessions().is_empty());
    });
}

const GATED: &str = r#"
name = "gated"
[pool]
executors = 1
executor_cores = 4
[params]
min = 5
[[notebook]]
id = "count"
path = "nb/n.py"
params = { rows = 3 }
[[notebook]]
id = "big"
path = "nb/n.py"
depends_on = [{ id = "count", if = "{{ tasks.count.values.rows }} >= {{ params.min }}" }]
[[notebook]]
id = "small"
path = "nb/n.py"
depends_on = [{ id = "count", if = "{{ tasks.count.values.rows }} < {{ params.min }}" }]
[[notebook]]
id = "after_big"
path = "nb/n.py"
depends_on = ["big"]
"#;

#[test]
fn recorded_a_value_condition_reads_published_values_and_skips_before_spark_hears_of_it() {
    paused().block_on(async {
        // The fake publishes a notebook's parameters as its values: `count` sets rows = 3.
        let h = Harness::new(GATED, FakeSpark::uniform(2.0));
        let manager = h.manager(None);
        let (id, _exec) = run_to_end(&h, &manager).await;
        let record = h.record(id);
        assert_eq!(record.status, RunStatus::Succeeded);
        assert_eq!(record.tasks["small"].state, Some(Final::Succeeded));
        for skipped in ["big", "after_big"] {
            assert_eq!(
                record.tasks[skipped].state,
                Some(Final::Skipped),
                "{skipped}"
            );
            assert!(record.tasks[skipped].attempts.is_empty(), "{skipped}");
        }
        // Spark never heard of the skipped notebooks.
        let ran: Vec<String> = h.fake.executions().into_iter().map(|r| r.id).collect();
        assert_eq!(ran, [format!("run{id}/count"), format!("run{id}/small")]);
        // The skip names the condition and the values it read.
        let why = record.tasks["big"].skipped.clone().unwrap_or_default();
        assert_eq!(
            why,
            "the `if` of its dependency on `count` did not hold: \
             {{ tasks.count.values.rows }} >= {{ params.min }} \
             (params.min = 5, tasks.count.values.rows = 3)"
        );
        // The evaluation is in the log before the decision it led to.
        let events = h.events(id);
        let at = |f: &dyn Fn(&RunEvent) -> bool| events.iter().position(f);
        let evaluated =
            at(&|e| matches!(e, RunEvent::ConditionsEvaluated { task, .. } if task == "big"));
        let settled = at(&|e| matches!(e, RunEvent::TaskSettled { task, .. } if task == "big"));
        assert!(evaluated.is_some() && evaluated < settled, "{events:?}");
    });
}

/// The path and body of each request a webhook receiver got.
pub(crate) type Received = Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A webhook receiver on loopback: answers the scripted statuses in turn (then 200), and keeps
/// each request's path and body.
pub(crate) fn webhook_receiver(statuses: Vec<u16>) -> (String, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/hooks/T0/s3cret?key=also-secret",
        listener.local_addr().expect("addr")
    );
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = got.clone();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for stream in listener.incoming().take(10) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            kept.lock()
                .expect("lock")
                .push((path, String::from_utf8_lossy(&body).into()));
            let status = statuses.next().unwrap_or(200);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

/// `[[notify]]`: the run's end is posted to the webhook without holding the run (a failing
/// webhook is retried, a 5xx is safe to repeat), Slack's body names the failed notebook with its
/// error, and the run log records the outcome with the webhook's origin only (its path and query
/// are secrets). A notification for an event the entry does not want is not sent.
#[test]
fn notify_posts_the_runs_end_to_its_webhook_retrying_what_failed() {
    real_clock().block_on(async {
            let (url, got) = webhook_receiver(vec![503]);
            let pipeline = format!(
                "name = \"alerts\"\n[[notify]]\non = [\"failed\"]\nwebhook = \"{url}\"\nformat = \"slack\"\n\
                 [[notify]]\non = [\"succeeded\"]\nwebhook = \"{url}\"\n\
                 [[notebook]]\nid = \"load\"\npath = \"nb/n.py\"\nretry = 0\n"
            );
            let behaviour: Behaviour =
                Box::new(|_, _| (Duration::from_millis(50), NotebookState::Failed));
            let h = Harness::new(&pipeline, FakeSpark::new(behaviour));
            let manager = h.manager(None);
            let (id, handle) = begin(&manager, None).await;
            handle.await.expect("run");
            manager.notifications_sent().await;
            let got = got.lock().expect("lock").clone();
            assert_eq!(got.len(), 2, "one retry after the 503: {got:?}");
            assert_eq!(got[0], got[1], "the same request again");
            assert_eq!(got[0].0, "/hooks/T0/s3cret?key=also-secret");
            let body: serde_json::Value = serde_json::from_str(&got[0].1).expect("JSON");
            let text = body["text"].as_str().expect("Slack's text");
            assert!(
                text.starts_with(&format!("Spool: pipeline alerts run #{id} failed")),
                "{text}"
            );
            assert!(text.lines().any(|l| l.starts_with("• load")), "{text}");
            let notified: Vec<RunEvent> = h
                .events(id)
                .into_iter()
                .filter(|e| matches!(e, RunEvent::Notified { .. }))
                .collect();
            let origin = url.split("/hooks").next().expect("origin").to_string();
            assert_eq!(
                notified,
                [RunEvent::Notified {
                    event: spool_core::notify::NotifyOn::Failed,
                    target: origin,
                    tries: 2,
                    status: Some(200),
                    error: None,
                }]
            );
        });
}

/// `long_running`: sent once while the run still runs `long_running_secs` after its start, with
/// the status `running`; nothing is sent about an end the entry does not want.
#[test]
fn notify_tells_when_a_run_runs_longer_than_long_running_secs() {
    real_clock().block_on(async {
        let (url, got) = webhook_receiver(Vec::new());
        let pipeline = format!(
            "name = \"slow\"\n[[notify]]\non = [\"long_running\"]\nlong_running_secs = 1\n\
                 webhook = \"{url}\"\n[[notebook]]\nid = \"load\"\npath = \"nb/n.py\"\n"
        );
        let h = Harness::new(&pipeline, FakeSpark::uniform(2.5));
        let manager = h.manager(None);
        let (id, handle) = begin(&manager, None).await;
        handle.await.expect("run");
        manager.notifications_sent().await;
        let got = got.lock().expect("lock").clone();
        assert_eq!(got.len(), 1, "{got:?}");
        let body: serde_json::Value = serde_json::from_str(&got[0].1).expect("JSON");
        assert_eq!(
            (
                body["event"].as_str(),
                body["status"].as_str(),
                body["run_id"].as_i64()
            ),
            (Some("long_running"), Some("running"), Some(id))
        );
        assert!(body["elapsed_secs"].as_f64() >= Some(1.0), "{body}");
    });
}

/// A server that runs for months: what the manager keeps in memory of finished runs does not
/// grow with them (the history serves them). A finished run's control goes at the next start,
/// its live-stream channel when its last watcher leaves, its notification once sent.
#[test]
fn what_a_server_keeps_in_memory_of_finished_runs_does_not_grow_with_them() {
    real_clock().block_on(async {
        let (url, got) = webhook_receiver(Vec::new());
        let pipeline = format!(
            "[[notify]]\non = [\"succeeded\"]\nwebhook = \"{url}\"\n\
                 [[notebook]]\nid = \"load\"\npath = \"nb/n.py\"\n"
        );
        let h = Harness::new(&pipeline, FakeSpark::uniform(0.02));
        let manager = h.manager(None);
        let mut ids = Vec::new();
        for n in 1..=8 {
            let (id, handle) = begin(&manager, None).await;
            let watcher = manager.subscribe(id).expect("a channel");
            handle.await.expect("the run");
            drop(watcher);
            while got.lock().expect("lock").len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ids.push(id);
        }
        // Let the last delivery record its outcome.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let last = *ids.last().expect("runs");
        let _watching_the_last = manager.subscribe(last);
        let [runs, channels, deliveries] = manager.held();
        assert!(runs <= 1, "{runs} runs held after 8 ended");
        assert_eq!(channels, 1, "only the watched run's channel");
        assert!(
            deliveries <= 1,
            "{deliveries} deliveries held after 8 were sent"
        );
        for id in ids {
            assert_eq!(
                h.record(id).status,
                RunStatus::Succeeded,
                "served from history"
            );
        }
    });
}

/// A secret reaches the notebook as its value and nothing recorded holds it: the log keeps the
/// reference, what the notebook reports back is masked (the fake publishes its parameters as
/// its values), and no byte of the history files contains it. A secret that cannot be read
/// fails its attempt, naming the reference; a kind not enabled is refused.
#[test]
fn secrets_reach_the_notebook_and_nothing_recorded_holds_them() {
    paused().block_on(async {
        let secrets = tempfile::tempdir().expect("temp dir");
        let file = secrets.path().join("pw");
        let secret = "correct-horse-battery-staple";
        std::fs::write(&file, format!("{secret}\n")).expect("secret file");
        let missing = secrets.path().join("missing");
        let pipeline = format!(
            "[[notebook]]\nid = \"a\"\npath = \"nb/n.py\"\n\
             params = {{ user = \"etl\", pw = {{ secret = \"file:{}\" }} }}\n\
             [[notebook]]\nid = \"b\"\npath = \"nb/n.py\"\ndepends_on = [\"a\"]\n\
             params = {{ pw = {{ secret = \"file:{}\" }} }}\n\
             [[notebook]]\nid = \"c\"\npath = \"nb/n.py\"\n\
             params = {{ pw = {{ secret = \"command:echo hunter22\" }} }}\n",
            file.display(),
            missing.display()
        );
        let h = Harness::new(&pipeline, FakeSpark::uniform(2.0));
        let manager = h.manager(None);
        let (id, exec) = run_to_end(&h, &manager).await;
        drop(exec);
        let record = h.record(id);
        assert_eq!(
            started_with(&h, id, "a"),
            [serde_json::json!({"user": "etl", "pw": {"$secret": format!("file:{}", file.display())}})]
        );
        let published = record.tasks["a"].published().expect("a succeeded");
        assert_eq!(
            serde_json::Value::Object(published.values),
            serde_json::json!({"user": "etl", "pw": "***"})
        );
        let error = |task: &str| {
            let e = record.tasks[task].attempts[0]
                .error
                .clone()
                .expect("failed with an error");
            (e.ename, e.evalue)
        };
        let (ename, evalue) = error("b");
        assert_eq!(ename, "SecretError");
        assert!(
            evalue.contains(&format!("secret `file:{}`", missing.display()))
                && evalue.contains("cannot open the file"),
            "{evalue}"
        );
        let (_, evalue) = error("c");
        assert!(evalue.contains("`command:` secrets are not enabled"), "{evalue}");
        drop(manager);
        for entry in std::fs::read_dir(h.root.join(".spool")).expect("history dir") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("history file");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the secret",
                path.display()
            );
        }
    });
}

const FOR_EACH: &str = r#"
name = "fan_out"
[pool]
executors = 2
executor_cores = 4
[[notebook]]
id = "list_tables"
path = "nb/n.py"
params = { tables = ["orders", "returns", "stores"], n = 3 }
[[notebook]]
id = "copy_table"
path = "nb/n.py"
depends_on = ["list_tables"]
for_each = "{{ tasks.list_tables.values.tables }}"
for_each_concurrency = 2
params = { mode = "full" }
[[notebook]]
id = "count_rows"
path = "nb/n.py"
depends_on = ["copy_table"]
[[notebook]]
id = "not_a_list"
path = "nb/n.py"
depends_on = ["list_tables"]
for_each = "{{ tasks.list_tables.values.n }}"
[[notebook]]
id = "after_not_a_list"
path = "nb/n.py"
depends_on = ["not_a_list"]
"#;

/// Invariants "the run log folds to the machine's state" and "a driver's plan and machine keep
/// the same ids" with a for-each whose list an upstream notebook published: the iterations
/// run with `item` and `item_index`, at most `for_each_concurrency` at once, are recorded
/// under their ids, and their dependent waits for all of them; a value that is not a list fails
/// the for-each with the reason before Spark hears of it, and skips what depends on it.
#[test]
fn for_each_expands_over_an_upstream_value_at_run_time() {
    paused().block_on(async {
        // The fake publishes a notebook's parameters as its values.
        let h = Harness::new(FOR_EACH, FakeSpark::uniform(2.0));
        let manager = h.manager(None);
        let (id, exec) = run_to_end(&h, &manager).await;
        let record = h.record(id);
        assert_eq!(record.status, RunStatus::Failed);
        let iterations = [
            "copy_table[orders]",
            "copy_table[returns]",
            "copy_table[stores]",
        ];
        assert_eq!(record.tasks["copy_table"].iterations, iterations);
        assert_eq!(record.tasks["copy_table"].state, Some(Final::Succeeded));
        for (index, (task, table)) in iterations
            .iter()
            .zip(["orders", "returns", "stores"])
            .enumerate()
        {
            assert_eq!(record.tasks[*task].state, Some(Final::Succeeded), "{task}");
            assert_eq!(
                started_with(&h, id, task),
                [serde_json::json!({ "mode": "full", "item": table, "item_index": index })]
            );
            // `spool.upstream` reads the for-each's dependencies (the fake echoes it).
            let upstream = record.tasks[*task].published().expect("succeeded").value;
            let listed = upstream
                .as_ref()
                .map(|v| &v["upstream"]["list_tables"]["values"]);
            assert_eq!(
                listed,
                Some(&serde_json::json!({"tables": ["orders", "returns", "stores"], "n": 3}))
            );
        }
        // The run's plan grew by the iterations, after the for-each.
        let ids: Vec<&str> = exec.plan.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(&ids[ids.len() - 3..], iterations);

        // At most two iterations at once; `count_rows` after the last one ended.
        let ran = h.fake.executions();
        let of = |task: &str| {
            ran.iter()
                .find(|r| r.id == format!("run{id}/{task}"))
                .unwrap_or_else(|| panic!("{task} ran"))
        };
        let copies: Vec<_> = iterations.iter().map(|t| of(t)).collect();
        for c in &copies {
            let overlapping = copies
                .iter()
                .filter(|o| o.began <= c.began && o.ended.is_some_and(|e| e > c.began))
                .count();
            assert!(overlapping <= 2, "{} runs beside {overlapping}", c.id);
        }
        let last_copy = copies.iter().filter_map(|c| c.ended).max();
        assert!(last_copy <= Some(of("count_rows").began));

        // Not a list: failed with why, its dependent skipped, nothing of it ran.
        let bad = &record.tasks["not_a_list"];
        assert_eq!(bad.state, Some(Final::Failed));
        let why = bad.items_error.clone().unwrap_or_default();
        assert!(
            why.contains("needs a list, but the value is a number"),
            "{why}"
        );
        assert_eq!(record.tasks["after_not_a_list"].state, Some(Final::Skipped));
        assert!(!ran.iter().any(|r| r.id.contains("not_a_list")));
    });
}

const FOR_EACH_RESUMED: &str = r#"
name = "fan_out_again"
[pool]
executors = 2
executor_cores = 4
[[notebook]]
id = "list_tables"
path = "nb/n.py"
params = { tables = ["orders", "returns"] }
[[notebook]]
id = "copy_table"
path = "nb/n.py"
depends_on = ["list_tables"]
for_each = "{{ tasks.list_tables.values.tables }}"
[[notebook]]
id = "fixed"
path = "nb/n.py"
for_each = ["a", "b"]
"#;

/// What a resume does with iterations (docs/metadata.md, for-each): a written-out list's
/// iterations are kept one by one, a list read at run time is read again and all its
/// iterations run again, with the values the kept upstream published.
#[test]
fn a_resume_keeps_written_out_iterations_and_reads_a_run_time_list_again() {
    paused().block_on(async {
        let first_run = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let failing = first_run.clone();
        let behaviour: Behaviour = Box::new(move |id: &str, _| {
            let fails = ["/copy_table[returns]", "/fixed[b]"];
            if failing.load(std::sync::atomic::Ordering::SeqCst)
                && fails.iter().any(|f| id.ends_with(f))
            {
                (Duration::from_secs(2), NotebookState::Failed)
            } else {
                (Duration::from_secs(2), NotebookState::Succeeded)
            }
        });
        let h = Harness::new(FOR_EACH_RESUMED, FakeSpark::new(behaviour));
        let manager = h.manager(None);
        let (first, _exec) = run_to_end(&h, &manager).await;
        let record = h.record(first);
        assert_eq!(record.status, RunStatus::Failed);
        for failed in ["copy_table", "fixed"] {
            assert_eq!(record.tasks[failed].state, Some(Final::Failed), "{failed}");
        }
        assert_eq!(
            record.tasks["copy_table[orders]"].state,
            Some(Final::Succeeded)
        );

        first_run.store(false, std::sync::atomic::Ordering::SeqCst);
        let (second, handle) = begin(&manager, Some(first)).await;
        let exec = handle.await.expect("resumed run");
        check_invariants(&h, second, &exec);
        let record = h.record(second);
        assert_eq!(record.status, RunStatus::Succeeded);
        let kept = |t: &str| record.tasks.get(t).is_some_and(|r| r.carried_over);
        assert!(kept("list_tables") && kept("fixed[a]"));
        assert!(!kept("fixed[b]") && !kept("fixed"));
        // Read again from the kept upstream's values: both iterations run again.
        assert_eq!(
            record.tasks["copy_table"].iterations,
            ["copy_table[orders]", "copy_table[returns]"]
        );
        for again in ["copy_table[orders]", "copy_table[returns]", "fixed[b]"] {
            assert_eq!(record.tasks[again].attempts.len(), 1, "{again}");
            assert_eq!(record.tasks[again].state, Some(Final::Succeeded), "{again}");
        }
    });
}
