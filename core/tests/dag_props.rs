//! Property tests of `dag::load`: it never panics whatever the input, every plan it produces
//! is well formed, and bridging inactive steps changes no outcome: for any outcomes of the
//! notebooks that run, each active notebook runs or is skipped in the plan exactly as it would
//! in the declared pipeline, where an inactive step counts as succeeded when its own
//! dependencies hold and as skipped otherwise.

use proptest::prelude::*;
use spool_core::dag::{load, LeftOut, Plan};
use spool_core::model::{Condition, Outcome};
use spool_core::source::MemorySources;
use std::collections::BTreeSet;

const CONDITIONS: [&str; 4] = ["succeeded", "failed", "completed", "skipped"];

/// One generated `[[notebook]]` or `[[pipeline]]` entry.
#[derive(Debug, Clone)]
struct GenStep {
    /// A sub-pipeline (`sub.toml`) rather than a notebook.
    pipeline: bool,
    active: bool,
    /// (index of the step depended on, condition: an index into CONDITIONS, or 4 for the plain
    /// string form). An index past the last step names an unknown id.
    deps: Vec<(usize, usize)>,
}

fn toml_of(steps: &[GenStep]) -> String {
    let mut s = String::new();
    for (i, step) in steps.iter().enumerate() {
        let (table, path) = if step.pipeline {
            ("pipeline", "sub.toml")
        } else {
            ("notebook", "nb.py")
        };
        s.push_str(&format!("[[{table}]]\nid = \"s{i}\"\npath = \"{path}\"\n"));
        if !step.active {
            s.push_str("active = false\n");
        }
        if !step.deps.is_empty() {
            let deps: Vec<String> = step
                .deps
                .iter()
                .map(|&(j, c)| match CONDITIONS.get(c) {
                    Some(on) => format!("{{ id = \"s{j}\", on = \"{on}\" }}"),
                    None => format!("\"s{j}\""),
                })
                .collect();
            s.push_str(&format!("depends_on = [{}]\n", deps.join(", ")));
        }
    }
    s
}

/// Steps whose dependencies may point anywhere (cycles, self, unknown ids) and may include
/// sub-pipelines.
fn any_steps() -> impl Strategy<Value = Vec<GenStep>> {
    (1usize..9).prop_flat_map(|n| {
        prop::collection::vec(
            (
                prop::bool::weighted(0.2),
                prop::bool::weighted(0.7),
                prop::collection::vec((0..n + 1, 0usize..5), 0..4),
            )
                .prop_map(|(pipeline, active, deps)| GenStep {
                    pipeline,
                    active,
                    deps,
                }),
            n,
        )
    })
}

/// A condition index, plain `succeeded` about half the time: with many conditions that
/// rarely hold, most generated notebooks would be skipped whatever happens, and bridging would
/// go untested.
fn condition_index() -> impl Strategy<Value = usize> {
    prop_oneof![2 => Just(4usize), 2 => Just(0usize), 1 => 1usize..4]
}

/// Notebooks only, each depending on earlier ones: always acyclic, ids all known.
fn flat_acyclic_steps() -> impl Strategy<Value = Vec<GenStep>> {
    (1usize..10).prop_flat_map(|n| {
        (0..n)
            .map(|i| {
                let deps = if i == 0 {
                    Just(Vec::new()).boxed()
                } else {
                    // Distinct steps: bridging is about several steps feeding one.
                    prop::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3))
                        .prop_flat_map(|on| {
                            let n = on.len();
                            (Just(on), prop::collection::vec(condition_index(), n))
                        })
                        .prop_map(|(on, conditions)| on.into_iter().zip(conditions).collect())
                        .boxed()
                };
                (prop::bool::weighted(0.6), deps)
                    .prop_map(|(active, deps)| GenStep {
                        pipeline: false,
                        active,
                        deps,
                    })
                    .boxed()
            })
            .collect::<Vec<_>>()
    })
}

fn sources(root: &str, sub: &str) -> MemorySources {
    MemorySources::default()
        .with("pipeline.toml", root)
        .with("sub.toml", sub)
        .with("nb.py", "")
}

fn condition(c: usize) -> Condition {
    CONDITIONS
        .get(c)
        .and_then(|name| Condition::parse(name))
        .unwrap_or(Condition::SUCCEEDED)
}

/// The invariants every plan keeps, whatever it was loaded from.
fn check_well_formed(plan: &Plan, inactive_ids: &BTreeSet<String>) -> Result<(), TestCaseError> {
    let task_ids: BTreeSet<&str> = plan.tasks.iter().map(|t| t.id.as_str()).collect();
    prop_assert_eq!(task_ids.len(), plan.tasks.len(), "task ids are unique");
    prop_assert_eq!(plan.deps.len(), plan.tasks.len());
    prop_assert_eq!(plan.dependents.len(), plan.tasks.len());
    for (t, deps) in plan.deps.iter().enumerate() {
        for &(d, on) in deps {
            prop_assert!(d < t, "dependency {} of task {} is not before it", d, t);
            prop_assert!(
                on != Condition::NEVER,
                "a dependency that never holds is kept"
            );
            prop_assert!(plan.dependents[d].contains(&t), "dependents mirror deps");
        }
    }
    let edges: usize = plan.deps.iter().map(Vec::len).sum();
    let mirrored: usize = plan.dependents.iter().map(Vec::len).sum();
    prop_assert_eq!(edges, mirrored);
    for task in &plan.tasks {
        prop_assert!(
            !inactive_ids.contains(&task.id),
            "inactive step {} is a task",
            task.id
        );
    }
    for step in &plan.inactive {
        prop_assert!(!task_ids.contains(step.id.as_str()));
        for edge in &step.bridged {
            prop_assert!(
                task_ids.contains(edge.from.as_str()),
                "bridged edge from {}, which does not run",
                edge.from
            );
        }
    }
    Ok(())
}

