//! `{{ … }}` references in parameter values: `{{ params.run_date }}`, `{{ run.date |
//! add_days(-1) }}`, `{{ tasks.load_orders.values.row_count }}`. A value that is exactly one
//! reference takes the referenced value with its type; references inside longer text are
//! written into it as text. The language is flat (a source, then helpers), read by one scan
//! with limits, never by recursion; what it produces is a JSON value, never code.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::ops::Range;

/// References in one string at most.
pub const MAX_REFERENCES: usize = 64;
/// Characters between `{{` and `}}` at most.
pub const MAX_EXPRESSION_CHARS: usize = 512;
/// Helpers after one source at most (`| add_days(-1) | format_date("%Y%m%d")`).
pub const MAX_HELPERS: usize = 8;
/// Arrays and tables inside a parameter value are searched for references this deep at most.
pub const MAX_VALUE_DEPTH: usize = 32;
/// Days added by a helper at most, either way (keeps dates within years 0..=9999 reachable).
const MAX_DAY_SHIFT: i64 = 3_660_000;

/// The type of a parameter or of what a reference yields. `Any` is a task's value, known only
/// when the task has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    String,
    Number,
    Bool,
    Date,
    Array,
    Table,
    Any,
}

impl ValueType {
    /// The types a `[params]` declaration may name.
    pub const NAMES: [&'static str; 6] = ["string", "number", "bool", "date", "array", "table"];

    pub fn parse(name: &str) -> Option<ValueType> {
        Some(match name {
            "string" => ValueType::String,
            "number" => ValueType::Number,
            "bool" => ValueType::Bool,
            "date" => ValueType::Date,
            "array" => ValueType::Array,
            "table" => ValueType::Table,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Number => "number",
            ValueType::Bool => "bool",
            ValueType::Date => "date",
            ValueType::Array => "array",
            ValueType::Table => "table",
            ValueType::Any => "value",
        }
    }

    /// The name with its article: `a date`, `an array`.
    pub fn a(self) -> &'static str {
        match self {
            ValueType::String => "a string",
            ValueType::Number => "a number",
            ValueType::Bool => "a bool",
            ValueType::Date => "a date",
            ValueType::Array => "an array",
            ValueType::Table => "a table",
            ValueType::Any => "a value",
        }
    }

    /// Whether something of type `found` may stand where `self` is expected, as far as can be
    /// known before the run (`Any` is checked when its value is known).
    pub fn admits(self, found: ValueType) -> bool {
        self == found
            || self == ValueType::Any
            || found == ValueType::Any
            || (self == ValueType::String && found == ValueType::Date)
    }

    /// Whether a reference of this type may be written inside text.
    fn is_scalar(self) -> bool {
        !matches!(self, ValueType::Array | ValueType::Table)
    }
}

/// `value` as a parameter of type `ty`, or why it cannot be. Dates are `YYYY-MM-DD` strings;
/// text from a command line or a form is read as the type asks (`"5"` for a number, `"true"`
/// for a bool, JSON for an array or a table). The one rule for overrides, for values passed to
/// a sub-pipeline and for declared defaults.
pub fn coerce(ty: ValueType, value: &Value) -> Result<Value, String> {
    let text = value.as_str();
    let parsed = |t: &str| serde_json::from_str::<Value>(t.trim()).ok();
    if crate::secret::reference(value).is_some() {
        return match ty {
            ValueType::Any | ValueType::String => Ok(value.clone()),
            _ => Err(format!(
                "a secret is text, but the parameter is declared as {}",
                ty.a()
            )),
        };
    }
    let found = match (ty, value) {
        (ValueType::Any, v) => Some(v.clone()),
        (ValueType::String, Value::String(_)) => Some(value.clone()),
        (ValueType::String, Value::Number(n)) => Some(Value::String(n.to_string())),
        (ValueType::String, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (ValueType::Number, Value::Number(_)) | (ValueType::Bool, Value::Bool(_)) => {
            Some(value.clone())
        }
        (ValueType::Array, Value::Array(_)) | (ValueType::Table, Value::Object(_)) => {
            Some(value.clone())
        }
        (ValueType::Date, Value::String(s)) => Date::parse(s).map(|d| Value::String(d.to_string())),
        (ValueType::Number, Value::String(s)) => parsed(s).filter(Value::is_number),
        (ValueType::Bool, Value::String(s)) => parsed(s).filter(Value::is_boolean),
        (ValueType::Array, Value::String(s)) => parsed(s).filter(Value::is_array),
        (ValueType::Table, Value::String(s)) => parsed(s).filter(Value::is_object),
        _ => None,
    };
    found.ok_or_else(|| {
        let shown = text.map_or_else(|| value.to_string(), |t| format!("{t:?}"));
        let shown = crate::diag::escape_controls(&shown)
            .chars()
            .take(80)
            .collect::<String>();
        match ty {
            ValueType::Date => format!("expected a date (YYYY-MM-DD), found {shown}"),
            _ => format!("expected {}, found {shown}", ty.a()),
        }
    })
}

/// `text` written so that it reads as itself: every `{{` as `{{ "{{" }}` (for values taken
/// from elsewhere, such as an imported pipeline's).
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains("{{") {
        text.replace("{{", "{{ \"{{\" }}").into()
    } else {
        text.into()
    }
}

/// What a reference starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// `params.NAME`: a parameter of the pipeline file.
    Param(String),
    /// `run.id`: the run's number.
    RunId,
    /// `run.trigger_time`: when the run was started, `YYYY-MM-DDTHH:MM:SSZ` (UTC).
    RunTriggerTime,
    /// `run.date`: the day of `run.trigger_time`.
    RunDate,
    /// `tasks.ID.value`: the exit value of an upstream notebook.
    TaskValue(String),
    /// `tasks.ID.values` (all of them, a table) or `tasks.ID.values.KEY` (one).
    TaskValues(String, Option<String>),
    /// `"text"`: a string literal (how to write `{{` itself: `{{ "{{" }}`).
    Literal(String),
}

