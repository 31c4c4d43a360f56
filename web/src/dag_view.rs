//! The pipeline's graph as SVG, drawn where `spool_core::layout` put everything: zoom with the
//! wheel, pan by dragging the background, click a node to pick it, drag from one node to
//! another to add a dependency. For large graphs: a search that highlights the notebooks whose
//! id matches and centres the first (Enter: the next), the picked node's upstream and
//! downstream lit with everything else dimmed, and a compact node style (the label alone, at a
//! size read on screen) once zoomed out so far that the normal labels could not be read.

use crate::charts::duration;
use crate::run::{NodeState, RunView};
use spool_core::dag::{Plan, TaskKind};
use spool_core::layout::{LayoutOptions, PlanDrawing, Point};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use wasm_bindgen::JsCast;
use yew::prelude::*;

/// Zoom limits; below the lower one labels are unreadable anyway.
const MIN_ZOOM: f64 = 0.05;
const MAX_ZOOM: f64 = 4.0;
/// The first view never zooms out further than this: a large graph opens readable at its
/// start and is panned, rather than opening as a grey smudge.
const MIN_FIRST_ZOOM: f64 = 0.6;
/// A press that moves less than this many pixels is a click.
const CLICK_SLOP: f64 = 5.0;
/// Labels longer than this are cut (the full id is in the tooltip).
const LABEL_CHARS: usize = 24;
/// Below this zoom the normal labels (12.5 px) are under 8.75 px on screen: nodes go compact
/// (a large graph's first view, at [`MIN_FIRST_ZOOM`], is compact).
const COMPACT_BELOW: f64 = 0.7;
/// A compact node's label, in screen pixels.
const COMPACT_LABEL_PX: f64 = 10.0;
/// Searching zooms in at least this far on the match it centres.
const SEARCH_ZOOM: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq)]
struct View {
    tx: f64,
    ty: f64,
    k: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum Drag {
    Pan {
        from: (f64, f64),
        start: View,
    },
    Connect {
        from_id: String,
        from: (f64, f64),
        at: Point,
        moved: bool,
    },
}

#[derive(Properties, PartialEq)]
pub struct DagProps {
    pub drawing: Rc<PlanDrawing>,
    pub plan: Rc<Plan>,
    /// Colours nodes by their state in this run.
    #[prop_or_default]
    pub run: Option<Rc<RunView>>,
    pub selected: Option<String>,
    pub on_select: Callback<Option<String>>,
    /// When given, dragging from node `from` to node `to` calls it with `(from, to)`.
    #[prop_or_default]
    pub on_connect: Option<Callback<(String, String)>>,
    /// A mark per node id (a repair's `selected`, `runs-again`, …): its `data-repair` and class.
    #[prop_or_default]
    pub marks: Option<Rc<BTreeMap<String, &'static str>>>,
}

fn node_at(target: Option<web_sys::EventTarget>) -> Option<String> {
    let el = target?.dyn_into::<web_sys::Element>().ok()?;
    el.closest(".dag-node").ok()??.get_attribute("data-id")
}

fn fit(svg: &web_sys::Element, drawing: &PlanDrawing, min_zoom: f64) -> View {
    let rect = svg.get_bounding_client_rect();
    let margin = 20.0;
    let (w, h) = (
        drawing.layout.width.max(1.0),
        drawing.layout.height.max(1.0),
    );
    let k = ((rect.width() - 2.0 * margin) / w)
        .min((rect.height() - 2.0 * margin) / h)
        .clamp(min_zoom, 1.0);
    let ty = if h * k < rect.height() {
        (rect.height() - h * k) / 2.0
    } else {
        margin
    };
    View { tx: margin, ty, k }
}

/// The nodes a search finds: ids containing the query, ignoring case; none for a blank query.
fn matching(drawing: &PlanDrawing, query: &str) -> Vec<usize> {
    let q = query.trim().to_lowercase();
    if q.is_empty() {
        return Vec::new();
    }
    (0..drawing.nodes.len())
        .filter(|&i| drawing.nodes[i].id.to_lowercase().contains(&q))
        .collect()
}

/// Which nodes are upstream (`up`) and downstream (`down`) of node `at` along `edges`
/// (from, to), `at` in neither: a walk with an explicit stack, each node visited once.
fn lineage(nodes: usize, edges: &[(usize, usize)], at: usize) -> (Vec<bool>, Vec<bool>) {
    let mut ins = vec![Vec::new(); nodes];
    let mut outs = vec![Vec::new(); nodes];
    for &(from, to) in edges {
        outs[from].push(to);
        ins[to].push(from);
    }
    let walk = |next: &[Vec<usize>]| {
        let mut seen = vec![false; nodes];
        let mut stack = vec![at];
        while let Some(n) = stack.pop() {
            for &m in &next[n] {
                if !seen[m] && m != at {
                    seen[m] = true;
                    stack.push(m);
                }
            }
        }
        seen
    };
    (walk(&ins), walk(&outs))
}

/// What the graph highlights: search matches, the picked node's lineage.
#[derive(Debug, Clone, PartialEq, Default)]
struct Highlight {
    /// Nodes the search found.
    found: Vec<bool>,
    searching: bool,
    /// The picked node, and its upstream and downstream.
    picked: Option<(usize, Vec<bool>, Vec<bool>)>,
}

impl Highlight {
    fn of(drawing: &PlanDrawing, found: &[usize], selected: Option<&str>, searching: bool) -> Self {
        let mut mark = vec![false; drawing.nodes.len()];
        for &i in found {
            mark[i] = true;
        }
        let picked = selected.and_then(|id| drawing.index_of(id)).map(|at| {
            let edges: Vec<(usize, usize)> = drawing.edges.iter().map(|e| (e.from, e.to)).collect();
            let (up, down) = lineage(drawing.nodes.len(), &edges, at);
            (at, up, down)
        });
        Highlight {
            found: mark,
            searching,
            picked,
        }
    }

