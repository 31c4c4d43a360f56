//! `spool import` and `spool export`: the file handling around the pure converters in
//! `spool_core::import`.

use crate::fs_sources::DiskSources;
use anyhow::{bail, Context};
use spool_core::import::{
    add_notebooks, export_runmultiple, import_genie, import_runmultiple, import_synapse, Converted,
    Level, Report, Target, MAX_PROVIDED_NOTEBOOKS,
};
use spool_core::model::MAX_METADATA_BYTES;
use spool_core::notebook::MAX_NOTEBOOK_BYTES;
use spool_core::source::{MemorySources, Sources};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub kind: ImportKind,
}

#[derive(clap::Subcommand)]
pub enum ImportKind {
    /// Azure Synapse / Data Factory pipeline JSON (as in the workspace's git repository).
    Synapse {
        /// The pipeline to import, then any pipeline files its ExecutePipeline activities run
        /// (found by file name `<pipeline name>.json`; by default next to the first file).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The main pipeline file to write; sub-pipelines are written next to it.
        #[arg(short, long)]
        out: PathBuf,
        /// The workspace's notebook folder (`notebook/NAME.json` in Synapse's git repository):
        /// the notebooks the pipelines run are written as `notebooks/NAME.ipynb`. By default
        /// the `notebook` folder beside the first input's folder, when there is one.
        #[arg(long, value_name = "DIR")]
        notebooks: Option<PathBuf>,
        /// Overwrite files that exist.
        #[arg(long)]
        force: bool,
    },
    /// Genie's metadata table exported as CSV: one pipeline file per `pipeline` value.
    Genie {
        input: PathBuf,
        /// The folder to write the pipeline files into (`<pipeline>.toml`).
        #[arg(short, long)]
        out: PathBuf,
        /// Overwrite files that exist.
        #[arg(long)]
        force: bool,
    },
    /// The DAG JSON of `notebookutils.notebook.runMultiple`.
    #[command(name = "runmultiple")]
    RunMultiple {
        input: PathBuf,
        /// The pipeline file to write.
        #[arg(short, long)]
        out: PathBuf,
        /// Overwrite files that exist.
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub kind: ExportKind,
}

#[derive(clap::Subcommand)]
pub enum ExportKind {
    /// The DAG JSON of `notebookutils.notebook.runMultiple`, to run the pipeline natively.
    #[command(name = "runmultiple")]
    RunMultiple {
        /// The pipeline file (TOML).
        file: PathBuf,
        /// Where to write the JSON (standard output when left out).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// runMultiple's limit on the whole run (`timeoutInSeconds`) for a pipeline without a
        /// top-level `timeout_secs` of its own.
        #[arg(long, default_value_t = 12 * 3600, value_parser = clap::value_parser!(u64).range(1..=30 * 86_400))]
        timeout_secs: u64,
        /// Overwrite files that exist.
        #[arg(long)]
        force: bool,
    },
}

pub fn import(args: ImportArgs) -> anyhow::Result<u8> {
    match args.kind {
        ImportKind::Synapse {
            inputs,
            out,
            notebooks,
            force,
        } => {
            let (dir, main) = split_toml_path(&out)?;
            let existing = existing_files(&dir)?;
            let (root, rest) = inputs
                .split_first()
                .context("name the pipeline JSON to import")?;
            let pipelines = PipelineFiles::new(root, rest)?;
            let mut converted = import_synapse(
                &root.display().to_string(),
                &read_input(root)?,
                &pipelines,
                &Target {
                    main: &main,
                    existing: existing.as_ref(),
                },
            );
            let notebooks = notebooks.or_else(|| {
                let beside = root
                    .canonicalize()
                    .ok()?
                    .parent()?
                    .parent()?
                    .join("notebook");
                beside.is_dir().then_some(beside)
            });
            if let Some(folder) = notebooks {
                add_notebooks(&mut converted, &synapse_notebooks(&folder)?);
            }
            finish_import(converted, &dir, force)
        }
        ImportKind::Genie { input, out, force } => {
            let existing = existing_files(&out)?;
            let converted = import_genie(
                &input.display().to_string(),
                &read_input(&input)?,
                existing.as_ref(),
            );
            finish_import(converted, &out, force)
        }
        ImportKind::RunMultiple { input, out, force } => {
            let (dir, main) = split_toml_path(&out)?;
            let existing = existing_files(&dir)?;
            let converted = import_runmultiple(
                &input.display().to_string(),
                &read_input(&input)?,
                &Target {
                    main: &main,
                    existing: existing.as_ref(),
                },
            );
            finish_import(converted, &dir, force)
        }
    }
}

pub fn export(args: ExportArgs) -> anyhow::Result<u8> {
    let ExportKind::RunMultiple {
        file,
        out,
        timeout_secs,
        force,
    } = args.kind;
    let loaded = crate::plan_cmd::load_file(&file)?;
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    let Some(plan) = loaded.plan else {
        eprintln!("export failed: the pipeline has errors; nothing written");
        return Ok(1);
    };
    let exported = export_runmultiple(&file.display().to_string(), &plan, timeout_secs);
    print_report(&exported.report);
    match out {
        Some(path) => {
            refuse_overwrite(std::slice::from_ref(&path), force)?;
            std::fs::write(&path, &exported.json)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            eprintln!(
                "wrote {} ({} notebooks)",
                path.display(),
                exported.dag.activities.len()
            );
        }
        None => print!("{}", exported.json),
    }
    Ok(0)
}

/// Splits `OUT.toml` into its folder and file name.
fn split_toml_path(out: &Path) -> anyhow::Result<(PathBuf, String)> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.ends_with(".toml"))
        .with_context(|| format!("`{}` must name a .toml file", out.display()))?;
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_string()))
}

