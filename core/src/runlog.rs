//! The run log: everything that happens to a run, as the server stores it (`runs.db`) and sends
//! it (docs/api.md), and the fold that rebuilds a run from it. Serde types, because this is the
//! on-disk and wire format; one definition serves the server, which writes and folds the log,
//! and the browser, which folds the same events live.

use crate::dag::Plan;
use crate::params::TaskValues;
use crate::sched::{Command, Final, RunOutcome, SettleReason};
use crate::template::RunInfo;
use crate::value_condition::Verdict;
use serde::{Deserialize, Serialize};
use serde_json::Map;
use std::collections::BTreeMap;

/// How one attempt of a notebook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskError {
    pub ename: String,
    pub evalue: String,
    #[serde(default)]
    pub traceback: Vec<String>,
    /// The notebook's own number of the cell that failed, when known (as its editor counts
    /// cells; logs of older builds hold the position among the launched cells).
    #[serde(default)]
    pub cell: Option<usize>,
    /// The line within that cell, as the notebook's editor shows it.
    #[serde(default)]
    pub line: Option<usize>,
}

impl TaskError {
    /// An error Spool itself found (no Python traceback, no cell).
    pub fn spool(ename: &str, evalue: impl Into<String>) -> Self {
        TaskError {
            ename: ename.into(),
            evalue: evalue.into(),
            traceback: Vec::new(),
            cell: None,
            line: None,
        }
    }

    /// Where in the notebook it failed, in words (`cell 3, line 2`); `None` when not known.
    pub fn location(&self) -> Option<String> {
        let cell = self.cell?;
        Some(match self.line {
            Some(line) => format!("cell {cell}, line {line}"),
            None => format!("cell {cell}"),
        })
    }
}

/// Longer addresses are not recorded.
pub const MAX_ADDRESS_BYTES: usize = 2048;

/// `address` when it is a plain web address (`http://` or `https://`, no spaces or control
/// characters, at most [`MAX_ADDRESS_BYTES`]), so that a page can link to it: a Spark UI
/// address comes from the Livy server and is shown as a link, never a `javascript:` one.
pub fn web_address(address: &str) -> Option<String> {
    let lower = address.get(..8).unwrap_or(address).to_ascii_lowercase();
    let scheme = lower.starts_with("http://") || lower.starts_with("https://");
    let plain = !address.chars().any(|c| c.is_whitespace() || c.is_control());
    (scheme && plain && address.len() <= MAX_ADDRESS_BYTES).then(|| address.to_string())
}

