//! Spool's browser app: edit a pipeline, see its graph, dry-run it on a pool, run it and watch.
//! Every rule (validation, DAG, layout, simulation) is `spool-core` compiled to WebAssembly;
//! the server is reached only through the HTTP API of docs/api.md.

mod api;
#[cfg(feature = "bench")]
mod bench;
mod charts;
mod dag_view;
mod doc_state;
mod dry_run;
mod dry_state;
mod editor;
mod edits;
mod grid_view;
mod import;
mod import_dialog;
mod memo;
mod repair;
mod reveal;
mod route;
mod run;
mod runs;
mod runs_state;
mod shell;
mod state;
mod wire;

use dag_view::DagView;
use doc_state::{DocAction, Draft};
use dry_run::DryRunView;
use editor::{datalists, step_fields, DocProps, Editor, Problems};
use import_dialog::{ImportDialog, SignIn};
use route::Route;
use runs::RunsView;
use shell::{ShellAction, Tab};
use spool_core::edit::Edit;
use state::{Action, State};
use std::rc::Rc;
use wire::PipelineSummary;
use yew::prelude::*;

/// Children that come and go, as one node. Yew matches unkeyed siblings from the end, and a
/// `{ for ... }` block is spliced into its parent's children, so a block whose length changes
/// would shift every sibling before it onto a different node: inputs would be re-created (and
/// lose focus) and components their state. As one node, a block changes only itself.
pub fn each(items: impl IntoIterator<Item = Html>) -> Html {
    items.into_iter().collect()
}

/// Opens a pipeline: fetches everything `spool-core` needs to check and simulate it here.
fn open(dispatch: UseReducerDispatcher<State>, file: String) {
    wasm_bindgen_futures::spawn_local(async move {
        match api::bundle(&file).await {
            Ok(bundle) => dispatch.dispatch(Action::Opened(bundle)),
            Err(e) => dispatch.dispatch(Action::Failed(e)),
        }
    });
}

/// Lists the pipelines; with `open_one`, then shows the view the address names (or the first
/// pipeline's editor).
fn load(dispatch: UseReducerDispatcher<State>, open_one: bool) {
    wasm_bindgen_futures::spawn_local(async move {
        match api::pipelines().await {
            Ok(list) => {
                dispatch.dispatch(Action::Shell(ShellAction::Listed(list.clone())));
                if open_one {
                    let shown = Shown {
                        pipelines: &list,
                        open: None,
                        unsaved: false,
                        route: None,
                    };
                    navigate(dispatch, &shown, Route::parse(&address()));
                }
            }
            Err(e) => dispatch.dispatch(Action::Failed(e)),
        }
    });
}

/// `location.hash`.
fn address() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

/// What is on screen, for a navigation to decide what to fetch.
struct Shown<'a> {
    pipelines: &'a [PipelineSummary],
    open: Option<&'a str>,
    unsaved: bool,
    /// Its address (`None` before anything is shown).
    route: Option<Route>,
}

/// Whether the open pipeline may be replaced: no unsaved edits, or the user says so.
fn may_leave(unsaved: bool) -> bool {
    !unsaved
        || web_sys::window()
            .and_then(|w| w.confirm_with_message("Discard the unsaved changes?").ok())
            .unwrap_or(false)
}

/// Shows the view of an address: opens its pipeline or run first when another is open. An
/// address that names no view, or a pipeline that is not listed, shows the open (or first)
/// pipeline's editor.
fn navigate(dispatch: UseReducerDispatcher<State>, shown: &Shown, route: Option<Route>) {
    let listed = |file: &str| shown.pipelines.iter().any(|p| p.file == file);
    let fallback = || {
        let file = shown
            .open
            .map(String::from)
            .or_else(|| shown.pipelines.first().map(|p| p.file.clone()))?;
        Some(Route::Pipeline {
            file,
            tab: Tab::Pipeline,
        })
    };
    let route = match route {
        Some(Route::Pipeline { file, .. }) if !listed(&file) => fallback(),
        None => fallback(),
        known => known,
    };
    let Some(route) = route else { return };
    let first = shown.pipelines.first().map(|p| p.file.clone());
    match &route {
        Route::Pipeline { file, .. } if shown.open != Some(file.as_str()) => {
            if !may_leave(shown.unsaved) {
                // The address goes back to what is shown.
                if let Some(here) = &shown.route {
                    write_address(here, None);
                }
                return;
            }
            dispatch.dispatch(Action::Navigate(route.clone()));
            open(dispatch, file.clone());
        }
        Route::Runs if shown.open.is_none() => {
            dispatch.dispatch(Action::Navigate(route));
            if let Some(file) = first {
                open(dispatch, file);
            }
        }
        Route::Run { id, .. } => {
            let (id, open_file, unsaved) = (*id, shown.open.map(String::from), shown.unsaved);
            dispatch.dispatch(Action::Navigate(route));
            wasm_bindgen_futures::spawn_local(async move {
                let detail = match api::run(id).await {
                    Ok(detail) => detail,
                    Err(e) => return dispatch.dispatch(Action::Failed(e)),
                };
                // The run is drawn on its own pipeline.
                if open_file.as_deref() != Some(detail.run.file.as_str()) && may_leave(unsaved) {
                    match api::bundle(&detail.run.file).await {
                        Ok(bundle) => dispatch.dispatch(Action::Opened(bundle)),
                        Err(e) => return dispatch.dispatch(Action::Failed(e)),
                    }
                }
                dispatch.dispatch(Action::RunOpened(detail));
            });
        }
        _ => dispatch.dispatch(Action::Navigate(route)),
    }
}

