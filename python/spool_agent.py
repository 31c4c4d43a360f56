"""Spool's driver agent: runs several notebooks at once inside one Spark driver.

Livy executes the statements of a session one at a time, so Spool injects this module once per
session (as a statement) and then talks to it with short statements. Every argument is one
base64-encoded JSON document, decoded here: nothing the server sends is spliced into code.

    install(spark)                       -> {"version": ..., "capacity": {...}}
    start(b64 of a launch)               -> {"started": bool, "state": "..."}
    poll(b64 of {"since": n, "owner": s, "wait_ms": n})
                                         -> {"seq": n, "updates": [...], "capacity": {...}}
    cancel(b64 of {"id": .., "attempt": ..}) -> {"found": bool, "state": "..."}
    release(b64 of {"owner": s})         -> {"released": bool}
    capacity_report()                    -> {"executors": n, "total_cores": n}

Each call returns one JSON object as a string; the statements print it, and the server decodes
the statement's text output. Notebooks run in daemon threads, reused from one attempt to the
next (a warm py4j connection; see _idle_workers). Each attempt gets:
- its own namespace with `spark` (`spark.newSession()` when isolated), `sc`, `spool`
  (`spool.params`, `spool.exit(value)`, `spool.set_value(key, value)`, `spool.upstream`),
  `display` and every parameter as a variable;
- a Spark job group `spool:<id>:<attempt>` (cancel and timeout cancel exactly its jobs) and a
  FAIR scheduler pool `spool:<id>` (effective when spark.scheduler.mode is FAIR);
- its own bounded stdout and stderr, routed by thread.
A reused thread starts clean of Spark job tags; other thread-local settings a notebook makes
itself (Spark local properties, Python thread-locals) can reach a later notebook on the same
thread, as in any thread pool.

Parameters arrive inside the launch document and are decoded here with json.loads: they are
data and never become code. Their names must be identifiers (they become variables).

Cancelling (or a timeout) cancels the job group, then raises an asynchronous exception in the
notebook's thread (PyThreadState_SetAsyncExc), which takes effect at the thread's next Python
bytecode. Every poll repeats both while the thread lives; a thread that has not stopped within
CANCEL_GRACE_SECS (stuck inside C code) is reported finished and left to end on its own; its
remaining cells never run. `time.sleep` and `spool.sleep` in a notebook's thread wait on the
attempt's cancel event, so a cancel interrupts them at once; a blocking socket read or other
native call still ends only when it returns.

Exactly once: an attempt is known by (id, attempt) for the agent's whole life. A start of a
known attempt, running or ended (even after a poll acknowledged it), returns its state and runs
nothing, so a start whose reply was lost can be sent again; a cancel of an attempt the agent
never saw makes a later start of it run nothing.

One poller: the first poll's `owner` holds a lease on the session; a poll by another owner is
refused (SpoolSessionBusy, naming the holder) until the holder releases it or has not polled for
LEASE_SECS (a holder that died). A poll waits up to `wait_ms` (at most MAX_POLL_WAIT_MS) and
returns as soon as an attempt newer than `since` has ended: a long poll.
"""

import base64
import builtins
import ctypes
import json
import keyword
import linecache
import queue
import re
import sys
import threading
import time
import traceback

VERSION = None  # set by the inject statement: a hash of this file's text
STREAM_HEAD_CHARS = 64 * 1024
STREAM_TAIL_CHARS = 64 * 1024
MAX_EVALUE_CHARS = 16 * 1024
# Reported values are masked this deep (parameters nest at most 32 deep); deeper, as text.
MASK_DEPTH = 32
MAX_TRACEBACK_LINES = 200
MAX_EXIT_VALUE_CHARS = 1024 * 1024
MAX_VALUES_CHARS = 1024 * 1024  # all of an attempt's spool.set_value values, as JSON
MAX_VALUES = 1000
MAX_VALUE_KEY_CHARS = 200
CANCEL_GRACE_SECS = 15.0
# Attempts held at once (running, or finished and not yet acknowledged by a poll).
MAX_HELD_RUNS = 10000
SQL_SHOW_ROWS = 20
# Ended attempts remembered after acknowledgement, so that a late duplicate start runs nothing.
MAX_REMEMBERED_ENDS = 100000
LEASE_SECS = 60.0
MAX_POLL_WAIT_MS = 5000
# While a poll waits, stalled cancels are repeated this often.
STALL_CHECK_SECS = 0.5
# A poll reports a capacity read at most this long before it began to wait: a poll follows
# every dispatch, and reading the capacity takes five JVM calls (3-4 ms on local[2]).
CAPACITY_FRESH_SECS = 0.5
# The first install waits this long for its warm-up job (then cancels it and goes on).
WARM_UP_WAIT_SECS = 60.0
WARM_UP_GROUP = "spool-warm-up"
# What one attempt may record of the session state it leaves (temp views, functions).
MAX_SESSION_STATE = 1000
# Notebook threads kept for reuse (see _idle_workers), and how long one waits for an attempt.
MAX_IDLE_WORKERS = 64
WORKER_IDLE_SECS = 300.0
IDLE_WORKER_NAME = "spool-idle-notebook-thread"

