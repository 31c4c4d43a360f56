//! TOML text -> [`PipelineFile`] plus diagnostics. Never panics on input: every problem becomes a
//! diagnostic and parsing goes on, so that a user sees all problems of a file at once.

use crate::diag::{did_you_mean, Diagnostic, Reporter, Span};
use crate::model::*;
use crate::overlap::{Concurrency, OnOverlap};
use crate::schedule::{CatchUp, CronExpr, Schedule, ScheduleSpans, Zone};
use crate::template::{coerce, RunInfo, Template, ValueType, MAX_VALUE_DEPTH};
use crate::value_condition::ValueCondition;
use std::collections::BTreeMap;
use toml_edit::{ImDocument, Item, Table, Value};

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "pool",
    "spark_conf",
    "defaults",
    "params",
    "timeout_secs",
    "max_concurrent_runs",
    "on_overlap",
    "schedule",
    "notify",
    "notebook",
    "pipeline",
];
const SCHEDULE_KEYS: &[&str] = &["cron", "timezone", "params", "catch_up", "enabled"];
const NOTIFY_KEYS: &[&str] = &["on", "webhook", "format", "long_running_secs"];
const POOL_KEYS: &[&str] = &[
    "executors",
    "executor_cores",
    "max_concurrency",
    "recreate_session",
    "platform",
    "executor_memory",
    "driver_memory",
    "driver_cores",
    "jars",
    "py_files",
    "queue",
    "heartbeat_timeout_secs",
    "ttl",
    "session_start_timeout_secs",
];
/// `[spark_conf]` entries at most.
const MAX_SPARK_CONF_ENTRIES: usize = 1000;
/// The run settings a notebook or `[defaults]` writes (also the keys of their row in the key
/// table, `crate::keys`).
pub(crate) const SETTING_KEYS: &[&str] = &[
    "retry",
    "retry_interval_secs",
    "timeout_secs",
    "slots",
    "estimate_secs",
    "isolated",
];
const STEP_KEYS: &[&str] = &["id", "path", "depends_on", "params", "active"];
/// Keys of a `[[notebook]]` that runs once per item.
const FOR_EACH_KEYS: &[&str] = &["for_each", "for_each_concurrency", "expected_items"];

/// A place in the document: a table, an item or a value.
#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a Table),
    Item(&'a Item),
    Value(&'a Value),
}

type Entry<'a> = (&'a str, Span, Node<'a>);

impl<'a> Node<'a> {
    fn value(self) -> Option<&'a Value> {
        match self {
            Node::Item(Item::Value(v)) | Node::Value(v) => Some(v),
            _ => None,
        }
    }

    fn span(self) -> Option<Span> {
        match self {
            Node::Table(t) => t.span(),
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Node::Table(_) | Node::Item(Item::Table(_)) => "table",
            Node::Item(Item::ArrayOfTables(_)) => "array of tables",
            Node::Item(Item::None) => "nothing",
            Node::Item(Item::Value(v)) | Node::Value(v) => v.type_name(),
        }
    }

    /// The entries of a table or inline table, with the span of each key.
    fn entries(self) -> Option<Vec<Entry<'a>>> {
        let table = match self {
            Node::Table(t) | Node::Item(Item::Table(t)) => t,
            Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)) => {
                return Some(
                    t.iter()
                        .map(|(k, v)| {
                            let span = t.key(k).and_then(|k| k.span()).or(v.span());
                            (k, span.unwrap_or(0..0), Node::Value(v))
                        })
                        .collect(),
                );
            }
            _ => return None,
        };
        Some(
            table
                .iter()
                .map(|(k, v)| {
                    let span = table.key(k).and_then(|k| k.span()).or(v.span());
                    (k, span.unwrap_or(0..0), Node::Item(v))
                })
                .collect(),
        )
    }

    /// The elements of an array or array of tables.
    fn elements(self) -> Option<Vec<Node<'a>>> {
        match self {
            Node::Item(Item::ArrayOfTables(a)) => Some(a.iter().map(Node::Table).collect()),
            Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => {
                Some(a.iter().map(Node::Value).collect())
            }
            _ => None,
        }
    }
}

/// Parses one pipeline file. `file` is the name used in diagnostics (and, without its
/// extension, the default pipeline name).
pub fn parse_pipeline(file: &str, text: &str) -> (Option<PipelineFile>, Vec<Diagnostic>) {
    let mut r = Reporter::new(file, text);
    if text.len() > MAX_METADATA_BYTES {
        r.error(
            &(0..0),
            format!(
                "metadata file is {} bytes, over the {} MiB limit; split it into sub-pipelines",
                text.len(),
                MAX_METADATA_BYTES / (1024 * 1024)
            ),
        );
        return (None, r.out);
    }
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().replace('\n', " ");
            r.error(&span, format!("TOML syntax error: {msg}"));
            return (None, r.out);
        }
    };
    let mut p = Parser { r };
    let pipeline = p.file(file, doc.as_table());
    (Some(pipeline), p.r.out)
}

struct Parser<'t> {
    r: Reporter<'t>,
}

/// What a key of a step resolved to, kept until the whole table is read.
#[derive(Default)]
struct Partial {
    id: Option<(String, Span)>,
    path: Option<(String, Span)>,
}

