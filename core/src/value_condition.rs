//! Value conditions on dependencies: `depends_on = [{ id = "check", if = "{{
//! tasks.check.values.rows }} > 0" }]`. A condition compares values (`==`, `!=`, `<`, `<=`, `>`,
//! `>=`) and combines comparisons (`and`, `or`, `not`, parentheses); its operands are literals
//! (numbers, "text" or 'text', `true`, `false`, `null`) and `{{ … }}` references, read as
//! [`crate::template`] reads them. Parsed into a typed tree with located errors, bounded in
//! length and nesting (the parser counts its depth and stops with an error); evaluated by a pure
//! function of the tree and the values it reads.
//!
//! Semantics on JSON values: numbers compare numerically (`1 == 1.0`), strings by their
//! characters (code point order, so ISO dates order as dates), arrays and tables by equality
//! only; values of different types are never equal, and ordering them is an error. `and` and
//! `or` stop at the first operand that decides them. An error (a value that was not published,
//! an ordering of different types, an operand of `and` that is not true or false) makes the
//! condition false, with the error as the reason.

use crate::dag::TaskCondition;
use crate::template::{Source, Template, TemplateError, ValueType, MAX_REFERENCES};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::ops::Range;

/// A condition's text is at most this many bytes.
pub const MAX_CONDITION_BYTES: usize = 4096;
/// Parentheses and `not`s nest at most this deep.
pub const MAX_CONDITION_DEPTH: usize = 32;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn orders(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// A `{{ … }}` reference inside a condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The reference alone, as a template that is exactly it.
    pub template: Template,
    /// Its bytes in the condition's text, braces included.
    pub span: Range<usize>,
    /// What is between the braces, trimmed: `tasks.check.values.rows`.
    pub name: String,
}

/// A condition, parsed. Spans are byte ranges of the condition's text.
#[derive(Debug, Clone, PartialEq)]
pub enum BoolExpr {
    Literal(Value, Range<usize>),
    Ref(Reference),
    /// `not`, at its span.
    Not(Box<BoolExpr>, Range<usize>),
    And(Vec<BoolExpr>),
    Or(Vec<BoolExpr>),
    /// A comparison, with the operator's span.
    Compare(CmpOp, Box<BoolExpr>, Box<BoolExpr>, Range<usize>),
}

/// An `if` of a dependency: its text and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueCondition {
    pub text: String,
    pub expr: BoolExpr,
}

impl Serialize for ValueCondition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// What evaluating a condition gave: whether it holds, the values its references read (by
/// the text between their braces), and the error that made it false, if one did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub holds: bool,
    #[serde(default)]
    pub read: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an operand is known to be before the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Text,
    Bool,
    Null,
    Array,
    Table,
    /// A task's value: known when it has run.
    Unknown,
}

impl Kind {
    fn of_type(ty: ValueType) -> Kind {
        match ty {
            ValueType::Number => Kind::Number,
            ValueType::String | ValueType::Date => Kind::Text,
            ValueType::Bool => Kind::Bool,
            ValueType::Array => Kind::Array,
            ValueType::Table => Kind::Table,
            ValueType::Any => Kind::Unknown,
        }
    }

    fn of_value(v: &Value) -> Kind {
        match v {
            Value::Number(_) => Kind::Number,
            Value::String(_) => Kind::Text,
            Value::Bool(_) => Kind::Bool,
            Value::Null => Kind::Null,
            Value::Array(_) => Kind::Array,
            Value::Object(_) => Kind::Table,
        }
    }

    fn a(self) -> &'static str {
        match self {
            Kind::Number => "a number",
            Kind::Text => "a string",
            Kind::Bool => "a bool",
            Kind::Null => "null",
            Kind::Array => "an array",
            Kind::Table => "a table",
            Kind::Unknown => "a value",
        }
    }
}

type Located = (Range<usize>, String);

