//! Azure Synapse / Data Factory pipeline JSON (`{"name", "properties": {"activities", …}}`, as
//! in a workspace's git repository) -> Spool pipeline files.

use super::adf::{coerce, evaluate, parse_timespan, Source};
use super::draft::{unless_default, Draft, DraftStep, Ids, Param};
use super::graph::{closest_writable, either, writable, Fate, Graph, Removal};
use super::json::{self, to_toml, Obj};
use super::report::{Place, Report};
use super::{Converted, Ctx, Target};
use crate::diag::{did_you_mean, Suggestions};
use crate::model::{Condition, Outcome, RunSettings, StepKind};
use crate::source::Sources;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Deepest chain of `ExecutePipeline` activities followed.
const MAX_NESTING: usize = 16;
/// Most pipeline files one import writes (each distinct sub-pipeline call is one).
const MAX_FILES: usize = 256;

/// Bridged dependencies a finding lists by name (the rest are counted).
const LISTED_BRIDGES: usize = 10;

const ADF_CONDITIONS: [&str; 4] = ["Succeeded", "Failed", "Completed", "Skipped"];

/// Spark settings of a notebook activity that one shared session cannot honour per notebook.
const SPARK_SETTINGS: &[&str] = &[
    "sparkPool",
    "executorSize",
    "driverSize",
    "numExecutors",
    "conf",
    "configurationType",
    "targetSparkConfiguration",
    "sparkConfig",
];

/// Imports the Synapse pipeline `root_text` (read from `root_label`). Pipelines named by
/// `ExecutePipeline` activities are read from `pipelines` as `<name>.json`; each becomes a
/// file next to the main one.
pub fn import_synapse(
    root_label: &str,
    root_text: &str,
    pipelines: &dyn Sources,
    target: &Target,
) -> Converted {
    let mut im = Importer {
        ctx: Ctx::new(target.existing),
        pipelines,
        parsed: HashMap::new(),
        drafts: Vec::new(),
        files: Ids::default(),
        memo: HashMap::new(),
        stack: Vec::new(),
    };
    let main_stem = super::stem(target.main);
    im.files.take(main_stem);
    if let Some(p) = parse_pipeline(root_label, root_text, &mut im.ctx) {
        let mut bindings = Bindings::new();
        p.bind_defaults(&mut bindings);
        im.stack.push(p.name.clone());
        let draft = im.convert(&p, &bindings, None, target.main.to_string());
        im.drafts.insert(0, draft);
    }
    let Importer { ctx, drafts, .. } = im;
    ctx.finish(drafts)
}

/// A pipeline parameter's value in one conversion, or why it has none.
#[derive(Debug, Clone, PartialEq)]
enum Binding {
    Value(Value),
    Missing(String),
}

type Bindings = BTreeMap<String, Binding>;

struct PipelineParam {
    ty: String,
    default: Option<Value>,
}

struct Pipeline {
    name: String,
    file: String,
    description: Option<String>,
    params: BTreeMap<String, PipelineParam>,
    activities: Vec<Activity>,
}

impl Pipeline {
    /// Gives every parameter without a value in `bindings` its default value, if it has one.
    fn bind_defaults(&self, bindings: &mut Bindings) {
        for (name, param) in &self.params {
            bindings
                .entry(name.clone())
                .or_insert_with(|| match &param.default {
                    Some(v) => Binding::Value(v.clone()),
                    None => Binding::Missing(format!(
                        "run parameter `{name}` of `{}` has no value (no default, none passed)",
                        self.name
                    )),
                });
        }
    }
}

struct Activity {
    name: String,
    type_name: String,
    description: Option<String>,
    /// Upstream activity name and condition, one entry per upstream activity.
    depends_on: Vec<(String, Condition)>,
    retry: Option<u32>,
    retry_interval_secs: Option<u64>,
    timeout_secs: Option<u64>,
    inactive: bool,
    /// `onInactiveMarkAs` when it is not `Succeeded`.
    inactive_mark: Option<String>,
    body: Body,
}

enum Body {
    Notebook {
        /// The notebook's name, or why there is none (reported already).
        name: Result<String, String>,
        /// Where the name is in the input.
        name_field: &'static str,
        /// What the notebook is in the source tool, for the report.
        origin: String,
        params: Vec<NotebookParam>,
        ignored_settings: Vec<String>,
    },
    ExecutePipeline {
        pipeline: String,
        params: Vec<(String, Source)>,
        wait: bool,
    },
    /// An activity Spool cannot run; for containers, the activities inside.
    Other { inner: Vec<String> },
    /// Reported as an error already.
    Malformed,
}

