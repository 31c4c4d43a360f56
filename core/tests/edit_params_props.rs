//! Property tests of the parameter edits (`Edit::SetParam`, `RenameParam`, `RemoveParam`):
//! on files with several notebooks and a `[params]` table, their parameters written as inline
//! tables, `[notebook.params]` tables or dotted keys with varied spacing, values and comments,
//! editing one key changes that key's bytes and no other byte of the file.

use proptest::prelude::*;
use spool_core::edit::{apply, read_params, Edit, ParamType, ParamValue};

/// Values as a user may write them: (type, text in the file).
const WRITTEN: &[(ParamType, &str)] = &[
    (ParamType::String, "\"plain\""),
    (ParamType::String, "'literal \\ kept'"),
    (ParamType::String, "\"esc \\\"q\\\"\""),
    (ParamType::String, "\"{{ params.run_date }}\""),
    (ParamType::Integer, "4_000_000"),
    (ParamType::Integer, "0x1F"),
    (ParamType::Integer, "+3"),
    (ParamType::Float, "1e3"),
    (ParamType::Float, "3.14_15"),
    (ParamType::Bool, "true"),
    (ParamType::Date, "2024-06-30"),
    (ParamType::Datetime, "1979-05-27T07:32:00Z"),
    (ParamType::Datetime, "1979-05-27 07:32:00"),
    (ParamType::Array, "[1, 2 ,3]"),
    (ParamType::Array, "[ \"eu\",\"us\" ]"),
    (ParamType::Table, "{ a = 1 }"),
    (ParamType::Table, "{x=[1]}"),
];

/// New values from the editor: (type, typed text, what the file then holds).
const TYPED: &[(ParamType, &str, &str)] = &[
    (ParamType::Integer, "4_000_000", "4_000_000"),
    (ParamType::Date, "2024-07-01", "2024-07-01"),
    (ParamType::String, "hello world", "\"hello world\""),
    (ParamType::Array, "[1,2]", "[1,2]"),
    (ParamType::Float, "2", "2.0"),
    (ParamType::Bool, "false", "false"),
    (ParamType::Table, "{ k = 'v' }", "{ k = 'v' }"),
    (
        ParamType::Datetime,
        " 2024-06-30T06:00:00Z ",
        "2024-06-30T06:00:00Z",
    ),
];

const SPACES: &[&str] = &["", " ", "  "];
const EQUALS: &[&str] = &["=", " = ", "  =  ", " =\t"];
const COMMENTS: &[&str] = &["", "  # why", " #"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Style {
    /// `params = { k = v, … }`
    Inline,
    /// `[params]` / `[notebook.params]` followed by `k = v` lines.
    Table,
    /// `params.k = v` lines.
    Dotted,
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: usize,
    space: usize,
    equals: usize,
    comment: usize,
}

#[derive(Debug, Clone)]
struct Scope {
    style: Style,
    entries: Vec<Entry>,
}

/// What a piece of the file is, so that a test knows which bytes an edit may touch.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Other,
    Key(usize, usize),
    Value(usize, usize),
    /// The bytes that go with entry (scope, entry) when it is removed.
    Removable(usize, usize),
    /// The comma before entry (scope, entry) of an inline table: removed with that entry, or
    /// with the first one when it is the second's.
    Comma(usize, usize),
}

struct Pieces(Vec<(String, Part)>);

impl Pieces {
    fn push(&mut self, text: impl Into<String>, part: Part) {
        self.0.push((text.into(), part));
    }

    fn text(&self, map: impl Fn(&str, Part) -> Option<String>) -> String {
        self.0
            .iter()
            .map(|(t, p)| map(t, *p).unwrap_or_else(|| t.clone()))
            .collect()
    }
}

