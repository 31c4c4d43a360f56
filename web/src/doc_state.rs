//! The open file's slice of the app state: its text (the source of truth: an edit goes through
//! `spool_core::edit::apply`, which keeps the user's comments), what `spool-core` says about
//! it, the last valid plan drawn, undo and redo (stacks of texts), saving, drafts, a clicked
//! diagnostic and the collapsed sub-pipelines. The drawing is memoised on its plan and
//! collapsed set: an edit that leaves the plan equal draws nothing again.
//!
//! The reducer does not check the text (parse, load, plan: about 150 ms at 10k notebooks in
//! scripts/bench-web.sh): it asks for a [`CheckJob`], which the App runs after the render,
//! and keeps its result only if it is of the text and files open then.

use crate::memo::{same, ByValue, Memo};
use crate::wire::Bundle;
use spool_core::dag::{check_notebooks, load_text, Plan};
use spool_core::diag::{has_errors, Diagnostic};
use spool_core::edit::{apply, read_params, Edit, FileParams};
use spool_core::layout::{draw_plan_collapsed, LayoutOptions, PlanDrawing};
use spool_core::model::PipelineFile;
use spool_core::parse::parse_pipeline;
use spool_core::source::MemorySources;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Undo steps kept.
pub const MAX_UNDO: usize = 200;
/// Larger plans are not drawn (the editor, dry run and runs still work).
pub const MAX_DRAWN_NODES: usize = 2000;
/// Larger drafts are not kept (the page's storage holds a few megabytes).
pub const MAX_DRAFT: usize = 2 * 1024 * 1024;

/// Everything `spool-core` says about one version of the text.
#[derive(Debug)]
pub struct Checked {
    /// The root file's own entries, for the editor table (`None` on a TOML syntax error).
    pub file: Option<Rc<PipelineFile>>,
    pub diagnostics: Vec<Diagnostic>,
    pub plan: Option<Rc<Plan>>,
}

impl Checked {
    /// Before the first check of a file: no entries, no diagnostics, no plan.
    fn pending() -> Self {
        Checked {
            file: None,
            diagnostics: Vec::new(),
            plan: None,
        }
    }

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
    /// What `spool-core` says about `checked_of`'s text and files: the last check, which is
    /// of an older text while the check of this one is pending ([`Doc::check_job`]).
    pub checked: Rc<Checked>,
    checked_of: Option<CheckJob>,
    pub undo: Vec<Rc<str>>,
    pub redo: Vec<Rc<str>>,
    /// The parameters of `text` with their TOML types, read when the editor first asks.
    written_params: Rc<std::cell::OnceCell<Option<FileParams>>>,
}

/// The parameters are read from the text compared here; a check is never changed once made,
/// so the same `Rc` is the same check.
impl PartialEq for Doc {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.checked, &other.checked)
            && self.root == other.root
            && self.text == other.text
            && self.saved == other.saved
            && self.etag == other.etag
            && (Rc::ptr_eq(&self.sources, &other.sources) || self.sources.0 == other.sources.0)
            && self.notebooks == other.notebooks
            && self.undo == other.undo
            && self.redo == other.redo
    }
}

impl Doc {
    /// The check of the text and files as they are now.
    fn inputs(&self) -> CheckJob {
        CheckJob {
            root: self.root.clone(),
            text: self.text.clone(),
            sources: self.sources.clone(),
            notebooks: self.notebooks.clone(),
        }
    }

    /// The check to run: `None` when `checked` is of the text and files as they are.
    pub fn check_job(&self) -> Option<CheckJob> {
        let now = self.inputs();
        (self.checked_of.as_ref() != Some(&now)).then_some(now)
    }

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

/// A check of a text against the files it reads: run by the App, outside the reducer.
#[derive(Debug, Clone)]
pub struct CheckJob {
    root: String,
    text: Rc<str>,
    sources: Rc<MemorySources>,
    notebooks: Rc<BTreeMap<String, Vec<Diagnostic>>>,
}

/// A text and files are never changed once made (an edit makes new ones): the same `Rc`s are
/// the same inputs.
impl PartialEq for CheckJob {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root
            && Rc::ptr_eq(&self.text, &other.text)
            && Rc::ptr_eq(&self.sources, &other.sources)
            && Rc::ptr_eq(&self.notebooks, &other.notebooks)
    }
}