/// Everything that happens to a run, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    RunStarted {
        pipeline: String,
        file: String,
        /// Parameter overrides given for this run (`key` or `notebook.key` → value).
        params: BTreeMap<String, serde_json::Value>,
        resumed_from: Option<i64>,
        /// The expanded plan the run executes, as JSON.
        plan: serde_json::Value,
        /// What started it (not in logs of older builds).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger: Option<Trigger>,
        /// The name of the API token that started it (never the token itself); `None` for
        /// `spool run`, an unnamed token or a server without tokens, and in older logs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_by: Option<String>,
    },
    SessionChanged {
        session: String,
        state: String,
        #[serde(default)]
        message: Option<String>,
        /// Slots the live Spark application really has.
        #[serde(default)]
        capacity: Option<u32>,
        /// The Spark UI of the session's application, when Livy reports one
        /// (`appInfo.sparkUiUrl`) and it is a web address ([`web_address`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spark_ui: Option<String>,
    },
    TaskStarted {
        task: String,
        attempt: u32,
    },
    TaskFinished {
        task: String,
        attempt: u32,
        outcome: AttemptOutcome,
        #[serde(default)]
        error: Option<TaskError>,
        #[serde(default)]
        output: Option<String>,
        #[serde(default)]
        exit_value: Option<String>,
        #[serde(default)]
        metrics: Option<serde_json::Value>,
    },
    /// Spark's figures for an ended attempt (jobs, tasks, executor time), when they were read
    /// after its `TaskFinished`: the agent reports an end without waiting for them.
    AttemptMetrics {
        task: String,
        attempt: u32,
        metrics: serde_json::Value,
    },
    RetryScheduled {
        task: String,
        attempt: u32,
        at_secs: f64,
    },
    /// Written by older builds; a skip is now a [`RunEvent::TaskSettled`].
    TaskSkipped {
        task: String,
        reason: String,
    },
    /// A resumed run keeps this task's success from the run it resumes.
    TaskCarriedOver {
        task: String,
    },
    /// The task reached its final state, as the scheduler decided it: one per task (or a
    /// [`RunEvent::TaskCarriedOver`]).
    TaskSettled {
        task: String,
        state: Final,
        reason: FinalReason,
    },
    CancelRequested {
        /// Why, when it was not a user's request (the server stopping).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The name of the API token that asked for it, as for `started_by`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A Spark session the run opened could not be deleted: it may still run (and bill) until
    /// Livy's idle timeout.
    SessionLeaked {
        session: String,
        reason: String,
    },
    RunFinished {
        status: RunStatus,
    },
    /// Written on start-up for runs whose process died before they finished.
    RunInterrupted {
        reason: String,
    },
    /// The run waits for its turn (its pipeline's `max_concurrent_runs`, or the server's
    /// limit): why, as decided when it was asked for.
    RunQueued {
        reason: String,
    },
    /// The queued run's turn came: it starts.
    RunAdmitted,
    /// The run's parameter values, checked, and what its `run.…` references read (a resumed
    /// run keeps the first run's): written once, after `RunStarted`.
    ParamsBound {
        run: RunInfo,
        /// The root file's `[params]`, each with its value.
        pipeline: Map<String, serde_json::Value>,
    },
    /// The values an attempt starts with, references resolved: written after its
    /// `TaskStarted`.
    AttemptParams {
        task: String,
        attempt: u32,
        params: Map<String, serde_json::Value>,
    },
    /// What a succeeded attempt published (its exit value as JSON, `spool.set_value`'s):
    /// written before its `TaskFinished` (attempt 0: carried over by a resume, written when the
    /// run starts); dependents read them, a resume keeps them.
    ValuesPublished {
        task: String,
        attempt: u32,
        values: TaskValues,
    },
    /// What a succeeded attempt left in its Spark session for other notebooks (`view:NAME`,
    /// `global_view:NAME`, `function:NAME`): written before its `TaskFinished` (attempt 0:
    /// carried over by a resume, written when the run starts). A resume into a new session
    /// runs the task again when a notebook that runs may read it.
    SessionStateCreated {
        task: String,
        attempt: u32,
        names: Vec<String>,
    },
    /// A task the resumed run succeeded runs again, in this run's new session, to rebuild the
    /// session state `names` that a notebook which runs after it may read.
    RebuildingSessionState {
        task: String,
        names: Vec<String>,
    },
    /// The task's conditions on values as the executor evaluated them, in order up to the
    /// first that did not hold (then the task is skipped): written before the decision.
    ConditionsEvaluated {
        task: String,
        conditions: Vec<EvaluatedCondition>,
    },
    /// A `[[notify]]` webhook was called about the run (`event`: failed, succeeded, cancelled,
    /// long_running): after `tries` calls it answered `status`, or failed with `error`.
    /// `target` is the webhook's scheme and host only (its path is a secret).
    Notified {
        event: crate::notify::NotifyOn,
        target: String,
        tries: u32,
        #[serde(default)]
        status: Option<u16>,
        #[serde(default)]
        error: Option<String>,
    },
    /// A for-each whose list is read at run time read it: the ids of its iterations (tasks of
    /// the run from now on, in item order), or why there is no list to iterate over (the
    /// for-each then fails). Written before the machine hears of it.
    ForEachExpanded {
        task: String,
        #[serde(default)]
        iterations: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A kind this build does not know (written by a newer Spool): read so that an older
    /// browser keeps working, and folded as nothing. Never written.
    #[serde(other)]
    Unknown,
}

/// What started a run, as its log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    /// A scheduled run's slot (milliseconds since 1970 UTC): what its `run.trigger_time`
    /// reads, however late it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_ms: Option<i64>,
}

impl Trigger {
    pub fn of(kind: TriggerKind) -> Trigger {
        Trigger {
            kind,
            scheduled_ms: None,
        }
    }

