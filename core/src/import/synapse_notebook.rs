//! Synapse's notebooks as the workspace's git repository stores them (`notebook/NAME.json`:
//! `{"name": …, "properties": {"nbformat": 4, "metadata": …, "cells": […]}}`) into the Jupyter
//! notebooks an imported pipeline runs (`notebooks/NAME.ipynb`).

use super::{Converted, OutputFile, Place};
use crate::diag::Severity;
use crate::notebook::{self, Format, MAX_NOTEBOOK_BYTES};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Notebooks given with one import, at most.
pub const MAX_PROVIDED_NOTEBOOKS: usize = 1000;

/// A Synapse notebook file: its `name` and the same notebook as `.ipynb` text. `Err` says why it
/// is not one.
pub fn synapse_notebook_to_ipynb(text: &str) -> Result<(String, String), String> {
    if text.len() > MAX_NOTEBOOK_BYTES {
        return Err(format!(
            "larger than the notebook limit of {} MiB",
            MAX_NOTEBOOK_BYTES / (1024 * 1024)
        ));
    }
    // serde_json bounds nesting (128 levels) itself.
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let name = root
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or("no `name`: not a Synapse notebook file")?
        .to_string();
    let props = root
        .get("properties")
        .and_then(Value::as_object)
        .ok_or("no `properties`: not a Synapse notebook file")?;
    let cells = props
        .get("cells")
        .and_then(Value::as_array)
        .ok_or("no `properties.cells`: not a Synapse notebook file")?;
    let mut ipynb = Map::new();
    ipynb.insert(
        "nbformat".into(),
        props.get("nbformat").cloned().unwrap_or(Value::from(4)),
    );
    ipynb.insert(
        "nbformat_minor".into(),
        props
            .get("nbformat_minor")
            .cloned()
            .unwrap_or(Value::from(2)),
    );
    ipynb.insert(
        "metadata".into(),
        props
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
    );
    ipynb.insert("cells".into(), Value::Array(cells.clone()));
    let out = serde_json::to_string_pretty(&Value::Object(ipynb))
        .map_err(|e| format!("cannot be written as a notebook: {e}"))?
        + "\n";
    check_notebook(&format!("{name}.ipynb"), &out, Format::Ipynb)?;
    Ok((name, out))
}

/// Adds to `converted` the notebooks it still needs that `provided` (file label, text) holds:
/// Synapse notebook JSON (`.json`), converted and matched by the notebook's `name` (else by its
/// file name), and notebook files (`.ipynb`, `.py`, `.sql`) matched by file name. Each must
/// read as a notebook; what is used, unused or unusable is reported.
pub fn add_notebooks(converted: &mut Converted, provided: &[(String, String)]) {
    if converted.report.has_errors() {
        return;
    }
    // Candidates by the file name they would be written as (`load.ipynb`): label and text.
    let mut by_name: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (label, text) in provided.iter().take(MAX_PROVIDED_NOTEBOOKS) {
        let file = file_name(label);
        let usable = match Format::from_path(file) {
            Some(format) => {
                check_notebook(file, text, format).map(|()| vec![(file.to_string(), text.clone())])
            }
            None if file.to_ascii_lowercase().ends_with(".json") => synapse_notebook_to_ipynb(text)
                .map(|(name, ipynb)| {
                    let stem = file.strip_suffix(".json").unwrap_or(file);
                    vec![
                        (format!("{name}.ipynb"), ipynb.clone()),
                        (format!("{stem}.ipynb"), ipynb),
                    ]
                }),
            None => Err("not a notebook file (.ipynb, .py, .sql, or Synapse's .json)".into()),
        };
        match usable {
            // A notebook's own name wins over another's file name.
            Ok(names) => {
                for (i, (name, text)) in names.into_iter().enumerate() {
                    if i == 0 {
                        by_name.insert(name, (label.clone(), text));
                    } else {
                        by_name.entry(name).or_insert((label.clone(), text));
                    }
                }
            }
            Err(why) => converted.report.warning(
                &Place::file(label),
                format!("not used as a notebook: {why}"),
            ),
        }
    }
    if let Some((label, _)) = provided.get(MAX_PROVIDED_NOTEBOOKS) {
        converted.report.warning(
            &Place::file(label),
            format!(
                "at most {MAX_PROVIDED_NOTEBOOKS} notebooks are read with one import; this one \
                 and the rest are not"
            ),
        );
    }
    let mut still_needed = Vec::new();
    let mut used = BTreeSet::new();
    for path in std::mem::take(&mut converted.notebooks_to_provide) {
        let found = path
            .strip_prefix("notebooks/")
            .and_then(|name| by_name.get(name))
            .filter(|(label, _)| !used.contains(label));
        let Some((label, text)) = found else {
            still_needed.push(path);
            continue;
        };
        let needed = super::must_be_provided(&path);
        converted
            .report
            .findings
            .retain(|f| !f.message.starts_with(&needed));
        converted
            .report
            .note(&Place::file(label), format!("written as `{path}`"));
        used.insert(label.clone());
        converted.files.push(OutputFile {
            path,
            text: text.clone(),
        });
    }
    let unused: BTreeSet<&String> = by_name
        .values()
        .map(|(label, _)| label)
        .filter(|label| !used.contains(*label))
        .collect();
    for label in unused {
        converted.report.note(
            &Place::file(label),
            "no imported pipeline runs this notebook; not written",
        );
    }
    converted.notebooks_to_provide = still_needed;
}