    /// How node `i` is marked: `found` by the search (the others `dim` while searching), else
    /// `upstream`/`downstream` of the picked node (the unrelated ones `dim`).
    fn node(&self, i: usize) -> Option<&'static str> {
        if self.searching {
            return Some(if self.found[i] { "found" } else { "dim" });
        }
        let (at, up, down) = self.picked.as_ref()?;
        match i {
            _ if i == *at => None,
            _ if up[i] => Some("upstream"),
            _ if down[i] => Some("downstream"),
            _ => Some("dim"),
        }
    }

    /// Whether the edge from `from` to `to` is dimmed: while searching, or off the picked
    /// node's lineage.
    fn dims_edge(&self, from: usize, to: usize) -> bool {
        if self.searching {
            return true;
        }
        let Some((at, up, down)) = &self.picked else {
            return false;
        };
        let upstream = |n: usize| n == *at || up[n];
        let downstream = |n: usize| n == *at || down[n];
        !(upstream(from) && upstream(to) || downstream(from) && downstream(to))
    }
}

/// The view that shows node `i` at the centre of `svg`, zoomed in to at least `min_k`.
fn centre_on(svg: &web_sys::Element, drawing: &PlanDrawing, i: usize, v: View, min_k: f64) -> View {
    let rect = svg.get_bounding_client_rect();
    let o = LayoutOptions::default();
    let p = drawing.layout.nodes[i];
    let k = v.k.max(min_k);
    View {
        tx: rect.width() / 2.0 - (p.x + o.node_width / 2.0) * k,
        ty: rect.height() / 2.0 - (p.y + o.node_height / 2.0) * k,
        k,
    }
}

/// A compact label's size in the drawing's units: `COMPACT_LABEL_PX` on screen at zoom `k`, in
/// steps of 2 (so that zooming re-renders the nodes only now and then), at most a node's pitch;
/// `None` at zooms where the normal labels read.
fn compact_label_size(k: f64) -> Option<u32> {
    if k >= COMPACT_BELOW {
        return None;
    }
    let o = LayoutOptions::default();
    let size = (COMPACT_LABEL_PX / k.max(MIN_ZOOM)).min(o.node_height + o.node_gap);
    Some((size / 2.0).round() as u32 * 2)
}

/// `id` cut to `chars`, keeping its end (where generated and sub-pipeline ids differ).
fn tail_label(id: &str, chars: usize) -> String {
    let n = id.chars().count();
    if n <= chars {
        return id.to_string();
    }
    let keep = chars.saturating_sub(1);
    std::iter::once('…')
        .chain(id.chars().skip(n - keep))
        .collect()
}