impl Source {
    /// The upstream task a reference reads, if any.
    pub fn task(&self) -> Option<&str> {
        match self {
            Source::TaskValue(t) | Source::TaskValues(t, _) => Some(t),
            _ => None,
        }
    }

    /// Whether it reads the run itself (and nothing declared in a file).
    pub fn is_run(&self) -> bool {
        matches!(
            self,
            Source::RunId | Source::RunTriggerTime | Source::RunDate | Source::Literal(_)
        )
    }
}

/// A transformation of a date, after `|`.
#[derive(Debug, Clone, PartialEq)]
pub enum Helper {
    AddDays(i64),
    AddMonths(i64),
    StartOfMonth,
    EndOfMonth,
    /// `%Y`, `%m`, `%d` and `%%`; gives a string.
    FormatDate(String),
}

impl Helper {
    pub const NAMES: [&'static str; 5] = [
        "add_days",
        "add_months",
        "start_of_month",
        "end_of_month",
        "format_date",
    ];

    fn output(&self) -> ValueType {
        match self {
            Helper::FormatDate(_) => ValueType::String,
            _ => ValueType::Date,
        }
    }

    fn apply(&self, d: Date) -> Result<Value, String> {
        let shifted = match self {
            Helper::AddDays(n) => Date::from_days(d.days() + n),
            Helper::AddMonths(n) => d.add_months(*n),
            Helper::StartOfMonth => Some(Date { day: 1, ..d }),
            Helper::EndOfMonth => Some(Date {
                day: days_in_month(d.year, d.month),
                ..d
            }),
            Helper::FormatDate(f) => return Ok(Value::String(d.format(f))),
        };
        shifted
            .map(|d| Value::String(d.to_string()))
            .ok_or_else(|| format!("the date {d} moved out of the years 0 to 9999"))
    }
}

