//! `dag::load_with_notebooks`: what `spool validate` and a run's start see. A notebook that
//! cannot run is an error before Spark starts, located in the notebook.

use spool_core::dag::{load, load_with_notebooks};
use spool_core::diag::{has_errors, Severity};
use spool_core::source::MemorySources;

const PIPELINE: &str = "[[notebook]]\nid = \"a\"\npath = \"nb/a.ipynb\"\n\
                        [[notebook]]\nid = \"b\"\npath = \"nb/b.sql\"\ndepends_on = [\"a\"]\n\
                        [[notebook]]\nid = \"c\"\npath = \"nb/a.ipynb\"\n";

#[test]
fn notebooks_that_do_not_parse_are_errors_located_in_the_notebook() {
    let sources = MemorySources::default()
        .with("main.toml", PIPELINE)
        .with("nb/a.ipynb", "{\"cells\": [}")
        .with("nb/b.sql", "SELECT 'unterminated;\n");
    // The pipeline file alone is fine.
    assert!(load("main.toml", &sources).plan.is_some());
    let loaded = load_with_notebooks("main.toml", &sources);
    assert!(loaded.plan.is_none());
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect();
    // One per notebook file, though two steps run `nb/a.ipynb`.
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("nb/a.ipynb:1:"), "{}", errors[0]);
    assert!(errors[1].starts_with("nb/b.sql:1:"), "{}", errors[1]);
}

#[test]
fn notebooks_that_parse_keep_the_plan() {
    let sources = MemorySources::default()
        .with("main.toml", PIPELINE)
        .with(
            "nb/a.ipynb",
            r#"{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
                {"cell_type": "code", "metadata": {}, "source": ["x = 1\n"], "outputs": [], "execution_count": null}]}"#,
        )
        .with("nb/b.sql", "SELECT 1;\n");
    let loaded = load_with_notebooks("main.toml", &sources);
    assert!(
        !has_errors(&loaded.diagnostics),
        "{:#?}",
        loaded.diagnostics
    );
    assert_eq!(loaded.plan.expect("a plan").tasks.len(), 3);
}
