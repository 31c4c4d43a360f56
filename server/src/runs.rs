//! Real runs: the core scheduling state machine driven against a Livy session through the
//! driver agent, every decision recorded in the run history before it is carried out.
//!
//! One run = one Spark session (created for the run and deleted after it). The loop is:
//! carry out the machine's commands, sleep until the next poll or deadline (or a cancel), feed
//! the machine what the agent reports, deadlines that passed, and capacity changes.

use crate::agent::{Agent, NotebookLaunch, NotebookState, NotebookUpdate, PollInterval};
use crate::fs_sources::{DiskSources, ReadError};
use crate::history::{AttemptOutcome, History, RunEvent, RunStatus, StoredEvent, TaskError};
use crate::livy::wire::{CreateSession, Kind};
use crate::livy::SessionId;
use crate::run_params::{self, Overrides};
use spool_core::dag::{load_with_notebooks, Plan, TaskId, TaskKind};
use spool_core::diag::Diagnostic;
use spool_core::notebook::{self, Cell, Format};
use spool_core::sched::{Admission, Command, Event, Machine, Policy};
use spool_core::source::Sources;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a new Spark session may take to become idle.
const SESSION_START_LIMIT: Duration = Duration::from_secs(600);
/// Session re-creations per run when `recreate_session = true`.
const MAX_SESSION_RECREATIONS: u32 = 3;
/// Consecutive failed polls of a session that still looks alive before its notebooks are
/// given up as failed.
const MAX_POLL_FAILURES: u32 = 5;
/// Runs executing at once in one process.
const MAX_ACTIVE_RUNS: usize = 16;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The pipeline file, relative to the pipelines folder.
    pub file: String,
    /// Overrides: `key` (every notebook declaring that parameter) or `notebook.key`.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Re-run only what did not succeed in this earlier run, with its overrides (`params` on
    /// top).
    pub resume: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the pipeline has errors")]
    Invalid(Vec<Diagnostic>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Where runs get their Spark sessions.
pub struct SparkTarget {
    pub agent: Arc<Agent>,
    pub policy: Policy,
    /// Run in this long-lived Livy session (found by name, created if missing, never deleted)
    /// instead of a session per run; one run at a time then, since a session has one poller.
    pub session_name: Option<String>,
}

struct ActiveRun {
    cancel: watch::Sender<bool>,
    done: watch::Receiver<Option<RunStatus>>,
}

/// Starts runs, tracks the ones in progress, and tells listeners when a run's history grows.
pub struct RunManager {
    history: Arc<History>,
    pipelines_dir: PathBuf,
    spark: SparkTarget,
    active: Mutex<HashMap<i64, ActiveRun>>,
    /// Per run: the sequence number of its newest event, for live streams.
    notify: Mutex<HashMap<i64, watch::Sender<i64>>>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl RunManager {
    pub fn new(history: Arc<History>, pipelines_dir: PathBuf, spark: SparkTarget) -> Arc<Self> {
        Arc::new(RunManager {
            history,
            pipelines_dir,
            spark,
            active: Mutex::new(HashMap::new()),
            notify: Mutex::new(HashMap::new()),
        })
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the request, records the run and starts it in the background; returns its id.
    pub async fn start(self: &Arc<Self>, req: RunRequest) -> Result<i64, StartError> {
        let in_progress = {
            let mut active = Self::lock(&self.active);
            // Finished runs are kept until the next start, so that their status can be read.
            active.retain(|_, r| r.done.borrow().is_none());
            active.len()
        };
        if in_progress > 0 {
            if let Some(name) = &self.spark.session_name {
                return Err(StartError::BadRequest(format!(
                    "the Spark session `{name}` is busy with another run; wait for it to finish"
                )));
            }
        }
        if in_progress >= MAX_ACTIVE_RUNS {
            return Err(StartError::BadRequest(format!(
                "{MAX_ACTIVE_RUNS} runs are already in progress; wait for one to finish"
            )));
        }
        let sources = DiskSources::new(&self.pipelines_dir).map_err(anyhow::Error::from)?;
        if !sources.exists(&req.file) {
            return Err(StartError::NotFound(format!("no pipeline `{}`", req.file)));
        }
        // Notebooks are parsed too: one that cannot run fails the start, not an attempt.
        let loaded = load_with_notebooks(&req.file, &sources);
        let plan = loaded.plan.ok_or(StartError::Invalid(loaded.diagnostics))?;
        let (params, previous) = match req.resume {
            None => (req.params, HashMap::new()),
            Some(old) => {
                let run = self
                    .history
                    .run(old)?
                    .ok_or_else(|| StartError::NotFound(format!("no run {old} to resume")))?;
                let old_plan = match self.history.events(old, None)?.into_iter().next() {
                    Some(StoredEvent {
                        event: RunEvent::RunStarted { plan, .. },
                        ..
                    }) => plan,
                    _ => serde_json::Value::Null,
                };
                let resumed = run_params::resume(&run, &old_plan, &req.file, &plan, &req.params)
                    .map_err(StartError::BadRequest)?;
                (resumed.params, resumed.previous)
            }
        };
        let overrides = Overrides::parse(&plan, &params).map_err(StartError::BadRequest)?;
        let started = RunEvent::RunStarted {
            pipeline: plan.name.clone(),
            file: req.file.clone(),
            params,
            resumed_from: req.resume,
            plan: serde_json::to_value(&plan).map_err(anyhow::Error::from)?,
        };
        let id = self.history.create_run(&started, now_ms())?;
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(None);
        Self::lock(&self.active).insert(
            id,
            ActiveRun {
                cancel: cancel_tx,
                done: done_rx,
            },
        );
        let me = self.clone();
        let machine = Machine::resume(
            &plan,
            self.spark.policy,
            Admission::of_pool(&plan.pool),
            &previous,
        );
        tokio::spawn(async move {
            let mut exec = Execution {
                id,
                plan,
                overrides,
                machine,
                manager: me.clone(),
                t0: Instant::now(),
                session: None,
                created_sessions: Vec::new(),
                sessions_opened: 0,
                running: HashSet::new(),
                capacity: None,
                deferred: Vec::new(),
                cancelling: false,
            };
            let status = exec.run(cancel_rx).await;
            exec.close_sessions().await;
            let _ = done_tx.send(Some(status));
        });
        Ok(id)
    }

    /// Asks a run in progress to stop; false when it is not in progress.
    pub fn cancel(&self, id: i64) -> bool {
        Self::lock(&self.active)
            .get(&id)
            .filter(|r| r.done.borrow().is_none())
            .is_some_and(|r| r.cancel.send(true).is_ok())
    }

    /// The final status of a run of this process once it has finished; `None` before.
    pub fn wait_now(&self, id: i64) -> Option<RunStatus> {
        Self::lock(&self.active)
            .get(&id)
            .and_then(|r| *r.done.borrow())
    }

    /// A receiver that changes whenever the run gets a new event (for live streams).
    pub fn subscribe(&self, id: i64) -> Option<watch::Receiver<i64>> {
        let mut map = Self::lock(&self.notify);
        Some(
            map.entry(id)
                .or_insert_with(|| watch::channel(-1).0)
                .subscribe(),
        )
    }

    /// Records an event (before it is acted on) and wakes the run's listeners.
    fn record(&self, id: i64, event: RunEvent) {
        match self.history.append(id, &event, now_ms()) {
            Ok(seq) => {
                if let Some(tx) = Self::lock(&self.notify).get(&id) {
                    tx.send_replace(seq);
                }
            }
            // The run goes on: losing history is bad, stopping Spark work midway is worse.
            Err(e) => eprintln!("run {id}: cannot record {event:?}: {e:#}"),
        }
    }
}

/// A notebook file as cells, or the attempt's error: unreadable, or not a notebook (with every
/// diagnostic, cell and line).
pub fn read_cells(sources: &DiskSources, path: &str) -> Result<Vec<Cell>, TaskError> {
    let fail = TaskError::spool;
    let text = sources.read_checked(path).map_err(|e| match e {
        ReadError::TooLarge(why) => fail("NotebookTooLarge", why),
        ReadError::Unreadable(why) => {
            fail("NotebookNotFound", format!("cannot read `{path}`: {why}"))
        }
    })?;
    let format = Format::from_path(path)
        .ok_or_else(|| fail("NotebookFormatError", format!("`{path}` is not a notebook")))?;
    let parsed = notebook::parse(path, &text, format);
    if spool_core::diag::has_errors(&parsed.diagnostics) {
        let msgs: Vec<String> = parsed.diagnostics.iter().map(|d| d.to_string()).collect();
        return Err(fail("NotebookFormatError", msgs.join("\n")));
    }
    Ok(parsed.cells)
}

/// The state of one run in progress.
struct Execution {
    id: i64,
    plan: Plan,
    overrides: Overrides,
    machine: Machine,
    manager: Arc<RunManager>,
    t0: Instant,
    session: Option<SessionId>,
    /// Sessions to delete when the run ends (not a named session).
    created_sessions: Vec<SessionId>,
    /// Sessions this run has used so far (the first, then re-creations).
    sessions_opened: u32,
    /// Attempts started on the agent and not yet reported finished.
    running: HashSet<(TaskId, u32)>,
    capacity: Option<u32>,
    /// Commands the machine gave while a command was being carried out.
    deferred: Vec<Command>,
    cancelling: bool,
}

impl Execution {
    fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    fn record(&self, event: RunEvent) {
        self.manager.record(self.id, event);
    }

    /// The live Spark application has `cores` slots: tells the machine when that is news.
    fn capacity_is(&mut self, cores: u32) -> Vec<Command> {
        if self.capacity == Some(cores) {
            return Vec::new();
        }
        self.capacity = Some(cores);
        self.machine
            .handle(Event::CapacityChanged { slots: cores }, self.now())
    }

    /// Records an attempt that ended without a report from the notebook (Spool stopped or
    /// lost it), with the reason.
    fn record_ended(&self, task: TaskId, attempt: u32, outcome: AttemptOutcome, error: TaskError) {
        self.record(RunEvent::TaskFinished {
            task: self.task_id(task),
            attempt,
            outcome,
            error: Some(error),
            output: None,
            exit_value: None,
            metrics: None,
        });
    }

    fn agent(&self) -> &Agent {
        &self.manager.spark.agent
    }

    fn task_id(&self, t: TaskId) -> String {
        self.plan.tasks[t].id.clone()
    }

    /// The notebook's id for the agent: prefixed by the run, so that a session shared by
    /// successive runs (a named session) never confuses one run's attempts with another's.
    fn agent_id(&self, t: TaskId) -> String {
        format!("run{}/{}", self.id, self.plan.tasks[t].id)
    }

    async fn run(&mut self, mut cancel: watch::Receiver<bool>) -> RunStatus {
        // The session first, so that notebook times do not include Spark's start-up and
        // admission uses the real capacity from the start. A failure here is not final: each
        // start tries again, and fails its attempt with the cause (retries apply).
        let needs_spark = (0..self.plan.tasks.len()).any(|t| {
            !self.machine.is_carried_over(t) && self.plan.tasks[t].kind == TaskKind::Notebook
        });
        if needs_spark {
            if let Err(why) = self.ensure_session().await {
                self.record(RunEvent::SessionChanged {
                    session: "-".into(),
                    state: "error".into(),
                    message: Some(why),
                    capacity: None,
                });
            }
        }
        let mut pending = std::mem::take(&mut self.deferred);
        pending.extend(self.machine.handle(Event::RunStarted, self.now()));
        let mut poll = PollInterval::default();
        let mut changed = true;
        let mut poll_failures = 0;
        let mut cancel_open = true;
        loop {
            while !pending.is_empty() {
                for cmd in std::mem::take(&mut pending) {
                    if let Some(status) = self.carry_out(cmd, &mut pending).await {
                        return status;
                    }
                    pending.append(&mut self.deferred);
                }
            }
            let mut wait = poll.next(changed);
            if let Some(d) = self.machine.next_deadline() {
                wait = wait.min(Duration::from_secs_f64((d.at - self.now()).max(0.0)));
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                res = cancel.changed(), if cancel_open && !self.cancelling => {
                    // A closed channel can no longer ask for anything: stop listening to it.
                    cancel_open = res.is_ok();
                    if cancel_open && *cancel.borrow() {
                        self.record(RunEvent::CancelRequested);
                        self.cancelling = true;
                        pending.extend(self.machine.handle(Event::CancelRequested, self.now()));
                    }
                    continue;
                }
            }
            changed = false;
            while let Some(d) = self.machine.next_deadline().filter(|d| d.at <= self.now()) {
                if let Event::NotebookTimedOut { task, attempt } = d.event {
                    if self.running.remove(&(task, attempt)) {
                        let limit = self.plan.tasks[task].settings.timeout_secs;
                        self.record_ended(
                            task,
                            attempt,
                            AttemptOutcome::TimedOut,
                            TaskError::spool(
                                "Timeout",
                                format!("did not finish within timeout_secs = {limit}"),
                            ),
                        );
                    }
                }
                pending.extend(self.machine.handle(d.event, self.now()));
                changed = true;
            }
            if self.running.is_empty() {
                continue;
            }
            let Some(session) = self.session else {
                continue;
            };
            match self.agent().poll(session).await {
                Ok(reply) => {
                    poll_failures = 0;
                    let cmds = self.capacity_is(reply.capacity.total_cores);
                    pending.extend(cmds);
                    for update in reply.updates {
                        changed |= self.on_update(update, &mut pending);
                    }
                }
                Err(e) => {
                    poll_failures += 1;
                    let dead = match self.agent().client().get_session(session).await {
                        Ok(s) => s
                            .state
                            .is_finished()
                            .then(|| format!("the Spark session is {}", s.state)),
                        Err(err) if err.is_not_found() => {
                            Some("the Spark session is gone".to_string())
                        }
                        Err(_) => None,
                    };
                    if let Some(why) = dead.or_else(|| {
                        (poll_failures >= MAX_POLL_FAILURES)
                            .then(|| format!("the Spark session stopped answering: {e}"))
                    }) {
                        self.session_lost(session, &why, &mut pending);
                        changed = true;
                    }
                }
            }
        }
    }

    /// Carries out one command; returns the run's final status when the run is over.
    async fn carry_out(&mut self, cmd: Command, pending: &mut Vec<Command>) -> Option<RunStatus> {
        if let Some(event) = RunEvent::of_command(&self.plan, &cmd) {
            self.record(event);
        }
        match cmd {
            Command::StartNotebook { task, attempt, .. } => {
                match self.start_notebook(task, attempt).await {
                    Ok(()) => {
                        self.running.insert((task, attempt));
                        pending.extend(
                            self.machine
                                .handle(Event::NotebookStarted { task, attempt }, self.now()),
                        );
                    }
                    Err(error) => {
                        self.record_ended(task, attempt, AttemptOutcome::Failed, error);
                        pending.extend(
                            self.machine
                                .handle(Event::NotebookFailed { task, attempt }, self.now()),
                        );
                    }
                }
            }
            Command::CancelNotebook { task, attempt } => {
                if let Some(session) = self.session {
                    if let Err(e) = self
                        .agent()
                        .cancel(session, &self.agent_id(task), attempt)
                        .await
                    {
                        eprintln!(
                            "run {}: cancel of {} failed: {e}",
                            self.id,
                            self.task_id(task)
                        );
                    }
                }
            }
            Command::FinishRun { outcome } => return Some(outcome.into()),
            // Recorded above; nothing else to do.
            Command::ScheduleRetry { .. } | Command::Settle { .. } => {}
        }
        None
    }

    /// Reads and parses the notebook, makes sure there is a session, and starts the attempt.
    async fn start_notebook(&mut self, task: TaskId, attempt: u32) -> Result<(), TaskError> {
        let fail = TaskError::spool;
        let sources = DiskSources::new(&self.manager.pipelines_dir)
            .map_err(|e| fail("NotebookNotFound", e.to_string()))?;
        let cells = read_cells(&sources, &self.plan.tasks[task].path)?;
        let session = self
            .ensure_session()
            .await
            .map_err(|e| fail("SparkSessionError", e))?;
        let settings = &self.plan.tasks[task].settings;
        let launch = NotebookLaunch {
            id: self.agent_id(task),
            attempt,
            cells,
            params: self.overrides.params_for(&self.plan, task),
            isolated: settings.isolated,
            // The machine owns timeouts (it cancels and retries); the agent's own limit is a
            // backstop for a server that goes away.
            timeout: Some(Duration::from_secs(
                settings.timeout_secs.saturating_add(60),
            )),
        };
        self.agent()
            .start_notebook(session, &launch)
            .await
            .map(|_| ())
            .map_err(|e| {
                fail(
                    "SparkSessionError",
                    format!("could not start the notebook: {e}"),
                )
            })
    }

    /// The run's session, created (and the agent injected) on first use.
    async fn ensure_session(&mut self) -> Result<SessionId, String> {
        if let Some(s) = self.session {
            return Ok(s);
        }
        if self.sessions_opened > 0 {
            if !self.plan.pool.recreate_session {
                return Err("the run's Spark session died (set recreate_session = true in [pool] to start a new one)".into());
            }
            if self.sessions_opened > MAX_SESSION_RECREATIONS {
                return Err(format!(
                    "the Spark session died {} times; giving up",
                    self.sessions_opened
                ));
            }
        }
        self.sessions_opened += 1;
        let agent = self.manager.spark.agent.clone();
        let client = agent.client();
        let named = self.manager.spark.session_name.clone();
        let found = match &named {
            Some(name) => client
                .find_live_session(name)
                .await
                .map_err(|e| format!("could not look for the Spark session `{name}`: {e}"))?,
            None => None,
        };
        let (id, state) = match found {
            Some(s) => (SessionId(s.id), s.state.to_string()),
            None => {
                let pool = &self.plan.pool;
                let request = CreateSession {
                    kind: Some(Kind::Pyspark),
                    name: Some(named.clone().unwrap_or_else(|| {
                        format!("spool-run-{}-{}", self.id, self.sessions_opened)
                    })),
                    num_executors: Some(pool.executors),
                    executor_cores: Some(pool.executor_cores),
                    conf: BTreeMap::from([(
                        "spark.scheduler.mode".to_string(),
                        serde_json::Value::from("FAIR"),
                    )]),
                    ..CreateSession::default()
                };
                let created = client
                    .create_session(&request)
                    .await
                    .map_err(|e| format!("could not create a Spark session: {e}"))?;
                // A named session outlives the run; the run's own sessions are deleted after it.
                if named.is_none() {
                    self.created_sessions.push(SessionId(created.id));
                }
                (SessionId(created.id), created.state.to_string())
            }
        };
        self.record(RunEvent::SessionChanged {
            session: id.0.to_string(),
            state,
            message: named.map(|n| format!("session `{n}`")),
            capacity: None,
        });
        let started = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let s = client
                .get_session(id)
                .await
                .map_err(|e| format!("lost the Spark session: {e}"))?;
            if s.state.is_finished() {
                return Err(format!(
                    "the Spark session ended {} while starting",
                    s.state
                ));
            }
            if s.state.as_str() == "idle" {
                break;
            }
            if started.elapsed() > SESSION_START_LIMIT {
                return Err(format!(
                    "the Spark session did not start within {} s",
                    SESSION_START_LIMIT.as_secs()
                ));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
        let capacity = self
            .agent()
            .inject(id)
            .await
            .map_err(|e| format!("could not load the Spool agent: {e}"))?;
        self.record(RunEvent::SessionChanged {
            session: id.0.to_string(),
            state: "idle".into(),
            message: Some(format!("{} executors", capacity.executors)),
            capacity: Some(capacity.total_cores),
        });
        self.session = Some(id);
        // Applied before the pending start: admission of later notebooks uses it.
        let cmds = self.capacity_is(capacity.total_cores);
        self.deferred.extend(cmds);
        Ok(id)
    }

    /// Feeds one agent report to the machine; true when something changed.
    fn on_update(&mut self, u: NotebookUpdate, pending: &mut Vec<Command>) -> bool {
        let prefix = format!("run{}/", self.id);
        let Some(task) =
            u.id.strip_prefix(&prefix)
                .and_then(|id| self.plan.index_of(id))
        else {
            return false;
        };
        if !u.state.is_finished() || !self.running.remove(&(task, u.attempt)) {
            return false;
        }
        let attempt = u.attempt;
        let (outcome, event) = match u.state {
            NotebookState::Succeeded => (
                AttemptOutcome::Succeeded,
                Event::NotebookSucceeded { task, attempt },
            ),
            NotebookState::Failed | NotebookState::Running => (
                AttemptOutcome::Failed,
                Event::NotebookFailed { task, attempt },
            ),
            NotebookState::Cancelled => (
                AttemptOutcome::Cancelled,
                Event::NotebookCancelled { task, attempt },
            ),
            NotebookState::TimedOut => (
                AttemptOutcome::TimedOut,
                Event::NotebookTimedOut { task, attempt },
            ),
        };
        let mut output = u.stdout;
        if !u.stderr.is_empty() {
            output.push_str("\n[stderr]\n");
            output.push_str(&u.stderr);
        }
        self.record(RunEvent::TaskFinished {
            task: self.task_id(task),
            attempt,
            outcome,
            error: u.error.map(|e| TaskError {
                ename: e.ename,
                evalue: e.evalue,
                traceback: e.traceback,
                cell: e.cell,
                line: e.line,
            }),
            output: (!output.is_empty()).then_some(output),
            exit_value: u.exit_value.map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }),
            metrics: u.metrics.and_then(|m| serde_json::to_value(m).ok()),
        });
        pending.extend(self.machine.handle(event, self.now()));
        true
    }

    /// The session died: its running notebooks failed with that cause; the next start makes a
    /// new session if the pool allows it.
    fn session_lost(&mut self, session: SessionId, why: &str, pending: &mut Vec<Command>) {
        self.record(RunEvent::SessionChanged {
            session: session.0.to_string(),
            state: "dead".into(),
            message: Some(why.to_string()),
            capacity: None,
        });
        self.session = None;
        let mut lost: Vec<(TaskId, u32)> = self.running.drain().collect();
        lost.sort_unstable();
        for (task, attempt) in lost {
            self.record_ended(
                task,
                attempt,
                AttemptOutcome::Failed,
                TaskError::spool("SparkSessionLost", why),
            );
            pending.extend(
                self.machine
                    .handle(Event::NotebookFailed { task, attempt }, self.now()),
            );
        }
    }

    /// Deletes the sessions this run created.
    async fn close_sessions(&mut self) {
        for s in std::mem::take(&mut self.created_sessions) {
            let _ = self.agent().client().delete_session(s).await;
        }
    }
}
