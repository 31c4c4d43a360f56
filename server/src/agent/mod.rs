//! The Rust side of the driver agent (`python/spool_agent.py`): the statements that inject it
//! into a Livy session and talk to it, and typed decoding of its replies.
//!
//! Livy runs a session's statements one at a time; the agent runs notebooks in threads inside the
//! driver, so one session runs many notebooks at once. Every call is a short statement whose only
//! argument is base64 of a JSON document, decoded by the agent: ids, cells and parameters never
//! become code. Calls are idempotent (a start of a known attempt returns its state, a cancel of a
//! finished one does nothing, a poll names the last sequence number seen), so a statement whose
//! reply was lost can be sent again.

use crate::livy::wire::{Kind, OutputStatus, StatementOutput, StatementState};
use crate::livy::{LivyClient, LivyError, SessionId, StatementId};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use spool_core::notebook::{Cell, CellKind};
use spool_core::params::TaskValues;
use std::collections::BTreeMap;
use std::time::Duration;

/// The agent's Python source, injected once per session.
pub const AGENT_SOURCE: &str = include_str!("../../../python/spool_agent.py");

/// One attempt of one notebook to start.
#[derive(Debug, Clone)]
pub struct NotebookLaunch {
    /// The task's id in the run (unique among the notebooks of a session).
    pub id: String,
    pub attempt: u32,
    pub cells: Vec<Cell>,
    /// Parameter values; each becomes a variable of the notebook (names must be identifiers).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// What its direct upstream notebooks published, by their id in its file (the notebook's
    /// `spool.upstream`).
    pub upstream: BTreeMap<String, TaskValues>,
    /// Run on `spark.newSession()`: own temp views, UDFs and SQL conf, same SparkContext.
    pub isolated: bool,
    /// The agent cancels the attempt after this long (state `timed_out`).
    pub timeout: Option<Duration>,
    /// Text the agent replaces with `***` in everything it reports (the run's secrets, see
    /// `spool_core::secret::Masker::patterns`).
    pub mask: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotebookState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl NotebookState {
    pub fn is_finished(self) -> bool {
        self != NotebookState::Running
    }
}

/// The failure of a notebook: Python's exception, and where in the notebook it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotebookError {
    pub ename: String,
    pub evalue: String,
    pub traceback: Vec<String>,
    /// The notebook's own number of the cell that failed ([`Cell::number`], sent with the
    /// launch), so that the agent reports it even to a server that no longer has the cells.
    pub cell: Option<usize>,
    /// Line within that notebook cell (1-based), as the notebook's editor shows it.
    pub line: Option<usize>,
}

/// Spark work of one notebook attempt (its job group), for telemetry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkMetrics {
    pub jobs: u64,
    pub tasks: u64,
    pub executor_run_time_ms: u64,
}

/// The state of one attempt as a poll reports it. Outputs, error, exit value and metrics are
/// filled once it has finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotebookUpdate {
    pub id: String,
    pub attempt: u32,
    pub state: NotebookState,
    /// Epoch milliseconds, by the driver's clock.
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// Bounded by the agent: the first and last 64 KiB, with a marker between.
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub error: Option<NotebookError>,
    /// The value given to `spool.exit(value)` (JSON, or its `str()` when not serializable).
    #[serde(default)]
    pub exit_value: Option<serde_json::Value>,
    /// What `spool.set_value` published (reported for a succeeded attempt).
    #[serde(default)]
    pub values: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub metrics: Option<SparkMetrics>,
    /// What a succeeded attempt left in the Spark session for other notebooks
    /// (`view:NAME`, `global_view:NAME`, `function:NAME`; bounded by the agent).
    #[serde(default)]
    pub session_state: Vec<String>,
}

