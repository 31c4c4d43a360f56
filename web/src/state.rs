//! The app's state, one slice per view, each with its own actions and `reduce`: the shell
//! ([`Shell`]: pipelines, tab, picked node, notice, sign-in, import, address), the open file
//! ([`DocState`]), the dry run ([`DryRunState`]) and the runs ([`RunsState`]). [`Action`] wraps
//! their actions, plus the few that change several slices (opening a file resets the picked
//! node, the run and the dry run). The reducer is pure (no browser calls) and does no heavy
//! work: the text's check and the simulations run in the App from the [`CheckJob`] and
//! [`DryJob`] the state asks for, and come back as actions (`the_reducer_checks_no_text` and
//! `the_reducer_runs_no_simulation` below).

use crate::api::Failure;
use crate::doc_state::{CheckJob, DocAction, DocState, Said};
use crate::dry_state::{DryAction, DryJob, DryRunState};
use crate::edits::measured_estimates;
use crate::route::Route;
use crate::run::RunView;
use crate::runs_state::{RunsAction, RunsState};
use crate::shell::{Shell, ShellAction, Tab};
use crate::wire::{Bundle, RunDetail};
use spool_core::diag::Diagnostic;
use std::rc::Rc;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub shell: Shell,
    pub editing: DocState,
    pub dry: DryRunState,
    pub runs: RunsState,
}

#[derive(Debug, Clone)]
pub enum Action {
    Shell(ShellAction),
    Doc(DocAction),
    Dry(DryAction),
    Runs(RunsAction),
    /// A pipeline's files: it becomes the open one.
    Opened(Bundle),
    /// Show the view of an address (the pipeline or run it names is being fetched, or is
    /// the open one).
    Navigate(Route),
    RunOpened(RunDetail),
    Notice(String),
    /// A call to the server failed: a 401 asks for the token, anything else is a notice.
    Failed(Failure),
    /// Bring a diagnostic's step and field into sight (the user clicked it).
    Reveal(Diagnostic),
    /// The view has no field for that click: the source shows its line.
    RevealInSource(u64),
    /// Write the selected run's measured durations into the estimates.
    UseMeasured,
}

/// Each slice's actions are actions of the app.
macro_rules! slice_actions {
    ($($variant:ident($action:ty)),*) => {$(
        impl From<$action> for Action {
            fn from(a: $action) -> Self {
                Action::$variant(a)
            }
        }
    )*};
}
slice_actions!(
    Shell(ShellAction),
    Doc(DocAction),
    Dry(DryAction),
    Runs(RunsAction)
);

impl yew::Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = Rc::unwrap_or_clone(self);
        next.apply(action);
        Rc::new(next)
    }
}

impl State {
    pub fn apply(&mut self, action: impl Into<Action>) {
        match action.into() {
            Action::Shell(a) => {
                let files = self.editing.doc.as_ref().map(|d| &*d.sources);
                self.shell.reduce(a, files);
            }
            Action::Doc(a) => {
                let said = self.editing.reduce(a);
                self.say(said);
            }
            Action::Dry(a) => {
                let plan = self.editing.shown.as_ref().map(|s| &s.plan);
                self.dry.reduce(a, plan);
            }
            Action::Runs(a) => self.runs.reduce(a),
            Action::Opened(bundle) => {
                match self.editing.open(bundle) {
                    Ok(()) => {
                        self.shell.selected = None;
                        self.runs.run = None;
                        self.dry = DryRunState::default();
                    }
                    Err(why) => self.shell.notice = Some(why),
                }
                self.arrive();
            }
            Action::Navigate(route) => self.navigate(route),
            Action::RunOpened(detail) => {
                let mut view = RunView::new(&detail.run);
                for e in &detail.events {
                    view.apply(e);
                }
                self.runs.run = Some(Rc::new(view));
                self.arrive();
            }
            Action::Failed(failure) if self.shell.nav.is_some() => {
                // What the address named did not load: the view stays as it is.
                self.shell.nav = None;
                self.apply(Action::Failed(failure));
            }
            Action::Failed(failure) => {
                self.editing.saving = false;
                match failure {
                    Failure::Stale(_) => self.editing.save_conflict = true,
                    Failure::SignIn => self.shell.ask_sign_in(),
                    failure => self.shell.notice = Some(failure.to_string()),
                }
            }
            Action::Notice(message) => {
                self.editing.saving = false;
                self.shell.notice = Some(message);
            }
            Action::Reveal(d) => self.reveal(&d),
            Action::RevealInSource(seq) => {
                if self.editing.reveal_in_source(seq) {
                    self.shell.tab = Tab::Source;
                }
            }
            Action::UseMeasured => self.use_measured(),
        }
    }

    fn say(&mut self, said: Said) {
        match said {
            Said::Nothing => {}
            Said::TextChanged => self.shell.notice = None,
            Said::Refused(why) => self.shell.notice = Some(why),
        }
    }

    /// The check the open text needs now (`None`: what is shown is of this text and files).
    pub fn check_job(&self) -> Option<CheckJob> {
        self.editing.doc.as_ref()?.check_job()
    }

    /// Runs what the App runs after a render, in its order: the text's check, then the dry
    /// run's simulations (which are of the checked plan).
    #[cfg(any(test, feature = "bench"))]
    pub fn settle(&mut self) {
        if let Some(job) = self.check_job() {
            self.apply(job.run());
        }
        if let Some(job) = self.dry_job() {
            self.apply(job.run());
        }
    }

