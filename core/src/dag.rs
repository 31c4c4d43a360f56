//! From pipeline files to a [`Plan`]: sub-pipelines expanded into one DAG, every cross-step rule
//! checked (ids, dependencies, cycles, paths, slots), inactive steps bridged.

use crate::diag::{has_errors, Diagnostic, Reporter, Severity, Suggestions};
use crate::model::*;
use crate::notebook::{self, Format};
use crate::parse::parse_pipeline;
use crate::source::{parent, resolve, PathError, Sources};
use crate::template::{coerce, RunInfo, Source, ValueType};
use crate::value_condition::ValueCondition;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

mod references;
pub use references::{ReferenceChoice, ReferenceScope};

mod graph;
pub use graph::PlanGraph;

pub type TaskId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Notebook,
    /// The end of a sub-pipeline: takes no time and no slots; it succeeds when no inner
    /// notebook failed, fails when one did, and is skipped when all inner ones were skipped.
    PipelineEnd,
    /// A for-each (`copy_table`): takes no time and no slots, waits for every iteration
    /// (`copy_table[orders]`, …) and settles from them as a sub-pipeline's end does: failed
    /// when one failed (or was cancelled), skipped when all were skipped, succeeded otherwise.
    /// Its dependents wait for it.
    ForEach,
}

impl TaskKind {
    /// Whether the task runs a notebook (the others take no time and settle themselves).
    pub fn runs_notebook(self) -> bool {
        self == TaskKind::Notebook
    }
}

/// One schedulable unit of the expanded DAG.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    /// Namespaced id: `dims/load_customers` for a notebook of sub-pipeline `dims`.
    pub id: String,
    pub kind: TaskKind,
    /// Notebook path relative to the root pipeline's folder (empty for a pipeline end).
    pub path: String,
    /// As written: strings may hold `{{ … }}` references, resolved when the task starts.
    pub params: BTreeMap<String, serde_json::Value>,
    pub settings: RunSettings,
    /// The [`ParamScope`] its references read (`params.…`, `tasks.…`).
    pub scope: usize,
    /// Conditions on values that must all hold for it to run, checked once its dependencies'
    /// outcomes hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<TaskCondition>,
    /// On a for-each's own task: its items and settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_each: Option<crate::for_each::ForEach>,
    /// On an iteration of a for-each: which, and its item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iteration: Option<crate::for_each::Iteration>,
}

/// A condition on values a task runs under: the `if` of one of its dependencies (of a
/// `[[pipeline]]` entry's dependency, for the notebooks the sub-pipeline starts with; of an
/// inactive step's, for the steps bridged around it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskCondition {
    /// The task the dependency names (a sub-pipeline's end for a sub-pipeline).
    pub dependency: String,
    #[serde(rename = "if")]
    pub condition: ValueCondition,
    /// The [`ParamScope`] its references read: the file where it is written.
    pub scope: usize,
}

/// The parameters of one included copy of a pipeline file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamScope {
    /// What the ids of its steps start with: `""` for the root file, `dims/` inside `dims`.
    pub prefix: String,
    /// The scope of the including file; `None` for the root, whose values a run gives.
    pub parent: Option<usize>,
    /// The file's `[params]`.
    pub params: BTreeMap<String, ParamDecl>,
    /// The values the including `[[pipeline]]` entry passes (its `params`, as written; their
    /// references read the parent scope).
    pub given: BTreeMap<String, serde_json::Value>,
}

impl ParamScope {
    /// The root file's scope: its values come from the run.
    pub fn root(params: BTreeMap<String, ParamDecl>) -> ParamScope {
        ParamScope {
            prefix: String::new(),
            parent: None,
            params,
            given: BTreeMap::new(),
        }
    }
}

impl Task {
    /// Slots the task holds while running (a pipeline end holds none).
    pub fn slots(&self) -> u32 {
        match self.kind {
            TaskKind::Notebook => self.settings.slots,
            TaskKind::PipelineEnd | TaskKind::ForEach => 0,
        }
    }

    /// What the task takes by estimate. A for-each whose list is read at run time stands for
    /// its iterations, which run side by side: one iteration's estimate, so that the critical
    /// path through it is not understated before the run knows them.
    pub fn estimate_secs(&self) -> f64 {
        match self.kind {
            TaskKind::Notebook => self.settings.estimate_secs,
            TaskKind::ForEach if self.expands() => self.settings.estimate_secs,
            TaskKind::PipelineEnd | TaskKind::ForEach => 0.0,
        }
    }
}

/// A dependency as declared (before bridging), for display.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeclaredEdge {
    pub from: String,
    pub to: String,
    pub on: Condition,
}

/// Why a step is not among a plan's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftOut {
    /// `active = false`, on the step or on a sub-pipeline around it.
    Inactive,
    /// Its dependencies can never hold whatever happens in a run (for example it waits for an
    /// inactive step to fail): it is skipped in every run, and a warning says why.
    NeverRuns,
}

/// A step left out of runs, and the edges added around it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InactiveStep {
    pub id: String,
    pub kind: TaskKind,
    pub why: LeftOut,
    pub bridged: Vec<DeclaredEdge>,
}

/// The validated, expanded pipeline: what the scheduler runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub name: String,
    pub description: Option<String>,
    pub pool: Pool,
    /// Active tasks in a topological order: every dependency comes before its dependents.
    pub tasks: Vec<Task>,
    /// Incoming dependencies of each task, after bridging, with merged conditions.
    pub deps: Vec<Vec<(TaskId, Condition)>>,
    /// Outgoing edges of each task.
    pub dependents: Vec<Vec<TaskId>>,
    pub inactive: Vec<InactiveStep>,
    /// Every declared dependency, inactive steps included.
    pub declared: Vec<DeclaredEdge>,
    /// Parameter scopes: the root file's first, every scope after its parent.
    pub scopes: Vec<ParamScope>,
    /// The run is cancelled after this long (the root file's top-level `timeout_secs`).
    pub timeout_secs: Option<u64>,
    /// The root file's `[schedule]`, its `params` checked against this plan. Not part of the
    /// plan's JSON (the run log's copy of what ran): the API shows it on its own.
    #[serde(skip)]
    pub schedule: Option<crate::schedule::Schedule>,
    /// The root file's rule for runs of the pipeline at once (the server's, not the plan's
    /// JSON either).
    #[serde(skip)]
    pub concurrency: crate::overlap::Concurrency,
    /// The root file's `[[notify]]` (not part of the plan's JSON: webhooks are secrets).
    #[serde(skip)]
    pub notify: Vec<crate::notify::Notify>,
}

