//! The web app in headless Chromium against `spool serve --token` on a copy of the example (no
//! Spark: `--livy` points at a closed port): sign in (a wrong token is refused, the right one
//! loads the pipelines, and the token stays out of the page's reach; a notebook that does not
//! parse is listed among the pipeline's problems before anything runs), then import a runMultiple
//! DAG in the Import dialog — not ready while a notebook it runs is missing, ready and saved once
//! that notebook is chosen with it — and check that both files are written and the pipeline
//! validates. Screenshots land in
//! `tests/artifacts/` (`sign-in.png`, `import.png`).

use spool_tests::webdriver::Browser;
use spool_tests::{root, spool, wait_for, Served};
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);
const TOKEN: &str = "s3cret";

/// A runMultiple DAG of two notebooks, the second waiting for the first.
fn dag(report_notebook: &str) -> String {
    serde_json::json!({ "activities": [
        { "name": "orders", "path": "load_orders", "args": {}, "dependencies": [] },
        { "name": "report", "path": report_notebook, "args": { "day": "2024-07-01" },
          "dependencies": ["orders"] }
    ]})
    .to_string()
}

#[test]
fn sign_in_then_import_a_runmultiple_dag_in_the_browser() {
    let artifacts = root().join("tests/artifacts");
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(
        tmp.path(),
        &["--token", TOKEN, "--livy", "http://127.0.0.1:9"],
    );
    let (base, pipelines) = (&served.base, &served.pipelines);
    // A notebook that no longer parses (a bad merge): the editor says so, as `spool validate`
    // and the start of a run do, instead of Spark finding out.
    std::fs::write(
        pipelines.join("notebooks/load_returns.ipynb"),
        "{ \"cells\": [ <<<<<<< HEAD",
    )
    .unwrap();

    let b = Browser::start();
    b.goto(base);

    // The first API call gets 401: the sign-in form appears.
    let token = b.find("#token-input", SHORT);
    b.type_text(&token, "wrong");
    b.click(&b.find("#sign-in-button", SHORT));
    let error = b.find("#sign-in-error", SHORT);
    assert!(b.text(&error).contains("wrong"), "{}", b.text(&error));
    b.screenshot(&artifacts.join("sign-in.png"));
    b.clear(&token);
    b.type_text(&token, TOKEN);
    b.click(&b.find("#sign-in-button", SHORT));
    let listed = wait_for("the pipeline list", SHORT, || {
        let options = b.find_all("#pipeline-select option");
        (options.len() >= 2).then(|| {
            options
                .iter()
                .filter_map(|o| b.attr(o, "value"))
                .collect::<Vec<_>>()
        })
    });
    assert!(
        listed.contains(&"daily_sales.toml".to_string()),
        "{listed:?}"
    );
    assert!(b.try_find("#token-input", Duration::ZERO).is_none());
    // The token lives only in the HttpOnly cookie.
    let page_state = b.script(
        "return [document.cookie, window.localStorage.length, window.sessionStorage.length];",
        serde_json::json!([]),
    );
    assert_eq!(page_state, serde_json::json!(["", 0, 0]));
    // The open pipeline's bundle tells the importer which notebooks the folder holds.
    b.find(r#"input.add-dep[data-id="load_returns"]"#, SHORT);
    // Every column says what its key means, from the reference's table (spool_core::keys).
    let helps: Vec<String> = b
        .find_all("table.steps th")
        .iter()
        .filter_map(|th| b.attr(th, "title"))
        .collect();
    assert!(
        helps
            .iter()
            .any(|h| h == "Pause between a failed attempt and the next. (integer ≥ 0; default: 30)"),
        "{helps:?}"
    );
    assert_eq!(helps.len(), 12, "{helps:?}");
    let problems = b.text(&b.find("#problems", SHORT));
    assert!(
        problems.contains("notebooks/load_returns.ipynb") && problems.contains("error"),
        "{problems}"
    );

    // Import: a DAG naming a notebook the folder lacks is converted, but the server refuses it.
    b.click(&b.find("#import-button", SHORT));
    b.find("#import-dialog", SHORT);
    b.click(&b.find(r#"#import-kind option[value="runmultiple"]"#, SHORT));
    let text = b.find("#import-text", SHORT);
    b.type_text(&text, &dag("no_such_report"));
    let target = b.find("#import-target", SHORT);
    b.clear(&target);
    b.type_text(&target, "orders_dag.toml\u{E007}");
    let file = b.find(r#".import-file[data-file="orders_dag.toml"] pre"#, SHORT);
    let preview = b.text(&file);
    assert!(
        preview.contains(r#"path = "notebooks/load_orders.py""#),
        "the existing .py notebook is used: {preview}"
    );
    assert!(preview.contains(r#"depends_on = ["orders"]"#), "{preview}");
    let missing = b.find("#import-notebooks", SHORT);
    assert!(
        b.text(&missing).contains("notebooks/no_such_report.ipynb"),
        "{}",
        b.text(&missing)
    );
    let report = b.text(&b.find("#import-report", SHORT));
    assert!(
        report.contains("Not ready: 1 notebook file(s) missing"),
        "{report}"
    );
    // Saving would fail (the server refuses a pipeline whose notebook is missing): it is off.
    let disabled = b.script(
        "return document.querySelector('#import-save').disabled;",
        serde_json::json!([]),
    );
    assert_eq!(disabled, serde_json::json!(true));

    // The notebook chosen with the files: it joins the input, is written first, as a new file.
    let upload = tmp.path().join("no_such_report.ipynb");
    std::fs::write(
        &upload,
        r#"{"cells": [{"cell_type": "code", "metadata": {}, "source": ["print(day)"], "outputs": [], "execution_count": null}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#,
    )
    .unwrap();
    b.type_text(
        &b.find("#import-files", SHORT),
        &upload.display().to_string(),
    );
    wait_for("the notebook in the preview", SHORT, || {
        b.try_find(
            r#".import-file[data-file="notebooks/no_such_report.ipynb"]"#,
            Duration::ZERO,
        )
    });
    assert!(b.try_find("#import-notebooks", Duration::ZERO).is_none());
    let report = b.text(&b.find("#import-report", SHORT));
    assert!(report.contains("Ready to save."), "{report}");
    b.screenshot(&artifacts.join("import.png"));
    b.click(&b.find("#import-save", SHORT));
    // Another pipeline is open: switching to the imported one is asked first.
    let asked = wait_for("the question to open it", SHORT, || b.dialog());
    assert!(asked.contains("orders_dag.toml"), "{asked}");
    b.accept_dialog();
    wait_for("the imported pipeline in the editor", SHORT, || {
        let hash = b.script("return window.location.hash;", serde_json::json!([]));
        (hash == "#/pipelines/orders_dag.toml/editor"
            && b.try_find("#import-dialog", Duration::ZERO).is_none())
        .then_some(())
    });
    b.find(r#"input.add-dep[data-id="report"]"#, SHORT);
    let notebook =
        std::fs::read_to_string(pipelines.join("notebooks/no_such_report.ipynb")).unwrap();
    assert!(notebook.contains("print(day)"), "{notebook}");
    let written = std::fs::read_to_string(pipelines.join("orders_dag.toml")).unwrap();
    assert!(written.contains(r#"depends_on = ["orders"]"#), "{written}");
    let validate = spool()
        .arg("validate")
        .arg(pipelines.join("orders_dag.toml"))
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "spool validate: {}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );

    drop(b);
}