/// One `{{ … }}`: a source and the helpers applied to it in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub source: Source,
    pub helpers: Vec<Helper>,
}

/// A piece of a string with references.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// A reference and its byte range in the string, braces included.
    Ref(Expr, Range<usize>),
}

/// A string with at least one reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

/// Why a string is not a valid template, and where (byte range in the string).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub span: Range<usize>,
    pub message: String,
}

impl Template {
    /// `None` when `s` has no `{{` (an ordinary string).
    pub fn parse(s: &str) -> Result<Option<Template>, TemplateError> {
        if !s.contains("{{") {
            return Ok(None);
        }
        let mut parts = Vec::new();
        let mut rest = 0;
        let mut refs = 0;
        while let Some(open) = s[rest..].find("{{").map(|i| rest + i) {
            if open > rest {
                parts.push(Part::Text(s[rest..open].to_string()));
            }
            let inner_start = open + 2;
            let Some(close) = s[inner_start..].find("}}").map(|i| inner_start + i) else {
                return Err(TemplateError {
                    span: open..s.len(),
                    message: "`{{` is not closed by `}}` (write `{{ \"{{\" }}` for the text `{{`)"
                        .into(),
                });
            };
            refs += 1;
            if refs > MAX_REFERENCES {
                return Err(TemplateError {
                    span: open..close + 2,
                    message: format!("more than {MAX_REFERENCES} references in one value"),
                });
            }
            let inner = &s[inner_start..close];
            if inner.chars().count() > MAX_EXPRESSION_CHARS {
                return Err(TemplateError {
                    span: open..close + 2,
                    message: format!(
                        "a reference is longer than {MAX_EXPRESSION_CHARS} characters"
                    ),
                });
            }
            let expr = parse_expr(inner).map_err(|(at, message)| TemplateError {
                span: inner_start + at.start..inner_start + at.end,
                message,
            })?;
            parts.push(Part::Ref(expr, open..close + 2));
            rest = close + 2;
        }
        if rest < s.len() {
            parts.push(Part::Text(s[rest..].to_string()));
        }
        Ok(Some(Template { parts }))
    }

    /// The one reference when the string is nothing else (it then keeps the value's type).
    pub fn whole(&self) -> Option<&Expr> {
        match self.parts.as_slice() {
            [Part::Ref(e, _)] => Some(e),
            _ => None,
        }
    }

    /// Every reference with its range.
    pub fn refs(&self) -> impl Iterator<Item = (&Expr, &Range<usize>)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(e, r) => Some((e, r)),
            Part::Text(_) => None,
        })
    }

    /// The type the template yields, given the type of each source (`Err` with the range of
    /// the reference at fault). References inside text must be scalars.
    pub fn check(
        &self,
        type_of: &mut dyn FnMut(&Source) -> Result<ValueType, String>,
    ) -> Result<ValueType, (Range<usize>, String)> {
        let mut whole = ValueType::String;
        for (e, at) in self.refs() {
            let ty = e.check(type_of).map_err(|m| (at.clone(), m))?;
            if self.whole().is_some() {
                whole = ty;
            } else if !ty.is_scalar() {
                return Err((
                    at.clone(),
                    format!(
                        "{} is {}, which cannot be written inside text; make the reference the \
                         whole value",
                        e.describe(),
                        ty.a()
                    ),
                ));
            }
        }
        Ok(whole)
    }

    /// The value of the template, with `lookup` giving each source's value.
    pub fn eval(&self, lookup: &dyn Fn(&Source) -> Result<Value, String>) -> Result<Value, String> {
        if let Some(e) = self.whole() {
            return e.eval(lookup);
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Ref(e, _) => match e.eval(lookup)? {
                    Value::String(s) => out.push_str(&s),
                    v @ (Value::Number(_) | Value::Bool(_) | Value::Null) => {
                        out.push_str(&v.to_string())
                    }
                    v if crate::secret::reference(&v).is_some() => {
                        return Err(format!(
                            "{} is a secret, which is passed whole (a value that is only the \
                             reference), never inside other text",
                            e.describe()
                        ))
                    }
                    v => {
                        return Err(format!(
                            "{} is {}, which cannot be written inside text",
                            e.describe(),
                            if v.is_array() { "an array" } else { "a table" }
                        ))
                    }
                },
            }
        }
        Ok(Value::String(out))
    }
}

