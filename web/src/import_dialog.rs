//! The Import dialog (convert Synapse, Genie or runMultiple metadata into pipeline files with
//! `spool_core::import`, here in the browser, and save them through the API), and the sign-in
//! form the app shows when the server wants its token.

use crate::api::{self, Failure};
use crate::import::{ImportForm, ImportKind, Input, Preview, MAX_INPUT_BYTES, MAX_INPUT_FILES};
use crate::shell::{ShellAction, SignInForm};
use crate::state::{Action, State};
use spool_core::import::Level;
use std::rc::Rc;
use wasm_bindgen_futures::JsFuture;
use yew::prelude::*;

/// Lines of each output file shown in the preview (the file is saved whole).
const MAX_PREVIEW_LINES: usize = 400;
/// Report findings listed (the count of each level is always shown).
const MAX_FINDINGS: usize = 500;

#[derive(Properties, PartialEq)]
pub struct SignInProps {
    pub form: SignInForm,
    pub dispatch: UseReducerDispatcher<State>,
}

/// Asks for the token and trades it for the session cookie. The token goes from the password
/// field to the request and nowhere else.
#[function_component(SignIn)]
pub fn sign_in(props: &SignInProps) -> Html {
    let input = use_node_ref();
    {
        // Ready to type at once, and after a refusal ready to be typed over.
        let input = input.clone();
        use_effect_with(props.form.error.clone(), move |_| {
            if let Some(field) = input.cast::<web_sys::HtmlInputElement>() {
                let _ = field.focus();
                field.select();
            }
        });
    }
    let onsubmit = {
        let (input, dispatch) = (input.clone(), props.dispatch.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(field) = input.cast::<web_sys::HtmlInputElement>() else {
                return;
            };
            let token = field.value();
            let dispatch = dispatch.clone();
            dispatch.dispatch(Action::Shell(ShellAction::SignInSent));
            wasm_bindgen_futures::spawn_local(async move {
                match api::sign_in(&token).await {
                    Ok(()) => {
                        field.set_value("");
                        dispatch.dispatch(Action::Shell(ShellAction::SignedIn));
                    }
                    Err(Failure::SignIn) => dispatch.dispatch(Action::Shell(
                        ShellAction::SignInRefused("That token is wrong.".into()),
                    )),
                    Err(e) => {
                        dispatch.dispatch(Action::Shell(ShellAction::SignInRefused(e.to_string())))
                    }
                }
            });
        })
    };
    html! {
        <div class="overlay">
            <form id="sign-in" class="dialog sign-in" {onsubmit}>
                <h2>{ "Sign in" }</h2>
                <p class="hint">{ "This Spool server asks for its token (the one given to " }<code>{ "spool serve --token" }</code>{ ")." }</p>
                <input id="token-input" type="password" ref={input} autocomplete="current-password"
                    placeholder="token" disabled={props.form.sending} />
                <button id="sign-in-button" class="primary" type="submit" disabled={props.form.sending}>
                    { if props.form.sending { "Signing in…" } else { "Sign in" } }
                </button>
                { crate::each(props.form.error.iter().map(|e| html! {
                    <div id="sign-in-error" class="diagnostic">{ e }</div>
                })) }
            </form>
        </div>
    }
}

/// What the import dialog reads of the app's state: its form, and what it must not replace
/// (the open pipeline, which may have unsaved changes).
#[derive(Properties, PartialEq)]
pub struct ImportProps {
    pub form: ImportForm,
    /// The open pipeline's file.
    pub open_file: Option<String>,
    pub unsaved: bool,
    pub dispatch: UseReducerDispatcher<State>,
}

/// Reads the chosen files as text, within the limits the converters keep.
async fn read_files(list: web_sys::FileList) -> Result<Vec<Input>, String> {
    let count = list.length() as usize;
    if count > MAX_INPUT_FILES {
        return Err(format!(
            "{count} files chosen; at most {MAX_INPUT_FILES} are read at once"
        ));
    }
    let mut inputs = Vec::with_capacity(count);
    for file in (0..list.length()).filter_map(|i| list.get(i)) {
        let name = file.name();
        if file.size() > MAX_INPUT_BYTES as f64 {
            return Err(format!(
                "`{name}` is over the {} MiB limit",
                MAX_INPUT_BYTES / (1024 * 1024)
            ));
        }
        let text = JsFuture::from(file.text())
            .await
            .ok()
            .and_then(|t| t.as_string())
            .ok_or_else(|| format!("`{name}` cannot be read as text"))?;
        inputs.push(Input {
            name,
            text: Rc::from(text),
        });
    }
    Ok(inputs)
}