/// Result of loading a pipeline: the plan when there are no errors, and every diagnostic.
#[derive(Debug, Clone, Serialize)]
pub struct Loaded {
    pub plan: Option<Plan>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Sub-pipelines nest at most this deep; the root file is level 1.
pub const MAX_NESTING: usize = 32;
/// A plan has at most this many tasks (notebooks and sub-pipeline ends, after expansion: every
/// `[[pipeline]]` entry copies all the steps of its file).
pub const MAX_TASKS: u64 = 100_000;
/// One load reads at most this many distinct pipeline files.
pub const MAX_FILES: usize = 1_000;
/// One load reads at most this many bytes of pipeline files in all.
pub const MAX_TOTAL_BYTES: usize = 64 * 1024 * 1024;
/// A plan has at most this many dependencies: declared ones once sub-pipelines are expanded
/// (copied with every copy of their file, and to every notebook a sub-pipeline starts with),
/// then those bridged around inactive steps (each of its dependencies to each dependent).
pub const MAX_EDGES: usize = 1_000_000;

/// What a pipeline amounts to, found without expanding it: every file read, parsed and checked
/// once, sizes counted per file. Cheap enough for a listing of many pipelines.
#[derive(Debug, Clone, Serialize)]
pub struct Outline {
    /// The root file's `name`, when it parsed.
    pub name: Option<String>,
    /// Tasks of the expanded plan, inactive steps included; saturates at `MAX_TASKS + 1`.
    pub tasks: u64,
    /// Active notebooks of the expanded plan; saturates at `MAX_TASKS + 1`.
    pub notebooks: u64,
    /// Every problem found in the files themselves (not those found when the plan is built,
    /// such as inactive steps that cannot be bridged).
    pub diagnostics: Vec<Diagnostic>,
    /// The root file's `[schedule]`, as read (its `params` are checked against the plan only
    /// by [`load`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<crate::schedule::Schedule>,
}

/// A scheduled run's overrides, as a run given them would take them: each where it is
/// written, then whether a run starts with all of them (parameters without a default).
fn check_schedule(plan: &Plan, schedule: &crate::schedule::Schedule, r: &mut Reporter) {
    let mut ok = true;
    for (key, value) in &schedule.params {
        if let Err(why) = crate::params::override_of(plan, key, value) {
            let at = schedule
                .spans
                .params
                .get(key)
                .unwrap_or(&schedule.spans.table);
            r.error(at, format!("[schedule] {why}")).key("params");
            ok = false;
        }
    }
    let root = plan.scopes.first().map(|s| &s.params);
    for (name, decl) in root.into_iter().flatten() {
        if decl.default.is_none() && !schedule.params.contains_key(name) {
            r.error(
                &schedule.spans.table,
                format!(
                    "[schedule] `params` must give `{name}` ({} without a default in [params]): \
                     nobody is asked for it when a schedule starts the run",
                    decl.ty.a()
                ),
            )
            .key("params");
            ok = false;
        }
    }
    if !ok {
        return;
    }
    let run = RunInfo {
        id: 0,
        trigger_ms: 0,
    };
    if let Err(why) = crate::params::bind(plan, &schedule.params, run) {
        r.error(
            &schedule.spans.table,
            format!("a scheduled run could not start: {why}"),
        )
        .key("schedule");
    }
}

/// Reads, checks and expands the pipeline file `root` (a path inside `sources`).
pub fn load(root: &str, sources: &dyn Sources) -> Loaded {
    let walk = Walk::run(root, sources);
    let mut diagnostics = walk.diags;
    let plan = match walk.files.first() {
        Some(root_file) if !has_errors(&diagnostics) => {
            // No errors: the walk left no cycle and the sizes are within the limits, so the
            // expansion is bounded by MAX_TASKS nodes and MAX_NESTING levels.
            match Expanded::of(&walk.files, &root_file.file) {
                Ok(expanded) => {
                    let (mut plan, mut found) = expanded.plan();
                    if let (Some(plan), Some(schedule)) = (&mut plan, &root_file.file.schedule) {
                        let mut r = Reporter::new(&root_file.path, &root_file.text);
                        check_schedule(plan, schedule, &mut r);
                        found.extend(r.out);
                        plan.schedule = Some(schedule.clone());
                    }
                    if let Some(plan) = &mut plan {
                        plan.concurrency = root_file.file.concurrency;
                        plan.notify.clone_from(&root_file.file.notify);
                    }
                    let usable = !has_errors(&found);
                    diagnostics.extend(found);
                    plan.filter(|_| usable)
                }
                Err(too_many) => {
                    diagnostics.push(too_many);
                    None
                }
            }
        }
        _ => None,
    };
    sort_diagnostics(root, &mut diagnostics);
    Loaded { plan, diagnostics }
}

/// [`load`], then every notebook the plan runs is read and parsed as a run would before
/// starting it: a notebook that cannot run is an error before Spark starts, located in the
/// notebook (cell and line), and there is no plan.
pub fn load_with_notebooks(root: &str, sources: &dyn Sources) -> Loaded {
    let mut loaded = load(root, sources);
    check_notebooks(root, &mut loaded, |path, format| {
        notebook_diagnostics_of(sources, path, format)
    });
    loaded
}

/// The rule of [`load_with_notebooks`] on notebook diagnostics from anywhere: adds what
/// `diagnostics_of` finds in each notebook the plan runs (each path once), and leaves no plan
/// when one is an error. The browser has each notebook's diagnostics from the server (the
/// bundle), not its text.
pub fn check_notebooks(
    root: &str,
    loaded: &mut Loaded,
    mut diagnostics_of: impl FnMut(&str, Format) -> Vec<Diagnostic>,
) {
    let Some(plan) = &loaded.plan else {
        return;
    };
    let mut checked = BTreeSet::new();
    for task in &plan.tasks {
        if task.kind != TaskKind::Notebook || !checked.insert(task.path.as_str()) {
            continue;
        }
        // Load checked the extension: every notebook path names a format.
        let Some(format) = Format::from_path(&task.path) else {
            continue;
        };
        loaded
            .diagnostics
            .extend(diagnostics_of(&task.path, format));
    }
    if has_errors(&loaded.diagnostics) {
        loaded.plan = None;
    }
    sort_diagnostics(root, &mut loaded.diagnostics);
}

/// What a run finds reading and parsing one notebook: its diagnostics, or why it cannot be
/// read.
pub fn notebook_diagnostics_of(
    sources: &dyn Sources,
    path: &str,
    format: Format,
) -> Vec<Diagnostic> {
    match sources.read(path) {
        Ok(text) => notebook::parse(path, &text, format).diagnostics,
        Err(why) => vec![Diagnostic::new(
            path,
            1,
            1,
            Severity::Error,
            format!("cannot read notebook `{path}`: {why}"),
        )],
    }
}

/// Reads and checks the pipeline file `root` and its sub-pipelines, and counts what they
/// expand to, without expanding them.
pub fn outline(root: &str, sources: &dyn Sources) -> Outline {
    let walk = Walk::run(root, sources);
    let mut diagnostics = walk.diags;
    sort_diagnostics(root, &mut diagnostics);
    let root_file = walk.files.first();
    Outline {
        name: root_file.map(|f| f.file.name.clone()),
        tasks: root_file.map_or(0, |f| f.tasks),
        notebooks: root_file.map_or(0, |f| f.notebooks),
        diagnostics,
        schedule: root_file.and_then(|f| f.file.schedule.clone()),
    }
}

/// The root file's problems first, then by file and place.
fn sort_diagnostics(root: &str, diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.file != root, &a.file, a.line, a.col).cmp(&(b.file != root, &b.file, b.line, b.col))
    });
}

/// Checks one pipeline given as text, with other files from `sources`.
pub fn load_text(root: &str, text: &str, sources: &dyn Sources) -> Loaded {
    struct Overlay<'a> {
        root: &'a str,
        text: &'a str,
        rest: &'a dyn Sources,
    }
    impl Sources for Overlay<'_> {
        fn read(&self, path: &str) -> Result<String, String> {
            if path == self.root {
                Ok(self.text.to_string())
            } else {
                self.rest.read(path)
            }
        }
        fn exists(&self, path: &str) -> bool {
            path == self.root || self.rest.exists(path)
        }
    }
    load(
        root,
        &Overlay {
            root,
            text,
            rest: sources,
        },
    )
}

struct FullNode {
    id: String,
    kind: TaskKind,
    path: String,
    params: BTreeMap<String, serde_json::Value>,
    settings: RunSettings,
    active: bool,
    scope: usize,
    /// The nodes whose values its parameters read (`tasks.…`).
    reads: Vec<usize>,
    /// Its conditions on values, each with the nodes whose values it reads.
    conditions: Vec<(TaskCondition, Vec<usize>)>,
    /// Where the step's id is written, for diagnostics found when the plan is built.
    at: Diagnostic,
    for_each: Option<crate::for_each::ForEach>,
    iteration: Option<crate::for_each::Iteration>,
}

/// What the plan does with a node, decided in topological order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    /// Active, with dependencies that may hold: a task of the plan.
    Runs,
    /// Inactive, with dependencies on tasks: its dependents are bridged to those tasks.
    Bridged,
    /// Known before the run: an inactive node whose dependencies all hold anyway counts as
    /// succeeded; a node whose dependencies can never hold is skipped.
    Settled(Outcome),
}

/// What a step of a file refers to, once checked.
enum Target {
    /// A notebook, by its path inside the sources.
    Notebook(String),
    /// A sub-pipeline: its path, and the index of its file among those read when it could be
    /// read, parsed and included (no cycle, within the limits).
    Pipeline(String, Option<usize>),
    /// A path that could not be used (reported).
    Unusable,
}

