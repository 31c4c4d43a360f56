//! The typed pipeline metadata, as read from one pipeline file (before sub-pipelines are expanded).

use crate::diag::Span;
use crate::template::{Template, ValueType};
use crate::value_condition::ValueCondition;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Metadata files larger than this are refused before parsing.
pub const MAX_METADATA_BYTES: usize = 10 * 1024 * 1024;

/// Outcome of a finished notebook (or sub-pipeline) attempt sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
    Skipped,
}

/// The set of upstream outcomes under which a dependency holds (Azure Data Factory's
/// dependency conditions). Stored as a bit set so that conditions compose when edges are
/// bridged through inactive notebooks or merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Condition(u8);

impl Condition {
    const S: u8 = 1;
    const F: u8 = 2;
    const K: u8 = 4;
    pub const SUCCEEDED: Condition = Condition(Self::S);
    pub const FAILED: Condition = Condition(Self::F);
    pub const COMPLETED: Condition = Condition(Self::S | Self::F);
    pub const SKIPPED: Condition = Condition(Self::K);
    /// Internal: a sub-pipeline's end waits for every inner notebook whatever its outcome.
    pub const ANY: Condition = Condition(Self::S | Self::F | Self::K);
    /// Internal: a dependency that can never hold (for example on the failure of an
    /// inactive notebook, which never fails).
    pub const NEVER: Condition = Condition(0);

    fn bit(outcome: Outcome) -> u8 {
        match outcome {
            Outcome::Succeeded => Self::S,
            Outcome::Failed => Self::F,
            Outcome::Skipped => Self::K,
        }
    }

    pub fn accepts(self, outcome: Outcome) -> bool {
        self.0 & Self::bit(outcome) != 0
    }

    /// Both conditions must hold (two edges between the same pair of nodes).
    pub fn and(self, other: Condition) -> Condition {
        Condition(self.0 & other.0)
    }

    /// The condition on `u` equivalent to `u -[self]-> v -[next]-> w` when `v` is inactive:
    /// an inactive node counts as succeeded when its own condition holds and as skipped
    /// otherwise.
    pub fn through_inactive(self, next: Condition) -> Condition {
        let mut bits = 0;
        if next.0 & Self::S != 0 {
            bits |= self.0;
        }
        if next.0 & Self::K != 0 {
            bits |= !self.0 & Self::ANY.0;
        }
        Condition(bits)
    }

    pub fn parse(s: &str) -> Option<Condition> {
        match s {
            "succeeded" => Some(Self::SUCCEEDED),
            "failed" => Some(Self::FAILED),
            "completed" => Some(Self::COMPLETED),
            "skipped" => Some(Self::SKIPPED),
            _ => None,
        }
    }

    /// The condition [`Condition::name`] names, internal ones included (a recorded plan holds
    /// them).
    pub fn from_name(name: &str) -> Option<Condition> {
        (0..=Self::ANY.0).map(Condition).find(|c| c.name() == name)
    }

    pub const NAMES: [&'static str; 4] = ["succeeded", "failed", "completed", "skipped"];

    pub fn name(self) -> &'static str {
        match self.0 {
            x if x == Self::S => "succeeded",
            x if x == Self::F => "failed",
            x if x == Self::S | Self::F => "completed",
            x if x == Self::K => "skipped",
            x if x == Self::ANY.0 => "any",
            0 => "never",
            x if x == Self::S | Self::K => "succeeded-or-skipped",
            _ => "failed-or-skipped",
        }
    }
}

impl Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The Spark pool a pipeline runs on, and what the Livy session request asks of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pool {
    pub executors: u32,
    pub executor_cores: u32,
    /// Cap on notebooks running at once (Genie's thread count); `None` = limited by slots only.
    pub max_concurrency: Option<u32>,
    /// When the Livy session dies mid-run, create a new one and continue.
    pub recreate_session: bool,
    // The session request's fields are left out of the JSON (plans, the API) where they hold
    // their default, so that a plan says only what its file says.
    /// The Livy server the pipeline is written for: decides which session fields are checked.
    #[serde(skip_serializing_if = "Platform::is_livy")]
    pub platform: Platform,
    /// Spark memory sizes as Livy takes them (`"28g"`, `"512m"`); `None` = the server's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor_memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_cores: Option<u32>,
    /// Livy's `jars` and `pyFiles`: URLs or paths on the cluster, sent as written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jars: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub py_files: Vec<String>,
    /// YARN queue (EMR, HDInsight).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Livy's `heartbeatTimeoutInSecond`: the session is deleted when no client asked about it
    /// for this long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_secs: Option<u64>,
    /// Livy 0.8's `ttl` (`"30m"`): idle sessions are deleted after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// A session still starting after this long is deleted and the run fails.
    #[serde(skip_serializing_if = "is_default_start_timeout")]
    pub session_start_timeout_secs: u64,
    /// The `[spark_conf]` table: Spark settings sent in the session request's `conf`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub spark_conf: BTreeMap<String, String>,
}

