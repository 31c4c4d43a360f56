//! What a resumed run runs with: one place for `spool run --resume` and the API's resume. The
//! overrides themselves are checked and resolved by `spool_core::params`.

use crate::history::{History, RunEvent, RunRecord, RunStatus, StoredEvent};
use spool_core::dag::{Plan, TaskKind};
use spool_core::model::Outcome;
use spool_core::params::{overrides_for, Given};
use spool_core::sched::{Admission, Machine, Policy};
use std::collections::{BTreeMap, HashMap};

/// A notebook's declared values with the overrides that reach it on top.
fn effective(
    id: &str,
    declared: &BTreeMap<String, serde_json::Value>,
    given: &Given,
) -> serde_json::Map<String, serde_json::Value> {
    let mut params: serde_json::Map<_, _> = declared
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    params.extend(overrides_for(id, declared, given));
    params
}

/// The plan run `id` executed, as its log recorded it (`null` when the log does not start as a
/// run's does).
pub fn started_plan(history: &History, id: i64) -> anyhow::Result<serde_json::Value> {
    Ok(match history.events(id, None)?.into_iter().next() {
        Some(StoredEvent {
            event: RunEvent::RunStarted { plan, .. },
            ..
        }) => plan,
        _ => serde_json::Value::Null,
    })
}

/// What a resumed run runs with.
#[derive(Debug)]
pub struct Resume {
    /// The resumed run's overrides with the ones given now on top.
    pub params: Given,
    /// The tasks that succeeded in the resumed run.
    pub previous: HashMap<String, Outcome>,
}

