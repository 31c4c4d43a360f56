//! The dependency graph of one imported pipeline, and the removal of items Spool cannot run
//! with the same composition rule as the core's inactive steps
//! ([`Condition::through_inactive`]), so that an imported pipeline behaves as the core would
//! run it had the item been left inactive.

use crate::dag::MAX_EDGES;
use crate::model::{Condition, Outcome};
use std::collections::{BTreeMap, BTreeSet};

/// Outcomes accepted by either condition (Azure Data Factory: several conditions on the same
/// upstream activity hold when any of them does). The core has no `or`, so this goes through
/// De Morgan: the complement of `c` is `c.through_inactive(SKIPPED)`.
pub(crate) fn either(a: Condition, b: Condition) -> Condition {
    let not = |c: Condition| c.through_inactive(Condition::SKIPPED);
    not(not(a).and(not(b)))
}

/// Whether a pipeline file can say this condition (`on = "…"`).
pub(crate) fn writable(c: Condition) -> bool {
    Condition::parse(c.name()).is_some()
}

/// The condition written for `c`: itself when it can be written, else `c` without the
/// skipped case (`any` -> `completed`, `succeeded-or-skipped` -> `succeeded`,
/// `failed-or-skipped` -> `failed`). `never` is not written: its dependent is dropped.
pub(crate) fn closest_writable(c: Condition) -> Condition {
    if writable(c) {
        c
    } else {
        c.and(Condition::COMPLETED)
    }
}

/// What becomes of a removed item, for the dependencies through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Spool does not run it: like an inactive step it counts as succeeded when its own
    /// condition holds and as skipped otherwise (with no dependencies: as succeeded).
    LeftOut,
    /// Its dependencies can never hold: it counts as skipped.
    NeverRuns,
}

/// Dependencies between the items (activities, rows) of one input pipeline.
pub(crate) struct Graph {
    /// Incoming dependencies of each item: upstream item -> condition on its outcome.
    incoming: Vec<BTreeMap<usize, Condition>>,
    /// Items that depend on each item (a superset: an entry may have been dropped from
    /// `incoming` since), so that a removal visits only its dependents.
    outgoing: Vec<BTreeSet<usize>>,
    /// Dependencies removals may still add: each removal adds one from each of its
    /// dependencies to each of its dependents.
    bridge_budget: usize,
    /// Items with a dependency that can never hold.
    blocked: Vec<bool>,
    removed: Vec<bool>,
}

/// What removing an item changed.
#[derive(Debug, Default)]
pub(crate) struct Removal {
    /// Dependencies added around it.
    pub bridged: Vec<Bridged>,
    /// Dependents whose dependency on it always holds now, so it is simply gone.
    pub released: Vec<usize>,
    /// Dependents that can no longer run.
    pub blocked: Vec<usize>,
}

/// A removal that would bridge more than [`MAX_EDGES`] dependencies in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyBridged {
    pub dependencies: usize,
    pub dependents: usize,
}

/// A dependency added around a removed item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bridged {
    pub from: usize,
    pub to: usize,
    pub on: Condition,
}

impl Graph {
    pub fn new(n: usize) -> Graph {
        Graph {
            incoming: vec![BTreeMap::new(); n],
            outgoing: vec![BTreeSet::new(); n],
            bridge_budget: MAX_EDGES,
            blocked: vec![false; n],
            removed: vec![false; n],
        }
    }

    /// Adds `to` depends on `from` under `on`; a second dependency between the same pair must
    /// hold too.
    pub fn add(&mut self, from: usize, to: usize, on: Condition) {
        let merged = self.incoming[to].get(&from).map_or(on, |old| old.and(on));
        if merged == Condition::NEVER {
            self.incoming[to].remove(&from);
            self.blocked[to] = true;
        } else {
            self.incoming[to].insert(from, merged);
            self.outgoing[from].insert(to);
        }
    }