    /// A run of the pipeline's `[schedule]` for the slot `scheduled_ms`.
    pub fn schedule(scheduled_ms: i64) -> Trigger {
        Trigger {
            kind: TriggerKind::Schedule,
            scheduled_ms: Some(scheduled_ms),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// `spool run`.
    Cli,
    /// `POST /api/runs` (the browser's Run button).
    Api,
    /// A resume or repair of an earlier run (`spool run --resume`, the API's resume).
    Resume,
    /// The pipeline's `[schedule]`, run by `spool serve`.
    Schedule,
    /// A kind this build does not know (written by a newer Spool).
    #[serde(other)]
    Unknown,
}

impl TriggerKind {
    /// The kinds this build writes.
    pub const KNOWN: [TriggerKind; 4] = [
        TriggerKind::Cli,
        TriggerKind::Api,
        TriggerKind::Resume,
        TriggerKind::Schedule,
    ];

    pub fn parse(name: &str) -> Option<TriggerKind> {
        Self::KNOWN.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            TriggerKind::Cli => "cli",
            TriggerKind::Api => "api",
            TriggerKind::Resume => "resume",
            TriggerKind::Schedule => "schedule",
            TriggerKind::Unknown => "unknown",
        }
    }
}

/// Why a task ended as it did, as recorded (the run log's form of [`SettleReason`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FinalReason {
    /// How its last attempt ended.
    Attempt,
    /// The run was cancelled before it started, while it waited for a retry, or while it ran.
    RunCancelled,
    /// Skipped: `dependency` ended `state`, and this task runs only on `condition`.
    Condition {
        dependency: String,
        state: Final,
        condition: String,
    },
    /// A sub-pipeline end, settled from the tasks inside it.
    PipelineEnd,
    /// A for-each, settled from its iterations.
    Iterations,
    /// A for-each whose list could not be read (the task's `items_error` says why).
    ItemsUnreadable,
    /// Skipped: the `if` of its dependency on `dependency` did not hold (what it read is in
    /// the task's `conditions`).
    ValueCondition {
        dependency: String,
        condition: String,
    },
    /// A reason this build does not know (written by a newer Spool).
    #[serde(other)]
    Unknown,
}

/// A condition on values as it was evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluatedCondition {
    /// The task whose dependency has the `if`.
    pub dependency: String,
    #[serde(rename = "if")]
    pub condition: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl EvaluatedCondition {
    /// Task `task`'s conditions paired with their verdicts (as many as were evaluated).
    pub fn of_task(plan: &Plan, task: usize, verdicts: &[Verdict]) -> Vec<EvaluatedCondition> {
        plan.tasks[task]
            .conditions
            .iter()
            .zip(verdicts)
            .map(|(c, v)| EvaluatedCondition {
                dependency: c.dependency.clone(),
                condition: c.condition.text.clone(),
                verdict: v.clone(),
            })
            .collect()
    }

    /// What it read and why it failed, for people: `tasks.check.values.rows = 0`.
    pub fn describe_reads(&self) -> String {
        let mut parts: Vec<String> = self
            .verdict
            .read
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        if let Some(e) = &self.verdict.error {
            parts.push(format!("error: {e}"));
        }
        parts.join(", ")
    }
}

impl FinalReason {
    /// The recorded form of why `task` settled; `None` for a task carried over (recorded as
    /// [`RunEvent::TaskCarriedOver`]).
    fn of_settle(plan: &Plan, task: usize, reason: SettleReason) -> Option<FinalReason> {
        Some(match reason {
            SettleReason::Attempt => FinalReason::Attempt,
            SettleReason::RunCancelled => FinalReason::RunCancelled,
            SettleReason::PipelineEnd => FinalReason::PipelineEnd,
            SettleReason::Iterations => FinalReason::Iterations,
            SettleReason::ItemsUnreadable => FinalReason::ItemsUnreadable,
            SettleReason::CarriedOver => return None,
            SettleReason::ValueCondition { condition } => {
                let c = plan.tasks[task].conditions.get(condition as usize);
                FinalReason::ValueCondition {
                    dependency: c.map_or("?", |c| &c.dependency).to_string(),
                    condition: c.map_or("?", |c| &c.condition.text).to_string(),
                }
            }
            SettleReason::Condition { dependency, state } => FinalReason::Condition {
                dependency: plan.tasks[dependency].id.clone(),
                state,
                condition: plan.deps[task]
                    .iter()
                    .find(|&&(d, _)| d == dependency)
                    .map_or("?", |&(_, c)| c.name())
                    .to_string(),
            },
        })
    }

    /// The reason in words, for people.
    pub fn describe(&self) -> String {
        match self {
            FinalReason::Attempt => "its last attempt".into(),
            FinalReason::RunCancelled => "the run was cancelled".into(),
            FinalReason::Condition {
                dependency,
                state,
                condition,
            } => format!(
                "`{dependency}` {}, but it runs only when `{dependency}` {condition}",
                state.name()
            ),
            FinalReason::PipelineEnd => "from the tasks of its sub-pipeline".into(),
            FinalReason::Iterations => "from its iterations".into(),
            FinalReason::ItemsUnreadable => "its for_each list could not be read".into(),
            FinalReason::ValueCondition {
                dependency,
                condition,
            } => format!("the `if` of its dependency on `{dependency}` did not hold: {condition}"),
            FinalReason::Unknown => "a reason this version of Spool does not know".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for its turn (`on_overlap = "queue"`, or the server's limit on runs at once).
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Interrupted,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
    ];

    /// The status's name, as the run log writes it.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(name: &str) -> Option<RunStatus> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether the run has ended (nothing more happens to it but a resume, which is a new run).
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Running | RunStatus::Queued)
    }
}

