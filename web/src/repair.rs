//! A run's notebooks as a table (state, time, the values each published) and the repair of a
//! finished run: pick notebooks on its graph or in the table, see what runs again (core's
//! resume rule, `spool_core::repair`, on the plan the run ran) and start it, like Databricks'
//! "Repair run".

use crate::charts::duration;
use crate::run::RunView;
use spool_core::dag::{Plan, TaskKind};
use spool_core::repair::Outline;
use spool_core::runlog::TaskRecord;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use yew::prelude::*;

/// Characters of a notebook's values shown in the table (all of them in the tooltip).
const VALUES_CHARS: usize = 120;

/// The notebooks picked to run again in a repair of run `run`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Repair {
    pub run: i64,
    pub selected: BTreeSet<String>,
}

impl Repair {
    /// `repair` as it is, with `task` picked or let go.
    pub fn toggled(repair: &Repair, task: String) -> Repair {
        let mut next = repair.clone();
        if !next.selected.remove(&task) {
            next.selected.insert(task);
        }
        next
    }
}

/// What a node or a row is in the repair being prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Picked by the user: runs again.
    Selected,
    /// Runs again: downstream of something that does, or did not succeed.
    RunsAgain,
    /// Runs again first, to rebuild what it left in the Spark session.
    Rebuilt,
    /// Kept from the run.
    Kept,
}

impl Mark {
    pub fn name(self) -> &'static str {
        match self {
            Mark::Selected => "selected",
            Mark::RunsAgain => "runs-again",
            Mark::Rebuilt => "rebuilt",
            Mark::Kept => "kept",
        }
    }
}

/// What the repair would do, by task: core's outline of resuming the run with the picked
/// notebooks named to run again.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub outline: Outline,
    pub marks: BTreeMap<String, Mark>,
}

impl Preview {
    pub fn of(plan: &Plan, run: &RunView, repair: &Repair) -> Result<Preview, String> {
        let rerun: Vec<String> = repair.selected.iter().cloned().collect();
        // A run of `spool serve` resumes into a new session (a named one is the server's
        // setting, not the page's): what kept notebooks left in the old one is rebuilt.
        let outline = Outline::of_run(plan, &run.record, &rerun, false)?;
        let mut marks = BTreeMap::new();
        for id in &outline.keep {
            marks.insert(id.clone(), Mark::Kept);
        }
        for (id, _) in &outline.rebuild {
            marks.insert(id.clone(), Mark::Rebuilt);
        }
        for id in &outline.run_again {
            let mark = if repair.selected.contains(id) {
                Mark::Selected
            } else {
                Mark::RunsAgain
            };
            marks.insert(id.clone(), mark);
        }
        // A picked sub-pipeline or for-each is marked itself too (its notebooks run again).
        for id in &repair.selected {
            marks.insert(id.clone(), Mark::Selected);
        }
        Ok(Preview { outline, marks })
    }

    /// The names of the graph's nodes' marks, for `DagView`.
    pub fn mark_names(&self) -> Rc<BTreeMap<String, &'static str>> {
        Rc::new(
            self.marks
                .iter()
                .map(|(id, m)| (id.clone(), m.name()))
                .collect(),
        )
    }
}

/// What a notebook published in this run: its exit value and each `spool.set_value`, in
/// words (as recorded: secrets are masked by the server before they are).
pub fn values_text(t: &TaskRecord) -> Option<String> {
    let v = t.values.as_ref()?;
    let json = |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_default();
    let parts: Vec<String> = v
        .value
        .iter()
        .map(|x| format!("exit: {}", json(x)))
        .chain(v.values.iter().map(|(k, x)| format!("{k} = {}", json(x))))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}

fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    text.chars().take(chars - 1).chain(['…']).collect()
}

/// The rows of a run's table: the plan's notebooks, for-eaches and sub-pipelines in its
/// order, then tasks the run added (iterations of a list read at run time).
fn rows<'a>(plan: &'a Plan, run: &'a RunView) -> Vec<(&'a str, Option<TaskKind>)> {
    let mut rows: Vec<(&str, Option<TaskKind>)> = plan
        .tasks
        .iter()
        .map(|t| (t.id.as_str(), Some(t.kind)))
        .collect();
    let known: BTreeSet<&str> = rows.iter().map(|(id, _)| *id).collect();
    rows.extend(
        run.record
            .tasks
            .keys()
            .filter(|id| !known.contains(id.as_str()))
            .map(|id| (id.as_str(), None)),
    );
    rows
}

#[derive(Properties, PartialEq)]
pub struct TableProps {
    pub plan: Rc<Plan>,
    pub run: Rc<RunView>,
    /// The repair being prepared (checkboxes shown), with what it would do.
    pub repair: Option<(Repair, Rc<Result<Preview, String>>)>,
    pub on_toggle: Callback<String>,
    /// Opens a notebook's attempts beside the graph.
    pub on_open: Callback<String>,
}