#[function_component(DagView)]
pub fn dag_view(props: &DagProps) -> Html {
    let svg = use_node_ref();
    let view = use_state(|| View {
        tx: 20.0,
        ty: 20.0,
        k: 1.0,
    });
    let drag = use_state(|| None::<Drag>);
    let query = use_state(String::new);
    // Which match Enter went to last.
    let found_at = use_state(|| 0usize);
    let found = {
        let (drawing, q) = (props.drawing.clone(), (*query).clone());
        use_memo((drawing, q), |(d, q)| matching(d, q))
    };
    let highlight = {
        let searching = !query.trim().is_empty();
        let key = (
            props.drawing.clone(),
            found.clone(),
            props.selected.clone(),
            searching,
        );
        use_memo(key, |(d, found, selected, searching)| {
            Highlight::of(d, found, selected.as_deref(), *searching)
        })
    };
    {
        // Fit when a different pipeline (or a different size of graph) comes in.
        let (svg, view, drawing) = (svg.clone(), view.clone(), props.drawing.clone());
        let key = (
            drawing.nodes.len(),
            drawing.layout.layers.iter().max().copied(),
        );
        use_effect_with(key, move |_| {
            if let Some(el) = svg.cast::<web_sys::Element>() {
                view.set(fit(&el, &drawing, MIN_FIRST_ZOOM));
            }
        });
    }
    let client_to_world = {
        let svg = svg.clone();
        let view = *view;
        move |x: i32, y: i32| -> ((f64, f64), Point) {
            let (left, top) = svg.cast::<web_sys::Element>().map_or((0.0, 0.0), |el| {
                let r = el.get_bounding_client_rect();
                (r.left(), r.top())
            });
            let (sx, sy) = (f64::from(x) - left, f64::from(y) - top);
            (
                (sx, sy),
                Point {
                    x: (sx - view.tx) / view.k,
                    y: (sy - view.ty) / view.k,
                },
            )
        }
    };
    let onmousedown = {
        let (drag, view, c2w) = (drag.clone(), *view, client_to_world.clone());
        Callback::from(move |e: MouseEvent| {
            if e.button() != 0 {
                return;
            }
            e.prevent_default();
            let (screen, world) = c2w(e.client_x(), e.client_y());
            drag.set(Some(match node_at(e.target()) {
                Some(id) => Drag::Connect {
                    from_id: id,
                    from: screen,
                    at: world,
                    moved: false,
                },
                None => Drag::Pan {
                    from: screen,
                    start: view,
                },
            }));
        })
    };
    let onmousemove = {
        let (drag, view, c2w) = (drag.clone(), view.clone(), client_to_world.clone());
        Callback::from(move |e: MouseEvent| {
            let Some(d) = (*drag).clone() else { return };
            let (screen, world) = c2w(e.client_x(), e.client_y());
            match d {
                Drag::Pan { from, start } => view.set(View {
                    tx: start.tx + screen.0 - from.0,
                    ty: start.ty + screen.1 - from.1,
                    k: start.k,
                }),
                Drag::Connect {
                    from_id,
                    from,
                    moved,
                    ..
                } => drag.set(Some(Drag::Connect {
                    from_id,
                    from,
                    at: world,
                    moved: moved || (screen.0 - from.0).hypot(screen.1 - from.1) > CLICK_SLOP,
                })),
            }
        })
    };
    let onmouseup = {
        let (drag, on_select, on_connect) = (
            drag.clone(),
            props.on_select.clone(),
            props.on_connect.clone(),
        );
        let selected = props.selected.clone();
        let c2w = client_to_world.clone();
        Callback::from(move |e: MouseEvent| {
            let Some(d) = (*drag).clone() else { return };
            drag.set(None);
            match d {
                Drag::Connect {
                    from_id,
                    moved: false,
                    ..
                } => {
                    let again = selected.as_deref() == Some(from_id.as_str());
                    on_select.emit((!again).then_some(from_id));
                }
                Drag::Connect { from_id, .. } => {
                    if let (Some(to), Some(connect)) = (node_at(e.target()), &on_connect) {
                        if to != from_id {
                            connect.emit((from_id, to));
                        }
                    }
                }
                // A click on the background (not a pan) lets go of the picked node.
                Drag::Pan { from, .. } => {
                    let (screen, _) = c2w(e.client_x(), e.client_y());
                    if (screen.0 - from.0).hypot(screen.1 - from.1) <= CLICK_SLOP {
                        on_select.emit(None);
                    }
                }
            }
        })
    };
    let onmouseleave = {
        let drag = drag.clone();
        Callback::from(move |_: MouseEvent| drag.set(None))
    };
    let onwheel = {
        let (view, c2w) = (view.clone(), client_to_world.clone());
        Callback::from(move |e: WheelEvent| {
            e.prevent_default();
            let (screen, _) = c2w(e.client_x(), e.client_y());
            zoom_at(&view, screen, (-e.delta_y() * 0.0015).exp());
        })
    };
    let zoom_button = |factor: f64| {
        let (view, svg) = (view.clone(), svg.clone());
        Callback::from(move |_: MouseEvent| {
            let centre = svg.cast::<web_sys::Element>().map_or((0.0, 0.0), |el| {
                let r = el.get_bounding_client_rect();
                (r.width() / 2.0, r.height() / 2.0)
            });
            zoom_at(&view, centre, factor);
        })
    };
    let on_fit = {
        let (view, svg, drawing) = (view.clone(), svg.clone(), props.drawing.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(el) = svg.cast::<web_sys::Element>() {
                view.set(fit(&el, &drawing, MIN_ZOOM));
            }
        })
    };
    let go_to = {
        let (view, svg, drawing) = (view.clone(), svg.clone(), props.drawing.clone());
        move |i: usize| {
            if let Some(el) = svg.cast::<web_sys::Element>() {
                view.set(centre_on(&el, &drawing, i, *view, SEARCH_ZOOM));
            }
        }
    };
    let on_search = {
        let (query, found_at, drawing, go_to) = (
            query.clone(),
            found_at.clone(),
            props.drawing.clone(),
            go_to.clone(),
        );
        Callback::from(move |e: InputEvent| {
            let q = e
                .target_unchecked_into::<web_sys::HtmlInputElement>()
                .value();
            if let Some(&first) = matching(&drawing, &q).first() {
                go_to(first);
            }
            found_at.set(0);
            query.set(q);
        })
    };
    let on_search_key = {
        let (query, found_at, found) = (query.clone(), found_at.clone(), found.clone());
        Callback::from(move |e: KeyboardEvent| match e.key().as_str() {
            "Enter" if !found.is_empty() => {
                let next = (*found_at + 1) % found.len();
                go_to(found[next]);
                found_at.set(next);
            }
            "Escape" => query.set(String::new()),
            _ => {}
        })
    };
    let search_count = (!query.trim().is_empty()).then(|| {
        let text = match found.len() {
            0 => "no match".to_string(),
            1 => "1 match".to_string(),
            n => format!("{} of {n} (Enter: next)", *found_at + 1),
        };
        html! { <span class="hint" id="dag-search-count">{ text }</span> }
    });
    let pending = match &*drag {
        Some(Drag::Connect {
            from_id,
            at,
            moved: true,
            ..
        }) if props.on_connect.is_some() => props.drawing.index_of(from_id).map(|i| {
            let o = LayoutOptions::default();
            let p = props.drawing.layout.nodes[i];
            html! {
                <line class="pending-edge" x1={(p.x + o.node_width).to_string()}
                    y1={(p.y + o.node_height / 2.0).to_string()}
                    x2={at.x.to_string()} y2={at.y.to_string()} />
            }
        }),
        _ => None,
    };
    let compact = compact_label_size(view.k);
    let class = classes!(
        "dag",
        drag.is_some().then_some("dragging"),
        compact.is_some().then_some("compact")
    );
    html! {
        <div class="dag-wrap">
            <div class="dag-tools">
                <button onclick={zoom_button(1.25)} title="zoom in">{ "+" }</button>
                <button onclick={zoom_button(0.8)} title="zoom out">{ "−" }</button>
                <button onclick={on_fit} title="show the whole graph">{ "fit" }</button>
                <input type="search" id="dag-search" class="dag-search" placeholder="find a notebook"
                    value={(*query).clone()} oninput={on_search} onkeydown={on_search_key} />
                { crate::each(search_count) }
                <span class="legend">
                    <span class="lg critical">{ "critical path" }</span>
                    <span class="lg bridged">{ "bridged around inactive" }</span>
                    if highlight.picked.is_some() {
                        <span class="lg upstream">{ "upstream" }</span>
                        <span class="lg downstream">{ "downstream" }</span>
                    }
                    if props.on_connect.is_some() {
                        <span class="hint">{ "drag from one notebook to another to add a dependency" }</span>
                    }
                </span>
            </div>
            <svg ref={svg} {class} {onmousedown} {onmousemove} {onmouseup} {onmouseleave} {onwheel}>
                <defs>
                    <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">
                        <path d="M0,0L10,5L0,10z" class="arrow" />
                    </marker>
                    <marker id="arrow-critical" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">
                        <path d="M0,0L10,5L0,10z" class="arrow critical" />
                    </marker>
                </defs>
                <g transform={format!("translate({:.1},{:.1}) scale({:.4})", view.tx, view.ty, view.k)}>
                    <DagLayer drawing={props.drawing.clone()} plan={props.plan.clone()}
                        run={props.run.clone()} selected={props.selected.clone()}
                        highlight={highlight.clone()} {compact}
                        marks={props.marks.clone()} />
                    { crate::each(pending) }
                </g>
            </svg>
        </div>
    }
}