impl From<RunOutcome> for RunStatus {
    fn from(outcome: RunOutcome) -> Self {
        match outcome {
            RunOutcome::Succeeded => RunStatus::Succeeded,
            RunOutcome::Failed => RunStatus::Failed,
            RunOutcome::Cancelled => RunStatus::Cancelled,
        }
    }
}

impl RunEvent {
    /// Whether this is a run's final event (nothing is written after it).
    pub fn ends_run(&self) -> bool {
        matches!(
            self,
            RunEvent::RunFinished { .. } | RunEvent::RunInterrupted { .. }
        )
    }

    /// What the run log records for a command of the scheduling machine, before the driver
    /// carries it out; `None` for a command that is only an action (a cancel: what it leads
    /// to is recorded when the attempt reports back). The one mapping every driver uses, so
    /// that the log holds the machine's decisions and nothing else decides.
    pub fn of_command(plan: &Plan, cmd: &Command) -> Option<RunEvent> {
        let id = |t: usize| plan.tasks[t].id.clone();
        Some(match *cmd {
            Command::StartNotebook { task, attempt, .. } => RunEvent::TaskStarted {
                task: id(task),
                attempt,
            },
            Command::CancelNotebook { .. } => return None,
            Command::ScheduleRetry { task, attempt, at } => RunEvent::RetryScheduled {
                task: id(task),
                attempt,
                at_secs: at,
            },
            Command::Settle {
                task,
                state,
                reason,
            } => match FinalReason::of_settle(plan, task, reason) {
                Some(reason) => RunEvent::TaskSettled {
                    task: id(task),
                    state,
                    reason,
                },
                None => RunEvent::TaskCarriedOver { task: id(task) },
            },
            Command::FinishRun { outcome } => RunEvent::RunFinished {
                status: outcome.into(),
            },
            // What the evaluation found is the executor's record (`ConditionsEvaluated`), as
            // is what an expansion read (`ForEachExpanded`).
            Command::EvaluateConditions { .. } | Command::ExpandForEach { .. } => return None,
        })
    }
}

/// An event with its place in the run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: i64,
    pub at_ms: i64,
    pub event: RunEvent,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    /// The values it started with (not in logs of older builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, serde_json::Value>>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub outcome: Option<AttemptOutcome>,
    pub error: Option<TaskError>,
    pub output: Option<String>,
    pub exit_value: Option<String>,
    pub metrics: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub attempts: Vec<AttemptRecord>,
    /// Why it was skipped, in words.
    pub skipped: Option<String>,
    /// Kept from the resumed run instead of running again.
    pub carried_over: bool,
    /// Its final state; `None` while the run has not decided it.
    #[serde(default)]
    pub state: Option<Final>,
    /// Why it ended so (not for carried-over tasks, nor in logs of older builds).
    #[serde(default)]
    pub reason: Option<FinalReason>,
    /// What its succeeded attempt published (or, carried over, what it had published).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<TaskValues>,
    /// What its succeeded attempt (or, carried over, the resumed run's) left in the session.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_state: Vec<String>,
    /// Run again only to rebuild that session state (see `RebuildingSessionState`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebuilt: bool,
    /// Its conditions on values as last evaluated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<EvaluatedCondition>,
    /// A for-each whose list was read at run time: its iterations' ids, in item order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iterations: Vec<String>,
    /// A for-each whose list could not be read: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_error: Option<String>,
}

impl TaskRecord {
    /// What the task published, if it ended succeeded (nothing published: no values).
    pub fn published(&self) -> Option<TaskValues> {
        self.succeeded()
            .then(|| self.values.clone().unwrap_or_default())
    }

    /// Whether the task ended succeeded: what resume keeps.
    pub fn succeeded(&self) -> bool {
        self.state == Some(Final::Succeeded)
    }

    /// A log written before every final state was recorded: the final state its facts imply.
    fn settle_legacy(&mut self) {
        if self.state.is_some() {
            return;
        }
        self.state = if self.carried_over {
            Some(Final::Succeeded)
        } else if self.skipped.is_some() {
            Some(Final::Skipped)
        } else {
            self.attempts
                .last()
                .and_then(|a| a.outcome)
                .map(|o| match o {
                    AttemptOutcome::Succeeded => Final::Succeeded,
                    AttemptOutcome::Failed | AttemptOutcome::TimedOut => Final::Failed,
                    AttemptOutcome::Cancelled => Final::Cancelled,
                })
        };
    }
}

