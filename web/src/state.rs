//! The app's state and its reducer: every change is an [`Action`], and [`State::apply`] is pure
//! (no browser calls), so it is tested natively. The pipeline's TOML text is the source of
//! truth: an edit goes through `spool_core::edit::apply` (which keeps the user's comments), and
//! everything else — diagnostics, plan, drawing, dry run — is derived from the new text by
//! `spool-core`. Undo and redo are stacks of texts.

use crate::edits::measured_estimates;
use crate::run::RunView;
use crate::wire::{Bundle, PipelineSummary, RunDetail, RunSummary, StoredEvent};
use spool_core::dag::{load_text, Plan};
use spool_core::diag::{has_errors, Diagnostic};
use spool_core::edit::{apply, Edit};
use spool_core::layout::{draw_plan, LayoutOptions, PlanDrawing};
use spool_core::model::PipelineFile;
use spool_core::parse::parse_pipeline;
use spool_core::sched::Policy;
use spool_core::sim::{
    baseline, cheapest_within, simulate, sweep, BaselineReport, Durations, PoolSpec, SimReport,
    SimSetup, SweepPoint, MAX_SWEEP_EXECUTORS,
};
use spool_core::source::MemorySources;
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
    pub fn of(root: &str, text: &str, sources: &MemorySources) -> Self {
        // The parse diagnostics are part of `load_text`'s, so only the file is kept here.
        let (file, _) = parse_pipeline(root, text);
        let loaded = load_text(root, text, sources);
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
    pub text: Rc<str>,
    /// The text as the server has it.
    pub saved: Rc<str>,
    pub checked: Rc<Checked>,
    pub undo: Vec<Rc<str>>,
    pub redo: Vec<Rc<str>>,
}

impl Doc {
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

/// The last valid plan, drawn. It stays on screen, marked stale, while the text has errors.
#[derive(Debug, Clone)]
pub struct Shown {
    pub plan: Rc<Plan>,
    /// `None` when the plan has more than [`MAX_DRAWN_NODES`] nodes.
    pub drawing: Option<Rc<PlanDrawing>>,
    pub current: bool,
}

/// The dry run form as typed; parsed into a [`DryRunInput`] on every change.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRunForm {
    /// Empty: the pipeline's own pool.
    pub executors: String,
    pub cores: String,
    pub startup_secs: String,
    pub price: String,
    /// Empty: no deadline (the cheapest pool overall is marked).
    pub deadline_mins: String,
    pub sweep_max: String,
    pub policy: Policy,
}

