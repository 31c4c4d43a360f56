//! A run as the browser shows it: the stored events folded, one by one, into the state of each
//! notebook. The same fold serves the events of `GET /api/runs/{id}` and the live stream, so a
//! page opened mid-run and a page that watched from the start show the same thing.

use spool_core::runlog::{AttemptOutcome, RunEvent, RunRecord, RunStatus, StoredEvent};
use spool_core::sched::Final;
use std::collections::BTreeMap;

/// What a node of the graph, or a bar of the Gantt chart, is coloured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Not started (yet).
    Pending,
    Running,
    /// Failed an attempt; another one is scheduled.
    Retrying,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Skipped,
}

impl NodeState {
    /// Also the `data-state` attribute and the CSS class suffix.
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Pending => "pending",
            NodeState::Running => "running",
            NodeState::Retrying => "retrying",
            NodeState::Succeeded => "succeeded",
            NodeState::Failed => "failed",
            NodeState::TimedOut => "timed_out",
            NodeState::Cancelled => "cancelled",
            NodeState::Skipped => "skipped",
        }
    }

    pub fn of_outcome(outcome: AttemptOutcome) -> Self {
        match outcome {
            AttemptOutcome::Succeeded => NodeState::Succeeded,
            AttemptOutcome::Failed => NodeState::Failed,
            AttemptOutcome::TimedOut => NodeState::TimedOut,
            AttemptOutcome::Cancelled => NodeState::Cancelled,
        }
    }
}

pub fn status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Queued => "queued",
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
        RunStatus::Interrupted => "interrupted",
    }
}

/// A run as the browser shows it: the run log's own fold plus what only the page needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    pub record: RunRecord,
    /// Each notebook's colour; notebooks without events are pending.
    states: BTreeMap<String, NodeState>,
    /// Sequence number of the last event folded in; older and repeated events are ignored.
    pub last_seq: Option<i64>,
    /// The Spark session's last reported state, with its message.
    pub session: Option<String>,
    pub cancel_requested: bool,
}

impl RunView {
    /// A view of `run` (as the server lists it) before its events are folded in: they rebuild
    /// its notebooks, from the first event on.
    pub fn new(run: &RunRecord) -> Self {
        RunView {
            record: RunRecord {
                tasks: BTreeMap::new(),
                ..run.clone()
            },
            states: BTreeMap::new(),
            last_seq: None,
            session: None,
            cancel_requested: false,
        }
    }

    pub fn is_live(&self) -> bool {
        !self.record.status.is_final()
    }

    pub fn apply(&mut self, stored: &StoredEvent) {
        if self.last_seq.is_some_and(|last| stored.seq <= last) {
            return;
        }
        self.last_seq = Some(stored.seq);
        self.record.apply(stored);
        let mut set = |task: &str, state| {
            self.states.insert(task.to_string(), state);
        };
        match &stored.event {
            RunEvent::TaskStarted { task, .. } => set(task, NodeState::Running),
            RunEvent::TaskFinished { task, outcome, .. } => {
                set(task, NodeState::of_outcome(*outcome));
            }
            RunEvent::RetryScheduled { task, .. } => set(task, NodeState::Retrying),
            RunEvent::TaskSkipped { task, .. } => set(task, NodeState::Skipped),
            RunEvent::TaskCarriedOver { task } => set(task, NodeState::Succeeded),
            RunEvent::TaskSettled { task, state, .. } => {
                let shown = match state {
                    Final::Succeeded => NodeState::Succeeded,
                    // A timed-out last attempt keeps its own colour.
                    Final::Failed if self.states.get(task) == Some(&NodeState::TimedOut) => {
                        NodeState::TimedOut
                    }
                    Final::Failed => NodeState::Failed,
                    Final::Skipped => NodeState::Skipped,
                    Final::Cancelled => NodeState::Cancelled,
                };
                self.states.insert(task.clone(), shown);
            }
            RunEvent::SessionChanged { state, message, .. } => {
                self.session = Some(match message {
                    Some(m) => format!("{state}: {m}"),
                    None => state.clone(),
                });
            }
            RunEvent::CancelRequested { .. } => self.cancel_requested = true,
            RunEvent::SessionLeaked { session, reason } => {
                self.session = Some(format!(
                    "session {session} LEAKED (could not be deleted: {reason})"
                ));
            }
            RunEvent::RunInterrupted { reason } => {
                self.session = Some(format!("interrupted: {reason}"));
            }
            RunEvent::RunQueued { reason } => self.session = Some(format!("queued: {reason}")),
            // Folded into the record (values are shown from it).
            RunEvent::ParamsBound { .. }
            | RunEvent::AttemptParams { .. }
            | RunEvent::ValuesPublished { .. }
            | RunEvent::ConditionsEvaluated { .. }
            | RunEvent::AttemptMetrics { .. }
            | RunEvent::SessionStateCreated { .. }
            | RunEvent::RebuildingSessionState { .. }
            | RunEvent::ForEachExpanded { .. }
            | RunEvent::Notified { .. }
            | RunEvent::RunStarted { .. }
            | RunEvent::RunFinished { .. }
            | RunEvent::RunAdmitted
            | RunEvent::Unknown => {}
        }
    }

