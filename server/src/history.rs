//! Run history in SQLite: an append-only log of run events, written before they are acted on.
//! A run's state is rebuilt by folding its events, so a process killed at any point loses
//! nothing that was recorded, and a restart can tell which runs were interrupted.

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
pub use spool_core::listing::RunFilter;
pub use spool_core::runlog::{
    AttemptOutcome, AttemptRecord, RunEvent, RunRecord, RunStatus, RunSummary, StoredEvent,
    TaskError, TaskRecord,
};
use std::path::Path;
use std::sync::Mutex;

/// Captured notebook output kept per attempt; the rest is cut with a marker.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// Runs deleted by one transaction of the retention: appends wait at most that long.
pub const PRUNE_BATCH: u32 = 500;
/// Runs summarised by one transaction of the back-fill of an older history.
const BACKFILL_BATCH: usize = 1000;
/// `PRAGMA user_version` of a history whose every run has its summary.
const SUMMARIES_VERSION: i64 = 1;

/// The history database (one file, WAL mode).
pub struct History {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    -- The process executing the run: a run whose process is gone was interrupted.
    owner_pid INTEGER NOT NULL,
    -- When that process started (clock ticks since boot, /proc/PID/stat field 22; 0 when
    -- unknown): a PID the system has given to another process since does not count.
    owner_start INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
-- Runs with an event that no longer decodes: set aside, so that the rest stay usable.
CREATE TABLE IF NOT EXISTS quarantined (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id),
    reason TEXT NOT NULL
);
-- One row per run, written in the same transaction as the events that change it: listings
-- and the start-up's search for interrupted runs read these, never the events.
CREATE TABLE IF NOT EXISTS run_summaries (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id),
    pipeline TEXT NOT NULL,
    file TEXT NOT NULL,
    status TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    -- The whole `RunSummary` as JSON; the columns around it are what listings filter on.
    body TEXT NOT NULL,
    -- What started the run (`TriggerKind`'s name); NULL in logs without a trigger.
    trigger TEXT
);
CREATE INDEX IF NOT EXISTS run_summaries_file ON run_summaries(file, run_id);
CREATE INDEX IF NOT EXISTS run_summaries_pipeline ON run_summaries(pipeline, run_id);
CREATE INDEX IF NOT EXISTS run_summaries_status ON run_summaries(status, run_id);
-- The scheduler's state per pipeline file (crate::scheduler): the newest slot handled (run
-- or skipped) and whether its schedule is paused, kept across restarts.
CREATE TABLE IF NOT EXISTS schedules (
    file TEXT PRIMARY KEY,
    handled_ms INTEGER,
    paused INTEGER NOT NULL DEFAULT 0,
    -- The last pause or resume: when, and the name of the token that asked (never a secret).
    changed_ms INTEGER,
    changed_by TEXT
);
-- A pipeline's text kept while it has errors (crate::drafts), one per file.
CREATE TABLE IF NOT EXISTS drafts (
    file TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    etag TEXT,
    saved_ms INTEGER NOT NULL,
    saved_by TEXT
);
";

/// How long finished runs are kept (`spool serve --keep-runs/--keep-days`); runs in progress
/// are always kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the newest this many finished runs.
    pub keep_runs: Option<u32>,
    /// Keep finished runs that ended less than this many days ago.
    pub keep_days: Option<u32>,
}

impl Retention {
    pub fn is_set(&self) -> bool {
        self.keep_runs.is_some() || self.keep_days.is_some()
    }
}

/// An event of the history that does not decode (a damaged database, or one written by an
/// incompatible version).
#[derive(Debug, thiserror::Error)]
#[error("run {run} event {seq} is unreadable: {reason}")]
pub struct Unreadable {
    pub run: i64,
    pub seq: i64,
    pub reason: String,
}

/// Whether `table` has `column` (histories of older builds lack the newer ones).
fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists(params![table, column])
}

