//! Runs: start one with parameter overrides, watch it live (its events stream in over
//! Server-Sent Events and are folded into the graph's colours and the Gantt chart), read each
//! notebook's output and error, cancel, resume from a failure, browse the history, and feed
//! measured durations back into the estimates.

use crate::api;
use crate::charts::{
    collapse_sub_pipelines, duration, state_colour, Bar, BarKind, Gantt, GanttChart,
};
use crate::dag_view::{DagView, RUN_STATES};
use crate::doc_state::DocState;
use crate::edits::parse_overrides;
use crate::repair::{repair_bar, resume_preview, Preview, Repair, TaskTable};
use crate::run::{status_name, NodeState, RunView};
use crate::runs_state::{RunsAction, RunsState};
use crate::shell::ShellAction;
use crate::state::{Action, State};
use futures_util::StreamExt;
use gloo_net::eventsource::futures::EventSource;
use spool_core::dag::Plan;
use spool_core::dry_run::{DryRunReport, SimOptions};
use spool_core::layout::PlanDrawing;
use spool_core::runlog::{FinalReason, RunEvent, RunStatus, StoredEvent, TaskRecord};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use yew::prelude::*;

/// How often the chart of a live run moves on between events.
const TICK_MS: u32 = 1000;
/// Runs listed in the history.
pub(crate) const MAX_LISTED: usize = 200;

/// What the runs tab reads of the app's state: the open file (a run is drawn on its plan),
/// the runs, the picked task and the sign-ins (the history is read again after one).
#[derive(Properties, PartialEq)]
pub struct RunsProps {
    pub editing: DocState,
    pub runs: RunsState,
    pub selected: Option<String>,
    pub sessions: u32,
    pub dispatch: UseReducerDispatcher<State>,
}

fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

pub fn clock(ms: i64) -> String {
    let d = js_sys::Date::new(&JsValue::from_f64(ms as f64));
    String::from(d.to_locale_string("en-GB", &JsValue::UNDEFINED))
}

/// Fetches a run and shows it.
pub fn open_run(dispatch: UseReducerDispatcher<State>, id: i64) {
    wasm_bindgen_futures::spawn_local(async move {
        match api::run(id).await {
            Ok(detail) => dispatch.dispatch(Action::RunOpened(detail)),
            Err(e) => dispatch.dispatch(Action::Failed(e)),
        }
    });
}

pub fn refresh_list(dispatch: UseReducerDispatcher<State>) {
    wasm_bindgen_futures::spawn_local(async move {
        match api::runs().await {
            Ok(runs) => dispatch.dispatch(Action::Runs(RunsAction::Listed(runs))),
            Err(e) => dispatch.dispatch(Action::Failed(e)),
        }
    });
}

/// Follows a live run's event stream until its final event (or until the view goes away).
pub fn follow(dispatch: UseReducerDispatcher<State>, id: i64) -> impl FnOnce() {
    // Dropping the EventSource closes it, and its subscription then yields an error, which
    // ends the task below: the view going away and the run's final event both stop it that
    // way. (gloo-net reports no error while the browser reconnects by itself, only once the
    // source is closed, by us or for good by the browser.)
    let source = Rc::new(RefCell::new(EventSource::new(&api::events_url(id)).ok()));
    let messages = source
        .borrow_mut()
        .as_mut()
        .and_then(|es| es.subscribe("message").ok());
    if let Some(mut messages) = messages {
        let source = source.clone();
        wasm_bindgen_futures::spawn_local(async move {
            while let Some(Ok((_, m))) = messages.next().await {
                let Some(text) = m.data().as_string() else {
                    continue;
                };
                let Ok(event) = serde_json::from_str::<StoredEvent>(&text) else {
                    continue;
                };
                let last = matches!(
                    event.event,
                    RunEvent::RunFinished { .. } | RunEvent::RunInterrupted { .. }
                );
                dispatch.dispatch(Action::Runs(RunsAction::Event {
                    run: id,
                    event: Box::new(event),
                }));
                if last {
                    // The server ends the stream here; without this the browser would reconnect.
                    source.borrow_mut().take();
                }
            }
        });
    }
    move || drop(source.borrow_mut().take())
}

