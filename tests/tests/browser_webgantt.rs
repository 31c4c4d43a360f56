//! A real run's Gantt chart and the graph at 300 notebooks, in headless Chromium. The run is
//! written into the history as `spool run` logs one (no Spark needed): a notebook that failed,
//! waited its retry interval and then for a slot, and succeeded; the chart's read-out (what a
//! user sees hovering its bars) names both attempts and the queued time, the session's
//! start-up is marked, the dry run's prediction of the plan the run ran is overlaid on request,
//! a row opens its notebook, and sub-pipelines collapse on request. The graph of a generated
//! 300-notebook pipeline fits with labels that read, highlights a search's match at the
//! centre, and dims all but the picked node's lineage.

use serde_json::{json, Value};
use spool_core::runlog::RunEvent;
use spool_server::history::History;
use spool_tests::history::example_plan;
use spool_tests::webdriver::Browser;
use spool_tests::{root, wait_for, Served};
use std::path::Path;
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);

/// The run's trigger.
const T0: i64 = 1_750_000_000_000;

/// A failed run of the example: two slots; `load_orders` fails after 4 s, its retry is due 10 s
/// later (34.4 s) but both slots are busy until `build_calendar` ends (38.1 s); `build_calendar`
/// itself waited 2.6 s for the slot `load_fx_rates` held.
fn write_retried_run(data: &Path) -> i64 {
    let history = History::open(data).expect("history");
    let event = |v: Value| -> RunEvent { serde_json::from_value(v).expect("a run event") };
    let started = event(json!({"type": "run_started", "pipeline": "daily_sales",
        "file": "daily_sales.toml", "params": {}, "resumed_from": null, "plan": example_plan()}));
    let id = history.create_run(&started, T0).expect("a run");
    let start = |task: &str, attempt: u32| json!({"type": "task_started", "task": task, "attempt": attempt});
    let end = |task: &str, attempt: u32, outcome: &str| json!({"type": "task_finished", "task": task, "attempt": attempt, "outcome": outcome});
    let settled = |task: &str| json!({"type": "task_settled", "task": task, "state": "succeeded", "reason": {"kind": "attempt"}});
    let log = [
        (
            20_000,
            json!({"type": "session_changed", "session": "0", "state": "idle", "capacity": 2}),
        ),
        (20_400, start("load_orders", 1)),
        (20_500, start("load_fx_rates", 1)),
        (22_500, end("load_fx_rates", 1, "succeeded")),
        (22_500, settled("load_fx_rates")),
        (22_600, start("build_calendar", 1)),
        (24_400, end("load_orders", 1, "failed")),
        (
            24_400,
            json!({"type": "retry_scheduled", "task": "load_orders", "attempt": 2, "at_secs": 34.4}),
        ),
        (24_500, start("dims/load_customers", 1)),
        (36_000, end("dims/load_customers", 1, "succeeded")),
        (36_000, settled("dims/load_customers")),
        (36_100, start("dims/load_products", 1)),
        (38_000, end("build_calendar", 1, "succeeded")),
        (38_000, settled("build_calendar")),
        (38_100, start("load_orders", 2)),
        (44_100, end("load_orders", 2, "succeeded")),
        (44_100, settled("load_orders")),
        (44_200, json!({"type": "cancel_requested"})),
        (45_000, end("dims/load_products", 1, "cancelled")),
    ];
    for (at, v) in log {
        history.append(id, &event(v), T0 + at).expect("an event");
    }
    let end = event(json!({"type": "run_finished", "status": "cancelled"}));
    history.append(id, &end, T0 + 45_100).expect("an event");
    id
}

