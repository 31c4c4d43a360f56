//! The import dialog's model: what the user chose (format, input files or pasted text, where
//! to write) and what `spool_core::import` makes of it, recomputed here in the browser on every
//! change — the same pure converters as `spool import`. Nothing here calls the browser, so it
//! is tested natively through the reducer.

use crate::api::Failure;
use crate::wire::{PipelineSummary, WireDiagnostic};
use spool_core::import::{
    add_notebooks, import_genie, import_runmultiple, import_synapse, synapse_notebook_to_ipynb,
    Converted, OutputFile, Report, Target,
};
use spool_core::model::{StepKind, MAX_METADATA_BYTES};
use spool_core::notebook::Format;
use spool_core::parse::parse_pipeline;
use spool_core::source::{parent, resolve, MemorySources, Sources};
use std::rc::Rc;

/// Input files read at once (the Synapse importer writes at most this many files).
pub const MAX_INPUT_FILES: usize = 256;
/// An input file's size limit: the converters refuse larger ones too.
pub const MAX_INPUT_BYTES: usize = MAX_METADATA_BYTES;
/// The name the report gives text pasted into the dialog.
pub const PASTED: &str = "pasted text";
/// The main file's name when the input has none to derive it from.
const DEFAULT_STEM: &str = "imported";
/// `name_2.toml`, `name_3.toml`, …: tried up to this suffix to avoid an existing file.
const MAX_NAME_SUFFIX: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportKind {
    #[default]
    Synapse,
    Genie,
    RunMultiple,
}

impl ImportKind {
    pub const ALL: [ImportKind; 3] = [
        ImportKind::Synapse,
        ImportKind::Genie,
        ImportKind::RunMultiple,
    ];

    /// As `spool import` names it (and the `<select>` value).
    pub fn name(self) -> &'static str {
        match self {
            ImportKind::Synapse => "synapse",
            ImportKind::Genie => "genie",
            ImportKind::RunMultiple => "runmultiple",
        }
    }

    pub fn parse(name: &str) -> Option<ImportKind> {
        ImportKind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn label(self) -> &'static str {
        match self {
            ImportKind::Synapse => "Azure Synapse / Data Factory pipeline JSON",
            ImportKind::Genie => "Genie metadata CSV",
            ImportKind::RunMultiple => "runMultiple DAG JSON",
        }
    }

    /// Genie writes one file per pipeline it finds, so its target is a folder.
    pub fn target_is_folder(self) -> bool {
        self == ImportKind::Genie
    }
}

/// One input: a chosen file, or the text typed or pasted into the dialog.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Input {
    /// The file name (`pl_daily.json`), or [`PASTED`]; the report names the input by it.
    pub name: String,
    pub text: Rc<str>,
}

/// A file the import writes, placed in the pipelines folder.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFile {
    /// Relative to the pipelines folder, as `PUT /api/pipelines/{file}` takes it.
    pub path: String,
    pub text: Rc<str>,
    /// A pipeline of that name is listed already: saving overwrites it.
    pub replaces: bool,
    /// A notebook given with the input (saved as a new file, never over an existing one).
    pub notebook: bool,
}

/// What the converter made of the form.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub report: Report,
    /// In the converter's order: the main pipeline first. Empty when the report has errors.
    pub files: Vec<PlannedFile>,
    /// Indexes into `files`: the notebooks first, then every pipeline after the files it
    /// includes, so that the server, which checks each file as it is written, finds its
    /// notebooks and sub-pipelines already there.
    pub save_order: Vec<usize>,
    /// Relative to the pipelines folder.
    pub notebooks_to_provide: Vec<String>,
}

impl Preview {
    /// The pipeline to open once everything is written.
    pub fn main(&self) -> Option<&str> {
        self.files.first().map(|f| f.path.as_str())
    }

    /// Saving would succeed: no errors, and every notebook the pipelines run is there or given
    /// (the server refuses a pipeline whose notebooks are missing).
    pub fn ready(&self) -> bool {
        !self.files.is_empty() && !self.report.has_errors() && self.notebooks_to_provide.is_empty()
    }
}

