//! Layered left-to-right drawing of a pipeline's DAG (Sugiyama's method, kept small): layers by
//! longest path from the roots, dummy nodes on edges that span several layers, barycenter sweeps
//! to reduce crossings, and node positions that straighten edges without letting boxes overlap.
//! The browser draws exactly what this computes, so the picture is the same everywhere.

use crate::dag::{Plan, TaskKind};
use crate::model::Condition;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// Sizes in drawing units (SVG pixels).
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutOptions {
    pub node_width: f64,
    pub node_height: f64,
    /// Horizontal space between layers, where edges run.
    pub layer_gap: f64,
    /// Vertical space between two boxes of one layer.
    pub node_gap: f64,
    /// Down-and-up barycenter sweeps at most (each costs one pass over the edges).
    pub sweeps: usize,
}

impl Default for LayoutOptions {
    fn default() -> Self {
        LayoutOptions {
            node_width: 180.0,
            node_height: 36.0,
            layer_gap: 70.0,
            node_gap: 14.0,
            sweeps: 12,
        }
    }
}

/// Where everything goes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    /// Top-left corner of each node's box.
    pub nodes: Vec<Point>,
    /// Layer (column) of each node.
    pub layers: Vec<usize>,
    /// One polyline per input edge, from the right side of its source to the left side of its
    /// target. Edges that close a cycle (only in graphs that are not DAGs), and long edges once
    /// [`MAX_BENDS`] bends are placed, are drawn straight; a self-loop has no points.
    pub edges: Vec<Vec<Point>>,
    pub width: f64,
    pub height: f64,
    /// Edge crossings between adjacent layers in the chosen order.
    pub crossings: usize,
}

/// Bends (dummy nodes, one per layer an edge crosses) placed at most: a graph's long edges can
/// cross a layer each for every pair of nodes (a chain of 20,000 with an edge from the first
/// to every other would want 200 million).
pub const MAX_BENDS: usize = 200_000;

/// Lays out `node_count` nodes joined by `edges` (pairs of node indices, source first).
/// Edges naming a node out of range are ignored.
pub fn layout(node_count: usize, edges: &[(usize, usize)], opts: &LayoutOptions) -> Layout {
    layout_from(node_count, edges, opts, &Earlier::default())
}

/// Where an earlier drawing had things, for [`layout_from`]: each node's vertical position, and
/// the vertical positions of each edge's bends (both `None` when new), by the current indices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Earlier {
    pub nodes: Vec<Option<f64>>,
    pub bends: Vec<Option<Vec<f64>>>,
}

impl Earlier {
    /// Everything where `layout` put it (the same nodes and edges).
    pub fn of(layout: &Layout) -> Earlier {
        Earlier {
            nodes: layout.nodes.iter().map(|p| Some(p.y)).collect(),
            bends: layout.edges.iter().map(|pts| Some(bends_of(pts))).collect(),
        }
    }
}

/// The vertical positions of a drawn edge's bends (each bend is drawn as two points).
fn bends_of(points: &[Point]) -> Vec<f64> {
    points
        .iter()
        .skip(1)
        .step_by(2)
        .take(points.len().saturating_sub(2) / 2)
        .map(|p| p.y)
        .collect()
}

/// [`layout`] starting from an earlier drawing: each layer starts in the order the earlier
/// drawing had (new nodes after the known node before them in the input order), and crossing
/// reduction only moves nodes when that removes crossings — an edit that adds no crossing
/// leaves the other nodes in their order.
pub fn layout_from(
    node_count: usize,
    edges: &[(usize, usize)],
    opts: &LayoutOptions,
    earlier: &Earlier,
) -> Layout {
    let mut g = Layered::new(node_count, edges);
    if earlier != &Earlier::default() {
        g.start_from(earlier);
    }
    g.reduce_crossings(opts.sweeps);
    let crossings = g.crossings();
    let centers = g.place(opts);
    g.geometry(edges, &centers, crossings, opts)
}

/// The graph after layering, with dummy nodes: every edge joins adjacent layers.
struct Layered {
    real: usize,
    /// Layer of every node, real ones first, then dummies.
    layer: Vec<usize>,
    /// Nodes of each layer, in drawing order (top to bottom).
    order: Vec<Vec<usize>>,
    /// Position of each node within its layer.
    pos: Vec<usize>,
    /// Neighbours in the previous and in the next layer.
    up: Vec<Vec<usize>>,
    down: Vec<Vec<usize>>,
    /// For each input edge that goes forward, the dummies it runs through, left to right
    /// (`None` for the others, and for the long ones beyond [`MAX_BENDS`]).
    chains: Vec<Option<Vec<usize>>>,
}