/// The Spark application's capacity as the driver sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub executors: u32,
    /// `sc.defaultParallelism`: the cores of all executors.
    pub total_cores: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PollReply {
    /// The agent's sequence number; the next poll asks for changes after it.
    pub seq: u64,
    pub updates: Vec<NotebookUpdate>,
    pub capacity: Capacity,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StartReply {
    /// False when this attempt was already known (its current state is returned).
    pub started: bool,
    pub state: NotebookState,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CancelReply {
    pub found: bool,
    pub state: Option<NotebookState>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReleaseReply {
    pub released: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct InstallReply {
    capacity: Capacity,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Livy(#[from] LivyError),
    #[error("the Spool agent is not loaded in this session (inject it first)")]
    NotInjected,
    #[error("the agent's statement failed: {ename}: {evalue}")]
    Failed {
        ename: String,
        evalue: String,
        traceback: Vec<String>,
    },
    #[error("the agent's statement ended {state} without output")]
    NoOutput { state: StatementState },
    #[error("the agent's reply was not understood ({detail}): {text}")]
    Decode { detail: String, text: String },
}

// ---------------------------------------------------------------------------------------------
// Statements (pure)

fn encode(document: &impl Serialize) -> String {
    let json = serde_json::to_vec(document).expect("agent documents always serialize");
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// A version that changes whenever the agent's source does (FNV-1a): a session holding an older
/// agent gets the new one when it runs nothing.
pub fn agent_version() -> String {
    let hash = AGENT_SOURCE.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Loads the agent into the session (idempotent) and prints its install reply. The source travels
/// as base64 so that no quoting can break it.
pub fn inject_statement() -> String {
    format!(
        r#"def _spool_inject(source, version):
    import base64, sys, types
    current = sys.modules.get("spool_agent")
    if current is None or (current.VERSION != version and not current.busy()):
        module = types.ModuleType("spool_agent")
        exec(compile(base64.b64decode(source).decode("utf-8"), "spool_agent.py", "exec"), module.__dict__)
        module.VERSION = version
        sys.modules["spool_agent"] = module
    return sys.modules["spool_agent"].install(spark)
print(_spool_inject("{}", "{}"))
del _spool_inject
"#,
        base64::engine::general_purpose::STANDARD.encode(AGENT_SOURCE),
        agent_version()
    )
}

/// A call of the agent's `function` with one base64 JSON argument.
fn call_statement(function: &str, argument: &impl Serialize) -> String {
    format!(
        "print(__import__(\"spool_agent\").{function}(\"{}\"))",
        encode(argument)
    )
}

#[derive(Serialize)]
struct LaunchWire<'a> {
    id: &'a str,
    attempt: u32,
    cells: Vec<CellWire<'a>>,
    params: &'a serde_json::Map<String, serde_json::Value>,
    upstream: &'a BTreeMap<String, TaskValues>,
    isolated: bool,
    timeout_secs: Option<f64>,
    mask: &'a [String],
}

#[derive(Serialize)]
struct CellWire<'a> {
    kind: &'static str,
    source: &'a str,
    parameters: bool,
    /// Where the source sits in the notebook, for the agent's error reports.
    number: usize,
    cell_line: usize,
}

pub fn start_statement(launch: &NotebookLaunch) -> String {
    let wire = LaunchWire {
        id: &launch.id,
        attempt: launch.attempt,
        cells: launch
            .cells
            .iter()
            .map(|c| CellWire {
                kind: match c.kind {
                    CellKind::Python => "python",
                    CellKind::Sql => "sql",
                },
                source: &c.source,
                parameters: c.parameters,
                number: c.number,
                cell_line: c.cell_line,
            })
            .collect(),
        params: &launch.params,
        upstream: &launch.upstream,
        isolated: launch.isolated,
        timeout_secs: launch.timeout.map(|t| t.as_secs_f64()),
        mask: &launch.mask,
    };
    call_statement("start", &wire)
}

/// A long poll: changes after `since`, waiting up to `wait` for an attempt to end first. The
/// first poll by `owner` takes the session's lease; another owner's poll is then refused.
pub fn poll_statement(since: u64, owner: &str, wait: Duration) -> String {
    call_statement(
        "poll",
        &serde_json::json!({ "since": since, "owner": owner, "wait_ms": wait.as_millis() as u64 }),
    )
}

pub fn release_statement(owner: &str) -> String {
    call_statement("release", &serde_json::json!({ "owner": owner }))
}

pub fn cancel_statement(id: &str, attempt: u32) -> String {
    call_statement(
        "cancel",
        &serde_json::json!({ "id": id, "attempt": attempt }),
    )
}

pub fn capacity_statement() -> String {
    "print(__import__(\"spool_agent\").capacity_report())".to_string()
}

/// Decodes the reply of an agent statement: the last line of its text output is one JSON object.
pub fn decode_reply<T: DeserializeOwned>(
    state: &StatementState,
    output: Option<&StatementOutput>,
) -> Result<T, AgentError> {
    let Some(output) = output else {
        return Err(AgentError::NoOutput {
            state: state.clone(),
        });
    };
    if output.status != OutputStatus::Ok {
        let ename = output.ename.clone().unwrap_or_default();
        let evalue = output.evalue.clone().unwrap_or_default();
        if ename == "ModuleNotFoundError" && evalue.contains("spool_agent") {
            return Err(AgentError::NotInjected);
        }
        return Err(AgentError::Failed {
            ename,
            evalue,
            traceback: output.traceback.clone().unwrap_or_default(),
        });
    }
    let text = output.text().unwrap_or_default();
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(line).map_err(|e| AgentError::Decode {
        detail: e.to_string(),
        text: text.chars().take(2000).collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// Calls over Livy

/// How often an agent statement's state is read: agent statements are short (or a long poll
/// that ends the moment a notebook does), and every millisecond between a notebook's end and
/// the server noticing it is dead time before its dependents start.
const AGENT_STATEMENT_CHECKS: (Duration, Duration) =
    (Duration::from_millis(2), Duration::from_millis(8));

/// Talks to the agents of one Livy endpoint's sessions.
pub struct Agent {
    client: LivyClient,
    /// Limit for one agent statement, queueing behind others included.
    statement_timeout: Duration,
}

impl Agent {
    pub fn new(client: LivyClient) -> Self {
        Agent {
            client,
            statement_timeout: Duration::from_secs(120),
        }
    }

    pub fn client(&self) -> &LivyClient {
        &self.client
    }

    /// Loads the agent into the session (idempotent) and returns the application's capacity.
    pub async fn inject(&self, session: SessionId) -> Result<Capacity, AgentError> {
        let reply: InstallReply = self.call(session, &inject_statement()).await?;
        Ok(reply.capacity)
    }

    /// Starts a notebook attempt in a driver thread; returns as soon as it runs.
    pub async fn start_notebook(
        &self,
        session: SessionId,
        launch: &NotebookLaunch,
    ) -> Result<StartReply, AgentError> {
        self.call(session, &start_statement(launch)).await
    }

    /// Changes after `since` (0: everything the agent holds), and the capacity (read at most
    /// 0.5 s before the poll began to wait); waits up to `wait` for an attempt to end. `since`
    /// acknowledges what earlier polls returned, after which the agent forgets those ended
    /// attempts: one poller (`owner`) per session.
    pub async fn poll(
        &self,
        session: SessionId,
        since: u64,
        owner: &str,
        wait: Duration,
    ) -> Result<PollReply, AgentError> {
        self.call(session, &poll_statement(since, owner, wait))
            .await
    }

    /// Gives up `owner`'s lease on the session.
    pub async fn release(&self, session: SessionId, owner: &str) -> Result<bool, AgentError> {
        let reply: ReleaseReply = self.call(session, &release_statement(owner)).await?;
        Ok(reply.released)
    }

    /// Cancels the attempt's Spark jobs and stops its thread; the poll reports it `cancelled`.
    pub async fn cancel(
        &self,
        session: SessionId,
        id: &str,
        attempt: u32,
    ) -> Result<CancelReply, AgentError> {
        self.call(session, &cancel_statement(id, attempt)).await
    }

    pub async fn capacity(&self, session: SessionId) -> Result<Capacity, AgentError> {
        self.call(session, &capacity_statement()).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        session: SessionId,
        code: &str,
    ) -> Result<T, AgentError> {
        let submitted = self
            .client
            .submit_statement(session, code, Kind::Pyspark)
            .await?;
        let done = self
            .client
            .wait_statement_every(
                session,
                StatementId(submitted.id),
                self.statement_timeout,
                AGENT_STATEMENT_CHECKS,
            )
            .await?;
        decode_reply(&done.state, done.output.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode_b64_argument(statement: &str) -> serde_json::Value {
        let start = statement.rfind("(\"").expect("one quoted argument") + 2;
        let end = statement.rfind("\"))").expect("closing");
        let arg = &statement[start..end];
        assert!(
            arg.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
            "only base64 inside the Python literal: {arg}"
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(arg)
            .expect("base64");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn launches_travel_as_data() {
        let hostile = "\"); import os; os._exit(1) #\n'''";
        let mut params = serde_json::Map::new();
        params.insert("evil".into(), json!(hostile));
        let launch = NotebookLaunch {
            id: hostile.into(),
            attempt: 2,
            cells: vec![Cell {
                kind: CellKind::Sql,
                source: "SELECT ':day'".into(),
                number: 3,
                line: 7,
                cell_line: 2,
                parameters: false,
            }],
            params,
            upstream: BTreeMap::from([(
                "load".to_string(),
                TaskValues {
                    value: Some(json!(hostile)),
                    values: serde_json::Map::new(),
                },
            )]),
            isolated: true,
            timeout: Some(Duration::from_millis(1500)),
            mask: vec!["hunter22".into()],
        };
        let statement = start_statement(&launch);
        assert!(!statement.contains("os._exit"));
        assert_eq!(
            decode_b64_argument(&statement),
            json!({
                "id": hostile, "attempt": 2, "isolated": true, "timeout_secs": 1.5,
                "params": {"evil": hostile},
                "upstream": {"load": {"value": hostile, "values": {}}},
                "cells": [{"kind": "sql", "source": "SELECT ':day'", "parameters": false,
                           "number": 3, "cell_line": 2}],
                "mask": ["hunter22"],
            })
        );
        assert_eq!(
            decode_b64_argument(&cancel_statement(hostile, 1)),
            json!({"id": hostile, "attempt": 1})
        );
        assert_eq!(
            decode_b64_argument(&poll_statement(42, hostile, Duration::from_millis(900))),
            json!({"since": 42, "owner": hostile, "wait_ms": 900})
        );
    }

    fn ok_output(text: &str) -> StatementOutput {
        StatementOutput {
            status: OutputStatus::Ok,
            execution_count: Some(1),
            data: Some(
                json!({ "text/plain": text })
                    .as_object()
                    .expect("object")
                    .clone(),
            ),
            ename: None,
            evalue: None,
            traceback: None,
        }
    }

    #[test]
    fn poll_replies_decode_into_updates() {
        let text = r#"stray output from a thread
{"seq": 9, "capacity": {"executors": 1, "total_cores": 2}, "updates": [
 {"id": "a", "attempt": 0, "state": "running", "started_at": 1000, "ended_at": null},
 {"id": "b", "attempt": 1, "state": "timed_out", "started_at": 1000, "ended_at": 2000,
  "stdout": "x", "stderr": "", "error": null, "exit_value": null,
  "metrics": {"jobs": 2, "tasks": 8, "executor_run_time_ms": 950}},
 {"id": "c", "attempt": 0, "state": "failed", "started_at": 1, "ended_at": 2, "stdout": "",
  "stderr": "", "exit_value": null, "metrics": null,
  "error": {"ename": "ValueError", "evalue": "bad", "traceback": ["t"], "cell": 1, "line": 3}}
]}"#
        .replace('\n', " ")
        .replacen("thread ", "thread\n", 1);
        let reply: PollReply =
            decode_reply(&StatementState::Available, Some(&ok_output(&text))).expect("decodes");
        assert_eq!(reply.seq, 9);
        assert_eq!(reply.capacity.total_cores, 2);
        let states: Vec<_> = reply.updates.iter().map(|u| u.state).collect();
        assert_eq!(
            states,
            [
                NotebookState::Running,
                NotebookState::TimedOut,
                NotebookState::Failed
            ]
        );
        assert_eq!(reply.updates[1].metrics.as_ref().map(|m| m.tasks), Some(8));
        let error = reply.updates[2].error.as_ref().map(|e| (e.cell, e.line));
        assert_eq!(error, Some((Some(1), Some(3))));
    }

    #[test]
    fn failed_agent_statements_say_why() {
        let error = |ename: &str, evalue: &str| StatementOutput {
            status: OutputStatus::Error,
            execution_count: Some(3),
            data: None,
            ename: Some(ename.into()),
            evalue: Some(evalue.into()),
            traceback: Some(vec!["Traceback".into()]),
        };
        let missing = decode_reply::<PollReply>(
            &StatementState::Available,
            Some(&error(
                "ModuleNotFoundError",
                "No module named 'spool_agent'",
            )),
        );
        assert!(matches!(missing, Err(AgentError::NotInjected)));
        let invalid = decode_reply::<StartReply>(
            &StatementState::Available,
            Some(&error("ValueError", "parameter name 'a b' is not usable")),
        );
        assert!(invalid.unwrap_err().to_string().contains("'a b'"));
        let garbage =
            decode_reply::<StartReply>(&StatementState::Available, Some(&ok_output("hello")));
        assert!(matches!(garbage, Err(AgentError::Decode { .. })));
        let cancelled = decode_reply::<StartReply>(&StatementState::Cancelled, None);
        assert!(cancelled.unwrap_err().to_string().contains("cancelled"));
    }

    #[test]
    fn the_inject_statement_carries_the_whole_agent() {
        let statement = inject_statement();
        let encoded = base64::engine::general_purpose::STANDARD.encode(AGENT_SOURCE);
        assert!(statement.contains(&encoded));
        assert!(statement.contains(&agent_version()));
    }
}