/// The run's notebooks, a row each: state, attempts and time, values published; while a
/// repair is prepared, a checkbox to pick it and what the repair does with it.
#[function_component(TaskTable)]
pub fn task_table(props: &TableProps) -> Html {
    let run = &props.run;
    let preview = props.repair.as_ref().and_then(|(_, p)| (**p).as_ref().ok());
    let body = rows(&props.plan, run).into_iter().map(|(id, kind)| {
        let t = run.record.tasks.get(id);
        let state = run.state_of(id);
        let took = t.and_then(|t| t.attempts.last()).map(|a| {
            let d = a.ended_ms.map_or("running".to_string(), |e| {
                duration((e - a.started_ms).max(0) as f64 / 1000.0)
            });
            if a.attempt > 1 {
                format!("{d} · attempt {}", a.attempt)
            } else {
                d
            }
        });
        let values = t.and_then(values_text);
        let mark = preview.and_then(|p| p.marks.get(id)).copied();
        let pick = props.repair.as_ref().map(|(r, _)| {
            let checked = r.selected.contains(id);
            // Only what the plan knows can be named: iterations added at run time re-run
            // with their for-each.
            let disabled = kind.is_none();
            let onchange = {
                let (toggle, id) = (props.on_toggle.clone(), id.to_string());
                Callback::from(move |_: Event| toggle.emit(id.clone()))
            };
            html! {
                <td class="pick"><input type="checkbox" class="repair-pick" data-id={id.to_string()}
                    {checked} {disabled} {onchange} title="run this again, with everything downstream" /></td>
            }
        });
        let open = {
            let (on_open, id) = (props.on_open.clone(), id.to_string());
            Callback::from(move |_: MouseEvent| on_open.emit(id.clone()))
        };
        let kind_name = match kind {
            Some(TaskKind::PipelineEnd) => "sub-pipeline",
            Some(TaskKind::ForEach) => "for-each",
            _ => "notebook",
        };
        html! {
            <tr class="task-row" data-id={id.to_string()} data-state={state.name()} data-kind={kind_name}
                data-repair={mark.map(Mark::name)}>
                { crate::each(pick) }
                <td class="task-id"><a href="javascript:void(0)" onclick={open}>{ id }</a></td>
                <td class={classes!("task-state", state.name())}>{ state.name() }</td>
                <td class="task-took">{ took.unwrap_or_default() }</td>
                <td class="task-values" title={values.clone()}>{ values.as_deref().map(|v| cut(v, VALUES_CHARS)).unwrap_or_default() }</td>
                { crate::each(mark.map(|m| html! { <td class="task-repair">{ m.name().replace('-', " ") }</td> })) }
            </tr>
        }
    });
    let repairing = props.repair.is_some();
    html! {
        <table id="run-tasks" class="run-tasks">
            <thead><tr>
                if repairing { <th></th> }
                <th>{ "task" }</th><th>{ "state" }</th><th>{ "took" }</th><th>{ "values published" }</th>
                if repairing { <th>{ "in the repair" }</th> }
            </tr></thead>
            <tbody>{ for body }</tbody>
        </table>
    }
}

/// What a resume does, a line each: what runs again (the picked notebooks said so), what runs
/// again first to rebuild session state, what is kept.
fn outline_lines(outline: &Outline, picked: &BTreeSet<String>) -> Html {
    let again: Vec<String> = outline
        .run_again
        .iter()
        .map(|id| match picked.contains(id) {
            true => format!("{id} (selected)"),
            false => id.clone(),
        })
        .collect();
    let rebuilt = outline.rebuild_described();
    let kept = match outline.keep.is_empty() {
        true => "nothing".to_string(),
        false => outline.keep.join(", "),
    };
    html! {
        <>
            <p class="runs-again">{ format!("Runs again ({}): {}", again.len(), again.join(", ")) }</p>
            if !rebuilt.is_empty() {
                <p class="rebuilt">{ format!("Runs again first, to rebuild what it left in the Spark session ({}): {}", rebuilt.len(), rebuilt.join(", ")) }</p>
            }
            <p class="kept">{ format!("Kept from this run ({}): {kept}", outline.keep.len()) }</p>
        </>
    }
}

/// What "Resume from failure" would do with `run`, before it is pressed (core's rule, as
/// `spool plan --resume` prints it).
pub fn resume_preview(plan: &Plan, run: &RunView) -> Html {
    match Outline::of_run(plan, &run.record, &[], false) {
        Ok(outline) => html! {
            <div class="resume-outline" id="resume-outline">
                { outline_lines(&outline, &BTreeSet::new()) }
            </div>
        },
        Err(why) => html! { <p class="diagnostic">{ why }</p> },
    }
}