_lock = threading.RLock()
_runs = {}  # (id, attempt) -> _Run
_cond = threading.Condition(_lock)  # notified whenever an attempt changes (see _bump)
_ended = {}  # (id, attempt) -> final state, of attempts acknowledged and forgotten
_lease = None  # {"owner": str, "at": seconds}: the session's one poller
_by_thread = {}  # thread ident -> _Run, for routing output
_seq = 0
_spark = None
# Ended attempts whose Spark metrics are still to be read, by _metrics_reader's thread.
_metrics_wanted = queue.Queue()
_metrics_thread = None
_capacity_read = None  # (time.monotonic() of the reading, capacity()), see _recent_capacity
# Idle notebook threads (each a queue.SimpleQueue it waits on), reused by later attempts: in
# PySpark's pinned thread mode a new thread opens its own py4j connection to the JVM, 3-4 ms
# that start to first Spark call pays once per thread instead of once per notebook.
_idle_workers = []


class _Exit(BaseException):
    """Raised by spool.exit(value); a BaseException so that `except Exception` cannot stop it."""

    def __init__(self, value):
        super().__init__("spool.exit")
        self.value = value


class _Cancelled(BaseException):
    """Raised asynchronously in a notebook's thread when it is cancelled or times out."""


class _BoundedText:
    """Keeps the first STREAM_HEAD_CHARS and the last STREAM_TAIL_CHARS characters written."""

    def __init__(self):
        self._lock = threading.Lock()
        self._head = []
        self._head_len = 0
        self._tail = []
        self._tail_len = 0
        self._dropped = 0

    def write(self, text):
        with self._lock:
            room = STREAM_HEAD_CHARS - self._head_len
            if room > 0:
                self._head.append(text[:room])
                self._head_len += len(text[:room])
                text = text[room:]
            if text:
                self._tail.append(text)
                self._tail_len += len(text)
                if self._tail_len > 2 * STREAM_TAIL_CHARS:
                    joined = "".join(self._tail)
                    self._dropped += len(joined) - STREAM_TAIL_CHARS
                    self._tail = [joined[-STREAM_TAIL_CHARS:]]
                    self._tail_len = STREAM_TAIL_CHARS

    def value(self):
        with self._lock:
            tail = "".join(self._tail)
            dropped = self._dropped + max(len(tail) - STREAM_TAIL_CHARS, 0)
            tail = tail[-STREAM_TAIL_CHARS:]
            middle = "\n[spool: %d characters dropped]\n" % dropped if dropped else ""
            return "".join(self._head) + middle + tail


class _Router:
    """Replaces sys.stdout or sys.stderr: a notebook thread's writes go to that notebook,
    everything else to the stream it replaced (the interpreter's statement output)."""

    def __init__(self, fallback, attribute):
        self._fallback = fallback
        self._attribute = attribute

    def write(self, text):
        run = _by_thread.get(threading.get_ident())
        if run is None:
            return self._fallback.write(text)
        getattr(run, self._attribute).write(text)
        return len(text)

    def flush(self):
        if threading.get_ident() not in _by_thread:
            self._fallback.flush()

    def __getattr__(self, name):
        return getattr(self._fallback, name)


class _Upstream(dict):
    """What one upstream notebook published: its `spool.set_value` values by key, and its exit
    value as `.value`."""

    def __init__(self, published):
        super().__init__(published.get("values") or {})
        self.value = published.get("value")


class _Handle:
    """The `spool` object a notebook sees."""

    def __init__(self, params, upstream, run):
        self.params = dict(params)
        self.upstream = {name: _Upstream(p) for name, p in upstream.items()}
        self._run = run

    def exit(self, value=None):
        raise _Exit(value)

    def set_value(self, key, value):
        """Publishes `value` (JSON) under `key` for dependents (`{{ tasks.ID.values.KEY }}`),
        kept when the notebook succeeds."""
        if not isinstance(key, str) or not key or len(key) > MAX_VALUE_KEY_CHARS:
            raise ValueError(
                "spool.set_value: the key must be a non-empty string of at most %d characters"
                % MAX_VALUE_KEY_CHARS
            )
        encoded = json.dumps(value)  # raises TypeError for what JSON cannot hold
        values = dict(self._run.values)
        values[key] = json.loads(encoded)
        if len(values) > MAX_VALUES:
            raise ValueError("spool.set_value: more than %d values" % MAX_VALUES)
        size = len(json.dumps(values))
        if size > MAX_VALUES_CHARS:
            raise ValueError(
                "spool.set_value: the values would take %d characters of JSON; the limit is %d"
                % (size, MAX_VALUES_CHARS)
            )
        self._run.values = values

    @staticmethod
    def sleep(secs):
        """Like time.sleep, but a cancel of the notebook ends it at once."""
        _sleep(secs)


