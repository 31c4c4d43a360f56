//! Real runs: the core scheduling state machine driven against a Spark session, every decision
//! recorded in the run history before it is carried out.
//!
//! `RunManager` (here) starts, cancels and stops runs; `driver` is the loop of one run;
//! `spark` is the seam to Spark (`LivySpark`, and an in-memory fake with scripted faults in
//! the tests).

mod driver;
#[cfg(test)]
pub(crate) mod fake;
pub mod spark;
#[cfg(test)]
pub(crate) mod tests;

use crate::fs_sources::{DiskSources, ReadError};
use crate::history::{History, RunEvent, RunStatus, TaskError};
use crate::livy::SessionId;
use crate::run_params;
use driver::{Execution, Kept};
use spark::{Spark, SparkError};
use spool_core::dag::{load_with_notebooks, Plan};
use spool_core::diag::Diagnostic;
use spool_core::model::Outcome;
use spool_core::notebook::{self, Cell, Format};
use spool_core::overlap::{Decision, RunQueue};
use spool_core::params::{bind, TaskValues};
use spool_core::runlog::Trigger;
use spool_core::sched::Policy;
use spool_core::source::Sources;
use spool_core::template::RunInfo;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Why runs are cancelled when Spool stops.
const STOPPING: &str = "Spool is stopping";
/// Runs executing at once in one process; more wait in the queue, pipelines taking turns.
const MAX_ACTIVE_RUNS: usize = 16;
/// Why a run is cancelled for a newer run of its pipeline.
const SUPERSEDED: &str = "a newer run of the pipeline replaces it (on_overlap = cancel_running)";
/// Deletes of a session before it is recorded as leaked, with waits doubling from the first.
const DELETE_TRIES: u32 = 4;
const DELETE_FIRST_WAIT: Duration = Duration::from_millis(500);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The pipeline file, relative to the pipelines folder.
    pub file: String,
    /// Overrides: `key` (every notebook declaring that parameter) or `notebook.key`.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Re-run only what did not succeed in this earlier run.
    pub resume: Option<i64>,
    /// With `resume`, a repair: these tasks (or sub-pipelines) and everything downstream of
    /// them run again even if they succeeded.
    pub rerun: Vec<String>,
    /// What asks for the run; a scheduled run's slot is what its `run.…` references read.
    pub trigger: Trigger,
    /// The name of the API token that asks for it, for the run log.
    pub started_by: Option<String>,
}

impl RunRequest {
    /// When the run is triggered: its scheduled slot, or now.
    fn trigger_ms(&self) -> i64 {
        self.trigger.scheduled_ms.unwrap_or_else(now_ms)
    }
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

/// Diagnostics a refused start's reason names at most (the rest are counted).
const REASON_DIAGNOSTICS: usize = 5;

impl StartError {
    /// Why, in full: a pipeline's errors are listed (file:line:col: message), as many as
    /// [`REASON_DIAGNOSTICS`].
    pub fn reason(&self) -> String {
        let StartError::Invalid(diagnostics) = self else {
            return self.to_string();
        };
        let errors: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.severity == spool_core::diag::Severity::Error)
            .map(ToString::to_string)
            .collect();
        let mut lines = vec![format!("{self}:")];
        lines.extend(errors.iter().take(REASON_DIAGNOSTICS).cloned());
        if errors.len() > REASON_DIAGNOSTICS {
            lines.push(format!("(and {} more)", errors.len() - REASON_DIAGNOSTICS));
        }
        lines.join("\n")
    }
}

/// Where runs get their Spark sessions.
pub struct SparkTarget {
    pub spark: Arc<dyn Spark>,
    pub policy: Policy,
    /// Run in this long-lived Livy session (found by name, created if missing, never deleted)
    /// instead of a session per run; one run at a time then, since a session has one poller.
    pub session_name: Option<String>,
    /// The kinds of secret references this process resolves (`--secret-sources`).
    pub secret_sources: crate::secrets::SecretSources,
}

