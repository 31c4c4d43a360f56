//! A file with errors saved as a draft, in headless Chromium without Spark: the server keeps
//! the text while the pipeline file stays as it was (runs and schedules read it), another
//! browser is offered the draft and restores it, and fixing and saving the file discards it.

use spool_tests::webdriver::Browser;
use spool_tests::{wait_for, Served};
use std::time::Duration;

const SHORT: Duration = Duration::from_secs(20);

/// Replaces the Source tab's text as a paste and leaving the field does.
fn set_source(b: &Browser, text: &str) {
    b.script(
        "const t = document.querySelector('#source-text'); t.value = arguments[0]; \
         t.dispatchEvent(new Event('change', { bubbles: true }));",
        serde_json::json!([text]),
    );
}

#[test]
fn a_file_with_errors_is_kept_as_a_draft_and_offered_in_another_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &[]);
    let file = served.pipelines.join("daily_sales.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    let editor = format!("{}#/pipelines/daily_sales.toml/editor", served.base);
    let broken = original.replacen(
        "depends_on = [\"load_orders\"",
        "depends_on = [\"load_ordrs\"",
        1,
    );
    assert_ne!(broken, original, "the example changed");

    // A text with an error: Save is refused, Save draft is offered.
    let first = Browser::start();
    first.open_fresh(&editor);
    first.wait_for_tab("tab-pipeline", SHORT);
    first.click(&first.find("#tab-source", SHORT));
    first.find("#source-text", SHORT);
    set_source(&first, &broken);
    wait_for("the error to disable Save", SHORT, || {
        save_disabled(&first).then_some(())
    });
    first.click(&first.find("#save-draft", SHORT));
    wait_for("the draft saved", SHORT, || {
        let notice = first.try_find("#notice", Duration::ZERO)?;
        first.text(&notice).contains("Draft saved").then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        original,
        "the pipeline file keeps its valid version"
    );
    drop(first);

    // Another browser (nothing in its page storage) is offered the server's draft.
    let second = Browser::start();
    second.open_fresh(&editor);
    let offer = second.find("#draft-offer", SHORT);
    assert!(
        second.text(&offer).contains("draft the server keeps"),
        "{}",
        second.text(&offer)
    );
    second.click(&second.find("#draft-restore", SHORT));
    second.click(&second.find("#tab-source", SHORT));
    wait_for("the draft's text", SHORT, || {
        let source = second.find("#source-text", SHORT);
        (second.property(&source, "value").as_deref() == Some(broken.as_str())).then_some(())
    });

    // Fixed and saved: the file is written and the draft is gone.
    let fixed = format!("{original}# the dependency fixed\n");
    set_source(&second, &fixed);
    wait_for("the text fixed", SHORT, || {
        (!save_disabled(&second)).then_some(())
    });
    second.click(&second.find("#save-button", SHORT));
    wait_for("the save", SHORT, || {
        let status = second.text(&second.find("#save-status", SHORT));
        (status == "saved").then_some(())
    });
    drop(second);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), fixed);
    let draft = ureq::get(&format!(
        "{}api/pipelines/daily_sales.toml/draft",
        served.base
    ))
    .call();
    assert!(
        matches!(draft, Err(ureq::Error::Status(404, _))),
        "the save discarded the draft: {draft:?}"
    );
}

fn save_disabled(b: &Browser) -> bool {
    let disabled = b.script(
        "return document.querySelector('#save-button').disabled;",
        serde_json::json!([]),
    );
    disabled.as_bool().expect("a boolean")
}