/// One pipeline file, read, parsed and checked once however often it is included.
struct FileInfo {
    path: String,
    /// The file's text, for diagnostics found once the files it includes are read.
    text: String,
    file: PipelineFile,
    targets: Vec<Target>,
    /// Per step, the steps of the same file it depends on (unknown ids and itself left out).
    deps: Vec<Vec<(usize, Condition)>>,
    /// Per step, where its id is written (with the item and key), to locate later diagnostics.
    id_at: Vec<Diagnostic>,
    /// Per step, where its path is written.
    path_at: Vec<Diagnostic>,
    /// Tasks the file expands to, inactive ones included, saturating at `MAX_TASKS + 1`.
    tasks: u64,
    /// Active notebooks the file expands to, if it is itself active; saturating likewise.
    notebooks: u64,
    /// Levels of files from this one down, itself included.
    height: usize,
}

/// The files of a pipeline, read depth-first with an explicit stack (chains of files are
/// bounded by MAX_NESTING, never by the call stack).
struct Walk<'s> {
    sources: &'s dyn Sources,
    diags: Vec<Diagnostic>,
    /// Files that parsed; the root is the first.
    files: Vec<FileInfo>,
    /// Every path tried: the index of its file, or `Err` with why it cannot be read (repeated
    /// at each step that includes it) or `None` when it did not parse (reported once).
    seen: HashMap<String, Result<usize, Option<String>>>,
    /// The root file's pool, which every file's slots are checked against.
    pool: Pool,
    /// Bytes of pipeline files read so far.
    bytes: usize,
    /// Whether a limit on reading (MAX_FILES, MAX_TOTAL_BYTES) was reached: no further file is
    /// read, and the first reason was reported (once is enough).
    stopped: bool,
}

