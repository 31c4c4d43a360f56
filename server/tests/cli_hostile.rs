//! The command line on hostile files, through the real binary (issue 11's findings): a FIFO
//! that hung `spool validate`, terminal escapes from a run's history.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `spool ARGS` in `dir`: its exit code and output (stdout, then stderr), or `None` if it ran
/// past `limit` (killed).
fn spool_within(dir: &std::path::Path, args: &[&str], limit: Duration) -> Option<(i32, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spool runs");
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            let text = [out.stdout, out.stderr].concat();
            let text = String::from_utf8_lossy(&text).into_owned();
            return Some((out.status.code().unwrap_or(-1), text));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn validate_with_a_fifo_as_sub_pipeline_ends_with_an_error_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "[[pipeline]]\nid = \"dims\"\npath = \"dims.toml\"\n",
    )
    .unwrap();
    let made = Command::new("mkfifo")
        .arg(dir.path().join("dims.toml"))
        .status();
    assert!(made.expect("mkfifo").success());
    let ended = spool_within(dir.path(), &["validate", "p.toml"], Duration::from_secs(60));
    let (code, err) = ended.expect("spool validate ended (no writer ever opens the FIFO)");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("p.toml:") && err.contains("dims.toml"),
        "{err}"
    );
}

/// Names, errors and output from a run's history (a notebook, a pipeline file, Spark) carry
/// terminal escapes: `spool runs` and `spool show` print them escaped, never raw.
#[test]
fn runs_and_show_escape_control_characters_from_the_history() {
    use spool_server::history::{History, RunEvent};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join(".spool");
    let event = |v: serde_json::Value| -> RunEvent { serde_json::from_value(v).unwrap() };
    let history = History::open(&data).unwrap();
    let started = event(serde_json::json!({
        "type": "run_started", "pipeline": "nightly\u{1b}[2J", "file": "p.toml",
        "params": {}, "resumed_from": null, "plan": {}
    }));
    let id = history.create_run(&started, 1_000).unwrap();
    let failed = event(serde_json::json!({
        "type": "task_finished", "task": "load\u{1b}[31m", "attempt": 1, "outcome": "failed",
        "error": {"ename": "E", "evalue": "boom\u{1b}]0;pwned\u{7}"},
        "output": "printed\u{1b}[8m hidden"
    }));
    history.append(id, &failed, 2_000).unwrap();
    let end = event(serde_json::json!({"type": "run_finished", "status": "failed"}));
    history.append(id, &end, 3_000).unwrap();
    drop(history);
    let data = data.to_str().unwrap();
    for args in [
        vec!["runs", "--data-dir", data],
        vec!["show", &id.to_string(), "--data-dir", data],
    ] {
        let (code, text) = spool_within(dir.path(), &args, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{args:?} ended"));
        assert_eq!(code, 0, "{args:?}: {text}");
        assert!(text.contains("nightly\\u{1b}[2J"), "{args:?}: {text}");
        if args[0] == "show" {
            assert!(text.contains("boom\\u{1b}]0;pwned\\u{7}"), "{text}");
        }
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{args:?}: {text:?}"
        );
    }
}