/// The for-each keys of a step as read.
#[derive(Default)]
struct ForEachKeys {
    written: bool,
    items: Option<crate::for_each::Items>,
    concurrency: Option<u32>,
    expected_items: Option<u32>,
    /// Which of `for_each_concurrency` and `expected_items` are written, and where.
    settings: Vec<(&'static str, Span)>,
}

impl<'t> Parser<'t> {
    fn file(&mut self, file: &str, root: &Table) -> PipelineFile {
        let stem = file
            .rsplit('/')
            .next()
            .unwrap_or(file)
            .trim_end_matches(".toml")
            .to_string();
        let mut out = PipelineFile {
            name: stem,
            description: None,
            pool: Pool::default(),
            defaults: RunSettings::default(),
            timeout_secs: None,
            params: BTreeMap::new(),
            steps: Vec::new(),
            schedule: None,
            notify: Vec::new(),
            concurrency: Concurrency::default(),
            pool_span: None,
        };
        let entries = Node::Table(root).entries().unwrap_or_default();
        // Defaults first: steps are read against them whatever the order in the file.
        for (key, kspan, node) in &entries {
            if *key == "defaults" {
                if let Some(fields) = self.table(node, kspan, "defaults") {
                    for (k, ks, n) in fields {
                        if !self.setting(&mut out.defaults, k, &ks, n, None) {
                            self.unknown_key(k, &ks, SETTING_KEYS, "[defaults]", None);
                        }
                    }
                }
            }
        }
        for (key, kspan, node) in &entries {
            match *key {
                "name" => {
                    if let Some(s) = self.string(node, kspan, "name", None) {
                        if s.trim().is_empty() {
                            self.r
                                .error(&self.span_of(node, kspan), "`name` must not be empty");
                        } else {
                            out.name = s;
                        }
                    }
                }
                "description" => out.description = self.string(node, kspan, "description", None),
                "pool" => {
                    out.pool_span = Some(kspan.clone());
                    if let Some(fields) = self.table(node, kspan, "pool") {
                        let mut spans = BTreeMap::new();
                        for (k, ks, n) in fields {
                            spans.insert(k, self.span_of(&n, &ks));
                            self.pool_key(&mut out.pool, k, &ks, n);
                        }
                        self.check_platform(&mut out.pool, &spans, kspan);
                    }
                }
                "spark_conf" => {
                    if let Some(fields) = self.table(node, kspan, "spark_conf") {
                        self.spark_conf(&mut out.pool, fields, kspan);
                    }
                }
                "defaults" => {}
                "timeout_secs" => out.timeout_secs = self.int(node, kspan, "timeout_secs", 1, None),
                "schedule" => out.schedule = self.schedule(node, kspan),
                "notify" => match node.elements() {
                    Some(items) => {
                        if items.len() > crate::notify::MAX_NOTIFY {
                            self.r
                                .error(
                                    &self.span_of(node, kspan),
                                    format!(
                                        "at most {} [[notify]] entries",
                                        crate::notify::MAX_NOTIFY
                                    ),
                                )
                                .key(key);
                        }
                        for item in items.into_iter().take(crate::notify::MAX_NOTIFY) {
                            if let Some(n) = self.notify(item) {
                                out.notify.push(n);
                            }
                        }
                    }
                    None => {
                        self.r
                            .error(
                                &self.span_of(node, kspan),
                                format!(
                                    "`notify` must be an array of tables (`[[notify]]`), found {}",
                                    node.type_name()
                                ),
                            )
                            .key(key);
                    }
                },
                "max_concurrent_runs" => {
                    if let Some(n) = self.u32(node, kspan, key, 1, None) {
                        out.concurrency.max_runs = n;
                    }
                }
                "on_overlap" => {
                    if let Some(name) = self.string(node, kspan, key, None) {
                        match OnOverlap::parse(&name) {
                            Some(o) => out.concurrency.on_overlap = o,
                            None => {
                                let span = self.span_of(node, kspan);
                                self.r
                                    .error(
                                        &span,
                                        format!(
                                            "unknown on_overlap `{name}`; expected one of: {}",
                                            OnOverlap::NAMES.join(", ")
                                        ),
                                    )
                                    .key(key);
                            }
                        }
                    }
                }
                "params" => {
                    if let Some(fields) = self.table(node, kspan, "params") {
                        for (k, ks, n) in fields {
                            if let Some(decl) = self.param_decl(k, ks, n) {
                                out.params.insert(k.to_string(), decl);
                            }
                        }
                    }
                }
                "notebook" | "pipeline" => {
                    let kind = if *key == "notebook" {
                        StepKind::Notebook
                    } else {
                        StepKind::Pipeline
                    };
                    match node.elements() {
                        Some(items) => {
                            for item in items {
                                if let Some(step) = self.step(kind.clone(), item, &out.defaults) {
                                    out.steps.push(step);
                                }
                            }
                        }
                        None => {
                            self.r
                                .error(
                                    &self.span_of(node, kspan),
                                    format!(
                                        "`{key}` must be an array of tables (`[[{key}]]`), found {}",
                                        node.type_name()
                                    ),
                                )
                                .key(key);
                        }
                    }
                }
                other => self.unknown_key(other, kspan, TOP_KEYS, "the pipeline file", None),
            }
        }
        out
    }

    fn span_of(&self, node: &Node, key_span: &Span) -> Span {
        node.span().unwrap_or_else(|| key_span.clone())
    }

    fn unknown_key(
        &mut self,
        key: &str,
        span: &Span,
        known: &[&str],
        place: &str,
        item: Option<&str>,
    ) {
        let msg = match did_you_mean(key, known.iter().copied()) {
            Some(s) => format!("unknown key `{key}` in {place}; did you mean `{s}`?"),
            None => format!(
                "unknown key `{key}` in {place}; expected one of: {}",
                known.join(", ")
            ),
        };
        let d = self.r.error(span, msg);
        d.key(key);
        if let Some(i) = item {
            d.item(i);
        }
    }

    fn wrong_type(
        &mut self,
        node: &Node,
        kspan: &Span,
        key: &str,
        expected: &str,
        item: Option<&str>,
    ) {
        let span = self.span_of(node, kspan);
        let d = self.r.error(
            &span,
            format!("`{key}` must be {expected}, found {}", node.type_name()),
        );
        d.key(key);
        if let Some(i) = item {
            d.item(i);
        }
    }

