"""The run benchmark behind scripts/bench-runs.sh: one pipeline on local Spark, three ways.

1. spool          `spool run`: the notebooks run concurrently in one shared session.
2. pipeline       every notebook its own Spark application (one spark-submit each, in
                  dependency order), data handed over as parquet (scripts/bench_notebook_app.py).
3. spool-serial   `spool run` with max_concurrency = 1: one session, one notebook at a time.

Every way gets `local[C]` (Spool's ways run a copy of the pipeline whose [pool] is one executor
of C cores: the local endpoint sizes its session by the pool) and pays its own Spark start-ups.
With --master spark://127.0.0.1:PORT (a standalone cluster of one-core workers,
scripts/spark-cluster.sh) every way gets C one-core executors of that cluster instead: Spool's
ways a pool of C executors of 1 core, each spark-submit `spark.cores.max = C`.
Wall time is the wall time of the processes (for 2, the sum over its applications); task time is
the executor run time of Spark's tasks; utilisation is task time / (C x wall). Prints a table
(also written to --out), a profile of where the time went, and whether the targets hold. Exits 1
when a way fails, or when the ways' notebooks disagree on their exit values (then they did not do
the same work).
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from bench_trace import RecordingProxy

# Targets of the issue: Spool against the one-application-per-notebook pipeline.
TARGET_SPEEDUP = 2.0
TARGET_UTILISATION_RATIO = 1.5
# Upper bound for one `spool run` or one spark-submit (a hung way fails the bench).
PROCESS_LIMIT_SECS = 900
ENDPOINT_START_LIMIT_SECS = 60
ENDPOINT_STOP_LIMIT_SECS = 60
BASELINE = "pipeline"
WAY_ORDER = ["spool", "pipeline", "spool-serial"]
WAY_TITLES = {
    "spool": "(1) Spool, one shared session",
    "pipeline": "(2) one Spark app per notebook",
    "spool-serial": "(3) one session, one at a time",
}


class WayFailed(Exception):
    pass


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", required=True, help="the pipeline file (TOML)")
    parser.add_argument("--cores", type=int, default=2, help="C: local[C] for every way")
    parser.add_argument(
        "--master", help="a standalone master on this machine: C one-core executors of it per way"
    )
    parser.add_argument("--spool", required=True, help="the spool binary (release build)")
    parser.add_argument(
        "--spool-bench", required=True, help="the spool-bench binary (release build)"
    )
    parser.add_argument("--spark-submit", required=True)
    parser.add_argument("--python", required=True, help="the Python with PySpark")
    parser.add_argument("--work", required=True, help="scratch folder, emptied first")
    parser.add_argument("--out", required=True, help="where the table is written")
    parser.add_argument(
        "--ways", default=",".join(WAY_ORDER),
        help="comma-separated subset of " + ", ".join(WAY_ORDER),
    )
    parser.add_argument(
        "--trace", action="store_true",
        help="run Spool's ways through `spool livy-local` behind a recording proxy and profile "
        "each notebook's start and end as the driver agent saw them",
    )
    args = parser.parse_args()
    args.ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    unknown = [w for w in args.ways if w not in WAY_ORDER]
    if unknown or args.cores < 1:
        parser.error("unknown ways %s or cores < 1" % unknown)
    return args


# ---------------------------------------------------------------------------------------------
# Pipeline copies with their own pool


def with_pool(text, settings):
    """The pipeline file's text with the given [pool] keys set (others kept)."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip() == "[pool]"), None)
    if start is None:
        lines += ["", "[pool]"]
        start = len(lines) - 1
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines)
    )
    for key, value in settings.items():
        pattern = re.compile(r"^\s*%s\s*=" % re.escape(key))
        found = [i for i in range(start + 1, end) if pattern.match(lines[i])]
        if found:
            lines[found[0]] = "%s = %s" % (key, value)
        else:
            lines.insert(start + 1, "%s = %s" % (key, value))
            end += 1
    return "\n".join(lines) + "\n"


def copy_pipeline(pipeline, folder, settings):
    """Copies the pipeline's folder to `folder` with [pool] set; returns the copy's file."""
    source_dir = os.path.dirname(os.path.abspath(pipeline))
    shutil.copytree(source_dir, folder)
    copy = os.path.join(folder, os.path.basename(pipeline))
    with open(copy, encoding="utf-8") as f:
        text = f.read()
    with open(copy, "w", encoding="utf-8") as f:
        f.write(with_pool(text, settings))
    return copy


# ---------------------------------------------------------------------------------------------
# Ways