fn is_default_start_timeout(secs: &u64) -> bool {
    *secs == DEFAULT_SESSION_START_TIMEOUT_SECS
}

impl Pool {
    pub fn capacity(&self) -> u32 {
        self.executors.saturating_mul(self.executor_cores)
    }
}

/// Waiting 20 minutes for a session to start is long even for a cold Synapse pool.
pub const DEFAULT_SESSION_START_TIMEOUT_SECS: u64 = 20 * 60;

impl Default for Pool {
    fn default() -> Self {
        Pool {
            executors: 2,
            executor_cores: 4,
            max_concurrency: None,
            recreate_session: false,
            platform: Platform::Livy,
            executor_memory: None,
            driver_memory: None,
            driver_cores: None,
            jars: Vec::new(),
            py_files: Vec::new(),
            queue: None,
            heartbeat_timeout_secs: None,
            ttl: None,
            session_start_timeout_secs: DEFAULT_SESSION_START_TIMEOUT_SECS,
            spark_conf: BTreeMap::new(),
        }
    }
}

/// The Livy server a pipeline is written for (`[pool] platform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Apache Livy as is (Livy on Kubernetes, `spool livy-local`): every field sent as written.
    Livy,
    /// Azure Synapse: executors and the driver are whole nodes of the pool's size.
    Synapse,
    /// Amazon EMR (YARN).
    Emr,
    /// Azure HDInsight (YARN).
    Hdinsight,
}