    pub fn state_of(&self, task: &str) -> NodeState {
        self.states.get(task).copied().unwrap_or(NodeState::Pending)
    }

    /// Seconds the last attempt of each succeeded notebook took: what "use measured durations"
    /// writes back as estimates.
    pub fn measured_secs(&self) -> BTreeMap<String, f64> {
        spool_core::calibrate::measured_durations(&self.record)
    }

    /// Seconds from the run's start to its end, or to `now_ms` while it runs.
    pub fn elapsed_secs(&self, now_ms: i64) -> f64 {
        (self.record.ended_ms.unwrap_or(now_ms) - self.record.started_ms).max(0) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(json: &str) -> Vec<StoredEvent> {
        serde_json::from_str(json).expect("test events parse")
    }

    fn run() -> RunView {
        RunView::new(&RunRecord {
            id: 7,
            pipeline: "p".into(),
            file: "p.toml".into(),
            status: RunStatus::Running,
            started_ms: 1000,
            ended_ms: None,
            resumed_from: None,
            params: BTreeMap::new(),
            tasks: BTreeMap::new(),
            leaked_sessions: Vec::new(),
            run_info: None,
            pipeline_params: Default::default(),
            trigger: None,
            started_by: None,
        })
    }

    #[test]
    fn events_fold_into_node_states_attempts_and_measured_times() {
        let evs = events(
            r#"[
            {"seq":0,"at_ms":1000,"event":{"type":"run_started","pipeline":"p","file":"p.toml","params":{"d":1},"resumed_from":null,"plan":{}}},
            {"seq":2,"at_ms":1100,"event":{"type":"task_started","task":"a","attempt":1}},
            {"seq":3,"at_ms":1200,"event":{"type":"task_started","task":"b","attempt":1}},
            {"seq":4,"at_ms":3600,"event":{"type":"task_finished","task":"a","attempt":1,"outcome":"succeeded","output":"ok"}},
            {"seq":5,"at_ms":3700,"event":{"type":"task_finished","task":"b","attempt":1,"outcome":"failed","error":{"ename":"ValueError","evalue":"bad","traceback":["line 1"]}}},
            {"seq":6,"at_ms":3700,"event":{"type":"retry_scheduled","task":"b","attempt":2,"at_secs":12.5}},
            {"seq":7,"at_ms":3800,"event":{"type":"task_skipped","task":"c","reason":"a dependency failed"}},
            {"seq":8,"at_ms":3900,"event":{"type":"something_new","x":1}},
            {"seq":9,"at_ms":3900,"event":{"type":"session_changed","session":"7","state":"busy","message":"2 of 4 slots"}},
            {"seq":10,"at_ms":4000,"event":{"type":"cancel_requested"}}
        ]"#,
        );
        let mut v = run();
        for e in &evs {
            v.apply(e);
        }
        assert_eq!(v.state_of("a"), NodeState::Succeeded);
        assert_eq!(v.state_of("b"), NodeState::Retrying);
        assert_eq!(v.state_of("c"), NodeState::Skipped);
        assert_eq!(v.state_of("d"), NodeState::Pending);
        let b = &v.record.tasks["b"].attempts[0];
        assert_eq!(b.error.as_ref().map(|e| e.traceback.len()), Some(1));
        assert_eq!(
            v.record.tasks["a"].attempts[0].output.as_deref(),
            Some("ok")
        );
        assert_eq!(v.measured_secs(), BTreeMap::from([("a".to_string(), 2.5)]));
        assert!(v.is_live());
        assert_eq!(v.session.as_deref(), Some("busy: 2 of 4 slots"));
        assert!(v.cancel_requested);

        let end = events(
            r#"[{"seq":11,"at_ms":9000,"event":{"type":"run_finished","status":"failed"}}]"#,
        );
        v.apply(&end[0]);
        assert_eq!(
            (v.record.status, v.record.ended_ms),
            (RunStatus::Failed, Some(9000))
        );
        assert_eq!(v.elapsed_secs(99_999), 8.0);
    }

