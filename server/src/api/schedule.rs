//! A pipeline's schedule: read it with its next fire times, pause or resume it (persisted in
//! the history, read by the scheduler at its next pass).

use super::pipelines::{load_plan, pipeline_path};
use super::{blocking, ApiError, ApiJson, ApiPath, ApiResult, AppState, Caller};
use crate::scheduler::ScheduleView;
use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use std::sync::Arc;

/// Fire times answered for one pipeline.
const FIRE_TIMES: usize = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    paused: bool,
}

/// The schedule of `file` with its state, at `now`; an error when it has none.
fn view(state: &AppState, file: &str, now: i64) -> ApiResult<ScheduleView> {
    let plan = load_plan(state, file)?;
    let schedule = plan
        .schedule
        .ok_or_else(|| ApiError::NotFound(format!("`{file}` has no [schedule]")))?;
    let kept = state.history.schedule_state(file)?;
    Ok(ScheduleView::of(schedule, kept, now, FIRE_TIMES))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(file): ApiPath<String>,
) -> ApiResult<Json<ScheduleView>> {
    let file = pipeline_path(&file)?;
    blocking(move || view(&state, &file, crate::runs::now_ms()).map(Json)).await
}

/// `{"paused": true}` pauses the schedule, `false` resumes it: the slots of the pause are not
/// caught up. The caller's token name is kept with it.
pub async fn set(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(file): ApiPath<String>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> ApiResult<Json<ScheduleView>> {
    let file = pipeline_path(&file)?;
    blocking(move || {
        let now = crate::runs::now_ms();
        view(&state, &file, now)?;
        let by = caller.name.as_deref();
        state
            .history
            .set_schedule_paused(&file, body.paused, now, by)?;
        tracing::info!(file, paused = body.paused, by, "schedule paused or resumed");
        state.schedules_changed.notify_one();
        view(&state, &file, now).map(Json)
    })
    .await
}
