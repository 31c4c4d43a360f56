//! Synapse Genie's metadata table (`genie.metadata`) exported as CSV -> one Spool pipeline file
//! per `pipeline` value.

use super::adf::parse_timespan;
use super::csv;
use super::draft::{unless_default, Draft, DraftStep, Ids};
use super::graph::Graph;
use super::json::type_name;
use super::report::{Place, Report};
use super::{Converted, Ctx};
use crate::diag::Suggestions;
use crate::model::{Condition, RunSettings, StepKind};
use crate::source::Sources;
use std::collections::{BTreeMap, HashMap};

/// Genie waits this long between attempts when `retryintervalinseconds` is empty.
const GENIE_RETRY_INTERVAL_SECS: u64 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Id,
    Name,
    Pipeline,
    Dependencies,
    Type,
    Params,
    Timeout,
    Retry,
    RetryInterval,
    Active,
}

/// Column names (lower case) as the Genie schema and its metadata generator spell them.
const COLUMNS: &[(&str, Column)] = &[
    ("id", Column::Id),
    ("notebookid", Column::Id),
    ("name", Column::Name),
    ("notebookname", Column::Name),
    ("pipeline", Column::Pipeline),
    ("dependencies", Column::Dependencies),
    ("type", Column::Type),
    ("params", Column::Params),
    ("notebookparams", Column::Params),
    ("timeout", Column::Timeout),
    ("retry", Column::Retry),
    ("retryintervalinseconds", Column::RetryInterval),
    ("isactive", Column::Active),
];

struct Row {
    place: Place,
    id: String,
    /// The notebook, or for a sub-pipeline row the pipeline it runs.
    name: String,
    pipeline: String,
    is_pipeline: bool,
    dependencies: Vec<String>,
    params: serde_json::Map<String, serde_json::Value>,
    timeout_secs: Option<u64>,
    retry: u32,
    retry_interval_secs: u64,
    active: bool,
}

/// Imports a Genie metadata CSV. Files are named after the pipelines; `existing` is what the
/// output folder already holds.
pub fn import_genie(label: &str, text: &str, existing: &dyn Sources) -> Converted {
    let mut ctx = Ctx::new(existing);
    let (rows, columns) = read_rows(label, text, &mut ctx.report);
    // Pipelines in order of first appearance, each with its rows.
    let mut pipelines: Vec<(String, Vec<&Row>)> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for row in &rows {
        match position.get(row.pipeline.as_str()) {
            Some(&i) => pipelines[i].1.push(row),
            None => {
                position.insert(&row.pipeline, pipelines.len());
                pipelines.push((row.pipeline.clone(), vec![row]));
            }
        }
    }
    let mut files = Ids::default();
    let file_of: HashMap<&str, String> = pipelines
        .iter()
        .map(|(p, _)| (p.as_str(), format!("{}.toml", files.take(p))))
        .collect();
    let mut drafts = Vec::new();
    for (pipeline, rows) in &pipelines {
        drafts.push(convert(label, pipeline, rows, &columns, &file_of, &mut ctx));
    }
    if rows.is_empty() && !ctx.report.has_errors() {
        ctx.report.error(&Place::file(label), "has no rows");
    }
    ctx.finish(drafts)
}

/// The header: which column each field is, and how the file spells it.
#[derive(Default)]
struct Columns {
    of: Vec<Option<Column>>,
    names: Vec<String>,
}

impl Columns {
    /// The column's name as the file writes it (as the Genie schema does when it is absent).
    fn name(&self, col: Column) -> &str {
        match self.of.iter().position(|c| *c == Some(col)) {
            Some(i) => &self.names[i],
            None => COLUMNS
                .iter()
                .find(|(_, c)| *c == col)
                .map_or("", |(n, _)| n),
        }
    }

    /// The value of `col` in `rec`; empty cells and SQL NULLs exported as text are `None`.
    fn get<'r>(&self, rec: &'r csv::Record, col: Column) -> Option<&'r str> {
        let i = self.of.iter().position(|c| *c == Some(col))?;
        let v = rec.fields.get(i)?.trim();
        (!v.is_empty() && !v.eq_ignore_ascii_case("null")).then_some(v)
    }
}

