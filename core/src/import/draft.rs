//! The Spool pipeline files an import produces, and their TOML text.

use super::json::to_toml;
use super::report::{Place, Report};
use crate::model::{Condition, StepKind};
use crate::parse::valid_id;
use std::collections::HashSet;
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

/// Inline `params = { … }` up to this many characters, a `[notebook.params]` table beyond.
const INLINE_PARAMS_MAX_CHARS: usize = 72;

/// One pipeline file to write.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    /// File name in the output folder.
    pub file: String,
    /// Comment lines at the top of the file.
    pub header: Vec<String>,
    pub name: String,
    pub description: Option<String>,
    pub max_concurrency: Option<u32>,
    /// The whole run's limit (top-level `timeout_secs`).
    pub run_timeout_secs: Option<u64>,
    /// `[defaults] retry_interval_secs`, when the source tool's default differs from Spool's.
    pub default_retry_interval_secs: Option<u64>,
    pub steps: Vec<DraftStep>,
}

/// A `[[notebook]]` or `[[pipeline]]` entry; settings left `None` take the defaults.
#[derive(Debug, Clone)]
pub(crate) struct DraftStep {
    pub kind: StepKind,
    pub id: String,
    pub path: String,
    /// Comment lines above the entry.
    pub comments: Vec<String>,
    pub depends_on: Vec<(String, Condition)>,
    pub active: bool,
    pub retry: Option<u32>,
    pub retry_interval_secs: Option<u64>,
    pub timeout_secs: Option<u64>,
    pub params: Vec<Param>,
}

impl DraftStep {
    pub fn new(kind: StepKind, id: String, path: String) -> DraftStep {
        DraftStep {
            kind,
            id,
            path,
            comments: Vec::new(),
            depends_on: Vec::new(),
            active: true,
            retry: None,
            retry_interval_secs: None,
            timeout_secs: None,
            params: Vec::new(),
        }
    }