def timed_process(command, stdout_path, stderr_path, env=None):
    """Runs a process to its end; returns (exit code, wall seconds, launch epoch seconds)."""
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        launched = time.time()
        began = time.monotonic()
        try:
            code = subprocess.run(
                command, stdout=out, stderr=err, env=env, timeout=PROCESS_LIMIT_SECS
            ).returncode
        except subprocess.TimeoutExpired:
            code = "nothing: it did not finish within %d s" % PROCESS_LIMIT_SECS
        return code, time.monotonic() - began, launched


def run_spool(args, pipeline, name):
    folder = os.path.join(args.work, name)
    os.makedirs(folder)
    stdout, stderr = os.path.join(folder, "run.json"), os.path.join(folder, "run.log")
    command = [args.spool, "run", pipeline, "--json", "--data-dir", os.path.join(folder, "data")]
    if args.master and not args.trace:
        command += ["--master", args.master]
    if args.trace:
        with traced_endpoint(args, folder) as proxy:
            code, wall, launched = timed_process(command + ["--livy", proxy.url], stdout, stderr)
            ends = dict(proxy.ends)
    else:
        # The local Spark gets local[executors x cores] of the copy's [pool], set to C.
        code, wall, launched = timed_process(command, stdout, stderr)
    if code != 0:
        raise WayFailed("%s: `spool run` exited %s; see %s" % (name, code, stderr))
    with open(stdout, encoding="utf-8") as f:
        run = json.load(f)
    attempts = [(task_id, a) for task_id, t in run["tasks"].items() for a in t["attempts"]]
    task_ms = sum((a.get("metrics") or {}).get("executor_run_time_ms", 0) for _, a in attempts)
    started, ended = run["started_ms"] / 1000.0, run["ended_ms"] / 1000.0
    first_start = min((a["started_ms"] / 1000.0 for _, a in attempts), default=started)
    busy = sum(a["ended_ms"] - a["started_ms"] for _, a in attempts if a.get("ended_ms")) / 1000.0
    result = {
        "way": name,
        "wall": wall,
        "task": task_ms / 1000.0,
        "notebooks": len(attempts),
        "exit_values": {
            task_id: comparable(task["attempts"][-1].get("exit_value"))
            for task_id, task in run["tasks"].items()
            if task["attempts"]
        },
        "profile": {
            "process launch to run start": started - launched,
            "Spark session start-up (to first notebook)": first_start - started,
            "notebooks (first start to run end)": ended - first_start,
            "  sum of notebook durations as recorded": busy,
            "run end to process exit": launched + wall - ended,
        },
    }
    if args.trace:
        result["traced"] = traced_notebooks(attempts, ends)
        result["profile"]["  of which start to agent thread"] = sum(
            t["start_lag"] for t in result["traced"]) / 1000.0
        result["profile"]["  of which agent end to recorded end"] = sum(
            t["end_lag"] for t in result["traced"]) / 1000.0
    return result


@contextlib.contextmanager
def traced_endpoint(args, folder):
    """`spool livy-local` behind a recording proxy (scripts/bench_trace.py)."""
    log = os.path.join(folder, "livy-local.log")
    with open(log, "wb") as err:
        endpoint = subprocess.Popen(
            [args.spool, "livy-local", "--port", "0", "--cores", str(args.cores),
             "--work-dir", os.path.join(folder, "livy-local")]
            + (["--master", args.master] if args.master else []),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
        )
    proxy = None
    try:
        deadline = time.monotonic() + ENDPOINT_START_LIMIT_SECS
        url = None
        while url is None:
            if endpoint.poll() is not None or time.monotonic() > deadline:
                raise WayFailed("`spool livy-local` did not start; see %s" % log)
            time.sleep(0.1)
            with open(log, encoding="utf-8", errors="replace") as f:
                found = re.search(r"endpoint on (http://\S+)", f.read())
            url = found.group(1) if found else None
        proxy = RecordingProxy(url)
        yield proxy
    finally:
        if proxy is not None:
            proxy.close()
        endpoint.send_signal(signal.SIGINT)
        try:
            endpoint.wait(timeout=ENDPOINT_STOP_LIMIT_SECS)
        except subprocess.TimeoutExpired:
            endpoint.kill()
            endpoint.wait()


def traced_notebooks(attempts, ends):
    """Per attempt: as recorded by `spool run` and as the agent saw it (milliseconds)."""
    rows = []
    for task_id, a in attempts:
        agent = ends.get((task_id, a["attempt"]))
        if agent is None or not a.get("ended_ms"):
            continue
        rows.append({
            "id": task_id,
            "recorded": a["ended_ms"] - a["started_ms"],
            "agent": agent["ended_at"] - agent["started_at"],
            "start_lag": agent["started_at"] - a["started_ms"],
            "end_lag": a["ended_ms"] - agent["ended_at"],
        })
    return rows