/// Why `text` does not read as a notebook of `format`, if it does not.
fn check_notebook(file: &str, text: &str, format: Format) -> Result<(), String> {
    let parsed = notebook::parse(file, text, format);
    match parsed
        .diagnostics
        .iter()
        .find(|d| d.severity == Severity::Error)
    {
        Some(d) => Err(format!("it does not read as a notebook: {}", d.message)),
        None => Ok(()),
    }
}

fn file_name(label: &str) -> &str {
    label.rsplit(['/', '\\']).next().unwrap_or(label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Report;
    use serde_json::json;

    fn synapse(name: &str) -> String {
        json!({
            "name": name,
            "properties": {
                "nbformat": 4,
                "nbformat_minor": 2,
                "bigDataPool": {"referenceName": "pool1", "type": "BigDataPoolReference"},
                "metadata": {"language_info": {"name": "python"}},
                "cells": [
                    {"cell_type": "code", "metadata": {"tags": ["parameters"]},
                     "source": ["run_date = '2024-06-30'\n"], "outputs": [], "execution_count": null},
                    {"cell_type": "code", "metadata": {},
                     "source": ["%%sql\n", "SELECT 1"], "outputs": [], "execution_count": null}
                ]
            }
        })
        .to_string()
    }

    #[test]
    fn a_synapse_notebook_becomes_the_same_cells_as_ipynb() {
        let (name, ipynb) = synapse_notebook_to_ipynb(&synapse("load_sales")).unwrap();
        assert_eq!(name, "load_sales");
        let parsed = notebook::parse("x.ipynb", &ipynb, Format::Ipynb);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        assert_eq!(parsed.cells.len(), 2);
        assert!(parsed.cells[0].parameters);
        assert_eq!(parsed.cells[1].source, "SELECT 1");
        let v: Value = serde_json::from_str(&ipynb).unwrap();
        assert!(v.get("bigDataPool").is_none() && v.get("properties").is_none());
    }

    #[test]
    fn what_is_not_a_synapse_notebook_says_why() {
        for (text, why) in [
            ("{", "not JSON"),
            ("{}", "no `name`"),
            (r#"{"name": "x"}"#, "no `properties`"),
            (
                r#"{"name": "x", "properties": {}}"#,
                "no `properties.cells`",
            ),
            (
                r#"{"name": "x", "properties": {"cells": [{"cell_type": 7}]}}"#,
                "does not read as a notebook",
            ),
        ] {
            let err = synapse_notebook_to_ipynb(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn provided_notebooks_fill_what_the_import_needs_and_the_rest_is_reported() {
        let mut converted = Converted {
            files: Vec::new(),
            report: Report::default(),
            notebooks_to_provide: vec![
                "notebooks/load_sales.ipynb".into(),
                "notebooks/renamed.ipynb".into(),
                "notebooks/missing.ipynb".into(),
                "notebooks/plain.py".into(),
            ],
        };
        for path in &converted.notebooks_to_provide {
            let needed = format!("{} (activity)", super::super::must_be_provided(path));
            converted.report.note(&Place::file("main.json"), needed);
        }
        let provided = vec![
            (
                "notebook/load_sales.json".to_string(),
                synapse("load_sales"),
            ),
            // Its file name matches though its JSON names it otherwise.
            (
                "notebook/renamed.json".to_string(),
                synapse("Renamed In Studio"),
            ),
            ("notebook/unused.json".to_string(), synapse("unused")),
            ("notebook/broken.json".to_string(), "{".to_string()),
            ("uploads/plain.py".to_string(), "x = 1\n".to_string()),
            (
                "uploads/bad.ipynb".to_string(),
                "{\"cells\": 7}".to_string(),
            ),
            ("uploads/notes.txt".to_string(), "hello".to_string()),
        ];
        add_notebooks(&mut converted, &provided);
        let written: Vec<&str> = converted.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            written,
            [
                "notebooks/load_sales.ipynb",
                "notebooks/renamed.ipynb",
                "notebooks/plain.py"
            ]
        );
        assert_eq!(
            converted.notebooks_to_provide,
            ["notebooks/missing.ipynb".to_string()]
        );
        let report = converted.report.render();
        assert!(
            !report.contains("`notebooks/load_sales.ipynb` must be provided"),
            "{report}"
        );
        assert!(
            report.contains("`notebooks/missing.ipynb` must be provided"),
            "{report}"
        );
        assert!(
            report.contains("notebook/broken.json: not used as a notebook: not JSON"),
            "{report}"
        );
        assert!(
            report.contains("notebook/unused.json: no imported pipeline runs this notebook"),
            "{report}"
        );
        assert!(report.contains("uploads/bad.ipynb: not used as a notebook: it does not read"));
        assert!(report.contains("uploads/notes.txt: not used as a notebook: not a notebook file"));
    }
}
