//! Runs from the browser on real local PySpark (`spool livy-local`), in headless Chromium: a
//! pipeline parameter edited in the editor's `[params]` table, saved and run, reaches the
//! notebooks (their recorded parameters and the values they publish, shown per notebook in the
//! run's table); and a repair picked on a finished run's graph re-runs exactly the picked
//! notebook and what depends on it, keeping the others. Without Spark (the run written into the
//! history): a failed run says what resuming it keeps and runs again before it is resumed.

use spool_tests::history::{example_plan, write_run_with_outcomes};
use spool_tests::webdriver::{Browser, Element};
use spool_tests::{root, save_and_read, wait_for, LocalLivy, Served};
use std::path::Path;
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);
/// A run of four small notebooks on local Spark, session start included, on a busy machine.
const RUN: Duration = Duration::from_secs(300);

/// `list_tables -> count_rows -> report`, and `side` on its own; `count_rows` publishes the
/// day before the pipeline's `run_date` as `day`.
const PIPELINE: &str = r#"name = "webrepair"

[pool]
executors = 1
executor_cores = 2

[defaults]
retry = 0
estimate_secs = 2

[params]
run_date = 2024-06-30

[[notebook]]
id = "list_tables"
path = "nb/list_tables.py"

[[notebook]]
id = "count_rows"
path = "nb/count_rows.py"
depends_on = ["list_tables"]
params = { tables = "{{ tasks.list_tables.value }}", day = "{{ params.run_date | add_days(-1) }}" }

[[notebook]]
id = "report"
path = "nb/report.py"
depends_on = ["count_rows"]
params = { rows = "{{ tasks.count_rows.values.row_count }}", title = "{{ tasks.count_rows.values.day }}: {{ tasks.count_rows.values.row_count }} rows" }

[[notebook]]
id = "side"
path = "nb/ok.py"
"#;

/// Serves a copy of the examples plus the pipeline above (with the run fixtures' notebooks),
/// running on a local Livy; returns the pipeline file's path.
fn serve(dir: &Path) -> (LocalLivy, Served, std::path::PathBuf) {
    let livy = LocalLivy::start(&dir.join("livy"));
    let served = Served::start(dir, &["--livy", &livy.url]);
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(root().join("tests/fixtures/runs/nb"))
        .arg(served.pipelines.join("nb"))
        .status()
        .expect("cp");
    assert!(copied.success(), "copy the notebooks");
    let file = served.pipelines.join("webrepair.toml");
    std::fs::write(&file, PIPELINE).unwrap();
    (livy, served, file)
}

/// Clicks Run in the Runs tab and waits for the run to finish; its id.
fn run_and_wait(b: &Browser) -> String {
    b.click(&b.find("#tab-runs", SHORT));
    let before = b
        .try_find("#run-detail", Duration::ZERO)
        .and_then(|d| b.attr(&d, "data-id"));
    b.click(&b.find("#run-button", SHORT));
    wait_for_new_run(b, before.as_deref())
}

/// Waits until the run shown is another than `before` and has finished: its id (it must have
/// succeeded).
fn wait_for_new_run(b: &Browser, before: Option<&str>) -> String {
    let (id, status) = wait_for("the run to finish", RUN, || {
        let d = b.try_find("#run-detail", Duration::ZERO)?;
        let id = b.attr(&d, "data-id")?;
        let status = b.attr(&d, "data-status")?;
        (Some(id.as_str()) != before && !matches!(status.as_str(), "running" | "queued"))
            .then_some((id, status))
    });
    assert_eq!(status, "succeeded", "run {id}");
    id
}

/// Scrolls the run's table of notebooks into view (for a screenshot).
fn show_table(b: &Browser) {
    b.script(
        "document.getElementById('run-tasks').scrollIntoView({block: 'end'});",
        serde_json::json!([]),
    );
}