impl Expr {
    fn check(
        &self,
        type_of: &mut dyn FnMut(&Source) -> Result<ValueType, String>,
    ) -> Result<ValueType, String> {
        let mut ty = type_of(&self.source)?;
        for h in &self.helpers {
            if !ValueType::Date.admits(ty) {
                return Err(format!(
                    "{} needs a date, but {} is {}{}",
                    helper_name(h),
                    self.describe(),
                    ty.a(),
                    match &self.source {
                        Source::Param(p) => format!(
                            " (declare it as one: `{p} = {{ type = \"date\", default = … }}`)"
                        ),
                        _ => String::new(),
                    }
                ));
            }
            ty = h.output();
        }
        Ok(ty)
    }

    fn eval(&self, lookup: &dyn Fn(&Source) -> Result<Value, String>) -> Result<Value, String> {
        let mut v = lookup(&self.source)?;
        for h in &self.helpers {
            let d = v.as_str().and_then(Date::parse).ok_or_else(|| {
                format!(
                    "{} needs a date (YYYY-MM-DD), but {} is {}",
                    helper_name(h),
                    self.describe(),
                    crate::diag::escape_controls(&v.to_string())
                        .chars()
                        .take(80)
                        .collect::<String>()
                )
            })?;
            v = h.apply(d)?;
        }
        Ok(v)
    }

    /// The reference as a user wrote it, without helpers: `params.run_date`.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Param(p) => format!("`params.{p}`"),
            Source::RunId => "`run.id`".into(),
            Source::RunTriggerTime => "`run.trigger_time`".into(),
            Source::RunDate => "`run.date`".into(),
            Source::TaskValue(t) => format!("`tasks.{t}.value`"),
            Source::TaskValues(t, None) => format!("`tasks.{t}.values`"),
            Source::TaskValues(t, Some(k)) => format!("`tasks.{t}.values.{k}`"),
            Source::Literal(_) => "the text".into(),
        }
    }
}

fn helper_name(h: &Helper) -> &'static str {
    match h {
        Helper::AddDays(_) => "`add_days`",
        Helper::AddMonths(_) => "`add_months`",
        Helper::StartOfMonth => "`start_of_month`",
        Helper::EndOfMonth => "`end_of_month`",
        Helper::FormatDate(_) => "`format_date`",
    }
}

/// A token of an expression, with its byte range.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Letters, digits, `_` and `-`, not starting with a digit or `-`.
    Name(String),
    Int(i64),
    Str(String),
    Punct(char),
}

/// A problem inside an expression: where (bytes of the expression) and what.
type ExprError = (Range<usize>, String);

fn lex(s: &str) -> Result<Vec<(Tok, Range<usize>)>, ExprError> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let tok = match c {
            c if c.is_whitespace() => continue,
            '.' | '|' | '(' | ')' | ',' | '[' | ']' => Tok::Punct(c),
            '"' | '\'' => {
                let mut text = String::new();
                let mut closed = false;
                for (_, d) in chars.by_ref() {
                    if d == c {
                        closed = true;
                        break;
                    }
                    text.push(d);
                }
                if !closed {
                    return Err((
                        i..s.len(),
                        format!("the text starting with {c} is not closed"),
                    ));
                }
                Tok::Str(text)
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    end = j + 1;
                    chars.next();
                }
                match s[i..end].parse::<i64>() {
                    Ok(n) => Tok::Int(n),
                    Err(_) => {
                        return Err((i..end, format!("`{}` is not a whole number", &s[i..end])))
                    }
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if !(d.is_alphanumeric() || d == '_' || d == '-') {
                        break;
                    }
                    end = j + d.len_utf8();
                    chars.next();
                }
                Tok::Name(s[i..end].to_string())
            }
            other => return Err((i..i + other.len_utf8(), format!("unexpected `{other}`"))),
        };
        let end = chars.peek().map_or(s.len(), |&(j, _)| j);
        out.push((tok, i..end));
    }
    Ok(out)
}