/// A chosen file that is a notebook rather than metadata to convert: `.ipynb`, `.py`, `.sql`,
/// or Synapse's notebook JSON.
pub fn is_notebook_input(input: &Input) -> bool {
    Format::from_path(&input.name).is_some()
        || (input.name.to_ascii_lowercase().ends_with(".json")
            && synapse_notebook_to_ipynb(&input.text).is_ok())
}

/// Why the chosen files were not read, or why saving stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportProblem {
    pub message: String,
    /// The server's diagnostics of the refused file.
    pub diagnostics: Vec<WireDiagnostic>,
    /// Files written before it.
    pub written: Vec<String>,
}

impl ImportProblem {
    pub fn not_saved(file: &str, failure: Failure, written: Vec<String>) -> ImportProblem {
        let (message, diagnostics) = match failure {
            Failure::SignIn => ("sign in, then save again".to_string(), Vec::new()),
            Failure::Transport(m) | Failure::Stale(m) => (m, Vec::new()),
            Failure::Refused {
                message,
                diagnostics,
            } => (message, diagnostics),
        };
        ImportProblem {
            message: format!("`{file}` was not saved: {message}"),
            diagnostics,
            written,
        }
    }

    /// Chosen files that could not be read.
    pub fn unreadable(why: String) -> ImportProblem {
        ImportProblem {
            message: why,
            diagnostics: Vec::new(),
            written: Vec::new(),
        }
    }
}

/// The dialog while it is open.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportForm {
    pub kind: ImportKind,
    /// The input converted: the first chosen file or the pasted text, editable in the dialog.
    pub main: Input,
    /// Synapse: the pipelines the main one runs, found by file name (`pl_load.json`).
    pub others: Vec<Input>,
    /// Notebooks to write with the pipelines (see [`is_notebook_input`]).
    pub notebooks: Vec<Input>,
    /// The main file (a folder for Genie) as the user typed it; `None` follows the input.
    pub typed_target: Option<String>,
    /// The target in use: typed, or derived from the input.
    pub target: String,
    /// Why the target cannot be used.
    pub target_error: Option<String>,
    /// `None` while there is nothing to convert.
    pub preview: Option<Rc<Preview>>,
    pub saving: bool,
    /// A file could not be read, or the server refused one.
    pub problem: Option<ImportProblem>,
}

/// What the app knows of the pipelines folder, seen from `folder`: the listed pipelines and
/// the open pipeline's bundle, which holds every pipeline file and notebook of the folder as it
/// was when the pipeline was opened.
pub struct Known<'a> {
    pub folder: &'a str,
    pub files: Option<&'a MemorySources>,
    pub listed: &'a [PipelineSummary],
}

impl Known<'_> {
    fn in_pipelines_folder(&self, path: &str) -> Result<String, String> {
        resolve(self.folder, path)
            .map_err(|_| format!("`{path}` is not inside the pipelines folder"))
    }
}

impl Sources for Known<'_> {
    fn read(&self, path: &str) -> Result<String, String> {
        let path = self.in_pipelines_folder(path)?;
        match self.files {
            Some(files) => files.read(&path),
            None => Err("not loaded in the browser".into()),
        }
    }

    fn exists(&self, path: &str) -> bool {
        self.in_pipelines_folder(path).is_ok_and(|p| {
            self.files.is_some_and(|f| f.exists(&p)) || self.listed.iter().any(|l| l.file == p)
        })
    }
}

/// `folder/name`, or `name` in the pipelines folder itself.
fn join(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_string()
    } else {
        format!("{folder}/{name}")
    }
}

/// A file name made of the characters every file system and URL keeps.
fn safe_stem(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.trim_matches(['_', '.']).is_empty() {
        DEFAULT_STEM.to_string()
    } else {
        safe
    }
}

