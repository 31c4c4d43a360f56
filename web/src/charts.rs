//! Charts: the Gantt chart (a canvas, so 10k bars stay cheap), the utilisation step chart and
//! the pool-size sweep (SVG). The arithmetic is in plain functions, tested natively.

use crate::run::NodeState;
use spool_core::sim::{BusyPoint, SweepPoint};
use std::collections::HashMap;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use yew::prelude::*;

/// Up to this many notebooks the Gantt chart has one labelled row per notebook; above, bars are
/// packed into lanes (one lane per notebook running at once).
pub const MAX_NAMED_ROWS: usize = 300;

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub task: String,
    pub start: f64,
    pub end: f64,
    pub state: NodeState,
    pub kind: BarKind,
}

/// What a bar stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarKind {
    /// An attempt running (coloured by its outcome).
    Attempt,
    /// A real run's notebook ready but waiting for a slot: a thin grey bar.
    Queued,
    /// The dry run's prediction of an attempt, over a real run's bars: an outline.
    Predicted,
}

impl BarKind {
    /// What the read-out says the bar is, beside the attempt's state.
    fn name(self, state: NodeState) -> &'static str {
        match self {
            BarKind::Attempt => state.name(),
            BarKind::Queued => "queued",
            BarKind::Predicted => "predicted",
        }
    }
}

/// How a collapsed sub-pipeline's row is labelled after its id.
pub const SUB_PIPELINE_ROW: &str = "/ (sub-pipeline)";

/// One bar per sub-pipeline instead of one per notebook in it (`dims/load_x` and `dims/y`
/// become `dims`, from the first start to the last end); the bar shows the worst outcome in it
/// (failed over timed out over cancelled over running, retrying, succeeded and skipped).
/// Predictions collapse apart from what happened; the queued times of a sub-pipeline's
/// notebooks are left out (its notebooks queue while others of it run: a queued line across
/// its bar would say nothing true).
pub fn collapse_sub_pipelines(bars: Vec<Bar>) -> Vec<Bar> {
    let rank = |s: NodeState| match s {
        NodeState::Failed => 7,
        NodeState::TimedOut => 6,
        NodeState::Cancelled => 5,
        NodeState::Running => 4,
        NodeState::Retrying => 3,
        NodeState::Pending => 2,
        NodeState::Succeeded | NodeState::Kept => 1,
        NodeState::Skipped => 0,
    };
    let mut out: Vec<Bar> = Vec::new();
    let mut index: HashMap<(String, BarKind), usize> = HashMap::new();
    for b in bars {
        let Some((top, _)) = b.task.split_once('/') else {
            out.push(b);
            continue;
        };
        if b.kind == BarKind::Queued {
            continue;
        }
        match index.get(&(top.to_string(), b.kind)) {
            Some(&i) => {
                let c = &mut out[i];
                c.start = c.start.min(b.start);
                c.end = c.end.max(b.end);
                if rank(b.state) > rank(c.state) {
                    c.state = b.state;
                }
            }
            None => {
                index.insert((top.to_string(), b.kind), out.len());
                out.push(Bar {
                    task: format!("{top}{SUB_PIPELINE_ROW}"),
                    ..b
                });
            }
        }
    }
    out
}

/// What the Gantt chart draws; times in seconds from the trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct GanttChart {
    /// Attempts first, then queued times, then predictions: the read-out names the first bar
    /// under the pointer.
    pub bars: Vec<Bar>,
    pub labels: Vec<String>,
    /// Row of each bar.
    pub row_of: Vec<usize>,
    /// One labelled row per notebook (else anonymous lanes).
    pub named: bool,
    /// The shared pool's start-up, shaded at the left.
    pub startup: f64,
    /// What starts then, in the start-up's caption.
    pub startup_of: &'static str,
    pub end: f64,
}

