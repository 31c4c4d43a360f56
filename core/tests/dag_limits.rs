//! Hostile include graphs: `dag::load` bounds what it expands while it expands (tasks, nesting,
//! files, dependencies) and reports where the bound was crossed, instead of running out of
//! memory or stack.

use spool_core::dag::{load, outline, MAX_EDGES, MAX_FILES, MAX_NESTING, MAX_TASKS};
use spool_core::diag::{has_errors, Diagnostic, Severity};
use spool_core::source::MemorySources;

/// `levels` files, each including the next `fanout` times under different ids; the last holds
/// one notebook. The plan would have about `fanout^levels` tasks.
fn exponential(levels: usize, fanout: usize) -> MemorySources {
    let mut sources = MemorySources::default().with("nb.py", "print(1)\n");
    for level in 0..levels {
        let mut text = String::new();
        if level + 1 == levels {
            text.push_str("[[notebook]]\nid = \"n\"\npath = \"nb.py\"\n");
        } else {
            for copy in 0..fanout {
                text.push_str(&format!(
                    "[[pipeline]]\nid = \"p{copy}\"\npath = \"l{}.toml\"\n",
                    level + 1
                ));
            }
        }
        sources = sources.with(&format!("l{level}.toml"), &text);
    }
    sources
}

/// `files` pipeline files, each including the next once; the last holds one notebook.
fn chain(files: usize) -> MemorySources {
    let mut sources = MemorySources::default().with("nb.py", "print(1)\n");
    for i in 0..files {
        let text = if i + 1 == files {
            "[[notebook]]\nid = \"n\"\npath = \"nb.py\"\n".to_string()
        } else {
            format!("[[pipeline]]\nid = \"p\"\npath = \"c{}.toml\"\n", i + 1)
        };
        sources = sources.with(&format!("c{i}.toml"), &text);
    }
    sources
}

/// The one error of a pipeline that does not load.
fn only_error(root: &str, sources: &MemorySources) -> Diagnostic {
    let loaded = load(root, sources);
    assert!(loaded.plan.is_none());
    let errs = errors(&loaded.diagnostics);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs[0].clone()
}

fn errors(diags: &[Diagnostic]) -> Vec<&Diagnostic> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

#[test]
fn exponential_sub_pipelines_are_refused_where_the_task_limit_is_crossed() {
    // Nine 360-byte files: 10^8 tasks if expanded. The bound holds while expanding.
    // 10^5 tasks fit; the file whose expansion crosses the limit is the one reported, at the
    // step that crosses it.
    let e = only_error("l0.toml", &exponential(9, 10));
    assert_eq!(e.file, "l3.toml", "{e}");
    assert!(
        e.message.contains(&format!("more than {MAX_TASKS} tasks")),
        "{e}"
    );
    // Each of l3's copies of l4 brings 21,111 tasks: the fifth crosses 100,000.
    assert_eq!(e.item.as_deref(), Some("p4"), "{e}");
    assert_eq!(e.line, 15, "{e}");
}

#[test]
fn outline_counts_an_exponential_pipeline_without_expanding_it() {
    let counted = outline("l0.toml", &exponential(4, 10));
    // 10 + 100 + 1000 pipeline ends and 1000 notebooks.
    assert_eq!(counted.tasks, 2110);
    assert_eq!(counted.notebooks, 1000);
    assert!(!has_errors(&counted.diagnostics));
    let huge = outline("l0.toml", &exponential(9, 10));
    assert_eq!(
        huge.tasks,
        MAX_TASKS + 1,
        "counts saturate just past the limit"
    );
    assert!(has_errors(&huge.diagnostics));
}

#[test]
fn a_chain_of_six_thousand_files_stops_at_the_nesting_limit() {
    let loaded = load("c0.toml", &chain(6000));
    assert!(loaded.plan.is_none());
    let errs = errors(&loaded.diagnostics);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = errs[0];
    // c0 is level 1; c31 is level 32 and may not include c32.
    assert_eq!(e.file, format!("c{}.toml", MAX_NESTING - 1), "{e}");
    assert!(
        e.message
            .contains(&format!("nested more than {MAX_NESTING} deep")),
        "{e}"
    );
    assert_eq!(e.item.as_deref(), Some("p"));
}

#[test]
fn nesting_up_to_the_limit_loads() {
    let loaded = load("c0.toml", &chain(MAX_NESTING));
    assert!(
        !has_errors(&loaded.diagnostics),
        "{:#?}",
        loaded.diagnostics
    );
    let plan = loaded.plan.expect("a plan");
    assert_eq!(plan.tasks.len(), MAX_NESTING);
    let over = load("c0.toml", &chain(MAX_NESTING + 1));
    assert_eq!(errors(&over.diagnostics).len(), 1);
}