/// Puts the view shown into the address: a new history entry when the user moved on from
/// the view the address named (so that Back returns to it), otherwise in place of an address
/// that named nothing shown (an empty or unknown one, or a view still loading).
fn write_address(route: &Route, previous: Option<&Route>) {
    let Some(location) = web_sys::window().map(|w| w.location()) else {
        return;
    };
    let current = location.hash().unwrap_or_default();
    let hash = route.to_hash();
    if current == hash {
        return;
    }
    let moved_on = previous.is_some() && Route::parse(&current).as_ref() == previous;
    if moved_on {
        let _ = location.set_hash(&hash);
    } else {
        let _ = location.replace(&hash);
    }
}

/// Calls `on_event` on each `event` of the window, until the returned function is called.
fn on_window(event: &'static str, on_event: impl Fn() + 'static) -> impl FnOnce() {
    use wasm_bindgen::JsCast;
    let listener =
        wasm_bindgen::closure::Closure::<dyn FnMut(Event)>::new(move |_: Event| on_event());
    let window = web_sys::window();
    if let Some(w) = &window {
        let _ = w.add_event_listener_with_callback(event, listener.as_ref().unchecked_ref());
    }
    move || {
        if let Some(w) = &window {
            let _ = w.remove_event_listener_with_callback(event, listener.as_ref().unchecked_ref());
        }
    }
}

/// Calls `on_change` with the address after each change (Back, Forward, a pasted link).
fn follow_address(on_change: impl Fn(String) + 'static) -> impl FnOnce() {
    on_window("hashchange", move || on_change(address()))
}

/// Asks the server again which files the open pipeline reads (notebooks created or deleted
/// on disk since it was opened), and checks the text being edited against them. A failure
/// changes nothing: the files are asked again at the next focus or run, and the run's own
/// start reports what the server finds.
pub async fn recheck_files(dispatch: &UseReducerDispatcher<State>, file: &str) {
    if let Ok(bundle) = api::bundle(file).await {
        dispatch.dispatch(Action::Doc(DocAction::FilesRechecked(bundle)));
    }
}