/// The Gantt chart of a run (`plan`: the plan it ran): a row per notebook, each attempt's
/// queued time (ready, waiting for a slot: core's `timeline`) and running time, the session's
/// start-up shaded (up to now while it starts); with `predicted`, the dry run's bars over them;
/// sub-pipelines as one bar each when `collapsed`.
pub fn run_chart(
    run: &RunView,
    plan: Option<&Plan>,
    now: i64,
    predicted: Option<&DryRunReport>,
    collapsed: bool,
) -> GanttChart {
    let secs = |ms: i64| (ms - run.record.started_ms).max(0) as f64 / 1000.0;
    let mut bars = Vec::new();
    for a in run.ready.attempts(plan, &run.record) {
        let state = a
            .outcome
            .map_or(run.state_of(&a.task), NodeState::of_outcome);
        if a.ready_ms < a.started_ms {
            bars.push(Bar {
                task: a.task.clone(),
                start: secs(a.ready_ms),
                end: secs(a.started_ms),
                state,
                kind: BarKind::Queued,
            });
        }
        bars.push(Bar {
            task: a.task,
            start: secs(a.started_ms),
            end: secs(a.ended_ms.unwrap_or(now)),
            state,
            kind: BarKind::Attempt,
        });
    }
    // A live run's queue: what is ready and waits for a slot now.
    let queue = plan
        .filter(|_| run.is_live())
        .map(|plan| run.ready.waiting(plan, &run.record))
        .unwrap_or_default();
    for (task, _, ready) in queue {
        bars.push(Bar {
            task,
            start: secs(ready),
            end: secs(now.max(ready)),
            state: NodeState::Pending,
            kind: BarKind::Queued,
        });
    }
    let mut end = run.elapsed_secs(now).max(1.0);
    if let Some(report) = predicted {
        end = end.max(report.makespan_secs);
        // A skipped notebook is a point in time, not a bar.
        bars.extend(
            report
                .tasks
                .iter()
                .filter(|a| a.outcome != "skipped")
                .map(|a| Bar {
                    task: a.id.clone(),
                    start: a.start_secs,
                    end: a.end_secs,
                    state: crate::dry_run::bar_state(a.outcome),
                    kind: BarKind::Predicted,
                }),
        );
    }
    if collapsed {
        bars = collapse_sub_pipelines(bars);
    }
    let startup = match run.ready.session_ready_ms {
        Some(up) => secs(up),
        None if run.is_live() => secs(now),
        None => 0.0,
    };
    GanttChart {
        startup_of: "the Spark session starts",
        ..GanttChart::new(bars, startup, end)
    }
}

/// The dry run of the plan a run ran, as the dry run page computes it on the file's estimates
/// and `[pool]`, starting when the run's session came up (`startup_secs`, when known) so that
/// its bars line up with the real ones.
fn prediction(plan: &Plan, startup_secs: Option<f64>) -> DryRunReport {
    let options = SimOptions {
        node_startup_secs: startup_secs,
        ..SimOptions::default()
    };
    DryRunReport::without_sweep(plan, &options, None)
}

/// The plan a run is drawn from: the one it ran (its `RunStarted` plan), or for a log without
/// one (older builds) the open file's.
fn drawn_from(editing: &DocState, run: &RunView) -> Option<(Rc<Plan>, Option<Rc<PlanDrawing>>)> {
    let same_file = editing
        .doc
        .as_ref()
        .is_some_and(|d| d.root == run.record.file);
    match (&run.ran, &editing.shown) {
        (Some(ran), _) => Some((ran.plan.clone(), ran.drawing.clone())),
        (None, Some(shown)) if same_file => Some((shown.plan.clone(), shown.drawing.clone())),
        _ => None,
    }
}

/// A plan compared by identity: a memo's key that costs nothing to compare.
#[derive(Clone)]
struct SamePlan(Rc<Plan>);

