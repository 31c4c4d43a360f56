//! The dry run: the pipeline simulated by `spool_core::sim` on a pool the user describes,
//! recomputed on every edit; the pool-size sweep follows a moment later.

use crate::charts::{duration, Bar, BusyChart, Gantt, GanttChart, SweepChart};
use crate::run::NodeState;
use crate::state::{Action, DryField, DryRun, State};
use spool_core::sched::Policy;
use spool_core::sim::AttemptOutcome;
use std::rc::Rc;
use yew::prelude::*;

/// The sweep runs this long after the last change, so typing stays responsive.
const SWEEP_DELAY_MS: u32 = 400;

#[derive(Properties, PartialEq)]
pub struct DryRunProps {
    pub app: UseReducerHandle<State>,
}

fn bar_state(outcome: AttemptOutcome) -> NodeState {
    match outcome {
        AttemptOutcome::Succeeded => NodeState::Succeeded,
        AttemptOutcome::Failed => NodeState::Failed,
        AttemptOutcome::TimedOut => NodeState::TimedOut,
        AttemptOutcome::Cancelled => NodeState::Cancelled,
        AttemptOutcome::Skipped => NodeState::Skipped,
    }
}

/// The Gantt chart of a simulated run.
pub fn sim_chart(dry: &DryRun, plan: &spool_core::dag::Plan) -> GanttChart {
    let bars = dry
        .report
        .attempts
        .iter()
        .map(|a| Bar {
            task: plan.tasks[a.task].id.clone(),
            start: a.start_secs,
            end: a.end_secs,
            state: bar_state(a.outcome),
        })
        .collect();
    GanttChart::new(
        bars,
        dry.setup.pool.node_startup_secs.max(0.0),
        dry.report.makespan_secs,
    )
}

