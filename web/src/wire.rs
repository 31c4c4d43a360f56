//! The JSON the server sends and receives (docs/api.md), as serde types. They stay at the edge:
//! each is converted into the app's own types right after it arrives.

use serde::{Deserialize, Serialize};
use spool_core::diag::Diagnostic;
use spool_core::runlog::{RunRecord, StoredEvent};
use spool_core::schedule::FireTime;
use std::collections::BTreeMap;

/// `GET /api/pipelines` item.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PipelineSummary {
    pub file: String,
    pub name: String,
    pub notebooks: usize,
    pub errors: usize,
    /// Its `[schedule]`, when it has one (and no errors).
    #[serde(default)]
    pub schedule: Option<ScheduleInfo>,
}

/// A pipeline's schedule as `GET /api/pipelines` and `POST /api/pipelines/{file}/schedule`
/// answer it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScheduleInfo {
    pub cron: String,
    pub timezone: String,
    pub catch_up: String,
    pub enabled: bool,
    pub paused: bool,
    /// The last pause or resume: when, and the name of the token that asked.
    #[serde(default)]
    pub changed: Option<ScheduleChange>,
    /// The next fire times (none while paused or disabled).
    pub next: Vec<FireTime>,
}

/// Who paused or resumed a schedule last (a token's name; none without one), and when.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScheduleChange {
    pub at_ms: i64,
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST /api/pipelines/{file}/schedule`.
#[derive(Debug, Serialize)]
pub struct SchedulePause {
    pub paused: bool,
}

/// `GET /api/pipelines/{file}/bundle`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Bundle {
    pub root: String,
    pub files: BTreeMap<String, String>,
    /// Each file's version (`ETag`), sent back as `If-Match` when it is saved.
    #[serde(default)]
    pub etags: BTreeMap<String, String>,
    pub notebooks: Vec<String>,
    /// What parsing found in each notebook the saved pipeline runs (those with findings):
    /// applied by `spool_core::dag::check_notebooks` to whatever the edited text runs.
    #[serde(default)]
    pub notebook_diagnostics: BTreeMap<String, Vec<Diagnostic>>,
}

#[derive(Debug, Serialize)]
pub struct SaveBody<'a> {
    pub text: &'a str,
}

/// `PUT /api/pipelines/{file}/draft`.
#[derive(Debug, Serialize)]
pub struct DraftBody<'a> {
    pub text: &'a str,
    pub etag: Option<&'a str>,
}

/// A draft the server keeps (`GET /api/pipelines/{file}/draft`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ServerDraft {
    pub text: String,
    pub etag: Option<String>,
    pub saved_ms: i64,
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
    /// A repair: these tasks and everything downstream run again even if they succeeded.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub rerun: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Created {
    pub id: i64,
}

/// `GET /api/runs/{id}`: the events are folded by the app itself, the same way as live ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RunDetail {
    pub run: RunRecord,
    pub events: Vec<StoredEvent>,
}