/// Where a file's unsaved edits are kept in the page's storage.
fn draft_key(file: &str) -> String {
    format!("spool.draft.v1:{file}")
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

fn stored_draft(file: &str) -> Option<Draft> {
    let text = storage()?.get_item(&draft_key(file)).ok()??;
    serde_json::from_str(&text).ok()
}

/// Keeps `draft` for `file`, or forgets the one kept with `None`. A full storage keeps nothing
/// new (the edits are still in the page).
fn keep_draft(file: &str, draft: Option<&Draft>) {
    let Some(storage) = storage() else { return };
    let key = draft_key(file);
    let _ = match draft.and_then(|d| serde_json::to_string(d).ok()) {
        Some(json) => storage.set_item(&key, &json),
        None => storage.remove_item(&key),
    };
}

fn find_server_draft(dispatch: UseReducerDispatcher<State>, file: String) {
    wasm_bindgen_futures::spawn_local(async move {
        match api::server_draft(&file).await {
            Ok(Some(kept)) => dispatch.dispatch(Action::Doc(DocAction::DraftFound {
                file,
                draft: Draft {
                    text: kept.text,
                    etag: kept.etag,
                    on_server: Some(kept.saved_ms),
                },
            })),
            Ok(None) => {}
            Err(e) => dispatch.dispatch(Action::Failed(e.context("draft not read"))),
        }
    });
}

/// While there are unsaved edits, leaving the page (reload, close, another address) asks first.
fn ask_before_leaving() -> impl FnOnce() {
    use wasm_bindgen::JsCast;
    let listener = wasm_bindgen::closure::Closure::<dyn FnMut(web_sys::BeforeUnloadEvent)>::new(
        |e: web_sys::BeforeUnloadEvent| {
            e.prevent_default();
            e.set_return_value("");
        },
    );
    let window = web_sys::window();
    if let Some(w) = &window {
        let _ =
            w.add_event_listener_with_callback("beforeunload", listener.as_ref().unchecked_ref());
    }
    move || {
        if let Some(w) = &window {
            let _ = w.remove_event_listener_with_callback(
                "beforeunload",
                listener.as_ref().unchecked_ref(),
            );
        }
    }
}

/// Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y; Cmd on a Mac) undo and redo edits, except in a text field,
/// where they belong to the field; Esc closes the picked node's details.
fn app_keys(dispatch: UseReducerDispatcher<State>) -> impl FnOnce() {
    use wasm_bindgen::JsCast;
    let listener =
        wasm_bindgen::closure::Closure::<dyn FnMut(KeyboardEvent)>::new(move |e: KeyboardEvent| {
            let in_field = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .is_some_and(|el| {
                    matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                });
            if !in_field && e.key() == "Escape" {
                dispatch.dispatch(Action::Shell(ShellAction::Select(None)));
                return;
            }
            if in_field || !(e.ctrl_key() || e.meta_key()) {
                return;
            }
            let action = match (e.key().to_lowercase().as_str(), e.shift_key()) {
                ("z", false) => Action::Doc(DocAction::Undo),
                ("z", true) | ("y", _) => Action::Doc(DocAction::Redo),
                _ => return,
            };
            e.prevent_default();
            dispatch.dispatch(action);
        });
    let window = web_sys::window();
    if let Some(w) = &window {
        let _ = w.add_event_listener_with_callback("keydown", listener.as_ref().unchecked_ref());
    }
    move || {
        if let Some(w) = &window {
            let _ =
                w.remove_event_listener_with_callback("keydown", listener.as_ref().unchecked_ref());
        }
    }
}

#[function_component(App)]
fn app() -> Html {
    let app = use_reducer(State::default);
    {
        let dispatch = app.dispatcher();
        use_effect_with((), move |_| app_keys(dispatch));
    }
    #[cfg(feature = "bench")]
    {
        use_effect_with((), move |_| {
            if bench::wanted() {
                let first_render = bench::now();
                // Let the first frame paint before the measurements block the page.
                gloo_timers::callback::Timeout::new(100, move || bench::run(first_render)).forget();
            }
        });
    }
    {
        // The address follows the view; Back and Forward (and pasted links) move the view.
        let address_changed = use_state(|| None::<String>);
        {
            let address_changed = address_changed.clone();
            use_effect_with((), move |_| {
                follow_address(move |hash| address_changed.set(Some(hash)))
            });
        }
        {
            let app = app.clone();
            use_effect_with((*address_changed).clone(), move |hash| {
                if let Some(hash) = hash {
                    let route = Route::parse(hash);
                    if route.is_none() || route != app.route() {
                        let shown = Shown {
                            pipelines: &app.shell.pipelines,
                            open: app.editing.file(),
                            unsaved: app.unsaved(),
                            route: app.route(),
                        };
                        navigate(app.dispatcher(), &shown, route);
                    }
                }
            });
        }
        let written = use_mut_ref(|| None::<Route>);
        use_effect_with(app.route(), move |route| {
            if let Some(route) = route {
                write_address(route, written.borrow().as_ref());
                *written.borrow_mut() = Some(route.clone());
            }
        });
    }
    {
        // Unsaved edits live in the page's storage too: looked for when a file is opened, then
        // kept after each edit and forgotten once saved (or discarded).
        let looked_for = use_mut_ref(|| None::<String>);
        let dispatch = app.dispatcher();
        let doc = app
            .editing
            .doc
            .as_ref()
            .map(|d| (d.root.clone(), d.text.clone(), d.saved.clone()));
        let (state, offered) = (app.clone(), app.editing.draft.is_some());
        use_effect_with((doc, offered), move |(doc, offered)| {
            let Some((root, text, _)) = doc else { return };
            if looked_for.borrow().as_deref() != Some(root.as_str()) {
                *looked_for.borrow_mut() = Some(root.clone());
                match stored_draft(root) {
                    Some(draft) if *draft.text != **text => {
                        let file = root.clone();
                        return dispatch
                            .dispatch(Action::Doc(DocAction::DraftFound { file, draft }));
                    }
                    // Edits in this page's storage are the newest; else the server may keep a
                    // draft saved with errors, from here or another browser.
                    _ => find_server_draft(dispatch.clone(), root.clone()),
                }
            }
            // An offered draft stays stored until the user restores or discards it.
            if !offered {
                keep_draft(root, state.editing.draft_to_keep().as_ref());
            }
        });
        use_effect_with(app.unsaved(), |&unsaved| {
            let ask = unsaved.then(ask_before_leaving);
            move || {
                if let Some(stop) = ask {
                    stop();
                }
            }
        });
    }
    {
        // Files created on disk while the user was elsewhere (an editor, a terminal) are seen
        // when the window regains focus.
        let (dispatch, root) = (app.dispatcher(), app.editing.file().map(str::to_string));
        use_effect_with(root, move |root| {
            let stop = root.clone().map(|file| {
                on_window("focus", move || {
                    let (dispatch, file) = (dispatch.clone(), file.clone());
                    wasm_bindgen_futures::spawn_local(async move {
                        recheck_files(&dispatch, &file).await
                    });
                })
            });
            move || {
                if let Some(stop) = stop {
                    stop();
                }
            }
        });
    }
    {
        // Again after each sign-in, which is what a 401 at the first attempt asks for; an open
        // pipeline (perhaps with unsaved changes) is kept.
        let (dispatch, open_one) = (app.dispatcher(), app.editing.doc.is_none());
        use_effect_with(app.shell.sessions, move |_| load(dispatch, open_one));
    }
    {
        // The text is checked here, after the render of the edit, not in the reducer. Before
        // the page paints, though: the table is drawn from the checked file, and painted
        // before its check an edited cell would show its old value for that long.
        let (dispatch, job) = (app.dispatcher(), app.check_job());
        use_effect_with(job, move |job| {
            if let Some(job) = job {
                dispatch.dispatch(Action::Doc(job.clone().run()));
            }
        });
    }
    {
        // The dry run's simulations run here, after the render that changed what they are of
        // (the plan, the form, the calibration), not in the reducer, which only keeps their
        // result if it is still of the state's plan, form and calibration.
        let (dispatch, job) = (app.dispatcher(), app.dry_job());
        use_effect_with(job, move |job| {
            if let Some(job) = job {
                dispatch.dispatch(Action::Dry(job.clone().run()));
            }
        });
    }
    {
        // The live run is followed here, not in the Runs tab, so that the graph keeps
        // colouring while another tab is shown.
        let dispatch = app.dispatcher();
        let live = app
            .runs
            .run
            .as_ref()
            .filter(|r| r.is_live())
            .map(|r| r.record.id);
        use_effect_with(live, move |&live| {
            let stream = live.map(|id| runs::follow(dispatch, id));
            move || {
                if let Some(stop) = stream {
                    stop();
                }
            }
        });
    }
    let tab_button = |tab: Tab, label: &'static str, id: &'static str| {
        let dispatch = app.dispatcher();
        let onclick = Callback::from(move |_: MouseEvent| {
            dispatch.dispatch(Action::Shell(ShellAction::Show(tab)))
        });
        html! { <button {id} class={classes!("tab", (app.shell.tab == tab).then_some("active"))} {onclick}>{ label }</button> }
    };
    let doc_props = DocProps::of(&app, app.dispatcher());
    let body = match app.shell.tab {
        Tab::Pipeline => html! { <Editor ..doc_props.clone() /> },
        Tab::Graph => html! {
            <GraphTab doc={doc_props.clone()} run={app.runs.run.clone().filter(|r| r.is_live())} />
        },
        Tab::DryRun => html! {
            <DryRunView dry={app.dry.clone()} shown={app.editing.shown.clone()}
                file={app.editing.file().map(str::to_string)} unsaved={app.unsaved()}
                runs={app.runs.list.clone()} dispatch={app.dispatcher()} />
        },
        Tab::Runs => html! {
            <RunsView editing={app.editing.clone()} runs={app.runs.clone()} selected={app.shell.selected.clone()}
                sessions={app.shell.sessions} dispatch={app.dispatcher()} />
        },
        Tab::Grid => html! {
            <grid_view::GridView file={app.editing.file().map(str::to_string)}
                sessions={app.shell.sessions} dispatch={app.dispatcher()}
                run={app.runs.run.as_ref().map(|r| (r.record.id, r.record.status))} />
        },
        Tab::Source => html! { <SourceTab ..doc_props.clone() /> },
    };
    let notice = app.shell.notice.as_ref().map(|n| {
        let dispatch = app.dispatcher();
        let onclick = Callback::from(move |_: MouseEvent| dispatch.dispatch(Action::Shell(ShellAction::DismissNotice)));
        html! { <div class="notice" id="notice">{ n }<button class="x" {onclick}>{ "×" }</button></div> }
    });
    let pipelines = PipelinesProps {
        pipelines: app.shell.pipelines.clone(),
        open: app.editing.file().map(str::to_string),
        unsaved: app.unsaved(),
        dispatch: app.dispatcher(),
    };
    let import = {
        let dispatch = app.dispatcher();
        Callback::from(move |_: MouseEvent| {
            dispatch.dispatch(Action::Shell(ShellAction::ImportOpen))
        })
    };
    let draft = app.editing.draft.as_ref().zip(app.editing.doc.as_ref()).map(|(draft, doc)| {
        let act = |action: Action| {
            let dispatch = app.dispatcher();
            Callback::from(move |_: MouseEvent| dispatch.dispatch(action.clone()))
        };
        let changed = draft.etag != doc.etag;
        let offer = match draft.on_server {
            Some(ms) => format!(
                "{} has a draft the server keeps, saved {} with errors",
                doc.root,
                runs::clock(ms)
            ),
            None => format!("{} has unsaved edits from an earlier visit", doc.root),
        };
        let discard = {
            let (dispatch, file, on_server) =
                (app.dispatcher(), doc.root.clone(), draft.on_server.is_some());
            Callback::from(move |_: MouseEvent| {
                dispatch.dispatch(Action::Doc(DocAction::DiscardDraft));
                if on_server {
                    let (dispatch, file) = (dispatch.clone(), file.clone());
                    wasm_bindgen_futures::spawn_local(async move {
                        if let Err(e) = api::discard_draft(&file).await {
                            dispatch.dispatch(Action::Failed(e.context("draft not discarded")));
                        }
                    });
                }
            })
        };
        html! {
            <div class="notice draft" id="draft-offer">
                { offer }
                { if changed { " (the file was saved again since: restoring replaces that version's changes)" } else { "" } }
                <button id="draft-restore" onclick={act(Action::Doc(DocAction::RestoreDraft))}>{ "Restore them" }</button>
                <button id="draft-discard" onclick={discard}>{ "Discard" }</button>
            </div>
        }
    });
    html! {
        <>
            <header>
                <h1>{ "Spool" }</h1>
                <PipelinePicker ..pipelines.clone() />
                <ScheduleBar ..pipelines />
                <button id="import-button" onclick={import}>{ "Import…" }</button>
                <DocButtons ..doc_props.clone() />
            </header>
            { crate::each(notice) }
            { crate::each(draft) }
            <nav>
                { tab_button(Tab::Pipeline, "Pipeline", "tab-pipeline") }
                { tab_button(Tab::Graph, "Graph", "tab-graph") }
                { tab_button(Tab::DryRun, "Dry run", "tab-dry-run") }
                { tab_button(Tab::Runs, "Runs", "tab-runs") }
                { tab_button(Tab::Grid, "Grid", "tab-grid") }
                { tab_button(Tab::Source, "Source", "tab-source") }
            </nav>
            <main>{ body }</main>
            if let Some(form) = &app.shell.import {
                <ImportDialog form={form.clone()} open_file={app.editing.file().map(str::to_string)}
                    unsaved={app.unsaved()} dispatch={app.dispatcher()} />
            }
            if app.editing.save_conflict {
                <SaveConflict ..doc_props />
            }
            if let Some(form) = &app.shell.sign_in {
                <SignIn form={form.clone()} dispatch={app.dispatcher()} />
            }
        </>
    }
}

/// What the graph tab reads: the open file's views' props, and the run being followed.
#[derive(Properties, PartialEq)]
struct GraphProps {
    doc: DocProps,
    /// The live run shown, which colours the graph.
    run: Option<Rc<run::RunView>>,
}

/// What the header's pipeline picker and schedule bar read of the app's state.
#[derive(Properties, PartialEq, Clone)]
struct PipelinesProps {
    pipelines: Vec<PipelineSummary>,
    /// The open pipeline.
    open: Option<String>,
    unsaved: bool,
    dispatch: UseReducerDispatcher<State>,
}

#[function_component(PipelinePicker)]
fn pipeline_picker(props: &PipelinesProps) -> Html {
    let current = props.open.clone();
    let onchange = {
        let (dispatch, unsaved) = (props.dispatch.clone(), props.unsaved);
        Callback::from(move |e: Event| {
            let select = e.target_unchecked_into::<web_sys::HtmlSelectElement>();
            if may_leave(unsaved) {
                open(dispatch.clone(), select.value());
            }
        })
    };
    html! {
        <select id="pipeline-select" {onchange}>
            { for props.pipelines.iter().map(|p| {
                let scheduled = match &p.schedule {
                    Some(s) if s.paused => ", schedule paused",
                    Some(s) if s.enabled => ", scheduled",
                    _ => "",
                };
                let label = format!("{} ({} notebooks{}{scheduled})", p.file, p.notebooks,
                    if p.errors > 0 { format!(", {} errors", p.errors) } else { String::new() });
                html! { <option value={p.file.clone()} selected={current.as_deref() == Some(p.file.as_str())}>{ label }</option> }
            }) }
        </select>
    }
}

/// Saves the open text: on top of the server's version `if_match` (refused if someone saved
/// meanwhile), or over whatever is there with `None`.
fn save_callback(
    dispatch: &UseReducerDispatcher<State>,
    doc: &doc_state::Doc,
    if_match: Option<String>,
) -> Callback<MouseEvent> {
    let (dispatch, file, text) = (dispatch.clone(), doc.root.clone(), doc.text.clone());
    Callback::from(move |_: MouseEvent| {
        let (dispatch, file, text) = (dispatch.clone(), file.clone(), text.clone());
        let if_match = if_match.clone();
        dispatch.dispatch(Action::Doc(DocAction::CloseSaveConflict));
        dispatch.dispatch(Action::Doc(DocAction::SaveStarted));
        wasm_bindgen_futures::spawn_local(async move {
            match api::save(&file, &text, if_match.as_deref()).await {
                Ok(etag) => dispatch.dispatch(Action::Doc(DocAction::Saved(text, etag))),
                Err(e) => dispatch.dispatch(Action::Failed(e.context("not saved"))),
            }
        });
    })
}

/// Shown when a save was refused because the file changed on the server since it was opened:
/// reload the server's version (dropping the edits), overwrite it, or keep editing.
#[function_component(SaveConflict)]
fn save_conflict(props: &DocProps) -> Html {
    let dispatch = &props.dispatch;
    let Some(doc) = &props.editing.doc else {
        return html! {};
    };
    let reload = {
        let (dispatch, file) = (dispatch.clone(), doc.root.clone());
        Callback::from(move |_: MouseEvent| {
            dispatch.dispatch(Action::Doc(DocAction::CloseSaveConflict));
            open(dispatch.clone(), file.clone());
        })
    };
    let keep = {
        let dispatch = dispatch.clone();
        Callback::from(move |_: MouseEvent| {
            dispatch.dispatch(Action::Doc(DocAction::CloseSaveConflict))
        })
    };
    html! {
        <div class="overlay">
            <section id="save-conflict" class="dialog conflict" role="dialog" aria-label="Save conflict">
                <h2>{ "The file changed on the server" }</h2>
                <p>{ format!("Someone saved `{}` after you opened it. Saving now would replace their version.", doc.root) }</p>
                <div class="dialog-buttons">
                    <button id="conflict-reload" onclick={reload}>{ "Reload theirs (drop my edits)" }</button>
                    <button id="conflict-overwrite" onclick={save_callback(dispatch, doc, None)}>{ "Overwrite with mine" }</button>
                    <button id="conflict-keep" onclick={keep}>{ "Keep editing" }</button>
                </div>
            </section>
        </div>
    }
}

/// The open pipeline's schedule: its expression, zone and next fire time, and a button that
/// pauses or resumes it (kept by the server across restarts).
#[function_component(ScheduleBar)]
fn schedule_bar(props: &PipelinesProps) -> Html {
    let Some((file, schedule)) = props.open.clone().and_then(|file| {
        let listed = props.pipelines.iter().find(|p| p.file == file)?;
        Some((file, listed.schedule.clone()?))
    }) else {
        return html! {};
    };
    // Who paused or resumed it last, and when: ` by ops at 2026-11-30 10:40 UTC`.
    let changed = schedule.changed.as_ref().map_or(String::new(), |c| {
        let by =
            c.by.as_deref()
                .map_or(String::new(), |name| format!(" by {name}"));
        format!("{by} at {} UTC", spool_core::schedule::utc_minute(c.at_ms))
    });
    let state = if !schedule.enabled {
        "disabled (enabled = false)".to_string()
    } else if schedule.paused {
        format!("paused{changed}")
    } else {
        let resumed = if changed.is_empty() {
            String::new()
        } else {
            format!("; resumed{changed}")
        };
        match schedule.next.first() {
            Some(t) => format!("next {} ({} UTC){resumed}", t.local, t.utc),
            None => format!("never comes again{resumed}"),
        }
    };
    let later: Vec<String> = schedule
        .next
        .iter()
        .skip(1)
        .map(|t| t.local.clone())
        .collect();
    let onclick = {
        let (dispatch, paused) = (props.dispatch.clone(), !schedule.paused);
        Callback::from(move |_: MouseEvent| {
            let (dispatch, file) = (dispatch.clone(), file.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::set_schedule_paused(&file, paused).await {
                    Ok(now) => {
                        dispatch.dispatch(Action::Shell(ShellAction::ScheduleChanged(file, now)))
                    }
                    Err(e) => dispatch.dispatch(Action::Failed(e.context("schedule not changed"))),
                }
            });
        })
    };
    html! {
        <div id="schedule-bar" class="schedule-bar" title={format!("then {}", later.join(", "))}>
            <span>{ format!("schedule {} ({}): {state}", schedule.cron, schedule.timezone) }</span>
            if schedule.enabled {
                <button id="schedule-toggle" {onclick}>
                    { if schedule.paused { "Resume schedule" } else { "Pause schedule" } }
                </button>
            }
        </div>
    }
}

