//! `spool livy-local`: a Livy-compatible REST endpoint on the loopback interface, backed by one
//! local-mode PySpark driver process per session. Same paths, JSON and states as Apache Livy, so
//! Spool's client, the `livy` Python package or sparkmagic can use it. `spool run` and
//! `spool serve` embed it (see [`start`]) when no `--livy URL` is given.
//!
//! A session runs any Python its creator sends, so callers pass the same guard as the API's
//! (`crate::api::check_caller`): a loopback Host, no change from a browser page of another
//! origin, and the token when one is set. The embedded endpoint always has a random
//! per-process token, known only to the executor's client.

mod environment;
mod session;

use crate::api::{check_caller, CallerPolicy};
use crate::livy::wire::{
    CreateSession, Kind, Message, SessionList, SessionLog, SessionStateReply, StatementList,
    SubmitStatement, Version,
};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use session::{DriverSpec, LocalSession, Refusal};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Request bodies larger than this are refused (a statement's code is the largest).
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Dead and killed sessions listed at most; older ones are forgotten.
const MAX_FINISHED_SESSIONS: usize = 32;
/// The version reported at `/version` (clients check it is at least 0.5).
const LIVY_VERSION: &str = "0.8.0-spool";
/// The longest a statement read is held (see [`StatementRead`]).
const MAX_STATEMENT_WAIT: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Port (0: any free port).
    #[arg(long, default_value_t = 8998)]
    pub port: u16,
    /// Address to listen on; anything but loopback requires a token.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Bearer token every request must carry (letters, digits, `. _ ~ -`). Without one, only
    /// requests to a loopback Host name are served, and changes from browser pages of another
    /// origin are refused; any local user can still create sessions.
    #[arg(long, env = "SPOOL_LIVY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the token from this file instead (keeps it out of `ps`).
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Python with PySpark for the drivers [default: $SPOOL_PYTHON, else the project's .venv].
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Cores of each local Spark application (`local[N]`) when a session does not ask for
    /// executors [default: the machine's cores].
    #[arg(long)]
    pub cores: Option<u32>,
    /// Driver JVM memory when a session does not ask.
    #[arg(long, default_value = "1g")]
    pub driver_memory: String,
    /// Sessions alive at once (each is a JVM).
    #[arg(long, default_value_t = 4)]
    pub max_sessions: usize,
    /// Folder for Spark's warehouse and the drivers' working files.
    #[arg(long, default_value = ".spool/livy-local")]
    pub work_dir: PathBuf,
    /// A Spark standalone master on this machine (`spark://127.0.0.1:7077`, see
    /// scripts/spark-cluster.sh): drivers run in client mode against it and sessions get the
    /// executors they ask for [default: `local[N]` per session].
    #[arg(long, value_parser = parse_master)]
    pub master: Option<String>,
}

/// Drivers are reachable on 127.0.0.1 only, so only a master on this machine can run their
/// executors.
pub fn parse_master(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("spark://")
        .ok_or("expected spark://HOST:PORT (a Spark standalone master)")?;
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    if !matches!(host, "127.0.0.1" | "localhost") {
        return Err(format!(
            "the master must be on this machine (127.0.0.1 or localhost), not `{host}`: \
             the drivers listen on 127.0.0.1 only"
        ));
    }
    Ok(url.to_string())
}

impl Default for Args {
    fn default() -> Self {
        Args {
            port: 0,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            token: None,
            token_file: None,
            python: None,
            cores: None,
            driver_memory: "1g".into(),
            max_sessions: 4,
            work_dir: PathBuf::from(".spool/livy-local"),
            master: None,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let endpoint = start(args).await?;
        eprintln!(
            "Livy-compatible endpoint on {} (Ctrl-C stops it)",
            endpoint.base_url()
        );
        if endpoint.token().is_none() {
            eprintln!(
                "no token: any program of this machine can run code here; give SPOOL_LIVY_TOKEN or --token-file to require one"
            );
        }
        tokio::signal::ctrl_c().await?;
        eprintln!("stopping the Spark drivers...");
        endpoint.shutdown().await;
        Ok(0)
    })
}

/// A running endpoint. Dropping it stops serving and tells every driver to stop, without
/// waiting; [`LocalLivy::shutdown`] also waits until they have.
pub struct LocalLivy {
    base_url: String,
    token: Option<String>,
    state: Arc<Endpoint>,
    server: Option<JoinHandle<()>>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LocalLivy {
    /// `http://127.0.0.1:PORT`, the base URL for a Livy client.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bearer token a client must send, if the endpoint has one.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Stops serving, then stops every driver and waits until their processes have ended.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.state.kill_all();
        let drivers: Vec<JoinHandle<()>> = std::mem::take(&mut *self.state.drivers());
        for driver in drivers {
            let _ = tokio::time::timeout(Duration::from_secs(20), driver).await;
        }
    }
}

impl Drop for LocalLivy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        self.state.kill_all();
    }
}

