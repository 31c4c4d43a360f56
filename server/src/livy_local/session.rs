//! One session of the local endpoint: its state, its statements, and the task that drives its
//! PySpark driver process (`python/livy_repl.py`).
//!
//! Livy's semantics kept here: statements run one at a time in submission order; the session goes
//! `starting -> idle <-> busy -> dead | killed`; a statement goes `waiting -> running -> available`
//! or, cancelled, `waiting -> cancelled` and `running -> cancelling -> cancelled`; a driver
//! process that exits makes the session `dead` and every unfinished statement `available` with an
//! error output.

use crate::livy::wire::{
    Kind, OutputStatus, SessionState, Statement, StatementOutput, StatementState,
};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::Notify;

/// The driver program, run with `python -c`.
const REPL_SOURCE: &str = include_str!("../../../python/livy_repl.py");

/// Finished statements kept per session (Livy's `livy.rsc.retained-statements`).
const RETAINED_STATEMENTS: usize = 100;
/// Statements waiting at most per session.
pub(crate) const MAX_WAITING_STATEMENTS: usize = 1000;
/// Log lines kept per session, and the length a log line is cut to.
const MAX_LOG_LINES: usize = 2000;
const MAX_LOG_LINE_BYTES: usize = 16 * 1024;
/// Log lines shown in a session's JSON.
const SESSION_LOG_TAIL: usize = 20;
/// A protocol line (a statement's output) longer than this ends the session.
const MAX_PROTOCOL_LINE_BYTES: usize = 64 * 1024 * 1024;
/// Writing a request to the driver taking longer than this means it is hung.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// After stdin is closed, the driver gets this long to stop Spark before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to start one driver.
pub(crate) struct DriverSpec {
    pub python: PathBuf,
    pub work_dir: PathBuf,
    /// `SPOOL_REPL_CONF` for the driver: app name, master and Spark conf.
    pub repl_conf: serde_json::Value,
    pub startup_timeout: Duration,
}

pub(crate) struct LocalSession {
    pub id: u64,
    data: Mutex<SessionData>,
    /// Something for the driver task to do: a statement queued, a cancel requested.
    wake: Notify,
    stop: Notify,
    /// A statement finished (output, cancel or the driver's end): wakes held reads.
    statement_ended: Notify,
}

struct SessionData {
    name: Option<String>,
    kind: Kind,
    state: SessionState,
    app_id: Option<String>,
    statements: BTreeMap<u64, StatementRecord>,
    next_statement: u64,
    queue: VecDeque<u64>,
    running: Option<u64>,
    /// A cancel of the running statement not yet sent to the driver.
    cancel_to_send: Option<u64>,
    log: VecDeque<String>,
}

struct StatementRecord {
    code: String,
    kind: Kind,
    state: StatementState,
    output: Option<StatementOutput>,
    started: i64,
    completed: i64,
}