#[function_component(DocButtons)]
fn doc_buttons(props: &DocProps) -> Html {
    let (editing, dispatch) = (&props.editing, &props.dispatch);
    let Some(doc) = &editing.doc else {
        return html! {};
    };
    let act = |action: Action| {
        let dispatch = dispatch.clone();
        Callback::from(move |_: MouseEvent| dispatch.dispatch(action.clone()))
    };
    let on_save = save_callback(dispatch, doc, doc.etag.clone());
    let status = if editing.saving {
        "saving…"
    } else if editing.unsaved() {
        "unsaved changes"
    } else {
        "saved"
    };
    let errors = doc.checked.has_errors();
    // A text with errors is never written to the pipeline file (runs and schedules read it):
    // the server keeps it as the file's draft instead.
    let on_save_draft = {
        let (dispatch, file, text, etag) = (
            dispatch.clone(),
            doc.root.clone(),
            doc.text.clone(),
            doc.etag.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let (dispatch, file, text, etag) =
                (dispatch.clone(), file.clone(), text.clone(), etag.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::save_draft(&file, &text, etag.as_deref()).await {
                    Ok(kept) => dispatch.dispatch(Action::Notice(format!(
                        "Draft saved on the server ({}): {file} itself is written once it has no errors",
                        runs::clock(kept.saved_ms)
                    ))),
                    Err(e) => dispatch.dispatch(Action::Failed(e.context("draft not saved"))),
                }
            });
        })
    };
    html! {
        <div class="doc-buttons">
            <button id="undo" disabled={doc.undo.is_empty()} onclick={act(Action::Doc(DocAction::Undo))} title="undo">{ "↶ Undo" }</button>
            <button id="redo" disabled={doc.redo.is_empty()} onclick={act(Action::Doc(DocAction::Redo))} title="redo">{ "↷ Redo" }</button>
            <button id="save-button" class="primary" disabled={!editing.unsaved() || editing.saving || errors}
                title={if errors { "fix the errors first" } else { "write the file on the server" }} onclick={on_save}>{ "Save" }</button>
            if errors && editing.unsaved() {
                <button id="save-draft" title="keep this text on the server as the file's draft; the file is written once it has no errors" onclick={on_save_draft}>{ "Save draft" }</button>
            }
            <span id="save-status" class={classes!("save-status", editing.unsaved().then_some("unsaved"))}>{ status }</span>
        </div>
    }
}

