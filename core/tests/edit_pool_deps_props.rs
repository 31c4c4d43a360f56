//! Property tests of the edits the dry run's "apply this pool" and the editor's dependency
//! conditions make (`Edit::SetTableKey` on `[pool]`, `Edit::SetDependencyKey`): on generated
//! files — `[pool]` written as a table, an inline table, dotted keys or not at all, dependencies
//! as bare ids or tables, with comments and varied spacing — the edit changes what it sets and
//! no other byte of the file, and the file then reads back with the new values.

use proptest::prelude::*;
use serde_json::json;
use spool_core::edit::{apply, Edit};
use spool_core::model::Condition;
use spool_core::parse::parse_pipeline;

#[derive(Debug, Clone, Copy)]
enum PoolStyle {
    Absent,
    Table,
    Inline,
    Dotted,
}

const SPACES: &[&str] = &["", " ", "  "];
const COMMENTS: &[&str] = &["", "  # why", " #"];

/// A dependency as written: a bare id, or a table with `on` and/or `if`.
#[derive(Debug, Clone)]
struct Dep {
    on: Option<&'static str>,
    when: Option<&'static str>,
    space: usize,
}

const ONS: &[&str] = &["failed", "completed", "skipped"];
const IFS: &[&str] = &["{{ params.n }} > 0", "not {{ params.flag }}"];

#[derive(Debug, Clone)]
struct File {
    pool: PoolStyle,
    /// `executors`/`executor_cores` written in the pool (when it is written).
    written: (bool, bool),
    comment: usize,
    /// Dependencies of step `n{i}` on earlier steps.
    deps: Vec<Vec<(usize, Dep)>>,
}

fn dep(d: &Dep, id: &str) -> String {
    let sp = SPACES[d.space];
    let mut keys = vec![format!("id = \"{id}\"")];
    keys.extend(d.on.map(|on| format!("on = \"{on}\"")));
    keys.extend(d.when.map(|w| format!("if = \"{w}\"")));
    if keys.len() == 1 {
        format!("{sp}\"{id}\"")
    } else {
        format!("{sp}{{ {} }}", keys.join(", "))
    }
}

impl File {
    fn text(&self) -> String {
        let comment = COMMENTS[self.comment];
        let mut out = format!("# generated{comment}\nname = \"p\"\n");
        out.push_str("[params]\nn = 1\nflag = false\n");
        let (e, c) = self.written;
        let keys: Vec<(&str, &str)> = [("executors", "3"), ("executor_cores", "2")]
            .into_iter()
            .zip([e, c])
            .filter(|(_, w)| *w)
            .map(|(kv, _)| kv)
            .chain([("max_concurrency", "7")])
            .collect();
        match self.pool {
            PoolStyle::Absent => {}
            PoolStyle::Table => {
                out.push_str("\n[pool]\n");
                for (k, v) in &keys {
                    out.push_str(&format!("{k} = {v}{comment}\n"));
                }
            }
            PoolStyle::Inline => {
                let kv: Vec<String> = keys.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                // A top-level key: before the first table.
                out = out.replacen(
                    "[params]",
                    &format!("pool = {{ {} }}{comment}\n[params]", kv.join(", ")),
                    1,
                );
            }
            PoolStyle::Dotted => {
                let kv: String = keys
                    .iter()
                    .map(|(k, v)| format!("pool.{k} = {v}{comment}\n"))
                    .collect();
                out = out.replacen("[params]", &format!("{kv}[params]"), 1);
            }
        }
        for (i, deps) in self.deps.iter().enumerate() {
            out.push_str(&format!(
                "\n[[notebook]]\nid = \"n{i}\"{comment}\npath = \"n{i}.py\"\n"
            ));
            if !deps.is_empty() {
                let list: Vec<String> =
                    deps.iter().map(|(j, d)| dep(d, &format!("n{j}"))).collect();
                out.push_str(&format!("depends_on = [{}]{comment}\n", list.join(",")));
            }
        }
        out
    }
}