_original_sleep = getattr(time.sleep, "_spool_original", time.sleep)


def _sleep(secs):
    """time.sleep for the whole driver: in a notebook's thread it waits on the attempt's cancel
    event (a cancel raises there at once); elsewhere it is the original."""
    run = _by_thread.get(threading.get_ident())
    if run is None:
        return _original_sleep(secs)
    if secs < 0:
        raise ValueError("sleep length must be non-negative")
    if run.cancel_event.wait(secs) and run.in_cells:
        raise _Cancelled()
    return None


_sleep._spool_original = _original_sleep


def _display(obj, rows=SQL_SHOW_ROWS):
    """Synapse and Databricks notebooks call display(df); print a DataFrame's first rows."""
    if hasattr(obj, "show"):
        obj.show(rows, truncate=False)
    else:
        print(obj)


class _Run:
    def __init__(self, launch):
        self.id = launch["id"]
        # An isolated notebook's temp views and functions live in its own Spark session;
        # global temp views are shared all the same.
        self.isolated = bool(launch.get("isolated"))
        self.session_state = set()  # "view:NAME", "global_view:NAME", "function:NAME"
        self.attempt = launch["attempt"]
        self.group = "spool:%s:%d" % (self.id, self.attempt)
        self.pool = "spool:%s" % self.id
        self.state = "running"
        self.started_at = _now_ms()
        self.ended_at = None
        self.stdout = _BoundedText()
        self.stderr = _BoundedText()
        # The run's secrets, longest first: replaced by *** in everything reported.
        self.mask = sorted(launch.get("mask") or [], key=len, reverse=True)
        self.error = None
        self.exit_value = None
        self.values = {}
        self.metrics = None
        # Read off the poll's path, after the end (see _metrics_reader); an ended attempt is
        # kept until they are reported too.
        self.metrics_read = False
        self.seq = 0
        self.end_seq = None  # the `seq` of the change that ended it
        self.thread = None
        self.timer = None
        self.cancel_reason = None  # "cancelled" or "timed_out" once requested
        self.cancel_requested_at = None
        self.cancel_event = threading.Event()
        # True while the thread runs notebook code: asynchronous exceptions are raised into
        # the thread only then, never while it records its outcome.
        self.in_cells = True

    def finished(self):
        return self.state != "running"

    def to_json(self):
        update = {
            "id": self.id,
            "attempt": self.attempt,
            "state": self.state,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }
        if self.finished():
            update.update(
                stdout=self._masked(self.stdout.value()),
                stderr=self._masked(self.stderr.value()),
                error=self._masked(self.error),
                exit_value=self._masked(self.exit_value),
                values=self._masked(self.values) if self.state == "succeeded" else None,
                metrics=self.metrics,
                session_state=sorted(self.session_state) if self.state == "succeeded" else [],
            )
        return update

    def _masked(self, value, depth=0):
        """`value` with the run's secrets replaced by ***: strings, and the strings and keys of
        lists and dicts (deeper than MASK_DEPTH, or of other types: their text, masked)."""
        if not self.mask or value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            for secret in self.mask:
                value = value.replace(secret, "***")
            return value
        if depth < MASK_DEPTH and isinstance(value, dict):
            return {
                self._masked(str(k), depth + 1): self._masked(v, depth + 1)
                for k, v in value.items()
            }
        if depth < MASK_DEPTH and isinstance(value, (list, tuple)):
            return [self._masked(v, depth + 1) for v in value]
        return self._masked(json.dumps(value, default=str))


def _now_ms():
    return int(time.time() * 1000)


def _bump(run):
    """Marks a change of `run` and wakes a waiting poll; called with _lock held."""
    global _seq
    _seq += 1
    run.seq = _seq
    _cond.notify_all()


def _ends_after(since):
    """Whether an attempt ended after `since` (news a waiting poll returns for at once; late
    metrics wait for the next poll). Called with _lock held."""
    return any(run.end_seq is not None and run.end_seq > since for run in _runs.values())


def _install_routers():
    if not isinstance(sys.stdout, _Router):
        sys.stdout = _Router(sys.stdout, "stdout")
    if not isinstance(sys.stderr, _Router):
        sys.stderr = _Router(sys.stderr, "stderr")


def install(spark):
    """Called by the inject statement. Idempotent."""
    global _spark
    first = _spark is None
    _spark = spark
    _install_routers()
    time.sleep = _sleep
    _start_metrics_reader()
    _track_session_state(spark)
    if first:
        _warm_up(spark)
    return json.dumps({"version": VERSION, "capacity": capacity()})