/// Ids of the steps that are inactive, directly or through an inactive sub-pipeline.
fn inactive_ids(root: &[GenStep], sub: &[GenStep]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, step) in root.iter().enumerate() {
        if !step.active {
            out.insert(format!("s{i}"));
        }
        if step.pipeline {
            for (j, inner) in sub.iter().enumerate() {
                if !step.active || !inner.active {
                    out.insert(format!("s{i}/s{j}"));
                }
            }
        }
    }
    out
}

/// Outcome of every step of a flat pipeline as declared, given the outcome of each active
/// notebook that runs.
fn declared_outcomes(steps: &[GenStep], ran: &[bool]) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let holds = step.deps.iter().all(|&(j, c)| condition(c).accepts(out[j]));
        out.push(match (holds, step.active) {
            (false, _) => Outcome::Skipped,
            (true, false) => Outcome::Succeeded,
            (true, true) if ran[i] => Outcome::Succeeded,
            (true, true) => Outcome::Failed,
        });
    }
    out
}

/// Outcome of every task of the plan, given the same outcomes of the notebooks that run.
fn planned_outcomes(plan: &Plan, ran: &[bool]) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = Vec::with_capacity(plan.tasks.len());
    for (t, task) in plan.tasks.iter().enumerate() {
        let holds = plan.deps[t].iter().all(|&(d, c)| c.accepts(out[d]));
        let index: usize = task.id[1..].parse().expect("generated ids are s<index>");
        out.push(match holds {
            false => Outcome::Skipped,
            true if ran[index] => Outcome::Succeeded,
            true => Outcome::Failed,
        });
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = load("pipeline.toml", &sources(&text, ""));
    }

    #[test]
    fn never_panics_on_toml_like_text(
        text in "((\\[\\[(notebook|pipeline)\\]\\]|\\[pool\\]|\\[defaults\\]|id = \"[a-c/]{0,2}\"|path = \"[a-z./\\\\]{0,8}(\\.py|\\.toml)?\"|depends_on = \\[(\"[a-c]\"|\\{ ?id = \"[a-c]\", on = \"[a-z]{0,9}\" ?\\}|, |[0-9]){0,4}\\]|(slots|retry|executors|executor_cores|estimate_secs|timeout_secs|max_concurrency) = -?[0-9]{1,11}(\\.[0-9])?|active = (true|false|1)|params = \\{ ?[a-z] = [0-9\"a-z]{0,3} ?\\}|[a-z_]{1,8} = [0-9\"\\[\\{]{0,3})\n){0,24}",
        sub in "((\\[\\[(notebook|pipeline)\\]\\]|id = \"[a-c]\"|path = \"(nb\\.py|sub\\.toml|pipeline\\.toml|\\.\\./x\\.py)\"|depends_on = \\[\"[a-c]\"\\])\n){0,8}",
    ) {
        let loaded = load("pipeline.toml", &sources(&text, &sub));
        if let Some(plan) = &loaded.plan {
            check_well_formed(plan, &BTreeSet::new())?;
        }
    }

    #[test]
    fn plans_of_generated_pipelines_are_well_formed(root in any_steps(), sub in any_steps()) {
        // The sub-pipeline may not include itself; a pipeline step in it becomes a notebook.
        let sub: Vec<GenStep> = sub.into_iter().map(|s| GenStep { pipeline: false, ..s }).collect();
        let loaded = load("pipeline.toml", &sources(&toml_of(&root), &toml_of(&sub)));
        if let Some(plan) = &loaded.plan {
            check_well_formed(plan, &inactive_ids(&root, &sub))?;
        }
    }

    #[test]
    fn bridging_changes_no_outcome(
        steps in flat_acyclic_steps(),
        ran in prop::collection::vec(any::<bool>(), 10),
    ) {
        let loaded = load("pipeline.toml", &sources(&toml_of(&steps), ""));
        let Some(plan) = &loaded.plan else {
            // The one refusal on a well-formed acyclic pipeline: "skipped" through an inactive
            // step with several dependencies has no equivalent.
            prop_assert!(
                loaded.diagnostics.iter().any(|d| d.message.contains("cannot be expressed")),
                "refused: {:?}", loaded.diagnostics
            );
            return Ok(());
        };
        check_well_formed(plan, &inactive_ids(&steps, &[]))?;
        let declared = declared_outcomes(&steps, &ran);
        let planned = planned_outcomes(plan, &ran);
        for (t, task) in plan.tasks.iter().enumerate() {
            let index: usize = task.id[1..].parse().expect("generated ids are s<index>");
            prop_assert_eq!(planned[t], declared[index], "outcome of {}", task.id);
        }
        let mut accounted = plan.tasks.len();
        for step in &plan.inactive {
            let index: usize = step.id[1..].parse().expect("generated ids are s<index>");
            prop_assert_eq!(step.why == LeftOut::Inactive, !steps[index].active);
            if step.why == LeftOut::NeverRuns {
                prop_assert_eq!(declared[index], Outcome::Skipped, "{} never runs", step.id);
                accounted += 1;
            }
        }
        let active = steps.iter().filter(|s| s.active).count();
        prop_assert_eq!(accounted, active, "every active notebook runs or never runs");
    }
}
