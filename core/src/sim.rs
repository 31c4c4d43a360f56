//! Discrete-event simulation of a run on a described pool, driven by the same state machine as
//! a real run ([`crate::sched::Machine`]): timeline, utilisation, makespan and its lower bound,
//! node-hours and cost; the baseline of one pool per notebook; a sweep over pool sizes.
//!
//! The clock starts when the run is triggered: the shared pool first spends
//! `node_startup_secs` starting, then the run begins. Each attempt's duration and success are
//! drawn from `(seed, task, attempt)` alone, so every policy, pool size and the baseline see
//! the same attempts, and the lower bound holds for any schedule of them.

use crate::dag::{Plan, TaskId, TaskKind};
use crate::gen::SplitMix64;
use crate::sched::{Admission, Command, Event, Final, Machine, Policy, RunOutcome, TaskState};
use crate::template::Source;
use serde::Serialize;
use serde_json::Value;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

/// Largest pool a sweep simulates.
pub const MAX_SWEEP_EXECUTORS: u32 = 512;

/// The pool to simulate. Times and prices below zero, or not finite, count as 0.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    pub executors: u32,
    pub executor_cores: u32,
    pub max_concurrency: Option<u32>,
    /// From asking for nodes to a usable Spark session; paid once by the shared pool, and by
    /// every attempt in the baseline.
    pub node_startup_secs: f64,
    pub price_per_node_hour: f64,
    /// The slots a live Spark application reported (a real run's `SessionChanged`), used
    /// instead of `executors × executor_cores` when admitting notebooks.
    pub live_capacity_slots: Option<u32>,
}

impl PoolSpec {
    /// Typical time for a Synapse or Fabric Spark pool to come up.
    pub const DEFAULT_NODE_STARTUP_SECS: f64 = 180.0;
    /// With a price of 1 the cost reads as node-hours.
    pub const DEFAULT_PRICE_PER_NODE_HOUR: f64 = 1.0;

    pub fn of_plan(plan: &Plan) -> Self {
        PoolSpec {
            executors: plan.pool.executors,
            executor_cores: plan.pool.executor_cores,
            max_concurrency: plan.pool.max_concurrency,
            node_startup_secs: Self::DEFAULT_NODE_STARTUP_SECS,
            price_per_node_hour: Self::DEFAULT_PRICE_PER_NODE_HOUR,
            live_capacity_slots: None,
        }
    }

    pub fn capacity_slots(&self) -> u32 {
        self.live_capacity_slots
            .unwrap_or_else(|| {
                self.executors
                    .max(1)
                    .saturating_mul(self.executor_cores.max(1))
            })
            .max(1)
    }

    /// Nodes billed: one per executor, plus the driver.
    pub fn nodes(&self) -> u32 {
        self.executors.max(1).saturating_add(1)
    }

    fn startup(&self) -> f64 {
        non_negative(self.node_startup_secs)
    }

    fn price(&self) -> f64 {
        non_negative(self.price_per_node_hour)
    }
}

/// How attempt durations and failures are drawn. The default runs every notebook for exactly
/// its `estimate_secs` and never fails.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Durations {
    pub seed: u64,
    /// Spread of a log-normal factor with mean 1 applied to each estimate; 0 for none.
    pub variation: f64,
    /// Chance that an attempt fails, in `[0, 1]`.
    pub failure_probability: f64,
    /// Seconds measured for a task in a real run, by task index, in place of its estimate
    /// (`None`, or past the end: the estimate).
    pub measured_secs: Vec<Option<f64>>,
}

