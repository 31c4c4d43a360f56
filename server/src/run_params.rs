//! A run's parameters: the overrides given for a run (`key` or `notebook.key`), the values each
//! notebook gets from them, and what a resumed run runs with. One place for `spool run`,
//! `spool run --resume` and the API's start and resume.

use crate::history::{RunRecord, RunStatus};
use spool_core::dag::{Plan, TaskId, TaskKind};
use spool_core::model::{param_name_problem, Outcome};
use spool_core::sched::{Admission, Machine, Policy};
use std::collections::{BTreeMap, HashMap};

/// Overrides as given: `key` (every notebook declaring that parameter) or `notebook.key`.
pub type Given = BTreeMap<String, serde_json::Value>;

/// Overrides checked against a plan.
#[derive(Debug, Default)]
pub struct Overrides(Given);

impl Overrides {
    /// `key` applies to every notebook that declares `key` in its params; `notebook.key` to
    /// that notebook (split at the last dot: parameter names have none, ids may).
    pub fn parse(plan: &Plan, given: &Given) -> Result<Self, String> {
        for key in given.keys() {
            match key.rsplit_once('.') {
                Some((task, name)) => {
                    plan.index_of(task)
                        .filter(|&t| plan.tasks[t].kind == TaskKind::Notebook)
                        .ok_or_else(|| format!("parameter `{key}`: no active notebook `{task}`"))?;
                    if let Some(why) = param_name_problem(name) {
                        return Err(format!("parameter `{key}`: {why}"));
                    }
                }
                None => {
                    if !plan.tasks.iter().any(|t| t.params.contains_key(key)) {
                        return Err(format!(
                            "parameter `{key}`: no notebook declares it (use `notebook.{key}` to give it to one)"
                        ));
                    }
                }
            }
        }
        Ok(Overrides(given.clone()))
    }

    /// The values notebook `t` runs with.
    pub fn params_for(&self, plan: &Plan, t: TaskId) -> serde_json::Map<String, serde_json::Value> {
        let task = &plan.tasks[t];
        effective(&task.id, &task.params, &self.0)
    }
}

/// A notebook's declared values with the overrides that reach it on top (in key order, so
/// `notebook.key` wins over `key`).
fn effective(
    id: &str,
    declared: &BTreeMap<String, serde_json::Value>,
    given: &Given,
) -> serde_json::Map<String, serde_json::Value> {
    let mut params: serde_json::Map<_, _> = declared
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, value) in given {
        let name = match key.rsplit_once('.') {
            Some((task, name)) if task == id => name,
            None if declared.contains_key(key) => key,
            _ => continue,
        };
        params.insert(name.to_string(), value.clone());
    }
    params
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
    let previous: HashMap<String, Outcome> = old
        .tasks
        .iter()
        .filter(|(_, t)| t.succeeded())
        .map(|(id, _)| (id.clone(), Outcome::Succeeded))
        .collect();
    // The machine's own rule says what is kept.
    let machine = Machine::resume(
        plan,
        Policy::Fifo,
        Admission::of_pool(&plan.pool),
        &previous,
    );
    let old_tasks = task_shapes(old_plan);
    let mut changes = Vec::new();
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
        let was = effective(&task.id, &before.params, &old.params);
        let now = effective(&task.id, &task.params, &params);
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