def _warm_up(spark):
    """Runs one small job on every core before the first notebook. A fresh JVM's first
    jobs pay for class loading and code generation (15 s on a loaded 2-core machine): that is
    the session's start-up, and left to the first notebooks it would inflate their durations,
    which the dry run calibrates from. Bounded: a cluster that has no executor yet must not
    hold the session's start, so after WARM_UP_WAIT_SECS the job is cancelled."""
    sc = spark.sparkContext

    def job():
        try:
            sc.setJobGroup(WARM_UP_GROUP, "spool: warm-up before the first notebook", True)
            # No shuffle: with dynamic allocation's shuffle tracking, executors holding
            # shuffle files are kept, and the pool could never shrink.
            spark.range(0, 1000, numPartitions=max(sc.defaultParallelism, 1)).selectExpr(
                "id % 7 AS k", "id * 2 AS v"
            ).filter("v < 0").collect()
        except Exception:  # noqa: BLE001 - a cancelled or failed warm-up costs only speed
            pass

    worker = threading.Thread(target=job, name=WARM_UP_GROUP, daemon=True)
    worker.start()
    worker.join(WARM_UP_WAIT_SECS)
    if worker.is_alive():
        sc.cancelJobGroup(WARM_UP_GROUP)


# The SQL that leaves a temp view or function in the session, after leading comments.
_SQL_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_SQL_NAME = r"(`[^`]+`|[\w.]+)"
_SQL_STATE = [
    (
        re.compile(
            r"CREATE\s+(?:OR\s+REPLACE\s+)?(GLOBAL\s+)?TEMP(?:ORARY)?\s+VIEW\s+"
            r"(?:IF\s+NOT\s+EXISTS\s+)?" + _SQL_NAME,
            re.I,
        ),
        "view",
    ),
    (
        # CACHE TABLE name AS query makes a temp view (CACHE TABLE name caches a table).
        re.compile(
            r"CACHE\s+(?:LAZY\s+)?TABLE\s+()" + _SQL_NAME
            + r"\s*(?:OPTIONS\s*\([^)]*\)\s*)?(?:AS\b|SELECT\b|WITH\b|FROM\b|\()",
            re.I,
        ),
        "view",
    ),
    (
        re.compile(
            r"CREATE\s+(?:OR\s+REPLACE\s+)?()TEMP(?:ORARY)?\s+FUNCTION\s+"
            r"(?:IF\s+NOT\s+EXISTS\s+)?" + _SQL_NAME,
            re.I,
        ),
        "function",
    ),
]


def _sql_state(query):
    """What a SQL statement leaves in the session: (kind, name) or None."""
    if not isinstance(query, str):
        return None
    text = query[_SQL_COMMENTS.match(query).end():]
    for pattern, kind in _SQL_STATE:
        found = pattern.match(text)
        if found:
            is_global = bool(found.group(1))
            return ("global_view" if is_global else kind), found.group(2).strip("`")
    return None


def _note_state(kind, name):
    """Records that the attempt running on this thread left `name` in the session (a resume
    into a new session runs it again when a later notebook may read it)."""
    run = _by_thread.get(threading.get_ident())
    if run is None or not isinstance(name, str) or (run.isolated and kind != "global_view"):
        return
    with _lock:
        if len(run.session_state) < MAX_SESSION_STATE:
            run.session_state.add("%s:%s" % (kind, name))


