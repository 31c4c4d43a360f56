//! An in-memory Spark for the executor's tests: sessions, an agent with the real one's rules
//! (attempts known by id and number for the session's life, a lease for one poller, long
//! polls, acknowledgement by `seq`), notebooks that take scripted times, and scripted faults.
//! It also keeps the ground truth the tests check: every notebook execution that really
//! began, in which session, and when it really ended. Time is tokio's (tests pause it).

use super::spark::{CreatedSession, Liveness, SessionRequest, Spark, SparkError};
use crate::agent::{
    Capacity, NotebookLaunch, NotebookState, NotebookUpdate, PollReply, SparkMetrics,
};
use crate::livy::SessionId;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The calls of the seam, for scripting faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Prepare,
    Start,
    Poll,
    Cancel,
    Release,
    Close,
    State,
}

/// What goes wrong with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refused before it did anything, with an unclear error (a connection error).
    Fail,
    /// Done, but the answer is lost.
    LoseReply,
    /// Takes this long, then its answer is lost (a timeout).
    Slow(Duration),
}

/// How a notebook attempt behaves: how long it runs, and how it ends.
pub type Behaviour = Box<dyn Fn(&str, u32) -> (Duration, NotebookState) + Send + Sync>;

/// Called with the agent id and attempt of every start as it arrives, before anything else.
pub type StartWatch = Box<dyn Fn(&str, u32) + Send + Sync>;

/// One notebook execution that really began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// The agent id (`run7/task`) and attempt.
    pub id: String,
    pub attempt: u32,
    pub session: u64,
    pub began: Instant,
    pub ended: Option<Instant>,
}

#[derive(Debug)]
struct Attempt {
    state: NotebookState,
    /// What it publishes when it succeeds: its parameters as its values, and what its
    /// upstream published as its exit value (so tests see what reached it).
    publishes: (
        serde_json::Value,
        serde_json::Map<String, serde_json::Value>,
    ),
    seq: u64,
    /// The `seq` of its end: a poll returns at once for an end, not for metrics.
    end_seq: Option<u64>,
    /// Like the agent, metrics are read after the end has been reported once, and reported
    /// by a later poll; the attempt is forgotten only then.
    metrics: Option<SparkMetrics>,
    ends_at: Instant,
    began: Instant,
    outcome: NotebookState,
    execution: usize,
}

#[derive(Debug)]
struct Session {
    name: String,
    /// Until then the session is starting: no statement runs.
    ready_at: Instant,
    alive: bool,
    /// Why it ended, when it did, as the server says it.
    end_reason: Option<String>,
    lease: Option<(String, Instant)>,
    attempts: BTreeMap<(String, u32), Attempt>,
    /// Attempts acknowledged and forgotten, or cancelled before they were seen.
    ended: HashMap<(String, u32), NotebookState>,
    seq: u64,
}

struct State {
    sessions: BTreeMap<u64, Session>,
    next_session: u64,
    faults: HashMap<Op, VecDeque<Fault>>,
    /// Faults for any call, in call order (`None`: that call goes well); used by the property
    /// test. Consumed after the per-operation script.
    stream: VecDeque<Option<Fault>>,
    executions: Vec<Ran>,
    calls: Vec<Op>,
    /// The Spark application's capacity now (every session's).
    capacity: Capacity,
}

pub struct FakeSpark {
    state: Mutex<State>,
    behaviour: Behaviour,
    /// How long a new session stays `starting` (`Duration::MAX`: for ever).
    pub session_start: Duration,
    /// How long a cancelled attempt takes to stop.
    pub cancel_delay: Duration,
    /// What the server says the Spark UI's address is.
    pub spark_ui: Option<String>,
    /// The lease of a poller that stopped polling expires after this long.
    pub lease: Duration,
    /// Sees every start as it arrives (a test checks what the history holds by then).
    pub watch_starts: Option<StartWatch>,
}

const LATENCY: Duration = Duration::from_millis(5);

impl FakeSpark {
    pub fn new(behaviour: Behaviour) -> Self {
        FakeSpark {
            state: Mutex::new(State {
                sessions: BTreeMap::new(),
                next_session: 1,
                faults: HashMap::new(),
                stream: VecDeque::new(),
                executions: Vec::new(),
                calls: Vec::new(),
                capacity: Capacity {
                    executors: 1,
                    total_cores: 4,
                },
            }),
            behaviour,
            session_start: Duration::ZERO,
            cancel_delay: Duration::from_millis(50),
            spark_ui: None,
            lease: Duration::from_secs(60),
            watch_starts: None,
        }
    }