impl<'s> Walk<'s> {
    fn run(root: &str, sources: &'s dyn Sources) -> Walk<'s> {
        let mut w = Walk {
            sources,
            diags: Vec::new(),
            files: Vec::new(),
            seen: HashMap::new(),
            pool: Pool::default(),
            bytes: 0,
            stopped: false,
        };
        let Some(r) = w.open(root, None) else {
            return w;
        };
        /// A file being walked, and the next of its steps to look at.
        struct Frame {
            file: usize,
            step: usize,
        }
        let mut stack = vec![Frame { file: r, step: 0 }];
        let mut on_stack = vec![true];
        while let Some(top) = stack.last_mut() {
            let (f, i) = (top.file, top.step);
            if i == w.files[f].targets.len() {
                w.finish(f);
                on_stack[f] = false;
                stack.pop();
                continue;
            }
            top.step += 1;
            let Target::Pipeline(path, _) = &w.files[f].targets[i] else {
                continue;
            };
            let path = path.clone();
            // `f` is at level `stack.len()`; what it includes one level further down.
            let level = stack.len();
            let known = w.seen.get(&path).cloned();
            let child = match known {
                Some(Ok(c)) if on_stack[c] => {
                    let from = stack.iter().position(|fr| fr.file == c).unwrap_or(0);
                    let chain = w.chain(stack[from..].iter().map(|fr| fr.file), &path);
                    w.at_path(f, i, format!("pipeline files form a cycle: {chain}"));
                    None
                }
                Some(Ok(c)) if level + w.files[c].height > MAX_NESTING => {
                    let chain = w.chain(stack.iter().map(|fr| fr.file), &path);
                    let below = w.files[c].height - 1;
                    w.at_path(
                        f,
                        i,
                        format!(
                            "sub-pipelines are nested more than {MAX_NESTING} deep: {chain}, \
                             and `{path}` includes {below} more level(s)"
                        ),
                    );
                    None
                }
                Some(Ok(c)) => Some(c),
                Some(Err(why)) => {
                    if let Some(why) = why {
                        w.at_path(f, i, format!("cannot read pipeline file `{path}`: {why}"));
                    }
                    None
                }
                None if level >= MAX_NESTING => {
                    let chain = w.chain(stack.iter().map(|fr| fr.file), &path);
                    w.at_path(
                        f,
                        i,
                        format!("sub-pipelines are nested more than {MAX_NESTING} deep: {chain}"),
                    );
                    None
                }
                None if w.stopped || w.seen.len() >= MAX_FILES => {
                    if !w.stopped {
                        w.stopped = true;
                        w.at_path(
                            f,
                            i,
                            format!(
                                "the pipeline and its sub-pipelines use more than {MAX_FILES} \
                                 pipeline files; `{path}` and any further ones are not read"
                            ),
                        );
                    }
                    None
                }
                None => {
                    let c = w.open(&path, Some((f, i)));
                    if let Some(c) = c {
                        on_stack.push(true);
                        // `on_stack[c]` above indexes by file: one entry per file opened.
                        assert_eq!(on_stack.len(), w.files.len(), "one flag per file");
                        stack.push(Frame { file: c, step: 0 });
                    }
                    c
                }
            };
            if let Target::Pipeline(_, slot) = &mut w.files[f].targets[i] {
                *slot = child;
            }
        }
        w.check_bindings();
        w
    }

    /// What each `[[pipeline]]` entry passes: parameters its file declares, of their types,
    /// and every one without a default.
    fn check_bindings(&mut self) {
        for info in &self.files {
            let mut r = Reporter::new(&info.path, &info.text);
            for (step, target) in info.file.steps.iter().zip(&info.targets) {
                let Target::Pipeline(path, Some(c)) = target else {
                    continue;
                };
                let declared = &self.files[*c].file.params;
                for (name, value) in &step.params {
                    let at = step.spans.params.get(name).cloned().unwrap_or(0..0);
                    let Some(decl) = declared.get(name) else {
                        let hint =
                            crate::diag::did_you_mean(name, declared.keys().map(String::as_str))
                                .map(|h| format!("; did you mean `{h}`?"))
                                .unwrap_or_else(|| {
                                    format!(
                                        "; it declares {}",
                                        if declared.is_empty() {
                                            "none (its `[params]` table)".to_string()
                                        } else {
                                            names(declared.keys())
                                        }
                                    )
                                });
                        r.error(
                            &at,
                            format!(
                                "sub-pipeline `{}` (`{path}`) has no parameter `{name}`{hint}",
                                step.id
                            ),
                        )
                        .item(&step.id)
                        .key("params");
                        continue;
                    };
                    let templated = step.templates.iter().find(|t| t.param == *name && t.top);
                    let problem = match templated {
                        Some(site) => {
                            match site.template.check(&mut |src| scope_type(&info.file, src)) {
                                Ok(t) if !decl.ty.admits(t) => Some(format!(
                                    "`{name}` of `{path}` is {}, but this gives {}",
                                    decl.ty.a(),
                                    t.a()
                                )),
                                // Reported where the file was read.
                                _ => None,
                            }
                        }
                        None if step.templates.iter().any(|t| t.param == *name) => None,
                        None => coerce(decl.ty, value)
                            .err()
                            .map(|why| format!("`{name}` of `{path}`: {why}")),
                    };
                    if let Some(m) = problem {
                        r.error(&at, m).item(&step.id).key("params");
                    }
                }
                for (name, decl) in declared {
                    if decl.default.is_none() && !step.params.contains_key(name) {
                        r.error(
                            &step.spans.path,
                            format!(
                                "sub-pipeline `{}` needs parameter `{name}` ({} without a \
                                 default in `{path}`): give it in this entry's `params`",
                                step.id,
                                decl.ty.a()
                            ),
                        )
                        .item(&step.id)
                        .key("params");
                    }
                }
            }
            self.diags.extend(r.out);
        }
    }

    /// `a.toml -> b.toml -> … -> last`, through the given files.
    fn chain(&self, files: impl Iterator<Item = usize>, last: &str) -> String {
        let mut names: Vec<&str> = files.map(|f| self.files[f].path.as_str()).collect();
        names.push(last);
        names.join(" -> ")
    }

    /// An error at the path of step `i` of file `f`.
    fn at_path(&mut self, f: usize, i: usize, message: String) {
        let mut d = self.files[f].path_at[i].clone();
        d.severity = Severity::Error;
        d.message = message;
        self.diags.push(d);
    }

    /// Counts file `f` once every file it includes is counted; reports where its expansion
    /// crosses MAX_TASKS, unless an included file crossed it first.
    fn finish(&mut self, f: usize) {
        let cap = MAX_TASKS + 1;
        let (mut tasks, mut notebooks, mut height) = (0u64, 0u64, 1usize);
        let mut crossed = None;
        let info = &self.files[f];
        for (i, (step, target)) in info.file.steps.iter().zip(&info.targets).enumerate() {
            let (adds, active_notebooks, child_over) = match target {
                Target::Pipeline(_, Some(c)) => {
                    let child = &self.files[*c];
                    height = height.max(child.height + 1);
                    let active = if step.active { child.notebooks } else { 0 };
                    (1 + child.tasks, active, child.tasks > MAX_TASKS)
                }
                Target::Notebook(_) => {
                    // A literal for-each adds its iterations beside its own task.
                    let iterations = match step.for_each.as_ref().map(|f| &f.items) {
                        Some(crate::for_each::Items::List(items)) => items.len() as u64,
                        _ => 0,
                    };
                    let notebooks = if step.active { iterations.max(1) } else { 0 };
                    (1 + iterations, notebooks, false)
                }
                Target::Pipeline(_, None) | Target::Unusable => (1, 0, false),
            };
            if tasks <= MAX_TASKS && tasks + adds > MAX_TASKS && !child_over {
                crossed = Some((i, tasks, adds));
            }
            tasks = (tasks + adds).min(cap);
            notebooks = (notebooks + active_notebooks).min(cap);
        }
        if let Some((i, before, adds)) = crossed {
            let step = &info.file.steps[i];
            let what = match &info.targets[i] {
                Target::Pipeline(path, _) => format!(
                    "sub-pipeline `{}` adds {adds} tasks (every step of `{path}`, copied for \
                     each `[[pipeline]]` entry that includes it)",
                    step.id
                ),
                _ => format!("`{}` is one more", step.id),
            };
            let message = format!(
                "the plan would have more than {MAX_TASKS} tasks: {what} to the {before} before \
                 it; include fewer copies or split the pipeline into several"
            );
            let mut d = match step.kind {
                StepKind::Pipeline => info.path_at[i].clone(),
                StepKind::Notebook => info.id_at[i].clone(),
            };
            d.severity = Severity::Error;
            d.message = message;
            self.diags.push(d);
        }
        let info = &mut self.files[f];
        (info.tasks, info.notebooks, info.height) = (tasks, notebooks, height);
    }

    /// Reads, parses and checks one file on its own; `from` is the step that includes it (none
    /// for the root). Returns its index among the files, or `None` when it cannot be used.
    fn open(&mut self, path: &str, from: Option<(usize, usize)>) -> Option<usize> {
        let text = match self.sources.read(path) {
            Ok(t) => t,
            Err(why) => {
                let msg = format!("cannot read pipeline file `{path}`: {why}");
                match from {
                    Some((f, i)) => self.at_path(f, i, msg),
                    None => self
                        .diags
                        .push(Diagnostic::new(path, 1, 1, Severity::Error, msg)),
                }
                self.seen.insert(path.to_string(), Err(Some(why)));
                return None;
            }
        };
        self.bytes += text.len();
        if let (Some((f, i)), true) = (from, self.bytes > MAX_TOTAL_BYTES) {
            self.stopped = true;
            self.at_path(
                f,
                i,
                format!(
                    "the pipeline and its sub-pipelines hold more than {} MiB of metadata; \
                     `{path}` and any further files are not read",
                    MAX_TOTAL_BYTES / (1024 * 1024)
                ),
            );
            self.seen.insert(path.to_string(), Err(None));
            return None;
        }
        let (parsed, diags) = parse_pipeline(path, &text);
        self.diags.extend(diags);
        let Some(file) = parsed else {
            self.seen.insert(path.to_string(), Err(None));
            return None;
        };
        let is_root = from.is_none();
        if is_root {
            self.pool = file.pool.clone();
        }
        let mut r = Reporter::new(path, &text);
        let dir = parent(path).to_string();

        // Ids must be unique within the file.
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, step) in file.steps.iter().enumerate() {
            if let Some(&first) = index.get(step.id.as_str()) {
                let (line, _) = line_of(&r, &file.steps[first].spans.id);
                r.error(
                    &step.spans.id,
                    format!("duplicate id `{}`: already used on line {line}", step.id),
                )
                .item(&step.id)
                .key("id");
            } else {
                index.insert(&step.id, i);
            }
        }

        // Dependencies must name a step of this file, not the step itself.
        let mut deps = Vec::with_capacity(file.steps.len());
        let mut suggestions = Suggestions::default();
        for (i, step) in file.steps.iter().enumerate() {
            let mut known = Vec::new();
            for dep in &step.depends_on {
                match index.get(dep.id.as_str()) {
                    _ if dep.id == step.id => {
                        r.error(&dep.span, format!("`{}` depends on itself", step.id))
                            .item(&step.id)
                            .key("depends_on");
                    }
                    Some(&j) => {
                        debug_assert_ne!(i, j, "a step named like this one is this one");
                        known.push((j, dep.on));
                    }
                    None => {
                        let hint = match suggestions.closest(&dep.id, index.keys().copied()) {
                            Some(h) => format!("; did you mean `{h}`?"),
                            // Ids of the including file are out of reach: say so.
                            None if !is_root => {
                                " in this file (a sub-pipeline's steps depend only on steps of \
                                 the same file; put the dependency on the `[[pipeline]]` entry)"
                                    .to_string()
                            }
                            None => String::new(),
                        };
                        r.error(
                            &dep.span,
                            format!("`{}` depends on unknown id `{}`{hint}", step.id, dep.id),
                        )
                        .item(&step.id)
                        .key("depends_on");
                    }
                }
            }
            deps.push(known);
        }
        cycles(&file, &index, &mut r);
        check_references(&file, &index, &deps, &mut r);

        // Paths, slots, and what each step refers to.
        let mut targets = Vec::with_capacity(file.steps.len());
        let mut id_at = Vec::with_capacity(file.steps.len());
        let mut path_at = Vec::with_capacity(file.steps.len());
        for step in &file.steps {
            let mut at = r.at(&step.spans.id, Severity::Warning, String::new());
            at.item(&step.id).key("depends_on");
            id_at.push(at);
            let mut at = r.at(&step.spans.path, Severity::Error, String::new());
            at.item(&step.id).key("path");
            path_at.push(at);
            let resolved = match resolve(&dir, &step.path) {
                Ok(p) => Some(p),
                Err(e) => {
                    let msg = match e {
                        PathError::Absolute => format!(
                            "path `{}` must be relative to the pipeline file's folder",
                            step.path
                        ),
                        PathError::Escapes => format!(
                            "path `{}` leaves the pipeline's folder; notebooks must stay inside it",
                            step.path
                        ),
                        PathError::Empty => "path must not be empty".to_string(),
                    };
                    r.error(&step.spans.path, msg).item(&step.id).key("path");
                    None
                }
            };
            let ext_ok = match step.kind {
                StepKind::Notebook => [".ipynb", ".py", ".sql"]
                    .iter()
                    .any(|e| step.path.to_ascii_lowercase().ends_with(e)),
                StepKind::Pipeline => step.path.to_ascii_lowercase().ends_with(".toml"),
            };
            // An empty path was reported above; naming its extension too would only repeat it.
            if !ext_ok && !step.path.trim().is_empty() {
                let want = match step.kind {
                    StepKind::Notebook => "a .ipynb, .py or .sql notebook",
                    StepKind::Pipeline => "a .toml pipeline file",
                };
                r.error(
                    &step.spans.path,
                    format!("path `{}` must name {want}", step.path),
                )
                .item(&step.id)
                .key("path");
            }
            let capacity = self.pool.capacity();
            if step.kind == StepKind::Notebook && step.settings.slots > capacity {
                let (span, from) = match &step.spans.slots {
                    Some(span) => (span.clone(), ""),
                    None => (step.spans.entry.clone(), " (the `slots` of [defaults])"),
                };
                r.error(
                    &span,
                    format!(
                        "`{}` wants {} slots{from} but the pool has {} ({} executors × {} cores)",
                        step.id,
                        step.settings.slots,
                        capacity,
                        self.pool.executors,
                        self.pool.executor_cores
                    ),
                )
                .item(&step.id)
                .key("slots");
            }
            targets.push(match (&step.kind, resolved) {
                (StepKind::Notebook, Some(p)) => {
                    if ext_ok && !self.sources.exists(&p) {
                        r.error(
                            &step.spans.path,
                            format!(
                                "notebook file `{}` does not exist (looked for `{p}`)",
                                step.path
                            ),
                        )
                        .item(&step.id)
                        .key("path");
                    }
                    Target::Notebook(p)
                }
                (StepKind::Pipeline, Some(p)) if ext_ok => Target::Pipeline(p, None),
                _ => Target::Unusable,
            });
        }
        self.diags.extend(r.out);
        let n = self.files.len();
        self.files.push(FileInfo {
            path: path.to_string(),
            text,
            file,
            targets,
            deps,
            id_at,
            path_at,
            tasks: 0,
            notebooks: 0,
            height: 1,
        });
        self.seen.insert(path.to_string(), Ok(n));
        Some(n)
    }
}