struct NotebookParam {
    name: String,
    /// Where it is in the input (`typeProperties.baseParameters.x`).
    field: String,
    source: Source,
    ty: Option<String>,
}

fn parse_pipeline(label: &str, text: &str, ctx: &mut Ctx) -> Option<Pipeline> {
    let r = &mut ctx.report;
    let place = Place::file(label);
    let v = json::parse(text, &place, r)?;
    if v.get("resources").is_some() && v.get("properties").is_none() {
        r.error(
            &place,
            "this is an ARM template; import the pipeline's own JSON file (the `pipeline/` \
             folder of the workspace's git repository, or \"Download support files\" in Studio)",
        );
        return None;
    }
    let root = Obj::of(&v, place.clone(), "a pipeline file", r)?;
    let name = root.required_string("name", r);
    let props = match root.object("properties", r) {
        Some(p) => p,
        None => {
            if root.get("properties").is_none() {
                r.error(&root.at("properties"), "is missing");
            }
            return None;
        }
    };
    let description = props.string("description", r).map(str::to_string);
    let mut params = BTreeMap::new();
    if let Some(ps) = props.object("parameters", r) {
        for (pname, pv) in ps.map {
            let Some(p) = Obj::of(pv, ps.at(pname), "a parameter", r) else {
                continue;
            };
            let ty = p.string("type", r).unwrap_or("String").to_string();
            let default = p
                .get("defaultValue")
                .cloned()
                .and_then(|d| match coerce(&d, &ty) {
                    Ok(v) => Some(v),
                    Err(why) => {
                        r.error(&p.at("defaultValue"), why);
                        None
                    }
                });
            params.insert(pname.clone(), PipelineParam { ty, default });
        }
    }
    let Some(items) = props.array("activities", r) else {
        if props.get("activities").is_none() {
            r.error(&props.at("activities"), "is missing");
        }
        return None;
    };
    let mut activities = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = props.at(&format!("activities[{i}]"));
        if let Some(a) = parse_activity(item, at, &place, r) {
            activities.push(a);
        }
    }
    Some(Pipeline {
        name: name?.to_string(),
        file: label.to_string(),
        description,
        params,
        activities,
    })
}

impl Activity {
    /// Stands for an activity whose errors are reported, so that its dependents still find it.
    fn malformed(name: &str) -> Activity {
        Activity {
            name: name.to_string(),
            type_name: String::new(),
            description: None,
            depends_on: Vec::new(),
            retry: None,
            retry_interval_secs: None,
            timeout_secs: None,
            inactive: false,
            inactive_mark: None,
            body: Body::Malformed,
        }
    }
}

