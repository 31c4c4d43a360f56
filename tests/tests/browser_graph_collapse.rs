//! Sub-pipelines collapse on the graph, in headless Chromium without Spark: the example's
//! `dims` becomes one node standing for its notebooks, with the edges of its steps, and
//! expands again from its panel.

use spool_tests::webdriver::Browser;
use spool_tests::{wait_for, Served};
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);

#[test]
fn a_sub_pipeline_collapses_to_one_node_and_expands_again() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    let b = Browser::start();
    b.open_fresh(&format!(
        "{}#/pipelines/daily_sales.toml/graph",
        served.base
    ));
    b.wait_for_tab("tab-graph", SHORT);
    let inside = r#".dag-node[data-id^="dims/"]"#;
    b.find(inside, SHORT);
    let drawn_inside = |b: &Browser| b.find_all(inside).len();
    let open = drawn_inside(&b);
    assert!(open > 0);

    b.click(&b.find("#collapse-all", SHORT));
    let dims = b.find(r#".dag-node.collapsed[data-id="dims"]"#, SHORT);
    assert_eq!(drawn_inside(&b), 0, "its notebooks are folded into it");
    assert!(
        b.text(&dims).contains(&format!("{open} steps inside")),
        "{}",
        b.text(&dims)
    );
    // What waits for it is drawn from it; nothing is drawn to or from a folded notebook.
    let from_dims = b.find_all(r#"path[data-from="dims"]"#).len();
    assert!(from_dims > 0);
    assert!(b
        .find_all(r#"path[data-from^="dims/"], path[data-to^="dims/"]"#)
        .is_empty());
    b.screenshot(&spool_tests::root().join("tests/artifacts/graph-collapsed.png"));

    // Picked, it expands from its panel.
    b.click(&dims);
    b.click(&b.find("#collapse-toggle", SHORT));
    wait_for("its notebooks again", SHORT, || {
        (drawn_inside(&b) == open).then_some(())
    });
    drop(b);
}