/// Resuming `old` (which ran `old_plan`, as its log recorded it) with `plan` from the same file
/// and `given` overrides. A task the new run would keep from the old one must be what it was:
/// same notebook, same values, same dependencies; otherwise the resume is refused, naming every
/// change (keeping a result computed from something else would be wrong without a word).
/// Tasks added since run; tasks removed are forgotten.
pub fn resume(
    old: &RunRecord,
    old_plan: &serde_json::Value,
    file: &str,
    plan: &Plan,
    given: &Given,
    rerun: &[String],
) -> Result<Resume, String> {
    let id = old.id;
    if old.status == RunStatus::Running {
        return Err(format!("run {id} is still running"));
    }
    if old.file != file {
        return Err(format!(
            "run {id} ran `{}`, not `{file}`; resume it with its own pipeline",
            old.file
        ));
    }
    let mut params = old.params.clone();
    params.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
    let previous = spool_core::repair::previous_outcomes(old, plan, rerun)?;
    // The machine's own rule says what is kept.
    let machine = Machine::resume(
        plan,
        Policy::Fifo,
        Admission::of_pool(&plan.pool),
        &previous,
    );
    let old_tasks = task_shapes(old_plan);
    // `[params]` names are the pipeline's, not overrides of notebooks' own parameters.
    let notebook_overrides = |given: &Given| -> Given {
        given
            .iter()
            .filter(|(k, _)| !plan.scopes[0].params.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut changes = Vec::new();
    // A `[params]` value given anew: kept tasks may have computed with the old one.
    let keeps_any = (0..plan.tasks.len()).any(|t| machine.is_carried_over(t));
    for name in plan.scopes[0].params.keys() {
        if keeps_any && old.params.get(name) != params.get(name) {
            changes.push(format!(
                "pipeline parameter `{name}` (repair with `--rerun` to run again what uses it)"
            ));
        }
    }
    for (t, task) in plan.tasks.iter().enumerate() {
        if !machine.is_carried_over(t) || task.kind != TaskKind::Notebook {
            continue;
        }
        let Some(before) = old_tasks.get(&task.id) else {
            continue;
        };
        let mut what = Vec::new();
        if before.path != task.path {
            what.push(format!("notebook `{}` → `{}`", before.path, task.path));
        }
        let was = effective(&task.id, &before.params, &notebook_overrides(&old.params));
        let now = effective(&task.id, &task.params, &notebook_overrides(&params));
        let names: std::collections::BTreeSet<&String> = was.keys().chain(now.keys()).collect();
        for name in names {
            let (a, b) = (was.get(name), now.get(name));
            if a != b {
                let show =
                    |v: Option<&serde_json::Value>| v.map_or("unset".into(), |v| v.to_string());
                what.push(format!("parameter `{name}` {} → {}", show(a), show(b)));
            }
        }
        let deps: Vec<(String, String)> = plan.deps[t]
            .iter()
            .map(|&(d, c)| (plan.tasks[d].id.clone(), c.name().to_string()))
            .collect();
        if before.deps != deps {
            what.push("its dependencies".into());
        }
        if !what.is_empty() {
            changes.push(format!("`{}`: {}", task.id, what.join(", ")));
        }
    }
    if !changes.is_empty() {
        return Err(format!(
            "run {id} cannot be resumed: these tasks succeeded in it and would be kept, but \
             changed since ({}); start a new run, or resume with what they had",
            changes.join("; ")
        ));
    }
    Ok(Resume { params, previous })
}

/// What a recorded plan says about each task, by id.
struct TaskShape {
    path: String,
    params: BTreeMap<String, serde_json::Value>,
    /// (dependency id, condition name), in the plan's order.
    deps: Vec<(String, String)>,
}

/// The tasks of a plan as `RunStarted` records it (`Plan`'s JSON), by id; nothing for a log
/// that has no plan.
fn task_shapes(plan: &serde_json::Value) -> HashMap<String, TaskShape> {
    let tasks = plan["tasks"].as_array().map_or(&[][..], Vec::as_slice);
    let id_of = |i: &serde_json::Value| {
        i.as_u64()
            .and_then(|i| tasks.get(usize::try_from(i).ok()?))
            .and_then(|t| t["id"].as_str())
            .unwrap_or("?")
            .to_string()
    };
    tasks
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let deps = plan["deps"][i]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(|d| (id_of(&d[0]), d[1].as_str().unwrap_or("?").to_string()))
                .collect();
            let shape = TaskShape {
                path: t["path"].as_str()?.to_string(),
                params: serde_json::from_value(t["params"].clone()).unwrap_or_default(),
                deps,
            };
            Some((t["id"].as_str()?.to_string(), shape))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use spool_core::dag::load_text;
    use spool_core::runlog::{RunEvent, StoredEvent};
    use spool_core::source::MemorySources;

    const PIPELINE: &str = r#"
name = "p"
[[notebook]]
id = "a"
path = "a.py"
params = { day = "mon" }
[[notebook]]
id = "b"
path = "b.py"
depends_on = ["a"]
"#;

    fn plan(text: &str) -> Plan {
        let sources = MemorySources::default()
            .with("a.py", "")
            .with("b.py", "")
            .with("c.py", "");
        load_text("p.toml", text, &sources)
            .plan
            .expect("the fixture loads")
    }

    /// Run 4 of `p.toml` with `params`: `a` succeeded, `b` failed.
    fn old_run(params: Given) -> (RunRecord, serde_json::Value) {
        let plan_json = serde_json::to_value(plan(PIPELINE)).expect("plan JSON");
        let settled = |task: &str, state: &str| {
            serde_json::from_value::<RunEvent>(json!({"type": "task_settled", "task": task,
                "state": state, "reason": {"kind": "attempt"}}))
            .expect("event")
        };
        let events: Vec<StoredEvent> = [
            RunEvent::RunStarted {
                pipeline: "p".into(),
                file: "p.toml".into(),
                params,
                resumed_from: None,
                plan: plan_json.clone(),
                trigger: None,
                started_by: None,
            },
            settled("a", "succeeded"),
            settled("b", "failed"),
            serde_json::from_value(json!({"type": "run_finished", "status": "failed"}))
                .expect("event"),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, event)| StoredEvent {
            seq: i as i64,
            at_ms: i as i64,
            event,
        })
        .collect();
        (RunRecord::fold(4, &events).expect("a run"), plan_json)
    }

    fn given(pairs: &[(&str, serde_json::Value)]) -> Given {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn a_resume_keeps_the_old_overrides_under_the_new_ones() {
        let (old, old_plan) = old_run(given(&[("b.limit", json!(1)), ("b.mode", json!("x"))]));
        let r = resume(
            &old,
            &old_plan,
            "p.toml",
            &plan(PIPELINE),
            &given(&[("b.limit", json!(2))]),
            &[],
        )
        .expect("resumable");
        assert_eq!(
            r.params,
            given(&[("b.limit", json!(2)), ("b.mode", json!("x"))])
        );
        assert_eq!(r.previous.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn a_kept_task_that_changed_refuses_the_resume_and_says_what_changed() {
        let (old, old_plan) = old_run(Given::new());
        let changed = PIPELINE.replace("day = \"mon\"", "day = \"tue\"");
        let err = resume(
            &old,
            &old_plan,
            "p.toml",
            &plan(&changed),
            &Given::new(),
            &[],
        )
        .expect_err("`a` would be kept with other values");
        assert!(
            err.contains("`a`: parameter `day` \"mon\" → \"tue\""),
            "{err}"
        );
        let err = resume(
            &old,
            &old_plan,
            "p.toml",
            &plan(PIPELINE),
            &given(&[("day", json!("x"))]),
            &[],
        )
        .expect_err("an override that reaches a kept task");
        assert!(err.contains("`a`: parameter `day`"), "{err}");
        let moved = PIPELINE.replace("path = \"a.py\"", "path = \"c.py\"");
        let err = resume(&old, &old_plan, "p.toml", &plan(&moved), &Given::new(), &[])
            .expect_err("another notebook");
        assert!(err.contains("notebook `a.py` → `c.py`"), "{err}");
        let err = resume(
            &old,
            &old_plan,
            "q.toml",
            &plan(PIPELINE),
            &Given::new(),
            &[],
        )
        .expect_err("another file");
        assert!(err.contains("ran `p.toml`, not `q.toml`"), "{err}");
    }

    #[test]
    fn a_resume_that_changes_a_pipeline_parameter_is_refused_while_tasks_are_kept() {
        let text = format!("[params]\nday = \"mon\"\n{PIPELINE}");
        let (old, old_plan) = old_run(Given::new());
        let err = resume(
            &old,
            &old_plan,
            "p.toml",
            &plan(&text),
            &given(&[("day", json!("tue"))]),
            &[],
        )
        .expect_err("`a` was computed with the default");
        assert!(err.contains("pipeline parameter `day`"), "{err}");
        assert!(
            !err.contains("`a`: parameter"),
            "not a notebook override: {err}"
        );
        let repaired = resume(
            &old,
            &old_plan,
            "p.toml",
            &plan(&text),
            &given(&[("day", json!("tue"))]),
            &["a".to_string()],
        );
        assert!(repaired.is_ok(), "nothing is kept: {repaired:?}");
    }

    #[test]
    fn tasks_that_reran_anyway_may_change_and_new_tasks_run() {
        let (old, old_plan) = old_run(Given::new());
        let text = format!(
            "{}params = {{ limit = 5 }}\n[[notebook]]\nid = \"c\"\npath = \"c.py\"\n",
            PIPELINE
        );
        let r = resume(&old, &old_plan, "p.toml", &plan(&text), &Given::new(), &[])
            .expect("`b` failed before, `c` is new: nothing kept changed");
        assert!(r.previous.contains_key("a"));
    }
}
