//! The JSON of Livy's REST API, shared by the client and by `spool livy-local`, so that what one
//! sends is what the other reads. Field names follow Livy (camelCase). States Spool does not know
//! are kept verbatim (`Unknown`) rather than failing: Synapse and EMR add their own.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// A string enum of Livy's with a catch-all for values this version does not know.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A value this version of Spool does not know, kept as sent.
            Unknown(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)*
                    Self::Unknown(s) => s,
                }
            }

            pub fn parse(s: &str) -> Self {
                match s {
                    $($text => Self::$variant,)*
                    other => Self::Unknown(other.to_string()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::parse(&String::deserialize(d)?))
            }
        }
    };
}

wire_enum!(
    /// A session's state (Livy's `SessionState`).
    SessionState {
        NotStarted = "not_started",
        Starting = "starting",
        Recovering = "recovering",
        Idle = "idle",
        Running = "running",
        Busy = "busy",
        ShuttingDown = "shutting_down",
        Error = "error",
        Dead = "dead",
        Killed = "killed",
        Success = "success",
    }
);

impl SessionState {
    /// The session will never run a statement again.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            Self::Error | Self::Dead | Self::Killed | Self::Success
        )
    }
}

wire_enum!(
    /// A statement's state (Livy's `StatementState`).
    StatementState {
        Waiting = "waiting",
        Running = "running",
        Available = "available",
        Error = "error",
        Cancelling = "cancelling",
        Cancelled = "cancelled",
    }
);

impl StatementState {
    /// The statement's state will not change again.
    pub fn is_finished(&self) -> bool {
        matches!(self, Self::Available | Self::Error | Self::Cancelled)
    }
}

wire_enum!(
    /// The language of a session or a statement.
    Kind {
        Spark = "spark",
        Pyspark = "pyspark",
        Sparkr = "sparkr",
        Sql = "sql",
        Shared = "shared",
    }
);

wire_enum!(
    OutputStatus {
        Ok = "ok",
        Error = "error",
    }
);

/// `null` where Livy (or Synapse) writes it for an empty list or map.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `POST /sessions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSession {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_cores: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_cores: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_executors: Option<u32>,
    /// Spark configuration. Values are strings in Livy; clients also send numbers and booleans.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub conf: BTreeMap<String, Value>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub jars: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub py_files: Vec<String>,
    /// YARN queue (EMR, HDInsight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_in_second: Option<u64>,
    /// Idle time after which Livy 0.8 deletes the session (`"30m"`); older servers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

impl CreateSession {
    /// The request for a pipeline's session: `[pool]` as Livy's fields, `[spark_conf]` as its
    /// `conf`, FAIR scheduling between the notebooks' pools unless the pipeline says otherwise.
    pub fn for_pool(pool: &spool_core::model::Pool, name: String) -> Self {
        let mut conf = BTreeMap::from([("spark.scheduler.mode".to_string(), Value::from("FAIR"))]);
        conf.extend(
            pool.spark_conf
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str()))),
        );
        CreateSession {
            kind: Some(Kind::Pyspark),
            name: Some(name),
            driver_memory: pool.driver_memory.clone(),
            driver_cores: pool.driver_cores,
            executor_memory: pool.executor_memory.clone(),
            executor_cores: Some(pool.executor_cores),
            num_executors: Some(pool.executors),
            conf,
            jars: pool.jars.clone(),
            py_files: pool.py_files.clone(),
            queue: pool.queue.clone(),
            heartbeat_timeout_in_second: pool.heartbeat_timeout_secs,
            ttl: pool.ttl.clone(),
        }
    }
}

/// A session as `GET /sessions/{id}` returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    /// Always written, as `null` when unset: some clients index it unconditionally.
    #[serde(default)]
    pub proxy_user: Option<String>,
    #[serde(default)]
    pub kind: Option<Kind>,
    pub state: SessionState,
    #[serde(default, deserialize_with = "null_as_default")]
    pub app_info: BTreeMap<String, Option<String>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub log: Vec<String>,
    /// Synapse: what went wrong, when the session failed (`errorInfo`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub error_info: Vec<ServiceError>,
    /// Fields Spool does not read, kept as sent: Synapse's `livyInfo` (when each state was
    /// first seen), `result`, `schedulerInfo`, `pluginInfo`, `tags`; Livy 0.8's echo of the
    /// request (`driverMemory`, `conf`, `ttl`...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Longest failure reason taken from a session's log.
const MAX_REASON_CHARS: usize = 2000;
/// Log lines a failure reason quotes at most.
const REASON_LOG_LINES: usize = 8;

