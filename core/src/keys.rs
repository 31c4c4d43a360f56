//! Every key of a pipeline file with its type, default and meaning: one table for the reference
//! in docs/metadata.md (a test checks that the document's tables are these rows) and for the
//! browser editor's help texts.

/// Where a key is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The file's top level.
    Top,
    Pool,
    Schedule,
    Notify,
    /// `[defaults]`, and the same run settings on a step.
    Defaults,
    /// A `[[notebook]]` or `[[pipeline]]` entry.
    Step,
    /// One entry of a step's `depends_on`.
    DependsOn,
}

impl Section {
    /// The section of a table's keys by the table's name (`""`: the top level).
    pub fn of_table(table: &str) -> Option<Section> {
        Some(match table {
            "" => Section::Top,
            "pool" => Section::Pool,
            "schedule" => Section::Schedule,
            "notify" => Section::Notify,
            "defaults" => Section::Defaults,
            "notebook" | "pipeline" => Section::Step,
            "depends_on" => Section::DependsOn,
            _ => return None,
        })
    }
}

/// One row of a key table in docs/metadata.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    pub section: Section,
    /// The keys the row describes (a few rows describe several).
    pub keys: &'static [&'static str],
    /// The row's first cell as written (Markdown).
    pub key_text: &'static str,
    pub ty: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

impl KeyDoc {
    /// The row as docs/metadata.md writes it.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} |",
            self.key_text, self.ty, self.default, self.meaning
        )
    }
}

