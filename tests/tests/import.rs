//! Importers and the runMultiple exporter, data-driven: every case folder under
//! `tests/fixtures/import/<kind>/` and `tests/fixtures/export/runmultiple/` has an `input/`
//! folder and an `expected/` folder with the files written plus `report.txt`.
//! `SPOOL_BLESS=1 cargo test -p spool-tests --test import` rewrites the expected folders.
//!
//! Inputs by kind: `synapse`: `input/main.json` (the pipeline imported) and the pipelines it
//! runs as `input/<name>.json`; `genie`: `input/metadata.csv`; `runmultiple`:
//! `input/dag.json`; export: `input/main.toml` with its sub-pipelines and notebooks.

use spool_core::dag::{load, Plan};
use spool_core::import::{
    add_notebooks, export_runmultiple, import_genie, import_runmultiple, import_synapse, Converted,
    OutputFile, Report, RunMultipleDag, Target,
};
use spool_core::model::StepKind;
use spool_core::parse::parse_pipeline;
use spool_core::source::{MemorySources, Sources};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const MAIN: &str = "main.toml";

fn fixtures(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(sub)
}

fn cases(sub: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures(sub))
        .unwrap_or_else(|e| panic!("fixtures/{sub}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no cases under fixtures/{sub}");
    dirs
}

/// Every file under `dir`, by `/`-separated path relative to it.
fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let path = e.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                let rel = rel.to_string_lossy().replace('\\', "/");
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.insert(rel, text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Compares `actual` with the `expected/` folder of `case`, or rewrites it when blessing.
fn check_expected(case: &Path, actual: &BTreeMap<String, String>) {
    let dir = case.join("expected");
    // Only `1` blesses, as in core's fixtures: `SPOOL_BLESS=0` (or empty) compares.
    if std::env::var_os("SPOOL_BLESS").is_some_and(|v| v == "1") {
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in actual {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(&file, text).expect("write expected");
        }
        return;
    }
    let expected = read_tree(&dir);
    let name = case.display();
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>(),
        "{name}: files written (SPOOL_BLESS=1 to accept)"
    );
    for (path, text) in actual {
        assert_eq!(
            &expected[path], text,
            "{name}: {path} differs (SPOOL_BLESS=1 to accept)"
        );
    }
}

fn output_tree(converted: &Converted) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = converted
        .files
        .iter()
        .map(|f| (f.path.clone(), f.text.clone()))
        .collect();
    out.insert("report.txt".into(), converted.report.render());
    out
}

/// The written pipeline files (`.toml`; an import also writes the notebooks it was given).
fn pipeline_files(converted: &Converted) -> impl Iterator<Item = &OutputFile> {
    converted.files.iter().filter(|f| f.path.ends_with(".toml"))
}

/// The written files plus an empty file for every notebook they reference and the import did
/// not write, found by parsing the output independently of the importer.
fn with_notebooks(converted: &Converted) -> MemorySources {
    let mut sources = MemorySources::default();
    for f in &converted.files {
        sources = sources.with(&f.path, &f.text);
    }
    for f in pipeline_files(converted) {
        let (parsed, diags) = parse_pipeline(&f.path, &f.text);
        assert!(diags.is_empty(), "{}: {diags:?}", f.path);
        for step in parsed.expect("parsed").steps {
            if step.kind == StepKind::Notebook && !sources.exists(&step.path) {
                sources = sources.with(&step.path, "");
            }
        }
    }
    sources
}

/// Every written file that no other includes loads without diagnostics.
fn assert_validates(case: &Path, converted: &Converted) -> Vec<Plan> {
    let sources = with_notebooks(converted);
    let included: Vec<String> = pipeline_files(converted)
        .flat_map(|f| parse_pipeline(&f.path, &f.text).0.expect("parsed").steps)
        .filter(|s| s.kind == StepKind::Pipeline)
        .map(|s| s.path)
        .collect();
    let mut plans = Vec::new();
    for f in pipeline_files(converted).filter(|f| !included.contains(&f.path)) {
        let loaded = load(&f.path, &sources);
        assert!(
            loaded.diagnostics.is_empty(),
            "{}: {} does not validate: {:#?}",
            case.display(),
            f.path,
            loaded.diagnostics
        );
        plans.push(loaded.plan.expect("plan"));
    }
    plans
}