fn parse_activity(v: &Value, at: Place, file: &Place, r: &mut Report) -> Option<Activity> {
    let unnamed = Obj::of(v, at, "an activity", r)?;
    let name = unnamed.required_string("name", r)?;
    let a = Obj {
        map: unnamed.map,
        place: file.item(name),
    };
    let type_name = a.required_string("type", r).map(str::to_string);
    let mut depends_on: Vec<(String, Condition)> = Vec::new();
    for (i, dep) in a
        .array("dependsOn", r)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Some(d) = Obj::of(dep, a.at(&format!("dependsOn[{i}]")), "a dependency", r) else {
            continue;
        };
        let Some(upstream) = d.required_string("activity", r) else {
            continue;
        };
        let mut on: Option<Condition> = None;
        let conds = d.array("dependencyConditions", r).unwrap_or_default();
        for (j, c) in conds.iter().enumerate() {
            let parsed = c
                .as_str()
                .and_then(|s| Condition::parse(&s.to_ascii_lowercase()));
            match parsed {
                Some(c) => on = Some(on.map_or(c, |o| either(o, c))),
                None => {
                    let hint = c
                        .as_str()
                        .and_then(|s| did_you_mean(s, ADF_CONDITIONS))
                        .map(|h| format!("; did you mean `{h}`?"))
                        .unwrap_or_default();
                    r.error(
                        &d.at(&format!("dependencyConditions[{j}]")),
                        format!(
                            "unknown condition {c}: expected Succeeded, Failed, Completed or \
                             Skipped{hint}"
                        ),
                    )
                }
            }
        }
        if conds.is_empty() {
            r.error(&d.at("dependencyConditions"), "names no condition");
        }
        let Some(on) = on else { continue };
        // Several entries for the same upstream activity hold when any of them does.
        match depends_on.iter_mut().find(|(n, _)| n == upstream) {
            Some((_, old)) => *old = either(*old, on),
            None => depends_on.push((upstream.to_string(), on)),
        }
    }
    let policy = a.object("policy", r);
    let retry = policy.as_ref().and_then(|p| p.uint32("retry", 0, r));
    let retry_interval_secs = policy
        .as_ref()
        .and_then(|p| p.uint("retryIntervalInSeconds", 0, r));
    let timeout_secs = policy.as_ref().and_then(|p| {
        let s = p.string("timeout", r)?;
        parse_timespan(s)
            .map_err(|why| r.error(&p.at("timeout"), why))
            .ok()
    });
    let state = a.string("state", r).unwrap_or("Active");
    let inactive = state.eq_ignore_ascii_case("inactive");
    let inactive_mark = a
        .string("onInactiveMarkAs", r)
        .filter(|m| inactive && !m.eq_ignore_ascii_case("succeeded"))
        .map(str::to_string);
    let tp = a.object("typeProperties", r);
    let needs_body = matches!(
        type_name.as_deref(),
        Some("SynapseNotebook" | "DatabricksNotebook" | "ExecutePipeline")
    );
    if needs_body && tp.is_none() && a.get("typeProperties").is_none() {
        r.error(&a.at("typeProperties"), "is missing");
    }
    let body = match (type_name.as_deref(), tp) {
        (None, _) => Body::Malformed,
        (Some(t @ ("SynapseNotebook" | "DatabricksNotebook")), Some(tp)) => {
            notebook_body(t, &tp, r)
        }
        (Some("ExecutePipeline"), Some(tp)) => {
            let pipeline = tp
                .object("pipeline", r)
                .and_then(|p| p.required_string("referenceName", r));
            let Some(pipeline) = pipeline else {
                if tp.get("pipeline").is_none() {
                    r.error(&tp.at("pipeline"), "is missing");
                }
                return Some(Activity::malformed(name));
            };
            let params = tp
                .object("parameters", r)
                .map(|ps| {
                    ps.map
                        .iter()
                        .map(|(k, v)| (k.clone(), Source::of(v)))
                        .collect()
                })
                .unwrap_or_default();
            Body::ExecutePipeline {
                pipeline: pipeline.to_string(),
                params,
                wait: tp.bool("waitOnCompletion", r).unwrap_or(true),
            }
        }
        (Some(_), _) if needs_body => Body::Malformed,
        (Some(_), tp) => Body::Other {
            inner: tp.map(|tp| contained(tp.map)).unwrap_or_default(),
        },
    };
    Some(Activity {
        name: name.to_string(),
        type_name: type_name.unwrap_or_default(),
        description: a.string("description", r).map(str::to_string),
        depends_on,
        retry,
        retry_interval_secs,
        timeout_secs,
        inactive,
        inactive_mark,
        body,
    })
}

fn notebook_body(type_name: &str, tp: &Obj, r: &mut Report) -> Body {
    let databricks = type_name == "DatabricksNotebook";
    let (field, reference) = if databricks {
        ("notebookPath", tp.get("notebookPath"))
    } else {
        (
            "notebook.referenceName",
            tp.get("notebook").and_then(|n| n.get("referenceName")),
        )
    };
    let name = match reference.map(Source::of) {
        Some(Source::Literal(Value::String(s))) => Ok(s),
        Some(Source::Expression(e)) => Err(format!(
            "the notebook is chosen by the expression `{e}` at run time; Spool needs a fixed notebook"
        )),
        Some(Source::Literal(other)) => Err(format!("must be a string, found {other}")),
        None => Err("is missing".to_string()),
    };
    let origin = match &name {
        Ok(n) if databricks => format!("Databricks notebook `{n}`"),
        Ok(n) => format!("Synapse notebook `{n}`"),
        Err(_) => String::new(),
    };
    if let Err(why) = &name {
        r.error(&tp.at(field), why.clone());
    }
    let mut params = Vec::new();
    let params_key = if databricks {
        "baseParameters"
    } else {
        "parameters"
    };
    if let Some(ps) = tp.object(params_key, r) {
        for (pname, pv) in ps.map {
            let (source, ty) = if databricks {
                (Source::of(pv), Some("string".to_string()))
            } else {
                let Some(p) = Obj::of(pv, ps.at(pname), "a notebook parameter", r) else {
                    continue;
                };
                let ty = p.string("type", r).map(str::to_string);
                (Source::of(p.get("value").unwrap_or(&Value::Null)), ty)
            };
            params.push(NotebookParam {
                name: pname.clone(),
                field: format!("typeProperties.{params_key}.{pname}"),
                source,
                ty,
            });
        }
    }
    let ignored_settings = SPARK_SETTINGS
        .iter()
        .filter(|k| tp.get(k).is_some())
        .map(|k| k.to_string())
        .chain(databricks.then(|| "linkedServiceName".to_string()))
        .collect();
    Body::Notebook {
        name,
        name_field: field,
        origin,
        params,
        ignored_settings,
    }
}

