"""When Spool's notebooks really ended: a recording proxy between `spool run` and the Livy
endpoint, for `scripts/bench-runs.sh --trace`.

`spool run` records a notebook's end when a poll of the driver agent reports it, so the run's
durations include the wait for that poll. The agent's own poll replies carry the start and end
by the driver's clock; the proxy forwards every request unchanged and keeps, from each
finished poll statement it relays, the first report of every finished attempt. Same machine,
same clock: the difference to the recorded end is the detection latency.
"""

import http.server
import json
import re
import threading
import time
import urllib.error
import urllib.request

# Bodies larger than this are forwarded but not inspected.
MAX_INSPECTED_BYTES = 8 * 1024 * 1024
UPSTREAM_TIMEOUT_SECS = 150
STATEMENT_PATH = re.compile(r"^/sessions/\d+/statements/\d+$")


class RecordingProxy:
    def __init__(self, upstream):
        self.upstream = upstream.rstrip("/")
        self.ends = {}  # (id, attempt) -> {"started_at", "ended_at", "reported_at"} (ms)
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers=headers, method=self.command
                )
                try:
                    with urllib.request.urlopen(request, timeout=UPSTREAM_TIMEOUT_SECS) as answer:
                        status, payload, headers = answer.status, answer.read(), answer.headers
                except urllib.error.HTTPError as error:
                    status, payload, headers = error.code, error.read(), error.headers
                if self.command == "GET" and STATEMENT_PATH.match(self.path.split("?")[0]):
                    proxy._inspect(payload)
                self.send_response(status)
                self.send_header("Content-Type", headers.get("Content-Type") or "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _forward

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _inspect(self, payload):
        """Records finished attempts from a finished poll statement's reply."""
        if len(payload) > MAX_INSPECTED_BYTES:
            return
        try:
            statement = json.loads(payload)
            text = statement["output"]["data"]["text/plain"]
            reply = json.loads(text.strip().splitlines()[-1])
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return
        if not isinstance(reply, dict) or "updates" not in reply:
            return
        now = int(time.time() * 1000)
        with self._lock:
            for update in reply["updates"]:
                if update.get("state") == "running":
                    continue
                key = (update["id"], update["attempt"])
                self.ends.setdefault(key, {
                    "started_at": update["started_at"],
                    "ended_at": update["ended_at"],
                    "reported_at": now,
                })

    def close(self):
        self._server.shutdown()
        self._server.server_close()
