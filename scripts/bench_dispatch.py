"""Dispatch benchmark behind scripts/bench-dispatch.sh: how much dead time Spool adds between
notebooks, against threads inside the driver.

60 small notebooks (6 layers of 10; each depends on two of the layer before, each a short Spark
job) run two ways on local[C]:

1. spool      `spool run`: the driver agent runs the notebooks, Spool schedules them through
              Livy statements (long polls).
2. threads    a Genie-style runner: a ThreadPoolExecutor with C threads inside one PySpark
              driver, each notebook's cells exec'd in a thread when its dependencies are done.

Every notebook appends its own start and end (the driver's clock) to a log, so both ways are
measured the same way: makespan = last end - first start; the dispatch gap of a notebook =
its start - the last completion before it (see measure()). The ways alternate for --rounds
rounds; prints a table (also written to --out) with the median ratio of makespans (target
<= 1.10) and Spool's median dispatch gap (target <= 50 ms). Spark's start-up, its first job's
warm-up included, is outside both makespans.
"""

import argparse
import bisect
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

LAYERS = 6
WIDTH = 10
TARGET_MAKESPAN_RATIO = 1.10
TARGET_MEDIAN_GAP_MS = 50.0
PROCESS_LIMIT_SECS = 900

NOTEBOOK = '''# %% tags=["parameters"]
name = "x"
log = ""

# %%
import time as _time
_started = _time.time()
spark.range(0, 200000, numPartitions=2).selectExpr("sum(id) AS s").first()
with open(log, "a") as _f:
    _f.write("%s %.6f %.6f\\n" % (name, _started, _time.time()))
'''


def notebook_ids():
    return ["l%d_%d" % (layer, i) for layer in range(LAYERS) for i in range(WIDTH)]


def dependencies(nid):
    layer, i = (int(x) for x in nid[1:].split("_"))
    if layer == 0:
        return []
    return ["l%d_%d" % (layer - 1, i), "l%d_%d" % (layer - 1, (i + 1) % WIDTH)]


