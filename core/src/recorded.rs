//! A plan as a run log recorded it (`RunStarted`'s `plan`, the [`Plan`]'s JSON), read back so
//! that a past run is drawn and explained from what it ran, not from today's file; and what
//! the file changed since.
//!
//! The recorded JSON is read field by field, each with its default when absent (logs of older
//! builds lack fields added since): what is read is what drawing a run and showing its
//! notebooks need — tasks with their kinds, settings and parameters, dependencies, inactive
//! steps, declared edges, the pool, conditions on values (`if`), for-each items and
//! iterations (references are read in the root file's scope: a recorded plan keeps no other).
//! A plan whose dependencies do not point back to earlier tasks (the order every recorded plan
//! has), or whose `if` or for-each reference does not parse, is refused rather than drawn
//! wrong.

use crate::dag::{
    DeclaredEdge, InactiveStep, LeftOut, ParamScope, Plan, Task, TaskCondition, TaskKind,
    MAX_EDGES, MAX_TASKS,
};
use crate::for_each::{ForEach, Items, Iteration, Reference, DEFAULT_EXPECTED_ITEMS, MAX_ITEMS};
use crate::model::{Condition, Pool, RunSettings, TextAt};
use crate::template::Template;
use crate::value_condition::ValueCondition;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Why a recorded plan cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the run's recorded plan cannot be read: {}", self.0)
    }
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn kind(v: &Value) -> TaskKind {
    match v.as_str() {
        Some("pipeline_end") => TaskKind::PipelineEnd,
        Some("for_each") => TaskKind::ForEach,
        _ => TaskKind::Notebook,
    }
}

fn condition(v: &Value) -> Result<Condition, Unreadable> {
    v.as_str()
        .and_then(Condition::from_name)
        .ok_or_else(|| Unreadable(format!("unknown dependency condition {v}")))
}

fn settings(v: &Value) -> RunSettings {
    let d = RunSettings::default();
    let u64_or = |key: &str, or: u64| v[key].as_u64().unwrap_or(or);
    RunSettings {
        retry: u32::try_from(u64_or("retry", d.retry.into())).unwrap_or(d.retry),
        retry_interval_secs: u64_or("retry_interval_secs", d.retry_interval_secs),
        timeout_secs: u64_or("timeout_secs", d.timeout_secs),
        slots: u32::try_from(u64_or("slots", d.slots.into())).unwrap_or(d.slots),
        estimate_secs: v["estimate_secs"].as_f64().unwrap_or(d.estimate_secs),
        isolated: v["isolated"].as_bool().unwrap_or(d.isolated),
    }
}

fn conditions(v: &Value) -> Result<Vec<TaskCondition>, Unreadable> {
    array(v)
        .iter()
        .map(|c| {
            let text = c["if"]
                .as_str()
                .ok_or_else(|| Unreadable("a condition without `if`".into()))?;
            Ok(TaskCondition {
                dependency: text_of(&c["dependency"])?,
                condition: ValueCondition::parse(text)
                    .map_err(|e| Unreadable(format!("`if = {text:?}`: {}", e.message)))?,
                scope: 0,
            })
        })
        .collect()
}

fn text_of(v: &Value) -> Result<String, Unreadable> {
    text(v).ok_or_else(|| Unreadable(format!("{v} where a text was recorded")))
}

fn for_each(v: &Value) -> Result<Option<ForEach>, Unreadable> {
    if v.is_null() {
        return Ok(None);
    }
    let items = match (&v["items"]["list"], &v["items"]["reference"]["text"]) {
        (Value::Array(items), _) if items.len() <= MAX_ITEMS => Items::List(items.clone()),
        (_, Value::String(text)) => match Template::parse(text) {
            Ok(Some(template)) if template.whole().is_some() => Items::Reference(Reference {
                text: text.clone(),
                template,
                at: TextAt::default(),
            }),
            _ => {
                return Err(Unreadable(format!(
                    "for_each = {text:?} is not one reference"
                )))
            }
        },
        _ => return Err(Unreadable(format!("a for-each without items: {v}"))),
    };
    let u32_of = |key: &str| v[key].as_u64().and_then(|n| u32::try_from(n).ok());
    Ok(Some(ForEach {
        items,
        concurrency: u32_of("concurrency"),
        expected_items: u32_of("expected_items").unwrap_or(DEFAULT_EXPECTED_ITEMS),
    }))
}

