//! A typed client for Apache Livy's REST API: the only way Spool reaches Spark (Synapse, EMR,
//! HDInsight, Livy on Kubernetes, and `spool livy-local`).
//!
//! Synapse's Livy endpoint is
//! `https://{workspace}.dev.azuresynapse.net/livyApi/versions/{api-version}/sparkPools/{pool}`;
//! pass it as the base URL with a bearer token from `az account get-access-token`.

mod auth;
pub mod retry;
pub mod wire;

pub use auth::{Auth, TokenSource};
pub use retry::RetryPolicy;

use auth::Authenticator;
use retry::{Failure, Method};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wire::*;

/// Answers larger than this are refused (a statement's output is the largest thing Livy sends).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// How much of an answer's body an error message quotes.
const ERROR_BODY_CHARS: usize = 2000;
/// Sessions are listed in pages of this size, at most `MAX_LIST_PAGES` pages.
const LIST_PAGE_SIZE: u64 = 100;
const MAX_LIST_PAGES: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatementId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::fmt::Display for StatementId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Livy's base URL, without a trailing `/sessions`.
    pub base_url: String,
    pub auth: Auth,
    /// Limit for one HTTP request, connection and answer included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// For Spool's own endpoint only (`spool livy-local`, which `spool run` and `spool serve`
    /// embed): a statement read asks the endpoint to hold it up to this long until the
    /// statement finishes (`?wait_ms=`), so its end is seen at once and without reading it
    /// every few milliseconds. Off for any other Livy.
    pub statement_wait: Option<Duration>,
}