fn scope_pieces(p: &mut Pieces, s: usize, scope: &Scope, table_header: &str) {
    match scope.style {
        Style::Inline => {
            p.push("params = {", Part::Other);
            for (e, entry) in scope.entries.iter().enumerate() {
                if e > 0 {
                    p.push(",", Part::Comma(s, e));
                }
                p.push(SPACES[entry.space], Part::Removable(s, e));
                p.push(&entry.key, Part::Key(s, e));
                p.push(EQUALS[entry.equals], Part::Removable(s, e));
                p.push(WRITTEN[entry.value].1, Part::Value(s, e));
            }
            p.push(" }\n", Part::Other);
        }
        Style::Table | Style::Dotted => {
            if scope.style == Style::Table {
                p.push(format!("{table_header}\n"), Part::Other);
            }
            for (e, entry) in scope.entries.iter().enumerate() {
                let prefix = if scope.style == Style::Dotted {
                    "params."
                } else {
                    ""
                };
                p.push(
                    format!("{}{prefix}", SPACES[entry.space]),
                    Part::Removable(s, e),
                );
                p.push(&entry.key, Part::Key(s, e));
                p.push(EQUALS[entry.equals], Part::Removable(s, e));
                p.push(WRITTEN[entry.value].1, Part::Value(s, e));
                p.push(
                    format!("{}\n", COMMENTS[entry.comment]),
                    Part::Removable(s, e),
                );
            }
        }
    }
}

/// Scope 0 is the file's `[params]`, scope i > 0 the notebook `nb{i}`.
fn file_pieces(scopes: &[Scope]) -> Pieces {
    let mut p = Pieces(Vec::new());
    p.push("# generated\nname = \"p\"   # the name\n", Part::Other);
    if scopes[0].style != Style::Table {
        scope_pieces(&mut p, 0, &scopes[0], "");
    }
    p.push("\n[pool]\nexecutors = 2\n\n", Part::Other);
    if scopes[0].style == Style::Table {
        scope_pieces(&mut p, 0, &scopes[0], "[params]");
    }
    for (i, scope) in scopes.iter().enumerate().skip(1) {
        p.push(
            format!("\n[[notebook]]\nid = \"nb{i}\"\npath = \"nb{i}.py\"\n"),
            Part::Other,
        );
        if scope.style != Style::Table {
            scope_pieces(&mut p, i, scope, "");
        }
        p.push("slots = 2  # two cores\n", Part::Other);
        if scope.style == Style::Table {
            scope_pieces(&mut p, i, scope, "[notebook.params]");
        }
    }
    p
}

fn scope_strategy() -> impl Strategy<Value = Scope> {
    let style = prop_oneof![Just(Style::Inline), Just(Style::Table), Just(Style::Dotted)];
    let entry = (
        0..WRITTEN.len(),
        0..SPACES.len(),
        0..EQUALS.len(),
        0..COMMENTS.len(),
    );
    (style, prop::collection::vec(entry, 1..5)).prop_map(|(style, entries)| Scope {
        style,
        entries: entries
            .into_iter()
            .enumerate()
            .map(|(k, (value, space, equals, comment))| Entry {
                key: format!("k{k}_{}", ["run_date", "n", "x"][value % 3]),
                value,
                // Inline tables have no comments and start with a space after `{`.
                space: if style == Style::Inline {
                    space.max(1)
                } else {
                    0
                },
                equals,
                comment: if style == Style::Inline { 0 } else { comment },
            })
            .collect(),
    })
}

fn case() -> impl Strategy<Value = (Vec<Scope>, usize, usize, usize)> {
    prop::collection::vec(scope_strategy(), 2..5).prop_flat_map(|scopes| {
        let n = scopes.len();
        (
            Just(scopes),
            0..n,
            any::<prop::sample::Index>(),
            0..TYPED.len(),
        )
            .prop_map(|(scopes, s, e, typed)| {
                let e = e.index(scopes[s].entries.len());
                (scopes, s, e, typed)
            })
    })
}

