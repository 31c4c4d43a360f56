"""The driver process behind one session of `spool livy-local`.

It plays the part of Livy's Python interpreter (`fake_shell.py`): it creates a SparkSession
(local mode, or client mode against the standalone master of its configuration), then executes
statements one at a time, in the order they arrive, in one shared namespace holding `spark` and
`sc`.

Protocol with the Rust endpoint (one JSON object per line, UTF-8):
- stdin, endpoint -> driver:
    {"op": "execute", "id": n, "kind": "pyspark" | "sql", "code": "..."}
    {"op": "cancel", "id": n}
- the protocol descriptor (the original stdout), driver -> endpoint:
    {"event": "ready", "app_id": "..."}
    {"event": "failed", "message": "..."}        (the SparkSession could not be created)
    {"event": "result", "id": n, "output": {...}} (Livy's statement output object)

File descriptor 1 is pointed at stderr before Spark starts, so nothing that user code, the JVM
or a C library prints can corrupt the protocol; stderr becomes the session log. End of stdin
(the endpoint went away) ends the process, and with it the JVM (PySpark's gateway exits when
its parent's pipe closes).

Configuration comes from the environment variable SPOOL_REPL_CONF (JSON):
    {"app_name": "...", "master": "local[2]", "conf": {"spark.x": "y", ...}}
"""

import ast
import builtins
import io
import json
import os
import queue
import signal
import sys
import threading
import time
import traceback

# A statement's printed output is kept up to this many characters (Livy keeps all of it; a
# runaway print loop must not exhaust the endpoint's memory).
MAX_OUTPUT_CHARS = 4 * 1024 * 1024
# Rows returned by a `sql` statement, as Livy's `livy.rsc.sql.num-rows` default.
SQL_MAX_ROWS = 1000
# After a cancel, the statement's job group is cancelled again at this interval (jobs started
# after the first cancel) for at most CANCEL_REPEAT_LIMIT times.
CANCEL_REPEAT_SECS = 0.5
CANCEL_REPEAT_LIMIT = 60
# Cancels kept for statements sent but not started yet (the endpoint sends one at a time).
MAX_EARLY_CANCELS = 64


class BoundedOutput(io.TextIOBase):
    """A StringIO-like sink that keeps the first MAX_OUTPUT_CHARS characters."""

    def __init__(self):
        self._parts = []
        self._size = 0
        self._dropped = 0
        self._lock = threading.Lock()

    def writable(self):
        return True

    def write(self, text):
        with self._lock:
            room = MAX_OUTPUT_CHARS - self._size
            if len(text) > room:
                self._dropped += len(text) - max(room, 0)
                text = text[: max(room, 0)]
            self._parts.append(text)
            self._size += len(text)
        return len(text)

    def take(self):
        """Returns everything written since the last take and empties the sink."""
        with self._lock:
            text = "".join(self._parts)
            if self._dropped:
                text += "\n[spool: %d characters of output dropped]" % self._dropped
            self._parts, self._size, self._dropped = [], 0, 0
        return text


class Protocol:
    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message):
        line = json.dumps(message, default=str, ensure_ascii=False)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class Cancellation:
    """Which statement is running and which cancels are pending.

    The endpoint marks a statement running when it writes it to stdin, so a cancel can arrive
    before the main thread has taken the statement from the queue: such a cancel is kept, and
    the statement is then reported cancelled without running. Statement ids only grow, so an id
    above the last one started has not started yet. The SIGINT handler raises KeyboardInterrupt
    in the main thread only while the statement a cancel was meant for is still the one running,
    so a late cancel cannot hit the next one.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.running = None
        self.pending = None
        self.last_started = -1
        self.before_start = set()

    def start(self, statement_id):
        """Called by the main thread before it runs a statement: False if it was cancelled."""
        with self.lock:
            if isinstance(statement_id, int):
                self.last_started = max(self.last_started, statement_id)
            if statement_id in self.before_start:
                self.before_start.discard(statement_id)
                return False
            self.running = statement_id
            self.pending = None
            return True

    def finish(self):
        with self.lock:
            self.running = None
            self.pending = None

    def request(self, statement_id):
        """Records a cancel; True when the statement is running and must be interrupted."""
        with self.lock:
            if self.running == statement_id:
                self.pending = statement_id
                return True
            if statement_id > self.last_started and len(self.before_start) < MAX_EARLY_CANCELS:
                self.before_start.add(statement_id)
            return False

    def on_sigint(self, signum, frame):
        with self.lock:
            hit = self.pending is not None and self.pending == self.running
            self.pending = None
        if hit:
            raise KeyboardInterrupt("statement cancelled")


def cancelled_output(count):
    return {"status": "error", "execution_count": count, "ename": "KeyboardInterrupt",
            "evalue": "statement cancelled", "traceback": []}


def statement_group(statement_id):
    return "livy-statement-%d" % statement_id


def trimmed_traceback(exc):
    """Livy-style traceback lines showing the user's frames only (the REPL's own dropped)."""
    own_file = trimmed_traceback.__code__.co_filename
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != own_file]
    return (
        ["Traceback (most recent call last):\n"]
        + traceback.format_list(frames)
        + traceback.format_exception_only(type(exc), exc)
    )


def run_python(code, namespace):
    """Executes the code; the value of a final expression is printed, as in an interactive
    shell (and as Livy does)."""
    tree = ast.parse(code, "<stdin>", "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<stdin>", "exec"), namespace)
    if last is not None:
        value = eval(compile(last, "<stdin>", "eval"), namespace)
        if value is not None:
            print(repr(value))


def run_sql(code, namespace):
    """Livy's SQL interpreter: the result as {"schema": ..., "data": [[...], ...]}."""
    frame = namespace["spark"].sql(code)
    rows = [list(row) for row in frame.take(SQL_MAX_ROWS)]
    return {"application/json": {"schema": frame.schema.jsonValue(), "data": rows}}


