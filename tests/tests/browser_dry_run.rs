//! The dry run page in headless Chromium, calibrated from history (runs written into the
//! history, no Spark needed): choosing "p90 of the last runs" or one run shows the calibrated
//! prediction beside the estimate-based one and the last real run, with the measurements and
//! per-notebook statistics it used, and the figures are those of `spool simulate --json` with
//! the same `--durations-from`.

use spool_tests::history::write_slowing_runs;
use spool_tests::webdriver::Browser;
use spool_tests::{root, simulate_json, wait_for, Served};
use std::path::Path;
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);

/// The makespan `spool simulate --json` reports for the example with the history in `data`.
fn cli_makespan(data: &Path, flags: &[&str]) -> f64 {
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    let report = simulate_json(data, &root().join("examples/daily_sales.toml"), &flags);
    report["makespan_secs"].as_f64().expect("a makespan")
}

#[test]
fn the_dry_run_page_shows_the_prediction_calibrated_on_history_beside_the_estimates() {
    let artifacts = root().join("tests/artifacts");
    let b = Browser::start();
    {
        // Without a successful run there is no statistic to offer.
        let empty = tempfile::tempdir().unwrap();
        let served = Served::start(empty.path(), &[]);
        b.goto(&served.base);
        b.click(&b.find("#tab-dry-run", SHORT));
        b.find("#makespan-estimates", SHORT);
        let p90 = r#"select[data-field="dry.durations-from"] option[value="p90"]"#;
        assert!(b.try_find(p90, Duration::ZERO).is_none());
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let notebooks: Vec<String> = [
        "load_orders",
        "load_fx_rates",
        "build_calendar",
        "load_returns",
        "sales_by_customer",
        "sales_by_product",
        "daily_report",
        "publish_dashboard",
    ]
    .map(String::from)
    .into();
    // The rest of the example's notebooks have no measurement and keep their estimate.
    write_slowing_runs(&data, &notebooks, 3);
    let served = Served::start(tmp.path(), &[]);
    let b = Browser::start();
    b.goto(&served.base);
    b.click(&b.find("#tab-dry-run", SHORT));
    let secs_of = |css: &str| -> f64 {
        let cell = b.find(css, SHORT);
        wait_for(css, SHORT, || b.attr(&cell, "data-secs")?.parse().ok())
    };
    assert_eq!(
        secs_of("#makespan-estimates"),
        cli_makespan(&data, &[]),
        "on the estimates, as the CLI"
    );
    let last_run = b.text(&b.find("#makespan-last-run", SHORT));
    assert!(last_run.contains("(run #3)"), "{last_run}");

    // Each notebook's 90th percentile over the three runs.
    b.click(&b.find(
        r#"select[data-field="dry.durations-from"] option[value="p90"]"#,
        SHORT,
    ));
    let calibrated = secs_of("#makespan-calibrated");
    assert_eq!(
        calibrated,
        cli_makespan(&data, &["--durations-from", "p90"]),
        "calibrated on p90, as the CLI"
    );
    assert_ne!(calibrated, secs_of("#makespan-estimates"));
    let label = b.text(&b.find("#calibrated-label", SHORT));
    assert!(label.contains("p90"), "{label}");
    let measured = b.text(&b.find("#measured", SHORT));
    for shown in [
        "runs #3, #2, #1",
        "start-up 20 s",
        "latency 0.4 s",
        "4 slots",
    ] {
        assert!(measured.contains(shown), "{shown}: {measured}");
    }
    // load_orders took 3, 6 and 9 s: median 6 s, 90th percentile 8.4 s.
    let cell = |class: &str| {
        let css = format!(r#"#history-stats tr[data-id="load_orders"] td.{class}"#);
        b.text(&b.find(&css, SHORT))
    };
    assert_eq!((cell("p50"), cell("p90")), ("6.0 s".into(), "8.4 s".into()));
    assert_eq!(b.find_all("#history-stats tbody tr").len(), notebooks.len());
    b.screenshot(&artifacts.join("dry-run-calibrated.png"));

    // One run's own durations: the oldest, fastest one.
    b.click(&b.find(
        r#"select[data-field="dry.durations-from"] option[value="1"]"#,
        SHORT,
    ));
    let measured = wait_for("run #1's measurements", SHORT, || {
        let text = b.text(&b.find("#measured", SHORT));
        text.contains("Measured in run #1").then_some(text)
    });
    assert!(measured.contains("4 slots"), "{measured}");
    assert_eq!(
        secs_of("#makespan-calibrated"),
        cli_makespan(&data, &["--durations-from", "1"]),
        "calibrated on run #1, as the CLI"
    );
    assert!(b.try_find("#history-stats", Duration::ZERO).is_none());
    drop(b);
}