/// Why a request about a session was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    NotFound(String),
    BadRequest(String),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl LocalSession {
    pub(crate) fn new(id: u64, name: Option<String>, kind: Kind) -> Self {
        LocalSession {
            id,
            data: Mutex::new(SessionData {
                name,
                kind,
                state: SessionState::Starting,
                app_id: None,
                statements: BTreeMap::new(),
                next_statement: 0,
                queue: VecDeque::new(),
                running: None,
                cancel_to_send: None,
                log: VecDeque::new(),
            }),
            wake: Notify::new(),
            stop: Notify::new(),
            statement_ended: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SessionData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn state(&self) -> SessionState {
        self.lock().state.clone()
    }

    pub(crate) fn to_wire(&self) -> crate::livy::wire::Session {
        let data = self.lock();
        let skip = data.log.len().saturating_sub(SESSION_LOG_TAIL);
        crate::livy::wire::Session {
            id: self.id,
            name: data.name.clone(),
            app_id: data.app_id.clone(),
            owner: None,
            proxy_user: None,
            kind: Some(data.kind.clone()),
            state: data.state.clone(),
            app_info: [("driverLogUrl", None), ("sparkUiUrl", None)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            log: data.log.iter().skip(skip).cloned().collect(),
            error_info: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }

    /// Log lines `from..from + size`, Livy-style: without `from`, the last `size` lines.
    pub(crate) fn log_page(&self, from: Option<usize>, size: usize) -> (usize, usize, Vec<String>) {
        let data = self.lock();
        let total = data.log.len();
        let from = from.unwrap_or(total.saturating_sub(size)).min(total);
        (
            from,
            total,
            data.log.iter().skip(from).take(size).cloned().collect(),
        )
    }

    pub(crate) fn push_log(&self, line: String) {
        let mut data = self.lock();
        data.log.push_back(line);
        while data.log.len() > MAX_LOG_LINES {
            data.log.pop_front();
        }
    }

    pub(crate) fn submit(&self, code: String, kind: Option<Kind>) -> Result<Statement, Refusal> {
        let mut data = self.lock();
        if data.state.is_finished() {
            return Err(Refusal::BadRequest(format!(
                "Session {} is {}: it runs no more statements",
                self.id, data.state
            )));
        }
        if data.queue.len() >= MAX_WAITING_STATEMENTS {
            return Err(Refusal::BadRequest(format!(
                "Session {} already has {MAX_WAITING_STATEMENTS} statements waiting",
                self.id
            )));
        }
        let kind = match kind {
            Some(k) => k,
            None if data.kind == Kind::Sql => Kind::Sql,
            None => Kind::Pyspark,
        };
        if !matches!(kind, Kind::Pyspark | Kind::Sql) {
            return Err(Refusal::BadRequest(format!(
                "statements of kind {kind} are not supported by spool livy-local (pyspark and sql are)"
            )));
        }
        let id = data.next_statement;
        data.next_statement += 1;
        data.statements.insert(
            id,
            StatementRecord {
                code,
                kind,
                state: StatementState::Waiting,
                output: None,
                started: 0,
                completed: 0,
            },
        );
        data.queue.push_back(id);
        let statement = statement_wire(id, &data.statements[&id]);
        drop(data);
        self.wake.notify_one();
        Ok(statement)
    }

    pub(crate) fn statement(&self, id: u64) -> Result<Statement, Refusal> {
        let data = self.lock();
        data.statements
            .get(&id)
            .map(|r| statement_wire(id, r))
            .ok_or_else(|| {
                Refusal::NotFound(format!("Statement {id} not found in session {}.", self.id))
            })
    }

    /// The statement once it has finished, or as it is after `wait` (see the endpoint's
    /// `wait_ms`).
    pub(crate) async fn statement_when_finished(
        &self,
        id: u64,
        wait: Duration,
    ) -> Result<Statement, Refusal> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the state is read, so that an end in between is not missed.
            let ended = self.statement_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let statement = self.statement(id)?;
            if statement.state.is_finished()
                || tokio::time::timeout_at(deadline, ended).await.is_err()
            {
                return Ok(statement);
            }
        }
    }

    pub(crate) fn statements(&self) -> Vec<Statement> {
        let data = self.lock();
        data.statements
            .iter()
            .map(|(id, r)| statement_wire(*id, r))
            .collect()
    }

    /// Livy's cancel: a waiting statement is cancelled at once, a running one is `cancelling`
    /// until the driver has stopped it; others are left as they are.
    pub(crate) fn cancel(&self, id: u64) -> Result<(), Refusal> {
        let mut data = self.lock();
        let running = data.running;
        let Some(record) = data.statements.get_mut(&id) else {
            return Err(Refusal::NotFound(format!(
                "Statement {id} not found in session {}.",
                self.id
            )));
        };
        match record.state {
            StatementState::Waiting => {
                record.state = StatementState::Cancelled;
                record.completed = now_ms();
                data.queue.retain(|q| *q != id);
                drop(data);
                self.statement_ended.notify_waiters();
            }
            StatementState::Running if running == Some(id) => {
                record.state = StatementState::Cancelling;
                data.cancel_to_send = Some(id);
                drop(data);
                self.wake.notify_one();
            }
            _ => {}
        }
        Ok(())
    }

    /// Marks the session killed and asks its driver task to stop the process.
    pub(crate) fn kill(&self) {
        let mut data = self.lock();
        if !data.state.is_finished() {
            data.state = SessionState::Killed;
        }
        drop(data);
        self.stop.notify_one();
    }

    /// The next request for the driver, if one is due: a pending cancel, else the next waiting
    /// statement (which becomes running).
    fn next_request(&self) -> Option<serde_json::Value> {
        let mut data = self.lock();
        if let Some(id) = data.cancel_to_send.take() {
            if data.running == Some(id) {
                return Some(json!({"op": "cancel", "id": id}));
            }
        }
        if data.running.is_some() || data.state.is_finished() {
            return None;
        }
        let id = data.queue.pop_front()?;
        let record = data.statements.get_mut(&id)?;
        record.state = StatementState::Running;
        record.started = now_ms();
        let request = json!({
            "op": "execute",
            "id": id,
            "kind": record.kind.as_str(),
            "code": record.code,
        });
        data.running = Some(id);
        data.state = SessionState::Busy;
        Some(request)
    }

    fn on_ready(&self, app_id: Option<String>) {
        let mut data = self.lock();
        if data.state == SessionState::Starting {
            data.state = SessionState::Idle;
        }
        data.app_id = app_id;
    }

    fn on_result(&self, id: u64, output: StatementOutput) {
        let mut data = self.lock();
        if let Some(record) = data.statements.get_mut(&id) {
            record.state = if record.state == StatementState::Cancelling {
                StatementState::Cancelled
            } else {
                StatementState::Available
            };
            record.output = Some(output);
            record.completed = now_ms();
        }
        if data.running == Some(id) {
            data.running = None;
        }
        if data.state == SessionState::Busy && data.queue.is_empty() {
            data.state = SessionState::Idle;
        }
        let finished: Vec<u64> = data
            .statements
            .iter()
            .filter(|(_, r)| r.state.is_finished())
            .map(|(id, _)| *id)
            .collect();
        for old in finished
            .iter()
            .take(finished.len().saturating_sub(RETAINED_STATEMENTS))
        {
            data.statements.remove(old);
        }
        drop(data);
        self.statement_ended.notify_waiters();
    }

    /// The driver is gone: the session is dead (unless it was killed) and no statement of it
    /// will ever finish normally.
    fn on_driver_gone(&self, reason: &str) {
        let mut data = self.lock();
        if data.state != SessionState::Killed {
            data.state = SessionState::Dead;
        }
        let completed = now_ms();
        for record in data.statements.values_mut() {
            if !record.state.is_finished() {
                record.state = StatementState::Available;
                record.completed = completed;
                record.output = Some(StatementOutput {
                    status: OutputStatus::Error,
                    execution_count: None,
                    data: None,
                    ename: Some("SessionDead".into()),
                    evalue: Some(reason.to_string()),
                    traceback: Some(Vec::new()),
                });
            }
        }
        data.queue.clear();
        data.running = None;
        data.log.push_back(format!("spool: {reason}"));
        drop(data);
        self.statement_ended.notify_waiters();
    }
}

fn statement_wire(id: u64, record: &StatementRecord) -> Statement {
    Statement {
        id,
        code: record.code.clone(),
        state: record.state.clone(),
        output: record.output.clone(),
        progress: Some(if record.state.is_finished() { 1.0 } else { 0.0 }),
        started: Some(record.started),
        completed: Some(record.completed),
    }
}

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum DriverEvent {
    Ready { app_id: Option<String> },
    Failed { message: String },
    Result { id: u64, output: StatementOutput },
}

/// Runs the driver process of `session` until it exits or the session is stopped.
pub(crate) async fn drive(session: Arc<LocalSession>, spec: DriverSpec) {
    let mut child = match Command::new(&spec.python)
        .arg("-c")
        .arg(REPL_SOURCE)
        .current_dir(&spec.work_dir)
        .env("SPOOL_REPL_CONF", spec.repl_conf.to_string())
        // Executors' Python workers must be this interpreter, which has PySpark.
        .env("PYSPARK_PYTHON", &spec.python)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: a Ctrl-C in the terminal reaches `spool`, which stops the
        // drivers in order, instead of killing every JVM mid-statement.
        .process_group(0)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            session.on_driver_gone(&format!(
                "could not start the driver process `{}`: {e}",
                spec.python.display()
            ));
            return;
        }
    };
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        session.on_driver_gone("the driver process has no pipes");
        return;
    };
    let log_session = session.clone();
    let log_task = tokio::spawn(async move {
        let mut stderr = BufReader::new(stderr);
        while let Ok(Some((line, _))) = read_line_capped(&mut stderr, MAX_LOG_LINE_BYTES).await {
            log_session.push_log(line);
        }
    });
    let mut stdout = BufReader::new(stdout);
    let startup = tokio::time::sleep(spec.startup_timeout);
    tokio::pin!(startup);
    let mut ready = false;
    let reason = 'run: loop {
        while let Some(request) = ready.then(|| session.next_request()).flatten() {
            let line = format!("{request}\n");
            match tokio::time::timeout(WRITE_TIMEOUT, stdin.write_all(line.as_bytes())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => break 'run format!("the driver process stopped reading: {e}"),
                Err(_) => break 'run "the driver process stopped reading requests".to_string(),
            }
        }
        tokio::select! {
            line = read_line_capped(&mut stdout, MAX_PROTOCOL_LINE_BYTES) => match line {
                Ok(Some((_, true))) => {
                    break 'run format!("the driver sent an answer over {MAX_PROTOCOL_LINE_BYTES} bytes");
                }
                Ok(Some((line, false))) => match serde_json::from_str::<DriverEvent>(&line) {
                    Ok(DriverEvent::Ready { app_id }) => {
                        ready = true;
                        session.on_ready(app_id);
                    }
                    Ok(DriverEvent::Failed { message }) => {
                        for l in message.lines() {
                            session.push_log(l.to_string());
                        }
                    }
                    Ok(DriverEvent::Result { id, output }) => session.on_result(id, output),
                    Err(e) => session.push_log(format!("spool: unreadable driver message ({e})")),
                },
                Ok(None) | Err(_) => break 'run "the driver process exited".to_string(),
            },
            () = session.wake.notified() => {}
            () = session.stop.notified() => {
                drop(stdin);
                stop_child(&mut child).await;
                session.on_driver_gone("the session was deleted");
                log_task.abort();
                return;
            }
            () = &mut startup, if !ready => {
                break 'run format!(
                    "Spark did not start within {}s",
                    spec.startup_timeout.as_secs()
                );
            }
        }
    };
    drop(stdin);
    let status = stop_child(&mut child).await;
    // The rest of stderr says why the driver ended; it is in the log before the session is dead.
    let _ = tokio::time::timeout(Duration::from_secs(2), log_task).await;
    session.on_driver_gone(&format!("{reason} ({status})"));
}

