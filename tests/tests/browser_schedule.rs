//! A pipeline's schedule in headless Chromium, without Spark: the header shows its expression,
//! zone and next fire time (local and UTC); the button pauses it, the server keeps that (a
//! reload still shows it paused), and resumes it.

use spool_tests::webdriver::Browser;
use spool_tests::{root, wait_for, Served};
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);

const NIGHTLY: &str = r#"name = "nightly"

[schedule]
cron = "0 6 * * MON-FRI"
timezone = "Europe/Amsterdam"

[[notebook]]
id = "load"
path = "notebooks/load_orders.py"
"#;

/// The schedule bar once its text contains `want`.
fn bar_showing(b: &Browser, want: &str) -> String {
    wait_for(want, SHORT, || {
        let bar = b.try_find("#schedule-bar", Duration::ZERO)?;
        let text = b.text(&bar);
        text.contains(want).then_some(text)
    })
}

fn paused_on_the_server(served: &Served) -> bool {
    let url = format!("{}api/pipelines/nightly.toml/schedule", served.base);
    let answer: serde_json::Value = ureq::get(&url).call().unwrap().into_json().unwrap();
    answer["paused"].as_bool().expect("paused")
}

#[test]
fn the_header_shows_the_schedule_and_pauses_and_resumes_it() {
    let tmp = tempfile::tempdir().unwrap();
    // No run reaches Spark here: a Livy that is not there keeps local Spark unstarted.
    let served = Served::start(tmp.path(), &["--livy", "http://127.0.0.1:9"]);
    std::fs::write(served.pipelines.join("nightly.toml"), NIGHTLY).unwrap();
    let b = Browser::start();
    b.goto(&format!("{}#/pipelines/nightly.toml/editor", served.base));
    let shown = bar_showing(&b, "schedule 0 6 * * MON-FRI (Europe/Amsterdam): next ");
    // 06:00 in Amsterdam is 05:00 or 04:00 UTC, by the season.
    assert!(
        shown.contains(" 06:00 (")
            && (shown.contains(" 05:00 UTC") || shown.contains(" 04:00 UTC")),
        "{shown}"
    );
    let picker = b.find("#pipeline-select", SHORT);
    assert!(b
        .text(&picker)
        .contains("nightly.toml (1 notebooks, scheduled)"));

    let toggle = b.find("#schedule-toggle", SHORT);
    assert_eq!(b.text(&toggle), "Pause schedule");
    b.click(&toggle);
    bar_showing(&b, "(Europe/Amsterdam): paused");
    assert!(paused_on_the_server(&served));
    b.screenshot(&root().join("tests/artifacts/schedule-paused.png"));

    // The server keeps it: a fresh page shows it paused.
    b.goto("about:blank");
    b.goto(&format!("{}#/pipelines/nightly.toml/editor", served.base));
    bar_showing(&b, "paused");
    let toggle = b.find("#schedule-toggle", SHORT);
    assert_eq!(b.text(&toggle), "Resume schedule");
    b.click(&toggle);
    bar_showing(&b, "next ");
    assert!(!paused_on_the_server(&served));
}
