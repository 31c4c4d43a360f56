//! Acting on the dry run, and conditions on values, in headless Chromium without Spark: the dry
//! run explains its figures in place; "apply this pool" writes the chosen pool into the file's
//! `[pool]` (the file on disk after saving differs only there); a dependency's `if` typed in
//! the editor is saved where it stands and drawn on the graph; an assumed value
//! (`ID.KEY = VALUE`, `spool simulate --assume`'s rule) skips the conditional notebook in the
//! dry run, with the CLI's figures.

use spool_tests::webdriver::Browser;
use spool_tests::{root, save_and_read, simulate_json, wait_for, Served};
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);

fn secs_of(b: &Browser, css: &str) -> f64 {
    let cell = b.find(css, SHORT);
    wait_for(css, SHORT, || b.attr(&cell, "data-secs")?.parse().ok())
}

#[test]
fn the_dry_run_explains_its_figures_and_applies_its_pool_to_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    let file = served.pipelines.join("daily_sales.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    assert!(
        original.contains("executors = 1\nexecutor_cores = 2\n"),
        "the example's pool changed"
    );
    let b = Browser::start();
    b.goto(&format!(
        "{}#/pipelines/daily_sales.toml/dry-run",
        served.base
    ));
    let makespan_on_file = secs_of(&b, "#makespan");
    // The file's pool: nothing to apply.
    let apply = b.find("#apply-pool", SHORT);
    assert_eq!(b.attr(&apply, "disabled").as_deref(), Some("true"));

    let executors = b.find(r#"input[data-field="dry.executors"]"#, SHORT);
    b.type_text(&executors, "3");
    let makespan = wait_for("the dry run on 3 executors", SHORT, || {
        let secs = secs_of(&b, "#makespan");
        (secs != makespan_on_file).then_some(secs)
    });
    assert!(makespan < makespan_on_file, "3 executors are faster than 1");

    // The figures explained with their own numbers.
    let explain = b.text(&b.find("#dry-explain", SHORT));
    for expected in [
        "3 executors × 2 cores = 6 slots",
        "node start-up (3m 00s) is included",
        "One pool per notebook: ",
        "holds at least 3 nodes",
        "Lower bound: no schedule of the same attempts on this pool can finish before",
    ] {
        assert!(explain.contains(expected), "`{expected}` in: {explain}");
    }
    let band = b.text(&b.find("#gantt-startup", SHORT));
    assert!(band.contains("start-up"), "{band}");
    // The timeline's axis stays in view while its rows scroll under it.
    let axis_top = b.script(
        "document.body.style.paddingBottom = '2000px'; // room to scroll past the chart
         const g = document.querySelector('.gantt');
         window.scrollTo(0, window.scrollY + g.getBoundingClientRect().top + 60);
         return [g.getBoundingClientRect().top, document.querySelector('.gantt-axis').getBoundingClientRect().top];",
        serde_json::json!([]),
    );
    let (chart_top, axis_top) = (axis_top[0].as_f64().unwrap(), axis_top[1].as_f64().unwrap());
    assert!(
        chart_top < -50.0,
        "the chart's top scrolled out: {chart_top}"
    );
    assert!(
        axis_top.abs() < 1.0,
        "its axis stays at the top: {axis_top}"
    );
    // The sweep labels the current pool, and its axes with the data's bounds.
    let current = b.find("#sweep-current", SHORT);
    assert_eq!(b.attr(&current, "data-executors").as_deref(), Some("3"));
    assert!(b.text(&current).starts_with("current: 3 executors"));
    let report = b.find("#report-json", SHORT);
    wait_for("the sweep", SHORT, || {
        (b.attr(&report, "data-swept").as_deref() == Some("true")).then_some(())
    });
    let report: serde_json::Value =
        serde_json::from_str(&b.property(&report, "textContent").unwrap()).unwrap();
    let sweep: Vec<f64> = report["sweep"]
        .as_array()
        .expect("a sweep")
        .iter()
        .map(|p| p["makespan_secs"].as_f64().unwrap())
        .collect();
    let (least, most) = sweep.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &t| {
        (lo.min(t), hi.max(t))
    });
    let mut bounds: Vec<String> = b
        .find_all(".sweep-chart .makespan-label")
        .iter()
        .map(|e| b.text(e))
        .collect();
    bounds.sort();
    let mut expected = vec![
        spool_core::duration_text(least),
        spool_core::duration_text(most),
    ];
    expected.sort();
    assert_eq!(
        bounds, expected,
        "the makespan axis is labelled with the sweep's bounds"
    );
    // The figures, their explanations and the timeline's start of the page in the picture.
    b.script(
        "document.querySelector('.apply-pool').scrollIntoView();",
        serde_json::json!([]),
    );
    b.screenshot(&root().join("tests/artifacts/dry-run-explained.png"));

    b.click(&b.find("#apply-pool", SHORT));
    wait_for("the file's pool in the page", SHORT, || {
        let text = b.text(&b.find("#file-pool", Duration::ZERO));
        text.contains("3 executors × 2 cores").then_some(())
    });
    let saved = save_and_read(&b, &file, &original);
    assert_eq!(
        saved,
        original.replacen("executors = 1\n", "executors = 3\n", 1),
        "only the pool's executors changed, every other byte as it was"
    );
    // The saved pool is the file's now: the form follows it, nothing left to apply.
    let apply = b.find("#apply-pool", SHORT);
    wait_for("apply to be done", SHORT, || {
        (b.attr(&apply, "disabled").as_deref() == Some("true")).then_some(())
    });
    assert_eq!(secs_of(&b, "#makespan"), makespan);
}

