//! The loop of one run: carries out the machine's commands against a [`Spark`] session, waits
//! (long poll) for attempts to end, a deadline or a control, and feeds the machine what
//! happened. Every decision is recorded before it is carried out.
//!
//! Exactly once: an attempt is `(run, task, attempt)` end to end. A start or a cancel whose
//! outcome is unclear is sent again with the same identity (the agent runs an attempt at most
//! once) until an answer or a poll settles it. A task's next attempt starts only once the
//! previous one is confirmed ended: reported ended by the agent, cancelled before it ever ran,
//! or its session confirmed dead or deleted. A session that cannot be confirmed (it stopped
//! answering and cannot be deleted) is recorded as leaked, and the tasks that had an attempt
//! there are not started again.

use super::spark::{CreatedSession, Liveness, SessionRequest, Spark, SparkError};
use super::{close_session, leaked, read_cells, session_closed, Control, RunManager, STOPPING};
use crate::agent::{Capacity, NotebookLaunch, NotebookState, NotebookUpdate, PollReply};
use crate::fs_sources::DiskSources;
use crate::history::{AttemptOutcome, RunEvent, RunStatus, TaskError};
use crate::livy::SessionId;
use spool_core::dag::{Plan, TaskId, TaskKind};
use spool_core::notify::NotifyOn;
use spool_core::params::{Bound, TaskValues};
use spool_core::runlog::{web_address, EvaluatedCondition};
use spool_core::sched::{Command, Event, Machine, TaskState};
use spool_core::secret::{self, Masker};
use spool_core::template::Source;
use spool_core::value_condition::evaluate_all;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// While a session starts, the run log says so this often.
const SESSION_PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// Waits between looks at a starting session: doubling from the first, capped.
const FIRST_START_CHECK_WAIT: Duration = Duration::from_millis(200);
const MAX_START_CHECK_WAIT: Duration = Duration::from_secs(2);
/// Session re-creations per run when `recreate_session = true`.
const MAX_SESSION_RECREATIONS: u32 = 3;
/// Consecutive failed polls of a session that still looks alive before it is abandoned.
const MAX_POLL_FAILURES: u32 = 5;
/// The longest a poll waits in the agent: Livy runs a session's statements one at a time, so
/// this is also how long a cancel or a start waits behind it.
const MAX_POLL_WAIT: Duration = Duration::from_secs(1);
/// Waits before a start or cancel with an unclear outcome is sent again: doubling, capped.
const FIRST_RESEND_WAIT: Duration = Duration::from_millis(250);
const MAX_RESEND_WAIT: Duration = Duration::from_secs(4);
/// After the run's end, how long attempts still being cancelled are waited for before their
/// session is deleted (a long-lived session is not deleted: they are left to its agent).
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// After the run's end, how long the last attempts' Spark metrics are waited for (the agent
/// reads them in 8-25 ms), polling this often.
const METRICS_DRAIN_LIMIT: Duration = Duration::from_secs(1);
const METRICS_POLL_WAIT: Duration = Duration::from_millis(50);

/// Tries of a session call whose outcome was unclear (both are idempotent: a session is
/// found by its name, the agent loads once and the lease is its owner's).
const SESSION_CALL_TRIES: u32 = 4;