def run_pipeline_way(args):
    folder = os.path.join(args.work, BASELINE)
    scratch = os.path.join(folder, "scratch")
    os.makedirs(scratch)
    launches = os.path.join(folder, "launches.json")
    with open(launches, "wb") as out:
        exported = subprocess.run(
            [args.spool_bench, "launches", args.pipeline], stdout=out, timeout=PROCESS_LIMIT_SECS
        )
    if exported.returncode != 0:
        raise WayFailed("%s: `spool-bench launches` exited %s" % (BASELINE, exported.returncode))
    with open(launches, encoding="utf-8") as f:
        notebooks = json.load(f)["notebooks"]
    app = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_notebook_app.py")
    env = dict(os.environ, PYSPARK_PYTHON=args.python, PYSPARK_DRIVER_PYTHON=args.python,
               SPARK_LOCAL_IP="127.0.0.1", PYTHONUNBUFFERED="1")
    # The configuration `spool livy-local` gives its sessions (server/src/livy_local/mod.rs),
    # and its drivers' log level.
    conf = {
        "spark.log.level": "WARN",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.scheduler.mode": "FAIR",
        "spark.sql.shuffle.partitions": str(args.cores),
        "spark.sql.warehouse.dir": os.path.join(folder, "warehouse"),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
    }
    apps = []
    for index, notebook in enumerate(notebooks):
        stem = os.path.join(folder, "%02d-%s" % (index, notebook["id"].replace("/", "_")))
        command = [args.spark_submit, "--driver-memory", "1g", "--name", "bench-" + notebook["id"]]
        if args.master:
            command += ["--master", args.master, "--deploy-mode", "client",
                        "--conf", "spark.cores.max=%d" % args.cores,
                        "--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=1g"]
        else:
            command += ["--master", "local[%d]" % args.cores]
        for key, value in conf.items():
            command += ["--conf", "%s=%s" % (key, value)]
        command += [app, "--launches", launches, "--index", str(index),
                    "--scratch", scratch, "--result", stem + ".json"]
        code, wall, launched = timed_process(command, stem + ".out", stem + ".log", env)
        if code != 0:
            raise WayFailed("%s: the application of %s exited %s; see %s.json and .log"
                            % (BASELINE, notebook["id"], code, stem))
        with open(stem + ".json", encoding="utf-8") as f:
            result = json.load(f)
        result["wall"] = wall
        result["jvm_to_python_secs"] = result["app_started"] - launched
        result["stop_secs"] = launched + wall - result["ended"]
        apps.append(result)

    def total(key):
        return sum(a[key] for a in apps)

    return {
        "way": BASELINE,
        "wall": total("wall"),
        "task": total("task_ms") / 1000.0,
        "notebooks": len(apps),
        "exit_values": {a["id"]: comparable(a["exit_value"]) for a in apps},
        "apps": apps,
        "profile": {
            "JVM launch to Python app": total("jvm_to_python_secs"),
            "SparkSession start-up": total("session_secs"),
            "parquet views registered": total("import_secs"),
            "notebooks running": total("notebook_secs"),
            "views written to parquet": total("export_secs"),
            "Spark stop and JVM exit": total("stop_secs"),
        },
    }


# ---------------------------------------------------------------------------------------------
# Report


def comparable(exit_value):
    """An exit value as JSON data: Spool's history keeps non-string values as JSON text."""
    if isinstance(exit_value, str):
        try:
            return json.loads(exit_value)
        except ValueError:
            return exit_value
    return exit_value