    fn table<'a>(&mut self, node: &Node<'a>, kspan: &Span, key: &str) -> Option<Vec<Entry<'a>>> {
        let entries = node.entries();
        if entries.is_none() {
            self.wrong_type(node, kspan, key, "a table", None);
        }
        entries
    }

    fn string(
        &mut self,
        node: &Node,
        kspan: &Span,
        key: &str,
        item: Option<&str>,
    ) -> Option<String> {
        match node.value().and_then(|v| v.as_str()) {
            Some(s) => Some(s.to_string()),
            None => {
                self.wrong_type(node, kspan, key, "a string", item);
                None
            }
        }
    }

    fn bool(&mut self, node: &Node, kspan: &Span, key: &str, item: Option<&str>) -> Option<bool> {
        match node.value().and_then(|v| v.as_bool()) {
            Some(b) => Some(b),
            None => {
                self.wrong_type(node, kspan, key, "true or false", item);
                None
            }
        }
    }

    /// An integer no smaller than `min`.
    fn int(
        &mut self,
        node: &Node,
        kspan: &Span,
        key: &str,
        min: i64,
        item: Option<&str>,
    ) -> Option<u64> {
        let Some(i) = node.value().and_then(|v| v.as_integer()) else {
            self.wrong_type(node, kspan, key, "an integer", item);
            return None;
        };
        if i < min {
            let what = if min == 0 {
                "zero or more"
            } else {
                "at least 1"
            };
            let span = self.span_of(node, kspan);
            let d = self
                .r
                .error(&span, format!("`{key}` must be {what}, found {i}"));
            d.key(key);
            if let Some(it) = item {
                d.item(it);
            }
            return None;
        }
        Some(i as u64)
    }

    fn u32(
        &mut self,
        node: &Node,
        kspan: &Span,
        key: &str,
        min: i64,
        item: Option<&str>,
    ) -> Option<u32> {
        let v = self.int(node, kspan, key, min, item)?;
        match u32::try_from(v) {
            Ok(v) => Some(v),
            Err(_) => {
                let span = self.span_of(node, kspan);
                self.r
                    .error(&span, format!("`{key}` is too large ({v})"))
                    .key(key);
                None
            }
        }
    }

    fn pool_key(&mut self, pool: &mut Pool, key: &str, ks: &Span, n: Node) {
        match key {
            "executors" => {
                if let Some(v) = self.u32(&n, ks, key, 1, None) {
                    pool.executors = v;
                }
            }
            "executor_cores" => {
                if let Some(v) = self.u32(&n, ks, key, 1, None) {
                    pool.executor_cores = v;
                }
            }
            "max_concurrency" => pool.max_concurrency = self.u32(&n, ks, key, 1, None),
            "recreate_session" => {
                if let Some(v) = self.bool(&n, ks, key, None) {
                    pool.recreate_session = v;
                }
            }
            "platform" => {
                if let Some(name) = self.string(&n, ks, key, None) {
                    match Platform::parse(&name) {
                        Some(p) => pool.platform = p,
                        None => {
                            let span = self.span_of(&n, ks);
                            self.r
                                .error(
                                    &span,
                                    format!(
                                        "unknown platform `{name}`; expected one of: {}",
                                        Platform::NAMES.join(", ")
                                    ),
                                )
                                .key(key);
                        }
                    }
                }
            }
            "executor_memory" => pool.executor_memory = self.memory(&n, ks, key),
            "driver_memory" => pool.driver_memory = self.memory(&n, ks, key),
            "driver_cores" => pool.driver_cores = self.u32(&n, ks, key, 1, None),
            "jars" => pool.jars = self.strings(&n, ks, key),
            "py_files" => pool.py_files = self.strings(&n, ks, key),
            "queue" => pool.queue = self.string(&n, ks, key, None),
            "heartbeat_timeout_secs" => {
                pool.heartbeat_timeout_secs = self.int(&n, ks, key, 1, None)
            }
            "ttl" => {
                pool.ttl = self.string(&n, ks, key, None).filter(|t| {
                    let ok = is_duration(t);
                    if !ok {
                        let span = self.span_of(&n, ks);
                        self.r
                            .error(
                                &span,
                                format!(
                                "`ttl` must be a duration like \"30m\" or \"2h\", found \"{t}\""
                            ),
                            )
                            .key(key);
                    }
                    ok
                })
            }
            "session_start_timeout_secs" => {
                if let Some(v) = self.int(&n, ks, key, 1, None) {
                    pool.session_start_timeout_secs = v;
                }
            }
            other => self.unknown_key(other, ks, POOL_KEYS, "[pool]", None),
        }
    }

    /// A Spark memory size as Livy takes it: digits and a unit (`512m`, `28g`).
    fn memory(&mut self, n: &Node, ks: &Span, key: &str) -> Option<String> {
        let text = self.string(n, ks, key, None)?;
        if is_memory_size(&text) {
            return Some(text);
        }
        let span = self.span_of(n, ks);
        self.r
            .error(
                &span,
                format!("`{key}` must be a memory size like \"512m\" or \"28g\", found \"{text}\""),
            )
            .key(key);
        None
    }

    /// An array of strings.
    fn strings(&mut self, n: &Node, ks: &Span, key: &str) -> Vec<String> {
        let items = n.value().and_then(|v| v.as_array()).map(|a| {
            a.iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        });
        match items {
            Some(Some(list)) => list,
            _ => {
                self.wrong_type(n, ks, key, "an array of strings", None);
                Vec::new()
            }
        }
    }

    /// The rules of the platform the pool names, checked where the keys were written.
    fn check_platform(&mut self, pool: &mut Pool, spans: &BTreeMap<&str, Span>, pool_span: &Span) {
        let at = |key: &str| spans.get(key).unwrap_or(pool_span).clone();
        if pool.queue.is_some() && !pool.platform.has_queues() {
            self.r
                .warning(
                    &at("queue"),
                    format!(
                        "`queue` is sent to Livy, but platform `{}` has no YARN queues (emr and hdinsight do)",
                        pool.platform.name()
                    ),
                )
                .key("queue");
        }
        if pool.platform != Platform::Synapse {
            return;
        }
        // Synapse runs the driver and each executor on a whole node: cores and memory must be
        // one of its node sizes, and memory follows from cores when not written.
        let roles = [
            (
                "executor_cores",
                "executor_memory",
                Some(pool.executor_cores),
            ),
            (
                "driver_cores",
                "driver_memory",
                pool.driver_cores.or(Some(pool.executor_cores)),
            ),
        ];
        let mut sizes = Vec::new();
        for (cores_key, memory_key, cores) in roles {
            let cores = cores.unwrap_or(pool.executor_cores);
            let Some(size) = SynapseNodeSize::with_cores(cores) else {
                self.r
                    .error(
                        &at(cores_key),
                        format!(
                            "Synapse has no node size with {cores} cores: `{cores_key}` must be one of {}",
                            SynapseNodeSize::table()
                        ),
                    )
                    .key(cores_key);
                sizes.push(None);
                continue;
            };
            let memory = if memory_key == "executor_memory" {
                &pool.executor_memory
            } else {
                &pool.driver_memory
            };
            if let Some(m) = memory {
                if !m.eq_ignore_ascii_case(size.memory) {
                    self.r
                        .error(
                            &at(memory_key),
                            format!(
                                "`{memory_key} = \"{m}\"` does not match the Synapse node size for {cores} cores: {} needs \"{}\" ({})",
                                size.name,
                                size.memory,
                                SynapseNodeSize::table()
                            ),
                        )
                        .key(memory_key);
                }
            }
            sizes.push(Some(size));
        }
        if let [Some(executor), Some(driver)] = sizes[..] {
            pool.executor_memory
                .get_or_insert_with(|| executor.memory.to_string());
            pool.driver_cores.get_or_insert(driver.cores);
            pool.driver_memory
                .get_or_insert_with(|| driver.memory.to_string());
        }
    }

    /// `[spark_conf]`: Spark settings as strings (numbers and booleans are written as text).
    fn spark_conf(&mut self, pool: &mut Pool, fields: Vec<Entry>, kspan: &Span) {
        if fields.len() > MAX_SPARK_CONF_ENTRIES {
            self.r
                .error(
                    kspan,
                    format!(
                        "[spark_conf] has {} entries; at most {MAX_SPARK_CONF_ENTRIES}",
                        fields.len()
                    ),
                )
                .key("spark_conf");
            return;
        }
        for (k, ks, n) in fields {
            let text = n.value().and_then(|v| match v {
                Value::String(s) => Some(s.value().clone()),
                Value::Integer(i) => Some(i.value().to_string()),
                Value::Float(f) => Some(f.value().to_string()),
                Value::Boolean(b) => Some(b.value().to_string()),
                _ => None,
            });
            match text {
                Some(t) => {
                    pool.spark_conf.insert(k.to_string(), t);
                }
                None => self.wrong_type(&n, &ks, k, "a string, number or boolean", None),
            }
        }
    }

    /// Reads run setting `key`; `false` when `key` is not one (not in SETTING_KEYS).
    fn setting(
        &mut self,
        s: &mut RunSettings,
        key: &str,
        ks: &Span,
        n: Node,
        item: Option<&str>,
    ) -> bool {
        match key {
            "retry" => {
                if let Some(v) = self.u32(&n, ks, key, 0, item) {
                    s.retry = v;
                }
            }
            "retry_interval_secs" => {
                if let Some(v) = self.int(&n, ks, key, 0, item) {
                    s.retry_interval_secs = v;
                }
            }
            "timeout_secs" => {
                if let Some(v) = self.int(&n, ks, key, 1, item) {
                    s.timeout_secs = v;
                }
            }
            "slots" => {
                if let Some(v) = self.u32(&n, ks, key, 1, item) {
                    s.slots = v;
                }
            }
            "estimate_secs" => {
                let v = n
                    .value()
                    .and_then(|v| v.as_float().or(v.as_integer().map(|i| i as f64)));
                match v {
                    Some(v) if v > 0.0 && v.is_finite() => s.estimate_secs = v,
                    Some(v) => {
                        let span = self.span_of(&n, ks);
                        let d = self.r.error(
                            &span,
                            format!("`estimate_secs` must be more than 0, found {v}"),
                        );
                        d.key(key);
                        if let Some(i) = item {
                            d.item(i);
                        }
                    }
                    None => self.wrong_type(&n, ks, key, "a number of seconds", item),
                }
            }
            "isolated" => {
                if let Some(v) = self.bool(&n, ks, key, item) {
                    s.isolated = v;
                }
            }
            _ => return false,
        }
        true
    }

    /// `for_each`'s value: a list written out (at most `MAX_ITEMS`, not empty), or one
    /// `{{ … }}` reference to a list.
    fn for_each_items(
        &mut self,
        n: &Node,
        ks: &Span,
        item: Option<&str>,
    ) -> Option<crate::for_each::Items> {
        use crate::for_each::{Items, Reference, MAX_ITEMS};
        let span = self.span_of(n, ks);
        let problem = |p: &mut Self, message: String| {
            let d = p.r.error(&span, message);
            d.key("for_each");
            if let Some(i) = item {
                d.item(i);
            }
            None
        };
        if let Some(text) = n.value().and_then(|v| v.as_str()) {
            let at = self.text_at(n, ks, text);
            return match Template::parse(text) {
                Ok(Some(t)) if t.whole().is_some() => Some(Items::Reference(Reference {
                    text: text.to_string(),
                    template: t,
                    at,
                })),
                Err(e) => {
                    let d = self.r.error(&at.file_span(&e.span), e.message);
                    d.key("for_each");
                    if let Some(i) = item {
                        d.item(i);
                    }
                    None
                }
                _ => problem(self, crate::for_each::not_a_reference(text)),
            };
        }
        match n.value().and_then(|v| v.as_array()) {
            Some(a) if a.len() > MAX_ITEMS => problem(
                self,
                format!("`for_each` has {} items; at most {MAX_ITEMS}", a.len()),
            ),
            Some(a) if a.is_empty() => problem(
                self,
                "`for_each` is an empty list: the notebook would never run (remove it, or make \
                 it `active = false`)"
                    .to_string(),
            ),
            Some(_) => match crate::for_each::items_of(node_to_json(*n)) {
                Ok(items) => Some(Items::List(items)),
                Err(why) => problem(self, format!("`for_each`: {why}")),
            },
            None => {
                self.wrong_type(n, ks, "for_each", "a list or a `{{ … }}` reference", item);
                None
            }
        }
    }

    /// The for-each of a step from its keys: settings without `for_each` and parameters named
    /// like the ones iterations get are errors.
    fn for_each(
        &mut self,
        keys: ForEachKeys,
        step: &Step,
        item: Option<&str>,
    ) -> Option<crate::for_each::ForEach> {
        if !keys.written {
            for (key, at) in &keys.settings {
                let d = self
                    .r
                    .error(at, "this setting needs `for_each` on the same notebook");
                d.key(key);
                if let Some(i) = item {
                    d.item(i);
                }
            }
            return None;
        }
        for name in crate::for_each::ITEM_PARAMS {
            if let Some(at) = step.spans.params.get(name) {
                let d = self.r.error(
                    at,
                    format!(
                        "parameter `{name}` is given to every iteration of `for_each`; name this \
                         one differently"
                    ),
                );
                d.key("params");
                if let Some(i) = item {
                    d.item(i);
                }
            }
        }
        Some(crate::for_each::ForEach {
            items: keys.items?,
            concurrency: keys.concurrency,
            expected_items: keys
                .expected_items
                .unwrap_or(crate::for_each::DEFAULT_EXPECTED_ITEMS),
        })
    }

    fn step(&mut self, kind: StepKind, node: Node, defaults: &RunSettings) -> Option<Step> {
        let table_name = match kind {
            StepKind::Notebook => "notebook",
            StepKind::Pipeline => "pipeline",
        };
        let entry_span = node.span().unwrap_or(0..0);
        let Some(fields) = node.entries() else {
            self.r.error(
                &entry_span,
                format!(
                    "each `{table_name}` entry must be a table, found {}",
                    node.type_name()
                ),
            );
            return None;
        };
        // The id first, so that later diagnostics can name the step.
        let mut partial = Partial::default();
        for (k, ks, n) in &fields {
            if *k == "id" {
                if let Some(id) = self.string(n, ks, "id", None) {
                    let span = self.span_of(n, ks);
                    if id.is_empty() {
                        self.r.error(&span, "`id` must not be empty").key("id");
                    } else if !valid_id(&id) {
                        self.r
                            .error(
                                &span,
                                format!("id `{id}` may only use letters, digits, `_`, `.` and `-`"),
                            )
                            .key("id");
                    }
                    partial.id = Some((id, span));
                }
            }
        }
        let item = partial.id.as_ref().map(|(i, _)| i.clone());
        let item_ref = item.as_deref();
        let mut step = Step {
            kind: kind.clone(),
            id: String::new(),
            path: String::new(),
            depends_on: Vec::new(),
            params: BTreeMap::new(),
            active: true,
            settings: defaults.clone(),
            spans: StepSpans {
                entry: entry_span.clone(),
                ..StepSpans::default()
            },
            templates: Vec::new(),
            for_each: None,
        };
        let place = format!("[[{table_name}]]");
        let mut for_each = ForEachKeys::default();
        for (k, ks, n) in fields {
            // Read anyway below (types are still checked), but the end of a sub-pipeline runs
            // nothing, and the notebooks inside take theirs from their own file.
            if kind == StepKind::Pipeline && SETTING_KEYS.contains(&k) {
                let d = self.r.warning(
                    &ks,
                    format!(
                        "`{k}` has no effect on a `[[pipeline]]` entry: the notebooks of a \
                         sub-pipeline take their settings from their own file (its entries and \
                         [defaults])"
                    ),
                );
                d.key(k);
                if let Some(i) = item_ref {
                    d.item(i);
                }
            }
            match k {
                "id" => {}
                "path" => {
                    if let Some(p) = self.string(&n, &ks, "path", item_ref) {
                        partial.path = Some((p, self.span_of(&n, &ks)));
                    }
                }
                "depends_on" => step.depends_on = self.depends_on(&n, &ks, item_ref),
                "params" => {
                    if let Some(entries) = n.entries() {
                        for (pk, pspan, pn) in entries {
                            if let Some(why) = crate::model::param_name_problem(pk) {
                                let d = self.r.error(&pspan, format!("parameter `{pk}`: {why}"));
                                d.key("params");
                                if let Some(i) = item_ref {
                                    d.item(i);
                                }
                                continue;
                            }
                            let mut found = Vec::new();
                            self.templates(pn, &pspan, 0, &mut found);
                            step.templates
                                .extend(found.into_iter().map(|(at, template)| TemplateSite {
                                    param: pk.to_string(),
                                    top: pn.value().is_some_and(|v| v.is_str()),
                                    template,
                                    at,
                                }));
                            step.spans.params.insert(pk.to_string(), pspan);
                            step.params.insert(pk.to_string(), node_to_json(pn));
                        }
                    } else {
                        self.wrong_type(&n, &ks, "params", "a table", item_ref);
                    }
                }
                "active" => {
                    if let Some(b) = self.bool(&n, &ks, "active", item_ref) {
                        step.active = b;
                    }
                }
                k if FOR_EACH_KEYS.contains(&k) && kind == StepKind::Pipeline => {
                    let d = self.r.error(
                        &ks,
                        format!(
                            "`{k}` is for a `[[notebook]]`: a sub-pipeline cannot run once per \
                             item (put `for_each` on its notebooks)"
                        ),
                    );
                    d.key(k);
                    if let Some(i) = item_ref {
                        d.item(i);
                    }
                }
                "for_each" => {
                    step.spans.for_each.insert(k.into(), self.span_of(&n, &ks));
                    for_each.items = self.for_each_items(&n, &ks, item_ref);
                    for_each.written = true;
                }
                "for_each_concurrency" => {
                    for_each.concurrency = self.u32(&n, &ks, k, 1, item_ref);
                    step.spans.for_each.insert(k.into(), self.span_of(&n, &ks));
                    for_each.settings.push(("for_each_concurrency", ks.clone()));
                }
                "expected_items" => {
                    if let Some(v) = self.u32(&n, &ks, k, 1, item_ref) {
                        if v as usize > crate::for_each::MAX_ITEMS {
                            let d = self.r.error(
                                &ks,
                                format!(
                                    "`expected_items` is {v}; a for-each runs at most {}",
                                    crate::for_each::MAX_ITEMS
                                ),
                            );
                            d.key(k);
                            if let Some(i) = item_ref {
                                d.item(i);
                            }
                        } else {
                            for_each.expected_items = Some(v);
                        }
                    }
                    step.spans.for_each.insert(k.into(), self.span_of(&n, &ks));
                    for_each.settings.push(("expected_items", ks.clone()));
                }
                k if SETTING_KEYS.contains(&k) => {
                    if k == "slots" {
                        step.spans.slots = Some(self.span_of(&n, &ks));
                    }
                    step.spans.settings.insert(k.to_string(), ks.clone());
                    let known = self.setting(&mut step.settings, k, &ks, n, item_ref);
                    debug_assert!(known, "`setting` reads every key of SETTING_KEYS");
                }
                other => {
                    let known: Vec<&str> = STEP_KEYS
                        .iter()
                        .chain(SETTING_KEYS)
                        .chain(FOR_EACH_KEYS)
                        .copied()
                        .collect();
                    self.unknown_key(other, &ks, &known, &place, item_ref);
                }
            }
        }
        step.for_each = self.for_each(for_each, &step, item_ref);
        let (Some((id, id_span)), Some((path, path_span))) = (partial.id, partial.path) else {
            // A key that is present but unreadable was reported already; name only absent ones.
            let missing: Vec<&str> = ["id", "path"]
                .into_iter()
                .filter(|k| !fields_has(&node, k))
                .collect();
            if !missing.is_empty() {
                let names: Vec<String> = missing.iter().map(|k| format!("`{k}`")).collect();
                let d = self.r.error(
                    &entry_span,
                    format!("this `{place}` entry needs {}", names.join(" and ")),
                );
                if let Some(i) = item_ref {
                    d.item(i);
                }
            }
            return None;
        };
        step.id = id;
        step.path = path;
        step.spans.id = id_span;
        step.spans.path = path_span;
        Some(step)
    }

    /// `[schedule]`: every key read and checked on its own (the expression, the zone), so that
    /// all problems are reported at once; `params` are checked against the plan in `dag`.
    fn schedule(&mut self, node: &Node, kspan: &Span) -> Option<Schedule> {
        let fields = self.table(node, kspan, "schedule")?;
        let mut cron = None;
        let mut timezone = Some(Zone::UTC);
        let mut catch_up = Some(CatchUp::None);
        let mut enabled = Some(true);
        let mut params = BTreeMap::new();
        let mut spans = ScheduleSpans {
            table: kspan.clone(),
            params: BTreeMap::new(),
        };
        for (k, ks, n) in fields {
            let at = self.span_of(&n, &ks);
            match k {
                "cron" => {
                    cron = self.string(&n, &ks, k, None).and_then(|text| {
                        CronExpr::parse(&text)
                            .map_err(|why| {
                                self.r
                                    .error(&at, format!("`cron = \"{text}\"`: {why}"))
                                    .key(k);
                            })
                            .ok()
                    });
                }
                "timezone" => {
                    timezone = self.string(&n, &ks, k, None).and_then(|name| {
                        Zone::parse(&name)
                            .map_err(|why| {
                                self.r.error(&at, why).key(k);
                            })
                            .ok()
                    });
                }
                "catch_up" => {
                    catch_up = self.string(&n, &ks, k, None).and_then(|name| {
                        let parsed = CatchUp::parse(&name);
                        if parsed.is_none() {
                            self.r
                                .error(
                                    &at,
                                    format!(
                                        "unknown catch_up `{name}`; expected one of: {}",
                                        CatchUp::NAMES.join(", ")
                                    ),
                                )
                                .key(k);
                        }
                        parsed
                    });
                }
                "enabled" => enabled = self.bool(&n, &ks, k, None),
                "params" => match n.entries() {
                    Some(entries) => {
                        for (pk, pspan, pn) in entries {
                            let value = node_to_json(pn);
                            if crate::secret::contains_reference(&value) {
                                self.r
                                    .error(
                                        &pspan,
                                        "a scheduled run cannot be given a secret: write it in \
                                         `[params]` or in the notebook's `params`",
                                    )
                                    .key("schedule");
                            }
                            spans.params.insert(pk.to_string(), pspan);
                            params.insert(pk.to_string(), value);
                        }
                    }
                    None => self.wrong_type(&n, &ks, k, "a table", None),
                },
                other => self.unknown_key(other, &ks, SCHEDULE_KEYS, "[schedule]", None),
            }
        }
        if cron.is_none() && !fields_has(node, "cron") {
            self.r
                .error(
                    kspan,
                    "[schedule] needs `cron` (for example `cron = \"0 2 * * *\"`)",
                )
                .key("schedule");
        }
        Some(Schedule {
            cron: cron?,
            timezone: timezone?,
            params,
            catch_up: catch_up?,
            enabled: enabled?,
            spans,
        })
    }

    /// One `[[notify]]` entry: every key checked on its own, so that all problems are reported
    /// at once.
    fn notify(&mut self, node: Node) -> Option<crate::notify::Notify> {
        use crate::notify::{webhook_problem, Notify, NotifyFormat, NotifyOn};
        let entry = node.span().unwrap_or(0..0);
        let Some(fields) = node.entries() else {
            self.r.error(
                &entry,
                format!(
                    "each `notify` entry must be a table, found {}",
                    node.type_name()
                ),
            );
            return None;
        };
        let mut on = None;
        let mut webhook = None;
        let mut format = Some(NotifyFormat::Json);
        let mut long_running_secs = None;
        let mut ok = true;
        for (k, ks, n) in fields {
            let at = self.span_of(&n, &ks);
            match k {
                "on" => {
                    let mut events = Vec::new();
                    for name in self.strings(&n, &ks, k) {
                        match NotifyOn::parse(&name) {
                            Some(e) if !events.contains(&e) => events.push(e),
                            Some(_) => {}
                            None => {
                                ok = false;
                                self.r
                                    .error(
                                        &at,
                                        format!(
                                            "unknown `on` event `{name}`; expected: {}",
                                            NotifyOn::NAMES.join(", ")
                                        ),
                                    )
                                    .key(k);
                            }
                        }
                    }
                    on = Some(events);
                }
                "webhook" => {
                    webhook = self.string(&n, &ks, k, None).filter(|url| {
                        let problem = webhook_problem(url);
                        if let Some(why) = &problem {
                            self.r.error(&at, why.clone()).key(k);
                        }
                        problem.is_none()
                    });
                    ok &= webhook.is_some();
                }
                "format" => {
                    format = self.string(&n, &ks, k, None).and_then(|name| {
                        let parsed = NotifyFormat::parse(&name);
                        if parsed.is_none() {
                            self.r
                                .error(
                                    &at,
                                    format!(
                                        "unknown format `{name}`; expected one of: {}",
                                        NotifyFormat::NAMES.join(", ")
                                    ),
                                )
                                .key(k);
                        }
                        parsed
                    });
                }
                "long_running_secs" => {
                    long_running_secs = self.int(&n, &ks, k, 1, None);
                    ok &= long_running_secs.is_some();
                }
                other => self.unknown_key(other, &ks, NOTIFY_KEYS, "[[notify]]", None),
            }
        }
        let on = on.filter(|e| !e.is_empty());
        if on.is_none() {
            self.r.error(
                &entry,
                "[[notify]] needs `on`, the events to notify (for example `on = [\"failed\"]`)",
            );
        }
        if webhook.is_none() && ok {
            self.r
                .error(&entry, "[[notify]] needs `webhook = \"https://…\"`");
        }
        let on = on?;
        if on.contains(&NotifyOn::LongRunning) && long_running_secs.is_none() && ok {
            self.r.error(
                &entry,
                "`on = [\"long_running\"]` needs `long_running_secs`, how long is too long",
            );
            return None;
        }
        Some(Notify {
            on,
            webhook: webhook?,
            format: format?,
            long_running_secs,
        })
    }

    /// One entry of `[params]`: a value (its type is the value's), or `{ type = "…", default =
    /// … }` (no default: every run gives it).
    fn param_decl(&mut self, name: &str, ks: Span, node: Node) -> Option<ParamDecl> {
        if let Some(why) = param_name_problem(name) {
            self.r
                .error(&ks, format!("parameter `{name}`: {why}"))
                .key("params");
            return None;
        }
        let entries = node.entries();
        let declared = entries
            .as_ref()
            .filter(|e| e.iter().any(|(k, _, _)| *k == "type"));
        let (ty, default) = match declared {
            Some(fields) => {
                let mut ty = None;
                let mut default = None;
                for (k, fks, n) in fields {
                    match *k {
                        "type" => {
                            let t = self.string(n, fks, "type", None)?;
                            match ValueType::parse(&t) {
                                Some(t) => ty = Some(t),
                                None => {
                                    let hint = did_you_mean(&t, ValueType::NAMES)
                                        .map(|h| format!("; did you mean `{h}`?"))
                                        .unwrap_or_default();
                                    let span = self.span_of(n, fks);
                                    self.r
                                        .error(
                                            &span,
                                            format!(
                                                "unknown type `{t}`: expected one of {}{hint}",
                                                ValueType::NAMES.join(", ")
                                            ),
                                        )
                                        .key("params");
                                    return None;
                                }
                            }
                        }
                        "default" => default = Some((fks.clone(), *n)),
                        other => {
                            self.unknown_key(other, fks, &["type", "default"], "a parameter", None);
                        }
                    }
                }
                (ty?, default)
            }
            None => (type_of_node(&node), Some((ks.clone(), node))),
        };
        let default = match default {
            None => None,
            Some((dks, dn)) => Some(self.param_default(name, ty, &dks, dn)?),
        };
        Some(ParamDecl {
            ty,
            default,
            span: ks,
        })
    }

    /// A declared default, checked against its type; it may refer to `run.…` only.
    fn param_default(
        &mut self,
        name: &str,
        ty: ValueType,
        ks: &Span,
        node: Node,
    ) -> Option<serde_json::Value> {
        let value = node_to_json(node);
        let mut found = Vec::new();
        self.templates(node, ks, 0, &mut found);
        let mut ok = true;
        for (at, template) in found {
            let site = TemplateSite {
                param: name.to_string(),
                top: true,
                template,
                at,
            };
            let checked = site.template.check(&mut |src| {
                RunInfo::type_of(src).ok_or_else(|| {
                    "a default may refer to `run.…` only (`params.…` and `tasks.…` are for \
                     steps)"
                        .to_string()
                })
            });
            let problem = match checked {
                Err((at, m)) => Some((site.at.file_span(&at), m)),
                Ok(t) if site.template.whole().is_some() && !ty.admits(t) => Some((
                    site.at.file_span(&(0..1)),
                    format!("`{name}` is {}, but its default is {}", ty.a(), t.a()),
                )),
                Ok(_) => None,
            };
            if let Some((span, m)) = problem {
                self.r.error(&span, m).key("params");
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        if value.as_str().is_some_and(|s| s.contains("{{")) {
            return Some(value);
        }
        match coerce(ty, &value) {
            Ok(v) => Some(v),
            Err(why) => {
                let span = self.span_of(&node, ks);
                self.r
                    .error(&span, format!("parameter `{name}`: {why}"))
                    .key("params");
                None
            }
        }
    }

    /// Every string with references in a value, with where its text starts (see
    /// [`TemplateSite`]); a reference that does not parse is reported. Values nest at most
    /// [`MAX_VALUE_DEPTH`] deep.
    fn templates(
        &mut self,
        node: Node,
        ks: &Span,
        depth: usize,
        out: &mut Vec<(TextAt, Template)>,
    ) {
        if depth > MAX_VALUE_DEPTH {
            let span = self.span_of(&node, ks);
            self.r
                .error(
                    &span,
                    format!("a parameter's value nests more than {MAX_VALUE_DEPTH} deep"),
                )
                .key("params");
            return;
        }
        if let Some(secret) = secret_node(&node) {
            let problem = match &secret {
                Ok((text, _)) => crate::secret::parse(text).err(),
                Err(()) => Some("a secret reference is text (`secret = \"env:NAME\"`)".into()),
            };
            if let Some(why) = problem {
                let span = match &secret {
                    Ok((_, span)) => span.clone(),
                    Err(()) => self.span_of(&node, ks),
                };
                self.r.error(&span, why).key("params");
            }
            return;
        }
        if let Some(s) = node.value().and_then(|v| v.as_str()) {
            let at = self.text_at(&node, ks, s);
            match Template::parse(s) {
                Ok(Some(t)) => out.push((at, t)),
                Ok(None) => {}
                Err(e) => {
                    self.r
                        .error(&at.file_span(&e.span), e.message)
                        .key("params");
                }
            }
            return;
        }
        let children: Vec<(Span, Node)> = match node.entries() {
            Some(entries) => entries.into_iter().map(|(_, s, n)| (s, n)).collect(),
            None => node
                .elements()
                .unwrap_or_default()
                .into_iter()
                .map(|n| (n.span().unwrap_or_else(|| ks.clone()), n))
                .collect(),
        };
        for (span, child) in children {
            self.templates(child, &span, depth + 1, out);
        }
    }

    /// Where the text of string `s`, the value of `node`, is in the file.
    fn text_at(&self, node: &Node, ks: &Span, s: &str) -> TextAt {
        let span = self.span_of(node, ks);
        let raw = self.r.text().get(span.clone()).unwrap_or("");
        let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else {
            1
        };
        let exact = raw.len() >= 2 * quote && raw.get(quote..raw.len() - quote) == Some(s);
        TextAt {
            start: if exact {
                span.start + quote
            } else {
                span.start
            },
            exact,
        }
    }

    fn depends_on(&mut self, node: &Node, ks: &Span, item: Option<&str>) -> Vec<Dependency> {
        let Some(elements) = node.elements() else {
            self.wrong_type(node, ks, "depends_on", "an array of ids", item);
            return Vec::new();
        };
        let mut out = Vec::new();
        for el in elements {
            let span = el.span().unwrap_or_else(|| ks.clone());
            if let Some(id) = el.value().and_then(|v| v.as_str()) {
                out.push(Dependency {
                    id: id.to_string(),
                    on: Condition::SUCCEEDED,
                    when: None,
                    span,
                    when_at: TextAt::default(),
                });
                continue;
            }
            let Some(fields) = el.entries() else {
                self.wrong_type(
                    &el,
                    ks,
                    "depends_on",
                    "an array of ids or `{ id = \"…\", on = \"…\" }` tables",
                    item,
                );
                continue;
            };
            let mut dep_id = None;
            let mut on = Condition::SUCCEEDED;
            let (mut when, mut when_at) = (None, TextAt::default());
            for (k, fks, n) in fields {
                match k {
                    "id" => dep_id = self.string(&n, &fks, "id", item),
                    "on" => {
                        if let Some(s) = self.string(&n, &fks, "on", item) {
                            match Condition::parse(&s) {
                                Some(c) => on = c,
                                None => {
                                    let hint = did_you_mean(&s, Condition::NAMES)
                                        .or_else(|| condition_synonym(&s))
                                        .map(|h| format!("; did you mean `{h}`?"))
                                        .unwrap_or_default();
                                    let sp = self.span_of(&n, &fks);
                                    let d = self.r.error(
                                        &sp,
                                        format!(
                                            "unknown condition `{s}`: expected one of {}{hint}",
                                            Condition::NAMES.join(", ")
                                        ),
                                    );
                                    d.key("depends_on");
                                    if let Some(i) = item {
                                        d.item(i);
                                    }
                                }
                            }
                        }
                    }
                    "if" => {
                        if let Some(text) = self.string(&n, &fks, "if", item) {
                            when_at = self.text_at(&n, &fks, &text);
                            match ValueCondition::parse(&text) {
                                Ok(c) => when = Some(c),
                                Err(e) => {
                                    let d = self.r.error(&when_at.file_span(&e.span), e.message);
                                    d.key("depends_on");
                                    if let Some(i) = item {
                                        d.item(i);
                                    }
                                }
                            }
                        }
                    }
                    other => {
                        self.unknown_key(other, &fks, &["id", "on", "if"], "a dependency", item)
                    }
                }
            }
            match dep_id {
                Some(id) => out.push(Dependency {
                    id,
                    on,
                    when,
                    span,
                    when_at,
                }),
                None => {
                    let d = self.r.error(&span, "a dependency table needs an `id`");
                    d.key("depends_on");
                    if let Some(i) = item {
                        d.item(i);
                    }
                }
            }
        }
        out
    }
}

/// The condition meant by a word from other tools' vocabulary (ADF's "Upon Success", Airflow's
/// trigger rules, ...), which edit distance does not find.
fn condition_synonym(word: &str) -> Option<&'static str> {
    match word.to_lowercase().replace(['_', '-', ' '], "").as_str() {
        "success" | "sucess" | "succes" | "succeed" | "uponsuccess" | "allsuccess" => {
            Some("succeeded")
        }
        "failure" | "fail" | "error" | "uponfailure" | "allfailed" => Some("failed"),
        "completion" | "complete" | "done" | "always" | "alldone" | "uponcompletion" => {
            Some("completed")
        }
        "skip" | "uponskip" | "allskipped" => Some("skipped"),
        _ => None,
    }
}