    /// The simulations the dry run needs now (`None`: its reports are of the current plan,
    /// form and calibration, or the form has errors). The App runs it and dispatches the result.
    pub fn dry_job(&self) -> Option<DryJob> {
        self.dry.job(&self.editing.shown.as_ref()?.plan)
    }

    /// The view shown, as an address (`None` while nothing is open, or while the address's
    /// own view is still loading).
    pub fn route(&self) -> Option<Route> {
        if self.shell.nav.is_some() {
            return None;
        }
        let doc = self.editing.doc.as_ref()?;
        Some(match (self.shell.tab, &self.runs.run) {
            (Tab::Runs, Some(run)) => Route::Run {
                id: run.record.id,
                task: self.shell.selected.clone(),
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
            Route::Pipeline { tab, .. } => self.shell.tab = *tab,
            Route::Runs => {
                self.shell.tab = Tab::Runs;
                self.runs.run = None;
                self.shell.selected = None;
            }
            Route::Run { .. } => self.shell.tab = Tab::Runs,
        }
        self.shell.nav = Some(route);
        self.arrive();
    }

    /// Ends a navigation whose pipeline and run are open.
    fn arrive(&mut self) {
        let Some(route) = &self.shell.nav else { return };
        let root = self.editing.file();
        let arrived = match route {
            Route::Pipeline { file, .. } => root == Some(file.as_str()),
            Route::Runs => root.is_some(),
            Route::Run { id, .. } => {
                root.is_some() && self.runs.run.as_ref().is_some_and(|r| r.record.id == *id)
            }
        };
        if arrived {
            if let Some(Route::Run { task, .. }) = self.shell.nav.take() {
                self.shell.selected = task;
            }
            self.shell.nav = None;
        }
    }

    /// The graph stays the graph (the node's fields open beside it); any other view goes to
    /// the editor's table, or to the source when no field shows the problem.
    fn reveal(&mut self, d: &Diagnostic) {
        let Some(r) = self.editing.reveal(d) else {
            return;
        };
        self.shell.tab = match self.shell.tab {
            _ if r.in_source => Tab::Source,
            Tab::Graph => Tab::Graph,
            _ => Tab::Pipeline,
        };
        if r.item.is_some() {
            self.shell.selected = r.item.clone();
        }
    }

    fn use_measured(&mut self) {
        let (Some(doc), Some(run)) = (&self.editing.doc, &self.runs.run) else {
            return;
        };
        let Some(file) = &doc.checked.file else {
            self.shell.notice = Some("fix the file's syntax error first".into());
            return;
        };
        let edits = measured_estimates(file, &run.measured_secs());
        if edits.is_empty() {
            self.shell.notice = Some(format!(
                "run {} has no measured durations that differ from the estimates",
                run.record.id
            ));
        } else {
            self.apply(DocAction::Edit(edits));
        }
    }

    /// Whether the open file's text differs from the server's copy.
    pub fn unsaved(&self) -> bool {
        self.editing.unsaved()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc_state::{Doc, Draft};
    use crate::dry_state::DryField;
    use crate::import::{ImportKind, Input};
    use crate::memo;
    use crate::shell::SignInForm;
    use crate::wire::{PipelineSummary, ScheduleInfo};
    use serde_json::json;
    use spool_core::calibrate::{Calibration, DurationsFrom};
    use spool_core::edit::Edit;
    use std::collections::BTreeMap;

    /// The pool-size sweep of the dry run's `generation`, as the dry run page asks for it.
    fn sweep_job(s: &State, generation: u64) -> Option<crate::dry_state::SweepJob> {
        let shown = s.editing.shown.as_ref()?;
        s.dry.sweep_job(&shown.plan, generation)
    }

    /// Applies `action` as the App does: then runs the check and the simulations it asks for.
    fn act(s: &mut State, action: impl Into<Action>) {
        s.apply(action);
        s.settle();
    }

    /// Runs the check the state asks for (and no simulation).
    fn check(s: &mut State) {
        let job = s.check_job().expect("a text to check");
        s.apply(job.run());
    }

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
        act(&mut s, ShellAction::Listed(listed));
        let before = s.shell.pipelines[0].schedule.clone().expect("a schedule");
        assert_eq!(before.next[0].local, "2026-12-01 02:30");
        let paused = ScheduleInfo {
            paused: true,
            next: Vec::new(),
            ..before
        };
        act(
            &mut s,
            ShellAction::ScheduleChanged("p.toml".into(), paused.clone()),
        );
        assert_eq!(s.shell.pipelines[0].schedule, Some(paused));
        assert_eq!(s.shell.pipelines[1].schedule, None);
    }

    fn opened_bundle() -> Bundle {
        Bundle {
            etags: BTreeMap::from([("p.toml".to_string(), "\"v1\"".to_string())]),
            root: "p.toml".into(),
            files: BTreeMap::from([("p.toml".to_string(), TEXT.to_string())]),
            notebooks: vec!["a.py".into(), "b.py".into()],
            notebook_diagnostics: Default::default(),
        }
    }

    fn opened() -> State {
        let mut s = State::default();
        act(&mut s, Action::Opened(opened_bundle()));
        s
    }

    #[test]
    fn a_collapsed_sub_pipeline_is_drawn_as_one_node_until_expanded_or_another_file_opens() {
        let root = format!(
            "{TEXT}[[pipeline]]\nid = \"sub\"\npath = \"sub.toml\"\ndepends_on = [\"a\"]\n"
        );
        let sub = "[[notebook]]\nid = \"x\"\npath = \"a.py\"\n[[notebook]]\nid = \"y\"\npath = \"b.py\"\ndepends_on = [\"x\"]\n";
        let mut s = State::default();
        act(
            &mut s,
            Action::Opened(Bundle {
                etags: BTreeMap::new(),
                root: "p.toml".into(),
                files: BTreeMap::from([
                    ("p.toml".to_string(), root),
                    ("sub.toml".to_string(), sub.to_string()),
                ]),
                notebooks: vec!["a.py".into(), "b.py".into()],
                notebook_diagnostics: Default::default(),
            }),
        );
        let drawn = |s: &State| -> Vec<String> {
            let shown = s.editing.shown.as_ref().expect("a plan");
            let drawing = shown.drawing.as_ref().expect("drawn");
            drawing.nodes.iter().map(|n| n.id.clone()).collect()
        };
        assert!(drawn(&s).contains(&"sub/y".to_string()), "{:?}", drawn(&s));
        act(&mut s, DocAction::Collapse(vec!["sub".into()], true));
        let folded = drawn(&s);
        assert!(folded.contains(&"sub".to_string()));
        assert!(
            !folded.iter().any(|id| id.starts_with("sub/")),
            "{folded:?}"
        );
        // An edit keeps it collapsed.
        act(&mut s, set("a", "estimate_secs", json!(30)));
        assert!(!drawn(&s).iter().any(|id| id.starts_with("sub/")));
        act(&mut s, DocAction::Collapse(vec!["sub".into()], false));
        assert!(drawn(&s).contains(&"sub/x".to_string()));
        act(&mut s, DocAction::Collapse(vec!["sub".into()], true));
        act(
            &mut s,
            Action::Opened(Bundle {
                etags: BTreeMap::new(),
                root: "other.toml".into(),
                files: BTreeMap::from([("other.toml".to_string(), TEXT.to_string())]),
                notebooks: vec!["a.py".into(), "b.py".into()],
                notebook_diagnostics: Default::default(),
            }),
        );
        assert!(
            s.editing.collapsed.is_empty(),
            "another file starts expanded"
        );
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
        act(&mut s, Action::Opened(bundle));
        let checked = &doc(&s).checked;
        assert_eq!(checked.diagnostics, vec![broken.clone()]);
        assert!(checked.plan.is_none(), "no plan runs a broken notebook");
        // Once the pipeline no longer runs it, the error goes with it.
        act(
            &mut s,
            DocAction::SetText(TEXT.replace("path = \"b.py\"", "path = \"a.py\"")),
        );
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
        act(&mut s, DocAction::SetText(TEXT.replace("20", "30")));
        act(&mut s, DocAction::SaveStarted);
        act(
            &mut s,
            Action::Failed(Failure::Stale("changed on the server".into())),
        );
        assert!(s.editing.save_conflict && !s.editing.saving);
        assert!(s.unsaved(), "the user's edit is kept");
        act(&mut s, DocAction::CloseSaveConflict);
        assert!(!s.editing.save_conflict);
        // Overwriting: the server answers with the version it wrote, the next save uses it.
        let text = doc(&s).text.clone();
        act(&mut s, DocAction::Saved(text, Some("\"v2\"".into())));
        assert!(!s.unsaved());
        assert_eq!(doc(&s).etag.as_deref(), Some("\"v2\""));
    }

    fn doc(s: &State) -> &Doc {
        s.editing.doc.as_ref().expect("a pipeline is open")
    }

    fn set(id: &str, key: &str, value: serde_json::Value) -> DocAction {
        DocAction::Edit(vec![Edit::SetStepKey {
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
        act(
            &mut s,
            DocAction::Edit(vec![Edit::AddNotebook {
                id: "c".into(),
                path: "c.py".into(),
            }]),
        );
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
        act(&mut s, DocAction::FilesRechecked(bundle(&["a.py", "b.py"])));
        assert!(missing(&s), "nothing new on disk");
        act(
            &mut s,
            DocAction::FilesRechecked(Bundle {
                root: "other.toml".into(),
                ..bundle(&["a.py", "b.py", "c.py"])
            }),
        );
        assert!(missing(&s), "another file's answer changes nothing");
        act(
            &mut s,
            DocAction::FilesRechecked(bundle(&["a.py", "b.py", "c.py"])),
        );
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
        act(&mut s, set("b", "slots", json!(0)));
        let d = doc(&s)
            .about(Some("b"), "slots")
            .next()
            .expect("slots 0 is a problem")
            .clone();
        act(&mut s, ShellAction::Show(Tab::Source));
        act(&mut s, Action::Reveal(d.clone()));
        assert_eq!(s.shell.tab, Tab::Pipeline, "the table shows fields");
        assert_eq!(s.shell.selected.as_deref(), Some("b"));
        let first = s.editing.reveal.clone().expect("revealed");
        assert_eq!(
            (first.item.as_deref(), first.key.as_deref()),
            (Some("b"), Some("slots"))
        );
        act(&mut s, ShellAction::Show(Tab::Graph));
        act(&mut s, Action::Reveal(d));
        assert_eq!(
            s.shell.tab,
            Tab::Graph,
            "the node's fields open beside the graph"
        );
        let second = s.editing.reveal.clone().expect("revealed");
        assert!(
            second.seq > first.seq,
            "a click again on the same field is new"
        );
        act(&mut s, DocAction::Revealed(first.seq));
        assert!(
            s.editing.reveal.is_some(),
            "an earlier click's end leaves this one"
        );
        act(&mut s, DocAction::Revealed(second.seq));
        assert!(s.editing.reveal.is_none());

        // A problem no field shows (an unknown key) goes to its line in the source when the
        // view does not find it; a syntax error (no step, no key) goes there at once.
        act(&mut s, DocAction::SetText(format!("colour = 1\n{TEXT}")));
        let unknown = doc(&s).checked.diagnostics[0].clone();
        assert!(
            unknown.message.contains("unknown key `colour`"),
            "{unknown:?}"
        );
        act(&mut s, Action::Reveal(unknown));
        assert_eq!(s.shell.tab, Tab::Graph);
        let seq = s.editing.reveal.as_ref().map(|r| r.seq).expect("revealed");
        act(&mut s, Action::RevealInSource(seq));
        assert_eq!(s.shell.tab, Tab::Source);
        let r = s.editing.reveal.clone().expect("still to show");
        assert!(r.in_source && (r.line, r.col) == (1, 1), "{r:?}");
        act(&mut s, DocAction::SetText(format!("{TEXT}\n[pool\n")));
        act(&mut s, ShellAction::Show(Tab::Pipeline));
        let syntax = doc(&s).checked.diagnostics[0].clone();
        act(&mut s, Action::Reveal(syntax.clone()));
        assert_eq!(s.shell.tab, Tab::Source);
        let r = s.editing.reveal.clone().expect("revealed");
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
        let shown = s.editing.shown.as_ref().expect("valid plan shown");
        assert_eq!(shown.drawing.as_ref().map(|d| d.nodes.len()), Some(2));
        let dry = s.dry.shown().expect("dry run");
        // Start-up (180 s by default) plus a then b.
        assert_eq!(dry.makespan_secs, 210.0);
        assert!(!s.unsaved());
    }

    #[test]
    fn a_bad_edit_shows_its_diagnostic_beside_the_field_and_keeps_the_last_drawing() {
        let mut s = opened();
        act(&mut s, set("b", "slots", json!(3)));
        let d = doc(&s);
        let about: Vec<&str> = d
            .about(Some("b"), "slots")
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(about.len(), 1, "{:?}", d.checked.diagnostics);
        assert!(about[0].contains("the pool has 2"), "{}", about[0]);
        assert!(d.text.contains("id = \"a\"   # first"), "comments kept");
        let shown = s.editing.shown.as_ref().expect("last drawing kept");
        assert!(!shown.current);
        assert!(s.unsaved());
    }

    #[test]
    fn undo_and_redo_walk_the_texts() {
        let mut s = opened();
        act(&mut s, set("a", "estimate_secs", json!(30)));
        act(
            &mut s,
            DocAction::Edit(vec![Edit::AddNotebook {
                id: "c".into(),
                path: "a.py".into(),
            }]),
        );
        let after = doc(&s).text.clone();
        act(&mut s, DocAction::Undo);
        act(&mut s, DocAction::Undo);
        assert_eq!(&*doc(&s).text, TEXT);
        assert_eq!(makespan(&s), Some(210.0));
        act(&mut s, DocAction::Undo);
        assert_eq!(&*doc(&s).text, TEXT, "nothing more to undo");
        act(&mut s, DocAction::Redo);
        act(&mut s, DocAction::Redo);
        assert_eq!(doc(&s).text, after);
        // c (60 s) runs beside the a-b chain (30 s + 20 s) on the two slots.
        assert_eq!(makespan(&s), Some(240.0));
        act(&mut s, DocAction::Undo);
        act(&mut s, set("a", "slots", json!(2)));
        assert!(doc(&s).redo.is_empty(), "a new edit drops the redo stack");
    }

    #[test]
    fn a_refused_edit_changes_nothing_and_says_why() {
        let mut s = opened();
        act(
            &mut s,
            DocAction::Edit(vec![
                Edit::SetStepKey {
                    id: "a".into(),
                    key: "slots".into(),
                    value: json!(2),
                },
                Edit::RemoveStep { id: "zz".into() },
            ]),
        );
        assert_eq!(&*doc(&s).text, TEXT);
        assert!(doc(&s).undo.is_empty());
        assert_eq!(s.shell.notice.as_deref(), Some("no step `zz`"));
    }

    #[test]
    fn dry_run_follows_the_form_and_reports_fields_that_do_not_read() {
        let mut s = opened();
        act(&mut s, DryAction::Field(DryField::Startup, "0".into()));
        assert_eq!(makespan(&s), Some(30.0));
        let generation = s.dry.generation;
        act(&mut s, DryAction::Field(DryField::Executors, "many".into()));
        assert_eq!(
            s.dry.generation, generation,
            "an unreadable form keeps the last result"
        );
        assert_eq!(
            s.dry.form.options().err(),
            Some(vec![(DryField::Executors, "a whole number".into())])
        );
        // Core's limits, as in the CLI and the API.
        act(
            &mut s,
            DryAction::Field(DryField::Executors, "100001".into()),
        );
        act(
            &mut s,
            DryAction::Field(DryField::FailureRate, "1.5".into()),
        );
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
        act(
            &mut s,
            DryAction::Field(DryField::Executors, "100000".into()),
        );
        act(&mut s, DryAction::Field(DryField::FailureRate, "".into()));
        assert_eq!(s.dry.shown().map(|d| d.executors), Some(100_000));
        act(&mut s, DryAction::Field(DryField::Executors, "".into()));
        act(&mut s, DryAction::Field(DryField::SweepMax, "3".into()));
        let generation = s.dry.generation;
        assert!(
            sweep_job(&s, generation - 1).is_none(),
            "no sweep of stale reports"
        );
        let sweep = sweep_job(&s, generation).expect("the sweep to run");
        act(&mut s, sweep.clone().run());
        assert!(s.dry.swept() && sweep_job(&s, generation).is_none());
        let shown = s.dry.shown().expect("a report");
        assert_eq!(shown.sweep.as_ref().map(Vec::len), Some(3));
        // A chain gains nothing from more executors, so the smallest pool is the cheapest.
        assert_eq!(shown.cheapest_within_deadline.map(|p| p.executors), Some(1));
    }

    /// The invariant of ARCHITECTURE.md's web section: actions only keep results; the
    /// simulations run outside the reducer, from the job the state asks for.
    #[test]
    fn the_reducer_runs_no_simulation() {
        let mut s = State::default();
        s.apply(Action::Opened(opened_bundle()));
        check(&mut s);
        assert!(s.dry.shown().is_none(), "opening simulates nothing");
        let job = s.dry_job().expect("the dry run to compute");
        s.apply(job.run());
        assert_eq!(s.dry.shown().map(|d| d.makespan_secs), Some(210.0));
        assert!(s.dry_job().is_none(), "computed once");
        let stale_sweep = sweep_job(&s, s.dry.generation).expect("a sweep");
        s.apply(set("a", "estimate_secs", json!(40)));
        check(&mut s);
        s.apply(DryAction::Field(DryField::Startup, "0".into()));
        assert_eq!(
            s.dry.shown().map(|d| d.makespan_secs),
            Some(210.0),
            "the edit and the form keep the last report until their job runs"
        );
        let job = s.dry_job().expect("the new plan and form to compute");
        s.apply(job.run());
        assert_eq!(s.dry.shown().map(|d| d.makespan_secs), Some(60.0));
        // A sweep is many simulations: run outside too, and dropped once stale.
        let sweep = sweep_job(&s, s.dry.generation).expect("a sweep");
        assert!(!s.dry.swept());
        s.apply(stale_sweep.run());
        assert!(!s.dry.swept(), "the sweep of older reports is dropped");
        s.apply(sweep.run());
        assert!(s.dry.swept());
    }

    /// The invariant of ARCHITECTURE.md's web section: the text is checked (parsed, loaded,
    /// planned) outside the reducer, from the job the state asks for; until it lands the last
    /// check stays shown, and a check of a text edited since is dropped.
    #[test]
    fn the_reducer_checks_no_text() {
        let mut s = State::default();
        s.apply(Action::Opened(opened_bundle()));
        assert!(s.check_job().is_some(), "opening checks nothing");
        assert!(doc(&s).checked.file.is_none() && s.editing.shown.is_none());
        check(&mut s);
        assert!(s.check_job().is_none(), "checked once");
        let plan = |s: &State| s.editing.shown.as_ref().expect("a plan").plan.clone();
        let first = plan(&s);
        s.apply(set("a", "estimate_secs", json!(40)));
        let older = s.check_job().expect("the edit to check");
        s.apply(set("a", "timeout_secs", json!(-1)));
        assert!(s.check_job().is_some());
        assert!(Rc::ptr_eq(&first, &plan(&s)), "the last check stays shown");
        s.apply(older.run());
        assert!(
            s.check_job().is_some(),
            "the check of an older text is dropped"
        );
        assert!(Rc::ptr_eq(&first, &plan(&s)));
        check(&mut s);
        assert!(s.check_job().is_none());
        assert!(doc(&s).about(Some("a"), "timeout_secs").count() == 1);
        assert!(!s.editing.shown.as_ref().expect("kept").current, "stale");
        // New files on the server are checked again too, outside the reducer.
        s.apply(DocAction::FilesRechecked(Bundle {
            notebooks: vec!["a.py".into()],
            ..opened_bundle()
        }));
        assert!(s.check_job().is_some());
        check(&mut s);
        assert!(doc(&s)
            .checked
            .diagnostics
            .iter()
            .any(|d| d.message.contains("b.py")));
    }

    #[test]
    fn a_dry_run_result_for_inputs_that_changed_since_is_dropped() {
        let mut s = opened();
        let before = s.dry.shown().cloned();
        let job = s.dry_job();
        assert!(job.is_none(), "the opened plan is computed");
        s.apply(DryAction::Field(DryField::Startup, "0".into()));
        let old_form = s.dry_job().expect("the form changed");
        s.apply(DryAction::Field(DryField::Startup, "5".into()));
        s.apply(old_form.run());
        assert_eq!(
            s.dry.shown().map(|d| d.makespan_secs),
            before.as_ref().map(|d| d.makespan_secs),
            "computed for a start-up of 0, which is no longer the form's"
        );
        let old_plan = s.dry_job().expect("the form changed");
        s.apply(set("b", "estimate_secs", json!(25)));
        check(&mut s);
        s.apply(old_plan.run());
        assert_eq!(
            s.dry.shown().map(|d| d.makespan_secs),
            before.map(|d| d.makespan_secs),
            "computed for the plan before the edit"
        );
        let current = s.dry_job().expect("the edited plan");
        s.apply(current.run());
        assert_eq!(s.dry.shown().map(|d| d.makespan_secs), Some(40.0));
    }

    /// The drawing and the dry run are memoised on what they are made of: an edit that leaves
    /// the plan equal (a comment) draws and simulates nothing again; one that changes it does.
    #[test]
    fn an_edit_that_leaves_the_plan_equal_draws_and_simulates_nothing_again() {
        let mut s = opened();
        let drawing = |s: &State| s.editing.shown.as_ref().and_then(|d| d.drawing.clone());
        let (drawn, report) = (drawing(&s).expect("drawn"), s.dry.shown().cloned());
        s.apply(DocAction::SetText(TEXT.replace("# first", "# the first")));
        check(&mut s);
        assert!(s.unsaved(), "the text changed");
        assert!(s.dry_job().is_none(), "the same plan: no simulation");
        assert!(
            Rc::ptr_eq(&drawn, &drawing(&s).expect("drawn")),
            "not redrawn"
        );
        assert!(memo::same(report.as_ref(), s.dry.shown()));
        s.apply(set("a", "estimate_secs", json!(30)));
        check(&mut s);
        assert!(s.dry_job().is_some(), "another plan is simulated");
        assert!(
            !Rc::ptr_eq(&drawn, &drawing(&s).expect("drawn")),
            "and drawn"
        );
        s.apply(DocAction::Collapse(vec!["a".into()], true));
        let collapsed = drawing(&s).expect("drawn");
        s.apply(DocAction::Collapse(Vec::new(), true));
        assert!(
            Rc::ptr_eq(&collapsed, &drawing(&s).expect("drawn")),
            "the same collapsed set: not redrawn"
        );
    }

    #[test]
    fn seed_variation_and_failure_rate_reach_the_simulation() {
        let mut s = opened();
        act(&mut s, DryAction::Field(DryField::Variation, "0.8".into()));
        let varied = makespan(&s);
        assert_ne!(varied, Some(210.0));
        act(&mut s, DryAction::Field(DryField::Seed, "7".into()));
        assert_ne!(makespan(&s), varied, "another seed draws other durations");
        act(&mut s, DryAction::Field(DryField::FailureRate, "1".into()));
        assert_eq!(s.dry.shown().map(|d| d.outcome), Some("failed"));
    }

    #[test]
    fn a_calibration_from_history_makes_a_second_report_beside_the_estimates() {
        let mut s = opened();
        act(&mut s, DryAction::Field(DryField::Startup, "0".into()));
        act(&mut s, DryAction::Calibrate(Some(DurationsFrom::P90)));
        assert!(
            s.dry.calibrated().is_none(),
            "not before the server answered"
        );
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
        act(
            &mut s,
            DryAction::CalibrationLoaded(calibration(DurationsFrom::P50)),
        );
        assert!(
            s.dry.calibrated().is_none(),
            "another choice's answer is ignored"
        );
        act(
            &mut s,
            DryAction::CalibrationLoaded(calibration(DurationsFrom::P90)),
        );
        let calibrated = s.dry.calibrated().expect("calibrated report");
        // a, then 0.5 s later b; the start-up typed (0) wins over the measured one.
        assert_eq!(calibrated.makespan_secs, 5.5);
        assert_eq!(
            calibrated.calibration.as_ref().map(|c| c.durations_from),
            Some(DurationsFrom::P90)
        );
        assert_eq!(s.dry.estimated().map(|d| d.makespan_secs), Some(30.0));
        assert_eq!(
            makespan(&s),
            Some(5.5),
            "the page shows the calibrated figures"
        );
        // The file is unchanged: these durations are not written as estimates.
        assert!(!s.unsaved());
        act(&mut s, DryAction::Calibrate(None));
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
        act(
            &mut s,
            DocAction::SetText(TEXT.replace(
                "path = \"a.py\"\n",
                "path = \"a.py\"\nparams = { run_date = 2024-06-30, rows = 4_000_000 }\n",
            )),
        );
        let before = doc(&s).text.to_string();
        let rows = doc(&s).params().expect("TOML").of(Some("a")).to_vec();
        assert_eq!(rows[0].value.ty, spool_core::edit::ParamType::Date);
        act(
            &mut s,
            DocAction::Edit(vec![Edit::SetParam {
                step: Some("a".into()),
                key: "run_date".into(),
                value: spool_core::edit::ParamValue {
                    ty: spool_core::edit::ParamType::Date,
                    text: "2024-07-01".into(),
                },
            }]),
        );
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
        DocAction::DraftFound {
            file: doc(&opened()).root.clone(),
            draft,
        }
        .into()
    }

    #[test]
    fn unsaved_edits_are_kept_and_offered_back_after_a_reload() {
        let mut s = opened();
        assert_eq!(
            s.editing.draft_to_keep(),
            None,
            "nothing to keep while saved"
        );
        act(&mut s, set("a", "estimate_secs", json!(30)));
        let kept = s.editing.draft_to_keep().expect("the edit is kept");
        assert!(kept.text.contains("estimate_secs = 30"));
        assert_eq!(
            kept.etag.as_deref(),
            Some("\"v1\""),
            "with the version it was made on"
        );

        // The page again, the file as the server has it, the draft found in the storage.
        let mut s = opened();
        act(&mut s, found(kept.clone()));
        assert_eq!(
            s.editing.draft.as_ref(),
            Some(&kept),
            "offered, not applied"
        );
        assert!(!s.unsaved());
        act(&mut s, DocAction::RestoreDraft);
        assert_eq!(*doc(&s).text, kept.text);
        assert!(s.unsaved() && s.editing.draft.is_none());
        act(&mut s, DocAction::Undo);
        assert_eq!(&*doc(&s).text, TEXT, "restoring is one undo step");

        let mut s = opened();
        act(&mut s, found(kept.clone()));
        act(&mut s, DocAction::DiscardDraft);
        assert!(s.editing.draft.is_none() && !s.unsaved());
        // A draft equal to the file is nothing to offer.
        act(
            &mut s,
            found(Draft {
                text: TEXT.into(),
                etag: None,
                on_server: None,
            }),
        );
        assert!(s.editing.draft.is_none());
        // The server's draft of another file (the user switched before it answered) is not
        // offered for this one.
        act(
            &mut s,
            DocAction::DraftFound {
                file: "other.toml".into(),
                draft: Draft {
                    on_server: Some(1),
                    ..kept
                },
            },
        );
        assert!(s.editing.draft.is_none());
    }

    #[test]
    fn the_address_follows_the_view_and_waits_for_what_it_names_to_load() {
        let mut s = State::default();
        assert_eq!(s.route(), None, "nothing is shown yet");
        let graph = Route::Pipeline {
            file: "p.toml".into(),
            tab: Tab::Graph,
        };
        act(&mut s, Action::Navigate(graph.clone()));
        assert_eq!(s.shell.tab, Tab::Graph);
        assert_eq!(s.route(), None, "the pipeline is still loading");
        s = {
            let mut o = opened();
            act(&mut o, Action::Navigate(graph.clone()));
            o
        };
        assert_eq!(s.route(), Some(graph));
        act(&mut s, ShellAction::Show(Tab::DryRun));
        assert_eq!(
            s.route().map(|r| r.to_hash()).as_deref(),
            Some("#/pipelines/p.toml/dry-run")
        );

        // A run and one of its tasks: the address waits for the run.
        let task = Route::Run {
            id: 3,
            task: Some("a".into()),
        };
        act(&mut s, Action::Navigate(task.clone()));
        assert_eq!((s.shell.tab, s.route()), (Tab::Runs, None));
        act(&mut s, Action::RunOpened(run_detail(3)));
        assert_eq!(s.route(), Some(task));
        assert_eq!(s.shell.selected.as_deref(), Some("a"), "the task is shown");
        act(&mut s, ShellAction::Select(None));
        assert_eq!(s.route().map(|r| r.to_hash()).as_deref(), Some("#/runs/3"));
        act(&mut s, Action::Navigate(Route::Runs));
        assert!(s.runs.run.is_none(), "the list, without a run");
        assert_eq!(s.route(), Some(Route::Runs));

        // A run that does not load leaves the view as it was, and the address free again.
        act(&mut s, Action::Navigate(Route::Run { id: 99, task: None }));
        act(
            &mut s,
            Action::Failed(Failure::Transport("not found".into())),
        );
        assert_eq!(s.route(), Some(Route::Runs));
        assert!(s.shell.notice.is_some());
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
        act(&mut s, Action::RunOpened(detail));
        act(&mut s, Action::UseMeasured);
        let d = doc(&s);
        assert!(d.text.contains("estimate_secs = 4.0"), "{}", d.text);
        assert_eq!(d.undo.len(), 1);
        act(&mut s, Action::UseMeasured);
        assert!(
            s.shell.notice.is_some(),
            "nothing left to change is said, not silently ignored"
        );
    }

    #[test]
    fn a_401_asks_for_the_token_and_signing_in_loads_again() {
        let mut s = opened();
        act(
            &mut s,
            Action::Failed(Failure::Transport("cannot reach the server".into())),
        );
        assert!(s.shell.sign_in.is_none(), "only a 401 asks for the token");
        assert_eq!(s.shell.notice.as_deref(), Some("cannot reach the server"));
        act(&mut s, DocAction::SaveStarted);
        act(&mut s, Action::Failed(Failure::SignIn.context("not saved")));
        assert!(!s.editing.saving);
        assert_eq!(s.shell.sign_in, Some(SignInForm::default()));
        act(&mut s, ShellAction::SignInSent);
        assert!(s.shell.sign_in.as_ref().is_some_and(|f| f.sending));
        act(
            &mut s,
            ShellAction::SignInRefused("That token is wrong.".into()),
        );
        let form = s.shell.sign_in.clone().expect("the form stays");
        assert!(!form.sending);
        assert_eq!(form.error.as_deref(), Some("That token is wrong."));
        let sessions = s.shell.sessions;
        act(&mut s, ShellAction::SignedIn);
        assert!(s.shell.sign_in.is_none());
        assert_eq!(s.shell.sessions, sessions + 1, "the app loads again");
        assert!(s.editing.doc.is_some(), "the open pipeline is kept");
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
        let form = s.shell.import.as_ref().expect("the dialog is open");
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
        act(&mut s, ShellAction::ImportOpen);
        act(
            &mut s,
            ShellAction::ImportFiles(Ok(vec![
                input(SYNAPSE, "main.json"),
                input(SYNAPSE, "pl_dimensions.json"),
                input(SYNAPSE, "pl_calendar.json"),
            ])),
        );
        let form = s.shell.import.as_ref().expect("open");
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
        act(&mut s, ShellAction::ImportOpen);
        act(
            &mut s,
            ShellAction::ImportFiles(Ok(vec![input(dir, "main.json")])),
        );
        let p = preview(&s);
        assert!(!p.ready(), "two notebooks are missing");
        assert_eq!(p.notebooks_to_provide.len(), 2);
        // Chosen on their own, the notebooks join the input instead of replacing it.
        act(
            &mut s,
            ShellAction::ImportFiles(Ok(vec![
                input(dir, "notebook/nb_load_sales.json"),
                Input {
                    name: "nb_report.py".into(),
                    text: Rc::from("print('report')\n"),
                },
            ])),
        );
        let form = s.shell.import.as_ref().expect("open");
        assert_eq!(form.main.name, "main.json");
        let p = preview(&s);
        // The pipeline wants `nb_report.ipynb`: a `.py` of that name is not it.
        assert_eq!(p.notebooks_to_provide, ["notebooks/nb_report.ipynb"]);
        assert!(p
            .report
            .render()
            .contains("nb_report.py: no imported pipeline runs this notebook"));
        assert!(!p.ready());
        act(
            &mut s,
            ShellAction::ImportFiles(Ok(vec![
                input(dir, "notebook/nb_load_sales.json"),
                Input {
                    name: "nb_report.ipynb".into(),
                    text: Rc::from(
                        r#"{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#,
                    ),
                },
            ])),
        );
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
        act(&mut s, ShellAction::ImportOpen);
        act(&mut s, ShellAction::ImportTarget("mine.toml".into()));
        act(&mut s, ShellAction::ImportKind(ImportKind::Genie));
        act(
            &mut s,
            ShellAction::ImportFiles(Ok(vec![input(dir, "metadata.csv")])),
        );
        assert_eq!(
            s.shell.import.as_ref().map(|f| f.target.as_str()),
            Some(""),
            "a typed file name is no folder: the pipelines folder itself"
        );
        act(&mut s, ShellAction::ImportTarget("imported/genie".into()));
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
        act(&mut s, ShellAction::ImportTarget("../outside".into()));
        let form = s.shell.import.as_ref().expect("open");
        assert!(form.target_error.is_some());
        assert!(form.preview.is_none(), "nothing to save outside the folder");
    }

    #[test]
    fn a_pasted_dag_gets_a_free_name_and_finds_the_folders_notebooks() {
        let mut s = opened();
        act(
            &mut s,
            ShellAction::Listed(
                ["p.toml", "imported.toml"]
                    .map(|f| PipelineSummary {
                        file: f.into(),
                        name: f.into(),
                        notebooks: 0,
                        errors: 0,
                        schedule: None,
                    })
                    .to_vec(),
            ),
        );
        act(&mut s, ShellAction::ImportOpen);
        act(&mut s, ShellAction::ImportKind(ImportKind::RunMultiple));
        // The open pipeline's bundle says the folder holds notebooks/a.py.
        act(
            &mut s,
            Action::Opened(Bundle {
                etags: Default::default(),
                root: "p.toml".into(),
                files: BTreeMap::from([("p.toml".to_string(), TEXT.to_string())]),
                notebooks: vec!["notebooks/a.py".into()],
                notebook_diagnostics: Default::default(),
            }),
        );
        let dag = json!({"activities": [
            {"name": "load", "path": "a", "args": {}, "dependencies": []},
            {"name": "report", "path": "b", "args": {}, "dependencies": ["load"]}
        ]});
        act(&mut s, ShellAction::ImportText(dag.to_string()));
        let form = s.shell.import.as_ref().expect("open");
        assert_eq!(form.target, "imported_2.toml", "imported.toml is taken");
        let p = preview(&s);
        assert!(!p.report.has_errors(), "{}", p.report.render());
        let text = &p.files[0].text;
        assert!(text.contains(r#"path = "notebooks/a.py""#), "{text}");
        assert!(text.contains(r#"depends_on = ["load"]"#), "{text}");
        assert_eq!(p.notebooks_to_provide, ["notebooks/b.ipynb"]);
        assert!(!p.files[0].replaces);

        act(&mut s, ShellAction::ImportTarget("imported.toml".into()));
        assert!(preview(&s).files[0].replaces, "saving would overwrite it");
        act(&mut s, ShellAction::ImportTarget("imported.txt".into()));
        assert!(s
            .shell
            .import
            .as_ref()
            .is_some_and(|f| f.target_error.is_some()));
        act(&mut s, ShellAction::ImportText("  ".into()));
        act(&mut s, ShellAction::ImportTarget("x.toml".into()));
        let form = s.shell.import.as_ref().expect("open");
        assert!(form.preview.is_none(), "emptied: nothing to convert");
    }

    #[test]
    fn a_refused_save_shows_the_servers_diagnostics_and_what_was_written() {
        let mut s = State::default();
        act(&mut s, ShellAction::ImportOpen);
        act(&mut s, ShellAction::ImportSaveStarted);
        assert!(s.shell.import.as_ref().is_some_and(|f| f.saving));
        let refused = Failure::Refused {
            message: "the pipeline has errors".into(),
            diagnostics: vec![crate::wire::WireDiagnostic {
                file: "main.toml".into(),
                line: 7,
                col: 8,
                message: "notebook file `notebooks/x.ipynb` does not exist".into(),
            }],
        };
        act(
            &mut s,
            ShellAction::ImportSaveFailed {
                file: "main.toml".into(),
                failure: refused,
                written: vec!["sub.toml".into()],
            },
        );
        let form = s.shell.import.as_ref().expect("the dialog stays open");
        assert!(!form.saving);
        let problem = form.problem.as_ref().expect("a problem is shown");
        assert!(problem.message.contains("`main.toml` was not saved"));
        assert_eq!(problem.diagnostics.len(), 1);
        assert_eq!(problem.written, ["sub.toml"]);

        act(
            &mut s,
            ShellAction::ImportSaveFailed {
                file: "main.toml".into(),
                failure: Failure::SignIn,
                written: Vec::new(),
            },
        );
        assert!(
            s.shell.sign_in.is_some(),
            "a 401 while saving asks for the token"
        );
        act(
            &mut s,
            ShellAction::ImportFiles(Err("`big.json` is over the 10 MiB limit".into())),
        );
        assert!(s
            .shell
            .import
            .as_ref()
            .and_then(|f| f.problem.as_ref())
            .is_some_and(|p| p.message.contains("big.json")));
        act(&mut s, ShellAction::ImportSaved);
        assert!(s.shell.import.is_none(), "saved: the dialog closes");
    }
}