fn zoom_at(view: &UseStateHandle<View>, (sx, sy): (f64, f64), factor: f64) {
    let v = **view;
    let k = (v.k * factor).clamp(MIN_ZOOM, MAX_ZOOM);
    let r = k / v.k;
    view.set(View {
        tx: sx - (sx - v.tx) * r,
        ty: sy - (sy - v.ty) * r,
        k,
    });
}

/// An edge's polyline as a path: curves across the gaps between layers, straight runs through
/// the layers a long edge passes.
fn edge_path(points: &[Point]) -> String {
    let mut d = String::new();
    for (i, p) in points.iter().enumerate() {
        if i == 0 {
            d.push_str(&format!("M{:.1},{:.1}", p.x, p.y));
            continue;
        }
        let a = points[i - 1];
        if a.y == p.y {
            d.push_str(&format!("L{:.1},{:.1}", p.x, p.y));
        } else {
            let mx = (a.x + p.x) / 2.0;
            d.push_str(&format!(
                "C{mx:.1},{:.1} {mx:.1},{:.1} {:.1},{:.1}",
                a.y, p.y, p.x, p.y
            ));
        }
    }
    d
}

#[derive(Properties, PartialEq)]
struct LayerProps {
    drawing: Rc<PlanDrawing>,
    plan: Rc<Plan>,
    run: Option<Rc<RunView>>,
    selected: Option<String>,
    highlight: Rc<Highlight>,
    /// The label's size in compact style; `None`: the normal style.
    compact: Option<u32>,
    marks: Option<Rc<BTreeMap<String, &'static str>>>,
}

