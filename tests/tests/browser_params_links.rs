//! The parameter editor, unsaved edits and the app's addresses in headless Chromium, without
//! Spark (the run is written into the history): a typed parameter edit saves the file with the
//! date still a TOML date and every other byte as it was; settings inherited from `[defaults]`
//! show as such; unsaved edits survive a reload (offered back) and leaving asks first; a deep
//! link to a pipeline's graph, to a run and to a task of it opens that view directly, and Back
//! returns to the view before.

use spool_tests::history::write_example_run;
use spool_tests::webdriver::Browser;
use spool_tests::{root, save_and_read, wait_for, Served};
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);

const LOAD_ORDERS_PARAMS: &str =
    "params = { run_date = 2024-06-30, order_count = 4_000_000, days = 28 }";

#[test]
fn a_typed_parameter_edit_keeps_the_file_and_deep_links_open_their_view() {
    let artifacts = root().join("tests/artifacts");
    let tmp = tempfile::tempdir().unwrap();
    let run = write_example_run(&tmp.path().join("data"));
    let served = Served::start(tmp.path(), &[]);
    let file = served.pipelines.join("daily_sales.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    assert!(original.contains(LOAD_ORDERS_PARAMS), "the example changed");

    let b = Browser::start();
    b.open_fresh(&format!(
        "{}#/pipelines/daily_sales.toml/editor",
        served.base
    ));
    b.wait_for_tab("tab-pipeline", SHORT);

    // One row per parameter, with its TOML type.
    let row =
        |key: &str| format!(r#".params[data-id="load_orders"] .param-row[data-param="{key}"]"#);
    let run_date = b.find(&row("run_date"), SHORT);
    assert_eq!(b.attr(&run_date, "data-type").as_deref(), Some("date"));
    let count = b.find(&row("order_count"), SHORT);
    assert_eq!(b.attr(&count, "data-type").as_deref(), Some("integer"));
    let value = b.find(
        r#"input[data-field="params.order_count.value"][data-id="load_orders"]"#,
        SHORT,
    );
    assert_eq!(b.property(&value, "value").as_deref(), Some("4_000_000"));
    // A setting not written on the notebook is [defaults]' value, shown as inherited.
    let retry = b.find(r#"input[data-field="retry"][data-id="load_orders"]"#, SHORT);
    assert_eq!(b.property(&retry, "value").as_deref(), Some(""));
    assert_eq!(
        b.attr(&retry, "placeholder").as_deref(),
        Some("1 from defaults")
    );

    let interval = b.find(
        r#"input[data-field="retry_interval_secs"][data-id="load_orders"]"#,
        SHORT,
    );
    assert_eq!(
        b.attr(&interval, "placeholder").as_deref(),
        Some("10 from defaults")
    );
    let isolated = |id: &str| {
        let css = format!(r#"input[data-field="isolated"][data-id="{id}"]"#);
        let js = format!("return document.querySelector({css:?}).checked;");
        b.script(&js, serde_json::json!([]))
    };
    assert_eq!(
        (isolated("build_calendar"), isolated("load_orders")),
        (true.into(), false.into()),
        "isolated as written, and as [defaults] says"
    );
    let date = b.find(
        r#"input[data-field="params.run_date.value"][data-id="load_orders"]"#,
        SHORT,
    );
    b.commit(&date, "2024-07-01");
    b.screenshot(&artifacts.join("params-editor.png"));
    let saved = save_and_read(&b, &file, &original);
    assert_eq!(
        saved,
        original.replacen(
            LOAD_ORDERS_PARAMS,
            "params = { run_date = 2024-07-01, order_count = 4_000_000, days = 28 }",
            1
        ),
        "only the edited value changed: still a TOML date, the rest byte for byte"
    );

    // A deep link to the graph shows it without a click; Back returns from the dry run to it.
    let graph = format!("{}#/pipelines/daily_sales.toml/graph", served.base);
    b.open_fresh(&graph);
    b.wait_for_tab("tab-graph", SHORT);
    b.find(r#".dag-node[data-id="load_orders"]"#, SHORT);
    b.click(&b.find("#tab-dry-run", SHORT));
    wait_for("the dry run's address", SHORT, || {
        (b.hash() == "#/pipelines/daily_sales.toml/dry-run").then_some(())
    });
    b.find("#makespan", SHORT);
    b.script("history.back();", serde_json::json!([]));
    b.wait_for_tab("tab-graph", SHORT);
    assert_eq!(b.hash(), "#/pipelines/daily_sales.toml/graph");
    b.find(r#".dag-node[data-id="load_orders"]"#, SHORT);

    // A run of the history, and a task of it.
    b.open_fresh(&format!("{}#/runs/{run}", served.base));
    b.wait_for_tab("tab-runs", SHORT);
    let detail = b.find("#run-detail", SHORT);
    assert_eq!(b.attr(&detail, "data-id"), Some(run.to_string()));
    assert_eq!(b.attr(&detail, "data-status").as_deref(), Some("succeeded"));
    b.open_fresh(&format!("{}#/runs/{run}/load_orders", served.base));
    let task = b.find(r#"#task-detail[data-id="load_orders"]"#, SHORT);
    assert_eq!(b.attr(&task, "data-state").as_deref(), Some("succeeded"));
    // Another task picked in the run's graph is an address of its own; Back returns.
    b.click(&b.find(r#".runs .dag-node[data-id="load_fx_rates"]"#, SHORT));
    wait_for("the task's address", SHORT, || {
        (b.hash() == format!("#/runs/{run}/load_fx_rates")).then_some(())
    });
    b.script("history.back();", serde_json::json!([]));
    b.find(r#"#task-detail[data-id="load_orders"]"#, SHORT);
    assert_eq!(b.hash(), format!("#/runs/{run}/load_orders"));

    // An address that names nothing shows the editor of the pipeline.
    b.open_fresh(&format!("{}#/pipelines/nope.toml/graph", served.base));
    b.wait_for_tab("tab-pipeline", SHORT);
    wait_for("the editor's address", SHORT, || {
        (b.hash() == "#/pipelines/daily_sales.toml/editor").then_some(())
    });
    drop(b);
}

/// Whether the page stops a `beforeunload`, which is what makes a browser ask before leaving.
fn leaving_asks(b: &Browser) -> bool {
    let stopped = b.script(
        "const e = new Event('beforeunload', { cancelable: true }); \
         window.dispatchEvent(e); return e.defaultPrevented;",
        serde_json::json!([]),
    );
    stopped.as_bool().expect("a boolean")
}

#[test]
fn unsaved_edits_survive_a_reload_and_leaving_asks_first() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    let file = served.pipelines.join("daily_sales.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    let b = Browser::start();
    b.open_fresh(&format!(
        "{}#/pipelines/daily_sales.toml/editor",
        served.base
    ));
    let days_css = r#"input[data-field="params.days.value"][data-id="load_orders"]"#;
    b.commit(&b.find(days_css, SHORT), "35");
    wait_for("the edit", SHORT, || {
        let status = b.text(&b.find("#save-status", SHORT));
        (status == "unsaved changes").then_some(())
    });

    // Leaving the page asks first (the page cancels `beforeunload`, which makes the browser
    // ask); once reloaded, the page offers the edits back, not applied.
    assert!(leaving_asks(&b), "unsaved edits: leaving asks");
    b.script(
        "setTimeout(() => location.reload(), 0);",
        serde_json::json!([]),
    );
    // ChromeDriver may answer the browser's question itself; otherwise it is answered here.
    wait_for("the page again", SHORT, || {
        if b.dialog().is_some() {
            b.accept_dialog();
        }
        b.try_find("#draft-offer", Duration::ZERO)
    });
    b.find("#draft-offer", SHORT);
    let days = b.find(days_css, SHORT);
    assert_eq!(b.property(&days, "value").as_deref(), Some("28"));
    b.click(&b.find("#draft-restore", SHORT));
    wait_for("the restored edit", SHORT, || {
        let days = b.find(days_css, SHORT);
        (b.property(&days, "value").as_deref() == Some("35")).then_some(())
    });
    assert_eq!(b.text(&b.find("#save-status", SHORT)), "unsaved changes");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        original,
        "nothing is saved without the user"
    );

    // Saved, the kept copy is forgotten: a reload offers nothing and asks nothing.
    b.click(&b.find("#save-button", SHORT));
    wait_for("the save", SHORT, || {
        let status = b.text(&b.find("#save-status", SHORT));
        (status == "saved").then_some(())
    });
    b.open_fresh(&format!(
        "{}#/pipelines/daily_sales.toml/editor",
        served.base
    ));
    let days = b.find(days_css, SHORT);
    assert_eq!(b.property(&days, "value").as_deref(), Some("35"));
    assert!(b.try_find("#draft-offer", Duration::from_secs(1)).is_none());
    drop(b);
}