/// The repair bar: what runs again and what is kept, and the button that starts it.
pub fn repair_bar(
    repair: &Repair,
    preview: &Result<Preview, String>,
    on_start: Callback<MouseEvent>,
    on_leave: Callback<MouseEvent>,
) -> Html {
    let summary = match preview {
        Err(why) => html! { <p class="diagnostic">{ why }</p> },
        Ok(_) if repair.selected.is_empty() => html! {
            <p class="hint">{ "Pick the notebooks to run again: click them on the graph or tick them below. Everything downstream of them runs again too; the rest is kept." }</p>
        },
        Ok(p) => outline_lines(&p.outline, &repair.selected),
    };
    let ready = preview.is_ok() && !repair.selected.is_empty();
    html! {
        <div class="repair-bar" id="repair-bar">
            { summary }
            <button id="rerun-button" class="primary" disabled={!ready} onclick={on_start}
                title="a new run of the saved file (with the overrides above), keeping what is not run again">
                { "Re-run these and everything downstream" }</button>
            <button id="repair-leave" onclick={on_leave}>{ "Cancel" }</button>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spool_core::runlog::{RunEvent, RunRecord, StoredEvent};

    /// `load -> count -> report`, and `side` on its own.
    fn plan() -> Plan {
        let sources = spool_core::source::MemorySources::default().with("nb.py", "");
        let text = "name = \"p\"\n\
            [[notebook]]\nid = \"load\"\npath = \"nb.py\"\n\
            [[notebook]]\nid = \"count\"\npath = \"nb.py\"\ndepends_on = [\"load\"]\n\
            [[notebook]]\nid = \"report\"\npath = \"nb.py\"\ndepends_on = [\"count\"]\n\
            [[notebook]]\nid = \"side\"\npath = \"nb.py\"\n";
        spool_core::dag::load_text("p.toml", text, &sources)
            .plan
            .expect("the fixture loads")
    }

    /// A finished run of `plan` in which every notebook succeeded, `count` publishing values.
    fn finished(plan: &Plan) -> RunView {
        let started: StoredEvent = serde_json::from_value(serde_json::json!({"seq": 0,
            "at_ms": 0, "event": {"type": "run_started", "pipeline": "p", "file": "p.toml",
            "params": {}, "resumed_from": null, "plan": {}}}))
        .expect("a start event");
        let record = RunRecord::started(3, &started).expect("a run's first event");
        let mut view = RunView::new(&record);
        let mut seq = 0;
        let mut push = |event: RunEvent| {
            seq += 1;
            view.apply(&StoredEvent {
                seq,
                at_ms: seq * 100,
                event,
            });
        };
        for t in &plan.tasks {
            push(RunEvent::TaskStarted {
                task: t.id.clone(),
                attempt: 1,
            });
            if t.id == "count" {
                push(
                    serde_json::from_value(serde_json::json!({"type": "values_published",
                    "task": "count", "attempt": 1,
                    "values": {"value": 20, "values": {"day": "2024-07-14", "token": "***"}}}))
                    .expect("a values event"),
                );
            }
            push(
                serde_json::from_value(serde_json::json!({"type": "task_finished",
                "task": t.id, "attempt": 1, "outcome": "succeeded"}))
                .expect("a finish event"),
            );
            push(
                serde_json::from_value(serde_json::json!({"type": "task_settled",
                "task": t.id, "state": "succeeded", "reason": {"kind": "attempt"}}))
                .expect("a settle event"),
            );
        }
        push(RunEvent::RunFinished {
            status: spool_core::runlog::RunStatus::Succeeded,
        });
        view
    }

    #[test]
    fn picking_a_notebook_marks_it_and_what_depends_on_it_and_keeps_the_rest() {
        let p = plan();
        let run = finished(&p);
        let repair = Repair::toggled(
            &Repair {
                run: 3,
                selected: BTreeSet::new(),
            },
            "count".into(),
        );
        let preview = Preview::of(&p, &run, &repair).expect("count is in the plan");
        let marks: Vec<(&str, &str)> = preview
            .marks
            .iter()
            .map(|(id, m)| (id.as_str(), m.name()))
            .collect();
        assert_eq!(
            marks,
            [
                ("count", "selected"),
                ("load", "kept"),
                ("report", "runs-again"),
                ("side", "kept")
            ]
        );
        assert_eq!(preview.outline.run_again, ["count", "report"]);
        // Picked again: let go, nothing runs again.
        let none = Repair::toggled(&repair, "count".into());
        assert!(none.selected.is_empty());
        let preview = Preview::of(&p, &run, &none).expect("nothing picked");
        assert!(preview.outline.run_again.is_empty());
    }

    #[test]
    fn a_notebooks_values_read_as_its_exit_value_and_each_key_as_recorded() {
        let p = plan();
        let run = finished(&p);
        assert_eq!(
            values_text(&run.record.tasks["count"]).as_deref(),
            Some(r#"exit: 20 · day = "2024-07-14" · token = "***""#)
        );
        assert_eq!(values_text(&run.record.tasks["load"]), None);
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
