//! The native side of Spool: CLI commands, the Livy client and local endpoint, the executor,
//! run history and the HTTP API. Modules are registered here (one line each) so that
//! integration tests can reach them.

pub mod fs_sources;
pub mod import;
pub mod livy_local;
pub mod plan_cmd;
pub mod simulate;