fn row(b: &Browser, task: &str) -> Element {
    b.find(
        &format!(r#"#run-tasks tr.task-row[data-id="{task}"]"#),
        SHORT,
    )
}

fn row_attr(b: &Browser, task: &str, name: &str) -> String {
    b.attr(&row(b, task), name).unwrap_or_default()
}

fn values_of(b: &Browser, task: &str) -> String {
    b.text(&b.find(
        &format!(r#"#run-tasks tr.task-row[data-id="{task}"] td.task-values"#),
        SHORT,
    ))
}

#[test]
fn a_pipeline_parameter_edited_in_the_browser_reaches_the_notebooks_of_the_run() {
    let artifacts = root().join("tests/artifacts");
    let tmp = tempfile::tempdir().unwrap();
    let (_livy, served, file) = serve(tmp.path());
    let original = std::fs::read_to_string(&file).unwrap();

    let b = Browser::start();
    b.open_fresh(&format!("{}#/pipelines/webrepair.toml/editor", served.base));
    b.wait_for_tab("tab-pipeline", SHORT);
    let date = b.find(
        r#".pipeline-params .param-row[data-param="run_date"] input[data-field="params.run_date.value"]"#,
        SHORT,
    );
    assert_eq!(b.property(&date, "value").as_deref(), Some("2024-06-30"));
    b.commit(&date, "2024-07-15");
    let saved = save_and_read(&b, &file, &original);
    assert_eq!(
        saved,
        original.replace("run_date = 2024-06-30", "run_date = 2024-07-15"),
        "only the value changed, still a TOML date"
    );

    let id = run_and_wait(&b);
    // Each notebook's published values, in the run's table: the day before the edited date.
    wait_for("count_rows's values", SHORT, || {
        values_of(&b, "count_rows")
            .contains(r#"day = "2024-07-14""#)
            .then_some(())
    });
    let counted = values_of(&b, "count_rows");
    assert!(counted.contains("row_count = 20"), "{counted}");
    let report = values_of(&b, "report");
    assert!(
        report.contains(r#""title":"2024-07-14: 20 rows""#),
        "{report}"
    );
    assert_eq!(values_of(&b, "side"), r#"exit: "ok""#);
    show_table(&b);
    b.screenshot(&artifacts.join("run-values.png"));

    // The parameters the attempt was started with, as recorded.
    b.click(&b.find(r#"#run-tasks tr[data-id="count_rows"] td.task-id a"#, SHORT));
    let params = b.text(&b.find(
        r#"#task-detail[data-id="count_rows"] .attempt[data-attempt="1"] .attempt-params"#,
        SHORT,
    ));
    assert!(params.contains(r#""day":"2024-07-14""#), "{params}");
    // And so does the API: the run bound the edited value.
    let run: serde_json::Value = ureq::get(&format!("{}api/runs/{id}", served.base))
        .call()
        .expect("the run")
        .into_json()
        .expect("JSON");
    assert_eq!(
        run["run"]["pipeline_params"]["run_date"],
        serde_json::json!("2024-07-15"),
        "{}",
        run["run"]
    );
    drop(b);
}

#[test]
fn a_repair_picked_on_the_graph_re_runs_the_notebook_and_its_dependents_and_keeps_the_rest() {
    let artifacts = root().join("tests/artifacts");
    let tmp = tempfile::tempdir().unwrap();
    let (_livy, served, _file) = serve(tmp.path());

    let b = Browser::start();
    b.open_fresh(&format!("{}#/pipelines/webrepair.toml/editor", served.base));
    b.wait_for_tab("tab-pipeline", SHORT);
    let first = run_and_wait(&b);

    // Pick `count_rows` on the graph: it and `report` run again, the others are kept.
    b.click(&b.find("#repair-button", SHORT));
    b.find("#repair-bar", SHORT);
    assert!(
        b.attr(&b.find("#rerun-button", SHORT), "disabled")
            .is_some(),
        "nothing picked yet"
    );
    b.click(&b.find(r#".run-detail .dag-node[data-id="count_rows"]"#, SHORT));
    let node = |task: &str| {
        let n = b.find(
            &format!(r#".run-detail .dag-node[data-id="{task}"]"#),
            SHORT,
        );
        b.attr(&n, "data-repair").unwrap_or_default()
    };
    wait_for("the pick on the graph", SHORT, || {
        (node("count_rows") == "selected").then_some(())
    });
    let marks = ["list_tables", "count_rows", "report", "side"].map(node);
    assert_eq!(marks, ["kept", "selected", "runs-again", "kept"]);
    let pick = |task: &str| {
        b.find(
            &format!(r#"#run-tasks input.repair-pick[data-id="{task}"]"#),
            SHORT,
        )
    };
    let checked = b.script(
        r#"return document.querySelector('#run-tasks input.repair-pick[data-id="count_rows"]').checked;"#,
        serde_json::json!([]),
    );
    assert_eq!(checked, serde_json::json!(true), "the table shows the pick");
    // Ticked in the table and let go again: the table and the graph agree.
    b.click(&pick("side"));
    wait_for("side picked", SHORT, || {
        (row_attr(&b, "side", "data-repair") == "selected").then_some(())
    });
    b.click(&pick("side"));
    wait_for("side let go", SHORT, || {
        (row_attr(&b, "side", "data-repair") == "kept" && node("side") == "kept").then_some(())
    });
    let again = b.text(&b.find("#repair-bar .runs-again", SHORT));
    assert_eq!(again, "Runs again (2): count_rows (selected), report");
    let kept = b.text(&b.find("#repair-bar .kept", SHORT));
    assert_eq!(kept, "Kept from this run (2): list_tables, side");
    b.screenshot(&artifacts.join("run-repair.png"));

    // The repair is a new run, opened like any started run.
    b.click(&b.find("#rerun-button", SHORT));
    let second = wait_for_new_run(&b, Some(&first));
    let states =
        ["list_tables", "count_rows", "report", "side"].map(|t| row_attr(&b, t, "data-state"));
    assert_eq!(states, ["kept", "succeeded", "succeeded", "kept"]);
    // What the history recorded: a resume of the first run that ran exactly those two.
    let run: serde_json::Value = ureq::get(&format!("{}api/runs/{second}", served.base))
        .call()
        .expect("the run")
        .into_json()
        .expect("JSON");
    assert_eq!(run["run"]["resumed_from"].to_string(), first);
    let tasks = &run["run"]["tasks"];
    for (task, kept) in [
        ("list_tables", true),
        ("count_rows", false),
        ("report", false),
        ("side", true),
    ] {
        let t = &tasks[task];
        assert_eq!(t["carried_over"], serde_json::json!(kept), "{task}: {t}");
        let attempts = t["attempts"].as_array().map_or(0, Vec::len);
        assert_eq!(attempts, usize::from(!kept), "{task}: {t}");
    }
    // Kept notebooks keep what they published; the re-run ones published again.
    assert!(values_of(&b, "count_rows").contains("row_count = 20"));
    assert!(values_of(&b, "list_tables").contains(r#"exit: ["orders","returns"]"#));
    drop(b);
}

#[test]
fn a_failed_run_says_what_resuming_it_keeps_and_runs_again_before_it_is_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let run = write_run_with_outcomes(
        &tmp.path().join("data"),
        ("daily_sales", "daily_sales.toml", &example_plan()),
        1_750_000_000_000,
        &[
            ("load_orders".into(), 3_000, "succeeded"),
            ("load_fx_rates".into(), 2_000, "failed"),
        ],
    );
    let served = Served::start(tmp.path(), &["--livy", "http://127.0.0.1:9"]);
    let b = Browser::start();
    b.open_fresh(&format!("{}#/runs/{run}", served.base));
    b.find("#resume-button", SHORT);
    let kept = b.text(&b.find("#resume-outline .kept", SHORT));
    assert_eq!(kept, "Kept from this run (1): load_orders");
    let again = b.text(&b.find("#resume-outline .runs-again", SHORT));
    assert!(
        again.contains("load_fx_rates") && again.contains("daily_report"),
        "{again}"
    );
    assert!(!again.contains("load_orders"), "{again}");
    drop(b);
}