impl Session {
    /// Why a finished session failed, in the server's words: Synapse's `errorInfo`, else the
    /// last lines of the session's log (Livy puts the driver's stderr there).
    pub fn failure_reason(&self) -> Option<String> {
        let reason = if self.error_info.is_empty() {
            let lines: Vec<&str> = self
                .log
                .iter()
                .map(|l| l.trim_end())
                .filter(|l| !l.trim().is_empty())
                .collect();
            lines[lines.len().saturating_sub(REASON_LOG_LINES)..].join("\n")
        } else {
            self.error_info
                .iter()
                .map(ServiceError::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        if reason.is_empty() {
            return None;
        }
        Some(match reason.char_indices().nth(MAX_REASON_CHARS) {
            Some((cut, _)) => format!("{}...", &reason[..cut]),
            None => reason,
        })
    }
}

/// One entry of Synapse's `errorInfo`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceError {
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `System`, `User`, `Dependency` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.error_code, &self.source) {
            (Some(code), Some(source)) => write!(f, "{code} ({source}): {}", self.message),
            (Some(code), None) => write!(f, "{code}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// `GET /sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionList {
    #[serde(default)]
    pub from: u64,
    #[serde(default)]
    pub total: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sessions: Vec<Session>,
}

/// `GET /sessions/{id}/state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionStateReply {
    pub id: u64,
    pub state: SessionState,
}

/// `GET /sessions/{id}/log`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionLog {
    pub id: u64,
    #[serde(default)]
    pub from: u64,
    #[serde(default)]
    pub total: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub log: Vec<String>,
}

/// `POST /sessions/{id}/statements`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitStatement {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
}

/// A statement as `GET /sessions/{id}/statements/{sid}` returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Statement {
    pub id: u64,
    #[serde(default)]
    pub code: String,
    pub state: StatementState,
    /// Always written, as `null` until the statement has run.
    #[serde(default)]
    pub output: Option<StatementOutput>,
    #[serde(default)]
    pub progress: Option<f64>,
    /// Epoch milliseconds (Livy 0.6+); 0 or absent when not yet.
    #[serde(default)]
    pub started: Option<i64>,
    #[serde(default)]
    pub completed: Option<i64>,
}

/// `GET /sessions/{id}/statements`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatementList {
    #[serde(default)]
    pub total_statements: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub statements: Vec<Statement>,
}

/// What a statement produced: `{"status":"ok","execution_count":n,"data":{"text/plain":...}}`
/// or `{"status":"error","ename":...,"evalue":...,"traceback":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementOutput {
    pub status: OutputStatus,
    #[serde(default)]
    pub execution_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evalue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<Vec<String>>,
}

impl StatementOutput {
    /// The `text/plain` result of a successful statement.
    pub fn text(&self) -> Option<&str> {
        self.data.as_ref()?.get("text/plain")?.as_str()
    }
}

/// `{"msg": ...}`: Livy's error bodies and the answer to deletes and cancels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub msg: String,
}

