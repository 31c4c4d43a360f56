//! Edits to a pipeline file's TOML text that keep the user's comments, order and formatting
//! (the web editor's changes go through here, so a file saved from the browser diffs cleanly).

mod params;

pub use params::{read_params, FileParams, ParamRow, ParamType, ParamValue, MAX_PARAM_TEXT};
use serde::{Deserialize, Serialize};
use toml_edit::{
    value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, TableLike, Value,
};

/// One change a user makes in the editor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Edit {
    /// Set (or, with `null`, remove) a key of a `[[notebook]]`/`[[pipeline]]` entry.
    SetStepKey {
        id: String,
        key: String,
        value: serde_json::Value,
    },
    /// Set (or remove) a key of `[pool]`, `[defaults]` or the top level (`table` = "").
    SetTableKey {
        table: String,
        key: String,
        value: serde_json::Value,
    },
    AddNotebook {
        id: String,
        path: String,
    },
    /// Adds a `[[pipeline]]` entry: the pipeline file `path` run as one step.
    AddPipeline {
        id: String,
        path: String,
    },
    RemoveStep {
        id: String,
    },
    /// Adds `from` to `to`'s `depends_on` (with a condition other than succeeded as a table).
    AddDependency {
        to: String,
        from: String,
        on: String,
    },
    RemoveDependency {
        to: String,
        from: String,
    },
    /// Sets (or, with `None`, removes) one key of `to`'s dependency on `from` where it stands:
    /// `id` (the step it names), `on` (`succeeded`, the default, removes it) or `if` (a
    /// condition on values). A dependency written as a bare id becomes `{ id = …, … }` when it
    /// gains a key, and a bare id again when only its id is left; the other dependencies and
    /// every other byte of the file stay.
    SetDependencyKey {
        to: String,
        from: String,
        key: String,
        #[serde(default)]
        value: Option<String>,
    },
    /// Sets one parameter of a step's `params` (`step` = its id) or of the file's `[params]`
    /// (no `step`), with its TOML type; the value and every other key keep their place and
    /// formatting.
    SetParam {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
        key: String,
        value: ParamValue,
    },
    /// Renames one parameter where it stands.
    RenameParam {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
        key: String,
        to: String,
    },
    RemoveParam {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
        key: String,
    },
}

/// Applies one edit; returns the new text, or why it cannot be applied.
pub fn apply(text: &str, edit: &Edit) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        format!("the file has a syntax error: {}", e.message())
    })?;
    match edit {
        Edit::SetStepKey { id, key, value: v } => {
            let step = find_step(&mut doc, id).ok_or_else(|| format!("no step `{id}`"))?;
            set_or_remove(step, key, v)?;
        }
        Edit::SetTableKey {
            table,
            key,
            value: v,
        } => {
            // However the table is written: `[pool]`, `pool = { … }` or `pool.key = …`.
            let t: &mut dyn TableLike = if table.is_empty() {
                doc.as_table_mut()
            } else {
                doc.entry(table)
                    .or_insert_with(|| Item::Table(Table::new()))
                    .as_table_like_mut()
                    .ok_or_else(|| format!("`{table}` is not a table"))?
            };
            set_or_remove(t, key, v)?;
        }
        Edit::AddNotebook { id, path } => add_step(&mut doc, "notebook", id, path)?,
        Edit::AddPipeline { id, path } => add_step(&mut doc, "pipeline", id, path)?,
        Edit::RemoveStep { id } => {
            let mut removed = false;
            for kind in ["notebook", "pipeline"] {
                if let Some(list) = doc.get_mut(kind).and_then(Item::as_array_of_tables_mut) {
                    let found = list.iter().position(|t| step_id(t) == Some(id));
                    if let Some(i) = found {
                        list.remove(i);
                        removed = true;
                    }
                }
            }
            if !removed {
                return Err(format!("no step `{id}`"));
            }
        }
        Edit::AddDependency { to, from, on } => {
            let step = find_step(&mut doc, to).ok_or_else(|| format!("no step `{to}`"))?;
            let deps = step
                .entry("depends_on")
                .or_insert_with(|| value(Array::new()))
                .as_array_mut()
                .ok_or("`depends_on` is not an array")?;
            if deps.iter().any(|d| dep_id(d) == Some(from)) {
                return Err(format!("`{to}` already depends on `{from}`"));
            }
            if on == "succeeded" {
                deps.push(from.as_str());
            } else {
                let mut t = InlineTable::new();
                t.insert("id", from.as_str().into());
                t.insert("on", on.as_str().into());
                deps.push(t);
            }
        }
        Edit::RemoveDependency { to, from } => {
            let step = find_step(&mut doc, to).ok_or_else(|| format!("no step `{to}`"))?;
            let deps = step
                .get_mut("depends_on")
                .and_then(Item::as_array_mut)
                .ok_or_else(|| format!("`{to}` has no dependencies"))?;
            let before = deps.len();
            deps.retain(|d| dep_id(d) != Some(from));
            if deps.len() == before {
                return Err(format!("`{to}` does not depend on `{from}`"));
            }
            deps.fmt();
        }
        Edit::SetDependencyKey {
            to,
            from,
            key,
            value,
        } => set_dependency_key(&mut doc, to, from, key, value.as_deref())?,
        Edit::SetParam { step, key, value } => params::set(&mut doc, step.as_deref(), key, value)?,
        Edit::RenameParam { step, key, to } => params::rename(&mut doc, step.as_deref(), key, to)?,
        Edit::RemoveParam { step, key } => params::remove(&mut doc, step.as_deref(), key)?,
    }
    Ok(doc.to_string())
}