fn error(span: Range<usize>, message: impl Into<String>) -> TemplateError {
    TemplateError {
        span,
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Literal(Value),
    Word(&'static str),
    Op(CmpOp),
    Open,
    Close,
    Ref(Reference),
}

const WORDS: [&str; 6] = ["and", "or", "not", "true", "false", "null"];

fn lex(s: &str) -> Result<Vec<(Tok, Range<usize>)>, TemplateError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut refs = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let tok = match c {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'{' if b.get(i + 1) == Some(&b'{') => {
                let Some(close) = s[i + 2..].find("}}").map(|k| i + 2 + k) else {
                    return Err(error(i..s.len(), "`{{` is not closed by `}}`"));
                };
                refs += 1;
                if refs > MAX_REFERENCES {
                    return Err(error(
                        i..close + 2,
                        format!("more than {MAX_REFERENCES} references in one condition"),
                    ));
                }
                i = close + 2;
                // The slice starts with `{{` and ends at the first `}}`: one whole reference.
                let template = match Template::parse(&s[start..i]) {
                    Ok(Some(t)) => t,
                    Ok(None) => return Err(error(start..i, "expected a reference")),
                    Err(e) => {
                        return Err(error(start + e.span.start..start + e.span.end, e.message))
                    }
                };
                Tok::Ref(Reference {
                    template,
                    span: start..i,
                    name: s[start + 2..close].trim().to_string(),
                })
            }
            b'"' | b'\'' => {
                let Some(end) = s[i + 1..].find(c as char).map(|k| i + 1 + k) else {
                    return Err(error(
                        i..s.len(),
                        format!("the text starting with {} is not closed", c as char),
                    ));
                };
                i = end + 1;
                Tok::Literal(Value::String(s[start + 1..end].to_string()))
            }
            b'0'..=b'9' | b'-' | b'.' => {
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'.'
                        || (matches!(b[i], b'+' | b'-') && matches!(b[i - 1], b'e' | b'E')))
                {
                    i += 1;
                }
                match serde_json::from_str::<Value>(&s[start..i]) {
                    Ok(n @ Value::Number(_)) => Tok::Literal(n),
                    _ => {
                        return Err(error(
                            start..i,
                            format!(
                                "`{}` is not a number (write numbers as `12`, `-0.5`, `1e6`)",
                                &s[start..i]
                            ),
                        ))
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = &s[start..i];
                match WORDS.iter().find(|w| **w == word) {
                    Some(&"true") => Tok::Literal(Value::Bool(true)),
                    Some(&"false") => Tok::Literal(Value::Bool(false)),
                    Some(&"null") => Tok::Literal(Value::Null),
                    Some(w) => Tok::Word(w),
                    None => {
                        let hint = crate::diag::did_you_mean(&word.to_lowercase(), WORDS)
                            .map(|h| format!("did you mean `{h}`?"))
                            .unwrap_or_else(|| {
                                "values are written in braces: `{{ tasks.ID.values.KEY }}`, \
                                 `{{ params.NAME }}`, or quoted as \"text\""
                                    .to_string()
                            });
                        return Err(error(start..i, format!("unknown word `{word}`; {hint}")));
                    }
                }
            }
            b'(' => {
                i += 1;
                Tok::Open
            }
            b')' => {
                i += 1;
                Tok::Close
            }
            b'=' | b'!' | b'<' | b'>' => {
                let eq = b.get(i + 1) == Some(&b'=');
                i += if eq { 2 } else { 1 };
                Tok::Op(match (c, eq) {
                    (b'=', true) => CmpOp::Eq,
                    (b'!', true) => CmpOp::Ne,
                    (b'<', false) => CmpOp::Lt,
                    (b'<', true) => CmpOp::Le,
                    (b'>', false) => CmpOp::Gt,
                    (b'>', true) => CmpOp::Ge,
                    (b'=', false) => return Err(error(start..i, "write `==` to compare")),
                    _ => return Err(error(start..i, "write `not` to negate, `!=` for unequal")),
                })
            }
            b'&' | b'|' => {
                let word = if c == b'&' { "and" } else { "or" };
                return Err(error(start..start + 1, format!("write `{word}`")));
            }
            _ => {
                let ch = s[start..].chars().next().unwrap_or('?');
                return Err(error(
                    start..start + ch.len_utf8(),
                    format!("unexpected `{ch}`"),
                ));
            }
        };
        out.push((tok, start..i));
    }
    Ok(out)
}

/// Recursive descent over the tokens; it recurses only into parentheses, and counts them and
/// the `not`s with `depth`.
struct Parser {
    toks: Vec<(Tok, Range<usize>)>,
    at: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.0)
    }

    fn span(&self) -> Range<usize> {
        self.toks
            .get(self.at)
            .map_or(self.len..self.len, |t| t.1.clone())
    }

    fn eat_word(&mut self, word: &str) -> Option<Range<usize>> {
        match self.toks.get(self.at) {
            Some((Tok::Word(w), span)) if *w == word => {
                self.at += 1;
                Some(span.clone())
            }
            _ => None,
        }
    }

    fn too_deep(span: Range<usize>) -> TemplateError {
        error(
            span,
            format!(
                "the condition nests more than {MAX_CONDITION_DEPTH} deep (parentheses and `not`)"
            ),
        )
    }

    fn or(&mut self, depth: usize) -> Result<BoolExpr, TemplateError> {
        let mut items = vec![self.and(depth)?];
        while self.eat_word("or").is_some() {
            items.push(self.and(depth)?);
        }
        Ok(match items.len() {
            1 => items.remove(0),
            _ => BoolExpr::Or(items),
        })
    }

    fn and(&mut self, depth: usize) -> Result<BoolExpr, TemplateError> {
        let mut items = vec![self.not(depth)?];
        while self.eat_word("and").is_some() {
            items.push(self.not(depth)?);
        }
        Ok(match items.len() {
            1 => items.remove(0),
            _ => BoolExpr::And(items),
        })
    }

    fn not(&mut self, depth: usize) -> Result<BoolExpr, TemplateError> {
        let mut nots = Vec::new();
        while let Some(span) = self.eat_word("not") {
            if depth + nots.len() + 1 > MAX_CONDITION_DEPTH {
                return Err(Self::too_deep(span));
            }
            nots.push(span);
        }
        let mut e = self.compare(depth + nots.len())?;
        while let Some(span) = nots.pop() {
            e = BoolExpr::Not(Box::new(e), span);
        }
        Ok(e)
    }

    fn compare(&mut self, depth: usize) -> Result<BoolExpr, TemplateError> {
        let left = self.operand(depth)?;
        let Some(&Tok::Op(op)) = self.peek() else {
            return Ok(left);
        };
        let op_span = self.span();
        self.at += 1;
        let right = self.operand(depth)?;
        if let Some(Tok::Op(_)) = self.peek() {
            return Err(error(
                self.span(),
                "comparisons do not chain: write `a < b and b < c`",
            ));
        }
        Ok(BoolExpr::Compare(
            op,
            Box::new(left),
            Box::new(right),
            op_span,
        ))
    }

    fn operand(&mut self, depth: usize) -> Result<BoolExpr, TemplateError> {
        let span = self.span();
        let Some((tok, _)) = self.toks.get(self.at).cloned() else {
            return Err(error(span, "expected a value at the end of the condition"));
        };
        self.at += 1;
        match tok {
            Tok::Literal(v) => Ok(BoolExpr::Literal(v, span)),
            Tok::Ref(r) => Ok(BoolExpr::Ref(r)),
            Tok::Open => {
                if depth + 1 > MAX_CONDITION_DEPTH {
                    return Err(Self::too_deep(span));
                }
                let inner = self.or(depth + 1)?;
                match self.peek() {
                    Some(Tok::Close) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => Err(error(
                        self.span(),
                        format!("expected `)` to close the `(` at byte {}", span.start + 1),
                    )),
                }
            }
            Tok::Word(w) => Err(error(span, format!("expected a value before `{w}`"))),
            Tok::Op(op) => Err(error(
                span,
                format!("expected a value before `{}`", op.symbol()),
            )),
            Tok::Close => Err(error(span, "expected a value before `)`")),
        }
    }
}

