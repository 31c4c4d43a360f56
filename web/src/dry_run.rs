//! The dry run page: `spool_core::dry_run`'s report of the pipeline on the pool the user
//! describes, recomputed on every edit, the pool-size sweep a moment later. Beside the
//! estimate-based prediction, the prediction calibrated on history (a run's measurements, or
//! each notebook's p50/p90 over the last successful runs, as the server measured them) and what
//! the newest of those runs, and the pipeline's last run, really took.

use crate::charts::{
    collapse_sub_pipelines, duration, Bar, BarKind, BusyChart, Gantt, GanttChart, SweepChart,
};
use crate::doc_state::DocAction;
use crate::doc_state::Shown;
use crate::dry_state::{DryAction, DryRunState};
use crate::dry_state::{DryField, DryForm};
use crate::edits::apply_pool;
use crate::run::NodeState;
use crate::runs::refresh_list;
use crate::state::{Action, State};
use spool_core::calibrate::DurationsFrom;
use spool_core::dry_run::DryRunReport;
use spool_core::runlog::RunStatus;
use spool_core::runlog::RunSummary;
use spool_core::sched::Policy;
use std::rc::Rc;
use yew::prelude::*;

/// The sweep runs this long after the last change, so typing stays responsive.
const SWEEP_DELAY_MS: u32 = 400;
/// Conditions on values listed beside the assumptions (the rest are counted).
const MAX_LISTED_CONDITIONS: usize = 20;
/// Runs offered for calibration.
const MAX_OFFERED_RUNS: usize = 20;

/// What the page reads of the app's state, so that it is drawn again only when that changes
/// (not, say, at each event of a live run).
#[derive(Properties, PartialEq)]
pub struct DryRunProps {
    pub dry: DryRunState,
    /// The last valid plan of the open file.
    pub shown: Option<Shown>,
    /// The open file.
    pub file: Option<String>,
    pub unsaved: bool,
    /// The run history, to calibrate on.
    pub runs: Vec<RunSummary>,
    pub dispatch: UseReducerDispatcher<State>,
}

pub(crate) fn bar_state(outcome: &str) -> NodeState {
    match outcome {
        "succeeded" => NodeState::Succeeded,
        "failed" => NodeState::Failed,
        "timed_out" => NodeState::TimedOut,
        "cancelled" => NodeState::Cancelled,
        _ => NodeState::Skipped,
    }
}

/// The Gantt chart of a simulated run, sub-pipelines as one bar each when `collapsed`.
pub fn sim_chart(report: &DryRunReport, collapsed: bool) -> GanttChart {
    let bars: Vec<Bar> = report
        .tasks
        .iter()
        .map(|a| Bar {
            task: a.id.clone(),
            start: a.start_secs,
            end: a.end_secs,
            state: bar_state(a.outcome),
            kind: BarKind::Attempt,
        })
        .collect();
    let bars = if collapsed {
        collapse_sub_pipelines(bars)
    } else {
        bars
    };
    GanttChart::new(bars, report.node_startup_secs, report.makespan_secs)
}

/// Asks the server what the history measured for `from` (the pipeline file `file`).
fn calibrate_on(dispatch: UseReducerDispatcher<State>, file: String, from: Option<DurationsFrom>) {
    dispatch.dispatch(Action::Dry(DryAction::Calibrate(from)));
    let Some(from) = from else { return };
    wasm_bindgen_futures::spawn_local(async move {
        match crate::api::calibration(&file, from).await {
            Ok(calibration) => {
                dispatch.dispatch(Action::Dry(DryAction::CalibrationLoaded(calibration)))
            }
            Err(e) => {
                dispatch.dispatch(Action::Dry(DryAction::Calibrate(None)));
                dispatch.dispatch(Action::Failed(e));
            }
        }
    });
}

/// How the page names a calibration: what the select offers, the column it fills.
fn durations_label(from: DurationsFrom) -> String {
    match from {
        DurationsFrom::Run(id) => format!("run #{id}'s durations"),
        DurationsFrom::Last => "the last run's durations".into(),
        DurationsFrom::P50 => "p50 of the last runs (median)".into(),
        DurationsFrom::P90 => "p90 of the last runs (pessimistic)".into(),
    }
}

