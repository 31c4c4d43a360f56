//! The `{{ … }}` references a step of a pipeline file may use, listed for the editor's picker
//! and checked one value at a time while the user types, by the rule [`super::check_references`]
//! applies to the whole file (`reference_type`): the file's `[params]`, the `run.*` built-ins,
//! and the values of notebooks upstream of the step (directly or not); a `[[pipeline]]` entry
//! passes only what is known when the run starts.

use super::{for_each_problem, reference_type, scope_type};
use crate::diag::Suggestions;
use crate::model::{PipelineFile, StepKind};
use crate::template::{Source, Template, TemplateError, ValueType};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// Keys of `tasks.ID.values.KEY` offered per upstream notebook at most (those the file already
/// reads somewhere).
pub const MAX_VALUE_KEYS: usize = 50;

/// One reference the picker offers: the text between `{{` and `}}`, and what it yields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferenceChoice {
    /// `params.run_date`, `run.date | add_days(-1)`, `tasks.load.values.rows`.
    pub text: String,
    /// What it yields (`Any` for a task's value, known when the task has run).
    pub ty: ValueType,
    /// One line for the picker: where it comes from.
    pub about: String,
}

impl ReferenceChoice {
    /// The reference as a parameter value holds it: `{{ params.run_date }}`.
    pub fn inserted(&self) -> String {
        format!("{{{{ {} }}}}", self.text)
    }
}

/// What one step of a file may refer to.
pub struct ReferenceScope<'f> {
    file: &'f PipelineFile,
    index: HashMap<&'f str, usize>,
    step: usize,
    /// The steps `step` waits for, directly or not.
    upstream: Vec<bool>,
}

impl<'f> ReferenceScope<'f> {
    /// The scope of step `id` of `file` (`None`: no such step). Dependencies on unknown ids are
    /// left out, as the file's own check does.
    pub fn of(file: &'f PipelineFile, id: &str) -> Option<Self> {
        let mut index = HashMap::with_capacity(file.steps.len());
        for (i, s) in file.steps.iter().enumerate() {
            index.entry(s.id.as_str()).or_insert(i);
        }
        let step = *index.get(id)?;
        // Each step is visited once: bounded by the file's steps and dependencies.
        let mut upstream = vec![false; file.steps.len()];
        let mut stack = vec![step];
        while let Some(i) = stack.pop() {
            for d in &file.steps[i].depends_on {
                match index.get(d.id.as_str()) {
                    Some(&j) if j != step && !upstream[j] => {
                        upstream[j] = true;
                        stack.push(j);
                    }
                    _ => {}
                }
            }
        }
        Some(ReferenceScope {
            file,
            index,
            step,
            upstream,
        })
    }

    fn type_of(&self, src: &Source) -> Result<ValueType, String> {
        if self.file.steps[self.step].kind == StepKind::Pipeline {
            return scope_type(self.file, src);
        }
        reference_type(
            self.file,
            &self.index,
            &self.upstream,
            self.step,
            src,
            &mut Suggestions::default(),
        )
    }

    /// Every reference valid here, in the order the picker shows them: the file's parameters,
    /// the run's built-ins, then each upstream notebook's exit value, all its values, and the
    /// keys of its values the file reads elsewhere.
    pub fn choices(&self) -> Vec<ReferenceChoice> {
        let mut candidates: Vec<(String, Source, String)> = Vec::new();
        for name in self.file.params.keys() {
            candidates.push((
                format!("params.{name}"),
                Source::Param(name.clone()),
                "pipeline parameter ([params])".into(),
            ));
        }
        for (text, src, about) in [
            (
                "run.date",
                Source::RunDate,
                "the day the run was triggered (UTC)",
            ),
            (
                "run.date | add_days(-1)",
                Source::RunDate,
                "the day before the run's",
            ),
            (
                "run.trigger_time",
                Source::RunTriggerTime,
                "when the run was triggered, YYYY-MM-DDTHH:MM:SSZ",
            ),
            ("run.id", Source::RunId, "the run's number"),
        ] {
            candidates.push((text.into(), src, about.into()));
        }
        let keys = self.value_keys_read();
        for (j, s) in self.file.steps.iter().enumerate() {
            if !self.upstream[j] || s.kind != StepKind::Notebook {
                continue;
            }
            let id = &s.id;
            candidates.push((
                format!("tasks.{id}.value"),
                Source::TaskValue(id.clone()),
                format!("the exit value of upstream `{id}` (spool.exit)"),
            ));
            candidates.push((
                format!("tasks.{id}.values"),
                Source::TaskValues(id.clone(), None),
                format!("every value `{id}` set (spool.set_value), as a table"),
            ));
            for key in keys.get(id.as_str()).into_iter().flatten() {
                candidates.push((
                    format!("tasks.{id}.values.{key}"),
                    Source::TaskValues(id.clone(), Some(key.to_string())),
                    format!("the value `{key}` that `{id}` sets"),
                ));
            }
        }
        candidates
            .into_iter()
            .filter_map(|(text, src, about)| {
                let ty = self.type_of(&src).ok()?;
                Some(ReferenceChoice { text, ty, about })
            })
            .collect()
    }