/// What a run in progress is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Control {
    Go,
    /// Cancel (with why, when it is not a user's request; who asked, when they are named):
    /// running notebooks are cancelled and confirmed ended.
    Cancel {
        reason: Option<&'static str>,
        by: Option<String>,
    },
    /// Cancel, and stop waiting for confirmations: delete the run's sessions now (a server that
    /// stops within a bounded time).
    CancelNow,
    /// Stop driving the run and leave its notebooks running, to be resumed later.
    Detach,
}

struct ActiveRun {
    control: watch::Sender<Control>,
    done: watch::Receiver<Option<RunStatus>>,
}

/// A run that waits for its turn, checked and recorded.
struct Waiting {
    req: RunRequest,
    prepared: Prepared,
}

struct Active {
    runs: HashMap<i64, ActiveRun>,
    /// Which runs are in progress and which wait, per pipeline: core's rule.
    queue: RunQueue,
    waiting: HashMap<i64, Waiting>,
}

/// Starts runs, tracks the ones in progress, and tells listeners when a run's history grows.
pub struct RunManager {
    history: Arc<History>,
    pipelines_dir: PathBuf,
    spark: SparkTarget,
    active: Mutex<Active>,
    /// Held while a decision of the queue is recorded (queued, admitted, withdrawn), so that
    /// a run's log has them in the order they were decided.
    decisions: tokio::sync::Mutex<()>,
    /// Per run: the sequence number of its newest event, for live streams.
    notify: Mutex<HashMap<i64, watch::Sender<i64>>>,
    /// `[[notify]]` webhooks: their client, the tasks sending them, and the web app's address
    /// for the links they carry (known to `spool serve`).
    webhooks: reqwest::Client,
    notifications: Mutex<tokio::task::JoinSet<()>>,
    web_address: std::sync::OnceLock<String>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A run recorded and ready to be driven.
struct Begun {
    id: i64,
    exec: Execution,
    control: watch::Receiver<Control>,
    done: watch::Sender<Option<RunStatus>>,
}

impl Begun {
    /// Drives the run to its end, then says so to whoever waits; returns the execution.
    async fn drive(mut self) -> Execution {
        let status = self.exec.run(self.control).await;
        let _ = self.done.send(Some(status));
        self.exec
    }
}

/// What a resume keeps of the run it resumes.
struct Resumed {
    /// What its `run.…` references read.
    run: RunInfo,
    /// What its succeeded tasks published, by task id.
    values: HashMap<String, TaskValues>,
    /// What its succeeded tasks left in their Spark session, by task id.
    session_state: HashMap<String, Vec<String>>,
}

/// A checked request: the plan and everything the run needs from the history.
struct Prepared {
    plan: Plan,
    /// The run's parameter overrides (a resume's merged with the new ones).
    params: BTreeMap<String, serde_json::Value>,
    resumed: Option<Resumed>,
    previous: HashMap<String, Outcome>,
}

impl RunManager {
    pub fn new(history: Arc<History>, pipelines_dir: PathBuf, spark: SparkTarget) -> Arc<Self> {
        Arc::new(RunManager {
            history,
            pipelines_dir,
            active: Mutex::new(Active {
                runs: HashMap::new(),
                // A named session has one poller: its runs go one at a time.
                queue: RunQueue::new(if spark.session_name.is_some() {
                    1
                } else {
                    MAX_ACTIVE_RUNS
                }),
                waiting: HashMap::new(),
            }),
            spark,
            decisions: tokio::sync::Mutex::new(()),
            notify: Mutex::new(HashMap::new()),
            webhooks: crate::notify::client(),
            notifications: Mutex::new(tokio::task::JoinSet::new()),
            web_address: std::sync::OnceLock::new(),
        })
    }

    /// The web app's address (`http://127.0.0.1:8080/`): notifications link to the run's page.
    pub fn set_web_address(&self, address: String) {
        let _ = self.web_address.set(address);
    }

