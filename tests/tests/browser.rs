//! The web app in headless Chromium against `spool serve` on a copy of the example, with real
//! local Spark: edit a dependency and see the diagnostics and the graph follow, read the dry
//! run's makespan, run the pipeline and watch every node finish, cancel a run. Screenshots of
//! the main views land in `tests/artifacts/`.

use spool_tests::webdriver::{Browser, Element};
use spool_tests::{root, wait_for, LocalLivy, Served};
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);
/// A whole example run on local Spark, on a busy 2-core machine.
const RUN: Duration = Duration::from_secs(300);

/// The nodes of the run's graph in the Runs tab.
fn node_states(b: &Browser) -> Vec<(String, String)> {
    b.find_all(".runs .dag-node")
        .iter()
        .map(|n| {
            (
                b.attr(n, "data-id").unwrap_or_default(),
                b.attr(n, "data-state").unwrap_or_default(),
            )
        })
        .collect()
}

fn type_and_enter(b: &Browser, e: &Element, text: &str) {
    b.type_text(e, &format!("{text}\u{E007}"));
}

#[test]
fn edit_dry_run_run_and_cancel_in_the_browser() {
    let artifacts = root().join("tests/artifacts");
    let tmp = tempfile::tempdir().unwrap();
    let livy = LocalLivy::start(&tmp.path().join("livy"));
    let served = Served::start(tmp.path(), &["--livy", &livy.url]);
    let (base, pipelines) = (&served.base, &served.pipelines);

    let b = Browser::start();
    b.goto(base);

    // Pipeline editor: a dependency on an unknown id is flagged beside the field.
    b.click(&b.find("#tab-pipeline", SHORT));
    let add = b.find(r#"input.add-dep[data-id="load_returns"]"#, SHORT);
    type_and_enter(&b, &add, "load_fx_ratez");
    let diag = b.find(
        r#".diagnostic[data-field="depends_on"][data-id="load_returns"]"#,
        SHORT,
    );
    assert!(b.text(&diag).contains("load_fx_ratez"), "{}", b.text(&diag));
    b.screenshot(&artifacts.join("editor-diagnostic.png"));
    // Fixed: the message goes, and the graph gains the edge.
    b.click(&b.find(r#".dep[data-dep="load_fx_ratez"] button.x"#, SHORT));
    let add = b.find(r#"input.add-dep[data-id="load_returns"]"#, SHORT);
    type_and_enter(&b, &add, "load_fx_rates");
    wait_for("the diagnostic to go", SHORT, || {
        b.try_find(
            r#".diagnostic[data-field="depends_on"][data-id="load_returns"]"#,
            Duration::ZERO,
        )
        .is_none()
        .then_some(())
    });
    b.click(&b.find("#tab-graph", SHORT));
    b.find(
        r#"path.edge[data-from="load_fx_rates"][data-to="load_returns"]"#,
        SHORT,
    );
    b.screenshot(&artifacts.join("graph.png"));
    b.click(&b.find("#save-button", SHORT));
    wait_for("the file to be saved", SHORT, || {
        let text = std::fs::read_to_string(pipelines.join("daily_sales.toml")).ok()?;
        text.contains(r#"depends_on = ["load_orders", "load_fx_rates"]"#)
            .then_some(())
    });

    // Dry run.
    b.click(&b.find("#tab-dry-run", SHORT));
    let makespan = b.find("#makespan", SHORT);
    let secs: f64 = wait_for("a makespan", SHORT, || {
        b.attr(&makespan, "data-secs")?.parse().ok()
    });
    assert!(secs > 0.0);
    b.screenshot(&artifacts.join("dry-run.png"));

    // A real run, smaller data so it is quick; every node ends green (or skipped/inactive by
    // design: the failure handler and the inactive export).
    b.click(&b.find("#tab-runs", SHORT));
    let params = b.find("#run-params", SHORT);
    b.type_text(&params, "order_count = 200000");
    b.click(&b.find("#run-button", SHORT));
    // The graph tab follows the live run too.
    b.click(&b.find("#tab-graph", SHORT));
    wait_for("the graph to show the run", RUN, || {
        b.try_find(r#".graph-tab .dag-node[data-state="running"], .graph-tab .dag-node[data-state="succeeded"]"#, Duration::ZERO)
    });
    b.click(&b.find("#tab-runs", SHORT));
    let mut last = Vec::new();
    let finals = wait_for("every node to finish", RUN, || {
        let states = node_states(&b);
        if states != last {
            eprintln!("{states:?}");
            last = states.clone();
        }
        let done = !states.is_empty()
            && states.iter().all(|(_, s)| {
                matches!(
                    s.as_str(),
                    "succeeded" | "skipped" | "inactive" | "failed" | "timed_out" | "cancelled"
                )
            });
        done.then_some(states)
    });
    b.screenshot(&artifacts.join("run-finished.png"));
    for (id, state) in &finals {
        let expected = match id.as_str() {
            "alert_on_failure" => "skipped",
            "export_legacy_csv" => "inactive",
            _ => "succeeded",
        };
        assert_eq!(state, expected, "{id}: {finals:?}");
    }

    // Cancel a second run while notebooks are running.
    b.click(&b.find("#run-button", SHORT));
    wait_for("a notebook to run", RUN, || {
        node_states(&b)
            .iter()
            .any(|(_, s)| s == "running")
            .then_some(())
    });
    b.click(&b.find("#cancel-button", SHORT));
    b.find(
        r#".run-row[data-status="cancelled"]"#,
        Duration::from_secs(120),
    );
    b.screenshot(&artifacts.join("runs.png"));
    drop(b);
}
