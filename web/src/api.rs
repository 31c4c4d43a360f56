//! Calls to the server's HTTP API (docs/api.md). Each returns the converted answer or a
//! [`Failure`] that says what the user can do about it.
//!
//! Every call is same-origin and sends cookies (`credentials: same-origin`, set explicitly):
//! with `spool serve --token`, the app signs in once ([`sign_in`]) and the HttpOnly cookie the
//! server sets is the only place the token is kept. The browser adds `Origin` (and
//! `Sec-Fetch-Site: same-origin`) to POST and PUT, the same-origin proof the server asks of
//! changes made with the cookie.

use crate::wire::{
    ApiError, Bundle, Created, DraftBody, PipelineSummary, ResumeRun, RunDetail, SaveBody,
    ScheduleInfo, SchedulePause, ServerDraft, SignInBody, StartRun, WireDiagnostic,
};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use spool_core::calibrate::{Calibration, DurationsFrom};
use spool_core::runlog::RunSummary;
use std::collections::BTreeMap;
use web_sys::RequestCredentials;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// 401: the server wants the token; the app shows its sign-in form.
    SignIn,
    /// The server could not be reached, or its answer did not read.
    Transport(String),
    /// 412: the file changed on the server since it was read (someone else saved it).
    Stale(String),
    /// The server said no: its message and, for a pipeline it refused, what it found wrong.
    Refused {
        message: String,
        diagnostics: Vec<WireDiagnostic>,
    },
}

impl Failure {
    /// The same failure, its message prefixed with what was being done.
    pub fn context(self, doing: &str) -> Failure {
        match self {
            Failure::SignIn => Failure::SignIn,
            Failure::Transport(m) => Failure::Transport(format!("{doing}: {m}")),
            Failure::Stale(m) => Failure::Stale(format!("{doing}: {m}")),
            Failure::Refused {
                message,
                diagnostics,
            } => Failure::Refused {
                message: format!("{doing}: {message}"),
                diagnostics,
            },
        }
    }
}

/// The message with the first diagnostic, if any (the import dialog lists them all).
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::SignIn => f.write_str("sign in first: the server wants its token"),
            Failure::Transport(message) | Failure::Stale(message) => f.write_str(message),
            Failure::Refused {
                message,
                diagnostics,
            } => match diagnostics.first() {
                Some(d) => write!(
                    f,
                    "{message} ({}:{}:{}: {})",
                    d.file, d.line, d.col, d.message
                ),
                None => f.write_str(message),
            },
        }
    }
}

fn encode(part: &str) -> String {
    String::from(js_sys::encode_uri_component(part))
}

fn pipeline_url(file: &str, suffix: &str) -> String {
    format!("/api/pipelines/{}{suffix}", encode(file))
}

async fn failure(resp: Response) -> Failure {
    let status = resp.status();
    if status == 401 {
        return Failure::SignIn;
    }
    match resp.json::<ApiError>().await {
        Ok(e) if status == 412 => Failure::Stale(e.message),
        Ok(e) => Failure::Refused {
            message: e.message,
            diagnostics: e.diagnostics,
        },
        Err(_) => Failure::Refused {
            message: format!("the server answered {status}"),
            diagnostics: Vec::new(),
        },
    }
}

/// The server's answer, whatever its status.
async fn answer(req: Result<Request, gloo_net::Error>) -> Result<Response, Failure> {
    req.map_err(|e| Failure::Transport(e.to_string()))?
        .send()
        .await
        .map_err(|e| Failure::Transport(format!("cannot reach the server: {e}")))
}

async fn send(req: Result<Request, gloo_net::Error>) -> Result<Response, Failure> {
    let resp = answer(req).await?;
    if resp.ok() {
        Ok(resp)
    } else {
        Err(failure(resp).await)
    }
}

async fn json<T: DeserializeOwned>(req: Result<Request, gloo_net::Error>) -> Result<T, Failure> {
    read(send(req).await?).await
}

async fn read<T: DeserializeOwned>(resp: Response) -> Result<T, Failure> {
    resp.json::<T>()
        .await
        .map_err(|e| Failure::Transport(format!("unexpected answer from the server: {e}")))
}

/// Same-origin calls with the session cookie. `same-origin` is fetch's default too; it is
/// set here so that the sign-in cannot silently stop working.
fn with_cookie(req: RequestBuilder) -> RequestBuilder {
    req.credentials(RequestCredentials::SameOrigin)
}

fn get(url: &str) -> Result<Request, gloo_net::Error> {
    with_cookie(Request::get(url)).build()
}

fn post(url: &str) -> RequestBuilder {
    with_cookie(Request::post(url))
}

pub async fn pipelines() -> Result<Vec<PipelineSummary>, Failure> {
    json(get("/api/pipelines")).await
}