impl History {
    /// Opens (creating if needed) `runs.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<History> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            anyhow::anyhow!("cannot create data directory `{}`: {e}", data_dir.display())
        })?;
        let path = data_dir.join("runs.db");
        let mut conn = Connection::open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open run history `{}`: {e}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Every append is a transaction that reaches the WAL before the call returns.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // Histories from before `owner_start`: the column is added, old runs keep 0.
        if !has_column(&conn, "runs", "owner_start")? {
            conn.execute_batch(
                "ALTER TABLE runs ADD COLUMN owner_start INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        // Summaries from before the trigger column: the column is added and read from them.
        if !has_column(&conn, "run_summaries", "trigger")? {
            conn.execute_batch(
                "ALTER TABLE run_summaries ADD COLUMN trigger TEXT;
                 UPDATE run_summaries SET trigger = json_extract(body, '$.trigger.kind');",
            )?;
        }
        // Schedules from before pauses were attributed: paused or resumed by no one known.
        if !has_column(&conn, "schedules", "changed_ms")? {
            conn.execute_batch(
                "ALTER TABLE schedules ADD COLUMN changed_ms INTEGER;
                 ALTER TABLE schedules ADD COLUMN changed_by TEXT;",
            )?;
        }
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < SUMMARIES_VERSION {
            backfill_summaries(&mut conn)?;
            conn.pragma_update(None, "user_version", SUMMARIES_VERSION)?;
        }
        Ok(History {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (statements are
        // atomic), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a run whose first event is `started` (a `RunStarted`); returns its id.
    pub fn create_run(&self, started: &RunEvent, at_ms: i64) -> anyhow::Result<i64> {
        anyhow::ensure!(
            matches!(started, RunEvent::RunStarted { .. }),
            "a run must start with a RunStarted event"
        );
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let pid = std::process::id();
        tx.execute(
            "INSERT INTO runs (created_ms, owner_pid, owner_start) VALUES (?1, ?2, ?3)",
            params![at_ms, pid, process_start(pid).unwrap_or(0)],
        )?;
        let id = tx.last_insert_rowid();
        let first = StoredEvent {
            seq: 0,
            at_ms,
            event: started.clone(),
        };
        tx.execute(
            "INSERT INTO events (run_id, seq, at_ms, body) VALUES (?1, 0, ?2, ?3)",
            params![id, at_ms, serde_json::to_string(&first.event)?],
        )?;
        let record = RunRecord::started(id, &first).expect("checked to be a RunStarted");
        write_summary(&tx, &RunSummary::of(&record))?;
        tx.commit()?;
        Ok(id)
    }

    /// Appends one event; returns its sequence number.
    pub fn append(&self, run: i64, event: &RunEvent, at_ms: i64) -> anyhow::Result<i64> {
        self.append_all(run, &[(event, at_ms)])
    }

    /// Appends events in order in one transaction (one sync to disk: the executor writes what
    /// it decided together, before acting on it); returns the last one's sequence number.
    pub fn append_all<E: std::borrow::Borrow<RunEvent>>(
        &self,
        run: i64,
        events: &[(E, i64)],
    ) -> anyhow::Result<i64> {
        anyhow::ensure!(!events.is_empty(), "nothing to append");
        anyhow::ensure!(
            !events
                .iter()
                .any(|(e, _)| matches!(e.borrow(), RunEvent::Unknown)),
            "an event of unknown kind is only ever read, never written"
        );
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), -1) FROM events WHERE run_id = ?1",
            params![run],
            |r| r.get(0),
        )?;
        anyhow::ensure!(seq >= 0, "run {run} does not exist");
        // A quarantined run has no summary to keep.
        let mut summary = read_summary(&tx, run)?;
        let mut ended = false;
        for (event, at_ms) in events {
            seq += 1;
            let stored = StoredEvent {
                seq,
                at_ms: *at_ms,
                event: bounded(event.borrow().clone()),
            };
            tx.execute(
                "INSERT INTO events (run_id, seq, at_ms, body) VALUES (?1, ?2, ?3, ?4)",
                params![run, seq, at_ms, serde_json::to_string(&stored.event)?],
            )?;
            if let Some(s) = &mut summary {
                s.apply(&stored);
            }
            ended |= stored.event.ends_run();
        }
        if let Some(mut s) = summary {
            // A log of an older build settles its tasks only in the fold of its end: a run's
            // end is summarised from its whole fold, once.
            if ended {
                match fold(&tx, run) {
                    Ok(Some(record)) => s = RunSummary::of(&record),
                    Ok(None) => {}
                    Err(e) => quarantine(&tx, run, e)?,
                }
            }
            write_summary(&tx, &s)?;
        }
        tx.commit()?;
        Ok(seq)
    }

    /// Events of a run in order, from sequence number `after + 1` on.
    pub fn events(&self, run: i64, after: Option<i64>) -> anyhow::Result<Vec<StoredEvent>> {
        read_events(&self.conn(), run, after)
    }

    pub fn run(&self, id: i64) -> anyhow::Result<Option<RunRecord>> {
        fold(&self.conn(), id)
    }

    /// The summary of run `id`; `None` when there is no such run.
    pub fn summary(&self, id: i64) -> anyhow::Result<Option<RunSummary>> {
        read_summary(&self.conn(), id)
    }

    /// The runs `filter` asks for, newest first, from their summaries (no run's events are
    /// read). Quarantined runs are listed by [`History::quarantined`] instead.
    pub fn list(&self, filter: &RunFilter) -> anyhow::Result<Vec<RunSummary>> {
        use rusqlite::types::Value;
        let mut sql = String::from(
            "SELECT body FROM run_summaries \
             WHERE run_id NOT IN (SELECT run_id FROM quarantined)",
        );
        let mut args: Vec<Value> = Vec::new();
        if let Some(before) = filter.before {
            sql.push_str(" AND run_id < ?");
            args.push(before.into());
        }
        if let Some(p) = &filter.pipeline {
            // One column, so that its index gives the newest runs first without a sort.
            let column = match p.ends_with(".toml") {
                true => "file",
                false => "pipeline",
            };
            sql.push_str(&format!(" AND {column} = ?"));
            args.push(p.clone().into());
        }
        if !filter.statuses.is_empty() {
            let marks = vec!["?"; filter.statuses.len()].join(", ");
            sql.push_str(&format!(" AND status IN ({marks})"));
            args.extend(filter.statuses.iter().map(|s| s.name().to_string().into()));
        }
        if !filter.triggers.is_empty() {
            let marks = vec!["?"; filter.triggers.len()].join(", ");
            sql.push_str(&format!(" AND trigger IN ({marks})"));
            args.extend(filter.triggers.iter().map(|k| k.name().to_string().into()));
        }
        if let Some(since) = filter.since_ms {
            sql.push_str(" AND started_ms >= ?");
            args.push(since.into());
        }
        if let Some(until) = filter.until_ms {
            sql.push_str(" AND started_ms < ?");
            args.push(until.into());
        }
        sql.push_str(" ORDER BY run_id DESC LIMIT ?");
        args.push(i64::from(filter.limit).into());
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for body in rows {
            out.push(serde_json::from_str(&body?)?);
        }
        Ok(out)
    }

    /// Runs set aside because their history does not decode: id and why.
    pub fn quarantined(&self) -> anyhow::Result<Vec<(i64, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT run_id, reason FROM quarantined ORDER BY run_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks every unfinished run whose process is gone as interrupted (call at start-up;
    /// before this process starts runs of its own; runs of other live processes sharing the
    /// data directory are left alone); returns their ids. Reads the summaries of the runs
    /// still running, not every run's events.
    pub fn mark_interrupted(&self, at_ms: i64) -> anyhow::Result<Vec<i64>> {
        let running: Vec<(i64, u32, u64)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT r.id, r.owner_pid, r.owner_start FROM run_summaries s \
                 JOIN runs r ON r.id = s.run_id \
                 WHERE s.status IN (?1, ?2) \
                 AND s.run_id NOT IN (SELECT run_id FROM quarantined) ORDER BY r.id",
            )?;
            let unfinished = params![RunStatus::Running.name(), RunStatus::Queued.name()];
            let rows = stmt.query_map(unfinished, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut marked = Vec::new();
        for (id, pid, start) in running {
            if pid == std::process::id() || !owner_alive(pid, start) {
                self.append(
                    id,
                    &RunEvent::RunInterrupted {
                        reason: "the process running it stopped before it finished".into(),
                    },
                    at_ms,
                )?;
                marked.push(id);
            }
        }
        Ok(marked)
    }

    /// Deletes at most [`PRUNE_BATCH`] finished runs (events, summary and all) that
    /// `retention` no longer keeps, in one transaction; returns how many. Call it again while
    /// it returns a full batch.
    pub fn prune(&self, retention: Retention, now_ms: i64) -> anyhow::Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut doomed: Vec<i64> = Vec::new();
        let running = RunStatus::Running.name();
        if let Some(keep) = retention.keep_runs {
            let mut stmt = tx.prepare(
                "SELECT run_id FROM run_summaries WHERE status NOT IN (?1, ?4) \
                 ORDER BY run_id DESC LIMIT ?2 OFFSET ?3",
            )?;
            let queued = RunStatus::Queued.name();
            let rows = stmt.query_map(params![running, PRUNE_BATCH, keep, queued], |r| r.get(0))?;
            doomed = rows.collect::<Result<_, _>>()?;
        }
        if let Some(days) = retention.keep_days {
            let cutoff = now_ms - i64::from(days) * 86_400_000;
            let room = PRUNE_BATCH as usize - doomed.len();
            let mut stmt = tx.prepare(
                "SELECT run_id FROM run_summaries WHERE status != ?1 AND ended_ms < ?2 \
                 ORDER BY run_id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![running, cutoff, room as i64], |r| r.get(0))?;
            for id in rows {
                let id = id?;
                if !doomed.contains(&id) {
                    doomed.push(id);
                }
            }
        }
        for &id in &doomed {
            for table in ["events", "run_summaries", "quarantined"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE run_id = ?1"),
                    params![id],
                )?;
            }
            tx.execute("DELETE FROM runs WHERE id = ?1", params![id])?;
        }
        tx.commit()?;
        Ok(doomed.len())
    }
}

fn read_events(
    conn: &Connection,
    run: i64,
    after: Option<i64>,
) -> anyhow::Result<Vec<StoredEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at_ms, body FROM events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![run, after.unwrap_or(-1)], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, at_ms, body) = row?;
        let event = serde_json::from_str(&body).map_err(|e| Unreadable {
            run,
            seq,
            reason: e.to_string(),
        })?;
        out.push(StoredEvent { seq, at_ms, event });
    }
    Ok(out)
}

