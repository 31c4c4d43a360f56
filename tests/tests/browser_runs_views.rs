//! Runs as they happened, in headless Chromium, without Spark (the runs are written into the
//! history): a past run is drawn from the plan it ran after its file changed, with a banner
//! that says so; the grid of the last runs shows three runs, each notebook's cell coloured by
//! its state with its duration on hover, and a cell opens that notebook's attempt; a deep link
//! opens a notebook's attempt, with a link to the Spark UI of its session.

use spool_tests::history::{write_example_run, write_slowing_runs, LOCAL_SPARK_UI};
use spool_tests::webdriver::Browser;
use spool_tests::{root, wait_for, Served};
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);

/// A notebook the file gains after the run.
const ADDED: &str = "\n[[notebook]]\nid = \"audit_orders\"\npath = \"notebooks/load_orders.py\"\ndepends_on = [\"load_orders\"]\n";

#[test]
fn a_past_run_is_drawn_from_the_plan_it_ran_after_the_file_changed() {
    let artifacts = root().join("tests/artifacts");
    let tmp = tempfile::tempdir().unwrap();
    let run = write_example_run(&tmp.path().join("data"));
    let served = Served::start(tmp.path(), &[]);
    let file = served.pipelines.join("daily_sales.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text + ADDED).unwrap();

    let b = Browser::start();
    // Today's file has the new notebook.
    b.open_fresh(&format!(
        "{}#/pipelines/daily_sales.toml/graph",
        served.base
    ));
    b.find(r#".dag-node[data-id="audit_orders"]"#, SHORT);
    // The run did not: it is drawn without it, and says the file changed since.
    b.open_fresh(&format!("{}#/runs/{run}", served.base));
    b.wait_for_tab("tab-runs", SHORT);
    let node = b.find(r#".run-detail .dag-node[data-id="load_orders"]"#, SHORT);
    assert_eq!(b.attr(&node, "data-state").as_deref(), Some("succeeded"));
    assert!(
        b.try_find(
            r#".run-detail .dag-node[data-id="audit_orders"]"#,
            Duration::ZERO
        )
        .is_none(),
        "the run is drawn from the plan it ran"
    );
    let banner = b.text(&b.find("#plan-changed", SHORT));
    assert!(banner.contains("`audit_orders` added"), "{banner}");
    b.screenshot(&artifacts.join("run-past-plan.png"));
    drop(b);
}

#[test]
fn the_grid_shows_the_last_three_runs_and_a_cell_opens_that_attempt() {
    let artifacts = root().join("tests/artifacts");
    let tmp = tempfile::tempdir().unwrap();
    let notebooks = ["load_orders".to_string(), "load_fx_rates".to_string()];
    let runs = write_slowing_runs(&tmp.path().join("data"), &notebooks, 3);
    let served = Served::start(tmp.path(), &[]);

    let b = Browser::start();
    b.open_fresh(&format!("{}#/pipelines/daily_sales.toml/grid", served.base));
    b.wait_for_tab("tab-grid", SHORT);
    b.find("#run-grid", SHORT);
    let columns: Vec<String> = b
        .find_all("#run-grid th.grid-run")
        .iter()
        .filter_map(|th| b.attr(th, "data-id"))
        .collect();
    let ids: Vec<String> = runs.iter().map(i64::to_string).collect();
    assert_eq!(columns, ids, "three runs, oldest on the left");
    // In run k, load_fx_rates (the second notebook) took 4 s × k.
    let cell = |run: i64, task: &str| {
        format!(r#"#run-grid td.grid-cell[data-run="{run}"][data-task="{task}"]"#)
    };
    let newest = b.find(&cell(runs[2], "load_fx_rates"), SHORT);
    assert_eq!(b.attr(&newest, "data-state").as_deref(), Some("succeeded"));
    let link = b.find(&format!("{} a", cell(runs[2], "load_fx_rates")), SHORT);
    let title = b.attr(&link, "title").unwrap_or_default();
    assert!(title.contains("succeeded, 12 s"), "{title}");
    // A notebook the runs never reached has an empty cell.
    let never = b.find(
        r#"#run-grid tr[data-task="daily_report"] td.grid-cell"#,
        SHORT,
    );
    assert_eq!(b.attr(&never, "data-state"), None);
    b.screenshot(&artifacts.join("grid.png"));

    // A cell opens that notebook's attempt in that run, at its own address.
    b.click(&link);
    wait_for("the attempt's address", SHORT, || {
        (b.hash() == format!("#/runs/{}/load_fx_rates", runs[2])).then_some(())
    });
    let task = b.find(r#"#task-detail[data-id="load_fx_rates"]"#, SHORT);
    assert_eq!(b.attr(&task, "data-state").as_deref(), Some("succeeded"));
    b.find(r#"#task-detail .attempt[data-attempt="1"]"#, SHORT);

    // A deep link opens a notebook's attempt directly.
    b.open_fresh(&format!("{}#/runs/{}/load_orders", served.base, runs[0]));
    let detail = b.find("#run-detail", SHORT);
    assert_eq!(b.attr(&detail, "data-id"), Some(runs[0].to_string()));
    let attempt = b.find(
        r#"#task-detail[data-id="load_orders"] .attempt[data-attempt="1"]"#,
        SHORT,
    );
    assert!(b.text(&attempt).contains("succeeded after 3.0 s"));
    // The Spark UI Livy reported for the run's session is a link away.
    let ui = b.find("#spark-ui", SHORT);
    assert_eq!(b.attr(&ui, "href").as_deref(), Some(LOCAL_SPARK_UI));
    b.screenshot(&artifacts.join("run-task-panel.png"));
    // Esc closes the notebook's panel, and the address is the run's again.
    b.type_text(&b.find("body", SHORT), "\u{E00C}");
    wait_for("the panel to close", SHORT, || {
        b.try_find("#task-panel", Duration::ZERO)
            .is_none()
            .then_some(())
    });
    wait_for("the run's address", SHORT, || {
        (b.hash() == format!("#/runs/{}", runs[0])).then_some(())
    });
    drop(b);
}
