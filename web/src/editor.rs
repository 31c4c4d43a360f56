//! The pipeline editor: the file's own settings, its pool and defaults, and a table of its
//! notebooks. Every change is a `spool_core::edit::Edit` on the text; every problem shown is a
//! diagnostic of `spool-core`, placed beside the field it is about.

use crate::doc_state::{Doc, DocAction, DocState};
use crate::edits::{field_value, remove_step, rename, set_condition, FieldKind};
use crate::shell::ShellAction;
use crate::state::{Action, State};
use spool_core::dag::{ReferenceChoice, ReferenceScope};
use spool_core::edit::{Edit, ParamRow, ParamType, ParamValue};
use spool_core::keys::{self, Section};
use spool_core::model::{Condition, PipelineFile, Step, StepKind};
use std::rc::Rc;
use yew::prelude::*;

/// Table rows per page: the table of a 10k-notebook pipeline stays quick.
const PAGE: usize = 100;

#[derive(Properties, PartialEq)]
pub struct FieldProps {
    pub value: AttrValue,
    pub kind: FieldKind,
    /// `data-field`: the metadata key.
    pub field: AttrValue,
    /// `data-id`: the step, when the field belongs to one.
    #[prop_or_default]
    pub id: Option<AttrValue>,
    pub on_commit: Callback<serde_json::Value>,
    /// Diagnostics of `spool-core` about this field.
    #[prop_or_default]
    pub diagnostics: Vec<String>,
    #[prop_or_default]
    pub placeholder: AttrValue,
    #[prop_or_default]
    pub list: Option<AttrValue>,
    /// Checks the text as it is typed (`Some`: what is wrong with it), shown in place of the
    /// diagnostics of the value written until the text is committed.
    #[prop_or_default]
    pub check: Option<Callback<String, Option<String>>>,
    /// A `{{ … }}` button offering the references valid here.
    #[prop_or_default]
    pub references: Option<Picker>,
}

/// The references a field may insert: those valid in one step of the open file, as
/// `spool_core::dag::ReferenceScope` lists them.
#[derive(Clone)]
pub struct Picker {
    pub file: Rc<PipelineFile>,
    pub step: String,
    /// `for_each`: only references to a list, each replacing the whole value.
    pub lists_only: bool,
}

/// The same file (not an equal copy: comparing 10k steps on every render would be slow).
impl PartialEq for Picker {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.file, &other.file)
            && self.step == other.step
            && self.lists_only == other.lists_only
    }
}

impl Picker {
    fn scope(&self) -> Option<ReferenceScope<'_>> {
        ReferenceScope::of(&self.file, &self.step)
    }

    pub fn choices(&self) -> Vec<ReferenceChoice> {
        let mut choices = self.scope().map(|s| s.choices()).unwrap_or_default();
        if self.lists_only {
            choices.retain(|c| spool_core::template::ValueType::Array.admits(c.ty));
        }
        choices
    }

    /// What is wrong with `text`'s references here (a `for_each` string: that it is one
    /// reference to a list).
    pub fn check(&self, text: &str) -> Option<String> {
        let scope = self.scope()?;
        let checked = if self.lists_only {
            scope.check_for_each(text.trim())
        } else {
            scope.check(text).map(|_| ())
        };
        checked.err().map(|e| e.message)
    }
}

/// `text` with `inserted` in place of the characters `from..to` (UTF-16 offsets, as the
/// browser counts a selection), clamped to the text.
pub fn insert_at(text: &str, from: u32, to: u32, inserted: &str) -> String {
    let byte = |at: u32| {
        let mut units = 0u32;
        for (i, c) in text.char_indices() {
            if units >= at {
                return i;
            }
            units += c.len_utf16() as u32;
        }
        text.len()
    };
    let (from, to) = (byte(from.min(to)), byte(from.max(to)));
    format!("{}{inserted}{}", &text[..from], &text[to..])
}