/// A run rebuilt from its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: i64,
    pub pipeline: String,
    pub file: String,
    pub status: RunStatus,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub resumed_from: Option<i64>,
    pub params: BTreeMap<String, serde_json::Value>,
    pub tasks: BTreeMap<String, TaskRecord>,
    /// What `run.…` references read and the `[params]` values (not in logs of older builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_info: Option<RunInfo>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub pipeline_params: Map<String, serde_json::Value>,
    /// Sessions that could not be deleted (id and why): shown, never swallowed.
    #[serde(default)]
    pub leaked_sessions: Vec<(String, String)>,
    /// What started it (not in logs of older builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The name of the API token that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
}

impl RunRecord {
    /// The run as its first event (a `RunStarted`) describes it; `None` for any other event.
    pub fn started(id: i64, first: &StoredEvent) -> Option<RunRecord> {
        let RunEvent::RunStarted {
            pipeline,
            file,
            params,
            resumed_from,
            trigger,
            started_by,
            ..
        } = &first.event
        else {
            return None;
        };
        Some(RunRecord {
            id,
            pipeline: pipeline.clone(),
            file: file.clone(),
            status: RunStatus::Running,
            started_ms: first.at_ms,
            ended_ms: None,
            resumed_from: *resumed_from,
            params: params.clone(),
            tasks: BTreeMap::new(),
            run_info: None,
            pipeline_params: Map::new(),
            leaked_sessions: Vec::new(),
            trigger: trigger.clone(),
            started_by: started_by.clone(),
        })
    }

    /// Folds all of a run's events, in order; `None` when they do not begin with `RunStarted`.
    pub fn fold(id: i64, events: &[StoredEvent]) -> Option<RunRecord> {
        let (first, rest) = events.split_first()?;
        let mut run = RunRecord::started(id, first)?;
        for e in rest {
            run.apply(e);
        }
        Some(run)
    }

    /// Folds one more event in. Events that do not change the record (the session, retries,
    /// a cancel request, kinds this build does not know) leave it as it is.
    pub fn apply(&mut self, stored: &StoredEvent) {
        let at = stored.at_ms;
        match &stored.event {
            RunEvent::TaskStarted { task, attempt } => {
                self.task(task).attempts.push(AttemptRecord {
                    attempt: *attempt,
                    started_ms: at,
                    ..AttemptRecord::default()
                });
            }
            RunEvent::TaskFinished {
                task,
                attempt,
                outcome,
                error,
                output,
                exit_value,
                metrics,
            } => {
                let rec = self.task(task);
                // A finish without a recorded start keeps its outcome, as an attempt of no
                // length.
                let i = match rec.attempts.iter().rposition(|a| a.attempt == *attempt) {
                    Some(i) => i,
                    None => {
                        rec.attempts.push(AttemptRecord {
                            attempt: *attempt,
                            started_ms: at,
                            ..AttemptRecord::default()
                        });
                        rec.attempts.len() - 1
                    }
                };
                let a = &mut rec.attempts[i];
                a.ended_ms = Some(at);
                a.outcome = Some(*outcome);
                a.error.clone_from(error);
                a.output.clone_from(output);
                a.exit_value.clone_from(exit_value);
                a.metrics.clone_from(metrics);
            }
            RunEvent::TaskSkipped { task, reason } => {
                self.task(task).skipped = Some(reason.clone());
            }
            RunEvent::TaskCarriedOver { task } => {
                let rec = self.task(task);
                rec.carried_over = true;
                rec.state = Some(Final::Succeeded);
            }
            RunEvent::TaskSettled {
                task,
                state,
                reason,
            } => {
                let rec = self.task(task);
                rec.state = Some(*state);
                rec.reason = Some(reason.clone());
                if *state == Final::Skipped {
                    let read = match (reason, rec.conditions.last()) {
                        (FinalReason::ValueCondition { .. }, Some(c)) => {
                            format!(" ({})", c.describe_reads())
                        }
                        _ => String::new(),
                    };
                    rec.skipped = Some(format!("{}{read}", reason.describe()));
                }
            }
            RunEvent::RunFinished { status } => {
                self.status = *status;
                self.ended_ms = Some(at);
                self.tasks.values_mut().for_each(TaskRecord::settle_legacy);
            }
            RunEvent::RunInterrupted { .. } => {
                self.status = RunStatus::Interrupted;
                self.ended_ms = Some(at);
                self.tasks.values_mut().for_each(TaskRecord::settle_legacy);
            }
            RunEvent::RunQueued { .. } => self.status = RunStatus::Queued,
            RunEvent::RunAdmitted => self.status = RunStatus::Running,
            RunEvent::SessionLeaked { session, reason } => {
                self.leaked_sessions.push((session.clone(), reason.clone()));
            }
            RunEvent::ParamsBound { run, pipeline } => {
                self.run_info = Some(*run);
                self.pipeline_params.clone_from(pipeline);
            }
            RunEvent::AttemptParams {
                task,
                attempt,
                params,
            } => {
                if let Some(a) = self.attempt(task, *attempt) {
                    a.params = Some(params.clone());
                }
            }
            RunEvent::ValuesPublished { task, values, .. } => {
                self.task(task).values = Some(values.clone());
            }
            RunEvent::SessionStateCreated { task, names, .. } => {
                self.task(task).session_state.clone_from(names);
            }
            RunEvent::RebuildingSessionState { task, .. } => self.task(task).rebuilt = true,
            RunEvent::ConditionsEvaluated { task, conditions } => {
                self.task(task).conditions.clone_from(conditions);
            }
            RunEvent::ForEachExpanded {
                task,
                iterations,
                error,
            } => {
                let rec = self.task(task);
                rec.iterations.clone_from(iterations);
                rec.items_error.clone_from(error);
            }
            RunEvent::AttemptMetrics {
                task,
                attempt,
                metrics,
            } => {
                if let Some(a) = self.attempt(task, *attempt) {
                    a.metrics = Some(metrics.clone());
                }
            }
            RunEvent::RunStarted { .. }
            | RunEvent::SessionChanged { .. }
            | RunEvent::RetryScheduled { .. }
            | RunEvent::Notified { .. }
            | RunEvent::CancelRequested { .. }
            | RunEvent::Unknown => {}
        }
    }

