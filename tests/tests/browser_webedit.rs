//! The editor's for-each fields, reference picker, file recheck and clickable diagnostics in
//! headless Chromium, without Spark: a for-each written in the editor is saved with every other
//! byte of the file as it was, and its problems show beside the field (as typed, then as core
//! finds them in the file), a click on one opening the node's fields on the graph; the `{{…}}`
//! picker of a notebook's parameter offers the values of its upstream notebooks only; a
//! diagnostic on a row of the table's second page, clicked, shows that row with its field
//! focused, one that no field shows its line in the source; a notebook created on disk clears
//! its "does not exist" once the window regains focus, without a reload.

use spool_tests::webdriver::Browser;
use spool_tests::{root, save_and_read, wait_for, Served};
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);

fn field(key: &str, id: &str) -> String {
    format!(r#"input[data-field="{key}"][data-id="{id}"]"#)
}

fn diagnostic(key: &str, id: &str) -> String {
    format!(r#".diagnostic[data-field="{key}"][data-id="{id}"]"#)
}

/// The texts of what matches `css` once one of them contains `want`.
fn wait_text(b: &Browser, css: &str, want: &str) -> String {
    wait_for(&format!("`{want}` in {css}"), SHORT, || {
        b.find_all(css)
            .iter()
            .map(|e| b.text(e))
            .find(|t| t.contains(want))
    })
}

/// Clicks the problem `css` finds, which says `says`.
fn click_problem(b: &Browser, css: &str, says: &str) {
    let problem = b.find(css, SHORT);
    let text = b.text(&problem);
    assert!(text.contains(says), "{text}");
    b.click(&problem);
}

/// Waits for `js` (run in the page) to return `want`.
fn wait_script(b: &Browser, js: &str, want: serde_json::Value) {
    wait_for(&format!("{js} to return {want}"), SHORT, || {
        (b.script(js, serde_json::json!([])) == want).then_some(())
    });
}

#[test]
fn a_for_each_edit_keeps_the_file_and_references_are_picked_from_upstream() {
    let artifacts = root().join("tests/artifacts");
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    let file = served.pipelines.join("daily_sales.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    let returns_entry = "depends_on = [\"load_orders\"]\nparams = { return_rate = 0.03 }\n";
    assert!(original.contains(returns_entry), "the example changed");

    let b = Browser::start();
    b.open_fresh(&format!(
        "{}#/pipelines/daily_sales.toml/editor",
        served.base
    ));
    b.wait_for_tab("tab-pipeline", SHORT);
    let for_each = b.find(&field("for_each", "load_returns"), SHORT);
    assert_eq!(b.property(&for_each, "value").as_deref(), Some(""));

    // As typed: load_fx_rates is not upstream of load_returns.
    b.type_text(&for_each, "{{ tasks.load_fx_rates.value }}");
    let live = wait_text(
        &b,
        r#".diagnostic.live[data-field="for_each"][data-id="load_returns"]"#,
        "not upstream",
    );
    assert!(live.contains("`load_fx_rates`"), "{live}");
    // Committed: core's diagnostic of the file, beside the field and in the problems.
    b.commit(&for_each, "{{ params.nope }}");
    wait_text(
        &b,
        &diagnostic("for_each", "load_returns"),
        "unknown parameter `nope`",
    );
    wait_text(&b, "#problems", "unknown parameter `nope`");
    b.screenshot(&artifacts.join("editor-for-each.png"));

    // On the graph, the problem opens its node's fields, the field focused.
    b.click(&b.find("#tab-graph", SHORT));
    click_problem(
        &b,
        r#".graph-tab li.problem[data-id="load_returns"]"#,
        "unknown parameter `nope`",
    );
    b.find(r#"aside.node-panel[data-id="load_returns"]"#, SHORT);
    wait_script(
        &b,
        "const e = document.activeElement; return [e.dataset.id || '', e.dataset.field || ''];",
        serde_json::json!(["load_returns", "for_each"]),
    );
    b.click(&b.find("#tab-pipeline", SHORT));

    // A list, then a concurrency: no problem left, and the file keeps every other byte.
    let for_each = b.find(&field("for_each", "load_returns"), SHORT);
    b.commit(&for_each, r#"["eu", "us"]"#);
    b.find("#problems.ok", SHORT);
    let concurrency = b.find(&field("for_each_concurrency", "load_returns"), SHORT);
    assert_eq!(
        b.attr(&concurrency, "placeholder").as_deref(),
        Some("no cap")
    );
    let expected = b.find(&field("expected_items", "load_returns"), SHORT);
    assert_eq!(
        b.attr(&expected, "placeholder").as_deref(),
        Some("10 (default)")
    );
    b.commit(&concurrency, "2");
    b.find(
        r#"button[data-field="for_each_concurrency.reset"][data-id="load_returns"]"#,
        SHORT,
    );
    let saved = save_and_read(&b, &file, &original);
    assert_eq!(
        saved,
        original.replace(
            returns_entry,
            &format!("{returns_entry}for_each = [\"eu\", \"us\"]\nfor_each_concurrency = 2\n")
        )
    );

    // The picker of sales_by_customer's `run_date` (a date): its upstream notebooks' values,
    // not those of load_returns, which it does not wait for.
    let pick = r#"button[data-field="params.run_date.value.pick"][data-id="sales_by_customer"]"#;
    b.click(&b.find(pick, SHORT));
    let offered: Vec<String> = wait_for("the references offered", SHORT, || {
        let refs: Vec<String> = b
            .find_all(r#".ref-picker[data-id="sales_by_customer"] button.ref-choice"#)
            .iter()
            .filter_map(|e| b.attr(e, "data-ref"))
            .collect();
        (!refs.is_empty()).then_some(refs)
    });
    for want in [
        "run.date",
        "run.id",
        "tasks.load_orders.value",
        "tasks.load_fx_rates.value",
    ] {
        assert!(offered.iter().any(|r| r == want), "{want}: {offered:?}");
    }
    assert!(
        !offered
            .iter()
            .any(|r| r.contains("load_returns") || r.contains("daily_report")),
        "{offered:?}"
    );
    b.click(&b.find(
        r#".ref-picker[data-id="sales_by_customer"] button[data-ref="tasks.load_orders.value"]"#,
        SHORT,
    ));
    let value = b.find(&field("params.run_date.value", "sales_by_customer"), SHORT);
    wait_for("the reference written", SHORT, || {
        (b.property(&value, "value").as_deref() == Some("{{ tasks.load_orders.value }}"))
            .then_some(())
    });
    let row = b.find(
        r#".params[data-id="sales_by_customer"] .param-row[data-param="run_date"]"#,
        SHORT,
    );
    assert_eq!(
        b.attr(&row, "data-type").as_deref(),
        Some("string"),
        "a reference is written as a string"
    );
    b.find("#save-status.unsaved", SHORT);
}

/// 150 notebooks; `n137`, on the table's second page, runs a notebook not on disk yet; line 2
/// is a key the format does not have.
fn big_pipeline() -> String {
    let mut text = String::from("name = \"big\"\ncolour = \"blue\"\n");
    for i in 0..150 {
        let path = if i == 137 {
            "notebooks/made_later.py"
        } else {
            "notebooks/load_orders.py"
        };
        text.push_str(&format!(
            "\n[[notebook]]\nid = \"n{i:03}\"\npath = \"{path}\"\n"
        ));
    }
    text
}

#[test]
fn a_clicked_diagnostic_shows_its_row_on_a_later_page_and_a_file_made_on_disk_clears_it() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    std::fs::write(served.pipelines.join("big.toml"), big_pipeline()).unwrap();

    let b = Browser::start();
    b.open_fresh(&format!("{}#/pipelines/big.toml/editor", served.base));
    b.wait_for_tab("tab-pipeline", SHORT);
    b.find(r#"tr[data-id="n000"]"#, SHORT);
    assert!(
        b.try_find(r#"tr[data-id="n137"]"#, Duration::from_millis(500))
            .is_none(),
        "the row is on the second page"
    );
    click_problem(&b, r#"li.problem[data-id="n137"]"#, "made_later.py");
    b.find(r#"tr[data-id="n137"]"#, SHORT);
    wait_script(
        &b,
        "const e = document.activeElement; return [e.dataset.id || '', e.dataset.field || ''];",
        serde_json::json!(["n137", "path"]),
    );
    let pager = b.text(&b.find(".pager", SHORT));
    assert!(pager.contains("page 2 of 2"), "{pager}");
    assert!(
        b.try_find(r#"tr[data-id="n000"]"#, Duration::from_millis(200))
            .is_none(),
        "the first page is gone"
    );

    // Made on disk: cleared when the window regains focus, without a reload.
    std::fs::write(
        served.pipelines.join("notebooks/made_later.py"),
        "# %%\nprint('made later')\n",
    )
    .unwrap();
    b.script(
        "window.dispatchEvent(new Event('focus'));",
        serde_json::json!([]),
    );
    wait_for("the error cleared", SHORT, || {
        b.try_find(r#"li.problem[data-id="n137"]"#, Duration::from_millis(100))
            .is_none()
            .then_some(())
    });
    assert!(b
        .try_find(&diagnostic("path", "n137"), Duration::from_millis(200))
        .is_none());

    // A problem no field of the table shows: its line in the source, the caret on it.
    click_problem(
        &b,
        r#"li.problem[data-key="colour"]"#,
        "unknown key `colour`",
    );
    b.wait_for_tab("tab-source", SHORT);
    wait_script(
        &b,
        "const e = document.activeElement; return [e.id, e.selectionStart];",
        serde_json::json!(["source-text", 13]),
    );
}