fn iteration(v: &Value) -> Result<Option<Iteration>, Unreadable> {
    if v.is_null() {
        return Ok(None);
    }
    Ok(Some(Iteration {
        group: text_of(&v["group"])?,
        index: v["index"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| Unreadable(format!("an iteration without its index: {v}")))?,
        item: v["item"].clone(),
    }))
}

fn pool(v: &Value) -> Pool {
    let d = Pool::default();
    let u32_of = |key: &str| v[key].as_u64().and_then(|n| u32::try_from(n).ok());
    Pool {
        executors: u32_of("executors").unwrap_or(d.executors),
        executor_cores: u32_of("executor_cores").unwrap_or(d.executor_cores),
        max_concurrency: u32_of("max_concurrency"),
        recreate_session: v["recreate_session"].as_bool().unwrap_or(false),
        ..d
    }
}

fn edge(v: &Value) -> Result<DeclaredEdge, Unreadable> {
    Ok(DeclaredEdge {
        from: text(&v["from"]).ok_or_else(|| Unreadable("an edge without `from`".into()))?,
        to: text(&v["to"]).ok_or_else(|| Unreadable("an edge without `to`".into()))?,
        on: condition(&v["on"])?,
    })
}

fn edges(v: &Value) -> Result<Vec<DeclaredEdge>, Unreadable> {
    array(v).iter().map(edge).collect()
}

/// The plan recorded in a run log (`RunStarted`'s `plan`); `Ok(None)` for a log that recorded
/// none (an empty object: runs written by tests and older tools).
pub fn read(json: &Value) -> Result<Option<Plan>, Unreadable> {
    let tasks_json = array(&json["tasks"]);
    if tasks_json.is_empty() {
        return Ok(None);
    }
    if tasks_json.len() as u64 > MAX_TASKS {
        return Err(Unreadable(format!("more than {MAX_TASKS} tasks")));
    }
    let tasks = tasks_json
        .iter()
        .map(|t| {
            Ok(Task {
                id: text(&t["id"]).ok_or_else(|| Unreadable("a task without an id".into()))?,
                kind: kind(&t["kind"]),
                path: text(&t["path"]).unwrap_or_default(),
                params: serde_json::from_value(t["params"].clone()).unwrap_or_default(),
                settings: settings(&t["settings"]),
                scope: 0,
                conditions: conditions(&t["conditions"])?,
                for_each: for_each(&t["for_each"])?,
                iteration: iteration(&t["iteration"])?,
            })
        })
        .collect::<Result<Vec<_>, Unreadable>>()?;
    let mut deps = Vec::with_capacity(tasks.len());
    let mut dependents = vec![Vec::new(); tasks.len()];
    let mut edge_count = 0usize;
    for t in 0..tasks.len() {
        let mut incoming = Vec::new();
        for d in array(&json["deps"][t]) {
            let from = d[0]
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < t)
                .ok_or_else(|| {
                    Unreadable(format!(
                        "a dependency of `{}` that is not an earlier task",
                        tasks[t].id
                    ))
                })?;
            edge_count += 1;
            if edge_count > MAX_EDGES {
                return Err(Unreadable(format!("more than {MAX_EDGES} dependencies")));
            }
            incoming.push((from, condition(&d[1])?));
            dependents[from].push(t);
        }
        deps.push(incoming);
    }
    let inactive = array(&json["inactive"])
        .iter()
        .map(|s| {
            Ok(InactiveStep {
                id: text(&s["id"]).ok_or_else(|| Unreadable("a step without an id".into()))?,
                kind: kind(&s["kind"]),
                why: match s["why"].as_str() {
                    Some("never_runs") => LeftOut::NeverRuns,
                    _ => LeftOut::Inactive,
                },
                bridged: edges(&s["bridged"])?,
            })
        })
        .collect::<Result<Vec<_>, Unreadable>>()?;
    Ok(Some(Plan {
        name: text(&json["name"]).unwrap_or_default(),
        description: text(&json["description"]),
        pool: pool(&json["pool"]),
        tasks,
        deps,
        dependents,
        inactive,
        declared: edges(&json["declared"])?,
        scopes: vec![ParamScope::root(BTreeMap::new())],
        timeout_secs: json["timeout_secs"].as_u64(),
        schedule: None,
        concurrency: Default::default(),
        notify: Vec::new(),
    }))
}