def write_pipeline(folder, cores):
    os.makedirs(os.path.join(folder, "nb"))
    with open(os.path.join(folder, "nb", "step.py"), "w") as f:
        f.write(NOTEBOOK)
    lines = [
        'name = "dispatch"',
        "[pool]",
        "executors = 1",
        "executor_cores = %d" % cores,
        "[defaults]",
        "estimate_secs = 1",
        "retry = 0",
    ]
    for nid in notebook_ids():
        deps = ", ".join('"%s"' % d for d in dependencies(nid))
        lines += [
            "[[notebook]]",
            'id = "%s"' % nid,
            'path = "nb/step.py"',
            "depends_on = [%s]" % deps,
            'params = { name = "%s", log = "" }' % nid,
        ]
    path = os.path.join(folder, "dispatch.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def read_log(path):
    times = {}
    with open(path) as f:
        for line in f:
            name, start, end = line.split()
            if name in times:
                raise RuntimeError("%s ran twice" % name)
            times[name] = (float(start), float(end))
    missing = set(notebook_ids()) - set(times)
    if missing:
        raise RuntimeError("notebooks that did not run: %s" % sorted(missing))
    return times


def measure(times):
    """Makespan, and two gaps per notebook. "wait" is its start minus its last dependency's
    end: with more ready notebooks than slots it includes waiting for a slot, whoever
    dispatches. "dispatch" is its start minus the last completion before it (its last
    dependency's end or the end that freed its slot): the dead time the dispatcher adds, the
    figure the target is about."""
    makespan = max(e for _, e in times.values()) - min(s for s, _ in times.values())
    ends = sorted(e for _, e in times.values())
    waits, dispatch = [], []
    for nid in notebook_ids():
        start = times[nid][0]
        deps = dependencies(nid)
        if deps:
            waits.append((start - max(times[d][1] for d in deps)) * 1000.0)
        before = bisect.bisect_right(ends, start)
        if before:
            dispatch.append((start - ends[before - 1]) * 1000.0)
    return {"makespan": makespan,
            "median_wait_ms": statistics.median(waits),
            "median_gap_ms": statistics.median(dispatch),
            "p90_gap_ms": sorted(dispatch)[int(len(dispatch) * 0.9)]}


def run_spool(args, folder):
    pipeline = write_pipeline(folder, args.cores)
    log = os.path.join(folder, "times.log")
    command = [args.spool, "run", pipeline, "--data-dir", os.path.join(folder, "data"),
               "--param", "log=%s" % log]
    env = dict(os.environ, SPOOL_PYTHON=args.python)
    with open(os.path.join(folder, "spool.log"), "w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                              timeout=PROCESS_LIMIT_SECS, check=False)
    if done.returncode != 0:
        raise RuntimeError("spool run failed; see %s" % os.path.join(folder, "spool.log"))
    return measure(read_log(log))


THREADS_RUNNER = r'''
import concurrent.futures, sys, threading, json
from pyspark.sql import SparkSession
cores, notebook_path, log, graph = int(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
spark = SparkSession.builder.master("local[%d]" % cores).config("spark.scheduler.mode", "FAIR").getOrCreate()
spark.sparkContext.setLogLevel("WARN")
# Spark warm, as Spool's agent warms its session before the first notebook.
spark.range(0, 1000, numPartitions=cores).selectExpr("id % 7 AS k", "id * 2 AS v").filter("v < 0").collect()
source = open(notebook_path).read()
code = compile(source, notebook_path, "exec")
lock = threading.Lock()
remaining = {n: len(d) for n, d in graph.items()}
dependents = {n: [m for m, d in graph.items() if n in d] for n in graph}
done = threading.Event()
finished = []
pool = concurrent.futures.ThreadPoolExecutor(max_workers=cores)

def run(name):
    namespace = {"spark": spark, "name": name, "log": log}
    exec(code, namespace)
    with lock:
        finished.append(name)
        ready = []
        for m in dependents[name]:
            remaining[m] -= 1
            if remaining[m] == 0:
                ready.append(m)
        if len(finished) == len(graph):
            done.set()
    for m in ready:
        pool.submit(run, m)

for n, d in graph.items():
    if not d:
        pool.submit(run, n)
done.wait()
pool.shutdown()
spark.stop()
'''


def run_threads(args, folder):
    os.makedirs(folder)
    notebook = os.path.join(folder, "step.py")
    with open(notebook, "w") as f:
        # The parameters cell's defaults are replaced by the namespace's values.
        f.write(NOTEBOOK.replace('name = "x"\nlog = ""\n', ""))
    log = os.path.join(folder, "times.log")
    graph = {nid: dependencies(nid) for nid in notebook_ids()}
    runner = os.path.join(folder, "runner.py")
    with open(runner, "w") as f:
        f.write(THREADS_RUNNER)
    with open(os.path.join(folder, "threads.log"), "w") as out:
        done = subprocess.run(
            [args.python, runner, str(args.cores), notebook, log, json.dumps(graph)],
            stdout=out, stderr=subprocess.STDOUT, timeout=PROCESS_LIMIT_SECS, check=False)
    if done.returncode != 0:
        raise RuntimeError("the threads runner failed; see %s" % os.path.join(folder, "threads.log"))
    return measure(read_log(log))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spool", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    load_before = os.getloadavg()[0]
    # Alternated, so that a change in the machine's load falls on both ways alike.
    results = {"spool": [], "threads": []}
    for round_ in range(1, args.rounds + 1):
        results["threads"].append(
            run_threads(args, os.path.join(args.work, "threads-%d" % round_)))
        results["spool"].append(
            run_spool(args, os.path.join(args.work, "spool-%d" % round_)))
    load_after = os.getloadavg()[0]
    rows = [
        "dispatch benchmark: %d notebooks (%d layers of %d) on local[%d], %d rounds; "
        "load average %.1f before, %.1f after" % (
            LAYERS * WIDTH, LAYERS, WIDTH, args.cores, args.rounds, load_before, load_after),
        "%-38s %11s %15s %17s %15s" % (
            "way (round)", "makespan s", "median wait ms", "median gap ms", "p90 gap ms"),
    ]
    titles = {"spool": "spool run (agent, long polls)", "threads": "threads in the driver (Genie)"}
    for way in ("spool", "threads"):
        for round_, r in enumerate(results[way], 1):
            rows.append("%-38s %11.2f %15.1f %17.1f %15.1f" % (
                "%s (%d)" % (titles[way], round_), r["makespan"], r["median_wait_ms"],
                r["median_gap_ms"], r["p90_gap_ms"]))
    ratios = [s_["makespan"] / t["makespan"] for s_, t in zip(results["spool"], results["threads"])]
    ratio = statistics.median(ratios)
    gap = statistics.median(r["median_gap_ms"] for r in results["spool"])
    rows.append("makespan spool/threads per round: %s; median %.3f (target <= %.2f)" % (
        ", ".join("%.3f" % r for r in ratios), ratio, TARGET_MAKESPAN_RATIO))
    rows.append("spool's median dispatch gap: %.1f ms (target <= %.0f); threads': %.1f ms" % (
        gap, TARGET_MEDIAN_GAP_MS,
        statistics.median(r["median_gap_ms"] for r in results["threads"])))
    table = "\n".join(rows) + "\n"
    sys.stdout.write(table)
    with open(args.out, "w") as f:
        f.write(table)
    ok = ratio <= TARGET_MAKESPAN_RATIO and gap <= TARGET_MEDIAN_GAP_MS
    print("targets %s" % ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