/// Checks the token, Python, PySpark and Java, then serves.
pub async fn start(args: Args) -> anyhow::Result<LocalLivy> {
    let token = crate::api::load_token(args.token.as_deref(), args.token_file.as_deref())?;
    if !args.host.is_loopback() && token.is_none() {
        anyhow::bail!(
            "--host {} is not a loopback address: give a token (SPOOL_LIVY_TOKEN or --token-file) so that only holders of it can run code",
            args.host
        );
    }
    let python = environment::find_python(args.python.as_deref());
    environment::check(&python).await?;
    std::fs::create_dir_all(&args.work_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the work folder {}: {e}",
            args.work_dir.display()
        )
    })?;
    let work_dir = std::fs::canonicalize(&args.work_dir)?;
    let cores = args
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get() as u32));
    let state = Arc::new(Endpoint {
        python,
        work_dir,
        cores: cores.max(1),
        driver_memory: args.driver_memory,
        master: args.master,
        max_sessions: args.max_sessions.max(1),
        startup_timeout: Duration::from_secs(300),
        registry: Mutex::new(Registry::default()),
        drivers: Mutex::new(Vec::new()),
        token: token.clone().map(crate::api::Token::unnamed),
    });
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((args.host, args.port))).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let app = router(state.clone());
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let serve = crate::api::serve(listener, app, crate::api::HEADER_READ_TIMEOUT, async {
            let _ = stopped.await;
        });
        if let Err(e) = serve.await {
            eprintln!("livy-local: the HTTP server stopped: {e}");
        }
    });
    Ok(LocalLivy {
        base_url,
        token,
        state,
        server: Some(server),
        stop_server: Some(stop_server),
    })
}

struct Endpoint {
    python: PathBuf,
    work_dir: PathBuf,
    cores: u32,
    driver_memory: String,
    master: Option<String>,
    max_sessions: usize,
    startup_timeout: Duration,
    registry: Mutex<Registry>,
    drivers: Mutex<Vec<JoinHandle<()>>>,
    /// When set, every request must carry it as a bearer token.
    token: Option<crate::api::Token>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    sessions: BTreeMap<u64, Arc<LocalSession>>,
}

impl Endpoint {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sessions(&self) -> BTreeMap<u64, Arc<LocalSession>> {
        self.registry().sessions.clone()
    }

    fn kill_all(&self) {
        for session in self.sessions().values() {
            session.kill();
        }
    }

    fn drivers(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.drivers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn session(&self, id: u64) -> Result<Arc<LocalSession>, ApiError> {
        self.registry()
            .sessions
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("Session '{id}' not found.")))
    }

    /// The driver's configuration for a session request. Local mode: `local[N]` sized by the
    /// request's executors (or the endpoint's cores). With `--master`: client mode, the
    /// request's executor cores, memory and count become Spark's settings as Livy maps them.
    /// Both: FAIR scheduling, no UI, loopback only; the request's `conf` wins over defaults.
    fn repl_conf(&self, id: u64, request: &CreateSession) -> serde_json::Value {
        let requested_cores = match (request.num_executors, request.executor_cores) {
            (Some(n), Some(c)) if n > 0 && c > 0 => Some(n.saturating_mul(c)),
            _ => None,
        };
        let cores = requested_cores.unwrap_or(self.cores);
        let mut conf: BTreeMap<String, String> = [
            ("spark.ui.enabled", "false".to_string()),
            ("spark.ui.showConsoleProgress", "false".to_string()),
            ("spark.scheduler.mode", "FAIR".to_string()),
            ("spark.sql.shuffle.partitions", cores.to_string()),
            (
                "spark.driver.memory",
                request
                    .driver_memory
                    .clone()
                    .unwrap_or_else(|| self.driver_memory.clone()),
            ),
            (
                "spark.sql.warehouse.dir",
                self.work_dir.join("warehouse").display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let master = match &self.master {
            Some(url) => {
                let mut set = |key: &str, value: Option<String>| {
                    if let Some(v) = value {
                        conf.insert(key.to_string(), v);
                    }
                };
                set("spark.submit.deployMode", Some("client".into()));
                set(
                    "spark.driver.cores",
                    request.driver_cores.map(|c| c.to_string()),
                );
                set(
                    "spark.executor.cores",
                    request.executor_cores.map(|c| c.to_string()),
                );
                set("spark.executor.memory", request.executor_memory.clone());
                set(
                    "spark.executor.instances",
                    request.num_executors.map(|n| n.to_string()),
                );
                url.clone()
            }
            None => format!("local[{cores}]"),
        };
        for (key, value) in &request.conf {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            conf.insert(key.clone(), text);
        }
        // A standalone master gives an application every free core unless capped; the cap is
        // what the request asked for, except when dynamic allocation sizes the application.
        let dynamic = conf
            .get("spark.dynamicAllocation.enabled")
            .map(String::as_str)
            == Some("true");
        if let (Some(_), Some(total), false) = (&self.master, requested_cores, dynamic) {
            conf.entry("spark.cores.max".into())
                .or_insert_with(|| total.to_string());
        }
        // Never reachable from outside the machine, whatever the request says.
        conf.insert("spark.driver.host".into(), "127.0.0.1".into());
        conf.insert("spark.driver.bindAddress".into(), "127.0.0.1".into());
        conf.remove("spark.master");
        serde_json::json!({
            "app_name": request.name.clone().unwrap_or_else(|| format!("livy-session-{id}")),
            "master": master,
            "conf": conf,
        })
    }
}

fn router(state: Arc<Endpoint>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/sessions", get(list_sessions).post(create_session))
        .route("/sessions/:id", get(get_session).delete(delete_session))
        .route("/sessions/:id/state", get(session_state))
        .route("/sessions/:id/log", get(session_log))
        .route(
            "/sessions/:id/statements",
            get(list_statements).post(submit_statement),
        )
        .route("/sessions/:id/statements/:sid", get(get_statement))
        .route(
            "/sessions/:id/statements/:sid/cancel",
            post(cancel_statement),
        )
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state)
}

