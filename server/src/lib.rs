//! The native side of Spool: CLI commands, the Livy client and local endpoint, the executor,
//! run history and the HTTP API. Modules are registered here (one line each) so that
//! integration tests can reach them.

pub mod agent;
pub mod api;
pub mod calibration;
pub mod drafts;
pub mod fs_sources;
pub mod history;
pub mod history_cmd;
pub mod import;
pub mod livy;
pub mod livy_local;
pub mod notify;
pub mod plan_cmd;
pub mod run_cmd;
pub mod run_params;
pub mod runs;
pub mod schedule_cmd;
pub mod scheduler;
pub mod secrets;
pub mod serve;
pub mod simulate;
pub mod spark_args;