    /// The keys of `tasks.ID.values.KEY` read anywhere in the file (parameters, `for_each`,
    /// `if`), by notebook id.
    fn value_keys_read(&self) -> HashMap<&'f str, BTreeSet<&'f str>> {
        let mut keys: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        let mut note = |t: &'f Template| {
            for (e, _) in t.refs() {
                if let Source::TaskValues(id, Some(key)) = &e.source {
                    let set = keys.entry(id.as_str()).or_default();
                    if set.len() < MAX_VALUE_KEYS {
                        set.insert(key.as_str());
                    }
                }
            }
        };
        for s in &self.file.steps {
            for site in &s.templates {
                note(&site.template);
            }
            if let Some(crate::for_each::Items::Reference(r)) =
                s.for_each.as_ref().map(|f| &f.items)
            {
                note(&r.template);
            }
            for c in s.depends_on.iter().filter_map(|d| d.when.as_ref()) {
                for r in c.references() {
                    note(&r.template);
                }
            }
        }
        keys
    }

    /// Checks one parameter value as typed: its references (`Ok(None)`: it has none; otherwise
    /// the type it yields), or the first problem with its byte range in `value`.
    pub fn check(&self, value: &str) -> Result<Option<ValueType>, TemplateError> {
        let Some(t) = Template::parse(value)? else {
            return Ok(None);
        };
        t.check(&mut |src| self.type_of(src))
            .map(Some)
            .map_err(|(span, message)| TemplateError { span, message })
    }

    /// Checks a `for_each` string as typed: one reference to a list.
    pub fn check_for_each(&self, value: &str) -> Result<(), TemplateError> {
        let t = match Template::parse(value)? {
            Some(t) if t.whole().is_some() => t,
            _ => {
                return Err(TemplateError {
                    span: 0..value.len(),
                    message: crate::for_each::not_a_reference(value),
                })
            }
        };
        let checked = t.check(&mut |src| self.type_of(src));
        match for_each_problem(value, checked) {
            Some((span, message)) => Err(TemplateError { span, message }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_pipeline;

    const FILE: &str = r#"
[params]
run_date = { type = "date", default = 2024-06-30 }
tables = ["orders", "returns"]

[[notebook]]
id = "list_tables"
path = "a.py"

[[notebook]]
id = "copy"
path = "a.py"
depends_on = ["list_tables"]
for_each = "{{ tasks.list_tables.value }}"

[[notebook]]
id = "count"
path = "a.py"
depends_on = ["copy"]
params = { day = "{{ params.run_date }}" }

[[notebook]]
id = "side"
path = "a.py"

[[notebook]]
id = "report"
path = "a.py"
depends_on = [{ id = "count", if = "{{ tasks.count.values.rows }} > 0" }]

[[pipeline]]
id = "dims"
path = "dims.toml"
depends_on = ["count"]
"#;

    fn texts(scope: &ReferenceScope) -> Vec<String> {
        scope.choices().into_iter().map(|c| c.text).collect()
    }

    #[test]
    fn a_step_may_refer_to_params_run_and_the_values_of_its_upstream_notebooks_only() {
        let (file, diags) = parse_pipeline("p.toml", FILE);
        assert!(diags.is_empty(), "{diags:?}");
        let file = file.expect("parses");
        let common = [
            "params.run_date",
            "params.tables",
            "run.date",
            "run.date | add_days(-1)",
            "run.trigger_time",
            "run.id",
        ];
        let report = ReferenceScope::of(&file, "report").expect("a step");
        let mut want: Vec<String> = common.iter().map(|s| s.to_string()).collect();
        // Transitively upstream, in the file's order; `side` is not upstream, `report` itself
        // is not; the key `rows` is read by report's `if`.
        want.extend(
            [
                "tasks.list_tables.value",
                "tasks.list_tables.values",
                "tasks.copy.value",
                "tasks.copy.values",
                "tasks.count.value",
                "tasks.count.values",
                "tasks.count.values.rows",
            ]
            .map(String::from),
        );
        assert_eq!(texts(&report), want);
        assert_eq!(texts(&ReferenceScope::of(&file, "side").unwrap()), common);
        // A sub-pipeline entry passes only what the run knows when it starts.
        assert_eq!(texts(&ReferenceScope::of(&file, "dims").unwrap()), common);
        assert!(ReferenceScope::of(&file, "nope").is_none());

        let types: Vec<(String, ValueType)> = report
            .choices()
            .into_iter()
            .map(|c| (c.text, c.ty))
            .filter(|(t, _)| t.starts_with("params") || t.ends_with("values"))
            .collect();
        assert_eq!(
            types[..3],
            [
                ("params.run_date".into(), ValueType::Date),
                ("params.tables".into(), ValueType::Array),
                ("tasks.list_tables.values".into(), ValueType::Table),
            ]
        );
        assert_eq!(
            report.choices()[0].inserted(),
            "{{ params.run_date }}",
            "what the picker writes"
        );
    }

    /// Every choice is valid where it is offered, and the same text in a step that may not
    /// use it is the file check's own error.
    #[test]
    fn what_is_offered_passes_the_files_own_check_and_the_rest_fails_it() {
        let file = parse_pipeline("p.toml", FILE).0.expect("parses");
        let report = ReferenceScope::of(&file, "report").unwrap();
        let side = ReferenceScope::of(&file, "side").unwrap();
        for c in report.choices() {
            assert_eq!(report.check(&c.inserted()), Ok(Some(c.ty)), "{}", c.text);
        }
        let err = side.check("x {{ tasks.count.value }}").unwrap_err();
        assert!(
            err.message.contains("`count` is not upstream of `side`"),
            "{err:?}"
        );
        assert_eq!(err.span, 2..25);
        let err = report.check("{{ params.run_dat }}").unwrap_err();
        assert!(
            err.message.contains("did you mean `params.run_date`"),
            "{err:?}"
        );
        assert!(report.check("{{ params.run_date").is_err(), "not closed");
        assert_eq!(report.check("plain text"), Ok(None));
        let own = ReferenceScope::of(&file, "count").unwrap();
        assert!(own.check("{{ tasks.count.value }}").is_err());

        // The same text written into the file gives the same message from the file's check.
        let text = FILE.replace(
            "id = \"side\"\npath = \"a.py\"",
            "id = \"side\"\npath = \"a.py\"\nparams = { n = \"x {{ tasks.count.value }}\" }",
        );
        let loaded = crate::dag::load_text(
            "p.toml",
            &text,
            &crate::source::MemorySources::default()
                .with("a.py", "")
                .with("dims.toml", "[[notebook]]\nid = \"d\"\npath = \"a.py\"\n"),
        );
        let side_check = side.check("x {{ tasks.count.value }}").unwrap_err();
        assert!(
            loaded
                .diagnostics
                .iter()
                .any(|d| d.item.as_deref() == Some("side") && d.message == side_check.message),
            "{:?}",
            loaded.diagnostics
        );
    }

    #[test]
    fn a_for_each_string_must_be_one_reference_to_a_list() {
        let file = parse_pipeline("p.toml", FILE).0.expect("parses");
        let copy = ReferenceScope::of(&file, "copy").unwrap();
        assert_eq!(copy.check_for_each("{{ tasks.list_tables.value }}"), Ok(()));
        assert_eq!(copy.check_for_each("{{ params.tables }}"), Ok(()));
        let err = copy.check_for_each("{{ params.run_date }}").unwrap_err();
        assert!(err.message.contains("needs a list"), "{err:?}");
        let err = copy.check_for_each("orders").unwrap_err();
        assert!(err.message.contains("must be a list"), "{err:?}");
        let err = copy.check_for_each("{{ tasks.count.value }}").unwrap_err();
        assert!(err.message.contains("not upstream"), "{err:?}");
    }
}
