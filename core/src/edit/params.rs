//! One parameter at a time: a step's `params` or the file's `[params]`, set, renamed or removed
//! with its TOML type, leaving every other byte of the file as it was (a date stays a date,
//! `4_000_000` keeps its underscores, the keys keep their order).

use super::{find_step, MAX_VALUE_DEPTH};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toml_edit::{DocumentMut, InlineTable, Item, Key, Table, Value};

/// A value's text in the editor is at most this long.
pub const MAX_PARAM_TEXT: usize = 64 * 1024;

/// The TOML types a parameter's value can have, as the editor offers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    String,
    Integer,
    Float,
    Bool,
    Date,
    Datetime,
    Array,
    Table,
}

impl ParamType {
    pub const ALL: [ParamType; 8] = [
        ParamType::String,
        ParamType::Integer,
        ParamType::Float,
        ParamType::Bool,
        ParamType::Date,
        ParamType::Datetime,
        ParamType::Array,
        ParamType::Table,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::Date => "date",
            ParamType::Datetime => "datetime",
            ParamType::Array => "array",
            ParamType::Table => "table",
        }
    }

    pub fn from_name(name: &str) -> Option<ParamType> {
        ParamType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What a value of this type looks like, for an empty input.
    pub fn example(self) -> &'static str {
        match self {
            ParamType::String => "text",
            ParamType::Integer => "4_000_000",
            ParamType::Float => "0.5",
            ParamType::Bool => "true",
            ParamType::Date => "2024-06-30",
            ParamType::Datetime => "2024-06-30T06:00:00Z",
            ParamType::Array => "[\"eu\", \"us\"]",
            ParamType::Table => "{ k = 1 }",
        }
    }

    fn of(v: &Value) -> ParamType {
        match v {
            Value::String(_) => ParamType::String,
            Value::Integer(_) => ParamType::Integer,
            Value::Float(_) => ParamType::Float,
            Value::Boolean(_) => ParamType::Bool,
            Value::Datetime(d) if d.value().time.is_none() => ParamType::Date,
            Value::Datetime(_) => ParamType::Datetime,
            Value::Array(_) => ParamType::Array,
            Value::InlineTable(_) => ParamType::Table,
        }
    }
}

/// A parameter's value as the editor shows it: its type, and its text — a string's own
/// characters, any other value in TOML (`2024-06-30`, `4_000_000`, `["eu", "us"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamValue {
    #[serde(rename = "type")]
    pub ty: ParamType,
    pub text: String,
}

impl ParamValue {
    /// The TOML value, written as the user typed it (underscores, quotes and spacing kept).
    pub fn to_toml(&self) -> Result<Value, String> {
        if self.text.len() > MAX_PARAM_TEXT {
            return Err(format!(
                "the value is longer than {MAX_PARAM_TEXT} characters"
            ));
        }
        if self.ty == ParamType::String {
            return Ok(self.text.as_str().into());
        }
        let text = self.text.trim();
        let expected = || format!("`{text}` is not a {}", self.ty.name());
        let value: Value = text
            .parse()
            .map_err(|_| format!("{}: write it like {}", expected(), self.ty.example()))?;
        let value = match (self.ty, value) {
            // `1` typed as a float stays a float.
            (ParamType::Float, Value::Integer(i)) => Value::from(*i.value() as f64),
            (ty, v) if ParamType::of(&v) == ty => v,
            (_, v) => {
                return Err(format!(
                    "{}: it reads as a {} (write it like {})",
                    expected(),
                    ParamType::of(&v).name(),
                    self.ty.example()
                ))
            }
        };
        if too_deep(&value, 0) {
            return Err(format!(
                "the value nests arrays and tables more than {MAX_VALUE_DEPTH} deep"
            ));
        }
        Ok(value)
    }

    fn of(v: &Value) -> ParamValue {
        let ty = ParamType::of(v);
        let text = match v {
            Value::String(s) => s.value().clone(),
            _ => {
                let mut bare = v.clone();
                bare.decor_mut().clear();
                bare.to_string()
            }
        };
        ParamValue { ty, text }
    }
}

fn too_deep(v: &Value, depth: usize) -> bool {
    let container = matches!(v, Value::Array(_) | Value::InlineTable(_));
    if container && depth >= MAX_VALUE_DEPTH {
        return true;
    }
    match v {
        Value::Array(a) => a.iter().any(|x| too_deep(x, depth + 1)),
        Value::InlineTable(t) => t.iter().any(|(_, x)| too_deep(x, depth + 1)),
        _ => false,
    }
}