    /// Sends run `id`'s `[[notify]]` entries `to` about `event`, in the background; each
    /// outcome is recorded in the run's log. A long-running notice is dropped if the run has
    /// ended by then.
    pub(crate) fn send_notifications(
        self: &Arc<Self>,
        id: i64,
        to: Vec<spool_core::notify::Notify>,
        event: spool_core::notify::NotifyOn,
    ) {
        if to.is_empty() {
            return;
        }
        let me = self.clone();
        let task = async move {
            let history = me.history.clone();
            let record = match tokio::task::spawn_blocking(move || history.run(id)).await {
                Ok(Ok(Some(record))) => record,
                _ => return,
            };
            if event == spool_core::notify::NotifyOn::LongRunning
                && record.status != RunStatus::Running
            {
                return;
            }
            let address = me.web_address.get().map(String::as_str);
            let news = spool_core::notify::RunNews::of(&record, event, now_ms(), address);
            for n in to {
                let sent = crate::notify::deliver(&me.webhooks, &n, &news.body(n.format)).await;
                me.record(
                    id,
                    RunEvent::Notified {
                        event,
                        target: n.target(),
                        tries: sent.tries,
                        status: sent.status,
                        error: sent.error,
                    },
                )
                .await;
            }
        };
        let mut sending = Self::lock(&self.notifications);
        // Deliveries that ended are dropped here: a server never waits for them, and each
        // would otherwise stay in the set for as long as the server runs.
        while sending.try_join_next().is_some() {}
        sending.spawn(task);
    }

