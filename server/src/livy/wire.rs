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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_in_second: Option<u64>,
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
}