#[test]
fn a_file_included_deep_after_being_seen_shallow_still_counts_its_depth() {
    // root includes the chain's middle directly (shallow) and then the chain's start: the
    // second path reaches the same files more deeply.
    let mut sources = chain(MAX_NESTING);
    let mid = MAX_NESTING / 2;
    sources = sources.with(
        "root.toml",
        &format!(
            "[[pipeline]]\nid = \"mid\"\npath = \"c{mid}.toml\"\n\
             [[pipeline]]\nid = \"all\"\npath = \"c0.toml\"\n"
        ),
    );
    let loaded = load("root.toml", &sources);
    let errs = errors(&loaded.diagnostics);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].message.contains("deep"), "{}", errs[0]);
}

#[test]
fn too_many_distinct_files_are_refused() {
    let mut text = String::new();
    let mut sources = MemorySources::default().with("nb.py", "");
    for i in 0..=MAX_FILES {
        text.push_str(&format!(
            "[[pipeline]]\nid = \"p{i}\"\npath = \"f{i}.toml\"\n"
        ));
        sources = sources.with(
            &format!("f{i}.toml"),
            "[[notebook]]\nid = \"n\"\npath = \"nb.py\"\n",
        );
    }
    sources = sources.with("root.toml", &text);
    let loaded = load("root.toml", &sources);
    let errs = errors(&loaded.diagnostics);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].message.contains(&format!("more than {MAX_FILES}")),
        "{}",
        errs[0]
    );
}

#[test]
fn a_sub_pipeline_included_twice_reports_its_problems_once() {
    let sources = MemorySources::default()
        .with(
            "root.toml",
            "[[pipeline]]\nid = \"a\"\npath = \"sub.toml\"\n\
             [[pipeline]]\nid = \"b\"\npath = \"sub.toml\"\n",
        )
        .with(
            "sub.toml",
            "[[notebook]]\nid = \"n\"\npath = \"missing.py\"\n",
        );
    let loaded = load("root.toml", &sources);
    assert_eq!(
        errors(&loaded.diagnostics).len(),
        1,
        "{:#?}",
        loaded.diagnostics
    );
}

#[test]
fn deeply_nested_parameters_are_a_syntax_error_not_a_stack_overflow() {
    // Parameters become JSON by a recursive walk: it is bounded by the TOML parser's own
    // nesting limit, for every way TOML nests.
    let deep = 100_000;
    let keys: Vec<String> = (0..deep).map(|i| format!("k{i}")).collect();
    let step = "[[notebook]]\nid = \"a\"\npath = \"a.py\"\n";
    for tail in [
        format!(
            "params = {{ x = {}1{} }}\n",
            "[".repeat(deep),
            "]".repeat(deep)
        ),
        format!("params = {}1{}\n", "{ a = ".repeat(deep), " }".repeat(deep)),
        format!("[notebook.params.{}]\nx = 1\n", keys.join(".")),
        format!("params.{} = 1\n", keys.join(".")),
    ] {
        let (file, diags) = spool_core::parse::parse_pipeline("a.toml", &format!("{step}{tail}"));
        assert!(file.is_none());
        assert!(diags[0].message.contains("recursion limit"), "{}", diags[0]);
    }
}

#[test]
fn unknown_ids_get_suggestions_within_a_budget() {
    // A megabyte-long unknown id next to a megabyte-long id, and 3,000 unknown ids among
    // 3,000 others of the same length: "did you mean" stays cheap (an edit distance per pair
    // would be 10^12 and 10^10 steps).
    let long = "x".repeat(1 << 20);
    let text = format!(
        "[[notebook]]\nid = \"{long}\"\npath = \"nb.py\"\n\
         [[notebook]]\nid = \"b\"\npath = \"nb.py\"\ndepends_on = [\"{long}y\"]\n"
    );
    let sources = MemorySources::default()
        .with("main.toml", &text)
        .with("nb.py", "");
    let loaded = load("main.toml", &sources);
    assert_eq!(errors(&loaded.diagnostics).len(), 1);

    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&format!(
            "[[notebook]]\nid = \"step_{i:0>36}\"\npath = \"nb.py\"\n\
             depends_on = [\"unknown_{i:0>33}\"]\n"
        ));
    }
    let sources = MemorySources::default()
        .with("main.toml", &text)
        .with("nb.py", "");
    let loaded = load("main.toml", &sources);
    let errs = errors(&loaded.diagnostics);
    assert_eq!(errs.len(), 3000);
    // The first ones still get a hint when there is one close enough.
    let with_hint = errs
        .iter()
        .filter(|e| e.message.contains("did you mean"))
        .count();
    assert!(
        with_hint <= spool_core::diag::MAX_SUGGESTIONS,
        "{with_hint}"
    );
}