impl Durations {
    /// Duration and success of one attempt of a task estimated at `estimate` seconds.
    fn draw(&self, task: TaskId, attempt: u32, estimate: f64) -> (f64, bool) {
        let estimate = self
            .measured_secs
            .get(task)
            .copied()
            .flatten()
            .map_or(estimate, non_negative);
        let mut rng = SplitMix64::keyed(self.seed, task as u64, u64::from(attempt));
        let sigma = non_negative(self.variation);
        let secs = if sigma > 0.0 {
            estimate * rng.lognormal_factor(sigma)
        } else {
            estimate
        };
        let p = non_negative(self.failure_probability);
        let fails = p > 0.0 && rng.next_f64() < p;
        (secs, !fails)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimSetup {
    pub pool: PoolSpec,
    pub durations: Durations,
    pub policy: Policy,
    /// Seconds from the moment a notebook may start (its dependencies ended, a slot is free)
    /// to its start: what a real driver takes to notice the end and dispatch. The roots,
    /// started with the run, do not pay it.
    pub dispatch_latency_secs: f64,
    /// Values the simulated notebooks publish, for conditions on values: `ID.KEY` is what
    /// `ID` sets as `KEY` (`tasks.ID.values.KEY`), `ID` its exit value (`tasks.ID.value`).
    /// A condition that reads anything else holds.
    pub assume: BTreeMap<String, Value>,
}

impl SimSetup {
    /// The plan's own pool, exact estimates, critical-path policy.
    pub fn of_plan(plan: &Plan) -> Self {
        SimSetup {
            pool: PoolSpec::of_plan(plan),
            durations: Durations::default(),
            policy: Policy::default(),
            dispatch_latency_secs: 0.0,
            assume: BTreeMap::new(),
        }
    }

    /// The first condition on values of `task` that does not hold on the assumed values
    /// (see [`SimSetup::assume`]): the answer to [`Command::EvaluateConditions`].
    fn failed_condition(&self, plan: &Plan, task: TaskId) -> Option<u32> {
        for (i, c) in plan.tasks[task].conditions.iter().enumerate() {
            let prefix = &plan.scopes[c.scope].prefix;
            let lookup = |src: &Source| -> Result<Value, String> {
                let key = match src {
                    Source::TaskValue(t) => format!("{prefix}{t}"),
                    Source::TaskValues(t, Some(k)) => format!("{prefix}{t}.{k}"),
                    Source::Literal(text) => return Ok(Value::String(text.clone())),
                    _ => return Err("not assumed".into()),
                };
                self.assume
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| "not assumed".into())
            };
            let known = c
                .condition
                .references()
                .iter()
                .all(|r| r.template.refs().all(|(e, _)| lookup(&e.source).is_ok()));
            if known && !c.condition.evaluate(&lookup).holds {
                return Some(i as u32);
            }
        }
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    /// The notebook did not run: its conditions did not hold (attempt 0, no duration).
    Skipped,
}

impl AttemptOutcome {
    pub fn name(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::TimedOut => "timed_out",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::Skipped => "skipped",
        }
    }
}

/// One attempt of a notebook on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub task: TaskId,
    pub attempt: u32,
    pub start_secs: f64,
    pub end_secs: f64,
    pub slots: u32,
    pub outcome: AttemptOutcome,
}

/// From `at_secs` on (until the next point), `busy_slots` slots are held.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BusyPoint {
    pub at_secs: f64,
    pub busy_slots: u64,
}

/// No schedule of the same attempts on the same pool finishes before `secs`: the pool's
/// start-up plus the longest of the dependency chain, the work spread over all slots, and the
/// attempts spread over `max_concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LowerBound {
    pub secs: f64,
    pub startup_secs: f64,
    /// Longest chain of attempts (with retry intervals) along dependencies.
    pub critical_path_secs: f64,
    /// Slot-seconds of all attempts over the capacity.
    pub work_secs: f64,
    /// Seconds of all attempts over `max_concurrency` (0 without a limit).
    pub concurrency_secs: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    pub policy: Policy,
    pub capacity_slots: u32,
    pub run_outcome: RunOutcome,
    /// How each task ended, by task index.
    pub final_states: Vec<Final>,
    /// Notebook attempts in start order; a skipped notebook appears once, at its skip time.
    pub attempts: Vec<AttemptRecord>,
    pub utilization_series: Vec<BusyPoint>,
    /// From trigger to the end of the run, start-up included.
    pub makespan_secs: f64,
    pub lower_bound: LowerBound,
    /// Busy slot-seconds over capacity × makespan.
    pub utilization: f64,
    pub node_hours: f64,
    pub cost: f64,
}

/// Every notebook in a pool of its own, as a pipeline of notebook activities runs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BaselineReport {
    pub min_nodes: u32,
    pub makespan_secs: f64,
    pub node_hours: f64,
    pub cost: f64,
}