    fn task(&mut self, id: &str) -> &mut TaskRecord {
        self.tasks.entry(id.to_string()).or_default()
    }

    /// A recorded attempt (the latest of that number).
    fn attempt(&mut self, task: &str, attempt: u32) -> Option<&mut AttemptRecord> {
        self.tasks
            .get_mut(task)?
            .attempts
            .iter_mut()
            .rev()
            .find(|a| a.attempt == attempt)
    }

    /// What `run.…` references read in this run, and in a resume of it.
    pub fn run_info(&self) -> RunInfo {
        // A run that never got as far as its values (a scheduled start refused) still has
        // its slot.
        let trigger_ms = self.trigger.as_ref().and_then(|t| t.scheduled_ms);
        self.run_info.unwrap_or(RunInfo {
            id: self.id,
            trigger_ms: trigger_ms.unwrap_or(self.started_ms),
        })
    }
}

/// How many of a run's tasks reached each final state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounts {
    pub succeeded: u32,
    pub failed: u32,
    pub skipped: u32,
    pub cancelled: u32,
}

impl TaskCounts {
    fn add(&mut self, state: Final) {
        let count = match state {
            Final::Succeeded => &mut self.succeeded,
            Final::Failed => &mut self.failed,
            Final::Skipped => &mut self.skipped,
            Final::Cancelled => &mut self.cancelled,
        };
        *count += 1;
    }
}

/// A run as the history lists it: what its first event says, its status and how many tasks
/// ended in each state. The server keeps one beside each run's log, updated in the same
/// transaction as the events, so that a listing reads one row per run instead of folding
/// every run's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: i64,
    pub pipeline: String,
    pub file: String,
    pub status: RunStatus,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub resumed_from: Option<i64>,
    /// The name of the API token that started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    pub task_counts: TaskCounts,
    /// The first notebook attempt's start and the last one's end, once there are.
    pub first_start_ms: Option<i64>,
    pub last_end_ms: Option<i64>,
    /// What started it (not in logs of older builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
}

impl RunSummary {
    /// The summary of a whole folded run.
    pub fn of(run: &RunRecord) -> RunSummary {
        let attempts = || run.tasks.values().flat_map(|t| &t.attempts);
        let mut task_counts = TaskCounts::default();
        run.tasks
            .values()
            .filter_map(|t| t.state)
            .for_each(|s| task_counts.add(s));
        RunSummary {
            id: run.id,
            pipeline: run.pipeline.clone(),
            file: run.file.clone(),
            status: run.status,
            started_ms: run.started_ms,
            ended_ms: run.ended_ms,
            resumed_from: run.resumed_from,
            started_by: run.started_by.clone(),
            task_counts,
            first_start_ms: attempts().map(|a| a.started_ms).min(),
            last_end_ms: attempts().filter_map(|a| a.ended_ms).max(),
            trigger: run.trigger.clone(),
        }
    }