impl PartialEq for SamePlan {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

#[function_component(RunsView)]
pub fn runs_view(props: &RunsProps) -> Html {
    let tick = use_state(|| 0u64);
    let show_predicted = use_state(|| false);
    let collapsed = use_state(|| false);
    let predicted = {
        let run = props.runs.run.as_ref();
        let plan = run
            .and_then(|r| drawn_from(&props.editing, r))
            .map(|(p, _)| SamePlan(p));
        let startup_ms = run.and_then(|r| {
            let up = r.ready.session_ready_ms?;
            Some(up - r.record.started_ms)
        });
        let key = (*show_predicted).then_some((plan, startup_ms));
        use_memo(key, |key| {
            let (Some(plan), startup_ms) = key.as_ref()? else {
                return None;
            };
            let startup = startup_ms.map(|ms| ms.max(0) as f64 / 1000.0);
            Some(prediction(&plan.0, startup))
        })
    };
    // The repair being prepared, of the run it was started on (another run shown ends it).
    let repair = use_state(|| None::<Repair>);
    let status = props
        .runs
        .run
        .as_ref()
        .map(|r| (r.record.id, r.record.status));
    {
        // The history changes when a run starts or ends, and can be read after a sign-in.
        let dispatch = props.dispatch.clone();
        use_effect_with((status, props.sessions), move |_| refresh_list(dispatch));
    }
    let live = props
        .runs
        .run
        .as_ref()
        .filter(|r| r.is_live())
        .map(|r| r.record.id);
    {
        // Re-render while the run is live, for its elapsed times (the App follows its events).
        let tick = tick.clone();
        use_effect_with(live, move |&live| {
            let timer = live.map(|_| {
                gloo_timers::callback::Interval::new(TICK_MS, move || tick.set(now_ms() as u64))
            });
            move || drop(timer)
        });
    }
    let Some(doc) = &props.editing.doc else {
        return html! { <p class="empty">{ "Open a pipeline." }</p> };
    };
    let (params, mut param_errors) = parse_overrides(&props.runs.overrides);
    // The server's own check (types of `[params]`, values without default), before asking it.
    if let (Some(plan), true) = (&doc.checked.plan, param_errors.is_empty()) {
        let run = spool_core::template::RunInfo {
            id: 0,
            trigger_ms: now_ms(),
        };
        if let Err(why) = spool_core::params::bind(plan, &params, run) {
            param_errors.push(why);
        }
    }
    let params = Rc::new(params);
    let on_overrides = {
        let dispatch = props.dispatch.clone();
        Callback::from(move |e: InputEvent| {
            dispatch.dispatch(Action::Runs(RunsAction::Overrides(
                e.target_unchecked_into::<web_sys::HtmlTextAreaElement>()
                    .value(),
            )))
        })
    };
    let on_run = {
        let (dispatch, file, params) = (props.dispatch.clone(), doc.root.clone(), params.clone());
        Callback::from(move |_: MouseEvent| {
            let (dispatch, file, params) = (dispatch.clone(), file.clone(), params.clone());
            wasm_bindgen_futures::spawn_local(async move {
                // The editor's notebook diagnostics are brought up to date with the disk first.
                crate::recheck_files(&dispatch, &file).await;
                match api::start_run(&file, &params).await {
                    Ok(id) => open_run(dispatch, id),
                    Err(e) => dispatch.dispatch(Action::Failed(e)),
                }
            });
        })
    };
    let blocked = if props.editing.unsaved() {
        Some("save the pipeline first: a run uses the saved file")
    } else if doc.checked.has_errors() {
        Some("the pipeline has errors")
    } else if !param_errors.is_empty() {
        Some("fix the parameter overrides")
    } else {
        None
    };
    let history = props
        .runs
        .list
        .iter()
        .filter(|r| r.file == doc.root)
        .take(MAX_LISTED)
        .map(|r| {
            let onclick = {
                let (dispatch, id) = (props.dispatch.clone(), r.id);
                Callback::from(move |_: MouseEvent| open_run(dispatch.clone(), id))
            };
            let took = r.ended_ms.map(|e| duration((e - r.started_ms) as f64 / 1000.0));
            let selected = props.runs.run.as_ref().is_some_and(|v| v.record.id == r.id);
            html! {
                <tr class={classes!("run-row", selected.then_some("selected"))} data-id={r.id.to_string()}
                    data-status={status_name(r.status)} {onclick}>
                    <td>{ format!("#{}", r.id) }</td>
                    <td class={classes!("status", status_name(r.status))}>{ status_name(r.status) }</td>
                    <td>{ clock(r.started_ms) }</td>
                    <td>{ took.unwrap_or_else(|| "running".into()) }</td>
                    <td>{ r.resumed_from.map(|f| format!("resumes #{f}")).unwrap_or_default() }</td>
                </tr>
            }
        });
    let detail = props.runs.run.as_ref().map(|run| {
        let toggle = {
            let show = show_predicted.clone();
            Callback::from(move |e: Event| {
                show.set(
                    e.target_unchecked_into::<web_sys::HtmlInputElement>()
                        .checked(),
                )
            })
        };
        let on_collapse = {
            let collapsed = collapsed.clone();
            Callback::from(move |_: Event| collapsed.set(!*collapsed))
        };
        let shown = GanttOptions {
            predicted: *show_predicted,
            toggle_predicted: toggle,
            report: (*predicted).as_ref(),
            collapsed: *collapsed,
            toggle_collapsed: on_collapse,
        };
        run_detail(props, run, &params, shown, &repair)
    });
    html! {
        <div class="runs">
            <div class="run-start">
                <label>
                    <span>{ "parameters, one " }<code>{ "name = value" }</code>{ " (the pipeline's [params]) or " }<code>{ "notebook.key = value" }</code>{ " a line" }</span>
                    <textarea id="run-params" rows="3" value={props.runs.overrides.clone()} oninput={on_overrides}
                        placeholder="run_date = 2024-07-01"></textarea>
                </label>
                { crate::each(param_errors.iter().map(|e| html! { <div class="diagnostic" data-field="run-params">{ e }</div> })) }
                <button id="run-button" class="primary" disabled={blocked.is_some()} onclick={on_run}
                    title={blocked.unwrap_or("run the saved pipeline on Spark")}>{ "Run" }</button>
                { crate::each(blocked.map(|b| html! { <span class="hint">{ b }</span> })) }
            </div>
            <div class="run-columns">
                <section class="history">
                    <h3>{ "History" }
                        <button class="small" onclick={{ let d = props.dispatch.clone(); Callback::from(move |_: MouseEvent| refresh_list(d.clone())) }}>{ "refresh" }</button>
                    </h3>
                    <table id="run-history">
                        <thead><tr><th>{ "run" }</th><th>{ "status" }</th><th>{ "started" }</th><th>{ "took" }</th><th></th></tr></thead>
                        <tbody>{ for history }</tbody>
                    </table>
                </section>
                { crate::each(detail) }
            </div>
        </div>
    }
}

/// What the run's Gantt chart is asked to show: the dry run's prediction (and the prediction),
/// sub-pipelines collapsed.
struct GanttOptions<'a> {
    predicted: bool,
    toggle_predicted: Callback<Event>,
    report: Option<&'a DryRunReport>,
    collapsed: bool,
    toggle_collapsed: Callback<Event>,
}