/// One parameter as written in the file, in the file's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamRow {
    pub key: String,
    pub value: ParamValue,
}

/// Every parameter of a file as written: the file's `[params]` and each step's `params`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileParams {
    pub pipeline: Vec<ParamRow>,
    /// By step id.
    pub steps: BTreeMap<String, Vec<ParamRow>>,
}

impl FileParams {
    /// The rows of one scope (`None`: the file's `[params]`).
    pub fn of(&self, step: Option<&str>) -> &[ParamRow] {
        match step {
            None => &self.pipeline,
            Some(id) => self.steps.get(id).map_or(&[], Vec::as_slice),
        }
    }
}

/// Reads every parameter with its TOML type (the model's `params` are JSON, where a date is a
/// string). `None` when the text is not TOML.
pub fn read_params(text: &str) -> Option<FileParams> {
    let doc: DocumentMut = text.parse().ok()?;
    let rows = |item: Option<&Item>| -> Vec<ParamRow> {
        let Some(table) = item.and_then(Item::as_table_like) else {
            return Vec::new();
        };
        table
            .iter()
            .map(|(key, item)| ParamRow {
                key: key.to_string(),
                value: match item {
                    Item::Value(v) => ParamValue::of(v),
                    // A `[notebook.params.sub]` table: shown as the inline table it means.
                    other => ParamValue {
                        ty: ParamType::Table,
                        text: other
                            .clone()
                            .into_value()
                            .map(|v| ParamValue::of(&v).text)
                            .unwrap_or_default(),
                    },
                },
            })
            .collect()
    };
    let mut out = FileParams {
        pipeline: rows(doc.get("params")),
        steps: BTreeMap::new(),
    };
    for kind in ["notebook", "pipeline"] {
        for step in doc
            .get(kind)
            .and_then(Item::as_array_of_tables)
            .into_iter()
            .flatten()
        {
            if let Some(id) = step.get("id").and_then(Item::as_str) {
                out.steps.insert(id.to_string(), rows(step.get("params")));
            }
        }
    }
    Some(out)
}

/// The table a parameter lives in, whichever way the file writes it: an inline table
/// (`params = { … }`), a table (`[params]`, `[notebook.params]`) or dotted keys
/// (`params.run_date = …`).
enum Params<'d> {
    Inline(&'d mut InlineTable),
    Table(&'d mut Table),
}

fn params_of<'d>(
    doc: &'d mut DocumentMut,
    step: Option<&str>,
    create: bool,
) -> Result<Params<'d>, String> {
    let (owner, place) = match step {
        Some(id) => (
            find_step(doc, id).ok_or_else(|| format!("no step `{id}`"))?,
            format!("`params` of `{id}`"),
        ),
        None => (doc.as_table_mut(), "`[params]`".to_string()),
    };
    if !owner.contains_key("params") {
        if !create {
            return Err(format!("{place} is not written"));
        }
        let new = match step {
            Some(_) => Item::Value(Value::InlineTable(InlineTable::new())),
            None => Item::Table(Table::new()),
        };
        owner.insert("params", new);
    }
    match owner.get_mut("params") {
        Some(Item::Value(Value::InlineTable(t))) => Ok(Params::Inline(t)),
        Some(Item::Table(t)) => Ok(Params::Table(t)),
        _ => Err(format!("{place} is not a table")),
    }
}

