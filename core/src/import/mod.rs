//! Converting other tools' pipeline metadata into Spool pipeline files, and back: pure
//! functions from input text to output text plus a [`Report`] of everything that could not be
//! carried over. The CLI (`spool import`, `spool export`) and the web app's import dialog read
//! and write the files.
//!
//! Every importer follows the same steps: parse the input into typed items (malformed input
//! becomes error findings naming the item and the field), build the dependency [`graph`],
//! take out what Spool cannot run (bridging dependencies as the core bridges inactive steps),
//! write [`draft::Draft`]s, and check the result with [`crate::dag::load`] as `spool validate`
//! would, with the notebook files the user still has to provide stubbed.

mod adf;
mod csv;
mod draft;
mod genie;
mod graph;
mod json;
mod report;
mod runmultiple;
mod synapse;
mod synapse_notebook;

pub use genie::import_genie;
pub use report::{Finding, Level, Place, Report};
pub use runmultiple::{
    export_runmultiple, import_runmultiple, Exported, RunMultipleActivity, RunMultipleDag,
};
pub use synapse::import_synapse;
pub use synapse_notebook::{add_notebooks, synapse_notebook_to_ipynb, MAX_PROVIDED_NOTEBOOKS};

use crate::dag::load;
use crate::diag::Severity;
use crate::model::StepKind;
use crate::source::Sources;
use draft::Draft;
use std::collections::BTreeSet;

/// How the report says that a notebook file must be provided (an import given the notebook
/// takes the finding back).
fn must_be_provided(path: &str) -> String {
    format!("notebook file `{path}` must be provided")
}

/// A file an import writes, relative to the output folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutputFile {
    pub path: String,
    pub text: String,
}

/// The result of an import: the files to write (none when the report has errors; the main
/// pipeline first), the report, and the notebook files the pipelines reference that the output
/// folder does not hold yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Converted {
    pub files: Vec<OutputFile>,
    pub report: Report,
    pub notebooks_to_provide: Vec<String>,
}

/// Where an import writes.
pub struct Target<'a> {
    /// File name of the main pipeline in the output folder (`daily.toml`).
    pub main: &'a str,
    /// What the output folder already holds, relative to it: notebook files found there are
    /// not reported as missing.
    pub existing: &'a dyn Sources,
}

/// What every importer shares while it runs.
pub(crate) struct Ctx<'a> {
    pub report: Report,
    existing: &'a dyn Sources,
    noted_notebooks: BTreeSet<String>,
    /// Renamed items by input file, reported as one note per file.
    renames: Vec<(String, Vec<String>)>,
}

impl<'a> Ctx<'a> {
    pub fn new(existing: &'a dyn Sources) -> Self {
        Ctx {
            report: Report::default(),
            existing,
            noted_notebooks: BTreeSet::new(),
            renames: Vec::new(),
        }
    }

    /// The file for notebook `name` (see [`draft::notebook_path`]); without an extension, a
    /// `.py` or `.sql` file already in the output folder is preferred to a missing `.ipynb`.
    pub fn notebook_file(&self, name: &str) -> Result<String, String> {
        let path = draft::notebook_path(name)?;
        if self.existing.exists(&path) || !path.ends_with(".ipynb") || name.ends_with(".ipynb") {
            return Ok(path);
        }
        let base = &path[..path.len() - ".ipynb".len()];
        Ok([".py", ".sql"]
            .iter()
            .map(|ext| format!("{base}{ext}"))
            .find(|p| self.existing.exists(p))
            .unwrap_or(path))
    }

    /// Notes once per file that a referenced notebook must be provided, unless it exists.
    pub fn notebook_needed(&mut self, place: &Place, path: &str, what: &str) {
        if !self.existing.exists(path) && self.noted_notebooks.insert(path.to_string()) {
            self.report
                .note(place, format!("{} ({what})", must_be_provided(path)));
        }
    }

    /// Records that the item at `place` is written with `id`, when that is not its name.
    pub fn renamed(&mut self, place: &Place, id: &str) {
        let Some(name) = place.item.as_deref().filter(|n| *n != id) else {
            return;
        };
        let entry = format!("`{name}` -> `{id}`");
        match self.renames.iter_mut().find(|(f, _)| *f == place.file) {
            Some((_, list)) => list.push(entry),
            None => self.renames.push((place.file.clone(), vec![entry])),
        }
    }