/// Every documented key, in the document's order.
pub const KEY_DOCS: &[KeyDoc] = &[
    KeyDoc {
        section: Section::Top,
        keys: &["name"],
        key_text: r#"`name`"#,
        ty: r#"string, not empty"#,
        default: r#"the file name without `.toml`"#,
        meaning: r#"The pipeline's name in plans, runs and the web app. Only the root file's is used."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["description"],
        key_text: r#"`description`"#,
        ty: r#"string"#,
        default: r#"none"#,
        meaning: r#"Free text, shown with the pipeline. Only the root file's is used."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["pool"],
        key_text: r#"`pool`"#,
        ty: r#"table"#,
        default: r#"see [`[pool]`](#pool)"#,
        meaning: r#"The Spark pool the pipeline runs on."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["spark_conf"],
        key_text: r#"`spark_conf`"#,
        ty: r#"table"#,
        default: r#"empty"#,
        meaning: r#"Spark settings for the session, see [`[spark_conf]`](#spark_conf)."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["defaults"],
        key_text: r#"`defaults`"#,
        ty: r#"table"#,
        default: r#"see [`[defaults]`](#defaults-and-run-settings)"#,
        meaning: r#"Run settings for every entry of this file."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["timeout_secs"],
        key_text: r#"`timeout_secs`"#,
        ty: r#"integer ≥ 1"#,
        default: r#"none: no limit"#,
        meaning: r#"The whole run's limit: a run still going after this long is cancelled (running notebooks are cancelled, nothing else starts, the run ends `cancelled` and its log says why). Only the root file's counts; `[defaults]`' `timeout_secs` is each notebook's own."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["params"],
        key_text: r#"`params`"#,
        ty: r#"table"#,
        default: r#"none"#,
        meaning: r#"The pipeline's parameters, which steps refer to as `{{ params.NAME }}`: see [`[params]`](#pipeline-parameters-and-references)."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["schedule"],
        key_text: r#"`schedule`"#,
        ty: r#"table"#,
        default: r#"none"#,
        meaning: r#"When `spool serve` starts the pipeline by itself: see [`[schedule]`](#schedule)."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["max_concurrent_runs"],
        key_text: r#"`max_concurrent_runs`"#,
        ty: r#"integer ≥ 1"#,
        default: r#"`1`"#,
        meaning: r#"Runs of this pipeline in progress at once in one `spool serve` (scheduled, API and resumed runs alike). Only the root file's counts."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["on_overlap"],
        key_text: r#"`on_overlap`"#,
        ty: r#"`"queue"`, `"skip"` or `"cancel_running"`"#,
        default: r#"`"queue"`"#,
        meaning: r#"A run asked for while `max_concurrent_runs` are in progress: waits (status `queued`, cancellable; runs start in the order asked), is not run (recorded `cancelled` with why), or cancels the runs in progress and waits for them to end. The decision is in the run's log."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["notify"],
        key_text: r#"`notify`"#,
        ty: r#"array of tables, `[[notify]]`"#,
        default: r#"none"#,
        meaning: r#"Who is told when a run ends or runs long: see [`[[notify]]`](#notify). Only the root file's count."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["notebook"],
        key_text: r#"`notebook`"#,
        ty: r#"array of tables, `[[notebook]]`"#,
        default: r#"none"#,
        meaning: r#"The notebooks."#,
    },
    KeyDoc {
        section: Section::Top,
        keys: &["pipeline"],
        key_text: r#"`pipeline`"#,
        ty: r#"array of tables, `[[pipeline]]`"#,
        default: r#"none"#,
        meaning: r#"The sub-pipelines."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["executors"],
        key_text: r#"`executors`"#,
        ty: r#"integer ≥ 1"#,
        default: r#"`2`"#,
        meaning: r#"Executors of the Spark pool."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["executor_cores"],
        key_text: r#"`executor_cores`"#,
        ty: r#"integer ≥ 1"#,
        default: r#"`4`"#,
        meaning: r#"Cores per executor. The pool's capacity in *slots* is `executors × executor_cores` (8 by default); running notebooks never hold more slots than that."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["max_concurrency"],
        key_text: r#"`max_concurrency`"#,
        ty: r#"integer ≥ 1"#,
        default: r#"none: slots alone limit"#,
        meaning: r#"At most this many notebooks run at once, whatever their slots (the thread count of Synapse Genie)."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["recreate_session"],
        key_text: r#"`recreate_session`"#,
        ty: r#"boolean"#,
        default: r#"`false`"#,
        meaning: r#"When the Spark (Livy) session dies during a run, start a new one and go on; otherwise the run fails."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["platform"],
        key_text: r#"`platform`"#,
        ty: r#"`"livy"`, `"synapse"`, `"emr"`, `"hdinsight"`"#,
        default: r#"`"livy"`"#,
        meaning: r#"The Livy server the pipeline is written for; decides which of the keys below are checked (see the table after this one)."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["executor_memory"],
        key_text: r#"`executor_memory`"#,
        ty: r#"string, `"512m"`, `"28g"`"#,
        default: r#"server's default"#,
        meaning: r#"Livy's `executorMemory`."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["driver_memory"],
        key_text: r#"`driver_memory`"#,
        ty: r#"string"#,
        default: r#"server's default"#,
        meaning: r#"Livy's `driverMemory`."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["driver_cores"],
        key_text: r#"`driver_cores`"#,
        ty: r#"integer ≥ 1"#,
        default: r#"server's default"#,
        meaning: r#"Livy's `driverCores`."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["jars"],
        key_text: r#"`jars`"#,
        ty: r#"array of strings"#,
        default: r#"`[]`"#,
        meaning: r#"Livy's `jars`: URLs or cluster paths (`abfss://`, `s3://`, `hdfs://`), sent as written."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["py_files"],
        key_text: r#"`py_files`"#,
        ty: r#"array of strings"#,
        default: r#"`[]`"#,
        meaning: r#"Livy's `pyFiles`."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["queue"],
        key_text: r#"`queue`"#,
        ty: r#"string"#,
        default: r#"none"#,
        meaning: r#"Livy's `queue`: the YARN queue (EMR, HDInsight; a warning on other platforms)."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["heartbeat_timeout_secs"],
        key_text: r#"`heartbeat_timeout_secs`"#,
        ty: r#"integer ≥ 1"#,
        default: r#"none"#,
        meaning: r#"Livy's `heartbeatTimeoutInSecond`: the server deletes the session when no client asked about it for this long (a `spool` that died leaves no session behind)."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["ttl"],
        key_text: r#"`ttl`"#,
        ty: r#"string, `"30m"`, `"2h"`"#,
        default: r#"none"#,
        meaning: r#"Livy 0.8's `ttl`: an idle session is deleted after it (older servers ignore it)."#,
    },
    KeyDoc {
        section: Section::Pool,
        keys: &["session_start_timeout_secs"],
        key_text: r#"`session_start_timeout_secs`"#,
        ty: r#"integer ≥ 1"#,
        default: r#"`1200` (20 min)"#,
        meaning: r#"A session still starting (`not_started`, `starting`) after this long is deleted and the run fails with that reason. Minutes of `starting` are normal on a cold Synapse pool; the run log says `session starting, 2m10s` every 30 s meanwhile."#,
    },
    KeyDoc {
        section: Section::Schedule,
        keys: &["cron"],
        key_text: r#"`cron`"#,
        ty: r#"string"#,
        default: r#"required"#,
        meaning: r#"Standard cron, 5 fields: minute, hour, day of month, month, day of week (`*`, lists `1,15`, ranges `1-5`, steps `*/15`, names `MON`/`JAN`, `@hourly`/`@daily`/`@weekly`/`@monthly`/`@yearly`; `L`, `#` and `W` as in Vixie cron's extensions). When both day fields are restricted, either matching is enough. Seconds and years are refused."#,
    },
    KeyDoc {
        section: Section::Schedule,
        keys: &["timezone"],
        key_text: r#"`timezone`"#,
        ty: r#"string"#,
        default: r#"`"UTC"`"#,
        meaning: r#"The IANA zone whose wall clock the expression reads (`Europe/Amsterdam`, `America/New_York`; case-sensitive)."#,
    },
    KeyDoc {
        section: Section::Schedule,
        keys: &["params"],
        key_text: r#"`params`"#,
        ty: r#"table"#,
        default: r#"empty"#,
        meaning: r#"The scheduled runs' overrides, as `spool run --param` takes them: a `[params]` entry of this file (typed as declared), a parameter some notebook declares, or `notebook.key`. Every `[params]` entry without a default must be given here."#,
    },
    KeyDoc {
        section: Section::Schedule,
        keys: &["catch_up"],
        key_text: r#"`catch_up`"#,
        ty: r#"`"none"`, `"last"` or `"all"`"#,
        default: r#"`"none"`"#,
        meaning: r#"Slots missed while `spool serve` was not running: none are run, only the newest, or all of them (oldest first, at most the newest 100). A slot at most 60 s late is on time and runs in every mode."#,
    },
    KeyDoc {
        section: Section::Schedule,
        keys: &["enabled"],
        key_text: r#"`enabled`"#,
        ty: r#"boolean"#,
        default: r#"`true`"#,
        meaning: r#"`false`: written down, starts nothing (its slots pass as if paused)."#,
    },
    KeyDoc {
        section: Section::Notify,
        keys: &["on"],
        key_text: r#"`on`"#,
        ty: r#"array of `"failed"`, `"succeeded"`, `"cancelled"`, `"long_running"`"#,
        default: r#"required"#,
        meaning: r#"When to post: the run's end (an interrupted run counts as failed), or once when it still runs `long_running_secs` after it started."#,
    },
    KeyDoc {
        section: Section::Notify,
        keys: &["webhook"],
        key_text: r#"`webhook`"#,
        ty: r#"`http://` or `https://` URL, at most 2,048 bytes"#,
        default: r#"required"#,
        meaning: r#"Where the JSON body is POSTed. Often a secret (Slack's and Teams' URLs carry their key): logs, the run log and the API show only its scheme and host."#,
    },
    KeyDoc {
        section: Section::Notify,
        keys: &["format"],
        key_text: r#"`format`"#,
        ty: r#"`"json"`, `"slack"` or `"teams"`"#,
        default: r#"`"json"`"#,
        meaning: r#"The body: Spool's JSON (`pipeline`, `run_id`, `event`, `status`, `elapsed_secs`, `failed`: up to 20 `{task, error}` of notebooks whose last attempt failed, errors cut to 500 characters, `link` to the run's page when `spool serve` sent it), a Slack incoming webhook's `{"text"}`, or a Teams MessageCard."#,
    },
    KeyDoc {
        section: Section::Notify,
        keys: &["long_running_secs"],
        key_text: r#"`long_running_secs`"#,
        ty: r#"integer ≥ 1"#,
        default: r#"none"#,
        meaning: r#"Needed with `"long_running"`."#,
    },
    KeyDoc {
        section: Section::Defaults,
        keys: &["retry"],
        key_text: r#"`retry`"#,
        ty: r#"integer ≥ 0"#,
        default: r#"`0`"#,
        meaning: r#"Attempts after the first one fails or times out (the scheduler caps this at 100)."#,
    },
    KeyDoc {
        section: Section::Defaults,
        keys: &["retry_interval_secs"],
        key_text: r#"`retry_interval_secs`"#,
        ty: r#"integer ≥ 0"#,
        default: r#"`30`"#,
        meaning: r#"Pause between a failed attempt and the next."#,
    },
    KeyDoc {
        section: Section::Defaults,
        keys: &["timeout_secs"],
        key_text: r#"`timeout_secs`"#,
        ty: r#"integer ≥ 1"#,
        default: r#"`43200` (12 h)"#,
        meaning: r#"An attempt still running after this long is cancelled and counts as failed (then retried if attempts are left)."#,
    },
    KeyDoc {
        section: Section::Defaults,
        keys: &["slots"],
        key_text: r#"`slots`"#,
        ty: r#"integer ≥ 1, at most the pool's capacity"#,
        default: r#"`1`"#,
        meaning: r#"Share of the pool the notebook holds while it runs (typically the executor cores its Spark jobs keep busy). A notebook needing more slots than the pool has is an error."#,
    },
    KeyDoc {
        section: Section::Defaults,
        keys: &["estimate_secs"],
        key_text: r#"`estimate_secs`"#,
        ty: r#"number > 0 (integer or float)"#,
        default: r#"`60`"#,
        meaning: r#"Expected duration. Drives the critical-path order in which ready notebooks start, `spool plan`'s critical path and `spool simulate`. Take it from past runs."#,
    },
    KeyDoc {
        section: Section::Defaults,
        keys: &["isolated"],
        key_text: r#"`isolated`"#,
        ty: r#"boolean"#,
        default: r#"`false`"#,
        meaning: r#"Run in a Spark session of its own (`spark.newSession()`): it shares the SparkContext, the cache and global temp views, but not temp views, temp functions or SQL settings (`spark.conf.set`). Use it for notebooks that change session settings; they exchange data through `global_temp` views or tables."#,
    },
    KeyDoc {
        section: Section::Step,
        keys: &["id"],
        key_text: r#"`id`"#,
        ty: r#"string: letters, digits, `_`, `.`, `-`"#,
        default: r#"required"#,
        meaning: r#"Unique within the file. Other steps of the same file refer to it in `depends_on`."#,
    },
    KeyDoc {
        section: Section::Step,
        keys: &["path"],
        key_text: r#"`path`"#,
        ty: r#"string"#,
        default: r#"required"#,
        meaning: r#"The notebook (`.ipynb`, `.py` or `.sql`) or, for `[[pipeline]]`, the pipeline file (`.toml`), relative to the folder of the file that names it. See [paths](#paths)."#,
    },
    KeyDoc {
        section: Section::Step,
        keys: &["depends_on"],
        key_text: r#"`depends_on`"#,
        ty: r#"array"#,
        default: r#"`[]`"#,
        meaning: r#"The steps of the same file this one waits for, each with a condition. See [`depends_on`](#depends_on)."#,
    },
    KeyDoc {
        section: Section::Step,
        keys: &["params"],
        key_text: r#"`params`"#,
        ty: r#"table"#,
        default: r#"`{}`"#,
        meaning: r#"Values given to the notebook. See [`params`](#params)."#,
    },
    KeyDoc {
        section: Section::Step,
        keys: &["active"],
        key_text: r#"`active`"#,
        ty: r#"boolean"#,
        default: r#"`true`"#,
        meaning: r#"`false` leaves the step out of runs without removing it: see [inactive steps](#inactive-steps-are-bridged)."#,
    },
    KeyDoc {
        section: Section::Step,
        keys: crate::parse::SETTING_KEYS,
        key_text: r#"`retry`, `retry_interval_secs`, `timeout_secs`, `slots`, `estimate_secs`, `isolated`"#,
        ty: r#"as in `[defaults]`"#,
        default: r#"the file's `[defaults]`"#,
        meaning: r#"The run settings of this notebook."#,
    },
    KeyDoc {
        section: Section::Step,
        keys: &["for_each"],
        key_text: r#"`for_each`"#,
        ty: r#"array, or a string holding one `{{ … }}` reference to an array"#,
        default: r#"none"#,
        meaning: r#"`[[notebook]]` only: run the notebook once per item. See [for-each](#for-each)."#,
    },
    KeyDoc {
        section: Section::Step,
        keys: &["for_each_concurrency"],
        key_text: r#"`for_each_concurrency`"#,
        ty: r#"integer ≥ 1"#,
        default: r#"no cap"#,
        meaning: r#"At most this many iterations queued or running at once (the pool's limits apply too)."#,
    },
    KeyDoc {
        section: Section::Step,
        keys: &["expected_items"],
        key_text: r#"`expected_items`"#,
        ty: r#"integer 1–10,000"#,
        default: r#"`10`"#,
        meaning: r#"What `spool simulate`, `spool plan` figures and the browser's dry run assume a list read at run time holds (a calibrated dry run takes what past runs read)."#,
    },
    KeyDoc {
        section: Section::DependsOn,
        keys: &["id"],
        key_text: r#"`id`"#,
        ty: r#"string"#,
        default: r#"required"#,
        meaning: r#"A step of the same file (not the step itself)."#,
    },
    KeyDoc {
        section: Section::DependsOn,
        keys: &["on"],
        key_text: r#"`on`"#,
        ty: r#"`"succeeded"`, `"failed"`, `"completed"` or `"skipped"`"#,
        default: r#"`"succeeded"`"#,
        meaning: r#"The outcomes of that step under which this dependency holds; see [conditions](#dependency-conditions)."#,
    },
    KeyDoc {
        section: Section::DependsOn,
        keys: &["if"],
        key_text: r#"`if`"#,
        ty: r#"string"#,
        default: r#"none"#,
        meaning: r#"A condition on values that must hold too, checked once the outcomes hold; see [conditions on values](#conditions-on-values-if)."#,
    },
];