/// The API's caller check, with Livy's error shape. Livy clients are programs that send no
/// `Origin`, so only evidence of another origin's page refuses a change.
async fn guard(
    State(state): State<Arc<Endpoint>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let policy = CallerPolicy {
        tokens: state.token.as_slice(),
        changes_need_same_origin: false,
        cookie: false,
    };
    match check_caller(&policy, req.method(), false, req.headers()) {
        Ok(_) => next.run(req).await,
        Err(refusal) => {
            let status = match refusal {
                crate::api::Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
                _ => StatusCode::FORBIDDEN,
            };
            ApiError(status, refusal.message()).into_response()
        }
    }
}

/// Livy's error answer: a status and `{"msg": ...}`.
struct ApiError(StatusCode, String);

impl ApiError {
    fn not_found(msg: String) -> Self {
        ApiError(StatusCode::NOT_FOUND, msg)
    }

    fn bad_request(msg: String) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg)
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(m) => ApiError::not_found(m),
            Refusal::BadRequest(m) => ApiError::bad_request(m),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(Message { msg: self.1 })).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

#[derive(Deserialize)]
struct Page {
    from: Option<usize>,
    size: Option<usize>,
}

async fn version() -> Json<Version> {
    Json(Version {
        version: LIVY_VERSION.into(),
    })
}

async fn list_sessions(
    State(state): State<Arc<Endpoint>>,
    Query(page): Query<Page>,
) -> Json<SessionList> {
    let sessions = state.sessions();
    let from = page.from.unwrap_or(0);
    Json(SessionList {
        from: from as u64,
        total: sessions.len() as u64,
        sessions: sessions
            .values()
            .skip(from)
            .take(page.size.unwrap_or(100))
            .map(|s| s.to_wire())
            .collect(),
    })
}