impl Default for DryRunForm {
    fn default() -> Self {
        DryRunForm {
            executors: String::new(),
            cores: String::new(),
            startup_secs: PoolSpec::DEFAULT_NODE_STARTUP_SECS.to_string(),
            price: PoolSpec::DEFAULT_PRICE_PER_NODE_HOUR.to_string(),
            deadline_mins: String::new(),
            sweep_max: "32".into(),
            policy: Policy::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryField {
    Executors,
    Cores,
    Startup,
    Price,
    Deadline,
    SweepMax,
}

/// The dry run settings, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRunInput {
    pub executors: Option<u32>,
    pub cores: Option<u32>,
    pub startup_secs: f64,
    pub price: f64,
    pub deadline_secs: Option<f64>,
    pub sweep_max: u32,
    pub policy: Policy,
}

impl DryRunForm {
    pub fn get(&self, f: DryField) -> &str {
        match f {
            DryField::Executors => &self.executors,
            DryField::Cores => &self.cores,
            DryField::Startup => &self.startup_secs,
            DryField::Price => &self.price,
            DryField::Deadline => &self.deadline_mins,
            DryField::SweepMax => &self.sweep_max,
        }
    }

    fn set(&mut self, f: DryField, v: String) {
        *match f {
            DryField::Executors => &mut self.executors,
            DryField::Cores => &mut self.cores,
            DryField::Startup => &mut self.startup_secs,
            DryField::Price => &mut self.price,
            DryField::Deadline => &mut self.deadline_mins,
            DryField::SweepMax => &mut self.sweep_max,
        } = v;
    }

    /// The typed settings, or a message for each field that does not read.
    pub fn parse(&self) -> Result<DryRunInput, Vec<(DryField, String)>> {
        let mut errors = Vec::new();
        let mut int = |f: DryField, max: u32| -> Option<u32> {
            let s = self.get(f).trim();
            if s.is_empty() {
                return None;
            }
            match s.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Some(n),
                _ => {
                    errors.push((f, format!("a whole number from 1 to {max}")));
                    None
                }
            }
        };
        let executors = int(DryField::Executors, 4096);
        let cores = int(DryField::Cores, 256);
        let sweep_max = int(DryField::SweepMax, MAX_SWEEP_EXECUTORS);
        let mut num = |f: DryField, max: f64| -> Option<f64> {
            let s = self.get(f).trim();
            if s.is_empty() {
                return None;
            }
            match s.parse::<f64>() {
                Ok(x) if x.is_finite() && (0.0..=max).contains(&x) => Some(x),
                _ => {
                    errors.push((f, format!("a number from 0 to {max}")));
                    None
                }
            }
        };
        let startup = num(DryField::Startup, 86_400.0);
        let price = num(DryField::Price, 1e6);
        let deadline = num(DryField::Deadline, 1e6);
        if errors.is_empty() {
            Ok(DryRunInput {
                executors,
                cores,
                startup_secs: startup.unwrap_or(0.0),
                price: price.unwrap_or(0.0),
                deadline_secs: deadline.map(|m| m * 60.0),
                sweep_max: sweep_max.unwrap_or(32),
                policy: self.policy,
            })
        } else {
            Err(errors)
        }
    }
}

impl DryRunInput {
    pub fn setup(&self, plan: &Plan) -> SimSetup {
        let mut pool = PoolSpec::of_plan(plan);
        pool.executors = self.executors.unwrap_or(pool.executors);
        pool.executor_cores = self.cores.unwrap_or(pool.executor_cores);
        pool.node_startup_secs = self.startup_secs;
        pool.price_per_node_hour = self.price;
        SimSetup {
            pool,
            durations: Durations::default(),
            policy: self.policy,
        }
    }
}

/// A dry run of the shown plan.
#[derive(Debug)]
pub struct DryRun {
    pub setup: SimSetup,
    pub report: SimReport,
    pub baseline: BaselineReport,
}

impl DryRun {
    pub fn of(plan: &Plan, input: &DryRunInput) -> Self {
        let setup = input.setup(plan);
        DryRun {
            report: simulate(plan, &setup),
            baseline: baseline(plan, &setup, BaselineReport::DEFAULT_MIN_NODES),
            setup,
        }
    }
}

/// The pool-size sweep, computed a moment after the dry run settles (it is many simulations).
#[derive(Debug)]
pub struct SweepResult {
    pub points: Vec<SweepPoint>,
    pub deadline_secs: Option<f64>,
    /// The cheapest pool finishing within the deadline (within any time when there is none).
    pub cheapest: Option<SweepPoint>,
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
    pub dry_form: DryRunForm,
    pub dry: Option<Rc<DryRun>>,
    /// Changes whenever `dry` is recomputed; a sweep is only kept for the current one.
    pub dry_generation: u64,
    pub sweep: Option<Rc<SweepResult>>,
    pub runs: Vec<RunSummary>,
    pub run: Option<Rc<RunView>>,
    pub overrides: String,
}

#[derive(Debug, Clone)]
pub enum Action {
    Listed(Vec<PipelineSummary>),
    Opened(Bundle),
    /// Applied in order as one undo step; all or nothing.
    Edit(Vec<Edit>),
    /// The whole text, from the source view.
    SetText(String),
    Undo,
    Redo,
    SaveStarted,
    /// The server stored this text.
    Saved(Rc<str>),
    Notice(String),
    DismissNotice,
    Select(Option<String>),
    Show(Tab),
    DryField(DryField, String),
    DryPolicy(Policy),
    /// Compute the sweep for this dry run generation (ignored when stale).
    Sweep(u64),
    RunsListed(Vec<RunSummary>),
    RunOpened(RunDetail),
    RunEvent {
        run: i64,
        event: StoredEvent,
    },
    Overrides(String),
    /// Write the selected run's measured durations into the estimates.
    UseMeasured,
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
            Action::Opened(bundle) => self.open(bundle),
            Action::Edit(edits) => self.edit(&edits),
            Action::SetText(text) => self.change_text(Rc::from(text)),
            Action::Undo => self.undo_redo(true),
            Action::Redo => self.undo_redo(false),
            Action::SaveStarted => self.saving = true,
            Action::Saved(text) => {
                self.saving = false;
                if let Some(doc) = &mut self.doc {
                    doc.saved = text;
                }
            }
            Action::Notice(message) => {
                self.saving = false;
                self.notice = Some(message);
            }
            Action::DismissNotice => self.notice = None,
            Action::Select(id) => self.selected = id,
            Action::Show(tab) => self.tab = tab,
            Action::DryField(field, value) => {
                self.dry_form.set(field, value);
                self.recompute_dry();
            }
            Action::DryPolicy(policy) => {
                self.dry_form.policy = policy;
                self.recompute_dry();
            }
            Action::Sweep(generation) => self.compute_sweep(generation),
            Action::RunsListed(runs) => self.runs = runs,
            Action::RunOpened(detail) => {
                let mut view = RunView::new(&detail.run);
                for e in &detail.events {
                    view.apply(e);
                }
                self.run = Some(Rc::new(view));
            }
            Action::RunEvent { run, event } => {
                if let Some(view) = self.run.as_mut().filter(|v| v.id == run) {
                    Rc::make_mut(view).apply(&event);
                }
            }
            Action::Overrides(text) => self.overrides = text,
            Action::UseMeasured => self.use_measured(),
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
        let checked = Rc::new(Checked::of(&bundle.root, &text, &sources));
        self.doc = Some(Doc {
            root: bundle.root,
            sources: Rc::new(sources),
            saved: text.clone(),
            text,
            checked,
            undo: Vec::new(),
            redo: Vec::new(),
        });
        self.shown = None;
        self.selected = None;
        self.run = None;
        self.dry_form = DryRunForm::default();
        self.refresh_shown();
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
        doc.checked = Rc::new(Checked::of(&doc.root, &doc.text, &doc.sources));
        self.notice = None;
        self.refresh_shown();
    }