/// What differs between the plan a run recorded and a plan of its file now, by task id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Tasks the file has now that the run did not.
    pub added: Vec<String>,
    /// Tasks the run had that the file has no more.
    pub removed: Vec<String>,
    /// Tasks in both whose settings, parameters, notebook or dependencies differ.
    pub changed: Vec<String>,
    /// The pool, name, timeout or inactive steps differ.
    pub pipeline: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self == &Changes::default()
    }

    /// In words, for a banner: `load_x added; clean removed; report changed`.
    pub fn describe(&self) -> String {
        let list = |ids: &[String], what: &str| {
            const SHOWN: usize = 5;
            (!ids.is_empty()).then(|| {
                let mut names: Vec<String> =
                    ids.iter().take(SHOWN).map(|i| format!("`{i}`")).collect();
                if ids.len() > SHOWN {
                    names.push(format!("{} more", ids.len() - SHOWN));
                }
                format!("{} {what}", names.join(", "))
            })
        };
        let parts: Vec<String> = [
            list(&self.added, "added"),
            list(&self.removed, "removed"),
            list(&self.changed, "changed"),
            self.pipeline.then(|| "pipeline settings changed".into()),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.join("; ")
    }
}

/// Each task of a plan's JSON with its dependencies by id (indices differ between plans).
fn tasks_by_id(plan: &Value) -> BTreeMap<String, (Value, BTreeSet<(String, String)>)> {
    let tasks = array(&plan["tasks"]);
    let id_of = |i: &Value| -> String {
        i.as_u64()
            .and_then(|i| tasks.get(usize::try_from(i).ok()?))
            .and_then(|t| t["id"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    tasks
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let deps = array(&plan["deps"][i])
                .iter()
                .map(|d| (id_of(&d[0]), d[1].as_str().unwrap_or_default().to_string()))
                .collect();
            Some((t["id"].as_str()?.to_string(), (t.clone(), deps)))
        })
        .collect()
}

/// What `now` (the file's plan today) changed against `recorded` (a run's `RunStarted` plan).
pub fn changes(recorded: &Value, now: &Plan) -> Changes {
    let now = serde_json::to_value(now).unwrap_or(Value::Null);
    let (before, after) = (tasks_by_id(recorded), tasks_by_id(&now));
    let ids = |a: &BTreeMap<String, _>, b: &BTreeMap<String, _>| -> Vec<String> {
        a.keys().filter(|k| !b.contains_key(*k)).cloned().collect()
    };
    let pipeline = ["name", "pool", "timeout_secs", "inactive"]
        .iter()
        .any(|k| recorded[k] != now[k]);
    Changes {
        added: ids(&after, &before),
        removed: ids(&before, &after),
        changed: before
            .iter()
            .filter(|(id, task)| after.get(*id).is_some_and(|t| t != *task))
            .map(|(id, _)| id.clone())
            .collect(),
        pipeline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::load_text;
    use crate::layout::{draw_plan, LayoutOptions};
    use crate::source::MemorySources;
    use serde_json::json;

    const PIPELINE: &str = r#"
name = "p"
[pool]
executors = 1
executor_cores = 2
[[notebook]]
id = "a"
path = "a.py"
estimate_secs = 12
params = { day = "mon" }
[[notebook]]
id = "off"
path = "a.py"
active = false
depends_on = ["a"]
[[notebook]]
id = "b"
path = "b.py"
depends_on = [{ id = "off", on = "completed" }]
slots = 2
[[pipeline]]
id = "sub"
path = "sub.toml"
depends_on = ["b"]
[[notebook]]
id = "copy"
path = "x.py"
for_each = ["orders", "returns"]
[[notebook]]
id = "fan"
path = "x.py"
depends_on = [{ id = "a", if = "{{ tasks.a.values.rows }} > 0" }]
for_each = "{{ tasks.a.value }}"
for_each_concurrency = 3
expected_items = 4
"#;

    const SUB: &str = r#"
name = "sub"
[[notebook]]
id = "x"
path = "x.py"
"#;

    fn plan(text: &str) -> Plan {
        let mut sources = MemorySources::default();
        sources.0.insert("sub.toml".into(), SUB.into());
        for nb in ["a.py", "b.py", "x.py"] {
            sources.0.insert(nb.into(), String::new());
        }
        let loaded = load_text("p.toml", text, &sources);
        loaded
            .plan
            .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
    }

    #[test]
    fn a_recorded_plan_reads_back_as_the_plan_that_was_drawn() {
        let ran = plan(PIPELINE);
        let recorded = serde_json::to_value(&ran).expect("plan JSON");
        let back = read(&recorded).expect("readable").expect("a plan");
        let ids = |p: &Plan| p.tasks.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&back), ids(&ran));
        assert_eq!(back.deps, ran.deps);
        assert_eq!(back.dependents, ran.dependents);
        assert_eq!(back.inactive, ran.inactive);
        assert_eq!(back.declared, ran.declared);
        assert_eq!(back.pool, ran.pool);
        for (b, r) in back.tasks.iter().zip(&ran.tasks) {
            assert_eq!(
                (&b.settings, &b.params, &b.path),
                (&r.settings, &r.params, &r.path)
            );
            // Conditions on values, for-each items and iterations, as the run had them (but
            // where the file wrote them, which the log does not keep).
            let kept = |t: &Task| serde_json::to_value((&t.conditions, &t.for_each, &t.iteration));
            assert_eq!(kept(b).ok(), kept(r).ok(), "{}", b.id);
        }
        let fan = back.index_of("fan").expect("fan");
        assert!(back.tasks[fan].expands(), "read at run time, as it was");
        assert_eq!(back.tasks[fan].conditions.len(), 1);
        assert!(back.tasks.iter().any(|t| t.iteration.is_some()));
        assert!(back.tasks.iter().any(|t| t.kind == TaskKind::ForEach));
        let o = LayoutOptions::default();
        assert_eq!(draw_plan(&back, &o), draw_plan(&ran, &o));
    }

    #[test]
    fn a_log_without_a_plan_has_none_and_a_broken_one_is_refused() {
        assert_eq!(read(&json!({})), Ok(None));
        assert_eq!(read(&Value::Null), Ok(None));
        let forward =
            json!({"tasks": [{"id": "a"}, {"id": "b"}], "deps": [[[1, "succeeded"]], []]});
        assert!(read(&forward).is_err(), "a dependency on a later task");
        let odd = json!({"tasks": [{"id": "a"}, {"id": "b"}], "deps": [[], [[0, "sometimes"]]]});
        assert!(read(&odd).is_err(), "an unknown condition");
        let nameless = json!({"tasks": [{"kind": "notebook"}]});
        assert!(read(&nameless).is_err());
        let bad_if =
            json!({"tasks": [{"id": "a", "conditions": [{"dependency": "b", "if": "1 >"}]}]});
        assert!(read(&bad_if).is_err(), "an `if` that does not parse");
        let bad_items =
            json!({"tasks": [{"id": "a", "for_each": {"items": {"reference": {"text": "x {{"}}}}]});
        assert!(
            read(&bad_items).is_err(),
            "a for-each reference that does not parse"
        );
        // Fields a log of an older build lacks take their defaults.
        let old = json!({"tasks": [{"id": "a"}, {"id": "b", "settings": {"slots": 3}}],
                         "deps": [[], [[0, "any"]]]});
        let p = read(&old).expect("readable").expect("a plan");
        assert_eq!(p.tasks[1].settings.slots, 3);
        assert_eq!(p.tasks[0].settings, RunSettings::default());
        assert_eq!(p.deps[1], vec![(0, Condition::ANY)]);
    }

    #[test]
    fn changes_name_the_tasks_added_removed_and_changed_since_the_run() {
        let ran = serde_json::to_value(plan(PIPELINE)).expect("plan JSON");
        assert!(changes(&ran, &plan(PIPELINE)).is_empty());
        let edited = PIPELINE
            .replace("estimate_secs = 12", "estimate_secs = 30")
            .replace(
                "id = \"off\"\npath = \"a.py\"\nactive = false",
                "id = \"off\"\npath = \"a.py\"",
            )
            + "[[notebook]]\nid = \"c\"\npath = \"x.py\"\n";
        let c = changes(&ran, &plan(&edited));
        assert_eq!(c.added, ["c", "off"]);
        assert!(c.removed.is_empty());
        // `a`'s estimate; `b` now waits for `off` itself, not for `a` around it.
        assert_eq!(c.changed, ["a", "b"]);
        assert!(c.pipeline, "the inactive step is gone");
        assert_eq!(
            c.describe(),
            "`c`, `off` added; `a`, `b` changed; pipeline settings changed"
        );
        let fewer = PIPELINE.replace(
            "[[pipeline]]\nid = \"sub\"\npath = \"sub.toml\"\ndepends_on = [\"b\"]\n",
            "",
        );
        assert_eq!(changes(&ran, &plan(&fewer)).removed, ["sub", "sub/x"]);
    }
}