/// The nodes and edges; a component of its own so that panning and zooming (which only move
/// the enclosing group) do not rebuild them.
#[function_component(DagLayer)]
fn dag_layer(props: &LayerProps) -> Html {
    let d = &props.drawing;
    let o = LayoutOptions::default();
    // The conditions on values (`if`) a task runs under, by (task, the dependency it is on).
    let conditions: HashMap<(&str, &str), &str> = props
        .plan
        .tasks
        .iter()
        .flat_map(|t| {
            t.conditions.iter().map(move |c| {
                (
                    (t.id.as_str(), c.dependency.as_str()),
                    c.condition.text.as_str(),
                )
            })
        })
        .collect();
    let edges = d.edges.iter().zip(&d.layout.edges).map(|(e, pts)| {
        let (from_id, to_id) = (d.nodes[e.from].id.as_str(), d.nodes[e.to].id.as_str());
        let when = conditions.get(&(to_id, from_id)).copied();
        let inactive = !d.nodes[e.from].active || !d.nodes[e.to].active;
        let class = classes!(
            "edge",
            props.highlight.dims_edge(e.from, e.to).then_some("dim"),
            e.bridged.then_some("bridged"),
            e.critical.then_some("critical"),
            (inactive && !e.bridged).then_some("inactive"),
        );
        let marker = if e.critical {
            "url(#arrow-critical)"
        } else {
            "url(#arrow)"
        };
        // Conditions the user wrote; a sub-pipeline's end waits for its notebooks with the
        // internal condition `any`, which is left unlabelled.
        let written = !matches!(e.on.name(), "succeeded" | "any");
        // The condition on values is marked `if …` (cut; whole in the tooltip).
        let text: Vec<String> = written
            .then(|| e.on.name().to_string())
            .into_iter()
            .chain(when.map(|w| {
                let cut: String = w.chars().take(LABEL_CHARS).collect();
                let more = if cut.len() < w.len() { "…" } else { "" };
                format!("if {cut}{more}")
            }))
            .collect();
        let label = (!text.is_empty() && pts.len() >= 2).then(|| {
            let (a, b) = (pts[pts.len() - 2], pts[pts.len() - 1]);
            html! {
                <text class={classes!("edge-label", when.is_some().then_some("edge-if"))}
                    x={((a.x + b.x) / 2.0).to_string()}
                    y={((a.y + b.y) / 2.0 - 4.0).to_string()} text-anchor="middle"
                    data-from={from_id.to_string()} data-to={to_id.to_string()}>
                    { text.join(" · ") }
                    { crate::each(when.map(|w| html! { <title>{ format!("runs only if {w}") }</title> })) }
                </text>
            }
        });
        html! {
            <g>
                <path class={classes!(class, when.is_some().then_some("conditional"))} d={edge_path(pts)} marker-end={marker}
                    data-from={from_id.to_string()} data-to={to_id.to_string()} data-if={when.map(str::to_string)} />
                { crate::each(label) }
            </g>
        }
    });
    // Tasks by id: with a sub-pipeline collapsed, node `i` is not task `i`.
    let tasks: HashMap<&str, &spool_core::dag::Task> = props
        .plan
        .tasks
        .iter()
        .map(|t| (t.id.as_str(), t))
        .collect();
    // A sub-pipeline drawn as one node: how many of the plan's steps it stands for.
    let folded = |id: &str| {
        let prefix = format!("{id}/");
        let drawn = d.nodes.iter().any(|m| m.id.starts_with(&prefix));
        let inside = props
            .plan
            .tasks
            .iter()
            .filter(|t| t.id.starts_with(&prefix))
            .count();
        (!drawn && inside > 0).then_some(inside)
    };
    let nodes = d.nodes.iter().zip(&d.layout.nodes).enumerate().map(|(i, (n, p))| {
        let state = match (&props.run, n.active) {
            (_, false) => "inactive",
            // A sub-pipeline's end is recorded once it settles; before that it is in progress
            // as soon as one of its notebooks has an event.
            (Some(run), true)
                if n.kind == TaskKind::PipelineEnd && run.state_of(&n.id) == NodeState::Pending =>
            {
                let prefix = format!("{}/", n.id);
                let started = run.record.tasks.keys().any(|t| t.starts_with(&prefix));
                if started { NodeState::Running } else { NodeState::Pending }.name()
            }
            (Some(run), true) => run.state_of(&n.id).name(),
            (None, true) => "idle",
        };
        let task = tasks.get(n.id.as_str()).copied().filter(|_| n.active);
        let folded = (n.kind == TaskKind::PipelineEnd).then(|| folded(&n.id)).flatten();
        // In a run, what happened; otherwise what the file says.
        let happened = props.run.as_ref().filter(|_| n.active).and_then(|r| r.node_caption(&n.id));
        let sub = happened.unwrap_or_else(|| match (n.kind, task) {
            (TaskKind::PipelineEnd, _) => match folded {
                Some(steps) => format!("sub-pipeline · {steps} steps inside"),
                None => "end of sub-pipeline".to_string(),
            },
            (TaskKind::ForEach, _) => "for each item".to_string(),
            (_, None) => "inactive".to_string(),
            (_, Some(t)) => {
                let slots = t.settings.slots;
                format!(
                    "{} · {} slot{}",
                    duration(t.settings.estimate_secs),
                    slots,
                    if slots == 1 { "" } else { "s" }
                )
            }
        });
        let mark = props.marks.as_ref().and_then(|m| m.get(&n.id)).copied();
        let class = classes!(
            "dag-node",
            props.highlight.node(i),
            format!("state-{state}"),
            n.critical.then_some("critical"),
            (n.kind == TaskKind::PipelineEnd).then_some("pipeline-end"),
            folded.is_some().then_some("collapsed"),
            (props.selected.as_deref() == Some(n.id.as_str())).then_some("selected"),
            mark.map(|m| format!("repair-{m}")),
        );
        // Compact: the label alone, as large as reads on screen, running on into the gap before
        // the next layer (a halo keeps it clear of the edges there), its end kept when cut (a
        // character is about 0.6 of the font's size wide). The style overrides the stylesheet's
        // size, as an attribute would not.
        let text = match props.compact {
            Some(size) => {
                let size = f64::from(size);
                let fits = (o.node_width + 0.8 * o.layer_gap - 4.0) / (size * 0.6);
                html! {
                    <text class="label" x="4" y={(o.node_height / 2.0 + size * 0.35).to_string()}
                        style={format!("font-size:{size}px;stroke-width:{:.1}px", size * 0.25)}>
                        { tail_label(&n.id, fits as usize) }
                    </text>
                }
            }
            None => {
                let label: String = if n.id.chars().count() > LABEL_CHARS {
                    n.id.chars().take(LABEL_CHARS - 1).chain(['…']).collect()
                } else {
                    n.id.clone()
                };
                html! {
                    <>
                        <text class="label" x="8" y="15">{ label }</text>
                        <text class="sub" x="8" y="29">{ sub }</text>
                    </>
                }
            }
        };
        let kind = match n.kind {
            TaskKind::Notebook => "notebook",
            TaskKind::PipelineEnd => "pipeline",
            TaskKind::ForEach => "for-each",
        };
        html! {
            <g {class} data-id={n.id.clone()} data-state={state} data-kind={kind} data-repair={mark}
                transform={format!("translate({:.1},{:.1})", p.x, p.y)}>
                <title>{ &n.id }</title>
                <rect width={o.node_width.to_string()} height={o.node_height.to_string()} rx="6" />
                { text }
            </g>
        }
    });
    html! {
        <>
            <g class="edges">{ for edges }</g>
            <g class="nodes">{ for nodes }</g>
        </>
    }
}

