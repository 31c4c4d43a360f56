//! The plan's graph questions (levels, remaining critical path, critical path) answered on
//! petgraph equal a reference that follows every path of a random DAG: a task's level is the
//! longest chain of dependencies leading to it, its remaining path the longest sum of estimates
//! from it to the end, the critical path's length the longest sum over all paths, what lies
//! downstream of some tasks the ends of the paths that start at one of them. Tasks are
//! numbered in any order, not only the plan's topological one, so the answers cannot come
//! from the numbering.

use proptest::prelude::*;
use spool_core::dag::{Plan, TaskKind};
use spool_core::gen::LayeredDag;
use spool_core::model::Condition;

/// A DAG of up to 12 tasks: an edge from rank `i` to rank `j > i` where `edges` says so, rank
/// `i` numbered `numbering[i]`; each task a notebook with its estimate, or a sub-pipeline end;
/// `rerun` the tasks a repair names.
#[derive(Debug, Clone)]
struct GenDag {
    edges: Vec<bool>,
    numbering: Vec<usize>,
    tasks: Vec<(bool, f64)>,
    rerun: Vec<bool>,
}

fn any_dag() -> impl Strategy<Value = GenDag> {
    (0usize..13).prop_flat_map(|n| {
        let estimate = prop_oneof![Just(0.0), (0u32..600).prop_map(f64::from), 0.0..3600.0f64];
        (
            prop::collection::vec(prop::bool::weighted(0.35), n * n),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            prop::collection::vec((prop::bool::weighted(0.15), estimate), n),
            prop::collection::vec(prop::bool::weighted(0.2), n),
        )
            .prop_map(|(edges, numbering, tasks, rerun)| GenDag {
                edges,
                numbering,
                tasks,
                rerun,
            })
    })
}

fn plan_of(dag: &GenDag) -> Plan {
    let n = dag.tasks.len();
    let mut plan = LayeredDag::benchmark(n, 1).generate();
    for (task, &(end, estimate)) in plan.tasks.iter_mut().zip(&dag.tasks) {
        if end {
            task.kind = TaskKind::PipelineEnd;
        }
        task.settings.estimate_secs = estimate;
    }
    plan.deps = vec![Vec::new(); n];
    plan.dependents = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if dag.edges[i * n + j] {
                let (from, to) = (dag.numbering[i], dag.numbering[j]);
                plan.deps[to].push((from, Condition::SUCCEEDED));
                plan.dependents[from].push(to);
            }
        }
    }
    plan
}

/// Every path of the plan (a single task is one), found with an explicit stack.
fn every_path(plan: &Plan) -> Vec<Vec<usize>> {
    let mut stack: Vec<Vec<usize>> = (0..plan.tasks.len()).map(|t| vec![t]).collect();
    let mut paths = Vec::new();
    while let Some(path) = stack.pop() {
        let last = path[path.len() - 1];
        for &next in &plan.dependents[last] {
            let mut longer = path.clone();
            longer.push(next);
            stack.push(longer);
        }
        paths.push(path);
    }
    paths
}

/// Estimates summed from the path's end, as a remaining path adds them.
fn secs(plan: &Plan, path: &[usize]) -> f64 {
    path.iter()
        .rev()
        .fold(0.0, |tail, &t| plan.tasks[t].estimate_secs() + tail)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plan_graph_answers_equal_the_longest_paths(dag in any_dag()) {
        let plan = plan_of(&dag);
        let n = plan.tasks.len();
        let paths = every_path(&plan);
        let mut level = vec![0; n];
        let mut rest = vec![0.0f64; n];
        let mut critical = 0.0f64;
        let mut downstream = vec![false; n];
        for path in &paths {
            let (first, last) = (path[0], path[path.len() - 1]);
            level[last] = level[last].max(path.len() - 1);
            downstream[last] |= dag.rerun[first];
            let length = secs(&plan, path);
            rest[first] = rest[first].max(length);
            critical = critical.max(length);
        }
        let graph = plan.graph();
        prop_assert_eq!(graph.levels(), level);
        prop_assert_eq!(graph.remaining_path_secs(), rest);
        let named = (0..n).filter(|&t| dag.rerun[t]);
        prop_assert_eq!(graph.downstream(named), downstream);
        let (path, length) = graph.critical_path();
        prop_assert_eq!(length, critical);
        if n == 0 {
            prop_assert!(path.is_empty());
        } else {
            prop_assert!(plan.deps[path[0]].is_empty(), "starts without dependencies");
            prop_assert!(plan.dependents[path[path.len() - 1]].is_empty(), "runs to the end");
            for step in path.windows(2) {
                prop_assert!(plan.dependents[step[0]].contains(&step[1]), "follows edges");
            }
            prop_assert_eq!(secs(&plan, &path), length);
        }
        // The plan's own methods give the same answers.
        prop_assert_eq!(plan.levels(), graph.levels());
        prop_assert_eq!(plan.critical_path(), (path, length));
    }
}