fn fields_has(node: &Node, key: &str) -> bool {
    node.entries()
        .is_some_and(|e| e.iter().any(|(k, _, _)| *k == key))
}

pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The type of a parameter declared by its value: a TOML date (without time) is a date.
fn type_of_node(node: &Node) -> ValueType {
    match *node {
        // A secret is text once resolved.
        _ if secret_node(node).is_some() => ValueType::String,
        Node::Table(_) | Node::Item(Item::Table(_)) => ValueType::Table,
        Node::Item(Item::ArrayOfTables(_)) => ValueType::Array,
        Node::Item(Item::None) => ValueType::Any,
        Node::Item(Item::Value(v)) | Node::Value(v) => match v {
            Value::String(_) => ValueType::String,
            Value::Integer(_) | Value::Float(_) => ValueType::Number,
            Value::Boolean(_) => ValueType::Bool,
            Value::Datetime(d) if d.value().time.is_none() => ValueType::Date,
            Value::Datetime(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::InlineTable(_) => ValueType::Table,
        },
    }
}

/// Any TOML node -> JSON: values as below, tables (`[notebook.params.x]`) as objects, arrays of
/// tables as arrays of objects.
fn node_to_json(n: Node) -> serde_json::Value {
    if let Some(v) = n.value() {
        return to_json(v);
    }
    if let Some(entries) = n.entries() {
        return table_json(
            entries
                .into_iter()
                .map(|(k, _, child)| (k.to_string(), node_to_json(child)))
                .collect(),
        );
    }
    serde_json::Value::Array(
        n.elements()
            .unwrap_or_default()
            .into_iter()
            .map(node_to_json)
            .collect(),
    )
}

/// TOML value -> JSON value (datetimes become their TOML text).
fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::String(s) => J::String(s.value().clone()),
        Value::Integer(i) => J::from(*i.value()),
        Value::Float(f) => serde_json::Number::from_f64(*f.value()).map_or(J::Null, J::Number),
        Value::Boolean(b) => J::Bool(*b.value()),
        Value::Datetime(d) => J::String(d.value().to_string()),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Value::InlineTable(t) => {
            table_json(t.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
        }
    }
}