fn runs_list(runs: &[i64]) -> String {
    let ids: Vec<String> = runs.iter().map(|id| format!("#{id}")).collect();
    ids.join(", ")
}

/// What the figures mean, with this report's own numbers: what the shared pool's figures
/// include, what "one pool per notebook" assumes, and what the lower bound is made of.
fn explanations(r: &DryRunReport) -> Html {
    let lb = &r.lower_bound;
    let startup = duration(r.node_startup_secs);
    let mut bound_parts = vec![
        format!(
            "the longest chain of dependencies ({})",
            duration(lb.critical_path_secs)
        ),
        format!(
            "all the work spread over the {} slots ({})",
            r.capacity_slots,
            duration(lb.work_secs)
        ),
    ];
    if lb.concurrency_secs > 0.0 {
        bound_parts.push(format!(
            "the notebooks spread over max_concurrency ({})",
            duration(lb.concurrency_secs)
        ));
    }
    let ratio = if lb.secs > 0.0 {
        format!(
            " The predicted makespan is {:.0} % of it.",
            r.makespan_secs / lb.secs * 100.0
        )
    } else {
        String::new()
    };
    html! {
        <ul class="dry-explain" id="dry-explain">
            <li data-explains="shared">
                <b>{ "Shared pool: " }</b>
                { format!(
                    "{} executors × {} cores = {} slots, started once for the whole run. Its node start-up ({startup}) is included: the makespan counts from the trigger, node-hours and cost from the pool's start, and utilisation counts the start-up as idle time (the shaded \"start-up\" band of the timeline).",
                    r.executors, r.executor_cores, r.capacity_slots,
                ) }
            </li>
            <li data-explains="baseline">
                <b>{ "One pool per notebook: " }</b>
                { format!(
                    "what running each notebook as its own job would take. Every attempt (retries too) waits for a pool of its own to start ({startup} each time) and holds at least {} nodes (a driver and executors; more when its slots need them) from its start-up to its end; there is no shared capacity, so notebooks start as soon as their dependencies end.",
                    r.baseline.min_nodes,
                ) }
            </li>
            <li data-explains="lower-bound">
                <b>{ "Lower bound: " }</b>
                { format!(
                    "no schedule of the same attempts on this pool can finish before {}: the start-up ({startup}) plus the longest of {}.{ratio}",
                    duration(lb.secs),
                    bound_parts.join(", "),
                ) }
            </li>
        </ul>
    }
}