/// `source ( "|" helper )*`, read left to right over the tokens.
fn parse_expr(s: &str) -> Result<Expr, ExprError> {
    let toks = lex(s)?;
    let mut at;
    let end = s.len()..s.len();
    let span = |i: usize| toks.get(i).map_or(end.clone(), |t| t.1.clone());
    // A name segment: `.name`, or `["name"]` for names with other characters.
    let segment = |at: &mut usize, what: &str| -> Result<String, ExprError> {
        match (toks.get(*at).map(|t| &t.0), toks.get(*at + 1).map(|t| &t.0)) {
            (Some(Tok::Punct('.')), Some(Tok::Name(n))) => {
                *at += 2;
                Ok(n.clone())
            }
            (Some(Tok::Punct('[')), Some(Tok::Str(n)))
                if toks.get(*at + 2).map(|t| &t.0) == Some(&Tok::Punct(']')) =>
            {
                *at += 3;
                Ok(n.clone())
            }
            _ => Err((span(*at), format!("expected {what}"))),
        }
    };
    let source = match toks.first().map(|t| &t.0) {
        None => return Err((0..s.len(), "an empty reference: write `{{ params.NAME }}`, `{{ run.date }}` or `{{ tasks.ID.value }}`".into())),
        Some(Tok::Str(text)) => {
            at = 1;
            Source::Literal(text.clone())
        }
        Some(Tok::Name(root)) if root == "params" => {
            at = 1;
            Source::Param(segment(&mut at, "`.NAME` after `params`")?)
        }
        Some(Tok::Name(root)) if root == "run" => {
            at = 1;
            let field = segment(&mut at, "`.id`, `.trigger_time` or `.date` after `run`")?;
            match field.as_str() {
                "id" => Source::RunId,
                "trigger_time" => Source::RunTriggerTime,
                "date" => Source::RunDate,
                other => {
                    let hint = crate::diag::did_you_mean(other, ["id", "trigger_time", "date"])
                        .map(|h| format!("; did you mean `run.{h}`?"))
                        .unwrap_or_default();
                    return Err((
                        span(at - 1),
                        format!("unknown `run.{other}`: the run has `id`, `trigger_time` and `date`{hint}"),
                    ));
                }
            }
        }
        Some(Tok::Name(root)) if root == "tasks" => {
            at = 1;
            let task = segment(&mut at, "`.ID` after `tasks` (or `[\"ID\"]` for an id with a dot)")?;
            let field = segment(&mut at, "`.value` or `.values` after the task's id")?;
            match field.as_str() {
                "value" => Source::TaskValue(task),
                "values" => {
                    let key = match toks.get(at).map(|t| &t.0) {
                        Some(Tok::Punct('.' | '[')) => Some(segment(&mut at, "a key after `values`")?),
                        _ => None,
                    };
                    Source::TaskValues(task, key)
                }
                other => {
                    return Err((
                        span(at - 1),
                        format!("unknown `.{other}` of a task: expected `.value` (its exit value) or `.values` (what it set)"),
                    ))
                }
            }
        }
        Some(Tok::Name(other)) => {
            let hint = crate::diag::did_you_mean(other, ["params", "run", "tasks"])
                .map(|h| format!("; did you mean `{h}`?"))
                .unwrap_or_default();
            return Err((
                span(0),
                format!("unknown name `{other}`: a reference starts with `params.`, `run.` or `tasks.`{hint}"),
            ));
        }
        Some(_) => return Err((span(0), "a reference starts with `params.`, `run.`, `tasks.` or a \"text\"".into())),
    };
    let mut helpers = Vec::new();
    while at < toks.len() {
        if toks[at].0 != Tok::Punct('|') {
            return Err((span(at), "expected `|` and a helper, or `}}`".into()));
        }
        let Some((Tok::Name(name), name_span)) = toks.get(at + 1) else {
            return Err((
                span(at + 1),
                format!("expected a helper after `|`: {}", Helper::NAMES.join(", ")),
            ));
        };
        at += 2;
        // Arguments: `(` literal ( `,` literal )* `)`, or none.
        let mut args = Vec::new();
        if toks.get(at).map(|t| &t.0) == Some(&Tok::Punct('(')) {
            at += 1;
            loop {
                match toks.get(at).map(|t| &t.0) {
                    Some(Tok::Punct(')')) if args.is_empty() => break,
                    Some(Tok::Int(_) | Tok::Str(_)) if args.len() < 4 => {
                        args.push(toks[at].0.clone());
                        at += 1;
                    }
                    _ => {
                        return Err((
                            span(at),
                            "expected a number or a \"text\" as an argument".into(),
                        ))
                    }
                }
                match toks.get(at).map(|t| &t.0) {
                    Some(Tok::Punct(',')) => at += 1,
                    Some(Tok::Punct(')')) => break,
                    _ => return Err((span(at), "expected `,` or `)`".into())),
                }
            }
            at += 1;
        }
        let helper = match (name.as_str(), args.as_slice()) {
            ("add_days", [Tok::Int(n)]) if n.abs() <= MAX_DAY_SHIFT => Helper::AddDays(*n),
            ("add_months", [Tok::Int(n)]) if n.abs() <= MAX_DAY_SHIFT / 28 => Helper::AddMonths(*n),
            ("start_of_month", []) => Helper::StartOfMonth,
            ("end_of_month", []) => Helper::EndOfMonth,
            ("format_date", [Tok::Str(f)]) => Helper::FormatDate(f.clone()),
            (known, _) if Helper::NAMES.contains(&known) => {
                let usage = match known {
                    "add_days" => "`add_days(N)`, N a whole number of days (negative goes back)",
                    "add_months" => "`add_months(N)`, N a whole number of months",
                    "format_date" => "`format_date(\"%Y%m%d\")` (%Y, %m, %d, %%)",
                    _ => "without arguments",
                };
                return Err((name_span.clone(), format!("`{known}` is written {usage}")));
            }
            (other, _) => {
                let hint = crate::diag::did_you_mean(other, Helper::NAMES)
                    .map(|h| format!("; did you mean `{h}`?"))
                    .unwrap_or_else(|| format!("; the helpers are {}", Helper::NAMES.join(", ")));
                return Err((name_span.clone(), format!("unknown helper `{other}`{hint}")));
            }
        };
        helpers.push(helper);
        if helpers.len() > MAX_HELPERS {
            return Err((
                name_span.clone(),
                format!("more than {MAX_HELPERS} helpers in one reference"),
            ));
        }
    }
    Ok(Expr { source, helpers })
}