/// Writes the files in order (notebooks only as new files); stops at the first the server
/// refuses.
async fn save_all(files: Vec<(String, Rc<str>, bool)>) -> Action {
    let mut written = Vec::new();
    for (path, text, notebook) in files {
        let saved = if notebook {
            api::create_notebook(&path, &text).await
        } else {
            api::save(&path, &text, None).await.map(drop)
        };
        if let Err(failure) = saved {
            return Action::Shell(ShellAction::ImportSaveFailed {
                file: path,
                failure,
                written,
            });
        }
        written.push(path);
    }
    Action::Shell(ShellAction::ImportSaved)
}

/// The first lines of a text, and how many lines were left out.
fn clipped(text: &str, max_lines: usize) -> (String, usize) {
    let total = text.lines().count();
    let shown: Vec<&str> = text.lines().take(max_lines).collect();
    (shown.join("\n"), total.saturating_sub(max_lines))
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Note => "note",
    }
}

fn report_view(preview: &Preview) -> Html {
    let findings = &preview.report.findings;
    let counts = [Level::Error, Level::Warning, Level::Note]
        .map(|l| format!("{} {}s", preview.report.count(l), level_name(l)))
        .join(", ");
    let missing = preview.notebooks_to_provide.len();
    let verdict = if preview.report.has_errors() {
        "Nothing can be saved: fix the input.".to_string()
    } else if missing > 0 {
        format!("Not ready: {missing} notebook file(s) missing (listed below).")
    } else {
        "Ready to save.".to_string()
    };
    html! {
        <div id="import-report" class={classes!("import-report", preview.report.has_errors().then_some("failed"))}>
            <p><strong>{ verdict }</strong>{ " " }<span class="hint">{ counts }</span></p>
            <ul>
                { for findings.iter().take(MAX_FINDINGS).map(|f| html! {
                    <li class={classes!("finding", level_name(f.level))}>{ f.to_string() }</li>
                }) }
            </ul>
            if findings.len() > MAX_FINDINGS {
                <p class="hint">{ format!("… and {} more", findings.len() - MAX_FINDINGS) }</p>
            }
        </div>
    }
}

fn files_view(preview: &Preview) -> Html {
    html! {
        <div class="import-files">
            { for preview.files.iter().enumerate().map(|(i, f)| {
                let (text, more) = clipped(&f.text, MAX_PREVIEW_LINES);
                html! {
                    <details class="import-file" data-file={f.path.clone()} open={i == 0}>
                        <summary>
                            <code>{ &f.path }</code>
                            if i == 0 { <span class="badge">{ "main" }</span> }
                            if f.notebook { <span class="badge">{ "notebook" }</span> }
                            if f.replaces { <span class="badge replaces">{ "replaces the existing file" }</span> }
                        </summary>
                        <pre>{ text }</pre>
                        if more > 0 { <p class="hint">{ format!("… {more} more lines") }</p> }
                    </details>
                }
            }) }
        </div>
    }
}

fn notebooks_view(preview: &Preview) -> Html {
    if preview.notebooks_to_provide.is_empty() {
        return html! {};
    }
    html! {
        <div id="import-notebooks" class="import-notebooks">
            <p>{ "Notebook files the pipelines run that the folder does not have (the server refuses a pipeline whose notebooks are missing): choose them with the files — .ipynb, .py or .sql named as below, or Synapse's notebook JSON (its repository's notebook folder) — or put them in the folder." }</p>
            <ul>{ for preview.notebooks_to_provide.iter().map(|n| html! { <li><code>{ n }</code></li> }) }</ul>
        </div>
    }
}

