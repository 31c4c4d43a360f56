//! The DAG JSON of `notebookutils.notebook.runMultiple` (Fabric / Synapse), both ways.

use super::draft::{unless_default, Draft, DraftStep, Ids};
use super::graph::Graph;
use super::json::{self, Obj};
use super::report::{Place, Report};
use super::{Converted, Ctx, Target};
use crate::dag::{Plan, TaskKind};
use crate::diag::Suggestions;
use crate::model::{Condition, Outcome, RunSettings, StepKind};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// runMultiple's defaults where Spool's differ.
const DEFAULT_CONCURRENCY: u32 = 50;
const DEFAULT_RETRY_INTERVAL_SECS: u64 = 0;
const DEFAULT_DAG_TIMEOUT_SECS: u64 = 12 * 3600;

/// A runMultiple DAG (the wire format). Optional fields are `None` when the input leaves them
/// out; an export fills every one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMultipleDag {
    pub activities: Vec<RunMultipleActivity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_in_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMultipleActivity {
    pub name: String,
    /// The notebook's name in the workspace.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_per_cell_in_seconds: Option<u64>,
    pub args: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_interval_in_seconds: Option<u64>,
    pub dependencies: Vec<String>,
    /// Another workspace the notebook lives in (import only: Spool runs local files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

const DAG_KEYS: &[&str] = &["activities", "timeoutInSeconds", "concurrency"];
const ACTIVITY_KEYS: &[&str] = &[
    "name",
    "path",
    "timeoutPerCellInSeconds",
    "args",
    "retry",
    "retryIntervalInSeconds",
    "dependencies",
    "workspace",
];

impl RunMultipleDag {
    /// Reads a DAG; problems go to `r`, naming the activity and the field.
    pub fn parse(label: &str, text: &str, r: &mut Report) -> Option<RunMultipleDag> {
        let place = Place::file(label);
        let v = json::parse(text, &place, r)?;
        let root = Obj::of(&v, place.clone(), "a runMultiple DAG", r)?;
        root.ignored_keys(DAG_KEYS, r);
        let Some(items) = root.array("activities", r) else {
            if root.get("activities").is_none() {
                r.error(&root.at("activities"), "is missing");
            }
            return None;
        };
        let mut activities = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(unnamed) =
                Obj::of(item, root.at(&format!("activities[{i}]")), "an activity", r)
            else {
                continue;
            };
            let Some(name) = unnamed.required_string("name", r) else {
                continue;
            };
            let a = Obj {
                map: unnamed.map,
                place: place.item(name),
            };
            a.ignored_keys(ACTIVITY_KEYS, r);
            let path = a.required_string("path", r);
            let args = a
                .object("args", r)
                .map(|o| o.map.clone())
                .unwrap_or_default();
            let mut dependencies = Vec::new();
            for (j, d) in a
                .array("dependencies", r)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                match d.as_str() {
                    Some(s) => dependencies.push(s.to_string()),
                    None => r.error(
                        &a.at(&format!("dependencies[{j}]")),
                        format!("must be an activity name, found {d}"),
                    ),
                }
            }
            activities.push(RunMultipleActivity {
                name: name.to_string(),
                path: path.unwrap_or_default().to_string(),
                timeout_per_cell_in_seconds: a.uint("timeoutPerCellInSeconds", 1, r),
                args,
                retry: a.uint32("retry", 0, r),
                retry_interval_in_seconds: a.uint("retryIntervalInSeconds", 0, r),
                dependencies,
                workspace: a.string("workspace", r).map(str::to_string),
            });
        }
        Some(RunMultipleDag {
            activities,
            timeout_in_seconds: root.uint("timeoutInSeconds", 1, r),
            concurrency: root.uint32("concurrency", 1, r),
        })
    }
}