def _track_session_state(spark):
    """Wraps the PySpark calls that leave state in the session (temp views, SQL that makes
    them, UDF registration) to note it for the calling attempt. Idempotent: a new agent
    version wraps the original methods, not the previous wrappers. The classes are the ones
    of the live objects: PySpark 4's classic DataFrame overrides the methods of
    `pyspark.sql.DataFrame`."""
    DataFrame = type(spark.range(0))
    SparkSession = type(spark)
    UDFRegistration = type(spark.udf)

    def wrap(cls, method, note):
        original = getattr(cls, method, None)
        if original is None:
            return
        original = getattr(original, "_spool_original", original)

        def wrapper(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            try:
                note(args, kwargs)
            except Exception:  # noqa: BLE001 - bookkeeping must never fail a notebook
                pass
            return result

        wrapper._spool_original = original
        wrapper.__doc__ = original.__doc__
        wrapper.__name__ = original.__name__
        setattr(cls, method, wrapper)

    def first(args, kwargs, key):
        return args[0] if args else kwargs.get(key)

    for method in ("createTempView", "createOrReplaceTempView"):
        wrap(DataFrame, method, lambda a, k: _note_state("view", first(a, k, "name")))
    for method in ("createGlobalTempView", "createOrReplaceGlobalTempView"):
        wrap(DataFrame, method, lambda a, k: _note_state("global_view", first(a, k, "name")))
    for method in ("register", "registerJavaFunction"):
        wrap(UDFRegistration, method, lambda a, k: _note_state("function", first(a, k, "name")))

    def note_sql(args, kwargs):
        found = _sql_state(first(args, kwargs, "sqlQuery"))
        if found:
            _note_state(*found)

    wrap(SparkSession, "sql", note_sql)


def _start_metrics_reader():
    global _metrics_thread
    if _metrics_thread is None or not _metrics_thread.is_alive():
        _metrics_thread = threading.Thread(
            target=_metrics_reader, name="spool-metrics", daemon=True
        )
        _metrics_thread.start()


def _metrics_reader():
    """Reads ended attempts' Spark metrics on its own thread (about 15 JVM calls, 8-25 ms),
    so that a poll reports an end without waiting for them and the dependent notebook starts
    that much sooner; the metrics follow in a later poll. Its own thread also because a
    cancelled notebook's thread may have left its JVM connection unusable."""
    while True:
        run = _metrics_wanted.get()
        metrics = _metrics(run.group)
        with _lock:
            run.metrics = metrics
            run.metrics_read = True
            _bump(run)


def busy():
    """Whether a notebook is running (the inject statement does not replace a busy agent)."""
    with _lock:
        return any(not run.finished() for run in _runs.values())


def capacity_report():
    return json.dumps(capacity())


def capacity():
    sc = _spark.sparkContext
    executors = sc._jsc.sc().statusTracker().getExecutorInfos()
    count = len(executors)
    # The list holds the driver too; in local mode the driver is the only executor.
    if not sc.master.startswith("local"):
        count = max(count - 1, 0)
    return {"executors": count, "total_cores": _task_slots(sc)}


def _recent_capacity():
    """capacity(), read again when the last reading is older than CAPACITY_FRESH_SECS. Only
    polls call it, and a session's statements run one at a time."""
    global _capacity_read
    now = time.monotonic()
    if _capacity_read is None or now - _capacity_read[0] > CAPACITY_FRESH_SECS:
        _capacity_read = (now, capacity())
    return _capacity_read[1]


def _task_slots(sc):
    """Tasks the application can run at once on the executors it has now.

    defaultParallelism is not that on a cluster: it is at least 2, and a set
    spark.default.parallelism replaces it. The scheduler backend knows the live executors'
    cores (it follows executors lost and added); Spark marks the method internal, so fall
    back to defaultParallelism on a Spark without it.
    """
    jsc = sc._jsc.sc()
    try:
        profile = jsc.resourceProfileManager().defaultResourceProfile()
        return int(jsc.maxNumConcurrentTasks(profile))
    except Exception:  # noqa: BLE001 - any py4j failure means the method is not there
        return sc.defaultParallelism


def _decode(payload):
    return json.loads(base64.b64decode(payload, validate=True).decode("utf-8"))


def _decode_launch(payload):
    launch = _decode(payload)
    if not isinstance(launch.get("id"), str) or not launch["id"]:
        raise ValueError("launch: id must be a non-empty string")
    if not isinstance(launch.get("attempt"), int) or launch["attempt"] < 0:
        raise ValueError("launch: attempt must be a non-negative integer")
    if not isinstance(launch.get("params"), dict):
        raise ValueError("launch: params must be an object")
    upstream = launch.setdefault("upstream", {})
    if not isinstance(upstream, dict) or not all(isinstance(p, dict) for p in upstream.values()):
        raise ValueError("launch: upstream must map names to {value, values} objects")
    for name in launch["params"]:
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__"):
            raise ValueError(
                "parameter name %r is not usable as a Python variable name" % (name,)
            )
    cells = launch.get("cells")
    if not isinstance(cells, list) or not all(
        isinstance(c, dict) and c.get("kind") in ("python", "sql") and isinstance(c.get("source"), str)
        for c in cells
    ):
        raise ValueError("launch: cells must be a list of {kind: python|sql, source}")
    timeout = launch.get("timeout_secs")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError("launch: timeout_secs must be a positive number or null")
    mask = launch.setdefault("mask", [])
    if not isinstance(mask, list) or not all(isinstance(m, str) and m for m in mask):
        raise ValueError("launch: mask must be a list of non-empty strings")
    return launch


def start(payload):
    """Starts one notebook attempt on a notebook thread (an idle one or a new one) and returns
    at once. Starting an attempt that is already known returns its state instead (a lost reply
    can be retried safely)."""
    launch = _decode_launch(payload)
    key = (launch["id"], launch["attempt"])
    with _lock:
        existing = _runs.get(key)
        if existing is not None:
            return json.dumps({"started": False, "state": existing.state})
        if key in _ended:
            return json.dumps({"started": False, "state": _ended[key]})
        if len(_runs) >= MAX_HELD_RUNS:
            raise RuntimeError(
                "the agent holds %d notebook attempts already; poll to acknowledge finished ones"
                % len(_runs)
            )
        run = _Run(launch)
        _runs[key] = run
        _bump(run)
        _hand_to_worker(run, launch)
        if launch.get("timeout_secs"):
            run.timer = threading.Timer(launch["timeout_secs"], _request_cancel, (run, "timed_out"))
            run.timer.daemon = True
            run.timer.start()
    return json.dumps({"started": True, "state": run.state})


def cancel(payload):
    target = _decode(payload)
    key = (target.get("id"), target.get("attempt"))
    with _lock:
        run = _runs.get(key)
        if run is None:
            state = _ended.get(key)
            if state is None and isinstance(key[0], str) and isinstance(key[1], int):
                # Never started here: a start still on its way must not run it after this.
                _remember_end(key, "cancelled")
            return json.dumps({"found": state is not None, "state": state})
    _request_cancel(run, "cancelled")
    return json.dumps({"found": True, "state": run.state})


def _request_cancel(run, reason):
    with _lock:
        if run.finished() or run.cancel_reason is not None:
            return
        run.cancel_reason = reason
        run.cancel_requested_at = time.time()
        run.cancel_event.set()
    _interrupt(run)


def _interrupt(run):
    _cancel_jobs(run.group)
    with _lock:
        thread = run.thread
        if (
            run.in_cells
            and thread is not None
            and thread.ident is not None
            and not _inside_py4j(thread.ident)
        ):
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread.ident), ctypes.py_object(_Cancelled)
            )


