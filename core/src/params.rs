//! A run's parameter values: the overrides given for a run, checked against the plan before
//! anything starts (one function for the CLI, the API and the browser), the values of every
//! parameter scope, and the values each notebook starts with, references resolved.

use crate::dag::{Plan, TaskId, TaskKind};
use crate::diag::did_you_mean;
use crate::model::param_name_problem;
use crate::template::{coerce, RunInfo, Source, Template, MAX_VALUE_DEPTH};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Overrides as given for a run: `name` (a `[params]` entry of the root file, or else every
/// notebook declaring `name` in its `params`) or `notebook.name` (that notebook's).
pub type Given = BTreeMap<String, Value>;

/// What a notebook published: its exit value (`spool.exit`) and its named values
/// (`spool.set_value`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskValues {
    pub value: Option<Value>,
    pub values: Map<String, Value>,
}

/// A run's values, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    run: RunInfo,
    /// Per scope of the plan, each parameter's value.
    scopes: Vec<Map<String, Value>>,
    /// The overrides that are not `[params]` entries: notebooks' own parameters.
    notebooks: Given,
}

/// Checks `given` against `plan` and computes every scope's values: overrides of `[params]`
/// must have the declared type, every parameter without a default must be given, other
/// overrides must reach a notebook.
pub fn bind(plan: &Plan, given: &Given, run: RunInfo) -> Result<Bound, String> {
    let mut notebooks = Given::new();
    let mut root_given = Map::new();
    for (key, value) in given {
        match override_of(plan, key, value)? {
            Some(typed) => {
                root_given.insert(key.clone(), typed);
            }
            None => {
                notebooks.insert(key.clone(), value.clone());
            }
        }
    }
    let mut scopes: Vec<Map<String, Value>> = Vec::with_capacity(plan.scopes.len());
    for scope in &plan.scopes {
        let mut values = Map::new();
        for (name, decl) in &scope.params {
            let passed = match scope.parent {
                None => root_given.get(name).cloned(),
                Some(p) => match scope.given.get(name) {
                    Some(v) => {
                        let parent = scopes.get(p).ok_or("a scope comes after its parent")?;
                        let lookup = |src: &Source| scope_value(parent, &run, src);
                        Some(render(v, &lookup, 0).map_err(|why| {
                            format!("parameter `{name}` of `{}`: {why}", scope.prefix)
                        })?)
                    }
                    None => None,
                },
            };
            let value = match (passed, &decl.default) {
                (Some(v), _) => v,
                (None, Some(default)) => {
                    let lookup = |src: &Source| scope_value(&Map::new(), &run, src);
                    render(default, &lookup, 0)
                        .map_err(|why| format!("the default of parameter `{name}`: {why}"))?
                }
                (None, None) if scope.parent.is_none() => {
                    return Err(format!(
                        "parameter `{name}` has no default: give it for the run (`--param \
                         {name}=…`)"
                    ))
                }
                (None, None) => {
                    return Err(format!(
                        "parameter `{name}` of sub-pipeline `{}` is not given",
                        scope.prefix.trim_end_matches('/')
                    ))
                }
            };
            let value = coerce(decl.ty, &value).map_err(|why| {
                format!(
                    "parameter `{name}` of `{}`: {why}",
                    scope_name(&scope.prefix)
                )
            })?;
            values.insert(name.clone(), value);
        }
        scopes.push(values);
    }
    Ok(Bound {
        run,
        scopes,
        notebooks,
    })
}

/// Where one override goes: a `[params]` entry of the root file (`Some`, its value typed as
/// declared) or notebooks' own parameters (`None`); an error when no run would take it.
pub fn override_of(plan: &Plan, key: &str, value: &Value) -> Result<Option<Value>, String> {
    if crate::secret::contains_reference(value) {
        // Whoever may start a run could otherwise read any secret the server can resolve.
        return Err(format!(
            "parameter `{key}`: a secret reference can only be written in the pipeline file"
        ));
    }
    let declared = plan.scopes.first().map(|s| &s.params);
    if let Some(decl) = declared.and_then(|p| p.get(key)) {
        let v = coerce(decl.ty, value).map_err(|why| format!("parameter `{key}`: {why}"))?;
        return Ok(Some(v));
    }
    match key.rsplit_once('.') {
        Some((task, name)) => {
            plan.index_of(task)
                .filter(|&t| matches!(plan.tasks[t].kind, TaskKind::Notebook | TaskKind::ForEach))
                .ok_or_else(|| format!("parameter `{key}`: no active notebook `{task}`"))?;
            if let Some(why) = param_name_problem(name) {
                return Err(format!("parameter `{key}`: {why}"));
            }
        }
        None if !plan.tasks.iter().any(|t| t.params.contains_key(key)) => {
            let names = declared
                .into_iter()
                .flat_map(|p| p.keys().map(String::as_str));
            let hint = did_you_mean(key, names)
                .map(|h| format!("; did you mean `{h}`?"))
                .unwrap_or_default();
            return Err(format!(
                "parameter `{key}`: not in the pipeline's `[params]`, and no notebook declares it \
                 (use `notebook.{key}` to give it to one){hint}"
            ));
        }
        None => {}
    }
    Ok(None)
}

