//! For-each: a `[[notebook]]` run once per item of a list, with `item` and `item_index` as
//! parameters. A literal list expands when the plan is built (the iterations are tasks of the
//! plan); a list read from a reference (`{{ params.tables }}`, `{{ tasks.list_tables.value }}`)
//! expands when the run reaches it: the scheduling machine asks the driver for the list
//! ([`crate::sched::Command::ExpandForEach`]), the driver reads it with [`items_of`] and adds the
//! iterations to its plan with [`crate::dag::Plan::add_iterations`].

use crate::dag::{Plan, Task, TaskId, TaskKind};
use crate::model::{Condition, TextAt};
use crate::parse::valid_id;
use crate::template::Template;
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

/// A for-each has at most this many items (a literal list is refused beyond it when the file is
/// read; a list read at run time fails its task).
pub const MAX_ITEMS: usize = 10_000;
/// What the simulator and the dry run assume a list read at run time holds, unless the notebook
/// says (`expected_items`).
pub const DEFAULT_EXPECTED_ITEMS: u32 = 10;
/// A string item names its iteration (`copy_table[orders]`) when it is an id this long at most.
pub const MAX_ITEM_ID_CHARS: usize = 64;
/// The parameters every iteration gets; a for-each notebook cannot declare them itself.
pub const ITEM_PARAMS: [&str; 2] = ["item", "item_index"];

/// Where the items come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Items {
    /// Written in the file: the plan has one task per item.
    List(Vec<Value>),
    /// One `{{ … }}` reference (`params.X`, `tasks.X.value`, `tasks.X.values.KEY`), read when
    /// the run reaches the notebook.
    Reference(Reference),
}

/// A list read when the run reaches the for-each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reference {
    /// As written: `{{ tasks.list_tables.value }}`.
    pub text: String,
    #[serde(skip)]
    pub template: Template,
    /// Where the text is in the file.
    #[serde(skip)]
    pub at: TextAt,
}

/// `for_each` and its settings on a `[[notebook]]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForEach {
    pub items: Items,
    /// `for_each_concurrency`: at most this many iterations run at once (`None`: the pool
    /// decides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// `expected_items`: what a dry run assumes a list read at run time holds (at least 1).
    pub expected_items: u32,
}

/// One iteration of a for-each, on its task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Iteration {
    /// The for-each's own task (`copy_table`), which waits for every iteration.
    pub group: String,
    pub index: u32,
    pub item: Value,
}

/// The ids of the iterations of `group` over `items`: `group[ITEM]` for a string item that is a
/// valid id (letters, digits, `_`, `.`, `-`) of at most [`MAX_ITEM_ID_CHARS`] and not used by an
/// earlier item, `group[#INDEX]` (from 0) for every other item (numbers, tables, other strings,
/// repeats), so that ids are unique and need no quoting.
pub fn iteration_ids(group: &str, items: &[Value]) -> Vec<String> {
    let mut used = std::collections::HashSet::new();
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s)
                if s.chars().count() <= MAX_ITEM_ID_CHARS && valid_id(s) && used.insert(s) =>
            {
                format!("{group}[{s}]")
            }
            _ => format!("{group}[#{i}]"),
        })
        .collect()
}

/// Why a `for_each` string that is not exactly one `{{ … }}` reference is refused.
pub fn not_a_reference(text: &str) -> String {
    format!(
        "`for_each = \"{text}\"` must be a list, or one reference to a list \
         (`\"{{{{ params.tables }}}}\"`, `\"{{{{ tasks.list_tables.value }}}}\"`)"
    )
}

/// The items of a list read at run time, or why it cannot be iterated over.
pub fn items_of(value: Value) -> Result<Vec<Value>, String> {
    match value {
        Value::Array(items) if items.len() > MAX_ITEMS => Err(format!(
            "the list has {} items; a for-each runs at most {MAX_ITEMS}",
            items.len()
        )),
        // Items are data: one shaped as a secret reference would be resolved when the attempt
        // starts, handing a secret to whoever could write the list.
        Value::Array(items) if items.iter().any(crate::secret::contains_reference) => {
            Err("a for-each item cannot be or hold a secret reference (`$secret`)".to_string())
        }
        Value::Array(items) => Ok(items),
        other => Err(format!(
            "for_each needs a list, but the value is {}",
            json_type(&other)
        )),
    }
}

/// `a string`, `a number`, … for messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

impl Task {
    /// Whether the task is a for-each whose items are read at run time.
    pub fn expands(&self) -> bool {
        self.kind == TaskKind::ForEach
            && matches!(
                self.for_each.as_ref().map(|f| &f.items),
                Some(Items::Reference(_))
            )
    }

