//! A real run's timeline from its run log, as the Runs view's Gantt chart draws it: each
//! attempt's queued time (ready, waiting for a slot), its running time and outcome, and the
//! session's start-up. The log records when attempts start and end and when tasks settle; when
//! an attempt became ready is derived here, by the scheduler's own rule (`sched.rs`): a first
//! attempt once the session is up and every dependency (in the plan the run ran) is final — an
//! iteration of a for-each read at run time once its list was read — and a retry once its
//! `retry_interval_secs` after the failed attempt are over.

use crate::dag::{Plan, TaskKind};
use crate::runlog::{AttemptOutcome, RunEvent, RunRecord, StoredEvent};
use std::collections::HashMap;

/// What a run log says of when things became possible, folded event by event beside the
/// [`RunRecord`] (the same events, in the same order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadyTimes {
    /// When the Spark session first reported its capacity: nothing starts before.
    pub session_ready_ms: Option<i64>,
    /// When each task reached its final state (or was kept from the resumed run).
    settled_ms: HashMap<String, i64>,
    /// When the retry that runs attempt `n` of a task was decided (its failed attempt's end).
    retry_decided_ms: HashMap<(String, u32), i64>,
    /// When a for-each read at run time listed each iteration.
    expanded_ms: HashMap<String, i64>,
}

impl ReadyTimes {
    pub fn apply(&mut self, stored: &StoredEvent) {
        let at = stored.at_ms;
        match &stored.event {
            RunEvent::SessionChanged {
                capacity: Some(_), ..
            } => {
                self.session_ready_ms.get_or_insert(at);
            }
            RunEvent::TaskSettled { task, .. }
            | RunEvent::TaskCarriedOver { task }
            | RunEvent::TaskSkipped { task, .. } => {
                self.settled_ms.entry(task.clone()).or_insert(at);
            }
            RunEvent::RetryScheduled { task, attempt, .. } => {
                self.retry_decided_ms.insert((task.clone(), *attempt), at);
            }
            RunEvent::ForEachExpanded { iterations, .. } => {
                for id in iterations {
                    self.expanded_ms.insert(id.clone(), at);
                }
            }
            _ => {}
        }
    }

    /// Every attempt of `record` (folded from the same log) with when it became ready, in the
    /// record's task order; `plan` is the plan the run ran (its dependencies and retry
    /// intervals). An attempt is never ready after it started: a readiness the log cannot tell
    /// (a dependency that settled in an older log's way) counts as none queued.
    pub fn attempts(&self, plan: Option<&Plan>, record: &RunRecord) -> Vec<TimedAttempt> {
        let index: HashMap<&str, usize> = plan
            .map(|p| {
                p.tasks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.id.as_str(), i))
                    .collect()
            })
            .unwrap_or_default();
        let up = self.session_ready_ms.unwrap_or(record.started_ms);
        let mut out = Vec::new();
        for (id, task) in &record.tasks {
            let planned = plan.zip(index.get(id.as_str()).copied());
            let first_ready = match planned {
                Some((plan, i)) => self.first_ready(plan, i, up).0,
                None => self.expanded_ms.get(id).map_or(up, |&at| at.max(up)),
            };
            for a in &task.attempts {
                let ready = match a.attempt {
                    1 => first_ready,
                    n => self.retry_due_ms(planned, id, n).unwrap_or(a.started_ms),
                };
                out.push(TimedAttempt {
                    task: id.clone(),
                    attempt: a.attempt,
                    ready_ms: ready.min(a.started_ms),
                    started_ms: a.started_ms,
                    ended_ms: a.ended_ms,
                    outcome: a.outcome,
                });
            }
        }
        out
    }

    /// The attempts of a live run that are ready and not started yet (its queue): task,
    /// attempt and since when, in the plan's order. Notebooks of the plan only (an iteration
    /// of a for-each read at run time shows once it starts).
    pub fn waiting(&self, plan: &Plan, record: &RunRecord) -> Vec<(String, u32, i64)> {
        let Some(up) = self.session_ready_ms else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, t) in plan.tasks.iter().enumerate() {
            if t.kind != TaskKind::Notebook || self.settled_ms.contains_key(&t.id) {
                continue;
            }
            let last = record.tasks.get(&t.id).and_then(|r| r.attempts.last());
            match last {
                None => {
                    if let (ready, true) = self.first_ready(plan, i, up) {
                        out.push((t.id.clone(), 1, ready));
                    }
                }
                Some(a) if a.ended_ms.is_some() => {
                    let next = a.attempt + 1;
                    if let Some(due) = self.retry_due_ms(Some((plan, i)), &t.id, next) {
                        out.push((t.id.clone(), next, due));
                    }
                }
                Some(_) => {}
            }
        }
        out
    }

    /// When task `i`'s first attempt became ready (the session up at `up`, its dependencies
    /// settled), and whether every dependency has settled.
    fn first_ready(&self, plan: &Plan, i: usize, up: i64) -> (i64, bool) {
        plan.deps[i].iter().fold((up, true), |(at, all), (d, _)| {
            match self.settled_ms.get(&plan.tasks[*d].id) {
                Some(&settled) => (at.max(settled), all),
                None => (at, false),
            }
        })
    }

    /// When attempt `n` of task `id` (task `planned.1` of the plan) is due: its retry's
    /// decision plus the task's `retry_interval_secs`; `None` when no retry was decided.
    fn retry_due_ms(&self, planned: Option<(&Plan, usize)>, id: &str, n: u32) -> Option<i64> {
        let decided = *self.retry_decided_ms.get(&(id.to_string(), n))?;
        let interval_ms = planned.map_or(0, |(plan, i)| {
            let secs = plan.tasks[i].settings.retry_interval_secs;
            i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
        });
        Some(decided.saturating_add(interval_ms))
    }
}