impl BaselineReport {
    /// Driver plus two executors: the smallest pool a notebook activity gets.
    pub const DEFAULT_MIN_NODES: u32 = 3;
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SweepPoint {
    pub executors: u32,
    pub makespan_secs: f64,
    pub utilization: f64,
    pub node_hours: f64,
    pub cost: f64,
}

/// Simulates the run on the shared pool.
pub fn simulate(plan: &Plan, setup: &SimSetup) -> SimReport {
    let pool = &setup.pool;
    let capacity = pool.capacity_slots();
    let startup = pool.startup();
    let trace = Trace::run(
        plan,
        setup,
        Admission {
            capacity_slots: capacity,
            max_concurrency: pool.max_concurrency,
        },
        startup,
        0.0,
    );
    let makespan = trace.end;
    let busy_slot_secs = integrate(&trace.busy, makespan);
    let utilization = if makespan > 0.0 {
        busy_slot_secs / (f64::from(capacity) * makespan)
    } else {
        0.0
    };
    let node_hours = f64::from(pool.nodes()) * makespan / 3600.0;
    SimReport {
        policy: setup.policy,
        capacity_slots: capacity,
        lower_bound: lower_bound(plan, &trace.attempts, pool, startup),
        run_outcome: trace.outcome,
        final_states: trace.finals,
        attempts: trace.attempts,
        utilization_series: trace.busy,
        makespan_secs: makespan,
        utilization,
        node_hours,
        cost: node_hours * pool.price(),
    }
}

/// Simulates the baseline: no shared capacity, every attempt pays the node start-up and holds
/// `max(min_nodes, 1 + executors its slots need)` nodes from start-up to its end.
pub fn baseline(plan: &Plan, setup: &SimSetup, min_nodes: u32) -> BaselineReport {
    let pool = &setup.pool;
    let trace = Trace::run(
        plan,
        setup,
        Admission {
            capacity_slots: u32::MAX,
            max_concurrency: None,
        },
        0.0,
        pool.startup(),
    );
    let cores = pool.executor_cores.max(1);
    let node_secs: f64 = trace
        .attempts
        .iter()
        .map(|a| {
            let nodes = min_nodes.max(1 + plan.tasks[a.task].slots().div_ceil(cores));
            f64::from(nodes) * (a.end_secs - a.start_secs)
        })
        .sum();
    let node_hours = node_secs / 3600.0;
    BaselineReport {
        min_nodes,
        makespan_secs: trace.end,
        node_hours,
        cost: node_hours * pool.price(),
    }
}

/// The run on pools of 1 to `max_executors` executors (at most [`MAX_SWEEP_EXECUTORS`]), all
/// else as in `setup`.
pub fn sweep(plan: &Plan, setup: &SimSetup, max_executors: u32) -> Vec<SweepPoint> {
    (1..=max_executors.min(MAX_SWEEP_EXECUTORS))
        .map(|executors| {
            let mut s = setup.clone();
            s.pool.executors = executors;
            s.pool.live_capacity_slots = None;
            let r = simulate(plan, &s);
            SweepPoint {
                executors,
                makespan_secs: r.makespan_secs,
                utilization: r.utilization,
                node_hours: r.node_hours,
                cost: r.cost,
            }
        })
        .collect()
}

/// The cheapest point that finishes within `deadline_secs` (the smaller pool on a tie).
pub fn cheapest_within(points: &[SweepPoint], deadline_secs: f64) -> Option<SweepPoint> {
    points
        .iter()
        .filter(|p| p.makespan_secs <= deadline_secs)
        .min_by(|a, b| {
            a.cost
                .total_cmp(&b.cost)
                .then(a.executors.cmp(&b.executors))
        })
        .copied()
}

fn non_negative(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        0.0
    }
}

/// Slot-seconds under a step series, up to `end`.
fn integrate(series: &[BusyPoint], end: f64) -> f64 {
    series
        .iter()
        .zip(series.iter().skip(1).map(|p| p.at_secs).chain([end]))
        .map(|(p, next)| p.busy_slots as f64 * (next - p.at_secs).max(0.0))
        .sum()
}