    /// The task an iteration of `group` over `item` becomes: the group's notebook, settings and
    /// parameter scope; the item reaches it as data, never as text to resolve.
    fn iteration(&self, id: String, index: usize, item: Value) -> Task {
        Task {
            id,
            kind: TaskKind::Notebook,
            path: self.path.clone(),
            params: self.params.clone(),
            settings: self.settings.clone(),
            scope: self.scope,
            conditions: Vec::new(),
            for_each: None,
            iteration: Some(Iteration {
                group: self.id.clone(),
                index: index as u32,
                item,
            }),
        }
    }
}

impl Plan {
    /// The items of for-each `task` (one whose list is read at run time), its reference read
    /// with `lookup` (the run's values in the task's scope), or why it has none to run over.
    pub fn items_of_for_each(
        &self,
        task: TaskId,
        lookup: &dyn Fn(&crate::template::Source) -> Result<Value, String>,
    ) -> Result<Vec<Value>, String> {
        match self.tasks[task].for_each.as_ref().map(|f| &f.items) {
            Some(Items::Reference(r)) => items_of(
                r.template
                    .eval(lookup)
                    .map_err(|why| format!("`{}`: {why}", r.text))?,
            ),
            _ => Err(format!("`{}` has no list to read", self.tasks[task].id)),
        }
    }

    /// Adds the iterations of for-each `group` (one whose items are read at run time) over
    /// `items` at the end of the plan, each with the group's dependencies (they held when it
    /// expanded: the machine does not wait for them again, but they are what the iteration's
    /// `spool.upstream` reads, as for an iteration of a written-out list) and awaited by the
    /// group; returns their task ids. The scheduling
    /// machine adds the same number of tasks in the same order on
    /// [`crate::sched::Event::ForEachExpanded`], so a driver's plan and machine keep the same
    /// ids.
    pub fn add_iterations(&mut self, group: TaskId, items: Vec<Value>) -> Range<TaskId> {
        let first = self.tasks.len();
        let ids = iteration_ids(&self.tasks[group].id, &items);
        let inherited = self.deps[group].clone();
        for (index, (id, item)) in ids.into_iter().zip(items).enumerate() {
            let task = self.tasks[group].iteration(id, index, item);
            let t = self.tasks.len();
            self.tasks.push(task);
            for &(d, _) in &inherited {
                self.dependents[d].push(t);
            }
            self.deps.push(inherited.clone());
            self.dependents.push(vec![group]);
            self.deps[group].push((t, Condition::ANY));
        }
        first..self.tasks.len()
    }

    /// The iterations a dry run assumes for-each `task` runs: those the runs a calibration read
    /// had (`measured`, group id → iteration ids, from [`crate::calibrate::Calibration`]), else
    /// the default of the pipeline parameter it reads, when that is a list written out (what a
    /// run without `--param` reads), else `expected_items` numbers (iterations `group[#0]`, …).
    fn assumed_iterations(
        &self,
        task: &Task,
        measured: &BTreeMap<String, Vec<String>>,
    ) -> Vec<(String, Value)> {
        let Some(f) = &task.for_each else {
            return Vec::new();
        };
        if let Some(ids) = measured.get(&task.id) {
            // The item of `copy[orders]` was "orders"; one named by its index is not known.
            return ids
                .iter()
                .take(MAX_ITEMS)
                .enumerate()
                .map(|(index, id)| {
                    let item = id
                        .strip_prefix(task.id.as_str())
                        .and_then(|rest| rest.strip_prefix('['))
                        .and_then(|rest| rest.strip_suffix(']'))
                        .filter(|name| !name.starts_with('#'))
                        .map_or_else(|| Value::from(index), Value::from);
                    (id.clone(), item)
                })
                .collect();
        }
        let default = match &f.items {
            Items::Reference(r) => r.template.whole().and_then(|e| match &e.source {
                crate::template::Source::Param(p) if e.helpers.is_empty() => {
                    let scope = self.scopes.get(task.scope)?;
                    if scope.given.contains_key(p) {
                        return None;
                    }
                    crate::params::plain(scope.params.get(p)?.default.as_ref()?)
                }
                _ => None,
            }),
            Items::List(_) => None,
        };
        let items = match default {
            Some(Value::Array(items)) if items.len() <= MAX_ITEMS => items,
            _ => (0..f.expected_items).map(Value::from).collect(),
        };
        iteration_ids(&task.id, &items)
            .into_iter()
            .zip(items)
            .collect()
    }

