//! Runs: start, list, read, cancel, resume, and the live event stream.

use super::{ApiError, ApiJson, ApiResult, AppState};
use crate::history::{RunEvent, RunRecord, StoredEvent};
use crate::runs::{RunRequest, StartError};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Runs listed by `GET /api/runs`.
const LISTED_RUNS: u32 = 200;
/// The event stream re-reads the history at least this often even without a notification.
const STREAM_RECHECK: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
pub struct StartBody {
    file: String,
    #[serde(default)]
    params: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    resume: Option<i64>,
}

#[derive(Deserialize, Default)]
pub struct ResumeBody {
    #[serde(default)]
    params: BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize)]
pub struct Started {
    id: i64,
}

#[derive(Serialize)]
pub struct RunWithEvents {
    run: RunRecord,
    events: Vec<StoredEvent>,
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Invalid(d) => ApiError::InvalidPipeline(d),
            StartError::NotFound(m) => ApiError::NotFound(m),
            StartError::BadRequest(m) => ApiError::BadRequest(m),
            StartError::Internal(e) => ApiError::Internal(e),
        }
    }
}

fn blocking_err(e: tokio::task::JoinError) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("history task failed: {e}"))
}

pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Vec<RunRecord>>> {
    let history = state.history.clone();
    let runs = tokio::task::spawn_blocking(move || history.runs(LISTED_RUNS))
        .await
        .map_err(blocking_err)??;
    Ok(Json(runs))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> ApiResult<Json<RunWithEvents>> {
    let history = state.history.clone();
    let (run, events) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        Ok((history.run(id)?, history.events(id, None)?))
    })
    .await
    .map_err(blocking_err)??;
    let run = run.ok_or_else(|| ApiError::NotFound(format!("no run {id}")))?;
    Ok(Json(RunWithEvents { run, events }))
}

pub async fn start(
    State(state): State<Arc<AppState>>,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let id = state
        .runs
        .start(RunRequest {
            file: body.file,
            params: body.params,
            resume: body.resume,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Started { id })))
}

pub async fn resume(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    body: Option<ApiJson<ResumeBody>>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let history = state.history.clone();
    let old = tokio::task::spawn_blocking(move || history.run(id))
        .await
        .map_err(blocking_err)??
        .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))?;
    let mut params = old.params.clone();
    params.extend(body.map(|b| b.0.params).unwrap_or_default());
    let new = state
        .runs
        .start(RunRequest {
            file: old.file,
            params,
            resume: Some(id),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Started { id: new })))
}

pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    if state.runs.cancel(id) {
        return Ok(StatusCode::ACCEPTED);
    }
    let history = state.history.clone();
    let exists = tokio::task::spawn_blocking(move || history.run(id))
        .await
        .map_err(blocking_err)??
        .is_some();
    Err(if exists {
        ApiError::Conflict(format!("run {id} is not running"))
    } else {
        ApiError::NotFound(format!("no run {id}"))
    })
}

fn is_final(e: &RunEvent) -> bool {
    matches!(
        e,
        RunEvent::RunFinished { .. } | RunEvent::RunInterrupted { .. }
    )
}

/// Server-Sent Events of one run, from `Last-Event-ID` on, ending after the final event.
pub async fn events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let history = state.history.clone();
    let h = history.clone();
    if tokio::task::spawn_blocking(move || h.run(id))
        .await
        .map_err(blocking_err)??
        .is_none()
    {
        return Err(ApiError::NotFound(format!("no run {id}")));
    }
    let notify = state.runs.subscribe(id);
    struct Cursor {
        after: Option<i64>,
        pending: std::collections::VecDeque<StoredEvent>,
        done: bool,
    }
    let cursor = Cursor {
        after,
        pending: Default::default(),
        done: false,
    };
    let stream = futures_util::stream::unfold(
        (cursor, history, notify),
        move |(mut c, history, mut notify)| async move {
            loop {
                if let Some(ev) = c.pending.pop_front() {
                    c.after = Some(ev.seq);
                    if is_final(&ev.event) {
                        c.done = true;
                    }
                    let data = serde_json::to_string(&ev).unwrap_or_default();
                    let event = Event::default().id(ev.seq.to_string()).data(data);
                    return Some((Ok(event), (c, history, notify)));
                }
                if c.done {
                    return None;
                }
                let h = history.clone();
                let after = c.after;
                match tokio::task::spawn_blocking(move || h.events(id, after)).await {
                    Ok(Ok(evs)) if !evs.is_empty() => c.pending.extend(evs),
                    Ok(Ok(_)) => {
                        let wait = async {
                            match notify.as_mut() {
                                Some(rx) => {
                                    let _ = rx.changed().await;
                                }
                                None => std::future::pending::<()>().await,
                            }
                        };
                        let _ = tokio::time::timeout(STREAM_RECHECK, wait).await;
                    }
                    _ => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