/// Calls again, after growing waits, while the outcome is unclear.
async fn with_resends<T, F, Fut>(mut call: F) -> Result<T, SparkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SparkError>>,
{
    let mut wait = FIRST_RESEND_WAIT;
    for _ in 1..SESSION_CALL_TRIES {
        match call().await {
            Err(SparkError::Unclear(e)) => {
                tracing::warn!("unclear answer, asking again: {e}");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    call().await
}

/// What is known of an attempt that may be running.
#[derive(Debug)]
enum Phase {
    /// Sent, no definite answer yet: sent again with the same identity when due.
    Starting(Box<NotebookLaunch>),
    /// The agent runs it.
    Running,
    /// A cancel is to be sent (again, when due) until the agent acknowledges it.
    Cancelling,
    /// The agent acknowledged the cancel; a poll reports the end.
    CancelAcknowledged,
}

#[derive(Debug)]
struct Live {
    phase: Phase,
    /// The machine has already ended this attempt (a timeout): its report is not fed again.
    machine_ended: bool,
    /// When an unclear start or cancel is sent again.
    due: Instant,
    tries: u32,
}

impl Live {
    fn resend_due(&self) -> Option<Instant> {
        matches!(self.phase, Phase::Starting(_) | Phase::Cancelling).then_some(self.due)
    }

    fn failed_try(&mut self) {
        self.tries += 1;
        let wait = FIRST_RESEND_WAIT.saturating_mul(1 << self.tries.min(8));
        self.due = Instant::now() + wait.min(MAX_RESEND_WAIT);
    }
}

/// The session runs start notebooks in, with the poll position.
struct Current {
    id: SessionId,
    /// The `seq` of the last poll reply: the next poll acknowledges it.
    since: u64,
    poll_failures: u32,
}

/// The state of one run in progress.
/// What a resumed run hands to this one, by task.
#[derive(Default)]
pub(super) struct Kept {
    /// What carried-over tasks published.
    pub values: HashMap<TaskId, TaskValues>,
    /// What carried-over tasks left in the resumed run's session.
    pub session_state: Vec<(TaskId, Vec<String>)>,
    /// Tasks run again to rebuild what they left in it.
    pub rebuilt: Vec<(TaskId, Vec<String>)>,
}

pub(super) struct Execution {
    id: i64,
    pub(super) plan: Plan,
    /// The run's parameter values, checked before it started.
    params: Bound,
    /// What succeeded notebooks published (carried-over ones' from the resumed run).
    published: HashMap<TaskId, TaskValues>,
    /// Session state of carried-over tasks, and the rebuilt tasks: written at the start.
    kept_state: Vec<(TaskId, Vec<String>)>,
    rebuilt: Vec<(TaskId, Vec<String>)>,
    pub(super) machine: Machine,
    manager: Arc<RunManager>,
    /// Events decided and not yet written: written together, in one transaction, before the
    /// next call to Spark (`spark()`) and before the run ends, so that every decision is on
    /// disk before it is carried out and a dispatch costs one sync, not one per event.
    journal: Vec<(RunEvent, i64)>,
    t0: Instant,
    /// The lease token on the session: names the run, for whoever is refused.
    owner: String,
    session: Option<Current>,
    /// Sessions opened and not yet closed, and whether this run created them (a long-lived
    /// named session is only released).
    sessions: Vec<CreatedSession>,
    sessions_opened: u32,
    /// Why the last session could not start or died: what later starts fail with.
    session_error: Option<String>,
    /// Attempts that may be running, all in the current session.
    live: BTreeMap<(TaskId, u32), Live>,
    /// Starts that wait for the previous attempt of their task to be confirmed ended.
    parked: BTreeMap<TaskId, u32>,
    /// Tasks that must not start again, and why (an attempt may live in a leaked session).
    tainted: BTreeMap<TaskId, String>,
    /// Ended attempts recorded before their Spark metrics were read: the agent reports an end
    /// at once and the metrics in a later poll.
    metrics_owed: BTreeSet<(TaskId, u32)>,
    capacity: Option<u32>,
    /// Commands the machine gave while a command was being carried out.
    deferred: Vec<Command>,
    /// The run this one resumes.
    resumed_from: Option<i64>,
    cancelling: bool,
    finished: Option<RunStatus>,
    /// The run's `run_finished`, decided by the machine and recorded as the run's last event.
    finish_record: Option<RunEvent>,
    /// The secrets this run resolved: masked in every report before it is recorded.
    masker: Masker,
}

impl Execution {
    pub(super) fn new(
        id: i64,
        plan: Plan,
        params: Bound,
        kept: Kept,
        machine: Machine,
        manager: Arc<RunManager>,
        resumed_from: Option<i64>,
    ) -> Self {
        Execution {
            id,
            plan,
            params,
            published: kept.values,
            kept_state: kept.session_state,
            rebuilt: kept.rebuilt,
            machine,
            manager,
            journal: Vec::new(),
            t0: Instant::now(),
            owner: format!("run {id} (spool process {})", std::process::id()),
            session: None,
            sessions: Vec::new(),
            sessions_opened: 0,
            session_error: None,
            live: BTreeMap::new(),
            parked: BTreeMap::new(),
            tainted: BTreeMap::new(),
            metrics_owed: BTreeSet::new(),
            capacity: None,
            deferred: Vec::new(),
            resumed_from,
            cancelling: false,
            finished: None,
            finish_record: None,
            masker: Masker::default(),
        }
    }

    fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    fn record(&mut self, event: RunEvent) {
        self.journal.push((event, super::now_ms()));
    }

    /// Writes the events decided so far.
    async fn flush(&mut self) {
        let events = std::mem::take(&mut self.journal);
        self.manager.record_all(self.id, events).await;
    }

    /// Spark, once what was decided is written: the only way this run reaches Spark.
    async fn spark(&mut self) -> Arc<dyn Spark> {
        self.flush().await;
        self.manager.spark.spark.clone()
    }

    fn feed(&mut self, event: Event, pending: &mut Vec<Command>) {
        let now = self.now();
        // An overdue run is cancelled, with its reason, before anything else reaches the
        // machine: otherwise an event that arrives after the deadline could start notebooks.
        if event != Event::CancelRequested {
            self.cancel_if_overdue(pending);
        }
        self.machine.handle_into(event, now, pending);
    }

    /// Cancels the run, saying why, once its `timeout_secs` has passed; true when it has.
    fn cancel_if_overdue(&mut self, pending: &mut Vec<Command>) -> bool {
        if !self.machine.run_overdue(self.now()) {
            return false;
        }
        let limit = self.plan.timeout_secs.unwrap_or_default();
        let why = format!("the run did not finish within its timeout_secs = {limit}");
        self.cancel(Some(&why), None, pending);
        true
    }

    fn task_id(&self, t: TaskId) -> String {
        self.plan.tasks[t].id.clone()
    }

    /// The notebook's id for the agent: prefixed by the run, so that a session shared by
    /// successive runs (a named session) never confuses one run's attempts with another's.
    fn agent_id(&self, t: TaskId) -> String {
        format!("run{}/{}", self.id, self.plan.tasks[t].id)
    }

    /// Whether the machine still waits for this attempt to end.
    fn machine_awaits(&self, task: TaskId, attempt: u32) -> bool {
        matches!(self.machine.state_of(task), Some(TaskState::Running { attempt: a, .. }) if a == attempt)
    }

    /// The live Spark application has `capacity`: tells the machine when that is news, and
    /// records every change after the first (executors lost or added, dynamic allocation).
    fn capacity_is(&mut self, capacity: &Capacity, pending: &mut Vec<Command>) {
        let cores = capacity.total_cores;
        if self.capacity == Some(cores) {
            return;
        }
        if let (Some(was), Some(current)) = (self.capacity, &self.session) {
            self.record(RunEvent::SessionChanged {
                session: current.id.0.to_string(),
                state: "resized".into(),
                message: Some(format!(
                    "{} executors, {cores} slots (was {was})",
                    capacity.executors
                )),
                capacity: Some(cores),
                spark_ui: None,
            });
        }
        self.capacity = Some(cores);
        self.feed(Event::CapacityChanged { slots: cores }, pending);
    }

    /// Records an attempt that ended without a report from the notebook (Spool stopped or
    /// lost it), with the reason.
    fn record_ended(
        &mut self,
        task: TaskId,
        attempt: u32,
        outcome: AttemptOutcome,
        error: TaskError,
    ) {
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

    /// Records an attempt that ended without a report and tells the machine; a cancelled run
    /// counts it as cancelled.
    fn ended_without_report(
        &mut self,
        task: TaskId,
        attempt: u32,
        error: TaskError,
        pending: &mut Vec<Command>,
    ) {
        let (outcome, event) = if self.cancelling {
            (
                AttemptOutcome::Cancelled,
                Event::NotebookCancelled { task, attempt },
            )
        } else {
            (
                AttemptOutcome::Failed,
                Event::NotebookFailed { task, attempt },
            )
        };
        self.record_ended(task, attempt, outcome, error);
        self.feed(event, pending);
    }

    pub(super) async fn run(&mut self, mut control: watch::Receiver<Control>) -> RunStatus {
        self.record(RunEvent::ParamsBound {
            run: self.params.run(),
            pipeline: self.params.pipeline_values().clone(),
        });
        // Carried-over values are written again, so that a resume of this run keeps them too.
        let mut carried: Vec<_> = self
            .published
            .iter()
            .map(|(&t, v)| (t, v.clone()))
            .collect();
        carried.sort_by_key(|&(t, _)| t);
        for (t, values) in carried {
            self.record(RunEvent::ValuesPublished {
                task: self.task_id(t),
                attempt: 0,
                values,
            });
        }
        for (t, names) in std::mem::take(&mut self.kept_state) {
            self.record(RunEvent::SessionStateCreated {
                task: self.task_id(t),
                attempt: 0,
                names,
            });
        }
        for (t, names) in std::mem::take(&mut self.rebuilt) {
            self.record(RunEvent::RebuildingSessionState {
                task: self.task_id(t),
                names,
            });
        }
        if let Some(old) = self.resumed_from {
            // Whatever the resumed run left running must end before its tasks run again.
            self.manager.reap(&[old]).await;
        }
        // The session first, so that notebook times do not include Spark's start-up and
        // admission uses the real capacity from the start. A failure here is not final: each
        // start tries again, and fails its attempt with the cause (retries apply).
        let needs_spark = (0..self.plan.tasks.len()).any(|t| {
            !self.machine.is_carried_over(t)
                && (self.plan.tasks[t].kind == TaskKind::Notebook || self.plan.tasks[t].expands())
        });
        if needs_spark {
            if let Err(why) = self.ensure_session().await {
                self.record(RunEvent::SessionChanged {
                    session: "-".into(),
                    state: "error".into(),
                    message: Some(why),
                    capacity: None,
                    spark_ui: None,
                });
            }
        }
        self.notify_if_long_running();
        let mut pending = std::mem::take(&mut self.deferred);
        self.feed(Event::RunStarted, &mut pending);
        let mut control_open = true;
        let mut ended_at: Option<Instant> = None; // when the machine decided the run's end
        loop {
            while !pending.is_empty() {
                for cmd in std::mem::take(&mut pending) {
                    self.carry_out(cmd, &mut pending).await;
                    pending.append(&mut self.deferred);
                }
            }
            if self.finished.is_some() {
                let ended = *ended_at.get_or_insert_with(Instant::now);
                let now = Instant::now();
                let metrics_done =
                    self.metrics_owed.is_empty() || now >= ended + METRICS_DRAIN_LIMIT;
                if (self.live.is_empty() && metrics_done) || now >= ended + DRAIN_LIMIT {
                    break;
                }
            }
            if self.resend_due(&mut pending).await {
                continue;
            }
            let wait = self.wait_budget();
            let spark = self.spark().await;
            let waited = self.wait_for_news(spark, wait);
            let reply = tokio::select! {
                reply = waited => reply,
                changed = control.changed(), if control_open => {
                    control_open = changed.is_ok();
                    if !control_open {
                        continue;
                    }
                    let asked = control.borrow_and_update().clone();
                    match asked {
                        Control::Go => {}
                        Control::Cancel { reason, by } => self.cancel(reason, by, &mut pending),
                        Control::CancelNow => {
                            self.cancel(Some(STOPPING), None, &mut pending);
                            self.abandon_session(
                                "Spool is stopping: the run's session is deleted",
                                &mut pending,
                            )
                            .await;
                        }
                        Control::Detach => return self.detach().await,
                    }
                    continue;
                }
            };
            if let Some(reply) = reply {
                self.on_poll(reply, &mut pending).await;
            }
            self.fire_deadlines(&mut pending);
        }
        self.close_sessions().await;
        if let Some(event) = self.finish_record.take() {
            self.record(event);
        }
        self.flush().await;
        let status = self.finished.unwrap_or(RunStatus::Failed);
        if let Some(event) = NotifyOn::of_status(status) {
            let to = crate::notify::wanting(&self.plan.notify, event);
            self.manager.send_notifications(self.id, to, event);
        }
        status
    }

    /// Arms the `long_running` notifications: each is sent if the run still runs after its
    /// `long_running_secs`.
    fn notify_if_long_running(&self) {
        for n in crate::notify::wanting(&self.plan.notify, NotifyOn::LongRunning) {
            let Some(secs) = n.long_running_secs else {
                continue;
            };
            let (manager, id) = (self.manager.clone(), self.id);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                manager.send_notifications(id, vec![n], NotifyOn::LongRunning);
            });
        }
    }

    fn cancel(&mut self, reason: Option<&str>, by: Option<String>, pending: &mut Vec<Command>) {
        if self.cancelling || self.finished.is_some() {
            return;
        }
        self.record(RunEvent::CancelRequested {
            reason: reason.map(str::to_string),
            by,
        });
        self.cancelling = true;
        self.feed(Event::CancelRequested, pending);
    }

    /// Leaves the run to be resumed: its notebooks keep running in Spark, the session's lease
    /// is given up, the run is recorded as interrupted.
    async fn detach(&mut self) -> RunStatus {
        self.record(RunEvent::RunInterrupted {
            reason: "Spool stopped and left the run's notebooks running \
                     (--keep-runs-on-shutdown); resume it to finish it"
                .into(),
        });
        let spark = self.spark().await;
        if let Some(current) = &self.session {
            let _ = spark.release(current.id, &self.owner).await;
        }
        RunStatus::Interrupted
    }

    /// How long the next wait may last: until the next deadline or resend, at most a poll's
    /// longest wait.
    fn wait_budget(&self) -> Duration {
        let now = Instant::now();
        let mut until = now + MAX_POLL_WAIT;
        if let Some(d) = self.next_deadline() {
            until = until.min(wake_for(self.t0, d.at));
        }
        if let Some(due) = self.live.values().filter_map(Live::resend_due).min() {
            until = until.min(due);
        }
        if self.draining_metrics() {
            until = until.min(now + METRICS_POLL_WAIT);
        }
        until.saturating_duration_since(now)
    }

    /// Whether the run has ended and only the last attempts' metrics are still to come: a
    /// poll returns for an end at once, not for metrics, so it is kept short.
    fn draining_metrics(&self) -> bool {
        self.finished.is_some() && self.live.is_empty() && !self.metrics_owed.is_empty()
    }

    /// A long poll of the session when attempts may run there, else a sleep. Owns what it
    /// uses, so that a control can interrupt it.
    fn wait_for_news(
        &self,
        spark: Arc<dyn Spark>,
        wait: Duration,
    ) -> impl std::future::Future<Output = Option<Result<PollReply, SparkError>>> + 'static {
        let target = self
            .session
            .as_ref()
            .filter(|_| !self.live.is_empty() || self.draining_metrics())
            .map(|c| (c.id, c.since));
        let owner = self.owner.clone();
        async move {
            match target {
                Some((session, since)) => Some(spark.poll(session, since, &owner, wait).await),
                None => {
                    tokio::time::sleep(wait).await;
                    None
                }
            }
        }
    }

    async fn on_poll(&mut self, reply: Result<PollReply, SparkError>, pending: &mut Vec<Command>) {
        let Some(session) = self.session.as_ref().map(|c| c.id) else {
            return;
        };
        match reply {
            Ok(reply) => {
                if let Some(current) = &mut self.session {
                    current.since = reply.seq;
                    current.poll_failures = 0;
                }
                self.capacity_is(&reply.capacity, pending);
                for update in reply.updates {
                    self.on_update(update, pending);
                }
            }
            Err(SparkError::SessionEnded(why)) => self.session_ended(&why, pending).await,
            Err(SparkError::Busy(why)) => {
                let why = format!("another run took over the Spark session: {why}");
                self.abandon_session(&why, pending).await;
            }
            Err(e) => {
                let failures = self.session.as_mut().map_or(0, |c| {
                    c.poll_failures += 1;
                    c.poll_failures
                });
                tracing::warn!(run = self.id, failures, "poll failed: {e}");
                match self.spark().await.session_state(session).await {
                    Ok(Liveness::Ended(why)) => self.session_ended(&why, pending).await,
                    _ if failures >= MAX_POLL_FAILURES => {
                        let why = format!("the Spark session stopped answering: {e}");
                        self.abandon_session(&why, pending).await;
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends again the starts and cancels whose answer was unclear, when due; true when that
    /// gave the machine something to do.
    async fn resend_due(&mut self, pending: &mut Vec<Command>) -> bool {
        let now = Instant::now();
        let due: Vec<(TaskId, u32)> = self
            .live
            .iter()
            .filter(|(_, l)| l.resend_due().is_some_and(|d| d <= now))
            .map(|(k, _)| *k)
            .collect();
        for (task, attempt) in due {
            match self.live.get(&(task, attempt)).map(|l| &l.phase) {
                Some(Phase::Starting(_)) => self.send_start(task, attempt, pending).await,
                Some(Phase::Cancelling) => self.send_cancel(task, attempt, pending).await,
                _ => {}
            }
        }
        !pending.is_empty()
    }

    /// The machine's next deadline while the run goes on (a finished machine has none).
    fn next_deadline(&self) -> Option<spool_core::sched::Deadline> {
        if self.machine.is_finished() {
            return None;
        }
        self.machine.next_deadline()
    }

    fn fire_deadlines(&mut self, pending: &mut Vec<Command>) {
        while let Some(d) = self.next_deadline().filter(|d| d.at <= self.now()) {
            if let Event::NotebookTimedOut { task, attempt } = d.event {
                if self.machine_awaits(task, attempt) {
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
            self.feed(d.event, pending);
        }
    }

    /// Carries out one command. Its record comes from core's one mapping, except a start's,
    /// which is recorded when the start is really sent (a start may wait for the previous
    /// attempt to end).
    async fn carry_out(&mut self, cmd: Command, pending: &mut Vec<Command>) {
        match cmd {
            Command::StartNotebook { task, attempt, .. } => {
                self.start_notebook(task, attempt, pending).await
            }
            Command::CancelNotebook { task, attempt } => {
                self.cancel_notebook(task, attempt, pending).await
            }
            Command::FinishRun { outcome } => {
                // Recorded last, once the last metrics and the session's end are: a live
                // stream ends at `run_finished`, and must not miss what follows it.
                self.finish_record = RunEvent::of_command(&self.plan, &cmd);
                self.finished = Some(outcome.into());
            }
            Command::ScheduleRetry { .. } | Command::Settle { .. } => {
                if let Some(event) = RunEvent::of_command(&self.plan, &cmd) {
                    self.record(event);
                }
            }
            Command::EvaluateConditions { task } => self.evaluate_conditions(task, pending),
            Command::ExpandForEach { task } => self.expand_for_each(task, pending),
        }
    }

    /// Reads a for-each's list with what upstream notebooks published (core's rule), adds its
    /// iterations to the run's plan, records them (or why there is no list), and tells the
    /// machine, which adds as many tasks in the same order.
    fn expand_for_each(&mut self, task: TaskId, pending: &mut Vec<Command>) {
        if self.machine.state_of(task) != Some(TaskState::Expanding) {
            return;
        }
        let published = &self.published;
        let values = |t: TaskId| published.get(&t).cloned();
        let scope = self.plan.tasks[task].scope;
        let lookup = |src: &Source| self.params.value_of(&self.plan, scope, src, &values);
        let (record, event) = match self.plan.items_of_for_each(task, &lookup) {
            Ok(items) => {
                let count = items.len() as u32;
                let added = self.plan.add_iterations(task, items);
                let record = RunEvent::ForEachExpanded {
                    task: self.task_id(task),
                    iterations: added.map(|t| self.task_id(t)).collect(),
                    error: None,
                };
                (record, Some(count))
            }
            Err(why) => {
                let record = RunEvent::ForEachExpanded {
                    task: self.task_id(task),
                    iterations: Vec::new(),
                    error: Some(why),
                };
                (record, None)
            }
        };
        self.record(record);
        self.feed(Event::ForEachExpanded { task, items: event }, pending);
    }

    /// Evaluates the task's conditions on values with what upstream notebooks published (by
    /// core's rule), records what they read, and tells the machine.
    fn evaluate_conditions(&mut self, task: TaskId, pending: &mut Vec<Command>) {
        let published = &self.published;
        let values = |t: TaskId| published.get(&t).cloned();
        let lookup =
            |scope: usize, src: &Source| self.params.value_of(&self.plan, scope, src, &values);
        let verdicts = evaluate_all(&self.plan.tasks[task].conditions, &lookup);
        self.record(RunEvent::ConditionsEvaluated {
            task: self.task_id(task),
            conditions: EvaluatedCondition::of_task(&self.plan, task, &verdicts),
        });
        self.feed(Event::conditions_evaluated(task, &verdicts), pending);
    }

    async fn start_notebook(&mut self, task: TaskId, attempt: u32, pending: &mut Vec<Command>) {
        // A start the machine no longer wants (a parked start overtaken by a cancel) is dropped.
        if !self.machine_awaits(task, attempt) {
            return;
        }
        // Decided before a cancel that overtook it (the run found overdue while the commands
        // of one event were carried out): never sent.
        if self.cancelling {
            let error = TaskError::spool("Cancelled", "cancelled before it started");
            self.record_ended(task, attempt, AttemptOutcome::Cancelled, error);
            self.feed(Event::NotebookCancelled { task, attempt }, pending);
            return;
        }
        if let Some(why) = self.tainted.get(&task).cloned() {
            self.record(RunEvent::TaskStarted {
                task: self.task_id(task),
                attempt,
            });
            let error = TaskError::spool("NotRetried", why);
            self.record_ended(task, attempt, AttemptOutcome::Failed, error);
            self.feed(Event::NotebookFailed { task, attempt }, pending);
            return;
        }
        if self.live.keys().any(|&(t, _)| t == task) {
            self.parked.insert(task, attempt);
            return;
        }
        self.record(RunEvent::TaskStarted {
            task: self.task_id(task),
            attempt,
        });
        match self.launch(task, attempt).await {
            Ok(launch) => {
                self.live.insert(
                    (task, attempt),
                    Live {
                        phase: Phase::Starting(Box::new(launch)),
                        machine_ended: false,
                        due: Instant::now(),
                        tries: 0,
                    },
                );
                self.send_start(task, attempt, pending).await;
            }
            Err(error) => {
                self.record_ended(task, attempt, AttemptOutcome::Failed, error);
                self.feed(Event::NotebookFailed { task, attempt }, pending);
            }
        }
    }

    /// Resolves the notebook's values (recorded), reads and parses it and makes sure there is
    /// a session.
    async fn launch(&mut self, task: TaskId, attempt: u32) -> Result<NotebookLaunch, TaskError> {
        let fail = TaskError::spool;
        let published = &self.published;
        let params = self
            .params
            .params_for(&self.plan, task, &|t| published.get(&t).cloned())
            .map_err(|why| fail("ParameterError", why))?;
        self.record(RunEvent::AttemptParams {
            task: self.task_id(task),
            attempt,
            params: params.clone(),
        });
        let params = self
            .resolve_secrets(&params)
            .await
            .map_err(|why| fail("SecretError", why))?;
        let dir = self.manager.pipelines_dir.clone();
        let path = self.plan.tasks[task].path.clone();
        let cells = tokio::task::spawn_blocking(move || {
            let sources =
                DiskSources::new(&dir).map_err(|e| fail("NotebookNotFound", e.to_string()))?;
            read_cells(&sources, &path)
        })
        .await
        .map_err(|e| fail("NotebookNotFound", e.to_string()))??;
        self.ensure_session()
            .await
            .map_err(|e| fail("SparkSessionError", e))?;
        let settings = &self.plan.tasks[task].settings;
        Ok(NotebookLaunch {
            id: self.agent_id(task),
            attempt,
            cells,
            params,
            upstream: self.upstream(task),
            isolated: settings.isolated,
            mask: self.masker.patterns().to_vec(),
            // The machine owns timeouts (it cancels and retries); the agent's own limit is a
            // backstop for a server that goes away.
            timeout: Some(Duration::from_secs(
                settings.timeout_secs.saturating_add(60),
            )),
        })
    }

    /// `params` with their secret references resolved (each time an attempt starts, so that
    /// a rotated secret is read again), and the values added to the run's masker.
    async fn resolve_secrets(
        &mut self,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let texts: BTreeSet<String> = params.values().flat_map(secret::references).collect();
        if texts.is_empty() {
            return Ok(params.clone());
        }
        let values = crate::secrets::resolve_all(texts, &self.manager.spark.secret_sources).await?;
        for (text, value) in &values {
            self.masker
                .add(value)
                .map_err(|why| format!("secret `{text}`: {why}"))?;
        }
        secret::resolve_params(params, &mut |text| {
            values
                .get(text)
                .cloned()
                .ok_or_else(|| format!("secret `{text}` was not resolved"))
        })
    }

    /// What the notebooks `task` depends on directly published, by their id in its file
    /// (`spool.upstream`).
    fn upstream(&self, task: TaskId) -> BTreeMap<String, TaskValues> {
        let prefix = &self.plan.scopes[self.plan.tasks[task].scope].prefix;
        self.plan.deps[task]
            .iter()
            .filter_map(|&(d, _)| {
                let values = self.published.get(&d)?;
                let id = &self.plan.tasks[d].id;
                let name = id.strip_prefix(prefix.as_str()).unwrap_or(id);
                Some((name.to_string(), values.clone()))
            })
            .collect()
    }

    async fn send_start(&mut self, task: TaskId, attempt: u32, pending: &mut Vec<Command>) {
        // The run's timeout may have passed while this start waited (for a session to start,
        // behind a slow call): then it is not sent, and the cancel that follows settles it.
        if self.cancelling || self.cancel_if_overdue(pending) {
            return;
        }
        let spark = self.spark().await;
        let (
            Some(session),
            Some(Live {
                phase: Phase::Starting(launch),
                ..
            }),
        ) = (
            self.session.as_ref().map(|c| c.id),
            self.live.get(&(task, attempt)),
        )
        else {
            return;
        };
        let result = spark.start(session, launch).await;
        match result {
            Ok(_) => {
                if let Some(live) = self.live.get_mut(&(task, attempt)) {
                    live.phase = Phase::Running;
                }
                self.feed(Event::NotebookStarted { task, attempt }, pending);
            }
            Err(SparkError::Unclear(e)) => {
                tracing::warn!(
                    run = self.id,
                    task,
                    attempt,
                    "start unclear, sent again: {e}"
                );
                if let Some(live) = self.live.get_mut(&(task, attempt)) {
                    live.failed_try();
                }
            }
            Err(SparkError::SessionEnded(why)) => self.session_ended(&why, pending).await,
            Err(SparkError::Refused(e) | SparkError::Busy(e)) => {
                self.live.remove(&(task, attempt));
                let error = TaskError::spool(
                    "SparkSessionError",
                    format!("could not start the notebook: {e}"),
                );
                self.record_ended(task, attempt, AttemptOutcome::Failed, error);
                self.feed(Event::NotebookFailed { task, attempt }, pending);
                self.unpark(task, pending);
            }
        }
    }

    async fn cancel_notebook(&mut self, task: TaskId, attempt: u32, pending: &mut Vec<Command>) {
        let awaited = self.machine_awaits(task, attempt);
        if self.parked.get(&task) == Some(&attempt) {
            self.parked.remove(&task);
            if awaited {
                let error = TaskError::spool("Cancelled", "cancelled before it started");
                self.record_ended(task, attempt, AttemptOutcome::Cancelled, error);
                self.feed(Event::NotebookCancelled { task, attempt }, pending);
            }
            return;
        }
        let Some(live) = self.live.get_mut(&(task, attempt)) else {
            return;
        };
        live.machine_ended = !awaited;
        live.phase = Phase::Cancelling;
        live.tries = 0;
        self.send_cancel(task, attempt, pending).await;
    }

    async fn send_cancel(&mut self, task: TaskId, attempt: u32, pending: &mut Vec<Command>) {
        let Some(session) = self.session.as_ref().map(|c| c.id) else {
            return;
        };
        let spark = self.spark().await;
        let result = spark.cancel(session, &self.agent_id(task), attempt).await;
        match result {
            Ok(Some(_)) => {
                if let Some(live) = self.live.get_mut(&(task, attempt)) {
                    live.phase = Phase::CancelAcknowledged;
                }
            }
            Ok(None) => {
                // The agent never saw it, and now never runs it: ended before it began.
                if let Some(live) = self.live.remove(&(task, attempt)) {
                    if !live.machine_ended {
                        let error = TaskError::spool("Cancelled", "cancelled before it started");
                        self.record_ended(task, attempt, AttemptOutcome::Cancelled, error);
                        self.feed(Event::NotebookCancelled { task, attempt }, pending);
                    }
                }
                self.unpark(task, pending);
            }
            Err(SparkError::SessionEnded(why)) => self.session_ended(&why, pending).await,
            Err(e) => {
                tracing::warn!(
                    run = self.id,
                    task,
                    attempt,
                    "cancel failed, sent again: {e}"
                );
                if let Some(live) = self.live.get_mut(&(task, attempt)) {
                    live.failed_try();
                }
            }
        }
    }

    /// Queues the parked start of `task` once no attempt of it may run any more.
    fn unpark(&mut self, task: TaskId, pending: &mut Vec<Command>) {
        if self.live.keys().any(|&(t, _)| t == task) {
            return;
        }
        if let Some(attempt) = self.parked.remove(&task) {
            let slots = self.plan.tasks[task].slots();
            pending.push(Command::StartNotebook {
                task,
                attempt,
                slots,
            });
        }
    }

    /// Feeds one agent report to the machine, its secrets masked first.
    fn on_update(&mut self, u: NotebookUpdate, pending: &mut Vec<Command>) {
        let u = if self.masker.is_empty() {
            u
        } else {
            mask_update(&self.masker, u)
        };
        let prefix = format!("run{}/", self.id);
        let Some(task) =
            u.id.strip_prefix(&prefix)
                .and_then(|id| self.plan.index_of(id))
        else {
            return;
        };
        let attempt = u.attempt;
        let Some(live) = self.live.get_mut(&(task, attempt)) else {
            if let (Some(metrics), true) = (&u.metrics, u.state.is_finished()) {
                if self.metrics_owed.remove(&(task, attempt)) {
                    self.record(RunEvent::AttemptMetrics {
                        task: self.task_id(task),
                        attempt,
                        metrics: serde_json::to_value(metrics).unwrap_or_default(),
                    });
                }
            }
            return;
        };
        if !u.state.is_finished() {
            if matches!(live.phase, Phase::Starting(_)) {
                // The start whose answer was lost did happen.
                live.phase = Phase::Running;
                self.feed(Event::NotebookStarted { task, attempt }, pending);
            }
            return;
        }
        let machine_ended = live.machine_ended;
        self.live.remove(&(task, attempt));
        if !machine_ended {
            self.record_report(task, u, pending);
        }
        self.unpark(task, pending);
    }

    /// Records an attempt's end as the agent reported it, and tells the machine.
    fn record_report(&mut self, task: TaskId, u: NotebookUpdate, pending: &mut Vec<Command>) {
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
        if outcome == AttemptOutcome::Succeeded {
            let values = TaskValues {
                value: u.exit_value.clone(),
                values: u.values.unwrap_or_default(),
            };
            if values != TaskValues::default() {
                self.record(RunEvent::ValuesPublished {
                    task: self.task_id(task),
                    attempt,
                    values: values.clone(),
                });
            }
            self.published.insert(task, values);
            if !u.session_state.is_empty() {
                self.record(RunEvent::SessionStateCreated {
                    task: self.task_id(task),
                    attempt,
                    names: u.session_state.clone(),
                });
            }
        }
        let metrics = u.metrics.and_then(|m| serde_json::to_value(m).ok());
        if metrics.is_none() {
            self.metrics_owed.insert((task, attempt));
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
            metrics,
        });
        self.feed(event, pending);
    }

    /// The current session is confirmed ended: its attempts ended with it (failed with that
    /// cause); the next start makes a new session if the pool allows it.
    async fn session_ended(&mut self, why: &str, pending: &mut Vec<Command>) {
        let Some(current) = self.session.take() else {
            return;
        };
        // A failed call only says the session ended; the server's own account says why
        // (Synapse's errorInfo, the driver's last log lines).
        let why = match self.spark().await.session_state(current.id).await {
            Ok(Liveness::Ended(reason)) => reason,
            _ => why.to_string(),
        };
        self.session_error = Some(why.clone());
        self.record(RunEvent::SessionChanged {
            session: current.id.0.to_string(),
            state: "dead".into(),
            message: Some(why.clone()),
            capacity: None,
            spark_ui: None,
        });
        self.settle_lost(|_| TaskError::spool("SparkSessionLost", &why), pending);
    }

    /// Ends every live attempt without a report: the ones the machine waits for are recorded
    /// with `error`; then the parked starts may go.
    fn settle_lost(&mut self, error: impl Fn(TaskId) -> TaskError, pending: &mut Vec<Command>) {
        // The lost session's agent will not report them either.
        self.metrics_owed.clear();
        let lost = std::mem::take(&mut self.live);
        for (&(task, attempt), live) in &lost {
            if !live.machine_ended {
                self.ended_without_report(task, attempt, error(task), pending);
            }
        }
        for &(task, _) in lost.keys() {
            self.unpark(task, pending);
        }
    }

    /// Gives up the current session, which cannot be trusted (it stopped answering, another
    /// run took it, or Spool is stopping): its attempts are cancelled as far as it answers,
    /// then it is deleted, which ends them. When it cannot be deleted it is recorded as
    /// leaked and its tasks are not started again (they might run twice).
    async fn abandon_session(&mut self, why: &str, pending: &mut Vec<Command>) {
        let Some(current) = self.session.take() else {
            return;
        };
        let session = current.id;
        self.record(RunEvent::SessionChanged {
            session: session.0.to_string(),
            state: "abandoned".into(),
            message: Some(why.to_string()),
            capacity: None,
            spark_ui: None,
        });
        let keys: Vec<(TaskId, u32)> = self.live.keys().copied().collect();
        let spark = self.spark().await;
        for (task, attempt) in keys {
            let _ = spark.cancel(session, &self.agent_id(task), attempt).await;
        }
        let created = self.sessions.iter().any(|s| s.id == session && s.created);
        let closed = if created {
            self.sessions.retain(|s| s.id != session);
            match close_session(&*spark, session).await {
                Ok(()) => {
                    self.record(session_closed(session, why));
                    Ok(())
                }
                Err(e) => {
                    self.record(leaked(session, &e));
                    Err(format!(
                        "Spark session {session} could not be deleted ({e}); it may still run"
                    ))
                }
            }
        } else {
            Err(format!(
                "the long-lived Spark session {session} could not be confirmed to have stopped it"
            ))
        };
        match closed {
            Ok(()) => {
                let lost = format!("{why}; the session was deleted");
                self.settle_lost(|_| TaskError::spool("SparkSessionLost", &lost), pending);
            }
            Err(doubt) => {
                for &(task, attempt) in self.live.keys() {
                    self.tainted.insert(
                        task,
                        format!(
                            "attempt {attempt} may still be running: {doubt}; not started again so that it never runs twice"
                        ),
                    );
                }
                let lost = format!("{why}; {doubt}");
                self.settle_lost(|_| TaskError::spool("SparkSessionLost", &lost), pending);
            }
        }
    }

    /// The run's session, created (and the agent injected) on first use. A failure is what
    /// later starts fail with too.
    async fn ensure_session(&mut self) -> Result<SessionId, String> {
        if let Some(s) = &self.session {
            return Ok(s.id);
        }
        let result = self.open_session().await;
        if let Err(why) = &result {
            self.session_error = Some(why.clone());
        }
        result
    }

    async fn open_session(&mut self) -> Result<SessionId, String> {
        if self.sessions_opened > 0 {
            if !self.plan.pool.recreate_session {
                let why = self
                    .session_error
                    .as_deref()
                    .unwrap_or("the run's Spark session died");
                return Err(format!(
                    "{why} (set recreate_session = true in [pool] to start a new one)"
                ));
            }
            if self.sessions_opened > MAX_SESSION_RECREATIONS {
                return Err(format!(
                    "the Spark session died {} times; giving up",
                    self.sessions_opened
                ));
            }
        }
        self.sessions_opened += 1;
        let named = self.manager.spark.session_name.clone();
        let request = SessionRequest {
            name: named
                .clone()
                .unwrap_or_else(|| format!("spool-run-{}-{}", self.id, self.sessions_opened)),
            named: named.is_some(),
            pool: self.plan.pool.clone(),
        };
        let spark = self.spark().await;
        let created = with_resends(|| spark.create_session(&request))
            .await
            .map_err(|e| e.to_string())?;
        let id = created.id;
        // A long-lived named session is never deleted, even when this run created it.
        let created = CreatedSession {
            created: created.created && !request.named,
            ..created
        };
        // The name of a session the run owns is recorded as it is: a later start finds it by
        // that name to delete it if this process dies (see `RunManager::reap`).
        self.record(RunEvent::SessionChanged {
            session: id.0.to_string(),
            state: if created.created {
                "created"
            } else {
                "attached"
            }
            .into(),
            message: Some(if created.created {
                request.name
            } else {
                format!("session `{}`", request.name)
            }),
            capacity: None,
            spark_ui: None,
        });
        self.sessions.push(created);
        if let Err(why) = self.wait_until_started(id).await {
            self.close(created).await;
            return Err(why);
        }
        let owner = self.owner.clone();
        let capacity = match with_resends(|| spark.prepare_session(id, &owner)).await {
            Ok(c) => c,
            Err(e) => {
                self.close(created).await;
                return Err(e.to_string());
            }
        };
        let spark_ui = spark.spark_ui(id).await;
        self.record(RunEvent::SessionChanged {
            session: id.0.to_string(),
            state: "idle".into(),
            message: Some(format!("{} executors", capacity.executors)),
            capacity: Some(capacity.total_cores),
            spark_ui: spark_ui.as_deref().and_then(web_address),
        });
        self.session = Some(Current {
            id,
            since: 0,
            poll_failures: 0,
        });
        // Applied before the pending start: admission of later notebooks uses it.
        let mut cmds = Vec::new();
        self.capacity_is(&capacity, &mut cmds);
        self.deferred.extend(cmds);
        Ok(id)
    }

    /// Waits until the session is ready, saying in the run log every 30 s that it is still
    /// starting (minutes are normal on a cold cluster), at most the pool's
    /// `session_start_timeout_secs`. Answers that do not come are waited through too.
    async fn wait_until_started(&mut self, id: SessionId) -> Result<(), String> {
        let started = Instant::now();
        let limit = Duration::from_secs(self.plan.pool.session_start_timeout_secs);
        let mut next_progress = SESSION_PROGRESS_EVERY;
        let mut wait = FIRST_START_CHECK_WAIT;
        loop {
            let state = match self.spark().await.session_state(id).await {
                Ok(Liveness::Alive) => return Ok(()),
                Ok(Liveness::Ended(why)) => {
                    return Err(format!("the Spark session ended while starting: {why}"))
                }
                Ok(Liveness::Starting(state)) => state,
                Err(SparkError::Unclear(e)) => {
                    tracing::warn!(run = self.id, "a starting session did not answer: {e}");
                    "not answering".to_string()
                }
                Err(e) => return Err(format!("lost the starting Spark session: {e}")),
            };
            let waited = started.elapsed();
            if waited > limit {
                return Err(format!(
                    "the Spark session was still {state} after {} \
                     (session_start_timeout_secs = {})",
                    minutes_secs(waited),
                    limit.as_secs()
                ));
            }
            if waited >= next_progress {
                next_progress += SESSION_PROGRESS_EVERY;
                self.record(RunEvent::SessionChanged {
                    session: id.0.to_string(),
                    state,
                    message: Some(format!("session starting, {}", minutes_secs(waited))),
                    capacity: None,
                    spark_ui: None,
                });
            }
            let until_due = limit.min(next_progress).saturating_sub(waited);
            tokio::time::sleep(wait.min(until_due + Duration::from_millis(1))).await;
            wait = (wait * 2).min(MAX_START_CHECK_WAIT);
        }
    }

    /// Deletes a session this run created (recording it closed, or leaked), or gives up its
    /// lease on a long-lived one.
    async fn close(&mut self, session: CreatedSession) {
        let spark = self.spark().await;
        self.sessions.retain(|s| s.id != session.id);
        if self.session.as_ref().is_some_and(|c| c.id == session.id) {
            self.session = None;
        }
        if !session.created {
            let _ = spark.release(session.id, &self.owner).await;
            return;
        }
        let event = match close_session(&*spark, session.id).await {
            Ok(()) => session_closed(session.id, "the run no longer needs it"),
            Err(e) => leaked(session.id, &e),
        };
        self.record(event);
    }

    /// Closes every session the run opened.
    async fn close_sessions(&mut self) {
        for s in self.sessions.clone() {
            self.close(s).await;
        }
    }
}

/// `2m10s`, `45s`.
fn minutes_secs(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// `u` with every secret of the run masked: what the notebook printed, its error, and the values
/// it published (the agent masks them too; this holds whatever the agent is).
fn mask_update(masker: &Masker, mut u: NotebookUpdate) -> NotebookUpdate {
    u.stdout = masker.mask(&u.stdout);
    u.stderr = masker.mask(&u.stderr);
    if let Some(e) = &mut u.error {
        e.ename = masker.mask(&e.ename);
        e.evalue = masker.mask(&e.evalue);
        for line in &mut e.traceback {
            *line = masker.mask(line);
        }
    }
    u.exit_value = u.exit_value.map(|v| masker.mask_value(&v));
    u.values = u.values.map(|values| {
        values
            .iter()
            .map(|(k, v)| (masker.mask(k), masker.mask_value(v)))
            .collect()
    });
    u
}

/// When to wake for a machine deadline `at` (seconds since `t0`): never before it is due. The
/// seconds become whole nanoseconds, which can fall a hair short (31.01 + 1.0 is
/// 32.010000000000005, the wait 32.01 s); woken then, the deadline is not yet due, the next
/// wait ends at once, and so on: a busy loop, for ever under a paused clock (the executor's
/// property test hung on it). A microsecond late is well inside f64's precision for any run.
pub(super) fn wake_for(t0: Instant, at: f64) -> Instant {
    t0 + Duration::from_secs_f64(at.max(0.0)) + Duration::from_micros(1)
}