impl ImportForm {
    /// A typed target names a file or a folder, as the kind wants; it is dropped when the
    /// other is wanted now.
    pub fn set_kind(&mut self, kind: ImportKind) {
        if kind.target_is_folder() != self.kind.target_is_folder() {
            self.typed_target = None;
        }
        self.kind = kind;
    }

    /// Files chosen: notebooks among them replace the notebooks given so far; of the others, the
    /// first is converted and the rest are the pipelines it runs (none: the input stays).
    pub fn choose(&mut self, inputs: Vec<Input>) {
        let (notebooks, mut metadata): (Vec<Input>, Vec<Input>) =
            inputs.into_iter().partition(is_notebook_input);
        if !notebooks.is_empty() {
            self.notebooks = notebooks;
        }
        if metadata.is_empty() {
            return;
        }
        self.main = metadata.remove(0);
        self.others = metadata;
    }

    /// The main input's text, edited or pasted. Emptied, the dialog starts over.
    pub fn set_text(&mut self, text: String) {
        if text.trim().is_empty() {
            self.main = Input::default();
            self.others.clear();
            self.notebooks.clear();
            return;
        }
        if self.main.name.is_empty() {
            self.main.name = PASTED.into();
        }
        self.main.text = Rc::from(text);
    }

    /// The target the input suggests: its file name as `.toml`, not clashing with a listed
    /// pipeline; for Genie, the pipelines folder itself.
    fn default_target(&self, listed: &[PipelineSummary]) -> String {
        if self.kind.target_is_folder() {
            return String::new();
        }
        let stem = if self.main.name == PASTED || self.main.name.is_empty() {
            DEFAULT_STEM.to_string()
        } else {
            safe_stem(&self.main.name)
        };
        let taken = |f: &str| listed.iter().any(|p| p.file == f);
        (1..=MAX_NAME_SUFFIX)
            .map(|n| match n {
                1 => format!("{stem}.toml"),
                n => format!("{stem}_{n}.toml"),
            })
            .find(|f| !taken(f))
            .unwrap_or_else(|| format!("{stem}.toml"))
    }

    /// The target, read: the output folder and, except for Genie, the main file's name.
    fn read_target(&self) -> Result<(String, String), String> {
        let t = self.target.trim();
        if self.kind.target_is_folder() {
            if t.is_empty() {
                return Ok((String::new(), String::new()));
            }
            return resolve("", t)
                .map(|folder| (folder, String::new()))
                .map_err(|_| {
                    "a folder inside the pipelines folder (empty: the folder itself)".into()
                });
        }
        match resolve("", t) {
            Ok(path) if path.ends_with(".toml") && path.len() > ".toml".len() => {
                let name = path.rsplit('/').next().unwrap_or(&path).to_string();
                Ok((parent(&path).to_string(), name))
            }
            _ => Err("a `.toml` file name inside the pipelines folder, like `daily.toml`".into()),
        }
    }

    /// Recomputes the target and the preview after a change to the form.
    pub fn refresh(&mut self, files: Option<&MemorySources>, listed: &[PipelineSummary]) {
        self.target = match &self.typed_target {
            Some(t) => t.clone(),
            None => self.default_target(listed),
        };
        self.problem = None;
        let (folder, main) = match self.read_target() {
            Ok(t) => {
                self.target_error = None;
                t
            }
            Err(why) => {
                self.target_error = Some(why);
                self.preview = None;
                return;
            }
        };
        if self.main.text.trim().is_empty() {
            self.preview = None;
            return;
        }
        let existing = Known {
            folder: &folder,
            files,
            listed,
        };
        let target = Target {
            main: &main,
            existing: &existing,
        };
        let mut converted = match self.kind {
            ImportKind::Synapse => {
                let others = MemorySources(
                    self.others
                        .iter()
                        .map(|i| (i.name.clone(), i.text.to_string()))
                        .collect(),
                );
                import_synapse(&self.main.name, &self.main.text, &others, &target)
            }
            ImportKind::Genie => import_genie(&self.main.name, &self.main.text, &existing),
            ImportKind::RunMultiple => {
                import_runmultiple(&self.main.name, &self.main.text, &target)
            }
        };
        if !self.notebooks.is_empty() {
            let given: Vec<(String, String)> = self
                .notebooks
                .iter()
                .map(|i| (i.name.clone(), i.text.to_string()))
                .collect();
            add_notebooks(&mut converted, &given);
        }
        self.preview = Some(Rc::new(place(converted, &folder, listed)));
    }
}

