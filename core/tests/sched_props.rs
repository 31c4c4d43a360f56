//! Properties of the scheduling state machine and the simulator on random plans: capacity and
//! concurrency never exceeded, no notebook starts before its conditions hold, the makespan
//! never beats the lower bound, the same seed gives the same run, every task ends in exactly
//! one final state, for-each iterations stay within their concurrency, and the run log made
//! from the machine's commands folds to the machine's state, iterations added at run time
//! included.

use proptest::prelude::*;
use spool_core::dag::{Plan, TaskCondition, TaskKind};
use spool_core::for_each::{ForEach, Items, Reference};
use spool_core::gen::LayeredDag;
use spool_core::model::{Condition, Outcome};
use spool_core::runlog::{
    AttemptOutcome as LoggedOutcome, EvaluatedCondition, RunEvent, RunRecord, RunSummary,
    StoredEvent,
};
use spool_core::sched::{Admission, Command, Event, Final, Machine, Policy, TaskState};
use spool_core::sim::{simulate, AttemptOutcome, Durations, SimReport, SimSetup};
use spool_core::template::Template;
use spool_core::value_condition::{ValueCondition, Verdict};
use std::collections::{BTreeMap, HashMap};

const CONDITIONS: [Condition; 5] = [
    Condition::SUCCEEDED,
    Condition::SUCCEEDED,
    Condition::FAILED,
    Condition::COMPLETED,
    Condition::SKIPPED,
];

/// A random plan: a layered DAG whose edges get random conditions, some tasks turned into
/// sub-pipeline ends or into for-eaches whose list is read at run time (with or without a
/// concurrency), and random retries, retry intervals, timeouts and slots.
fn arb_plan() -> impl Strategy<Value = Plan> {
    (
        1usize..40,
        1usize..8,
        any::<u64>(),
        prop::collection::vec((0usize..5, 0u32..3, 0u64..50, 1u32..6, 0u8..10), 40),
    )
        .prop_map(|(notebooks, layers, seed, knobs)| {
            let mut plan = LayeredDag {
                layers,
                wide_share: 0.3,
                max_slots: 5,
                sigma: 1.0,
                ..LayeredDag::benchmark(notebooks, seed)
            }
            .generate();
            for (t, &(_, retry, interval, slots, kind)) in plan.tasks.iter_mut().zip(&knobs) {
                t.settings.retry = retry;
                t.settings.retry_interval_secs = interval;
                t.settings.slots = slots;
                // Some timeouts short enough to cut attempts (estimates have a median of 60 s).
                t.settings.timeout_secs = if kind < 3 {
                    30 + 20 * u64::from(kind)
                } else {
                    3600
                };
                if kind == 9 {
                    t.kind = TaskKind::PipelineEnd;
                }
                if kind == 8 {
                    t.kind = TaskKind::ForEach;
                    let text = "{{ tasks.x.value }}";
                    t.for_each = Some(ForEach {
                        items: Items::Reference(Reference {
                            text: text.into(),
                            template: Template::parse(text).ok().flatten().expect("parses"),
                            at: Default::default(),
                        }),
                        concurrency: (interval % 2 == 0).then_some(1 + (interval % 3) as u32),
                        expected_items: 1 + (interval % 4) as u32,
                    });
                }
            }
            for (t, deps) in plan.deps.iter_mut().enumerate() {
                for (i, (_, c)) in deps.iter_mut().enumerate() {
                    *c = CONDITIONS[(knobs[t].0 + i) % CONDITIONS.len()];
                }
            }
            plan
        })
}

fn arb_setup() -> impl Strategy<Value = (u32, u32, Option<u32>, Durations, Policy, f64)> {
    (
        1u32..4,
        1u32..4,
        prop::option::of(1u32..5),
        (any::<u64>(), 0.0f64..1.5, 0.0f64..0.6),
        prop::bool::ANY,
        0.0f64..300.0,
    )
        .prop_map(
            |(executors, cores, max_conc, (seed, variation, failure), fifo, startup)| {
                (
                    executors,
                    cores,
                    max_conc,
                    Durations {
                        seed,
                        variation,
                        failure_probability: failure,
                        ..Durations::default()
                    },
                    if fifo {
                        Policy::Fifo
                    } else {
                        Policy::CriticalPath
                    },
                    startup,
                )
            },
        )
}