/// Run `id` rebuilt from all its events; `None` when there is no such run.
fn fold(conn: &Connection, id: i64) -> anyhow::Result<Option<RunRecord>> {
    let exists = conn
        .query_row("SELECT 1 FROM runs WHERE id = ?1", params![id], |_| Ok(()))
        .optional()?;
    if exists.is_none() {
        return Ok(None);
    }
    Ok(RunRecord::fold(id, &read_events(conn, id, None)?))
}

fn read_summary(conn: &Connection, id: i64) -> anyhow::Result<Option<RunSummary>> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM run_summaries WHERE run_id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
}

fn write_summary(conn: &Connection, s: &RunSummary) -> anyhow::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO run_summaries \
         (run_id, pipeline, file, status, started_ms, ended_ms, body, trigger) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            s.id,
            s.pipeline,
            s.file,
            s.status.name(),
            s.started_ms,
            s.ended_ms,
            serde_json::to_string(s)?,
            s.trigger.as_ref().map(|t| t.kind.name())
        ],
    )?;
    Ok(())
}

/// Sets run `id` aside when `error` says its log does not decode; any other error is passed on.
fn quarantine(conn: &Connection, id: i64, error: anyhow::Error) -> anyhow::Result<()> {
    let Some(unreadable) = error.downcast_ref::<Unreadable>() else {
        return Err(error);
    };
    conn.execute(
        "INSERT OR IGNORE INTO quarantined (run_id, reason) VALUES (?1, ?2)",
        params![id, unreadable.to_string()],
    )?;
    Ok(())
}