/// The converter's output, placed in the pipelines folder.
fn place(converted: Converted, folder: &str, listed: &[PipelineSummary]) -> Preview {
    let notebook = |f: &OutputFile| !f.path.ends_with(".toml");
    let mut save_order: Vec<usize> = (0..converted.files.len())
        .filter(|&i| notebook(&converted.files[i]))
        .collect();
    save_order.extend(
        self::save_order(&converted.files)
            .into_iter()
            .filter(|&i| !notebook(&converted.files[i])),
    );
    let files = converted
        .files
        .into_iter()
        .map(|f| {
            let path = join(folder, &f.path);
            PlannedFile {
                replaces: listed.iter().any(|p| p.file == path),
                notebook: notebook(&f),
                path,
                text: Rc::from(f.text),
            }
        })
        .collect();
    Preview {
        report: converted.report,
        files,
        save_order,
        notebooks_to_provide: converted
            .notebooks_to_provide
            .iter()
            .map(|n| join(folder, n))
            .collect(),
    }
}

/// Every file after the files among `files` it includes as sub-pipelines (depth first, in the
/// converter's order otherwise). The converters write no cycles; one would be cut.
fn save_order(files: &[OutputFile]) -> Vec<usize> {
    let includes: Vec<Vec<usize>> = files
        .iter()
        .map(|f| {
            let (parsed, _) = parse_pipeline(&f.path, &f.text);
            parsed
                .map(|p| p.steps)
                .unwrap_or_default()
                .iter()
                .filter(|s| s.kind == StepKind::Pipeline)
                .filter_map(|s| resolve(parent(&f.path), &s.path).ok())
                .filter_map(|p| files.iter().position(|g| g.path == p))
                .collect()
        })
        .collect();
    let mut order = Vec::with_capacity(files.len());
    let mut visited = vec![false; files.len()];
    // An explicit stack: (file, whether its includes are already queued).
    for root in 0..files.len() {
        let mut stack = vec![(root, false)];
        while let Some((i, expanded)) = stack.pop() {
            if expanded {
                order.push(i);
                continue;
            }
            if visited[i] {
                continue;
            }
            visited[i] = true;
            stack.push((i, true));
            stack.extend(includes[i].iter().rev().map(|&j| (j, false)));
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, includes: &[&str]) -> OutputFile {
        let mut text = format!("name = \"{}\"\n", path.trim_end_matches(".toml"));
        for (n, inc) in includes.iter().enumerate() {
            text += &format!("[[pipeline]]\nid = \"p{n}\"\npath = \"{inc}\"\n");
        }
        OutputFile {
            path: path.into(),
            text,
        }
    }

    #[test]
    fn included_files_are_saved_before_the_files_that_include_them() {
        // main includes a and b; a includes c (in a sub-folder, written relative to a).
        let files = [
            file("main.toml", &["a.toml", "b.toml"]),
            file("b.toml", &[]),
            file("a.toml", &["sub/c.toml"]),
            file("sub/c.toml", &[]),
        ];
        let order: Vec<&str> = save_order(&files)
            .into_iter()
            .map(|i| files[i].path.as_str())
            .collect();
        assert_eq!(order, ["sub/c.toml", "a.toml", "b.toml", "main.toml"]);
    }

    #[test]
    fn derived_file_names_keep_to_safe_characters() {
        for (input, stem) in [
            ("pl_daily sales.json", "pl_daily_sales"),
            ("dir/dag.v2.json", "dag.v2"),
            ("ünïcode.csv", "_n_code"),
            ("...", DEFAULT_STEM),
        ] {
            assert_eq!(safe_stem(input), stem, "{input}");
        }
    }
}