    /// Redraws when the text gives a valid plan; otherwise keeps the last one, marked stale.
    fn refresh_shown(&mut self) {
        let Some(doc) = &self.doc else { return };
        match &doc.checked.plan {
            Some(plan) => {
                let nodes = plan.tasks.len() + plan.inactive.len();
                let drawing = (nodes <= MAX_DRAWN_NODES)
                    .then(|| Rc::new(draw_plan(plan, &LayoutOptions::default())));
                self.shown = Some(Shown {
                    plan: plan.clone(),
                    drawing,
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
        let (Some(shown), Ok(input)) = (&self.shown, self.dry_form.parse()) else {
            return;
        };
        self.dry = Some(Rc::new(DryRun::of(&shown.plan, &input)));
        self.dry_generation += 1;
        self.sweep = None;
    }

    fn compute_sweep(&mut self, generation: u64) {
        if generation != self.dry_generation || self.sweep.is_some() {
            return;
        }
        let (Some(shown), Some(dry), Ok(input)) = (&self.shown, &self.dry, self.dry_form.parse())
        else {
            return;
        };
        let points = sweep(&shown.plan, &dry.setup, input.sweep_max);
        let cheapest = cheapest_within(&points, input.deadline_secs.unwrap_or(f64::INFINITY));
        self.sweep = Some(Rc::new(SweepResult {
            points,
            deadline_secs: input.deadline_secs,
            cheapest,
        }));
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
                run.id
            ));
        } else {
            self.edit(&edits);
        }
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

    fn opened() -> State {
        let mut s = State::default();
        s.apply(Action::Opened(Bundle {
            root: "p.toml".into(),
            files: BTreeMap::from([("p.toml".to_string(), TEXT.to_string())]),
            notebooks: vec!["a.py".into(), "b.py".into()],
        }));
        s
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
        let dry = s.dry.as_ref().expect("dry run");
        // Start-up (180 s by default) plus a then b.
        assert_eq!(dry.report.makespan_secs, 210.0);
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
        assert_eq!(s.dry.as_ref().map(|d| d.report.makespan_secs), Some(210.0));
        s.apply(Action::Undo);
        assert_eq!(&*doc(&s).text, TEXT, "nothing more to undo");
        s.apply(Action::Redo);
        s.apply(Action::Redo);
        assert_eq!(doc(&s).text, after);
        // c (60 s) runs beside the a-b chain (30 s + 20 s) on the two slots.
        assert_eq!(s.dry.as_ref().map(|d| d.report.makespan_secs), Some(240.0));
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
        assert_eq!(s.dry.as_ref().map(|d| d.report.makespan_secs), Some(30.0));
        let generation = s.dry_generation;
        s.apply(Action::DryField(DryField::Executors, "many".into()));
        assert_eq!(
            s.dry_generation, generation,
            "an unreadable form keeps the last result"
        );
        assert_eq!(
            s.dry_form.parse().err(),
            Some(vec![(
                DryField::Executors,
                "a whole number from 1 to 4096".into()
            )])
        );
        s.apply(Action::DryField(DryField::Executors, "".into()));
        s.apply(Action::DryField(DryField::SweepMax, "3".into()));
        s.apply(Action::Sweep(s.dry_generation - 1));
        assert!(s.sweep.is_none(), "a stale sweep request is ignored");
        s.apply(Action::Sweep(s.dry_generation));
        let sweep = s.sweep.as_ref().expect("sweep computed");
        assert_eq!(sweep.points.len(), 3);
        // A chain gains nothing from more executors, so the smallest pool is the cheapest.
        assert_eq!(sweep.cheapest.map(|p| p.executors), Some(1));
    }

    #[test]
    fn measured_durations_of_the_selected_run_become_estimates() {
        let mut s = opened();
        let detail: RunDetail = serde_json::from_value(json!({
            "run": {"id": 3, "pipeline": "p", "file": "p.toml", "status": "succeeded",
                    "started_ms": 0, "ended_ms": 9000, "resumed_from": null, "tasks": {}},
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
}