fn setup_for(
    plan: &Plan,
    (executors, cores, max_conc, durations, policy, startup): &(
        u32,
        u32,
        Option<u32>,
        Durations,
        Policy,
        f64,
    ),
) -> SimSetup {
    let mut s = SimSetup::of_plan(plan);
    s.pool.executors = *executors;
    s.pool.executor_cores = *cores;
    s.pool.max_concurrency = *max_conc;
    s.pool.node_startup_secs = *startup;
    s.durations = durations.clone();
    s.policy = *policy;
    s
}

/// When each task became final: the end of its last attempt, its skip time, or (for a
/// sub-pipeline end, which settles the moment it resolves) when its last dependency did.
fn final_times(plan: &Plan, r: &SimReport, run_start: f64) -> Vec<f64> {
    let mut at = vec![f64::NAN; plan.tasks.len()];
    for a in &r.attempts {
        at[a.task] = a.end_secs;
    }
    for t in 0..plan.tasks.len() {
        if !plan.tasks[t].kind.runs_notebook() {
            at[t] = plan.deps[t]
                .iter()
                .map(|&(d, _)| at[d])
                .fold(run_start, f64::max);
        }
    }
    at
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn simulated_runs_keep_every_invariant(plan in arb_plan(), knobs in arb_setup()) {
        // A dry run runs each for-each read at run time over its `expected_items`.
        let plan = plan.with_expected_items(&Default::default()).into_owned();
        prop_assert!(!plan.tasks.iter().any(|t| t.expands()));
        let setup = setup_for(&plan, &knobs);
        let r = simulate(&plan, &setup);
        let capacity = u64::from(setup.pool.capacity_slots());
        let startup = setup.pool.node_startup_secs;

        // Capacity and concurrency, from the attempts themselves: ends before starts at the
        // same instant.
        let mut edges: Vec<(f64, i64, i64)> = Vec::new();
        for a in r.attempts.iter().filter(|a| a.outcome != AttemptOutcome::Skipped) {
            prop_assert!(u64::from(a.slots) <= capacity);
            prop_assert_eq!(a.slots, plan.tasks[a.task].slots().min(capacity as u32));
            edges.push((a.start_secs, 1, i64::from(a.slots)));
            edges.push((a.end_secs, -1, -i64::from(a.slots)));
        }
        edges.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let (mut busy, mut running) = (0i64, 0i64);
        for (_, n, s) in edges {
            busy += s;
            running += n;
            prop_assert!(busy as u64 <= capacity, "busy {} > capacity {}", busy, capacity);
            if let Some(c) = setup.pool.max_concurrency {
                prop_assert!(running <= i64::from(c));
            }
        }
        // At most `for_each_concurrency` iterations of a for-each at once.
        let mut groups: HashMap<&str, Vec<(f64, i64)>> = HashMap::new();
        for a in r.attempts.iter().filter(|a| a.outcome != AttemptOutcome::Skipped) {
            if let Some(it) = &plan.tasks[a.task].iteration {
                let g = groups.entry(it.group.as_str()).or_default();
                g.push((a.start_secs, 1));
                g.push((a.end_secs, -1));
            }
        }
        for (group, mut edges) in groups {
            let cap = plan.tasks[plan.index_of(group).expect("group")]
                .for_each.as_ref().and_then(|f| f.concurrency);
            edges.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            let mut at_once = 0;
            for (_, n) in edges {
                at_once += n;
                if let Some(cap) = cap {
                    prop_assert!(at_once <= i64::from(cap), "{} runs {} at once", group, at_once);
                }
            }
        }
        let series_max = r.utilization_series.iter().map(|p| p.busy_slots).max().unwrap_or(0);
        prop_assert!(series_max <= capacity);

        // Every task ends in exactly one final state, consistent with its attempts.
        prop_assert_eq!(r.final_states.len(), plan.tasks.len());
        for (t, task) in plan.tasks.iter().enumerate() {
            let mine: Vec<_> = r.attempts.iter().filter(|a| a.task == t).collect();
            let fin = r.final_states[t];
            prop_assert!(fin != Final::Cancelled, "nothing cancels a simulated run");
            if !task.kind.runs_notebook() {
                prop_assert!(mine.is_empty(), "a sub-pipeline end or a for-each never runs");
                continue;
            }
            if fin == Final::Skipped {
                prop_assert_eq!(mine.len(), 1);
                prop_assert_eq!(mine[0].outcome, AttemptOutcome::Skipped);
                continue;
            }
            prop_assert!(!mine.is_empty());
            for (i, a) in mine.iter().enumerate() {
                prop_assert_eq!(a.attempt as usize, i + 1);
                prop_assert!(a.end_secs >= a.start_secs);
                prop_assert!(a.end_secs - a.start_secs <= task.settings.timeout_secs as f64 + 1e-6);
                let last = i + 1 == mine.len();
                let failed = matches!(a.outcome, AttemptOutcome::Failed | AttemptOutcome::TimedOut);
                prop_assert!(last || failed, "only the last attempt may succeed");
                if i > 0 {
                    let gap = a.start_secs - mine[i - 1].end_secs;
                    prop_assert!(gap >= task.settings.retry_interval_secs as f64 - 1e-6);
                }
            }
            let last = mine[mine.len() - 1];
            match fin {
                Final::Succeeded => prop_assert_eq!(last.outcome, AttemptOutcome::Succeeded),
                Final::Failed => {
                    prop_assert_ne!(last.outcome, AttemptOutcome::Succeeded);
                    prop_assert_eq!(mine.len() as u32, task.settings.retry + 1, "retries left");
                }
                _ => prop_assert!(false, "unexpected final state {:?}", fin),
            }
        }

        // No notebook starts before all its dependencies are final and their conditions hold;
        // a skipped one has a condition that does not hold.
        let done_at = final_times(&plan, &r, startup);
        for a in &r.attempts {
            let deps = &plan.deps[a.task];
            let holds = deps.iter().all(|&(d, c)| c.accepts(r.final_states[d].outcome()));
            for &(d, _) in deps {
                prop_assert!(done_at[d] <= a.start_secs + 1e-9);
            }
            if a.attempt == 1 {
                prop_assert!(holds, "{} started with a condition unmet", plan.tasks[a.task].id);
            }
            if a.outcome == AttemptOutcome::Skipped {
                prop_assert!(!holds, "{} skipped with every condition met", plan.tasks[a.task].id);
            }
            prop_assert!(a.start_secs >= startup);
        }
        // Sub-pipeline ends and for-eaches (over their iterations) follow their documented
        // rule.
        for (t, task) in plan.tasks.iter().enumerate() {
            if task.kind.runs_notebook() {
                continue;
            }
            let outs: Vec<Outcome> =
                plan.deps[t].iter().map(|&(d, _)| r.final_states[d].outcome()).collect();
            let holds = plan.deps[t].iter().zip(&outs).all(|(&(_, c), &o)| c.accepts(o));
            let want = if !holds {
                Final::Skipped
            } else if outs.contains(&Outcome::Failed) {
                Final::Failed
            } else if !outs.is_empty() && outs.iter().all(|&o| o == Outcome::Skipped) {
                Final::Skipped
            } else {
                Final::Succeeded
            };
            prop_assert_eq!(r.final_states[t], want);
        }

        // The makespan never beats the lower bound, and the same seed gives the same run.
        prop_assert!(r.makespan_secs >= r.lower_bound.secs * (1.0 - 1e-12) - 1e-9,
            "makespan {} below lower bound {:?}", r.makespan_secs, r.lower_bound);
        prop_assert_eq!(&r, &simulate(&plan, &setup));
    }

    /// A driver that completes, fails, times out and cancels in random order, changes the
    /// capacity, answers evaluations of conditions on values (some tasks have one) late and
    /// either way, expands for-eaches late into 0 to 4 iterations or fails to read their list,
    /// sends stale and unknown events, and may cancel the run; the run may resume an earlier
    /// one. It records what a real driver records: the machine's commands through
    /// `RunEvent::of_command`, the expansions, and the attempts it reports ended. Invariant
    /// ("the run log folds to the machine's state"): the fold of that log gives every task the
    /// machine's final state, iterations added at run time included, from exactly one final
    /// event per task, and the run's outcome, once. Invariant ("a driver's plan and machine
    /// keep the same ids"): after each expansion the plan has as many tasks as the machine.
    /// No for-each has more than `for_each_concurrency` iterations running, and each ends as
    /// its iterations say.
    #[test]
    fn machine_survives_any_driver_and_its_log_folds_to_its_state(
        mut plan in arb_plan(),
        gated in prop::collection::vec(prop::bool::weighted(0.2), 40),
        capacity in 1u32..6,
        max_conc in prop::option::of(1u32..4),
        actions in prop::collection::vec((0u8..9, any::<u16>()), 0..200),
        fifo in prop::bool::ANY,
        previous_ok in prop::collection::vec(prop::bool::weighted(0.3), 40),
    ) {
        let policy = if fifo { Policy::Fifo } else { Policy::CriticalPath };
        let n = plan.tasks.len();
        for (task, _) in plan.tasks.iter_mut().zip(&gated).filter(|(_, &g)| g) {
            task.conditions.push(TaskCondition {
                dependency: "x".into(),
                condition: ValueCondition::parse("{{ tasks.x.value }} > 0").expect("parses"),
                scope: 0,
            });
        }
        let previous: HashMap<String, Outcome> = plan.tasks.iter().zip(&previous_ok)
            .filter(|(_, &ok)| ok)
            .map(|(t, _)| (t.id.clone(), Outcome::Succeeded))
            .collect();
        let admission = Admission { capacity_slots: capacity, max_concurrency: max_conc };
        let mut m = Machine::resume(&plan, policy, admission, &previous);
        let mut log = vec![RunEvent::RunStarted {
            pipeline: plan.name.clone(),
            file: "p.toml".into(),
            params: BTreeMap::new(),
            resumed_from: None,
            plan: serde_json::Value::Null,
            trigger: None,
            started_by: None,
        }];
        let mut cap = u64::from(capacity);
        let mut running: Vec<(usize, u32, u64)> = Vec::new();
        let mut busy = 0u64;
        let mut cancelled = false;
        let mut finished = 0;
        let mut now = 0.0;
        let mut evaluating: Vec<usize> = Vec::new();
        let mut expanding: Vec<usize> = Vec::new();
        let mut check = |plan: &Plan, cmds: Vec<Command>, running: &mut Vec<(usize, u32, u64)>,
                         busy: &mut u64, cap: u64, cancelled: bool, m: &Machine,
                         log: &mut Vec<RunEvent>, evaluating: &mut Vec<usize>,
                         expanding: &mut Vec<usize>|
                         -> Result<(), TestCaseError> {
            for c in cmds {
                log.extend(RunEvent::of_command(plan, &c));
                match c {
                    Command::StartNotebook { task, attempt, slots } => {
                        prop_assert!(!cancelled, "start after cancel");
                        prop_assert_eq!(plan.tasks[task].kind, TaskKind::Notebook);
                        if let Some(it) = &plan.tasks[task].iteration {
                            let group = plan.index_of(&it.group).expect("its for-each");
                            let cap = plan.tasks[group].for_each.as_ref()
                                .and_then(|f| f.concurrency).unwrap_or(u32::MAX);
                            let siblings = running.iter().filter(|&&(t, _, _)| {
                                plan.tasks[t].iteration.as_ref().is_some_and(|i| i.group == it.group)
                            }).count();
                            prop_assert!(siblings < cap as usize, "over for_each_concurrency");
                        }
                        prop_assert!(*busy + u64::from(slots) <= cap, "over capacity");
                        prop_assert_eq!(u64::from(slots), u64::from(plan.tasks[task].slots()).min(cap));
                        if let Some(c) = max_conc {
                            prop_assert!(running.len() < c as usize, "over max_concurrency");
                        }
                        *busy += u64::from(slots);
                        running.push((task, attempt, u64::from(slots)));
                    }
                    Command::CancelNotebook { task, attempt } => {
                        // A timed-out attempt is already over; a cancelled run's still runs.
                        if !cancelled {
                            prop_assert!(!running.iter().any(|&(t, a, _)| t == task && a == attempt));
                        }
                    }
                    Command::FinishRun { .. } => {
                        finished += 1;
                        for t in 0..m.task_count() {
                            prop_assert!(matches!(m.state_of(t), Some(TaskState::Done(_))));
                        }
                    }
                    Command::EvaluateConditions { task } => {
                        prop_assert!(!plan.tasks[task].conditions.is_empty());
                        evaluating.push(task);
                    }
                    Command::ExpandForEach { task } => {
                        prop_assert!(plan.tasks[task].expands());
                        expanding.push(task);
                    }
                    Command::ScheduleRetry { .. } | Command::Settle { .. } => {}
                }
            }
            Ok(())
        };
        let cmds = m.handle(Event::RunStarted, now);
        check(&plan, cmds, &mut running, &mut busy, cap, cancelled, &m, &mut log,
            &mut evaluating, &mut expanding)?;
        // What a real driver records and answers for an evaluation.
        let answer = |plan: &Plan, task: usize, holds: bool, log: &mut Vec<RunEvent>| {
            let verdicts = [Verdict { holds, ..Verdict::default() }];
            log.push(RunEvent::ConditionsEvaluated {
                task: plan.tasks[task].id.clone(),
                conditions: EvaluatedCondition::of_task(plan, task, &verdicts),
            });
            Event::conditions_evaluated(task, &verdicts)
        };
        // The random part, then a tidy finish: everything running succeeds, deadlines fire.
        let tidy = std::iter::repeat_n((255u8, 0u16), 10 * n + 1000);
        for (action, pick) in actions.into_iter().chain(tidy) {
            if m.is_finished() {
                break;
            }
            now += 1.0;
            let pick = usize::from(pick);
            let event = match action {
                0..=3 if !running.is_empty() => {
                    let (task, attempt, slots) = running.swap_remove(pick % running.len());
                    busy -= slots;
                    let (event, outcome) = match action {
                        0 => (Event::NotebookSucceeded { task, attempt }, LoggedOutcome::Succeeded),
                        1 => (Event::NotebookFailed { task, attempt }, LoggedOutcome::Failed),
                        2 => (Event::NotebookTimedOut { task, attempt }, LoggedOutcome::TimedOut),
                        _ => (Event::NotebookCancelled { task, attempt }, LoggedOutcome::Cancelled),
                    };
                    log.push(attempt_ended(&plan, task, attempt, outcome));
                    event
                }
                // An answer to no question (a for-each not expanding, or no task at all).
                6 if pick % 7 == 0 && m.state_of(pick % (n + 2)) != Some(TaskState::Expanding) => {
                    Event::ForEachExpanded { task: pick % (n + 2), items: Some(1) }
                }
                4 => {
                    cap = (pick % 6) as u64;
                    Event::CapacityChanged { slots: cap as u32 }
                }
                5 if pick % 20 == 0 => {
                    cancelled = true;
                    Event::CancelRequested
                }
                6 => Event::NotebookSucceeded { task: pick % (n + 2), attempt: (pick % 3) as u32 + 7 },
                7 if !evaluating.is_empty() => {
                    let task = evaluating.swap_remove(pick % evaluating.len());
                    answer(&plan, task, pick % 2 == 0, &mut log)
                }
                8 if !expanding.is_empty() => {
                    let task = expanding.swap_remove(pick % expanding.len());
                    expand(&mut plan, &m, task, pick, &mut log)
                }
                _ if !evaluating.is_empty() => {
                    let task = evaluating.swap_remove(0);
                    answer(&plan, task, pick % 3 != 0, &mut log)
                }
                _ if !expanding.is_empty() => {
                    let task = expanding.swap_remove(0);
                    expand(&mut plan, &m, task, pick, &mut log)
                }
                _ => match (running.pop(), m.next_deadline()) {
                    (Some((task, attempt, slots)), _) => {
                        busy -= slots;
                        log.push(attempt_ended(&plan, task, attempt, LoggedOutcome::Succeeded));
                        Event::NotebookSucceeded { task, attempt }
                    }
                    (None, Some(d)) => {
                        now = d.at.max(now);
                        d.event
                    }
                    (None, None) => Event::RunStarted,
                },
            };
            let cap_now = cap.max(1);
            let cmds = m.handle(event, now);
            prop_assert_eq!(plan.tasks.len(), m.task_count(), "a driver's plan and machine keep the same ids");
            check(&plan, cmds, &mut running, &mut busy, cap_now, cancelled, &m, &mut log,
                &mut evaluating, &mut expanding)?;
            // The machine's view of running notebooks matches the driver's.
            prop_assert_eq!(m.busy_slots(), busy);
            cap = cap_now;
        }
        prop_assert!(m.is_finished(), "run did not finish");
        prop_assert_eq!(finished, 1);

        let stored: Vec<StoredEvent> = log.into_iter().enumerate()
            .map(|(seq, event)| StoredEvent { seq: seq as i64, at_ms: seq as i64, event })
            .collect();
        let run = RunRecord::fold(1, &stored).expect("the log starts with run_started");
        prop_assert_eq!(Some(run.status), m.outcome().map(Into::into));
        let run_ends = stored.iter().filter(|e| matches!(e.event, RunEvent::RunFinished { .. })).count();
        prop_assert_eq!(run_ends, 1);
        for (t, task) in plan.tasks.iter().enumerate() {
            let Some(TaskState::Done(fin)) = m.state_of(t) else {
                return Err(TestCaseError::fail(format!("{} not final", task.id)));
            };
            let folded = run.tasks.get(&task.id).and_then(|r| r.state);
            prop_assert_eq!(folded, Some(fin), "{}", task.id);
            let finals = stored.iter().filter(|e| match &e.event {
                RunEvent::TaskSettled { task: id, .. } | RunEvent::TaskCarriedOver { task: id } => {
                    *id == task.id
                }
                _ => false,
            }).count();
            prop_assert_eq!(finals, 1, "final events of {}", task.id);
            prop_assert_eq!(run.tasks[&task.id].carried_over, m.is_carried_over(t));
            // A for-each expanded at run time ends as its iterations say.
            let iterations = &run.tasks[&task.id].iterations;
            if task.expands() && !iterations.is_empty() {
                let finals: Vec<Final> = iterations.iter()
                    .filter_map(|id| run.tasks.get(id).and_then(|r| r.state)).collect();
                prop_assert_eq!(finals.len(), iterations.len());
                let want = if finals.iter().any(|f| f.outcome() == Outcome::Failed) {
                    Final::Failed
                } else if finals.iter().all(|&f| f == Final::Skipped) {
                    Final::Skipped
                } else {
                    Final::Succeeded
                };
                if !matches!(fin, Final::Cancelled) {
                    prop_assert_eq!(fin, want, "{}", task.id);
                }
            }
        }

        // Invariant ("a run's summary is its fold's"): the summary the history keeps, applied
        // event by event, equals the summary of the fold after every event.
        let mut summary = RunSummary::of(&RunRecord::fold(1, &stored[..1]).expect("started"));
        for end in 1..stored.len() {
            summary.apply(&stored[end]);
            let folded = RunRecord::fold(1, &stored[..=end]).expect("started");
            prop_assert_eq!(&summary, &RunSummary::of(&folded), "after event {}", end);
        }
    }
}

