//! A plan's dependency graph on petgraph, for the questions asked of the graph as a whole:
//! each task's level, its remaining critical path, the critical path, what lies downstream.

use super::{Plan, TaskId};
use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::Dfs;
use petgraph::Direction::{Incoming, Outgoing};

/// A plan's tasks as a petgraph graph: node `i` is task `i`, weighted with its estimate, and an
/// edge runs from each dependency to its dependent. [`Plan::graph`] builds it; asking it
/// several questions costs one build.
#[derive(Debug, Clone)]
pub struct PlanGraph {
    graph: DiGraph<f64, ()>,
    /// Every task after its dependencies.
    order: Vec<NodeIndex>,
}

impl PlanGraph {
    fn of(plan: &Plan) -> PlanGraph {
        let edges = plan.deps.iter().map(Vec::len).sum();
        let mut graph = DiGraph::with_capacity(plan.tasks.len(), edges);
        for task in &plan.tasks {
            graph.add_node(task.estimate_secs());
        }
        for (t, deps) in plan.deps.iter().enumerate() {
            for &(d, _) in deps {
                graph.add_edge(NodeIndex::new(d), NodeIndex::new(t), ());
            }
        }
        // `load` lists a plan's tasks after their dependencies: that order is used as it is (one
        // look at each dependency), since sorting it again cost 26 of the 52 ms the graph took
        // at 100,000 tasks. A plan built otherwise is sorted by petgraph's `toposort`, a
        // depth-first search on its own stack (no recursion, O(V + E); `visit::Topo` looks at
        // every dependency of a task once per dependency: quadratic for a task that waits for
        // thousands); one with a cycle keeps its task order.
        let ordered = plan
            .deps
            .iter()
            .enumerate()
            .all(|(t, deps)| deps.iter().all(|&(d, _)| d < t));
        let order = if ordered {
            graph.node_indices().collect()
        } else {
            toposort(&graph, None).unwrap_or_else(|_| graph.node_indices().collect())
        };
        PlanGraph { graph, order }
    }

    /// Topological level of each task: 0 for tasks without dependencies, else one more than
    /// the deepest dependency.
    pub fn levels(&self) -> Vec<usize> {
        let mut level = vec![0; self.graph.node_count()];
        for &v in &self.order {
            level[v.index()] = self
                .graph
                .neighbors_directed(v, Incoming)
                .map(|d| level[d.index()] + 1)
                .max()
                .unwrap_or(0);
        }
        level
    }

    /// Longest remaining estimated path from each task to the end (its own estimate included):
    /// the critical-path priority.
    pub fn remaining_path_secs(&self) -> Vec<f64> {
        let mut rest = vec![0.0; self.graph.node_count()];
        for &v in self.order.iter().rev() {
            let tail = self
                .graph
                .neighbors_directed(v, Outgoing)
                .map(|w| rest[w.index()])
                .fold(0.0, f64::max);
            rest[v.index()] = self.graph[v] + tail;
        }
        rest
    }

    /// Which tasks are among `from` or depend on one of them, directly or through others: what
    /// a repair runs again. One depth-first search on its own stack, each task visited once.
    pub fn downstream(&self, from: impl IntoIterator<Item = TaskId>) -> Vec<bool> {
        let mut reached = vec![false; self.graph.node_count()];
        let mut dfs = Dfs::empty(&self.graph);
        for t in from {
            dfs.move_to(NodeIndex::new(t));
            while let Some(v) = dfs.next(&self.graph) {
                reached[v.index()] = true;
            }
        }
        reached
    }

    /// The critical path by `estimate_secs`, and its length in seconds: from the task without
    /// dependencies whose remaining path is longest, each step to the dependent whose remaining
    /// path is longest (the lowest task index among equals).
    pub fn critical_path(&self) -> (Vec<TaskId>, f64) {
        let rest = self.remaining_path_secs();
        let longest = |tasks: &mut dyn Iterator<Item = NodeIndex>| {
            tasks
                .map(NodeIndex::index)
                .max_by(|&a, &b| rest[a].total_cmp(&rest[b]).then(b.cmp(&a)))
        };
        let Some(mut cur) = longest(&mut self.graph.externals(Incoming)) else {
            return (Vec::new(), 0.0);
        };
        let length = rest[cur];
        let mut path = vec![cur];
        // A path has at most one step per task; the bound holds even on a cycle built by hand.
        while path.len() < self.graph.node_count() {
            let Some(next) =
                longest(&mut self.graph.neighbors_directed(NodeIndex::new(cur), Outgoing))
            else {
                break;
            };
            path.push(next);
            cur = next;
        }
        (path, length)
    }
}

impl Plan {
    /// The plan's dependency graph, for asking it several of the questions below at once.
    pub fn graph(&self) -> PlanGraph {
        PlanGraph::of(self)
    }

    /// Topological level of each task: see [`PlanGraph::levels`].
    pub fn levels(&self) -> Vec<usize> {
        self.graph().levels()
    }

    /// The critical-path priority of each task: see [`PlanGraph::remaining_path_secs`].
    pub fn remaining_path_secs(&self) -> Vec<f64> {
        self.graph().remaining_path_secs()
    }

    /// The critical path and its length: see [`PlanGraph::critical_path`].
    pub fn critical_path(&self) -> (Vec<TaskId>, f64) {
        self.graph().critical_path()
    }
}

#[cfg(test)]
mod tests {
    use crate::dag::MAX_TASKS;
    use crate::gen::LayeredDag;
    use crate::model::Condition;

    /// The deepest plan the limits allow, one chain of `MAX_TASKS` tasks, is answered without
    /// recursion: a recursive search would overflow the stack on it.
    #[test]
    fn the_longest_chain_the_limits_allow_is_answered_without_recursion() {
        let n = MAX_TASKS as usize;
        let mut plan = LayeredDag::benchmark(n, 1).generate();
        let on = Condition::SUCCEEDED;
        plan.deps = (0..n)
            .map(|t| t.checked_sub(1).map(|d| (d, on)).into_iter().collect())
            .collect();
        plan.dependents = (0..n).map(|t| (t + 1..n).take(1).collect()).collect();
        let graph = plan.graph();
        assert_eq!(graph.levels()[n - 1], n - 1);
        assert_eq!(graph.critical_path().0.len(), n);
        assert!(graph.downstream([0]).iter().all(|&again| again));
    }

    /// A plan built by hand with a cycle breaks the plan's definition, but asking its graph
    /// still ends: no walk is longer than the plan. Here the walk from task 0 would go round
    /// 1 -> 2 -> 1 for ever.
    #[test]
    fn a_cycle_built_by_hand_does_not_make_the_critical_path_endless() {
        let mut plan = LayeredDag::benchmark(3, 1).generate();
        let on = Condition::SUCCEEDED;
        plan.deps = vec![vec![], vec![(0, on), (2, on)], vec![(1, on)]];
        plan.dependents = vec![vec![1], vec![2], vec![1]];
        let (path, _) = plan.critical_path();
        assert_eq!(path, [0, 1, 2]);
        assert_eq!(plan.levels().len(), 3);
    }
}