fn run_kind(kind: &str, convert: impl Fn(&BTreeMap<String, String>) -> Converted) {
    for case in cases(&format!("import/{kind}")) {
        let input = read_tree(&case.join("input"));
        let converted = convert(&input);
        if converted.report.has_errors() {
            assert!(
                converted.files.is_empty(),
                "{}: files written despite errors",
                case.display()
            );
        } else {
            assert_validates(&case, &converted);
        }
        check_expected(&case, &output_tree(&converted));
    }
}

fn input<'a>(files: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    files
        .get(name)
        .unwrap_or_else(|| panic!("input/{name} is missing"))
}

/// A case's `input/notebook/*.json` are Synapse notebook files given with the pipeline.
#[test]
fn synapse_fixtures() {
    run_kind("synapse", |files| {
        let pipelines = MemorySources(files.clone());
        let mut converted = import_synapse(
            "main.json",
            input(files, "main.json"),
            &pipelines,
            &Target {
                main: MAIN,
                existing: &MemorySources::default(),
            },
        );
        let notebooks: Vec<(String, String)> = files
            .iter()
            .filter(|(path, _)| path.starts_with("notebook/"))
            .map(|(path, text)| (path.clone(), text.clone()))
            .collect();
        if !notebooks.is_empty() {
            add_notebooks(&mut converted, &notebooks);
        }
        converted
    });
}

#[test]
fn genie_fixtures() {
    run_kind("genie", |files| {
        import_genie(
            "metadata.csv",
            input(files, "metadata.csv"),
            &MemorySources::default(),
        )
    });
}

#[test]
fn runmultiple_fixtures() {
    run_kind("runmultiple", |files| {
        import_runmultiple(
            "dag.json",
            input(files, "dag.json"),
            &Target {
                main: MAIN,
                existing: &MemorySources::default(),
            },
        )
    });
}

#[test]
fn export_fixtures() {
    for case in cases("export/runmultiple") {
        let sources = MemorySources(read_tree(&case.join("input")));
        let loaded = load(MAIN, &sources);
        assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
        let exported = export_runmultiple(MAIN, &loaded.plan.expect("plan"), 43_200);
        let mut actual = BTreeMap::new();
        actual.insert("dag.json".to_string(), exported.json);
        actual.insert("report.txt".to_string(), exported.report.render());
        check_expected(&case, &actual);
    }
}

fn parse_dag(label: &str, text: &str) -> RunMultipleDag {
    let mut report = Report::default();
    let dag = RunMultipleDag::parse(label, text, &mut report);
    assert!(!report.has_errors(), "{}", report.render());
    dag.expect("dag")
}

/// The DAG as runMultiple reads it: order of activities and of dependencies does not matter.
fn normalized(mut dag: RunMultipleDag) -> RunMultipleDag {
    dag.activities.sort_by(|a, b| a.name.cmp(&b.name));
    for a in &mut dag.activities {
        a.dependencies.sort();
    }
    dag
}

#[test]
fn runmultiple_round_trip_gives_the_same_dag() {
    let case = fixtures("import/runmultiple/full");
    let text = std::fs::read_to_string(case.join("input/dag.json")).expect("fixture");
    let original = parse_dag("dag.json", &text);
    let converted = import_runmultiple(
        "dag.json",
        &text,
        &Target {
            main: MAIN,
            existing: &MemorySources::default(),
        },
    );
    let plans = assert_validates(&case, &converted);
    let exported = export_runmultiple(
        MAIN,
        &plans[0],
        original.timeout_in_seconds.unwrap_or(43_200),
    );
    let back = parse_dag("exported", &exported.json);
    assert_eq!(normalized(back), normalized(original));
}