fn read_rows(label: &str, text: &str, r: &mut Report) -> (Vec<Row>, Columns) {
    let none = || (Vec::new(), Columns::default());
    if text.len() > crate::model::MAX_METADATA_BYTES {
        r.error(
            &Place::file(label),
            format!(
                "the file is {} bytes, over the {} MiB limit",
                text.len(),
                crate::model::MAX_METADATA_BYTES / (1024 * 1024)
            ),
        );
        return none();
    }
    let records = match csv::parse(text) {
        Ok(recs) => recs,
        Err((line, why)) => {
            r.error(&Place::file(label).line(line), why);
            return none();
        }
    };
    let Some((header, body)) = records.split_first() else {
        r.error(&Place::file(label), "is empty");
        return none();
    };
    let columns = Columns {
        of: header
            .fields
            .iter()
            .map(|name| {
                let key = name.trim().to_ascii_lowercase();
                COLUMNS.iter().find(|(n, _)| *n == key).map(|(_, c)| *c)
            })
            .collect(),
        names: header.fields.iter().map(|n| n.trim().to_string()).collect(),
    };
    let missing: Vec<String> = [Column::Id, Column::Name, Column::Pipeline]
        .into_iter()
        .filter(|c| !columns.of.contains(&Some(*c)))
        .map(|c| format!("`{}`", columns.name(c)))
        .collect();
    if !missing.is_empty() {
        r.error(
            &Place::file(label).line(header.line),
            format!(
                "the header has no {} column; is the file comma-separated? (header: {})",
                missing.join(", "),
                header.fields.join(",")
            ),
        );
        return none();
    }
    for (name, col) in columns.names.iter().zip(&columns.of) {
        if col.is_none() {
            r.warning(
                &Place::file(label).field(name),
                "is not a Genie metadata column; ignored",
            );
        }
    }
    let rows = body
        .iter()
        .filter_map(|rec| read_row(label, rec, &columns, r))
        .collect();
    (rows, columns)
}

fn read_row(label: &str, rec: &csv::Record, cols: &Columns, r: &mut Report) -> Option<Row> {
    let file = Place::file(label).line(rec.line);
    let width = cols.names.len();
    if rec.fields.len() != width {
        r.error(
            &file,
            format!("has {} fields, the header has {width}", rec.fields.len()),
        );
        return None;
    }
    let get = |col: Column| cols.get(rec, col);
    let at = |place: &Place, col: Column| place.field(cols.name(col));
    let Some(id) = get(Column::Id) else {
        r.error(&at(&file, Column::Id), "is empty");
        return None;
    };
    let place = file.item(id);
    let name = get(Column::Name);
    let pipeline = get(Column::Pipeline);
    if name.is_none() {
        r.error(&at(&place, Column::Name), "is empty");
    }
    if pipeline.is_none() {
        r.error(&at(&place, Column::Pipeline), "is empty");
    }
    let is_pipeline = match get(Column::Type).map(str::to_ascii_lowercase).as_deref() {
        None | Some("notebook") => false,
        Some("pipeline") => true,
        Some(other) => {
            r.error(
                &at(&place, Column::Type),
                format!("is `{other}`; expected `notebook` or `pipeline`"),
            );
            false
        }
    };
    let dependencies = get(Column::Dependencies)
        .map(|d| {
            d.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let params = match get(Column::Params) {
        None => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(other) => {
                r.error(
                    &at(&place, Column::Params),
                    format!("must be a JSON object, found {}", type_name(&other)),
                );
                serde_json::Map::new()
            }
            Err(e) => {
                let hint = if text.contains('\'') {
                    " (single quotes: Genie passes params to json.loads, which needs double quotes)"
                } else {
                    ""
                };
                r.error(
                    &at(&place, Column::Params),
                    format!("is not valid JSON: {e}{hint}"),
                );
                serde_json::Map::new()
            }
        },
    };
    let number = |col: Column, r: &mut Report| -> Option<u64> {
        let v = get(col)?;
        match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                r.error(
                    &at(&place, col),
                    format!("`{v}` is not a whole number of zero or more"),
                );
                None
            }
        }
    };
    let retry = number(Column::Retry, r).unwrap_or(0);
    let retry = u32::try_from(retry).unwrap_or_else(|_| {
        r.error(&at(&place, Column::Retry), format!("{retry} is too large"));
        0
    });
    let retry_interval_secs = number(Column::RetryInterval, r).unwrap_or(GENIE_RETRY_INTERVAL_SECS);
    let timeout_secs = get(Column::Timeout).and_then(|t| {
        let parsed = match t.parse::<u64>() {
            Ok(0) => Err("a timeout must be at least one second".to_string()),
            Ok(secs) => Ok(secs),
            Err(_) => parse_timespan(t),
        };
        parsed
            .map_err(|why| r.error(&at(&place, Column::Timeout), why))
            .ok()
    });
    let active = match get(Column::Active).map(str::to_ascii_lowercase).as_deref() {
        Some("1" | "true" | "yes") => true,
        Some("0" | "false" | "no") => false,
        None => {
            r.warning(
                &at(&place, Column::Active),
                "is empty; Genie runs only rows with isActive = 1, so the step is inactive",
            );
            false
        }
        Some(other) => {
            r.error(
                &at(&place, Column::Active),
                format!("is `{other}`; expected true/false or 1/0"),
            );
            false
        }
    };
    Some(Row {
        place,
        id: id.to_string(),
        name: name?.to_string(),
        pipeline: pipeline?.to_string(),
        is_pipeline,
        dependencies,
        params,
        timeout_secs,
        retry,
        retry_interval_secs,
        active,
    })
}