/// Names and types of the activities inside a container (ForEach, If, Switch, Until).
fn contained(tp: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let mut lists: Vec<&Value> = [
        "activities",
        "ifTrueActivities",
        "ifFalseActivities",
        "defaultActivities",
    ]
    .iter()
    .filter_map(|k| tp.get(*k))
    .collect();
    if let Some(Value::Array(cases)) = tp.get("cases") {
        lists.extend(cases.iter().filter_map(|c| c.get("activities")));
    }
    for list in lists {
        for a in list.as_array().into_iter().flatten() {
            let name = a.get("name").and_then(Value::as_str).unwrap_or("?");
            let ty = a.get("type").and_then(Value::as_str).unwrap_or("?");
            out.push(format!("`{name}` ({ty})"));
            if let Some(Value::Object(inner)) = a.get("typeProperties") {
                out.extend(contained(inner));
            }
        }
    }
    out
}

struct Importer<'a> {
    ctx: Ctx<'a>,
    pipelines: &'a dyn Sources,
    /// Pipelines read so far by name (`None`: could not be read).
    parsed: HashMap<String, Option<Rc<Pipeline>>>,
    /// Sub-pipeline files written so far.
    drafts: Vec<Draft>,
    files: Ids,
    /// (pipeline name, parameter values) -> file already written for it.
    memo: HashMap<(String, String), String>,
    /// Pipelines being converted, outermost first.
    stack: Vec<String>,
}