impl Params<'_> {
    fn keys(&self) -> Vec<String> {
        match self {
            Params::Inline(t) => t.iter().map(|(k, _)| k.to_string()).collect(),
            Params::Table(t) => t.iter().map(|(k, _)| k.to_string()).collect(),
        }
    }

    fn contains(&self, key: &str) -> bool {
        match self {
            Params::Inline(t) => t.contains_key(key),
            Params::Table(t) => t.contains_key(key),
        }
    }

    fn set(&mut self, key: &str, new: Value) {
        let old = match self {
            Params::Inline(t) => t.get_mut(key),
            Params::Table(t) => t.get_mut(key).and_then(Item::as_value_mut),
        };
        if let Some(old) = old {
            // The spacing and comment around the old value stay.
            let decor = old.decor().clone();
            *old = new;
            *old.decor_mut() = decor;
            return;
        }
        match self {
            Params::Inline(t) => {
                // The space before `}` belongs to the last value: it moves to the new last one.
                let mut new = new;
                if let Some((_, last)) = t.iter_mut().last() {
                    let suffix = last.decor().suffix().cloned();
                    if let Some(suffix) = suffix {
                        last.decor_mut().set_suffix("");
                        new.decor_mut().set_suffix(suffix);
                        new.decor_mut().set_prefix(" ");
                    }
                }
                t.insert(key, new);
            }
            Params::Table(t) => {
                t.insert(key, Item::Value(new));
            }
        }
    }

    fn remove(&mut self, key: &str) {
        match self {
            Params::Inline(t) => {
                let keys: Vec<String> = t.iter().map(|(k, _)| k.to_string()).collect();
                let was_last = keys.last().map(String::as_str) == Some(key);
                if let Some(removed) = t.remove(key) {
                    // Its suffix (the space before `}`) goes to the new last value.
                    // (or, in a table left empty, stays before `}`).
                    if let Some(suffix) = removed.decor().suffix().cloned().filter(|_| was_last) {
                        match t.iter_mut().last() {
                            Some((_, last)) => last.decor_mut().set_suffix(suffix),
                            None => t.set_preamble(suffix),
                        }
                    }
                }
            }
            Params::Table(t) => {
                t.remove(key);
            }
        }
    }

    /// Renames in place: the entries from `key` on are taken out and put back in order, with
    /// their own formatting (keys keep their spacing, values their decor).
    fn rename(&mut self, key: &str, to: &str) {
        let keys = self.keys();
        let Some(at) = keys.iter().position(|k| k == key) else {
            return;
        };
        let renamed = |k: Key| {
            Key::new(to)
                .with_leaf_decor(k.leaf_decor().clone())
                .with_dotted_decor(k.dotted_decor().clone())
        };
        match self {
            Params::Inline(t) => reinsert(
                &mut **t,
                &keys[at..],
                |t: &mut InlineTable, k| t.remove_entry(k),
                renamed,
                |t, k, v| {
                    t.insert_formatted(k, v);
                },
            ),
            Params::Table(t) => reinsert(
                &mut **t,
                &keys[at..],
                |t: &mut Table, k| t.remove_entry(k),
                renamed,
                |t, k, v| {
                    t.insert_formatted(k, v);
                },
            ),
        }
    }
}

/// Takes the entries of `keys` out of `table`, then puts them back in the same order, the
/// first under its new name.
fn reinsert<T, V>(
    table: &mut T,
    keys: &[String],
    take: impl Fn(&mut T, &str) -> Option<(Key, V)>,
    renamed: impl Fn(Key) -> Key,
    put: impl Fn(&mut T, &Key, V),
) {
    let tail: Vec<(Key, V)> = keys.iter().filter_map(|k| take(table, k)).collect();
    for (i, (k, v)) in tail.into_iter().enumerate() {
        let k = if i == 0 { renamed(k) } else { k };
        put(table, &k, v);
    }
}

pub(super) fn set(
    doc: &mut DocumentMut,
    step: Option<&str>,
    key: &str,
    value: &ParamValue,
) -> Result<(), String> {
    if key.is_empty() {
        return Err("a parameter needs a name".into());
    }
    let new = value.to_toml()?;
    params_of(doc, step, true)?.set(key, new);
    Ok(())
}

pub(super) fn rename(
    doc: &mut DocumentMut,
    step: Option<&str>,
    key: &str,
    to: &str,
) -> Result<(), String> {
    if to.is_empty() {
        return Err("a parameter needs a name".into());
    }
    let mut params = params_of(doc, step, false)?;
    if !params.contains(key) {
        return Err(format!("no parameter `{key}`"));
    }
    if key != to && params.contains(to) {
        return Err(format!("there is a parameter `{to}` already"));
    }
    params.rename(key, to);
    Ok(())
}

