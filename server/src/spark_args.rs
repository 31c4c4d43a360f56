//! Where `spool run` and `spool serve` get Spark: a Livy URL with its credentials, or, without
//! one, the embedded Livy-compatible endpoint on local PySpark.

use crate::agent::Agent;
use crate::livy::{Auth, TokenSource};
use crate::livy::{ClientConfig, LivyClient};
use crate::livy_local::{self, LocalLivy};
use crate::runs::spark::LivySpark;
use crate::runs::SparkTarget;
use spool_core::sched::Policy;
use std::sync::Arc;
use std::time::Duration;

/// How long the embedded endpoint holds a statement read (see `ClientConfig::statement_wait`;
/// the endpoint's own limit is 5 s): an agent's long poll, up to 5 s, takes a few reads.
const LOCAL_STATEMENT_WAIT: Duration = Duration::from_secs(2);

#[derive(clap::Args, Debug, Clone)]
pub struct SparkArgs {
    /// Livy's base URL (Synapse: https://{workspace}.dev.azuresynapse.net/livyApi/versions/2019-11-01-preview/sparkPools/{pool});
    /// without it, Spool starts a local Livy-compatible endpoint on PySpark.
    #[arg(long)]
    pub livy: Option<String>,
    /// HTTP basic user for Livy; the password is read from $SPOOL_LIVY_PASSWORD.
    #[arg(long, conflicts_with_all = ["livy_token_env", "livy_token_command"])]
    pub livy_user: Option<String>,
    /// Bearer token for Livy, read from this environment variable.
    #[arg(long, conflicts_with = "livy_token_command")]
    pub livy_token_env: Option<String>,
    /// Bearer token for Livy, printed by this command (e.g. `az account get-access-token ...`).
    #[arg(long)]
    pub livy_token_command: Option<String>,
    /// Run in this long-lived Livy session, found by name or created (and kept after the run),
    /// instead of a new session per run: no Spark start-up on later runs. One run at a time.
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
    /// Without --livy: run the local endpoint's Spark drivers against this standalone master
    /// on this machine (scripts/spark-cluster.sh) instead of `local[N]`.
    #[arg(long, conflicts_with = "livy", value_parser = livy_local::parse_master)]
    pub master: Option<String>,
    /// Order in which ready notebooks are admitted. (Without --livy, each run's local Spark
    /// gets `local[executors × executor_cores]` from the pipeline's [pool].)
    #[arg(long, default_value = "critical-path", value_parser = parse_policy)]
    pub policy: Policy,
    /// Which secret references (`{ secret = "env:…" }` parameter values) this process resolves
    /// when a notebook starts: a comma-separated list of env, file and command, or none.
    /// `command` runs a shell command of the pipeline file on this machine: enable it only
    /// when whoever can save pipeline files may do that.
    #[arg(long, default_value = "env,file", value_name = "KINDS")]
    pub secret_sources: crate::secrets::SecretSources,
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s).ok_or_else(|| format!("expected one of {}", Policy::NAMES.join(", ")))
}

impl SparkArgs {
    fn auth(&self) -> anyhow::Result<Auth> {
        Ok(if let Some(user) = &self.livy_user {
            let password = std::env::var("SPOOL_LIVY_PASSWORD").map_err(|_| {
                anyhow::anyhow!("--livy-user needs the password in $SPOOL_LIVY_PASSWORD")
            })?;
            Auth::Basic {
                user: user.clone(),
                password,
            }
        } else if let Some(var) = &self.livy_token_env {
            Auth::Bearer(TokenSource::Env(var.clone()))
        } else if let Some(cmd) = &self.livy_token_command {
            Auth::Bearer(TokenSource::Command(cmd.clone()))
        } else {
            Auth::None
        })
    }

    /// Connects; the local endpoint, when one was started, must be kept alive (and shut down)
    /// by the caller.
    pub async fn connect(
        &self,
        work_dir: &std::path::Path,
    ) -> anyhow::Result<(SparkTarget, Option<LocalLivy>)> {
        let (url, local, auth) = match &self.livy {
            Some(url) => (url.clone(), None, self.auth()?),
            None => {
                // Only this process knows the embedded endpoint's token.
                let token = crate::api::random_token()?;
                let local = livy_local::start(livy_local::Args {
                    port: 0,
                    work_dir: work_dir.join("livy-local"),
                    token: Some(token.clone()),
                    master: self.master.clone(),
                    ..livy_local::Args::default()
                })
                .await?;
                let auth = Auth::Bearer(TokenSource::Value(token));
                (local.base_url().to_string(), Some(local), auth)
            }
        };
        let mut config = ClientConfig::new(&url);
        config.auth = auth;
        if local.is_some() {
            config.statement_wait = Some(LOCAL_STATEMENT_WAIT);
        }
        let client = LivyClient::new(config)?;
        Ok((
            SparkTarget {
                spark: Arc::new(LivySpark {
                    agent: Agent::new(client),
                }),
                policy: self.policy,
                session_name: self.session.clone(),
                secret_sources: self.secret_sources.clone(),
            },
            local,
        ))
    }
}