fn files() -> impl Strategy<Value = File> {
    let dep = (
        prop::option::of(prop::sample::select(ONS)),
        prop::option::of(prop::sample::select(IFS)),
        0..SPACES.len(),
    )
        .prop_map(|(on, when, space)| Dep { on, when, space });
    (
        prop::sample::select(vec![
            PoolStyle::Absent,
            PoolStyle::Table,
            PoolStyle::Inline,
            PoolStyle::Dotted,
        ]),
        any::<(bool, bool)>(),
        0..COMMENTS.len(),
        prop::collection::vec(
            prop::collection::vec((any::<prop::sample::Index>(), dep), 0..3),
            2..6,
        ),
    )
        .prop_map(|(pool, written, comment, raw)| {
            // Each step depends on distinct earlier steps only.
            let deps = raw
                .into_iter()
                .enumerate()
                .map(|(i, ds)| {
                    let mut seen = Vec::new();
                    ds.into_iter()
                        .filter_map(|(j, d)| {
                            let j = (i > 0).then(|| j.index(i))?;
                            (!seen.contains(&j)).then(|| {
                                seen.push(j);
                                (j, d)
                            })
                        })
                        .collect()
                })
                .collect();
            File {
                pool,
                written,
                comment,
                deps,
            }
        })
}

/// The bytes `before` and `after` share at their start and at their end: what an edit left.
fn changed_middle<'a>(before: &'a str, after: &'a str) -> (&'a str, &'a str) {
    let prefix = before
        .bytes()
        .zip(after.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = before[prefix..]
        .bytes()
        .rev()
        .zip(after[prefix..].bytes().rev())
        .take_while(|(a, b)| a == b)
        .count();
    (
        &before[prefix..before.len() - suffix],
        &after[prefix..after.len() - suffix],
    )
}