pub(super) fn remove(doc: &mut DocumentMut, step: Option<&str>, key: &str) -> Result<(), String> {
    let mut params = params_of(doc, step, false)?;
    if !params.contains(key) {
        return Err(format!("no parameter `{key}`"));
    }
    params.remove(key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::{apply, Edit};

    const FILE: &str = r#"name = "n"

[params]
region = "eu"   # where
run_date = { type = "date", default = "{{ run.date }}" }

[[notebook]]
id = "load"
path = "load.py"
params = { run_date = 2024-06-30, order_count = 4_000_000, days = 28 }

[[notebook]]
id = "report"
path = "report.py"
"#;

    fn set(step: Option<&str>, key: &str, ty: ParamType, text: &str) -> Edit {
        Edit::SetParam {
            step: step.map(String::from),
            key: key.into(),
            value: ParamValue {
                ty,
                text: text.into(),
            },
        }
    }

    #[test]
    fn a_date_stays_a_date_and_the_other_keys_keep_their_text_and_order() {
        let out = apply(FILE, &set(Some("load"), "days", ParamType::Integer, "30")).unwrap();
        assert_eq!(
            out,
            FILE.replace("days = 28", "days = 30"),
            "only the edited value changes"
        );
        let out = apply(
            FILE,
            &set(Some("load"), "run_date", ParamType::Date, "2024-07-01"),
        )
        .unwrap();
        assert!(out.contains("params = { run_date = 2024-07-01, order_count = 4_000_000"));
        let rows = read_params(&out).unwrap();
        assert_eq!(
            rows.of(Some("load"))[0].value,
            ParamValue {
                ty: ParamType::Date,
                text: "2024-07-01".into()
            }
        );
    }

    #[test]
    fn values_are_read_as_their_type_or_refused_with_why() {
        let cases: &[(ParamType, &str, Result<&str, &str>)] = &[
            (ParamType::Integer, "4_000_000", Ok("4_000_000")),
            (
                ParamType::Integer,
                "1.5",
                Err("`1.5` is not a integer: it reads as a float"),
            ),
            (ParamType::Float, "2", Ok("2.0")),
            (ParamType::Date, "2024-06-30", Ok("2024-06-30")),
            (
                ParamType::Date,
                "2024-06-30T06:00:00",
                Err("it reads as a datetime"),
            ),
            (
                ParamType::Date,
                "30/06/2024",
                Err("`30/06/2024` is not a date: write it like 2024-06-30"),
            ),
            (
                ParamType::Datetime,
                "2024-06-30T06:00:00Z",
                Ok("2024-06-30T06:00:00Z"),
            ),
            (ParamType::Bool, "yes", Err("is not a bool")),
            (ParamType::String, "2024-06-30", Ok("\"2024-06-30\"")),
            (ParamType::Array, "[\"eu\", \"us\"]", Ok("[\"eu\", \"us\"]")),
            (ParamType::Table, "{ k = 1 }", Ok("{ k = 1 }")),
            (ParamType::Table, "[1]", Err("it reads as a array")),
        ];
        for (ty, text, want) in cases {
            let got = ParamValue {
                ty: *ty,
                text: text.to_string(),
            }
            .to_toml()
            .map(|v| v.to_string());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{ty:?} {text}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{ty:?} {text}: {got}"),
                (got, want) => panic!("{ty:?} {text}: {got:?}, wanted {want:?}"),
            }
        }
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        let err = ParamValue {
            ty: ParamType::Array,
            text: deep,
        }
        .to_toml()
        .unwrap_err();
        assert!(err.contains("deep") || err.contains("not a array"), "{err}");
    }

    #[test]
    fn pipeline_parameters_are_set_renamed_and_removed_in_place() {
        let out = apply(
            FILE,
            &Edit::RenameParam {
                step: None,
                key: "region".into(),
                to: "zone".into(),
            },
        )
        .unwrap();
        assert_eq!(out, FILE.replace("region = \"eu\"", "zone = \"eu\""));
        let refused = apply(
            &out,
            &Edit::RenameParam {
                step: None,
                key: "zone".into(),
                to: "run_date".into(),
            },
        );
        assert_eq!(
            refused,
            Err("there is a parameter `run_date` already".into())
        );
        let out = apply(
            &out,
            &Edit::RemoveParam {
                step: None,
                key: "zone".into(),
            },
        )
        .unwrap();
        assert!(!out.contains("zone") && !out.contains("# where"), "{out}");
        assert!(
            out.contains("[params]\nrun_date = { type = \"date\""),
            "{out}"
        );
    }

    #[test]
    fn a_step_without_parameters_gets_an_inline_table() {
        let out = apply(FILE, &set(Some("report"), "top_n", ParamType::Integer, "5")).unwrap();
        assert!(
            out.ends_with("path = \"report.py\"\nparams = { top_n = 5 }\n"),
            "{out}"
        );
        let out = apply(
            &out,
            &set(Some("report"), "day", ParamType::Date, "2024-06-30"),
        )
        .unwrap();
        assert!(
            out.contains("params = { top_n = 5, day = 2024-06-30 }"),
            "{out}"
        );
        let parsed = crate::parse::parse_pipeline("p.toml", &out).0.unwrap();
        assert_eq!(parsed.steps[1].params["day"], "2024-06-30");
        assert!(apply(FILE, &set(Some("nope"), "k", ParamType::Bool, "true")).is_err());
        assert!(apply(
            FILE,
            &Edit::RemoveParam {
                step: Some("report".into()),
                key: "k".into()
            }
        )
        .is_err());
    }
}