def _cancel_jobs(group):
    """Cancels the group's running jobs and, where Spark can (4.0+), the ones it submits later:
    a job whose submission was already on its way must not escape the cancel."""
    sc = _spark.sparkContext
    try:
        sc._jsc.sc().cancelJobGroupAndFutureJobs(group)
    except Exception:  # noqa: BLE001 - older Spark: running jobs only
        sc.cancelJobGroup(group)


def _inside_py4j(ident):
    """Whether the thread is inside a call to the JVM. An exception raised there could leave
    py4j's connection waiting for an answer it never reads; cancelling the jobs already makes
    such a call return, and the next poll raises the exception in the user's code instead."""
    frame = sys._current_frames().get(ident)
    while frame is not None:
        if "py4j" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _disarm(run):
    """Leaves the notebook code: no asynchronous exception is raised into the thread from now
    on, and one still pending is cleared."""
    with _lock:
        run.in_cells = False
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.get_ident()), None)


def _claim(owner):
    """Takes or renews the session's lease for `owner`; called with _lock held."""
    global _lease
    if not isinstance(owner, str) or not owner:
        raise ValueError("poll: owner must be a non-empty string")
    now = time.time()
    if _lease is not None and _lease["owner"] != owner and now - _lease["at"] < LEASE_SECS:
        raise RuntimeError(
            "SpoolSessionBusy: this Spark session is used by %s (last poll %.0f s ago); one run "
            "at a time per session" % (_lease["owner"], now - _lease["at"])
        )
    _lease = {"owner": owner, "at": now}


def release(payload):
    """Gives up the lease of `owner` (a run that ends), so that another run may poll at once."""
    global _lease
    owner = _decode(payload).get("owner")
    with _lock:
        held = _lease is not None and _lease["owner"] == owner
        if held:
            _lease = None
    return json.dumps({"released": held})


def _remember_end(key, state):
    """Called with _lock held."""
    _ended[key] = state
    while len(_ended) > MAX_REMEMBERED_ENDS:
        del _ended[next(iter(_ended))]


def _sweep(since):
    """Forgets acknowledged attempts, ends those whose cancel outlived its grace; returns the
    attempts still being cancelled. Called with _lock held."""
    stalled = []
    for key, run in list(_runs.items()):
        if run.finished() and run.metrics_read and run.seq <= since:
            del _runs[key]
            _remember_end(key, run.state)
        elif not run.finished() and run.cancel_reason is not None:
            if time.time() - run.cancel_requested_at > CANCEL_GRACE_SECS:
                _finish(
                    run,
                    run.cancel_reason,
                    error=_error_dict(
                        "SpoolCancelled",
                        "the notebook's thread did not stop within %d s (it is inside native "
                        "code); its Spark jobs were cancelled and no further cell will run"
                        % CANCEL_GRACE_SECS,
                        [],
                        None,
                        None,
                    ),
                )
            else:
                stalled.append(run)
    return stalled