impl Layered {
    fn new(n: usize, edges: &[(usize, usize)]) -> Layered {
        let valid = |&(u, v): &(usize, usize)| u < n && v < n && u != v;
        // Kahn's algorithm, lowest index first, so the input order is the initial order; nodes
        // on a cycle come last and edges against this order are left out of the layering.
        let mut indegree = vec![0usize; n];
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(u, v) in edges.iter().filter(|e| valid(e)) {
            out[u].push(v);
            indegree[v] += 1;
        }
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
            .filter(|&v| indegree[v] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut topo = Vec::with_capacity(n);
        let mut placed = vec![false; n];
        while let Some(std::cmp::Reverse(v)) = ready.pop() {
            topo.push(v);
            placed[v] = true;
            for &w in &out[v] {
                indegree[w] -= 1;
                if indegree[w] == 0 {
                    ready.push(std::cmp::Reverse(w));
                }
            }
        }
        topo.extend((0..n).filter(|&v| !placed[v]));
        let mut rank = vec![0usize; n];
        for (i, &v) in topo.iter().enumerate() {
            rank[v] = i;
        }
        let forward = |&(u, v): &(usize, usize)| valid(&(u, v)) && rank[u] < rank[v];

        // Longest path from the roots: a node sits one layer right of its deepest dependency.
        let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(u, v) in edges.iter().filter(|e| forward(e)) {
            incoming[v].push(u);
        }
        let mut layer = vec![0usize; n];
        for &v in &topo {
            layer[v] = incoming[v].iter().map(|&u| layer[u] + 1).max().unwrap_or(0);
        }
        let layer_count = layer.iter().max().map_or(0, |m| m + 1);

        let mut g = Layered {
            real: n,
            order: vec![Vec::new(); layer_count],
            pos: Vec::new(),
            up: vec![Vec::new(); n],
            down: vec![Vec::new(); n],
            chains: Vec::with_capacity(edges.len()),
            layer,
        };
        for &v in &topo {
            g.order[g.layer[v]].push(v);
        }
        let mut bends_left = MAX_BENDS;
        for e in edges {
            let bends = if forward(e) {
                g.layer[e.1] - g.layer[e.0] - 1
            } else {
                usize::MAX
            };
            if bends > bends_left {
                g.chains.push(None);
                continue;
            }
            bends_left -= bends;
            let (u, v) = *e;
            let mut chain = Vec::new();
            let mut prev = u;
            for l in g.layer[u] + 1..g.layer[v] {
                let d = g.layer.len();
                g.layer.push(l);
                g.up.push(Vec::new());
                g.down.push(Vec::new());
                g.order[l].push(d);
                g.link(prev, d);
                chain.push(d);
                prev = d;
            }
            g.link(prev, v);
            g.chains.push(Some(chain));
        }
        g.pos = vec![0; g.layer.len()];
        g.renumber();
        g
    }

    /// Orders each layer by the earlier positions: a node keeps its place relative to the
    /// others it was drawn with, a bend sits where its edge ran (or, for an edge that is new or
    /// now crosses other layers, evenly between its ends), and new nodes keep their place in
    /// the input order after the known node before them.
    fn start_from(&mut self, earlier: &Earlier) {
        let finite = |y: f64| y.is_finite().then_some(y);
        let mut hint: Vec<Option<f64>> = (0..self.layer.len())
            .map(|v| {
                (v < self.real)
                    .then(|| earlier.nodes.get(v).copied().flatten().and_then(finite))
                    .flatten()
            })
            .collect();
        for (e, chain) in self.chains.iter().enumerate() {
            let Some(chain) = chain.as_ref().filter(|c| !c.is_empty()) else {
                continue;
            };
            let drawn = earlier.bends.get(e).and_then(Option::as_ref);
            if let Some(ys) = drawn.filter(|ys| ys.len() == chain.len()) {
                for (&d, &y) in chain.iter().zip(ys) {
                    hint[d] = finite(y);
                }
                continue;
            }
            let from = self.up[chain[0]].first().and_then(|&u| hint[u]);
            let to = self.down[chain[chain.len() - 1]]
                .first()
                .and_then(|&v| hint[v]);
            if let (Some(a), Some(b)) = (from, to) {
                let steps = chain.len() + 1;
                for (k, &d) in chain.iter().enumerate() {
                    hint[d] = Some(a + (b - a) * (k + 1) as f64 / steps as f64);
                }
            }
        }
        for nodes in &mut self.order {
            // A node without a hint takes the one of the node before it in the input order.
            let mut keys = Vec::with_capacity(nodes.len());
            let mut last = f64::NEG_INFINITY;
            for (i, &v) in nodes.iter().enumerate() {
                if let Some(y) = hint[v] {
                    last = y;
                }
                keys.push((last, i, v));
            }
            keys.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            *nodes = keys.into_iter().map(|(_, _, v)| v).collect();
        }
        self.renumber();
    }

    fn link(&mut self, u: usize, v: usize) {
        self.down[u].push(v);
        self.up[v].push(u);
    }

    fn renumber(&mut self) {
        for nodes in &self.order {
            for (i, &v) in nodes.iter().enumerate() {
                self.pos[v] = i;
            }
        }
    }

    /// Alternating down and up barycenter sweeps; keeps the best order seen, the initial one
    /// included, so the result is never worse than the input order.
    fn reduce_crossings(&mut self, sweeps: usize) {
        let mut best = self.crossings();
        let mut best_order = self.order.clone();
        let mut stale = 0;
        for _ in 0..sweeps {
            if best == 0 || stale >= 3 {
                break;
            }
            for l in 1..self.order.len() {
                self.sort_layer(l, true);
            }
            for l in (0..self.order.len().saturating_sub(1)).rev() {
                self.sort_layer(l, false);
            }
            let c = self.crossings();
            if c < best {
                best = c;
                best_order.clone_from(&self.order);
                stale = 0;
            } else {
                stale += 1;
            }
        }
        self.order = best_order;
        self.renumber();
    }

    /// Orders one layer by the mean position of each node's neighbours in the layer above
    /// (`from_up`) or below; a node without such neighbours keeps its place.
    fn sort_layer(&mut self, l: usize, from_up: bool) {
        let keys: Vec<(f64, usize)> = self.order[l]
            .iter()
            .map(|&v| {
                let nbrs = if from_up { &self.up[v] } else { &self.down[v] };
                let key = if nbrs.is_empty() {
                    self.pos[v] as f64
                } else {
                    nbrs.iter().map(|&u| self.pos[u] as f64).sum::<f64>() / nbrs.len() as f64
                };
                (key, v)
            })
            .collect();
        let mut keys = keys;
        keys.sort_by(|a, b| a.0.total_cmp(&b.0).then(self.pos[a.1].cmp(&self.pos[b.1])));
        self.order[l] = keys.into_iter().map(|(_, v)| v).collect();
        for (i, &v) in self.order[l].iter().enumerate() {
            self.pos[v] = i;
        }
    }

    /// Crossings between all pairs of adjacent layers: for each pair, the inversions among the
    /// lower ends of the edges sorted by their upper ends, counted with a Fenwick tree.
    fn crossings(&self) -> usize {
        let mut total = 0;
        for l in 0..self.order.len().saturating_sub(1) {
            let mut ends: Vec<(usize, usize)> = self.order[l]
                .iter()
                .flat_map(|&u| self.down[u].iter().map(move |&v| (u, v)))
                .map(|(u, v)| (self.pos[u], self.pos[v]))
                .collect();
            ends.sort_unstable();
            let size = self.order[l + 1].len();
            let mut tree = vec![0usize; size + 1];
            for (seen, &(_, b)) in ends.iter().enumerate() {
                // Edges already seen whose lower end is at or left of b do not cross this one.
                let mut at_or_before = 0;
                let mut i = b + 1;
                while i > 0 {
                    at_or_before += tree[i];
                    i &= i - 1;
                }
                total += seen - at_or_before;
                let mut i = b + 1;
                while i <= size {
                    tree[i] += 1;
                    i += i & i.wrapping_neg();
                }
            }
        }
        total
    }

    /// Vertical centre of every node: each layer in turn is placed as near as it can be to the
    /// mean of its neighbours' centres, keeping its order and the minimum spacing (least
    /// squares under order constraints, solved by pooling adjacent violators).
    fn place(&self, opts: &LayoutOptions) -> Vec<f64> {
        let height = |v: usize| if v < self.real { opts.node_height } else { 0.0 };
        let gap = |a: usize, b: usize| {
            let g = if a < self.real || b < self.real {
                opts.node_gap
            } else {
                opts.node_gap / 2.0
            };
            (height(a) + height(b)) / 2.0 + g
        };
        let mut y = vec![0.0; self.layer.len()];
        for nodes in &self.order {
            let mut at = height(nodes.first().copied().unwrap_or(0)) / 2.0;
            for (i, &v) in nodes.iter().enumerate() {
                if i > 0 {
                    at += gap(nodes[i - 1], v);
                }
                y[v] = at;
            }
        }
        const PASSES: usize = 4;
        for pass in 0..PASSES {
            let down = pass % 2 == 0;
            let layers: Vec<usize> = if down {
                (1..self.order.len()).collect()
            } else {
                (0..self.order.len().saturating_sub(1)).rev().collect()
            };
            for l in layers {
                let nodes = &self.order[l];
                let wanted: Vec<f64> = nodes
                    .iter()
                    .map(|&v| {
                        let nbrs = if down { &self.up[v] } else { &self.down[v] };
                        if nbrs.is_empty() {
                            y[v]
                        } else {
                            nbrs.iter().map(|&u| y[u]).sum::<f64>() / nbrs.len() as f64
                        }
                    })
                    .collect();
                let gaps: Vec<f64> = nodes.windows(2).map(|w| gap(w[0], w[1])).collect();
                for (&v, placed) in nodes.iter().zip(spaced_fit(&wanted, &gaps)) {
                    y[v] = placed;
                }
            }
        }
        let top = (0..self.layer.len())
            .map(|v| y[v] - height(v) / 2.0)
            .fold(f64::INFINITY, f64::min);
        if top.is_finite() {
            for c in &mut y {
                *c -= top;
            }
        }
        y
    }

    fn geometry(
        &self,
        edges: &[(usize, usize)],
        y: &[f64],
        crossings: usize,
        opts: &LayoutOptions,
    ) -> Layout {
        let (w, h) = (opts.node_width, opts.node_height);
        let left = |v: usize| self.layer[v] as f64 * (w + opts.layer_gap);
        let nodes: Vec<Point> = (0..self.real)
            .map(|v| Point {
                x: left(v),
                y: y[v] - h / 2.0,
            })
            .collect();
        let lines = edges
            .iter()
            .zip(&self.chains)
            .map(|(&(u, v), chain)| {
                if u >= self.real || v >= self.real || u == v {
                    return Vec::new();
                }
                let mut pts = vec![Point {
                    x: left(u) + w,
                    y: y[u],
                }];
                for &d in chain.iter().flatten() {
                    pts.push(Point {
                        x: left(d),
                        y: y[d],
                    });
                    pts.push(Point {
                        x: left(d) + w,
                        y: y[d],
                    });
                }
                pts.push(Point {
                    x: left(v),
                    y: y[v],
                });
                pts
            })
            .collect();
        let width = if self.order.is_empty() {
            0.0
        } else {
            self.order.len() as f64 * (w + opts.layer_gap) - opts.layer_gap
        };
        let height = nodes.iter().map(|p| p.y + h).fold(0.0, f64::max);
        Layout {
            nodes,
            layers: self.layer[..self.real].to_vec(),
            edges: lines,
            width,
            height,
            crossings,
        }
    }
}

/// The points nearest (least squares) to `wanted`, in the same order, with `gaps[i]` at least
/// between point i and i+1. Subtracting the cumulative gaps turns it into isotonic regression.
fn spaced_fit(wanted: &[f64], gaps: &[f64]) -> Vec<f64> {
    let mut offset = Vec::with_capacity(wanted.len());
    let mut acc = 0.0;
    for i in 0..wanted.len() {
        if i > 0 {
            acc += gaps[i - 1];
        }
        offset.push(acc);
    }
    // Blocks of (sum, count), each block's value the mean; merge while out of order.
    let mut blocks: Vec<(f64, usize)> = Vec::with_capacity(wanted.len());
    for (want, off) in wanted.iter().zip(&offset) {
        blocks.push((want - off, 1));
        while blocks.len() > 1 {
            let (s2, c2) = blocks[blocks.len() - 1];
            let (s1, c1) = blocks[blocks.len() - 2];
            if s1 / c1 as f64 <= s2 / c2 as f64 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = (s1 + s2, c1 + c2);
        }
    }
    let mut out = Vec::with_capacity(wanted.len());
    for (sum, count) in blocks {
        out.extend(std::iter::repeat_n(sum / count as f64, count));
    }
    out.iter_mut().zip(&offset).for_each(|(y, off)| *y += off);
    out
}

/// A node of the drawn pipeline: every task of the plan, then every inactive step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphNode {
    pub id: String,
    pub kind: TaskKind,
    pub active: bool,
    /// On the critical path by estimate.
    pub critical: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphEdge {
    pub from: usize,
    pub to: usize,
    pub on: Condition,
    /// Added around an inactive step (the run follows these, not the declared ones through it).
    pub bridged: bool,
    pub critical: bool,
}

/// The pipeline as drawn: nodes, declared and bridged edges, and their layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanDrawing {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    pub layout: Layout,
}