fn lower_bound(
    plan: &Plan,
    attempts: &[AttemptRecord],
    pool: &PoolSpec,
    startup: f64,
) -> LowerBound {
    let n = plan.tasks.len();
    // Least time each task must take: its attempts, and the retry intervals between them.
    let mut least = vec![0.0; n];
    let mut work = 0.0;
    let mut attempt_secs = 0.0;
    for a in attempts {
        let secs = a.end_secs - a.start_secs;
        least[a.task] += secs;
        if a.attempt > 1 {
            least[a.task] += plan.tasks[a.task].settings.retry_interval_secs as f64;
        }
        work += secs * f64::from(a.slots);
        attempt_secs += secs;
    }
    let mut done_by = vec![0.0f64; n];
    for t in 0..n {
        let ready = plan.deps[t]
            .iter()
            .map(|&(d, _)| done_by[d])
            .fold(0.0, f64::max);
        done_by[t] = ready + least[t];
    }
    let critical_path_secs = done_by.iter().copied().fold(0.0, f64::max);
    let work_secs = work / f64::from(pool.capacity_slots());
    let concurrency_secs = pool
        .max_concurrency
        .map_or(0.0, |c| attempt_secs / f64::from(c.max(1)));
    LowerBound {
        secs: startup + critical_path_secs.max(work_secs).max(concurrency_secs),
        startup_secs: startup,
        critical_path_secs,
        work_secs,
        concurrency_secs,
    }
}

/// An attempt's end as the simulation will report it.
#[derive(Debug, Clone, Copy)]
struct Completion {
    at: f64,
    task: TaskId,
    attempt: u32,
    succeeded: bool,
}

impl Ord for Completion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at
            .total_cmp(&other.at)
            .then(self.task.cmp(&other.task))
            .then(self.attempt.cmp(&other.attempt))
    }
}
impl PartialOrd for Completion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Completion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Completion {}

/// What one simulated run did.
struct Trace {
    attempts: Vec<AttemptRecord>,
    finals: Vec<Final>,
    outcome: RunOutcome,
    busy: Vec<BusyPoint>,
    end: f64,
}