/// Imports a runMultiple DAG as one pipeline file named after `target.main`.
pub fn import_runmultiple(label: &str, text: &str, target: &Target) -> Converted {
    let mut ctx = Ctx::new(target.existing);
    let Some(dag) = RunMultipleDag::parse(label, text, &mut ctx.report) else {
        return ctx.finish(Vec::new());
    };
    let place = Place::file(label);
    let mut draft = Draft {
        file: target.main.to_string(),
        header: vec![format!(
            "Imported from the runMultiple DAG {label} by `spool import runmultiple`."
        )],
        name: super::stem(target.main).to_string(),
        description: None,
        max_concurrency: Some(dag.concurrency.unwrap_or(DEFAULT_CONCURRENCY)),
        // runMultiple's default limit is written too: Spool's default is none.
        run_timeout_secs: Some(dag.timeout_in_seconds.unwrap_or(DEFAULT_DAG_TIMEOUT_SECS)),
        default_retry_interval_secs: Some(DEFAULT_RETRY_INTERVAL_SECS),
        steps: Vec::new(),
    };
    let acts = &dag.activities;
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, a) in acts.iter().enumerate() {
        // The first activity of a name keeps it; later ones are errors.
        if *index.entry(&a.name).or_insert(i) != i {
            ctx.report.error(
                &place.item(&a.name).field("name"),
                "is used by two activities",
            );
        }
    }
    let mut g = Graph::new(acts.len());
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); acts.len()];
    let mut suggestions = Suggestions::default();
    for (i, a) in acts.iter().enumerate() {
        for d in &a.dependencies {
            match index.get(d.as_str()) {
                Some(&j) if !deps[i].contains(&j) => {
                    g.add(j, i, Condition::SUCCEEDED);
                    deps[i].push(j);
                }
                Some(_) => {}
                None => {
                    let hint = suggestions.hint(d, index.keys().copied());
                    ctx.report.error(
                        &place.item(&a.name).field("dependencies"),
                        format!("`{d}` is not an activity of this DAG{hint}"),
                    );
                }
            }
        }
    }
    if let Some(cycle) = g.cycle() {
        let names: Vec<&str> = cycle.iter().map(|&i| acts[i].name.as_str()).collect();
        ctx.report.error(
            &place.item(names[0]).field("dependencies"),
            format!(
                "dependency cycle: {} (each depends on the next)",
                names.join(" -> ")
            ),
        );
        return ctx.finish(Vec::new());
    }
    let mut ids = Ids::default();
    let id_of: Vec<String> = acts.iter().map(|a| ids.take(&a.name)).collect();
    let defaults = RunSettings::default();
    let mut per_cell_noted = false;
    for (i, a) in acts.iter().enumerate() {
        let at = place.item(&a.name);
        ctx.renamed(&at, &id_of[i]);
        if a.path.is_empty() {
            continue; // reported as missing
        }
        let path = match ctx.notebook_file(&a.path) {
            Ok(p) => p,
            Err(why) => {
                ctx.report.error(&at.field("path"), why);
                continue;
            }
        };
        ctx.notebook_needed(&at, &path, &format!("runMultiple notebook `{}`", a.path));
        if let Some(ws) = &a.workspace {
            ctx.report.warning(
                &at.field("workspace"),
                format!("the notebook lives in workspace `{ws}`; Spool runs `{path}` from the pipeline's folder"),
            );
        }
        let mut step = DraftStep::new(StepKind::Notebook, id_of[i].clone(), path);
        step.depends_on = deps[i]
            .iter()
            .map(|&j| (id_of[j].clone(), Condition::SUCCEEDED))
            .collect();
        step.retry = a.retry.and_then(|r| unless_default(r, defaults.retry));
        step.retry_interval_secs = a
            .retry_interval_in_seconds
            .and_then(|s| unless_default(s, DEFAULT_RETRY_INTERVAL_SECS));
        if let Some(t) = a.timeout_per_cell_in_seconds {
            step.timeout_secs = unless_default(t, defaults.timeout_secs);
            if !per_cell_noted {
                per_cell_noted = true;
                ctx.report.note(
                    &at.field("timeoutPerCellInSeconds"),
                    "limits each cell; it becomes `timeout_secs`, which limits the whole \
                     notebook (here and for every other activity that sets it)",
                );
            }
        }
        step.add_json_params(&a.args, &mut ctx.report, |key| {
            at.field(&format!("args.{key}"))
        });
        if id_of[i] != a.name {
            step.comments
                .push(format!("runMultiple activity \"{}\"", a.name));
        }
        draft.steps.push(step);
    }
    ctx.finish(vec![draft])
}