/// The graph of every step of every included copy of every file, before bridging.
struct Expanded {
    nodes: Vec<FullNode>,
    /// (from, to, condition) over `nodes`, declared dependencies with sub-pipelines expanded.
    edges: Vec<(usize, usize, Condition)>,
    pool: Pool,
    name: String,
    description: Option<String>,
    scopes: Vec<ParamScope>,
    timeout_secs: Option<u64>,
}

/// Where a step sits in the expanded graph.
struct Placed {
    /// Nodes that receive the step's incoming dependencies.
    entries: Vec<usize>,
    /// The node its dependents wait for.
    exit: usize,
    /// No dependency inside its own file: a sub-pipeline's roots take the sub-pipeline's own
    /// dependencies.
    is_root: bool,
}

impl Expanded {
    /// Expands the walked files from the root (the first), depth-first with an explicit stack;
    /// an error where the dependencies would exceed MAX_EDGES (a dependency of or on a
    /// sub-pipeline is copied for each notebook it reaches, and with each copy of the file).
    fn of(files: &[FileInfo], root: &PipelineFile) -> Result<Expanded, Diagnostic> {
        /// One included copy of a file being expanded.
        struct Frame {
            file: usize,
            prefix: String,
            inactive: bool,
            /// One entry per step looked at so far (`None` for a step with nothing to run).
            placed: Vec<Option<Placed>>,
            /// The end node of the sub-pipeline being expanded above this frame, and whether
            /// that sub-pipeline is active.
            open: Option<(usize, bool)>,
            scope: usize,
        }
        let mut ex = Expanded {
            nodes: Vec::new(),
            edges: Vec::new(),
            pool: root.pool.clone(),
            name: root.name.clone(),
            description: root.description.clone(),
            scopes: vec![ParamScope::root(root.params.clone())],
            timeout_secs: root.timeout_secs,
        };
        let mut stack = vec![Frame {
            file: 0,
            prefix: String::new(),
            inactive: false,
            placed: Vec::new(),
            open: None,
            scope: 0,
        }];
        // The steps of the copy that was expanded last, for its including frame.
        let mut inner: Vec<Placed> = Vec::new();
        while let Some(top) = stack.last_mut() {
            let info = &files[top.file];
            let i = top.placed.len();
            if let Some((end, active)) = top.open.take() {
                let mut entries = Vec::new();
                // An inactive sub-pipeline is bridged as a whole, like an inactive notebook:
                // its dependents wait for its own dependencies, so those go to its end and the
                // notebooks inside (all inactive) are not wired to it.
                if active {
                    for child in &inner {
                        ex.edges.push((child.exit, end, Condition::ANY));
                    }
                    for child in inner.iter().filter(|c| c.is_root) {
                        entries.extend(child.entries.iter().copied());
                    }
                }
                if entries.is_empty() {
                    entries.push(end);
                }
                top.placed.push(Some(Placed {
                    entries,
                    exit: end,
                    is_root: info.file.steps[i].depends_on.is_empty(),
                }));
                continue;
            }
            let Some(step) = info.file.steps.get(i) else {
                // `tasks.…` references and dependencies with an `if` name steps of the same
                // file, placed by now.
                let index: HashMap<&str, usize> = info
                    .file
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(k, s)| (s.id.as_str(), k))
                    .collect();
                if info
                    .file
                    .steps
                    .iter()
                    .any(|s| !s.templates.is_empty() || s.for_each.is_some())
                {
                    for (j, step) in info.file.steps.iter().enumerate() {
                        let Some(node) = top.placed[j].as_ref().map(|p| p.exit) else {
                            continue;
                        };
                        let for_each = step.for_each.as_ref().and_then(|f| match &f.items {
                            crate::for_each::Items::Reference(r) => Some(&r.template),
                            crate::for_each::Items::List(_) => None,
                        });
                        let templates = step.templates.iter().map(|s| &s.template);
                        for template in templates.chain(for_each) {
                            for (e, _) in template.refs() {
                                let target = e
                                    .source
                                    .task()
                                    .and_then(|t| index.get(t))
                                    .and_then(|&k| top.placed[k].as_ref().map(|p| p.exit));
                                if let Some(t) = target {
                                    ex.nodes[node].reads.push(t);
                                }
                            }
                        }
                    }
                }
                for (k, step) in info.file.steps.iter().enumerate() {
                    let Some(to) = &top.placed[k] else { continue };
                    for dep in &step.depends_on {
                        let (Some(condition), Some(from)) = (
                            &dep.when,
                            index
                                .get(dep.id.as_str())
                                .and_then(|&j| top.placed[j].as_ref()),
                        ) else {
                            continue;
                        };
                        let reads: Vec<usize> = condition
                            .references()
                            .iter()
                            .flat_map(|r| r.template.refs())
                            .filter_map(|(e, _)| index.get(e.source.task()?))
                            .filter_map(|&j| top.placed[j].as_ref().map(|p| p.exit))
                            .collect();
                        let gate = TaskCondition {
                            dependency: ex.nodes[from.exit].id.clone(),
                            condition: condition.clone(),
                            scope: top.scope,
                        };
                        for &e in &to.entries {
                            ex.nodes[e].conditions.push((gate.clone(), reads.clone()));
                        }
                    }
                }
                for (k, (placed, deps)) in top.placed.iter().zip(&info.deps).enumerate() {
                    let Some(to) = placed else { continue };
                    for &(j, on) in deps {
                        let Some(from) = &top.placed[j] else { continue };
                        if ex.edges.len() + to.entries.len() > MAX_EDGES {
                            let mut d = info.id_at[k].clone();
                            d.severity = Severity::Error;
                            d.message = format!(
                                "the plan would have more than {MAX_EDGES} dependencies once \
                                 sub-pipelines are expanded, reached at `{}{}` depending on \
                                 `{}`: each copy of a file repeats its dependencies, and a \
                                 dependency of a sub-pipeline is repeated for each notebook it \
                                 starts with; depend on fewer steps, or split the pipeline",
                                top.prefix, info.file.steps[k].id, info.file.steps[j].id,
                            );
                            return Err(d);
                        }
                        for &e in &to.entries {
                            ex.edges.push((from.exit, e, on));
                        }
                    }
                }
                inner = top.placed.drain(..).flatten().collect();
                stack.pop();
                continue;
            };
            let full_id = format!("{}{}", top.prefix, step.id);
            let active = step.active && !top.inactive;
            let at = info.id_at[i].clone();
            let scope = top.scope;
            match &info.targets[i] {
                Target::Notebook(p) => {
                    let placed = match &step.for_each {
                        None => {
                            let n =
                                ex.node(full_id, TaskKind::Notebook, p.clone(), step, active, at);
                            Placed {
                                entries: vec![n],
                                exit: n,
                                is_root: step.depends_on.is_empty(),
                            }
                        }
                        Some(f) => ex.for_each(full_id, p, step, f, active, at),
                    };
                    for &n in placed.entries.iter().chain([&placed.exit]) {
                        ex.nodes[n].scope = scope;
                    }
                    top.placed.push(Some(placed));
                }
                Target::Pipeline(_, Some(c)) => {
                    let end = ex.node(
                        full_id.clone(),
                        TaskKind::PipelineEnd,
                        String::new(),
                        step,
                        active,
                        at,
                    );
                    ex.nodes[end].scope = scope;
                    top.open = Some((end, active));
                    ex.scopes.push(ParamScope {
                        prefix: format!("{full_id}/"),
                        parent: Some(scope),
                        params: files[*c].file.params.clone(),
                        given: step.params.clone(),
                    });
                    let child = Frame {
                        file: *c,
                        prefix: format!("{full_id}/"),
                        inactive: !active,
                        placed: Vec::new(),
                        open: None,
                        scope: ex.scopes.len() - 1,
                    };
                    stack.push(child);
                }
                Target::Pipeline(_, None) | Target::Unusable => top.placed.push(None),
            }
        }
        Ok(ex)
    }

    /// A for-each step: a literal list becomes one notebook node per item (taking the step's
    /// dependencies) and the for-each's own node waiting for them all; a list read at run time
    /// is the for-each's node alone, taking the step's dependencies, expanded by the run.
    fn for_each(
        &mut self,
        id: String,
        path: &str,
        step: &Step,
        for_each: &crate::for_each::ForEach,
        active: bool,
        at: Diagnostic,
    ) -> Placed {
        use crate::for_each::{iteration_ids, Items, Iteration};
        let is_root = step.depends_on.is_empty();
        let group = self.node(id.clone(), TaskKind::ForEach, path.into(), step, active, at);
        self.nodes[group].for_each = Some(for_each.clone());
        // An inactive for-each is bridged as a whole, like an inactive sub-pipeline: its
        // dependents wait for its own dependencies, and it has no iterations.
        let (Items::List(items), true) = (&for_each.items, active) else {
            return Placed {
                entries: vec![group],
                exit: group,
                is_root,
            };
        };
        let ids = iteration_ids(&id, items);
        let mut entries = Vec::with_capacity(items.len());
        for (index, (iteration_id, item)) in ids.into_iter().zip(items).enumerate() {
            let at = self.nodes[group].at.clone();
            let n = self.node(
                iteration_id,
                TaskKind::Notebook,
                path.into(),
                step,
                active,
                at,
            );
            self.nodes[n].iteration = Some(Iteration {
                group: id.clone(),
                index: index as u32,
                item: item.clone(),
            });
            self.edges.push((n, group, Condition::ANY));
            entries.push(n);
        }
        Placed {
            entries,
            exit: group,
            is_root,
        }
    }

    fn node(
        &mut self,
        id: String,
        kind: TaskKind,
        path: String,
        step: &Step,
        active: bool,
        at: Diagnostic,
    ) -> usize {
        self.nodes.push(FullNode {
            id,
            kind,
            path,
            params: step.params.clone(),
            settings: step.settings.clone(),
            active,
            scope: 0,
            reads: Vec::new(),
            conditions: Vec::new(),
            at,
            for_each: None,
            iteration: None,
        });
        self.nodes.len() - 1
    }

    /// The plan, and what was found building it; no plan when bridging would exceed
    /// MAX_EDGES.
    fn plan(&self) -> (Option<Plan>, Vec<Diagnostic>) {
        let (name, description) = (self.name.clone(), self.description.clone());
        let pool = self.pool.clone();
        let declared: Vec<DeclaredEdge> = self
            .edges
            .iter()
            .map(|&(f, t, on)| DeclaredEdge {
                from: self.nodes[f].id.clone(),
                to: self.nodes[t].id.clone(),
                on,
            })
            .collect();
        // Incoming edges per node, merged by source.
        let n = self.nodes.len();
        let mut incoming: Vec<BTreeMap<usize, Condition>> = vec![BTreeMap::new(); n];
        // The same edges by source, so that settling or bridging a node visits only its
        // dependents (ascending, as the plan's order of bridged edges wants).
        let mut outgoing: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        for &(f, t, on) in &self.edges {
            let c = incoming[t].get(&f).map_or(on, |c| c.and(on));
            incoming[t].insert(f, c);
            outgoing[f].insert(t);
        }
        // Bridged edges allowed on top of the expanded ones.
        let mut bridge_budget = MAX_EDGES.saturating_sub(self.edges.len());
        let order = topo_order(n, &incoming);
        let mut inactive = Vec::new();
        // Warnings about steps that never run, errors about inactive steps that cannot be
        // bridged.
        let mut found = Vec::new();
        let mut fate = vec![Fate::Runs; n];
        // Dependencies on settled nodes, taken out of `incoming`: (node, condition, outcome).
        let mut settled_deps: Vec<Vec<(usize, Condition, Outcome)>> = vec![Vec::new(); n];
        // The first inactive node bridged into a dependency that can never hold, with the
        // dependent's condition on it, for the warning.
        let mut never_via: Vec<Option<(usize, Condition)>> = vec![None; n];
        // Conditions on values per node, with the nodes they read: a step bridged around an
        // inactive one inherits the inactive step's.
        let mut conditions: Vec<Vec<(TaskCondition, Vec<usize>)>> =
            self.nodes.iter().map(|n| n.conditions.clone()).collect();
        // In topological order, so that chains of inactive nodes collapse and settled outcomes
        // flow on to dependents before those are looked at.
        for &v in &order {
            let node = &self.nodes[v];
            let broken = settled_deps[v]
                .iter()
                .find(|&&(_, c, o)| !c.accepts(o))
                .copied();
            let never = incoming[v]
                .iter()
                .find(|&(_, &c)| c == Condition::NEVER)
                .map(|(&u, _)| u);
            // A sub-pipeline (a for-each) whose every notebook (iteration) is skipped in every
            // run is skipped too.
            let all_inner_skipped = !node.kind.runs_notebook()
                && incoming[v].is_empty()
                && !settled_deps[v].is_empty()
                && settled_deps[v]
                    .iter()
                    .all(|&(_, _, o)| o == Outcome::Skipped);
            fate[v] = if broken.is_some() || never.is_some() || all_inner_skipped {
                Fate::Settled(Outcome::Skipped)
            } else if node.active {
                Fate::Runs
            } else if incoming[v].is_empty() && conditions[v].is_empty() {
                Fate::Settled(Outcome::Succeeded)
            } else {
                Fate::Bridged
            };
            let mut bridged = Vec::new();
            match fate[v] {
                Fate::Runs => continue,
                Fate::Settled(outcome) => {
                    incoming[v].clear();
                    for w in std::mem::take(&mut outgoing[v]) {
                        if let Some(c) = incoming[w].remove(&v) {
                            settled_deps[w].push((v, c, outcome));
                        }
                    }
                }
                Fate::Bridged => {
                    let ins: Vec<(usize, Condition)> =
                        incoming[v].iter().map(|(&u, &c)| (u, c)).collect();
                    let outs = std::mem::take(&mut outgoing[v]);
                    // Every dependent gets every dependency: refuse before allocating them.
                    let adds = ins.len().saturating_mul(outs.len());
                    if adds > bridge_budget {
                        let mut d = node.at.clone();
                        d.severity = Severity::Error;
                        d.message = format!(
                            "the plan would have more than {MAX_EDGES} dependencies: bridging \
                             inactive `{}` adds {adds} ({} dependencies × {} dependents); make \
                             it active, or depend on fewer steps through it",
                            node.id,
                            ins.len(),
                            outs.len()
                        );
                        found.push(d);
                        return (None, found);
                    }
                    bridge_budget -= adds;
                    for w in outs {
                        let into = &mut incoming[w];
                        let Some(c2) = into.remove(&v) else {
                            continue;
                        };
                        // An inactive step counts as succeeded when its conditions on values
                        // hold too: a dependent waiting for its success waits for them.
                        match (c2.accepts(Outcome::Succeeded), c2.accepts(Outcome::Skipped)) {
                            _ if conditions[v].is_empty() => {}
                            (true, false) => {
                                let inherited = conditions[v].clone();
                                conditions[w].extend(inherited);
                            }
                            (false, true) => {
                                let mut d = self.nodes[w].at.clone();
                                d.severity = Severity::Error;
                                d.message = format!(
                                    "`{}` waits for `{}` to be skipped, but `{}` is inactive \
                                     and is skipped when an `if` of its dependencies does not \
                                     hold, which cannot be expressed; make `{}` active",
                                    self.nodes[w].id,
                                    self.nodes[v].id,
                                    self.nodes[v].id,
                                    self.nodes[v].id
                                );
                                found.push(d);
                            }
                            _ => {}
                        }
                        // `v` is skipped when any one of its conditions fails: an "or" across
                        // steps, which dependencies (all of which must hold) cannot say.
                        if ins.len() > 1
                            && c2.accepts(Outcome::Skipped)
                            && !c2.accepts(Outcome::Succeeded)
                        {
                            let names: Vec<String> = ins
                                .iter()
                                .map(|&(u, _)| format!("`{}`", self.nodes[u].id))
                                .collect();
                            let mut d = self.nodes[w].at.clone();
                            d.severity = Severity::Error;
                            d.message = format!(
                                "`{}` waits for `{}` to be skipped, but `{}` is inactive and is \
                                 skipped when any of its dependencies on {} does not hold, which \
                                 cannot be expressed; make `{}` active, or depend on those steps \
                                 directly",
                                self.nodes[w].id,
                                self.nodes[v].id,
                                self.nodes[v].id,
                                names.join(", "),
                                self.nodes[v].id
                            );
                            found.push(d);
                        }
                        for &(u, c1) in &ins {
                            let c = c1.through_inactive(c2);
                            if c == Condition::NEVER {
                                never_via[w].get_or_insert((v, c2));
                            }
                            let merged = into.get(&u).map_or(c, |old| old.and(c));
                            into.insert(u, merged);
                            outgoing[u].insert(w);
                            bridged.push(DeclaredEdge {
                                from: self.nodes[u].id.clone(),
                                to: self.nodes[w].id.clone(),
                                on: c,
                            });
                        }
                    }
                }
            }
            let why = if node.active {
                LeftOut::NeverRuns
            } else {
                LeftOut::Inactive
            };
            // Warn where the cause is, not on every step the skip flows on to.
            let cause = match (broken, never) {
                _ if !node.active => None,
                (Some((u, c, o)), _) => self.settled_cause(u, c, o),
                (None, Some(u)) => Some(match never_via[v] {
                    Some((via, on)) => format!(
                        "it depends on `{}` with `on = \"{}\"`, but `{}` is inactive, and an \
                         inactive step only counts as succeeded or skipped",
                        self.nodes[via].id,
                        on.name(),
                        self.nodes[via].id
                    ),
                    None => format!(
                        "its conditions on `{}` contradict each other, so they never all hold",
                        self.nodes[u].id
                    ),
                }),
                (None, None) => None,
            };
            if let Some(cause) = cause {
                let mut d = node.at.clone();
                d.message = format!("`{}` is skipped in every run: {cause}", node.id);
                found.push(d);
            }
            inactive.push(InactiveStep {
                id: node.id.clone(),
                kind: node.kind,
                why,
                bridged,
            });
        }
        let mut new_index = vec![usize::MAX; n];
        let mut tasks = Vec::new();
        for &v in &order {
            if fate[v] == Fate::Runs {
                new_index[v] = tasks.len();
                let node = &self.nodes[v];
                tasks.push(Task {
                    id: node.id.clone(),
                    kind: node.kind,
                    path: node.path.clone(),
                    params: node.params.clone(),
                    settings: node.settings.clone(),
                    scope: node.scope,
                    conditions: conditions[v].iter().map(|(c, _)| c.clone()).collect(),
                    for_each: node.for_each.clone(),
                    iteration: node.iteration.clone(),
                });
            }
        }
        let mut deps = vec![Vec::new(); tasks.len()];
        let mut dependents = vec![Vec::new(); tasks.len()];
        for &v in &order {
            if fate[v] != Fate::Runs {
                continue;
            }
            // What is left in `incoming` comes from tasks: everything else was bridged or
            // settled.
            for (&u, &c) in &incoming[v] {
                deps[new_index[v]].push((new_index[u], c));
                dependents[new_index[u]].push(new_index[v]);
            }
        }
        // A task reads values only of tasks that run: an inactive step has none.
        for &v in &order {
            if fate[v] != Fate::Runs {
                continue;
            }
            let params = self.nodes[v].reads.iter().map(|&u| (u, "params"));
            let ifs = conditions[v]
                .iter()
                .flat_map(|(_, reads)| reads.iter().map(|&u| (u, "depends_on")));
            for (u, key) in params.chain(ifs) {
                if fate[u] == Fate::Runs {
                    continue;
                }
                let mut d = self.nodes[v].at.clone();
                d.severity = Severity::Error;
                d.key = Some(key.into());
                d.message = format!(
                    "`{}` reads values of `{}`, which never runs ({}), so it would have none",
                    self.nodes[v].id,
                    self.nodes[u].id,
                    if self.nodes[u].active {
                        "its dependencies never hold"
                    } else {
                        "inactive"
                    }
                );
                found.push(d);
            }
        }
        let plan = Plan {
            name,
            description,
            pool,
            tasks,
            deps,
            dependents,
            inactive,
            declared,
            scopes: self.scopes.clone(),
            timeout_secs: self.timeout_secs,
            schedule: None,
            concurrency: Default::default(),
            notify: Vec::new(),
        };
        (Some(plan), found)
    }

    /// Why the dependency on settled node `u` (which ends `outcome` in every run) never holds,
    /// or `None` when `u` is itself skipped in every run and was warned about.
    fn settled_cause(&self, u: usize, on: Condition, outcome: Outcome) -> Option<String> {
        let dep = &self.nodes[u];
        let wait = format!("it depends on `{}` with `on = \"{}\"`", dep.id, on.name());
        match (outcome, dep.active) {
            (Outcome::Succeeded, _) => Some(format!(
                "{wait}, but `{}` is inactive and counts as succeeded",
                dep.id
            )),
            (Outcome::Skipped, false) => Some(format!(
                "{wait}, but `{}` is inactive and counts as skipped, as its own dependencies \
                 never hold",
                dep.id
            )),
            _ => None,
        }
    }
}

