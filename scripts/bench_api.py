"""Load and soak of `spool serve` (see scripts/bench-api.sh): runs one after another in one
long-lived local Spark session, live event-stream watchers on every run, an API latency
sampler, memory and database size, then kill -9 in the middle of a run and a restart.

Only the standard library; talks to 127.0.0.1 only."""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, timeout=60):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        headers = {"Origin": f"http://{HOST}:{self.port}", "Host": f"{HOST}:{self.port}"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        res = conn.getresponse()
        text = res.read()
        conn.close()
        return res.status, (json.loads(text) if text else None)


def write_pipeline(folder, notebooks):
    os.makedirs(os.path.join(folder, "nb"), exist_ok=True)
    lines = ['name = "bench"', "", "[pool]", "executors = 1", "executor_cores = 2", ""]
    width = 5
    for i in range(notebooks):
        with open(os.path.join(folder, "nb", f"n{i}.py"), "w") as f:
            f.write(f"x = {i} + 1\n")
        lines += ["[[notebook]]", f'id = "n{i}"', f'path = "nb/n{i}.py"', "estimate_secs = 1"]
        if i >= width:
            lines.append(f'depends_on = ["n{i - width}"]')
        lines.append("")
    with open(os.path.join(folder, "bench.toml"), "w") as f:
        f.write("\n".join(lines))


def proc_status(pid, key):
    """A number of /proc/PID/status (`VmRSS` in KiB, `Threads`); 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid):
    return proc_status(pid, "VmRSS")


def start_serve(args, port, pipelines, data):
    log = open(os.path.join(args.work, "serve.log"), "a")
    proc = subprocess.Popen(
        [args.spool, "serve", "--pipelines", pipelines, "--bind", f"{HOST}:{port}",
         "--data-dir", data, "--session", "bench-api"],
        stdout=log, stderr=log, start_new_session=True)
    api = Api(port)
    for _ in range(600):
        try:
            if api.call("GET", "/api/runs", timeout=5)[0] == 200:
                return proc, api
        except OSError:
            pass
        if proc.poll() is not None:
            sys.exit(f"spool serve ended early; see {args.work}/serve.log")
        time.sleep(0.5)
    sys.exit("spool serve did not answer")


def watch(port, run_id, result, drop_after=None):
    """Follows one run's event stream; with drop_after, drops the connection after that many
    events and resumes with Last-Event-ID. Records the sequence numbers seen."""
    seen = []
    last = None
    while True:
        conn = http.client.HTTPConnection(HOST, port, timeout=600)
        headers = {"Host": f"{HOST}:{port}"}
        if last is not None:
            headers["Last-Event-ID"] = str(last)
        try:
            conn.request("GET", f"/api/runs/{run_id}/events", headers=headers)
            res = conn.getresponse()
            if res.status != 200:
                result["error"] = f"status {res.status}"
                return
            dropped = False
            while True:
                line = res.fp.readline()
                if not line:
                    break
                if line.startswith(b"id:"):
                    last = int(line[3:].strip())
                    seen.append(last)
                    if drop_after is not None and len(seen) == drop_after:
                        drop_after = None
                        dropped = True
                        break
            conn.close()
            if not dropped:
                break
        except OSError as e:
            result["error"] = str(e)
            return
    result["seen"] = seen


def sampler(api, stop, latencies):
    while not stop.is_set():
        for path in ("/api/runs", "/api/pipelines", "/api/pipelines/bench.toml"):
            t = time.perf_counter()
            status, _ = api.call("GET", path)
            if status == 200:
                latencies.append(time.perf_counter() - t)
        time.sleep(0.05)


def wait_finished(api, run_id, limit=1800):
    until = time.time() + limit
    while time.time() < until:
        status, body = api.call("GET", f"/api/runs/{run_id}")
        if status == 200 and body["run"]["status"] != "running":
            return body
        time.sleep(0.5)
    sys.exit(f"run {run_id} did not finish")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spool", required=True)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--notebooks", type=int, default=20)
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    pipelines = os.path.join(args.work, "pipelines")
    data = os.path.join(args.work, "data")
    write_pipeline(pipelines, args.notebooks)
    port = free_port()
    proc, api = start_serve(args, port, pipelines, data)
    rss_start = rss_kib(proc.pid)

    latencies, stop = [], threading.Event()
    sample = threading.Thread(target=sampler, args=(api, stop, latencies), daemon=True)
    sample.start()
    started = time.time()
    written = delivered = mismatched = resumed_ok = 0
    statuses = {}
    # serve's memory and threads after every `every` runs: growth per run shows as a slope.
    every = max(1, args.runs // 8)
    checkpoints = []
    for r in range(args.runs):
        status, body = api.call("POST", "/api/runs", {"file": "bench.toml"})
        if status != 201:
            sys.exit(f"start refused: {status} {body}")
        run_id = body["id"]
        results = [{} for _ in range(args.watchers)]
        threads = [threading.Thread(
            target=watch, args=(port, run_id, results[w], 5 if w == 0 else None), daemon=True)
            for w in range(args.watchers)]
        for t in threads:
            t.start()
        detail = wait_finished(api, run_id)
        for t in threads:
            t.join(timeout=120)
        stored = [e["seq"] for e in detail["events"]]
        statuses[detail["run"]["status"]] = statuses.get(detail["run"]["status"], 0) + 1
        for w, res in enumerate(results):
            seen = res.get("seen", [])
            written += len(stored)
            delivered += len(seen)
            # Every watcher sees every event, once, in order (watcher 0 after a reconnect).
            if seen != stored:
                mismatched += 1
            elif w == 0:
                resumed_ok += 1
        if (r + 1) % every == 0:
            checkpoints.append(f"{r + 1}: {rss_kib(proc.pid) / 1024:.0f}"
                               f" ({proc_status(proc.pid, 'Threads')} thr)")
    elapsed = time.time() - started
    stop.set()
    sample.join(timeout=10)
    rss_end = rss_kib(proc.pid)
    db = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)
             if f.startswith("runs.db"))

    # kill -9 in the middle of a run, restart, check it is interrupted and resumable.
    status, body = api.call("POST", "/api/runs", {"file": "bench.toml"})
    victim = body["id"]
    until = time.time() + 600
    while time.time() < until:
        _, d = api.call("GET", f"/api/runs/{victim}")
        if sum(1 for e in d["events"] if e["event"]["type"] == "task_finished") >= 3:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc, api = start_serve(args, port, pipelines, data)
    _, d = api.call("GET", f"/api/runs/{victim}")
    after_status = d["run"]["status"]
    seqs = [e["seq"] for e in d["events"]]
    intact = (seqs == list(range(len(seqs)))
              and d["events"][-1]["event"]["type"] == "run_interrupted")
    status, body = api.call("POST", f"/api/runs/{victim}/resume", {})
    resumed = wait_finished(api, body["id"]) if status == 201 else None
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)

    lat = sorted(latencies)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    rows = [
        ("runs x notebooks", f"{args.runs} x {args.notebooks}"),
        ("run statuses", json.dumps(statuses)),
        ("wall time", f"{elapsed:.1f} s"),
        ("throughput", f"{args.runs / elapsed * 60:.2f} runs/min, "
                       f"{args.runs * args.notebooks / elapsed:.2f} notebooks/s"),
        ("API latency p50 / p99", f"{pct(0.5):.1f} / {pct(0.99):.1f} ms ({len(lat)} GETs)"),
        ("live watchers per run", str(args.watchers)),
        ("events written x watchers / delivered", f"{written} / {delivered}"),
        ("watchers with missing or out-of-order events", str(mismatched)),
        ("dropped-and-resumed watchers complete", f"{resumed_ok} / {args.runs}"),
        ("serve RSS start / end", f"{rss_start / 1024:.1f} / {rss_end / 1024:.1f} MiB"),
        ("serve RSS MiB after N runs", ", ".join(checkpoints)),
        ("runs.db (+wal) size", f"{db / 1024:.0f} KiB"),
        ("kill -9 mid-run", f"after restart: status {after_status}, {len(seqs)} events, "
                            f"{'contiguous, ending run_interrupted' if intact else 'DAMAGED'}"),
        ("resumed run", resumed["run"]["status"] if resumed else f"refused {status} {body}"),
    ]
    width = max(len(k) for k, _ in rows)
    table = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
    print(table)
    with open(args.out, "w") as f:
        f.write(table + "\n")
    ok = (mismatched == 0 and delivered == written and after_status == "interrupted"
          and intact and resumed and resumed["run"]["status"] == "succeeded")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