/// Every read-out the Gantt chart of the open run gives, hovering each row from left to right
/// in steps of 4 pixels.
fn gantt_read_outs(b: &Browser) -> Vec<String> {
    let found = b.script(
        r#"
        const canvas = document.querySelectorAll('.run-detail .gantt canvas')[1];
        const hover = document.querySelector('.run-detail .gantt-hover');
        const r = canvas.getBoundingClientRect();
        const seen = new Set();
        return (async () => {
            for (let y = 8; y < r.height; y += 16) {
                for (let x = 1; x < r.width; x += 4) {
                    canvas.dispatchEvent(new MouseEvent('mousemove',
                        { clientX: r.left + x, clientY: r.top + y, bubbles: true }));
                    await new Promise(done => setTimeout(done, 0));
                    seen.add(hover.textContent.trim());
                }
            }
            return [...seen];
        })();
        "#,
        json!([]),
    );
    found
        .as_array()
        .expect("read-outs")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Clicks the Gantt chart's row of `task` (found by hovering, as a user finds it).
fn click_gantt_row(b: &Browser, task: &str) {
    let clicked = b.script(
        r#"
        const canvas = document.querySelectorAll('.run-detail .gantt canvas')[1];
        const hover = document.querySelector('.run-detail .gantt-hover');
        const r = canvas.getBoundingClientRect();
        return (async () => {
            for (let y = 8; y < r.height; y += 16) {
                for (let x = 1; x < r.width; x += 4) {
                    const at = { clientX: r.left + x, clientY: r.top + y, bubbles: true };
                    canvas.dispatchEvent(new MouseEvent('mousemove', at));
                    await new Promise(done => setTimeout(done, 0));
                    if (hover.textContent.startsWith(arguments[0] + ':')) {
                        canvas.dispatchEvent(new MouseEvent('click', at));
                        return true;
                    }
                }
            }
            return false;
        })();
        "#,
        json!([task]),
    );
    assert_eq!(clicked, json!(true), "a bar of {task}");
}

#[test]
fn a_real_runs_gantt_shows_a_retried_notebooks_two_attempts_its_queued_time_and_the_prediction() {
    let artifacts = root().join("tests/artifacts");
    let tmp = tempfile::tempdir().unwrap();
    let run = write_retried_run(&tmp.path().join("data"));
    let served = Served::start(tmp.path(), &[]);

    let b = Browser::start();
    b.open_fresh(&format!("{}#/runs/{run}", served.base));
    b.find(".run-detail .gantt canvas", SHORT);
    let startup = b.text(&b.find(".run-detail #gantt-startup", SHORT));
    assert!(
        startup.contains("the Spark session starts for 20 s"),
        "{startup}"
    );
    let seen = gantt_read_outs(&b);
    let has = |s: &str| seen.iter().any(|r| r == s);
    // Both attempts, each a bar of its own.
    assert!(
        has("load_orders: failed from 20 s to 24 s (4.0 s)"),
        "{seen:#?}"
    );
    assert!(
        has("load_orders: succeeded from 38 s to 44 s (6.0 s)"),
        "{seen:#?}"
    );
    // The retry was due at 34.4 s (10 s after the failure) and waited for a slot until 38.1 s.
    assert!(
        has("load_orders: queued from 34 s to 38 s (3.7 s)"),
        "{seen:#?}"
    );
    // A first attempt waits from when it could start: the session up, its slot free at 22.6 s.
    assert!(
        has("build_calendar: queued from 20 s to 23 s (2.6 s)"),
        "{seen:#?}"
    );
    assert!(
        !seen.iter().any(|r| r.contains("predicted")),
        "no prediction until asked"
    );

    // Asked, the dry run of the plan the run ran is overlaid: the notebooks it never reached
    // get their predicted bars too.
    b.click(&b.find("#gantt-predicted", SHORT));
    let said = b.text(&b.find("#gantt-prediction", SHORT));
    assert!(said.contains("predicted makespan"), "{said}");
    let seen = gantt_read_outs(&b);
    assert!(
        seen.iter()
            .any(|r| r.starts_with("sales_by_customer: predicted from")),
        "{seen:#?}"
    );
    b.script(
        "document.querySelector('.run-detail .gantt-head').scrollIntoView();",
        json!([]),
    );
    b.screenshot(&artifacts.join("run-gantt.png"));

    // A click on its row opens the notebook's attempts beside the graph, at its address.
    click_gantt_row(&b, "load_orders");
    b.find(
        r#"#task-detail[data-id="load_orders"] .attempt[data-attempt="2"]"#,
        SHORT,
    );
    let failed = b.find(r#"#task-detail .attempt[data-attempt="1"]"#, SHORT);
    assert_eq!(b.attr(&failed, "data-outcome").as_deref(), Some("failed"));
    wait_for("the notebook's address", SHORT, || {
        (b.hash() == format!("#/runs/{run}/load_orders")).then_some(())
    });

    // Collapsed, the sub-pipeline is one bar from its first start to its last end, with its
    // worst outcome (one notebook was cancelled), and its prediction one outline.
    b.click(&b.find("#gantt-collapse", SHORT));
    let seen = gantt_read_outs(&b);
    assert!(
        seen.iter()
            .any(|r| r.starts_with("dims/ (sub-pipeline): cancelled from 25 s to 45 s")),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|r| r.starts_with("dims/ (sub-pipeline): predicted from")),
        "{seen:#?}"
    );
    assert!(
        !seen.iter().any(|r| r.starts_with("dims/load_")),
        "{seen:#?}"
    );
    drop(b);
}

/// A pipeline of 300 notebooks in 15 layers of 20: `nb_LL_CC` depends on `nb_(LL-1)_CC` and
/// `nb_(LL-1)_(CC+1 mod 20)`.
fn write_wide_pipeline(pipelines: &Path) {
    let mut text = String::from("name = \"wide\"\n");
    for layer in 0..15 {
        for col in 0..20 {
            text.push_str(&format!(
                "\n[[notebook]]\nid = \"nb_{layer:02}_{col:02}\"\npath = \"notebooks/load_orders.py\"\n"
            ));
            if layer > 0 {
                text.push_str(&format!(
                    "depends_on = [\"nb_{:02}_{col:02}\", \"nb_{:02}_{:02}\"]\n",
                    layer - 1,
                    layer - 1,
                    (col + 1) % 20
                ));
            }
        }
    }
    std::fs::write(pipelines.join("wide.toml"), text).unwrap();
}

fn count(b: &Browser, css: &str) -> usize {
    b.find_all(css).len()
}

#[test]
fn the_graph_of_300_notebooks_reads_at_fit_finds_a_notebook_and_dims_all_but_a_lineage() {
    let artifacts = root().join("tests/artifacts");
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    write_wide_pipeline(&served.pipelines);

    let b = Browser::start();
    b.open_fresh(&format!("{}#/pipelines/wide.toml/graph", served.base));
    wait_for("300 nodes", SHORT, || {
        (count(&b, ".dag-node") == 300).then_some(())
    });
    // Fit: the whole graph in view, nodes compact, their labels still about 10 px on screen.
    b.click(&b.find(r#".dag-tools button[title="show the whole graph"]"#, SHORT));
    b.find("svg.dag.compact", SHORT);
    let label = b.script(
        r#"const t = document.querySelector('.dag-node[data-id="nb_07_00"] .label');
           return [t.textContent, t.getBoundingClientRect().height];"#,
        json!([]),
    );
    assert_eq!(label[0], "nb_07_00", "the whole id: {label}");
    let px = label[1].as_f64().unwrap();
    assert!(px >= 9.0, "a label {px} px high at fit");
    b.screenshot(&artifacts.join("graph-300-fit.png"));

    // Search: the match is highlighted, the rest dimmed, and the match at the centre.
    let search = b.find("#dag-search", SHORT);
    b.type_text(&search, "07_00");
    let found = b.find(".dag-node.found", SHORT);
    assert_eq!(b.attr(&found, "data-id").as_deref(), Some("nb_07_00"));
    assert_eq!(count(&b, ".dag-node.found"), 1);
    assert_eq!(count(&b, ".dag-node.dim"), 299);
    let offset = b.script(
        r#"const n = document.querySelector('.dag-node.found rect').getBoundingClientRect();
           const s = document.querySelector('svg.dag').getBoundingClientRect();
           return Math.hypot(n.x + n.width / 2 - (s.x + s.width / 2), n.y + n.height / 2 - (s.y + s.height / 2));"#,
        json!([]),
    );
    assert!(offset.as_f64().unwrap() < 5.0, "centred: {offset}");
    assert!(b
        .text(&b.find("#dag-search-count", SHORT))
        .contains("1 match"));
    b.screenshot(&artifacts.join("graph-300-search.png"));

    // Picking a node lights its upstream (35) and downstream (35) and dims the other 229.
    b.type_text(&search, "\u{E00C}");
    wait_for("the search to clear", SHORT, || {
        (count(&b, ".dag-node.dim") == 0).then_some(())
    });
    b.click(&b.find(r#".dag-node[data-id="nb_07_00"]"#, SHORT));
    b.find(r#".dag-node.selected[data-id="nb_07_00"]"#, SHORT);
    assert_eq!(count(&b, ".dag-node.upstream"), 35);
    assert_eq!(count(&b, ".dag-node.downstream"), 35);
    assert_eq!(count(&b, ".dag-node.dim"), 229);
    for id in ["nb_06_01", "nb_00_07"] {
        let n = b.find(&format!(r#".dag-node[data-id="{id}"]"#), SHORT);
        assert!(b.attr(&n, "class").unwrap().contains("upstream"), "{id}");
    }
    let unrelated = b.find(r#".dag-node[data-id="nb_08_01"]"#, SHORT);
    assert!(b.attr(&unrelated, "class").unwrap().contains("dim"));
    b.screenshot(&artifacts.join("graph-300-lineage.png"));
    // Esc lets go of it: nothing dimmed.
    b.type_text(&b.find("body", SHORT), "\u{E00C}");
    wait_for("the lineage to clear", SHORT, || {
        (count(&b, ".dag-node.dim") == 0).then_some(())
    });
    drop(b);
}