/// Dependencies followed, in one file, to check that `tasks.…` references name upstream steps.
const MAX_UPSTREAM_VISITS: u64 = 50_000_000;

/// `` `a`, `b` and `c` ``.
fn names<'n>(names: impl Iterator<Item = &'n String>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The type of a `params.…` or `run.…` reference in `file`, or why it has none.
fn scope_type(file: &PipelineFile, src: &Source) -> Result<ValueType, String> {
    if let Some(t) = RunInfo::type_of(src) {
        return Ok(t);
    }
    match src {
        Source::Param(p) => file.params.get(p).map(|d| d.ty).ok_or_else(|| {
            let hint = crate::diag::did_you_mean(p, file.params.keys().map(String::as_str))
                .map(|h| format!("; did you mean `params.{h}`?"))
                .unwrap_or_else(|| {
                    if file.params.is_empty() {
                        " (declare it in the file's `[params]` table)".to_string()
                    } else {
                        format!("; the file declares {}", names(file.params.keys()))
                    }
                });
            format!("unknown parameter `{p}`{hint}")
        }),
        _ => Err(
            "a `[[pipeline]]` entry passes values known when the run starts (`params.…`, \
                  `run.…`), not task values"
                .into(),
        ),
    }
}

/// The type of reference `src` in step `i` of `file` (`upstream`: the steps `i` waits for), or
/// why it has none: a task's values only of a notebook upstream of the step.
fn reference_type(
    file: &PipelineFile,
    index: &HashMap<&str, usize>,
    upstream: &[bool],
    i: usize,
    src: &Source,
    suggestions: &mut Suggestions,
) -> Result<ValueType, String> {
    let Some(t) = src.task() else {
        return scope_type(file, src);
    };
    let Some(&j) = index.get(t) else {
        let hint = suggestions
            .closest(t, index.keys().copied())
            .map(|h| format!("; did you mean `{h}`?"))
            .unwrap_or_default();
        return Err(format!("unknown step `{t}` in `tasks.{t}`{hint}"));
    };
    if j == i {
        return Err(format!("`{t}` cannot read its own values"));
    }
    if file.steps[j].kind == StepKind::Pipeline {
        return Err(format!(
            "`{t}` is a sub-pipeline, which has no values; only notebooks set them"
        ));
    }
    if !upstream[j] {
        return Err(format!(
            "`{t}` is not upstream of `{}`: it may read values only of steps it depends on \
             (directly or through others); add `{t}` to its `depends_on`",
            file.steps[i].id
        ));
    }
    Ok(match src {
        Source::TaskValues(_, None) => ValueType::Table,
        _ => ValueType::Any,
    })
}