#[function_component(DryRunView)]
pub fn dry_run_view(props: &DryRunProps) -> Html {
    let app = &props.app;
    {
        let dispatch = app.dispatcher();
        use_effect_with(app.dry_generation, move |&generation| {
            let timer = gloo_timers::callback::Timeout::new(SWEEP_DELAY_MS, move || {
                dispatch.dispatch(Action::Sweep(generation))
            });
            move || drop(timer)
        });
    }
    // Charts are rebuilt only when the dry run changes (hooks come before any early return).
    let charts = {
        let (shown, dry) = (app.shown.clone(), app.dry.clone());
        use_memo(app.dry_generation, move |_| match (shown, dry) {
            (Some(shown), Some(dry)) => Some((
                Rc::new(sim_chart(&dry, &shown.plan)),
                Rc::new(dry.report.utilization_series.clone()),
            )),
            _ => None,
        })
    };
    let (Some(shown), Some(dry), Some((chart, series))) = (&app.shown, &app.dry, (*charts).clone())
    else {
        return html! { <p class="empty">{ "The dry run needs a pipeline without errors." }</p> };
    };
    let errors = app.dry_form.parse().err().unwrap_or_default();
    let field = |f: DryField, label: &'static str, placeholder: String, name: &'static str| {
        let dispatch = app.dispatcher();
        let oninput = Callback::from(move |e: InputEvent| {
            let v = e
                .target_unchecked_into::<web_sys::HtmlInputElement>()
                .value();
            dispatch.dispatch(Action::DryField(f, v));
        });
        let msg = errors.iter().find(|(g, _)| *g == f).map(|(_, m)| m.clone());
        html! {
            <label class={classes!("setting", msg.is_some().then_some("invalid"))}>
                <span>{ label }</span>
                <input type="text" value={app.dry_form.get(f).to_string()} {placeholder} {oninput} data-field={name} />
                { crate::each(msg.map(|m| html! { <div class="diagnostic" data-field={name}>{ m }</div> })) }
            </label>
        }
    };
    let on_policy = {
        let dispatch = app.dispatcher();
        Callback::from(move |e: Event| {
            let v = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            if let Some(p) = Policy::parse(&v) {
                dispatch.dispatch(Action::DryPolicy(p));
            }
        })
    };
    let pool = &shown.plan.pool;
    let r = &dry.report;
    let b = &dry.baseline;
    let ratio = |ours: f64, theirs: f64| {
        if ours > 0.0 {
            format!("{:.1}×", theirs / ours)
        } else {
            "–".into()
        }
    };
    let sweep = app.sweep.as_ref().map(|s| {
        let note = match (&s.cheapest, s.deadline_secs) {
            (Some(p), Some(d)) => format!(
                "Cheapest pool finishing within {}: {} executors ({}, cost {:.2}).",
                duration(d), p.executors, duration(p.makespan_secs), p.cost
            ),
            (None, Some(d)) => format!("No pool of up to {} executors finishes within {}.", s.points.len(), duration(d)),
            (Some(p), None) => format!("Cheapest pool: {} executors ({}, cost {:.2}). Set a deadline to trade time for cost.", p.executors, duration(p.makespan_secs), p.cost),
            (None, None) => String::new(),
        };
        html! {
            <section>
                <h3>{ "Pool size sweep" }</h3>
                <SweepChart points={Rc::new(s.points.clone())} cheapest={s.cheapest.map(|p| p.executors)}
                    deadline_secs={s.deadline_secs} current={dry.setup.pool.executors} />
                <p id="sweep-note">{ note }</p>
            </section>
        }
    });
    html! {
        <div class="dry-run">
            if !shown.current {
                <p class="stale">{ "The pipeline has errors: showing the last version without errors." }</p>
            }
            <div class="settings">
                <fieldset>
                    <legend>{ "pool" }</legend>
                    { field(DryField::Executors, "executors", pool.executors.to_string(), "dry.executors") }
                    { field(DryField::Cores, "cores per executor", pool.executor_cores.to_string(), "dry.cores") }
                    { field(DryField::Startup, "node start-up (s)", "0".into(), "dry.startup") }
                    { field(DryField::Price, "price per node-hour", "0".into(), "dry.price") }
                    <label class="setting">
                        <span>{ "policy" }</span>
                        <select onchange={on_policy} data-field="dry.policy">
                            { for Policy::NAMES.iter().map(|n| html! {
                                <option value={*n} selected={app.dry_form.policy.name() == *n}>{ n }</option>
                            }) }
                        </select>
                    </label>
                </fieldset>
                <fieldset>
                    <legend>{ "sweep" }</legend>
                    { field(DryField::Deadline, "deadline (min)", "none".into(), "dry.deadline") }
                    { field(DryField::SweepMax, "up to executors", "32".into(), "dry.sweep-max") }
                </fieldset>
            </div>
            <table class="figures">
                <thead><tr><th></th><th>{ "shared pool" }</th><th>{ "one pool per notebook" }</th><th>{ "gain" }</th></tr></thead>
                <tbody>
                    <tr><th>{ "makespan" }</th>
                        <td id="makespan" data-secs={r.makespan_secs.to_string()}>{ duration(r.makespan_secs) }</td>
                        <td id="baseline-makespan">{ duration(b.makespan_secs) }</td>
                        <td>{ ratio(r.makespan_secs, b.makespan_secs) }</td></tr>
                    <tr><th>{ "node-hours" }</th>
                        <td id="node-hours">{ format!("{:.2}", r.node_hours) }</td>
                        <td>{ format!("{:.2}", b.node_hours) }</td>
                        <td>{ ratio(r.node_hours, b.node_hours) }</td></tr>
                    <tr><th>{ "cost" }</th>
                        <td id="cost">{ format!("{:.2}", r.cost) }</td>
                        <td id="baseline-cost">{ format!("{:.2}", b.cost) }</td>
                        <td>{ ratio(r.cost, b.cost) }</td></tr>
                    <tr><th>{ "utilisation" }</th>
                        <td id="utilisation">{ format!("{:.0} %", r.utilization * 100.0) }</td>
                        <td></td><td></td></tr>
                    <tr><th>{ "lower bound" }</th>
                        <td id="lower-bound" title="no schedule of the same work on this pool is faster">{ duration(r.lower_bound.secs) }</td>
                        <td></td>
                        <td>{ if r.lower_bound.secs > 0.0 { format!("{:.0} % of bound", r.makespan_secs / r.lower_bound.secs * 100.0) } else { String::new() } }</td></tr>
                </tbody>
            </table>
            <section>
                <h3>{ "Timeline" }</h3>
                <Gantt chart={chart} />
            </section>
            <section>
                <h3>{ "Utilisation" }</h3>
                <BusyChart series={series} capacity={r.capacity_slots} end={r.makespan_secs} />
            </section>
            { crate::each(sweep) }
        </div>
    }
}