impl PlanDrawing {
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }
}

/// The nodes and edges with the steps inside each collapsed sub-pipeline folded into its end
/// node (the outermost collapsed one): edges between folded nodes vanish, parallel ones merge
/// (critical if any was).
fn collapse(
    nodes: Vec<GraphNode>,
    edges: Vec<GraphEdge>,
    collapsed: &BTreeSet<String>,
) -> (Vec<GraphNode>, Vec<GraphEdge>) {
    if collapsed.is_empty() {
        return (nodes, edges);
    }
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    // The end node that stands for node `i`: `i` itself unless it is inside a collapsed one.
    let stands_for: Vec<usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            n.id.match_indices('/')
                .map(|(at, _)| &n.id[..at])
                .find(|prefix| collapsed.contains(*prefix))
                .and_then(|prefix| index.get(prefix).copied())
                .unwrap_or(i)
        })
        .collect();
    let mut new_index = vec![usize::MAX; nodes.len()];
    let mut kept = Vec::new();
    for (i, n) in nodes.into_iter().enumerate() {
        if stands_for[i] == i {
            new_index[i] = kept.len();
            kept.push(n);
        }
    }
    let mut merged: Vec<GraphEdge> = Vec::new();
    let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
    for e in edges {
        let (from, to) = (new_index[stands_for[e.from]], new_index[stands_for[e.to]]);
        if from == to {
            continue;
        }
        match seen.get(&(from, to)) {
            Some(&m) => merged[m].critical |= e.critical,
            None => {
                seen.insert((from, to), merged.len());
                merged.push(GraphEdge { from, to, ..e });
            }
        }
    }
    (kept, merged)
}