fn set_dependency_key(
    doc: &mut DocumentMut,
    to: &str,
    from: &str,
    key: &str,
    new: Option<&str>,
) -> Result<(), String> {
    if !["id", "on", "if"].contains(&key) {
        return Err(format!("a dependency has no key `{key}` (id, on, if)"));
    }
    let step = find_step(doc, to).ok_or_else(|| format!("no step `{to}`"))?;
    let dep = step
        .get_mut("depends_on")
        .and_then(Item::as_array_mut)
        .and_then(|deps| deps.iter_mut().find(|d| dep_id(d) == Some(from)))
        .ok_or_else(|| format!("`{to}` does not depend on `{from}`"))?;
    // `on = "succeeded"` is what a dependency means without `on`.
    let new = new.filter(|v| !(key == "on" && *v == "succeeded"));
    let mut table = match dep {
        Value::InlineTable(t) => t.clone(),
        _ => {
            let mut t = InlineTable::new();
            t.insert("id", from.into());
            t
        }
    };
    match new {
        Some(text) => match table.get_mut(key) {
            // Keep the decoration (spacing) of a value being replaced.
            Some(old) => {
                let decor = old.decor().clone();
                *old = text.into();
                *old.decor_mut() = decor;
            }
            None => {
                // The space before `}` stays last: it moves from the old last value to the new.
                let closing = table.iter_mut().last().and_then(|(_, last)| {
                    let suffix = last.decor().suffix().cloned();
                    last.decor_mut().set_suffix("");
                    suffix
                });
                let mut added: Value = text.into();
                if let Some(suffix) = closing {
                    added.decor_mut().set_suffix(suffix);
                }
                table.insert(key, added);
            }
        },
        None if key == "id" => return Err("a dependency needs its id".into()),
        None => {
            let was_last = table.iter().last().is_some_and(|(k, _)| k == key);
            if let Some(suffix) = table.remove(key).and_then(|v| v.decor().suffix().cloned()) {
                if let Some((_, last)) = table.iter_mut().last().filter(|_| was_last) {
                    last.decor_mut().set_suffix(suffix);
                }
            }
        }
    }
    let decor = dep.decor().clone();
    let only_id = table.len() == 1 && table.contains_key("id");
    let replaced: Value = match (only_id, &*dep) {
        // Unchanged: the dependency keeps its bytes.
        (true, Value::String(_)) if key != "id" => return Ok(()),
        (true, _) => table
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or(from)
            .into(),
        (false, _) => table.into(),
    };
    *dep = replaced;
    *dep.decor_mut() = decor;
    Ok(())
}

fn step_id(t: &Table) -> Option<&str> {
    t.get("id").and_then(Item::as_str)
}

fn dep_id(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s.value()),
        Value::InlineTable(t) => t.get("id").and_then(Value::as_str),
        _ => None,
    }
}

/// Appends a `[[kind]]` entry with `id` and `path`; the id must be new in the file.
fn add_step(doc: &mut DocumentMut, kind: &str, id: &str, path: &str) -> Result<(), String> {
    if find_step(doc, id).is_some() {
        return Err(format!("id `{id}` is already used"));
    }
    let mut t = Table::new();
    t.insert("id", value(id));
    t.insert("path", value(path));
    doc.entry(kind)
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| format!("`{kind}` is not an array of tables"))?
        .push(t);
    Ok(())
}

fn find_step<'d>(doc: &'d mut DocumentMut, id: &str) -> Option<&'d mut Table> {
    let root = doc.as_table_mut();
    let kind = ["notebook", "pipeline"].into_iter().find(|k| {
        root.get(k)
            .and_then(Item::as_array_of_tables)
            .is_some_and(|l| l.iter().any(|t| step_id(t) == Some(id)))
    })?;
    root.get_mut(kind)?
        .as_array_of_tables_mut()?
        .iter_mut()
        .find(|t| step_id(t) == Some(id))
}

