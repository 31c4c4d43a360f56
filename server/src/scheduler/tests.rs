//! The scheduler's passes at chosen times (the clock is an argument), against the fake Spark
//! with tokio's time paused: runs start at their slot, once, with the slot as their trigger
//! time; a restart finds what was missed from the history and catches up as the schedule
//! says; a paused schedule starts nothing and does not catch up its pause. Together they
//! check ARCHITECTURE.md's "a slot runs at most once".

use super::Scheduler;
use crate::history::{RunEvent, RunStatus};
use crate::runs::fake::FakeSpark;
use crate::runs::tests::{paused, real_clock, Harness};
use spool_core::listing::{RunFilter, MAX_LIMIT};
use spool_core::runlog::RunSummary;
use spool_core::runlog::Trigger;
use spool_core::schedule::parse_utc_minute;
use std::sync::Arc;
use std::time::Duration;

/// `pipeline` as `p.toml`, beside a pipeline without a schedule that no pass may start.
fn harness(pipeline: &str) -> Harness {
    let h = Harness::new(pipeline, FakeSpark::uniform(30.0));
    let unscheduled = "[[notebook]]\nid = \"a\"\npath = \"nb/n.py\"\n";
    std::fs::write(h.root.join("unscheduled.toml"), unscheduled).expect("pipeline");
    h
}

/// A scheduler as a new `spool serve` process on this history would have it.
fn scheduler(h: &Harness) -> Scheduler {
    Scheduler::new(h.history.clone(), h.manager(None), h.root.clone())
}