/// What a driver does for `Command::ExpandForEach`: reads 0 to 4 items (or no list, one time
/// in six), adds the iterations to its plan, records the expansion and answers the machine;
/// an answer that comes after the run moved on (a cancel) changes nothing.
fn expand(
    plan: &mut Plan,
    m: &Machine,
    task: usize,
    pick: usize,
    log: &mut Vec<RunEvent>,
) -> Event {
    if m.state_of(task) != Some(TaskState::Expanding) {
        return Event::ForEachExpanded {
            task,
            items: Some(2),
        };
    }
    let id = plan.tasks[task].id.clone();
    if pick % 6 == 5 {
        log.push(RunEvent::ForEachExpanded {
            task: id,
            iterations: Vec::new(),
            error: Some("for_each needs a list, but the value is a number".into()),
        });
        return Event::ForEachExpanded { task, items: None };
    }
    let items: Vec<serde_json::Value> = (0..pick % 5).map(|i| format!("t{i}").into()).collect();
    let count = items.len() as u32;
    let added = plan.add_iterations(task, items);
    log.push(RunEvent::ForEachExpanded {
        task: id,
        iterations: added.map(|t| plan.tasks[t].id.clone()).collect(),
        error: None,
    });
    Event::ForEachExpanded {
        task,
        items: Some(count),
    }
}

/// What a driver records when an attempt reports back.
fn attempt_ended(plan: &Plan, task: usize, attempt: u32, outcome: LoggedOutcome) -> RunEvent {
    RunEvent::TaskFinished {
        task: plan.tasks[task].id.clone(),
        attempt,
        outcome,
        error: None,
        output: None,
        exit_value: None,
        metrics: None,
    }
}
