"""One notebook as its own Spark application: the "pipeline way" of scripts/bench-runs.sh.

Submitted with spark-submit once per notebook, in dependency order. It runs the notebook the
way Spool does, through Spool's driver agent and the very statements `spool run` sends it
(exported by `spool-bench launches`): the inject statement, the notebook's start
statement, then a poll for the outcome. Data moves between notebooks the way it must between
separate applications: every temp view and global temp view the notebook creates (or replaces)
is written to parquet in the scratch folder, and the next applications register those files
again as temp views (global ones as global temp views) before their notebook starts.

Writes one JSON document to --result: outcome, phase times, and the application's task time
(executor run time of every stage, the parquet hand-over included). Exits 1 when the notebook
did not succeed.
"""

import argparse
import json
import os
import sys
import time

APP_STARTED = time.time()
# The agent ends a notebook at its own timeout; this only bounds the wait should it not.
WAIT_LIMIT_SECS = 3600.0
WAIT_STEP_SECS = 0.02
MANIFEST = "views.json"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", required=True, help="output of `spool-bench launches`")
    parser.add_argument("--index", type=int, required=True, help="the notebook's position")
    parser.add_argument("--scratch", required=True, help="parquet hand-over folder")
    parser.add_argument("--result", required=True, help="where to write the JSON result")
    return parser.parse_args()


class StatementRunner:
    """Executes agent statements as Livy's interpreter would (a namespace holding `spark` and
    `sc`) and returns what each printed: the agent's JSON reply."""

    def __init__(self, spark):
        self._printed = []
        self._namespace = {"spark": spark, "sc": spark.sparkContext, "print": self._print}

    def _print(self, *values, **_):
        self._printed.append(" ".join(str(v) for v in values))

    def run(self, statement):
        self._printed = []
        exec(compile(statement, "<statement>", "exec"), self._namespace)
        return json.loads(self._printed[-1])


def view_identities(spark):
    """(kind, name) -> identity of the view object the session catalog holds, for every temp
    view of the main session and every global temp view: a view the notebook creates or
    replaces gets a new object. Read from the session catalog directly: the public
    `spark.catalog.listTables` analyses every view, which costs seconds in a cold JVM."""
    catalog = spark._jsparkSession.sessionState().catalog()
    identity = spark._jvm.java.lang.System.identityHashCode
    views = {}
    local = catalog.listLocalTempViews("*").iterator()
    while local.hasNext():
        name = local.next().table()
        views[("temp", name)] = identity(catalog.getRawTempView(name).get())
    global_ = catalog.globalTempViewManager().listViewNames("*").iterator()
    while global_.hasNext():
        name = global_.next()
        views[("global", name)] = identity(catalog.getRawGlobalTempView(name).get())
    return views


def import_views(spark, manifest):
    """Registers the views earlier notebooks wrote. The schema comes with them (as a table's
    would from a metastore), so registering runs no Spark job."""
    from pyspark.sql.types import StructType

    for entry in manifest:
        schema = StructType.fromJson(json.loads(entry["schema"]))
        frame = spark.read.schema(schema).parquet(entry["path"])
        if entry["kind"] == "global":
            frame.createOrReplaceGlobalTempView(entry["name"])
        else:
            frame.createOrReplaceTempView(entry["name"])


def export_views(spark, changed, scratch, index):
    written = []
    for kind, name in sorted(changed):
        path = os.path.join(scratch, "%02d-%s-%s.parquet" % (index, kind, name))
        table = "global_temp.%s" % name if kind == "global" else name
        frame = spark.table(table)
        frame.write.mode("overwrite").parquet(path)
        written.append({"kind": kind, "name": name, "path": path, "schema": frame.schema.json()})
    return written


def task_time_ms(spark):
    """Executor run time of every stage attempt of this application (Spark's status store)."""
    sc = spark.sparkContext
    gateway = sc._gateway
    stages = sc._jsc.sc().statusStore().stageList(
        None, False, False, gateway.new_array(gateway.jvm.double, 0), None
    )
    total = 0
    iterator = stages.iterator()
    while iterator.hasNext():
        total += iterator.next().executorRunTime()
    return total


def main():
    args = parse_args()
    with open(args.launches, encoding="utf-8") as f:
        launches = json.load(f)
    notebook = launches["notebooks"][args.index]
    manifest_path = os.path.join(args.scratch, MANIFEST)
    manifest = []
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    session_ready = time.time()

    import_views(spark, manifest)
    before = view_identities(spark)
    imported = time.time()

    statements = StatementRunner(spark)
    statements.run(launches["inject"])
    agent = sys.modules["spool_agent"]
    started = statements.run(notebook["start"])
    if not started.get("started"):
        raise RuntimeError("the agent did not start %s: %s" % (notebook["id"], started))
    deadline = time.monotonic() + WAIT_LIMIT_SECS
    while agent.busy() and time.monotonic() < deadline:
        time.sleep(WAIT_STEP_SECS)
    polled = statements.run(launches["poll"])
    update = next(
        (u for u in polled["updates"] if u["id"] == notebook["id"] and u["state"] != "running"),
        None,
    )
    ran = time.time()

    state = update["state"] if update else "unfinished"
    written = []
    if state == "succeeded":
        after = view_identities(spark)
        changed = {key for key, ident in after.items() if before.get(key) != ident}
        written = export_views(spark, changed, args.scratch, args.index)
        replaced = {(e["kind"], e["name"]) for e in written}
        manifest = [e for e in manifest if (e["kind"], e["name"]) not in replaced] + written
        with open(manifest_path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
        os.replace(manifest_path + ".tmp", manifest_path)
    exported = time.time()

    result = {
        "id": notebook["id"],
        "state": state,
        "error": update.get("error") if update else None,
        "exit_value": update.get("exit_value") if update else None,
        "notebook_metrics": update.get("metrics") if update else None,
        "task_ms": task_time_ms(spark),
        "app_started": APP_STARTED,
        "session_secs": session_ready - APP_STARTED,
        "import_secs": imported - session_ready,
        "notebook_secs": ran - imported,
        "export_secs": exported - ran,
        "exported": [e["name"] for e in written],
        "ended": time.time(),
    }
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    if update:
        sys.stderr.write(update.get("stdout") or "")
        sys.stderr.write(update.get("stderr") or "")
    spark.stop()
    return 0 if state == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