impl ClientConfig {
    pub fn new(base_url: &str) -> Self {
        ClientConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            auth: Auth::None,
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            statement_wait: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LivyError {
    #[error("{op}: could not get an answer from Livy: {detail}")]
    Unreachable { op: String, detail: String },
    #[error("{op}: Livy answered HTTP {status}: {body}")]
    Status {
        op: String,
        status: u16,
        body: String,
    },
    #[error("{op}: Livy's answer was not understood ({detail}); it began: {body}")]
    Decode {
        op: String,
        detail: String,
        body: String,
    },
    #[error("{op}: no credentials: {detail}")]
    Auth { op: String, detail: String },
    #[error("statement {statement} of Livy session {session} did not finish within {}s", waited.as_secs())]
    StatementTimeout {
        session: SessionId,
        statement: StatementId,
        waited: Duration,
    },
    #[error("Livy session {session} is {state}")]
    SessionFinished {
        session: SessionId,
        state: SessionState,
    },
    #[error("invalid Livy URL {url}: {detail}")]
    Config { url: String, detail: String },
}

impl LivyError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, LivyError::Status { status: 404, .. })
    }

    /// Livy may or may not have acted on the request.
    fn is_unclear(&self) -> bool {
        match self {
            LivyError::Unreachable { .. } => true,
            LivyError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// A cheap-to-clone handle on one Livy endpoint.
#[derive(Clone)]
pub struct LivyClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    auth: Authenticator,
    retry: RetryPolicy,
    request_timeout: Duration,
    statement_wait: Option<Duration>,
}

impl LivyClient {
    pub fn new(config: ClientConfig) -> Result<Self, LivyError> {
        let url = reqwest::Url::parse(&config.base_url).map_err(|e| LivyError::Config {
            url: config.base_url.clone(),
            detail: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(LivyError::Config {
                url: config.base_url,
                detail: "the scheme must be http or https".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| LivyError::Config {
                url: config.base_url.clone(),
                detail: e.to_string(),
            })?;
        Ok(LivyClient {
            inner: Arc::new(Inner {
                http,
                base_url: config.base_url.trim_end_matches('/').to_string(),
                auth: Authenticator::new(config.auth),
                retry: config.retry,
                request_timeout: config.request_timeout,
                statement_wait: config.statement_wait,
            }),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Creates a session, idempotently by name: a live session of the same name is adopted
    /// instead, and after an unclear failure (timeout, broken connection, 5xx) the sessions are
    /// searched for the name before the error is returned, so a POST that did take effect is not
    /// repeated. Without a name there is no way to reconcile, and such failures are returned.
    pub async fn create_session(&self, request: &CreateSession) -> Result<Session, LivyError> {
        if let Some(name) = &request.name {
            if let Some(found) = self.find_live_session(name).await? {
                return Ok(found);
            }
        }
        match self
            .request::<Session>(Method::Post, "/sessions", Some(request))
            .await
        {
            Ok(session) => Ok(session),
            Err(e) if e.is_unclear() => match &request.name {
                Some(name) => match self.find_live_session(name).await {
                    Ok(Some(found)) => Ok(found),
                    _ => Err(e),
                },
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// The newest session of that name that can still run statements.
    pub async fn find_live_session(&self, name: &str) -> Result<Option<Session>, LivyError> {
        Ok(self
            .list_sessions()
            .await?
            .into_iter()
            .filter(|s| s.name.as_deref() == Some(name) && !s.state.is_finished())
            .max_by_key(|s| s.id))
    }

    pub async fn get_session(&self, id: SessionId) -> Result<Session, LivyError> {
        self.get(&format!("/sessions/{id}")).await
    }

    pub async fn list_sessions(&self) -> Result<Vec<Session>, LivyError> {
        let mut sessions = Vec::new();
        for page in 0..MAX_LIST_PAGES {
            let from = page * LIST_PAGE_SIZE;
            let list: SessionList = self
                .get(&format!("/sessions?from={from}&size={LIST_PAGE_SIZE}"))
                .await?;
            let got = list.sessions.len() as u64;
            sessions.extend(list.sessions);
            if got < LIST_PAGE_SIZE || from + got >= list.total {
                break;
            }
        }
        Ok(sessions)
    }

    /// Deletes (kills) a session; one that is already gone counts as deleted.
    pub async fn delete_session(&self, id: SessionId) -> Result<(), LivyError> {
        match self
            .request::<Message>(Method::Delete, &format!("/sessions/{id}"), None::<&()>)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn submit_statement(
        &self,
        session: SessionId,
        code: &str,
        kind: Kind,
    ) -> Result<Statement, LivyError> {
        let body = SubmitStatement {
            code: code.to_string(),
            kind: Some(kind),
        };
        self.request(
            Method::Post,
            &format!("/sessions/{session}/statements"),
            Some(&body),
        )
        .await
    }

    pub async fn get_statement(
        &self,
        session: SessionId,
        statement: StatementId,
    ) -> Result<Statement, LivyError> {
        self.read_statement(session, statement, None).await
    }

    /// The statement; with `held`, Spool's endpoint answers when it finishes or after that
    /// long (see [`ClientConfig::statement_wait`]).
    async fn read_statement(
        &self,
        session: SessionId,
        statement: StatementId,
        held: Option<Duration>,
    ) -> Result<Statement, LivyError> {
        let path = format!("/sessions/{session}/statements/{statement}");
        match held {
            Some(held) => {
                self.get(&format!("{path}?wait_ms={}", held.as_millis()))
                    .await
            }
            None => self.get(&path).await,
        }
    }

    pub async fn cancel_statement(
        &self,
        session: SessionId,
        statement: StatementId,
    ) -> Result<(), LivyError> {
        self.request::<Message>(
            Method::Post,
            &format!("/sessions/{session}/statements/{statement}/cancel"),
            None::<&()>,
        )
        .await
        .map(|_| ())
    }

    /// Lines `from..from + size` of the session's log (Livy's default, `None`: the last 100).
    pub async fn session_log(
        &self,
        session: SessionId,
        from: Option<u64>,
        size: u64,
    ) -> Result<SessionLog, LivyError> {
        let from = from.map(|f| format!("from={f}&")).unwrap_or_default();
        self.get(&format!("/sessions/{session}/log?{from}size={size}"))
            .await
    }

    /// Polls a statement until it has finished, with waits growing from 50 ms to 1 s; an error
    /// when `limit` passes first or the session ends.
    pub async fn wait_statement(
        &self,
        session: SessionId,
        statement: StatementId,
        limit: Duration,
    ) -> Result<Statement, LivyError> {
        let checks = (Duration::from_millis(50), Duration::from_secs(1));
        self.wait_statement_every(session, statement, limit, checks)
            .await
    }

    /// [`LivyClient::wait_statement`] reading the statement after waits that double from
    /// `checks.0` up to `checks.1`.
    pub async fn wait_statement_every(
        &self,
        session: SessionId,
        statement: StatementId,
        limit: Duration,
        checks: (Duration, Duration),
    ) -> Result<Statement, LivyError> {
        let started = Instant::now();
        let mut wait = checks.0;
        loop {
            let asked = Instant::now();
            // Not held past the limit, nor for less than the endpoint's unit, a millisecond.
            let held = self
                .inner
                .statement_wait
                .map(|w| w.min(limit.saturating_sub(started.elapsed())))
                .filter(|held| held.as_millis() > 0);
            let current = self.read_statement(session, statement, held).await?;
            if current.state.is_finished() {
                return Ok(current);
            }
            if started.elapsed() >= limit {
                let state = self.get_session(session).await?.state;
                if state.is_finished() {
                    return Err(LivyError::SessionFinished { session, state });
                }
                return Err(LivyError::StatementTimeout {
                    session,
                    statement,
                    waited: started.elapsed(),
                });
            }
            // An endpoint that held the read has waited already; one that answered at once
            // (it does not know `wait_ms`) is read again after the next check interval.
            if held.is_none_or(|held| asked.elapsed() < held / 2) {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(checks.1);
            }
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, LivyError> {
        self.request(Method::Get, path, None::<&()>).await
    }

    /// One request with the retry policy, auth, the timeout and the answer size limit applied.
    async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, LivyError> {
        let inner = &*self.inner;
        let url = format!("{}{path}", inner.base_url);
        let op = format!("{} {url}", method.as_str());
        let mut refreshed_credentials = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = inner
                .http
                .request(
                    match method {
                        Method::Get => reqwest::Method::GET,
                        Method::Post => reqwest::Method::POST,
                        Method::Delete => reqwest::Method::DELETE,
                    },
                    &url,
                )
                .timeout(inner.request_timeout)
                .header("X-Requested-By", "spool");
            if let Some(body) = body {
                builder = builder.json(body);
            } else if method == Method::Post {
                builder = builder.json(&serde_json::json!({}));
            }
            let builder = inner
                .auth
                .apply(builder)
                .await
                .map_err(|detail| LivyError::Auth {
                    op: op.clone(),
                    detail,
                })?;
            let (failure, error) = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match read_limited(response).await {
                        Ok(None) => {
                            return Err(LivyError::Decode {
                                op,
                                detail: format!(
                                "the answer is larger than the limit of {MAX_RESPONSE_BYTES} bytes"
                            ),
                                body: String::new(),
                            })
                        }
                        Ok(Some(bytes)) if status.is_success() => {
                            return serde_json::from_slice(&bytes).map_err(|e| LivyError::Decode {
                                op,
                                detail: e.to_string(),
                                body: excerpt(&bytes),
                            });
                        }
                        Ok(Some(bytes)) => {
                            if status.as_u16() == 401
                                && !refreshed_credentials
                                && inner.auth.refresh().await
                            {
                                refreshed_credentials = true;
                                attempt -= 1;
                                continue;
                            }
                            (
                                Failure::Status {
                                    code: status.as_u16(),
                                    retry_after,
                                },
                                LivyError::Status {
                                    op: op.clone(),
                                    status: status.as_u16(),
                                    body: excerpt(&bytes),
                                },
                            )
                        }
                        Err(e) => transport_failure(&op, e),
                    }
                }
                Err(e) => transport_failure(&op, e),
            };
            match inner.retry.next_delay(method, attempt, &failure) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(error),
            }
        }
    }
}

fn transport_failure(op: &str, e: reqwest::Error) -> (Failure, LivyError) {
    let failure = if e.is_connect() {
        Failure::Connect
    } else if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Transport
    };
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    (
        failure,
        LivyError::Unreachable {
            op: op.to_string(),
            detail,
        },
    )
}

/// The body; `None` past [`MAX_RESPONSE_BYTES`].
async fn read_limited(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.chars().count() > ERROR_BODY_CHARS {
        let cut: String = text.chars().take(ERROR_BODY_CHARS).collect();
        format!("{cut}…")
    } else if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text.to_string()
    }
}