fn set_pool(text: &str, executors: u32, cores: u32) -> String {
    let set = |text: &str, key: &str, n: u32| {
        apply(
            text,
            &Edit::SetTableKey {
                table: "pool".into(),
                key: key.into(),
                value: json!(n),
            },
        )
        .expect("the pool is set")
    };
    set(&set(text, "executors", executors), "executor_cores", cores)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn applying_a_pool_changes_only_its_sizes(file in files(), executors in 1u32..500, cores in 1u32..64) {
        let text = file.text();
        let out = set_pool(&text, executors, cores);
        let (parsed, diags) = parse_pipeline("p.toml", &out);
        let parsed = parsed.expect("still a pipeline");
        prop_assert!(diags.is_empty(), "{diags:?}\n{out}");
        prop_assert_eq!((parsed.pool.executors, parsed.pool.executor_cores), (executors, cores));
        // Every other byte stays: the sizes written in the file change where they stand, the
        // ones not written yet are added, and nothing else moves.
        let mut back = out.clone();
        for (key, was, written) in [("executors", 3, file.written.0), ("executor_cores", 2, file.written.1)] {
            let n = if key == "executors" { executors } else { cores };
            if written {
                let at = back.find(&format!("{key} = {n}")).expect("the size is written");
                back.replace_range(at..at + format!("{key} = {n}").len(), &format!("{key} = {was}"));
            }
        }
        let (removed, added) = changed_middle(&text, &back);
        prop_assert_eq!(removed, "", "nothing of the file is lost:\n{}\n---\n{}", text, out);
        prop_assert!(
            added.is_empty() || (added.contains("executor") && !added.contains("notebook") && !added.contains("params")),
            "only the sizes are added: {added:?}"
        );
        // Applying the same pool again changes nothing.
        prop_assert_eq!(set_pool(&out, executors, cores), out);
    }

    #[test]
    fn setting_a_dependencys_if_changes_only_that_dependency(file in files(), pick in any::<prop::sample::Index>(), cond in prop::sample::select(IFS)) {
        let edges: Vec<(usize, usize, Dep)> = file.deps.iter().enumerate()
            .flat_map(|(i, ds)| ds.iter().map(move |(j, d)| (i, *j, d.clone())))
            .collect();
        prop_assume!(!edges.is_empty());
        let (to, from, old) = edges[pick.index(edges.len())].clone();
        let (to, from) = (format!("n{to}"), format!("n{from}"));
        let text = file.text();
        let set = |text: &str, key: &str, value: Option<&str>| apply(text, &Edit::SetDependencyKey {
            to: to.clone(), from: from.clone(), key: key.into(), value: value.map(String::from),
        });
        let out = set(&text, "if", Some(cond)).expect("the if is set");
        let (parsed, diags) = parse_pipeline("p.toml", &out);
        prop_assert!(diags.is_empty(), "{diags:?}\n{out}");
        let parsed = parsed.expect("still a pipeline");
        let step = parsed.steps.iter().find(|s| s.id == to).expect("the step");
        let d = step.depends_on.iter().find(|d| d.id == from).expect("the dependency");
        prop_assert_eq!(d.when.as_ref().map(|w| w.text.as_str()), Some(cond));
        let expected_on = old.on.map_or(Condition::SUCCEEDED, |on| Condition::parse(on).expect("a condition"));
        prop_assert_eq!(d.on, expected_on);
        // Only that dependency's text changed.
        let (removed, added) = changed_middle(&text, &out);
        let written = dep(&old, &from);
        prop_assert!(written.contains(removed), "{removed:?} is not inside {written:?}");
        prop_assert!(added.contains(cond) || old.when == Some(cond), "{added:?}");
        // Removing the if again restores the file byte for byte when it had none.
        let back = set(&out, "if", None).expect("the if is removed");
        if old.when.is_none() {
            prop_assert_eq!(&back, &text);
        }
        // `on = "succeeded"` is the default: setting it on a bare id keeps the file.
        if old.on.is_none() && old.when.is_none() {
            prop_assert_eq!(set(&text, "on", Some("succeeded")).expect("on is set"), text.clone());
        }
    }
}

#[test]
fn a_dependency_gains_and_loses_keys_in_place() {
    let text = "[[notebook]]\nid = \"a\"\npath = \"a.py\"\n[[notebook]]\nid = \"b\"\npath = \"b.py\"\ndepends_on = [ \"a\" , \"c\" ]  # keep\n";
    let set = |text: &str, key: &str, value: Option<&str>| {
        apply(
            text,
            &Edit::SetDependencyKey {
                to: "b".into(),
                from: "a".into(),
                key: key.into(),
                value: value.map(String::from),
            },
        )
    };
    let with_if = set(text, "if", Some("{{ tasks.a.value }} == 'eu'")).unwrap();
    assert!(
        with_if.contains(
            r#"depends_on = [ { id = "a", if = "{{ tasks.a.value }} == 'eu'" } , "c" ]  # keep"#
        ),
        "{with_if}"
    );
    let failed = set(&with_if, "on", Some("failed")).unwrap();
    assert!(
        failed.contains(r#"{ id = "a", if = "{{ tasks.a.value }} == 'eu'", on = "failed" }"#),
        "{failed}"
    );
    let renamed = set(&failed, "id", Some("z")).unwrap();
    assert!(renamed.contains(r#"{ id = "z", if"#), "{renamed}");
    assert_eq!(
        set(text, "when", Some("x")).unwrap_err(),
        "a dependency has no key `when` (id, on, if)"
    );
    assert_eq!(
        set(text, "id", None).unwrap_err(),
        "a dependency needs its id"
    );
    let missing = apply(
        text,
        &Edit::SetDependencyKey {
            to: "b".into(),
            from: "zz".into(),
            key: "if".into(),
            value: Some("true".into()),
        },
    );
    assert_eq!(missing.unwrap_err(), "`b` does not depend on `zz`");
}