async fn create_session(
    State(state): State<Arc<Endpoint>>,
    body: Result<Json<CreateSession>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(request) = body?;
    let kind = request.kind.clone().unwrap_or(Kind::Shared);
    if !matches!(kind, Kind::Pyspark | Kind::Sql | Kind::Shared) {
        return Err(ApiError::bad_request(format!(
            "sessions of kind {kind} are not supported by spool livy-local (pyspark, sql and shared are)"
        )));
    }
    let session = {
        let mut registry = state.registry();
        let alive = registry
            .sessions
            .values()
            .filter(|s| !s.state().is_finished())
            .count();
        if alive >= state.max_sessions {
            return Err(ApiError::bad_request(format!(
                "{alive} sessions are alive, the most this endpoint runs at once \
                 (--max-sessions); delete one first"
            )));
        }
        let finished: Vec<u64> = registry
            .sessions
            .iter()
            .filter(|(_, s)| s.state().is_finished())
            .map(|(id, _)| *id)
            .collect();
        for old in finished
            .iter()
            .take((finished.len() + 1).saturating_sub(MAX_FINISHED_SESSIONS))
        {
            registry.sessions.remove(old);
        }
        let id = registry.next_id;
        registry.next_id += 1;
        let session = Arc::new(LocalSession::new(id, request.name.clone(), kind));
        registry.sessions.insert(id, session.clone());
        session
    };
    let ignored: Vec<&str> = [
        ("jars", !request.jars.is_empty()),
        ("pyFiles", !request.py_files.is_empty()),
        ("queue", request.queue.is_some()),
        ("ttl", request.ttl.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, set)| set.then_some(field))
    .collect();
    if !ignored.is_empty() {
        session.push_log(format!(
            "spool livy-local: ignoring {} (cluster-only session fields)",
            ignored.join(", ")
        ));
    }
    let spec = DriverSpec {
        python: state.python.clone(),
        work_dir: state.work_dir.clone(),
        repl_conf: state.repl_conf(session.id, &request),
        startup_timeout: state.startup_timeout,
    };
    let driver = tokio::spawn(session::drive(session.clone(), spec));
    {
        let mut drivers = state.drivers();
        drivers.retain(|d| !d.is_finished());
        drivers.push(driver);
    }
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/sessions/{}", session.id))],
        Json(session.to_wire()),
    )
        .into_response())
}

async fn get_session(
    State(state): State<Arc<Endpoint>>,
    Path(id): Path<u64>,
) -> ApiResult<Json<crate::livy::wire::Session>> {
    Ok(Json(state.session(id)?.to_wire()))
}

async fn session_state(
    State(state): State<Arc<Endpoint>>,
    Path(id): Path<u64>,
) -> ApiResult<Json<SessionStateReply>> {
    let session = state.session(id)?;
    Ok(Json(SessionStateReply {
        id,
        state: session.state(),
    }))
}

async fn delete_session(
    State(state): State<Arc<Endpoint>>,
    Path(id): Path<u64>,
) -> ApiResult<Json<Message>> {
    let session = state.registry().sessions.remove(&id);
    let session =
        session.ok_or_else(|| ApiError::not_found(format!("Session '{id}' not found.")))?;
    session.kill();
    Ok(Json(Message {
        msg: "deleted".into(),
    }))
}

async fn session_log(
    State(state): State<Arc<Endpoint>>,
    Path(id): Path<u64>,
    Query(page): Query<Page>,
) -> ApiResult<Json<SessionLog>> {
    let session = state.session(id)?;
    let (from, total, log) = session.log_page(page.from, page.size.unwrap_or(100));
    Ok(Json(SessionLog {
        id,
        from: from as u64,
        total: total as u64,
        log,
    }))
}

async fn list_statements(
    State(state): State<Arc<Endpoint>>,
    Path(id): Path<u64>,
) -> ApiResult<Json<StatementList>> {
    let statements = state.session(id)?.statements();
    Ok(Json(StatementList {
        total_statements: statements.len() as u64,
        statements,
    }))
}

async fn submit_statement(
    State(state): State<Arc<Endpoint>>,
    Path(id): Path<u64>,
    body: Result<Json<SubmitStatement>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(request) = body?;
    let statement = state.session(id)?.submit(request.code, request.kind)?;
    Ok((
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/sessions/{id}/statements/{}", statement.id),
        )],
        Json(statement),
    )
        .into_response())
}

/// Spool's extension of Livy's statement read (real Livy ignores the parameter and answers at
/// once): with `wait_ms`, a statement not finished yet is answered when it finishes or after
/// that long (at most [`MAX_STATEMENT_WAIT`]), so a client learns of the end at once instead of
/// reading the statement again and again.
#[derive(Deserialize)]
struct StatementRead {
    wait_ms: Option<u64>,
}

async fn get_statement(
    State(state): State<Arc<Endpoint>>,
    Path((id, sid)): Path<(u64, u64)>,
    Query(read): Query<StatementRead>,
) -> ApiResult<Json<crate::livy::wire::Statement>> {
    let session = state.session(id)?;
    let statement = match read.wait_ms {
        Some(ms) => {
            let wait = Duration::from_millis(ms).min(MAX_STATEMENT_WAIT);
            session.statement_when_finished(sid, wait).await?
        }
        None => session.statement(sid)?,
    };
    Ok(Json(statement))
}

async fn cancel_statement(
    State(state): State<Arc<Endpoint>>,
    Path((id, sid)): Path<(u64, u64)>,
) -> ApiResult<Json<Message>> {
    state.session(id)?.cancel(sid)?;
    Ok(Json(Message {
        msg: "canceled".into(),
    }))
}
