//! What the user types, turned into typed values and into `spool_core::edit::Edit`s. Only the
//! syntax of an input is checked here (is it a number, is it JSON); what the values mean is
//! checked by `spool-core` once the edit is applied, and shown as its diagnostics.

use spool_core::edit::Edit;
use spool_core::model::{PipelineFile, Pool};
use std::collections::BTreeMap;

/// Parameter overrides accepted for one run.
pub const MAX_OVERRIDES: usize = 200;

/// How an editor input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    /// A whole number.
    Integer,
    /// Any number (seconds).
    Number,
    /// Text exactly as typed, spaces kept (a parameter's value, which core reads by its type).
    Raw,
    /// `for_each`: a list written as JSON (`["orders", "returns"]`), or text (a `{{ … }}`
    /// reference, which core checks); empty removes it.
    ForEach,
}

/// The value to store for an input; `Null` (an empty input) removes the key, so the setting
/// falls back to `[defaults]`.
pub fn field_value(kind: FieldKind, input: &str) -> Result<serde_json::Value, String> {
    let s = input.trim();
    if s.is_empty()
        && matches!(
            kind,
            FieldKind::Integer | FieldKind::Number | FieldKind::ForEach
        )
    {
        return Ok(serde_json::Value::Null);
    }
    match kind {
        FieldKind::Text => Ok(serde_json::Value::String(s.to_string())),
        FieldKind::Raw => Ok(serde_json::Value::String(input.to_string())),
        FieldKind::ForEach if s.starts_with('[') => match serde_json::from_str(s) {
            Ok(list @ serde_json::Value::Array(_)) => Ok(list),
            _ => Err(format!(
                "`{s}` is not a list: write it as [\"orders\", \"returns\"] (JSON), or a reference \
                 such as {{{{ params.tables }}}}"
            )),
        },
        FieldKind::ForEach => Ok(serde_json::Value::String(s.to_string())),
        FieldKind::Integer => s
            .parse::<i64>()
            .map(serde_json::Value::from)
            .map_err(|_| format!("`{s}` is not a whole number")),
        FieldKind::Number => {
            if let Ok(i) = s.parse::<i64>() {
                return Ok(i.into());
            }
            match s.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x.into()),
                _ => Err(format!("`{s}` is not a number")),
            }
        }
    }
}

/// Renaming a step: its id, and every dependency on it in the same file (their conditions
/// kept where they stand).
pub fn rename(file: &PipelineFile, old: &str, new: &str) -> Vec<Edit> {
    let mut edits = vec![Edit::SetStepKey {
        id: old.to_string(),
        key: "id".into(),
        value: new.into(),
    }];
    for step in &file.steps {
        if step.depends_on.iter().any(|d| d.id == old) {
            let to = if step.id == old { new } else { &step.id };
            edits.push(Edit::SetDependencyKey {
                to: to.to_string(),
                from: old.to_string(),
                key: "id".into(),
                value: Some(new.to_string()),
            });
        }
    }
    edits
}

/// Removing a step, and the dependencies on it in the same file.
pub fn remove_step(file: &PipelineFile, id: &str) -> Vec<Edit> {
    let mut edits = vec![Edit::RemoveStep { id: id.to_string() }];
    for step in file.steps.iter().filter(|s| s.id != id) {
        if step.depends_on.iter().any(|d| d.id == id) {
            edits.push(Edit::RemoveDependency {
                to: step.id.clone(),
                from: id.to_string(),
            });
        }
    }
    edits
}

/// Changing the condition (`on`) of `to`'s dependency on `from`.
pub fn set_condition(to: &str, from: &str, on: &str) -> Vec<Edit> {
    vec![Edit::SetDependencyKey {
        to: to.to_string(),
        from: from.to_string(),
        key: "on".into(),
        value: Some(on.to_string()),
    }]
}