/// One input: committed on change (Enter or leaving the field), reverted with Escape. Input
/// that does not read as its kind stays in the field with a message and is not written.
#[function_component(Field)]
pub fn field(props: &FieldProps) -> Html {
    let draft = use_state(|| None::<String>);
    let error = use_state(|| None::<String>);
    // What the check says about the text being typed (cleared once it is committed).
    let live = use_state(|| None::<String>);
    let picking = use_state(|| false);
    let input = use_node_ref();
    // Whether the user has been in the input: a reference picked then goes at its caret (or
    // replaces its selection); otherwise it replaces the whole value.
    let placed = use_mut_ref(|| false);
    let onfocus = {
        let placed = placed.clone();
        Callback::from(move |_: FocusEvent| *placed.borrow_mut() = true)
    };
    let oninput = {
        let (draft, live, check) = (draft.clone(), live.clone(), props.check.clone());
        Callback::from(move |e: InputEvent| {
            let text = e
                .target_unchecked_into::<web_sys::HtmlInputElement>()
                .value();
            live.set(check.as_ref().and_then(|c| c.emit(text.clone())));
            draft.set(Some(text));
        })
    };
    let onchange = {
        let (draft, error, live, kind, commit) = (
            draft.clone(),
            error.clone(),
            live.clone(),
            props.kind,
            props.on_commit.clone(),
        );
        let old = props.value.clone();
        Callback::from(move |e: Event| {
            let text = e
                .target_unchecked_into::<web_sys::HtmlInputElement>()
                .value();
            match field_value(kind, &text) {
                Ok(v) => {
                    draft.set(None);
                    error.set(None);
                    live.set(None);
                    if field_value(kind, &old).ok().as_ref() != Some(&v) {
                        commit.emit(v);
                    }
                }
                Err(msg) => error.set(Some(msg)),
            }
        })
    };
    let onkeydown = {
        let (draft, error, picking) = (draft.clone(), error.clone(), picking.clone());
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                draft.set(None);
                error.set(None);
                picking.set(false);
            }
        })
    };
    let value = (*draft).clone().unwrap_or_else(|| props.value.to_string());
    // While the text is being typed, its own check speaks for it; once committed, core's
    // diagnostics of the file.
    let typing = draft.is_some() && props.check.is_some();
    let messages: Vec<String> = if typing {
        error.iter().chain(live.iter()).cloned().collect()
    } else {
        error
            .iter()
            .cloned()
            .chain(props.diagnostics.iter().cloned())
            .collect()
    };
    let invalid = !messages.is_empty();
    let kind = props.kind;
    let picker = props.references.as_ref().map(|refs| {
        let toggle = {
            let picking = picking.clone();
            Callback::from(move |_: MouseEvent| picking.set(!*picking))
        };
        let list = (*picking).then(|| {
            let choices = refs.choices();
            let empty = choices.is_empty();
            let items = choices.into_iter().map(|c| {
                let onclick = {
                    let (placed, draft, error, live, picking, input, commit) = (
                        placed.clone(),
                        draft.clone(),
                        error.clone(),
                        live.clone(),
                        picking.clone(),
                        input.clone(),
                        props.on_commit.clone(),
                    );
                    let (whole, text, inserted) = (refs.lists_only, value.clone(), c.inserted());
                    Callback::from(move |_: MouseEvent| {
                        let el = input.cast::<web_sys::HtmlInputElement>();
                        let new = match &el {
                            Some(el) if !whole && *placed.borrow() => {
                                let from = el.selection_start().ok().flatten().unwrap_or(u32::MAX);
                                let to = el.selection_end().ok().flatten().unwrap_or(from);
                                insert_at(&text, from, to, &inserted)
                            }
                            _ => inserted.clone(),
                        };
                        picking.set(false);
                        live.set(None);
                        match field_value(kind, &new) {
                            Ok(v) => {
                                draft.set(None);
                                error.set(None);
                                commit.emit(v);
                            }
                            Err(msg) => error.set(Some(msg)),
                        }
                        if let Some(el) = el {
                            let _ = el.focus();
                        }
                    })
                };
                html! {
                    <li><button type="button" class="ref-choice" data-ref={c.text.clone()} {onclick}>
                        <code>{ c.inserted() }</code>
                        <span class="ref-type">{ c.ty.name() }</span>
                        <span class="ref-about">{ c.about }</span>
                    </button></li>
                }
            });
            html! {
                <ul class="ref-picker" data-field={format!("{}.references", props.field)} data-id={props.id.clone()}>
                    { for items }
                    if empty {
                        <li class="empty">{ "no reference is valid here" }</li>
                    }
                </ul>
            }
        });
        html! {
            <>
                <button type="button" class="small ref-button" onclick={toggle}
                    title="insert a {{ … }} reference: a pipeline parameter, the run's date or id, a value of an upstream notebook"
                    data-field={format!("{}.pick", props.field)} data-id={props.id.clone()}>{ "{{…}}" }</button>
                { crate::each(list) }
            </>
        }
    });
    html! {
        <div class={classes!("field", invalid.then_some("invalid"))}>
            <input type="text" ref={input.clone()} {value} {oninput} {onchange} {onkeydown} {onfocus}
                data-field={props.field.clone()} data-id={props.id.clone()}
                placeholder={props.placeholder.clone()} list={props.list.clone()} />
            { crate::each(picker) }
            { crate::each(messages.into_iter().map(|m| html! {
                <div class={classes!("diagnostic", typing.then_some("live"))} data-field={props.field.clone()} data-id={props.id.clone()}>{ m }</div>
            })) }
        </div>
    }
}

/// What the open file's views read of the app's state: the file's slice, the picked step and
/// the dispatcher. Compared by value, so that a view is drawn again only when these change
/// (not at each event of a run, nor at each change of the dry run's form).
#[derive(Properties, PartialEq, Clone)]
pub struct DocProps {
    pub editing: DocState,
    pub selected: Option<String>,
    pub dispatch: UseReducerDispatcher<State>,
}

impl DocProps {
    pub fn of(app: &State, dispatch: UseReducerDispatcher<State>) -> Self {
        DocProps {
            editing: app.editing.clone(),
            selected: app.shell.selected.clone(),
            dispatch,
        }
    }
}

/// The columns of the steps table (and the fields beside the graph): label, and the key of a
/// `[[notebook]]`/`[[pipeline]]` entry it edits.
const STEP_COLUMNS: [(&str, &str); 12] = [
    ("id", "id"),
    ("path", "path"),
    ("depends on", "depends_on"),
    ("parameters", "params"),
    ("active", "active"),
    ("retries", "retry"),
    ("retry interval (s)", "retry_interval_secs"),
    ("timeout (s)", "timeout_secs"),
    ("slots", "slots"),
    ("estimate (s)", "estimate_secs"),
    ("isolated", "isolated"),
    ("for each", "for_each"),
];

/// The help of a steps-table column (docs/metadata.md's, through `spool_core::keys`).
pub fn step_help(label: &str) -> Option<String> {
    let (_, key) = STEP_COLUMNS.iter().find(|(l, _)| *l == label)?;
    keys::help(Section::Step, key)
}

/// The help of a key of `table` (`""`: the top of the file).
fn table_help(table: &str, key: &str) -> Option<String> {
    keys::help(Section::of_table(table)?, key)
}

fn messages<'a>(doc: &'a Doc, item: Option<&'a str>, key: &'a str) -> Vec<String> {
    doc.about(item, key).map(|d| d.message.clone()).collect()
}