/// What the output folder holds already (nothing when it does not exist yet).
fn existing_files(dir: &Path) -> anyhow::Result<Box<dyn Sources>> {
    if dir.exists() {
        let sources = DiskSources::new(dir)
            .with_context(|| format!("cannot open folder `{}`", dir.display()))?;
        Ok(Box::new(sources))
    } else {
        Ok(Box::new(MemorySources::default()))
    }
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?
        .len();
    if len > MAX_METADATA_BYTES as u64 {
        bail!(
            "`{}` is {len} bytes, over the {} MiB limit",
            path.display(),
            MAX_METADATA_BYTES / (1024 * 1024)
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))
}

/// The `*.json` files of a Synapse notebook folder, by path, each within the notebook limit.
fn synapse_notebooks(folder: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(folder).with_context(|| format!("cannot list `{}`", folder.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            found.push(path);
        }
        if found.len() > MAX_PROVIDED_NOTEBOOKS {
            break;
        }
    }
    found.sort();
    found
        .into_iter()
        .map(|path| {
            let len = std::fs::metadata(&path)?.len();
            if len > MAX_NOTEBOOK_BYTES as u64 {
                bail!(
                    "`{}` is {len} bytes, over the notebook limit of {} MiB",
                    path.display(),
                    MAX_NOTEBOOK_BYTES / (1024 * 1024)
                );
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            Ok((path.display().to_string(), text))
        })
        .collect()
}

fn print_report(report: &Report) {
    eprint!("{}", report.render());
}

fn refuse_overwrite(paths: &[PathBuf], force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    let taken: Vec<String> = paths
        .iter()
        .filter(|p| p.exists())
        .map(|p| format!("`{}`", p.display()))
        .collect();
    if !taken.is_empty() {
        bail!(
            "{} already exist(s); pass --force to overwrite",
            taken.join(", ")
        );
    }
    Ok(())
}

/// Prints the report and, when it has no errors, writes the files into `dir`.
fn finish_import(converted: Converted, dir: &Path, force: bool) -> anyhow::Result<u8> {
    let report = &converted.report;
    print_report(report);
    if report.has_errors() {
        eprintln!(
            "import failed: {} error(s); nothing written",
            report.count(Level::Error)
        );
        return Ok(1);
    }
    let paths: Vec<PathBuf> = converted.files.iter().map(|f| dir.join(&f.path)).collect();
    refuse_overwrite(&paths, force)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    for (file, path) in converted.files.iter().zip(&paths) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        std::fs::write(path, &file.text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        println!("wrote {}", path.display());
    }
    let main = paths
        .first()
        .map_or(String::new(), |p| p.display().to_string());
    let next = match converted.notebooks_to_provide.len() {
        0 => format!("check it with `spool validate {main}`"),
        n => format!("provide the {n} notebook file(s) noted above, then `spool validate {main}`"),
    };
    eprintln!(
        "{} warning(s), {} note(s); {next}",
        report.count(Level::Warning),
        report.count(Level::Note),
    );
    Ok(0)
}

/// Pipeline files for `ExecutePipeline` activities, asked for as `<name>.json`: first the extra
/// inputs by file name, then the main input's folder.
struct PipelineFiles {
    given: BTreeMap<String, PathBuf>,
    folder: Option<DiskSources>,
}

impl PipelineFiles {
    fn new(root: &Path, extra: &[PathBuf]) -> anyhow::Result<Self> {
        let mut given = BTreeMap::new();
        for path in extra {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("`{}` is not a file name", path.display()))?;
            given.insert(name.to_string(), path.clone());
        }
        let folder = match root.parent() {
            Some(d) if !d.as_os_str().is_empty() => DiskSources::new(d).ok(),
            _ => DiskSources::new(Path::new(".")).ok(),
        };
        Ok(PipelineFiles { given, folder })
    }
}