    /// The run's makespan as a dry run without start-up predicts it: from the first notebook
    /// start to the last notebook end (`None` before a notebook ended).
    pub fn notebook_span_secs(&self) -> Option<f64> {
        let (first, last) = (self.first_start_ms?, self.last_end_ms?);
        Some((last - first).max(0) as f64 / 1000.0)
    }

    /// Applies one more event (after the run's first), as [`RunRecord::apply`] would change
    /// what the summary shows. Exact for logs that settle each task once, as this build
    /// writes them; a log of an older build settles tasks only in the fold of its end, so the
    /// server summarises a run's end from its whole fold.
    pub fn apply(&mut self, stored: &StoredEvent) {
        let at = stored.at_ms;
        match &stored.event {
            RunEvent::TaskStarted { .. } => {
                self.first_start_ms = Some(self.first_start_ms.map_or(at, |f| f.min(at)));
            }
            // A finish without a recorded start is an attempt of no length (as in the fold).
            RunEvent::TaskFinished { .. } => {
                self.first_start_ms = Some(self.first_start_ms.map_or(at, |f| f.min(at)));
                self.last_end_ms = Some(self.last_end_ms.map_or(at, |l| l.max(at)));
            }
            RunEvent::TaskSettled { state, .. } => self.task_counts.add(*state),
            RunEvent::TaskCarriedOver { .. } => self.task_counts.add(Final::Succeeded),
            RunEvent::RunFinished { status } => {
                self.status = *status;
                self.ended_ms = Some(at);
            }
            RunEvent::RunInterrupted { .. } => {
                self.status = RunStatus::Interrupted;
                self.ended_ms = Some(at);
            }
            RunEvent::RunQueued { .. } => self.status = RunStatus::Queued,
            RunEvent::RunAdmitted => self.status = RunStatus::Running,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_web_addresses_are_linked() {
        let ui = "http://ip-10-0-0-10.ec2.internal:20888/proxy/application_1/";
        assert_eq!(super::web_address(ui).as_deref(), Some(ui));
        assert!(super::web_address("HTTPS://x/").is_some());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "http://a b",
            "ftp://x",
            "",
            "http://x\n",
        ] {
            assert_eq!(super::web_address(bad), None, "{bad}");
        }
        assert_eq!(
            super::web_address(&format!("https://x/{}", "a".repeat(3000))),
            None
        );
    }

    use super::*;

    fn events(json: &str) -> Vec<StoredEvent> {
        serde_json::from_str(json).expect("test events parse")
    }

    #[test]
    fn metrics_read_after_an_end_belong_to_that_attempt() {
        let evs = events(
            r#"[
            {"seq":0,"at_ms":1000,"event":{"type":"run_started","pipeline":"p","file":"p.toml","params":{},"resumed_from":null,"plan":{}}},
            {"seq":1,"at_ms":1100,"event":{"type":"task_started","task":"a","attempt":1}},
            {"seq":2,"at_ms":1200,"event":{"type":"task_finished","task":"a","attempt":1,"outcome":"failed"}},
            {"seq":3,"at_ms":1210,"event":{"type":"task_started","task":"a","attempt":2}},
            {"seq":4,"at_ms":1220,"event":{"type":"attempt_metrics","task":"a","attempt":1,"metrics":{"jobs":2}}},
            {"seq":5,"at_ms":1230,"event":{"type":"attempt_metrics","task":"gone","attempt":1,"metrics":{"jobs":9}}}
        ]"#,
        );
        let run = RunRecord::fold(1, &evs).expect("starts with run_started");
        let a = &run.tasks["a"].attempts;
        assert_eq!(a[0].metrics, Some(serde_json::json!({"jobs": 2})));
        assert_eq!(a[0].ended_ms, Some(1200), "the metrics do not move the end");
        assert_eq!(a[1].metrics, None);
        assert!(
            !run.tasks.contains_key("gone"),
            "no attempt is made up for them"
        );
    }