/// States for a legend of run colours.
pub const RUN_STATES: [NodeState; 9] = [
    NodeState::Pending,
    NodeState::Running,
    NodeState::Retrying,
    NodeState::Succeeded,
    NodeState::Failed,
    NodeState::TimedOut,
    NodeState::Cancelled,
    NodeState::Skipped,
    NodeState::Kept,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// a → b → d, a → c, e alone.
    #[test]
    fn the_picked_nodes_lineage_is_every_ancestor_and_descendant_and_the_rest_is_dimmed() {
        let edges = [(0, 1), (1, 3), (0, 2)];
        let (up, down) = lineage(5, &edges, 1);
        assert_eq!(up, [true, false, false, false, false]);
        assert_eq!(down, [false, false, false, true, false]);
        let h = Highlight {
            found: vec![false; 5],
            searching: false,
            picked: Some((1, up, down)),
        };
        let marks: Vec<Option<&str>> = (0..5).map(|i| h.node(i)).collect();
        assert_eq!(
            marks,
            [
                Some("upstream"),
                None,
                Some("dim"),
                Some("downstream"),
                Some("dim")
            ]
        );
        assert!(!h.dims_edge(0, 1) && !h.dims_edge(1, 3));
        assert!(h.dims_edge(0, 2), "a → c is not on b's lineage");
    }

    #[test]
    fn a_long_chain_is_walked_without_recursion() {
        let n = 100_000;
        let edges: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
        let (up, down) = lineage(n, &edges, n / 2);
        assert_eq!(up.iter().filter(|x| **x).count(), n / 2);
        assert_eq!(down.iter().filter(|x| **x).count(), n - n / 2 - 1);
    }

    #[test]
    fn compact_labels_read_on_screen_and_keep_the_ids_end() {
        assert_eq!(compact_label_size(1.0), None);
        assert_eq!(compact_label_size(COMPACT_BELOW), None);
        // 10 px on screen at a third: 30 units; never more than a node's pitch (50).
        assert_eq!(compact_label_size(1.0 / 3.0), Some(30));
        assert_eq!(compact_label_size(0.1), Some(50));
        assert_eq!(tail_label("layer_07/nb_123", 8), "…/nb_123");
        assert_eq!(tail_label("nb_1", 8), "nb_1");
    }

    #[test]
    fn edges_curve_across_gaps_and_run_straight_through_layers() {
        let pts = [
            Point { x: 0.0, y: 0.0 },
            Point { x: 10.0, y: 20.0 },
            Point { x: 30.0, y: 20.0 },
        ];
        assert_eq!(
            edge_path(&pts),
            "M0.0,0.0C5.0,0.0 5.0,20.0 10.0,20.0L30.0,20.0"
        );
    }
}