/// New estimates from measured seconds, for the notebooks of this file (a sub-pipeline's
/// notebooks live in their own file), rounded to a tenth of a second.
pub fn measured_estimates(file: &PipelineFile, measured: &BTreeMap<String, f64>) -> Vec<Edit> {
    file.steps
        .iter()
        .filter_map(|s| {
            let secs = measured.get(&s.id)?;
            let rounded = (secs * 10.0).round() / 10.0;
            (rounded != s.settings.estimate_secs).then(|| Edit::SetStepKey {
                id: s.id.clone(),
                key: "estimate_secs".into(),
                value: rounded.into(),
            })
        })
        .collect()
}

/// "Apply this pool": the pool sizes of the dry run written into `[pool]`, those that differ
/// from the file's (none when the file already has them).
pub fn apply_pool(file_pool: &Pool, executors: u32, executor_cores: u32) -> Vec<Edit> {
    [
        ("executors", file_pool.executors, executors),
        ("executor_cores", file_pool.executor_cores, executor_cores),
    ]
    .into_iter()
    .filter(|(_, was, now)| was != now)
    .map(|(key, _, now)| Edit::SetTableKey {
        table: "pool".into(),
        key: key.into(),
        value: now.into(),
    })
    .collect()
}

/// Run parameter overrides, one `key = value` a line (`key` or `notebook.key`; `#` starts a
/// comment line). A value is read as JSON when it is JSON, otherwise as text, so
/// `run_date = 2024-07-01` means the string `"2024-07-01"`.
pub fn parse_overrides(text: &str) -> (BTreeMap<String, serde_json::Value>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            errors.push(format!("line {}: expected `key = value`", n + 1));
            continue;
        };
        let key = key.trim();
        let valid_key = !key.is_empty()
            && key.split('.').count() <= 2
            && key.split('.').all(|p| {
                !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || "_-/".contains(c))
            });
        if !valid_key {
            errors.push(format!(
                "line {}: `{key}` is not a parameter name (`name` or `notebook.name`)",
                n + 1
            ));
            continue;
        }
        if out.len() >= MAX_OVERRIDES {
            errors.push(format!("more than {MAX_OVERRIDES} overrides"));
            break;
        }
        let value = value.trim();
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        if out.insert(key.to_string(), value).is_some() {
            errors.push(format!("line {}: `{key}` is given twice", n + 1));
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_become_values_or_say_why_not() {
        let cases: &[(FieldKind, &str, Result<serde_json::Value, &str>)] = &[
            (FieldKind::Integer, " 4 ", Ok(json!(4))),
            (FieldKind::Integer, "", Ok(json!(null))),
            (
                FieldKind::Integer,
                "2.5",
                Err("`2.5` is not a whole number"),
            ),
            (FieldKind::Number, "90", Ok(json!(90))),
            (FieldKind::Number, "1.5", Ok(json!(1.5))),
            (FieldKind::Number, "inf", Err("`inf` is not a number")),
            (FieldKind::Text, " a.py ", Ok(json!("a.py"))),
            (FieldKind::Raw, " eu ", Ok(json!(" eu "))),
            (FieldKind::Raw, "", Ok(json!(""))),
            (FieldKind::ForEach, " ", Ok(json!(null))),
            (
                FieldKind::ForEach,
                r#"["orders", 2]"#,
                Ok(json!(["orders", 2])),
            ),
            (
                FieldKind::ForEach,
                " {{ params.tables }} ",
                Ok(json!("{{ params.tables }}")),
            ),
            (
                FieldKind::ForEach,
                "[orders]",
                Err("`[orders]` is not a list: write it as [\"orders\", \"returns\"] (JSON), or a reference such as {{ params.tables }}"),
            ),
        ];
        for (kind, input, want) in cases {
            let got = field_value(*kind, input);
            assert_eq!(
                got,
                want.clone().map_err(String::from),
                "{kind:?} {input:?}"
            );
        }
    }

    fn file(text: &str) -> PipelineFile {
        spool_core::parse::parse_pipeline("p.toml", text)
            .0
            .expect("test file parses")
    }

    const TEXT: &str = r#"
name = "p"
[[notebook]]
id = "a"
path = "a.py"
[[notebook]]
id = "b"
path = "b.py"
depends_on = ["a"]
[[notebook]]
id = "c"
path = "c.py"
depends_on = [{ id = "a", on = "failed" }, "b"]
"#;

    #[test]
    fn renaming_renames_every_dependency_where_it_stands_with_its_condition() {
        let mut text = TEXT.to_string();
        for e in rename(&file(TEXT), "a", "load") {
            text = spool_core::edit::apply(&text, &e).expect("edit applies");
        }
        let f = file(&text);
        let deps: Vec<(String, Vec<(String, &str)>)> = f
            .steps
            .iter()
            .map(|s| {
                let d = s
                    .depends_on
                    .iter()
                    .map(|d| (d.id.clone(), d.on.name()))
                    .collect();
                (s.id.clone(), d)
            })
            .collect();
        assert_eq!(
            deps,
            vec![
                ("load".into(), vec![]),
                ("b".into(), vec![("load".into(), "succeeded")]),
                (
                    "c".into(),
                    vec![("load".into(), "failed"), ("b".into(), "succeeded")]
                ),
            ]
        );
    }

    #[test]
    fn removing_a_step_removes_the_dependencies_on_it() {
        let mut text = TEXT.to_string();
        for e in remove_step(&file(TEXT), "a") {
            text = spool_core::edit::apply(&text, &e).expect("edit applies");
        }
        for e in set_condition("c", "b", "completed") {
            text = spool_core::edit::apply(&text, &e).expect("edit applies");
        }
        let loaded = spool_core::dag::load_text(
            "p.toml",
            &text,
            &spool_core::source::MemorySources::default()
                .with("b.py", "")
                .with("c.py", ""),
        );
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let plan = loaded.plan.expect("valid");
        assert_eq!(plan.tasks.len(), 2);
        assert_eq!(
            plan.deps[1].iter().map(|d| d.1.name()).collect::<Vec<_>>(),
            ["completed"]
        );
    }

    #[test]
    fn measured_durations_become_estimates_of_this_files_notebooks() {
        let measured = BTreeMap::from([
            ("a".to_string(), 12.345),
            ("dims/x".to_string(), 3.0),
            ("b".to_string(), 60.0),
        ]);
        let edits = measured_estimates(&file(TEXT), &measured);
        assert_eq!(
            edits,
            vec![Edit::SetStepKey {
                id: "a".into(),
                key: "estimate_secs".into(),
                value: json!(12.3)
            }],
            "b already has the default 60 s; dims/x is not in this file"
        );
    }

    #[test]
    fn applying_a_pool_writes_the_sizes_the_file_lacks() {
        let mut text = TEXT.to_string();
        let pool = file(&text).pool;
        assert_eq!(
            apply_pool(&pool, pool.executors, pool.executor_cores),
            vec![]
        );
        for e in apply_pool(&pool, 6, pool.executor_cores) {
            text = spool_core::edit::apply(&text, &e).expect("edit applies");
        }
        assert!(text.ends_with("[pool]\nexecutors = 6\n"), "{text}");
        for e in apply_pool(&file(&text).pool, 3, 8) {
            text = spool_core::edit::apply(&text, &e).expect("edit applies");
        }
        assert!(
            text.ends_with("[pool]\nexecutors = 3\nexecutor_cores = 8\n"),
            "{text}"
        );
        let pool = file(&text).pool;
        assert_eq!((pool.executors, pool.executor_cores), (3, 8));
    }

    #[test]
    fn overrides_are_read_line_by_line() {
        let (values, errors) = parse_overrides(
            "# comment\nrun_date = 2024-07-01\nload.top_n = 5\nflag=true\nbad line\n x y = 1\ntop_n = {\"a\": [1]}\nflag = false\n",
        );
        assert_eq!(
            values,
            BTreeMap::from([
                ("run_date".to_string(), json!("2024-07-01")),
                ("load.top_n".to_string(), json!(5)),
                ("flag".to_string(), json!(false)),
                ("top_n".to_string(), json!({"a": [1]})),
            ])
        );
        assert_eq!(
            errors,
            vec![
                "line 5: expected `key = value`",
                "line 6: `x y` is not a parameter name (`name` or `notebook.name`)",
                "line 8: `flag` is given twice",
            ]
        );
    }
}
