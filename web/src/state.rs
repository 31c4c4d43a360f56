//! The app's state and its reducer: every change is an [`Action`], and [`State::apply`] is pure
//! (no browser calls), so it is tested natively. The pipeline's TOML text is the source of
//! truth: an edit goes through `spool_core::edit::apply` (which keeps the user's comments), and
//! everything else — diagnostics, plan, drawing, dry run — is derived from the new text by
//! `spool-core`. Undo and redo are stacks of texts.

use crate::api::Failure;
use crate::dry_state::{Calibrating, DryField, DryRunState};
use crate::edits::measured_estimates;
use crate::import::{ImportForm, ImportKind, ImportProblem, Input};
use crate::route::Route;
use crate::run::RunView;
use crate::wire::{Bundle, PipelineSummary, RunDetail, ScheduleInfo};
use spool_core::calibrate::{Calibration, DurationsFrom};
use spool_core::dag::{check_notebooks, load_text, Plan};
use spool_core::diag::{has_errors, Diagnostic};
use spool_core::edit::{apply, read_params, Edit, FileParams};
use spool_core::layout::{draw_plan_collapsed, LayoutOptions, PlanDrawing};
use spool_core::model::PipelineFile;
use spool_core::parse::parse_pipeline;
use spool_core::runlog::{RunSummary, StoredEvent};
use spool_core::sched::Policy;
use spool_core::source::MemorySources;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Undo steps kept.
pub const MAX_UNDO: usize = 200;
/// Larger plans are not drawn (the editor, dry run and runs still work).
pub const MAX_DRAWN_NODES: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Pipeline,
    Graph,
    DryRun,
    Runs,
    /// The grid of the pipeline's last runs.
    Grid,
    Source,
}

/// Everything `spool-core` says about one version of the text.
#[derive(Debug)]
pub struct Checked {
    /// The root file's own entries, for the editor table (`None` on a TOML syntax error).
    pub file: Option<Rc<PipelineFile>>,
    pub diagnostics: Vec<Diagnostic>,
    pub plan: Option<Rc<Plan>>,
}

impl Checked {
    /// `notebooks`: what the server found parsing each notebook (the page has their names,
    /// not their texts), checked against the notebooks this text runs by core's rule.
    pub fn of(
        root: &str,
        text: &str,
        sources: &MemorySources,
        notebooks: &BTreeMap<String, Vec<Diagnostic>>,
    ) -> Self {
        // The parse diagnostics are part of `load_text`'s, so only the file is kept here.
        let (file, _) = parse_pipeline(root, text);
        let mut loaded = load_text(root, text, sources);
        check_notebooks(root, &mut loaded, |path, _| {
            notebooks.get(path).cloned().unwrap_or_default()
        });
        Checked {
            file: file.map(Rc::new),
            diagnostics: loaded.diagnostics,
            plan: loaded.plan.map(Rc::new),
        }
    }

    pub fn has_errors(&self) -> bool {
        has_errors(&self.diagnostics)
    }
}

/// The pipeline being edited.
#[derive(Debug, Clone)]
pub struct Doc {
    pub root: String,
    pub sources: Rc<MemorySources>,
    /// The bundle's notebook diagnostics, by notebook path.
    pub notebooks: Rc<BTreeMap<String, Vec<Diagnostic>>>,
    pub text: Rc<str>,
    /// The text as the server has it.
    pub saved: Rc<str>,
    /// The server's version of `saved` (its `ETag`), so that a save cannot silently replace
    /// someone else's.
    pub etag: Option<String>,
    pub checked: Rc<Checked>,
    pub undo: Vec<Rc<str>>,
    pub redo: Vec<Rc<str>>,
    /// The parameters of `text` with their TOML types, read when the editor first asks.
    written_params: Rc<std::cell::OnceCell<Option<FileParams>>>,
}

impl Doc {
    /// Every parameter of the text as written (`None` when it is not TOML).
    pub fn params(&self) -> Option<&FileParams> {
        self.written_params
            .get_or_init(|| read_params(&self.text))
            .as_ref()
    }

    /// Diagnostics of the root file about one field (`item` = step id, `None` for the file's
    /// own tables), shown beside that field.
    pub fn about<'a>(
        &'a self,
        item: Option<&'a str>,
        key: &'a str,
    ) -> impl Iterator<Item = &'a Diagnostic> + 'a {
        self.checked.diagnostics.iter().filter(move |d| {
            d.file == self.root && d.item.as_deref() == item && d.key.as_deref() == Some(key)
        })
    }
}

/// Unsaved edits of a file, kept in the page's storage so that a reload or a closed tab does
/// not lose them, and offered back when the file is opened again.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Draft {
    pub text: String,
    /// The server's version of the file the edits were made on (its `ETag`).
    pub etag: Option<String>,
    /// When the server kept it as the file's draft ("Save draft", for a text with errors);
    /// `None` for edits kept in the page's storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_server: Option<i64>,
}

/// Larger drafts are not kept (the page's storage holds a few megabytes).
pub const MAX_DRAFT: usize = 2 * 1024 * 1024;

/// A plan drawn (keeping the node order of an `earlier` drawing where that adds no
/// crossings, each sub-pipeline in `collapsed` as one node), or `None` when it has more than
/// [`MAX_DRAWN_NODES`] nodes.
pub fn drawing_of(
    plan: &Plan,
    earlier: Option<&PlanDrawing>,
    collapsed: &BTreeSet<String>,
) -> Option<Rc<PlanDrawing>> {
    let nodes = plan.tasks.len() + plan.inactive.len();
    (nodes <= MAX_DRAWN_NODES).then(|| {
        Rc::new(draw_plan_collapsed(
            plan,
            &LayoutOptions::default(),
            earlier,
            collapsed,
        ))
    })
}

/// The last valid plan, drawn. It stays on screen, marked stale, while the text has errors.
#[derive(Debug, Clone)]
pub struct Shown {
    pub plan: Rc<Plan>,
    /// `None` when the plan has more than [`MAX_DRAWN_NODES`] nodes.
    pub drawing: Option<Rc<PlanDrawing>>,
    pub current: bool,
}

/// The sign-in form, shown after the server answered 401. The token itself is never kept: it
/// goes from the password field to `POST /api/session`, which answers with an HttpOnly cookie.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignInForm {
    pub sending: bool,
    /// Why the last attempt failed (a wrong token, an unreachable server).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct State {
    pub pipelines: Vec<PipelineSummary>,
    pub doc: Option<Doc>,
    pub shown: Option<Shown>,
    pub tab: Tab,
    /// The node the user picked, in the graph or a run.
    pub selected: Option<String>,
    /// A message for the user (an edit refused, a failed call).
    pub notice: Option<String>,
    pub saving: bool,
    /// A save was refused because the file changed on the server: the user chooses.
    pub save_conflict: bool,
    pub dry: DryRunState,
    pub runs: Vec<RunSummary>,
    pub run: Option<Rc<RunView>>,
    pub overrides: String,
    /// `Some` while the server wants its token.
    pub sign_in: Option<SignInForm>,
    /// Counts sign-ins: what failed to load before one is loaded again after it.
    pub sessions: u32,
    /// The import dialog, while it is open.
    pub import: Option<ImportForm>,
    /// The view the address asks for while its pipeline or run is still loading; the address
    /// is left alone until it arrives (see [`State::route`]).
    pub nav: Option<Route>,
    /// Unsaved edits of the open file from an earlier visit, offered back.
    pub draft: Option<Draft>,
    /// The field of a diagnostic the user clicked, for the view to bring into sight.
    pub reveal: Option<Reveal>,
    /// Counts clicks on diagnostics.
    pub reveals: u64,
    /// The sub-pipelines the graph draws as one node each (by id), until another file opens.
    pub collapsed: BTreeSet<String>,
}