impl Sources for PipelineFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        if let Some(p) = self.given.get(path) {
            return read_input(p).map_err(|e| format!("{e:#}"));
        }
        match &self.folder {
            Some(folder) => folder.read(path),
            None => Err("no such file".into()),
        }
    }

    fn exists(&self, path: &str) -> bool {
        self.given.contains_key(path) || self.folder.as_ref().is_some_and(|f| f.exists(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAG: &str = r#"{"activities": [
        {"name": "a", "path": "nb_a", "args": {"x": 1}},
        {"name": "b", "path": "nb_b", "dependencies": ["a"], "retry": 2}
    ], "concurrency": 3}"#;

    #[test]
    fn import_writes_files_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        std::fs::write(dir.join("dag.json"), DAG).unwrap();
        let run = |force| {
            import(ImportArgs {
                kind: ImportKind::RunMultiple {
                    input: dir.join("dag.json"),
                    out: dir.join("out/daily.toml"),
                    force,
                },
            })
        };
        assert_eq!(run(false).unwrap(), 0);
        let text = std::fs::read_to_string(dir.join("out/daily.toml")).unwrap();
        assert!(text.contains("path = \"notebooks/nb_b.ipynb\""), "{text}");
        let err = run(false).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(run(true).unwrap(), 0);
    }

    #[test]
    fn malformed_input_writes_nothing() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        std::fs::write(dir.join("dag.json"), r#"{"activities": [{"name": "a"}]}"#).unwrap();
        let code = import(ImportArgs {
            kind: ImportKind::RunMultiple {
                input: dir.join("dag.json"),
                out: dir.join("x.toml"),
                force: false,
            },
        })
        .unwrap();
        assert_eq!(code, 1);
        assert!(!dir.join("x.toml").exists());
    }

    #[test]
    fn export_reads_what_import_wrote() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        std::fs::write(dir.join("dag.json"), DAG).unwrap();
        std::fs::create_dir_all(dir.join("notebooks")).unwrap();
        for nb in ["nb_a", "nb_b"] {
            // A real (if tiny) notebook: import and export load the plan with its notebooks.
            let notebook = r#"{"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                "cells": [{"cell_type": "code", "metadata": {}, "source": ["x = 1"]}]}"#;
            std::fs::write(dir.join(format!("notebooks/{nb}.ipynb")), notebook).unwrap();
        }
        let imported = import(ImportArgs {
            kind: ImportKind::RunMultiple {
                input: dir.join("dag.json"),
                out: dir.join("p.toml"),
                force: false,
            },
        });
        assert_eq!(imported.unwrap(), 0);
        let code = export(ExportArgs {
            kind: ExportKind::RunMultiple {
                file: dir.join("p.toml"),
                out: Some(dir.join("back.json")),
                timeout_secs: 3600,
                force: false,
            },
        });
        assert_eq!(code.unwrap(), 0);
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("back.json")).unwrap()).unwrap();
        assert_eq!(back["concurrency"], 3);
        // The imported file's own run limit (runMultiple's default, written on import) wins
        // over `--timeout-secs`, which is for pipelines without one.
        assert_eq!(back["timeoutInSeconds"], 43_200);
        assert_eq!(back["activities"][1]["dependencies"][0], "a");
        assert_eq!(back["activities"][1]["retry"], 2);
    }
}