/// Dispatches the new value of an input or a text area when it changes.
fn on_change(
    dispatch: &UseReducerDispatcher<State>,
    action: fn(String) -> ShellAction,
) -> Callback<Event> {
    use wasm_bindgen::JsCast;
    let dispatch = dispatch.clone();
    Callback::from(move |e: Event| {
        let target = e.target();
        let value = target
            .as_ref()
            .and_then(|t| t.dyn_ref::<web_sys::HtmlInputElement>())
            .map(|i| i.value())
            .or_else(|| {
                target
                    .as_ref()
                    .and_then(|t| t.dyn_ref::<web_sys::HtmlTextAreaElement>())
                    .map(|a| a.value())
            });
        if let Some(value) = value {
            dispatch.dispatch(Action::Shell(action(value)));
        }
    })
}

#[function_component(ImportDialog)]
pub fn import_dialog(props: &ImportProps) -> Html {
    let (form, dispatch) = (&props.form, props.dispatch.clone());
    let on_kind = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: Event| {
            let value = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            if let Some(kind) = ImportKind::parse(&value) {
                dispatch.dispatch(Action::Shell(ShellAction::ImportKind(kind)));
            }
        })
    };
    let on_files = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: Event| {
            let input = e.target_unchecked_into::<web_sys::HtmlInputElement>();
            let Some(list) = input.files() else { return };
            let dispatch = dispatch.clone();
            wasm_bindgen_futures::spawn_local(async move {
                dispatch.dispatch(Action::Shell(ShellAction::ImportFiles(
                    read_files(list).await,
                )));
            });
        })
    };
    let on_text = on_change(&dispatch, ShellAction::ImportText);
    let on_target = on_change(&dispatch, ShellAction::ImportTarget);
    let on_close = {
        let dispatch = dispatch.clone();
        Callback::from(move |_: MouseEvent| {
            dispatch.dispatch(Action::Shell(ShellAction::ImportClose))
        })
    };
    let on_save = save_callback(props);
    let savable = form.preview.as_ref().is_some_and(|p| p.ready())
        && form.target_error.is_none()
        && !form.saving;
    let (target_label, target_placeholder) = if form.kind.target_is_folder() {
        ("output folder", "(the pipelines folder)")
    } else {
        ("main file", "daily.toml")
    };
    let hint = match form.kind {
        ImportKind::Synapse => "Choose the pipeline's JSON file first, then the pipelines its ExecutePipeline activities run and its notebooks (all at once), or paste one pipeline's JSON.",
        ImportKind::Genie => "One pipeline file is written per `pipeline` value, into the output folder.",
        ImportKind::RunMultiple => "The DAG given to notebookutils.notebook.runMultiple.",
    };
    let others = (!form.others.is_empty() || !form.notebooks.is_empty()).then(|| {
        let names: Vec<&str> = form
            .others
            .iter()
            .chain(&form.notebooks)
            .map(|i| i.name.as_str())
            .collect();
        html! { <p id="import-also" class="hint">{ format!("Also read: {}", names.join(", ")) }</p> }
    });
    let problem = form.problem.as_ref().map(|p| {
        html! {
            <div id="import-problem" class="problems">
                <strong>{ &p.message }</strong>
                <ul>
                    { for p.diagnostics.iter().map(|d| html! {
                        <li class="problem error">{ format!("{}:{}:{}: {}", d.file, d.line, d.col, d.message) }</li>
                    }) }
                </ul>
                if !p.written.is_empty() {
                    <p class="hint">{ format!("Written before it: {}", p.written.join(", ")) }</p>
                }
            </div>
        }
    });
    html! {
        <div class="overlay">
            <section id="import-dialog" class="dialog import" role="dialog" aria-label="Import">
                <h2>{ "Import" }<button class="x" title="close" onclick={on_close.clone()}>{ "×" }</button></h2>
                <div class="import-inputs">
                    <label class="setting"><span>{ "format" }</span>
                        <select id="import-kind" onchange={on_kind}>
                            { for ImportKind::ALL.iter().map(|&k| html! {
                                <option value={k.name()} selected={form.kind == k}>{ k.label() }</option>
                            }) }
                        </select>
                    </label>
                    <label class="setting"><span>{ "files" }</span>
                        <input id="import-files" type="file" multiple=true accept=".json,.csv,.txt,.ipynb,.py,.sql" onchange={on_files} />
                    </label>
                    <label class={classes!("setting", form.target_error.is_some().then_some("invalid"))}><span>{ target_label }</span>
                        <input id="import-target" type="text" value={form.target.clone()} placeholder={target_placeholder} onchange={on_target} />
                        { crate::each(form.target_error.iter().map(|e| html! { <div class="diagnostic" data-field="import-target">{ e }</div> })) }
                    </label>
                </div>
                <p class="hint">{ hint }</p>
                <label class="setting"><span>{ if form.main.name.is_empty() { "or paste it here (applies when the text area loses focus)".to_string() } else { format!("{} (editable; applies when the text area loses focus)", form.main.name) } }</span>
                    <textarea id="import-text" spellcheck="false" rows="10" value={AttrValue::from(form.main.text.clone())}
                        onchange={on_text} placeholder={form.kind.label()}></textarea>
                </label>
                { crate::each(others) }
                { crate::each(form.preview.as_ref().map(|p| report_view(p))) }
                { crate::each(problem) }
                { crate::each(form.preview.as_ref().map(|p| notebooks_view(p))) }
                { crate::each(form.preview.as_ref().map(|p| files_view(p))) }
                <div class="dialog-buttons">
                    <button id="import-save" class="primary" disabled={!savable} onclick={on_save}>
                        { if form.saving { "Saving…" } else { "Save" } }
                    </button>
                    <button onclick={on_close}>{ "Cancel" }</button>
                </div>
            </section>
        </div>
    }
}