/// A setting of `[pool]`, `[defaults]` or the top of the file.
fn table_field(
    dispatch: &UseReducerDispatcher<State>,
    doc: &Doc,
    table: &'static str,
    key: &'static str,
    kind: FieldKind,
    value: String,
) -> Html {
    let dispatch = dispatch.clone();
    let on_commit = Callback::from(move |value| {
        dispatch.dispatch(Action::Doc(DocAction::Edit(vec![Edit::SetTableKey {
            table: table.into(),
            key: key.into(),
            value,
        }])))
    });
    let diagnostics = messages(doc, None, key);
    let field = if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    };
    html! {
        <label class="setting">
            <span title={table_help(table, key)}>{ key }</span>
            <Field value={value} {kind} field={field} {on_commit} {diagnostics} />
        </label>
    }
}

fn table_flag(
    dispatch: &UseReducerDispatcher<State>,
    table: &'static str,
    key: &'static str,
    on: bool,
) -> Html {
    let dispatch = dispatch.clone();
    let onchange = Callback::from(move |e: Event| {
        let checked = e
            .target_unchecked_into::<web_sys::HtmlInputElement>()
            .checked();
        dispatch.dispatch(Action::Doc(DocAction::Edit(vec![Edit::SetTableKey {
            table: table.into(),
            key: key.into(),
            value: checked.into(),
        }])))
    });
    html! {
        <label class="setting flag">
            <input type="checkbox" checked={on} {onchange} data-field={format!("{table}.{key}")} />
            <span title={table_help(table, key)}>{ key }</span>
        </label>
    }
}

/// The widgets of one step's fields, labelled: laid out as a table row in the editor, and as a
/// form beside the graph.
pub fn step_fields(
    dispatch: &UseReducerDispatcher<State>,
    doc: &Doc,
    file: &Rc<PipelineFile>,
    step: &Step,
) -> Vec<(&'static str, Html)> {
    let id = AttrValue::from(step.id.clone());
    let set = |key: &'static str| {
        let (dispatch, id) = (dispatch.clone(), step.id.clone());
        Callback::from(move |value| {
            dispatch.dispatch(Action::Doc(DocAction::Edit(vec![Edit::SetStepKey {
                id: id.clone(),
                key: key.into(),
                value,
            }])))
        })
    };
    let input = |key: &'static str, kind: FieldKind, value: String| {
        html! {
            <Field value={value} {kind} field={key} id={id.clone()} on_commit={set(key)}
                diagnostics={messages(doc, Some(&step.id), key)} list={(key == "path").then_some(AttrValue::from("notebook-paths"))} />
        }
    };
    let on_rename = {
        let (dispatch, file, old) = (dispatch.clone(), file.clone(), step.id.clone());
        Callback::from(move |value: serde_json::Value| {
            if let Some(new) = value.as_str().filter(|n| !n.is_empty()) {
                dispatch.dispatch(Action::Doc(DocAction::Edit(rename(&file, &old, new))));
            }
        })
    };
    let id_field = html! {
        <>
            <Field value={step.id.clone()} kind={FieldKind::Text} field="id" id={id.clone()}
                on_commit={on_rename} diagnostics={messages(doc, Some(&step.id), "id")} />
            if step.kind == StepKind::Pipeline {
                <span class="badge">{ "sub-pipeline" }</span>
            }
        </>
    };
    // A flag equal to its default (true for `active`, [defaults]' value for `isolated`) is
    // removed rather than written.
    let flag = |key: &'static str, checked: bool, default: bool| {
        let commit = set(key);
        let onchange = Callback::from(move |e: Event| {
            let on = e
                .target_unchecked_into::<web_sys::HtmlInputElement>()
                .checked();
            commit.emit(if on == default {
                serde_json::Value::Null
            } else {
                on.into()
            });
        });
        html! { <input type="checkbox" {checked} {onchange} data-field={key} data-id={id.clone()} /> }
    };
    let active = flag("active", step.active, true);
    // A key not written on the entry shows the value it inherits as a placeholder (`inherited`:
    // `"4 from defaults"`); emptying a written one removes it, so that the entry inherits again.
    let optional = |key: &'static str,
                    kind: FieldKind,
                    written: Option<String>,
                    inherited: String,
                    reset_to: &str| {
        let Some(value) = written else {
            return html! {
                <Field value="" {kind} field={key} id={id.clone()} on_commit={set(key)}
                    placeholder={inherited}
                    diagnostics={messages(doc, Some(&step.id), key)} />
            };
        };
        let reset = {
            let commit = set(key);
            Callback::from(move |_: MouseEvent| commit.emit(serde_json::Value::Null))
        };
        html! {
            <span class="explicit">
                { input(key, kind, value) }
                <button class="reset" title={format!("reset to {reset_to}")} onclick={reset}
                    data-field={format!("{key}.reset")} data-id={id.clone()}>{ "↺" }</button>
            </span>
        }
    };
    let setting = |key: &'static str, kind: FieldKind, value: String| {
        let written = step.spans.settings.contains_key(key).then(|| value.clone());
        optional(
            key,
            kind,
            written,
            format!("{value} from defaults"),
            "the value of [defaults]",
        )
    };
    let params = doc
        .params()
        .map(|p| p.of(Some(&step.id)).to_vec())
        .unwrap_or_default();
    let s = &step.settings;
    let isolated = flag("isolated", s.isolated, file.defaults.isolated);
    vec![
        ("id", id_field),
        ("path", input("path", FieldKind::Text, step.path.clone())),
        ("depends on", depends_on(dispatch, doc, step)),
        (
            "parameters",
            html! {
                <ParamsEditor dispatch={dispatch.clone()} step={Some(AttrValue::from(step.id.clone()))}
                    rows={params} diagnostics={messages(doc, Some(&step.id), "params")}
                    picker={Some(Picker { file: file.clone(), step: step.id.clone(), lists_only: false })} />
            },
        ),
        ("active", active),
        (
            "retries",
            setting("retry", FieldKind::Integer, s.retry.to_string()),
        ),
        (
            "retry interval (s)",
            setting(
                "retry_interval_secs",
                FieldKind::Integer,
                s.retry_interval_secs.to_string(),
            ),
        ),
        (
            "timeout (s)",
            setting(
                "timeout_secs",
                FieldKind::Integer,
                s.timeout_secs.to_string(),
            ),
        ),
        (
            "slots",
            setting("slots", FieldKind::Integer, s.slots.to_string()),
        ),
        (
            "estimate (s)",
            setting(
                "estimate_secs",
                FieldKind::Number,
                s.estimate_secs.to_string(),
            ),
        ),
        ("isolated", isolated),
        (
            "for each",
            for_each_fields(dispatch, doc, file, step, &optional),
        ),
    ]
}