/// Draws a plan: the active tasks (index i is task i of the plan), then the inactive steps,
/// with every declared edge and the edges bridged around inactive steps.
pub fn draw_plan(plan: &Plan, opts: &LayoutOptions) -> PlanDrawing {
    draw_plan_from(plan, opts, None)
}

/// [`draw_plan`] after an edit: nodes keep the order they had in `previous` (found by id) unless
/// moving them removes crossings ([`layout_from`]).
pub fn draw_plan_from(
    plan: &Plan,
    opts: &LayoutOptions,
    previous: Option<&PlanDrawing>,
) -> PlanDrawing {
    draw_plan_collapsed(plan, opts, previous, &BTreeSet::new())
}

/// [`draw_plan_from`] with each sub-pipeline named in `collapsed` drawn as one node: its end
/// node (the sub-pipeline's id) stands for every step inside it, nested ones included, and the
/// edges to and from those steps are drawn to and from it. With a sub-pipeline collapsed, node
/// `i` is no longer task `i`: nodes are found by id.
pub fn draw_plan_collapsed(
    plan: &Plan,
    opts: &LayoutOptions,
    previous: Option<&PlanDrawing>,
    collapsed: &BTreeSet<String>,
) -> PlanDrawing {
    let (path, _) = plan.critical_path();
    let mut on_path = vec![false; plan.tasks.len()];
    for &t in &path {
        on_path[t] = true;
    }
    let mut nodes: Vec<GraphNode> = plan
        .tasks
        .iter()
        .zip(&on_path)
        .map(|(t, &critical)| GraphNode {
            id: t.id.clone(),
            kind: t.kind,
            active: true,
            critical,
        })
        .collect();
    nodes.extend(plan.inactive.iter().map(|s| GraphNode {
        id: s.id.clone(),
        kind: s.kind,
        active: false,
        critical: false,
    }));
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let critical_pairs: std::collections::HashSet<(usize, usize)> =
        path.windows(2).map(|w| (w[0], w[1])).collect();
    let bridged = plan
        .inactive
        .iter()
        .flat_map(|s| s.bridged.iter().map(|e| (e, true)));
    let mut edges = Vec::new();
    for (e, is_bridged) in plan.declared.iter().map(|e| (e, false)).chain(bridged) {
        let (Some(&from), Some(&to)) = (index.get(e.from.as_str()), index.get(e.to.as_str()))
        else {
            continue;
        };
        edges.push(GraphEdge {
            from,
            to,
            on: e.on,
            bridged: is_bridged,
            critical: critical_pairs.contains(&(from, to)),
        });
    }
    let (nodes, edges) = collapse(nodes, edges, collapsed);
    let pairs: Vec<(usize, usize)> = edges.iter().map(|e| (e.from, e.to)).collect();
    let earlier = match previous {
        Some(p) => {
            let at: HashMap<&str, f64> = p
                .nodes
                .iter()
                .zip(&p.layout.nodes)
                .map(|(n, point)| (n.id.as_str(), point.y))
                .collect();
            let id = |i: usize| p.nodes.get(i).map(|n| n.id.as_str());
            let drawn: HashMap<(&str, &str), &Vec<Point>> = p
                .edges
                .iter()
                .zip(&p.layout.edges)
                .filter_map(|(e, pts)| Some(((id(e.from)?, id(e.to)?), pts)))
                .collect();
            Earlier {
                nodes: nodes
                    .iter()
                    .map(|n| at.get(n.id.as_str()).copied())
                    .collect(),
                bends: edges
                    .iter()
                    .map(|e| {
                        let key = (nodes[e.from].id.as_str(), nodes[e.to].id.as_str());
                        drawn.get(&key).map(|pts| bends_of(pts))
                    })
                    .collect(),
            }
        }
        None => Earlier::default(),
    };
    let layout = layout_from(nodes.len(), &pairs, opts, &earlier);
    PlanDrawing {
        nodes,
        edges,
        layout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opts() -> LayoutOptions {
        LayoutOptions::default()
    }

    /// Crossings counted from the drawing alone: two edge segments in the same gap between
    /// layers cross when their ends are in opposite vertical order.
    fn drawn_crossings(l: &Layout, o: &LayoutOptions) -> usize {
        let mut segs: Vec<(f64, f64, f64)> = Vec::new();
        for pts in &l.edges {
            for s in pts.windows(2) {
                if (s[1].x - s[0].x - o.layer_gap).abs() < 1e-9 {
                    segs.push((s[0].x, s[0].y, s[1].y));
                }
            }
        }
        let mut n = 0;
        for (i, a) in segs.iter().enumerate() {
            for b in &segs[i + 1..] {
                if a.0 == b.0 && (a.1 - b.1) * (a.2 - b.2) < 0.0 {
                    n += 1;
                }
            }
        }
        n
    }

    fn dag() -> impl Strategy<Value = (usize, Vec<(usize, usize)>)> {
        (1usize..40).prop_flat_map(|n| {
            let edges = proptest::collection::vec((0..n, 0..n), 0..n * 2).prop_map(|es| {
                es.into_iter()
                    .filter(|(a, b)| a != b)
                    .map(|(a, b)| (a.min(b), a.max(b)))
                    .collect::<Vec<_>>()
            });
            (Just(n), edges)
        })
    }

    /// Each layer's real nodes, top to bottom.
    fn layer_orders(l: &Layout, nodes: usize) -> Vec<Vec<usize>> {
        let layers = l.layers.iter().max().map_or(0, |m| m + 1);
        let mut order = vec![Vec::new(); layers];
        for v in 0..nodes {
            order[l.layers[v]].push(v);
        }
        for o in &mut order {
            o.sort_by(|&a, &b| l.nodes[a].y.total_cmp(&l.nodes[b].y));
        }
        order
    }

    proptest! {
        #[test]
        fn a_layout_started_from_itself_moves_only_to_remove_crossings((n, edges) in dag()) {
            let o = opts();
            let first = layout(n, &edges, &o);
            let again = layout_from(n, &edges, &o, &Earlier::of(&first));
            prop_assert!(again.crossings <= first.crossings);
            if again.crossings == first.crossings {
                prop_assert_eq!(again, first);
            }
        }

        /// Steps moved around in the file (the nodes renumbered) are drawn where they were.
        #[test]
        fn renumbered_nodes_keep_their_places(
            (n, edges, shuffle) in dag().prop_flat_map(|(n, edges)| {
                (Just(n), Just(edges), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
            })
        ) {
            let o = opts();
            let first = layout(n, &edges, &o);
            // Node v of the first drawing is node shuffle[v] now.
            let moved: Vec<(usize, usize)> =
                edges.iter().map(|&(a, b)| (shuffle[a], shuffle[b])).collect();
            let mut earlier = Earlier { nodes: vec![None; n], bends: Earlier::of(&first).bends };
            for (&now, was) in shuffle.iter().zip(&first.nodes) {
                earlier.nodes[now] = Some(was.y);
            }
            let again = layout_from(n, &moved, &o, &earlier);
            prop_assert!(again.crossings <= first.crossings);
            if again.crossings == first.crossings {
                for (&now, was) in shuffle.iter().zip(&first.nodes) {
                    prop_assert_eq!(&again.nodes[now], was);
                }
            }
        }

        #[test]
        fn a_new_node_leaves_the_others_in_their_order((n, edges) in dag()) {
            let o = opts();
            let first = layout(n, &edges, &o);
            let mut earlier = Earlier::of(&first);
            earlier.nodes.push(None);
            let added = layout_from(n + 1, &edges, &o, &earlier);
            prop_assert!(added.crossings <= first.crossings);
            if added.crossings == first.crossings {
                let without_new: Vec<Vec<usize>> = layer_orders(&added, n + 1)
                    .into_iter()
                    .map(|layer| layer.into_iter().filter(|&v| v < n).collect())
                    .filter(|layer: &Vec<usize>| !layer.is_empty())
                    .collect();
                prop_assert_eq!(without_new, layer_orders(&first, n));
            }
        }

        #[test]
        fn boxes_never_overlap((n, edges) in dag()) {
            let o = opts();
            let l = layout(n, &edges, &o);
            for i in 0..n {
                for j in i + 1..n {
                    let (a, b) = (l.nodes[i], l.nodes[j]);
                    let apart_x = a.x + o.node_width <= b.x || b.x + o.node_width <= a.x;
                    let apart_y = a.y + o.node_height <= b.y || b.y + o.node_height <= a.y;
                    prop_assert!(apart_x || apart_y, "nodes {i} and {j} overlap: {a:?} {b:?}");
                }
            }
            for p in &l.nodes {
                prop_assert!(p.x >= 0.0 && p.y >= -1e-9);
                prop_assert!(p.x + o.node_width <= l.width + 1e-9);
                prop_assert!(p.y + o.node_height <= l.height + 1e-9);
            }
        }

        #[test]
        fn edges_run_left_to_right((n, edges) in dag()) {
            let o = opts();
            let l = layout(n, &edges, &o);
            for (&(u, v), pts) in edges.iter().zip(&l.edges) {
                prop_assert!(l.layers[u] < l.layers[v]);
                prop_assert_eq!(pts[0].x, l.nodes[u].x + o.node_width);
                prop_assert_eq!(pts[pts.len() - 1].x, l.nodes[v].x);
                prop_assert!(pts.windows(2).all(|s| s[0].x <= s[1].x));
                prop_assert!((pts[0].y - (l.nodes[u].y + o.node_height / 2.0)).abs() < 1e-9);
            }
        }

        #[test]
        fn crossings_are_never_worse_than_the_input_order((n, edges) in dag()) {
            let initial = Layered::new(n, &edges).crossings();
            let l = layout(n, &edges, &opts());
            prop_assert_eq!(drawn_crossings(&l, &opts()), l.crossings);
            prop_assert!(l.crossings <= initial, "{} > {initial}", l.crossings);
        }

        #[test]
        fn a_node_sits_right_after_its_deepest_dependency((n, edges) in dag()) {
            let l = layout(n, &edges, &opts());
            for v in 0..n {
                let deepest = edges.iter().filter(|e| e.1 == v).map(|e| l.layers[e.0] + 1).max();
                prop_assert_eq!(l.layers[v], deepest.unwrap_or(0));
            }
        }
    }

    #[test]
    fn barycenter_untangles_a_crossed_pair() {
        // Input order puts c above d, but a (top) feeds d and b (bottom) feeds c.
        let edges = [(0, 3), (1, 2)];
        let initial = Layered::new(4, &edges).crossings();
        let l = layout(4, &edges, &opts());
        assert_eq!((initial, l.crossings), (1, 0));
        assert!(l.nodes[3].y < l.nodes[2].y, "d is drawn above c");
    }

    #[test]
    fn long_edges_bend_through_each_layer_they_cross() {
        // a -> b -> c and a -> c: the long edge passes layer 1 beside b.
        let o = opts();
        let l = layout(3, &[(0, 1), (1, 2), (0, 2)], &o);
        assert_eq!(l.layers, vec![0, 1, 2]);
        let long = &l.edges[2];
        assert_eq!(long.len(), 4);
        assert_eq!(long[1].x, l.nodes[1].x);
        assert_eq!(long[2].x, l.nodes[1].x + o.node_width);
        let b = l.nodes[1];
        assert!(
            long[1].y <= b.y || long[1].y >= b.y + o.node_height,
            "runs beside b"
        );
    }

    #[test]
    fn long_edges_beyond_the_bend_budget_are_drawn_straight() {
        // A chain of 1,000 and an edge from its first node to every other: 498,501 bends
        // wanted, about 60 MB of dummy nodes (a chain of 20,000: 200 million).
        let n = 1_000;
        let mut edges: Vec<(usize, usize)> = (1..n).map(|v| (v - 1, v)).collect();
        edges.extend((2..n).map(|v| (0, v)));
        let l = layout(n, &edges, &opts());
        let bends: usize = l.edges.iter().map(|e| e.len().saturating_sub(2) / 2).sum();
        assert!(bends <= MAX_BENDS, "{bends} bends");
        // Edges are placed in input order while the budget lasts: the first long ones bend
        // through every layer they cross, the last ones go straight.
        assert_eq!(l.edges[n - 1].len(), 4, "0 -> 2 bends once");
        assert_eq!(
            l.edges.last().map(Vec::len),
            Some(2),
            "0 -> {} is straight",
            n - 1
        );
        assert_eq!(l.layers[n - 1], n - 1);
    }

    #[test]
    fn cycles_and_bad_indices_do_not_panic() {
        let l = layout(3, &[(0, 1), (1, 2), (2, 0), (1, 1), (7, 0)], &opts());
        assert_eq!(l.nodes.len(), 3);
        assert_eq!(l.edges.len(), 5);
        assert!(l.edges[3].is_empty() && l.edges[4].is_empty());
        assert_eq!(layout(0, &[], &opts()).width, 0.0);
    }

    #[test]
    fn drawing_a_plan_shows_inactive_steps_bridged_and_the_critical_path() {
        use crate::source::MemorySources;
        let text = r#"
name = "p"
[[notebook]]
id = "a"
path = "a.py"
estimate_secs = 10
[[notebook]]
id = "b"
path = "b.py"
depends_on = ["a"]
active = false
[[notebook]]
id = "c"
path = "c.py"
depends_on = [{ id = "b", on = "completed" }]
[[notebook]]
id = "d"
path = "d.py"
estimate_secs = 1
"#;
        let src = MemorySources::default()
            .with("a.py", "")
            .with("b.py", "")
            .with("c.py", "")
            .with("d.py", "");
        let plan = crate::dag::load_text("p.toml", text, &src)
            .plan
            .expect("valid");
        let d = draw_plan(&plan, &opts());
        let ids: Vec<(&str, bool, bool)> = d
            .nodes
            .iter()
            .map(|n| (n.id.as_str(), n.active, n.critical))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("a", true, true),
                ("c", true, true),
                ("d", true, false),
                ("b", false, false)
            ]
        );
        let edges: Vec<(&str, &str, &str, bool, bool)> = d
            .edges
            .iter()
            .map(|e| {
                let (f, t) = (&d.nodes[e.from].id, &d.nodes[e.to].id);
                (f.as_str(), t.as_str(), e.on.name(), e.bridged, e.critical)
            })
            .collect();
        assert_eq!(
            edges,
            vec![
                ("a", "b", "succeeded", false, false),
                ("b", "c", "completed", false, false),
                ("a", "c", "succeeded", true, true),
            ]
        );
        assert_eq!(d.layout.layers, vec![0, 2, 0, 1]);
    }

    #[test]
    fn a_collapsed_sub_pipeline_is_one_node_with_the_edges_of_its_steps() {
        let root = "[[notebook]]\nid = \"a\"\npath = \"a.py\"\n\
                    [[pipeline]]\nid = \"sub\"\npath = \"sub.toml\"\ndepends_on = [\"a\"]\n\
                    [[notebook]]\nid = \"b\"\npath = \"a.py\"\ndepends_on = [\"sub\"]\n";
        let sub = "[[notebook]]\nid = \"x\"\npath = \"a.py\"\n\
                   [[notebook]]\nid = \"y\"\npath = \"a.py\"\ndepends_on = [\"x\"]\n\
                   [[notebook]]\nid = \"z\"\npath = \"a.py\"\n";
        let src = crate::source::MemorySources::default()
            .with("a.py", "")
            .with("sub.toml", sub);
        let plan = crate::dag::load_text("p.toml", root, &src)
            .plan
            .expect("valid");
        let named = |d: &PlanDrawing| {
            let ids: Vec<String> = d.nodes.iter().map(|n| n.id.clone()).collect();
            let mut edges: Vec<(String, String)> = d
                .edges
                .iter()
                .map(|e| (ids[e.from].clone(), ids[e.to].clone()))
                .collect();
            edges.sort();
            (ids, edges)
        };
        let open = draw_plan(&plan, &opts());
        let (ids, _) = named(&open);
        assert!(ids.iter().any(|i| i == "sub/y"), "{ids:?}");
        let folded = draw_plan_collapsed(&plan, &opts(), None, &BTreeSet::from(["sub".into()]));
        let (ids, edges) = named(&folded);
        assert_eq!(ids, ["a", "sub", "b"]);
        // Every edge of the open drawing that crossed the sub-pipeline's border, now at its node.
        assert_eq!(
            edges,
            [("a".into(), "sub".into()), ("sub".into(), "b".into())]
        );
        assert_eq!(folded.layout.nodes.len(), 3);
        assert_eq!(folded.layout.edges.len(), folded.edges.len());
        // Nothing collapsed draws every step, as draw_plan does.
        assert_eq!(
            draw_plan_collapsed(&plan, &opts(), None, &BTreeSet::new()),
            open
        );
    }
}
