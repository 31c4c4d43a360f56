//! `?bench`: times, in the browser, what must stay interactive — checking, laying out and
//! simulating generated pipelines — and writes the figures into `<pre id="bench">` for
//! `scripts/bench-web.sh` to read. Each figure is the median of a few repetitions.

use crate::doc_state::DocAction;
use crate::dry_state::DryForm;
use crate::state::{Action, State};
use crate::wire::Bundle;
use spool_core::dag::{load_text, Plan};
use spool_core::dry_run::DryRunReport;
use spool_core::edit::Edit;
use spool_core::gen::LayeredDag;
use spool_core::layout::{draw_plan, LayoutOptions};
use spool_core::sim::{simulate, SimSetup};
use spool_core::source::MemorySources;
use std::fmt::Write;

const REPEATS: usize = 5;
const SEED: u64 = 1;

pub fn wanted() -> bool {
    web_sys::window()
        .and_then(|w| w.location().search().ok())
        .is_some_and(|s| s.split(['?', '&']).any(|p| p == "bench"))
}

pub fn now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// Median milliseconds of `f` over [`REPEATS`] runs, and its last result.
fn time<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::with_capacity(REPEATS);
    let mut last = None;
    for _ in 0..REPEATS {
        let start = now();
        last = Some(f());
        times.push(now() - start);
    }
    (median(times), last.expect("REPEATS > 0"))
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// A pipeline file with the generated plan's notebooks and dependencies, and its notebooks.
fn pipeline_text(plan: &Plan) -> (String, MemorySources) {
    let mut text = format!(
        "name = \"{}\"\n[pool]\nexecutors = {}\nexecutor_cores = {}\n",
        plan.name, plan.pool.executors, plan.pool.executor_cores
    );
    let mut sources = MemorySources::default();
    for (t, task) in plan.tasks.iter().enumerate() {
        let deps: Vec<String> = plan.deps[t]
            .iter()
            .map(|&(d, _)| format!("\"{}\"", plan.tasks[d].id))
            .collect();
        let _ = write!(
            text,
            "\n[[notebook]]\nid = \"{}\"\npath = \"{}\"\ndepends_on = [{}]\nestimate_secs = {:.1}\nslots = {}\n",
            task.id,
            task.path,
            deps.join(", "),
            task.settings.estimate_secs,
            task.settings.slots
        );
        sources.0.insert(task.path.clone(), String::new());
    }
    (text, sources)
}

fn generated(notebooks: usize) -> (String, MemorySources) {
    pipeline_text(&LayeredDag::benchmark(notebooks, SEED).generate())
}

/// Runs every measurement and shows the figures.
pub fn run(first_render_ms: f64) {
    let mut out = format!("first_render_ms {first_render_ms:.1}\n");
    let (text, sources) = generated(1000);
    let (check_1k, loaded) = time(|| load_text("bench.toml", &text, &sources));
    let Some(plan_1k) = loaded.plan else {
        show(&format!(
            "{out}error the generated 1k pipeline does not check: {:?}\n",
            loaded.diagnostics.first()
        ));
        return;
    };
    let (layout_1k, drawing) = time(|| draw_plan(&plan_1k, &LayoutOptions::default()));
    let _ = writeln!(out, "check_1k_ms {check_1k:.1}");
    let _ = writeln!(out, "layout_1k_ms {layout_1k:.1}");
    let _ = writeln!(out, "layout_1k_crossings {}", drawing.layout.crossings);

    let (text, sources) = generated(10_000);
    let (check_10k, loaded) = time(|| load_text("bench.toml", &text, &sources));
    let Some(plan_10k) = loaded.plan else {
        show(&format!(
            "{out}error the generated 10k pipeline does not check\n"
        ));
        return;
    };
    let setup = SimSetup::of_plan(&plan_10k);
    let (simulate_10k, report) = time(|| simulate(&plan_10k, &setup));
    let options = DryForm::default().options().ok();
    let (dry_run_10k, _) = time(|| {
        options
            .as_ref()
            .map(|o| DryRunReport::without_sweep(&plan_10k, o, None))
    });
    // One edit in the editor: the text edited (the reducer, mostly `edit::apply`), then checked
    // and dry-run again (the App's jobs, before the page paints), as the app does.
    let mut state = State::default();
    state.apply(Action::Opened(Bundle {
        etags: Default::default(),
        root: "bench.toml".into(),
        files: std::iter::once(("bench.toml".to_string(), text)).collect(),
        notebooks: sources.0.keys().cloned().collect(),
        notebook_diagnostics: Default::default(),
    }));
    state.settle();
    let (mut estimate, mut reducer_times) = (60, Vec::with_capacity(REPEATS));
    let (edit_10k, _) = time(|| {
        estimate += 1;
        let start = now();
        state.apply(Action::Doc(DocAction::Edit(vec![Edit::SetStepKey {
            id: "nb0".into(),
            key: "estimate_secs".into(),
            value: estimate.into(),
        }])));
        reducer_times.push(now() - start);
        state.settle();
    });
    let _ = writeln!(out, "check_10k_ms {check_10k:.1}");
    let _ = writeln!(out, "edit_10k_reducer_ms {:.1}", median(reducer_times));
    let _ = writeln!(out, "edit_10k_ms {edit_10k:.1}");
    let _ = writeln!(out, "simulate_10k_ms {simulate_10k:.1}");
    let _ = writeln!(out, "dry_run_10k_ms {dry_run_10k:.1}");
    let _ = writeln!(
        out,
        "simulated_10k_makespan_secs {:.0}",
        report.makespan_secs
    );
    out.push_str("done\n");
    show(&out);
}

fn show(text: &str) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let el = doc.get_element_by_id("bench").or_else(|| {
        let el = doc.create_element("pre").ok()?;
        el.set_id("bench");
        doc.body()?.append_child(&el).ok()?;
        Some(el)
    });
    if let Some(el) = el {
        el.set_text_content(Some(text));
    }
}
