//! `spool simulate` without `--json`: the dry run report as text, with a Gantt chart. Every
//! figure is read from [`DryRunReport`]; none is computed here.

use spool_core::calibrate::Calibration;
use spool_core::dry_run::DryRunReport;
use std::fmt::Write as _;

/// Rows of the text Gantt chart; the JSON has them all.
const GANTT_ROWS: usize = 40;
const GANTT_WIDTH: usize = 60;

/// `1h02m05s`, `3m07s`, `42.5s`.
pub fn duration(secs: f64) -> String {
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let s = secs.round() as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else {
        format!("{m}m{s:02}s")
    }
}

pub fn render(r: &DryRunReport, max_concurrency: Option<u32>) -> String {
    let mut s = String::new();
    let lb = &r.lower_bound;
    let _ = writeln!(
        s,
        "pipeline {}: {} executors × {} cores, {} slots, policy {}",
        r.pipeline, r.executors, r.executor_cores, r.capacity_slots, r.policy
    );
    let _ = writeln!(
        s,
        "makespan     {}  (lower bound {}: start-up {}, then the longest of critical path {}, \
         work/capacity {}{})",
        duration(r.makespan_secs),
        duration(lb.secs),
        duration(lb.startup_secs),
        duration(lb.critical_path_secs),
        duration(lb.work_secs),
        max_concurrency
            .map(|c| format!(", attempts/{c} at once {}", duration(lb.concurrency_secs)))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "utilisation  {:.1} %", 100.0 * r.utilization);
    let _ = writeln!(
        s,
        "node-hours   {:.2} ({} nodes)   cost {:.2} at {:.2} per node-hour",
        r.node_hours,
        r.executors.saturating_add(1),
        r.cost,
        r.price_per_node_hour
    );
    let counts: Vec<String> = r
        .final_counts()
        .iter()
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    let _ = writeln!(
        s,
        "outcome      {} ({} notebooks)",
        r.outcome,
        counts.join(", ")
    );
    let b = &r.baseline;
    let _ = writeln!(
        s,
        "baseline     one pool per notebook (at least {} nodes, {} start-up each): makespan {}, \
         node-hours {:.2}, cost {:.2}",
        b.min_nodes,
        duration(r.node_startup_secs),
        duration(b.makespan_secs),
        b.node_hours,
        b.cost
    );
    let _ = writeln!(
        s,
        "gain         {:.2}× on makespan, {:.2}× on cost (baseline ÷ shared pool; above 1 the \
         shared pool is better)",
        r.gain.makespan, r.gain.cost
    );
    if let Some(c) = &r.calibration {
        s.push_str(&calibration(c));
    }
    s.push_str(&gantt(r));
    if let Some(points) = &r.sweep {
        let best = r.cheapest_within_deadline.map(|p| p.executors);
        let _ = writeln!(s, "\npool-size sweep:");
        let _ = writeln!(
            s,
            "  executors  makespan     utilisation  node-hours      cost"
        );
        for p in points {
            let mark = if best == Some(p.executors) {
                "  <- cheapest within the deadline"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {:>9}  {:>10}  {:>10.1} %  {:>10.2}  {:>8.2}{mark}",
                p.executors,
                duration(p.makespan_secs),
                100.0 * p.utilization,
                p.node_hours,
                p.cost
            );
        }
        if best.is_none() {
            let _ = writeln!(s, "  no pool size finishes within the deadline");
        }
    }
    s
}

fn calibration(c: &Calibration) -> String {
    let mut s = String::new();
    let runs: Vec<String> = c.runs.iter().map(|id| format!("#{id}")).collect();
    let _ = writeln!(
        s,
        "calibrated   durations from {} (run {}): {} notebooks measured, {} on their estimate{}",
        c.durations_from.name(),
        runs.join(", "),
        c.durations.len(),
        c.estimated.len(),
        if c.estimated.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.estimated.join(", "))
        }
    );
    let opt = |v: Option<f64>| v.map_or("not measured".to_string(), duration);
    let _ = writeln!(
        s,
        "measured     session start-up {}, dispatch latency {}, live capacity {}",
        opt(c.session_startup_secs),
        opt(c.dispatch_latency_secs),
        c.live_capacity_slots
            .map_or("not reported".to_string(), |n| format!("{n} slots"))
    );
    if let Some(real) = c.real_makespan_secs {
        let _ = writeln!(
            s,
            "real run     {} from the first notebook start to the last end (run #{})",
            duration(real),
            c.runs.first().copied().unwrap_or_default()
        );
    }
    s
}