    /// The plan a dry run simulates: every for-each whose items are read at run time expanded
    /// over the iterations [`Plan::assumed_iterations`] gives (`measured`: what past runs had),
    /// iterations placed before their group so that the plan stays in topological order; the
    /// plan itself when it has none.
    pub fn with_expected_items(&self, measured: &BTreeMap<String, Vec<String>>) -> Cow<'_, Plan> {
        if !self.tasks.iter().any(Task::expands) {
            return Cow::Borrowed(self);
        }
        let mut tasks = Vec::with_capacity(self.tasks.len());
        let mut deps: Vec<Vec<(TaskId, Condition)>> = Vec::with_capacity(self.tasks.len());
        let mut new_index = vec![0; self.tasks.len()];
        for (t, task) in self.tasks.iter().enumerate() {
            let remapped: Vec<(TaskId, Condition)> = self.deps[t]
                .iter()
                .map(|&(d, c)| (new_index[d], c))
                .collect();
            let mut group = task.clone();
            let mut group_deps = remapped.clone();
            if task.expands() {
                group_deps.clear();
                for (index, (id, item)) in self
                    .assumed_iterations(task, measured)
                    .into_iter()
                    .enumerate()
                {
                    let mut it = task.iteration(id, index, item);
                    it.conditions = task.conditions.clone();
                    group_deps.push((tasks.len(), Condition::ANY));
                    tasks.push(it);
                    deps.push(remapped.clone());
                }
                if let Some(f) = &mut group.for_each {
                    f.items = Items::List(Vec::new());
                }
                group.conditions.clear();
            }
            new_index[t] = tasks.len();
            tasks.push(group);
            deps.push(group_deps);
        }
        let mut dependents = vec![Vec::new(); tasks.len()];
        for (t, ds) in deps.iter().enumerate() {
            for &(d, _) in ds {
                dependents[d].push(t);
            }
        }
        Cow::Owned(Plan {
            tasks,
            deps,
            dependents,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iterations_are_named_by_their_item_when_it_is_an_id_and_by_index_otherwise() {
        let items = [
            json!("orders"),
            json!(3),
            json!("two words"),
            json!("orders"),
            json!({"t": 1}),
            json!("x".repeat(65)),
        ];
        assert_eq!(
            iteration_ids("copy", &items),
            [
                "copy[orders]",
                "copy[#1]",
                "copy[#2]",
                "copy[#3]",
                "copy[#4]",
                "copy[#5]"
            ]
        );
    }

    #[test]
    fn a_dry_run_assumes_a_parameter_s_default_list_or_the_expected_items() {
        let text = "[params]\ntables = [\"orders\", \"returns\"]\n\
             [[notebook]]\nid = \"list\"\npath = \"a.py\"\n\
             [[notebook]]\nid = \"p\"\npath = \"a.py\"\nfor_each = \"{{ params.tables }}\"\n\
             [[notebook]]\nid = \"v\"\npath = \"a.py\"\ndepends_on = [\"list\"]\n\
             for_each = \"{{ tasks.list.value }}\"\nexpected_items = 3\n\
             [[notebook]]\nid = \"end\"\npath = \"a.py\"\ndepends_on = [\"p\", \"v\"]\n";
        let sources = crate::source::MemorySources::default().with("a.py", "");
        let loaded = crate::dag::load_text("p.toml", text, &sources);
        let plan = loaded.plan.expect("loads");
        assert_eq!(plan.tasks.len(), 4, "the plan holds each for-each alone");
        let assumed = plan.with_expected_items(&BTreeMap::new());
        let ids: Vec<&str> = assumed.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "list",
                "p[orders]",
                "p[returns]",
                "p",
                "v[#0]",
                "v[#1]",
                "v[#2]",
                "v",
                "end"
            ]
        );
        // Each iteration takes the for-each's dependencies; the for-each waits for them.
        let v0 = assumed.index_of("v[#0]").expect("v[#0]");
        assert_eq!(assumed.deps[v0], [(0, Condition::SUCCEEDED)]);
        let v = assumed.index_of("v").expect("v");
        let waits: Vec<TaskId> = assumed.deps[v].iter().map(|&(d, _)| d).collect();
        assert_eq!(waits, [4, 5, 6]);
        let end = assumed.index_of("end").expect("end");
        assert_eq!(assumed.deps[end].len(), 2);
        assert!(assumed.dependents[v].contains(&end));

        // What past runs read comes first, with the items their ids tell.
        let measured = BTreeMap::from([(
            "v".to_string(),
            vec!["v[stores]".to_string(), "v[#1]".to_string()],
        )]);
        let calibrated = plan.with_expected_items(&measured);
        let items: Vec<(&str, Option<&Value>)> = calibrated
            .tasks
            .iter()
            .filter(|t| t.id.starts_with("v["))
            .map(|t| (t.id.as_str(), t.iteration.as_ref().map(|i| &i.item)))
            .collect();
        assert_eq!(
            items,
            [
                ("v[stores]", Some(&Value::from("stores"))),
                ("v[#1]", Some(&Value::from(1)))
            ]
        );
    }

    #[test]
    fn a_run_time_list_must_be_a_list_of_at_most_the_limit() {
        assert_eq!(items_of(json!(["a", 1])).unwrap().len(), 2);
        assert!(items_of(json!("a,b")).unwrap_err().contains("a string"));
        let too_many = Value::Array(vec![json!(0); MAX_ITEMS + 1]);
        assert!(items_of(too_many).unwrap_err().contains("10000"));
        let secret = json!(["a", {"t": {"$secret": "env:HOME"}}]);
        assert!(items_of(secret).unwrap_err().contains("secret"));
    }
}