/// A day of the proleptic Gregorian calendar, years 0 to 9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    pub year: i64,
    pub month: u32,
    pub day: u32,
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Date {
    /// `YYYY-MM-DD`, exactly.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let month = u32::try_from(month).ok().filter(|m| (1..=12).contains(m))?;
        let day = u32::try_from(day)
            .ok()
            .filter(|&d| d >= 1 && d <= days_in_month(year, month))?;
        Some(Date { year, month, day })
    }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    pub fn days(self) -> i64 {
        let y = if self.month <= 2 {
            self.year - 1
        } else {
            self.year
        };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The day `days` after 1970-01-01, when it falls in years 0 to 9999.
    pub fn from_days(days: i64) -> Option<Date> {
        let z = days.checked_add(719_468)?;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        (0..=9999)
            .contains(&year)
            .then_some(Date { year, month, day })
    }

    /// Months later (or earlier), the day clamped to the month's last.
    fn add_months(self, n: i64) -> Option<Date> {
        let index = self.year * 12 + i64::from(self.month) - 1 + n;
        let (year, month) = (index.div_euclid(12), (index.rem_euclid(12) + 1) as u32);
        (0..=9999).contains(&year).then(|| Date {
            year,
            month,
            day: self.day.min(days_in_month(year, month)),
        })
    }

    fn format(self, pattern: &str) -> String {
        let mut out = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('Y') => out.push_str(&format!("{:04}", self.year)),
                Some('m') => out.push_str(&format!("{:02}", self.month)),
                Some('d') => out.push_str(&format!("{:02}", self.day)),
                Some(other) => {
                    out.push('%');
                    if other != '%' {
                        out.push(other);
                    }
                }
                None => out.push('%'),
            }
        }
        out
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// What the built-in `run.*` references read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: i64,
    /// Milliseconds since 1970-01-01 UTC.
    pub trigger_ms: i64,
}