/// What is wrong with a `for_each` reference (`text`), given what checking it found: a
/// problem of the reference, or a type that is not a list.
fn for_each_problem(
    text: &str,
    checked: Result<ValueType, (std::ops::Range<usize>, String)>,
) -> Option<(std::ops::Range<usize>, String)> {
    match checked {
        Ok(t) if !ValueType::Array.admits(t) => Some((
            0..text.len(),
            format!("`for_each` needs a list, but `{text}` is {}", t.a()),
        )),
        Ok(_) => None,
        Err(e) => Some(e),
    }
}

/// Whether a value condition reads a task's values.
fn reads_tasks(c: &ValueCondition) -> bool {
    c.references()
        .iter()
        .any(|r| r.template.refs().any(|(e, _)| e.source.task().is_some()))
}

/// Checks the references in the steps' `params` and in the `if` of their dependencies:
/// parameters the file declares, values of notebooks upstream of the step, types.
fn check_references(
    file: &PipelineFile,
    index: &HashMap<&str, usize>,
    deps: &[Vec<(usize, Condition)>],
    r: &mut Reporter,
) {
    let mut suggestions = Suggestions::default();
    let mut visits = 0u64;
    for (i, step) in file.steps.iter().enumerate() {
        let conditions = step
            .depends_on
            .iter()
            .filter_map(|d| Some((d.when.as_ref()?, d.when_at)));
        let for_each = step.for_each.as_ref().and_then(|f| match &f.items {
            crate::for_each::Items::Reference(r) => Some(r),
            crate::for_each::Items::List(_) => None,
        });
        if step.templates.is_empty() && conditions.clone().next().is_none() && for_each.is_none() {
            continue;
        }
        // Everything `i` waits for, directly or not (an explicit stack), when it reads values.
        let reads = step
            .templates
            .iter()
            .map(|s| &s.template)
            .chain(for_each.map(|r| &r.template))
            .any(|t| t.refs().any(|(e, _)| e.source.task().is_some()))
            || conditions.clone().any(|(c, _)| reads_tasks(c));
        let mut upstream = vec![false; if reads { file.steps.len() } else { 0 }];
        let mut stack: Vec<usize> = Vec::new();
        if reads {
            stack.extend(deps[i].iter().map(|&(j, _)| j));
        }
        while let Some(j) = stack.pop() {
            if visits == MAX_UPSTREAM_VISITS {
                r.error(
                    &step.spans.id,
                    format!(
                        "the `tasks.…` references of this file take more than \
                         {MAX_UPSTREAM_VISITS} steps to check; split it into sub-pipelines"
                    ),
                )
                .item(&step.id)
                .key("params");
                return;
            }
            visits += 1;
            if !std::mem::replace(&mut upstream[j], true) {
                stack.extend(deps[j].iter().map(|&(k, _)| k));
            }
        }
        for site in &step.templates {
            let checked = site.template.check(&mut |src| {
                if step.kind == StepKind::Pipeline {
                    return scope_type(file, src);
                }
                reference_type(file, index, &upstream, i, src, &mut suggestions)
            });
            if let Err((at, m)) = checked {
                r.error(&site.at.file_span(&at), m)
                    .item(&step.id)
                    .key("params");
            }
        }
        if let Some(reference) = for_each {
            let checked = reference
                .template
                .check(&mut |src| reference_type(file, index, &upstream, i, src, &mut suggestions));
            if let Some((at, m)) = for_each_problem(&reference.text, checked) {
                r.error(&reference.at.file_span(&at), m)
                    .item(&step.id)
                    .key("for_each");
            }
        }
        for (c, at) in conditions {
            let checked = c
                .check(&mut |src| reference_type(file, index, &upstream, i, src, &mut suggestions));
            if let Err(e) = checked {
                r.error(&at.file_span(&e.span), e.message)
                    .item(&step.id)
                    .key("depends_on");
            }
        }
    }
}

