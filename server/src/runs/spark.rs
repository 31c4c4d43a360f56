//! The seam between the driver loop and Spark: the few operations a run needs from a session,
//! with errors that say whether the request may have taken effect. [`LivySpark`] is the real
//! backend (Livy + the driver agent); the tests use an in-memory fake with scripted faults.

use crate::agent::{Agent, AgentError, Capacity, NotebookLaunch, NotebookState, PollReply};
use crate::livy::wire::{CreateSession, SessionState};
use crate::livy::{LivyError, SessionId};
use spool_core::model::Pool;
use std::time::Duration;

/// A session a run asks for.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    /// The Livy session's name: the run's own (`spool-run-7-1`), or the long-lived session to
    /// find or create.
    pub name: String,
    /// A long-lived session: found by name when it exists, never deleted by a run.
    pub named: bool,
    /// The pipeline's `[pool]` (with its `[spark_conf]`): what the session asks for.
    pub pool: Pool,
}

/// A session that exists (it may still be starting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedSession {
    pub id: SessionId,
    /// Created for this request (else found by name).
    pub created: bool,
}

/// Whether a session is still usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Not ready yet (Livy's `not_started`, `starting`, Synapse's `recovering`...): the state.
    Starting(String),
    /// Ready for statements (idle or busy).
    Alive,
    /// Dead, killed, failed or gone: nothing runs there any more; why, in the server's words
    /// when it gave any.
    Ended(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SparkError {
    /// Refused: the request had no effect.
    #[error("{0}")]
    Refused(String),
    /// No clear answer: the request may or may not have taken effect.
    #[error("{0}")]
    Unclear(String),
    /// The session has ended (dead, killed or gone).
    #[error("{0}")]
    SessionEnded(String),
    /// Another run polls this session.
    #[error("{0}")]
    Busy(String),
}

/// What the driver loop needs from Spark. Every call is idempotent for the same arguments
/// (an attempt is known by its id and number for the session's whole life), so a call with an
/// unclear outcome can be sent again.
#[async_trait::async_trait]
pub trait Spark: Send + Sync {
    /// Finds the named session or creates one; returns as soon as it exists.
    async fn create_session(&self, request: &SessionRequest) -> Result<CreatedSession, SparkError>;
    /// Loads the agent into a session that is ready ([`Liveness::Alive`]) and takes the
    /// session's lease for `owner`; returns the application's capacity.
    async fn prepare_session(
        &self,
        session: SessionId,
        owner: &str,
    ) -> Result<Capacity, SparkError>;
    /// Starts one attempt (a known attempt, running or ended, is not started again); returns
    /// its state.
    async fn start(
        &self,
        session: SessionId,
        launch: &NotebookLaunch,
    ) -> Result<NotebookState, SparkError>;
    /// Changes after `since`, waiting up to `wait` for an attempt to end.
    async fn poll(
        &self,
        session: SessionId,
        since: u64,
        owner: &str,
        wait: Duration,
    ) -> Result<PollReply, SparkError>;
    /// Cancels one attempt; `None` when the session never saw it (it will then never run).
    async fn cancel(
        &self,
        session: SessionId,
        id: &str,
        attempt: u32,
    ) -> Result<Option<NotebookState>, SparkError>;
    /// Gives up `owner`'s lease (a long-lived session that the run leaves running).
    async fn release(&self, session: SessionId, owner: &str) -> Result<(), SparkError>;
    /// Deletes the session: everything running there ends.
    async fn close_session(&self, session: SessionId) -> Result<(), SparkError>;
    async fn session_state(&self, session: SessionId) -> Result<Liveness, SparkError>;
    /// The live session of this name (Livy reuses ids after a restart; names are Spool's).
    async fn find_session(&self, name: &str) -> Result<Option<SessionId>, SparkError>;
    /// The address of the session's Spark UI, when the server reports one (best effort: an
    /// unanswered call is no address).
    async fn spark_ui(&self, _session: SessionId) -> Option<String> {
        None
    }
}

/// Spark through Livy, notebooks through the driver agent.
pub struct LivySpark {
    pub agent: Agent,
}

fn livy_error(e: LivyError) -> SparkError {
    match e {
        LivyError::SessionFinished { .. } => SparkError::SessionEnded(e.to_string()),
        LivyError::Status { status: 404, .. } => SparkError::SessionEnded(e.to_string()),
        LivyError::Status { status, .. } if status < 500 && status != 429 => {
            SparkError::Refused(e.to_string())
        }
        LivyError::Auth { .. } | LivyError::Config { .. } => SparkError::Refused(e.to_string()),
        _ => SparkError::Unclear(e.to_string()),
    }
}

fn agent_error(e: AgentError) -> SparkError {
    match e {
        AgentError::Livy(e) => livy_error(e),
        AgentError::Failed { ref evalue, .. } if evalue.starts_with("SpoolSessionBusy") => {
            SparkError::Busy(evalue.trim_start_matches("SpoolSessionBusy: ").to_string())
        }
        // The agent raised: it refused the call (a bad launch), nothing happened.
        AgentError::Failed { .. } | AgentError::NotInjected => SparkError::Refused(e.to_string()),
        AgentError::NoOutput { .. } | AgentError::Decode { .. } => {
            SparkError::Unclear(e.to_string())
        }
    }
}

#[async_trait::async_trait]
impl Spark for LivySpark {
    async fn create_session(&self, request: &SessionRequest) -> Result<CreatedSession, SparkError> {
        let client = self.agent.client();
        if request.named {
            let found = client.find_live_session(&request.name).await.map_err(|e| {
                SparkError::Unclear(format!(
                    "could not look for the Spark session `{}`: {e}",
                    request.name
                ))
            })?;
            if let Some(s) = found {
                return Ok(CreatedSession {
                    id: SessionId(s.id),
                    created: false,
                });
            }
        }
        let create = CreateSession::for_pool(&request.pool, request.name.clone());
        let created = client
            .create_session(&create)
            .await
            .map_err(|e| match livy_error(e) {
                SparkError::Unclear(m) => {
                    SparkError::Unclear(format!("could not create a Spark session: {m}"))
                }
                other => SparkError::Refused(format!("could not create a Spark session: {other}")),
            })?;
        Ok(CreatedSession {
            id: SessionId(created.id),
            created: true,
        })
    }

    async fn prepare_session(
        &self,
        session: SessionId,
        owner: &str,
    ) -> Result<Capacity, SparkError> {
        self.agent
            .inject(session)
            .await
            .map_err(|e| match agent_error(e) {
                SparkError::Refused(m) => {
                    SparkError::Refused(format!("could not load the Spool agent: {m}"))
                }
                other => other,
            })?;
        // Takes the lease now, so that a second owner is refused before it starts anything.
        let reply = self.poll(session, 0, owner, Duration::ZERO).await?;
        Ok(reply.capacity)
    }

    async fn start(
        &self,
        session: SessionId,
        launch: &NotebookLaunch,
    ) -> Result<NotebookState, SparkError> {
        self.agent
            .start_notebook(session, launch)
            .await
            .map(|r| r.state)
            .map_err(agent_error)
    }

    async fn poll(
        &self,
        session: SessionId,
        since: u64,
        owner: &str,
        wait: Duration,
    ) -> Result<PollReply, SparkError> {
        self.agent
            .poll(session, since, owner, wait)
            .await
            .map_err(agent_error)
    }

    async fn cancel(
        &self,
        session: SessionId,
        id: &str,
        attempt: u32,
    ) -> Result<Option<NotebookState>, SparkError> {
        let reply = self
            .agent
            .cancel(session, id, attempt)
            .await
            .map_err(agent_error)?;
        Ok(if reply.found {
            Some(reply.state.unwrap_or(NotebookState::Running))
        } else {
            None
        })
    }

    async fn release(&self, session: SessionId, owner: &str) -> Result<(), SparkError> {
        self.agent
            .release(session, owner)
            .await
            .map(|_| ())
            .map_err(agent_error)
    }

    async fn close_session(&self, session: SessionId) -> Result<(), SparkError> {
        match self.agent.client().delete_session(session).await {
            Ok(()) => Ok(()),
            Err(e) => match livy_error(e) {
                SparkError::SessionEnded(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn session_state(&self, session: SessionId) -> Result<Liveness, SparkError> {
        match self.agent.client().get_session(session).await {
            Ok(s) if s.state.is_finished() || s.state == SessionState::ShuttingDown => {
                let why = s
                    .failure_reason()
                    .map_or(String::new(), |r| format!(": {r}"));
                Ok(Liveness::Ended(format!(
                    "the Spark session is {}{why}",
                    s.state
                )))
            }
            Ok(s)
                if matches!(
                    s.state,
                    SessionState::Idle | SessionState::Busy | SessionState::Running
                ) =>
            {
                Ok(Liveness::Alive)
            }
            Ok(s) => Ok(Liveness::Starting(s.state.to_string())),
            Err(e) if e.is_not_found() => {
                Ok(Liveness::Ended("the Spark session is gone".to_string()))
            }
            Err(e) => Err(livy_error(e)),
        }
    }

    /// Livy's `appInfo.sparkUiUrl` (YARN's proxy on EMR and HDInsight; Synapse and Livy
    /// without a cluster manager report none).
    async fn spark_ui(&self, session: SessionId) -> Option<String> {
        let info = self.agent.client().get_session(session).await.ok()?;
        info.app_info.get("sparkUiUrl").cloned().flatten()
    }

    async fn find_session(&self, name: &str) -> Result<Option<SessionId>, SparkError> {
        let found = self.agent.client().find_live_session(name).await;
        found
            .map(|s| s.map(|s| SessionId(s.id)))
            .map_err(livy_error)
    }
}