/// A table's JSON, where `{ secret = "…" }` is a secret reference ([`crate::secret::MARKER`]).
fn table_json(mut fields: serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    if fields.len() == 1 {
        if let Some(serde_json::Value::String(text)) = fields.remove("secret") {
            return serde_json::json!({ crate::secret::MARKER: text });
        }
    }
    serde_json::Value::Object(fields)
}

/// The reference text of a `{ secret = … }` table (`Some(Err)` when it is not text).
fn secret_node(node: &Node) -> Option<Result<(String, Span), ()>> {
    let entries = (*node).entries()?;
    match entries.as_slice() {
        [("secret", span, value)] => Some(match value.value().and_then(|v| v.as_str()) {
            Some(text) => Ok((
                text.to_string(),
                value.span().unwrap_or_else(|| span.clone()),
            )),
            None => Err(()),
        }),
        _ => None,
    }
}

/// Digits then a unit, as Spark reads memory sizes: `512m`, `28g`, `1gb`.
fn is_memory_size(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let unit = lower.trim_start_matches(|c: char| c.is_ascii_digit());
    let digits = &lower[..lower.len() - unit.len()];
    !digits.is_empty()
        && digits.len() <= 12
        && ["k", "m", "g", "t", "kb", "mb", "gb", "tb"].contains(&unit)
}