/// The row describing `key` of `section`.
pub fn doc(section: Section, key: &str) -> Option<&'static KeyDoc> {
    KEY_DOCS
        .iter()
        .find(|d| d.section == section && d.keys.contains(&key))
}

/// One line of help for `key` of `section`, as the editor shows it: the meaning's first
/// sentence in plain text, then the type and the default.
pub fn help(section: Section, key: &str) -> Option<String> {
    // A step's run settings mean what they mean in `[defaults]`.
    let d = match (section, doc(Section::Defaults, key)) {
        (Section::Step, Some(setting)) => setting,
        _ => doc(section, key)?,
    };
    let meaning = plain(d.meaning);
    let first = match meaning.find(". ") {
        Some(end) => &meaning[..=end],
        None => meaning.as_str(),
    };
    Some(format!(
        "{} ({}; default: {})",
        first.trim_end(),
        plain(d.ty),
        plain(d.default)
    ))
}

/// Markdown as plain text: code spans and emphasis unmarked (a code span's text kept as it is:
/// `[[notebook]]`), links reduced to their text.
fn plain(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut rest = markdown;
    let mut in_code = false;
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            in_code = !in_code;
            rest = &rest[1..];
            continue;
        }
        if in_code {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == ']' && rest[1..].starts_with('(') {
            // `[text](target)`: the text is already out; skip the target.
            match rest.find(')') {
                Some(end) => rest = &rest[end + 1..],
                None => rest = "",
            }
            continue;
        }
        if !matches!(c, '`' | '*' | '[') {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = include_str!("../../docs/metadata.md");

    /// The key tables of docs/metadata.md are exactly these rows: a key documented, changed or
    /// removed in one place and not the other fails here.
    #[test]
    fn the_reference_tables_are_the_key_docs() {
        let mut in_table = false;
        let mut documented = Vec::new();
        for line in DOC.lines() {
            if line == "| key | type | default | meaning |" {
                in_table = true;
            } else if in_table && line.starts_with("| `") {
                documented.push(line.to_string());
            } else if !line.starts_with('|') {
                in_table = false;
            }
        }
        let rows: Vec<String> = KEY_DOCS.iter().map(KeyDoc::row).collect();
        assert_eq!(documented, rows);
    }

    #[test]
    fn help_is_one_plain_line() {
        let h = help(Section::Defaults, "retry_interval_secs").expect("documented");
        assert_eq!(
            h,
            "Pause between a failed attempt and the next. (integer ≥ 0; default: 30)"
        );
        let h = help(Section::Step, "isolated").expect("a run setting on a step");
        assert!(h.starts_with("Run in a Spark session of its own"), "{h}");
        let h = help(Section::Top, "pool").expect("documented");
        assert!(!h.contains('`') && !h.contains("](#"), "{h}");
        assert_eq!(help(Section::Pool, "nope"), None);
        let h = help(Section::Step, "for_each").expect("documented");
        assert!(
            h.starts_with("[[notebook]] only: run the notebook once per item."),
            "{h}"
        );
        assert!(h.contains("one {{ … }} reference"), "{h}");
    }
}
