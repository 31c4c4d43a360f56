//! A run as the browser shows it: the stored events folded, one by one, into the state of each
//! notebook. The same fold serves the events of `GET /api/runs/{id}` and the live stream, so a
//! page opened mid-run and a page that watched from the start show the same thing.

use spool_core::dag::Plan;
use spool_core::layout::PlanDrawing;
use spool_core::runlog::{RunEvent, RunRecord, RunStatus, StoredEvent};
use spool_core::sched::Final;
use spool_core::timeline::ReadyTimes;
use std::collections::BTreeMap;
use std::rc::Rc;

/// What a node of the graph, or a bar of the Gantt chart, is coloured by: core's state of a
/// task in a run, the one the grid of runs shows too.
pub use spool_core::grid::CellState as NodeState;

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
    /// The session's Spark UI, when Livy reported one.
    pub spark_ui: Option<String>,
    /// What the run ran: its `RunStarted` plan as recorded (for comparing with the file now),
    /// read back and drawn. The plan is `None` for a log that recorded none, the drawing also
    /// for a plan too large to draw.
    pub ran: Option<Rc<Ran>>,
    /// Why the recorded plan could not be read (the run is then drawn from the file).
    pub ran_unreadable: Option<String>,
    /// When its attempts became ready and its session came up, for the Gantt chart.
    pub ready: ReadyTimes,
}

/// The plan a run ran, from its log.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    pub recorded: serde_json::Value,
    pub plan: Rc<Plan>,
    pub drawing: Option<Rc<PlanDrawing>>,
}

impl Ran {
    /// `Ok(None)` for a log that recorded no plan.
    fn of(recorded: &serde_json::Value) -> Result<Option<Ran>, String> {
        let Some(plan) = spool_core::recorded::read(recorded).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        Ok(Some(Ran {
            recorded: recorded.clone(),
            drawing: crate::doc_state::drawing_of(&plan, None, &Default::default()),
            plan: Rc::new(plan),
        }))
    }
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
            spark_ui: None,
            ran: None,
            ran_unreadable: None,
            ready: ReadyTimes::default(),
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
        self.ready.apply(stored);
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
            RunEvent::TaskCarriedOver { task } => set(task, NodeState::Kept),
            RunEvent::TaskSettled { task, state, .. } => {
                let shown = match state {
                    // Kept from the resumed run: it did not run in this one.
                    Final::Succeeded if self.states.get(task) == Some(&NodeState::Kept) => {
                        NodeState::Kept
                    }
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
            RunEvent::SessionChanged {
                state,
                message,
                spark_ui,
                ..
            } => {
                if let Some(ui) = spark_ui
                    .as_deref()
                    .and_then(spool_core::runlog::web_address)
                {
                    self.spark_ui = Some(ui);
                }
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
            RunEvent::RunStarted { plan, .. } => match Ran::of(plan) {
                Ok(ran) => self.ran = ran.map(Rc::new),
                Err(why) => self.ran_unreadable = Some(why),
            },
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
            | RunEvent::RunFinished { .. }
            | RunEvent::RunAdmitted
            | RunEvent::Unknown => {}
        }
    }

    pub fn state_of(&self, task: &str) -> NodeState {
        self.states.get(task).copied().unwrap_or(NodeState::Pending)
    }

    /// Whether the task is settled in this run (ended, skipped, or kept from the resumed run).
    pub fn is_done(&self, task: &str) -> bool {
        !matches!(
            self.state_of(task),
            NodeState::Pending | NodeState::Running | NodeState::Retrying
        )
    }

    /// What a node says under its name in this run: how long its last attempt took (or that
    /// it runs), its attempt when retried, or the run it was kept from; `None` before it starts.
    pub fn node_caption(&self, task: &str) -> Option<String> {
        let t = self.record.tasks.get(task)?;
        if t.carried_over {
            return Some(match self.record.resumed_from {
                Some(from) => format!("kept from run #{from}"),
                None => "kept".into(),
            });
        }
        let Some(last) = t.attempts.last() else {
            return Some(self.state_of(task).name().to_string());
        };
        let took = match last.ended_ms {
            Some(end) => crate::charts::duration((end - last.started_ms).max(0) as f64 / 1000.0),
            None => "running".into(),
        };
        Some(match last.attempt {
            1 => took,
            n => format!("{took} · attempt {n}"),
        })
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
                NodeState::Kept,
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
    fn a_run_is_drawn_from_its_recorded_plan_and_says_what_it_kept() {
        let evs = events(
            r#"[
            {"seq":0,"at_ms":1000,"event":{"type":"run_started","pipeline":"p","file":"p.toml","params":{},"resumed_from":4,
              "plan":{"tasks":[{"id":"a","kind":"notebook"},{"id":"b","kind":"notebook"}],"deps":[[],[[0,"succeeded"]]],
                      "declared":[{"from":"a","to":"b","on":"succeeded"}]}}},
            {"seq":1,"at_ms":1000,"event":{"type":"task_carried_over","task":"a"}},
            {"seq":2,"at_ms":1100,"event":{"type":"task_started","task":"b","attempt":1}},
            {"seq":3,"at_ms":1600,"event":{"type":"task_finished","task":"b","attempt":1,"outcome":"failed"}},
            {"seq":4,"at_ms":1600,"event":{"type":"retry_scheduled","task":"b","attempt":2,"at_secs":1.0}},
            {"seq":5,"at_ms":2600,"event":{"type":"task_started","task":"b","attempt":2}}
        ]"#,
        );
        // As the server lists it: resumed from run 4.
        let mut record = run().record;
        record.resumed_from = Some(4);
        let mut v = RunView::new(&record);
        for e in &evs {
            v.apply(e);
        }
        let ran = v.ran.clone().expect("the recorded plan");
        let drawn: Vec<&str> = ran
            .drawing
            .as_ref()
            .expect("drawn")
            .nodes
            .iter()
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(drawn, ["a", "b"]);
        assert_eq!(v.node_caption("a").as_deref(), Some("kept from run #4"));
        assert_eq!(v.node_caption("b").as_deref(), Some("running · attempt 2"));
        assert_eq!(v.node_caption("c"), None);
        assert!(v.is_done("a") && !v.is_done("b"));

        let mut broken = run();
        broken.apply(&events(
            r#"[{"seq":0,"at_ms":0,"event":{"type":"run_started","pipeline":"p","file":"p.toml","params":{},"resumed_from":null,
                "plan":{"tasks":[{"id":"a"}],"deps":[[[3,"succeeded"]]]}}}]"#,
        )[0]);
        assert!(broken.ran.is_none());
        assert!(broken.ran_unreadable.is_some(), "said, not drawn wrong");
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
