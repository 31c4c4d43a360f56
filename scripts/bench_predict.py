"""Prediction benchmark for scripts/bench-predict.sh: how well does the dry run predict a real run?

For each pipeline (the example, a generated wide one and a generated deep one, 30+ notebooks of
real Spark work of different sizes) it runs `spool run` twice on local Spark, then predicts run 2
with `spool simulate --durations-from <run 1> --node-startup-secs 0` and compares: makespan (first
notebook start to last notebook end), its error, and the median absolute error of notebook start
times. The estimate-based prediction is shown beside it. Then it predicts a concurrent run from a
serial run's durations (`max_concurrency = 1`), which measures how much of Spark's contention
the model misses: notebooks that share cores run slower than alone.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

# Upper bound for one `spool run` (a hung run fails the bench).
RUN_LIMIT_SECS = 1800

WORK_NOTEBOOK = '''# %% [markdown]
# # Bench work
# Real Spark work whose size is a parameter: an aggregation over `rows` generated rows.

# %% tags=["parameters"]
rows = 100000

# %%
from pyspark.sql import functions as F

df = spark.range(rows).withColumn("k", F.expr("pmod(xxhash64(id), 101)"))
total = df.groupBy("k").agg(F.sum("id").alias("s")).agg(F.sum("s")).collect()[0][0]
'''

# Rows per notebook size: small, medium, large (about 1, 2 and 4 s on a 2-core machine).
SIZES = [(300_000, 1.5), (1_500_000, 2.5), (4_000_000, 4.0)]


def notebook(i, deps):
    rows, estimate = SIZES[(i * 7) % len(SIZES)]
    dep = ""
    if deps:
        dep = "depends_on = [%s]\n" % ", ".join('"%s"' % d for d in deps)
    return (
        '[[notebook]]\nid = "%s"\npath = "notebooks/work.py"\nestimate_secs = %s\n'
        "params = { rows = %d }\n%s\n" % (name(i), estimate, rows, dep)
    )


def name(i):
    return "nb%02d" % i


def generated(kind, cores):
    """A wide pipeline (a root, 34 independent notebooks, a final one) or a deep one (16 layers
    of 2, each notebook after both of the layer above)."""
    head = (
        'name = "bench_%s"\n\n[pool]\nexecutors = 1\nexecutor_cores = %d\n\n'
        "[defaults]\nslots = 1\nretry = 0\ntimeout_secs = 600\n\n" % (kind, cores)
    )
    body = []
    if kind == "wide":
        body.append(notebook(0, []))
        middle = list(range(1, 35))
        body += [notebook(i, [name(0)]) for i in middle]
        body.append(notebook(35, [name(i) for i in middle]))
    else:
        for layer in range(16):
            for j in range(2):
                i = layer * 2 + j
                deps = [name((layer - 1) * 2), name((layer - 1) * 2 + 1)] if layer else []
                body.append(notebook(i, deps))
    return head + "".join(body)


def with_pool(text, key, value):
    """`text` with `key = value` set in its [pool] table."""
    lines = text.splitlines()
    start = lines.index("[pool]")
    lines.insert(start + 1, "%s = %s" % (key, value))
    return "\n".join(lines) + "\n"


def spool_json(args, command):
    out = subprocess.run(
        [args.spool] + command, capture_output=True, text=True, timeout=RUN_LIMIT_SECS
    )
    if out.returncode != 0:
        sys.exit("`spool %s` exited %d:\n%s" % (" ".join(command), out.returncode, out.stderr))
    return json.loads(out.stdout)


def real_run(args, pipeline, data):
    began = time.monotonic()
    run = spool_json(args, ["run", pipeline, "--json", "--data-dir", data])
    print("  run #%d of %s: %s in %.0f s" % (
        run["id"], os.path.basename(pipeline), run["status"], time.monotonic() - began),
        file=sys.stderr)
    return run


def observed(run):
    """(makespan from first notebook start to last end, {notebook: first start offset})."""
    firsts = {t: a["attempts"][0] for t, a in run["tasks"].items() if a["attempts"]}
    first = min(a["started_ms"] for a in firsts.values())
    last = max(a["ended_ms"] for t in run["tasks"].values() for a in t["attempts"]
               if a.get("ended_ms") is not None)
    return (last - first) / 1000.0, {t: (a["started_ms"] - first) / 1000.0
                                     for t, a in firsts.items()}


def predicted(args, pipeline, data, run_id):
    command = ["simulate", pipeline, "--json", "--node-startup-secs", "0", "--data-dir", data]
    if run_id is not None:
        command += ["--durations-from", str(run_id)]
    report = spool_json(args, command)
    starts = {}
    for a in report["tasks"]:
        if a["outcome"] != "skipped":
            starts.setdefault(a["id"], a["start_secs"])
    return report["makespan_secs"], starts, report


def compare(label, prediction, actual):
    (p_makespan, p_starts, _), (a_makespan, a_starts) = prediction, actual
    common = sorted(set(p_starts) & set(a_starts))
    start_error = statistics.median(abs(p_starts[t] - a_starts[t]) for t in common) \
        if common else float("nan")
    return {
        "label": label,
        "notebooks": len(a_starts),
        "predicted": p_makespan,
        "actual": a_makespan,
        "error_pct": 100.0 * (p_makespan - a_makespan) / a_makespan,
        "start_error": start_error,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spool", required=True)
    parser.add_argument("--example", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    pipelines = {}
    example_dir = os.path.join(args.work, "example")
    shutil.copytree(os.path.dirname(os.path.abspath(args.example)), example_dir)
    pipelines["example"] = os.path.join(example_dir, os.path.basename(args.example))
    for kind in ["wide", "deep"]:
        folder = os.path.join(args.work, kind)
        os.makedirs(os.path.join(folder, "notebooks"))
        with open(os.path.join(folder, "notebooks", "work.py"), "w") as f:
            f.write(WORK_NOTEBOOK)
        text = generated(kind, args.cores)
        with open(os.path.join(folder, kind + ".toml"), "w") as f:
            f.write(text)
        with open(os.path.join(folder, kind + "_serial.toml"), "w") as f:
            f.write(with_pool(text, "max_concurrency", 1))
        pipelines[kind] = os.path.join(folder, kind + ".toml")

    rows = []
    for kind, pipeline in pipelines.items():
        data = os.path.join(os.path.dirname(pipeline), "data")
        first = real_run(args, pipeline, data)
        second = real_run(args, pipeline, data)
        actual = observed(second)
        calibrated = predicted(args, pipeline, data, first["id"])
        rows.append(compare("%s: run 2 from run 1's durations" % kind, calibrated, actual))
        estimates = predicted(args, pipeline, data, None)
        rows.append(compare("%s: run 2 from estimate_secs" % kind, estimates, actual))
        if kind == "wide":
            serial_file = os.path.join(os.path.dirname(pipeline), "wide_serial.toml")
            serial_data = os.path.join(os.path.dirname(pipeline), "serial-data")
            serial = real_run(args, serial_file, serial_data)
            from_serial = predicted(args, pipeline, serial_data, serial["id"])
            rows.append(compare("wide: run 2 from a serial run's durations", from_serial, actual))

    lines = [
        "prediction benchmark: local Spark, local[%d], %s" % (
            args.cores, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
        "makespan = first notebook start to last notebook end; "
        "start error = median |predicted - actual| notebook start",
        "",
        "| prediction | notebooks | predicted | actual | error | start error |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append("| %s | %d | %.1f s | %.1f s | %+.1f %% | %.2f s |" % (
            r["label"], r["notebooks"], r["predicted"], r["actual"], r["error_pct"],
            r["start_error"]))
    table = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