fn set_or_remove(t: &mut dyn TableLike, key: &str, v: &serde_json::Value) -> Result<(), String> {
    if v.is_null() {
        t.remove(key);
        return Ok(());
    }
    let new = to_toml(v, 0)?;
    // Keep the decoration (comments, spacing) of a value being replaced.
    match t.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            let decor = old.decor().clone();
            *old = new;
            *old.decor_mut() = decor;
        }
        None => {
            t.insert(key, Item::Value(new));
        }
    }
    Ok(())
}

/// Arrays and tables in a value set by an edit nest at most this deep (a pipeline file's own
/// values must parse again, and TOML parsers stop far below JSON's nesting).
pub const MAX_VALUE_DEPTH: usize = 32;

fn to_toml(v: &serde_json::Value, depth: usize) -> Result<Value, String> {
    use serde_json::Value as J;
    if depth >= MAX_VALUE_DEPTH && (v.is_array() || v.is_object()) {
        return Err(format!(
            "the value nests arrays and tables more than {MAX_VALUE_DEPTH} deep"
        ));
    }
    Ok(match v {
        J::Null => return Err("null cannot be stored in TOML".into()),
        J::Bool(b) => (*b).into(),
        J::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().ok_or("number out of range")?.into(),
        },
        J::String(s) => s.as_str().into(),
        J::Array(a) => {
            let mut arr = Array::new();
            for x in a {
                arr.push(to_toml(x, depth + 1)?);
            }
            Value::Array(arr)
        }
        J::Object(o) => {
            let mut t = InlineTable::new();
            for (k, x) in o {
                t.insert(k, to_toml(x, depth + 1)?);
            }
            Value::InlineTable(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = r#"# Nightly sales
name = "n"

[[notebook]]
id = "a"   # the loader
path = "a.py"
slots = 2  # two cores

[[notebook]]
id = "b"
path = "b.py"
depends_on = ["a"]
"#;

    #[test]
    fn values_nested_past_the_limit_are_refused_and_change_nothing() {
        let nested = |depth: usize| {
            (0..depth).fold(json!(1), |inner, i| {
                if i % 2 == 0 {
                    json!([inner])
                } else {
                    json!({ "k": inner })
                }
            })
        };
        let set = |value| Edit::SetStepKey {
            id: "a".into(),
            key: "params".into(),
            value,
        };
        let err = apply(FILE, &set(nested(MAX_VALUE_DEPTH + 1))).unwrap_err();
        assert!(err.contains("more than 32 deep"), "{err}");
        let out = apply(FILE, &set(nested(MAX_VALUE_DEPTH))).unwrap();
        assert!(out.contains("params = { k = [{ k = [{ k ="), "{out}");
    }

    #[test]
    fn edits_keep_comments_and_order() {
        let out = apply(
            FILE,
            &Edit::SetStepKey {
                id: "a".into(),
                key: "slots".into(),
                value: json!(4),
            },
        )
        .unwrap();
        assert!(out.contains("slots = 4  # two cores"), "{out}");
        assert!(out.starts_with("# Nightly sales\n"));
        assert!(out.contains("id = \"a\"   # the loader"));
    }

    #[test]
    fn dependencies_are_added_and_removed() {
        let add = Edit::AddDependency {
            to: "b".into(),
            from: "c".into(),
            on: "failed".into(),
        };
        let out = apply(FILE, &add).unwrap();
        assert!(
            out.contains(r#"depends_on = ["a", { id = "c", on = "failed" }]"#),
            "{out}"
        );
        assert!(apply(&out, &add).is_err());
        let out = apply(
            &out,
            &Edit::RemoveDependency {
                to: "b".into(),
                from: "a".into(),
            },
        )
        .unwrap();
        assert!(
            out.contains(r#"depends_on = [{ id = "c", on = "failed" }]"#),
            "{out}"
        );
    }

    #[test]
    fn steps_are_added_and_removed_and_unknown_ids_refused() {
        let out = apply(
            FILE,
            &Edit::AddNotebook {
                id: "c".into(),
                path: "c.sql".into(),
            },
        )
        .unwrap();
        assert!(
            out.trim_end().ends_with("id = \"c\"\npath = \"c.sql\""),
            "{out}"
        );
        let added = apply(
            &out,
            &Edit::AddPipeline {
                id: "dims".into(),
                path: "dims/dims.toml".into(),
            },
        )
        .unwrap();
        assert_eq!(
            added,
            format!("{out}\n[[pipeline]]\nid = \"dims\"\npath = \"dims/dims.toml\"\n"),
            "appended, every other byte kept"
        );
        let taken = Edit::AddPipeline {
            id: "c".into(),
            path: "x.toml".into(),
        };
        assert!(apply(&out, &taken).unwrap_err().contains("already used"));
        let out = apply(&out, &Edit::RemoveStep { id: "a".into() }).unwrap();
        assert!(!out.contains("the loader"));
        assert!(apply(&out, &Edit::RemoveStep { id: "zz".into() }).is_err());
        assert!(apply("x = [", &Edit::RemoveStep { id: "a".into() }).is_err());
    }
}