/// Every run, oldest first, once none is running any more.
async fn finished_runs(h: &Harness) -> Vec<RunSummary> {
    let all = RunFilter {
        limit: MAX_LIMIT,
        ..RunFilter::default()
    };
    loop {
        let mut runs = h.history.list(&all).expect("runs");
        if runs.iter().all(|r| r.status != RunStatus::Running) {
            runs.reverse();
            return runs;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

fn at(text: &str) -> i64 {
    parse_utc_minute(text).expect("YYYY-MM-DD HH:MM")
}

fn slots(runs: &[RunSummary]) -> Vec<Option<i64>> {
    runs.iter()
        .map(|r| r.trigger.as_ref().and_then(|t| t.scheduled_ms))
        .collect()
}

#[test]
fn a_scheduled_run_starts_at_its_slot_once_with_the_slot_as_its_trigger_time() {
    paused().block_on(async {
        // 02:00 in Amsterdam, summer time: 00:00 UTC.
        let h = harness(
            r#"
[params]
region = "us"

[schedule]
cron = "0 2 * * *"
timezone = "Europe/Amsterdam"
params = { region = "eu" }

[[notebook]]
id = "a"
path = "nb/n.py"
params = { where = "{{ params.region }}", day = "{{ run.trigger_time }}" }
"#,
        );
        let scheduler = scheduler(&h);
        let slot = at("2026-06-01 00:00");
        assert_eq!(scheduler.tick(slot - 90_000).await, Some(slot));
        assert!(
            finished_runs(&h).await.is_empty(),
            "nothing before the slot"
        );
        // The pass wakes a little late: the run is for the slot, not for the wake-up.
        assert_eq!(scheduler.tick(slot + 700).await, Some(slot + 86_400_000));
        assert_eq!(scheduler.tick(slot + 5_000).await, Some(slot + 86_400_000));
        let runs = finished_runs(&h).await;
        assert_eq!(runs.len(), 1, "one run for the slot, however many passes");
        let run = h.history.run(runs[0].id).expect("read").expect("the run");
        assert_eq!(run.status, RunStatus::Succeeded);
        assert_eq!(run.trigger, Some(Trigger::schedule(slot)));
        assert_eq!(run.run_info().trigger_ms, slot);
        let started = h.history.events(run.id, None).expect("events");
        let params = started
            .iter()
            .find_map(|e| match &e.event {
                RunEvent::AttemptParams { params, .. } => Some(params.clone()),
                _ => None,
            })
            .expect("the attempt's values");
        assert_eq!(params["where"], "eu", "the schedule's params");
        assert_eq!(
            params["day"], "2026-06-01T00:00:00Z",
            "run.trigger_time is the slot"
        );
    });
}

const HOURLY: &str = r#"
[schedule]
cron = "0 * * * *"
catch_up = "MODE"

[[notebook]]
id = "a"
path = "nb/n.py"
"#;

#[test]
fn a_restart_catches_up_from_the_slot_recorded_before_it() {
    let cases = [
        ("none", vec![]),
        ("last", vec!["2026-06-01 04:00"]),
        (
            "all",
            vec!["2026-06-01 02:00", "2026-06-01 03:00", "2026-06-01 04:00"],
        ),
    ];
    for (mode, caught_up) in cases {
        paused().block_on(async {
            let h = harness(&HOURLY.replace("MODE", mode));
            let first = at("2026-06-01 01:00");
            scheduler(&h).tick(first + 1_000).await;
            assert_eq!(slots(&finished_runs(&h).await), [Some(first)], "{mode}");
            // Down from 01:00 to 04:30: a new process on the same history.
            scheduler(&h).tick(at("2026-06-01 04:30")).await;
            let runs = finished_runs(&h).await;
            let want: Vec<Option<i64>> = std::iter::once(first)
                .chain(caught_up.iter().map(|t| at(t)))
                .map(Some)
                .collect();
            assert_eq!(slots(&runs), want, "catch_up = {mode}");
        });
    }
}

#[test]
fn a_paused_schedule_starts_nothing_and_does_not_catch_up_its_pause() {
    paused().block_on(async {
        let h = harness(&HOURLY.replace("MODE", "all"));
        let scheduler = scheduler(&h);
        let first = at("2026-06-01 01:00");
        scheduler.tick(first + 1_000).await;
        h.history
            .set_schedule_paused("p.toml", true, first + 60_000, None)
            .expect("pause");
        for hour in ["02", "03"] {
            scheduler
                .tick(at(&format!("2026-06-01 {hour}:00")) + 1_000)
                .await;
        }
        assert_eq!(slots(&finished_runs(&h).await), [Some(first)]);
        let resumed = at("2026-06-01 03:30");
        h.history
            .set_schedule_paused("p.toml", false, resumed, None)
            .expect("resume");
        scheduler.tick(resumed + 1_000).await;
        scheduler.tick(at("2026-06-01 04:00") + 1_000).await;
        assert_eq!(
            slots(&finished_runs(&h).await),
            [Some(first), Some(at("2026-06-01 04:00"))],
            "02:00 and 03:00 were paused: not caught up"
        );
        assert_eq!(h.fake.executions().len(), 2);
    });
}

/// The reason a run's log gives for its cancel or failure to start.
fn reason_of(h: &Harness, id: i64) -> String {
    let events = h.history.events(id, None).expect("events");
    events
        .iter()
        .find_map(|e| match &e.event {
            RunEvent::CancelRequested { reason, .. } => reason.clone(),
            _ => None,
        })
        .expect("a reason")
}

#[test]
fn a_scheduled_start_that_fails_is_a_failed_run_with_why_and_can_be_resumed_once_fixed() {
    paused().block_on(async {
        let valid = HOURLY.replace("MODE", "none");
        let h = harness(&valid);
        let scheduler = scheduler(&h);
        let first = at("2026-06-01 01:00");
        scheduler.tick(first + 1_000).await;
        finished_runs(&h).await;
        // The file now has an error (a dependency on a step that is not there); its
        // [schedule] still reads, so 02:00 is due and its start fails, visibly.
        let broken = valid.replace(
            "path = \"nb/n.py\"",
            "path = \"nb/n.py\"\ndepends_on = [\"gone\"]",
        );
        std::fs::write(h.root.join("p.toml"), &broken).expect("saved");
        let second = at("2026-06-01 02:00");
        assert_eq!(
            scheduler.tick(second + 1_000).await,
            Some(at("2026-06-01 03:00"))
        );
        // A notebook the pipeline runs is missing at 03:00.
        std::fs::write(h.root.join("p.toml"), &valid).expect("saved");
        std::fs::remove_file(h.root.join("nb/n.py")).expect("removed");
        let third = at("2026-06-01 03:00");
        scheduler.tick(third + 1_000).await;
        scheduler.tick(third + 5_000).await;
        let runs = finished_runs(&h).await;
        assert_eq!(
            slots(&runs),
            [Some(first), Some(second), Some(third)],
            "once per slot"
        );
        let statuses: Vec<RunStatus> = runs.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Failed]
        );
        for run in &runs[1..] {
            assert_eq!(run.pipeline, "p", "named as the file names it");
            let kind = run.trigger.as_ref().map(|t| t.kind);
            assert_eq!(kind, Some(spool_core::runlog::TriggerKind::Schedule));
        }
        let why = reason_of(&h, runs[1].id);
        assert!(
            why.starts_with("the run could not start: the pipeline has errors:"),
            "{why}"
        );
        assert!(why.contains("p.toml:") && why.contains("gone"), "{why}");
        let why = reason_of(&h, runs[2].id);
        assert!(why.contains("nb/n.py"), "{why}");
        assert_eq!(
            h.fake.executions().len(),
            1,
            "nothing reached Spark for them"
        );

        // Fixed: resuming the 03:00 run runs it, for its slot.
        std::fs::write(h.root.join("nb/n.py"), "x = 1\n").expect("notebook");
        let resumed = h
            .manager(None)
            .start(crate::runs::RunRequest {
                file: "p.toml".into(),
                params: Default::default(),
                resume: Some(runs[2].id),
                rerun: Vec::new(),
                trigger: Trigger::of(spool_core::runlog::TriggerKind::Resume),
                started_by: None,
            })
            .await
            .expect("resumed");
        let runs = finished_runs(&h).await;
        let run = h.history.run(resumed).expect("read").expect("the resume");
        assert_eq!((run.status, runs.len()), (RunStatus::Succeeded, 4));
        assert_eq!(
            run.run_info().trigger_ms,
            third,
            "run.trigger_time is the slot's"
        );
    });
}

/// The `[[notify]]` entries of a file with errors still read: a refused scheduled start tells
/// the `failed` ones, and the run's log records it.
#[test]
fn a_refused_scheduled_start_is_told_to_the_files_failed_webhooks() {
    real_clock().block_on(async {
        let (url, got) = crate::runs::tests::webhook_receiver(Vec::new());
        let broken = format!(
            "name = \"nightly\"\n[schedule]\ncron = \"0 * * * *\"\n\
             [[notify]]\non = [\"failed\"]\nwebhook = \"{url}\"\n\
             [[notebook]]\nid = \"a\"\npath = \"nb/n.py\"\ndepends_on = [\"gone\"]\n"
        );
        let h = Harness::new(&broken, FakeSpark::uniform(0.1));
        let manager = h.manager(None);
        let scheduler = Scheduler::new(h.history.clone(), manager.clone(), h.root.clone());
        let slot = at("2026-06-01 01:00");
        scheduler.tick(slot - 30_000).await;
        scheduler.tick(slot + 1_000).await;
        manager.notifications_sent().await;
        let runs = finished_runs(&h).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (runs[0].status, runs[0].pipeline.as_str()),
            (RunStatus::Failed, "nightly")
        );
        let got = got.lock().expect("lock").clone();
        assert_eq!(got.len(), 1, "{got:?}");
        let body: serde_json::Value = serde_json::from_str(&got[0].1).expect("JSON");
        assert_eq!(
            (body["run_id"].as_i64(), &body["status"]),
            (Some(runs[0].id), &serde_json::json!("failed")),
            "{body}"
        );
        let notified = h.history.events(runs[0].id, None).expect("events");
        assert!(notified.iter().any(|e| matches!(
            e.event,
            RunEvent::Notified {
                status: Some(200),
                ..
            }
        )));
    });
}

/// The loop on the real clock: with nothing scheduled it sleeps its whole rescan; a file saved
/// with a schedule and the news of it wake it at once, and the slot of this minute runs.
#[test]
fn a_saved_schedule_wakes_the_loop_before_its_rescan() {
    real_clock().block_on(async {
        let h = Harness::new(UNSCHEDULED_ONLY, FakeSpark::uniform(0.1));
        let changed = Arc::new(tokio::sync::Notify::new());
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let looping = tokio::spawn(Arc::new(scheduler(&h)).run(changed.clone(), stop));
        // Its first pass finds nothing to schedule.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let every_minute = HOURLY
            .replace("0 * * * *", "* * * * *")
            .replace("MODE", "none");
        std::fs::write(h.root.join("p.toml"), every_minute).expect("saved");
        changed.notify_one();
        let woken = tokio::time::timeout(super::RESCAN / 2, async {
            while finished_runs(&h).await.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(woken.is_ok(), "the saved schedule ran before the rescan");
        let _ = stop_tx.send(true);
        looping.await.expect("the loop stops");
    });
}

const UNSCHEDULED_ONLY: &str = "[[notebook]]\nid = \"a\"\npath = \"nb/n.py\"\n";