impl GanttChart {
    /// One row per notebook in order of first start (predictions do not move a notebook that
    /// has real bars) when there are few, else lanes of attempts only: each bar goes to the
    /// lowest lane free at its start, so bars in a lane never overlap.
    pub fn new(mut bars: Vec<Bar>, startup: f64, end: f64) -> Self {
        bars.sort_by_key(|b| b.kind as u8);
        let tasks: std::collections::HashSet<&str> = bars.iter().map(|b| b.task.as_str()).collect();
        if tasks.len() > MAX_NAMED_ROWS {
            bars.retain(|b| b.kind == BarKind::Attempt);
        }
        let mut first_start: Vec<(f64, &str)> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let predicted = bars.partition_point(|b| b.kind != BarKind::Predicted);
        for (i, b) in bars.iter().enumerate() {
            if i >= predicted && seen.contains_key(b.task.as_str()) {
                continue;
            }
            match seen.get(b.task.as_str()) {
                Some(&i) => first_start[i].0 = first_start[i].0.min(b.start),
                None => {
                    seen.insert(&b.task, first_start.len());
                    first_start.push((b.start, &b.task));
                }
            }
        }
        let named = first_start.len() <= MAX_NAMED_ROWS;
        let (labels, row_of) = if named {
            first_start.sort_by(|a, b| a.0.total_cmp(&b.0));
            let row: HashMap<&str, usize> = first_start
                .iter()
                .enumerate()
                .map(|(i, (_, t))| (*t, i))
                .collect();
            let row_of = bars.iter().map(|b| row[b.task.as_str()]).collect();
            let labels = first_start.iter().map(|(_, t)| t.to_string()).collect();
            (labels, row_of)
        } else {
            let mut order: Vec<usize> = (0..bars.len()).collect();
            order.sort_by(|&a, &b| bars[a].start.total_cmp(&bars[b].start));
            let mut lane_free_at: Vec<f64> = Vec::new();
            let mut row_of = vec![0; bars.len()];
            for i in order {
                let lane = match lane_free_at.iter().position(|&t| t <= bars[i].start) {
                    Some(l) => l,
                    None => {
                        lane_free_at.push(f64::NEG_INFINITY);
                        lane_free_at.len() - 1
                    }
                };
                lane_free_at[lane] = bars[i].end;
                row_of[i] = lane;
            }
            let labels = (1..=lane_free_at.len())
                .map(|l| format!("lane {l}"))
                .collect();
            (labels, row_of)
        };
        GanttChart {
            bars,
            labels,
            row_of,
            named,
            startup,
            startup_of: "the pool's nodes start",
            end,
        }
    }

    /// What the read-out says of the bar at `row` and `t` seconds (bars narrower than `pixel`
    /// seconds count as that wide).
    pub fn bar_at(&self, row: f64, t: f64, pixel: f64) -> Option<String> {
        let (b, _) =
            self.bars.iter().zip(&self.row_of).find(|(b, &r)| {
                r as f64 == row && b.start <= t && t <= b.end.max(b.start + pixel)
            })?;
        Some(format!(
            "{}: {} from {} to {} ({})",
            b.task,
            b.kind.name(b.state),
            duration(b.start),
            duration(b.end),
            duration(b.end - b.start)
        ))
    }

    /// Room for the row labels at the left (lanes are not labelled one by one).
    fn label_width(&self) -> f64 {
        if self.named {
            170.0
        } else {
            50.0
        }
    }

    fn row_height(&self) -> f64 {
        if self.named {
            16.0
        } else {
            (480.0 / self.labels.len().max(1) as f64).clamp(3.0, 16.0)
        }
    }
}

pub fn state_colour(state: NodeState) -> &'static str {
    match state {
        NodeState::Pending => "#c9ced6",
        NodeState::Running => "#2f7de1",
        NodeState::Retrying => "#e8a317",
        NodeState::Succeeded => "#2e9d62",
        NodeState::Failed => "#d64545",
        NodeState::TimedOut => "#b0642a",
        NodeState::Cancelled => "#7a7f87",
        NodeState::Skipped => "#e1e4e8",
        NodeState::Kept => "#9fd3b5",
    }
}

pub use spool_core::duration_text as duration;