pub async fn bundle(file: &str) -> Result<Bundle, Failure> {
    json(get(&pipeline_url(file, "/bundle"))).await
}

/// What the history measured for the pipeline `file` in the runs `from` picks: the
/// calibration of the server's calibrated dry run (over its default number of runs).
pub async fn calibration(file: &str, from: DurationsFrom) -> Result<Calibration, Failure> {
    let query = format!("/calibration?durations_from={}", from.name());
    json(get(&pipeline_url(file, &query))).await
}

/// Saves `text`; with `if_match` (the version it was based on) only if the file is still
/// that version, else [`Failure::Stale`]. Returns the version written.
pub async fn save(
    file: &str,
    text: &str,
    if_match: Option<&str>,
) -> Result<Option<String>, Failure> {
    let mut req = with_cookie(Request::put(&pipeline_url(file, "")));
    if let Some(tag) = if_match {
        req = req.header("If-Match", tag);
    }
    let resp = send(req.json(&SaveBody { text })).await?;
    Ok(resp.headers().get("etag"))
}

/// The draft the server keeps of `file` (saved with errors), if any.
pub async fn server_draft(file: &str) -> Result<Option<ServerDraft>, Failure> {
    let resp = answer(get(&pipeline_url(file, "/draft"))).await?;
    match resp.status() {
        404 => Ok(None),
        _ if resp.ok() => read(resp).await.map(Some),
        _ => Err(failure(resp).await),
    }
}

/// Has the server keep `text` as `file`'s draft (errors and all; the file is not written).
pub async fn save_draft(
    file: &str,
    text: &str,
    etag: Option<&str>,
) -> Result<ServerDraft, Failure> {
    let req = with_cookie(Request::put(&pipeline_url(file, "/draft")));
    json(req.json(&DraftBody { text, etag })).await
}

/// Has the server forget `file`'s draft.
pub async fn discard_draft(file: &str) -> Result<(), Failure> {
    let req = with_cookie(Request::delete(&pipeline_url(file, "/draft"))).build();
    let resp = answer(req).await?;
    match resp.status() {
        // Already gone (saved or discarded elsewhere) is what was asked.
        404 => Ok(()),
        _ if resp.ok() => Ok(()),
        _ => Err(failure(resp).await),
    }
}

/// Writes a new notebook file (an import's); one that exists already is refused, never
/// replaced.
pub async fn create_notebook(file: &str, text: &str) -> Result<(), Failure> {
    let url = format!("/api/notebooks/{}", encode(file));
    let req = with_cookie(Request::put(&url)).header("If-None-Match", "*");
    send(req.json(&SaveBody { text })).await.map(drop)
}

/// Trades the token for the session cookie; a wrong token is [`Failure::SignIn`].
pub async fn sign_in(token: &str) -> Result<(), Failure> {
    send(post("/api/session").json(&SignInBody { token }))
        .await
        .map(drop)
}

pub async fn start_run(
    file: &str,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<i64, Failure> {
    let created: Created = json(post("/api/runs").json(&StartRun { file, params })).await?;
    Ok(created.id)
}

/// Pauses or resumes the schedule of the pipeline `file`; the schedule as it is now.
pub async fn set_schedule_paused(file: &str, paused: bool) -> Result<ScheduleInfo, Failure> {
    json(post(&pipeline_url(file, "/schedule")).json(&SchedulePause { paused })).await
}

/// The newest runs' summaries (as many as the history view lists).
pub async fn runs() -> Result<Vec<RunSummary>, Failure> {
    json(get(&format!("/api/runs?limit={}", crate::runs::MAX_LISTED))).await
}

/// The grid of the last `runs` runs of the pipeline `file`.
pub async fn grid(file: &str, runs: u32) -> Result<spool_core::grid::Grid, Failure> {
    json(get(&pipeline_url(file, &format!("/grid?runs={runs}")))).await
}

pub async fn run(id: i64) -> Result<RunDetail, Failure> {
    json(get(&format!("/api/runs/{id}"))).await
}

pub async fn cancel(id: i64) -> Result<(), Failure> {
    send(post(&format!("/api/runs/{id}/cancel")).build())
        .await
        .map(drop)
}

/// Resumes run `id` with `params` on top of its own; `rerun` (a repair) runs those tasks and
/// everything downstream again even if they succeeded.
pub async fn resume(
    id: i64,
    params: &BTreeMap<String, serde_json::Value>,
    rerun: &[String],
) -> Result<i64, Failure> {
    let created: Created =
        json(post(&format!("/api/runs/{id}/resume")).json(&ResumeRun { params, rerun })).await?;
    Ok(created.id)
}

pub fn events_url(id: i64) -> String {
    format!("/api/runs/{id}/events")
}
