//! `spool schedule FILE` and `spool validate` on `[schedule]`, through the real binary.

use std::process::Command;

fn spool(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("spool runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn folder(pipeline: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("load.py"), "x = 1\n").unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    dir
}

const NIGHTLY: &str = r#"
[schedule]
cron = "30 2 * * *"
timezone = "Europe/Amsterdam"

[[notebook]]
id = "load"
path = "load.py"
"#;

#[test]
fn prints_the_next_fire_times_in_the_schedules_zone_beside_utc_across_a_dst_change() {
    let dir = folder(NIGHTLY);
    let (code, out, err) = spool(
        dir.path(),
        &[
            "schedule",
            "p.toml",
            "--after",
            "2026-03-27 12:00",
            "--count",
            "3",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "p.toml: `30 2 * * *` in Europe/Amsterdam, catch_up none",
            "Europe/Amsterdam  UTC",
            "2026-03-28 02:30  2026-03-28 01:30",
            // 02:30 does not exist on the 29th: the run is at the first minute after the gap.
            "2026-03-29 03:00  2026-03-29 01:00",
            "2026-03-30 02:30  2026-03-30 00:30",
        ]
    );
    // Ten by default, from now.
    let (code, out, _) = spool(dir.path(), &["schedule", "p.toml"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2 + 10);
    let (code, out, _) = spool(
        dir.path(),
        &[
            "schedule",
            "p.toml",
            "--json",
            "--after",
            "2026-10-24 12:00",
            "--count",
            "2",
        ],
    );
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["schedule"]["timezone"], "Europe/Amsterdam");
    assert_eq!(json["next"][0]["local"], "2026-10-25 02:30");
    assert_eq!(json["next"][0]["utc"], "2026-10-25 00:30");
}

#[test]
fn a_bad_schedule_is_located_by_validate_and_schedule_refuses_it() {
    let dir = folder(
        &NIGHTLY
            .replace("30 2 * * *", "30 2 * *")
            .replace("Amsterdam", "Amsterdm"),
    );
    let (code, _, err) = spool(dir.path(), &["validate", "p.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("p.toml:3:8: error: `cron = \"30 2 * *\"`"),
        "{err}"
    );
    assert!(err.contains("p.toml:4:12: error: unknown time zone `Europe/Amsterdm`; did you mean `Europe/Amsterdam`?"), "{err}");
    let (code, out, _) = spool(dir.path(), &["schedule", "p.toml"]);
    assert_eq!((code, out.as_str()), (1, ""));
    let plain = folder("[[notebook]]\nid = \"load\"\npath = \"load.py\"\n");
    let (code, _, err) = spool(plain.path(), &["schedule", "p.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("no [schedule]"), "{err}");
    let (code, _, err) = spool(dir.path(), &["schedule", "p.toml", "--after", "tomorrow"]);
    assert_eq!(code, 2, "{err}");
}