impl Trace {
    /// Runs the machine from `run_start`; every attempt takes `attempt_overhead` seconds more
    /// than drawn.
    fn run(
        plan: &Plan,
        setup: &SimSetup,
        admission: Admission,
        run_start: f64,
        attempt_overhead: f64,
    ) -> Trace {
        let n = plan.tasks.len();
        let mut machine = Machine::new(plan, setup.policy, admission);
        let mut sim = Trace {
            attempts: Vec::with_capacity(n),
            finals: Vec::new(),
            outcome: RunOutcome::Succeeded,
            busy: vec![BusyPoint {
                at_secs: 0.0,
                busy_slots: 0,
            }],
            end: run_start,
        };
        let mut open = vec![usize::MAX; n];
        let mut pending: BinaryHeap<Reverse<Completion>> = BinaryHeap::new();
        let mut busy = 0u64;
        let mut cmds = Vec::new();
        let mut evaluated = Vec::new();
        let mut now = run_start;
        machine.handle_into(Event::RunStarted, now, &mut cmds);
        // The roots start with the run; every later start is dispatched after an event.
        let mut dispatch = 0.0;
        loop {
            for cmd in cmds.drain(..) {
                match cmd {
                    Command::StartNotebook {
                        task,
                        attempt,
                        slots,
                    } => {
                        let (secs, succeeded) =
                            setup
                                .durations
                                .draw(task, attempt, plan.tasks[task].estimate_secs());
                        let start = now + dispatch;
                        pending.push(Reverse(Completion {
                            at: start + secs + attempt_overhead,
                            task,
                            attempt,
                            succeeded,
                        }));
                        open[task] = sim.attempts.len();
                        sim.attempts.push(AttemptRecord {
                            task,
                            attempt,
                            start_secs: start,
                            end_secs: start,
                            slots,
                            outcome: AttemptOutcome::Succeeded,
                        });
                        busy += u64::from(slots);
                        sim.note_busy(now, busy);
                    }
                    Command::Settle {
                        task,
                        state: Final::Skipped,
                        ..
                    } if plan.tasks[task].kind == TaskKind::Notebook => {
                        sim.attempts.push(AttemptRecord {
                            task,
                            attempt: 0,
                            start_secs: now,
                            end_secs: now,
                            slots: 0,
                            outcome: AttemptOutcome::Skipped,
                        });
                    }
                    Command::FinishRun { outcome } => {
                        sim.outcome = outcome;
                        sim.end = now;
                    }
                    Command::EvaluateConditions { task } => {
                        evaluated.push(Event::ConditionsEvaluated {
                            task,
                            failed: setup.failed_condition(plan, task),
                        });
                    }
                    // A dry run simulates `Plan::with_expected_items`, where no for-each is
                    // left to expand; a plan given as it is runs none of their iterations.
                    Command::ExpandForEach { task } => {
                        evaluated.push(Event::ForEachExpanded {
                            task,
                            items: Some(0),
                        });
                    }
                    // The attempts a cancel is for have already ended here; retries come back
                    // through the machine's deadlines.
                    Command::CancelNotebook { .. }
                    | Command::ScheduleRetry { .. }
                    | Command::Settle { .. } => {}
                }
            }
            if !evaluated.is_empty() {
                for event in evaluated.drain(..) {
                    machine.handle_into(event, now, &mut cmds);
                }
                continue;
            }
            if machine.is_finished() {
                break;
            }
            dispatch = non_negative(setup.dispatch_latency_secs);
            let deadline = machine.next_deadline();
            let completion = pending.peek().map(|Reverse(c)| *c);
            // A notebook that ends exactly at its timeout has ended.
            let (event, ended) = match (completion, deadline) {
                (Some(c), d) if d.is_none_or(|d| c.at <= d.at) => {
                    pending.pop();
                    now = c.at;
                    let (task, attempt) = (c.task, c.attempt);
                    if c.succeeded {
                        (
                            Event::NotebookSucceeded { task, attempt },
                            AttemptOutcome::Succeeded,
                        )
                    } else {
                        (
                            Event::NotebookFailed { task, attempt },
                            AttemptOutcome::Failed,
                        )
                    }
                }
                (_, Some(d)) => {
                    now = d.at;
                    (d.event, AttemptOutcome::TimedOut)
                }
                (_, None) => break,
            };
            if let Event::NotebookSucceeded { task, attempt }
            | Event::NotebookFailed { task, attempt }
            | Event::NotebookTimedOut { task, attempt } = event
            {
                let live = matches!(
                    machine.state_of(task),
                    Some(TaskState::Running { attempt: a, .. }) if a == attempt
                );
                if !live {
                    // An attempt that timed out before its drawn end.
                    continue;
                }
                let record = &mut sim.attempts[open[task]];
                record.end_secs = now;
                record.outcome = ended;
                busy -= u64::from(record.slots);
                sim.note_busy(now, busy);
            }
            machine.handle_into(event, now, &mut cmds);
        }
        sim.finals = (0..n)
            .map(|t| match machine.state_of(t) {
                Some(TaskState::Done(f)) => f,
                // The loop ends only when the machine has finished, so every task is final.
                _ => Final::Cancelled,
            })
            .collect();
        sim
    }