impl BoolExpr {
    fn span(&self) -> Range<usize> {
        match self {
            BoolExpr::Literal(_, s) | BoolExpr::Not(_, s) | BoolExpr::Compare(.., s) => s.clone(),
            BoolExpr::Ref(r) => r.span.clone(),
            BoolExpr::And(items) | BoolExpr::Or(items) => {
                items.first().map_or(0..0, BoolExpr::span)
            }
        }
    }

    /// The operand as written, for messages.
    fn describe(&self, text: &str) -> String {
        match self {
            BoolExpr::Literal(v, _) => format!("`{v}`"),
            BoolExpr::Ref(r) => format!("`{}`", &text[r.span.clone()]),
            _ => "the comparison".into(),
        }
    }
}

impl ValueCondition {
    /// The condition in `text`, or the first thing wrong with it (located in `text`).
    pub fn parse(text: &str) -> Result<ValueCondition, TemplateError> {
        if text.len() > MAX_CONDITION_BYTES {
            return Err(error(
                0..text.len(),
                format!(
                    "the condition is {} bytes, over the {MAX_CONDITION_BYTES}-byte limit",
                    text.len()
                ),
            ));
        }
        let toks = lex(text)?;
        if toks.is_empty() {
            return Err(error(
                0..text.len(),
                "an empty condition: write one such as `{{ tasks.ID.values.KEY }} > 0`",
            ));
        }
        let mut p = Parser {
            toks,
            at: 0,
            len: text.len(),
        };
        let expr = p.or(0)?;
        if p.at < p.toks.len() {
            return Err(error(
                p.span(),
                "expected `and`, `or`, a comparison or the end of the condition",
            ));
        }
        Ok(ValueCondition {
            text: text.to_string(),
            expr,
        })
    }

