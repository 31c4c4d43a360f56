//! Runs: start, list, read, cancel, resume, and the live event stream.

use super::{
    blocking, ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Caller, MAX_LIVE_STREAMS,
};
use crate::history::{RunRecord, RunSummary, StoredEvent};
use crate::runs::{RunRequest, StartError};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use axum::Json;
use serde::{Deserialize, Serialize};
use spool_core::listing::RunQuery;
use spool_core::runlog::{Trigger, TriggerKind};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
    /// A repair: these tasks (or sub-pipelines) and everything downstream run again.
    #[serde(default)]
    rerun: Vec<String>,
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

/// A history error as the API reports it: a quarantined run is a conflict, not a failure of
/// the server.
fn history_error(e: anyhow::Error) -> ApiError {
    match e.downcast_ref::<crate::history::Unreadable>() {
        Some(u) => ApiError::Conflict(format!(
            "run {} is set aside: its history does not decode (event {})",
            u.run, u.seq
        )),
        None => ApiError::Internal(e),
    }
}

/// The run record of `id` from the history, off the async workers.
async fn run_record(state: &AppState, id: i64) -> ApiResult<Option<RunRecord>> {
    let history = state.history.clone();
    blocking(move || history.run(id).map_err(history_error)).await
}

/// The summary of run `id` (whether it exists, its status), without folding its events.
async fn run_summary(state: &AppState, id: i64) -> ApiResult<Option<RunSummary>> {
    let history = state.history.clone();
    blocking(move || Ok(history.summary(id)?)).await
}

/// `GET /api/runs?limit=&before=&pipeline=&status=&since=&until=`: summaries, newest first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> ApiResult<Json<Vec<RunSummary>>> {
    let filter = query.check().map_err(ApiError::BadRequest)?;
    let history = state.history.clone();
    let runs = blocking(move || Ok(history.list(&filter)?)).await?;
    Ok(Json(runs))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<RunWithEvents>> {
    let history = state.history.clone();
    let (run, events) = blocking(move || {
        let run = history.run(id).map_err(history_error)?;
        Ok((run, history.events(id, None).map_err(history_error)?))
    })
    .await?;
    let run = run.ok_or_else(|| ApiError::NotFound(format!("no run {id}")))?;
    Ok(Json(RunWithEvents { run, events }))
}

pub async fn start(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let file = super::pipelines::pipeline_path(&body.file)?;
    let id = state
        .runs
        .start(RunRequest {
            file,
            params: body.params,
            resume: body.resume,
            rerun: Vec::new(),
            trigger: Trigger::of(if body.resume.is_some() {
                TriggerKind::Resume
            } else {
                TriggerKind::Api
            }),
            started_by: caller.name,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Started { id })))
}

pub async fn resume(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    body: Option<ApiJson<ResumeBody>>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let old = run_record(&state, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no run {id}")))?;
    // The run's own overrides carry over in `start`, as for `spool run --resume`.
    let body = body.map(|b| b.0).unwrap_or_default();
    let new = state
        .runs
        .start(RunRequest {
            file: old.file,
            params: body.params,
            resume: Some(id),
            rerun: body.rerun,
            trigger: Trigger::of(TriggerKind::Resume),
            started_by: caller.name,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Started { id: new })))
}

pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    if state.runs.cancel(id, caller.name).await {
        return Ok(StatusCode::ACCEPTED);
    }
    let exists = run_summary(&state, id).await?.is_some();
    Err(if exists {
        ApiError::Conflict(format!("run {id} is not running"))
    } else {
        ApiError::NotFound(format!("no run {id}"))
    })
}

/// Counts a live event stream for as long as it exists.
struct LiveStream(Arc<AppState>);

impl LiveStream {
    fn open(state: &Arc<AppState>) -> ApiResult<LiveStream> {
        let live = &state.limits.live_streams;
        if live.fetch_add(1, Ordering::SeqCst) >= MAX_LIVE_STREAMS {
            live.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::Unavailable(format!(
                "{MAX_LIVE_STREAMS} event streams are open, the most this server keeps; retry later"
            )));
        }
        Ok(LiveStream(state.clone()))
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.0.limits.live_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Events after `after`, and, with `check_end`, whether the run had already ended when they
/// were read (then nothing follows them). Only the first read of a stream checks: later, the
/// run's final event arrives through the events themselves, and idle streams stay cheap.
fn events_since(
    history: &crate::history::History,
    id: i64,
    after: Option<i64>,
    check_end: bool,
) -> anyhow::Result<(Vec<StoredEvent>, bool)> {
    let events = history.events(id, after)?;
    if !events.is_empty() || !check_end {
        return Ok((events, false));
    }
    // Read the status first, then the events again: a final event written in between is
    // still sent.
    let ended = history.summary(id)?.is_none_or(|r| r.status.is_final());
    Ok((history.events(id, after)?, ended))
}

/// Server-Sent Events of one run, from `Last-Event-ID` on, ending after the final event (at
/// once when that was already seen).
pub async fn events(
    State(state): State<Arc<AppState>>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let live = LiveStream::open(&state)?;
    if run_summary(&state, id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no run {id}")));
    }
    let history = state.history.clone();
    let notify = state.runs.subscribe(id);
    struct Cursor {
        after: Option<i64>,
        pending: std::collections::VecDeque<StoredEvent>,
        done: bool,
        /// The history has been read once (and the run's end checked then).
        read_once: bool,
        _live: LiveStream,
    }
    let cursor = Cursor {
        after,
        pending: Default::default(),
        done: false,
        read_once: false,
        _live: live,
    };
    let stream = futures_util::stream::unfold(
        (cursor, history, notify),
        move |(mut c, history, mut notify)| async move {
            loop {
                if let Some(ev) = c.pending.pop_front() {
                    c.after = Some(ev.seq);
                    if ev.event.ends_run() {
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
                let (after, check_end) = (c.after, !c.read_once);
                c.read_once = true;
                match tokio::task::spawn_blocking(move || events_since(&h, id, after, check_end))
                    .await
                {
                    Ok(Ok((evs, ended))) => {
                        c.pending.extend(evs);
                        if ended {
                            c.done = true;
                        } else if c.pending.is_empty() {
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
                    }
                    _ => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
