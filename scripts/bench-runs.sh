#!/usr/bin/env bash
# Run benchmark: the seed's claim, measured. Runs a pipeline (default examples/daily_sales.toml)
# on local Spark three ways, with local[C] and its own Spark start-ups each:
#   (1) Spool: `spool run`, notebooks concurrently in one shared session;
#   (2) the pipeline way: one spark-submit (own JVM and SparkSession) per notebook, in
#       dependency order, each running its notebook through Spool's agent, data handed over as
#       parquet temp views;
#   (3) one session, one notebook at a time (`spool run` with max_concurrency = 1).
# Prints wall time, task time (executor run time), executor-core utilisation
# task / (C x wall) and ratios against (2), then where the time went; also writes the table to
# target/bench-runs.txt. Targets: (1) at least 2x faster than (2) and at least 1.5x its
# utilisation. Exits non-zero when a way fails. Takes a few minutes.
# --trace runs Spool's ways against `spool livy-local` behind a recording proxy and adds, per
# notebook, when the driver agent really started and ended it (poll latency).
# --master spark://127.0.0.1:PORT runs every way on a local standalone cluster of one-core
# workers (scripts/spark-cluster.sh start --workers C --cores 1) instead of local[C].
# Usage: scripts/bench-runs.sh [--cores C] [--master URL] [--pipeline FILE] [--ways spool,pipeline,spool-serial] [--trace]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cores=2
pipeline="$root/examples/daily_sales.toml"
ways=spool,pipeline,spool-serial
trace=()
master=()
while [ $# -gt 0 ]; do
  case $1 in
    --cores) cores=$2; shift 2 ;;
    --pipeline) pipeline=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    --ways) ways=$2; shift 2 ;;
    --trace) trace=(--trace); shift ;;
    --master) master=(--master "$2"); shift 2 ;;
    *) echo "usage: $0 [--cores C] [--master URL] [--pipeline FILE] [--ways spool,pipeline,spool-serial] [--trace]" >&2; exit 2 ;;
  esac
done
cd "$root"
cargo build --release --quiet -p spool-server -p spool-bench
py=$("$root/scripts/python-env.sh")
venv_bin=$(dirname "$py")
exec "$py" "$root/scripts/bench_runs.py" \
  --pipeline "$pipeline" --cores "$cores" --ways "$ways" ${trace[@]+"${trace[@]}"} \
  ${master[@]+"${master[@]}"} \
  --spool "$root/target/release/spool" --spool-bench "$root/target/release/spool-bench" \
  --spark-submit "$venv_bin/spark-submit" --python "$py" \
  --work "$root/target/bench-runs" --out "$root/target/bench-runs.txt"