def poll(payload):
    """Every attempt that changed after sequence number `since`, newest state only. The caller
    passes the `seq` of the last reply it decoded, which also acknowledges ended attempts:
    those are then forgotten. Waits up to `wait_ms` for an attempt to end first."""
    request = _decode(payload)
    since = request["since"]
    wait = min(max(float(request.get("wait_ms") or 0), 0.0), MAX_POLL_WAIT_MS) / 1000.0
    deadline = time.time() + wait
    _install_routers()
    with _lock:
        _claim(request.get("owner"))
    # Read before waiting, not after: an end is reported without JVM calls on its way.
    current_capacity = _recent_capacity()
    while True:
        with _lock:
            stalled = _sweep(since)
            ended = _ends_after(since)
            remaining = deadline - time.time()
            if not ended and remaining > 0:
                _cond.wait(min(remaining, STALL_CHECK_SECS))
                stalled = _sweep(since)
                ended = _ends_after(since)
                remaining = deadline - time.time()
            if ended or remaining <= 0:
                changed = [run for run in _runs.values() if run.seq > since]
                updates = [run.to_json() for run in changed]
                seq = _seq
                break
        for run in stalled:
            _interrupt(run)  # jobs started since the cancel, and code that caught _Cancelled
    for run in stalled:
        _interrupt(run)
    return json.dumps(
        {"seq": seq, "updates": updates, "capacity": current_capacity}, default=str
    )


def _finish(run, state, error=None, exit_value=None):
    """Records the outcome once; called with _lock held."""
    if run.finished():
        return
    run.state = state
    run.ended_at = _now_ms()
    run.error = error
    run.exit_value = exit_value
    if run.timer is not None:
        run.timer.cancel()
    _bump(run)
    run.end_seq = run.seq
    _metrics_wanted.put(run)


def _error_dict(ename, evalue, lines, cell=None, line=None):
    """An error as the server reads it; `cell` and `line` are the notebook's own cell number
    and the line within that cell, as the notebook's editor shows them."""
    if len(evalue) > MAX_EVALUE_CHARS:
        evalue = evalue[:MAX_EVALUE_CHARS] + "\n[spool: message cut]"
    if len(lines) > MAX_TRACEBACK_LINES:
        half = MAX_TRACEBACK_LINES // 2
        lines = lines[:half] + ["[spool: traceback cut]\n"] + lines[-half:]
    return {"ename": ename, "evalue": evalue, "traceback": lines, "cell": cell, "line": line}


def _cell_file(run, position):
    """The cell's name in tracebacks and in linecache: unique per notebook attempt, since many
    notebooks run at once in this one interpreter."""
    return "<cell %d of %s#%d>" % (position, run.id, run.attempt)


def _describe_failure(exc, run, position, cell):
    """The error of a failed cell: traceback from the cell's frame on, and where it failed in
    the notebook's own terms: the cell's number and the line within that cell (from the
    innermost frame of that cell, or from the SyntaxError), offset by where the launched source
    begins in the notebook's cell (after a magic line, or a later SQL statement)."""
    cell_file = _cell_file(run, position)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell ")]
    line = None
    for frame in frames:
        if frame.filename == cell_file:
            line = frame.lineno
    if isinstance(exc, SyntaxError) and exc.filename == cell_file:
        line = exc.lineno
    lines = (
        ["Traceback (most recent call last):\n"]
        + traceback.format_list(frames)
        + traceback.format_exception_only(type(exc), exc)
    )
    number = cell_line = None
    if cell is not None:
        number = cell.get("number")
        cell_line = cell.get("cell_line", 1) + (line or 1) - 1
    return _error_dict(type(exc).__name__, str(exc), lines, number, cell_line)


def _sql_args(source, params):
    """Parameters referenced as :name markers in a SQL cell, bound by Spark (never spliced)."""
    return {
        name: value
        for name, value in params.items()
        if isinstance(value, (str, int, float, bool))
        and re.search(r"(?<![\w:]):" + re.escape(name) + r"\b", source)
    }


def _run_cell(run, position, cell, namespace, params):
    source = cell["source"]
    if cell["kind"] == "sql":
        frame = namespace["spark"].sql(source, args=_sql_args(source, params) or None)
        if frame.columns:
            frame.show(SQL_SHOW_ROWS, truncate=False)
        return
    name = _cell_file(run, position)
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    exec(compile(source, name, "exec"), namespace)


def _metrics(group):
    """Jobs, completed tasks and executor run time of a job group, from Spark's status store
    (best effort: None when this Spark version does not expose it)."""
    sc = _spark.sparkContext
    try:
        job_ids = sc.statusTracker().getJobIdsForGroup(group)
        store = sc._jsc.sc().statusStore()
        tasks = 0
        stages = set()
        for job_id in job_ids:
            job = store.job(job_id)
            tasks += job.numCompletedTasks()
            stages.update(int(s) for s in job.stageIds().mkString(",").split(",") if s)
        run_time = sum(store.lastStageAttempt(stage).executorRunTime() for stage in stages)
        return {"jobs": len(job_ids), "tasks": tasks, "executor_run_time_ms": run_time}
    except Exception:  # noqa: BLE001 - telemetry must never fail a notebook
        return None