fn convert(
    label: &str,
    pipeline: &str,
    rows: &[&Row],
    cols: &Columns,
    file_of: &HashMap<&str, String>,
    ctx: &mut Ctx,
) -> Draft {
    let mut draft = Draft {
        file: file_of[pipeline].clone(),
        header: vec![format!(
            "Imported from Genie metadata ({label}, pipeline `{pipeline}`) by `spool import genie`."
        )],
        name: pipeline.to_string(),
        description: None,
        max_concurrency: None,
        run_timeout_secs: None,
        default_retry_interval_secs: Some(GENIE_RETRY_INTERVAL_SECS),
        steps: Vec::new(),
    };
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        if let Some(&first) = index.get(row.id.as_str()) {
            ctx.report.error(
                &row.place.field(cols.name(Column::Id)),
                format!(
                    "is used twice in pipeline `{pipeline}` (also on line {})",
                    rows[first].place.line.unwrap_or(0)
                ),
            );
        } else {
            index.insert(&row.id, i);
        }
    }
    let mut g = Graph::new(rows.len());
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
    let mut suggestions = Suggestions::default();
    for (i, row) in rows.iter().enumerate() {
        for dep in &row.dependencies {
            match index.get(dep.as_str()) {
                Some(&j) => {
                    g.add(j, i, Condition::SUCCEEDED);
                    if !deps[i].contains(&j) {
                        deps[i].push(j);
                    }
                }
                None => {
                    let hint = suggestions.hint(dep, index.keys().copied());
                    ctx.report.warning(
                        &row.place.field(cols.name(Column::Dependencies)),
                        format!(
                            "`{dep}` is not a row of pipeline `{pipeline}`; Genie ignores it, \
                             and so does the import{hint}"
                        ),
                    );
                }
            }
        }
    }
    if let Some(cycle) = g.cycle() {
        let names: Vec<&str> = cycle.iter().map(|&i| rows[i].id.as_str()).collect();
        ctx.report.error(
            &rows[cycle[0]].place.field(cols.name(Column::Dependencies)),
            format!(
                "dependency cycle: {} (each depends on the next)",
                names.join(" -> ")
            ),
        );
        return draft;
    }
    let mut ids = Ids::default();
    let id_of: Vec<String> = rows.iter().map(|row| ids.take(&row.id)).collect();
    for (i, row) in rows.iter().enumerate() {
        ctx.renamed(&row.place, &id_of[i]);
        let mut step = if row.is_pipeline {
            if row.name == pipeline {
                ctx.report.error(
                    &row.place.field(cols.name(Column::Name)),
                    format!(
                        "runs pipeline `{pipeline}`, the pipeline this row belongs to: a \
                         pipeline cannot include itself"
                    ),
                );
                continue;
            }
            let Some(file) = file_of.get(row.name.as_str()) else {
                let hint = suggestions.hint(&row.name, file_of.keys().copied());
                ctx.report.error(
                    &row.place.field(cols.name(Column::Name)),
                    format!(
                        "runs pipeline `{}`, which has no rows in this file{hint}",
                        row.name
                    ),
                );
                continue;
            };
            let ignored: Vec<&str> = [
                (!row.params.is_empty(), "params"),
                (row.retry > 0, "retry"),
                (row.timeout_secs.is_some(), "timeout"),
            ]
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect();
            if !ignored.is_empty() {
                ctx.report.warning(
                    &row.place,
                    format!(
                        "{} set on a sub-pipeline row: Genie ignores them, and so does the import",
                        ignored.join(", ")
                    ),
                );
            }
            DraftStep::new(StepKind::Pipeline, id_of[i].clone(), file.clone())
        } else {
            let path = match ctx.notebook_file(&row.name) {
                Ok(p) => p,
                Err(why) => {
                    ctx.report
                        .error(&row.place.field(cols.name(Column::Name)), why);
                    continue;
                }
            };
            ctx.notebook_needed(&row.place, &path, &format!("Genie notebook `{}`", row.name));
            let mut step = DraftStep::new(StepKind::Notebook, id_of[i].clone(), path);
            step.retry = (row.retry > 0).then_some(row.retry);
            step.retry_interval_secs = (row.retry_interval_secs != GENIE_RETRY_INTERVAL_SECS)
                .then_some(row.retry_interval_secs);
            step.timeout_secs = row
                .timeout_secs
                .and_then(|t| unless_default(t, RunSettings::default().timeout_secs));
            step.add_json_params(&row.params, &mut ctx.report, |key| {
                row.place
                    .field(&format!("{}.{key}", cols.name(Column::Params)))
            });
            step
        };
        step.depends_on = deps[i]
            .iter()
            .map(|&j| (id_of[j].clone(), Condition::SUCCEEDED))
            .collect();
        step.active = row.active;
        if id_of[i] != row.id {
            step.comments.push(format!("Genie id \"{}\"", row.id));
        }
        draft.steps.push(step);
    }
    draft
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySources;

    const HEADER: &str = "id,name,dependencies,pipeline,type,isActive\n";

    fn errors(csv: &str) -> Vec<String> {
        let converted = import_genie("metadata.csv", csv, &MemorySources::default());
        if converted.report.has_errors() {
            assert!(converted.files.is_empty(), "nothing is written with errors");
        }
        converted
            .report
            .findings
            .iter()
            .filter(|f| f.level == super::super::report::Level::Error)
            .map(|f| f.to_string())
            .collect()
    }

    #[test]
    fn a_pipeline_that_runs_itself_is_refused() {
        let errs = errors(&format!(
            "{HEADER}a,nb_a,,daily,notebook,1\nagain,daily,a,daily,pipeline,1\n"
        ));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].contains("`again`"), "{}", errs[0]);
        assert!(errs[0].contains("cannot include itself"), "{}", errs[0]);
    }

    #[test]
    fn pipelines_that_run_each_other_are_refused() {
        let errs = errors(&format!(
            "{HEADER}a,nb_a,,one,notebook,1\nto_two,two,a,one,pipeline,1\n\
             b,nb_b,,two,notebook,1\nto_one,one,b,two,pipeline,1\n"
        ));
        assert!(!errs.is_empty());
        assert!(errs.iter().any(|e| e.contains("form a cycle")), "{errs:#?}");
    }
}