    /// The dependencies of `v`, by upstream item index.
    pub fn deps(&self, v: usize) -> impl Iterator<Item = (usize, Condition)> + '_ {
        self.incoming[v].iter().map(|(&u, &c)| (u, c))
    }

    pub fn is_blocked(&self, v: usize) -> bool {
        self.blocked[v]
    }

    pub fn is_removed(&self, v: usize) -> bool {
        self.removed[v]
    }

    /// Takes `v` out of the graph; its dependents depend on its dependencies instead. Refused,
    /// with the number of dependencies it would add, when that would take the graph's
    /// dependencies past [`MAX_EDGES`].
    pub fn remove(&mut self, v: usize, fate: Fate) -> Result<Removal, TooManyBridged> {
        let (dependencies, dependents) = (self.incoming[v].len(), self.outgoing[v].len());
        let adds = dependencies.saturating_mul(dependents);
        if adds > self.bridge_budget {
            return Err(TooManyBridged {
                dependencies,
                dependents,
            });
        }
        self.bridge_budget -= adds;
        let outs = std::mem::take(&mut self.outgoing[v]);
        self.removed[v] = true;
        let ins: Vec<(usize, Condition)> =
            std::mem::take(&mut self.incoming[v]).into_iter().collect();
        let mut out = Removal::default();
        for w in outs {
            let Some(on) = self.incoming[w].remove(&v) else {
                continue;
            };
            let was_blocked = self.blocked[w];
            if ins.is_empty() {
                let outcome = match fate {
                    Fate::LeftOut => Outcome::Succeeded,
                    Fate::NeverRuns => Outcome::Skipped,
                };
                if on.accepts(outcome) {
                    out.released.push(w);
                } else {
                    self.blocked[w] = true;
                }
            }
            for &(u, c1) in &ins {
                let own = match fate {
                    Fate::LeftOut => c1,
                    Fate::NeverRuns => Condition::NEVER,
                };
                let c = own.through_inactive(on);
                if c == Condition::NEVER {
                    self.blocked[w] = true;
                } else {
                    self.add(u, w, c);
                    out.bridged.push(Bridged {
                        from: u,
                        to: w,
                        on: c,
                    });
                }
            }
            if self.blocked[w] && !was_blocked {
                out.blocked.push(w);
            }
        }
        Ok(out)
    }

    /// A dependency cycle, in "depends on" order and closed (`[a, b, a]`: `a` depends on `b`
    /// which depends on `a`), or `None`.
    pub fn cycle(&self) -> Option<Vec<usize>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let n = self.incoming.len();
        let mut mark = vec![Mark::New; n];
        for start in 0..n {
            if mark[start] != Mark::New {
                continue;
            }
            // Iterative depth-first search: (node, its remaining upstream items).
            let mut stack: Vec<(usize, Vec<usize>)> = vec![(start, self.ups(start))];
            mark[start] = Mark::Open;
            while let Some((node, rest)) = stack.last_mut() {
                let node = *node;
                match rest.pop() {
                    Some(up) if mark[up] == Mark::Open => {
                        let from = stack.iter().position(|(x, _)| *x == up).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|(x, _)| *x).collect();
                        cycle.push(up);
                        return Some(cycle);
                    }
                    Some(up) if mark[up] == Mark::New => {
                        mark[up] = Mark::Open;
                        stack.push((up, self.ups(up)));
                    }
                    Some(_) => {}
                    None => {
                        mark[node] = Mark::Done;
                        stack.pop();
                    }
                }
            }
        }
        None
    }

    fn ups(&self, v: usize) -> Vec<usize> {
        self.incoming[v].keys().rev().copied().collect()
    }

    /// Items in a dependency order, lowest index first among the ready ones (so the input's
    /// order is kept where dependencies allow). The graph must be acyclic.
    pub fn order(&self) -> Vec<usize> {
        let n = self.incoming.len();
        let mut indegree: Vec<usize> = self.incoming.iter().map(BTreeMap::len).collect();
        let mut out = vec![Vec::new(); n];
        for (t, ins) in self.incoming.iter().enumerate() {
            for &f in ins.keys() {
                out[f].push(t);
            }
        }
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&v| indegree[v] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(v) = ready.pop_first() {
            order.push(v);
            for &w in &out[v] {
                indegree[w] -= 1;
                if indegree[w] == 0 {
                    ready.insert(w);
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Condition as C;

    #[test]
    fn either_is_the_union_of_outcomes() {
        assert_eq!(either(C::SUCCEEDED, C::FAILED), C::COMPLETED);
        assert_eq!(either(C::COMPLETED, C::SKIPPED), C::ANY);
        assert_eq!(either(C::FAILED, C::SKIPPED).name(), "failed-or-skipped");
        assert_eq!(either(C::SKIPPED, C::SKIPPED), C::SKIPPED);
    }

    #[test]
    fn unwritable_conditions_lose_only_the_skipped_case() {
        for c in [C::SUCCEEDED, C::FAILED, C::COMPLETED, C::SKIPPED] {
            assert_eq!(closest_writable(c), c);
        }
        assert_eq!(closest_writable(C::ANY), C::COMPLETED);
        assert_eq!(closest_writable(either(C::FAILED, C::SKIPPED)), C::FAILED);
    }

    #[test]
    fn left_out_item_bridges_like_an_inactive_step() {
        // 0 -[succeeded]-> 1 (left out) -[skipped]-> 2: 2 runs when 0 did not succeed.
        let mut g = Graph::new(3);
        g.add(0, 1, C::SUCCEEDED);
        g.add(1, 2, C::SKIPPED);
        let removal = g.remove(1, Fate::LeftOut).unwrap();
        assert!(removal.blocked.is_empty() && removal.released.is_empty());
        assert_eq!(removal.bridged.len(), 1);
        let on = removal.bridged[0].on;
        assert_eq!(on.name(), "failed-or-skipped");
        assert_eq!(g.deps(2).collect::<Vec<_>>(), vec![(0, on)]);
    }

    #[test]
    fn a_removal_past_the_dependency_budget_is_refused_and_changes_nothing() {
        let n = 2_002;
        let mut g = Graph::new(n + 1);
        for u in 0..1_001 {
            g.add(u, n, C::SUCCEEDED);
        }
        for w in 1_001..n {
            g.add(n, w, C::SUCCEEDED);
        }
        let refused = g.remove(n, Fate::LeftOut).unwrap_err();
        assert_eq!((refused.dependencies, refused.dependents), (1_001, 1_001));
        assert!(!g.is_removed(n) && g.deps(n).count() == 1_001);
    }

    #[test]
    fn failure_handler_of_a_left_out_root_can_never_run() {
        let mut g = Graph::new(3);
        g.add(0, 1, C::FAILED);
        g.add(0, 2, C::SUCCEEDED);
        let removal = g.remove(0, Fate::LeftOut).unwrap();
        assert_eq!((removal.blocked, removal.released), (vec![1], vec![2]));
        assert!(g.deps(2).next().is_none() && !g.is_blocked(2));
        // What depends on the blocked item being skipped waits for its dependencies only.
        let mut g = Graph::new(3);
        g.add(0, 1, C::SUCCEEDED);
        g.add(1, 2, C::SKIPPED);
        g.remove(1, Fate::NeverRuns).unwrap();
        assert_eq!(g.deps(2).collect::<Vec<_>>(), vec![(0, C::ANY)]);
    }

    #[test]
    fn finds_cycles_in_depends_on_order() {
        let mut g = Graph::new(4);
        g.add(1, 0, C::SUCCEEDED); // 0 depends on 1
        g.add(2, 1, C::SUCCEEDED);
        g.add(0, 2, C::FAILED);
        g.add(0, 3, C::SUCCEEDED);
        assert_eq!(g.cycle(), Some(vec![0, 1, 2, 0]));
        let mut g = Graph::new(3);
        g.add(0, 1, C::SUCCEEDED);
        g.add(0, 2, C::SUCCEEDED);
        g.add(1, 2, C::SUCCEEDED);
        assert_eq!(g.cycle(), None);
        assert_eq!(g.order(), vec![0, 1, 2]);
    }
}
