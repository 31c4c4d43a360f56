//! The JSON the server sends and receives (docs/api.md), as serde types. They stay at the edge:
//! each is converted into the app's own types right after it arrives.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET /api/pipelines` item.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PipelineSummary {
    pub file: String,
    pub name: String,
    pub notebooks: usize,
    pub errors: usize,
}

/// `GET /api/pipelines/{file}/bundle`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Bundle {
    pub root: String,
    pub files: BTreeMap<String, String>,
    pub notebooks: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SaveBody<'a> {
    pub text: &'a str,
}

/// `POST /api/session`.
#[derive(Debug, Serialize)]
pub struct SignInBody<'a> {
    pub token: &'a str,
}

/// Error body of every failed call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiError {
    pub error: String,
    pub message: String,
    /// With `invalid_pipeline`: what the server found wrong.
    #[serde(default)]
    pub diagnostics: Vec<WireDiagnostic>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WireDiagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct StartRun<'a> {
    pub file: &'a str,
    pub params: &'a BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct ResumeRun<'a> {
    pub params: &'a BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Created {
    pub id: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
}

/// The part of a `RunRecord` the history list shows (unknown fields are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunSummary {
    pub id: i64,
    pub pipeline: String,
    pub file: String,
    pub status: RunStatus,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub resumed_from: Option<i64>,
}

/// `GET /api/runs/{id}`: the events are folded by the app itself, the same way as live ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunDetail {
    pub run: RunSummary,
    pub events: Vec<StoredEvent>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StoredEvent {
    pub seq: i64,
    pub at_ms: i64,
    pub event: RunEvent,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskError {
    pub ename: String,
    pub evalue: String,
    #[serde(default)]
    pub traceback: Vec<String>,
    #[serde(default)]
    pub cell: Option<usize>,
}

/// The events of `server/src/history.rs`; kinds this app does not know are kept as `Other`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    RunStarted {
        #[serde(default)]
        params: BTreeMap<String, serde_json::Value>,
    },
    SessionChanged {
        state: String,
        #[serde(default)]
        message: Option<String>,
    },
    TaskStarted {
        task: String,
        attempt: u32,
    },
    TaskFinished {
        task: String,
        attempt: u32,
        outcome: AttemptOutcome,
        #[serde(default)]
        error: Option<TaskError>,
        #[serde(default)]
        output: Option<String>,
        #[serde(default)]
        exit_value: Option<String>,
    },
    RetryScheduled {
        task: String,
        attempt: u32,
    },
    TaskSkipped {
        task: String,
        reason: String,
    },
    CancelRequested,
    RunFinished {
        status: RunStatus,
    },
    RunInterrupted {
        reason: String,
    },
    #[serde(other)]
    Other,
}