/// Where a clicked diagnostic points: a step of the open file (its row in the table, its
/// node on the graph) and a key, or a key of the file's own tables. `seq` tells one click
/// from the next on the same field.
#[derive(Debug, Clone, PartialEq)]
pub struct Reveal {
    pub item: Option<String>,
    pub key: Option<String>,
    pub seq: u64,
    /// Where it is in the root file (1-based line, column in characters).
    pub line: usize,
    pub col: usize,
    /// Shown in the source at its line: it names no field a view shows (a syntax error, an
    /// unknown key), or the view did not find it.
    pub in_source: bool,
}

#[derive(Debug, Clone)]
pub enum Action {
    Listed(Vec<PipelineSummary>),
    /// A pipeline's schedule was paused or resumed: as the server answered.
    ScheduleChanged(String, ScheduleInfo),
    Opened(Bundle),
    /// Applied in order as one undo step; all or nothing.
    Edit(Vec<Edit>),
    /// The whole text, from the source view.
    SetText(String),
    Undo,
    Redo,
    SaveStarted,
    /// The server stored this text, as this version.
    Saved(Rc<str>, Option<String>),
    /// The user chose what to do about a save conflict (reload or overwrite follow).
    CloseSaveConflict,
    Notice(String),
    /// A call to the server failed: a 401 asks for the token, anything else is a notice.
    Failed(Failure),
    DismissNotice,
    /// Draws these sub-pipelines as one node each (`true`) or with their steps (`false`).
    Collapse(Vec<String>, bool),
    Select(Option<String>),
    Show(Tab),
    DryField(DryField, String),
    DryPolicy(Policy),
    /// Compute the sweep for this dry run generation (ignored when stale).
    Sweep(u64),
    /// Calibrate the dry run on this history (a run, or p50/p90 over the last runs; the server
    /// measures it), or on none.
    DryCalibrate(Option<DurationsFrom>),
    /// What the server measured for a calibration (ignored unless it is the chosen one).
    DryCalibrationLoaded(Calibration),
    RunsListed(Vec<RunSummary>),
    RunOpened(RunDetail),
    RunEvent {
        run: i64,
        event: StoredEvent,
    },
    Overrides(String),
    /// Write the selected run's measured durations into the estimates.
    UseMeasured,
    SignInSent,
    /// The server refused the token, or could not be asked: why.
    SignInRefused(String),
    SignedIn,
    ImportOpen,
    ImportClose,
    ImportKind(ImportKind),
    /// Files chosen in the dialog, read (the first is the main input), or why they were not.
    ImportFiles(Result<Vec<Input>, String>),
    /// Show the view of an address (the pipeline or run it names is being fetched, or is
    /// the open one).
    Navigate(Route),
    /// The page's storage, or the server, holds unsaved edits of `file` (offered if it is
    /// still the open one).
    DraftFound {
        file: String,
        draft: Draft,
    },
    /// The open pipeline's files as the server has them now (asked again when the window
    /// regains focus and before a run): notebooks created or deleted on disk since it was
    /// opened are checked again; the text being edited is kept.
    FilesRechecked(Bundle),
    /// Bring a diagnostic's step and field into sight (the user clicked it).
    Reveal(Diagnostic),
    /// The view showed that click's field (or gave up looking).
    Revealed(u64),
    /// The view has no field for that click: the source shows its line.
    RevealInSource(u64),
    RestoreDraft,
    DiscardDraft,
    /// The main input's text, typed or pasted.
    ImportText(String),
    ImportTarget(String),
    ImportSaveStarted,
    /// Saving stopped at `file`; the files before it were written.
    ImportSaveFailed {
        file: String,
        failure: Failure,
        written: Vec<String>,
    },
    /// Every file was written.
    ImportSaved,
}

/// Identity: every action makes a new state, so two handles hold equal states exactly when they
/// hold the same one. Components taking the state as a property re-render after each action.
impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl yew::Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = Rc::unwrap_or_clone(self);
        next.apply(action);
        Rc::new(next)
    }
}