/// One attempt of a real run, in milliseconds since 1970.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedAttempt {
    pub task: String,
    pub attempt: u32,
    /// From here to `started_ms` it was queued: ready, waiting for a slot.
    pub ready_ms: i64,
    pub started_ms: i64,
    /// `None` while it runs.
    pub ended_ms: Option<i64>,
    pub outcome: Option<AttemptOutcome>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::load_text;
    use crate::source::MemorySources;

    const FILE: &str = r#"
name = "t"
[pool]
executors = 1
executor_cores = 1
[[notebook]]
id = "a"
path = "a.py"
[[notebook]]
id = "b"
path = "b.py"
depends_on = ["a"]
retry = 1
retry_interval_secs = 2
[[notebook]]
id = "c"
path = "c.py"
depends_on = ["a"]
"#;

    fn events(json: serde_json::Value) -> Vec<StoredEvent> {
        serde_json::from_value(json).expect("test events")
    }

    /// One slot: `a` waits for the session, `b` and `c` for `a`; `c` then waits for `b`'s
    /// slot, and `b`'s retry for its interval and then for `c`'s slot.
    #[test]
    fn attempts_are_ready_when_the_session_is_up_their_dependencies_final_or_their_retry_due() {
        let sources = ["a.py", "b.py", "c.py"]
            .into_iter()
            .fold(MemorySources::default(), |s, f| s.with(f, ""));
        let plan = load_text("t.toml", FILE, &sources).plan.expect("plan");
        let log = events(serde_json::json!([
            {"seq":0,"at_ms":1000,"event":{"type":"run_started","pipeline":"t","file":"t.toml","params":{},"resumed_from":null,"plan":{}}},
            {"seq":1,"at_ms":4000,"event":{"type":"session_changed","session":"0","state":"idle","capacity":1}},
            {"seq":2,"at_ms":4100,"event":{"type":"task_started","task":"a","attempt":1}},
            {"seq":3,"at_ms":6000,"event":{"type":"task_finished","task":"a","attempt":1,"outcome":"succeeded"}},
            {"seq":4,"at_ms":6000,"event":{"type":"task_settled","task":"a","state":"succeeded","reason":{"kind":"attempt"}}},
            {"seq":5,"at_ms":6100,"event":{"type":"task_started","task":"b","attempt":1}},
            {"seq":6,"at_ms":7000,"event":{"type":"task_finished","task":"b","attempt":1,"outcome":"failed"}},
            {"seq":7,"at_ms":7000,"event":{"type":"retry_scheduled","task":"b","attempt":2,"at_secs":8.0}},
            {"seq":8,"at_ms":7100,"event":{"type":"task_started","task":"c","attempt":1}},
            {"seq":9,"at_ms":12000,"event":{"type":"task_finished","task":"c","attempt":1,"outcome":"succeeded"}},
            {"seq":10,"at_ms":12000,"event":{"type":"task_settled","task":"c","state":"succeeded","reason":{"kind":"attempt"}}},
            {"seq":11,"at_ms":12100,"event":{"type":"task_started","task":"b","attempt":2}},
            {"seq":12,"at_ms":13000,"event":{"type":"task_finished","task":"b","attempt":2,"outcome":"succeeded"}},
            {"seq":13,"at_ms":13000,"event":{"type":"task_settled","task":"b","state":"succeeded","reason":{"kind":"attempt"}}}
        ]));
        let record = RunRecord::fold(1, &log).expect("folds");
        let mut ready = ReadyTimes::default();
        for e in &log {
            ready.apply(e);
        }
        assert_eq!(ready.session_ready_ms, Some(4000));
        let timed = ready.attempts(Some(&plan), &record);
        let shown: Vec<(&str, u32, i64, i64, Option<i64>)> = timed
            .iter()
            .map(|a| {
                (
                    a.task.as_str(),
                    a.attempt,
                    a.ready_ms,
                    a.started_ms,
                    a.ended_ms,
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("a", 1, 4000, 4100, Some(6000)),
                ("b", 1, 6000, 6100, Some(7000)),
                // Its interval was over at 9 s; `c` held the only slot until 12 s.
                ("b", 2, 9000, 12100, Some(13000)),
                ("c", 1, 6000, 7100, Some(12000)),
            ]
        );
        assert_eq!(ready.waiting(&plan, &record), []);
        // Without the plan, nothing is known of dependencies: ready when the session is up.
        let blind = ready.attempts(None, &record);
        assert_eq!(blind[3].ready_ms, 4000);

        // Live, after `b` failed: its retry is due at 9 s, and `c` is ready since `a` settled.
        let live = &log[..8];
        let record = RunRecord::fold(1, live).expect("folds");
        let mut ready = ReadyTimes::default();
        for e in live {
            ready.apply(e);
        }
        assert_eq!(
            ready.waiting(&plan, &record),
            [("b".to_string(), 2, 9000), ("c".to_string(), 1, 6000)]
        );
        // Before the session is up nothing is ready.
        assert_eq!(ReadyTimes::default().waiting(&plan, &record), []);
    }
}
