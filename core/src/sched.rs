//! The scheduling state machine of one run: events in, commands out, no clock and no I/O.
//!
//! A driver (the simulator, or the real executor from an async loop) feeds [`Event`]s with the
//! time they happened, `now`, in seconds since the run was triggered, and carries out the
//! [`Command`]s it gets back. The same machine drives both, so a dry run predicts a real run.
//!
//! Semantics, where the pipeline format leaves a choice:
//! - A task is *resolved* when every dependency is final. If every dependency's condition
//!   accepts the dependency's outcome it becomes ready, otherwise it is skipped (and the skip
//!   flows on through the dependents' conditions). A failure never stops unrelated branches.
//! - A task with conditions on values (an `if` on a dependency) whose dependencies' outcomes
//!   hold asks the driver to evaluate them ([`Command::EvaluateConditions`], answered by
//!   [`Event::ConditionsEvaluated`]): the machine holds no values, the driver does, and core's
//!   [`crate::value_condition`] decides. A condition that does not hold skips the task like an
//!   outcome condition that does not.
//! - A sub-pipeline's end ([`TaskKind::PipelineEnd`]) is never started: the machine finishes it
//!   the moment it resolves — failed if any dependency failed, skipped if it has dependencies and
//!   all were skipped, succeeded otherwise (skipped too if its own conditions do not hold).
//! - A for-each ([`TaskKind::ForEach`]) is never started either. A literal list's iterations
//!   are tasks of the plan and the for-each settles from them as a sub-pipeline's end does. A
//!   list read at run time: once the for-each's own conditions hold, the machine asks the
//!   driver for its items ([`Command::ExpandForEach`]); [`Event::ForEachExpanded`] says how many
//!   there are (the driver adds as many iterations at the end of its plan, in the same order:
//!   task ids `task_count()..`), the machine adds them ready to run, and the for-each settles
//!   from them once all are final (succeeded at once for an empty list; failed, with
//!   [`SettleReason::ItemsUnreadable`], when the driver could not read a list of at most
//!   [`crate::for_each::MAX_ITEMS`]). At most `for_each_concurrency` iterations of a for-each
//!   are queued or running at once; the others wait, in item order, for one to settle.
//! - A notebook has `1 + retry` attempts (at most `1 + MAX_RETRIES`). A failed or timed-out
//!   attempt with attempts left is retried `retry_interval_secs` later; a timed-out attempt is
//!   also cancelled. The timeout counts from admission, so a submission that hangs is bounded
//!   too.
//! - Admission: the slots of running notebooks never exceed the capacity, and at most
//!   `max_concurrency` notebooks run at once. A notebook wanting more slots than the whole
//!   capacity is clamped to the capacity (it then runs alone) rather than failed: the real pool
//!   may turn out smaller than planned, and that should slow a run down, not break it.
//! - Ready notebooks are ordered by the policy; when the first one does not fit, later ones
//!   may jump ahead only if they do not delay it (EASY backfilling on the estimates): they end,
//!   by estimate, before enough slots free up for it, or they use slots it will not need.
//! - Cancel requested: running notebooks get a cancel command, nothing new starts, and every
//!   task that has not finished ends `Cancelled`. The run finishes once every running notebook
//!   has reported back (or timed out); a failure reported after the cancel also counts as
//!   cancelled (the cancel is its likely cause). A notebook cancelled from outside (not by a run
//!   cancel) ends `Cancelled` without retry; its dependents see it as failed.
//! - The run succeeds only when no task failed (as Airflow and Databricks Workflows judge a
//!   run, and what `spool run`'s exit code promises): a failure handler (`on = "failed"`) that
//!   ran does not turn a failed notebook into a successful run. A cancelled run is `Cancelled`.
//! - Every task's final state comes out as exactly one [`Command::Settle`], with its reason
//!   (tasks carried over from a resumed run at the start), so that a run log holds every final
//!   state as the machine decided it and views only fold that log.
//! - Events that do not match the current state (an unknown task, a stale attempt, a report
//!   after a timeout) are ignored: a driver may race with the machine's own decisions.

use crate::dag::{Plan, TaskId, TaskKind};
use crate::model::{Condition, Outcome, Pool};
use crate::value_condition::Verdict;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

/// Upper bound on a notebook's retries, whatever its settings say.
pub const MAX_RETRIES: u32 = 100;

/// How far down each ready queue backfilling looks for a notebook that does not delay the
/// blocked first one (bounds the work of an admission round).
const BACKFILL_LOOKAHEAD: usize = 16;

/// How ready notebooks are ordered for admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Longest remaining estimated path to the end of the pipeline first (list scheduling).
    #[default]
    CriticalPath,
    /// In the order notebooks became ready (Genie's behaviour).
    Fifo,
}

impl Policy {
    pub const NAMES: [&'static str; 2] = ["critical-path", "fifo"];

    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "critical-path" => Some(Policy::CriticalPath),
            "fifo" => Some(Policy::Fifo),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::CriticalPath => "critical-path",
            Policy::Fifo => "fifo",
        }
    }
}

/// The pool limits admission respects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub capacity_slots: u32,
    /// `None`: limited by slots only.
    pub max_concurrency: Option<u32>,
}

impl Admission {
    pub fn of_pool(pool: &Pool) -> Self {
        Admission {
            capacity_slots: pool.capacity(),
            max_concurrency: pool.max_concurrency,
        }
    }
}

/// Something that happened, reported by the driver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    RunStarted,
    /// The notebook actually began (after submission); refines the estimate of its end.
    NotebookStarted {
        task: TaskId,
        attempt: u32,
    },
    NotebookSucceeded {
        task: TaskId,
        attempt: u32,
    },
    NotebookFailed {
        task: TaskId,
        attempt: u32,
    },
    NotebookTimedOut {
        task: TaskId,
        attempt: u32,
    },
    NotebookCancelled {
        task: TaskId,
        attempt: u32,
    },
    RetryTimerFired {
        task: TaskId,
    },
    CancelRequested,
    /// The run's own `timeout_secs` passed: it is cancelled (the deadline says when).
    RunTimedOut,
    /// The pool's real size became known (or changed); a capacity of 0 counts as 1.
    CapacityChanged {
        slots: u32,
    },
    /// The answer to [`Command::EvaluateConditions`]: `failed` is the index (in the task's
    /// `conditions`) of the first condition that did not hold, `None` when all held.
    ConditionsEvaluated {
        task: TaskId,
        failed: Option<u32>,
    },
    /// The answer to [`Command::ExpandForEach`]: the list has `items` items (the driver added
    /// as many iterations to its plan), or `None` when there is no list of at most
    /// [`crate::for_each::MAX_ITEMS`] items to iterate over (the for-each fails).
    ForEachExpanded {
        task: TaskId,
        items: Option<u32>,
    },
}