    /// Every notebook takes `secs` and succeeds.
    pub fn uniform(secs: f64) -> Self {
        Self::new(Box::new(move |_, _| {
            (Duration::from_secs_f64(secs), NotebookState::Succeeded)
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next calls of `op` go wrong this way, in order.
    pub fn script(&self, op: Op, faults: &[Fault]) {
        self.state()
            .faults
            .entry(op)
            .or_default()
            .extend(faults.iter().copied());
    }

    pub fn stream(&self, faults: impl IntoIterator<Item = Option<Fault>>) {
        self.state().stream.extend(faults);
    }

    /// Kills a session now, as a crashed driver would.
    pub fn kill(&self, session: u64) {
        let now = Instant::now();
        Self::end_session(&mut self.state(), session, now);
    }

    /// Kills a session now; the session's state then gives `reason` for it (Synapse's
    /// `errorInfo`, Livy's log).
    pub fn kill_saying(&self, session: u64, reason: &str) {
        let now = Instant::now();
        let mut state = self.state();
        if let Some(s) = state.sessions.get_mut(&session) {
            s.end_reason.get_or_insert_with(|| reason.to_string());
        }
        Self::end_session(&mut state, session, now);
    }

    /// Executors come or go: the application's capacity is now `total_cores` slots.
    pub fn set_capacity(&self, executors: u32, total_cores: u32) {
        self.state().capacity = Capacity {
            executors,
            total_cores,
        };
    }

    pub fn executions(&self) -> Vec<Ran> {
        let now = Instant::now();
        let mut state = self.state();
        Self::advance(&mut state, now);
        state.executions.clone()
    }

    pub fn calls(&self, op: Op) -> usize {
        self.state().calls.iter().filter(|&&o| o == op).count()
    }

    /// Sessions that were never deleted and still live.
    pub fn live_sessions(&self) -> Vec<u64> {
        let now = Instant::now();
        let mut state = self.state();
        Self::advance(&mut state, now);
        state
            .sessions
            .iter()
            .filter(|(_, s)| s.alive)
            .map(|(id, _)| *id)
            .collect()
    }

    fn fault(&self, op: Op) -> Option<Fault> {
        let mut state = self.state();
        state.calls.push(op);
        if let Some(f) = state.faults.get_mut(&op).and_then(VecDeque::pop_front) {
            return Some(f);
        }
        state.stream.pop_front().flatten()
    }

    fn end_session(state: &mut State, id: u64, at: Instant) {
        let Some(s) = state.sessions.get_mut(&id) else {
            return;
        };
        if !s.alive {
            return;
        }
        s.alive = false;
        for a in s.attempts.values() {
            if let Some(e) = state.executions.get_mut(a.execution) {
                e.ended.get_or_insert(at);
            }
        }
    }

    /// Brings every session to `now`: notebooks that ended.
    fn advance(state: &mut State, now: Instant) {
        let ids: Vec<u64> = state.sessions.keys().copied().collect();
        for id in ids {
            let s = &state.sessions[&id];
            if !s.alive {
                continue;
            }
            let mut ends: Vec<((String, u32), Instant)> = s
                .attempts
                .iter()
                .filter(|(_, a)| a.state == NotebookState::Running && a.ends_at <= now)
                .map(|(k, a)| (k.clone(), a.ends_at))
                .collect();
            ends.sort_by_key(|(_, at)| *at);
            for (key, at) in ends {
                let s = state.sessions.get_mut(&id).expect("listed");
                s.seq += 1;
                let seq = s.seq;
                let a = s.attempts.get_mut(&key).expect("listed");
                a.state = a.outcome;
                a.seq = seq;
                a.end_seq = Some(seq);
                if let Some(e) = state.executions.get_mut(a.execution) {
                    e.ended = Some(at);
                }
            }
        }
    }

    /// When something next changes in a session by itself.
    fn next_change(state: &State, id: u64) -> Option<Instant> {
        let s = state.sessions.get(&id)?;
        let ends = s
            .attempts
            .values()
            .filter(|a| a.state == NotebookState::Running)
            .map(|a| a.ends_at);
        ends.min()
    }

    /// The session, alive and started, or the error a call to it gets.
    fn session_mut(
        state: &mut State,
        id: SessionId,
        now: Instant,
    ) -> Result<&mut Session, SparkError> {
        match state.sessions.get_mut(&id.0) {
            Some(s) if s.alive && s.ready_at > now => Err(SparkError::Refused(format!(
                "session {id} is still starting"
            ))),
            Some(s) if s.alive => Ok(s),
            // Like Livy's answers to statements: the state, not why.
            Some(_) => Err(SparkError::SessionEnded(format!("session {id} is dead"))),
            None => Err(SparkError::SessionEnded(format!("session {id} is gone"))),
        }
    }

    /// Runs `call` under the scripted fault for `op`.
    async fn call<T>(
        &self,
        op: Op,
        call: impl FnOnce(&mut State, Instant) -> Result<T, SparkError>,
    ) -> Result<T, SparkError> {
        let fault = self.fault(op);
        tokio::time::sleep(LATENCY).await;
        if fault == Some(Fault::Fail) {
            return Err(SparkError::Unclear(format!("{op:?}: connection refused")));
        }
        let result = {
            let now = Instant::now();
            let mut state = self.state();
            Self::advance(&mut state, now);
            call(&mut state, now)
        };
        match fault {
            Some(Fault::LoseReply) => Err(SparkError::Unclear(format!("{op:?}: reply lost"))),
            Some(Fault::Slow(d)) => {
                tokio::time::sleep(d).await;
                Err(SparkError::Unclear(format!("{op:?}: timed out")))
            }
            _ => result,
        }
    }

    /// Takes or renews the lease for `owner`, as the agent does.
    fn claim(
        s: &mut Session,
        owner: &str,
        now: Instant,
        lease: Duration,
    ) -> Result<(), SparkError> {
        if let Some((holder, at)) = &s.lease {
            if holder != owner && now.duration_since(*at) < lease {
                return Err(SparkError::Busy(format!(
                    "this Spark session is used by {holder}"
                )));
            }
        }
        s.lease = Some((owner.to_string(), now));
        Ok(())
    }

    fn update(id: &str, attempt: u32, a: &Attempt) -> NotebookUpdate {
        let succeeded = a.state == NotebookState::Succeeded;
        NotebookUpdate {
            id: id.to_string(),
            attempt,
            state: a.state,
            started_at: 0,
            ended_at: a.state.is_finished().then_some(0),
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            exit_value: succeeded.then(|| a.publishes.0.clone()),
            values: succeeded.then(|| a.publishes.1.clone()),
            metrics: a.metrics.clone(),
            // A notebook given `leaves = "NAME"` leaves a temp view of that name.
            session_state: a
                .publishes
                .1
                .get("leaves")
                .and_then(|v| v.as_str())
                .filter(|_| succeeded)
                .map(|name| vec![format!("view:{name}")])
                .unwrap_or_default(),
        }
    }
}

#[async_trait::async_trait]
impl Spark for FakeSpark {
    async fn create_session(&self, request: &SessionRequest) -> Result<CreatedSession, SparkError> {
        let starting = self.session_start;
        self.call(Op::Create, |state, now| {
            // Like Livy's client: a live session of the name is adopted (a create whose answer
            // was lost is not repeated).
            if let Some((&id, _)) = state
                .sessions
                .iter()
                .find(|(_, s)| s.alive && s.name == request.name)
            {
                return Ok(CreatedSession {
                    id: SessionId(id),
                    created: !request.named,
                });
            }
            let id = state.next_session;
            state.next_session += 1;
            state.sessions.insert(
                id,
                Session {
                    name: request.name.clone(),
                    // `Duration::MAX` does not fit an instant: a year is for ever here.
                    ready_at: now + starting.min(Duration::from_secs(365 * 24 * 3600)),
                    alive: true,
                    end_reason: None,
                    lease: None,
                    attempts: BTreeMap::new(),
                    ended: HashMap::new(),
                    seq: 0,
                },
            );
            Ok(CreatedSession {
                id: SessionId(id),
                created: true,
            })
        })
        .await
    }

    async fn prepare_session(
        &self,
        session: SessionId,
        owner: &str,
    ) -> Result<Capacity, SparkError> {
        let lease = self.lease;
        self.call(Op::Prepare, |state, now| {
            let capacity = state.capacity;
            let s = Self::session_mut(state, session, now)?;
            Self::claim(s, owner, now, lease)?;
            Ok(capacity)
        })
        .await
    }

    async fn start(
        &self,
        session: SessionId,
        launch: &NotebookLaunch,
    ) -> Result<NotebookState, SparkError> {
        if let Some(watch) = &self.watch_starts {
            watch(&launch.id, launch.attempt);
        }
        let (duration, outcome) = (self.behaviour)(&launch.id, launch.attempt);
        self.call(Op::Start, |state, now| {
            let executions = state.executions.len();
            let s = Self::session_mut(state, session, now)?;
            let key = (launch.id.clone(), launch.attempt);
            if let Some(a) = s.attempts.get(&key) {
                return Ok(a.state);
            }
            if let Some(&ended) = s.ended.get(&key) {
                return Ok(ended);
            }
            s.seq += 1;
            s.attempts.insert(
                key,
                Attempt {
                    state: NotebookState::Running,
                    publishes: (
                        serde_json::json!({ "upstream": launch.upstream }),
                        launch.params.clone(),
                    ),
                    seq: s.seq,
                    end_seq: None,
                    metrics: None,
                    ends_at: now + duration,
                    began: now,
                    outcome,
                    execution: executions,
                },
            );
            state.executions.push(Ran {
                id: launch.id.clone(),
                attempt: launch.attempt,
                session: session.0,
                began: now,
                ended: None,
            });
            Ok(NotebookState::Running)
        })
        .await
    }

    async fn poll(
        &self,
        session: SessionId,
        since: u64,
        owner: &str,
        wait: Duration,
    ) -> Result<PollReply, SparkError> {
        let lease = self.lease;
        // Claims the lease first, as the agent does, then waits for an end.
        let until = self
            .call(Op::Poll, |state, now| {
                let s = Self::session_mut(state, session, now)?;
                Self::claim(s, owner, now, lease)?;
                let ended_news = s
                    .attempts
                    .values()
                    .any(|a| a.end_seq.is_some_and(|e| e > since));
                let deadline = now + wait;
                Ok(if ended_news {
                    now
                } else {
                    Self::next_change(state, session.0).map_or(deadline, |c| c.min(deadline))
                })
            })
            .await?;
        tokio::time::sleep_until(until).await;
        let now = Instant::now();
        let mut state = self.state();
        Self::advance(&mut state, now);
        let capacity = state.capacity;
        let s = Self::session_mut(&mut state, session, now)?;
        let forget: Vec<(String, u32)> = s
            .attempts
            .iter()
            .filter(|(_, a)| a.state.is_finished() && a.metrics.is_some() && a.seq <= since)
            .map(|(k, _)| k.clone())
            .collect();
        for key in forget {
            if let Some(a) = s.attempts.remove(&key) {
                s.ended.insert(key, a.state);
            }
        }
        let updates = s
            .attempts
            .iter()
            .filter(|(_, a)| a.seq > since)
            .map(|((id, attempt), a)| Self::update(id, *attempt, a))
            .collect();
        let seq = s.seq;
        // The reported ends' metrics are read now, for the next poll.
        for a in s.attempts.values_mut() {
            if a.state.is_finished() && a.metrics.is_none() && a.seq > since {
                s.seq += 1;
                a.seq = s.seq;
                a.metrics = Some(SparkMetrics {
                    jobs: 1,
                    tasks: 1,
                    executor_run_time_ms: u64::try_from(
                        a.ends_at.duration_since(a.began).as_millis(),
                    )
                    .unwrap_or(u64::MAX),
                });
            }
        }
        Ok(PollReply {
            seq,
            updates,
            capacity,
        })
    }

    async fn cancel(
        &self,
        session: SessionId,
        id: &str,
        attempt: u32,
    ) -> Result<Option<NotebookState>, SparkError> {
        let delay = self.cancel_delay;
        self.call(Op::Cancel, |state, now| {
            let s = Self::session_mut(state, session, now)?;
            let key = (id.to_string(), attempt);
            if let Some(a) = s.attempts.get_mut(&key) {
                if a.state == NotebookState::Running {
                    let at = now + delay;
                    if at < a.ends_at {
                        a.ends_at = at;
                        a.outcome = NotebookState::Cancelled;
                    }
                }
                return Ok(Some(a.state));
            }
            if let Some(&ended) = s.ended.get(&key) {
                return Ok(Some(ended));
            }
            s.ended.insert(key, NotebookState::Cancelled);
            Ok(None)
        })
        .await
    }

    async fn release(&self, session: SessionId, owner: &str) -> Result<(), SparkError> {
        self.call(Op::Release, |state, now| {
            let s = Self::session_mut(state, session, now)?;
            if s.lease.as_ref().is_some_and(|(h, _)| h == owner) {
                s.lease = None;
            }
            Ok(())
        })
        .await
    }

    async fn close_session(&self, session: SessionId) -> Result<(), SparkError> {
        self.call(Op::Close, |state, now| {
            Self::end_session(state, session.0, now);
            Ok(())
        })
        .await
    }

    async fn session_state(&self, session: SessionId) -> Result<Liveness, SparkError> {
        self.call(Op::State, |state, now| {
            Ok(match state.sessions.get(&session.0) {
                Some(s) if s.alive && s.ready_at > now => Liveness::Starting("starting".into()),
                Some(s) if s.alive => Liveness::Alive,
                Some(s) => Liveness::Ended(match &s.end_reason {
                    Some(reason) => format!("session {session} is dead: {reason}"),
                    None => format!("session {session} is dead"),
                }),
                None => Liveness::Ended(format!("session {session} is gone")),
            })
        })
        .await
    }

    async fn spark_ui(&self, _session: SessionId) -> Option<String> {
        self.spark_ui.clone()
    }

    async fn find_session(&self, name: &str) -> Result<Option<SessionId>, SparkError> {
        self.call(Op::State, |state, _| {
            Ok(state
                .sessions
                .iter()
                .find(|(_, s)| s.alive && s.name == name)
                .map(|(id, _)| SessionId(*id)))
        })
        .await
    }
}