impl Importer<'_> {
    /// Converts one pipeline whose parameters have the values `bindings` (`passed_by`: the
    /// activity that runs it, for a sub-pipeline).
    fn convert(
        &mut self,
        p: &Pipeline,
        bindings: &Bindings,
        passed_by: Option<&str>,
        file: String,
    ) -> Draft {
        let place = Place::file(&p.file);
        let mut header = vec![format!(
            "Imported from Synapse pipeline `{}` ({}) by `spool import synapse`.",
            p.name, p.file
        )];
        if !bindings.is_empty() {
            let values: Vec<String> = bindings
                .iter()
                .map(|(name, b)| match b {
                    Binding::Value(v) => format!("{name} = {v}"),
                    Binding::Missing(_) => format!("{name} (no value)"),
                })
                .collect();
            header.push(format!(
                "Pipeline parameters {}, written into the notebook params that use them (marked `# @…`):",
                passed_by.map_or("at their defaults".to_string(), |a| format!("as `{a}` passes them"))
            ));
            header.push(format!("  {}", values.join(", ")));
        }
        let mut draft = Draft {
            file,
            header,
            name: p.name.clone(),
            description: p.description.clone(),
            max_concurrency: None,
            run_timeout_secs: None,
            default_retry_interval_secs: None,
            steps: Vec::new(),
        };
        let acts = &p.activities;
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, a) in acts.iter().enumerate() {
            // The first activity of a name keeps it; later ones are errors.
            if *index.entry(&a.name).or_insert(i) != i {
                self.ctx.report.error(
                    &place.item(&a.name).field("name"),
                    "is used by two activities",
                );
            }
        }
        let mut g = Graph::new(acts.len());
        let mut suggestions = Suggestions::default();
        for (i, a) in acts.iter().enumerate() {
            for (up, on) in &a.depends_on {
                match index.get(up.as_str()) {
                    Some(&j) if j == i => self.ctx.report.error(
                        &place.item(&a.name).field("dependsOn"),
                        "the activity depends on itself",
                    ),
                    Some(&j) => g.add(j, i, *on),
                    None => {
                        let hint = suggestions.hint(up, index.keys().copied());
                        self.ctx.report.error(
                            &place.item(&a.name).field("dependsOn"),
                            format!("depends on `{up}`, which is not an activity of this pipeline{hint}"),
                        );
                    }
                }
            }
        }
        if let Some(cycle) = g.cycle() {
            let names: Vec<&str> = cycle.iter().map(|&i| acts[i].name.as_str()).collect();
            self.ctx.report.error(
                &place.item(names[0]).field("dependsOn"),
                format!(
                    "dependency cycle: {} (each depends on the next)",
                    names.join(" -> ")
                ),
            );
            return draft;
        }
        let order = g.order();
        if !self.leave_out_unsupported(p, &mut g, &order) {
            return draft;
        }

        let mut ids = Ids::default();
        let id_of: Vec<String> = acts.iter().map(|a| ids.take(&a.name)).collect();
        for (i, a) in acts.iter().enumerate() {
            if g.is_removed(i) {
                continue;
            }
            let at = place.item(&a.name);
            self.ctx.renamed(&at, &id_of[i]);
            let mut depends_on = Vec::new();
            for (u, on) in g.deps(i) {
                let written = closest_writable(on);
                if !writable(on) {
                    self.ctx.report.warning(
                        &at.field("dependsOn"),
                        format!(
                            "runs when `{}` {}; Spool can only say `{}`, so it is skipped \
                             where it would run after `{}` is skipped",
                            acts[u].name,
                            outcomes(on),
                            written.name(),
                            acts[u].name
                        ),
                    );
                }
                depends_on.push((id_of[u].clone(), written));
            }
            let Some(mut step) = self.step(a, &at, &id_of[i], bindings) else {
                continue;
            };
            step.depends_on = depends_on;
            if a.inactive {
                step.active = false;
                if let Some(mark) = &a.inactive_mark {
                    self.ctx.report.warning(
                        &at.field("onInactiveMarkAs"),
                        format!(
                            "is `{mark}`; Spool counts an inactive step as succeeded when its \
                             dependencies hold and as skipped otherwise"
                        ),
                    );
                }
            }
            if id_of[i] != a.name {
                step.comments
                    .push(format!("Synapse activity \"{}\"", a.name));
            }
            if let Some(d) = &a.description {
                step.comments.push(d.clone());
            }
            draft.steps.push(step);
        }
        draft
    }

    /// Takes out activities Spool cannot run, then what can no longer run because of that,
    /// reporting each with the dependencies bridged around it. False, with an error, when
    /// that would bridge too many dependencies.
    fn leave_out_unsupported(&mut self, p: &Pipeline, g: &mut Graph, order: &[usize]) -> bool {
        let acts = &p.activities;
        let place = Place::file(&p.file);
        let mut blocked_by: HashMap<usize, usize> = HashMap::new();
        let describe = |removal: &Removal| -> String {
            let mut text = String::new();
            if !removal.bridged.is_empty() {
                let mut edges: Vec<String> = removal
                    .bridged
                    .iter()
                    .take(LISTED_BRIDGES)
                    .map(|b| {
                        format!(
                            "`{}` now waits for `{}` ({})",
                            acts[b.to].name,
                            acts[b.from].name,
                            b.on.name()
                        )
                    })
                    .collect();
                if removal.bridged.len() > LISTED_BRIDGES {
                    edges.push(format!(
                        "and {} more",
                        removal.bridged.len() - LISTED_BRIDGES
                    ));
                }
                text += &format!("; dependencies bridged: {}", edges.join(", "));
            }
            if !removal.released.is_empty() {
                let names: Vec<String> = removal
                    .released
                    .iter()
                    .map(|&w| format!("`{}`", acts[w].name))
                    .collect();
                let verb = if names.len() == 1 { "waits" } else { "wait" };
                text += &format!("; {} no longer {verb} for it", names.join(", "));
            }
            text
        };
        for &v in order {
            let a = &acts[v];
            let Body::Other { inner } = &a.body else {
                continue;
            };
            let Some(removal) = self.remove(g, v, Fate::LeftOut, &place, &a.name) else {
                return false;
            };
            for &w in &removal.blocked {
                blocked_by.entry(w).or_insert(v);
            }
            let inside = if inner.is_empty() {
                String::new()
            } else {
                format!(
                    "; the activities inside it were not imported: {}",
                    inner.join(", ")
                )
            };
            let fail_note = if a.type_name == "Fail" {
                "; a run no longer fails here"
            } else {
                ""
            };
            self.ctx.report.warning(
                &place.item(&a.name),
                format!(
                    "activity type `{}` cannot run in Spool: left out{fail_note}{inside}{}",
                    a.type_name,
                    describe(&removal)
                ),
            );
        }
        for &v in order {
            if g.is_removed(v) || !g.is_blocked(v) {
                continue;
            }
            let cause = blocked_by
                .get(&v)
                .map(|&c| format!(" once `{}` is left out", acts[c].name))
                .unwrap_or_else(|| " (its dependencies contradict each other)".into());
            let Some(removal) = self.remove(g, v, Fate::NeverRuns, &place, &acts[v].name) else {
                return false;
            };
            for &w in &removal.blocked {
                blocked_by.entry(w).or_insert(v);
            }
            self.ctx.report.warning(
                &place.item(&acts[v].name),
                format!(
                    "its dependencies can never hold{cause}, so it would never run: left out{}",
                    describe(&removal)
                ),
            );
        }
        true
    }

    /// Removes activity `v` from `g`, or reports why it cannot be bridged.
    fn remove(
        &mut self,
        g: &mut Graph,
        v: usize,
        fate: Fate,
        place: &Place,
        name: &str,
    ) -> Option<Removal> {
        match g.remove(v, fate) {
            Ok(removal) => Some(removal),
            Err(too_many) => {
                self.ctx.report.error(
                    &place.item(name),
                    format!(
                        "cannot be left out: bridging its {} dependencies to its {} dependents \
                         would take the pipeline past {} dependencies; split the pipeline, or \
                         route fewer activities through it",
                        too_many.dependencies,
                        too_many.dependents,
                        crate::dag::MAX_EDGES
                    ),
                );
                None
            }
        }
    }

    /// The step for a notebook or sub-pipeline activity (dependencies filled in by the caller).
    fn step(
        &mut self,
        a: &Activity,
        at: &Place,
        id: &str,
        bindings: &Bindings,
    ) -> Option<DraftStep> {
        let defaults = RunSettings::default();
        match &a.body {
            Body::Notebook {
                name,
                name_field,
                origin,
                params,
                ignored_settings,
            } => {
                let path = match self.ctx.notebook_file(name.as_ref().ok()?) {
                    Ok(p) => p,
                    Err(why) => {
                        let field = at.field(&format!("typeProperties.{name_field}"));
                        self.ctx.report.error(&field, why);
                        return None;
                    }
                };
                self.ctx.notebook_needed(at, &path, origin);
                if !ignored_settings.is_empty() {
                    self.ctx.report.note(
                        &at.field("typeProperties"),
                        format!(
                            "{} not carried over: Spool runs every notebook in one shared \
                             session, sized by `[pool]`",
                            ignored_settings.join(", ")
                        ),
                    );
                }
                let mut step = DraftStep::new(StepKind::Notebook, id.to_string(), path.clone());
                step.retry = a.retry.and_then(|r| unless_default(r, defaults.retry));
                step.retry_interval_secs = a
                    .retry_interval_secs
                    .and_then(|s| unless_default(s, defaults.retry_interval_secs));
                step.timeout_secs = a
                    .timeout_secs
                    .and_then(|s| unless_default(s, defaults.timeout_secs));
                for p in params {
                    if let Some(param) = self.param(p, at, bindings) {
                        step.params.push(param);
                    }
                }
                Some(step)
            }
            Body::ExecutePipeline {
                pipeline,
                params,
                wait,
            } => {
                if !wait {
                    self.ctx.report.warning(
                        &at.field("typeProperties.waitOnCompletion"),
                        "is false; Spool always waits for a sub-pipeline before its dependents",
                    );
                }
                let file = self.sub_pipeline(pipeline, params, at, bindings)?;
                Some(DraftStep::new(StepKind::Pipeline, id.to_string(), file))
            }
            Body::Other { .. } | Body::Malformed => None,
        }
    }

    fn param(&mut self, p: &NotebookParam, at: &Place, bindings: &Bindings) -> Option<Param> {
        let field = at.field(&p.field);
        if let Some(why) = crate::model::param_name_problem(&p.name) {
            self.ctx.report.warning(&field, format!("left out: {why}"));
            return None;
        }
        let (value, comment) = match &p.source {
            Source::Literal(v) => (v.clone(), None),
            Source::Expression(text) => match evaluate(text, &|n| lookup(bindings, n)) {
                Ok((v, _)) => (v, Some(text.clone())),
                Err(why) => {
                    self.ctx.report.warning(
                        &field,
                        format!("left out (the notebook's own default applies): {why}"),
                    );
                    return None;
                }
            },
        };
        let value = match &p.ty {
            Some(ty) => coerce(&value, ty).unwrap_or_else(|why| {
                self.ctx
                    .report
                    .warning(&field, format!("{why}; written as it is"));
                value
            }),
            None => value,
        };
        match to_toml(&value) {
            Ok(v) => Some(Param {
                key: p.name.clone(),
                value: v,
                comment,
            }),
            Err(why) => {
                self.ctx.report.warning(&field, format!("left out: {why}"));
                None
            }
        }
    }

    /// Converts the pipeline an `ExecutePipeline` activity runs (once per distinct set of
    /// parameter values) and returns its file name.
    fn sub_pipeline(
        &mut self,
        name: &str,
        passed: &[(String, Source)],
        at: &Place,
        caller: &Bindings,
    ) -> Option<String> {
        let ref_at = at.field("typeProperties.pipeline.referenceName");
        if self.stack.iter().any(|s| s == name) {
            let mut chain = self.stack.clone();
            chain.push(name.to_string());
            self.ctx.report.error(
                &ref_at,
                format!(
                    "pipelines run each other in a cycle: {}",
                    chain.join(" -> ")
                ),
            );
            return None;
        }
        if self.stack.len() >= MAX_NESTING {
            self.ctx.report.error(
                &ref_at,
                format!("sub-pipelines are nested more than {MAX_NESTING} deep"),
            );
            return None;
        }
        let child = self.read_pipeline(name, &ref_at)?;
        let mut bindings = Bindings::new();
        for (pname, source) in passed {
            let field = at.field(&format!("typeProperties.parameters.{pname}"));
            let Some(decl) = child.params.get(pname) else {
                self.ctx.report.warning(
                    &field,
                    format!("pipeline `{name}` has no parameter `{pname}`; ignored"),
                );
                continue;
            };
            let value = match source {
                Source::Literal(v) => Ok(v.clone()),
                Source::Expression(text) => evaluate(text, &|n| lookup(caller, n)).map(|(v, _)| v),
            };
            let binding = match value.and_then(|v| coerce(&v, &decl.ty)) {
                Ok(v) => Binding::Value(v),
                Err(why) => {
                    self.ctx
                        .report
                        .warning(&field, format!("cannot be passed on to `{name}`: {why}"));
                    Binding::Missing(format!(
                        "`{}` passes a value Spool cannot work out",
                        at.item.as_deref().unwrap_or("?")
                    ))
                }
            };
            bindings.insert(pname.clone(), binding);
        }
        child.bind_defaults(&mut bindings);
        let key = (name.to_string(), format!("{bindings:?}"));
        if let Some(file) = self.memo.get(&key) {
            return Some(file.clone());
        }
        if self.memo.len() + 1 >= MAX_FILES {
            self.ctx.report.error(
                &ref_at,
                format!("the import would write more than {MAX_FILES} files"),
            );
            return None;
        }
        let file = format!("{}.toml", self.files.take(name));
        self.memo.insert(key, file.clone());
        self.stack.push(name.to_string());
        let draft = self.convert(&child, &bindings, at.item.as_deref(), file.clone());
        self.stack.pop();
        self.drafts.push(draft);
        Some(file)
    }

    fn read_pipeline(&mut self, name: &str, at: &Place) -> Option<Rc<Pipeline>> {
        if let Some(p) = self.parsed.get(name) {
            return p.clone();
        }
        let file = format!("{name}.json");
        let parsed = match self.pipelines.read(&file) {
            Ok(text) => parse_pipeline(&file, &text, &mut self.ctx).map(Rc::new),
            Err(why) => {
                self.ctx.report.error(
                    at,
                    format!(
                        "runs pipeline `{name}`, but `{file}` cannot be read ({why}); pass it as \
                         another input or put it next to the main pipeline file"
                    ),
                );
                None
            }
        };
        if let Some(p) = &parsed {
            if p.name != name {
                self.ctx.report.warning(
                    &Place::file(&file).field("name"),
                    format!(
                        "is `{}`, but the file was read for pipeline `{name}`",
                        p.name
                    ),
                );
            }
        }
        self.parsed.insert(name.to_string(), parsed.clone());
        parsed
    }
}