    #[test]
    fn settled_tasks_show_their_final_state_and_unsettled_ones_stay_pending() {
        let evs = events(
            r#"[
            {"seq":1,"at_ms":1000,"event":{"type":"task_started","task":"s/x","attempt":1}},
            {"seq":2,"at_ms":1500,"event":{"type":"task_finished","task":"s/x","attempt":1,"outcome":"timed_out"}},
            {"seq":3,"at_ms":1500,"event":{"type":"task_settled","task":"s/x","state":"failed","reason":{"kind":"attempt"}}},
            {"seq":4,"at_ms":1500,"event":{"type":"task_settled","task":"s","state":"failed","reason":{"kind":"pipeline_end"}}},
            {"seq":5,"at_ms":1600,"event":{"type":"task_carried_over","task":"k"}},
            {"seq":6,"at_ms":1700,"event":{"type":"cancel_requested"}},
            {"seq":7,"at_ms":1700,"event":{"type":"task_settled","task":"b","state":"cancelled","reason":{"kind":"run_cancelled"}}},
            {"seq":8,"at_ms":1700,"event":{"type":"task_settled","task":"c","state":"skipped","reason":{"kind":"condition","dependency":"s","state":"failed","condition":"succeeded"}}}
        ]"#,
        );
        let mut v = run();
        for e in &evs {
            v.apply(e);
        }
        let states: Vec<_> = ["s/x", "s", "k", "b", "c", "d"]
            .map(|t| v.state_of(t))
            .into();
        assert_eq!(
            states,
            [
                NodeState::TimedOut,
                NodeState::Failed,
                NodeState::Succeeded,
                NodeState::Cancelled,
                NodeState::Skipped,
                NodeState::Pending
            ]
        );
        assert_eq!(
            v.record.tasks["c"].skipped.as_deref(),
            Some("`s` failed, but it runs only when `s` succeeded")
        );
    }

    #[test]
    fn replayed_events_are_ignored() {
        let evs = events(
            r#"[
            {"seq":1,"at_ms":1000,"event":{"type":"task_started","task":"a","attempt":1}},
            {"seq":2,"at_ms":2000,"event":{"type":"task_finished","task":"a","attempt":1,"outcome":"succeeded"}}
        ]"#,
        );
        let mut v = run();
        for e in evs.iter().chain(&evs) {
            v.apply(e);
        }
        assert_eq!(v.record.tasks["a"].attempts.len(), 1);
        assert_eq!(v.state_of("a"), NodeState::Succeeded);
    }
}