def execute(request, namespace, sink, count):
    code = request.get("code", "")
    kind = request.get("kind", "pyspark")
    try:
        if kind == "sql":
            data = run_sql(code, namespace)
        else:
            run_python(code, namespace)
            data = None
        text = sink.take().rstrip("\n")
        payload = data if data is not None else {"text/plain": text}
        return {"status": "ok", "execution_count": count, "data": payload}
    except BaseException as exc:  # noqa: B902 - any failure, sys.exit() included, is its output
        sink.take()
        return {
            "status": "error",
            "execution_count": count,
            "ename": type(exc).__name__,
            "evalue": str(exc),
            "traceback": trimmed_traceback(exc),
        }


def create_spark(conf):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(conf.get("master", "local[2]")).appName(
        conf.get("app_name", "spool-livy-local")
    )
    for key, value in conf.get("conf", {}).items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(conf.get("log_level", "WARN"))
    return spark


def read_requests(requests, cancellation, sc):
    """Reader thread: queues executions, handles cancels at once, ends the process at EOF."""
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            print("spool repl: ignoring a malformed request line", file=sys.__stderr__)
            continue
        if request.get("op") == "cancel":
            cancel(request.get("id"), cancellation, sc)
        else:
            requests.put(request)
    os._exit(0)


def cancel(statement_id, cancellation, sc):
    if not isinstance(statement_id, int) or not cancellation.request(statement_id):
        return
    # A real signal to the main thread, so that a blocking call (time.sleep, a socket read)
    # returns at once with EINTR and the handler runs.
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    def repeat():
        for _ in range(CANCEL_REPEAT_LIMIT):
            with cancellation.lock:
                if cancellation.running != statement_id:
                    return
            sc.cancelJobGroup(statement_group(statement_id))
            time.sleep(CANCEL_REPEAT_SECS)

    threading.Thread(target=repeat, name="livy-cancel", daemon=True).start()


def main():
    protocol = Protocol(os.fdopen(os.dup(1), "w", encoding="utf-8"))
    os.dup2(2, 1)
    conf = json.loads(os.environ.get("SPOOL_REPL_CONF", "{}"))
    try:
        spark = create_spark(conf)
    except BaseException as exc:  # noqa: B902 - reported to the endpoint, which marks the session dead
        protocol.send(
            {"event": "failed", "message": "".join(traceback.format_exception(exc))}
        )
        sys.exit(1)
    sc = spark.sparkContext

    sink = BoundedOutput()
    sys.stdout = sink
    namespace = {"__name__": "__main__", "__builtins__": builtins, "spark": spark, "sc": sc}
    cancellation = Cancellation()
    signal.signal(signal.SIGINT, cancellation.on_sigint)
    requests = queue.Queue()
    threading.Thread(
        target=read_requests, args=(requests, cancellation, sc), name="livy-reader", daemon=True
    ).start()
    protocol.send({"event": "ready", "app_id": sc.applicationId})

    count = 0
    while True:
        try:
            request = requests.get()
        except KeyboardInterrupt:
            continue
        statement_id = request.get("id")
        if not cancellation.start(statement_id):
            protocol.send({"event": "result", "id": statement_id,
                           "output": cancelled_output(count)})
            count += 1
            continue
        output = None
        try:
            sc.setJobGroup(statement_group(statement_id), "Livy statement", True)
            output = execute(request, namespace, sink, count)
        except KeyboardInterrupt:
            # The cancel arrived between the statement's end and this point.
            output = cancelled_output(count)
        finally:
            cancellation.finish()
        count += 1
        protocol.send({"event": "result", "id": statement_id, "output": output})


if __name__ == "__main__":
    main()