/// A queued bar, and the outline of a predicted one (also their legend's swatches in
/// style.css).
const QUEUED_COLOUR: &str = "#8a929c";
const PREDICTED_COLOUR: &str = "#1f2328";
/// The picked notebook's row.
const PICKED_COLOUR: &str = "rgba(47, 125, 225, 0.12)";

/// A "nice" step for `count` ticks over `span` (1, 2 or 5 times a power of ten).
pub fn tick_step(span: f64, count: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / count.max(1.0);
    let pow = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow)
}

/// A step for about `count` time ticks over `span` seconds that reads well on a clock.
pub fn time_step(span: f64, count: f64) -> f64 {
    const STEPS: [f64; 16] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        21600.0, 43200.0,
    ];
    let raw = span / count.max(1.0);
    STEPS
        .into_iter()
        .find(|s| *s >= raw)
        .unwrap_or_else(|| tick_step(span, count))
        .min(if raw < 1.0 {
            tick_step(span, count)
        } else {
            f64::INFINITY
        })
}

/// The axis: tick labels, and below them the start-up band's label.
const AXIS_HEIGHT: f64 = 30.0;

#[derive(Properties, PartialEq)]
pub struct GanttProps {
    pub chart: Rc<GanttChart>,
    /// The notebook whose row is marked.
    #[prop_or_default]
    pub selected: Option<String>,
    /// When given, a click on a notebook's row calls it with the notebook.
    #[prop_or_default]
    pub on_pick: Option<Callback<String>>,
}

