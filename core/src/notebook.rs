//! Notebook files -> the cells to run. Pure: text in, cells plus diagnostics out.
//!
//! Formats: Jupyter `.ipynb` (nbformat 4; the cell tagged `parameters` holds defaults, as in
//! papermill; `%%sql` / `%%pyspark` magics), `.py` (Jupytext percent cells, Databricks and Fabric
//! exports), `.sql` (one cell per statement). Markdown cells are dropped. SQL cells are split into
//! statements (Spark runs one statement per `spark.sql` call); the pieces keep their cell number.

use crate::diag::{Diagnostic, LineIndex, Severity};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// Notebook files larger than this are refused before parsing.
pub const MAX_NOTEBOOK_BYTES: usize = 20 * 1024 * 1024;

/// Why a notebook of `len` bytes is refused: one message wherever the limit is checked.
pub fn too_large(len: u64) -> String {
    format!(
        "the notebook is {len} bytes, over the {} MiB limit for notebooks",
        MAX_NOTEBOOK_BYTES / (1024 * 1024)
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ipynb,
    Py,
    Sql,
}

impl Format {
    /// The format a file name says, from its extension.
    pub fn from_path(path: &str) -> Option<Format> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "ipynb" => Some(Format::Ipynb),
            "py" => Some(Format::Py),
            "sql" => Some(Format::Sql),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CellKind {
    Python,
    Sql,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub kind: CellKind,
    /// The code, without any cell magic or comment prefix.
    pub source: String,
    /// 1-based number of the cell as the notebook's editor counts them (markdown cells
    /// included); for a `.sql` file, the statement's number.
    pub number: usize,
    /// 1-based line of the file where `source` begins; line `k` of the source is line
    /// `line + k - 1` of the file (nbformat writes a cell's source one line per line).
    pub line: usize,
    /// 1-based line within the notebook's cell where `source` begins, as the notebook's editor
    /// shows it: 1, or further down after a magic line or for a later SQL statement of the cell.
    pub cell_line: usize,
    /// The cell tagged `parameters`: it runs first, then given parameters override its values.
    pub parameters: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub cells: Vec<Cell>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads a notebook. Never panics; every problem is a diagnostic naming the cell and the line.
pub fn parse(file: &str, text: &str, format: Format) -> Parsed {
    let mut out = Out {
        file,
        parsed: Parsed::default(),
    };
    if text.len() > MAX_NOTEBOOK_BYTES {
        out.error(1, 1, too_large(text.len() as u64));
        return out.parsed;
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Ipynb => parse_ipynb(text, &mut out),
        Format::Py => parse_py(text, &mut out),
        Format::Sql => {
            for (i, piece) in split_sql_statements(text).into_iter().enumerate() {
                match piece {
                    Ok(statement) => out.parsed.cells.push(Cell {
                        kind: CellKind::Sql,
                        source: statement.text,
                        number: i + 1,
                        line: statement.line,
                        cell_line: 1,
                        parameters: false,
                    }),
                    Err(e) => {
                        out.error(e.line, e.col, format!("statement {}: {}", i + 1, e.message))
                    }
                }
            }
        }
    }
    out.parsed
}

struct Out<'f> {
    file: &'f str,
    parsed: Parsed,
}

impl Out<'_> {
    fn diag(&mut self, severity: Severity, line: usize, col: usize, message: String) {
        self.parsed
            .diagnostics
            .push(Diagnostic::new(self.file, line, col, severity, message));
    }

    fn error(&mut self, line: usize, col: usize, message: String) {
        self.diag(Severity::Error, line, col, message);
    }

    /// Adds one code cell: Python as it is, SQL split into statements.
    fn add_cell(&mut self, code: CodeCell) {
        match code.kind {
            CellKind::Python => {
                if !code.source.trim().is_empty() {
                    self.parsed.cells.push(Cell {
                        kind: CellKind::Python,
                        source: code.source,
                        number: code.number,
                        line: code.at.line,
                        cell_line: code.at.cell_line,
                        parameters: code.parameters,
                    });
                }
            }
            CellKind::Sql => {
                for piece in split_sql_statements(&code.source) {
                    match piece {
                        Ok(statement) => {
                            let at = code.at.advanced(statement.line - 1);
                            self.parsed.cells.push(Cell {
                                kind: CellKind::Sql,
                                source: statement.text,
                                number: code.number,
                                line: at.line,
                                cell_line: at.cell_line,
                                parameters: code.parameters,
                            });
                        }
                        Err(e) => {
                            let (line, col) = code.at.file_position(e.line, e.col);
                            let cell_line = code.at.advanced(e.line - 1).cell_line;
                            self.error(
                                line,
                                col,
                                format!("cell {}, line {cell_line}: {}", code.number, e.message),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Where a cell's source begins, and how its later lines map to the file.
#[derive(Clone, Copy)]
struct SourceAt {
    /// File line and column of the source's first character.
    line: usize,
    col: usize,
    /// Line within the notebook's cell (1 unless a magic line came before).
    cell_line: usize,
    /// File lines per source line: 1, or 0 for a `.ipynb` source written as one JSON string.
    step: usize,
}

impl SourceAt {
    fn start(line: usize, col: usize, step: usize) -> Self {
        SourceAt {
            line,
            col,
            cell_line: 1,
            step,
        }
    }

    /// The place `lines` source lines further on, at the start of that line.
    fn advanced(self, lines: usize) -> Self {
        if lines == 0 {
            return self;
        }
        SourceAt {
            line: self.line + lines * self.step,
            col: 1,
            cell_line: self.cell_line + lines,
            step: self.step,
        }
    }

    /// File line and column of a 1-based (line, column) of the source.
    fn file_position(self, line: usize, col: usize) -> (usize, usize) {
        let at = self.advanced(line - 1);
        if line == 1 {
            (at.line, self.col + col - 1)
        } else if self.step == 0 {
            (at.line, self.col)
        } else {
            (at.line, col)
        }
    }
}

/// A code cell before magics are resolved and SQL is split.
struct CodeCell {
    kind: CellKind,
    source: String,
    number: usize,
    at: SourceAt,
    parameters: bool,
}

/// What the first line of a cell says about it.
enum Magic {
    None,
    Kind(CellKind),
    Markdown,
    /// Session settings (`%%configure`): Spool creates the session itself.
    Ignored(&'static str),
    Unsupported(String),
}

fn cell_magic(first_line: &str) -> Magic {
    let word = first_line.split_whitespace().next().unwrap_or("");
    let Some(name) = word
        .strip_prefix("%%")
        .or_else(|| word.strip_prefix('%'))
        .filter(|n| !n.is_empty())
    else {
        return Magic::None;
    };
    match name.to_ascii_lowercase().as_str() {
        "sql" | "sparksql" => Magic::Kind(CellKind::Sql),
        "pyspark" | "python" => Magic::Kind(CellKind::Python),
        "md" | "md-sandbox" | "markdown" => Magic::Markdown,
        "configure" => Magic::Ignored("session settings (%%configure) are ignored: Spool creates the session from the pipeline's [pool]"),
        _ => Magic::Unsupported(word.to_string()),
    }
}

/// Resolves the magic on the first non-blank line of a cell and adds what remains.
fn add_with_magic(out: &mut Out, mut code: CodeCell) {
    let lines: Vec<&str> = code.source.split('\n').collect();
    let Some(first) = lines.iter().position(|l| !l.trim().is_empty()) else {
        return;
    };
    match cell_magic(lines[first].trim_start()) {
        Magic::None => out.add_cell(code),
        Magic::Markdown => {}
        Magic::Kind(kind) => {
            code.kind = kind;
            code.source = lines[first + 1..].join("\n");
            code.at = code.at.advanced(first + 1);
            out.add_cell(code);
        }
        Magic::Ignored(why) => {
            let at = code.at.advanced(first);
            out.diag(
                Severity::Warning,
                at.line,
                at.col,
                format!("cell {}, line {}: {why}", code.number, at.cell_line),
            );
        }
        Magic::Unsupported(word) => {
            let at = code.at.advanced(first);
            out.error(
                at.line,
                at.col,
                format!(
                    "cell {}, line {}: `{word}` cells are not supported: Spool runs Python and SQL cells only",
                    code.number, at.cell_line
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// .ipynb

#[derive(Deserialize)]
struct RawNotebook<'a> {
    nbformat: Option<Value>,
    #[serde(default)]
    metadata: Value,
    #[serde(borrow)]
    cells: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct RawCell<'a> {
    cell_type: Option<String>,
    #[serde(borrow)]
    source: Option<&'a RawValue>,
    #[serde(default)]
    metadata: Value,
}

fn parse_ipynb(text: &str, out: &mut Out) {
    let index = LineIndex::new(text);
    let notebook: RawNotebook = match serde_json::from_str(text) {
        Ok(n) => n,
        Err(e) => {
            out.error(
                e.line().max(1),
                e.column().max(1),
                format!("not a readable Jupyter notebook: {e}"),
            );
            return;
        }
    };
    match notebook.nbformat.as_ref().and_then(Value::as_u64) {
        Some(4) => {}
        Some(n) => {
            out.error(
                1,
                1,
                format!("nbformat {n} is not supported: save the notebook as nbformat 4"),
            );
            return;
        }
        None => {
            out.error(
                1,
                1,
                "not a Jupyter notebook: `nbformat` is missing".to_string(),
            );
            return;
        }
    }
    let default_kind = match notebook_language(&notebook.metadata) {
        Ok(kind) => kind,
        Err(language) => {
            out.error(
                1,
                1,
                format!("the notebook's language is {language}: Spool runs Python and SQL notebooks only"),
            );
            return;
        }
    };
    let Some(cells) = notebook.cells else {
        out.error(
            1,
            1,
            "not a Jupyter notebook: `cells` is missing".to_string(),
        );
        return;
    };
    for (i, raw) in cells.iter().enumerate() {
        let number = i + 1;
        let (object_line, _) = index.line_col(offset_in(text, raw.get()));
        let cell: RawCell = match serde_json::from_str(raw.get()) {
            Ok(c) => c,
            Err(e) => {
                out.error(
                    object_line,
                    1,
                    format!("cell {number}: not a notebook cell: {e}"),
                );
                continue;
            }
        };
        match cell.cell_type.as_deref() {
            Some("code") => {}
            Some("markdown" | "raw") => continue,
            other => {
                out.error(
                    object_line,
                    1,
                    format!(
                        "cell {number}: unknown cell_type {}",
                        other.map_or("(missing)".to_string(), |t| format!("`{t}`"))
                    ),
                );
                continue;
            }
        }
        let Some(source_raw) = cell.source else {
            out.error(
                object_line,
                1,
                format!("cell {number}: `source` is missing"),
            );
            continue;
        };
        let Some((source, source_offset, step)) = cell_source(text, source_raw) else {
            out.error(
                index.line_col(offset_in(text, source_raw.get())).0,
                1,
                format!("cell {number}: `source` must be a string or a list of strings"),
            );
            continue;
        };
        let (line, col) = index.line_col(source_offset);
        let kind = match cell_language(&cell.metadata) {
            Some(Ok(kind)) => kind,
            Some(Err(language)) => {
                out.error(
                    line,
                    1,
                    format!("cell {number}: {language} cells are not supported: Spool runs Python and SQL cells only"),
                );
                continue;
            }
            None => default_kind,
        };
        add_with_magic(
            out,
            CodeCell {
                kind,
                source,
                number,
                // The source begins after the string's opening quote.
                at: SourceAt::start(line, col + 1, step),
                parameters: has_parameters_tag(&cell.metadata),
            },
        );
    }
}

/// Byte offset of `part` (a slice borrowed from `text`) in `text`.
fn offset_in(text: &str, part: &str) -> usize {
    (part.as_ptr() as usize)
        .checked_sub(text.as_ptr() as usize)
        .filter(|&o| o <= text.len())
        .unwrap_or(0)
}

/// The joined source of a cell, the offset in the file of its first string, and the file lines
/// per source line (1 for a list of lines, 0 for one string).
fn cell_source(text: &str, raw: &RawValue) -> Option<(String, usize, usize)> {
    if let Ok(s) = serde_json::from_str::<String>(raw.get()) {
        return Some((s, offset_in(text, raw.get()), 0));
    }
    let parts: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
    let mut source = String::new();
    for part in &parts {
        source.push_str(&serde_json::from_str::<String>(part.get()).ok()?);
    }
    let first = parts.first().map_or(raw.get(), |p| p.get());
    Some((source, offset_in(text, first), 1))
}

fn has_parameters_tag(metadata: &Value) -> bool {
    metadata
        .get("tags")
        .and_then(Value::as_array)
        .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some("parameters")))
}

/// A language name -> the cell kind Spool runs it as, or `Err` for languages it cannot run.
fn kind_of_language(language: &str) -> Result<CellKind, String> {
    match language.to_ascii_lowercase().as_str() {
        "python" | "pyspark" | "python3" | "synapse_pyspark" => Ok(CellKind::Python),
        "sql" | "sparksql" | "spark_sql" => Ok(CellKind::Sql),
        other => Err(other.to_string()),
    }
}

/// The notebook's default cell kind, from `language_info` or the kernel spec (Synapse and Fabric
/// write them); Python when neither says.
fn notebook_language(metadata: &Value) -> Result<CellKind, String> {
    let named = metadata
        .pointer("/language_info/name")
        .or_else(|| metadata.pointer("/kernelspec/language"))
        .and_then(Value::as_str);
    named.map_or(Ok(CellKind::Python), kind_of_language)
}

/// A cell's own language (Synapse and Fabric: `metadata.microsoft.language`).
fn cell_language(metadata: &Value) -> Option<Result<CellKind, String>> {
    metadata
        .pointer("/microsoft/language")
        .and_then(Value::as_str)
        .map(kind_of_language)
}

// ---------------------------------------------------------------------------------------------
// .py

/// The conventions a `.py` notebook follows, told by its first line and its cell markers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PyFlavor {
    Databricks,
    Fabric,
    Percent,
    Plain,
}

fn py_flavor(text: &str) -> PyFlavor {
    let first = text.lines().next().unwrap_or("").trim();
    if first == "# Databricks notebook source" {
        PyFlavor::Databricks
    } else if first == "# Fabric notebook source" {
        PyFlavor::Fabric
    } else if text.lines().any(|l| percent_marker(l).is_some()) {
        PyFlavor::Percent
    } else {
        PyFlavor::Plain
    }
}

/// A Jupytext percent marker (`# %%`, `# %% [markdown]`, `# %% tags=["parameters"]`): the rest
/// of the line after `%%`.
fn percent_marker(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("# %%")
        .or_else(|| line.strip_prefix("#%%"))?;
    (rest.is_empty() || rest.starts_with(' ')).then_some(rest)
}

/// A Fabric separator (`# CELL ********************` and its kin): its keyword.
fn fabric_marker(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("# ")?;
    let (word, stars) = rest.split_once(' ')?;
    let stars = stars.trim_end();
    (stars.len() >= 3 && stars.bytes().all(|b| b == b'*')).then_some(word)
}

/// One cell of a `.py` file being collected.
struct PyCell<'t> {
    number: usize,
    markdown: bool,
    parameters: bool,
    /// Lines with their 1-based line numbers.
    lines: Vec<(usize, &'t str)>,
    /// Fabric: the cell's language from the metadata block after it.
    language: Option<String>,
}

impl<'t> PyCell<'t> {
    fn new(number: usize) -> Self {
        PyCell {
            number,
            markdown: false,
            parameters: false,
            lines: Vec::new(),
            language: None,
        }
    }
}

fn parse_py(text: &str, out: &mut Out) {
    let flavor = py_flavor(text);
    let mut cells: Vec<PyCell> = Vec::new();
    let mut current = PyCell::new(1);
    // Lines before the first marker: a cell of their own unless they are only comments (the
    // Jupytext header, the Databricks/Fabric first line).
    let mut before_first_marker = true;
    let mut in_fabric_meta: Option<Vec<&str>> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line_no == 1 && matches!(flavor, PyFlavor::Databricks | PyFlavor::Fabric) {
            continue;
        }
        let marker = match flavor {
            PyFlavor::Percent => percent_marker(line).map(|rest| {
                let rest = rest.trim();
                let markdown = rest.starts_with("[markdown]") || rest.starts_with("[md]");
                let parameters = rest.split_once("tags=").is_some_and(|(_, tags)| {
                    tags.contains("\"parameters\"") || tags.contains("'parameters'")
                });
                (markdown, parameters, false)
            }),
            PyFlavor::Databricks => {
                (line.trim_end() == "# COMMAND ----------").then_some((false, false, false))
            }
            PyFlavor::Fabric => fabric_marker(line).map(|word| match word {
                "MARKDOWN" => (true, false, false),
                "PARAMETERS" => (false, true, false),
                "METADATA" => (false, false, true),
                _ => (false, false, false),
            }),
            PyFlavor::Plain => None,
        };
        if let Some(meta_lines) = in_fabric_meta.as_mut() {
            if let Some(meta) = line.strip_prefix("# META") {
                meta_lines.push(meta);
                continue;
            }
            if line.trim().is_empty() && marker.is_none() {
                continue;
            }
            let meta = in_fabric_meta.take().unwrap_or_default();
            fabric_cell_language(&meta, &mut current, out, line_no);
        }
        match marker {
            Some((_, _, true)) => {
                in_fabric_meta = Some(Vec::new());
            }
            Some((markdown, parameters, false)) => {
                let keep = !before_first_marker
                    || current
                        .lines
                        .iter()
                        .any(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
                let next_number = if keep {
                    current.number + 1
                } else {
                    current.number
                };
                let done = std::mem::replace(&mut current, PyCell::new(next_number));
                if keep {
                    cells.push(done);
                }
                before_first_marker = false;
                current.markdown = markdown;
                current.parameters = parameters;
            }
            None => current.lines.push((line_no, line)),
        }
    }
    if let Some(meta) = in_fabric_meta.take() {
        fabric_cell_language(&meta, &mut current, out, text.lines().count() + 1);
    }
    cells.push(current);
    for cell in cells {
        add_py_cell(flavor, cell, out);
    }
}

/// Reads a Fabric metadata block (`# META` lines holding JSON, ending before `line_no`); its
/// `language` applies to the cell before it.
fn fabric_cell_language(meta: &[&str], cell: &mut PyCell, out: &mut Out, line_no: usize) {
    let json: String = meta.iter().map(|l| format!("{l}\n")).collect();
    if json.trim().is_empty() {
        return;
    }
    match serde_json::from_str::<Value>(&json) {
        Ok(v) => {
            if let Some(language) = v.get("language").and_then(Value::as_str) {
                cell.language = Some(language.to_string());
            }
        }
        Err(e) => out.diag(
            Severity::Warning,
            line_no.saturating_sub(meta.len()).max(1),
            1,
            format!("unreadable Fabric metadata block ({e}); ignored"),
        ),
    }
}

fn add_py_cell(flavor: PyFlavor, cell: PyCell, out: &mut Out) {
    if cell.markdown {
        return;
    }
    let mut lines = cell.lines;
    // Databricks and Fabric keep magic cells as `# MAGIC ` comment lines.
    if matches!(flavor, PyFlavor::Databricks | PyFlavor::Fabric)
        && lines
            .iter()
            .filter(|(_, l)| !l.trim().is_empty())
            .all(|(_, l)| l.starts_with("# MAGIC"))
    {
        for (_, l) in lines.iter_mut() {
            let stripped = l.strip_prefix("# MAGIC").unwrap_or(l);
            *l = stripped.strip_prefix(' ').unwrap_or(stripped);
        }
    }
    // Jupytext comments out magics: `# %%sql`.
    if flavor == PyFlavor::Percent {
        if let Some((_, first)) = lines.iter_mut().find(|(_, l)| !l.trim().is_empty()) {
            if let Some(magic) = first
                .strip_prefix("# ")
                .filter(|m| m.starts_with('%') && !m.starts_with("% "))
            {
                *first = magic;
            }
        }
    }
    let Some(start) = lines.iter().position(|(_, l)| !l.trim().is_empty()) else {
        return;
    };
    let end = lines
        .iter()
        .rposition(|(_, l)| !l.trim().is_empty())
        .map_or(start, |e| e + 1);
    let body = &lines[start..end];
    let kind = match cell.language.as_deref().map(kind_of_language) {
        Some(Ok(kind)) => kind,
        Some(Err(language)) => {
            out.error(
                body[0].0,
                1,
                format!(
                    "cell {}: {language} cells are not supported: Spool runs Python and SQL cells only",
                    cell.number
                ),
            );
            return;
        }
        None => CellKind::Python,
    };
    add_with_magic(
        out,
        CodeCell {
            kind,
            source: body.iter().map(|(_, l)| *l).collect::<Vec<_>>().join("\n"),
            number: cell.number,
            at: SourceAt::start(body[0].0, 1, 1),
            parameters: cell.parameters,
        },
    );
}

// ---------------------------------------------------------------------------------------------
// SQL statements

/// One statement of a SQL text, without its `;`, and where it starts (1-based, in the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlStatement {
    pub text: String,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub message: String,
    pub line: usize,
    pub col: usize,
}

/// Splits SQL text on the `;` that end statements: not inside quoted strings (`'…'`, `"…"`,
/// with backslash escapes), back-quoted identifiers, `--` comments or (nested) `/* */`
/// comments. Statements holding only blanks and comments are dropped. An unterminated string
/// or comment ends the text with an error at its start.
pub fn split_sql_statements(text: &str) -> Vec<Result<SqlStatement, SqlError>> {
    let index = LineIndex::new(text);
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    // Start of the current statement's first token, if it has one yet.
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b';' => {
                if let Some(s) = start.take() {
                    out.push(Ok(statement(text, &index, s, i)));
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = text[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => match block_comment_end(bytes, i) {
                Some(end) => i = end,
                None => {
                    out.push(Err(sql_error(&index, i, "unterminated /* comment")));
                    return out;
                }
            },
            b'\'' | b'"' | b'`' => {
                start.get_or_insert(i);
                match quoted_end(bytes, i) {
                    Some(end) => i = end,
                    None => {
                        let what = if b == b'`' {
                            "unterminated `quoted` identifier"
                        } else {
                            "unterminated string literal"
                        };
                        out.push(Err(sql_error(&index, i, what)));
                        return out;
                    }
                }
            }
            _ => {
                if !b.is_ascii_whitespace() {
                    start.get_or_insert(i);
                }
                i += 1;
            }
        }
    }
    if let Some(s) = start {
        out.push(Ok(statement(text, &index, s, bytes.len())));
    }
    out
}

fn statement(text: &str, index: &LineIndex, start: usize, end: usize) -> SqlStatement {
    let (line, col) = index.line_col(start);
    SqlStatement {
        text: text[start..end].trim_end().to_string(),
        line,
        col,
    }
}

fn sql_error(index: &LineIndex, at: usize, message: &str) -> SqlError {
    let (line, col) = index.line_col(at);
    SqlError {
        message: message.to_string(),
        line,
        col,
    }
}

/// End (exclusive) of the quoted token opening at `open`; backslash escapes in strings, doubled
/// quotes in all three.
fn quoted_end(bytes: &[u8], open: usize) -> Option<usize> {
    let quote = bytes[open];
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote != b'`' => i += 2,
            b if b == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// End (exclusive) of the block comment opening at `open`; Spark nests them.
fn block_comment_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One line per cell (`number@line kind[ params]: source`) and per diagnostic.
    fn summary(file: &str, text: &str) -> Vec<String> {
        let format = Format::from_path(file).expect("test file names have a known extension");
        let parsed = parse(file, text, format);
        let cells = parsed.cells.iter().map(|c| {
            format!(
                "{}@{} {:?}{}: {}",
                c.number,
                c.line,
                c.kind,
                if c.parameters { " params" } else { "" },
                c.source.replace('\n', "⏎")
            )
        });
        let diags = parsed
            .diagnostics
            .iter()
            .map(|d| format!("{}:{} {:?}: {}", d.line, d.col, d.severity, d.message));
        cells.chain(diags).collect()
    }

    const JUPYTER: &str = r##"{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Title"]
  },
  {
   "cell_type": "code",
   "metadata": {"tags": ["parameters"]},
   "source": [
    "day = '2024-01-01'\n",
    "limit = 10"
   ]
  },
  {
   "cell_type": "code",
   "metadata": {},
   "source": [
    "%%sql\n",
    "CREATE OR REPLACE TEMP VIEW v AS SELECT 1 AS x;\n",
    "SELECT ';' AS semi, x FROM v"
   ]
  },
  {
   "cell_type": "code",
   "metadata": {},
   "source": "%%pyspark\nprint(day)"
  },
  {
   "cell_type": "code",
   "metadata": {"microsoft": {"language": "sparksql"}},
   "source": ["SELECT 2"]
  },
  {
   "cell_type": "code",
   "metadata": {},
   "source": []
  }
 ],
 "metadata": {"kernelspec": {"language": "python"}},
 "nbformat": 4,
 "nbformat_minor": 5
}"##;

    const PERCENT: &str = r##"# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# Some text

# %% tags=["parameters"]
day = "2024-01-01"

# %%
print(day)

# %%
# %%sql
SELECT 1; SELECT 2
"##;

    const DATABRICKS: &str = "# Databricks notebook source
x = 1

# COMMAND ----------

# MAGIC %md
# MAGIC # Heading

# COMMAND ----------

# MAGIC %sql
# MAGIC SELECT 'a;b'

# COMMAND ----------

# MAGIC %scala
# MAGIC val x = 1
";

    const FABRIC: &str = r##"# Fabric notebook source

# METADATA ********************

# META {
# META   "kernel_info": {"name": "synapse_pyspark"}
# META }

# PARAMETERS ********************

n = 3

# METADATA ********************

# META {
# META   "language": "python"
# META }

# CELL ********************

SELECT * FROM t

# METADATA ********************

# META {
# META   "language": "sparksql"
# META }

# MARKDOWN ********************

# # Title

# CELL ********************

# MAGIC %%sql
# MAGIC SELECT 1
"##;

    const MAGICS: &str = r##"{"nbformat": 4, "cells": [
{"cell_type": "code", "source": "%%configure\n{}"},
{"cell_type": "code",
 "source": [
  "%%spark\n",
  "val x = 1"]},
{"cell_type": "code", "source": [
  "%%sql\n",
  "SELECT \"x\n",
  "SELECT 1;\n", "SELECT 'y"]},
{"cell_type": "code", "source": "%%sql\nSELECT 1;\nSELECT 'z"},
{"cell_type": "heading", "source": ""}
]}"##;

    const SQL: &str = "-- leading comment; not a statement
CREATE TABLE t (s STRING); /* a; /* nested; */ comment */
INSERT INTO t VALUES ('it''s; fine'), (\"back\\\"slash;\"), (`odd;name`);

  SELECT 1
";

    #[test]
    fn notebooks_become_cells_and_diagnostics() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "nb.ipynb",
                JUPYTER,
                &[
                    "2@12 Python params: day = '2024-01-01'⏎limit = 10",
                    "3@21 Sql: CREATE OR REPLACE TEMP VIEW v AS SELECT 1 AS x",
                    "3@22 Sql: SELECT ';' AS semi, x FROM v",
                    "4@28 Python: print(day)",
                    "5@33 Sql: SELECT 2",
                ],
            ),
            (
                "nb.py",
                PERCENT,
                &[
                    "2@11 Python params: day = \"2024-01-01\"",
                    "3@14 Python: print(day)",
                    "4@18 Sql: SELECT 1",
                    "4@18 Sql: SELECT 2",
                ],
            ),
            (
                "nb.py",
                DATABRICKS,
                &[
                    "1@2 Python: x = 1",
                    "3@12 Sql: SELECT 'a;b'",
                    "16:1 Error: cell 4, line 1: `%scala` cells are not supported: Spool runs Python and SQL cells only",
                ],
            ),
            (
                "nb.py",
                FABRIC,
                &[
                    "1@11 Python params: n = 3",
                    "2@21 Sql: SELECT * FROM t",
                    "4@36 Sql: SELECT 1",
                ],
            ),
            (
                "q.sql",
                SQL,
                &[
                    "1@2 Sql: CREATE TABLE t (s STRING)",
                    "2@3 Sql: INSERT INTO t VALUES ('it''s; fine'), (\"back\\\"slash;\"), (`odd;name`)",
                    "3@5 Sql: SELECT 1",
                ],
            ),
            ("plain.py", "\n\nimport os\nprint(os.name)\n\n", &["1@3 Python: import os⏎print(os.name)"]),
            (
                "bad.sql",
                "SELECT 1;\nSELECT 'oops;\nFROM t",
                &["1@1 Sql: SELECT 1", "2:8 Error: statement 2: unterminated string literal"],
            ),
            (
                "bad.sql",
                "SELECT 1 /* no end",
                &["1:10 Error: statement 1: unterminated /* comment"],
            ),
            (
                "broken.ipynb",
                "{\n \"cells\": [\n  {\"cell_type\": \"code\",,}\n ]\n}",
                &["3:24 Error: not a readable Jupyter notebook: key must be a string at line 3 column 24"],
            ),
            (
                "old.ipynb",
                r#"{"nbformat": 3, "worksheets": []}"#,
                &["1:1 Error: nbformat 3 is not supported: save the notebook as nbformat 4"],
            ),
            (
                "scala.ipynb",
                r#"{"nbformat": 4, "metadata": {"language_info": {"name": "scala"}}, "cells": []}"#,
                &["1:1 Error: the notebook's language is scala: Spool runs Python and SQL notebooks only"],
            ),
            ("magics.ipynb", MAGICS, &[
                "4@11 Sql: SELECT 1",
                "2:34 Warning: cell 1, line 1: session settings (%%configure) are ignored: Spool creates the session from the pipeline's [pool]",
                "5:4 Error: cell 2, line 1: `%%spark` cells are not supported: Spool runs Python and SQL cells only",
                // Columns past a source's first line count from the line's start.
                "9:8 Error: cell 3, line 2: unterminated string literal",
                "11:1 Error: cell 4, line 3: unterminated string literal",
                "12:1 Error: cell 5: unknown cell_type `heading`",
            ]),
        ];
        for (file, text, expected) in cases {
            assert_eq!(summary(file, text), *expected, "{file}:\n{text}");
        }
    }

    #[test]
    fn oversized_notebooks_are_refused_unread() {
        let text = "x".repeat(MAX_NOTEBOOK_BYTES + 1);
        let parsed = parse("big.py", &text, Format::Py);
        assert!(parsed.cells.is_empty());
        assert!(parsed.diagnostics[0].message.contains("limit"));
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::from_path("a/b.IPYNB"), Some(Format::Ipynb));
        assert_eq!(Format::from_path("x.sql"), Some(Format::Sql));
        assert_eq!(Format::from_path("x.py"), Some(Format::Py));
        assert_eq!(Format::from_path("x.scala"), None);
        assert_eq!(Format::from_path("noext"), None);
    }

    /// SQL statements made of words and literals that hold `;` and quotes.
    fn statement_strategy() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            "[A-Za-z_][A-Za-z0-9_]{0,6}",
            "'([^'\\\\]|\\\\.|'')*'",
            "\"[a-z; ]*\"",
            "`[a-z; ]*`",
            Just("/* ; */".to_string()),
            Just("-- ;\n".to_string()),
        ];
        prop::collection::vec(token, 1..6).prop_map(|tokens| {
            // A statement starts with a word so that it never consists of comments alone.
            format!("SELECT {}", tokens.join(" "))
        })
    }

    proptest! {
        #[test]
        fn splitting_joined_statements_gives_them_back(
            statements in prop::collection::vec(statement_strategy(), 1..5)
        ) {
            let text = statements.join(";\n");
            let split: Vec<String> = split_sql_statements(&text)
                .into_iter()
                .map(|r| r.map(|s| s.text).map_err(|e| e.message))
                .collect::<Result<_, _>>()
                .map_err(TestCaseError::fail)?;
            let expected: Vec<String> =
                statements.iter().map(|s| s.trim_end().to_string()).collect();
            prop_assert_eq!(split, expected);
        }

        #[test]
        fn any_text_parses_without_panicking(text in "\\PC{0,200}") {
            for format in [Format::Ipynb, Format::Py, Format::Sql] {
                let parsed = parse("f", &text, format);
                for d in &parsed.diagnostics {
                    prop_assert!(d.line >= 1 && d.col >= 1);
                }
            }
        }
    }
}