fn run_detail(
    props: &RunsProps,
    run: &Rc<RunView>,
    params: &Rc<std::collections::BTreeMap<String, serde_json::Value>>,
    gantt: GanttOptions,
    repair: &UseStateHandle<Option<Repair>>,
) -> Html {
    let now = now_ms();
    let on_cancel = {
        let (dispatch, id) = (props.dispatch.clone(), run.record.id);
        Callback::from(move |_: MouseEvent| {
            let dispatch = dispatch.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = api::cancel(id).await {
                    dispatch.dispatch(Action::Failed(e));
                }
            });
        })
    };
    let on_resume = {
        let (dispatch, id, params) = (props.dispatch.clone(), run.record.id, params.clone());
        Callback::from(move |_: MouseEvent| {
            let (dispatch, params) = (dispatch.clone(), params.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::resume(id, &params, &[]).await {
                    Ok(new) => open_run(dispatch, new),
                    Err(e) => dispatch.dispatch(Action::Failed(e)),
                }
            });
        })
    };
    let on_repair = {
        let (repair, id) = (repair.clone(), run.record.id);
        Callback::from(move |_: MouseEvent| {
            repair.set(Some(Repair {
                run: id,
                selected: Default::default(),
            }))
        })
    };
    let on_measured = {
        let dispatch = props.dispatch.clone();
        Callback::from(move |_: MouseEvent| dispatch.dispatch(Action::UseMeasured))
    };
    // A repair is prepared only on a finished run, the one it was started on.
    let repairing = (**repair)
        .clone()
        .filter(|r| r.run == run.record.id && !run.is_live());
    let on_toggle = {
        let (repair, current) = (repair.clone(), repairing.clone());
        Callback::from(move |task: String| {
            if let Some(r) = &current {
                repair.set(Some(Repair::toggled(r, task)));
            }
        })
    };
    let on_open = {
        let dispatch = props.dispatch.clone();
        Callback::from(move |id| dispatch.dispatch(Action::Shell(ShellAction::Select(Some(id)))))
    };
    // While a repair is prepared, a click on a node picks it (or lets it go).
    let on_select = match &repairing {
        Some(_) => {
            let toggle = on_toggle.clone();
            Callback::from(move |id: Option<String>| {
                if let Some(id) = id {
                    toggle.emit(id);
                }
            })
        }
        None => {
            let dispatch = props.dispatch.clone();
            Callback::from(move |id| dispatch.dispatch(Action::Shell(ShellAction::Select(id))))
        }
    };
    let on_pick = {
        let dispatch = props.dispatch.clone();
        Callback::from(move |id| dispatch.dispatch(Action::Shell(ShellAction::Select(Some(id)))))
    };
    let resumable = !run.is_live() && run.record.status != RunStatus::Succeeded;
    let same_file = props
        .editing
        .doc
        .as_ref()
        .is_some_and(|d| d.root == run.record.file);
    let drawn = drawn_from(&props.editing, run);
    let drawn_plan = drawn.as_ref().map(|(plan, _)| plan.clone());
    let preview = repairing
        .as_ref()
        .zip(drawn_plan.as_deref())
        .map(|(r, plan)| (r.clone(), Rc::new(Preview::of(plan, run, r))));
    let marks = preview
        .as_ref()
        .and_then(|(_, p)| (**p).as_ref().ok())
        .map(Preview::mark_names);
    let graph = match drawn {
        Some((plan, Some(drawing))) => html! {
            <DagView {drawing} {plan} run={Some(run.clone())} {marks}
                selected={repairing.is_none().then(|| props.selected.clone()).flatten()} {on_select} />
        },
        Some((_, None)) => html! { <p class="empty">{ "Too many notebooks to draw." }</p> },
        None => html! {},
    };
    let banner = plan_banner(
        run,
        props
            .editing
            .shown
            .as_ref()
            .filter(|_| same_file)
            .map(|s| &*s.plan),
    );
    let task = props.selected.as_ref().map(|id| {
        let close = {
            let dispatch = props.dispatch.clone();
            Callback::from(move |_: MouseEvent| dispatch.dispatch(Action::Shell(ShellAction::Select(None))))
        };
        html! {
            <aside class="task-panel" id="task-panel">
                <button class="x" id="task-panel-close" onclick={close} title="close (Esc)">{ "×" }</button>
                { task_detail(run, id) }
            </aside>
        }
    });
    let progress = drawn_plan.as_deref().map(|plan| {
        let notebooks: Vec<&str> = plan
            .tasks
            .iter()
            .filter(|t| t.kind == spool_core::dag::TaskKind::Notebook)
            .map(|t| t.id.as_str())
            .collect();
        let done = notebooks.iter().filter(|t| run.is_done(t)).count();
        html! { <span id="run-progress">{ format!(" — {done}/{} notebooks done", notebooks.len()) }</span> }
    });
    let has_sub_pipelines = run.record.tasks.keys().any(|t| t.contains('/'));
    let legend = RUN_STATES.iter().map(|s| {
        html! { <span class="lg"><i style={format!("background:{}", state_colour(*s))}></i>{ s.name() }</span> }
    });
    html! {
        <section class="run-detail" id="run-detail" data-id={run.record.id.to_string()} data-status={status_name(run.record.status)}>
            <h3>
                { format!("Run #{} — ", run.record.id) }
                <span id="run-status" class={classes!("status", status_name(run.record.status))}>{ status_name(run.record.status) }</span>
                <span id="run-elapsed">{ format!(" — {}", duration(run.elapsed_secs(now))) }</span>
                { crate::each(progress) }
            </h3>
            { crate::each(run.session.as_ref().map(|s| html! {
                <p class="session">{ format!("session {s}") }
                    { crate::each(run.spark_ui.as_ref().map(|ui| html! {
                        <>{ " — " }<a id="spark-ui" href={ui.clone()} target="_blank" rel="noopener noreferrer">{ "Spark UI" }</a></>
                    })) }
                </p>
            })) }
            <div class="run-actions">
                if run.is_live() {
                    <button id="cancel-button" disabled={run.cancel_requested} onclick={on_cancel}>
                        { if run.cancel_requested { "Cancelling…" } else { "Cancel" } }
                    </button>
                }
                if resumable {
                    <button id="resume-button" onclick={on_resume} title="run again, keeping what succeeded (with the overrides above)">{ "Resume from failure" }</button>
                }
                if !run.is_live() && repairing.is_none() {
                    <button id="repair-button" onclick={on_repair}
                        title="pick notebooks of this run to run again with everything downstream, keeping the rest">{ "Repair run…" }</button>
                }
                if !run.is_live() {
                    <button id="use-measured" onclick={on_measured} title="write this run's measured durations into the estimates">{ "Use measured durations" }</button>
                }
            </div>
            { crate::each(drawn_plan.as_deref().filter(|_| resumable && repairing.is_none())
                .map(|plan| resume_preview(plan, run))) }
            { crate::each(banner) }
            { crate::each(preview.as_ref().map(|(r, p)| {
                let on_start = {
                    let (dispatch, id, params, repair) =
                        (props.dispatch.clone(), run.record.id, params.clone(), repair.clone());
                    let rerun: Rc<[String]> = r.selected.iter().cloned().collect();
                    Callback::from(move |_: MouseEvent| {
                        let (dispatch, params, repair, rerun) =
                            (dispatch.clone(), params.clone(), repair.clone(), rerun.clone());
                        wasm_bindgen_futures::spawn_local(async move {
                            match api::resume(id, &params, &rerun).await {
                                Ok(new) => {
                                    repair.set(None);
                                    open_run(dispatch, new);
                                }
                                Err(e) => dispatch.dispatch(Action::Failed(e)),
                            }
                        });
                    })
                };
                let on_leave = {
                    let repair = repair.clone();
                    Callback::from(move |_: MouseEvent| repair.set(None))
                };
                repair_bar(r, p, on_start, on_leave)
            })) }
            <div class="legend">{ for legend }</div>
            <div class="run-body">
                <div class="run-graph">{ graph }</div>
                { crate::each(task) }
            </div>
            { crate::each(drawn_plan.clone().map(|plan| html! {
                <TaskTable {plan} run={run.clone()} repair={preview.clone()} {on_toggle} {on_open} />
            })) }
            <div class="gantt-head">
                <h4>{ "Timeline" }</h4>
                <label title="the dry run of the plan this run ran, on its estimates and [pool], from the session's measured start-up">
                    <input type="checkbox" id="gantt-predicted" checked={gantt.predicted} onchange={gantt.toggle_predicted} />
                    { " overlay the dry run's prediction" }
                </label>
                if has_sub_pipelines {
                    <label>
                        <input type="checkbox" id="gantt-collapse" checked={gantt.collapsed} onchange={gantt.toggle_collapsed} />
                        { " collapse sub-pipelines" }
                    </label>
                }
                { crate::each(gantt.report.map(|p| html! {
                    <span id="gantt-prediction" class="hint">{ format!(
                        "predicted makespan {} on {} × {} cores (estimate_secs); this run: {}",
                        duration(p.makespan_secs), p.executors, p.executor_cores, duration(run.elapsed_secs(now))
                    ) }</span>
                })) }
            </div>
            <Gantt chart={Rc::new(run_chart(run, drawn_plan.as_deref(), now, gantt.report, gantt.collapsed))}
                selected={props.selected.clone()} on_pick={Some(on_pick)} />
        </section>
    }
}

