//! The runs view's slice of the app state: the history list, the run shown (folded from its
//! recorded and live events) and the parameters typed for the next run.

use crate::memo::same;
use crate::run::RunView;
use spool_core::runlog::{RunSummary, StoredEvent};
use std::rc::Rc;

#[derive(Debug, Clone, Default)]
pub struct RunsState {
    pub list: Vec<RunSummary>,
    pub run: Option<Rc<RunView>>,
    pub overrides: String,
}

/// A run view is changed only through `Rc::make_mut`, which copies it while another state
/// still holds it: two states holding the same `Rc` hold the same run, without comparing its
/// events.
impl PartialEq for RunsState {
    fn eq(&self, other: &Self) -> bool {
        same(self.run.as_ref(), other.run.as_ref())
            && self.list == other.list
            && self.overrides == other.overrides
    }
}

#[derive(Debug, Clone)]
pub enum RunsAction {
    Listed(Vec<RunSummary>),
    Event { run: i64, event: Box<StoredEvent> },
    Overrides(String),
}

impl RunsState {
    pub fn reduce(&mut self, action: RunsAction) {
        match action {
            RunsAction::Listed(runs) => self.list = runs,
            RunsAction::Event { run, event } => {
                if let Some(view) = self.run.as_mut().filter(|v| v.record.id == run) {
                    Rc::make_mut(view).apply(&event);
                }
            }
            RunsAction::Overrides(text) => self.overrides = text,
        }
    }
}