impl State {
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Listed(list) => self.pipelines = list,
            Action::ScheduleChanged(file, schedule) => {
                if let Some(p) = self.pipelines.iter_mut().find(|p| p.file == file) {
                    p.schedule = Some(schedule);
                }
            }
            Action::Opened(bundle) => {
                self.open(bundle);
                self.arrive();
            }
            Action::Navigate(route) => self.navigate(route),
            Action::DraftFound { file, draft } => {
                if self
                    .doc
                    .as_ref()
                    .is_some_and(|d| d.root == file && *d.text != *draft.text)
                {
                    self.draft = Some(draft);
                }
            }
            Action::RestoreDraft => {
                if let Some(draft) = self.draft.take() {
                    self.change_text(Rc::from(draft.text));
                }
            }
            Action::DiscardDraft => self.draft = None,
            Action::FilesRechecked(bundle) => self.files_rechecked(bundle),
            Action::Reveal(d) => self.reveal(&d),
            Action::RevealInSource(seq) => {
                if let Some(r) = self
                    .reveal
                    .as_mut()
                    .filter(|r| r.seq == seq && !r.in_source)
                {
                    r.in_source = true;
                    self.tab = Tab::Source;
                }
            }
            Action::Revealed(seq) => {
                if self.reveal.as_ref().is_some_and(|r| r.seq == seq) {
                    self.reveal = None;
                }
            }
            Action::Edit(edits) => self.edit(&edits),
            Action::SetText(text) => self.change_text(Rc::from(text)),
            Action::Undo => self.undo_redo(true),
            Action::Redo => self.undo_redo(false),
            Action::SaveStarted => self.saving = true,
            Action::Saved(text, etag) => {
                self.saving = false;
                if let Some(doc) = &mut self.doc {
                    doc.saved = text;
                    doc.etag = etag;
                }
            }
            Action::CloseSaveConflict => self.save_conflict = false,
            Action::Failed(_) if self.nav.is_some() => {
                // What the address named did not load: the view stays as it is.
                self.nav = None;
                self.apply(action);
            }
            Action::Failed(Failure::Stale(_)) => {
                self.saving = false;
                self.save_conflict = true;
            }
            Action::Notice(message) => {
                self.saving = false;
                self.notice = Some(message);
            }
            Action::Failed(Failure::SignIn) => {
                self.saving = false;
                self.sign_in.get_or_insert_with(SignInForm::default);
            }
            Action::Failed(failure) => {
                self.saving = false;
                self.notice = Some(failure.to_string());
            }
            Action::DismissNotice => self.notice = None,
            Action::Select(id) => self.selected = id,
            Action::Collapse(ids, collapsed) => {
                for id in ids {
                    if collapsed {
                        self.collapsed.insert(id);
                    } else {
                        self.collapsed.remove(&id);
                    }
                }
                self.refresh_shown();
            }
            Action::Show(tab) => self.tab = tab,
            Action::DryField(field, value) => {
                self.dry.form.set(field, value);
                self.recompute_dry();
            }
            Action::DryPolicy(policy) => {
                self.dry.form.policy = policy;
                self.recompute_dry();
            }
            Action::Sweep(generation) => {
                if let Some(shown) = &self.shown {
                    self.dry.sweep(&shown.plan, generation);
                }
            }
            Action::DryCalibrate(from) => {
                self.dry.calibrate_from = from.map(|from| Calibrating {
                    from,
                    calibration: None,
                });
                self.recompute_dry();
            }
            Action::DryCalibrationLoaded(calibration) => {
                let chosen = self
                    .dry
                    .calibrate_from
                    .as_mut()
                    .filter(|c| c.from == calibration.durations_from);
                if let Some(chosen) = chosen {
                    chosen.calibration = Some(Rc::new(calibration));
                    self.recompute_dry();
                }
            }
            Action::RunsListed(runs) => self.runs = runs,
            Action::RunOpened(detail) => {
                let mut view = RunView::new(&detail.run);
                for e in &detail.events {
                    view.apply(e);
                }
                self.run = Some(Rc::new(view));
                self.arrive();
            }
            Action::RunEvent { run, event } => {
                if let Some(view) = self.run.as_mut().filter(|v| v.record.id == run) {
                    Rc::make_mut(view).apply(&event);
                }
            }
            Action::Overrides(text) => self.overrides = text,
            Action::UseMeasured => self.use_measured(),
            Action::SignInSent => {
                if let Some(form) = &mut self.sign_in {
                    form.sending = true;
                    form.error = None;
                }
            }
            Action::SignInRefused(why) => {
                if let Some(form) = &mut self.sign_in {
                    form.sending = false;
                    form.error = Some(why);
                }
            }
            Action::SignedIn => {
                self.sign_in = None;
                self.notice = None;
                self.sessions += 1;
            }
            Action::ImportOpen => {
                self.import = Some(ImportForm::default());
                self.refresh_import();
            }
            Action::ImportClose | Action::ImportSaved => self.import = None,
            Action::ImportSaveStarted => {
                if let Some(form) = &mut self.import {
                    form.saving = true;
                    form.problem = None;
                }
            }
            Action::ImportSaveFailed {
                file,
                failure,
                written,
            } => {
                if failure == Failure::SignIn {
                    self.sign_in.get_or_insert_with(SignInForm::default);
                }
                if let Some(form) = &mut self.import {
                    form.saving = false;
                    form.problem = Some(ImportProblem::not_saved(&file, failure, written));
                }
            }
            Action::ImportKind(kind) => self.change_import(|f| f.set_kind(kind)),
            Action::ImportFiles(Ok(inputs)) => self.change_import(|f| f.choose(inputs)),
            Action::ImportFiles(Err(why)) => {
                if let Some(form) = &mut self.import {
                    form.problem = Some(ImportProblem::unreadable(why));
                }
            }
            Action::ImportText(text) => self.change_import(|f| f.set_text(text)),
            Action::ImportTarget(target) => self.change_import(|f| f.typed_target = Some(target)),
        }
    }

    /// The view shown, as an address (`None` while nothing is open, or while the address's
    /// own view is still loading).
    pub fn route(&self) -> Option<Route> {
        if self.nav.is_some() {
            return None;
        }
        let doc = self.doc.as_ref()?;
        Some(match (self.tab, &self.run) {
            (Tab::Runs, Some(run)) => Route::Run {
                id: run.record.id,
                task: self.selected.clone(),
            },
            (Tab::Runs, None) => Route::Runs,
            (tab, _) => Route::Pipeline {
                file: doc.root.clone(),
                tab,
            },
        })
    }

    fn navigate(&mut self, route: Route) {
        match &route {
            Route::Pipeline { tab, .. } => self.tab = *tab,
            Route::Runs => {
                self.tab = Tab::Runs;
                self.run = None;
                self.selected = None;
            }
            Route::Run { .. } => self.tab = Tab::Runs,
        }
        self.nav = Some(route);
        self.arrive();
    }

    /// Ends a navigation whose pipeline and run are open.
    fn arrive(&mut self) {
        let Some(route) = &self.nav else { return };
        let root = self.doc.as_ref().map(|d| d.root.as_str());
        let arrived = match route {
            Route::Pipeline { file, .. } => root == Some(file.as_str()),
            Route::Runs => root.is_some(),
            Route::Run { id, .. } => {
                root.is_some() && self.run.as_ref().is_some_and(|r| r.record.id == *id)
            }
        };
        if arrived {
            if let Some(Route::Run { task, .. }) = self.nav.take() {
                self.selected = task;
            }
            self.nav = None;
        }
    }

    /// A change to the import form; the preview follows.
    fn change_import(&mut self, change: impl FnOnce(&mut ImportForm)) {
        if let Some(form) = &mut self.import {
            change(form);
            self.refresh_import();
        }
    }

    fn refresh_import(&mut self) {
        let files = self.doc.as_ref().map(|d| &*d.sources);
        if let Some(form) = &mut self.import {
            form.refresh(files, &self.pipelines);
        }
    }

    fn open(&mut self, bundle: Bundle) {
        let mut files = bundle.files;
        let Some(text) = files.remove(&bundle.root) else {
            self.notice = Some(format!("the server sent no text for `{}`", bundle.root));
            return;
        };
        let mut sources = MemorySources(files);
        for nb in bundle.notebooks {
            sources.0.entry(nb).or_default();
        }
        let text: Rc<str> = Rc::from(text);
        let notebooks = Rc::new(bundle.notebook_diagnostics);
        let checked = Rc::new(Checked::of(&bundle.root, &text, &sources, &notebooks));
        let etag = bundle.etags.get(&bundle.root).cloned();
        self.doc = Some(Doc {
            etag,
            root: bundle.root,
            sources: Rc::new(sources),
            notebooks,
            saved: text.clone(),
            text,
            checked,
            undo: Vec::new(),
            redo: Vec::new(),
            written_params: Rc::default(),
        });
        self.shown = None;
        self.selected = None;
        self.run = None;
        self.draft = None;
        self.collapsed.clear();
        self.dry = DryRunState::default();
        self.refresh_shown();
    }

    /// The server's files replace the ones the open text is checked against, when they
    /// changed; the text, its undo and its version stay.
    fn files_rechecked(&mut self, bundle: Bundle) {
        let Some(doc) = &mut self.doc else { return };
        if bundle.root != doc.root {
            return;
        }
        let mut files = bundle.files;
        files.remove(&bundle.root);
        let mut sources = MemorySources(files);
        for nb in bundle.notebooks {
            sources.0.entry(nb).or_default();
        }
        if sources.0 == doc.sources.0 && bundle.notebook_diagnostics == *doc.notebooks {
            return;
        }
        doc.sources = Rc::new(sources);
        doc.notebooks = Rc::new(bundle.notebook_diagnostics);
        doc.checked = Rc::new(Checked::of(
            &doc.root,
            &doc.text,
            &doc.sources,
            &doc.notebooks,
        ));
        self.refresh_shown();
    }

    /// A diagnostic of the root file points at its step; one of a sub-pipeline's file at the
    /// `[[pipeline]]` entry that includes that file. The graph stays the graph (the node's
    /// fields open beside it); any other view goes to the editor's table.
    fn reveal(&mut self, d: &Diagnostic) {
        let Some(doc) = &self.doc else { return };
        let (item, key, (line, col)) = if d.file == doc.root {
            (d.item.clone(), d.key.clone(), (d.line, d.col))
        } else {
            let dir = spool_core::source::parent(&doc.root);
            let entry = doc.checked.file.as_ref().and_then(|f| {
                f.steps.iter().find(|s| {
                    s.kind == spool_core::model::StepKind::Pipeline
                        && spool_core::source::resolve(dir, &s.path).is_ok_and(|p| p == d.file)
                })
            });
            // The entry's line, for the source view.
            let at = entry
                .and_then(|s| doc.text.get(..s.spans.path.start))
                .map(|before| (before.matches('\n').count() + 1, 1))
                .unwrap_or((1, 1));
            (entry.map(|s| s.id.clone()), Some("path".to_string()), at)
        };
        let in_source = item.is_none() && key.is_none();
        self.tab = match self.tab {
            _ if in_source => Tab::Source,
            Tab::Graph => Tab::Graph,
            _ => Tab::Pipeline,
        };
        if item.is_some() {
            self.selected = item.clone();
        }
        self.reveals += 1;
        self.reveal = Some(Reveal {
            item,
            key,
            seq: self.reveals,
            line,
            col,
            in_source,
        });
    }

    fn edit(&mut self, edits: &[Edit]) {
        let Some(doc) = &self.doc else { return };
        let mut text = doc.text.to_string();
        for e in edits {
            match apply(&text, e) {
                Ok(t) => text = t,
                Err(why) => {
                    self.notice = Some(why);
                    return;
                }
            }
        }
        self.change_text(Rc::from(text));
    }

    /// A new text from the user: one undo step.
    fn change_text(&mut self, text: Rc<str>) {
        let Some(doc) = &mut self.doc else { return };
        if *doc.text == *text {
            return;
        }
        let old = std::mem::replace(&mut doc.text, text);
        doc.undo.push(old);
        if doc.undo.len() > MAX_UNDO {
            doc.undo.remove(0);
        }
        doc.redo.clear();
        self.recheck();
    }

    fn undo_redo(&mut self, undo: bool) {
        let Some(doc) = &mut self.doc else { return };
        let (from, to) = if undo {
            (&mut doc.undo, &mut doc.redo)
        } else {
            (&mut doc.redo, &mut doc.undo)
        };
        let Some(text) = from.pop() else { return };
        to.push(std::mem::replace(&mut doc.text, text));
        self.recheck();
    }

    fn recheck(&mut self) {
        let Some(doc) = &mut self.doc else { return };
        doc.written_params = Rc::default();
        doc.checked = Rc::new(Checked::of(
            &doc.root,
            &doc.text,
            &doc.sources,
            &doc.notebooks,
        ));
        self.notice = None;
        self.refresh_shown();
    }

    /// Redraws when the text gives a valid plan; otherwise keeps the last one, marked stale.
    fn refresh_shown(&mut self) {
        let Some(doc) = &self.doc else { return };
        match &doc.checked.plan {
            Some(plan) => {
                // After an edit, nodes stay where they were unless moving them removes
                // crossings (`shown` is cleared when another file opens).
                let earlier = self.shown.as_ref().and_then(|s| s.drawing.clone());
                self.shown = Some(Shown {
                    plan: plan.clone(),
                    drawing: drawing_of(plan, earlier.as_deref(), &self.collapsed),
                    current: true,
                });
                self.recompute_dry();
            }
            None => {
                if let Some(shown) = &mut self.shown {
                    shown.current = false;
                }
            }
        }
    }

    fn recompute_dry(&mut self) {
        if let Some(shown) = &self.shown {
            self.dry.recompute(&shown.plan);
        }
    }

    fn use_measured(&mut self) {
        let (Some(doc), Some(run)) = (&self.doc, &self.run) else {
            return;
        };
        let Some(file) = &doc.checked.file else {
            self.notice = Some("fix the file's syntax error first".into());
            return;
        };
        let edits = measured_estimates(file, &run.measured_secs());
        if edits.is_empty() {
            self.notice = Some(format!(
                "run {} has no measured durations that differ from the estimates",
                run.record.id
            ));
        } else {
            self.edit(&edits);
        }
    }

    /// What to keep in the page's storage for the open file: its unsaved edits (`None`: nothing,
    /// the file is as saved or too large to keep).
    pub fn draft_to_keep(&self) -> Option<Draft> {
        let doc = self.doc.as_ref().filter(|d| d.text != d.saved)?;
        (doc.text.len() <= MAX_DRAFT).then(|| Draft {
            text: doc.text.to_string(),
            etag: doc.etag.clone(),
            on_server: None,
        })
    }

    /// Whether the text differs from the server's copy.
    pub fn unsaved(&self) -> bool {
        self.doc.as_ref().is_some_and(|d| d.text != d.saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    const TEXT: &str = r#"# the loads
name = "p"
[pool]
executors = 1
executor_cores = 2

[[notebook]]
id = "a"   # first
path = "a.py"
estimate_secs = 10

[[notebook]]
id = "b"
path = "b.py"
depends_on = ["a"]
estimate_secs = 20
"#;

    #[test]
    fn a_paused_schedule_replaces_the_listed_one_and_only_that() {
        // As `GET /api/pipelines` sends it.
        let listed: Vec<PipelineSummary> = serde_json::from_value(serde_json::json!([
            { "file": "p.toml", "name": "p", "notebooks": 2, "errors": 0,
              "schedule": { "cron": "30 2 * * *", "timezone": "Europe/Amsterdam",
                "params": {}, "catch_up": "none", "enabled": true, "paused": false,
                "next": [{ "ms": 1_796_002_200_000_i64, "local": "2026-12-01 02:30",
                           "utc": "2026-12-01 01:30" }] } },
            { "file": "q.toml", "name": "q", "notebooks": 1, "errors": 0 }
        ]))
        .expect("the listing decodes");
        let mut s = State::default();
        s.apply(Action::Listed(listed));
        let before = s.pipelines[0].schedule.clone().expect("a schedule");
        assert_eq!(before.next[0].local, "2026-12-01 02:30");
        let paused = ScheduleInfo {
            paused: true,
            next: Vec::new(),
            ..before
        };
        s.apply(Action::ScheduleChanged("p.toml".into(), paused.clone()));
        assert_eq!(s.pipelines[0].schedule, Some(paused));
        assert_eq!(s.pipelines[1].schedule, None);
    }

    fn opened() -> State {
        let mut s = State::default();
        s.apply(Action::Opened(Bundle {
            etags: BTreeMap::from([("p.toml".to_string(), "\"v1\"".to_string())]),
            root: "p.toml".into(),
            files: BTreeMap::from([("p.toml".to_string(), TEXT.to_string())]),
            notebooks: vec!["a.py".into(), "b.py".into()],
            notebook_diagnostics: Default::default(),
        }));
        s
    }

    #[test]
    fn a_collapsed_sub_pipeline_is_drawn_as_one_node_until_expanded_or_another_file_opens() {
        let root = format!(
            "{TEXT}[[pipeline]]\nid = \"sub\"\npath = \"sub.toml\"\ndepends_on = [\"a\"]\n"
        );
        let sub = "[[notebook]]\nid = \"x\"\npath = \"a.py\"\n[[notebook]]\nid = \"y\"\npath = \"b.py\"\ndepends_on = [\"x\"]\n";
        let mut s = State::default();
        s.apply(Action::Opened(Bundle {
            etags: BTreeMap::new(),
            root: "p.toml".into(),
            files: BTreeMap::from([
                ("p.toml".to_string(), root),
                ("sub.toml".to_string(), sub.to_string()),
            ]),
            notebooks: vec!["a.py".into(), "b.py".into()],
            notebook_diagnostics: Default::default(),
        }));
        let drawn = |s: &State| -> Vec<String> {
            let shown = s.shown.as_ref().expect("a plan");
            let drawing = shown.drawing.as_ref().expect("drawn");
            drawing.nodes.iter().map(|n| n.id.clone()).collect()
        };
        assert!(drawn(&s).contains(&"sub/y".to_string()), "{:?}", drawn(&s));
        s.apply(Action::Collapse(vec!["sub".into()], true));
        let folded = drawn(&s);
        assert!(folded.contains(&"sub".to_string()));
        assert!(
            !folded.iter().any(|id| id.starts_with("sub/")),
            "{folded:?}"
        );
        // An edit keeps it collapsed.
        s.apply(set("a", "estimate_secs", json!(30)));
        assert!(!drawn(&s).iter().any(|id| id.starts_with("sub/")));
        s.apply(Action::Collapse(vec!["sub".into()], false));
        assert!(drawn(&s).contains(&"sub/x".to_string()));
        s.apply(Action::Collapse(vec!["sub".into()], true));
        s.apply(Action::Opened(Bundle {
            etags: BTreeMap::new(),
            root: "other.toml".into(),
            files: BTreeMap::from([("other.toml".to_string(), TEXT.to_string())]),
            notebooks: vec!["a.py".into(), "b.py".into()],
            notebook_diagnostics: Default::default(),
        }));
        assert!(s.collapsed.is_empty(), "another file starts expanded");
    }

    #[test]
    fn a_notebook_that_does_not_parse_is_an_error_while_the_pipeline_runs_it() {
        let mut s = State::default();
        let broken = Diagnostic::new(
            "b.py",
            3,
            1,
            spool_core::diag::Severity::Error,
            "cell 2: unsupported magic `%%scala`".into(),
        );
        // As `GET /api/pipelines/{file}/bundle` sends it.
        let bundle: Bundle = serde_json::from_value(json!({
            "root": "p.toml",
            "files": { "p.toml": TEXT },
            "notebooks": ["a.py", "b.py"],
            "notebook_diagnostics": { "b.py": [broken] },
        }))
        .expect("a bundle");
        s.apply(Action::Opened(bundle));
        let checked = &doc(&s).checked;
        assert_eq!(checked.diagnostics, vec![broken.clone()]);
        assert!(checked.plan.is_none(), "no plan runs a broken notebook");
        // Once the pipeline no longer runs it, the error goes with it.
        s.apply(Action::SetText(
            TEXT.replace("path = \"b.py\"", "path = \"a.py\""),
        ));
        let checked = &doc(&s).checked;
        assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
        assert!(checked.plan.is_some());
    }

    #[test]
    fn a_save_refused_as_stale_keeps_the_edit_and_asks_what_to_do() {
        let mut s = opened();
        assert_eq!(
            doc(&s).etag.as_deref(),
            Some("\"v1\""),
            "saves send If-Match"
        );
        s.apply(Action::SetText(TEXT.replace("20", "30")));
        s.apply(Action::SaveStarted);
        s.apply(Action::Failed(Failure::Stale(
            "changed on the server".into(),
        )));
        assert!(s.save_conflict && !s.saving);
        assert!(s.unsaved(), "the user's edit is kept");
        s.apply(Action::CloseSaveConflict);
        assert!(!s.save_conflict);
        // Overwriting: the server answers with the version it wrote, the next save uses it.
        let text = doc(&s).text.clone();
        s.apply(Action::Saved(text, Some("\"v2\"".into())));
        assert!(!s.unsaved());
        assert_eq!(doc(&s).etag.as_deref(), Some("\"v2\""));
    }

    fn doc(s: &State) -> &Doc {
        s.doc.as_ref().expect("a pipeline is open")
    }

    fn set(id: &str, key: &str, value: serde_json::Value) -> Action {
        Action::Edit(vec![Edit::SetStepKey {
            id: id.into(),
            key: key.into(),
            value,
        }])
    }

    fn makespan(s: &State) -> Option<f64> {
        s.dry.shown().map(|d| d.makespan_secs)
    }

    /// A notebook created on disk after the file was opened clears its "does not exist" error
    /// when the files are asked again (focus, run), and the edits in progress stay.
    #[test]
    fn files_asked_again_recheck_the_text_being_edited() {
        let mut s = opened();
        s.apply(Action::Edit(vec![Edit::AddNotebook {
            id: "c".into(),
            path: "c.py".into(),
        }]));
        let missing = |s: &State| {
            doc(s)
                .about(Some("c"), "path")
                .any(|d| d.message.contains("does not exist"))
        };
        assert!(missing(&s), "{:?}", doc(&s).checked.diagnostics);
        let edited = doc(&s).text.clone();
        let bundle = |notebooks: &[&str]| Bundle {
            etags: Default::default(),
            root: "p.toml".into(),
            files: BTreeMap::from([("p.toml".to_string(), TEXT.to_string())]),
            notebooks: notebooks.iter().map(|n| n.to_string()).collect(),
            notebook_diagnostics: Default::default(),
        };
        s.apply(Action::FilesRechecked(bundle(&["a.py", "b.py"])));
        assert!(missing(&s), "nothing new on disk");
        s.apply(Action::FilesRechecked(Bundle {
            root: "other.toml".into(),
            ..bundle(&["a.py", "b.py", "c.py"])
        }));
        assert!(missing(&s), "another file's answer changes nothing");
        s.apply(Action::FilesRechecked(bundle(&["a.py", "b.py", "c.py"])));
        assert!(!missing(&s));
        assert!(!doc(&s).checked.has_errors());
        assert_eq!(doc(&s).text, edited, "the edit stays");
        assert!(s.unsaved());
        assert_eq!(doc(&s).undo.len(), 1);
        assert_eq!(doc(&s).etag.as_deref(), Some("\"v1\""));
    }

    #[test]
    fn a_clicked_diagnostic_selects_its_step_and_field_in_the_table_or_on_the_graph() {
        let mut s = opened();
        s.apply(set("b", "slots", json!(0)));
        let d = doc(&s)
            .about(Some("b"), "slots")
            .next()
            .expect("slots 0 is a problem")
            .clone();
        s.apply(Action::Show(Tab::Source));
        s.apply(Action::Reveal(d.clone()));
        assert_eq!(s.tab, Tab::Pipeline, "the table shows fields");
        assert_eq!(s.selected.as_deref(), Some("b"));
        let first = s.reveal.clone().expect("revealed");
        assert_eq!(
            (first.item.as_deref(), first.key.as_deref()),
            (Some("b"), Some("slots"))
        );
        s.apply(Action::Show(Tab::Graph));
        s.apply(Action::Reveal(d));
        assert_eq!(s.tab, Tab::Graph, "the node's fields open beside the graph");
        let second = s.reveal.clone().expect("revealed");
        assert!(
            second.seq > first.seq,
            "a click again on the same field is new"
        );
        s.apply(Action::Revealed(first.seq));
        assert!(s.reveal.is_some(), "an earlier click's end leaves this one");
        s.apply(Action::Revealed(second.seq));
        assert!(s.reveal.is_none());

        // A problem no field shows (an unknown key) goes to its line in the source when the
        // view does not find it; a syntax error (no step, no key) goes there at once.
        s.apply(Action::SetText(format!("colour = 1\n{TEXT}")));
        let unknown = doc(&s).checked.diagnostics[0].clone();
        assert!(
            unknown.message.contains("unknown key `colour`"),
            "{unknown:?}"
        );
        s.apply(Action::Reveal(unknown));
        assert_eq!(s.tab, Tab::Graph);
        let seq = s.reveal.as_ref().map(|r| r.seq).expect("revealed");
        s.apply(Action::RevealInSource(seq));
        assert_eq!(s.tab, Tab::Source);
        let r = s.reveal.clone().expect("still to show");
        assert!(r.in_source && (r.line, r.col) == (1, 1), "{r:?}");
        s.apply(Action::SetText(format!("{TEXT}\n[pool\n")));
        s.apply(Action::Show(Tab::Pipeline));
        let syntax = doc(&s).checked.diagnostics[0].clone();
        s.apply(Action::Reveal(syntax.clone()));
        assert_eq!(s.tab, Tab::Source);
        let r = s.reveal.clone().expect("revealed");
        assert!(r.in_source && r.line == syntax.line, "{r:?} {syntax:?}");
    }

    #[test]
    fn opening_checks_draws_and_dry_runs_the_pipeline() {
        let s = opened();
        let d = doc(&s);
        assert!(
            d.checked.diagnostics.is_empty(),
            "{:?}",
            d.checked.diagnostics
        );
        let shown = s.shown.as_ref().expect("valid plan shown");
        assert_eq!(shown.drawing.as_ref().map(|d| d.nodes.len()), Some(2));
        let dry = s.dry.shown().expect("dry run");
        // Start-up (180 s by default) plus a then b.
        assert_eq!(dry.makespan_secs, 210.0);
        assert!(!s.unsaved());
    }

    #[test]
    fn a_bad_edit_shows_its_diagnostic_beside_the_field_and_keeps_the_last_drawing() {
        let mut s = opened();
        s.apply(set("b", "slots", json!(3)));
        let d = doc(&s);
        let about: Vec<&str> = d
            .about(Some("b"), "slots")
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(about.len(), 1, "{:?}", d.checked.diagnostics);
        assert!(about[0].contains("the pool has 2"), "{}", about[0]);
        assert!(d.text.contains("id = \"a\"   # first"), "comments kept");
        let shown = s.shown.as_ref().expect("last drawing kept");
        assert!(!shown.current);
        assert!(s.unsaved());
    }

    #[test]
    fn undo_and_redo_walk_the_texts() {
        let mut s = opened();
        s.apply(set("a", "estimate_secs", json!(30)));
        s.apply(Action::Edit(vec![Edit::AddNotebook {
            id: "c".into(),
            path: "a.py".into(),
        }]));
        let after = doc(&s).text.clone();
        s.apply(Action::Undo);
        s.apply(Action::Undo);
        assert_eq!(&*doc(&s).text, TEXT);
        assert_eq!(makespan(&s), Some(210.0));
        s.apply(Action::Undo);
        assert_eq!(&*doc(&s).text, TEXT, "nothing more to undo");
        s.apply(Action::Redo);
        s.apply(Action::Redo);
        assert_eq!(doc(&s).text, after);
        // c (60 s) runs beside the a-b chain (30 s + 20 s) on the two slots.
        assert_eq!(makespan(&s), Some(240.0));
        s.apply(Action::Undo);
        s.apply(set("a", "slots", json!(2)));
        assert!(doc(&s).redo.is_empty(), "a new edit drops the redo stack");
    }

    #[test]
    fn a_refused_edit_changes_nothing_and_says_why() {
        let mut s = opened();
        s.apply(Action::Edit(vec![
            Edit::SetStepKey {
                id: "a".into(),
                key: "slots".into(),
                value: json!(2),
            },
            Edit::RemoveStep { id: "zz".into() },
        ]));
        assert_eq!(&*doc(&s).text, TEXT);
        assert!(doc(&s).undo.is_empty());
        assert_eq!(s.notice.as_deref(), Some("no step `zz`"));
    }

    #[test]
    fn dry_run_follows_the_form_and_reports_fields_that_do_not_read() {
        let mut s = opened();
        s.apply(Action::DryField(DryField::Startup, "0".into()));
        assert_eq!(makespan(&s), Some(30.0));
        let generation = s.dry.generation;
        s.apply(Action::DryField(DryField::Executors, "many".into()));
        assert_eq!(
            s.dry.generation, generation,
            "an unreadable form keeps the last result"
        );
        assert_eq!(
            s.dry.form.options().err(),
            Some(vec![(DryField::Executors, "a whole number".into())])
        );
        // Core's limits, as in the CLI and the API.
        s.apply(Action::DryField(DryField::Executors, "100001".into()));
        s.apply(Action::DryField(DryField::FailureRate, "1.5".into()));
        assert_eq!(
            s.dry.form.options().err(),
            Some(vec![
                (
                    DryField::Executors,
                    "a whole number from 1 to 100000".into()
                ),
                (DryField::FailureRate, "a number from 0 to 1".into()),
            ])
        );
        s.apply(Action::DryField(DryField::Executors, "100000".into()));
        s.apply(Action::DryField(DryField::FailureRate, "".into()));
        assert_eq!(s.dry.shown().map(|d| d.executors), Some(100_000));
        s.apply(Action::DryField(DryField::Executors, "".into()));
        s.apply(Action::DryField(DryField::SweepMax, "3".into()));
        s.apply(Action::Sweep(s.dry.generation - 1));
        assert!(!s.dry.swept, "a stale sweep request is ignored");
        s.apply(Action::Sweep(s.dry.generation));
        let shown = s.dry.shown().expect("a report");
        assert_eq!(shown.sweep.as_ref().map(Vec::len), Some(3));
        // A chain gains nothing from more executors, so the smallest pool is the cheapest.
        assert_eq!(shown.cheapest_within_deadline.map(|p| p.executors), Some(1));
    }

    #[test]
    fn seed_variation_and_failure_rate_reach_the_simulation() {
        let mut s = opened();
        s.apply(Action::DryField(DryField::Variation, "0.8".into()));
        let varied = makespan(&s);
        assert_ne!(varied, Some(210.0));
        s.apply(Action::DryField(DryField::Seed, "7".into()));
        assert_ne!(makespan(&s), varied, "another seed draws other durations");
        s.apply(Action::DryField(DryField::FailureRate, "1".into()));
        assert_eq!(s.dry.shown().map(|d| d.outcome), Some("failed"));
    }

    #[test]
    fn a_calibration_from_history_makes_a_second_report_beside_the_estimates() {
        let mut s = opened();
        s.apply(Action::DryField(DryField::Startup, "0".into()));
        s.apply(Action::DryCalibrate(Some(DurationsFrom::P90)));
        assert!(s.dry.calibrated.is_none(), "not before the server answered");
        // What the server measured: a took 4 s and b 1 s (90th percentiles), on one slot.
        let calibration = |from: DurationsFrom| -> Calibration {
            serde_json::from_value(json!({
                "durations_from": from, "runs": [4, 3], "durations": {"a": 4.0, "b": 1.0},
                "estimated": [], "session_startup_secs": 30.0, "dispatch_latency_secs": 0.5,
                "live_capacity_slots": 1, "real_makespan_secs": 6.0,
                "stats": [{"id": "a", "runs": 2, "p50_secs": 3.0, "p90_secs": 4.0}]
            }))
            .expect("a calibration")
        };
        s.apply(Action::DryCalibrationLoaded(calibration(
            DurationsFrom::P50,
        )));
        assert!(
            s.dry.calibrated.is_none(),
            "another choice's answer is ignored"
        );
        s.apply(Action::DryCalibrationLoaded(calibration(
            DurationsFrom::P90,
        )));
        let calibrated = s.dry.calibrated.as_ref().expect("calibrated report");
        // a, then 0.5 s later b; the start-up typed (0) wins over the measured one.
        assert_eq!(calibrated.makespan_secs, 5.5);
        assert_eq!(
            calibrated.calibration.as_ref().map(|c| c.durations_from),
            Some(DurationsFrom::P90)
        );
        assert_eq!(
            s.dry.estimated.as_ref().map(|d| d.makespan_secs),
            Some(30.0)
        );
        assert_eq!(
            makespan(&s),
            Some(5.5),
            "the page shows the calibrated figures"
        );
        // The file is unchanged: these durations are not written as estimates.
        assert!(!s.unsaved());
        s.apply(Action::DryCalibrate(None));
        assert_eq!(makespan(&s), Some(30.0));
    }

    fn run_detail(id: i64) -> RunDetail {
        serde_json::from_value(json!({
            "run": {"id": id, "pipeline": "p", "file": "p.toml", "status": "succeeded",
                    "started_ms": 0, "ended_ms": 9000, "resumed_from": null, "params": {}, "tasks": {}},
            "events": []
        }))
        .expect("test detail parses")
    }

    #[test]
    fn a_typed_parameter_edit_keeps_the_date_type_and_the_rest_of_the_text() {
        let mut s = opened();
        s.apply(Action::SetText(TEXT.replace(
            "path = \"a.py\"\n",
            "path = \"a.py\"\nparams = { run_date = 2024-06-30, rows = 4_000_000 }\n",
        )));
        let before = doc(&s).text.to_string();
        let rows = doc(&s).params().expect("TOML").of(Some("a")).to_vec();
        assert_eq!(rows[0].value.ty, spool_core::edit::ParamType::Date);
        s.apply(Action::Edit(vec![Edit::SetParam {
            step: Some("a".into()),
            key: "run_date".into(),
            value: spool_core::edit::ParamValue {
                ty: spool_core::edit::ParamType::Date,
                text: "2024-07-01".into(),
            },
        }]));
        let d = doc(&s);
        assert_eq!(&*d.text, before.replace("2024-06-30", "2024-07-01"));
        assert_eq!(
            d.params().expect("TOML").of(Some("a"))[0].value.text,
            "2024-07-01",
            "the rows follow the new text"
        );
        assert!(
            d.checked.diagnostics.is_empty(),
            "{:?}",
            d.checked.diagnostics
        );
    }

    fn found(draft: Draft) -> Action {
        Action::DraftFound {
            file: doc(&opened()).root.clone(),
            draft,
        }
    }

    #[test]
    fn unsaved_edits_are_kept_and_offered_back_after_a_reload() {
        let mut s = opened();
        assert_eq!(s.draft_to_keep(), None, "nothing to keep while saved");
        s.apply(set("a", "estimate_secs", json!(30)));
        let kept = s.draft_to_keep().expect("the edit is kept");
        assert!(kept.text.contains("estimate_secs = 30"));
        assert_eq!(
            kept.etag.as_deref(),
            Some("\"v1\""),
            "with the version it was made on"
        );

        // The page again, the file as the server has it, the draft found in the storage.
        let mut s = opened();
        s.apply(found(kept.clone()));
        assert_eq!(s.draft.as_ref(), Some(&kept), "offered, not applied");
        assert!(!s.unsaved());
        s.apply(Action::RestoreDraft);
        assert_eq!(*doc(&s).text, kept.text);
        assert!(s.unsaved() && s.draft.is_none());
        s.apply(Action::Undo);
        assert_eq!(&*doc(&s).text, TEXT, "restoring is one undo step");

        let mut s = opened();
        s.apply(found(kept.clone()));
        s.apply(Action::DiscardDraft);
        assert!(s.draft.is_none() && !s.unsaved());
        // A draft equal to the file is nothing to offer.
        s.apply(found(Draft {
            text: TEXT.into(),
            etag: None,
            on_server: None,
        }));
        assert!(s.draft.is_none());
        // The server's draft of another file (the user switched before it answered) is not
        // offered for this one.
        s.apply(Action::DraftFound {
            file: "other.toml".into(),
            draft: Draft {
                on_server: Some(1),
                ..kept
            },
        });
        assert!(s.draft.is_none());
    }

    #[test]
    fn the_address_follows_the_view_and_waits_for_what_it_names_to_load() {
        let mut s = State::default();
        assert_eq!(s.route(), None, "nothing is shown yet");
        let graph = Route::Pipeline {
            file: "p.toml".into(),
            tab: Tab::Graph,
        };
        s.apply(Action::Navigate(graph.clone()));
        assert_eq!(s.tab, Tab::Graph);
        assert_eq!(s.route(), None, "the pipeline is still loading");
        s = {
            let mut o = opened();
            o.apply(Action::Navigate(graph.clone()));
            o
        };
        assert_eq!(s.route(), Some(graph));
        s.apply(Action::Show(Tab::DryRun));
        assert_eq!(
            s.route().map(|r| r.to_hash()).as_deref(),
            Some("#/pipelines/p.toml/dry-run")
        );

        // A run and one of its tasks: the address waits for the run.
        let task = Route::Run {
            id: 3,
            task: Some("a".into()),
        };
        s.apply(Action::Navigate(task.clone()));
        assert_eq!((s.tab, s.route()), (Tab::Runs, None));
        s.apply(Action::RunOpened(run_detail(3)));
        assert_eq!(s.route(), Some(task));
        assert_eq!(s.selected.as_deref(), Some("a"), "the task is shown");
        s.apply(Action::Select(None));
        assert_eq!(s.route().map(|r| r.to_hash()).as_deref(), Some("#/runs/3"));
        s.apply(Action::Navigate(Route::Runs));
        assert!(s.run.is_none(), "the list, without a run");
        assert_eq!(s.route(), Some(Route::Runs));

        // A run that does not load leaves the view as it was, and the address free again.
        s.apply(Action::Navigate(Route::Run { id: 99, task: None }));
        s.apply(Action::Failed(Failure::Transport("not found".into())));
        assert_eq!(s.route(), Some(Route::Runs));
        assert!(s.notice.is_some());
    }

    #[test]
    fn measured_durations_of_the_selected_run_become_estimates() {
        let mut s = opened();
        let detail: RunDetail = serde_json::from_value(json!({
            "run": {"id": 3, "pipeline": "p", "file": "p.toml", "status": "succeeded",
                    "started_ms": 0, "ended_ms": 9000, "resumed_from": null, "params": {}, "tasks": {}},
            "events": [
                {"seq": 1, "at_ms": 0, "event": {"type": "task_started", "task": "a", "attempt": 1}},
                {"seq": 2, "at_ms": 4000, "event": {"type": "task_finished", "task": "a", "attempt": 1, "outcome": "succeeded"}}
            ]
        }))
        .expect("test detail parses");
        s.apply(Action::RunOpened(detail));
        s.apply(Action::UseMeasured);
        let d = doc(&s);
        assert!(d.text.contains("estimate_secs = 4.0"), "{}", d.text);
        assert_eq!(d.undo.len(), 1);
        s.apply(Action::UseMeasured);
        assert!(
            s.notice.is_some(),
            "nothing left to change is said, not silently ignored"
        );
    }

    #[test]
    fn a_401_asks_for_the_token_and_signing_in_loads_again() {
        let mut s = opened();
        s.apply(Action::Failed(Failure::Transport(
            "cannot reach the server".into(),
        )));
        assert!(s.sign_in.is_none(), "only a 401 asks for the token");
        assert_eq!(s.notice.as_deref(), Some("cannot reach the server"));
        s.apply(Action::SaveStarted);
        s.apply(Action::Failed(Failure::SignIn.context("not saved")));
        assert!(!s.saving);
        assert_eq!(s.sign_in, Some(SignInForm::default()));
        s.apply(Action::SignInSent);
        assert!(s.sign_in.as_ref().is_some_and(|f| f.sending));
        s.apply(Action::SignInRefused("That token is wrong.".into()));
        let form = s.sign_in.clone().expect("the form stays");
        assert!(!form.sending);
        assert_eq!(form.error.as_deref(), Some("That token is wrong."));
        let sessions = s.sessions;
        s.apply(Action::SignedIn);
        assert!(s.sign_in.is_none());
        assert_eq!(s.sessions, sessions + 1, "the app loads again");
        assert!(s.doc.is_some(), "the open pipeline is kept");
    }

    const SYNAPSE: &str = "../tests/fixtures/import/synapse/daily_sales";

    fn fixture(path: &str) -> String {
        let file = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    fn input(dir: &str, name: &str) -> Input {
        Input {
            name: name.into(),
            text: Rc::from(fixture(&format!("{dir}/input/{name}"))),
        }
    }

    fn preview(s: &State) -> Rc<crate::import::Preview> {
        let form = s.import.as_ref().expect("the dialog is open");
        form.preview
            .clone()
            .unwrap_or_else(|| panic!("no preview; target: {:?}", form.target_error))
    }

    fn paths<'a>(p: &'a crate::import::Preview, order: &[usize]) -> Vec<&'a str> {
        order.iter().map(|&i| p.files[i].path.as_str()).collect()
    }

    #[test]
    fn chosen_synapse_files_give_what_spool_import_gives_and_save_sub_pipelines_first() {
        let mut s = State::default();
        s.apply(Action::ImportOpen);
        s.apply(Action::ImportFiles(Ok(vec![
            input(SYNAPSE, "main.json"),
            input(SYNAPSE, "pl_dimensions.json"),
            input(SYNAPSE, "pl_calendar.json"),
        ])));
        let form = s.import.as_ref().expect("open");
        assert_eq!(form.target, "main.toml", "named after the first file");
        let p = preview(&s);
        assert_eq!(
            p.report.render(),
            fixture(&format!("{SYNAPSE}/expected/report.txt"))
        );
        for f in &p.files {
            assert_eq!(
                *f.text,
                fixture(&format!("{SYNAPSE}/expected/{}", f.path)),
                "{}",
                f.path
            );
        }
        // main runs pl_dimensions, which runs pl_calendar.
        assert_eq!(
            paths(&p, &p.save_order),
            ["pl_calendar.toml", "pl_dimensions.toml", "main.toml"]
        );
        assert_eq!(p.main(), Some("main.toml"));
        assert!(p
            .notebooks_to_provide
            .contains(&"notebooks/nb_gen_calendar.ipynb".to_string()));
    }

    /// Notebooks chosen after the pipeline (Synapse's notebook JSON, or a notebook file named as
    /// the pipeline wants it) are saved first, as new files; the dialog is ready only once no
    /// notebook is missing.
    #[test]
    fn notebooks_chosen_with_an_import_are_saved_first_and_make_it_ready() {
        let dir = "../tests/fixtures/import/synapse/with_notebooks";
        let mut s = State::default();
        s.apply(Action::ImportOpen);
        s.apply(Action::ImportFiles(Ok(vec![input(dir, "main.json")])));
        let p = preview(&s);
        assert!(!p.ready(), "two notebooks are missing");
        assert_eq!(p.notebooks_to_provide.len(), 2);
        // Chosen on their own, the notebooks join the input instead of replacing it.
        s.apply(Action::ImportFiles(Ok(vec![
            input(dir, "notebook/nb_load_sales.json"),
            Input {
                name: "nb_report.py".into(),
                text: Rc::from("print('report')\n"),
            },
        ])));
        let form = s.import.as_ref().expect("open");
        assert_eq!(form.main.name, "main.json");
        let p = preview(&s);
        // The pipeline wants `nb_report.ipynb`: a `.py` of that name is not it.
        assert_eq!(p.notebooks_to_provide, ["notebooks/nb_report.ipynb"]);
        assert!(p
            .report
            .render()
            .contains("nb_report.py: no imported pipeline runs this notebook"));
        assert!(!p.ready());
        s.apply(Action::ImportFiles(Ok(vec![
            input(dir, "notebook/nb_load_sales.json"),
            Input {
                name: "nb_report.ipynb".into(),
                text: Rc::from(
                    r#"{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#,
                ),
            },
        ])));
        let p = preview(&s);
        assert!(p.ready(), "{}", p.report.render());
        assert_eq!(
            paths(&p, &p.save_order),
            [
                "notebooks/nb_load_sales.ipynb",
                "notebooks/nb_report.ipynb",
                "main.toml"
            ]
        );
        assert!(p.files.iter().filter(|f| f.notebook).count() == 2);
    }

    #[test]
    fn genie_writes_one_file_per_pipeline_into_the_chosen_folder() {
        let dir = "../tests/fixtures/import/genie/two_pipelines";
        let mut s = State::default();
        s.apply(Action::ImportOpen);
        s.apply(Action::ImportTarget("mine.toml".into()));
        s.apply(Action::ImportKind(ImportKind::Genie));
        s.apply(Action::ImportFiles(Ok(vec![input(dir, "metadata.csv")])));
        assert_eq!(
            s.import.as_ref().map(|f| f.target.as_str()),
            Some(""),
            "a typed file name is no folder: the pipelines folder itself"
        );
        s.apply(Action::ImportTarget("imported/genie".into()));
        let p = preview(&s);
        assert_eq!(
            paths(&p, &p.save_order),
            ["imported/genie/dims.toml", "imported/genie/daily_load.toml"],
            "daily_load runs dims"
        );
        assert_eq!(
            *p.files[1].text,
            fixture(&format!("{dir}/expected/dims.toml"))
        );
        assert!(p
            .notebooks_to_provide
            .iter()
            .all(|n| n.starts_with("imported/genie/notebooks/")));
        s.apply(Action::ImportTarget("../outside".into()));
        let form = s.import.as_ref().expect("open");
        assert!(form.target_error.is_some());
        assert!(form.preview.is_none(), "nothing to save outside the folder");
    }

    #[test]
    fn a_pasted_dag_gets_a_free_name_and_finds_the_folders_notebooks() {
        let mut s = opened();
        s.apply(Action::Listed(
            ["p.toml", "imported.toml"]
                .map(|f| PipelineSummary {
                    file: f.into(),
                    name: f.into(),
                    notebooks: 0,
                    errors: 0,
                    schedule: None,
                })
                .to_vec(),
        ));
        s.apply(Action::ImportOpen);
        s.apply(Action::ImportKind(ImportKind::RunMultiple));
        // The open pipeline's bundle says the folder holds notebooks/a.py.
        s.apply(Action::Opened(Bundle {
            etags: Default::default(),
            root: "p.toml".into(),
            files: BTreeMap::from([("p.toml".to_string(), TEXT.to_string())]),
            notebooks: vec!["notebooks/a.py".into()],
            notebook_diagnostics: Default::default(),
        }));
        let dag = json!({"activities": [
            {"name": "load", "path": "a", "args": {}, "dependencies": []},
            {"name": "report", "path": "b", "args": {}, "dependencies": ["load"]}
        ]});
        s.apply(Action::ImportText(dag.to_string()));
        let form = s.import.as_ref().expect("open");
        assert_eq!(form.target, "imported_2.toml", "imported.toml is taken");
        let p = preview(&s);
        assert!(!p.report.has_errors(), "{}", p.report.render());
        let text = &p.files[0].text;
        assert!(text.contains(r#"path = "notebooks/a.py""#), "{text}");
        assert!(text.contains(r#"depends_on = ["load"]"#), "{text}");
        assert_eq!(p.notebooks_to_provide, ["notebooks/b.ipynb"]);
        assert!(!p.files[0].replaces);

        s.apply(Action::ImportTarget("imported.toml".into()));
        assert!(preview(&s).files[0].replaces, "saving would overwrite it");
        s.apply(Action::ImportTarget("imported.txt".into()));
        assert!(s.import.as_ref().is_some_and(|f| f.target_error.is_some()));
        s.apply(Action::ImportText("  ".into()));
        s.apply(Action::ImportTarget("x.toml".into()));
        let form = s.import.as_ref().expect("open");
        assert!(form.preview.is_none(), "emptied: nothing to convert");
    }

    #[test]
    fn a_refused_save_shows_the_servers_diagnostics_and_what_was_written() {
        let mut s = State::default();
        s.apply(Action::ImportOpen);
        s.apply(Action::ImportSaveStarted);
        assert!(s.import.as_ref().is_some_and(|f| f.saving));
        let refused = Failure::Refused {
            message: "the pipeline has errors".into(),
            diagnostics: vec![crate::wire::WireDiagnostic {
                file: "main.toml".into(),
                line: 7,
                col: 8,
                message: "notebook file `notebooks/x.ipynb` does not exist".into(),
            }],
        };
        s.apply(Action::ImportSaveFailed {
            file: "main.toml".into(),
            failure: refused,
            written: vec!["sub.toml".into()],
        });
        let form = s.import.as_ref().expect("the dialog stays open");
        assert!(!form.saving);
        let problem = form.problem.as_ref().expect("a problem is shown");
        assert!(problem.message.contains("`main.toml` was not saved"));
        assert_eq!(problem.diagnostics.len(), 1);
        assert_eq!(problem.written, ["sub.toml"]);

        s.apply(Action::ImportSaveFailed {
            file: "main.toml".into(),
            failure: Failure::SignIn,
            written: Vec::new(),
        });
        assert!(s.sign_in.is_some(), "a 401 while saving asks for the token");
        s.apply(Action::ImportFiles(Err(
            "`big.json` is over the 10 MiB limit".into(),
        )));
        assert!(s
            .import
            .as_ref()
            .and_then(|f| f.problem.as_ref())
            .is_some_and(|p| p.message.contains("big.json")));
        s.apply(Action::ImportSaved);
        assert!(s.import.is_none(), "saved: the dialog closes");
    }
}
