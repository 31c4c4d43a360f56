//! The command line on hostile files, through the real binary: what issue 11 found hanging
//! `spool validate` ends with a located error.

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
