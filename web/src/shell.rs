//! The shell's slice of the app state: what frames every view (the pipelines listed, the tab,
//! the picked node, the notice, the sign-in form, the import dialog, the address being
//! loaded).

use crate::api::Failure;
use crate::import::{ImportForm, ImportKind, ImportProblem, Input};
use crate::route::Route;
use crate::wire::{PipelineSummary, ScheduleInfo};
use spool_core::source::MemorySources;

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

/// The sign-in form, shown after the server answered 401. The token itself is never kept: it
/// goes from the password field to `POST /api/session`, which answers with an HttpOnly cookie.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignInForm {
    pub sending: bool,
    /// Why the last attempt failed (a wrong token, an unreachable server).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shell {
    pub pipelines: Vec<PipelineSummary>,
    pub tab: Tab,
    /// The node the user picked, in the graph or a run.
    pub selected: Option<String>,
    /// A message for the user (an edit refused, a failed call).
    pub notice: Option<String>,
    /// `Some` while the server wants its token.
    pub sign_in: Option<SignInForm>,
    /// Counts sign-ins: what failed to load before one is loaded again after it.
    pub sessions: u32,
    /// The import dialog, while it is open.
    pub import: Option<ImportForm>,
    /// The view the address asks for while its pipeline or run is still loading; the address
    /// is left alone until it arrives (see `State::route`).
    pub nav: Option<Route>,
}

#[derive(Debug, Clone)]
pub enum ShellAction {
    Listed(Vec<PipelineSummary>),
    /// A pipeline's schedule was paused or resumed: as the server answered.
    ScheduleChanged(String, ScheduleInfo),
    DismissNotice,
    Select(Option<String>),
    Show(Tab),
    SignInSent,
    /// The server refused the token, or could not be asked: why.
    SignInRefused(String),
    SignedIn,
    ImportOpen,
    ImportClose,
    ImportKind(ImportKind),
    /// Files chosen in the dialog, read (the first is the main input), or why they were not.
    ImportFiles(Result<Vec<Input>, String>),
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

impl Shell {
    /// `files`: the open pipeline's bundle, which the import dialog finds notebooks in.
    pub fn reduce(&mut self, action: ShellAction, files: Option<&MemorySources>) {
        match action {
            ShellAction::Listed(list) => self.pipelines = list,
            ShellAction::ScheduleChanged(file, schedule) => {
                if let Some(p) = self.pipelines.iter_mut().find(|p| p.file == file) {
                    p.schedule = Some(schedule);
                }
            }
            ShellAction::DismissNotice => self.notice = None,
            ShellAction::Select(id) => self.selected = id,
            ShellAction::Show(tab) => self.tab = tab,
            ShellAction::SignInSent => {
                if let Some(form) = &mut self.sign_in {
                    form.sending = true;
                    form.error = None;
                }
            }
            ShellAction::SignInRefused(why) => {
                if let Some(form) = &mut self.sign_in {
                    form.sending = false;
                    form.error = Some(why);
                }
            }
            ShellAction::SignedIn => {
                self.sign_in = None;
                self.notice = None;
                self.sessions += 1;
            }
            ShellAction::ImportOpen => {
                self.import = Some(ImportForm::default());
                self.refresh_import(files);
            }
            ShellAction::ImportClose | ShellAction::ImportSaved => self.import = None,
            ShellAction::ImportSaveStarted => {
                if let Some(form) = &mut self.import {
                    form.saving = true;
                    form.problem = None;
                }
            }
            ShellAction::ImportSaveFailed {
                file,
                failure,
                written,
            } => {
                if failure == Failure::SignIn {
                    self.ask_sign_in();
                }
                if let Some(form) = &mut self.import {
                    form.saving = false;
                    form.problem = Some(ImportProblem::not_saved(&file, failure, written));
                }
            }
            ShellAction::ImportKind(kind) => self.change_import(files, |f| f.set_kind(kind)),
            ShellAction::ImportFiles(Ok(inputs)) => self.change_import(files, |f| f.choose(inputs)),
            ShellAction::ImportFiles(Err(why)) => {
                if let Some(form) = &mut self.import {
                    form.problem = Some(ImportProblem::unreadable(why));
                }
            }
            ShellAction::ImportText(text) => self.change_import(files, |f| f.set_text(text)),
            ShellAction::ImportTarget(target) => {
                self.change_import(files, |f| f.typed_target = Some(target))
            }
        }
    }

    /// Opens the sign-in form (a 401), keeping one already open.
    pub fn ask_sign_in(&mut self) {
        self.sign_in.get_or_insert_with(SignInForm::default);
    }

    /// A change to the import form; the preview follows.
    fn change_import(
        &mut self,
        files: Option<&MemorySources>,
        change: impl FnOnce(&mut ImportForm),
    ) {
        if let Some(form) = &mut self.import {
            change(form);
            self.refresh_import(files);
        }
    }

    fn refresh_import(&mut self, files: Option<&MemorySources>) {
        if let Some(form) = &mut self.import {
            form.refresh(files, &self.pipelines);
        }
    }
}