/// Saves the preview's files (sub-pipelines first), then lists the pipelines again and opens
/// the imported one — unless the open pipeline has unsaved changes, which are kept.
fn save_callback(props: &ImportProps) -> Callback<MouseEvent> {
    let (dispatch, unsaved) = (props.dispatch.clone(), props.unsaved);
    let open_file = props.open_file.clone();
    let preview = props.form.preview.clone();
    Callback::from(move |_: MouseEvent| {
        let Some(preview) = preview.clone() else {
            return;
        };
        let replaced: Vec<&str> = preview
            .files
            .iter()
            .filter(|f| f.replaces)
            .map(|f| f.path.as_str())
            .collect();
        if !replaced.is_empty() {
            let question = format!("Overwrite {}?", replaced.join(", "));
            let confirmed = web_sys::window()
                .and_then(|w| w.confirm_with_message(&question).ok())
                .unwrap_or(false);
            if !confirmed {
                return;
            }
        }
        let files: Vec<(String, Rc<str>, bool)> = preview
            .save_order
            .iter()
            .filter_map(|&i| preview.files.get(i))
            .map(|f| (f.path.clone(), f.text.clone(), f.notebook))
            .collect();
        let main = preview.main().map(str::to_string);
        let open_file = open_file.clone();
        let dispatch = dispatch.clone();
        dispatch.dispatch(Action::Shell(ShellAction::ImportSaveStarted));
        wasm_bindgen_futures::spawn_local(async move {
            let done = save_all(files).await;
            let saved = matches!(done, Action::Shell(ShellAction::ImportSaved));
            dispatch.dispatch(done);
            if !saved {
                return;
            }
            crate::load(dispatch.clone(), false);
            // Another pipeline is open: switching away from it is the user's choice.
            let switch = |main: &str| {
                open_file.as_deref().is_none_or(|open| open == main)
                    || web_sys::window()
                        .and_then(|w| {
                            w.confirm_with_message(&format!(
                                "Imported `{main}`. Open it now (leaving `{}`)?",
                                open_file.as_deref().unwrap_or_default()
                            ))
                            .ok()
                        })
                        .unwrap_or(false)
            };
            match main {
                Some(main) if !unsaved && switch(&main) => crate::open(dispatch, main),
                Some(main) if !unsaved => dispatch.dispatch(Action::Notice(format!(
                    "imported `{main}`; pick it in the list to open it"
                ))),
                Some(main) => dispatch.dispatch(Action::Notice(format!(
                    "imported `{main}`; pick it in the list once the open pipeline is saved"
                ))),
                None => {}
            }
        });
    })
}