/// The per-notebook median and 90th percentile a history statistic read.
pub fn history_stats(c: &Calibration) -> String {
    let mut s = String::new();
    let width = c
        .stats
        .iter()
        .map(|n| n.id.chars().count())
        .max()
        .unwrap_or(0)
        .max("notebook".len());
    let _ = writeln!(
        s,
        "\nnotebook durations over {} successful runs:",
        c.runs.len()
    );
    let _ = writeln!(s, "  {:<width$}  runs         p50         p90", "notebook");
    for n in &c.stats {
        let _ = writeln!(
            s,
            "  {:<width$}  {:>4}  {:>10}  {:>10}",
            n.id,
            n.runs,
            duration(n.p50_secs),
            duration(n.p90_secs)
        );
    }
    s
}

/// One row per notebook, in order of first start: `~` pool start-up, `#` a succeeded attempt,
/// `x` a failed one, `T` timed out, `c` cancelled, `-` skipped.
pub fn gantt(r: &DryRunReport) -> String {
    let mut s = String::new();
    let end = r.makespan_secs;
    if end <= 0.0 || r.tasks.is_empty() {
        return s;
    }
    let col = |t: f64| ((t / end * GANTT_WIDTH as f64) as usize).min(GANTT_WIDTH - 1);
    let mut rows: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut row_of = std::collections::HashMap::new();
    for a in &r.tasks {
        let i = *row_of.entry(a.id.as_str()).or_insert_with(|| {
            rows.push((a.id.as_str(), vec![b' '; GANTT_WIDTH]));
            rows.len() - 1
        });
        let mark = match a.outcome {
            "succeeded" => b'#',
            "failed" => b'x',
            "timed_out" => b'T',
            "cancelled" => b'c',
            _ => b'-',
        };
        for c in &mut rows[i].1[col(a.start_secs)..=col(a.end_secs.max(a.start_secs))] {
            *c = mark;
        }
    }
    let name_width = rows
        .iter()
        .take(GANTT_ROWS)
        .map(|(id, _)| id.chars().count())
        .max()
        .unwrap_or(0)
        .clamp("(start-up)".len(), 32);
    let _ = writeln!(
        s,
        "\ntimeline (0 to {}, one column ≈ {}):",
        duration(end),
        duration(end / GANTT_WIDTH as f64)
    );
    if r.node_startup_secs > 0.0 {
        let mut row = vec![b' '; GANTT_WIDTH];
        for c in &mut row[..=col(r.node_startup_secs)] {
            *c = b'~';
        }
        let _ = writeln!(
            s,
            "  {:<name_width$} |{}|",
            "(start-up)",
            String::from_utf8_lossy(&row)
        );
    }
    for (id, row) in rows.iter().take(GANTT_ROWS) {
        let id: String = id.chars().take(name_width).collect();
        let _ = writeln!(s, "  {id:<name_width$} |{}|", String::from_utf8_lossy(row));
    }
    if rows.len() > GANTT_ROWS {
        let _ = writeln!(
            s,
            "  ... {} more notebooks (--json lists them all)",
            rows.len() - GANTT_ROWS
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use spool_core::dag::load_text;
    use spool_core::dry_run::SimOptions;
    use spool_core::source::MemorySources;

    /// a (100 s) then b (50 s) on the default pool, 180 s start-up.
    fn report() -> DryRunReport {
        let text = "name = \"chain\"\n\
            [[notebook]]\nid = \"a\"\npath = \"a.py\"\nestimate_secs = 100\n\
            [[notebook]]\nid = \"b\"\npath = \"b.py\"\nestimate_secs = 50\ndepends_on = [\"a\"]\n";
        let sources = MemorySources::default().with("a.py", "").with("b.py", "");
        let plan = load_text("main.toml", text, &sources)
            .plan
            .unwrap_or_else(|| panic!("fixture does not load"));
        DryRunReport::of(&plan, &SimOptions::default(), None)
    }

    #[test]
    fn text_gantt_draws_start_up_and_attempts() {
        let chart = gantt(&report());
        let lines: Vec<&str> = chart.lines().collect();
        // 330 s over 60 columns: start-up to column 32, a from 32 to 50, b from 50 to the end.
        let bar = |from: usize, to: usize, c: char| -> String {
            (0..GANTT_WIDTH)
                .map(|i| if (from..=to).contains(&i) { c } else { ' ' })
                .collect()
        };
        assert_eq!(lines[1], "timeline (0 to 5m30s, one column ≈ 5.5s):");
        assert_eq!(lines[2], format!("  (start-up) |{}|", bar(0, 32, '~')));
        assert_eq!(lines[3], format!("  a          |{}|", bar(32, 50, '#')));
        assert_eq!(lines[4], format!("  b          |{}|", bar(50, 59, '#')));
    }

    #[test]
    fn the_text_shows_gain_as_baseline_over_shared() {
        let r = report();
        let text = render(&r, None);
        // Baseline 510 s against 330 s shared.
        let want = format!("gain         {:.2}× on makespan", 510.0 / 330.0);
        assert!(text.contains(&want), "{text}");
    }
}