    /// Waits for the notifications being sent (`spool run` before it exits); each is bounded
    /// by its tries and their timeouts.
    pub async fn notifications_sent(&self) {
        let mut sending = std::mem::take(&mut *Self::lock(&self.notifications));
        while sending.join_next().await.is_some() {}
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the request and records the run; then, as its pipeline's `on_overlap` and the
    /// server's limit decide, starts it in the background, queues it, cancels the runs it
    /// replaces, or skips it (recorded cancelled, with why). Returns its id.
    pub async fn start(self: &Arc<Self>, req: RunRequest) -> Result<i64, StartError> {
        let (id, prepared) = self.record_start(&req).await?;
        let rule = prepared.plan.concurrency;
        // Held until the decision is recorded: a run that ends meanwhile admits the next
        // one only after, so that `queued` comes before `admitted` in every log.
        let decided = self.decisions.lock().await;
        let decision = Self::lock(&self.active).queue.submit(&req.file, id, rule);
        let reason = match decision {
            Decision::Start => {
                drop(decided);
                return match self.launch(id, &req, prepared) {
                    Ok(begun) => {
                        self.spawn_run(begun);
                        Ok(id)
                    }
                    Err(e) => {
                        self.failed_to_launch(id, &e).await;
                        Err(e)
                    }
                };
            }
            Decision::Skip(reason) => {
                let now = now_ms();
                let skipped = RunEvent::CancelRequested {
                    reason: Some(reason),
                    by: None,
                };
                let finished = RunEvent::RunFinished {
                    status: RunStatus::Cancelled,
                };
                self.record_all(id, vec![(skipped, now), (finished, now)])
                    .await;
                return Ok(id);
            }
            Decision::Queue(reason) => reason,
            Decision::CancelRunning(runs, reason) => {
                for run in runs {
                    self.control(
                        run,
                        Control::Cancel {
                            reason: Some(SUPERSEDED),
                            by: None,
                        },
                    );
                }
                reason
            }
        };
        Self::lock(&self.active).waiting.insert(
            id,
            Waiting {
                req: req.clone(),
                prepared,
            },
        );
        self.record(id, RunEvent::RunQueued { reason }).await;
        Ok(id)
    }

    /// Drives a run in the background; when it ends, the runs whose turn it was start.
    fn spawn_run(self: &Arc<Self>, begun: Begun) {
        let me = self.clone();
        tokio::spawn(async move {
            let id = begun.id;
            begun.drive().await;
            me.finished(id).await;
        });
    }

    /// Run `id` of this process ended, or left the queue: starts the runs whose turn it is.
    async fn finished(self: &Arc<Self>, id: i64) {
        let _decided = self.decisions.lock().await;
        let mut ended = vec![id];
        while let Some(id) = ended.pop() {
            let admitted: Vec<(i64, Option<Waiting>)> = {
                let mut active = Self::lock(&self.active);
                let next = active.queue.ended(id);
                next.into_iter()
                    .map(|(_, run)| (run, active.waiting.remove(&run)))
                    .collect()
            };
            for (run, waiting) in admitted {
                let Some(Waiting { req, prepared }) = waiting else {
                    continue;
                };
                self.record(run, RunEvent::RunAdmitted).await;
                match self.launch(run, &req, prepared) {
                    Ok(begun) => self.spawn_run(begun),
                    Err(e) => {
                        self.failed_to_launch(run, &e).await;
                        // Its place is free again.
                        ended.push(run);
                    }
                }
            }
        }
    }

    /// A start that nobody waits for (the scheduler's), refused before its run was recorded
    /// (the pipeline has errors, a file it needs is gone, its values do not bind): recorded
    /// as a run of `pipeline` that failed, with why, so that the runs list shows it and `notify`
    /// (the `[[notify]]` entries still readable from the file) is told. Its plan is `null`:
    /// there was none. Resuming it once the file is fixed runs it for its trigger's time.
    pub async fn record_refused_start(
        self: &Arc<Self>,
        req: &RunRequest,
        pipeline: &str,
        e: &StartError,
        notify: &[spool_core::notify::Notify],
    ) -> anyhow::Result<i64> {
        let started = RunEvent::RunStarted {
            pipeline: pipeline.to_string(),
            file: req.file.clone(),
            params: req.params.clone(),
            resumed_from: None,
            plan: serde_json::Value::Null,
            trigger: Some(req.trigger.clone()),
            started_by: req.started_by.clone(),
        };
        let history = self.history.clone();
        let id =
            tokio::task::spawn_blocking(move || history.create_run(&started, now_ms())).await??;
        self.failed_to_launch(id, e).await;
        let event = spool_core::notify::NotifyOn::Failed;
        self.send_notifications(id, crate::notify::wanting(notify, event), event);
        Ok(id)
    }

    /// A recorded run that could not be started ends failed, with why.
    async fn failed_to_launch(&self, id: i64, e: &StartError) {
        let reason = format!("the run could not start: {}", e.reason());
        tracing::error!(run = id, "{reason}");
        let now = now_ms();
        let why = RunEvent::CancelRequested {
            reason: Some(reason),
            by: None,
        };
        let failed = RunEvent::RunFinished {
            status: RunStatus::Failed,
        };
        self.record_all(id, vec![(why, now), (failed, now)]).await;
    }

    /// Checks the request and records the run (its first event); the checked request.
    async fn record_start(
        self: &Arc<Self>,
        req: &RunRequest,
    ) -> Result<(i64, Prepared), StartError> {
        let me = self.clone();
        let request = req.clone();
        let prepared = tokio::task::spawn_blocking(move || me.prepare(&request))
            .await
            .map_err(anyhow::Error::from)??;
        let started = RunEvent::RunStarted {
            pipeline: prepared.plan.name.clone(),
            file: req.file.clone(),
            params: prepared.params.clone(),
            resumed_from: req.resume,
            plan: serde_json::to_value(&prepared.plan).map_err(anyhow::Error::from)?,
            trigger: Some(req.trigger.clone()),
            started_by: req.started_by.clone(),
        };
        let history = self.history.clone();
        let id = tokio::task::spawn_blocking(move || history.create_run(&started, now_ms()))
            .await
            .map_err(anyhow::Error::from)??;
        Ok((id, prepared))
    }

    /// Checks, records and makes ready to drive a run, outside the queue (the executor's
    /// tests drive runs themselves).
    #[cfg(test)]
    async fn begin(self: &Arc<Self>, req: RunRequest) -> Result<Begun, StartError> {
        let (id, prepared) = self.record_start(&req).await?;
        self.launch(id, &req, prepared)
    }

    /// A recorded run, ready to be driven.
    fn launch(
        self: &Arc<Self>,
        id: i64,
        req: &RunRequest,
        prepared: Prepared,
    ) -> Result<Begun, StartError> {
        // Checked in `prepare` already; only `run.id` is new. A resume keeps the first run's
        // `run.…`, so that what it re-runs computes the same day as what it keeps.
        let trigger_ms = req.trigger_ms();
        let run = prepared
            .resumed
            .as_ref()
            .map_or(RunInfo { id, trigger_ms }, |r| r.run);
        let bound = bind(&prepared.plan, &prepared.params, run).map_err(StartError::BadRequest)?;
        let (control_tx, control) = watch::channel(Control::Go);
        let (done, done_rx) = watch::channel(None);
        {
            let mut active = Self::lock(&self.active);
            // Finished runs are kept until the next start, so that their status can be read.
            active.runs.retain(|_, r| r.done.borrow().is_none());
            active.runs.insert(
                id,
                ActiveRun {
                    control: control_tx,
                    done: done_rx,
                },
            );
        }
        let no_state = HashMap::new();
        let machine = spool_core::repair::resumed_machine(
            &prepared.plan,
            self.spark.policy,
            &prepared.previous,
            prepared
                .resumed
                .as_ref()
                .map_or(&no_state, |r| &r.session_state),
            self.spark.session_name.is_some(),
        );
        let mut kept = Kept::default();
        if let Some(r) = &prepared.resumed {
            for (t, task) in prepared.plan.tasks.iter().enumerate() {
                let state = r.session_state.get(&task.id);
                if machine.is_carried_over(t) {
                    if let Some(values) = r.values.get(&task.id) {
                        kept.values.insert(t, values.clone());
                    }
                    if let Some(state) = state {
                        kept.session_state.push((t, state.clone()));
                    }
                } else if machine.is_rebuilt(t) {
                    kept.rebuilt.push((t, state.cloned().unwrap_or_default()));
                }
            }
        }
        let exec = Execution::new(
            id,
            prepared.plan,
            bound,
            kept,
            machine,
            self.clone(),
            req.resume,
        );
        Ok(Begun {
            id,
            exec,
            control,
            done,
        })
    }

    /// Loads the plan, resolves parameter overrides and reads what a resume keeps.
    fn prepare(&self, req: &RunRequest) -> Result<Prepared, StartError> {
        let sources = DiskSources::new(&self.pipelines_dir).map_err(anyhow::Error::from)?;
        if !sources.exists(&req.file) {
            return Err(StartError::NotFound(format!("no pipeline `{}`", req.file)));
        }
        // Notebooks are parsed too: one that cannot run fails the start, not an attempt.
        let loaded = load_with_notebooks(&req.file, &sources);
        let plan = loaded.plan.ok_or(StartError::Invalid(loaded.diagnostics))?;
        let (params, previous, resumed) = match req.resume {
            None if !req.rerun.is_empty() => {
                return Err(StartError::BadRequest(
                    "re-running tasks repairs an earlier run: name the run to resume".into(),
                ))
            }
            None => (req.params.clone(), HashMap::new(), None),
            Some(old) => {
                let run = self
                    .history
                    .run(old)?
                    .ok_or_else(|| StartError::NotFound(format!("no run {old} to resume")))?;
                let old_plan = run_params::started_plan(&self.history, old)?;
                let resumed =
                    run_params::resume(&run, &old_plan, &req.file, &plan, &req.params, &req.rerun)
                        .map_err(StartError::BadRequest)?;
                let values = run
                    .tasks
                    .iter()
                    .filter_map(|(id, t)| Some((id.clone(), t.published()?)))
                    .collect();
                let session_state = spool_core::repair::session_state(&run);
                (
                    resumed.params,
                    resumed.previous,
                    Some(Resumed {
                        run: run.run_info(),
                        values,
                        session_state,
                    }),
                )
            }
        };
        // Every value is checked before the run is recorded; the run's id is not known yet.
        let run = resumed.as_ref().map_or(
            RunInfo {
                id: 0,
                trigger_ms: req.trigger_ms(),
            },
            |r| r.run,
        );
        bind(&plan, &params, run).map_err(StartError::BadRequest)?;
        Ok(Prepared {
            plan,
            params,
            previous,
            resumed,
        })
    }

    fn control(&self, id: i64, control: Control) -> bool {
        Self::lock(&self.active)
            .runs
            .get(&id)
            .filter(|r| r.done.borrow().is_none())
            .is_some_and(|r| r.control.send(control).is_ok())
    }

    /// Asks a run in progress to stop, or takes a queued one out of the queue (recorded
    /// cancelled); false when it is neither. `by`: the name of who asks, for the run log.
    pub async fn cancel(self: &Arc<Self>, id: i64, by: Option<String>) -> bool {
        let asked = Control::Cancel {
            reason: None,
            by: by.clone(),
        };
        if self.control(id, asked) {
            return true;
        }
        self.withdraw(id, None, by).await
    }

    /// Takes run `id` out of the queue and records it cancelled (with why, when it was not a
    /// user's request); false when it was not waiting.
    async fn withdraw(self: &Arc<Self>, id: i64, reason: Option<&str>, by: Option<String>) -> bool {
        let decided = self.decisions.lock().await;
        if Self::lock(&self.active).waiting.remove(&id).is_none() {
            return false;
        }
        let now = now_ms();
        let cancel = RunEvent::CancelRequested {
            reason: reason.map(str::to_string),
            by,
        };
        let finished = RunEvent::RunFinished {
            status: RunStatus::Cancelled,
        };
        self.record_all(id, vec![(cancel, now), (finished, now)])
            .await;
        drop(decided);
        self.finished(id).await;
        true
    }

    /// The final status of a run of this process once it has finished; `None` before.
    pub fn wait_now(&self, id: i64) -> Option<RunStatus> {
        Self::lock(&self.active)
            .runs
            .get(&id)
            .and_then(|r| *r.done.borrow())
    }

    /// Stops every run in progress before the process exits: cancelled (their sessions
    /// deleted; after `limit` without confirmations the sessions are deleted anyway), or with
    /// `keep_runs` left running in Spark and recorded as interrupted, to be resumed.
    pub async fn shutdown(self: &Arc<Self>, keep_runs: bool, limit: Duration) {
        // Queued runs end first, so that none starts while the others stop.
        let queued: Vec<i64> = Self::lock(&self.active).waiting.keys().copied().collect();
        for id in queued {
            self.withdraw(id, Some(STOPPING), None).await;
        }
        let ids: Vec<i64> = Self::lock(&self.active).runs.keys().copied().collect();
        let first = if keep_runs {
            Control::Detach
        } else {
            Control::Cancel {
                reason: Some(STOPPING),
                by: None,
            }
        };
        for &id in &ids {
            self.control(id, first.clone());
        }
        let waits: Vec<_> = {
            let active = Self::lock(&self.active);
            ids.iter()
                .filter_map(|id| active.runs.get(id).map(|r| (*id, r.done.clone())))
                .collect()
        };
        for (id, mut done) in waits {
            let finished = |d: &Option<RunStatus>| d.is_some();
            if tokio::time::timeout(limit, done.wait_for(finished))
                .await
                .is_err()
            {
                self.control(id, Control::CancelNow);
                // Deleting a session is bounded by the delete retries.
                let _ = done.wait_for(finished).await;
            }
        }
    }

    /// What the manager holds in memory: runs it controls or queues, live-stream channels,
    /// notification deliveries (the tests check that finished runs do not add up).
    #[cfg(test)]
    fn held(&self) -> [usize; 3] {
        let active = Self::lock(&self.active);
        [
            active.runs.len() + active.waiting.len(),
            Self::lock(&self.notify).len(),
            Self::lock(&self.notifications).len(),
        ]
    }

    /// A receiver that changes whenever the run gets a new event (for live streams).
    pub fn subscribe(&self, id: i64) -> Option<watch::Receiver<i64>> {
        let mut map = Self::lock(&self.notify);
        // Channels nobody follows any more go: the map holds at most one per open stream
        // (and streams are capped), not one per run ever watched.
        map.retain(|_, tx| tx.receiver_count() > 0);
        Some(
            map.entry(id)
                .or_insert_with(|| watch::channel(-1).0)
                .subscribe(),
        )
    }

    /// Records an event (before it is acted on) and wakes the run's listeners. SQLite runs on
    /// a blocking thread, never on the async workers.
    async fn record(&self, id: i64, event: RunEvent) {
        self.record_all(id, vec![(event, now_ms())]).await;
    }

    /// Records events (each with the time it was decided) in one transaction.
    async fn record_all(&self, id: i64, events: Vec<(RunEvent, i64)>) {
        if events.is_empty() {
            return;
        }
        let history = self.history.clone();
        let appended = tokio::task::spawn_blocking(move || {
            let result = history.append_all(id, &events);
            (result, events)
        })
        .await;
        match appended {
            Ok((Ok(seq), _)) => {
                if let Some(tx) = Self::lock(&self.notify).get(&id) {
                    tx.send_replace(seq);
                }
            }
            // The run goes on: losing history is bad, stopping Spark work midway is worse.
            Ok((Err(e), events)) => {
                tracing::error!(run = id, ?events, "cannot record events: {e:#}")
            }
            Err(e) => tracing::error!(run = id, "cannot record events: {e}"),
        }
    }

    /// Deletes the sessions that interrupted runs created and did not close (their notebooks
    /// may still run there), recording in each run's log what became of them.
    pub async fn reap(&self, runs: &[i64]) {
        for &run in runs {
            let history = self.history.clone();
            let events = tokio::task::spawn_blocking(move || history.events(run, None))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r);
            let events = match events {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(run, "cannot read the run's history: {e:#}");
                    continue;
                }
            };
            let open = open_sessions(events.iter().map(|e| &e.event));
            for (session, name) in open {
                let spark = &*self.spark.spark;
                let event = match spark.find_session(&name).await {
                    // Gone already, or the id now names another session (Livy restarted).
                    Ok(found) if found != Some(session) => {
                        session_closed(session, "it no longer exists")
                    }
                    Ok(_) => match close_session(spark, session).await {
                        Ok(()) => session_closed(session, "the run was interrupted"),
                        Err(e) => leaked(session, &e),
                    },
                    Err(e) => leaked(session, &e),
                };
                self.record(run, event).await;
            }
        }
    }
}