/// The widget of a key a step may leave unwritten: key, kind, the value written (if it is),
/// the placeholder saying what it inherits, and what "reset" goes back to.
type OptionalField<'a> = dyn Fn(&'static str, FieldKind, Option<String>, String, &str) -> Html + 'a;

/// A written value as the file has it (`None`: not written).
fn written<'t>(doc: &'t Doc, step: &Step, key: &str) -> Option<&'t str> {
    doc.text.get(step.spans.for_each.get(key)?.clone())
}

/// A `for_each` value as the field shows it: a list as written, a reference without its
/// quotes.
fn for_each_text(doc: &Doc, step: &Step) -> String {
    let Some(raw) = written(doc, step, "for_each") else {
        return String::new();
    };
    match raw.chars().next() {
        Some('"') => {
            serde_json::from_str(raw).unwrap_or_else(|_| raw.trim_matches('"').to_string())
        }
        Some('\'') => raw.trim_matches('\'').to_string(),
        _ => raw.to_string(),
    }
}

/// `for_each` (a list or one `{{ … }}` reference, picked from those valid here),
/// `for_each_concurrency` and `expected_items` of a `[[notebook]]` entry; a `[[pipeline]]` has
/// none.
fn for_each_fields(
    dispatch: &UseReducerDispatcher<State>,
    doc: &Doc,
    file: &Rc<PipelineFile>,
    step: &Step,
    optional: &OptionalField<'_>,
) -> Html {
    if step.kind != StepKind::Notebook {
        return html! {};
    }
    let id = step.id.clone();
    // Emptied, `for_each` goes with its two settings (they mean nothing without it).
    let on_commit = {
        let (dispatch, id, settings) = (
            dispatch.clone(),
            id.clone(),
            step.spans
                .for_each
                .keys()
                .filter(|k| *k != "for_each")
                .cloned()
                .collect::<Vec<_>>(),
        );
        Callback::from(move |value: serde_json::Value| {
            let mut edits = vec![Edit::SetStepKey {
                id: id.clone(),
                key: "for_each".into(),
                value: value.clone(),
            }];
            if value.is_null() {
                edits.extend(settings.iter().map(|key| Edit::SetStepKey {
                    id: id.clone(),
                    key: key.clone(),
                    value: serde_json::Value::Null,
                }));
            }
            dispatch.dispatch(Action::Doc(DocAction::Edit(edits)));
        })
    };
    let picker = Picker {
        file: file.clone(),
        step: id.clone(),
        lists_only: true,
    };
    let check = {
        let picker = picker.clone();
        Callback::from(move |text: String| match text.trim() {
            "" => None,
            t if t.starts_with('[') => field_value(FieldKind::ForEach, t).err(),
            t => picker.check(t),
        })
    };
    let help = |key| keys::help(Section::Step, key);
    html! {
        <div class="for-each" data-id={id.clone()}>
            <label title={help("for_each")}>
                <Field value={for_each_text(doc, step)} kind={FieldKind::ForEach} field="for_each" id={AttrValue::from(id.clone())}
                    {on_commit} {check} references={Some(picker)}
                    placeholder={"[\"a\", \"b\"] or {{ params.tables }}"}
                    diagnostics={messages(doc, Some(&step.id), "for_each")} />
            </label>
            // Shown once there is a for-each, or a setting written without one (its error).
            if !step.spans.for_each.is_empty() {
                <label class="for-each-setting" title={help("for_each_concurrency")}>
                    <span>{ "at once" }</span>
                    { optional("for_each_concurrency", FieldKind::Integer,
                        written(doc, step, "for_each_concurrency").map(String::from), "no cap".into(), "no cap") }
                </label>
                <label class="for-each-setting" title={help("expected_items")}>
                    <span>{ "expected items" }</span>
                    { optional("expected_items", FieldKind::Integer,
                        written(doc, step, "expected_items").map(String::from),
                        format!("{} (default)", spool_core::for_each::DEFAULT_EXPECTED_ITEMS), "the default") }
                </label>
            }
        </div>
    }
}

#[derive(Properties, PartialEq)]
pub struct ParamsProps {
    pub dispatch: UseReducerDispatcher<State>,
    /// The step whose `params` these are; `None` for the file's `[params]`.
    pub step: Option<AttrValue>,
    pub rows: Vec<ParamRow>,
    #[prop_or_default]
    pub diagnostics: Vec<String>,
    /// The references a value may insert (a step's parameters).
    #[prop_or_default]
    pub picker: Option<Picker>,
}

/// A parameter table: one row per key (name, type, value), in the file's order, and a row to
/// add one. Each change is one `Edit::*Param`, which keeps the TOML type and every other byte.
#[function_component(ParamsEditor)]
pub fn params_editor(props: &ParamsProps) -> Html {
    let step = props.step.as_ref().map(|s| s.to_string());
    let rows = props.rows.iter().map(|row| {
        html! {
            <ParamRowEditor key={row.key.clone()} dispatch={props.dispatch.clone()}
                step={props.step.clone()} row={row.clone()} picker={props.picker.clone()} />
        }
    });
    let taken: Vec<String> = props.rows.iter().map(|r| r.key.clone()).collect();
    html! {
        <div class="params" data-id={props.step.clone()}>
            { for rows }
            <AddParam dispatch={props.dispatch.clone()} step={props.step.clone()} {taken} />
            { crate::each(props.diagnostics.iter().map(|m| html! {
                <div class="diagnostic" data-field="params" data-id={step.clone()}>{ m }</div>
            })) }
        </div>
    }
}