fn lookup(bindings: &Bindings, name: &str) -> Result<Value, String> {
    match bindings.get(name) {
        Some(Binding::Value(v)) => Ok(v.clone()),
        Some(Binding::Missing(why)) => Err(why.clone()),
        None => Err(format!("the pipeline has no parameter `{name}`")),
    }
}

/// The outcomes a condition accepts, in words (`succeeded or skipped`).
fn outcomes(c: Condition) -> String {
    let words: Vec<&str> = [
        (Outcome::Succeeded, "succeeded"),
        (Outcome::Failed, "failed"),
        (Outcome::Skipped, "was skipped"),
    ]
    .into_iter()
    .filter(|(o, _)| c.accepts(*o))
    .map(|(_, w)| w)
    .collect();
    match words.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "never".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::load;
    use crate::import::graph::closest_writable;
    use crate::source::MemorySources;

    const ADF: [(&str, &str); 4] = [
        ("Succeeded", "succeeded"),
        ("Failed", "failed"),
        ("Completed", "completed"),
        ("Skipped", "skipped"),
    ];

    fn notebook(name: &str, deps: &str) -> String {
        format!(
            r#"{{"name": "{name}", "type": "SynapseNotebook", "dependsOn": [{deps}],
                "typeProperties": {{"notebook": {{"referenceName": "{name}"}}}}}}"#
        )
    }

    fn dep(on: &str, cond: &str) -> String {
        format!(r#"{{"activity": "{on}", "dependencyConditions": ["{cond}"]}}"#)
    }

    /// One pipeline JSON imported on its own into `main.toml`.
    fn import_one(json: &str) -> Converted {
        import_synapse(
            "p.json",
            json,
            &MemorySources::default(),
            &Target {
                main: "main.toml",
                existing: &MemorySources::default(),
            },
        )
    }

    /// The condition `b` ends up with on `a` in the plan of `files`, `None` when `b` is absent.
    fn condition_of_b(files: &MemorySources) -> Option<Condition> {
        let plan = load("main.toml", files).plan.expect("loads");
        let b = plan.index_of("b")?;
        let a = plan.index_of("a").expect("a");
        plan.deps[b].iter().find(|(d, _)| *d == a).map(|(_, c)| *c)
    }

    #[test]
    fn a_left_out_activity_between_two_wide_layers_is_refused_not_bridged() {
        // 1,001 notebooks -> a WebHook -> 1,000 notebooks: leaving the WebHook out would add
        // 1,001,000 dependencies (and name each in a warning).
        let wide = |ins: usize, outs: usize| {
            let mut acts: Vec<String> = (0..ins).map(|i| notebook(&format!("a{i}"), "")).collect();
            let deps: Vec<String> = (0..ins)
                .map(|i| dep(&format!("a{i}"), "Succeeded"))
                .collect();
            acts.push(format!(
                r#"{{"name": "x", "type": "WebHook", "dependsOn": [{}]}}"#,
                deps.join(",")
            ));
            acts.extend((0..outs).map(|i| notebook(&format!("b{i}"), &dep("x", "Succeeded"))));
            let json = format!(
                r#"{{"name": "p", "properties": {{"activities": [{}]}}}}"#,
                acts.join(",")
            );
            import_one(&json)
        };
        let refused = wide(1001, 1000);
        assert!(refused.files.is_empty());
        let report = refused.report.render();
        assert!(
            report.contains("bridging its 1001 dependencies to its 1000 dependents")
                && report.contains(&format!("past {} dependencies", crate::dag::MAX_EDGES)),
            "{report}"
        );
        // Fewer are bridged, and the warning names ten of them.
        let bridged = wide(30, 30);
        let report = bridged.report.render();
        assert!(!bridged.report.has_errors(), "{report}");
        assert!(
            report.contains("`b0` now waits for `a0` (succeeded)"),
            "{report}"
        );
        assert!(report.contains("and 890 more"), "{report}");
    }

    #[test]
    fn left_out_activities_bridge_like_inactive_notebooks_in_the_core() {
        // a -[c1]-> x -[c2]-> b, with x a WebHook (imported) or an inactive notebook (core).
        for (adf1, spool1) in ADF {
            for (adf2, spool2) in ADF {
                let webhook = format!(
                    r#"{{"name": "x", "type": "WebHook", "dependsOn": [{}]}}"#,
                    dep("a", adf1)
                );
                let json = format!(
                    r#"{{"name": "p", "properties": {{"activities": [{}, {webhook}, {}]}}}}"#,
                    notebook("a", ""),
                    notebook("b", &dep("x", adf2)),
                );
                let converted = import_one(&json);
                assert!(
                    !converted.report.has_errors(),
                    "{}",
                    converted.report.render()
                );
                let mut imported = MemorySources::default()
                    .with("notebooks/a.ipynb", "")
                    .with("notebooks/b.ipynb", "");
                for f in &converted.files {
                    imported = imported.with(&f.path, &f.text);
                }
                let core = MemorySources::default()
                    .with("a.py", "")
                    .with("x.py", "")
                    .with("b.py", "")
                    .with(
                        "main.toml",
                        &format!(
                            "[[notebook]]\nid = \"a\"\npath = \"a.py\"\n\
                             [[notebook]]\nid = \"x\"\npath = \"x.py\"\nactive = false\n\
                             depends_on = [{{ id = \"a\", on = \"{spool1}\" }}]\n\
                             [[notebook]]\nid = \"b\"\npath = \"b.py\"\n\
                             depends_on = [{{ id = \"x\", on = \"{spool2}\" }}]\n"
                        ),
                    );
                // Both leave `b` out when it can never run.
                let by_core = condition_of_b(&core);
                let by_import = condition_of_b(&imported);
                let case = format!("a -[{adf1}]-> x -[{adf2}]-> b");
                assert_eq!(by_import, by_core.map(closest_writable), "{case}");
            }
        }
    }
}
