//! The grid of the open pipeline's last runs (Airflow's grid view, `#/pipelines/{file}/grid`):
//! a row per notebook, a column per run, oldest on the left; each cell coloured by the
//! notebook's state in that run, its duration on hover, and a link to that attempt
//! (`#/runs/{id}/{task}`). The server builds the grid from its history
//! (`GET /api/pipelines/{file}/grid`).

use crate::api;
use crate::charts::duration;
use crate::route::Route;
use crate::run::status_name;
use crate::state::{Action, State};
use spool_core::grid::{Cell, Grid, GridRun, DEFAULT_GRID_RUNS, MAX_GRID_RUNS};
use spool_core::runlog::RunStatus;
use std::rc::Rc;
use yew::prelude::*;

/// What the grid reads of the app's state: it is drawn again when that changes, not at each
/// event of a live run.
#[derive(Properties, PartialEq)]
pub struct GridProps {
    /// The open pipeline.
    pub file: Option<String>,
    /// Counts sign-ins.
    pub sessions: u32,
    /// The run shown and its status.
    pub run: Option<(i64, RunStatus)>,
    pub dispatch: UseReducerDispatcher<State>,
}

/// What a cell says on hover: the run, the notebook, its state, how long, how many attempts.
fn cell_title(run: &GridRun, task: &str, cell: &Cell) -> String {
    let took = cell
        .secs
        .map(|s| format!(", {}", duration(s)))
        .unwrap_or_default();
    let attempts = match cell.attempts {
        0 | 1 => String::new(),
        n => format!(", {n} attempts"),
    };
    let kept = match (cell.state, run.resumed_from) {
        (spool_core::grid::CellState::Kept, Some(from)) => format!(" from run #{from}"),
        _ => String::new(),
    };
    format!(
        "run #{} · {task}: {}{kept}{took}{attempts}",
        run.id,
        cell.state.name()
    )
}

#[function_component(GridView)]
pub fn grid_view(props: &GridProps) -> Html {
    let grid = use_state(|| None::<Rc<Grid>>);
    let count = use_state(|| DEFAULT_GRID_RUNS);
    let file = props.file.clone();
    {
        let (grid, dispatch) = (grid.clone(), props.dispatch.clone());
        // Fetched again for another pipeline or count, after a sign-in, and when a run of the
        // open one starts or ends.
        let key = (file.clone(), *count, props.sessions, props.run);
        use_effect_with(key, move |(file, count, _, _)| {
            if let Some(file) = file.clone() {
                let count = *count;
                wasm_bindgen_futures::spawn_local(async move {
                    match api::grid(&file, count).await {
                        Ok(g) => grid.set(Some(Rc::new(g))),
                        Err(e) => dispatch.dispatch(Action::Failed(e)),
                    }
                });
            }
        });
    }
    let Some(file) = file else {
        return html! { <p class="empty">{ "Open a pipeline." }</p> };
    };
    let on_count = {
        let count = count.clone();
        Callback::from(move |e: Event| {
            let value = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            if let Ok(n) = value.parse() {
                count.set(n);
            }
        })
    };
    let choices = [5, DEFAULT_GRID_RUNS, 25, MAX_GRID_RUNS].map(|n| {
        html! { <option value={n.to_string()} selected={n == *count}>{ format!("last {n} runs") }</option> }
    });
    let body = match grid.as_deref() {
        None => html! { <p class="empty">{ "Loading…" }</p> },
        Some(g) if g.runs.is_empty() => {
            html! { <p class="empty" id="grid-empty">{ format!("No runs of {file} yet.") }</p> }
        }
        Some(g) => grid_table(g),
    };
    html! {
        <div class="grid-view">
            <div class="grid-bar">
                <h3>{ format!("Runs of {file}") }</h3>
                <select id="grid-count" onchange={on_count}>{ for choices }</select>
                <span class="hint">{ "a row per notebook, a column per run (oldest on the left); hover a cell for its duration, click it for that attempt" }</span>
            </div>
            { body }
        </div>
    }
}

fn grid_table(g: &Grid) -> Html {
    let heads = g.runs.iter().map(|r| {
        let href = Route::Run { id: r.id, task: None }.to_hash();
        let took = r
            .ended_ms
            .map(|end| duration((end - r.started_ms).max(0) as f64 / 1000.0))
            .unwrap_or_else(|| "running".into());
        let status = status_name(r.status);
        html! {
            <th class="grid-run" data-id={r.id.to_string()} data-status={status}>
                <a {href} title={format!("run #{}: {status}, {took}", r.id)}>{ format!("#{}", r.id) }</a>
                <i class={classes!("status-bar", status)}></i>
            </th>
        }
    });
    let rows = g.rows.iter().map(|row| {
        let cells = row.cells.iter().zip(&g.runs).map(|(cell, run)| match cell {
            None => html! { <td class="grid-cell none" data-run={run.id.to_string()}></td> },
            Some(cell) => {
                let href = Route::Run { id: run.id, task: Some(row.task.clone()) }.to_hash();
                let state = cell.state.name();
                html! {
                    <td class="grid-cell" data-run={run.id.to_string()} data-task={row.task.clone()} data-state={state}>
                        <a class={classes!("cell", format!("state-{state}"))} {href}
                            title={cell_title(run, &row.task, cell)}></a>
                    </td>
                }
            }
        });
        html! {
            <tr data-task={row.task.clone()}>
                <th class="grid-task" title={row.task.clone()}>{ &row.task }</th>
                { for cells }
            </tr>
        }
    });
    html! {
        <div class="grid-scroll">
            <table id="run-grid">
                <thead><tr><th></th>{ for heads }</tr></thead>
                <tbody>{ for rows }</tbody>
            </table>
        </div>
    }
}