fn type_select(selected: ParamType, field: String, onchange: Callback<Event>) -> Html {
    html! {
        <select class="param-type" data-field={field} {onchange}>
            { for ParamType::ALL.iter().map(|t| html! {
                <option value={t.name()} selected={*t == selected}>{ t.name() }</option>
            }) }
        </select>
    }
}

fn selected_type(e: &Event) -> Option<ParamType> {
    ParamType::from_name(
        &e.target_unchecked_into::<web_sys::HtmlSelectElement>()
            .value(),
    )
}

#[derive(Properties, PartialEq)]
struct ParamRowProps {
    dispatch: UseReducerDispatcher<State>,
    step: Option<AttrValue>,
    row: ParamRow,
    picker: Option<Picker>,
}

#[function_component(ParamRowEditor)]
fn param_row_editor(props: &ParamRowProps) -> Html {
    // A type chosen that the current value does not have waits here for a value of it.
    let chosen = use_state(|| None::<ParamType>);
    let error = use_state(|| None::<String>);
    let (step, key) = (
        props.step.as_ref().map(|s| s.to_string()),
        props.row.key.clone(),
    );
    let ty = chosen.unwrap_or(props.row.value.ty);
    let set = {
        let (dispatch, step, key, chosen, error) = (
            props.dispatch.clone(),
            step.clone(),
            key.clone(),
            chosen.clone(),
            error.clone(),
        );
        move |ty: ParamType, text: String| {
            let value = ParamValue { ty, text };
            match value.to_toml() {
                Ok(_) => {
                    chosen.set(None);
                    error.set(None);
                    dispatch.dispatch(Action::Doc(DocAction::Edit(vec![Edit::SetParam {
                        step: step.clone(),
                        key: key.clone(),
                        value,
                    }])));
                }
                Err(why) => {
                    chosen.set(Some(ty));
                    error.set(Some(why));
                }
            }
        }
    };
    let on_type = {
        let (set, text) = (set.clone(), props.row.value.text.clone());
        Callback::from(move |e: Event| {
            if let Some(ty) = selected_type(&e) {
                set(ty, text.clone());
            }
        })
    };
    // A value with a reference that its type cannot hold (a date, a number) is a string,
    // which core reads as a reference and gives the type of what it refers to.
    let string_with_reference = |ty: ParamType, text: &str| {
        text.contains("{{")
            && (ty == ParamType::String
                || ParamValue {
                    ty,
                    text: text.to_string(),
                }
                .to_toml()
                .is_err())
    };
    let on_value = Callback::from(move |v: serde_json::Value| {
        let text = v.as_str().unwrap_or_default().to_string();
        let ty = if string_with_reference(ty, &text) {
            ParamType::String
        } else {
            ty
        };
        set(ty, text);
    });
    let check = props.picker.clone().map(|picker| {
        Callback::from(move |text: String| {
            string_with_reference(ty, &text)
                .then(|| picker.check(&text))
                .flatten()
        })
    });
    let on_name = {
        let (dispatch, step, key) = (props.dispatch.clone(), step.clone(), key.clone());
        Callback::from(move |v: serde_json::Value| {
            if let Some(to) = v.as_str().filter(|to| !to.is_empty() && *to != key) {
                dispatch.dispatch(Action::Doc(DocAction::Edit(vec![Edit::RenameParam {
                    step: step.clone(),
                    key: key.clone(),
                    to: to.to_string(),
                }])));
            }
        })
    };
    let on_remove = {
        let (dispatch, step, key) = (props.dispatch.clone(), step.clone(), key.clone());
        Callback::from(move |_: MouseEvent| {
            dispatch.dispatch(Action::Doc(DocAction::Edit(vec![Edit::RemoveParam {
                step: step.clone(),
                key: key.clone(),
            }])))
        })
    };
    let field = format!("params.{key}");
    html! {
        <div class="param-row" data-param={key.clone()} data-type={ty.name()}>
            <Field value={key.clone()} kind={FieldKind::Text} field={format!("{field}.name")}
                id={props.step.clone()} on_commit={on_name} />
            { type_select(ty, format!("{field}.type"), on_type) }
            <Field value={props.row.value.text.clone()} kind={FieldKind::Raw} field={format!("{field}.value")}
                id={props.step.clone()} on_commit={on_value} placeholder={ty.example()}
                {check} references={props.picker.clone()}
                diagnostics={(*error).iter().cloned().collect::<Vec<_>>()} />
            <button class="x" title={format!("remove the parameter {key}")} onclick={on_remove}
                data-field={format!("{field}.remove")} data-id={props.step.clone()}>{ "×" }</button>
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct AddParamProps {
    dispatch: UseReducerDispatcher<State>,
    step: Option<AttrValue>,
    /// The names in use.
    taken: Vec<String>,
}

#[function_component(AddParam)]
fn add_param(props: &AddParamProps) -> Html {
    let name = use_state(String::new);
    let ty = use_state(|| ParamType::String);
    let text = use_state(String::new);
    let error = use_state(|| None::<String>);
    let on_submit = {
        let (dispatch, step, taken) = (
            props.dispatch.clone(),
            props.step.as_ref().map(|s| s.to_string()),
            props.taken.clone(),
        );
        let (name, ty, text, error) = (name.clone(), ty.clone(), text.clone(), error.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let key = name.trim().to_string();
            let value = ParamValue {
                ty: *ty,
                text: (*text).clone(),
            };
            let problem = if key.is_empty() {
                Some("a parameter needs a name".to_string())
            } else if taken.contains(&key) {
                Some(format!("`{key}` is there already: change its row"))
            } else {
                value.to_toml().err()
            };
            if let Some(why) = problem {
                error.set(Some(why));
                return;
            }
            dispatch.dispatch(Action::Doc(DocAction::Edit(vec![Edit::SetParam {
                step: step.clone(),
                key,
                value,
            }])));
            name.set(String::new());
            text.set(String::new());
            error.set(None);
        })
    };
    let typed = |h: &UseStateHandle<String>| {
        let h = h.clone();
        Callback::from(move |e: InputEvent| {
            h.set(
                e.target_unchecked_into::<web_sys::HtmlInputElement>()
                    .value(),
            )
        })
    };
    let on_type = {
        let ty = ty.clone();
        Callback::from(move |e: Event| {
            if let Some(t) = selected_type(&e) {
                ty.set(t);
            }
        })
    };
    html! {
        <form class="param-add" onsubmit={on_submit} data-id={props.step.clone()}>
            <input type="text" placeholder="+ name" value={(*name).clone()} oninput={typed(&name)}
                data-field="param-add.name" data-id={props.step.clone()} />
            { type_select(*ty, "param-add.type".into(), on_type) }
            <input type="text" placeholder={ty.example()} value={(*text).clone()} oninput={typed(&text)}
                data-field="param-add.value" data-id={props.step.clone()} />
            <button type="submit" class="small" data-field="param-add.submit" data-id={props.step.clone()}>{ "add" }</button>
            { crate::each((*error).iter().map(|m| html! { <div class="diagnostic">{ m }</div> })) }
        </form>
    }
}

/// Dependencies as chips (condition picker, remove button) plus an input to add one.
fn depends_on(dispatch: &UseReducerDispatcher<State>, doc: &Doc, step: &Step) -> Html {
    let chips = step.depends_on.iter().map(|d| {
        let on_cond = {
            let (dispatch, to, from) = (dispatch.clone(), step.id.clone(), d.id.clone());
            Callback::from(move |e: Event| {
                let on = e.target_unchecked_into::<web_sys::HtmlSelectElement>().value();
                dispatch.dispatch(Action::Doc(DocAction::Edit(set_condition(&to, &from, &on))));
            })
        };
        let on_remove = {
            let (dispatch, to, from) = (dispatch.clone(), step.id.clone(), d.id.clone());
            Callback::from(move |_: MouseEvent| {
                dispatch.dispatch(Action::Doc(DocAction::Edit(vec![Edit::RemoveDependency {
                    to: to.clone(),
                    from: from.clone(),
                }])))
            })
        };
        // The dependency's condition on values (`if`), kept where it is written; empty removes it.
        let on_if = {
            let (dispatch, to, from) = (dispatch.clone(), step.id.clone(), d.id.clone());
            Callback::from(move |e: Event| {
                let text = e.target_unchecked_into::<web_sys::HtmlInputElement>().value();
                let text = text.trim();
                dispatch.dispatch(Action::Doc(DocAction::Edit(vec![Edit::SetDependencyKey {
                    to: to.clone(),
                    from: from.clone(),
                    key: "if".into(),
                    value: (!text.is_empty()).then(|| text.to_string()),
                }])))
            })
        };
        let when = d.when.as_ref().map(|w| w.text.clone()).unwrap_or_default();
        html! {
            <span class="dep" data-dep={d.id.clone()}>
                { &d.id }
                <select class="cond" onchange={on_cond} data-field="condition" data-id={step.id.clone()} data-dep={d.id.clone()}>
                    { for Condition::NAMES.iter().map(|n| html! {
                        <option value={*n} selected={d.on.name() == *n}>{ n }</option>
                    }) }
                </select>
                <input type="text" class="dep-if" value={when} onchange={on_if} data-field="if"
                    data-id={step.id.clone()} data-dep={d.id.clone()}
                    placeholder="if …" title={format!("run only if this holds, e.g. {{{{ tasks.{}.values.rows }}}} > 0 (empty: always)", d.id)} />
                <button class="x" title={format!("remove the dependency on {}", d.id)} onclick={on_remove}>{ "×" }</button>
            </span>
        }
    });
    let on_add = {
        let (dispatch, to) = (dispatch.clone(), step.id.clone());
        Callback::from(move |e: Event| {
            let input = e.target_unchecked_into::<web_sys::HtmlInputElement>();
            let from = input.value().trim().to_string();
            input.set_value("");
            if !from.is_empty() {
                dispatch.dispatch(Action::Doc(DocAction::Edit(vec![Edit::AddDependency {
                    to: to.clone(),
                    from,
                    on: "succeeded".into(),
                }])));
            }
        })
    };
    html! {
        <div class="deps">
            { crate::each(chips) }
            <input class="add-dep" type="text" placeholder="+ id" list="step-ids" onchange={on_add}
                data-field="depends_on" data-id={step.id.clone()} />
            { crate::each(messages(doc, Some(&step.id), "depends_on").into_iter().map(|m| html! {
                <div class="diagnostic" data-field="depends_on" data-id={step.id.clone()}>{ m }</div>
            })) }
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct ListProps {
    ids: Vec<AttrValue>,
    paths: Vec<AttrValue>,
}

/// The option lists, a component of their own so that they are rebuilt only when the ids or
/// paths change, not on every edit (a 10k-notebook pipeline has 10k ids).
#[function_component(Lists)]
fn lists(props: &ListProps) -> Html {
    html! {
        <>
            <datalist id="step-ids">
                { for props.ids.iter().map(|id| html! { <option value={id.clone()} /> }) }
            </datalist>
            <datalist id="notebook-paths">
                { for props.paths.iter().map(|p| html! { <option value={p.clone()} /> }) }
            </datalist>
        </>
    }
}

/// Ids and notebook paths offered while typing.
pub fn datalists(doc: &Doc, file: &PipelineFile) -> Html {
    let dir = spool_core::source::parent(&doc.root);
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let paths: Vec<AttrValue> = doc
        .sources
        .0
        .iter()
        .filter(|(_, text)| text.is_empty())
        .filter_map(|(p, _)| {
            p.strip_prefix(&prefix)
                .map(|p| AttrValue::from(p.to_string()))
        })
        .collect();
    let ids: Vec<AttrValue> = file
        .steps
        .iter()
        .map(|s| AttrValue::from(s.id.clone()))
        .collect();
    html! { <Lists {ids} {paths} /> }
}

#[function_component(Editor)]
pub fn editor(props: &DocProps) -> Html {
    let dispatch = &props.dispatch;
    let filter = use_state(String::new);
    let page = use_state(|| 0usize);
    let new_id = use_state(String::new);
    let new_path = use_state(String::new);
    {
        // A clicked diagnostic: the page of its row (the filter dropped if it hides the row);
        // `use_reveal` then focuses its field once drawn.
        let (filter, page) = (filter.clone(), page.clone());
        let reveal = props.editing.reveal.clone();
        let file = props
            .editing
            .doc
            .as_ref()
            .and_then(|d| d.checked.file.clone());
        use_effect_with(reveal.as_ref().map(|r| r.seq), move |_| {
            let (Some(item), Some(file)) = (reveal.and_then(|r| r.item), file) else {
                return;
            };
            let position = |needle: &str| {
                file.steps
                    .iter()
                    .filter(|s| step_matches(s, needle))
                    .position(|s| s.id == item)
            };
            let at = position(&filter).or_else(|| {
                filter.set(String::new());
                position("")
            });
            if let Some(at) = at {
                page.set(at / PAGE);
            }
        });
    }
    crate::reveal::use_reveal(&props.editing, dispatch);
    let Some(doc) = &props.editing.doc else {
        return html! { <p class="empty">{ "Open a pipeline." }</p> };
    };
    let Some(file) = &doc.checked.file else {
        return html! {
            <div class="editor">
                <Problems ..props.clone() />
                <p class="empty">{ "The file cannot be read as TOML; fix it in the Source tab." }</p>
            </div>
        };
    };
    let pool = &file.pool;
    let defaults = &file.defaults;
    let header = html! {
        <div class="settings">
            <fieldset>
                <legend>{ "pipeline" }</legend>
                { table_field(dispatch, doc, "", "name", FieldKind::Text, file.name.clone()) }
                { table_field(dispatch, doc, "", "description", FieldKind::Text, file.description.clone().unwrap_or_default()) }
            </fieldset>
            <fieldset>
                <legend>{ "pool" }</legend>
                { table_field(dispatch, doc, "pool", "executors", FieldKind::Integer, pool.executors.to_string()) }
                { table_field(dispatch, doc, "pool", "executor_cores", FieldKind::Integer, pool.executor_cores.to_string()) }
                { table_field(dispatch, doc, "pool", "max_concurrency", FieldKind::Integer, pool.max_concurrency.map(|c| c.to_string()).unwrap_or_default()) }
                { table_flag(dispatch, "pool", "recreate_session", pool.recreate_session) }
            </fieldset>
            <fieldset class="pipeline-params">
                <legend>{ "parameters ([params])" }</legend>
                <ParamsEditor dispatch={dispatch.clone()} step={None::<AttrValue>}
                    rows={doc.params().map(|p| p.pipeline.clone()).unwrap_or_default()}
                    diagnostics={messages(doc, None, "params")} />
            </fieldset>
            <fieldset>
                <legend>{ "defaults" }</legend>
                { table_field(dispatch, doc, "defaults", "retry", FieldKind::Integer, defaults.retry.to_string()) }
                { table_field(dispatch, doc, "defaults", "retry_interval_secs", FieldKind::Integer, defaults.retry_interval_secs.to_string()) }
                { table_field(dispatch, doc, "defaults", "timeout_secs", FieldKind::Integer, defaults.timeout_secs.to_string()) }
                { table_field(dispatch, doc, "defaults", "slots", FieldKind::Integer, defaults.slots.to_string()) }
                { table_field(dispatch, doc, "defaults", "estimate_secs", FieldKind::Number, defaults.estimate_secs.to_string()) }
            </fieldset>
        </div>
    };

    let rows: Vec<&Step> = file
        .steps
        .iter()
        .filter(|s| step_matches(s, &filter))
        .collect();
    let pages = rows.len().div_ceil(PAGE).max(1);
    let current = (*page).min(pages - 1);
    let labels = STEP_COLUMNS.map(|(label, _)| label);
    let body = rows.iter().skip(current * PAGE).take(PAGE).map(|step| {
        let cells = step_fields(dispatch, doc, file, step);
        let on_remove = {
            let (dispatch, file, id) = (dispatch.clone(), file.clone(), step.id.clone());
            Callback::from(move |_: MouseEvent| dispatch.dispatch(Action::Doc(DocAction::Edit(remove_step(&file, &id)))))
        };
        let on_pick = {
            let (dispatch, id) = (dispatch.clone(), step.id.clone());
            Callback::from(move |_: FocusEvent| dispatch.dispatch(Action::Shell(ShellAction::Select(Some(id.clone())))))
        };
        let selected = props.selected.as_deref() == Some(step.id.as_str());
        html! {
            <tr key={step.id.clone()} data-id={step.id.clone()} onfocusin={on_pick}
                class={classes!(selected.then_some("selected"), (!step.active).then_some("inactive"))}>
                { crate::each(cells.into_iter().map(|(name, cell)| html! { <td data-col={name}>{ cell }</td> })) }
                <td><button class="x" title={format!("remove {}", step.id)} onclick={on_remove} data-field="remove" data-id={step.id.clone()}>{ "×" }</button></td>
            </tr>
        }
    });

    let on_filter = {
        let (filter, page) = (filter.clone(), page.clone());
        Callback::from(move |e: InputEvent| {
            filter.set(
                e.target_unchecked_into::<web_sys::HtmlInputElement>()
                    .value(),
            );
            page.set(0);
        })
    };
    let pager = (pages > 1).then(|| {
        let go = |to: usize| {
            let page = page.clone();
            Callback::from(move |_: MouseEvent| page.set(to))
        };
        html! {
            <span class="pager">
                <button disabled={current == 0} onclick={go(current.saturating_sub(1))}>{ "‹" }</button>
                { format!(" page {} of {} ", current + 1, pages) }
                <button disabled={current + 1 >= pages} onclick={go(current + 1)}>{ "›" }</button>
            </span>
        }
    });
    // The form's id and path become a `[[notebook]]` (Enter, or the first button) or a
    // `[[pipeline]]` entry.
    let add_step = |make: fn(String, String) -> Edit| {
        let (dispatch, new_id, new_path) = (dispatch.clone(), new_id.clone(), new_path.clone());
        move || {
            let (id, path) = (new_id.trim().to_string(), new_path.trim().to_string());
            if !id.is_empty() {
                dispatch.dispatch(Action::Doc(DocAction::Edit(vec![make(id, path)])));
                new_id.set(String::new());
                new_path.set(String::new());
            }
        }
    };
    let add = {
        let add = add_step(|id, path| Edit::AddNotebook { id, path });
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            add();
        })
    };
    let add_pipeline = {
        let add = add_step(|id, path| Edit::AddPipeline { id, path });
        Callback::from(move |_: MouseEvent| add())
    };
    let text_setter = |h: &UseStateHandle<String>| {
        let h = h.clone();
        Callback::from(move |e: InputEvent| {
            h.set(
                e.target_unchecked_into::<web_sys::HtmlInputElement>()
                    .value(),
            )
        })
    };
    html! {
        <div class="editor">
            { datalists(doc, file) }
            <Problems ..props.clone() />
            { header }
            <div class="table-tools">
                <input type="search" placeholder="filter by id or path" value={(*filter).clone()} oninput={on_filter} />
                { format!(" {} of {} steps ", rows.len(), file.steps.len()) }
                { crate::each(pager) }
            </div>
            <table class="steps">
                <thead><tr>{ crate::each(labels.iter().map(|l| html! { <th title={step_help(l)}>{ l }</th> })) }<th></th></tr></thead>
                <tbody>{ for body }</tbody>
            </table>
            <form class="add-step" onsubmit={add}>
                <input type="text" placeholder="new id" value={(*new_id).clone()} oninput={text_setter(&new_id)} data-field="new-id" />
                <input type="text" placeholder="notebook (or pipeline .toml) path" value={(*new_path).clone()} oninput={text_setter(&new_path)} list="notebook-paths" data-field="new-path" />
                <button type="submit" id="add-notebook">{ "Add notebook" }</button>
                <button type="button" id="add-pipeline" title="a [[pipeline]] entry: the pipeline file at that path runs as one step" onclick={add_pipeline}>{ "Add sub-pipeline" }</button>
            </form>
        </div>
    }
}

/// Whether the table's filter shows `step`: `filter` in its id or path, whatever the case.
fn step_matches(step: &Step, filter: &str) -> bool {
    let needle = filter.to_lowercase();
    needle.is_empty()
        || step.id.to_lowercase().contains(&needle)
        || step.path.to_lowercase().contains(&needle)
}

/// The column of the steps table that edits `key`.
pub fn column_of(key: &str) -> Option<&'static str> {
    let key = match key {
        "for_each_concurrency" | "expected_items" => "for_each",
        k => k,
    };
    STEP_COLUMNS
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(label, _)| *label)
}