impl Event {
    /// The answer to [`Command::EvaluateConditions`], from the verdicts
    /// [`crate::value_condition::evaluate_all`] gave.
    pub fn conditions_evaluated(task: TaskId, verdicts: &[Verdict]) -> Event {
        Event::ConditionsEvaluated {
            task,
            failed: verdicts.iter().position(|v| !v.holds).map(|i| i as u32),
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command {
    /// Run `attempt` (1 for the first) of a notebook, holding `slots` (its setting, clamped to
    /// the capacity).
    StartNotebook {
        task: TaskId,
        attempt: u32,
        slots: u32,
    },
    CancelNotebook {
        task: TaskId,
        attempt: u32,
    },
    /// Send [`Event::RetryTimerFired`] at `at`; `attempt` is the attempt that will then run.
    ScheduleRetry {
        task: TaskId,
        attempt: u32,
        at: f64,
    },
    /// The task reached its final state: every task gets exactly one of these, the record a
    /// run log needs to show it final (a notebook's own attempts say how they ended, not what
    /// the task became: a failure after a run cancel counts as cancelled, for one).
    Settle {
        task: TaskId,
        state: Final,
        reason: SettleReason,
    },
    FinishRun {
        outcome: RunOutcome,
    },
    /// Evaluate the task's conditions on values (its dependencies' outcomes hold) and send
    /// [`Event::ConditionsEvaluated`].
    EvaluateConditions {
        task: TaskId,
    },
    /// Read the items of for-each `task` (its conditions hold), add its iterations to the plan
    /// and send [`Event::ForEachExpanded`].
    ExpandForEach {
        task: TaskId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunOutcome {
    Succeeded,
    Failed,
    Cancelled,
}

/// Why a task reached its final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SettleReason {
    /// How its last attempt ended (the state is that attempt's outcome; a timeout is a
    /// failure).
    Attempt,
    /// The run was cancelled before the task started, while it waited for a retry, or while it
    /// ran (a failure reported after the cancel counts as cancelled).
    RunCancelled,
    /// Skipped: `dependency` ended `state`, which this task's condition on it does not accept.
    Condition { dependency: TaskId, state: Final },
    /// Skipped: its condition on values `condition` (an index in the task's `conditions`) did
    /// not hold.
    ValueCondition { condition: u32 },
    /// A sub-pipeline end, settled from the tasks inside it.
    PipelineEnd,
    /// A for-each, settled from its iterations.
    Iterations,
    /// A for-each whose items could not be read (the driver records why).
    ItemsUnreadable,
    /// Kept from the run this one resumes.
    CarriedOver,
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Final {
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl Final {
    /// The state's name, as the run log writes it.
    pub fn name(self) -> &'static str {
        match self {
            Final::Succeeded => "succeeded",
            Final::Failed => "failed",
            Final::Skipped => "skipped",
            Final::Cancelled => "cancelled",
        }
    }

    /// The outcome dependency conditions see: a cancelled task counts as failed.
    pub fn outcome(self) -> Outcome {
        match self {
            Final::Succeeded => Outcome::Succeeded,
            Final::Failed | Final::Cancelled => Outcome::Failed,
            Final::Skipped => Outcome::Skipped,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TaskState {
    /// Some dependency is not final yet.
    Waiting,
    /// Its dependencies' outcomes hold; its conditions on values are being evaluated.
    Evaluating,
    /// A for-each whose conditions hold, waiting for the driver to read its items.
    Expanding,
    /// Queued for admission.
    Ready {
        attempt: u32,
    },
    /// `since`: admission, or the reported start when the driver sent one.
    Running {
        attempt: u32,
        since: f64,
    },
    RetryWait {
        attempt: u32,
        at: f64,
    },
    Done(Final),
}

/// The next moment the driver must wake up for, and the event to send then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deadline {
    pub at: f64,
    pub event: Event,
}

/// Per-task facts copied out of the plan, so the machine owns its data (a driver can move it
/// into an async task) and reads them from compact arrays.
#[derive(Clone)]
struct TaskFacts {
    pipeline_end: bool,
    /// A for-each's own task: whether its items are read at run time, and how many of its
    /// iterations may be queued or running at once.
    for_each: Option<(bool, u32)>,
    /// An iteration's for-each.
    group: Option<TaskId>,
    /// Whether it has conditions on values to evaluate before it runs.
    gated: bool,
    slots: u32,
    estimate: f64,
    timeout: f64,
    retries: u32,
    retry_interval: f64,
    /// Ordering key, higher first (the remaining path for critical-path, 0 for fifo).
    priority: f64,
}

impl TaskFacts {
    /// Whether the task settles from its dependencies instead of running (a sub-pipeline's
    /// end, a literal for-each).
    fn joins(&self) -> bool {
        self.pipeline_end || matches!(self.for_each, Some((false, _)))
    }
}

pub struct Machine {
    facts: Vec<TaskFacts>,
    /// Incoming dependencies, `deps[dep_start[t]..dep_start[t + 1]]`.
    dep_start: Vec<usize>,
    deps: Vec<(TaskId, Condition)>,
    dependents: Vec<Vec<TaskId>>,
    state: Vec<TaskState>,
    /// Dependencies not yet final.
    unmet: Vec<u32>,
    carried_over: Vec<bool>,
    /// Succeeded in the resumed run, and run again to rebuild the session state (temp views,
    /// functions) that a task which runs may read.
    rebuilt: Vec<bool>,
    /// Slots a running notebook holds (fixed at admission, whatever the capacity does later).
    held: Vec<u32>,
    /// Ready queues, one per slot count, sorted by slot count.
    queues: Vec<(u32, BinaryHeap<Ready>)>,
    ready_seq: u64,
    /// Retry timers and timeouts; entries go stale when the task moves on and are dropped
    /// when they reach the top.
    timers: BinaryHeap<Reverse<Timer>>,
    running: Vec<TaskId>,
    running_pos: Vec<usize>,
    capacity: u32,
    max_concurrency: u32,
    busy: u64,
    finals: usize,
    started: bool,
    cancelled: bool,
    /// When the run is cancelled for taking too long (seconds since the trigger).
    run_deadline: Option<f64>,
    outcome: Option<RunOutcome>,
    settle: VecDeque<(TaskId, Final, SettleReason)>,
    /// Per for-each, its iterations queued, running or waiting for a retry.
    in_flight: HashMap<TaskId, u32>,
    /// Per for-each, its ready iterations beyond `for_each_concurrency`, in item order.
    parked: HashMap<TaskId, VecDeque<TaskId>>,
    /// The iterations of each for-each expanded at run time.
    expanded: HashMap<TaskId, std::ops::Range<TaskId>>,
}

#[derive(Debug, Clone, Copy)]
struct Ready {
    priority: f64,
    seq: u64,
    task: TaskId,
}

impl Ord for Ready {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .total_cmp(&other.priority)
            .then(other.seq.cmp(&self.seq))
    }
}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ready {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Timeout,
    Retry,
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    at: f64,
    kind: TimerKind,
    task: TaskId,
    attempt: u32,
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at
            .total_cmp(&other.at)
            .then(self.task.cmp(&other.task))
            .then(self.kind.cmp(&other.kind))
            .then(self.attempt.cmp(&other.attempt))
    }
}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Timer {}

/// Which carried-over tasks must run again because a task that runs (or is itself rebuilt)
/// depends on them, directly or not, and they created session state. Tasks are in topological
/// order, so one backward pass sees every dependent of a task before the task.
fn rebuilds(plan: &Plan, carried_over: &[bool], state_creators: &HashSet<String>) -> Vec<bool> {
    let n = plan.tasks.len();
    let mut rebuilt = vec![false; n];
    if state_creators.is_empty() {
        return rebuilt;
    }
    // Whether a task that runs depends on this one.
    let mut read_by_a_run = vec![false; n];
    for t in (0..n).rev() {
        rebuilt[t] =
            carried_over[t] && read_by_a_run[t] && state_creators.contains(&plan.tasks[t].id);
        // A sub-pipeline's end reads nothing; what follows it does, through it.
        let runs = (!carried_over[t] || rebuilt[t]) && plan.tasks[t].kind.runs_notebook();
        if runs || read_by_a_run[t] {
            for &(d, _) in &plan.deps[t] {
                read_by_a_run[d] = true;
            }
        }
    }
    rebuilt
}

impl Machine {
    pub fn new(plan: &Plan, policy: Policy, admission: Admission) -> Self {
        Self::resume(plan, policy, admission, &HashMap::new())
    }

    /// A run that continues a previous one: a task whose previous outcome (by task id) was
    /// `Succeeded`, and all of whose dependencies are carried over too, is final from the
    /// start and does not run again; everything else runs again. Ids the plan does not know
    /// are ignored. A sub-pipeline end is carried over when all its dependencies are.
    pub fn resume(
        plan: &Plan,
        policy: Policy,
        admission: Admission,
        previous: &HashMap<String, Outcome>,
    ) -> Self {
        Self::resume_in_new_session(plan, policy, admission, previous, &HashSet::new())
    }

    /// A resume into a Spark session that lacks what the resumed run's notebooks left in
    /// theirs: of the tasks [`Machine::resume`] would carry over, those in `state_creators`
    /// (they created temp views or functions) run again when a task that runs depends on them,
    /// directly or not, since it may read that state. Their own dependents stay carried over.
    pub fn resume_in_new_session(
        plan: &Plan,
        policy: Policy,
        admission: Admission,
        previous: &HashMap<String, Outcome>,
        state_creators: &HashSet<String>,
    ) -> Self {
        let n = plan.tasks.len();
        let priority = match policy {
            Policy::CriticalPath => plan.remaining_path_secs(),
            Policy::Fifo => vec![0.0; n],
        };
        let groups: HashMap<&str, TaskId> = plan
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.kind == TaskKind::ForEach)
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();
        let facts: Vec<TaskFacts> = plan
            .tasks
            .iter()
            .zip(priority)
            .map(|(t, priority)| TaskFacts {
                pipeline_end: t.kind == TaskKind::PipelineEnd,
                for_each: t
                    .for_each
                    .as_ref()
                    .map(|f| (t.expands(), f.concurrency.unwrap_or(u32::MAX).max(1))),
                group: t
                    .iteration
                    .as_ref()
                    .and_then(|i| groups.get(i.group.as_str()).copied()),
                gated: !t.conditions.is_empty(),
                // A for-each read at run time: what each of its iterations will hold and take.
                slots: if t.expands() {
                    t.settings.slots
                } else {
                    t.slots()
                },
                estimate: t.estimate_secs(),
                timeout: t.settings.timeout_secs as f64,
                retries: t.settings.retry.min(MAX_RETRIES),
                retry_interval: t.settings.retry_interval_secs as f64,
                priority,
            })
            .collect();
        let mut dep_start = Vec::with_capacity(n + 1);
        let mut deps = Vec::with_capacity(plan.deps.iter().map(Vec::len).sum());
        for d in &plan.deps {
            dep_start.push(deps.len());
            deps.extend_from_slice(d);
        }
        dep_start.push(deps.len());

        let mut carried_over = vec![false; n];
        for t in 0..n {
            let deps_carried = plan.deps[t].iter().all(|&(d, _)| carried_over[d]);
            // A pipeline end settles from its dependencies: carried over (as succeeded) only
            // when it has some and its conditions hold on carried-over successes; otherwise it
            // resolves at the start like any task whose dependencies are final.
            let end_holds = facts[t].joins()
                && !plan.deps[t].is_empty()
                && plan.deps[t]
                    .iter()
                    .all(|&(_, c)| c.accepts(Outcome::Succeeded));
            carried_over[t] = deps_carried
                && (end_holds || previous.get(&plan.tasks[t].id) == Some(&Outcome::Succeeded));
        }
        let rebuilt = rebuilds(plan, &carried_over, state_creators);
        for (carried, &again) in carried_over.iter_mut().zip(&rebuilt) {
            *carried &= !again;
        }
        let unmet = (0..n)
            .map(|t| {
                plan.deps[t]
                    .iter()
                    .filter(|&&(d, _)| !carried_over[d])
                    .count() as u32
            })
            .collect();
        let state = carried_over
            .iter()
            .map(|&c| {
                if c {
                    TaskState::Done(Final::Succeeded)
                } else {
                    TaskState::Waiting
                }
            })
            .collect();
        let mut sizes: Vec<u32> = facts
            .iter()
            .filter(|f| !f.joins())
            .map(|f| f.slots)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        let finals = carried_over.iter().filter(|&&c| c).count();
        Machine {
            facts,
            dep_start,
            deps,
            dependents: plan.dependents.clone(),
            state,
            unmet,
            carried_over,
            rebuilt,
            held: vec![0; n],
            queues: sizes.into_iter().map(|s| (s, BinaryHeap::new())).collect(),
            ready_seq: 0,
            timers: BinaryHeap::new(),
            running: Vec::new(),
            running_pos: vec![usize::MAX; n],
            capacity: admission.capacity_slots.max(1),
            max_concurrency: admission.max_concurrency.unwrap_or(u32::MAX).max(1),
            busy: 0,
            finals,
            started: false,
            cancelled: false,
            run_deadline: plan.timeout_secs.map(|s| s as f64),
            outcome: None,
            settle: VecDeque::new(),
            in_flight: HashMap::new(),
            parked: HashMap::new(),
            expanded: HashMap::new(),
        }
    }

    /// A repair: `previous` without the tasks named in `rerun` and everything downstream of
    /// them, so that [`Machine::resume`] runs those again even though they succeeded (a name
    /// may be a task's id, a sub-pipeline's, which re-runs every task inside it, or a
    /// for-each's, which re-runs every iteration). Names the
    /// plan does not know are an error naming them.
    pub fn forget_reruns(
        plan: &Plan,
        previous: &mut HashMap<String, Outcome>,
        rerun: &[String],
    ) -> Result<(), String> {
        let mut named = Vec::new();
        let mut unknown = Vec::new();
        for name in rerun {
            let inside = format!("{name}/");
            let mut found = false;
            for (t, task) in plan.tasks.iter().enumerate() {
                let iteration_of = |it: &crate::for_each::Iteration| it.group == *name;
                if task.id == *name
                    || task.id.starts_with(&inside)
                    || task.iteration.as_ref().is_some_and(iteration_of)
                {
                    named.push(t);
                    found = true;
                }
            }
            if !found {
                unknown.push(format!("`{name}`"));
            }
        }
        if !unknown.is_empty() {
            return Err(format!(
                "cannot re-run {}: no such task or sub-pipeline in the plan",
                unknown.join(", ")
            ));
        }
        let again = plan.graph().downstream(named);
        for (t, task) in plan.tasks.iter().enumerate() {
            if again[t] {
                previous.remove(&task.id);
            }
        }
        Ok(())
    }

    /// How many tasks the run has: the plan's, and the iterations added since.
    pub fn task_count(&self) -> usize {
        self.state.len()
    }

    pub fn state_of(&self, task: TaskId) -> Option<TaskState> {
        self.state.get(task).copied()
    }

    /// Whether the task was final from the start because a previous run succeeded it.
    pub fn is_carried_over(&self, task: TaskId) -> bool {
        self.carried_over.get(task).copied().unwrap_or(false)
    }

    /// Whether the task runs again only to rebuild session state (see
    /// [`Machine::resume_in_new_session`]).
    pub fn is_rebuilt(&self, task: TaskId) -> bool {
        self.rebuilt.get(task).copied().unwrap_or(false)
    }

    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    /// The run's outcome, once it has finished.
    pub fn outcome(&self) -> Option<RunOutcome> {
        self.outcome
    }

    pub fn capacity_slots(&self) -> u32 {
        self.capacity
    }

    /// Slots held by running notebooks.
    pub fn busy_slots(&self) -> u64 {
        self.busy
    }

    /// Whether the run's `timeout_secs` has passed and it is not cancelled yet: the next event
    /// cancels it (a driver records why first).
    pub fn run_overdue(&self, now: f64) -> bool {
        !self.cancelled && self.run_deadline.is_some_and(|at| now >= at)
    }

    /// The earliest retry timer or timeout (a notebook's, or the run's while it goes on), with
    /// the event to send when it passes.
    pub fn next_deadline(&self) -> Option<Deadline> {
        let run = self
            .run_deadline
            .filter(|_| !self.cancelled)
            .map(|at| Deadline {
                at,
                event: Event::RunTimedOut,
            });
        let timer = self.timers.peek().map(|Reverse(t)| Deadline {
            at: t.at,
            event: match t.kind {
                TimerKind::Timeout => Event::NotebookTimedOut {
                    task: t.task,
                    attempt: t.attempt,
                },
                TimerKind::Retry => Event::RetryTimerFired { task: t.task },
            },
        });
        match (run, timer) {
            (Some(r), Some(t)) if r.at <= t.at => Some(r),
            (r, None) => r,
            (_, t) => t,
        }
    }

    pub fn handle(&mut self, event: Event, now: f64) -> Vec<Command> {
        let mut out = Vec::new();
        self.handle_into(event, now, &mut out);
        out
    }

    /// [`Machine::handle`] appending to a caller's buffer (the simulator reuses one).
    pub fn handle_into(&mut self, event: Event, now: f64, out: &mut Vec<Command>) {
        if self.outcome.is_some() {
            return;
        }
        match event {
            Event::RunStarted => {
                if self.started {
                    return;
                }
                self.begin(out);
                for t in 0..self.state.len() {
                    if self.unmet[t] == 0 && self.state[t] == TaskState::Waiting {
                        self.resolve(t, out);
                    }
                }
            }
            Event::NotebookStarted { task, attempt } => {
                if let Some(TaskState::Running { attempt: a, since }) = self.state.get_mut(task) {
                    if *a == attempt {
                        *since = now;
                    }
                }
            }
            Event::NotebookSucceeded { task, attempt } => {
                if self.end_attempt(task, attempt) {
                    self.settle
                        .push_back((task, Final::Succeeded, SettleReason::Attempt));
                }
            }
            Event::NotebookFailed { task, attempt } => {
                if self.end_attempt(task, attempt) {
                    self.after_failed_attempt(task, attempt, now, out);
                }
            }
            Event::NotebookTimedOut { task, attempt } => {
                if self.end_attempt(task, attempt) {
                    out.push(Command::CancelNotebook { task, attempt });
                    self.after_failed_attempt(task, attempt, now, out);
                }
            }
            Event::NotebookCancelled { task, attempt } => {
                if self.end_attempt(task, attempt) {
                    self.settle
                        .push_back((task, Final::Cancelled, SettleReason::Attempt));
                }
            }
            Event::RetryTimerFired { task } => {
                if let Some(&TaskState::RetryWait { attempt, .. }) = self.state.get(task) {
                    self.enqueue(task, attempt);
                }
            }
            Event::CancelRequested => self.cancel(out),
            Event::RunTimedOut => {
                if self.run_deadline.is_some_and(|at| now >= at) {
                    self.cancel(out);
                }
            }
            Event::CapacityChanged { slots } => self.capacity = slots.max(1),
            Event::ConditionsEvaluated { task, failed } => {
                if self.state.get(task) == Some(&TaskState::Evaluating) {
                    match failed {
                        Some(condition) => self.settle.push_back((
                            task,
                            Final::Skipped,
                            SettleReason::ValueCondition { condition },
                        )),
                        None => self.proceed(task, out),
                    }
                }
            }
            Event::ForEachExpanded { task, items } => {
                if self.state.get(task) == Some(&TaskState::Expanding) {
                    match items {
                        Some(k) if k as usize <= crate::for_each::MAX_ITEMS => self.expand(task, k),
                        _ => self.settle.push_back((
                            task,
                            Final::Failed,
                            SettleReason::ItemsUnreadable,
                        )),
                    }
                }
            }
        }
        // Whatever arrived late (a session that took longer to start than the run may last,
        // an end reported after the deadline), nothing is admitted once the run is overdue.
        if self.started && self.run_overdue(now) {
            self.cancel(out);
        }
        self.settle_all(out);
        if self.started && !self.cancelled {
            self.admit(now, out);
        }
        self.drop_stale_timers();
        if self.started && self.finals == self.state.len() {
            let outcome = self.run_outcome();
            self.outcome = Some(outcome);
            out.push(Command::FinishRun { outcome });
        }
    }

    /// Releases the slots of a running attempt; false when the event does not match it.
    fn end_attempt(&mut self, task: TaskId, attempt: u32) -> bool {
        match self.state.get(task) {
            Some(&TaskState::Running { attempt: a, .. }) if a == attempt => {}
            _ => return false,
        }
        self.busy -= u64::from(self.held[task]);
        self.held[task] = 0;
        let pos = self.running_pos[task];
        self.running.swap_remove(pos);
        if let Some(&moved) = self.running.get(pos) {
            self.running_pos[moved] = pos;
        }
        self.running_pos[task] = usize::MAX;
        // A placeholder until the caller decides: retry, or final.
        self.state[task] = TaskState::Waiting;
        true
    }

    fn after_failed_attempt(
        &mut self,
        task: TaskId,
        attempt: u32,
        now: f64,
        out: &mut Vec<Command>,
    ) {
        let f = &self.facts[task];
        if self.cancelled {
            self.settle
                .push_back((task, Final::Cancelled, SettleReason::RunCancelled));
        } else if attempt <= f.retries {
            let at = now + f.retry_interval;
            let next = attempt + 1;
            self.state[task] = TaskState::RetryWait { attempt: next, at };
            self.timers.push(Reverse(Timer {
                at,
                kind: TimerKind::Retry,
                task,
                attempt: next,
            }));
            out.push(Command::ScheduleRetry {
                task,
                attempt: next,
                at,
            });
        } else {
            self.settle
                .push_back((task, Final::Failed, SettleReason::Attempt));
        }
    }

    fn cancel(&mut self, out: &mut Vec<Command>) {
        if self.cancelled {
            return;
        }
        self.cancelled = true;
        self.begin(out);
        for t in 0..self.state.len() {
            match self.state[t] {
                TaskState::Running { attempt, .. } => {
                    out.push(Command::CancelNotebook { task: t, attempt })
                }
                TaskState::Done(_) => {}
                TaskState::Waiting
                | TaskState::Evaluating
                | TaskState::Expanding
                | TaskState::Ready { .. }
                | TaskState::RetryWait { .. } => {
                    self.state[t] = TaskState::Done(Final::Cancelled);
                    self.finals += 1;
                    out.push(Command::Settle {
                        task: t,
                        state: Final::Cancelled,
                        reason: SettleReason::RunCancelled,
                    });
                }
            }
        }
        for (_, q) in &mut self.queues {
            q.clear();
        }
        self.parked.clear();
    }

    /// Starts the run once (on its start, or on a cancel that comes first): the tasks carried
    /// over from a resumed run are announced final.
    fn begin(&mut self, out: &mut Vec<Command>) {
        if self.started {
            return;
        }
        self.started = true;
        for task in (0..self.state.len()).filter(|&t| self.carried_over[t]) {
            out.push(Command::Settle {
                task,
                state: Final::Succeeded,
                reason: SettleReason::CarriedOver,
            });
        }
    }

    /// Makes tasks final, and resolves the dependents whose last dependency that was.
    fn settle_all(&mut self, out: &mut Vec<Command>) {
        while let Some((task, fin, reason)) = self.settle.pop_front() {
            if matches!(self.state[task], TaskState::Done(_)) {
                continue;
            }
            self.state[task] = TaskState::Done(fin);
            self.finals += 1;
            out.push(Command::Settle {
                task,
                state: fin,
                reason,
            });
            // An iteration that ran leaves room for the next of its for-each.
            if let (Some(g), SettleReason::Attempt) = (self.facts[task].group, reason) {
                self.leave_group(g);
            }
            for i in 0..self.dependents[task].len() {
                let d = self.dependents[task][i];
                self.unmet[d] -= 1;
                if self.unmet[d] == 0 && self.state[d] == TaskState::Waiting {
                    self.resolve(d, out);
                }
            }
        }
    }

    /// Every dependency of `task` is final: skip it, have its conditions on values
    /// evaluated, or go on.
    fn resolve(&mut self, task: TaskId, out: &mut Vec<Command>) {
        if let Some(iterations) = self.expanded.get(&task) {
            let fin = self.aggregate(iterations.clone());
            self.settle.push_back((task, fin, SettleReason::Iterations));
            return;
        }
        let deps = &self.deps[self.dep_start[task]..self.dep_start[task + 1]];
        let broken = deps
            .iter()
            .find(|&&(d, c)| !c.accepts(self.final_of(d).outcome()));
        if let Some(&(dependency, _)) = broken {
            let reason = SettleReason::Condition {
                dependency,
                state: self.final_of(dependency),
            };
            self.settle.push_back((task, Final::Skipped, reason));
        } else if self.facts[task].gated {
            self.state[task] = TaskState::Evaluating;
            out.push(Command::EvaluateConditions { task });
        } else {
            self.proceed(task, out);
        }
    }

    /// Every condition of `task` holds: queue it, or settle a pipeline end with its own
    /// outcome.
    fn proceed(&mut self, task: TaskId, out: &mut Vec<Command>) {
        let deps = || {
            self.deps[self.dep_start[task]..self.dep_start[task + 1]]
                .iter()
                .map(|&(d, _)| d)
        };
        match self.facts[task].for_each {
            _ if self.facts[task].pipeline_end => {
                let fin = self.aggregate(deps());
                self.settle
                    .push_back((task, fin, SettleReason::PipelineEnd));
            }
            Some((false, _)) => {
                let fin = self.aggregate(deps());
                self.settle.push_back((task, fin, SettleReason::Iterations));
            }
            Some((true, _)) => {
                self.state[task] = TaskState::Expanding;
                out.push(Command::ExpandForEach { task });
            }
            None => self.enqueue(task, 1),
        }
    }

    /// How a task that settles from `members` ends: failed when one failed (or was
    /// cancelled), skipped when there are some and all were skipped, succeeded otherwise.
    fn aggregate(&self, members: impl Iterator<Item = TaskId> + Clone) -> Final {
        let outcome_of = |d: TaskId| self.final_of(d).outcome();
        if members.clone().any(|d| outcome_of(d) == Outcome::Failed) {
            Final::Failed
        } else if members.clone().next().is_some()
            && members.clone().all(|d| outcome_of(d) == Outcome::Skipped)
        {
            Final::Skipped
        } else {
            Final::Succeeded
        }
    }

    /// Adds `items` iterations of for-each `group`, ready to run (its dependencies and
    /// conditions held), as tasks `task_count()..`; the for-each settles once they all have.
    fn expand(&mut self, group: TaskId, items: u32) {
        let first = self.state.len();
        let template = TaskFacts {
            pipeline_end: false,
            for_each: None,
            group: Some(group),
            gated: false,
            ..self.facts[group].clone()
        };
        for _ in 0..items {
            self.facts.push(template.clone());
            self.dep_start.push(self.deps.len());
            self.dependents.push(vec![group]);
            self.state.push(TaskState::Waiting);
            self.unmet.push(0);
            self.carried_over.push(false);
            self.rebuilt.push(false);
            self.held.push(0);
            self.running_pos.push(usize::MAX);
        }
        let iterations = first..self.state.len();
        self.unmet[group] = items;
        self.state[group] = TaskState::Waiting;
        self.expanded.insert(group, iterations.clone());
        if items == 0 {
            self.settle
                .push_back((group, Final::Succeeded, SettleReason::Iterations));
        }
        for t in iterations {
            self.enqueue(t, 1);
        }
    }

    /// An iteration of `group` settled after running: the next parked one may go.
    fn leave_group(&mut self, group: TaskId) {
        if let Some(n) = self.in_flight.get_mut(&group) {
            *n = n.saturating_sub(1);
        }
        let next = self.parked.get_mut(&group).and_then(VecDeque::pop_front);
        if let Some(t) = next {
            *self.in_flight.entry(group).or_default() += 1;
            self.push_ready(t);
        }
    }

    /// How a dependency ended; a task not final yet (unreachable by the unmet count) satisfies
    /// no condition.
    fn final_of(&self, d: TaskId) -> Final {
        match self.state[d] {
            TaskState::Done(f) => f,
            _ => Final::Skipped,
        }
    }

    fn enqueue(&mut self, task: TaskId, attempt: u32) {
        self.state[task] = TaskState::Ready { attempt };
        // A first attempt of an iteration counts against its for-each's concurrency until it
        // settles (its retries were counted with it).
        if let (Some(g), 1) = (self.facts[task].group, attempt) {
            let cap = self.facts[g].for_each.map_or(u32::MAX, |(_, cap)| cap);
            let in_flight = self.in_flight.entry(g).or_default();
            if *in_flight >= cap {
                self.parked.entry(g).or_default().push_back(task);
                return;
            }
            *in_flight += 1;
        }
        self.push_ready(task);
    }

    /// Puts a ready task in its admission queue.
    fn push_ready(&mut self, task: TaskId) {
        let slots = self.facts[task].slots;
        let entry = Ready {
            priority: self.facts[task].priority,
            seq: self.ready_seq,
            task,
        };
        self.ready_seq += 1;
        if let Ok(i) = self.queues.binary_search_by_key(&slots, |(s, _)| *s) {
            self.queues[i].1.push(entry);
        }
    }

    fn effective_slots(&self, slots: u32) -> u32 {
        slots.min(self.capacity)
    }

    fn free_slots(&self) -> u64 {
        u64::from(self.capacity).saturating_sub(self.busy)
    }

    fn admit(&mut self, now: f64, out: &mut Vec<Command>) {
        // Computed once per admission round, when the first notebook in order is blocked:
        // (time by which it can start, slots it leaves over then).
        let mut reservation: Option<(f64, u64)> = None;
        while (self.running.len() as u64) < u64::from(self.max_concurrency) {
            let Some(head) = self.best_queue() else {
                return;
            };
            let need = self.effective_slots(self.queues[head].0);
            let free = self.free_slots();
            if u64::from(need) <= free {
                if let Some(entry) = self.queues[head].1.pop() {
                    self.start(entry.task, need, now, out);
                }
                continue;
            }
            let fits_somewhere = self
                .queues
                .iter()
                .any(|(slots, q)| !q.is_empty() && u64::from(self.effective_slots(*slots)) <= free);
            if !fits_somewhere {
                return;
            }
            let (shadow, extra) = *reservation.get_or_insert_with(|| self.reserve(need, now));
            let Some((q, entry)) = self.backfill_candidate(free, shadow, extra, now) else {
                return;
            };
            self.take(q, entry);
            let slots = self.effective_slots(self.queues[q].0);
            self.start(entry.task, slots, now, out);
            if now + self.facts[entry.task].estimate > shadow {
                reservation = Some((shadow, extra.saturating_sub(u64::from(slots))));
            }
        }
    }

    /// The queue whose first notebook comes first in policy order.
    fn best_queue(&self) -> Option<usize> {
        let mut best: Option<(usize, Ready)> = None;
        for (i, (_, q)) in self.queues.iter().enumerate() {
            if let Some(&top) = q.peek() {
                if best.is_none_or(|(_, b)| top > b) {
                    best = Some((i, top));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// The first notebook in policy order, among the first [`BACKFILL_LOOKAHEAD`] of each
    /// queue, that fits in the free slots and does not delay the reservation: it ends (by
    /// estimate) before `shadow`, or it fits in the `extra` slots.
    fn backfill_candidate(
        &mut self,
        free: u64,
        shadow: f64,
        extra: u64,
        now: f64,
    ) -> Option<(usize, Ready)> {
        let mut best: Option<(usize, Ready)> = None;
        for i in 0..self.queues.len() {
            let slots = u64::from(self.effective_slots(self.queues[i].0));
            if slots > free {
                continue;
            }
            let facts = &self.facts;
            let fits = |e: &Ready| now + facts[e.task].estimate <= shadow || slots <= extra;
            let (_, q) = &mut self.queues[i];
            let mut seen = Vec::with_capacity(BACKFILL_LOOKAHEAD);
            let mut found = None;
            while seen.len() < BACKFILL_LOOKAHEAD {
                let Some(e) = q.pop() else { break };
                seen.push(e);
                if fits(&e) {
                    found = Some(e);
                    break;
                }
            }
            q.extend(seen);
            if let Some(e) = found {
                if best.is_none_or(|(_, b)| e > b) {
                    best = Some((i, e));
                }
            }
        }
        best
    }

    /// Removes `entry` from queue `q` (it is among the first few in order).
    fn take(&mut self, q: usize, entry: Ready) {
        let (_, heap) = &mut self.queues[q];
        let mut before = Vec::new();
        while let Some(e) = heap.pop() {
            if e.task == entry.task && e.seq == entry.seq {
                break;
            }
            before.push(e);
        }
        heap.extend(before);
    }

    /// When `need` slots will be free by the running notebooks' estimates, and how many of the
    /// slots free then `need` leaves over.
    fn reserve(&self, need: u32, now: f64) -> (f64, u64) {
        let mut ends: Vec<(f64, u32)> = self
            .running
            .iter()
            .map(|&t| match self.state[t] {
                TaskState::Running { since, .. } => {
                    ((since + self.facts[t].estimate).max(now), self.held[t])
                }
                _ => (now, self.held[t]),
            })
            .collect();
        ends.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let capacity = i128::from(self.capacity);
        let mut free = capacity - i128::from(self.busy);
        for (at, held) in ends {
            free += i128::from(held);
            if free >= i128::from(need) {
                return (at, (free - i128::from(need)).min(capacity) as u64);
            }
        }
        (f64::INFINITY, 0)
    }

    fn start(&mut self, task: TaskId, slots: u32, now: f64, out: &mut Vec<Command>) {
        let TaskState::Ready { attempt } = self.state[task] else {
            return;
        };
        self.state[task] = TaskState::Running {
            attempt,
            since: now,
        };
        self.held[task] = slots;
        self.busy += u64::from(slots);
        self.running_pos[task] = self.running.len();
        self.running.push(task);
        self.timers.push(Reverse(Timer {
            at: now + self.facts[task].timeout,
            kind: TimerKind::Timeout,
            task,
            attempt,
        }));
        out.push(Command::StartNotebook {
            task,
            attempt,
            slots,
        });
    }

    fn drop_stale_timers(&mut self) {
        while let Some(Reverse(t)) = self.timers.peek() {
            let live = match (t.kind, self.state[t.task]) {
                (TimerKind::Timeout, TaskState::Running { attempt, .. }) => attempt == t.attempt,
                (TimerKind::Retry, TaskState::RetryWait { attempt, .. }) => attempt == t.attempt,
                _ => false,
            };
            if live {
                return;
            }
            self.timers.pop();
        }
    }

    fn run_outcome(&self) -> RunOutcome {
        if self.cancelled {
            return RunOutcome::Cancelled;
        }
        let failed = self
            .state
            .iter()
            .any(|s| matches!(s, TaskState::Done(Final::Failed | Final::Cancelled)));
        if failed {
            RunOutcome::Failed
        } else {
            RunOutcome::Succeeded
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::load_text;
    use crate::source::MemorySources;

    /// A plan from pipeline text; every `nb/*.py` path exists.
    fn plan(text: &str) -> Plan {
        let mut sources = MemorySources::default();
        for name in ["a", "b", "c", "d", "e", "h", "x", "y"] {
            sources = sources.with(&format!("nb/{name}.py"), "");
        }
        sources = sources.with(
            "sub.toml",
            "name = \"sub\"\n[[notebook]]\nid = \"x\"\npath = \"nb/x.py\"\n\
             [[notebook]]\nid = \"y\"\npath = \"nb/y.py\"\ndepends_on = [\"x\"]\n",
        );
        let loaded = load_text("main.toml", text, &sources);
        loaded
            .plan
            .unwrap_or_else(|| panic!("fixture does not load: {:?}", loaded.diagnostics))
    }

    /// Drives a machine: every started notebook finishes after its estimate with the outcome
    /// `result(id, attempt)` gives; returns the ids in start order and the final states.
    fn drive(
        plan: &Plan,
        machine: &mut Machine,
        result: impl Fn(&str, u32) -> Event,
    ) -> (Vec<String>, RunOutcome) {
        let (started, _, outcome) = drive_with(plan, machine, result, |task| {
            Event::ConditionsEvaluated { task, failed: None }
        });
        (started, outcome)
    }

    /// [`drive`], answering [`Command::EvaluateConditions`] with `evaluate(task)`; also
    /// returns every settle.
    fn drive_with(
        plan: &Plan,
        machine: &mut Machine,
        result: impl Fn(&str, u32) -> Event,
        evaluate: impl Fn(TaskId) -> Event,
    ) -> (Vec<String>, Vec<(String, Final, SettleReason)>, RunOutcome) {
        let mut settled = Vec::new();
        let mut started = Vec::new();
        let mut pending: Vec<(f64, TaskId, u32)> = Vec::new();
        let mut now = 0.0;
        let mut cmds = machine.handle(Event::RunStarted, now);
        loop {
            while let Some(c) = (!cmds.is_empty()).then(|| cmds.remove(0)) {
                match c {
                    Command::StartNotebook { task, attempt, .. } => {
                        started.push(plan.tasks[task].id.clone());
                        pending.push((now + plan.tasks[task].estimate_secs(), task, attempt));
                    }
                    Command::FinishRun { outcome } => return (started, settled, outcome),
                    Command::Settle {
                        task,
                        state,
                        reason,
                    } => settled.push((plan.tasks[task].id.clone(), state, reason)),
                    Command::EvaluateConditions { task } => {
                        cmds.extend(machine.handle(evaluate(task), now));
                    }
                    _ => {}
                }
            }
            pending.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
            let next_done = pending.last().map(|p| p.0);
            let deadline = machine.next_deadline();
            match (next_done, deadline) {
                (Some(at), d) if d.is_none_or(|d| at <= d.at) => {
                    let (at, task, attempt) = pending.pop().unwrap_or_else(|| unreachable!());
                    now = at;
                    let event = match result(&plan.tasks[task].id, attempt) {
                        Event::NotebookFailed { .. } => Event::NotebookFailed { task, attempt },
                        _ => Event::NotebookSucceeded { task, attempt },
                    };
                    cmds = machine.handle(event, now);
                }
                (_, Some(d)) => {
                    now = d.at;
                    cmds = machine.handle(d.event, now);
                }
                (_, None) => panic!("run stalled"),
            }
        }
    }

    fn ok(_: &str, _: u32) -> Event {
        Event::NotebookSucceeded {
            task: 0,
            attempt: 0,
        }
    }

    fn fail_ids(ids: &'static [&'static str]) -> impl Fn(&str, u32) -> Event {
        move |id, _| {
            if ids.contains(&id) {
                Event::NotebookFailed {
                    task: 0,
                    attempt: 0,
                }
            } else {
                ok(id, 0)
            }
        }
    }

    fn finals(plan: &Plan, m: &Machine) -> Vec<(String, Final)> {
        (0..plan.tasks.len())
            .map(|t| match m.state_of(t) {
                Some(TaskState::Done(f)) => (plan.tasks[t].id.clone(), f),
                other => panic!("{} not final: {other:?}", plan.tasks[t].id),
            })
            .collect()
    }

    const BRANCHES: &str = r#"
name = "p"
[pool]
executors = 1
executor_cores = 1
[[notebook]]
id = "a"
path = "nb/a.py"
[[notebook]]
id = "b"
path = "nb/b.py"
depends_on = ["a"]
[[notebook]]
id = "h"
path = "nb/h.py"
depends_on = [{ id = "a", on = "failed" }]
[[notebook]]
id = "c"
path = "nb/c.py"
depends_on = [{ id = "b", on = "completed" }]
[[notebook]]
id = "e"
path = "nb/e.py"
"#;

    #[test]
    fn failure_skips_its_branch_runs_its_handler_and_spares_the_rest() {
        let p = plan(BRANCHES);
        let mut m = Machine::new(&p, Policy::Fifo, Admission::of_pool(&p.pool));
        let (started, outcome) = drive(&p, &mut m, fail_ids(&["a"]));
        assert_eq!(started, ["a", "e", "h"]);
        assert_eq!(
            finals(&p, &m),
            [
                ("a".into(), Final::Failed),
                ("b".into(), Final::Skipped),
                ("h".into(), Final::Succeeded),
                ("c".into(), Final::Skipped),
                ("e".into(), Final::Succeeded),
            ]
        );
        // The handler ran, but a notebook failed: the run failed.
        assert_eq!(outcome, RunOutcome::Failed);
    }

    #[test]
    fn any_failure_fails_the_run_and_completed_runs_after_failure() {
        let p = plan(BRANCHES);
        let mut m = Machine::new(&p, Policy::Fifo, Admission::of_pool(&p.pool));
        let (started, outcome) = drive(&p, &mut m, fail_ids(&["b"]));
        assert_eq!(started, ["a", "e", "b", "c"]);
        // `c` accepts the failure of `b` (on completed) and runs; the run still failed.
        assert_eq!(outcome, RunOutcome::Failed);

        let mut m = Machine::new(&p, Policy::Fifo, Admission::of_pool(&p.pool));
        let (_, outcome) = drive(&p, &mut m, fail_ids(&["e"]));
        assert_eq!(outcome, RunOutcome::Failed);
        assert_eq!(m.state_of(4), Some(TaskState::Done(Final::Failed)));
        assert_eq!(m.state_of(3), Some(TaskState::Done(Final::Succeeded)));
    }

    #[test]
    fn retries_after_the_interval_then_succeeds() {
        let p = plan(
            "name = \"p\"\n[[notebook]]\nid = \"a\"\npath = \"nb/a.py\"\nretry = 2\n\
             retry_interval_secs = 10\nestimate_secs = 5\n",
        );
        let mut m = Machine::new(&p, Policy::CriticalPath, Admission::of_pool(&p.pool));
        assert_eq!(
            m.handle(Event::RunStarted, 0.0),
            [Command::StartNotebook {
                task: 0,
                attempt: 1,
                slots: 1
            }]
        );
        assert_eq!(
            m.handle(
                Event::NotebookFailed {
                    task: 0,
                    attempt: 1
                },
                5.0
            ),
            [Command::ScheduleRetry {
                task: 0,
                attempt: 2,
                at: 15.0
            }]
        );
        assert_eq!(
            m.next_deadline(),
            Some(Deadline {
                at: 15.0,
                event: Event::RetryTimerFired { task: 0 }
            })
        );
        assert_eq!(
            m.handle(Event::RetryTimerFired { task: 0 }, 15.0),
            [Command::StartNotebook {
                task: 0,
                attempt: 2,
                slots: 1
            }]
        );
        // A late report for the first attempt changes nothing.
        assert!(m
            .handle(
                Event::NotebookSucceeded {
                    task: 0,
                    attempt: 1
                },
                16.0
            )
            .is_empty());
        assert_eq!(
            m.handle(
                Event::NotebookSucceeded {
                    task: 0,
                    attempt: 2
                },
                20.0
            ),
            [
                Command::Settle {
                    task: 0,
                    state: Final::Succeeded,
                    reason: SettleReason::Attempt
                },
                Command::FinishRun {
                    outcome: RunOutcome::Succeeded
                }
            ]
        );
    }

    #[test]
    fn timeout_cancels_the_attempt_and_counts_as_a_failure() {
        let p = plan(
            "name = \"p\"\n[[notebook]]\nid = \"a\"\npath = \"nb/a.py\"\ntimeout_secs = 30\n\
             [[notebook]]\nid = \"b\"\npath = \"nb/b.py\"\ndepends_on = [\"a\"]\n",
        );
        let mut m = Machine::new(&p, Policy::CriticalPath, Admission::of_pool(&p.pool));
        m.handle(Event::RunStarted, 0.0);
        let d = m.next_deadline();
        assert_eq!(
            d,
            Some(Deadline {
                at: 30.0,
                event: Event::NotebookTimedOut {
                    task: 0,
                    attempt: 1
                }
            })
        );
        let cmds = m.handle(d.map(|d| d.event).unwrap_or(Event::RunStarted), 30.0);
        assert_eq!(
            cmds,
            [
                Command::CancelNotebook {
                    task: 0,
                    attempt: 1
                },
                Command::Settle {
                    task: 0,
                    state: Final::Failed,
                    reason: SettleReason::Attempt
                },
                Command::Settle {
                    task: 1,
                    state: Final::Skipped,
                    reason: SettleReason::Condition {
                        dependency: 0,
                        state: Final::Failed
                    }
                },
                Command::FinishRun {
                    outcome: RunOutcome::Failed
                }
            ]
        );
        assert_eq!(m.next_deadline(), None);
    }

    #[test]
    fn cancel_stops_new_starts_and_waits_for_running_notebooks() {
        let p = plan(
            "name = \"p\"\n[pool]\nexecutors = 1\nexecutor_cores = 1\n\
             [[notebook]]\nid = \"a\"\npath = \"nb/a.py\"\n\
             [[notebook]]\nid = \"b\"\npath = \"nb/b.py\"\n\
             [[notebook]]\nid = \"c\"\npath = \"nb/c.py\"\ndepends_on = [\"a\"]\n",
        );
        let mut m = Machine::new(&p, Policy::Fifo, Admission::of_pool(&p.pool));
        m.handle(Event::RunStarted, 0.0);
        let cmds = m.handle(Event::CancelRequested, 1.0);
        // Every task that has not started is final at once, and says so.
        let cancelled = |task| Command::Settle {
            task,
            state: Final::Cancelled,
            reason: SettleReason::RunCancelled,
        };
        assert_eq!(
            cmds,
            [
                Command::CancelNotebook {
                    task: 0,
                    attempt: 1
                },
                cancelled(1),
                cancelled(2)
            ]
        );
        assert!(!m.is_finished());
        assert_eq!(m.state_of(1), Some(TaskState::Done(Final::Cancelled)));
        // The notebook finished before the cancel reached it: its success stands.
        let cmds = m.handle(
            Event::NotebookSucceeded {
                task: 0,
                attempt: 1,
            },
            2.0,
        );
        assert_eq!(
            cmds,
            [
                Command::Settle {
                    task: 0,
                    state: Final::Succeeded,
                    reason: SettleReason::Attempt
                },
                Command::FinishRun {
                    outcome: RunOutcome::Cancelled
                }
            ]
        );
        assert_eq!(m.state_of(0), Some(TaskState::Done(Final::Succeeded)));
        assert_eq!(m.state_of(2), Some(TaskState::Done(Final::Cancelled)));
    }

    #[test]
    fn admission_respects_slots_concurrency_and_capacity_changes() {
        let p = plan(
            "name = \"p\"\n[pool]\nexecutors = 2\nexecutor_cores = 2\nmax_concurrency = 2\n\
             [[notebook]]\nid = \"a\"\npath = \"nb/a.py\"\nslots = 3\n\
             [[notebook]]\nid = \"b\"\npath = \"nb/b.py\"\n\
             [[notebook]]\nid = \"c\"\npath = \"nb/c.py\"\n\
             [[notebook]]\nid = \"d\"\npath = \"nb/d.py\"\n",
        );
        let mut m = Machine::new(&p, Policy::Fifo, Admission::of_pool(&p.pool));
        let starts = |cmds: &[Command]| -> Vec<(TaskId, u32)> {
            cmds.iter()
                .filter_map(|c| match *c {
                    Command::StartNotebook { task, slots, .. } => Some((task, slots)),
                    _ => None,
                })
                .collect()
        };
        // a takes 3 of 4 slots; b fits; c would exceed max_concurrency.
        assert_eq!(starts(&m.handle(Event::RunStarted, 0.0)), [(0, 3), (1, 1)]);
        // The real pool is smaller: a 1-slot pool clamps nothing running but admits no more.
        assert!(starts(&m.handle(Event::CapacityChanged { slots: 1 }, 1.0)).is_empty());
        let cmds = m.handle(
            Event::NotebookSucceeded {
                task: 0,
                attempt: 1,
            },
            2.0,
        );
        assert!(starts(&cmds).is_empty(), "b still holds the only slot");
        let cmds = m.handle(
            Event::NotebookSucceeded {
                task: 1,
                attempt: 1,
            },
            3.0,
        );
        assert_eq!(starts(&cmds), [(2, 1)]);
    }

    #[test]
    fn a_notebook_wider_than_the_pool_runs_alone_on_the_whole_pool() {
        let p = plan(
            "name = \"p\"\n[pool]\nexecutors = 2\nexecutor_cores = 2\n\
             [[notebook]]\nid = \"a\"\npath = \"nb/a.py\"\nslots = 4\n\
             [[notebook]]\nid = \"b\"\npath = \"nb/b.py\"\n",
        );
        let mut m = Machine::new(
            &p,
            Policy::Fifo,
            Admission {
                capacity_slots: 2,
                max_concurrency: None,
            },
        );
        let cmds = m.handle(Event::RunStarted, 0.0);
        assert_eq!(
            cmds,
            [Command::StartNotebook {
                task: 0,
                attempt: 1,
                slots: 2
            }]
        );
    }

    #[test]
    fn critical_path_starts_the_longest_chain_first_and_fifo_the_ready_order() {
        let text = "name = \"p\"\n[pool]\nexecutors = 1\nexecutor_cores = 1\n\
             [[notebook]]\nid = \"a\"\npath = \"nb/a.py\"\nestimate_secs = 10\n\
             [[notebook]]\nid = \"b\"\npath = \"nb/b.py\"\nestimate_secs = 10\n\
             [[notebook]]\nid = \"c\"\npath = \"nb/c.py\"\nestimate_secs = 50\n\
             depends_on = [\"b\"]\n";
        let p = plan(text);
        let mut m = Machine::new(&p, Policy::CriticalPath, Admission::of_pool(&p.pool));
        assert_eq!(drive(&p, &mut m, ok).0, ["b", "c", "a"]);
        let mut m = Machine::new(&p, Policy::Fifo, Admission::of_pool(&p.pool));
        assert_eq!(drive(&p, &mut m, ok).0, ["a", "b", "c"]);
    }

    #[test]
    fn backfills_only_what_does_not_delay_the_blocked_notebook() {
        let text = "name = \"p\"\n[pool]\nexecutors = 1\nexecutor_cores = 2\n\
             [[notebook]]\nid = \"a\"\npath = \"nb/a.py\"\nestimate_secs = 100\n\
             [[notebook]]\nid = \"b\"\npath = \"nb/b.py\"\nestimate_secs = 1\n\
             [[notebook]]\nid = \"c\"\npath = \"nb/c.py\"\nestimate_secs = 600\nslots = 2\n\
             depends_on = [\"b\"]\n\
             [[notebook]]\nid = \"d\"\npath = \"nb/d.py\"\nestimate_secs = 500\n\
             depends_on = [\"b\"]\n\
             [[notebook]]\nid = \"e\"\npath = \"nb/e.py\"\nestimate_secs = 10\n\
             depends_on = [\"b\"]\n";
        let p = plan(text);
        let mut m = Machine::new(&p, Policy::CriticalPath, Admission::of_pool(&p.pool));
        // At 1 s, c (2 slots) is first but only one slot is free until a ends at 100 s: e
        // (ends at 11 s) jumps ahead, d (ends at 501 s) waits behind c.
        assert_eq!(drive(&p, &mut m, ok).0, ["b", "a", "e", "c", "d"]);
    }

    #[test]
    fn pipeline_end_settles_itself_from_its_notebooks() {
        let text = "name = \"p\"\n\
             [[pipeline]]\nid = \"s\"\npath = \"sub.toml\"\n\
             [[notebook]]\nid = \"a\"\npath = \"nb/a.py\"\ndepends_on = [\"s\"]\n\
             [[notebook]]\nid = \"h\"\npath = \"nb/h.py\"\n\
             depends_on = [{ id = \"s\", on = \"failed\" }]\n";
        let p = plan(text);
        let ids: Vec<&str> = p.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["s/x", "s/y", "s", "a", "h"]);

        let mut m = Machine::new(&p, Policy::Fifo, Admission::of_pool(&p.pool));
        let (started, outcome) = drive(&p, &mut m, ok);
        assert_eq!(started, ["s/x", "s/y", "a"]);
        assert_eq!(m.state_of(2), Some(TaskState::Done(Final::Succeeded)));
        assert_eq!(m.state_of(4), Some(TaskState::Done(Final::Skipped)));
        assert_eq!(outcome, RunOutcome::Succeeded);

        let mut m = Machine::new(&p, Policy::Fifo, Admission::of_pool(&p.pool));
        let (started, outcome) = drive(&p, &mut m, fail_ids(&["s/x"]));
        assert_eq!(started, ["s/x", "h"]);
        let want = [
            ("s/x", Final::Failed),
            ("s/y", Final::Skipped),
            ("s", Final::Failed),
            ("a", Final::Skipped),
            ("h", Final::Succeeded),
        ];
        let got = finals(&p, &m);
        assert_eq!(got, want.map(|(i, f)| (i.to_string(), f)));
        assert_eq!(outcome, RunOutcome::Failed);
    }

    #[test]
    fn a_literal_for_each_runs_its_items_within_its_concurrency_and_settles_from_them() {
        let text = "name = \"p\"\n\
             [[notebook]]\nid = \"a\"\npath = \"nb/a.py\"\n\
             [[notebook]]\nid = \"c\"\npath = \"nb/c.py\"\ndepends_on = [\"a\"]\n\
             for_each = [\"x\", \"y\", \"z\"]\nfor_each_concurrency = 1\n\
             [[notebook]]\nid = \"d\"\npath = \"nb/d.py\"\ndepends_on = [\"c\"]\n";
        let p = plan(text);
        let ids: Vec<&str> = p.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["a", "c[x]", "c[y]", "c[z]", "c", "d"]);

        // One at a time, in item order, though the pool has room for all three.
        let mut m = Machine::new(&p, Policy::CriticalPath, Admission::of_pool(&p.pool));
        let (started, outcome) = drive(&p, &mut m, ok);
        assert_eq!(started, ["a", "c[x]", "c[y]", "c[z]", "d"]);
        assert_eq!(outcome, RunOutcome::Succeeded);

        // One failed iteration fails the for-each; the others still run; its dependent waits
        // for its success.
        let mut m = Machine::new(&p, Policy::CriticalPath, Admission::of_pool(&p.pool));
        let (started, outcome) = drive(&p, &mut m, fail_ids(&["c[y]"]));
        assert_eq!(started, ["a", "c[x]", "c[y]", "c[z]"]);
        let got = finals(&p, &m);
        assert_eq!(got[4], ("c".to_string(), Final::Failed));
        assert_eq!(got[5], ("d".to_string(), Final::Skipped));
        assert_eq!(outcome, RunOutcome::Failed);

        // A repair of the for-each runs every iteration again.
        let mut previous: HashMap<String, Outcome> = p
            .tasks
            .iter()
            .map(|t| (t.id.clone(), Outcome::Succeeded))
            .collect();
        Machine::forget_reruns(&p, &mut previous, &["c".into()]).expect("c is a task");
        let mut kept: Vec<&String> = previous.keys().collect();
        kept.sort();
        assert_eq!(kept, ["a"]);
    }

    #[test]
    fn resume_reruns_what_did_not_succeed_and_everything_after_it() {
        let p = plan(BRANCHES);
        let previous: HashMap<String, Outcome> = [
            ("a", Outcome::Succeeded),
            ("b", Outcome::Failed),
            ("h", Outcome::Skipped),
            ("c", Outcome::Succeeded),
            ("e", Outcome::Succeeded),
            ("gone", Outcome::Failed),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut m = Machine::resume(&p, Policy::Fifo, Admission::of_pool(&p.pool), &previous);
        let carried: Vec<bool> = (0..p.tasks.len()).map(|t| m.is_carried_over(t)).collect();
        assert_eq!(carried, [true, false, false, false, true]);
        let (started, outcome) = drive(&p, &mut m, ok);
        // h re-runs its check (skipped again, a succeeded); c re-runs because b does.
        assert_eq!(started, ["b", "c"]);
        assert_eq!(m.state_of(2), Some(TaskState::Done(Final::Skipped)));
        assert_eq!(outcome, RunOutcome::Succeeded);
    }

    /// Invariant "A resume rebuilds the session state it reads": in a new session, a kept
    /// notebook that created temp views or functions runs again before a notebook that runs
    /// after it (directly or not); a kept one that no running notebook follows does not, and
    /// neither do the kept dependents of a rebuilt one.
    #[test]
    fn rebuilds_session_state_a_resume_reads_and_nothing_else() {
        let p = plan(
            "name = \"p\"\n\
             [[notebook]]\nid = \"views\"\npath = \"nb/a.py\"\n\
             [[notebook]]\nid = \"mid\"\npath = \"nb/b.py\"\ndepends_on = [\"views\"]\n\
             [[notebook]]\nid = \"kept_after\"\npath = \"nb/c.py\"\ndepends_on = [\"views\"]\n\
             [[notebook]]\nid = \"report\"\npath = \"nb/d.py\"\ndepends_on = [\"mid\"]\n\
             [[notebook]]\nid = \"side_views\"\npath = \"nb/e.py\"\n",
        );
        let previous: HashMap<String, Outcome> = ["views", "mid", "kept_after", "side_views"]
            .into_iter()
            .map(|k| (k.to_string(), Outcome::Succeeded))
            .collect();
        let creators: HashSet<String> = ["views", "side_views"].map(String::from).into();
        let mut m = Machine::resume_in_new_session(
            &p,
            Policy::Fifo,
            Admission::of_pool(&p.pool),
            &previous,
            &creators,
        );
        let ids = |f: &dyn Fn(TaskId) -> bool| -> Vec<&str> {
            (0..p.tasks.len())
                .filter(|&t| f(t))
                .map(|t| p.tasks[t].id.as_str())
                .collect()
        };
        assert_eq!(ids(&|t| m.is_rebuilt(t)), ["views"]);
        assert_eq!(
            ids(&|t| m.is_carried_over(t)),
            ["mid", "kept_after", "side_views"]
        );
        let (started, outcome) = drive(&p, &mut m, ok);
        assert_eq!(started, ["views", "report"], "views before what reads it");
        assert_eq!(outcome, RunOutcome::Succeeded);

        // The same session (or nothing created): nothing is rebuilt.
        let m = Machine::resume(&p, Policy::Fifo, Admission::of_pool(&p.pool), &previous);
        assert!(ids(&|t| m.is_rebuilt(t)).is_empty());
        assert_eq!(
            ids(&|t| m.is_carried_over(t)),
            ["views", "mid", "kept_after", "side_views"]
        );
    }

    #[test]
    fn a_repair_reruns_the_named_tasks_and_everything_downstream_even_after_success() {
        let p = plan(BRANCHES);
        let all_succeeded = || -> HashMap<String, Outcome> {
            p.tasks
                .iter()
                .map(|t| (t.id.clone(), Outcome::Succeeded))
                .collect()
        };
        let mut previous = all_succeeded();
        Machine::forget_reruns(&p, &mut previous, &["b".to_string()]).expect("b exists");
        let mut m = Machine::resume(&p, Policy::Fifo, Admission::of_pool(&p.pool), &previous);
        let (started, outcome) = drive(&p, &mut m, ok);
        assert_eq!(started, ["b", "c"]);
        assert_eq!(outcome, RunOutcome::Succeeded);

        let text = "name = \"p\"\n\
             [[pipeline]]\nid = \"s\"\npath = \"sub.toml\"\n\
             [[notebook]]\nid = \"a\"\npath = \"nb/a.py\"\ndepends_on = [\"s\"]\n\
             [[notebook]]\nid = \"e\"\npath = \"nb/e.py\"\n";
        let p = plan(text);
        let mut previous: HashMap<String, Outcome> = p
            .tasks
            .iter()
            .map(|t| (t.id.clone(), Outcome::Succeeded))
            .collect();
        Machine::forget_reruns(&p, &mut previous, &["s".to_string()]).expect("a sub-pipeline");
        let mut m = Machine::resume(&p, Policy::Fifo, Admission::of_pool(&p.pool), &previous);
        let (started, _) = drive(&p, &mut m, ok);
        assert_eq!(started, ["s/x", "s/y", "a"]);
        let err = Machine::forget_reruns(&p, &mut previous, &["zz".to_string(), "s/x".into()])
            .expect_err("zz is no task");
        assert!(err.contains("cannot re-run `zz`"), "{err}");
    }

    #[test]
    fn a_run_past_its_timeout_is_cancelled_and_nothing_starts_after() {
        let p = plan(
            "name = \"p\"\ntimeout_secs = 5\n\
             [[notebook]]\nid = \"a\"\npath = \"nb/a.py\"\nestimate_secs = 3\n\
             [[notebook]]\nid = \"b\"\npath = \"nb/b.py\"\nestimate_secs = 10\ndepends_on = [\"a\"]\n\
             [[notebook]]\nid = \"c\"\npath = \"nb/c.py\"\ndepends_on = [\"b\"]\n",
        );
        assert_eq!(p.timeout_secs, Some(5));
        let mut m = Machine::new(&p, Policy::Fifo, Admission::of_pool(&p.pool));
        let (started, outcome) = drive(&p, &mut m, ok);
        assert_eq!(started, ["a", "b"]);
        assert_eq!(outcome, RunOutcome::Cancelled);
        assert_eq!(m.state_of(2), Some(TaskState::Done(Final::Cancelled)));
        // Without the limit the same run succeeds.
        let mut unlimited = p.clone();
        unlimited.timeout_secs = None;
        let mut m = Machine::new(&unlimited, Policy::Fifo, Admission::of_pool(&p.pool));
        assert_eq!(drive(&unlimited, &mut m, ok).1, RunOutcome::Succeeded);
    }

    const GATED: &str = r#"
name = "p"
[pool]
executors = 1
executor_cores = 2
[[notebook]]
id = "a"
path = "nb/a.py"
[[notebook]]
id = "b"
path = "nb/b.py"
depends_on = [{ id = "a", if = "{{ tasks.a.values.rows }} > 0" }]
[[notebook]]
id = "c"
path = "nb/c.py"
depends_on = ["b"]
[[notebook]]
id = "d"
path = "nb/d.py"
depends_on = [{ id = "b", on = "skipped" }]
[[notebook]]
id = "e"
path = "nb/e.py"
depends_on = [{ id = "a", on = "completed" }]
"#;

    /// Drives GATED with `a` publishing `rows`, conditions evaluated by core's evaluator.
    fn run_gated(rows: i64) -> (Vec<String>, Vec<(String, Final, SettleReason)>, RunOutcome) {
        let p = plan(GATED);
        let mut m = Machine::new(&p, Policy::Fifo, Admission::of_pool(&p.pool));
        let evaluate = |t: TaskId| {
            let lookup = |_: usize, src: &crate::template::Source| match src.task() {
                Some("a") => Ok(serde_json::json!(rows)),
                _ => Err("not published".to_string()),
            };
            let verdicts = crate::value_condition::evaluate_all(&p.tasks[t].conditions, &lookup);
            Event::conditions_evaluated(t, &verdicts)
        };
        drive_with(&p, &mut m, ok, evaluate)
    }

    #[test]
    fn a_false_value_condition_skips_its_task_and_what_waits_for_its_success() {
        let (started, settled, outcome) = run_gated(0);
        assert_eq!(started, ["a", "e", "d"]);
        assert_eq!(outcome, RunOutcome::Succeeded);
        let p = plan(GATED);
        let of = |id: &str| settled.iter().find(|s| s.0 == id).cloned();
        assert_eq!(
            of("b"),
            Some((
                "b".into(),
                Final::Skipped,
                SettleReason::ValueCondition { condition: 0 }
            ))
        );
        let b = p.index_of("b").unwrap();
        assert_eq!(
            of("c"),
            Some((
                "c".into(),
                Final::Skipped,
                SettleReason::Condition {
                    dependency: b,
                    state: Final::Skipped
                }
            ))
        );
        // A true condition runs it, and what waits for its skip is skipped instead.
        let (started, settled, _) = run_gated(3);
        assert_eq!(started, ["a", "e", "b", "c"]);
        assert!(settled.iter().any(|s| s.0 == "d" && s.1 == Final::Skipped));
    }

    #[test]
    fn a_cancel_while_conditions_are_evaluated_cancels_the_task_and_ignores_the_answer() {
        let p = plan(GATED);
        let mut m = Machine::new(&p, Policy::Fifo, Admission::of_pool(&p.pool));
        let (a, b) = (p.index_of("a").unwrap(), p.index_of("b").unwrap());
        m.handle(Event::RunStarted, 0.0);
        let cmds = m.handle(
            Event::NotebookSucceeded {
                task: a,
                attempt: 1,
            },
            1.0,
        );
        assert!(cmds.contains(&Command::EvaluateConditions { task: b }));
        assert_eq!(m.state_of(b), Some(TaskState::Evaluating));
        m.handle(Event::CancelRequested, 1.5);
        assert_eq!(m.state_of(b), Some(TaskState::Done(Final::Cancelled)));
        let late = m.handle(
            Event::ConditionsEvaluated {
                task: b,
                failed: None,
            },
            2.0,
        );
        assert!(!late
            .iter()
            .any(|c| matches!(c, Command::StartNotebook { .. })));
    }
}
