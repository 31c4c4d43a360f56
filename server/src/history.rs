//! Run history in SQLite: an append-only log of run events, written before they are acted on.
//! A run's state is rebuilt by folding its events, so a process killed at any point loses
//! nothing that was recorded, and a restart can tell which runs were interrupted.

use rusqlite::{params, Connection, OptionalExtension};
pub use spool_core::runlog::{
    AttemptOutcome, AttemptRecord, RunEvent, RunRecord, RunStatus, StoredEvent, TaskError,
    TaskRecord,
};
use std::path::Path;
use std::sync::Mutex;

/// Captured notebook output kept per attempt; the rest is cut with a marker.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// Runs listed at most by one call.
pub const MAX_LISTED_RUNS: u32 = 1000;

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
";

/// An event of the history that does not decode (a damaged database, or one written by an
/// incompatible version).
#[derive(Debug, thiserror::Error)]
#[error("run {run} event {seq} is unreadable: {reason}")]
pub struct Unreadable {
    pub run: i64,
    pub seq: i64,
    pub reason: String,
}

impl History {
    /// Opens (creating if needed) `runs.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<History> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            anyhow::anyhow!("cannot create data directory `{}`: {e}", data_dir.display())
        })?;
        let path = data_dir.join("runs.db");
        let conn = Connection::open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open run history `{}`: {e}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Every append is a transaction that reaches the WAL before the call returns.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // Histories from before `owner_start`: the column is added, old runs keep 0.
        let has_start: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('runs') WHERE name = 'owner_start'")?
            .exists([])?;
        if !has_start {
            conn.execute_batch(
                "ALTER TABLE runs ADD COLUMN owner_start INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        Ok(History {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
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
        tx.execute(
            "INSERT INTO events (run_id, seq, at_ms, body) VALUES (?1, 0, ?2, ?3)",
            params![id, at_ms, serde_json::to_string(started)?],
        )?;
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
        for (event, at_ms) in events {
            seq += 1;
            let body = serde_json::to_string(&bounded(event.borrow().clone()))?;
            tx.execute(
                "INSERT INTO events (run_id, seq, at_ms, body) VALUES (?1, ?2, ?3, ?4)",
                params![run, seq, at_ms, body],
            )?;
        }
        tx.commit()?;
        Ok(seq)
    }

    /// Events of a run in order, from sequence number `after + 1` on.
    pub fn events(&self, run: i64, after: Option<i64>) -> anyhow::Result<Vec<StoredEvent>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
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

    pub fn run(&self, id: i64) -> anyhow::Result<Option<RunRecord>> {
        let exists: Option<i64> = self
            .conn()
            .query_row("SELECT id FROM runs WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        Ok(RunRecord::fold(id, &self.events(id, None)?))
    }

    /// The newest runs first. A run with an event that does not decode is quarantined
    /// (listed by [`History::quarantined`] instead) rather than failing the whole list.
    pub fn runs(&self, limit: u32) -> anyhow::Result<Vec<RunRecord>> {
        let ids: Vec<i64> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT id FROM runs WHERE id NOT IN (SELECT run_id FROM quarantined) \
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit.min(MAX_LISTED_RUNS)], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for id in ids {
            match self.run(id) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(e) => match e.downcast_ref::<Unreadable>() {
                    Some(unreadable) => {
                        self.conn().execute(
                            "INSERT OR IGNORE INTO quarantined (run_id, reason) VALUES (?1, ?2)",
                            params![id, unreadable.to_string()],
                        )?;
                    }
                    None => return Err(e),
                },
            }
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
    /// data directory are left alone); returns their
    /// ids.
    pub fn mark_interrupted(&self, at_ms: i64) -> anyhow::Result<Vec<i64>> {
        let owners: std::collections::HashMap<i64, (u32, u64)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT id, owner_pid, owner_start FROM runs")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut marked = Vec::new();
        for run in self.runs(MAX_LISTED_RUNS)? {
            let (pid, start) = owners.get(&run.id).copied().unwrap_or((0, 0));
            if run.status == RunStatus::Running
                && (pid == std::process::id() || !owner_alive(pid, start))
            {
                self.append(
                    run.id,
                    &RunEvent::RunInterrupted {
                        reason: "the process running it stopped before it finished".into(),
                    },
                    at_ms,
                )?;
                marked.push(run.id);
            }
        }
        Ok(marked)
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
        let h = History::open(dir.path()).unwrap();
        assert_eq!(h.mark_interrupted(10).unwrap(), vec![open]);
        assert_eq!(h.run(open).unwrap().unwrap().status, RunStatus::Interrupted);
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
            .append(id + 1, &RunEvent::CancelRequested { reason: None }, 4)
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
        assert_eq!(h.mark_interrupted(10).unwrap(), vec![good]);
        let listed: Vec<i64> = h.runs(10).unwrap().iter().map(|r| r.id).collect();
        assert_eq!(listed, vec![good]);
        let quarantined = h.quarantined().unwrap();
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].0, bad);
        assert!(quarantined[0].1.contains("event 1"), "{quarantined:?}");
        let err = h.run(bad).unwrap_err();
        assert!(err.downcast_ref::<Unreadable>().is_some());
    }
}