    /// Every reference, in the order written.
    pub fn references(&self) -> Vec<&Reference> {
        let mut out = Vec::new();
        let mut stack = vec![&self.expr];
        while let Some(e) = stack.pop() {
            match e {
                BoolExpr::Literal(..) => {}
                BoolExpr::Ref(r) => out.push(r),
                BoolExpr::Not(x, _) => stack.push(x),
                BoolExpr::And(items) | BoolExpr::Or(items) => stack.extend(items.iter().rev()),
                BoolExpr::Compare(_, l, r, _) => {
                    stack.push(r);
                    stack.push(l);
                }
            }
        }
        out
    }

    /// Checks the references (`type_of` gives each source's type, or why it has none) and
    /// the types that are known before the run: ordering only numbers with numbers and
    /// strings with strings, no equality between different types (always false), true or
    /// false wherever `and`, `or`, `not` and the condition itself need one.
    pub fn check(
        &self,
        type_of: &mut dyn FnMut(&Source) -> Result<ValueType, String>,
    ) -> Result<(), TemplateError> {
        self.need_bool(&self.expr, "a condition", type_of)
            .map_err(|(span, message)| TemplateError { span, message })
    }

    fn need_bool(
        &self,
        e: &BoolExpr,
        what: &str,
        type_of: &mut dyn FnMut(&Source) -> Result<ValueType, String>,
    ) -> Result<(), Located> {
        let kind = self.kind(e, type_of)?;
        if matches!(kind, Kind::Bool | Kind::Unknown) {
            return Ok(());
        }
        Err((
            e.span(),
            format!(
                "{what} needs true or false, but {} is {}",
                e.describe(&self.text),
                kind.a()
            ),
        ))
    }

    fn kind(
        &self,
        e: &BoolExpr,
        type_of: &mut dyn FnMut(&Source) -> Result<ValueType, String>,
    ) -> Result<Kind, Located> {
        Ok(match e {
            BoolExpr::Literal(v, _) => Kind::of_value(v),
            BoolExpr::Ref(r) => {
                let ty = r
                    .template
                    .check(type_of)
                    .map_err(|(at, m)| (r.span.start + at.start..r.span.start + at.end, m))?;
                Kind::of_type(ty)
            }
            BoolExpr::Not(x, _) => {
                self.need_bool(x, "`not`", type_of)?;
                Kind::Bool
            }
            BoolExpr::And(items) | BoolExpr::Or(items) => {
                let word = if matches!(e, BoolExpr::And(_)) {
                    "`and`"
                } else {
                    "`or`"
                };
                for x in items {
                    self.need_bool(x, word, type_of)?;
                }
                Kind::Bool
            }
            BoolExpr::Compare(op, l, r, span) => {
                let (lk, rk) = (self.kind(l, type_of)?, self.kind(r, type_of)?);
                let known = lk != Kind::Unknown && rk != Kind::Unknown;
                let (ld, rd) = (l.describe(&self.text), r.describe(&self.text));
                if op.orders() {
                    for (k, d) in [(lk, &ld), (rk, &rd)] {
                        if !matches!(k, Kind::Number | Kind::Text | Kind::Unknown) {
                            return Err((
                                span.clone(),
                                format!(
                                    "`{}` orders numbers or strings, but {d} is {}",
                                    op.symbol(),
                                    k.a()
                                ),
                            ));
                        }
                    }
                    if known && lk != rk {
                        return Err((
                            span.clone(),
                            format!(
                                "`{}` orders two numbers or two strings, but {ld} is {} and \
                                 {rd} {}",
                                op.symbol(),
                                lk.a(),
                                rk.a()
                            ),
                        ));
                    }
                } else if known && lk != rk {
                    return Err((
                        span.clone(),
                        format!(
                            "{ld} is {} and {rd} {}, so `{}` is always {}",
                            lk.a(),
                            rk.a(),
                            op.symbol(),
                            *op == CmpOp::Ne
                        ),
                    ));
                }
                Kind::Bool
            }
        })
    }

