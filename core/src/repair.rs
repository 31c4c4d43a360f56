//! What resuming a finished run keeps, rebuilds and runs again, a repair (tasks named to run
//! again with everything downstream) included: one rule for `spool run --resume [--rerun]`,
//! the API's resume, `spool plan --resume` and the browser's repair selection, which shows it
//! before the user starts the run.

use crate::dag::{Plan, TaskKind};
use crate::model::Outcome;
use crate::runlog::RunRecord;
use crate::sched::{Admission, Machine, Policy};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// The outcomes a resume of `old` starts from: its succeeded tasks, without the tasks named
/// in `rerun` and everything downstream of them (see [`Machine::forget_reruns`]; an unknown
/// name is an error naming it).
pub fn previous_outcomes(
    old: &RunRecord,
    plan: &Plan,
    rerun: &[String],
) -> Result<HashMap<String, Outcome>, String> {
    let mut previous: HashMap<String, Outcome> = old
        .tasks
        .iter()
        .filter(|(_, t)| t.succeeded())
        .map(|(id, _)| (id.clone(), Outcome::Succeeded))
        .collect();
    Machine::forget_reruns(plan, &mut previous, rerun)?;
    Ok(previous)
}

/// What the succeeded tasks of `old` left in their Spark session, by task id.
pub fn session_state(old: &RunRecord) -> HashMap<String, Vec<String>> {
    old.tasks
        .iter()
        .filter(|(_, t)| t.succeeded() && !t.session_state.is_empty())
        .map(|(id, t)| (id.clone(), t.session_state.clone()))
        .collect()
}

/// The machine of a resumed run, which says what it keeps, rebuilds and runs again. A run's
/// own session is new, so what kept tasks left in the old one is gone; a long-lived
/// `named_session` keeps it.
pub fn resumed_machine(
    plan: &Plan,
    policy: Policy,
    previous: &HashMap<String, Outcome>,
    session_state: &HashMap<String, Vec<String>>,
    named_session: bool,
) -> Machine {
    let creators: HashSet<String> = if named_session {
        HashSet::new()
    } else {
        session_state.keys().cloned().collect()
    };
    Machine::resume_in_new_session(
        plan,
        policy,
        Admission::of_pool(&plan.pool),
        previous,
        &creators,
    )
}

/// What a resume keeps, rebuilds and runs again, task ids in the plan's order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outline {
    /// Succeeded in that run, not run again.
    pub keep: Vec<String>,
    /// Succeeded, but run again first to rebuild what they left in the Spark session
    /// (`view:NAME`, …) for a notebook that runs after them.
    pub rebuild: Vec<(String, Vec<String>)>,
    /// Run again: did not succeed, depend on something that runs again, or named to re-run.
    pub run_again: Vec<String>,
}

impl Outline {
    /// The outline of a resume of `plan` from `previous` (see [`previous_outcomes`]).
    pub fn of(
        plan: &Plan,
        previous: &HashMap<String, Outcome>,
        session_state: &HashMap<String, Vec<String>>,
        named_session: bool,
    ) -> Outline {
        let machine = resumed_machine(plan, Policy::Fifo, previous, session_state, named_session);
        let mut outline = Outline::default();
        for (t, task) in plan.tasks.iter().enumerate() {
            let id = task.id.clone();
            if machine.is_carried_over(t) {
                outline.keep.push(id);
            } else if machine.is_rebuilt(t) {
                let names = session_state.get(&id).cloned().unwrap_or_default();
                outline.rebuild.push((id, names));
            } else if task.kind == TaskKind::Notebook || task.expands() {
                outline.run_again.push(id);
            }
        }
        outline
    }

    /// Each task rebuilt, with what it left in the session: `load (view:orders, …)`.
    pub fn rebuild_described(&self) -> Vec<String> {
        self.rebuild
            .iter()
            .map(|(id, state)| format!("{id} ({})", state.join(", ")))
            .collect()
    }