/// Digits then a unit, as Livy reads `ttl`: `90s`, `30m`, `2h`, `1d`.
fn is_duration(text: &str) -> bool {
    let unit = text.trim_start_matches(|c: char| c.is_ascii_digit());
    let digits = &text[..text.len() - unit.len()];
    !digits.is_empty() && digits.len() <= 12 && ["ms", "s", "m", "min", "h", "d"].contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the parser reads is documented (docs/metadata.md through `keys::KEY_DOCS`),
    /// so the editor has help for each.
    #[test]
    fn every_key_the_parser_reads_is_documented() {
        use crate::keys::{doc, Section};
        let read: &[(Section, &[&str])] = &[
            (Section::Top, TOP_KEYS),
            (Section::Pool, POOL_KEYS),
            (Section::Schedule, SCHEDULE_KEYS),
            (Section::Notify, NOTIFY_KEYS),
            (Section::Defaults, SETTING_KEYS),
            (Section::Step, STEP_KEYS),
            (Section::Step, SETTING_KEYS),
            (Section::Step, FOR_EACH_KEYS),
            (Section::DependsOn, &["id", "on", "if"]),
        ];
        let missing: Vec<String> = read
            .iter()
            .flat_map(|(section, keys)| {
                keys.iter()
                    .filter(|k| doc(*section, k).is_none())
                    .map(move |k| format!("{section:?}.{k}"))
            })
            .collect();
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }

    #[test]
    fn parameter_tables_in_any_toml_spelling_become_json_objects() {
        let text = r#"
[[notebook]]
id = "a"
path = "a.py"
params = { when = 2024-06-30, limits = { rows = 10 } }

[[notebook]]
id = "b"
path = "b.py"

[notebook.params.filters]
region = "EU"
codes = [1, 2]
"#;
        let (file, diags) = parse_pipeline("p.toml", text);
        assert!(diags.is_empty(), "{diags:?}");
        let steps = file.unwrap().steps;
        assert_eq!(steps[0].params["when"], "2024-06-30");
        assert_eq!(steps[0].params["limits"], serde_json::json!({ "rows": 10 }));
        let filters = serde_json::json!({ "region": "EU", "codes": [1, 2] });
        assert_eq!(steps[1].params["filters"], filters);
    }

    #[test]
    fn pool_session_fields_and_spark_conf_are_read() {
        let text = r#"
[spark_conf]
"spark.dynamicAllocation.enabled" = true
"spark.sql.shuffle.partitions" = 64
"spark.app.tag" = "nightly"

[pool]
platform = "emr"
executors = 3
executor_cores = 2
executor_memory = "4g"
driver_memory = "2g"
driver_cores = 1
jars = ["s3://bucket/lib.jar"]
py_files = ["s3://bucket/helpers.zip"]
queue = "etl"
heartbeat_timeout_secs = 600
ttl = "30m"
session_start_timeout_secs = 900
"#;
        let (file, diags) = parse_pipeline("p.toml", text);
        assert!(diags.is_empty(), "{diags:?}");
        let pool = file.unwrap().pool;
        assert_eq!(pool.platform, Platform::Emr);
        assert_eq!(pool.executor_memory.as_deref(), Some("4g"));
        assert_eq!(pool.driver_cores, Some(1));
        assert_eq!(pool.jars, ["s3://bucket/lib.jar"]);
        assert_eq!(pool.queue.as_deref(), Some("etl"));
        assert_eq!(pool.session_start_timeout_secs, 900);
        assert_eq!(pool.spark_conf["spark.dynamicAllocation.enabled"], "true");
        assert_eq!(pool.spark_conf["spark.sql.shuffle.partitions"], "64");
    }

    /// The editor shows a diagnostic beside its field: every for-each problem names its step
    /// and key, and the values written are located for the editor to show as written.
    #[test]
    fn for_each_problems_name_their_step_and_key_and_written_values_are_located() {
        let text = "[[notebook]]\nid = \"a\"\npath = \"a.py\"\nexpected_items = 20000\n\
             for_each_concurrency = 2\n[[notebook]]\nid = \"b\"\npath = \"a.py\"\n\
             for_each = \"{{ params.x\"\nexpected_items = 3\n";
        let (file, diags) = parse_pipeline("p.toml", text);
        let about: Vec<(Option<&str>, Option<&str>)> = diags
            .iter()
            .map(|d| (d.item.as_deref(), d.key.as_deref()))
            .collect();
        assert_eq!(
            about,
            [
                (Some("a"), Some("expected_items")),
                (Some("a"), Some("expected_items")),
                (Some("a"), Some("for_each_concurrency")),
                (Some("b"), Some("for_each")),
            ],
            "{diags:?}"
        );
        let b = &file.expect("parses").steps[1];
        let written: Vec<(&str, &str)> = b
            .spans
            .for_each
            .iter()
            .map(|(k, at)| (k.as_str(), &text[at.clone()]))
            .collect();
        assert_eq!(
            written,
            [("expected_items", "3"), ("for_each", "\"{{ params.x\"")]
        );
    }

    #[test]
    fn settings_written_on_an_entry_are_told_from_those_of_defaults() {
        let text = "[defaults]\nretry = 2\nslots = 2\n[[notebook]]\nid = \"a\"\npath = \"a.py\"\nretry = 2\ntimeout_secs = 60\n";
        let (file, diags) = parse_pipeline("p.toml", text);
        assert!(diags.is_empty(), "{diags:?}");
        let step = &file.unwrap().steps[0];
        let written: Vec<&str> = step.spans.settings.keys().map(String::as_str).collect();
        assert_eq!(
            written,
            ["retry", "timeout_secs"],
            "slots comes from [defaults]"
        );
        assert_eq!((step.settings.retry, step.settings.slots), (2, 2));
    }

    #[test]
    fn session_start_timeout_defaults_to_twenty_minutes() {
        let (file, diags) = parse_pipeline("p.toml", "[pool]\nexecutors = 1\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(file.unwrap().pool.session_start_timeout_secs, 1200);
    }

    #[test]
    fn synapse_pools_must_use_a_node_size_and_memory_follows_from_cores() {
        let ok = "[pool]\nplatform = \"synapse\"\nexecutors = 2\nexecutor_cores = 8\n";
        let (file, diags) = parse_pipeline("p.toml", ok);
        assert!(diags.is_empty(), "{diags:?}");
        let pool = file.unwrap().pool;
        assert_eq!(pool.executor_memory.as_deref(), Some("56g"));
        assert_eq!(pool.driver_cores, Some(8));
        assert_eq!(pool.driver_memory.as_deref(), Some("56g"));

        let bad = "[pool]\nplatform = \"synapse\"\nexecutor_cores = 6\ndriver_cores = 4\ndriver_memory = \"32g\"\n";
        let (_, diags) = parse_pipeline("p.toml", bad);
        let messages: Vec<_> = diags.iter().map(|d| (d.line, d.message.clone())).collect();
        assert_eq!(diags.len(), 2, "{messages:?}");
        assert_eq!(diags[0].line, 3);
        assert!(
            diags[0].message.contains("no node size with 6 cores"),
            "{messages:?}"
        );
        assert!(
            diags[0].message.contains("Small (4 cores, 28g)"),
            "{messages:?}"
        );
        assert_eq!(diags[1].line, 5);
        assert!(diags[1].message.contains("needs \"28g\""), "{messages:?}");
    }

    #[test]
    fn malformed_session_fields_are_located_diagnostics() {
        let text = "[pool]\nexecutor_memory = \"lots\"\nttl = \"soon\"\nplatform = \"databricks\"\njars = [1]\n\n[spark_conf]\nnested = { a = 1 }\n";
        let (_, diags) = parse_pipeline("p.toml", text);
        let lines: Vec<_> = diags.iter().map(|d| d.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 8], "{diags:?}");
        assert!(diags[0].message.contains("memory size"));
        assert!(diags[2].message.contains("livy, synapse, emr, hdinsight"));
    }
}