impl Platform {
    pub const NAMES: [&'static str; 4] = ["livy", "synapse", "emr", "hdinsight"];

    pub fn parse(s: &str) -> Option<Platform> {
        match s {
            "livy" => Some(Platform::Livy),
            "synapse" => Some(Platform::Synapse),
            "emr" => Some(Platform::Emr),
            "hdinsight" => Some(Platform::Hdinsight),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    fn is_livy(&self) -> bool {
        *self == Platform::Livy
    }

    /// Whether the server places sessions in YARN queues.
    pub fn has_queues(self) -> bool {
        matches!(self, Platform::Emr | Platform::Hdinsight)
    }
}

/// A Synapse node size: what a Synapse Livy session's driver and each executor get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynapseNodeSize {
    pub name: &'static str,
    pub cores: u32,
    /// Memory as Synapse's session request takes it (node memory minus the system's share).
    pub memory: &'static str,
}

/// Synapse's node sizes, smallest first.
pub const SYNAPSE_NODE_SIZES: [SynapseNodeSize; 5] = [
    SynapseNodeSize {
        name: "Small",
        cores: 4,
        memory: "28g",
    },
    SynapseNodeSize {
        name: "Medium",
        cores: 8,
        memory: "56g",
    },
    SynapseNodeSize {
        name: "Large",
        cores: 16,
        memory: "112g",
    },
    SynapseNodeSize {
        name: "XLarge",
        cores: 32,
        memory: "224g",
    },
    SynapseNodeSize {
        name: "XXLarge",
        cores: 64,
        memory: "400g",
    },
];

impl SynapseNodeSize {
    pub fn with_cores(cores: u32) -> Option<SynapseNodeSize> {
        SYNAPSE_NODE_SIZES.into_iter().find(|s| s.cores == cores)
    }

    /// `Small (4 cores, 28g), Medium (8 cores, 56g), ...` for diagnostics.
    pub fn table() -> String {
        SYNAPSE_NODE_SIZES
            .iter()
            .map(|s| format!("{} ({} cores, {})", s.name, s.cores, s.memory))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Per-notebook run settings; every one may come from `[defaults]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSettings {
    pub retry: u32,
    pub retry_interval_secs: u64,
    pub timeout_secs: u64,
    pub slots: u32,
    pub estimate_secs: f64,
    pub isolated: bool,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            retry: 0,
            retry_interval_secs: 30,
            timeout_secs: 12 * 3600,
            slots: 1,
            estimate_secs: 60.0,
            isolated: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dependency {
    pub id: String,
    pub on: Condition,
    /// `if`: a condition on values that must hold too (checked once `on` holds).
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    pub when: Option<ValueCondition>,
    #[serde(skip)]
    pub span: Span,
    /// Where the `if` text is.
    #[serde(skip)]
    pub when_at: TextAt,
}

/// What a `[[notebook]]` or `[[pipeline]]` entry names.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Notebook,
    Pipeline,
}

/// Python's keywords: a parameter becomes a variable in the notebook's namespace, so none of
/// these can be a parameter's name.
const PYTHON_KEYWORDS: [&str; 35] = [
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// Why `name` cannot be a parameter's name, or `None` when it can: the one rule for parameter
/// names, checked where a pipeline file is read and where a run's overrides are given (the
/// driver agent refuses the same names). A parameter becomes a Python variable, so its name is
/// an ASCII identifier, not a keyword and not a dunder; it has no dot, which separates
/// `notebook.key` in overrides.
pub fn param_name_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier {
        Some("a parameter name is letters, digits and `_` (ASCII), not starting with a digit")
    } else if PYTHON_KEYWORDS.contains(&name) {
        Some("a parameter name cannot be a Python keyword")
    } else if name.starts_with("__") {
        Some("a parameter name cannot start with `__` (reserved by Python)")
    } else {
        None
    }
}

/// One `[[notebook]]` or `[[pipeline]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub kind: StepKind,
    pub id: String,
    /// As written, relative to the pipeline file.
    pub path: String,
    pub depends_on: Vec<Dependency>,
    /// Parameter values, any TOML value converted to JSON (datetimes become strings).
    pub params: BTreeMap<String, serde_json::Value>,
    pub active: bool,
    pub settings: RunSettings,
    #[serde(skip)]
    pub spans: StepSpans,
    /// The strings of `params` that hold `{{ … }}` references, parsed.
    #[serde(skip)]
    pub templates: Vec<TemplateSite>,
    /// `for_each` (a notebook only): run once per item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_each: Option<crate::for_each::ForEach>,
}

/// A parameter of a pipeline file (`[params]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamDecl {
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// `None`: every run must give it (and every `[[pipeline]]` entry including the file). A
    /// default may refer to `run.…` (`"{{ run.date | add_days(-1) }}"`).
    pub default: Option<serde_json::Value>,
    /// Where its name is written.
    #[serde(skip)]
    pub span: Span,
}

/// A string with references inside a step's `params` (at any depth of the value).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSite {
    /// The parameter whose value holds it.
    pub param: String,
    /// Whether the string is that parameter's whole value (not inside an array or a table).
    pub top: bool,
    pub template: Template,
    pub at: TextAt,
}

/// Where a string's text is in the file, to locate problems found inside the string.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TextAt {
    /// Where the string's text starts in the file, when byte offsets inside the string are
    /// offsets in the file too (no escapes); otherwise where the string starts.
    pub start: usize,
    pub exact: bool,
}

impl TextAt {
    /// The file's bytes for `range`, a range inside the string.
    pub fn file_span(&self, range: &std::ops::Range<usize>) -> Span {
        if self.exact {
            self.start + range.start..self.start + range.end
        } else {
            self.start..self.start + 1
        }
    }
}

/// Where the parts of a step were written, for diagnostics found after parsing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepSpans {
    pub entry: Span,
    pub id: Span,
    pub path: Span,
    pub slots: Option<Span>,
    /// Where each name of `params` is written.
    pub params: BTreeMap<String, Span>,
    /// Where each run setting written on the entry itself is (the others come from
    /// `[defaults]`).
    pub settings: BTreeMap<String, Span>,
    /// Where the values of `for_each`, `for_each_concurrency` and `expected_items` are
    /// written, those that are.
    pub for_each: BTreeMap<String, Span>,
}

/// One pipeline file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineFile {
    pub name: String,
    pub description: Option<String>,
    pub pool: Pool,
    pub defaults: RunSettings,
    /// The whole run's limit (top-level `timeout_secs`): past it the run is cancelled. Only the
    /// root file's counts.
    pub timeout_secs: Option<u64>,
    /// `[params]`: the values the file's steps may refer to as `{{ params.NAME }}`.
    pub params: BTreeMap<String, ParamDecl>,
    pub steps: Vec<Step>,
    /// `[schedule]`: when `spool serve` starts the pipeline by itself (the root file's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<crate::schedule::Schedule>,
    /// `[[notify]]`: who is told when a run ends (the root file's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::notify::Notify>,
    /// `max_concurrent_runs` and `on_overlap`: the pipeline's own runs at once (the root
    /// file's).
    #[serde(skip)]
    pub concurrency: crate::overlap::Concurrency,
    #[serde(skip)]
    pub pool_span: Option<Span>,
}