    /// Evaluates the condition with `lookup` giving each reference's source value (what
    /// [`crate::params::Bound::value_of`] gives a real run). Never fails: an error makes the
    /// condition false and is the verdict's `error`.
    pub fn evaluate(&self, lookup: &dyn Fn(&Source) -> Result<Value, String>) -> Verdict {
        let mut read = Map::new();
        match self.truth(&self.expr, lookup, &mut read) {
            Ok(holds) => Verdict {
                holds,
                read,
                error: None,
            },
            Err(e) => Verdict {
                holds: false,
                read,
                error: Some(e),
            },
        }
    }

    fn value(
        &self,
        e: &BoolExpr,
        lookup: &dyn Fn(&Source) -> Result<Value, String>,
        read: &mut Map<String, Value>,
    ) -> Result<Value, String> {
        match e {
            BoolExpr::Literal(v, _) => Ok(v.clone()),
            BoolExpr::Ref(r) => {
                let v = r.template.eval(lookup)?;
                read.insert(r.name.clone(), v.clone());
                Ok(v)
            }
            _ => self.truth(e, lookup, read).map(Value::Bool),
        }
    }

    /// The recursion follows the tree, whose depth the parser bounded.
    fn truth(
        &self,
        e: &BoolExpr,
        lookup: &dyn Fn(&Source) -> Result<Value, String>,
        read: &mut Map<String, Value>,
    ) -> Result<bool, String> {
        match e {
            BoolExpr::Not(x, _) => Ok(!self.truth(x, lookup, read)?),
            BoolExpr::And(items) => {
                for x in items {
                    if !self.truth(x, lookup, read)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            BoolExpr::Or(items) => {
                for x in items {
                    if self.truth(x, lookup, read)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            BoolExpr::Compare(op, l, r, _) => {
                let lv = self.value(l, lookup, read)?;
                let rv = self.value(r, lookup, read)?;
                compare(*op, &lv, &rv)
            }
            BoolExpr::Literal(..) | BoolExpr::Ref(_) => match self.value(e, lookup, read)? {
                Value::Bool(b) => Ok(b),
                other => Err(format!(
                    "{} is {}, not true or false",
                    e.describe(&self.text),
                    shown(&other)
                )),
            },
        }
    }
}

/// Evaluates a task's conditions in order, up to the first that does not hold; `lookup` gives
/// a reference's source value in the parameter scope a condition is written in. The verdicts
/// of those evaluated: the task runs when the last one holds.
pub fn evaluate_all(
    conditions: &[TaskCondition],
    lookup: &dyn Fn(usize, &Source) -> Result<Value, String>,
) -> Vec<Verdict> {
    let mut out = Vec::new();
    for c in conditions {
        let verdict = c.condition.evaluate(&|src| lookup(c.scope, src));
        let holds = verdict.holds;
        out.push(verdict);
        if !holds {
            break;
        }
    }
    out
}

/// A value in a message, at most 80 characters.
fn shown(v: &Value) -> String {
    crate::diag::escape_controls(&v.to_string())
        .chars()
        .take(80)
        .collect()
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Ordering {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x.cmp(&y),
        (_, _, Some(x), Some(y)) => x.cmp(&y),
        _ => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
    }
}

/// `l op r` on JSON values: numbers numerically, strings by characters, other types by
/// equality only; different types are unequal, and ordering them is an error.
pub fn compare(op: CmpOp, l: &Value, r: &Value) -> Result<bool, String> {
    let order = match (l, r) {
        (Value::Number(a), Value::Number(b)) => Some(compare_numbers(a, b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    };
    let equal = || order.map_or_else(|| l == r, Ordering::is_eq);
    Ok(match op {
        CmpOp::Eq => equal(),
        CmpOp::Ne => !equal(),
        _ => {
            let Some(o) = order else {
                return Err(format!(
                    "`{}` orders two numbers or two strings, not {} and {}",
                    op.symbol(),
                    shown(l),
                    shown(r)
                ));
            };
            match op {
                CmpOp::Lt => o.is_lt(),
                CmpOp::Le => o.is_le(),
                CmpOp::Gt => o.is_gt(),
                _ => o.is_ge(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// What the table's conditions read: pipeline parameters, the run, a task's values.
    fn lookup(src: &Source) -> Result<Value, String> {
        Ok(match src {
            Source::Param(p) if p == "n" => json!(5),
            Source::Param(p) if p == "name" => json!("eu"),
            Source::Param(p) if p == "day" => json!("2024-06-30"),
            Source::Param(p) if p == "flag" => json!(false),
            Source::RunId => json!(7),
            Source::RunDate => json!("2024-07-01"),
            Source::TaskValue(t) if t == "check" => json!({"a": 1}),
            Source::TaskValues(t, Some(k)) if t == "check" => match k.as_str() {
                "rows" => json!(0),
                "ok" => json!(true),
                "ratio" => json!(0.5),
                "big" => json!(18_446_744_073_709_551_615u64),
                "list" => json!([1, 2]),
                "day" => json!("2024-07-01"),
                "none" => Value::Null,
                other => return Err(format!("`check` set no value `{other}`")),
            },
            _ => return Err("not published".into()),
        })
    }

    fn type_of(src: &Source) -> Result<ValueType, String> {
        Ok(match src {
            Source::Param(p) if p == "n" => ValueType::Number,
            Source::Param(p) if p == "name" => ValueType::String,
            Source::Param(p) if p == "day" => ValueType::Date,
            Source::Param(p) if p == "flag" => ValueType::Bool,
            Source::Param(p) => return Err(format!("unknown parameter `{p}`")),
            Source::TaskValues(_, None) => ValueType::Table,
            Source::TaskValue(_) | Source::TaskValues(..) => ValueType::Any,
            other => crate::template::RunInfo::type_of(other).ok_or("?")?,
        })
    }

    #[derive(Debug)]
    enum Expect {
        /// Parses, checks, and evaluates to this.
        Holds(bool),
        /// Parses and checks; evaluation fails (the condition is false) with this message.
        Fails(&'static str),
        /// Refused by the parser or the check, at this text, with this message.
        Refused(&'static str, &'static str),
    }
    use Expect::*;

    const TABLE: &[(&str, Expect)] = &[
        ("{{ tasks.check.values.rows }} > 0", Holds(false)),
        ("{{ tasks.check.values.rows }} >= 0", Holds(true)),
        ("{{ tasks.check.values.rows }} == 0.0", Holds(true)),
        ("{{ tasks.check.values.ratio }} < 1e0", Holds(true)),
        (
            "{{ tasks.check.values.big }} > 9223372036854775807",
            Holds(true),
        ),
        ("{{ params.n }} != 5", Holds(false)),
        (
            "{{ params.name }} == 'eu' and {{ params.n }} <= 5",
            Holds(true),
        ),
        (
            "{{ params.day }} < {{ tasks.check.values.day }}",
            Holds(true),
        ),
        ("{{ run.date }} >= \"2000-01-01\"", Holds(true)),
        ("\"B\" < \"a\"", Holds(true)),
        ("not {{ params.flag }}", Holds(true)),
        ("not not {{ tasks.check.values.ok }}", Holds(true)),
        (
            "{{ params.flag }} or {{ tasks.check.values.rows }} == 0",
            Holds(true),
        ),
        (
            "false and {{ tasks.check.values.missing }} > 0",
            Holds(false),
        ),
        ("true or {{ tasks.other.value }}", Holds(true)),
        (
            "({{ params.n }} > 1 or false) and not ({{ run.id }} == 8)",
            Holds(true),
        ),
        ("{{ tasks.check.values.none }} == null", Holds(true)),
        (
            "{{ tasks.check.values.list }} == {{ tasks.check.values.list }}",
            Holds(true),
        ),
        (
            "{{ tasks.check.value }} != {{ tasks.check.values.list }}",
            Holds(true),
        ),
        ("{{ tasks.check.values.rows }} == '0'", Holds(false)),
        (
            "{{ tasks.check.values }} == null",
            Refused("==", "is a table and `null` null, so `==` is always false"),
        ),
        (
            "{{ tasks.check.values.missing }} > 0",
            Fails("`check` set no value `missing`"),
        ),
        (
            "{{ tasks.check.values.rows }} < 'a'",
            Fails("`<` orders two numbers or two strings, not 0 and \"a\""),
        ),
        (
            "{{ tasks.check.values.rows }}",
            Fails("is 0, not true or false"),
        ),
        (
            "{{ tasks.check.values.list }} > 1",
            Fails("not [1,2] and 1"),
        ),
        ("", Refused("", "an empty condition")),
        (
            "{{ tasks.check.values.rows }} >",
            Refused("", "expected a value at the end"),
        ),
        (
            "{{ tasks.check.values.rows }} = 0",
            Refused("=", "write `==`"),
        ),
        ("1 < 2 < 3", Refused("<", "comparisons do not chain")),
        (
            "(1 < 2",
            Refused("", "expected `)` to close the `(` at byte 1"),
        ),
        ("1 < 2)", Refused(")", "expected `and`, `or`")),
        (
            "{{ tasks.check.values.rows }} > 0 && true",
            Refused("&", "write `and`"),
        ),
        ("rows > 0", Refused("rows", "values are written in braces")),
        ("1 < 2 AND true", Refused("AND", "did you mean `and`?")),
        ("'open", Refused("'open", "not closed")),
        ("01 == 1", Refused("01", "is not a number")),
        (
            "{{ tasks.check.values.rows > 0",
            Refused("{{ tasks.check.values.rows > 0", "not closed by `}}`"),
        ),
        (
            "{{ parms.n }} > 0",
            Refused("parms", "did you mean `params`"),
        ),
        (
            "{{ params.nn }} > 0",
            Refused("{{ params.nn }}", "unknown parameter `nn`"),
        ),
        (
            "{{ params.n }} == 'five'",
            Refused(
                "==",
                "`{{ params.n }}` is a number and `\"five\"` a string, so `==` is always false",
            ),
        ),
        (
            "{{ params.name }} < 3",
            Refused("<", "`<` orders two numbers or two strings"),
        ),
        (
            "{{ params.flag }} > false",
            Refused(
                ">",
                "`>` orders numbers or strings, but `{{ params.flag }}` is a bool",
            ),
        ),
        (
            "{{ params.n }}",
            Refused(
                "{{ params.n }}",
                "a condition needs true or false, but `{{ params.n }}` is a number",
            ),
        ),
        (
            "1 and true",
            Refused("1", "`and` needs true or false, but `1` is a number"),
        ),
        ("not 'x'", Refused("'x'", "`not` needs true or false")),
        (
            "{{ params.n | add_days(1) }} > 0",
            Refused("{{ params.n | add_days(1) }}", "`add_days` needs a date"),
        ),
        ("@", Refused("@", "unexpected `@`")),
    ];

    #[test]
    fn conditions_parse_check_and_evaluate_as_the_table_says() {
        for (text, expect) in TABLE {
            let checked = ValueCondition::parse(text).and_then(|c| {
                c.check(&mut type_of)?;
                Ok(c)
            });
            match (expect, checked) {
                (Holds(want), Ok(c)) => {
                    let v = c.evaluate(&lookup);
                    assert_eq!((v.holds, v.error), (*want, None), "{text}");
                }
                (Fails(why), Ok(c)) => {
                    let v = c.evaluate(&lookup);
                    let error = v.error.unwrap_or_default();
                    assert!(!v.holds && error.contains(why), "{text}: {error}");
                }
                (Refused(at, why), Err(e)) => {
                    assert!(e.message.contains(why), "{text}: {}", e.message);
                    assert_eq!(&text[e.span.clone()], *at, "{text}: {}", e.message);
                }
                (expect, got) => panic!("{text}: expected {expect:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_verdict_names_the_values_it_read() {
        let c = ValueCondition::parse("{{ tasks.check.values.rows }} > 0 or {{params.n}} > 9")
            .expect("parses");
        let v = c.evaluate(&lookup);
        assert_eq!(
            v,
            Verdict {
                holds: false,
                read: Map::from_iter([
                    ("tasks.check.values.rows".to_string(), json!(0)),
                    ("params.n".to_string(), json!(5)),
                ]),
                error: None,
            }
        );
        let refs: Vec<&str> = c.references().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(refs, ["tasks.check.values.rows", "params.n"]);
    }

    #[test]
    fn length_and_nesting_are_bounded() {
        let nested = |d: usize| format!("{}true{}", "(".repeat(d), ")".repeat(d));
        assert!(ValueCondition::parse(&nested(MAX_CONDITION_DEPTH)).is_ok());
        let e = ValueCondition::parse(&nested(MAX_CONDITION_DEPTH + 1)).expect_err("too deep");
        assert!(
            e.message.contains("nests more than 32 deep"),
            "{}",
            e.message
        );
        let nots = |d: usize| format!("{}true", "not ".repeat(d));
        assert_eq!(
            ValueCondition::parse(&nots(MAX_CONDITION_DEPTH)).map(|c| c.evaluate(&lookup).holds),
            Ok(true)
        );
        assert!(ValueCondition::parse(&nots(MAX_CONDITION_DEPTH + 1)).is_err());
        // Parentheses and `not`s count together.
        let mixed = |d: usize| format!("{}true{}", "not (".repeat(d), ")".repeat(d));
        assert!(ValueCondition::parse(&mixed(MAX_CONDITION_DEPTH / 2)).is_ok());
        assert!(ValueCondition::parse(&mixed(MAX_CONDITION_DEPTH / 2 + 1)).is_err());
        let long = format!("true{}", " ".repeat(MAX_CONDITION_BYTES));
        let e = ValueCondition::parse(&long).expect_err("too long");
        assert!(e.message.contains("4096-byte limit"), "{}", e.message);
        // Two thousand parentheses (within the length) stop at the depth, not the stack.
        assert!(ValueCondition::parse(&nested(2000)).is_err());
    }

    proptest! {
        #[test]
        fn any_text_parses_or_fails_without_panicking(s in "\\PC{0,120}") {
            if let Ok(c) = ValueCondition::parse(&s) {
                let _ = c.check(&mut type_of);
                let _ = c.evaluate(&lookup);
            }
        }

        #[test]
        fn conditions_of_the_grammar_s_pieces_never_panic_and_respect_the_depth_bound(
            pieces in proptest::collection::vec(
                prop::sample::select(vec![
                    "(", ")", "not ", " and ", " or ", "==", "<", ">=", "!=", "1", "'a'",
                    "true", "null", "{{ tasks.check.values.rows }}", "{{ params.n }}", " ",
                ]),
                0..200,
            )
        ) {
            let s: String = pieces.concat();
            if let Ok(c) = ValueCondition::parse(&s) {
                let _ = c.check(&mut type_of);
                let _ = c.evaluate(&lookup);
                // Whatever parsed nests within the bound.
                let mut deepest = 0usize;
                let mut stack = vec![(&c.expr, 0usize)];
                while let Some((e, d)) = stack.pop() {
                    deepest = deepest.max(d);
                    match e {
                        BoolExpr::Not(x, _) => stack.push((x, d + 1)),
                        BoolExpr::And(xs) | BoolExpr::Or(xs) => {
                            stack.extend(xs.iter().map(|x| (x, d + 1)))
                        }
                        BoolExpr::Compare(_, l, r, _) => {
                            stack.push((l, d + 1));
                            stack.push((r, d + 1));
                        }
                        _ => {}
                    }
                }
                prop_assert!(deepest <= 3 * (MAX_CONDITION_DEPTH + 1));
            }
        }
    }
}