/// Every diagnostic of the pipeline (its sub-pipelines' too), in one list above the editor;
/// clicking one shows its field.
#[function_component(Problems)]
pub fn problems(props: &DocProps) -> Html {
    let Some(doc) = &props.editing.doc else {
        return html! {};
    };
    let diags = &doc.checked.diagnostics;
    if diags.is_empty() {
        return html! { <p class="problems ok" id="problems">{ "No problems." }</p> };
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == spool_core::diag::Severity::Error)
        .count();
    html! {
        <details class="problems" id="problems" open={diags.len() <= 5}>
            <summary>{ format!("{errors} error(s), {} warning(s)", diags.len() - errors) }</summary>
            <ul>
                { for diags.iter().map(|d| {
                    let sev = match d.severity { spool_core::diag::Severity::Error => "error", spool_core::diag::Severity::Warning => "warning" };
                    let onclick = {
                        let (dispatch, d) = (props.dispatch.clone(), d.clone());
                        Callback::from(move |_: MouseEvent| dispatch.dispatch(Action::Reveal(d.clone())))
                    };
                    html! {
                        <li class={classes!("problem", sev)} data-id={d.item.clone()} data-key={d.key.clone()}
                            title="show this field" {onclick}>{ d.to_string() }</li>
                    }
                }) }
            </ul>
        </details>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_goes_where_the_caret_is_counted_as_the_browser_counts() {
        let r = "{{ run.date }}";
        assert_eq!(insert_at("day ", 4, 4, r), "day {{ run.date }}");
        // `é` is one UTF-16 unit, `𝄞` two: the caret after them is at 1 and 3.
        assert_eq!(insert_at("é-x", 1, 1, r), "é{{ run.date }}-x");
        assert_eq!(insert_at("𝄞x", 2, 2, r), "𝄞{{ run.date }}x");
        assert_eq!(
            insert_at("a OLD b", 5, 2, r),
            "a {{ run.date }} b",
            "a selection is replaced"
        );
        assert_eq!(insert_at("ab", u32::MAX, u32::MAX, r), "ab{{ run.date }}");
    }

    #[test]
    fn every_for_each_key_has_the_for_each_column() {
        for key in ["for_each", "for_each_concurrency", "expected_items"] {
            assert_eq!(column_of(key), Some("for each"));
        }
        assert_eq!(column_of("retry"), Some("retries"));
        assert_eq!(column_of("nope"), None);
        assert!(step_help("for each").is_some_and(|h| !h.is_empty()));
    }
}