const CONDITIONAL: &str = r#"name = "conditional"

[[notebook]]
id = "count_rows"
path = "notebooks/load_orders.py"
estimate_secs = 60

[[notebook]]
id = "publish"
path = "notebooks/load_fx_rates.sql"
estimate_secs = 600
depends_on = ["count_rows"]   # publishes the day
"#;

const IF: &str = "{{ tasks.count_rows.values.rows }} > 0";

#[test]
fn an_edge_if_is_saved_where_it_stands_drawn_and_an_assumption_skips_its_notebook() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    let file = served.pipelines.join("conditional.toml");
    std::fs::write(&file, CONDITIONAL).unwrap();
    let b = Browser::start();
    b.goto(&format!(
        "{}#/pipelines/conditional.toml/editor",
        served.base
    ));

    let when_css = r#"input.dep-if[data-id="publish"][data-dep="count_rows"]"#;
    let diagnostic_css = r#".diagnostic[data-field="depends_on"][data-id="publish"]"#;
    // A condition that reads a notebook that is not upstream is flagged at once.
    b.commit(&b.find(when_css, SHORT), "{{ tasks.publish.value }} > 0");
    let flagged = b.text(&b.find(diagnostic_css, SHORT));
    assert!(flagged.contains("publish"), "{flagged}");
    b.commit(&b.find(when_css, SHORT), IF);
    wait_for("the diagnostic to go", SHORT, || {
        b.try_find(diagnostic_css, Duration::ZERO)
            .is_none()
            .then_some(())
    });
    let saved = save_and_read(&b, &file, CONDITIONAL);
    assert_eq!(
        saved,
        CONDITIONAL.replacen(
            r#"depends_on = ["count_rows"]"#,
            &format!(r#"depends_on = [{{ id = "count_rows", if = "{IF}" }}]"#),
            1
        ),
        "the if is written on its dependency, every other byte as it was"
    );

    // The graph marks the edge with its condition.
    b.click(&b.find("#tab-graph", SHORT));
    let edge = b.find(
        r#"path.edge.conditional[data-from="count_rows"][data-to="publish"]"#,
        SHORT,
    );
    assert_eq!(b.attr(&edge, "data-if").as_deref(), Some(IF));
    let label = b.text(&b.find(r#".edge-label.edge-if[data-to="publish"]"#, SHORT));
    assert!(label.starts_with("if {{ tasks.count_rows"), "{label}");

    // The dry run: the condition holds unless assumed otherwise.
    b.click(&b.find("#tab-dry-run", SHORT));
    let holds = secs_of(&b, "#makespan");
    let skipped = |n: &str| {
        let e = b.find("#dry-skipped", SHORT);
        wait_for(&format!("{n} skipped"), SHORT, || {
            (b.attr(&e, "data-skipped").as_deref() == Some(n)).then_some(())
        })
    };
    skipped("0");
    let data = tmp.path().join("data");
    let cli = |flags: &[&str]| {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        simulate_json(&data, &file, &flags)["makespan_secs"]
            .as_f64()
            .expect("a makespan")
    };
    assert_eq!(holds, cli(&[]));
    let assume = b.find(r#"textarea[data-field="dry.assume"]"#, SHORT);
    // A misspelt notebook is refused, as the CLI refuses it.
    b.type_text(&assume, "count_row.rows = 0");
    let refused = b.text(&b.find(r#".diagnostic[data-field="dry.assume"]"#, SHORT));
    assert!(
        refused.contains("`count_row.rows` names no notebook"),
        "{refused}"
    );
    b.commit(&assume, "count_rows.rows = 0");
    skipped("1");
    let assumed = secs_of(&b, "#makespan");
    assert!(assumed < holds, "publish skipped: {assumed} < {holds}");
    assert_eq!(assumed, cli(&["--assume", "count_rows.rows=0"]));
    b.screenshot(&root().join("tests/artifacts/dry-run-assume.png"));
}