/// A runMultiple DAG made from a pipeline, its JSON text and what it could not say.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub dag: RunMultipleDag,
    pub json: String,
    pub report: Report,
}

/// The runMultiple name of a notebook file: without `notebooks/` and the extension.
fn workspace_name(path: &str) -> &str {
    let p = path.strip_prefix("notebooks/").unwrap_or(path);
    [".ipynb", ".py", ".sql"]
        .iter()
        .find_map(|e| {
            let cut = p.len().checked_sub(e.len())?;
            p.get(cut..)
                .filter(|tail| tail.eq_ignore_ascii_case(e))
                .map(|_| &p[..cut])
        })
        .unwrap_or(p)
}

/// Writes `plan` (loaded from `label`) as a runMultiple DAG. Sub-pipelines are flattened
/// (their notebooks keep namespaced names such as `dims/load`); runMultiple only runs a
/// notebook after its dependencies succeeded, so a notebook that waits for another outcome is
/// left out with everything after it, and reported.
/// `timeoutInSeconds` is the pipeline's own `timeout_secs`, or `timeout_in_seconds` when it has none.
pub fn export_runmultiple(label: &str, plan: &Plan, timeout_in_seconds: u64) -> Exported {
    let mut report = Report::default();
    let place = Place::file(label);
    let n = plan.tasks.len();
    // The notebooks a dependency on each task stands for, and each notebook's dependencies
    // on notebooks; tasks are in topological order.
    let mut stands_for: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut flat: Vec<BTreeMap<usize, Condition>> = vec![BTreeMap::new(); n];
    for t in 0..n {
        match plan.tasks[t].kind {
            TaskKind::Notebook => {
                stands_for[t] = vec![t];
                for &(d, on) in &plan.deps[t] {
                    for &x in &stands_for[d] {
                        let c = flat[t].get(&x).map_or(on, |old| old.and(on));
                        flat[t].insert(x, c);
                    }
                }
            }
            TaskKind::PipelineEnd | TaskKind::ForEach => {
                let concurrency = plan.tasks[t].for_each.as_ref().and_then(|f| f.concurrency);
                if concurrency.is_some() {
                    report.warning(
                        &place.item(&plan.tasks[t].id).field("for_each_concurrency"),
                        "runMultiple has no limit per notebook: its iterations run as the DAG's \
                         concurrency allows",
                    );
                }
                if plan.tasks[t].expands() {
                    report.warning(
                        &place.item(&plan.tasks[t].id).field("for_each"),
                        "left out: its list is read when the run reaches it, which runMultiple \
                         cannot do; its dependents wait for its dependencies instead",
                    );
                }
                let mut members: Vec<usize> = plan.deps[t]
                    .iter()
                    .flat_map(|&(d, _)| stands_for[d].iter().copied())
                    .collect();
                members.sort_unstable();
                members.dedup();
                // A member another member depends on is implied by it.
                let implied: Vec<usize> = members
                    .iter()
                    .copied()
                    .filter(|&x| members.iter().any(|&y| flat[y].contains_key(&x)))
                    .collect();
                members.retain(|x| !implied.contains(x));
                stands_for[t] = members;
            }
        }
    }
    let mut left_out = vec![false; n];
    for t in 0..n {
        if plan.tasks[t].kind != TaskKind::Notebook {
            continue;
        }
        let id = &plan.tasks[t].id;
        if let Some(c) = plan.tasks[t].conditions.first() {
            // Running it unconditionally could do what the condition is there to prevent.
            report.warning(
                &place.item(id).field("depends_on"),
                format!(
                    "left out: it runs only if `{}` (on `{}`), and runMultiple has no \
                     conditions on values",
                    c.condition.text, c.dependency
                ),
            );
            left_out[t] = true;
            continue;
        }
        for (&x, &on) in &flat[t] {
            let up = &plan.tasks[x].id;
            if left_out[x] {
                report.warning(
                    &place.item(id),
                    format!("left out: it depends on `{up}`, which is left out"),
                );
            } else if !on.accepts(Outcome::Succeeded) {
                report.warning(
                    &place.item(id).field("depends_on"),
                    format!(
                        "left out: it runs when `{up}` is {}, and runMultiple only runs a \
                         notebook after its dependencies succeeded",
                        on.name()
                    ),
                );
            } else {
                if on != Condition::SUCCEEDED {
                    report.warning(
                        &place.item(id).field("depends_on"),
                        format!(
                            "runs when `{up}` is {}; in runMultiple it runs only after `{up}` succeeded",
                            on.name()
                        ),
                    );
                }
                continue;
            }
            left_out[t] = true;
            break;
        }
    }
    for step in &plan.inactive {
        report.note(&place.item(&step.id), "inactive: left out");
    }
    let mut activities = Vec::new();
    for t in (0..n).filter(|&t| plan.tasks[t].kind == TaskKind::Notebook && !left_out[t]) {
        let task = &plan.tasks[t];
        if task.settings.isolated {
            report.warning(
                &place.item(&task.id).field("isolated"),
                "runMultiple has no isolated notebooks; it runs alongside the others",
            );
        }
        let mut args = Map::new();
        for (k, v) in &task.params {
            let at = place.item(&task.id).field(&format!("params.{k}"));
            let secrets = crate::secret::references(v);
            if !secrets.is_empty() {
                let names: Vec<String> = secrets.iter().map(|s| format!("`{s}`")).collect();
                report.warning(
                    &at,
                    format!(
                        "left out: it holds a secret ({}), which runMultiple cannot resolve; \
                         read it in the notebook (mssparkutils.credentials)",
                        names.join(", ")
                    ),
                );
                continue;
            }
            let value = crate::params::plain(v).unwrap_or_else(|| {
                report.warning(
                    &at,
                    "refers to parameters, the run or tasks (`{{ … }}`), which runMultiple \
                     does not resolve; written as text",
                );
                v.clone()
            });
            args.insert(k.clone(), value);
        }
        // An iteration of a written-out for-each is an activity of its own with its item.
        if let Some(it) = &task.iteration {
            args.insert("item".into(), it.item.clone());
            args.insert("item_index".into(), it.index.into());
        }
        activities.push(RunMultipleActivity {
            name: task.id.clone(),
            path: workspace_name(&task.path).to_string(),
            timeout_per_cell_in_seconds: Some(task.settings.timeout_secs),
            args,
            retry: Some(task.settings.retry),
            retry_interval_in_seconds: Some(task.settings.retry_interval_secs),
            dependencies: flat[t].keys().map(|&x| plan.tasks[x].id.clone()).collect(),
            workspace: None,
        });
    }
    if !activities.is_empty() {
        report.note(
            &place,
            "timeoutPerCellInSeconds is each notebook's timeout_secs: a cell never runs \
             longer than Spool would let the whole notebook run",
        );
    }
    let dag = RunMultipleDag {
        activities,
        timeout_in_seconds: Some(plan.timeout_secs.unwrap_or(timeout_in_seconds)),
        concurrency: Some(plan.pool.max_concurrency.unwrap_or(plan.pool.capacity())),
    };
    let json = serde_json::to_string_pretty(&dag).unwrap_or_default() + "\n";
    Exported { dag, json, report }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySources;
    use proptest::prelude::*;

    fn arg() -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ];
        scalar.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_][a-z0-9_ ]{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// DAGs with every field given (as an export writes them), dependencies on earlier
    /// activities only.
    fn dag() -> impl Strategy<Value = RunMultipleDag> {
        let activity = (
            "[a-z]{1,3}(/[a-z][a-z0-9_]{0,5}){0,2}",
            // Names a parameter can have (others are left out with a warning).
            prop::collection::btree_map(
                "[a-zA-Z_][a-zA-Z0-9_]{0,6}".prop_filter("a parameter name", |k| {
                    crate::model::param_name_problem(k).is_none()
                }),
                arg(),
                0..4,
            ),
            1u64..200_000,
            0u32..6,
            0u64..3600,
            prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        );
        (prop::collection::vec(activity, 1..10), 1u32..64).prop_map(|(acts, concurrency)| {
            let activities = acts
                .into_iter()
                .enumerate()
                .map(|(i, (path, args, timeout, retry, interval, deps))| {
                    let mut dependencies: Vec<String> = if i == 0 {
                        Vec::new()
                    } else {
                        deps.iter().map(|d| format!("nb{}", d.index(i))).collect()
                    };
                    dependencies.sort();
                    dependencies.dedup();
                    RunMultipleActivity {
                        name: format!("nb{i}"),
                        path,
                        timeout_per_cell_in_seconds: Some(timeout),
                        args: args.into_iter().collect(),
                        retry: Some(retry),
                        retry_interval_in_seconds: Some(interval),
                        dependencies,
                        workspace: None,
                    }
                })
                .collect();
            RunMultipleDag {
                activities,
                timeout_in_seconds: Some(43_200),
                concurrency: Some(concurrency),
            }
        })
    }

    fn sorted(mut dag: RunMultipleDag) -> RunMultipleDag {
        dag.activities.sort_by(|a, b| a.name.cmp(&b.name));
        dag
    }

    proptest! {
        #[test]
        fn runmultiple_to_spool_and_back_is_the_same_dag(original in dag()) {
            let text = serde_json::to_string(&original).unwrap();
            let converted = import_runmultiple(
                "dag.json",
                &text,
                &Target { main: "main.toml", existing: &MemorySources::default() },
            );
            prop_assert!(!converted.report.has_errors(), "{}", converted.report.render());
            let mut files = MemorySources::default();
            for f in &converted.files {
                files = files.with(&f.path, &f.text);
            }
            for a in &original.activities {
                files = files.with(&format!("notebooks/{}.ipynb", a.path), "");
            }
            let loaded = crate::dag::load("main.toml", &files);
            prop_assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
            let plan = loaded.plan.unwrap();
            let exported = export_runmultiple("main.toml", &plan, 43_200);
            let mut report = Report::default();
            let back = RunMultipleDag::parse("exported", &exported.json, &mut report).unwrap();
            prop_assert!(!report.has_errors());
            prop_assert_eq!(sorted(back), sorted(original));
        }
    }

    #[test]
    fn arguments_that_cannot_be_parameters_are_left_out_with_a_warning() {
        let text = r#"{"activities": [{"name": "a", "path": "a",
            "args": {"day": 1, "run-date": 2, "class": 3}}]}"#;
        let converted = import_runmultiple(
            "dag.json",
            text,
            &Target {
                main: "main.toml",
                existing: &MemorySources::default(),
            },
        );
        let report = converted.report.render();
        assert!(
            report.contains("run-date") && report.contains("left out"),
            "{report}"
        );
        assert!(
            report.contains("class") && report.contains("keyword"),
            "{report}"
        );
        let main = &converted.files.last().expect("a main file").text;
        assert!(
            main.contains("day = 1") && !main.contains("run-date"),
            "{main}"
        );
    }

    #[test]
    fn workspace_names_drop_folder_and_extension() {
        assert_eq!(workspace_name("notebooks/etl/Load.ipynb"), "etl/Load");
        assert_eq!(workspace_name("other/x.PY"), "other/x");
        assert_eq!(workspace_name("notebooks/plain"), "plain");
    }
}