def _hand_to_worker(run, launch):
    """Runs the attempt on an idle notebook thread, or on a new one; called with _lock held."""
    if _idle_workers:
        _idle_workers.pop().put((run, launch))  # the last to go idle: its connection is warm
        return
    jobs = queue.SimpleQueue()
    jobs.put((run, launch))
    threading.Thread(target=_worker, args=(jobs,), name=run.group, daemon=True).start()


def _worker(jobs):
    """A notebook thread: runs the attempts handed to it one after another, and ends after
    WORKER_IDLE_SECS without one or when MAX_IDLE_WORKERS others are idle already."""
    while True:
        try:
            run, launch = jobs.get(timeout=WORKER_IDLE_SECS)
        except queue.Empty:
            with _lock:
                if jobs in _idle_workers:
                    _idle_workers.remove(jobs)
                    return
            continue  # an attempt was handed over as the wait ran out
        threading.current_thread().name = run.group
        if not _execute(run, launch, jobs):
            return


def _forget_job_tags():
    """Job tags are the thread's own in Spark (3.5+): one a notebook added must not follow the
    thread into the next notebook, where cancelling that tag would cancel the wrong jobs."""
    clear = getattr(_spark.sparkContext, "clearJobTags", None)
    if clear is not None:
        try:
            clear()
        except Exception:  # noqa: BLE001 - a Spark without thread-local tags has none to leak
            pass


def _execute(run, launch, jobs):
    """Runs the attempt and records its outcome; returns whether the thread stays, idle, for a
    later attempt. It is idle before the end is reported: the dependents' starts find it."""
    try:
        with _lock:
            # Only now can a cancel interrupt the thread: before, it was between attempts.
            run.thread = threading.current_thread()
            _by_thread[threading.get_ident()] = run
        outcome = _run_notebook(run, launch)
    except _Cancelled:
        # The cancel landed after the notebook's code, while its outcome was being worked out.
        _disarm(run)
        outcome = (run.cancel_reason or "cancelled", None, None)
    _forget_job_tags()
    with _lock:
        _by_thread.pop(threading.get_ident(), None)
        threading.current_thread().name = IDLE_WORKER_NAME
        stays = len(_idle_workers) < MAX_IDLE_WORKERS
        if stays:
            _idle_workers.append(jobs)
        _finish(run, outcome[0], error=outcome[1], exit_value=outcome[2])
    return stays


def _run_notebook(run, launch):
    """Runs the cells; returns (state, error, exit value)."""
    sc = _spark.sparkContext
    position = None
    try:
        sc.setJobGroup(run.group, "spool notebook %s attempt %d" % (run.id, run.attempt), True)
        sc.setLocalProperty("spark.scheduler.pool", run.pool)
        params = launch["params"]
        namespace = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "spark": _spark.newSession() if launch.get("isolated") else _spark,
            "sc": sc,
            "spool": _Handle(params, launch["upstream"], run),
            "display": _display,
        }
        cells = list(enumerate(launch["cells"]))
        # Papermill's order: the parameters cell with its defaults, then the given values
        # override them, then every other cell in order.
        ordered = [c for c in cells if c[1].get("parameters")]
        ordered += [None] + [c for c in cells if not c[1].get("parameters")]
        for entry in ordered:
            if run.cancel_reason is not None:
                raise _Cancelled()
            if entry is None:
                namespace.update(params)
                continue
            position, cell = entry
            _run_cell(run, position, cell, namespace, params)
        outcome = ("succeeded", None, None)
    except _Exit as done:
        outcome = _exit_outcome(done.value)
    except BaseException as exc:  # noqa: B902 - any failure of user code is the notebook's outcome
        if run.cancel_reason is not None:
            outcome = (run.cancel_reason, None, None)
        else:
            cell = None if position is None else launch["cells"][position]
            outcome = ("failed", _describe_failure(exc, run, position, cell), None)
    # The traceback is written: the cells' sources leave linecache, so a long-lived session
    # does not keep every notebook it ever ran.
    for index in range(len(launch["cells"])):
        linecache.cache.pop(_cell_file(run, index), None)
    _disarm(run)
    return outcome


def _exit_outcome(value):
    try:
        encoded = json.dumps(value)
    except (TypeError, ValueError):
        value = str(value)
        encoded = json.dumps(value)
    if len(encoded) > MAX_EXIT_VALUE_CHARS:
        return (
            "failed",
            _error_dict(
                "SpoolExitValueTooLarge",
                "spool.exit() was given %d characters of JSON; the limit is %d"
                % (len(encoded), MAX_EXIT_VALUE_CHARS),
                [],
            ),
            None,
        )
    return ("succeeded", None, value)