/// Writes the summary of every run that has none (a history of a build before summaries),
/// folding each run's log once, in batches of [`BACKFILL_BATCH`] runs per transaction (a
/// back-fill stopped midway goes on at the next open). A run whose log does not decode is
/// quarantined instead.
fn backfill_summaries(conn: &mut Connection) -> anyhow::Result<()> {
    loop {
        let tx = conn.transaction()?;
        let ids: Vec<i64> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM runs WHERE id NOT IN (SELECT run_id FROM run_summaries) \
                 AND id NOT IN (SELECT run_id FROM quarantined) ORDER BY id LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![BACKFILL_BATCH as i64], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for &id in &ids {
            match fold(&tx, id) {
                Ok(Some(record)) => write_summary(&tx, &RunSummary::of(&record))?,
                Ok(None) => {
                    tx.execute(
                        "INSERT OR IGNORE INTO quarantined (run_id, reason) VALUES (?1, ?2)",
                        params![id, "its log does not begin with run_started"],
                    )?;
                }
                Err(e) => quarantine(&tx, id, e)?,
            }
        }
        tx.commit()?;
        if ids.len() < BACKFILL_BATCH {
            return Ok(());
        }
    }
}

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/PID/stat`);
/// `None` when there is no such process (or no `/proc`).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2, the command name, is in parentheses and may hold spaces and parentheses.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (the state) on; field 22 is the 20th of them.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that owns a run still runs: its PID exists and, when its start time was
/// recorded, started then (a PID reused by another process is not the owner).
fn owner_alive(pid: u32, start: u64) -> bool {
    pid != 0 && process_start(pid).is_some_and(|now| start == 0 || now == start)
}

/// Cuts captured output to [`MAX_OUTPUT_BYTES`] at a character boundary.
fn bounded(mut event: RunEvent) -> RunEvent {
    if let RunEvent::TaskFinished {
        output, exit_value, ..
    } = &mut event
    {
        for text in [output, exit_value] {
            *text = text.take().map(|o| truncate(o, MAX_OUTPUT_BYTES));
        }
    }
    event
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str("\n… [output truncated]");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn started() -> RunEvent {
        RunEvent::RunStarted {
            pipeline: "p".into(),
            file: "p.toml".into(),
            params: BTreeMap::new(),
            resumed_from: None,
            plan: serde_json::json!({}),
            trigger: None,
            started_by: None,
        }
    }

    fn finished(task: &str, attempt: u32, outcome: AttemptOutcome) -> RunEvent {
        RunEvent::TaskFinished {
            task: task.into(),
            attempt,
            outcome,
            error: None,
            output: None,
            exit_value: None,
            metrics: None,
        }
    }

    #[test]
    fn a_run_is_rebuilt_from_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let id = h.create_run(&started(), 1000).unwrap();
        h.append(
            id,
            &RunEvent::TaskStarted {
                task: "a".into(),
                attempt: 1,
            },
            1100,
        )
        .unwrap();
        h.append(id, &finished("a", 1, AttemptOutcome::Failed), 1200)
            .unwrap();
        h.append(
            id,
            &RunEvent::TaskStarted {
                task: "a".into(),
                attempt: 2,
            },
            1300,
        )
        .unwrap();
        h.append(id, &finished("a", 2, AttemptOutcome::Succeeded), 1400)
            .unwrap();
        h.append(
            id,
            &RunEvent::TaskSkipped {
                task: "b".into(),
                reason: "x".into(),
            },
            1400,
        )
        .unwrap();
        h.append(
            id,
            &RunEvent::RunFinished {
                status: RunStatus::Failed,
            },
            1500,
        )
        .unwrap();
        let run = h.run(id).unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.tasks["a"].attempts.len(), 2);
        assert!(run.tasks["a"].succeeded());
        assert!(!run.tasks["b"].succeeded());
        assert_eq!(run.ended_ms, Some(1500));
        assert_eq!(h.events(id, Some(4)).unwrap().len(), 2);
        assert_eq!(h.summary(id).unwrap(), Some(RunSummary::of(&run)));
    }

    #[test]
    fn unfinished_runs_are_marked_interrupted_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (done, open) = {
            let h = History::open(dir.path()).unwrap();
            let done = h.create_run(&started(), 1).unwrap();
            h.append(
                done,
                &RunEvent::RunFinished {
                    status: RunStatus::Succeeded,
                },
                2,
            )
            .unwrap();
            let open = h.create_run(&started(), 3).unwrap();
            h.append(
                open,
                &RunEvent::TaskStarted {
                    task: "a".into(),
                    attempt: 1,
                },
                4,
            )
            .unwrap();
            (done, open)
        };
        // A run still waiting in the queue of the process that stopped.
        let queued = {
            let h = History::open(dir.path()).unwrap();
            let queued = h.create_run(&started(), 5).unwrap();
            let waits = RunEvent::RunQueued {
                reason: "queued: 1 run(s) of `p.toml` in progress".into(),
            };
            h.append(queued, &waits, 5).unwrap();
            assert_eq!(h.run(queued).unwrap().unwrap().status, RunStatus::Queued);
            queued
        };
        let h = History::open(dir.path()).unwrap();
        assert_eq!(h.mark_interrupted(10).unwrap(), vec![open, queued]);
        assert_eq!(h.run(open).unwrap().unwrap().status, RunStatus::Interrupted);
        assert_eq!(
            h.run(queued).unwrap().unwrap().status,
            RunStatus::Interrupted
        );
        assert_eq!(h.run(done).unwrap().unwrap().status, RunStatus::Succeeded);
        assert!(h.mark_interrupted(11).unwrap().is_empty());
    }

    #[test]
    fn a_reused_pid_does_not_keep_a_dead_run_running() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        // Another live process (the test's parent): its PID with its real start time is a live
        // owner; with another start time it is a reused PID.
        let other = std::os::unix::process::parent_id();
        let real = process_start(other).expect("/proc gives the start time");
        let owned_by = |start: u64| {
            let id = h.create_run(&started(), 1).unwrap();
            h.conn()
                .execute(
                    "UPDATE runs SET owner_pid = ?1, owner_start = ?2 WHERE id = ?3",
                    params![other, start, id],
                )
                .unwrap();
            id
        };
        let live = owned_by(real);
        let reused = owned_by(real + 1);
        let unknown_start = owned_by(0);
        assert_eq!(h.mark_interrupted(10).unwrap(), vec![reused]);
        assert_eq!(h.run(live).unwrap().unwrap().status, RunStatus::Running);
        assert_eq!(
            h.run(unknown_start).unwrap().unwrap().status,
            RunStatus::Running,
            "a run recorded before start times were kept trusts its PID"
        );
    }

    #[test]
    fn long_output_is_cut_and_bad_appends_fail() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let id = h.create_run(&started(), 1).unwrap();
        let mut ev = finished("a", 1, AttemptOutcome::Succeeded);
        if let RunEvent::TaskFinished { output, .. } = &mut ev {
            *output = Some("é".repeat(MAX_OUTPUT_BYTES));
        }
        h.append(
            id,
            &RunEvent::TaskStarted {
                task: "a".into(),
                attempt: 1,
            },
            2,
        )
        .unwrap();
        h.append(id, &ev, 3).unwrap();
        let out = h.run(id).unwrap().unwrap().tasks["a"].attempts[0]
            .output
            .clone()
            .unwrap();
        assert!(out.len() < MAX_OUTPUT_BYTES + 64 && out.ends_with("[output truncated]"));
        assert!(h
            .append(
                id + 1,
                &RunEvent::CancelRequested {
                    reason: None,
                    by: None,
                },
                4
            )
            .is_err());
        assert!(h.append(id, &RunEvent::Unknown, 5).is_err());
    }

    #[test]
    fn a_run_with_an_undecodable_event_is_quarantined_and_the_rest_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let good = h.create_run(&started(), 1).unwrap();
        let bad = h.create_run(&started(), 2).unwrap();
        h.conn()
            .execute(
                "INSERT INTO events (run_id, seq, at_ms, body) VALUES (?1, 1, 3, '{not json')",
                params![bad],
            )
            .unwrap();
        drop(h);
        let h = History::open(dir.path()).unwrap();
        // Both were running; the end of the bad one is recorded, and its fold sets it aside.
        assert_eq!(h.mark_interrupted(10).unwrap(), vec![good, bad]);
        let listed: Vec<i64> = h
            .list(&RunFilter::default())
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(listed, vec![good]);
        let quarantined = h.quarantined().unwrap();
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].0, bad);
        assert!(quarantined[0].1.contains("event 1"), "{quarantined:?}");
        let err = h.run(bad).unwrap_err();
        assert!(err.downcast_ref::<Unreadable>().is_some());
        assert!(h.mark_interrupted(11).unwrap().is_empty());
    }

    /// A history as a build before summaries wrote it: `runs` and `events` only, in one
    /// transaction (as many runs as one back-fill batch and more).
    fn old_history(dir: &Path, runs: &[Vec<(i64, RunEvent)>], broken: i64) {
        let mut conn = Connection::open(dir.join("runs.db")).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created_ms INTEGER NOT NULL,
                 owner_pid INTEGER NOT NULL, owner_start INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE events (run_id INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL,
                 at_ms INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (run_id, seq));
             CREATE TABLE quarantined (run_id INTEGER PRIMARY KEY REFERENCES runs(id),
                 reason TEXT NOT NULL);",
        )
        .unwrap();
        for (i, events) in runs.iter().enumerate() {
            let id = i as i64 + 1;
            // A process that is gone.
            tx.execute(
                "INSERT INTO runs (id, created_ms, owner_pid) VALUES (?1, 0, 0)",
                params![id],
            )
            .unwrap();
            for (seq, (at, e)) in events.iter().enumerate() {
                let body = match id == broken && seq == 1 {
                    true => "{not json".to_string(),
                    false => serde_json::to_string(e).unwrap(),
                };
                tx.execute(
                    "INSERT INTO events (run_id, seq, at_ms, body) VALUES (?1, ?2, ?3, ?4)",
                    params![id, seq as i64, at, body],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }

    #[test]
    fn opening_an_older_history_back_fills_every_runs_summary_from_its_fold() {
        let dir = tempfile::tempdir().unwrap();
        let settled = |task: &str, state| RunEvent::TaskSettled {
            task: task.into(),
            state,
            reason: spool_core::runlog::FinalReason::Attempt,
        };
        let start = |t: &str| RunEvent::TaskStarted {
            task: t.into(),
            attempt: 1,
        };
        let end = |status| RunEvent::RunFinished { status };
        // This build's log; a log of a build that settled tasks only at the run's end (one
        // failed attempt, one skip); a run still running; filler beyond one batch.
        let mut runs = vec![
            vec![
                (0, started()),
                (1, start("a")),
                (2, finished("a", 1, AttemptOutcome::Succeeded)),
                (2, settled("a", spool_core::sched::Final::Succeeded)),
                (3, end(RunStatus::Succeeded)),
            ],
            vec![
                (10, started()),
                (11, start("a")),
                (12, finished("a", 1, AttemptOutcome::Failed)),
                (
                    12,
                    RunEvent::TaskSkipped {
                        task: "b".into(),
                        reason: "a failed".into(),
                    },
                ),
                (13, end(RunStatus::Failed)),
            ],
            vec![(20, started()), (21, start("a"))],
            vec![(30, started()), (31, start("a"))],
        ];
        let broken = runs.len() as i64;
        runs.extend((0..BACKFILL_BATCH).map(|i| {
            let at = 100 + i as i64;
            vec![(at, started()), (at, end(RunStatus::Cancelled))]
        }));
        old_history(dir.path(), &runs, broken);

        let h = History::open(dir.path()).unwrap();
        let total = runs.len() as i64;
        let quarantined = h.quarantined().unwrap();
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].0, broken, "{quarantined:?}");
        for id in (1..=total).filter(|&id| id != broken) {
            let folded = RunSummary::of(&h.run(id).unwrap().unwrap());
            assert_eq!(h.summary(id).unwrap(), Some(folded), "run {id}");
        }
        let legacy = h.summary(2).unwrap().unwrap();
        assert_eq!(
            (
                legacy.status,
                legacy.task_counts.failed,
                legacy.task_counts.skipped
            ),
            (RunStatus::Failed, 1, 1)
        );
        // The start-up finds the one running run through the summaries.
        assert_eq!(h.mark_interrupted(1000).unwrap(), vec![3]);
        let interrupted = h.summary(3).unwrap().unwrap();
        assert_eq!(
            (interrupted.status, interrupted.ended_ms),
            (RunStatus::Interrupted, Some(1000))
        );
        let newest = h.list(&RunFilter::default()).unwrap();
        assert_eq!(newest.len(), 50);
        assert_eq!(newest[0].id, total);
        drop(h);
        // Done once: reopening reads nothing again (a summary changed by hand stays).
        let h = History::open(dir.path()).unwrap();
        h.conn()
            .execute(
                "UPDATE run_summaries SET pipeline = 'x' WHERE run_id = 1",
                [],
            )
            .unwrap();
        drop(h);
        let h = History::open(dir.path()).unwrap();
        assert_eq!(
            h.list(&RunFilter {
                pipeline: Some("x".into()),
                ..RunFilter::default()
            })
            .unwrap()
            .len(),
            1
        );
    }

    #[test]
    fn retention_keeps_queued_runs() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let queued = h.create_run(&started(), 1).unwrap();
        let waits = RunEvent::RunQueued {
            reason: "queued".into(),
        };
        h.append(queued, &waits, 1).unwrap();
        let done = h.create_run(&started(), 2).unwrap();
        let end = RunEvent::RunFinished {
            status: RunStatus::Succeeded,
        };
        h.append(done, &end, 3).unwrap();
        let keep_none = Retention {
            keep_runs: Some(0),
            keep_days: Some(0),
        };
        assert_eq!(h.prune(keep_none, 86_400_000).unwrap(), 1);
        assert!(h.summary(done).unwrap().is_none());
        assert!(
            h.summary(queued).unwrap().is_some(),
            "a queued run is not finished"
        );
    }

    #[test]
    fn summaries_from_before_the_trigger_column_get_it_from_their_body() {
        let dir = tempfile::tempdir().unwrap();
        let scheduled = {
            let h = History::open(dir.path()).unwrap();
            let mut event = started();
            if let RunEvent::RunStarted { trigger, .. } = &mut event {
                *trigger = Some(spool_core::runlog::Trigger::schedule(5));
            }
            h.create_run(&started(), 1).unwrap();
            let scheduled = h.create_run(&event, 2).unwrap();
            h.conn()
                .execute_batch("ALTER TABLE run_summaries DROP COLUMN trigger")
                .unwrap();
            scheduled
        };
        let h = History::open(dir.path()).unwrap();
        let by_schedule = RunFilter {
            triggers: vec![spool_core::runlog::TriggerKind::Schedule],
            ..RunFilter::default()
        };
        let listed: Vec<i64> = h.list(&by_schedule).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(listed, [scheduled]);
    }

    #[test]
    fn retention_deletes_old_finished_runs_in_batches_and_keeps_running_ones() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path()).unwrap();
        let day = 86_400_000;
        let mut ids = Vec::new();
        for i in 0..6 {
            let id = h.create_run(&started(), i * day).unwrap();
            if i != 1 {
                let end = RunEvent::RunFinished {
                    status: RunStatus::Succeeded,
                };
                h.append(id, &end, i * day + 1).unwrap();
            }
            ids.push(id);
        }
        // Keep 3 finished runs: the oldest two finished ones go, the running one stays.
        let keep_three = Retention {
            keep_runs: Some(3),
            keep_days: None,
        };
        assert_eq!(h.prune(keep_three, 6 * day).unwrap(), 2);
        assert_eq!(h.prune(keep_three, 6 * day).unwrap(), 0);
        let left: Vec<i64> = h
            .list(&RunFilter::default())
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(left, vec![ids[5], ids[4], ids[3], ids[1]]);
        assert!(h.events(ids[0], None).unwrap().is_empty());
        assert!(h.run(ids[2]).unwrap().is_none());
        // Keep 2 days at day 6: runs that ended before day 4 go.
        let two_days = Retention {
            keep_runs: None,
            keep_days: Some(2),
        };
        assert_eq!(h.prune(two_days, 6 * day).unwrap(), 1);
        assert!(h.summary(ids[3]).unwrap().is_none());
        assert!(h.summary(ids[1]).unwrap().is_some(), "running runs stay");
        // Ids are never given again.
        let next = h.create_run(&started(), 7 * day).unwrap();
        assert!(next > ids[5]);
    }
}