/// Reports every dependency cycle among the steps of one file, with the whole cycle.
fn cycles(file: &PipelineFile, index: &HashMap<&str, usize>, r: &mut Reporter) {
    let mut g: DiGraph<usize, usize> = DiGraph::new();
    let ns: Vec<NodeIndex> = (0..file.steps.len()).map(|i| g.add_node(i)).collect();
    for (i, step) in file.steps.iter().enumerate() {
        for (d, dep) in step.depends_on.iter().enumerate() {
            if let Some(&j) = index.get(dep.id.as_str()) {
                if j != i {
                    // Edge from a step to what it depends on, so cycles read in
                    // "depends on" order.
                    g.add_edge(ns[i], ns[j], d);
                }
            }
        }
    }
    for scc in tarjan_scc(&g) {
        if scc.len() < 2 {
            continue;
        }
        let mut members: Vec<usize> = scc.iter().map(|n| g[*n]).collect();
        members.sort_unstable();
        let start = members[0];
        let path = cycle_through(&g, ns[start], &scc);
        let names: Vec<&str> = path.iter().map(|n| file.steps[g[*n]].id.as_str()).collect();
        let first = &file.steps[start];
        let next = &file.steps[g[path[1]]].id;
        let span = first
            .depends_on
            .iter()
            .find(|d| d.id == *next)
            .map_or(first.spans.id.clone(), |d| d.span.clone());
        r.error(
            &span,
            format!(
                "dependency cycle: {} (each depends on the next)",
                names.join(" -> ")
            ),
        )
        .item(&first.id)
        .key("depends_on");
    }
}

fn line_of(r: &Reporter, span: &std::ops::Range<usize>) -> (usize, usize) {
    let d = r.at(span, Severity::Error, String::new());
    (d.line, d.col)
}

/// A cycle through `start` inside one strongly connected component, ending at `start`.
fn cycle_through(g: &DiGraph<usize, usize>, start: NodeIndex, scc: &[NodeIndex]) -> Vec<NodeIndex> {
    // A set: a dense file has as many edges as its text allows, each looked up here.
    let scc: HashSet<NodeIndex> = scc.iter().copied().collect();
    let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(u) = queue.pop_front() {
        for v in g.neighbors(u) {
            if !scc.contains(&v) {
                continue;
            }
            if v == start {
                let mut path = vec![start];
                let mut cur = u;
                while cur != start {
                    path.push(cur);
                    cur = *prev
                        .get(&cur)
                        .expect("every node queued after `start` has its predecessor recorded");
                }
                path.push(start);
                let len = path.len();
                path[1..len - 1].reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(v) {
                e.insert(u);
                queue.push_back(v);
            }
        }
    }
    vec![start, start]
}

/// Kahn's algorithm, stable (lowest index first among ready nodes), so that plans keep the
/// file's order where dependencies allow. The graph is acyclic when this is called. Not
/// petgraph's `toposort` or `Topo`: they order by depth-first search or by a stack, and plans
/// would list their tasks in an order the files do not have.
fn topo_order(n: usize, incoming: &[BTreeMap<usize, Condition>]) -> Vec<usize> {
    let mut indegree: Vec<usize> = incoming.iter().map(BTreeMap::len).collect();
    let mut out_edges = vec![Vec::new(); n];
    for (t, ins) in incoming.iter().enumerate() {
        for &f in ins.keys() {
            out_edges[f].push(t);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(v) = ready.pop_first() {
        order.push(v);
        for &w in &out_edges[v] {
            indegree[w] -= 1;
            if indegree[w] == 0 {
                ready.insert(w);
            }
        }
    }
    order
}

impl Plan {
    pub fn index_of(&self, id: &str) -> Option<TaskId> {
        self.tasks.iter().position(|t| t.id == id)
    }

    /// Sum of estimated slot-seconds of all notebooks.
    pub fn total_work_slot_secs(&self) -> f64 {
        self.tasks
            .iter()
            .map(|t| t.estimate_secs() * f64::from(t.slots()))
            .sum()
    }
}