impl CheckJob {
    pub fn run(self) -> DocAction {
        let checked = Checked::of(&self.root, &self.text, &self.sources, &self.notebooks);
        DocAction::Checked(self, Rc::new(checked))
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

/// A plan and its drawing are never changed once built: the same `Rc` is the same one.
impl PartialEq for Shown {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.plan, &other.plan)
            && same(self.drawing.as_ref(), other.drawing.as_ref())
            && self.current == other.current
    }
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

/// What a drawing is drawn from.
#[derive(Debug, Clone, PartialEq)]
struct LayoutKey {
    plan: ByValue<Plan>,
    collapsed: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DocState {
    pub doc: Option<Doc>,
    pub shown: Option<Shown>,
    pub saving: bool,
    /// A save was refused because the file changed on the server: the user chooses.
    pub save_conflict: bool,
    /// Unsaved edits of the open file from an earlier visit, offered back.
    pub draft: Option<Draft>,
    /// The field of a diagnostic the user clicked, for the view to bring into sight.
    pub reveal: Option<Reveal>,
    /// Counts clicks on diagnostics.
    pub reveals: u64,
    /// The sub-pipelines the graph draws as one node each (by id), until another file opens.
    pub collapsed: BTreeSet<String>,
    drawings: Memo<LayoutKey, Option<Rc<PlanDrawing>>>,
}

/// The memoised drawing is `shown`'s, which is compared.
impl PartialEq for DocState {
    fn eq(&self, other: &Self) -> bool {
        self.doc == other.doc
            && self.shown == other.shown
            && self.saving == other.saving
            && self.save_conflict == other.save_conflict
            && self.draft == other.draft
            && self.reveal == other.reveal
            && self.reveals == other.reveals
            && self.collapsed == other.collapsed
    }
}

#[derive(Debug, Clone)]
pub enum DocAction {
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
    /// Draws these sub-pipelines as one node each (`true`) or with their steps (`false`).
    Collapse(Vec<String>, bool),
    /// The page's storage, or the server, holds unsaved edits of `file` (offered if it is
    /// still the open one).
    DraftFound {
        file: String,
        draft: Draft,
    },
    RestoreDraft,
    DiscardDraft,
    /// The open pipeline's files as the server has them now (asked again when the window
    /// regains focus and before a run): notebooks created or deleted on disk since it was
    /// opened are checked again; the text being edited is kept.
    FilesRechecked(Bundle),
    /// The view showed that click's field (or gave up looking).
    Revealed(u64),
    /// A [`CheckJob`]'s result: kept if the text and files are still the ones it checked.
    Checked(CheckJob, Rc<Checked>),
}

/// What an action on the open file means for the page's notice.
#[derive(Debug, PartialEq)]
pub enum Said {
    Nothing,
    /// The text changed: an earlier notice is about an older text.
    TextChanged,
    /// The edit was refused, for this reason.
    Refused(String),
}

/// The files of a bundle other than its root, with the notebooks it lists (their texts are
/// not sent: only that they exist).
fn bundle_sources(bundle: &mut Bundle) -> MemorySources {
    let mut files = std::mem::take(&mut bundle.files);
    files.remove(&bundle.root);
    let mut sources = MemorySources(files);
    for nb in std::mem::take(&mut bundle.notebooks) {
        sources.0.entry(nb).or_default();
    }
    sources
}

impl DocState {
    pub fn reduce(&mut self, action: DocAction) -> Said {
        match action {
            DocAction::Edit(edits) => return self.edit(&edits),
            DocAction::SetText(text) => return self.change_text(Rc::from(text)),
            DocAction::Undo => return self.undo_redo(true),
            DocAction::Redo => return self.undo_redo(false),
            DocAction::SaveStarted => self.saving = true,
            DocAction::Saved(text, etag) => {
                self.saving = false;
                if let Some(doc) = &mut self.doc {
                    doc.saved = text;
                    doc.etag = etag;
                }
            }
            DocAction::CloseSaveConflict => self.save_conflict = false,
            DocAction::Collapse(ids, collapsed) => {
                for id in ids {
                    if collapsed {
                        self.collapsed.insert(id);
                    } else {
                        self.collapsed.remove(&id);
                    }
                }
                self.refresh_shown();
            }
            DocAction::DraftFound { file, draft } => {
                if self
                    .doc
                    .as_ref()
                    .is_some_and(|d| d.root == file && *d.text != *draft.text)
                {
                    self.draft = Some(draft);
                }
            }
            DocAction::RestoreDraft => {
                if let Some(draft) = self.draft.take() {
                    return self.change_text(Rc::from(draft.text));
                }
            }
            DocAction::DiscardDraft => self.draft = None,
            DocAction::FilesRechecked(bundle) => self.files_rechecked(bundle),
            DocAction::Revealed(seq) => {
                if self.reveal.as_ref().is_some_and(|r| r.seq == seq) {
                    self.reveal = None;
                }
            }
            DocAction::Checked(job, checked) => {
                let Some(doc) = &mut self.doc else {
                    return Said::Nothing;
                };
                if doc.check_job().as_ref() == Some(&job) {
                    doc.checked = checked;
                    doc.checked_of = Some(job);
                    self.refresh_shown();
                }
            }
        }
        Said::Nothing
    }