/// The Gantt chart, drawn on two canvases: the time axis, which stays in view while the rows
/// scroll under it (sticky), and the bars; hovering a bar names it below the chart, a click on
/// a row picks its notebook (when the chart has one row per notebook). The shared pool's
/// start-up is shaded and labelled.
#[function_component(Gantt)]
pub fn gantt(props: &GanttProps) -> Html {
    let axis = use_node_ref();
    let rows = use_node_ref();
    // Where the pointer is (row, seconds, seconds a pixel spans): the read-out is derived from the chart shown, so it
    // follows the current settings without a new mouse move.
    let pointer = use_state(|| None::<(f64, f64, f64)>);
    {
        let (axis, rows) = (axis.clone(), rows.clone());
        let picked = props
            .selected
            .as_ref()
            .and_then(|id| props.chart.labels.iter().position(|l| l == id))
            .filter(|_| props.chart.named);
        use_effect_with((props.chart.clone(), picked), move |(chart, picked)| {
            if let Some(el) = axis.cast::<web_sys::HtmlCanvasElement>() {
                draw_gantt(&el, chart, Layer::Axis, None);
            }
            if let Some(el) = rows.cast::<web_sys::HtmlCanvasElement>() {
                draw_gantt(&el, chart, Layer::Rows, *picked);
            }
        });
    }
    let onmousemove = {
        let chart = props.chart.clone();
        let pointer = pointer.clone();
        Callback::from(move |e: MouseEvent| {
            let Some(el) = e.target_dyn_into::<web_sys::Element>() else {
                return;
            };
            let rect = el.get_bounding_client_rect();
            let (x, y) = (
                f64::from(e.client_x()) - rect.left(),
                f64::from(e.client_y()) - rect.top(),
            );
            let plot = (rect.width() - chart.label_width()).max(1.0);
            let t = (x - chart.label_width()) / plot * chart.end.max(1e-9);
            // A bar narrower than a pixel is found within a pixel of its start.
            pointer.set(Some((
                (y / chart.row_height()).floor(),
                t,
                chart.end / plot,
            )));
        })
    };
    let onmouseleave = {
        let pointer = pointer.clone();
        Callback::from(move |_: MouseEvent| pointer.set(None))
    };
    let onclick = props
        .on_pick
        .clone()
        .filter(|_| props.chart.named)
        .map(|pick| {
            let chart = props.chart.clone();
            Callback::from(move |e: MouseEvent| {
                let Some(el) = e.target_dyn_into::<web_sys::Element>() else {
                    return;
                };
                let y = f64::from(e.client_y()) - el.get_bounding_client_rect().top();
                let row = (y / chart.row_height()).floor();
                if row >= 0.0 {
                    if let Some(label) = chart.labels.get(row as usize) {
                        // A collapsed sub-pipeline's row picks the sub-pipeline (its end task).
                        let task = label.strip_suffix(SUB_PIPELINE_ROW).unwrap_or(label);
                        pick.emit(task.to_string());
                    }
                }
            })
        });
    let pickable = onclick.is_some().then_some("pickable");
    let hover = (*pointer).and_then(|(row, t, pixel)| props.chart.bar_at(row, t, pixel));
    let chart = &props.chart;
    let height = chart.row_height() * chart.labels.len() as f64 + 4.0;
    let startup = (chart.startup > 0.0).then(|| {
        html! {
            <div class="gantt-startup" id="gantt-startup">
                <span class="swatch"></span>
                { format!("start-up: {} for {} before the first notebook can run", chart.startup_of, duration(chart.startup)) }
            </div>
        }
    });
    let has = |kind: BarKind| chart.bars.iter().any(|b| b.kind == kind);
    let queued = has(BarKind::Queued).then(|| html! {
        <span class="lg"><i class="gantt-queued"></i>{ "queued: ready, waiting for a slot" }</span>
    });
    let predicted = has(BarKind::Predicted).then(|| {
        html! {
            <span class="lg"><i class="gantt-predicted"></i>{ "predicted by the dry run" }</span>
        }
    });
    html! {
        <div class="gantt">
            <canvas class="gantt-axis" ref={axis} style={format!("height:{AXIS_HEIGHT}px")}></canvas>
            <canvas ref={rows} class={classes!(pickable)} style={format!("height:{height}px")} {onmousemove} {onmouseleave} {onclick}></canvas>
            <div class="gantt-hover">{ hover.unwrap_or_else(|| "\u{a0}".into()) }</div>
            { crate::each(startup) }
            if queued.is_some() || predicted.is_some() {
                <div class="legend gantt-legend">{ crate::each(queued) }{ crate::each(predicted) }</div>
            }
        </div>
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Layer {
    Axis,
    Rows,
}

/// Draws one layer; `picked`: a row to mark.
fn draw_gantt(
    el: &web_sys::HtmlCanvasElement,
    chart: &GanttChart,
    layer: Layer,
    picked: Option<usize>,
) {
    let Some(ctx) = el
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    let ratio = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
    let (w, h) = (f64::from(el.client_width()), f64::from(el.client_height()));
    el.set_width((w * ratio) as u32);
    el.set_height((h * ratio) as u32);
    let _ = ctx.scale(ratio, ratio);
    ctx.clear_rect(0.0, 0.0, w, h);
    let left = chart.label_width();
    let plot = (w - left).max(1.0);
    let end = chart.end.max(1e-9);
    let x = |t: f64| left + t / end * plot;
    let rh = chart.row_height();

    ctx.set_fill_style_str("#eef1f5");
    ctx.fill_rect(x(0.0), 0.0, x(chart.startup) - x(0.0), h);
    ctx.set_font("11px sans-serif");
    ctx.set_fill_style_str("#57606a");
    let step = time_step(end, 8.0);
    let mut t = 0.0;
    while t <= end + 1e-9 {
        if layer == Layer::Axis {
            let _ = ctx.fill_text(&duration(t), x(t) + 2.0, 13.0);
            ctx.fill_rect(x(t), 16.0, 1.0, AXIS_HEIGHT - 16.0);
        } else {
            ctx.fill_rect(x(t), 0.0, 1.0, h);
        }
        t += step;
    }
    if layer == Layer::Axis {
        let band = x(chart.startup) - x(0.0);
        if band >= 50.0 {
            ctx.set_fill_style_str("#8a929c");
            let _ = ctx.fill_text("start-up", x(0.0) + 4.0, AXIS_HEIGHT - 4.0);
        }
        return;
    }
    if let Some(row) = picked {
        ctx.set_fill_style_str(PICKED_COLOUR);
        ctx.fill_rect(0.0, rh * row as f64, w, rh);
        ctx.set_fill_style_str("#57606a");
    }
    if !chart.named {
        let _ = ctx.fill_text(&format!("{} lanes", chart.labels.len()), 4.0, 12.0);
    } else if rh >= 12.0 {
        for (i, label) in chart.labels.iter().enumerate() {
            let text: String = label.chars().take(26).collect();
            let _ = ctx.fill_text(&text, 4.0, rh * (i as f64 + 0.75));
        }
    }
    for (b, &row) in chart.bars.iter().zip(&chart.row_of) {
        let width = (x(b.end) - x(b.start)).max(1.0);
        let top = rh * row as f64;
        match b.kind {
            BarKind::Attempt => {
                ctx.set_fill_style_str(state_colour(b.state));
                ctx.fill_rect(x(b.start), top + 1.0, width, (rh - 2.0).max(1.0));
            }
            BarKind::Queued => {
                ctx.set_fill_style_str(QUEUED_COLOUR);
                ctx.fill_rect(x(b.start), top + rh * 0.4, width, (rh * 0.2).max(1.0));
            }
            BarKind::Predicted => {
                ctx.set_stroke_style_str(PREDICTED_COLOUR);
                ctx.set_line_width(1.5);
                ctx.stroke_rect(
                    x(b.start) + 0.5,
                    top + 1.5,
                    width - 1.0,
                    (rh - 3.0).max(1.0),
                );
            }
        }
    }
}

/// The busy-slots step line as an SVG path over a `width` × `height` box, with at most two
/// points per horizontal pixel (the highest value in each pixel column is kept, so short peaks
/// stay visible).
pub fn busy_path(series: &[BusyPoint], end: f64, max: f64, width: f64, height: f64) -> String {
    let end = end.max(1e-9);
    let max = max.max(1.0);
    let x = |t: f64| (t / end * width).clamp(0.0, width);
    let y = |v: f64| height - v / max * height;
    let columns = width.max(1.0) as usize;
    let mut peak: Vec<Option<f64>> = vec![None; columns + 1];
    let mut level = 0.0;
    let mut out = format!("M0,{:.1}", y(0.0));
    let mut last_col = 0;
    for (i, p) in series.iter().enumerate() {
        let until = series.get(i + 1).map_or(end, |n| n.at_secs);
        let (c0, c1) = (x(p.at_secs) as usize, x(until) as usize);
        let v = p.busy_slots as f64;
        for slot in peak.iter_mut().take(c1.min(columns) + 1).skip(c0) {
            *slot = Some(slot.map_or(v, |m: f64| m.max(v)));
        }
        last_col = last_col.max(c1.min(columns));
    }
    for (c, v) in peak.iter().enumerate().take(last_col + 1) {
        let v = v.unwrap_or(0.0);
        if v != level || c == last_col {
            out.push_str(&format!("H{c}V{:.1}", y(v)));
            level = v;
        }
    }
    out.push_str(&format!("H{width:.0}"));
    out
}

#[derive(Properties, PartialEq)]
pub struct BusyProps {
    pub series: Rc<Vec<BusyPoint>>,
    pub capacity: u32,
    pub end: f64,
}

/// Busy slots over time against the capacity.
#[function_component(BusyChart)]
pub fn busy_chart(props: &BusyProps) -> Html {
    let (w, h) = (900.0, 140.0);
    let cap = f64::from(props.capacity);
    let top = props
        .series
        .iter()
        .map(|p| p.busy_slots as f64)
        .fold(cap, f64::max);
    let path = busy_path(&props.series, props.end, top, w, h);
    let cap_y = h - cap / top.max(1.0) * h;
    html! {
        <svg class="busy-chart" viewBox={format!("-40 -10 {} {}", w + 50.0, h + 30.0)}>
            <path class="busy" d={format!("{path}V{h}H0Z")} />
            <line class="capacity" x1="0" x2={w.to_string()} y1={cap_y.to_string()} y2={cap_y.to_string()} />
            <text x="-4" y={(cap_y + 4.0).to_string()} text-anchor="end">{ props.capacity }</text>
            <text x="-4" y={(h + 4.0).to_string()} text-anchor="end">{ "0" }</text>
            <text x={w.to_string()} y={(h + 16.0).to_string()} text-anchor="end">{ duration(props.end) }</text>
            <text x="0" y={(h + 16.0).to_string()}>{ "busy slots" }</text>
        </svg>
    }
}

#[derive(Properties, PartialEq)]
pub struct SweepProps {
    pub points: Rc<Vec<SweepPoint>>,
    pub cheapest: Option<u32>,
    pub deadline_secs: Option<f64>,
    pub current: u32,
}

/// Makespan and cost by number of executors; the deadline and the cheapest pool meeting it.
#[function_component(SweepChart)]
pub fn sweep_chart(props: &SweepProps) -> Html {
    let (w, h) = (900.0, 200.0);
    let pts = &props.points;
    let Some(last) = pts.last() else {
        return html! {};
    };
    let n = f64::from(last.executors.max(2) - 1);
    // Both axes span their values' range (a pool's start-up would otherwise flatten the
    // makespan line) with a little room, and are labelled with the data's own bounds.
    let bounds = |vals: &mut dyn Iterator<Item = f64>| {
        vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        })
    };
    let padded = |(lo, hi): (f64, f64)| {
        let pad = ((hi - lo) * 0.05).max(1e-6);
        (lo - pad, hi + pad)
    };
    let (lo_t, hi_t) = bounds(&mut pts.iter().map(|p| p.makespan_secs));
    let (min_t, max_t) = padded(bounds(
        &mut [lo_t, hi_t].into_iter().chain(props.deadline_secs),
    ));
    let (lo_c, hi_c) = bounds(&mut pts.iter().map(|p| p.cost));
    let (min_c, max_c) = padded((lo_c, hi_c));
    let x = |e: u32| f64::from(e.saturating_sub(1)) / n * w;
    let yt = |t: f64| h - (t - min_t) / (max_t - min_t) * h;
    let yc = |c: f64| h - (c - min_c) / (max_c - min_c) * h;
    let line = |f: &dyn Fn(&SweepPoint) -> f64| {
        pts.iter()
            .map(|p| format!("{:.1},{:.1}", x(p.executors), f(p)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let makespan = line(&|p| yt(p.makespan_secs));
    let cost = line(&|p| yc(p.cost));
    let deadline = props.deadline_secs.map(|d| {
        let y = yt(d);
        html! {
            <>
                <line class="deadline" x1="0" x2={w.to_string()} y1={y.to_string()} y2={y.to_string()} />
                <text class="deadline-label" x={w.to_string()} y={(y - 4.0).to_string()} text-anchor="end">{ format!("deadline {}", duration(d)) }</text>
            </>
        }
    });
    // A point's label goes below it near the top, and to its left near the right end.
    let label_at = |p: &SweepPoint| {
        let (cx, cy) = (x(p.executors), yt(p.makespan_secs));
        let ty = if cy < 30.0 { cy + 20.0 } else { cy - 10.0 };
        let (tx, anchor) = if cx > w * 0.6 {
            (cx - 10.0, "end")
        } else {
            (cx + 10.0, "start")
        };
        (cx, cy, tx, ty, anchor)
    };
    let cheapest = props
        .cheapest
        .and_then(|e| pts.iter().find(|p| p.executors == e))
        .map(|p| {
            let (cx, cy, tx, ty, anchor) = label_at(p);
            html! {
                <g id="cheapest" data-executors={p.executors.to_string()}>
                    <circle cx={cx.to_string()} cy={cy.to_string()} r="6" />
                    <text x={tx.to_string()} y={ty.to_string()} text-anchor={anchor}>
                        { format!("cheapest: {} executors, {}, cost {:.2}", p.executors, duration(p.makespan_secs), p.cost) }
                    </text>
                </g>
            }
        });
    let cur_x = x(props.current);
    // The current pool, labelled at the top of its line (below the cheapest's label when
    // they are the same pool).
    let current = pts.iter().find(|p| p.executors == props.current).map(|p| {
        let (tx, anchor) = if cur_x > w * 0.6 { (cur_x - 6.0, "end") } else { (cur_x + 6.0, "start") };
        let ty = if props.cheapest == Some(p.executors) { h - 6.0 } else { 10.0 };
        html! {
            <text id="sweep-current" class="current-label" x={tx.to_string()} y={ty.to_string()} text-anchor={anchor}
                data-executors={p.executors.to_string()}>
                { format!("current: {} executors, {}, cost {:.2}", p.executors, duration(p.makespan_secs), p.cost) }
            </text>
        }
    });
    let ticks = tick_step(n, 10.0).max(1.0) as u32;
    let bound = |class: &'static str, y: f64, x: f64, anchor: &'static str, text: String| {
        html! { <text {class} x={x.to_string()} y={(y + 4.0).to_string()} text-anchor={anchor}>{ text }</text> }
    };
    html! {
        <svg class="sweep-chart" viewBox={format!("-60 -14 {} {}", w + 130.0, h + 44.0)}>
            <line class="current" x1={cur_x.to_string()} x2={cur_x.to_string()} y1="0" y2={h.to_string()} />
            <polyline class="makespan" points={makespan} />
            <polyline class="cost" points={cost} />
            { crate::each(deadline) }
            { crate::each(cheapest) }
            { crate::each(current) }
            { crate::each((1..=last.executors).filter(|e| (e - 1) % ticks == 0 || *e == last.executors).map(|e| html! {
                <text x={x(e).to_string()} y={(h + 16.0).to_string()} text-anchor="middle">{ e }</text>
            })) }
            { bound("makespan-label", yt(hi_t), -6.0, "end", duration(hi_t)) }
            { bound("makespan-label", yt(lo_t), -6.0, "end", duration(lo_t)) }
            { bound("cost-label", yc(hi_c), w + 6.0, "start", format!("{hi_c:.2}")) }
            { bound("cost-label", yc(lo_c), w + 6.0, "start", format!("{lo_c:.2}")) }
            <text x={(w / 2.0).to_string()} y={(h + 30.0).to_string()} text-anchor="middle">{ "executors — makespan (blue, left: its least and most), cost (orange, right)" }</text>
        </svg>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(task: &str, start: f64, end: f64) -> Bar {
        Bar {
            task: task.into(),
            start,
            end,
            state: NodeState::Succeeded,
            kind: BarKind::Attempt,
        }
    }

    #[test]
    fn few_notebooks_get_a_row_each_in_order_of_start() {
        let c = GanttChart::new(
            vec![bar("b", 5.0, 9.0), bar("a", 0.0, 4.0), bar("b", 10.0, 12.0)],
            0.0,
            12.0,
        );
        assert_eq!(c.labels, vec!["a", "b"]);
        assert_eq!(c.row_of, vec![1, 0, 1]);
    }

    #[test]
    fn queued_and_predicted_bars_share_their_notebooks_row_and_the_read_out_names_them() {
        let queued = |task: &str, start, end| Bar {
            kind: BarKind::Queued,
            ..bar(task, start, end)
        };
        let predicted = |task: &str, start, end| Bar {
            kind: BarKind::Predicted,
            ..bar(task, start, end)
        };
        let c = GanttChart::new(
            vec![
                // Predicted first: it moves no notebook that really ran.
                predicted("b", 0.0, 3.0),
                predicted("a", 3.0, 6.0),
                predicted("never_ran", 9.0, 12.0),
                bar("a", 1.0, 4.0),
                queued("b", 4.0, 5.0),
                bar("b", 5.0, 8.0),
            ],
            1.0,
            12.0,
        );
        assert_eq!(c.labels, ["a", "b", "never_ran"]);
        assert_eq!(
            c.bar_at(1.0, 4.5, 0.01).as_deref(),
            Some("b: queued from 4.0 s to 5.0 s (1.0 s)")
        );
        // Where a real bar and a prediction overlap, the read-out names the real one.
        assert_eq!(
            c.bar_at(0.0, 3.5, 0.01).as_deref(),
            Some("a: succeeded from 1.0 s to 4.0 s (3.0 s)")
        );
        assert_eq!(
            c.bar_at(0.0, 5.0, 0.01).as_deref(),
            Some("a: predicted from 3.0 s to 6.0 s (3.0 s)")
        );
    }

    #[test]
    fn many_notebooks_are_packed_into_lanes_that_never_overlap() {
        let bars: Vec<Bar> = (0..1000)
            .map(|i| {
                let start = (i % 97) as f64 * 3.0;
                bar(&format!("nb{i}"), start, start + 1.0 + (i % 7) as f64)
            })
            .collect();
        let c = GanttChart::new(bars, 0.0, 400.0);
        assert!(!c.named && c.labels.len() < 1000 && c.labels[0] == "lane 1");
        for (i, a) in c.bars.iter().enumerate() {
            for (j, b) in c.bars.iter().enumerate().skip(i + 1) {
                if c.row_of[i] == c.row_of[j] {
                    assert!(a.end <= b.start || b.end <= a.start, "{a:?} overlaps {b:?}");
                }
            }
        }
    }

    #[test]
    fn sub_pipelines_collapse_into_one_bar_with_their_worst_outcome() {
        let mut failed = bar("dims/b", 4.0, 6.0);
        failed.state = NodeState::Failed;
        let bars = collapse_sub_pipelines(vec![
            bar("a", 0.0, 2.0),
            Bar {
                kind: BarKind::Queued,
                ..bar("dims/x", 1.0, 2.0)
            },
            bar("dims/x", 2.0, 5.0),
            failed,
            bar("dims/inner/c", 5.0, 9.0),
            bar("z", 9.0, 10.0),
        ]);
        let shown: Vec<(&str, f64, f64, NodeState)> = bars
            .iter()
            .map(|b| (b.task.as_str(), b.start, b.end, b.state))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("a", 0.0, 2.0, NodeState::Succeeded),
                ("dims/ (sub-pipeline)", 2.0, 9.0, NodeState::Failed),
                ("z", 9.0, 10.0, NodeState::Succeeded),
            ]
        );
        // The read-out names what is under the pointer in the chart shown.
        let c = GanttChart::new(bars, 0.0, 10.0);
        assert_eq!(
            c.bar_at(1.0, 3.0, 0.01).as_deref(),
            Some("dims/ (sub-pipeline): failed from 2.0 s to 9.0 s (7.0 s)")
        );
        assert_eq!(c.bar_at(0.0, 3.0, 0.01), None);
    }

    #[test]
    fn busy_path_steps_up_and_down_and_keeps_short_peaks() {
        let series = [
            BusyPoint {
                at_secs: 0.0,
                busy_slots: 0,
            },
            BusyPoint {
                at_secs: 10.0,
                busy_slots: 4,
            },
            BusyPoint {
                at_secs: 50.0,
                busy_slots: 2,
            },
            BusyPoint {
                at_secs: 50.01,
                busy_slots: 8,
            },
            BusyPoint {
                at_secs: 50.02,
                busy_slots: 0,
            },
        ];
        let p = busy_path(&series, 100.0, 8.0, 100.0, 80.0);
        assert_eq!(p, "M0,80.0H10V40.0H50V0.0H51V80.0H100V80.0H100");
    }

    #[test]
    fn time_ticks_fall_on_clock_values() {
        assert_eq!(time_step(212.0, 8.0), 30.0);
        assert_eq!(time_step(3.0 * 3600.0, 8.0), 1800.0);
        assert_eq!(time_step(0.5, 10.0), 0.05);
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(tick_step(100.0, 10.0), 10.0);
        assert_eq!(tick_step(130.0, 8.0), 20.0);
        assert_eq!(tick_step(0.9, 10.0), 0.1);
    }
}