fn step_of(s: usize) -> Option<String> {
    (s > 0).then(|| format!("nb{s}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn setting_one_parameter_changes_only_its_value((scopes, s, e, typed) in case()) {
        let pieces = file_pieces(&scopes);
        let text = pieces.text(|_, _| None);
        let (ty, input, written) = TYPED[typed];
        let edit = Edit::SetParam {
            step: step_of(s),
            key: scopes[s].entries[e].key.clone(),
            value: ParamValue { ty, text: input.into() },
        };
        let out = apply(&text, &edit).expect("the edit applies");
        let want = pieces.text(|_, p| (p == Part::Value(s, e)).then(|| written.to_string()));
        prop_assert_eq!(out, want);
    }

    #[test]
    fn renaming_one_parameter_changes_only_its_name((scopes, s, e, _t) in case()) {
        let pieces = file_pieces(&scopes);
        let text = pieces.text(|_, _| None);
        let edit = Edit::RenameParam {
            step: step_of(s),
            key: scopes[s].entries[e].key.clone(),
            to: "renamed_key".into(),
        };
        let out = apply(&text, &edit).expect("the edit applies");
        let want = pieces.text(|_, p| (p == Part::Key(s, e)).then(|| "renamed_key".to_string()));
        prop_assert_eq!(out, want);
    }

    #[test]
    fn removing_one_parameter_removes_only_its_entry((scopes, s, e, _t) in case()) {
        let pieces = file_pieces(&scopes);
        let text = pieces.text(|_, _| None);
        let edit = Edit::RemoveParam { step: step_of(s), key: scopes[s].entries[e].key.clone() };
        let out = apply(&text, &edit).expect("the edit applies");
        let want = pieces.text(|_, p| {
            let gone = match p {
                Part::Key(a, b) | Part::Value(a, b) | Part::Removable(a, b) => (a, b) == (s, e),
                Part::Comma(a, b) => a == s && (b == e || (e == 0 && b == 1)),
                Part::Other => false,
            };
            gone.then(String::new)
        });
        prop_assert_eq!(out, want);
    }

    #[test]
    fn adding_then_removing_a_parameter_gives_back_the_file((scopes, s, _e, typed) in case()) {
        let text = file_pieces(&scopes).text(|_, _| None);
        let (ty, input, _) = TYPED[typed];
        let add = Edit::SetParam {
            step: step_of(s),
            key: "added".into(),
            value: ParamValue { ty, text: input.into() },
        };
        let added = apply(&text, &add).expect("the edit applies");
        let params = read_params(&added).expect("still TOML");
        let rows = params.of(step_of(s).as_deref());
        prop_assert_eq!(rows.last().map(|r| (r.key.as_str(), r.value.ty)), Some(("added", ty)));
        prop_assert_eq!(rows.len(), scopes[s].entries.len() + 1);
        let removed = apply(&added, &Edit::RemoveParam { step: step_of(s), key: "added".into() })
            .expect("the edit applies");
        prop_assert_eq!(removed, text);
    }

    #[test]
    fn parameters_are_read_with_their_written_type_and_text((scopes, _s, _e, _t) in case()) {
        let text = file_pieces(&scopes).text(|_, _| None);
        let params = read_params(&text).expect("TOML");
        for (s, scope) in scopes.iter().enumerate() {
            let rows = params.of(step_of(s).as_deref());
            let got: Vec<(&str, ParamType)> = rows.iter().map(|r| (r.key.as_str(), r.value.ty)).collect();
            let want: Vec<(&str, ParamType)> =
                scope.entries.iter().map(|e| (e.key.as_str(), WRITTEN[e.value].0)).collect();
            prop_assert_eq!(got, want);
            for (row, entry) in rows.iter().zip(&scope.entries) {
                // What the editor shows sets the same bytes back.
                let again = ParamValue::to_toml(&row.value).expect("reads back");
                let written = WRITTEN[entry.value].1;
                if row.value.ty != ParamType::String {
                    prop_assert_eq!(again.to_string(), written);
                }
            }
        }
    }
}