    /// Renders the drafts and checks them as `spool validate` would. `drafts[0]` is the main
    /// file; every draft that no other one includes is checked as a root.
    pub fn finish(mut self, drafts: Vec<Draft>) -> Converted {
        for (file, list) in std::mem::take(&mut self.renames) {
            self.report.note(
                &Place::file(&file),
                format!(
                    "renamed to valid ids (letters, digits, `_`, `.`, `-`; each entry keeps \
                     the original name in a comment): {}",
                    list.join(", ")
                ),
            );
        }
        let files: Vec<OutputFile> = drafts
            .iter()
            .map(|d| OutputFile {
                path: d.file.clone(),
                text: d.to_toml(),
            })
            .collect();
        if !self.report.has_errors() {
            self.check(&drafts, &files);
        }
        let files = if self.report.has_errors() {
            Vec::new()
        } else {
            files
        };
        // Errors first, then warnings, then notes; each in the order found. With errors
        // nothing is written, so notes about the output would mislead.
        let failed = self.report.has_errors();
        self.report
            .findings
            .retain(|f| !(failed && f.level == report::Level::Note));
        self.report.findings.sort_by_key(|f| f.level);
        Converted {
            files,
            report: self.report,
            notebooks_to_provide: self.noted_notebooks.into_iter().collect(),
        }
    }

    fn check(&mut self, drafts: &[Draft], files: &[OutputFile]) {
        let included: BTreeSet<&str> = drafts
            .iter()
            .flat_map(|d| &d.steps)
            .filter(|s| s.kind == StepKind::Pipeline)
            .map(|s| s.path.as_str())
            .collect();
        let notebooks: BTreeSet<&str> = drafts
            .iter()
            .flat_map(|d| &d.steps)
            .filter(|s| s.kind == StepKind::Notebook)
            .map(|s| s.path.as_str())
            .collect();
        let world = Output {
            files,
            notebooks: &notebooks,
            existing: self.existing,
        };
        // Files that no other file includes are checked as roots, and so is any file they do
        // not reach: one included only from a cycle of files (a file including itself too).
        let mut roots: Vec<&str> = files
            .iter()
            .map(|f| f.path.as_str())
            .filter(|p| !included.contains(p))
            .collect();
        let reached = reachable(drafts, &roots);
        roots.extend(
            files
                .iter()
                .map(|f| f.path.as_str())
                .filter(|p| !reached.contains(p)),
        );
        let mut seen = BTreeSet::new();
        for root in roots {
            for d in load(root, &world).diagnostics {
                if d.severity == Severity::Error && seen.insert((d.file.clone(), d.message.clone()))
                {
                    let mut place = Place::file(&d.file);
                    if let Some(item) = &d.item {
                        place = place.item(item);
                    }
                    if let Some(key) = &d.key {
                        place = place.field(key);
                    }
                    self.report.error(
                        &place,
                        format!("the imported pipeline does not validate: {}", d.message),
                    );
                }
            }
        }
    }
}

/// The drafts' files reached from `roots` through `[[pipeline]]` entries, roots included.
fn reachable<'d>(drafts: &'d [Draft], roots: &[&'d str]) -> BTreeSet<&'d str> {
    let mut reached: BTreeSet<&str> = roots.iter().copied().collect();
    let mut todo: Vec<&str> = roots.to_vec();
    while let Some(file) = todo.pop() {
        let includes = drafts
            .iter()
            .filter(|d| d.file == file)
            .flat_map(|d| &d.steps)
            .filter(|s| s.kind == StepKind::Pipeline);
        for step in includes {
            if reached.insert(step.path.as_str()) {
                todo.push(&step.path);
            }
        }
    }
    reached
}

/// The output folder as it will be: the new files, what is there already, and every notebook
/// the files reference (those the user still has to provide count as present).
struct Output<'a> {
    files: &'a [OutputFile],
    notebooks: &'a BTreeSet<&'a str>,
    existing: &'a dyn Sources,
}

impl Sources for Output<'_> {
    fn read(&self, path: &str) -> Result<String, String> {
        match self.files.iter().find(|f| f.path == path) {
            Some(f) => Ok(f.text.clone()),
            None => self.existing.read(path),
        }
    }

    fn exists(&self, path: &str) -> bool {
        self.files.iter().any(|f| f.path == path)
            || self.notebooks.contains(path)
            || self.existing.exists(path)
    }
}

/// The stem of a file name (`daily.toml` -> `daily`).
pub(crate) fn stem(file: &str) -> &str {
    let name = file.rsplit('/').next().unwrap_or(file);
    name.rsplit_once('.').map_or(name, |(s, _)| s)
}