#[test]
fn metadata_read_in_all_is_bounded() {
    use spool_core::dag::MAX_TOTAL_BYTES;
    use spool_core::model::MAX_METADATA_BYTES;
    // Files just under the per-file limit (a comment makes up the size), more of them than
    // the total allows.
    let body = "[[notebook]]\nid = \"n\"\npath = \"nb.py\"\n";
    let padded = format!(
        "{body}#{}\n",
        "x".repeat(MAX_METADATA_BYTES - body.len() - 16)
    );
    let count = MAX_TOTAL_BYTES / MAX_METADATA_BYTES + 2;
    let mut root = String::new();
    let mut sources = MemorySources::default().with("nb.py", "");
    for i in 0..count {
        root.push_str(&format!(
            "[[pipeline]]\nid = \"p{i}\"\npath = \"f{i}.toml\"\n"
        ));
        sources = sources.with(&format!("f{i}.toml"), &padded);
    }
    sources = sources.with("root.toml", &root);
    let loaded = load("root.toml", &sources);
    let errs = errors(&loaded.diagnostics);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].message.contains("MiB of metadata"), "{}", errs[0]);
    assert_eq!(errs[0].item.as_deref(), Some("p6"), "{}", errs[0]);
}

/// `[[notebook]]` entries `{prefix}0..{prefix}{n}`, each with the given extra lines.
fn notebooks(prefix: &str, n: usize, extra: impl Fn(usize) -> String) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[notebook]]\nid = \"{prefix}{i}\"\npath = \"nb.py\"\n{}",
                extra(i)
            )
        })
        .collect()
}

/// `ins` notebooks, an inactive step depending on all of them, and `outs` notebooks depending
/// on it.
fn through_one_inactive(ins: usize, outs: usize) -> MemorySources {
    let mut text = notebooks("a", ins, |_| String::new());
    let deps: Vec<String> = (0..ins).map(|i| format!("\"a{i}\"")).collect();
    text.push_str(&format!(
        "[[notebook]]\nid = \"mid\"\npath = \"nb.py\"\nactive = false\ndepends_on = [{}]\n",
        deps.join(", ")
    ));
    text.push_str(&notebooks("b", outs, |_| "depends_on = [\"mid\"]\n".into()));
    MemorySources::default()
        .with("nb.py", "print(1)\n")
        .with("p.toml", &text)
}

#[test]
fn bridging_an_inactive_step_between_two_wide_layers_is_refused_before_it_allocates() {
    // 1,001 × 1,000 bridged dependencies from a 100 KB file (6,000 × 6,000 took 3.4 GB and
    // was still growing after two minutes).
    let e = only_error("p.toml", &through_one_inactive(1001, 1000));
    assert!(
        e.message
            .contains(&format!("more than {MAX_EDGES} dependencies"))
            && e.message.contains("1001 dependencies × 1000 dependents"),
        "{e}"
    );
    assert_eq!(e.item.as_deref(), Some("mid"), "{e}");

    // Up to the limit it is bridged.
    let plan = load("p.toml", &through_one_inactive(990, 1000))
        .plan
        .expect("990,000 bridged dependencies fit");
    assert_eq!(plan.inactive[0].bridged.len(), 990_000);
}

#[test]
fn dependencies_multiplied_by_sub_pipeline_copies_are_refused_where_the_limit_is_crossed() {
    // 300 steps, each depending on every earlier one (44,850 dependencies, 300 KB), included 30
    // times: 1.35 million dependencies, within the task limit (9,030 tasks).
    let dense = notebooks("d", 300, |i| {
        let deps: Vec<String> = (0..i).map(|j| format!("\"d{j}\"")).collect();
        format!("depends_on = [{}]\n", deps.join(","))
    });
    let copies: String = (0..30)
        .map(|c| format!("[[pipeline]]\nid = \"p{c}\"\npath = \"dense.toml\"\n"))
        .collect();
    let sources = MemorySources::default()
        .with("nb.py", "print(1)\n")
        .with("dense.toml", &dense)
        .with("many.toml", &copies);
    let e = only_error("many.toml", &sources);
    assert!(
        e.message
            .contains(&format!("more than {MAX_EDGES} dependencies")),
        "{e}"
    );
    // 1,000,000 / 44,850 = 22.3: the 23rd copy crosses it.
    assert_eq!(e.file, "dense.toml", "{e}");
    assert!(e.message.contains("`p22/d"), "{e}");
    // Fewer copies load.
    let fewer: String = (0..20)
        .map(|c| format!("[[pipeline]]\nid = \"p{c}\"\npath = \"dense.toml\"\n"))
        .collect();
    let plan = load("many.toml", &sources.with("many.toml", &fewer))
        .plan
        .expect("20 copies fit");
    assert_eq!(plan.tasks.len(), 20 * 301);
}