    /// Records a change of busy slots; points at the same time merge, and points that change
    /// nothing are dropped.
    fn note_busy(&mut self, at_secs: f64, busy_slots: u64) {
        match self.busy.last_mut() {
            Some(last) if last.at_secs == at_secs => last.busy_slots = busy_slots,
            _ => self.busy.push(BusyPoint {
                at_secs,
                busy_slots,
            }),
        }
        if let [.., before, last] = self.busy[..] {
            if before.busy_slots == last.busy_slots {
                self.busy.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::LayeredDag;

    fn exact(plan: &Plan, policy: Policy, executors: u32) -> SimSetup {
        let mut setup = SimSetup::of_plan(plan);
        setup.pool.executors = executors;
        setup.pool.node_startup_secs = 100.0;
        setup.pool.price_per_node_hour = 2.0;
        setup.policy = policy;
        setup
    }

    /// Four independent 1-hour notebooks on two 1-core executors: two rounds.
    fn four_hours() -> Plan {
        let mut plan = LayeredDag {
            layers: 1,
            sigma: 0.0,
            median_secs: 3600.0,
            executor_cores: 1,
            ..LayeredDag::benchmark(4, 1)
        }
        .generate();
        plan.pool.executors = 2;
        plan
    }

    #[test]
    fn shared_pool_against_one_pool_per_notebook() {
        let plan = four_hours();
        let setup = exact(&plan, Policy::CriticalPath, 2);
        let r = simulate(&plan, &setup);
        assert_eq!(r.makespan_secs, 100.0 + 7200.0);
        assert_eq!(r.lower_bound.secs, 100.0 + 7200.0);
        assert_eq!(r.lower_bound.critical_path_secs, 3600.0);
        // 3 nodes (2 executors and the driver) for the whole run, at 2 per node-hour.
        assert!((r.node_hours - 3.0 * 7300.0 / 3600.0).abs() < 1e-9);
        assert!((r.cost - 2.0 * r.node_hours).abs() < 1e-9);
        assert!((r.utilization - 7200.0 / 7300.0).abs() < 1e-9);
        let starts: Vec<f64> = r.attempts.iter().map(|a| a.start_secs).collect();
        assert_eq!(starts, [100.0, 100.0, 3700.0, 3700.0]);
        let series: Vec<(f64, u64)> = r
            .utilization_series
            .iter()
            .map(|p| (p.at_secs, p.busy_slots))
            .collect();
        assert_eq!(series, [(0.0, 0), (100.0, 2), (7300.0, 0)]);

        let b = baseline(&plan, &setup, BaselineReport::DEFAULT_MIN_NODES);
        // All four at once, each paying start-up on 3 nodes.
        assert_eq!(b.makespan_secs, 3700.0);
        assert!((b.node_hours - 4.0 * 3.0 * 3700.0 / 3600.0).abs() < 1e-9);
    }

    #[test]
    fn sweep_finds_the_cheapest_pool_meeting_a_deadline() {
        let plan = four_hours();
        let points = sweep(&plan, &exact(&plan, Policy::CriticalPath, 1), 5);
        let makespans: Vec<f64> = points.iter().map(|p| p.makespan_secs).collect();
        assert_eq!(makespans, [14500.0, 7300.0, 7300.0, 3700.0, 3700.0]);
        let best = cheapest_within(&points, 7300.0).map(|p| p.executors);
        // 2 executors: 3 nodes × 7300 s; 4 executors: 5 nodes × 3700 s is cheaper still.
        assert_eq!(best, Some(4));
        assert_eq!(cheapest_within(&points, 3000.0), None);
    }

    #[test]
    fn variation_and_failures_are_seeded() {
        let mut plan = LayeredDag::benchmark(300, 9).generate();
        for t in &mut plan.tasks {
            t.settings.retry = 1;
        }
        let mut setup = exact(&plan, Policy::CriticalPath, 4);
        setup.durations = Durations {
            seed: 5,
            variation: 0.5,
            failure_probability: 0.2,
            ..Durations::default()
        };
        let a = simulate(&plan, &setup);
        assert_eq!(a, simulate(&plan, &setup));
        assert!(a.attempts.iter().any(|r| r.attempt == 2), "some retries");
        assert!(a.final_states.contains(&Final::Failed));
        setup.durations.seed = 6;
        assert_ne!(a.attempts, simulate(&plan, &setup).attempts);
    }

    #[test]
    fn value_conditions_hold_in_a_dry_run_unless_assumed_otherwise() {
        let mut sources = crate::source::MemorySources::default();
        for nb in ["a.py", "b.py", "c.py"] {
            sources = sources.with(nb, "");
        }
        let text = "[[notebook]]\nid = \"check\"\npath = \"a.py\"\n\
            [[notebook]]\nid = \"load\"\npath = \"b.py\"\n\
            depends_on = [{ id = \"check\", if = \"{{ tasks.check.values.rows }} > 0 and {{ tasks.check.value }} != 'stop'\" }]\n\
            [[notebook]]\nid = \"report\"\npath = \"c.py\"\ndepends_on = [\"load\"]\n";
        let plan = crate::dag::load_text("p.toml", text, &sources)
            .plan
            .expect("loads");
        let finals = |assume: &[(&str, Value)]| {
            let mut setup = SimSetup::of_plan(&plan);
            setup.assume = assume
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            simulate(&plan, &setup).final_states
        };
        let all = vec![Final::Succeeded; 3];
        assert_eq!(finals(&[]), all);
        // One of its values given: the condition still reads one it was not told, so it holds.
        assert_eq!(finals(&[("check.rows", Value::from(0))]), all);
        let told = [("check.rows", Value::from(0)), ("check", Value::from("go"))];
        assert_eq!(
            finals(&told),
            [Final::Succeeded, Final::Skipped, Final::Skipped]
        );
        let told = [("check.rows", Value::from(4)), ("check", Value::from("go"))];
        assert_eq!(finals(&told), all);
    }
}
