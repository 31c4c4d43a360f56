//! `GET /api/pipelines/{file}/grid?runs=N`: the grid of the pipeline's last runs (a row per
//! task, a column per run; `spool_core::grid`), folded from the history off the async workers.

use super::{blocking, ApiError, ApiPath, ApiQuery, ApiResult, AppState};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use spool_core::grid::{grid, Grid, DEFAULT_GRID_RUNS, MAX_GRID_RUNS};
use spool_core::listing::RunFilter;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct GridQuery {
    /// How many of the newest runs, 1 to [`MAX_GRID_RUNS`].
    runs: Option<String>,
}

impl GridQuery {
    fn count(&self) -> ApiResult<u32> {
        let Some(text) = &self.runs else {
            return Ok(DEFAULT_GRID_RUNS);
        };
        text.parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_GRID_RUNS).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("`runs` must be 1 to {MAX_GRID_RUNS}, not `{text}`"))
            })
    }
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    ApiPath(file): ApiPath<String>,
    ApiQuery(query): ApiQuery<GridQuery>,
) -> ApiResult<Json<Grid>> {
    let limit = query.count()?;
    let file = super::pipelines::pipeline_path(&file)?;
    blocking(move || {
        // Rows follow the file's plan now; a file that does not load (deleted, or with
        // errors) still shows its runs, rows by name.
        let order: Vec<String> = super::pipelines::load_plan(&state, &file)
            .map(|plan| plan.tasks.into_iter().map(|t| t.id).collect())
            .unwrap_or_default();
        let filter = RunFilter {
            limit,
            pipeline: Some(file),
            ..RunFilter::default()
        };
        let mut runs = Vec::new();
        for summary in state.history.list(&filter)? {
            runs.extend(state.history.run(summary.id)?);
        }
        Ok(Json(grid(&runs, &order)))
    })
    .await
}