/// Waits for the process to end after its stdin closed (the driver then stops Spark); kills it
/// after [`STOP_GRACE`]. Returns how it ended.
async fn stop_child(child: &mut tokio::process::Child) -> String {
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(e)) => format!("unknown exit: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            "killed after not stopping".to_string()
        }
    }
}

/// Reads one line (without its newline) of at most `cap` bytes; a longer line is cut and flagged,
/// the rest of it skipped. `None` at end of input.
async fn read_line_capped<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    cap: usize,
) -> std::io::Result<Option<(String, bool)>> {
    let mut line = Vec::new();
    let mut cut = false;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            if line.is_empty() && !cut {
                return Ok(None);
            }
            break;
        }
        let (chunk, done) = match buffer.iter().position(|&b| b == b'\n') {
            Some(i) => (&buffer[..i], Some(i + 1)),
            None => (buffer, None),
        };
        let room = cap.saturating_sub(line.len());
        if chunk.len() > room {
            cut = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let consumed = done.unwrap_or(buffer.len());
        reader.consume(consumed);
        if done.is_some() {
            break;
        }
    }
    Ok(Some((String::from_utf8_lossy(&line).into_owned(), cut)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_cut_and_flagged() {
        let input: &[u8] = b"short\nabcdefghij\nlast";
        let mut reader = BufReader::with_capacity(4, input);
        let mut lines = Vec::new();
        while let Some(line) = read_line_capped(&mut reader, 6).await.expect("reads") {
            lines.push(line);
        }
        assert_eq!(
            lines,
            [
                ("short".to_string(), false),
                ("abcdef".to_string(), true),
                ("last".to_string(), false)
            ]
        );
    }

    fn ok(text: &str) -> StatementOutput {
        StatementOutput {
            status: OutputStatus::Ok,
            execution_count: Some(0),
            data: json!({ "text/plain": text }).as_object().cloned(),
            ename: None,
            evalue: None,
            traceback: None,
        }
    }

    #[test]
    fn statements_follow_livys_state_machine() {
        let session = LocalSession::new(1, None, Kind::Pyspark);
        let a = session.submit("a".into(), None).expect("queued").id;
        let b = session.submit("b".into(), None).expect("queued").id;
        let c = session
            .submit("c".into(), Some(Kind::Sql))
            .expect("queued")
            .id;
        assert_eq!(session.state(), SessionState::Starting);
        // Nothing is sent before the driver is ready; then one statement at a time, in order.
        session.on_ready(Some("local-1".into()));
        assert_eq!(session.state(), SessionState::Idle);
        let first = session.next_request().expect("a is due");
        assert_eq!(
            (first["op"].as_str(), first["id"].as_u64()),
            (Some("execute"), Some(a))
        );
        assert_eq!(session.state(), SessionState::Busy);
        assert!(session.next_request().is_none(), "b waits for a");
        // Cancelling a waiting statement is immediate; a running one goes through cancelling.
        session.cancel(b).expect("known");
        assert_eq!(
            session.statement(b).expect("kept").state,
            StatementState::Cancelled
        );
        session.cancel(a).expect("known");
        assert_eq!(
            session.statement(a).expect("kept").state,
            StatementState::Cancelling
        );
        let cancel = session.next_request().expect("the cancel is due");
        assert_eq!(
            (cancel["op"].as_str(), cancel["id"].as_u64()),
            (Some("cancel"), Some(a))
        );
        session.on_result(a, ok(""));
        assert_eq!(
            session.statement(a).expect("kept").state,
            StatementState::Cancelled
        );
        let next = session.next_request().expect("c is due");
        assert_eq!(
            (next["id"].as_u64(), next["kind"].as_str()),
            (Some(c), Some("sql"))
        );
        session.on_result(c, ok("done"));
        let done = session.statement(c).expect("kept");
        assert_eq!(done.state, StatementState::Available);
        assert_eq!(
            done.output.as_ref().and_then(StatementOutput::text),
            Some("done")
        );
        assert_eq!(session.state(), SessionState::Idle);
    }

    #[test]
    fn a_dead_driver_finishes_every_statement_with_an_error() {
        let session = LocalSession::new(2, None, Kind::Pyspark);
        session.on_ready(None);
        let running = session.submit("x".into(), None).expect("queued").id;
        let waiting = session.submit("y".into(), None).expect("queued").id;
        session.next_request();
        session.on_driver_gone("the driver process exited (signal: 9 (SIGKILL))");
        assert_eq!(session.state(), SessionState::Dead);
        for id in [running, waiting] {
            let s = session.statement(id).expect("kept");
            assert_eq!(s.state, StatementState::Available);
            assert_eq!(
                s.output.and_then(|o| o.ename).as_deref(),
                Some("SessionDead")
            );
        }
        assert!(matches!(
            session.submit("z".into(), None),
            Err(Refusal::BadRequest(_))
        ));
    }

    #[test]
    fn only_the_newest_finished_statements_are_kept() {
        let session = LocalSession::new(3, None, Kind::Pyspark);
        session.on_ready(None);
        for _ in 0..RETAINED_STATEMENTS + 5 {
            session.submit("x".into(), None).expect("queued");
            let request = session.next_request().expect("due");
            session.on_result(request["id"].as_u64().expect("id"), ok(""));
        }
        let ids: Vec<u64> = session.statements().iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), RETAINED_STATEMENTS);
        assert_eq!(ids.first(), Some(&5));
    }
}
