//! Reads the runs a calibrated dry run asks for (`--durations-from`, the API's
//! `durations_from`) from the history and measures them with `spool_core::calibrate`.

use crate::history::{History, RunFilter};
use spool_core::calibrate::MAX_HISTORY_RUNS;
use spool_core::calibrate::{Calibration, DurationsFrom, RunMeasurement};
use spool_core::dag::Plan;

/// Why a calibration could not be made: something the user can fix (no such run), as opposed
/// to a history that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    History(#[from] anyhow::Error),
}

/// The calibration of `plan` from the runs `from` picks out of `history`.
pub fn calibrate(
    history: &History,
    plan: &Plan,
    from: DurationsFrom,
    history_runs: u32,
) -> Result<Calibration, CalibrationError> {
    let ids = match from {
        DurationsFrom::Run(id) => match history.run(id)? {
            Some(_) => vec![id],
            None => {
                return Err(CalibrationError::NotFound(format!(
                    "no run {id} in the history"
                )))
            }
        },
        _ => {
            let runs = history.list(&RunFilter {
                limit: MAX_HISTORY_RUNS,
                pipeline: Some(plan.name.clone()),
                ..RunFilter::default()
            })?;
            from.pick(&runs, &plan.name, history_runs)
        }
    };
    if ids.is_empty() {
        let what = match from {
            DurationsFrom::Last => "finished",
            _ => "successful",
        };
        return Err(CalibrationError::NotFound(format!(
            "no {what} run of pipeline `{}` in the history",
            plan.name
        )));
    }
    let mut measured = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(m) = RunMeasurement::of(plan, id, &history.events(id, None)?) {
            measured.push(m);
        }
    }
    Ok(Calibration::of(plan, from, &measured))
}