#[function_component(GraphTab)]
fn graph_tab(props: &GraphProps) -> Html {
    let doc_props = &props.doc;
    let (editing, dispatch) = (&doc_props.editing, &doc_props.dispatch);
    reveal::use_reveal(editing, dispatch);
    let Some(shown) = &editing.shown else {
        return html! { <div><Problems ..doc_props.clone() /><p class="empty">{ "No graph: the pipeline has errors." }</p></div> };
    };
    let Some(drawing) = &shown.drawing else {
        return html! { <p class="empty">{ format!("{} notebooks are too many to draw (the limit is {}); use the table.", shown.plan.tasks.len(), doc_state::MAX_DRAWN_NODES) }</p> };
    };
    let on_select = {
        let dispatch = dispatch.clone();
        Callback::from(move |id| dispatch.dispatch(Action::Shell(ShellAction::Select(id))))
    };
    let on_connect = {
        let dispatch = dispatch.clone();
        Callback::from(move |(from, to): (String, String)| {
            if from.contains('/') || to.contains('/') {
                dispatch.dispatch(Action::Notice(format!(
                    "`{from}` → `{to}`: notebooks of a sub-pipeline are edited in their own file"
                )));
            } else {
                dispatch.dispatch(Action::Doc(DocAction::Edit(vec![Edit::AddDependency {
                    to,
                    from,
                    on: "succeeded".into(),
                }])));
            }
        })
    };
    let subs: Vec<String> = shown
        .plan
        .tasks
        .iter()
        .filter(|t| t.kind == spool_core::dag::TaskKind::PipelineEnd)
        .map(|t| t.id.clone())
        .collect();
    let collapse = |ids: Vec<String>, fold: bool| {
        let dispatch = dispatch.clone();
        Callback::from(move |_: MouseEvent| {
            dispatch.dispatch(Action::Doc(DocAction::Collapse(ids.clone(), fold)))
        })
    };
    let sub_buttons = (!subs.is_empty()).then(|| html! {
        <div class="graph-bar">
            <button id="collapse-all" onclick={collapse(subs.clone(), true)}>{ "Collapse sub-pipelines" }</button>
            <button id="expand-all" disabled={editing.collapsed.is_empty()} onclick={collapse(subs.clone(), false)}>{ "Expand all" }</button>
        </div>
    });
    let panel = doc_props.selected.as_ref().map(|id| {
        let toggle = subs.contains(id).then(|| {
            let fold = !editing.collapsed.contains(id);
            html! {
                <button id="collapse-toggle" onclick={collapse(vec![id.clone()], fold)}>
                    { if fold { "Collapse this sub-pipeline" } else { "Expand this sub-pipeline" } }
                </button>
            }
        });
        let doc = editing.doc.as_ref();
        let found = doc.and_then(|d| d.checked.file.as_ref().map(|f| (d, f))).and_then(|(d, f)| {
            f.steps.iter().find(|s| s.id == *id).map(|s| (d, f, s))
        });
        match found {
            Some((doc, file, step)) => html! {
                <aside class="node-panel" data-id={id.clone()}>
                    { datalists(doc, file) }
                    <h3>{ id }</h3>
                    { crate::each(toggle) }
                    { crate::each(step_fields(dispatch, doc, file, step).into_iter().map(|(label, w)| html! {
                        <label class="setting"><span title={crate::editor::step_help(label)}>{ label }</span>{ w }</label>
                    })) }
                </aside>
            },
            None => html! {
                <aside class="node-panel" data-id={id.clone()}>
                    <h3>{ id }</h3>
                    { crate::each(toggle) }
                    <p>{ "This notebook belongs to a sub-pipeline; edit it in that pipeline's file." }</p>
                </aside>
            },
        }
    });
    html! {
        <div class="graph-tab">
            if editing.doc.as_ref().is_some_and(|d| !d.checked.diagnostics.is_empty()) {
                <Problems ..doc_props.clone() />
            }
            if !shown.current {
                <p class="stale">{ "The pipeline has errors: showing the last version without errors." }</p>
            }
            { crate::each(sub_buttons) }
            <div class="graph-columns">
                <DagView drawing={drawing.clone()} plan={shown.plan.clone()} selected={doc_props.selected.clone()}
                    run={props.run.clone()}
                    {on_select} on_connect={Some(on_connect)} />
                { crate::each(panel) }
            </div>
        </div>
    }
}

#[function_component(SourceTab)]
fn source_tab(props: &DocProps) -> Html {
    let (editing, dispatch) = (&props.editing, &props.dispatch);
    reveal::use_reveal(editing, dispatch);
    let Some(doc) = &editing.doc else {
        return html! {};
    };
    let onchange = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: Event| {
            let v = e
                .target_unchecked_into::<web_sys::HtmlTextAreaElement>()
                .value();
            dispatch.dispatch(Action::Doc(DocAction::SetText(v)));
        })
    };
    html! {
        <div class="source">
            <Problems ..props.clone() />
            <p class="hint">{ format!("{} — the file as it will be saved; changes apply when the text area loses focus.", doc.root) }</p>
            <textarea id="source-text" spellcheck="false" value={doc.text.to_string()} {onchange}></textarea>
        </div>
    }
}

fn main() {
    yew::Renderer::<App>::new().render();
}