/// Says what the run's graph is drawn from when that is not simply its own plan as the file
/// still has it: the file changed since (`now`, the open file's plan), or the log has no plan.
fn plan_banner(run: &RunView, now: Option<&Plan>) -> Option<Html> {
    let (id, text) = match (&run.ran, now) {
        (Some(ran), Some(now)) => {
            let changes = spool_core::recorded::changes(&ran.recorded, now);
            if changes.is_empty() {
                return None;
            }
            let text = format!(
                "Drawn from the plan this run ran; the file has changed since: {}.",
                changes.describe()
            );
            ("plan-changed", text)
        }
        (Some(_), None) => return None,
        (None, _) => {
            let why = run
                .ran_unreadable
                .clone()
                .unwrap_or_else(|| "this run's log holds no plan (an older build)".into());
            (
                "plan-missing",
                format!("{why}: drawn from the file as it is now."),
            )
        }
    };
    Some(html! { <p {id} class="banner">{ text }</p> })
}

/// Why a task ended as it did, when its attempts do not say it.
fn final_reason(run: &RunView, t: &TaskRecord) -> Option<String> {
    match &t.reason {
        Some(FinalReason::Attempt) => None,
        Some(r) => Some(r.describe()),
        None if t.carried_over => Some(match run.record.resumed_from {
            Some(from) => format!("kept from run #{from}"),
            None => "kept from the resumed run".into(),
        }),
        None => t.skipped.clone(),
    }
}