fn scope_name(prefix: &str) -> &str {
    match prefix.trim_end_matches('/') {
        "" => "the pipeline",
        p => p,
    }
}

/// A `params.…` or `run.…` reference's value in a scope with `values`.
fn scope_value(values: &Map<String, Value>, run: &RunInfo, src: &Source) -> Result<Value, String> {
    if let Source::Param(p) = src {
        return values
            .get(p)
            .cloned()
            .ok_or_else(|| format!("unknown parameter `{p}`"));
    }
    run.value(src)
        .ok_or_else(|| "task values are not known when the run starts".to_string())
}

/// `value` with the references in its strings resolved (as deep as they are read).
fn render(
    value: &Value,
    lookup: &dyn Fn(&Source) -> Result<Value, String>,
    depth: usize,
) -> Result<Value, String> {
    if crate::secret::reference(value).is_some() {
        // Resolved by the server when the attempt starts; its text is not a template.
        return Ok(value.clone());
    }
    Ok(match value {
        Value::String(s) => match Template::parse(s).map_err(|e| e.message)? {
            Some(t) => t.eval(lookup)?,
            None => value.clone(),
        },
        Value::Array(items) if depth < MAX_VALUE_DEPTH => Value::Array(
            items
                .iter()
                .map(|v| render(v, lookup, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) if depth < MAX_VALUE_DEPTH => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), render(v, lookup, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        ),
        _ => value.clone(),
    })
}

/// `value` as plain data when its references are only written text (`{{ "{{" }}`, what
/// [`crate::template::escape`] writes); `None` when it refers to parameters, the run or tasks.
pub fn plain(value: &Value) -> Option<Value> {
    let literal = |src: &Source| match src {
        Source::Literal(text) => Ok(Value::String(text.clone())),
        _ => Err(String::new()),
    };
    render(value, &literal, 0).ok()
}

impl Bound {
    /// What the run's `run.…` references read.
    pub fn run(&self) -> RunInfo {
        self.run
    }

    /// The values of the root file's `[params]`.
    pub fn pipeline_values(&self) -> &Map<String, Value> {
        &self.scopes[0]
    }

    /// The value of `src` read in parameter scope `scope` (`values` gives what finished tasks
    /// published): the one lookup of notebooks' parameters and of conditions on values. `Err`
    /// says why there is none (a value an upstream task did not publish).
    pub fn value_of(
        &self,
        plan: &Plan,
        scope: usize,
        src: &Source,
        values: &dyn Fn(TaskId) -> Option<TaskValues>,
    ) -> Result<Value, String> {
        let Some(id) = src.task() else {
            return scope_value(&self.scopes[scope], &self.run, src);
        };
        let full = format!("{}{id}", plan.scopes[scope].prefix);
        let published = plan
            .index_of(&full)
            .and_then(values)
            .ok_or_else(|| format!("`{full}` has not published values (it did not succeed)"))?;
        let value = match src {
            Source::TaskValue(_) => published
                .value
                .ok_or_else(|| format!("`{full}` ended without an exit value (`spool.exit`)")),
            Source::TaskValues(_, None) => Ok(Value::Object(published.values)),
            Source::TaskValues(_, Some(key)) => {
                published.values.get(key).cloned().ok_or_else(|| {
                    let set: Vec<String> =
                        published.values.keys().map(|k| format!("`{k}`")).collect();
                    format!(
                        "`{full}` set no value `{key}` (it set {})",
                        if set.is_empty() {
                            "none".to_string()
                        } else {
                            set.join(", ")
                        }
                    )
                })
            }
            _ => Err("not a task value".into()),
        }?;
        // A notebook's output is data: what looks like a secret reference there would
        // otherwise be resolved by the server and handed to the dependent.
        if crate::secret::contains_reference(&value) {
            return Err(format!(
                "`{full}` published a value holding a `{}` key, which only the pipeline file \
                 may write (a secret reference)",
                crate::secret::MARKER
            ));
        }
        Ok(value)
    }

    /// The values notebook `t` starts with: its `params` with references resolved (`values`
    /// gives what finished tasks published), the overrides that reach it on top. `Err` says
    /// why it cannot start (a value an upstream task did not publish).
    pub fn params_for(
        &self,
        plan: &Plan,
        t: TaskId,
        values: &dyn Fn(TaskId) -> Option<TaskValues>,
    ) -> Result<Map<String, Value>, String> {
        let task = &plan.tasks[t];
        let lookup = |src: &Source| self.value_of(plan, task.scope, src, values);
        // `copy_table.key` reaches every iteration of for-each `copy_table`.
        let id = task.iteration.as_ref().map_or(&task.id, |it| &it.group);
        let overrides: Map<String, Value> = overrides_for(id, &task.params, &self.notebooks)
            .into_iter()
            .collect();
        let mut out = Map::new();
        for (name, value) in &task.params {
            if !overrides.contains_key(name) {
                let v = render(value, &lookup, 0)
                    .map_err(|why| format!("parameter `{name}`: {why}"))?;
                out.insert(name.clone(), v);
            }
        }
        out.extend(overrides);
        // An iteration's item is data as it is: never read for references.
        if let Some(it) = &task.iteration {
            out.insert("item".into(), it.item.clone());
            out.insert("item_index".into(), it.index.into());
        }
        Ok(out)
    }
}

/// The overrides that reach notebook `id` with `declared` params, in key order (so
/// `notebook.key` wins over `key`): `key` when it declares `key`, `id.key` always.
pub fn overrides_for(
    id: &str,
    declared: &BTreeMap<String, Value>,
    notebooks: &Given,
) -> Vec<(String, Value)> {
    notebooks
        .iter()
        .filter_map(|(key, value)| {
            let name = match key.rsplit_once('.') {
                Some((task, name)) if task == id => name,
                None if declared.contains_key(key) => key,
                _ => return None,
            };
            Some((name.to_string(), value.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::load_text;
    use crate::source::MemorySources;
    use serde_json::json;

    const RUN: RunInfo = RunInfo {
        id: 3,
        // 2024-07-01T00:00:00Z
        trigger_ms: 1_719_792_000_000,
    };

    fn plan(root: &str, sub: &str) -> Plan {
        let sources = MemorySources::default()
            .with("a.py", "")
            .with("b.py", "")
            .with("sub.toml", sub);
        let loaded = load_text("p.toml", root, &sources);
        loaded
            .plan
            .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
    }

    const ROOT: &str = r#"
[params]
day = { type = "date", default = "{{ run.date | add_days(-1) }}" }
tables = ["orders", "returns"]
limit = 10

[[notebook]]
id = "a"
path = "a.py"
params = { day = "{{ params.day }}", label = "day {{ params.day }} of run {{ run.id }}", first = "{{ params.tables }}" }

[[notebook]]
id = "b"
path = "b.py"
depends_on = ["a"]
params = { rows = "{{ tasks.a.values.rows }}", all = ["{{ tasks.a.value }}", { n = "{{ params.limit }}" }] }

[[pipeline]]
id = "s"
path = "sub.toml"
params = { when = "{{ params.day | add_months(1) }}" }
"#;

    const SUB: &str = r#"
[params]
when = { type = "date" }
[[notebook]]
id = "a"
path = "a.py"
params = { when = "{{ params.when | format_date(\"%Y%m%d\") }}" }
"#;

    fn none(_: TaskId) -> Option<TaskValues> {
        None
    }

    #[test]
    fn references_resolve_to_typed_values_in_every_scope() {
        let p = plan(ROOT, SUB);
        let bound = bind(&p, &Given::new(), RUN).expect("defaults suffice");
        let a = bound
            .params_for(&p, p.index_of("a").unwrap(), &none)
            .unwrap();
        assert_eq!(a["day"], json!("2024-06-30"));
        assert_eq!(a["label"], json!("day 2024-06-30 of run 3"));
        assert_eq!(a["first"], json!(["orders", "returns"]));
        let inner = bound
            .params_for(&p, p.index_of("s/a").unwrap(), &none)
            .unwrap();
        assert_eq!(inner["when"], json!("20240730"));
    }

    #[test]
    fn overrides_are_typed_by_the_declaration() {
        let p = plan(ROOT, SUB);
        let given = Given::from([("day".to_string(), json!("2025-01-31"))]);
        let bound = bind(&p, &given, RUN).unwrap();
        let inner = bound
            .params_for(&p, p.index_of("s/a").unwrap(), &none)
            .unwrap();
        assert_eq!(inner["when"], json!("20250228"));
        let bad = Given::from([("day".to_string(), json!("yesterday"))]);
        let err = bind(&p, &bad, RUN).expect_err("not a date");
        assert!(err.contains("parameter `day`: expected a date"), "{err}");
        let limit = Given::from([("limit".to_string(), json!("x"))]);
        assert!(bind(&p, &limit, RUN)
            .expect_err("not a number")
            .contains("expected a number"));
        let unknown = Given::from([("nope".to_string(), json!(1))]);
        assert!(bind(&p, &unknown, RUN).is_err());
    }

    #[test]
    fn secrets_stay_references_until_the_server_resolves_them_and_no_run_can_give_one() {
        let p = plan(
            "[params]\npw = { secret = \"env:PW\" }\n[[notebook]]\nid = \"a\"\npath = \"a.py\"\n\
             params = { whole = \"{{ params.pw }}\", inside = \"pw={{ params.pw }}\" }\n",
            "",
        );
        let bound = bind(&p, &Given::new(), RUN).unwrap();
        let err = bound
            .params_for(&p, p.index_of("a").unwrap(), &none)
            .expect_err("a secret cannot be written inside text");
        assert!(err.contains("`params.pw` is a secret"), "{err}");
        // An override may replace the secret with plain text, never name one: whoever may
        // start a run could otherwise read any secret the server can resolve.
        let plain = Given::from([("pw".to_string(), json!("given"))]);
        assert!(bind(&p, &plain, RUN).is_ok());
        for sneaked in [
            json!({"$secret": "env:HOME"}),
            json!([{"deep": {"$secret": "file:/etc/shadow"}}]),
        ] {
            let given = Given::from([("a.other".to_string(), sneaked)]);
            let err = bind(&p, &given, RUN).expect_err("a reference given for a run");
            assert!(
                err.contains("only be written in the pipeline file"),
                "{err}"
            );
        }
        // A notebook's published value that looks like a reference is refused, never resolved.
        let passed_on = plan(
            "[[notebook]]\nid = \"a\"\npath = \"a.py\"\n[[notebook]]\nid = \"b\"\npath = \"b.py\"\n\
             depends_on = [\"a\"]\nparams = { v = \"{{ tasks.a.value }}\" }\n",
            "",
        );
        let bound = bind(&passed_on, &Given::new(), RUN).unwrap();
        let sneaky = |_: TaskId| {
            Some(TaskValues {
                value: Some(json!([{"$secret": "env:HOME"}])),
                values: Map::new(),
            })
        };
        let err = bound
            .params_for(&passed_on, passed_on.index_of("b").unwrap(), &sneaky)
            .expect_err("a published reference is not resolved");
        assert!(err.contains("only the pipeline file may write"), "{err}");
        let whole = plan(
            "[params]\npw = { secret = \"env:PW\" }\n[[notebook]]\nid = \"a\"\npath = \"a.py\"\n\
             params = { pw = \"{{ params.pw }}\" }\n",
            "",
        );
        let bound = bind(&whole, &Given::new(), RUN).unwrap();
        let a = bound
            .params_for(&whole, whole.index_of("a").unwrap(), &none)
            .unwrap();
        assert_eq!(a["pw"], json!({"$secret": "env:PW"}));
    }

    #[test]
    fn a_parameter_without_default_must_be_given() {
        let p = plan(
            "[params]\nx = { type = \"number\" }\n[[notebook]]\nid = \"a\"\npath = \"a.py\"\n",
            "",
        );
        let err = bind(&p, &Given::new(), RUN).expect_err("x is missing");
        assert!(err.contains("`x` has no default"), "{err}");
        assert!(bind(&p, &Given::from([("x".into(), json!("4"))]), RUN).is_ok());
    }

    #[test]
    fn upstream_values_reach_dependents_and_missing_ones_say_what_was_set() {
        let p = plan(ROOT, SUB);
        let bound = bind(&p, &Given::new(), RUN).unwrap();
        let a = p.index_of("a").unwrap();
        let b = p.index_of("b").unwrap();
        let published = TaskValues {
            value: Some(json!({"ok": true})),
            values: Map::from_iter([("rows".to_string(), json!(42))]),
        };
        let values = |t: TaskId| (t == a).then(|| published.clone());
        let got = bound.params_for(&p, b, &values).unwrap();
        assert_eq!(got["rows"], json!(42));
        assert_eq!(got["all"], json!([{"ok": true}, {"n": 10}]));
        let other = TaskValues {
            value: Some(json!(1)),
            values: Map::from_iter([("count".to_string(), json!(1))]),
        };
        let values = |t: TaskId| (t == a).then(|| other.clone());
        let err = bound.params_for(&p, b, &values).expect_err("no rows");
        assert!(
            err.contains("`a` set no value `rows` (it set `count`)"),
            "{err}"
        );
        let err = bound
            .params_for(&p, b, &none)
            .expect_err("a did not succeed");
        assert!(err.contains("`a` has not published values"), "{err}");
    }

    #[test]
    fn notebook_overrides_keep_working_beside_pipeline_parameters() {
        let p = plan(ROOT, SUB);
        let given = Given::from([
            ("b.rows".to_string(), json!(5)),
            ("label".to_string(), json!("x")),
        ]);
        let bound = bind(&p, &given, RUN).unwrap();
        let a = bound
            .params_for(&p, p.index_of("a").unwrap(), &none)
            .unwrap();
        assert_eq!(a["label"], json!("x"));
    }
}
