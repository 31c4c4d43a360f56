//! What an import or export could not carry over, located by input file, item and field.

use crate::diag::escape_controls;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The input is malformed or cannot be converted: nothing is written.
    Error,
    /// Something was dropped or approximated: the output behaves differently there.
    Warning,
    /// Something the user should know or do (renamed ids, notebook files to provide).
    Note,
}

/// Where a finding points: the input file, the activity / row / step, the field inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Place {
    pub file: String,
    /// 1-based line in the file, where the input format tells (CSV rows, syntax errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The activity, row or step as named in the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The field, as a dotted path in the input (`policy.timeout`, `dependsOn`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Place {
    pub fn file(file: &str) -> Place {
        Place {
            file: file.to_string(),
            line: None,
            item: None,
            field: None,
        }
    }

    pub fn line(&self, line: usize) -> Place {
        Place {
            line: Some(line),
            ..self.clone()
        }
    }

    pub fn item(&self, item: &str) -> Place {
        Place {
            item: Some(item.to_string()),
            field: None,
            ..self.clone()
        }
    }

    pub fn field(&self, field: &str) -> Place {
        let field = match &self.field {
            Some(parent) => format!("{parent}.{field}"),
            None => field.to_string(),
        };
        Place {
            field: Some(field),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    #[serde(flatten)]
    pub place: Place,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Note => "note",
        };
        // Names and messages come from the imported files: escaped, as diagnostics are.
        write!(f, "{level}: {}", escape_controls(&self.place.file))?;
        if let Some(line) = self.place.line {
            write!(f, ":{line}")?;
        }
        if let Some(item) = &self.place.item {
            write!(f, ": `{}`", escape_controls(item))?;
        }
        if let Some(field) = &self.place.field {
            write!(f, ": {}", escape_controls(field))?;
        }
        write!(f, ": {}", escape_controls(&self.message))
    }
}

/// Findings in the order they were made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn add(&mut self, level: Level, place: &Place, message: impl Into<String>) {
        self.findings.push(Finding {
            level,
            place: place.clone(),
            message: message.into(),
        });
    }

    pub fn error(&mut self, place: &Place, message: impl Into<String>) {
        self.add(Level::Error, place, message);
    }

    pub fn warning(&mut self, place: &Place, message: impl Into<String>) {
        self.add(Level::Warning, place, message);
    }

    pub fn note(&mut self, place: &Place, message: impl Into<String>) {
        self.add(Level::Note, place, message);
    }

    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Error)
    }

    pub fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }

    /// One finding per line.
    pub fn render(&self) -> String {
        self.findings.iter().map(|f| format!("{f}\n")).collect()
    }
}