    /// Adds JSON parameter values; one that TOML cannot hold, or whose name cannot be a
    /// parameter's, is left out with a warning at `place(key)`.
    pub fn add_json_params<'a>(
        &mut self,
        params: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
        report: &mut Report,
        place: impl Fn(&str) -> Place,
    ) {
        for (key, v) in params {
            if let Some(why) = crate::model::param_name_problem(key) {
                report.warning(&place(key), format!("left out: {why}"));
                continue;
            }
            match to_toml(v) {
                Ok(value) => self.params.push(Param {
                    key: key.clone(),
                    value,
                    comment: None,
                }),
                Err(why) => report.warning(&place(key), format!("left out: {why}")),
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub key: String,
    pub value: Value,
    /// Written after the value (`# @pipeline().parameters.run_date`).
    pub comment: Option<String>,
}

/// `value` unless it equals the default it would fall back to.
pub(crate) fn unless_default<T: PartialEq>(value: T, default: T) -> Option<T> {
    (value != default).then_some(value)
}

fn comment_block(lines: &[String]) -> String {
    lines
        .iter()
        .flat_map(|l| l.lines())
        .map(|l| format!("# {l}\n").replace("# \n", "#\n"))
        .collect()
}

impl Draft {
    pub fn to_toml(&self) -> String {
        let mut doc = DocumentMut::new();
        doc.decor_mut().set_prefix(comment_block(&self.header));
        doc["name"] = value(self.name.as_str());
        if let Some(d) = &self.description {
            doc["description"] = value(d.as_str());
        }
        if let Some(secs) = self.run_timeout_secs {
            doc["timeout_secs"] = value(secs as i64);
        }
        // Positions keep the tables in this order, [[notebook]] and [[pipeline]] interleaved.
        let mut position = 1;
        if let Some(c) = self.max_concurrency {
            let mut pool = Table::new();
            pool["max_concurrency"] = value(i64::from(c));
            pool.set_position(position);
            position += 1;
            doc["pool"] = Item::Table(pool);
        }
        if let Some(secs) = self.default_retry_interval_secs {
            let mut defaults = Table::new();
            defaults["retry_interval_secs"] = value(secs as i64);
            defaults.set_position(position);
            position += 1;
            doc["defaults"] = Item::Table(defaults);
        }
        let mut notebooks = ArrayOfTables::new();
        let mut pipelines = ArrayOfTables::new();
        for step in &self.steps {
            let mut t = step.to_table();
            t.set_position(position);
            position += 1;
            match step.kind {
                StepKind::Notebook => notebooks.push(t),
                StepKind::Pipeline => pipelines.push(t),
            }
        }
        if !notebooks.is_empty() {
            doc["notebook"] = Item::ArrayOfTables(notebooks);
        }
        if !pipelines.is_empty() {
            doc["pipeline"] = Item::ArrayOfTables(pipelines);
        }
        doc.to_string()
    }
}

impl DraftStep {
    fn to_table(&self) -> Table {
        let mut t = Table::new();
        t.decor_mut()
            .set_prefix(format!("\n{}", comment_block(&self.comments)));
        t["id"] = value(self.id.as_str());
        t["path"] = value(self.path.as_str());
        if !self.depends_on.is_empty() {
            let mut deps = Array::new();
            for (id, on) in &self.depends_on {
                if *on == Condition::SUCCEEDED {
                    deps.push(id.as_str());
                } else {
                    let mut dep = InlineTable::new();
                    dep.insert("id", id.as_str().into());
                    dep.insert("on", on.name().into());
                    deps.push(dep);
                }
            }
            t["depends_on"] = value(deps);
        }
        if !self.active {
            t["active"] = value(false);
        }
        if let Some(r) = self.retry {
            t["retry"] = value(i64::from(r));
        }
        if let Some(s) = self.retry_interval_secs {
            t["retry_interval_secs"] = value(s as i64);
        }
        if let Some(s) = self.timeout_secs {
            t["timeout_secs"] = value(s as i64);
        }
        if !self.params.is_empty() {
            let mut inline = InlineTable::new();
            for p in &self.params {
                inline.insert(&p.key, p.value.clone());
            }
            let fits = self.params.iter().all(|p| p.comment.is_none())
                && inline.to_string().len() <= INLINE_PARAMS_MAX_CHARS;
            if fits {
                t["params"] = value(inline);
            } else {
                let mut table = Table::new();
                for p in &self.params {
                    let mut v = p.value.clone();
                    if let Some(c) = &p.comment {
                        v.decor_mut().set_suffix(format!(" # {c}"));
                    }
                    table[&p.key] = value(v);
                }
                t["params"] = Item::Table(table);
            }
        }
        t
    }
}

/// Hands out ids (or file stems) that are valid and unique: invalid characters become `_`,
/// a taken name gets `_2`, `_3`, …
#[derive(Debug, Default)]
pub(crate) struct Ids {
    taken: HashSet<String>,
}

impl Ids {
    pub fn take(&mut self, name: &str) -> String {
        let base = sanitize(name);
        let mut id = base.clone();
        let mut n = 2;
        while self.taken.contains(&id.to_ascii_lowercase()) {
            id = format!("{base}_{n}");
            n += 1;
        }
        self.taken.insert(id.to_ascii_lowercase());
        id
    }
}

/// `name` with every run of characters outside `[A-Za-z0-9_.-]` replaced by one `_`.
pub(crate) fn sanitize(name: &str) -> String {
    if valid_id(name) {
        return name.to_string();
    }
    let joined = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    if joined.is_empty() {
        "step".to_string()
    } else {
        joined
    }
}

/// The file a notebook reference is written as: `notebooks/<name>.ipynb` (a name that already
/// ends in `.ipynb`, `.py` or `.sql` keeps it). Leading `/` are dropped (Databricks paths);
/// the path must stay inside the folder.
pub(crate) fn notebook_path(name: &str) -> Result<String, String> {
    let trimmed = name.trim().trim_start_matches('/');
    let has_ext = [".ipynb", ".py", ".sql"]
        .iter()
        .any(|e| trimmed.to_ascii_lowercase().ends_with(e));
    let file = if has_ext {
        trimmed.to_string()
    } else {
        format!("{trimmed}.ipynb")
    };
    match crate::source::resolve("notebooks", &file) {
        Ok(p) if p.starts_with("notebooks/") && !trimmed.is_empty() => Ok(p),
        _ => Err(format!(
            "notebook `{name}` cannot be a file inside the pipeline's folder"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_and_unique() {
        let mut ids = Ids::default();
        assert_eq!(ids.take("Load Customers (daily)"), "Load_Customers_daily");
        assert_eq!(ids.take("Load_Customers_daily"), "Load_Customers_daily_2");
        assert_eq!(ids.take("load_customers_DAILY"), "load_customers_DAILY_3");
        assert_eq!(ids.take("été"), "t");
        assert_eq!(ids.take("!!!"), "step");
        assert_eq!(ids.take("dims/load"), "dims_load");
    }

    #[test]
    fn notebook_paths_stay_inside() {
        assert_eq!(notebook_path("nb load").unwrap(), "notebooks/nb load.ipynb");
        assert_eq!(
            notebook_path("/Repos/etl/load_sales").unwrap(),
            "notebooks/Repos/etl/load_sales.ipynb"
        );
        assert_eq!(notebook_path("x.py").unwrap(), "notebooks/x.py");
        assert!(notebook_path("../../etc/x").is_err());
        assert!(notebook_path("  ").is_err());
    }
}