impl RunInfo {
    pub fn value(&self, source: &Source) -> Option<Value> {
        let secs = self.trigger_ms.div_euclid(1000);
        let date = Date::from_days(secs.div_euclid(86_400))?;
        Some(match source {
            Source::RunId => Value::from(self.id),
            Source::RunDate => Value::String(date.to_string()),
            Source::RunTriggerTime => {
                let s = secs.rem_euclid(86_400);
                Value::String(format!(
                    "{date}T{:02}:{:02}:{:02}Z",
                    s / 3600,
                    s / 60 % 60,
                    s % 60
                ))
            }
            Source::Literal(t) => Value::String(t.clone()),
            _ => return None,
        })
    }

    /// The type of a `run.*` reference.
    pub fn type_of(source: &Source) -> Option<ValueType> {
        Some(match source {
            Source::RunId => ValueType::Number,
            Source::RunDate => ValueType::Date,
            Source::RunTriggerTime | Source::Literal(_) => ValueType::String,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn eval(s: &str) -> Result<Value, String> {
        let run = RunInfo {
            id: 7,
            // 2024-03-01T05:06:07Z
            trigger_ms: 1_709_269_567_000,
        };
        let t = Template::parse(s)
            .map_err(|e| e.message)?
            .expect("a template");
        t.eval(&|src| match src {
            Source::Param(p) if p == "day" => Ok(json!("2024-01-31")),
            Source::Param(p) if p == "tables" => Ok(json!(["a", "b"])),
            Source::TaskValues(t, Some(k)) if t == "load" && k == "rows" => Ok(json!(12)),
            other => run.value(other).ok_or_else(|| "unknown".to_string()),
        })
    }

    #[test]
    fn a_whole_reference_keeps_its_type_and_text_gets_its_rendering() {
        assert_eq!(eval("{{ tasks.load.values.rows }}"), Ok(json!(12)));
        assert_eq!(eval("{{params.tables}}"), Ok(json!(["a", "b"])));
        assert_eq!(
            eval("rows={{ tasks.load.values.rows }};"),
            Ok(json!("rows=12;"))
        );
        assert_eq!(eval("{{ run.id }}"), Ok(json!(7)));
        assert_eq!(
            eval("{{ run.trigger_time }}"),
            Ok(json!("2024-03-01T05:06:07Z"))
        );
        assert_eq!(eval("{{ \"{{\" }} x }}"), Ok(json!("{{ x }}")));
    }

    #[test]
    fn date_helpers_cross_months_and_leap_days() {
        for (reference, day) in [
            ("run.date | add_days(-1)", "2024-02-29"),
            ("params.day | add_months(1)", "2024-02-29"),
            ("params.day | add_months(-13)", "2022-12-31"),
            ("run.date | end_of_month", "2024-03-31"),
            (
                "params.day | start_of_month | format_date(\"%Y%m%d %%\")",
                "20240101 %",
            ),
        ] {
            assert_eq!(
                eval(&format!("{{{{ {reference} }}}}")),
                Ok(json!(day)),
                "{reference}"
            );
        }
    }

    #[test]
    fn values_stay_data_whatever_they_hold() {
        // A value that looks like code or like a reference is text, never read again.
        let t = Template::parse("x{{ tasks.load.values.code }}y")
            .unwrap()
            .unwrap();
        let out = t.eval(&|_| Ok(json!("\"); import os; {{ params.day }} #")));
        assert_eq!(out, Ok(json!("x\"); import os; {{ params.day }} #y")));
    }

    #[test]
    fn mistakes_are_located_in_the_string() {
        let err = |s: &str| Template::parse(s).expect_err(s);
        let e = err("a {{ parms.x }}");
        assert_eq!(
            (e.span.start, e.message.contains("did you mean `params`")),
            (5, true)
        );
        let e = err("{{ run.dat }}");
        assert!(
            e.message.contains("did you mean `run.date`"),
            "{}",
            e.message
        );
        let e = err("{{ run.date | add_day(1) }}");
        assert!(
            e.message.contains("did you mean `add_days`"),
            "{}",
            e.message
        );
        assert_eq!(&"{{ run.date | add_day(1) }}"[e.span], "add_day");
        assert!(err("{{ run.date ").message.contains("not closed"));
        assert!(err("{{ run.date | add_days }}")
            .message
            .contains("add_days(N)"));
        assert!(err("{{ tasks.a.vals }}")
            .message
            .contains("`.value` (its exit value)"));
        let many = "{{ run.id }}".repeat(MAX_REFERENCES + 1);
        assert!(err(&many).message.contains("more than 64"));
        assert_eq!(Template::parse("no braces }}"), Ok(None));
    }

    #[test]
    fn types_are_checked_before_the_run() {
        let t = Template::parse("{{ params.n | add_days(1) }}")
            .unwrap()
            .unwrap();
        let err = t
            .check(&mut |_| Ok(ValueType::Number))
            .expect_err("a number is no date");
        assert!(err.1.contains("needs a date"), "{}", err.1);
        let t = Template::parse("in {{ params.tables }}").unwrap().unwrap();
        let err = t
            .check(&mut |_| Ok(ValueType::Array))
            .expect_err("no arrays in text");
        assert!(err.1.contains("cannot be written inside text"), "{}", err.1);
        let t = Template::parse("{{ params.tables }}").unwrap().unwrap();
        assert_eq!(t.check(&mut |_| Ok(ValueType::Array)), Ok(ValueType::Array));
    }

    #[test]
    fn coercion_reads_text_as_the_declared_type() {
        assert_eq!(coerce(ValueType::Number, &json!("5")), Ok(json!(5)));
        assert_eq!(coerce(ValueType::Bool, &json!("true")), Ok(json!(true)));
        assert_eq!(coerce(ValueType::String, &json!(5)), Ok(json!("5")));
        assert_eq!(
            coerce(ValueType::Array, &json!("[1, 2]")),
            Ok(json!([1, 2]))
        );
        assert!(coerce(ValueType::Date, &json!("2024-02-30"))
            .expect_err("no such day")
            .contains("YYYY-MM-DD"));
        assert!(coerce(ValueType::Number, &json!("five")).is_err());
        assert!(coerce(ValueType::Table, &json!([1])).is_err());
    }

    proptest! {
        #[test]
        fn days_and_dates_convert_both_ways(days in -719_528i64..2_932_896) {
            let d = Date::from_days(days).expect("within years 0 to 9999");
            prop_assert_eq!(d.days(), days);
            prop_assert_eq!(Date::parse(&d.to_string()), Some(d));
        }

        #[test]
        fn any_text_parses_or_fails_without_panicking(s in "\\PC{0,80}") {
            let _ = Template::parse(&s);
            let _ = Template::parse(&format!("{{{{{s}}}}}"));
        }
    }
}
