//! Diagnostics: every problem found in user input, with the place it concerns.

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Byte range in a source text.
pub type Span = Range<usize>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, located by file, 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub severity: Severity,
    pub message: String,
    /// The notebook or sub-pipeline id the problem concerns, when there is one (the web editor
    /// shows the message beside that row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The metadata key the problem concerns (`slots`, `depends_on`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Rendered for a terminal or a log: one line, control characters escaped.
impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {}: {}",
            escape_controls(&self.file),
            self.line,
            self.col,
            sev,
            escape_controls(&self.message)
        )
    }
}

/// `text` with control characters written as escapes (`\u{1b}`, `\n`), and the
/// bidirectional overrides that reorder what a terminal shows: names and messages taken from
/// files can then neither move the cursor, recolour or clear a terminal, nor fake a line of
/// output or of a log.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text, false)
}

/// [`escape_controls`] for text of several lines (tracebacks, tables): newlines and tabs stay.
pub fn escape_controls_in_lines(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_lines: bool) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        !(keep_lines && matches!(c, '\n' | '\t'))
            && (c.is_control()
                || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c))
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if matches!(c, '\n' | '\r' | '\t') {
            out.extend(c.escape_default());
        } else {
            out.extend(c.escape_unicode());
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Maps byte offsets of one text to line and column.
pub struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, line_starts }
    }

    /// 1-based (line, column); the column counts characters, not bytes.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Collects diagnostics for one file.
pub struct Reporter<'a> {
    file: String,
    text: &'a str,
    index: LineIndex<'a>,
    pub out: Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &str, text: &'a str) -> Self {
        Reporter {
            file: file.to_string(),
            text,
            index: LineIndex::new(text),
            out: Vec::new(),
        }
    }

    /// The text the diagnostics are about.
    pub fn text(&self) -> &'a str {
        self.text
    }

    pub fn at(&self, span: &Span, severity: Severity, message: String) -> Diagnostic {
        let (line, col) = self.index.line_col(span.start);
        Diagnostic::new(&self.file, line, col, severity, message)
    }

    pub fn error(&mut self, span: &Span, message: impl Into<String>) -> &mut Diagnostic {
        let d = self.at(span, Severity::Error, message.into());
        self.out.push(d);
        self.out.last_mut().expect("just pushed")
    }

    pub fn warning(&mut self, span: &Span, message: impl Into<String>) -> &mut Diagnostic {
        let d = self.at(span, Severity::Warning, message.into());
        self.out.push(d);
        self.out.last_mut().expect("just pushed")
    }
}

impl Diagnostic {
    pub fn new(file: &str, line: usize, col: usize, severity: Severity, message: String) -> Self {
        Diagnostic {
            file: file.to_string(),
            line,
            col,
            severity,
            message,
            item: None,
            key: None,
        }
    }

    pub fn item(&mut self, item: &str) -> &mut Self {
        self.item = Some(item.to_string());
        self
    }

    pub fn key(&mut self, key: &str) -> &mut Self {
        self.key = Some(key.to_string());
        self
    }
}

pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}

/// Edit distance, for "did you mean" suggestions.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Names longer than this are neither given nor offered a "did you mean".
pub const MAX_SUGGESTED_CHARS: usize = 64;
/// Candidates looked at per suggestion.
pub const MAX_CANDIDATES: usize = 1_000;
/// Suggestions made per input (file), see [`Suggestions`].
pub const MAX_SUGGESTIONS: usize = 32;

/// "Did you mean" hints for the unknown names of one input, within a budget: each costs an
/// edit distance per candidate, so an input with thousands of unknown names gets hints for
/// its first [`MAX_SUGGESTIONS`] only.
pub struct Suggestions {
    left: usize,
}

impl Default for Suggestions {
    fn default() -> Self {
        Suggestions {
            left: MAX_SUGGESTIONS,
        }
    }
}

impl Suggestions {
    /// [`did_you_mean`], while the budget lasts.
    pub fn closest<'c>(
        &mut self,
        word: &str,
        candidates: impl IntoIterator<Item = &'c str>,
    ) -> Option<&'c str> {
        self.left = self.left.checked_sub(1)?;
        did_you_mean(word, candidates)
    }

    /// ``; did you mean `…`?`` for the closest candidate, or nothing.
    pub fn hint<'c>(
        &mut self,
        word: &str,
        candidates: impl IntoIterator<Item = &'c str>,
    ) -> String {
        self.closest(word, candidates)
            .map(|h| format!("; did you mean `{h}`?"))
            .unwrap_or_default()
    }
}

/// The closest candidate within a small edit distance, if any; failing that, a candidate that
/// starts or ends with the word or the other way round (`timeout` -> `timeout_secs`, `cores` ->
/// `executor_cores`), when the shared part is long enough to mean something.
///
/// Bounded whatever the input: words over [`MAX_SUGGESTED_CHARS`] get no suggestion and are
/// no suggestion, and only the first [`MAX_CANDIDATES`] candidates are looked at.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let len = word.chars().count();
    if len > MAX_SUGGESTED_CHARS {
        return None;
    }
    let limit = len.div_ceil(3).max(2);
    let lower = word.to_lowercase();
    let candidates: Vec<&str> = candidates
        .into_iter()
        .take(MAX_CANDIDATES)
        .filter(|c| c.chars().count() <= MAX_SUGGESTED_CHARS)
        .collect();
    let close = candidates
        .iter()
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .map(|c| (levenshtein(&lower, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= limit && *d < len && *d < c.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    close.or_else(|| {
        candidates.into_iter().find(|c| {
            let c = c.to_lowercase();
            let (short, long) = if c.len() < lower.len() {
                (c.as_str(), lower.as_str())
            } else {
                (lower.as_str(), c.as_str())
            };
            short.chars().count() >= 4 && (long.starts_with(short) || long.ends_with(short))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_files_are_escaped_when_rendered() {
        let d = Diagnostic::new(
            "a\u{1b}[2J.toml",
            1,
            2,
            Severity::Error,
            "`x\ny` is \u{202e}bad\u{7}".to_string(),
        );
        assert_eq!(
            d.to_string(),
            "a\\u{1b}[2J.toml:1:2: error: `x\\ny` is \\u{202e}bad\\u{7}"
        );
        assert_eq!(escape_controls_in_lines("a\n\tb\u{1b}"), "a\n\tb\\u{1b}");
        assert!(matches!(
            escape_controls("plain é"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn line_col_counts_characters() {
        let idx = LineIndex::new("ab\nçd = 1\n");
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(3), (2, 1));
        assert_eq!(idx.line_col(6), (2, 3));
    }

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["depends_on", "retry", "timeout_secs"];
        assert_eq!(did_you_mean("depend_on", keys), Some("depends_on"));
        assert_eq!(did_you_mean("retries", keys), Some("retry"));
        assert_eq!(did_you_mean("zzzzzz", keys), None);
        assert_eq!(did_you_mean("timeout", keys), Some("timeout_secs"));
        assert_eq!(
            did_you_mean("cores", ["executors", "executor_cores"]),
            Some("executor_cores")
        );
        assert_eq!(did_you_mean("id", ["isolated"]), None);
    }
}