def same_value(a, b):
    """Equal, numbers up to summation-order rounding (sums over parquet and over the generated
    data add in different orders)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1.0)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def disagreements(results):
    """Notebooks whose exit values differ between ways, or that some way did not run: the ways
    must have done the same work for the comparison to hold."""
    reference = results[0]
    problems = []
    for other in results[1:]:
        for task_id in sorted(set(reference["exit_values"]) | set(other["exit_values"])):
            if task_id not in reference["exit_values"] or task_id not in other["exit_values"]:
                problems.append("%s ran in only one of %s, %s" % (
                    task_id, reference["way"], other["way"]))
            elif not same_value(reference["exit_values"][task_id], other["exit_values"][task_id]):
                problems.append("%s: %s gave %r, %s gave %r" % (
                    task_id, reference["way"], reference["exit_values"][task_id],
                    other["way"], other["exit_values"][task_id]))
    return problems


def utilisation(result, cores):
    return result["task"] / (cores * result["wall"]) if result["wall"] > 0 else 0.0


def report(results, cores, master, load, traced):
    by_way = {r["way"]: r for r in results}
    base = by_way.get(BASELINE)
    spark = "%d one-core executors of %s" % (cores, master) if master else "local[%d]" % cores
    lines = [
        "Run benchmark: %s for every way, each paying its own Spark start-up "
        "(load average at start: %s)%s" % (
            spark, load, "; Spool via livy-local and a recording proxy" if traced else ""),
        "",
        "%-34s %9s %9s %6s %6s %14s %16s" % (
            "way", "wall s", "task s", "util", "runs", "speed-up vs 2", "util ratio vs 2"),
    ]
    for way in WAY_ORDER:
        r = by_way.get(way)
        if r is None:
            continue
        util = utilisation(r, cores)
        speedup = "%.2fx" % (base["wall"] / r["wall"]) if base else "-"
        base_util = utilisation(base, cores) if base else 0.0
        ratio = "%.2fx" % (util / base_util) if base_util else "-"
        lines.append("%-34s %9.1f %9.1f %5.0f%% %6d %14s %16s" % (
            WAY_TITLES[way], r["wall"], r["task"], 100 * util, r["notebooks"], speedup, ratio))
    verdict = []
    spool = by_way.get("spool")
    if spool and base:
        speedup = base["wall"] / spool["wall"]
        ratio = utilisation(spool, cores) / max(utilisation(base, cores), 1e-9)
        verdict = [
            "",
            "target: Spool >= %.1fx faster than (2): %.2fx -> %s" % (
                TARGET_SPEEDUP, speedup, "met" if speedup >= TARGET_SPEEDUP else "NOT met"),
            "target: Spool utilisation >= %.1fx that of (2): %.2fx -> %s" % (
                TARGET_UTILISATION_RATIO, ratio,
                "met" if ratio >= TARGET_UTILISATION_RATIO else "NOT met"),
        ]
    return "\n".join(lines + verdict) + "\n"


def profile(results):
    lines = ["", "Where the wall time went (seconds):"]
    for r in results:
        lines.append("  %s" % WAY_TITLES[r["way"]])
        for key, value in r["profile"].items():
            lines.append("    %-50s %7.1f" % (key, value))
        for t in r.get("traced", []):
            lines.append(
                "    %-28s recorded %5.1f = start lag %4.2f + agent %5.1f + end lag %4.2f" % (
                    t["id"], t["recorded"] / 1000.0, t["start_lag"] / 1000.0,
                    t["agent"] / 1000.0, t["end_lag"] / 1000.0))
        for app in r.get("apps", []):
            lines.append(
                "    %-28s wall %5.1f = launch %4.1f + session %4.1f + import %4.1f"
                " + notebook %4.1f + export %4.1f + stop %4.1f; task %5.1f" % (
                    app["id"], app["wall"], app["jvm_to_python_secs"], app["session_secs"],
                    app["import_secs"], app["notebook_secs"], app["export_secs"],
                    app["stop_secs"], app["task_ms"] / 1000.0))
    return "\n".join(lines) + "\n"


def main():
    args = parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    load = "%.2f %.2f %.2f" % os.getloadavg()
    if args.master:
        pool = {"executors": args.cores, "executor_cores": 1}
    else:
        pool = {"executors": 1, "executor_cores": args.cores}
    results = []
    try:
        for way in WAY_ORDER:
            if way not in args.ways:
                continue
            print("bench-runs: running %s ..." % WAY_TITLES[way], file=sys.stderr, flush=True)
            if way == "spool":
                copy = copy_pipeline(args.pipeline, os.path.join(args.work, "pipeline-spool"), pool)
                results.append(run_spool(args, copy, way))
            elif way == "spool-serial":
                copy = copy_pipeline(args.pipeline, os.path.join(args.work, "pipeline-serial"),
                                     dict(pool, max_concurrency=1))
                results.append(run_spool(args, copy, way))
            else:
                results.append(run_pipeline_way(args))
    except WayFailed as failure:
        print("bench-runs: %s" % failure, file=sys.stderr)
        return 1
    problems = disagreements(results)
    for problem in problems:
        print("bench-runs: the ways disagree: %s" % problem, file=sys.stderr)
    if problems:
        return 1
    table = report(results, args.cores, args.master, load, args.trace)
    details = profile(results)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(table + details)
    print(table + details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