fn leaked(session: SessionId, e: &SparkError) -> RunEvent {
    RunEvent::SessionLeaked {
        session: session.0.to_string(),
        reason: e.to_string(),
    }
}

/// The sessions (id, name) a run created that its log does not show closed or leaked.
fn open_sessions<'a>(events: impl Iterator<Item = &'a RunEvent>) -> Vec<(SessionId, String)> {
    let mut open: Vec<(SessionId, String)> = Vec::new();
    for event in events {
        let (session, name) = match event {
            RunEvent::SessionChanged {
                session,
                state,
                message,
                ..
            } => match state.as_str() {
                "created" => (session, message.clone()),
                "closed" => (session, None),
                _ => continue,
            },
            RunEvent::SessionLeaked { session, .. } => (session, None),
            _ => continue,
        };
        let Ok(id) = session.parse::<u64>() else {
            continue;
        };
        open.retain(|(s, _)| s.0 != id);
        if let Some(name) = name {
            open.push((SessionId(id), name));
        }
    }
    open
}

fn session_closed(session: SessionId, why: &str) -> RunEvent {
    RunEvent::SessionChanged {
        session: session.0.to_string(),
        state: "closed".into(),
        message: Some(why.to_string()),
        capacity: None,
        spark_ui: None,
    }
}

/// Deletes a session, trying again with growing waits; the last error when every try failed.
async fn close_session(spark: &dyn Spark, session: SessionId) -> Result<(), SparkError> {
    let mut wait = DELETE_FIRST_WAIT;
    let mut tries = 0;
    loop {
        match spark.close_session(session).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tries += 1;
                tracing::warn!(session = session.0, tries, "cannot delete the session: {e}");
                if tries >= DELETE_TRIES {
                    return Err(e);
                }
            }
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
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