#[function_component(DryRunView)]
pub fn dry_run_view(props: &DryRunProps) -> Html {
    let dry = &props.dry;
    let generation = dry.generation;
    {
        // The sweep (many simulations) runs here, a moment after the reports it completes;
        // the reducer only keeps it if no newer reports came meanwhile.
        let (dispatch, job) = (
            props.dispatch.clone(),
            props
                .shown
                .as_ref()
                .and_then(|s| dry.sweep_job(&s.plan, generation)),
        );
        use_effect_with(generation, move |_| {
            let timer = job.map(|job| {
                gloo_timers::callback::Timeout::new(SWEEP_DELAY_MS, move || {
                    dispatch.dispatch(Action::Dry(job.run()))
                })
            });
            move || drop(timer)
        });
    }
    {
        // The runs to calibrate on, and the last one's makespan.
        let dispatch = props.dispatch.clone();
        use_effect_with((), move |_| refresh_list(dispatch));
    }
    // Charts and the JSON are rebuilt only when the report changes (hooks come before any
    // early return).
    let shown_report = dry.shown().cloned();
    let collapsed = use_state(|| false);
    let derived = use_memo(
        (generation, dry.swept(), *collapsed),
        move |&(_, _, collapsed)| {
            shown_report.map(|r| {
                (
                    Rc::new(sim_chart(&r, collapsed)),
                    Rc::new(r.utilization_series.clone()),
                    serde_json::to_string_pretty(&*r).unwrap_or_default(),
                )
            })
        },
    );
    let (Some(shown), Some(r), Some((chart, series, json))) =
        (&props.shown, dry.shown(), (*derived).clone())
    else {
        return html! { <p class="empty">{ "The dry run needs a pipeline without errors." }</p> };
    };
    let form = &dry.form;
    let errors = form.options_on(&shown.plan).err().unwrap_or_default();
    let field = |f: DryField, label: &'static str, name: &'static str| {
        let dispatch = props.dispatch.clone();
        let oninput = Callback::from(move |e: InputEvent| {
            let v = e
                .target_unchecked_into::<web_sys::HtmlInputElement>()
                .value();
            dispatch.dispatch(Action::Dry(DryAction::Field(f, v)));
        });
        let msg = errors.iter().find(|(g, _)| *g == f).map(|(_, m)| m.clone());
        let placeholder = DryForm::placeholder(f, &shown.plan);
        html! {
            <label class={classes!("setting", msg.is_some().then_some("invalid"))}>
                <span>{ label }</span>
                <input type="text" value={form.get(f).to_string()} {placeholder} {oninput} data-field={name} />
                { crate::each(msg.map(|m| html! { <div class="diagnostic" data-field={name}>{ m }</div> })) }
            </label>
        }
    };
    let assume = {
        let dispatch = props.dispatch.clone();
        let oninput = Callback::from(move |e: InputEvent| {
            let v = e
                .target_unchecked_into::<web_sys::HtmlTextAreaElement>()
                .value();
            dispatch.dispatch(Action::Dry(DryAction::Field(DryField::Assume, v)));
        });
        let msgs: Vec<String> = errors
            .iter()
            .filter(|(g, _)| *g == DryField::Assume)
            .map(|(_, m)| m.clone())
            .collect();
        let all_conditions = || {
            shown
                .plan
                .tasks
                .iter()
                .flat_map(|t| t.conditions.iter().map(move |c| (t, c)))
        };
        let more = all_conditions()
            .count()
            .saturating_sub(MAX_LISTED_CONDITIONS);
        let conditions: Vec<Html> = all_conditions()
            .take(MAX_LISTED_CONDITIONS)
            .map(|(t, c)| {
                html! {
                    <li><code>{ &t.id }</code>{ " runs only if " }<code>{ &c.condition.text }</code>
                        { format!(" (its dependency on {})", c.dependency) }</li>
                }
            })
            .collect();
        let skipped = r.tasks.iter().filter(|a| a.outcome == "skipped").count();
        html! {
            <fieldset class="assume">
                <legend>{ "conditions on values" }</legend>
                if conditions.is_empty() {
                    <p class="hint">{ "No dependency of this pipeline has an if." }</p>
                } else {
                    <ul class="hint">
                        { for conditions }
                        if more > 0 { <li>{ format!("and {more} more") }</li> }
                    </ul>
                }
                <label class={classes!("setting", (!msgs.is_empty()).then_some("invalid"))}>
                    <span>{ "assume, one ID.KEY = VALUE a line (conditions reading other values hold)" }</span>
                    <textarea rows="2" data-field="dry.assume" value={form.get(DryField::Assume).to_string()}
                        placeholder={DryForm::placeholder(DryField::Assume, &shown.plan)} {oninput}></textarea>
                    { crate::each(msgs.into_iter().map(|m| html! { <div class="diagnostic" data-field="dry.assume">{ m }</div> })) }
                </label>
                <p class="hint" id="dry-skipped" data-skipped={skipped.to_string()}>
                    { format!("{skipped} notebook(s) skipped in this dry run") }
                </p>
            </fieldset>
        }
    };
    let on_policy = {
        let dispatch = props.dispatch.clone();
        Callback::from(move |e: Event| {
            let v = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            if let Some(p) = Policy::parse(&v) {
                dispatch.dispatch(Action::Dry(DryAction::Policy(p)));
            }
        })
    };
    let runs: Vec<_> = props
        .runs
        .iter()
        .filter(|run| run.pipeline == shown.plan.name && run.status != RunStatus::Running)
        .take(MAX_OFFERED_RUNS)
        .collect();
    let chosen = dry.calibrate_from.as_ref().map(|c| c.from);
    let on_durations = {
        let dispatch = props.dispatch.clone();
        let file = props.file.clone().unwrap_or_default();
        Callback::from(move |e: Event| {
            let v = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            calibrate_on(dispatch.clone(), file.clone(), DurationsFrom::parse(&v));
        })
    };
    // The statistics read successful runs only: offered once there is one.
    let statistics = match runs.iter().any(|run| run.status == RunStatus::Succeeded) {
        true => vec![DurationsFrom::P50, DurationsFrom::P90],
        false => Vec::new(),
    };
    let offered: Vec<DurationsFrom> = statistics
        .into_iter()
        .chain(runs.iter().map(|run| DurationsFrom::Run(run.id)))
        .collect();
    let b = &r.baseline;
    let gain = |g: f64| {
        if g > 0.0 {
            format!("{g:.1}×")
        } else {
            "–".into()
        }
    };
    let file_pool = &shown.plan.pool;
    let on_apply = |executors: u32, cores: u32| {
        let edits = apply_pool(file_pool, executors, cores);
        let dispatch = props.dispatch.clone();
        Callback::from(move |_: MouseEvent| {
            dispatch.dispatch(Action::Doc(DocAction::Edit(edits.clone())));
            // The form follows the file again (its placeholders show the new pool).
            for f in [DryField::Executors, DryField::Cores] {
                dispatch.dispatch(Action::Dry(DryAction::Field(f, String::new())));
            }
        })
    };
    let sweep = r.sweep.as_ref().map(|points| {
        let deadline = form.options().ok().and_then(|o| o.deadline_secs);
        let note = match (&r.cheapest_within_deadline, deadline) {
            (Some(p), Some(d)) => format!(
                "Cheapest pool finishing within {}: {} executors ({}, cost {:.2}).",
                duration(d), p.executors, duration(p.makespan_secs), p.cost
            ),
            (None, Some(d)) => format!("No pool of up to {} executors finishes within {}.", points.len(), duration(d)),
            (Some(p), None) => format!("Cheapest pool: {} executors ({}, cost {:.2}). Set a deadline to trade time for cost.", p.executors, duration(p.makespan_secs), p.cost),
            (None, None) => String::new(),
        };
        let apply_cheapest = r
            .cheapest_within_deadline
            .filter(|p| shown.current && p.executors != file_pool.executors)
            .map(|p| html! {
                <button id="apply-cheapest" onclick={on_apply(p.executors, r.executor_cores)}
                    title="write this pool into the file's [pool] (save to keep it)">
                    { format!("Apply the cheapest pool: {} executors × {} cores", p.executors, r.executor_cores) }
                </button>
            });
        html! {
            <section>
                <h3>{ "Pool size sweep" }</h3>
                <SweepChart points={Rc::new(points.clone())} cheapest={r.cheapest_within_deadline.map(|p| p.executors)}
                    deadline_secs={deadline} current={r.executors} />
                <p id="sweep-note">{ note }</p>
                { crate::each(apply_cheapest) }
            </section>
        }
    });
    let last_run = runs.first().map(|run| (run.id, run.notebook_span_secs()));
    let secs = |v: Option<f64>| v.map_or("–".to_string(), duration);
    let calibration = r.calibration.as_ref().map(|c| {
        let estimated = if c.estimated.is_empty() {
            "every notebook measured".to_string()
        } else {
            format!("on their estimate: {}", c.estimated.join(", "))
        };
        let measured_in = match c.runs.as_slice() {
            [one] => format!("Measured in run #{one}"),
            runs => format!("Medians over runs {}", runs_list(runs)),
        };
        // What `spool simulate --history-stats` prints.
        let stats = (!c.stats.is_empty()).then(|| html! {
            <table class="figures history-stats" id="history-stats">
                <thead><tr><th>{ "notebook" }</th><th>{ "runs" }</th><th>{ "p50" }</th>
                    <th>{ "p90" }</th></tr></thead>
                <tbody>
                    { for c.stats.iter().map(|s| html! {
                        <tr data-id={s.id.clone()}><th>{ &s.id }</th><td>{ s.runs }</td>
                            <td class="p50">{ duration(s.p50_secs) }</td>
                            <td class="p90">{ duration(s.p90_secs) }</td></tr>
                    }) }
                </tbody>
            </table>
        });
        html! {
            <>
                <p class="measured" id="measured">
                    { format!(
                        "{measured_in}: session start-up {}, dispatch latency {}, live capacity {}; {}.",
                        secs(c.session_startup_secs),
                        secs(c.dispatch_latency_secs),
                        c.live_capacity_slots.map_or("–".to_string(), |n| format!("{n} slots")),
                        estimated,
                    ) }
                </p>
                { crate::each(stats) }
            </>
        }
    });
    let calibrated_label = chosen.map_or("predicted on history".to_string(), |from| {
        format!("predicted on {}", durations_label(from))
    });
    let real_label = match r.calibration.as_ref().map(|c| c.runs.as_slice()) {
        Some([newest, _, ..]) => format!("run #{newest}, real (the newest read)"),
        Some([newest]) => format!("run #{newest}, real"),
        _ => "that run, real".to_string(),
    };
    let estimated_secs = dry.estimated().map(|e| e.makespan_secs);
    let calibrated_secs = dry.calibrated().map(|c| c.makespan_secs);
    let predictions = html! {
        <table class="figures predictions">
            <thead><tr><th></th><th>{ "predicted on estimates" }</th>
                <th id="calibrated-label">{ calibrated_label }</th><th>{ real_label }</th>
                <th>{ "last real run" }</th></tr></thead>
            <tbody><tr>
                <th title="a real run's makespan is its first notebook start to its last end: set the start-up to 0 to compare">{ "makespan" }</th>
                <td id="makespan-estimates" data-secs={estimated_secs.map(|s| s.to_string())}>{ secs(estimated_secs) }</td>
                <td id="makespan-calibrated" data-secs={calibrated_secs.map(|s| s.to_string())}>{ secs(calibrated_secs) }</td>
                <td id="makespan-real">{ secs(r.calibration.as_ref().and_then(|c| c.real_makespan_secs)) }</td>
                <td id="makespan-last-run">{ match last_run {
                    Some((id, span)) => format!("{} (run #{id})", secs(span)),
                    None => "no run yet".into(),
                } }</td>
            </tr></tbody>
        </table>
    };
    let pool_is_files =
        r.executors == file_pool.executors && r.executor_cores == file_pool.executor_cores;
    let apply_blocked = if !shown.current {
        Some("fix the pipeline's errors first")
    } else if pool_is_files {
        Some("the file already has this pool")
    } else {
        None
    };
    let apply_row = html! {
        <div class="apply-pool">
            <button id="apply-pool" disabled={apply_blocked.is_some()} onclick={on_apply(r.executors, r.executor_cores)}
                title={apply_blocked.unwrap_or("write these sizes into the file's [pool] (through the editor: save to keep them)")}>
                { format!("Apply this pool: {} executors × {} cores", r.executors, r.executor_cores) }
            </button>
            <span class="hint" id="file-pool">{ format!(
                "the file's [pool]: {} executors × {} cores{}",
                file_pool.executors,
                file_pool.executor_cores,
                if props.unsaved { " (unsaved changes: save to keep them)" } else { "" },
            ) }</span>
        </div>
    };
    let explain = explanations(r);
    let has_sub_pipelines = r.tasks.iter().any(|a| a.id.contains('/'));
    let on_collapse = {
        let collapsed = collapsed.clone();
        Callback::from(move |_: Event| collapsed.set(!*collapsed))
    };
    html! {
        <div class="dry-run">
            if !shown.current {
                <p class="stale">{ "The pipeline has errors: showing the last version without errors." }</p>
            }
            <div class="settings">
                <fieldset>
                    <legend>{ "pool" }</legend>
                    { field(DryField::Executors, "executors", "dry.executors") }
                    { field(DryField::Cores, "cores per executor", "dry.cores") }
                    { field(DryField::Startup, "node start-up (s)", "dry.startup") }
                    { field(DryField::Price, "price per node-hour", "dry.price") }
                    <label class="setting">
                        <span>{ "policy" }</span>
                        <select onchange={on_policy} data-field="dry.policy">
                            { for Policy::NAMES.iter().map(|n| html! {
                                <option value={*n} selected={form.policy.name() == *n}>{ n }</option>
                            }) }
                        </select>
                    </label>
                </fieldset>
                <fieldset>
                    <legend>{ "durations" }</legend>
                    <label class="setting">
                        <span>{ "from" }</span>
                        <select onchange={on_durations} data-field="dry.durations-from">
                            <option value="" selected={chosen.is_none()}>{ "the estimates" }</option>
                            { for offered.iter().map(|&from| html! {
                                <option value={from.name()} selected={chosen == Some(from)}>
                                    { durations_label(from) }
                                </option>
                            }) }
                        </select>
                    </label>
                    { field(DryField::Seed, "seed", "dry.seed") }
                    { field(DryField::Variation, "variation (σ)", "dry.variation") }
                    { field(DryField::FailureRate, "failure rate", "dry.failure-rate") }
                </fieldset>
                <fieldset>
                    <legend>{ "sweep" }</legend>
                    { field(DryField::Deadline, "deadline (min)", "dry.deadline") }
                    { field(DryField::SweepMax, "up to executors", "dry.sweep-max") }
                </fieldset>
                { assume }
            </div>
            { apply_row }
            { predictions }
            { crate::each(calibration) }
            <table class="figures">
                <thead><tr><th></th><th>{ "shared pool" }</th><th title="every attempt on a pool of its own, each paying the start-up (see below)">{ "one pool per notebook" }</th>
                    <th title="baseline ÷ shared pool: above 1 the shared pool is better">{ "gain" }</th></tr></thead>
                <tbody>
                    <tr><th title="from the trigger to the last notebook's end, the pool's start-up included">{ "makespan" }</th>
                        <td id="makespan" data-secs={r.makespan_secs.to_string()}>{ duration(r.makespan_secs) }</td>
                        <td id="baseline-makespan">{ duration(b.makespan_secs) }</td>
                        <td id="gain-makespan">{ gain(r.gain.makespan) }</td></tr>
                    <tr><th title="nodes (a driver and the executors) × the hours they are held, start-up included">{ "node-hours" }</th>
                        <td id="node-hours">{ format!("{:.2}", r.node_hours) }</td>
                        <td>{ format!("{:.2}", b.node_hours) }</td>
                        <td>{ gain(r.gain.node_hours) }</td></tr>
                    <tr><th title="node-hours × the price per node-hour">{ "cost" }</th>
                        <td id="cost">{ format!("{:.2}", r.cost) }</td>
                        <td id="baseline-cost">{ format!("{:.2}", b.cost) }</td>
                        <td id="gain-cost">{ gain(r.gain.cost) }</td></tr>
                    <tr><th title="busy slot-seconds ÷ (slots × makespan): the start-up counts as idle">{ "utilisation" }</th>
                        <td id="utilisation">{ format!("{:.0} %", r.utilization * 100.0) }</td>
                        <td></td><td></td></tr>
                    <tr><th>{ "lower bound" }</th>
                        <td id="lower-bound" title="no schedule of the same work on this pool is faster">{ duration(r.lower_bound.secs) }</td>
                        <td></td>
                        <td>{ if r.lower_bound.secs > 0.0 { format!("{:.0} % of bound", r.makespan_secs / r.lower_bound.secs * 100.0) } else { String::new() } }</td></tr>
                </tbody>
            </table>
            { explain }
            <section>
                <h3>{ "Timeline" }
                    if has_sub_pipelines {
                        <label class="small-toggle">
                            <input type="checkbox" id="collapse-sub-pipelines" checked={*collapsed} onchange={on_collapse} />
                            { "collapse sub-pipelines" }
                        </label>
                    }
                </h3>
                <Gantt {chart} />
            </section>
            <section>
                <h3>{ "Utilisation" }</h3>
                <BusyChart {series} capacity={r.capacity_slots} end={r.makespan_secs} />
            </section>
            { crate::each(sweep) }
            <details class="report-json">
                <summary>{ "The report as JSON (what spool simulate --json prints)" }</summary>
                <pre id="report-json" data-swept={dry.swept().to_string()}>{ json }</pre>
            </details>
        </div>
    }
}