#[test]
fn export_then_import_keeps_a_flat_pipeline() {
    // Spool -> runMultiple -> Spool: the same notebooks, dependencies and settings.
    let case = fixtures("export/runmultiple/flat");
    let sources = MemorySources(read_tree(&case.join("input")));
    let plan = load(MAIN, &sources).plan.expect("fixture loads");
    let exported = export_runmultiple(MAIN, &plan, 43_200);
    let converted = import_runmultiple(
        "dag.json",
        &exported.json,
        &Target {
            main: MAIN,
            existing: &sources,
        },
    );
    assert!(
        !converted.report.has_errors(),
        "{}",
        converted.report.render()
    );
    let files = MemorySources(
        sources
            .0
            .clone()
            .into_iter()
            .chain(
                converted
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), f.text.clone())),
            )
            .collect(),
    );
    let again = load(MAIN, &files).plan.expect("re-imported pipeline loads");
    // One line per task: id, path, dependencies, settings and parameters.
    let shape = |p: &Plan| -> Vec<String> {
        p.tasks
            .iter()
            .enumerate()
            .map(|(t, task)| {
                let mut deps: Vec<String> = p.deps[t]
                    .iter()
                    .map(|&(d, c)| format!("{}:{}", p.tasks[d].id, c.name()))
                    .collect();
                deps.sort();
                format!(
                    "{} {} {deps:?} retry={} interval={} timeout={} params={}",
                    task.id,
                    task.path,
                    task.settings.retry,
                    task.settings.retry_interval_secs,
                    task.settings.timeout_secs,
                    serde_json::to_string(&task.params).expect("json"),
                )
            })
            .collect()
    };
    assert_eq!(shape(&again), shape(&plan));
    assert_eq!(
        again.pool.max_concurrency,
        Some(plan.pool.max_concurrency.unwrap_or(plan.pool.capacity()))
    );
    assert!(files.exists("notebooks/extract_orders.py"));
}

/// `spool import synapse` on a copy of Synapse's git layout (`pipeline/`, `notebook/`): the
/// notebooks the pipeline runs are written as `.ipynb` beside it without being named, and the
/// pipeline then validates with only the notebook that was not given missing.
#[test]
fn the_cli_imports_a_synapse_pipeline_with_its_notebooks() {
    let case = fixtures("import/synapse/with_notebooks/input");
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("pipeline")).unwrap();
    std::fs::copy(case.join("main.json"), repo.join("pipeline/main.json")).unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(case.join("notebook"))
        .arg(repo.join("notebook"))
        .status()
        .unwrap();
    assert!(copied.success());
    let out = tmp.path().join("out");
    let imported = spool_tests::spool()
        .args(["import", "synapse"])
        .arg(repo.join("pipeline/main.json"))
        .arg("-o")
        .arg(out.join("daily.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&imported.stderr);
    assert!(imported.status.success(), "{stderr}");
    assert!(
        stderr.contains("written as `notebooks/nb_load_sales.ipynb`"),
        "{stderr}"
    );
    let written = std::fs::read_to_string(out.join("notebooks/nb_load_sales.ipynb")).unwrap();
    assert!(written.contains("createOrReplaceTempView"), "{written}");
    assert!(!out.join("notebooks/nb_unused.ipynb").exists());
    let validated = spool_tests::spool()
        .args(["validate"])
        .arg(out.join("daily.toml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&validated.stdout).to_string()
        + &String::from_utf8_lossy(&validated.stderr);
    assert!(
        !validated.status.success(),
        "nb_report is still missing: {said}"
    );
    assert!(said.contains("nb_report"), "{said}");
    assert!(!said.contains("nb_load_sales"), "{said}");
}