    /// Opens a bundle's root file (the collapsed set, the draft offered and the drawing start
    /// again); `Err` when the server sent no text for it.
    pub fn open(&mut self, mut bundle: Bundle) -> Result<(), String> {
        let Some(text) = bundle.files.remove(&bundle.root) else {
            return Err(format!("the server sent no text for `{}`", bundle.root));
        };
        let sources = bundle_sources(&mut bundle);
        let text: Rc<str> = Rc::from(text);
        let notebooks = Rc::new(bundle.notebook_diagnostics);
        let etag = bundle.etags.get(&bundle.root).cloned();
        self.doc = Some(Doc {
            etag,
            root: bundle.root,
            sources: Rc::new(sources),
            notebooks,
            saved: text.clone(),
            text,
            checked: Rc::new(Checked::pending()),
            checked_of: None,
            undo: Vec::new(),
            redo: Vec::new(),
            written_params: Rc::default(),
        });
        self.shown = None;
        self.draft = None;
        self.collapsed.clear();
        self.drawings = Memo::default();
        Ok(())
    }

    /// The server's files replace the ones the open text is checked against, when they
    /// changed; the text, its undo and its version stay.
    fn files_rechecked(&mut self, mut bundle: Bundle) {
        let Some(doc) = &mut self.doc else { return };
        if bundle.root != doc.root {
            return;
        }
        let sources = bundle_sources(&mut bundle);
        if sources.0 == doc.sources.0 && bundle.notebook_diagnostics == *doc.notebooks {
            return;
        }
        doc.sources = Rc::new(sources);
        doc.notebooks = Rc::new(bundle.notebook_diagnostics);
    }

    /// A diagnostic of the root file points at its step; one of a sub-pipeline's file at the
    /// `[[pipeline]]` entry that includes that file. Returns what to bring into sight.
    pub fn reveal(&mut self, d: &Diagnostic) -> Option<&Reveal> {
        let doc = self.doc.as_ref()?;
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
        self.reveals += 1;
        self.reveal = Some(Reveal {
            item,
            key,
            seq: self.reveals,
            line,
            col,
            in_source,
        });
        self.reveal.as_ref()
    }

    /// The view has no field for click `seq`: the source shows its line. `false` when that
    /// click is no longer the one to show, or already shown there.
    pub fn reveal_in_source(&mut self, seq: u64) -> bool {
        match self
            .reveal
            .as_mut()
            .filter(|r| r.seq == seq && !r.in_source)
        {
            Some(r) => {
                r.in_source = true;
                true
            }
            None => false,
        }
    }

    fn edit(&mut self, edits: &[Edit]) -> Said {
        let Some(doc) = &self.doc else {
            return Said::Nothing;
        };
        let mut text = doc.text.to_string();
        for e in edits {
            match apply(&text, e) {
                Ok(t) => text = t,
                Err(why) => return Said::Refused(why),
            }
        }
        self.change_text(Rc::from(text))
    }

    /// A new text from the user: one undo step.
    fn change_text(&mut self, text: Rc<str>) -> Said {
        let Some(doc) = &mut self.doc else {
            return Said::Nothing;
        };
        if *doc.text == *text {
            return Said::Nothing;
        }
        let old = std::mem::replace(&mut doc.text, text);
        doc.undo.push(old);
        if doc.undo.len() > MAX_UNDO {
            doc.undo.remove(0);
        }
        doc.redo.clear();
        self.recheck()
    }

    fn undo_redo(&mut self, undo: bool) -> Said {
        let Some(doc) = &mut self.doc else {
            return Said::Nothing;
        };
        let (from, to) = if undo {
            (&mut doc.undo, &mut doc.redo)
        } else {
            (&mut doc.redo, &mut doc.undo)
        };
        let Some(text) = from.pop() else {
            return Said::Nothing;
        };
        to.push(std::mem::replace(&mut doc.text, text));
        self.recheck()
    }

    /// The text changed: its parameters are read again, and its check is asked for.
    fn recheck(&mut self) -> Said {
        let Some(doc) = &mut self.doc else {
            return Said::Nothing;
        };
        doc.written_params = Rc::default();
        Said::TextChanged
    }

    /// Redraws when the text gives a valid plan (unless it equals the one drawn, with the same
    /// sub-pipelines collapsed); otherwise keeps the last one, marked stale.
    fn refresh_shown(&mut self) {
        let Some(doc) = &self.doc else { return };
        match &doc.checked.plan {
            Some(plan) => {
                // After an edit, nodes stay where they were unless moving them removes
                // crossings (`shown` is cleared when another file opens).
                let earlier = self.shown.as_ref().and_then(|s| s.drawing.clone());
                let key = LayoutKey {
                    plan: ByValue(plan.clone()),
                    collapsed: self.collapsed.clone(),
                };
                let drawing = self.drawings.get_or_build(key, |k| {
                    drawing_of(&k.plan.0, earlier.as_deref(), &k.collapsed)
                });
                self.shown = Some(Shown {
                    plan: plan.clone(),
                    drawing: drawing.clone(),
                    current: true,
                });
            }
            None => {
                if let Some(shown) = &mut self.shown {
                    shown.current = false;
                }
            }
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

    /// The open file's name in the pipelines folder.
    pub fn file(&self) -> Option<&str> {
        self.doc.as_ref().map(|d| d.root.as_str())
    }

    /// Whether the text differs from the server's copy.
    pub fn unsaved(&self) -> bool {
        self.doc.as_ref().is_some_and(|d| d.text != d.saved)
    }
}