    #[test]
    fn events_fold_into_attempts_skips_and_the_final_status() {
        let evs = events(
            r#"[
            {"seq":0,"at_ms":1000,"event":{"type":"run_started","pipeline":"p","file":"p.toml","params":{"d":1},"resumed_from":4,"plan":{}}},
            {"seq":1,"at_ms":1100,"event":{"type":"task_started","task":"a","attempt":1}},
            {"seq":2,"at_ms":1200,"event":{"type":"task_finished","task":"a","attempt":1,"outcome":"failed","error":{"ename":"ValueError","evalue":"bad"}}},
            {"seq":3,"at_ms":1200,"event":{"type":"retry_scheduled","task":"a","attempt":2,"at_secs":1.5}},
            {"seq":4,"at_ms":1300,"event":{"type":"task_started","task":"a","attempt":2}},
            {"seq":5,"at_ms":1400,"event":{"type":"task_finished","task":"a","attempt":2,"outcome":"succeeded","output":"ok","metrics":{"rows":3}}},
            {"seq":6,"at_ms":1400,"event":{"type":"task_skipped","task":"b","reason":"a dependency failed"}},
            {"seq":7,"at_ms":1400,"event":{"type":"task_carried_over","task":"c"}},
            {"seq":8,"at_ms":1450,"event":{"type":"task_finished","task":"d","attempt":1,"outcome":"timed_out"}},
            {"seq":9,"at_ms":1500,"event":{"type":"run_finished","status":"failed"}}
        ]"#,
        );
        let run = RunRecord::fold(7, &evs).expect("starts with run_started");
        assert_eq!((run.id, run.pipeline.as_str()), (7, "p"));
        assert_eq!(
            (run.resumed_from, run.params["d"].clone()),
            (Some(4), 1.into())
        );
        assert_eq!(
            (run.status, run.started_ms, run.ended_ms),
            (RunStatus::Failed, 1000, Some(1500))
        );
        let a = &run.tasks["a"];
        assert_eq!(a.attempts.len(), 2);
        assert_eq!(
            a.attempts[0].error.as_ref().map(|e| e.ename.as_str()),
            Some("ValueError")
        );
        assert_eq!(a.attempts[1].output.as_deref(), Some("ok"));
        assert_eq!(a.attempts[1].metrics, Some(serde_json::json!({"rows": 3})));
        assert!(a.succeeded());
        assert!(!run.tasks["b"].succeeded());
        assert_eq!(
            run.tasks["b"].skipped.as_deref(),
            Some("a dependency failed")
        );
        assert!(
            run.tasks["c"].succeeded(),
            "carried over counts as succeeded"
        );
        let d = &run.tasks["d"].attempts;
        assert_eq!(
            (d.len(), d[0].started_ms, d[0].ended_ms, d[0].outcome),
            (1, 1450, Some(1450), Some(AttemptOutcome::TimedOut)),
            "a finish without a start is an attempt of no length"
        );
    }

    #[test]
    fn a_log_must_begin_with_run_started() {
        assert_eq!(RunRecord::fold(1, &[]), None);
        let evs = events(r#"[{"seq":0,"at_ms":0,"event":{"type":"cancel_requested"}}]"#);
        assert_eq!(RunRecord::fold(1, &evs), None);
    }

    #[test]
    fn unknown_kinds_are_read_and_folded_as_nothing() {
        let evs = events(
            r#"[
            {"seq":0,"at_ms":0,"event":{"type":"run_started","pipeline":"p","file":"p.toml","params":{},"resumed_from":null,"plan":{}}},
            {"seq":1,"at_ms":5,"event":{"type":"something_new","x":1}}
        ]"#,
        );
        assert_eq!(evs[1].event, RunEvent::Unknown);
        let run = RunRecord::fold(1, &evs).expect("starts with run_started");
        assert_eq!(Some(run), RunRecord::fold(1, &evs[..1]));
    }

    #[test]
    fn the_stored_format_keeps_its_names() {
        let e = StoredEvent {
            seq: 3,
            at_ms: 9,
            event: RunEvent::TaskFinished {
                task: "a".into(),
                attempt: 2,
                outcome: AttemptOutcome::TimedOut,
                error: Some(TaskError::spool("Timeout", "too long")),
                output: None,
                exit_value: None,
                metrics: None,
            },
        };
        let json = serde_json::to_string(&e).expect("serializes");
        assert_eq!(
            json,
            r#"{"seq":3,"at_ms":9,"event":{"type":"task_finished","task":"a","attempt":2,"outcome":"timed_out","error":{"ename":"Timeout","evalue":"too long","traceback":[],"cell":null,"line":null},"output":null,"exit_value":null,"metrics":null}}"#
        );
        assert_eq!(serde_json::from_str::<StoredEvent>(&json).ok(), Some(e));
    }
}