#[test]
fn many_inactive_steps_are_settled_each_by_looking_at_its_own_dependents() {
    // Settling an inactive step used to scan every node of the plan: 40,000 inactive steps
    // (a 2 MB file) took 82 s in a debug build. Now each looks only at its dependents.
    let text = notebooks("n", 40_000, |i| {
        let dep = if i % 2 == 1 {
            format!("depends_on = [\"n{}\"]\n", i - 1)
        } else {
            String::new()
        };
        format!("active = false\n{dep}")
    });
    let sources = MemorySources::default()
        .with("nb.py", "print(1)\n")
        .with("p.toml", &text);
    let plan = load("p.toml", &sources).plan.expect("inactive steps load");
    assert!(plan.tasks.is_empty());
    assert_eq!(plan.inactive.len(), 40_000);
}

#[test]
fn a_dense_dependency_cycle_is_reported_once() {
    // Every step depends on every other (360,000 dependencies): one error, one cycle through
    // the first step; each edge is looked up in a set of the component, not a scan of it.
    let n = 600;
    let text = notebooks("c", n, |i| {
        let deps: Vec<String> = (0..n)
            .filter(|&j| j != i)
            .map(|j| format!("\"c{j}\""))
            .collect();
        format!("depends_on = [{}]\n", deps.join(","))
    });
    let sources = MemorySources::default()
        .with("nb.py", "print(1)\n")
        .with("p.toml", &text);
    let m = &only_error("p.toml", &sources).message;
    assert!(
        m.starts_with("dependency cycle: c0 -> c")
            && m.ends_with("-> c0 (each depends on the next)"),
        "{m}"
    );
}

/// A literal `for_each` of `items` items on one notebook.
fn for_each_of(items: usize) -> MemorySources {
    let list: Vec<String> = (0..items).map(|i| format!("\"t{i}\"")).collect();
    let text = format!(
        "[[notebook]]\nid = \"copy\"\npath = \"nb.py\"\nfor_each = [{}]\n",
        list.join(", ")
    );
    MemorySources::default()
        .with("nb.py", "print(1)\n")
        .with("p.toml", &text)
}

#[test]
fn a_literal_for_each_has_at_most_ten_thousand_items() {
    let at_limit = load("p.toml", &for_each_of(spool_core::for_each::MAX_ITEMS));
    let plan = at_limit.plan.expect("10,000 items are allowed");
    // The iterations and the for-each's own task.
    assert_eq!(plan.tasks.len(), spool_core::for_each::MAX_ITEMS + 1);
    assert_eq!(plan.tasks[0].id, "copy[t0]");

    let over = load("p.toml", &for_each_of(spool_core::for_each::MAX_ITEMS + 1));
    assert!(over.plan.is_none());
    let errors = messages(&over.diagnostics);
    assert_eq!(
        errors,
        ["p.toml:4:12: error: `for_each` has 10001 items; at most 10000"]
    );
}

#[test]
fn for_each_iterations_count_towards_the_plan_s_task_limit() {
    // 11 copies of a file whose for-each has 10,000 items: 110,011 tasks.
    let mut sources = for_each_of(spool_core::for_each::MAX_ITEMS);
    let mut root = String::new();
    for copy in 0..11 {
        root.push_str(&format!(
            "[[pipeline]]\nid = \"c{copy}\"\npath = \"p.toml\"\n"
        ));
    }
    sources = sources.with("root.toml", &root);
    let loaded = load("root.toml", &sources);
    assert!(loaded.plan.is_none());
    let errors = messages(&loaded.diagnostics);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(&format!("more than {MAX_TASKS} tasks")),
        "{errors:?}"
    );
}

fn messages(diagnostics: &[Diagnostic]) -> Vec<String> {
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect()
}