/// An attempt's Spark figures (as the agent reads them from Spark's status store), in words.
fn spark_metrics(m: &serde_json::Value) -> Option<String> {
    let jobs = m["jobs"].as_u64()?;
    let tasks = m["tasks"].as_u64().unwrap_or(0);
    let busy = m["executor_run_time_ms"]
        .as_f64()
        .map(|ms| format!(", executors busy {}", duration(ms / 1000.0)))
        .unwrap_or_default();
    Some(format!("Spark: {jobs} jobs, {tasks} tasks{busy}"))
}

fn task_detail(run: &RunView, id: &str) -> Html {
    let Some(t) = run.record.tasks.get(id) else {
        let ran = run
            .ran
            .as_ref()
            .map(|r| r.plan.tasks.iter().any(|t| t.id == id));
        let why = match ran {
            Some(false) => "Not in the plan this run ran.",
            _ if run.is_live() => "Not started yet.",
            _ => "Not started.",
        };
        return html! { <div id="task-detail" data-id={id.to_string()}><h4>{ id }</h4><p>{ why }</p></div> };
    };
    let attempts = t.attempts.iter().map(|a| {
        let took = a.ended_ms.map(|e| duration((e - a.started_ms) as f64 / 1000.0));
        let outcome = a.outcome.map_or("running", |o| crate::run::NodeState::of_outcome(o).name());
        html! {
            <div class="attempt" data-attempt={a.attempt.to_string()} data-outcome={outcome}>
                <p>{ format!("attempt {}: {outcome}", a.attempt) }{ took.map(|d| format!(" after {d}")).unwrap_or_default() }</p>
                { crate::each(a.params.as_ref().map(|p| html! { <p class="attempt-params">{ format!("parameters: {}", serde_json::Value::Object(p.clone())) }</p> })) }
                { crate::each(a.error.as_ref().map(|e| html! {
                    <>
                        <p class="error">{ format!("{}: {}", e.ename, e.evalue) }
                            { e.location().map(|at| format!(" ({at})")).unwrap_or_default() }</p>
                        if !e.traceback.is_empty() {
                            <pre class="traceback">{ e.traceback.join("\n") }</pre>
                        }
                    </>
                })) }
                { crate::each(a.output.as_ref().filter(|o| !o.is_empty()).map(|o| html! { <pre class="output">{ o }</pre> })) }
                { crate::each(a.metrics.as_ref().and_then(spark_metrics).map(|m| html! {
                    <p class="metrics">{ m }
                        { crate::each(run.spark_ui.as_ref().map(|ui| html! {
                            <>{ " — " }<a class="spark-ui" href={ui.clone()} target="_blank" rel="noopener noreferrer">{ "Spark UI" }</a></>
                        })) }
                    </p>
                })) }
                { crate::each(a.exit_value.as_ref().map(|v| html! { <p class="exit-value">{ format!("exit value: {v}") }</p> })) }
            </div>
        }
    });
    let state = run.state_of(id);
    html! {
        <div id="task-detail" data-id={id.to_string()} data-state={state.name()}>
            <h4>{ id }{ format!(" — {}", state.name()) }</h4>
            { crate::each(final_reason(run, t).map(|r| html! { <p class="reason">{ format!("{}: {r}", state.name()) }</p> })) }
            { crate::each(t.values.as_ref().map(|v| html! { <p class="task-values">{ format!("published: {}", serde_json::to_string(v).unwrap_or_default()) }</p> })) }
            if t.rebuilt {
                <p class="rebuilt">{ "re-run to rebuild session state: a notebook that runs after it reads what it left in the Spark session" }</p>
            }
            if !t.session_state.is_empty() {
                <p class="session-state">{ format!("left in the session: {}", t.session_state.join(", ")) }</p>
            }
            { crate::each(attempts) }
        </div>
    }
}