/// `GET /version`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_states_are_kept_and_written_back() {
        let s: Session = serde_json::from_str(
            r#"{"id": 7, "state": "provisioning", "appInfo": null, "log": null, "livyInfo": {}}"#,
        )
        .expect("tolerant of unknown states, nulls and extra fields");
        assert_eq!(s.state, SessionState::Unknown("provisioning".into()));
        assert!(!s.state.is_finished());
        let back = serde_json::to_value(&s).expect("serializes");
        assert_eq!(back["state"], "provisioning");
        assert_eq!(back["proxyUser"], Value::Null);
    }

    #[test]
    fn statement_outputs_read_both_shapes() {
        let ok: Statement = serde_json::from_str(
            r#"{"id":1,"code":"1+1","state":"available","output":{"status":"ok","execution_count":1,"data":{"text/plain":"2"}},"progress":1.0}"#,
        )
        .expect("ok output");
        assert_eq!(
            ok.output.as_ref().and_then(StatementOutput::text),
            Some("2")
        );
        let err: Statement = serde_json::from_str(
            r#"{"id":2,"code":"1/0","state":"available","output":{"status":"error","execution_count":2,"ename":"ZeroDivisionError","evalue":"division by zero","traceback":["x"]}}"#,
        )
        .expect("error output");
        let out = err.output.expect("has output");
        assert_eq!(out.status, OutputStatus::Error);
        assert_eq!(out.ename.as_deref(), Some("ZeroDivisionError"));
        assert_eq!(out.text(), None);
    }

    /// Fixtures in the shapes Apache Livy 0.7/0.8 and Synapse's Livy API send (their REST
    /// documentation, Livy's `SessionServlet`, Synapse's `sparkJob.json` specification).
    fn fixture<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> T {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} does not decode: {e}"))
    }

    #[test]
    fn apache_livy_session_lists_decode() {
        let list: SessionList = fixture(
            "livy-0.7-sessions",
            include_str!("fixtures/livy-0.7-sessions.json"),
        );
        assert_eq!((list.from, list.total, list.sessions.len()), (0, 2, 2));
        let idle = &list.sessions[0];
        assert_eq!(idle.state, SessionState::Idle);
        assert_eq!(idle.kind, Some(Kind::Pyspark));
        assert!(idle.app_info["sparkUiUrl"]
            .as_deref()
            .is_some_and(|u| u.contains("application_1700000000000_0042")));
        assert_eq!(list.sessions[1].app_info["driverLogUrl"], None);
        assert_eq!(list.sessions[1].state, SessionState::Starting);
    }

    #[test]
    fn a_dead_livy_session_explains_itself_from_its_log_and_keeps_livy_08_fields() {
        let dead: Session = fixture(
            "livy-0.8-session-dead",
            include_str!("fixtures/livy-0.8-session-dead.json"),
        );
        assert!(dead.state.is_finished());
        let reason = dead.failure_reason().expect("the log says why");
        assert!(reason.contains("OutOfMemoryError"), "{reason}");
        assert!(reason.contains("exitCode: 1"), "{reason}");
        assert_eq!(dead.extra["ttl"], "30m");
        assert_eq!(dead.extra["numExecutors"], 3);
        let back = serde_json::to_value(&dead).expect("serializes");
        assert_eq!(
            back["queue"], "etl",
            "unknown fields are written back as read"
        );
    }

    #[test]
    fn livy_statement_outputs_decode_in_every_shape() {
        let list: StatementList = fixture(
            "livy-statements",
            include_str!("fixtures/livy-statements.json"),
        );
        assert_eq!(list.total_statements, 4);
        let [text, json, error, running] = &list.statements[..] else {
            panic!("four statements expected");
        };
        assert_eq!(
            text.output.as_ref().and_then(StatementOutput::text),
            Some("10")
        );
        let data = json
            .output
            .as_ref()
            .and_then(|o| o.data.as_ref())
            .expect("data");
        assert_eq!(data["application/json"]["data"][2][0], 2);
        let err = error.output.as_ref().expect("error output");
        assert_eq!(err.status, OutputStatus::Error);
        assert_eq!(err.evalue.as_deref(), Some("division by zero"));
        assert_eq!(err.traceback.as_ref().map(Vec::len), Some(3));
        assert_eq!(running.state, StatementState::Running);
        assert!(running.output.is_none());
        let log: SessionLog = fixture(
            "livy-session-log",
            include_str!("fixtures/livy-session-log.json"),
        );
        assert_eq!((log.id, log.total, log.log.len()), (11, 3, 3));
    }

    #[test]
    fn synapse_sessions_decode_with_their_extra_fields_and_states() {
        let list: SessionList = fixture(
            "synapse-sessions",
            include_str!("fixtures/synapse-sessions.json"),
        );
        assert_eq!(list.total, 2);
        let idle = &list.sessions[0];
        assert_eq!(idle.state, SessionState::Idle);
        assert_eq!(
            idle.extra["livyInfo"]["startingAt"],
            "2023-11-14T22:00:05.7654321+00:00"
        );
        assert_eq!(idle.extra["pluginInfo"]["currentState"], "Monitoring");
        assert_eq!(idle.extra["schedulerInfo"]["currentState"], "Scheduled");
        assert_eq!(idle.extra["result"], "Uncertain");
        let queued = &list.sessions[1];
        assert_eq!(queued.state, SessionState::NotStarted);
        assert!(!queued.state.is_finished());
        assert!(
            queued.error_info.is_empty() && queued.log.is_empty() && queued.app_info.is_empty()
        );

        let recovering: Session = fixture(
            "synapse-session-recovering",
            include_str!("fixtures/synapse-session-recovering.json"),
        );
        assert_eq!(recovering.state, SessionState::Recovering);
        assert!(!recovering.state.is_finished());
    }

    #[test]
    fn a_failed_synapse_session_gives_synapse_own_reason() {
        let failed: Session = fixture(
            "synapse-session-error",
            include_str!("fixtures/synapse-session-error.json"),
        );
        assert_eq!(failed.state, SessionState::Error);
        assert!(failed.state.is_finished());
        let reason = failed.failure_reason().expect("errorInfo says why");
        assert!(
            reason.starts_with(
                "SPARK_POOL_CAPACITY_EXCEEDED (User): Your Spark job requested 48 vcores"
            ),
            "{reason}"
        );
    }

    #[test]
    fn the_session_request_carries_the_pool_in_livy_field_names() {
        let text = r#"
[pool]
platform = "synapse"
executors = 3
executor_cores = 4
py_files = ["abfss://libs@acct.dfs.core.windows.net/helpers.zip"]
heartbeat_timeout_secs = 600
ttl = "45m"

[spark_conf]
"spark.scheduler.mode" = "FIFO"
"spark.sql.shuffle.partitions" = 48
"#;
        let (file, diags) = spool_core::parse::parse_pipeline("p.toml", text);
        assert!(diags.is_empty(), "{diags:?}");
        let request = CreateSession::for_pool(&file.expect("parsed").pool, "spool-run-1-1".into());
        let json = serde_json::to_value(&request).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "pyspark",
                "name": "spool-run-1-1",
                "numExecutors": 3,
                "executorCores": 4,
                "executorMemory": "28g",
                "driverCores": 4,
                "driverMemory": "28g",
                "pyFiles": ["abfss://libs@acct.dfs.core.windows.net/helpers.zip"],
                "heartbeatTimeoutInSecond": 600,
                "ttl": "45m",
                "conf": {"spark.scheduler.mode": "FIFO", "spark.sql.shuffle.partitions": "48"},
            })
        );
        let default = CreateSession::for_pool(&spool_core::model::Pool::default(), "s".into());
        assert_eq!(default.conf["spark.scheduler.mode"], "FAIR");
    }
}