    /// The outline of resuming `old` with `plan`, re-running `rerun` and everything
    /// downstream: what the browser shows before a repair.
    pub fn of_run(
        plan: &Plan,
        old: &RunRecord,
        rerun: &[String],
        named_session: bool,
    ) -> Result<Outline, String> {
        let previous = previous_outcomes(old, plan, rerun)?;
        Ok(Outline::of(
            plan,
            &previous,
            &session_state(old),
            named_session,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::load_text;
    use crate::runlog::{RunStatus, TaskRecord};
    use crate::sched::Final;
    use crate::source::MemorySources;
    use std::collections::BTreeMap;

    /// `a -> b -> c`, `a -> d`, and `e` on its own; `s` a sub-pipeline `s/x -> s/y` that `f`
    /// waits for.
    const PIPELINE: &str = "name = \"p\"\n\
        [[notebook]]\nid = \"a\"\npath = \"nb.py\"\n\
        [[notebook]]\nid = \"b\"\npath = \"nb.py\"\ndepends_on = [\"a\"]\n\
        [[notebook]]\nid = \"c\"\npath = \"nb.py\"\ndepends_on = [\"b\"]\n\
        [[notebook]]\nid = \"d\"\npath = \"nb.py\"\ndepends_on = [\"a\"]\n\
        [[notebook]]\nid = \"e\"\npath = \"nb.py\"\n\
        [[pipeline]]\nid = \"s\"\npath = \"sub.toml\"\n\
        [[notebook]]\nid = \"f\"\npath = \"nb.py\"\ndepends_on = [\"s\"]\n";

    fn plan() -> Plan {
        let sources = MemorySources::default().with("nb.py", "").with(
            "sub.toml",
            "name = \"sub\"\n[[notebook]]\nid = \"x\"\npath = \"nb.py\"\n\
             [[notebook]]\nid = \"y\"\npath = \"nb.py\"\ndepends_on = [\"x\"]\n",
        );
        let loaded = load_text("main.toml", PIPELINE, &sources);
        loaded.plan.expect("the fixture loads")
    }

    /// A finished run of `plan` in which each task ended as `state_of` says, and `views`
    /// left temp views in its session.
    fn run(plan: &Plan, state_of: impl Fn(&str) -> Final, views: &[&str]) -> RunRecord {
        let tasks = plan
            .tasks
            .iter()
            .map(|t| {
                let record = TaskRecord {
                    state: Some(state_of(&t.id)),
                    session_state: if views.contains(&t.id.as_str()) {
                        vec![format!("view:{}", t.id)]
                    } else {
                        Vec::new()
                    },
                    ..TaskRecord::default()
                };
                (t.id.clone(), record)
            })
            .collect();
        RunRecord {
            id: 1,
            pipeline: "p".into(),
            file: "main.toml".into(),
            status: RunStatus::Succeeded,
            started_ms: 0,
            ended_ms: Some(1),
            resumed_from: None,
            params: BTreeMap::new(),
            tasks,
            run_info: None,
            pipeline_params: Default::default(),
            leaked_sessions: Vec::new(),
            trigger: None,
            started_by: None,
        }
    }

    fn names(rerun: &[&str]) -> Vec<String> {
        rerun.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_repair_runs_the_selected_tasks_and_everything_downstream_and_keeps_the_rest() {
        let p = plan();
        let all_ok = run(&p, |_| Final::Succeeded, &[]);
        let o = Outline::of_run(&p, &all_ok, &names(&["b"]), false).expect("b is a task");
        assert_eq!(o.run_again, ["b", "c"]);
        assert_eq!(o.keep, ["a", "d", "e", "s/x", "s/y", "s", "f"]);
        assert!(o.rebuild.is_empty());

        // Two selected, one of them upstream of the other: each task once, in plan order.
        let o = Outline::of_run(&p, &all_ok, &names(&["c", "a"]), false).expect("tasks");
        assert_eq!(o.run_again, ["a", "b", "c", "d"]);

        // A sub-pipeline re-runs every notebook inside it and what waits for it.
        let o = Outline::of_run(&p, &all_ok, &names(&["s"]), false).expect("a sub-pipeline");
        assert_eq!(o.run_again, ["s/x", "s/y", "f"]);

        // Nothing selected: a plain resume of a run that succeeded keeps everything.
        let o = Outline::of_run(&p, &all_ok, &[], false).expect("no names");
        assert!(o.run_again.is_empty(), "{o:?}");

        let err = Outline::of_run(&p, &all_ok, &names(&["zz"]), false).expect_err("no zz");
        assert!(err.contains("`zz`"), "{err}");
    }

    #[test]
    fn a_repair_also_runs_again_what_did_not_succeed_and_rebuilds_session_state_it_reads() {
        let p = plan();
        let failed_e = run(
            &p,
            |id| {
                if id == "e" {
                    Final::Failed
                } else {
                    Final::Succeeded
                }
            },
            &["a"],
        );
        // `a` left a view that `d`, which runs again, may read: rebuilt first in a new session.
        let o = Outline::of_run(&p, &failed_e, &names(&["d"]), false).expect("d is a task");
        assert_eq!(o.run_again, ["d", "e"]);
        assert_eq!(o.rebuild, [("a".to_string(), vec!["view:a".to_string()])]);
        assert_eq!(o.rebuild_described(), ["a (view:a)"]);
        assert_eq!(o.keep, ["b", "c", "s/x", "s/y", "s", "f"]);
        // A long-lived session still holds it.
        let o = Outline::of_run(&p, &failed_e, &names(&["d"]), true).expect("d is a task");
        assert!(o.rebuild.is_empty());
        assert!(o.keep.contains(&"a".to_string()));
    }
}
